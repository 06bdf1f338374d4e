"""The client against the emulator's storage origin: archives and log files fetched from
pre-signed URLs on another port, which refuses any request carrying an Authorization header
(as S3 does), so the client's dropping of the API key on those requests is checked for real."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from aiotd.testing import Emulator
from tests.client._workflow_support import SIMPLE_DIG, client, emulator, write_project

LOG_ROUTE = "GET /api/logs/{id}/files/{file_name}"


async def test_push_download_and_read_a_log_through_the_storage_origin(tmp_path: Path) -> None:
    source = write_project(tmp_path / "src", {"main.dig": SIMPLE_DIG, "queries/q.sql": "SELECT 1"})
    async with emulator() as emu, client(emu) as td:
        storage = emu.workflow.storage
        pushed = await td.workflow.projects.push("presigned", source)

        dest = await td.workflow.projects.download(pushed.id, tmp_path / "back")
        assert (dest / "main.dig").read_text() == SIMPLE_DIG
        assert (dest / "queries" / "q.sql").read_text() == "SELECT 1"
        # the 303 was followed to the storage origin, and that origin accepted the request:
        # it would have answered 400 to one carrying the API key
        assert storage.statuses == {200: 1}
        assert emu.counters["GET /api/projects/{id}/archive"] == 1

        attempt = await td.workflow.attempts.start(project="presigned", workflow="main")
        await td.workflow.attempts.wait(attempt.id, timeout=10)
        [hello] = await td.workflow.logs.files(attempt.id, task="+main+hello")
        assert hello.direct is not None
        assert URL(hello.direct).port == storage.port != emu.port
        lines = [line async for line in td.workflow.logs.read(attempt.id, hello)]
        assert any(line.endswith("hello " + attempt.session_time[:10]) for line in lines)
        # read from storage, not through the API's fallback route
        assert storage.statuses == {200: 2}
        assert emu.counters[LOG_ROUTE] == 0


async def test_the_storage_origin_refuses_a_request_carrying_authorization() -> None:
    async with emulator() as emu, client(emu) as td:
        await td.workflow.projects.push("refuse", {"main.dig": SIMPLE_DIG})
        attempt = await td.workflow.attempts.start(project="refuse", workflow="main")
        await td.workflow.attempts.wait(attempt.id, timeout=10)
        files = await td.workflow.logs.files(attempt.id)
        direct = files[0].direct
        assert direct is not None
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"TD1 {emu.apikey}"}
            async with http.get(direct, headers=auth) as resp:
                assert resp.status == 400
                assert resp.content_type == "application/xml"
                body = await resp.text()
            assert "<Code>InvalidArgument</Code>" in body
            assert "Only one auth mechanism allowed" in body
            assert emu.apikey not in body
            async with http.get(direct) as resp:
                assert resp.status == 200
        assert emu.workflow.storage.statuses == {400: 1, 200: 1}


async def test_the_storage_origin_stops_with_the_emulator() -> None:
    async with Emulator() as emu:
        port = emu.workflow.storage.port
        assert port is not None
        assert port != emu.port
    assert emu.workflow is None
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{port}/")
