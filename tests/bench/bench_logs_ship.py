"""Lines/s parsed and shipped from a large auth log on one core: a real `warden-agent run` with
only the logs probe reads a prebuilt auth.log from the beginning and ships every line to a real
collector. Target: >= 50,000 lines per agent CPU-second.

The log is bench_logparse's (loghub OpenSSH_2k.log repeated to --lines lines, timestamps moved on
copy after copy). The clock runs from the agent's start until the collector has stored every
line (events whose source is the file, counted in the collector's SQLite store); the agent's CPU
(psutil) over that span gives lines per agent CPU-second, the one-core figure: the agent is one
process doing parsing, spooling and sending. The same figures are also given for the steady
state, between 10 % and 90 % of the lines stored (no start-up, no tail). Where the machine has
more than one CPU the agent is pinned to the first and the collector (and this script) to the rest.

Settings: the logs probe runs every second and reads at most --max-lines-per-run lines a run, so
the end-to-end rate is at most that budget per second; a run that outlasts the 1 s interval is
timed out by the scheduler (its records still ship) and the next due run is skipped, so a budget
much above what the agent parses in a second lowers the rate too. Batches are as large as the
collector accepts (5,000 records, 4 MiB), so the byte cap never binds for this log.

Afterwards every line of the file must be in the store exactly once: the stored events of the
file compared line for line (as a multiset) with the file.

    .venv/bin/python -m tests.bench.bench_logs_ship [--lines 300000] [--smoke]

The last line of output is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from tests.bench.bench_logparse import TARGET, build_log
from tests.bench.bench_logs_follow import _cpu
from tests.harness import AgentProc, CollectorProc
from warden.agent.probes import registered

HOST = "bench-logs-ship"
MiB = 2**20


def _peak_rss_mb(proc: psutil.Process) -> float:
    """Peak resident set (VmHWM) of a live process; the current RSS where /proc has no peak."""
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return proc.memory_info().rss / MiB


class _Stored:
    """Events of one source stored so far, counted incrementally over the id (rowid) range:
    ids grow with every commit of the collector's single writer and one statement reads one
    snapshot, so each poll reads only the rows committed since the last one."""

    def __init__(self, db: Path, source: str) -> None:
        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        self.source, self.last_id, self.count = source, 0, 0

    def poll(self) -> int:
        top, n = self.conn.execute(
            "SELECT max(id), count(*) FILTER (WHERE source = ?) FROM events WHERE id > ?",
            (self.source, self.last_id)).fetchone()
        if top is not None:
            self.last_id, self.count = top, self.count + n
        return self.count

    def lines(self) -> Counter[str]:
        return Counter(raw for (raw,) in self.conn.execute("SELECT raw FROM events WHERE source = ?",
                                                           (self.source,)))


def _cpus() -> tuple[set[int], set[int]] | None:
    """(the agent's CPU, everyone else's) when there are at least two CPUs to share."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return ({cpus[0]}, set(cpus[1:])) if len(cpus) > 1 else None


