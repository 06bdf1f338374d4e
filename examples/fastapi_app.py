"""A web backend on aiotd: queries issued once, awaited, watched and streamed over HTTP.

One ``aiotd.Client`` is opened in the app's lifespan and shared by every request, so every
waiter of the process rides on the client's one poll engine: a thousand requests awaiting a
thousand jobs cost TD about one request per job, not one per request per second.

Routes:

* ``POST /queries``: issue a query, exactly once; answers ``{"job_id", "database",
  "existing"}`` (201, or 200 when an ``Idempotency-Key`` named a job issued before).
* ``GET /queries/{job_id}?wait=30``: the job's state, after waiting up to ``wait`` seconds
  for it to finish (``wait=0``: at once).
* ``GET /queries/{job_id}/events``: server-sent events, one per status change (``queued``,
  ``running``, then ``success`` or ``error``); the stream ends after the final one.
* ``GET /queries/{job_id}/rows?format=jsonl|csv``: the result, streamed as it downloads.

Configuration: ``TD_API_KEY`` and ``TD_API_SERVER`` (or ``TD_SITE``), as ``aiotd.Client``
reads them; ``create_app(client_factory=...)`` builds the app with a client of your own (the
tests point one at the emulator). Run it: ``uvicorn examples.fastapi_app:app``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

import aiotd
from aiotd.errors import BadRequest, NotFound, WaitTimeout
from aiotd.models.core import Job, JobStatus

__all__ = ["QueryIn", "QueryIssued", "QueryState", "app", "create_app", "domain_key_for"]

#: The longest ``?wait=`` a request may ask for, in seconds.
MAX_WAIT = 300.0


class QueryIn(BaseModel):
    """The body of ``POST /queries``."""

    query: str = Field(min_length=1, description="the SQL text")
    database: str = Field(min_length=1)
    engine: Literal["presto", "trino", "hive"] = "presto"
    priority: int | None = Field(default=None, ge=-2, le=2)


class QueryIssued(BaseModel):
    """The answer of ``POST /queries``: the job, and whether it was issued before."""

    job_id: str
    database: str
    existing: bool


class QueryState(BaseModel):
    """A job as the routes report it: its status, and its outcome once it finished."""

    job_id: str
    status: str
    finished: bool
    #: known from the full record: once finished, or when asked without waiting
    database: str | None = None
    created_at: str | None = None
    start_at: str | None = None
    end_at: str | None = None
    duration: float | None = None
    num_records: int | None = None
    result_size: int | None = None
    #: the last line of the job's error output, when it failed
    error: str | None = None


def domain_key_for(idempotency_key: str) -> str:
    """The TD ``domain_key`` for a caller's ``Idempotency-Key``: a digest, so that any text
    the caller sends makes a key of one length and alphabet."""
    return "aiotd-web-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def _iso(record: Job | JobStatus, name: str) -> str | None:
    """A timestamp of the record in ISO 8601 (UTC as TD gives it), or as sent if unreadable."""
    try:
        when: datetime | None = getattr(record, name + "_dt")
    except ValueError:
        return str(getattr(record, name))
    return None if when is None else when.isoformat()


def _state(record: Job | JobStatus) -> QueryState:
    """The JSON view of a light status record or of a full job."""
    error = None
    database = None
    if isinstance(record, Job):
        database = record.database
        stderr = record.debug.stderr if record.failed and record.debug is not None else None
        lines = (stderr or "").strip().splitlines()
        error = lines[-1] if lines else None
    return QueryState(
        job_id=record.job_id,
        status=record.status,
        finished=record.finished,
        database=database,
        created_at=_iso(record, "created_at"),
        start_at=_iso(record, "start_at"),
        end_at=_iso(record, "end_at"),
        duration=None if record.duration is None else float(record.duration),
        num_records=record.num_records,
        result_size=record.result_size,
        error=error,
    )


async def _client(request: Request) -> aiotd.Client:
    """The app's one client, opened by the lifespan (async: no worker thread per request)."""
    td: aiotd.Client = request.state.td
    return td


#: The app's client, as a route parameter.
TD = Annotated[aiotd.Client, Depends(_client)]


