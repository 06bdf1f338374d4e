"""The pure core of the HTTP layer: no I/O, so tests drive it from recorded bodies.

URL segments and statistics groups, Retry-After, status -> error with TD's message, JSON
-> model, query and form values, the retry decision, key-free exception chains, counters.
``aiotd._http`` sends requests with them.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec

from aiotd.errors import APIError, DecodeError, TDError, TransportError, error_for_status

__all__ = [
    "ERROR_BODY_LIMIT",
    "GroupStats",
    "RedactedCause",
    "Stats",
    "decode_json",
    "error_from_response",
    "form_value",
    "group_of",
    "parse_retry_after",
    "query_items",
    "safe_cause",
    "segment",
    "should_retry",
]

T = TypeVar("T")

_MESSAGE_LIMIT = 500
#: how much of an error body is kept (``APIError.body``) and read
ERROR_BODY_LIMIT = 1 << 20
#: how much of a non-JSON error body a message is looked for in: an error page's title and
#: first lines are at its start, and regex passes over a whole megabyte cost ~20x its size
_PAGE_LIMIT = 1 << 16


# ---------------------------------------------------------------- URLs, Retry-After, errors, bodies


def segment(value: str | int) -> str:
    """One URL path segment, every reserved character escaped (``/``, space, ``+``, ...).

    Only a str or an int is an id or a name: ``None`` would be sent as ``None``. ``.`` and
    ``..`` are refused too, since a normalising proxy would resolve them to another path.
    """
    if type(value) is int:
        return str(value)  # digits and ``-``: nothing to escape
    if type(value) is str and value.isascii() and value.isalnum():
        return value  # the common id or name: nothing to escape, nor blank or a dot segment
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"an id or name must be a str or an int, not {type(value).__name__}")
    text = str(value)
    if not text:
        raise ValueError("a path segment (name or id) must not be empty")
    if not text.strip():
        raise ValueError("a path segment (name or id) must not be blank")
    if text in (".", ".."):
        raise ValueError(f"{text!r} is not a valid id or name: it would change the path")
    return quote(text, safe="")


#: the usual URL, ``http(s)://host/v3/a/b...`` or ``.../api/a...`` with no empty segment in
#: the group: its group read in one match, as the general rule below would find it
_USUAL_URL = re.compile(r"https?://[^/]*/(?:v3/([^/?]+/[^/?]+)|(api/[^/?]+))(?![^/?])")


def group_of(url: str) -> str:
    """The statistics group of a URL or path: ``/v3/job/status/123`` -> ``job/status``,
    ``https://h/api/attempts/5/tasks`` -> ``api/attempts``."""
    usual = _USUAL_URL.match(url)
    if usual:
        return usual[1] or usual[2]
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
    text = body[:ERROR_BODY_LIMIT].decode("utf-8", "replace")
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
        held = details.get("conflicts_with") if isinstance(details, dict) else None
        # a job id, as a string or a number (Java parseConflictsWith); an object, a list or
        # a boolean names no job: the Conflict then carries none rather than a made-up one
        if isinstance(held, (str, int)) and not isinstance(held, bool) and str(held).strip():
            conflicts_with = str(held)
    elif text.strip():
        message = _readable(text[:_PAGE_LIMIT])
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


# ---------------------------------------------------------------- retries


def should_retry(error: TDError, *, resend: bool, connected: bool = True) -> bool:
    """Whether a try that failed with ``error`` is worth sending again, budget permitting.

    ``resend``: the request may be applied twice (a read, or a write made idempotent);
    ``connected``: the connection was made, so the request may have reached TD. A transport
    failure is retried when ``resend`` or never connected; 408 and 5xx when ``resend``; 429
    always, as TD refused it before applying it. Anything else (4xx, a refused redirect, a
    body too large, ClientClosed) would fail the same way again.
    """
    if isinstance(error, TransportError):
        return resend or not connected
    if not isinstance(error, APIError):
        return False
    if error.status == 429:
        return True
    return resend and (error.status == 408 or error.status >= 500)


# ---------------------------------------------------------------- key-free exception chains


class RedactedCause(Exception):
    """Stands in the chain of an aiotd error for an exception that held the API key
    (aiohttp's carry the request's headers, Authorization included): the name of its type
    and its message with the key redacted; its traceback and its own cause are kept."""


_PLAIN = (str, int, float, bool, type(None))
_CHAIN_DEPTH = 8


def safe_cause(exc: BaseException, redact: Callable[[str], str]) -> BaseException:
    """``exc`` fit to be chained to an error a user sees: itself when its arguments and
    attributes are plain values without the key, else a RedactedCause; its own causes too.

    An exception is kept as it is only then, since anything else it holds (aiohttp's
    ``request_info``, a connection key, a headers mapping) may reach the key. What it was
    raised from is made safe the same way and what it was raised in is dropped.
    """
    chain: list[BaseException] = []
    item: BaseException | None = exc
    while item is not None and len(chain) < _CHAIN_DEPTH:
        chain.append(item)
        item = item.__cause__
    safe: BaseException | None = None
    for item in reversed(chain):
        values = [*item.args, *vars(item).values()]
        if not all(
            isinstance(v, _PLAIN) and (not isinstance(v, str) or redact(v) == v) for v in values
        ):
            name = f"{type(item).__module__}.{type(item).__qualname__}"
            item = RedactedCause(f"{name}: {redact(str(item))}").with_traceback(item.__traceback__)
        item.__cause__ = safe
        item.__context__ = None
        safe = item
    assert safe is not None
    return safe


# ---------------------------------------------------------------- query and form values


def form_value(value: Any) -> str:
    """A query or form value as TD reads it: booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def query_items(params: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    """Query parameters without Nones; booleans as ``true``/``false``; lists repeated."""
    if not params:
        return None
    items: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            items.extend((key, form_value(v)) for v in value)
        else:
            items.append((key, form_value(value)))
    return items


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
        """The counters of one endpoint group (``job/status``, ...), made on first use."""
        found = self.groups.get(name)
        if found is None:
            found = self.groups[name] = GroupStats()
        return found

    def _total(self, attr: str) -> int:
        return sum(getattr(g, attr) for g in self.groups.values())

    @property
    def requests(self) -> int:
        """Requests sent, every try counted."""
        return self._total("requests")

    @property
    def retries(self) -> int:
        """Requests that were retries of an earlier try."""
        return self._total("retries")

    @property
    def rate_limited(self) -> int:
        """Answers that were 429 Too Many Requests."""
        return self._total("rate_limited")

    @property
    def errors(self) -> int:
        """Tries that failed: an error status or a transport error."""
        return self._total("errors")

    @property
    def bytes_in(self) -> int:
        """Bytes of the answers read."""
        return self._total("bytes_in")

    @property
    def bytes_out(self) -> int:
        """Bytes of the request bodies sent."""
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
