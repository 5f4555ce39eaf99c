"""Follow the systemd journal through `journalctl -o json --follow`, resuming at a cursor.

journalctl runs for as long as the probe does; its output is read without blocking, only as
far as the caller's budget (the pipe fills and journalctl waits: back-pressure for free).
Each entry's `__CURSOR` is kept; `cursor` is the cursor of the last entry handed out, so a
restart with `--after-cursor` resumes exactly after it. If journalctl exits (journal files
vacuumed, journald restarted, a bad cursor), it is started again after a growing delay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Any

from warden.agent.probes._tools import DEFAULT_TOOL_PATH, run_tool

__all__ = ["Journal", "find_journalctl", "journal_present"]

log = logging.getLogger(__name__)

_READ = 256 * 1024
_MAX_STDERR = 4096
_RESTART_MAX_SECONDS = 60.0


def _tool_path() -> str:
    # PATH first (tests put a fake journalctl there), then the usual system directories,
    # which a service's PATH may lack.
    return os.pathsep.join(p for p in (os.environ.get("PATH", ""), DEFAULT_TOOL_PATH) if p)


def find_journalctl() -> str | None:
    return shutil.which("journalctl", path=_tool_path())


def journal_present(rootfs: Path) -> bool:
    """Whether the host keeps a journal at all (persistent or volatile)."""
    for d in ("var/log/journal", "run/log/journal"):
        base = rootfs / d
        with contextlib.suppress(OSError):
            for sub in base.iterdir():
                if sub.suffix == ".journal" or (sub.is_dir() and any(
                        f.name.endswith((".journal", ".journal~")) for f in sub.iterdir())):
                    return True
    return False


class Journal:
    def __init__(self, journalctl: str, *, rootfs: Path = Path("/"), from_start: bool = False) -> None:
        self.journalctl = journalctl
        self.rootfs = rootfs
        self.from_start = from_start  # without a cursor: the whole journal, or only new entries
        self.cursor: str | None = None  # of the last entry handed out
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._pending: deque[dict[str, Any]] = deque()
        self._stderr = b""
        self._restart_at = 0.0
        self._delay = 1.0
        self.errors: list[str] = []  # problems since the caller last looked
        self.invalid_lines = 0  # output lines that were not JSON objects with a cursor

    def restore(self, cursor: str | None) -> None:
        self.cursor = cursor or None

    def _argv(self) -> list[str]:
        argv = [self.journalctl, "-o", "json", "--follow", "--no-pager"]
        if self.rootfs != Path("/"):
            argv.append(f"--root={self.rootfs}")
        if self.cursor:
            argv.append(f"--after-cursor={self.cursor}")
        else:
            argv.append("--lines=all" if self.from_start else "--lines=0")
        return argv

    def _start(self, now: float) -> bool:
        if now < self._restart_at:
            return False
        if self.cursor is None and not self.from_start:
            self._seek_end()
        try:
            self._proc = subprocess.Popen(
                self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                close_fds=True, start_new_session=True,
                env={**os.environ, "LC_ALL": "C", "SYSTEMD_COLORS": "0"})
        except OSError as e:
            self._failed(now, f"journalctl: cannot start: {e.strerror}")
            return False
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for f in (self._proc.stdout, self._proc.stderr):
            flags = fcntl.fcntl(f.fileno(), fcntl.F_GETFL)
            fcntl.fcntl(f.fileno(), fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._buf = b""
        self._stderr = b""
        self._pending.clear()  # what was read ahead comes again after the cursor
        return True

    def _seek_end(self) -> None:
        """Take the cursor of the newest entry, so "only new entries" has a position from the
        start: a crash before the first new entry then still resumes without a gap."""
        argv = [self.journalctl, "-o", "json", "--lines=1", "--no-pager"]
        if self.rootfs != Path("/"):
            argv.append(f"--root={self.rootfs}")
        res = run_tool(argv, timeout=15, max_bytes=1024 * 1024, path=_tool_path())
        if not res.ok:
            return  # following starts with --lines=0; the error shows when it runs
        for line in reversed(res.stdout.splitlines()):
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and isinstance(entry.get("__CURSOR"), str):
                    self.cursor = entry["__CURSOR"]
                    return
        self.from_start = True  # an empty journal: everything in it from now on is new

    def _failed(self, now: float, msg: str) -> None:
        self.errors.append(msg)
        log.warning("%s", msg)
        self._restart_at = now + self._delay
        self._delay = min(self._delay * 2, _RESTART_MAX_SECONDS)

    def read(self, budget: int, now: float | None = None) -> list[dict[str, Any]]:
        """Up to `budget` entries, oldest first; `cursor` then names the last of them."""
        now = time.monotonic() if now is None else now
        if self._proc is None and not self._start(now):
            return []
        self._read_stderr()
        while len(self._pending) < budget and self._read_stdout():
            pass
        out = []
        while self._pending and len(out) < budget:
            entry = self._pending.popleft()
            self.cursor = entry["__CURSOR"]
            out.append(entry)
        if not out and self._proc is not None and self._proc.poll() is not None:
            self._exited(now)
        elif out:
            self._delay = 1.0
        return out

    def _read_stdout(self) -> bool:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            data = os.read(self._proc.stdout.fileno(), _READ)
        except BlockingIOError:
            return False
        except OSError:
            return False
        if not data:
            return False
        buf = self._buf + data if self._buf else data
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                self.invalid_lines += 1
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("__CURSOR"), str):
                self.invalid_lines += 1
                continue
            self._pending.append(entry)
        return True

    def _read_stderr(self) -> None:
        if self._proc is None or self._proc.stderr is None:
            return
        with contextlib.suppress(OSError):
            while len(self._stderr) < _MAX_STDERR:
                data = os.read(self._proc.stderr.fileno(), _MAX_STDERR)
                if not data:
                    break
                self._stderr += data

    def _exited(self, now: float) -> None:
        assert self._proc is not None
        self._read_stderr()
        rc = self._proc.returncode
        err = self._stderr.decode("utf-8", "replace").strip()
        self._close_proc()
        if "cursor" in err.lower() and self.cursor:
            # A cursor journalctl cannot seek to (a journal from another machine): start over
            # at the end rather than fail forever.
            self.errors.append(f"journalctl could not resume at the saved cursor ({err.splitlines()[0]}); "
                               "following from the end of the journal")
            self.cursor = None
            self.from_start = False
            return
        first = err.splitlines()[0][:200] if err else "no error output"
        self._failed(now, f"journalctl exited {rc}: {first}")

    def stderr_lines(self) -> list[str]:
        """Warnings journalctl printed while running (e.g. no permission to read the system journal)."""
        if self._proc is None or not self._stderr or self._proc.poll() is not None:
            return []
        text, self._stderr = self._stderr.decode("utf-8", "replace"), b""
        return [ln.strip() for ln in text.splitlines() if ln.strip()]

    def take_errors(self) -> list[str]:
        errs, self.errors = self.errors, []
        return errs

    def _close_proc(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(2)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

    def close(self) -> None:
        self._close_proc()
        self._pending.clear()
        self._buf = b""
