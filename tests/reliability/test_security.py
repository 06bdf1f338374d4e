"""Security: the API key never leaks, TLS is verified, redirects keep the key home."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import aiotd
from aiotd import errors
from aiotd._http import RedactedCause
from aiotd._resource import CoreResource, WorkflowResource
from aiotd.testing import Emulator

from ._servers import raw_server, read_head
from .conftest import FAST_RETRY, KEY, Scripted, add_fault_mix, client_for, reply

LOGGERS = ("", "aiotd", "aiohttp", "aiohttp.client", "aiohttp.server", "aiohttp.web", "asyncio")


def secrets_of(key: str) -> list[str]:
    """The key and its secret part (after ``1/``), raw and as a URL would escape it."""
    secret = key.split("/", 1)[-1]
    return [key, secret, key.replace("/", "%2F")]


def assert_clean(texts: list[str], key: str) -> None:
    for text in texts:
        for secret in secrets_of(key):
            assert secret not in text, f"the API key appears in: {text[:300]!r}"


def exception_texts(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    texts.extend(str(value) for value in vars(exc).values())
    return texts


class Recorder(logging.Handler):
    """Every record, formatted with its traceback, at every level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def recorder() -> AsyncIterator[Recorder]:
    handler = Recorder()
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        yield handler  # type: ignore[misc]
    finally:
        logging.getLogger().removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def url_trace(urls: list[str]) -> aiohttp.TraceConfig:
    async def on_start(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        urls.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    return trace


async def _capture(texts: list[str], awaitable: Any) -> Any:
    try:
        return await awaitable
    except Exception as exc:
        texts.extend(exception_texts(exc))
        return exc


async def test_the_key_never_appears_in_logs_reprs_errors_or_urls(
    emu: Emulator, recorder: Recorder, tmp_path: Path
) -> None:
    urls: list[str] = []
    texts: list[str] = []
    seen: list[Any] = []
    td = client_for(emu, trace_configs=[url_trace(urls)])
    texts.append(repr(td))
    async with td:
        await td.databases.create("sec")
        add_fault_mix(emu, total=0.3)
        emu.faults.malformed("GET /v3/job/show/{job_id}", rate=0.1)
        ids = [
            (await td.jobs.issue(f"-- emulator: rows=2000 pad=20\nselect {i}", database="sec"))
            for i in range(6)
        ]
        seen.extend(ids)
        for issued in ids:
            job = await _capture(texts, td.jobs.wait(issued.job_id, timeout=30))
            seen.append(job)
        async for event in td.jobs.watch([i.job_id for i in ids]):
            seen.append(event)
        emu.faults.clear()
        emu.faults.truncate("GET /v3/job/result/", count=2)
        await _capture(texts, td.jobs.download(ids[0].job_id, tmp_path / "r.msgpack.gz"))
        emu.faults.server_error("GET /v3/database/list", status=500)
        await _capture(texts, td.databases.list())
        emu.faults.reset("GET /v3/account/show")
        await _capture(texts, td.account())
        emu.faults.clear()
        await _capture(texts, td.jobs.get("999999"))
        await _capture(texts, td.jobs.wait(ids[0].job_id, timeout=0))
        long_job = await td.jobs.issue("-- emulator: running=30\nselect 1", database="sec")
        await _capture(texts, td.jobs.wait(long_job.job_id, timeout=0.2))
        if emu.workflow is not None:
            project = await td.workflow.projects.push("sec", {"a.dig": "+t:\n  echo>: x\n"})
            seen.append(project)
            await _capture(texts, td.workflow.projects.download(project.id, tmp_path / "p"))
            await _capture(texts, td.workflow.attempts.get("424242"))
        texts.extend([repr(td), repr(td.jobs), repr(td.stats), str(td.stats.as_dict())])
    async with aiotd.Client(
        KEY, endpoint=emu.url, retry=aiotd.RetryPolicy.never(), trace_configs=[url_trace(urls)]
    ) as wrong:
        await _capture(texts, wrong.account())
        texts.append(repr(wrong))
    async with aiotd.Client(KEY, endpoint="http://127.0.0.1:1", retry=FAST_RETRY) as refused:
        await _capture(texts, refused.account())
    texts.extend(repr(item) for item in seen)
    assert td.stats.retries > 0  # the run did go through retries and failures
    assert any("retry" in text for text in recorder.texts)
    assert len(texts) > 20
    assert urls
    assert_clean(texts, emu.apikey)
    assert_clean(recorder.texts, emu.apikey)
    assert_clean(urls, emu.apikey)
    # the wrong key (given to a client) is as secret as the right one
    assert_clean(texts + recorder.texts + urls, KEY)


async def test_the_key_stays_out_of_urls_and_errors_at_a_scripted_server(
    scripted: Scripted, recorder: Recorder
) -> None:
    scripted.on("/v3/job/show/1", reply(500), reply(502, "<html>gateway</html>"), reply(404))
    scripted.on("/v3/job/status/1", reply(429, "{}", **{"Retry-After": "0.05"}), reply(200, "{"))
    texts: list[str] = []
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=FAST_RETRY) as td:
        results = [
            await _capture(texts, td.jobs.get("1")),
            await _capture(texts, td.jobs.status("1")),
            await _capture(texts, td.jobs.issue("select 1", database="db")),
        ]
    assert [type(r) for r in results] == [errors.NotFound, errors.DecodeError, errors.NotFound]
    assert_clean([request.path_qs for request in scripted.seen], KEY)
    assert_clean([str(request.url) for request in scripted.seen], KEY)
    assert_clean(texts + recorder.texts, KEY)
    assert all(h["Authorization"] == f"TD1 {KEY}" for h in scripted.headers)


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
async def https_url(tls_files: tuple[Path, Path]) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/v3/system/server_status", status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_tls_is_verified_by_default(https_url: str) -> None:
    async with aiotd.Client(KEY, endpoint=https_url, retry=aiotd.RetryPolicy.never()) as td:
        with pytest.raises(errors.TransportError, match="(?i)certificate") as info:
            await td.server_status()
        assert td.stats.requests == 1
    assert_clean(exception_texts(info.value), KEY)


