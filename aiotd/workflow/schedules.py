"""``td.workflow.schedules``: list, enable, disable, skip and backfill workflow schedules."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiotd._http import segment
from aiotd._paging import Pager, cursor_pager
from aiotd._resource import WorkflowResource
from aiotd.models.workflow import (
    ScheduleAttemptCollection,
    WorkflowSchedule,
    WorkflowScheduleList,
    WorkflowScheduleSummary,
)
from aiotd.workflow._common import cursor_id, instant

__all__ = ["Schedules", "schedule_pager"]


def schedule_pager(
    resource: WorkflowResource, path: str, params: Mapping[str, Any], limit: int | None
) -> Pager[WorkflowSchedule]:
    """Schedules by ascending id; only an empty page ends the walk, because the server
    filters pages after the query and may answer short ones mid-way (reference §2.9)."""

    async def fetch(last_id: int | None) -> builtins.list[WorkflowSchedule]:
        query = {**params, "last_id": last_id}
        return (await resource._call("GET", path, WorkflowScheduleList, params=query)).schedules

    return cursor_pager(fetch, lambda s: cursor_id(s.id), order="asc", limit=limit)


def _local_or_instant(value: datetime | str) -> str:
    """``nextTime`` accepts a local time in the workflow's zone or ISO with an offset."""
    return value if isinstance(value, str) else value.isoformat(timespec="seconds")


class Schedules(WorkflowResource):
    """Schedules of every project: ``/api/schedules`` (reference §2.5)."""

    def _path(self, schedule_id: str | int, action: str = "") -> str:
        return f"/api/schedules/{segment(schedule_id)}" + (f"/{action}" if action else "")

    def list(self, *, limit: int | None = None) -> Pager[WorkflowSchedule]:
        """Every schedule by ascending id."""
        return schedule_pager(self, "/api/schedules", {}, limit)

    async def get(self, schedule_id: str | int) -> WorkflowSchedule:
        """One schedule, with its next run and session times."""
        return await self._call("GET", self._path(schedule_id), WorkflowSchedule)

    async def disable(self, schedule_id: str | int) -> WorkflowScheduleSummary:
        """Stop starting sessions (safe to repeat: a disabled schedule stays disabled)."""
        return await self._call(
            "POST",
            self._path(schedule_id, "disable"),
            WorkflowScheduleSummary,
            json={},
            idempotent=True,
        )

    async def enable(
        self,
        schedule_id: str | int,
        *,
        skip: bool = False,
        next_time: datetime | str | None = None,
    ) -> WorkflowScheduleSummary:
        """Start sessions again; with ``skip``, first skip to ``next_time`` (default now) so
        the sessions missed while disabled are not run."""
        body: dict[str, Any] = {}
        if skip:
            body["skipSchedule"] = True
            if next_time is not None:
                body["nextTime"] = _local_or_instant(next_time)
        elif next_time is not None:
            raise ValueError("next_time is only used with skip=True")
        return await self._call(
            "POST",
            self._path(schedule_id, "enable"),
            WorkflowScheduleSummary,
            json=body,
            idempotent=True,
        )

    async def skip(
        self,
        schedule_id: str | int,
        *,
        next_time: datetime | str | None = None,
        from_time: datetime | str | None = None,
        count: int | None = None,
        next_run_time: datetime | str | None = None,
        dry_run: bool = False,
    ) -> WorkflowScheduleSummary:
        """Move the schedule forward: to ``next_time``, or ``count`` times from ``from_time``.

        Not retried after it may have been applied: a second skip by count would skip further.
        A target not after the current next time is a Conflict (409).
        """
        body: dict[str, Any] = {"dryRun": dry_run}
        if next_time is not None:
            if from_time is not None or count is not None:
                raise ValueError("give next_time, or from_time with count, not both")
            body["nextTime"] = _local_or_instant(next_time)
        elif from_time is not None and count is not None:
            if count < 1:
                raise ValueError("count must be >= 1")
            body["fromTime"] = instant(from_time, "from_time")
            body["count"] = count
        else:
            raise ValueError("give next_time, or from_time with count")
        if next_run_time is not None:
            body["nextRunTime"] = instant(next_run_time, "next_run_time")
        return await self._call(
            "POST", self._path(schedule_id, "skip"), WorkflowScheduleSummary, json=body
        )

    async def backfill(
        self,
        schedule_id: str | int,
        *,
        from_time: datetime | str,
        attempt_name: str | None = None,
        count: int | None = None,
        dry_run: bool = False,
    ) -> ScheduleAttemptCollection:
        """Run the schedule's past session times from ``from_time`` up to its next time.

        ``attempt_name`` (a new UUID by default) names every attempt it starts; a name used
        before for one of those times is a Conflict (409). A dry run returns dummy attempts
        with id ``"0"``.
        """
        if count is not None and count < 1:
            raise ValueError("count must be >= 1")
        body: dict[str, Any] = {
            "fromTime": instant(from_time, "from_time"),
            "attemptName": attempt_name if attempt_name is not None else str(uuid.uuid4()),
            "dryRun": dry_run,
        }
        if count is not None:
            body["count"] = count
        return await self._call(
            "POST", self._path(schedule_id, "backfill"), ScheduleAttemptCollection, json=body
        )
