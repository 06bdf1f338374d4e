"""The one seam to the network: session pool, requests, retries, errors, statistics.

This is the only client module that imports aiohttp. Everything it raises belongs to
``aiotd.errors``; ``asyncio.CancelledError`` passes through untouched and is never retried.
Its pure parts (errors from answers, the retry decision, key-free chains, counters) are in
``aiotd._sansio`` and exported here too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar, cast

import aiohttp
import msgspec
import yarl
from aiohttp.client_proto import ResponseHandler

from aiotd._config import RetryPolicy, Timeouts
from aiotd._sansio import (
    ERROR_BODY_LIMIT,
    GroupStats,
    RedactedCause,
    Stats,
    decode_json,
    error_from_response,
    form_value,
    group_of,
    parse_retry_after,
    query_items,
    safe_cause,
    segment,
    should_retry,
)
from aiotd._version import __version__
from aiotd.errors import (
    APIError,
    ClientClosed,
    DecodeError,
    RateLimited,
    ResponseTooLarge,
    TDError,
    TransportError,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "HTTP",
    "CallOptions",
    "GroupStats",
    "RedactedCause",
    "Response",
    "RetryBudget",
    "Stats",
    "StreamResponse",
    "decode_json",
    "error_from_response",
    "group_of",
    "parse_retry_after",
    "safe_cause",
    "segment",
    "should_retry",
]

T = TypeVar("T")

logger = logging.getLogger("aiotd")

USER_AGENT = f"aiotd/{__version__}"
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: how many origins ``_yarl`` keeps parsed: the two endpoints and a few storage hosts
_ORIGINS_KEPT = 16
#: what aiohttp raises for a request that failed in the network
_SEND_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ssl.SSLError, OSError)
_READ_CHUNK = 1 << 16
_LINE_BREAKS = ("\r", "\n", "\0")
#: The cap on a whole (non-streamed) answer, decoded. A ``job/list`` item is about 0.6 KB
#: plus its query (samples/v3/job_list.json), so a 10,000-job page fits many times over.
DEFAULT_MAX_RESPONSE_SIZE = 64 << 20


# ---------------------------------------------------------------- per-call options


@dataclass(frozen=True, kw_only=True)
class CallOptions:
    """What a ``Client.with_options`` view changes for its calls; None keeps the client's."""

    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None


# ---------------------------------------------------------------- responses


class Response:
    """An answer: status, headers and final URL, its body read whole or in chunks.

    ``request()`` gives it with ``body`` read (up to ``max_response_size``); ``stream()``
    gives it unread, for ``iter_chunks()``. ``close()`` of the client ends a stream at once:
    the reader gets ClientClosed.
    """

    def __init__(
        self, http: HTTP, raw: aiohttp.ClientResponse, group: GroupStats, method: str, url: str
    ) -> None:
        self._http = http
        self._raw = raw
        self._group = group
        self.method = method
        self.status = raw.status
        self.headers: Mapping[str, str] = raw.headers
        self.url = url
        self._body: bytes | None = None

    @property
    def body(self) -> bytes:
        """The whole body, as ``request()`` read it."""
        if self._body is None:
            raise RuntimeError("the body of a streamed answer is read with iter_chunks()")
        return self._body

    async def iter_chunks(self, size: int = 1 << 16) -> AsyncIterator[bytes]:
        """The body in chunks of at most ``size`` bytes, as they arrive (or as read)."""
        if self._body is not None:
            for start in range(0, len(self._body), size):
                yield self._body[start : start + size]
            return
        http = self._http
        while True:
            error: TDError | None = None
            cause: BaseException | None = None
            if http._closing:
                error = http._closed_error(self.method, self.url)
            else:
                try:
                    chunk = await self._raw.content.read(size)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    error, cause = http._failure(exc, self.method, self.url), exc
            if error is not None:
                _raise_alone(http._scrubbed(error, cause))
            if not chunk:
                return
            self._group.bytes_in += len(chunk)
            yield chunk

    async def _read(self, limit: int, *, truncate: bool) -> None:
        """Read the whole body, as decoded, while counting: past ``limit`` bytes (announced or
        read) ResponseTooLarge, or with ``truncate`` its first ``limit`` bytes.

        ``Content-Length`` is the size on the wire: with a ``Content-Encoding`` the decoded
        size is only known while reading. aiohttp >= 3.13.3 decodes in pieces of bounded size
        as the body is read (``DeflateBuffer`` with ``max_length``, the fix of CVE-2025-69223);
        older versions decode each chunk from the wire whole, up to ~1000x its size.
        """
        raw, group = self._raw, self._group
        length = raw.content_length
        encoded = raw.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if length is not None and length > limit and not truncate:
            raise self._too_large(limit)
        if length is not None and length <= limit and not encoded:
            self._body = await raw.read()  # the parser stops at Content-Length
            group.bytes_in += len(self._body)
            return
        chunks: list[bytes] = []
        total = 0
        while chunk := await raw.content.read(_READ_CHUNK):
            total += len(chunk)
            group.bytes_in += len(chunk)
            if total > limit:
                if not truncate:
                    raise self._too_large(limit)
                chunks.append(chunk[: len(chunk) - (total - limit)])
                break
            chunks.append(chunk)
        self._body = b"".join(chunks)

    def _too_large(self, limit: int) -> ResponseTooLarge:
        self._raw.close()  # the rest of the body is not read: the connection cannot be reused
        return ResponseTooLarge(
            f"{self.method} {self.url}: the answer is larger than max_response_size "
            f"({limit:,} bytes)",
            limit=limit,
            method=self.method,
            url=self.url,
        )


