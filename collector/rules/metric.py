"""`kind: metric` rules: a threshold on a metric series, like a Prometheus alerting rule.

```yaml
- id: disk_space_warning
  kind: metric
  severity: warning
  summary: "{{ host }}: {{ mount }} is {{ value | percent }} full"
  metric: system_filesystem_used_percent
  select: {mount: {not: {startswith: /snap}}}
  function: value            # value | rate | increase | delta | days_to_full
  window: 10m                # rate/increase/delta/days_to_full only (required there)
  full_at: 100               # days_to_full only (default 100: percentages)
  threshold: {op: ">", value: 85, clear: 80}
  for: 5m
  keep_firing_for: 0
  stale_after: 10m
```

Semantics:

- A series is (host, the sample's labels); each is its own alert, labelled with the rule's
  labels and the series' labels (`alertname`, `severity`, `host` and the rule's own labels
  cannot be overridden by a sample: a host must not be able to raise alerts for another).
- Every accepted sample is evaluated at once; the engine's `now_ns` (not the sample's time)
  drives `for:`, `keep_firing_for:` and `stale_after:`. A series that sends nothing for
  `stale_after` stops holding (and resolves, after `keep_firing_for`).
- Hysteresis: once an alert is pending or firing, the condition is `value <op> clear`
  instead of `value <op> value`, e.g. `>` 85 clear 80 fires above 85 and holds while above 80.
- Windows are the samples in `[newest - window, newest]` (the series' own newest time, so a
  late batch from a spooling agent is judged by when it was measured). Out-of-order samples are
  ignored by `value`, inserted in time order for windows. No extrapolation to the window's
  edges: `increase` is what the samples in the window show, `rate` is that over their span.
  Counter resets (a value lower than the previous one) count the new value as the increase,
  as Prometheus does. A window with fewer than two samples (or zero span) is not evaluated:
  the alert keeps its state, so a restart does not resolve and re-fire a rate alert.
- `days_to_full`: least-squares line over the window; the value is the days until the line
  reaches `full_at` from its value at the newest sample (0 when already there). A flat or
  shrinking series does not hold (the alert resolves).
- Bounds: at most MAX_SERIES series per rule (more are ignored and counted in
  `dropped_series`), at most MAX_WINDOW_SAMPLES samples per series window (then thinned, see
  `_Series.thin`). Non-finite values are ignored.
"""

from __future__ import annotations

import math
import operator
import re
from array import array
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from warden.collector.records import Event, MetricSample
from warden.collector.rules.matchers import FieldMatch, parse_field_match
from warden.collector.rules.model import (
    HostView,
    Lifecycle,
    ParseContext,
    RuleCommon,
    Transition,
    fingerprint,
)
from warden.collector.rules.spec import Spec

FUNCTIONS = ("value", "rate", "increase", "delta", "days_to_full")
WINDOW_FUNCTIONS = frozenset(FUNCTIONS[1:])
COUNTER_FUNCTIONS = frozenset({"rate", "increase"})
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
# Memory bound: ~MAX_SERIES x MAX_WINDOW_SAMPLES x 16 bytes for window functions (~800 MB worst
# case per rule); a rule matching more series than this is almost certainly a mistake.
MAX_SERIES = 200_000
MAX_WINDOW_SAMPLES = 256
DEFAULT_STALE_AFTER = 600.0
_PURGE_EVERY_NS = 60 * 10**9
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z", re.ASCII)
_RESERVED = frozenset({"alertname", "severity", "host"})
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Threshold:
    op: str
    value: float
    clear: float | None = None  # None: the same as value (no hysteresis)

    def holds(self, v: float, holding: bool) -> bool:
        bound = self.clear if holding and self.clear is not None else self.value
        return OPS[self.op](v, bound)


def _parse_threshold(spec: Spec) -> Threshold:
    op = spec.choice("op", tuple(OPS))
    value = spec.number("value")
    clear = spec.number("clear", None)
    spec.done()
    if clear is not None:
        if op in ("==", "!="):
            raise spec.error(f"{spec.what}: clear is not supported with op {op!r}", "clear")
        if op in (">", ">=") and clear > value:
            raise spec.error(f"{spec.what}: clear ({clear:g}) must be <= value ({value:g}) for op {op!r}: "
                             f"the alert holds until the value falls to clear", "clear")
        if op in ("<", "<=") and clear < value:
            raise spec.error(f"{spec.what}: clear ({clear:g}) must be >= value ({value:g}) for op {op!r}: "
                             f"the alert holds until the value rises to clear", "clear")
    return Threshold(op, value, clear)


