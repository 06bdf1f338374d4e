"""Killing an attempt of the Workflow emulator kills the jobs its ``td>`` tasks issued, as
digdag's td operators do when their task is canceled (BaseTdJobOperator.cleanup)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from aiotd.testing import Emulator
from tests.emulator._workflow_support import (
    FakeClock,
    by_name,
    get,
    push,
    serve,
    start,
    wait_done,
    workflow_id,
)

PARALLEL_TD = """
_export:
  td:
    database: analytics
+both:
  _parallel: true
  +q1:
    td>:
    query: SELECT 1
  +q2:
    td>:
    query: SELECT 2
  +quick:
    echo>: quick
+after:
  td>:
  query: SELECT 3
"""


async def test_kill_kills_the_running_td_jobs_and_issues_no_more() -> None:
    clock = FakeClock()
    options = {"clock": clock, "tick_interval": None, "dispatch_delay": 0.0, "kill_delay": 1.0}
    async with serve(**options) as s:
        pid = (await push(s.http, "kill", {"k.dig": PARALLEL_TD}))["id"]
        attempt = await start(s.http, await workflow_id(s.http, pid, "k"))
        aid = attempt["id"]
        assert [job["query"] for job in s.jobs.issued] == ["SELECT 1", "SELECT 2"]
        s.jobs.status["1000"] = "success"  # q1 is done before the kill: left as it was
        await get(s.http, f"/api/attempts/{aid}")
        async with s.http.post(f"/api/attempts/{aid}/kill", json={}) as resp:
            assert resp.status == 200
        assert s.jobs.status == {"1000": "success", "1001": "killed"}
        canceling = await get(s.http, f"/api/attempts/{aid}")
        assert canceling["status"] == "canceling"
        clock.advance(2)
        done = await get(s.http, f"/api/attempts/{aid}")
        assert done["status"] == "killed"
        tasks = by_name((await get(s.http, f"/api/attempts/{aid}/tasks"))["tasks"])
        assert tasks["+k+both+q1"]["state"] == "success"
        assert tasks["+k+both+q2"]["state"] == "canceled"
        assert tasks["+k+after"]["state"] == "canceled"
        assert len(s.jobs.issued) == 2  # +after never ran: no job for it


async def test_an_attempt_frozen_by_a_kill_starts_nothing_while_it_winds_down() -> None:
    clock = FakeClock()
    options = {"clock": clock, "tick_interval": None, "dispatch_delay": 0.0, "kill_delay": 5.0}
    flow = "+first:\n  echo>: one\n+second:\n  td>:\n  query: SELECT 1\n  database: db\n"
    async with serve(operator_durations={"echo": 1.0}, **options) as s:
        pid = (await push(s.http, "freeze", {"f.dig": flow}))["id"]
        attempt = await start(s.http, await workflow_id(s.http, pid, "f"))
        async with s.http.post(f"/api/attempts/{attempt['id']}/kill", json={}) as resp:
            assert resp.status == 200
        clock.advance(2)  # +first would be over and +second issued without the kill
        assert (await get(s.http, f"/api/attempts/{attempt['id']}"))["status"] == "canceling"
        assert s.jobs.issued == []
        clock.advance(5)
        assert (await get(s.http, f"/api/attempts/{attempt['id']}"))["status"] == "killed"
        assert s.jobs.issued == []


async def test_on_the_emulator_the_v3_job_of_a_killed_attempt_is_killed() -> None:
    flow = "_export:\n  td:\n    database: kdb\n+q:\n  td>: q.sql\n"
    query = "-- emulator: duration=60\nSELECT 1"
    options = {"tick_interval": 0.02, "dispatch_delay": 0.0, "kill_delay": 0.05}
    async with Emulator(workflow_options=options) as emu:
        emu.core.store.create_database("kdb")
        headers = {"Authorization": f"TD1 {emu.apikey}"}
        async with aiohttp.ClientSession(base_url=emu.url, headers=headers) as http:
            pid = (await push(http, "kill_jobs", {"k.dig": flow, "q.sql": query}))["id"]
            attempt = await start(http, await workflow_id(http, pid, "k"))
            deadline = time.monotonic() + 5
            while True:
                tasks = by_name((await get(http, f"/api/attempts/{attempt['id']}/tasks"))["tasks"])
                job_id = tasks["+k+q"]["storeParams"].get("td", {}).get("last_job_id")
                if job_id is not None:
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert (await get(http, f"/v3/job/status/{job_id}"))["status"] in ("queued", "running")
            async with http.post(f"/api/attempts/{attempt['id']}/kill", json={}) as resp:
                assert resp.status == 200
            assert (await wait_done(http, attempt["id"]))["status"] == "killed"
            assert (await get(http, f"/v3/job/status/{job_id}"))["status"] == "killed"
