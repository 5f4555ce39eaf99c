"""Durable state of the alert manager: alert occurrences, their timelines, silences, the
change feed and the rules engine's snapshot, in one SQLite file of their own.

One row in `alerts` is one occurrence: an alert that fires, resolves and fires again is two
rows with the same fingerprint. A partial unique index keeps at most one open (pending or
firing) row per fingerprint, so a bug in the caller cannot create duplicates.

Concurrency: one connection behind a lock; the alert manager is the only writer, HTTP
handlers read. WAL with synchronous=FULL: a write that returned survives a power cut.
Every write is one `BEGIN IMMEDIATE` transaction (see `transaction`), so an alert change,
its history rows and its feed entries are stored together or not at all.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    severity    TEXT NOT NULL,
    host        TEXT NOT NULL DEFAULT '',
    labels      TEXT NOT NULL,
    annotations TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    starts_ns   INTEGER NOT NULL,
    fired_ns    INTEGER,
    updated_ns  INTEGER NOT NULL,
    ends_ns     INTEGER,
    value       REAL,
    ack_by      TEXT,
    ack_ns      INTEGER,
    ack_comment TEXT,
    silenced_by TEXT NOT NULL DEFAULT '[]',
    inhibited   INTEGER NOT NULL DEFAULT 0,
    notified_ns INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts(fingerprint) WHERE state != 'resolved';
CREATE INDEX IF NOT EXISTS alerts_starts ON alerts(starts_ns);
CREATE INDEX IF NOT EXISTS alerts_host ON alerts(host, starts_ns);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts(rule_id, starts_ns);
CREATE TABLE IF NOT EXISTS alert_history (
    id       INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    at_ns    INTEGER NOT NULL,
    what     TEXT NOT NULL,
    actor    TEXT NOT NULL DEFAULT '',
    detail   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_history_alert ON alert_history(alert_id, at_ns);
CREATE TABLE IF NOT EXISTS silences (
    id         INTEGER PRIMARY KEY,
    matchers   TEXT NOT NULL,
    starts_ns  INTEGER NOT NULL,
    ends_ns    INTEGER NOT NULL,
    author     TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    created_ns INTEGER NOT NULL,
    expired_by TEXT
);
CREATE INDEX IF NOT EXISTS silences_ends ON silences(ends_ns);
CREATE TABLE IF NOT EXISTS feed (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ns    INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    what     TEXT NOT NULL DEFAULT '',
    alert_id INTEGER,
    payload  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS engine_state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
) WITHOUT ROWID;
"""

HISTORY_KINDS = ("pending", "firing", "resolved", "acknowledged", "unacknowledged", "silenced",
                 "unsilenced", "inhibited", "uninhibited", "notified", "annotation_changed")

_ALERT_COLUMNS = ("id, fingerprint, rule_id, severity, host, labels, annotations, state, starts_ns, "
                  "fired_ns, updated_ns, ends_ns, value, ack_by, ack_ns, ack_comment, silenced_by, "
                  "inhibited, notified_ns")
_SILENCE_COLUMNS = "id, matchers, starts_ns, ends_ns, author, comment, created_ns, expired_by"


def rfc3339(ns: int | None) -> str | None:
    """UTC RFC 3339 with milliseconds when there are any: `2024-05-01T12:00:00.250Z`."""
    if ns is None:
        return None
    sec, rem = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    ms = rem // 1_000_000
    return f"{base}.{ms:03d}Z" if ms else f"{base}Z"


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True, default=str)


def _finite(v: float | None) -> float | None:
    # JSON has no NaN/Infinity; SQLite stores NaN as NULL anyway.
    return v if v is None or math.isfinite(v) else None


