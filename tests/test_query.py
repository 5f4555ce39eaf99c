"""Fleet queries (warden.collector.query): canned answers on a real SQLite store, first-seen
tracking across snapshots, migration of an old store, CLI formats and HTTP endpoints.

Expected answers are computed independently of the code under test: dpkg order by running
`dpkg --compare-versions`, rpm/apk/pacman order from hand-ranked tables.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.harness import CollectorProc, write_toml
from warden.collector.query import QueryError, canned
from warden.collector.query import sql as qsql
from warden.collector.query.api import QueryApi
from warden.collector.records import Batch, Event, InventorySection
from warden.collector.store import sqlite as sqlite_mod
from warden.collector.store.sqlite import SqliteStore

S = 1_000_000_000
DAY = 86_400 * S
NOW = 20_000 * DAY  # 2024-10-04, a fixed "now" for every age
ROOT = Path(__file__).resolve().parents[1]

# --- a small fleet writer -----------------------------------------------------------------------


class Fleet:
    """Writes sections for hosts through the store's real commit path."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.seq: dict[str, int] = {}
        self.enrolled = 0

    def enroll(self, host: str, labels: dict[str, str] | None = None) -> None:
        self.enrolled += 1
        self.store.enroll_host(host, f"{host}.example", labels or {}, f"{self.enrolled:08x}", 1, 2, 1)

    def send(self, host: str, *sections: InventorySection) -> None:
        first = self.seq.get(host, 0) + 1
        self.seq[host] = first + len(sections) - 1
        self.store.commit_batches([Batch(host, "sp", first, self.seq[host], list(sections))], NOW)

    def packages(self, host: str, manager: str, pkgs: list[tuple[str, str, str]], *, t: int = NOW - DAY,
                 full: bool = True, content_hash: str | None = None) -> None:
        data = {"manager": manager, "content_hash": content_hash or f"{host}-{len(pkgs)}-{t}", "full": full,
                "count": len(pkgs),
                "packages": [{"name": n, "version": v, "arch": a} for n, v, a in pkgs] if full else []}
        self.send(host, InventorySection("packages", t, data))

    def updates(self, host: str, t: int, pending: list[tuple[str, str, bool]] = (),  # type: ignore[assignment]
                *, reboot: bool = False, last_update_days: float | None = 1.0, error: str = "",
                manager: str = "dpkg") -> None:
        ups = [{"name": n, "current_version": "0", "new_version": v, "arch": "amd64", "security": sec,
                "origin": "o"} for n, v, sec in pending]
        last = 0 if last_update_days is None else int((NOW - last_update_days * DAY) / S)
        self.send(host, InventorySection("updates", t, {
            "manager": manager, "pending": ups, "pending_count": len(ups),
            "security_count": sum(1 for u in ups if u["security"]), "last_update_unix": last,
            "running_kernel": "6.1.0-1", "newest_kernel": "6.1.0-2" if reboot else "6.1.0-1",
            "reboot_required": reboot, "reboot_required_packages": ["linux-image-amd64"] if reboot else [],
            "error": error}))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "warden.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(db)
    yield s
    s.close()


@pytest.fixture
def fleet(store: SqliteStore) -> Fleet:
    return Fleet(store)


@pytest.fixture
def conn(db: Path, store: SqliteStore) -> Iterator[qsql.QueryConnection]:
    c = qsql.connect(db)
    yield c
    c.close()


def hosts_of(result: Any) -> list[str]:
    return sorted(r[0] for r in result.rows)


# --- version comparisons: dpkg against dpkg itself ------------------------------------------------

DPKG_VERSIONS = ["3.0.11-1~deb12u1", "3.0.11-1~deb12u2", "3.0.11-1", "3.0.11", "3.0.11-0", "0:3.0.11-1",
                 "1:3.0.2-0ubuntu1", "3.0.15-1~deb12u1", "3.0.15-1", "3.0.15-1+b1", "3.0.15~rc1-1",
                 "3.0.9-1", "3.0.10-10", "3.0.10-9"]
