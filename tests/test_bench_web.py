"""CI keeps the dashboard benchmark working: its --smoke mode (40 hosts) must render every
host's tile through every path it measures. No figure is asserted (CI machines are noisy);
run `python -m tests.bench.bench_web` (1,000 hosts) by hand for the figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_web_smoke() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.bench.bench_web", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["bench"] == "web_overview" and r["hosts"] == 40 and r["alerts"] > 0
    for key in ("store_read_ms", "fleet_read_ms", "render_ms", "http_ms"):
        assert r[key] >= 0, (key, r)
    assert r["html_kb"] > 0
    if "browser_tiles" in r:  # chromium installed: the browser drew every tile
        assert r["browser_tiles"] == 40 and r["browser_dcl_ms"] > 0
