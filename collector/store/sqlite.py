"""SQLite implementation of the collector's Store.

Concurrency model: one write connection behind a lock (the collector writes from one
group-commit thread, the HTTP/gRPC handlers write rarely), one read connection per reader
thread (WAL lets them read while the writer writes), and one connection dedicated to
`PRAGMA data_version`. Another process (`warden-collector host revoke`) may open the same
file at any time; every write is a `BEGIN IMMEDIATE` transaction so the two serialize
through SQLite's own lock, waiting up to `busy_timeout`.

Durability: WAL with synchronous=FULL, so a commit that returned is on disk; the collector
acks agents only after `commit_batches` returns.
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from warden.collector.records import Batch, CommitResult, Event, InventorySection, MetricSample
from warden.collector.store.base import (
    Host,
    InventoryObserver,
    SeriesPoints,
    StoredEvent,
    TokenInfo,
    TokenRefused,
)

SCHEMA_VERSION = 3  # 2: operators; 3: query tables derived from inventory (inv_*)
QUERY_SCHEMA_VERSION = 3  # the first version with the inv_* tables (warden.collector.query needs them)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
# Rows deleted per retention transaction: small enough that the ingest writer never waits
# long for the write lock, large enough that retention still progresses quickly.
RETENTION_CHUNK = 5000

# Data tables (series, events, inventory, spools) carry no foreign key to hosts on purpose:
# ingest identity comes from a verified client certificate, and one odd batch must never be
# able to fail a whole group commit. Certificates do reference hosts.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_id    TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    labels      TEXT NOT NULL DEFAULT '{}',
    created_ns  INTEGER NOT NULL,
    expires_ns  INTEGER NOT NULL,
    used_ns     INTEGER,
    used_by     TEXT
);
CREATE TABLE IF NOT EXISTS hosts (
    host_id       TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL DEFAULT '',
    labels        TEXT NOT NULL DEFAULT '{}',
    os            TEXT NOT NULL DEFAULT '',
    agent_version TEXT NOT NULL DEFAULT '',
    cert_serial   TEXT NOT NULL DEFAULT '',
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns  INTEGER NOT NULL,
    revoked_ns    INTEGER
);
CREATE TABLE IF NOT EXISTS certificates (
    serial        TEXT PRIMARY KEY,
    host_id       TEXT NOT NULL REFERENCES hosts(host_id),
    not_before_ns INTEGER NOT NULL,
    not_after_ns  INTEGER NOT NULL,
    revoked_ns    INTEGER
);
CREATE INDEX IF NOT EXISTS certificates_host ON certificates(host_id);
CREATE TABLE IF NOT EXISTS operators (
    serial        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    not_before_ns INTEGER NOT NULL,
    not_after_ns  INTEGER NOT NULL,
    created_ns    INTEGER NOT NULL,
    revoked_ns    INTEGER
);
CREATE TABLE IF NOT EXISTS spools (
    host_id       TEXT NOT NULL,
    spool_id      TEXT NOT NULL,
    committed_seq INTEGER NOT NULL,
    PRIMARY KEY (host_id, spool_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    id      INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    labels  TEXT NOT NULL,
    UNIQUE (host_id, name, labels)
);
-- value is nullable: SQLite stores a NaN as NULL, and a NaN sample must not fail a group commit.
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL,
    time_ns   INTEGER NOT NULL,
    value     REAL,
    PRIMARY KEY (series_id, time_ns)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inventory (
    host_id TEXT NOT NULL,
    section TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (host_id, section)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id       INTEGER PRIMARY KEY,
    host_id  TEXT NOT NULL,
    time_ns  INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    severity TEXT NOT NULL,
    fields   TEXT NOT NULL DEFAULT '{}',
    raw      TEXT NOT NULL DEFAULT '',
    source   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_host_time ON events(host_id, time_ns);
CREATE INDEX IF NOT EXISTS events_time ON events(time_ns);

-- Query tables (warden.collector.query, docs/queries.md): the latest `packages`, `updates` and
-- `os` sections in rows, maintained in the same transaction that stores the section, so fleet-wide
-- questions use indexes instead of parsing every host's JSON. Packages are interned: a fleet
-- shares few distinct (name, version, arch, manager) tuples, so a host's 2,000 packages are
-- 2,000 pairs of small integers, and "which hosts have openssl older than V" compares each
-- distinct version once.
CREATE TABLE IF NOT EXISTS inv_hosts (
    hk      INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL UNIQUE
);
-- Never deleted: bounded by the distinct versions ever seen, and unreferenced rows match no host.
CREATE TABLE IF NOT EXISTS inv_pkg_versions (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    version TEXT NOT NULL,
    arch    TEXT NOT NULL,
    manager TEXT NOT NULL,
    UNIQUE (name, version, arch, manager)
);
CREATE TABLE IF NOT EXISTS inv_packages (
    hk INTEGER NOT NULL,
    pv INTEGER NOT NULL,
    PRIMARY KEY (hk, pv)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inv_packages_pv ON inv_packages(pv);
-- first_seen_ns: time of the first snapshot that listed this (package, new version) pending,
-- kept while later snapshots list it, forgotten when one does not.
CREATE TABLE IF NOT EXISTS inv_pending (
    host_id         TEXT NOT NULL,
    name            TEXT NOT NULL,
    new_version     TEXT NOT NULL,
    arch            TEXT NOT NULL,
    current_version TEXT NOT NULL,
    security        INTEGER NOT NULL,
    origin          TEXT NOT NULL,
    first_seen_ns   INTEGER NOT NULL,
    PRIMARY KEY (host_id, name, new_version, arch)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inv_pending_security ON inv_pending(first_seen_ns) WHERE security = 1;
CREATE INDEX IF NOT EXISTS inv_pending_name ON inv_pending(name);
-- One row per host with an `updates` section (reboot_since_ns works like first_seen_ns).
CREATE TABLE IF NOT EXISTS inv_updates (
    host_id          TEXT PRIMARY KEY,
    time_ns          INTEGER NOT NULL,
    manager          TEXT NOT NULL,
    pending_count    INTEGER NOT NULL,
    security_count   INTEGER NOT NULL,
    last_update_unix INTEGER NOT NULL,
    reboot_required  INTEGER NOT NULL,
    reboot_since_ns  INTEGER,
    reboot_packages  TEXT NOT NULL,
    running_kernel   TEXT NOT NULL,
    newest_kernel    TEXT NOT NULL,
    error            TEXT NOT NULL
) WITHOUT ROWID;
-- OS facts of the latest `os` section: a lookup in `inventory`, whose rows hold whole package
-- lists, costs a page read per host.
CREATE TABLE IF NOT EXISTS inv_os (
    host_id        TEXT PRIMARY KEY,
    time_ns        INTEGER NOT NULL,
    os_id          TEXT NOT NULL,
    os_version     TEXT NOT NULL,
    kernel         TEXT NOT NULL,
    arch           TEXT NOT NULL,
    boot_time_unix INTEGER NOT NULL,
    timezone       TEXT NOT NULL
) WITHOUT ROWID;
"""

