"""The machine register's change events: what changed between two stored copies of a host's
inventory section.

`diff_section` is the store's `InventoryObserver`: SqliteStore calls it inside the commit that
replaces a section (only when there was an older copy and it differs), and stores the events it
returns in the same transaction. Sections arrive as `translate._to_dict` made them: every field
present, repeated messages as lists of dicts.

Timestamps: the observer gets only the two data dicts, not the snapshot's time, so events are
stamped with the collector's clock (`time.time_ns()`) when the change is committed; that is
within one agent send interval of the change itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from warden.collector.records import Event, FieldValue

__all__ = ["MAX_EVENTS_PER_DIFF", "SOURCE", "diff_section"]

log = logging.getLogger(__name__)

SOURCE = "collector:register"
# A host whose register changed wholesale (a reinstall, a new image) should not flood the
# event table: past this many events per section change, one summary event says how many more.
MAX_EVENTS_PER_DIFF = 200
_MAX_TEXT = 1000  # event field strings stay within the collector's own value limits

_WILDCARD = {"0.0.0.0", "::", "*", ""}


def diff_section(host_id: str, section: str, old: dict[str, Any], new: dict[str, Any]) -> list[Event]:
    """Change events for `section` going from `old` to `new` (both data dicts).

    Never raises: the caller is inside a group commit, and one odd section must not fail every
    batch in it; a diff that breaks becomes a `register.diff_failed` event instead.
    """
    differ = _DIFFERS.get(section)
    if differ is None:
        return []
    t = time.time_ns()
    try:
        events = list(differ(old or {}, new or {}, t))
    except Exception as e:  # malformed data from a misbehaving agent
        log.exception("register: diffing %s/%s failed", host_id, section)
        return [_event("register.diff_failed", "error", t, section=section, error=f"{type(e).__name__}: {e}")]
    if len(events) > MAX_EVENTS_PER_DIFF:
        dropped = len(events) - MAX_EVENTS_PER_DIFF
        events = events[:MAX_EVENTS_PER_DIFF]
        events.append(_event("register.changes_truncated", "warning", t, section=section, omitted=dropped))
    return events


def _event(kind: str, severity: str, t: int, **fields: FieldValue) -> Event:
    clean = {k: (v[:_MAX_TEXT] if isinstance(v, str) else v) for k, v in fields.items()}
    return Event(kind=kind, severity=severity, time_ns=t, fields=clean, source=SOURCE)


def _items(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key)
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _names(data: dict[str, Any], key: str) -> set[str]:
    value = data.get(key)
    return {str(x) for x in value} if isinstance(value, list) else set()


def _keyed(items: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[Any, dict[str, Any]]:
    return {key(x): x for x in items}


# --- hardware: disks -------------------------------------------------------------------------------


def _disk_key(d: dict[str, Any]) -> tuple[str, str]:
    # The serial follows a disk moved to another slot (sdb -> sdc); the name is all an unreadable
    # serial leaves.
    serial = str(d.get("serial") or "")
    return ("serial", serial) if serial else ("name", str(d.get("name", "")))


def _hardware(old: dict[str, Any], new: dict[str, Any], t: int) -> Iterable[Event]:
    before, after = _items(old, "disks"), _items(new, "disks")
    if not before and after:
        # First copy with disks (an agent older than the field sent none): a baseline, not news.
        return
    b, a = _keyed(before, _disk_key), _keyed(after, _disk_key)
    for k in sorted(a.keys() - b.keys()):
        yield _event("register.disk_added", "notice", t, **_disk_fields(a[k]))
    for k in sorted(b.keys() - a.keys()):
        yield _event("register.disk_removed", "warning", t, **_disk_fields(b[k]))


def _disk_fields(d: dict[str, Any]) -> dict[str, FieldValue]:
    return {
        "name": str(d.get("name", "")),
        "model": str(d.get("model", "")),
        "serial": str(d.get("serial", "")),
        "size_bytes": int(d.get("size_bytes") or 0),
        "transport": str(d.get("transport", "")),
    }


# --- network: interfaces ---------------------------------------------------------------------------


def _network(old: dict[str, Any], new: dict[str, Any], t: int) -> Iterable[Event]:
    def key(i: dict[str, Any]) -> tuple[str, str]:
        return (str(i.get("mac", "")), str(i.get("name", "")))

    b, a = _keyed(_items(old, "interfaces"), key), _keyed(_items(new, "interfaces"), key)
    for k in sorted(a.keys() - b.keys()):
        yield _event("register.nic_added", "notice", t, **_nic_fields(a[k]))
    for k in sorted(b.keys() - a.keys()):
        yield _event("register.nic_removed", "warning", t, **_nic_fields(b[k]))


def _nic_fields(i: dict[str, Any]) -> dict[str, FieldValue]:
    addrs = i.get("addresses")
    return {
        "name": str(i.get("name", "")),
        "mac": str(i.get("mac", "")),
        "addresses": ",".join(str(x) for x in addrs) if isinstance(addrs, list) else "",
    }


# --- accounts ----------------------------------------------------------------------------------------


def _accounts(old: dict[str, Any], new: dict[str, Any], t: int) -> Iterable[Event]:
    b = _keyed(_items(old, "users"), lambda u: str(u.get("name", "")))
    a = _keyed(_items(new, "users"), lambda u: str(u.get("name", "")))
    new_uid0 = _names(new, "uid0_users") - _names(old, "uid0_users")
    new_admins = (_names(new, "admin_users") | _names(new, "uid0_users")) - _names(old, "admin_users")
    gone_admins = _names(old, "admin_users") - _names(new, "admin_users")

    for name in sorted(a.keys() - b.keys()):
        u = a[name]
        severity = "warning" if u.get("uid") == 0 or u.get("admin") else "notice"
        yield _event("register.account_added", severity, t, **_account_fields(u))
    for name in sorted(b.keys() - a.keys()):
        yield _event("register.account_removed", "notice", t, **_account_fields(b[name]))
    # An existing admin given UID 0 is reported too: root privileges are a change of their own.
    for name in sorted(new_admins | new_uid0):
        uid0 = name in new_uid0
        fields: dict[str, FieldValue] = {"name": name, "uid0": uid0, "new_account": name not in b}
        # A second UID 0 is the classic backdoor; a new sudoer is a change to review.
        yield _event("register.admin_added", "critical" if uid0 else "warning", t, **fields)
    for name in sorted(gone_admins):
        yield _event("register.admin_removed", "notice", t, name=name)
    for name in sorted(a):
        u = a[name]
        if u.get("empty_password") and not (b.get(name) or {}).get("empty_password"):
            admin = bool(u.get("admin")) or u.get("uid") == 0
            yield _event(
                "register.empty_password",
                "critical" if admin else "warning",
                t,
                name=name,
                admin=admin,
                new_account=name not in b,
            )


def _account_fields(u: dict[str, Any]) -> dict[str, FieldValue]:
    return {
        "name": str(u.get("name", "")),
        "uid": int(u.get("uid") or 0),
        "shell": str(u.get("shell", "")),
        "login_shell": bool(u.get("login_shell")),
        "admin": bool(u.get("admin")),
    }


# --- listening ports -----------------------------------------------------------------------------------


def _listening(old: dict[str, Any], new: dict[str, Any], t: int) -> Iterable[Event]:
    def key(p: dict[str, Any]) -> tuple[str, str, int]:
        return (str(p.get("protocol", "")), str(p.get("address", "")), int(p.get("port") or 0))

    b, a = _keyed(_items(old, "ports"), key), _keyed(_items(new, "ports"), key)
    for k in sorted(a.keys() - b.keys()):
        # Reachable from elsewhere is what matters; a loopback-only port is for the record.
        severity = "info" if _loopback(k[1]) else "notice"
        yield _event("register.port_opened", severity, t, **_port_fields(a[k]))
    for k in sorted(b.keys() - a.keys()):
        yield _event("register.port_closed", "info", t, **_port_fields(b[k]))


def _loopback(address: str) -> bool:
    a = address.removeprefix("::ffff:")
    return a.startswith("127.") or a == "::1"


def _port_fields(p: dict[str, Any]) -> dict[str, FieldValue]:
    address = str(p.get("address", ""))
    return {
        "protocol": str(p.get("protocol", "")),
        "address": address,
        "port": int(p.get("port") or 0),
        "process": str(p.get("process", "")),
        "pid": int(p.get("pid") if p.get("pid") is not None else -1),
        "user": str(p.get("user", "")),
        "wildcard": address in _WILDCARD,
    }


# --- firewall, antivirus, time sync ---------------------------------------------------------------------


def _firewall(old: dict[str, Any], new: dict[str, Any], t: int) -> Iterable[Event]:
    was, now = bool(old.get("active")), bool(new.get("active"))
    if was == now:
        return
    source = old if was else new
    active = [b for b in _items(source, "backends") if b.get("active")]
    fields: dict[str, FieldValue] = {
        "backends": ",".join(str(b.get("name", "")) for b in active),
        "rule_count": sum(int(b.get("rule_count") or 0) for b in active),
    }
    if was:
        errors = [f"{b.get('name')}: {b.get('error')}" for b in _items(new, "backends") if b.get("error")]
        fields["errors"] = "; ".join(errors)
        yield _event("register.firewall_disabled", "critical", t, **fields)
    else:
        yield _event("register.firewall_enabled", "info", t, **fields)


def _antivirus(old: dict[str, Any], new: dict[str, Any], t: int) -> Iterable[Event]:
    if old.get("installed") and not new.get("installed"):
        yield _event("register.antivirus_removed", "warning", t, product=str(old.get("product", "")))


def _time_sync(old: dict[str, Any], new: dict[str, Any], t: int) -> Iterable[Event]:
    if old.get("synchronized") and not new.get("synchronized"):
        yield _event(
            "register.timesync_lost",
            "warning",
            t,
            service=str(new.get("service", "")),
            ntp_enabled=bool(new.get("ntp_enabled")),
        )


_DIFFERS: dict[str, Callable[[dict[str, Any], dict[str, Any], int], Iterable[Event]]] = {
    "hardware": _hardware,
    "network": _network,
    "accounts": _accounts,
    "listening": _listening,
    "firewall": _firewall,
    "antivirus": _antivirus,
    "time_sync": _time_sync,
}
