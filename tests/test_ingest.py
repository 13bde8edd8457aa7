import orjson
import pytest
from factories import BASE_TS, balance_transaction, charge, customer, dispute, event, payment_intent, payout, refund

from payops.db import query
from payops.errors import IngestError
from payops.ingest import ingest_objects


def one(sql, *params):
    return query(sql, list(params) if params else None).iloc[0].tolist()


def test_every_object_type_lands_in_its_table():
    objs = [customer(), payment_intent(), charge(), refund(), balance_transaction(), dispute(), payout()]
    s = ingest_objects(objs, version=BASE_TS + 100)
    assert {t: c["new"] for t, c in s.tables.items()} == {
        "customers": 1, "payment_intents": 1, "charges": 1, "refunds": 1,
        "balance_transactions": 1, "disputes": 1, "payouts": 1}
    assert one("SELECT email, deleted FROM customers") == ["cus_1@example.com", False]
    assert one("SELECT amount, booking_id, tutor_id, latest_charge FROM payment_intents") == [
        4500, "bk_1", "tut_1", "ch_1"]
    assert one("SELECT amount_captured, payment_method_type, card_brand, balance_transaction FROM charges") == [
        4500, "card", "visa", "txn_1"]
    assert one("SELECT fee, net, json_extract(fee_details, '$[0].type')::VARCHAR FROM balance_transactions") == [
        161, 4339, '"stripe_fee"']
    assert one("SELECT charge, amount FROM disputes") == ["ch_1", 4500]
    assert one("SELECT epoch(arrival_date)::BIGINT FROM payouts") == [BASE_TS + 2 * 86400]
    assert one("SELECT epoch(created)::BIGINT FROM charges") == [BASE_TS]


def test_raw_keeps_unknown_fields():
    ingest_objects([charge(some_future_field={"x": 1}, outcome={"risk_level": "normal"})])
    raw = orjson.loads(query("SELECT raw FROM charges").raw[0])
    assert raw["some_future_field"] == {"x": 1}
    assert raw["outcome"]["risk_level"] == "normal"


def test_newer_wins_and_older_never_overwrites():
    ingest_objects([charge(amount_refunded=0)], version=BASE_TS + 100)
    # an older snapshot (an event from before the fetch) does not roll the row back
    s = ingest_objects([event(charge(amount_refunded=999), created=BASE_TS + 50)])
    assert s.tables["charges"] == {"new": 0, "updated": 0, "unchanged": 1}
    assert one("SELECT amount_refunded FROM charges") == [0]
    # a newer event wins
    s = ingest_objects([event(charge(amount_refunded=1000, refunded=False), id="evt_2", created=BASE_TS + 200)])
    assert s.tables["charges"]["updated"] == 1
    assert one("SELECT amount_refunded FROM charges") == [1000]
    # a fetch now (newest) wins again
    ingest_objects([charge(amount_refunded=4500, refunded=True)])
    assert one("SELECT amount_refunded, refunded FROM charges") == [4500, True]


def test_within_one_batch_the_newest_version_wins_whatever_the_order():
    objs = [event(charge(status="succeeded"), id="evt_b", created=BASE_TS + 20),
            event(charge(status="pending"), id="evt_a", created=BASE_TS + 10)]
    ingest_objects(objs)
    assert one("SELECT status FROM charges") == ["succeeded"]
    assert one("SELECT count(*) FROM events") == [2]


def test_duplicate_events_are_recorded_once():
    ev = event(refund(), "refund.created", id="evt_dup")
    first = ingest_objects([ev])
    second = ingest_objects([ev, ev])
    assert (first.events_new, second.events_new, second.events_duplicate) == (1, 0, 1)
    assert one("SELECT count(*), any_value(object_id), any_value(object_type) FROM events") == [1, "re_1", "refund"]


