"""Shared pieces of the `packages` probe's backends: plain result types, the bounded command
runner and the one error type backends raise (translated into `updates.error` by the probe).

Every command runs with a timeout, a cap on the output it may produce, the C locale (the
parsers read English tool output) and in its own process group, so a hung tool and its
children are killed together.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from warden.agent.probes._tools import run_process

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
        res = run_process(argv, env=full_env, timeout=timeout, max_bytes=max_bytes)
    except FileNotFoundError:
        raise ToolError("missing", f"{argv[0]}: not installed (not found on PATH)") from None
    except PermissionError:
        raise ToolError("permission", f"{argv[0]}: permission denied (not executable by the agent)") from None
    except OSError as e:
        raise ToolError("failed", f"{argv[0]}: cannot run: {e.strerror}") from None
    name = Path(argv[0]).name
    if res.timed_out:
        raise ToolError("timeout", f"{name}: no answer within {timeout:g} s (killed)")
    if res.overflowed:
        raise ToolError("too_large", f"{name}: output exceeded {max_bytes} bytes (killed)")
    stdout = res.stdout.decode("utf-8", errors="replace")
    stderr = res.stderr.decode("utf-8", errors="replace")
    if res.returncode not in ok_codes:
        detail = _last_line(stderr) or _last_line(stdout) or f"exit code {res.returncode}"
        if "permission denied" in detail.lower() or "are you root" in detail.lower():
            raise ToolError("permission", f"{name}: permission denied: {detail}")
        raise ToolError("failed", f"{name}: exit code {res.returncode}: {detail}")
    assert res.returncode is not None  # neither timed out nor killed: it exited
    return CommandResult(res.returncode, stdout, stderr)


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
