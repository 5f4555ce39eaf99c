"""Shared pieces of the `packages` probe's backends: plain result types, the bounded command
runner and the one error type backends raise (translated into `updates.error` by the probe).

Every command runs with a timeout, a cap on the output it may produce, the C locale (the
parsers read English tool output) and in its own process group, so a hung tool and its
children are killed together.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = [
    "Backend",
    "BackendContext",
    "CommandResult",
    "InstalledPackage",
    "PendingUpdate",
    "ToolError",
    "UpdatesInfo",
    "iter_lines_bounded",
    "kernel_from_modules",
    "read_text_bounded",
    "run_command",
]


@dataclass(frozen=True, order=True)
class InstalledPackage:
    name: str
    version: str
    arch: str = ""


@dataclass(frozen=True)
class PendingUpdate:
    name: str
    current_version: str
    new_version: str
    arch: str = ""
    security: bool = False
    origin: str = ""  # repository/pocket, or the advisory id


@dataclass
class UpdatesInfo:
    pending: list[PendingUpdate] = field(default_factory=list)
    last_update_unix: int = 0  # 0: unknown
    reboot_required: bool = False
    reboot_required_packages: list[str] = field(default_factory=list)
    newest_kernel: str = ""
    running_kernel: str = ""
    kernel_update_pending: bool = False  # a newer kernel is installed than the one running
    error: str = ""  # why the pending list could not be computed; the rest may still be valid


@dataclass(frozen=True)
class BackendContext:
    """What a backend needs from the probe: where the host is and how far it may go."""

    rootfs: Path
    command_timeout_seconds: float
    max_output_bytes: int
    check_updates: bool
    running_kernel: str  # uname release of the host (the agent shares the host's kernel)
    kernel_build: str = ""  # uname version (`#1 SMP ... Debian 6.1.119-1 ...`)

    def host(self, path: str) -> Path:
        """A host path under the rootfs."""
        return self.rootfs / path.lstrip("/")

    def run(self, argv: Sequence[str], ok_codes: Sequence[int] = (0,)) -> CommandResult:
        return run_command(
            argv, timeout=self.command_timeout_seconds, max_bytes=self.max_output_bytes, ok_codes=ok_codes
        )


class Backend(Protocol):
    manager: str  # PackagesSection.manager
    scheme: str  # warden.agent.versions scheme for this manager's versions ("" if none)

    def installed(self) -> list[InstalledPackage]:
        """Installed packages; raises ToolError when the database cannot be read."""
        ...

    def updates(self, installed: Sequence[InstalledPackage]) -> UpdatesInfo:
        """Pending updates, last update, kernel and reboot facts. A failure to list the
        pending updates is `UpdatesInfo.error`, never an exception: the rest still counts."""
        ...


class ToolError(Exception):
    """A package tool or database could not be used: missing, denied, timed out, garbled.

    `kind` is one of "missing", "permission", "timeout", "failed", "garbled", "too_large";
    the message says what happened in words an operator can act on.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


