"""td.jobs against the emulator: exactly-once issue, listing, waiting at scale, results."""

from __future__ import annotations

import asyncio
import collections
import gzip
import json

import msgpack
import pytest

import aiotd
from aiotd import errors
from aiotd._polling import PollSettings
from aiotd.testing import Emulator

FAST_POLL = PollSettings(min_interval=0.05, max_interval=0.4, first_delay=0.01)
FAST_RETRY = aiotd.RetryPolicy(max_attempts=6, initial_delay=0.01, max_delay=0.05)


@pytest.fixture
async def emu():
    async with Emulator(queued_time=0.05, running_time=0.1) as emulator:
        yield emulator


@pytest.fixture
async def td(emu: Emulator):
    async with aiotd.Client(
        emu.apikey, endpoint=emu.url, workflow_endpoint=emu.url, poll=FAST_POLL, retry=FAST_RETRY
    ) as client:
        yield client


async def make_db(td: aiotd.Client, emu: Emulator, name: str = "testdb") -> None:
    await td.databases.create(name)


async def test_issue_wait_and_read_rows(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    issued = await td.jobs.issue("-- emulator: rows=1000\nselect 1", database="testdb")
    assert issued.existing is False
    assert issued.job_id
    job = await td.jobs.wait(issued.job_id, timeout=10)
    assert job.success
    assert job.num_records == 1000
    rows = [row async for row in td.jobs.rows(job.job_id)]
    assert len(rows) == 1000
    assert job.result_columns


async def test_failed_job_is_returned_and_raises_on_request(td: aiotd.Client) -> None:
    await make_db(td, None)  # type: ignore[arg-type]
    issued = await td.jobs.issue(
        "-- emulator: status=error message='boom here'\nselect 1", database="testdb"
    )
    job = await td.jobs.wait(issued.job_id, timeout=10)
    assert job.status == "error"
    with pytest.raises(errors.JobFailed, match="boom here"):
        job.raise_for_status()
    with pytest.raises(errors.JobFailed):
        await td.jobs.wait_all([issued.job_id], raise_on_failure=True, timeout=10)


async def test_wait_raises_on_failure_when_asked(td: aiotd.Client) -> None:
    await make_db(td, None)  # type: ignore[arg-type]
    failing = await td.jobs.issue(
        "-- emulator: status=error message='boom here'\nselect 1", database="testdb"
    )
    fine = await td.jobs.issue("select 1", database="testdb")
    with pytest.raises(errors.JobFailed, match="boom here") as info:
        await td.jobs.wait(failing.job_id, timeout=10, raise_on_failure=True)
    assert (info.value.job.job_id, info.value.job.status) == (failing.job_id, "error")
    assert (await td.jobs.wait(fine.job_id, timeout=10, raise_on_failure=True)).success


async def test_sql_error_reaches_stderr(td: aiotd.Client) -> None:
    await make_db(td, None)  # type: ignore[arg-type]
    issued = await td.jobs.issue("select * from no_such_table", database="testdb")
    job = await td.jobs.wait(issued.job_id, timeout=10)
    assert job.status == "error"
    assert job.debug is not None
    assert "no_such_table" in (job.debug.stderr or "")


async def test_issue_is_exactly_once_when_the_answer_is_lost(
    td: aiotd.Client, emu: Emulator
) -> None:
    await make_db(td, emu)
    emu.faults.drop("POST /v3/job/issue/", count=1)
    issued = await td.jobs.issue("select 1", database="testdb")
    assert issued.existing is True
    jobs = [job async for job in td.jobs.list()]
    assert [j.job_id for j in jobs] == [issued.job_id]


async def test_same_domain_key_returns_the_existing_job(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    first = await td.jobs.issue("select 1", database="testdb", domain_key="nightly-2026-11-25")
    second = await td.jobs.issue("select 1", database="testdb", domain_key="nightly-2026-11-25")
    assert second.existing is True
    assert second.job_id == first.job_id
    by_key = await td.jobs.status_by_domain_key("nightly-2026-11-25")
    assert by_key.job_id == first.job_id


async def test_bad_arguments_fail_before_any_request(td: aiotd.Client, emu: Emulator) -> None:
    before = td.stats.requests
    with pytest.raises(ValueError, match="engine"):
        await td.jobs.issue("select 1", database="testdb", engine="spark")
    with pytest.raises(ValueError, match="query"):
        await td.jobs.issue("  ", database="testdb")
    with pytest.raises(ValueError, match="priority|VERY"):
        await td.jobs.issue("select 1", database="testdb", priority="URGENT")
    with pytest.raises(ValueError, match="empty"):
        await td.jobs.get("")
    with pytest.raises(ValueError, match="timeout"):
        await td.jobs.wait("1", timeout=-1)
    assert td.stats.requests == before


async def test_priority_names_reach_td(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    issued = await td.jobs.issue("select 1", database="testdb", priority="VERY HIGH", retry_limit=2)
    job = await td.jobs.get(issued.job_id)
    assert job.priority == 2
    assert job.retry_limit == 2


async def test_list_pages_newest_first_and_filters(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    ids = [(await td.jobs.issue(f"select {i}", database="testdb")).job_id for i in range(25)]
    listed = [job.job_id async for job in td.jobs.list(page_size=10)]
    assert listed == list(reversed(ids))
    first_page = await td.jobs.list(page_size=10)
    assert len(first_page) == 10
    await td.jobs.wait_all(ids, timeout=10)
    assert len([j async for j in td.jobs.list(status="success")]) == 25
    assert [j async for j in td.jobs.list(status="running")] == []
    with pytest.raises(ValueError, match="status"):
        td.jobs.list(status="done")


async def test_kill_a_queued_job(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    issued = await td.jobs.issue("-- emulator: queued=30\nselect 1", database="testdb")
    killed = await td.jobs.kill(issued.job_id)
    assert killed.former_status == "queued"
    job = await td.jobs.wait(issued.job_id, timeout=10)
    assert job.status == "killed"


async def test_wait_all_keeps_order_and_as_completed_follows_finishing_order(
    td: aiotd.Client, emu: Emulator
) -> None:
    await make_db(td, emu)
    slow = (await td.jobs.issue("-- emulator: running=0.6\nselect 1", database="testdb")).job_id
    fast = (await td.jobs.issue("-- emulator: running=0.05\nselect 1", database="testdb")).job_id
    jobs = await td.jobs.wait_all([slow, fast], timeout=10)
    assert [j.job_id for j in jobs] == [slow, fast]
    slow = (await td.jobs.issue("-- emulator: running=0.6\nselect 1", database="testdb")).job_id
    fast = (await td.jobs.issue("-- emulator: running=0.05\nselect 1", database="testdb")).job_id
    order = [j.job_id async for j in td.jobs.as_completed([slow, fast], timeout=10)]
    assert order == [fast, slow]


async def test_watch_reports_every_change_in_order(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    job_id = (
        await td.jobs.issue("-- emulator: queued=0.3 running=0.3\nselect 1", database="testdb")
    ).job_id
    events = [ev async for ev in td.jobs.watch([job_id])]
    assert [(e.old_status, e.new_status) for e in events] == [
        (None, "queued"),
        ("queued", "running"),
        ("running", "success"),
    ]
    assert isinstance(events[-1].job, aiotd.models.Job)


async def test_wait_timeout_carries_the_last_state(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    job_id = (await td.jobs.issue("-- emulator: running=30\nselect 1", database="testdb")).job_id
    with pytest.raises(errors.WaitTimeout) as info:
        await td.jobs.wait(job_id, timeout=0.5)
    assert info.value.last is not None
    assert info.value.last.status == "running"
    assert len(td.jobs.engine) == 0


async def test_unknown_job_fails_only_its_own_waiter(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    good = (await td.jobs.issue("select 1", database="testdb")).job_id
    results = await asyncio.gather(
        td.jobs.wait("999999999", timeout=10),
        td.jobs.wait(good, timeout=10),
        return_exceptions=True,
    )
    assert isinstance(results[0], errors.NotFound)
    assert isinstance(results[1], aiotd.models.Job)
    assert results[1].success


async def test_cancelled_waiter_leaves_nothing_behind(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    job_id = (await td.jobs.issue("-- emulator: running=30\nselect 1", database="testdb")).job_id
    waiter = asyncio.create_task(td.jobs.wait(job_id, kill_on_cancel=True))
    await asyncio.sleep(0.3)
    assert len(td.jobs.engine) == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(td.jobs.engine) == 0
    status = await td.jobs.status(job_id)
    assert status.status == "killed"


async def test_leaving_an_iterator_early_stops_watching(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    ids = [
        (await td.jobs.issue(f"-- emulator: running={d}\nselect 1", database="testdb")).job_id
        for d in (0.05, 30)
    ]
    iterator = td.jobs.as_completed(ids)
    first = await anext(iterator)
    assert first.job_id == ids[0]
    await iterator.aclose()
    assert len(td.jobs.engine) == 0


async def test_many_jobs_switch_to_listing_and_cost_few_requests(
    td: aiotd.Client, emu: Emulator
) -> None:
    await make_db(td, emu)
    ids = [
        (
            await td.jobs.issue(
                f"-- emulator: queued=0.1 running={0.2 + (i % 10) * 0.1}\nselect 1",
                database="testdb",
            )
        ).job_id
        for i in range(300)
    ]
    before = td.stats.requests
    jobs = await td.jobs.wait_all(ids, timeout=30)
    used = td.stats.requests - before
    assert all(j.success for j in jobs)
    assert td.jobs.engine.listings > 0
    # one final record per job plus a few listing pages, far below a poll per job per tick
    assert used < 1.5 * len(ids)
    assert td.stats.groups["job/show"].requests >= len(ids)


async def test_one_job_is_polled_per_item(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    job_id = (await td.jobs.issue("-- emulator: running=0.3\nselect 1", database="testdb")).job_id
    await td.jobs.wait(job_id, timeout=10)
    assert td.jobs.engine.listings == 0
    assert td.stats.groups["job/status"].requests >= 1


async def test_poll_faults_lose_no_waiter(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    ids = [
        (
            await td.jobs.issue(
                f"-- emulator: running={0.1 + (i % 5) * 0.1}\nselect 1", database="testdb"
            )
        ).job_id
        for i in range(40)
    ]
    emu.faults.server_error("/v3/job/", rate=0.3, html=True)
    emu.faults.reset("/v3/job/", rate=0.1)
    jobs = await td.jobs.wait_all(ids, timeout=60)
    assert [j.job_id for j in jobs] == ids
    assert all(j.success for j in jobs)


async def test_download_every_format(td: aiotd.Client, emu: Emulator, tmp_path) -> None:
    await make_db(td, emu)
    job_id = (await td.jobs.issue("-- emulator: rows=500\nselect 1", database="testdb")).job_id
    job = await td.jobs.wait(job_id, timeout=10)
    seen: list[tuple[int, int | None]] = []
    path = await td.jobs.download(
        job_id, tmp_path / "r.msgpack.gz", progress=lambda d, t: seen.append((d, t))
    )
    data = gzip.decompress(path.read_bytes())
    assert len(list(msgpack.Unpacker(__import__("io").BytesIO(data), raw=False))) == 500
    assert seen[-1] == (job.result_size, job.result_size)
    lines = (await td.jobs.download(job_id, tmp_path / "r.json", format="json")).read_text()
    assert len([json.loads(x) for x in lines.splitlines()]) == 500
    csv_text = (await td.jobs.download(job_id, tmp_path / "r.csv", format="csv")).read_text()
    assert len(csv_text.splitlines()) == 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json", "r.msgpack.gz"]


async def test_download_of_an_unfinished_job_raises_job_not_finished(
    td: aiotd.Client, emu: Emulator, tmp_path
) -> None:
    await make_db(td, emu)
    issued = await td.jobs.issue("-- emulator: running=30\nselect 1", database="testdb")
    with pytest.raises(errors.JobNotFinished, match="has not finished") as info:
        await td.jobs.download(issued.job_id, tmp_path / "r.csv", format="csv")
    assert info.value.job.job_id == issued.job_id
    assert not info.value.job.finished
    assert list(tmp_path.iterdir()) == []  # no file, not even a partial one
    assert emu.counters["GET /v3/job/result/{job_id}"] == 0


async def test_download_resumes_after_a_cut_and_is_byte_identical(
    td: aiotd.Client, emu: Emulator, tmp_path
) -> None:
    await make_db(td, emu)
    job_id = (
        await td.jobs.issue("-- emulator: rows=20000 pad=50\nselect 1", database="testdb")
    ).job_id
    await td.jobs.wait(job_id, timeout=10)
    clean = (await td.jobs.download(job_id, tmp_path / "clean.gz")).read_bytes()
    emu.faults.truncate("GET /v3/job/result/", count=2)
    cut = (await td.jobs.download(job_id, tmp_path / "cut.gz")).read_bytes()
    assert cut == clean
    assert emu.counters["GET /v3/job/result/{job_id}"] >= 4


async def test_rows_refuse_a_truncated_result(td: aiotd.Client, emu: Emulator) -> None:
    await make_db(td, emu)
    job_id = (
        await td.jobs.issue("-- emulator: rows=20000 pad=50\nselect 1", database="testdb")
    ).job_id
    await td.jobs.wait(job_id, timeout=10)
    emu.faults.truncate("GET /v3/job/result/")
    with pytest.raises(errors.TransportError):
        async for _ in td.jobs.rows(job_id):
            pass


@pytest.mark.parametrize("fmt", ["msgpack.gz", "msgpack"])
async def test_rows_and_row_batches_read_every_row_in_order(
    fmt: str, td: aiotd.Client, emu: Emulator
) -> None:
    await make_db(td, emu)
    sql = "-- emulator: rows=20000 pad=3\nselect 1"
    job = await td.jobs.wait((await td.jobs.issue(sql, database="testdb")).job_id, timeout=10)
    # the emulator's generated rows: id, name, value, time, pad
    expected = [[i, f"name_{i}", i * 0.5, 1_700_000_000 + i, "xxx"] for i in range(20000)]
    group = td.stats.group("job/result")
    batches = [b async for b in td.jobs.row_batches(job.job_id, format=fmt, chunk_size=4096)]
    assert len(batches) > 10
    assert [row for batch in batches for row in batch] == expected
    sent = group.bytes_in
    # plain msgpack is the bigger body: what was asked for is what was read
    assert (sent > job.result_size) == (fmt == "msgpack")
    assert [row async for row in td.jobs.rows(job.job_id, format=fmt)] == expected
    assert group.bytes_in == 2 * sent


async def test_rows_refuse_a_format_that_is_not_msgpack(td: aiotd.Client) -> None:
    for read in (td.jobs.rows, td.jobs.row_batches):
        with pytest.raises(ValueError, match="format must be one of msgpack.gz, msgpack"):
            await anext(aiter(read("1", format="csv")))
    assert td.stats.group("job/result").requests == 0


async def test_engine_switches_from_listing_to_per_item_as_work_drains(
    td: aiotd.Client, emu: Emulator
) -> None:
    await make_db(td, emu)
    short = [
        (await td.jobs.issue("-- emulator: running=0.2\nselect 1", database="testdb")).job_id
        for _ in range(120)
    ]
    long = (await td.jobs.issue("-- emulator: running=2.5\nselect 1", database="testdb")).job_id
    waiter = asyncio.create_task(td.jobs.wait_all([*short, long], timeout=30))
    await td.jobs.wait_all(short, timeout=30)
    listings_while_busy = td.jobs.engine.listings
    status_before = td.stats.group("job/status").requests
    await waiter
    # many items: listing pays; one item left: per-item polls take over
    assert listings_while_busy > 0
    assert td.stats.group("job/status").requests > status_before
    assert td.jobs.engine.listings - listings_while_busy <= 2


async def test_booting_jobs_absent_from_listings_are_still_followed() -> None:
    async with (
        Emulator(queued_time=0.05, running_time=0.1, booting_time=0.4) as emu,
        aiotd.Client(emu.apikey, endpoint=emu.url, poll=FAST_POLL, retry=FAST_RETRY) as td,
    ):
        await make_db(td, emu)
        ids = [(await td.jobs.issue("select 1", database="testdb")).job_id for _ in range(80)]
        statuses = collections.defaultdict(list)
        async for event in td.jobs.watch(ids):
            statuses[event.job_id].append(event.new_status)
        assert td.jobs.engine.listings > 0
    # in neither listing for 0.4 s each, yet every one is followed to its end
    assert all(seq[-1] == "success" for seq in statuses.values())
    assert len(statuses) == 80
