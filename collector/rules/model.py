"""What every rule kind shares: the common fields, message templates, the alert identity
(fingerprint), and the pending → firing → resolved lifecycle with `for:` and
`keep_firing_for:`.

Rule kinds (metric.py, event.py, state.py) decide *whether a condition holds* for a set of
labels at a time; `Lifecycle` turns those observations into `Transition`s, which the alert
manager stores, deduplicates and notifies. Nothing here reads a clock: callers pass times
in, so `warden-collector rules test` can replay hours in milliseconds.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from warden.collector.records import Event, MetricSample
from warden.collector.rules.matchers import FieldMatch, parse_field_match
from warden.collector.rules.spec import Spec

SEVERITIES = ("info", "warning", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_ID = re.compile(r"[a-z][a-z0-9_]{0,99}\Z", re.ASCII)
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z", re.ASCII)
COMMON_FIELDS = ("id", "kind", "severity", "labels", "summary", "description", "scope")


# --- templates ---------------------------------------------------------------------------------

_TPL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:\|\s*([a-z_]+)\s*)?\}\}")
FILTERS = ("round", "int", "percent", "bytes", "duration", "days", "upper", "lower")


def _fmt_bytes(v: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(v) < 1024 or unit == "PiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return str(v)  # pragma: no cover


def _fmt_duration(seconds: float) -> str:
    s = int(abs(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def _apply(filter_: str | None, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"  # as matchers compare them
    if filter_ is None:
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value)
    if filter_ in ("upper", "lower"):
        return getattr(str(value), filter_)()
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v) or math.isinf(v):
        return str(v)
    if filter_ == "round":
        return f"{v:.1f}".rstrip("0").rstrip(".")
    if filter_ == "int":
        return str(int(v))
    if filter_ == "percent":
        return f"{v:.1f} %"
    if filter_ == "bytes":
        return _fmt_bytes(v)
    if filter_ == "duration":
        return _fmt_duration(v)
    return f"{v / 86400:.1f}"  # days


@dataclass(frozen=True, slots=True)
class Template:
    """`{{ name }}` / `{{ name | filter }}` over a flat mapping; no code, no attribute access.

    Names are labels, event fields and `value`, `host`, `rule`, `severity`; `labels.x` and
    `fields.x` are accepted as aliases of `x`. Unknown names render empty.
    """

    text: str

    @classmethod
    def parse(cls, text: str) -> Template:
        for m in _TPL.finditer(text):
            if m.group(2) and m.group(2) not in FILTERS:
                raise ValueError(f"unknown template filter {m.group(2)!r} (one of {', '.join(FILTERS)})")
        stripped = _TPL.sub("", text)
        if "{{" in stripped or "}}" in stripped:
            raise ValueError(f"malformed template {text!r}: use {{{{ name }}}} or {{{{ name | filter }}}}")
        return cls(text)

    def render(self, values: Mapping[str, Any]) -> str:
        if "{{" not in self.text:
            return self.text

        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in values and "." in name:
                name = name.split(".", 1)[1]
            return _apply(m.group(2), values.get(name))

        return _TPL.sub(one, self.text)


# --- the common part of every rule -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleCommon:
    id: str
    kind: str
    severity: str
    labels: dict[str, str]
    summary: Template
    description: Template
    scope: FieldMatch  # over the host's labels (plus `host`); empty = every host
    file: str = ""
    line: int = 0

    def in_scope(self, host_labels: Mapping[str, str]) -> bool:
        return not self.scope or self.scope(host_labels)

    def alert_labels(self, host: str, extra: Mapping[str, Any]) -> dict[str, str]:
        """The identity of an alert: rule id, severity, host, the rule's labels, the group's."""
        out = {k: v if isinstance(v, str) else str(v) for k, v in extra.items() if v is not None}
        # Applied last: a sample's labels or an event's fields (host-controlled) can never
        # rename the alert, change its severity, or claim another host.
        out.update(self.labels)
        out["alertname"] = self.id
        out["severity"] = self.severity
        out["host"] = host
        return out

    def annotations(self, values: Mapping[str, Any]) -> dict[str, str]:
        out = {"summary": self.summary.render(values)}
        if self.description.text:
            out["description"] = self.description.render(values)
        return out


def parse_common(spec: Spec, kind: str) -> RuleCommon:
    """Read id, severity, labels, summary, description, scope; the kind reads the rest."""
    rule_id = spec.str("id")
    if not _ID.match(rule_id):
        raise spec.error(f"rule id {rule_id!r} must be lower-case letters, digits and _ "
                         f"(starting with a letter, at most 100)", "id")
    spec.what = f"rule {rule_id}"
    spec.str("kind")  # checked by the loader
    severity = spec.choice("severity", SEVERITIES)
    labels = spec.str_map("labels", {})
    for k in labels:
        if not _LABEL.match(k):
            raise spec.error(f"{spec.what}: label name {k!r} is not valid", "labels")
        if k in ("alertname", "host"):
            raise spec.error(f"{spec.what}: label {k!r} is set by Warden", "labels")
    summary = spec.parse("summary", Template.parse)
    description = spec.parse("description", Template.parse, Template(""))
    scope = parse_field_match(spec.sub("scope", None))
    return RuleCommon(rule_id, kind, severity, labels, summary, description, scope, spec.file, spec.line)


# --- alert identity and lifecycle -------------------------------------------------------------


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable identity of an alert: a hash of its sorted labels (as Alertmanager does)."""
    h = hashlib.sha256()
    for k in sorted(labels):
        h.update(k.encode())
        h.update(b"\xff")
        h.update(labels[k].encode())
        h.update(b"\xff")
    return h.hexdigest()[:16]


