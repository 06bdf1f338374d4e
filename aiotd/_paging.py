"""Pagers: ``await pager`` gives the first page, ``async for item in pager`` gives every item.

Two cursor styles cover both APIs: v3 offsets (``from``/``to``, ``to`` inclusive in
``job/list``, v3-api.md §7.7) and Digdag's ``last_id`` (ascending ``>`` or descending ``<``,
workflow-api.md §2.9). A cursor that repeats or moves backwards is an error rather than an
endless loop: a PaginationError (a DecodeError, as the fault is in what the server sent).

v3 offset walks end only on an empty page: a server may cut a page shorter than ``to`` asks,
and the ``count`` TD sends beside a page has no settled meaning (td-client-python's
``job/list`` fixture says ``count: 11`` for 3 jobs asked as ``from 0 to 10``, td-client-go's
says ``count: 4`` for 4 jobs), so neither is read as "no more".
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Sequence
from typing import Any, Generic, Literal, TypeVar

from aiotd.errors import PaginationError

__all__ = ["Pager", "cursor_pager", "offset_pager", "one_page"]

T = TypeVar("T")

#: Pages in a row equal to a walk's first page that prove the server ignores the cursor.
_REPEATS = 3


class Pager(Generic[T]):
    """An awaitable, async-iterable walk over pages of ``T``.

    ``fetch(cursor)`` returns one page; ``advance(cursor, page)`` returns the next cursor or
    ``None`` when the walk is over. ``limit`` caps the number of items iterated. With
    ``key``, an item seen earlier in the same walk is skipped (offset pages shift when new
    items arrive at the top), and a page repeating the previous one item for item is an
    error: the server is ignoring the cursor.
    """

    def __init__(
        self,
        fetch: Callable[[Any], Awaitable[Sequence[T]]],
        advance: Callable[[Any, Sequence[T]], Any],
        start: Any,
        *,
        limit: int | None = None,
        key: Callable[[T], object] | None = None,
    ) -> None:
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        self._fetch = fetch
        self._advance = advance
        self._start = start
        self._limit = limit
        self._key = key

    def __await__(self) -> Generator[Any, None, list[T]]:
        return self.first_page().__await__()

    async def first_page(self) -> list[T]:
        """One request: the first page (cut to ``limit``)."""
        page = list(await self._fetch(self._start))
        return page if self._limit is None else page[: self._limit]

    async def pages(self) -> AsyncGenerator[list[T], None]:
        """Every page, one request each, until the API has no more.

        With ``key``, a page whose items were all seen earlier in the walk comes out empty
        (it still took a request).
        """
        cursor = self._start
        seen: set[Any] = {cursor}
        keys: set[object] = set()
        first: list[object] | None = None
        repeats = 0
        remaining = self._limit
        while remaining is None or remaining > 0:
            raw = await self._fetch(cursor)
            if not raw:
                return
            page = list(raw)
            if self._key is not None:
                order = [self._key(item) for item in raw]
                if first is None:
                    first = order
                else:
                    # a server ignoring the cursor sends its first page again and again;
                    # items shifted by new arrivals make a page repeat the first by chance
                    # once, hardly three times in a row
                    repeats = repeats + 1 if order == first else 0
                    if repeats >= _REPEATS:
                        raise PaginationError(
                            f"the page at cursor {cursor!r} repeats the first one: the server "
                            "ignores the cursor; stopping the walk",
                            cursor=cursor,
                        )
                page = [item for item, k in zip(raw, order, strict=True) if k not in keys]
                keys.update(order)
            if remaining is not None:
                page = page[:remaining]
                remaining -= len(page)
            if page or self._key is not None:
                yield page
            nxt = self._advance(cursor, raw)
            if nxt is None:
                return
            if nxt in seen:
                raise PaginationError(
                    f"the API repeated the page cursor {nxt!r}; stopping the walk", cursor=nxt
                )
            seen.add(nxt)
            cursor = nxt

    async def _items(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page:
                yield item

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def all(self) -> list[T]:
        """Every item in a list (use ``async for`` to keep memory flat)."""
        return [item async for item in self]


def offset_pager(
    fetch: Callable[[int, int], Awaitable[Sequence[T]]],
    *,
    page_size: int = 100,
    start: int = 0,
    limit: int | None = None,
    key: Callable[[T], object] | None = None,
    overlap: int = 0,
) -> Pager[T]:
    """v3 offset paging: ``fetch(from_, to)`` with ``to`` inclusive; an empty page ends it.

    The next offset is the current one plus the items the server sent, however many it
    sent, so a server that caps pages below ``page_size`` is still walked to the end. With
    ``key``, the last ``overlap`` items of each full page (at most a quarter of it) are
    asked again with the next one: items that leave the listing during the walk shift the
    rest up, and would otherwise slip between two pages unseen.
    """
    if page_size < 1:
        raise ValueError("page_size must be >= 1")
    if overlap and key is None:
        raise ValueError("overlap needs a key to drop the items seen twice")

    # the cursor is (offset, length of the page before): a page as long as asked, or as
    # long as the one before (the server's cap), is followed by more, so it overlaps
    async def one(cursor: tuple[int, int]) -> Sequence[T]:
        return await fetch(cursor[0], cursor[0] + page_size - 1)

    def advance(cursor: tuple[int, int], page: Sequence[T]) -> tuple[int, int]:
        offset, before = cursor
        full = len(page) == page_size or len(page) == before
        shift = min(overlap, len(page) // 4) if full else 0
        return offset + len(page) - shift, len(page)

    return Pager(one, advance, (start, 0), limit=limit, key=key)


def cursor_pager(
    fetch: Callable[[int | None], Awaitable[Sequence[T]]],
    id_of: Callable[[T], str | int],
    *,
    order: Literal["asc", "desc"],
    page_size: int | None = None,
    limit: int | None = None,
) -> Pager[T]:
    """Digdag ``last_id`` paging: the next cursor is the last item's id.

    With ``page_size`` known, a short page ends the walk; otherwise (pages the server cuts
    after filtering, such as schedules) only an empty page does. Ids must move in ``order``.
    """

    def advance(cursor: int | None, page: Sequence[T]) -> int | None:
        if page_size is not None and len(page) < page_size:
            return None
        last = int(id_of(page[-1]))
        if cursor is not None and (last <= cursor if order == "asc" else last >= cursor):
            raise PaginationError(
                f"page cursor moved the wrong way ({cursor} -> {last}, order {order})",
                cursor=last,
            )
        return last

    return Pager(fetch, advance, None, limit=limit)


def one_page(fetch: Callable[[], Awaitable[Sequence[T]]]) -> Pager[T]:
    """A Pager over a listing TD answers whole, in one response: ``await`` and ``async for``
    both take that one request, so every ``list()`` reads the same way."""

    async def page(_cursor: None) -> Sequence[T]:
        return await fetch()

    return Pager(page, lambda _cursor, _page: None, None)
