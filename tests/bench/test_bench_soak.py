"""CI keeps the soak benchmark working: its --smoke mode (50 simulated agents on the real spool
and transport, 30 s) must deliver every record exactly once and report the collector's memory.
No figure is asserted (CI machines are noisy); run the full soak by hand:
`.venv/bin/python -m tests.bench.bench_soak` (1,000 agents, 10 minutes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_soak_smoke() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.bench.bench_soak", "--smoke", "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["bench"] == "soak" and r["agents"] == 50 and r["ok"] and r["drained"]
    # Every record produced was stored once: per agent, events 1..N and every metric sample.
    assert r["records_sent"] > 10_000 and r["records_sent"] == r["records_stored"] == r["collector_ingested"]
    assert r["lost"] == 0 and r["duplicated"] == 0 and not r["bad_agents"]
    assert r["rss_mb_start"] > 0 and r["rss_mb_peak"] >= r["rss_mb_end"] > 0 and len(r["samples"]) >= 5
