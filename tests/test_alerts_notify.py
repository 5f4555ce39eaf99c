"""Notifications: grouping and timing (explicit times), routing, delivery with retries on
worker threads, and the receivers against real servers on loopback: an HTTP server for
webhooks, aiosmtpd for email, a real file for JSON lines."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from warden.collector.alerts.config import build_dispatcher, from_mapping
from warden.collector.alerts.email import EmailNotifier
from warden.collector.alerts.jsonfile import JsonFileNotifier
from warden.collector.alerts.manager import DEFAULT_INHIBIT, AlertManager
from warden.collector.alerts.notify import Dispatcher, Matchers, Notification, Receiver, RetryPolicy
from warden.collector.alerts.store import AlertRecord, AlertStore
from warden.collector.alerts.webhook import WebhookNotifier, verify_signature
from warden.collector.rules.model import Transition, fingerprint

S = 1_000_000_000
T0 = 1_700_000_000 * S
FAST = RetryPolicy(attempts=3, base=0.01, cap=0.05)


def alert(aid: int, state: str = "firing", host: str = "web1", rule: str = "disk_full",
          severity: str = "warning", acked: bool = False, summary: str = "", **labels: str) -> dict[str, Any]:
    rec = AlertRecord(id=aid, fingerprint=f"fp{aid}", rule_id=rule, severity=severity, host=host,
                      labels={"alertname": rule, "severity": severity, "host": host, **labels},
                      annotations={"summary": summary or f"{rule} on {host}"}, state=state,
                      starts_ns=T0, fired_ns=T0, updated_ns=T0,
                      ends_ns=T0 + 60 * S if state == "resolved" else None,
                      ack_by="alice" if acked else None, ack_ns=T0 if acked else None)
    return rec.payload()


class Recorder:
    def __init__(self, name: str = "rec", block: threading.Event | None = None) -> None:
        self.name = name
        self.got: list[Notification] = []
        self.block = block

    def send(self, notification: Notification) -> None:
        if self.block is not None:
            assert self.block.wait(10)
        self.got.append(notification)


def ids(n: Notification) -> list[int]:
    return [a["id"] for a in n.alerts]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a real HTTP server on loopback ---------------------------------------------------------


class Hook:
    """Records POSTs; answers with `statuses` in turn (then 200); waits for `release` if set."""

    def __init__(self, statuses: tuple[int, ...] = (), release: threading.Event | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append(({k: v for k, v in self.headers.items()}, body))
                if release is not None:
                    release.wait(10)
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook/t0ken"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def deliver(receivers: list[Any], alerts: list[dict[str, Any]], retry: RetryPolicy = FAST) -> Dispatcher:
    """Send one group through a real Dispatcher and wait until it is delivered or given up."""
    d = Dispatcher(receivers, group_wait=0, retry=retry)
    for a in alerts:
        d.alert_changed(a, T0)
    assert d.due(T0)
    assert d.wait_idle(10)
    return d


# --- grouping and timing ---------------------------------------------------------------------


def test_two_alerts_of_one_group_make_one_notification() -> None:
    d = Dispatcher([Recorder()], group_wait=10)
    d.alert_changed(alert(1, mount="/"), T0)
    d.alert_changed(alert(2, mount="/var"), T0 + S)
    d.alert_changed(alert(3, host="web2"), T0 + S)
    got = sorted(d.due(T0 + 11 * S), key=lambda n: n.group_key)
    assert [(n.group_key, ids(n)) for n in got] == [('{alertname="disk_full", host="web1"}', [1, 2]),
                                                    ('{alertname="disk_full", host="web2"}', [3])]
    n = got[0]
    assert n.status == "firing" and n.receiver == "rec"
    assert n.group_labels == {"alertname": "disk_full", "host": "web1"}
    assert n.common_labels == {"alertname": "disk_full", "host": "web1", "severity": "warning"}
    assert n.common_annotations == {"summary": "disk_full on web1"}
    d.stop(2)


def test_group_wait_interval_and_repeat_with_explicit_times() -> None:
    d = Dispatcher([Recorder()], group_wait=10, group_interval=60, repeat_interval=3600)
    d.alert_changed(alert(1), T0)
    assert d.due(T0 + 9 * S) == []
    (n,) = d.due(T0 + 10 * S)
    assert ids(n) == [1] and not n.repeat
    assert d.due(T0 + 11 * S) == []  # nothing new
    d.alert_changed(alert(2, mount="/var"), T0 + 20 * S)
    assert d.due(T0 + 69 * S) == []  # changes wait for group_interval
    (n,) = d.due(T0 + 70 * S)
    assert ids(n) == [1, 2] and not n.repeat
    assert d.due(T0 + 3669 * S) == []
    (n,) = d.due(T0 + 3670 * S)  # repeat_interval after the last notification
    assert ids(n) == [1, 2] and n.repeat
    d.alert_changed(alert(2, state="resolved", mount="/var"), T0 + 3700 * S)
    assert d.due(T0 + 3729 * S) == []
    (n,) = d.due(T0 + 3730 * S)
    assert [(a["id"], a["status"]) for a in n.alerts] == [(1, "firing"), (2, "resolved")]
    assert n.status == "firing"
    d.alert_changed(alert(1, state="resolved"), T0 + 3800 * S)
    (n,) = d.due(T0 + 3790 * S + 60 * S)
    assert n.status == "resolved" and ids(n) == [1]
    assert d.groups() == []  # all told: the group is gone
    d.stop(2)


def test_fired_and_resolved_before_the_first_notification_is_never_mentioned() -> None:
    d = Dispatcher([Recorder()], group_wait=10)
    d.alert_changed(alert(1), T0)
    d.alert_changed(alert(1, state="resolved"), T0 + 5 * S)
    assert d.due(T0 + 3600 * S) == [] and d.groups() == []


def test_repeat_leaves_out_acknowledged_alerts() -> None:
    d = Dispatcher([Recorder()], group_wait=0, repeat_interval=100)
    d.alert_changed(alert(1), T0)
    d.alert_changed(alert(2, mount="/var"), T0)
    assert ids(d.due(T0)[0]) == [1, 2]
    d.update(alert(1, acked=True))
    (n,) = d.due(T0 + 100 * S)
    assert n.repeat and ids(n) == [2]
    d.update(alert(2, acked=True, mount="/var"))
    assert d.due(T0 + 200 * S) == []
    d.update(alert(2, mount="/var"))  # unacknowledged again: reminded at once
    assert ids(d.due(T0 + 201 * S)[0]) == [2]


def test_muted_alert_is_left_out_and_comes_back_when_unmuted() -> None:
    d = Dispatcher([Recorder()], group_wait=0, group_interval=10)
    d.alert_changed(alert(1), T0)
    d.alert_changed(alert(2, mount="/var"), T0)
    d.due(T0)
    d.alert_muted(alert(2, mount="/var"), T0 + S)
    (n,) = d.due(T0 + 3600 * S * 4)
    assert n.repeat and ids(n) == [1]
    d.alert_changed(alert(2, mount="/var"), T0 + 3600 * S * 5)
    (n,) = d.due(T0 + 3600 * S * 5)
    assert not n.repeat and ids(n) == [1, 2]


def test_routes_by_severity_and_labels() -> None:
    everyone, crit, db = Recorder("everyone"), Recorder("crit"), Recorder("db")
    d = Dispatcher([everyone, Receiver(crit, min_severity="critical"),
                    Receiver(db, match=Matchers.parse({"team": "db"}))], group_wait=0)
    d.alert_changed(alert(1, severity="warning", team="db"), T0)
    d.alert_changed(alert(2, rule="disk_gone", severity="critical", team="web"), T0)
    got: dict[str, list[int]] = {}
    for n in d.due(T0):
        got.setdefault(n.receiver, []).extend(ids(n))
    assert {k: sorted(v) for k, v in got.items()} == {"everyone": [1, 2], "crit": [2], "db": [1]}
    with pytest.raises(ValueError, match="min_severity"):
        Receiver(crit, min_severity="urgent")
    with pytest.raises(ValueError, match="unique"):
        Dispatcher([Recorder("x"), Recorder("x")])


def test_matchers() -> None:
    m = Matchers.parse({"host": {"regex": "web[0-9]+"}, "env": {"not": "prod"}, "alertname": "disk"})
    assert m({"host": "web12", "env": "test", "alertname": "disk"})
    assert m({"host": "web12", "alertname": "disk"})  # a missing label is "", which is not "prod"
    assert not m({"host": "web12x", "alertname": "disk"})  # full match
    assert not m({"host": "web1", "env": "prod", "alertname": "disk"})
    assert not m.matches_everything()
    assert Matchers.parse({"x": {"not": {"regex": "a.*"}}}).matches_everything()
    assert Matchers.parse({})({"anything": "at all"})
    for bad, msg in (({"h": 1}, "matcher is a string"), ({"h": {"regex": "("}}, "invalid regex"),
                     ({"h": {"regex": "a", "not": "b"}}, "matcher is a string"), (["h"], "mapping")):
        with pytest.raises(ValueError, match=msg):
            Matchers.parse(bad)


def test_webhook_payload_has_alertmanagers_shape() -> None:
    n = Notification.build('{alertname="disk_full", host="web1"}', "ops",
                           {"alertname": "disk_full", "host": "web1"},
                           [alert(1), alert(2, state="resolved", mount="/var")])
    p = n.webhook_payload()
    assert p["version"] == "4" and p["status"] == "firing" and p["receiver"] == "ops"
    assert p["groupKey"] == '{alertname="disk_full", host="web1"}' and p["externalURL"] == ""
    assert p["commonLabels"] == {"alertname": "disk_full", "host": "web1", "severity": "warning"}
    first, second = p["alerts"]
    assert first == {"status": "firing", "labels": alert(1)["labels"],
                     "annotations": {"summary": "disk_full on web1"}, "startsAt": "2023-11-14T22:13:20Z",
                     "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "fp1", "id": 1}
    assert second["status"] == "resolved" and second["endsAt"] == "2023-11-14T22:14:20Z"


# --- delivery ------------------------------------------------------------------------------


def test_webhook_is_signed_and_verifiable(hook: Hook) -> None:
    d = deliver([WebhookNotifier("ops", hook.url, secret="s3cret")], [alert(1), alert(2, mount="/var")])
    assert d.stats()["ops"].sent == 1
    ((headers, body),) = hook.requests
    doc = json.loads(body)
    assert doc["receiver"] == "ops" and [a["id"] for a in doc["alerts"]] == [1, 2]
    assert headers["Content-Type"] == "application/json"
    ts, sig = headers["X-Warden-Timestamp"], headers["X-Warden-Signature"]
    assert abs(int(ts) - time.time()) < 60 and sig.startswith("sha256=")
    assert verify_signature("s3cret", ts, body, sig)
    assert not verify_signature("wrong", ts, body, sig)
    assert not verify_signature("s3cret", ts, body + b" ", sig)
    assert not verify_signature("s3cret", ts, body, sig, now=int(ts) + 301)
    assert verify_signature("s3cret", ts, body, sig, now=int(ts) + 299)
    assert not verify_signature("s3cret", "soon", body, sig)
    assert not verify_signature("s3cret", ts, body, sig.removeprefix("sha256="))
    d.stop(2)


def test_webhook_without_secret_is_unsigned(hook: Hook) -> None:
    deliver([WebhookNotifier("ops", hook.url)], [alert(1)]).stop(2)
    ((headers, _),) = hook.requests
    assert "X-Warden-Signature" not in headers


def test_webhook_500_twice_then_200_is_delivered_on_the_third_attempt() -> None:
    h = Hook(statuses=(500, 500))
    try:
        d = deliver([WebhookNotifier("ops", h.url, secret="k")], [alert(1)],
                    RetryPolicy(attempts=5, base=0.01, cap=0.02))
        st = d.stats()["ops"]
        assert (st.sent, st.failed, st.dropped, st.queued) == (1, 2, 0, 0)
        assert "HTTP 500" in st.last_error and "t0ken" not in st.last_error  # the URL's path is secret
        assert len(h.requests) == 3 and len({body for _, body in h.requests}) == 1
        d.stop(2)
    finally:
        h.close()


def test_webhook_redirect_is_a_failure_not_followed() -> None:
    h = Hook(statuses=(302,))
    try:
        d = deliver([WebhookNotifier("ops", h.url)], [alert(1)], RetryPolicy(attempts=1))
        st = d.stats()["ops"]
        assert (st.sent, st.dropped) == (0, 1) and "HTTP 302" in st.last_error and len(h.requests) == 1
        d.stop(2)
    finally:
        h.close()


def test_unreachable_webhook_is_dropped_after_the_attempts_and_counted() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    d = deliver([WebhookNotifier("ops", url, timeout=2)], [alert(1)], RetryPolicy(attempts=3, base=0.01))
    st = d.stats()["ops"]
    assert (st.sent, st.failed, st.dropped, st.queued) == (0, 3, 1, 0)
    assert "refused" in st.last_error.lower()
    d.stop(2)


def test_webhook_that_never_answers_times_out() -> None:
    release = threading.Event()
    h = Hook(release=release)
    try:
        d = deliver([WebhookNotifier("ops", h.url, timeout=0.3)], [alert(1)], RetryPolicy(attempts=1))
        st = d.stats()["ops"]
        assert (st.sent, st.failed, st.dropped) == (0, 1, 1) and "timed out" in st.last_error
        d.stop(2)
    finally:
        release.set()
        h.close()


def test_a_slow_receiver_blocks_neither_the_manager_nor_other_receivers() -> None:
    release = threading.Event()
    slow_hook = Hook(release=release)
    fast = Recorder("fast")
    try:
        d = Dispatcher([WebhookNotifier("slow", slow_hook.url, timeout=10), fast], group_wait=0)
        d.alert_changed(alert(1), T0)
        started = time.monotonic()
        assert len(d.due(T0)) == 2
        assert time.monotonic() - started < 0.5  # due() only queues
        deadline = time.monotonic() + 5
        while not fast.got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(fast.got) == 1
        assert d.stats()["slow"].queued == 1 and d.stats()["slow"].sent == 0
        release.set()
        assert d.wait_idle(10)
        assert d.stats()["slow"].sent == 1
        d.stop(2)
    finally:
        release.set()
        slow_hook.close()


def test_a_full_queue_drops_and_counts() -> None:
    block = threading.Event()
    rec = Recorder("stuck", block=block)
    d = Dispatcher([rec], group_wait=0, queue_size=1)
    for i in range(3):  # three groups: one being sent, one queued, one dropped
        d.alert_changed(alert(i, host=f"h{i}"), T0)
    assert len(d.due(T0)) == 3
    deadline = time.monotonic() + 5
    while d.stats()["stuck"].dropped == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    block.set()
    assert d.wait_idle(5)
    st = d.stats()["stuck"]
    # The worker may take the first before the third arrives: 1 or 2 delivered, the rest dropped.
    assert st.sent + st.dropped == 3 and st.dropped >= 1 and st.queued == 0
    d.stop(2)


def test_stop_drops_what_cannot_be_delivered_in_time() -> None:
    block = threading.Event()
    d = Dispatcher([Recorder("stuck", block=block)], group_wait=0)
    d.alert_changed(alert(1), T0)
    d.alert_changed(alert(2, host="web2"), T0)
    d.due(T0)
    assert d.stop(0.2) is False
    block.set()  # the send in progress finishes; the queued one is dropped
    assert d.wait_idle(5)
    st = d.stats()["stuck"]
    assert (st.sent, st.dropped, st.queued) == (1, 1, 0)
    d.alert_changed(alert(3, host="web3"), T0 + 3600 * S)
    d.due(T0 + 3600 * S)  # after stop: counted as dropped, never stuck in a queue
    st = d.stats()["stuck"]
    assert (st.dropped, st.queued, st.last_error) == (2, 0, "dispatcher stopped")


def test_send_now_ignores_group_wait() -> None:
    d = Dispatcher([Recorder()], group_wait=3600)
    d.alert_changed(alert(1), T0)
    assert d.due(T0 + S) == []
    (n,) = d.send_now(T0 + S)
    assert ids(n) == [1]
    assert d.send_now(T0 + 2 * S) == []  # nothing changed since


def test_retry_backoff_doubles_up_to_the_cap() -> None:
    assert [RetryPolicy(base=1, cap=60).delay(i) for i in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)
    # Real waits between attempts: 3 attempts with base 0.1 s take at least 0.1 + 0.2 s.
    started = time.monotonic()
    deliver([JsonFileNotifier("f", "/nonexistent-dir/x.jsonl")], [alert(1)], RetryPolicy(3, 0.1, 1.0)).stop(1)
    assert time.monotonic() - started >= 0.3


# --- email ---------------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd
        self.envelopes.append(envelope)
        return "250 OK"

    def message(self, i: int = 0) -> Message:
        return email.message_from_bytes(self.envelopes[i].content)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    c = Controller(box, hostname="127.0.0.1", port=port)
    c.start()
    yield box, port
    c.stop()


def test_email_subject_body_and_recipients(smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    mailer = EmailNotifier("mail", "127.0.0.1", "warden@example.org", ["ops@example.org", "dba@example.org"],
                           port=port)
    d = deliver([mailer], [alert(1, summary="Disk / on web1 is 95% full", mount="/"),
                           alert(2, summary="Disk /var on web1 is 91% full", mount="/var")])
    assert d.stats()["mail"].sent == 1
    (env,) = box.envelopes
    assert env.mail_from == "warden@example.org"
    assert env.rcpt_tos == ["ops@example.org", "dba@example.org"]
    msg = box.message()
    assert msg["Subject"] == "[FIRING:2] disk_full host=web1"
    assert msg["From"] == "warden@example.org" and msg["To"] == "ops@example.org, dba@example.org"
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@example.org>")
    text = msg.get_payload(decode=True).decode()
    assert "Disk / on web1 is 95% full" in text and "Disk /var on web1 is 91% full" in text
    assert "since 2023-11-14T22:13:20Z" in text and "mount=/var" in text
    d.stop(2)


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_email_starttls_and_login(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"warden", b"pw")
        return AuthResult(success=ok, handled=False)

    box, port = Mailbox(), free_port()
    c = Controller(box, hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True,
                   authenticator=authenticator, auth_required=True)
    c.start()
    try:
        good = EmailNotifier("good", "127.0.0.1", "w@example.org", ["ops@example.org"], port=port,
                             security="starttls", username="warden", password="pw", ca_file=str(cert))
        bad = EmailNotifier("bad", "127.0.0.1", "w@example.org", ["ops@example.org"], port=port,
                            security="starttls", username="warden", password="nope", ca_file=str(cert))
        d = deliver([good, bad], [alert(1)], RetryPolicy(attempts=2, base=0.01))
        assert d.stats()["good"].sent == 1 and len(box.envelopes) == 1
        st = d.stats()["bad"]
        assert (st.sent, st.failed, st.dropped) == (0, 2, 1) and "Authentication" in st.last_error
        d.stop(2)
    finally:
        c.stop()


# --- JSON lines --------------------------------------------------------------------------


def test_jsonfile_appends_one_line_per_notification_0600(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    d = Dispatcher([JsonFileNotifier("file", path)], group_wait=0, group_interval=10, retry=FAST)
    d.alert_changed(alert(1), T0)
    d.due(T0)
    d.alert_changed(alert(1, state="resolved"), T0 + S)
    d.due(T0 + 10 * S)
    assert d.wait_idle(5)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["firing", "resolved"]
    first = json.loads(lines[0])
    assert first["version"] == "4" and first["alerts"][0]["id"] == 1 and first["time"].endswith("Z")
    assert os.stat(path).st_mode & 0o777 == 0o600
    d.stop(2)


def test_jsonfile_write_failure_is_a_send_failure(tmp_path: Path) -> None:
    d = deliver([JsonFileNotifier("file", tmp_path / "missing-dir" / "alerts.jsonl")], [alert(1)])
    st = d.stats()["file"]
    assert (st.sent, st.failed, st.dropped) == (0, 3, 1) and "No such file" in st.last_error
    d.stop(2)


# --- configuration -----------------------------------------------------------------------


def test_config_full_mapping_builds_a_dispatcher(tmp_path: Path) -> None:
    cfg = from_mapping({
        "group_by": ["alertname"], "group_wait": "5s", "group_interval": "2m", "repeat_interval": "1h",
        "webhooks": [{"name": "chat", "url": "https://chat.example/hook", "secret": "x", "timeout": "3s",
                      "min_severity": "warning", "match": {"team": {"regex": "ops|db"}}}],
        "email": [{"name": "oncall", "host": "smtp.example", "security": "starttls", "username": "u",
                   "password": "p", "from": "warden@example.org", "to": ["oncall@example.org"]}],
        "files": [{"path": str(tmp_path / "a.jsonl")}],
        "retry": {"attempts": 3, "base": "500ms", "cap": "10s"},
        "inhibit": [{"source": {"alertname": "site_down"}, "equal": ["site"]}],
    })
    assert cfg.group_by == ("alertname",) and cfg.group_wait == 5 and cfg.group_interval == 120
    assert cfg.repeat_interval == 3600 and cfg.retry == RetryPolicy(3, 0.5, 10.0)
    assert cfg.email[0].port == 587 and cfg.webhooks[0].timeout == 3
    assert cfg.webhooks[0].route.match({"team": "db"}) and not cfg.webhooks[0].route.match({"team": "web"})
    assert cfg.files[0].name == "file1"
    (rule,) = cfg.inhibit
    assert rule.source({"alertname": "site_down"}) and rule.equal == ("site",) and not rule.target
    d = build_dispatcher(cfg)
    assert [r.name for r in d.receivers] == ["chat", "oncall", "file1"]
    assert [r.min_severity for r in d.receivers] == ["warning", "info", "info"]
    assert d.group_wait_ns == 5 * S and d.retry.attempts == 3
    assert "p" not in repr(cfg.email[0]).split("password")[-1][:5]  # the password is not in repr


def test_config_defaults_and_default_inhibition() -> None:
    cfg = from_mapping({})
    assert cfg.group_by == ("alertname", "host") and cfg.group_wait == 10
    assert cfg.group_interval == 60 and cfg.repeat_interval == 4 * 3600
    assert cfg.retry == RetryPolicy(5, 1.0, 60.0) and cfg.inhibit == DEFAULT_INHIBIT
    assert from_mapping({"inhibit": []}).inhibit == ()


@pytest.mark.parametrize(("mapping", "message"), [
    ({"grouping": ["host"]}, r"alerts: unknown key 'grouping'"),
    ({"group_wait": "10 parsecs"}, r"alerts: group_wait: invalid duration"),
    ({"repeat_interval": "0"}, r"more than 0"),
    ({"webhooks": [{"url": "https://x.example", "secrte": "k"}]},
     r"alerts.webhooks\[0\]: unknown key 'secrte'"),
    ({"webhooks": [{"url": "ftp://x.example/t0ken"}]}, r"http:// or https://, not 'ftp://x.example'"),
    ({"webhooks": [{"name": "a"}]}, r"'url' is required"),
    ({"webhooks": [{"url": "https://x", "min_severity": "urgent"}]}, r"min_severity must be one of"),
    ({"webhooks": [{"url": "https://x", "match": {"h": {"regex": "(a*)*"}}}]},
     r"match: label 'h'.*backtrack"),
    ({"webhooks": [{"name": "a", "url": "https://x"}], "files": [{"name": "a", "path": "/tmp/x"}]},
     r"name 'a' is empty or used twice"),
    ({"email": [{"host": "h", "from": "w@x.org", "to": []}]}, r"'to' not empty"),
    ({"email": [{"host": "h", "from": "w@x.org", "to": ["o@x.org"], "security": "tls"}]},
     r"security must be one of none, starttls, ssl"),
    ({"email": [{"host": "h", "from": "w@x.org", "to": ["o@x.org"], "port": 70000}]}, r"port must be"),
    ({"email": [{"host": "h", "from": "w@x.org", "to": ["o@x.org"], "password": "p"}]}, r"needs a username"),
    ({"retry": {"attempts": 0}}, r"attempts must be"),
    ({"retry": {"tries": 3}}, r"alerts.retry: unknown key 'tries'"),
    ({"inhibit": [{"target": {}}]}, r"alerts.inhibit\[0\]: 'source' is required"),
    ({"inhibit": [{"source": {}}]}, r"source must not be empty"),
    ({"inhibit": [{"source": {"a": "b"}, "equal": "host"}]}, r"equal"),
    ({"files": "x"}, r"'files' must be a list"),
])
def test_config_errors_name_the_problem(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_mapping(mapping)


# --- end to end: manager → dispatcher built from config → file -------------------------------


def test_manager_to_jsonl_through_the_configured_dispatcher(tmp_path: Path) -> None:
    out = tmp_path / "notifications.jsonl"
    cfg = from_mapping({"group_wait": "10s", "files": [{"name": "log", "path": str(out)}]})
    d = build_dispatcher(cfg)
    store = AlertStore(tmp_path / "alerts.db")
    mgr = AlertManager(store, d, cfg.inhibit)
    labels = {"alertname": "disk_full", "severity": "warning", "host": "web1"}
    mgr.apply([Transition("disk_full", fingerprint(labels), labels, {"summary": "full"}, "firing", T0, T0,
                          97.0, True)], T0)
    mgr.tick(T0 + 10 * S)
    assert d.wait_idle(5)
    (line,) = out.read_text().splitlines()
    doc = json.loads(line)
    assert doc["receiver"] == "log" and doc["alerts"][0]["labels"] == labels
    assert d.stop(2)
    store.close()
