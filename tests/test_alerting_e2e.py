"""Alerting end to end, with real processes: an agent follows an auth log, the collector's
default rule pack flags a brute force, and the alert reaches the feed (gRPC over mTLS,
the CLI), a signed webhook on loopback and a JSON-lines file; operators acknowledge it;
rule reloads keep the last good rules when a file breaks; the incident report tells
the story."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.harness import PY, AgentProc, CollectorProc, wait_for
from warden.agent.probes import registered
from warden.collector.alerts.webhook import verify_signature
from warden.v1 import alerts_pb2, alerts_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-for-tests"


class Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(({k: v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook():
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture
def setup(tmp_path: Path, webhook: str, request: pytest.FixtureRequest):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("tests"))
    jsonl = tmp_path / "alerts.jsonl"
    watch = "sighup_only" not in request.keywords
    collector = CollectorProc(tmp_path / "collector",
                              rules={"dir": str(rules), "tick": "1s", "watch": watch})
    # [alerts] holds arrays of tables: append them to the generated config by hand.
    with open(collector.config, "a") as f:
        f.write(f'\n[alerts]\ngroup_wait = "0s"\ngroup_interval = "1s"\n'
                f'[[alerts.webhooks]]\nname = "ops"\nurl = "{webhook}"\nsecret = "{SECRET}"\n'
                f'[[alerts.files]]\nname = "log"\npath = "{jsonl}"\n')
    collector.start()
    auth = tmp_path / "auth.log"
    auth.write_text("")
    disabled = {f"probes.{name}": {"enabled": False} for name in registered()
                if name not in ("logs", "system")}
    agent = AgentProc(tmp_path / "agent", collector, "web1", **disabled, **{"probes.logs": {
        "interval_seconds": 0.2, "paths": [str(auth)], "journal": "off", "wtmp": "", "btmp": "",
        "start_at": "beginning"}})
    agent.enroll()
    agent.start()
    wait_for(lambda: collector.host("web1"), 30, what="agent reporting")
    yield collector, agent, auth, rules, jsonl, tmp_path
    agent.stop()
    collector.stop()


def _syslog(msg: str, pid: int = 4242) -> str:
    return f"{time.strftime('%b %e %H:%M:%S', time.localtime())} web1 sshd[{pid}]: {msg}\n"


def _operator_channel(collector: CollectorProc, name: str, tmp: Path) -> grpc.Channel:
    out = tmp / f"op-{name}"
    collector.cli("operator", "cert", name, "--out", str(out))
    creds = grpc.ssl_channel_credentials((out / "ca.crt").read_bytes(), (out / f"{name}.key").read_bytes(),
                                         (out / f"{name}.crt").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{collector.report_port}", creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def _firing(collector: CollectorProc, rule: str) -> list[dict[str, Any]]:
    return [a for a in collector.get("/api/v1/alerts")["alerts"]
            if a["rule"] == rule and a["state"] == "firing"]


def test_brute_force_reaches_feed_webhook_file_and_is_acknowledged(setup) -> None:
    collector, agent, auth, _, jsonl, tmp = setup
    t0 = time.monotonic()
    with open(auth, "a") as f:
        # One mistyped password from a colleague: no alert.
        f.write(_syslog("Failed password for alice from 198.51.100.4 port 40022 ssh2"))
        f.write(_syslog("Accepted password for alice from 198.51.100.4 port 40023 ssh2"))
        for i in range(6):
            f.write(_syslog(f"Failed password for root from 203.0.113.9 port {50000 + i} ssh2", 5000 + i))
    alerts = wait_for(lambda: _firing(collector, "ssh_brute_force"), 30, what="brute force alert")
    latency = time.monotonic() - t0
    assert len(alerts) == 1, alerts
    a = alerts[0]
    assert a["labels"]["src_ip"] == "203.0.113.9" and a["labels"]["host"] == "web1"
    assert "failed logins from 203.0.113.9" in a["annotations"]["summary"]
    assert latency < 10, latency
    assert not _firing(collector, "login_after_failures")  # alice: 1 failure then success

    # The webhook got it, signed; the JSON-lines file too.
    def hook_for(rule: str) -> list[dict[str, Any]]:
        out = []
        for headers, body in Hook.received:
            sig = headers["X-Warden-Signature"]
            assert verify_signature(SECRET, headers["X-Warden-Timestamp"], body, sig)
            assert not verify_signature("wrong", headers["X-Warden-Timestamp"], body, sig)
            payload = json.loads(body)
            out += [x for x in payload["alerts"] if x["labels"]["alertname"] == rule]
        return out

    sent = wait_for(lambda: hook_for("ssh_brute_force"), 15, what="webhook delivery")
    assert sent[0]["status"] == "firing" and sent[0]["labels"]["src_ip"] == "203.0.113.9"
    def in_file() -> bool:
        lines = jsonl.read_text().splitlines() if jsonl.exists() else []
        return any(x["labels"]["alertname"] == "ssh_brute_force"
                   for ln in lines for x in json.loads(ln)["alerts"])

    wait_for(in_file, 15, what="jsonl line")

    # The CLI lists it (creating its operator certificate on first use) and acknowledges it.
    out = collector.cli("alerts", "--json").stdout
    listed = [json.loads(x) for x in out.splitlines()]
    assert any(x["rule"] == "ssh_brute_force" and x["state"] == "firing" for x in listed), out
    collector.cli("alerts", "ack", str(a["id"]), "--comment", "blocking 203.0.113.9 at the firewall")
    acked = collector.get(f"/api/v1/alerts/{a['id']}")
    assert acked["alert"]["acknowledged"]["by"] == "cli"
    whats = [h["what"] for h in acked["history"]]
    assert whats[0] == "firing" and "notified" in whats and whats[-1] == "acknowledged", whats

    # Following the feed from the start replays the whole story in order.
    follow = subprocess.Popen([PY, "-m", "warden.collector.cli", "--config", str(collector.config), "alerts",
                               "--follow", "--all", "--json"], stdout=subprocess.PIPE, text=True)
    seen: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = follow.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            seen.append(json.loads(line))
            if any(e.get("what") == "acknowledged" for e in seen):
                break
    finally:
        follow.kill()
        follow.wait(5)
    positions = [e["position"] for e in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    ours = [e["what"] for e in seen if e.get("id") == a["id"]]
    assert ours[0] == "firing" and "acknowledged" in ours, seen

    # The incident report tells it: the raw lines, the acknowledgement.
    report = collector.cli("incident", "report", str(a["id"])).stdout
    assert report.startswith("# Incident report: web1: ")
    assert "Failed password for root from 203.0.113.9" in report
    assert "acknowledged by cli" in report
    assert "## Cause" in report and "## Impact" in report
    assert "| system_cpu_percent |" in report  # the host's metrics around the alert


def test_feed_resumes_after_position_and_refuses_agents(setup) -> None:
    collector, agent, auth, _, _, tmp = setup
    with open(auth, "a") as f:
        f.write(_syslog("Accepted password for root from 192.0.2.77 port 40000 ssh2"))
    wait_for(lambda: _firing(collector, "root_ssh_login"), 30, what="root login alert")
    ch = _operator_channel(collector, "alice", tmp)
    stub = alerts_pb2_grpc.AlertsStub(ch)
    stream = stub.WatchAlerts(alerts_pb2.WatchAlertsRequest(after_position=0), timeout=10)
    first = next(stream)
    stream.cancel()
    # Resuming after the first entry continues with the next, never repeats it.
    stream = stub.WatchAlerts(alerts_pb2.WatchAlertsRequest(after_position=first.position), timeout=10)
    with open(auth, "a") as f:
        f.write(_syslog("Accepted password for root from 192.0.2.78 port 40001 ssh2"))
    nxt = next(stream)
    stream.cancel()
    assert nxt.position > first.position
    # A label filter, and actions signed by the caller's certificate, not the payload.
    acked = stub.Acknowledge(alerts_pb2.AcknowledgeRequest(alert_id=first.alert.id, comment="mine"),
                             timeout=10)
    assert acked.acknowledged_by == "alice"
    sil = stub.CreateSilence(alerts_pb2.CreateSilenceRequest(
        matchers=[alerts_pb2.SilenceMatcher(label="alertname", value="root_ssh_login")],
        ends_unix_nano=time.time_ns() + 3600 * 10**9, comment="maintenance"), timeout=10)
    assert sil.author == "alice" and sil.active
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateSilence(alerts_pb2.CreateSilenceRequest(ends_unix_nano=time.time_ns() + 10**9), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stub.Acknowledge(alerts_pb2.AcknowledgeRequest(alert_id=999999), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    ch.close()

    # The agent's own certificate cannot read the fleet's alerts.
    state = agent.root / "state"
    pem = (state / "agent.pem").read_text()
    key = pem[pem.index("-----BEGIN"):pem.index("-----END", pem.index("PRIVATE KEY")) + 100]
    key = key[:key.index("-----", key.index("-----END") + 8) + 5]
    cert = pem[pem.index("-----BEGIN CERTIFICATE"):]
    creds = grpc.ssl_channel_credentials((state / "ca.crt").read_bytes(), key.encode(), cert.encode())
    with grpc.secure_channel(f"127.0.0.1:{collector.report_port}", creds,
                             options=[("grpc.ssl_target_name_override", "localhost")]) as agent_ch:
        with pytest.raises(grpc.RpcError) as err:
            alerts_pb2_grpc.AlertsStub(agent_ch).ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # A revoked operator is refused at once.
    collector.cli("operator", "revoke", "alice")
    ch = _operator_channel(collector, "bob", tmp)
    assert alerts_pb2_grpc.AlertsStub(ch).ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10)
    ch.close()
    out = tmp / "op-alice"
    creds = grpc.ssl_channel_credentials((out / "ca.crt").read_bytes(), (out / "alice.key").read_bytes(),
                                         (out / "alice.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{collector.report_port}", creds,
                             options=[("grpc.ssl_target_name_override", "localhost")]) as ch2:
        with pytest.raises(grpc.RpcError) as err:
            alerts_pb2_grpc.AlertsStub(ch2).ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.sighup_only
def test_broken_rules_keep_the_last_good_set_and_sighup_reloads(setup) -> None:
    collector, _, auth, rules, _, _ = setup
    assert collector.proc is not None
    status = collector.get("/api/v1/rules/status")
    assert status["last_reload_ok"] and status["loaded"] >= 30
    loaded = status["loaded"]
    (rules / "zz_broken.yml").write_text("rules:\n  - id: broken\n    kind: event\n    severity: warning\n"
                                         "    summary: x\n    match: {kind: auth.login}\n    treshold: 3\n")
    time.sleep(3)  # file watching is off in this test: nothing happens until SIGHUP
    assert collector.get("/api/v1/rules/status")["last_reload_ok"]
    collector.proc.send_signal(signal.SIGHUP)
    status = wait_for(lambda: (s := collector.get("/api/v1/rules/status")) and not s["last_reload_ok"]
                      and s, 15, what="failed reload noticed")
    assert "zz_broken.yml:7:" in status["last_error"] and "treshold" in status["last_error"]
    assert status["loaded"] == loaded
    assert collector.get("/healthz")["status"] == "degraded"
    # The last good rules still work.
    with open(auth, "a") as f:
        f.write(_syslog("Accepted password for root from 192.0.2.90 port 40000 ssh2"))
    wait_for(lambda: _firing(collector, "root_ssh_login"), 30, what="alert from the last good rules")
    # Fixed, plus a new rule file: picked up on SIGHUP.
    (rules / "zz_broken.yml").unlink()
    (rules / "zz_extra.yml").write_text(
        "rules:\n  - id: sudo_used\n    kind: event\n    severity: info\n"
        "    summary: '{{ user }} used sudo'\n    match: {kind: auth.sudo}\n")
    collector.proc.send_signal(signal.SIGHUP)
    status = wait_for(lambda: (s := collector.get("/api/v1/rules/status")) and s["loaded"] == loaded + 1
                      and s, 15, what="reload on SIGHUP")
    assert status["last_reload_ok"] and status["last_error"] == ""
    assert collector.get("/healthz")["status"] == "ok"
