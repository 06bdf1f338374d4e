"""Attempts of the Workflow emulator: task state walks, _error, _parallel, td>, retries, kill."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import aiohttp

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

SEQUENCE = """
+first:
  sh>: echo one
+group:
  +inner:
    echo>: inner at ${session_date}
+last:
  py>: tasks.last
"""


async def _states(s: Any, attempt_id: str) -> dict[str, str]:
    tasks = (await get(s.http, f"/api/attempts/{attempt_id}/tasks"))["tasks"]
    return {t["fullName"]: t["state"] for t in tasks}


async def test_tasks_walk_through_states_on_a_virtual_clock() -> None:
    clock = FakeClock()
    options = {"clock": clock, "tick_interval": None, "dispatch_delay": 0.01}
    async with serve(task_duration=1.0, operator_durations={"echo": 0.5}, **options) as s:
        pid = (await push(s.http, "walk", {"seq.dig": SEQUENCE}))["id"]
        attempt = await start(s.http, await workflow_id(s.http, pid, "seq"))
        assert attempt["done"] is False
        assert attempt["status"] == "running"
        assert attempt["index"] == 1
        assert attempt["retryAttemptName"] is None
        assert attempt["finishedAt"] is None
        aid = attempt["id"]
        tasks = (await get(s.http, f"/api/attempts/{aid}/tasks"))["tasks"]
        assert [t["fullName"] for t in tasks] == [
            "+seq",
            "+seq+first",
            "+seq+group",
            "+seq+group+inner",
            "+seq+last",
        ]
        named = by_name(tasks)
        assert named["+seq"]["parentId"] is None
        assert named["+seq"]["isGroup"] is True
        assert named["+seq+group"]["upstreams"] == [named["+seq+first"]["id"]]
        assert named["+seq+last"]["upstreams"] == [named["+seq+group"]["id"]]
        assert named["+seq+group+inner"]["parentId"] == named["+seq+group"]["id"]
        assert named["+seq+first"]["config"] == {"sh>": "echo one"}
        assert [t["state"] for t in tasks] == ["ready", "blocked", "blocked", "blocked", "blocked"]

        clock.advance(0.01)
        assert list((await _states(s, aid)).values()) == [
            "planned",
            "ready",
            "blocked",
            "blocked",
            "blocked",
        ]
        clock.advance(0.01)
        assert (await _states(s, aid))["+seq+first"] == "running"
        started = by_name((await get(s.http, f"/api/attempts/{aid}/tasks"))["tasks"])
        assert started["+seq+first"]["startedAt"] is not None
        clock.advance(1.0)
        assert list((await _states(s, aid)).values()) == [
            "planned",
            "success",
            "ready",
            "blocked",
            "blocked",
        ]
        clock.advance(0.01)
        assert list((await _states(s, aid)).values()) == [
            "planned",
            "success",
            "planned",
            "ready",
            "blocked",
        ]
        clock.advance(10)
        assert set((await _states(s, aid)).values()) == {"success"}
        done = await get(s.http, f"/api/attempts/{aid}")
        assert done["done"] is True
        assert done["success"] is True
        assert done["status"] == "success"
        # 0.01 dispatch x 4 + 1.0 + 0.5 + 1.0 of operators, replayed in order
        finished = by_name((await get(s.http, f"/api/attempts/{aid}/tasks"))["tasks"])
        assert finished["+seq"]["startedAt"] is None
        assert finished["+seq+last"]["startedAt"] is not None
        session = await get(s.http, f"/api/sessions/{done['sessionId']}")
        assert session["lastAttempt"]["done"] is True
        assert session["sessionTime"] == "2024-01-01T00:00:00+00:00"
        assert "index" not in session["lastAttempt"]


ERROR_FLOW = """
+ok:
  echo>: fine
+boom:
  fail>: it broke on ${session_date}
+never:
  echo>: unreachable
_error:
  +notify:
    echo>: cleaning up
