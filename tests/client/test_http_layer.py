"""The HTTP layer against a real server on 127.0.0.1: retries, errors, budget, secrecy."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import TimeoutHandle

import aiotd
from aiotd import errors
from aiotd._http import HTTP
from aiotd._resource import CoreResource

from .conftest import KEY, Handler, Scripted, reply

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


def stalling(release: asyncio.Event, head: bytes = b"") -> Handler:
    """A handler that sends its headers, then ``head`` of a longer body, then nothing more
    until ``release`` (before its headers when ``head`` is None)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(head) + 100
        await resp.prepare(request)
        await resp.write(head)
        await asyncio.wait_for(release.wait(), 10)
        return resp

    return handler


async def test_a_silent_server_times_out_after_read_before_total(scripted: Scripted) -> None:
    release = asyncio.Event()

    async def silent(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 10)
        return web.json_response({"status": "ok"})

    scripted.on("/v3/silent", silent)
    scripted.on("/v3/cut", stalling(release, b'{"status": '))
    timeouts = aiotd.Timeouts(connect=1, read=0.2, total=30)
    try:
        async with client(scripted, timeout=timeouts, retry=aiotd.RetryPolicy.never()) as td:
            for path in ("/v3/silent", "/v3/cut"):  # no headers yet / a body cut short
                start = time.monotonic()
                with pytest.raises(errors.TransportError, match="timed out"):
                    await CoreResource(td)._call("GET", path, Status)
                assert time.monotonic() - start < 2
    finally:
        release.set()


async def test_the_read_timeout_counts_from_the_last_byte(scripted: Scripted) -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        body = b'{"status": "ok", "pad": "' + b"x" * 6 + b'"}'
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(body)
        await resp.prepare(request)
        for i in range(0, len(body), 5):
            await asyncio.sleep(0.1)
            await resp.write(body[i : i + 5])
        return resp

    scripted.on("/v3/slow", trickle)
    # 8 pieces 0.1 s apart: the whole body takes twice the read timeout, each gap a third
    timeouts = aiotd.Timeouts(connect=1, read=0.4, total=30)
    async with client(scripted, timeout=timeouts, retry=aiotd.RetryPolicy.never()) as td:
        assert await CoreResource(td)._call("GET", "/v3/slow", Status) == Status("ok")


async def test_a_shorter_read_timeout_holds_on_a_reused_connection(scripted: Scripted) -> None:
    ports: list[int] = []
    release = asyncio.Event()
    stall = stalling(release)

    async def fast(request: web.Request) -> web.StreamResponse:
        ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        return web.json_response({"status": "ok"})

    async def slow(request: web.Request) -> web.StreamResponse:
        ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        return await stall(request)

    scripted.on("/v3/fast", fast)
    scripted.on("/v3/slow", slow)
    try:
        async with client(scripted, timeout=aiotd.Timeouts(read=60, total=60)) as td:
            await CoreResource(td)._call("GET", "/v3/fast", Status)  # a read timer 60 s out
            view = td.with_options(
                timeout=aiotd.Timeouts(read=0.2, total=30), retry=aiotd.RetryPolicy.never()
            )
            start = time.monotonic()
            with pytest.raises(errors.TransportError, match="timed out"):
                await CoreResource(view)._call("GET", "/v3/slow", Status)
            assert time.monotonic() - start < 2
    finally:
        release.set()
    assert ports[0] == ports[1]  # the same connection


async def test_a_call_schedules_one_timer_whatever_its_chunks(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = 16
        await resp.prepare(request)
        await resp.write(b'{"status": ')
        await asyncio.sleep(0)  # the rest in a packet of its own
        await resp.write(b'"ok"}')
        return resp

    scripted.on("/v3/x", chunked)
    loop = asyncio.get_running_loop()
    timers: list[object] = []
    call_at = loop.call_at

    def counting(when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        if isinstance(getattr(callback, "__self__", None), (ResponseHandler, TimeoutHandle)):
            timers.append(callback)  # the client's: aiohttp's total timer, a read timer
        return call_at(when, callback, *args, context=context)

    async with client(scripted) as td:
        await CoreResource(td)._call("GET", "/v3/x", Status)  # the connection made
        monkeypatch.setattr(loop, "call_at", counting)
        for _ in range(20):
            assert await CoreResource(td)._call("GET", "/v3/x", Status) == Status("ok")
    # aiohttp's own read timer is scheduled again for the request and for each chunk
    assert len(timers) <= 20 + 2


async def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    http = HTTP(apikey=KEY, timeouts=aiotd.Timeouts(), retry=FAST, max_connections=1)
    http._in_flight = 1  # a call holds the only slot
    handed, behind, gone = (asyncio.create_task(http._wait_slot()) for _ in range(3))
    await asyncio.sleep(0)
    gone.cancel()  # cancelled while waiting: no longer in the queue
    with pytest.raises(asyncio.CancelledError):
        await gone
    http._free_slot()  # the slot goes to the first waiter...
    handed.cancel()  # ...cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await handed
    await asyncio.wait_for(behind, 1)  # it passed the slot on
    assert http._in_flight == 1
    assert not http._slot_waiters
    http._free_slot()
    assert http._in_flight == 0


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
