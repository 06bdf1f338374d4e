"""Projects, workflows, secrets, archives and schedules of the Workflow emulator over HTTP."""

from __future__ import annotations

import aiohttp
from yarl import URL

from tests.emulator._workflow_support import archive, get, push, serve, start, workflow_id

BASIC = {
    "basic.dig": "timezone: Asia/Tokyo\n+hello:\n  echo>: hello ${session_date}\n",
    "other.dig": "+x:\n  sh>: echo x\n",
    "sub/nested.dig": "+ignored:\n  echo>: no\n",
    "queries/q.sql": "SELECT 1",
}


async def test_push_list_get_delete() -> None:
    async with serve() as s:
        project = await push(s.http, "demo", BASIC)
        assert project["name"] == "demo"
        assert project["revision"] == "r1"
        assert project["deletedAt"] is None
        assert project["archiveMd5"]
        assert project["createdAt"].endswith("Z")
        pid = project["id"]
        assert isinstance(pid, str)
        again = await push(s.http, "demo", BASIC, revision="r2")
        assert again["id"] == pid
        assert again["revision"] == "r2"
        await push(s.http, "demo2", BASIC)

        listed = await get(s.http, "/api/projects")
        assert [p["name"] for p in listed["projects"]] == ["demo", "demo2"]
        assert (await get(s.http, "/api/projects", name="nope")) == {"projects": []}
        assert len((await get(s.http, "/api/projects", name="demo"))["projects"]) == 1
        page = await get(s.http, "/api/projects", count=1, last_id=pid)
        assert [p["name"] for p in page["projects"]] == ["demo2"]
        assert len((await get(s.http, "/api/projects", name_pattern="mo2"))["projects"]) == 1

        revisions = await get(s.http, f"/api/projects/{pid}/revisions")
        assert [r["revision"] for r in revisions["revisions"]] == ["r2", "r1"]

        workflows = (await get(s.http, f"/api/projects/{pid}/workflows"))["workflows"]
        assert [w["name"] for w in workflows] == ["basic", "other"]
        basic = workflows[0]
        assert basic["timezone"] == "Asia/Tokyo"
        assert basic["config"] == {"+hello": {"echo>": "hello ${session_date}"}}
        assert basic["project"] == {"id": pid, "name": "demo"}
        old = await get(s.http, f"/api/projects/{pid}/workflows", revision="r1")
        assert old["workflows"][0]["id"] != basic["id"]
        await get(s.http, f"/api/projects/{pid}/workflows", revision="r9", expect=404)
        one = await get(s.http, f"/api/projects/{pid}/workflows/other")
        assert one["timezone"] == "UTC"
        assert (await get(s.http, f"/api/workflows/{one['id']}")) == one

        deleted = await get(s.http, f"/api/projects/{pid}")
        async with s.http.delete(f"/api/projects/{pid}") as resp:
            assert resp.status == 200
            assert await resp.json() == deleted
        gone = await get(s.http, f"/api/projects/{pid}", expect=404)
        assert gone["status"] == 404
        assert "already deleted" in gone["message"]
        assert [p["name"] for p in (await get(s.http, "/api/projects"))["projects"]] == ["demo2"]


async def test_push_validation() -> None:
    async with serve(max_archive_size=4096) as s:
        await push(s.http, "9lives", BASIC, expect=400)
        await push(s.http, "x.dig", BASIC, expect=400)
        await push(s.http, "ok", {"bad.dig": "+a: [1, 2"}, expect=400)
        await push(s.http, "ok", {"bad.dig": "schedule:\n  yearly>: 1\n"}, expect=400)
        await push(s.http, "ok", BASIC)
        conflict = await push(s.http, "ok", BASIC, expect=409)
        assert conflict == {
            "message": "Resource already exists: revision=r1 in project id=1",
            "status": 409,
        }
        body = archive(BASIC)
        async with s.http.put(
            "/api/projects",
            params={"project": "ok", "revision": "r3"},
            data=body,
            headers={"Content-Type": "application/octet-stream"},
        ) as resp:
            assert resp.status == 400
        async with s.http.put(
            "/api/projects",
            params={"project": "ok", "revision": "r3"},
            data=b"not gzip",
            headers={"Content-Type": "application/gzip"},
        ) as resp:
            assert resp.status == 400
        big = archive({"a.dig": "+a:\n  echo>: x\n", "blob": bytes(range(256)) * 64})
        async with s.http.put(
            "/api/projects",
            params={"project": "ok", "revision": "r4"},
            data=big,
            headers={"Content-Type": "application/gzip"},
        ) as resp:
            assert resp.status == 400
            assert "exceeds limit (4096 bytes)" in (await resp.json())["message"]
        async with s.http.put(
            "/api/projects",
            params={"revision": "r5"},
            data=body,
            headers={"Content-Type": "application/gzip"},
        ) as resp:
            assert (await resp.json())["message"] == "project= is required"
        await push(s.http, "ok", BASIC, revision="r6", clear_schedule="nope", expect=400)


