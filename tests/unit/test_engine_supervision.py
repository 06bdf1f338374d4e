"""The poll engine on a virtual clock: supervision, empty waits, settings, failing listings.

The items' states come from a scripted ``Kind`` (the engine's one input); time is the
engine's injected clock, advanced by its injected sleep, so nothing here sleeps for real.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from aiotd._polling import Engine, Listing, PollSettings
from aiotd._waiting import as_completed, wait_all, watch
from aiotd.errors import ClientClosed, DecodeError, ServerError, TDError

SETTINGS = PollSettings(min_interval=1.0, max_interval=30.0, growth=1.5, first_delay=0.05)


class VirtualTime:
    """A clock that only moves when the engine sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.fail_next_sleep: BaseException | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float, wake: asyncio.Event) -> None:
        if self.fail_next_sleep is not None:
            error, self.fail_next_sleep = self.fail_next_sleep, None
            raise error
        self.slept.append(delay)
        await asyncio.sleep(0)  # let waiters run; a kick may already have set wake
        if not wake.is_set():
            self.now += delay


@dataclass(frozen=True)
class Rec:
    id: str
    status: str


@dataclass
class ScriptedKind:
    """Each item runs for ``polls`` light polls, then is ``success``; ``bad`` items raise."""

    name: str = "item"
    polls: dict[str, int] = field(default_factory=dict)
    bad: dict[str, BaseException] = field(default_factory=dict)
    listing_error: BaseException | None = None
    asked: list[tuple[str, float]] = field(default_factory=list)
    time: VirtualTime | None = None

    async def fetch(self, item_id: str) -> Rec:
        self.asked.append((item_id, self.time.now if self.time else 0.0))
        if item_id in self.bad:
            raise self.bad[item_id]
        left = self.polls.get(item_id, 0)
        self.polls[item_id] = left - 1
        return Rec(item_id, "running" if left > 0 else "success")

    async def fetch_final(self, item_id: str) -> Rec:
        return await self.fetch(item_id)

    def status(self, record: Rec) -> str:
        return record.status

    def finished(self, record: Rec) -> bool:
        return record.status == "success"

    def needs_final(self, record: Rec) -> bool:
        return False

    async def listing(self, watched: Sequence[str], page_budget: int) -> Listing[Rec] | None:
        if self.listing_error is not None:
            raise self.listing_error
        return None  # this kind cannot list: the engine polls per item


def engine_for(
    kind: ScriptedKind, settings: PollSettings = SETTINGS
) -> tuple[Engine[Rec], VirtualTime]:
    vt = VirtualTime()
    kind.time = vt
    return Engine(kind, settings, clock=vt.clock, sleep=vt.sleep), vt


async def test_intervals_grow_on_the_injected_clock() -> None:
    kind = ScriptedKind(polls={"a": 6})
    engine, _ = engine_for(kind)
    (rec,) = await asyncio.wait_for(wait_all(engine, ["a"], timeout=None), 5)
    assert rec.status == "success"
    times = [t for _, t in kind.asked]
    gaps = [round(b - a, 4) for a, b in itertools.pairwise(times)]
    # first poll after first_delay, then 1 s (reset by the first status), then x1.5 each
    assert times[0] == pytest.approx(0.05)
    assert gaps == [1.0, 1.5, 2.25, 3.375, 5.0625, 7.5938]


async def test_an_unexpected_error_fails_only_its_item(caplog: pytest.LogCaptureFixture) -> None:
    kind = ScriptedKind(polls={"good": 3}, bad={"bad": ValueError("invalid literal for int()")})
    engine, _ = engine_for(kind)
    with caplog.at_level(logging.ERROR, logger="aiotd"):
        good = asyncio.ensure_future(wait_all(engine, ["good"], timeout=None))
        with pytest.raises(DecodeError, match="item bad: could not use the answer .*ValueError"):
            await asyncio.wait_for(wait_all(engine, ["bad"], timeout=None), 5)
        (rec,) = await asyncio.wait_for(good, 5)
    assert rec.status == "success"
    # logged once, with the traceback, for the one item
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert len([i for i, _ in kind.asked if i == "bad"]) == 1  # not retried


async def test_a_failed_runner_fails_every_waiter_and_the_next_add_starts_afresh() -> None:
    kind = ScriptedKind(polls={"a": 50, "b": 50})
    engine, vt = engine_for(kind)
    vt.fail_next_sleep = RuntimeError("the runner broke")
    with pytest.raises(TDError, match="poll engine failed: RuntimeError: the runner broke"):
        await asyncio.wait_for(wait_all(engine, ["a", "b"], timeout=None), 5)
    assert engine._runner is None
    kind.polls = {"c": 1}
    (rec,) = await asyncio.wait_for(wait_all(engine, ["c"], timeout=None), 5)
    assert rec.status == "success"


