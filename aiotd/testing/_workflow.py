"""The Workflow (digdag) API of the emulator: projects, workflows, sessions, attempts, logs.

Everything lives in memory. Attempts run their ``.dig`` task tree on a virtual clock that is
advanced when an attempt is read and by one ticker for all attempts, so thousands of running
attempts cost no task each. Behaviour and shapes follow reference/workflow-api.md.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import collections
import contextlib
import dataclasses
import gzip
import hashlib
import hmac
import itertools
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, NoReturn, Protocol
from xml.sax.saxutils import escape

import msgspec
from aiohttp import web

from aiotd.testing._digdag import (
    ArchiveError,
    DigError,
    ScheduleSpec,
    TaskSpec,
    compile_workflow,
    format_instant,
    format_offset,
    load_dig,
    parse_instant,
    read_archive,
    render,
    validate_project_name,
    validate_secret,
    zone,
)

__all__ = ["JobRunner", "StorageOrigin", "WorkflowService"]

_DONE = frozenset({"success", "group_error", "error", "canceled"})  # reference §3.2
_FAILED = frozenset({"group_error", "error", "canceled"})
_JOB_DONE = frozenset({"success", "error", "killed"})
_DEFAULT_DURATIONS = {"echo": 0.02, "fail": 0.02}
_AGENT_ID = f"{os.getpid()}@aiotd-emulator"

_encoder = msgspec.json.Encoder()
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class JobRunner(Protocol):
    """What ``td>`` tasks need from the v3 side of the emulator: issue, follow, kill a job."""

    def issue_job(self, *, database: str, query: str, engine: str = "presto") -> str: ...

    def job_status(self, job_id: str) -> str: ...

    def kill(self, job_id: str) -> object: ...


class _TimedJobs:
    """Stand-in jobs for a service created without a JobRunner: each succeeds after a while."""

    def __init__(self, clock: Callable[[], float], duration: float) -> None:
        self._clock = clock
        self._duration = duration
        self._ends: dict[str, float] = {}
        self._killed: set[str] = set()
        self._ids = itertools.count(1)

    def issue_job(self, *, database: str, query: str, engine: str = "presto") -> str:
        job_id = str(next(self._ids))
        self._ends[job_id] = self._clock() + self._duration
        return job_id

    def job_status(self, job_id: str) -> str:
        if job_id in self._killed:
            return "killed"
        return "success" if self._clock() >= self._ends[job_id] else "running"

    def kill(self, job_id: str) -> str:
        former = self.job_status(job_id)
        if former == "running":
            self._killed.add(job_id)
        return former


class _Fail(Exception):
    """Answer with digdag's error shape ``{"message", "status"}`` (reference §4)."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(data), status=status, content_type="application/json")


def _missing(kind: str, ident: object) -> NoReturn:
    raise _Fail(404, f"Resource does not exist: {kind} id={ident}")


@web.middleware
async def _plain_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
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


# --- pre-signed storage (reference §2.1 archive, §2.6 direct log URLs) ------------------------

_BUCKET = "aiotd-emulator"
_SIGNATURE_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


def _s3_error(status: int, code: str, message: str, *extra: tuple[str, str]) -> web.Response:
    """An error as S3 writes it: an XML ``<Error>`` document."""
    fields = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in extra)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{fields}"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


class StorageOrigin:
    """Object storage on a port of its own, where TD's pre-signed S3 URLs point.

    Its URLs carry an expiring signature in their query, as ``generatePresignedUrl`` makes
    them (digdag S3Storage.getDirectDownloadHandle: 10 minutes by default). Like S3 it refuses
    a request that also sends an Authorization header (400 InvalidArgument, "Only one auth
    mechanism allowed"), so a client that forwards its API key to storage fails here as it
    would on TD. ``statuses`` counts its answers by HTTP status.
    """

    def __init__(self, clock: Callable[[], float], expiry: float) -> None:
        self._clock = clock
        self._expiry = int(expiry)
        self._secret = os.urandom(32)
        self._objects: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.statuses: collections.Counter[int] = collections.Counter()

    async def start(self, host: str) -> None:
        """Listen on a free port of ``host``."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get(f"/{_BUCKET}/{{key}}", self._get)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, 0, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening; idempotent."""
        runner, self._runner = self._runner, None
        self.port = None
        if runner is not None:
            await runner.cleanup()

    def put(self, data: bytes) -> str:
        """Store an object; its key."""
        key = uuid.uuid4().hex
        self._objects[key] = data
        return key

    def url(self, request: web.Request, key: str) -> str | None:
        """A pre-signed URL of ``key`` on the host ``request`` reached; None when not serving."""
        if self.port is None:
            return None
        path = f"/{_BUCKET}/{key}"
        date = time.strftime(_AMZ_DATE, time.gmtime(self._clock()))
        expires = str(self._expiry)
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"AIOTDEMULATOR/{date[:8]}/us-east-1/s3/aws4_request",
            "X-Amz-Date": date,
            "X-Amz-Expires": expires,
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": self._sign(path, date, expires),
        }
        return str(request.url.with_port(self.port).with_path(path).with_query(query))

    def _sign(self, path: str, date: str, expires: str) -> str:
        message = f"{path}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    async def _get(self, request: web.Request) -> web.Response:
        response = self._answer(request)
        self.statuses[response.status] += 1
        return response

    def _answer(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            # S3 takes one credential: the URL's signature or the header, never both.
            return _s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be "
                "specified",
                ("ArgumentName", "Authorization"),
            )
        query = request.query
        if any(name not in query for name in _SIGNATURE_PARAMS):
            return _s3_error(
                403,
                "AccessDenied",
                "Query-string authentication version 4 requires the X-Amz-Algorithm, "
                "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
                "X-Amz-Expires parameters.",
            )
        date, expires = query["X-Amz-Date"], query["X-Amz-Expires"]
        expected = self._sign(request.path, date, expires)
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            return _s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
            )
        signed_at = calendar.timegm(time.strptime(date, _AMZ_DATE))
        if self._clock() > signed_at + int(expires):
            return _s3_error(403, "AccessDenied", "Request has expired", ("X-Amz-Expires", expires))
        data = self._objects.get(request.match_info["key"])
        if data is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return web.Response(body=data, content_type="application/gzip")


# --- stored objects ---------------------------------------------------------------------------


@dataclass(eq=False)
class _Project:
    id: int
    name: str
    created_at: float
    revisions: list[_Revision] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    deleted_at: float | None = None

    @property
    def latest(self) -> _Revision:
        return self.revisions[-1]

    def ref(self) -> dict[str, str]:
        return {"id": str(self.id), "name": self.name}


@dataclass(eq=False)
class _Revision:
    id: int
    name: str
    created_at: float
    archive: bytes
    files: dict[str, bytes]
    storage_key: str
    workflows: list[_Workflow] = field(default_factory=list)

    @property
    def md5(self) -> str:
        return base64.b64encode(hashlib.md5(self.archive).digest()).decode()


@dataclass(eq=False)
class _Workflow:
    id: int
    name: str
    project: _Project
    revision: _Revision
    timezone: str
    tz: tzinfo
    config: dict[str, Any]
    root: TaskSpec
    schedule: ScheduleSpec | None
    schedule_source: bytes


@dataclass(eq=False)
class _Schedule:
    id: int
    project: _Project
    workflow: _Workflow
    spec: ScheduleSpec
    source: bytes
    next_session: float
    next_run: float
    created_at: float
    updated_at: float
    last_session: float | None = None
    disabled_at: float | None = None


@dataclass(eq=False)
class _Session:
    id: int
    project: _Project
    workflow_name: str
    time: float
    uuid: str
    attempts: list[_Attempt] = field(default_factory=list)


@dataclass(eq=False)
class _Task:
    id: int
    spec: TaskSpec
    parent: _Task | None
    updated_at: float
    state: str = "blocked"
    upstreams: list[_Task] = field(default_factory=list)
    children: list[_Task] = field(default_factory=list)
    store_params: dict[str, Any] = field(default_factory=dict)
    state_params: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    retry_at: float | None = None
    cancel_requested: bool = False
    due: float | None = None
    job_id: str | None = None
    retries: int = 0
    error_added: bool = False
    resumed: bool = False


@dataclass(eq=False)
class _LogFile:
    task_name: str
    file_name: str
    data: bytes
    file_time: float
    storage_key: str


