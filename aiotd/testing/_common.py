"""Small helpers shared by the emulator's routes: JSON answers, TD error bodies, timestamps."""

from __future__ import annotations

import functools
import time
from typing import Any, Literal, get_args

import msgspec
from aiohttp import web

__all__ = [
    "LISTING_COUNTS",
    "APIError",
    "ListingCount",
    "bool_param",
    "form_params",
    "int_param",
    "iso_z",
    "json_response",
    "listing_count",
    "td_error",
    "td_time",
]

_encoder = msgspec.json.Encoder()

#: What an offset listing's ``count`` reports. The recorded bodies disagree: td-client-go's
#: job/list fixture (samples/v3/job_list.json) has count 4 with 4 jobs ("page"),
#: td-client-python's has count 11 for from 0 to 10 with 3 jobs ("span"), and the guide shows
#: count 20 for a default page, which fits "span" or the number of matching jobs ("total").
ListingCount = Literal["page", "span", "total"]
LISTING_COUNTS: tuple[str, ...] = get_args(ListingCount)


def listing_count(meaning: str, page: int, span: int, total: int) -> int:
    """The ``count`` of a listing page under ``meaning`` (see ``ListingCount``)."""
    if meaning == "page":
        return page
    if meaning == "span":
        return max(span, 0)
    return total


def json_response(data: Any, status: int = 200) -> web.Response:
    """Encode ``data`` with msgspec (fast) as an ``application/json`` answer."""
    return web.Response(body=_encoder.encode(data), status=status, content_type="application/json")


def td_error(status: int, message: str, **extra: Any) -> web.Response:
    """A TD error answer: ``{"message": ...}`` as every recorded v3 error body has it
    (samples/v3/error_*.json), plus extras such as a 409's ``details.conflicts_with``."""
    return json_response({"message": message, **extra}, status)


class APIError(Exception):
    """Raised by route code to answer with a TD error body; the middleware renders it."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def response(self) -> web.Response:
        return td_error(self.status, self.message, **self.extra)


def td_time(ts: float | None) -> str | None:
    """Format epoch seconds as TD's ``"2016-07-26 08:14:46 UTC"`` (None stays None)."""
    if ts is None:
        return None
    return _td_second(int(ts))


@functools.lru_cache(maxsize=8192)
def _td_second(second: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(second))


def iso_z(ts: float | None) -> str | None:
    """Format epoch seconds as ISO ``"2014-10-04T01:13:20Z"`` (table counters, schedules, users)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def form_params(request: web.Request) -> dict[str, str]:
    """Query and body parameters merged; bodies may be multipart or url-encoded (v3-api §0)."""
    params: dict[str, str] = dict(request.query)
    if request.method in ("POST", "PUT") and request.can_read_body:
        ctype = request.content_type
        if ctype.startswith("multipart/") or ctype == "application/x-www-form-urlencoded":
            post = await request.post()
            for key, value in post.items():
                if isinstance(value, str):
                    params[key] = value
                elif isinstance(value, (bytes, bytearray)):
                    params[key] = bytes(value).decode("utf-8", "replace")
                else:
                    params[key] = value.file.read().decode("utf-8", "replace")
        elif ctype == "application/json":
            try:
                data = msgspec.json.decode(await request.read())
            except msgspec.DecodeError as exc:
                raise APIError(400, f"Invalid JSON body: {exc}") from exc
            if isinstance(data, dict):
                for key, value in data.items():
                    params[str(key)] = (
                        value if isinstance(value, str) else msgspec.json.encode(value).decode()
                    )
    return params


def int_param(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    """An integer parameter; a value that is not an integer is a 400 as TD answers."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise APIError(400, f"Invalid {name}: {raw!r} is not an integer") from None


def bool_param(params: dict[str, str], name: str, default: bool = False) -> bool:
    """A boolean parameter: ``true``/``True``/``1`` (Py sends capitalised ``True``, v3-api §7.8)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("true", "1", "yes")
