"""The `event` rule kind: alerts from matching events, alone or correlated.

    - id: ssh_brute_force
      kind: event
      severity: critical
      summary: "{{ host }}: {{ count }} failed SSH logins from {{ src_ip }} in 60s"
      match:                          # required (except with `sequence`, where steps match)
        kind: auth.login              # a kind, a list of kinds, or a matcher ({startswith: auth.})
        fields: {result: failure, service: sshd, pam_module: {exists: false}}
        event_severity: {in: [warning, error]}
        source: {startswith: /var/log/}
        raw: {contains: "..."}
      when: {outside: working_hours}  # or {inside: NAME}: the event's time, in the host's zone
      count: {threshold: 5, window: 60s, by: [src_ip], distinct: user}
                                      # weight: FIELD counts an event as that many occurrences
                                      # (rsyslog's "message repeated N times" carries repeated=N)
      # or  sequence: {by: [src_ip], within: 10m, steps: [{match: {...}, count: 3}, {match: {...}}]}
      # or  first_seen: {by: [user], value: src_ip, baseline: 14d}
      # or, without a correlation, group_by: [user]  (every matching event fires)
      keep_firing_for: 15m            # the alert stays firing this long after the last trigger
      unless_after: {match: {kind: system.shutdown}, within: 30d}
                                      # a trigger preceded by such an event of the same host
                                      # since its previous trigger (and within `within`, if
                                      # given; event time) does not fire: a boot with no clean
                                      # shutdown since the last boot is "unexpected". With no
                                      # history at all (neither seen yet) nothing fires; a late
                                      # `unless` event that falls before the last trigger
                                      # retracts that trigger's alert (resolved at once).
                                      # same_within: 10m treats triggers that close to the
                                      # last one as the same occurrence (syslog and wtmp).

Time. Correlation windows use the *event* time (the agent's clock), per host and group, so
a host whose clock is off still correlates its own events correctly; the alert lifecycle
uses the engine's `now_ns` (the collector's clock).

Windows. A group's window is anchored at the newest event time it has seen: events count
together when `newest - time < window`. An event exactly `window` after another is outside
its window (60s window: events at 0s and 60s are never counted together; 0s and 59.999s
are). An event arriving late still counts when it is inside the window of the newest
event; older ones are ignored. So every counted set really spans less than `window`.
The same holds for `sequence` (`within`, measured from the first step's event) and
`first_seen` (a value is new when not seen for `baseline` or more).

Groups. State is kept per (host, `by` values); an event lacking a `by` field is grouped under
an empty value (the label is left out), and an event lacking the `distinct` / `value` field
is not counted. Events of one group in a sequence are ordered by event time, then arrival.

Memory. Per rule at most `MAX_GROUPS` groups (the least recently updated is evicted); a
count window keeps at most 10 × threshold events (at least 100) — enough to decide, since
the window then holds more than the threshold anyway, but `count` in messages is capped
there; a sequence step likewise keeps 10 × its count (at least 100). `first_seen` remembers at most
`MAX_VALUES` values per group and `MAX_FIRST_SEEN_TOTAL` per rule, evicting the least
recently seen value (per group) or the least recently active group (per rule): an evicted
group learns afresh. Idle count/sequence groups are dropped by `tick` once their window
(plus `IDLE_GRACE_NS` for batching delays) has passed in collector time.

Alerts. Labels are the rule's plus the `by` / `group_by` fields (for `first_seen`, also the
`value` field: each new value is its own alert). Messages see the triggering event's fields
and `count`, `kind`, `host`, `event_severity`, `source`, `raw`, `time`, `first_time`,
`last_time` (ISO 8601, UTC), `span` (seconds) and, for `first_seen`, `previous_time`; a
correlation's `count` wins over an event field of that name, a plain rule's does not
(auth.too_many_failures carries its own). The alert's value is the count (1 without one).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from warden.collector.records import Event, MetricSample
from warden.collector.rules.calendar import DEFAULT_CALENDARS, Calendar
from warden.collector.rules.matchers import FieldMatch, Matcher, parse_field_match, parse_matcher
from warden.collector.rules.model import HostView, Lifecycle, ParseContext, RuleCommon, Transition
from warden.collector.rules.spec import Spec

MAX_GROUPS = 100_000
MAX_VALUES = 10_000
MAX_FIRST_SEEN_TOTAL = 1_000_000
IDLE_GRACE_NS = 300 * 1_000_000_000
DEFAULT_KEEP_FIRING_FOR = 900.0
_NS = 1_000_000_000
_RESERVED = ("alertname", "severity", "host")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z", re.ASCII)  # as model.py's label names
_SNAPSHOT_VERSION = 1


# --- matching -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventMatch:
    """Which events a rule (or a sequence step) is about; all given tests must hold."""

    kinds: frozenset[str] | None  # exact kinds (None: any, or see kind_test)
    kind_test: Matcher | None
    fields: FieldMatch  # the field tests not in `equals`
    severity: Matcher | None
    source: Matcher | None
    raw: Matcher | None
    # `field: text` tests as (name, text, matcher): most tests are these, and comparing a
    # string field directly skips the matcher's conversions; other types use the matcher.
    equals: tuple[tuple[str, str, Matcher], ...] = ()

    def __call__(self, ev: Event) -> bool:
        if self.kinds is not None and ev.kind not in self.kinds:
            return False
        if self.kind_test is not None and not self.kind_test.test(ev.kind):
            return False
        if self.equals:
            f = ev.fields
            for name, want, m in self.equals:
                v = f.get(name)
                if v != want and (v.__class__ is str or not m.test(v)):
                    return False
        if self.fields.matchers and not self.fields(ev.fields):
            return False
        if self.severity is not None and not self.severity.test(ev.severity):
            return False
        if self.source is not None and not self.source.test(ev.source):
            return False
        return self.raw is None or self.raw.test(ev.raw)


MATCH_ALL = EventMatch(None, None, FieldMatch(()), None, None, None)


def parse_event_match(spec: Spec) -> EventMatch:
    """`{kind, fields, event_severity, source, raw}`: each optional, all must hold."""
    kinds: frozenset[str] | None = None
    kind_test: Matcher | None = None
    raw_kind = spec.raw("kind", None)
    if isinstance(raw_kind, str):
        kinds = frozenset([raw_kind])
    elif isinstance(raw_kind, list):
        if not raw_kind or not all(isinstance(k, str) and k for k in raw_kind):
            raise spec.error(f"{spec.what}.kind: a list of kinds must hold non-empty strings", "kind")
        kinds = frozenset(raw_kind)
    elif isinstance(raw_kind, dict):
        kind_test = parse_matcher(raw_kind, spec, "kind")
    elif raw_kind is not None:
        raise spec.error(f"{spec.what}.kind must be a kind, a list of kinds or a matcher", "kind")
    fields_spec = spec.sub("fields", None)
    fields = parse_field_match(fields_spec)
    plain = {k: v for k, v in fields_spec.data.items() if isinstance(v, str)} if fields_spec else {}
    equals = tuple((k, plain[k], m) for k, m in fields.matchers if k in plain)
    fields = FieldMatch(tuple((k, m) for k, m in fields.matchers if k not in plain))
    tests: dict[str, Matcher | None] = {}
    for key in ("event_severity", "source", "raw"):
        raw = spec.raw(key, None)
        tests[key] = None if raw is None else parse_matcher(raw, spec, key)
    spec.done()
    return EventMatch(kinds, kind_test, fields, tests["event_severity"], tests["source"], tests["raw"],
                      equals)


# --- per-group state ------------------------------------------------------------------------


class _CountGroup:
    __slots__ = ("times", "seen", "newest", "oldest", "touched", "labels")

    def __init__(self, cap: int) -> None:
        self.times: deque[int] = deque(maxlen=cap)  # sorted event times (plain counting)
        self.seen: dict[Any, int] = {}  # distinct value -> latest time, in recency order
        self.newest = 0
        self.oldest = 0  # a lower bound of the times in `seen`: prune only when it is stale
        self.touched = 0  # collector time of the last update
        self.labels: dict[str, str] | None = None


class _SeqGroup:
    __slots__ = ("steps", "newest", "seq", "touched", "labels")

    def __init__(self, caps: list[int]) -> None:
        # per step: (time, arrival) of matching events, sorted
        self.steps: list[deque[tuple[int, int]]] = [deque(maxlen=c) for c in caps]
        self.newest = 0
        self.seq = 0
        self.touched = 0
        self.labels: dict[str, str] | None = None


class _SeenGroup:
    __slots__ = ("since", "values")

    def __init__(self, since: int) -> None:
        self.since = since  # event time of the group's first event: learning starts there
        self.values: dict[Any, int] = {}  # value -> last seen event time, least recent first


def _insert_sorted(dq: deque[Any], item: Any) -> None:
    """Insert into a sorted, bounded deque; late items are rare and land near the end."""
    if len(dq) == dq.maxlen:
        if item < dq[0]:
            return  # older than everything kept: it could not change the outcome
        dq.popleft()
    i = len(dq)
    while i and dq[i - 1] > item:
        i -= 1
    dq.insert(i, item)


def _iso(time_ns: int) -> str:
    try:
        return _iso_seconds(time_ns // _NS)
    except (OverflowError, ValueError, OSError):
        return str(time_ns)


@lru_cache(maxsize=1024)  # a firing rule formats the same few seconds for every event it counts
def _iso_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the rule -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountSpec:
    threshold: int
    window_ns: int
    by: tuple[str, ...]
    distinct: str | None
    weight: str | None = None  # a field saying how many occurrences one event stands for


@dataclass(frozen=True, slots=True)
class SequenceStep:
    match: EventMatch
    count: int


@dataclass(frozen=True, slots=True)
class SequenceSpec:
    within_ns: int
    by: tuple[str, ...]
    steps: tuple[SequenceStep, ...]


@dataclass(frozen=True, slots=True)
class FirstSeenSpec:
    by: tuple[str, ...]
    value: str
    baseline_ns: int


class EventRule:
    """An `event` rule (see the module docstring); implements the `Rule` protocol."""

    def __init__(self, common: RuleCommon, match: EventMatch, when: tuple[Calendar, bool] | None,
                 correlation: CountSpec | SequenceSpec | FirstSeenSpec | None, group_by: tuple[str, ...],
                 keep_firing_for_ns: int, unless: tuple[EventMatch, int | None] | None = None,
                 same_within_ns: int = 0) -> None:
        self.common = common
        self.unless = unless  # (match, within_ns or None)
        self._same_within = same_within_ns
        # host -> [newest `unless` time, last trigger time, previous trigger time, last alert fp]
        self._unless_state: dict[str, list[Any]] = {}
        self._scope = common.scope if common.scope else None  # common.in_scope, inlined
        self.match = match
        self.when = when  # (calendar, inside?)
        self.correlation = correlation
        self.group_by = group_by
        self.lifecycle = Lifecycle(common, for_ns=0, keep_firing_for_ns=keep_firing_for_ns)
        self.metric_names: frozenset[str] = frozenset()
        self.sections: frozenset[str] = frozenset()
        self.event_kinds = self._kinds()
        self._groups: dict[tuple[Any, ...], Any] = {}  # least recently updated first
        self._seen_total = 0
        if isinstance(correlation, CountSpec):
            self._by = correlation.by
            self._cap = max(10 * correlation.threshold, 100)
            self._handle = self._on_count
        elif isinstance(correlation, SequenceSpec):
            self._by = correlation.by
            self._step_caps = [max(10 * s.count, 100) for s in correlation.steps]
            self._handle = self._on_sequence
        elif isinstance(correlation, FirstSeenSpec):
            self._by = correlation.by
            self._handle = self._on_first_seen
        else:
            self._by = group_by
            self._handle = self._on_plain

    def _kinds(self) -> frozenset[str] | None:
        kinds = self.match.kinds if self.match.kind_test is None else None
        if isinstance(self.correlation, SequenceSpec):
            steps = [s.match for s in self.correlation.steps]
            if all(m.kinds is not None and m.kind_test is None for m in steps):
                union = frozenset().union(*(m.kinds for m in steps if m.kinds is not None))
                kinds = union if kinds is None else kinds & union
        if self.unless is not None and kinds is not None:
            m = self.unless[0]
            kinds = kinds | m.kinds if m.kinds is not None and m.kind_test is None else None
        return kinds

    # --- the Rule protocol ------------------------------------------------------------------
    def on_event(self, host: HostView, event: Event, now_ns: int) -> list[Transition]:
        if self.unless is not None:
            return self._on_event_unless(host, event, now_ns)
        if not self.match(event) or (self._scope is not None and not self._scope(host.labels)):
            return []
        return self._on_matching(host, event, now_ns)

    def _on_matching(self, host: HostView, event: Event, now_ns: int) -> list[Transition]:
        if self.when is not None:
            calendar, inside = self.when
            if calendar.is_working(event.time_ns, host.timezone) != inside:
                return []
        fields = event.fields
        key = (host.host_id, *[fields.get(b) for b in self._by]) if self._by else (host.host_id,)
        return self._handle(host, event, key, now_ns)

    def _on_event_unless(self, host: HostView, event: Event, now_ns: int) -> list[Transition]:
        match, within = self.unless  # type: ignore[misc]
        st = self._unless_state.setdefault(host.host_id, [None, None, None, None])
        t = event.time_ns
        out: list[Transition] = []
        if match(event):
            if st[0] is None or t > st[0]:
                st[0] = t
            # Late evidence: it falls between the previous trigger and the last one.
            last, prev = st[1], st[2]
            if (last is not None and t <= last and (prev is None or t > prev)
                    and (within is None or last - t < within) and st[3] is not None):
                out += self.lifecycle.retract(st[3], now_ns)
        if not self.match(event) or (self._scope is not None and not self._scope(host.labels)):
            return out
        seen_unless, last = st[0], st[1]
        if last is not None and abs(t - last) < self._same_within:
            return out  # the same occurrence seen twice (e.g. a boot in syslog and in wtmp)
        if last is None or t > last:
            st[1], st[2] = t, last
        if seen_unless is None and last is None:
            return out  # no history yet: nothing to judge the trigger against
        if (seen_unless is not None and seen_unless <= t and (last is None or seen_unless >= last)
                and (within is None or t - seen_unless < within)):
            return out
        got = self._on_matching(host, event, now_ns)
        for tr in got:  # (already firing: no transition, the same alert as before)
            st[3] = tr.fingerprint
        return out + got

    def on_metric(self, host: HostView, sample: MetricSample, now_ns: int) -> list[Transition]:
        return []

    def tick(self, hosts: Mapping[str, HostView], now_ns: int) -> list[Transition]:
        out = self.lifecycle.tick(now_ns)
        c = self.correlation
        if isinstance(c, CountSpec | SequenceSpec):
            horizon = now_ns - (c.window_ns if isinstance(c, CountSpec) else c.within_ns) - IDLE_GRACE_NS
            groups = self._groups
            while groups:  # least recently updated first: stop at the first live one
                key = next(iter(groups))
                if groups[key].touched >= horizon:
                    break
                del groups[key]
        return out

    def snapshot(self) -> dict[str, Any]:
        c = self.correlation
        groups: list[dict[str, Any]] = []
        for key, g in self._groups.items():
            if isinstance(c, CountSpec):
                groups.append({"key": list(key), "times": list(g.times),
                               "seen": [[v, t] for v, t in g.seen.items()],
                               "newest": g.newest, "touched": g.touched})
            elif isinstance(c, SequenceSpec):
                groups.append({"key": list(key), "steps": [[list(x) for x in dq] for dq in g.steps],
                               "newest": g.newest, "seq": g.seq, "touched": g.touched})
            elif isinstance(c, FirstSeenSpec):
                groups.append({"key": list(key), "since": g.since,
                               "values": [[v, t] for v, t in g.values.items()]})
        return {"version": _SNAPSHOT_VERSION, "shape": self._shape(), "lifecycle": self.lifecycle.snapshot(),
                "groups": groups, "unless": {h: list(v) for h, v in self._unless_state.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self.lifecycle.restore(state.get("lifecycle", []))
        if self.unless is not None:
            self._unless_state.update({str(h): list(v)[:4] for h, v in state.get("unless", {}).items()})
        if state.get("version") != _SNAPSHOT_VERSION or state.get("shape") != self._shape():
            return  # the correlation changed (reload): its windows and memory no longer apply
        c = self.correlation
        self._groups.clear()
        self._seen_total = 0
        for item in state.get("groups", []):
            key = tuple(item["key"])
            if isinstance(c, CountSpec):
                g = _CountGroup(self._cap)
                cutoff = item["newest"] - c.window_ns  # the window may have shrunk since
                g.times.extend(sorted(t for t in item["times"] if t > cutoff))
                g.seen = dict(item["seen"])
                g.oldest = min(g.seen.values(), default=0)
                g.newest, g.touched = item["newest"], item["touched"]
            elif isinstance(c, SequenceSpec):
                g = _SeqGroup(self._step_caps)
                for dq, entries in zip(g.steps, item["steps"], strict=True):
                    dq.extend(sorted((t, s) for t, s in entries))
                g.newest, g.seq, g.touched = item["newest"], item["seq"], item["touched"]
            elif isinstance(c, FirstSeenSpec):
                g = _SeenGroup(item["since"])
                g.values = dict(item["values"][-MAX_VALUES:])
                self._seen_total += len(g.values)
            else:
                continue
            self._groups[key] = g
        if isinstance(c, FirstSeenSpec):
            self._trim_first_seen()

    def _shape(self) -> list[Any]:
        """What the saved windows depend on: restoring into a different correlation is refused."""
        c = self.correlation
        if isinstance(c, CountSpec):
            return ["count", list(c.by), c.distinct]
        if isinstance(c, SequenceSpec):
            return ["sequence", list(c.by), len(c.steps)]
        if isinstance(c, FirstSeenSpec):
            return ["first_seen", list(c.by), c.value]
        return ["plain"]

    # --- the correlations -------------------------------------------------------------------
    def _group(self, key: tuple[Any, ...], make: Any, arg: Any) -> Any:
        groups = self._groups
        g = groups.pop(key, None)
        if g is None:
            g = make(arg)
            if len(groups) >= MAX_GROUPS:
                self._evict(next(iter(groups)))
        groups[key] = g  # (re)inserted last: the dict is in recency order
        return g

    def _evict(self, key: tuple[Any, ...]) -> None:
        g = self._groups.pop(key)
        if isinstance(g, _SeenGroup):
            self._seen_total -= len(g.values)

    def _fire(self, host: HostView, event: Event, key: tuple[Any, ...], now_ns: int, count: int,
              first_ns: int, last_ns: int, labels: dict[str, str] | None = None,
              extra: Mapping[str, Any] | None = None) -> list[Transition]:
        if labels is None:
            labels = self._labels(key)
        values: dict[str, Any] = {"count": count} if self.correlation is None else {}
        values.update(event.fields)
        values.update(kind=event.kind, host=host.host_id, event_severity=event.severity, source=event.source,
                      raw=event.raw[:1000], time=_iso(event.time_ns), first_time=_iso(first_ns),
                      last_time=_iso(last_ns), span=(last_ns - first_ns) / _NS)
        if self.correlation is not None:
            values["count"] = count
        if extra:
            values.update(extra)
        return self.lifecycle.pulse(labels, now_ns, values, float(count))

    def _labels(self, key: tuple[Any, ...], names: Iterable[str] | None = None) -> dict[str, str]:
        names = self._by if names is None else names
        return self.common.alert_labels(key[0], dict(zip(names, key[1:], strict=True)))

    def _on_plain(self, host: HostView, event: Event, key: tuple[Any, ...], now_ns: int) -> list[Transition]:
        t = event.time_ns
        return self._fire(host, event, key, now_ns, 1, t, t)

    def _on_count(self, host: HostView, event: Event, key: tuple[Any, ...], now_ns: int) -> list[Transition]:
        c: CountSpec = self.correlation  # type: ignore[assignment]
        t = event.time_ns
        window = c.window_ns
        if c.distinct is not None:
            value = event.fields.get(c.distinct)
            if value is None:
                return []
            g = self._group(key, _CountGroup, self._cap)
            g.touched = now_ns
            if not g.seen:
                g.newest = g.oldest = t
            elif t > g.newest:
                g.newest = t
            elif t <= g.newest - window:
                return []  # older than the window of the newest event
            seen = g.seen
            prev = seen.pop(value, None)
            seen[value] = t if prev is None or t > prev else prev
            if t < g.oldest:
                g.oldest = t
            cutoff = g.newest - window
            if g.oldest <= cutoff:
                seen = g.seen = {v: x for v, x in seen.items() if x > cutoff}
                g.oldest = min(seen.values())
            while len(seen) > self._cap:
                del seen[next(iter(seen))]
            count = len(seen)
            if count < c.threshold:
                return []
            first = g.oldest
            last = g.newest
        else:
            g = self._group(key, _CountGroup, self._cap)
            g.touched = now_ns
            times = g.times
            n = 1
            if c.weight is not None:
                # rsyslog's "message repeated 5 times: [...]" is one event for 5 occurrences.
                w = event.fields.get(c.weight)
                if isinstance(w, int | float) and not isinstance(w, bool) and w > 1:
                    n = min(int(w), self._cap)
            if not times or t >= times[-1]:
                times.extend([t] * n)
                cutoff = t - window
                while times[0] <= cutoff:
                    times.popleft()
            elif t <= times[-1] - window:
                return []  # older than the window of the newest event
            else:
                for _ in range(n):
                    _insert_sorted(times, t)
            count = len(times)
            if count < c.threshold:
                return []
            first, last = times[0], times[-1]
        if g.labels is None:
            g.labels = self._labels(key)
        return self._fire(host, event, key, now_ns, count, first, last, g.labels)

    def _on_sequence(self, host: HostView, event: Event, key: tuple[Any, ...],
                     now_ns: int) -> list[Transition]:
        c: SequenceSpec = self.correlation  # type: ignore[assignment]
        matched = [i for i, step in enumerate(c.steps) if step.match(event)]
        if not matched:
            return []
        t = event.time_ns
        g = self._group(key, _SeqGroup, self._step_caps)
        g.touched = now_ns
        within = c.within_ns
        if g.seq == 0 or t > g.newest:
            g.newest = t
            cutoff = t - within
            for dq in g.steps:
                while dq and dq[0][0] <= cutoff:
                    dq.popleft()
        elif t <= g.newest - within:
            return []
        g.seq += 1
        item = (t, g.seq)
        for i in matched:
            _insert_sorted(g.steps[i], item)
        last = len(c.steps) - 1
        if matched[-1] == last:
            anchors: list[tuple[int, int]] = [item]
        else:  # a late event may complete a sequence whose last step already arrived
            finals = g.steps[last]
            if not finals or finals[-1] < item:
                return []
            anchors = [a for a in finals if a > item]
        for anchor in anchors:
            start = self._chain(g, anchor)
            # Pruning at `newest - within` already implies this; it guards restored state.
            if start is not None and anchor[0] - start[0] < within:
                for dq in g.steps:  # consumed: each sequence fires once
                    while dq and dq[0] <= anchor:
                        dq.popleft()
                if g.labels is None:
                    g.labels = self._labels(key)
                total = sum(s.count for s in c.steps)
                return self._fire(host, event, key, now_ns, total, start[0], anchor[0], g.labels)
        return []

    def _chain(self, g: _SeqGroup, anchor: tuple[int, int]) -> tuple[int, int] | None:
        """The latest possible first event of a chain of steps ending at `anchor`, or None.

        Walking back from the last step, each step takes its latest events before the
        earliest one taken by the next step: that maximises the start, so if this chain
        does not fit in `within`, none does."""
        c: SequenceSpec = self.correlation  # type: ignore[assignment]
        bound = (anchor[0], anchor[1] + 1)  # exclusive: the anchor itself is usable
        for step, dq in zip(reversed(c.steps), reversed(g.steps), strict=True):
            j = len(dq) - 1
            while j >= 0 and dq[j] >= bound:
                j -= 1
            if j + 1 < step.count:
                return None
            bound = dq[j - step.count + 1]
        return bound

    def _on_first_seen(self, host: HostView, event: Event, key: tuple[Any, ...],
                       now_ns: int) -> list[Transition]:
        c: FirstSeenSpec = self.correlation  # type: ignore[assignment]
        value = event.fields.get(c.value)
        if value is None:
            return []
        t = event.time_ns
        g = self._group(key, _SeenGroup, t)
        if t < g.since:
            g.since = t  # a late event: learning started earlier
        values = g.values
        prev = values.pop(value, None)
        values[value] = t if prev is None or t > prev else prev
        if prev is None:
            self._seen_total += 1
            if len(values) > MAX_VALUES:
                del values[next(iter(values))]
                self._seen_total -= 1
            self._trim_first_seen(keep=key)
        learned = t - g.since >= c.baseline_ns
        if not learned or (prev is not None and t - prev < c.baseline_ns):
            return []
        group = dict(zip(c.by, key[1:], strict=True))
        group[c.value] = value  # each new value is its own alert, so none is swallowed by another
        labels = self.common.alert_labels(host.host_id, group)
        extra = {"previous_time": _iso(prev) if prev is not None else "never"}
        return self._fire(host, event, key, now_ns, 1, t, t, labels, extra)

    def _trim_first_seen(self, keep: tuple[Any, ...] | None = None) -> None:
        groups = self._groups
        while self._seen_total > MAX_FIRST_SEEN_TOTAL and groups:
            oldest = next(iter(groups))
            if oldest == keep:
                break
            self._evict(oldest)


# --- parsing --------------------------------------------------------------------------------


def _by(spec: Spec, key: str) -> tuple[str, ...]:
    names = spec.str_list(key, [])
    for n in names:
        if not _LABEL.match(n):
            raise spec.error(f"{spec.what}: {key}: {n!r} is not a valid label name", key)
        if n in _RESERVED:
            raise spec.error(f"{spec.what}: {key}: {n!r} is a label Warden sets; it cannot group alerts", key)
    if len(set(names)) != len(names):
        raise spec.error(f"{spec.what}: {key} lists a field twice", key)
    return tuple(names)


def _positive_ns(spec: Spec, key: str) -> int:
    seconds = spec.duration(key)
    if seconds <= 0:
        raise spec.error(f"{spec.what}: {key} must be longer than 0", key)
    return int(seconds * _NS)


def _parse_count(spec: Spec) -> CountSpec:
    threshold = spec.int("threshold", minimum=1)
    window = _positive_ns(spec, "window")
    by = _by(spec, "by")
    distinct = spec.str("distinct", None)
    weight = spec.str("weight", None)
    if weight is not None and distinct is not None:
        raise spec.error(f"{spec.what}: weight counts occurrences; it cannot be used with distinct", "weight")
    spec.done()
    return CountSpec(threshold, window, by, distinct, weight)


def _parse_sequence(spec: Spec) -> SequenceSpec:
    within = _positive_ns(spec, "within")
    by = _by(spec, "by")
    items = spec.items("steps")
    if len(items) < 2:
        raise spec.error(f"{spec.what}: steps needs at least two steps (one step is a count)", "steps")
    steps = []
    for step in items:
        match = parse_event_match(step.sub("match"))
        count = step.int("count", 1, minimum=1)
        step.done()
        steps.append(SequenceStep(match, count))
    spec.done()
    return SequenceSpec(within, by, tuple(steps))


def _parse_first_seen(spec: Spec) -> FirstSeenSpec:
    by = _by(spec, "by")
    value = spec.str("value")
    if value in by:
        raise spec.error(f"{spec.what}: value {value!r} is also in by", "value")
    if not _LABEL.match(value) or value in _RESERVED:
        raise spec.error(f"{spec.what}: value {value!r} cannot be a label name", "value")
    baseline = _positive_ns(spec, "baseline")
    spec.done()
    return FirstSeenSpec(by, value, baseline)


def _parse_when(spec: Spec, ctx: ParseContext) -> tuple[Calendar, bool]:
    given = [k for k in ("inside", "outside") if spec.has(k)]
    if len(given) != 1:
        raise spec.error(f"{spec.what} takes exactly one of inside or outside (a calendar name)")
    key = given[0]
    name = spec.str(key)
    spec.done()
    calendars = {**DEFAULT_CALENDARS, **ctx.calendars}
    if name not in calendars:
        raise spec.error(f"{spec.what}: unknown calendar {name!r} "
                         f"(known: {', '.join(sorted(calendars))})", key)
    return calendars[name], key == "inside"


_CORRELATIONS = ("count", "sequence", "first_seen")


def parse_event_rule(spec: Spec, common: RuleCommon, ctx: ParseContext) -> EventRule:
    """The rest of an `event` rule after `parse_common`; refuses unknown fields."""
    present = [k for k in _CORRELATIONS if spec.has(k)]
    if len(present) > 1:
        raise spec.error(f"{spec.what}: use at most one correlation, not both {present[0]} and {present[1]}",
                         present[1])
    kind = present[0] if present else None
    # A sequence's steps say what they match; a top-level `match` then only narrows them.
    match_spec = spec.sub("match", None) if kind == "sequence" else spec.sub("match")
    match = MATCH_ALL if match_spec is None else parse_event_match(match_spec)
    when_spec = spec.sub("when", None)
    when = None if when_spec is None else _parse_when(when_spec, ctx)
    correlation: CountSpec | SequenceSpec | FirstSeenSpec | None = None
    if kind == "count":
        correlation = _parse_count(spec.sub("count"))
    elif kind == "sequence":
        correlation = _parse_sequence(spec.sub("sequence"))
    elif kind == "first_seen":
        correlation = _parse_first_seen(spec.sub("first_seen"))
    if kind is not None and spec.has("group_by"):
        raise spec.error(f"{spec.what}: group_by is for rules without a correlation; "
                         f"use {kind}.by", "group_by")
    group_by = _by(spec, "group_by")
    keep = spec.duration("keep_firing_for", DEFAULT_KEEP_FIRING_FOR)
    unless = None
    unless_spec = spec.sub("unless_after", None)
    if unless_spec is not None:
        unless_match = parse_event_match(unless_spec.sub("match"))
        within = unless_spec.duration("within", None)
        if within is not None and within <= 0:
            raise unless_spec.error(f"{unless_spec.what}: within must be positive", "within")
        same = unless_spec.duration("same_within", 0.0)
        unless_spec.done()
        unless = (unless_match, None if within is None else int(within * _NS))
    else:
        same = 0.0
    spec.done()
    return EventRule(common, match, when, correlation, group_by, int(keep * _NS), unless, int(same * _NS))


__all__ = ["MAX_GROUPS", "MAX_VALUES", "EventMatch", "EventRule", "parse_event_match", "parse_event_rule"]
