"""Grouping and delivery of alert notifications, after Alertmanager.

The alert manager tells the `Dispatcher` about *notifiable* changes (an alert fires, is
unsilenced or uninhibited, resolves) and about alerts that became muted (silenced or
inhibited). The dispatcher keeps, per receiver, groups of alerts with equal `group_by`
labels and decides when a group is due; nothing here reads a clock, times are passed in:

- a new group first notifies `group_wait` after its first alert (so alerts that fire
  together arrive in one message);
- later changes to a notified group go out at most every `group_interval`;
- a group without changes re-notifies its firing alerts every `repeat_interval`, leaving
  out acknowledged ones (and sending nothing if all are acknowledged);
- a resolved alert is notified only to receivers that were told it fired, even if it was
  muted meanwhile, so their incidents close; one that fired and resolved before its group
  was first sent is never mentioned.

Delivery runs on one worker thread per receiver with a bounded queue, so a slow or failing
receiver never blocks the manager or the other receivers. A failed send is retried with
exponential backoff, then dropped and counted (`stats()`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from warden.collector.rules.matchers import check_regex
from warden.collector.rules.model import SEVERITIES, SEVERITY_RANK

log = logging.getLogger(__name__)

NS = 1_000_000_000
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt for alerts still firing


# --- label matchers (silences, inhibition, routes) --------------------------------------------


def _compile_one(label: str, spec: Any, what: str) -> Callable[[str], bool]:
    if isinstance(spec, str):
        return lambda v: v == spec
    if isinstance(spec, Mapping) and len(spec) == 1:
        (op, arg), = spec.items()
        if op == "regex":
            if not isinstance(arg, str):
                raise ValueError(f"{what}: label {label!r}: regex must be a string")
            try:
                rx = check_regex(arg)
            except ValueError as exc:
                raise ValueError(f"{what}: label {label!r}: {exc}") from None
            return lambda v: rx.fullmatch(v) is not None
        if op == "not":
            inner = _compile_one(label, arg, what)
            return lambda v: not inner(v)
    raise ValueError(f"{what}: label {label!r}: a matcher is a string (equals), {{\"regex\": ...}} "
                     f"or {{\"not\": ...}}, not {spec!r}")


@dataclass(frozen=True)
class Matchers:
    """All of `label → test` must hold; a missing label is the empty string (as in
    Alertmanager), so `{"not": "x"}` matches alerts without the label."""

    spec: dict[str, Any]
    tests: tuple[tuple[str, Callable[[str], bool]], ...] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, spec: Any, what: str = "matchers", allow_empty: bool = True) -> Matchers:
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise ValueError(f"{what} must be a mapping of label → matcher, not {spec!r}")
        if not spec and not allow_empty:
            raise ValueError(f"{what} must not be empty: it would match every alert")
        tests = []
        for label, m in spec.items():
            if not isinstance(label, str) or not label:
                raise ValueError(f"{what}: label names must be non-empty strings, not {label!r}")
            tests.append((label, _compile_one(label, m, what)))
        return cls(dict(spec), tuple(tests))

    def __call__(self, labels: Mapping[str, str]) -> bool:
        return all(test(labels.get(label, "")) for label, test in self.tests)

    def __bool__(self) -> bool:
        return bool(self.tests)

    def matches_everything(self) -> bool:
        """True if every matcher accepts the empty string (e.g. only `{"regex": ".*"}`)."""
        return all(test("") for _, test in self.tests)


# --- notifications ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One message about one group to one receiver (Alertmanager's webhook shape on demand).

    `alerts` are the manager's alert payloads, each with `status` ("firing" | "resolved").
    """

    group_key: str
    status: str
    receiver: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    alerts: list[dict[str, Any]]
    repeat: bool = False  # a repeat_interval reminder, not a change

    @classmethod
    def build(cls, group_key: str, receiver: str, group_labels: dict[str, str],
              alerts: Sequence[dict[str, Any]], repeat: bool = False) -> Notification:
        items = [{**a, "status": a["state"]} for a in alerts]
        status = "firing" if any(a["status"] == "firing" for a in items) else "resolved"
        return cls(group_key, status, receiver, dict(group_labels), _common([a["labels"] for a in items]),
                   _common([a["annotations"] for a in items]), items, repeat)

    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["status"] == "firing"]

    def resolved(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["status"] == "resolved"]

    def webhook_payload(self) -> dict[str, Any]:
        """Alertmanager's webhook body (version 4), plus each alert's Warden id."""
        return {
            "version": "4", "groupKey": self.group_key, "truncatedAlerts": 0, "status": self.status,
            "receiver": self.receiver, "groupLabels": self.group_labels, "commonLabels": self.common_labels,
            "commonAnnotations": self.common_annotations, "externalURL": "",
            "alerts": [{
                "status": a["status"], "labels": a["labels"], "annotations": a["annotations"],
                # startsAt is when it fired (what Prometheus sends); pending time is not news.
                "startsAt": a.get("fired_at") or a.get("starts_at"),
                "endsAt": a.get("ends_at") or ZERO_TIME,
                "generatorURL": "", "fingerprint": a["fingerprint"], "id": a["id"],
            } for a in self.alerts],
        }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    out = dict(maps[0])
    for m in maps[1:]:
        out = {k: v for k, v in out.items() if m.get(k) == v}
    return out


