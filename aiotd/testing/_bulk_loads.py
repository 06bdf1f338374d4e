"""``/v3/bulk_loads``: Data Connector loads (reference/v3-api.md §1.13), JSON in and out.

The emulator reads no remote source: a load's rows are made up from its parser columns
(those given, else the recorded guess's), ten per run, the same for the same configuration.
They land in the target table when the load's job succeeds.
"""

from __future__ import annotations

import calendar
import copy
import hashlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from aiotd.testing._common import APIError, json_response
from aiotd.testing._cron import parse_cron, zone
from aiotd.testing._jobs import FINISHED, SUCCESS, Job, JobStore
from aiotd.testing._store import Store

__all__ = ["BulkLoads"]

#: The parser of the recorded guess (samples/v3/bulk_loads_guess.json), given to a
#: configuration that has none.
_GUESSED_PARSER: dict[str, Any] = {
    "charset": "UTF-8",
    "newline": "LF",
    "type": "csv",
    "delimiter": ",",
    "header_line": False,
    "columns": [
        {"name": "time", "type": "long"},
        {"name": "c1", "type": "long"},
        {"name": "c2", "type": "string"},
        {"name": "c3", "type": "string"},
    ],
}
_ROWS_PER_RUN = 10  # the recorded preview holds ten records (samples/v3/bulk_loads_preview.json)
#: Embulk column types as TD's table schema names them.
_TD_TYPES = {"long": "long", "double": "double", "boolean": "long"}


@dataclass
class BulkLoad:
    """A saved load: the session object of ``/v3/bulk_loads/{name}``."""

    name: str
    database: str
    table: str
    config: dict[str, Any]
    cron: str | None = None
    timezone: str = "UTC"
    delay: int = 0
    time_column: str | None = None
    config_diff: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The fields td-client-ruby's fixture (samples/v3/bulk_loads_session.json) and the td
        CLI's ``connector:show`` read."""
        return {
            "name": self.name,
            "cron": self.cron,
            "timezone": self.timezone,
            "delay": self.delay,
            "database": self.database,
            "table": self.table,
            "time_column": self.time_column,
            "config": self.config,
            "config_diff": self.config_diff or {},
        }


@dataclass
class _Run:
    """A load's job: where its rows go and what they are."""

    database: str
    table: str
    config: dict[str, Any]
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    records: int | None = None


def _columns(config: dict[str, Any]) -> list[dict[str, Any]]:
    section = config.get("in", config)
    parser = section.get("parser") if isinstance(section, dict) else None
    columns = parser.get("columns") if isinstance(parser, dict) else None
    if isinstance(columns, list) and all(isinstance(c, dict) and "name" in c for c in columns):
        return columns
    return list(_GUESSED_PARSER["columns"])


def _value(kind: str, rng: random.Random, at: int) -> Any:
    if kind == "long":
        return rng.randrange(100_000)
    if kind == "double":
        return round(rng.uniform(0, 1000), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "timestamp":
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at - rng.randrange(86_400)))
    if kind == "json":
        return {"k": rng.randrange(100)}
    return f"{rng.randrange(100_000):05d}"