async def test_turning_verification_off_needs_an_argument_and_warns(
    https_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="aiotd"):
        td = aiotd.Client(KEY, endpoint=https_url, verify_ssl=False)
    assert any("verification is turned off" in r.getMessage() for r in caplog.records)
    async with td:
        assert await td.server_status() == "ok"


# -- redirects -------------------------------------------------------------------------------


@pytest.fixture
async def storage() -> AsyncIterator[tuple[str, list[str | None]]]:
    """Another host (``localhost`` while the API is on 127.0.0.1) recording Authorization."""
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=b"stored-bytes", content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = TestServer(app, host="localhost", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/bucket/object?sig=abc")), seen
    finally:
        await server.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_authorization_is_not_sent_to_another_host_on_a_redirect(
    scripted: Scripted, storage: tuple[str, list[str | None]], status: int, streamed: bool
) -> None:
    target, seen = storage
    # a same-host hop first (keeps the key), then the hop to the other host (drops it)
    scripted.on("/api/archive", reply(status, "", Location="/api/archive/moved"))
    scripted.on("/api/archive/moved", reply(status, "", Location=target))
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        if streamed:
            async with WorkflowResource(td)._stream("/api/archive") as resp:
                body = b"".join([chunk async for chunk in resp.iter_chunks()])
        else:
            body = (await WorkflowResource(td)._request("GET", "/api/archive")).body
    assert body == b"stored-bytes"
    assert seen == [None]
    assert [h.get("Authorization") for h in scripted.headers] == [f"TD1 {KEY}"] * 2


async def test_a_redirect_back_from_another_host_does_not_regain_the_key(
    scripted: Scripted,
) -> None:
    seen: list[str | None] = []

    async def bounce(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        raise web.HTTPFound(scripted.url + "/api/final")

    app = web.Application()
    app.router.add_get("/bounce", bounce)
    other = TestServer(app, host="localhost", port=0)
    await other.start_server()
    try:
        scripted.on("/api/start", reply(302, "", Location=str(other.make_url("/bounce"))))
        scripted.on("/api/final", reply(200, '{"ok": true}'))
        async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
            await WorkflowResource(td)._request("GET", "/api/start")
    finally:
        await other.close()
    assert seen == [None]
    assert scripted.headers[0].get("Authorization") == f"TD1 {KEY}"
    assert "Authorization" not in scripted.headers[1]


async def test_project_archives_from_the_emulator_follow_its_redirect(
    emu: Emulator, tmp_path: Path
) -> None:
    if emu.workflow is None:
        pytest.skip("the emulator serves no Workflow API here (pyyaml missing)")
    async with client_for(emu) as td:
        project = await td.workflow.projects.push("arch", {"a.dig": "+t:\n  echo>: x\n"})
        out = await td.workflow.projects.download(project.id, tmp_path / "p")
    assert (out / "a.dig").read_text() == "+t:\n  echo>: x\n"
    assert emu.counters["GET /api/projects/{id}/archive"] == 1


# -- plain http, the emulator's own defaults -------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "warns"),
    [
        ("http://api.example.com", True),
        ("http://10.0.0.5:8080", True),
        ("http://127.0.0.1.example.com", True),
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("http://[::1]:8000", False),
        ("https://api.example.com", False),
        ("api.example.com", False),
    ],
)
def test_plain_http_to_a_host_off_this_machine_warns(
    caplog: pytest.LogCaptureFixture, endpoint: str, warns: bool
) -> None:
    with caplog.at_level(logging.WARNING, logger="aiotd"):
        aiotd.Client(KEY, endpoint=endpoint, workflow_endpoint="https://wf.example.com")
    warned = [r for r in caplog.records if "plain http" in r.getMessage()]
    assert bool(warned) is warns
    assert_clean([r.getMessage() for r in caplog.records], KEY)


async def test_the_emulator_binds_loopback_and_refuses_requests_without_the_key() -> None:
    async with Emulator() as emu:
        assert emu.host == "127.0.0.1"
        assert emu.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"Authorization": "TD1 wrong"}, {"Authorization": emu.apikey}):
                async with session.get(emu.url + "/v3/database/list", headers=headers) as resp:
                    assert resp.status == 401
            auth = {"Authorization": f"TD1 {emu.apikey}"}
            async with session.get(emu.url + "/v3/database/list", headers=auth) as resp:
                assert resp.status == 200