DPKG_TARGETS = ["3.0.15-1~deb12u1", "3.0.11-1", "3.0.11", "1:0"]
_DPKG_OPS = {"<": "lt", "<=": "le", "=": "eq", "!=": "ne", ">=": "ge", ">": "gt"}


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg --compare-versions")
def test_package_query_agrees_with_dpkg_for_every_operator(fleet: Fleet, conn: qsql.QueryConnection) -> None:
    for i, v in enumerate(DPKG_VERSIONS):
        fleet.packages(f"deb{i:02d}", "dpkg", [("openssl", v, "amd64"), ("bash", "5.2-1", "amd64")])
    for target in DPKG_TARGETS:
        for op, word in _DPKG_OPS.items():
            want = sorted(f"deb{i:02d}" for i, v in enumerate(DPKG_VERSIONS)
                          if subprocess.run(["dpkg", "--compare-versions", v, word, target]).returncode == 0)
            got = canned.package(conn, "openssl", op, target)
            assert hosts_of(got) == want, (op, target)
            assert not got.notes
    # The SQL function gives the same answers.
    rows = qsql.run_sql(conn, "SELECT host_id FROM packages WHERE name = 'openssl' AND "
                              "version_cmp(version, '3.0.11-1', manager) < 0 ORDER BY host_id").rows
    assert [r[0] for r in rows] == hosts_of(canned.package(conn, "openssl", "lt", "3.0.11-1"))


# --- rpm, apk, pacman: hand-ranked orders (ascending; a tuple holds equal versions) ----------------

RANKED = {
    "rpm": ["3.0.7-27.el9", "1:3.0.7~beta1-1.el9", "1:3.0.7-25.el9", ("1:3.0.7-27.el9", "1:3.0.7-27.el9"),
            "1:3.0.7-27.el9_4", "1:3.0.7^git1-1.el9", "1:3.0.8-1.el9", "1:3.0.10-1.el9", "2:1.0-1"],
    "apk": ["1.2.3_rc1-r0", "1.2.3-r0", "1.2.3-r1", "1.2.4-r0", "1.10.0-r0"],
    "pacman": ["1.0a-1", "1.0-1", "1.0-2", "1.0.1-1", "2.0-1", "1:0.5-1"],
}


def _ranked(manager: str) -> list[tuple[str, int]]:
    out = []
    for rank, entry in enumerate(RANKED[manager]):
        for v in entry if isinstance(entry, tuple) else (entry,):
            out.append((v, rank))
    return out


@pytest.mark.parametrize("manager", sorted(RANKED))
def test_package_query_by_hand_ranked_order(fleet: Fleet, conn: qsql.QueryConnection, manager: str) -> None:
    versions = _ranked(manager)
    for i, (v, _) in enumerate(versions):
        fleet.packages(f"{manager}{i:02d}", manager, [("openssl", v, "x86_64")])
    ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "=": lambda a, b: a == b,
           "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b, ">": lambda a, b: a > b}
    for target, target_rank in versions:
        for op, holds in ops.items():
            want = sorted(f"{manager}{i:02d}" for i, (_, rank) in enumerate(versions)
                          if holds(rank, target_rank))
            assert hosts_of(canned.package(conn, "openssl", op, target)) == want, (op, target)


def test_each_host_uses_its_own_scheme_and_odd_hosts_are_noted(fleet: Fleet, store: SqliteStore,
                                                                 conn: qsql.QueryConnection) -> None:
    # "1:1.0-1" is newer than "2.0-1" for dpkg and rpm (epoch), "1.0~rc1" older than "1.0" for
    # both, but apk has neither epochs nor tilde pre-releases: each host by its own rules.
    fleet.packages("deb", "dpkg", [("curl", "1:1.0-1", "amd64")])
    fleet.packages("rpm", "rpm", [("curl", "1.0~rc1-1", "x86_64")])
    fleet.packages("win", "windows", [("curl", "8.4.0", "")])
    fleet.packages("bad", "dpkg", [("curl", "not a version!", "amd64")])
    fleet.packages("multi", "dpkg", [("curl", "0.9-1", "amd64"), ("curl", "0.9-1", "i386"),
                                     ("curl", "2.1-1", "arm64")])
    got = canned.package(conn, "curl", "<", "2.0-1")
    assert [(r[0], r[2], r[3]) for r in got.rows] == [
        ("multi", "0.9-1", "amd64"), ("multi", "0.9-1", "i386"), ("rpm", "1.0~rc1-1", "x86_64")]
    assert sorted(got.notes) == ["1 host(s) not compared: installed version not valid for dpkg",
                                 "1 host(s) not compared: no version ordering for windows packages"]
    # A target dpkg rejects is reported, not raised; rpm hosts are still compared.
    got = canned.package(conn, "curl", ">", "1:")
    assert any("'1:' is not a valid dpkg version" in n for n in got.notes)
    with pytest.raises(QueryError, match="unknown operator"):
        canned.package(conn, "curl", "<<", "1")
    # Revoked hosts no longer report: they are left out.
    fleet.enroll("rpm")
    store.revoke_host("rpm", NOW)
    assert "rpm" not in hosts_of(canned.package(conn, "curl", "<", "2.0-1"))