def _records(config: dict[str, Any], columns: list[dict[str, Any]], at: int) -> list[list[Any]]:
    """Ten records of ``columns``, the same for the same configuration and time."""
    seed = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).digest()
    rng = random.Random(seed + at.to_bytes(8, "big", signed=True))
    out = []
    for _ in range(_ROWS_PER_RUN):
        row = []
        for column in columns:
            if column["name"] == "time" and column.get("type") == "long":
                row.append(at - rng.randrange(86_400))
            else:
                row.append(_value(str(column.get("type", "string")), rng, at))
        out.append(row)
    return out


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise APIError(400, f"Invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise APIError(400, "The body must be a JSON object")
    return data


def _config(data: dict[str, Any]) -> dict[str, Any]:
    config = data.get("config")
    if not isinstance(config, dict) or not config:
        raise APIError(422, "'config' is required")
    return config


def _row_time(value: Any, default: int) -> int:
    """A row's ``time`` from its time column: epoch seconds or ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return calendar.timegm(time.strptime(value, "%Y-%m-%d %H:%M:%S"))
        except ValueError:
            pass
    return default


def _epoch(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise APIError(400, f"Invalid scheduled_time: {value!r}")


class BulkLoads:
    """Saved loads, their jobs, guess and preview; one-off loads come through ``job/issue``."""

    def __init__(self, store: Store, jobs: JobStore) -> None:
        self.store = store
        self.jobs = jobs
        self.loads: dict[str, BulkLoad] = {}
        self._runs: dict[int, _Run] = {}
        self._history: dict[str, list[int]] = {}
        jobs.on_finish.append(self._finished)

    def add_routes(self, app: web.Application) -> None:
        """Register the ``/v3/bulk_loads`` routes on ``app``."""
        r = app.router
        r.add_post("/v3/bulk_loads/guess", self.guess)
        r.add_post("/v3/bulk_loads/preview", self.preview)
        r.add_get("/v3/bulk_loads", self.list)
        r.add_post("/v3/bulk_loads", self.create)
        r.add_get("/v3/bulk_loads/{name}", self.show)
        r.add_put("/v3/bulk_loads/{name}", self.update)
        r.add_delete("/v3/bulk_loads/{name}", self.delete)
        r.add_get("/v3/bulk_loads/{name}/jobs", self.history)
        r.add_post("/v3/bulk_loads/{name}/jobs", self.run)

    # -- loads -------------------------------------------------------------------------------

    def issue(
        self,
        config: dict[str, Any],
        *,
        database: str,
        table: str,
        scheduled_time: int | None = None,
        domain_key: str | None = None,
        time_column: str | None = None,
    ) -> Job:
        """Start a load of ``config`` into ``database.table`` as a ``bulkload`` job; the rows'
        ``time`` is their ``time_column`` (epoch or timestamp), else the scheduled time.

        A missing table fails the job, as TD's loads write to existing tables.
        """
        self.store.writable(database)
        at = scheduled_time if scheduled_time is not None else int(time.time())
        columns = _columns(config)
        names = [str(c["name"]) for c in columns]
        rows = [dict(zip(names, r, strict=True)) for r in _records(config, columns, at)]
        for row in rows:
            row["time"] = _row_time(row.get(time_column or "time"), at)
        exists = table in self.store.database(database).tables
        job = self.jobs.issue(
            job_type="bulkload",
            database=database,
            query=config,
            domain_key=domain_key,
            status=None if exists else "error",
        )
        if not exists:
            job.stderr = f"Table '{table}' does not exist in database '{database}'"
        job.scheduled_at = float(at)
        self._runs[job.id] = _Run(database, table, config, columns, rows)
        return job

    def _finished(self, job: Job) -> None:
        run = self._runs.get(job.id)
        if run is None or job.status != SUCCESS:
            return
        try:
            run.records = self.store.insert(run.database, run.table, run.rows)
        except APIError:  # the table went away while the job ran: nothing loaded
            run.records = 0

    def _load(self, name: str) -> BulkLoad:
        load = self.loads.get(name)
        if load is None:
            raise APIError(404, f"Bulk load session '{name}' does not exist")
        return load

    def _target(self, database: Any, table: Any) -> tuple[str, str]:
        if not isinstance(database, str) or not database:
            raise APIError(422, "'database' is required")
        if not isinstance(table, str) or not table:
            raise APIError(422, "'table' is required")
        self.store.table(database, table)
        return database, table

    @staticmethod
    def _schedule(load: BulkLoad, data: dict[str, Any]) -> None:
        cron = data.get("cron", load.cron)
        cron = cron or None
        tz_name = data.get("timezone", load.timezone) or "UTC"
        tz = zone(str(tz_name))
        if tz is None:
            raise APIError(422, f"Validation failed: Timezone is invalid: {tz_name}")
        if cron is not None:
            parsed = parse_cron(str(cron))
            if parsed is None or parsed.after(time.time(), tz) is None:
                raise APIError(422, f"Validation failed: Cron is invalid: {cron}")
        delay = data.get("delay", load.delay)
        if not isinstance(delay, int) or isinstance(delay, bool):
            raise APIError(422, f"Validation failed: Delay is not a number: {delay!r}")
        load.cron, load.timezone, load.delay = cron, str(tz_name), delay

    # -- handlers ----------------------------------------------------------------------------

    async def guess(self, request: web.Request) -> web.Response:
        """The configuration completed with a parser and its columns."""
        config = copy.deepcopy(_config(await _body(request)))
        section = config.get("in") if isinstance(config.get("in"), dict) else config
        assert isinstance(section, dict)
        parser = section.setdefault("parser", {})
        if isinstance(parser, dict):
            for key, value in _GUESSED_PARSER.items():
                parser.setdefault(key, copy.deepcopy(value))
        return json_response({"config": config})

    async def preview(self, request: web.Request) -> web.Response:
        """The columns and the records a run at this moment's hour would load."""
        config = _config(await _body(request))
        columns = _columns(config)
        at = int(time.time()) // 3600 * 3600
        schema = [
            {"index": i, "name": str(c["name"]), "type": str(c.get("type", "string"))}
            for i, c in enumerate(columns)
        ]
        return json_response({"schema": schema, "records": _records(config, columns, at)})

    async def list(self, request: web.Request) -> web.Response:
        return json_response([load.to_json() for load in self.loads.values()])

    async def create(self, request: web.Request) -> web.Response:
        data = await _body(request)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise APIError(422, "'name' is required")
        if name in self.loads:
            raise APIError(409, f"Bulk load session {name} already exists")
        database, table = self._target(data.get("database"), data.get("table"))
        load = BulkLoad(name=name, database=database, table=table, config=_config(data))
        self._schedule(load, data)
        time_column = data.get("time_column")
        load.time_column = time_column if isinstance(time_column, str) and time_column else None
        self.loads[name] = load
        return json_response(load.to_json())

    async def show(self, request: web.Request) -> web.Response:
        return json_response(self._load(request.match_info["name"]).to_json())

    async def update(self, request: web.Request) -> web.Response:
        """Change the settings given: ``name``, ``database``, ``table``, ``cron`` (``""``
        removes the schedule), ``timezone``, ``delay``, ``time_column``, ``config``,
        ``config_diff`` (the td CLI's ``connector:update`` options)."""
        old = request.match_info["name"]
        load = self._load(old)
        data = await _body(request)
        new = data.get("name", old)
        if not isinstance(new, str) or not new:
            raise APIError(422, "'name' must be a non-empty string")
        if new != old and new in self.loads:
            raise APIError(409, f"Bulk load session {new} already exists")
        updated = copy.copy(load)
        updated.database, updated.table = self._target(
            data.get("database", load.database), data.get("table", load.table)
        )
        self._schedule(updated, data)
        if "config" in data:
            updated.config = _config(data)
        if "config_diff" in data:
            diff = data["config_diff"]
            updated.config_diff = diff if isinstance(diff, dict) else None
        if "time_column" in data:
            updated.time_column = data["time_column"] or None
        updated.name = new
        del self.loads[old]
        self.loads[new] = updated
        if new != old:
            self._history[new] = self._history.pop(old, [])
        return json_response(updated.to_json())

    async def delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        load = self._load(name)
        del self.loads[name]
        self._history.pop(name, None)
        return json_response(load.to_json())

    async def history(self, request: web.Request) -> web.Response:
        """The load's jobs, newest first, shaped as samples/v3/bulk_loads_jobs.json."""
        name = request.match_info["name"]
        self._load(name)
        self.jobs.advance()
        return json_response([self._job_json(i) for i in reversed(self._history.get(name, []))])

    async def run(self, request: web.Request) -> web.Response:
        """Run the saved load now, as of ``scheduled_time`` (default now); ``{"job_id": int}``
        (samples/v3/bulk_loads_run.json)."""
        load = self._load(request.match_info["name"])
        data = await _body(request)
        at = _epoch(data.get("scheduled_time"), int(time.time()))
        domain_key = data.get("domain_key")
        job = self.issue(
            load.config,
            database=load.database,
            table=load.table,
            scheduled_time=at,
            domain_key=str(domain_key) if domain_key else None,
            time_column=load.time_column,
        )
        self._history.setdefault(load.name, []).append(job.id)
        return json_response({"job_id": job.id})

    def _job_json(self, job_id: int) -> dict[str, Any]:
        job = self.jobs.jobs[job_id]
        run = self._runs[job_id]
        started = job.status not in ("queued", "booting")
        db = self.store.databases.get(run.database)
        table = db.tables.get(run.table) if db is not None else None
        schema = [
            [str(c["name"]), _TD_TYPES.get(str(c.get("type")), "string"), ""] for c in run.columns
        ]
        return {
            "config": run.config,
            "job_id": job.id,
            "account_id": 1,
            "status": job.status,
            "records": run.records if job.status in FINISHED else None,
            "schema": schema,
            "database": {"id": db.id if db is not None else None, "name": run.database},
            "table": {"id": table.id if table is not None else None, "name": run.table},
            "priority": job.priority,
            "created_at": int(job.created),
            "updated_at": int(job.end if job.status in FINISHED else time.time()),
            "start_at": int(job.running_from) if started else None,
            "end_at": int(job.end) if job.status in FINISHED else None,
        }
