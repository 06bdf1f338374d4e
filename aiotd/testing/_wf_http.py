"""Request parsing and error answers shared by the Workflow API routes of the emulator."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn

import msgspec
from aiohttp import web

__all__ = [
    "Fail",
    "Handler",
    "bool_query",
    "int_query",
    "json_body",
    "missing",
    "page",
    "path_id",
    "plain_errors",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Fail(Exception):
    """Answer with digdag's error shape ``{"message", "status"}`` (reference §4), or ``body``."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


def missing(kind: str, ident: object) -> NoReturn:
    """digdag's 404 for an id that names nothing."""
    raise Fail(404, f"Resource does not exist: {kind} id={ident}")


@web.middleware
async def plain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under ``/api``, a path no route matches, a method it lacks or a parameter that does not
    convert is answered by JAX-RS itself: a 404 or 405 whose body is not digdag's JSON
    (reference §4; digdag's ServerErrorStatusCodeIT: ``/api/no_such_api`` is 404 for every
    method, ``POST /api/version`` 405). Other paths keep their own error shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.lstrip("/").startswith("api/"):
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.Response(status=exc.status, text=f"{exc.status} {exc.reason}", headers=headers)


def path_id(request: web.Request, name: str = "id") -> int:
    """The numeric id in the path (the route's pattern admits only digits)."""
    return int(request.match_info[name])


def int_query(request: web.Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter; one that does not convert is a plain 404 (reference §1)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPNotFound() from None


def bool_query(request: web.Request, name: str, default: bool = False) -> bool:
    """JAX-RS ``Boolean.valueOf``: only ``true`` in any case is true (reference §1)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.lower() == "true"


async def json_body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object; an empty body is ``{}`` unless ``required``."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise Fail(400, "Request body is required")
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise Fail(400, f"Invalid JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise Fail(400, "Request body must be a JSON object")
    return body


def page(items: Iterable[Any], size: int) -> list[Any]:
    """The first ``size`` items."""
    return list(itertools.islice(items, size))
