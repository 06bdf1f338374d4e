"""The storage origin of the Workflow emulator: pre-signed URLs on another port, refused as S3
refuses them (an Authorization header, a bad or expired signature)."""

from __future__ import annotations

import gzip

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from aiotd.testing._workflow import WorkflowService
from tests.emulator._workflow_support import (
    FakeClock,
    archive,
    get,
    push,
    serve,
    start,
    wait_done,
    workflow_id,
)

FILES = {"w.dig": "+hello:\n  echo>: hello\n"}


async def _location(http: aiohttp.ClientSession, pid: str) -> URL:
    """Where the archive's 303 points."""
    async with http.get(f"/api/projects/{pid}/archive", allow_redirects=False) as resp:
        assert resp.status == 303
        location = URL(resp.headers["Location"])
        assert location.port != resp.url.port  # another origin than the API
        return location


async def test_urls_point_to_another_port_and_carry_an_expiring_signature() -> None:
    async with serve(dispatch_delay=0.0) as s:
        pid = (await push(s.http, "store", FILES))["id"]
        location = await _location(s.http, pid)
        assert location.port == s.service.storage.port
        assert location.host == "127.0.0.1"
        assert location.query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert location.query["X-Amz-Expires"] == "600"
        assert len(location.query["X-Amz-Signature"]) == 64
        async with aiohttp.ClientSession() as anonymous, anonymous.get(location) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/gzip"
            assert len(await resp.read()) == len(archive(FILES))

        attempt = await start(s.http, await workflow_id(s.http, pid, "w"))
        await wait_done(s.http, attempt["id"])
        files = (await get(s.http, f"/api/logs/{attempt['id']}/files"))["files"]
        direct = URL(files[0]["direct"])
        assert direct.port == s.service.storage.port
        async with aiohttp.ClientSession() as anonymous, anonymous.get(direct) as resp:
            assert resp.status == 200
            assert b"hello" in gzip.decompress(await resp.read())
        assert s.service.storage.statuses == {200: 2}


async def test_an_authorization_header_is_refused_as_s3_refuses_it() -> None:
    async with serve() as s:
        pid = (await push(s.http, "auth", FILES))["id"]
        location = await _location(s.http, pid)
        headers = {"Authorization": "TD1 1/secret-key"}
        async with aiohttp.ClientSession() as http, http.get(location, headers=headers) as resp:
            assert resp.status == 400
            assert resp.content_type == "application/xml"
            body = await resp.text()
        assert "<Code>InvalidArgument</Code>" in body
        assert "Only one auth mechanism allowed" in body
        assert "<ArgumentName>Authorization</ArgumentName>" in body
        assert "secret-key" not in body  # the key is not echoed back
        assert s.service.storage.statuses == {400: 1}


async def test_a_tampered_missing_or_expired_signature_is_refused() -> None:
    clock = FakeClock()
    async with serve(clock=clock, tick_interval=None, direct_url_expiry=60) as s:
        pid = (await push(s.http, "sig", FILES))["id"]
        location = await _location(s.http, pid)
        tampered = location.update_query({"X-Amz-Signature": "0" * 64})
        other_key = location.with_path(location.path[:-4] + "beef").with_query(location.query)
        unsigned = location.with_query(None)
        async with aiohttp.ClientSession() as http:
            for url, status, code in [
                (tampered, 403, "SignatureDoesNotMatch"),
                (other_key, 403, "SignatureDoesNotMatch"),  # the signature covers the path
                (unsigned, 403, "AccessDenied"),
            ]:
                async with http.get(url) as resp:
                    assert resp.status == status, url
                    assert f"<Code>{code}</Code>" in await resp.text()
            clock.advance(60)
            async with http.get(location) as resp:
                assert resp.status == 200  # still valid at its last second
            clock.advance(1)
            async with http.get(location) as resp:
                assert resp.status == 403
                assert "Request has expired" in await resp.text()
            fresh = await _location(s.http, pid)
            async with http.get(fresh) as resp:
                assert resp.status == 200


async def test_without_a_storage_origin_archives_come_in_place_and_logs_have_no_direct() -> None:
    service = WorkflowService(task_duration=0.01, dispatch_delay=0.0)
    app = web.Application()
    service.add_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
            pid = (await push(http, "local", FILES))["id"]
            async with http.get(f"/api/projects/{pid}/archive", allow_redirects=False) as resp:
                assert resp.status == 200
                assert len(await resp.read()) == len(archive(FILES))
            attempt = await start(http, await workflow_id(http, pid, "w"))
            await wait_done(http, attempt["id"])
            files = (await get(http, f"/api/logs/{attempt['id']}/files"))["files"]
            assert [f["direct"] for f in files] == [None]
    finally:
        await server.close()
        await service.close()