async def test_a_failing_listing_does_not_starve_per_item_polls() -> None:
    kind = ScriptedKind(
        polls={str(i): 3 for i in range(20)}, listing_error=ServerError(500, "listing down")
    )
    engine, _ = engine_for(kind)
    recs = await asyncio.wait_for(wait_all(engine, [str(i) for i in range(20)], timeout=None), 5)
    assert all(r.status == "success" for r in recs)
    assert engine.listings >= 1


async def test_an_unexpected_listing_error_falls_back_to_per_item_polls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kind = ScriptedKind(polls={str(i): 2 for i in range(10)})

    async def listing(watched: Sequence[str], page_budget: int) -> Listing[Rec]:
        raise ValueError("invalid literal for int() with base 10: 'abc'")

    kind.listing = listing  # type: ignore[method-assign]
    engine, _ = engine_for(kind)
    with caplog.at_level(logging.ERROR, logger="aiotd"):
        recs = await asyncio.wait_for(
            wait_all(engine, [str(i) for i in range(10)], timeout=None), 5
        )
    assert all(r.status == "success" for r in recs)
    assert engine.listings == 1  # listed once, then polled per item
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


async def test_close_gives_pending_waiters_client_closed() -> None:
    kind = ScriptedKind(polls={"a": 10_000})
    engine, _ = engine_for(kind)
    waiter = asyncio.ensure_future(wait_all(engine, ["a"], timeout=None))
    for _ in range(5):
        await asyncio.sleep(0)
    await engine.close()
    with pytest.raises(ClientClosed):
        await waiter


async def test_waiting_for_nothing_returns_at_once() -> None:
    engine, _ = engine_for(ScriptedKind())
    assert await wait_all(engine, [], timeout=None) == []
    assert [r async for r in as_completed(engine, [], timeout=None)] == []
    assert [c async for c in watch(engine, [])] == []
    assert engine._runner is None  # nothing was started for nothing


@pytest.mark.parametrize(
    "options",
    [
        {"max_interval": math.inf},
        {"min_interval": math.nan},
        {"growth": math.nan},
        {"first_delay": -1.0},
        {"error_backoff": math.inf},
        {"listing_budget": 0.0},
        {"listing_budget": math.nan},
    ],
)
def test_poll_settings_refuse_values_that_are_not_finite(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be|need"):
        PollSettings(**options)  # type: ignore[arg-type]


@dataclass
class TimedKind(ScriptedKind):
    """Each item finishes at its own virtual time."""

    ends: dict[str, float] = field(default_factory=dict)
    seen_final: dict[str, float] = field(default_factory=dict)

    async def fetch(self, item_id: str) -> Rec:
        assert self.time is not None
        self.asked.append((item_id, self.time.now))
        done = self.time.now >= self.ends[item_id]
        if done:
            self.seen_final.setdefault(item_id, self.time.now)
        return Rec(item_id, "success" if done else "running")


async def test_the_last_items_of_a_big_watch_are_not_left_at_long_intervals() -> None:
    # 990 items end within 20 s, 10 at 80 s: once the burst is over, the few left are
    # polled often enough to be noticed soon, for the cost of a few finishes
    ends = {str(i): 1.0 + (i % 99) * 0.2 for i in range(990)}
    ends |= {str(i): 80.0 for i in range(990, 1000)}
    kind = TimedKind(ends=ends)
    engine, _ = engine_for(kind)
    recs = await asyncio.wait_for(wait_all(engine, list(ends), timeout=None), 30)
    assert all(r.status == "success" for r in recs)
    lags = [kind.seen_final[i] - ends[i] for i in map(str, range(990, 1000))]
    assert max(lags) <= 5.0, lags  # at 30 s intervals (max_interval) it is up to 30 s
    late_polls = [i for i, t in kind.asked if t > 25.0]
    # ten items for 55 s cost at most listing_budget requests per finish of the burst
    assert len(late_polls) <= 0.5 * 990, len(late_polls)


async def test_one_item_alone_still_grows_to_max_interval() -> None:
    kind = TimedKind(ends={"a": 500.0})
    engine, _ = engine_for(kind)
    await asyncio.wait_for(wait_all(engine, ["a"], timeout=None), 30)
    times = [t for _, t in kind.asked]
    assert max(b - a for a, b in itertools.pairwise(times)) == pytest.approx(30.0)
