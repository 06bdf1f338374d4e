"""Pagers: awaited for one page, iterated for all, stopping right and refusing loops."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from aiotd._paging import cursor_pager, offset_pager
from aiotd.errors import DecodeError

ITEMS = list(range(250))


async def test_offset_pager_walks_inclusive_ranges() -> None:
    calls: list[tuple[int, int]] = []

    async def fetch(from_: int, to: int) -> Sequence[int]:
        calls.append((from_, to))
        return ITEMS[from_ : to + 1]

    pager = offset_pager(fetch, page_size=100)
    assert await pager == ITEMS[:100]
    assert [x async for x in pager] == ITEMS
    assert calls[1:] == [(0, 99), (100, 199), (200, 299)]


async def test_offset_pager_stops_on_an_exact_multiple_with_an_empty_page() -> None:
    async def fetch(from_: int, to: int) -> Sequence[int]:
        return ITEMS[:200][from_ : to + 1]

    assert len(await offset_pager(fetch, page_size=100).all()) == 200


async def test_limit_caps_items_and_requests() -> None:
    calls = 0

    async def fetch(from_: int, to: int) -> Sequence[int]:
        nonlocal calls
        calls += 1
        return ITEMS[from_ : to + 1]

    assert [x async for x in offset_pager(fetch, page_size=100, limit=150)] == ITEMS[:150]
    assert calls == 2


class Item:
    def __init__(self, id: int) -> None:
        self.id = str(id)


async def test_descending_cursor_pager() -> None:
    data = [Item(i) for i in range(30, 0, -1)]
    seen: list[int | None] = []

    async def fetch(last_id: int | None) -> Sequence[Item]:
        seen.append(last_id)
        rest = [x for x in data if last_id is None or int(x.id) < last_id]
        return rest[:10]

    got = [x.id async for x in cursor_pager(fetch, lambda x: x.id, order="desc", page_size=10)]
    assert got == [str(i) for i in range(30, 0, -1)]
    assert seen == [None, 21, 11, 1]


async def test_ascending_cursor_without_page_size_stops_on_empty_page() -> None:
    async def fetch(last_id: int | None) -> Sequence[Item]:
        start = 0 if last_id is None else last_id
        return [Item(i) for i in range(start + 1, min(start + 4, 10))]

    got = [x.id async for x in cursor_pager(fetch, lambda x: x.id, order="asc")]
    assert got == [str(i) for i in range(1, 10)]


async def test_a_cursor_that_does_not_move_is_refused() -> None:
    async def fetch(last_id: int | None) -> Sequence[Item]:
        return [Item(5), Item(7)]

    with pytest.raises(DecodeError, match="wrong way|repeated"):
        await cursor_pager(fetch, lambda x: x.id, order="asc").all()


async def test_an_offset_that_repeats_is_refused() -> None:
    from aiotd._paging import Pager

    async def fetch(cursor: int) -> Sequence[int]:
        return [1, 2]

    pager: Pager[int] = Pager(fetch, lambda cursor, page: 0, 0)
    with pytest.raises(DecodeError, match="repeated"):
        await pager.all()
