"""The alert manager: turns the rules engine's `Transition`s into alert occurrences with a
history, applies silences, acknowledgements and inhibition, and hands notifiable changes
to the `Dispatcher`.

Identity: at most one open (pending or firing) alert per fingerprint. A transition to the
state an alert already has only refreshes its value and annotations; firing again after a
resolution opens a new occurrence (a new id). Every change is written to the alert's
history and to the feed (one entry per change, in order; positions survive restarts).

Muting applies to firing alerts: one that matches an active silence is `silenced`, one
whose labels are covered by a firing inhibition source is `inhibited`; neither is
notified. When that stops (the silence ends, the source resolves) the alert is notified
again if it still fires. Nothing here reads a clock: callers pass `now_ns`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from warden.collector.alerts.notify import Dispatcher, Matchers, Notification
from warden.collector.alerts.store import (
    AlertRecord,
    AlertStore,
    FeedEntry,
    SilenceRecord,
    StoreTx,
)
from warden.collector.rules.model import Transition

__all__ = ["AlertManager", "FeedEntry", "InhibitRule", "DEFAULT_INHIBIT"]

ENGINE_STATE_KEY = "rules_engine"
MAX_SILENCE_TEXT = 1000


@dataclass(frozen=True)
class InhibitRule:
    """While a firing alert matches `source`, alerts matching `target` with the same values
    for the `equal` labels are inhibited (an alert never inhibits itself)."""

    source: Matchers
    target: Matchers
    equal: tuple[str, ...] = ()

    @classmethod
    def parse(cls, source: Mapping[str, Any], target: Mapping[str, Any] | None = None,
              equal: Sequence[str] = (), what: str = "inhibit rule") -> InhibitRule:
        if isinstance(equal, str) or not all(isinstance(e, str) and e for e in equal):
            raise ValueError(f"{what}: equal must be a list of label names")
        return cls(Matchers.parse(source, f"{what}: source", allow_empty=False),
                   Matchers.parse(target or {}, f"{what}: target"), tuple(equal))


# A host that stopped reporting makes its other alerts noise: show only host_silent.
DEFAULT_INHIBIT = (InhibitRule.parse({"alertname": "host_silent"}, {}, ["host"]),)


class _Op:
    """The changes of one manager operation: written in one transaction, then published to
    the in-memory state and the dispatcher (only if the transaction committed)."""

    def __init__(self, tx: StoreTx, now_ns: int) -> None:
        self.tx = tx
        self.now_ns = now_ns
        self.entries: list[FeedEntry] = []
        self.changed: dict[int, AlertRecord] = {}
        self.notify: dict[int, AlertRecord] = {}  # alert_changed after commit
        self.mute: dict[int, AlertRecord] = {}  # alert_muted after commit
        self.muting: tuple[frozenset[int], list[dict[tuple[str, ...], list[int]]]] | None = None

    def event(self, a: AlertRecord, what: str, actor: str = "", detail: str = "") -> None:
        """Record one change of `a` (already updated in place): history, feed, row."""
        a.updated_ns = max(a.updated_ns, self.now_ns)
        self.tx.update_alert(a)
        self.tx.add_history(a.id, self.now_ns, what, actor, detail)
        self.entries.append(self.tx.append_feed(self.now_ns, "alert", a.id, a.payload(), what))
        self.changed[a.id] = a


class _Work(dict):  # type: ignore[type-arg]
    """Copy-on-write view of the open alerts for one operation: a record is copied the first
    time the operation changes it, so an operation costs what it touches, not what is open
    (with thousands of open alerts, copying them all made every apply ~10 ms)."""

    def __init__(self, base: Mapping[str, AlertRecord]) -> None:
        super().__init__(base)
        self.owned: set[str] = set()
        self.touched: set[str] = set()

    def own(self, fp: str) -> AlertRecord:
        a: AlertRecord = self[fp]
        if fp not in self.owned:
            a = self[fp] = replace(a, labels=dict(a.labels), annotations=dict(a.annotations),
                                   silenced_by=list(a.silenced_by))
            self.owned.add(fp)
        self.touched.add(fp)
        return a

    def add(self, a: AlertRecord) -> None:
        self[a.fingerprint] = a
        self.owned.add(a.fingerprint)
        self.touched.add(a.fingerprint)


class AlertManager:
    """See the module docstring. Thread-safe: one lock around every operation."""

    def __init__(self, store: AlertStore, notifier: Dispatcher | None = None,
                 inhibit: Sequence[InhibitRule] = ()) -> None:
        self.store = store
        self.dispatcher = notifier
        self.inhibit = tuple(inhibit)
        self._lock = threading.RLock()
        self._open: dict[str, AlertRecord] = {a.fingerprint: a for a in store.open_alerts()}
        # The latest time we know of until the first call says otherwise.
        self._now_ns = max([0, *(a.updated_ns for a in self._open.values())])
        self._silences: dict[int, SilenceRecord] = {s.id: s for s in store.silences(self._now_ns)}
        self._silence_matchers: dict[int, Matchers] = {}
        # What muting was last computed from: active silence ids and, per inhibit rule, the
        # firing sources by their `equal` values. Unchanged → only touched alerts are re-checked.
        self._muting: tuple[frozenset[int], list[dict[tuple[str, ...], list[int]]]] | None = None
        if notifier is not None:
            # Receivers' memory is not persisted; rebuild it from what was last notified.
            for a in self._open.values():
                if a.state == "firing":
                    notifier.restore(a.payload(), a.notified_ns, a.muted)

    # --- transitions ---------------------------------------------------------------------
    def apply(self, transitions: Iterable[Transition], now_ns: int) -> list[FeedEntry]:
        """Store the engine's transitions; returns the feed entries they caused."""
        batch = list(transitions)
        with self._lock:
            self._now_ns = max(self._now_ns, now_ns)
            if not batch:
                return []  # the engine calls often; silences that start or end are tick's job
            work = self._working_copy()
            with self.store.transaction() as tx:
                op = _Op(tx, now_ns)
                for t in batch:
                    a = self._apply_one(op, work, t)
                    if a is not None and not a.open:
                        del work[a.fingerprint]
                self._remute(op, work)
            self._publish(op, work)
            return op.entries

    def _apply_one(self, op: _Op, work: _Work, t: Transition) -> AlertRecord | None:
        if t.state not in ("pending", "firing", "resolved"):
            raise ValueError(f"transition for {t.rule_id}: unknown state {t.state!r}")
        a = work.own(t.fingerprint) if t.fingerprint in work else None
        if a is None:
            if t.state == "resolved":
                return None  # already closed (or never seen): nothing to do
            a = AlertRecord(id=0, fingerprint=t.fingerprint, rule_id=t.rule_id,
                            severity=t.labels.get("severity", ""), host=t.labels.get("host", ""),
                            labels=dict(t.labels), annotations=dict(t.annotations), state=t.state,
                            starts_ns=t.active_since_ns, fired_ns=t.at_ns if t.state == "firing" else None,
                            updated_ns=op.now_ns, value=t.value)
            a.id = op.tx.insert_alert(a)
            work.add(a)
            op.event(a, t.state, detail=_summary(a))
            if t.state == "firing":
                op.notify[a.id] = a
            return a
        if t.state == "resolved":
            was_firing = a.state == "firing"  # our record decides, not the engine's flag
            a.state, a.ends_ns, a.value = "resolved", t.at_ns, t.value if t.value is not None else a.value
            op.event(a, "resolved", detail="" if was_firing else "cleared while pending: never fired")
            if was_firing:
                op.notify[a.id] = a
            else:
                op.notify.pop(a.id, None)
            return a
        if t.state == "firing" and a.state == "pending":
            a.state, a.fired_ns, a.value = "firing", t.at_ns, t.value
            a.annotations = dict(t.annotations)
            op.event(a, "firing", detail=_summary(a))
            op.notify[a.id] = a
            return a
        # Same state (or firing → pending, which the lifecycle never emits): refresh details.
        old_summary = a.annotations.get("summary", "")
        changed = a.annotations != t.annotations or a.value != t.value
        a.annotations, a.value = dict(t.annotations), t.value
        if old_summary != a.annotations.get("summary", ""):
            op.event(a, "annotation_changed", detail=f"{old_summary} → {a.annotations.get('summary', '')}")
        elif changed:
            a.updated_ns = max(a.updated_ns, op.now_ns)
            op.tx.update_alert(a)
            op.changed[a.id] = a
        return a

    # --- muting ----------------------------------------------------------------------------
    def _matchers(self, s: SilenceRecord) -> Matchers:
        m = self._silence_matchers.get(s.id)
        if m is None:
            m = self._silence_matchers[s.id] = Matchers.parse(s.matchers, f"silence {s.id}")
        return m

    def _remute(self, op: _Op, work: _Work,
                silences: Mapping[int, SilenceRecord] | None = None, actor: str = "") -> None:
        """Bring firing alerts' silenced/inhibited marks up to date at op.now_ns: all of them
        when the active silences or the inhibiting alerts changed, else the touched ones."""
        now = op.now_ns
        silences = self._silences if silences is None else silences
        active = [s for s in silences.values() if s.state(now) == "active"]
        active_ids = frozenset(s.id for s in active)
        full = self._muting is None or self._muting[0] != active_ids
        if not full and self.inhibit:
            for fp in work.touched:
                a = work.get(fp) or self._open.get(fp)
                if a is not None and any(rule.source(a.labels) for rule in self.inhibit):
                    full = True  # an inhibiting alert fired, changed or resolved
                    break
        if full:
            firing = [a for a in work.values() if a.state == "firing"]
            # Per inhibit rule: the `equal` label values of its firing sources → their ids.
            sources: list[dict[tuple[str, ...], list[int]]] = []
            for rule in self.inhibit:
                by_key: dict[tuple[str, ...], list[int]] = {}
                for a in firing:
                    if rule.source(a.labels):
                        by_key.setdefault(tuple(a.labels.get(k, "") for k in rule.equal), []).append(a.id)
                sources.append(by_key)
        else:
            sources = self._muting[1]  # type: ignore[index]
            firing = [work[fp] for fp in work.touched if fp in work and work[fp].state == "firing"]
        op.muting = (active_ids, sources)
        for a in firing:
            was_muted = a.muted
            silenced_by = sorted(s.id for s in active if self._matchers(s)(a.labels))
            inhibitors: set[int] = set()
            for rule, by_key in zip(self.inhibit, sources, strict=True):
                if by_key and rule.target(a.labels):
                    ids = by_key.get(tuple(a.labels.get(k, "") for k in rule.equal), [])
                    inhibitors.update(i for i in ids if i != a.id)
            if silenced_by != a.silenced_by or bool(inhibitors) != a.inhibited:
                a = work.own(a.fingerprint)
            if silenced_by != a.silenced_by:
                added = [i for i in silenced_by if i not in a.silenced_by]
                before = a.silenced_by
                a.silenced_by = silenced_by
                if not before:
                    who = ", ".join(sorted({silences[i].author for i in added}))
                    op.event(a, "silenced", who, f"by silence {_ids(added)}")
                elif not silenced_by:
                    op.event(a, "unsilenced", actor, f"silence {_ids(before)} ended")
                else:  # one silence ended as another began: still silenced, just note the ids
                    op.event(a, "silenced", actor, f"now by silence {_ids(silenced_by)}")
            if bool(inhibitors) != a.inhibited:
                a.inhibited = bool(inhibitors)
                if a.inhibited:
                    op.event(a, "inhibited", detail=f"by alert {_ids(sorted(inhibitors))}")
                else:
                    op.event(a, "uninhibited", detail="inhibiting alert resolved")
            if a.muted and a.id in op.notify:
                del op.notify[a.id]  # fired while muted: say nothing
            if a.muted and not was_muted:
                op.mute[a.id] = a
            elif was_muted and not a.muted:
                op.mute.pop(a.id, None)
                op.notify[a.id] = a

    def _publish(self, op: _Op, work: _Work) -> None:
        """After commit: the new state becomes current and the dispatcher hears of it."""
        self._open = dict(work)
        if op.muting is not None:
            self._muting = op.muting
        d = self.dispatcher
        if d is None:
            return
        for aid, a in op.changed.items():
            if aid in op.mute:
                d.alert_muted(a.payload(), op.now_ns)
            elif aid in op.notify:
                d.alert_changed(a.payload(), op.now_ns)
            elif a.state == "firing" and not a.muted:
                d.update(a.payload())
        for aid, a in op.notify.items():
            if aid not in op.changed:
                d.alert_changed(a.payload(), op.now_ns)

    def _working_copy(self) -> _Work:
        return _Work(self._open)

    # --- time -------------------------------------------------------------------------------
    def tick(self, now_ns: int) -> list[FeedEntry]:
        """Silences starting or ending, then whatever notifications are due."""
        with self._lock:
            self._now_ns = max(self._now_ns, now_ns)
            work = self._working_copy()
            with self.store.transaction() as tx:
                op = _Op(tx, now_ns)
                self._remute(op, work)
            self._publish(op, work)
            # Silences that ended are no longer needed in memory.
            for sid in [sid for sid, s in self._silences.items() if s.state(now_ns) == "expired"]:
                del self._silences[sid]
                self._silence_matchers.pop(sid, None)
            if self.dispatcher is not None:
                self._record_notified(self.dispatcher.due(now_ns), now_ns)
            return op.entries

    def _record_notified(self, notes: Sequence[Notification], now_ns: int) -> None:
        if not notes:
            return
        by_id = {a.id: a for a in self._open.values()}
        with self.store.transaction() as tx:
            for n in notes:
                kind = "repeat" if n.repeat else "change"
                for item in n.alerts:
                    tx.add_history(item["id"], now_ns, "notified", n.receiver,
                                   f"{item['status']} ({kind}) in group {n.group_key}")
                    if item["status"] == "firing":
                        tx.set_notified(item["id"], now_ns)
        for n in notes:
            for item in n.alerts:
                if item["status"] == "firing" and item["id"] in by_id:
                    by_id[item["id"]].notified_ns = now_ns

    # --- silences --------------------------------------------------------------------------
    def add_silence(self, matchers: Mapping[str, Any], starts_ns: int, ends_ns: int, author: str,
                    comment: str, now_ns: int) -> int:
        """Create a silence; alerts it covers are muted at once if it has started."""
        m = Matchers.parse(matchers, "silence matchers", allow_empty=False)
        if m.matches_everything():
            raise ValueError("silence matchers all match an empty label, so they would silence every "
                             "alert: add at least one matcher that requires a value")
        if ends_ns <= starts_ns:
            raise ValueError("silence must end after it starts")
        if ends_ns <= now_ns:
            raise ValueError("silence would end in the past")
        author, comment = _text(author, "author", required=True), _text(comment, "comment")
        with self._lock:
            self._now_ns = max(self._now_ns, now_ns)
            work = self._working_copy()
            with self.store.transaction() as tx:
                s = SilenceRecord(0, dict(matchers), starts_ns, ends_ns, author, comment, now_ns)
                s.id = tx.insert_silence(s)
                op = _Op(tx, now_ns)
                op.entries.append(tx.append_feed(now_ns, "silence", None, s.payload(now_ns), "created"))
                silences = {**self._silences, s.id: s}
                self._remute(op, work, silences, author)
            self._silences = silences
            self._silence_matchers[s.id] = m
            self._publish(op, work)
            return s.id

    def expire_silence(self, silence_id: int, author: str, now_ns: int) -> None:
        """End a silence now; alerts it muted are notified if they still fire."""
        author = _text(author, "author", required=True)
        with self._lock:
            self._now_ns = max(self._now_ns, now_ns)
            s = self.store.silence(silence_id)
            if s is None:
                raise KeyError(f"no silence {silence_id}")
            if s.state(now_ns) == "expired":
                raise ValueError(f"silence {silence_id} has already ended")
            s = replace(s, starts_ns=min(s.starts_ns, now_ns), ends_ns=now_ns, expired_by=author)
            work = self._working_copy()
            with self.store.transaction() as tx:
                tx.update_silence(s)
                op = _Op(tx, now_ns)
                op.entries.append(tx.append_feed(now_ns, "silence", None, s.payload(now_ns), "expired"))
                silences = {**self._silences, s.id: s}
                self._remute(op, work, silences, author)
            silences.pop(s.id)
            self._silences = silences
            self._silence_matchers.pop(s.id, None)
            self._publish(op, work)

    def silences(self, include_expired: bool = False, now_ns: int | None = None) -> list[dict[str, Any]]:
        """Silences (pending and active; all with include_expired), by id. `now_ns` defaults to
        the latest time the manager was given."""
        now = self._now_ns if now_ns is None else now_ns
        rows = self.store.silences(None if include_expired else now)
        return [s.payload(now) for s in rows]

    # --- acknowledgements ------------------------------------------------------------------
    def acknowledge(self, alert_id: int, author: str, comment: str, now_ns: int) -> FeedEntry:
        """Mark an open alert as being dealt with: no repeat notifications for it."""
        author, comment = _text(author, "author", required=True), _text(comment, "comment")
        return self._ack(alert_id, now_ns, author, comment)

    def unacknowledge(self, alert_id: int, author: str, comment: str, now_ns: int) -> FeedEntry:
        author, comment = _text(author, "author", required=True), _text(comment, "comment")
        return self._ack(alert_id, now_ns, author, comment, undo=True)

    def _ack(self, alert_id: int, now_ns: int, author: str, comment: str, undo: bool = False) -> FeedEntry:
        with self._lock:
            self._now_ns = max(self._now_ns, now_ns)
            work = self._working_copy()
            a = next((x for x in work.values() if x.id == alert_id), None)
            if a is not None:
                a = work.own(a.fingerprint)
            if a is None:
                if self.store.alert(alert_id) is None:
                    raise KeyError(f"no alert {alert_id}")
                raise ValueError(f"alert {alert_id} is resolved: only open alerts can be "
                                 f"{'unacknowledged' if undo else 'acknowledged'}")
            if undo and a.ack_by is None:
                raise ValueError(f"alert {alert_id} is not acknowledged")
            if undo:
                a.ack_by = a.ack_ns = a.ack_comment = None
            else:
                a.ack_by, a.ack_ns, a.ack_comment = author, now_ns, comment
            with self.store.transaction() as tx:
                op = _Op(tx, now_ns)
                op.event(a, "unacknowledged" if undo else "acknowledged", author, comment)
            self._publish(op, work)
            return op.entries[0]

    # --- queries ---------------------------------------------------------------------------
    def get(self, alert_id: int) -> dict[str, Any] | None:
        a = self.store.alert(alert_id)
        return a.payload() if a is not None else None

    def active(self) -> list[dict[str, Any]]:
        """Pending and firing alerts, oldest first."""
        with self._lock:
            return [a.payload() for a in sorted(self._open.values(), key=lambda a: a.id)]

    def history(self, since_ns: int, until_ns: int, limit: int = 100, host: str | None = None,
                rule: str | None = None) -> list[dict[str, Any]]:
        """Occurrences active at any time in [since_ns, until_ns), newest start first."""
        return [a.payload() for a in self.store.alerts_between(since_ns, until_ns, limit, host, rule)]

    def alert_history(self, alert_id: int) -> list[dict[str, Any]]:
        """One occurrence's timeline, oldest first ([] for an unknown id)."""
        return self.store.history(alert_id)

    def feed_since(self, position: int, limit: int = 1000) -> list[FeedEntry]:
        """Entries after `position` (0: from the start), in order."""
        return self.store.feed_since(position, limit)

    def last_position(self) -> int:
        return self.store.last_position()

    # --- the rules engine's snapshot -------------------------------------------------------
    def save_engine_state(self, state: dict[str, Any]) -> None:
        self.store.set_state(ENGINE_STATE_KEY, state, time.time_ns())

    def load_engine_state(self) -> dict[str, Any] | None:
        return self.store.get_state(ENGINE_STATE_KEY)


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(f"#{i}" for i in ids)


def _summary(a: AlertRecord) -> str:
    return a.annotations.get("summary", "")


def _text(value: Any, what: str, required: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    value = value.strip()
    if required and not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > MAX_SILENCE_TEXT:
        raise ValueError(f"{what} is longer than {MAX_SILENCE_TEXT} characters")
    return value
