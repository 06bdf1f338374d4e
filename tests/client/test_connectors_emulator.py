"""``td.connectors`` against the emulator's ``/v3/bulk_loads``: guess, preview, saved loads,
runs (exactly once), their history, and one-off loads."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import aiotd
from aiotd import errors
from aiotd._polling import PollSettings
from aiotd.testing import Emulator

FAST_POLL = PollSettings(min_interval=0.05, max_interval=0.4, first_delay=0.01)
FAST_RETRY = aiotd.RetryPolicy(max_attempts=6, initial_delay=0.01, max_delay=0.05)
SOURCE = {"type": "s3", "bucket": "my-bucket", "path_prefix": "logs/2023-11-14/"}


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(queued_time=0.02, running_time=0.05) as emulator:
        yield emulator


@pytest.fixture
async def td(emu: Emulator) -> AsyncIterator[aiotd.Client]:
    async with aiotd.Client(
        emu.apikey, endpoint=emu.url, poll=FAST_POLL, retry=FAST_RETRY
    ) as client:
        await client.databases.create("loads")
        await client.tables.create("loads", "events")
        yield client


async def test_guess_then_preview_the_guessed_configuration(td: aiotd.Client) -> None:
    guessed = await td.connectors.guess(SOURCE)
    source = guessed.config["in"]
    assert {k: source[k] for k in SOURCE} == SOURCE
    columns = source["parser"]["columns"]
    assert [c["name"] for c in columns] == ["time", "c1", "c2", "c3"]
    preview = await td.connectors.preview(guessed.config)
    assert [(c.index, c.name, c.type) for c in preview.schema] == [
        (i, c["name"], c["type"]) for i, c in enumerate(columns)
    ]
    assert len(preview.records) == 10
    assert all(isinstance(r[0], int) and isinstance(r[1], int) for r in preview.records)


async def test_saved_load_create_get_list_update_delete(td: aiotd.Client) -> None:
    created = await td.connectors.create(
        "daily_logs",
        config=SOURCE,
        database="loads",
        table="events",
        cron="@daily",
        timezone="Asia/Tokyo",
        delay=3600,
    )
    assert (created.name, created.cron, created.timezone, created.delay) == (
        "daily_logs",
        "@daily",
        "Asia/Tokyo",
        3600,
    )
    assert (created.database, created.table) == ("loads", "events")
    assert created.config["in"] == SOURCE
    assert await td.connectors.get("daily_logs") == created
    assert await td.connectors.list() == [created]
    assert [load async for load in td.connectors.list()] == [created]
    with pytest.raises(errors.Conflict):
        await td.connectors.create("daily_logs", config=SOURCE, database="loads", table="events")
    with pytest.raises(errors.NotFound):
        await td.connectors.create("other", config=SOURCE, database="loads", table="missing")
    updated = await td.connectors.update("daily_logs", cron="0 * * * *", time_column="c1")
    assert (updated.cron, updated.time_column, updated.timezone) == (
        "0 * * * *",
        "c1",
        "Asia/Tokyo",
    )
    with pytest.raises(errors.Unprocessable):
        await td.connectors.update("daily_logs", timezone="Nowhere/Else")
    deleted = await td.connectors.delete("daily_logs")
    assert deleted.name == "daily_logs"
    with pytest.raises(errors.NotFound):
        await td.connectors.get("daily_logs")
    assert await td.connectors.list() == []


async def test_run_loads_rows_and_shows_in_the_history(td: aiotd.Client) -> None:
    await td.connectors.create("hourly", config=SOURCE, database="loads", table="events")
    issued = await td.connectors.run("hourly", scheduled_time=1_700_000_000)
    assert issued.existing is False
    job = await td.jobs.wait(issued.job_id, timeout=10)
    assert (job.type, job.status) == ("bulkload", "success")
    (run,) = [job async for job in td.connectors.history("hourly")]
    assert (run.job_id, run.status, run.records) == (issued.job_id, "success", 10)
    assert run.database is not None
    assert run.table is not None
    assert (run.database.name, run.table.name) == ("loads", "events")
    assert [c.name for c in run.schema] == ["time", "c1", "c2", "c3"]
    started, ended = run.start_at_dt, run.end_at_dt
    assert started is not None
    assert ended is not None
    assert started <= ended
    assert (await td.tables.get("loads", "events")).count == 10


async def test_run_is_exactly_once_when_the_answer_is_lost(td: aiotd.Client, emu: Emulator) -> None:
    await td.connectors.create("once", config=SOURCE, database="loads", table="events")
    emu.faults.drop("POST /v3/bulk_loads/once/jobs", count=1)
    issued = await td.connectors.run("once")
    assert issued.existing is True
    history = await td.connectors.history("once")
    assert [j.job_id for j in history] == [issued.job_id]


async def test_one_off_load_and_its_failure_on_a_missing_table(td: aiotd.Client) -> None:
    issued = await td.connectors.issue(SOURCE, database="loads", table="events")
    assert (await td.jobs.wait(issued.job_id, timeout=10)).status == "success"
    assert (await td.tables.get("loads", "events")).count == 10
    issued = await td.connectors.issue(SOURCE, database="loads", table="absent")
    job = await td.jobs.wait(issued.job_id, timeout=10)
    with pytest.raises(errors.JobFailed, match="Table 'absent' does not exist"):
        job.raise_for_status()
