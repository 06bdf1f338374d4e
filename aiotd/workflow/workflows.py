"""``td.workflow.workflows``: workflow definitions of the latest revisions, and session times."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Literal

from aiotd._http import segment
from aiotd._paging import Pager, cursor_pager
from aiotd._resource import WorkflowResource
from aiotd.models.workflow import SessionTime, WorkflowDefinition, WorkflowList
from aiotd.workflow._common import cursor_id
from aiotd.workflow._common import session_time as _session_time

__all__ = ["Workflows"]

_MODES = ("hour", "day", "schedule", "next_schedule")


class Workflows(WorkflowResource):
    """Workflow definitions: ``/api/workflows`` (reference §2.2)."""

    def list(
        self,
        *,
        name_pattern: str | None = None,
        search_project_name: bool = False,
        order: Literal["asc", "desc"] = "asc",
        page_size: int = 100,
        limit: int | None = None,
    ) -> Pager[WorkflowDefinition]:
        """Workflows of the latest revision of every project, by id in ``order``.

        ``name_pattern`` matches part of the name (or of the project name too, with
        ``search_project_name``).
        """
        if order not in ("asc", "desc"):
            raise ValueError("order must be 'asc' or 'desc'")
        if page_size < 1:
            raise ValueError("page_size must be >= 1")

        async def fetch(last_id: int | None) -> builtins.list[WorkflowDefinition]:
            params = {
                "last_id": last_id,
                "count": page_size,
                "order": order,
                "name_pattern": name_pattern,
                "search_project_name": True if search_project_name else None,
            }
            page = await self._call("GET", "/api/workflows", WorkflowList, params=params)
            return page.workflows

        return cursor_pager(
            fetch, lambda w: cursor_id(w.id), order=order, page_size=page_size, limit=limit
        )

    async def get(self, workflow_id: str | int) -> WorkflowDefinition:
        """One workflow definition, of any revision."""
        path = f"/api/workflows/{segment(workflow_id)}"
        return await self._call("GET", path, WorkflowDefinition)

    async def truncated_session_time(
        self,
        workflow_id: str | int,
        *,
        session_time: datetime | str,
        mode: Literal["hour", "day", "schedule", "next_schedule"] | None = None,
    ) -> SessionTime:
        """``session_time`` in the workflow's zone, truncated to the hour, the day, or its
        schedule (``schedule``: the last slot at or before it; ``next_schedule``: the next).

        A time without an offset is read as local time in the workflow's zone.
        """
        if mode is not None and mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}")
        text = session_time if isinstance(session_time, str) else _session_time(session_time)
        path = f"/api/workflows/{segment(workflow_id)}/truncated_session_time"
        params = {"session_time": text, "mode": mode}
        return await self._call("GET", path, SessionTime, params=params)
