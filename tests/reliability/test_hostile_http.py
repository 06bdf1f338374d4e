"""The HTTP layer against hostile servers built here: bad redirects, bodies replayed to other
hosts, endless and exploding answers, close() mid-work, rate-limit hints, one retry budget."""

from __future__ import annotations

import asyncio
import functools
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import aiotd
from aiotd import errors
from aiotd._resource import CoreResource, WorkflowResource

from ._servers import raw_server, read_head, rss_growth
from .conftest import KEY, Scripted, reply

if TYPE_CHECKING:
    from aiotd._http import RetryBudget

MiB = 1 << 20
FAST = aiotd.RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.02, max_retry_after=10)


def client(server: Scripted | str, **options: Any) -> aiotd.Client:
    url = server if isinstance(server, str) else server.url
    settings: dict[str, Any] = {"retry": FAST}
    settings.update(options)
    return aiotd.Client(KEY, endpoint=url, workflow_endpoint=url, **settings)


# -- malformed redirects ---------------------------------------------------------------------


@pytest.mark.parametrize("location", ["http://[::1", "https://:80/", "ftp://files.example.com/x"])
async def test_a_malformed_redirect_location_is_a_transport_error(
    scripted: Scripted, location: str
) -> None:
    scripted.on("/v3/job/status/1", reply(302, "", Location=location))
    scripted.on("/v3/job/result/1", reply(307, "", Location=location))
    async with client(scripted) as td:
        with pytest.raises(errors.TransportError, match="redirected to a malformed location"):
            await td.jobs.status("1")
        with pytest.raises(errors.TransportError, match="malformed location"):
            async with CoreResource(td)._stream("/v3/job/result/1"):
                pass
    # refused as it is, not retried: the next answer would be the same
    assert scripted.count("/v3/job/status/1") == 1


# -- bodies and redirects to another origin --------------------------------------------------


Seen = tuple[str, bytes, str | None, str | None]


@dataclass
class Other:
    """Another origin (another port) that records method, body, Authorization, Content-Type."""

    url: str
    seen: list[Seen] = field(default_factory=list)


def seen(request: web.Request, body: bytes) -> Seen:
    headers = request.headers
    return (request.method, body, headers.get("Authorization"), headers.get("Content-Type"))


