"""The waiting front-ends on the poll engine: ``wait_all``, ``as_completed``, ``watch``.

Each registers one listener with the shared engine for the ids it waits on and turns what
the engine reports into a return value, an async iterator of final records, or of changes.
Ids are checked before any request; a deadline raises ``WaitTimeout`` with the last states.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from typing import Any

import anyio

from aiotd._polling import Change, Engine
from aiotd.errors import TDError, WaitTimeout

__all__ = ["CLEANUP_DEADLINE", "as_completed", "wait_all", "watch"]

logger = logging.getLogger("aiotd")


class _Waiter:
    """Listener resolving one future per item with the item's final record."""

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[Any]] = {}
        self.last: dict[str, Any] = {}

    def future(self, item_id: str) -> asyncio.Future[Any]:
        fut = self.futures.get(item_id)
        if fut is None:
            fut = self.futures[item_id] = asyncio.get_running_loop().create_future()
        return fut

    def changed(self, change: Change[Any]) -> None:
        if change.final:
            # the last state matters only for items still pending at a deadline
            self.last.pop(change.item_id, None)
            fut = self.futures.get(change.item_id)
            if fut is not None and not fut.done():
                fut.set_result(change.record)
        else:
            self.last[change.item_id] = change.record

    def failed(self, item_id: str, error: BaseException) -> None:
        fut = self.futures.get(item_id)
        if fut is not None and not fut.done():
            fut.set_exception(error)


class _Queue:
    """Listener feeding changes (or only finals) into one queue, in arrival order."""

    def __init__(self, finals_only: bool) -> None:
        self.finals_only = finals_only
        self.queue: asyncio.Queue[tuple[str, Change[Any] | BaseException]] = asyncio.Queue()
        self.last: dict[str, Any] = {}

    def changed(self, change: Change[Any]) -> None:
        if change.final:
            # the last state matters only for items still pending at a deadline; the final
            # record is the consumer's to keep or drop
            self.last.pop(change.item_id, None)
            self.queue.put_nowait((change.item_id, change))
        else:
            self.last[change.item_id] = change.record
            if not self.finals_only:
                self.queue.put_nowait((change.item_id, change))

    def failed(self, item_id: str, error: BaseException) -> None:
        self.queue.put_nowait((item_id, error))


def _ids(ids: Iterable[str | int]) -> list[str]:
    """The ids as strings, refused before any request when they cannot name an item."""
    if isinstance(ids, str | bytes):
        raise TypeError("give a list of ids, not one string")
    out = []
    for item_id in ids:
        if isinstance(item_id, bool) or not isinstance(item_id, str | int):
            raise TypeError(f"an id is a str or an int, not {type(item_id).__name__}")
        text = str(item_id).strip()
        if not text:
            raise ValueError("an id must not be empty")
        if text in (".", ".."):
            raise ValueError(f"{text!r} is not an id")
        out.append(text)
    return out


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:
        raise ValueError("timeout must be a number of seconds >= 0, or None")


async def wait_all(
    engine: Engine[Any],
    ids: Iterable[str | int],
    *,
    timeout: float | None,
    on_cancel: Callable[[str], Awaitable[object]] | None = None,
) -> list[Any]:
    """Final records of ``ids`` in the same order; WaitTimeout carries the last states.

    When the wait is cancelled, ``on_cancel(id)`` runs (shielded, best effort: TD errors are
    ignored) for each item not finished, e.g. to kill it.
    """
    _check_timeout(timeout)
    keys = _ids(ids)
    if not keys:
        return []
    unique = list(dict.fromkeys(keys))
    waiter = _Waiter()
    futures = [waiter.future(k) for k in unique]
    engine.add(unique, waiter)
    try:
        with anyio.fail_after(timeout):
            # asyncio.wait, unlike gather, leaves the futures alone when the deadline cancels
            await asyncio.wait(futures, return_when=asyncio.FIRST_EXCEPTION)
        for fut in futures:
            if fut.done() and fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]
    except TimeoutError:
        pending = [k for k, f in zip(unique, futures, strict=True) if not f.done()]
        last = {k: waiter.last.get(k) for k in pending}
        what = pending[0] if len(pending) == 1 else f"{len(pending)} of {len(unique)} items"
        raise WaitTimeout(
            f"{engine.kind.name} {what} not finished after {timeout}s",
            last=last[pending[0]] if len(unique) == 1 else last,
        ) from None
    except asyncio.CancelledError:
        if on_cancel is not None:
            pending = [k for k, f in zip(unique, futures, strict=True) if not f.done()]
            await _cleanup(on_cancel, pending)
        raise
    finally:
        engine.remove(unique, waiter)
        for fut in futures:
            if fut.done() and not fut.cancelled():
                fut.exception()  # mark retrieved
            else:
                fut.cancel()
    by_id = {k: f.result() for k, f in zip(unique, futures, strict=True)}
    return [by_id[k] for k in keys]


