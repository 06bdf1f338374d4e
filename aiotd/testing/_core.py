"""The v3 REST API routes (reference/v3-api.md §1) over the store, the job store and the rest
of the emulator's state."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from aiohttp import web

from aiotd.testing._bulk_imports import BulkImports, decode_records
from aiotd.testing._bulk_loads import BulkLoads
from aiotd.testing._common import (
    LISTING_COUNTS,
    APIError,
    ListingCount,
    bool_param,
    form_params,
    int_param,
    iso_z,
    json_response,
    listing_count,
    td_time,
)
from aiotd.testing._cron import parse_cron, zone
from aiotd.testing._jobs import QUERY_TYPES, STATUSES, SUCCESS, JobStore
from aiotd.testing._results import FORMATS, serve
from aiotd.testing._store import Store
from aiotd.testing._users import Users

__all__ = ["TRUNCATE", "Core", "check_listing"]

#: Set by the fault middleware while a handler runs whose streamed answer must be truncated.
TRUNCATE: ContextVar[bool] = ContextVar("aiotd_emulator_truncate", default=False)

_PRIORITIES = {
    "VERY LOW": -2,
    "VERY-LOW": -2,
    "VERY_LOW": -2,
    "LOW": -1,
    "NORM": 0,
    "NORMAL": 0,
    "HIGH": 1,
    "VERY HIGH": 2,
    "VERY-HIGH": 2,
    "VERY_HIGH": 2,
}


#: Keys of a one-off load's body that are not its configuration.
_TARGET = frozenset(("database", "table", "domain_key"))


@dataclass
class Schedule:
    """A saved query (v3-api §1.8)."""

    id: int
    name: str
    cron: str | None
    timezone: str
    delay: int
    created_at: float
    type: str
    query: str
    database: str
    priority: int
    retry_limit: int
    result: str
    user_name: str = "Emulator User"
    history: list[int] = field(default_factory=list)

    def next_time(self, after: float) -> float | None:
        """The first run strictly after ``after`` by the cron read in the timezone."""
        cron = parse_cron(self.cron) if self.cron else None
        tz = zone(self.timezone)
        return cron.after(after, tz) if cron is not None and tz is not None else None

    def run_times(self, at: int, num: int) -> list[int]:
        """The scheduled times of ``num`` runs for ``schedule/run`` at ``at``, latest first:
        the cron's times at or before ``at``, read in the schedule's timezone. Without a cron,
        ``at`` cut to its minute, then a minute apart: TD's scheduled times fall on whole
        minutes (samples/v3/schedule_run.json, schedule_history.json)."""
        cron = parse_cron(self.cron) if self.cron else None
        tz = zone(self.timezone)
        if cron is None or tz is None:
            return [at - at % 60 - 60 * i for i in range(num)]
        return [int(t) for t in itertools.islice(cron.until(at, tz), num)]

    def to_json(self, *, full: bool = True) -> dict[str, Any]:
        nxt = self.next_time(time.time())
        body: dict[str, Any] = {
            "name": self.name,
            "cron": self.cron,
            "timezone": self.timezone,
            "delay": self.delay,
            "created_at": iso_z(self.created_at),
            "type": self.type,
            "query": self.query,
            "database": self.database,
            "user_name": self.user_name,
            "priority": self.priority,
            "retry_limit": self.retry_limit,
            "result": self.result,
        }
        if full:
            body["id"] = self.id
            body["start"] = td_time(nxt)
        else:
            body["next_time"] = iso_z(nxt)
        return body


def check_listing(count: str, page_cap: int | None) -> None:
    """Reject a ``count`` meaning or page cap the listings cannot serve."""
    if count not in LISTING_COUNTS:
        raise ValueError(f"job_list_count must be one of {LISTING_COUNTS}, not {count!r}")
    if page_cap is not None and page_cap < 1:
        raise ValueError(f"job_list_page_cap must be at least 1, not {page_cap}")


class Core:
    """State and handlers of the v3 API. ``keys`` is the set the auth middleware accepts.

    ``job_list_count`` (what ``count`` means in ``job/list`` and ``schedule/history``) and
    ``job_list_page_cap`` (most items per page whatever ``to`` asks; None honours ``to``) and
    ``bulk_import_commit_time`` (seconds a commit shows ``committing``) may be changed at any
    time.
    """

    def __init__(
        self,
        store: Store,
        jobs: JobStore,
        apikey: str,
        directory: Path,
        *,
        job_list_count: ListingCount = "page",
        job_list_page_cap: int | None = None,
        bulk_import_commit_time: float = 0.1,
    ) -> None:
        check_listing(job_list_count, job_list_page_cap)
        self.job_list_count: ListingCount = job_list_count
        self.job_list_page_cap = job_list_page_cap
        self.store = store
        self.jobs = jobs
        self.directory = directory
        self.started = time.time()
        self.keys: set[str] = {apikey}
        self.users = Users(self.keys, apikey, self.started)
        self.results: dict[str, str] = {}
        self.schedules: dict[str, Schedule] = {}
        self.bulk_imports = BulkImports(store, jobs, commit_time=bulk_import_commit_time)
        self.imported_ids: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.bulk_loads = BulkLoads(store, jobs)
        self._next_schedule_id = 1

    @property
    def bulk_import_commit_time(self) -> float:
        """Seconds a bulk-import commit shows ``committing`` before its rows land."""
        return self.bulk_imports.commit_time

    @bulk_import_commit_time.setter
    def bulk_import_commit_time(self, seconds: float) -> None:
        self.bulk_imports.commit_time = seconds

    def close(self) -> None:
        """Drop the bulk-import commits still under way (their rows stay out)."""
        self.bulk_imports.close()

    # -- routing ---------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Register every v3 route on ``app``."""
        r = app.router
        r.add_get("/v3/system/server_status", self.server_status)
        r.add_get("/v3/account/show", self.account_show)
        r.add_get("/v3/database/list", self.database_list)
        r.add_get("/v3/database/show/{db}", self.database_show)
        r.add_post("/v3/database/create/{db}", self.database_create)
        r.add_post("/v3/database/delete/{db}", self.database_delete)
        r.add_get("/v3/table/list/{db}", self.table_list)
        r.add_get("/v3/table/show/{db}/{table}", self.table_show)
        r.add_post("/v3/table/create/{db}/{table}/{type}", self.table_create)
        r.add_post("/v3/table/create/{db}/{table}", self.table_create)
        r.add_post("/v3/table/delete/{db}/{table}", self.table_delete)
        r.add_post("/v3/table/swap/{db}/{table1}/{table2}", self.table_swap)
        r.add_post("/v3/table/update-schema/{db}/{table}", self.table_update_schema)
        r.add_post("/v3/table/update/{db}/{table}", self.table_update)
        r.add_get("/v3/table/tail/{db}/{table}", self.table_tail)
        r.add_post("/v3/table/tail/{db}/{table}", self.table_tail)
        r.add_post("/v3/table/change_database/{db}/{table}", self.table_change_database)
        r.add_put("/v3/table/import/{db}/{table}/{format}", self.table_import)
        r.add_put("/v3/table/import_with_id/{db}/{table}/{unique_id}/{format}", self.table_import)
        r.add_post("/v3/job/issue/{type}/{db}", self.job_issue)
        r.add_get("/v3/job/list", self.job_list)
        r.add_get("/v3/job/show/{job_id}", self.job_show)
        r.add_get("/v3/job/status/{job_id}", self.job_status)
        r.add_get("/v3/job/status_by_domain_key/{domain_key}", self.job_status_by_domain_key)
        r.add_post("/v3/job/kill/{job_id}", self.job_kill)
        r.add_get("/v3/job/result/{job_id}", self.job_result)
        r.add_post("/v3/job/result_export/{job_id}", self.job_result_export)
        r.add_post("/v3/export/run/{db}/{table}", self.export_run)
        self.bulk_imports.add_routes(app)
        r.add_post("/v3/schedule/create/{name}", self.schedule_create)
        r.add_post("/v3/schedule/update/{name}", self.schedule_update)
        r.add_post("/v3/schedule/delete/{name}", self.schedule_delete)
        r.add_get("/v3/schedule/list", self.schedule_list)
        r.add_get("/v3/schedule/history/{name}", self.schedule_history)
        r.add_post("/v3/schedule/run/{name}/{time}", self.schedule_run)
        r.add_get("/v3/result/list", self.result_list)
        r.add_post("/v3/result/create/{name}", self.result_create)
        r.add_post("/v3/result/delete/{name}", self.result_delete)
        self.bulk_loads.add_routes(app)
        self.users.add_routes(app)

    # -- system, account ---------------------------------------------------------------------

    async def server_status(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def account_show(self, request: web.Request) -> web.Response:
        storage = sum(
            t.estimated_storage_size
            for db in self.store.databases.values()
            for t in db.tables.values()
        )
        created = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(self.started))
        account = {
            "id": 1,
            "plan": 0,
            "storage_size": storage,
            "guaranteed_cores": 0,
            "maximum_cores": 0,
            "created_at": created,
            "presto_plan": 0,
        }
        return json_response({"account": account})

    # -- databases -------------------------------------------------------------------------

    async def database_list(self, request: web.Request) -> web.Response:
        return json_response({"databases": [d.to_json() for d in self.store.databases.values()]})

    async def database_show(self, request: web.Request) -> web.Response:
        return json_response(self.store.database(request.match_info["db"]).to_json())

    async def database_create(self, request: web.Request) -> web.Response:
        await form_params(request)
        db = self.store.create_database(request.match_info["db"])
        return json_response({"database": db.name})

    async def database_delete(self, request: web.Request) -> web.Response:
        db = self.store.delete_database(request.match_info["db"])
        return json_response({"database": db.name})

    # -- tables ----------------------------------------------------------------------------

    def _table_ref(self, request: web.Request) -> dict[str, str]:
        mi = request.match_info
        return {"table": mi["table"], "type": "log", "database": mi["db"]}

    async def table_list(self, request: web.Request) -> web.Response:
        db = self.store.database(request.match_info["db"])
        return json_response(
            {"database": db.name, "tables": [t.to_json() for t in db.tables.values()]}
        )

    async def table_show(self, request: web.Request) -> web.Response:
        mi = request.match_info
        return json_response(self.store.table(mi["db"], mi["table"]).to_json())

    async def table_create(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        mi = request.match_info
        table_type = mi.get("type", "log")
        if table_type != "log":
            raise APIError(400, f"Unsupported table type: {table_type}")
        self.store.create_table(
            mi["db"], mi["table"], include_v=bool_param(params, "include_v", True)
        )
        return json_response(self._table_ref(request))

    async def table_delete(self, request: web.Request) -> web.Response:
        mi = request.match_info
        self.store.delete_table(mi["db"], mi["table"])
        return json_response(self._table_ref(request))

    async def table_swap(self, request: web.Request) -> web.Response:
        mi = request.match_info
        self.store.swap_tables(mi["db"], mi["table1"], mi["table2"])
        return json_response({"database": mi["db"], "table1": mi["table1"], "table2": mi["table2"]})

    async def table_update_schema(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        mi = request.match_info
        raw = params.get("schema")
        if raw is None:
            raise APIError(400, "schema is required")
        try:
            schema = json.loads(raw)
            if not isinstance(schema, list) or not all(
                isinstance(e, list) and 2 <= len(e) <= 3 and all(isinstance(x, str) for x in e)
                for e in schema
            ):
                raise ValueError("expected [[name, type(, alias)], ...]")
        except ValueError as exc:
            raise APIError(400, f"Invalid schema: {exc}") from None
        self.store.update_schema(mi["db"], mi["table"], schema)
        return json_response(self._table_ref(request))

    async def table_update(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        mi = request.match_info
        table = self.store.table(mi["db"], mi["table"])
        if "expire_days" in params:
            table.expire_days = int_param(params, "expire_days")
        if "include_v" in params:
            table.include_v = bool_param(params, "include_v", table.include_v)
        if "detect_schema" in params:
            table.detect_schema = bool_param(params, "detect_schema", table.detect_schema)
        table.updated_at = time.time()
        return json_response(self._table_ref(request))

    async def table_tail(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        mi = request.match_info
        count = int_param(params, "count", 30) or 30
        rows = self.store.tail(mi["db"], mi["table"], count)
        packer = msgpack.Packer()
        body = b"".join(packer.pack(row) for row in rows)
        return web.Response(body=body, content_type="application/x-msgpack")

    async def table_change_database(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        mi = request.match_info
        dest = params.get("dest_database_name")
        if not dest:
            raise APIError(400, "dest_database_name is required")
        self.store.change_database(mi["db"], mi["table"], dest)
        return json_response({"database": dest, "table": mi["table"], "type": "log"})

    async def table_import(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        mi = request.match_info
        db_name, table_name, fmt = mi["db"], mi["table"], mi["format"]
        unique_id = mi.get("unique_id")
        self.store.table(db_name, table_name)
        body = await request.read()
        if unique_id is not None:
            done = self.imported_ids.get((db_name, table_name, unique_id))
            if done is not None:
                return json_response(done)
        if fmt not in ("msgpack.gz", "msgpack"):
            raise APIError(400, f"Unsupported import format: {fmt}")
        records = decode_records(body)
        maps = [r for r in records if isinstance(r, dict)]
        self.store.insert(db_name, table_name, maps, len(body))
        answer: dict[str, Any] = {
            "database": db_name,
            "table": table_name,
            "md5_hex": hashlib.md5(body).hexdigest(),
            "elapsed_time": round(time.perf_counter() - started, 6),
        }
        if unique_id is not None:
            answer["unique_id"] = unique_id
            self.imported_ids[(db_name, table_name, unique_id)] = answer
        return json_response(answer)

    # -- jobs ------------------------------------------------------------------------------

    def _issue_options(self, params: dict[str, str]) -> dict[str, Any]:
        raw_priority = params.get("priority")
        priority = 0
        if raw_priority not in (None, ""):
            assert raw_priority is not None
            named = _PRIORITIES.get(raw_priority.strip().upper())
            if named is not None:
                priority = named
            else:
                priority = int_param(params, "priority") or 0
                if not -2 <= priority <= 2:
                    raise APIError(400, f"Invalid priority: {priority}")
        return {
            "priority": priority,
            "retry_limit": int_param(params, "retry_limit", 0) or 0,
            "result_url": params.get("result", ""),
            "pool_name": params.get("pool_name") or None,
            "domain_key": params.get("domain_key") or None,
        }

    async def job_issue(self, request: web.Request) -> web.Response:
        mi = request.match_info
        job_type, db_name = mi["type"], mi["db"]
        if job_type == "bulkload":
            # A JSON body: the load's config with "database" and "table" (v3-api §1.5).
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError as exc:
                raise APIError(400, f"Invalid JSON body: {exc}") from None
            if not isinstance(body, dict) or not isinstance(body.get("table"), str):
                raise APIError(422, "'table' is required")
            config = body.get("config", {k: v for k, v in body.items() if k not in _TARGET})
            job = self.bulk_loads.issue(
                config if isinstance(config, dict) else {},
                database=db_name,
                table=body["table"],
                domain_key=str(body["domain_key"]) if body.get("domain_key") else None,
            )
            return json_response({"job_id": job.id})
        params = await form_params(request)
        if job_type not in QUERY_TYPES:
            raise APIError(404, f"Unknown job type: {job_type}")
        self.store.database(db_name)
        query = params.get("query")
        if not query:
            raise APIError(400, "query is required")
        job = self.jobs.issue(
            job_type=job_type, database=db_name, query=query, **self._issue_options(params)
        )
        job_id = str(job.id)
        return json_response({"job": job_id, "job_id": job_id, "database": db_name})

    async def job_list(self, request: web.Request) -> web.Response:
        q = request.query
        params = dict(q)
        status = q.get("status") or None
        if status is not None and status not in STATUSES:
            raise APIError(400, f"Invalid status: {status}")
        start = int_param(params, "from")
        end = int_param(params, "to")
        skip = start if start is not None and start > 0 else 0
        # ``to`` is inclusive (v3-api §7.7); the server default is 20 jobs.
        span = (end if end is not None else skip + 19) - skip + 1
        slower = q.get("slower_than")
        total, jobs = self.jobs.page(
            status=status,
            skip=skip,
            limit=self._capped(span),
            from_id=int_param(params, "from_id"),
            to_id=int_param(params, "to_id"),
            slower_than=float(slower) if slower else None,
        )
        now = time.time()
        count = listing_count(self.job_list_count, len(jobs), span, total)
        return json_response(
            {"count": count, "from": start, "to": end, "jobs": [j.to_json(now) for j in jobs]}
        )

    def _capped(self, span: int) -> int:
        """How many items a listing page holds when ``span`` are asked for."""
        cap = self.job_list_page_cap
        return min(span, cap) if cap is not None else span

    async def job_show(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job_id"])
        return json_response(job.to_json(time.time(), debug=True))

    async def job_status(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job_id"])
        return json_response(job.status_json(time.time()))

    async def job_status_by_domain_key(self, request: web.Request) -> web.Response:
        job = self.jobs.by_key(request.match_info["domain_key"])
        return json_response(job.status_json(time.time()))

    async def job_kill(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        former = self.jobs.kill(job_id)
        return json_response({"job_id": str(self.jobs.get(job_id).id), "former_status": former})

    async def job_result(self, request: web.Request) -> web.StreamResponse:
        job = self.jobs.get(request.match_info["job_id"])
        fmt = request.query.get("format", "tsv")
        if fmt not in FORMATS:
            raise APIError(400, f"Unsupported result format: {fmt}")
        if job.status != SUCCESS or job.result is None:
            raise APIError(404, f"Result of job {job.id} is not available (status: {job.status})")
        header = bool_param(dict(request.query), "header")
        columns = [c[0] for c in job.result_schema or []]
        result = job.result
        if result.is_large():
            data = await asyncio.to_thread(result.variant, fmt, header, columns)
        else:
            data = result.variant(fmt, header, columns)
        tag = "h" if header and fmt not in ("msgpack", "msgpack.gz") else "n"
        etag = f'"{job.id}-{fmt}-{tag}-{result.size}"'
        return await serve(request, data, fmt, etag, TRUNCATE.get())

    async def job_result_export(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        target = self.jobs.get(request.match_info["job_id"])
        result_url = params.get("result") or params.get("result_connection_settings")
        if not result_url:
            raise APIError(422, "'result' parameter is required")
        job = self.jobs.issue(
            job_type="result_export",
            database=target.database,
            query=f"RESULT EXPORT FROM JOB {target.id}",
            result_url=result_url,
            domain_key=params.get("domain_key") or None,
        )
        job.result_export_target_job_id = target.id
        target.linked_result_export_job_id = job.id
        return json_response({"job_id": str(job.id)})

    async def export_run(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        mi = request.match_info
        self.store.table(mi["db"], mi["table"])
        if params.get("storage_type") != "s3":
            raise APIError(400, "Only s3 output type is supported")
        prefix = params.get("file_prefix") or f"{mi['db']}/{mi['table']}"
        job = self.jobs.issue(
            job_type="export",
            database=mi["db"],
            query=f"EXPORT {mi['db']}.{mi['table']} TO s3://{params.get('bucket', '')}/{prefix}",
            pool_name=params.get("pool_name") or None,
            domain_key=params.get("domain_key") or None,
        )
        job_id = str(job.id)
        return json_response({"job": job_id, "job_id": job_id, "database": mi["db"]})

    # -- schedules -------------------------------------------------------------------------

    def _schedule(self, name: str) -> Schedule:
        sched = self.schedules.get(name)
        if sched is None:
            raise APIError(404, f"Schedule '{name}' does not exist")
        return sched

    def _apply_schedule(self, sched: Schedule, params: dict[str, str]) -> None:
        cron = (params["cron"] or None) if "cron" in params else sched.cron
        tz = zone(params.get("timezone", sched.timezone))
        if tz is None:
            raise APIError(422, f"Validation failed: Timezone is invalid: {params['timezone']}")
        if cron is not None:
            parsed = parse_cron(cron)
            if parsed is None or parsed.after(time.time(), tz) is None:
                raise APIError(422, f"Validation failed: Cron is invalid: {cron}")
        sched.cron = cron
        for key in ("timezone", "type", "query", "database", "result"):
            if key in params:
                setattr(sched, key, params[key])
        for key in ("delay", "priority", "retry_limit"):
            if key in params:
                setattr(sched, key, int_param(params, key, 0) or 0)

    async def schedule_create(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        name = request.match_info["name"]
        if len(name) < 3:
            raise APIError(422, "Validation failed: Name is too short")
        if name in self.schedules:
            raise APIError(409, f"Schedule {name} already exists")
        if not params.get("query"):
            raise APIError(422, "Validation failed: Query can't be blank")
        sched = Schedule(
            id=self._next_schedule_id,
            name=name,
            cron=None,
            timezone="UTC",
            delay=0,
            created_at=time.time(),
            type="hive",
            query="",
            database="",
            priority=0,
            retry_limit=0,
            result="",
        )
        self._apply_schedule(sched, params)
        if sched.database:
            self.store.database(sched.database)
        self._next_schedule_id += 1
        self.schedules[name] = sched
        return json_response(sched.to_json())

    async def schedule_update(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        sched = self._schedule(request.match_info["name"])
        self._apply_schedule(sched, params)
        return json_response(sched.to_json())

    async def schedule_delete(self, request: web.Request) -> web.Response:
        sched = self._schedule(request.match_info["name"])
        del self.schedules[sched.name]
        body = sched.to_json(full=False)
        for key in ("next_time", "priority", "retry_limit", "result"):
            body.pop(key, None)
        return json_response(body)

    async def schedule_list(self, request: web.Request) -> web.Response:
        return json_response(
            {"schedules": [s.to_json(full=False) for s in self.schedules.values()]}
        )

    async def schedule_history(self, request: web.Request) -> web.Response:
        sched = self._schedule(request.match_info["name"])
        params = dict(request.query)
        start = int_param(params, "from", 0) or 0
        end = int_param(params, "to", start + 20) or 0
        # ``to`` is exclusive here (v3-api §7.7), newest first like job/list.
        span = end - start
        ids = sched.history[::-1][start : start + self._capped(max(span, 0))]
        now = time.time()
        self.jobs.advance(now)
        history = []
        for job_id in ids:
            job = self.jobs.jobs[job_id]
            item = job.to_json(now)
            item["scheduled_at"] = td_time(job.scheduled_at) or ""
            history.append(item)
        return json_response(
            {
                "history": history,
                "count": listing_count(self.job_list_count, len(ids), span, len(sched.history)),
                "from": start,
                "to": end,
            }
        )

    async def schedule_run(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        sched = self._schedule(request.match_info["name"])
        try:
            scheduled = int(request.match_info["time"])
        except ValueError:
            raise APIError(400, "time must be a unix epoch (seconds)") from None
        num = int_param(params, "num", 1) or 1
        domain_key = params.get("domain_key") or None
        out = []
        for i, at in enumerate(sched.run_times(scheduled, num)):
            query = sched.query.replace("${TD_SCHEDULED_TIME}", str(at))
            job = self.jobs.issue(
                job_type=sched.type,
                database=sched.database,
                query=query,
                priority=sched.priority,
                retry_limit=sched.retry_limit,
                result_url=sched.result,
                domain_key=f"{domain_key}:{i}" if domain_key and i else domain_key,
                scheduled_at=float(at),
            )
            sched.history.append(job.id)
            out.append({"job_id": job.id, "type": job.type, "scheduled_at": td_time(at)})
        return json_response({"jobs": out})

    # -- saved results ---------------------------------------------------------------------

    async def result_list(self, request: web.Request) -> web.Response:
        items = [{"name": n, "url": u, "organization": None} for n, u in self.results.items()]
        return json_response({"results": items})

    async def result_create(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        name = request.match_info["name"]
        if not params.get("url"):
            raise APIError(422, "'url' parameter is required")
        if len(name) < 3:
            raise APIError(422, "Validation failed: Name is too short")
        if name in self.results:
            raise APIError(409, "Result must be unique")
        self.results[name] = params["url"]
        return json_response({"name": name, "result": name})

    async def result_delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.results.pop(name, None) is None:
            raise APIError(404, f"Result '{name}' does not exist")
        return json_response({"name": name, "result": name})
