"""The one seam to the network: session pool, requests, retries, errors, statistics.

This is the only client module that imports aiohttp. Everything it raises belongs to
``aiotd.errors``; ``asyncio.CancelledError`` passes through untouched and is never retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import aiohttp
import backoff
import msgspec
import yarl

from aiotd._config import RetryPolicy, Timeouts
from aiotd._version import __version__
from aiotd.errors import (
    APIError,
    DecodeError,
    RateLimited,
    TDError,
    TransportError,
    error_for_status,
)

__all__ = [
    "HTTP",
    "GroupStats",
    "Response",
    "Stats",
    "decode_json",
    "error_from_response",
    "group_of",
    "parse_retry_after",
    "segment",
]

T = TypeVar("T")

logger = logging.getLogger("aiotd")

USER_AGENT = f"aiotd/{__version__}"
_MESSAGE_LIMIT = 500
_BODY_LIMIT = 1 << 20
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_RETRY_STATUSES = frozenset({408, 429})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# ---------------------------------------------------------------- pure helpers


def segment(value: object) -> str:
    """One URL path segment, every reserved character escaped (``/``, space, ``+``, ...)."""
    text = str(value)
    if not text:
        raise ValueError("a path segment (name or id) must not be empty")
    return quote(text, safe="")


def group_of(url: str) -> str:
    """The statistics group of a URL or path: ``/v3/job/status/1`` -> ``job/status``,
    ``https://h/api/attempts/5/tasks`` -> ``api/attempts``."""
    path = url
    scheme = url.find("://")
    if scheme >= 0:
        slash = url.find("/", scheme + 3)
        path = url[slash:] if slash >= 0 else "/"
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if not parts:
        return "/"
    if parts[0] == "v3":
        return "/".join(parts[1:3]) or "v3"
    if parts[0] == "api":
        return "/".join(parts[:2])
    return parts[0]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_DROP = re.compile(r"<(script|style|head)[^>]*>.*?</\1>", re.IGNORECASE | re.DOTALL)


def _readable(text: str) -> str:
    """A one-line message from a non-JSON body: an HTML page becomes its title and text."""
    if "<" in text and ">" in text:
        title = _TITLE.search(text)
        stripped = _SPACE.sub(" ", _TAG.sub(" ", _DROP.sub(" ", text))).strip()
        if title:
            heading = _SPACE.sub(" ", title.group(1)).strip()
            if heading and not stripped.startswith(heading):
                stripped = f"{heading}: {stripped}" if stripped else heading
        text = stripped
    else:
        text = _SPACE.sub(" ", text).strip()
    return text[:_MESSAGE_LIMIT]


def error_from_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    method: str = "",
    url: str = "",
) -> APIError:
    """The APIError for a non-success answer, with TD's message and hints.

    TD's message is ``message``, else ``error`` (v3-api.md §4.4), else the start of a
    non-JSON body; a 409 carries ``details.conflicts_with``; a 429 its ``Retry-After``.
    """
    text = body[:_BODY_LIMIT].decode("utf-8", "replace")
    message = ""
    conflicts_with: str | None = None
    try:
        doc = msgspec.json.decode(body) if body else None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        doc = None
    if isinstance(doc, dict):
        for key in ("message", "error", "text", "errorMessage"):
            value = doc.get(key)
            if isinstance(value, str) and value.strip():
                message = value.strip()[:_MESSAGE_LIMIT]
                break
        details = doc.get("details")
        if isinstance(details, dict) and details.get("conflicts_with") is not None:
            conflicts_with = str(details["conflicts_with"])
    elif text.strip():
        message = _readable(text)
    if not message:
        message = f"HTTP {status}"
    retry_after = parse_retry_after(headers.get("Retry-After")) if status in (429, 503) else None
    cls = error_for_status(status)
    return cls(
        status,
        message,
        body=text,
        method=method,
        url=url,
        retry_after=retry_after,
        conflicts_with=conflicts_with,
    )


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
_JSON_PATH = re.compile(r" - at `(\$[^`]*)`$")


