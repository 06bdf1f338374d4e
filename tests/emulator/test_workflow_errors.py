"""Error answers of the Workflow emulator as digdag gives them: ``{"message", "status"}`` from
its exception mappers, and JAX-RS's own non-JSON 404/405 where no resource method matches."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from aiotd.testing import Emulator

METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "LOCK"]


@pytest.fixture
async def api() -> AsyncIterator[tuple[Emulator, aiohttp.ClientSession]]:
    async with Emulator() as emu:
        headers = {"Authorization": f"TD1 {emu.apikey}"}
        async with aiohttp.ClientSession(base_url=emu.url, headers=headers) as http:
            yield emu, http


async def test_an_unknown_api_route_is_a_plain_404_for_every_method(
    api: tuple[Emulator, aiohttp.ClientSession],
) -> None:
    # digdag ServerErrorStatusCodeIT: /api/no_such_api answers 404 whatever the method
    _, http = api
    for method in METHODS:
        async with http.request(method, "/api/no_such_api") as resp:
            assert resp.status == 404, method
            assert resp.content_type == "text/plain", method
            assert await resp.text() == "404 Not Found"


async def test_a_wrong_method_is_405_and_a_malformed_id_404_neither_json(
    api: tuple[Emulator, aiohttp.ClientSession],
) -> None:
    _, http = api
    for method in ["POST", "PUT", "DELETE"]:
        async with http.request(method, "/api/version", data=b"") as resp:
            assert resp.status == 405, method
            assert resp.content_type == "text/plain"
            assert resp.headers["Allow"] == "GET"
    # a path parameter that does not convert: no resource matches (ServerErrorStatusCodeIT)
    async with http.get("/api/projects/no_such_id") as resp:
        assert resp.status == 404
        assert resp.content_type == "text/plain"
    # a query parameter that does not convert: JAX-RS answers 404, not digdag's JSON
    async with http.get("/api/sessions", params={"last_id": "x"}) as resp:
        assert resp.status == 404
        assert resp.content_type == "text/plain"
    async with http.get("/api/sessions") as resp:
        assert resp.status == 200


async def test_mapped_errors_stay_json_v3_keeps_its_shape_and_the_key_is_checked(
    api: tuple[Emulator, aiohttp.ClientSession],
) -> None:
    emu, http = api
    async with http.get("/api/projects/7") as resp:
        assert await resp.json() == {
            "message": "Resource does not exist: project id=7",
            "status": 404,
        }
    async with http.get("/v3/no_such_route") as resp:
        assert resp.status == 404
        assert "message" in await resp.json()  # the v3 side keeps TD's JSON errors
    async with aiohttp.ClientSession() as anonymous, anonymous.get(f"{emu.url}/api/x") as resp:
        assert resp.status == 401  # the key is checked before a route is looked for
