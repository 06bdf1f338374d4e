"""Pagers: awaited for one page, iterated for all, stopping right and refusing loops."""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import pytest

from aiotd._paging import cursor_pager, offset_pager
from aiotd.errors import DecodeError, PaginationError

ITEMS = list(range(250))


async def test_offset_pager_walks_inclusive_ranges() -> None:
    calls: list[tuple[int, int]] = []

    async def fetch(from_: int, to: int) -> Sequence[int]:
        calls.append((from_, to))
        return ITEMS[from_ : to + 1]

    pager = offset_pager(fetch, page_size=100)
    assert await pager == ITEMS[:100]
    assert [x async for x in pager] == ITEMS
    # the short last page does not end the walk (a server may cap pages): the empty one does
    assert calls[1:] == [(0, 99), (100, 199), (200, 299), (250, 349)]


async def test_offset_pager_walks_a_server_that_caps_pages_below_the_size_asked() -> None:
    calls: list[tuple[int, int]] = []

    async def fetch(from_: int, to: int) -> Sequence[int]:
        calls.append((from_, to))
        return ITEMS[from_ : min(to + 1, from_ + 30)]  # never more than 30 per page

    assert [x async for x in offset_pager(fetch, page_size=100)] == ITEMS
    assert calls[:3] == [(0, 99), (30, 129), (60, 159)]


async def test_offset_pager_reads_a_range_the_server_treats_as_inclusive_or_exclusive() -> None:
    # schedule/history's `to` is exclusive per td-client-ruby's comment, job/list's inclusive:
    # the walk advances by what arrived, so both readings give every item exactly once
    for extra in (0, 1):

        async def fetch(from_: int, to: int, extra: int = extra) -> Sequence[int]:
            return ITEMS[from_ : to + extra]

        assert [x async for x in offset_pager(fetch, page_size=20)] == ITEMS


async def test_keyed_offset_pager_skips_items_shifted_down_by_new_arrivals() -> None:
    data = list(range(100, 0, -1))  # newest first
    calls = 0

    async def fetch(from_: int, to: int) -> Sequence[int]:
        nonlocal calls
        calls += 1
        if calls == 2:
            data[:0] = [102, 101]  # two new items arrive at the top between pages
        return data[from_ : to + 1]

    got = [x async for x in offset_pager(fetch, page_size=10, key=lambda x: x)]
    assert sorted(got, reverse=True) == list(range(100, 0, -1))
    assert len(got) == len(set(got))


async def test_keyed_offset_pager_refuses_a_server_that_ignores_the_offset() -> None:
    async def fetch(from_: int, to: int) -> Sequence[int]:
        return ITEMS[:10]  # the same page whatever is asked

    with pytest.raises(PaginationError, match="ignores the cursor") as info:
        await offset_pager(fetch, page_size=10, key=lambda x: x).all()
    assert info.value.cursor == (30, 10)  # the fourth page: the first one three times again


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

    with pytest.raises(PaginationError, match="wrong way") as info:
        await cursor_pager(fetch, lambda x: x.id, order="asc").all()
    assert info.value.cursor == 7


async def test_a_cursor_that_moves_backwards_is_refused() -> None:
    async def fetch(last_id: int | None) -> Sequence[Item]:
        return [Item(9), Item(8)] if last_id is None else [Item(12), Item(10)]

    with pytest.raises(PaginationError, match=r"wrong way \(8 -> 10, order desc\)") as info:
        await cursor_pager(fetch, lambda x: x.id, order="desc").all()
    assert info.value.cursor == 10


async def test_an_offset_that_repeats_is_refused() -> None:
    from aiotd._paging import Pager

    async def fetch(cursor: int) -> Sequence[int]:
        return [1, 2]

    pager: Pager[int] = Pager(fetch, lambda cursor, page: 0, 0)
    with pytest.raises(PaginationError, match="repeated") as info:
        await pager.all()
    assert info.value.cursor == 0
    # a DecodeError still: code that caught a bad listing as one keeps working
    assert isinstance(info.value, DecodeError)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (type(copy), str(copy), copy.cursor) == (PaginationError, str(info.value), 0)


async def test_keyed_offset_pager_goes_on_past_a_page_shifted_entirely_onto_seen_items() -> None:
    data = list(range(50, 0, -1))
    calls = 0

    async def fetch(from_: int, to: int) -> Sequence[int]:
        nonlocal calls
        calls += 1
        if calls == 2:
            data[:0] = list(range(70, 50, -1))  # more arrivals than a page holds
        return data[from_ : to + 1]

    got = [x async for x in offset_pager(fetch, page_size=10, key=lambda x: x)]
    assert set(range(1, 51)) <= set(got)
    assert len(got) == len(set(got))


async def test_overlap_catches_items_shifted_up_by_removals_during_the_walk() -> None:
    seen: dict[int, list[int]] = {}
    for overlap in (0, 4):
        data = list(range(100, 0, -1))
        calls = 0

        async def fetch(from_: int, to: int, data: list[int] = data) -> Sequence[int]:
            nonlocal calls
            calls += 1
            if calls > 1:
                del data[0]
            return data[from_ : to + 1]

        pager = offset_pager(fetch, page_size=20, key=lambda x: x, overlap=overlap)
        seen[overlap] = [x async for x in pager]
    # every item still listed when the walk reached it: without overlap some slip by
    assert len(seen[0]) < len(seen[4])
    assert len(seen[4]) == len(set(seen[4]))
    assert set(range(1, 96)) <= set(seen[4])


def test_overlap_needs_a_key() -> None:
    async def fetch(from_: int, to: int) -> Sequence[int]:
        return []

    with pytest.raises(ValueError, match="overlap needs a key"):
        offset_pager(fetch, overlap=2)
