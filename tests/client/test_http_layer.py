"""The HTTP layer against a real server on 127.0.0.1: retries, errors, budget, secrecy."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
import pytest
from aiohttp import web

import aiotd
from aiotd import errors
from aiotd._resource import CoreResource

from .conftest import KEY, Scripted, reply

FAST = aiotd.RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.02)


class Status(msgspec.Struct):
    status: str


def client(server: Scripted, **kwargs: object) -> aiotd.Client:
    options: dict[str, object] = {"retry": FAST}
    options.update(kwargs)
    return aiotd.Client(KEY, endpoint=server.url, workflow_endpoint=server.url, **options)  # type: ignore[arg-type]


async def test_get_sends_td1_auth_and_user_agent(scripted: Scripted) -> None:
    scripted.on("/v3/x", reply(body='{"status":"ok"}'))
    async with client(scripted) as td:
        result = await CoreResource(td)._call("GET", "/v3/x", Status)
    assert result == Status("ok")
    sent = scripted.headers[0]
    assert sent["Authorization"] == f"TD1 {KEY}"
    assert sent["User-Agent"] == f"aiotd/{aiotd.__version__}"


async def test_get_retries_5xx_until_success(scripted: Scripted) -> None:
    scripted.on("/v3/x", reply(500), reply(503, "<html>down</html>"), reply(body='{"status":"ok"}'))
    async with client(scripted) as td:
        assert (await CoreResource(td)._call("GET", "/v3/x", Status)).status == "ok"
        assert td.stats.requests == 3
        assert td.stats.retries == 2
        assert td.stats.groups["x"].errors == 2


async def test_get_gives_up_after_max_attempts(scripted: Scripted) -> None:
    scripted.on("/v3/x", reply(500, '{"message":"internal"}'))
    async with client(scripted) as td:
        with pytest.raises(errors.ServerError, match="internal"):
            await CoreResource(td)._call("GET", "/v3/x", Status)
    assert scripted.count("/v3/x") == FAST.max_attempts


async def test_404_is_not_retried(scripted: Scripted) -> None:
    scripted.on("/v3/job/show/1", reply(404, '{"message":"Job not found","severity":"error"}'))
    async with client(scripted) as td:
        with pytest.raises(errors.NotFound) as info:
            await CoreResource(td)._call("GET", "/v3/job/show/1", Status)
    assert info.value.message == "Job not found"
    assert scripted.count("/v3/job/show/1") == 1


async def test_post_is_not_retried_on_5xx_unless_idempotent(scripted: Scripted) -> None:
    scripted.on("/v3/w", reply(500), reply(body='{"status":"ok"}'))
    async with client(scripted) as td:
        with pytest.raises(errors.ServerError):
            await CoreResource(td)._call("POST", "/v3/w", Status, data={"a": 1})
        assert scripted.count("/v3/w") == 1
        result = await CoreResource(td)._call(
            "POST", "/v3/w", Status, data={"a": 1}, idempotent=True
        )
    assert result.status == "ok"


async def test_form_values_are_sent_urlencoded(scripted: Scripted) -> None:
    captured: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        captured.update(await request.post())  # type: ignore[arg-type]
        return web.json_response({"status": "ok"})

    scripted.on("/v3/w", handler)
    async with client(scripted) as td:
        await CoreResource(td)._call(
            "POST", "/v3/w", Status, data={"query": "select 1", "flag": True, "x": None}
        )
    assert captured == {"query": "select 1", "flag": "true"}


async def test_retry_after_honoured_twice_then_success(scripted: Scripted) -> None:
    scripted.on(
        "/v3/x",
        reply(429, '{"message":"slow down"}', **{"Retry-After": "2"}),
        reply(429, '{"message":"slow down"}', **{"Retry-After": "2"}),
        reply(body='{"status":"ok"}'),
    )
    async with client(scripted) as td:
        start = time.monotonic()
        assert (await CoreResource(td)._call("GET", "/v3/x", Status)).status == "ok"
        elapsed = time.monotonic() - start
        assert td.stats.rate_limited == 2
    assert scripted.count("/v3/x") == 3
    assert elapsed >= 4.0


async def test_retry_after_beyond_the_cap_raises_at_once(scripted: Scripted) -> None:
    scripted.on("/v3/x", reply(429, '{"message":"later"}', **{"Retry-After": "600"}))
    policy = aiotd.RetryPolicy(max_attempts=5, max_retry_after=10)
    async with client(scripted, retry=policy) as td:
        with pytest.raises(errors.RateLimited) as info:
            await CoreResource(td)._call("GET", "/v3/x", Status)
    assert info.value.retry_after == 600
    assert scripted.count("/v3/x") == 1


async def test_429_pauses_every_caller_of_the_client(scripted: Scripted) -> None:
    arrivals: list[float] = []

    async def other(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        return web.json_response({"status": "ok"})

    scripted.on(
        "/v3/limited", reply(429, "{}", **{"Retry-After": "0.6"}), reply(body='{"status":"ok"}')
    )
    scripted.on("/v3/other", other)
    async with client(scripted) as td:
        start = time.monotonic()
        first = asyncio.create_task(CoreResource(td)._call("GET", "/v3/limited", Status))
        await scripted.arrival("/v3/limited")
        await asyncio.sleep(0.05)
        await CoreResource(td)._call("GET", "/v3/other", Status)
        await first
    # The other call was held back by the client-wide pause, not sent straight away.
    assert arrivals[0] - start >= 0.5


async def test_timeouts_raise_transport_error(scripted: Scripted) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({"status": "ok"})

    scripted.on("/v3/slow", slow)
    timeouts = aiotd.Timeouts(connect=1, read=0.1, total=0.2)
    retry = aiotd.RetryPolicy(max_attempts=2, initial_delay=0.01)
    async with client(scripted, timeout=timeouts, retry=retry) as td:
        with pytest.raises(errors.TransportError, match="timed out"):
            await CoreResource(td)._call("GET", "/v3/slow", Status)
    assert scripted.count("/v3/slow") == 2


async def test_connection_refused_is_a_transport_error() -> None:
    retry = aiotd.RetryPolicy(max_attempts=2, initial_delay=0.01)
    async with aiotd.Client(KEY, endpoint="http://127.0.0.1:1", retry=retry) as td:
        with pytest.raises(errors.TransportError, match="127.0.0.1:1"):
            await CoreResource(td)._call("GET", "/v3/x", Status)
        assert td.stats.requests == 2


async def test_html_502_gives_server_error_with_readable_message(scripted: Scripted) -> None:
    page = (
        "<html><head><title>502 Bad Gateway</title></head>"
        "<body><h1>502 Bad Gateway</h1></body></html>"
    )
    scripted.on("/v3/x", reply(502, page))
    async with client(scripted, retry=aiotd.RetryPolicy.never()) as td:
        with pytest.raises(errors.ServerError) as info:
            await CoreResource(td)._call("GET", "/v3/x", Status)
    assert info.value.status == 502
    assert info.value.message == "502 Bad Gateway"


async def test_malformed_json_gives_decode_error(scripted: Scripted) -> None:
    scripted.on("/v3/x", reply(body='{"status": "ok", "tru'))
    async with client(scripted) as td:
        with pytest.raises(errors.DecodeError, match="Status"):
            await CoreResource(td)._call("GET", "/v3/x", Status)
    assert scripted.count("/v3/x") == 1


async def test_wrong_key_gives_auth_error_with_td_message(scripted: Scripted) -> None:
    scripted.on("/v3/x", reply(401, '{"error":"Authentication failed","severity":"error"}'))
    async with client(scripted) as td:
        with pytest.raises(errors.AuthError, match="Authentication failed"):
            await CoreResource(td)._call("GET", "/v3/x", Status)
    assert scripted.count("/v3/x") == 1


async def test_cancellation_is_not_retried_or_wrapped(scripted: Scripted) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({"status": "ok"})

    scripted.on("/v3/slow", slow)
    async with client(scripted) as td:
        task = asyncio.create_task(CoreResource(td)._call("GET", "/v3/slow", Status))
        await scripted.arrival("/v3/slow")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert scripted.count("/v3/slow") == 1


async def test_redirect_to_another_host_drops_authorization(scripted: Scripted) -> None:
    from aiohttp.test_utils import TestServer

    seen: list[str | None] = []

    async def storage(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=b"archive-bytes")

    other = web.Application()
    other.router.add_get("/bucket/obj", storage)
    store = TestServer(other, host="localhost", port=0)
    await store.start_server()
    try:
        target = str(store.make_url("/bucket/obj"))
        scripted.on("/api/projects/1/archive", reply(303, "", Location=target))
        async with client(scripted) as td:
            response = await td._http.request("GET", scripted.url + "/api/projects/1/archive")
    finally:
        await store.close()
    assert response.body == b"archive-bytes"
    assert seen == [None]
    assert scripted.headers[0]["Authorization"] == f"TD1 {KEY}"


async def test_key_never_in_logs_repr_or_errors(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.on("/v3/x", reply(500, f'{{"message":"echo {KEY}"}}'))
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    td = client(scripted)
    texts.append(repr(td))
    async with td:
        with pytest.raises(errors.ServerError) as info:
            await CoreResource(td)._call("GET", "/v3/x", Status)
    texts.append("\n".join(r.getMessage() for r in caplog.records))
    assert any("retry" in r.getMessage() for r in caplog.records)
    assert KEY not in texts[0]
    assert KEY not in texts[1]
    # The server echoed the key back: the error keeps TD's text with the key redacted.
    error = info.value
    assert error.message == "echo ***"
    assert KEY not in str(error) + repr(error) + error.body + error.url
    assert KEY not in repr(td)


async def test_closed_client_cannot_be_reopened(scripted: Scripted) -> None:
    scripted.on("/v3/x", reply(body='{"status":"ok"}'))
    td = client(scripted)
    async with td:
        await CoreResource(td)._call("GET", "/v3/x", Status)
    assert td.closed
    with pytest.raises(errors.ClientClosed, match="closed"):
        await CoreResource(td)._call("GET", "/v3/x", Status)
    with pytest.raises(errors.ClientClosed, match="closed"):
        async with td:
            pass
    with pytest.raises(RuntimeError):  # a programming mistake, as a RuntimeError too
        await td._http.request("GET", scripted.url + "/v3/x")


async def test_budget_caps_requests_in_flight(scripted: Scripted) -> None:
    in_flight = 0
    peak = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return web.json_response({"status": "ok"})

    scripted.on("/v3/x", handler)
    async with client(scripted, max_connections=3) as td:
        await asyncio.gather(*(CoreResource(td)._call("GET", "/v3/x", Status) for _ in range(20)))
    assert peak == 3


async def test_stream_reads_body_in_chunks(scripted: Scripted) -> None:
    payload = bytes(range(256)) * 1000
    scripted.on("/v3/job/result/1", reply(body=payload))
    async with client(scripted) as td:
        chunks = []
        async with td._http.stream("GET", scripted.url + "/v3/job/result/1") as resp:
            assert resp.status == 200
            async for chunk in resp.iter_chunks(4096):
                assert len(chunk) <= 4096
                chunks.append(chunk)
        assert b"".join(chunks) == payload
        assert td.stats.bytes_in == len(payload)


async def test_trace_configs_are_passed_through(scripted: Scripted) -> None:
    import aiohttp

    started: list[str] = []

    async def on_start(
        session: object, ctx: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        started.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    scripted.on("/v3/x", reply(body='{"status":"ok"}'))
    async with client(scripted, trace_configs=[trace]) as td:
        await CoreResource(td)._call("GET", "/v3/x", Status)
    assert started == [scripted.url + "/v3/x"]