# -- files -----------------------------------------------------------------------------------


async def test_a_download_does_not_overwrite_an_existing_file(
    emu: Emulator, tmp_path: Path
) -> None:
    target = tmp_path / "keep.msgpack.gz"
    target.write_bytes(b"precious")
    async with client_for(emu) as td:
        await td.databases.create("files")
        job = await td.jobs.issue("select 1", database="files")
        await td.jobs.wait(job.job_id, timeout=10)
        with pytest.raises(FileExistsError):
            await td.jobs.download(job.job_id, target)
    assert target.read_bytes() == b"precious"


async def test_cancelled_download_leaves_no_partial_file(emu: Emulator, tmp_path: Path) -> None:
    async with client_for(emu) as td:
        await td.databases.create("files")
        job = await td.jobs.issue("-- emulator: rows=150000 pad=40\nselect 1", database="files")
        await td.jobs.wait(job.job_id, timeout=30)
        emu.faults.delay("GET /v3/job/result/", seconds=0.3)
        task = asyncio.create_task(td.jobs.download(job.job_id, tmp_path / "r.gz"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert listing(tmp_path) == []


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- servers that echo the key ---------------------------------------------------------------


def chain_texts(exc: BaseException) -> list[str]:
    """str and repr of ``exc``, of every exception it was raised from or in, and of every
    attribute of each (aiohttp's request_info holds the request headers), plus tracebacks."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        texts += [str(item), repr(item), *(repr(arg) for arg in item.args)]
        for value in vars(item).values():
            texts += [str(value), repr(value)]
            if isinstance(value, BaseException):
                todo.append(value)
        todo.extend(e for e in (item.__cause__, item.__context__) if e is not None)
    return texts


def echoing(status: int, shape: str) -> Any:
    """A handler that answers with the request's Authorization header in its body."""

    async def handler(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if shape == "json":
            headers = dict(request.headers)
            body = {"message": f"bad header Authorization: {auth}", "headers": headers}
            return web.json_response(body, status=status)
        if shape == "escaped":  # JSON may escape '/' as '\/'
            escaped = auth.replace("/", "\\/")
            text = '{"error": "key ' + escaped + ' refused"}'
            return web.Response(status=status, text=text, content_type="application/json")
        page = f"<html><title>Proxy</title><body>you sent Authorization: {auth}</body></html>"
        return web.Response(status=status, text=page, content_type="text/html")

    return handler


@pytest.mark.parametrize(
    ("status", "shape", "error"),
    [
        (400, "json", errors.BadRequest),
        (400, "escaped", errors.BadRequest),
        (502, "html", errors.ServerError),
        (200, "html", errors.DecodeError),
        (200, "escaped", errors.DecodeError),
    ],
)
async def test_a_server_echoing_the_key_does_not_put_it_in_errors_or_logs(
    scripted: Scripted, recorder: Recorder, status: int, shape: str, error: type[Exception]
) -> None:
    scripted.on("/v3/job/show/1", echoing(status, shape))
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=FAST_RETRY) as td:
        with pytest.raises(error) as info:
            await td.jobs.get("1")
    assert f"TD1 {KEY}" in scripted.headers[0]["Authorization"]  # the server did get it
    texts = chain_texts(info.value)
    assert_clean(texts, KEY)
    assert_clean(recorder.texts, KEY)
    assert "***" in str(info.value) + getattr(info.value, "body", "")  # redacted, not dropped
    if isinstance(info.value, errors.APIError):
        assert_clean([info.value.message, info.value.body], KEY)


async def test_the_cli_does_not_print_an_echoed_key(
    scripted: Scripted,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from aiotd.cli import main

    for name in ("TD_API_KEY", "TD_API_SERVER", "TD_WORKFLOW_SERVER", "TD_CONFIG_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    scripted.on("/v3/job/show/1", echoing(400, "json"))
    capsys.readouterr()
    args = ["jobs", "show", "1", "--apikey", KEY, "--endpoint", scripted.url]
    code = await asyncio.to_thread(main, args)
    captured = capsys.readouterr()
    assert code == 1
    assert "BadRequest" in captured.err
    assert_clean([captured.err, captured.out], KEY)


async def _bad_status_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 OK-ish\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


async def _open_stream(td: aiotd.Client) -> None:
    async with CoreResource(td)._stream("/v3/job/result/1"):
        pass


@pytest.mark.parametrize("retry", [aiotd.RetryPolicy.never(), FAST_RETRY], ids=["once", "retried"])
@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_a_malformed_status_line_chains_its_cause_without_the_key(
    retry: aiotd.RetryPolicy, streamed: bool
) -> None:
    async with (
        raw_server(_bad_status_line) as url,
        aiotd.Client(KEY, endpoint=url, retry=retry) as td,
    ):
        with pytest.raises(errors.TransportError) as info:
            await (_open_stream(td) if streamed else td.jobs.status("1"))
    # aiohttp's ClientResponseError holds the request's headers: it is chained as a copy
    # naming it, raised from the parser's own error, with nothing of the request
    cause = info.value.__cause__
    assert isinstance(cause, RedactedCause)
    assert "aiohttp.client_exceptions.ClientResponseError" in str(cause)
    assert "Bad status line" in str(cause)
    assert isinstance(cause.__cause__, aiohttp.http_exceptions.HttpProcessingError)
    assert info.value.__context__ is None
    text = "".join(traceback.format_exception(info.value))
    assert "The above exception was the direct cause" in text
    assert_clean(chain_texts(info.value), KEY)


async def _cut_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    await writer.drain()


async def _read_result(td: aiotd.Client) -> None:
    async with CoreResource(td)._stream("/v3/job/result/1") as resp:
        async for _ in resp.iter_chunks():
            pass


async def test_a_cut_body_and_a_refused_connection_chain_aiohttps_own_errors() -> None:
    async with (
        raw_server(_cut_body) as url,
        aiotd.Client(KEY, endpoint=url, retry=aiotd.RetryPolicy.never()) as td,
    ):
        with pytest.raises(errors.TransportError) as cut:
            await _read_result(td)
    # what aiohttp raised holds no request here: it is chained as it is, for isinstance
    assert isinstance(cut.value.__cause__, aiohttp.ClientPayloadError)
    assert_clean(chain_texts(cut.value), KEY)

    async with raw_server(_cut_body) as url:
        pass  # the port is free again: nothing listens
    async with aiotd.Client(KEY, endpoint=url, retry=aiotd.RetryPolicy.never()) as td:
        with pytest.raises(errors.TransportError) as refused:
            await td.server_status()
    # aiohttp's connector error holds the connection key: a redacted copy naming it, raised
    # from the OSError itself
    cause = refused.value.__cause__
    assert isinstance(cause, RedactedCause)
    assert "aiohttp.client_exceptions.ClientConnectorError" in str(cause)
    assert isinstance(cause.__cause__, ConnectionRefusedError)
    assert_clean(chain_texts(refused.value), KEY)
