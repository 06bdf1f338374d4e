"""Batched watching holds under every reading of ``job/list``'s ``count`` and any page cap.

The recorded bodies disagree on what ``count`` counts (td-client-python's fixture: 11 for
3 jobs asked ``from 0 to 10``; td-client-go's: 4 for 4 jobs), and a server may cut a page
shorter than ``to`` asks. The emulator offers each reading (``job_list_count``) and a cap
(``job_list_page_cap``); the engine must cost about one request per watched job under all.
"""

from __future__ import annotations

import asyncio

import pytest

import aiotd
from aiotd._polling import PollSettings
from aiotd.testing import Emulator

POLL = PollSettings(min_interval=0.05, max_interval=0.4, first_delay=0.01)
RETRY = aiotd.RetryPolicy(max_attempts=6, initial_delay=0.01, max_delay=0.05)
BUSY = "-- emulator: queued=0 running=1000 rows=0\nselect 1"


async def issue_all(td: aiotd.Client, queries: list[str]) -> list[str]:
    sem = asyncio.Semaphore(32)

    async def one(query: str) -> str:
        async with sem:
            return (await td.jobs.issue(query, database="testdb")).job_id

    return list(await asyncio.gather(*(one(q) for q in queries)))


@pytest.mark.parametrize("cap", [100, 1000])
@pytest.mark.parametrize("count", ["page", "span", "total"])
async def test_watching_among_busy_jobs_costs_about_one_request_per_job(
    count: str, cap: int
) -> None:
    async with (
        Emulator(job_list_count=count, job_list_page_cap=cap, workflow=False) as emu,  # type: ignore[arg-type]
        aiotd.Client(emu.apikey, endpoint=emu.url, poll=POLL, retry=RETRY) as td,
    ):
        await td.databases.create("testdb")
        # busy jobs on both sides of the watched ids: a listing has to walk through them
        await issue_all(td, [BUSY] * 150)
        watched = await issue_all(
            td,
            [
                f"-- emulator: queued=0.1 running={0.3 + (i % 10) * 0.1} rows=0"
                + (" status=error" if i % 7 == 0 else "")
                + "\nselect 1"
                for i in range(300)
            ],
        )
        await issue_all(td, [BUSY] * 150)
        before = emu.counters.total
        jobs = await td.jobs.wait_all(watched, timeout=60)
        used = emu.counters.total - before
        assert [j.job_id for j in jobs] == watched
        assert all(j.finished for j in jobs)
        assert sum(j.status == "error" for j in jobs) == len(range(0, 300, 7))
        assert td.jobs.engine.listings > 0
        assert used <= 1.5 * len(watched), dict(emu.counters)


@pytest.mark.parametrize("count", ["page", "span", "total"])
async def test_a_listing_stops_once_past_the_oldest_watched_job(count: str) -> None:
    async with (
        Emulator(job_list_count=count, job_list_page_cap=10, workflow=False) as emu,  # type: ignore[arg-type]
        aiotd.Client(emu.apikey, endpoint=emu.url, poll=POLL, retry=RETRY) as td,
    ):
        await td.databases.create("testdb")
        await issue_all(td, [BUSY] * 400)  # 40 pages of older busy jobs
        watched = await issue_all(td, ["-- emulator: queued=0.1 running=0.6 rows=0\nselect 1"] * 60)
        before = emu.counters["GET /v3/job/list"]
        await td.jobs.wait_all(watched, timeout=60)
        pages = emu.counters["GET /v3/job/list"] - before
        listings = td.jobs.engine.listings
        assert listings > 0
        # each listing reads the 6 pages of watched jobs and one more, never the 40 below
        assert pages <= listings * 2 * 8, (pages, listings)
