"""SqliteStore against real SQLite files (no mocks)."""

from __future__ import annotations

import hashlib
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from warden.collector.records import Batch, CommitResult, Event, InventorySection, MetricSample, Record
from warden.collector.store import sqlite as sqlite_mod
from warden.collector.store.base import TokenRefused
from warden.collector.store.sqlite import SqliteStore

S = 1_000_000_000


def h(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "warden.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(db)
    yield s
    s.close()


def enroll(store: SqliteStore, host: str = "h1", serial: str = "aa01", now: int = 1 * S) -> None:
    store.enroll_host(host, f"{host}.example", {"site": "paris"}, serial, now, now + 3600 * S, now)


def metric(i: int, name: str = "cpu", labels: dict[str, str] | None = None,
           t: int | None = None) -> MetricSample:
    return MetricSample(name=name, labels=labels if labels is not None else {"core": "0"},
                        value=float(i), time_ns=t if t is not None else i * S)


def batch(first: int, last: int, host: str = "h1", spool: str = "sp1",
          records: list[Record] | None = None) -> Batch:
    if records is None:
        records = [metric(seq) for seq in range(first, last + 1)]
    return Batch(host_id=host, spool_id=spool, first_seq=first, last_seq=last, records=records)


def points(store: SqliteStore, host: str = "h1", name: str = "cpu") -> list[tuple[int, float]]:
    return [p for sp in store.query_metrics(host, name) for p in sp.points]


# --- schema / connections -----------------------------------------------------------------

def test_schema_and_pragmas(db: Path, store: SqliteStore) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_mod.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"tokens", "hosts", "certificates", "spools", "series", "samples", "inventory",
                "events"} <= tables
    finally:
        conn.close()
    assert store._w.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._w.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store._w.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    # Opening again (idempotent schema) while the first instance is open works.
    SqliteStore(db).close()


def test_newer_schema_refused(db: Path) -> None:
    SqliteStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        SqliteStore(db)


# --- tokens -------------------------------------------------------------------------------

def test_token_single_use(store: SqliteStore) -> None:
    store.add_token("t1", h("s1"), {"team": "ops"}, created_ns=1 * S, expires_ns=100 * S)
    assert store.consume_token("t1", h("s1"), 2 * S, "h1") == {"team": "ops"}
    with pytest.raises(TokenRefused) as e:
        store.consume_token("t1", h("s1"), 3 * S, "h2")
    assert e.value.reason == "used"
    (info,) = store.list_tokens()
    assert (info.token_id, info.labels, info.used_ns, info.used_by) == ("t1", {"team": "ops"}, 2 * S, "h1")
    assert (info.created_ns, info.expires_ns) == (1 * S, 100 * S)


def test_token_expired_unknown_mismatch(store: SqliteStore) -> None:
    store.add_token("t1", h("s1"), {}, created_ns=1 * S, expires_ns=10 * S)
    with pytest.raises(TokenRefused) as e:
        store.consume_token("t1", h("s1"), 10 * S, "h1")
    assert e.value.reason == "expired"
    with pytest.raises(TokenRefused) as e:
        store.consume_token("nope", h("s1"), 2 * S, "h1")
    assert e.value.reason == "unknown"
    with pytest.raises(TokenRefused) as e:
        store.consume_token("t1", h("wrong"), 2 * S, "h1")
    assert e.value.reason == "unknown"
    # None of the refusals used the token up.
    assert store.list_tokens()[0].used_ns is None
    assert store.consume_token("t1", h("s1"), 9 * S, "h1") == {}


@pytest.mark.parametrize("separate_stores", [False, True], ids=["one-store", "two-stores"])
def test_token_race_exactly_one_wins(db: Path, separate_stores: bool) -> None:
    n = 8
    stores = [SqliteStore(db) for _ in range(n if separate_stores else 1)]
    stores[0].add_token("t1", h("s"), {"k": "v"}, 0, 100 * S)
    barrier = threading.Barrier(n)
    wins: list[str] = []
    refusals: list[str] = []

    def consume(i: int) -> None:
        st = stores[i % len(stores)]
        barrier.wait()
        try:
            st.consume_token("t1", h("s"), 1 * S, f"host{i}")
            wins.append(f"host{i}")
        except TokenRefused as e:
            refusals.append(e.reason)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(wins) == 1
        assert refusals == ["used"] * (n - 1)
        assert stores[0].list_tokens()[0].used_by == wins[0]
    finally:
        for st in stores:
            st.close()