async def test_errors_and_ids() -> None:
    async with serve() as s:
        missing = await get(s.http, "/api/projects/-1", expect=404)
        assert missing == {"message": "Resource does not exist: project id=-1", "status": 404}
        async with s.http.get("/api/projects/no_such_id") as resp:
            assert resp.status == 404
        await get(s.http, "/api/attempts/77", expect=404)
        await get(s.http, "/api/workflows/77", expect=404)
        await get(s.http, "/api/sessions/77", expect=404)
        await get(s.http, "/api/schedules/77", expect=404)
        assert (await get(s.http, "/api/version")) == {"version": "0.10.5"}
        check = await get(s.http, "/api/version/check", client="0.10.5")
        assert check["apiCompatible"] is True
        bad = await get(s.http, "/api/workflows", order="up", expect=400)
        assert bad["message"] == "parameter 'order' must be either 'asc' or 'desc'"


async def test_workflows_listing() -> None:
    async with serve() as s:
        await push(s.http, "alpha", {"a1.dig": "+t:\n  echo>: 1\n", "a2.dig": "+t:\n  echo>: 2\n"})
        await push(s.http, "beta", {"b1.dig": "+t:\n  echo>: 3\n"})
        await push(s.http, "beta", {"b1.dig": "+t:\n  echo>: 4\n"}, revision="r2")
        listed = (await get(s.http, "/api/workflows"))["workflows"]
        assert [w["name"] for w in listed] == ["a1", "a2", "b1"]
        assert listed[2]["revision"] == "r2"
        desc = (await get(s.http, "/api/workflows", order="desc", count=2))["workflows"]
        assert [w["name"] for w in desc] == ["b1", "a2"]
        after = (await get(s.http, "/api/workflows", last_id=listed[0]["id"]))["workflows"]
        assert [w["name"] for w in after] == ["a2", "b1"]
        by_project = await get(
            s.http, "/api/workflows", name_pattern="bet", search_project_name="true"
        )
        assert [w["name"] for w in by_project["workflows"]] == ["b1"]
        truncated = await get(
            s.http,
            f"/api/workflows/{listed[0]['id']}/truncated_session_time",
            session_time="2024-03-04T05:06:07",
            mode="hour",
        )
        assert truncated["sessionTime"] == "2024-03-04T05:00:00+00:00"
        assert truncated["timezone"] == "UTC"


async def test_secrets() -> None:
    async with serve() as s:
        pid = (await push(s.http, "sec", BASIC))["id"]
        async with s.http.put(f"/api/projects/{pid}/secrets/td.apikey", json={"value": "k"}) as r:
            assert await r.json() == {"key": "td.apikey", "project": {"id": pid, "name": "sec"}}
        for key, value in (("1bad", "v"), ("bad.", "v"), ("ok", "x" * (16 * 1024 + 1))):
            async with s.http.put(f"/api/projects/{pid}/secrets/{key}", json={"value": value}) as r:
                assert r.status == 400
                assert (await r.json())["message"] == "Invalid secret"
        listed = await get(s.http, f"/api/projects/{pid}/secrets/")
        assert listed == {"secrets": [{"key": "td.apikey"}]}
        for key in ("td.apikey", "never.set"):
            async with s.http.delete(f"/api/projects/{pid}/secrets/{key}") as r:
                assert r.status == 200
        assert (await get(s.http, f"/api/projects/{pid}/secrets")) == {"secrets": []}


async def test_archive_download_and_redirect() -> None:
    async with serve() as s:
        pid = (await push(s.http, "arc", BASIC))["id"]
        direct = archive(BASIC)
        async with s.http.get(
            f"/api/projects/{pid}/archive", params={"direct_download": "false"}
        ) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/gzip"
            stored = await resp.read()
        assert len(stored) == len(direct)
        async with s.http.get(f"/api/projects/{pid}/archive", allow_redirects=False) as resp:
            assert resp.status == 303
            location = resp.headers["Location"]
        storage, api = URL(location), URL(str(resp.url))
        assert (storage.host, storage.scheme) == (api.host, api.scheme)
        assert storage.port != api.port  # another origin: the key must not follow the redirect
        assert storage.port == s.service.storage.port
        async with aiohttp.ClientSession() as anonymous, anonymous.get(location) as resp:
            assert resp.status == 200
            assert await resp.read() == stored
        await get(s.http, f"/api/projects/{pid}/archive", revision="nope", expect=404)


