"""`payops refunds ...` and `payops bookings ...`: the refund workflow from the terminal.

Bulk commands print one line per request and exit 1 if any request failed.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from payops import refunds as R
from payops.bookings import BOOKING_STATUSES
from payops.cli.core import COUNT, DB_OPTION, ROW_ID
from payops.errors import InvalidInput
from payops.money import format_amount
from payops.refunds.intake import CSV_REQUIRED
from payops.refunds.processing import AWAITING_REFUNDS, awaiting_message
from payops.text import plural, text_or

BADGES = {"URGENT": "🔥 URGENT", "HIGH": "⚠️ HIGH", "LARGE": "💰 LARGE"}


_LIST_ROW = "{:<8} {:<10} {:<20} {:>12}  {:>7}  {:<32} {:<28} {}"


def _age(hours: float) -> str:
    hours = max(0.0, float(hours))
    if hours >= 24:
        return f"{int(hours // 24)}d {int(hours % 24)}h"
    if hours >= 1:
        return f"{int(hours)}h {int((hours % 1) * 60)}m"
    return f"{int(hours * 60)}m"


_DONE = {"approve": "approved", "reject": "rejected", "approve by policy": "approved", "process": "processed",
         "reconcile": "reconciled"}


def _report(results, *, verb: str, done: str | None = None) -> None:
    """One line per distinct outcome (identical messages grouped, with their ids), a summary; exit 1 on a failure."""
    if not results:
        click.echo(f"Nothing to {verb}.")
        return
    groups: dict[tuple[bool, str], list[int]] = {}
    for r in results:
        groups.setdefault((bool(r.ok), _generic(r)), []).append(r.request_id)
    for (ok, message), ids in groups.items():
        mark = click.style("ok  ", fg="green") if ok else click.style("FAIL", fg="red")
        if len(ids) == 1:
            line = next(r.message for r in results if r.request_id == ids[0] and bool(r.ok) == ok)
            click.echo(f"{mark} {line}")
        else:
            click.echo(f"{mark} {message} ({plural(len(ids), 'request')}: {_ids(ids)})")
    failed = sum(not r.ok for r in results)
    summary = f"{len(results) - failed} {done or _DONE.get(verb, verb)}, {failed} failed"
    if failed:
        click.echo(summary + ".", err=True)
        raise click.exceptions.Exit(1)
    click.echo(summary + ".")


def _generic(r) -> str:
    """The message without the request's own id, so identical outcomes of many requests group."""
    message = re.sub(rf"^request {r.request_id}: ", "", str(r.message))
    return re.sub(rf"\brequest {r.request_id}\b", "request", message)


def _ids(ids: list[int], shown: int = 10) -> str:
    head = ", ".join(f"#{i}" for i in ids[:shown])
    return head + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def _acts(db, what: str):
    """Who changes things: the library here (single-user mode, or the writer), else payops serve
    with the user's hub token (team mode; PAYOPS_USER is ignored there)."""
    from payops.service.actions import refund_actions

    return refund_actions(db=db, what=f"`payops {what}`")


@click.group()
def refunds() -> None:
    """Refund requests: list the review queue, request, check, approve, reject, process."""


@refunds.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice([*R.STATUSES, "all"], case_sensitive=False),
              help="Only this status (repeatable; default PENDING; 'all' for every status).")
@click.option("--priority", "priorities", multiple=True,
              type=click.Choice([*R.PRIORITIES, "NORMAL"], case_sensitive=False),
              help="Only URGENT, HIGH, LARGE or NORMAL (repeatable).")
