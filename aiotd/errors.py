"""The exception tree of aiotd:

    TDError
      APIError(status, message, body, method, url)   TD answered, but not with success
        BadRequest 400, AuthError 401, Forbidden 403, NotFound 404, Conflict 409,
        Unprocessable 422, RateLimited 429, ServerError 5xx
      TransportError(method, url)                    could not talk: connect, reset, timeout
      DecodeError                                    the body is not the expected shape
        ResponseTooLarge(limit)                      the answer exceeds max_response_size
        PaginationError(cursor)                      a cursor repeats, goes back or is ignored
      ArchiveError(member)                           a project archive cannot be built or is refused
      ClientClosed                                   work cut off by close() of the client
      WaitTimeout(last)                              a wait's deadline passed
      JobFailed(job) / AttemptFailed(attempt, failed_tasks)
      JobNotFinished(job)                            a job's result asked for before it finished
      ChecksumMismatch(sent, received)               TD acknowledged other bytes than were sent
      MissingExtra(extra)                            an optional extra is missing (an ImportError)

``asyncio.CancelledError`` is never caught, wrapped or retried by aiotd.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "ArchiveError",
    "AttemptFailed",
    "AuthError",
    "BadRequest",
    "ChecksumMismatch",
    "ClientClosed",
    "Conflict",
    "DecodeError",
    "Forbidden",
    "JobFailed",
    "JobNotFinished",
    "MissingExtra",
    "NotFound",
    "PaginationError",
    "RateLimited",
    "ResponseTooLarge",
    "ServerError",
    "TDError",
    "TransportError",
    "Unprocessable",
    "WaitTimeout",
    "error_for_status",
]


class TDError(Exception):
    """Base class of every error aiotd raises."""


class APIError(TDError):
    """TD answered with a status that is not a success.

    ``message`` is TD's own message (``message``, else ``error``, else the start of a
    non-JSON body such as a proxy's HTML page); ``body`` is the raw text, capped.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        body: str = "",
        method: str = "",
        url: str = "",
        retry_after: float | None = None,
        conflicts_with: str | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.body = body
        self.method = method
        self.url = url
        self.retry_after = retry_after
        self.conflicts_with = conflicts_with
        super().__init__(status, message)

    def __str__(self) -> str:
        where = f" ({self.method} {self.url})" if self.method else ""
        return f"{self.status}: {self.message}{where}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_api_error,
            (
                type(self),
                self.status,
                self.message,
                self.body,
                self.method,
                self.url,
                self.retry_after,
                self.conflicts_with,
            ),
        )


def _rebuild_api_error(
    cls: type[APIError],
    status: int,
    message: str,
    body: str,
    method: str,
    url: str,
    retry_after: float | None,
    conflicts_with: str | None,
) -> APIError:
    return cls(
        status,
        message,
        body=body,
        method=method,
        url=url,
        retry_after=retry_after,
        conflicts_with=conflicts_with,
    )


class BadRequest(APIError):
    """400: the request was malformed or a parameter was refused."""


class AuthError(APIError):
    """401: the API key is missing, wrong or revoked."""


class Forbidden(APIError):
    """403: the key is valid but lacks permission."""


class NotFound(APIError):
    """404: no such database, table, job, project, attempt, ..."""


class Conflict(APIError):
    """409: the resource exists already; ``conflicts_with`` names the existing job if TD says."""


class Unprocessable(APIError):
    """422: TD validated the parameters and refused them."""


class RateLimited(APIError):
    """429: too many requests; ``retry_after`` is TD's hint in seconds, if any."""


class ServerError(APIError):
    """5xx: TD (or a proxy in front of it) failed."""


class TransportError(TDError):
    """The request could not be completed: connection refused or reset, timeout, cut body.

    ``method`` and ``url`` say which request (empty when not known).
    """

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        self.method = method
        self.url = url
        super().__init__(message)


class ClientClosed(TDError, RuntimeError):
    """The client was closed while this call, stream or wait was under way, or before it.

    Also a RuntimeError: using a client after ``close()`` is a mistake of the program.
    """


