"""The poll engine against hostile servers: nothing a server sends stops it for the others.

Each server is scripted here (aiohttp.web on 127.0.0.1:0); job bodies are the recorded ones.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from aiohttp import web

import aiotd
from aiotd import _waiting, errors

from .conftest import FAST_POLL, KEY, Scripted, reply

V3 = Path(__file__).parent.parent / "samples" / "v3"
WORKFLOW = Path(__file__).parent.parent / "samples" / "workflow"
RETRY = aiotd.RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02)


def job_body(name: str, job_id: str, **fields: object) -> str:
    return json.dumps(json.loads((V3 / name).read_text()) | {"job_id": job_id, **fields})


def client(scripted: Scripted, **options: object) -> aiotd.Client:
    settings: dict[str, object] = {"poll": FAST_POLL, "retry": RETRY}
    settings.update(options)
    return aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url, **settings)  # type: ignore[arg-type]


async def test_a_malformed_redirect_for_one_job_stops_nobody_else(scripted: Scripted) -> None:
    bad = web.Response(status=302, headers={"Location": "http://[::1"})

    async def malformed(request: web.Request) -> web.StreamResponse:
        return bad

    scripted.on("/v3/job/status/1", malformed)
    scripted.on("/v3/job/status/2", reply(200, job_body("job_status_success.json", "2")))
    scripted.on("/v3/job/show/2", reply(200, job_body("job_show.json", "2")))
    async with client(scripted) as td:
        stuck = asyncio.ensure_future(td.jobs.wait("1", timeout=2))
        job = await asyncio.wait_for(td.jobs.wait("2"), 5)
        assert job.job_id == "2"
        assert job.success
        # the bad one is retried as a transport fault, never a ValueError, until its deadline
        with pytest.raises(errors.WaitTimeout):
            await stuck
        assert scripted.count("/v3/job/status/1") >= 2
        assert td.jobs.engine._runner is None or not td.jobs.engine._runner.done()


def attempt(attempt_id: str, *, done: bool) -> dict[str, object]:
    body = json.loads((WORKFLOW / "GET__api_attempts_{id}__td-guide.json").read_text())
    return body | {"id": attempt_id, "done": done, "success": done, "status": None}


async def test_a_listing_with_an_id_that_is_no_number_leaves_per_item_polls(
    scripted: Scripted,
) -> None:
    watched = [str(i) for i in range(100, 120)]
    polls: dict[str, int] = {}

    async def one(request: web.Request) -> web.StreamResponse:
        attempt_id = request.match_info.get("id") or request.path.rsplit("/", 1)[-1]
        polls[attempt_id] = polls.get(attempt_id, 0) + 1
        return web.json_response(attempt(attempt_id, done=polls[attempt_id] > 2))

    # every listing page carries an attempt whose id is not a number
    page = {"attempts": [attempt("abc", done=False)] + [attempt(i, done=False) for i in watched]}
    scripted.on("/api/attempts", reply(200, json.dumps(page)))
    for attempt_id in watched:
        scripted.on(f"/api/attempts/{attempt_id}", one)
    async with client(scripted) as td:
        done = await asyncio.wait_for(td.workflow.attempts.wait_all(watched), 10)
    assert [a.id for a in done] == watched
    assert all(a.done for a in done)


async def test_kills_on_cancel_go_out_together_under_one_deadline(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_waiting, "CLEANUP_DEADLINE", 1.0)
    ids = [str(i) for i in range(1, 21)]
    arrived: list[float] = []

    async def hang(request: web.Request) -> web.StreamResponse:
        arrived.append(time.monotonic())
        await asyncio.sleep(30)
        return web.json_response({"job_id": "1", "former_status": "running"})

    for job_id in ids:
        running = job_body("job_status_running.json", job_id)
        scripted.on(f"/v3/job/status/{job_id}", reply(200, running))
        scripted.on(f"/v3/job/kill/{job_id}", hang)

    async def listing(request: web.Request) -> web.StreamResponse:
        running = request.query.get("status") == "running" and request.query["from"] == "0"
        jobs = [json.loads(job_body("job_status_running.json", i)) for i in ids] if running else []
        return web.json_response({"count": len(jobs), "jobs": jobs})

    scripted.on("/v3/job/list", listing)
    async with client(scripted, timeout=aiotd.Timeouts(read=60, total=60)) as td:
        waiter = asyncio.ensure_future(td.jobs.wait_all(ids, kill_on_cancel=True))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        took = time.monotonic() - started
    # one short deadline for all of them, not one full retry policy per kill in turn
    assert took < 3.0, took
    assert len(arrived) == len(ids)
    assert max(arrived) - min(arrived) < 0.5


async def test_a_second_cancel_does_not_cut_the_kills_short(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_waiting, "CLEANUP_DEADLINE", 5.0)
    killed: list[str] = []

    async def slow_kill(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.3)
        killed.append(request.path)
        return web.json_response({"job_id": "1", "former_status": "running"})

    scripted.on("/v3/job/status/1", reply(200, job_body("job_status_running.json", "1")))
    scripted.on("/v3/job/kill/1", slow_kill)
    async with client(scripted) as td:
        waiter = asyncio.ensure_future(td.jobs.wait("1", kill_on_cancel=True))
        await asyncio.sleep(0.2)
        waiter.cancel()
        await asyncio.sleep(0.05)
        waiter.cancel()  # impatient: cancelled again while the kill is under way
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert killed == ["/v3/job/kill/1"]
