"""The poll engine: one per kind (jobs, attempts) per Client, shared by every waiter.

Each watched item has its own due time: first polled soon after it is added, then at
intervals that grow from ``min_interval`` to ``max_interval`` and reset when its state
changes. The engine learns states the cheaper of two ways:

* per item (``job/status``, ``GET /api/attempts/{id}``), with bounded concurrency, for the
  items that are due;
* by listing the unfinished work (``job/list?status=queued|running``, ``GET /api/attempts``
  newest first), which refreshes every watched item at once; a watched item missing from
  the listing has probably finished and is confirmed with one request.

It lists when the last listing took fewer pages than there are watched items, no more
often than per-item polling of those items would send requests, and no more often than
``listing_budget`` requests per item finished: so listings never cost more than the
polls they replace, nor much more than the work they report. A finished item costs one more
request, its full record, fanned out to every waiter.
Poll failures never end a wait: the HTTP layer retries, then the engine backs off and tries
again. Only a caller's deadline ends a wait; an item that does not exist fails its own
waiters with ``NotFound``. There is no task per watched item: one runner task per engine.
The runner is supervised: an unexpected error about one item fails that item's waiters
with a typed error and the engine goes on; if the runner itself fails, every waiter gets a
``TDError`` and the next ``add()`` starts a fresh runner. The waiting front-ends on it
(``wait_all``, ``as_completed``, ``watch``) are in ``aiotd._waiting``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import anyio

from aiotd.errors import ClientClosed, DecodeError, NotFound, TDError

__all__ = ["Change", "Clock", "Engine", "Kind", "Listing", "PollSettings", "Sleep"]

logger = logging.getLogger("aiotd")

R = TypeVar("R")

#: Seconds over which the finish rate of a burst is remembered (it decays exponentially).
_RATE_HORIZON = 120.0
#: The engine's clock (seconds, monotonic): the running loop's ``time()`` by default.
Clock = Callable[[], float]
#: ``sleep(delay, wake)``: return after ``delay`` seconds, or sooner once ``wake`` is set.
Sleep = Callable[[float, asyncio.Event], Awaitable[None]]


async def _sleep(delay: float, wake: asyncio.Event) -> None:
    with anyio.move_on_after(delay):
        await wake.wait()


@dataclass(frozen=True)
class Listing(Generic[R]):
    """What one listing saw: records by id, the pages it took, and which ids it covers.

    An id that ``covers`` but that is absent from ``records`` is presumed finished.
    """

    records: dict[str, R]
    pages: int
    covers: Callable[[str], bool]


class Kind(Protocol[R]):
    """How the engine talks about one kind of item (jobs, attempts)."""

    name: str

    async def fetch(self, item_id: str) -> R:
        """The item's light state (one request); raises NotFound."""

    async def fetch_final(self, item_id: str) -> R:
        """The item's full record (one request); may still be unfinished."""

    def status(self, record: R) -> str:
        """The record's status string."""

    def finished(self, record: R) -> bool:
        """Whether the record is in a final state."""

    def needs_final(self, record: R) -> bool:
        """Whether a finished light record needs ``fetch_final`` for the full record."""

    async def listing(self, watched: Sequence[str], page_budget: int) -> Listing[R] | None:
        """Learn the unfinished items in bulk, or None if listing is not possible."""

    def may_hide(self, status: str | None) -> bool:
        """Whether an item last seen in ``status`` (None: never seen) may be absent from a
        listing for a while without having finished."""