def test_versions_across_the_fleet(fleet: Fleet, conn: qsql.QueryConnection) -> None:
    for i, v in enumerate(["3.0.11-1", "3.0.15-1~deb12u1", "3.0.15-1", "3.0.11-1", "3.0.11-1"]):
        fleet.packages(f"d{i}", "dpkg", [("openssl", v, "amd64")])
    fleet.packages("r0", "rpm", [("openssl", "1:3.0.7-27.el9", "x86_64")])
    got = canned.versions(conn, "openssl", max_hosts=2)
    assert got.columns == ["version", "manager", "arch", "hosts", "host_ids"]
    assert [(r[0], r[1], r[3], r[4]) for r in got.rows] == [
        ("3.0.15-1", "dpkg", 1, ["d2"]),
        ("3.0.15-1~deb12u1", "dpkg", 1, ["d1"]),  # ~ sorts before 3.0.15-1: newest first
        ("3.0.11-1", "dpkg", 3, ["d0", "d3"]),  # 3 hosts, the first 2 listed
        ("1:3.0.7-27.el9", "rpm", 1, ["r0"]),
    ]
    assert got.notes == ["6 host(s) have openssl installed in 4 version(s)"]
    assert canned.versions(conn, "absent").rows == []


# --- the query tables follow the stored sections ------------------------------------------------

def _pkgs(conn: qsql.QueryConnection, host: str) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in qsql.run_sql(conn, "SELECT name, version, arch FROM packages WHERE host_id = "
                                                 f"'{host}' ORDER BY name, arch").rows]  # type: ignore[misc]


def test_package_rows_follow_full_lists_only(fleet: Fleet, conn: qsql.QueryConnection) -> None:
    base = [("bash", "5.2-1", "amd64"), ("curl", "7.88-1", "amd64"), ("openssl", "3.0.11-1", "amd64")]
    fleet.packages("a", "dpkg", base, t=NOW - 3 * DAY, content_hash="h1")
    fleet.packages("b", "dpkg", base, t=NOW - 3 * DAY, content_hash="h1")
    assert _pkgs(conn, "a") == sorted(base)
    # An upgrade and a removal: only a's rows change.
    fleet.packages("a", "dpkg", [("bash", "5.2-1", "amd64"), ("openssl", "3.0.15-1", "amd64")],
                   t=NOW - 2 * DAY, content_hash="h2")
    assert _pkgs(conn, "a") == [("bash", "5.2-1", "amd64"), ("openssl", "3.0.15-1", "amd64")]
    assert _pkgs(conn, "b") == sorted(base)
    # "Unchanged since hash h2" keeps the rows; an older snapshot is ignored.
    fleet.packages("a", "dpkg", [], t=NOW - DAY, full=False, content_hash="h2")
    fleet.packages("a", "dpkg", base, t=NOW - 5 * DAY, content_hash="h0")
    assert _pkgs(conn, "a") == [("bash", "5.2-1", "amd64"), ("openssl", "3.0.15-1", "amd64")]
    # An empty full list empties the host.
    fleet.packages("a", "dpkg", [], t=NOW, content_hash="h3")
    assert _pkgs(conn, "a") == []


