"""Agent footprint: a real `warden-agent run` at default intervals against a real collector,
sampled with psutil. Targets: RSS <= 40 MB, CPU <= 0.5 % of a core.

    .venv/bin/python -m tests.bench.bench_agent [--seconds 300] [--only system] [--smoke]
"""

from __future__ import annotations

import argparse
import compileall
import json
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from tests.harness import AgentProc, CollectorProc, wait_for
from warden.agent.probes import registered


def compile_sources() -> None:
    """Write the .pyc files of Warden's own modules, as installing the package does (pip, the
    .deb). A development shell often sets PYTHONDONTWRITEBYTECODE=1: the agent would then
    compile every module of its own at each start, and the compiler's scratch memory stays in
    the heap as about 0.7 MB of RSS that no installed agent has."""
    import warden.agent
    import warden.v1

    for package in (warden.agent, warden.v1):
        for d in package.__path__:
            compileall.compile_dir(d, quiet=1)


def measure(seconds: float, root: Path, only: list[str] | None = None,
            sample_every: float = 1.0) -> dict[str, float]:
    compile_sources()
    collector = CollectorProc(root / "collector")
    collector.start()
    # Default agent settings except where the test harness must point it (state dir, fast
    # reconnects are irrelevant here): reset the harness' fast test intervals to defaults.
    disabled = {f"probes.{name}": {"enabled": False}
                for name in registered() if only is not None and name not in only}
    agent = AgentProc(root / "agent", collector, "bench-agent", interval=15.0,
                      transport={"backoff_initial_seconds": 0.5, "backoff_max_seconds": 60.0,
                                 "heartbeat_seconds": 15.0}, **disabled)
    agent.enroll()
    agent.start()
    try:
        assert agent.proc is not None
        proc = psutil.Process(agent.proc.pid)
        wait_for(lambda: collector.host("bench-agent") and collector.host("bench-agent")["latest_metrics"],
                 30, what="the agent's first report")
        # Start-up (imports, first inventory) is not the steady state being measured.
        time.sleep(min(5.0, seconds / 4))
        cpu0 = proc.cpu_times()
        t0 = time.monotonic()
        rss: list[float] = []
        while time.monotonic() - t0 < seconds:
            rss.append(proc.memory_info().rss / 2**20)
            time.sleep(sample_every)
        cpu1 = proc.cpu_times()
        wall = time.monotonic() - t0
        cpu = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / wall * 100
        uss = proc.memory_full_info().uss / 2**20
        committed = collector.counter("warden_collector_records_ingested_total")
    finally:
        agent.stop()
        collector.stop()
    return {"seconds": round(wall, 1), "rss_mb_peak": round(max(rss), 1),
            "rss_mb_median": round(statistics.median(rss), 1), "uss_mb_end": round(uss, 1),
            "cpu_percent_of_core": round(cpu, 3), "records_ingested": committed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--smoke", action="store_true", help="10 s, for CI")
    ap.add_argument("--only", default="", help="comma-separated probes to keep on (default: all)")
    args = ap.parse_args()
    seconds = 10.0 if args.smoke else args.seconds
    only = [p for p in args.only.split(",") if p] or None
    probes = only or sorted(name for name, spec in registered().items() if spec.default_enabled)
    with tempfile.TemporaryDirectory(prefix="warden-bench-agent-") as d:
        r = measure(seconds, Path(d), only)
    print(f"agent footprint over {r['seconds']} s at default intervals, probes: {', '.join(probes)}")
    print(f"  RSS peak     {r['rss_mb_peak']:8.1f} MB   (target <= 40 MB)")
    print(f"  RSS median   {r['rss_mb_median']:8.1f} MB")
    print(f"  USS at end   {r['uss_mb_end']:8.1f} MB")
    print(f"  CPU          {r['cpu_percent_of_core']:8.3f} % of one core   (target <= 0.5 %)")
    print(f"  records delivered {int(r['records_ingested'])}")
    print(json.dumps({"bench": "agent_footprint", "probes": probes, **r}))


if __name__ == "__main__":
    main()
