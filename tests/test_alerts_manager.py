"""Alert manager: lifecycle, deduplication, history, silences, acknowledgements, inhibition,
the feed, and persistence across restarts. Times are explicit; notifications go to a real
Dispatcher whose receiver records what it is sent."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from warden.collector.alerts.manager import DEFAULT_INHIBIT, AlertManager, InhibitRule
from warden.collector.alerts.notify import Dispatcher, Notification
from warden.collector.alerts.store import AlertStore
from warden.collector.rules.model import Transition, fingerprint

S = 1_000_000_000
T0 = 1_700_000_000 * S


def tr(state: str, rule: str = "disk_full", host: str = "web1", at: int = T0, since: int | None = None,
       severity: str = "warning", summary: str = "disk full", value: float | None = 91.0,
       was_firing: bool | None = None, **extra: str) -> Transition:
    labels = {"alertname": rule, "severity": severity, "host": host, **extra}
    return Transition(rule, fingerprint(labels), labels, {"summary": summary}, state, at,
                      at if since is None else since, value,
                      state == "firing" if was_firing is None else was_firing)


class Recorder:
    """A receiver that keeps what it is sent."""

    def __init__(self, name: str = "rec") -> None:
        self.name = name
        self.got: list[Notification] = []
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        with self._lock:
            self.got.append(notification)

    def take(self) -> list[Notification]:
        with self._lock:
            out, self.got = self.got, []
        return out


class Env:
    def __init__(self, tmp: Path, inhibit: tuple[InhibitRule, ...] = DEFAULT_INHIBIT) -> None:
        self.path = tmp / "alerts.db"
        self.rec = Recorder()
        self.inhibit = inhibit
        self.open()

    def open(self) -> None:
        self.store = AlertStore(self.path)
        self.disp = Dispatcher([self.rec], group_wait=10, group_interval=60, repeat_interval=3600)
        self.mgr = AlertManager(self.store, self.disp, self.inhibit)

    def close(self) -> None:
        self.disp.stop(2)
        self.store.close()

    def tick(self, at: int) -> list[Notification]:
        """Run the manager's tick and return what was delivered."""
        self.mgr.tick(at)
        assert self.disp.wait_idle(5)
        return self.rec.take()


@pytest.fixture
def env(tmp_path: Path):
    e = Env(tmp_path)
    yield e
    e.close()


def whats(mgr: AlertManager, alert_id: int) -> list[str]:
    return [h["what"] for h in mgr.alert_history(alert_id)]


def names(n: Notification) -> list[tuple[str, str]]:
    return [(a["labels"]["host"], a["status"]) for a in n.alerts]


# --- lifecycle ---------------------------------------------------------------------------------


def test_same_transition_twice_is_one_alert_and_one_feed_entry(env: Env) -> None:
    first = env.mgr.apply([tr("firing")], T0)
    again = env.mgr.apply([tr("firing", at=T0 + S, value=95.0)], T0 + S)
    assert len(first) == 1 and again == []
    active = env.mgr.active()
    assert len(active) == 1
    assert active[0]["value"] == 95.0  # the repeat refreshed the value quietly
    assert len(env.mgr.feed_since(0)) == 1
    assert whats(env.mgr, active[0]["id"]) == ["firing"]


def test_pending_firing_resolved_timeline_and_payload(env: Env) -> None:
    (p,) = env.mgr.apply([tr("pending", at=T0)], T0)
    assert p.kind == "alert" and p.what == "pending" and p.payload["state"] == "pending"
    aid = p.alert_id
    (f,) = env.mgr.apply([tr("firing", at=T0 + 60 * S, since=T0)], T0 + 60 * S)
    assert f.alert_id == aid
    (r,) = env.mgr.apply([tr("resolved", at=T0 + 120 * S, since=T0, was_firing=True)], T0 + 120 * S)
    payload = r.payload
    assert payload["state"] == "resolved"
    assert (payload["starts_ns"], payload["fired_ns"], payload["ends_ns"]) == (T0, T0 + 60 * S, T0 + 120 * S)
    assert payload["starts_at"] == "2023-11-14T22:13:20Z" and payload["ends_at"] == "2023-11-14T22:15:20Z"
    assert payload["rule"] == "disk_full" and payload["severity"] == "warning"
    assert payload["acknowledged"] is None and payload["silenced_by"] == [] and payload["inhibited"] is False
    assert env.mgr.active() == []
    hist = env.mgr.alert_history(aid)
    assert [h["what"] for h in hist] == ["pending", "firing", "resolved"]
    assert [h["at_ns"] for h in hist] == [T0, T0 + 60 * S, T0 + 120 * S]
    assert env.mgr.get(aid) == payload


