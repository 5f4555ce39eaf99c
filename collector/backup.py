"""Backup and restore of the collector's state — the department's backup rule applies to us too.

`warden-collector backup create FILE` writes one tar.gz (mode 0600: it holds the CA's private
key) with consistent copies of every database (SQLite's online backup API, so it runs while
the collector ingests), the TLS material (CA, server and enrollment keys: agents keep
trusting a restored collector and their certificates stay valid) and the operators'
certificates, plus a MANIFEST.json with the SHA-256 of every member.

`backup verify FILE` checks the manifest, every digest and each database's integrity.
`backup restore FILE` verifies first and writes nothing unless all of it is sound; it restores
into an empty (or absent) data directory, through a temporary directory renamed into place, so
an interrupted restore leaves no half-restored state. Stop the collector before restoring.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "MANIFEST.json"
FORMAT = 1
DATABASES = ("warden.db", "alerts.db", "web.db")
DIRECTORIES = ("tls", "operators")


class BackupError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BackupInfo:
    path: Path
    members: dict[str, str]  # name -> sha256
    created_ns: int
    bytes: int


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy_database(src: Path, dst: Path) -> None:
    """A transactionally consistent copy of a live WAL database."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target, pages=4096)  # in steps: writers are not blocked for long
            target.execute("PRAGMA journal_mode=DELETE")  # a self-contained file in the archive
        finally:
            target.close()
    finally:
        source.close()


def create(data_dir: Path, dest: Path) -> BackupInfo:
    """Write a backup of `data_dir` to `dest` (atomically: a temporary file renamed)."""
    if not (data_dir / "warden.db").exists():
        raise BackupError(f"{data_dir} holds no collector database (warden.db)")
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="warden-backup-") as tmp:
        stage = Path(tmp)
        members: dict[str, str] = {}
        for name in DATABASES:
            src = data_dir / name
            if src.exists():
                _copy_database(src, stage / name)
                members[name] = _sha256(stage / name)
        for d in DIRECTORIES:
            src_dir = data_dir / d
            if not src_dir.is_dir():
                continue
            for f in sorted(p for p in src_dir.rglob("*") if p.is_file()):
                rel = f.relative_to(data_dir).as_posix()
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, stage / rel)
                members[rel] = _sha256(stage / rel)
        created = time.time_ns()
        manifest = {"format": FORMAT, "created_ns": created, "source": str(data_dir), "members": members}
        fd, partial = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                data = json.dumps(manifest, indent=2, sort_keys=True).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(data), int(created / 1e9), 0o600
                tar.addfile(info, io.BytesIO(data))
                for name in members:
                    tar.add(stage / name, arcname=name, recursive=False)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, dest)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
    return BackupInfo(dest, members, created, dest.stat().st_size)


def _extract_verified(archive: Path, into: Path) -> dict[str, Any]:
    """Extract into `into` (empty) and check everything; BackupError says what is wrong."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = tar.getnames()
            if MANIFEST not in names:
                raise BackupError(f"{archive}: no {MANIFEST}: not a Warden backup")
            manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
            if manifest.get("format") != FORMAT:
                raise BackupError(f"{archive}: backup format {manifest.get('format')!r} is not {FORMAT}")
            members: dict[str, str] = manifest.get("members", {})
            extra = set(names) - set(members) - {MANIFEST}
            if extra:
                raise BackupError(f"{archive}: members not in the manifest: {sorted(extra)[:5]}")
            tar.extractall(into, filter="data")  # refuses absolute paths, '..', devices, links out
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError) as exc:
        raise BackupError(f"{archive}: unreadable backup: {exc}") from None
    for name, digest in members.items():
        path = into / name
        if not path.is_file():
            raise BackupError(f"{archive}: {name} is missing")
        if _sha256(path) != digest:
            raise BackupError(f"{archive}: {name} does not match its SHA-256 in the manifest: "
                              f"the backup is damaged or was altered")
    for name in DATABASES:
        if name in members:
            conn = sqlite3.connect(f"file:{into / name}?mode=ro", uri=True)
            try:
                result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise BackupError(f"{archive}: {name} is not a usable database: {exc}") from None
            finally:
                conn.close()
            if result != "ok":
                raise BackupError(f"{archive}: {name} fails its integrity check: {result}")
    if "warden.db" not in members or "tls/ca.key" not in members:
        raise BackupError(f"{archive}: incomplete backup (needs warden.db and tls/ca.key)")
    return manifest


def verify(archive: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="warden-verify-") as tmp:
        return _extract_verified(archive, Path(tmp))


def restore(archive: Path, data_dir: Path) -> dict[str, Any]:
    """Restore into `data_dir`, which must be absent or empty; nothing is written unless the
    whole backup checks out."""
    data_dir = data_dir.resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore into a new directory (or move it away "
                          f"first); the collector must be stopped")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restore-", dir=data_dir.parent))
    try:
        manifest = _extract_verified(archive, stage)
        os.chmod(stage, 0o700)
        for p in stage.rglob("*"):
            os.chmod(p, 0o700 if p.is_dir() else 0o600)
        if data_dir.exists():
            data_dir.rmdir()  # empty, checked above
        os.rename(stage, data_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return manifest
