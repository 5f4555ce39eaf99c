"""Operations: `warden-collector status`, structured (JSON) logs, and backup/restore of the
collector's state taken while agents report, restored into a fresh directory that the same
agents keep reporting to with their existing certificates."""

from __future__ import annotations

import json
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from tests.harness import AgentProc, CollectorProc, wait_for
from warden.agent.probes import registered
from warden.collector import backup


def _samples(c: CollectorProc) -> int:
    return int(c.get("/healthz")["store"]["samples"])


@pytest.fixture
def running(tmp_path: Path):
    c = CollectorProc(tmp_path / "collector", collector={"log_format": "json"})
    c.start()
    disabled = {f"probes.{n}": {"enabled": False} for n in registered() if n != "system"}
    a = AgentProc(tmp_path / "agent", c, "ops-host", interval=0.5, **disabled)
    a.enroll(c.token(labels="room=A"))
    a.start()
    wait_for(lambda: c.host("ops-host") and _samples(c) > 0, 30, what="first samples")
    yield c, a
    a.stop()
    c.stop()


def test_status_and_json_logs(running) -> None:
    c, _ = running
    out = c.cli("status")
    assert out.stdout.startswith("collector: ok")
    assert "streams      1 open" in out.stdout and "rules        37 from" in out.stdout
    as_json = json.loads(c.cli("status", "--json").stdout)
    assert as_json["status"] == "ok" and as_json["streams_active"] == 1
    lines = [json.loads(x) for x in c.log.read_text().splitlines() if x.startswith("{")]
    assert lines, "the collector logs JSON objects"
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(x["message"].startswith("collector up") for x in lines)
    c.stop()
    down = c.cli("status", check=False)
    assert down.returncode == 2 and "not reachable" in down.stderr


def test_backup_while_running_and_restore_into_a_new_directory(running, tmp_path: Path) -> None:
    c, a = running
    archive = tmp_path / "backups" / "collector.tar.gz"
    lower = _samples(c)
    out = c.cli("backup", "create", str(archive))  # while the agent reports every 0.5 s
    upper = _samples(c)
    assert "keep a copy off-site" in out.stdout
    assert archive.stat().st_mode & 0o777 == 0o600
    assert "OK" in c.cli("backup", "verify", str(archive)).stdout
    ca = (c.root / "data" / "tls" / "ca.crt").read_bytes()
    a.stop()  # until the restored collector has been counted
    c.stop()

    # A new collector from the backup alone: same CA, same hosts and certificates.
    data = tmp_path / "restored"
    r = CollectorProc(tmp_path / "collector2", collector={"data_dir": str(data)})
    assert "restored" in r.cli("backup", "restore", str(archive)).stdout
    assert (data / "tls" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (data / "tls" / "ca.crt").read_bytes() == ca
    # The agent is pointed at the new collector's address; its certificate was issued by the
    # restored CA and is registered in the restored store, so it is accepted as it is.
    r.config.write_text(r.config.read_text().replace(f"127.0.0.1:{r.report_port}",
                                                     f"127.0.0.1:{c.report_port}"))
    r.report_port = c.report_port
    r.start()
    try:
        host = r.host("ops-host")
        assert host is not None and host["host"]["labels"] == {"room": "A"}
        assert lower <= _samples(r) <= upper  # a consistent snapshot from during the backup
        before = _samples(r)
        a.start()
        wait_for(lambda: _samples(r) > before + 5, 30, what="the agent reporting to the restored collector")
        assert r.counter('warden_collector_rpcs_refused_total{reason="revoked_or_unknown"}') == 0
    finally:
        r.stop()


def test_damaged_or_foreign_backups_are_refused_and_nothing_is_written(running, tmp_path: Path) -> None:
    c, _ = running
    archive = tmp_path / "b.tar.gz"
    c.cli("backup", "create", str(archive))
    # Flip bytes inside one member: its digest no longer matches.
    work = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    (work / "tls" / "ca.crt").write_bytes((work / "tls" / "ca.crt").read_bytes().replace(b"A", b"B", 1))
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        for p in sorted(work.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(work).as_posix())
    target = tmp_path / "target"
    with pytest.raises(backup.BackupError, match="tls/ca.crt does not match its SHA-256"):
        backup.restore(bad, target)
    assert not target.exists() and not list(tmp_path.glob(".target.restore-*"))
    out = c.cli("backup", "restore", str(bad), "--data-dir", str(target), check=False)
    assert out.returncode == 2 and "does not match" in out.stderr
    # Not a backup at all.
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    with pytest.raises(backup.BackupError, match="unreadable backup"):
        backup.verify(junk)
    # A non-empty target is never overwritten.
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "warden.db").write_text("precious")
    with pytest.raises(backup.BackupError, match="is not empty"):
        backup.restore(archive, occupied)
    assert (occupied / "warden.db").read_text() == "precious"
    shutil.rmtree(work)


def test_agent_json_logs(tmp_path: Path) -> None:
    c = CollectorProc(tmp_path / "c")
    c.start()
    disabled = {f"probes.{n}": {"enabled": False} for n in registered() if n != "system"}
    a = AgentProc(tmp_path / "a", c, "json-agent", **disabled)
    a.enroll()
    import subprocess

    from tests.harness import PY
    log = open(a.log, "ab")  # noqa: SIM115
    proc = subprocess.Popen([PY, "-m", "warden.agent.cli", "run", "--config", str(a.config),
                             "--log-format", "json", "--log-level", "debug"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: c.host("json-agent"), 30, what="agent reporting")
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(15)
        c.stop()
    lines = [x for x in a.log.read_text().splitlines() if x.strip()]
    parsed = [json.loads(x) for x in lines if x.startswith("{")]
    assert parsed and {"time", "level", "logger", "message"} <= set(parsed[0])
    assert {p["level"] for p in parsed} & {"info", "debug"}
