"""Shared setup of the td.workflow tests: an emulator with fast attempts and a client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiotd
from aiotd._polling import PollSettings
from aiotd.testing import Emulator

FAST_POLL = PollSettings(min_interval=0.05, max_interval=0.3, first_delay=0.01)
FAST_RETRY = aiotd.RetryPolicy(max_attempts=6, initial_delay=0.01, max_delay=0.05)
WORKFLOW_OPTIONS = {
    "task_duration": 0.05,
    "tick_interval": 0.05,
    "kill_delay": 0.05,
    "operator_durations": {"sh": 60.0},
}

SIMPLE_DIG = "+hello:\n  echo>: hello ${session_date}\n+world:\n  echo>: world\n"
FAILING_DIG = "+ok:\n  echo>: fine\n+boom:\n  fail>: it broke\n+after:\n  echo>: never\n"
SLOW_DIG = "+wait:\n  sh>: sleep 100\n"


@asynccontextmanager
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(workflow_options=WORKFLOW_OPTIONS) as emu:
        yield emu


@asynccontextmanager
async def client(emu: Emulator, **options: object) -> AsyncIterator[aiotd.Client]:
    settings: dict[str, object] = {"poll": FAST_POLL, "retry": FAST_RETRY}
    settings.update(options)
    async with aiotd.Client(
        emu.apikey, endpoint=emu.url, workflow_endpoint=emu.url, **settings
    ) as td:
        yield td


def write_project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
