"""Fixtures of the fault tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest


@pytest.fixture
def cleanup() -> Iterator[contextlib.ExitStack]:
    """Register what a test started (`cleanup.callback(proc.stop)`); it is stopped, last first,
    however the test ends, so a failed assertion never leaves a collector or agent running."""
    with contextlib.ExitStack() as stack:
        yield stack
