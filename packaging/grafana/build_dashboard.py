"""Generate packaging/grafana/warden-influxdb.json: a Grafana dashboard over Warden's
InfluxDB schema (docs/influxdb.md), Flux queries, for an InfluxDB 2.x data source.

    python packaging/grafana/build_dashboard.py    # rewrites the JSON beside this file

tests/test_grafana_dashboard.py checks the committed JSON is this output, that every
measurement it queries is one the agent sends, and writes those through the real sink.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("warden-influxdb.json")

# (title, measurement, unit, extra Flux filter, group-by tags for the legend)
PANELS = [
    ("CPU used", "system_cpu_percent", "percent", "", ["host"]),
    ("Memory used", "system_memory_used_percent", "percent", "", ["host"]),
    ("Load (1 min)", "system_load1", "short", "", ["host"]),
    ("Filesystem used", "system_filesystem_used_percent", "percent", "", ["host", "mount"]),
    ("Inodes used", "system_filesystem_inodes_used_percent", "percent", "", ["host", "mount"]),
    ("Days until full", "disk_filesystem_days_to_full", "d", "", ["host", "mount"]),
    ("Disk temperature", "disk_temperature_celsius", "celsius", "", ["host", "device"]),
    ("Newest backup age", "backup_newest_age_seconds", "s", "", ["host", "set"]),
    ("Security updates pending", "updates_security_pending", "short", "", ["host"]),
    ("Reboot required", "reboot_required", "short", "", ["host"]),
    ("Log lines read per second", "logs_lines_total", "short",
     "  |> derivative(unit: 1s, nonNegative: true)\n", ["host", "source"]),
    ("Agent spool backlog", "agent_spool_pending_records", "short", "", ["host"]),
]


def flux(measurement: str, extra: str, group: list[str]) -> str:
    keep = ", ".join(f'"{k}"' for k in ["_time", "_value", *group])
    return (
        'from(bucket: "${bucket}")\n'
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
        f'  |> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "value")\n'
        '  |> filter(fn: (r) => contains(value: r.host, set: ${host:json}))\n'
        f"{extra}"
        "  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)\n"
        f"  |> keep(columns: [{keep}])\n"
        f"  |> group(columns: [{', '.join(json.dumps(g) for g in group)}])"
    )


def dashboard() -> dict:
    panels = []
    for i, (title, measurement, unit, extra, group) in enumerate(PANELS):
        panels.append({
            "id": i + 1, "type": "timeseries", "title": title,
            "datasource": {"type": "influxdb", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom",
                                   "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi"}},
            "targets": [{"refId": "A", "query": flux(measurement, extra, group),
                         "datasource": {"type": "influxdb", "uid": "${datasource}"}}],
        })
    return {
        "title": "Warden — machine room", "uid": "warden-influxdb", "schemaVersion": 39, "version": 1,
        "tags": ["warden"], "timezone": "browser", "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "influxdb", "label": "InfluxDB"},
            {"name": "bucket", "type": "textbox", "query": "warden", "label": "Bucket",
             "current": {"text": "warden", "value": "warden"}},
            {"name": "host", "type": "query", "label": "Host", "multi": True, "includeAll": True,
             "datasource": {"type": "influxdb", "uid": "${datasource}"},
             "query": 'import "influxdata/influxdb/schema"\n'
                      'schema.tagValues(bucket: "${bucket}", tag: "host")',
             "refresh": 2, "sort": 1},
        ]},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
