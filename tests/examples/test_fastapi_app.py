"""The web-backend recipe (examples/fastapi_app.py) under a real uvicorn server, against the
emulator, through a real HTTP client: shared polling, SSE changes, idempotent issue, rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest
import uvicorn

import aiotd
from aiotd.testing import Emulator
from examples.fastapi_app import create_app, domain_key_for

DB = "web_db"
JOBS = 200


class _Server(uvicorn.Server):
    """uvicorn in the test's event loop, leaving the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(
    emu: Emulator, poll: aiotd.PollSettings | None = None, opened: list[aiotd.Client] | None = None
) -> AsyncIterator[str]:
    """The app on 127.0.0.1 (a free port), its client on ``emu`` (put in ``opened``); yields
    the base URL."""

    def factory() -> aiotd.Client:
        client = aiotd.Client(emu.apikey, endpoint=emu.url, poll=poll)
        if opened is not None:
            opened.append(client)
        return client

    app = create_app(factory)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, timeout_keep_alive=60
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as emulator:
        async with aiotd.Client(emulator.apikey, endpoint=emulator.url) as td:
            await td.databases.create(DB)
            await td.tables.create(DB, "events")
            await td.imports.upload(
                DB, "events", [{"time": 1_700_000_000 + i, "n": i, "s": f"r{i}"} for i in range(5)]
            )
        yield emulator


def http(base: str, connections: int = 20) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base, limits=limits, timeout=60)


