"""The patch-compliance questions, answered from the store's query tables (inv_*).

Every function takes a connection from `sql.connect` (read-only) and returns a QueryResult.
Base tables are named with their schema (`main.`): on that connection the TEMP views shadow
`hosts`. Hosts whose certificates are revoked are left out (they no longer report). Version
order is `compare_versions` with each host's own package manager as the scheme; a version is
compared once per distinct (version, manager) in the fleet, not once per host.

Times in results: `*_since` columns are UTC ISO 8601, `*_days` are ages in days (1 decimal).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cmp_to_key
from typing import Any

from warden.agent.versions import SCHEMES, compare_versions
from warden.collector.query import QueryError, QueryResult

DAY_NS = 86_400 * 1_000_000_000

# Comparison operators, with dpkg --compare-versions' words as shell-friendly aliases.
OPERATORS: dict[str, Callable[[int], bool]] = {
    "<": lambda c: c < 0, "<=": lambda c: c <= 0, "=": lambda c: c == 0,
    "!=": lambda c: c != 0, ">=": lambda c: c >= 0, ">": lambda c: c > 0,
}
_ALIASES = {"lt": "<", "le": "<=", "eq": "=", "==": "=", "ne": "!=", "ge": ">=", "gt": ">"}


def operator(op: str) -> str:
    """The canonical spelling of a comparison operator; QueryError for an unknown one."""
    canonical = _ALIASES.get(op.strip().lower(), op.strip())
    if canonical not in OPERATORS:
        raise QueryError(f"unknown operator {op!r}: use one of {' '.join(OPERATORS)} "
                         f"(or {' '.join(k for k in _ALIASES if k != '==')})")
    return canonical


def iso(ns: int | None) -> str | None:
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age_days(now_ns: int, ns: int | None) -> float | None:
    return None if not ns else round((now_ns - ns) / DAY_NS, 1)


def _cutoff(now_ns: int | None, days: float) -> tuple[int, int]:
    if days < 0:
        raise QueryError("days must be >= 0")
    now = time.time_ns() if now_ns is None else now_ns
    return now, now - int(days * DAY_NS)


def _ids_json(ids: list[int]) -> str:
    return json.dumps(ids)


# --- package versions -------------------------------------------------------------------------


def package(conn: sqlite3.Connection, name: str, op: str, version: str) -> QueryResult:
    """Hosts where package `name` compares `op` `version` (e.g. openssl < 3.0.15-1~deb12u1).

    One row per installed instance (a host with two arches or two kernels can match twice).
    Packages whose manager has no version ordering (windows, macos), or whose installed
    version the scheme rejects, are skipped and counted in the notes.
    """
    test = OPERATORS[operator(op)]
    matched: list[int] = []
    skipped: dict[str, list[int]] = {}
    bad_target: set[str] = set()
    for pv, installed, manager in conn.execute(
            "SELECT id, version, manager FROM main.inv_pkg_versions WHERE name = ?", (name,)):
        if manager not in SCHEMES:
            skipped.setdefault(f"no version ordering for {manager or 'unknown'} packages", []).append(pv)
            continue
        if manager in bad_target:
            skipped.setdefault(f"{version!r} is not a valid {manager} version", []).append(pv)
            continue
        try:
            compare_versions(version, version, manager)
        except ValueError:
            bad_target.add(manager)
            skipped.setdefault(f"{version!r} is not a valid {manager} version", []).append(pv)
            continue
        try:
            c = compare_versions(installed, version, manager)
        except ValueError:
            skipped.setdefault(f"installed version not valid for {manager}", []).append(pv)
            continue
        if test(c):
            matched.append(pv)
    rows = conn.execute(
        "SELECT k.host_id, h.hostname, v.version, v.arch, v.manager FROM main.inv_packages p "
        "JOIN main.inv_hosts k ON k.hk = p.hk JOIN main.inv_pkg_versions v ON v.id = p.pv "
        "LEFT JOIN main.hosts h ON h.host_id = k.host_id "
        "WHERE p.pv IN (SELECT value FROM json_each(?)) AND h.revoked_ns IS NULL "
        "ORDER BY k.host_id, v.version, v.arch", (_ids_json(matched),)).fetchall() if matched else []
    notes = []
    for why, ids in skipped.items():
        n = conn.execute("SELECT count(DISTINCT p.hk) FROM main.inv_packages p JOIN main.inv_hosts k "
                         "ON k.hk = p.hk LEFT JOIN main.hosts h ON h.host_id = k.host_id "
                         "WHERE p.pv IN (SELECT value FROM json_each(?)) AND h.revoked_ns IS NULL",
                         (_ids_json(ids),)).fetchone()[0]
        if n:
            notes.append(f"{n} host(s) not compared: {why}")
    return QueryResult(["host_id", "hostname", "version", "arch", "manager"], rows, notes)


def _sort_versions(rows: list[tuple[Any, ...]], version_at: int, manager_at: int) -> list[tuple[Any, ...]]:
    """Newest first within each manager, by that manager's order (text order where it has none)."""
    def cmp(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
        ma, mb = a[manager_at], b[manager_at]
        if ma != mb:
            return -1 if ma < mb else 1
        va, vb = a[version_at], b[version_at]
        if ma in SCHEMES:
            try:
                return -compare_versions(va, vb, ma) or (va > vb) - (va < vb)
            except ValueError:
                pass
        return (va < vb) - (va > vb)

    return sorted(rows, key=cmp_to_key(cmp))


def versions(conn: sqlite3.Connection, name: str, max_hosts: int = 10) -> QueryResult:
    """Installed versions of a package across the fleet: version -> number of hosts, and
    which (the first `max_hosts` by host id; 0 lists all)."""
    if max_hosts < 0:
        raise QueryError("max_hosts must be >= 0")
    rows = conn.execute(
        "SELECT v.version, v.manager, group_concat(DISTINCT v.arch), count(DISTINCT p.hk), "
        "json_group_array(k.host_id) FROM main.inv_pkg_versions v "
        "JOIN main.inv_packages p ON p.pv = v.id JOIN main.inv_hosts k ON k.hk = p.hk "
        "LEFT JOIN main.hosts h ON h.host_id = k.host_id "
        "WHERE v.name = ? AND h.revoked_ns IS NULL GROUP BY v.version, v.manager", (name,)).fetchall()
    out = []
    for version, manager, arches, n, hosts_json in rows:
        hosts = sorted(set(json.loads(hosts_json)))
        arch = ",".join(sorted(a for a in set((arches or "").split(",")) if a))
        out.append((version, manager, arch, n, hosts[:max_hosts] if max_hosts else hosts))
    total = len({h for r in rows for h in json.loads(r[4])})
    notes = [f"{total} host(s) have {name} installed in {len(out)} version(s)"] if out else []
    return QueryResult(["version", "manager", "arch", "hosts", "host_ids"], _sort_versions(out, 0, 1), notes)


# --- updates ----------------------------------------------------------------------------------


def security_pending(conn: sqlite3.Connection, days: float, now_ns: int | None = None) -> QueryResult:
    """Hosts with security updates pending for `days` days or more (since first seen pending,
    as the security_updates_pending alert counts), oldest first."""
    now, cutoff = _cutoff(now_ns, days)
    rows = conn.execute(
        "SELECT p.host_id, h.hostname, count(*), min(p.first_seen_ns), "
        "json_group_array(p.name || ' ' || p.new_version), "
        "(SELECT count(*) FROM main.inv_pending a WHERE a.host_id = p.host_id AND a.security = 1) "
        "FROM main.inv_pending p LEFT JOIN main.hosts h ON h.host_id = p.host_id "
        "WHERE p.security = 1 AND p.first_seen_ns <= ?1 AND h.revoked_ns IS NULL "
        "GROUP BY p.host_id ORDER BY min(p.first_seen_ns), p.host_id", (cutoff,)).fetchall()
    out = [(host, hostname, n, total, iso(first), _age_days(now, first),
            ", ".join(sorted(set(json.loads(ups))))) for host, hostname, n, first, ups, total in rows]
    return QueryResult(["host_id", "hostname", "overdue", "security_pending", "oldest_since",
                        "oldest_days", "updates"], out)


def reboot(conn: sqlite3.Connection, days: float = 0.0, now_ns: int | None = None) -> QueryResult:
    """Hosts that need a reboot (for `days` days or more), longest first."""
    now, cutoff = _cutoff(now_ns, days)
    rows = conn.execute(
        "SELECT u.host_id, h.hostname, u.reboot_since_ns, u.running_kernel, u.newest_kernel, "
        "u.reboot_packages FROM main.inv_updates u LEFT JOIN main.hosts h ON h.host_id = u.host_id "
        "WHERE u.reboot_required = 1 AND u.reboot_since_ns <= ? AND h.revoked_ns IS NULL "
        "ORDER BY u.reboot_since_ns, u.host_id", (cutoff,)).fetchall()
    out = [(host, hostname, iso(since), _age_days(now, since), running, newest,
            ", ".join(str(p) for p in json.loads(pkgs)))
           for host, hostname, since, running, newest, pkgs in rows]
    return QueryResult(["host_id", "hostname", "since", "days", "running_kernel", "newest_kernel",
                        "packages"], out)


def stale_updates(conn: sqlite3.Connection, days: float, now_ns: int | None = None, *,
                  include_unknown: bool = False) -> QueryResult:
    """Hosts whose last successful package transaction is `days` days old or more, oldest
    first; with include_unknown also those whose agent could not tell (last_update 0)."""
    now, cutoff = _cutoff(now_ns, days)
    rows = conn.execute(
        "SELECT u.host_id, h.hostname, u.last_update_unix, u.manager FROM main.inv_updates u "
        "LEFT JOIN main.hosts h ON h.host_id = u.host_id "
        "WHERE ((u.last_update_unix > 0 AND u.last_update_unix * 1000000000 <= ?) OR "
        "(? AND u.last_update_unix <= 0)) AND h.revoked_ns IS NULL "
        "ORDER BY u.last_update_unix, u.host_id", (cutoff, int(include_unknown))).fetchall()
    out = []
    for host, hostname, last, manager in rows:
        ns = last * 1_000_000_000 if last > 0 else None
        out.append((host, hostname, iso(ns) or "unknown", _age_days(now, ns), manager))
    return QueryResult(["host_id", "hostname", "last_update", "days", "manager"], out)


def compliance(conn: sqlite3.Connection, by: str | None, days: float,
               now_ns: int | None = None) -> QueryResult:
    """Compliance of the enrolled (unrevoked) hosts, per value of label `by` (or the whole fleet).

    A host is compliant when it reports updates, has no security update pending for `days`
    days or more, and needs no reboot. Hosts without the label are grouped under NULL.
    """
    _, cutoff = _cutoff(now_ns, days)
    if by is not None and (not by or '"' in by or "\\" in by):
        raise QueryError(f"bad label name {by!r}")
    path = f'$."{by}"' if by else None
    rows = conn.execute(
        "WITH overdue AS (SELECT DISTINCT host_id FROM main.inv_pending "
        "                 WHERE security = 1 AND first_seen_ns <= ?) "
        "SELECT CASE WHEN ? IS NULL THEN '(all)' ELSE json_extract(h.labels, ?) END AS grp, count(*), "
        "sum(u.host_id IS NOT NULL AND o.host_id IS NULL AND u.reboot_required = 0), "
        "sum(o.host_id IS NOT NULL), sum(coalesce(u.reboot_required, 0)), sum(u.host_id IS NULL) "
        "FROM main.hosts h LEFT JOIN main.inv_updates u ON u.host_id = h.host_id "
        "LEFT JOIN overdue o ON o.host_id = h.host_id WHERE h.revoked_ns IS NULL "
        "GROUP BY grp ORDER BY grp IS NULL, grp", (cutoff, path, path)).fetchall()
    out = [(grp, n, ok, round(100.0 * ok / n, 1), overdue, rebooting, silent)
           for grp, n, ok, overdue, rebooting, silent in rows]
    notes = []
    if by:
        total, ok = sum(r[1] for r in out), sum(r[2] for r in out)
        if total:
            notes.append(f"fleet: {ok}/{total} hosts compliant ({100.0 * ok / total:.1f}%)")
    return QueryResult([by or "fleet", "hosts", "compliant", "percent", "security_overdue", "reboot_required",
                        "not_reporting"], out, notes)

