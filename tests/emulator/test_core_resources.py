"""Bulk import, schedules, saved results and users on the emulator; serving modes."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import subprocess
import sys
import urllib.request

import aiohttp
import msgpack
import pytest

from aiotd.testing import Emulator, ListingCount
from aiotd.testing.pytest_plugin import td_emulator, td_emulator_options, td_emulator_thread
from tests.emulator._core_support import Api, api, emu, loaded, msgpack_gz

__all__ = ["api", "emu", "loaded", "td_emulator", "td_emulator_options", "td_emulator_thread"]


async def test_bulk_import_session(loaded: Api) -> None:
    ref = {"name": "bi_a", "bulk_import": "bi_a"}
    assert await loaded.ok("POST", "/v3/bulk_import/create/bi_a/db1/events", data={}) == ref
    assert (await loaded.post("/v3/bulk_import/create/bi_a/db1/events"))[0] == 409
    assert (await loaded.post("/v3/bulk_import/create/b/db1/events"))[0] == 422
    assert (await loaded.post("/v3/bulk_import/create/bi_b/db1/nope"))[0] == 404
    part = msgpack_gz([{"time": 5, "k": 1}, {"time": 6, "k": 2}, {"no_time": 1}])
    assert await loaded.ok("PUT", "/v3/bulk_import/upload_part/bi_a/p1", data=part) == ref
    await loaded.ok("PUT", "/v3/bulk_import/upload_part/bi_a/p2", data=part)
    await loaded.ok("POST", "/v3/bulk_import/delete_part/bi_a/p2", data={})
    parts = await loaded.ok("GET", "/v3/bulk_import/list_parts/bi_a")
    assert parts == {"parts": ["p1"], "name": "bi_a", "bulk_import": "bi_a"}
    assert (await loaded.post("/v3/bulk_import/commit/bi_a"))[0] == 400
    await loaded.ok("POST", "/v3/bulk_import/freeze/bi_a", data={})
    shown = await loaded.ok("GET", "/v3/bulk_import/show/bi_a")
    assert shown["upload_frozen"] is True
    assert (await loaded.call("PUT", "/v3/bulk_import/upload_part/bi_a/p3", data=part))[0] == 400
    await loaded.ok("POST", "/v3/bulk_import/unfreeze/bi_a", data={})
    await loaded.ok("POST", "/v3/bulk_import/freeze/bi_a", data={})
    performed = await loaded.ok("POST", "/v3/bulk_import/perform/bi_a", data={})
    assert isinstance(performed["job_id"], int)
    job = await loaded.wait(str(performed["job_id"]))
    assert job["type"] == "bulk_import_perform"
    shown = await loaded.ok("GET", "/v3/bulk_import/show/bi_a")
    assert (shown["status"], shown["valid_records"], shown["error_records"]) == ("ready", 2, 2)
    assert shown["job_id"] == str(performed["job_id"])
    assert await loaded.ok("POST", "/v3/bulk_import/commit/bi_a", data={}) == ref
    # TD commits in the background: the session shows committing, the rows are not in yet.
    assert (await loaded.ok("GET", "/v3/bulk_import/show/bi_a"))["status"] == "committing"
    assert (await loaded.ok("GET", "/v3/table/show/db1/events"))["count"] == 10
    assert await loaded.ok("POST", "/v3/bulk_import/commit/bi_a", data={}) == ref
    await asyncio.sleep(loaded.emu.core.bulk_import_commit_time + 0.05)
    # The rows land when the commit ends, whether or not the session is looked at.
    assert (await loaded.ok("GET", "/v3/table/show/db1/events"))["count"] == 12
    assert (await loaded.ok("GET", "/v3/bulk_import/show/bi_a"))["status"] == "committed"
    errors = await loaded.ok("GET", "/v3/bulk_import/error_records/bi_a")
    assert list(msgpack.Unpacker(io.BytesIO(gzip.decompress(errors)), raw=False)) == [
        {"no_time": 1},
        {"no_time": 1},
    ]
    listed = await loaded.ok("GET", "/v3/bulk_import/list")
    assert [b["name"] for b in listed["bulk_imports"]] == ["bi_a"]
    assert await loaded.ok("POST", "/v3/bulk_import/delete/bi_a", data={}) == ref
    assert (await loaded.get("/v3/bulk_import/show/bi_a"))[0] == 404


async def test_schedules(loaded: Api) -> None:
    form = {"type": "presto", "query": "SELECT 1", "database": "db1", "cron": "0 3 * * *"}
    created = await loaded.ok("POST", "/v3/schedule/create/daily_one", data=form)
    assert created["cron"] == "0 3 * * *"
    assert created["start"].endswith("03:00:00 UTC")
    assert isinstance(created["id"], int)
    assert (await loaded.post("/v3/schedule/create/daily_one", form))[0] == 409
    status, err = await loaded.post("/v3/schedule/create/x", form)
    assert (status, err["message"]) == (422, "Validation failed: Name is too short")
    updated = await loaded.ok("POST", "/v3/schedule/update/daily_one", data={"priority": "1"})
    assert updated["priority"] == 1
    listed = (await loaded.ok("GET", "/v3/schedule/list"))["schedules"]
    assert listed[0]["next_time"].endswith("T03:00:00Z")
    run = await loaded.ok("POST", "/v3/schedule/run/daily_one/1700000000", data={"num": "2"})
    # 1700000000 is 2023-11-14 22:13:20 UTC: the runs are the cron's last two times by then.
    assert [j["scheduled_at"] for j in run["jobs"]] == [
        "2023-11-14 03:00:00 UTC",
        "2023-11-13 03:00:00 UTC",
    ]
    assert all(isinstance(j["job_id"], int) for j in run["jobs"])
    history = await loaded.ok("GET", "/v3/schedule/history/daily_one")
    assert history["count"] == 2
    assert history["history"][0]["scheduled_at"] == "2023-11-13 03:00:00 UTC"
    deleted = await loaded.ok("POST", "/v3/schedule/delete/daily_one", data={})
    assert deleted["name"] == "daily_one"
    assert (await loaded.post("/v3/schedule/delete/daily_one"))[0] == 404


async def test_schedule_run_follows_the_cron_in_its_timezone(loaded: Api) -> None:
    form = {
        "type": "presto",
        "query": "SELECT ${TD_SCHEDULED_TIME}",
        "database": "db1",
        "cron": "0 9 * * *",
        "timezone": "Asia/Tokyo",
    }
    created = await loaded.ok("POST", "/v3/schedule/create/tokyo_9am", data=form)
    assert created["start"].endswith(" 00:00:00 UTC")  # 09:00 in Tokyo
    # 1700000000 is 2023-11-14 22:13:20 UTC, 2023-11-15 07:13:20 in Tokyo.
    run = await loaded.ok("POST", "/v3/schedule/run/tokyo_9am/1700000000", data={"num": "3"})
    assert [j["scheduled_at"] for j in run["jobs"]] == [
        "2023-11-14 00:00:00 UTC",
        "2023-11-13 00:00:00 UTC",
        "2023-11-12 00:00:00 UTC",
    ]
    shown = await loaded.ok("GET", f"/v3/job/show/{run['jobs'][0]['job_id']}")
    assert shown["query"] == "SELECT 1699920000"
    form = {"query": "SELECT 1", "database": "db1", "cron": "0 0 13 * 5"}
    await loaded.ok("POST", "/v3/schedule/create/friday_or_13th", data=form)
    run = await loaded.ok("POST", "/v3/schedule/run/friday_or_13th/1700000000", data={"num": "3"})
    # As cron reads it: the 13th or a Friday (2023-11-10 was a Friday, 11-13 a Monday).
    assert [j["scheduled_at"][:10] for j in run["jobs"]] == [
        "2023-11-13",
        "2023-11-10",
        "2023-11-03",
    ]


async def test_schedule_run_without_cron_is_at_the_minute_asked(loaded: Api) -> None:
    await loaded.ok("POST", "/v3/schedule/create/by_hand", data={"query": "SELECT 1"})
    run = await loaded.ok("POST", "/v3/schedule/run/by_hand/1493207857", data={})
    # samples/v3/schedule_run.json: scheduled_at falls on the minute.
    assert [j["scheduled_at"] for j in run["jobs"]] == ["2017-04-26 11:57:00 UTC"]


async def test_schedule_cron_and_timezone_are_checked(loaded: Api) -> None:
    form = {"query": "SELECT 1", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}
    status, body = await loaded.post("/v3/schedule/create/bad_tz", form)
    assert (status, body) == (
        422,
        {"message": "Validation failed: Timezone is invalid: Mars/Olympus"},
    )
    await loaded.ok("POST", "/v3/schedule/create/good", data={"query": "SELECT 1"})
    status, _ = await loaded.post("/v3/schedule/update/good", {"cron": "0 0 31 2 *"})
    assert status == 422
    listed = (await loaded.ok("GET", "/v3/schedule/list"))["schedules"]
    assert [(s["name"], s["cron"]) for s in listed] == [("good", None)]


@pytest.mark.parametrize(
    ("meaning", "cap", "want"),
    [
        # 6 runs; the page asked is from=1 to=5 (4 runs, ``to`` exclusive).
        ("page", None, (4, 4)),
        ("span", None, (4, 4)),
        ("total", None, (6, 4)),
        ("page", 3, (3, 3)),
        ("span", 3, (4, 3)),
        ("total", 3, (6, 3)),
    ],
)
async def test_schedule_history_count_meanings_and_page_cap(
    emu: Emulator, loaded: Api, meaning: ListingCount, cap: int | None, want: tuple[int, int]
) -> None:
    form = {"type": "presto", "query": "SELECT 1", "database": "db1", "cron": "0 * * * *"}
    await loaded.ok("POST", "/v3/schedule/create/hourly", data=form)
    run = await loaded.ok("POST", "/v3/schedule/run/hourly/1700000000", data={"num": "6"})
    emu.core.job_list_count, emu.core.job_list_page_cap = meaning, cap
    page = await loaded.ok("GET", "/v3/schedule/history/hourly", params={"from": "1", "to": "5"})
    assert (page["count"], len(page["history"])) == want
    newest_first = [str(j["job_id"]) for j in reversed(run["jobs"])]
    assert [j["job_id"] for j in page["history"]] == newest_first[1 : 1 + want[1]]


async def test_saved_results(api: Api) -> None:
    assert (await api.post("/v3/result/create/res_a", {}))[0] == 422
    created = await api.ok("POST", "/v3/result/create/res_a", data={"url": "td://@/a/b"})
    assert created["result"] == "res_a"
    assert (await api.post("/v3/result/create/res_a", {"url": "td://@/a/b"}))[0] == 409
    listed = await api.ok("GET", "/v3/result/list")
    assert listed == {"results": [{"name": "res_a", "url": "td://@/a/b", "organization": None}]}
    await api.ok("POST", "/v3/result/delete/res_a", data={})
    assert (await api.post("/v3/result/delete/res_a"))[0] == 404


async def test_users_and_apikeys(api: Api) -> None:
    await api.ok("POST", "/v3/user/add/alice", data={"email": "a@x.io", "password": "pw"})
    users = (await api.ok("GET", "/v3/user/list"))["users"]
    assert [u["name"] for u in users] == ["Emulator User", "alice"]
    assert users[1]["email"] == "a@x.io"
    (key,) = (await api.ok("GET", "/v3/user/apikey/list/alice"))["apikeys"]
    added = (await api.ok("POST", "/v3/user/apikey/add/alice", data={}))["apikey"]
    other = {"Authorization": f"TD1 {added}"}
    assert (await api.get("/v3/database/list", auth=False, headers=other))[0] == 200
    auth = await api.ok("POST", "/v3/user/authenticate", data={"user": "a@x.io", "password": "pw"})
    assert auth == {"name": "alice", "apikey": key}
    assert (await api.post("/v3/user/authenticate", {"user": "alice", "password": "no"}))[0] == 400
    await api.ok("POST", "/v3/user/apikey/remove/alice", data={"apikey": added})
    assert (await api.get("/v3/database/list", auth=False, headers=other))[0] == 401
    assert await api.ok("POST", "/v3/user/remove/alice", data={}) == {"user": "alice"}
    assert (await api.get("/v3/user/apikey/list/alice"))[0] == 404


async def test_pytest_plugin_fixture(td_emulator: Emulator) -> None:
    url = td_emulator.url + "/v3/system/server_status"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert await resp.json() == {"status": "ok"}


def test_thread_mode_fixture(td_emulator_thread: Emulator) -> None:
    request = urllib.request.Request(
        td_emulator_thread.url + "/v3/database/list",
        headers={"Authorization": f"TD1 {td_emulator_thread.apikey}"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        listed = json.loads(resp.read())["databases"]
    assert [d["name"] for d in listed] == ["sample_datasets"]


async def test_serve_prints_url_first_and_uses_the_key() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiotd.testing",
        "--port",
        "0",
        "--apikey",
        "1/" + "a" * 40,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert line.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": "TD1 1/" + "a" * 40}
            async with session.get(line + "/v3/database/list", headers=headers) as resp:
                assert resp.status == 200
            async with session.get(line + "/v3/database/list") as resp:
                assert resp.status == 401
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_workflow_hook_when_the_module_exists(emu: Emulator) -> None:
    try:
        import aiotd.testing._workflow  # noqa: F401
    except ModuleNotFoundError:
        assert emu.workflow is None
    else:
        assert emu.workflow is not None
        assert any(
            r.resource is not None and r.resource.canonical.startswith("/api/")
            for r in emu.app.router.routes()
        )
