"""td.jobs result streams against hostile result servers built here: silent and cutting
servers on one retry budget, answers from another byte than asked, cut and non-array rows."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import math
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import aiotd
from aiotd import errors

from .conftest import KEY

#: The recorded ``job/show`` body of a finished job (td-client-go's TestShowJob).
JOB_SHOW = Path(__file__).parents[1] / "samples" / "v3" / "job_show.json"
POLICY = aiotd.RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02)
READ = 0.2
ETAG = '"result-1"'
CUT = 1000  # bytes a cutting server sends of each answer

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ResultServer:
    url: str = ""
    #: the ``Range`` header of each result request, in order (None: the whole result)
    ranges: list[str | None] = field(default_factory=list)
    #: the ``format`` asked by each result request, in order
    formats: list[str] = field(default_factory=list)


@asynccontextmanager
async def result_server(
    answer: Answer, *, result_size: int | None = None
) -> AsyncIterator[ResultServer]:
    """Finished job 1, shaped as the recorded ``job/show``, whose result ``answer`` serves."""
    record = json.loads(JOB_SHOW.read_text()) | {"job_id": "1", "result_size": result_size}
    state = ResultServer()

    async def show(request: web.Request) -> web.StreamResponse:
        return web.json_response(record)

    async def result(request: web.Request) -> web.StreamResponse:
        state.ranges.append(request.headers.get("Range"))
        state.formats.append(request.query["format"])
        return await answer(request)

    app = web.Application()
    app.router.add_get("/v3/job/show/{job_id}", show)
    app.router.add_get("/v3/job/result/{job_id}", result)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    state.url = str(server.make_url("")).rstrip("/")
    try:
        yield state
    finally:
        await server.close()


def client(server: ResultServer) -> aiotd.Client:
    timeout = aiotd.Timeouts(connect=2, read=READ, total=5)
    return aiotd.Client(KEY, endpoint=server.url, retry=POLICY, timeout=timeout)


def asked(request: web.Request) -> int:
    """The first byte a request asks for (``Range: bytes=N-``), 0 without a Range."""
    value = request.headers.get("Range", "bytes=0-")
    return int(value.removeprefix("bytes=").rstrip("-"))


async def send(
    request: web.Request,
    body: bytes,
    *,
    status: int = 200,
    cut: int | None = None,
    etag: str = ETAG,
    **headers: str,
) -> web.StreamResponse:
    """``body`` with its Content-Length; with ``cut``, only that many bytes, then the
    connection is closed."""
    resp = web.StreamResponse(status=status, headers={"ETag": etag, **headers})
    resp.content_length = len(body)
    await resp.prepare(request)
    if cut is not None and cut < len(body):
        await resp.write(body[:cut])
        assert request.transport is not None
        request.transport.close()
        return resp
    await resp.write(body)
    await resp.write_eof()
    return resp


def ranged(data: bytes, *, cut: int | None = None, cap: int | None = None) -> Answer:
    """A server that honours ``Range`` as RFC 9110 §14 says, sending at most ``cap`` bytes
    per 206 and cutting each answer after ``cut`` bytes."""

    async def answer(request: web.Request) -> web.StreamResponse:
        start = asked(request)
        if not start:
            return await send(request, data, cut=cut)
        end = len(data) if cap is None else min(len(data), start + cap)
        span = f"bytes {start}-{end - 1}/{len(data)}"
        return await send(request, data[start:end], status=206, cut=cut, **{"Content-Range": span})

    return answer


def csv_result(rows: int = 3000) -> bytes:
    return "".join(f"{i},user{i},{i * 1.5},{'x' * (i % 17)}\n" for i in range(rows)).encode()


def msgpack_result(rows: list[Any]) -> bytes:
    return b"".join(msgpack.packb(row) for row in rows)


def gzip_result(rows: list[Any]) -> bytes:
    return gzip.compress(msgpack_result(rows), mtime=0)


ROWS = [[i, f"user{i}", i * 1.5, "x" * (i % 17)] for i in range(3000)]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def read(
    td: aiotd.Client, how: str, directory: Path, seen: list[Any], fmt: str = "msgpack.gz"
) -> None:
    """One call of ``how``: ``rows`` or ``row_batches`` (rows appended to ``seen`` as they
    come, read as ``fmt``) or ``download`` (into ``directory``)."""
    if how == "rows":
        async for row in td.jobs.rows(1, format=fmt):
            seen.append(row)
    elif how == "row_batches":
        async for batch in td.jobs.row_batches(1, format=fmt):
            assert batch
            seen.extend(batch)
    else:
        await td.jobs.download(1, directory / "result.gz")


# -- one retry budget per call ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["rows", "row_batches", "download"])
async def test_a_silent_server_gets_max_attempts_tries_in_all_for_one_call(
    how: str, tmp_path: Path
) -> None:
    release = asyncio.Event()

    async def silent(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    async with result_server(silent, result_size=100) as server:
        try:
            async with client(server) as td:
                with pytest.raises(errors.TransportError):
                    await read(td, how, tmp_path, [])
                assert td.stats.groups["job/result"].retries == POLICY.max_attempts - 1
        finally:
            release.set()
    assert len(server.ranges) == POLICY.max_attempts
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("how", ["rows", "row_batches", "download"])
async def test_a_server_that_cuts_every_answer_gets_max_attempts_tries_in_all(
    how: str, tmp_path: Path
) -> None:
    data = gzip_result(ROWS)
    sent = CUT * POLICY.max_attempts
    assert len(data) > sent
    seen: list[Any] = []
    answer = ranged(data, cut=CUT)
    async with result_server(answer, result_size=len(data)) as server, client(server) as td:
        with pytest.raises(errors.TransportError):
            await read(td, how, tmp_path, seen)
    # every try resumed where the one before was cut, and there were max_attempts in all
    assert server.ranges == [None] + [f"bytes={CUT * n}-" for n in range(1, POLICY.max_attempts)]
    assert leftovers(tmp_path) == []
    if how != "download":
        whole_rows = msgpack.Unpacker()
        whole_rows.feed(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:sent]))
        assert seen == list(whole_rows)


# -- a resumed answer must be the bytes asked for ---------------------------------------------


def _from_byte_0(request: web.Request, data: bytes) -> Awaitable[web.StreamResponse]:
    span = f"bytes 0-{len(data) - 1}/{len(data)}"
    return send(request, data, status=206, **{"Content-Range": span})


def _no_content_range(request: web.Request, data: bytes) -> Awaitable[web.StreamResponse]:
    return send(request, data[asked(request) :], status=206)


def _another_length(request: web.Request, data: bytes) -> Awaitable[web.StreamResponse]:
    start, body = asked(request), data + b"9,extra\n"
    span = f"bytes {start}-{len(body) - 1}/{len(body)}"
    return send(request, body[start:], status=206, **{"Content-Range": span})


def _another_version(request: web.Request, data: bytes) -> Awaitable[web.StreamResponse]:
    start = asked(request)
    span = f"bytes {start}-{len(data) - 1}/{len(data)}"
    return send(request, data[start:], status=206, etag='"result-2"', **{"Content-Range": span})


BAD_RESUMES = {
    "from-byte-0": (_from_byte_0, "Content-Range 'bytes 0-"),
    "no-content-range": (_no_content_range, "without a valid Content-Range"),
    "another-length": (_another_length, "the result has"),
    "another-version": (_another_version, "ETag '\"result-2\"'"),
}


def cut_then(
    data: bytes, resume: Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]
) -> Answer:
    """The first answer is cut after ``CUT`` bytes; resumed requests get ``resume``."""

    async def answer(request: web.Request) -> web.StreamResponse:
        if not asked(request):
            return await send(request, data, cut=CUT)
        return await resume(request, data)

    return answer


@pytest.mark.parametrize("bad", BAD_RESUMES)
async def test_a_resumed_download_answered_with_other_bytes_raises_and_leaves_no_file(
    bad: str, tmp_path: Path
) -> None:
    resume, named = BAD_RESUMES[bad]
    data = csv_result()
    async with result_server(cut_then(data, resume)) as server, client(server) as td:
        with pytest.raises(errors.TransportError, match=named):
            await td.jobs.download(1, tmp_path / "result.csv", format="csv")
    # the mismatch is raised at once: the bytes already given cannot be taken back
    assert server.ranges == [None, f"bytes={CUT}-"]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("how", ["rows", "row_batches"])
async def test_rows_refuse_a_resumed_answer_from_byte_0(how: str, tmp_path: Path) -> None:
    data = gzip_result(ROWS)
    seen: list[Any] = []
    async with result_server(cut_then(data, _from_byte_0)) as server, client(server) as td:
        with pytest.raises(errors.TransportError, match="Content-Range 'bytes 0-"):
            await read(td, how, tmp_path, seen)
    whole_rows = msgpack.Unpacker()
    whole_rows.feed(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:CUT]))
    assert seen == list(whole_rows)  # no row twice


async def test_a_first_answer_from_another_byte_is_read_again_from_byte_0(
    tmp_path: Path,
) -> None:
    data = csv_result()
    answers = 0

    async def answer(request: web.Request) -> web.StreamResponse:
        nonlocal answers
        answers += 1
        if answers == 1:  # nothing is yielded yet: the read starts over cleanly
            span = f"bytes 100-{len(data) - 1}/{len(data)}"
            return await send(request, data[100:], status=206, **{"Content-Range": span})
        return await send(request, data)

    async with result_server(answer) as server, client(server) as td:
        path = await td.jobs.download(1, tmp_path / "result.csv", format="csv")
    assert path.read_bytes() == data
    assert server.ranges == [None, None]


@pytest.mark.parametrize("fmt", ["csv", "msgpack.gz"])
async def test_a_correct_resume_is_byte_exact(fmt: str, tmp_path: Path) -> None:
    data = csv_result() if fmt == "csv" else gzip_result(ROWS)
    cap = 4096  # the server sends at most this much per 206, as some servers cap ranges
    size = len(data) if fmt == "msgpack.gz" else None
    capped = ranged(data, cap=cap)
    answer = cut_then(data, lambda request, _: capped(request))
    async with result_server(answer, result_size=size) as server, client(server) as td:
        path = await td.jobs.download(1, tmp_path / f"result.{fmt}", format=fmt)
        assert path.read_bytes() == data
        assert leftovers(tmp_path) == [path.name]
        # a 206 that stops short is read whole and the rest asked for: no try is spent on it
        starts = [CUT + n * cap for n in range(math.ceil((len(data) - CUT) / cap))]
        assert len(starts) > POLICY.max_attempts
        assert server.ranges == [None] + [f"bytes={start}-" for start in starts]
        if fmt == "msgpack.gz":
            assert [row async for row in td.jobs.rows(1)] == ROWS


@pytest.mark.parametrize("how", ["rows", "row_batches"])
@pytest.mark.parametrize("fmt", ["msgpack.gz", "msgpack"])
async def test_rows_resume_mid_stream_with_every_row_once_in_order(
    fmt: str, how: str, tmp_path: Path
) -> None:
    data = gzip_result(ROWS) if fmt == "msgpack.gz" else msgpack_result(ROWS)
    if fmt == "msgpack":  # the cut falls inside a row, which the resumed bytes complete
        assert CUT not in itertools.accumulate(len(msgpack.packb(row)) for row in ROWS)
    seen: list[Any] = []
    resume = ranged(data)
    answer = cut_then(data, lambda request, _: resume(request))
    async with result_server(answer) as server, client(server) as td:
        await read(td, how, tmp_path, seen, fmt)
        assert td.stats.groups["job/result"].retries == 1
    assert seen == ROWS
    assert server.ranges == [None, f"bytes={CUT}-"]
    assert server.formats == [fmt, fmt]


# -- rows must be whole arrays ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tail", "named"),
    [
        (b"\x92\x01", "truncated"),  # an array of two with one element
        (b"\x93\x01\x92\x02", "truncated"),  # cut inside an array in the last row
        (msgpack.packb({"id": 1}), "not a msgpack array"),
        (msgpack.packb(7), "not a msgpack array"),
    ],
)
@pytest.mark.parametrize("how", ["rows", "row_batches"])
@pytest.mark.parametrize("fmt", ["msgpack.gz", "msgpack"])
async def test_rows_refuse_a_half_last_row_and_rows_that_are_not_arrays(
    tail: bytes, named: str, fmt: str, how: str, tmp_path: Path
) -> None:
    rows = ROWS[:50]
    data = msgpack_result(rows) + tail
    if fmt == "msgpack.gz":
        data = gzip.compress(data, mtime=0)
    seen: list[Any] = []
    async with result_server(ranged(data)) as server, client(server) as td:
        with pytest.raises(errors.DecodeError, match=named):
            await read(td, how, tmp_path, seen, fmt)
    assert seen == rows
    assert server.formats == [fmt]
