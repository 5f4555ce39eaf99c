"""The inventory probe: a real run on this machine, then every backend on captured fixtures
(tests/fixtures/inventory/README.md says where each came from). Tool outputs are served by
small executables written into a temporary tool_path, so the real subprocess handling (exit
codes, timeouts, output limits) runs too, and no test needs nft, ufw or chrony installed."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from collections import namedtuple
from collections.abc import Iterable
from pathlib import Path

import psutil
import pytest

from warden.agent.probes import HostPaths, registered
from warden.agent.probes._accounts import collect_accounts, parse_sudoers_grants
from warden.agent.probes._antivirus import collect_antivirus, signature_time
from warden.agent.probes._firewall import parse_iptables, parse_nft_json, parse_ufw_status
from warden.agent.probes._listening import collect_listening, parse_proc_net
from warden.agent.probes._network import collect_network
from warden.agent.probes._timesync import parse_chronyc_tracking, parse_timedatectl_show
from warden.agent.probes._tools import run_tool
from warden.agent.probes.inventory import SECTIONS, InventoryOptions, InventoryProbe
from warden.v1 import records_pb2

FIX = Path(__file__).parent / "fixtures" / "inventory"
TOOLS = FIX / "tools"
DAY = 86400
# 2026-11-22 12:00 UTC: a fixed "now" for password ages and signature ages.
NOW = 20414 * DAY + 12 * 3600
LASTLOG_TIME = 1795346602  # what `lastlog -S` wrote for UIDs 0 and 1000 (fixtures README)
INVENTORY_METRICS = {
    "inventory_accounts_uid0",
    "inventory_accounts_admins",
    "inventory_accounts_empty_password",
    "inventory_listening_ports",
    "inventory_firewall_active",
}

# psutil.net_connections() entries and net_if_* values, as plain data.
sconn = namedtuple("sconn", "fd family type laddr raddr status pid")
addr = namedtuple("addr", "ip port")
snicaddr = namedtuple("snicaddr", "family address netmask broadcast ptp")
snicstats = namedtuple("snicstats", "isup duplex speed mtu flags")


# --- helpers -------------------------------------------------------------------------------------


def tool_dir(tmp_path: Path, **tools: tuple[str | None, str | None, int] | str) -> Path:
    """Executables named after tools (underscores for dashes) that print fixture files.

    A value is (stdout fixture, stderr fixture, exit code), or a raw shell body. The tools run
    with PATH set to tool_path only, so bodies name other programs by absolute path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, spec in tools.items():
        body = spec
        if isinstance(spec, tuple):
            out, err, rc = spec
            body = ""
            if out:
                body += f"/bin/cat '{TOOLS / out}'\n"
            if err:
                body += f"/bin/cat '{TOOLS / err}' >&2\n"
            body += f"exit {rc}\n"
        script = bin_dir / name.replace("_", "-")
        script.write_text(f"#!/bin/sh\n{body}")
        script.chmod(0o755)
    return bin_dir


def copy_rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    shutil.copytree(FIX / "rootfs", root, symlinks=True)
    # Checkout time must not decide which database is newest: pin the header-less file's mtime.
    os.utime(root / "var/lib/clamav/bytecode.cvd", (1500000000, 1500000000))
    return root


def sections(out: Iterable[records_pb2.Record]) -> dict[str, records_pb2.InventorySnapshot]:
    inv = [r.inventory for r in out if r.HasField("inventory")]
    return {i.WhichOneof("section"): i for i in inv}


def metrics(out: Iterable[records_pb2.Record]) -> dict[str, float]:
    return {r.metric.name: r.metric.value for r in out if r.HasField("metric")}


def events(out: Iterable[records_pb2.Record]) -> list[records_pb2.Event]:
    return [r.event for r in out if r.HasField("event")]


