"""Attempts of the Workflow emulator past the pool's concurrency limit: refused without
``allowQueueing``, ``queued``/``blocked`` with it, started in order as places free up."""

from __future__ import annotations

from typing import Any

from tests.emulator._workflow_support import FakeClock, get, push, serve, start, workflow_id

FLOWS = {"a.dig": "+t:\n  sh>: a\n", "b.dig": "+t:\n  sh>: b\n"}
DAILY = "schedule:\n  daily>: 07:00:00\n+t:\n  sh>: d\n"


def _options(clock: FakeClock, **extra: Any) -> dict[str, Any]:
    return {
        "clock": clock,
        "tick_interval": None,
        "task_duration": 1.0,
        "dispatch_delay": 0.0,
        "max_running_attempts": 1,
        **extra,
    }


def _day(n: int) -> str:
    return f"2024-01-{n:02d}T00:00:00Z"


async def _attempt(s: Any, attempt_id: str) -> dict[str, Any]:
    return await get(s.http, f"/api/attempts/{attempt_id}")  # type: ignore[no-any-return]


async def test_a_full_pool_refuses_a_start_without_allow_queueing() -> None:
    clock = FakeClock()
    async with serve(**_options(clock)) as s:
        pid = (await push(s.http, "pool", FLOWS))["id"]
        wid = await workflow_id(s.http, pid, "a")
        first = await start(s.http, wid, session_time=_day(1))
        assert first["status"] == "running"
        refused = await start(s.http, wid, session_time=_day(2), expect=400)
        # digdag's attempt limit (WorkflowExecutor), mapped to 400 (AttemptLimitIT)
        assert refused == {
            "message": "Too many attempts running. Limit: 1, Current: 1",
            "status": 400,
        }
        assert len((await get(s.http, "/api/sessions"))["sessions"]) == 1
        await start(s.http, wid, session_time=_day(3), allowQueueing=False, expect=400)
        clock.advance(2)
        assert (await _attempt(s, first["id"]))["status"] == "success"
        assert (await start(s.http, wid, session_time=_day(2)))["status"] == "running"


async def test_waiting_attempts_are_queued_or_blocked_and_start_in_order() -> None:
    clock = FakeClock()
    async with serve(**_options(clock)) as s:
        pid = (await push(s.http, "pool", FLOWS))["id"]
        wid_a = await workflow_id(s.http, pid, "a")
        wid_b = await workflow_id(s.http, pid, "b")
        a1 = await start(s.http, wid_a, session_time=_day(1))
        a2 = await start(s.http, wid_a, session_time=_day(2), allowQueueing=True)
        a3 = await start(s.http, wid_a, session_time=_day(3), allowQueueing=True)
        b1 = await start(s.http, wid_b, session_time=_day(1), allowQueueing=True)
        assert [x["status"] for x in (a2, a3, b1)] == ["queued", "blocked", "queued"]
        assert {x["done"] for x in (a2, a3, b1)} == {False}
        tasks = (await get(s.http, f"/api/attempts/{a2['id']}/tasks"))["tasks"]
        assert {t["state"] for t in tasks} == {"blocked"}
        assert {t["startedAt"] for t in tasks} == {None}
        listed = (await get(s.http, "/api/attempts"))["attempts"]
        assert [x["status"] for x in listed] == ["queued", "blocked", "queued", "running"]
        sessions = (await get(s.http, "/api/sessions"))["sessions"]
        assert [x["lastAttempt"]["status"] for x in sessions] == [
            "queued",
            "blocked",
            "queued",
            "running",
        ]

        clock.advance(1.5)  # a1 ends at +1.0; a2 takes its place then, a3 moves up
        done = await _attempt(s, a1["id"])
        assert done["status"] == "success"
        running = await _attempt(s, a2["id"])
        assert running["status"] == "running"
        assert (await _attempt(s, a3["id"]))["status"] == "queued"
        assert (await _attempt(s, b1["id"]))["status"] == "queued"
        tasks = (await get(s.http, f"/api/attempts/{a2['id']}/tasks"))["tasks"]
        assert {t["startedAt"] for t in tasks if not t["isGroup"]} == {done["finishedAt"]}

        clock.advance(1.0)  # a2 ends at +2.0; the oldest waiting (a3) goes next, not b1
        assert (await _attempt(s, a2["id"]))["status"] == "success"
        assert (await _attempt(s, a3["id"]))["status"] == "running"
        assert (await _attempt(s, b1["id"]))["status"] == "queued"
        clock.advance(2.0)
        assert (await _attempt(s, b1["id"]))["status"] == "success"


async def test_killing_a_waiting_attempt_ends_it_at_once() -> None:
    clock = FakeClock()
    async with serve(**_options(clock)) as s:
        pid = (await push(s.http, "pool", FLOWS))["id"]
        wid = await workflow_id(s.http, pid, "a")
        await start(s.http, wid, session_time=_day(1))
        waiting = await start(s.http, wid, session_time=_day(2), allowQueueing=True)
        behind = await start(s.http, wid, session_time=_day(3), allowQueueing=True)
        async with s.http.post(f"/api/attempts/{waiting['id']}/kill", json={}) as resp:
            assert resp.status == 200
            answer = await resp.json()
        assert (answer["status"], answer["cancelRequested"]) == ("queued", False)
        killed = await _attempt(s, waiting["id"])
        assert (killed["done"], killed["success"], killed["status"]) == (True, False, "killed")
        assert killed["finishedAt"] is not None
        tasks = (await get(s.http, f"/api/attempts/{waiting['id']}/tasks"))["tasks"]
        assert {t["state"] for t in tasks} == {"canceled"}
        assert (await _attempt(s, behind["id"]))["status"] == "queued"  # moved up the line
        clock.advance(1.5)
        assert (await _attempt(s, behind["id"]))["status"] == "running"


async def test_backfills_queue_whatever_the_request_says() -> None:
    # TD queues attempts of schedules and backfills when the pool is full; only API starts
    # may be refused (docs: Attempt Queueing by attempt source).
    clock = FakeClock()
    async with serve(**_options(clock, run_schedules=False)) as s:
        pid = (await push(s.http, "sched", {**FLOWS, "d.dig": DAILY}))["id"]
        await start(s.http, await workflow_id(s.http, pid, "a"), session_time=_day(1))
        schedule = (await get(s.http, "/api/schedules"))["schedules"][0]
        body = {"fromTime": "2023-11-12T00:00:00Z", "attemptName": "fill", "dryRun": False}
        async with s.http.post(f"/api/schedules/{schedule['id']}/backfill", json=body) as resp:
            assert resp.status == 200, await resp.text()
            attempts = (await resp.json())["attempts"]
        assert len(attempts) == 3  # 07:00 of Nov 12, 13 and 14, before the next run
        assert attempts[0]["status"] == "queued"
        assert {x["status"] for x in attempts[1:]} == {"blocked"}