def test_failed_commit_leaves_query_tables_and_id_caches_consistent(fleet: Fleet, store: SqliteStore,
                                                                    conn: qsql.QueryConnection) -> None:
    section = InventorySection("packages", NOW, {"manager": "dpkg", "full": True, "content_hash": "x",
                                                 "packages": [{"name": "zsh", "version": "5.9-4",
                                                               "arch": "amd64"}]})
    bad = Batch("h", "sp", 1, 2, [section, object()])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        store.commit_batches([bad], NOW)
    assert _pkgs(conn, "h") == []
    assert qsql.run_sql(conn, "SELECT count(*) FROM packages").rows == [(0,)]
    # The rolled-back ids were not cached: the same section now stores rows that join up.
    store.commit_batches([Batch("h", "sp", 1, 1, [section])], NOW)
    assert _pkgs(conn, "h") == [("zsh", "5.9-4", "amd64")]


def _pending(conn: qsql.QueryConnection, host: str = "h") -> dict[str, int]:
    rows = qsql.run_sql(conn, "SELECT name, new_version, first_seen_ns FROM pending_updates "
                              f"WHERE host_id = '{host}'").rows
    return {f"{n} {v}": t for n, v, t in rows}


def _reboot_since(conn: qsql.QueryConnection, host: str = "h") -> int | None:
    return qsql.run_sql(conn, f"SELECT reboot_since_ns FROM hosts WHERE host_id = '{host}'").rows[0][0]


def test_first_seen_is_kept_while_pending_and_reset_when_gone(fleet: Fleet,
                                                               conn: qsql.QueryConnection) -> None:
    fleet.enroll("h")
    t1, t2, t3, t4, t5, t6 = (NOW - d * DAY for d in (20, 15, 10, 8, 5, 2))
    fleet.updates("h", t1, [("openssl", "3.0.15-1", True), ("vim", "9.0-2", False)], reboot=True)
    assert _pending(conn) == {"openssl 3.0.15-1": t1, "vim 9.0-2": t1}
    assert _reboot_since(conn) == t1
    # Still pending: the clock stays; a new update gets its own; an installed one is forgotten.
    fleet.updates("h", t2, [("openssl", "3.0.15-1", True), ("curl", "7.88-2", True)], reboot=True)
    assert _pending(conn) == {"openssl 3.0.15-1": t1, "curl 7.88-2": t2}
    assert _reboot_since(conn) == t1
    got = canned.security_pending(conn, 16, NOW)  # openssl pending 20 days, curl 15
    assert [(r[0], r[2], r[3], r[4], r[5], r[6]) for r in got.rows] == [
        ("h", 1, 2, "2024-09-14T00:00:00Z", 20.0, "openssl 3.0.15-1")]  # 1 overdue of 2 pending
    assert canned.security_pending(conn, 12, NOW).rows[0][2] == 2
    assert canned.security_pending(conn, 21, NOW).rows == []
    # An older snapshot arriving late changes nothing.
    fleet.updates("h", t1, [("zsh", "5.9-5", True)], reboot=False)
    assert _pending(conn) == {"openssl 3.0.15-1": t1, "curl 7.88-2": t2}
    # A newer version of a pending update is a new update (new clock), as the alert rule counts.
    fleet.updates("h", t3, [("openssl", "3.0.16-1", True), ("curl", "7.88-2", True)], reboot=True)
    assert _pending(conn) == {"openssl 3.0.16-1": t3, "curl 7.88-2": t2}
    # The agent could not compute the list: the last known list and clocks stay, reboot unknown.
    fleet.updates("h", t4, [], reboot=False, error="apt: lock held")
    assert _pending(conn) == {"openssl 3.0.16-1": t3, "curl 7.88-2": t2}
    assert _reboot_since(conn) == t1
    # Installed and rebooted: everything is forgotten...
    fleet.updates("h", t5, [], reboot=False)
    assert _pending(conn) == {} and _reboot_since(conn) is None
    # ... so when it comes back, its clock starts afresh.
    fleet.updates("h", t6, [("openssl", "3.0.16-1", True)], reboot=True)
    assert _pending(conn) == {"openssl 3.0.16-1": t6}
    assert _reboot_since(conn) == t6
    got = canned.reboot(conn, 0, NOW)
    assert [(r[0], r[2], r[3], r[6]) for r in got.rows] == [("h", "2024-10-02T00:00:00Z", 2.0,
                                                              "linux-image-amd64")]
    assert canned.reboot(conn, 3, NOW).rows == []


