"""td.workflow.logs: file lists, gunzipped lines, direct URLs without the key, truncated files."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import datetime, timezone

import pytest
from aiohttp import web

import aiotd
from aiotd import errors
from aiotd.workflow.logs import LogLines
from tests.client._workflow_support import SIMPLE_DIG, client, emulator
from tests.client.conftest import KEY, Scripted, reply

LOG = "".join(f"2024-01-01 00:00:0{i} +0000 [INFO] line {i}\n" for i in range(5)).encode()


def feed_all(decoder: LogLines, data: bytes, step: int) -> list[str]:
    lines: list[str] = []
    for start in range(0, len(data), step):
        lines.extend(decoder.feed(data[start : start + step]))
    return lines + decoder.close()


@pytest.mark.parametrize("step", [1, 7, 1 << 16])
def test_lines_of_a_gzip_in_any_chunking(step: int) -> None:
    lines = feed_all(LogLines(), gzip.compress(LOG), step)
    assert lines == LOG.decode().splitlines()


def test_several_gzip_members_are_one_file() -> None:
    data = gzip.compress(b"a\nb") + gzip.compress(b"c\n")
    assert feed_all(LogLines(), data, 5) == ["a", "bc"]


def test_a_truncated_gzip_keeps_what_it_decoded() -> None:
    whole = gzip.compress(LOG * 50)
    lines = feed_all(LogLines(), whole[: len(whole) // 2], 100)
    expected = (LOG * 50).decode().splitlines()
    assert 0 < len(lines) < len(expected)
    assert lines[:-1] == expected[: len(lines) - 1]
    assert expected[len(lines) - 1].startswith(lines[-1])  # the cut line, as far as it got


def test_a_gzip_bomb_is_stopped() -> None:
    bomb = gzip.compress(bytes(50 << 20))  # 50 MiB of zeros in about 50 KiB
    with pytest.raises(errors.DecodeError, match="more than"):
        feed_all(LogLines(max_size=1 << 20), bomb, 1 << 16)


def test_plain_text_and_long_lines() -> None:
    assert feed_all(LogLines(), b"plain\r\ntext", 3) == ["plain", "text"]
    assert feed_all(LogLines(max_line=4), b"abcdefghij\nxy\n", 3) == ["abcd", "efgh", "ij", "xy"]


def test_corrupt_gzip_is_a_decode_error() -> None:
    data = bytearray(gzip.compress(LOG))
    data[12] ^= 0xFF
    with pytest.raises(errors.DecodeError):
        feed_all(LogLines(), bytes(data), 1 << 16)


async def test_logs_of_an_attempt_on_the_emulator() -> None:
    async with emulator() as emu, client(emu) as td:
        await td.workflow.projects.push("proj", {"main.dig": SIMPLE_DIG})
        started = await td.workflow.attempts.start(
            project="proj", workflow="main", session_time=datetime(2024, 1, 2, tzinfo=timezone.utc)
        )
        await td.workflow.attempts.wait(started.id, timeout=10)
        files = await td.workflow.logs.files(started.id)
        assert sorted({f.task_name for f in files}) == ["+main+hello", "+main+world"]
        # the `+` of the task prefix must arrive as `+`, not as a space
        hello = await td.workflow.logs.files(started.id, task="+main+hello")
        assert [f.task_name for f in hello] == ["+main+hello"]
        lines = [line async for line in td.workflow.logs.read(started.id, hello[0])]
        assert any(line.endswith("hello 2024-01-02") for line in lines)
        by_name = await td.workflow.logs.text(started.id, hello[0].file_name)
        assert by_name == "".join(line + "\n" for line in lines)
        without_direct = await td.workflow.logs.files(started.id, direct_download=False)
        assert all(f.direct is None for f in without_direct)


def files_reply(direct: str | None) -> str:
    handle = {
        "fileName": "+wf+step@1.a.log.gz",
        "fileSize": 10,
        "taskName": "+wf+step",
        "fileTime": "2024-01-01T00:00:00Z",
        "agentId": "a",
        "direct": direct,
    }
    return json.dumps({"files": [handle]})


async def test_direct_url_is_read_without_the_key(scripted: Scripted) -> None:
    direct = scripted.url.replace("127.0.0.1", "localhost") + "/bucket/log.gz?X-Sig=abc"
    scripted.on("/api/logs/9/files", reply(200, files_reply(direct)))
    scripted.on("/bucket/log.gz", reply(200, gzip.compress(LOG)))
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        (handle,) = await td.workflow.logs.files(9, task="+wf+step")
        lines = [line async for line in td.workflow.logs.read(9, handle)]
    assert lines == LOG.decode().splitlines()
    listing, storage = scripted.seen
    assert listing.raw_path.endswith("?task=%2Bwf%2Bstep")
    assert storage.query["X-Sig"] == "abc"
    assert "Authorization" not in scripted.headers[1]


async def test_a_refused_direct_url_falls_back_to_the_api(scripted: Scripted) -> None:
    direct = scripted.url + "/bucket/expired.gz"
    scripted.on("/api/logs/9/files", reply(200, files_reply(direct)))
    scripted.on("/bucket/expired.gz", reply(403, "<Error>Request has expired</Error>"))
    scripted.on("/api/logs/9/files/+wf+step@1.a.log.gz", reply(200, gzip.compress(LOG)))
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        (handle,) = await td.workflow.logs.files(9)
        lines = [line async for line in td.workflow.logs.read(9, handle)]
    assert lines == LOG.decode().splitlines()
    api = scripted.seen[-1]
    assert api.raw_path == "/api/logs/9/files/%2Bwf%2Bstep%401.a.log.gz"
    assert scripted.headers[-1]["Authorization"] == f"TD1 {KEY}"


async def test_a_file_still_being_written_reads_as_far_as_it_goes(scripted: Scripted) -> None:
    whole = zlib.compressobj(wbits=31)
    partial = whole.compress(LOG) + whole.flush(zlib.Z_SYNC_FLUSH)  # no gzip trailer yet

    async def log_file(request: web.Request) -> web.StreamResponse:
        return web.Response(body=partial, content_type="application/gzip")

    scripted.on("/api/logs/9/files/f.log.gz", log_file)
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        lines = [line async for line in td.workflow.logs.read(9, "f.log.gz")]
    assert lines == LOG.decode().splitlines()