def measure(n_lines: int, root: Path, max_lines_per_run: int, batch_max_records: int,
            batch_max_bytes: int, timeout: float) -> dict[str, Any]:
    log = root / "auth.log"
    built = build_log(log, n_lines, datetime.now(UTC))
    size_mb = log.stat().st_size / MiB
    pin = _cpus()
    if pin:  # the collector (started now) and this script get the CPUs the agent does not
        os.sched_setaffinity(0, pin[1])
    collector = CollectorProc(root / "collector")
    disabled = {f"probes.{n}": {"enabled": False} for n in registered() if n != "logs"}
    logs = {"paths": [str(log)], "start_at": "beginning", "journal": "off", "wtmp": "", "btmp": "",
            "max_lines_per_run": max_lines_per_run}
    transport = {"batch_max_records": batch_max_records, "batch_max_bytes": batch_max_bytes}
    agent = AgentProc(root / "agent", collector, HOST, transport=transport, **disabled,
                      **{"probes.logs": logs})
    marks: dict[float, tuple[float, float, int]] = {}  # fraction stored -> (time, agent CPU, lines)
    try:
        collector.start()
        agent.enroll()
        stored = _Stored(collector.root / "data" / "warden.db", str(log))
        assert collector.proc is not None
        cproc = psutil.Process(collector.proc.pid)
        ccpu0 = _cpu(cproc)
        if pin:
            os.sched_setaffinity(0, pin[0])  # inherited by the agent
        t0 = time.monotonic()
        agent.start()
        if pin:
            os.sched_setaffinity(0, pin[1])
        assert agent.proc is not None
        aproc = psutil.Process(agent.proc.pid)
        first_s = None
        while True:
            n = stored.poll()
            now = time.monotonic()
            if n and first_s is None:
                first_s = now - t0
            for frac in (0.1, 0.9):
                if n >= frac * built and frac not in marks:
                    marks[frac] = (now, _cpu(aproc), n)
            if n >= built:
                break
            if agent.proc.poll() is not None:
                raise RuntimeError(f"agent exited {agent.proc.returncode}: {agent.log.read_text()[-2000:]}")
            if now - t0 > timeout:
                raise AssertionError(f"timed out after {timeout:g}s: {n} of {built} lines stored; "
                                     f"agent log: {agent.log.read_text()[-1500:]}")
            time.sleep(0.05)
        seconds = now - t0
        acpu, ccpu = _cpu(aproc), _cpu(cproc) - ccpu0
        rss = _peak_rss_mb(aproc)
        time.sleep(1.0)  # a line sent twice would be stored by now
        events = stored.poll()
        dedup = collector.counter("warden_collector_records_deduplicated_total")
    finally:
        agent.stop()
        collector.stop()
        if pin:
            os.sched_setaffinity(0, pin[0] | pin[1])

    # Exactly once: the stored lines, as a multiset, are the file's lines.
    with log.open(encoding="utf-8") as f:
        want = Counter(line.rstrip("\n") for line in f)
    got = stored.lines()
    stored.conn.close()
    missing, extra = sum((want - got).values()), sum((got - want).values())
    agent_log = agent.log.read_text()
    (ta, ca, na), (tb, cb, nb) = marks[0.1], marks[0.9]
    steady_lines, steady_s, steady_cpu = nb - na, tb - ta, cb - ca
    steady = steady_s >= 2.0 and steady_cpu > 0  # a few 1 s probe runs at least, or no figure
    return {
        "lines": built, "log_mb": round(size_mb, 1),
        "seconds": round(seconds, 2),
        "lines_per_s": round(built / seconds),
        "agent_cpu_seconds": round(acpu, 2),
        "agent_cpu_percent": round(acpu / seconds * 100, 1),
        "lines_per_agent_cpu_s": round(built / acpu),
        "collector_cpu_seconds": round(ccpu, 2),
        "collector_cpu_percent": round(ccpu / seconds * 100, 1),
        "agent_rss_mb_peak": round(rss, 1),
        "first_line_seconds": round(first_s or 0.0, 2),
        "steady_lines_per_s": round(steady_lines / steady_s) if steady else None,
        "steady_lines_per_agent_cpu_s": round(steady_lines / steady_cpu) if steady else None,
        "steady_agent_cpu_percent": round(steady_cpu / steady_s * 100, 1) if steady else None,
        "events_stored": events, "lines_missing": missing, "lines_extra": extra,
        "collector_deduplicated": dedup,
        "exactly_once": events == built and missing == extra == 0,
        "probe_timeouts": agent_log.count("probe logs failed: timed out"),
        "session_errors": agent_log.count("collector session ended"),
        "pinned": {"agent": sorted(pin[0]), "collector": sorted(pin[1])} if pin else None,
        "settings": {"probes.logs.max_lines_per_run": max_lines_per_run, "probes.logs.interval_seconds": 1,
                     "transport.batch_max_records": batch_max_records,
                     "transport.batch_max_bytes": batch_max_bytes, "spool.max_bytes": 64 * MiB},
        "target_lines_per_agent_cpu_s": TARGET,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--max-lines-per-run", type=int, default=25_000,
                    help="logs probe budget per 1 s run (option default 20,000)")
    ap.add_argument("--batch-max-records", type=int, default=5_000,
                    help="transport batch size (option default 500; collector limit 5,000)")
    ap.add_argument("--batch-max-bytes", type=int, default=4 * MiB,
                    help="transport batch bytes (option default 1 MiB; collector message limit 4 MiB)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for every line to arrive")
    ap.add_argument("--workdir", type=Path,
                    help="an empty directory to keep the log, store and spool in (default: a temp dir)")
    ap.add_argument("--smoke", action="store_true", help="20,000 lines, asserting only exactly-once")
    args = ap.parse_args()
    n_lines = 20_000 if args.smoke else args.lines
    timeout = 120.0 if args.smoke else args.timeout
    settings = (args.max_lines_per_run, args.batch_max_records, args.batch_max_bytes, timeout)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        r = measure(n_lines, args.workdir, *settings)
    else:
        with tempfile.TemporaryDirectory(prefix="warden-bench-logs-ship-") as d:
            r = measure(n_lines, Path(d), *settings)
    s = r["settings"]
    print(f"logs parsed and shipped: {r['lines']:,} lines ({r['log_mb']} MB) of auth.log (loghub OpenSSH_2k "
          f"repeated), real agent (logs probe only) -> real collector, Python {sys.version.split()[0]}")
    print(f"  settings     max_lines_per_run {s['probes.logs.max_lines_per_run']:,} (1 s runs), "
          f"batch_max_records {s['transport.batch_max_records']:,}, batch_max_bytes "
          f"{s['transport.batch_max_bytes']:,}; CPUs {r['pinned'] or 'not pinned'}")
    print(f"  end to end   {r['lines_per_s']:>8,} lines/s         {r['seconds']:.2f} s "
          f"(first line stored after {r['first_line_seconds']:.2f} s)")
    print(f"  agent CPU    {r['lines_per_agent_cpu_s']:>8,} lines/CPU-s     {r['agent_cpu_seconds']:.2f} s, "
          f"{r['agent_cpu_percent']:.1f} % of one core   (target >= {TARGET:,})")
    if r["steady_lines_per_s"] is not None:
        print(f"  steady       {r['steady_lines_per_s']:>8,} lines/s, "
              f"{r['steady_lines_per_agent_cpu_s']:,} lines/CPU-s, "
              f"{r['steady_agent_cpu_percent']} % of one core (from 10 % to 90 % of the lines stored)")
    print(f"  collector    {r['collector_cpu_seconds']:.2f} CPU-s, "
          f"{r['collector_cpu_percent']:.1f} % of one core")
    print(f"  agent RSS    {r['agent_rss_mb_peak']} MB peak; {r['probe_timeouts']} probe run timeouts, "
          f"{r['session_errors']} session errors")
    print(f"  delivery     {r['events_stored']:,} events stored, {r['lines_missing']} missing, "
          f"{r['lines_extra']} extra: {'exactly once' if r['exactly_once'] else 'NOT exactly once'}")
    print(json.dumps({"bench": "logs_ship", **r}))
    if not r["exactly_once"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
