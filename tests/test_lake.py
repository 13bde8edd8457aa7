"""The Parquet lake: export, readers, incremental runs, kill -9 safety, erasure, masking."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pytest
from click.testing import CliRunner
from dbread import rows as db_rows

from payops import lake
from payops.cli import cli
from payops.demo import build_demo
from payops.errors import InvalidInput
from payops.lake import store

AS_OF = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 13, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    """A small demo database, built once; tests that change it work on a copy."""
    path = tmp_path_factory.mktemp("lake-demo") / "demo.duckdb"
    build_demo(path, seed=7, customers=60, days=20, as_of=AS_OF, progress=False)
    return path


@pytest.fixture
def db(demo_db, tmp_path) -> Path:
    path = tmp_path / "payops.duckdb"
    shutil.copy(demo_db, path)
    return path


def db_write(db: Path, sql: str, params=None) -> None:
    con = duckdb.connect(str(db))
    try:
        con.execute(sql, params)
    finally:
        con.close()


def db_tables(db: Path) -> dict[str, list[str]]:
    """table -> columns, in the database's order (what the lake must hold; views are queries, not data)."""
    out: dict[str, list[str]] = {}
    for table, column in db_rows(db, "SELECT c.table_name, c.column_name FROM information_schema.columns c "
                                     "JOIN information_schema.tables t USING (table_schema, table_name) "
                                     "WHERE c.table_schema = 'main' AND t.table_type = 'BASE TABLE' "
                                     "ORDER BY c.table_name, c.ordinal_position"):
        out.setdefault(table, []).append(column)
    out.pop("schema_migrations")
    return out