@dataclass(eq=False)
class _Attempt:
    id: int
    index: int
    session: _Session
    workflow: _Workflow
    retry_name: str | None
    params: dict[str, Any]
    created_at: float
    clock: float
    pool_id: str | None = None
    tasks: list[_Task] = field(default_factory=list)
    logs: list[_LogFile] = field(default_factory=list)
    done: bool = False
    success: bool = False
    cancel_requested: bool = False
    cancel_at: float | None = None
    finished_at: float | None = None
    wait_state: str | None = None

    @property
    def status(self) -> str:
        """TD's ``status`` (reference §3.1): ``canceling`` while a kill is pending,
        ``queued`` or ``blocked`` while it waits for a place in the pool."""
        if self.done:
            if self.success:
                return "success"
            return "killed" if self.cancel_requested else "error"
        if self.cancel_requested:
            return "canceling"
        return self.wait_state or "running"


# --- JSON shapes (reference §3) --------------------------------------------------------------


def _project_json(project: _Project) -> dict[str, Any]:
    latest = project.latest
    return {
        "id": str(project.id),
        "name": project.name,
        "revision": latest.name,
        "createdAt": format_instant(project.created_at),
        "updatedAt": format_instant(latest.created_at),
        "deletedAt": format_instant(project.deleted_at),
        "archiveType": "s3",
        "archiveMd5": latest.md5,
        "metadata": [],
    }


def _revision_json(revision: _Revision) -> dict[str, Any]:
    return {
        "revision": revision.name,
        "createdAt": format_instant(revision.created_at),
        "archiveType": "s3",
        "archiveMd5": revision.md5,
        "userInfo": {},
    }


def _workflow_json(workflow: _Workflow) -> dict[str, Any]:
    return {
        "id": str(workflow.id),
        "name": workflow.name,
        "project": workflow.project.ref(),
        "revision": workflow.revision.name,
        "timezone": workflow.timezone,
        "config": workflow.config,
    }


def _attempt_json(attempt: _Attempt) -> dict[str, Any]:
    session = attempt.session
    body: dict[str, Any] = {
        "id": str(attempt.id),
        "index": attempt.index,
        "project": session.project.ref(),
        "workflow": {"name": session.workflow_name, "id": str(attempt.workflow.id)},
        "sessionId": str(session.id),
        "sessionUuid": session.uuid,
        "sessionTime": format_offset(session.time, attempt.workflow.tz),
        "retryAttemptName": attempt.retry_name,
        "done": attempt.done,
        "success": attempt.success,
        "cancelRequested": attempt.cancel_requested,
        "params": attempt.params,
        "createdAt": format_instant(attempt.created_at),
        "finishedAt": format_instant(attempt.finished_at),
        "status": attempt.status,
    }
    if attempt.pool_id is not None:
        body["poolId"] = attempt.pool_id
    return body


def _session_json(session: _Session) -> dict[str, Any]:
    last = session.attempts[-1]
    last_attempt: dict[str, Any] = {
        "id": str(last.id),
        "retryAttemptName": last.retry_name,
        "done": last.done,
        "success": last.success,
        "cancelRequested": last.cancel_requested,
        "params": last.params,
        "createdAt": format_instant(last.created_at),
        "finishedAt": format_instant(last.finished_at),
        "status": last.status,
    }
    if last.pool_id is not None:
        last_attempt["poolId"] = last.pool_id
    return {
        "id": str(session.id),
        "project": session.project.ref(),
        "workflow": {"name": session.workflow_name, "id": str(last.workflow.id)},
        "sessionUuid": session.uuid,
        "sessionTime": format_offset(session.time, last.workflow.tz),
        "lastAttempt": last_attempt,
    }


def _task_json(task: _Task) -> dict[str, Any]:
    return {
        "id": str(task.id),
        "fullName": task.spec.full_name,
        "parentId": None if task.parent is None else str(task.parent.id),
        "config": task.spec.config,
        "upstreams": [str(upstream.id) for upstream in task.upstreams],
        "state": task.state,
        "cancelRequested": task.cancel_requested,
        "exportParams": task.spec.export,
        "storeParams": task.store_params,
        "stateParams": task.state_params,
        "updatedAt": format_instant(task.updated_at),
        "retryAt": format_instant(task.retry_at),
        "startedAt": format_instant(task.started_at),
        "error": task.error,
        "isGroup": task.spec.is_group,
    }


def _schedule_json(schedule: _Schedule, *, summary: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(schedule.id),
        "project": schedule.project.ref(),
        "workflow": {"id": str(schedule.workflow.id), "name": schedule.workflow.name},
        "nextRunTime": format_instant(schedule.next_run),
        "nextScheduleTime": format_offset(schedule.next_session, schedule.spec.tz),
        "disabledAt": format_instant(schedule.disabled_at),
    }
    if summary:
        # RestScheduleSummary; OSS fills updatedAt from createdAt (reference §3, Schedules).
        body["createdAt"] = format_instant(schedule.created_at)
        body["updatedAt"] = format_instant(schedule.created_at)
    return body


# --- request parsing -------------------------------------------------------------------------


def _path_id(request: web.Request, name: str = "id") -> int:
    return int(request.match_info[name])


