"""Shared machinery of the fault tests: enrolled simulated agents (tests/faults/fleet.py) run as
a separate process, and exact end-to-end counting of what the collector stored."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness import PY, CollectorProc, wait_for

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class AgentDir:
    host_id: str
    state_dir: Path
    spool_path: Path

    def spec(self) -> dict[str, str]:
        return {"host_id": self.host_id, "state_dir": str(self.state_dir), "spool_path": str(self.spool_path)}


def enroll_agents(collector: CollectorProc, root: Path, hosts: list[str], *, rpc: bool = True,
                  report_port: int | None = None, cert_seconds: int = 30 * 86400) -> list[AgentDir]:
    """Enrolled agent state dirs. rpc=True: the agent's own `enroll` through a real Enroll RPC
    with a fresh token each; False: keys, CSRs and certificates made in-process with the
    collector's own CA and registered in its store (how 1,000 agents enroll in seconds).
    `report_port` points the agents somewhere else than the collector (a proxy)."""
    from warden.agent import identity as ident

    out = []
    if rpc:
        from warden.agent.enroll import enroll

        for h in hosts:
            state = root / h / "state"
            enroll(collector.enroll_address, collector.token(), state, host_id=h)
            out.append(AgentDir(h, state, root / h / "spool.db"))
    else:
        from warden.agent.enroll import _key_and_csr
        from warden.collector.pki import CollectorPKI
        from warden.collector.store.sqlite import SqliteStore

        data = collector.root / "data"
        ca_pem = (data / "tls" / "ca.crt").read_bytes()
        pki = CollectorPKI.load_or_create(data / "tls", ["localhost", "127.0.0.1"])
        store = SqliteStore(data / "warden.db")  # shared with the running collector (WAL)
        now = time.time_ns()
        try:
            for h in hosts:
                key, csr = _key_and_csr(h)
                issued = pki.sign_csr(csr, h, cert_seconds)
                nb, na = int(issued.not_before.timestamp()), int(issued.not_after.timestamp())
                store.enroll_host(h, h, {"fleet": "1"}, issued.serial_hex, nb * 10**9, na * 10**9, now)
                state = root / h / "state"
                identity = ident.Identity(h, "127.0.0.1", collector.report_port, {"fleet": "1"}, nb, na)
                ident.save(state, identity, key, issued.pem, ca_pem)
                out.append(AgentDir(h, state, root / h / "spool.db"))
        finally:
            store.close()
    if report_port is not None:
        for a in out:
            point_at(a.state_dir, report_port)
    return out


def point_at(state_dir: Path, report_port: int, host: str = "127.0.0.1") -> None:
    """Make the agent report to host:report_port (e.g. through a proxy) from its next session."""
    p = state_dir / "identity.json"
    data = json.loads(p.read_text())
    data["collector_host"], data["report_port"] = host, report_port
    p.write_text(json.dumps(data, indent=2))


class Fleet:
    """tests/faults/fleet.py as a subprocess: start it, read its progress, wait for its result."""

    def __init__(self, root: Path, agents: list[AgentDir], env: dict[str, str] | None = None,
                 prefix: list[str] | None = None, **options: Any) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.status_file = root / "status.json"
        self.stop_file = root / "stop"
        self.spec = {"agents": [a.spec() for a in agents], "status_file": str(self.status_file),
                     "stop_file": str(self.stop_file), **options}
        self.spec_file = root / "fleet.json"
        self.spec_file.write_text(json.dumps(self.spec))
        self.log = root / "fleet.log"
        self.env = env
        self.prefix = prefix or []
        self.proc: subprocess.Popen[bytes] | None = None
        self._result: dict[str, Any] | None = None

    def start(self) -> Fleet:
        self.stop_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen([*self.prefix, PY, "-m", "tests.faults.fleet", str(self.spec_file)],
                                     stdout=subprocess.PIPE, stderr=open(self.log, "ab"),  # noqa: SIM115
                                     cwd=ROOT, env={**os.environ, **(self.env or {})})
        return self

    def status(self) -> dict[str, Any]:
        if self.proc is not None and self.proc.poll() is not None and self.proc.returncode not in (0, 1):
            raise RuntimeError(f"fleet exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
        try:
            return json.loads(self.status_file.read_text())
        except (FileNotFoundError, ValueError):
            return {"phase": "starting", "agents": []}

    def agents(self) -> list[dict[str, Any]]:
        return self.status()["agents"]

    def total(self, key: str) -> int:
        return sum(int(a[key]) for a in self.agents())

    def wait_total(self, key: str, at_least: int, timeout: float = 30) -> int:
        return wait_for(lambda: (n := self.total(key)) >= at_least and n, timeout,
                        what=f"fleet {key} >= {at_least}")

    def stop_producing(self) -> None:
        self.stop_file.touch()

    def result(self, timeout: float = 120) -> dict[str, Any]:
        """Stop producing, wait for the drain and the final report."""
        if self._result is None:
            assert self.proc is not None
            self.stop_producing()
            try:
                out, _ = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"fleet did not finish: {self.log.read_text()[-3000:]}") from None
            lines = out.decode().strip().splitlines()
            if not lines:
                raise AssertionError(f"fleet printed nothing (exit {self.proc.returncode}): "
                                     f"{self.log.read_text()[-3000:]}")
            self._result = json.loads(lines[-1])
        return self._result

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# --- counting what the collector stored --------------------------------------------------------

def _db(collector: CollectorProc) -> sqlite3.Connection:
    db = sqlite3.connect(collector.root / "data" / "warden.db", timeout=30)
    db.execute("PRAGMA busy_timeout=30000")
    return db


def stored_numbers(collector: CollectorProc, host_id: str) -> list[int]:
    """The `n` of every stored test.numbered event of `host_id`, sorted (duplicates kept)."""
    db = _db(collector)
    try:
        rows = db.execute("SELECT json_extract(fields, '$.n') FROM events WHERE host_id = ? AND kind = ?",
                          (host_id, "test.numbered")).fetchall()
    finally:
        db.close()
    return sorted(int(r[0]) for r in rows)


def event_summary(collector: CollectorProc) -> dict[str, tuple[int, int, int, int]]:
    """host -> (rows, distinct n, min n, max n) of the stored test.numbered events."""
    db = _db(collector)
    try:
        rows = db.execute(
            "SELECT host_id, COUNT(*), COUNT(DISTINCT json_extract(fields, '$.n')), "
            "MIN(json_extract(fields, '$.n')), MAX(json_extract(fields, '$.n')) FROM events "
            "WHERE kind = 'test.numbered' GROUP BY host_id").fetchall()
    finally:
        db.close()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def sample_counts(collector: CollectorProc, prefix: str = "fleet_") -> dict[str, int]:
    """host -> number of stored samples of the fleet's metric series."""
    db = _db(collector)
    try:
        rows = db.execute("SELECT s.host_id, COUNT(*) FROM samples JOIN series s ON s.id = samples.series_id "
                          "WHERE s.name LIKE ? GROUP BY s.host_id", (prefix + "%",)).fetchall()
    finally:
        db.close()
    return dict(rows)


