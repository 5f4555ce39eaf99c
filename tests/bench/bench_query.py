"""Fleet query benchmark: canned patch-compliance queries and sandboxed SQL at fleet scale.

    .venv/bin/python -m tests.bench.bench_query [--hosts 10000] [--packages 2000] [--runs 5]
        [--group 50] [--db PATH] [--smoke]

1. Load. A deterministic fleet (seeded): --hosts hosts (70% dpkg, 25% rpm, 5% apk), each with
   --packages installed packages whose versions come from small per-package pools with epochs,
   tildes, revisions and distro suffixes (openssl has a hand-written pool of tricky versions),
   labels room=R00..R49, 1% revoked, and two `updates` snapshots: one 0-60 days ago and one an
   hour ago (some pending updates installed in between, some new, reboot needs appearing).
   Hosts rows are inserted with one bulk SQL transaction (enrollment is not measured); every
   inventory section goes through the store's real commit path, `SqliteStore.commit_batches`,
   in group commits of --group hosts, which maintains the query tables (inv_*) as ingest does.
   The load rate is reported.
2. Ingest cost of the query tables, on the loaded store: an upgrade of 5 packages on 200 hosts
   (the incremental path: only changed rows are written) versus replacing all 2,000 rows of a
   host (measured with the same SQL the store would run for a full replace).
3. Queries: each canned query (as `warden-collector query` runs it) and a few sandboxed SQL
   queries, --runs times on one read-only query connection; p50 and max in ms. Opening a query
   connection (what each HTTP request and CLI call does) is timed too.
4. Correctness at scale: the answers of `package`, `security-pending`, `reboot`,
   `stale-updates` and `compliance` are checked against the generator's own bookkeeping and
   `compare_versions` applied host by host (no query tables involved).

`--smoke` (CI, through tests/test_bench_query.py): 200 hosts, 3 runs. The last line of output is
a JSON summary. The target is p50 < 1 s for every canned query at 10,000 hosts x 2,000 packages.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warden.agent.versions import compare_versions
from warden.collector.query import QueryResult, canned
from warden.collector.query import sql as qsql
from warden.collector.records import Batch, InventorySection
from warden.collector.store.sqlite import SqliteStore, canonical_labels

S = 1_000_000_000
DAY = 86_400 * S
TARGET_MS = 1000.0
OPENSSL_FIXED = "3.0.15-1~deb12u1"
SECURITY_DAYS = 7
STALE_DAYS = 30
ROOMS = 50
MANAGERS = (("dpkg", 0.70), ("rpm", 0.25), ("apk", 0.05))
OPENSSL = {
    "dpkg": ["3.0.11-1~deb12u2", "3.0.13-1~deb12u1", "3.0.15-1~deb12u1", "3.0.15-1", "3.0.15-1+b1",
             "1:3.0.2-0ubuntu1.10", "3.0.14-1~deb12u1"],
    "rpm": ["1:3.0.7-25.el9", "1:3.0.7-27.el9", "1:3.0.7-27.el9_4", "3.0.15-1.fc40", "3.2.2-5.fc40"],
    "apk": ["3.1.4-r5", "3.1.4-r6", "3.3.2-r0", "3.3.0_rc1-r0"],
}


def _pool(rng: random.Random, manager: str) -> list[str]:
    a, b, r = rng.randint(0, 9), rng.randint(0, 30), rng.randint(1, 5)
    if manager == "dpkg":
        return [f"{a}.{b}-{r}", f"{a}.{b}-{r}~deb12u1", f"{a}.{b + 1}-1", f"1:{a}.{b}-{r}", f"{a}.{b}~rc1-1"]
    if manager == "rpm":
        return [f"{a}.{b}-{r}.el9", f"{a}.{b}-{r + 1}.el9", f"{a}.{b}-{r}.el9_4.1", f"2:{a}.{b}-{r}.el9"]
    return [f"{a}.{b}-r{r}", f"{a}.{b}-r{r + 1}", f"{a}.{b + 1}_rc1-r0", f"{a}.{b + 1}-r0"]


@dataclass(slots=True)
class HostTruth:
    """What the generator knows about one host: the expected answers come from this."""

    host_id: str
    manager: str
    room: str
    revoked: bool
    openssl: str
    security_first_seen: list[int] = field(default_factory=list)  # of security updates pending now
    reboot_since: int | None = None
    last_update_unix: int = 0


@dataclass(slots=True)
class Fleet:
    hosts: int
    packages: int
    now_ns: int
    seed: int = 7
    names: list[str] = field(default_factory=list)
    pools: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    truth: list[HostTruth] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.names = ["openssl"] + [f"lib{i:05d}" for i in range(self.packages - 1)]
        for name in self.names:
            for manager, _ in MANAGERS:
                self.pools[(name, manager)] = OPENSSL[manager] if name == "openssl" else _pool(rng, manager)

    def host_sections(self, i: int) -> tuple[HostTruth, list[InventorySection], list[InventorySection]]:
        """Host i: its truth, its first commit (os, packages, updates 1) and second (updates 2)."""
        rng = random.Random(self.seed * 1_000_003 + i)
        manager = rng.choices([m for m, _ in MANAGERS], [w for _, w in MANAGERS])[0]
        weights = (0.55, 0.25, 0.1, 0.06, 0.04, 0.03, 0.02)
        installed = []
        for name in self.names:
            pool = self.pools[(name, manager)]
            installed.append((name, rng.choices(pool, weights[:len(pool)])[0]))
        arch = {"dpkg": "amd64", "rpm": "x86_64", "apk": "x86_64"}[manager]
        now = self.now_ns
        t1, t2 = now - int(rng.uniform(0.0, 60.0) * DAY), now - 3600 * S
        pending1 = {}
        for name, version in rng.sample(installed, rng.randint(0, 12)):
            pending1[name] = {"name": name, "current_version": version, "new_version": version + ".1",
                              "arch": arch, "security": rng.random() < 0.4, "origin": "security"}
        keep = {n: u for n, u in pending1.items() if rng.random() < 0.8}  # the rest got installed
        pending2 = dict(keep)
        for name, version in rng.sample(installed, rng.randint(0, 3)):
            pending2.setdefault(name, {"name": name, "current_version": version,
                                       "new_version": version + ".2", "arch": arch,
                                       "security": rng.random() < 0.4, "origin": "security"})
        reboot1 = rng.random() < 0.10
        reboot2 = reboot1 or rng.random() < 0.05
        last_update = 0 if rng.random() < 0.03 else int((now - rng.uniform(0.0, 120.0) * DAY) / S)
        truth = HostTruth(
            host_id=f"host-{i:05d}", manager=manager, room=f"R{i % ROOMS:02d}", revoked=i % 100 == 99,
            openssl=installed[0][1],
            security_first_seen=sorted(t1 if n in keep else t2 for n, u in pending2.items() if u["security"]),
            reboot_since=(t1 if reboot1 else t2) if reboot2 else None, last_update_unix=last_update)
        pkgs = [{"name": n, "version": v, "arch": arch} for n, v in installed]
        first = [
            InventorySection("os", t2, {"hostname": truth.host_id, "os_name": f"{manager} linux",
                                        "os_id": manager, "os_version": "1", "kernel": "6.1.0", "arch": arch,
                                        "agent_version": "1.0"}),
            InventorySection("packages", t2, {"manager": manager, "content_hash": f"h{i}", "full": True,
                                              "count": len(pkgs), "packages": pkgs}),
            self._updates(t1, manager, pending1, reboot1, last_update),
        ]
        return truth, first, [self._updates(t2, manager, pending2, reboot2, last_update)]

    @staticmethod
    def _updates(t: int, manager: str, pending: dict[str, dict[str, Any]], reboot: bool,
                 last_update: int) -> InventorySection:
        ups = list(pending.values())
        return InventorySection("updates", t, {
            "manager": manager, "pending": ups, "pending_count": len(ups),
            "security_count": sum(u["security"] for u in ups), "last_update_unix": last_update,
            "running_kernel": "6.1.0-1", "newest_kernel": "6.1.0-2" if reboot else "6.1.0-1",
            "reboot_required": reboot, "reboot_required_packages": ["linux-image"] if reboot else [],
            "error": ""})


def load(store: SqliteStore, db: Path, fleet: Fleet, group: int,
         log: Callable[[str], None]) -> dict[str, Any]:
    """Bulk-insert the hosts rows, then commit every host's sections through commit_batches."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO hosts (host_id, hostname, labels, os, agent_version, cert_serial, first_seen_ns, "
        "last_seen_ns, revoked_ns) VALUES (?, ?, ?, '', '', ?, ?, ?, ?)",
        [(f"host-{i:05d}", f"host-{i:05d}.example", canonical_labels({"room": f"R{i % ROOMS:02d}"}),
          f"{i:08x}", fleet.now_ns - 90 * DAY, fleet.now_ns, fleet.now_ns if i % 100 == 99 else None)
         for i in range(fleet.hosts)])
    conn.execute("COMMIT")
    conn.close()

    started = time.perf_counter()
    gen_s = 0.0
    for lo in range(0, fleet.hosts, group):
        t = time.perf_counter()
        parts = [fleet.host_sections(i) for i in range(lo, min(lo + group, fleet.hosts))]
        gen_s += time.perf_counter() - t
        fleet.truth.extend(p[0] for p in parts)
        store.commit_batches([Batch(p[0].host_id, "bench", 1, 3, p[1]) for p in parts], fleet.now_ns)
        store.commit_batches([Batch(p[0].host_id, "bench", 4, 4, p[2]) for p in parts], fleet.now_ns)
        done = lo + len(parts)
        if done % max(group, 1000) == 0 or done == fleet.hosts:
            log(f"  loaded {done}/{fleet.hosts} hosts ({time.perf_counter() - started:.0f} s)")
    wall = time.perf_counter() - started
    return {"hosts": fleet.hosts, "packages_per_host": fleet.packages, "load_s": round(wall, 1),
            "generate_s": round(gen_s, 1), "hosts_per_s": round(fleet.hosts / (wall - gen_s), 1),
            "group_commit_hosts": group}


