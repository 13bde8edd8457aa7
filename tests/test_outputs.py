"""Injection-proof outputs: Stripe links, escaped HTML (Styler), neutralised CSV, charts without mathtext.

Hostile names and ids go through a real DuckDB file (ingest -> read model -> Styler / CSV),
and the HTML is parsed, not searched for one string: no element or attribute may come from
the data.
"""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser

import factories as F
import matplotlib
import pandas as pd
import pytest
from click.testing import CliRunner

from payops import charts, exports, insights, outputs
from payops.cli import cli
from payops.errors import InvalidInput
from payops.ingest import ingest_objects
from payops.ui import display as D

XSS_NAME = "<img src=x onerror=alert(1)>"
BREAKOUT_ID = 'pi_1"><script>alert(1)</script>'
MATH_NAME = r"Ana $\frac{1}{$ Lee"  # not valid mathtext: drawing it as math raises


class Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def assert_inert(page: str) -> None:
    """No script, image, handler or foreign link in ``page``: only what payops itself builds."""
    for tag, attrs in tags_of(page):
        assert tag not in {"script", "img", "iframe", "svg", "object"}, (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if "href" in attrs:
            assert outputs.STRIPE_ID.fullmatch(attrs["href"].rsplit("/", 1)[-1]), attrs
            assert attrs["href"].startswith("https://dashboard.stripe.com/"), attrs


@pytest.mark.parametrize("value, ok", [
    ("pi_3NxAbc", True), ("ch_1", True), ("cus_9Z", True), ("re_1", True), ("dp_1", True), ("po_1", True),
    ("tr_1", True), ("fee_1", True), ("txn_1", True), ("evt_1", True), ("py_1", True),
    (BREAKOUT_ID, False), ("javascript:alert(1)", False), ("pi_", False), ("pi_1 ", False), ("pi_1\n", False),
    ("bk_1", False), ("pi_1/../../x", False), ("PI_1", False), (None, False), (float("nan"), False), (12, False),
])
def test_only_known_stripe_ids_reach_a_url(value, ok):
    assert (outputs.stripe_id(value) is not None) is ok
    if ok:
        assert outputs.dashboard_url(value).endswith("/" + value)
    else:
        with pytest.raises(InvalidInput):
            outputs.dashboard_url(value)
        assert "href" not in outputs.html_link(value)


def test_link_never_puts_an_id_into_href_unescaped():
    page = D.link(BREAKOUT_ID, True)
    assert "<script" not in page and "href" not in page
    assert page == "pi_1&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert_inert(D.link("cus_1", False, text=XSS_NAME))


@pytest.fixture
def hostile_db(db_path):
    ingest_objects([
        F.customer("cus_evil", name=XSS_NAME, email='"><svg onload=alert(2)>@example.com'),
        F.customer("cus_math", name=MATH_NAME, email="ana@example.com"),
        F.payment_intent(BREAKOUT_ID, customer="cus_evil", amount=1312),
        F.charge("ch_evil", payment_intent=BREAKOUT_ID, customer="cus_evil", amount=1312, amount_captured=1312,
                 failure_message="<b onmouseover=alert(3)>declined</b>"),
        F.charge("ch_math", customer="cus_math", amount=999, amount_captured=999, balance_transaction=None),
    ], db=db_path)
    return db_path


def test_styled_escapes_every_cell_and_header_from_a_real_database(hostile_db):
    rows = D.recent_payments(10, db=hostile_db)
    assert XSS_NAME not in rows.to_string()  # the name is not in the payments list: add the customers
    people = insights.customer_insights(db=hostile_db)
    rows = rows.merge(people[["customer", "name"]], on="customer", how="left")
    rows[XSS_NAME] = "header from a query"
    page = D.styled(rows, money_columns=["amount"], link_columns=["payment_intent", "charge", "customer"],
                    hide=["livemode"], caption=XSS_NAME).to_html()
    assert_inert(page)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # shown, as text
    assert "&lt;b onmouseover=alert(3)&gt;declined&lt;/b&gt;" in page
    assert 'href="https://dashboard.stripe.com/test/payments/ch_evil"' in page
    assert 'href="https://dashboard.stripe.com/test/customers/cus_evil"' in page
    assert "pi_1&quot;&gt;&lt;script&gt;" in page  # the bad id is text, not a link
    assert "nan" not in page.lower().replace("nanum", "") and "&lt;NA&gt;" not in page


def test_customer_insights_link_only_well_formed_ids(hostile_db):
    ingest_objects([F.customer('cus_x"><b>', name="x"),
                    F.charge("ch_x", customer='cus_x"><b>', amount=5, amount_captured=5, balance_transaction=None)],
                   db=hostile_db)
    urls = insights.customer_insights(db=hostile_db).set_index("customer")["dashboard_url"]
    assert urls["cus_evil"] == "https://dashboard.stripe.com/test/customers/cus_evil"
    assert pd.isna(urls['cus_x"><b>'])


TRIGGERS = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "-2+3+cmd|' /C calc'!A0", "+44 20 7946 0958",
            "=HYPERLINK(\"http://evil\")", "＝1+1"]


