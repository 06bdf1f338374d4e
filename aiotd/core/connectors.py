"""``td.connectors``: Data Connector bulk loads: guess, preview, issue, saved loads, runs."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiotd._http import segment
from aiotd._paging import Pager, one_page
from aiotd._resource import CoreResource
from aiotd.core._common import (
    call_filled,
    db_segment,
    epoch_seconds,
    issue_once,
    new_domain_key,
    required,
)
from aiotd.models.core import (
    BulkLoadGuess,
    BulkLoadJob,
    BulkLoadPreview,
    BulkLoadSession,
    IssuedJob,
)

__all__ = ["Connectors"]

_SECTIONS = ("in", "out", "exec", "filters")


def _config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A load configuration as TD takes it: ``in``/``out``/``exec``/``filters`` sections.

    A bare input configuration (no ``in`` key) becomes the ``in`` section, as
    td-client-python does (v3-api.md §1.13).
    """
    if not isinstance(config, Mapping) or not config:
        raise ValueError("config must be a non-empty mapping")
    if "config" in config:
        raise ValueError("pass the configuration itself, not {'config': ...}")
    if "in" not in config:
        return {"in": dict(config), "out": {}, "exec": {}, "filters": []}
    return {
        "in": config["in"],
        "out": config.get("out", {}),
        "exec": config.get("exec", {}),
        "filters": config.get("filters", []),
        **{k: v for k, v in config.items() if k not in _SECTIONS},
    }


class Connectors(CoreResource):
    """Bulk loads of the core API: ``/v3/bulk_loads/...`` (JSON in and out, v3-api.md §1.13)."""

    async def guess(self, config: Mapping[str, Any]) -> BulkLoadGuess:
        """Complete a partial configuration (parser, columns); changes nothing, so retried."""
        return await self._call(
            "POST",
            "/v3/bulk_loads/guess",
            BulkLoadGuess,
            json={"config": _config(config)},
            idempotent=True,
        )

    async def preview(self, config: Mapping[str, Any]) -> BulkLoadPreview:
        """The columns and first records the configuration would load; retried."""
        return await self._call(
            "POST",
            "/v3/bulk_loads/preview",
            BulkLoadPreview,
            json={"config": _config(config)},
            idempotent=True,
        )

    async def issue(self, config: Mapping[str, Any], *, database: str, table: str) -> IssuedJob:
        """Start a one-off load into ``database.table``; sent once (each issue is a job)."""
        body = {"config": _config(config), "database": database, "table": required(table, "table")}
        path = f"/v3/job/issue/bulkload/{db_segment(database)}"
        # the answer is {"job_id": 12345} alone (samples/v3/job_issue_bulkload.json)
        known = {"database": database}
        return await call_filled(self, "POST", path, IssuedJob, known, json=body)

    def list(self) -> Pager[BulkLoadSession]:
        """Every saved bulk load: ``await`` or ``async for`` (one response)."""

        async def fetch() -> builtins.list[BulkLoadSession]:
            return await self._call("GET", "/v3/bulk_loads", builtins.list[BulkLoadSession])

        return one_page(fetch)

    async def create(
        self,
        name: str,
        *,
        config: Mapping[str, Any],
        database: str,
        table: str,
        cron: str | None = None,
        timezone: str | None = None,
        delay: int | None = None,
        time_column: str | None = None,
    ) -> BulkLoadSession:
        """Save a bulk load (scheduled when ``cron`` is given); sent once."""
        body: dict[str, Any] = {
            "name": required(name, "name"),
            "database": required(database, "database"),
            "table": required(table, "table"),
            "config": _config(config),
        }
        optional = {"cron": cron, "timezone": timezone, "delay": delay, "time_column": time_column}
        body.update({k: v for k, v in optional.items() if v is not None})
        return await call_filled(
            self, "POST", "/v3/bulk_loads", BulkLoadSession, {"name": name}, json=body
        )

    async def get(self, name: str) -> BulkLoadSession:
        """One saved bulk load."""
        return await self._call("GET", f"/v3/bulk_loads/{segment(name)}", BulkLoadSession)

    async def update(self, name: str, **settings: Any) -> BulkLoadSession:
        """Replace the settings given (``cron``, ``config``...); idempotent, so retried."""
        if not settings:
            raise ValueError("give at least one setting to update")
        if "config" in settings:
            settings["config"] = _config(settings["config"])
        return await call_filled(
            self,
            "PUT",
            f"/v3/bulk_loads/{segment(name)}",
            BulkLoadSession,
            {"name": name},
            json=settings,
            idempotent=True,
        )

    async def delete(self, name: str) -> BulkLoadSession:
        """Delete a saved bulk load; TD answers with what it was. Sent once."""
        path = f"/v3/bulk_loads/{segment(name)}"
        return await call_filled(self, "DELETE", path, BulkLoadSession, {"name": name})

    def history(self, name: str) -> Pager[BulkLoadJob]:
        """The jobs the saved load ran: ``await`` or ``async for`` (one response)."""
        path = f"/v3/bulk_loads/{segment(name)}/jobs"

        async def fetch() -> builtins.list[BulkLoadJob]:
            return await self._call("GET", path, builtins.list[BulkLoadJob])

        return one_page(fetch)

    async def run(
        self,
        name: str,
        *,
        scheduled_time: int | datetime | None = None,
        domain_key: str | None = None,
    ) -> IssuedJob:
        """Run a saved load now, exactly once (``domain_key`` generated when not given)."""
        body: dict[str, Any] = {
            "domain_key": domain_key if domain_key is not None else new_domain_key()
        }
        if scheduled_time is not None:
            body["scheduled_time"] = epoch_seconds(scheduled_time, "scheduled_time")
        path = f"/v3/bulk_loads/{segment(name)}/jobs"
        return await issue_once(self, path, json=body)