def test_stale_updates(fleet: Fleet, conn: qsql.QueryConnection) -> None:
    fleet.updates("fresh", NOW, last_update_days=2)
    fleet.updates("old", NOW, last_update_days=45)
    fleet.updates("older", NOW, last_update_days=90.5)
    fleet.updates("unknown", NOW, last_update_days=None)
    got = canned.stale_updates(conn, 30, NOW)
    assert [(r[0], r[3]) for r in got.rows] == [("older", 90.5), ("old", 45.0)]
    got = canned.stale_updates(conn, 30, NOW, include_unknown=True)
    assert [(r[0], r[2]) for r in got.rows][0] == ("unknown", "unknown")
    assert hosts_of(canned.stale_updates(conn, 0, NOW)) == ["fresh", "old", "older"]
    with pytest.raises(QueryError, match="days"):
        canned.stale_updates(conn, -1, NOW)


def test_compliance_by_label(fleet: Fleet, store: SqliteStore, conn: qsql.QueryConnection) -> None:
    sec_old = [("openssl", "3.0.15-1", True)]
    for host, room in [("a1", "A"), ("a2", "A"), ("a3", "A"), ("a4", "A"), ("b1", "B"), ("b2", "B"),
                       ("n1", None), ("gone", "A")]:
        fleet.enroll(host, {"room": room} if room else {"rack": "1"})
    fleet.updates("a1", NOW - DAY)  # compliant
    fleet.updates("a2", NOW - 10 * DAY, sec_old)  # security update pending 10 days
    fleet.updates("a3", NOW - 2 * DAY, sec_old)  # pending 2 days only: still compliant at 7
    fleet.updates("a4", NOW - DAY, reboot=True)  # needs a reboot
    fleet.updates("b1", NOW - 30 * DAY, [("vim", "9.1", False)])  # old but not a security update
    # b2 never reported updates
    fleet.updates("n1", NOW - DAY)
    fleet.updates("gone", NOW - 30 * DAY, sec_old)
    store.revoke_host("gone", NOW)
    got = canned.compliance(conn, "room", 7, NOW)
    assert got.columns == ["room", "hosts", "compliant", "percent", "security_overdue", "reboot_required",
                           "not_reporting"]
    assert got.rows == [("A", 4, 2, 50.0, 1, 1, 0), ("B", 2, 1, 50.0, 0, 0, 1), (None, 1, 1, 100.0, 0, 0, 0)]
    assert got.notes == ["fleet: 4/7 hosts compliant (57.1%)"]
    assert canned.compliance(conn, None, 1, NOW).rows == [("(all)", 7, 3, 42.9, 2, 1, 1)]
    with pytest.raises(QueryError, match="label"):
        canned.compliance(conn, 'ro"om', 7, NOW)


# --- migration of a store older than the query tables ---------------------------------------------

def _v2_store(path: Path) -> None:
    """A schema-2 store as the previous collector made it: its tables, no inv_*, user_version 2."""
    v2_schema = sqlite_mod._SCHEMA.split("-- Query tables")[0]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(v2_schema)
    conn.execute("PRAGMA user_version=2")
    conn.executemany("INSERT INTO hosts (host_id, hostname, labels, first_seen_ns, last_seen_ns) "
                     "VALUES (?, ?, ?, 1, 1)",
                     [("old1", "old1", '{"room":"A"}'), ("old2", "old2", '{"room":"B"}')])
    rows = [
        ("old1", "packages", NOW - 9 * DAY, {
            "manager": "dpkg", "full": True, "content_hash": "a", "count": 2,
            "packages": [{"name": "openssl", "version": "3.0.11-1~deb12u2", "arch": "amd64"},
                         {"name": "bash", "version": "5.2-1", "arch": "amd64"}]}),
        ("old1", "updates", NOW - 9 * DAY, {"manager": "dpkg", "pending": [
            {"name": "openssl", "current_version": "3.0.11-1~deb12u2", "new_version": "3.0.15-1~deb12u1",
             "arch": "amd64", "security": True, "origin": "Debian-Security"}], "pending_count": 1,
            "security_count": 1, "last_update_unix": int((NOW - 40 * DAY) / S), "reboot_required": True,
            "reboot_required_packages": ["libc6"], "running_kernel": "", "newest_kernel": "", "error": ""}),
        ("old2", "packages", NOW - DAY, {"manager": "rpm", "full": True, "content_hash": "b", "count": 1,
                                         "packages": [{"name": "openssl", "version": "1:3.0.7-27.el9",
                                                       "arch": "x86_64"}]}),
        ("old2", "os", NOW - DAY, {"os_name": "Rocky Linux", "os_id": "rocky", "os_version": "9.4"}),
    ]
    conn.executemany("INSERT INTO inventory (host_id, section, time_ns, data) VALUES (?, ?, ?, ?)",
                     [(h, s, t, json.dumps(d)) for h, s, t, d in rows])
    conn.close()


