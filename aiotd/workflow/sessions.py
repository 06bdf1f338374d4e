"""``td.workflow.sessions``: sessions (one per workflow and session time) and their attempts."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from aiotd._http import segment
from aiotd._paging import Pager, cursor_pager
from aiotd._resource import WorkflowResource
from aiotd.models.workflow import Attempt, AttemptList, Session, SessionList
from aiotd.workflow._common import cursor_id

__all__ = ["Sessions", "attempt_pager", "session_pager"]

#: The servers' default ``api.max_sessions_page_size`` / ``max_attempts_page_size`` (§2.9).
MAX_PAGE_SIZE = 100


def _check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        # a larger page_size is a 400 from digdag (reference §2.9)
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")


def session_pager(
    resource: WorkflowResource,
    path: str,
    params: Mapping[str, Any],
    page_size: int,
    limit: int | None,
) -> Pager[Session]:
    """Sessions newest first: ``last_id`` is exclusive and descending (reference §2.9)."""
    _check_page_size(page_size)

    async def fetch(last_id: int | None) -> builtins.list[Session]:
        query = {**params, "last_id": last_id, "page_size": page_size}
        return (await resource._call("GET", path, SessionList, params=query)).sessions

    return cursor_pager(
        fetch, lambda s: cursor_id(s.id), order="desc", page_size=page_size, limit=limit
    )


def attempt_pager(
    resource: WorkflowResource,
    path: str,
    params: Mapping[str, Any],
    page_size: int,
    limit: int | None,
) -> Pager[Attempt]:
    """Attempts newest first: ``last_id`` is exclusive and descending (reference §2.9)."""
    _check_page_size(page_size)

    async def fetch(last_id: int | None) -> builtins.list[Attempt]:
        query = {**params, "last_id": last_id, "page_size": page_size}
        return (await resource._call("GET", path, AttemptList, params=query)).attempts

    return cursor_pager(
        fetch, lambda a: cursor_id(a.id), order="desc", page_size=page_size, limit=limit
    )


class Sessions(WorkflowResource):
    """Sessions of every project: ``/api/sessions`` (reference §2.3)."""

    def list(self, *, page_size: int = 100, limit: int | None = None) -> Pager[Session]:
        """Every session of the account, newest first (filter by project with
        ``projects.sessions``: this endpoint has no filter)."""
        return session_pager(self, "/api/sessions", {}, page_size, limit)

    async def get(self, session_id: str | int) -> Session:
        """One session with its ``last_attempt``."""
        return await self._call("GET", f"/api/sessions/{segment(session_id)}", Session)

    def attempts(
        self, session_id: str | int, *, page_size: int = 100, limit: int | None = None
    ) -> Pager[Attempt]:
        """Every attempt of the session, retries included, newest first."""
        path = f"/api/sessions/{segment(session_id)}/attempts"
        return attempt_pager(self, path, {}, page_size, limit)
