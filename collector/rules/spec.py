"""Reading rule files: YAML with a line number on every node, and a validating reader.

Every error a rule author can make is reported as `file:line: what is wrong`, so the
loader keeps positions: mappings load as `YMap` (a dict with `.line` and `.key_lines`),
sequences as `YList` (a list with `.line`). `Spec` reads one mapping field by field and,
when done, refuses fields nobody read (a typo like `treshold` must not silently vanish).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class RuleError(Exception):
    """A rule file problem: `file:line: message`."""

    def __init__(self, message: str, file: str = "", line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        where = self.file or "<rules>"
        return f"{where}:{self.line}: {self.message}" if self.line else f"{where}: {self.message}"


class YMap(dict):
    line: int = 0
    key_lines: dict[str, int]


class YList(list):
    line: int = 0


class _Loader(yaml.SafeLoader):
    """SafeLoader (no object construction) that remembers where each node started."""


def _map(loader: _Loader, node: yaml.MappingNode) -> YMap:
    out = YMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise RuleError(f"keys must be strings, not {key!r}", line=key_node.start_mark.line + 1)
        if key in out:
            raise RuleError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _seq(loader: _Loader, node: yaml.SequenceNode) -> YList:
    out = YList(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _seq)


def load_yaml(text: str, file: str = "") -> Any:
    """Parse YAML text into YMap/YList/scalars; syntax errors become RuleError with a line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except RuleError as exc:
        exc.file = file
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise RuleError(f"invalid YAML: {exc.problem or exc.context}", file, line) from None
    except yaml.YAMLError as exc:
        raise RuleError(f"invalid YAML: {exc}", file) from None
    except (ValueError, TypeError) as exc:  # e.g. an impossible unquoted date: 2025-13-01
        raise RuleError(f"invalid YAML value: {exc}", file) from None
    except RecursionError:
        raise RuleError("invalid YAML: nested too deeply", file) from None


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w))+?", re.ASCII)
_DURATION_FULL = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+", re.ASCII)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> float:
    """Seconds from `90s`, `5m`, `1h30m`, `7d`, `2w`, `250ms`, `0` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"invalid duration {value!r}: must be a finite, non-negative number")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}")
    s = value.strip()
    if s == "0":
        return 0.0
    if not _DURATION_FULL.fullmatch(s):
        raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 5m, 1h30m, 7d")
    total = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(s))
    if not math.isfinite(total) or total > 100 * 365 * 86400:
        raise ValueError(f"invalid duration {value!r}: longer than 100 years")
    return total


_ABSENT = object()


class Spec:
    """Reads the fields of one YAML mapping with type checks; `done()` refuses the rest."""

    def __init__(self, data: Any, file: str, what: str, line: int = 0) -> None:
        if not isinstance(data, dict):
            raise RuleError(f"{what} must be a mapping, not {_kind(data)}", file,
                            getattr(data, "line", 0) or line)
        self.data = data
        self.file = file
        self.what = what
        self.line = getattr(data, "line", 0) or line
        self._read: set[str] = set()

    # --- positions and errors --------------------------------------------------------------
    def line_of(self, key: str) -> int:
        lines = getattr(self.data, "key_lines", None) or {}
        return lines.get(key, self.line)

    def error(self, message: str, key: str | None = None) -> RuleError:
        return RuleError(message, self.file, self.line_of(key) if key else self.line)

    def has(self, key: str) -> bool:
        return key in self.data

    # --- typed fields ----------------------------------------------------------------------
    def missing(self, key: str) -> RuleError:
        """The error for a required field that is absent, pointing at a likely typo of it."""
        typo = difflib.get_close_matches(key, [k for k in self.data if k not in self._read], n=1)
        if typo:
            return self.error(f"{self.what}: missing required field {key!r} "
                              f"(is {typo[0]!r} a typo of it?)", typo[0])
        return self.error(f"{self.what}: missing required field {key!r}")

    def get(self, key: str, types: type | tuple[type, ...], default: Any = _ABSENT) -> Any:
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _ABSENT:
                raise self.missing(key)
            return default
        value = self.data[key]
        if types is float:
            types = (int, float)
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.error(f"{self.what}: {key} must be {_names(types)}, not a boolean", key)
        if not isinstance(value, types):
            raise self.error(f"{self.what}: {key} must be {_names(types)}, not {_kind(value)}", key)
        return value

    def str(self, key: str, default: Any = _ABSENT) -> Any:
        return self.get(key, str, default)

    def number(self, key: str, default: Any = _ABSENT) -> Any:
        value = self.get(key, (int, float), default)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"{self.what}: {key} must be a finite number, not {value!r}", key)
        return float(value) if value is not None and value is not default else value

    def int(self, key: str, default: Any = _ABSENT, minimum: int | None = None) -> Any:
        value = self.get(key, int, default)
        if minimum is not None and isinstance(value, int) and value < minimum:
            raise self.error(f"{self.what}: {key} must be at least {minimum}", key)
        return value

    def bool(self, key: str, default: Any = _ABSENT) -> Any:
        return self.get(key, bool, default)

    def duration(self, key: str, default: Any = _ABSENT) -> Any:
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _ABSENT:
                raise self.missing(key)
            return default
        try:
            return parse_duration(self.data[key])
        except ValueError as exc:
            raise self.error(f"{self.what}: {key}: {exc}", key) from None

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _ABSENT) -> Any:
        value = self.str(key, default)
        if value is not default and value not in choices:
            raise self.error(f"{self.what}: {key} must be one of {', '.join(choices)}, not {value!r}", key)
        return value

    def str_list(self, key: str, default: Any = _ABSENT) -> Any:
        """A list of strings; a single string is accepted as a one-item list."""
        value = self.get(key, (list, str), default)
        if isinstance(value, str):
            return [value]
        if value is default:
            return value
        for item in value:
            if not isinstance(item, str):
                raise self.error(f"{self.what}: {key} must list strings, not {_kind(item)}", key)
        return list(value)

    def str_map(self, key: str, default: Any = _ABSENT) -> Any:
        """A mapping of string keys to scalar values, returned as str -> str."""
        value = self.get(key, dict, default)
        if value is default:
            return value
        out = {}
        for k, v in value.items():
            if isinstance(v, dict | list) or v is None:
                raise self.error(f"{self.what}: {key}.{k} must be a string, not {_kind(v)}", key)
            out[k] = v if isinstance(v, str) else (str(v).lower() if isinstance(v, bool) else str(v))
        return out

    def sub(self, key: str, default: Any = _ABSENT) -> Any:
        """The mapping under `key` as its own Spec (or `default` when absent)."""
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _ABSENT:
                raise self.missing(key)
            return default
        return Spec(self.data[key], self.file, f"{self.what}.{key}", self.line_of(key))

    def items(self, key: str, default: Any = _ABSENT) -> Any:
        """The list under `key`, as Specs for mapping items."""
        value = self.get(key, list, default)
        if value is default:
            return value
        line = getattr(value, "line", self.line_of(key))
        return [Spec(item, self.file, f"{self.what}.{key}[{i}]", line) for i, item in enumerate(value)]

    def raw(self, key: str, default: Any = _ABSENT) -> Any:
        self._read.add(key)
        if key not in self.data:
            if default is _ABSENT:
                raise self.missing(key)
            return default
        return self.data[key]

    def parse(self, key: str, fn: Callable[[Any], T], default: Any = _ABSENT) -> T:
        """Run `fn` on the raw value; a ValueError becomes a RuleError at the field's line."""
        value = self.raw(key, default)
        if value is default:
            return value
        try:
            return fn(value)
        except RuleError:
            raise
        except (ValueError, TypeError) as exc:
            raise self.error(f"{self.what}: {key}: {exc}", key) from None

    def done(self) -> None:
        """Refuse fields that were never read: they are typos or unsupported options."""
        unknown = [k for k in self.data if k not in self._read]
        if unknown:
            k = unknown[0]
            hint = difflib.get_close_matches(k, list(self._read), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else (
                f" (known: {', '.join(sorted(self._read))})" if self._read else "")
            raise self.error(f"{self.what}: unknown field {k!r}{extra}", k)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return type(value).__name__


def _names(types: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             list: "a list", dict: "a mapping"}
    if isinstance(types, tuple):
        parts = list(dict.fromkeys(names.get(t, t.__name__) for t in types))
        if "an integer" in parts and "a number" in parts:
            parts.remove("an integer")
        return " or ".join(parts)
    return names.get(types, types.__name__)