def test_firing_after_resolved_is_a_new_occurrence(env: Env) -> None:
    (a,) = env.mgr.apply([tr("firing")], T0)
    env.mgr.apply([tr("resolved", at=T0 + 10 * S)], T0 + 10 * S)
    (b,) = env.mgr.apply([tr("firing", at=T0 + 20 * S)], T0 + 20 * S)
    assert b.alert_id != a.alert_id
    assert b.payload["fingerprint"] == a.payload["fingerprint"]
    assert env.mgr.get(a.alert_id)["state"] == "resolved"
    assert [x["id"] for x in env.mgr.active()] == [b.alert_id]
    # A resolve and a re-fire in one batch also work.
    entries = env.mgr.apply([tr("resolved", at=T0 + 30 * S), tr("firing", at=T0 + 30 * S)], T0 + 30 * S)
    assert [e.what for e in entries] == ["resolved", "firing"]
    assert len({e.alert_id for e in entries}) == 2


def test_pending_that_clears_is_closed_quietly(env: Env) -> None:
    (p,) = env.mgr.apply([tr("pending")], T0)
    (r,) = env.mgr.apply([tr("resolved", at=T0 + 5 * S, was_firing=False)], T0 + 5 * S)
    assert r.payload["state"] == "resolved" and r.payload["fired_ns"] is None
    assert whats(env.mgr, p.alert_id) == ["pending", "resolved"]
    assert "never fired" in env.mgr.alert_history(p.alert_id)[-1]["detail"]
    assert env.tick(T0 + 3600 * S) == []  # nothing was notified, ever
    # A resolution for something not open is ignored.
    assert env.mgr.apply([tr("resolved", host="nowhere", at=T0 + 9 * S)], T0 + 9 * S) == []


def test_annotation_change_is_recorded_only_when_the_summary_changes(env: Env) -> None:
    (f,) = env.mgr.apply([tr("firing", summary="disk 91% full")], T0)
    assert env.mgr.apply([tr("firing", summary="disk 91% full", value=92.0)], T0 + S) == []
    (c,) = env.mgr.apply([tr("firing", summary="disk 97% full")], T0 + 2 * S)
    assert c.what == "annotation_changed" and c.payload["annotations"]["summary"] == "disk 97% full"
    assert whats(env.mgr, f.alert_id) == ["firing", "annotation_changed"]
    assert "disk 91% full → disk 97% full" in env.mgr.alert_history(f.alert_id)[-1]["detail"]


def test_notifications_follow_firing_and_resolution(env: Env) -> None:
    env.mgr.apply([tr("firing", host="web1"), tr("firing", host="web1", rule="load_high")], T0)
    assert env.tick(T0 + 9 * S) == []  # group_wait
    got = sorted(env.tick(T0 + 10 * S), key=lambda n: n.group_key)
    assert [n.group_labels for n in got] == [{"alertname": "disk_full", "host": "web1"},
                                             {"alertname": "load_high", "host": "web1"}]
    assert all(n.status == "firing" and n.receiver == "rec" for n in got)
    env.mgr.apply([tr("resolved", at=T0 + 20 * S)], T0 + 20 * S)
    assert env.tick(T0 + 69 * S) == []  # group_interval after the first notification
    (r,) = env.tick(T0 + 70 * S)
    assert r.status == "resolved" and names(r) == [("web1", "resolved")]
    aid = r.alerts[0]["id"]
    notified = [h for h in env.mgr.alert_history(aid) if h["what"] == "notified"]
    assert [h["detail"].split()[0] for h in notified] == ["firing", "resolved"]
    assert notified[0]["actor"] == "rec"


