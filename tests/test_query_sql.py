"""The SQL sandbox (warden.collector.query.sql) on a real store and a real alert store: what it
allows, what it refuses (and says so), its limits, and that the store is unchanged afterwards."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from warden.collector.alerts.store import AlertStore
from warden.collector.query import QueryError
from warden.collector.query import sql as qsql
from warden.collector.query.views import VIEWS
from warden.collector.records import Batch, Event, InventorySection
from warden.collector.store.sqlite import SqliteStore

S = 1_000_000_000


@pytest.fixture
def paths(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    db, alerts_db = tmp_path / "warden.db", tmp_path / "alerts.db"
    store = SqliteStore(db)
    store.add_token("tok1", b"secret-hash", {}, 1, 2)
    for i in range(30):
        host = f"h{i:02d}"
        store.enroll_host(host, host, {"room": "AB"[i % 2]}, f"{i:04x}", 1, 2, 1)
        pkgs = [{"name": f"p{j:02d}", "version": f"1.{j}-{i % 3}", "arch": "amd64"} for j in range(40)]
        store.commit_batches([Batch(host, "sp", 1, 3, [
            InventorySection("packages", 10 * S, {"manager": "dpkg", "full": True, "content_hash": host,
                                                  "count": 40, "packages": pkgs}),
            InventorySection("updates", 10 * S, {"manager": "dpkg", "pending": [
                {"name": "p01", "current_version": "1.1-0", "new_version": "1.2-0", "arch": "amd64",
                 "security": True, "origin": "sec"}], "pending_count": 1, "security_count": 1,
                "last_update_unix": 5, "reboot_required": i % 5 == 0, "error": ""}),
            Event("auth.login", "warning", 11 * S, {"result": "failure", "user": "root", "service": "sshd",
                                                   "src_ip": f"10.0.0.{i}", "method": "password"}, "Failed"),
        ])], 20 * S)
    store.close()
    alerts = AlertStore(alerts_db)
    alerts.close()
    conn = sqlite3.connect(alerts_db)
    conn.execute("INSERT INTO alerts (fingerprint, rule_id, severity, host, labels, annotations, state, "
                 "starts_ns, fired_ns, updated_ns) VALUES ('f1', 'reboot_required', 'warning', 'h00', "
                 "'{\"host\":\"h00\"}', '{\"summary\":\"h00 needs a reboot\"}', 'firing', 1, 2, 3)")
    conn.commit()
    conn.close()
    yield db, alerts_db


@pytest.fixture
def conn(paths: tuple[Path, Path]) -> Iterator[qsql.QueryConnection]:
    c = qsql.connect(*paths)
    yield c
    c.close()


def fingerprint(path: Path) -> str:
    """Every row of every table (and the schema): equal before and after means nothing changed."""
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        h = hashlib.sha256()
        for line in c.iterdump():
            h.update(line.encode())
        h.update(str(c.execute("PRAGMA user_version").fetchone()).encode())
        return h.hexdigest()
    finally:
        c.close()


def run(conn: qsql.QueryConnection, q: str, **kw: float) -> list[tuple[object, ...]]:
    return qsql.run_sql(conn, q, **kw).rows  # type: ignore[arg-type]


# --- what works -----------------------------------------------------------------------------------

def test_views_have_exactly_their_documented_columns(conn: qsql.QueryConnection) -> None:
    for v in VIEWS:
        result = qsql.run_sql(conn, f"SELECT * FROM {v.name} LIMIT 1")
        assert result.columns == [c.name for c in v.columns], v.name


def test_queries_over_the_views(conn: qsql.QueryConnection) -> None:
    assert run(conn, "SELECT count(*) FROM hosts") == [(30,)]
    assert run(conn, "SELECT json_extract(labels, '$.room') AS room, count(*) FROM hosts "
                     "GROUP BY room ORDER BY room") == [("A", 15), ("B", 15)]
    assert run(conn, "SELECT count(*) FROM packages WHERE name = 'p07'") == [(30,)]
    # version_cmp with each row's own scheme; "1.7-0" < "1.7-1" < "1.7-2".
    assert run(conn, "SELECT count(*) FROM packages WHERE name = 'p07' "
                     "AND version_cmp(version, '1.7-1', manager) < 0") == [(10,)]
    assert run(conn, "SELECT h.host_id FROM hosts h JOIN pending_updates p USING (host_id) "
                     "WHERE p.security AND h.reboot_required ORDER BY 1") == [
        ("h00",), ("h05",), ("h10",), ("h15",), ("h20",), ("h25",)]
    assert run(conn, "SELECT host_id, rule_id, state FROM alerts") == [("h00", "reboot_required", "firing")]
    assert run(conn, "SELECT count(DISTINCT src_ip) FROM logins WHERE result = 'failure'") == [(30,)]
    # Labels through json_each; CTEs; VALUES; a trailing semicolon and comments.
    assert run(conn, "SELECT DISTINCT j.key FROM hosts, json_each(hosts.labels) j") == [("room",)]
    assert run(conn, "WITH r AS (SELECT host_id FROM hosts WHERE reboot_required) SELECT count(*) FROM r;") \
        == [(6,)]
    assert run(conn, "-- how many?\n/* all */ VALUES (1), (2)") == [(1,), (2,)]
    assert run(conn, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) "
                     "SELECT sum(x) FROM c") == [(15,)]
    assert run(conn, "SELECT x'00ff'") == [("00ff",)]  # blobs as hex


def test_version_cmp_function(conn: qsql.QueryConnection) -> None:
    assert run(conn, "SELECT version_cmp('1.0~rc1', '1.0', 'dpkg'), version_cmp('1:1.0', '2.0', 'dpkg'), "
                     "version_cmp('1.0-1.el9', '1.0-1.el9', 'rpm'), "
                     "version_cmp('1.2.3_rc1-r0', '1.2.3-r0', 'apk'), "
                     "version_cmp('1.0a-1', '1.0-1', 'pacman')") == [(-1, 1, 0, -1, -1)]
    # NULL where there is no answer, never an error that would abort the query.
    assert run(conn, "SELECT version_cmp('1', '2', 'windows'), version_cmp('not a version!', '1', 'dpkg'), "
                     "version_cmp(NULL, '1', 'dpkg'), version_cmp(1, 2, 'dpkg')") == [
        (None, None, None, None)]


# --- what is refused ------------------------------------------------------------------------------

REFUSED = [
    ("INSERT INTO hosts (host_id) VALUES ('x')", "INSERT is not allowed"),
    ("UPDATE hosts SET hostname = 'x'", "UPDATE is not allowed"),
    ("DELETE FROM packages", "DELETE is not allowed"),
    ("REPLACE INTO hosts (host_id) VALUES ('x')", "REPLACE is not allowed"),
    # A statement that starts like a query is stopped by the authorizer, not by its first word.
    ("WITH x AS (SELECT 1) INSERT INTO main.hosts (host_id, first_seen_ns, last_seen_ns) "
     "SELECT 'evil', 1, 1 FROM x", "INSERT is not allowed"),
    ("WITH x AS (SELECT 1) DELETE FROM main.tokens", "DELETE is not allowed"),
    ("WITH x AS (SELECT 1) UPDATE main.hosts SET labels = '{}'", "UPDATE is not allowed"),
    ("ATTACH DATABASE ':memory:' AS other", "ATTACH is not allowed"),
    ("DETACH DATABASE alertdb", "DETACH is not allowed"),
    ("VACUUM INTO '/tmp/warden-copy.db'", "VACUUM is not allowed"),
    ("PRAGMA user_version", "PRAGMA is not allowed"),
    ("PRAGMA query_only = OFF", "PRAGMA is not allowed"),
    ("SELECT * FROM pragma_table_info('tokens')", "table-valued functions"),
    ("CREATE TABLE t (x)", "CREATE is not allowed"),
    ("CREATE TEMP VIEW v AS SELECT 1", "CREATE is not allowed"),
    ("DROP VIEW hosts", "DROP is not allowed"),
    ("ALTER TABLE hosts RENAME TO h", "ALTER is not allowed"),
    ("BEGIN", "BEGIN is not allowed"),
    ("COMMIT", "COMMIT is not allowed"),
    ("SAVEPOINT s", "SAVEPOINT is not allowed"),
    ("ANALYZE", "ANALYZE is not allowed"),
    ("SELECT load_extension('/tmp/evil.so')", "function load_extension() is not allowed"),
    ("SELECT 1; DELETE FROM hosts", "only one SQL statement per query"),
    ("SELECT 1; SELECT 2", "only one SQL statement per query"),
    # Tables that are not behind a view, and columns the views do not show.
    ("SELECT token_id FROM main.tokens", "reading tokens.token_id is not allowed"),
    ("SELECT secret_hash FROM tokens", "reading tokens.secret_hash is not allowed"),
    ("SELECT * FROM certificates", "reading certificates"),
    ("SELECT name FROM sqlite_master", "reading sqlite_master"),
    ("SELECT * FROM alertdb.silences", "reading alertdb.silences"),
    # A CTE may take a view's name: still only what the views read.
    ("WITH hosts AS (SELECT secret_hash AS host_id FROM main.tokens) SELECT * FROM hosts",
     "reading tokens.secret_hash is not allowed"),
    ("WITH hosts AS (SELECT cert_serial FROM main.hosts) SELECT * FROM hosts",
     "reading hosts.cert_serial is not allowed"),
]


def test_refusals_are_clear_and_change_nothing(paths: tuple[Path, Path], conn: qsql.QueryConnection) -> None:
    db, alerts_db = paths
    before = fingerprint(db), fingerprint(alerts_db)
    for q, message in REFUSED:
        with pytest.raises(QueryError) as err:
            qsql.run_sql(conn, q)
        assert err.value.kind == "refused", q
        assert message in str(err.value), (q, str(err.value))
        # The connection stays usable after every refusal.
        assert run(conn, "SELECT count(*) FROM hosts") == [(30,)]
    assert (fingerprint(db), fingerprint(alerts_db)) == before
    assert not Path("/tmp/warden-copy.db").exists()
    # The authorizer is not the only guard: the connection itself cannot write either.
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM alertdb.alerts")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM main.tokens")


def test_the_authorizer_alone_refuses_every_write_and_escape(paths: tuple[Path, Path],
                                                             conn: qsql.QueryConnection) -> None:
    """Without the first-word check in front: each statement reaches SQLite and its authorizer."""
    before = fingerprint(paths[0])
    for q, message in [
        ("INSERT INTO main.hosts (host_id, first_seen_ns, last_seen_ns) VALUES ('x', 1, 1)", "INSERT"),
        ("DELETE FROM main.tokens", "DELETE"),
        ("UPDATE main.hosts SET os = 'x'", "UPDATE"),
        ("ATTACH DATABASE ':memory:' AS other", "ATTACH"),
        ("DETACH DATABASE alertdb", "DETACH"),
        ("VACUUM INTO '/tmp/warden-copy2.db'", "ATTACH"),
        ("PRAGMA query_only = OFF", "PRAGMA"),
        ("PRAGMA main.journal_mode", "PRAGMA"),
        ("CREATE TEMP TABLE t (x)", "CREATE"),
        ("CREATE TEMP TRIGGER t AFTER INSERT ON inv_updates BEGIN SELECT 1; END", "CREATE"),
        ("DROP VIEW temp.hosts", "DROP"),
        ("ALTER TABLE main.hosts ADD COLUMN x", "ALTER"),
        ("BEGIN IMMEDIATE", "transaction control"),
        ("SAVEPOINT s", "SAVEPOINT"),
        ("ANALYZE main", "ANALYZE"),
        ("REINDEX main.events_time", "REINDEX"),
    ]:
        guard = qsql._Guard(conn.readable_columns, 5.0)
        conn.set_authorizer(guard.authorize)
        try:
            with pytest.raises(sqlite3.DatabaseError, match="not authorized|authorization denied"):
                conn.execute(q)
        finally:
            conn.set_authorizer(None)
        assert guard.refusal is not None and message in guard.refusal, (q, guard.refusal)
    assert fingerprint(paths[0]) == before
    assert not Path("/tmp/warden-copy2.db").exists()


def test_bad_input(conn: qsql.QueryConnection) -> None:
    for q, kind, message in [("", "invalid", "empty"), ("   ", "invalid", "empty"),
                             ("SELEC 1", "refused", "SELEC is not allowed"),
                             ("SELECT * FROM nowhere", "invalid", "no such table: nowhere"),
                             ("SELECT 1 +", "invalid", "SQL error"),
                             ("SELECT zeroblob(100000000)", "invalid", "too big"),
                             ("SELECT " + "1 + " * 40_000 + "1", "refused", "longer than")]:
        with pytest.raises(QueryError) as err:
            qsql.run_sql(conn, q)
        assert (err.value.kind, message in str(err.value)) == (kind, True), (q, str(err.value))


# --- limits ----------------------------------------------------------------------------------------

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "


def test_a_query_that_never_ends_hits_the_time_limit(paths: tuple[Path, Path],
                                                      conn: qsql.QueryConnection) -> None:
    before = fingerprint(paths[0])
    started = time.monotonic()
    with pytest.raises(QueryError) as err:
        qsql.run_sql(conn, ENDLESS + "SELECT count(*) FROM c", time_limit_s=0.5)
    elapsed = time.monotonic() - started
    assert err.value.kind == "time_limit" and "time limit of 0.5 s" in str(err.value)
    assert 0.5 <= elapsed < 3.0
    assert run(conn, "SELECT count(*) FROM hosts") == [(30,)]  # usable afterwards
    assert fingerprint(paths[0]) == before


def test_huge_results_hit_the_row_limit_and_huge_joins_the_time_limit(conn: qsql.QueryConnection) -> None:
    with pytest.raises(QueryError) as err:
        qsql.run_sql(conn, ENDLESS + "SELECT x FROM c")
    assert err.value.kind == "row_limit" and f"more than {qsql.DEFAULT_ROW_LIMIT} rows" in str(err.value)
    # 1,200 packages rows, cubed: 1.7e9 rows.
    with pytest.raises(QueryError) as err:
        qsql.run_sql(conn, "SELECT a.name, b.name, c.name FROM packages a, packages b, packages c",
                     row_limit=500)
    assert err.value.kind == "row_limit" and "more than 500 rows" in str(err.value)
    with pytest.raises(QueryError) as err:
        qsql.run_sql(conn, "SELECT count(*) FROM packages a, packages b, packages c", time_limit_s=0.3)
    assert err.value.kind == "time_limit"
    # Within both limits, the answer comes back whole.
    assert len(run(conn, "SELECT * FROM packages")) == 1200
    with pytest.raises(QueryError, match="positive"):
        qsql.run_sql(conn, "SELECT 1", row_limit=0)


def test_no_alert_store_means_an_empty_alerts_view(paths: tuple[Path, Path], tmp_path: Path) -> None:
    conn = qsql.connect(paths[0], tmp_path / "no-such-alerts.db")
    try:
        assert run(conn, "SELECT * FROM alerts") == []
        assert not (tmp_path / "no-such-alerts.db").exists()
        with pytest.raises(QueryError, match="ATTACH is not allowed"):
            qsql.run_sql(conn, f"ATTACH DATABASE '{paths[1]}' AS a")
    finally:
        conn.close()


def test_connect_refuses_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(QueryError) as err:
        qsql.connect(tmp_path / "missing.db")
    assert err.value.kind == "unavailable"
    assert not (tmp_path / "missing.db").exists()  # read-only: nothing created


def test_reads_while_the_collector_writes(paths: tuple[Path, Path], conn: qsql.QueryConnection) -> None:
    """WAL: a query connection sees committed data and never blocks the writer."""
    store = SqliteStore(paths[0])
    try:
        cur = conn.execute("SELECT host_id FROM packages")  # an open read, mid-result
        cur.fetchone()
        store.commit_batches([Batch("h99", "sp", 1, 1, [InventorySection("packages", 30 * S, {
            "manager": "rpm", "full": True, "content_hash": "x",
            "packages": [{"name": "p00", "version": "2.0-1", "arch": "x86_64"}]})])], 40 * S)
        cur.close()
        assert run(conn, "SELECT host_id, version FROM packages WHERE host_id = 'h99'") == [("h99", "2.0-1")]
    finally:
        store.close()
