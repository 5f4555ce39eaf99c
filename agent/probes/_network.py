"""Linux backend of the `network` inventory: interfaces with MAC, addresses, state, speed.

psutil reads them through getifaddrs(3) and ioctls, i.e. from this process's network
namespace: an agent in a container needs the host's network (`network_mode: host`).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psutil

from warden.v1 import records_pb2

__all__ = ["collect_network"]


def collect_network(
    exclude: Sequence[str],
    addrs: Callable[[], Mapping[str, Sequence[Any]]] = psutil.net_if_addrs,
    stats: Callable[[], Mapping[str, Any]] = psutil.net_if_stats,
) -> records_pb2.NetworkSection:
    all_addrs = addrs()
    all_stats = stats()
    section = records_pb2.NetworkSection()
    for name in sorted(set(all_addrs) | set(all_stats)):
        if any(fnmatch.fnmatchcase(name, pat) for pat in exclude):
            continue
        mac = ""
        addresses = []
        for a in all_addrs.get(name, ()):
            if a.family == psutil.AF_LINK:
                mac = (a.address or "").lower()
            elif a.family in (socket.AF_INET, socket.AF_INET6):
                addresses.append(_cidr(a.address, a.netmask))
        st = all_stats.get(name)
        section.interfaces.append(
            records_pb2.NetworkInterface(
                name=name,
                mac="" if mac == "00:00:00:00:00:00" else mac,
                addresses=sorted(a for a in addresses if a),
                up=bool(st and st.isup),
                speed_mbps=max(0, st.speed) if st else 0,
                mtu=max(0, st.mtu) if st else 0,
            )
        )
    return section


def _cidr(address: str | None, netmask: str | None) -> str:
    if not address:
        return ""
    ip = address.split("%", 1)[0]  # fe80::1%eth0: the zone is the interface itself
    if not netmask:
        return ip
    try:
        # ipaddress takes "a.b.c.d/255.255.255.0" but not an IPv6 mask: count the bits instead.
        bits = bin(int(ipaddress.ip_address(netmask))).count("1")
    except ValueError:
        return ip
    return f"{ip}/{bits}"