async def test_schedules() -> None:
    daily = "timezone: Asia/Tokyo\nschedule:\n  daily>: 07:00:00\n+t:\n  echo>: hi\n"
    async with serve() as s:
        pid = (await push(s.http, "sched", {"d.dig": daily, "n.dig": "+t:\n  echo>: x\n"}))["id"]
        schedules = (await get(s.http, "/api/schedules"))["schedules"]
        assert len(schedules) == 1
        sched = schedules[0]
        assert sched["workflow"]["name"] == "d"
        assert sched["nextScheduleTime"].endswith("T00:00:00+09:00")
        assert sched["nextRunTime"].endswith("T22:00:00Z")
        assert sched["disabledAt"] is None
        assert (await get(s.http, f"/api/projects/{pid}/schedules"))["schedules"] == schedules
        assert (await get(s.http, f"/api/schedules/{sched['id']}")) == sched
        sid = sched["id"]

        async with s.http.post(f"/api/schedules/{sid}/disable", json={}) as resp:
            disabled = await resp.json()
        assert disabled["disabledAt"] is not None
        assert "createdAt" in disabled
        async with s.http.post(f"/api/schedules/{sid}/enable", json={}) as resp:
            assert (await resp.json())["disabledAt"] is None

        async with s.http.post(
            f"/api/schedules/{sid}/skip", json={"nextTime": "2099-01-05T00:00:00", "dryRun": True}
        ) as resp:
            dry = await resp.json()
        assert dry["nextScheduleTime"] == "2099-01-05T00:00:00+09:00"
        assert (await get(s.http, f"/api/schedules/{sid}"))["nextScheduleTime"] == (
            sched["nextScheduleTime"]
        )
        async with s.http.post(
            f"/api/schedules/{sid}/skip", json={"nextTime": "2000-01-01T00:00:00", "dryRun": False}
        ) as resp:
            assert resp.status == 409
            assert (await resp.json())[
                "message"
            ] == "Specified time to skip schedules is already past"
        async with s.http.post(f"/api/schedules/{sid}/skip", json={"dryRun": False}) as resp:
            assert resp.status == 400

        async with s.http.post(
            f"/api/schedules/{sid}/backfill",
            json={
                "fromTime": sched["nextScheduleTime"][:10] + "T00:00:00+09:00",
                "dryRun": True,
                "attemptName": "bf",
                "count": 0,
            },
        ) as resp:
            assert resp.status == 200
            filled = await resp.json()
        assert filled["id"] == sid
        assert filled["attempts"] == []
        async with s.http.post(
            f"/api/schedules/{sid}/backfill",
            json={
                "fromTime": "2020-01-01T00:00:00+09:00",
                "dryRun": True,
                "attemptName": "bf",
                "count": 2,
            },
        ) as resp:
            dry_fill = await resp.json()
        assert [a["sessionTime"] for a in dry_fill["attempts"]] == [
            "2020-01-01T00:00:00+09:00",
            "2020-01-02T00:00:00+09:00",
        ]
        assert {a["id"] for a in dry_fill["attempts"]} == {"0"}
        async with s.http.post(
            f"/api/schedules/{sid}/backfill",
            json={
                "fromTime": "2020-01-01T00:00:00+09:00",
                "dryRun": False,
                "attemptName": "bf",
                "count": 1,
            },
        ) as resp:
            real = await resp.json()
        attempt = real["attempts"][0]
        assert attempt["retryAttemptName"] == "bf"
        assert attempt["params"]["next_session_time"] == "2020-01-02T00:00:00+09:00"
        async with s.http.post(
            f"/api/schedules/{sid}/backfill",
            json={
                "fromTime": "2020-01-01T00:00:00+09:00",
                "dryRun": False,
                "attemptName": "bf",
                "count": 1,
            },
        ) as resp:
            assert resp.status == 409

        await push(s.http, "sched", {"n.dig": "+t:\n  echo>: x\n"}, revision="r2")
        assert (await get(s.http, "/api/schedules"))["schedules"] == []


async def test_td_start_by_project_and_workflow_name() -> None:
    async with serve() as s:
        await push(s.http, "named", BASIC)
        async with s.http.put(
            "/api/attempts",
            json={
                "projectName": "named",
                "workflowName": "other",
                "sessionTime": "2024-01-01T00:00:00+09:00",
                "params": {},
                "poolId": 42,
            },
        ) as resp:
            attempt = await resp.json()
        assert attempt["workflow"]["name"] == "other"
        assert attempt["poolId"] == "42"
        assert attempt["sessionTime"] == "2023-12-31T15:00:00+00:00"
        wid = await workflow_id(s.http, attempt["project"]["id"], "basic")
        local = await start(s.http, wid, session_time="2024-01-01T00:00:00", expect=400)
        assert local["status"] == 400
        await start(s.http, "999", expect=404)
