"""Whole-fleet reads for the dashboard, each in a few SQL statements.

Why our own SQL instead of the Store interface: the overview needs a handful of figures
for every host. Through `Store` that is one `list_hosts` plus one `latest_metrics` per
host, and `latest_metrics` returns *every* series of the host (CPU modes, 9 per
filesystem, probe metrics, ...): with 1,000 hosts that measured ~0.8 s against ~0.13 s here
(tests/bench/bench_web.py), most of the one-second budget of a first render. The store module
belongs to the ingest path, so instead this module opens the same database file
read-only (`mode=ro`: it can never write, and WAL lets it read while ingest commits) and
asks only for the series it shows, one statement per kind of figure. Compliance reads
only the `updates` and `backups` inventory sections, through the primary key, instead of
each host's whole register (package lists are large).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NS = 1_000_000_000
# Metrics the tiles show; the newest sample of each series is read.
TILE_METRICS = ("system_filesystem_used_percent", "backup_newest_age_seconds", "updates_security_pending",
                "updates_pending", "reboot_required")
# A filesystem whose newest sample is this much older than the host's newest one was
# unmounted: it no longer counts for "worst filesystem".
GONE_FS_NS = 3600 * NS


@dataclass(slots=True)
class HostFacts:
    """What a tile shows about one host."""

    host_id: str
    hostname: str
    labels: dict[str, str]
    os: str
    agent_version: str
    last_seen_ns: int
    revoked: bool
    disk_pct: float | None = None  # worst filesystem
    disk_mount: str = ""
    backup_newest_ns: int | None = None  # the stalest set's newest backup
    backup_set: str = ""
    security_pending: int | None = None
    updates_pending: int | None = None
    reboot_required: bool | None = None
    _fs: list[tuple[int, float, str]] = field(default_factory=list, repr=False)


@dataclass(slots=True)
class PatchFacts:
    """A host's `updates` and `backups` sections (the compliance page)."""

    host_id: str
    labels: dict[str, str]
    updates: tuple[int, dict[str, Any]] | None
    backups: tuple[int, dict[str, Any]] | None
    # When the oldest still-pending security update was first reported (the store keeps a
    # first-seen time per pending update: collector/store/sqlite.py inv_pending).
    oldest_security_ns: int | None = None


class FleetReader:
    """Read-only connection to the collector's database. Thread-safe (one connection behind
    a lock; each read is a single statement, hence one consistent snapshot)."""

    def __init__(self, db_path: Path | str) -> None:
        uri = f"file:{urllib.parse.quote(str(Path(db_path).resolve()))}?mode=ro"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None,
                                     timeout=5)
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute("PRAGMA query_only=ON")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def facts(self, now_ns: int | None = None) -> list[HostFacts]:
        """Every host with its tile figures, ordered by host id: three statements in all."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        hosts = {r[0]: HostFacts(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6] is not None)
                 for r in self._rows("SELECT host_id, hostname, labels, os, agent_version, last_seen_ns, "
                                     "revoked_ns FROM hosts ORDER BY host_id")}
        marks = ", ".join("?" * len(TILE_METRICS))
        # hosts -> their series of these names (series index) -> the newest sample of each
        # (samples primary key). CROSS JOIN fixes that order: with a plain JOIN SQLite chose
        # to scan all of `samples`, ~17x slower at a million samples and growing with them.
        rows = self._rows(
            "SELECT s.host_id, s.name, s.labels, p.time_ns, p.value FROM hosts h "
            f"CROSS JOIN series s ON s.host_id = h.host_id AND s.name IN ({marks}) "
            "CROSS JOIN samples p ON p.series_id = s.id "
            "AND p.time_ns = (SELECT MAX(time_ns) FROM samples WHERE series_id = s.id)", TILE_METRICS)
        for host_id, name, labels_json, t, v in rows:
            h = hosts.get(host_id)
            if h is None or v is None:
                continue
            if name == "system_filesystem_used_percent":
                h._fs.append((t, v, json.loads(labels_json).get("mount", "")))
            elif name == "backup_newest_age_seconds":
                newest = t - int(v * NS)
                if h.backup_newest_ns is None or newest < h.backup_newest_ns:
                    h.backup_newest_ns, h.backup_set = newest, json.loads(labels_json).get("set", "")
            elif name == "updates_security_pending":
                h.security_pending = max(h.security_pending or 0, int(v))
            elif name == "updates_pending":
                h.updates_pending = max(h.updates_pending or 0, int(v))
            elif name == "reboot_required":
                h.reboot_required = bool(h.reboot_required) or v >= 1
        for h in hosts.values():
            if h._fs:
                newest = max(t for t, _, _ in h._fs)
                live = [(v, m) for t, v, m in h._fs if newest - t <= GONE_FS_NS]
                h.disk_pct, h.disk_mount = max(live)
                h._fs = []
        return list(hosts.values())

    def patch_facts(self) -> list[PatchFacts]:
        """Each host's `updates` and `backups` sections (primary-key lookups, no package lists)."""
        rows = self._rows(
            "SELECT h.host_id, h.labels, u.time_ns, u.data, b.time_ns, b.data FROM hosts h "
            "LEFT JOIN inventory u ON u.host_id = h.host_id AND u.section = 'updates' "
            "LEFT JOIN inventory b ON b.host_id = h.host_id AND b.section = 'backups' "
            "WHERE h.revoked_ns IS NULL ORDER BY h.host_id")
        oldest = dict(self._rows("SELECT host_id, MIN(first_seen_ns) FROM inv_pending WHERE security = 1 "
                                 "GROUP BY host_id"))
        return [PatchFacts(r[0], json.loads(r[1]), (r[2], json.loads(r[3])) if r[3] is not None else None,
                           (r[4], json.loads(r[5])) if r[5] is not None else None, oldest.get(r[0]))
                for r in rows]

    def logins(self, host_id: str, limit: int = 20) -> list[tuple[int, dict[str, Any], str]]:
        """The host's newest `auth.login` events: (time_ns, fields, raw). The events index is
        (host_id, time_ns): walked newest first, filtered by kind."""
        rows = self._rows("SELECT time_ns, fields, raw FROM events WHERE host_id = ? AND kind = 'auth.login' "
                          "ORDER BY time_ns DESC LIMIT ?", (host_id, limit))
        return [(t, json.loads(f), raw) for t, f, raw in rows]