def decode_json(body: bytes, type_: type[T]) -> T:
    """Decode JSON straight into ``type_`` (one cached decoder per type); DecodeError if not."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(body)  # type: ignore[no-any-return]
    except (
        msgspec.ValidationError,
        msgspec.DecodeError,
        UnicodeDecodeError,
        RecursionError,
    ) as exc:
        # invalid UTF-8 in a string and nesting past msgspec's depth limit surface as
        # UnicodeDecodeError and RecursionError: still a body of the wrong shape
        text = str(exc) if not isinstance(exc, RecursionError) else "JSON nested too deeply"
        match = _JSON_PATH.search(text)
        path = match.group(1) if match else ""
        if match:
            text = text[: match.start()]
        snippet = body[:120].decode("utf-8", "replace")
        raise DecodeError(
            f"unexpected response for {getattr(type_, '__name__', type_)}: {text}",
            path=path,
            snippet=snippet,
        ) from None


# ---------------------------------------------------------------- statistics


@dataclass
class GroupStats:
    """Counters for one group of endpoints."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass
class Stats:
    """Requests sent, retries, 429s, errors and bytes, in total and by endpoint group."""

    groups: dict[str, GroupStats] = field(default_factory=dict)

    def group(self, name: str) -> GroupStats:
        found = self.groups.get(name)
        if found is None:
            found = self.groups[name] = GroupStats()
        return found

    def _total(self, attr: str) -> int:
        return sum(getattr(g, attr) for g in self.groups.values())

    @property
    def requests(self) -> int:
        return self._total("requests")

    @property
    def retries(self) -> int:
        return self._total("retries")

    @property
    def rate_limited(self) -> int:
        return self._total("rate_limited")

    @property
    def errors(self) -> int:
        return self._total("errors")

    @property
    def bytes_in(self) -> int:
        return self._total("bytes_in")

    @property
    def bytes_out(self) -> int:
        return self._total("bytes_out")

    def as_dict(self) -> dict[str, Any]:
        """Totals plus per-group counters, for reports and ``--json`` output."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "errors": self.errors,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "groups": {k: vars(v).copy() for k, v in sorted(self.groups.items())},
        }


# ---------------------------------------------------------------- responses


class Response(NamedTuple):
    """A complete answer: status, headers and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class StreamResponse:
    """An answer whose body is read in chunks; transport failures become TransportError."""

    def __init__(self, resp: aiohttp.ClientResponse, stats: GroupStats, url: str) -> None:
        self._resp = resp
        self._stats = stats
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers
        self.url = url

    async def iter_chunks(self, size: int = 1 << 16) -> AsyncIterator[bytes]:
        """The body in chunks of at most ``size`` bytes, as they arrive."""
        while True:
            try:
                chunk = await self._resp.content.read(size)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise _transport_error(exc, "GET", self.url) from None
            if not chunk:
                return
            self._stats.bytes_in += len(chunk)
            yield chunk


Body = bytes | Mapping[str, Any] | Callable[[], Any] | None


class _Retryable(Exception):
    """Internal: wraps an error the retry loop may try again."""

    def __init__(self, error: TDError, retry_after: float | None, group: GroupStats) -> None:
        self.error = error
        self.retry_after = retry_after
        self.group = group
        super().__init__(str(error))


def _transport_error(exc: BaseException, method: str, url: str) -> TransportError:
    if isinstance(exc, asyncio.TimeoutError):
        what = "timed out"
    else:
        what = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return TransportError(f"{method} {url}: {what}")


def _delays(policy: RetryPolicy) -> Generator[float, Any, None]:
    """Backoff waits: Retry-After when the server gave one, else exponential full jitter."""
    exc = yield 0.0
    attempt = 0
    while True:
        hint = exc.retry_after if isinstance(exc, _Retryable) else None
        if hint is not None:
            delay = hint
        else:
            delay = random.uniform(0, min(policy.max_delay, policy.initial_delay * 2**attempt))
        attempt += 1
        exc = yield delay


