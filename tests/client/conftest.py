"""A scripted aiohttp.web server on 127.0.0.1:0 for the HTTP layer's tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

KEY = "1/0123456789abcdef0123456789abcdef01234567"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Scripted:
    """Routes answer from a queue of handlers; the last one repeats. Requests are recorded."""

    server: TestServer
    scripts: dict[str, list[Handler]] = field(default_factory=dict)
    seen: list[web.Request] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    arrived: dict[str, asyncio.Event] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def on(self, path: str, *handlers: Handler) -> None:
        self.scripts[path] = list(handlers)

    async def arrival(self, path: str) -> None:
        """Wait until a request for ``path`` has reached the server."""
        await self.arrived.setdefault(path, asyncio.Event()).wait()

    def count(self, path: str) -> int:
        return sum(1 for r in self.seen if r.path == path)


def reply(status: int = 200, body: str | bytes = "{}", **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        data = body.encode() if isinstance(body, str) else body
        ctype = "application/json" if data[:1] in (b"{", b"[") else "text/html"
        return web.Response(status=status, body=data, content_type=ctype, headers=headers)

    return handler


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    app = web.Application()
    server = TestServer(app, host="127.0.0.1", port=0)
    state = Scripted(server)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        state.seen.append(request)
        state.headers.append(dict(request.headers))
        state.arrived.setdefault(request.path, asyncio.Event()).set()
        await request.read()
        handlers = state.scripts.get(request.path)
        if not handlers:
            return web.json_response({"message": f"no route {request.path}"}, status=404)
        handler = handlers.pop(0) if len(handlers) > 1 else handlers[0]
        return await handler(request)

    app.router.add_route("*", "/{tail:.*}", dispatch)
    await server.start_server()
    try:
        yield state
    finally:
        await server.close()