@dataclass(slots=True)
class AlertRecord:
    """One alert occurrence as stored."""

    id: int
    fingerprint: str
    rule_id: str
    severity: str
    host: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    starts_ns: int
    fired_ns: int | None
    updated_ns: int
    ends_ns: int | None = None
    value: float | None = None
    ack_by: str | None = None
    ack_ns: int | None = None
    ack_comment: str | None = None
    silenced_by: list[int] = field(default_factory=list)
    inhibited: bool = False
    notified_ns: int | None = None

    @property
    def open(self) -> bool:
        return self.state != "resolved"

    @property
    def muted(self) -> bool:
        return bool(self.silenced_by) or self.inhibited

    def payload(self) -> dict[str, Any]:
        """The JSON-able view handed to the feed, the HTTP API and the notifiers."""
        ack = None
        if self.ack_by is not None:
            ack = {"by": self.ack_by, "at": rfc3339(self.ack_ns), "at_ns": self.ack_ns,
                   "comment": self.ack_comment or ""}
        return {
            "id": self.id, "fingerprint": self.fingerprint, "rule": self.rule_id,
            "severity": self.severity, "labels": dict(self.labels), "annotations": dict(self.annotations),
            "state": self.state,
            "starts_at": rfc3339(self.starts_ns), "starts_ns": self.starts_ns,
            "fired_at": rfc3339(self.fired_ns), "fired_ns": self.fired_ns,
            "ends_at": rfc3339(self.ends_ns), "ends_ns": self.ends_ns,
            "updated_ns": self.updated_ns,
            "value": _finite(self.value), "acknowledged": ack,
            "silenced_by": list(self.silenced_by), "inhibited": self.inhibited,
        }


