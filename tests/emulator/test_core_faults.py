"""Every fault kind the emulator injects, from Python and from the control endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from aiotd.testing import Emulator
from tests.emulator._core_support import Api, emu

__all__ = ["emu"]


@pytest_asyncio.fixture
async def fresh(emu: Emulator) -> AsyncIterator[Api]:
    """A client that opens a new connection per request (no keep-alive retry hides a fault)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Api(emu, session)


async def test_rate_limit_429_with_retry_after(emu: Emulator, fresh: Api) -> None:
    emu.faults.rate_limit("GET /v3/database/list", retry_after=7, count=1)
    async with fresh.session.get(emu.url + "/v3/database/list", headers=fresh.headers) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        body = await resp.json()
        assert set(body) == {"message"}
    assert (await fresh.get("/v3/database/list"))[0] == 200
    assert emu.counters.faults == {"rate_limit": 1}


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_json_and_html(emu: Emulator, fresh: Api, status: int) -> None:
    emu.faults.server_error("/v3/database/", status=status, count=1)
    emu.faults.server_error("/v3/database/", status=status, html=True, count=1)
    code, body = await fresh.get("/v3/database/list")
    assert code == status
    assert body == {"message": f"Internal server error (emulated {status})"}
    async with fresh.session.get(emu.url + "/v3/database/list", headers=fresh.headers) as resp:
        assert resp.status == status
        assert resp.content_type == "text/html"
        assert f"<h1>{status}" in await resp.text()
    assert (await fresh.get("/v3/database/list"))[0] == 200


async def test_reset_happens_before_the_request_is_applied(emu: Emulator, fresh: Api) -> None:
    emu.faults.reset("POST /v3/database/create/", count=1)
    with pytest.raises(aiohttp.ClientOSError):
        await fresh.post("/v3/database/create/db_reset")
    assert "db_reset" not in emu.core.store.databases
    assert emu.counters["POST /v3/database/create/{db}"] == 1


async def test_drop_applies_the_request_and_sends_nothing(emu: Emulator, fresh: Api) -> None:
    emu.faults.drop("POST /v3/database/create/{db}", count=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fresh.post("/v3/database/create/db_drop")
    assert "db_drop" in emu.core.store.databases
    assert (await fresh.post("/v3/database/create/db_drop"))[0] == 409


async def test_delay(emu: Emulator, fresh: Api) -> None:
    emu.faults.delay("/v3/system/", seconds=0.3, count=1)
    started = time.monotonic()
    assert (await fresh.get("/v3/system/server_status"))[0] == 200
    assert time.monotonic() - started >= 0.3


async def test_truncated_json_body(emu: Emulator, fresh: Api) -> None:
    emu.faults.truncate("GET /v3/account/show", count=1)
    async with fresh.session.get(emu.url + "/v3/account/show", headers=fresh.headers) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_truncated_result_download(emu: Emulator, fresh: Api) -> None:
    await fresh.ok("POST", "/v3/database/create/db1", data={})
    job_id = await fresh.issue("-- emulator: rows=500 queued=0 duration=0\nSELECT 1")
    await fresh.wait(job_id)
    emu.faults.truncate("/v3/job/result/", count=1)
    url = f"{emu.url}/v3/job/result/{job_id}?format=msgpack.gz"
    async with fresh.session.get(url, headers=fresh.headers) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert len(await fresh.ok("GET", f"/v3/job/result/{job_id}", params={"format": "json"}))


async def test_malformed_json(emu: Emulator, fresh: Api) -> None:
    emu.faults.malformed("GET /v3/account/show", count=1)
    async with fresh.session.get(emu.url + "/v3/account/show", headers=fresh.headers) as resp:
        assert resp.status == 200
        raw = await resp.read()
        assert int(resp.headers["Content-Length"]) == len(raw)
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


async def test_rate_is_deterministic_with_a_seed() -> None:
    patterns = []
    for _ in range(2):
        async with Emulator(fault_seed=42) as emulator, aiohttp.ClientSession() as session:
            emulator.faults.server_error("*", status=503, rate=0.5)
            api = Api(emulator, session)
            patterns.append([(await api.get("/v3/database/list"))[0] for _ in range(30)])
    assert patterns[0] == patterns[1]
    assert set(patterns[0]) == {200, 503}


async def test_match_forms_and_remove(emu: Emulator, fresh: Api) -> None:
    rule = emu.faults.server_error("GET /v3/job/")
    assert (await fresh.get("/v3/job/list"))[0] == 500
    assert (await fresh.post("/v3/job/kill/1"))[0] != 500
    assert (await fresh.get("/v3/database/list"))[0] == 200
    assert rule.hits == 1
    emu.faults.remove(rule)
    assert (await fresh.get("/v3/job/list"))[0] == 200


async def test_control_endpoint(emu: Emulator, fresh: Api) -> None:
    spec = [{"kind": "429", "match": "/v3/database/", "retry_after": 3, "count": 2}]
    code, body = await fresh.call("POST", "/_emulator/faults", data=json.dumps(spec))
    assert code == 200
    assert body["faults"][0]["kind"] == "rate_limit"
    assert (await fresh.get("/v3/database/list"))[0] == 429
    code, listed = await fresh.get("/_emulator/faults", auth=False)
    assert listed["faults"][0]["count"] == 1
    assert (await fresh.call("DELETE", "/_emulator/faults", auth=False))[0] == 200
    assert (await fresh.get("/v3/database/list"))[0] == 200
    bad = await fresh.call("POST", "/_emulator/faults", data='{"kind": "nope"}')
    assert bad[0] == 400
    counters = await fresh.ok("GET", "/_emulator/counters", auth=False)
    assert counters["faults"] == {"rate_limit": 1}
    assert counters["routes"]["GET /v3/database/list"] == 2
