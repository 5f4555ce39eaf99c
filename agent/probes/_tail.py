"""Follow one log path across rotations: the file follower of the `logs` probe.

A `Follower` owns one configured path (the "source"): the file now at that path, plus
rotated files it must still read to their end. Each open file is a `_Reader` pinned to an
inode by its descriptor, so a file renamed or deleted under us is still read through.

Identity. A file is (st_dev, st_ino) plus a fingerprint: a hash of its first `fpn` bytes
(FP_BYTES, or fewer while the file is shorter; it is extended as the file grows). A path
whose inode changed, or whose first bytes changed, holds a new file.

Rotation, as logrotate does it:
- rename-and-create: the path gets a new inode. The old file stays open and is read to its
  end first; it is dropped only after it has been idle for `rotate_wait` seconds, because the
  writer keeps appending to it until it reopens its log (logrotate's postrotate HUP).
  Generations rotated between two looks (the agent was down) are found among the path's
  rotated siblings ("auth.log.1", "auth.log-20240301"; compressed ones cannot be read) by
  their mtime, and read whole, oldest first.
- copytruncate: the same inode shrinks (size below what was read), or its first bytes
  change (truncated and refilled past our position between two looks). The rotated copy is
  looked for among the siblings (same first bytes, at least as long as our position) and
  read from our position to its end; then the path is read from 0. Lines written between
  logrotate's copy and its truncate are in neither file: that window cannot be recovered by
  any reader. Lines already read ahead into memory before the truncation are kept.
- a file deleted while read is read to its end through the descriptor (nlink == 0).

Positions. `offset` is the end of the last frame (line or record) handed out, and is what
`state()` reports: it corresponds exactly to the frames returned so far. Bytes read ahead
but not yet handed out (a budget was reached) are kept in memory and never counted. A line
without its newline is held until completed; it is handed out after `partial_timeout`
seconds, or when its rotated file is dropped. A line longer than `max_line` is cut: its first
`max_line` bytes are handed out (flagged truncated) and the rest up to its newline skipped;
`skip` in the state says that the position is inside such a line.

Records mode (`record_size`, for wtmp/btmp) hands out fixed-size records; an incomplete
record at the end is held until complete and never handed out.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

__all__ = ["FP_BYTES", "COMPRESSED_SUFFIXES", "Follower", "Frame", "TRUNCATED", "PARTIAL"]

log = logging.getLogger(__name__)

FP_BYTES = 1024
CHUNK = 64 * 1024
_DONE_KEPT = 4
COMPRESSED_SUFFIXES = (".gz", ".xz", ".bz2", ".zst", ".lz4", ".lzma", ".lzo", ".z", ".Z", ".br", ".zip")
# Frame flags
TRUNCATED = 1  # longer than max_line: the rest of the line was skipped
PARTIAL = 2  # handed out without its newline (timed out, or its rotated file was dropped)

Frame = tuple[bytes, int]  # (line or record without its newline, flags)
# Parts of a read-ahead frame (data, size, skip after, flags).
_DATA, _SIZE, _FLAGS = itemgetter(0), itemgetter(1), itemgetter(3)
_PLUS_ONE = (1).__add__
# count(kind, n): what a follower reports to the probe's counters (rotations, lost files...)
Count = Callable[[str, int], None]


def _fingerprint(fd: int, n: int) -> tuple[str, int]:
    """Hash of the first min(n, size) bytes: (hex digest, bytes hashed)."""
    head = os.pread(fd, n, 0)
    return hashlib.blake2b(head, digest_size=12).hexdigest(), len(head)


def _fp_matches(fd: int, fp: str, fpn: int) -> bool:
    got, n = _fingerprint(fd, fpn)
    return n == fpn and got == fp


@dataclass
class _Reader:
    """One open file (inode) being read: committed position plus read-ahead."""

    fd: int | None  # None: only what was read ahead before the file was truncated is left
    name: str  # last known path, for messages
    dev: int
    ino: int
    offset: int  # end of the last frame handed out
    fp: str
    fpn: int
    skip: bool = False  # `offset` is inside an over-long line whose rest is being skipped
    mtime_ns: int = 0  # at the last look, to order rotated generations
    role: str = "current"  # current | rotated | copy | deleted | memory
    size: int = 0  # at the last look
    # read-ahead: (frame or None for skipped bytes, bytes consumed, skip-state after, flags)
    frames: deque[tuple[bytes | None, int, bool, int]] = field(default_factory=deque)
    tail: bytes = b""  # bytes after the last newline read (an incomplete line or record)
    tail_skip: bool = False  # the read frontier is inside an over-long line
    tail_since: float | None = None  # monotonic time the incomplete tail was first seen
    pos: int = 0  # file offset up to which bytes were read
    idle_since: float | None = None  # rotated files: at EOF with no growth since

    def __post_init__(self) -> None:
        self.pos = self.offset
        self.tail_skip = self.skip

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def state(self) -> dict[str, Any]:
        return {"dev": self.dev, "ino": self.ino, "off": self.offset, "fp": self.fp, "fpn": self.fpn,
                "skip": int(self.skip), "mt": self.mtime_ns, "role": self.role}


class Follower:
    """One configured path and the rotated files still being read for it."""

    def __init__(
        self,
        path: Path,
        *,
        count: Count,
        max_line: int = 1024 * 1024,
        record_size: int | None = None,
        partial_timeout: float = 5.0,
        rotate_wait: float = 5.0,
    ) -> None:
        self.path = path
        self._count = count
        self.max_line = max_line
        self.record_size = record_size
        self.partial_timeout = partial_timeout
        self.rotate_wait = rotate_wait
        self.current: _Reader | None = None
        self.drains: list[_Reader] = []  # rotated files, read before `current`, oldest first
        self.errors: list[str] = []  # problems found since the caller last looked
        # Rotated files read to their end (a few, newest last): never mistaken for a generation
        # rotated while we were not looking, even if written to after their rotation.
        self.done: deque[dict[str, Any]] = deque(maxlen=_DONE_KEPT)
        self._gone_mtime = 0  # mtime of the last current file while the path has none
        self._last_error: str | None = None

    # --- opening -----------------------------------------------------------------------------

    def _open(self, path: Path, offset: int | None, role: str) -> _Reader | None:
        """Open `path`; offset None means "at the end" (of its last complete line or record)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as e:
            self._error(f"{path}: cannot open: {e.strerror}")
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                self._error(f"{path}: not a regular file")
                return None
            fp, fpn = _fingerprint(fd, FP_BYTES)
            if offset is None:
                offset = self._end_offset(fd, st.st_size)
        except OSError as e:
            os.close(fd)
            self._error(f"{path}: cannot read: {e.strerror}")
            return None
        self._last_error = None
        return _Reader(fd, str(path), st.st_dev, st.st_ino, offset, fp, fpn, mtime_ns=st.st_mtime_ns,
                       role=role, size=st.st_size)

    def _end_offset(self, fd: int, size: int) -> int:
        if self.record_size:
            return size - size % self.record_size
        # Start after the last complete line, so a line being written is not cut in two.
        look = min(size, CHUNK)
        tail = os.pread(fd, look, size - look)
        nl = tail.rfind(b"\n")
        if nl >= 0:
            return size - look + nl + 1
        return 0 if size <= CHUNK else size

    def start(self, from_end: bool) -> None:
        """Begin following the file now at the path (if any), at its end or beginning."""
        if self.current is None:
            self.current = self._open(self.path, None if from_end else 0, "current")

    # --- checkpoint ----------------------------------------------------------------------------

    def state(self) -> list[dict[str, Any]]:
        # Files known only by what was read ahead of a truncation cannot be reopened: left out.
        readers = [r for r in (*self.drains, self.current) if r is not None and r.role != "memory"]
        return [*self.done, *(r.state() for r in readers)]

    def restore(self, entries: list[dict[str, Any]]) -> None:
        """Reopen the files of a checkpoint, wherever their rotation took them.

        The checkpoint's "current" entry is looked up at the path first; rotated entries, and a
        current file rotated while the agent was down, among the path's rotated siblings by
        inode and fingerprint. A rotated copy (copytruncate) is recognized by fingerprint. A
        file found nowhere is counted as lost; generations rotated in between are read whole,
        and the file now at the path from its beginning.
        """
        siblings = self._siblings()
        at_path = self._stat(self.path)
        used: set[int] = set()
        rotated = False  # the checkpoint's current file is no longer the one at the path
        blind = False
        last_mtime = 0
        for e in entries:
            try:
                ino, off, fp, fpn = int(e["ino"]), int(e["off"]), str(e["fp"]), int(e["fpn"])
                skip, mt, role = bool(e.get("skip")), int(e.get("mt", 0)), str(e.get("role", "current"))
            except (KeyError, TypeError, ValueError):
                self._error(f"{self.path}: unreadable checkpoint entry {e!r}: ignored")
                continue
            if role == "done":
                found = self._find(siblings, ino, fp, fpn, off, used)
                if found is not None:
                    used.add(ino)
                    self.done.append(e)
                continue
            last_mtime = max(last_mtime, mt)
            is_current = role == "current"
            # A file empty when last seen has no first bytes to tell a copytruncate by.
            blind = blind or (is_current and fpn == 0)
            candidates = ([(self.path, at_path)] if at_path else []) + siblings
            found = self._find(candidates, ino, fp, fpn, off, used)
            if (found is not None and found[0] == self.path and is_current and 0 < fpn < FP_BYTES
                    and self._refilled(found[0], fp, fpn, off, mt, siblings, used | {ino})):
                found = None  # truncated and refilled past `off` with the same few first bytes
            if found is not None:
                here = found[0] == self.path and is_current
                r = self._reopen(found[0], off, skip, mt, "current" if here else
                                 "rotated" if is_current else role)
                if r is not None:
                    used.add(r.ino)
                    if here:
                        self.current = r
                    else:
                        self.drains.append(r)
                        if is_current:
                            rotated = True
                            self._count("rename", 1)
                    continue
            rotated = rotated or is_current
            # Not under its inode: a copytruncate while down leaves a copy with the same start.
            copy = self._find_copy(siblings, fp, fpn, off, mt, used)
            if copy is not None:
                r = self._reopen(copy[0], off, skip, 0, "copy")
                if r is not None:
                    used.add(r.ino)
                    self.drains.append(r)
                    self._count("copytruncate", 1)
                    continue
            if is_current and at_path is not None and at_path.st_ino == ino:
                self._count("truncate", 1)  # truncated (and maybe refilled); no copy to read
                continue
            self._count("lost", 1)
            self._error(f"{self.path}: file (inode {ino}) with unread lines after offset {off} "
                        "was not found (compressed or deleted while the agent was down)")
        if rotated or blind:
            self._add_intermediate(siblings, last_mtime, used)
        if self.current is None:
            # Appeared (or was rotated in) since the checkpoint: read it whole.
            self.current = self._open(self.path, 0, "current")
            if self.current is None:
                self._gone_mtime = last_mtime

    def _reopen(self, path: Path, off: int, skip: bool, mtime_ns: int, role: str) -> _Reader | None:
        r = self._open(path, off, role)
        if r is None:
            return None
        r.skip = r.tail_skip = skip
        r.mtime_ns = max(r.mtime_ns, mtime_ns)
        return r

    @staticmethod
    def _stat(path: Path) -> os.stat_result | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st if stat.S_ISREG(st.st_mode) else None

    def _siblings(self) -> list[tuple[Path, os.stat_result]]:
        """The path's rotated copies logrotate-style ("name.1", "name-20240301"), uncompressed."""
        base = self.path.name
        out = []
        try:
            names = os.listdir(self.path.parent)
        except OSError:
            return []
        for n in names:
            if n == base or not n.startswith(base) or n[len(base)] not in ".-_":
                continue
            if n.endswith(COMPRESSED_SUFFIXES) or not any(c.isdigit() for c in n[len(base):]):
                continue
            p = self.path.parent / n
            st = self._stat(p)
            if st is not None:
                out.append((p, st))
        return out

    def _find(self, candidates: list[tuple[Path, os.stat_result]], ino: int, fp: str, fpn: int,
              off: int, used: set[int]) -> tuple[Path, os.stat_result] | None:
        # By inode (the device number may change across reboots on some filesystems) and
        # fingerprint, which tells an inode number reused by another file.
        for p, st in candidates:
            if st.st_ino == ino and st.st_ino not in used and st.st_size >= off and self._head_is(p, fp, fpn):
                return p, st
        return None

    def _find_copy(self, siblings: list[tuple[Path, os.stat_result]], fp: str, fpn: int, off: int,
                   mtime_ns: int, used: set[int]) -> tuple[Path, os.stat_result] | None:
        if fpn == 0:
            return None  # an empty file's fingerprint matches anything
        best = None
        for p, st in siblings:
            # The copy was made after our last look, so it is at least as recent.
            if (st.st_ino not in used and st.st_size >= off and st.st_mtime_ns >= mtime_ns
                    and self._head_is(p, fp, fpn) and (best is None or st.st_mtime_ns < best[1].st_mtime_ns)):
                best = (p, st)
        return best

    @staticmethod
    def _head_is(path: Path, fp: str, fpn: int) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            return _fp_matches(fd, fp, fpn)
        except OSError:
            return False
        finally:
            os.close(fd)

    def _add_intermediate(self, siblings: list[tuple[Path, os.stat_result]], after_mtime_ns: int,
                          used: set[int]) -> None:
        """Generations rotated in and out between two looks: newer than the last file we knew
        (strictly: on filesystems with coarse timestamps an equal mtime is more likely an older
        generation than a newer one), not known, read whole, oldest first."""
        if after_mtime_ns <= 0:
            return
        at_path = self._stat(self.path)
        skip = {r.ino for r in self.drains} | {int(d["ino"]) for d in self.done} | used
        if at_path is not None:
            skip.add(at_path.st_ino)
        if self.current is not None:
            skip.add(self.current.ino)
        found = sorted(((st.st_mtime_ns, p) for p, st in siblings
                        if st.st_ino not in skip and st.st_mtime_ns > after_mtime_ns))
        for _, p in found:
            r = self._open(p, 0, "rotated")
            if r is not None:
                log.info("%s: reading rotated generation %s that was never followed", self.path, p)
                self.drains.append(r)
                self._count("rename", 1)

    # --- following -----------------------------------------------------------------------------

    def check(self, now: float) -> None:
        """Notice growth, truncation, rotation, replacement and deletion of the path's file."""
        cur = self.current
        # Empty when last seen: its first bytes tell nothing (taken before they are extended).
        blind = cur if cur is not None and cur.fpn == 0 else None
        at_path = self._stat(self.path)
        if cur is not None and cur.fd is not None:
            try:
                st = os.fstat(cur.fd)
            except OSError as e:
                self._error(f"{self.path}: fstat: {e.strerror}")
                return
            fp0, fpn0 = cur.fp, cur.fpn
            if st.st_size < cur.pos or (st.st_size != cur.size and not self._head_still(cur)):
                self._truncated(cur, st)
            elif (0 < fpn0 < FP_BYTES and (st.st_size, st.st_mtime_ns) != (cur.size, cur.mtime_ns)
                  and at_path is not None and at_path.st_ino == cur.ino  # (renamed: not copied)
                  and self._refilled(cur.fd, fp0, fpn0, cur.offset, cur.mtime_ns, self._siblings(),
                                     self._known())):
                cur.fp, cur.fpn = fp0, fpn0
                self._truncated(cur, st)
        cur = self.current
        if cur is None:
            if at_path is not None:  # (re)appeared: a new file, read from its beginning
                if self._gone_mtime:
                    self._add_intermediate(self._siblings(), self._gone_mtime, set())
                    self._gone_mtime = 0
                self.current = self._open(self.path, 0, "current")
            return
        if at_path is None or at_path.st_ino != cur.ino or at_path.st_dev != cur.dev:
            # Renamed away (rotation), deleted, or replaced under the same name: read the old
            # file to its end through its descriptor, then the new one from its beginning.
            deleted = True
            with contextlib.suppress(OSError):
                deleted = cur.fd is None or os.fstat(cur.fd).st_nlink == 0
            cur.role = "deleted" if deleted else "rotated"
            self.drains.append(cur)
            self.current = None
            self._count("deleted" if deleted else "rename", 1)
            self._gone_mtime = cur.mtime_ns
            if at_path is None:
                return
            self._add_intermediate(self._siblings(), cur.mtime_ns, set())
            self._gone_mtime = 0
            self.current = cur = self._open(self.path, 0, "current")
            if cur is None:
                return
        if cur.fd is None:
            return
        try:
            st = os.fstat(cur.fd)
        except OSError:
            return
        if (cur is blind or cur.fpn == 0) and st.st_mtime_ns != cur.mtime_ns:
            # It was empty when last seen, so its first bytes tell nothing: a copytruncate
            # since would go unnoticed. Its copy would be a rotated sibling newer than our
            # last look; read any such whole before the file itself.
            self._add_intermediate(self._siblings(), cur.mtime_ns, set())
        cur.size = st.st_size
        cur.mtime_ns = st.st_mtime_ns

    def _refilled(self, file: int | Path, fp: str, fpn: int, off: int, mtime_ns: int,
                  siblings: list[tuple[Path, os.stat_result]], used: set[int]) -> bool:
        """For a file whose fingerprint covers only its few first bytes (it was that short):
        whether it was copytruncated and refilled with lines starting the same way (a
        timestamp prefix). A copy made since our last look, that the file no longer starts
        with, tells (until truncated, the file starts with all of its copy)."""
        copy = self._find_copy(siblings, fp, fpn, off, mtime_ns, used)
        if copy is None:
            return False
        n = min(copy[1].st_size, 4 * FP_BYTES)
        try:
            with open(copy[0], "rb") as f:
                theirs = f.read(n)
            if isinstance(file, int):
                mine = os.pread(file, n, 0)
            else:
                with open(file, "rb") as f:
                    mine = f.read(n)
        except OSError:
            return False
        return mine != theirs

    def _known(self) -> set[int]:
        """Inodes of the files this follower reads or has read to their end."""
        known = {r.ino for r in self.drains} | {int(d["ino"]) for d in self.done}
        if self.current is not None:
            known.add(self.current.ino)
        return known

    def _head_still(self, r: _Reader) -> bool:
        """Whether the file still starts as it did; extends a short file's fingerprint."""
        assert r.fd is not None
        try:
            if not _fp_matches(r.fd, r.fp, r.fpn):
                return False
            if r.fpn < FP_BYTES:
                r.fp, r.fpn = _fingerprint(r.fd, FP_BYTES)
        except OSError:
            return True  # unreadable now: judged on size alone
        return True

    def _truncated(self, cur: _Reader, st: os.stat_result) -> None:
        """copytruncate (or any truncation) of the current file."""
        assert cur.fd is not None
        siblings = self._siblings()
        used = self._known()
        copy = self._find_copy(siblings, cur.fp, cur.fpn, cur.offset, cur.mtime_ns, used)
        if copy is not None:
            used.add(copy[1].st_ino)
        if copy is not None and copy[1].st_size > cur.pos:
            # The copy holds more than we read ahead: read it from our position.
            r = self._open(copy[0], cur.offset, "copy")
            if r is not None:
                r.skip = r.tail_skip = cur.skip
                self.drains.append(r)
                self._count("copytruncate", 1)
        else:
            # What was read ahead before the truncation is all there is (the copy, if any,
            # holds no more): hand it out from memory.
            mem = _Reader(None, cur.name, cur.dev, cur.ino, cur.offset, cur.fp, cur.fpn, cur.skip,
                          cur.mtime_ns, "memory")
            mem.frames, mem.tail, mem.tail_skip, mem.pos = cur.frames, cur.tail, cur.tail_skip, cur.pos
            self.drains.append(mem)
            self._count("copytruncate" if copy is not None else "truncate", 1)
            if copy is not None:  # read all the same: never to be taken for a newer generation
                self.done.append({"dev": copy[1].st_dev, "ino": copy[1].st_ino, "off": copy[1].st_size,
                                  "fp": cur.fp, "fpn": cur.fpn, "skip": 0, "mt": copy[1].st_mtime_ns,
                                  "role": "done"})
        # Copies of later truncations (more than one rotation since our last look), whole.
        self._add_intermediate(siblings, cur.mtime_ns, used)
        fd = cur.fd
        cur.fd = None  # handed to the new reader of the same inode
        try:
            fp, fpn = _fingerprint(fd, FP_BYTES)
        except OSError:
            fp, fpn = "", 0
        self.current = _Reader(fd, cur.name, st.st_dev, st.st_ino, 0, fp, fpn, mtime_ns=st.st_mtime_ns,
                               size=st.st_size)

    def read(self, budget: int, now: float) -> list[Frame]:
        """Up to `budget` frames: rotated files first (oldest first), then the current file."""
        out: list[Frame] = []
        for r in list(self.drains):
            if r.role == "memory":
                # Read ahead of a truncation and in no checkpointable file: all of it now, so
                # the checkpoint after this run never has to account for it.
                out += self._take(r, len(r.frames) + 1, now, draining=True)
            elif len(out) >= budget:
                return out
            else:
                out += self._take(r, budget - len(out), now, draining=True)
            if self._finished(r, now):
                self._finish(r, out, budget)
        if self.current is not None and len(out) < budget:
            out += self._take(self.current, budget - len(out), now, draining=False)
        return out

    def _finished(self, r: _Reader, now: float) -> bool:
        if r.frames:
            return False
        if r.fd is None:
            return True
        if r.role == "copy":  # nobody writes to logrotate's copy
            return True
        if r.idle_since is None:
            r.idle_since = now
            return self.rotate_wait <= 0
        return now - r.idle_since >= self.rotate_wait

    def _finish(self, r: _Reader, out: list[Frame], budget: int) -> None:
        """Drop a drained rotated file, handing out its incomplete last line (if room)."""
        if r.tail:
            if self.record_size:
                self._count("partial_record_dropped", 1)
            elif len(out) < budget or r.role == "memory":  # (memory: never left for later)
                out.append((r.tail, PARTIAL))
                r.offset += len(r.tail)
                r.tail = b""
            else:
                return  # no room this time: the next read hands it out
        if r.fd is not None and r.role != "deleted":
            self.done.append({**r.state(), "role": "done"})
        r.close()
        self.drains.remove(r)

    def _take(self, r: _Reader, budget: int, now: float, draining: bool) -> list[Frame]:
        out: list[Frame] = []
        frames = r.frames
        while len(out) < budget:
            if not frames:
                if not self._fill(r):
                    break
                if draining:
                    r.idle_since = None
                continue
            k = min(budget - len(out), len(frames))
            if k > 1:
                # Many frames at once (the common case by far), with the same effect as one at
                # a time: offset past them all, skip as after the last one.
                batch = list(islice(frames, k))
                if k == len(frames):
                    frames.clear()
                else:
                    r.frames = frames = deque(islice(frames, k, None))
                r.offset += sum(map(_SIZE, batch))
                r.skip = batch[-1][2]
                if None in map(_DATA, batch):
                    out += [(data, flags) for data, _, _, flags in batch if data is not None]
                else:
                    out += zip(map(_DATA, batch), map(_FLAGS, batch), strict=True)
                continue
            data, n, skip_after, flags = frames.popleft()
            r.offset += n
            r.skip = skip_after
            if data is not None:
                out.append((data, flags))
        if (not frames and r.tail and not self.record_size and len(out) < budget and not draining
                and r.tail_since is not None and now - r.tail_since >= self.partial_timeout):
            # A line that never got its newline: hand it out rather than hold it forever. If the
            # writer completes it later, the rest arrives as a line of its own.
            out.append((r.tail, PARTIAL))
            r.offset += len(r.tail)
            r.tail, r.tail_since = b"", None
        elif r.tail and r.tail_since is None:
            r.tail_since = now
        return out

    def _fill(self, r: _Reader) -> bool:
        """Read the next chunk into frames; False at end of file."""
        if r.fd is None:
            return False
        try:
            data = os.pread(r.fd, CHUNK, r.pos)
        except OSError as e:
            self._error(f"{r.name}: read: {e.strerror}")
            return False
        if not data:
            return False
        r.pos += len(data)
        if self.record_size:
            self._split_records(r, data)
        else:
            self._split_lines(r, data)
        return True

    def _split_records(self, r: _Reader, data: bytes) -> None:
        size = self.record_size
        assert size
        buf = r.tail + data if r.tail else data
        whole = len(buf) - len(buf) % size
        for i in range(0, whole, size):
            r.frames.append((buf[i:i + size], size, False, 0))
        r.tail = buf[whole:]

    def _split_lines(self, r: _Reader, data: bytes) -> None:
        max_line = self.max_line
        frames = r.frames
        if r.tail:
            buf, had = r.tail + data, len(r.tail)
        else:
            buf, had = data, 0
        start = 0
        if not r.tail_skip:
            lines = buf.split(b"\n")
            rest = lines.pop()
            if lines and max(map(len, lines)) <= max_line:
                # No line to cut (the common case by far): every line at once, as the loop
                # below would frame them.
                frames.extend(zip(lines, map(_PLUS_ONE, map(len, lines)), repeat(False), repeat(0)))
                start = len(buf) - len(rest)
        find = buf.find
        while True:
            nl = find(b"\n", max(start, had))  # the old tail has no newline
            if nl < 0:
                break
            n = nl + 1 - start
            if r.tail_skip:
                frames.append((None, n, False, 0))
                r.tail_skip = False
            elif nl - start > max_line:
                frames.append((buf[start:start + max_line], n, False, TRUNCATED))
            else:
                frames.append((buf[start:nl], n, False, 0))
            start = nl + 1
        rest = buf[start:]
        if start:
            r.tail_since = None  # the old tail got its newline
        if r.tail_skip:
            if rest:
                frames.append((None, len(rest), True, 0))
            rest = b""
        elif len(rest) > max_line:
            # Cut now rather than buffer an endless line: hand out its head, skip the rest.
            frames.append((rest[:max_line], max_line, True, TRUNCATED))
            frames.append((None, len(rest) - max_line, True, 0))
            r.tail_skip = True
            rest = b""
        r.tail = rest

    # --- housekeeping --------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Nothing to follow: no file at the path and no rotated file left to read."""
        return self.current is None and not self.drains

    def close(self) -> None:
        for r in (*self.drains, self.current):
            if r is not None:
                r.close()
        self.drains.clear()
        self.current = None

    def _error(self, msg: str) -> None:
        if msg == self._last_error:  # e.g. an unreadable file, retried every run
            return
        self._last_error = msg
        log.warning("%s", msg)
        self.errors.append(msg)

    def take_errors(self) -> list[str]:
        errs, self.errors = self.errors, []
        return errs