class _Series:
    """One series' state: its alert identity, and its window (times ascending) if any."""

    __slots__ = ("labels", "values", "fp", "newest_ns", "arrival_ns", "times", "vals")

    def __init__(self, labels: dict[str, str], values: dict[str, Any], fp: str) -> None:
        self.labels = labels
        self.values = values
        self.fp = fp
        self.newest_ns = -1
        self.arrival_ns = 0
        self.times = array("q")
        self.vals = array("d")

    def insert(self, t: int, v: float, window_ns: int) -> bool:
        """Add a sample to the window; False when it falls before the window (ignored)."""
        if t < self.newest_ns - window_ns:
            return False
        i = bisect_left(self.times, t)
        if i < len(self.times) and self.times[i] == t:
            self.vals[i] = v  # a resent sample: the latest word wins
        else:
            self.times.insert(i, t)
            self.vals.insert(i, v)
        if t > self.newest_ns:
            self.newest_ns = t
            cut = bisect_left(self.times, t - window_ns)
            if cut:
                del self.times[:cut]
                del self.vals[:cut]
        return True

    def thin(self, counter: bool) -> None:
        """Halve the window's resolution: drop every other interior sample.

        For counters a sample is dropped only between non-decreasing neighbours, so
        increases across resets stay exact; if resets prevent thinning, the oldest go.
        """
        times, vals = self.times, self.vals
        keep_t, keep_v = array("q", [times[0]]), array("d", [vals[0]])
        last = len(times) - 1
        for i in range(1, last):
            if i % 2 == 1 and (not counter or keep_v[-1] <= vals[i] <= vals[i + 1]):
                continue
            keep_t.append(times[i])
            keep_v.append(vals[i])
        keep_t.append(times[last])
        keep_v.append(vals[last])
        if len(keep_t) > MAX_WINDOW_SAMPLES:
            excess = len(keep_t) - MAX_WINDOW_SAMPLES
            del keep_t[:excess]
            del keep_v[:excess]
        self.times, self.vals = keep_t, keep_v


_NO_DATA = object()  # too few samples to evaluate: leave the alert as it is


def _counter_increase(vals: array) -> float:
    total = 0.0
    prev = vals[0]
    for v in vals[1:]:
        total += v - prev if v >= prev else v  # a reset: the counter restarted from zero
        prev = v
    return total


def _slope_and_fit(times: array, vals: array) -> tuple[float, float]:
    """Least squares over (seconds before the newest sample, value): (slope/s, fit at newest)."""
    t0 = times[-1]
    n = len(times)
    xs = [(t - t0) / _NS for t in times]
    mx = sum(xs) / n
    my = sum(vals) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, my
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, vals, strict=True)) / sxx
    return slope, my - slope * mx