"""


async def test_failing_workflow_runs_error_tasks() -> None:
    async with serve(dispatch_delay=0.0, tick_interval=0.01) as s:
        pid = (await push(s.http, "errs", {"err.dig": ERROR_FLOW}))["id"]
        attempt = await start(s.http, await workflow_id(s.http, pid, "err"))
        done = await wait_done(s.http, attempt["id"])
        assert done["success"] is False
        assert done["status"] == "error"
        assert done["finishedAt"] is not None
        tasks = by_name((await get(s.http, f"/api/attempts/{attempt['id']}/tasks"))["tasks"])
        assert tasks["+err+ok"]["state"] == "success"
        assert tasks["+err+boom"]["state"] == "error"
        assert tasks["+err+boom"]["error"] == {"message": "it broke on 2024-01-01"}
        assert tasks["+err+never"]["state"] == "canceled"
        assert tasks["+err^error"]["state"] == "success"
        assert tasks["+err^error"]["parentId"] == tasks["+err"]["id"]
        assert tasks["+err^error+notify"]["state"] == "success"
        assert tasks["+err"]["state"] == "group_error"
        logs = (await get(s.http, f"/api/logs/{attempt['id']}/files"))["files"]
        assert {f["taskName"] for f in logs} == {"+err+ok", "+err+boom", "+err^error+notify"}


PARALLEL = """
+fan:
  _parallel: true
  +a:
    sh>: a
  +b:
    sh>: b
  +c:
    fail>: c failed
+after:
  echo>: after
"""


async def test_parallel_children_run_together() -> None:
    seen: dict[str, set[str]] = {}

    def record(tasks: list[dict[str, Any]]) -> None:
        running = frozenset(t["fullName"] for t in tasks if t["state"] == "running")
        seen.setdefault("running", set()).update({",".join(sorted(running))})

    async with serve(task_duration=0.2, dispatch_delay=0.0) as s:
        pid = (await push(s.http, "par", {"p.dig": PARALLEL}))["id"]
        attempt = await start(s.http, await workflow_id(s.http, pid, "p"))
        done = await wait_done(s.http, attempt["id"], on_tasks=record)
        assert "+p+fan+a,+p+fan+b" in seen["running"]
        tasks = by_name((await get(s.http, f"/api/attempts/{attempt['id']}/tasks"))["tasks"])
        assert tasks["+p+fan"]["config"] == {"_parallel": True}
        assert tasks["+p+fan+b"]["upstreams"] == []
        assert tasks["+p+after"]["upstreams"] == [tasks["+p+fan"]["id"]]
        assert tasks["+p+fan+a"]["state"] == "success"
        assert tasks["+p+fan+b"]["state"] == "success"
        assert tasks["+p+fan+c"]["state"] == "error"
        assert tasks["+p+fan"]["state"] == "group_error"
        assert tasks["+p+after"]["state"] == "canceled"
        assert done["status"] == "error"


TD_FLOW = """
_export:
  td:
    database: analytics
+from_file:
  td>: queries/daily.sql
+inline:
  td>:
  query: SELECT ${session_date}
  database: other
  engine: hive
+bad:
  td>: queries/daily.sql
