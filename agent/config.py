"""Agent configuration: TOML (tomllib) read into frozen dataclasses.

The dataclasses are the single source of truth: their defaults and the one-line doc in each
field's metadata produce `agent.example.toml` (`render_example()`; a test keeps the committed
file in sync), and every `[probes.<name>]` table is derived from the probe registry.
Anything unknown or mistyped is a `ConfigError` naming the key, raised at start-up.

Regenerate the example with `python -m warden.agent.config > agent/agent.example.toml`.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warden.agent.probes import RESERVED_KEYS, HostPaths, ProbeSpec, option, registered
from warden.agent.probes import names as probe_names
from warden.agent.probes import spec as probe_spec

__all__ = [
    "AgentConfig",
    "AgentSection",
    "ConfigError",
    "ProbeSettings",
    "SpoolSection",
    "TransportSection",
    "load_config",
    "render_example",
]

MiB = 1024 * 1024


class ConfigError(Exception):
    """The configuration is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class AgentSection:
    """Identity and state of this agent."""

    state_dir: Path = option(Path("/var/lib/warden-agent"), "Directory for the agent's state (spool, keys).")


@dataclass(frozen=True)
class SpoolSection:
    """The on-disk queue of records not yet acknowledged by the collector."""

    path: Path | None = option(None, "Spool database file (default: spool.db in agent.state_dir).")
    max_bytes: int = option(
        64 * MiB, "Cap on pending record bytes (64 MiB); past it the oldest records are dropped.", gt=0
    )


@dataclass(frozen=True)
class TransportSection:
    """How records are streamed to the collector."""

    batch_max_records: int = option(500, "Most records in one batch.", gt=0)
    batch_max_bytes: int = option(1 * MiB, "Most serialized record bytes in one batch (1 MiB).", gt=0)
    max_inflight_batches: int = option(4, "Batches sent ahead of the collector's acknowledgement.", gt=0)
    heartbeat_seconds: float = option(15.0, "Heartbeat interval on an idle stream.", gt=0)
    backoff_initial_seconds: float = option(0.5, "First reconnect delay; doubles up to the maximum.", gt=0)
    backoff_max_seconds: float = option(60.0, "Longest reconnect delay.", gt=0)
    renew_before_fraction: float = option(
        0.33, "Renew the certificate when this fraction of its lifetime remains.", gt=0, lt=1
    )

    def __post_init__(self) -> None:
        if self.backoff_initial_seconds > self.backoff_max_seconds:
            raise ValueError("backoff_initial_seconds must not exceed backoff_max_seconds")


@dataclass(frozen=True)
class ProbeSettings:
    """One `[probes.<name>]` table: the agent's keys plus the probe's own options dataclass."""

    enabled: bool
    interval_seconds: float
    options: Any


class _UnloadedProbe(ProbeSettings):
    """A probe the file switches off without setting any of its options: its module is not
    imported (the agent never runs it; importing every probe costs megabytes of RSS). Its
    default interval and options are loaded when first read; it equals the ProbeSettings
    that would have been built."""

    def __init__(self, name: str, interval_seconds: float | None) -> None:
        object.__setattr__(self, "enabled", False)
        object.__setattr__(self, "_name", name)
        if interval_seconds is not None:
            object.__setattr__(self, "interval_seconds", interval_seconds)

    def __getattr__(self, attr: str) -> Any:  # only for attributes not set yet
        if attr not in ("interval_seconds", "options"):
            raise AttributeError(attr)
        defaults = _probe_defaults(probe_spec(self.__dict__["_name"]))
        if "interval_seconds" not in self.__dict__:
            object.__setattr__(self, "interval_seconds", defaults.interval_seconds)
        object.__setattr__(self, "options", defaults.options)
        return self.__dict__[attr]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProbeSettings):
            return NotImplemented
        return (self.enabled, self.interval_seconds, self.options) == (
            other.enabled, other.interval_seconds, other.options)

    def __hash__(self) -> int:
        return hash((self.enabled, self.interval_seconds, self.options))

    def __repr__(self) -> str:
        return f"ProbeSettings(enabled={self.enabled!r}, interval_seconds={self.interval_seconds!r}, " \
               f"options={self.options!r})"


def _default_probes() -> dict[str, ProbeSettings]:
    return {name: _probe_defaults(spec) for name, spec in registered().items()}