#: The classic name of a streamed answer: the same type.
StreamResponse = Response

Body = bytes | Mapping[str, Any] | Callable[[], Any] | None


# ---------------------------------------------------------------- retries


class _Fault(Exception):
    """Internal: a try that failed in the network or at TD (not a refusal of the client), with
    what ``should_retry`` needs and the exception that caused it."""

    def __init__(
        self, error: TDError, *, connected: bool = True, cause: BaseException | None = None
    ) -> None:
        self.error = error
        self.connected = connected
        self.cause = cause
        super().__init__(str(error))


def _raise_alone(error: TDError) -> NoReturn:
    """Raise ``error`` without a ``__context__``. On 3.10 the pure-Python Task (which
    pytest-asyncio's runner uses there) resumes a coroutine inside an ``except`` holding
    aiohttp's error, so a plain ``raise`` would chain it again; a bare re-raise does not."""
    try:
        raise error
    except TDError:
        error.__context__ = None
        raise


def _transport_error(exc: BaseException, method: str, url: str) -> TransportError:
    if isinstance(exc, asyncio.TimeoutError):
        what = "timed out"
    else:
        what = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return TransportError(f"{method} {url}: {what}", method=method, url=url)


_ONCE = RetryPolicy.never()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class RetryBudget:
    """The tries of ONE call on a RetryPolicy: attempts, elapsed time, Retry-After, backoff.

    The HTTP layer's own retry loop uses one per request; a caller that resumes a stream
    (``stream(..., retries=False)`` in a loop) uses one for the whole call, so a silent
    server gets ``max_attempts`` tries in all, not ``max_attempts`` per resumption.
    """

    def __init__(self, http: HTTP, policy: RetryPolicy, *, started: float | None = None) -> None:
        self._http = http
        self.policy = policy
        #: tries made so far, the first one included
        self.tries = 1
        self._start = time.monotonic() if started is None else started

    async def backoff(self, error: TDError) -> None:
        """Wait before the next try after ``error``, or raise ``error`` if there is none.

        ``error`` is raised when it is not worth another try (not a transport failure, 408,
        429 or 5xx), when its ``Retry-After`` exceeds ``max_retry_after``, or when the tries
        or the time of the policy are spent. The wait is cut short by ``close()`` of the
        client (ClientClosed). Only for calls safe to send again (reads, idempotent writes).
        """
        if not should_retry(error, resend=True):
            raise error
        url = getattr(error, "url", "")
        await self._wait(error, self._http.stats.group(group_of(url)) if url else None)

    async def _wait(self, error: TDError, group: GroupStats | None) -> None:
        policy = self.policy
        hint = error.retry_after if isinstance(error, APIError) else None
        elapsed = time.monotonic() - self._start
        if (
            (hint is not None and hint > policy.max_retry_after)
            or self.tries >= policy.max_attempts
            or elapsed >= policy.max_elapsed
        ):
            raise error
        delay = hint if hint is not None else policy.delay(self.tries - 1)
        delay = min(delay, policy.max_elapsed - elapsed)
        if hint is not None and isinstance(error, RateLimited):
            # a hint this call honours holds back every call of the client (shared budget);
            # a hint it does not honour (raised at once above) pauses nothing
            self._http._pause(hint)
        if group is not None:
            group.retries += 1
        logger.debug("retry %d in %.2fs after %s", self.tries, delay, self._http.redact(str(error)))
        self.tries += 1
        await self._http._sleep(delay)


