"""pytest fixtures for testing code that talks to Treasure Data, against the local emulator.

Enable with ``pytest_plugins = ["aiotd.testing.pytest_plugin"]`` in a ``conftest.py``; needs
pytest-asyncio for the async fixture. Fixtures:

* ``td_emulator``: a started :class:`~aiotd.testing.Emulator` (async fixture, one per test);
  use ``td_emulator.url`` and ``td_emulator.apikey`` as the client's endpoint and key.
* ``td_emulator_thread``: the same, served from a background thread, for synchronous tests
  (e.g. td-client-python) that have no event loop.
* ``td_emulator_options``: override it to pass options (timings, apikey) to both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from aiotd.testing._emulator import Emulator

__all__ = ["td_emulator", "td_emulator_options", "td_emulator_thread"]


@pytest.fixture
def td_emulator_options() -> dict[str, Any]:
    """Keyword arguments for the emulator fixtures; override in a conftest to change them."""
    return {}


@pytest_asyncio.fixture
async def td_emulator(td_emulator_options: dict[str, Any]) -> AsyncIterator[Emulator]:
    """A started emulator on 127.0.0.1 (free port), closed after the test."""
    async with Emulator(**td_emulator_options) as emulator:
        yield emulator


@pytest.fixture
def td_emulator_thread(td_emulator_options: dict[str, Any]) -> Iterator[Emulator]:
    """A started emulator served from a background thread (for synchronous tests)."""
    with Emulator(**td_emulator_options) as emulator:
        yield emulator
