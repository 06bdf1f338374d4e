"""Jobs on the emulator: lifecycle, domain_key, kill, listing, SQL, results and Range."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import re
import time

import aiohttp
import msgpack
import pytest

from aiotd.testing import Emulator, ListingCount
from tests.emulator._core_support import Api, api, emu, loaded

__all__ = ["api", "emu", "loaded"]

JOB_KEYS = {
    "query", "type", "priority", "retry_limit", "duration", "status", "cpu_time", "result_size",
    "job_id", "created_at", "updated_at", "start_at", "end_at", "num_records", "database",
    "user_name", "result", "url", "hive_result_schema", "organization",
    "linked_result_export_job_id", "result_export_target_job_id",
}  # fmt: skip
STATUS_KEYS = {
    "job_id", "status", "created_at", "updated_at", "start_at", "end_at", "duration",
    "cpu_time", "result_size", "num_records",
}  # fmt: skip
TD_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


async def test_issue_and_lifecycle(loaded: Api) -> None:
    job_id = await loaded.issue("-- emulator: queued=0.2 duration=0.3\nSELECT n FROM events")
    body = await loaded.ok("GET", f"/v3/job/status/{job_id}")
    assert set(body) == STATUS_KEYS
    assert body["status"] == "queued"
    assert (body["start_at"], body["end_at"], body["result_size"]) == (None, None, None)
    await asyncio.sleep(0.3)
    body = await loaded.ok("GET", f"/v3/job/status/{job_id}")
    assert body["status"] == "running"
    assert TD_TIME.fullmatch(body["start_at"])
    assert body["end_at"] is None
    shown = await loaded.wait(job_id)
    assert set(shown) == JOB_KEYS | {"debug"}
    assert shown["status"] == "success"
    assert shown["job_id"] == job_id
    assert shown["num_records"] == 10
    assert shown["cpu_time"] is None
    assert json.loads(shown["hive_result_schema"]) == [["n", "bigint"]]
    assert shown["result"] == ""
    assert shown["debug"]["stderr"] is None
    assert "executing query" in shown["debug"]["cmdout"]
    assert all(TD_TIME.fullmatch(shown[k]) for k in ("created_at", "start_at", "end_at"))


async def test_issue_response_and_parameters(loaded: Api) -> None:
    body = await loaded.ok(
        "POST",
        "/v3/job/issue/hive/db1",
        data={"query": "SELECT 1", "priority": "2", "retry_limit": "3", "result": "td://@/a/b"},
    )
    assert set(body) == {"job", "job_id", "database"}
    assert body["job"] == body["job_id"]
    assert isinstance(body["job_id"], str)
    shown = await loaded.wait(body["job_id"])
    assert (shown["type"], shown["priority"], shown["retry_limit"]) == ("hive", 2, 3)
    assert shown["result"] == "td://@/a/b"
    assert isinstance(shown["cpu_time"], int)
    assert (await loaded.post("/v3/job/issue/presto/nodb", {"query": "SELECT 1"}))[0] == 404
    assert (await loaded.post("/v3/job/issue/presto/db1", {}))[0] == 400
    assert (await loaded.post("/v3/job/issue/spark/db1", {"query": "SELECT 1"}))[0] == 404


async def test_domain_key_conflict(loaded: Api) -> None:
    first = await loaded.issue("SELECT 1", domain_key="key-1")
    status, body = await loaded.post(
        "/v3/job/issue/presto/db1", {"query": "SELECT 1", "domain_key": "key-1"}
    )
    assert status == 409
    assert body["details"] == {"conflicts_with": first}
    assert set(body) == {"message", "details"}
    by_key = await loaded.ok("GET", "/v3/job/status_by_domain_key/key-1")
    assert by_key["job_id"] == first
    assert (await loaded.get("/v3/job/status_by_domain_key/nope"))[0] == 404


async def test_kill(loaded: Api) -> None:
    job_id = await loaded.issue("-- emulator: queued=5\nSELECT 1")
    killed = await loaded.ok("POST", f"/v3/job/kill/{job_id}", data={})
    assert killed == {"job_id": job_id, "former_status": "queued"}
    status = await loaded.ok("GET", f"/v3/job/status/{job_id}")
    assert status["status"] == "killed"
    assert status["result_size"] is None
    again = await loaded.ok("POST", f"/v3/job/kill/{job_id}", data={})
    assert again["former_status"] == "killed"
    assert (await loaded.get(f"/v3/job/result/{job_id}", params={"format": "json"}))[0] == 404
    assert (await loaded.post("/v3/job/kill/999999"))[0] == 404


async def test_sql_failure_ends_error_with_stderr(loaded: Api) -> None:
    job_id = await loaded.issue("SELECT no_such_column FROM events")
    shown = await loaded.wait(job_id)
    assert shown["status"] == "error"
    assert "no_such_column" in shown["debug"]["stderr"]
    assert shown["hive_result_schema"] is None


async def test_control_comment_error_and_message(loaded: Api) -> None:
    job_id = await loaded.issue('-- emulator: status=error message="boom here"\nSELECT 1')
    shown = await loaded.wait(job_id)
    assert (shown["status"], shown["debug"]["stderr"]) == ("error", "boom here")
    status, body = await loaded.post(
        "/v3/job/issue/presto/db1", {"query": "-- emulator: bogus=1\nSELECT 1"}
    )
    assert status == 400
    assert "bogus" in body["message"]


async def test_sql_over_imported_rows_and_td_functions(loaded: Api) -> None:
    job_id = await loaded.issue(
        "SELECT COUNT(*) AS c, SUM(n) AS total, approx_distinct(s) AS d FROM events "
        "WHERE TD_TIME_RANGE(time, 1700000002, 1700000007)"
    )
    await loaded.wait(job_id)
    raw = await loaded.ok("GET", f"/v3/job/result/{job_id}", params={"format": "json"})
    assert raw == b"[5,20,5]\n"
    job_id = await loaded.issue(
        "SELECT TD_TIME_FORMAT(time, 'yyyy-MM-dd HH:mm:ss') FROM db1.events LIMIT 1"
    )
    await loaded.wait(job_id)
    raw = await loaded.ok("GET", f"/v3/job/result/{job_id}", params={"format": "json"})
    assert json.loads(raw) == ["2023-11-14 22:13:20"]


async def test_result_formats(loaded: Api) -> None:
    job_id = await loaded.issue("SELECT n, s, x FROM events WHERE n < 3 ORDER BY n")
    shown = await loaded.wait(job_id)
    path = f"/v3/job/result/{job_id}"
    gz = await loaded.ok("GET", path, params={"format": "msgpack.gz"})
    assert len(gz) == shown["result_size"]
    rows = list(msgpack.Unpacker(io.BytesIO(gzip.decompress(gz)), raw=False))
    assert rows == [[0, "v0", 0.0], [1, "v1", 0.5], [2, "v2", 1.0]]
    plain = await loaded.ok("GET", path, params={"format": "msgpack"})
    assert list(msgpack.Unpacker(io.BytesIO(plain), raw=False)) == rows
    js = await loaded.ok("GET", path, params={"format": "json"})
    assert [json.loads(line) for line in js.splitlines()] == rows
    js = await loaded.ok("GET", path, params={"format": "json", "header": "True"})
    assert json.loads(js.splitlines()[0]) == ["n", "s", "x"]
    csv = await loaded.ok("GET", path, params={"format": "csv", "header": "true"})
    assert csv.decode().splitlines() == ["n,s,x", "0,v0,0.0", "1,v1,0.5", "2,v2,1.0"]
    tsv = await loaded.ok("GET", path, params={"format": "tsv"})
    assert tsv.decode().splitlines()[1] == "1\tv1\t0.5"
    assert (await loaded.get(path, params={"format": "xml"}))[0] == 400


async def test_result_range_etag_if_range(loaded: Api) -> None:
    job_id = await loaded.issue("-- emulator: rows=2000\nSELECT 1")
    shown = await loaded.wait(job_id)
    size = shown["result_size"]
    path = f"/v3/job/result/{job_id}?format=msgpack.gz"
    async with loaded.session.get(loaded.emu.url + path, headers=loaded.headers) as resp:
        assert resp.status == 200
        full = await resp.read()
        etag = resp.headers["ETag"]
        assert resp.headers["Accept-Ranges"] == "bytes"
    assert len(full) == size
    hdrs = {**loaded.headers, "Range": "bytes=10-99"}
    async with loaded.session.get(loaded.emu.url + path, headers=hdrs) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 10-99/{size}"
        assert resp.headers["ETag"] == etag
        assert await resp.read() == full[10:100]
    hdrs = {**loaded.headers, "Range": "bytes=100-", "If-Range": etag}
    async with loaded.session.get(loaded.emu.url + path, headers=hdrs) as resp:
        assert resp.status == 206
        assert await resp.read() == full[100:]
    hdrs = {**loaded.headers, "Range": "bytes=100-", "If-Range": '"other"'}
    async with loaded.session.get(loaded.emu.url + path, headers=hdrs) as resp:
        assert resp.status == 200
        assert await resp.read() == full
    hdrs = {**loaded.headers, "Range": f"bytes={size + 5}-"}
    async with loaded.session.get(loaded.emu.url + path, headers=hdrs) as resp:
        assert resp.status == 416
    rows = list(msgpack.Unpacker(io.BytesIO(gzip.decompress(full)), raw=False))
    assert len(rows) == 2000
    assert rows[7] == [7, "name_7", 3.5, 1_700_000_007]


async def test_large_result_is_spilled_to_disk_and_served_in_ranges(loaded: Api) -> None:
    job_id = await loaded.issue("-- emulator: rows=250000 duration=0\nSELECT 1")
    shown = await loaded.wait(job_id, timeout=30)
    assert shown["status"] == "success"
    assert shown["num_records"] == 250_000
    job = loaded.emu.jobs.get(job_id)
    assert job.result is not None
    assert job.result.is_large()
    hdrs = {**loaded.headers, "Range": "bytes=0-99"}
    url = f"{loaded.emu.url}/v3/job/result/{job_id}?format=json"
    async with loaded.session.get(url, headers=hdrs) as resp:
        assert resp.status == 206
        assert (await resp.read()).startswith(b'[0,"name_0",0.0,1700000000]\n')


async def test_job_list_paging_and_filters(loaded: Api) -> None:
    ids = [await loaded.issue(f"-- emulator: queued=0 duration=0\nSELECT {i}") for i in range(5)]
    slow = await loaded.issue("-- emulator: queued=30\nSELECT 1")
    await asyncio.sleep(0.05)
    page = await loaded.ok("GET", "/v3/job/list", params={"from": "0", "to": "2"})
    assert page["count"] == 3
    assert [j["job_id"] for j in page["jobs"]] == [slow, ids[4], ids[3]]
    assert set(page["jobs"][0]) == JOB_KEYS
    assert (page["from"], page["to"]) == (0, 2)
    page = await loaded.ok("GET", "/v3/job/list", params={"from": "3", "to": "10"})
    assert [j["job_id"] for j in page["jobs"]] == [ids[2], ids[1], ids[0]]
    page = await loaded.ok("GET", "/v3/job/list", params={"status": "queued"})
    assert (page["count"], [j["job_id"] for j in page["jobs"]]) == (1, [slow])
    page = await loaded.ok("GET", "/v3/job/list", params={"status": "success"})
    assert (page["count"], len(page["jobs"])) == (5, 5)
    page = await loaded.ok(
        "GET", "/v3/job/list", params={"from_id": ids[1], "to_id": ids[3], "status": "success"}
    )
    assert [j["job_id"] for j in page["jobs"]] == [ids[3], ids[2], ids[1]]
    page = await loaded.ok("GET", "/v3/job/list")
    assert (page["from"], page["to"]) == (None, None)
    assert (await loaded.get("/v3/job/list", params={"status": "bogus"}))[0] == 400


@pytest.mark.parametrize(
    ("meaning", "cap", "want"),
    [
        # 12 jobs; the page asked is from=2 to=9 (8 jobs, ``to`` inclusive).
        ("page", None, (8, 8)),
        ("span", None, (8, 8)),
        ("total", None, (12, 8)),
        ("page", 5, (5, 5)),
        ("span", 5, (8, 5)),
        ("total", 5, (12, 5)),
    ],
)
async def test_job_list_count_meanings_and_page_cap(
    meaning: ListingCount, cap: int | None, want: tuple[int, int]
) -> None:
    async with Emulator(job_list_count=meaning, job_list_page_cap=cap) as emu:
        ids = [emu.jobs.issue(job_type="presto", database="d", query="q").id for _ in range(12)]
        async with aiohttp.ClientSession() as session:
            api = Api(emu, session)
            page = await api.ok("GET", "/v3/job/list", params={"from": "2", "to": "9"})
    assert (page["count"], len(page["jobs"])) == want
    newest_first = [str(i) for i in reversed(ids)]
    assert [j["job_id"] for j in page["jobs"]] == newest_first[2 : 2 + want[1]]


async def test_job_list_count_and_cap_change_at_run_time(emu: Emulator, loaded: Api) -> None:
    for _ in range(30):
        emu.jobs.issue(job_type="presto", database="db1", query="SELECT 1")
    page = await loaded.ok("GET", "/v3/job/list")
    assert (page["count"], len(page["jobs"]), page["from"], page["to"]) == (20, 20, None, None)
    emu.core.job_list_page_cap = 7
    page = await loaded.ok("GET", "/v3/job/list", params={"from": "0", "to": "99"})
    assert (page["count"], len(page["jobs"])) == (7, 7)
    emu.core.job_list_count = "span"
    page = await loaded.ok("GET", "/v3/job/list", params={"from": "0", "to": "99"})
    assert (page["count"], len(page["jobs"])) == (100, 7)
    emu.core.job_list_count = "total"
    page = await loaded.ok("GET", "/v3/job/list", params={"from": "25", "to": "99"})
    assert (page["count"], len(page["jobs"])) == (30, 5)


def test_job_list_options_are_checked() -> None:
    with pytest.raises(ValueError, match="job_list_count"):
        Emulator(job_list_count="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="job_list_page_cap"):
        Emulator(job_list_page_cap=0)


async def test_slower_than(emu: Emulator, loaded: Api) -> None:
    now = time.time()
    emu.jobs.issue(job_type="presto", database="db1", query="SELECT 1", running=10, now=now - 20)
    emu.jobs.issue(job_type="presto", database="db1", query="SELECT 1", running=1, now=now - 20)
    page = await loaded.ok("GET", "/v3/job/list", params={"slower_than": "5"})
    assert page["count"] == 1


async def test_job_runner_protocol(emu: Emulator, loaded: Api) -> None:
    job_id = emu.jobs.issue_job(database="db1", query="SELECT COUNT(*) FROM events")
    assert isinstance(job_id, str)
    assert emu.jobs.job_status(job_id) in ("queued", "running")
    shown = await loaded.wait(job_id)
    assert shown["status"] == "success"
    assert emu.jobs.job_status(job_id) == "success"


async def test_result_export_and_export_run(loaded: Api) -> None:
    job_id = await loaded.issue("SELECT 1")
    body = await loaded.ok("POST", f"/v3/job/result_export/{job_id}", data={"result": "s3://b/k"})
    export_id = body["job_id"]
    shown = await loaded.ok("GET", f"/v3/job/show/{export_id}")
    assert shown["type"] == "result_export"
    assert shown["result_export_target_job_id"] == int(job_id)
    target = await loaded.ok("GET", f"/v3/job/show/{job_id}")
    assert target["linked_result_export_job_id"] == int(export_id)
    status, _ = await loaded.post("/v3/export/run/db1/events", {"storage_type": "gcs"})
    assert status == 400
    body = await loaded.ok(
        "POST", "/v3/export/run/db1/events", data={"storage_type": "s3", "bucket": "b"}
    )
    assert set(body) == {"job", "job_id", "database"}
    assert (await loaded.ok("GET", f"/v3/job/show/{body['job_id']}"))["type"] == "export"


async def test_jobs_boot_by_default_between_queued_and_running() -> None:
    async with Emulator() as emu:
        jobs = emu.jobs
        job = jobs.issue(job_type="presto", database="sample_datasets", query="SELECT 1")
        assert 0 < jobs.booting_time <= 0.1
        assert job.running_from - job.start == pytest.approx(jobs.booting_time)
        seen = []
        for at in (job.created, job.start, job.running_from, job.end):
            jobs.advance(at + 0.001)
            seen.append(job.status)
        assert seen == ["queued", "booting", "running", "success"]
        direct = jobs.issue(job_type="presto", database="d", query="q", queued=0, booting=0)
        assert direct.running_from == direct.start == direct.created


async def test_booting_jobs_are_neither_queued_nor_running_in_listings(loaded: Api) -> None:
    booting = await loaded.issue("-- emulator: queued=0 booting=30\nSELECT 1")
    queued = await loaded.issue("-- emulator: queued=30\nSELECT 1")
    assert (await loaded.ok("GET", f"/v3/job/status/{booting}"))["status"] == "booting"
    listed = {}
    for status in ("queued", "running", ""):
        page = await loaded.ok("GET", "/v3/job/list", params={"status": status})
        listed[status] = [j["job_id"] for j in page["jobs"]]
    assert listed == {"queued": [queued], "running": [], "": [queued, booting]}


@pytest.mark.parametrize("count", [100_000])
async def test_many_jobs_list_and_counts(emu: Emulator, loaded: Api, count: int) -> None:
    now = time.time()
    for i in range(count):
        emu.jobs.issue(
            job_type="presto",
            database="db1",
            query="SELECT 1",
            queued=0 if i % 2 else 1000,
            running=0,
            now=now,
            rows=0,
        )
    emu.core.job_list_count = "total"
    page = await loaded.ok("GET", "/v3/job/list", params={"status": "queued", "to": "99"})
    assert page["count"] == count // 2
    assert len(page["jobs"]) == 100
    page = await loaded.ok("GET", "/v3/job/list", params={"status": "success", "from": "49990"})
    assert page["count"] == count // 2
    assert len(page["jobs"]) == 10
    assert emu.jobs.count() == count + 0


def test_bucket_pages_match_a_plain_filter() -> None:
    import random

    from aiotd.testing._jobs import _Bucket

    rng = random.Random(7)
    bucket = _Bucket()
    alive: set[int] = set()
    for job_id in rng.sample(range(1, 5000), 3000):
        bucket.add(job_id)
        alive.add(job_id)
    for step in range(2):
        expected = sorted(alive, reverse=True)
        for lo, hi, skip, limit in [(None, None, 0, 20), (100, 4000, 37, 50), (None, 2500, 900, 9)]:
            want = [i for i in expected if (lo is None or i >= lo) and (hi is None or i <= hi)]
            assert bucket.page(lo, hi, skip, limit) == want[skip : skip + limit]
            assert bucket.count(lo, hi) == len(want)
        if step == 0:
            for job_id in rng.sample(sorted(alive), 40):
                bucket.remove(job_id)
                alive.discard(job_id)
            assert bucket.dead
