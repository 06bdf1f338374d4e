"""What the v3 namespaces put on the wire: quoted names, forms, JSON bodies, import parts,
paging parameters, and the waits built on top of single calls."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from aiohttp import web

import aiotd
from aiotd import errors
from aiotd._polling import PollSettings
from tests.client.conftest import KEY, Handler, Scripted, reply

FAST = aiotd.RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02)


class _ByPrefix(dict[str, list[Handler]]):
    """Routes of the scripted server matched by path prefix (unique ids vary per request)."""

    def get(self, path: str, default: Any = None) -> Any:
        return next((v for k, v in self.items() if path.startswith(k)), default)


@pytest.fixture
async def td(scripted: Scripted) -> AsyncIterator[aiotd.Client]:
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=FAST) as client:
        yield client


async def test_names_are_quoted_as_one_path_segment(scripted: Scripted, td: aiotd.Client) -> None:
    scripted.on("/v3/schedule/delete/a/b c", reply(200, '{"name": "a/b c"}'))
    scripted.on("/v3/table/show/my db/x+y", reply(200, '{"id": 1, "name": "x+y"}'))
    assert (await td.schedules.delete("a/b c")).name == "a/b c"
    assert (await td.tables.get("my db", "x+y")).name == "x+y"
    assert [r.raw_path for r in scripted.seen] == [
        "/v3/schedule/delete/a%2Fb%20c",
        "/v3/table/show/my%20db/x%2By",
    ]


async def test_import_parts_are_gzip_msgpack_under_fresh_unique_ids(
    scripted: Scripted, td: aiotd.Client
) -> None:
    bodies: dict[str, bytes] = {}

    async def accept(request: web.Request) -> web.StreamResponse:
        assert request.content_type == "application/octet-stream"
        bodies[request.path] = await request.read()
        return web.json_response({"database": "db", "table": "t"})

    scripted.scripts = _ByPrefix({"/v3/table/import_with_id/db/t/": [accept]})
    records = [{"time": 1_700_000_000 + i, "text": "x" * 50} for i in range(100)]
    summary = await td.imports.upload("db", "t", records, part_size=2048)
    assert summary.parts == len(bodies) > 1
    paths = [r.path for r in scripted.seen]
    ids = [p.split("/")[6] for p in paths]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 for i in ids)
    assert all(p.endswith("/msgpack.gz") for p in paths)
    decoded = []
    for body in bodies.values():
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(gzip.decompress(body))
        decoded.extend(unpacker)
    assert sorted(decoded, key=lambda r: r["time"]) == records
    assert summary.bytes == sum(len(b) for b in bodies.values())


async def test_an_empty_upload_sends_nothing(scripted: Scripted, td: aiotd.Client) -> None:
    summary = await td.imports.upload("db", "t", [])
    assert (summary.parts, summary.records, summary.bytes) == (0, 0, 0)
    assert scripted.seen == []


async def test_a_checksum_mismatch_is_an_error(scripted: Scripted, td: aiotd.Client) -> None:
    wrong = reply(200, '{"database": "db", "table": "t", "md5_hex": "00"}')
    scripted.scripts = _ByPrefix({"/v3/table/import_with_id/": [wrong]})
    with pytest.raises(errors.ChecksumMismatch, match="md5") as info:
        await td.imports.upload("db", "t", [{"time": 1}])
    sent = scripted.seen[0]
    assert info.value.received == "00"
    assert info.value.sent == hashlib.md5(await sent.read()).hexdigest()


async def test_update_schema_sends_td_schema_text(scripted: Scripted, td: aiotd.Client) -> None:
    scripted.on("/v3/table/update-schema/db/t", reply(200, '{"table": "t"}'))
    await td.tables.update_schema("db", "t", columns=[("a", "long"), ("b", "string", "b_alias")])
    form = await scripted.seen[0].post()
    assert json.loads(str(form["schema"])) == [["a", "long"], ["b", "string", "b_alias"]]


async def test_schedule_history_pages_with_an_exclusive_to(
    scripted: Scripted, td: aiotd.Client
) -> None:
    def page(ids: list[str]) -> str:
        return json.dumps({"history": [{"job_id": i, "status": "success"} for i in ids]})

    scripted.on(
        "/v3/schedule/history/s",
        reply(200, page(["5", "4"])),
        reply(200, page(["3", "2"])),
        reply(200, page(["1"])),
        reply(200, page([])),
    )
    ids = [job.job_id async for job in td.schedules.history("s", page_size=2)]
    assert ids == ["5", "4", "3", "2", "1"]
    asked = [(r.query["from"], r.query["to"]) for r in scripted.seen]
    # a short page does not end the walk (a server may cap pages): the empty one does
    assert asked == [("0", "2"), ("2", "4"), ("4", "6"), ("5", "7")]


async def test_schedule_history_read_as_inclusive_is_not_duplicated(
    scripted: Scripted, td: aiotd.Client
) -> None:
    # if `to` were inclusive after all, each page brings one more job: none is repeated
    def page(ids: list[str]) -> str:
        return json.dumps({"history": [{"job_id": i, "status": "success"} for i in ids]})

    scripted.on(
        "/v3/schedule/history/s",
        reply(200, page(["5", "4", "3"])),
        reply(200, page(["2", "1"])),
        reply(200, page([])),
    )
    ids = [job.job_id async for job in td.schedules.history("s", page_size=2)]
    assert ids == ["5", "4", "3", "2", "1"]


async def test_schedule_history_refuses_a_server_that_ignores_the_offset(
    scripted: Scripted, td: aiotd.Client
) -> None:
    body = json.dumps({"history": [{"job_id": "1", "status": "success"}]})
    scripted.on("/v3/schedule/history/s", reply(200, body))
    with pytest.raises(aiotd.errors.DecodeError, match="ignores the cursor"):
        await td.schedules.history("s", page_size=2).all()


async def test_bulk_load_requests_are_json(scripted: Scripted, td: aiotd.Client) -> None:
    scripted.on("/v3/bulk_loads/guess", reply(200, '{"config": {"in": {}}}'))
    scripted.on("/v3/bulk_loads", reply(200, '{"name": "load1"}'))
    scripted.on("/v3/bulk_loads/load1/jobs", reply(200, '{"job_id": 7}'))
    await td.connectors.guess({"type": "s3", "bucket": "b"})
    await td.connectors.create(
        "load1", config={"in": {"type": "s3"}}, database="db", table="t", cron="@daily"
    )
    issued = await td.connectors.run("load1", scheduled_time=1_700_000_000, domain_key="k1")
    assert issued.job_id == "7"
    guess, create, run = [json.loads(await r.read()) for r in scripted.seen]
    assert guess == {"config": {"in": {"type": "s3", "bucket": "b"}, "out": {}, "exec": {},
                                "filters": []}}  # fmt: skip
    assert create["name"] == "load1"
    assert (create["database"], create["table"], create["cron"]) == ("db", "t", "@daily")
    assert create["config"]["in"] == {"type": "s3"}
    assert run == {"domain_key": "k1", "scheduled_time": 1_700_000_000}
    assert all(r.content_type == "application/json" for r in scripted.seen)


async def test_commit_wait_times_out_with_the_last_session(scripted: Scripted) -> None:
    scripted.on("/v3/bulk_import/commit/s1", reply(200, '{"name": "s1"}'))
    scripted.on("/v3/bulk_import/show/s1", reply(200, '{"name": "s1", "status": "committing"}'))
    poll = PollSettings(min_interval=0.05, max_interval=0.05, first_delay=0.01)
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=FAST, poll=poll) as td:
        with pytest.raises(errors.WaitTimeout) as info:
            await td.bulk_imports.commit("s1", wait=True, timeout=0.3)
    assert info.value.last.status == "committing"
    assert scripted.count("/v3/bulk_import/show/s1") >= 2
    assert scripted.count("/v3/bulk_import/commit/s1") == 1


async def test_creates_are_sent_once_unless_exist_ok(scripted: Scripted, td: aiotd.Client) -> None:
    scripted.on(
        "/v3/database/create/d1",
        reply(503, '{"message": "busy"}'),
        reply(200, '{"database": "d1"}'),
    )
    with pytest.raises(errors.ServerError):
        await td.databases.create("d1")
    assert scripted.count("/v3/database/create/d1") == 1
    assert (await td.databases.create("d1", exist_ok=True)).database == "d1"
    assert scripted.count("/v3/database/create/d1") == 2


async def test_perform_wait_raises_when_the_job_fails(scripted: Scripted, td: aiotd.Client) -> None:
    failed = '{"job_id": "5", "status": "error", "debug": {"stderr": "bad part data"}}'
    scripted.on("/v3/bulk_import/perform/s1", reply(200, '{"name": "s1", "job_id": 5}'))
    scripted.on("/v3/job/status/5", reply(200, '{"job_id": "5", "status": "error"}'))
    scripted.on("/v3/job/show/5", reply(200, failed))
    with pytest.raises(errors.JobFailed, match="bad part data"):
        await td.bulk_imports.perform("s1", wait=True, timeout=5)
    assert scripted.count("/v3/bulk_import/perform/s1") == 1