def _probe_defaults(spec: ProbeSpec) -> ProbeSettings:
    return ProbeSettings(spec.default_enabled, spec.default_interval_seconds, spec.config())


@dataclass(frozen=True)
class AgentConfig:
    agent: AgentSection = field(default_factory=AgentSection)
    paths: HostPaths = field(default_factory=HostPaths)
    spool: SpoolSection = field(default_factory=SpoolSection)
    transport: TransportSection = field(default_factory=TransportSection)
    probes: Mapping[str, ProbeSettings] = field(default_factory=_default_probes)

    def __post_init__(self) -> None:
        # Resolve derived defaults once, so consumers always see a concrete spool path.
        if self.spool.path is None:
            spool = dataclasses.replace(self.spool, path=self.agent.state_dir / "spool.db")
            object.__setattr__(self, "spool", spool)

    @property
    def spool_path(self) -> Path:
        assert self.spool.path is not None  # resolved in __post_init__
        return self.spool.path


# Plain sections in file order; [probes.*] comes last and is handled separately.
_SECTIONS: dict[str, type] = {
    "agent": AgentSection,
    "paths": HostPaths,
    "spool": SpoolSection,
    "transport": TransportSection,
}

_PROBE_KEYS_DOC = {
    "enabled": "Run this probe.",
    "interval_seconds": "Seconds between runs.",
}


def load_config(path: Path | None) -> AgentConfig:
    """Read the agent configuration from `path`; None gives all defaults."""
    if path is None:
        return AgentConfig()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        return _from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _from_dict(data: dict[str, Any]) -> AgentConfig:
    known = [*_SECTIONS, "probes"]
    for name in data:
        if name not in known:
            raise ConfigError(f"unknown section [{name}] (known: {', '.join(known)})")
    kwargs: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        kwargs[name] = _build(cls, _table(data.get(name, {}), name), name)
    kwargs["probes"] = _build_probes(_table(data.get("probes", {}), "probes"))
    return AgentConfig(**kwargs)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table [{where}], got {_describe(value)}")
    return value


def _build_probes(table: dict[str, Any]) -> dict[str, ProbeSettings]:
    known = probe_names()
    for name in table:
        if name not in known:
            raise ConfigError(f"unknown probe [probes.{name}] (registered: {', '.join(known)})")
    out: dict[str, ProbeSettings] = {}
    for name in known:
        where = f"probes.{name}"
        values = dict(_table(table.get(name, {}), where))
        if values.get("enabled") is False and values.keys() <= {"enabled", "interval_seconds"}:
            interval = values.get("interval_seconds")
            out[name] = _UnloadedProbe(name, None if interval is None else _convert(
                interval, float, f"{where}.interval_seconds", {"gt": 0}))
            continue
        spec = probe_spec(name)
        defaults = _probe_defaults(spec)
        enabled = _convert(values.pop("enabled", defaults.enabled), bool, f"{where}.enabled", {})
        interval = _convert(
            values.pop("interval_seconds", defaults.interval_seconds),
            float,
            f"{where}.interval_seconds",
            {"gt": 0},
        )
        out[name] = ProbeSettings(enabled, interval, _build(spec.config, values, where))
    return out


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in table:
        if key not in fields:
            known = sorted(fields) + (sorted(RESERVED_KEYS) if where.startswith("probes.") else [])
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(known) or 'none'})")
    kwargs = {
        key: _convert(value, hints[key], f"{where}.{key}", fields[key].metadata)
        for key, value in table.items()
    }
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[{where}] {e}") from None


def _convert(value: Any, tp: Any, key: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        # Optional fields (default None) take the non-None type; TOML has no null.
        (tp,) = [t for t in typing.get_args(tp) if t is not type(None)]
        origin = typing.get_origin(tp)
    if origin is Mapping:
        # Mapping[str, T]: a table of named entries, e.g. [probes.backups.sets.<name>]; read-only
        # like the frozen dataclass that holds it.
        key_type, item_type = typing.get_args(tp)
        assert key_type is str, f"{key}: only Mapping[str, T] options are supported"
        table = _table(value, key)
        return types.MappingProxyType({k: _convert(v, item_type, f"{key}.{k}", {}) for k, v in table.items()})
    if dataclasses.is_dataclass(tp):  # a nested table, built (and checked) like a section
        return _build(tp, _table(value, key), key)
    if origin is tuple:
        item_type, ellipsis = typing.get_args(tp)
        assert ellipsis is Ellipsis, f"{key}: only tuple[T, ...] options are supported"
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected an array, got {_describe(value)}")
        return tuple(_convert(v, item_type, f"{key}[{i}]", {}) for i, v in enumerate(value))
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif tp is Path:
        ok = isinstance(value, str | Path) and str(value) != ""
        value = Path(value) if ok else value
    else:  # a programming error in a section or probe config dataclass
        raise TypeError(f"{key}: unsupported option type {tp!r}")
    if not ok:
        raise ConfigError(f"{key}: expected {_TYPE_NAMES.get(tp, tp)}, got {_describe(value)}")
    _check_bounds(value, key, meta)
    return value


_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a path string",
}