@dataclass(slots=True)
class Transition:
    """An alert changed state: "pending", "firing" or "resolved" (from pending: never fired)."""

    rule_id: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    at_ns: int
    active_since_ns: int
    value: float | None = None
    was_firing: bool = False  # for "resolved": whether it had fired (else a pending that cleared)


@dataclass(slots=True)
class _Track:
    labels: dict[str, str]
    values: dict[str, Any]
    state: str  # "pending" | "firing"
    since_ns: int  # when the condition started holding
    last_true_ns: int
    last_seen_ns: int
    holding: bool  # the last observation said the condition holds
    value: float | None = None


@dataclass
class Lifecycle:
    """pending → firing → resolved for one rule, per alert (label set).

    `observe` reports whether the condition holds for a label set at a time; `tick` advances
    time without news (a `for:` elapses, `keep_firing_for:` runs out, a series goes stale).
    A condition false while pending drops the alert (reported as resolved, was_firing=False).
    """

    rule: RuleCommon
    for_ns: int = 0
    keep_firing_for_ns: int = 0
    stale_ns: int = 0  # 0 = never: the kind decides when a silent condition is false
    _active: dict[str, _Track] = field(default_factory=dict)

    def holding(self, fp: str) -> bool:
        """Is this alert pending or firing (for hysteresis: which threshold applies)?"""
        return fp in self._active

    def active(self) -> Iterator[tuple[str, _Track]]:
        return iter(list(self._active.items()))

    def observe(self, labels: dict[str, str], holds: bool, now_ns: int,
                values: Mapping[str, Any] | None = None, value: float | None = None,
                fp: str | None = None) -> list[Transition]:
        fp = fp or fingerprint(labels)
        tr = self._active.get(fp)
        out: list[Transition] = []
        if holds:
            if tr is None:
                tr = _Track(labels, dict(values or {}), "pending", now_ns, now_ns, now_ns, True, value)
                self._active[fp] = tr
                if self.for_ns > 0:
                    out.append(self._transition(fp, tr, "pending", now_ns))
            else:
                tr.holding = True
                tr.last_true_ns = tr.last_seen_ns = now_ns
                tr.value = value
                if values:
                    tr.values = dict(values)
            if tr.state == "pending" and now_ns - tr.since_ns >= self.for_ns:
                tr.state = "firing"
                out.append(self._transition(fp, tr, "firing", now_ns))
        elif tr is not None:
            tr.holding = False
            tr.last_seen_ns = now_ns
            if value is not None:
                tr.value = value
            out.extend(self._settle(fp, tr, now_ns))
        return out

    def pulse(self, labels: dict[str, str], now_ns: int, values: Mapping[str, Any] | None = None,
              value: float | None = None) -> list[Transition]:
        """The condition held at one instant (an event): fire, then stay firing for
        `keep_firing_for` after the last pulse."""
        fp = fingerprint(labels)
        out = self.observe(labels, True, now_ns, values, value, fp)
        tr = self._active.get(fp)
        if tr is not None:
            tr.holding = False
        return out

    def adopt(self, fp: str, labels: dict[str, str], state: str, since_ns: int, now_ns: int,
              holding: bool) -> None:
        """Take over an alert the alert store holds open but this lifecycle does not know (state
        lost in a crash): it then resolves like any other, when its condition says so."""
        if fp not in self._active:
            self._active[fp] = _Track(dict(labels), {}, state, since_ns, now_ns, now_ns, holding)

    def retract(self, fp: str, now_ns: int) -> list[Transition]:
        """Resolve an alert at once: later evidence showed its trigger was no trigger."""
        tr = self._active.pop(fp, None)
        if tr is None:
            return []
        return [self._transition(fp, tr, "resolved", now_ns, was_firing=tr.state == "firing")]

    def tick(self, now_ns: int) -> list[Transition]:
        out: list[Transition] = []
        for fp, tr in list(self._active.items()):
            if tr.holding and self.stale_ns and now_ns - tr.last_seen_ns > self.stale_ns:
                tr.holding = False
            if tr.holding:
                if tr.state == "pending" and now_ns - tr.since_ns >= self.for_ns:
                    tr.state = "firing"
                    out.append(self._transition(fp, tr, "firing", now_ns))
            else:
                out.extend(self._settle(fp, tr, now_ns))
        return out

    def _settle(self, fp: str, tr: _Track, now_ns: int) -> list[Transition]:
        if tr.state == "pending":
            del self._active[fp]
            return [self._transition(fp, tr, "resolved", now_ns, was_firing=False)]
        if now_ns - tr.last_true_ns >= self.keep_firing_for_ns:
            del self._active[fp]
            return [self._transition(fp, tr, "resolved", now_ns, was_firing=True)]
        return []

    def _transition(self, fp: str, tr: _Track, state: str, now_ns: int,
                    was_firing: bool = False) -> Transition:
        values = {**tr.values, **tr.labels, "value": tr.value, "rule": self.rule.id}
        return Transition(self.rule.id, fp, tr.labels, self.rule.annotations(values), state, now_ns,
                          tr.since_ns, tr.value, was_firing or state == "firing")

    # --- persistence across collector restarts ----------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        return [{"fp": fp, "labels": t.labels, "values": _jsonable(t.values), "state": t.state,
                 "since": t.since_ns, "last_true": t.last_true_ns, "last_seen": t.last_seen_ns,
                 "holding": t.holding, "value": t.value} for fp, t in self._active.items()]

    def restore(self, items: list[dict[str, Any]]) -> None:
        for it in items:
            self._active[it["fp"]] = _Track(dict(it["labels"]), dict(it["values"]), it["state"], it["since"],
                                            it["last_true"], it["last_seen"], it["holding"], it["value"])


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, str | int | float | bool) or v is None}


