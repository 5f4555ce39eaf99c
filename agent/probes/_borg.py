"""Parse `borg list --json` (pure: bytes in, archives out), for the backups probe.

borg prints one object: `archives` (each with `name`, `id` and `start`; borg 1.1+ also
`archive`, `barchive` and `time`) beside `repository` and `encryption`. borg 1.x writes
local time without a zone ("2017-08-07T12:27:20", microseconds from 1.1); borg 2 adds an offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from warden.agent.probes._restic import ParseError, load_json, parse_timestamp

__all__ = ["Archive", "BorgList", "ParseError", "parse_list"]


@dataclass(frozen=True)
class Archive:
    name: str
    id: str
    time: float  # Unix seconds of the archive's start


@dataclass(frozen=True)
class BorgList:
    archives: list[Archive]
    repository: str  # the repository's canonical location, "" when absent


def parse_list(data: bytes | str, naive_tz: tzinfo | None = None) -> BorgList:
    """The archives in `borg list --json` output; zone-less times are taken in `naive_tz`
    (None: this host's local time, as borg writes them)."""
    doc = load_json(data)
    if not isinstance(doc, dict):
        raise ParseError(f"expected a JSON object, got {type(doc).__name__}")
    items = doc.get("archives")
    if not isinstance(items, list):
        raise ParseError("no 'archives' array (is this `borg list --json` of a repository?)")
    archives = [_archive(a, i, naive_tz) for i, a in enumerate(items)]
    repo = doc.get("repository")
    location = repo.get("location") if isinstance(repo, dict) else None
    return BorgList(archives, location if isinstance(location, str) else "")


def _archive(item: Any, i: int, naive_tz: tzinfo | None) -> Archive:
    if not isinstance(item, dict):
        raise ParseError(f"archives[{i}]: expected an object, got {type(item).__name__}")
    name = item.get("name", item.get("archive"))
    if not isinstance(name, str) or not name:
        raise ParseError(f"archives[{i}]: no archive name")
    when = item.get("start", item.get("time"))
    try:
        t = parse_timestamp(when, naive_tz)  # type: ignore[arg-type]
    except ValueError as e:
        raise ParseError(f"archives[{i}] ({name}): {e}") from None
    aid = item.get("id")
    return Archive(name=name, id=aid if isinstance(aid, str) else "", time=t)
