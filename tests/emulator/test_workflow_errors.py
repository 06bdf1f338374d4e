"""Error answers of the Workflow emulator as digdag gives them: ``{"message", "status"}`` from
its exception mappers, and JAX-RS's own non-JSON 404/405 where no resource method matches."""

from __future__ import annotations

import aiohttp

from aiotd.testing import Emulator
from tests.emulator._workflow_support import get, push, serve

METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "LOCK"]


async def test_mapped_errors_are_message_and_status() -> None:
    async with serve() as s:
        missing = await get(s.http, "/api/projects/42", expect=404)
        assert missing == {"message": "Resource does not exist: project id=42", "status": 404}
        async with s.http.put("/api/attempts", json={"sessionTime": "x"}) as resp:
            assert resp.status == 400
            assert resp.content_type == "application/json"
            body = await resp.json()
        assert set(body) == {"message", "status"}
        assert body["status"] == 400


async def test_an_unknown_api_route_is_a_plain_404_for_every_method() -> None:
    # digdag ServerErrorStatusCodeIT: /api/no_such_api answers 404 whatever the method
    async with serve() as s:
        for method in METHODS:
            async with s.http.request(method, "/api/no_such_api") as resp:
                assert resp.status == 404, method
                assert resp.content_type == "text/plain", method
                assert await resp.text() == "404 Not Found"


async def test_a_wrong_method_is_405_and_a_malformed_id_404_neither_json() -> None:
    async with serve() as s:
        for method in ["POST", "PUT", "DELETE"]:
            async with s.http.request(method, "/api/version", data=b"") as resp:
                assert resp.status == 405, method
                assert resp.content_type == "text/plain"
                assert resp.headers["Allow"] == "GET"
        # a path parameter that does not convert: no resource matches (ServerErrorStatusCodeIT)
        async with s.http.get("/api/projects/no_such_id") as resp:
            assert resp.status == 404
            assert resp.content_type == "text/plain"
        # a query parameter that does not convert: JAX-RS answers 404, not digdag's JSON
        async with s.http.get("/api/sessions", params={"last_id": "x"}) as resp:
            assert resp.status == 404
            assert resp.content_type == "text/plain"
        await push(s.http, "ok", {"w.dig": "+t:\n  echo>: x\n"})  # the routes still work


async def test_through_the_emulator_v3_keeps_its_shape_and_the_key_is_still_checked() -> None:
    async with Emulator() as emu, aiohttp.ClientSession(base_url=emu.url) as http:
        headers = {"Authorization": f"TD1 {emu.apikey}"}
        async with http.get("/api/no_such_api", headers=headers) as resp:
            assert resp.status == 404
            assert await resp.text() == "404 Not Found"
        async with http.get("/api/projects/7", headers=headers) as resp:
            assert await resp.json() == {
                "message": "Resource does not exist: project id=7",
                "status": 404,
            }
        async with http.get("/v3/no_such_route", headers=headers) as resp:
            assert resp.status == 404
            assert "message" in await resp.json()  # the v3 side keeps TD's JSON errors
        async with http.get("/api/no_such_api") as resp:
            assert resp.status == 401