# --- what the engine hands to rules, and what a rule kind implements -------------------------


@dataclass(slots=True)
class HostView:
    """What the rules know about one host: identity, labels, liveness and latest register."""

    host_id: str
    labels: dict[str, str]  # the host's labels plus "host": host_id (what `scope:` matches)
    last_seen_ns: int = 0
    # section -> (time_ns, data): the latest inventory, as stored (see collector/records.py)
    inventory: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    timezone: str = ""  # IANA name: the host's `tz` label, else its os section's, else "" (UTC)
    heartbeat_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ParseContext:
    """Shared definitions a rule may refer to (calendars by name)."""

    calendars: Mapping[str, Any] = field(default_factory=dict)


class Rule(Protocol):
    """A parsed rule of any kind. The engine routes to it only what it declares it wants:

    - `event_kinds`: event kinds it reads (None = every kind) — event rules;
    - `metric_names`: metric names it reads — metric rules;
    - `sections`: inventory sections whose change should re-evaluate it — state rules.

    Every method returns the transitions it caused; `tick` is called every few seconds with
    the hosts (state rules evaluate there; others expire windows and holds).
    """

    common: RuleCommon
    event_kinds: frozenset[str] | None
    metric_names: frozenset[str]
    sections: frozenset[str]

    def on_event(self, host: HostView, event: Event, now_ns: int) -> list[Transition]: ...

    def on_metric(self, host: HostView, sample: MetricSample, now_ns: int) -> list[Transition]: ...

    def tick(self, hosts: Mapping[str, HostView], now_ns: int) -> list[Transition]: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...