@pytest.mark.parametrize("value", TRIGGERS)
def test_csv_cell_neutralises_every_formula_trigger(value):
    assert outputs.csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["Ana", "13.12", "-13.12", "1000", "a=b", "", 5, -5, 1.5, None])
def test_csv_cell_leaves_plain_text_and_numbers(value):
    assert outputs.csv_cell(value) == value


def test_exports_neutralise_text_and_keep_numbers(db_path, tmp_path):
    objs = [F.customer(f"cus_{i}", name=name, email=f"c{i}@example.com") for i, name in enumerate(TRIGGERS)]
    objs += [F.charge(f"ch_{i}", customer=f"cus_{i}", amount=1000 + i, amount_captured=1000 + i,
                      balance_transaction=None) for i in range(len(TRIGGERS))]
    objs.append(F.refund("re_1", charge="ch_0", amount=100))
    ingest_objects(objs, db=db_path)
    path = exports.export("customers", "csv", db=db_path, out=tmp_path / "c.csv")
    rows = list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))
    assert sorted(r["name"] for r in rows) == sorted("'" + t for t in TRIGGERS)
    by_id = {r["customer"]: r for r in rows}
    assert by_id["cus_3"]["spend"] == "1003" and by_id["cus_3"]["spend_decimal"] == "10.03"
    pay = exports.export("payments", "csv", db=db_path, out=tmp_path / "p.csv")
    rows = list(csv.DictReader(io.StringIO(pay.read_bytes().decode("utf-8-sig"), newline="")))
    assert all(not r["net_decimal"].startswith("'") for r in rows)


def test_query_csv_neutralises_text_cells_and_headers(db_path):
    ingest_objects([F.customer("cus_1", name="=cmd|' /C calc'!A0"), F.customer("cus_2", name="-1+1")], db=db_path)
    result = CliRunner().invoke(cli, ["query", "--db", str(db_path), "--format", "csv",
                                      "SELECT name, -5 AS n, 'x' AS \"=evil\" FROM customers ORDER BY id"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows == [["name", "n", "'=evil"], ["'=cmd|' /C calc'!A0", "-5", "x"], ["'-1+1", "-5", "x"]]


def _draw(fig) -> None:
    fig.savefig(io.BytesIO(), format="png")


def test_chart_text_is_never_mathtext(hostile_db):
    assert matplotlib.rcParams["text.parse_math"] is False
    top = insights.customer_insights(db=hostile_db)
    top = top[top["spend"] > 0]
    assert MATH_NAME in set(top["name"])
    fig = charts.top_customers(top)
    _draw(fig)  # mathtext would raise on "$\frac{1}{$"
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert MATH_NAME in labels
    matplotlib.rcParams["text.parse_math"] = True  # something in the kernel turned it back on
    ax = D.chart_top_customers(top, currency="usd")
    _draw(ax.figure)
    assert matplotlib.rcParams["text.parse_math"] is False


def test_styled_output_for_a_frame_with_missing_values_has_no_nan():
    df = pd.DataFrame({"id": ["pi_1", None], "note": [None, "ok"], "n": pd.array([1, None], dtype="Int64"),
                       "amount": [100, None], "currency": ["usd", "usd"]})
    page = D.styled(df, money_columns=["amount"], link_columns=["id"]).to_html()
    assert "nan" not in page.lower() and "&lt;NA&gt;" not in page and "None" not in page
