"""Sessions and attempts of the emulator's Workflow API (reference §2.3, §2.4): listing,
starting (with resume, retries and TD's pool), and killing."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from aiotd.testing._common import json_response
from aiotd.testing._digdag import parse_instant
from aiotd.testing._wf_executor import Executor
from aiotd.testing._wf_http import Fail, bool_query, int_query, json_body, missing, page, path_id
from aiotd.testing._wf_state import (
    DONE,
    Attempt,
    Project,
    Session,
    Task,
    Workflow,
    WorkflowState,
    attempt_json,
    session_json,
    task_json,
)

__all__ = ["Attempts"]

_Item = TypeVar("_Item", Session, Attempt)


class Attempts:
    """The session and attempt routes; ``start`` also serves schedules and backfills.

    A read brings the attempts it shows up to now. ``kill_delay`` is the time from a kill
    request to ``done``; ``max_page`` the largest ``page_size`` a listing takes.
    """

    def __init__(
        self, state: WorkflowState, executor: Executor, *, max_page: int, kill_delay: float
    ) -> None:
        self._state = state
        self._executor = executor
        self._max_page = max_page
        self._kill_delay = kill_delay

    def _page_size(self, request: web.Request) -> int:
        size = int_query(request, "page_size", self._max_page)
        assert size is not None
        if size > self._max_page:
            # The message really includes Optional.of(...) (reference §2.9).
            raise Fail(
                400,
                f"Your specified page_size is Optional.of({size}), but it is larger than "
                f"MAX_PAGE_SIZE: {self._max_page}. You must specify page_size with a number "
                f"which is smaller than {self._max_page}.",
            )
        return size

    def _below_last_id(self, request: web.Request, items: Iterable[_Item]) -> list[_Item]:
        """One page of a newest-first listing: ids below ``last_id``, ``page_size`` of them."""
        size = self._page_size(request)
        last_id = int_query(request, "last_id")
        return page((i for i in items if last_id is None or i.id < last_id), size)

    def _sessions_page(self, request: web.Request, sessions: Iterable[Session]) -> web.Response:
        items = self._below_last_id(request, sessions)
        now = self._state.clock()
        for session in items:
            self._executor.advance(session.attempts[-1], now)
        return json_response({"sessions": [session_json(s) for s in items]})

    async def sessions_list(self, request: web.Request) -> web.Response:
        return self._sessions_page(request, reversed(self._state.sessions.values()))

    async def project_sessions(self, request: web.Request) -> web.Response:
        project = self._state.project(path_id(request))
        name = request.query.get("workflow")
        sessions = (
            s
            for s in reversed(self._state.sessions.values())
            if s.project is project and (name is None or s.workflow_name == name)
        )
        return self._sessions_page(request, sessions)

    async def session_get(self, request: web.Request) -> web.Response:
        session = self._state.session(path_id(request))
        self._executor.advance(session.attempts[-1], self._state.clock())
        return json_response(session_json(session))

    async def session_attempts(self, request: web.Request) -> web.Response:
        session = self._state.session(path_id(request))
        return self._attempts_page(request, reversed(session.attempts))

    def attempt(self, attempt_id: int) -> Attempt:
        """An attempt by id, brought up to now; 404 when unknown."""
        attempt = self._state.attempts.get(attempt_id)
        if attempt is None:
            missing("session attempt", attempt_id)
        self._executor.advance(attempt, self._state.clock())
        return attempt

    def _attempts_page(self, request: web.Request, attempts: Iterable[Attempt]) -> web.Response:
        items = self._below_last_id(request, attempts)
        now = self._state.clock()
        for attempt in items:
            self._executor.advance(attempt, now)
        return json_response({"attempts": [attempt_json(a) for a in items]})

    async def attempts_list(self, request: web.Request) -> web.Response:
        project_name = request.query.get("project")
        workflow_name = request.query.get("workflow")
        project: Project | None = None
        if project_name is not None:
            project = self._state.project_named(project_name)
            if project is None:
                raise Fail(404, f"Resource does not exist: project name={project_name}")
        include_retried = bool_query(request, "include_retried")
        attempts = (
            a
            for a in reversed(self._state.attempts.values())
            if (project is None or a.session.project is project)
            and (
                project is None or workflow_name is None or a.session.workflow_name == workflow_name
            )
            and (include_retried or a is a.session.attempts[-1])
        )
        return self._attempts_page(request, attempts)

    async def attempt_get(self, request: web.Request) -> web.Response:
        return json_response(attempt_json(self.attempt(path_id(request))))

    async def attempt_tasks(self, request: web.Request) -> web.Response:
        attempt = self.attempt(path_id(request))
        tasks = sorted(attempt.tasks, key=lambda t: t.id)
        return json_response({"tasks": [task_json(t) for t in tasks]})

    async def attempt_retries(self, request: web.Request) -> web.Response:
        attempt = self.attempt(path_id(request))
        now = self._state.clock()
        for other in attempt.session.attempts:
            self._executor.advance(other, now)
        return json_response({"attempts": [attempt_json(a) for a in attempt.session.attempts]})

    async def attempt_kill(self, request: web.Request) -> web.Response:
        attempt = self.attempt(path_id(request))
        if attempt.done or attempt.cancel_requested:
            raise Fail(409, "Session attempt already killed or finished")
        # The answer is read before the flag is set, as digdag does (reference §2.4).
        body = attempt_json(attempt)
        now = self._state.clock()
        attempt.cancel_requested = True
        if attempt.wait_state is not None:
            # Never started: it leaves the pool's line and ends at once, nothing to cancel.
            del self._state.waiting[attempt.id]
            attempt.wait_state = None
            for task in attempt.tasks:
                if task.state not in DONE:  # tasks a resume kept as succeeded stay so
                    self._executor.set_state(task, "canceled", now)
            self._executor.finish(attempt, now)
            return json_response(body)
        attempt.cancel_at = now + self._kill_delay
        for task in attempt.tasks:
            if task.state not in DONE:
                task.cancel_requested = True
            if task.state == "running" and task.job_id is not None:
                # A canceled td> task kills its job (digdag BaseTdJobOperator.cleanup).
                with contextlib.suppress(Exception):
                    self._executor.jobs.kill(task.job_id)
        return json_response(body)

    async def attempt_put(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        workflow = self._request_workflow(body)
        missing = [key for key in ("sessionTime", "params") if key not in body]
        if missing:
            raise Fail(
                400,
                "Cannot build RestSessionAttemptRequest, some of required attributes are not set "
                f"[{', '.join(missing)}]",
            )
        try:
            session_time = parse_instant(str(body["sessionTime"]))
        except ValueError as exc:
            raise Fail(400, str(exc)) from None
        params = body["params"]
        if not isinstance(params, dict):
            raise Fail(400, "params must be an object")
        retry_name = body.get("retryAttemptName")
        if retry_name is not None and (not isinstance(retry_name, str) or len(retry_name) > 255):
            raise Fail(400, "retryAttemptName must be a string of at most 255 characters")
        pool_id = body.get("poolId")
        attempt = self.start(
            workflow,
            session_time,
            retry_name=retry_name,
            params=params,
            resume=body.get("resume"),
            pool_id=None if pool_id is None else str(pool_id),
            queueing=body.get("allowQueueing") is True,
        )
        return json_response(attempt_json(attempt))

    def _request_workflow(self, body: Mapping[str, Any]) -> Workflow:
        """``workflowId``, or TD's ``projectName`` + ``workflowName`` (latest revision)."""
        if body.get("workflowId") is not None:
            try:
                return self._state.workflow(int(body["workflowId"]))
            except (TypeError, ValueError):
                raise Fail(400, "workflowId must be a number") from None
        project_name, workflow_name = body.get("projectName"), body.get("workflowName")
        if project_name is None or workflow_name is None:
            raise Fail(
                400,
                "Cannot build RestSessionAttemptRequest, some of required attributes are not set "
                "[workflowId]",
            )
        project = self._state.project_named(str(project_name))
        if project is None:
            raise Fail(404, f"Resource does not exist: project name={project_name}")
        for workflow in project.latest.workflows:
            if workflow.name == workflow_name:
                return workflow
        raise Fail(404, f"Resource does not exist: workflow name={workflow_name}")

    def start(
        self,
        workflow: Workflow,
        session_time: float,
        *,
        retry_name: str | None,
        params: dict[str, Any],
        resume: Any = None,
        pool_id: str | None = None,
        queueing: bool = False,
    ) -> Attempt:
        """A new attempt, of a new session or of the existing one; 409 carries the existing one.

        With the pool full it waits for a place when ``queueing`` (TD's ``allowQueueing``,
        always on for schedules and backfills); otherwise the start is refused with digdag's
        attempt-limit error (WorkflowExecutor: AttemptLimitExceededException, mapped to 400)."""
        now = self._state.clock()
        key = (workflow.project.id, workflow.name, session_time)
        session = self._state.session_index.get(key)
        if session is not None:
            self._refuse_conflict(session, retry_name)
        resumed = self._resumed_tasks(session, resume)
        waits = self._must_wait(now, queueing=queueing)
        if session is None:
            session = Session(
                id=self._state.next_id("session"),
                project=workflow.project,
                workflow_name=workflow.name,
                time=session_time,
                uuid=str(uuid.uuid4()),
            )
        attempt = Attempt(
            id=self._state.next_id("attempt"),
            index=len(session.attempts) + 1,
            session=session,
            workflow=workflow,
            retry_name=retry_name,
            params=params,
            created_at=now,
            clock=now,
            pool_id=pool_id,
        )
        root = self._executor.instantiate(attempt, workflow.root, None, now)
        if not waits:
            root.state, root.due = "ready", now + self._executor.dispatch_delay
        for task in attempt.tasks:
            old = resumed.get(task.spec.full_name)
            if old is not None:
                task.state, task.resumed = "success", True
                task.started_at, task.store_params = old.started_at, old.store_params
        self._enrol(attempt, key, waits=waits, now=now)
        return attempt

    def _refuse_conflict(self, session: Session, retry_name: str | None) -> None:
        """A start on an existing session needs a new retry name and its last attempt done;
        the 409 body is the conflicting attempt, not {message,status} (reference §4)."""
        last = self.attempt(session.attempts[-1].id)
        same = next((a for a in session.attempts if a.retry_name == retry_name), None)
        if same is not None and retry_name is not None:
            raise Fail(409, "session conflict", body=attempt_json(same))
        if retry_name is None or not last.done:
            raise Fail(409, "session conflict", body=attempt_json(last))

    def _must_wait(self, now: float, *, queueing: bool) -> bool:
        """Whether a new attempt waits for a place in the pool; 400 when it may not wait."""
        self._executor.refresh_pool(now)
        waits = self._executor.pool_full()
        if waits and not queueing:
            raise Fail(
                400,
                f"Too many attempts running. Limit: {self._executor.max_running}, "
                f"Current: {len(self._state.active)}",
            )
        return waits

    def _enrol(
        self, attempt: Attempt, key: tuple[int, str, float], *, waits: bool, now: float
    ) -> None:
        """Record a new attempt (and its session when new): in the pool's line, or running."""
        session = attempt.session
        if session.id not in self._state.sessions:
            self._state.sessions[session.id] = session
            self._state.session_index[key] = session
        session.attempts.append(attempt)
        self._state.attempts[attempt.id] = attempt
        if waits:
            self._state.waiting[attempt.id] = attempt
            self._executor.label_waiting()
            return
        self._state.active[attempt.id] = attempt
        self._executor.advance(attempt, now)

    def _resumed_tasks(self, session: Session | None, resume: Any) -> dict[str, Task]:
        """Tasks of an earlier attempt that a resume keeps as succeeded, by full name."""
        if resume is None:
            return {}
        if not isinstance(resume, Mapping) or resume.get("mode") not in ("failed", "from"):
            raise Fail(400, "resume.mode must be 'failed' or 'from'")
        try:
            old = self._state.attempts[int(str(resume.get("attemptId")))]
        except (KeyError, TypeError, ValueError):
            raise Fail(400, f"Unknown attempt to resume: {resume.get('attemptId')}") from None
        if session is None or old.session is not session:
            raise Fail(400, "Resuming an attempt of another session is not supported")
        if resume["mode"] == "failed":
            if old.success:
                raise Fail(400, "Resuming successfully completed attempts is not supported")
            return {t.spec.full_name: t for t in old.tasks if t.state == "success"}
        start = str(resume.get("from", ""))
        static = [t for t in old.tasks if "^" not in t.spec.full_name]
        matches = [t for t in static if t.spec.full_name == start]
        if not matches:
            matches = [t for t in static if t.spec.full_name.endswith(start)]
        if not matches:
            raise Fail(400, f"No tasks match with name '{start}'")
        if len(matches) > 1:
            raise Fail(400, f"Multiple tasks match with name '{start}'")
        target = matches[0]
        if target.parent is None:
            raise Fail(400, "Resuming root task is not allowed")
        ancestors: set[int] = set()
        walker: Task | None = target.parent
        while walker is not None:
            ancestors.add(walker.id)
            walker = walker.parent
        # Everything before the `from` task, its ancestors aside, counts as done.
        return {t.spec.full_name: t for t in static if t.id < target.id and t.id not in ancestors}
