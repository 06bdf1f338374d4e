"""Workflow schedules of the emulator (reference §2.5): kept in step with each push, fired
when their run time comes, skipped, backfilled, disabled and enabled."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from datetime import tzinfo
from typing import Any

from aiohttp import web

from aiotd.testing._common import json_response
from aiotd.testing._digdag import ScheduleSpec, format_instant, format_offset, parse_instant
from aiotd.testing._wf_attempts import Attempts
from aiotd.testing._wf_http import Fail, int_query, json_body, page, path_id
from aiotd.testing._wf_state import (
    Attempt,
    Project,
    Revision,
    Schedule,
    Workflow,
    WorkflowState,
    attempt_json,
    schedule_json,
)

__all__ = ["Schedules"]


class Schedules:
    """The schedule routes, and the schedules' life: ``update`` on each push, ``fire`` on
    each tick."""

    def __init__(self, state: WorkflowState, attempts: Attempts) -> None:
        self._state = state
        self._attempts = attempts

    def update(
        self,
        project: Project,
        revision: Revision,
        *,
        start: float,
        now: float,
        cleared: set[str],
        skip: bool,
    ) -> None:
        existing = {
            s.workflow.name: s for s in self._state.schedules.values() if s.project is project
        }
        for workflow in revision.workflows:
            old = existing.pop(workflow.name, None)
            if workflow.schedule is None:
                if old is not None:
                    del self._state.schedules[old.id]
                continue
            spec, source = workflow.schedule, workflow.schedule_source
            if old is not None and workflow.name not in cleared and old.source == source:
                old.workflow, old.updated_at = workflow, now
                continue
            # skip_schedule (TD): a changed definition starts at the current time.
            begin = now if skip and old is not None and not cleared else start
            first = spec.first_run_from(begin)
            if old is None:
                old = Schedule(
                    id=self._state.next_id("schedule"),
                    project=project,
                    workflow=workflow,
                    spec=spec,
                    source=source,
                    next_session=first,
                    next_run=spec.run_time(first),
                    created_at=now,
                    updated_at=now,
                )
                self._state.schedules[old.id] = old
            old.workflow, old.spec, old.source, old.updated_at = workflow, spec, source, now
            old.next_session, old.next_run = first, spec.run_time(first)
        for gone in existing.values():
            del self._state.schedules[gone.id]

    async def schedules_list(self, request: web.Request) -> web.Response:
        last_id = int_query(request, "last_id", 0) or 0
        items = (s for s in self._state.schedules.values() if s.id > last_id)
        return json_response({"schedules": [schedule_json(s) for s in page(items, 100)]})

    async def project_schedules(self, request: web.Request) -> web.Response:
        project = self._state.project(path_id(request))
        name = request.query.get("workflow")
        last_id = int_query(request, "last_id", 0) or 0
        items = (
            s
            for s in self._state.schedules.values()
            if s.project is project and s.id > last_id and (name is None or s.workflow.name == name)
        )
        return json_response({"schedules": [schedule_json(s) for s in page(items, 100)]})

    async def schedule_get(self, request: web.Request) -> web.Response:
        return json_response(schedule_json(self._state.schedule(path_id(request))))

    async def disable(self, request: web.Request) -> web.Response:
        schedule = self._state.schedule(path_id(request))
        now = self._state.clock()
        if schedule.disabled_at is None:
            schedule.disabled_at = now
        schedule.updated_at = now
        return json_response(schedule_json(schedule, summary=True))

    async def enable(self, request: web.Request) -> web.Response:
        schedule = self._state.schedule(path_id(request))
        body = await json_body(request, required=False)
        now = self._state.clock()
        if body.get("skipSchedule"):
            target = now
            if body.get("nextTime"):
                target = self._parse_local(str(body["nextTime"]), schedule.spec.tz)
            first = schedule.spec.first_run_from(target)
            schedule.next_session, schedule.next_run = first, schedule.spec.run_time(first)
        schedule.disabled_at = None
        schedule.updated_at = now
        return json_response(schedule_json(schedule, summary=True))

    @staticmethod
    def _parse_local(text: str, tz: tzinfo) -> float:
        try:
            return parse_instant(text, local_tz=tz)
        except ValueError as exc:
            raise Fail(400, str(exc)) from None

    async def skip(self, request: web.Request) -> web.Response:
        schedule = self._state.schedule(path_id(request))
        body = await json_body(request)
        if "dryRun" not in body:
            raise Fail(
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
            raise Fail(400, "nextTime or (fromTime and count) are required")
        if target <= schedule.next_session:
            raise Fail(409, "Specified time to skip schedules is already past")
        run = spec.run_time(target)
        if body.get("nextRunTime"):
            run = self._parse_local(str(body["nextRunTime"]), spec.tz)
        if body.get("dryRun"):
            preview = dataclasses.replace(schedule, next_session=target, next_run=run)
            return json_response(schedule_json(preview, summary=True))
        schedule.next_session, schedule.next_run = target, run
        schedule.updated_at = self._state.clock()
        return json_response(schedule_json(schedule, summary=True))

    async def backfill(self, request: web.Request) -> web.Response:
        schedule = self._state.schedule(path_id(request))
        body = await json_body(request)
        missing = [k for k in ("fromTime", "dryRun", "attemptName") if body.get(k) is None]
        if missing:
            raise Fail(
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
                raise Fail(400, f"count {count} is larger than the number of sessions to run")
            times = times[: int(count)]
        name = str(body["attemptName"])
        workflow = schedule.workflow
        for session_time in times:
            session = self._state.session_index.get(
                (workflow.project.id, workflow.name, session_time)
            )
            if session is not None and any(a.retry_name == name for a in session.attempts):
                raise Fail(
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
            attempts.append(attempt_json(attempt))
        return json_response(
            {
                "id": str(schedule.id),
                "project": schedule.project.ref(),
                "workflow": {"id": str(workflow.id), "name": workflow.name},
                "attempts": attempts,
            }
        )

    def _start_or_get(
        self, workflow: Workflow, session_time: float, name: str, params: dict[str, Any]
    ) -> Attempt:
        try:
            return self._attempts.start(
                workflow, session_time, retry_name=name, params=params, queueing=True
            )
        except Fail as fail:
            if fail.status != 409:
                raise
            return self._state.session_index[
                (workflow.project.id, workflow.name, session_time)
            ].attempts[-1]

    def _dry_attempt(
        self, workflow: Workflow, session_time: float, name: str, params: dict[str, Any]
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
            "createdAt": format_instant(self._state.clock()),
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

    def fire(self, now: float) -> None:
        """Start the sessions of enabled schedules whose run time has come."""
        for schedule in list(self._state.schedules.values()):
            if schedule.disabled_at is not None or schedule.next_run > now:
                continue
            session_time = schedule.next_session
            params = self._schedule_params(schedule.spec, session_time)
            if schedule.last_session is not None:
                params["last_executed_session_time"] = format_offset(
                    schedule.last_session, schedule.spec.tz
                )
            with contextlib.suppress(Fail):
                self._attempts.start(
                    schedule.workflow, session_time, retry_name=None, params=params, queueing=True
                )
            schedule.last_session = session_time
            schedule.next_session = schedule.spec.next_after(session_time)
            schedule.next_run = schedule.spec.run_time(schedule.next_session)
