"""Durable on-disk spool: records wait here until the collector acknowledges them.

SQLite in WAL mode with synchronous=FULL, so a record `append` returned is on disk. Each
record gets a sequence number from AUTOINCREMENT, which SQLite never reuses, even after
every row is deleted and the file reopened; the collector deduplicates by
(host, spool_id, seq), so a reused number would silently lose a record.

The size cap counts payload bytes only (the file is somewhat larger: pages, indexes, WAL).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import itemgetter
from pathlib import Path

__all__ = ["Spool", "SpoolError", "SpoolStats"]

_FORMAT = 1

_SCHEMA = (
    "CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL)",
    _CHECKPOINTS := "CREATE TABLE IF NOT EXISTS checkpoints (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
)


_PAGE_SIZE = 16384
# Rows per INSERT statement when appending (SQLite allows 32766 parameters since 3.32).
_INSERT_ROWS = 512
_INSERTS: dict[int, str] = {}


def _new_spool_id() -> str:
    """uuid.uuid4().hex (without the uuid module, which brings platform along: RSS for good)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    return b.hex()


class SpoolError(Exception):
    """The spool cannot be used as is (corrupt, not a spool, in use); nothing was deleted."""


@dataclass(frozen=True)
class SpoolStats:
    pending_records: int
    pending_bytes: int
    dropped_total: int  # dropped by the size cap, oldest first
    rejected_total: int  # discarded with drop(), e.g. refused by the collector
    first_seq: int  # lowest pending seq; 0 when nothing is pending
    last_seq: int  # highest seq ever assigned (survives ack of everything); 0 before the first


