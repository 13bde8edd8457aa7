"""The analysts' query sandbox: one statement, read-only, no other file (issue 11, item 5)."""

from __future__ import annotations

from pathlib import Path

import factories as f
import pandas as pd
import pytest
from click.testing import CliRunner

import payops
from payops.cli import cli
from payops.db import connect
from payops.errors import DatabaseError, QueryRefused
from payops.ingest import ingest_objects


@pytest.fixture
def shop(db_path: Path) -> Path:
    """Two customers and a PENDING refund request of 5.00 (id 43, as in the issue)."""
    ingest_objects([f.customer("cus_1"), f.customer("cus_2")])
    with connect() as con:
        con.execute(
            "INSERT INTO refund_requests (id, payment_intent, charge, customer, amount, currency, reason, status,"
            " requested_by, requested_at, attempts, retries, updated_at) VALUES (43, 'pi_1', 'ch_1', 'cus_1', 500,"
            " 'usd', 'duplicate', 'PENDING', 'vic', now(), 0, 0, now())")
    return db_path


def counts() -> tuple[int, str, int]:
    with connect() as con:
        customers = con.execute("SELECT count(*) FROM customers").fetchone()[0]
        status, amount = con.execute("SELECT status, amount FROM refund_requests WHERE id = 43").fetchone()
    return customers, status, amount


def test_one_read_runs_and_returns_a_dataframe(shop):
    df = payops.query("SELECT count(*) AS n FROM customers")
    assert isinstance(df, pd.DataFrame) and df["n"].tolist() == [2]
    assert payops.query("SELECT ?::INTEGER + 1 AS x", [41])["x"].tolist() == [42]
    # the readers an analyst uses every day are reads too
    for sql in ("DESCRIBE customers", "SHOW TABLES", "FROM customers", "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
                "EXPLAIN SELECT * FROM customers", "SELECT 1;"):
        payops.query(sql)


def test_a_second_statement_is_refused_not_ignored(shop):
    with pytest.raises(QueryRefused, match="holds 3 statements"):
        payops.query("SELECT 1; DELETE FROM customers; SELECT 2")
    assert counts()[0] == 2
    with pytest.raises(QueryRefused, match="holds 2 statements"):
        payops.query("SELECT 1; SELECT 2")


@pytest.mark.parametrize("sql", [
    "UPDATE refund_requests SET status='APPROVED', amount=2500 WHERE id=43",
    "DELETE FROM customers",
    "INSERT INTO customers (id) VALUES ('cus_x')",
    "DROP TABLE customers",
    "CREATE TABLE x AS SELECT 1",
    "CHECKPOINT",
    "SET lock_configuration = false",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "PRAGMA enable_profiling",
])
def test_writes_and_settings_are_refused(shop, sql):
    with pytest.raises(QueryRefused, match="not allowed"):
        payops.query(sql)
    assert counts() == (2, "PENDING", 500)


@pytest.mark.parametrize("sql", [
    "COPY customers TO '{out}'",
    "COPY (SELECT * FROM customers) TO '{out}' (FORMAT csv)",
    "EXPORT DATABASE '{folder}'",
    "ATTACH '{other}' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
])
def test_file_and_extension_statements_are_refused(shop, tmp_path, sql):
    sql = sql.format(out=tmp_path / "out.csv", folder=tmp_path / "export", other=tmp_path / "other.duckdb")
    with pytest.raises(QueryRefused, match="not allowed"):
        payops.query(sql)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "export").exists()
    assert not (tmp_path / "other.duckdb").exists()


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM read_json_auto('/etc/passwd')",
    "SELECT * FROM read_parquet('{parquet}')",
    "SELECT * FROM read_csv('{csv}')",
    "SELECT * FROM '{csv}'",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM parquet_metadata('/etc/passwd')",
])
def test_reading_other_files_is_refused(shop, tmp_path, sql):
    # files next to the database, which the analyst's process could read itself
    pd.DataFrame({"secret": ["s3cr3t"]}).to_parquet(tmp_path / "other.parquet")
    (tmp_path / "other.csv").write_text("secret\ns3cr3t\n")
    sql = sql.format(parquet=tmp_path / "other.parquet", csv=tmp_path / "other.csv")
    with pytest.raises(DatabaseError) as info:
        payops.query(sql)
    # refused by the sandbox or unknown as a table: either way no byte of the file came back
    assert "disabled by configuration" in info.value.message or "does not exist" in info.value.message


def test_a_select_cannot_smuggle_a_write(shop):
    # query() the table function takes one SELECT only; the connection is read-only anyway
    with pytest.raises(DatabaseError):
        payops.query("SELECT * FROM query('DELETE FROM customers')")
    assert counts() == (2, "PENDING", 500)


def test_python_variables_are_not_scanned(shop):
    secret_frame = pd.DataFrame({"x": [1]})  # noqa: F841 - a replacement scan would find it by name
    with pytest.raises(DatabaseError):
        payops.query("SELECT * FROM secret_frame")


def test_cli_query_refuses_in_one_line(shop):
    runner = CliRunner()
    out = runner.invoke(cli, ["query", "SELECT 1; DELETE FROM customers; SELECT 2"], catch_exceptions=False)
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        "Error: query refused: it holds 3 statements; payops.query runs exactly one (nothing was run)"]
    out = runner.invoke(cli, ["query", "UPDATE refund_requests SET status='APPROVED', amount=2500 WHERE id=43"],
                        catch_exceptions=False)
    assert out.exit_code == 2 and "UPDATE statements are not allowed" in out.output
    out = runner.invoke(cli, ["query", "SELECT * FROM read_csv('/etc/passwd')"], catch_exceptions=False)
    assert out.exit_code == 1 and "root:" not in out.output
    assert counts() == (2, "PENDING", 500)
    out = runner.invoke(cli, ["query", "SELECT count(*) AS n FROM customers", "--format", "csv"],
                        catch_exceptions=False)
    assert out.exit_code == 0 and out.output.splitlines() == ["n", "2"]


def test_an_empty_query_is_refused(shop):
    for sql in ("", "   ", ";"):
        with pytest.raises(QueryRefused):
            payops.query(sql)


def test_the_query_connection_is_read_only_and_closed(shop):
    payops.query("SELECT 1")
    # closed: a writer opens the file at once
    with connect() as con:
        con.execute("UPDATE customers SET name = 'x' WHERE id = 'cus_1'")
