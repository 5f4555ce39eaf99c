"""`kind: state` rules: named checks over each host's latest register and liveness.

```yaml
- id: backup_stale
  kind: state
  severity: critical
  summary: "{{ host }}: backup {{ set }} is {{ age | duration }} old"
  check: backup_stale
  params: {max_age: 26h}
  for: 0
  keep_firing_for: 0
```

Checks are evaluated in `tick()` for every host in scope (and by `evaluate_host` when the
engine sees a section change). A check yields `Item`s: the extra labels that tell its alerts
apart (`set`, `user`, `device`, or none), whether the condition holds, template values and a
value. Semantics shared by all checks:

- A check whose section the host has not sent yields nothing: its alerts resolve.
- Whatever a check no longer yields (a backup set removed, a user deleted) resolves.
- `holds=None` means "unknown": the alert keeps its state. Used where the agent says it could
  not look: a backup set that could not be read (`error` set and no `verification`, as the
  agent leaves it), and a negative updates finding while `updates.error` is set.
- `security_updates_pending` and `reboot_required` remember since when something is pending in
  a per-host memory that `snapshot()`/`restore()` carry across restarts; the clock is the
  engine's `now_ns` at the tick that first saw it (not the agent's clock).
- `tick(hosts)` expects every known host: alerts and memories of hosts no longer in `hosts`
  (or no longer in scope) are resolved and forgotten.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from warden.collector.records import Event, MetricSample
from warden.collector.rules.model import (
    HostView,
    Lifecycle,
    ParseContext,
    RuleCommon,
    Transition,
    fingerprint,
)
from warden.collector.rules.spec import Spec, parse_duration

_NS = 1_000_000_000
_DAY = 86400.0


class Item(NamedTuple):
    """One verdict of a check: `holds` True, False, or None (unknown: keep the alert's state)."""

    labels: dict[str, str]
    holds: bool | None
    values: dict[str, Any]
    value: float | None = None


Memory = dict[str, int]  # per host and rule: what a check remembers (key -> time in ns)
Params = Mapping[str, float]
CheckFn = Callable[[HostView, int, Params, Memory], Iterable[Item]]


@dataclass(frozen=True, slots=True)
class Param:
    kind: str  # "duration" | "number"
    default: float
    minimum: float = 0.0
    exclusive: bool = True  # the minimum itself is refused
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class Check:
    fn: CheckFn
    sections: frozenset[str]
    params: Mapping[str, Param]


def _d(text: str) -> float:
    return parse_duration(text)


def _section(host: HostView, name: str) -> tuple[int, dict[str, Any]] | None:
    return host.inventory.get(name)


def _age(now_ns: int, unix: float) -> float:
    return now_ns / _NS - unix


# --- backups -----------------------------------------------------------------------------------


def _sets(host: HostView) -> Iterator[tuple[dict[str, str], dict[str, Any], bool]]:
    """(labels, set, unknown) per backup set; unknown when the agent could not check it."""
    sec = _section(host, "backups")
    if sec is None:
        return
    for s in sec[1].get("sets") or ():
        # The agent leaves `verification` empty only when it stopped at a check error.
        yield {"set": str(s.get("name", ""))}, s, bool(s.get("error")) and not s.get("verification")


def _backup_stale(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    for labels, s, unknown in _sets(host):
        t = s.get("newest_time_unix") or 0
        count = s.get("count") or 0
        none = count == 0 or t <= 0
        age = None if none else _age(now_ns, t)
        values = {"newest": s.get("newest", ""), "count": count, "age": age, "max_age": p["max_age"],
                  "error": s.get("error", ""), "reason": "no backup" if none else "too old"}
        holds = None if unknown else (age is None or age > p["max_age"])
        if holds is not False:
            yield Item(labels, holds, values, age)


def _backup_shrunk(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    for labels, s, unknown in _sets(host):
        size = s.get("newest_size_bytes") or 0
        median = s.get("median_previous_size_bytes") or 0
        ratio = size / median if median > 0 else None
        holds = None if unknown else (ratio is not None and ratio < p["min_ratio"])
        if holds is not False:
            yield Item(labels, holds, {"size": size, "median": median, "ratio": ratio,
                                       "min_ratio": p["min_ratio"], "newest": s.get("newest", "")}, ratio)


def _backup_offsite_missing(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    for labels, s, unknown in _sets(host):
        present, matches = bool(s.get("offsite_present")), bool(s.get("offsite_matches"))
        holds = None if unknown else bool(s.get("offsite_configured")) and not (present and matches)
        if holds is not False:
            yield Item(labels, holds, {"present": present, "matches": matches, "newest": s.get("newest", "")})


_VERIFY_FAILED = frozenset({"mismatch", "missing", "error"})


def _backup_verification_failed(host: HostView, now_ns: int, p: Mapping[str, float],
                                mem: Memory) -> Iterator[Item]:
    for labels, s, unknown in _sets(host):
        result = s.get("verification", "")
        holds = None if unknown else result in _VERIFY_FAILED
        if holds is not False:
            yield Item(labels, holds, {"result": result, "newest": s.get("newest", "")})


# --- updates -------------------------------------------------------------------------------------


def _security_updates_pending(host: HostView, now_ns: int, p: Mapping[str, float],
                              mem: Memory) -> Iterator[Item]:
    sec = _section(host, "updates")
    if sec is None:
        return
    data = sec[1]
    if data.get("error"):  # the pending list could not be computed: keep clocks and alert as they are
        yield Item({}, None, {})
        return
    # Keyed by (package, new version): a newer version is a new update with its own clock, and
    # one that disappears (installed) and comes back later starts afresh.
    pending = {f"{u.get('name', '')} {u.get('new_version', '')}": str(u.get("name", ""))
               for u in data.get("pending") or () if u.get("security")}
    for key in [k for k in mem if k not in pending]:
        del mem[key]
    for key in pending:
        mem.setdefault(key, now_ns)
    if not pending:
        yield Item({}, False, {"count": 0})
        return
    oldest = min(pending, key=lambda k: (mem[k], k))
    age = (now_ns - mem[oldest]) / _NS
    values = {"count": len(pending), "oldest": pending[oldest], "oldest_version": oldest.split(" ", 1)[1],
              "age": age, "min_age": p["min_age"]}
    yield Item({}, age >= p["min_age"], values, age)


def _reboot_required(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    sec = _section(host, "updates")
    if sec is None:
        return
    data = sec[1]
    if not data.get("reboot_required"):
        if data.get("error"):  # "false" from an agent that could not look: unknown
            yield Item({}, None, {})
            return
        mem.pop("since", None)
        yield Item({}, False, {})
        return
    since = mem.setdefault("since", now_ns)
    age = (now_ns - since) / _NS
    values = {"age": age, "min_age": p["min_age"],
              "packages": ", ".join(data.get("reboot_required_packages") or ()),
              "running_kernel": data.get("running_kernel", ""),
              "newest_kernel": data.get("newest_kernel", "")}
    yield Item({}, age >= p["min_age"], values, age)


def _no_recent_update(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    sec = _section(host, "updates")
    if sec is None:
        return
    last = sec[1].get("last_update_unix") or 0
    if last <= 0:  # unknown
        return
    age = _age(now_ns, last)
    yield Item({}, age > p["max_age"], {"age": age, "last_update": last, "max_age": p["max_age"]}, age)


# --- antivirus, firewall, time -------------------------------------------------------------------


def _antivirus_stale(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    sec = _section(host, "antivirus")
    if sec is None:
        return
    time_ns, data = sec
    if not data.get("installed"):
        return
    sig_time = data.get("signatures_time_unix") or 0
    hours = data.get("signature_age_hours") or 0.0
    if sig_time > 0:
        age: float | None = _age(now_ns, sig_time)
    elif hours > 0:  # an age as of the snapshot: it has grown since
        age = hours * 3600.0 + max(0, now_ns - time_ns) / _NS
    else:
        age = None  # installed without any signature database: as bad as stale
    holds = age is None or age > p["max_age"]
    yield Item({}, holds, {"product": data.get("product", ""), "age": age, "max_age": p["max_age"]}, age)


def _antivirus_missing(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    sec = _section(host, "antivirus")
    if sec is not None:
        yield Item({}, not sec[1].get("installed"), {"product": sec[1].get("product", "")})


def _firewall_off(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    sec = _section(host, "firewall")
    if sec is None:
        return
    backends = sec[1].get("backends") or ()
    values = {"backends": ", ".join(str(b.get("name", "")) for b in backends if b.get("present")),
              "errors": "; ".join(f"{b.get('name', '')}: {b['error']}" for b in backends if b.get("error"))}
    yield Item({}, not sec[1].get("active"), values)


def _timesync_lost(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    sec = _section(host, "time_sync")
    if sec is not None:
        data = sec[1]
        yield Item({}, not data.get("synchronized"),
                   {"service": data.get("service", ""), "ntp_enabled": bool(data.get("ntp_enabled"))})


# --- accounts, disks, liveness -------------------------------------------------------------------


def _users(host: HostView) -> Iterable[dict[str, Any]]:
    sec = _section(host, "accounts")
    return sec[1].get("users") or () if sec is not None else ()


def _password_age(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    for u in _users(host):
        days = u.get("password_age_days", -1)
        if (u.get("login_shell") and not u.get("locked") and days is not None and days >= 0
                and days * _DAY >= p["max_age"]):
            yield Item({"user": str(u.get("name", ""))}, True,
                       {"age": days * _DAY, "days": days, "admin": bool(u.get("admin")),
                        "max_age": p["max_age"]}, float(days))


def _empty_password(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    for u in _users(host):
        if u.get("empty_password"):
            yield Item({"user": str(u.get("name", ""))}, True,
                       {"admin": bool(u.get("admin")), "locked": bool(u.get("locked"))})


def _smart_failing(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    sec = _section(host, "disk_health")
    if sec is None:
        return
    for d in sec[1].get("devices") or ():
        if not d.get("smart_passed"):
            yield Item({"device": str(d.get("device", ""))}, True,
                       {"model": d.get("model", ""), "serial": d.get("serial", "")})


def _host_silent(host: HostView, now_ns: int, p: Params, mem: Memory) -> Iterator[Item]:
    if host.last_seen_ns <= 0:  # never seen: nothing to miss yet
        return
    silent = (now_ns - host.last_seen_ns) / _NS
    limit = p["heartbeats"] * host.heartbeat_seconds
    yield Item({}, silent > limit, {"age": silent, "limit": limit}, silent)


# --- the registry -------------------------------------------------------------------------------

_BACKUPS = frozenset({"backups"})
_UPDATES = frozenset({"updates"})
_AV = frozenset({"antivirus"})
_ACCOUNTS = frozenset({"accounts"})

CHECKS: dict[str, Check] = {
    "backup_stale": Check(_backup_stale, _BACKUPS, {"max_age": Param("duration", _d("26h"))}),
    "backup_shrunk": Check(_backup_shrunk, _BACKUPS,
                           {"min_ratio": Param("number", 0.5, exclusive=True, maximum=1.0)}),
    "backup_offsite_missing": Check(_backup_offsite_missing, _BACKUPS, {}),
    "backup_verification_failed": Check(_backup_verification_failed, _BACKUPS, {}),
    "security_updates_pending": Check(_security_updates_pending, _UPDATES,
                                      {"min_age": Param("duration", _d("7d"), exclusive=False)}),
    "reboot_required": Check(_reboot_required, _UPDATES,
                             {"min_age": Param("duration", _d("3d"), exclusive=False)}),
    "no_recent_update": Check(_no_recent_update, _UPDATES, {"max_age": Param("duration", _d("30d"))}),
    "antivirus_stale": Check(_antivirus_stale, _AV, {"max_age": Param("duration", _d("48h"))}),
    "antivirus_missing": Check(_antivirus_missing, _AV, {}),
    "firewall_off": Check(_firewall_off, frozenset({"firewall"}), {}),
    "password_age": Check(_password_age, _ACCOUNTS, {"max_age": Param("duration", _d("365d"))}),
    "empty_password": Check(_empty_password, _ACCOUNTS, {}),
    "timesync_lost": Check(_timesync_lost, frozenset({"time_sync"}), {}),
    "smart_failing": Check(_smart_failing, frozenset({"disk_health"}), {}),
    "host_silent": Check(_host_silent, frozenset(), {"heartbeats": Param("number", 3.0)}),
}


# --- the rule --------------------------------------------------------------------------------------


@dataclass
class StateRule:
    common: RuleCommon
    check_name: str
    check: Check
    params: dict[str, float]
    lifecycle: Lifecycle
    event_kinds: frozenset[str] | None = frozenset()
    metric_names: frozenset[str] = frozenset()
    sections: frozenset[str] = frozenset()
    _memory: dict[str, Memory] = field(default_factory=dict)  # host -> the check's memory
    _tracked: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # host -> fp -> labels

    def __post_init__(self) -> None:
        self.sections = self.check.sections

    def on_event(self, host: HostView, event: Event, now_ns: int) -> list[Transition]:
        return []

    def on_metric(self, host: HostView, sample: MetricSample, now_ns: int) -> list[Transition]:
        return []

    def evaluate_host(self, host: HostView, now_ns: int) -> list[Transition]:
        """Run the check on one host and observe every verdict; resolve what it no longer yields."""
        host_id = host.host_id
        if not self.common.in_scope(host.labels):
            return self._forget(host_id, now_ns)
        mem = self._memory.get(host_id, {})
        items = list(self.check.fn(host, now_ns, self.params, mem))
        if mem:
            self._memory[host_id] = mem
        else:
            self._memory.pop(host_id, None)
        out: list[Transition] = []
        tracked = self._tracked.get(host_id, {})
        seen: set[str] = set()
        for it in items:
            labels = self.common.alert_labels(host_id, it.labels)
            fp = fingerprint(labels)
            seen.add(fp)
            if it.holds is None:
                continue
            values = {**it.values, **it.labels}
            out.extend(self.lifecycle.observe(labels, it.holds, now_ns, values, it.value, fp))
            if self.lifecycle.holding(fp):
                tracked[fp] = labels
        for fp, labels in list(tracked.items()):
            if fp not in seen:
                out.extend(self.lifecycle.observe(labels, False, now_ns, fp=fp))
            if not self.lifecycle.holding(fp):
                del tracked[fp]
        if tracked:
            self._tracked[host_id] = tracked
        else:
            self._tracked.pop(host_id, None)
        return out

    def adopt(self, host_id: str, fp: str, labels: dict[str, str]) -> None:
        """Track an adopted open alert, so the next evaluation resolves it if the check no
        longer reports it."""
        self._tracked.setdefault(host_id, {})[fp] = labels

    def _forget(self, host_id: str, now_ns: int) -> list[Transition]:
        self._memory.pop(host_id, None)
        out: list[Transition] = []
        for fp, labels in self._tracked.pop(host_id, {}).items():
            out.extend(self.lifecycle.observe(labels, False, now_ns, fp=fp))
            if self.lifecycle.holding(fp):  # keep_firing_for still running
                self._tracked.setdefault(host_id, {})[fp] = labels
        return out

    def tick(self, hosts: Mapping[str, HostView], now_ns: int) -> list[Transition]:
        out: list[Transition] = []
        for host in hosts.values():
            out.extend(self.evaluate_host(host, now_ns))
        for host_id in [h for h in {*self._tracked, *self._memory} if h not in hosts]:
            out.extend(self._forget(host_id, now_ns))
        out.extend(self.lifecycle.tick(now_ns))  # keep_firing_for running out on forgotten hosts
        return out

    # --- persistence --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"lifecycle": self.lifecycle.snapshot(),
                "memory": {h: dict(m) for h, m in self._memory.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self.lifecycle.restore(state.get("lifecycle", []))
        for fp, tr in self.lifecycle.active():
            self._tracked.setdefault(tr.labels.get("host", ""), {})[fp] = tr.labels
        for host_id, mem in (state.get("memory") or {}).items():
            if isinstance(mem, dict):
                self._memory[host_id] = {str(k): int(v) for k, v in mem.items()
                                         if isinstance(v, int) and not isinstance(v, bool)}


# --- parsing -----------------------------------------------------------------------------------------


def _parse_params(spec: Spec | None, name: str, check: Check, where: Spec) -> dict[str, float]:
    known = check.params
    listing = ", ".join(sorted(known)) if known else "none"
    if spec is None:
        return {k: p.default for k, p in known.items()}
    for key in spec.data:
        if key not in known:
            hint = difflib.get_close_matches(key, list(known), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise spec.error(f"{where.what}: check {name} has no param {key!r} (params: {listing}){extra}",
                             key)
    out: dict[str, float] = {}
    for key, p in known.items():
        value = spec.duration(key, p.default) if p.kind == "duration" else spec.number(key, p.default)
        low_ok = value > p.minimum if p.exclusive else value >= p.minimum
        if not low_ok or (p.maximum is not None and value > p.maximum):
            bound = f"more than {p.minimum:g}" if p.exclusive else f"at least {p.minimum:g}"
            if p.maximum is not None:
                bound += f" and at most {p.maximum:g}"
            raise spec.error(f"{spec.what}: {key} must be {bound}", key)
        out[key] = value
    spec.done()
    return out


def parse_state_rule(spec: Spec, common: RuleCommon, ctx: ParseContext) -> StateRule:
    """The state-specific fields (check, params, for, keep_firing_for) of a rule."""
    name = spec.str("check")
    check = CHECKS.get(name)
    if check is None:
        hint = difflib.get_close_matches(name, list(CHECKS), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise spec.error(f"{spec.what}: unknown check {name!r}{extra}; checks: {', '.join(sorted(CHECKS))}",
                         "check")
    params = _parse_params(spec.sub("params", None), name, check, spec)
    for_s = spec.duration("for", 0.0)
    keep_s = spec.duration("keep_firing_for", 0.0)
    spec.done()
    lifecycle = Lifecycle(common, int(for_s * _NS), int(keep_s * _NS))
    return StateRule(common, name, check, params, lifecycle)


__all__ = ["CHECKS", "Check", "Item", "Param", "StateRule", "parse_state_rule"]