# --- persistence -------------------------------------------------------------------------------


def test_restart_keeps_open_alerts_feed_positions_and_engine_state(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.mgr.apply([tr("firing", host="web1"), tr("pending", host="web2")], T0)
    assert env.tick(T0 + 10 * S) != []  # web1 notified before the restart
    env.mgr.save_engine_state({"rules": {"disk_full": [1, 2, 3]}})
    last = env.mgr.last_position()
    before = env.mgr.active()
    env.close()

    env.open()
    try:
        assert env.mgr.active() == before
        assert env.mgr.last_position() == last
        assert env.mgr.load_engine_state() == {"rules": {"disk_full": [1, 2, 3]}}
        # The same alerts continue: no new occurrence for a repeated transition.
        assert env.mgr.apply([tr("firing", host="web1", at=T0 + 30 * S)], T0 + 30 * S) == []
        (e,) = env.mgr.apply([tr("firing", host="web2", at=T0 + 30 * S)], T0 + 30 * S)
        assert e.position == last + 1
        assert e.alert_id == [a for a in before if a["labels"]["host"] == "web2"][0]["id"]
        # web1 was already notified before the restart: nothing new for it, but web2 is news.
        (n,) = env.tick(T0 + 45 * S)
        assert names(n) == [("web2", "firing")]
        # ...and the remembered notification time drives the repeat.
        assert env.tick(T0 + 3600 * S) == []
        assert {names(n)[0] for n in env.tick(T0 + 3611 * S)} == {("web1", "firing")}
    finally:
        env.close()


def test_restart_notifies_alerts_that_were_never_notified(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.mgr.apply([tr("firing")], T0)
    env.close()  # crashed within group_wait: receivers never heard of it
    env.open()
    try:
        (n,) = env.tick(T0 + 10 * S)
        assert names(n) == [("web1", "firing")]
    finally:
        env.close()


# --- silences ----------------------------------------------------------------------------------


def test_silence_matchers_equality_regex_and_not(env: Env) -> None:
    sid = env.mgr.add_silence({"host": "web1", "alertname": {"regex": "disk_.*"},
                               "severity": {"not": "critical"}}, T0, T0 + 3600 * S, "alice", "maint", T0)
    entries = env.mgr.apply([
        tr("firing", host="web1"),                              # silenced
        tr("firing", host="web1", severity="critical"),         # not: critical
        tr("firing", host="web1", rule="xdisk_full"),           # regex is a full match
        tr("firing", host="web2"),                              # other host
    ], T0 + S)
    silenced = {e.alert_id for e in entries if e.what == "silenced"}
    assert len(silenced) == 1
    (a,) = [x for x in env.mgr.active() if x["silenced_by"]]
    assert a["silenced_by"] == [sid]
    assert (a["labels"]["severity"], a["labels"]["host"], a["rule"]) == ("warning", "web1", "disk_full")
    hist = env.mgr.alert_history(a["id"])
    assert [h["what"] for h in hist] == ["firing", "silenced"]
    assert hist[1]["actor"] == "alice" and f"#{sid}" in hist[1]["detail"]
    got = env.tick(T0 + 11 * S)
    notified_ids = {x["id"] for n in got for x in n.alerts}
    assert len(notified_ids) == 3 and a["id"] not in notified_ids
    (s,) = env.mgr.silences()
    assert s["id"] == sid and s["state"] == "active" and s["author"] == "alice"


def test_silence_in_the_future_then_its_end_unsilences_and_notifies(env: Env) -> None:
    sid = env.mgr.add_silence({"host": "web1"}, T0 + 100 * S, T0 + 200 * S, "bob", "", T0)
    env.mgr.apply([tr("firing")], T0)
    assert env.mgr.active()[0]["silenced_by"] == []  # not started yet
    (n,) = env.tick(T0 + 10 * S)
    aid = n.alerts[0]["id"]
    entries = env.mgr.tick(T0 + 100 * S)
    assert [(e.alert_id, e.what) for e in entries] == [(aid, "silenced")]
    assert env.tick(T0 + 150 * S) == []
    entries = env.mgr.tick(T0 + 200 * S)
    assert [(e.alert_id, e.what) for e in entries] == [(aid, "unsilenced")]
    assert env.disp.wait_idle(5)
    (n,) = env.rec.take()  # unsilenced and still firing: told again
    assert names(n) == [("web1", "firing")] and not n.repeat
    assert env.mgr.silences() == []
    assert [s["id"] for s in env.mgr.silences(include_expired=True)] == [sid]
    assert whats(env.mgr, aid) == ["firing", "notified", "silenced", "unsilenced", "notified"]


def test_expiring_a_silence_notifies_what_fired_under_it(env: Env) -> None:
    sid = env.mgr.add_silence({"alertname": "disk_full"}, T0, T0 + 3600 * S, "bob", "", T0)
    env.mgr.apply([tr("firing")], T0 + S)
    assert env.tick(T0 + 60 * S) == []
    env.mgr.expire_silence(sid, "carol", T0 + 70 * S)
    (s,) = env.mgr.silences(include_expired=True)
    assert s["expired_by"] == "carol" and s["state"] == "expired" and s["ends_ns"] == T0 + 70 * S
    aid = env.mgr.active()[0]["id"]
    assert env.mgr.alert_history(aid)[-1]["what"] == "unsilenced"
    assert env.mgr.alert_history(aid)[-1]["actor"] == "carol"
    assert env.tick(T0 + 75 * S) == []  # a new group: group_wait from now
    (n,) = env.tick(T0 + 80 * S)
    assert names(n) == [("web1", "firing")]
    kinds = [(e.kind, e.what) for e in env.mgr.feed_since(0) if e.kind == "silence"]
    assert kinds == [("silence", "created"), ("silence", "expired")]
    with pytest.raises(ValueError, match="already ended"):
        env.mgr.expire_silence(sid, "carol", T0 + 80 * S)
    with pytest.raises(KeyError, match="no silence 999"):
        env.mgr.expire_silence(999, "carol", T0 + 80 * S)


def test_resolution_of_a_notified_alert_is_sent_even_if_silenced_meanwhile(env: Env) -> None:
    env.mgr.apply([tr("firing")], T0)
    assert len(env.tick(T0 + 10 * S)) == 1
    env.mgr.add_silence({"host": "web1"}, T0 + 20 * S, T0 + 3600 * S, "bob", "", T0 + 20 * S)
    env.mgr.apply([tr("resolved", at=T0 + 30 * S)], T0 + 30 * S)
    (n,) = env.tick(T0 + 70 * S)
    assert names(n) == [("web1", "resolved")]


def test_silence_validation(env: Env) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        env.mgr.add_silence({}, T0, T0 + S, "a", "", T0)
    with pytest.raises(ValueError, match="end after it starts"):
        env.mgr.add_silence({"host": "web1"}, T0 + S, T0 + S, "a", "", T0)
    with pytest.raises(ValueError, match="silence every alert"):
        env.mgr.add_silence({"host": {"regex": ".*"}}, T0, T0 + S, "a", "", T0)
    with pytest.raises(ValueError, match="backtrack"):
        env.mgr.add_silence({"host": {"regex": "(a+)+"}}, T0, T0 + S, "a", "", T0)
    with pytest.raises(ValueError, match="matcher is a string"):
        env.mgr.add_silence({"host": {"prefix": "web"}}, T0, T0 + S, "a", "", T0)
    with pytest.raises(ValueError, match="author"):
        env.mgr.add_silence({"host": "web1"}, T0, T0 + S, " ", "", T0)
    with pytest.raises(ValueError, match="past"):
        env.mgr.add_silence({"host": "web1"}, T0, T0 + S, "a", "", T0 + 2 * S)
    assert env.mgr.silences(include_expired=True) == []


# --- acknowledgements --------------------------------------------------------------------------


def test_acknowledge_and_unacknowledge(env: Env) -> None:
    (f,) = env.mgr.apply([tr("firing")], T0)
    e = env.mgr.acknowledge(f.alert_id, "alice", "looking", T0 + S)
    assert e.what == "acknowledged" and e.position == f.position + 1
    assert e.payload["acknowledged"] == {"by": "alice", "at": "2023-11-14T22:13:21Z", "at_ns": T0 + S,
                                         "comment": "looking"}
    assert env.mgr.get(f.alert_id)["acknowledged"]["by"] == "alice"
    u = env.mgr.unacknowledge(f.alert_id, "bob", "not fixed", T0 + 2 * S)
    assert u.what == "unacknowledged" and u.payload["acknowledged"] is None
    hist = env.mgr.alert_history(f.alert_id)
    assert [(h["what"], h["actor"], h["detail"]) for h in hist[1:]] == [
        ("acknowledged", "alice", "looking"), ("unacknowledged", "bob", "not fixed")]
    with pytest.raises(ValueError, match="not acknowledged"):
        env.mgr.unacknowledge(f.alert_id, "bob", "", T0 + 3 * S)
    with pytest.raises(KeyError, match="no alert 12345"):
        env.mgr.acknowledge(12345, "alice", "", T0 + 3 * S)
    env.mgr.apply([tr("resolved", at=T0 + 4 * S)], T0 + 4 * S)
    with pytest.raises(ValueError, match="resolved"):
        env.mgr.acknowledge(f.alert_id, "alice", "", T0 + 5 * S)


def test_acknowledged_alerts_are_left_out_of_repeats(env: Env) -> None:
    env.mgr.apply([tr("firing", mount="/"), tr("firing", mount="/var")], T0)
    (n,) = env.tick(T0 + 10 * S)
    assert len(n.alerts) == 2
    first, second = (a["id"] for a in n.alerts)
    env.mgr.acknowledge(first, "alice", "", T0 + 20 * S)
    (r,) = env.tick(T0 + 3610 * S)
    assert r.repeat and [a["id"] for a in r.alerts] == [second]
    env.mgr.acknowledge(second, "alice", "", T0 + 3620 * S)
    assert env.tick(T0 + 7300 * S) == []  # everything acknowledged: no reminder


# --- inhibition --------------------------------------------------------------------------------


def test_host_silent_inhibits_only_its_own_host(env: Env) -> None:
    env.mgr.apply([tr("firing", host="web1"), tr("firing", host="web2")], T0)
    src, inh = env.mgr.apply([tr("firing", rule="host_silent", host="web1", severity="critical")], T0 + S)
    assert (src.what, inh.what) == ("firing", "inhibited")
    by_host = {(a["labels"]["alertname"], a["labels"]["host"]): a for a in env.mgr.active()}
    assert by_host[("disk_full", "web1")]["inhibited"] is True
    assert by_host[("disk_full", "web2")]["inhibited"] is False
    assert by_host[("host_silent", "web1")]["inhibited"] is False  # never itself
    inhibited_id = by_host[("disk_full", "web1")]["id"]
    hist = env.mgr.alert_history(inhibited_id)
    assert hist[-1]["what"] == "inhibited" and f"#{src.alert_id}" in hist[-1]["detail"]
    got = env.tick(T0 + 11 * S)
    assert sorted((n.group_labels["alertname"], n.group_labels["host"]) for n in got) == [
        ("disk_full", "web2"), ("host_silent", "web1")]
    # The host comes back: its other alert is uninhibited and, still firing, notified.
    entries = env.mgr.apply([tr("resolved", rule="host_silent", host="web1", severity="critical",
                                at=T0 + 30 * S)], T0 + 30 * S)
    assert [(e.alert_id, e.what) for e in entries] == [(src.alert_id, "resolved"),
                                                       (inhibited_id, "uninhibited")]
    got = env.tick(T0 + 71 * S)
    assert sorted((n.group_labels["alertname"], n.status) for n in got) == [
        ("disk_full", "firing"), ("host_silent", "resolved")]


def test_custom_inhibit_rule_and_no_inhibition(tmp_path: Path) -> None:
    rule = InhibitRule.parse({"severity": "critical"}, {"severity": "warning"}, ["host"])
    env = Env(tmp_path, inhibit=(rule,))
    try:
        env.mgr.apply([tr("firing", rule="disk_full", severity="warning"),
                       tr("firing", rule="disk_gone", severity="critical"),
                       tr("firing", rule="host_silent", host="web2")], T0)
        flags = {a["labels"]["alertname"]: a["inhibited"] for a in env.mgr.active()}
        assert flags == {"disk_full": True, "disk_gone": False, "host_silent": False}
    finally:
        env.close()
    with pytest.raises(ValueError, match="source must not be empty"):
        InhibitRule.parse({}, {}, ["host"])


# --- feed and queries --------------------------------------------------------------------------


def test_feed_since_resumes_exactly(env: Env) -> None:
    for i in range(5):
        env.mgr.apply([tr("firing", host=f"h{i}")], T0 + i * S)
    env.mgr.add_silence({"host": "h9"}, T0, T0 + 60 * S, "a", "", T0 + 5 * S)
    all_entries = env.mgr.feed_since(0)
    positions = [e.position for e in all_entries]
    assert positions == list(range(positions[0], positions[0] + 6))
    assert env.mgr.last_position() == positions[-1]
    page1 = env.mgr.feed_since(0, limit=2)
    page2 = env.mgr.feed_since(page1[-1].position, limit=2)
    rest = env.mgr.feed_since(page2[-1].position)
    assert page1 + page2 + rest == all_entries
    assert env.mgr.feed_since(env.mgr.last_position()) == []
    assert all_entries[-1].kind == "silence" and all_entries[-1].alert_id is None


def test_history_query_by_window_host_and_rule(env: Env) -> None:
    env.mgr.apply([tr("firing", host="web1")], T0)
    env.mgr.apply([tr("resolved", host="web1", at=T0 + 10 * S)], T0 + 10 * S)
    env.mgr.apply([tr("firing", host="web2", rule="load_high", at=T0 + 20 * S)], T0 + 20 * S)
    env.mgr.apply([tr("firing", host="web1", at=T0 + 30 * S)], T0 + 30 * S)
    all_ = env.mgr.history(T0, T0 + 60 * S)
    assert [(a["labels"]["host"], a["starts_ns"]) for a in all_] == [
        ("web1", T0 + 30 * S), ("web2", T0 + 20 * S), ("web1", T0)]
    assert [a["starts_ns"] for a in env.mgr.history(T0, T0 + 60 * S, host="web1")] == [T0 + 30 * S, T0]
    assert [a["rule"] for a in env.mgr.history(T0, T0 + 60 * S, rule="load_high")] == ["load_high"]
    # The first occurrence ended at +10 s: a window after that does not include it.
    assert [a["starts_ns"] for a in env.mgr.history(T0 + 11 * S, T0 + 25 * S)] == [T0 + 20 * S]
    assert len(env.mgr.history(T0, T0 + 60 * S, limit=1)) == 1
    assert env.mgr.alert_history(999) == [] and env.mgr.get(999) is None


def test_a_failed_write_changes_nothing(env: Env) -> None:
    env.mgr.apply([tr("firing", host="web1")], T0)
    before, pos = env.mgr.active(), env.mgr.last_position()
    bad = tr("firing", host="web2")
    bad.state = "exploded"
    with pytest.raises(ValueError, match="unknown state"):
        env.mgr.apply([tr("firing", host="web3"), bad], T0 + S)
    assert env.mgr.active() == before and env.mgr.last_position() == pos
    assert env.mgr.history(T0, T0 + 60 * S, host="web3") == []


def test_without_a_dispatcher_and_from_several_threads(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.db")
    mgr = AlertManager(store, None, DEFAULT_INHIBIT)
    errors: list[BaseException] = []

    def engine() -> None:
        try:
            for i in range(40):
                mgr.apply([tr("firing", host=f"h{i}", at=T0 + i)], T0 + i)
                mgr.tick(T0 + i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def operator() -> None:
        try:
            done: set[int] = set()
            while len(done) < 40:
                for a in mgr.active():
                    if a["id"] not in done:
                        mgr.acknowledge(a["id"], "op", "", T0 + 100)
                        done.add(a["id"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=engine), threading.Thread(target=operator)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    feed = mgr.feed_since(0, limit=1000)
    assert [e.position for e in feed] == list(range(1, 81))
    assert sorted(e.what for e in feed) == ["acknowledged"] * 40 + ["firing"] * 40
    assert all(a["acknowledged"] for a in mgr.active())
    store.close()