"""


async def test_td_tasks_run_through_the_job_runner() -> None:
    clock = FakeClock()
    async with serve(clock=clock, tick_interval=None, dispatch_delay=0.0) as s:
        files = {"td.dig": TD_FLOW, "queries/daily.sql": "SELECT COUNT(1) FROM t"}
        pid = (await push(s.http, "tdp", files))["id"]
        attempt = await start(s.http, await workflow_id(s.http, pid, "td"))
        aid = attempt["id"]
        assert s.jobs.issued == [
            {
                "id": "1000",
                "database": "analytics",
                "query": "SELECT COUNT(1) FROM t",
                "engine": "presto",
            }
        ]
        clock.advance(60)
        assert (await _states(s, aid))["+td+from_file"] == "running"
        running = by_name((await get(s.http, f"/api/attempts/{aid}/tasks"))["tasks"])
        assert running["+td+from_file"]["stateParams"]["job"]["jobId"] == "1000"
        s.jobs.status["1000"] = "success"
        tasks = by_name((await get(s.http, f"/api/attempts/{aid}/tasks"))["tasks"])
        assert tasks["+td+from_file"]["state"] == "success"
        assert tasks["+td+from_file"]["storeParams"] == {"td": {"last_job_id": "1000"}}
        assert tasks["+td+inline"]["state"] == "running"
        assert s.jobs.issued[1] == {
            "id": "1001",
            "database": "other",
            "query": "SELECT 2024-01-01",
            "engine": "hive",
        }
        s.jobs.status["1001"] = "success"
        await get(s.http, f"/api/attempts/{aid}")
        s.jobs.status["1002"] = "error"
        done = await get(s.http, f"/api/attempts/{aid}")
        assert done["done"] is True
        assert done["status"] == "error"
        tasks = by_name((await get(s.http, f"/api/attempts/{aid}/tasks"))["tasks"])
        assert tasks["+td+bad"]["state"] == "error"
        assert "1002" in tasks["+td+bad"]["error"]["message"]
        logs = (await get(s.http, f"/api/logs/{aid}/files", task="+td+from_file"))["files"]
        assert len(logs) == 1
        async with s.http.get(f"/api/logs/{aid}/files/{logs[0]['fileName']}") as resp:
            assert "job id=1000" in gzip.decompress(await resp.read()).decode()


async def test_conflict_retry_and_resume() -> None:
    flow = "+a:\n  echo>: a\n+b:\n  fail>: nope\n+c:\n  echo>: c\n"
    async with serve(dispatch_delay=0.0, tick_interval=0.01) as s:
        pid = (await push(s.http, "retry", {"r.dig": flow}))["id"]
        wid = await workflow_id(s.http, pid, "r")
        first = await start(s.http, wid)
        conflict = await start(s.http, wid, expect=409)
        assert conflict["id"] == first["id"]
        assert conflict["sessionId"] == first["sessionId"]
        assert "message" not in conflict
        failed = await wait_done(s.http, first["id"])
        assert failed["status"] == "error"

        resumed = await start(
            s.http,
            wid,
            retryAttemptName="again",
            resume={"mode": "failed", "attemptId": first["id"]},
        )
        assert resumed["sessionId"] == first["sessionId"]
        assert resumed["index"] == 2
        assert resumed["retryAttemptName"] == "again"
        tasks = by_name((await get(s.http, f"/api/attempts/{resumed['id']}/tasks"))["tasks"])
        assert tasks["+r+a"]["state"] == "success"
        assert tasks["+r+b"]["state"] in ("blocked", "ready", "running")
        await wait_done(s.http, resumed["id"])
        same_name = await start(s.http, wid, retryAttemptName="again", expect=409)
        assert same_name["id"] == resumed["id"]

        from_c = await start(
            s.http,
            wid,
            retryAttemptName="from-c",
            resume={"mode": "from", "attemptId": first["id"], "from": "+c"},
        )
        tasks = by_name((await get(s.http, f"/api/attempts/{from_c['id']}/tasks"))["tasks"])
        assert tasks["+r+a"]["state"] == "success"
        assert tasks["+r+b"]["state"] == "success"
        assert tasks["+r+c"]["state"] in ("blocked", "ready", "running")
        assert (await wait_done(s.http, from_c["id"]))["status"] == "success"
        bad_resume = await start(
            s.http,
            wid,
            retryAttemptName="x",
            resume={"mode": "from", "attemptId": first["id"], "from": "+r"},
            expect=400,
        )
        assert bad_resume["message"] == "Resuming root task is not allowed"

        retries = (await get(s.http, f"/api/attempts/{first['id']}/retries"))["attempts"]
        assert [a["index"] for a in retries] == [1, 2, 3]
        session_attempts = await get(s.http, f"/api/sessions/{first['sessionId']}/attempts")
        assert [a["index"] for a in session_attempts["attempts"]] == [3, 2, 1]
        last = await get(s.http, "/api/attempts")
        assert [a["index"] for a in last["attempts"]] == [3]
        every = await get(s.http, "/api/attempts", include_retried="true")
        assert len(every["attempts"]) == 3
        assert len((await get(s.http, "/api/attempts", include_retried="1"))["attempts"]) == 1
        await get(s.http, "/api/attempts", project="nope", expect=404)
        scoped = await get(s.http, "/api/attempts", project="retry", workflow="other")
        assert scoped == {"attempts": []}


async def test_kill() -> None:
    async with serve(task_duration=5.0, dispatch_delay=0.0, kill_delay=0.05) as s:
        pid = await push(s.http, "kill", {"k.dig": "+slow:\n  sh>: sleep 100\n+b:\n  sh>: b\n"})
        attempt = await start(s.http, await workflow_id(s.http, pid["id"], "k"))
        aid = attempt["id"]
        async with s.http.post(f"/api/attempts/{aid}/kill", json={}) as resp:
            assert resp.status == 200
            assert (await resp.json())["cancelRequested"] is False
        pending = await get(s.http, f"/api/attempts/{aid}")
        assert pending["cancelRequested"] is True
        assert pending["status"] == "canceling"
        done = await wait_done(s.http, aid)
        assert done["status"] == "killed"
        assert done["success"] is False
        states = await _states(s, aid)
        assert set(states.values()) == {"canceled"}
        async with s.http.post(f"/api/attempts/{aid}/kill") as resp:
            assert resp.status == 409
            assert await resp.json() == {
                "message": "Session attempt already killed or finished",
                "status": 409,
            }


async def test_paging_of_sessions_and_attempts() -> None:
    async with serve(dispatch_delay=0.0) as s:
        pid = (await push(s.http, "pages", {"w.dig": "+t:\n  echo>: x\n"}))["id"]
        wid = await workflow_id(s.http, pid, "w")
        for day in range(1, 6):
            await start(s.http, wid, session_time=f"2024-01-0{day}T00:00:00Z")
        sessions = (await get(s.http, "/api/sessions", page_size=2))["sessions"]
        assert [x["sessionTime"][:10] for x in sessions] == ["2024-01-05", "2024-01-04"]
        rest = (await get(s.http, "/api/sessions", last_id=sessions[-1]["id"]))["sessions"]
        assert [x["sessionTime"][:10] for x in rest] == ["2024-01-03", "2024-01-02", "2024-01-01"]
        assert (await get(s.http, "/api/sessions", last_id=rest[-1]["id"])) == {"sessions": []}
        too_big = await get(s.http, "/api/sessions", page_size=101, expect=400)
        assert too_big == {
            "message": "Your specified page_size is Optional.of(101), but it is larger than "
            "MAX_PAGE_SIZE: 100. You must specify page_size with a number which is smaller "
            "than 100.",
            "status": 400,
        }
        await get(s.http, "/api/attempts", page_size=101, expect=400)
        project_sessions = await get(s.http, f"/api/projects/{pid}/sessions", page_size=1)
        assert len(project_sessions["sessions"]) == 1
        assert (await get(s.http, f"/api/projects/{pid}/sessions", workflow="zzz")) == {
            "sessions": []
        }
        attempts = (await get(s.http, "/api/attempts", page_size=3))["attempts"]
        assert [int(a["id"]) for a in attempts] == [5, 4, 3]
        more = (await get(s.http, "/api/attempts", last_id=attempts[-1]["id"]))["attempts"]
        assert [int(a["id"]) for a in more] == [2, 1]
        async with s.http.get("/api/sessions", params={"page_size": "many"}) as resp:
            assert resp.status == 404


async def test_logs_and_direct_urls() -> None:
    flow = "+hello:\n  echo>: hello ${session_date}\n+bye:\n  echo>: bye\n"
    async with serve(dispatch_delay=0.0) as s:
        pid = (await push(s.http, "logs", {"l.dig": flow}))["id"]
        attempt = await start(s.http, await workflow_id(s.http, pid, "l"))
        await wait_done(s.http, attempt["id"])
        files = (await get(s.http, f"/api/logs/{attempt['id']}/files"))["files"]
        assert [f["taskName"] for f in files] == ["+l+bye", "+l+hello"]
        hello = files[1]
        assert hello["fileName"].startswith("+l+hello@")
        assert hello["fileName"].endswith(".log.gz")
        assert hello["fileTime"].endswith("Z")
        assert hello["direct"].startswith("http://127.0.0.1:")
        filtered = (await get(s.http, f"/api/logs/{attempt['id']}/files", task="+l+h"))["files"]
        assert [f["taskName"] for f in filtered] == ["+l+hello"]
        no_direct = await get(s.http, f"/api/logs/{attempt['id']}/files", direct_download="false")
        assert {f["direct"] for f in no_direct["files"]} == {None}
        async with s.http.get(f"/api/logs/{attempt['id']}/files/{hello['fileName']}") as resp:
            assert resp.content_type == "application/gzip"
            assert "Content-Encoding" not in resp.headers
            data = await resp.read()
        assert len(data) == hello["fileSize"]
        assert "hello 2024-01-01" in gzip.decompress(data).decode()
        async with aiohttp.ClientSession() as anonymous, anonymous.get(hello["direct"]) as resp:
            assert await resp.read() == data
        await get(s.http, f"/api/logs/{attempt['id']}/files/nope.log.gz", expect=404)


async def test_many_concurrent_attempts_are_cheap() -> None:
    async with serve(task_duration=0.05, dispatch_delay=0.0, tick_interval=0.02) as s:
        flow = "+a:\n  sh>: a\n+b:\n  echo>: b\n"
        pid = (await push(s.http, "many", {"m.dig": flow}))["id"]
        wid = await workflow_id(s.http, pid, "m")
        ids = [
            (await start(s.http, wid, session_time=f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z"))[
                "id"
            ]
            for i in range(500)
        ]
        await wait_done(s.http, ids[-1])
        for _ in range(200):
            if not s.service._active:
                break
            await asyncio.sleep(0.02)
        assert not s.service._active, "the ticker advances attempts nobody reads"
        attempts = (await get(s.http, "/api/attempts", page_size=100))["attempts"]
        assert {a["status"] for a in attempts} == {"success"}
