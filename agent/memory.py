"""Give back the resident pages of code the running agent no longer uses.

Start-up runs a lot of code once: the imports, the configuration, gRPC's and BoringSSL's set-up
and the TLS handshake (about 9 MB of cygrpc's code alone stays mapped), the first run of every
probe. Those pages are clean copies of shared-library files: `trim_file_mappings()` unmaps them
with madvise(MADV_DONTNEED), and the kernel maps back, from the page cache or the file, any
page that is executed again. Nothing is lost: only mappings that are private, not writable and
hold no page of their own (no copy-on-write copy, resident or swapped out) are touched, i.e.
exactly the pages the kernel itself may drop and refault at any time under memory pressure.
MADV_PAGEOUT would do the same only for pages no other process maps (another gRPC process on
the host keeps them), hence DONTNEED.

Linux only; anywhere else, or if /proc/self/smaps or libc cannot be read, it does nothing.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["trim_file_mappings"]

log = logging.getLogger(__name__)

_MADV_DONTNEED = 4
# A mapping is trimmed only when every one of these is 0: no private (copied) page, none
# swapped out, none locked.
_MUST_BE_ZERO = ("Anonymous", "Private_Dirty", "Swap", "Locked")


def trim_file_mappings() -> int:
    """Unmap the clean file pages of read-only private mappings; returns how many KiB were
    resident in them (0 when nothing could be done)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as f:
            mappings = _clean_file_mappings(f)
        import ctypes  # here only: a quarter of a megabyte the agent needs for nothing else

        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        madvise.restype = ctypes.c_int
    except Exception as e:  # no /proc, no libc, or ctypes refused (e.g. MemoryError under W^X)
        log.debug("cannot trim file mappings: %s", e)
        return 0
    released = 0
    for start, end, rss_kib in mappings:
        if madvise(start, end - start, _MADV_DONTNEED) == 0:
            released += rss_kib
    return released


def _clean_file_mappings(lines: object) -> list[tuple[int, int, int]]:
    """(start, end, resident KiB) of the private read-only mappings of files that hold only
    clean file pages, from /proc/self/smaps."""
    out: list[tuple[int, int, int]] = []
    current: dict[str, int] | None = None
    bounds = (0, 0)

    def done() -> None:
        if current is not None and current.get("Rss", 0) and all(
                current.get(key, 1) == 0 for key in _MUST_BE_ZERO):
            out.append((*bounds, current["Rss"]))

    for line in lines:  # type: ignore[attr-defined]
        head = line.split(None, 5)
        if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            done()  # a new mapping begins: `start-end perms offset dev inode [path]`
            current = None
            path = head[5].strip() if len(head) > 5 else ""
            if head[1] in ("r-xp", "r--p") and path.startswith("/") and not path.endswith("(deleted)"):
                start, _, end = head[0].partition("-")
                bounds = (int(start, 16), int(end, 16))
                current = {}
        elif current is not None:
            key, sep, value = line.partition(":")
            if sep and key in ("Rss", *_MUST_BE_ZERO):
                current[key] = int(value.split()[0])
    done()
    return out