def fixture_probe(tmp_path: Path, bin_dir: Path | None = None, **kwargs: object) -> InventoryProbe:
    """A probe on the fixture rootfs and proc, with no real host source left."""
    opts = InventoryOptions(tool_path=str(bin_dir or tool_dir(tmp_path)), **kwargs)  # type: ignore[arg-type]
    paths = HostPaths(proc_root=FIX / "proc", sys_root=tmp_path / "nosys", rootfs=copy_rootfs(tmp_path))
    return InventoryProbe(
        opts,
        paths,
        connections=lambda: [],
        processes=lambda: ["systemd-timesyn", "sshd"],
        kernel_clock=lambda: True,
        if_addrs=lambda: {
            "eth0": [
                snicaddr(psutil.AF_LINK, "52:54:00:AB:CD:EF", None, None, None),
                snicaddr(socket.AF_INET, "192.0.2.10", "255.255.255.0", None, None),
                snicaddr(socket.AF_INET6, "fe80::1%eth0", "ffff:ffff:ffff:ffff::", None, None),
            ],
            "lo": [snicaddr(socket.AF_INET, "127.0.0.1", "255.0.0.0", None, None)],
        },
        if_stats=lambda: {"eth0": snicstats(True, 2, 1000, 1500, ""), "lo": snicstats(True, 0, 0, 65536, "")},
    )


# --- registration and a real run -------------------------------------------------------------------


def test_registered_with_documented_defaults() -> None:
    spec = registered()["inventory"]
    assert spec.cls is InventoryProbe and spec.config is InventoryOptions
    assert spec.default_interval_seconds == 3600 and spec.default_enabled
    opts = InventoryOptions()
    assert opts.sections == SECTIONS and opts.resend_interval_seconds == 86400
    assert opts.admin_groups == ("sudo", "wheel", "admin", "root")


