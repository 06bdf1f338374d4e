"""``td.schedules``: saved (and scheduled) queries: create, list, update, delete, history, run."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from aiotd._http import segment
from aiotd._paging import Pager, offset_pager, one_page
from aiotd._resource import CoreResource
from aiotd.core._common import call_filled, epoch_seconds, new_domain_key, required
from aiotd.core.jobs import ENGINES
from aiotd.errors import Conflict
from aiotd.models.core import (
    Schedule,
    ScheduledJob,
    ScheduleHistory,
    ScheduleList,
    ScheduleRun,
    ScheduleRunJob,
    parse_priority,
)

__all__ = ["Schedules"]


def _form(
    *,
    query: str | None,
    database: str | None,
    cron: str | None,
    timezone: str | None,
    delay: int | None,
    engine: str | None,
    priority: int | str | None,
    retry_limit: int | None,
    engine_version: str | None,
    pool_name: str | None,
    result_url: str | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    if engine is not None and engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if delay is not None and delay < 0:
        raise ValueError("delay must be >= 0")
    if retry_limit is not None and retry_limit < 0:
        raise ValueError("retry_limit must be >= 0")
    return {
        "query": query,
        "database": database,
        "cron": cron,
        "timezone": timezone,
        "delay": delay,
        "type": engine,
        "priority": None if priority is None else parse_priority(priority),
        "retry_limit": retry_limit,
        "engine_version": engine_version,
        "pool_name": pool_name,
        "result": result_url,
        **extra,
    }


class Schedules(CoreResource):
    """Saved queries of the core API: ``/v3/schedule/...`` (v3-api.md §1.8).

    ``cron`` takes ``@daily``/``@hourly``/a 5-field cron, or ``""`` for a query that runs
    only when asked (``run``).
    """

    async def create(
        self,
        name: str,
        *,
        query: str,
        database: str,
        cron: str | None = None,
        timezone: str | None = None,
        delay: int | None = None,
        engine: str | None = None,
        priority: int | str | None = None,
        retry_limit: int | None = None,
        engine_version: str | None = None,
        pool_name: str | None = None,
        result_url: str | None = None,
        **extra: Any,
    ) -> Schedule:
        """Save a query (scheduled when ``cron`` is given); Conflict if the name is taken.

        Sent once: a retried create that was applied would answer 409.
        """
        path = f"/v3/schedule/create/{segment(name)}"
        form = _form(
            query=required(query, "query"),
            database=required(database, "database"),
            cron=cron,
            timezone=timezone,
            delay=delay,
            engine=engine,
            priority=priority,
            retry_limit=retry_limit,
            engine_version=engine_version,
            pool_name=pool_name,
            result_url=result_url,
            extra=extra,
        )
        return await call_filled(self, "POST", path, Schedule, {"name": name}, data=form)

    def list(self) -> Pager[Schedule]:
        """Every saved query, with ``next_time`` for the scheduled ones: ``await`` or
        ``async for`` (one response)."""

        async def fetch() -> builtins.list[Schedule]:
            return (await self._call("GET", "/v3/schedule/list", ScheduleList)).schedules

        return one_page(fetch)

    async def update(
        self,
        name: str,
        *,
        query: str | None = None,
        database: str | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        delay: int | None = None,
        engine: str | None = None,
        priority: int | str | None = None,
        retry_limit: int | None = None,
        engine_version: str | None = None,
        pool_name: str | None = None,
        result_url: str | None = None,
        **extra: Any,
    ) -> Schedule:
        """Change the fields given; setting values is idempotent, so the request is retried."""
        path = f"/v3/schedule/update/{segment(name)}"
        form = _form(
            query=query,
            database=database,
            cron=cron,
            timezone=timezone,
            delay=delay,
            engine=engine,
            priority=priority,
            retry_limit=retry_limit,
            engine_version=engine_version,
            pool_name=pool_name,
            result_url=result_url,
            extra=extra,
        )
        if all(value is None for value in form.values()):
            raise ValueError("give at least one field to update")
        return await call_filled(
            self, "POST", path, Schedule, {"name": name}, data=form, idempotent=True
        )

    async def delete(self, name: str) -> Schedule:
        """Delete a saved query; TD answers with what it was. Sent once (a repeat is 404)."""
        path = f"/v3/schedule/delete/{segment(name)}"
        return await call_filled(self, "POST", path, Schedule, {"name": name})

    def history(
        self, name: str, *, page_size: int = 20, limit: int | None = None
    ) -> Pager[ScheduledJob]:
        """The jobs the schedule ran, newest first: ``await`` one page, ``async for`` all."""
        path = f"/v3/schedule/history/{segment(name)}"

        async def fetch(from_: int, to: int) -> builtins.list[ScheduledJob]:
            # `to` is exclusive here, unlike job/list (v3-api.md §1.8, §7.7)
            params = {"from": from_, "to": to + 1}
            return (await self._call("GET", path, ScheduleHistory, params=params)).history

        return offset_pager(fetch, page_size=page_size, limit=limit, key=lambda job: job.job_id)

    async def run(
        self,
        name: str,
        *,
        time: int | datetime,
        num: int | None = None,
        domain_key: str | None = None,
    ) -> ScheduleRun:
        """Run the query now as if scheduled at ``time`` (``num`` runs going back in time).

        Exactly once like ``jobs.issue``: a ``domain_key`` (generated when not given) goes
        with every try; a 409 naming a job returns that job with ``existing=True``.
        """
        scheduled = epoch_seconds(time, "time")
        if num is not None and num < 1:
            raise ValueError("num must be >= 1")
        key = domain_key if domain_key is not None else new_domain_key()
        path = f"/v3/schedule/run/{segment(name)}/{scheduled}"
        form = {"num": num, "domain_key": key}
        try:
            return await self._call("POST", path, ScheduleRun, data=form, idempotent=True)
        except Conflict as exc:
            if exc.conflicts_with is None:
                raise
            job = ScheduleRunJob(job_id=exc.conflicts_with)
            return ScheduleRun(jobs=[job], existing=True)