def test_old_store_is_backfilled_on_open(db: Path) -> None:
    _v2_store(db)
    with pytest.raises(QueryError, match="schema version 2"):
        qsql.connect(db)
    SqliteStore(db).close()
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA user_version").fetchone()[0] == sqlite_mod.SCHEMA_VERSION
    c.close()
    conn = qsql.connect(db)
    try:
        assert hosts_of(canned.package(conn, "openssl", "<", "3.0.15-1~deb12u1")) == ["old1"]
        assert hosts_of(canned.package(conn, "openssl", ">=", "1:3.0.7-27.el9")) == ["old2"]
        # First-seen clocks start at the stored snapshot: the old store knew nothing older.
        got = canned.security_pending(conn, 7, NOW)
        assert [(r[0], r[5]) for r in got.rows] == [("old1", 9.0)]
        assert [(r[0], r[3]) for r in canned.reboot(conn, 0, NOW).rows] == [("old1", 9.0)]
        assert hosts_of(canned.stale_updates(conn, 30, NOW)) == ["old1"]
        assert qsql.run_sql(conn, "SELECT host_id, os_id, os_version FROM hosts WHERE os_id IS NOT NULL"
                            ).rows == [("old2", "rocky", "9.4")]
    finally:
        conn.close()
    SqliteStore(db).close()  # opening again does not backfill twice
    conn = qsql.connect(db)
    try:
        assert qsql.run_sql(conn, "SELECT count(*) FROM packages").rows == [(3,)]
    finally:
        conn.close()


# --- CLI ----------------------------------------------------------------------------------------

def _cli(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "warden.collector.cli", "--config", str(config), "query",
                           *args], capture_output=True, text=True, timeout=60, input=stdin, cwd=ROOT)