class Spool:
    def __init__(self, path: str | Path, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        # The transport may call from a worker thread while probes append from the loop.
        self._lock = threading.Lock()
        self._lockfile = self._acquire_process_lock()
        try:
            self._db = self._open()
            self._load_state()
            if self._bytes > self.max_bytes:  # the cap was lowered since the last run
                with self._tx():
                    self._trim()
        except BaseException:
            self.close()
            raise

    # --- opening ---------------------------------------------------------------------------------

    def _acquire_process_lock(self) -> int:
        # Two agents draining one spool would send every record twice. A separate lock file,
        # because closing any descriptor of the database itself drops SQLite's own POSIX locks.
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolError(f"{self.path}: spool is in use by another process") from None
        return fd

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            # Spooled records may hold log lines: owner-only. SQLite gives its WAL and shm
            # files the database file's permissions.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # Read-only checks first: a damaged file must be reported, never "repaired" by
            # writing a fresh schema over it.
            check = db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise SpoolError(
                    f"{self.path}: spool database is corrupt ({'; '.join(str(r[0]) for r in check[:3])}); "
                    "move it aside to start a new spool"
                )
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and not {"records", "meta"} <= tables:
                raise SpoolError(f"{self.path}: not a Warden spool (tables: {', '.join(sorted(tables))})")
            if not tables and self.path.stat().st_size == 0:
                # A new file: pages of 16 KiB rather than 4 (settable only before the first
                # write) take a quarter of the WAL frames and syscalls per record appended and
                # acknowledged: half the spool's share of the CPU when shipping logs.
                db.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise SpoolError(f"{self.path}: cannot enable WAL journal (got {mode!r})")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA busy_timeout = 5000")
            if tables:  # spools made before checkpoints existed
                db.execute(_CHECKPOINTS)
            if not tables:  # new file, or created by a run that died before this commit
                db.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    db.execute(statement)
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("format", _FORMAT),
                        ("spool_id", _new_spool_id()),
                        ("dropped_total", 0),
                        ("rejected_total", 0),
                    ],
                )
                db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            db.close()
            raise SpoolError(
                f"{self.path}: unreadable spool database ({e}); move it aside to start a new spool"
            ) from e
        except BaseException:
            db.close()
            raise
        return db

    def _load_state(self) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        missing = {"format", "spool_id", "dropped_total", "rejected_total"} - meta.keys()
        if missing:
            raise SpoolError(f"{self.path}: spool metadata lacks {sorted(missing)}")
        if meta["format"] != _FORMAT:
            raise SpoolError(f"{self.path}: spool format {meta['format']!r}, this agent reads {_FORMAT}")
        self._spool_id = str(meta["spool_id"])
        self._dropped = int(meta["dropped_total"])
        self._rejected = int(meta["rejected_total"])
        # One scan at open; afterwards the totals are kept up to date by each transaction.
        self._count, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM records"
        ).fetchone()
        self._last_seq = self._sequence()

    def _sequence(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        return int(row[0]) if row else 0

    # --- public API -----------------------------------------------------------------------------

    @property
    def spool_id(self) -> str:
        """Random id made when the spool was created; sent in Hello, with seq it identifies a record."""
        return self._spool_id

    def append(self, payloads: Sequence[bytes], checkpoints: Mapping[str, bytes] | None = None) -> int:
        """Store serialized records in one transaction; returns the last seq assigned.

        `checkpoints` (e.g. a log source's read position after the lines in `payloads`) are
        saved in the SAME transaction, so after a crash the records and the position that
        produced them are either both there or both not: nothing lost, nothing twice.
        """
        if not payloads and not checkpoints:
            return self._last_seq
        if not all(map(isinstance, payloads, repeat(bytes))):
            for p in payloads:
                if not isinstance(p, bytes):  # a str would be stored as TEXT and miscounted
                    raise TypeError(f"payloads must be bytes, got {type(p).__name__}")
        with self._tx():
            if checkpoints:
                self._db.executemany(
                    "INSERT INTO checkpoints (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value", checkpoints.items())
            self._insert(payloads)
            self._count += len(payloads)
            self._bytes += sum(map(len, payloads))
            self._last_seq = self._sequence()
            if self._bytes > self.max_bytes:
                self._trim()
        return self._last_seq

    @property
    def pending_bytes(self) -> int:
        """The running total of pending payload bytes (no query: cheap from any thread)."""
        return self._bytes

    def checkpoint(self, key: str) -> bytes | None:
        """The value last saved under `key` with an append, or None."""
        row = self._db.execute("SELECT value FROM checkpoints WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def peek(
        self, after_seq: int, max_records: int, max_bytes: int, *, contiguous: bool = False
    ) -> list[tuple[int, bytes]]:
        """Pending records with seq > after_seq, in order, at most `max_records` and `max_bytes`.

        The first record is returned even when it alone exceeds `max_bytes`, so a large record
        cannot stall the stream. Seqs can have gaps (dropped by the cap, or by `drop()`); with
        `contiguous=True` the result stops before the first gap, so it fits one protocol Batch
        (first_seq..last_seq with no holes).
        """
        with self._lock:
            rows: list[tuple[int, bytes]] = self._open_db().execute(
                "SELECT seq, payload FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, max_records),
            ).fetchall()
        if not rows:
            return rows
        # Running totals without a Python step per row: the rows up to the last one within
        # max_bytes, and at least the first.
        totals = list(accumulate(map(len, map(itemgetter(1), rows))))
        if totals[-1] > max_bytes:
            rows = rows[:max(1, bisect_right(totals, max_bytes))]
        if contiguous and rows[-1][0] - rows[0][0] != len(rows) - 1:  # a gap somewhere
            for i in range(1, len(rows)):
                if rows[i][0] != rows[i - 1][0] + 1:
                    return rows[:i]
        return rows

    def ack(self, upto_seq: int) -> int:
        """Delete every record with seq <= upto_seq (the collector has it); returns how many."""
        with self._tx():
            n, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM records WHERE seq <= ?", (upto_seq,)
            ).fetchone()
            if n:
                self._db.execute("DELETE FROM records WHERE seq <= ?", (upto_seq,))
                self._count -= n
                self._bytes -= size
        return n

    def drop(self, seqs: Iterable[int]) -> int:
        """Discard records the agent must not send again (e.g. refused by the collector).

        Counted in `rejected_total`; returns how many of `seqs` were pending.
        """
        wanted = sorted(set(seqs))
        removed = 0
        with self._tx():
            for i in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
                chunk = wanted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                n, size = self._db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM records WHERE seq IN ({marks})",
                    chunk,
                ).fetchone()
                if n:
                    self._db.execute(f"DELETE FROM records WHERE seq IN ({marks})", chunk)
                    removed += n
                    self._count -= n
                    self._bytes -= size
            if removed:
                self._rejected += removed
                self._set_meta("rejected_total", self._rejected)
        return removed

    def stats(self) -> SpoolStats:
        with self._lock:
            first = self._open_db().execute("SELECT MIN(seq) FROM records").fetchone()[0]
            return SpoolStats(
                pending_records=self._count,
                pending_bytes=self._bytes,
                dropped_total=self._dropped,
                rejected_total=self._rejected,
                first_seq=first or 0,
                last_seq=self._last_seq,
            )

    @staticmethod
    def peek_stats(path: str | Path) -> tuple[str, SpoolStats]:
        """(spool_id, stats) read without taking the spool: for `warden-agent status` while
        the agent runs. A read-only snapshot; WAL lets it read beside the writer."""
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta"))
            count, size, first = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0), MIN(seq) FROM records").fetchone()
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        except sqlite3.DatabaseError as e:
            raise SpoolError(f"{path}: unreadable spool database ({e})") from e
        finally:
            db.close()
        return str(meta.get("spool_id", "")), SpoolStats(
            pending_records=count, pending_bytes=size, dropped_total=int(meta.get("dropped_total", 0)),
            rejected_total=int(meta.get("rejected_total", 0)), first_seq=first or 0,
            last_seq=int(row[0]) if row else 0)

    def close(self) -> None:
        with self._lock:
            db = getattr(self, "_db", None)
            if db is not None:
                db.close()  # the last connection checkpoints and removes the WAL file
                self._db = None
            if self._lockfile is not None:
                os.close(self._lockfile)  # releases the flock
                self._lockfile = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction; on failure the in-memory totals are restored with the data."""
        with self._lock:
            self._open_db()
            saved = (self._count, self._bytes, self._last_seq, self._dropped, self._rejected)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._count, self._bytes, self._last_seq, self._dropped, self._rejected = saved
                # Some errors (SQLITE_FULL, SQLITE_IOERR, ...) make SQLite roll back by itself: a
                # ROLLBACK then raises "no transaction is active" and would hide the real error.
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # the original error matters more
                        self._db.execute("ROLLBACK")
                raise

    def _insert(self, payloads: Sequence[bytes]) -> None:
        """INSERT the payloads in order, many rows per statement (a third of the cost of a
        statement per row); chunks of fixed sizes keep the statements few, and cached."""
        db, i, n = self._db, 0, len(payloads)
        while i < n:
            size = _INSERT_ROWS if n - i >= _INSERT_ROWS else 1 << ((n - i).bit_length() - 1)
            sql = _INSERTS.get(size)
            if sql is None:
                sql = _INSERTS[size] = "INSERT INTO records (payload) VALUES " + ",".join(["(?)"] * size)
            db.execute(sql, payloads[i:i + size])
            i += size

    def _open_db(self) -> sqlite3.Connection:
        if self._db is None:
            raise SpoolError(f"{self.path}: spool is closed")
        return self._db

    def _trim(self) -> None:
        # Over the cap: drop the OLDEST records. When the collector is unreachable for long,
        # the newest records describe the host's current state and are the most useful to an
        # operator; old samples of a long outage are the cheapest to lose. Counted, persisted.
        excess = self._bytes - self.max_bytes
        freed = n = 0
        upto = 0
        cur = self._db.execute("SELECT seq, length(payload) FROM records ORDER BY seq")
        for seq, size in cur:
            upto, freed, n = seq, freed + size, n + 1
            if freed >= excess:
                break
        cur.close()  # finish the read before deleting the rows it walks
        self._db.execute("DELETE FROM records WHERE seq <= ?", (upto,))
        self._count -= n
        self._bytes -= freed
        self._dropped += n
        self._set_meta("dropped_total", self._dropped)

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