# ---------------------------------------------------------------- the HTTP layer


class _Protocol(ResponseHandler):
    """aiohttp's connection protocol with a cheaper read timer that fires at the same time.

    aiohttp cancels its ``sock_read`` timer and schedules a new one on every chunk it
    receives: three timer operations for a small answer, ~7% of the CPU of a ``job/status``
    call. Here a connection keeps one timer that moves only when it fires: a chunk pushes the
    deadline on, and the timer, firing before it, waits again until then. So the read
    timeout still fires ``read`` seconds after the last byte, as aiohttp's does.
    (aiohttp >= 3.13.3 arms, pushes and drops its timer through these three methods.)
    """

    _deadline: float | None = None
    _read_timer: asyncio.TimerHandle | None = None
    #: when the timer fires (``inf`` when there is none)
    _timer_at = math.inf

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        # the loop's clock, read without a call through the loop when it is asyncio's own
        base = type(loop).time is asyncio.BaseEventLoop.time
        self._now: Callable[[], float] = time.monotonic if base else loop.time

    def _reschedule_timeout(self) -> None:
        timeout = self._read_timeout
        if not timeout:
            self._deadline = None
            return
        deadline = self._deadline = self._now() + timeout
        if self._timer_at > deadline:  # no timer yet, or one set for later
            if self._read_timer is not None:
                self._read_timer.cancel()
            self._arm(deadline)

    def _arm(self, when: float) -> None:
        self._timer_at = when
        self._read_timer = self._loop.call_at(when, self._read_timer_fired)

    def _drop_timeout(self) -> None:
        self._deadline = None

    def _read_timer_fired(self) -> None:
        self._read_timer, self._timer_at = None, math.inf
        deadline = self._deadline
        if deadline is None:
            return
        if self._now() < deadline:
            self._arm(deadline)
            return
        self._on_read_timeout()


@dataclass(slots=True)
class _Hop:
    """One request of a try: the first, or one that follows a redirect."""

    method: str
    url: str
    query: list[tuple[str, str]] | None
    #: the headers of this request besides the session's (None: none)
    headers: Mapping[str, str] | None
    #: whether the API key goes with it (the keyed session) or not (the bare one)
    auth: bool
    payload: Any
    size: int


@dataclass(slots=True)
class _Call(_Hop):
    """What one call asks, the same for each of its tries (never changed once made).

    A call without a body is the first request of each of its tries as it is (its
    ``payload`` None): no hop to make per try.
    """

    data: Body
    json: Any
    #: safe to send again after it may have reached TD: a read, or an idempotent write
    resend: bool
    stream: bool
    timeout: aiohttp.ClientTimeout
    group: GroupStats
    #: ``time.monotonic()`` when the call began, where its retry budget's time starts
    started: float


def _follow(hop: _Hop, status: int, location: yarl.URL, home: yarl.URL, url: str) -> _Hop:
    """The request that follows a redirect of ``hop`` to ``location``; ``home`` is where the
    call started and ``url`` its URL as given (for messages).

    aiohttp's rule (as browsers do): a 303, or a 301/302 to a POST, is followed with a GET
    without the body; a 307/308 repeats the request, body included, but only to the
    origin the call started at. The key never goes to another origin (object storage,
    a proxy), nor comes back to the call's own from there.
    """
    method, payload, size, headers = hop.method, hop.payload, hop.size, hop.headers or {}
    auth = hop.auth
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, payload, size = "GET", None, 0
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    if _origin(location) != _origin(home):
        if payload:
            # a secret's value or a password must reach only the origin named
            raise TransportError(
                f"{method} {url}: refused to send the request body to another origin "
                f"({status} redirect to {location.origin()})",
                method=method,
                url=url,
            )
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        auth = False
    return _Hop(method, str(location), None, headers, auth, payload, size)


