"""Shared pieces of the reliability suite: an emulator, fast client settings, a fault mix."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import aiotd
from aiotd._polling import PollSettings
from aiotd.testing import Emulator
from aiotd.testing._faults import Fault
from tests.client.conftest import KEY, Scripted, reply, scripted

__all__ = [
    "FAST_POLL",
    "FAST_RETRY",
    "KEY",
    "READ_TIMEOUT",
    "Scripted",
    "add_fault_mix",
    "client_for",
    "client_tasks",
    "reply",
    "scripted",
    "settle_tasks",
]

FAST_POLL = PollSettings(min_interval=0.05, max_interval=0.4, first_delay=0.01)
FAST_RETRY = aiotd.RetryPolicy(
    max_attempts=10, initial_delay=0.01, max_delay=0.1, max_retry_after=5
)
#: Short enough that a ``delay`` fault of twice as long is a timeout, not a slow success.
READ_TIMEOUT = 0.5


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(queued_time=0.05, running_time=0.1) as emulator:
        yield emulator


def client_for(emu: Emulator, **options: object) -> aiotd.Client:
    """A client of ``emu`` with fast polls and retries (options override)."""
    settings: dict[str, object] = {
        "poll": FAST_POLL,
        "retry": FAST_RETRY,
        "timeout": aiotd.Timeouts(connect=2, read=READ_TIMEOUT, total=5),
    }
    settings.update(options)
    return aiotd.Client(emu.apikey, endpoint=emu.url, workflow_endpoint=emu.url, **settings)  # type: ignore[arg-type]


#: The kinds of the fault mix with their share of the faulted requests.
FAULT_MIX: tuple[tuple[str, dict[str, object]], ...] = (
    ("rate_limit", {"retry_after": 0.2}),
    ("error", {"status": 500, "html": True}),
    ("error", {"status": 502, "html": True}),
    ("error", {"status": 503, "html": True}),
    ("reset", {}),
    ("drop", {}),
    ("delay", {"delay": 2 * READ_TIMEOUT}),
    ("truncate", {}),
)


def add_fault_mix(emu: Emulator, match: str = "/v3/", total: float = 0.2) -> list[Fault]:
    """Fail ``total`` of the matching requests, spread evenly over ``FAULT_MIX``.

    Rules are tried in order and the first that fires wins, so each rule's rate is its share
    of the requests that the rules before it let through.
    """
    share = total / len(FAULT_MIX)
    rules = []
    taken = 0.0
    for kind, options in FAULT_MIX:
        rate = share / (1.0 - taken)
        rules.append(emu.faults.add(kind, match, rate=rate, **options))  # type: ignore[arg-type]
        taken += share
    return rules


_SERVER_TASKS = ("RequestHandler.", "BaseSelectorEventLoop._accept_connection")


def client_tasks() -> list[asyncio.Task[object]]:
    """The tasks of this loop, less the in-process server's accept and connection handlers."""
    return [
        task
        for task in asyncio.all_tasks()
        if not getattr(task.get_coro(), "__qualname__", "").startswith(_SERVER_TASKS)
    ]


async def settle_tasks(limit: int, *, seconds: float = 3.0) -> int:
    """The number of tasks once it has fallen to ``limit`` (or after ``seconds``).

    Server-side connection handlers end a moment after the client closes its connections.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    count = len(asyncio.all_tasks())
    while count > limit and loop.time() < deadline:
        await asyncio.sleep(0.05)
        count = len(asyncio.all_tasks())
    if count > limit:
        names = sorted(getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks())
        print("tasks left:", names)
    return count