@runtime_checkable
class Notifier(Protocol):
    """A destination. `send` blocks until delivered and raises on failure (it runs on the
    receiver's own worker thread and is retried by the dispatcher)."""

    name: str

    def send(self, notification: Notification) -> None: ...


@dataclass(frozen=True)
class Receiver:
    """A notifier with its route: only alerts at or above `min_severity` that `match`."""

    notifier: Notifier
    min_severity: str = "info"
    match: Matchers = field(default_factory=lambda: Matchers.parse({}))

    def __post_init__(self) -> None:
        if self.min_severity not in SEVERITY_RANK:
            raise ValueError(f"min_severity must be one of {', '.join(SEVERITIES)}, "
                             f"not {self.min_severity!r}")

    @property
    def name(self) -> str:
        return self.notifier.name

    def routes(self, alert: Mapping[str, Any]) -> bool:
        # An unknown severity ranks highest: better an extra message than a missed one.
        rank = SEVERITY_RANK.get(alert.get("severity", ""), len(SEVERITIES))
        return rank >= SEVERITY_RANK[self.min_severity] and self.match(alert["labels"])


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base: float = 1.0  # seconds before the 2nd attempt; doubles each time
    cap: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retry attempts must be at least 1")
        if self.base < 0 or self.cap < 0:
            raise ValueError("retry base and cap must not be negative")

    def delay(self, failed_attempts: int) -> float:
        return min(self.cap, self.base * 2 ** (failed_attempts - 1))


@dataclass
class NotifierStats:
    sent: int = 0  # notifications delivered
    failed: int = 0  # failed attempts (each retry counts)
    dropped: int = 0  # notifications given up: attempts exhausted, queue full, or stopped
    queued: int = 0  # waiting or being sent
    last_error: str = ""


# --- delivery --------------------------------------------------------------------------------


class _Worker:
    """One receiver's queue and thread."""

    def __init__(self, receiver: Receiver, retry: RetryPolicy, queue_size: int,
                 idle: threading.Condition) -> None:
        self.receiver = receiver
        self.retry = retry
        self.q: queue.Queue[Notification] = queue.Queue(maxsize=queue_size)
        self.stats = NotifierStats()
        self._idle = idle
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name=f"notify-{self.receiver.name}", daemon=True)
            self.thread.start()

    def put(self, n: Notification) -> None:
        with self._idle:
            if self._stop.is_set():
                self.stats.dropped += 1
                self.stats.last_error = "dispatcher stopped"
                return
            try:
                self.q.put_nowait(n)
            except queue.Full:
                self.stats.dropped += 1
                self.stats.last_error = "queue full"
                log.warning("notifier %s: queue full, notification for %s dropped", self.receiver.name,
                            n.group_key)
                return
            self.stats.queued += 1

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.q.get(timeout=0.1)
            except queue.Empty:
                continue
            delivered = self._deliver(n)
            with self._idle:
                self.stats.queued -= 1
                if delivered:
                    self.stats.sent += 1
                else:
                    self.stats.dropped += 1
                self._idle.notify_all()
        # Stopped: whatever is still queued will not be sent.
        with self._idle:
            while True:
                try:
                    self.q.get_nowait()
                except queue.Empty:
                    break
                self.stats.queued -= 1
                self.stats.dropped += 1
            self._idle.notify_all()

    def _deliver(self, n: Notification) -> bool:
        name = self.receiver.name
        for attempt in range(1, self.retry.attempts + 1):
            try:
                self.receiver.notifier.send(n)
                return True
            except Exception as exc:  # noqa: BLE001 - any receiver failure is retried, never fatal
                with self._idle:
                    self.stats.failed += 1
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if attempt == self.retry.attempts:
                    log.warning("notifier %s: giving up on %s after %d attempts: %s", name, n.group_key,
                                attempt, exc)
                    return False
                log.info("notifier %s: attempt %d failed (%s), retrying", name, attempt, exc)
                if self._stop.wait(self.retry.delay(attempt)):
                    return False
        return False  # pragma: no cover