@dataclass(slots=True)
class SilenceRecord:
    id: int
    matchers: dict[str, Any]
    starts_ns: int
    ends_ns: int
    author: str
    comment: str
    created_ns: int
    expired_by: str | None = None

    def state(self, now_ns: int) -> str:
        if now_ns >= self.ends_ns:
            return "expired"
        return "active" if now_ns >= self.starts_ns else "pending"

    def payload(self, now_ns: int) -> dict[str, Any]:
        return {"id": self.id, "matchers": self.matchers, "starts_at": rfc3339(self.starts_ns),
                "starts_ns": self.starts_ns, "ends_at": rfc3339(self.ends_ns), "ends_ns": self.ends_ns,
                "author": self.author, "comment": self.comment, "created_ns": self.created_ns,
                "expired_by": self.expired_by, "state": self.state(now_ns)}


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One change, in order: `position` only grows (also across restarts).

    kind "alert": `payload` is the alert after the change, `what` the history kind
    (firing, silenced, acknowledged, ...). kind "silence": the silence, `what` is
    "created" or "expired", alert_id None.
    """

    position: int
    at_ns: int
    kind: str
    alert_id: int | None
    payload: dict[str, Any]
    what: str = ""


def _alert(row: tuple[Any, ...]) -> AlertRecord:
    return AlertRecord(id=row[0], fingerprint=row[1], rule_id=row[2], severity=row[3], host=row[4],
                       labels=json.loads(row[5]), annotations=json.loads(row[6]), state=row[7],
                       starts_ns=row[8], fired_ns=row[9], updated_ns=row[10], ends_ns=row[11],
                       value=row[12], ack_by=row[13], ack_ns=row[14], ack_comment=row[15],
                       silenced_by=json.loads(row[16]), inhibited=bool(row[17]), notified_ns=row[18])


def _silence(row: tuple[Any, ...]) -> SilenceRecord:
    return SilenceRecord(id=row[0], matchers=json.loads(row[1]), starts_ns=row[2], ends_ns=row[3],
                         author=row[4], comment=row[5], created_ns=row[6], expired_by=row[7])


def _feed(row: tuple[Any, ...]) -> FeedEntry:
    return FeedEntry(position=row[0], at_ns=row[1], kind=row[2], what=row[3], alert_id=row[4],
                     payload=json.loads(row[5]))


class StoreTx:
    """The writes of one transaction; only valid inside `AlertStore.transaction()`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def insert_alert(self, a: AlertRecord) -> int:
        """Insert `a` (its id is ignored) and return the new id."""
        cur = self._c.execute(
            "INSERT INTO alerts (fingerprint, rule_id, severity, host, labels, annotations, state, "
            "starts_ns, fired_ns, updated_ns, ends_ns, value, ack_by, ack_ns, ack_comment, silenced_by, "
            "inhibited, notified_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (a.fingerprint, a.rule_id, a.severity, a.host, _dumps(a.labels), _dumps(a.annotations),
             a.state, a.starts_ns, a.fired_ns, a.updated_ns, a.ends_ns, a.value, a.ack_by, a.ack_ns,
             a.ack_comment, _dumps(a.silenced_by), int(a.inhibited), a.notified_ns))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def update_alert(self, a: AlertRecord) -> None:
        self._c.execute(
            "UPDATE alerts SET annotations = ?, state = ?, fired_ns = ?, updated_ns = ?, ends_ns = ?, "
            "value = ?, ack_by = ?, ack_ns = ?, ack_comment = ?, silenced_by = ?, inhibited = ?, "
            "notified_ns = ? WHERE id = ?",
            (_dumps(a.annotations), a.state, a.fired_ns, a.updated_ns, a.ends_ns, a.value, a.ack_by,
             a.ack_ns, a.ack_comment, _dumps(a.silenced_by), int(a.inhibited), a.notified_ns, a.id))

    def set_notified(self, alert_id: int, at_ns: int) -> None:
        self._c.execute("UPDATE alerts SET notified_ns = ? WHERE id = ?", (at_ns, alert_id))

    def add_history(self, alert_id: int, at_ns: int, what: str, actor: str = "", detail: str = "") -> None:
        if what not in HISTORY_KINDS:
            raise ValueError(f"unknown history kind {what!r}")
        self._c.execute("INSERT INTO alert_history (alert_id, at_ns, what, actor, detail) "
                        "VALUES (?, ?, ?, ?, ?)", (alert_id, at_ns, what, actor, detail))

    def append_feed(self, at_ns: int, kind: str, alert_id: int | None, payload: dict[str, Any],
                    what: str = "") -> FeedEntry:
        cur = self._c.execute("INSERT INTO feed (at_ns, kind, what, alert_id, payload) "
                              "VALUES (?, ?, ?, ?, ?)", (at_ns, kind, what, alert_id, _dumps(payload)))
        assert cur.lastrowid is not None
        return FeedEntry(cur.lastrowid, at_ns, kind, alert_id, payload, what)

    def insert_silence(self, s: SilenceRecord) -> int:
        cur = self._c.execute(
            "INSERT INTO silences (matchers, starts_ns, ends_ns, author, comment, created_ns, expired_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (_dumps(s.matchers), s.starts_ns, s.ends_ns, s.author, s.comment, s.created_ns, s.expired_by))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def update_silence(self, s: SilenceRecord) -> None:
        self._c.execute("UPDATE silences SET starts_ns = ?, ends_ns = ?, expired_by = ? WHERE id = ?",
                        (s.starts_ns, s.ends_ns, s.expired_by, s.id))

    def set_state(self, key: str, value: Any, now_ns: int) -> None:
        self._c.execute("INSERT INTO engine_state (key, value, updated_ns) VALUES (?, ?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                        "updated_ns = excluded.updated_ns",
                        (key, json.dumps(value, separators=(",", ":")), now_ns))


class AlertStore:
    """The alert manager's SQLite database. Thread-safe; see the module docstring."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so no implicit transaction
        # ever holds the write lock between calls.
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=BUSY_TIMEOUT_MS / 1000)
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._init_schema()

    def _init_schema(self) -> None:
        with self.transaction() as tx:
            conn = tx._c
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: alert schema version {version} is newer than this "
                                   f"collector understands ({SCHEMA_VERSION})")
            if version < SCHEMA_VERSION:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def prune(self, before_ns: int) -> int:
        """Retention: forget feed entries older than `before_ns`, and alerts (with their
        history) resolved before it; open alerts and silences not yet ended are kept.
        Returns rows deleted."""
        with self.transaction() as tx:
            conn = tx._c
            # Positions grow with time: delete up to the newest old one (no index on at_ns).
            n = conn.execute("DELETE FROM feed WHERE position <= "
                             "(SELECT max(position) FROM feed WHERE at_ns < ?)", (before_ns,)).rowcount
            n += conn.execute("DELETE FROM alert_history WHERE alert_id IN (SELECT id FROM alerts "
                              "WHERE state = 'resolved' AND ends_ns < ?)", (before_ns,)).rowcount
            n += conn.execute("DELETE FROM alerts WHERE state = 'resolved' AND ends_ns < ?",
                              (before_ns,)).rowcount
            n += conn.execute("DELETE FROM silences WHERE ends_ns < ?", (before_ns,)).rowcount
        return n

    @contextmanager
    def transaction(self) -> Iterator[StoreTx]:
        """One write transaction; rolled back if the block raises."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield StoreTx(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # --- alerts ---------------------------------------------------------------------------
    def alert(self, alert_id: int) -> AlertRecord | None:
        rows = self._query(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))
        return _alert(rows[0]) if rows else None

    def open_alerts(self) -> list[AlertRecord]:
        return [_alert(r) for r in self._query(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE state != 'resolved' ORDER BY id")]

    def alerts_between(self, since_ns: int, until_ns: int, limit: int, host: str | None = None,
                       rule: str | None = None) -> list[AlertRecord]:
        """Occurrences active at some time in [since, until), newest start first."""
        sql = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE starts_ns < ? AND (ends_ns IS NULL OR ends_ns >= ?)"
        args: list[Any] = [until_ns, since_ns]
        if host is not None:
            sql += " AND host = ?"
            args.append(host)
        if rule is not None:
            sql += " AND rule_id = ?"
            args.append(rule)
        sql += " ORDER BY starts_ns DESC, id DESC LIMIT ?"
        args.append(limit)
        return [_alert(r) for r in self._query(sql, tuple(args))]

    def history(self, alert_id: int) -> list[dict[str, Any]]:
        rows = self._query("SELECT at_ns, what, actor, detail FROM alert_history WHERE alert_id = ? "
                           "ORDER BY at_ns, id", (alert_id,))
        return [{"alert_id": alert_id, "at_ns": r[0], "at": rfc3339(r[0]), "what": r[1], "actor": r[2],
                 "detail": r[3]} for r in rows]

    # --- silences -------------------------------------------------------------------------
    def silence(self, silence_id: int) -> SilenceRecord | None:
        rows = self._query(f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE id = ?", (silence_id,))
        return _silence(rows[0]) if rows else None

    def silences(self, not_ended_at_ns: int | None = None) -> list[SilenceRecord]:
        """All silences, or only those still pending or active at `not_ended_at_ns`."""
        if not_ended_at_ns is None:
            rows = self._query(f"SELECT {_SILENCE_COLUMNS} FROM silences ORDER BY id")
        else:
            rows = self._query(f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE ends_ns > ? ORDER BY id",
                               (not_ended_at_ns,))
        return [_silence(r) for r in rows]

    # --- feed -----------------------------------------------------------------------------
    def feed_since(self, position: int, limit: int) -> list[FeedEntry]:
        rows = self._query("SELECT position, at_ns, kind, what, alert_id, payload FROM feed "
                           "WHERE position > ? ORDER BY position LIMIT ?", (position, limit))
        return [_feed(r) for r in rows]

    def last_position(self) -> int:
        # sqlite_sequence keeps the high-water mark even if the newest rows were ever deleted.
        rows = self._query("SELECT seq FROM sqlite_sequence WHERE name = 'feed'")
        return int(rows[0][0]) if rows else 0

    # --- engine snapshot ------------------------------------------------------------------
    def get_state(self, key: str) -> Any | None:
        rows = self._query("SELECT value FROM engine_state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def set_state(self, key: str, value: Any, now_ns: int) -> None:
        with self.transaction() as tx:
            tx.set_state(key, value, now_ns)
