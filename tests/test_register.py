"""The machine register's change events (collector/register.py): the diff of every section on
dicts shaped exactly as the collector stores them (translate._to_dict of the real messages),
then through a real SqliteStore, then through a real collector over gRPC."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from warden.agent import records as agent_records
from warden.agent.enroll import enroll
from warden.collector.records import Batch, Event, InventorySection
from warden.collector.register import MAX_EVENTS_PER_DIFF, SOURCE, diff_section
from warden.collector.store.sqlite import SqliteStore
from warden.collector.translate import _to_dict
from warden.v1 import collector_pb2, records_pb2

from .harness import CollectorProc, wait_for
from .test_security import _report

pb = records_pb2


def d(msg: Message) -> dict[str, Any]:
    return _to_dict(msg)


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def one(events: list[Event], kind: str) -> Event:
    (e,) = [e for e in events if e.kind == kind]
    return e


# --- sections as an agent would send them -------------------------------------------------------

SDA = pb.BlockDevice(name="sda", model="ST4000DM004", serial="ZFN0ABCD", size_bytes=4 * 10**12,
                     rotational=True, transport="sata")
NVME = pb.BlockDevice(name="nvme0n1", model="Samsung SSD 980 PRO 1TB", serial="S5GX", size_bytes=10**12,
                      transport="nvme")
USB = pb.BlockDevice(name="sdb", model="Ultra Fit", size_bytes=32 * 10**9, transport="usb")  # no serial


def hardware(*disks: pb.BlockDevice) -> dict[str, Any]:
    return d(pb.HardwareSection(cpu_model="EPYC", cpu_cores_logical=2, memory_bytes=8 << 30,
                                virtualization="kvm", disks=list(disks)))


ETH0 = pb.NetworkInterface(name="eth0", mac="52:54:00:ab:cd:ef", addresses=["192.0.2.10/24"], up=True)
WG0 = pb.NetworkInterface(name="wg0", addresses=["10.8.0.1/24"], up=True)


def network(*nics: pb.NetworkInterface) -> dict[str, Any]:
    return d(pb.NetworkSection(interfaces=list(nics)))


def account(name: str, uid: int, **kw: Any) -> pb.Account:
    return pb.Account(name=name, uid=uid, gid=uid, shell="/bin/bash", login_shell=True, **kw)


def accounts(*users: pb.Account, admins: tuple[str, ...] = ("root",)) -> dict[str, Any]:
    uid0 = [u.name for u in users if u.uid == 0]
    return d(pb.AccountsSection(users=list(users), uid0_users=uid0,
                                admin_users=sorted(set(admins) | set(uid0)), shadow_readable=True))


ROOT = account("root", 0, admin=True, locked=True)
ALICE = account("alice", 1000, last_login_unix=1772612100)


def port(protocol: str, address: str, number: int, process: str = "sshd", pid: int = 812) -> pb.ListeningPort:
    return pb.ListeningPort(protocol=protocol, address=address, port=number, pid=pid, process=process,
                            user="root")


def listening(*ports: pb.ListeningPort) -> dict[str, Any]:
    return d(pb.ListeningSection(ports=list(ports)))


def firewall(active: bool, rules: int = 4) -> dict[str, Any]:
    return d(pb.FirewallSection(active=active, backends=[
        pb.FirewallBackend(name="nftables", present=True, active=active, rule_count=rules if active else 0),
        pb.FirewallBackend(name="ufw", present=False, error="ufw not installed"),
    ]))


# --- one diff per change kind --------------------------------------------------------------------


def test_disk_added_and_removed_by_serial_or_name() -> None:
    evs = diff_section("h1", "hardware", hardware(SDA, USB), hardware(SDA, NVME))
    assert kinds(evs) == ["register.disk_added", "register.disk_removed"]
    added, removed = evs
    assert (added.severity, added.fields["name"], added.fields["serial"]) == ("notice", "nvme0n1", "S5GX")
    assert added.fields["size_bytes"] == 10**12 and added.fields["transport"] == "nvme"
    assert (removed.severity, removed.fields["name"], removed.fields["serial"]) == ("warning", "sdb", "")
    assert all(e.source == SOURCE and abs(e.time_ns - time.time_ns()) < 10e9 for e in evs)
    # The same disk under a new name (moved to another port) is not a change: keyed by serial.
    moved = pb.BlockDevice()
    moved.CopyFrom(SDA)
    moved.name = "sdc"
    assert diff_section("h1", "hardware", hardware(SDA), hardware(moved)) == []


def test_first_disks_ever_are_a_baseline() -> None:
    # An agent older than the disks field stored none: its upgrade must not announce every disk.
    assert diff_section("h1", "hardware", hardware(), hardware(SDA, NVME)) == []
    assert diff_section("h1", "hardware", hardware(SDA), hardware()) != []


def test_nic_added_and_removed() -> None:
    evs = diff_section("h1", "network", network(ETH0), network(ETH0, WG0))
    assert kinds(evs) == ["register.nic_added"]
    assert evs[0].fields == {"name": "wg0", "mac": "", "addresses": "10.8.0.1/24"}
    evs = diff_section("h1", "network", network(ETH0, WG0), network(WG0))
    assert kinds(evs) == ["register.nic_removed"] and evs[0].severity == "warning"
    assert evs[0].fields["mac"] == "52:54:00:ab:cd:ef"
    # An address change on the same NIC is not a NIC change.
    renumbered = pb.NetworkInterface()
    renumbered.CopyFrom(ETH0)
    renumbered.addresses[:] = ["192.0.2.99/24"]
    assert diff_section("h1", "network", network(ETH0), network(renumbered)) == []


def test_new_uid0_account_is_critical() -> None:
    toor = account("toor", 0, admin=True)
    evs = diff_section("h1", "accounts", accounts(ROOT, ALICE), accounts(ROOT, ALICE, toor))
    assert kinds(evs) == ["register.account_added", "register.admin_added"]
    assert one(evs, "register.account_added").severity == "warning"
    admin = one(evs, "register.admin_added")
    assert admin.severity == "critical"
    assert admin.fields == {"name": "toor", "uid0": True, "new_account": True}


def test_existing_account_becoming_admin_and_losing_it() -> None:
    sudoer = account("alice", 1000, admin=True)
    evs = diff_section("h1", "accounts", accounts(ROOT, ALICE), accounts(ROOT, sudoer, admins=("alice",)))
    assert kinds(evs) == ["register.admin_added"]
    assert evs[0].severity == "warning"
    assert evs[0].fields == {"name": "alice", "uid0": False, "new_account": False}
    evs = diff_section("h1", "accounts", accounts(ROOT, sudoer, admins=("alice",)), accounts(ROOT, ALICE))
    assert kinds(evs) == ["register.admin_removed"] and evs[0].fields == {"name": "alice"}


def test_account_added_removed_and_empty_password() -> None:
    bob = account("bob", 1001, empty_password=True)
    evs = diff_section("h1", "accounts", accounts(ROOT, ALICE), accounts(ROOT, bob))
    assert kinds(evs) == ["register.account_added", "register.account_removed", "register.empty_password"]
    assert one(evs, "register.account_added").fields["name"] == "bob"
    assert one(evs, "register.account_removed").fields["name"] == "alice"
    empty = one(evs, "register.empty_password")
    assert empty.severity == "warning"
    assert empty.fields == {"name": "bob", "admin": False, "new_account": True}
    # An existing admin whose password became empty: critical.
    root_empty = account("root", 0, admin=True, empty_password=True)
    evs = diff_section("h1", "accounts", accounts(ROOT), accounts(root_empty))
    assert kinds(evs) == ["register.empty_password"] and evs[0].severity == "critical"


def test_port_opened_and_closed() -> None:
    ssh = port("tcp", "0.0.0.0", 22)
    pg = port("tcp", "127.0.0.1", 5432, "postgres", 900)
    mdns = port("udp6", "::", 5353, "avahi-daemon", 700)
    evs = diff_section("h1", "listening", listening(ssh, pg), listening(ssh, mdns))
    assert kinds(evs) == ["register.port_opened", "register.port_closed"]
    opened, closed = evs
    assert opened.severity == "notice" and opened.fields == {
        "protocol": "udp6", "address": "::", "port": 5353, "process": "avahi-daemon", "pid": 700,
        "user": "root", "wildcard": True,
    }
    assert (closed.severity, closed.fields["port"], closed.fields["process"]) == ("info", 5432, "postgres")
    evs = diff_section("h1", "listening", listening(ssh), listening(ssh, pg))
    assert evs[0].severity == "info"  # loopback only
    # A restarted daemon (new pid) on the same port is not a port change.
    restarted = port("tcp", "0.0.0.0", 22, pid=999)
    assert diff_section("h1", "listening", listening(ssh), listening(restarted)) == []


def test_firewall_disabled_and_enabled() -> None:
    evs = diff_section("h1", "firewall", firewall(True), firewall(False))
    assert kinds(evs) == ["register.firewall_disabled"]
    assert evs[0].severity == "critical"
    assert evs[0].fields == {"backends": "nftables", "rule_count": 4, "errors": "ufw: ufw not installed"}
    evs = diff_section("h1", "firewall", firewall(False), firewall(True, 9))
    assert kinds(evs) == ["register.firewall_enabled"] and evs[0].severity == "info"
    assert evs[0].fields == {"backends": "nftables", "rule_count": 9}
    assert diff_section("h1", "firewall", firewall(True, 4), firewall(True, 5)) == []


def test_antivirus_removed_and_timesync_lost() -> None:
    clam = d(pb.AntivirusSection(product="clamav", installed=True, signatures_time_unix=1587038339,
                                 signature_age_hours=5.0))
    evs = diff_section("h1", "antivirus", clam, d(pb.AntivirusSection()))
    assert kinds(evs) == ["register.antivirus_removed"] and evs[0].fields == {"product": "clamav"}
    assert evs[0].severity == "warning"
    assert diff_section("h1", "antivirus", d(pb.AntivirusSection()), clam) == []

    synced = d(pb.TimeSyncSection(service="chrony", synchronized=True, ntp_enabled=True))
    lost = d(pb.TimeSyncSection(service="chrony", synchronized=False, ntp_enabled=True))
    evs = diff_section("h1", "time_sync", synced, lost)
    assert kinds(evs) == ["register.timesync_lost"] and evs[0].severity == "warning"
    assert evs[0].fields == {"service": "chrony", "ntp_enabled": True}
    assert diff_section("h1", "time_sync", lost, synced) == []


def test_no_events_without_a_change_that_matters() -> None:
    for section, data in [
        ("hardware", hardware(SDA, NVME)),
        ("network", network(ETH0, WG0)),
        ("accounts", accounts(ROOT, ALICE)),
        ("listening", listening(port("tcp", "0.0.0.0", 22))),
        ("firewall", firewall(True)),
        ("antivirus", d(pb.AntivirusSection(product="clamav", installed=True))),
        ("time_sync", d(pb.TimeSyncSection(synchronized=True))),
    ]:
        assert diff_section("h1", section, data, data) == [], section
    # Reordered lists, a password getting older, a new login: not register changes.
    older = account("alice", 1000, last_login_unix=1800000000, password_age_days=400)
    assert diff_section("h1", "accounts", accounts(ROOT, ALICE), accounts(older, ROOT)) == []
    assert diff_section("h1", "hardware", hardware(SDA, NVME), hardware(NVME, SDA)) == []
    # Sections the register does not watch.
    assert diff_section("h1", "os", {"kernel": "6.1"}, {"kernel": "6.12"}) == []
    assert diff_section("h1", "packages", {"count": 1}, {"count": 2}) == []


def test_malformed_data_becomes_one_error_event() -> None:
    bad = {"ports": [{"protocol": "tcp", "address": "0.0.0.0", "port": "twenty-two"}]}
    (ev,) = diff_section("h1", "listening", listening(), bad)
    assert (ev.kind, ev.severity, ev.fields["section"]) == ("register.diff_failed", "error", "listening")
    # Missing keys and wrong types are tolerated as empty.
    assert diff_section("h1", "accounts", {}, {"users": "nonsense", "admin_users": None}) == []


def test_a_wholesale_change_is_capped() -> None:
    many = [port("udp", "0.0.0.0", 1000 + i) for i in range(MAX_EVENTS_PER_DIFF + 50)]
    evs = diff_section("h1", "listening", listening(), listening(*many))
    assert len(evs) == MAX_EVENTS_PER_DIFF + 1
    assert evs[-1].kind == "register.changes_truncated" and evs[-1].fields == {"section": "listening",
                                                                                  "omitted": 50}


# --- through a real SqliteStore -------------------------------------------------------------------


def inv(section: str, data: dict[str, Any], t: int) -> InventorySection:
    return InventorySection(section=section, time_ns=t, data=data)


def test_store_records_change_events_in_the_same_commit(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "warden.db", inventory_observer=diff_section)
    try:
        t1 = 1_790_000_000 * 10**9
        ssh = port("tcp", "0.0.0.0", 22)
        first = [inv("hardware", hardware(SDA), t1), inv("accounts", accounts(ROOT, ALICE), t1),
                 inv("listening", listening(ssh), t1), inv("firewall", firewall(True), t1)]
        store.commit_batches([Batch("h1", "sp", 1, 4, first)], t1)
        assert store.events("h1") == []  # a first copy is a baseline

        t2 = t1 + 3600 * 10**9
        toor = account("toor", 0, admin=True)
        backdoor = port("tcp", "0.0.0.0", 4444, "nc")
        second = [inv("hardware", hardware(SDA, NVME), t2), inv("accounts", accounts(ROOT, ALICE, toor), t2),
                  inv("listening", listening(ssh, backdoor), t2), inv("firewall", firewall(False), t2)]
        store.commit_batches([Batch("h1", "sp", 5, 8, second)], t2)
        stored = store.events("h1")
        assert sorted(e.event.kind for e in stored) == [
            "register.account_added", "register.admin_added", "register.disk_added",
            "register.firewall_disabled", "register.port_opened",
        ]
        by_kind = {e.event.kind: e.event for e in stored}
        assert by_kind["register.admin_added"].severity == "critical"
        assert by_kind["register.port_opened"].fields["process"] == "nc"
        assert all(e.event.source == SOURCE and e.host_id == "h1" for e in stored)
        assert store.inventory("h1")["firewall"][1]["active"] is False

        # The same sections resent (an agent restart): nothing new.
        store.commit_batches([Batch("h1", "sp2", 1, 4, [inv(r.section, r.data, t2 + 1) for r in second])], t2)
        assert len(store.events("h1")) == 5
        assert store.events("h2") == []
    finally:
        store.close()


# --- through a real collector over gRPC --------------------------------------------------------------


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    c = CollectorProc(tmp_path_factory.mktemp("collector"))
    c.start()
    yield c
    c.stop()


def _inventory_batch(first: int, *sections: Message) -> collector_pb2.Batch:
    b = collector_pb2.Batch(first_seq=first, last_seq=first + len(sections) - 1)
    for s in sections:
        b.records.append(agent_records.inventory(s))
    return b


async def test_collector_turns_register_changes_into_events(collector: CollectorProc, tmp_path: Path) -> None:
    state = tmp_path / "register-host"
    enroll(collector.enroll_address, collector.token(), state, host_id="register-host")
    ufw_on = pb.FirewallBackend(name="ufw", present=True, active=True, rule_count=5)
    before_fw = pb.FirewallSection(active=True, backends=[ufw_on])
    after_fw = pb.FirewallSection(active=False, backends=[pb.FirewallBackend(name="ufw", present=True)])
    nic = pb.NetworkSection(interfaces=[ETH0])
    resp = await _report(state, collector.report_port, _inventory_batch(1, before_fw, nic))
    assert resp[1].ack.committed_seq == 2
    resp = await _report(state, collector.report_port,
                         _inventory_batch(3, after_fw, pb.NetworkSection(interfaces=[ETH0, WG0])))
    assert resp[1].ack.committed_seq == 4

    def register_events() -> list[dict[str, Any]]:
        evs = collector.get("/api/v1/events?host=register-host")["events"]
        return [e for e in evs if e["source"] == SOURCE]

    evs = wait_for(lambda: len(register_events()) == 2 and register_events(), what="register events")
    by_kind = {e["kind"]: e for e in evs}
    assert set(by_kind) == {"register.firewall_disabled", "register.nic_added"}
    assert by_kind["register.firewall_disabled"]["severity"] == "critical"
    assert by_kind["register.firewall_disabled"]["fields"]["backends"] == "ufw"
    assert by_kind["register.nic_added"]["fields"]["name"] == "wg0"


def test_an_existing_admin_given_uid_0_is_reported() -> None:
    from warden.collector.register import diff_section

    def accounts(alice_uid: int) -> dict:
        uid0 = ["root"] + (["alice"] if alice_uid == 0 else [])
        return {"users": [{"name": "root", "uid": 0, "admin": True}, {"name": "alice", "uid": alice_uid,
                                                                        "admin": True}],
                "groups": [], "uid0_users": uid0, "admin_users": ["alice", "root"], "sudoers_entries": [],
                "shadow_readable": True}

    events = list(diff_section("h", "accounts", accounts(1000), accounts(0)))
    added = [e for e in events if e.kind == "register.admin_added"]
    assert [(e.fields["name"], e.fields["uid0"], e.fields["new_account"]) for e in added] == [
        ("alice", True, False)]
    assert added[0].severity == "critical"
