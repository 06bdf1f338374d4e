"""Faults survived: nothing lost, nothing duplicated, nothing leaked, the client slows down."""

from __future__ import annotations

import asyncio
import collections
import gzip
import hashlib
import io
import itertools
import time
from pathlib import Path

import msgpack
import pytest
from aiohttp import web

import aiotd
from aiotd import errors
from aiotd.testing import Emulator

from .conftest import (
    FAST_POLL,
    KEY,
    Scripted,
    add_fault_mix,
    client_for,
    client_tasks,
    reply,
    settle_tasks,
)

# A job per outcome, with durations spread so that polls see every state.
OUTCOMES = ("success", "error", "success")


def job_query(i: int) -> str:
    outcome = OUTCOMES[i % len(OUTCOMES)]
    return (
        f"-- emulator: queued={0.05 * (i % 4)} running={0.1 + 0.05 * (i % 6)} status={outcome}\n"
        f"select {i} as n"
    )


async def create_db(td: aiotd.Client, name: str = "rel") -> None:
    await td._core._request("POST", f"/v3/database/create/{name}")


async def test_jobs_issued_through_faults_exist_once_and_are_reported_once(emu: Emulator) -> None:
    before = len(asyncio.all_tasks())
    td = client_for(emu)
    async with td:
        await create_db(td)
        # three answers surely lost after the job was made, then the random mix
        emu.faults.drop("POST /v3/job/issue/", count=2)
        emu.faults.truncate("POST /v3/job/issue/", count=1)
        rules = add_fault_mix(emu)
        count = 60
        issued = await asyncio.gather(
            *(td.jobs.issue(job_query(i), database="rel") for i in range(count))
        )
        ids = [job.job_id for job in issued]

        # exactly once: one job per issue call on the server, each domain key used once
        assert len(set(ids)) == count
        assert len(emu.jobs.jobs) == count
        assert sorted(ids, key=int) == [str(i) for i in sorted(emu.jobs.jobs)]
        assert len(emu.jobs.by_domain_key) == count
        assert {j.query for j in emu.jobs.jobs.values()} == {job_query(i) for i in range(count)}
        # the lost answers were recovered as the jobs already made
        assert sum(job.existing for job in issued) >= 3

        events: list[aiotd.core.jobs.JobEvent] = []
        peak_tasks = 0
        async for event in td.jobs.watch(ids):
            events.append(event)
            peak_tasks = max(peak_tasks, len(client_tasks()))
        assert sum(rule.hits for rule in rules) > 0

    # every job reported finished exactly once, with the status the server holds
    finals = [e for e in events if e.new_status in ("success", "error", "killed")]
    assert collections.Counter(e.job_id for e in finals) == dict.fromkeys(ids, 1)
    for event in finals:
        truth = emu.jobs.get(event.job_id)
        assert event.new_status == truth.status
        assert isinstance(event.job, aiotd.models.Job)
        assert event.job.status == truth.status
    assert {e.new_status for e in finals} == {"success", "error"}
    # each job's events form one chain of changes: no repeats, no gaps
    by_job: dict[str, list[aiotd.core.jobs.JobEvent]] = collections.defaultdict(list)
    for event in events:
        by_job[event.job_id].append(event)
    for chain in by_job.values():
        assert chain[0].old_status is None
        for prev, nxt in itertools.pairwise(chain):
            assert nxt.old_status == prev.new_status != nxt.new_status

    # tasks come and go with the polls (see the test below), and none is left behind
    assert peak_tasks - before <= count + 2, f"{peak_tasks - before} tasks for {count} jobs"
    assert await settle_tasks(before) == before


async def test_polling_many_jobs_keeps_tasks_near_the_concurrency(emu: Emulator) -> None:
    for i in range(150):
        emu.jobs.issue(
            job_type="presto", database="rel", query=f"select {i}", queued=0, running=1, rows=1
        )
    ids = [str(job_id) for job_id in emu.jobs.jobs]
    before = len(client_tasks())
    peak = 0
    async with client_for(emu) as td:
        waiter = asyncio.create_task(td.jobs.wait_all(ids, timeout=30))
        while not waiter.done():
            peak = max(peak, len(client_tasks()) - before)
            await asyncio.sleep(0.002)
        jobs = await waiter
    assert all(job.success for job in jobs)
    # the runner, the waiter, and at most `concurrency` requests in flight
    assert peak <= FAST_POLL.concurrency + 3, f"{peak} tasks for {len(ids)} watched jobs"