@click.option("--currency", help="Only this currency, e.g. usd.")
@click.option("--search", help="Customer id, email or name, payment intent or charge (substring).")
@click.option("--limit", type=COUNT, default=50, show_default=True, help="Rows per page.")
@click.option("--offset", type=click.IntRange(min=0, max=COUNT.max), default=0, show_default=True,
              help="Rows to skip.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@DB_OPTION
def list_cmd(statuses, priorities, currency, search, limit, offset, as_json, db) -> None:
    """The review queue in priority order: URGENT, HIGH, then others; LARGE first; oldest first."""
    status = None if any(s.lower() == "all" for s in statuses) else (tuple(statuses) or ("PENDING",))
    filters = dict(status=status, priority=list(priorities) or None, currency=currency, search=search, db=db)
    df = R.queue(limit=limit, offset=offset, **filters)
    total = R.queue_count(**filters)
    if as_json:
        click.echo(df.to_json(orient="records", date_format="iso", force_ascii=False))
        return
    if df.empty:
        click.echo("No refund requests match.")
        return
    click.echo(_LIST_ROW.format("id", "status", "priority", "amount", "age", "customer", "payment", "reason"))
    for r in df.itertuples(index=False):
        badges = " ".join(BADGES[p] for p in r.priorities)
        who = text_or(r.customer_email) or text_or(r.customer) or "-"
        payment = text_or(r.payment_intent) or text_or(r.charge) or "-"
        click.echo(_LIST_ROW.format(f"#{r.id}", r.status, badges, r.amount_display, _age(r.age_hours), who, payment,
                                    text_or(r.reason, "-")).rstrip())
        if r.status == "PROCESSING" and text_or(r.stripe_refund_status) in AWAITING_REFUNDS:
            # sent, and Stripe's refund is still on its way: say why it waits (as the review app does)
            click.echo(" " * 9 + awaiting_message(text_or(r.stripe_refund_id), r.stripe_refund_status))
    click.echo(f"showing {offset + 1}-{offset + len(df)} of {plural(total, 'request')}")


@refunds.command("request")
@click.argument("payment")
@click.option("--amount", help="Amount in major units, e.g. 12.50 (default: all still refundable).")
@click.option("--reason", required=True, type=click.Choice(R.REASONS),
              help="Stripe's refund reason.")
@click.option("--note", help="Why (free text).")
@DB_OPTION
def request_cmd(payment, amount, reason, note, db) -> None:
    """Open a refund request for a payment (pi_... or ch_...)."""
    req = _acts(db, "refunds request").request(payment, reason=reason, amount=amount, note=note)
    click.echo(f"Refund request {req['id']} opened: {format_amount(req['amount'], req['currency'])} "
               f"on {req['charge'] or req['payment_intent']} ({req['status']}).")


@refunds.command("check")
@click.argument("payment")
@click.option("--amount", help="Amount in major units to check (default: all still refundable).")
@DB_OPTION
def check_cmd(payment, amount, db) -> None:
    """Say whether a payment can be refunded, and every reason it cannot."""
    v = R.check(payment, R.parse_amount(payment, amount, db=db), db=db)
    p = v.payment
    cur = p["currency"]
    click.echo(f"{p['charge'] or p['payment_intent']} ({p['payment_intent'] or '-'}), customer {p['customer'] or '-'}, "
               f"status {p['status']}")
    figures = ", ".join(f"{label} {format_amount(p[key], cur)}" for label, key in (
        ("captured", "captured"), ("refunded", "refunded"), ("open requests", "open_requests"),
        ("refundable", "refundable")))
    click.echo(f"  {figures}")
    if p["booking_id"]:
        click.echo(f"  booking {p['booking_id']}: {p['booking_status'] or 'unknown'}")
    headline, reasons = R.eligibility_wording(v)
    click.secho(headline + (":" if reasons else "."), fg="green" if v.eligible else "red")
    for reason in reasons:
        click.echo(f"  - {reason}")
    if not v.eligible:
        raise click.exceptions.Exit(1)


@refunds.command("show")
@click.argument("request_id", type=ROW_ID)
@DB_OPTION
def show_cmd(request_id, db) -> None:
    """One request and its audit history."""
    r = R.get(request_id, db=db)
    click.echo(f"Refund request {r.id}: {r.status}, {format_amount(r.amount, r.currency)} on "
               f"{r.charge or r.payment_intent} ({r.reason}), requested by {r.requested_by}")
    for key in ("note", "first_approver", "decided_by", "decision_note", "second_approver", "stripe_refund_id",
                "failure_message"):
        if text_or(r[key]):
            click.echo(f"  {key}: {text_or(r[key])}")
    for h in R.history(request_id, db=db).itertuples(index=False):
        click.echo(f"  {h.at:%Y-%m-%d %H:%M:%S}  {text_or(h.actor):<10} {h.action:<32} {text_or(h.note)}".rstrip())


@refunds.command("approve")
@click.argument("ids", nargs=-1, type=ROW_ID, required=True)
@click.option("--note", help="A note kept with the decision.")
@DB_OPTION
def approve_cmd(ids, note, db) -> None:
    """Approve PENDING requests (a LARGE one needs a second approval by a senior); FAILED ones go back for a retry."""
    _report(_acts(db, "refunds approve").approve(list(ids), note), verb="approve")


@refunds.command("reject")
@click.argument("ids", nargs=-1, type=ROW_ID, required=True)
@click.option("--note", required=True, help="Why (required).")
@DB_OPTION
def reject_cmd(ids, note, db) -> None:
    """Reject PENDING requests; a note is required."""
    _report(_acts(db, "refunds reject").reject(list(ids), note), verb="reject")


@refunds.command("apply-policy")
@DB_OPTION
def apply_policy_cmd(db) -> None:
    """Auto-approve requests whose session was cancelled, a tutor no-show, or not yet held (under the cap)."""
    _report(_acts(db, "refunds apply-policy").apply_policy(), verb="approve by policy")


@refunds.command("process")
@click.option("--dry-run", is_flag=True, help="Only say what would be sent to Stripe.")
@click.option("--limit", type=COUNT, help="At most this many requests.")
@DB_OPTION
def process_cmd(dry_run, limit, db) -> None:
    """Send APPROVED requests to Stripe as refunds (idempotent; needs the processor role)."""
    _report(_acts(db, "refunds process").process(limit=limit, dry_run=dry_run), verb="process",
            done="would be sent" if dry_run else None)


@refunds.command("reconcile")
@click.option("--older-than", "older_than", type=click.IntRange(min=0, max=10**7), default=None,
              help="Only requests PROCESSING for more than this many minutes (default: all).")
@DB_OPTION
def reconcile_cmd(older_than, db) -> None:
    """Finish PROCESSING requests left by a crash: find their refund in Stripe or retry with the same key."""
    _report(_acts(db, "refunds reconcile").reconcile(older_than_minutes=older_than), verb="reconcile")


@refunds.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DB_OPTION
def import_cmd(file, db) -> None:
    """Open requests from a CSV: payment, reason, and optional amount (major units), note, requested_by."""
    acts = _acts(db, "refunds import")
    if acts.remote:  # the file is read here; the writer opens the requests as the hub user
        lines = acts.import_rows(_csv_rows(file))
    else:
        lines = [{"line": x.line, "payment": x.payment, "ok": x.ok, "message": x.message, "request": x.request}
                 for x in R.import_csv(file, user=acts.user, db=db)]
    for line in lines:
        req = line["request"]
        if req is not None:
            click.echo(f"{click.style('ok  ', fg='green')} line {line['line']}: request {req['id']} opened, "
                       f"{format_amount(req['amount'], req['currency'])} on {line['payment']}")
        else:
            click.echo(f"{click.style('FAIL', fg='red')} line {line['line']}: {line['message']}")
    failed = sum(not line["ok"] for line in lines)
    summary = f"{len(lines) - failed} opened, {failed} failed."
    if failed:
        click.echo(summary, err=True)
        raise click.exceptions.Exit(1)
    click.echo(summary)


def _csv_rows(file: Path) -> list[dict]:
    import csv
    import io

    try:
        reader = csv.DictReader(io.StringIO(file.read_text(encoding="utf-8-sig"), newline=""))
        rows = list(reader)
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}") from None
    if not all(c in (reader.fieldnames or []) for c in CSV_REQUIRED):
        raise InvalidInput(f"{file}: needs columns payment and reason (optional: amount, note, requested_by)")
    return rows


@click.group()
def bookings() -> None:
    """Tutoring-session bookings, whose status drives refund eligibility."""


@bookings.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DB_OPTION
def bookings_import(file, db) -> None:
    """Upsert bookings from a CSV (booking_id, payment_intent, customer, tutor_id, session_start, status)."""
    from payops.bookings import import_csv

    c = import_csv(file, db=db)
    click.echo(f"Imported {plural(c['rows'], 'booking')}: {c['new']} new, {c['updated']} updated, "
               f"{c['unchanged']} unchanged.")


@bookings.command("set-status")
@click.argument("booking_id")
@click.argument("status", type=click.Choice(BOOKING_STATUSES))
@click.option("--note", help="Why (kept in the audit trail).")
@DB_OPTION
def bookings_set_status(booking_id, status, note, db) -> None:
    """Change one booking's status (scheduled, completed, cancelled, no_show); audited."""
    b = _acts(db, "bookings set-status").set_booking_status(booking_id, status, note=note)
    click.echo(f"Booking {b['booking_id']} is now {b['status']}.")


def register(cli: click.Group) -> None:
    cli.add_command(refunds)
    cli.add_command(bookings)