# --- hosts and certificates ---------------------------------------------------------------

def test_enroll_reenroll_revoke(store: SqliteStore) -> None:
    assert store.get_host("h1") is None
    assert store.is_revoked("aa01")  # never issued
    enroll(store, serial="AA01", now=1 * S)  # serials are normalized to lower case
    host = store.get_host("h1")
    assert host is not None
    assert (host.hostname, host.labels, host.cert_serial, host.revoked) == (
        "h1.example", {"site": "paris"}, "aa01", False)
    assert (host.first_seen_ns, host.last_seen_ns, host.os, host.agent_version) == (1 * S, 1 * S, "", "")
    assert not store.is_revoked("aa01")
    assert not store.is_revoked("AA01")
    assert store.is_revoked("ffff")

    # Renewal: the new certificate becomes current, the old one stays valid until it expires.
    store.add_certificate("h1", "aa02", 2 * S, 3600 * S)
    assert store.get_host("h1").cert_serial == "aa02"  # type: ignore[union-attr]
    assert not store.is_revoked("aa01") and not store.is_revoked("aa02")
    with pytest.raises(KeyError):
        store.add_certificate("ghost", "bb01", 0, 1)

    # Re-enroll: earlier certificates are revoked, first_seen kept.
    store.enroll_host("h1", "h1-new", {"site": "lyon"}, "aa03", 5 * S, 3600 * S, 5 * S)
    host = store.get_host("h1")
    assert host is not None
    assert (host.hostname, host.labels, host.cert_serial) == ("h1-new", {"site": "lyon"}, "aa03")
    assert (host.first_seen_ns, host.last_seen_ns) == (1 * S, 5 * S)
    assert store.is_revoked("aa01") and store.is_revoked("aa02") and not store.is_revoked("aa03")
    assert store.revoked_serials() == {"aa01", "aa02"}

    # Revoke the host: all its certificates.
    assert store.revoke_host("h1", 6 * S) == 1
    assert store.get_host("h1").revoked  # type: ignore[union-attr]
    assert store.is_revoked("aa03")
    assert store.revoked_serials() == {"aa01", "aa02", "aa03"}
    assert store.revoke_host("h1", 7 * S) == 0  # idempotent
    with pytest.raises(KeyError):
        store.revoke_host("ghost", 7 * S)

    # A revoked host cannot obtain a trusted certificate by renewing.
    store.add_certificate("h1", "aa04", 8 * S, 3600 * S)
    assert store.is_revoked("aa04")

    # Re-enrolling (with a fresh token) clears the revoked flag.
    store.enroll_host("h1", "h1-new", {}, "aa05", 9 * S, 3600 * S, 9 * S)
    assert not store.get_host("h1").revoked  # type: ignore[union-attr]
    assert not store.is_revoked("aa05")
    assert store.is_revoked("aa04")

    # A reused serial is refused rather than silently un-revoking it.
    with pytest.raises(sqlite3.IntegrityError):
        store.enroll_host("h2", "h2", {}, "aa01", 0, 1, 10 * S)
    assert store.get_host("h2") is None  # the failed enroll left nothing behind
    assert store.is_revoked("aa01")


def test_touch_and_list_hosts(store: SqliteStore) -> None:
    enroll(store, "h2", "02")
    enroll(store, "h1", "01")
    store.touch_host("h1", 50 * S, hostname="renamed", agent_version="1.2.3")
    store.touch_host("h1", 40 * S, hostname="", agent_version=None)  # older time, empty name: no change
    store.touch_host("ghost", 50 * S)  # unknown host: nothing happens
    hosts = store.list_hosts()
    assert [x.host_id for x in hosts] == ["h1", "h2"]
    assert (hosts[0].hostname, hosts[0].agent_version, hosts[0].last_seen_ns) == ("renamed", "1.2.3", 50 * S)


# --- ingest -------------------------------------------------------------------------------

