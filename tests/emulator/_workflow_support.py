"""Helpers for the Workflow emulator tests: a served WorkflowService, archives, a fake job store."""

from __future__ import annotations

import asyncio
import io
import itertools
import tarfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiotd.testing._workflow import WorkflowService


@dataclass
class FakeJobs:
    """A JobRunner whose jobs stay running until the test finishes them."""

    issued: list[dict[str, str]] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def issue_job(self, *, database: str, query: str, engine: str = "presto") -> str:
        job_id = str(next(self._ids))
        self.issued.append({"id": job_id, "database": database, "query": query, "engine": engine})
        self.status[job_id] = "running"
        return job_id

    def job_status(self, job_id: str) -> str:
        return self.status[job_id]

    def kill(self, job_id: str) -> str:
        former = self.status[job_id]
        if former == "running":
            self.status[job_id] = "killed"
        return former


class FakeClock:
    """A clock the test moves by hand, so state walks are exact."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Served:
    service: WorkflowService
    jobs: FakeJobs
    http: aiohttp.ClientSession


@asynccontextmanager
async def serve(**options: Any) -> AsyncIterator[Served]:
    """A WorkflowService on 127.0.0.1:0 with a FakeJobs and a client session."""
    jobs = FakeJobs()
    options.setdefault("task_duration", 0.05)
    service = WorkflowService(jobs=jobs, **options)
    app = web.Application()
    service.add_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    await service.start("127.0.0.1")
    url = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession(base_url=url) as http:
            yield Served(service, jobs, http)
    finally:
        await server.close()
        await service.close()


def archive(files: dict[str, str | bytes]) -> bytes:
    """A project tar.gz built as a client would."""
    buffer = io.BytesIO()
    with tarfile.open(mode="w:gz", fileobj=buffer) as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def push(
    http: aiohttp.ClientSession,
    project: str,
    files: dict[str, str | bytes],
    *,
    revision: str = "r1",
    expect: int = 200,
    **params: str,
) -> Any:
    data = archive(files)
    async with http.put(
        "/api/projects",
        params={"project": project, "revision": revision, **params},
        data=data,
        headers={"Content-Type": "application/gzip"},
    ) as resp:
        assert resp.status == expect, await resp.text()
        return await resp.json()


async def get(http: aiohttp.ClientSession, path: str, expect: int = 200, **params: Any) -> Any:
    async with http.get(path, params=params) as resp:
        assert resp.status == expect, await resp.text()
        return await resp.json()


async def start(
    http: aiohttp.ClientSession,
    workflow_id: str,
    *,
    session_time: str = "2024-01-01T00:00:00Z",
    expect: int = 200,
    **extra: Any,
) -> Any:
    body = {"workflowId": workflow_id, "sessionTime": session_time, "params": {}, **extra}
    async with http.put("/api/attempts", json=body) as resp:
        assert resp.status == expect, await resp.text()
        return await resp.json()


async def workflow_id(http: aiohttp.ClientSession, project_id: str, name: str) -> str:
    body = await get(http, f"/api/projects/{project_id}/workflows/{name}")
    return str(body["id"])


async def wait_done(
    http: aiohttp.ClientSession,
    attempt_id: str,
    *,
    timeout: float = 5.0,
    on_tasks: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Any:
    """Poll an attempt until done; ``on_tasks`` sees every task list on the way."""
    deadline = time.monotonic() + timeout
    while True:
        if on_tasks is not None:
            on_tasks((await get(http, f"/api/attempts/{attempt_id}/tasks"))["tasks"])
        attempt = await get(http, f"/api/attempts/{attempt_id}")
        if attempt["done"]:
            return attempt
        assert time.monotonic() < deadline, f"attempt {attempt_id} not done: {attempt}"
        await asyncio.sleep(0.01)


def by_name(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {task["fullName"]: task for task in tasks}