async def test_wait_all_and_as_completed_through_faults_match_the_server(emu: Emulator) -> None:
    before = len(asyncio.all_tasks())
    async with client_for(emu) as td:
        await create_db(td)
        ids = [(await td.jobs.issue(job_query(i), database="rel")).job_id for i in range(30)]
        add_fault_mix(emu, total=0.3)
        waited, completed = await asyncio.gather(
            td.jobs.wait_all(ids, timeout=60),
            _collect(td.jobs.as_completed(ids, timeout=60)),
        )
        # cancel a third of many waiters half way: the rest are not disturbed
        extra = [
            str(emu.jobs.issue(job_type="presto", database="rel", query="select 1", running=1).id)
            for _ in range(9)
        ]
        waiters = [asyncio.create_task(td.jobs.wait(job_id, timeout=60)) for job_id in extra]
        await asyncio.sleep(0.2)
        for task in waiters[::3]:
            task.cancel()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert len(td.jobs.engine) == 0
    assert [j.job_id for j in waited] == ids
    assert collections.Counter(j.job_id for j in completed) == dict.fromkeys(ids, 1)
    for job in (*waited, *completed):
        assert job.status == emu.jobs.get(job.job_id).status
    for index, result in enumerate(results):
        if index % 3 == 0:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert isinstance(result, aiotd.models.Job)
            assert result.status == "success"
    assert await settle_tasks(before) == before


async def _collect(iterator: object) -> list[aiotd.models.Job]:
    return [job async for job in iterator]  # type: ignore[attr-defined]


# -- results ---------------------------------------------------------------------------------


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def stored_result(emu: Emulator, job_id: str) -> bytes:
    """The msgpack.gz bytes the emulator holds for a job: the ground truth of a download."""
    result = emu.jobs.get(job_id).result
    assert result is not None
    source = result._variants["msgpack.gz"]
    return source.read_bytes() if isinstance(source, Path) else source


async def test_downloads_cut_mid_stream_resume_byte_identical(
    emu: Emulator, tmp_path: Path
) -> None:
    async with client_for(emu) as td:
        await create_db(td)
        job_id = (
            await td.jobs.issue("-- emulator: rows=150000 pad=40\nselect 1", database="rel")
        ).job_id
        job = await td.jobs.wait(job_id, timeout=30)
        truth = stored_result(emu, job_id)
        assert job.result_size == len(truth) > 1 << 20  # served from a file, in chunks

        emu.faults.truncate("GET /v3/job/result/", rate=0.5)
        emu.faults.reset("GET /v3/job/result/", rate=0.2)
        emu.faults.server_error("GET /v3/job/result/", status=503, html=True, rate=0.2)
        for attempt in range(3):
            target = await td.jobs.download(job_id, tmp_path / f"r{attempt}.msgpack.gz")
            assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(truth).digest()
        rows = 0
        async for row in td.jobs.rows(job_id):
            assert len(row) == 5
            rows += 1
        assert rows == 150000
        assert emu.counters.faults.get("truncate", 0) >= 2
        assert listing(tmp_path) == [f"r{i}.msgpack.gz" for i in range(3)]


def result_bytes(rows: int) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as gz:
        for i in range(rows):
            gz.write(msgpack.packb([i, f"name-{i}"]))
    return buffer.getvalue()


def job_show(result_size: int) -> str:
    return (
        '{"job_id":"7","status":"success","type":"presto","database":"db",'
        f'"result_size":{result_size},"num_records":100}}'
    )


@pytest.mark.parametrize("difference", [-200, 200], ids=["short", "long"])
async def test_a_result_whose_size_differs_from_result_size_is_an_error(
    scripted: Scripted, tmp_path: Path, difference: int
) -> None:
    # A complete, well-formed body that is not the size TD announced: no silent short file.
    body = result_bytes(100)
    scripted.on("/v3/job/show/7", reply(body=job_show(len(body) + difference)))
    scripted.on("/v3/job/result/7", reply(body=body))
    target = tmp_path / "out.msgpack.gz"
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=aiotd.RetryPolicy.never()) as td:
        with pytest.raises(errors.TDError, match=f"{len(body)} bytes") as info:
            await td.jobs.download("7", target)
    assert str(len(body) + difference) in str(info.value)
    assert listing(tmp_path) == []