def lake_con(folder: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    lake.duckdb_views(con, folder)
    return con


def tree(folder: Path) -> dict[str, str]:
    """Every file of the lake (but the lock) and its SHA-256: two equal trees are the same lake."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def key_of(db: Path, table: str) -> str:
    """ORDER BY text: the primary key, or every column for a table without one."""
    key = db_rows(db, "SELECT constraint_column_names FROM duckdb_constraints() WHERE table_name = ? "
                      "AND constraint_type = 'PRIMARY KEY'", [table])
    return ", ".join(f'"{k}"' for k in key[0][0]) if key else "ALL"


# =========================================================================== export and readers
def test_export_holds_every_table_row_for_row_for_duckdb_and_pyarrow(db, tmp_path):
    folder = tmp_path / "lake"
    result = lake.export(folder, db=db, now=NOW)
    assert result.changed and result.version == 1
    doc = lake.manifest(folder)
    tables = db_tables(db)
    assert set(doc["tables"]) == set(tables)
    assert doc["schema_version"] == db_rows(db, "SELECT max(version) FROM schema_migrations")[0][0]
    assert doc["exported_at"] == "2026-11-20T13:00:00Z" and doc["format"] == lake.FORMAT
    con = lake_con(folder)
    for table, columns in tables.items():
        cols = ", ".join(f'"{c}"' for c in columns)
        order = key_of(db, table)
        want = db_rows(db, f"SELECT {cols} FROM {table} ORDER BY {order}")
        assert doc["tables"][table]["rows"] == len(want), table
        assert con.execute(f"SELECT {cols} FROM {table} ORDER BY {order}").fetchall() == want, table
        # pyarrow, through the manifest: the same rows (partition columns come back as text)
        frame = lake.read(folder, table).to_pandas()
        assert len(frame) == len(want) and set(columns) <= set(frame.columns), table
    assert lake.verify(folder) == []


def test_the_lake_reads_as_is_without_the_manifest(db, tmp_path):
    folder = tmp_path / "lake"
    lake.export(folder, db=db)
    n = db_rows(db, "SELECT count(*), sum(amount) FROM charges")[0]
    glob = str(folder / "charges" / "**" / "*.parquet")
    got = duckdb.connect().execute(
        f"SELECT count(*), sum(amount) FROM read_parquet('{glob}', hive_partitioning = true)").fetchone()
    assert got == n
    frame = pd.read_parquet(folder / "charges")  # pyarrow's own Hive discovery
    assert len(frame) == n[0] and frame["amount"].sum() == n[1]
    assert set(frame["currency"].astype(str)) == {r[0] for r in db_rows(db, "SELECT DISTINCT currency FROM charges")}


def test_layout_partitions_by_currency_and_month_with_checksums(db, tmp_path):
    folder = tmp_path / "lake"
    lake.export(folder, db=db)
    doc = lake.manifest(folder)
    charges = doc["tables"]["charges"]
    assert charges["partition_by"] == ["currency", "month"] and charges["time_column"] == "created"
    want = {f"currency={c}/month={m}": n for c, m, n in db_rows(
        db, "SELECT currency, strftime(created, '%Y-%m'), count(*) FROM charges GROUP BY ALL")}
    assert {k: p["rows"] for k, p in charges["partitions"].items()} == want
    for folder_name, part in charges["partitions"].items():
        for f in part["files"]:
            assert f["path"].startswith(f"charges/{folder_name}/part-") and (folder / f["path"]).is_file()
    assert doc["tables"]["customers"]["partition_by"] == ["month"]          # no currency column
    assert doc["tables"]["sync_state"]["partition_by"] == []                # no time column
    # an empty table still has one file, so every reader knows its columns
    empty = doc["tables"]["daily_metrics"]
    assert empty["rows"] == 0 and len(empty["partitions"]) == 1
    con = lake_con(folder)
    assert con.execute("SELECT count(*) FROM daily_metrics").fetchone() == (0,)
    assert set(db_tables(db)["daily_metrics"]) <= {r[0] for r in con.execute("DESCRIBE daily_metrics").fetchall()}
    # the table checksum combines the partitions'; the partitions' are recomputed from the files
    x = 0
    for part in charges["partitions"].values():
        x ^= int(part["checksum"], 16)
    assert f"{x:016x}" == charges["checksum"]


def test_refuses_a_folder_that_is_not_a_lake(db, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(lake.LakeError, match="not empty"):
        lake.export(tmp_path, db=db)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_one_writer_at_a_time(db, tmp_path, monkeypatch):
    monkeypatch.setenv("PAYOPS_DB_TIMEOUT", "0.3")
    folder = tmp_path / "lake"
    folder.mkdir()
    with open(folder / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(lake.LakeBusy):
            lake.export(folder, db=db)
    assert lake.export(folder, db=db).changed


# =========================================================================== incremental
def test_second_run_rewrites_only_touched_partitions(db, tmp_path):
    folder = tmp_path / "lake"
    lake.export(folder, db=db, now=NOW)
    before = lake.manifest(folder)
    files_before = tree(folder)
    cid, cur, month = db_rows(db, "SELECT id, currency, strftime(created, '%Y-%m') FROM charges "
                                  "WHERE currency <> 'usd' ORDER BY id LIMIT 1")[0]
    db_write(db, "UPDATE charges SET status = 'failed', version = version + 1 WHERE id = ?", [cid])
    touched = f"currency={cur}/month={month}"

    r = lake.export(folder, db=db, now=NOW)
    assert r.changed and r.version == 2
    assert {t: e.written for t, e in r.tables.items() if e.written} == {"charges": 1}
    after = lake.manifest(folder)
    for table, entry in after["tables"].items():
        for name, part in entry["partitions"].items():
            if (table, name) == ("charges", touched):
                assert part["files"] != before["tables"][table]["partitions"][name]["files"]
                assert part["checksum"] != before["tables"][table]["partitions"][name]["checksum"]
            else:
                assert part == before["tables"][table]["partitions"][name], (table, name)
    # the replaced file is gone, every other file is untouched
    old_file = before["tables"]["charges"]["partitions"][touched]["files"][0]["path"]
    assert not (folder / old_file).exists()
    files_after = tree(folder)
    assert {k: v for k, v in files_before.items() if k != old_file and k != "manifest.json"} == \
        {k: v for k, v in files_after.items() if k in files_before and k != "manifest.json"}
    con = lake_con(folder)
    assert con.execute("SELECT status FROM charges WHERE id = ?", [cid]).fetchone() == ("failed",)

    again = lake.export(folder, db=db)
    assert not again.changed and again.version == 2 and again.written == 0
    assert tree(folder) == files_after


def test_partitions_whose_rows_are_gone_leave_the_lake(db, tmp_path):
    folder = tmp_path / "lake"
    lake.export(folder, db=db)
    cur, month = db_rows(db, "SELECT currency, strftime(created, '%Y-%m') FROM refunds ORDER BY id LIMIT 1")[0]
    db_write(db, "DELETE FROM refunds WHERE currency = ? AND strftime(created, '%Y-%m') = ?", [cur, month])
    r = lake.export(folder, db=db)
    assert r.tables["refunds"].removed == 1 and r.tables["refunds"].written == 0
    assert f"currency={cur}/month={month}" not in lake.manifest(folder)["tables"]["refunds"]["partitions"]
    assert not (folder / "refunds" / f"currency={cur}" / f"month={month}").exists()
    assert lake.verify(folder) == []


# =========================================================================== kill -9
CHILD = """
import os, signal, sys
from datetime import datetime
from payops import lake
from payops.lake import store

folder, db, kind, target, now = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
calls = {"publish": 0, "remove": 0}
real = {"publish": store._publish, "remove": store._remove}

def step(name):
    def run(*args):
        calls[name] += 1
        if name == kind and calls[name] == target:
            os.kill(os.getpid(), signal.SIGKILL)
        return real[name](*args)
    return run

store._publish, store._remove = step("publish"), step("remove")
lake.export(folder, db=db, now=datetime.fromisoformat(now))
"""


def test_kill_9_at_any_step_leaves_the_previous_lake_and_a_rerun_finishes_it(db, tmp_path, monkeypatch):
    first = tmp_path / "v1"
    lake.export(first, db=db, now=NOW)
    v1_manifest, v1_tree = lake.manifest(first), tree(first)
    # touch two tables: an updated charge, a new refund request text
    db_write(db, "UPDATE charges SET amount_refunded = amount_captured, refunded = true, version = version + 1 "
                 "WHERE id = (SELECT min(id) FROM charges WHERE status = 'succeeded')")
    db_write(db, "UPDATE refund_requests SET note = 'checked twice' WHERE id = (SELECT min(id) FROM refund_requests)")

    reference = tmp_path / "reference"
    shutil.copytree(first, reference)
    counts = {"publish": 0, "remove": 0}
    real_publish, real_remove = store._publish, store._remove

    def publish(src, dst):
        counts["publish"] += 1
        real_publish(src, dst)

    def remove(path):
        counts["remove"] += 1
        real_remove(path)

    monkeypatch.setattr(store, "_publish", publish)
    monkeypatch.setattr(store, "_remove", remove)
    lake.export(reference, db=db, now=NOW)
    monkeypatch.undo()
    expected = tree(reference)
    n_publish, n_remove = counts["publish"], counts["remove"]
    assert n_publish >= 3 and n_remove >= 2  # two data files and the manifest; two old files deleted

    # first data file, a middle one, the manifest swap (the last publish), and garbage collection
    points = [("publish", 1), ("publish", max(2, n_publish // 2)), ("publish", n_publish), ("remove", 1)]
    for kind, target in points:
        folder = tmp_path / f"killed-{kind}-{target}"
        shutil.copytree(first, folder)
        child = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(db), kind, str(target), NOW.isoformat()],
                               capture_output=True, text=True, timeout=300)
        assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
        doc = lake.manifest(folder)
        swapped = kind == "remove"
        assert doc["version"] == (2 if swapped else 1), (kind, target)
        if not swapped:
            assert doc == v1_manifest  # readers still see the previous lake, whole
            assert {k: v for k, v in tree(folder).items() if k in v1_tree} == v1_tree
        assert lake.verify(folder) == [], (kind, target)

        lake.export(folder, db=db, now=NOW)
        assert tree(folder) == expected, (kind, target)


# =========================================================================== personal data
def test_mask_pii_follows_the_exports_rules(db, tmp_path):
    from payops.maintenance import mask_pii

    folder = tmp_path / "lake"
    r = lake.export(folder, db=db, mask_pii=True)
    assert lake.manifest(folder)["mask_pii"] is True
    con = lake_con(folder)
    emails = [e for (e,) in db_rows(db, "SELECT email FROM customers WHERE email IS NOT NULL")]
    assert emails
    assert con.execute("SELECT DISTINCT email FROM customers WHERE email IS NOT NULL").fetchall() == [("***",)]
    for table in ("customers", "charges", "payment_intents"):
        text = " ".join(str(v) for row in con.execute(f"SELECT * FROM {table}").fetchall() for v in row)
        assert not any(e in text for e in emails), table
    # the same function as `payops export --mask-pii`, row for row; amounts and ids untouched
    want = mask_pii(pd.DataFrame(db_rows(db, "SELECT id, email, name, phone FROM customers ORDER BY id"),
                                 columns=["id", "email", "name", "phone"]))
    got = con.execute("SELECT id, email, name, phone FROM customers ORDER BY id").df()
    assert got.astype(object).where(got.notna(), None).values.tolist() == \
        want.astype(object).where(want.notna(), None).values.tolist()
    assert con.execute("SELECT sum(amount), count(DISTINCT id) FROM charges").fetchone() == \
        db_rows(db, "SELECT sum(amount), count(DISTINCT id) FROM charges")[0]
    # switching masking off rewrites everything
    plain = lake.export(folder, db=db)
    assert plain.written == plain.partitions == r.partitions
    assert lake_con(folder).execute("SELECT count(*) FROM customers WHERE email = '***'").fetchone() == (0,)


def test_erase_customer_reaches_the_lake(db, tmp_path):
    folder = tmp_path / "lake"
    lake.export(folder, db=db)
    customer, email = db_rows(db, "SELECT c.id, c.email FROM customers c JOIN charges ch ON ch.customer = c.id "
                                  "GROUP BY ALL ORDER BY count(*) DESC, c.id LIMIT 1")[0]
    con = lake_con(folder)
    assert con.execute("SELECT count(*) FROM charges WHERE CAST(raw AS VARCHAR) ILIKE ?", [f"%{email}%"]).fetchone()[0]
    totals = con.execute("SELECT sum(amount), count(*) FROM charges").fetchone()

    dry = CliRunner().invoke(cli, ["erase-customer", customer, "--dry-run", "--lake", str(folder), "--db", str(db),
                                   "--exports", str(tmp_path / "none")], catch_exceptions=False)
    assert dry.exit_code == 0 and "would be rewritten" in dry.output
    assert lake.manifest(folder)["version"] == 1

    out = CliRunner().invoke(cli, ["erase-customer", customer, "--lake", str(folder), "--db", str(db),
                                   "--exports", str(tmp_path / "none")], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert f"lake {folder}:" in out.output and "manifest version 2" in out.output
    con = lake_con(folder)
    assert con.execute("SELECT email, name, phone FROM customers WHERE id = ?", [customer]).fetchall() == \
        [(None, None, None)]
    for table in lake.tables(folder):
        if table == "audit_log":  # append-only in the database too: left as it is
            continue
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        hit = " OR ".join(f"CAST(\"{c}\" AS VARCHAR) ILIKE ?" for c in cols)
        assert con.execute(f"SELECT count(*) FROM {table} WHERE {hit}", [f"%{email}%"] * len(cols)).fetchone() \
            == (0,), table
    assert con.execute("SELECT sum(amount), count(*) FROM charges").fetchone() == totals
    assert lake.verify(folder) == []
    # the lake now holds exactly what the erased database holds: the next export only adds
    # the erasure's own audit row
    r = lake.export(folder, db=db)
    assert {t for t, e in r.tables.items() if e.written} == {"audit_log"}


def test_erase_refuses_what_is_not_a_customer_id(tmp_path):
    with pytest.raises(InvalidInput, match="not a customer id"):
        lake.erase_customer(tmp_path, "ch_123")


# =========================================================================== results and CLI
def test_results_are_stored_merged_by_day_and_read_through_the_manifest(db, tmp_path):
    import pyarrow as pa

    folder = tmp_path / "lake"
    lake.export(folder, db=db)
    days = [date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)]
    rows = pa.table({"day": days, "currency": ["eur", "eur", "usd"], "attempts": [1, 2, 3]})
    v = lake.write_result(folder, "daily_metrics", rows, replace=(days[0], days[-1]), meta={"engine": "test"})
    newer = pa.table({"day": [days[1]], "currency": ["eur"], "attempts": [20]})
    v2 = lake.write_result(folder, "daily_metrics", newer, replace=(days[1], days[1]))
    assert v2 == v + 1
    got = lake.read(folder, "results/daily_metrics").to_pandas().sort_values(["day", "currency"])
    assert got["attempts"].tolist() == [1, 20, 3]
    entry = lake.manifest(folder)["results"]["daily_metrics"]
    assert entry["engine"] == "test" and entry["partition_by"] == ["currency", "month"]
    assert all(f["path"].startswith("results/daily_metrics/") for p in entry["partitions"].values()
               for f in p["files"])
    con = lake_con(folder)
    assert con.execute("SELECT sum(attempts) FROM results.daily_metrics").fetchone() == (24,)
    assert con.execute("SELECT count(*) FROM daily_metrics").fetchone() == (0,)  # the exported table
    assert lake.verify(folder) == []
    # a later export keeps the results
    db_write(db, "UPDATE charges SET version = version + 1 WHERE id = (SELECT min(id) FROM charges)")
    lake.export(folder, db=db)
    assert lake.read(folder, "results/daily_metrics").num_rows == 3


def test_cli_export_show_verify(db, tmp_path):
    folder = tmp_path / "lake"
    run = CliRunner()
    out = run.invoke(cli, ["lake", "export", "--to", str(folder), "--db", str(db), "--no-progress"],
                     catch_exceptions=False)
    assert out.exit_code == 0 and "manifest version 1" in out.output and "charges" in out.output
    out = run.invoke(cli, ["lake", "export", "--to", str(folder), "--db", str(db)], catch_exceptions=False)
    assert out.exit_code == 0 and "unchanged, still version 1" in out.output
    out = run.invoke(cli, ["lake", "show", str(folder)], catch_exceptions=False)
    assert out.exit_code == 0 and "charges" in out.output and "(currency, month)" in out.output
    assert run.invoke(cli, ["lake", "verify", str(folder)], catch_exceptions=False).exit_code == 0
    victim = lake.files(folder, "charges")[0]
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    out = run.invoke(cli, ["lake", "verify", str(folder)], catch_exceptions=False)
    assert out.exit_code == 1 and victim.name in out.output and "SHA-256" in out.output
    out = run.invoke(cli, ["lake", "show", str(tmp_path / "nowhere")], catch_exceptions=False)
    assert out.exit_code == 1 and "no payops lake" in out.output
    out = run.invoke(cli, ["lake", "export", "--to", str(tmp_path / "l2"), "--db", str(tmp_path / "missing.duckdb")],
                     catch_exceptions=False)
    assert out.exit_code == 1 and len(out.output.strip().splitlines()) == 1 and "missing.duckdb" in out.output
    assert not (tmp_path / "missing.duckdb").exists()


def test_pyarrow_dataset_filters_by_partition(db, tmp_path):
    folder = tmp_path / "lake"
    lake.export(folder, db=db)
    data = lake.dataset(folder, "charges")
    eur = data.to_table(filter=ds.field("currency") == "eur")
    assert eur.num_rows == db_rows(db, "SELECT count(*) FROM charges WHERE currency = 'eur'")[0][0] > 0
    assert os.path.commonpath(data.files) == str(folder / "charges")