@dataclass(frozen=True, kw_only=True)
class PollSettings:
    """Poll timing: per-item intervals grow from ``min_interval`` to ``max_interval``.

    ``first_delay`` batches items added together into one first poll; ``concurrency``
    bounds per-item requests in flight per engine; ``list_page_size`` is the page size of
    listings (Digdag caps attempts pages at 100 whatever is asked); ``listing_budget`` is
    how many listing requests the engine may spend, on average, per item that finishes
    (listings are spaced out while little finishes).
    """

    min_interval: float = 1.0
    max_interval: float = 30.0
    growth: float = 1.5
    first_delay: float = 0.05
    concurrency: int = 16
    error_backoff: float = 1.0
    list_page_size: int = 1000
    listing_budget: float = 0.5

    def __post_init__(self) -> None:
        for name in ("min_interval", "max_interval", "growth", "first_delay", "error_backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if not 0 < self.min_interval <= self.max_interval:
            raise ValueError("need 0 < min_interval <= max_interval")
        if self.growth < 1:
            raise ValueError("growth must be >= 1")
        if not 0 < self.listing_budget < math.inf:
            raise ValueError("listing_budget must be a finite number > 0")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.list_page_size < 1:
            raise ValueError("list_page_size must be >= 1")


@dataclass(frozen=True)
class Change(Generic[R]):
    """A status change of one item, as the engine observed it."""

    item_id: str
    old_status: str | None
    new_status: str
    record: R
    final: bool


class _Listener(Protocol):
    def changed(self, change: Change[Any]) -> None: ...

    def failed(self, item_id: str, error: BaseException) -> None: ...


class _Entry:
    """One watched item. Kept small: there can be tens of thousands."""

    __slots__ = (
        "absences",
        "due",
        "finishing",
        "id",
        "interval",
        "listeners",
        "missing_checked",
        "since",
        "status",
    )

    def __init__(self, item_id: str, due: float, interval: float, since: float) -> None:
        self.id = item_id
        self.status: str | None = None
        self.due = due
        self.interval = interval
        self.since = since
        self.listeners: list[_Listener] = []
        self.finishing = False
        self.missing_checked = False
        self.absences = 0  # listings in a row this item was absent from


class Engine(Generic[R]):
    """Watches items of one kind for every waiter of a Client."""

    def __init__(
        self,
        kind: Kind[R],
        settings: PollSettings | None = None,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.kind = kind
        self.settings = settings or PollSettings()
        self._clock = clock
        self._sleep = sleep or _sleep
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._runner: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False
        self._rate = 0.0  # sum of 1/interval over watched items: the per-item request rate
        self._listing_pages = 2.0  # cost estimate until a listing has been seen
        self._listing_ok = True
        self._next_listing = 0.0
        self._listing_errors = 0
        self._period = self.settings.min_interval  # most seconds to the next listing
        self._last_listing: float | None = None  # when the last listing ended
        self._events = 0  # items finished since the last listing
        self._event_rate: float | None = None  # events per second, smoothed
        self._long_rate = 0.0  # finishes per second over the last minutes (decaying)
        self._long_rate_time: float | None = None
        self._applied_cap = math.inf  # the per-item interval cap the schedule last obeyed
        # while listings refresh every item the heap rests: due times live on the entries
        # alone, and the heap is rebuilt from them when per-item polling resumes
        self._listing_mode = False
        self.polls = 0
        self.listings = 0

    # -- bookkeeping

    def __len__(self) -> int:
        return len(self._entries)

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return asyncio.get_running_loop().time()

    def _schedule(self, entry: _Entry, due: float) -> None:
        entry.due = due
        if not self._listing_mode:
            heapq.heappush(self._heap, (due, next(self._seq), entry))

    def _set_interval(self, entry: _Entry, interval: float) -> None:
        self._rate += 1.0 / interval - 1.0 / entry.interval
        entry.interval = interval

    def add(self, ids: Iterable[str], listener: _Listener) -> None:
        """Watch ``ids`` for ``listener``; the first poll (or listing) comes soon."""
        if self._closed:
            raise RuntimeError("the client is closed")
        now = self._now()
        first = now + self.settings.first_delay
        new = 0
        for item_id in ids:
            entry = self._entries.get(item_id)
            if entry is None:
                entry = _Entry(item_id, first, self.settings.min_interval, now)
                self._entries[item_id] = entry
                self._rate += 1.0 / entry.interval
                self._schedule(entry, first)
                new += 1
            entry.listeners.append(listener)
        if not new:
            return
        if self._last_listing is None or new >= self._listing_pages:
            # more new items than a listing has pages: a listing soon is their cheapest poll;
            # fewer wait for the next listing, as spaced by what finishes
            self._next_listing = min(self._next_listing, first)
        self._kick()

    def remove(self, ids: Iterable[str], listener: _Listener) -> None:
        """Stop watching ``ids`` for ``listener``; an item nobody watches is dropped."""
        for item_id in ids:
            entry = self._entries.get(item_id)
            if entry is None:
                continue
            try:
                entry.listeners.remove(listener)
            except ValueError:
                continue
            if not entry.listeners:
                self._drop(entry)

    def _drop(self, entry: _Entry) -> None:
        if self._entries.pop(entry.id, None) is not None:
            self._rate -= 1.0 / entry.interval
            entry.due = math.inf

    def _kick(self) -> None:
        if self._runner is None or self._runner.done():
            self._wake = asyncio.Event()
            self._runner = asyncio.get_running_loop().create_task(self._run())
        elif self._wake is not None:
            self._wake.set()

    async def close(self) -> None:
        """Stop the runner; pending waiters get an error."""
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([runner])
        self._fail_all(ClientClosed("the client was closed while waiting"))

    def _fail_all(self, error: BaseException) -> None:
        for entry in list(self._entries.values()):
            for listener in list(entry.listeners):
                listener.failed(entry.id, error)
        self._entries.clear()
        self._heap.clear()
        self._rate = 0.0

    # -- applying what was learned

    def _observe(
        self, entry: _Entry, record: Any, *, final: bool, now: float, cap: float | None = None
    ) -> None:
        """Record a state; tell listeners about a change; reschedule or finish.

        ``cap`` is ``_capped(now)`` when the caller has it (a listing applies thousands).
        """
        if entry.id not in self._entries:
            return
        status = self.kind.status(record)
        old = entry.status
        entry.missing_checked = False
        entry.absences = 0
        if status != old:
            entry.status = status
            change = Change(entry.id, old, status, record, final)
            for listener in list(entry.listeners):
                listener.changed(change)
            if final:
                self._finished(now)
                self._drop(entry)
                return
            self._set_interval(entry, self.settings.min_interval)
        else:
            if final:  # a final record with an unchanged status still ends the watch
                change = Change(entry.id, old, status, record, True)
                for listener in list(entry.listeners):
                    listener.changed(change)
                self._finished(now)
                self._drop(entry)
                return
            if now < entry.due:
                return  # seen by a listing before its own poll was due: keep its pace
            grown = min(
                entry.interval * self.settings.growth,
                self.settings.max_interval,
                self._capped(now) if cap is None else cap,
            )
            self._set_interval(entry, grown)
        self._schedule(entry, now + entry.interval)

    # -- what the request budget allows

    def _finished(self, now: float) -> None:
        self._events += 1
        self._long_rate = self._long_rate_at(now) + 1.0 / _RATE_HORIZON
        self._long_rate_time = now

    def _long_rate_at(self, now: float) -> float:
        if self._long_rate_time is None:
            return 0.0
        return self._long_rate * math.exp(-(now - self._long_rate_time) / _RATE_HORIZON)

    def _finish_rate(self, now: float) -> float:
        """Finishes per second: the rate since the last listings, or that of the last minutes
        when it was higher (the last items of a big watch finish slowly, yet are few)."""
        return max(self._event_rate or 0.0, self._long_rate_at(now))

    def _interval_cap(self, now: float) -> float:
        """The longest per-item interval worth keeping: polling the items left once per
        interval costs ``listing_budget`` requests per finish at the current finish rate.

        A few items left of a big watch are polled every second or two, for the cost of a
        handful of finishes; one item watched alone keeps growing to ``max_interval``.
        """
        rate = self._finish_rate(now)
        if rate <= 0:
            return math.inf
        return len(self._entries) / (self.settings.listing_budget * rate)

    def _capped(self, now: float) -> float:
        """The interval cap, never below ``min_interval``."""
        return max(self.settings.min_interval, self._interval_cap(now))

    def _tighten(self, now: float) -> None:
        """Pull in items polled at intervals longer than the cap, once it has shrunk."""
        cap = self._capped(now)
        if cap * 1.25 >= self._applied_cap:  # not shrunk enough to be worth a scan
            self._applied_cap = max(self._applied_cap, cap)
            return
        self._applied_cap = cap
        for entry in self._entries.values():
            if entry.interval > cap and not entry.finishing:
                last = entry.due - entry.interval
                self._set_interval(entry, cap)
                self._schedule(entry, max(now, last + cap))

    def _fail(self, entry: _Entry, error: BaseException) -> None:
        for listener in list(entry.listeners):
            listener.failed(entry.id, error)
        self._drop(entry)

    def _backoff(self, entry: _Entry, error: BaseException) -> None:
        logger.debug("poll of %s %s failed, retrying later: %s", self.kind.name, entry.id, error)
        delay = min(max(self.settings.error_backoff, entry.interval), self.settings.max_interval)
        self._schedule(entry, self._now() + delay)

    async def _learn(self, entry: _Entry, *, final: bool) -> None:
        """One request about one item: its light state, or its full record."""
        if entry.id not in self._entries:
            return
        self.polls += 1
        entry.finishing = True  # in flight: not due again until this answer is applied
        try:
            if final:
                record = await self.kind.fetch_final(entry.id)
            else:
                record = await self.kind.fetch(entry.id)
        except NotFound as exc:
            self._fail(entry, exc)
            return
        except TDError as exc:
            self._backoff(entry, exc)
            return
        except Exception as exc:  # a bug or a body nobody foresaw: this item only
            self._fail(entry, self._unexpected(f"{self.kind.name} {entry.id}", exc))
            return
        finally:
            entry.finishing = False
        try:
            done = self.kind.finished(record)
            if done and not final and self.kind.needs_final(record):
                await self._learn(entry, final=True)
                return
            self._observe(entry, record, final=done, now=self._now())
        except Exception as exc:
            self._fail(entry, self._unexpected(f"{self.kind.name} {entry.id}", exc))

    def _unexpected(self, what: str, exc: Exception) -> TDError:
        """Log an error the engine has no rule for, once, and type it for the waiters."""
        logger.error("poll engine: unexpected error about %s", what, exc_info=exc)
        error = DecodeError(f"{what}: could not use the answer ({type(exc).__name__}: {exc})")
        error.__cause__ = exc
        return error

    # -- the runner

    def _listing_pays(self) -> bool:
        """List when a listing takes fewer pages than there are watched items.

        Listings are spaced so that they send no more requests than per-item polling would
        (``_listing_period``); one listing then refreshes every item, where each item's own
        poll would come only after its own, growing interval. So at equal cost a listing
        notices sooner whenever it takes fewer pages than there are items.
        """
        if not self._listing_ok or not self._entries:
            return False
        return self._listing_pages < len(self._entries)

    def _spacing(self) -> float:
        """Seconds from the last listing to the next.

        Never less than ``min_interval``, nor than what per-item polls of the watched items
        would cost in requests. Beyond that, a listing of P pages waits until the items
        finished since the last one pay for it at ``listing_budget`` requests each, as
        predicted from the rate seen so far; while that rate is low the spacing grows by
        ``growth`` per listing, up to ``max_interval``.
        """
        s = self.settings
        pages = self._listing_pages
        spacing = max(s.min_interval, pages / max(self._rate, 1e-9))
        if self._event_rate is not None:
            owed = pages / s.listing_budget - self._events
            if owed > 0:
                spacing = max(spacing, owed / max(self._finish_rate(self._now()), 1e-9))
        return max(s.min_interval, min(spacing, self._period, s.max_interval))

    def _after_listing(self, now: float) -> None:
        """Update the event rate from what happened since the last listing; plan the next."""
        if self._last_listing is not None:
            rate = self._events / max(now - self._last_listing, 1e-3)
            previous = self._event_rate
            self._event_rate = rate if previous is None else (previous + rate) / 2
        self._events = 0
        self._last_listing = now
        spacing = self._spacing()  # at most ``growth`` times the one before
        self._period = spacing * self.settings.growth
        self._next_listing = now + spacing

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception as exc:
            # the runner itself failed: nobody may wait forever on it
            logger.error("poll engine for %ss failed", self.kind.name, exc_info=exc)
            error = TDError(f"the {self.kind.name} poll engine failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._fail_all(error)
        finally:
            self._runner = None

    async def _loop(self) -> None:
        while self._entries:
            now = self._now()
            if self._listing_pays():
                # A listing refreshes every watched item: the per-item schedule rests.
                self._listing_mode = True
                if now >= self._next_listing:
                    await self._list_once()
                    continue
                wake_at = self._next_listing
            else:
                self._leave_listing_mode()
                self._tighten(now)
                due = self._due(now)
                if due:
                    await self._poll_many(due)
                    continue
                wake_at = self._heap[0][0] if self._heap else now + 1.0
            await self._sleep_until(wake_at)

    def _leave_listing_mode(self) -> None:
        """Per-item polls resume: one heap slot per entry at its due time."""
        if self._listing_mode:
            self._listing_mode = False
            self._heap = [(e.due, next(self._seq), e) for e in self._entries.values()]
            heapq.heapify(self._heap)

    def _due(self, now: float) -> list[_Entry]:
        """Pop every entry due by ``now`` (stale heap slots are skipped)."""
        due: list[_Entry] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, entry = heapq.heappop(heap)
            if entry.due == when and entry.id in self._entries and not entry.finishing:
                due.append(entry)
        return due

    async def _sleep_until(self, when: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        await self._sleep(max(0.0, when - self._now()), self._wake)

    async def _poll_many(self, entries: list[_Entry]) -> None:
        await self._each(entries, final=False)

    async def _each(self, entries: list[_Entry], *, final: bool) -> None:
        """One request per entry, ``concurrency`` at a time: a few workers, not a task each."""
        pending = iter(entries)

        async def worker() -> None:
            for entry in pending:
                await self._learn(entry, final=final)
                if final and entry.id in self._entries:
                    entry.missing_checked = True

        async with anyio.create_task_group() as tg:
            for _ in range(min(self.settings.concurrency, len(entries))):
                tg.start_soon(worker)

    async def _list_once(self) -> None:
        started = self._now()
        watched = list(self._entries)
        self.listings += 1
        try:
            # never more pages than polling each watched item once would cost
            listing = await self.kind.listing(watched, len(watched))
        except TDError as exc:
            self._listing_errors += 1
            delay = min(
                self.settings.error_backoff * 2**self._listing_errors, self.settings.max_interval
            )
            logger.debug("listing %ss failed, retrying in %.1fs: %s", self.kind.name, delay, exc)
            self._next_listing = self._now() + delay
            # items whose own poll is due are not left waiting on a failing listing
            self._leave_listing_mode()
            due = self._due(self._now())
            if due:
                await self._poll_many(due)
            return
        except Exception as exc:
            # a listing nobody foresaw: per-item polls carry every item from here on
            self._unexpected(f"listing {self.kind.name}s", exc)
            self._listing_ok = False
            return
        self._listing_errors = 0
        if listing is None:
            self._listing_ok = False
            return
        self._listing_pages = max(1.0, float(listing.pages))
        confirm: list[_Entry] = []
        poll: list[_Entry] = []
        now = self._now()
        cap = self._capped(now)
        entries, records, status_of = self._entries, listing.records, self.kind.status
        for item_id in watched:
            entry = entries.get(item_id)
            if entry is None or entry.finishing:
                continue
            record = records.get(item_id)
            if record is not None:
                if status_of(record) == entry.status and now < entry.due:
                    # the common case, kept cheap: unchanged (so still unfinished, as
                    # entry.status is never a final one) and not yet due to grow its interval
                    entry.missing_checked = False
                    entry.absences = 0
                elif self.kind.finished(record):
                    if self.kind.needs_final(record):
                        confirm.append(entry)
                    else:
                        self._observe(entry, record, final=True, now=now)
                else:
                    self._observe(entry, record, final=False, now=now, cap=cap)
            elif not listing.covers(item_id):
                # outside what the walk covered: absence says nothing, its own poll does
                if entry.due <= now:
                    poll.append(entry)
            elif entry.since < started and (not entry.missing_checked or entry.due <= now):
                entry.absences += 1
                if entry.absences == 1 and self.kind.may_hide(entry.status):
                    continue  # maybe in a state no listing shows: the next listing tells
                # absent from the unfinished set: probably finished (or booting); one
                # request confirms it, and it is the final record the waiters need anyway
                entry.missing_checked = True
                confirm.append(entry)
        if confirm:
            await self._each(confirm, final=True)
        if poll:
            await self._each(poll, final=False)
        self._after_listing(self._now())
