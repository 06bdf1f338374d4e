"""td.workflow.attempts and sessions on the emulator: exactly-once start, waits, watch, retry."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import aiotd
from aiotd import errors
from aiotd._polling import PollSettings
from aiotd.cli import demo
from aiotd.models.workflow import Attempt, TaskState
from aiotd.testing import Emulator
from aiotd.workflow import TaskEvent
from tests.client._workflow_support import FAILING_DIG, SIMPLE_DIG, SLOW_DIG, client, emulator

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
async def emu():
    async with emulator() as emulated:
        yield emulated


@pytest.fixture
async def td(emu: Emulator):
    async with client(emu) as connected:
        await connected.workflow.projects.push(
            "proj", {"main.dig": SIMPLE_DIG, "failing.dig": FAILING_DIG, "slow.dig": SLOW_DIG}
        )
        yield connected


async def test_start_wait_and_tasks(td: aiotd.Client) -> None:
    started = await td.workflow.attempts.start(
        project="proj", workflow="main", session_time=T0, params={"x": 1}
    )
    assert started.existing is False
    assert started.project.name == "proj"
    assert started.workflow.name == "main"
    assert started.session_time == "2024-01-01T00:00:00+00:00"
    assert started.params == {"x": 1}
    done = await td.workflow.attempts.wait(started.id, timeout=10, raise_on_failure=True)
    assert done.done
    assert done.success
    assert done.status == "success"
    tasks = await td.workflow.attempts.tasks(started.id)
    assert [t.full_name for t in tasks] == ["+main", "+main+hello", "+main+world"]
    assert all(t.state == "success" for t in tasks)
    assert await td.workflow.attempts.failed_tasks(started.id) == []


async def test_a_second_start_returns_the_existing_attempt(td: aiotd.Client) -> None:
    first = await td.workflow.attempts.start(project="proj", workflow="main", session_time=T0)
    second = await td.workflow.attempts.start(project="proj", workflow="main", session_time=T0)
    assert second.existing is True
    assert second.id == first.id
    other = await td.workflow.attempts.start(
        project="proj", workflow="main", session_time=T0 + timedelta(days=1)
    )
    assert other.existing is False
    assert other.id != first.id


async def test_start_is_exactly_once_when_the_answer_is_lost(
    td: aiotd.Client, emu: Emulator
) -> None:
    emu.faults.drop("PUT /api/attempts", count=1)
    attempt = await td.workflow.attempts.start(project="proj", workflow="main")
    assert attempt.existing is True
    assert emu.counters["PUT /api/attempts"] == 2
    everything = await td.workflow.attempts.list(include_retried=True).all()
    assert [a.id for a in everything] == [attempt.id]


async def test_start_names_unknown_project_or_workflow(td: aiotd.Client) -> None:
    with pytest.raises(errors.NotFound, match="nope"):
        await td.workflow.attempts.start(project="nope", workflow="main")
    with pytest.raises(errors.NotFound):
        await td.workflow.attempts.start(project="proj", workflow="nope")
    with pytest.raises(ValueError, match="timezone-aware"):
        await td.workflow.attempts.start(
            project="proj", workflow="main", session_time=datetime(2024, 1, 1)
        )


async def test_failure_names_the_failed_task_and_retry_resumes_it(td: aiotd.Client) -> None:
    started = await td.workflow.attempts.start(project="proj", workflow="failing", session_time=T0)
    with pytest.raises(errors.AttemptFailed, match=r"\+failing\+boom: it broke") as caught:
        await td.workflow.attempts.wait(started.id, timeout=10, raise_on_failure=True)
    assert [t.full_name for t in caught.value.failed_tasks] == ["+failing+boom"]
    failed = await td.workflow.attempts.wait(started.id, timeout=10)
    assert failed.status == "error"
    assert failed.failed

    retried = await td.workflow.attempts.retry(started.id, mode="failed", params={"extra": "y"})
    assert retried.existing is False
    assert retried.session_id == started.session_id
    assert retried.index == 2
    assert retried.retry_attempt_name
    assert retried.params == {"extra": "y"}
    await td.workflow.attempts.wait(retried.id, timeout=10)
    tasks = {t.full_name: t for t in await td.workflow.attempts.tasks(retried.id)}
    assert tasks["+failing+ok"].state == "success"  # kept from the first attempt
    assert tasks["+failing+boom"].state == "error"
    assert await rerun(td, retried.id) == {"+failing+boom"}
    retries = await td.workflow.attempts.retries(started.id)
    assert [a.id for a in retries] == [started.id, retried.id]
    session = await td.workflow.sessions.get(started.session_id)
    assert session.last_attempt is not None
    assert session.last_attempt.id == retried.id
    assert [a.id async for a in td.workflow.sessions.attempts(started.session_id)] == [
        retried.id,
        started.id,
    ]


async def rerun(td: aiotd.Client, attempt_id: str) -> set[str]:
    """The tasks the attempt ran itself: each run writes a log file, a resumed task none."""
    return {f.task_name for f in await td.workflow.logs.files(attempt_id)}


async def test_retry_all_reruns_a_successful_attempt_that_failed_mode_refuses(
    td: aiotd.Client,
) -> None:
    started = await td.workflow.attempts.start(project="proj", workflow="main", session_time=T0)
    assert (await td.workflow.attempts.wait(started.id, timeout=10)).success
    # digdag's answer to `digdag retry --resume` of a success: no default may send that
    with pytest.raises(errors.BadRequest, match="Resuming successfully completed attempts"):
        await td.workflow.attempts.retry(started.id, mode="failed")
    again = await td.workflow.attempts.retry(started.id, mode="all")
    assert (again.session_id, again.index) == (started.session_id, 2)
    assert (await td.workflow.attempts.wait(again.id, timeout=10)).success
    assert await rerun(td, again.id) == {"+main+hello", "+main+world"}


async def test_retry_from_a_task_keeps_what_ran_before_it(td: aiotd.Client) -> None:
    started = await td.workflow.attempts.start(project="proj", workflow="main", session_time=T0)
    await td.workflow.attempts.wait(started.id, timeout=10)
    again = await td.workflow.attempts.retry(started.id, mode="from", from_task="+main+world")
    assert (await td.workflow.attempts.wait(again.id, timeout=10)).success
    assert await rerun(td, again.id) == {"+main+world"}
    tasks = {t.full_name: t.state for t in await td.workflow.attempts.tasks(again.id)}
    assert tasks == {"+main": "success", "+main+hello": "success", "+main+world": "success"}
    with pytest.raises(errors.BadRequest, match="No tasks match"):
        await td.workflow.attempts.retry(started.id, mode="from", from_task="+main+nope")


async def test_retry_needs_an_explicit_mode_before_any_request(
    td: aiotd.Client, emu: Emulator
) -> None:
    started = await td.workflow.attempts.start(project="proj", workflow="main", session_time=T0)
    before = dict(emu.counters)
    retry: Any = td.workflow.attempts.retry  # calls a type checker would refuse
    with pytest.raises(TypeError, match="mode"):
        await retry(started.id)
    with pytest.raises(ValueError, match="mode must be one of"):
        await retry(started.id, mode="resume")
    with pytest.raises(ValueError, match="from_task"):
        await retry(started.id, mode="from")
    with pytest.raises(ValueError, match="from_task goes only with mode='from'"):
        await retry(started.id, mode="all", from_task="+main+world")
    assert dict(emu.counters) == before


async def test_watch_gives_an_upstream_end_before_the_start_it_allowed(emu: Emulator) -> None:
    # the demo's workflow, polled slower than its tasks run: one snapshot holds several moves
    slow = PollSettings(min_interval=0.4, max_interval=0.4, first_delay=0.01)
    async with client(emu, poll=slow) as td:
        await td.databases.create(demo.DATABASE)
        await td.tables.create(demo.DATABASE, demo.TABLE)
        files = {"daily_report.dig": demo.WORKFLOW, "queries/count.sql": "select 1"}
        await td.workflow.projects.push("daily_report", files)
        started = await td.workflow.attempts.start(project="daily_report", workflow="daily_report")
        events = [e async for e in td.workflow.attempts.watch(started.id)]
        tasks = {t.id: t for t in await td.workflow.attempts.tasks(started.id)}
    moves = [(e.task.full_name, e.old_state, e.new_state) for e in events]
    started_at = {
        name: i for i, (name, old, new) in reversed(list(enumerate(moves))) if new != "blocked"
    }
    ended_at = {name: i for i, (name, _, new) in enumerate(moves) if new in TaskState.DONE}
    for task in tasks.values():
        for upstream in task.upstreams:
            assert ended_at[tasks[upstream].full_name] < started_at[task.full_name], moves
        if task.parent_id is not None:
            parent = tasks[task.parent_id].full_name
            assert started_at[parent] < started_at[task.full_name], moves
            assert ended_at[task.full_name] < ended_at[parent], moves


async def test_kill_rereads_the_attempt_and_is_safe_to_repeat(td: aiotd.Client) -> None:
    started = await td.workflow.attempts.start(project="proj", workflow="slow")
    killed = await td.workflow.attempts.kill(started.id)
    assert killed.cancel_requested  # re-read: the kill answer itself is stale
    done = await td.workflow.attempts.wait(started.id, timeout=10)
    assert done.status == "killed"
    assert done.killed
    again = await td.workflow.attempts.kill(started.id)  # 409 "already killed or finished"
    assert again.id == started.id
    assert again.done


async def test_watch_yields_every_task_change_in_order_until_done(td: aiotd.Client) -> None:
    started = await td.workflow.attempts.start(project="proj", workflow="failing")
    events: list[TaskEvent] = [ev async for ev in td.workflow.attempts.watch(started.id)]
    assert (await td.workflow.attempts.get(started.id)).done
    by_task: dict[str, list[tuple[str | None, str]]] = {}
    for event in events:
        by_task.setdefault(event.task.full_name, []).append((event.old_state, event.new_state))
        assert event.task.state == event.new_state
    for name, changes in by_task.items():
        assert changes[0][0] is None, name  # first sighting
        for (_, new), (old, _) in itertools.pairwise(changes):
            assert old == new, name  # each change starts where the last one ended
    final = {t.full_name: t.state for t in await td.workflow.attempts.tasks(started.id)}
    assert {name: changes[-1][1] for name, changes in by_task.items()} == final
    assert final["+failing+boom"] == "error"
    assert final["+failing+after"] == "canceled"


async def test_watchers_of_one_attempt_share_its_task_polls(emu: Emulator) -> None:
    rare = PollSettings(min_interval=30.0, max_interval=30.0, first_delay=0.01)
    async with client(emu, poll=rare) as td:
        await td.workflow.projects.push("proj", {"slow.dig": SLOW_DIG})
        started = await td.workflow.attempts.start(project="proj", workflow="slow")
        tasks = "GET /api/attempts/{id}/tasks"
        before = emu.counters[tasks]
        first = td.workflow.attempts.watch(started.id)
        seen_first = [await anext(first), await anext(first)]
        assert emu.counters[tasks] - before == 1
        # a second watcher starts from the snapshot the first one's poll read, at no cost,
        # rather than wait for the next poll 30 s away
        second = td.workflow.attempts.watch(started.id)
        seen_second = [await anext(second), await anext(second)]
        assert seen_second == seen_first
        assert [(e.task.full_name, e.old_state) for e in seen_second] == [
            ("+slow", None),
            ("+slow+wait", None),
        ]
        assert emu.counters[tasks] - before == 1
        await first.aclose()
        await second.aclose()
        assert len(td.workflow.attempts._task_watch.engine) == 0


async def test_watch_cleans_up_when_left_early(td: aiotd.Client, emu: Emulator) -> None:
    started = await td.workflow.attempts.start(project="proj", workflow="slow")
    watch = td.workflow.attempts.watch(started.id)
    first = await anext(watch)
    assert first.old_state is None
    await watch.aclose()
    before = emu.counters["GET /api/attempts/{id}/tasks"]
    await asyncio.sleep(0.2)
    assert emu.counters["GET /api/attempts/{id}/tasks"] == before  # no poller left behind


async def test_list_pages_across_more_than_a_hundred_attempts(
    td: aiotd.Client, emu: Emulator
) -> None:
    starts = [
        td.workflow.attempts.start(
            project="proj", workflow="main", session_time=T0 + timedelta(hours=i)
        )
        for i in range(130)
    ]
    attempts = await asyncio.gather(*starts)
    ids = {a.id for a in attempts}
    before = emu.counters["GET /api/attempts"]
    listed = [a.id async for a in td.workflow.attempts.list(project="proj", workflow="main")]
    assert emu.counters["GET /api/attempts"] - before == 2
    assert set(listed) == ids
    assert len(listed) == 130
    assert listed == sorted(listed, key=int, reverse=True)
    assert len(await td.workflow.attempts.list(limit=5).all()) == 5
    project = await td.workflow.projects.get_by_name("proj")
    sessions = [
        s async for s in td.workflow.projects.sessions(project.id, workflow="main", page_size=50)
    ]
    assert len(sessions) == 130
    assert len([s async for s in td.workflow.sessions.list()]) == 130
    with pytest.raises(ValueError, match="page_size"):
        td.workflow.attempts.list(page_size=500)


async def test_wait_all_and_as_completed_share_the_engine(td: aiotd.Client, emu: Emulator) -> None:
    started = [
        await td.workflow.attempts.start(
            project="proj", workflow=name, session_time=T0 + timedelta(hours=i)
        )
        for i, name in enumerate(["main", "failing"] * 20)
    ]
    ids = [a.id for a in started]
    finished = await td.workflow.attempts.wait_all(ids, timeout=20)
    assert [a.id for a in finished] == ids
    assert all(a.done for a in finished)
    assert [a.status for a in finished] == ["success", "error"] * 20
    seen = [a.id async for a in td.workflow.attempts.as_completed(reversed(ids), timeout=10)]
    assert sorted(seen) == sorted(ids)
    with pytest.raises(errors.AttemptFailed):
        await td.workflow.attempts.wait_all(ids, timeout=10, raise_on_failure=True)


async def test_failed_attempts_from_the_waiters_name_their_failed_tasks(
    td: aiotd.Client, emu: Emulator
) -> None:
    started = [
        await td.workflow.attempts.start(
            project="proj", workflow=name, session_time=T0 + timedelta(hours=i)
        )
        for i, name in enumerate(["main", "failing"] * 5)
    ]
    ids = [a.id for a in started]
    failed = set(ids[1::2])
    tasks = "GET /api/attempts/{id}/tasks"
    before = emu.counters[tasks]
    finished = await td.workflow.attempts.wait_all(ids, timeout=20)
    # one request per failed attempt, none for the others: the engine's listing and polls
    # read the tasks of a failed one once
    assert emu.counters[tasks] - before == len(failed)
    for attempt in finished:
        if attempt.id in failed:
            assert [(t.full_name, t.error_message) for t in attempt.failed_tasks] == [
                ("+failing+boom", "it broke")
            ]
            with pytest.raises(errors.AttemptFailed, match=r"\+failing\+boom: it broke"):
                attempt.raise_for_status()
        else:
            assert attempt.failed_tasks == []
            assert attempt.raise_for_status() is attempt
    completed = [a async for a in td.workflow.attempts.as_completed(ids, timeout=10)]
    assert {a.id for a in completed if a.failed_tasks} == failed
    # two waiters of one failed attempt share its one read of the tasks
    before = emu.counters[tasks]
    one, two = await asyncio.gather(
        td.workflow.attempts.wait(ids[1]), td.workflow.attempts.wait(ids[1])
    )
    assert one.failed_tasks == two.failed_tasks != []
    assert emu.counters[tasks] - before == 1
    # a plain read is the wire's record: no tasks were read for it
    assert (await td.workflow.attempts.get(ids[1])).failed_tasks == []


async def test_failed_tasks_unread_by_a_listing_are_read_with_the_attempt(
    td: aiotd.Client, emu: Emulator
) -> None:
    names = ["main", "failing", "main"]
    started = [
        await td.workflow.attempts.start(
            project="proj", workflow=name, session_time=T0 + timedelta(hours=i)
        )
        for i, name in enumerate(names)
    ]
    ids = [a.id for a in started]
    async with client(emu) as other:  # all done before the wait: its first listing says so
        await other.workflow.attempts.wait_all(ids, timeout=10)
    # the listing's read of the failed one's tasks fails past the retries (6 tries)
    emu.faults.server_error("GET /api/attempts/{id}/tasks", status=503, count=6)
    one, tasks = "GET /api/attempts/{id}", "GET /api/attempts/{id}/tasks"
    before = dict(emu.counters)
    finished = await td.workflow.attempts.wait_all(ids, timeout=10)
    assert [a.failed for a in finished] == [False, True, False]
    assert [t.full_name for t in finished[1].failed_tasks] == ["+failing+boom"]
    # the listing still told the other two; the failed one was left out of it and read on
    # its own: the attempt, then its tasks
    assert emu.counters[one] - before.get(one, 0) == 1
    assert emu.counters[tasks] - before[tasks] == 7


async def test_wait_timeout_carries_the_last_state(td: aiotd.Client) -> None:
    started = await td.workflow.attempts.start(project="proj", workflow="slow")
    with pytest.raises(errors.WaitTimeout) as caught:
        await td.workflow.attempts.wait(started.id, timeout=0.3)
    assert isinstance(caught.value.last, Attempt)
    assert caught.value.last.status == "running"


async def test_kill_on_cancel_kills_the_attempt(td: aiotd.Client) -> None:
    started = await td.workflow.attempts.start(project="proj", workflow="slow")
    waiter = asyncio.create_task(td.workflow.attempts.wait(started.id, kill_on_cancel=True))
    await asyncio.sleep(0.2)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (await td.workflow.attempts.get(started.id)).cancel_requested


async def test_listing_covers_watched_attempts_down_to_the_oldest(td: aiotd.Client) -> None:
    ids = [
        (
            await td.workflow.attempts.start(
                project="proj", workflow="main", session_time=T0 + timedelta(hours=i)
            )
        ).id
        for i in range(150)
    ]
    kind = td.workflow.attempts.engine.kind
    oldest, newest = ids[0], ids[-1]
    full = await kind.listing([oldest, newest], 10)
    assert full.pages == 3  # 100 + 50, then the empty page that proves the bottom
    assert full.records[oldest].id == oldest
    assert full.records[newest].id == newest
    assert full.covers(oldest)
    assert full.covers(newest)
    recent = await kind.listing([ids[120]], 10)
    assert recent.pages == 1
    assert ids[120] in recent.records
    assert recent.covers(ids[120])
    assert not recent.covers(oldest)
    cut = await kind.listing([oldest], 1)
    assert cut.pages > 1
    assert not cut.covers(oldest)


async def test_waiting_for_attempts_that_do_not_exist_fails_only_those(td: aiotd.Client) -> None:
    started = await td.workflow.attempts.start(project="proj", workflow="main")
    with pytest.raises(errors.NotFound):
        await td.workflow.attempts.wait_all([started.id, "999999"], timeout=5)
    with pytest.raises(errors.NotFound):
        await td.workflow.attempts.wait_all([started.id, "not-a-number"], timeout=5)
    assert (await td.workflow.attempts.wait(started.id, timeout=5)).success
