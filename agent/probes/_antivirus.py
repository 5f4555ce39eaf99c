"""Linux backend of the `antivirus` inventory: ClamAV, from its signature database files.

The signature time is the build time in each database's header (`ClamAV-VDB:...:<stime>`,
the 9th field): the age of the signatures themselves, which a file's mtime is not (a copy, a
restore or a stale mirror gives a fresh mtime to old signatures). The mtime is the fallback
for a header that does not parse.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from warden.v1 import records_pb2

__all__ = ["DATABASES", "collect_antivirus", "signature_time"]

DATABASES = tuple(f"{name}.{ext}" for name in ("main", "daily", "bytecode") for ext in ("cvd", "cld"))
_PROGRAMS = ("freshclam", "clamd", "clamscan", "clamdscan")
_HEADER_BYTES = 512


def collect_antivirus(
    rootfs: Path, database_dirs: Sequence[str], tool_path: str, now: float
) -> records_pb2.AntivirusSection:
    newest = 0
    found_db = False
    for d in database_dirs:
        base = rootfs / d.lstrip("/")
        for name in DATABASES:
            t = signature_time(base / name)
            if t is not None:
                found_db = True
                newest = max(newest, t)
    # Programs are looked up under the rootfs (the host's), then in the tool path.
    program = any(
        (rootfs / p.lstrip("/") / prog).exists() for p in tool_path.split(":") if p for prog in _PROGRAMS
    ) or any(shutil.which(prog, path=tool_path) for prog in _PROGRAMS)
    if not found_db and not program:
        return records_pb2.AntivirusSection()
    section = records_pb2.AntivirusSection(product="clamav", installed=True)
    if found_db:
        section.signatures_time_unix = newest
        section.signature_age_hours = round(max(0.0, now - newest) / 3600.0, 2)
    return section


def signature_time(path: Path) -> int | None:
    """Unix build time of one database file; None if it does not exist or is unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_BYTES)
            mtime = int(os.fstat(f.fileno()).st_mtime)
    except OSError:
        return None
    text = head.split(b"\0", 1)[0].decode("ascii", "replace").strip()
    fields = text.split(":")
    if len(fields) >= 9 and fields[0] == "ClamAV-VDB":
        try:
            stime = int(fields[8].split()[0])
        except (ValueError, IndexError):
            stime = 0
        if stime > 0:
            return stime
    return mtime
