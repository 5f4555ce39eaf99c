import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import pytest

import warden.agent
from warden.agent.config import (
    AgentConfig,
    ConfigError,
    TransportSection,
    _build,
    _render_table,
    load_config,
    render_example,
)
from warden.agent.probes import HostPaths, option, registered
from warden.agent.probes.system import SystemOptions

EXAMPLE = Path(warden.agent.__file__).parent / "agent.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "agent.toml"
    p.write_text(text)
    return p


def test_defaults() -> None:
    cfg = load_config(None)
    assert cfg == AgentConfig()
    assert cfg.agent.state_dir == Path("/var/lib/warden-agent")
    assert cfg.spool.path == cfg.spool_path == Path("/var/lib/warden-agent/spool.db")
    assert cfg.spool.max_bytes == 64 * 1024 * 1024
    assert cfg.transport == TransportSection(500, 1024 * 1024, 4, 15.0, 0.5, 60.0, 0.33)
    assert cfg.paths == HostPaths()
    system = cfg.probes["system"]
    assert (system.enabled, system.interval_seconds, system.options) == (True, 15.0, SystemOptions())
    assert set(cfg.probes) == set(registered())


def test_values_are_read_and_converted(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
            [agent]
            state_dir = "/srv/warden"
            [paths]
            rootfs = "/host"
            [transport]
            heartbeat_seconds = 5          # an integer where a number is expected is fine
            batch_max_records = 100
            [probes.system]
            enabled = false
            interval_seconds = 30
            exclude_fstypes = ["nfs"]
            statvfs_timeout_seconds = 1.5
            """,
        )
    )
    assert cfg.agent == type(cfg.agent)(Path("/srv/warden"))
    assert cfg.spool.path == Path("/srv/warden/spool.db")  # follows state_dir
    assert cfg.paths.rootfs == Path("/host") and cfg.paths.proc_root == Path("/proc")
    assert cfg.transport.heartbeat_seconds == 5.0 and isinstance(cfg.transport.heartbeat_seconds, float)
    assert cfg.transport.batch_max_records == 100
    system = cfg.probes["system"]
    assert (system.enabled, system.interval_seconds) == (False, 30.0)
    assert system.options.exclude_fstypes == ("nfs",)
    assert system.options.statvfs_timeout_seconds == 1.5
    assert system.options.exclude_mounts == SystemOptions().exclude_mounts


def test_explicit_spool_path_wins(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[agent]\nstate_dir = "/a"\n[spool]\npath = "/b/q.db"\n'))
    assert cfg.spool.path == Path("/b/q.db")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[agnet]\n", r"unknown section \[agnet\]"),
        ("[agent]\nstate_dri = '/x'\n", r"agent: unknown key 'state_dri'"),
        ("[probes.nope]\n", r"unknown probe \[probes.nope\]"),
        ("[probes.system]\nexclude_fs = []\n", r"probes.system: unknown key 'exclude_fs'.*enabled"),
        ("agent = 3\n", r"agent: expected a table"),
        (
            "[transport]\nbatch_max_records = '500'\n",
            r"transport.batch_max_records: expected an integer, got a string",
        ),
        (
            "[transport]\nbatch_max_records = 5.5\n",
            r"transport.batch_max_records: expected an integer, got a number",
        ),
        (
            "[transport]\nbatch_max_records = true\n",
            r"transport.batch_max_records: expected an integer, got a boolean",
        ),
        ("[transport]\nheartbeat_seconds = 'soon'\n", r"transport.heartbeat_seconds: expected a number"),
        ("[transport]\nbatch_max_records = 0\n", r"transport.batch_max_records: must be > 0, got 0"),
        ("[transport]\nrenew_before_fraction = 1.0\n", r"transport.renew_before_fraction: must be < 1"),
        (
            "[transport]\nbackoff_initial_seconds = 90\n",
            r"\[transport\] backoff_initial_seconds must not exceed",
        ),
        ("[agent]\nstate_dir = ''\n", r"agent.state_dir: expected a path string"),
        ("[agent]\nstate_dir = 4443\n", r"agent.state_dir: expected a path string"),
        ("[agent]\ncollector_address = 'x:1'\n", r"agent: unknown key 'collector_address'"),
        ("[probes.system]\nenabled = 'yes'\n", r"probes.system.enabled: expected a boolean"),
        ("[probes.system]\ninterval_seconds = -1\n", r"probes.system.interval_seconds: must be > 0"),
        ("[probes.system]\nexclude_fstypes = 'nfs'\n", r"probes.system.exclude_fstypes: expected an array"),
        (
            "[probes.system]\nexclude_fstypes = ['nfs', 3]\n",
            r"probes.system.exclude_fstypes\[1\]: expected a string",
        ),
        ("[agent\n", r"invalid TOML"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_every_option_has_a_doc() -> None:
    cfg = AgentConfig()
    sections = [cfg.agent, cfg.paths, cfg.spool, cfg.transport, *(p.options for p in cfg.probes.values())]
    for section in sections:
        for f in dataclasses.fields(section):
            doc = f.metadata.get("doc", "")
            assert doc and "\n" not in doc, f"{type(section).__name__}.{f.name} needs a one-line doc"


def test_example_file_is_in_sync_with_the_code() -> None:
    assert EXAMPLE.read_text() == render_example(), (
        "agent/agent.example.toml is stale: python -m warden.agent.config > agent/agent.example.toml"
    )


def test_example_file_loads_to_the_defaults() -> None:
    assert load_config(EXAMPLE) == AgentConfig()


def test_example_uncommented_is_valid_and_still_the_defaults(tmp_path: Path) -> None:
    # Each "# key = value" line, uncommented, must parse back to the same default.
    lines = []
    for line in render_example().splitlines():
        if line.startswith("# ") and (" = " in line or line.startswith(("#     ", "# ]"))):
            lines.append(line[2:])
        elif not line.startswith("#"):
            lines.append(line)
    text = "\n".join(lines)
    tomllib.loads(text)
    assert load_config(write(tmp_path, text)) == AgentConfig()


# --- nested tables: Mapping[str, <dataclass>] options (e.g. [probes.backups.sets.<name>]) -------


@dataclasses.dataclass(frozen=True)
class _Item:
    path: Path = option(Path("/x"), "A path.")
    count: int = option(1, "A count.", ge=0)
    tags: tuple[str, ...] = option((), "Tags.")
    note: str | None = option(None, "A note.")


@dataclasses.dataclass(frozen=True)
class _Holder:
    items: Mapping[str, _Item] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}), metadata={"doc": "Items by name."}
    )


def test_mapping_of_dataclasses_is_read_as_named_tables() -> None:
    data = tomllib.loads(
        """
        [holder.items.first]
        path = "/srv/a"
        count = 3
        [holder.items."second one"]
        tags = ["t"]
        """
    )
    holder = _build(_Holder, data["holder"], "holder")
    assert holder.items == {"first": _Item(Path("/srv/a"), 3), "second one": _Item(tags=("t",))}
    with pytest.raises(TypeError):
        holder.items["third"] = _Item()  # type: ignore[index]  # read-only, as the frozen holder
    assert _build(_Holder, {}, "holder") == _Holder()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"items": 3}, r"holder.items: expected a table"),
        ({"items": {"a": "x"}}, r"holder.items.a: expected a table"),
        (
            {"items": {"a": {"size": 1}}},
            r"holder.items.a: unknown key 'size' \(known: count, note, path, tags\)",
        ),
        ({"items": {"a": {"count": -1}}}, r"holder.items.a.count: must be >= 0"),
        ({"items": {"a": {"tags": [1]}}}, r"holder.items.a.tags\[0\]: expected a string"),
    ],
)
def test_mapping_of_dataclasses_errors_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _build(_Holder, table, "holder")


def test_mapping_renders_as_toml_that_reads_back() -> None:
    holder = _Holder(MappingProxyType({"a": _Item(Path("/srv/a"), 2, ("x", "y")), "b c": _Item()}))
    text = _render_table("holder", "Holder.", holder)
    assert "# items = { a = {" in text and '"b c" = {' in text
    assert "# Each [holder.items.<name>] table takes (default in parentheses):" in text
    assert "# - count (1): A count." in text and "# - note (none): A note." in text
    uncommented = "\n".join(line[2:] if line.startswith("# items = ") else line for line in text.splitlines())
    assert _build(_Holder, tomllib.loads(uncommented)["holder"], "holder") == holder
    assert "# items = {}" in _render_table("holder", "", _Holder())
