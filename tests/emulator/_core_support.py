"""Helpers for the v3 emulator tests: a served Emulator with short timings and a client."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import msgpack
import pytest_asyncio

from aiotd.testing import Emulator


class Api:
    """A tiny v3 client over aiohttp: the tests read status codes and bodies directly."""

    def __init__(self, emu: Emulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session
        self.headers = {"Authorization": f"TD1 {emu.apikey}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        data: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, Any]:
        hdrs = dict(self.headers) if auth else {}
        hdrs.update(headers or {})
        async with self.session.request(
            method, self.emu.url + path, data=data, params=params, headers=hdrs
        ) as resp:
            raw = await resp.read()
            if resp.content_type == "application/json" and "/job/result/" not in path:
                return resp.status, await resp.json()
            return resp.status, raw

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, data: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, data=data if data is not None else {}, **kw)

    async def ok(self, method: str, path: str, **kw: Any) -> Any:
        status, body = await self.call(method, path, **kw)
        assert status == 200, (status, body)
        return body

    async def issue(self, query: str, db: str = "db1", **form: str) -> str:
        body = await self.ok("POST", f"/v3/job/issue/presto/{db}", data={"query": query, **form})
        return str(body["job_id"])

    async def wait(self, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = await self.ok("GET", f"/v3/job/status/{job_id}")
            if body["status"] in ("success", "error", "killed"):
                return await self.ok("GET", f"/v3/job/show/{job_id}")
            await asyncio.sleep(0.02)
        raise AssertionError(f"job {job_id} did not finish")


def msgpack_gz(records: list[dict[str, Any]]) -> bytes:
    """Records as TD's import format: a gzip'd stream of msgpack maps."""
    return gzip.compress(b"".join(msgpack.packb(r) for r in records))


def sample_records(n: int = 10) -> list[dict[str, Any]]:
    return [{"time": 1_700_000_000 + i, "n": i, "s": f"v{i}", "x": i / 2} for i in range(n)]


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(queued_time=0.05, running_time=0.1) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def api(emu: Emulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(emu, session)


@pytest_asyncio.fixture
async def loaded(api: Api) -> Api:
    """db1.events holds sample_records(10)."""
    await api.ok("POST", "/v3/database/create/db1", data={})
    await api.ok("POST", "/v3/table/create/db1/events/log", data={})
    body = msgpack_gz(sample_records())
    await api.ok("PUT", "/v3/table/import/db1/events/msgpack.gz", data=body)
    return api


Factory = Callable[..., Any]