@pytest.fixture
async def other() -> AsyncIterator[Other]:
    state = Other("")

    async def handler(request: web.Request) -> web.Response:
        state.seen.append(seen(request, await request.read()))
        return web.json_response({"apikey": "k", "key": "k", "project": {"id": "1", "name": "p"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    state.url = str(server.make_url("/steal"))
    try:
        yield state
    finally:
        await server.close()


SECRET = "s3cr3t-value-of-the-project"
PASSWORD = "hunter2-password"


@pytest.mark.parametrize("status", [307, 308])
async def test_a_307_308_replays_a_body_to_its_own_origin_only(
    scripted: Scripted, other: Other, status: int
) -> None:
    got: list[Seen] = []

    async def moved(request: web.Request) -> web.Response:
        got.append(seen(request, await request.read()))
        return web.json_response({"key": "db.password", "project": {"id": "1", "name": "p"}})

    scripted.on("/api/projects/1/secrets/db.password", reply(status, "", Location=other.url))
    scripted.on("/api/projects/1/secrets/mine", reply(status, "", Location="/moved"))
    scripted.on("/moved", moved)
    scripted.on("/v3/user/authenticate", reply(status, "", Location=other.url))
    async with client(scripted) as td:
        with pytest.raises(errors.TransportError, match="another origin") as put:
            await td.workflow.secrets.put(1, "db.password", value=SECRET)
        with pytest.raises(errors.TransportError, match="another origin"):
            await td.users.authenticate("me@example.com", password=PASSWORD)
        # on the same origin the request is repeated as it was: method, body and key
        await td.workflow.secrets.put(1, "mine", value=SECRET)
    assert other.seen == []
    assert SECRET not in str(put.value)
    # a refusal is final, not a fault to retry
    assert scripted.count("/api/projects/1/secrets/db.password") == 1
    assert len(got) == 1
    method, body, auth, _ = got[0]
    assert (method, auth) == ("PUT", f"TD1 {KEY}")
    assert SECRET.encode() in body


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_a_301_302_303_to_another_origin_carries_neither_body_nor_key(
    scripted: Scripted, other: Other, status: int
) -> None:
    scripted.on("/api/projects/1/secrets/db.password", reply(status, "", Location=other.url))
    scripted.on("/v3/user/authenticate", reply(status, "", Location=other.url))
    async with client(scripted) as td:
        if status == 303:
            await td.workflow.secrets.put(1, "db.password", value=SECRET)
        else:
            # a 301/302 keeps a PUT and its body (aiohttp, browsers): it would carry the secret
            with pytest.raises(errors.TransportError, match="another origin"):
                await td.workflow.secrets.put(1, "db.password", value=SECRET)
        await td.users.authenticate("me@example.com", password=PASSWORD)
    # aiohttp's rule (client.py): a 303, or a 301/302 to a POST, is followed with a GET,
    # without the body or what described it
    get = ("GET", b"", None, None)
    assert other.seen == ([get, get] if status == 303 else [get])


# -- the cap on whole answers ----------------------------------------------------------------


@functools.cache
def gzip_bomb() -> bytes:
    """512 MiB of zeros gzipped: about 509 KiB on the wire."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    return b"".join([*(deflate.compress(block) for _ in range(512)), deflate.flush()])


def streaming(total: int, *, length: int | None = None, sent: list[int]) -> Any:
    """A handler writing ``total`` bytes of JSON-ish text in 1 MiB writes (chunked unless
    ``length``), counting in ``sent`` what it could write before the client left."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if length is None:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = length
        await resp.prepare(request)
        block = b"a" * MiB
        try:
            await resp.write(b'{"job_id":"1","status":"running","x":"')
            while sent[0] < total:
                await resp.write(block)
                sent[0] += len(block)
        except (ConnectionError, RuntimeError):
            return resp
        await resp.write_eof()
        return resp

    return handler


async def _status(td: aiotd.Client) -> Any:
    return await td.jobs.status("1")


async def test_an_endless_chunked_status_answer_is_cut_at_the_cap(scripted: Scripted) -> None:
    sent = [0]
    # "endless": 256 MiB, a bound only so that a client without a cap is not run out of memory
    scripted.on("/v3/job/status/1", streaming(256 * MiB, sent=sent))
    async with client(scripted) as td:
        start = time.monotonic()
        growth, result = await rss_growth(_status(td))
        elapsed = time.monotonic() - start
    print(
        f"\nendless body: stopped after {sent[0] / MiB:.0f} MiB sent, RSS +{growth / MiB:.0f} MiB"
    )
    assert isinstance(result, errors.ResponseTooLarge), result
    assert isinstance(result, errors.DecodeError)
    assert result.limit == 64 * MiB
    assert "max_response_size" in str(result)
    assert growth < 100 * MiB, f"RSS grew {growth / MiB:.0f} MiB"
    assert sent[0] < 128 * MiB
    assert elapsed < 10
    assert scripted.count("/v3/job/status/1") == 1  # too large is final, not retried


async def test_a_gzip_bomb_is_refused_while_decoding(scripted: Scripted) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < 520 * 1024
    scripted.on(
        "/v3/job/status/1",
        reply(200, bomb, **{"Content-Encoding": "gzip"}),
    )
    async with client(scripted) as td:
        growth, result = await rss_growth(_status(td))
    print(f"\ngzip bomb: {len(bomb) / 1024:.0f} KiB -> 512 MiB, RSS +{growth / MiB:.0f} MiB")
    assert isinstance(result, errors.ResponseTooLarge), result
    assert growth < 100 * MiB, f"RSS grew {growth / MiB:.0f} MiB"


async def test_a_100_mb_job_show_is_refused_from_its_content_length(scripted: Scripted) -> None:
    sent = [0]
    size = 100_000_000
    scripted.on("/v3/job/show/1", streaming(size, length=size, sent=sent))
    async with client(scripted) as td:
        start = time.monotonic()
        growth, result = await rss_growth(td.jobs.get("1"))
        elapsed = time.monotonic() - start
    print(f"\n100 MB job/show: RSS +{growth / MiB:.0f} MiB in {elapsed:.2f}s")
    assert isinstance(result, errors.ResponseTooLarge), result
    assert growth < 100 * MiB, f"RSS grew {growth / MiB:.0f} MiB"
    assert elapsed < 2  # refused from the headers, not after reading


async def test_the_cap_is_configurable_and_the_default_holds_a_10000_job_page(
    scripted: Scripted,
) -> None:
    # a query of 3 KB in each item: TD lists every job with its query (samples/v3/job_list.json)
    query = "SELECT " + ", ".join(f"column_{i}" for i in range(300)) + " FROM events"
    job = (
        '{"job_id":"%d","status":"success","type":"presto","database":"db",'
        '"created_at":"2024-01-01 00:00:00 UTC","result_size":1024,"query":"' + query + '"}'
    )
    items = ",".join(job % i for i in range(10_000))
    page = '{"count":10000,"from":null,"to":null,"jobs":[' + items + "]}"
    assert len(page) > 32 * MiB
    scripted.on("/v3/job/list", reply(body=page))
    async with client(scripted) as td:
        jobs = await td.jobs.list(page_size=10_000)
    assert len(jobs) == 10_000
    async with client(scripted, max_response_size=MiB) as small:
        with pytest.raises(errors.ResponseTooLarge, match="1,048,576 bytes"):
            await small.jobs.list(page_size=10_000)
    with pytest.raises(ValueError, match="max_response_size"):
        client(scripted, max_response_size=0)


async def test_error_answers_are_read_only_up_to_a_short_cap(scripted: Scripted) -> None:
    sent = [0]

    async def huge_error(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=400, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            while sent[0] < 256 * MiB:
                await resp.write(b"no " * 100_000)
                sent[0] += 300_000
        except (ConnectionError, RuntimeError):
            pass
        return resp

    scripted.on("/v3/job/show/1", huge_error)
    async with client(scripted) as td:
        growth, result = await rss_growth(td.jobs.get("1"))
    assert isinstance(result, errors.BadRequest), result
    assert len(result.body) <= 1 << 20
    print(f"\nerror body: {sent[0] / MiB:.0f} MiB sent, RSS +{growth / MiB:.0f} MiB")
    assert growth < 16 * MiB


# -- close() cuts off what is under way ------------------------------------------------------


def gzip_rows(rows: int) -> bytes:
    """Rows of a msgpack.gz result, flushed so that the reader can decode them at once."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = b"".join(msgpack.packb([i, "x" * 20]) for i in range(rows))
    return deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH)


async def test_close_ends_a_rows_stream_mid_body_at_once() -> None:
    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        writer.write(head + b"Content-Length: 100000000\r\n\r\n" + gzip_rows(50))
        await writer.drain()
        await reader.read()  # then nothing more, until the client goes away

    async with raw_server(stalled) as url:
        td = client(url)
        got: list[Any] = []
        first = asyncio.Event()

        async def consume() -> None:
            async for row in td.jobs.rows("1"):
                got.append(row)
                first.set()

        reader = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5)
        await asyncio.sleep(0.1)
        start = time.monotonic()
        await td.close()
        closed = time.monotonic() - start
        done, _ = await asyncio.wait([reader], timeout=2)
        ended = time.monotonic() - start
    assert done, "the reader was still pending 2 s after close()"
    assert isinstance(reader.exception(), errors.ClientClosed), reader.exception()
    assert len(got) == 50
    assert closed < 1
    assert ended < 1


async def test_close_ends_a_raw_stream_and_new_ones_are_refused(scripted: Scripted) -> None:
    release = asyncio.Event()

    async def stalled(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 10 * MiB
        await resp.prepare(request)
        await resp.write(b"x" * 1000)
        await asyncio.wait_for(release.wait(), 10)
        return resp

    scripted.on("/api/logs/1/files/a", stalled)
    td = client(scripted)
    try:
        async with WorkflowResource(td)._stream("/api/logs/1/files/a") as resp:
            chunks = resp.iter_chunks()
            assert await chunks.__anext__() == b"x" * 1000
            closing = asyncio.create_task(td.close())
            with pytest.raises(errors.ClientClosed):
                await asyncio.wait_for(chunks.__anext__(), 1)
            await asyncio.wait_for(closing, 1)
        with pytest.raises(errors.ClientClosed):
            await td._http.request("GET", scripted.url + "/api/logs/1/files/a")
        with pytest.raises(errors.ClientClosed):
            await td.jobs.status("1")
    finally:
        release.set()


@pytest.mark.parametrize("status", [503, 429])
async def test_close_while_a_call_waits_to_retry_gives_client_closed_at_once(
    scripted: Scripted, status: int
) -> None:
    scripted.on("/v3/job/status/1", reply(status, "{}", **{"Retry-After": "5"}))
    scripted.on("/v3/job/show/2", reply(body='{"job_id":"2","status":"running"}'))
    td = client(scripted)
    waiting = asyncio.create_task(td.jobs.status("1"))
    await scripted.arrival("/v3/job/status/1")
    await asyncio.sleep(0.1)
    # a 429 whose hint is honoured holds back the client's other calls too
    held = asyncio.create_task(td.jobs.get("2")) if status == 429 else None
    await asyncio.sleep(0.1)
    start = time.monotonic()
    await td.close()
    for task in (waiting, held):
        if task is None:
            continue
        done, _ = await asyncio.wait([task], timeout=1)
        assert done, "still waiting 1 s after close()"
        assert isinstance(task.exception(), errors.ClientClosed), task.exception()
    assert time.monotonic() - start < 1
    assert scripted.count("/v3/job/status/1") == 1
    assert scripted.count("/v3/job/show/2") == 0


# -- rate-limit hints ------------------------------------------------------------------------


async def test_a_retry_after_beyond_the_cap_does_not_pause_later_calls(scripted: Scripted) -> None:
    scripted.on("/v3/job/status/1", reply(429, "{}", **{"Retry-After": "600"}))
    scripted.on("/v3/system/server_status", reply(body='{"status":"ok"}'))
    async with client(scripted, retry=aiotd.RetryPolicy(max_attempts=5, max_retry_after=5)) as td:
        with pytest.raises(errors.RateLimited) as info:
            await td.jobs.status("1")
        assert info.value.retry_after == 600
        start = time.monotonic()
        assert await asyncio.wait_for(td.server_status(), 1) == "ok"
        assert time.monotonic() - start < 0.5


async def test_a_429_under_retry_policy_never_does_not_pause_the_next_call(
    scripted: Scripted,
) -> None:
    scripted.on("/v3/job/status/1", reply(429, "{}", **{"Retry-After": "3"}))
    scripted.on("/v3/system/server_status", reply(body='{"status":"ok"}'))
    async with client(scripted, retry=aiotd.RetryPolicy.never()) as td:
        with pytest.raises(errors.RateLimited):
            await td.jobs.status("1")
        start = time.monotonic()
        assert await asyncio.wait_for(td.server_status(), 1) == "ok"
        assert time.monotonic() - start < 0.5
    assert scripted.count("/v3/job/status/1") == 1


async def test_the_hint_of_the_last_try_is_not_honoured_so_it_pauses_nothing(
    scripted: Scripted,
) -> None:
    scripted.on(
        "/v3/job/status/1",
        reply(429, "{}", **{"Retry-After": "0.2"}),
        reply(429, "{}", **{"Retry-After": "5"}),
    )
    scripted.on("/v3/system/server_status", reply(body='{"status":"ok"}'))
    policy = aiotd.RetryPolicy(max_attempts=2, max_retry_after=10)
    async with client(scripted, retry=policy) as td:
        start = time.monotonic()
        with pytest.raises(errors.RateLimited) as info:
            await td.jobs.status("1")
        assert info.value.retry_after == 5
        assert 0.2 <= time.monotonic() - start < 1  # the first hint was waited for
        start = time.monotonic()
        assert await asyncio.wait_for(td.server_status(), 1) == "ok"
        assert time.monotonic() - start < 0.5


# -- one retry budget for a resumed stream ---------------------------------------------------


async def test_stream_without_retries_sends_once(scripted: Scripted) -> None:
    scripted.on("/v3/job/result/1", reply(503, "{}"))
    async with client(scripted) as td:
        with pytest.raises(errors.ServerError):
            async with CoreResource(td)._stream("/v3/job/result/1", retries=False):
                pass
        assert scripted.count("/v3/job/result/1") == 1
        with pytest.raises(errors.ServerError):
            async with CoreResource(td)._stream("/v3/job/result/1"):
                pass
    assert scripted.count("/v3/job/result/1") == 1 + FAST.max_attempts


async def resumed(td: aiotd.Client, budget: RetryBudget, path: str, into: list[bytes]) -> None:
    """Read ``path`` again after each failure, as a resuming download does, on ``budget``."""
    while True:
        try:
            async with CoreResource(td)._stream(path, retries=False) as resp:
                async for chunk in resp.iter_chunks():
                    into.append(chunk)
            return
        except errors.TDError as exc:
            await budget.backoff(exc)


async def test_a_resumed_stream_on_one_budget_gets_max_attempts_tries_in_all() -> None:
    connections = 0

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"r" * 100)
        await writer.drain()

    async with raw_server(cut) as url, client(url) as td:
        budget = td._http.retry_budget()
        received: list[bytes] = []
        with pytest.raises(errors.TransportError):
            await resumed(td, budget, "/v3/job/result/1", received)
        assert budget.tries == FAST.max_attempts
        assert td.stats.groups["job/result"].retries == FAST.max_attempts - 1
    assert connections == FAST.max_attempts
    assert len(b"".join(received)) == 100 * FAST.max_attempts


async def test_a_budget_raises_what_is_not_worth_another_try_and_honours_hints(
    scripted: Scripted,
) -> None:
    scripted.on("/v3/job/result/1", reply(404, '{"message":"no such job"}'))
    scripted.on("/v3/job/result/2", reply(503, "{}", **{"Retry-After": "0.3"}))
    async with client(scripted) as td:
        budget = td._http.retry_budget()
        with pytest.raises(errors.NotFound):
            await resumed(td, budget, "/v3/job/result/1", [])
        assert budget.tries == 1
        start = time.monotonic()
        try:
            async with CoreResource(td)._stream("/v3/job/result/2", retries=False):
                pass
        except errors.ServerError as exc:
            await budget.backoff(exc)
        assert time.monotonic() - start >= 0.3
        assert budget.tries == 2
        closed = td._http.retry_budget()
        await td.close()
        with pytest.raises(errors.ClientClosed):
            await closed.backoff(errors.TransportError("cut", method="GET", url=scripted.url))
