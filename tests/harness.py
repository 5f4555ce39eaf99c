"""Real processes for end-to-end tests: a collector and agents started through their
console entry points, on free loopback ports, each in its own directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except RuntimeError:
            raise
        except Exception as exc:  # keep polling; report the last failure on timeout
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return str(v)


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class CollectorProc:
    def __init__(self, root: Path, **sections: dict[str, Any]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.enroll_port, self.report_port, self.http_port = free_port(), free_port(), free_port()
        base: dict[str, dict[str, Any]] = {
            "collector": {"data_dir": str(root / "data"),
                          "enroll_listen": f"127.0.0.1:{self.enroll_port}",
                          "report_listen": f"127.0.0.1:{self.report_port}",
                          "http_listen": f"127.0.0.1:{self.http_port}",
                          "heartbeat": "2s"},
            "tls": {"sans": ["localhost", "127.0.0.1"]},
            # The dashboard's default port is fixed (4513): tests that want it pass a free one.
            "web": {"listen": ""},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        self.config = write_toml(root / "collector.toml", base)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "collector.log"

    @property
    def enroll_address(self) -> str:
        return f"127.0.0.1:{self.enroll_port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PY, "-m", "warden.collector.cli", "--config", str(self.config), *args],
                              capture_output=True, text=True, check=check, timeout=60)

    def start(self, accept: tuple[str, ...] = ("ok",)) -> CollectorProc:
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [PY, "-m", "warden.collector.cli", "serve", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._healthy(accept), 30, what="collector health")
        return self

    def _healthy(self, accept: tuple[str, ...] = ("ok",)) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise RuntimeError(f"collector exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        return self.get("/healthz")["status"] in accept

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            return json.loads(r.read())

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def counter(self, name: str) -> float:
        return float(self.get("/healthz")["counters"].get(name, 0))

    def token(self, ttl: str = "10m", labels: str = "") -> str:
        args = ["token", "create", "--quiet", "--ttl", ttl]
        if labels:
            args += ["--labels", labels]
        return self.cli(*args).stdout.strip()

    def host(self, host_id: str) -> dict[str, Any] | None:
        try:
            return self.get(f"/api/v1/hosts/{host_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


class AgentProc:
    def __init__(self, root: Path, collector: CollectorProc, host_id: str,
                 interval: float = 1.0, **sections: dict[str, Any]) -> None:
        self.root, self.collector, self.host_id = root, collector, host_id
        root.mkdir(parents=True, exist_ok=True)
        base: dict[str, dict[str, Any]] = {
            "agent": {"state_dir": str(root / "state")},
            "transport": {"backoff_initial_seconds": 0.1, "backoff_max_seconds": 1.0,
                          "heartbeat_seconds": 2.0},
            "probes.system": {"interval_seconds": interval},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        self.config = write_toml(root / "agent.toml", base)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "agent.log"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PY, "-m", "warden.agent.cli", *args, "--config", str(self.config)],
                              capture_output=True, text=True, check=check, timeout=60)

    def enroll(self, token: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.cli("enroll", "--collector", self.collector.enroll_address,
                        "--token", token or self.collector.token(), "--host-id", self.host_id)

    def start(self) -> AgentProc:
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([PY, "-m", "warden.agent.cli", "run", "--config", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