def _check_bounds(value: Any, key: str, meta: Mapping[str, Any]) -> None:
    for name, fails, word in (
        ("gt", lambda v, b: v <= b, ">"),
        ("ge", lambda v, b: v < b, ">="),
        ("lt", lambda v, b: v >= b, "<"),
        ("le", lambda v, b: v > b, "<="),
    ):
        if name in meta and fails(value, meta[name]):
            raise ConfigError(f"{key}: must be {word} {meta[name]}, got {value!r}")


def _describe(value: Any) -> str:
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} ({text if len(text) <= 40 else text[:37] + '...'})"


# --- example file -------------------------------------------------------------------------------

_HEADER = """\
# Warden agent configuration (TOML).
#
# Every option is listed, commented out, with its default; uncomment a line to change it.
# Unknown sections or keys, and values of the wrong type, stop the agent at start-up.
#
# Generated from the option definitions by warden.agent.config.render_example();
# tests/test_agent_config.py fails when this file and the code disagree.
"""


def render_example() -> str:
    """The text of agent.example.toml: every option with its doc and default."""
    defaults = AgentConfig()
    parts = [_HEADER]
    for name, cls in _SECTIONS.items():
        parts.append(_render_table(name, _class_doc(cls), getattr(defaults, name)))
    for name, spec in registered().items():
        settings = defaults.probes[name]
        lines = [
            *_render_option("enabled", _PROBE_KEYS_DOC["enabled"], settings.enabled),
            *_render_option(
                "interval_seconds", _PROBE_KEYS_DOC["interval_seconds"], settings.interval_seconds
            ),
        ]
        parts.append(_render_table(f"probes.{name}", spec.doc, settings.options, lines))
    return "\n".join(parts)


def _class_doc(cls: type) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""


def _render_table(name: str, doc: str, instance: Any, lines: list[str] | None = None) -> str:
    out = [f"# {doc}"] if doc else []
    out.append(f"[{name}]")
    out.extend(lines or [])
    hints = typing.get_type_hints(type(instance))
    for f in dataclasses.fields(instance):
        if f.init:
            out.extend(_render_option(f.name, f.metadata["doc"], getattr(instance, f.name)))
            out.extend(_render_entry_keys(f"{name}.{f.name}", hints[f.name]))
    return "\n".join(out) + "\n"


def _render_entry_keys(where: str, tp: Any) -> list[str]:
    """For a Mapping[str, <dataclass>] option, the keys each named entry takes, as comments."""
    if typing.get_origin(tp) is not Mapping:
        return []
    item = typing.get_args(tp)[1]
    if not dataclasses.is_dataclass(item):
        return []
    out = [f"# Each [{where}.<name>] table takes (default in parentheses):"]
    for f in dataclasses.fields(item):
        if f.init:
            default = "none" if f.default is None else _toml_value(f.default)
            out.append(f"# - {f.name} ({default}): {f.metadata['doc']}")
    return out


def _render_option(key: str, doc: str, value: Any) -> list[str]:
    head = f"# {key} = "
    text = _toml_value(value)
    if isinstance(value, tuple) and len(head) + len(text) > 100:
        items = [f"#     {_toml_value(v)}," for v in value]
        return [f"# {doc}", f"{head}[", *items, "# ]"]
    return [f"# {doc}", head + text]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        # A JSON string is a valid TOML basic string (same escapes, \uXXXX for non-ASCII).
        return json.dumps(str(value))
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # An inline table of the fields set (None is "not set": TOML has no null).
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        return _toml_value({k: v for k, v in fields.items() if v is not None})
    raise TypeError(f"cannot render {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key) else json.dumps(key)


if __name__ == "__main__":
    print(render_example(), end="")
