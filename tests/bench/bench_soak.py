"""Soak: N simulated agents against one collector for M minutes, every record counted.

    .venv/bin/python -m tests.bench.bench_soak [--agents 1000] [--minutes 10] [--smoke]

Each simulated agent is the real agent's spool and transport (tests/faults/fleet.py: its own
client certificate, TLS connection, durable spool, Report stream with acks, heartbeats and
backoff); only the probes are simulated, at a realistic rate: every --every seconds (10) a
burst of --metrics (24) metric samples and --events (6) numbered events, like a system probe
plus a few log lines; between bursts the idle stream sends heartbeats (the collector asks for
one every --heartbeat seconds, 5). Agents start spread over the first --spread seconds.
Identities are made with the collector's own CA and registered in its store (1,000 real
Enroll RPCs would only measure enrollment). The agents run in --procs generator processes;
with >= 2 cores the collector is pinned to core 0 and the generators to the others.

The collector's RSS and CPU are sampled every --sample seconds. At the end every agent stops
producing, waits until its spool is empty (everything acknowledged), and the collector's
database is counted per agent: events n = 1..N each exactly once, and every metric sample.
Printed: a table and one JSON line. Exit 0 when nothing was lost or duplicated and (runs of
5 minutes or more) the RSS grew less than --max-growth (20 %) from the end of warm-up
(minute 2, or a fifth of a shorter run) to the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from tests.faults.common import Fleet, enroll_agents
from tests.harness import CollectorProc


def _count(collector: CollectorProc) -> tuple[dict[str, tuple[int, int, int, int]], dict[str, int]]:
    db = sqlite3.connect(collector.root / "data" / "warden.db", timeout=60)
    try:
        events = {r[0]: (r[1], r[2], r[3] or 0, r[4] or 0) for r in db.execute(
            "SELECT host_id, COUNT(*), COUNT(DISTINCT json_extract(fields, '$.n')), "
            "MIN(json_extract(fields, '$.n')), MAX(json_extract(fields, '$.n')) FROM events "
            "WHERE kind = 'test.numbered' GROUP BY host_id")}
        samples = dict(db.execute(
            "SELECT s.host_id, COUNT(*) FROM samples JOIN series s ON s.id = samples.series_id "
            "WHERE s.name LIKE 'fleet%' GROUP BY s.host_id"))
    finally:
        db.close()
    return events, samples


def _counter(collector: CollectorProc, name: str) -> float:
    counters = collector.get("/healthz")["counters"]
    return sum(v for k, v in counters.items() if k == name or k.startswith(name + "{"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="warden-soak-"))
    # The agents' spools and state live in memory: the agents' disk is not what is measured,
    # and 1,000 spools fsyncing on the collector's disk would be.
    spool_root = Path(tempfile.mkdtemp(prefix="warden-soak-agents-", dir=args.spool_dir))
    collector = CollectorProc(root / "collector", collector={"heartbeat": f"{args.heartbeat:g}s"})
    fleets: list[Fleet] = []
    cores = sorted(os.sched_getaffinity(0))
    pin = (not args.no_pin) and len(cores) >= 2
    try:
        collector.start()
        assert collector.proc is not None
        cproc = psutil.Process(collector.proc.pid)
        if pin:
            cproc.cpu_affinity([cores[0]])
            os.sched_setaffinity(0, cores[1:])
        t0 = time.monotonic()
        hosts = [f"soak-{i:04d}" for i in range(args.agents)]
        agents = enroll_agents(collector, spool_root, hosts, rpc=False)
        setup_s = time.monotonic() - t0
        duration = args.minutes * 60
        nproc = max(1, min(args.procs, args.agents))
        for i in range(nproc):
            fleets.append(Fleet(root / f"fleet-{i}", agents[i::nproc], burst_every_s=args.every,
                                events_per_burst=args.events, metrics_per_burst=args.metrics,
                                duration_s=duration, start_spread_s=args.spread, drain_timeout_s=300,
                                status_every_s=5.0,
                                transport={"backoff_initial_seconds": 0.5, "backoff_max_seconds": 30.0,
                                           "heartbeat_seconds": args.heartbeat}).start())
        gprocs = [psutil.Process(f.proc.pid) for f in fleets if f.proc]
        if pin:
            for g in gprocs:
                g.cpu_affinity(cores[1:])
        started = time.monotonic()
        samples: list[dict[str, float]] = []
        cpu0 = cproc.cpu_times()
        last_cpu, last_t = cpu0.user + cpu0.system, started
        connected_at = None
        while time.monotonic() < started + duration:
            time.sleep(min(args.sample, max(0.0, started + duration - time.monotonic())))
            now = time.monotonic()
            ct = cproc.cpu_times()
            cpu = ct.user + ct.system
            health = collector.get("/healthz")
            samples.append({"t": round(now - started, 1), "rss_mb": cproc.memory_info().rss / 2**20,
                            "cpu_pct": 100 * (cpu - last_cpu) / max(1e-9, now - last_t),
                            "streams": health["streams_active"],
                            "ingested": _counter(collector, "warden_collector_records_ingested_total")})
            last_cpu, last_t = cpu, now
            if connected_at is None and health["streams_active"] >= args.agents:
                connected_at = now - started
            if not args.quiet:
                s = samples[-1]
                print(f"  t={s['t']:>6.0f}s  rss {s['rss_mb']:7.1f} MB  cpu {s['cpu_pct']:5.1f} %  "
                      f"streams {s['streams']:>5}  ingested {s['ingested']:>12,.0f}", flush=True)
        drain_t = time.monotonic()
        results = [f.result(timeout=600) for f in fleets]
        drain_s = time.monotonic() - drain_t
        per_agent = [a for r in results for a in r["agents"]]
        events, stored_samples = _count(collector)
        lost = dup = sent = stored = 0
        bad: list[str] = []
        for a in per_agent:
            rows, distinct, lo, hi = events.get(a["host_id"], (0, 0, 0, 0))
            n_samples = stored_samples.get(a["host_id"], 0)
            a_lost = (a["events"] - distinct) + (a["metrics"] - n_samples)
            a_dup = rows - distinct
            if distinct and (lo != 1 or hi != a["events"]):
                a_lost += 1
            lost += max(0, a_lost)
            dup += a_dup
            sent += a["events"] + a["metrics"]
            stored += distinct + n_samples
            if a_lost or a_dup:
                bad.append(f"{a['host_id']}: sent {a['events']} events/{a['metrics']} samples, "
                           f"stored {distinct} distinct events ({rows} rows), {n_samples} samples")
        warm = min(120.0, duration / 5)
        after_warm = [s for s in samples if s["t"] >= warm] or samples
        rss_warm, rss_end = after_warm[0]["rss_mb"], samples[-1]["rss_mb"]
        growth = rss_end / rss_warm - 1
        steady = [s["cpu_pct"] for s in after_warm]
        return {
            "bench": "soak", "agents": args.agents, "minutes": args.minutes, "procs": nproc, "pinned": pin,
            "burst_every_s": args.every, "records_per_burst": args.events + args.metrics,
            "heartbeat_s": args.heartbeat, "setup_s": round(setup_s, 1),
            "all_connected_s": None if connected_at is None else round(connected_at, 1),
            "drain_s": round(drain_s, 1), "drained": all(r["drained"] for r in results),
            "records_sent": sent, "records_stored": stored, "lost": lost, "duplicated": dup,
            "collector_ingested": _counter(collector, "warden_collector_records_ingested_total"),
            "collector_deduplicated": _counter(collector, "warden_collector_records_deduplicated_total"),
            "collector_rejected": _counter(collector, "warden_collector_batches_rejected_total"),
            "collector_store_errors": _counter(collector, "warden_collector_store_errors_total"),
            "sessions": sum(a["transport"]["sessions"] for a in per_agent),
            "reconnects": sum(a["transport"]["sessions"] - 1 for a in per_agent),
            "records_per_s": round(sent / duration, 1),
            "rss_mb_start": round(samples[0]["rss_mb"], 1),
            "rss_mb_peak": round(max(s["rss_mb"] for s in samples), 1),
            "rss_mb_end": round(rss_end, 1), "warmup_s": warm, "rss_mb_after_warmup": round(rss_warm, 1),
            "rss_growth_after_warmup": round(growth, 4),
            "collector_cpu_pct_mean": round(sum(steady) / len(steady), 1) if steady else 0.0,
            "collector_cpu_pct_max": round(max(steady), 1) if steady else 0.0,
            "bad_agents": bad[:10], "samples": [{k: round(v, 1) for k, v in s.items()} for s in samples],
        }
    finally:
        for f in fleets:
            f.kill()
        collector.stop()
        if args.keep:
            print(f"  (kept {root} and {spool_root})", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(spool_root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.bench_soak",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=1000, help="simulated agents (1000)")
    ap.add_argument("--minutes", type=float, default=10.0, help="how long they produce (10)")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between an agent's bursts (10)")
    ap.add_argument("--metrics", type=int, default=24, help="metric samples per burst (24)")
    ap.add_argument("--events", type=int, default=6, help="numbered events per burst (6)")
    ap.add_argument("--heartbeat", type=float, default=5.0, help="heartbeat the collector asks for, s (5)")
    ap.add_argument("--spread", type=float, default=None, help="start agents over this many s (--every)")
    ap.add_argument("--procs", type=int, default=4, help="load-generator processes (4)")
    ap.add_argument("--sample", type=float, default=10.0, help="sample the collector every s (10)")
    ap.add_argument("--max-growth", type=float, default=0.20, help="RSS growth bound after warm-up (0.20)")
    ap.add_argument("--spool-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the agents' state and spools live (/dev/shm)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin collector and generators to cores")
    ap.add_argument("--keep", action="store_true", help="keep the directories")
    ap.add_argument("--quiet", action="store_true", help="no per-sample lines")
    ap.add_argument("--smoke", action="store_true", help="CI: 50 agents for 30 s, bursts every 2 s")
    args = ap.parse_args(argv)
    if args.smoke:
        args.agents, args.minutes, args.every, args.sample, args.procs = 50, 0.5, 2.0, 3.0, 2
    if args.spread is None:
        args.spread = args.every
    print(f"soak: {args.agents} agents x {args.minutes:g} min, {args.metrics} samples + {args.events} events "
          f"every {args.every:g}s each, heartbeat {args.heartbeat:g}s, {args.procs} generator processes",
          flush=True)
    r = run(args)
    enforce = args.minutes >= 5
    growth_ok = r["rss_growth_after_warmup"] < args.max_growth
    r["growth_bound"] = args.max_growth
    r["growth_enforced"] = enforce
    r["ok"] = r["drained"] and r["lost"] == 0 and r["duplicated"] == 0 and r["records_sent"] > 0 \
        and (growth_ok or not enforce)
    rows = [
        ("agents x minutes", f"{r['agents']} x {r['minutes']:g}"),
        ("records sent (events + samples)", f"{r['records_sent']:,} ({r['records_per_s']:,} /s)"),
        ("records stored, distinct", f"{r['records_stored']:,}"),
        ("lost / duplicated", f"{r['lost']} / {r['duplicated']}"),
        ("collector: ingested / deduplicated / refused", f"{r['collector_ingested']:,.0f} / "
                                                         f"{r['collector_deduplicated']:,.0f} / "
                                                         f"{r['collector_rejected']:,.0f}"),
        ("sessions (reconnects)", f"{r['sessions']:,} ({r['reconnects']:,})"),
        ("all connected after / drain", f"{r['all_connected_s']} s / {r['drain_s']} s"),
        ("collector RSS start / peak / end",
         f"{r['rss_mb_start']} / {r['rss_mb_peak']} / {r['rss_mb_end']} MB"),
        (f"RSS growth after warm-up ({r['warmup_s']:g} s)",
         f"{100 * r['rss_growth_after_warmup']:+.1f} % (bound {100 * args.max_growth:.0f} %"
         f"{'' if enforce else ', not enforced under 5 min'})"),
        ("collector CPU mean / max (after warm-up)",
         f"{r['collector_cpu_pct_mean']} % / {r['collector_cpu_pct_max']} %"),
        ("result", "ok" if r["ok"] else "FAILED " + "; ".join(r["bad_agents"][:3])),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(json.dumps(r), flush=True)
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