def test_commit_dedup(store: SqliteStore) -> None:
    enroll(store)
    assert store.committed_seq("h1", "sp1") == 0
    assert store.commit_batches([batch(1, 5)], 10 * S) == [CommitResult(5, 0)]
    assert store.committed_seq("h1", "sp1") == 5
    # Pure duplicate (an ack was lost): nothing stored.
    assert store.commit_batches([batch(1, 5)], 11 * S) == [CommitResult(5, 5)]
    assert store.commit_batches([batch(3, 4)], 11 * S) == [CommitResult(5, 2)]
    # Partial overlap: 4 and 5 skipped, 6..8 stored.
    b = batch(4, 8, records=[metric(i, t=i * S) for i in range(4, 9)])
    b.records[0].value = b.records[1].value = -1.0  # would show up if the duplicates were stored
    assert store.commit_batches([b], 12 * S) == [CommitResult(8, 2)]
    # Gap (the agent dropped 9..10): allowed.
    assert store.commit_batches([batch(11, 12)], 13 * S) == [CommitResult(12, 0)]
    assert points(store) == [(i * S, float(i)) for i in (1, 2, 3, 4, 5, 6, 7, 8, 11, 12)]
    assert store.get_host("h1").last_seen_ns == 13 * S  # type: ignore[union-attr]
    assert store.counts()["samples"] == 10


def test_commit_same_spool_twice_and_independent_spools(store: SqliteStore) -> None:
    enroll(store)
    enroll(store, "h2", "bb")
    res = store.commit_batches([
        batch(1, 3),
        batch(2, 5),                # overlaps the first batch of this very call
        batch(1, 2, spool="sp2", records=[metric(i, name="mem") for i in (1, 2)]),  # other spool
        batch(1, 1, host="h2"),     # same spool id, other host
        batch(1, 3),                # pure duplicate within the call
    ], 20 * S)
    assert res == [CommitResult(3, 0), CommitResult(5, 2), CommitResult(2, 0), CommitResult(1, 0),
                   CommitResult(5, 3)]
    assert store.committed_seq("h1", "sp1") == 5
    assert store.committed_seq("h1", "sp2") == 2
    assert store.committed_seq("h2", "sp1") == 1
    assert points(store) == [(i * S, float(i)) for i in range(1, 6)]
    assert points(store, name="mem") == [(1 * S, 1.0), (2 * S, 2.0)]
    assert points(store, host="h2") == [(1 * S, 1.0)]
    assert {x.host_id: x.last_seen_ns for x in store.list_hosts()} == {"h1": 20 * S, "h2": 20 * S}


def test_commit_empty_and_malformed(store: SqliteStore) -> None:
    assert store.commit_batches([], 1) == []
    with pytest.raises(ValueError):
        store.commit_batches([Batch("h1", "sp1", 1, 3, [metric(1)])], 1)
    with pytest.raises(ValueError):
        store.commit_batches([Batch("h1", "sp1", 0, 0, [metric(1)])], 1)
    assert store.committed_seq("h1", "sp1") == 0


