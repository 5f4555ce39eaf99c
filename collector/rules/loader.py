"""Load a directory of rule files into a `RuleSet`, reporting every problem as `file:line`.

A rule file:

    calendars:                 # optional: named working-hours calendars (see calendar.py)
      office: {timezone: Europe/Paris, days: [mon, tue, wed, thu, fri], hours: "08:00-19:00"}
    rules:
      - id: disk_space_warning
        kind: metric           # metric | event | state: each kind is parsed by its own module
        ...

Only `*.yml` / `*.yaml` directly in the directory are rule files (rule unit tests live in a
subdirectory). Loading never stops at the first error: `RuleErrors` carries all of them,
and the collector keeps its last good rules when a reload fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warden.collector.rules.calendar import DEFAULT_CALENDARS, Calendar, parse_calendar
from warden.collector.rules.event import parse_event_rule
from warden.collector.rules.metric import parse_metric_rule
from warden.collector.rules.model import ParseContext, Rule, RuleCommon, parse_common
from warden.collector.rules.spec import RuleError, Spec, load_yaml
from warden.collector.rules.state import parse_state_rule

KINDS: dict[str, Callable[[Spec, RuleCommon, ParseContext], Any]] = {
    "metric": parse_metric_rule,
    "event": parse_event_rule,
    "state": parse_state_rule,
}
MAX_FILE_BYTES = 4 * 1024 * 1024


class RuleErrors(Exception):
    """Several rule problems at once; str() lists them one per line."""

    def __init__(self, errors: Sequence[RuleError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = list(errors)


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)
    calendars: dict[str, Calendar] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    digest: str = ""  # over the files' bytes: tells a reload whether anything changed

    def by_id(self) -> dict[str, Rule]:
        return {r.common.id: r for r in self.rules}


def rule_files(path: Path) -> list[Path]:
    """The rule files of a directory (sorted), or the file itself."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise RuleErrors([RuleError("no such file or directory", str(path))])
    return sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


def load_rules(paths: Path | Sequence[Path]) -> RuleSet:
    """Parse every rule file; raise RuleErrors listing every problem found."""
    files: list[Path] = []
    for p in [paths] if isinstance(paths, Path) else paths:
        files += rule_files(Path(p))
    errors: list[RuleError] = []
    docs: list[tuple[Path, Any]] = []
    digest = hashlib.sha256()
    for f in files:
        try:
            data = f.read_bytes()
            if len(data) > MAX_FILE_BYTES:
                raise RuleError(f"file larger than {MAX_FILE_BYTES // 1024 // 1024} MiB", str(f))
            digest.update(str(f).encode() + b"\0" + data + b"\0")
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(RuleError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", str(f)))
            continue
        except OSError as exc:
            errors.append(RuleError(f"cannot read: {exc.strerror or exc}", str(f)))
            continue
        except RuleError as exc:
            errors.append(exc)
            continue
        try:
            doc = load_yaml(text, str(f))
        except RuleError as exc:
            errors.append(exc)
            continue
        if doc is None:
            continue  # an empty file defines nothing
        if not isinstance(doc, dict):
            errors.append(RuleError("a rule file is a mapping with `rules:` (and optional `calendars:`)",
                                    str(f), getattr(doc, "line", 1)))
            continue
        docs.append((f, doc))

    # Calendars first: rules in any file may use a calendar defined in any file.
    calendars: dict[str, Calendar] = dict(DEFAULT_CALENDARS)
    defined_at: dict[str, str] = {}
    for f, doc in docs:
        top = Spec(doc, str(f), "file")
        cals = top.get("calendars", dict, {})
        for name in cals:
            where = f"{f}:{cals.key_lines.get(name, 0) if hasattr(cals, 'key_lines') else 0}"
            if name in defined_at:
                errors.append(RuleError(f"calendar {name!r} already defined at {defined_at[name]}", str(f),
                                        cals.key_lines.get(name, 0)))
                continue
            try:
                calendars[name] = parse_calendar(Spec(cals[name], str(f), f"calendar {name}",
                                                      cals.key_lines.get(name, 0)), name)
                defined_at[name] = where
            except RuleError as exc:
                errors.append(exc)
    ctx = ParseContext(calendars=calendars)

    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for f, doc in docs:
        top = Spec(doc, str(f), "file")
        top.get("calendars", dict, {})
        try:
            items = top.items("rules", [])
            top.done()
        except RuleError as exc:
            errors.append(exc)
            continue
        for spec in items:
            try:
                rule = _parse_rule(spec, ctx)
            except RuleError as exc:
                errors.append(exc)
                continue
            rid = rule.common.id
            if rid in seen:
                errors.append(RuleError(f"rule id {rid!r} is already defined at {seen[rid]}", str(f),
                                        spec.line))
                continue
            seen[rid] = f"{f}:{spec.line}"
            rules.append(rule)
    if errors:
        raise RuleErrors(errors)
    return RuleSet(rules, calendars, files, digest.hexdigest())


def _parse_rule(spec: Spec, ctx: ParseContext) -> Rule:
    if not isinstance(spec.data, dict):
        raise spec.error(f"{spec.what} must be a mapping")
    kind = spec.data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise spec.error(f"{spec.what}: kind must be one of {', '.join(KINDS)}, not {kind!r}",
                         "kind" if "kind" in spec.data else None)
    common = parse_common(spec, kind)
    rule = KINDS[kind](spec, common, ctx)
    spec.done()
    return rule


def check(paths: Path | Sequence[Path]) -> tuple[RuleSet | None, list[RuleError]]:
    """For `warden-collector rules check`: the rule set, or every error."""
    try:
        return load_rules(paths), []
    except RuleErrors as exc:
        return None, exc.errors
