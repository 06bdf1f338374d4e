"""``td.workflow.attempts``: start exactly once, retry, kill, list, wait for attempts at scale."""

from __future__ import annotations

import builtins
import contextlib
import logging
import math
import uuid
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from contextlib import aclosing
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, overload

import anyio
import msgspec

from aiotd._http import decode_json, segment
from aiotd._paging import Pager
from aiotd._polling import Engine, Listing
from aiotd._resource import WorkflowResource
from aiotd._waiting import as_completed as _as_completed
from aiotd._waiting import wait_all as _wait_all
from aiotd.errors import Conflict, DecodeError, TDError
from aiotd.models.workflow import Attempt, AttemptList, Task, TaskList
from aiotd.workflow._common import cursor_id
from aiotd.workflow._common import session_time as _session_time
from aiotd.workflow._task_watch import TaskEvent, TaskWatch
from aiotd.workflow.sessions import attempt_pager

if TYPE_CHECKING:
    from aiotd._client import Client

__all__ = ["Attempts", "RetryMode", "TaskEvent"]

logger = logging.getLogger("aiotd")

#: What ``retry`` reruns: every task, the tasks that did not succeed, or from a named task.
RetryMode = Literal["all", "failed", "from"]
_RETRY_MODES: tuple[RetryMode, ...] = ("all", "failed", "from")

# Digdag's largest attempts page (api.max_attempts_page_size, reference §2.9).
_LIST_PAGE = 100


def _failed(tasks: Sequence[Task]) -> builtins.list[Task]:
    """The tasks whose errors explain a failure: those in error that are not groups, else
    the groups in error."""
    failed = [task for task in tasks if task.failed and not task.is_group]
    return failed or [task for task in tasks if task.failed]


class _AttemptKind:
    """How the poll engine learns about attempts (reference §2.4). A failed attempt's final
    record carries its failed tasks, read once (one request) for all of its waiters."""

    name = "attempt"

    def __init__(self, attempts: Attempts) -> None:
        self._attempts = attempts

    async def fetch(self, item_id: str) -> Attempt:
        return await self._attempts._with_failed_tasks(await self._attempts.get(item_id))

    async def fetch_final(self, item_id: str) -> Attempt:
        return await self.fetch(item_id)

    def status(self, record: Attempt) -> str:
        return record.status

    def finished(self, record: Attempt) -> bool:
        return record.done

    def needs_final(self, record: Attempt) -> bool:
        return False  # GET /api/attempts/{id} and the listing both give the full record

    def may_hide(self, status: str | None) -> bool:
        return False  # the listing holds every attempt, finished or not

    async def listing(self, watched: Sequence[str], page_budget: int) -> Listing[Attempt]:
        """Every attempt, retries included, newest first, down to the oldest watched one.

        Attempt ids grow, so the pages from the newest attempt down to the smallest watched
        id hold every watched attempt that still exists, finished or not.
        """
        if not watched or not all(i.isascii() and i.isdigit() for i in watched):
            # an id that is no number is polled on its own (and found missing): a cost above
            # the budget makes the engine poll per item
            return Listing({}, page_budget + 1, lambda _id: False)
        floor = min(int(i) for i in watched)
        records: dict[str, Attempt] = {}
        pages = 0
        last_id: int | None = None
        bottom: float | None = None
        while pages < page_budget:
            page = await self._attempts._page(last_id, include_retried=True)
            pages += 1
            if not page:
                # only an empty page proves the bottom: a server may cap pages below the
                # size asked (api.max_attempts_page_size is a setting of digdag's server)
                bottom = 0
                break
            for attempt in page:
                records[attempt.id] = attempt
            last_id = cursor_id(page[-1].id)
            if last_id < floor:
                bottom = last_id
                break
        if bottom is None:
            # cut short: a full walk costs more than the budget; only what it saw is covered
            pages = page_budget + 1
            bottom = math.inf if last_id is None else last_id
        lowest = bottom

        def covers(item_id: str) -> bool:
            return item_id.isascii() and item_id.isdigit() and int(item_id) >= lowest

        await self._add_failed_tasks(records, watched)
        return Listing(records, pages, covers)

    async def _add_failed_tasks(self, records: dict[str, Attempt], watched: Sequence[str]) -> None:
        """Give the failed watched attempts of a listing their failed tasks, a few requests at
        a time. One whose tasks cannot be read is left out: absent from a listing that covers
        it, it is then confirmed on its own, tasks included."""
        failed = [records[i] for i in watched if i in records and records[i].failed]
        pending = iter(failed)

        async def worker() -> None:
            for attempt in pending:
                try:
                    records[attempt.id] = await self._attempts._with_failed_tasks(attempt)
                except TDError as exc:
                    logger.debug("tasks of failed attempt %s not read: %s", attempt.id, exc)
                    del records[attempt.id]

        concurrency = self._attempts._poll_settings.concurrency
        async with anyio.create_task_group() as tg:
            for _ in range(min(concurrency, len(failed))):
                tg.start_soon(worker)


