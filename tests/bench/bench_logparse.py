"""Log parsing throughput: lines/s turning a large auth log into event records on one core.
Target: >= 50,000 lines/s.

The log is loghub's OpenSSH_2k.log repeated to --lines lines, each copy moved on in time (so
timestamps, minutes and days vary as in a real month of auth.log), written to a temporary file
and streamed back line by line through `LineParser.parse`, as the log probe does.

    .venv/bin/python -m tests.bench.bench_logparse [--lines 500000] [--smoke]

The last line of output is a JSON summary. Wall-clock and CPU rates are both reported: on a
shared machine the CPU rate is the one-core figure (the wall rate includes time spent waiting
for the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from warden.agent.logparse import LineParser

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT.parent / "shared" / "corpus" / "loghub" / "OpenSSH_2k.log"
TARGET = 50_000
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def build_log(path: Path, n_lines: int, end: datetime) -> int:
    """Write n_lines of OpenSSH_2k.log, copy after copy, each copy shifted 4h15m later than the
    one before and the last ending a day before `end`."""
    lines = SOURCE.read_bytes().split(b"\r\n")
    copies = -(-n_lines // len(lines))
    step = timedelta(hours=4, minutes=15)
    start = end - timedelta(days=1) - step * copies
    times = [datetime.strptime(line[:15].decode(), "%b %d %H:%M:%S").replace(year=start.year, tzinfo=UTC)
             for line in lines]
    written = 0
    with path.open("wb") as f:
        for k in range(copies):
            shift = start + step * k - times[0]
            for t0, line in zip(times, lines, strict=True):
                if written == n_lines:
                    return written
                t = t0 + shift
                f.write(f"{_MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S}".encode() + line[15:] + b"\n")
                written += 1
    return written


def run(path: Path) -> dict[str, object]:
    parser = LineParser(str(path), tz=UTC)
    kinds: Counter[str] = Counter()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with path.open("rb") as f:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for line in f:
            kinds[parser.parse(line).event.kind] += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = parser.stats.lines
    return {
        "bench": "logparse",
        "lines": n,
        "lines_per_s": round(n / wall),
        "lines_per_s_cpu": round(n / cpu),
        "us_per_line": round(wall / n * 1e6, 2),
        "us_per_line_cpu": round(cpu / n * 1e6, 2),
        "seconds": round(wall, 2),
        "rss_mb_peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_mb_before": round(rss0 / 1024, 1),
        "typed": parser.stats.typed,
        "generic": parser.stats.generic,
        "kinds": dict(kinds.most_common()),
        "target_lines_per_s": TARGET,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=500_000)
    ap.add_argument("--smoke", action="store_true", help="20,000 lines, for CI")
    args = ap.parse_args()
    n_lines = 20_000 if args.smoke else args.lines
    if hasattr(os, "sched_setaffinity"):  # one core, as the agent's parsing runs on one thread
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory(prefix="warden-bench-logparse-") as d:
        path = Path(d) / "auth.log"
        built = build_log(path, n_lines, datetime.now(UTC))
        size_mb = path.stat().st_size / 2**20
        r = run(path)
    print(f"log parsing: {built:,} lines ({size_mb:.1f} MB) of auth.log (loghub OpenSSH_2k repeated), "
          f"one core, Python {sys.version.split()[0]}")
    print(f"  wall  {r['lines_per_s']:>10,} lines/s   {r['us_per_line']:6.2f} us/line"
          f"   (target >= {TARGET:,})")
    print(f"  cpu   {r['lines_per_s_cpu']:>10,} lines/s   {r['us_per_line_cpu']:6.2f} us/line")
    print(f"  RSS peak {r['rss_mb_peak']} MB (before parsing {r['rss_mb_before']} MB)")
    print(f"  typed {r['typed']:,}   generic {r['generic']:,}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
