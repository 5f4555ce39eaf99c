"""The shipped Grafana dashboard matches the documented InfluxDB schema and what agents send:
its JSON is the generator's output, every measurement it queries is emitted by an agent
probe, and the sink really writes those measurements (tags, field `value`) to a server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from tests import vm
from tests.vm import VictoriaMetrics
from warden.collector.records import MetricSample
from warden.collector.sinks.influx import InfluxConfig, InfluxSink

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "packaging" / "grafana" / "warden-influxdb.json"
victoria_metrics = vm.victoria_metrics


def _queried() -> dict[str, list[str]]:
    """measurement -> the tags its panel groups by."""
    out = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        q = panel["targets"][0]["query"]
        m = re.search(r'r\._measurement == "([a-z0-9_]+)" and r\._field == "value"', q)
        assert m, q
        out[m[1]] = json.loads(re.search(r"group\(columns: (\[.*?\])\)", q)[1])
    return out


def test_committed_dashboard_is_the_generator_output() -> None:
    code = "import runpy; print(runpy.run_path('packaging/grafana/build_dashboard.py')['render'](), end='')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout == DASHBOARD.read_text(), "regenerate: python packaging/grafana/build_dashboard.py"
    d = json.loads(DASHBOARD.read_text())
    assert {v["name"] for v in d["templating"]["list"]} == {"datasource", "bucket", "host"}
    assert len({p["id"] for p in d["panels"]}) == len(d["panels"]) >= 10


def test_every_queried_measurement_is_sent_by_an_agent_probe() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "agent").rglob("*.py"))
    for measurement in _queried():
        assert f'"{measurement}"' in source, f"no agent code emits {measurement}"


def test_sink_writes_the_documented_schema(victoria_metrics: VictoriaMetrics) -> None:
    sink = InfluxSink(InfluxConfig(url=victoria_metrics.url, org="it", bucket="warden", token="t",
                                   batch_size=50, flush_interval_s=0.05))
    sink.start()
    t = time.time_ns() - 10**9
    labels_for = {"mount": "/var", "device": "/dev/sda1", "set": "daily", "source": "/var/log/auth.log"}
    try:
        samples = [MetricSample(m, {k: labels_for[k] for k in tags if k != "host"}, 42.5, t)
                   for m, tags in _queried().items()]
        sink.submit("web1", samples)
        deadline = time.monotonic() + 10
        while sink.stats()["written_total"] < len(samples) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sink.stop(5)
    for measurement, tags in _queried().items():
        series = victoria_metrics.export(f'{{__name__="{measurement}_value"}}', expect_points=1)
        assert len(series) == 1, measurement
        metric = series[0]["metric"]
        assert metric["host"] == "web1"
        assert set(tags) <= set(metric), (measurement, metric)  # the panel's legend tags exist
        assert series[0]["values"] == [42.5]