# --- grouping --------------------------------------------------------------------------------


@dataclass
class _Group:
    key: str
    receiver: Receiver
    labels: dict[str, str]
    created_ns: int
    alerts: dict[int, dict[str, Any]] = field(default_factory=dict)  # to be told: firing, or resolved
    told: dict[int, str] = field(default_factory=dict)  # id -> "firing" | "muted" (told firing, now muted)
    last_flush_ns: int | None = None

    def changed(self) -> bool:
        return any(a["state"] == "resolved" or self.told.get(i) != "firing" for i, a in self.alerts.items())

    def empty(self) -> bool:
        return not self.alerts and not self.told


class Dispatcher:
    """Groups notifiable alert changes per receiver and delivers them in the background.

    Durations are seconds. Thread-safe; `due` is meant to be called from the manager's tick.
    """

    def __init__(self, receivers: Sequence[Receiver | Notifier] = (), *,
                 group_by: Sequence[str] = ("alertname", "host"), group_wait: float = 10.0,
                 group_interval: float = 60.0, repeat_interval: float = 4 * 3600.0,
                 retry: RetryPolicy | None = None, queue_size: int = 1000) -> None:
        self.receivers = [r if isinstance(r, Receiver) else Receiver(r) for r in receivers]
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError(f"receiver names must be unique: {names}")
        if group_interval <= 0 or repeat_interval <= 0 or group_wait < 0:
            raise ValueError("group_wait must be >= 0, group_interval and repeat_interval > 0")
        self.group_by = tuple(group_by)
        self.group_wait_ns = int(group_wait * NS)
        self.group_interval_ns = int(group_interval * NS)
        self.repeat_interval_ns = int(repeat_interval * NS)
        self.retry = retry or RetryPolicy()
        self._lock = threading.RLock()
        self._idle = threading.Condition(threading.Lock())
        self._workers = {r.name: _Worker(r, self.retry, queue_size, self._idle) for r in self.receivers}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._started = False

    # --- what the manager reports -------------------------------------------------------
    def group_key(self, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        gl = {k: labels[k] for k in self.group_by if k in labels}
        key = "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(gl.items())) + "}"
        return key, gl

    def _groups_for(self, alert: Mapping[str, Any], now_ns: int, create: bool) -> list[_Group]:
        key, gl = self.group_key(alert["labels"])
        out = []
        for r in self.receivers:
            if not r.routes(alert):
                continue
            g = self._groups.get((r.name, key))
            if g is None and create:
                g = self._groups[(r.name, key)] = _Group(key, r, gl, now_ns)
            if g is not None:
                out.append(g)
        return out

    def _tidy(self, g: _Group) -> None:
        if g.empty():
            self._groups.pop((g.receiver.name, g.key), None)

    def alert_changed(self, alert: dict[str, Any], now_ns: int) -> None:
        """An alert fired, was unmuted, or resolved (`alert["state"]`)."""
        with self._lock:
            for g in self._groups_for(alert, now_ns, create=alert["state"] == "firing"):
                aid = alert["id"]
                if alert["state"] == "firing" or aid in g.told:
                    g.alerts[aid] = alert
                else:
                    g.alerts.pop(aid, None)  # nobody was told it fired: nothing to say
                self._tidy(g)

    def alert_muted(self, alert: dict[str, Any], now_ns: int) -> None:
        """An alert was silenced or inhibited: leave it out until it is unmuted or resolves."""
        with self._lock:
            for g in self._groups_for(alert, now_ns, create=False):
                aid = alert["id"]
                g.alerts.pop(aid, None)
                if aid in g.told:
                    g.told[aid] = "muted"
                self._tidy(g)

    def update(self, alert: dict[str, Any]) -> None:
        """New details (acknowledgement, annotations, value) for an alert already known; not a change."""
        with self._lock:
            for g in self._groups_for(alert, 0, create=False):
                old = g.alerts.get(alert["id"])
                if old is not None and old["state"] == alert["state"]:
                    g.alerts[alert["id"]] = alert

    def restore(self, alert: dict[str, Any], notified_ns: int | None, muted: bool) -> None:
        """After a restart: a firing alert, and when receivers were last told about it."""
        with self._lock:
            since = alert.get("fired_ns") or alert["starts_ns"]
            for g in self._groups_for(alert, since, create=not muted or notified_ns is not None):
                aid = alert["id"]
                if notified_ns is not None:
                    g.told[aid] = "muted" if muted else "firing"
                    g.last_flush_ns = max(g.last_flush_ns or 0, notified_ns)
                if not muted:
                    g.alerts[aid] = alert
                self._tidy(g)

    # --- what is due ---------------------------------------------------------------------
    def due(self, now_ns: int) -> list[Notification]:
        """Notifications due at `now_ns`; they are queued for delivery before returning."""
        return self._flush(now_ns, force=False)

    def send_now(self, now_ns: int) -> list[Notification]:
        """Flush every group with changes, ignoring group_wait/group_interval."""
        return self._flush(now_ns, force=True)

    def _flush(self, now_ns: int, force: bool) -> list[Notification]:
        out: list[Notification] = []
        with self._lock:
            for g in list(self._groups.values()):
                n = self._flush_group(g, now_ns, force)
                if n is not None:
                    out.append(n)
                self._tidy(g)
        for n in out:
            self._enqueue(n)
        return out

    def _flush_group(self, g: _Group, now_ns: int, force: bool) -> Notification | None:
        if g.changed():
            if g.last_flush_ns is None:
                ready = now_ns >= g.created_ns + self.group_wait_ns
            else:
                ready = now_ns >= g.last_flush_ns + self.group_interval_ns
            if not (ready or force):
                return None
            alerts, repeat = list(g.alerts.values()), False
        elif g.last_flush_ns is not None and now_ns >= g.last_flush_ns + self.repeat_interval_ns:
            alerts = [a for a in g.alerts.values() if a["state"] == "firing" and not a.get("acknowledged")]
            if not alerts:
                return None
            repeat = True
        else:
            return None
        alerts.sort(key=lambda a: a["id"])
        g.last_flush_ns = now_ns
        for a in alerts:
            if a["state"] == "firing":
                g.told[a["id"]] = "firing"
            else:
                g.alerts.pop(a["id"], None)
                g.told.pop(a["id"], None)
        return Notification.build(g.key, g.receiver.name, g.labels, alerts, repeat)

    def _enqueue(self, n: Notification) -> None:
        self.start()
        self._workers[n.receiver].put(n)

    # --- workers -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the delivery threads (idempotent; also done by the first notification)."""
        with self._lock:
            if not self._started:
                self._started = True
                for w in self._workers.values():
                    w.start()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queue is empty and nothing is being sent; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while any(w.stats.queued for w in self._workers.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, timeout: float = 5.0) -> bool:
        """Give queued notifications up to `timeout` seconds, then stop the workers (what is
        left is dropped and counted). True if everything was delivered or given up in time."""
        drained = self.wait_idle(timeout) if self._started else True
        for w in self._workers.values():
            w.stop()
        for w in self._workers.values():
            if w.thread is not None:
                w.thread.join(max(0.1, timeout))
        return drained

    def stats(self) -> dict[str, NotifierStats]:
        with self._idle:
            return {name: replace(w.stats) for name, w in self._workers.items()}

    def groups(self) -> list[dict[str, Any]]:
        """The current groups, for diagnostics."""
        with self._lock:
            return [{"receiver": g.receiver.name, "group_key": g.key, "alerts": sorted(g.alerts),
                     "told": dict(g.told), "last_flush_ns": g.last_flush_ns} for g in self._groups.values()]