async def test_a_result_cut_without_a_way_to_resume_is_an_error(
    scripted: Scripted, tmp_path: Path
) -> None:
    # No ETag, so the cut cannot be resumed safely: an error, and no file left behind.
    body = result_bytes(20000)

    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(body))})
        await response.prepare(request)
        await response.write(body[: len(body) // 3])
        assert request.transport is not None
        request.transport.close()
        return response

    scripted.on("/v3/job/show/7", reply(body=job_show(len(body))))
    scripted.on("/v3/job/result/7", cut)
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=aiotd.RetryPolicy.never()) as td:
        with pytest.raises(errors.TransportError):
            await td.jobs.download("7", tmp_path / "out.msgpack.gz")
    assert listing(tmp_path) == []


# -- imports ---------------------------------------------------------------------------------


async def test_imports_retried_through_lost_answers_import_each_part_once(emu: Emulator) -> None:
    async with client_for(emu) as td:
        await create_db(td)
        await td._core._request("POST", "/v3/table/create/rel/events/log")
        records = [{"time": 1_700_000_000 + i, "n": i, "pad": "x" * 50} for i in range(3000)]
        emu.faults.drop("PUT /v3/table/import_with_id/", rate=0.4)
        emu.faults.truncate("PUT /v3/table/import_with_id/", rate=0.2)
        emu.faults.server_error("PUT /v3/table/import_with_id/", status=502, html=True, rate=0.2)
        summary = await td.imports.upload("rel", "events", records, part_size=8000)
        lost = emu.counters.faults.get("drop", 0) + emu.counters.faults.get("truncate", 0)
        emu.faults.clear()
        assert summary.parts > 10
        assert lost > 0
        assert summary.records == len(records)
        # one import per part on the server, and every record there once
        imported = [key for key in emu.core.imported_ids if key[:2] == ("rel", "events")]
        assert len(imported) == summary.parts
        job = await td.jobs.issue(
            "select count(*), count(distinct n), sum(n) from events", database="rel"
        )
        done = await td.jobs.wait(job.job_id, timeout=30)
        rows = [row async for row in td.jobs.rows(done.job_id)]
    assert rows == [[3000, 3000, sum(range(3000))]]


# -- rate limiting ---------------------------------------------------------------------------


async def _hammer(td: aiotd.Client, callers: int, seconds: float) -> int:
    """``callers`` loops of single calls for ``seconds``; returns the calls completed."""
    done = 0
    stop = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await td.jobs.status("1")
            done += 1

    await asyncio.gather(*(loop() for _ in range(callers)))
    return done


async def test_429_to_half_the_requests_slows_the_whole_client(emu: Emulator) -> None:
    pause = 0.5
    callers = 12
    window = 3.0
    retry = aiotd.RetryPolicy(max_attempts=50, initial_delay=0.01, max_delay=0.05)
    async with client_for(emu, retry=retry) as td:
        await create_db(td)
        await td.jobs.issue("select 1", database="rel")

        emu.counters.reset()
        await _hammer(td, callers, 1.0)
        free_rate = emu.counters.total / 1.0

        emu.faults.rate_limit("GET /v3/job/status/{job_id}", retry_after=pause, rate=0.5)
        emu.counters.reset()
        start = time.monotonic()
        completed = await _hammer(td, callers, window)
        elapsed = time.monotonic() - start
        sent = emu.counters.total
        limited = emu.counters.faults.get("rate_limit", 0)
    limited_rate = sent / elapsed
    # Every 429 pauses every caller for `pause` seconds. Once a pause ends each caller sends,
    # and the first 429 back closes the gate again: a caller gets at most a request or two out
    # per opening, so the requests sent are bounded by the number of pauses the window holds,
    # whatever the rate without 429s.
    bound = 2 * callers * (elapsed / pause + 1)
    print(
        f"\nfree: {free_rate:.0f} req/s; half 429 (Retry-After {pause}s): {limited_rate:.1f} req/s"
        f" sent, {completed / elapsed:.1f} calls/s completed, {limited} answered 429"
    )
    assert sent <= bound, f"{sent} requests in {elapsed:.1f}s, bound {bound:.0f}"
    assert limited_rate < free_rate / 4
    assert completed > 0
    assert limited >= sent * 0.3


# -- workflow: pushes and attempt starts -----------------------------------------------------

DIG = "timezone: UTC\n\n+hello:\n  echo>: hello\n"


async def test_pushes_and_attempt_starts_through_lost_answers_are_made_once(emu: Emulator) -> None:
    if emu.workflow is None:
        pytest.skip("the emulator serves no Workflow API here (pyyaml missing)")
    async with client_for(emu) as td:
        # the first try of each write is applied and its answer lost, the next ones hit faults
        emu.faults.drop("PUT /api/projects", count=1)
        emu.faults.truncate("PUT /api/projects", count=1)
        emu.faults.server_error("PUT /api/projects", status=502, html=True, count=1)
        project = await td.workflow.projects.push("reliable", {"daily.dig": DIG})
        emu.faults.clear()
        revisions = await td.workflow.projects.revisions(project.id)
        assert len(revisions) == 1
        assert emu.counters["PUT /api/projects"] >= 3

        session_times = [f"2026-11-{day:02d}T00:00:00Z" for day in range(1, 9)]
        emu.faults.drop("PUT /api/attempts", count=1)
        emu.faults.drop("PUT /api/attempts", rate=0.4)
        emu.faults.truncate("PUT /api/attempts", rate=0.2)
        emu.faults.server_error("PUT /api/attempts", status=503, html=True, rate=0.2)
        started = await asyncio.gather(
            *(
                td.workflow.attempts.start(project="reliable", workflow="daily", session_time=t)
                for t in session_times
            )
        )
        lost = emu.counters.faults.get("drop", 0) + emu.counters.faults.get("truncate", 0)
        emu.faults.clear()
        assert lost > 0
        assert any(attempt.existing for attempt in started)
        listed = [a async for a in td.workflow.attempts.list(project="reliable")]
        assert len(listed) == len(session_times)
        assert sorted(a.id for a in listed) == sorted(a.id for a in started)
        everything = [a async for a in td.workflow.attempts.list(include_retried=True)]
        assert len(everything) == len(session_times)