def test_expanded_objects_are_accepted_and_stored():
    expanded = payment_intent(latest_charge=charge(balance_transaction=balance_transaction()),
                              customer=customer())
    s = ingest_objects([expanded])
    assert one("SELECT latest_charge, customer FROM payment_intents") == ["ch_1", "cus_1"]
    assert one("SELECT balance_transaction FROM charges") == ["txn_1"]
    assert s.tables["charges"]["new"] == 1 and s.tables["balance_transactions"]["new"] == 1
    assert s.tables["customers"]["new"] == 1
    # and the id form gives the same columns
    ingest_objects([payment_intent(id="pi_2", latest_charge="ch_9", customer="cus_1")])
    assert one("SELECT latest_charge FROM payment_intents WHERE id = 'pi_2'") == ["ch_9"]


def test_refund_request_id_lifted_from_metadata():
    ingest_objects([refund(metadata={"payops_request_id": "42"})])
    assert one("SELECT payops_request_id FROM refunds") == [42]


def test_deleted_customer_event():
    ingest_objects([customer()], version=BASE_TS)
    ingest_objects([event(customer(), "customer.deleted", created=BASE_TS + 5)])
    assert one("SELECT deleted FROM customers") == [True]


def test_unknown_object_types_are_ignored_not_failed():
    s = ingest_objects([{"id": "in_1", "object": "invoice"}, charge()])
    assert s.ignored == 1
    assert one("SELECT count(*) FROM charges") == [1]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"object": "charge", "amount": 1}, "no string 'id'"),
        ({"id": "ch_x", "amount": 1}, "ch_x has no string 'object'"),
        (charge(id="ch_bad", amount="12.50"), "charge ch_bad: field 'amount' must be an integer"),
        (charge(id="ch_bad2", created="yesterday"), "charge ch_bad2: field 'created'"),
        (charge(id="ch_bad3", currency=5), "charge ch_bad3: field 'currency' must be a string"),
        ("ch_string", "expected a Stripe object"),
        ({"id": "evt_x", "object": "event", "type": "charge.updated", "created": 1}, "event evt_x has no data.object"),
    ],
)
def test_malformed_batch_is_rejected_whole(bad, message):
    good = [customer(), charge(id="ch_ok")]
    with pytest.raises(IngestError, match=message):
        ingest_objects(good + [bad])
    assert one("SELECT count(*) FROM customers") == [0]
    assert one("SELECT count(*) FROM charges") == [0]


def test_reingesting_same_objects_changes_nothing():
    objs = [customer(), payment_intent(), charge()]
    ingest_objects(objs, version=BASE_TS)
    before = query("SELECT * EXCLUDE (version, synced_at) FROM charges")
    s = ingest_objects(objs, version=BASE_TS + 1)
    assert s.new == 0 and s.updated == 0
    assert query("SELECT * EXCLUDE (version, synced_at) FROM charges").equals(before)


def test_large_batch_goes_in_at_once(db_path):
    objs = [charge(id=f"ch_{i}", amount=100 + i) for i in range(20_000)]
    s = ingest_objects(objs)
    assert s.tables["charges"]["new"] == 20_000
    assert one("SELECT sum(amount) FROM charges") == [sum(100 + i for i in range(20_000))]


def test_edge_values_behave_as_before():
    # values outside the plain forms go through the column-wise path: same results as ever
    objs = [charge(id="ch_f", amount=12.0, metadata={"x": 1.5e20, "y": "a\u001fb"}),
            refund(id="re_a", metadata={"payops_request_id": "abc"}),
            refund(id="re_b", metadata={"payops_request_id": 7}),
            payment_intent(id="pi_x", customer={"object": "customer", "id": "cus_9"}, latest_charge=None)]
    ingest_objects(objs)
    assert one("SELECT amount, metadata::VARCHAR FROM charges") == [12, orjson.dumps(objs[0]["metadata"]).decode()]
    assert query("SELECT payops_request_id FROM refunds ORDER BY id").payops_request_id.isna().tolist() == [True, False]
    assert one("SELECT payops_request_id FROM refunds WHERE id = 're_b'") == [7]
    assert one("SELECT customer, latest_charge FROM payment_intents") == ["cus_9", None]
    assert one("SELECT raw FROM charges") == [orjson.dumps(objs[0]).decode()]


def test_bool_in_integer_field_is_rejected():
    with pytest.raises(IngestError, match="charge ch_b: field 'amount' must be an integer, got True"):
        ingest_objects([charge(id="ch_b", amount=True)])
    assert one("SELECT count(*) FROM charges") == [0]