def committed_seq(collector: CollectorProc, host_id: str) -> int:
    db = _db(collector)
    try:
        row = db.execute("SELECT MAX(committed_seq) FROM spools WHERE host_id = ?", (host_id,)).fetchone()
    finally:
        db.close()
    return int(row[0] or 0)


def exactly_once(numbers: list[int], expected: range | list[int]) -> tuple[list[int], list[int]]:
    """(missing, duplicated) of `numbers` against `expected`."""
    have = Counter(numbers)
    missing = [n for n in expected if n not in have]
    dup = sorted(n for n, c in have.items() if c > 1)
    return missing, dup


def counter_sum(collector: CollectorProc, name: str) -> float:
    counters = collector.get("/healthz")["counters"]
    return sum(v for k, v in counters.items() if k == name or k.startswith(name + "{"))


# --- a hand-driven agent for a few exact records ---------------------------------------------

async def report(state_dir: Path, port: int, spool_id: str, first_seq: int, recs: list[Any]) -> int:
    """Send `recs` (warden.v1 Record messages) as one batch over a Report stream authenticated
    by the agent identity in `state_dir`; returns the committed seq acknowledged."""
    import grpc

    from warden.agent import identity as ident
    from warden.v1 import collector_pb2, collector_pb2_grpc

    ca, key, cert = ident.credentials(state_dir)
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as ch:
        call = collector_pb2_grpc.CollectorStub(ch).Report()
        await call.write(collector_pb2.ReportRequest(hello=collector_pb2.Hello(spool_id=spool_id)))
        welcome = await call.read()
        assert welcome.WhichOneof("msg") == "welcome", welcome
        batch = collector_pb2.Batch(first_seq=first_seq, last_seq=first_seq + len(recs) - 1)
        batch.records.extend(recs)
        await call.write(collector_pb2.ReportRequest(batch=batch))
        while True:
            resp = await call.read()
            if resp.WhichOneof("msg") == "ack":
                await call.done_writing()
                return int(resp.ack.committed_seq)


class Locker:
    """Another process holding a write transaction (BEGIN IMMEDIATE) on an SQLite database."""

    SCRIPT = ("import sqlite3, sys, time\n"
              "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)\n"
              "db.execute('BEGIN IMMEDIATE')\n"
              "print('locked', flush=True)\n"
              "sys.stdin.readline()\n"
              "db.execute('COMMIT')\n"
              "print('released', flush=True)\n")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen[str] | None = None
        self.locked_at = self.released_at = 0.0

    def lock(self) -> Locker:
        self.proc = subprocess.Popen([PY, "-c", self.SCRIPT, str(self.path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "locked", line
        self.locked_at = time.monotonic()
        return self

    def release(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "released"
        self.proc.wait(10)
        self.released_at = time.monotonic()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
