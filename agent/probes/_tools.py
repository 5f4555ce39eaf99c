"""Running host tools (nft, ufw, timedatectl...) with bounded time and memory.

Every failure becomes a `ToolResult` status instead of an exception, so a probe reports a
missing tool or a permission error as data and goes on with its other sources.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_TOOL_PATH", "ProcessOutput", "ToolResult", "run_process", "run_tool"]

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
    exe = _which(argv[0], path)
    if exe is None:
        return ToolResult("missing")
    try:
        # C locale: the parsers read English keywords ("Status: active").
        res = run_process(
            [exe, *argv[1:]],
            env={"PATH": path, "LC_ALL": "C", "LANG": "C"},
            timeout=timeout,
            max_bytes=max_bytes,
        )
    except PermissionError:
        return ToolResult("denied")
    except OSError as e:
        return ToolResult("failed", stderr=str(e))
    stdout = res.stdout.decode("utf-8", "replace")
    stderr = res.stderr.decode("utf-8", "replace")
    rc, truncated = res.returncode, res.overflowed
    if res.timed_out:
        return ToolResult("timeout", stdout, stderr, rc, truncated)
    if truncated:
        # Killed by us: the exit code says nothing about the tool; the caller judges the text.
        return ToolResult("ok", stdout, stderr, rc, True)
    if rc == 0:
        return ToolResult("ok", stdout, stderr, rc)
    status = "denied" if _DENIED.search(stderr) or _DENIED.search(stdout[:4096]) else "failed"
    return ToolResult(status, stdout, stderr, rc)


def _which(cmd: str, path: str) -> str | None:
    """shutil.which(cmd, path=path) on POSIX, without importing shutil (and the bz2 and lzma
    modules it brings: half a megabyte of the agent's RSS for one lookup)."""

    def runnable(name: str) -> bool:
        return os.path.exists(name) and os.access(name, os.F_OK | os.X_OK) and not os.path.isdir(name)

    if os.path.dirname(cmd):
        return cmd if runnable(cmd) else None
    seen = set()
    for d in path.split(os.pathsep) if path else ():
        if d not in seen:
            seen.add(d)
            name = os.path.join(d, cmd)
            if runnable(name):
                return name
    return None


@dataclass(frozen=True)
class ProcessOutput:
    """What `run_process` got from one process."""

    stdout: bytes  # at most max_bytes
    stderr: bytes  # at most max_stderr; the rest is read and dropped
    returncode: int | None  # None: still alive 2 s after the kill (D state), left behind
    timed_out: bool = False  # outlived the timeout: killed
    overflowed: bool = False  # printed more than max_bytes: killed, stdout holds the first max_bytes


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    max_bytes: int,
    max_stderr: int = _MAX_STDERR,
) -> ProcessOutput:
    """The one place host tools are started: run `argv` (argv[0] an exact path or a name
    looked up in env's PATH by exec) with exactly `env`, no stdin, in its own session.

    Stdout and stderr are drained together, keeping at most `max_bytes` / `max_stderr`.
    Past `timeout` (until exit and EOF) or past `max_bytes` of stdout, the whole process
    group is killed (a tool's children too). Raises OSError when the process cannot start
    (FileNotFoundError, PermissionError...): each caller words that its own way.
    """
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        start_new_session=True,  # its own process group, killed as a whole
        close_fds=True,
    )
    deadline = time.monotonic() + timeout
    rc: int | None = None
    try:
        out, err, timed_out, overflowed = _read_bounded(proc, deadline, max_bytes, max_stderr)
        if not (timed_out or overflowed):
            try:
                rc = proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # closed its pipes but lives on
                timed_out = True
    finally:
        if proc.poll() is None:
            _kill(proc)
            try:
                rc = proc.wait(timeout=2)
            except subprocess.TimeoutExpired:  # unkillable (D state): leave it
                rc = None
    return ProcessOutput(out, err, rc, timed_out, overflowed)


def _read_bounded(
    proc: subprocess.Popen[bytes], deadline: float, max_bytes: int, max_stderr: int
) -> tuple[bytes, bytes, bool, bool]:
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out_fd: bytearray(), err_fd: bytearray()}
    limits = {out_fd: max_bytes, err_fd: max_stderr}
    timed_out = truncated = False
    try:
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
    finally:
        proc.stdout.close()
        proc.stderr.close()
    return bytes(bufs[out_fd]), bytes(bufs[err_fd]), timed_out, truncated


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
