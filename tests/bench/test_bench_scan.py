"""CI keeps the scan benchmark working: its --smoke mode runs every registered probe once in
a fresh process and reports figures for each. No figure is asserted (CI machines are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_scan_smoke() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.bench.bench_scan", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["bench"] == "scan" and summary["repeat"] == 1
    by_probe = {r["probe"]: r for r in summary["results"]}
    assert "packages" in by_probe
    for r in by_probe.values():
        assert "error" not in r, r
        assert r["wall_seconds"] >= 0 and r["peak_rss_mb"] > 0 and r["records"] > 0, r
