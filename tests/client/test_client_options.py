"""``Client.with_options``: a timeout and a retry policy for some calls, against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import aiotd
from aiotd import errors
from aiotd.testing import Emulator

FAST_POLL = aiotd.PollSettings(min_interval=0.05, max_interval=0.2, first_delay=0.01)
FAST_RETRY = aiotd.RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.02)
NEVER = aiotd.RetryPolicy.never()


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(queued_time=0.05, running_time=0.05) as emulator:
        yield emulator


@pytest.fixture
async def td(emu: Emulator) -> AsyncIterator[aiotd.Client]:
    async with aiotd.Client(
        emu.apikey, endpoint=emu.url, workflow_endpoint=emu.url, poll=FAST_POLL, retry=FAST_RETRY
    ) as client:
        yield client


async def test_a_view_has_its_own_timeout_on_the_clients_session(
    emu: Emulator, td: aiotd.Client
) -> None:
    emu.faults.delay("/v3/system/server_status", seconds=0.3)
    # a view of a view keeps what it does not change: here the timeout
    quick = td.with_options(timeout=aiotd.Timeouts(total=0.1)).with_options(retry=NEVER)
    with pytest.raises(errors.TransportError, match="timed out"):
        await quick.server_status()
    assert await td.server_status() == "ok"  # the client's own timeout waits the delay out
    group = td.stats.groups["system/server_status"]
    assert quick.stats is td.stats
    assert (group.requests, group.errors, group.retries) == (2, 1, 0)


async def test_a_view_retries_a_resources_calls_on_its_own_policy(
    emu: Emulator, td: aiotd.Client
) -> None:
    issued = await td.jobs.issue("select 1", database="sample_datasets")
    emu.faults.server_error("/v3/job/status/", status=503, count=1)
    with pytest.raises(errors.ServerError):
        await td.with_options(retry=NEVER).jobs.status(issued.job_id)
    emu.faults.server_error("/v3/job/status/", status=503, count=1)
    assert (await td.jobs.status(issued.job_id)).job_id == issued.job_id  # retried past it
    group = td.stats.groups["job/status"]
    assert (group.requests, group.retries) == (3, 1)


async def test_a_view_reads_a_result_stream_on_its_own_retry_budget(
    emu: Emulator, td: aiotd.Client
) -> None:
    issued = await td.jobs.issue("-- emulator: rows=10\nselect 1", database="sample_datasets")
    await td.jobs.wait(issued.job_id, timeout=10)
    emu.faults.truncate("/v3/job/result/", count=1)
    with pytest.raises(errors.TransportError):
        [row async for row in td.with_options(retry=NEVER).jobs.rows(issued.job_id)]
    emu.faults.truncate("/v3/job/result/", count=1)
    assert len([row async for row in td.jobs.rows(issued.job_id)]) == 10


async def test_a_views_waits_share_the_clients_engine_and_keep_its_options(
    td: aiotd.Client,
) -> None:
    issued = await td.jobs.issue("select 1", database="sample_datasets")
    hasty = td.with_options(timeout=aiotd.Timeouts(total=1e-6), retry=NEVER)
    with pytest.raises(errors.TransportError, match="timed out"):
        await hasty.jobs.status(issued.job_id)
    # the engine is made through the view, yet polls with the client's options: polls on
    # the view's timeout would all fail, and the wait would end in WaitTimeout
    job = await hasty.jobs.wait(issued.job_id, timeout=10)
    assert job.finished
    assert hasty.jobs.engine is td.jobs.engine


async def test_closing_a_view_leaves_its_client_open(emu: Emulator) -> None:
    async with aiotd.Client(emu.apikey, endpoint=emu.url, workflow_endpoint=emu.url) as td:
        async with td.with_options(retry=NEVER) as view:
            assert await view.server_status() == "ok"
        assert view.closed
        assert not td.closed
        assert "view" in repr(view)
        with pytest.raises(errors.ClientClosed):
            await view.server_status()
        assert await td.server_status() == "ok"
        other = td.with_options(retry=NEVER)
    # closing the client ends its views
    assert other.closed
    with pytest.raises(errors.ClientClosed):
        await other.jobs.status("1")
    with pytest.raises(errors.ClientClosed):
        td.with_options(retry=NEVER)
