"""Collector configuration: documented defaults, clear errors naming the option."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from warden.collector.config import ConfigError, load_config, render_example

ROOT = Path(__file__).resolve().parents[1]


def test_example_file_is_rendered_from_the_defaults() -> None:
    committed = (ROOT / "collector" / "collector.example.toml").read_text()
    assert committed == render_example(), "regenerate: warden-collector config example"
    # ...and it loads to exactly the defaults.
    assert tomllib.loads(committed) is not None


def test_example_loads_to_defaults(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(render_example())
    assert load_config(p) == load_config(None)


@pytest.mark.parametrize("text, match", [
    ("[collector]\nnope = 1\n", "unknown option 'collector.nope'"),
    ("[nosuch]\n", "unknown option 'nosuch'"),
    ("[limits]\nmax_labels = 'many'\n", "limits.max_labels must be of type int"),
    ("[influx]\nenabled = 1\n", "influx.enabled must be of type bool"),
    ("[retention]\nmetrics = '14 days'\n", "retention.metrics"),
    ("[collector\n", "c.toml"),
])
def test_bad_config_is_refused_with_the_option_named(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
