"""One full inventory + patch scan on this machine: every registered probe (packages, and
disk, inventory, ... when present) collected once in its own fresh process, with wall time,
CPU time (the probe's process and the tools it ran) and peak RSS (resource.getrusage).

A fresh process per probe keeps the figures apart: peak RSS is per process, and each probe
pays its own imports as the agent would at start-up.

    .venv/bin/python -m tests.bench.bench_scan [--repeat 3] [--smoke] [--probe packages ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD_TIMEOUT_SECONDS = 600.0


def child(name: str, state_dir: Path) -> dict[str, object]:
    """Runs in the measured process: import, construct and collect probe `name` once."""
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    from warden.agent.probes import HostPaths, registered

    spec = registered()[name]
    probe = spec.cls(spec.config(), HostPaths(), state_dir)
    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    out = list(probe.collect())
    wall = time.perf_counter() - t1
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    stop = getattr(probe, "stop", None)
    if stop is not None:
        stop()
    kinds: dict[str, int] = {}
    for rec in out:
        kind = rec.WhichOneof("kind")
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "probe": name,
        "import_seconds": round(t_import, 3),
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), 3),
        "cpu_children_seconds": round((c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime), 3),
        "peak_rss_mb": round(r1.ru_maxrss / 1024, 1),  # Linux reports KiB
        # Largest tool the probe ran (apt-get, rpm...); 0 when it ran none. Inherited from the
        # parent's earlier children is impossible: this process is fresh.
        "peak_rss_children_mb": round(c1.ru_maxrss / 1024, 1),
        "records": len(out),
        "record_kinds": kinds,
        "bytes": sum(rec.ByteSize() for rec in out),
    }


def measure(name: str, state_dir: Path) -> dict[str, object]:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_scan", "--child", name, "--state-dir", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_SECONDS,
            cwd=Path(__file__).resolve().parents[2],
        )
    except subprocess.TimeoutExpired:
        return {"probe": name, "error": f"timed out after {CHILD_TIMEOUT_SECONDS:g} s"}
    if proc.returncode != 0:
        return {"probe": name, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per probe; the median is reported")
    ap.add_argument("--smoke", action="store_true", help="one run per probe, for CI")
    ap.add_argument("--probe", action="append", help="only this probe (repeatable)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.state_dir)))
        return

    from warden.agent.probes import registered

    names = args.probe or list(registered())
    repeat = 1 if args.smoke else max(1, args.repeat)
    results = []
    with tempfile.TemporaryDirectory(prefix="warden-bench-scan-") as d:
        for name in names:
            runs = [measure(name, Path(d) / name) for _ in range(repeat)]
            ok = [r for r in runs if "error" not in r]
            if not ok:
                results.append(runs[-1])
                continue
            # The first run sends the full package list; later ones only its hash.
            best = dict(ok[0])
            for key in ("wall_seconds", "cpu_seconds", "cpu_children_seconds", "peak_rss_mb"):
                best[key] = statistics.median(float(r[key]) for r in ok)  # type: ignore[arg-type]
            best["runs"] = len(ok)
            best["first_run_bytes"] = ok[0]["bytes"]
            results.append(best)

    print(f"one scan per probe on this machine (median of {repeat} fresh process(es) each)")
    header = ("probe", "wall s", "cpu s", "tools cpu s", "peak RSS MB", "tools RSS MB", "records")
    print("  {:<12} {:>8} {:>8} {:>11} {:>11} {:>12} {:>8}".format(*header))
    total_wall = total_cpu = 0.0
    for r in results:
        if "error" in r:
            print(f"  {r['probe']:<12} error: {r['error']}")
            continue
        total_wall += float(r["wall_seconds"])  # type: ignore[arg-type]
        total_cpu += float(r["cpu_seconds"]) + float(r["cpu_children_seconds"])  # type: ignore[arg-type]
        print(
            f"  {r['probe']:<12} {r['wall_seconds']:>8.3f} {r['cpu_seconds']:>8.3f} "
            f"{r['cpu_children_seconds']:>11.3f} {r['peak_rss_mb']:>11.1f} "
            f"{r['peak_rss_children_mb']:>12.1f} {r['records']:>8}"
        )
    print(f"  {'all':<12} {total_wall:>8.3f} {total_cpu:>8.3f}  (cpu incl. tools)")
    print(json.dumps({"bench": "scan", "repeat": repeat, "results": results}))


if __name__ == "__main__":
    main()