class HTTP:
    """One pooled aiohttp session with TD's auth, the retry loop and a client-wide budget.

    At most ``max_connections`` requests are in flight; a 429 with ``Retry-After`` pauses
    every request of this client until the hint has passed, not only the one that got it.
    """

    def __init__(
        self,
        *,
        apikey: str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        max_connections: int,
        trace_configs: Iterable[aiohttp.TraceConfig] | None = None,
        user_agent: str | None = None,
        verify_ssl: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self._apikey = apikey
        self._auth = f"TD1 {apikey}"
        self.timeouts = timeouts
        self.retry = retry
        self.max_connections = max_connections
        self._trace_configs = list(trace_configs or [])
        self._verify_ssl = verify_ssl
        base = {"User-Agent": f"{user_agent} {USER_AGENT}" if user_agent else USER_AGENT}
        base.update(headers or {})
        self._headers = base
        self.stats = Stats()
        self._session: aiohttp.ClientSession | None = None
        self._budget: asyncio.Semaphore | None = None
        self._paused_until = 0.0
        self._timeout = aiohttp.ClientTimeout(
            total=timeouts.total, connect=timeouts.connect, sock_read=timeouts.read
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect, sock_read=timeouts.read
        )
        self._send = backoff.on_exception(
            lambda: _delays(self.retry),
            _Retryable,
            max_tries=lambda: self.retry.max_attempts,
            max_time=lambda: self.retry.max_elapsed,
            giveup=self._give_up,
            jitter=None,
            on_backoff=self._on_backoff,
            logger=None,
        )(self._send_once)

    # -- lifecycle

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use inside the running loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                ssl=self._verify_ssl,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                trace_configs=self._trace_configs or None,
                auto_decompress=True,
                raise_for_status=False,
            )
            self._budget = asyncio.Semaphore(self.max_connections)
        return self._session

    @property
    def closed(self) -> bool:
        return self._session is not None and self._session.closed

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced, for anything that may reach a log."""
        return text.replace(self._apikey, "***") if self._apikey else text

    # -- retry plumbing

    def _give_up(self, exc: Exception) -> bool:
        hint = exc.retry_after if isinstance(exc, _Retryable) else None
        return hint is not None and hint > self.retry.max_retry_after

    def _on_backoff(self, details: Any) -> None:
        exc = details.get("exception")
        error = exc
        if isinstance(exc, _Retryable):
            exc.group.retries += 1
            error = exc.error
        logger.debug(
            "retry %d in %.2fs after %s",
            details.get("tries", 0),
            details.get("wait", 0.0),
            self.redact(str(error)),
        )

    async def _wait_gate(self) -> None:
        """Wait out a client-wide pause set by a 429 (a shared rate-limit budget)."""
        loop = asyncio.get_running_loop()
        while True:
            remaining = self._paused_until - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)

    def _pause(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._paused_until = max(self._paused_until, loop.time() + seconds)

    # -- requests

    def _build(
        self, headers: Mapping[str, str] | None, url: str, data: Body, json: Any, auth: bool
    ) -> tuple[dict[str, str], Any, int]:
        merged = {"Authorization": self._auth} if auth else {}
        if headers:
            merged.update(headers)
        payload = data() if callable(data) else data
        size = len(payload) if isinstance(payload, (bytes, bytearray)) else 0
        if json is not None:
            payload = msgspec.json.encode(json)
            size = len(payload)
            merged.setdefault("Content-Type", "application/json")
        elif isinstance(payload, Mapping):
            payload = {k: _form_value(v) for k, v in payload.items() if v is not None}
        return merged, payload, size

    async def _send_once(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        data: Body,
        json: Any,
        headers: Mapping[str, str] | None,
        retry_writes: bool,
        stream: bool,
        auth: bool = True,
    ) -> Response | tuple[aiohttp.ClientResponse, GroupStats, str]:
        session = self.session
        assert self._budget is not None
        group = self.stats.group(group_of(url))
        if self._paused_until:
            await self._wait_gate()
        query = _query(params)
        target = url
        redirects = 0
        req_headers, payload, size = self._build(headers, url, data, json, auth)
        async with self._budget:
            while True:
                group.requests += 1
                group.bytes_out += size
                try:
                    resp = await session.request(
                        method,
                        yarl.URL(target, encoded=True),
                        params=query,
                        data=payload,
                        headers=req_headers,
                        allow_redirects=False,
                        timeout=self._stream_timeout if stream else self._timeout,
                    )
                except (aiohttp.ClientError, asyncio.TimeoutError, ssl.SSLError, OSError) as exc:
                    group.errors += 1
                    error = _transport_error(exc, method, target)
                    # A request that never connected was not applied: safe to send again.
                    safe = isinstance(exc, aiohttp.ClientConnectorError)
                    if retry_writes or method in _IDEMPOTENT_METHODS or safe:
                        raise _Retryable(error, None, group) from None
                    raise error from None
                if resp.status in _REDIRECTS and "Location" in resp.headers:
                    location = resp.url.join(yarl.URL(resp.headers["Location"]))
                    resp.release()
                    redirects += 1
                    if redirects > _MAX_REDIRECTS:
                        raise TransportError(f"{method} {url}: too many redirects")
                    if _origin(location) != _origin(yarl.URL(target, encoded=True)):
                        # Never send the key to another host (object storage, a proxy).
                        req_headers = {
                            k: v for k, v in req_headers.items() if k.lower() != "authorization"
                        }
                    if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                        method, payload, size = "GET", None, 0
                    target, query = str(location), None
                    continue
                break
            if resp.status < 400 and stream:
                return resp, group, target
            try:
                body = await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                group.errors += 1
                resp.release()
                error = _transport_error(exc, method, target)
                if retry_writes or method in _IDEMPOTENT_METHODS:
                    raise _Retryable(error, None, group) from None
                raise error from None
            finally:
                resp.release()
        group.bytes_in += len(body)
        if resp.status < 400:
            return Response(resp.status, resp.headers, body, target)
        group.errors += 1
        api_error = error_from_response(resp.status, body, resp.headers, method=method, url=target)
        if isinstance(api_error, RateLimited):
            group.rate_limited += 1
            if api_error.retry_after is not None:
                self._pause(min(api_error.retry_after, self.retry.max_retry_after))
        retryable = resp.status in _RETRY_STATUSES or resp.status >= 500
        # A 429 was refused before being applied, so it is safe to send again, even a POST.
        if retryable and (retry_writes or method in _IDEMPOTENT_METHODS or resp.status == 429):
            raise _Retryable(api_error, api_error.retry_after, group)
        raise api_error

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Body = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
    ) -> Response:
        """Send one request through the retry loop and return the complete answer.

        GETs are retried; a write only when ``idempotent`` (made safe by a domain key,
        unique id or session time). ``data`` may be a callable giving a fresh body per try.
        """
        try:
            result = await self._send(
                method,
                url,
                params=params,
                data=data,
                json=json,
                headers=headers,
                retry_writes=idempotent,
                stream=False,
            )
        except _Retryable as exc:
            raise exc.error from None
        assert isinstance(result, Response)
        return result

    async def request_json(
        self,
        method: str,
        url: str,
        type_: type[T],
        **kwargs: Any,
    ) -> T:
        """``request`` and decode the JSON body into ``type_``."""
        response = await self.request(method, url, **kwargs)
        return decode_json(response.body, type_)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> AsyncIterator[StreamResponse]:
        """A streamed answer: headers through the retry loop, the body read by the caller.

        ``auth=False`` sends no API key, for pre-signed URLs whose credentials are in the URL.
        """
        try:
            result = await self._send(
                method,
                url,
                params=params,
                data=None,
                json=None,
                headers=headers,
                retry_writes=False,
                stream=True,
                auth=auth,
            )
        except _Retryable as exc:
            raise exc.error from None
        assert not isinstance(result, Response)
        resp, group, target = result
        try:
            yield StreamResponse(resp, group, target)
        finally:
            resp.release()


def _origin(url: yarl.URL) -> tuple[str, str | None, int | None]:
    return (url.scheme, url.host, url.port)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _query(params: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    """Query parameters without Nones; booleans as ``true``/``false``; lists repeated."""
    if not params:
        return None
    items: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            items.extend((key, _form_value(v)) for v in value)
        else:
            items.append((key, _form_value(value)))
    return items