@dataclass
class MetricRule:
    common: RuleCommon
    metric: str
    select: FieldMatch
    function: str
    window_ns: int
    full_at: float
    threshold: Threshold
    lifecycle: Lifecycle
    stale_ns: int
    event_kinds: frozenset[str] | None = frozenset()
    metric_names: frozenset[str] = frozenset()
    sections: frozenset[str] = frozenset()
    dropped_series: int = 0  # samples refused because the rule already tracks MAX_SERIES series
    _series: dict[tuple[str, tuple[tuple[str, str], ...]], _Series] = field(default_factory=dict)
    _next_purge_ns: int = 0

    def __post_init__(self) -> None:
        self.metric_names = frozenset({self.metric})

    # --- routing ------------------------------------------------------------------------------
    def on_event(self, host: HostView, event: Event, now_ns: int) -> list[Transition]:
        return []

    def on_metric(self, host: HostView, sample: MetricSample, now_ns: int) -> list[Transition]:
        if sample.name != self.metric or not math.isfinite(sample.value):
            return []
        if not self.common.in_scope(host.labels) or (self.select and not self.select(sample.labels)):
            return []
        key = (host.host_id, tuple(sorted(sample.labels.items())))
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= MAX_SERIES:
                self.dropped_series += 1
                return []
            extra = {k: v for k, v in sample.labels.items()
                     if k not in _RESERVED and k not in self.common.labels}
            labels = self.common.alert_labels(host.host_id, extra)
            values = {**sample.labels, "metric": self.metric, "threshold": self.threshold.value}
            series = _Series(labels, values, fingerprint(labels))
            self._series[key] = series

        if self.function == "value":
            if sample.time_ns < series.newest_ns:
                return []  # out of order: a newer value is already known
            series.newest_ns = sample.time_ns
            series.arrival_ns = now_ns
            value: Any = sample.value
        else:
            if not series.insert(sample.time_ns, sample.value, self.window_ns):
                return []
            series.arrival_ns = now_ns
            if len(series.times) > MAX_WINDOW_SAMPLES:
                series.thin(self.function in COUNTER_FUNCTIONS)
            value = self._window_value(series)
            if value is _NO_DATA:
                return []
        if value is None:  # days_to_full of a series that is not growing
            return self.lifecycle.observe(series.labels, False, now_ns, fp=series.fp)
        holds = self.threshold.holds(value, self.lifecycle.holding(series.fp))
        return self.lifecycle.observe(series.labels, holds, now_ns, series.values, value, series.fp)

    def _window_value(self, s: _Series) -> Any:
        times, vals = s.times, s.vals
        if len(times) < 2:
            return _NO_DATA
        span_s = (times[-1] - times[0]) / _NS
        if self.function == "delta":
            return vals[-1] - vals[0]
        if self.function == "increase":
            return _counter_increase(vals)
        if span_s <= 0:
            return _NO_DATA
        if self.function == "rate":
            return _counter_increase(vals) / span_s
        slope, fit = _slope_and_fit(times, vals)  # days_to_full
        if slope <= 0:
            return None
        return max(0.0, (self.full_at - fit) / slope / 86400.0)

    # --- time ---------------------------------------------------------------------------------
    def tick(self, hosts: Mapping[str, HostView], now_ns: int) -> list[Transition]:
        out: list[Transition] = []
        for fp, tr in self.lifecycle.active():
            host = hosts.get(tr.labels.get("host", ""))
            if host is not None and not self.common.in_scope(host.labels):
                out.extend(self.lifecycle.observe(tr.labels, False, now_ns, fp=fp))
        out.extend(self.lifecycle.tick(now_ns))
        if now_ns >= self._next_purge_ns:  # forget silent series, at most once a minute
            self._next_purge_ns = now_ns + _PURGE_EVERY_NS
            horizon = max(self.stale_ns, self.window_ns)
            for key in [k for k, s in self._series.items() if now_ns - s.arrival_ns > horizon]:
                del self._series[key]
        return out

    # --- persistence --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Alert states only: windows refill from new samples (a short gap after a restart)."""
        return {"lifecycle": self.lifecycle.snapshot()}

    def restore(self, state: dict[str, Any]) -> None:
        self.lifecycle.restore(state.get("lifecycle", []))


def parse_metric_rule(spec: Spec, common: RuleCommon, ctx: ParseContext) -> MetricRule:
    """The metric-specific fields of a rule whose common part is already read."""
    metric = spec.str("metric")
    if not _METRIC_NAME.match(metric):
        raise spec.error(f"{spec.what}: {metric!r} is not a metric name", "metric")
    select = parse_field_match(spec.sub("select", None))
    function = spec.choice("function", FUNCTIONS, "value")
    if function in WINDOW_FUNCTIONS:
        window = spec.duration("window", None)
        if window is None:
            raise spec.error(f"{spec.what}: function {function} needs a window (e.g. window: 10m)",
                             "function")
        if window <= 0:
            raise spec.error(f"{spec.what}: window must be longer than 0", "window")
    else:
        if spec.has("window"):
            raise spec.error(f"{spec.what}: window is only for rate, increase, delta and days_to_full; "
                             f"function value uses the latest sample", "window")
        window = 0.0
    if function == "days_to_full":
        full_at = spec.number("full_at", 100.0)
    elif spec.has("full_at"):
        raise spec.error(f"{spec.what}: full_at is only for function days_to_full", "full_at")
    else:
        full_at = 0.0
    threshold = _parse_threshold(spec.sub("threshold"))
    for_s = spec.duration("for", 0.0)
    keep_s = spec.duration("keep_firing_for", 0.0)
    stale_s = spec.duration("stale_after", DEFAULT_STALE_AFTER)
    if stale_s <= 0:
        raise spec.error(f"{spec.what}: stale_after must be longer than 0 (a silent series must resolve)",
                         "stale_after")
    spec.done()
    stale_ns = int(stale_s * _NS)
    lifecycle = Lifecycle(common, int(for_s * _NS), int(keep_s * _NS), stale_ns)
    return MetricRule(common, metric, select, function, int(window * _NS), full_at, threshold, lifecycle,
                      stale_ns)


__all__ = ["MAX_SERIES", "MAX_WINDOW_SAMPLES", "MetricRule", "Threshold", "parse_metric_rule"]
