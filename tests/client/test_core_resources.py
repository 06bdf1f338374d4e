"""The v3 namespaces against the emulator: databases, tables, imports (exactly once),
schedules, bulk import sessions, users, results, exports."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

import aiotd
from aiotd import errors
from aiotd._polling import PollSettings
from aiotd.models.core import Column
from aiotd.testing import Emulator

FAST_POLL = PollSettings(min_interval=0.05, max_interval=0.4, first_delay=0.01)
FAST_RETRY = aiotd.RetryPolicy(max_attempts=6, initial_delay=0.01, max_delay=0.05)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(queued_time=0.02, running_time=0.05) as emulator:
        yield emulator


@pytest.fixture
async def td(emu: Emulator) -> AsyncIterator[aiotd.Client]:
    async with aiotd.Client(
        emu.apikey, endpoint=emu.url, workflow_endpoint=emu.url, poll=FAST_POLL, retry=FAST_RETRY
    ) as client:
        yield client


@pytest.fixture
async def table(td: aiotd.Client) -> tuple[str, str]:
    await td.databases.create("db1")
    await td.tables.create("db1", "events")
    return "db1", "events"


def records(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"time": 1_700_000_000 + i, "n": i, "tag": f"t{i % 3}"} for i in range(start, n)]


async def query_rows(td: aiotd.Client, sql: str, database: str = "db1") -> list[list[object]]:
    issued = await td.jobs.issue(sql, database=database)
    job = await td.jobs.wait(issued.job_id, timeout=10)
    job.raise_for_status()
    return [row async for row in td.jobs.rows(job.job_id)]


# -- databases and tables


async def test_database_lifecycle(td: aiotd.Client) -> None:
    ref = await td.databases.create("analytics")
    assert ref.database == "analytics"
    with pytest.raises(errors.Conflict):
        await td.databases.create("analytics")
    assert (await td.databases.create("analytics", exist_ok=True)).database == "analytics"
    assert "analytics" in [d.name for d in await td.databases.list()]
    db = await td.databases.get("analytics")
    assert (db.name, db.count) == ("analytics", 0)
    assert db.created_at_dt is not None
    await td.databases.delete("analytics")
    assert "analytics" not in [d.name for d in await td.databases.list()]
    with pytest.raises(errors.NotFound):
        await td.databases.delete("analytics")
    assert (await td.databases.delete("analytics", missing_ok=True)).database == "analytics"


async def test_table_lifecycle(td: aiotd.Client, table: tuple[str, str]) -> None:
    db, name = table
    with pytest.raises(errors.Conflict):
        await td.tables.create(db, name)
    await td.tables.create(db, name, exist_ok=True)
    await td.tables.create(db, "other", include_v=False)
    assert sorted(t.name for t in await td.tables.list(db)) == ["events", "other"]
    assert (await td.tables.get(db, "other")).include_v is False

    await td.tables.update(db, name, expire_days=30)
    await td.tables.update_schema(
        db, name, columns=[("n", "long"), Column(name="tag", type="string")]
    )
    shown = await td.tables.get(db, name)
    assert shown.expire_days == 30
    assert shown.columns == [Column(name="n", type="long"), Column(name="tag", type="string")]

    await td.imports.upload(db, name, records(5))
    swapped = await td.tables.swap(db, name, "other")
    assert (swapped.table1, swapped.table2) == (name, "other")
    assert (await td.tables.get(db, "other")).count == 5
    assert (await td.tables.get(db, name)).count == 0

    await td.databases.create("db2")
    moved = await td.tables.change_database(db, "other", destination="db2")
    assert moved.database == "db2"
    assert (await td.tables.get("db2", "other")).count == 5
    with pytest.raises(errors.NotFound):
        await td.tables.change_database(db, "other", destination="db2")

    await td.tables.delete(db, name)
    with pytest.raises(errors.NotFound):
        await td.tables.get(db, name)
    assert (await td.tables.delete(db, name, missing_ok=True)).table == name


async def test_tail_returns_the_latest_records_decoded(
    td: aiotd.Client, table: tuple[str, str]
) -> None:
    await td.imports.upload(*table, records(20))
    tail = await td.tables.tail(*table, count=5)
    assert len(tail) == 5
    assert sorted(r["n"] for r in tail) == [15, 16, 17, 18, 19]
    assert all(isinstance(r["time"], int) and r["tag"].startswith("t") for r in tail)


# -- imports


async def test_import_then_query_back(td: aiotd.Client, table: tuple[str, str]) -> None:
    sent = records(2000)
    summary = await td.imports.upload(*table, sent, part_size=8 << 10, concurrency=3)
    assert summary.records == 2000
    assert summary.parts == len(summary.results) > 2
    assert summary.bytes > 0
    assert len({r.unique_id for r in summary.results}) == summary.parts
    rows = await query_rows(td, "select count(*), sum(n), count(distinct tag) from events")
    assert rows == [[2000, sum(range(2000)), 3]]


async def test_import_is_exactly_once_when_an_answer_is_lost(
    td: aiotd.Client, emu: Emulator, table: tuple[str, str]
) -> None:
    emu.faults.drop("PUT /v3/table/import_with_id/", count=1)
    summary = await td.imports.upload(*table, records(300), part_size=2 << 10)
    assert summary.records == 300
    assert emu.counters.faults.get("drop") == 1
    # the part whose answer was dropped was sent again (by aiotd or by aiohttp's own retry of
    # an idempotent PUT on a closed keep-alive connection) and imported once
    route = "PUT /v3/table/import_with_id/{db}/{table}/{unique_id}/{format}"
    assert emu.counters[route] == summary.parts + 1
    assert (await td.tables.get(*table)).count == 300
    assert await query_rows(td, "select count(distinct n) from events") == [[300]]


async def test_import_part_is_retried_after_a_server_error(
    td: aiotd.Client, emu: Emulator, table: tuple[str, str]
) -> None:
    emu.faults.server_error("PUT /v3/table/import_with_id/", status=503, count=2)
    summary = await td.imports.upload(*table, records(100))
    assert (summary.parts, summary.records) == (1, 100)
    assert td.stats.retries == 2
    assert (await td.tables.get(*table)).count == 100


async def test_import_from_an_async_iterable(td: aiotd.Client, table: tuple[str, str]) -> None:
    async def produce() -> AsyncIterator[dict[str, object]]:
        for record in records(40):
            yield record

    summary = await td.imports.upload(*table, produce())
    assert (summary.parts, summary.records) == (1, 40)
    assert (await td.tables.get(*table)).count == 40


async def test_a_record_without_time_is_refused_by_index(
    td: aiotd.Client, table: tuple[str, str]
) -> None:
    before = td.stats.requests
    bad = [*records(3), {"n": 99}]
    with pytest.raises(ValueError, match=r"record 3 has no 'time' key: \{'n': 99\}"):
        await td.imports.upload(*table, bad)
    with pytest.raises(ValueError, match="record 0: 'time' must be an int"):
        await td.imports.upload(*table, [{"time": "2024-01-01"}])
    with pytest.raises(TypeError, match="record 1 is not a dict"):
        await td.imports.upload(*table, [records(1)[0], ["not", "a", "map"]])
    assert td.stats.requests == before


async def test_parts_before_a_bad_record_are_imported_and_none_after(
    td: aiotd.Client, table: tuple[str, str]
) -> None:
    good = records(200)
    with pytest.raises(ValueError, match="record 200"):
        await td.imports.upload(*table, [*good, {"no": "time"}, *records(10)], part_size=1024)
    count = (await td.tables.get(*table)).count
    assert 0 < count <= 200


async def test_upload_file_in_each_format(
    td: aiotd.Client, table: tuple[str, str], tmp_path: Path
) -> None:
    data = records(30)
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in data) + "\n")
    csv_file = tmp_path / "b.csv"
    csv_file.write_text(
        "time,n,tag\n" + "".join(f"{r['time']},{r['n']},{r['tag']}\n" for r in data)
    )
    packed = b"".join(msgpack.packb(r) for r in data)
    mp = tmp_path / "c.msgpack.gz"
    mp.write_bytes(gzip.compress(packed))
    raw = tmp_path / "d.data"
    raw.write_bytes(packed)

    for path, fmt in ((jsonl, None), (csv_file, None), (mp, None), (raw, "msgpack")):
        summary = await td.imports.upload_file(*table, path, format=fmt)
        assert summary.records == 30, path
    assert (await td.tables.get(*table)).count == 120
    rows = await query_rows(td, "select typeof(n), sum(n) from events group by 1")
    assert rows == [["bigint", 4 * sum(range(30))]]


async def test_upload_file_refuses_bad_arguments_before_any_request(
    td: aiotd.Client, tmp_path: Path
) -> None:
    before = td.stats.requests
    unknown = tmp_path / "x.parquet"
    unknown.write_bytes(b"PAR1")
    with pytest.raises(ValueError, match="cannot tell the format"):
        await td.imports.upload_file("db1", "t", unknown)
    with pytest.raises(ValueError, match="format must be one of"):
        await td.imports.upload_file("db1", "t", unknown, format="parquet")
    with pytest.raises(FileNotFoundError):
        await td.imports.upload_file("db1", "t", tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="empty"):
        await td.imports.upload("", "t", records(1))
    with pytest.raises(ValueError, match="part_size"):
        await td.imports.upload("db1", "t", records(1), part_size=0)
    assert td.stats.requests == before


# -- schedules


async def test_schedule_lifecycle_run_and_history(td: aiotd.Client, table: tuple[str, str]) -> None:
    await td.imports.upload(*table, records(10))
    created = await td.schedules.create(
        "daily_count", query="select count(*) from events", database="db1", cron="@daily",
        engine="presto", priority="HIGH",
    )  # fmt: skip
    assert (created.name, created.cron, created.priority, created.type) == (
        "daily_count",
        "@daily",
        1,
        "presto",
    )
    listed = {s.name: s for s in await td.schedules.list()}
    assert listed["daily_count"].next_time_dt is not None

    updated = await td.schedules.update("daily_count", cron="@hourly", delay=60)
    assert (updated.cron, updated.delay) == ("@hourly", 60)

    now = int(time.time())
    run = await td.schedules.run("daily_count", time=now, num=2)
    assert len(run.jobs) == 2
    assert run.existing is False
    jobs = await td.jobs.wait_all([j.job_id for j in run.jobs], timeout=10)
    assert all(j.success for j in jobs)
    assert [row async for row in td.jobs.rows(jobs[0].job_id)] == [[10]]

    first_page = await td.schedules.history("daily_count", page_size=1)
    assert len(first_page) == 1
    history = [job async for job in td.schedules.history("daily_count", page_size=1)]
    assert sorted(j.job_id for j in history) == sorted(j.job_id for j in run.jobs)
    # @hourly: the runs are scheduled at the last two whole hours up to `now`
    hour = now - now % 3600
    assert {int(j.scheduled_at_dt.timestamp()) for j in history} == {hour, hour - 3600}

    deleted = await td.schedules.delete("daily_count")
    assert deleted.name == "daily_count"
    assert await td.schedules.list() == []


async def test_schedule_run_is_exactly_once_when_the_answer_is_lost(
    td: aiotd.Client, emu: Emulator, table: tuple[str, str]
) -> None:
    await td.schedules.create("once", query="select 1", database="db1")
    emu.faults.drop("POST /v3/schedule/run/", count=1)
    run = await td.schedules.run("once", time=1_700_000_000)
    assert run.existing is True
    assert len([j async for j in td.schedules.history("once")]) == 1
    assert run.jobs[0].job_id == (await td.schedules.history("once"))[0].job_id


# -- bulk import sessions


async def test_bulk_import_session_flow(td: aiotd.Client, table: tuple[str, str]) -> None:
    created = await td.bulk_imports.create("session_1", database="db1", table="events")
    assert created.name == "session_1"
    await td.bulk_imports.upload_part("session_1", "part1", records(50))
    packed = gzip.compress(b"".join(msgpack.packb(r) for r in records(80, 50)))
    await td.bulk_imports.upload_part("session_1", "part2", packed)
    await td.bulk_imports.upload_part("session_1", "bad", [{"time": "yesterday", "n": -1}])
    await td.bulk_imports.upload_part("session_1", "gone", records(5))
    await td.bulk_imports.delete_part("session_1", "gone")
    parts = await td.bulk_imports.list_parts("session_1")
    assert sorted(parts.parts) == ["bad", "part1", "part2"]

    await td.bulk_imports.freeze("session_1")
    with pytest.raises(errors.BadRequest, match="frozen"):
        await td.bulk_imports.upload_part("session_1", "late", records(1))
    ref = await td.bulk_imports.perform("session_1", wait=True, timeout=10)
    assert ref.job_id
    session = await td.bulk_imports.get("session_1")
    assert (session.status, session.valid_records, session.error_records) == ("ready", 80, 1)
    assert [r async for r in td.bulk_imports.error_records("session_1")] == [
        {"time": "yesterday", "n": -1}
    ]
    assert (await td.tables.get(*table)).count == 0  # nothing visible before commit

    await td.bulk_imports.commit("session_1", wait=True, timeout=5)
    assert (await td.bulk_imports.get("session_1")).status == "committed"
    assert (await td.tables.get(*table)).count == 80
    assert [s.name for s in await td.bulk_imports.list()] == ["session_1"]
    await td.bulk_imports.delete("session_1")
    assert await td.bulk_imports.list() == []


async def test_bulk_import_create_exist_ok_and_part_names(
    td: aiotd.Client, table: tuple[str, str]
) -> None:
    await td.bulk_imports.create("session_2", database="db1", table="events")
    with pytest.raises(errors.Conflict):
        await td.bulk_imports.create("session_2", database="db1", table="events")
    assert (
        await td.bulk_imports.create("session_2", database="db1", table="events", exist_ok=True)
    ).name == "session_2"
    assert [r async for r in td.bulk_imports.error_records("session_2")] == []
    before = td.stats.requests
    for part in ("", "a/b", "a.b.c"):
        with pytest.raises(ValueError, match="part name"):
            await td.bulk_imports.upload_part("session_2", part, records(1))
    assert td.stats.requests == before


async def test_commit_wait_rides_on_the_poll_engine_through_failing_polls(
    td: aiotd.Client, emu: Emulator, table: tuple[str, str]
) -> None:
    await td.bulk_imports.create("session_3", database="db1", table="events")
    await td.bulk_imports.upload_part("session_3", "p1", records(30))
    await td.bulk_imports.freeze("session_3")
    await td.bulk_imports.perform("session_3", wait=True, timeout=10)
    emu.core.bulk_import_commit_time = 0.5
    # more failures than one call's retries (max_attempts=6): a poll fails, the wait goes on
    failing = emu.faults.server_error("GET /v3/bulk_import/show/", count=8)
    await td.bulk_imports.commit("session_3", wait=True, timeout=10)
    assert failing.hits == 8
    assert (await td.bulk_imports.get("session_3")).status == "committed"
    assert (await td.tables.get(*table)).count == 30


async def test_commit_wait_times_out_with_the_session_still_committing(
    td: aiotd.Client, emu: Emulator, table: tuple[str, str]
) -> None:
    await td.bulk_imports.create("session_4", database="db1", table="events")
    await td.bulk_imports.upload_part("session_4", "p1", records(3))
    await td.bulk_imports.freeze("session_4")
    await td.bulk_imports.perform("session_4", wait=True, timeout=10)
    emu.core.bulk_import_commit_time = 30
    with pytest.raises(errors.WaitTimeout, match="session_4") as info:
        await td.bulk_imports.commit("session_4", wait=True, timeout=0.3)
    assert (info.value.last.name, info.value.last.status) == ("session_4", "committing")
    assert emu.counters["GET /v3/bulk_import/show/{name}"] >= 2


# -- every listing is a pager


async def test_every_list_is_awaited_for_a_page_or_iterated(
    td: aiotd.Client, table: tuple[str, str]
) -> None:
    await td.results.create("out1", url="td://@/db1/out")
    await td.schedules.create("sched_1", query="select 1", database="db1")
    await td.bulk_imports.create("bulk_1", database="db1", table="events")
    await td.users.create("bob")
    listings = {
        "databases": td.databases.list,
        "tables": lambda: td.tables.list("db1"),
        "results": td.results.list,
        "users": td.users.list,
        "schedules": td.schedules.list,
        "bulk_imports": td.bulk_imports.list,
    }
    for what, listing in listings.items():
        before = td.stats.requests
        page = await listing()
        items = [item async for item in listing()]
        assert page, what
        assert items == page, what
        assert td.stats.requests - before == 2, what  # one request each way


@pytest.mark.parametrize(
    "call",
    [
        lambda td: td.jobs.result_export("1", "td://@/db1/out"),
        lambda td: td.results.create("r1", "td://@/db1/out"),
        lambda td: td.tables.change_database("db1", "events", "db2"),
        lambda td: td.tables.update_schema("db1", "events", [("a", "long")]),
        lambda td: td.users.authenticate("alice", "s3cret"),
        lambda td: td.schedules.run("s1", 1_700_000_000),
        lambda td: td.bulk_imports.create("s1", "db1", "events"),
        lambda td: td.connectors.create("l1", {"type": "s3"}, database="db1", table="events"),
    ],
    ids=[
        "result_export",
        "results.create",
        "change_database",
        "update_schema",
        "authenticate",
        "schedules.run",
        "bulk_imports.create",
        "connectors.create",
    ],
)
async def test_options_given_positionally_are_refused_before_any_request(
    td: aiotd.Client, call: Any
) -> None:
    before = td.stats.requests
    with pytest.raises(TypeError, match="positional"):
        await call(td)
    assert td.stats.requests == before


# -- users, results, exports


async def test_users_and_api_keys(td: aiotd.Client, emu: Emulator) -> None:
    added = await td.users.create("alice", email="alice@example.com", password="s3cret")
    assert added.name == "alice"
    assert {u.name for u in await td.users.list()} == {"Emulator User", "alice"}
    first = (await td.users.list_apikeys("alice")).apikeys
    new = await td.users.create_apikey("alice")
    assert (await td.users.list_apikeys("alice")).apikeys == [*first, new.apikey]

    async with aiotd.Client(new.apikey, endpoint=emu.url, retry=FAST_RETRY) as as_alice:
        assert isinstance(await as_alice.databases.list(), list)
        removed = await td.users.delete_apikey("alice", new.apikey)
        assert removed.user == "alice"
        with pytest.raises(errors.AuthError):
            await as_alice.databases.list()

    authenticated = await td.users.authenticate("alice@example.com", password="s3cret")
    assert (authenticated.name, authenticated.apikey) == ("alice", first[0])
    with pytest.raises(errors.BadRequest):
        await td.users.authenticate("alice", password="wrong")
    assert (await td.users.delete("alice")).user == "alice"
    assert [u.name for u in await td.users.list()] == ["Emulator User"]


async def test_saved_results(td: aiotd.Client) -> None:
    ref = await td.results.create("my_out", url="td://@/db1/out")
    assert ref.result == "my_out"
    with pytest.raises(errors.Conflict, match="unique"):
        await td.results.create("my_out", url="td://@/db1/out")
    assert [(r.name, r.url) for r in await td.results.list()] == [("my_out", "td://@/db1/out")]
    await td.results.delete("my_out")
    assert await td.results.list() == []
    with pytest.raises(errors.NotFound):
        await td.results.delete("my_out")


async def test_export_is_exactly_once(
    td: aiotd.Client, emu: Emulator, table: tuple[str, str]
) -> None:
    emu.faults.drop("POST /v3/export/run/", count=1)
    issued = await td.exports.run(
        *table, bucket="my-bucket", file_format="jsonl.gz", from_time=0, to_time=1_800_000_000
    )
    assert issued.existing is True
    again = await td.exports.run(*table, bucket="my-bucket", domain_key="export-1")
    repeat = await td.exports.run(*table, bucket="my-bucket", domain_key="export-1")
    assert (repeat.job_id, repeat.existing) == (again.job_id, True)
    export_jobs = [j for j in await td.jobs.list() if j.job_id in (issued.job_id, again.job_id)]
    assert len(export_jobs) == 2
    assert len(await td.jobs.list()) == 2


async def test_bad_arguments_fail_before_any_request(td: aiotd.Client) -> None:
    before = td.stats.requests
    with pytest.raises(ValueError, match="empty"):
        await td.databases.create("")
    with pytest.raises(ValueError, match="empty"):
        await td.tables.get("db1", "")
    with pytest.raises(ValueError, match="count"):
        await td.tables.tail("db1", "t", count=0)
    with pytest.raises(ValueError, match="count"):
        await td.tables.tail("db1", "t", count=-3)
    with pytest.raises(ValueError, match="at least one"):
        await td.tables.update("db1", "t")
    with pytest.raises(ValueError, match="a column is"):
        await td.tables.update_schema("db1", "t", columns=["name"])
    with pytest.raises(ValueError, match="destination"):
        await td.tables.change_database("db1", "t", destination="")
    with pytest.raises(ValueError, match="query"):
        await td.schedules.create("s1", query=" ", database="db1")
    with pytest.raises(ValueError, match="engine"):
        await td.schedules.create("s1", query="select 1", database="db1", engine="pig")
    with pytest.raises(ValueError, match="at least one"):
        await td.schedules.update("s1")
    with pytest.raises(ValueError, match="priority"):
        await td.schedules.update("s1", priority=7)
    with pytest.raises(ValueError, match="num"):
        await td.schedules.run("s1", time=0, num=0)
    with pytest.raises(TypeError, match="unix seconds"):
        await td.schedules.run("s1", time="yesterday")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page_size"):
        td.schedules.history("s1", page_size=0)
    with pytest.raises(ValueError, match="url"):
        await td.results.create("r1", url="")
    with pytest.raises(ValueError, match="apikey"):
        await td.users.delete_apikey("alice", "")
    with pytest.raises(ValueError, match="file_format"):
        await td.exports.run("db1", "t", bucket="b", file_format="xml")
    with pytest.raises(ValueError, match="bucket"):
        await td.exports.run("db1", "t", bucket="")
    with pytest.raises(ValueError, match="config"):
        await td.connectors.guess({})
    with pytest.raises(ValueError, match="at least one"):
        await td.connectors.update("load1")
    assert td.stats.requests == before
