"""Probe `inventory`: the machine register beyond os/hardware/filesystems (those come from the
system probe): network interfaces, time sync, accounts and admins, listening ports, firewall
and antivirus.

Each section is built by its own private backend (`_network`, `_timesync`, `_accounts`,
`_listening`, `_firewall`, `_antivirus`); one that fails is reported and the others go on.
A section is sent on the first run, then only when its content changed, or every
`resend_interval_seconds` so the collector's copy never goes stale unnoticed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from google.protobuf.message import Message

from warden.agent import records
from warden.agent.probes import HostPaths, option, probe
from warden.agent.probes._accounts import collect_accounts
from warden.agent.probes._antivirus import collect_antivirus
from warden.agent.probes._firewall import collect_firewall
from warden.agent.probes._listening import collect_listening
from warden.agent.probes._network import collect_network
from warden.agent.probes._timesync import collect_time_sync
from warden.agent.probes._tools import DEFAULT_TOOL_PATH, ToolResult, run_tool
from warden.v1 import records_pb2

__all__ = ["SECTIONS", "InventoryOptions", "InventoryProbe"]

log = logging.getLogger(__name__)

SOURCE = "probe:inventory"
SECTIONS = ("network", "time_sync", "accounts", "listening", "firewall", "antivirus")
MiB = 1024 * 1024


@dataclass(frozen=True)
class InventoryOptions:
    sections: tuple[str, ...] = option(
        SECTIONS, "Sections to collect: network, time_sync, accounts, listening, firewall, antivirus."
    )
    resend_interval_seconds: float = option(
        86400.0, "Resend a section this often even when unchanged (24 h).", gt=0
    )
    admin_groups: tuple[str, ...] = option(
        ("sudo", "wheel", "admin", "root"), "Members of these groups count as administrators."
    )
    exclude_interfaces: tuple[str, ...] = option(
        ("lo", "veth*", "cali*", "vnet*", "tap*"),
        "Network interfaces not reported (shell patterns): loopback and per-container/VM links that churn.",
    )
    udp_ephemeral: bool = option(
        False, "Also report UDP sockets bound in the kernel's ephemeral port range (mostly clients)."
    )
    clamav_database_dirs: tuple[str, ...] = option(
        ("/var/lib/clamav", "/var/db/clamav"), "Where ClamAV's main/daily/bytecode .cvd/.cld files are."
    )
    tool_path: str = option(
        DEFAULT_TOOL_PATH, "Directories searched for nft, iptables-save, ufw, timedatectl, chronyc..."
    )
    tool_timeout_seconds: float = option(10.0, "Longest one tool may run before it is killed.", gt=0)
    max_tool_output_bytes: int = option(
        8 * MiB, "Most output read from one tool (8 MiB); a longer ruleset is counted as truncated.", gt=0
    )


Builder = Callable[[float], tuple[Message, list[tuple[str, float]], dict[str, str]]]


@probe("inventory", default_interval_seconds=3600, config=InventoryOptions)
class InventoryProbe:
    """Machine register: network, time sync, accounts and admins, listening ports, firewall, antivirus."""

    def __init__(
        self,
        options: InventoryOptions,
        paths: HostPaths,
        state_dir: Path | None = None,  # unused: what was sent is kept in memory
        *,
        run: Callable[[Sequence[str]], ToolResult] | None = None,
        connections: Callable[[], Iterable[Any]] | None = None,
        processes: Callable[[], Iterable[str]] | None = None,
        kernel_clock: Callable[[], bool | None] | None = None,
        if_addrs: Callable[[], Mapping[str, Sequence[Any]]] = psutil.net_if_addrs,
        if_stats: Callable[[], Mapping[str, Any]] = psutil.net_if_stats,
    ) -> None:
        self.options = options
        self.paths = paths
        self._run = run or self._run_tool
        self._connections = connections
        self._processes = processes
        self._kernel_clock = kernel_clock
        self._if_addrs = if_addrs
        self._if_stats = if_stats
        self._sent: dict[str, tuple[bytes, float]] = {}  # section -> (compared bytes, monotonic sent)
        self._reported: dict[tuple[str, str], str] = {}  # (section, source) -> error text reported
        self._builders: dict[str, Builder] = {
            "network": self._network,
            "time_sync": self._time_sync,
            "accounts": self._accounts,
            "listening": self._listening,
            "firewall": self._firewall,
            "antivirus": self._antivirus,
        }

    def validate(self) -> None:
        unknown = [s for s in self.options.sections if s not in SECTIONS]
        if unknown:
            raise ValueError(f"sections: unknown {unknown} (known: {', '.join(SECTIONS)})")
        if not self.options.tool_path.strip(":"):
            raise ValueError("tool_path is empty")

    def collect(self) -> list[records_pb2.Record]:
        t = records.now_ns()
        now = t / 1e9
        built: dict[str, Message] = {}
        samples: list[tuple[str, float]] = []
        problems: dict[tuple[str, str], str] = {}
        for name in self.options.sections:
            try:
                section, metrics, section_problems = self._builders[name](now)
            except Exception as e:  # one broken backend must not cost the other sections
                log.exception("inventory section %s failed", name)
                problems[(name, "")] = f"{type(e).__name__}: {e}"[:500]
                continue
            built[name] = section
            samples.extend(metrics)
            problems.update({(name, src): err for src, err in section_problems.items()})

        out = self._problem_events(problems, t)
        out.extend(records.metric(n, v, time_ns=t) for n, v in samples)
        out.extend(self._changed(built, t))  # last: it marks sections as sent
        return out

    # --- sections: each returns (section, metrics, {source: problem}) ----------------------------

    def _network(self, now: float) -> tuple[Message, list[tuple[str, float]], dict[str, str]]:
        section = collect_network(self.options.exclude_interfaces, self._if_addrs, self._if_stats)
        return section, [], {}

    def _time_sync(self, now: float) -> tuple[Message, list[tuple[str, float]], dict[str, str]]:
        res = collect_time_sync(self._run, self._processes, self._kernel_clock)
        if not res.source:
            return res.section, [], {"time": "no time source answered (timedatectl, chronyc, adjtimex)"}
        return res.section, [("time_sync_synchronized", 1.0 if res.section.synchronized else 0.0)], {}

    def _accounts(self, now: float) -> tuple[Message, list[tuple[str, float]], dict[str, str]]:
        res = collect_accounts(self.paths.rootfs, self.options.admin_groups, now)
        s = res.section
        metrics = [
            ("inventory_accounts_uid0", float(len(s.uid0_users))),
            ("inventory_accounts_admins", float(len(s.admin_users))),
            ("inventory_accounts_empty_password", float(sum(u.empty_password for u in s.users))),
        ]
        return s, metrics, res.problems

    def _listening(self, now: float) -> tuple[Message, list[tuple[str, float]], dict[str, str]]:
        res = collect_listening(
            self.paths.proc_root, udp_ephemeral=self.options.udp_ephemeral, connections=self._connections
        )
        problems = {"psutil": res.problem} if res.problem else {}
        return res.section, [("inventory_listening_ports", float(len(res.section.ports)))], problems

    def _firewall(self, now: float) -> tuple[Message, list[tuple[str, float]], dict[str, str]]:
        # Backend errors (tool missing, permission denied) are data in the section itself.
        section = collect_firewall(self._run)
        return section, [("inventory_firewall_active", 1.0 if section.active else 0.0)], {}

    def _antivirus(self, now: float) -> tuple[Message, list[tuple[str, float]], dict[str, str]]:
        section = collect_antivirus(
            self.paths.rootfs, self.options.clamav_database_dirs, self.options.tool_path, now
        )
        metrics = []
        if section.signatures_time_unix:
            metrics.append(("antivirus_signature_age_hours", section.signature_age_hours))
        return section, metrics, {}

    # --- helpers ---------------------------------------------------------------------------------

    def _run_tool(self, argv: Sequence[str]) -> ToolResult:
        return run_tool(
            argv,
            timeout=self.options.tool_timeout_seconds,
            max_bytes=self.options.max_tool_output_bytes,
            path=self.options.tool_path,
        )

    def _problem_events(self, problems: dict[tuple[str, str], str], t: int) -> list[records_pb2.Record]:
        """One event per problem when it appears or its text changes; a problem that went away
        is forgotten, so it is reported again if it comes back."""
        out = []
        for (section, source), error in sorted(problems.items()):
            if self._reported.get((section, source)) == error:
                continue
            if source:
                kind, severity = "inventory.source_error", "warning"
                fields = {"section": section, "source": source, "error": error}
            else:
                kind, severity = "inventory.section_failed", "error"
                fields = {"section": section, "error": error}
            out.append(records.event(kind, severity, fields, source=SOURCE, time_ns=t))
        self._reported = dict(problems)
        return out

    def _changed(self, built: dict[str, Message], t: int) -> list[records_pb2.Record]:
        out = []
        mono = time.monotonic()
        for name, section in built.items():
            blob = _comparable(section)
            last = self._sent.get(name)
            if last is None or last[0] != blob or mono - last[1] >= self.options.resend_interval_seconds:
                out.append(records.inventory(section, t))
                self._sent[name] = (blob, mono)
        return out


def _comparable(section: Message) -> bytes:
    # The signature age grows every run; what it derives from (signatures_time_unix) is what
    # changes the section. The live age goes out as a metric.
    if isinstance(section, records_pb2.AntivirusSection) and section.signature_age_hours:
        section = records_pb2.AntivirusSection(
            product=section.product,
            installed=section.installed,
            signatures_time_unix=section.signatures_time_unix,
        )
    return section.SerializeToString(deterministic=True)