def _int_query(request: web.Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter; one that does not convert is a plain 404 (reference §1)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPNotFound() from None


def _bool_query(request: web.Request, name: str, default: bool = False) -> bool:
    """JAX-RS ``Boolean.valueOf``: only ``true`` in any case is true (reference §1)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.lower() == "true"


async def _json_body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise _Fail(400, "Request body is required")
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise _Fail(400, f"Invalid JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise _Fail(400, "Request body must be a JSON object")
    return body


def _page(items: Iterable[Any], size: int) -> list[Any]:
    return list(itertools.islice(items, size))


# --- the service ------------------------------------------------------------------------------


class WorkflowService:
    """The Workflow API routes and their in-memory state; one per emulator."""

    def __init__(
        self,
        *,
        jobs: JobRunner | None = None,
        task_duration: float = 0.2,
        operator_durations: Mapping[str, float] | None = None,
        dispatch_delay: float = 0.01,
        retry_interval: float = 0.1,
        kill_delay: float = 0.05,
        max_archive_size: int = 2 * 1024 * 1024,
        max_page_size: int = 100,
        tick_interval: float | None = 0.2,
        archive_redirect: bool = True,
        direct_url_expiry: float = 600.0,
        max_running_attempts: int | None = None,
        run_schedules: bool = True,
        version: str = "0.10.5",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Options.

        ``task_duration`` is how long an operator task runs (seconds) unless
        ``operator_durations`` names its operator (``{"sh": 1.0, "echo": 0}``); ``td>`` tasks
        last as long as their job. ``dispatch_delay`` is the time a task stays ``ready``,
        ``retry_interval`` the wait of ``_retry``, ``kill_delay`` the time from a kill request
        to ``done``. ``tick_interval`` (None: only on reads) advances all attempts and fires
        schedules when ``run_schedules``. ``archive_redirect`` makes archive downloads answer
        303 to a pre-signed URL of the storage origin (started by ``start``) as TD does; those
        URLs and the logs' ``direct`` ones expire after ``direct_url_expiry`` seconds.
        ``max_running_attempts`` is the pool's concurrency limit (None: no limit): past it an
        attempt waits, ``queued`` or ``blocked``, if its start allows queueing, and is refused
        otherwise. ``clock`` gives epoch seconds.
        """
        self._clock = clock
        self._jobs: JobRunner = jobs if jobs is not None else _TimedJobs(clock, task_duration)
        self._task_duration = task_duration
        self._durations = {**_DEFAULT_DURATIONS, **(operator_durations or {})}
        self._dispatch_delay = dispatch_delay
        self._retry_interval = retry_interval
        self._kill_delay = kill_delay
        self._max_archive = max_archive_size
        self._max_page = max_page_size
        self._tick_interval = tick_interval
        self._archive_redirect = archive_redirect
        self._max_running = max_running_attempts
        self._run_schedules = run_schedules
        self._version = version
        self._ids: dict[str, itertools.count[int]] = {}
        self._projects: dict[int, _Project] = {}
        self._workflows: dict[int, _Workflow] = {}
        self._schedules: dict[int, _Schedule] = {}
        self._sessions: dict[int, _Session] = {}
        self._session_index: dict[tuple[int, str, float], _Session] = {}
        self._attempts: dict[int, _Attempt] = {}
        self._active: dict[int, _Attempt] = {}
        self._waiting: dict[int, _Attempt] = {}
        self.storage = StorageOrigin(clock, direct_url_expiry)
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False

    def _next_id(self, kind: str) -> int:
        return next(self._ids.setdefault(kind, itertools.count(1)))

    # --- lifecycle ----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Register every ``/api/...`` route, and the middleware giving ``/api`` paths that
        match no route JAX-RS's plain 404 and 405 answers."""
        routes: list[tuple[str, str, _Handler]] = [
            ("GET", "/api/version", self._version_get),
            ("GET", "/api/version/check", self._version_check),
            ("GET", "/api/projects", self._projects_list),
            ("PUT", "/api/projects", self._project_put),
            ("GET", "/api/project", self._project_by_name),
            ("GET", "/api/projects/{id:-?\\d+}", self._project_get),
            ("DELETE", "/api/projects/{id:-?\\d+}", self._project_delete),
            ("GET", "/api/projects/{id:-?\\d+}/archive", self._project_archive),
            ("GET", "/api/projects/{id:-?\\d+}/revisions", self._project_revisions),
            ("GET", "/api/projects/{id:-?\\d+}/workflows", self._project_workflows),
            ("GET", "/api/projects/{id:-?\\d+}/workflow", self._project_workflow_query),
            ("GET", "/api/projects/{id:-?\\d+}/workflows/{name}", self._project_workflow),
            ("GET", "/api/projects/{id:-?\\d+}/schedules", self._project_schedules),
            ("GET", "/api/projects/{id:-?\\d+}/sessions", self._project_sessions),
            ("GET", "/api/projects/{id:-?\\d+}/secrets", self._secrets_list),
            ("PUT", "/api/projects/{id:-?\\d+}/secrets/{key}", self._secret_put),
            ("DELETE", "/api/projects/{id:-?\\d+}/secrets/{key}", self._secret_delete),
            ("GET", "/api/workflows", self._workflows_list),
            ("GET", "/api/workflows/{id:-?\\d+}", self._workflow_get),
            (
                "GET",
                "/api/workflows/{id:-?\\d+}/truncated_session_time",
                self._truncated_session_time,
            ),
            ("GET", "/api/sessions", self._sessions_list),
            ("GET", "/api/sessions/{id:-?\\d+}", self._session_get),
            ("GET", "/api/sessions/{id:-?\\d+}/attempts", self._session_attempts),
            ("GET", "/api/attempts", self._attempts_list),
            ("PUT", "/api/attempts", self._attempt_put),
            ("GET", "/api/attempts/{id:-?\\d+}", self._attempt_get),
            ("GET", "/api/attempts/{id:-?\\d+}/tasks", self._attempt_tasks),
            ("GET", "/api/attempts/{id:-?\\d+}/retries", self._attempt_retries),
            ("POST", "/api/attempts/{id:-?\\d+}/kill", self._attempt_kill),
            ("GET", "/api/schedules", self._schedules_list),
            ("GET", "/api/schedules/{id:-?\\d+}", self._schedule_get),
            ("POST", "/api/schedules/{id:-?\\d+}/skip", self._schedule_skip),
            ("POST", "/api/schedules/{id:-?\\d+}/backfill", self._schedule_backfill),
            ("POST", "/api/schedules/{id:-?\\d+}/disable", self._schedule_disable),
            ("POST", "/api/schedules/{id:-?\\d+}/enable", self._schedule_enable),
            ("GET", "/api/logs/{id:-?\\d+}/files", self._log_files),
            ("GET", "/api/logs/{id:-?\\d+}/files/{file_name}", self._log_file),
        ]
        for method, path, handler in routes:
            wrapped = self._wrap(handler)
            app.router.add_route(method, path, wrapped)
            # JAX-RS resource methods accept an optional trailing slash (reference §1).
            app.router.add_route(method, path + "/", wrapped)
        app.middlewares.append(_plain_errors)
        app.on_cleanup.append(self._on_cleanup)

    async def start(self, host: str = "127.0.0.1") -> None:
        """Serve the storage origin of pre-signed URLs on a free port of ``host``.

        Until then (and after ``close``) archives are answered in place and log files have
        no ``direct`` URL, as digdag does on a storage without direct download."""
        await self.storage.start(host)

    async def close(self) -> None:
        """Stop the ticker (attempts then advance only when read) and the storage origin;
        idempotent."""
        self._closed = True
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await self.storage.close()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.close()

    def _wrap(self, handler: _Handler) -> _Handler:
        async def route(request: web.Request) -> web.StreamResponse:
            self._ensure_ticker()
            try:
                return await handler(request)
            except _Fail as fail:
                body = fail.body
                if body is None:
                    body = {"message": fail.message, "status": fail.status}
                return _json(body, fail.status)

        return route

    def _ensure_ticker(self) -> None:
        if self._ticker is None and self._tick_interval is not None and not self._closed:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        assert self._tick_interval is not None
        while True:
            await asyncio.sleep(self._tick_interval)
            self.tick()

    def tick(self) -> None:
        """Advance every running attempt and fire the schedules that are due."""
        now = self._clock()
        if self._run_schedules:
            self._fire_schedules(now)
        for attempt in list(self._active.values()):
            self._advance(attempt, now)

    # --- version ------------------------------------------------------------------------------

    async def _version_get(self, request: web.Request) -> web.Response:
        return _json({"version": self._version})

    async def _version_check(self, request: web.Request) -> web.Response:
        return _json(
            {"serverVersion": self._version, "upgradeRecommended": False, "apiCompatible": True}
        )

    # --- projects (reference §2.1) ------------------------------------------------------------

    def _project(self, project_id: int) -> _Project:
        project = self._projects.get(project_id)
        if project is None:
            _missing("project", project_id)
        if project.deleted_at is not None:
            deleted = format_instant(project.deleted_at)
            raise _Fail(404, f"Project id={project_id} is already deleted at {deleted}")
        return project

    def _live_projects(self) -> Iterable[_Project]:
        return (p for p in self._projects.values() if p.deleted_at is None)

    def _project_named(self, name: str) -> _Project | None:
        return next((p for p in self._live_projects() if p.name == name), None)

    async def _projects_list(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        if name is not None:
            found = self._project_named(name)
            return _json({"projects": [] if found is None else [_project_json(found)]})
        last_id = _int_query(request, "last_id", 0) or 0
        count = _int_query(request, "count", 100) or 100
        pattern = request.query.get("name_pattern", "")
        items = (
            p for p in self._live_projects() if p.id > last_id and pattern.lower() in p.name.lower()
        )
        return _json({"projects": [_project_json(p) for p in _page(items, count)]})

    async def _project_by_name(self, request: web.Request) -> web.Response:
        name = request.query.get("name", "")
        found = self._project_named(name)
        if found is None:
            raise _Fail(404, f"Resource does not exist: project name={name}")
        return _json(_project_json(found))

    async def _project_get(self, request: web.Request) -> web.Response:
        return _json(_project_json(self._project(_path_id(request))))

    async def _project_delete(self, request: web.Request) -> web.Response:
        project = self._project(_path_id(request))
        body = _project_json(project)
        project.deleted_at = self._clock()
        for schedule in [s for s in self._schedules.values() if s.project is project]:
            del self._schedules[schedule.id]
        return _json(body)

    async def _project_put(self, request: web.Request) -> web.Response:
        name = request.query.get("project")
        revision_name = request.query.get("revision")
        if not name:
            raise _Fail(400, "project= is required")
        if not revision_name:
            raise _Fail(400, "revision= is required")
        if len(revision_name) > 255:
            raise _Fail(400, "revision name must not be longer than 255 characters")
        problem = validate_project_name(name)
        if problem is not None:
            raise _Fail(400, problem)
        if request.content_type != "application/gzip":
            # JAX-RS NotSupportedException is mapped to 400, not 415 (reference §4).
            raise _Fail(400, "HTTP 415 Unsupported Media Type")
        now = self._clock()
        schedule_from = now
        raw_from = request.query.get("schedule_from")
        if raw_from:
            try:
                if not raw_from.endswith("Z"):
                    raise ValueError(raw_from)
                schedule_from = parse_instant(raw_from)
            except ValueError:
                raise _Fail(400, f"Invalid schedule_from= parameter format: {raw_from}") from None
        data = await self._read_upload(request)
        try:
            files = read_archive(data, self._max_archive)
        except ArchiveError as exc:
            raise _Fail(400, str(exc)) from None
        project = self._project_named(name)
        if project is not None and any(r.name == revision_name for r in project.revisions):
            raise _Fail(
                409, f"Resource already exists: revision={revision_name} in project id={project.id}"
            )
        if project is None:
            project = _Project(id=0, name=name, created_at=now)
        revision = _Revision(
            id=0,
            name=revision_name,
            created_at=now,
            archive=data,
            files=files,
            storage_key="",
        )
        try:
            revision.workflows = self._compile_workflows(project, revision)
        except DigError as exc:
            raise _Fail(400, str(exc)) from None
        names = {w.name for w in revision.workflows}
        cleared = request.query.getall("clear_schedule", [])
        for workflow_name in cleared:
            if workflow_name not in names:
                raise _Fail(400, f"{workflow_name} does not exist")
        # Ids are taken only once the push is accepted, so refused pushes leave no gaps.
        if project.id == 0:
            project.id = self._next_id("project")
        revision.id = self._next_id("revision")
        self._projects[project.id] = project
        project.revisions.append(revision)
        for workflow in revision.workflows:
            workflow.id = self._next_id("workflow")
            self._workflows[workflow.id] = workflow
        revision.storage_key = self.storage.put(data)
        self._update_schedules(
            project,
            revision,
            start=schedule_from,
            now=now,
            cleared=set(names) if _bool_query(request, "clear_schedule_all") else set(cleared),
            skip=_bool_query(request, "skip_schedule"),
        )
        return _json(_project_json(project))

    async def _read_upload(self, request: web.Request) -> bytes:
        """The archive body, checked against Content-Length and the size limit (reference §2.1)."""
        length = request.content_length
        if length is None:
            raise _Fail(400, "Content-Length header is required")
        if length > self._max_archive:
            raise _Fail(
                400, f"Size of the uploaded archive file exceeds limit ({self._max_archive} bytes)"
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(65536):
            size += len(chunk)
            if size > length:
                break
            chunks.append(chunk)
        if size != length:
            raise _Fail(400, "Content-Length header doesn't match with uploaded data size")
        return b"".join(chunks)

    def _compile_workflows(self, project: _Project, revision: _Revision) -> list[_Workflow]:
        """Workflows are the top-level ``*.dig`` files only (reference §2.1)."""
        workflows: list[_Workflow] = []
        for path in sorted(revision.files):
            if "/" in path or not path.endswith(".dig") or len(path) <= 4:
                continue
            name = path[:-4]
            try:
                text = revision.files[path].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DigError(f"{path} is not UTF-8") from exc
            body = load_dig(text)
            tz_name = str(body.get("timezone") or "UTC")
            tz = zone(tz_name)
            schedule = ScheduleSpec.parse(body["schedule"], tz) if "schedule" in body else None
            config = {key: value for key, value in body.items() if key != "timezone"}
            workflows.append(
                _Workflow(
                    id=0,
                    name=name,
                    project=project,
                    revision=revision,
                    timezone=tz_name,
                    tz=tz,
                    config=config,
                    root=compile_workflow(name, body),
                    schedule=schedule,
                    schedule_source=_encoder.encode([tz_name, body.get("schedule")]),
                )
            )
        return workflows

    def _update_schedules(
        self,
        project: _Project,
        revision: _Revision,
        *,
        start: float,
        now: float,
        cleared: set[str],
        skip: bool,
    ) -> None:
        existing = {s.workflow.name: s for s in self._schedules.values() if s.project is project}
        for workflow in revision.workflows:
            old = existing.pop(workflow.name, None)
            if workflow.schedule is None:
                if old is not None:
                    del self._schedules[old.id]
                continue
            spec, source = workflow.schedule, workflow.schedule_source
            if old is not None and workflow.name not in cleared and old.source == source:
                old.workflow, old.updated_at = workflow, now
                continue
            # skip_schedule (TD): a changed definition starts at the current time.
            begin = now if skip and old is not None and not cleared else start
            first = spec.first_run_from(begin)
            if old is None:
                old = _Schedule(
                    id=self._next_id("schedule"),
                    project=project,
                    workflow=workflow,
                    spec=spec,
                    source=source,
                    next_session=first,
                    next_run=spec.run_time(first),
                    created_at=now,
                    updated_at=now,
                )
                self._schedules[old.id] = old
            old.workflow, old.spec, old.source, old.updated_at = workflow, spec, source, now
            old.next_session, old.next_run = first, spec.run_time(first)
        for gone in existing.values():
            del self._schedules[gone.id]

    async def _project_archive(self, request: web.Request) -> web.StreamResponse:
        project = self._project(_path_id(request))
        revision = self._revision(project, request.query.get("revision"))
        if self._archive_redirect and _bool_query(request, "direct_download", True):
            # TD answers 303 to a pre-signed S3 URL that takes no Authorization (reference §2.1).
            location = self.storage.url(request, revision.storage_key)
            if location is not None:
                raise web.HTTPSeeOther(location)
        return web.Response(body=revision.archive, content_type="application/gzip")

    def _revision(self, project: _Project, name: str | None) -> _Revision:
        if not name:
            return project.latest
        for revision in project.revisions:
            if revision.name == name:
                return revision
        raise _Fail(404, f"Resource does not exist: revision={name} in project id={project.id}")

    async def _project_revisions(self, request: web.Request) -> web.Response:
        project = self._project(_path_id(request))
        name = request.query.get("name")
        revisions = [r for r in reversed(project.revisions) if name is None or r.name == name]
        return _json({"revisions": [_revision_json(r) for r in revisions[:100]]})

    async def _project_workflows(self, request: web.Request) -> web.Response:
        project = self._project(_path_id(request))
        revision = self._revision(project, request.query.get("revision"))
        name = request.query.get("name")
        workflows = [w for w in revision.workflows if name is None or w.name == name]
        return _json({"workflows": [_workflow_json(w) for w in workflows]})

    def _named_workflow(self, request: web.Request, name: str) -> _Workflow:
        project = self._project(_path_id(request))
        revision = self._revision(project, request.query.get("revision"))
        for workflow in revision.workflows:
            if workflow.name == name:
                return workflow
        raise _Fail(404, f"Resource does not exist: workflow name={name}")

    async def _project_workflow(self, request: web.Request) -> web.Response:
        return _json(_workflow_json(self._named_workflow(request, request.match_info["name"])))

    async def _project_workflow_query(self, request: web.Request) -> web.Response:
        return _json(_workflow_json(self._named_workflow(request, request.query.get("name", ""))))

    async def _project_schedules(self, request: web.Request) -> web.Response:
        project = self._project(_path_id(request))
        name = request.query.get("workflow")
        last_id = _int_query(request, "last_id", 0) or 0
        items = (
            s
            for s in self._schedules.values()
            if s.project is project and s.id > last_id and (name is None or s.workflow.name == name)
        )
        return _json({"schedules": [_schedule_json(s) for s in _page(items, 100)]})

    async def _project_sessions(self, request: web.Request) -> web.Response:
        project = self._project(_path_id(request))
        name = request.query.get("workflow")
        sessions = (
            s
            for s in reversed(self._sessions.values())
            if s.project is project and (name is None or s.workflow_name == name)
        )
        return self._sessions_page(request, sessions)

    async def _secrets_list(self, request: web.Request) -> web.Response:
        project = self._project(_path_id(request))
        return _json({"secrets": [{"key": key} for key in sorted(project.secrets)]})

    async def _secret_put(self, request: web.Request) -> web.Response:
        project = self._project(_path_id(request))
        key = request.match_info["key"]
        body = await _json_body(request, required=False)
        value = body.get("value")
        if not validate_secret(key, value):
            raise _Fail(400, "Invalid secret")
        assert isinstance(value, str)
        project.secrets[key] = value
        return _json({"key": key, "project": project.ref()})

    async def _secret_delete(self, request: web.Request) -> web.Response:
        project = self._project(_path_id(request))
        key = request.match_info["key"]
        # Deleting a key that does not exist is not an error (reference §2.1).
        project.secrets.pop(key, None)
        return _json({"key": key, "project": project.ref()})

    # --- workflows (reference §2.2) -----------------------------------------------------------

    def _workflow(self, workflow_id: int) -> _Workflow:
        workflow = self._workflows.get(workflow_id)
        if workflow is None:
            _missing("workflow", workflow_id)
        return workflow

    async def _workflows_list(self, request: web.Request) -> web.Response:
        order = request.query.get("order", "asc")
        if order not in ("asc", "desc"):
            raise _Fail(400, "parameter 'order' must be either 'asc' or 'desc'")
        last_id = _int_query(request, "last_id")
        count = _int_query(request, "count", 100) or 100
        pattern = request.query.get("name_pattern", "").lower()
        with_project = _bool_query(request, "search_project_name")
        latest = [w for p in self._live_projects() for w in p.latest.workflows]
        latest.sort(key=lambda w: w.id, reverse=order == "desc")
        items = (
            w
            for w in latest
            if (last_id is None or (w.id > last_id if order == "asc" else w.id < last_id))
            and (pattern in w.name.lower() or (with_project and pattern in w.project.name.lower()))
        )
        return _json({"workflows": [_workflow_json(w) for w in _page(items, count)]})

    async def _workflow_get(self, request: web.Request) -> web.Response:
        return _json(_workflow_json(self._workflow(_path_id(request))))

    async def _truncated_session_time(self, request: web.Request) -> web.Response:
        workflow = self._workflow(_path_id(request))
        raw = request.query.get("session_time")
        if not raw:
            raise _Fail(400, "session_time= is required")
        mode = request.query.get("mode")
        if mode not in (None, "hour", "day", "schedule", "next_schedule"):
            raise web.HTTPNotFound()  # an enum that does not convert (reference §2.2)
        try:
            instant = parse_instant(raw, local_tz=workflow.tz)
        except ValueError:
            raise web.HTTPNotFound() from None
        local = datetime.fromtimestamp(instant, tz=workflow.tz)
        if mode == "hour":
            instant = local.replace(minute=0, second=0, microsecond=0).timestamp()
        elif mode == "day":
            instant = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        elif mode in ("schedule", "next_schedule"):
            if workflow.schedule is None:
                raise _Fail(400, f"Workflow {workflow.name} does not have schedule")
            floor = workflow.schedule.floor(instant)
            instant = (
                floor
                if mode == "schedule" or floor == instant
                else (workflow.schedule.next_after(instant))
            )
        return _json(
            {
                "project": workflow.project.ref(),
                "revision": workflow.revision.name,
                "sessionTime": format_offset(instant, workflow.tz),
                "timezone": workflow.timezone,
            }
        )

    # --- sessions (reference §2.3) ------------------------------------------------------------

    def _page_size(self, request: web.Request) -> int:
        size = _int_query(request, "page_size", self._max_page)
        assert size is not None
        if size > self._max_page:
            # The message really includes Optional.of(...) (reference §2.9).
            raise _Fail(
                400,
                f"Your specified page_size is Optional.of({size}), but it is larger than "
                f"MAX_PAGE_SIZE: {self._max_page}. You must specify page_size with a number "
                f"which is smaller than {self._max_page}.",
            )
        return size

    def _sessions_page(self, request: web.Request, sessions: Iterable[_Session]) -> web.Response:
        size = self._page_size(request)
        last_id = _int_query(request, "last_id")
        items = _page((s for s in sessions if last_id is None or s.id < last_id), size)
        now = self._clock()
        for session in items:
            self._advance(session.attempts[-1], now)
        return _json({"sessions": [_session_json(s) for s in items]})

    async def _sessions_list(self, request: web.Request) -> web.Response:
        return self._sessions_page(request, reversed(self._sessions.values()))

    def _session(self, session_id: int) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            _missing("session", session_id)
        return session

    async def _session_get(self, request: web.Request) -> web.Response:
        session = self._session(_path_id(request))
        self._advance(session.attempts[-1], self._clock())
        return _json(_session_json(session))

    async def _session_attempts(self, request: web.Request) -> web.Response:
        session = self._session(_path_id(request))
        return self._attempts_page(request, reversed(session.attempts))

    # --- attempts (reference §2.4) ------------------------------------------------------------

    def _attempt(self, attempt_id: int) -> _Attempt:
        attempt = self._attempts.get(attempt_id)
        if attempt is None:
            _missing("session attempt", attempt_id)
        self._advance(attempt, self._clock())
        return attempt

    def _attempts_page(self, request: web.Request, attempts: Iterable[_Attempt]) -> web.Response:
        size = self._page_size(request)
        last_id = _int_query(request, "last_id")
        items = _page((a for a in attempts if last_id is None or a.id < last_id), size)
        now = self._clock()
        for attempt in items:
            self._advance(attempt, now)
        return _json({"attempts": [_attempt_json(a) for a in items]})

    async def _attempts_list(self, request: web.Request) -> web.Response:
        project_name = request.query.get("project")
        workflow_name = request.query.get("workflow")
        project: _Project | None = None
        if project_name is not None:
            project = self._project_named(project_name)
            if project is None:
                raise _Fail(404, f"Resource does not exist: project name={project_name}")
        include_retried = _bool_query(request, "include_retried")
        attempts = (
            a
            for a in reversed(self._attempts.values())
            if (project is None or a.session.project is project)
            and (
                project is None or workflow_name is None or a.session.workflow_name == workflow_name
            )
            and (include_retried or a is a.session.attempts[-1])
        )
        return self._attempts_page(request, attempts)

    async def _attempt_get(self, request: web.Request) -> web.Response:
        return _json(_attempt_json(self._attempt(_path_id(request))))

    async def _attempt_tasks(self, request: web.Request) -> web.Response:
        attempt = self._attempt(_path_id(request))
        tasks = sorted(attempt.tasks, key=lambda t: t.id)
        return _json({"tasks": [_task_json(t) for t in tasks]})

    async def _attempt_retries(self, request: web.Request) -> web.Response:
        attempt = self._attempt(_path_id(request))
        now = self._clock()
        for other in attempt.session.attempts:
            self._advance(other, now)
        return _json({"attempts": [_attempt_json(a) for a in attempt.session.attempts]})

    async def _attempt_kill(self, request: web.Request) -> web.Response:
        attempt = self._attempt(_path_id(request))
        if attempt.done or attempt.cancel_requested:
            raise _Fail(409, "Session attempt already killed or finished")
        # The answer is read before the flag is set, as digdag does (reference §2.4).
        body = _attempt_json(attempt)
        now = self._clock()
        attempt.cancel_requested = True
        if attempt.wait_state is not None:
            # Never started: it leaves the pool's line and ends at once, nothing to cancel.
            del self._waiting[attempt.id]
            attempt.wait_state = None
            for task in attempt.tasks:
                if task.state not in _DONE:  # tasks a resume kept as succeeded stay so
                    self._set(task, "canceled", now)
            self._finish(attempt, now)
            return _json(body)
        attempt.cancel_at = now + self._kill_delay
        for task in attempt.tasks:
            if task.state not in _DONE:
                task.cancel_requested = True
            if task.state == "running" and task.job_id is not None:
                # A canceled td> task kills its job (digdag BaseTdJobOperator.cleanup).
                with contextlib.suppress(Exception):
                    self._jobs.kill(task.job_id)
        return _json(body)

    async def _attempt_put(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        workflow = self._request_workflow(body)
        missing = [key for key in ("sessionTime", "params") if key not in body]
        if missing:
            raise _Fail(
                400,
                "Cannot build RestSessionAttemptRequest, some of required attributes are not set "
                f"[{', '.join(missing)}]",
            )
        try:
            session_time = parse_instant(str(body["sessionTime"]))
        except ValueError as exc:
            raise _Fail(400, str(exc)) from None
        params = body["params"]
        if not isinstance(params, dict):
            raise _Fail(400, "params must be an object")
        retry_name = body.get("retryAttemptName")
        if retry_name is not None and (not isinstance(retry_name, str) or len(retry_name) > 255):
            raise _Fail(400, "retryAttemptName must be a string of at most 255 characters")
        pool_id = body.get("poolId")
        attempt = self._start(
            workflow,
            session_time,
            retry_name=retry_name,
            params=params,
            resume=body.get("resume"),
            pool_id=None if pool_id is None else str(pool_id),
            queueing=body.get("allowQueueing") is True,
        )
        return _json(_attempt_json(attempt))

    def _request_workflow(self, body: Mapping[str, Any]) -> _Workflow:
        """``workflowId``, or TD's ``projectName`` + ``workflowName`` (latest revision)."""
        if body.get("workflowId") is not None:
            try:
                return self._workflow(int(body["workflowId"]))
            except (TypeError, ValueError):
                raise _Fail(400, "workflowId must be a number") from None
        project_name, workflow_name = body.get("projectName"), body.get("workflowName")
        if project_name is None or workflow_name is None:
            raise _Fail(
                400,
                "Cannot build RestSessionAttemptRequest, some of required attributes are not set "
                "[workflowId]",
            )
        project = self._project_named(str(project_name))
        if project is None:
            raise _Fail(404, f"Resource does not exist: project name={project_name}")
        for workflow in project.latest.workflows:
            if workflow.name == workflow_name:
                return workflow
        raise _Fail(404, f"Resource does not exist: workflow name={workflow_name}")

    def _start(
        self,
        workflow: _Workflow,
        session_time: float,
        *,
        retry_name: str | None,
        params: dict[str, Any],
        resume: Any = None,
        pool_id: str | None = None,
        queueing: bool = False,
    ) -> _Attempt:
        """A new attempt, of a new session or of the existing one; 409 carries the existing one.

        With the pool full it waits for a place when ``queueing`` (TD's ``allowQueueing``,
        always on for schedules and backfills); otherwise the start is refused with digdag's
        attempt-limit error (WorkflowExecutor: AttemptLimitExceededException, mapped to 400)."""
        now = self._clock()
        key = (workflow.project.id, workflow.name, session_time)
        session = self._session_index.get(key)
        if session is not None:
            last = self._attempt(session.attempts[-1].id)
            same = next((a for a in session.attempts if a.retry_name == retry_name), None)
            # The 409 body is the conflicting attempt, not {message,status} (reference §4).
            if same is not None and retry_name is not None:
                raise _Fail(409, "session conflict", body=_attempt_json(same))
            if retry_name is None or not last.done:
                raise _Fail(409, "session conflict", body=_attempt_json(last))
        resumed = self._resumed_tasks(session, resume)
        self._refresh_pool(now)
        waits = self._pool_full()
        if waits and not queueing:
            raise _Fail(
                400,
                f"Too many attempts running. Limit: {self._max_running}, "
                f"Current: {len(self._active)}",
            )
        if session is None:
            session = _Session(
                id=self._next_id("session"),
                project=workflow.project,
                workflow_name=workflow.name,
                time=session_time,
                uuid=str(uuid.uuid4()),
            )
        attempt = _Attempt(
            id=self._next_id("attempt"),
            index=len(session.attempts) + 1,
            session=session,
            workflow=workflow,
            retry_name=retry_name,
            params=params,
            created_at=now,
            clock=now,
            pool_id=pool_id,
        )
        root = self._instantiate(attempt, workflow.root, None, now)
        if not waits:
            root.state, root.due = "ready", now + self._dispatch_delay
        for task in attempt.tasks:
            old = resumed.get(task.spec.full_name)
            if old is not None:
                task.state, task.resumed = "success", True
                task.started_at, task.store_params = old.started_at, old.store_params
        if session.id not in self._sessions:
            self._sessions[session.id] = session
            self._session_index[key] = session
        session.attempts.append(attempt)
        self._attempts[attempt.id] = attempt
        if waits:
            self._waiting[attempt.id] = attempt
            self._label_waiting()
            return attempt
        self._active[attempt.id] = attempt
        self._advance(attempt, now)
        return attempt

    # --- the pool: TD's concurrency limit and its line of waiting attempts ----------------------

    def _refresh_pool(self, now: float) -> None:
        """Bring the running attempts up to ``now``, so the places they free are taken."""
        if self._max_running is not None:
            for attempt in list(self._active.values()):
                self._advance(attempt, now)

    def _pool_full(self) -> bool:
        """Whether a new attempt has to wait: no free place, or others waiting before it."""
        limit = self._max_running
        return limit is not None and (bool(self._waiting) or len(self._active) >= limit)

    def _admit(self, now: float) -> None:
        """Start waiting attempts, oldest first, while the pool has room."""
        limit = self._max_running
        while self._waiting and (limit is None or len(self._active) < limit):
            attempt = self._waiting.pop(next(iter(self._waiting)))
            attempt.wait_state = None
            attempt.clock = max(attempt.clock, now)
            root = attempt.tasks[0]
            root.due = attempt.clock + self._dispatch_delay
            self._set(root, "ready", attempt.clock)
            self._active[attempt.id] = attempt
        self._label_waiting()

    def _label_waiting(self) -> None:
        """TD shows a waiting attempt as ``queued`` or ``blocked``; the record names both as
        not started yet, not what tells them apart. Here the first waiting attempt of a
        workflow is ``queued``, those behind it in the line are ``blocked``."""
        ahead: set[tuple[int, str]] = set()
        for attempt in self._waiting.values():
            key = (attempt.session.project.id, attempt.session.workflow_name)
            attempt.wait_state = "blocked" if key in ahead else "queued"
            ahead.add(key)

    def _resumed_tasks(self, session: _Session | None, resume: Any) -> dict[str, _Task]:
        """Tasks of an earlier attempt that a resume keeps as succeeded, by full name."""
        if resume is None:
            return {}
        if not isinstance(resume, Mapping) or resume.get("mode") not in ("failed", "from"):
            raise _Fail(400, "resume.mode must be 'failed' or 'from'")
        try:
            old = self._attempts[int(str(resume.get("attemptId")))]
        except (KeyError, TypeError, ValueError):
            raise _Fail(400, f"Unknown attempt to resume: {resume.get('attemptId')}") from None
        if session is None or old.session is not session:
            raise _Fail(400, "Resuming an attempt of another session is not supported")
        if resume["mode"] == "failed":
            if old.success:
                raise _Fail(400, "Resuming successfully completed attempts is not supported")
            return {t.spec.full_name: t for t in old.tasks if t.state == "success"}
        start = str(resume.get("from", ""))
        static = [t for t in old.tasks if "^" not in t.spec.full_name]
        matches = [t for t in static if t.spec.full_name == start]
        if not matches:
            matches = [t for t in static if t.spec.full_name.endswith(start)]
        if not matches:
            raise _Fail(400, f"No tasks match with name '{start}'")
        if len(matches) > 1:
            raise _Fail(400, f"Multiple tasks match with name '{start}'")
        target = matches[0]
        if target.parent is None:
            raise _Fail(400, "Resuming root task is not allowed")
        ancestors: set[int] = set()
        walker: _Task | None = target.parent
        while walker is not None:
            ancestors.add(walker.id)
            walker = walker.parent
        # Everything before the `from` task, its ancestors aside, counts as done.
        return {t.spec.full_name: t for t in static if t.id < target.id and t.id not in ancestors}

    def _instantiate(
        self, attempt: _Attempt, spec: TaskSpec, parent: _Task | None, now: float
    ) -> _Task:
        task = _Task(id=self._next_id("task"), spec=spec, parent=parent, updated_at=now)
        attempt.tasks.append(task)
        previous: _Task | None = None
        for child_spec in spec.children:
            child = self._instantiate(attempt, child_spec, task, now)
            if previous is not None and not spec.parallel:
                child.upstreams.append(previous)
            task.children.append(child)
            previous = child
        return task

    # --- attempt execution (reference §3.2) ---------------------------------------------------

    def _advance(self, attempt: _Attempt, now: float) -> None:
        """Run the attempt's virtual clock up to ``now``: timed events in order, then jobs."""
        if attempt.wait_state is not None:
            self._refresh_pool(now)
            if attempt.wait_state is not None:
                return
        while not attempt.done:
            while self._step(attempt, attempt.clock):
                pass
            if attempt.done:
                break
            upcoming = self._next_event(attempt)
            if upcoming is not None and upcoming <= now:
                attempt.clock = max(attempt.clock, upcoming)
                continue
            attempt.clock = max(attempt.clock, now)
            if not self._poll_jobs(attempt, attempt.clock):
                break
        if attempt.done:
            self._active.pop(attempt.id, None)

    def _next_event(self, attempt: _Attempt) -> float | None:
        if attempt.cancel_at is not None:
            # A kill freezes the attempt until it takes effect: nothing else is due.
            return attempt.cancel_at
        times = [
            t.due if t.state in ("ready", "running") else t.retry_at
            for t in attempt.tasks
            if t.state in ("ready", "running", "retry_waiting", "group_retry_waiting")
        ]
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def _set(self, task: _Task, state: str, now: float) -> None:
        task.state, task.updated_at = state, now

    def _step(self, attempt: _Attempt, now: float) -> bool:
        """Apply every transition due at ``now``; whether anything changed."""
        if attempt.done:
            return False
        if attempt.cancel_at is not None and attempt.cancel_at <= now:
            for task in attempt.tasks:
                if task.state not in _DONE:
                    self._set(task, "canceled", now)
            self._finish(attempt, now)
            return True
        if attempt.cancel_requested:
            return False
        changed = False
        for task in list(attempt.tasks):
            state = task.state
            if state == "blocked":
                changed |= self._unblock(task, now)
            elif state == "ready" and task.due is not None and task.due <= now:
                if task.spec.is_group:
                    self._set(task, "planned", now)
                else:
                    self._run(attempt, task, now)
                changed = True
            elif state == "running" and task.job_id is None and task.due is not None:
                if task.due <= now:
                    self._complete(attempt, task, now)
                    changed = True
            elif state == "retry_waiting" and task.retry_at is not None and task.retry_at <= now:
                task.retry_at, task.due = None, now
                self._set(task, "ready", now)
                changed = True
            elif state == "group_retry_waiting" and task.retry_at is not None:
                if task.retry_at <= now:
                    self._restart_group(attempt, task, now)
                    changed = True
            elif state == "planned":
                changed |= self._settle_group(attempt, task, now)
        root = attempt.tasks[0]
        if root.state in _DONE:
            self._finish(attempt, now)
            return True
        return changed

    def _unblock(self, task: _Task, now: float) -> bool:
        if task.parent is not None and task.parent.state != "planned":
            return False
        if any(upstream.state in _FAILED for upstream in task.upstreams):
            # A task whose upstream failed never runs; digdag cancels it.
            self._set(task, "canceled", now)
            return True
        if all(upstream.state == "success" for upstream in task.upstreams):
            task.due = now + self._dispatch_delay
            self._set(task, "ready", now)
            return True
        return False

    def _settle_group(self, attempt: _Attempt, task: _Task, now: float) -> bool:
        if any(child.state not in _DONE for child in task.children):
            return False
        if not task.error_added and all(child.state == "success" for child in task.children):
            self._set(task, "success", now)
        elif task.retries < task.spec.retry and not task.error_added:
            task.retries += 1
            task.retry_at = now + self._retry_interval
            self._set(task, "group_retry_waiting", now)
        elif task.spec.error is not None and not task.error_added:
            # `_error` tasks are added as a child `^error` when the group fails.
            task.error_added = True
            error_task = self._instantiate(attempt, task.spec.error, task, now)
            task.children.append(error_task)
        else:
            self._set(task, "group_error", now)
        return True

    def _restart_group(self, attempt: _Attempt, group: _Task, now: float) -> None:
        """``_retry`` of a group: its children start again from the beginning."""
        removed: set[int] = set()
        for child in list(group.children):
            if "^" in child.spec.full_name.removeprefix(group.spec.full_name):
                group.children.remove(child)
                removed.update(id(t) for t in _subtree(child))
        attempt.tasks = [t for t in attempt.tasks if id(t) not in removed]
        for child in group.children:
            for task in _subtree(child):
                task.state, task.updated_at, task.due, task.job_id = "blocked", now, None, None
                task.started_at, task.retry_at, task.error = None, None, {}
                task.store_params, task.state_params, task.error_added = {}, {}, False
                task.retries, task.cancel_requested = 0, False
        group.retry_at = None
        self._set(group, "planned", now)

    def _run(self, attempt: _Attempt, task: _Task, now: float) -> None:
        """Start an operator: ``td>``/``td_run>`` issue a job, the others run for a while."""
        task.started_at, task.due = now, None
        self._set(task, "running", now)
        operator = task.spec.operator
        if operator in ("td", "td_run"):
            try:
                database, query, engine = self._td_job(attempt, task)
                task.job_id = self._jobs.issue_job(database=database, query=query, engine=engine)
            except Exception as exc:  # an emulator job store refusing the job fails the task
                task.due = now
                task.state_params = {"failure": str(exc) or type(exc).__name__}
                return
            task.state_params = {"job": {"jobId": task.job_id, "domainKey": str(uuid.uuid4())}}
            task.store_params = {"td": {"last_job_id": task.job_id}}
            return
        duration = self._durations.get(operator or "", self._task_duration)
        task.due = now + duration

    def _td_job(self, attempt: _Attempt, task: _Task) -> tuple[str, str, str]:
        variables = self._variables(attempt, task)
        command = task.spec.command
        options: Mapping[str, Any] = command if isinstance(command, Mapping) else {}
        config = task.spec.config

        def option(name: str) -> Any:
            found = options.get(name, config.get(name))
            if found is None:
                td = variables.get("td")
                found = td.get(name) if isinstance(td, Mapping) else None
            return found if found is not None else variables.get(f"td.{name}")

        database = option("database")
        if not database:
            raise ValueError("Parameter 'database' is required but not set")
        if task.spec.operator == "td_run":
            query = f"-- td_run>: {command}\nSELECT 1"
        elif isinstance(command, str) and command:
            data = attempt.workflow.revision.files.get(command.removeprefix("./"))
            if data is None:
                raise ValueError(f"File not found: {command}")
            query = data.decode("utf-8")
        elif option("query"):
            query = str(option("query"))
        else:
            raise ValueError("td> needs a query file or query: parameter")
        return str(database), render(query, variables), str(option("engine") or "presto")

    def _poll_jobs(self, attempt: _Attempt, now: float) -> bool:
        if attempt.cancel_requested:
            return False
        finished = False
        for task in attempt.tasks:
            if task.state != "running" or task.job_id is None:
                continue
            try:
                status = self._jobs.job_status(task.job_id)
            except Exception as exc:  # a job the store forgot fails its task
                status, task.state_params = "error", {"failure": str(exc)}
            if status in _JOB_DONE:
                task.state_params = {**task.state_params, "status": status}
                self._complete(attempt, task, now)
                finished = True
        return finished

    def _complete(self, attempt: _Attempt, task: _Task, now: float) -> None:
        """An operator finished: success, or error (retried while ``_retry`` allows)."""
        operator = task.spec.operator or ""
        failure: str | None = task.state_params.get("failure")
        lines: list[str] = []
        variables = self._variables(attempt, task)
        if operator == "fail":
            failure = render(str(task.spec.command), variables)
        elif operator == "echo":
            lines.append(render(str(task.spec.command), variables))
        elif task.job_id is not None:
            status = task.state_params.get("status", "success")
            lines.append(f"td-client version: emulator; started job id={task.job_id}")
            if status != "success":
                failure = failure or f"Query failed: job id={task.job_id} finished as {status}"
        elif failure is None:
            lines.append(f"{operator}>: {render(str(task.spec.command), variables)}")
        if failure is not None:
            lines.append(failure)
        self._write_log(attempt, task, operator, lines, error=failure is not None)
        task.due = None
        task.job_id = None
        if failure is None:
            self._set(task, "success", now)
        elif task.retries < task.spec.retry:
            task.retries += 1
            task.retry_at = now + self._retry_interval
            task.state_params, task.store_params = {"retry_count": task.retries}, {}
            self._set(task, "retry_waiting", now)
        else:
            task.error = {"message": failure}
            self._set(task, "error", now)

    def _finish(self, attempt: _Attempt, now: float) -> None:
        attempt.done = True
        attempt.success = attempt.tasks[0].state == "success"
        attempt.finished_at = now
        self._active.pop(attempt.id, None)
        self._admit(now)

    def _variables(self, attempt: _Attempt, task: _Task) -> dict[str, Any]:
        """What ``${...}`` sees: built-ins, params, ``_export`` of the ancestors, the task's own."""
        session = attempt.session
        tz = attempt.workflow.tz
        local = datetime.fromtimestamp(session.time, tz=tz)
        variables: dict[str, Any] = {
            "session_time": format_offset(session.time, tz),
            "session_date": local.strftime("%Y-%m-%d"),
            "session_date_compact": local.strftime("%Y%m%d"),
            "session_local_time": local.strftime("%Y-%m-%d %H:%M:%S"),
            "session_tz_offset": local.strftime("%z"),
            "session_unixtime": int(session.time),
            "session_id": session.id,
            "session_uuid": session.uuid,
            "attempt_id": attempt.id,
            "project_id": session.project.id,
            "project_name": session.project.name,
            "workflow_name": session.workflow_name,
            "timezone": attempt.workflow.timezone,
            "task_name": task.spec.full_name,
            "retry_attempt_name": attempt.retry_name or "",
        }
        variables.update(attempt.params)
        chain: list[_Task] = []
        walker: _Task | None = task
        while walker is not None:
            chain.append(walker)
            walker = walker.parent
        for node in reversed(chain):
            _merge(variables, node.spec.export)
        _merge(variables, {k: v for k, v in task.spec.config.items() if not k.endswith(">")})
        return variables

    def _write_log(
        self, attempt: _Attempt, task: _Task, operator: str, lines: list[str], *, error: bool
    ) -> None:
        """A ``.log.gz`` named as digdag names them (reference §2.6)."""
        started = task.started_at if task.started_at is not None else attempt.clock
        seconds = int(started)
        nanos = int((started - seconds) * 1e9)
        name = task.spec.full_name
        file_name = f"{name}@{seconds:08x}{nanos:08x}.{_AGENT_ID}.log.gz"
        stamp = datetime.fromtimestamp(started, tz=timezone.utc)
        prefix = f"{stamp:%Y-%m-%d %H:%M:%S}.{nanos // 1_000_000:03d} {stamp:%z}"
        context = f"({task.id:04d}@[0:{attempt.session.project.name}]{name})"
        text = [
            f"{prefix} [INFO] {context} io.digdag.core.agent.OperatorManager: "
            f"{operator}>: {_short(task.spec.command)}"
        ]
        level = "ERROR" if error else "INFO"
        text.extend(f"{prefix} [{level}] {context} {line}" for line in lines)
        data = gzip.compress(("\n".join(text) + "\n").encode("utf-8"))
        attempt.logs.append(_LogFile(name, file_name, data, started, self.storage.put(data)))

    # --- schedules (reference §2.5) -----------------------------------------------------------

    def _schedule(self, schedule_id: int) -> _Schedule:
        schedule = self._schedules.get(schedule_id)
        if schedule is None:
            _missing("schedule", schedule_id)
        return schedule

    async def _schedules_list(self, request: web.Request) -> web.Response:
        last_id = _int_query(request, "last_id", 0) or 0
        items = (s for s in self._schedules.values() if s.id > last_id)
        return _json({"schedules": [_schedule_json(s) for s in _page(items, 100)]})

    async def _schedule_get(self, request: web.Request) -> web.Response:
        return _json(_schedule_json(self._schedule(_path_id(request))))

    async def _schedule_disable(self, request: web.Request) -> web.Response:
        schedule = self._schedule(_path_id(request))
        now = self._clock()
        if schedule.disabled_at is None:
            schedule.disabled_at = now
        schedule.updated_at = now
        return _json(_schedule_json(schedule, summary=True))

    async def _schedule_enable(self, request: web.Request) -> web.Response:
        schedule = self._schedule(_path_id(request))
        body = await _json_body(request, required=False)
        now = self._clock()
        if body.get("skipSchedule"):
            target = now
            if body.get("nextTime"):
                target = self._parse_local(str(body["nextTime"]), schedule.spec.tz)
            first = schedule.spec.first_run_from(target)
            schedule.next_session, schedule.next_run = first, schedule.spec.run_time(first)
        schedule.disabled_at = None
        schedule.updated_at = now
        return _json(_schedule_json(schedule, summary=True))

    @staticmethod
    def _parse_local(text: str, tz: tzinfo) -> float:
        try:
            return parse_instant(text, local_tz=tz)
        except ValueError as exc:
            raise _Fail(400, str(exc)) from None

    async def _schedule_skip(self, request: web.Request) -> web.Response:
        schedule = self._schedule(_path_id(request))
        body = await _json_body(request)
        if "dryRun" not in body:
            raise _Fail(
                400,
                "Cannot build RestScheduleSkipRequest, some of required attributes are not set "
                "[dryRun]",
            )
        spec = schedule.spec
        if body.get("nextTime"):
            wanted = self._parse_local(str(body["nextTime"]), spec.tz)
            target = spec.floor(wanted)
            if target < wanted:
                target = spec.next_after(target)
        elif body.get("fromTime") and body.get("count") is not None:
            target = spec.floor(self._parse_local(str(body["fromTime"]), spec.tz))
            for _ in range(int(body["count"])):
                target = spec.next_after(target)
        else:
            raise _Fail(400, "nextTime or (fromTime and count) are required")
        if target <= schedule.next_session:
            raise _Fail(409, "Specified time to skip schedules is already past")
        run = spec.run_time(target)
        if body.get("nextRunTime"):
            run = self._parse_local(str(body["nextRunTime"]), spec.tz)
        if body.get("dryRun"):
            preview = dataclasses.replace(schedule, next_session=target, next_run=run)
            return _json(_schedule_json(preview, summary=True))
        schedule.next_session, schedule.next_run = target, run
        schedule.updated_at = self._clock()
        return _json(_schedule_json(schedule, summary=True))

    async def _schedule_backfill(self, request: web.Request) -> web.Response:
        schedule = self._schedule(_path_id(request))
        body = await _json_body(request)
        missing = [k for k in ("fromTime", "dryRun", "attemptName") if body.get(k) is None]
        if missing:
            raise _Fail(
                400,
                "Cannot build RestScheduleBackfillRequest, some of required attributes are not "
                f"set [{', '.join(missing)}]",
            )
        spec = schedule.spec
        start = self._parse_local(str(body["fromTime"]), spec.tz)
        times: list[float] = []
        current = spec.floor(start)
        if current < start:
            current = spec.next_after(current)
        while current < schedule.next_session:
            times.append(current)
            current = spec.next_after(current)
        count = body.get("count")
        if count is not None:
            if int(count) > len(times):
                raise _Fail(400, f"count {count} is larger than the number of sessions to run")
            times = times[: int(count)]
        name = str(body["attemptName"])
        workflow = schedule.workflow
        for session_time in times:
            session = self._session_index.get((workflow.project.id, workflow.name, session_time))
            if session is not None and any(a.retry_name == name for a in session.attempts):
                raise _Fail(
                    409,
                    f"Attempt of project id={workflow.project.id} workflow={workflow.name} "
                    f"instant={format_instant(session_time)} attempt name={name} already exists",
                )
        attempts: list[dict[str, Any]] = []
        for session_time in times:
            params = self._schedule_params(spec, session_time)
            if body.get("dryRun"):
                attempts.append(self._dry_attempt(workflow, session_time, name, params))
                continue
            attempt = self._start_or_get(workflow, session_time, name, params)
            attempts.append(_attempt_json(attempt))
        return _json(
            {
                "id": str(schedule.id),
                "project": schedule.project.ref(),
                "workflow": {"id": str(workflow.id), "name": workflow.name},
                "attempts": attempts,
            }
        )

    def _start_or_get(
        self, workflow: _Workflow, session_time: float, name: str, params: dict[str, Any]
    ) -> _Attempt:
        try:
            return self._start(
                workflow, session_time, retry_name=name, params=params, queueing=True
            )
        except _Fail as fail:
            if fail.status != 409:
                raise
            return self._session_index[(workflow.project.id, workflow.name, session_time)].attempts[
                -1
            ]

    def _dry_attempt(
        self, workflow: _Workflow, session_time: float, name: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """The dummy attempt of a dry-run backfill: ids ``"0"`` and index 0 (reference §2.5)."""
        return {
            "id": "0",
            "index": 0,
            "project": workflow.project.ref(),
            "workflow": {"name": workflow.name, "id": str(workflow.id)},
            "sessionId": "0",
            "sessionUuid": str(uuid.uuid4()),
            "sessionTime": format_offset(session_time, workflow.tz),
            "retryAttemptName": name,
            "done": False,
            "success": False,
            "cancelRequested": False,
            "params": params,
            "createdAt": format_instant(self._clock()),
            "finishedAt": None,
            "status": "running",
        }

    @staticmethod
    def _schedule_params(spec: ScheduleSpec, session_time: float) -> dict[str, Any]:
        previous = spec.floor(session_time - 1)
        return {
            "last_session_time": format_offset(previous, spec.tz),
            "next_session_time": format_offset(spec.next_after(session_time), spec.tz),
        }

    def _fire_schedules(self, now: float) -> None:
        """Start the sessions of enabled schedules whose run time has come."""
        for schedule in list(self._schedules.values()):
            if schedule.disabled_at is not None or schedule.next_run > now:
                continue
            session_time = schedule.next_session
            params = self._schedule_params(schedule.spec, session_time)
            if schedule.last_session is not None:
                params["last_executed_session_time"] = format_offset(
                    schedule.last_session, schedule.spec.tz
                )
            with contextlib.suppress(_Fail):
                self._start(
                    schedule.workflow, session_time, retry_name=None, params=params, queueing=True
                )
            schedule.last_session = session_time
            schedule.next_session = schedule.spec.next_after(session_time)
            schedule.next_run = schedule.spec.run_time(schedule.next_session)

    # --- logs (reference §2.6) ----------------------------------------------------------------

    async def _log_files(self, request: web.Request) -> web.Response:
        attempt = self._attempt(_path_id(request))
        prefix = request.query.get("task", "")
        direct = _bool_query(request, "direct_download", True)
        files = sorted(
            (f for f in attempt.logs if f.task_name.startswith(prefix)), key=lambda f: f.file_name
        )
        return _json(
            {
                "files": [
                    {
                        "fileName": f.file_name,
                        "fileSize": len(f.data),
                        "taskName": f.task_name,
                        "fileTime": format_instant(f.file_time),
                        "agentId": _AGENT_ID,
                        "direct": self.storage.url(request, f.storage_key) if direct else None,
                    }
                    for f in files
                ]
            }
        )

    async def _log_file(self, request: web.Request) -> web.Response:
        attempt = self._attempt(_path_id(request))
        name = request.match_info["file_name"]
        for log in attempt.logs:
            if log.file_name == name:
                return web.Response(body=log.data, content_type="application/gzip")
        raise _Fail(404, f"Log file {name} does not exist")


def _subtree(task: _Task) -> Iterable[_Task]:
    yield task
    for child in task.children:
        yield from _subtree(child)


def _merge(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged = dict(current)
            _merge(merged, value)
            target[key] = merged
        else:
            target[key] = value


def _short(command: Any) -> str:
    text = command if isinstance(command, str) else msgspec.json.encode(command).decode()
    return text if len(text) <= 200 else text[:197] + "..."