@contextlib.asynccontextmanager
async def browsers(base: str, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``count`` HTTP clients of 20 connections each: every request of a test has its own
    connection at once (httpx picks a connection in time that grows with its pool's square,
    so one pool of hundreds would make the client, not the app, the slow part)."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(http(base)) for _ in range(count)]


async def issue(client: httpx.AsyncClient, sql: str) -> str:
    """POST /queries; the job id."""
    answer = await client.post("/queries", json={"query": sql, "database": DB})
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["job_id"]
    return job_id


def job_polls(emu: Emulator) -> dict[str, int]:
    """Requests the emulator got that learn about jobs: status, listings, final records."""
    return {
        k: v for k, v in emu.counters.snapshot()["routes"].items() if k.startswith("GET /v3/job/")
    }


async def test_concurrent_waits_cost_about_one_request_per_job(emu: Emulator) -> None:
    async with serve(emu) as base, browsers(base, JOBS // 20) as clients:
        # jobs that outlast the issuing: the waits below find them queued or running
        sql = "-- emulator: queued=0.3 running=1.2\nselect 1"
        body = {"query": sql, "database": DB}
        issued = await asyncio.gather(
            *(clients[n % len(clients)].post("/queries", json=body) for n in range(JOBS))
        )
        assert {r.status_code for r in issued} == {201}
        ids = [r.json()["job_id"] for r in issued]
        assert len(set(ids)) == JOBS
        assert emu.jobs.count() >= JOBS

        emu.counters.reset()
        answers = await asyncio.gather(
            *(clients[n % len(clients)].get(f"/queries/{i}?wait=30") for n, i in enumerate(ids))
        )
        polls = job_polls(emu)
    assert {r.status_code for r in answers} == {200}
    states = [r.json() for r in answers]
    assert [s["job_id"] for s in states] == ids
    assert all(s["status"] == "success" and s["finished"] for s in states)
    assert all(s["database"] == DB and s["end_at"] for s in states)
    per_job = sum(polls.values()) / JOBS
    # the final record of each job (job/show) is one request; the polls that found the
    # jobs finished are shared by all 200 waiters
    assert per_job <= 1.3, polls
    assert emu.counters.total == sum(polls.values())  # nothing else reached the emulator


def sse_events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        if fields:
            events.append(fields)
    return events


async def test_the_event_stream_delivers_every_status_change(emu: Emulator) -> None:
    fast = aiotd.PollSettings(min_interval=0.05, max_interval=0.1, first_delay=0.01)
    async with serve(emu, poll=fast) as base, http(base) as client:
        jobs = {}
        for status in ("success", "error"):
            sql = f"-- emulator: queued=0.6 booting=0 running=0.6 status={status}\nselect 1"
            jobs[status] = await issue(client, sql)

        async def read(job_id: str) -> list[dict[str, str]]:
            async with client.stream("GET", f"/queries/{job_id}/events") as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                return sse_events("".join([text async for text in response.aiter_text()]))

        # both streams open while the jobs are still queued
        read_all = await asyncio.gather(*(read(job_id) for job_id in jobs.values()))
        streams = dict(zip(jobs, read_all, strict=True))
        missing = await client.get("/queries/999999/events")
    for status, events in streams.items():
        assert {e["event"] for e in events} == {"status"}
        states = [json.loads(e["data"]) for e in events]
        assert [s["status"] for s in states] == ["queued", "running", status]
        assert [s["finished"] for s in states] == [False, False, True]
        assert {s["job_id"] for s in states} == {jobs[status]}
        assert [e["id"] for e in events] == ["1", "2", "3"]
    assert json.loads(streams["error"][-1]["data"])["error"]  # the job's last stderr line
    assert json.loads(streams["success"][-1]["data"])["error"] is None
    assert missing.status_code == 404


async def test_a_listener_that_leaves_stops_the_watch(emu: Emulator) -> None:
    fast = aiotd.PollSettings(min_interval=0.05, max_interval=0.1, first_delay=0.01)
    opened: list[aiotd.Client] = []
    async with serve(emu, poll=fast, opened=opened) as base, http(base) as client:
        (td,) = opened
        job_id = await issue(client, "-- emulator: queued=0 running=30\nselect 1")
        async with client.stream("GET", f"/queries/{job_id}/events") as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    break  # the first event: the job is watched
            assert len(td.jobs.engine) == 1
        # the connection is gone: the app's watch of the job ends with it
        with anyio.fail_after(10):
            while len(td.jobs.engine):  # noqa: ASYNC110 (the engine has no event to await)
                await asyncio.sleep(0.02)
        assert not emu.jobs.get(job_id).finished


async def test_issue_once_per_idempotency_key_and_through_a_lost_answer(emu: Emulator) -> None:
    body = {"query": "select 1", "database": DB}
    route = "POST /v3/job/issue/{type}/{db}"
    async with serve(emu) as base, http(base) as client:
        first = await client.post("/queries", json=body, headers={"Idempotency-Key": "order-17"})
        again = await client.post("/queries", json=body, headers={"Idempotency-Key": "order-17"})
        other = await client.post("/queries", json=body, headers={"Idempotency-Key": "order-18"})
        assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
        assert first.json() == {**again.json(), "existing": False}
        assert again.json()["existing"] is True
        assert other.json()["job_id"] != first.json()["job_id"]
        held = emu.jobs.get(first.json()["job_id"])
        assert held.domain_key == domain_key_for("order-17")

        # TD applies the issue and the answer is lost: aiotd's retry carries the same
        # domain_key, so the caller gets the one job that was made
        before = emu.jobs.count()
        emu.faults.drop("POST /v3/job/issue/", count=1)
        lost = await client.post("/queries", json=body)
        assert lost.status_code == 200
        assert lost.json()["existing"] is True
        assert emu.jobs.count() == before + 1
        assert emu.counters.faults == {"drop": 1}
        assert emu.counters[route] == 3 + 2  # the lost issue was sent twice

        no_db = await client.post("/queries", json={**body, "database": "nope_db"})
        assert no_db.status_code == 404
        assert "nope_db" in no_db.json()["detail"]
        empty = await client.post("/queries", json={"query": "", "database": DB})
        assert empty.status_code == 422


async def test_state_waits_with_a_deadline_and_rows_stream(emu: Emulator) -> None:
    fast = aiotd.PollSettings(min_interval=0.05, max_interval=0.1, first_delay=0.01)
    async with serve(emu, poll=fast) as base, http(base) as client:
        slow = "-- emulator: queued=0 booting=0 running=30\nselect 1"
        slow_id = await issue(client, slow)
        now = await client.get(f"/queries/{slow_id}")
        assert (now.status_code, now.json()["finished"], now.json()["database"]) == (200, False, DB)
        deadline = await client.get(f"/queries/{slow_id}?wait=0.3")
        assert deadline.status_code == 200
        assert deadline.json()["status"] in ("queued", "running")
        assert (await client.get(f"/queries/{slow_id}/rows")).status_code == 409
        assert (await client.get(f"/queries/{slow_id}?wait=-1")).status_code == 422
        assert (await client.get("/queries/999999?wait=5")).status_code == 404

        sql = "select n, s from events order by n"
        job_id = await issue(client, sql)
        done = await client.get(f"/queries/{job_id}?wait=30")
        assert done.json()["num_records"] == 5
        lines = await client.get(f"/queries/{job_id}/rows")
        assert lines.headers["content-type"] == "application/x-ndjson"
        assert [json.loads(line) for line in lines.text.splitlines()] == [
            [i, f"r{i}"] for i in range(5)
        ]
        table = await client.get(f"/queries/{job_id}/rows?format=csv")
        assert table.headers["content-type"].startswith("text/csv")
        assert table.text.splitlines() == ["n,s", *(f"{i},r{i}" for i in range(5))]

        failed = "-- emulator: queued=0 running=0.1 status=error\nselect 1"
        bad_id = await issue(client, failed)
        bad = await client.get(f"/queries/{bad_id}?wait=30")
        assert (bad.json()["status"], bool(bad.json()["error"])) == ("error", True)
        assert (await client.get(f"/queries/{bad_id}/rows")).status_code == 409
        assert (await client.get("/queries/999999/rows")).status_code == 404