def ingest_costs(store: SqliteStore, fleet: Fleet) -> dict[str, Any]:
    """An upgrade of 5 packages on n hosts through commit_batches, as the store does it (only the
    changed rows written), then on n other hosts with a full replace of each host's 2,000 rows
    instead; ms per host for the whole commit and for the query-table part alone."""
    n = max(1, min(200, fleet.hosts // 2))
    original = store._index_packages
    spent = [0.0]

    def timed(conn: sqlite3.Connection, host: str, data: dict[str, Any]) -> None:
        t = time.perf_counter()
        original(conn, host, data)
        spent[0] += time.perf_counter() - t

    def full_replace(conn: sqlite3.Connection, host: str, data: dict[str, Any]) -> None:
        t = time.perf_counter()
        conn.execute("DELETE FROM inv_packages WHERE hk = (SELECT hk FROM inv_hosts WHERE host_id = ?)",
                     (host,))
        original(conn, host, data)  # finds no rows left: inserts all of them
        spent[0] += time.perf_counter() - t

    out: dict[str, Any] = {"hosts_upgraded": n}
    for label, hook, first in (("incremental", timed, 0), ("full_replace", full_replace, n)):
        batches = []
        for i in range(first, min(first + n, fleet.hosts)):
            data = fleet.host_sections(i)[1][1].data
            pkgs = [dict(p) for p in data["packages"]]
            for p in pkgs[1:6]:
                p["version"] += "+sec1"
            batches.append(Batch(f"host-{i:05d}", "bench", 5, 5, [InventorySection(
                "packages", fleet.now_ns, {**data, "content_hash": f"u{i}", "packages": pkgs})]))
        spent[0] = 0.0
        store._index_packages = hook  # type: ignore[method-assign]
        try:
            t = time.perf_counter()
            for lo in range(0, len(batches), 50):
                store.commit_batches(batches[lo:lo + 50], fleet.now_ns)
            total = time.perf_counter() - t
        finally:
            del store._index_packages
        out[f"{label}_commit_ms_per_host"] = round(total * 1000 / max(len(batches), 1), 2)
        out[f"{label}_query_tables_ms_per_host"] = round(spent[0] * 1000 / max(len(batches), 1), 2)
    return out


def queries() -> list[tuple[str, Callable[[qsql.QueryConnection, int], QueryResult]]]:
    return [
        (f"package openssl < {OPENSSL_FIXED}",
         lambda c, now: canned.package(c, "openssl", "<", OPENSSL_FIXED)),
        ("package lib00500 >= 5.0", lambda c, now: canned.package(c, "lib00500", ">=", "5.0")),
        (f"security-pending --days {SECURITY_DAYS}",
         lambda c, now: canned.security_pending(c, SECURITY_DAYS, now)),
        ("reboot", lambda c, now: canned.reboot(c, 0, now)),
        (f"stale-updates --days {STALE_DAYS}", lambda c, now: canned.stale_updates(c, STALE_DAYS, now)),
        ("versions openssl", lambda c, now: canned.versions(c, "openssl")),
        ("versions lib00500 --max-hosts 0", lambda c, now: canned.versions(c, "lib00500", 0)),
        (f"compliance --by room --days {SECURITY_DAYS}",
         lambda c, now: canned.compliance(c, "room", SECURITY_DAYS, now)),
        ("sql: outdated openssl via version_cmp", lambda c, now: qsql.run_sql(
            c, "SELECT host_id, version FROM packages WHERE name = 'openssl' "
               f"AND version_cmp(version, '{OPENSSL_FIXED}', manager) < 0 ORDER BY host_id")),
        ("sql: packages of one host", lambda c, now: qsql.run_sql(
            c, "SELECT name, version FROM packages WHERE host_id = 'host-00042'")),
        ("sql: security pending per room", lambda c, now: qsql.run_sql(
            c, "SELECT json_extract(h.labels, '$.room') AS room, count(*) AS updates "
               "FROM pending_updates p JOIN hosts h USING (host_id) WHERE p.security = 1 "
               "GROUP BY room ORDER BY room")),
        ("sql: hosts needing a reboot", lambda c, now: qsql.run_sql(
            c, "SELECT host_id, reboot_since_ns FROM hosts WHERE reboot_required = 1")),
    ]


def time_queries(db: Path, now_ns: int, runs: int) -> list[dict[str, Any]]:
    out = []
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        qsql.connect(db).close()
        t.append((time.perf_counter() - s) * 1000)
    out.append({"query": "open query connection", "p50_ms": round(statistics.median(t), 2),
                "max_ms": round(max(t), 2), "rows": 0})
    conn = qsql.connect(db)
    try:
        for name, fn in queries():
            t, rows = [], 0
            for _ in range(runs):
                s = time.perf_counter()
                rows = len(fn(conn, now_ns).rows)
                t.append((time.perf_counter() - s) * 1000)
            out.append({"query": name, "p50_ms": round(statistics.median(t), 1), "max_ms": round(max(t), 1),
                        "rows": rows})
    finally:
        conn.close()
    return out


def verify(db: Path, fleet: Fleet) -> dict[str, bool]:
    """The canned answers against the generator's truth, computed without the query tables."""
    now = fleet.now_ns
    live = [h for h in fleet.truth if not h.revoked]
    conn = qsql.connect(db)
    try:
        got = canned.package(conn, "openssl", "<", OPENSSL_FIXED)
        want = sorted(h.host_id for h in live if compare_versions(h.openssl, OPENSSL_FIXED, h.manager) < 0)
        ok_package = sorted(r[0] for r in got.rows) == want and bool(want)

        cutoff = now - SECURITY_DAYS * DAY
        got = canned.security_pending(conn, SECURITY_DAYS, now)
        want_sec = {h.host_id: sum(t <= cutoff for t in h.security_first_seen) for h in live}
        ok_security = {r[0]: r[2] for r in got.rows} == {k: v for k, v in want_sec.items() if v}

        got = canned.reboot(conn, 0, now)
        want_reboot = {h.host_id: h.reboot_since for h in live if h.reboot_since is not None}
        ok_reboot = {r[0] for r in got.rows} == set(want_reboot) and bool(want_reboot)

        got = canned.stale_updates(conn, STALE_DAYS, now)
        stale_cut = now - STALE_DAYS * DAY
        want_stale = {h.host_id for h in live
                      if h.last_update_unix > 0 and h.last_update_unix * S <= stale_cut}
        ok_stale = {r[0] for r in got.rows} == want_stale

        got = canned.compliance(conn, "room", SECURITY_DAYS, now)
        want_rooms: dict[str, list[int]] = {}
        for h in live:
            g = want_rooms.setdefault(h.room, [0, 0])
            g[0] += 1
            g[1] += want_sec[h.host_id] == 0 and h.reboot_since is None
        ok_compliance = {r[0]: [r[1], r[2]] for r in got.rows} == want_rooms
    finally:
        conn.close()
    return {"package": ok_package, "security_pending": ok_security, "reboot": ok_reboot,
            "stale_updates": ok_stale, "compliance": ok_compliance}


@contextmanager
def _db_path(path: Path | None) -> Iterator[Path]:
    if path is not None:  # kept for a look afterwards (e.g. `warden-collector query` on it)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="warden-bench-query-") as d:
        yield Path(d) / "warden.db"


def run(hosts: int, packages: int, runs: int, group: int, db: Path | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    now = time.time_ns()
    fleet = Fleet(hosts, packages, now)
    with _db_path(db) as path:
        if path.exists():
            raise SystemExit(f"{path} exists: give a new path")
        store = SqliteStore(path)
        try:
            log(f"loading {hosts} hosts x {packages} packages through commit_batches ...")
            loaded = load(store, path, fleet, group, log)
            costs = ingest_costs(store, fleet)
        finally:
            store.close()
        conn = sqlite3.connect(path)
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("inv_packages", "inv_pkg_versions", "inv_pending", "inv_updates")}
        conn.close()
        size_mb = sum(os.path.getsize(p) for p in path.parent.glob(path.name + "*")) / 1e6
        timings = time_queries(path, now, runs)
        checks = verify(path, fleet)
    summary = {"bench": "query", **loaded, "db_mb": round(size_mb, 1), "rows": counts, "ingest": costs,
               "runs": runs, "queries": timings, "verified": checks,
               "canned_p50_under_1s": all(q["p50_ms"] < TARGET_MS for q in timings)}
    return summary


def report(s: dict[str, Any]) -> None:
    print(f"fleet: {s['hosts']} hosts x {s['packages_per_host']} packages, store {s['db_mb']} MB, "
          f"rows {s['rows']}")
    print(f"load through commit_batches ({s['group_commit_hosts']} hosts per group commit): "
          f"{s['hosts_per_s']} hosts/s ({s['load_s']} s incl. {s['generate_s']} s generating)")
    c = s["ingest"]
    print(f"an upgrade of 5 packages on {c['hosts_upgraded']} hosts, per host: incremental (the store) "
          f"{c['incremental_commit_ms_per_host']} ms commit, {c['incremental_query_tables_ms_per_host']} ms "
          f"of it query tables; full replace of 2,000 rows {c['full_replace_commit_ms_per_host']} ms commit, "
          f"{c['full_replace_query_tables_ms_per_host']} ms query tables")
    print(f"queries ({s['runs']} runs each):")
    print(f"  {'query':<44} {'p50 ms':>9} {'max ms':>9} {'rows':>7}")
    for q in s["queries"]:
        print(f"  {q['query']:<44} {q['p50_ms']:>9} {q['max_ms']:>9} {q['rows']:>7}")
    print(f"verified against the generator: {s['verified']}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--packages", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--group", type=int, default=50, help="hosts per group commit while loading")
    ap.add_argument("--db", type=Path, help="build the store here and keep it (default: a temp dir)")
    ap.add_argument("--smoke", action="store_true", help="200 hosts, 3 runs (CI)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.hosts, args.runs = 200, 3
    summary = run(args.hosts, args.packages, args.runs, args.group, args.db)
    report(summary)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