def _conflict_attempt(exc: Conflict) -> Attempt | None:
    """The attempt a 409 of ``PUT /api/attempts`` carries as its body (reference §4); None
    for any other 409 body, such as ``{"message", "status"}``."""
    try:
        return decode_json(exc.body.encode(), Attempt)
    except DecodeError:
        return None


class Attempts(WorkflowResource):
    """Attempts of workflow sessions: ``/api/attempts`` (reference §2.4)."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._task_watch = TaskWatch(client)

    # -- starting

    async def start(
        self,
        *,
        project: str,
        workflow: str,
        session_time: datetime | str | None = None,
        params: Mapping[str, Any] | None = None,
        retry_attempt_name: str | None = None,
        resume: Mapping[str, Any] | None = None,
        allow_queueing: bool | None = None,
    ) -> Attempt:
        """Start ``workflow`` of ``project`` (names) for ``session_time`` (default now).

        The workflow id is looked up by name, since every push changes it. Safe to retry:
        a session is one workflow and session time, so a second request (a retry after a lost
        answer, or a second call) gets 409 with the attempt already started, which is
        returned with ``existing=True`` (reference §2.4). A new ``retry_attempt_name`` starts
        a new attempt of a finished session.
        """
        if not project or not workflow:
            raise ValueError("project and workflow names must not be empty")
        project_id = (await self._client.workflow.projects.get_by_name(project)).id
        found = await self._client.workflow.projects.workflow(project_id, workflow)
        return await self._put(
            found.id,
            _session_time(session_time),
            params=params,
            retry_attempt_name=retry_attempt_name,
            resume=resume,
            allow_queueing=allow_queueing,
        )

    async def _put(
        self,
        workflow_id: str,
        session_time: str,
        *,
        params: Mapping[str, Any] | None,
        retry_attempt_name: str | None,
        resume: Mapping[str, Any] | None,
        allow_queueing: bool | None,
    ) -> Attempt:
        body: dict[str, Any] = {
            "workflowId": workflow_id,
            "sessionTime": session_time,
            # `params` is required: `{}` when there is nothing to pass (reference §3)
            "params": dict(params or {}),
        }
        if retry_attempt_name is not None:
            body["retryAttemptName"] = retry_attempt_name
        if resume is not None:
            body["resume"] = dict(resume)
        if allow_queueing is not None:
            body["allowQueueing"] = allow_queueing
        try:
            return await self._call("PUT", "/api/attempts", Attempt, json=body, idempotent=True)
        except Conflict as exc:
            existing = _conflict_attempt(exc)
            if existing is None:
                raise
            return msgspec.structs.replace(existing, existing=True)

    @overload
    async def retry(
        self,
        attempt_id: str | int,
        *,
        mode: Literal["all", "failed"],
        params: Mapping[str, Any] | None = None,
    ) -> Attempt: ...

    @overload
    async def retry(
        self,
        attempt_id: str | int,
        *,
        mode: Literal["from"],
        from_task: str,
        params: Mapping[str, Any] | None = None,
    ) -> Attempt: ...

    async def retry(
        self,
        attempt_id: str | int,
        *,
        mode: RetryMode,
        from_task: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Attempt:
        """Run an attempt's session again as a new attempt, as ``digdag retry`` does.

        ``mode`` is the choice of ``digdag retry --all | --resume | --resume-from``, with no
        default, as there: ``"all"`` reruns every task; ``"failed"`` reruns only the tasks
        that did not succeed (Digdag refuses it for an attempt that succeeded: BadRequest,
        "Resuming successfully completed attempts is not supported"); ``"from"`` reruns
        ``from_task`` (``+wf+step``) and what follows it, keeping what ran before.
        ``params`` override the old ones. The attempt's own workflow revision is kept when
        it has one (``--keep-revision``), else the latest is taken. A fresh attempt name
        makes the request safe to retry (reference §2.4 "Retry and resume recipe").
        """
        if mode not in _RETRY_MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, _RETRY_MODES))}")
        if mode == "from" and not from_task:
            raise ValueError("mode='from' needs the task to rerun from, as from_task='+wf+task'")
        if mode != "from" and from_task is not None:
            raise ValueError("from_task goes only with mode='from'")
        old = await self.get(attempt_id)
        # RestSessionAttemptRequest.Resume, polymorphic on "mode" (digdag-client)
        resume: dict[str, Any] | None = None
        if mode == "failed":
            resume = {"mode": "failed", "attemptId": old.id}
        elif mode == "from":
            resume = {"mode": "from", "attemptId": old.id, "from": from_task}
        workflow_id = old.workflow.id
        if workflow_id is None:
            projects = self._client.workflow.projects
            workflow_id = (await projects.workflow(old.project.id, old.workflow.name)).id
        return await self._put(
            workflow_id,
            old.session_time,
            params={**old.params, **(params or {})},
            retry_attempt_name=str(uuid.uuid4()),
            resume=resume,
            allow_queueing=None,
        )

    async def kill(self, attempt_id: str | int) -> Attempt:
        """Ask the attempt to stop and return it re-read (the kill answer is stale).

        Safe to repeat: an attempt already killed or finished (409) is simply returned.
        """
        path = f"/api/attempts/{segment(attempt_id)}/kill"
        # `{}` with a JSON type: the endpoint consumes application/json (reference §2.4)
        with contextlib.suppress(Conflict):
            await self._request("POST", path, json={}, idempotent=True)
        return await self.get(attempt_id)

    # -- reading

    async def get(self, attempt_id: str | int) -> Attempt:
        """One attempt; ``status``, ``done`` and ``success`` tell where it is."""
        path = f"/api/attempts/{segment(attempt_id)}"
        return await self._call("GET", path, Attempt)

    async def _page(self, last_id: int | None, *, include_retried: bool) -> builtins.list[Attempt]:
        params = {
            "include_retried": True if include_retried else None,
            "last_id": last_id,
            "page_size": _LIST_PAGE,
        }
        page = await self._call("GET", "/api/attempts", AttemptList, params=params)
        return page.attempts

    def list(
        self,
        *,
        project: str | None = None,
        workflow: str | None = None,
        include_retried: bool = False,
        page_size: int = 100,
        limit: int | None = None,
    ) -> Pager[Attempt]:
        """Attempts newest first; by default only the last attempt of each session.

        ``workflow`` filters only together with ``project`` (names); an unknown project is
        NotFound.
        """
        if workflow is not None and project is None:
            raise ValueError("workflow filters only together with project")
        params = {
            "project": project,
            "workflow": workflow,
            "include_retried": True if include_retried else None,
        }
        return attempt_pager(self, "/api/attempts", params, page_size, limit)

    async def tasks(self, attempt_id: str | int) -> builtins.list[Task]:
        """Every task of the attempt, root first."""
        path = f"/api/attempts/{segment(attempt_id)}/tasks"
        return (await self._call("GET", path, TaskList)).tasks

    async def failed_tasks(self, attempt_id: str | int) -> builtins.list[Task]:
        """The tasks in error that are not groups (their errors explain the failure), else
        the groups in error."""
        return _failed(await self.tasks(attempt_id))

    async def _with_failed_tasks(self, attempt: Attempt) -> Attempt:
        """A failed attempt with its ``failed_tasks`` filled (one request); others as given."""
        if not attempt.failed:
            return attempt
        return msgspec.structs.replace(attempt, failed_tasks=await self.failed_tasks(attempt.id))

    async def retries(self, attempt_id: str | int) -> builtins.list[Attempt]:
        """Every attempt of the same session, this one included, by index."""
        path = f"/api/attempts/{segment(attempt_id)}/retries"
        return (await self._call("GET", path, AttemptList)).attempts

    # -- waiting: a failed attempt the waiters return carries its ``failed_tasks``

    @property
    def engine(self) -> Engine[Attempt]:
        """The poll engine every attempt waiter of this client shares."""
        return self._engine(lambda attempts, settings: Engine(_AttemptKind(attempts), settings))

    async def wait(
        self,
        attempt_id: str | int,
        *,
        timeout: float | None = None,
        raise_on_failure: bool = False,
        kill_on_cancel: bool = False,
    ) -> Attempt:
        """Wait until the attempt is done and return it; a failed one with its
        ``failed_tasks``, so that ``raise_for_status()`` names them (``raise_on_failure``
        raises that ``AttemptFailed`` here)."""
        (attempt,) = await self.wait_all(
            [attempt_id],
            timeout=timeout,
            raise_on_failure=raise_on_failure,
            kill_on_cancel=kill_on_cancel,
        )
        return attempt

    async def wait_all(
        self,
        attempt_ids: Iterable[str | int],
        *,
        timeout: float | None = None,
        raise_on_failure: bool = False,
        kill_on_cancel: bool = False,
    ) -> builtins.list[Attempt]:
        """Wait for every attempt; results in the order of ``attempt_ids``.

        ``raise_on_failure`` raises ``AttemptFailed`` for the first one that failed; with
        ``kill_on_cancel`` the attempts still running are killed when this wait is cancelled.
        """
        on_cancel = self.kill if kill_on_cancel else None
        attempts: builtins.list[Attempt] = await _wait_all(
            self.engine, attempt_ids, timeout=timeout, on_cancel=on_cancel
        )
        if raise_on_failure:
            for attempt in attempts:
                attempt.raise_for_status()
        return attempts

    async def as_completed(
        self, attempt_ids: Iterable[str | int], *, timeout: float | None = None
    ) -> AsyncGenerator[Attempt, None]:
        """Each attempt as soon as it is done, in finishing order."""
        async with aclosing(_as_completed(self.engine, attempt_ids, timeout=timeout)) as done:
            async for attempt in done:
                yield attempt

    def watch(self, attempt_id: str | int) -> AsyncGenerator[TaskEvent, None]:
        """Every task's first sighting and state change, in order, until the attempt is done;
        the events of the final task list included.

        The attempt's tasks are polled once for every watcher of this client, at intervals
        that grow while nothing changes and reset on a change (the client's poll settings).
        """
        return self._task_watch.watch(attempt_id)