def _location(raw: aiohttp.ClientResponse, method: str, url: str) -> yarl.URL:
    """Where a redirect points; a Location that is not an http(s) URL is refused."""
    value = raw.headers["Location"]
    try:
        location: yarl.URL | None = raw.url.join(yarl.URL(value))
    except ValueError:  # yarl refuses e.g. ``http://[::1``
        location = None
    if location is None or location.scheme not in ("http", "https") or not location.host:
        raise TransportError(
            f"{method} {url}: the server redirected to a malformed location {value[:200]!r}",
            method=method,
            url=url,
        )
    return location


class HTTP:
    """One pooled aiohttp session with TD's auth, the retry loop and a client-wide budget.

    At most ``max_connections`` requests are in flight; a 429 whose ``Retry-After`` is
    honoured pauses every request of this client until the hint has passed, not only the one
    that got it. A whole answer is read up to ``max_response_size`` bytes (decoded).

    A call goes down two coroutines: ``_send`` (the retry loop) and ``_send_once`` (one try:
    the 429 pause, the connection budget, the request, the body), which awaits aiohttp's
    request as ``_send_single_request`` makes it and maps its failure with ``_send_fault``;
    a redirect is followed by ``_send_handling_redirects``. Few coroutine levels per call:
    each one is entered again on every resumption of the call.
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
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if max_response_size < 1:
            raise ValueError("max_response_size must be >= 1 byte")
        if user_agent is not None and any(c in user_agent for c in _LINE_BREAKS):
            raise ValueError("user_agent must not contain line breaks (CR, LF) or NUL")
        self._auth = f"TD1 {apikey}"
        # the key, and its secret part (after ``1/``) as a server may echo it escaped
        secret = apikey.split("/", 1)[-1]
        parts = [apikey] + ([secret] if secret != apikey and len(secret) >= 8 else [])
        self._secrets = [part for part in parts if part]
        self.timeouts = timeouts
        self.retry = retry
        self.max_connections = max_connections
        self.max_response_size = max_response_size
        self._trace_configs = list(trace_configs or [])
        self._verify_ssl = verify_ssl
        base = {"User-Agent": f"{user_agent} {USER_AGENT}" if user_agent else USER_AGENT}
        for name, value in (headers or {}).items():
            if any(c in f"{name}{value}" for c in _LINE_BREAKS):
                raise ValueError(f"header {name!r} must not contain line breaks (CR, LF) or NUL")
        base.update(headers or {})
        #: the default headers of the bare session (no key: pre-signed URLs, other origins)
        self._bare_headers = {k: v for k, v in base.items() if k.lower() != "authorization"}
        #: those of the keyed session: the key as a default header costs aiohttp less per
        #: request than as a header of each
        self._headers = {**self._bare_headers, "Authorization": self._auth}
        self.stats = Stats()
        self._session: aiohttp.ClientSession | None = None
        self._bare: aiohttp.ClientSession | None = None
        #: the origins of the URLs requested, parsed (``_yarl``)
        self._origins: dict[str, yarl.URL] = {}
        # the connection budget: requests in flight, and those waiting for a slot (FIFO)
        self._in_flight = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._paused_until = 0.0
        self._closing = False
        self._streams: set[aiohttp.ClientResponse] = set()
        self._sleepers: set[asyncio.Future[None]] = set()
        self._timeout = aiohttp.ClientTimeout(
            total=timeouts.total, connect=timeouts.connect, sock_read=timeouts.read
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect, sock_read=timeouts.read
        )

    # -- lifecycle

    @property
    def session(self) -> aiohttp.ClientSession:
        """The keyed session, created on first use inside the running loop."""
        return self._session or self._open()

    def _open(self) -> aiohttp.ClientSession:
        """Make the keyed session and the bare one: one connection pool, one key header."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                ssl=self._verify_ssl,
                ttl_dns_cache=300,
            )
            # aiohttp makes each connection's protocol with this factory
            loop = asyncio.get_running_loop()
            factory = functools.partial(_Protocol, loop=loop)
            connector._factory = cast("functools.partial[ResponseHandler]", factory)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                trace_configs=self._trace_configs or None,
                auto_decompress=True,
                raise_for_status=False,
            )
            self._bare = aiohttp.ClientSession(
                connector=connector,
                connector_owner=False,
                headers=self._bare_headers,
                trace_configs=self._trace_configs or None,
                auto_decompress=True,
                raise_for_status=False,
            )
        return self._session

    @property
    def closed(self) -> bool:
        return self._closing

    async def close(self) -> None:
        """End open streams and retry waits at once (their callers get ClientClosed), then
        close the session; this HTTP cannot be used again."""
        self._closing = True
        for waiter in list(self._sleepers):
            _wake(waiter)
        for resp in list(self._streams):
            resp.close()
        for session in (self._bare, self._session):  # the keyed one owns the pool
            if session is not None and not session.closed:
                await session.close()

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced, for anything that may reach a log."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _scrubbed(self, error: TDError, cause: BaseException | None = None) -> TDError:
        """``error`` with the key redacted from its text, raised from a key-free copy of
        ``cause`` (``safe_cause``) and cut from what it was raised in: aiohttp's exceptions
        carry the request's headers, Authorization included."""
        error.args = tuple(self.redact(a) if isinstance(a, str) else a for a in error.args)
        for name, value in list(vars(error).items()):
            if isinstance(value, str):
                setattr(error, name, self.redact(value))
        error.__cause__ = None if cause is None else safe_cause(cause, self.redact)
        error.__context__ = None
        return error

    def _closed_error(self, method: str, url: str) -> ClientClosed:
        return ClientClosed(f"{method} {url}: the client was closed")

    def _failure(self, exc: BaseException, method: str, url: str) -> TDError:
        """The error for an aiohttp failure: ClientClosed if ``close()`` caused it."""
        if self._closing:
            return self._closed_error(method, url)
        return _transport_error(exc, method, url)

    # -- waiting

    def retry_budget(self, options: CallOptions | None = None) -> RetryBudget:
        """A fresh budget of tries for one call, on the client's RetryPolicy by default."""
        return RetryBudget(self, self._policy(options))

    def _policy(self, options: CallOptions | None) -> RetryPolicy:
        return (options.retry if options else None) or self.retry

    def _timeout_for(self, options: CallOptions | None, *, stream: bool) -> aiohttp.ClientTimeout:
        """aiohttp's timeout for one request: a stream has no total, only connect and read."""
        timeouts = options.timeouts if options else None
        if timeouts is None:
            return self._stream_timeout if stream else self._timeout
        return aiohttp.ClientTimeout(
            total=None if stream else timeouts.total,
            connect=timeouts.connect,
            sock_read=timeouts.read,
        )

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, cut short by ``close()``: then ClientClosed."""
        if seconds > 0 and not self._closing:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            handle = loop.call_later(seconds, _wake, waiter)
            self._sleepers.add(waiter)
            try:
                await waiter
            finally:
                handle.cancel()
                self._sleepers.discard(waiter)
        if self._closing:
            raise ClientClosed("the client was closed while a call waited to retry")

    async def _wait_gate(self) -> None:
        """Wait out a client-wide pause set by a 429 (a shared rate-limit budget); once it
        has passed, calls no longer look at it."""
        loop = asyncio.get_running_loop()
        while (remaining := self._paused_until - loop.time()) > 0:
            await self._sleep(remaining)
        self._paused_until = 0.0

    def _pause(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._paused_until = max(self._paused_until, loop.time() + seconds)

    async def _wait_slot(self) -> None:
        """Wait for a slot of the connection budget, in turn: ``_free_slot`` hands it over.
        A caller cancelled once its slot was handed over passes the slot on."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.cancelled():
                self._slot_waiters.remove(waiter)
            else:  # the slot came with the cancellation: it is not used
                self._free_slot()
            raise

    def _free_slot(self) -> None:
        """Give a slot back: to the first caller still waiting for one, or to the budget."""
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_flight -= 1

    # -- requests

    def _prepare(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        data: Body,
        json: Any,
        headers: Mapping[str, str] | None,
        resend: bool,
        stream: bool,
        options: CallOptions | None,
        auth: bool = True,
    ) -> _Call:
        group = group_of(url)
        return _Call(
            method,
            url,
            query_items(params) if params else None,
            headers,
            auth,
            None,
            0,
            data,
            json,
            resend or method in _IDEMPOTENT_METHODS,
            stream,
            self._timeout_for(options, stream=stream) if options or stream else self._timeout,
            self.stats.groups.get(group) or self.stats.group(group),
            time.monotonic(),
        )

    def _first_hop(self, call: _Call) -> _Hop:
        """The first request of a try, its body made afresh (``data`` may be a callable);
        the call itself when it has no body."""
        if call.data is None and call.json is None:
            return call
        headers = dict(call.headers) if call.headers else {}
        payload = call.data() if callable(call.data) else call.data
        size = len(payload) if isinstance(payload, (bytes, bytearray)) else 0
        if call.json is not None:
            payload = msgspec.json.encode(call.json)
            size = len(payload)
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(payload, Mapping):
            payload = {k: form_value(v) for k, v in payload.items() if v is not None}
        return _Hop(call.method, call.url, call.query, headers, call.auth, payload, size)

    async def _send(self, call: _Call, policy: RetryPolicy) -> Response:
        """Every try of one call on one RetryBudget (made at the first fault), ``should_retry``
        deciding which fault is tried again; the error raised is scrubbed of the key and
        chained to its cause."""
        budget: RetryBudget | None = None
        while True:
            cause: BaseException | None = None
            try:
                return await self._send_once(call)
            except _Fault as fault:
                error, cause = fault.error, fault.cause
                retry = should_retry(error, resend=call.resend, connected=fault.connected)
            except TDError as exc:
                error, retry = exc, False
            if retry:
                if budget is None:
                    budget = RetryBudget(self, policy, started=call.started)
                try:
                    await budget._wait(error, call.group)
                    continue
                except TDError as exc:
                    if exc is not error:  # close() cut the wait short
                        error, cause = exc, None
            _raise_alone(self._scrubbed(error, cause))

    async def _send_once(self, call: _Call) -> Response:
        """One try: after a client-wide 429 pause, under the connection budget, the request
        and its redirects; the body read unless streamed. A fault of the network or of TD
        is raised as a _Fault; a refusal of the client as the TDError it is."""
        if self._closing:
            raise self._closed_error(call.method, call.url)
        if self._session is None:
            self._open()
        if self._paused_until:
            await self._wait_gate()
        if self._in_flight < self.max_connections and not self._slot_waiters:
            self._in_flight += 1
        else:
            await self._wait_slot()
        try:
            if self._closing:
                raise self._closed_error(call.method, call.url)
            hop = self._first_hop(call)
            try:
                raw = await self._send_single_request(hop, call)
            except _SEND_ERRORS as exc:
                raise self._send_fault(exc, hop, call) from None
            response = Response(self, raw, call.group, hop.method, hop.url)
            if response.status in _REDIRECTS and "Location" in response.headers:
                response = await self._send_handling_redirects(call, hop, response)
            status = response.status
            if status < 400 and call.stream:
                return response
            try:
                if status < 400:
                    await response._read(self.max_response_size, truncate=False)
                else:
                    await response._read(ERROR_BODY_LIMIT, truncate=True)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                call.group.errors += 1
                error = self._failure(exc, response.method, response.url)
                raise _Fault(error, cause=exc) from None
            except ResponseTooLarge:
                call.group.errors += 1
                raise
            finally:
                response._raw.release()
        finally:
            self._free_slot()
        if status < 400:
            return response
        call.group.errors += 1
        error = error_from_response(
            status, response.body, response.headers, method=response.method, url=response.url
        )
        if isinstance(error, RateLimited):
            call.group.rate_limited += 1
        raise _Fault(error)

    async def _send_handling_redirects(
        self, call: _Call, hop: _Hop, response: Response
    ) -> Response:
        """The redirects that ``response`` to ``hop`` starts, each followed (at most
        ``_MAX_REDIRECTS``): the answer that is not a redirect, its body unread."""
        home = yarl.URL(call.url, encoded=True)
        redirects = 0
        while response.status in _REDIRECTS and "Location" in response.headers:
            response._raw.release()
            location = _location(response._raw, hop.method, hop.url)
            redirects += 1
            if redirects > _MAX_REDIRECTS:
                raise TransportError(
                    f"{call.method} {call.url}: too many redirects",
                    method=call.method,
                    url=call.url,
                )
            hop = _follow(hop, response.status, location, home, call.url)
            try:
                raw = await self._send_single_request(hop, call)
            except _SEND_ERRORS as exc:
                raise self._send_fault(exc, hop, call) from None
            response = Response(self, raw, call.group, hop.method, hop.url)
        return response

    def _send_single_request(self, hop: _Hop, call: _Call) -> Awaitable[aiohttp.ClientResponse]:
        """One request to aiohttp on the keyed or the bare session, counted: the awaitable
        of its answer, whose failures (``_SEND_ERRORS``) the caller maps with ``_send_fault``.
        Not a coroutine of its own: one call costs one coroutine less."""
        session = self._session if hop.auth else self._bare
        assert session is not None  # both made by the first try
        group = call.group
        group.requests += 1
        group.bytes_out += hop.size
        return session.request(
            hop.method,
            self._yarl(hop.url),
            params=hop.query,
            data=hop.payload,
            headers=hop.headers,
            allow_redirects=False,
            timeout=call.timeout,
        )

    def _yarl(self, url: str) -> yarl.URL:
        """``url`` as yarl's ``URL(url, encoded=True)``, at half its cost for the usual URL
        (an origin and a path, no query): the origin parsed once, the path set on it."""
        scheme = url.find("://")
        slash = url.find("/", scheme + 3) if scheme > 0 else -1
        if slash < 0 or "?" in url or "#" in url:
            return yarl.URL(url, encoded=True)
        origin = self._origins.get(url[:slash])
        if origin is None:
            origin = yarl.URL(url[:slash], encoded=True)
            if len(self._origins) < _ORIGINS_KEPT:
                self._origins[url[:slash]] = origin
        return origin.with_path(url[slash:], encoded=True)

    def _send_fault(self, exc: BaseException, hop: _Hop, call: _Call) -> _Fault:
        """The TransportError fault of a request that failed (ClientClosed when ``close()``
        caused it), counted."""
        call.group.errors += 1
        # A request that never connected was not applied: safe to send again.
        connected = not isinstance(exc, aiohttp.ClientConnectorError)
        error = self._failure(exc, hop.method, hop.url)
        return _Fault(error, connected=connected, cause=exc)

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
        options: CallOptions | None = None,
    ) -> Response:
        """Send one request through the retry loop and return the complete answer.

        GETs are retried; a write only when ``idempotent`` (made safe by a domain key,
        unique id or session time). ``data`` may be a callable giving a fresh body per try.
        The body is read up to ``max_response_size`` (ResponseTooLarge past it).
        """
        call = self._prepare(
            method,
            url,
            params=params,
            data=data,
            json=json,
            headers=headers,
            resend=idempotent,
            stream=False,
            options=options,
        )
        return await self._send(call, self._policy(options))

    async def request_json(
        self,
        method: str,
        url: str,
        type_: type[T],
        *,
        params: Mapping[str, Any] | None = None,
        data: Body = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
        options: CallOptions | None = None,
    ) -> T:
        """``request`` and decode the JSON body into ``type_``."""
        # request()'s two lines, inlined: every typed call runs here, and awaiting request()
        # would add a coroutine level to each resumption of the hot path
        call = self._prepare(
            method,
            url,
            params=params,
            data=data,
            json=json,
            headers=headers,
            resend=idempotent,
            stream=False,
            options=options,
        )
        response = await self._send(call, self._policy(options))
        try:
            return decode_json(response.body, type_)
        except DecodeError as exc:
            error = exc
        _raise_alone(self._scrubbed(error))

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        retries: bool = True,
        options: CallOptions | None = None,
    ) -> AsyncIterator[Response]:
        """A streamed answer: headers through the retry loop, the body read by the caller.

        ``auth=False`` sends no API key, for pre-signed URLs whose credentials are in the URL.
        ``retries=False`` sends once and raises the first error, for a caller that resumes
        the stream in its own loop on one ``retry_budget()``. The body has no size cap here:
        the reader bounds it. ``close()`` of the client ends the stream (ClientClosed).
        """
        call = self._prepare(
            method,
            url,
            params=params,
            data=None,
            json=None,
            headers=headers,
            resend=False,
            stream=True,
            options=options,
            auth=auth,
        )
        response = await self._send(call, self._policy(options) if retries else _ONCE)
        self._streams.add(response._raw)
        try:
            yield response
        finally:
            self._streams.discard(response._raw)
            response._raw.release()


def _origin(url: yarl.URL) -> tuple[str, str | None, int | None]:
    return (url.scheme, url.host, url.port)
