"""Imports cut by record count and reporting each acknowledged part, against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import aiotd
from aiotd.core.imports import ImportedPart
from aiotd.testing import Emulator

ROUTE = "PUT /v3/table/import_with_id/{db}/{table}/{unique_id}/{format}"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as emulator:
        yield emulator


@pytest.fixture
async def td(emu: Emulator) -> AsyncIterator[aiotd.Client]:
    retry = aiotd.RetryPolicy(max_attempts=5, initial_delay=0.01, max_delay=0.05)
    async with aiotd.Client(emu.apikey, endpoint=emu.url, retry=retry) as client:
        await client.databases.create("parts_db")
        await client.tables.create("parts_db", "events")
        yield client


def records(n: int) -> list[dict[str, object]]:
    return [{"time": 1_700_000_000 + i, "n": i} for i in range(n)]


async def test_parts_are_cut_by_record_count_and_reported_once_each(
    td: aiotd.Client, emu: Emulator
) -> None:
    seen: list[ImportedPart] = []
    summary = await td.imports.upload(
        "parts_db", "events", records(1050), part_records=100, concurrency=3, progress=seen.append
    )
    assert (summary.parts, summary.records) == (11, 1050)
    assert sorted(p.number for p in seen) == list(range(11))
    by_number = {p.number: p for p in seen}
    assert [by_number[n].records for n in range(11)] == [100] * 10 + [50]
    assert sum(p.bytes for p in seen) == summary.bytes
    assert {p.result.unique_id for p in seen} == {r.unique_id for r in summary.results}
    assert emu.counters[ROUTE] == 11
    assert (await td.tables.get("parts_db", "events")).count == 1050


async def test_the_byte_limit_still_cuts_when_it_comes_first(td: aiotd.Client) -> None:
    seen: list[ImportedPart] = []
    summary = await td.imports.upload(
        "parts_db", "events", records(500), part_size=1024, part_records=400, progress=seen.append
    )
    assert summary.parts > 2
    assert all(p.records < 400 for p in seen)
    assert sum(p.records for p in seen) == 500


async def test_a_retried_part_is_reported_once(td: aiotd.Client, emu: Emulator) -> None:
    emu.faults.drop("PUT /v3/table/import_with_id/", count=1)
    seen: list[ImportedPart] = []
    summary = await td.imports.upload(
        "parts_db", "events", records(300), part_records=100, progress=seen.append
    )
    assert emu.counters.faults.get("drop") == 1
    assert len(seen) == summary.parts == 3
    assert emu.counters[ROUTE] == 4
    assert (await td.tables.get("parts_db", "events")).count == 300


async def test_a_failing_progress_callback_stops_the_upload(td: aiotd.Client) -> None:
    def refuse(part: ImportedPart) -> None:
        raise RuntimeError(f"stop at part {part.number}")

    with pytest.raises(RuntimeError, match="stop at part"):
        await td.imports.upload(
            "parts_db", "events", records(1000), part_records=10, progress=refuse
        )
    # parts in flight when it raised may land; the rest of the records are never sent
    assert (await td.tables.get("parts_db", "events")).count < 1000


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
async def test_part_records_is_checked_before_any_request(td: aiotd.Client, bad: object) -> None:
    before = td.stats.requests
    with pytest.raises(ValueError, match="part_records"):
        await td.imports.upload("parts_db", "events", records(1), part_records=bad)  # type: ignore[arg-type]
    assert td.stats.requests == before
