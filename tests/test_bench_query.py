"""CI keeps the fleet query benchmark working: its --smoke mode (200 hosts x 2,000 packages loaded
through the store's commit path) must answer every canned query correctly, checked against the
generator's own bookkeeping. Only a loose bound on time is asserted (1 s at 200 hosts, the full
run's target at 10,000); run the full benchmark by hand: python -m tests.bench.bench_query"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_query_smoke() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.bench.bench_query", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = json.loads(proc.stdout.strip().splitlines()[-1])
    assert s["bench"] == "query" and s["hosts"] == 200 and s["packages_per_host"] == 2000
    assert s["rows"]["inv_packages"] == 200 * 2000 and s["rows"]["inv_updates"] == 200
    assert all(s["verified"].values()), s["verified"]
    names = [q["query"] for q in s["queries"]]
    assert any(n.startswith("package ") for n in names) and any(n.startswith("compliance") for n in names)
    for q in s["queries"]:
        assert q["p50_ms"] < 1000, q
    assert s["ingest"]["incremental_commit_ms_per_host"] > 0 and s["hosts_per_s"] > 0