def test_commit_rollback_keeps_caches_consistent(store: SqliteStore) -> None:
    enroll(store)
    store.commit_batches([batch(1, 2)], 10 * S)
    before = store.change_counter()
    disk = metric(1, name="disk", labels={"dev": "sda"})
    bad = batch(3, 4, records=[metric(3, name="disk", labels={"dev": "sda"}), "not a record"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        store.commit_batches([batch(1, 1, spool="sp2", records=[disk]), bad], 11 * S)
    # Nothing of the failed call is visible; the marks did not move.
    assert store.committed_seq("h1", "sp1") == 2
    assert store.committed_seq("h1", "sp2") == 0
    assert store.query_metrics("h1", "disk") == []
    assert store.counts()["series"] == 1
    assert all(k[1] != "disk" for k in store._series)
    assert store.get_host("h1").last_seen_ns == 10 * S  # type: ignore[union-attr]
    assert store.change_counter() == before
    # The series created in the rolled-back transaction was not cached: a retry creates it
    # for real and its samples are queryable (a stale cached id would orphan them).
    res = store.commit_batches([batch(1, 1, spool="sp2", records=[disk]), batch(3, 4)], 12 * S)
    assert res == [CommitResult(1, 0), CommitResult(4, 0)]
    assert points(store, name="disk") == [(1 * S, 1.0)]
    assert points(store) == [(i * S, float(i)) for i in range(1, 5)]


def test_inventory_newest_wins_and_os(store: SqliteStore) -> None:
    enroll(store)
    os1 = InventorySection("os", 10 * S, {"os_name": "Debian 12", "agent_version": "0.1.0", "kernel": "6.1"})
    pk = InventorySection("packages", 10 * S, {"count": 3})
    assert store.commit_batches([batch(1, 2, records=[os1, pk])], 11 * S) == [CommitResult(2, 0)]
    host = store.get_host("h1")
    assert host is not None and (host.os, host.agent_version) == ("Debian 12", "0.1.0")
    # An older snapshot arriving later is ignored (and does not touch hosts.os).
    old = InventorySection("os", 5 * S, {"os_name": "Debian 11", "agent_version": "0.0.9"})
    # Equal time replaces; empty values do not blank the host's fields.
    same = InventorySection("packages", 10 * S, {"count": 4})
    store.commit_batches([batch(3, 4, records=[old, same])], 12 * S)
    inv = store.inventory("h1")
    assert inv == {"os": (10 * S, os1.data), "packages": (10 * S, {"count": 4})}
    assert store.get_host("h1").os == "Debian 12"  # type: ignore[union-attr]
    new = InventorySection("os", 20 * S, {"os_name": "Debian 13", "agent_version": ""})
    store.commit_batches([batch(5, 5, records=[new])], 21 * S)
    host = store.get_host("h1")
    assert host is not None and (host.os, host.agent_version) == ("Debian 13", "0.1.0")
    assert store.inventory("h1")["os"] == (20 * S, {"os_name": "Debian 13", "agent_version": ""})
    assert store.counts()["inventory"] == 2
    assert store.inventory("nobody") == {}


def test_queries(store: SqliteStore) -> None:
    enroll(store)
    enroll(store, "h2", "bb")
    recs: list[Record] = [
        metric(1, labels={"core": "0"}, t=1 * S), metric(2, labels={"core": "1"}, t=1 * S),
        metric(3, labels={"core": "0"}, t=2 * S), metric(4, labels={"core": "1"}, t=3 * S),
        MetricSample("load", {}, 0.5, 2 * S),
        MetricSample("load", {}, float("nan"), 3 * S),  # SQLite stores NaN as NULL
        Event("login", "notice", 5 * S, {"user": "root", "uid": 0, "ok": True, "ratio": 1.5},
              "raw line", "auth"),
        Event("boot", "info", 4 * S),
    ]
    store.commit_batches([batch(1, len(recs), records=recs),
                          batch(1, 1, host="h2", records=[Event("panic", "critical", 6 * S)])], 10 * S)

    series = store.query_metrics("h1", "cpu")
    assert [(s.name, s.labels, s.points) for s in series] == [
        ("cpu", {"core": "0"}, [(1 * S, 1.0), (2 * S, 3.0)]),
        ("cpu", {"core": "1"}, [(1 * S, 2.0), (3 * S, 4.0)]),
    ]
    window = store.query_metrics("h1", "cpu", since_ns=2 * S, until_ns=2 * S)  # bounds are inclusive
    assert [s.points for s in window] == [[(2 * S, 3.0)]]
    assert [s.points for s in store.query_metrics("h1", "cpu", since_ns=3 * S)] == [[(3 * S, 4.0)]]
    assert store.query_metrics("h2", "cpu") == []

    latest = {(s.name, tuple(s.labels.items())): s.points for s in store.latest_metrics("h1")}
    assert latest[("cpu", (("core", "0"),))] == [(2 * S, 3.0)]
    assert latest[("cpu", (("core", "1"),))] == [(3 * S, 4.0)]
    (load_pt,) = latest[("load", ())]
    assert load_pt[0] == 3 * S and math.isnan(load_pt[1])

    evs = store.events()
    assert [(e.host_id, e.event.kind) for e in evs] == [("h2", "panic"), ("h1", "login"), ("h1", "boot")]
    assert evs[1].event == recs[6]  # fields keep their types (bool, int, float, str)
    assert [e.event.kind for e in store.events("h1")] == ["login", "boot"]
    assert [e.event.kind for e in store.events(since_ns=5 * S)] == ["panic", "login"]
    assert [e.event.kind for e in store.events(limit=1)] == ["panic"]
    assert store.events("h3") == []

    assert store.counts() == {"hosts": 2, "series": 3, "samples": 6, "events": 3, "inventory": 0}


def test_labels_canonical(store: SqliteStore) -> None:
    enroll(store)
    store.commit_batches([batch(1, 2, records=[
        MetricSample("net", {"a": "1", "b": "2"}, 1.0, 1 * S),
        MetricSample("net", {"b": "2", "a": "1"}, 2.0, 2 * S),  # same label set, other order
    ])], 3 * S)
    (series,) = store.query_metrics("h1", "net")
    assert series.points == [(1 * S, 1.0), (2 * S, 2.0)]
    # Same time again replaces the point (INSERT OR REPLACE).
    store.commit_batches([batch(3, 3, records=[MetricSample("net", {"b": "2", "a": "1"}, 9.0, 2 * S)])],
                         4 * S)
    assert store.query_metrics("h1", "net")[0].points == [(1 * S, 1.0), (2 * S, 9.0)]


def test_retention(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_mod, "RETENTION_CHUNK", 7)  # exercise the chunk loops
    enroll(store)
    recs: list[Record] = []
    for t in range(1, 31):
        recs.append(MetricSample("cpu", {}, float(t), t * S))
        if t <= 10:
            recs.append(MetricSample("old", {}, float(t), t * S))  # a series that expires entirely
        recs.append(Event("tick", "info", t * S))
    store.commit_batches([batch(1, len(recs), records=recs)], 31 * S)
    assert store.counts()["samples"] == 40

    # Keep metrics 10 s (t >= 20), events 5 s (t >= 25), at now = 30 s.
    deleted = store.apply_retention(30 * S, metrics_seconds=10, events_seconds=5)
    assert deleted == (19 + 10) + 24
    assert [p[0] for p in points(store)] == [t * S for t in range(20, 31)]
    assert store.query_metrics("h1", "old") == []
    assert [e.event.time_ns for e in store.events(limit=100)] == [t * S for t in range(30, 24, -1)]
    assert store.counts() == {"hosts": 1, "series": 1, "samples": 11, "events": 6, "inventory": 0}
    # The dropped series' cached id is gone: new samples of "old" land in a fresh series.
    seq = len(recs) + 1
    store.commit_batches([batch(seq, seq, records=[MetricSample("old", {}, 7.0, 40 * S)])], 41 * S)
    assert points(store, name="old") == [(40 * S, 7.0)]
    # Zero retention keeps forever.
    assert store.apply_retention(10**6 * S, 0, 0) == 0
    assert store.counts()["samples"] == 12


def test_change_counter_sees_other_instance(db: Path, store: SqliteStore) -> None:
    enroll(store)
    c0 = store.change_counter()
    assert store.change_counter() == c0  # stable when nothing happens
    store.touch_host("h1", 5 * S)
    c1 = store.change_counter()
    assert c1 != c0
    other = SqliteStore(db)  # e.g. `warden-collector host revoke` in another process
    try:
        assert other.revoke_host("h1", 6 * S) == 1
    finally:
        other.close()
    assert store.change_counter() != c1
    assert store.is_revoked("aa01")
    assert "aa01" in store.revoked_serials()


def test_revoke_from_another_process(db: Path, store: SqliteStore) -> None:
    import subprocess
    import sys

    enroll(store)
    c0 = store.change_counter()
    code = ("import sys; from pathlib import Path; from warden.collector.store.sqlite import SqliteStore; "
            "s = SqliteStore(Path(sys.argv[1])); print(s.revoke_host('h1', 1)); s.close()")
    out = subprocess.run([sys.executable, "-c", code, str(db)], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "1"
    assert store.change_counter() != c0
    assert store.is_revoked("aa01")


def test_reopen_preserves_everything(db: Path) -> None:
    s = SqliteStore(db)
    s.add_token("t1", h("s"), {"a": "b"}, 0, 100 * S)
    s.consume_token("t1", h("s"), 1 * S, "h1")
    enroll(s)
    s.commit_batches([batch(1, 3, records=[metric(1), InventorySection("os", 1 * S, {"os_name": "X"}),
                                           Event("boot", "info", 2 * S)])], 5 * S)
    s.close()

    s = SqliteStore(db)
    try:
        assert s.committed_seq("h1", "sp1") == 3
        assert s.commit_batches([batch(1, 3)], 6 * S) == [CommitResult(3, 3)]  # still a duplicate
        assert s.list_tokens()[0].used_by == "h1"
        host = s.get_host("h1")
        assert host is not None and host.os == "X" and host.cert_serial == "aa01"
        assert not s.is_revoked("aa01")
        assert points(s) == [(1 * S, 1.0)]
        assert s.inventory("h1") == {"os": (1 * S, {"os_name": "X"})}
        assert [e.event.kind for e in s.events()] == ["boot"]
        # The series id comes from the file, not a fresh one.
        s.commit_batches([batch(4, 4, records=[metric(4)])], 7 * S)
        assert s.counts()["series"] == 1
    finally:
        s.close()


def test_full_disk(db: Path) -> None:
    s = SqliteStore(db)
    try:
        enroll(s)
        s.commit_batches([batch(1, 100)], 10 * S)
        conn = sqlite3.connect(db)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.close()
        s.set_max_pages(pages + 1)

        big = [batch(101 + i * 500, 100 + (i + 1) * 500,
                     records=[metric(j, name=f"m{j % 50}", labels={"i": str(j)}, t=(i * 500 + j) * S)
                              for j in range(500)])
               for i in range(4)]
        with pytest.raises(sqlite3.OperationalError, match="full"):
            s.commit_batches(big, 11 * S)
        # Earlier data and marks intact; nothing of the failed group visible or cached.
        assert s.committed_seq("h1", "sp1") == 100
        assert points(s) == [(i * S, float(i)) for i in range(1, 101)]
        assert s.counts()["series"] == 1
        assert len(s._series) == 1
        assert s.get_host("h1").last_seen_ns == 10 * S  # type: ignore[union-attr]
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()

        # Space freed: the retry stores everything.
        s.set_max_pages(None)
        assert s.commit_batches(big, 12 * S) == [CommitResult(100 + (i + 1) * 500, 0) for i in range(4)]
        assert s.committed_seq("h1", "sp1") == 2100
        assert s.counts()["samples"] == 2100
    finally:
        s.close()

    # The constructor argument caps a fresh instance the same way.
    s = SqliteStore(db, max_pages=pages + 1)
    try:
        with pytest.raises(sqlite3.OperationalError, match="full"):
            s.commit_batches([batch(2101 + i * 500, 2100 + (i + 1) * 500,
                                    records=[metric(j, name="z", labels={"i": str(j)}) for j in range(500)])
                              for i in range(4)], 13 * S)
        assert s.committed_seq("h1", "sp1") == 2100
    finally:
        s.close()


def test_readers_while_writing(store: SqliteStore) -> None:
    enroll(store)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def read() -> None:
        try:
            while not stop.is_set():
                n = len(points(store))
                assert n % 50 == 0  # whole commits only
                seen.append(n)
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(40):
        store.commit_batches([batch(i * 50 + 1, (i + 1) * 50)], i)
    stop.set()
    for t in readers:
        t.join()
    assert not errors
    assert seen and max(seen) <= 2000
    assert len(points(store)) == 2000


def test_throughput(store: SqliteStore) -> None:
    """Group commits of 8 batches x 500 samples (50 hosts x 50 series); prints records/s."""
    hosts = [f"host{i:02d}" for i in range(50)]
    for i, host in enumerate(hosts):
        enroll(store, host, f"{i:04x}")
    seqs = dict.fromkeys(hosts, 0)
    groups = []
    t = 0
    for g in range(40):
        group = []
        for k in range(8):
            host = hosts[(g * 8 + k) % len(hosts)]
            recs: list[Record] = []
            for _step in range(10):
                t += 1
                recs.extend(MetricSample(f"metric{m % 10}", {"dev": f"d{m}", "host": host}, float(m), t * S)
                            for m in range(50))
            first = seqs[host] + 1
            seqs[host] += len(recs)
            group.append(Batch(host, "spool", first, seqs[host], recs))
        groups.append(group)
    total = sum(len(b.records) for g in groups for b in g)

    start = time.perf_counter()
    for g in groups:
        store.commit_batches(g, 1)
    elapsed = time.perf_counter() - start
    rate = total / elapsed
    print(f"\ncommit_batches: {total} records in {elapsed:.2f}s = {rate:,.0f} records/s "
          f"({len(groups)} group commits of 8 x 500)")
    assert store.counts()["samples"] == total
    assert rate > 20_000