#: Seconds the kills of a cancelled ``kill_on_cancel`` wait may take, all of them together.
CLEANUP_DEADLINE = 5.0


async def _cleanup(action: Callable[[str], Awaitable[object]], ids: Sequence[str]) -> None:
    """Run ``action`` on every id at once, best effort, within ``CLEANUP_DEADLINE``.

    The HTTP layer's connection budget is what bounds the requests in flight. Called while a
    cancellation is on its way out: it runs in a task of its own, which neither anyio's
    cancel scopes (shielded) nor a repeated ``task.cancel()`` (absorbed here; the caller
    re-raises the first) cut short before the deadline does.
    """

    async def run_all() -> None:
        async def one(item_id: str) -> None:
            try:
                await action(item_id)
            except TDError as exc:
                logger.debug("cleanup of %s failed: %s", item_id, exc)

        with anyio.move_on_after(CLEANUP_DEADLINE):
            async with anyio.create_task_group() as tg:
                for item_id in ids:
                    tg.start_soon(one, item_id)

    if not ids:
        return
    task = asyncio.get_running_loop().create_task(run_all())
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                continue  # a second cancel while cleaning up: the first one is re-raised
    task.result()


async def as_completed(
    engine: Engine[Any], ids: Iterable[str | int], *, timeout: float | None
) -> AsyncGenerator[Any, None]:
    """Final records in the order the items finish."""
    async with aclosing(_changes(engine, ids, finals_only=True, timeout=timeout)) as finals:
        async for change in finals:
            yield change.record


def watch(engine: Engine[Any], ids: Iterable[str | int]) -> AsyncGenerator[Change[Any], None]:
    """Every status change of ``ids`` in order, until all are finished."""
    return _changes(engine, ids, finals_only=False, timeout=None)


async def _changes(
    engine: Engine[Any], ids: Iterable[str | int], *, finals_only: bool, timeout: float | None
) -> AsyncGenerator[Change[Any], None]:
    """The changes (or only the final ones) of ``ids`` as they come, until all are finished."""
    _check_timeout(timeout)
    unique = list(dict.fromkeys(_ids(ids)))
    if not unique:
        return
    listener = _Queue(finals_only=finals_only)
    engine.add(unique, listener)
    remaining = set(unique)
    deadline = None if timeout is None else anyio.current_time() + timeout
    try:
        while remaining:
            item_id, item = await _get(listener, deadline, engine, remaining)
            if isinstance(item, BaseException):
                raise item
            if item.final:
                remaining.discard(item_id)
            yield item
    finally:
        engine.remove(unique, listener)


async def _get(
    listener: _Queue, deadline: float | None, engine: Engine[Any], remaining: set[str]
) -> tuple[str, Change[Any] | BaseException]:
    if deadline is None:
        return await listener.queue.get()
    try:
        with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
            return await listener.queue.get()
    except TimeoutError:
        last = {k: listener.last.get(k) for k in remaining}
        raise WaitTimeout(
            f"{len(remaining)} {engine.kind.name}s not finished before the deadline", last=last
        ) from None