_HOST_COLUMNS = ("host_id, hostname, labels, os, agent_version, cert_serial, first_seen_ns, "
                 "last_seen_ns, revoked_ns")


def canonical_labels(labels: dict[str, str]) -> str:
    """The stored form of a label set: one spelling per set, so UNIQUE(host, name, labels) holds."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


# default=str: an odd value in an inventory/event payload must not fail the whole group. One
# encoder for all: json.dumps with options builds a new one per call (every stored event).
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _host(row: tuple[Any, ...]) -> Host:
    return Host(host_id=row[0], hostname=row[1], labels=json.loads(row[2]), os=row[3],
                agent_version=row[4], cert_serial=row[5], first_seen_ns=row[6],
                last_seen_ns=row[7], revoked=row[8] is not None)


def _value(v: float | None) -> float:
    return float("nan") if v is None else v


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def _int(v: Any) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


class _Ids:
    """Interned ids: a cache of committed rows plus the rows added by the open transaction,
    merged only after COMMIT (a rolled-back id must never be reused from the cache)."""

    def __init__(self, limit: int) -> None:
        self.committed: dict[Any, int] = {}
        self.pending: dict[Any, int] = {}
        self.limit = limit

    def get(self, key: Any) -> int | None:
        i = self.committed.get(key)
        return self.pending.get(key) if i is None else i

    def commit(self) -> None:
        if len(self.committed) + len(self.pending) > self.limit:
            self.committed.clear()  # a cache, not the truth: refilled from the table on misses
        self.committed.update(self.pending)
        self.pending.clear()

    def rollback(self) -> None:
        self.pending.clear()


class SqliteStore:
    """Store backed by one SQLite file. Thread-safe; see the module docstring."""

    def __init__(self, path: Path | str, *, max_pages: int | None = None,
                 inventory_observer: InventoryObserver | None = None) -> None:
        """Open or create the database at `path`.

        max_pages: cap the database size (in pages) on the write connection; used to test
        full-disk behaviour. None means no cap.
        inventory_observer: called as (host, section, old_data, new_data) when a stored
        inventory section changes; the events it returns are stored in the same transaction
        (the machine register's change events).
        """
        self.path = Path(path)
        self._observer = inventory_observer
        self._closed = False
        self._wlock = threading.Lock()
        # Ids of inv_hosts / inv_pkg_versions rows (write connection only, under _wlock).
        self._host_keys = _Ids(1_000_000)
        self._pkg_ids = _Ids(2_000_000)
        self._w = self._connect()
        self._w.execute("PRAGMA cache_size=-32000")  # 32 MiB: keeps series/sample b-tree pages hot
        self._w.execute("PRAGMA journal_size_limit=67108864")  # truncate the WAL after checkpoints
        self._init_schema()
        self._default_max_pages = self._w.execute("PRAGMA max_page_count").fetchone()[0]
        if max_pages is not None:
            self.set_max_pages(max_pages)

        # Caches for the hot path; only ever updated after a successful COMMIT. Series are
        # keyed by (host, name, tuple(labels.items())), not by the canonical JSON: building
        # that JSON per sample cost more than the whole SQLite insert. Two orderings of one
        # label set are two keys for the same id (both resolved through the canonical form).
        self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
        self._marks: dict[tuple[str, str], int] = {}

        self._own_writes = 0
        self._dv_lock = threading.Lock()
        self._dv = self._connect()
        self._dv_last = self._dv.execute("PRAGMA data_version").fetchone()[0]
        self._dv_generation = 0

        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    # --- connections ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so the module never opens
        # implicit transactions that would hold a read snapshot or the write lock.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _init_schema(self) -> None:
        conn = self._w
        conn.execute("BEGIN IMMEDIATE")  # two processes creating the file at once serialize here
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: schema version {version} is newer than this "
                                   f"collector understands ({SCHEMA_VERSION})")
            if version < SCHEMA_VERSION:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                if version < QUERY_SCHEMA_VERSION:
                    self._backfill_query_tables(conn)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._host_keys.rollback()
            self._pkg_ids.rollback()
            raise
        self._host_keys.commit()
        self._pkg_ids.commit()

    def _backfill_query_tables(self, conn: sqlite3.Connection) -> None:
        """Fill the inv_* tables from the stored sections of a database older than them.

        Runs inside the schema transaction, so a migration is all or nothing. First-seen times
        start at each stored snapshot's time: the store never knew anything older.
        """
        started = time.monotonic()
        n = 0
        keys = conn.execute("SELECT host_id, section FROM inventory WHERE section IN "
                            "('packages', 'updates', 'os') ORDER BY host_id, section").fetchall()
        for host, section in keys:  # one section in memory at a time: package lists are large
            t, text = conn.execute("SELECT time_ns, data FROM inventory WHERE host_id = ? AND section = ?",
                                   (host, section)).fetchone()
            try:
                data = json.loads(text)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            if section == "packages":
                if data.get("full") is not False:
                    self._index_packages(conn, host, data)
            elif section == "updates":
                self._index_updates(conn, host, t, data)
            else:
                self._index_os(conn, host, t, data)
            n += 1
        if n:
            log.info("%s: indexed %d stored packages/updates/os sections for queries in %.1f s",
                     self.path, n, time.monotonic() - started)

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise sqlite3.ProgrammingError("store is closed")
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the write connection; rolled back on any exception."""
        with self._wlock:
            conn = self._w
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back by itself (e.g. on SQLITE_FULL).
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._own_writes += 1

    def set_max_pages(self, max_pages: int | None) -> None:
        """Cap the database size in pages (None: SQLite's default); used to test full-disk behaviour."""
        n = self._default_max_pages if max_pages is None else max_pages
        with self._wlock:
            self._w.execute(f"PRAGMA max_page_count={int(n)}")

    # --- enrollment tokens ----------------------------------------------------------------
    def add_token(self, token_id: str, secret_hash: bytes, labels: dict[str, str],
                  created_ns: int, expires_ns: int) -> None:
        with self._tx() as conn:
            conn.execute("INSERT INTO tokens (token_id, secret_hash, labels, created_ns, expires_ns) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (token_id, bytes(secret_hash), _dumps(labels), created_ns, expires_ns))

    def consume_token(self, token_id: str, secret_hash: bytes, now_ns: int,
                      host_id: str) -> dict[str, str]:
        with self._tx() as conn:
            row = conn.execute("SELECT secret_hash, labels, expires_ns, used_ns FROM tokens "
                               "WHERE token_id = ?", (token_id,)).fetchone()
            # A wrong secret is reported like a missing id: no oracle for which ids exist.
            if row is None or not hmac.compare_digest(bytes(row[0]), bytes(secret_hash)):
                raise TokenRefused("unknown")
            if row[3] is not None:
                raise TokenRefused("used")
            if now_ns >= row[2]:
                raise TokenRefused("expired")
            # The write lock already serializes this process; the WHERE guards against
            # another process that consumed it between our SELECT and UPDATE.
            cur = conn.execute("UPDATE tokens SET used_ns = ?, used_by = ? "
                               "WHERE token_id = ? AND used_ns IS NULL", (now_ns, host_id, token_id))
            if cur.rowcount != 1:
                raise TokenRefused("used")
            return json.loads(row[1])

    def list_tokens(self) -> list[TokenInfo]:
        rows = self._reader().execute(
            "SELECT token_id, labels, created_ns, expires_ns, used_ns, used_by FROM tokens "
            "ORDER BY created_ns, token_id").fetchall()
        return [TokenInfo(token_id=r[0], labels=json.loads(r[1]), created_ns=r[2], expires_ns=r[3],
                          used_ns=r[4], used_by=r[5]) for r in rows]

    # --- hosts and certificates -----------------------------------------------------------
    def enroll_host(self, host_id: str, hostname: str, labels: dict[str, str], cert_serial: str,
                    not_before_ns: int, not_after_ns: int, now_ns: int) -> None:
        serial = cert_serial.lower()
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO hosts ({_HOST_COLUMNS}) VALUES (?, ?, ?, '', '', ?, ?, ?, NULL) "
                "ON CONFLICT(host_id) DO UPDATE SET hostname = excluded.hostname, "
                "labels = excluded.labels, cert_serial = excluded.cert_serial, revoked_ns = NULL, "
                "last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns)",
                (host_id, hostname, _dumps(labels), serial, now_ns, now_ns))
            conn.execute("UPDATE certificates SET revoked_ns = ? "
                         "WHERE host_id = ? AND revoked_ns IS NULL", (now_ns, host_id))
            # A plain INSERT: a reused serial is a CA bug and must fail, never un-revoke a cert.
            conn.execute("INSERT INTO certificates (serial, host_id, not_before_ns, not_after_ns) "
                         "VALUES (?, ?, ?, ?)", (serial, host_id, not_before_ns, not_after_ns))

    def add_certificate(self, host_id: str, cert_serial: str, not_before_ns: int,
                        not_after_ns: int) -> None:
        serial = cert_serial.lower()
        with self._tx() as conn:
            row = conn.execute("SELECT revoked_ns FROM hosts WHERE host_id = ?", (host_id,)).fetchone()
            if row is None:
                raise KeyError(host_id)
            # A revoked host cannot get a trusted certificate by renewing: record it revoked.
            conn.execute("INSERT INTO certificates (serial, host_id, not_before_ns, not_after_ns, "
                         "revoked_ns) VALUES (?, ?, ?, ?, ?)",
                         (serial, host_id, not_before_ns, not_after_ns, row[0]))
            conn.execute("UPDATE hosts SET cert_serial = ? WHERE host_id = ?", (serial, host_id))

    def revoke_host(self, host_id: str, now_ns: int) -> int:
        with self._tx() as conn:
            cur = conn.execute("UPDATE hosts SET revoked_ns = COALESCE(revoked_ns, ?) WHERE host_id = ?",
                               (now_ns, host_id))
            if cur.rowcount == 0:
                raise KeyError(host_id)
            cur = conn.execute("UPDATE certificates SET revoked_ns = ? "
                               "WHERE host_id = ? AND revoked_ns IS NULL", (now_ns, host_id))
            return cur.rowcount

    def add_operator_cert(self, name: str, cert_serial: str, not_before_ns: int, not_after_ns: int,
                          now_ns: int) -> None:
        with self._tx() as conn:
            conn.execute("INSERT INTO operators (serial, name, not_before_ns, not_after_ns, created_ns) "
                         "VALUES (?, ?, ?, ?, ?)", (cert_serial.lower(), name, not_before_ns, not_after_ns,
                                                    now_ns))

    def operator_of(self, cert_serial: str) -> str | None:
        row = self._reader().execute("SELECT name FROM operators WHERE serial = ? AND revoked_ns IS NULL",
                                     (cert_serial.lower(),)).fetchone()
        return row[0] if row else None

    def revoke_operator(self, name: str, now_ns: int) -> int:
        with self._tx() as conn:
            return conn.execute("UPDATE operators SET revoked_ns = ? WHERE name = ? AND revoked_ns IS NULL",
                                (now_ns, name)).rowcount

    def is_revoked(self, cert_serial: str) -> bool:
        row = self._reader().execute("SELECT revoked_ns FROM certificates WHERE serial = ?",
                                     (cert_serial.lower(),)).fetchone()
        return row is None or row[0] is not None  # never issued = not trusted

    def revoked_serials(self) -> set[str]:
        rows = self._reader().execute(
            "SELECT serial FROM certificates WHERE revoked_ns IS NOT NULL").fetchall()
        return {r[0] for r in rows}

    def change_counter(self) -> int:
        # data_version changes when ANY other connection commits (our write connection
        # included); _own_writes is added so our own commits are seen even without relying
        # on that. Both parts only grow, so their sum changes whenever either does.
        with self._dv_lock:
            dv = self._dv.execute("PRAGMA data_version").fetchone()[0]
            if dv != self._dv_last:
                self._dv_last = dv
                self._dv_generation += 1
            return self._dv_generation + self._own_writes

    def get_host(self, host_id: str) -> Host | None:
        row = self._reader().execute(f"SELECT {_HOST_COLUMNS} FROM hosts WHERE host_id = ?",
                                     (host_id,)).fetchone()
        return None if row is None else _host(row)

    def list_hosts(self) -> list[Host]:
        rows = self._reader().execute(f"SELECT {_HOST_COLUMNS} FROM hosts ORDER BY host_id").fetchall()
        return [_host(r) for r in rows]

    def touch_host(self, host_id: str, now_ns: int, *, hostname: str | None = None,
                   agent_version: str | None = None) -> None:
        """Mark the host seen; empty/None hostname or agent_version leave the stored value."""
        with self._tx() as conn:
            # MAX: a wall clock stepping back must not make a host look older than it is.
            conn.execute("UPDATE hosts SET last_seen_ns = MAX(last_seen_ns, ?), "
                         "hostname = COALESCE(NULLIF(?, ''), hostname), "
                         "agent_version = COALESCE(NULLIF(?, ''), agent_version) WHERE host_id = ?",
                         (now_ns, hostname, agent_version, host_id))

    # --- ingest ---------------------------------------------------------------------------
    def committed_seq(self, host_id: str, spool_id: str) -> int:
        seq = self._marks.get((host_id, spool_id))
        if seq is not None:
            return seq
        # Not cached: read without populating the cache (only the writer may, after COMMIT).
        row = self._reader().execute("SELECT committed_seq FROM spools WHERE host_id = ? AND spool_id = ?",
                                     (host_id, spool_id)).fetchone()
        return 0 if row is None else row[0]

    def commit_batches(self, batches: Sequence[Batch], now_ns: int) -> list[CommitResult]:
        for b in batches:
            # The skip arithmetic relies on records[i] having sequence first_seq + i.
            if b.first_seq < 1 or b.last_seq - b.first_seq + 1 != len(b.records):
                raise ValueError(f"batch {b.host_id}/{b.spool_id} [{b.first_seq}, {b.last_seq}] "
                                 f"holds {len(b.records)} records")
        if not batches:
            return []

        series_cache = self._series
        mark_cache = self._marks
        # Overlays for this transaction; merged into the caches only after COMMIT succeeds.
        new_series: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
        marks: dict[tuple[str, str], int] = {}
        dirty_marks: set[tuple[str, str]] = set()
        samples: list[tuple[int, int, float]] = []
        events: list[tuple[str, int, str, str, str, str, str]] = []
        hosts: set[str] = set()
        results: list[CommitResult] = []

        with self._wlock:
            conn = self._w
            conn.execute("BEGIN IMMEDIATE")
            try:
                for b in batches:
                    host = b.host_id
                    key = (host, b.spool_id)
                    hosts.add(host)
                    committed = marks.get(key)
                    if committed is None:
                        committed = mark_cache.get(key)
                        if committed is None:
                            row = conn.execute("SELECT committed_seq FROM spools "
                                               "WHERE host_id = ? AND spool_id = ?", key).fetchone()
                            committed = 0 if row is None else row[0]
                        marks[key] = committed
                    if b.last_seq <= committed:  # pure duplicate: an agent resending after a lost ack
                        results.append(CommitResult(committed, len(b.records)))
                        continue
                    skipped = committed - b.first_seq + 1 if b.first_seq <= committed else 0
                    records = b.records[skipped:] if skipped else b.records
                    derived: list[Event] = []
                    for r in records:
                        if type(r) is MetricSample:
                            skey = (host, r.name, tuple(r.labels.items()))
                            sid = series_cache.get(skey)
                            if sid is None:
                                sid = new_series.get(skey)
                                if sid is None:
                                    sid = self._series_id(conn, host, r.name, r.labels)
                                    new_series[skey] = sid
                            samples.append((sid, r.time_ns, r.value))
                        elif type(r) is Event:
                            events.append((host, r.time_ns, r.kind, r.severity, _dumps(r.fields),
                                           r.raw, r.source))
                        elif type(r) is InventorySection:
                            for e in self._put_inventory(conn, host, r):
                                derived.append(e)
                                events.append((host, e.time_ns, e.kind, e.severity, _dumps(e.fields),
                                               e.raw, e.source))
                        else:
                            raise TypeError(f"unknown record type {type(r).__name__}")
                    marks[key] = b.last_seq
                    dirty_marks.add(key)
                    results.append(CommitResult(b.last_seq, skipped, tuple(derived)))

                if samples:
                    conn.executemany("INSERT OR REPLACE INTO samples (series_id, time_ns, value) "
                                     "VALUES (?, ?, ?)", samples)
                if events:
                    conn.executemany("INSERT INTO events (host_id, time_ns, kind, severity, fields, "
                                     "raw, source) VALUES (?, ?, ?, ?, ?, ?, ?)", events)
                if dirty_marks:
                    conn.executemany(
                        "INSERT INTO spools (host_id, spool_id, committed_seq) VALUES (?, ?, ?) "
                        "ON CONFLICT(host_id, spool_id) DO UPDATE SET committed_seq = "
                        "MAX(committed_seq, excluded.committed_seq)",
                        [(k[0], k[1], marks[k]) for k in dirty_marks])
                conn.executemany("UPDATE hosts SET last_seen_ns = MAX(last_seen_ns, ?) WHERE host_id = ?",
                                 [(now_ns, h) for h in hosts])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite rolls back by itself on some errors (SQLITE_FULL)
                    conn.execute("ROLLBACK")
                self._host_keys.rollback()
                self._pkg_ids.rollback()
                raise
            self._host_keys.commit()
            self._pkg_ids.commit()
            series_cache.update(new_series)
            mark_cache.update(marks)
            self._own_writes += 1
        return results

    @staticmethod
    def _series_id(conn: sqlite3.Connection, host: str, name: str, labels: dict[str, str]) -> int:
        skey = (host, name, canonical_labels(labels))
        row = conn.execute("SELECT id FROM series WHERE host_id = ? AND name = ? AND labels = ?",
                           skey).fetchone()
        if row is not None:
            return row[0]
        cur = conn.execute("INSERT INTO series (host_id, name, labels) VALUES (?, ?, ?)", skey)
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _put_inventory(self, conn: sqlite3.Connection, host: str, r: InventorySection) -> list[Event]:
        """Store a section if it is not older than the stored one; return change events."""
        row = conn.execute("SELECT time_ns, data FROM inventory WHERE host_id = ? AND section = ?",
                           (host, r.section)).fetchone()
        old = json.loads(row[1]) if row else None
        # Newer or equal time wins: an agent resending the same section after a restart
        # should still update it; an out-of-order older snapshot must not.
        if row and r.time_ns < row[0]:
            return []
        data = r.data
        # A section sent as "unchanged since hash H" (e.g. the package list) refreshes the
        # time of the full copy stored earlier instead of replacing it.
        if old and data.get("full") is False and data.get("content_hash") and \
                data.get("content_hash") == old.get("content_hash"):
            conn.execute("UPDATE inventory SET time_ns = ? WHERE host_id = ? AND section = ?",
                         (r.time_ns, host, r.section))
            return []
        conn.execute(
            "INSERT INTO inventory (host_id, section, time_ns, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(host_id, section) DO UPDATE SET time_ns = excluded.time_ns, "
            "data = excluded.data", (host, r.section, r.time_ns, _dumps(data)))
        if r.section == "packages" and data.get("full") is not False:
            self._index_packages(conn, host, data)
        elif r.section == "updates":
            self._index_updates(conn, host, r.time_ns, data)
        if r.section == "os":
            self._index_os(conn, host, r.time_ns, data)
            os_name = data.get("os_name")
            agent_version = data.get("agent_version")
            conn.execute("UPDATE hosts SET os = COALESCE(NULLIF(?, ''), os), "
                         "agent_version = COALESCE(NULLIF(?, ''), agent_version) WHERE host_id = ?",
                         (str(os_name) if os_name else None,
                          str(agent_version) if agent_version else None, host))
        if self._observer is None or old is None or old == data:
            return []
        return list(self._observer(host, r.section, old, data))

    # --- query tables (inv_*) ----------------------------------------------------------------
    def _host_key(self, conn: sqlite3.Connection, host: str) -> int:
        hk = self._host_keys.get(host)
        if hk is None:
            row = conn.execute("SELECT hk FROM inv_hosts WHERE host_id = ?", (host,)).fetchone()
            if row is None:
                cur = conn.execute("INSERT INTO inv_hosts (host_id) VALUES (?)", (host,))
                assert cur.lastrowid is not None
                hk = cur.lastrowid
            else:
                hk = row[0]
            self._host_keys.pending[host] = hk
        return hk

    def _index_packages(self, conn: sqlite3.Connection, host: str, data: dict[str, Any]) -> None:
        """Make the host's inv_packages rows those of this full package list: only the
        difference is written (an upgrade of a few packages is a few rows)."""
        hk = self._host_key(conn, host)
        manager = _text(data.get("manager"))
        pkgs = data.get("packages")
        ids = self._pkg_ids
        new: set[int] = set()
        for p in pkgs if isinstance(pkgs, list) else ():
            if not isinstance(p, dict) or not p.get("name"):
                continue
            name, version, arch = p.get("name"), p.get("version"), p.get("arch")
            if type(name) is not str or type(version) is not str or type(arch) is not str:
                name, version, arch = _text(name), _text(version), _text(arch)  # the rare odd agent
            key = (name, version, arch, manager)
            pv = ids.committed.get(key) or ids.pending.get(key)
            if pv is None:
                row = conn.execute("SELECT id FROM inv_pkg_versions WHERE name = ? AND version = ? "
                                   "AND arch = ? AND manager = ?", key).fetchone()
                if row is None:
                    cur = conn.execute("INSERT INTO inv_pkg_versions (name, version, arch, manager) "
                                       "VALUES (?, ?, ?, ?)", key)
                    assert cur.lastrowid is not None
                    pv = cur.lastrowid
                else:
                    pv = row[0]
                ids.pending[key] = pv
            new.add(pv)
        old = {r[0] for r in conn.execute("SELECT pv FROM inv_packages WHERE hk = ?", (hk,))}
        if old - new:
            conn.executemany("DELETE FROM inv_packages WHERE hk = ? AND pv = ?",
                             [(hk, pv) for pv in old - new])
        if new - old:
            conn.executemany("INSERT INTO inv_packages (hk, pv) VALUES (?, ?)",
                             [(hk, pv) for pv in sorted(new - old)])

    @staticmethod
    def _index_updates(conn: sqlite3.Connection, host: str, time_ns: int, data: dict[str, Any]) -> None:
        """Store the host's update status and pending list, carrying first-seen times over.

        Like the alert engine's checks: an `error` means the agent could not compute the
        pending list, so the last known list and its clocks stay; a reboot flag that is false
        beside an error is "unknown" and keeps the reboot clock too.
        """
        error = _text(data.get("error"))
        reboot = bool(data.get("reboot_required"))
        row = conn.execute("SELECT reboot_since_ns FROM inv_updates WHERE host_id = ?", (host,)).fetchone()
        since = row[0] if row else None
        if reboot:
            since = time_ns if since is None else min(since, time_ns)
        elif not error:
            since = None
        reboot_pkgs = data.get("reboot_required_packages")
        conn.execute(
            "INSERT OR REPLACE INTO inv_updates (host_id, time_ns, manager, pending_count, security_count, "
            "last_update_unix, reboot_required, reboot_since_ns, reboot_packages, running_kernel, "
            "newest_kernel, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (host, time_ns, _text(data.get("manager")), _int(data.get("pending_count")),
             _int(data.get("security_count")), _int(data.get("last_update_unix")), int(reboot), since,
             _dumps(reboot_pkgs if isinstance(reboot_pkgs, list) else []),
             _text(data.get("running_kernel")), _text(data.get("newest_kernel")), error))
        if error:
            return
        seen = {(r[0], r[1], r[2]): r[3] for r in conn.execute(
            "SELECT name, new_version, arch, first_seen_ns FROM inv_pending WHERE host_id = ?", (host,))}
        pending = data.get("pending")
        rows: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        for u in pending if isinstance(pending, list) else ():
            if not isinstance(u, dict) or not u.get("name"):
                continue
            key = (_text(u.get("name")), _text(u.get("new_version")), _text(u.get("arch")))
            first = seen.get(key)
            rows[key] = (host, *key, _text(u.get("current_version")), int(bool(u.get("security"))),
                         _text(u.get("origin")), time_ns if first is None else min(first, time_ns))
        # Pending lists are short (tens): replacing them whole is simpler than diffing.
        if seen:
            conn.execute("DELETE FROM inv_pending WHERE host_id = ?", (host,))
        if rows:
            conn.executemany("INSERT INTO inv_pending (host_id, name, new_version, arch, current_version, "
                             "security, origin, first_seen_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             list(rows.values()))

    @staticmethod
    def _index_os(conn: sqlite3.Connection, host: str, time_ns: int, data: dict[str, Any]) -> None:
        conn.execute("INSERT OR REPLACE INTO inv_os (host_id, time_ns, os_id, os_version, kernel, arch, "
                     "boot_time_unix, timezone) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (host, time_ns, _text(data.get("os_id")), _text(data.get("os_version")),
                      _text(data.get("kernel")), _text(data.get("arch")), _int(data.get("boot_time_unix")),
                      _text(data.get("timezone"))))

    def query_database(self) -> Path:
        return self.path

    # --- queries --------------------------------------------------------------------------
    def query_metrics(self, host_id: str, name: str, since_ns: int = 0,
                      until_ns: int | None = None) -> list[SeriesPoints]:
        """Points with since_ns <= time_ns <= until_ns; series without such points are omitted."""
        until = (1 << 63) - 1 if until_ns is None else until_ns
        # One statement, so one consistent snapshot even while the writer commits.
        rows = self._reader().execute(
            "SELECT s.id, s.labels, p.time_ns, p.value FROM series s "
            "JOIN samples p ON p.series_id = s.id "
            "WHERE s.host_id = ? AND s.name = ? AND p.time_ns >= ? AND p.time_ns <= ? "
            "ORDER BY s.labels, p.time_ns", (host_id, name, since_ns, until)).fetchall()
        out: list[SeriesPoints] = []
        current = None
        for sid, labels, t, v in rows:
            if sid != current:
                current = sid
                out.append(SeriesPoints(name=name, labels=json.loads(labels)))
            out[-1].points.append((t, _value(v)))
        return out

    def latest_metrics(self, host_id: str) -> list[SeriesPoints]:
        rows = self._reader().execute(
            "SELECT s.name, s.labels, p.time_ns, p.value FROM series s "
            "JOIN samples p ON p.series_id = s.id "
            "AND p.time_ns = (SELECT MAX(time_ns) FROM samples WHERE series_id = s.id) "
            "WHERE s.host_id = ? ORDER BY s.name, s.labels", (host_id,)).fetchall()
        return [SeriesPoints(name=n, labels=json.loads(lb), points=[(t, _value(v))])
                for n, lb, t, v in rows]

    def inventory(self, host_id: str) -> dict[str, tuple[int, dict[str, Any]]]:
        rows = self._reader().execute("SELECT section, time_ns, data FROM inventory WHERE host_id = ?",
                                      (host_id,)).fetchall()
        return {s: (t, json.loads(d)) for s, t, d in rows}

    def events(self, host_id: str | None = None, since_ns: int = 0,
               limit: int = 100) -> list[StoredEvent]:
        cols = "id, host_id, time_ns, kind, severity, fields, raw, source"
        if host_id is None:
            rows = self._reader().execute(
                f"SELECT {cols} FROM events WHERE time_ns >= ? ORDER BY time_ns DESC, id DESC LIMIT ?",
                (since_ns, limit)).fetchall()
        else:
            rows = self._reader().execute(
                f"SELECT {cols} FROM events WHERE host_id = ? AND time_ns >= ? "
                "ORDER BY time_ns DESC, id DESC LIMIT ?", (host_id, since_ns, limit)).fetchall()
        return [StoredEvent(id=r[0], host_id=r[1],
                            event=Event(kind=r[3], severity=r[4], time_ns=r[2], fields=json.loads(r[5]),
                                        raw=r[6], source=r[7]))
                for r in rows]

    def counts(self) -> dict[str, int]:
        tables = ("hosts", "series", "samples", "events", "inventory")
        row = self._reader().execute(
            "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)).fetchone()
        return dict(zip(tables, row, strict=True))

    # --- maintenance ----------------------------------------------------------------------
    def apply_retention(self, now_ns: int, metrics_seconds: int, events_seconds: int) -> int:
        """Delete samples/events older than the retention (a value <= 0 keeps forever) and
        series left without samples; return samples + events deleted.

        Works in transactions of at most RETENTION_CHUNK rows, releasing the write lock in
        between, so ingest waits at most one small transaction.
        """
        deleted = 0
        if metrics_seconds > 0:
            deleted += self._expire_samples(now_ns - metrics_seconds * 1_000_000_000)
            self._drop_empty_series()
        if events_seconds > 0:
            cutoff = now_ns - events_seconds * 1_000_000_000
            while True:
                with self._tx() as conn:
                    n = conn.execute("DELETE FROM events WHERE id IN (SELECT id FROM events "
                                     "WHERE time_ns < ? LIMIT ?)", (cutoff, RETENTION_CHUNK)).rowcount
                deleted += n
                if n < RETENTION_CHUNK:
                    break
                time.sleep(0)  # let a waiting writer take the lock
        return deleted

    def _expire_samples(self, cutoff: int) -> int:
        # Walk series by id and delete each one's old samples through the primary key
        # (series_id, time_ns): no full scan, and bounded work per transaction.
        deleted = 0
        after = -1
        while True:
            with self._tx() as conn:
                sids = [r[0] for r in conn.execute("SELECT id FROM series WHERE id > ? ORDER BY id "
                                                   "LIMIT 256", (after,))]
                budget = RETENTION_CHUNK
                for sid in sids:
                    n = conn.execute(
                        "DELETE FROM samples WHERE series_id = ? AND time_ns IN (SELECT time_ns "
                        "FROM samples WHERE series_id = ? AND time_ns < ? LIMIT ?)",
                        (sid, sid, cutoff, budget)).rowcount
                    deleted += n
                    budget -= n
                    if budget <= 0:
                        break  # this series may hold more: revisit it in the next transaction
                    after = sid
            if not sids:
                return deleted
            time.sleep(0)

    def _drop_empty_series(self) -> None:
        while True:
            with self._tx() as conn:
                n = conn.execute(
                    "DELETE FROM series WHERE id IN (SELECT id FROM series s WHERE NOT EXISTS "
                    "(SELECT 1 FROM samples WHERE series_id = s.id) LIMIT ?)", (RETENTION_CHUNK,)).rowcount
                if n:
                    # Still under the write lock: no commit can use a dropped id from the cache
                    # (ids may be reused by new series, which would misattribute samples).
                    self._series.clear()
            if n < RETENTION_CHUNK:
                return
            time.sleep(0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._wlock:
            self._w.close()
        with self._dv_lock:
            self._dv.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
