"""The collector's own counters and gauges, rendered in Prometheus text format.

One `Telemetry` object is created by the server and passed to the parts that count;
there is no module-level registry (no global state).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

LabelKey = tuple[tuple[str, str], ...]

HELP = {
    "warden_collector_records_ingested_total": "Records durably stored.",
    "warden_collector_records_deduplicated_total": "Records received again and skipped (already stored).",
    "warden_collector_batches_ingested_total": "Batches committed.",
    "warden_collector_batches_rejected_total": "Batches refused, by reason.",
    "warden_collector_rpcs_refused_total": "RPCs refused before any batch, by reason.",
    "warden_collector_enrollments_total": "Enrollment attempts, by result.",
    "warden_collector_renewals_total": "Certificate renewals, by result.",
    "warden_collector_store_errors_total": "Group commits that failed (e.g. disk full); agents retry.",
    "warden_collector_streams_active": "Open Report streams.",
    "warden_collector_commit_seconds": "Duration of the last group commit.",
    "warden_collector_rules_records_evaluated_total": "Stored records routed through the rules engine.",
    "warden_collector_rules_dropped_records_total": "Records not evaluated: the rules backlog was full.",
    "warden_collector_rules_backlog_records": "Records waiting for the rules engine.",
    "warden_collector_rules_loaded": "Rules in force.",
    "warden_collector_rules_last_reload_ok": "1 if the last rules load succeeded, else 0.",
    "warden_collector_rules_reloads_total": "Rule reloads, by result.",
    "warden_collector_rule_errors_total": "Exceptions raised by a rule (it is skipped; the others go on).",
    "warden_collector_alert_feed_entries_total": "Alert changes appended to the feed.",
    "warden_collector_alert_store_errors_total": "Alert store writes that failed.",
}


class Telemetry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[LabelKey, float]] = defaultdict(dict)
        self._gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, n: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0) + n

    def set(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._counters[name][key] = value

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """Register a gauge read at exposition time (e.g. the sink's lag)."""
        self._gauges[name] = read

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def total(self, name: str) -> float:
        """Sum over all label sets."""
        with self._lock:
            return sum(self._counters.get(name, {}).values())

    def snapshot(self) -> dict[str, float]:
        """Flat view for JSON: name or name{k=v,...} -> value."""
        out: dict[str, float] = {}
        with self._lock:
            for name, series in self._counters.items():
                for key, v in series.items():
                    out[_series_name(name, key)] = v
        for name, read in self._gauges.items():
            out[name] = _safe(read)
        return out

    def render_prometheus(self) -> str:
        lines: list[str] = []
        with self._lock:
            items = [(n, dict(s)) for n, s in sorted(self._counters.items())]
        for name, series in items:
            if name in HELP:
                lines.append(f"# HELP {name} {HELP[name]}")
            lines.append(f"# TYPE {name} {'counter' if name.endswith('_total') else 'gauge'}")
            for key, v in sorted(series.items()):
                lines.append(f"{_series_name(name, key)} {v:g}")
        for name, read in sorted(self._gauges.items()):
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {_safe(read):g}")
        return "\n".join(lines) + "\n"


def _series_name(name: str, key: LabelKey) -> str:
    if not key:
        return name
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
    return f"{name}{{{inner}}}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _safe(read: Callable[[], float]) -> float:
    try:
        return float(read())
    except Exception:  # a broken gauge must not break the exposition
        return float("nan")
