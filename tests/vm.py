"""A real VictoriaMetrics server for tests: Debian's `victoria-metrics` package speaks the
InfluxDB v2 write API (/api/v2/write) that influxdb-client uses.

Behaviour of VictoriaMetrics 1.79 worth knowing when reading data back:
- measurement `m` with field `value` becomes metric `m_value` (`{measurement}_{field}`);
  tags become labels; org, bucket and token are ignored.
- timestamps are stored with millisecond precision (ns are truncated, not rounded).
- values are stored as decimals: large or long values may come back with only ~13
  significant digits (1000000000089.0001 -> 1000000000089).
- freshly written points become visible to /api/v1/export only after up to ~1-2 s, even
  after /internal/force_flush, so `export()` can poll for an expected point count.
- no deduplication by default: a point written twice is exported twice.
- malformed lines and points outside the retention period (default 1 month) are silently
  skipped: the write still answers 204.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BINARY = "victoria-metrics"
_apt_updated = False


def ensure_installed() -> str:
    """Path of the victoria-metrics binary, installing Debian's package if needed (CI starts fresh)."""
    global _apt_updated
    path = shutil.which(BINARY) or next((p for p in (f"/usr/bin/{BINARY}",) if os.path.exists(p)), None)
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(f"{BINARY} is not installed and cannot be installed here: run `apt-get install {BINARY}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = ([] if _apt_updated else [["apt-get", "update"]]) + [["apt-get", "install", "-y", BINARY]]
    for cmd in steps:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        _apt_updated = _apt_updated or cmd[1] == "update"
    path = shutil.which(BINARY)
    if not path:
        pytest.fail(f"installed {BINARY} but the binary is not on PATH")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VictoriaMetrics:
    def __init__(self, storage_dir: Path | None = None) -> None:
        self.binary = ensure_installed()
        self._own_dir = storage_dir is None
        self.storage_dir = Path(tempfile.mkdtemp(prefix="warden-vm-")) if storage_dir is None else storage_dir
        self.port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.storage_dir.parent / f"{self.storage_dir.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        assert not self.running
        cmd = [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.storage_dir}",
            "-search.latencyOffset=0s",  # make just-written points queryable
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"victoria-metrics did not become healthy in {timeout}s: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (VM flushes its data to disk), then SIGKILL if it does not exit in time."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        """Stop if running, then start again on the same port and storage dir."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.storage_dir, ignore_errors=True)
            self._log.unlink(missing_ok=True)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self._log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def export(
        self, match: str, expect_points: int | None = None, timeout: float = 10.0, settle: float = 0.0
    ) -> list[dict]:
        """Series matching the selector, as /api/v1/export JSON lines.

        Points take a moment to become visible; with `expect_points`, poll until at least that
        many points are exported (or `timeout` passes) so callers do not sleep blindly. With
        `settle`, read once more after that many seconds, so that an exactly-once check also
        sees duplicates that were still on their way.
        """
        deadline = time.monotonic() + timeout
        while True:
            series = self._export_once(match)
            got = sum(len(s["values"]) for s in series)
            if expect_points is None or got >= expect_points or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if settle:
            time.sleep(settle)
            series = self._export_once(match)
        return series

    def _export_once(self, match: str) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass
        query = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=30) as resp:
            return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


@pytest.fixture
def victoria_metrics() -> Iterator[VictoriaMetrics]:
    vm = VictoriaMetrics()
    vm.start()
    try:
        yield vm
    finally:
        vm.cleanup()
