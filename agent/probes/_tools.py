"""Running host tools (nft, ufw, timedatectl...) with bounded time and memory.

Every failure becomes a `ToolResult` status instead of an exception, so a probe reports a
missing tool or a permission error as data and goes on with its other sources.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_TOOL_PATH", "ToolResult", "run_tool"]

# Firewall tools live in sbin, which an unprivileged service's PATH often lacks.
DEFAULT_TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_STDERR = 64 * 1024
# How tools say "not as this user": nft, iptables, ufw, chronyc, firewall-cmd wordings.
_DENIED = re.compile(
    r"permission denied|operation not permitted|must be root|need to be root|are you root|"
    r"access denied|not authorized",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ToolResult:
    """What running one tool gave. `status` is one of:
    ok (exit 0), missing (not installed), denied (permission), timeout, failed (other)."""

    status: str
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    truncated: bool = False  # stdout was cut at the byte limit (the tool was killed)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self, tool: str) -> str:
        """A short, stable error text for a report (no timings or pids, so it does not churn)."""
        if self.status == "missing":
            return f"{tool} not installed"
        if self.status == "denied":
            return f"{tool}: permission denied"
        if self.status == "timeout":
            return f"{tool}: timed out"
        first = (self.stderr.strip() or self.stdout.strip()).splitlines()
        detail = first[0][:200] if first else "no output"
        return f"{tool}: exit {self.returncode}: {detail}"


def run_tool(
    argv: Sequence[str],
    *,
    timeout: float,
    max_bytes: int = 8 * 1024 * 1024,
    path: str = DEFAULT_TOOL_PATH,
) -> ToolResult:
    """Run `argv` (argv[0] looked up in `path`) with no stdin, in the C locale.

    At most `max_bytes` of stdout are kept: past that, or past `timeout`, the tool's whole
    process group is killed, so neither a hung tool nor a huge ruleset can hold the probe.
    """
    exe = shutil.which(argv[0], path=path)
    if exe is None:
        return ToolResult("missing")
    try:
        proc = subprocess.Popen(
            [exe, *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # C locale: the parsers read English keywords ("Status: active").
            env={"PATH": path, "LC_ALL": "C", "LANG": "C"},
            start_new_session=True,  # its own process group, killed as a whole
            close_fds=True,
        )
    except PermissionError:
        return ToolResult("denied")
    except OSError as e:
        return ToolResult("failed", stderr=str(e))
    out, err, timed_out, truncated = _read_bounded(proc, timeout, max_bytes)
    if timed_out or truncated:
        _kill(proc)
    try:
        rc = proc.wait(timeout=2)
    except subprocess.TimeoutExpired:  # unkillable (D state): leave it, report the timeout
        rc = None
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    if timed_out:
        return ToolResult("timeout", stdout, stderr, rc, truncated)
    if truncated:
        # Killed by us: the exit code says nothing about the tool; the caller judges the text.
        return ToolResult("ok", stdout, stderr, rc, True)
    if rc == 0:
        return ToolResult("ok", stdout, stderr, rc)
    status = "denied" if _DENIED.search(stderr) or _DENIED.search(stdout[:4096]) else "failed"
    return ToolResult(status, stdout, stderr, rc)


def _read_bounded(
    proc: subprocess.Popen[bytes], timeout: float, max_bytes: int
) -> tuple[bytes, bytes, bool, bool]:
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out_fd: bytearray(), err_fd: bytearray()}
    limits = {out_fd: max_bytes, err_fd: _MAX_STDERR}
    deadline = time.monotonic() + timeout
    timed_out = truncated = False
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        while sel.get_map() and not truncated:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf = bufs[key.fd]
                room = limits[key.fd] - len(buf)
                if room > 0:
                    buf += chunk[:room]
                # Past the stdout limit the rest is useless: stop and kill. Extra stderr is dropped.
                if len(chunk) > room and key.fd == out_fd:
                    truncated = True
    proc.stdout.close()
    proc.stderr.close()
    return bytes(bufs[out_fd]), bytes(bufs[err_fd]), timed_out, truncated


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
