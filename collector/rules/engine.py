"""The rules engine: routes each stored record to the rules that want it and collects the
alert transitions they cause.

Routing is by index (event kind → rules, metric name → rules, inventory section → state
rules), so an event costs only the rules that name its kind. A rule that raises is
counted and skipped; the others go on (errors are data, see `errors`). The engine keeps a
`HostView` per host (labels, last seen, latest register) fed by the same records.

No clock inside: `process` and `tick` take the time, so the `rules test` runner replays
hours of input deterministically and the collector passes wall time.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from warden.collector.records import Event, InventorySection, MetricSample, Record
from warden.collector.rules.loader import RuleSet
from warden.collector.rules.model import HostView, Rule, Transition

log = logging.getLogger(__name__)


class RuleEngine:
    def __init__(self, ruleset: RuleSet | None = None, heartbeat_seconds: float = 30.0) -> None:
        self.hosts: dict[str, HostView] = {}
        self.heartbeat_seconds = heartbeat_seconds
        self.errors: Counter[str] = Counter()  # rule id -> exceptions raised
        self.last_error: dict[str, str] = {}
        self.evaluated = 0  # records routed
        self._set(ruleset or RuleSet())

    # --- rules ---------------------------------------------------------------------------------
    def _set(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._by_kind: dict[str, list[Rule]] = defaultdict(list)
        self._any_kind: list[Rule] = []
        self._by_metric: dict[str, list[Rule]] = defaultdict(list)
        self._by_section: dict[str, list[Rule]] = defaultdict(list)
        for r in ruleset.rules:
            if r.event_kinds is None:
                self._any_kind.append(r)
            else:
                for k in r.event_kinds:
                    self._by_kind[k].append(r)
            for m in r.metric_names:
                self._by_metric[m].append(r)
            for s in r.sections:
                self._by_section[s].append(r)
        self._route_cache: dict[str, list[Rule]] = {}

    def replace_rules(self, ruleset: RuleSet, now_ns: int) -> list[Transition]:
        """Swap in a new rule set. A rule kept under the same id keeps its state (pending
        timers, windows, baselines); alerts of removed rules resolve."""
        old = self.ruleset.by_id()
        new = ruleset.by_id()
        out: list[Transition] = []
        for rid, rule in new.items():
            prev = old.get(rid)
            if prev is None:
                continue
            try:
                rule.restore(prev.snapshot())
            except Exception as exc:  # a changed kind or shape: start that rule afresh
                log.info("rule %s starts with fresh state after reload: %s", rid, exc)
        for rid, rule in old.items():
            if rid not in new:
                out += _resolve_all(rule, now_ns)
        self._set(ruleset)
        return out

    # --- hosts ---------------------------------------------------------------------------------
    def upsert_host(self, host_id: str, labels: Mapping[str, str] | None = None,
                    last_seen_ns: int | None = None,
                    inventory: Mapping[str, tuple[int, dict[str, Any]]] | None = None) -> HostView:
        h = self.hosts.get(host_id)
        if h is None:
            h = HostView(host_id, {"host": host_id}, heartbeat_seconds=self.heartbeat_seconds)
            self.hosts[host_id] = h
        if labels is not None:
            h.labels = {**labels, "host": host_id}
        if last_seen_ns is not None and last_seen_ns > h.last_seen_ns:
            h.last_seen_ns = last_seen_ns
        if inventory:
            h.inventory.update(inventory)
        h.timezone = h.labels.get("tz") or str(h.inventory.get("os", (0, {}))[1].get("timezone") or "")
        return h

    # --- input ---------------------------------------------------------------------------------
    def process(self, host_id: str, records: Iterable[Record], now_ns: int) -> list[Transition]:
        """Route newly stored records of one host; return the transitions they caused."""
        host = self.hosts.get(host_id) or self.upsert_host(host_id)
        if now_ns > host.last_seen_ns:
            host.last_seen_ns = now_ns
        out: list[Transition] = []
        n = 0
        for rec in records:
            n += 1
            t = type(rec)
            if t is Event:
                rules = self._route_cache.get(rec.kind)  # type: ignore[union-attr]
                if rules is None:
                    rules = self._by_kind.get(rec.kind, []) + self._any_kind  # type: ignore[union-attr]
                    if len(self._route_cache) < 10_000:
                        self._route_cache[rec.kind] = rules  # type: ignore[union-attr]
                for r in rules:
                    try:
                        got = r.on_event(host, rec, now_ns)  # type: ignore[arg-type]
                    except Exception as exc:
                        self._failed(r, exc)
                        continue
                    if got:
                        out += got
            elif t is MetricSample:
                for r in self._by_metric.get(rec.name, ()):  # type: ignore[union-attr]
                    try:
                        got = r.on_metric(host, rec, now_ns)  # type: ignore[arg-type]
                    except Exception as exc:
                        self._failed(r, exc)
                        continue
                    if got:
                        out += got
            elif t is InventorySection:
                host.inventory[rec.section] = (rec.time_ns, rec.data)  # type: ignore[union-attr]
                if rec.section == "os":  # type: ignore[union-attr]
                    self.upsert_host(host_id)  # the time zone may have changed
                for r in self._by_section.get(rec.section, ()):  # type: ignore[union-attr]
                    out += self._evaluate_host(r, host, now_ns)
        self.evaluated += n
        return out

    def tick(self, now_ns: int) -> list[Transition]:
        """Advance time: state rules evaluate every host, windows and holds expire."""
        out: list[Transition] = []
        for r in self.ruleset.rules:
            try:
                out += r.tick(self.hosts, now_ns)
            except Exception as exc:
                self._failed(r, exc)
        return out

    def _evaluate_host(self, rule: Rule, host: HostView, now_ns: int) -> list[Transition]:
        fn = getattr(rule, "evaluate_host", None)
        if fn is None:
            return []
        try:
            return fn(host, now_ns)
        except Exception as exc:
            self._failed(rule, exc)
            return []

    def _failed(self, rule: Rule, exc: Exception) -> None:
        rid = rule.common.id
        self.errors[rid] += 1
        text = f"{type(exc).__name__}: {exc}"
        if self.last_error.get(rid) != text:
            log.error("rule %s failed: %s", rid, text)
            self.last_error[rid] = text

    def adopt_open_alerts(self, alerts: Iterable[Mapping[str, Any]], now_ns: int) -> list[Transition]:
        """Reconcile with the alert store after a restart: open alerts whose rule is gone are
        resolved; open alerts a rule no longer holds (its saved state was older than the
        crash) are handed back to that rule, which resolves them when their condition clears."""
        by_id = self.ruleset.by_id()
        held: set[str] = set()
        for r in self.ruleset.rules:
            lc = getattr(r, "lifecycle", None)
            if lc is not None:
                held.update(fp for fp, _ in lc.active())
        out: list[Transition] = []
        for a in alerts:
            fp, labels = a["fingerprint"], dict(a["labels"])
            if fp in held:
                continue
            rule = by_id.get(a["rule"])
            if rule is None or getattr(rule, "lifecycle", None) is None:
                out.append(Transition(a["rule"], fp, labels, dict(a["annotations"]), "resolved", now_ns,
                                      a.get("starts_ns") or now_ns, a.get("value"), a["state"] == "firing"))
                continue
            # Metric series keep sending: hold until a sample says otherwise (or the series goes
            # stale); state checks re-evaluate at once; events resolve after keep_firing_for.
            rule.lifecycle.adopt(fp, labels, "firing" if a["state"] == "firing" else "pending",
                                 a.get("starts_ns") or now_ns, now_ns, holding=rule.common.kind == "metric")
            adopt = getattr(rule, "adopt", None)
            if adopt is not None:
                adopt(labels.get("host", ""), fp, labels)
        return out

    # --- persistence ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        rules = {}
        for r in self.ruleset.rules:
            try:
                rules[r.common.id] = r.snapshot()
            except Exception as exc:
                self._failed(r, exc)
        return {"version": 1, "rules": rules}

    def restore(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != 1:
            return
        saved = state.get("rules", {})
        for r in self.ruleset.rules:
            if r.common.id in saved:
                try:
                    r.restore(saved[r.common.id])
                except Exception as exc:
                    log.warning("rule %s: saved state not restored (%s); starting afresh", r.common.id, exc)


def _resolve_all(rule: Rule, now_ns: int) -> list[Transition]:
    """Resolve every alert a removed rule still holds."""
    lifecycle = getattr(rule, "lifecycle", None)
    if lifecycle is None:
        return []
    out = []
    for fp, tr in lifecycle.active():
        out.append(Transition(rule.common.id, fp, tr.labels, rule.common.annotations(
            {**tr.values, **tr.labels, "value": tr.value}), "resolved", now_ns, tr.since_ns, tr.value,
            tr.state == "firing"))
    return out


def route_summary(engine: RuleEngine) -> dict[str, int]:
    """How many rules each input reaches (for `rules check` output)."""
    return {"event_kinds": len(engine._by_kind), "any_kind": len(engine._any_kind),
            "metrics": len(engine._by_metric), "sections": len(engine._by_section)}


__all__ = ["RuleEngine", "Sequence"]