def create_app(client_factory: Callable[[], aiotd.Client] = aiotd.Client) -> FastAPI:
    """The app; ``client_factory()`` makes its client when it starts (by default from
    ``TD_API_KEY`` / ``TD_API_SERVER``), and the client is closed when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with client_factory() as td:
            yield {"td": td}

    app = FastAPI(title="aiotd web example", lifespan=lifespan)

    @app.post("/queries", status_code=201)
    async def issue(
        body: QueryIn,
        td: TD,
        response: Response,
        idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
    ) -> QueryIssued:
        """Issue the query once. Without ``Idempotency-Key`` aiotd still sends a fresh
        ``domain_key`` with every try, so its own retries never make a second job; with the
        header, a caller's retry (the same key) gets the job already issued."""
        key = None if idempotency_key is None else domain_key_for(idempotency_key)
        try:
            issued = await td.jobs.issue(
                body.query,
                database=body.database,
                engine=body.engine,
                priority=body.priority,
                domain_key=key,
            )
        except NotFound as exc:
            raise HTTPException(404, exc.message) from None
        except BadRequest as exc:
            raise HTTPException(400, exc.message) from None
        except ValueError as exc:  # refused by aiotd before any request
            raise HTTPException(422, str(exc)) from None
        if issued.existing:
            response.status_code = 200
        return QueryIssued(job_id=issued.job_id, database=body.database, existing=issued.existing)

    @app.get("/queries/{job_id}")
    async def state(
        job_id: str,
        td: TD,
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0,
    ) -> QueryState:
        """The job's state once it finished or ``wait`` seconds passed, whichever is first.

        The wait joins the client's poll engine: concurrent requests for any jobs share
        its polls instead of each polling TD.
        """
        try:
            if wait == 0:
                return _state(await td.jobs.get(job_id))
            try:
                return _state(await td.jobs.wait(job_id, timeout=wait))
            except WaitTimeout as exc:
                last = exc.last
                if isinstance(last, Job | JobStatus):
                    return _state(last)
                return _state(await td.jobs.status(job_id))
        except NotFound:
            raise HTTPException(404, f"no job {job_id}") from None

    @app.get("/queries/{job_id}/events")
    async def events(job_id: str, td: TD) -> EventSourceResponse:
        """Each status change as an ``event: status`` whose data is the job's state; the
        stream ends after the final status (an EventSource client closes on ``finished``)."""
        changes = td.jobs.watch([job_id])
        try:
            # the first change is the status as first seen: a missing job is a 404 here,
            # before the stream starts
            first = await anext(changes)
        except NotFound:
            await changes.aclose()
            raise HTTPException(404, f"no job {job_id}") from None
        except BaseException:
            await changes.aclose()
            raise

        async def stream() -> AsyncIterator[ServerSentEvent]:
            async with aclosing(changes):
                number = 0
                event = first
                while True:
                    number += 1
                    data = _state(event.job).model_dump_json()
                    yield ServerSentEvent(data=data, event="status", id=str(number))
                    try:
                        event = await anext(changes)
                    except StopAsyncIteration:
                        return

        return EventSourceResponse(stream())

    @app.get("/queries/{job_id}/rows")
    async def rows(
        job_id: str,
        td: TD,
        format: Literal["jsonl", "csv"] = "jsonl",
    ) -> StreamingResponse:
        """The result of a finished job, streamed: JSON lines (one array per row) or CSV
        with a header. Memory stays bounded whatever the size; a download that fails
        midway cuts the response short (its chunked encoding never ends)."""
        try:
            job = await td.jobs.get(job_id)
        except NotFound:
            raise HTTPException(404, f"no job {job_id}") from None
        if not job.finished:
            raise HTTPException(409, f"job {job_id} is {job.status}; it has no result yet")
        if not job.success:
            raise HTTPException(409, f"job {job_id} ended {job.status}; it has no result")
        if format == "csv":
            header = [column.name for column in job.result_columns]
            return StreamingResponse(_csv(td, job_id, header), media_type="text/csv")
        return StreamingResponse(_json_lines(td, job_id), media_type="application/x-ndjson")

    return app


async def _json_lines(td: aiotd.Client, job_id: str) -> AsyncIterator[bytes]:
    """One JSON array per row, a chunk per batch of rows."""
    encode = msgspec.json.Encoder().encode
    async with aclosing(td.jobs.row_batches(job_id)) as batches:
        async for batch in batches:
            yield b"".join(encode(row) + b"\n" for row in batch)


def _csv_cell(value: Any) -> Any:
    """Arrays and maps as JSON text, NULL as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return msgspec.json.encode(value).decode()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


async def _csv(td: aiotd.Client, job_id: str, header: list[str]) -> AsyncIterator[str]:
    """A header line, then a chunk of CSV lines per batch of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    if header:
        writer.writerow(header)
        yield take()
    async with aclosing(td.jobs.row_batches(job_id)) as batches:
        async for batch in batches:
            writer.writerows([_csv_cell(v) for v in row] for row in batch)
            yield take()


app = create_app()
