"""The Workflow (digdag) API of the emulator: projects, workflows, sessions, attempts, logs.

Everything lives in memory. Attempts run their ``.dig`` task tree on a virtual clock that is
advanced when an attempt is read and by one ticker for all attempts, so thousands of running
attempts cost no task each. Behaviour and shapes follow reference/workflow-api.md. The parts:
``_wf_state`` (stored objects and their JSON), ``_wf_projects``, ``_wf_attempts``,
``_wf_executor`` (the task runner and the pool), ``_wf_schedules``, ``_wf_logs`` and
``_wf_storage`` (the origin of pre-signed URLs).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from aiotd.testing._common import json_response
from aiotd.testing._wf_attempts import Attempts
from aiotd.testing._wf_executor import Executor, JobRunner, TimedJobs
from aiotd.testing._wf_http import Fail, Handler, plain_errors
from aiotd.testing._wf_logs import Logs
from aiotd.testing._wf_projects import Projects
from aiotd.testing._wf_schedules import Schedules
from aiotd.testing._wf_state import WorkflowState
from aiotd.testing._wf_storage import StorageOrigin

__all__ = ["JobRunner", "StorageOrigin", "WorkflowService"]

_ID = "{id:-?\\d+}"


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
        self._tick_interval = tick_interval
        self._run_schedules = run_schedules
        self._version = version
        self._state = WorkflowState(clock)
        self._active = self._state.active  # the running attempts, by id
        self.storage = StorageOrigin(clock, direct_url_expiry)
        self._executor = Executor(
            self._state,
            self.storage,
            jobs if jobs is not None else TimedJobs(clock, task_duration),
            task_duration=task_duration,
            operator_durations=operator_durations,
            dispatch_delay=dispatch_delay,
            retry_interval=retry_interval,
            max_running=max_running_attempts,
        )
        self._attempts = Attempts(
            self._state, self._executor, max_page=max_page_size, kill_delay=kill_delay
        )
        self._schedules = Schedules(self._state, self._attempts)
        self._projects = Projects(
            self._state,
            self._schedules,
            self.storage,
            max_archive=max_archive_size,
            archive_redirect=archive_redirect,
        )
        self._logs = Logs(self._attempts, self.storage)
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------------

    def _routes(self) -> list[tuple[str, str, Handler]]:
        projects, attempts, schedules = self._projects, self._attempts, self._schedules
        project = f"/api/projects/{_ID}"
        return [
            ("GET", "/api/version", self._version_get),
            ("GET", "/api/version/check", self._version_check),
            ("GET", "/api/projects", projects.projects_list),
            ("PUT", "/api/projects", projects.project_put),
            ("GET", "/api/project", projects.project_by_name),
            ("GET", project, projects.project_get),
            ("DELETE", project, projects.project_delete),
            ("GET", f"{project}/archive", projects.project_archive),
            ("GET", f"{project}/revisions", projects.project_revisions),
            ("GET", f"{project}/workflows", projects.project_workflows),
            ("GET", f"{project}/workflow", projects.project_workflow_query),
            ("GET", f"{project}/workflows/{{name}}", projects.project_workflow),
            ("GET", f"{project}/schedules", schedules.project_schedules),
            ("GET", f"{project}/sessions", attempts.project_sessions),
            ("GET", f"{project}/secrets", projects.secrets_list),
            ("PUT", f"{project}/secrets/{{key}}", projects.secret_put),
            ("DELETE", f"{project}/secrets/{{key}}", projects.secret_delete),
            ("GET", "/api/workflows", projects.workflows_list),
            ("GET", f"/api/workflows/{_ID}", projects.workflow_get),
            (
                "GET",
                f"/api/workflows/{_ID}/truncated_session_time",
                projects.truncated_session_time,
            ),
            ("GET", "/api/sessions", attempts.sessions_list),
            ("GET", f"/api/sessions/{_ID}", attempts.session_get),
            ("GET", f"/api/sessions/{_ID}/attempts", attempts.session_attempts),
            ("GET", "/api/attempts", attempts.attempts_list),
            ("PUT", "/api/attempts", attempts.attempt_put),
            ("GET", f"/api/attempts/{_ID}", attempts.attempt_get),
            ("GET", f"/api/attempts/{_ID}/tasks", attempts.attempt_tasks),
            ("GET", f"/api/attempts/{_ID}/retries", attempts.attempt_retries),
            ("POST", f"/api/attempts/{_ID}/kill", attempts.attempt_kill),
            ("GET", "/api/schedules", schedules.schedules_list),
            ("GET", f"/api/schedules/{_ID}", schedules.schedule_get),
            ("POST", f"/api/schedules/{_ID}/skip", schedules.skip),
            ("POST", f"/api/schedules/{_ID}/backfill", schedules.backfill),
            ("POST", f"/api/schedules/{_ID}/disable", schedules.disable),
            ("POST", f"/api/schedules/{_ID}/enable", schedules.enable),
            ("GET", f"/api/logs/{_ID}/files", self._logs.files),
            ("GET", f"/api/logs/{_ID}/files/{{file_name}}", self._logs.file),
        ]

    def add_routes(self, app: web.Application) -> None:
        """Register every ``/api/...`` route, and the middleware giving ``/api`` paths that
        match no route JAX-RS's plain 404 and 405 answers."""
        for method, path, handler in self._routes():
            wrapped = self._wrap(handler)
            app.router.add_route(method, path, wrapped)
            # JAX-RS resource methods accept an optional trailing slash (reference §1).
            app.router.add_route(method, path + "/", wrapped)
        app.middlewares.append(plain_errors)
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

    def _wrap(self, handler: Handler) -> Handler:
        async def route(request: web.Request) -> web.StreamResponse:
            self._ensure_ticker()
            try:
                return await handler(request)
            except Fail as fail:
                body = fail.body
                if body is None:
                    body = {"message": fail.message, "status": fail.status}
                return json_response(body, fail.status)

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
            self._schedules.fire(now)
        for attempt in list(self._active.values()):
            self._executor.advance(attempt, now)

    # --- version ------------------------------------------------------------------------------

    async def _version_get(self, request: web.Request) -> web.Response:
        return json_response({"version": self._version})

    async def _version_check(self, request: web.Request) -> web.Response:
        return json_response(
            {"serverVersion": self._version, "upgradeRecommended": False, "apiCompatible": True}
        )
