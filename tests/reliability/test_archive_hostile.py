"""Project archives against a hostile server: cancels mid-extraction, refusals, bad projects.

The server is built here (aiohttp.web on 127.0.0.1:0) and answers
``GET /api/projects/{id}/archive``, the one request ``projects.download`` sends. A download
either puts the complete project at ``dest`` or leaves nothing at all beside it, and nothing
is written once a cancel has returned.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import io
import logging
import os
import tarfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import aiotd
from aiotd import errors

from .conftest import FAST_RETRY, KEY

#: Members of the large archive; extracting them takes seconds, cancelling must take far less.
MANY = 8_000
#: Files seen under the parent before the cancel is sent: extraction is under way.
STARTED = 200


@dataclass
class ArchiveServer:
    """Serves ``archive`` for any project and records every request that reaches it."""

    server: TestServer
    archive: bytes = b""
    seen: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def hostile() -> AsyncIterator[ArchiveServer]:
    app = web.Application()
    state = ArchiveServer(TestServer(app, host="127.0.0.1", port=0))

    async def archive(request: web.Request) -> web.StreamResponse:
        state.seen.append(request.path_qs)
        response = web.StreamResponse(headers={"Content-Type": "application/gzip"})
        await response.prepare(request)
        for start in range(0, len(state.archive), 1 << 16):
            await response.write(state.archive[start : start + (1 << 16)])
        await response.write_eof()
        return response

    async def anything(request: web.Request) -> web.StreamResponse:
        state.seen.append(request.path_qs)
        return web.json_response({"message": "not here"}, status=404)

    app.router.add_get("/api/projects/{id}/archive", archive)
    app.router.add_route("*", "/{tail:.*}", anything)
    await state.server.start_server()
    try:
        yield state
    finally:
        await state.server.close()


def client(server: ArchiveServer) -> aiotd.Client:
    return aiotd.Client(KEY, endpoint=server.url, workflow_endpoint=server.url, retry=FAST_RETRY)


def tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sql_files(count: int) -> list[tuple[str, bytes]]:
    return [(f"q{i // 500:03d}/f{i:05d}.sql", b"select %d\n" % i) for i in range(count)]


@functools.cache
def many_files() -> bytes:
    return tar_gz([("main.dig", b"+t:\n  echo>: t\n"), *sql_files(MANY)])


def entries(parent: Path) -> int:
    """Every file, directory and link under ``parent``, hidden ones included."""
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(parent))


def sql_count(parent: Path) -> int:
    return sum(1 for _, _, files in os.walk(parent) for name in files if name.endswith(".sql"))


async def extraction_started(parent: Path) -> None:
    """Return once the worker thread has written ``STARTED`` files somewhere under ``parent``."""
    with anyio.fail_after(60):
        # the file system has no event to wait on: look every few milliseconds
        while sql_count(parent) < STARTED:  # noqa: ASYNC110
            await asyncio.sleep(0.002)


# -- cancelled while extracting ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["task.cancel", "cancel scope"])
async def test_a_cancel_during_extraction_stops_the_writes_and_leaves_nothing(
    hostile: ArchiveServer, tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    hostile.archive = many_files()
    parent = tmp_path / "work"
    parent.mkdir()
    dest = parent / "project"
    async with client(hostile) as td:
        download = td.workflow.projects.download(7, dest, max_files=MANY + 1)
        if how == "task.cancel":
            task: asyncio.Task[Path] = asyncio.create_task(download)
            await extraction_started(parent)
            sent = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            with anyio.CancelScope() as scope:

                async def cancel_when_started() -> None:
                    await extraction_started(parent)
                    scope.cancel()

                canceller = asyncio.create_task(cancel_when_started())
                sent = time.monotonic()
                await download
            await canceller
            assert scope.cancelled_caught
        took = time.monotonic() - sent
        right_after = entries(parent)
        await asyncio.sleep(1.0)
        later = entries(parent)
    assert right_after == later == 0
    # no dest, no temporary directory, no partial archive
    assert os.listdir(parent) == []
    assert hostile.seen == ["/api/projects/7/archive"]
    if how == "task.cancel":
        # extracting every member takes seconds; the worker stops at the next member or chunk
        assert took < 1.0
    gc.collect()  # the worker's own error (it was stopped) is not left unretrieved
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_cancel_while_replacing_keeps_the_old_project(
    hostile: ArchiveServer, tmp_path: Path
) -> None:
    hostile.archive = many_files()
    parent = tmp_path / "work"
    (parent / "project").mkdir(parents=True)
    (parent / "project" / "old.dig").write_text("old")
    async with client(hostile) as td:
        task = asyncio.create_task(
            td.workflow.projects.download(7, parent / "project", max_files=MANY + 1, overwrite=True)
        )
        await extraction_started(parent)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert os.listdir(parent) == ["project"]
    assert os.listdir(parent / "project") == ["old.dig"]


# -- refusals leave nothing behind ------------------------------------------------------------


async def test_too_many_members_leave_nothing_beside_dest(
    hostile: ArchiveServer, tmp_path: Path
) -> None:
    hostile.archive = tar_gz([("main.dig", b"+t:\n  echo>: t\n"), *sql_files(5_100)])
    parent = tmp_path / "work"
    parent.mkdir()
    async with client(hostile) as td:
        with pytest.raises(errors.ArchiveError, match="more than 5000 members"):
            await td.workflow.projects.download(7, parent / "project", max_files=5_000)
    assert os.listdir(parent) == []


HOSTILE_LAST = {
    "parent": "../escaped.sql",
    "absolute": "/tmp/escaped.sql",
    "name-too-long": "q/" + "n" * 300 + ".sql",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_LAST))
async def test_a_hostile_member_after_good_ones_leaves_nothing(
    hostile: ArchiveServer, tmp_path: Path, kind: str
) -> None:
    hostile.archive = tar_gz([*sql_files(300), (HOSTILE_LAST[kind], b"x")])
    parent = tmp_path / "work"
    parent.mkdir()
    async with client(hostile) as td:
        with pytest.raises(errors.ArchiveError) as info:
            await td.workflow.projects.download(7, parent / "project")
    assert info.value.member == HOSTILE_LAST[kind]
    assert os.listdir(parent) == []
    assert os.listdir(tmp_path) == ["work"]


async def test_a_refused_archive_never_touches_an_existing_project(
    hostile: ArchiveServer, tmp_path: Path
) -> None:
    hostile.archive = tar_gz([*sql_files(300), ("../escaped.sql", b"x")])
    dest = tmp_path / "project"
    dest.mkdir()
    (dest / "old.dig").write_text("old")
    async with client(hostile) as td:
        with pytest.raises(errors.ArchiveError):
            await td.workflow.projects.download(7, dest, overwrite=True)
    assert os.listdir(tmp_path) == ["project"]
    assert os.listdir(dest) == ["old.dig"]


async def test_a_project_not_empty_is_refused_before_any_request(
    hostile: ArchiveServer, tmp_path: Path
) -> None:
    hostile.archive = many_files()
    dest = tmp_path / "project"
    dest.mkdir()
    (dest / "old.dig").write_text("old")
    async with client(hostile) as td:
        with pytest.raises(FileExistsError, match="overwrite=True"):
            await td.workflow.projects.download(7, dest)
    assert hostile.seen == []
    assert os.listdir(dest) == ["old.dig"]


# -- push: a project directory that cannot be read --------------------------------------------


@pytest.mark.parametrize("kind", ["name-too-long", "symlink-loop"])
async def test_push_of_an_unreadable_project_is_an_archive_error(
    hostile: ArchiveServer, tmp_path: Path, kind: str
) -> None:
    project = tmp_path / "src"
    project.mkdir()
    (project / "main.dig").write_text("+t:\n  echo>: t\n")
    if kind == "name-too-long":
        (project / "long").symlink_to("n" * 300)  # ENAMETOOLONG when followed
    else:
        (project / "a").symlink_to("b")  # ELOOP when followed
        (project / "b").symlink_to("a")
    async with client(hostile) as td:
        with pytest.raises(errors.ArchiveError) as info:
            await td.workflow.projects.push("demo", project)
    assert info.value.member in ("long", "a", "b")
    assert isinstance(info.value.__cause__, OSError)
    assert hostile.seen == []