class DecodeError(TDError):
    """The body could not be decoded into the expected shape.

    ``path`` says where in the document the problem is; ``snippet`` is a short excerpt.
    """

    def __init__(self, message: str, *, path: str = "", snippet: str = "") -> None:
        self.path = path
        self.snippet = snippet
        super().__init__(message)

    def __str__(self) -> str:
        text = str(self.args[0]) if self.args else "cannot decode body"
        if self.path:
            text += f" at {self.path}"
        if self.snippet:
            text += f"; body starts: {self.snippet!r}"
        return text


class ArchiveError(TDError):
    """A project archive cannot be built, is over a limit, or has a member that is refused.

    ``member`` names the archive entry (or project file) at fault, when there is one.
    """

    def __init__(self, message: str, *, member: str | None = None) -> None:
        self.member = member
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0],), {"member": self.member})


class ResponseTooLarge(DecodeError):
    """A whole answer (not a stream) is larger than the client's ``max_response_size``,
    counted as announced and as decoded while reading; ``limit`` is that cap in bytes."""

    def __init__(self, message: str, *, limit: int = 0, method: str = "", url: str = "") -> None:
        self.limit = limit
        self.method = method
        self.url = url
        super().__init__(message)


class PaginationError(DecodeError):
    """A listing walked page by page went wrong: its cursor repeated or moved backwards, or
    the server answered the first page again whatever cursor was asked, so the walk stops
    instead of looping. ``cursor`` is the cursor at fault (as the pager holds it)."""

    def __init__(self, message: str, *, cursor: Any = None) -> None:
        self.cursor = cursor
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0],), {"cursor": self.cursor})


class WaitTimeout(TDError):
    """A wait's deadline passed; ``last`` is the last state seen (or None)."""

    def __init__(self, message: str, last: Any = None) -> None:
        self.last = last
        super().__init__(message)


class JobFailed(TDError):
    """A job ended in ``error`` or ``killed``; ``job`` is its full record."""

    def __init__(self, job: Any) -> None:
        self.job = job
        stderr = ""
        debug = getattr(job, "debug", None)
        lines = str(getattr(debug, "stderr", None) or "").strip().splitlines()
        if lines:  # stderr of only whitespace has no last line
            stderr = lines[-1][:300]
        status = getattr(job, "status", "?")
        text = f"job {getattr(job, 'job_id', '?')} ended {status}"
        if stderr:
            text += f": {stderr}"
        super().__init__(text)


class AttemptFailed(TDError):
    """A workflow attempt ended without success; ``failed_tasks`` lists the tasks in error."""

    def __init__(self, attempt: Any, failed_tasks: list[Any] | None = None) -> None:
        self.attempt = attempt
        self.failed_tasks = list(failed_tasks or [])
        text = f"attempt {getattr(attempt, 'id', '?')} ended {getattr(attempt, 'status', '?')}"
        parts = []
        for task in self.failed_tasks[:5]:
            name = getattr(task, "full_name", "?")
            message = getattr(task, "error_message", None) or ""
            parts.append(f"{name}: {message}" if message else name)
        if parts:
            text += " (" + "; ".join(parts) + ")"
        super().__init__(text)


class JobNotFinished(TDError):
    """A call that needs a finished job (its result) got one still queued or running;
    ``job`` is the record as TD sent it. Wait for it first (``td.jobs.wait``)."""

    def __init__(self, job: Any) -> None:
        self.job = job
        status = getattr(job, "status", "?")
        super().__init__(f"job {getattr(job, 'job_id', '?')} has not finished (status {status})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.job,))


class MissingExtra(TDError, ImportError):
    """A feature needs a package of an optional extra that is not installed; the message
    says what to install (``pip install 'aiotd[arrow]'``). ``extra`` names the extra."""

    def __init__(self, message: str, *, extra: str = "", name: str | None = None) -> None:
        self.extra = extra
        super().__init__(message, name=name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0],), {"extra": self.extra, "name": self.name})


class ChecksumMismatch(TDError):
    """TD acknowledged a body whose MD5 is not that of the bytes sent: ``sent`` and
    ``received`` are the two hex digests."""

    def __init__(self, message: str, *, sent: str = "", received: str = "") -> None:
        self.sent = sent
        self.received = received
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0],), {"sent": self.sent, "received": self.received})


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Unprocessable,
    429: RateLimited,
}


def error_for_status(status: int) -> type[APIError]:
    """The most specific APIError subclass for an HTTP status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)