def test_real_machine_produces_every_section(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        probe = InventoryProbe(InventoryOptions(), HostPaths(), tmp_path / "state")
        probe.validate()
        t0 = time.monotonic()
        first = probe.collect()
        assert time.monotonic() - t0 < 60
        second = probe.collect()
    finally:
        listener.close()

    assert all(isinstance(r, records_pb2.Record) and r.WhichOneof("kind") for r in first)
    inv = sections(first)
    assert set(inv) == set(SECTIONS)
    stamps = {i.time_unix_nano for i in inv.values()}
    assert len(stamps) == 1 and abs(stamps.pop() - time.time_ns()) < 60e9

    acc = inv["accounts"].accounts
    assert "root" in acc.uid0_users and "root" in acc.admin_users
    assert {u.name for u in acc.users} >= {"root"} and acc.groups
    assert acc.shadow_readable == os.access("/etc/shadow", os.R_OK)
    root = next(u for u in acc.users if u.name == "root")
    assert root.uid == 0 and root.admin and root.last_login_unix >= -1

    nics = {i.name for i in inv["network"].network.interfaces}
    excluded = InventoryOptions().exclude_interfaces
    host_nics = set(psutil.net_if_addrs()) | set(psutil.net_if_stats())
    assert nics == {n for n in host_nics if not any(fnmatch.fnmatchcase(n, p) for p in excluded)}

    ours = [p for p in inv["listening"].listening.ports if p.port == port]
    assert len(ours) == 1 and ours[0].protocol == "tcp" and ours[0].address == "127.0.0.1"
    assert ours[0].pid == os.getpid() and ours[0].process == psutil.Process().name()

    fw = inv["firewall"].firewall
    assert [b.name for b in fw.backends] == ["nftables", "iptables", "ufw", "firewalld"]
    for b in fw.backends:  # each either answered or says why not
        assert b.present or b.error

    assert inv["antivirus"].antivirus.installed == bool(inv["antivirus"].antivirus.product)

    got = metrics(first)
    assert set(got) >= INVENTORY_METRICS
    assert got["inventory_accounts_uid0"] == len(acc.uid0_users)
    assert got["inventory_firewall_active"] == (1.0 if fw.active else 0.0)
    # Unchanged sections are not sent again (ports may come and go with other processes).
    assert set(sections(second)) <= {"listening"}
    assert set(metrics(second)) == set(got)


# --- accounts -------------------------------------------------------------------------------------


def test_accounts_from_the_fixture_rootfs(tmp_path: Path) -> None:
    res = collect_accounts(copy_rootfs(tmp_path), ("sudo", "wheel", "admin", "root"), now=NOW)
    s = res.section
    users = {u.name: u for u in s.users}
    assert res.problems == {}
    assert s.shadow_readable
    # Garbled lines (too few fields, a non-numeric UID, a NIS "+" entry) are skipped.
    assert "eve" not in users and "garbled line without enough fields" not in users
    assert not any(n.startswith("+") for n in users)
    assert list(s.uid0_users) == ["root", "toor"]
    assert list(s.sudoers_entries) == ["%ops", "%sudo", "bob", "frank", "root"]
    # sudo group, sudoers %group via a User_Alias, #include, uid 0; not the restricted deploy,
    # not mallory (only in files sudo ignores).
    assert list(s.admin_users) == ["alice", "bob", "carol", "frank", "root", "toor"]
    assert not users["deploy"].admin and not users["mallory"].admin and users["carol"].admin

    assert users["carol"].empty_password and not users["carol"].locked
    assert users["dave"].empty_password and users["dave"].login_shell  # empty shell is /bin/sh
    assert users["bob"].locked and not users["bob"].empty_password
    assert users["root"].locked and not users["daemon"].login_shell and not users["sync"].login_shell

    assert users["alice"].password_age_days == 20414 - 20100
    assert users["deploy"].password_age_days == -1  # lastchg 0: must change at next login
    assert users["frank"].password_age_days == -1  # empty lastchg
    assert users["dave"].password_age_days == -1  # not in shadow

    assert users["alice"].last_login_unix == LASTLOG_TIME  # lastlog is newer than her wtmp logins
    assert users["frank"].last_login_unix == 1772447400  # from wtmp only
    assert users["root"].last_login_unix == LASTLOG_TIME
    for never in ("bob", "carol", "dave", "deploy", "mallory"):
        assert users[never].last_login_unix == 0, never

    groups = {g.name: g for g in s.groups}
    assert list(groups["ops"].members) == ["bob", "carol"] and groups["sudo"].gid == 27


def test_shadow_and_logs_absent(tmp_path: Path) -> None:
    root = copy_rootfs(tmp_path)
    for f in ("etc/shadow", "var/log/lastlog", "var/log/wtmp"):
        (root / f).unlink()
    s = collect_accounts(root, ("sudo",), now=NOW).section
    users = {u.name: u for u in s.users}
    assert not s.shadow_readable
    assert users["alice"].password_age_days == -1 and not users["alice"].locked
    assert not users["carol"].empty_password  # unknown without shadow...
    assert users["dave"].empty_password  # ...but an empty passwd field needs no shadow
    assert all(u.last_login_unix == -1 for u in s.users)  # no login record source: unknown


def _collect_as_nobody(root: Path) -> tuple[bool, dict[str, str], list[str]]:
    """collect_accounts in a forked child that dropped to nobody: a real EACCES, even under root."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(rfd)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            r = collect_accounts(root, ("sudo",))
            s = r.section
            facts = [s.shadow_readable, r.problems, list(s.sudoers_entries), len(s.users)]
            os.write(wfd, json.dumps(facts).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    readable, problems, entries, users = json.loads(data)
    assert users > 10  # passwd itself was readable
    return readable, problems, entries


def test_unreadable_shadow_and_sudoers_are_reported() -> None:
    # Under a world-searchable directory, so that nobody reaches the files and fails only on
    # the two that are closed to it.
    base = Path(tempfile.mkdtemp(prefix="warden-inventory-"))
    try:
        base.chmod(0o755)
        root = copy_rootfs(base)
        (root / "etc/shadow").chmod(0o640)
        (root / "etc/sudoers").chmod(0o440)
        if os.geteuid() != 0:  # not root: close them to ourselves
            (root / "etc/shadow").chmod(0)
            (root / "etc/sudoers").chmod(0)
        readable, problems, entries = _collect_as_nobody(root)
    finally:
        shutil.rmtree(base)
    assert readable is False
    assert problems == {"/etc/sudoers": "Permission denied"}
    assert entries == []


def test_sudoers_grammar() -> None:
    lines = [
        "Defaults env_reset",
        "User_Alias ADMINS = alice, %wheel : OPS = bob",
        "Cmnd_Alias EVERYTHING = ALL",
        "ADMINS ALL=(ALL:ALL) ALL",
        "OPS host1 = (root) /bin/ls : host2 = NOPASSWD: EVERYTHING",
        "carol ALL = (root) TIMEOUT=30 NOPASSWD:ALL",
        "dave ALL = (root) /usr/bin/apt",
        "%#1000, !erin ALL=(ALL) ALL",
        "+netgroup ALL=(ALL) ALL",
        "garbage without an equals sign",
    ]
    assert parse_sudoers_grants(lines) == {"alice", "%wheel", "bob", "carol", "%#1000"}


def test_truncated_login_records_and_include_loops(tmp_path: Path) -> None:
    root = copy_rootfs(tmp_path)
    wtmp = root / "var/log/wtmp"
    wtmp.write_bytes(wtmp.read_bytes()[:-100])  # the last (alice) record is cut
    (root / "var/log/lastlog").write_bytes(b"\x01\x02")  # shorter than one record
    with open(root / "etc/sudoers.local", "a") as f:
        f.write("#include /etc/sudoers\n@includedir /etc/sudoers.d\n")  # loops back
    s = collect_accounts(root, ("sudo",), now=NOW).section
    users = {u.name: u for u in s.users}
    assert users["alice"].last_login_unix == 1772352000  # 2026-03-01T08:00Z, the uncut record
    assert users["frank"].last_login_unix == 1772447400 and users["root"].last_login_unix == 0
    assert "frank" in s.sudoers_entries


def test_lastlog2_database(tmp_path: Path) -> None:
    root = copy_rootfs(tmp_path)
    db = root / "var/lib/lastlog/lastlog2.db"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    # The schema util-linux's liblastlog2 creates.
    conn.execute("CREATE TABLE Lastlog2(Name TEXT PRIMARY KEY, Time INTEGER, TTY TEXT, RemoteHost TEXT, "
                  "Service TEXT)")
    conn.executemany("INSERT INTO Lastlog2 VALUES (?, ?, ?, ?, ?)",
                     [("bob", 1790000000, "pts/3", "203.0.113.9", "sshd"), ("frank", 1, "tty1", "", "login")])
    conn.commit()
    conn.close()
    users = {u.name: u for u in collect_accounts(root, ("sudo",), now=NOW).section.users}
    assert users["bob"].last_login_unix == 1790000000
    assert users["frank"].last_login_unix == 1772447400  # wtmp is newer than lastlog2 here
    db.write_bytes(b"not a database")
    res = collect_accounts(root, ("sudo",), now=NOW)
    assert "/var/lib/lastlog/lastlog2.db" in res.problems
    assert {u.name: u.last_login_unix for u in res.section.users}["frank"] == 1772447400


# --- firewall ---------------------------------------------------------------------------------------


Tool = tuple[str | None, str | None, int]


def firewall(tmp_path: Path, **tools: Tool | str) -> records_pb2.FirewallSection:
    bin_dir = tool_dir(tmp_path, **tools)
    probe = fixture_probe(tmp_path, bin_dir, sections=("firewall",), tool_timeout_seconds=1.0)
    return sections(probe.collect())["firewall"].firewall


def backends(fw: records_pb2.FirewallSection) -> dict[str, records_pb2.FirewallBackend]:
    return {b.name: b for b in fw.backends}


def test_firewall_all_backends_active(tmp_path: Path) -> None:
    fw = firewall(
        tmp_path,
        nft=("nft_ruleset.json", None, 0),
        iptables_save=("iptables_save.txt", None, 0),
        ip6tables_save=("iptables_save_empty.txt", None, 0),
        ufw=("ufw_status_verbose_active.txt", None, 0),
    )
    b = backends(fw)
    assert fw.active
    assert (b["nftables"].present, b["nftables"].active, b["nftables"].rule_count) == (True, True, 4)
    assert (b["iptables"].active, b["iptables"].rule_count, b["iptables"].error) == (True, 6, "")
    assert (b["ufw"].active, b["ufw"].rule_count) == (True, 5)
    assert not b["firewalld"].present and b["firewalld"].error == "firewall-cmd not installed"


def test_firewall_inactive_and_empty(tmp_path: Path) -> None:
    fw = firewall(
        tmp_path,
        nft=("nft_ruleset_empty.json", None, 0),
        iptables_save=("iptables_save_empty.txt", None, 0),
        ufw=("ufw_status_verbose_inactive.txt", None, 0),
        firewall_cmd="echo 'not running'; exit 252",
    )
    b = backends(fw)
    assert not fw.active
    assert all(x.present and not x.active and not x.error for x in fw.backends)
    assert b["nftables"].rule_count == 0 and b["iptables"].rule_count == 0


def test_firewall_tools_missing(tmp_path: Path) -> None:
    fw = firewall(tmp_path)
    assert not fw.active
    assert {b.name: (b.present, b.error) for b in fw.backends} == {
        "nftables": (False, "nft not installed"),
        "iptables": (False, "iptables not installed"),
        "ufw": (False, "ufw not installed"),
        "firewalld": (False, "firewall-cmd not installed"),
    }


def test_firewall_permission_denied(tmp_path: Path) -> None:
    fw = firewall(
        tmp_path,
        nft=(None, "nft_denied.stderr", 1),
        iptables_save=(None, "iptables_save_denied.stderr", 4),
        ufw=(None, "ufw_denied.stderr", 1),
    )
    b = backends(fw)
    assert not fw.active
    assert b["nftables"].present and b["nftables"].error == "nft: permission denied"
    assert b["iptables"].present and b["iptables"].error == "iptables-save: permission denied"
    assert b["ufw"].present and b["ufw"].error == "ufw: permission denied"


def test_firewall_garbled_truncated_and_hung_tools(tmp_path: Path) -> None:
    t0 = time.monotonic()
    fw = firewall(
        tmp_path,
        nft=("nft_ruleset_truncated.json", None, 0),
        iptables_save=("iptables_garbled.txt", None, 0),
        iptables="exit 0",
        ufw=("ufw_garbled.txt", None, 0),
        firewall_cmd="/bin/sleep 30",
    )
    assert time.monotonic() - t0 < 10  # the hung firewall-cmd was killed at its 1 s timeout
    b = backends(fw)
    # A cut-off ruleset still proves rules exist: counted as a lower bound, flagged.
    assert b["nftables"].active and b["nftables"].rule_count > 10
    assert b["nftables"].error.startswith("unparseable output") and "at least" in b["nftables"].error
    assert not b["iptables"].active and "unrecognised output" in b["iptables"].error
    assert not b["ufw"].active and "unrecognised" in b["ufw"].error
    assert b["firewalld"].error == "firewall-cmd: timed out"
    assert fw.active  # nftables rules were seen


def test_firewall_parsers_on_captured_outputs() -> None:
    read = lambda name: (TOOLS / name).read_text(errors="replace")  # noqa: E731
    assert parse_nft_json(read("nft_ruleset.json")) == (4, True, "")
    assert parse_nft_json(read("nft_ruleset_ufw.json")) == (175, True, "")
    assert parse_nft_json(read("nft_ruleset_empty.json")) == (0, False, "")
    rules, drops, error = parse_nft_json(read("nft_garbled.json"))
    # The one rule object that arrived before the garbage still counts, as a lower bound.
    assert (rules, drops) == (1, False) and error == "unparseable output (JSONDecodeError); at least 1 rules"
    assert parse_iptables(read("iptables_save.txt")) == (6, False, "")
    assert parse_iptables(read("iptables_S.txt")) == (6, False, "")
    assert parse_iptables(read("iptables_save_ufw.txt")) == (69, True, "")
    assert parse_iptables(read("iptables_save_empty.txt")) == (0, False, "")
    rules, _, error = parse_iptables(read("iptables_save_truncated.txt"), truncated=True)
    assert error.startswith("output truncated")
    assert parse_ufw_status(read("ufw_status_verbose_active.txt")) == (True, 5, "")
    assert parse_ufw_status(read("ufw_status_verbose_inactive.txt")) == (False, 0, "")


def test_tool_output_is_bounded(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, nft="/usr/bin/yes '{\"rule\": {}},'")  # endless output
    res = run_tool(["nft"], timeout=5, max_bytes=64 * 1024, path=str(bin_dir))
    assert res.ok and res.truncated and len(res.stdout) == 64 * 1024
    assert run_tool(["nope"], timeout=1, path=str(bin_dir)).status == "missing"


# --- time sync ---------------------------------------------------------------------------------------


def time_sync(
    tmp_path: Path, kernel: bool | None = True, **tools: Tool
) -> tuple[records_pb2.TimeSyncSection, dict[str, float], list[records_pb2.Event]]:
    probe = fixture_probe(tmp_path, tool_dir(tmp_path, **tools), sections=("time_sync",))
    probe._kernel_clock = lambda: kernel
    out = probe.collect()
    return sections(out)["time_sync"].time_sync, metrics(out), events(out)


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        ({"timedatectl": ("timedatectl_show_synced.txt", None, 0)}, ("systemd-timesyncd", True, True)),
        ({"timedatectl": ("timedatectl_show_unsynced.txt", None, 0)}, ("systemd-timesyncd", False, True)),
        (
            {
                "timedatectl": (None, "timedatectl_no_systemd.stderr", 1),
                "chronyc": ("chronyc_tracking_synced.txt", None, 0),
            },
            ("chrony", True, True),
        ),
        ({"chronyc": ("chronyc_tracking_unsync.txt", None, 0)}, ("chrony", False, True)),
        ({"chronyc": ("chronyc_tracking_local.txt", None, 0)}, ("chrony", False, True)),
        # Truncated or refused answers fall through to the kernel's clock status (True here).
        (
            {
                "timedatectl": ("timedatectl_truncated.txt", None, 0),
                "chronyc": (None, "chronyc_no_daemon.stderr", 1),
            },
            ("systemd-timesyncd", True, True),
        ),
        ({"chronyc": ("chronyc_tracking_truncated.txt", None, 0)}, ("systemd-timesyncd", True, True)),
    ],
)
def test_time_sync_sources(
    tmp_path: Path, tools: dict[str, tuple[str | None, str | None, int]], expected: tuple[str, bool, bool]
) -> None:
    section, got, evs = time_sync(tmp_path, **tools)
    assert (section.service, section.synchronized, section.ntp_enabled) == expected
    assert got["time_sync_synchronized"] == (1.0 if expected[1] else 0.0)
    assert evs == []


def test_time_sync_nothing_answers(tmp_path: Path) -> None:
    section, got, evs = time_sync(tmp_path, kernel=None)
    assert not section.synchronized and "time_sync_synchronized" not in got
    (ev,) = evs
    assert ev.kind == "inventory.source_error" and ev.fields["section"].string_value == "time_sync"


def test_time_sync_parsers() -> None:
    assert parse_timedatectl_show((TOOLS / "timedatectl_show_synced.txt").read_text()) == (True, True)
    assert parse_timedatectl_show("garbage") is None
    assert parse_chronyc_tracking((TOOLS / "chronyc_tracking_synced.txt").read_text()) is True
    assert parse_chronyc_tracking((TOOLS / "chronyc_tracking_unsync.txt").read_text()) is False
    assert parse_chronyc_tracking("506 Cannot talk to daemon") is None


# --- listening ---------------------------------------------------------------------------------------


def test_listening_falls_back_to_procfs_when_psutil_is_denied(tmp_path: Path) -> None:
    def denied() -> list[object]:
        raise psutil.AccessDenied(pid=None, name="net_connections")

    probe = fixture_probe(tmp_path, sections=("listening",))
    probe._connections = denied
    out = probe.collect()
    ports = [(p.protocol, p.address, p.port, p.pid) for p in sections(out)["listening"].listening.ports]
    assert ports == [
        ("tcp", "0.0.0.0", 22, -1),
        ("tcp", "127.0.0.1", 5432, -1),
        ("tcp6", "::", 22, -1),
        ("tcp6", "::1", 631, -1),
        ("udp", "127.0.0.53", 53, -1),
        ("udp", "0.0.0.0", 123, -1),
        ("udp6", "::", 5353, -1),
    ]  # not 0.0.0.0:45000/udp (ephemeral), nor the connected UDP and established TCP sockets
    assert metrics(out)["inventory_listening_ports"] == 7
    (ev,) = events(out)
    assert ev.kind == "inventory.source_error" and ev.fields["source"].string_value == "psutil"
    assert events(probe.collect()) == []  # reported once

    with_eph = collect_listening(FIX / "proc", udp_ephemeral=True, connections=denied)
    assert ("udp", "0.0.0.0", 45000) in {(p.protocol, p.address, p.port) for p in with_eph.section.ports}


def test_listening_from_psutil_dedupes_shared_sockets() -> None:
    v4, v6, tcp, udp = socket.AF_INET, socket.AF_INET6, socket.SOCK_STREAM, socket.SOCK_DGRAM
    me = os.getpid()
    conns = [
        sconn(3, v4, tcp, addr("0.0.0.0", 8080), (), "LISTEN", me + 1),  # a worker sharing the socket
        sconn(3, v4, tcp, addr("0.0.0.0", 8080), (), "LISTEN", me),
        sconn(4, v4, tcp, addr("10.0.0.1", 8080), addr("10.0.0.2", 5555), "ESTABLISHED", me),
        sconn(5, v6, udp, addr("::", 5353), (), "NONE", None),
        sconn(6, v4, udp, addr("10.0.0.1", 40000), addr("10.0.0.53", 53), "NONE", me),
        sconn(7, v6, tcp, addr("fe80::1%eth0", 22), (), "LISTEN", None),
    ]
    res = collect_listening(FIX / "proc", udp_ephemeral=False, connections=lambda: conns)
    got = [(p.protocol, p.address, p.port, p.pid, p.process) for p in res.section.ports]
    assert got == [
        ("tcp", "0.0.0.0", 8080, me, psutil.Process().name()),
        ("tcp6", "fe80::1", 22, -1, ""),
        ("udp6", "::", 5353, -1, ""),
    ]
    assert res.source == "psutil" and res.problem == ""


def test_proc_net_parser_skips_garbage() -> None:
    text = (FIX / "proc/net/tcp").read_text()
    assert parse_proc_net(text, "tcp") == [("0.0.0.0", 22), ("127.0.0.1", 5432)]
    lines = text.splitlines()
    # A garbage line, then the 5432 line cut before its state field, then binary junk.
    cut = "\n".join(lines[:2]) + "\n   9: ZZZZ:GGGG 00000000:0000 0A\n" + lines[2][:25] + "\x00\x01"
    assert parse_proc_net(cut, "tcp") == [("0.0.0.0", 22)]


# --- network, antivirus ---------------------------------------------------------------------------------


def test_network_interfaces() -> None:
    section = collect_network(
        ("lo", "veth*"),
        addrs=lambda: {
            "eth0": [
                snicaddr(psutil.AF_LINK, "52:54:00:AB:CD:EF", None, None, None),
                snicaddr(socket.AF_INET6, "2001:db8::10", "ffff:ffff:ffff:ffff::", None, None),
                snicaddr(socket.AF_INET, "192.0.2.10", "255.255.255.0", None, None),
            ],
            "veth1a2b": [snicaddr(psutil.AF_LINK, "aa:bb:cc:dd:ee:ff", None, None, None)],
            "wg0": [snicaddr(socket.AF_INET, "10.8.0.1", None, None, None)],
            "lo": [],
        },
        stats=lambda: {"eth0": snicstats(True, 2, 1000, 1500, ""), "wg0": snicstats(False, 0, -1, 1420, "")},
    )
    got = [(i.name, i.mac, list(i.addresses), i.up, i.speed_mbps, i.mtu) for i in section.interfaces]
    assert got == [
        ("eth0", "52:54:00:ab:cd:ef", ["192.0.2.10/24", "2001:db8::10/64"], True, 1000, 1500),
        ("wg0", "", ["10.8.0.1"], False, 0, 1420),
    ]


def test_antivirus_from_clamav_databases(tmp_path: Path) -> None:
    root = copy_rootfs(tmp_path)
    av = collect_antivirus(root, ("/var/lib/clamav",), str(tmp_path / "nobin"), now=NOW)
    # daily.cld's header build time, not any file's mtime.
    assert (av.product, av.installed, av.signatures_time_unix) == ("clamav", True, 1587038339)
    assert av.signature_age_hours == pytest.approx((NOW - 1587038339) / 3600, abs=0.01)
    assert signature_time(root / "var/lib/clamav/main.cvd") == 1574690160
    assert signature_time(root / "var/lib/clamav/bytecode.cvd") == 1500000000  # no header: mtime
    assert signature_time(root / "var/lib/clamav/missing.cvd") is None

    os.utime(root / "var/lib/clamav/bytecode.cvd", (1600000000, 1600000000))
    assert collect_antivirus(root, ("/var/lib/clamav",), "", now=NOW).signatures_time_unix == 1600000000

    shutil.rmtree(root / "var/lib/clamav")
    assert collect_antivirus(root, ("/var/lib/clamav",), str(tmp_path / "nobin"), now=NOW) == (
        records_pb2.AntivirusSection()
    )
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/freshclam").write_text("")
    av = collect_antivirus(root, ("/var/lib/clamav",), "/usr/bin", now=NOW)
    assert av.installed and av.product == "clamav" and av.signatures_time_unix == 0


# --- the probe: sending rules, failures, validation -----------------------------------------------------


def test_sections_resent_only_when_changed_or_after_the_interval(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, ufw=("ufw_status_verbose_active.txt", None, 0))
    probe = fixture_probe(tmp_path, bin_dir)
    first = probe.collect()
    assert set(sections(first)) == set(SECTIONS)
    got = metrics(first)
    assert got["inventory_accounts_uid0"] == 2 and got["inventory_accounts_admins"] == 6
    assert got["inventory_accounts_empty_password"] == 2 and got["inventory_firewall_active"] == 1
    assert got["antivirus_signature_age_hours"] > 0 and got["time_sync_synchronized"] == 1
    assert [i.name for i in sections(first)["network"].network.interfaces] == ["eth0"]

    time.sleep(0.01)  # the signature age grows; the antivirus section must not count as changed
    assert sections(probe.collect()) == {}

    with open(probe.paths.rootfs / "etc/passwd", "a") as f:
        f.write("newbie:x:1010:1010::/home/newbie:/bin/bash\n")
    changed = sections(probe.collect())
    assert set(changed) == {"accounts"}
    assert "newbie" in {u.name for u in changed["accounts"].accounts.users}
    assert sections(probe.collect()) == {}

    probe.options = InventoryOptions(tool_path=str(bin_dir), resend_interval_seconds=0.05)
    time.sleep(0.06)
    assert set(sections(probe.collect())) == set(SECTIONS)


def test_a_failing_section_is_reported_once_and_the_others_go_on(tmp_path: Path) -> None:
    def broken() -> dict[str, list[object]]:
        raise RuntimeError("netlink exploded")

    probe = fixture_probe(tmp_path)
    probe._if_addrs = broken
    out = probe.collect()
    assert set(sections(out)) == set(SECTIONS) - {"network"}
    (ev,) = events(out)
    assert (ev.kind, ev.severity) == ("inventory.section_failed", records_pb2.SEVERITY_ERROR)
    assert ev.fields["section"].string_value == "network"
    assert "netlink exploded" in ev.fields["error"].string_value
    assert ev.source == "probe:inventory"
    assert events(probe.collect()) == []
    probe._if_addrs = lambda: {}
    assert "network" in sections(probe.collect())
    probe._if_addrs = broken
    assert len(events(probe.collect())) == 1  # came back: reported again


def test_empty_host_reports_without_failing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    probe = InventoryProbe(
        InventoryOptions(tool_path=str(empty)),
        HostPaths(proc_root=empty, sys_root=empty, rootfs=empty),
        connections=lambda: [],
        processes=lambda: [],
        kernel_clock=lambda: None,
        if_addrs=dict,
        if_stats=dict,
    )
    out = probe.collect()
    inv = sections(out)
    assert set(inv) == set(SECTIONS)
    assert len(inv["accounts"].accounts.users) == 0 and not inv["accounts"].accounts.shadow_readable
    assert not inv["firewall"].firewall.active and not inv["antivirus"].antivirus.installed
    assert [e.fields["section"].string_value for e in events(out)] == ["time_sync"]


def test_validate_rejects_unknown_sections() -> None:
    with pytest.raises(ValueError, match="unknown"):
        InventoryProbe(InventoryOptions(sections=("network", "printers")), HostPaths()).validate()
    with pytest.raises(ValueError, match="tool_path"):
        InventoryProbe(InventoryOptions(tool_path=":"), HostPaths()).validate()