# The parsers read the tools' English, untranslated output.
_C_LOCALE = {"LC_ALL": "C", "LANG": "C", "LANGUAGE": ""}
_STDERR_CAP = 64 * 1024


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    max_bytes: int,
    ok_codes: Sequence[int] = (0,),
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run `argv`, read at most `max_bytes` of stdout, give up after `timeout` seconds.

    Raises ToolError: "missing" (not installed), "permission" (not executable, or the tool
    itself said permission denied), "timeout", "too_large", "failed" (exit code not in
    `ok_codes`).
    """
    full_env = {**os.environ, **_C_LOCALE, **(env or {})}
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            start_new_session=os.name == "posix",  # its own group: killed with its children
        )
    except FileNotFoundError:
        raise ToolError("missing", f"{argv[0]}: not installed (not found on PATH)") from None
    except PermissionError:
        raise ToolError("permission", f"{argv[0]}: permission denied (not executable by the agent)") from None
    except OSError as e:
        raise ToolError("failed", f"{argv[0]}: cannot run: {e.strerror}") from None

    assert proc.stdout is not None and proc.stderr is not None
    out = _BoundedReader(proc.stdout, max_bytes)
    err = _BoundedReader(proc.stderr, _STDERR_CAP)
    timed_out = False
    deadline = time.monotonic() + timeout
    # Short waits so an output overflow stops the tool at once, not at the timeout.
    while not out.overflow.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        try:
            proc.wait(timeout=min(left, 0.05))
            break
        except subprocess.TimeoutExpired:
            continue
    if timed_out or out.overflow.is_set():
        _kill(proc)
    # After the process is gone the pipes reach EOF, unless a grandchild outside the group
    # still holds them: then the readers are abandoned (daemon threads), never waited on.
    out.done.wait(2.0)
    err.done.wait(2.0)
    name = Path(argv[0]).name
    if timed_out:
        raise ToolError("timeout", f"{name}: no answer within {timeout:g} s (killed)")
    if out.overflow.is_set():
        raise ToolError("too_large", f"{name}: output exceeded {max_bytes} bytes (killed)")
    stdout, stderr = out.text(), err.text()
    if proc.returncode not in ok_codes:
        detail = _last_line(stderr) or _last_line(stdout) or f"exit code {proc.returncode}"
        if "permission denied" in detail.lower() or "are you root" in detail.lower():
            raise ToolError("permission", f"{name}: permission denied: {detail}")
        raise ToolError("failed", f"{name}: exit code {proc.returncode}: {detail}")
    return CommandResult(proc.returncode, stdout, stderr)


def read_text_bounded(path: Path, max_bytes: int) -> str:
    """A host file's text, refusing one larger than `max_bytes` (a garbled or hostile file
    must not exhaust the agent's memory). Raises ToolError for missing/denied/too large."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ToolError("missing", f"{path}: not found") from None
    except PermissionError:
        raise ToolError("permission", f"{path}: permission denied") from None
    except OSError as e:
        if e.errno == errno.EISDIR:
            raise ToolError("garbled", f"{path}: is a directory") from None
        raise ToolError("failed", f"{path}: cannot read: {e.strerror}") from None
    if len(data) > max_bytes:
        raise ToolError("too_large", f"{path}: larger than {max_bytes} bytes")
    return data.decode("utf-8", errors="replace")


def iter_lines_bounded(path: Path, max_bytes: int) -> Iterator[str]:
    """A host file's lines, streamed (a 20 MB dpkg status never sits in memory whole);
    ToolError for a missing, unreadable or larger-than-`max_bytes` file."""
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise ToolError("missing", f"{path}: not found") from None
    except PermissionError:
        raise ToolError("permission", f"{path}: permission denied") from None
    except OSError as e:
        kind = "garbled" if e.errno == errno.EISDIR else "failed"
        raise ToolError(kind, f"{path}: cannot read: {e.strerror}") from None
    with f:
        if os.fstat(f.fileno()).st_size > max_bytes:
            raise ToolError("too_large", f"{path}: larger than {max_bytes} bytes")
        yield from f


class _BoundedReader:
    """Drains one pipe in a daemon thread, keeping at most `cap` bytes."""

    def __init__(self, pipe: object, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.overflow = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(pipe,), daemon=True, name="packages-pipe").start()

    def _run(self, pipe: object) -> None:
        try:
            while True:
                chunk = pipe.read1(65536)  # type: ignore[attr-defined]
                if not chunk:
                    break
                if self.size + len(chunk) > self.cap:
                    self.overflow.set()
                    break
                self.chunks.append(chunk)
                self.size += len(chunk)
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[attr-defined]
            self.done.set()

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def kernel_from_modules(ctx: BackendContext) -> tuple[str, bool]:
    """(newest kernel release, update pending) from the module trees under the rootfs.

    For managers whose kernel package versions do not spell the `uname -r` release (apk,
    pacman): an upgrade installs the new kernel's /lib/modules/<release> and removes the old
    one's, so a running release without its module tree, or an installed newer release,
    means the host runs an outdated kernel until it reboots.
    """
    from warden.agent.versions import rpmvercmp  # any release string orders sensibly by rpm's rules

    releases: set[str] = set()
    for base in ("lib/modules", "usr/lib/modules"):
        try:
            releases |= {d.name for d in (ctx.rootfs / base).iterdir() if (d / "modules.dep").exists()}
        except OSError:
            continue
    if not releases:
        return "", False
    newest = max(releases, key=functools.cmp_to_key(rpmvercmp))
    running = ctx.running_kernel
    pending = bool(running) and (running not in releases or rpmvercmp(newest, running) > 0)
    return newest, pending