@pytest.fixture
def cli_store(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    store = SqliteStore(data / "warden.db")
    f = Fleet(store)
    f.enroll("web1", {"room": "A"})
    f.enroll("web2", {"room": "B"})
    f.packages("web1", "dpkg", [("openssl", "3.0.11-1~deb12u2", "amd64")])
    f.packages("web2", "dpkg", [("openssl", "3.0.15-1~deb12u1", "amd64")])
    f.updates("web1", NOW - 30 * DAY, [("openssl", "3.0.15-1~deb12u1", True)], reboot=True)
    store.commit_batches([Batch("web1", "sp", 99, 99, [Event("auth.login", "notice", NOW, {
        "result": "success", "user": "root", "service": "sshd", "method": "publickey", "src_ip": "10.0.0.9"},
        "Accepted publickey for root", "auth")])], NOW)
    store.close()
    return write_toml(tmp_path / "collector.toml", {"collector": {"data_dir": str(data)}})


def test_cli_formats(cli_store: Path) -> None:
    p = _cli(cli_store, "package", "openssl", "<", "3.0.15-1~deb12u1", "--format", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [{"host_id": "web1", "hostname": "web1.example",
                                     "version": "3.0.11-1~deb12u2", "arch": "amd64", "manager": "dpkg"}]
    p = _cli(cli_store, "versions", "openssl", "--format", "csv")
    assert p.returncode == 0, p.stderr
    assert list(csv.reader(io.StringIO(p.stdout))) == [
        ["version", "manager", "arch", "hosts", "host_ids"],
        ["3.0.15-1~deb12u1", "dpkg", "amd64", "1", "web2"],
        ["3.0.11-1~deb12u2", "dpkg", "amd64", "1", "web1"]]
    assert "2 host(s) have openssl installed" in p.stderr
    p = _cli(cli_store, "compliance", "--by", "room", "--days", "7")  # table is the default
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["ROOM", "HOSTS", "COMPLIANT", "PERCENT", "SECURITY_OVERDUE",
                                "REBOOT_REQUIRED", "NOT_REPORTING"]
    assert lines[1].split() == ["A", "1", "0", "0", "1", "1", "0"]
    assert lines[2].split() == ["B", "1", "0", "0", "0", "0", "1"]
    # Aligned: every row's columns start where the header's do.
    starts = [lines[0].index(h) for h in ("HOSTS", "COMPLIANT")]
    assert all(line[s - 1] == " " for line in lines for s in starts)
    for args in (("security-pending", "--days", "7"), ("reboot",), ("stale-updates", "--days", "0")):
        p = _cli(cli_store, *args, "--format", "json")
        assert p.returncode == 0, p.stderr
        assert [r["host_id"] for r in json.loads(p.stdout)] == ["web1"], args


def test_cli_sql_views_and_errors(cli_store: Path) -> None:
    p = _cli(cli_store, "sql", "SELECT user, src_ip FROM logins", "--format", "csv")
    assert (p.returncode, p.stdout) == (0, "user,src_ip\nroot,10.0.0.9\n"), p.stderr
    p = _cli(cli_store, "sql", "-", "--format", "json", stdin="SELECT count(*) AS n FROM hosts")
    assert json.loads(p.stdout) == [{"n": 2}]
    p = _cli(cli_store, "sql", "DELETE FROM hosts")
    assert p.returncode == 1 and "DELETE is not allowed" in p.stderr and p.stdout == ""
    p = _cli(cli_store, "sql", "SELECT * FROM hosts", "--max-rows", "1")
    assert p.returncode == 1 and "more than 1 rows" in p.stderr
    p = _cli(cli_store, "views")
    assert p.returncode == 0 and "packages:" in p.stdout and "version_cmp(a, b, scheme)" in p.stdout
    p = _cli(cli_store, "views", "--format", "json")
    assert {r["view"] for r in json.loads(p.stdout)} >= {"hosts", "packages", "pending_updates", "alerts",
                                                          "logins"}
    p = _cli(cli_store, "package", "openssl", "<<", "1")
    assert p.returncode == 1 and "unknown operator" in p.stderr


def test_cli_migrates_an_old_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _v2_store(data / "warden.db")
    config = write_toml(tmp_path / "collector.toml", {"collector": {"data_dir": str(data)}})
    p = _cli(config, "package", "openssl", "lt", "3.0.15-1~deb12u1", "--format", "json")
    assert p.returncode == 0, p.stderr
    assert "migrating" in p.stderr
    assert [r["host_id"] for r in json.loads(p.stdout)] == ["old1"]
    p = _cli(tmp_path / "missing.toml", "reboot")
    assert p.returncode != 0


# --- HTTP ---------------------------------------------------------------------------------------

@pytest.fixture
async def client(db: Path, store: SqliteStore, fleet: Fleet) -> Any:
    fleet.enroll("web1", {"room": "A"})
    fleet.enroll("web2", {"room": "B"})
    fleet.packages("web1", "dpkg", [("openssl", "3.0.11-1~deb12u2", "amd64")])
    fleet.packages("web2", "rpm", [("openssl", "1:3.0.7-27.el9", "x86_64")])
    fleet.updates("web1", NOW - 30 * DAY, [("openssl", "3.0.15-1~deb12u1", True)], reboot=True,
                  last_update_days=40)
    app = web.Application()
    app.add_routes(QueryApi(store.query_database, None, time_limit_s=1.0, row_limit=100).routes())
    c = TestClient(TestServer(app))
    await c.start_server()
    yield c
    await c.close()


async def test_http_canned_endpoints(client: TestClient) -> None:
    r = await client.get("/api/v1/query/package/openssl", params={"op": "<", "version": "3.0.15-1~deb12u1"})
    assert r.status == 200
    body = await r.json()
    assert body["query"] == "package" and body["params"]["op"] == "<" and body["count"] == 1
    assert body["rows"][0]["host_id"] == "web1" and body["columns"][0] == "host_id"
    r = await client.get("/api/v1/query/package/openssl", params={"op": "ge", "version": "1:3.0.7-27.el9"})
    assert [x["host_id"] for x in (await r.json())["rows"]] == ["web2"]
    for path, want in [("/api/v1/query/security-pending?days=7", ["web1"]),
                       ("/api/v1/query/security-pending?days=10000", []),
                       ("/api/v1/query/reboot", ["web1"]),
                       ("/api/v1/query/stale-updates?days=30", ["web1"])]:
        r = await client.get(path)
        assert r.status == 200, path
        assert [x["host_id"] for x in (await r.json())["rows"]] == want, path
    r = await client.get("/api/v1/query/versions/openssl")
    assert [x["version"] for x in (await r.json())["rows"]] == ["3.0.11-1~deb12u2", "1:3.0.7-27.el9"]
    r = await client.get("/api/v1/query/compliance", params={"by": "room", "format": "csv"})
    assert r.status == 200 and r.content_type == "text/csv"
    assert (await r.text()).splitlines()[1:] == ["A,1,0,0.0,1,1,0", "B,1,0,0.0,0,0,1"]
    r = await client.get("/api/v1/query/reboot", params={"format": "table"})
    assert r.content_type == "text/plain" and (await r.text()).startswith("HOST_ID")
    r = await client.get("/api/v1/query/views")
    assert "version_cmp(a, b, scheme)" in {x["column"] for x in (await r.json())["rows"]}
    # Bad parameters are 400s with a reason.
    for path in ["/api/v1/query/package/openssl?op=%3C%3C&version=1", "/api/v1/query/package/openssl",
                 "/api/v1/query/security-pending?days=-1", "/api/v1/query/reboot?days=x",
                 "/api/v1/query/reboot?format=xml"]:
        r = await client.get(path)
        assert r.status == 400, path
        assert (await r.json())["error"]


async def test_http_sql(client: TestClient) -> None:
    q = "SELECT host_id, version FROM packages WHERE version_cmp(version, '3.0.15-1~deb12u1', manager) < 0"
    r = await client.get("/api/v1/query/sql", params={"q": q})
    assert r.status == 200
    assert (await r.json())["rows"] == [{"host_id": "web1", "version": "3.0.11-1~deb12u2"}]
    r = await client.post("/api/v1/query/sql", json={"q": "SELECT count(*) AS n FROM hosts"})
    assert (await r.json())["rows"] == [{"n": 2}]
    r = await client.post("/api/v1/query/sql", json={"q": "DROP TABLE hosts"})
    assert r.status == 400 and (await r.json())["kind"] == "refused"
    r = await client.post("/api/v1/query/sql", data="not json")
    assert r.status == 400
    # A client may lower the limits, never raise them above the server's.
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    r = await client.post("/api/v1/query/sql", json={"q": endless, "row_limit": 10**9})
    body = await r.json()
    assert r.status == 400 and body["kind"] == "row_limit" and "more than 100 rows" in body["error"]
    r = await client.get("/api/v1/query/sql", params={
        "q": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        "time_limit": "0.2"})
    body = await r.json()
    assert body["kind"] == "time_limit" and "0.2 s" in body["error"]
    r = await client.get("/api/v1/query/sql")
    assert r.status == 400


def test_http_endpoints_on_a_real_collector(tmp_path: Path) -> None:
    """The routes are wired into the collector's HTTP API, on its own store and alert store."""
    col = CollectorProc(tmp_path / "col")
    data = tmp_path / "col" / "data"
    data.mkdir(parents=True)
    store = SqliteStore(data / "warden.db")
    f = Fleet(store)
    f.enroll("web1", {"room": "A"})
    f.packages("web1", "dpkg", [("openssl", "3.0.11-1~deb12u2", "amd64")])
    store.close()
    col.start()
    try:
        body = col.get("/api/v1/query/package/openssl?op=lt&version=3.0.15-1~deb12u1")
        assert [r["host_id"] for r in body["rows"]] == ["web1"]
        # The alert store is attached: the view shows the collector's own alerts (web1 has never
        # reported, so at least host_silent is open).
        q = urllib.parse.quote("SELECT id, rule_id FROM alerts WHERE state != 'resolved' ORDER BY id")
        rows = col.get(f"/api/v1/query/sql?q={q}")["rows"]
        active = col.get("/api/v1/alerts")["alerts"]
        assert rows and [r["id"] for r in rows] == sorted(a["id"] for a in active)
        assert col.get("/api/v1/query/compliance?by=room")["rows"][0]["room"] == "A"
    finally:
        col.stop()
