"""Probe protocol and registry.

A probe is one module in this package that decorates a class with `@probe(...)`, the probe
named as its module (`logs.py` registers "logs"). Every public module in this package (found
by pkgutil) is a probe, so adding a probe is adding one file; modules whose name starts with
"_" (private OS backends) are left to their probe. Probe modules are imported on demand:
`names()` lists them without importing any, `spec(name)` imports one, `registered()` all. An
agent running a few probes never loads the others (nor what they import): megabytes of RSS.

A probe class is constructed as `cls(options, paths, state_dir)`: `options` is an instance of
the config dataclass given to `@probe` (filled from `[probes.<name>]`), `paths` a `HostPaths`,
`state_dir` the probe's own directory for state that must survive restarts (e.g. stored
digests, last-seen hashes); it may not exist yet: a probe that needs it creates it (0700).
It must have `collect() -> Iterable[Record]`, called from a worker thread, never concurrently
with itself. Optional: `validate()` (raise ValueError on bad options; run at start-up),
`start()` / `stop()` for probes holding resources, and `checkpoint() -> bytes | None` /
`restore(state: bytes | None)` for probes that must resume where they stopped (a log tail):
checkpoint() is called right after each collect() and its value is stored in the spool in the
same transaction as that run's records; restore() gets it back before the first run.
A probe that makes many records may also have `collect_serialized()`, the same run with any of
the records given as the bytes of a serialized `warden.v1.Record`; the scheduler then calls it
instead of collect() and spools those bytes as they are.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from warden.v1 import records_pb2

__all__ = ["HostPaths", "NoOptions", "Probe", "ProbeSpec", "names", "option", "probe", "registered", "spec"]

# Keys the agent owns in every [probes.<name>] table; a probe option may not reuse them.
RESERVED_KEYS = frozenset({"enabled", "interval_seconds"})

_NAME = re.compile(r"[a-z][a-z0-9_]*")


def option(default: Any, doc: str, **bounds: float) -> Any:
    """A config dataclass field: its default, one-line doc and optional bounds (gt, ge, lt, le).

    The doc and default end up in agent.example.toml; the bounds are checked at start-up.
    """
    return field(default=default, metadata={"doc": doc, **bounds})


@dataclass(frozen=True)
class HostPaths:
    """Where the host's filesystems are, so an agent in a container (or a test) can look elsewhere."""

    proc_root: Path = option(Path("/proc"), "Mount point of the host's procfs.")
    sys_root: Path = option(Path("/sys"), "Mount point of the host's sysfs.")
    rootfs: Path = option(Path("/"), "The host's root filesystem (os-release, mount points).")

    def host_path(self, path: str | Path) -> Path:
        """An absolute host path (e.g. a mount point) as seen from this process."""
        return self.rootfs / Path(path).relative_to("/")


@dataclass(frozen=True)
class NoOptions:
    """Options of a probe that has none besides `enabled` and `interval_seconds`."""


@runtime_checkable
class Probe(Protocol):
    def collect(self) -> Iterable[records_pb2.Record]: ...


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    cls: Callable[[Any, HostPaths], Probe]
    config: type
    default_interval_seconds: float
    default_enabled: bool
    doc: str  # first line of the class docstring; heads the probe's block in agent.example.toml


_registry: dict[str, ProbeSpec] = {}

T = TypeVar("T", bound=type)


def probe(
    name: str, default_interval_seconds: float, config: type = NoOptions, default_enabled: bool = True
) -> Callable[[T], T]:
    """Register the decorated class as probe `name` (`[probes.<name>]` in the config)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"probe name {name!r} must match {_NAME.pattern}")
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"probe {name!r}: config must be a dataclass type")
    clash = RESERVED_KEYS & {f.name for f in dataclasses.fields(config)}
    if clash:
        raise ValueError(f"probe {name!r}: option(s) {sorted(clash)} are reserved")
    undocumented = [f.name for f in dataclasses.fields(config) if not f.metadata.get("doc")]
    if undocumented:
        # The docs of agent.example.toml come from here; an option without one is a bug.
        raise ValueError(f"probe {name!r}: option(s) {undocumented} lack metadata {{'doc': ...}}")

    def register(cls: T) -> T:
        module = getattr(cls, "__module__", "")
        if module.startswith(f"{__name__}.") and module != f"{__name__}.{name}":
            # spec(name) finds a probe by its module: they must agree.
            raise ValueError(f"probe {name!r} must be registered by module {__name__}.{name}, not {module}")
        if name in _registry:
            raise ValueError(f"probe {name!r} registered twice ({_registry[name].cls} and {cls})")
        doc = (cls.__doc__ or "").strip().splitlines()
        _registry[name] = ProbeSpec(
            name=name,
            cls=cls,
            config=config,
            default_interval_seconds=float(default_interval_seconds),
            default_enabled=default_enabled,
            doc=doc[0] if doc else "",
        )
        return cls

    return register


def names() -> list[str]:
    """The names of all probes, in name order, without importing any."""
    global _names
    if _names is None:
        _names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return list(_names)


def spec(name: str) -> ProbeSpec:
    """Probe `name`, its module imported if it was not yet; KeyError for an unknown name."""
    if name not in _registry:
        if name not in names():
            raise KeyError(name)
        importlib.import_module(f"{__name__}.{name}")
        if name not in _registry:
            raise RuntimeError(f"module {__name__}.{name} registers no probe {name!r}")
    return _registry[name]


def registered() -> dict[str, ProbeSpec]:
    """All registered probes by name, in name order (every probe module imported)."""
    for name in names():
        spec(name)
    return dict(sorted(_registry.items()))


_names: list[str] | None = None
