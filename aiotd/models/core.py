"""Models of the v3 REST API responses (reference/v3-api.md §1, §2).

One Struct per response shape; wrapper objects (``{"jobs": [...]}``) have their own model.
Top-level JSON arrays (``GET /v3/bulk_loads``, ``GET /v3/bulk_loads/{name}/jobs``) decode as
``list[BulkLoadSession]`` and ``list[BulkLoadJob]``.

Required fields (no default) are those every recorded body of the call carries
(samples/v3, td-client-go's schemas) and without which it is not the answer the call
promises: the id or name saying which record it is, the status a poll reads, the list a
listing wraps, the id TD assigns to what it created. A body without one is a DecodeError,
never a record with an empty id. Where the request already says such a field (the job id
polled, the table deleted), the resource decodes with ``relaxed`` and fills it from the
request, since td-client-python's hand-written bodies show answers without them.

Every other field has a default, as msgspec's schema-evolution guide advises for fields that
may be omitted: one omitted or null descriptive field must not fail a whole listing
(td-client-go's schemas, which refuse both, fail on such bodies: v3-api.md §7.5). Fields
td-client-go marks ``Optional`` (may be null) are ``... | None`` here.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec

from aiotd.errors import DecodeError, JobFailed
from aiotd.models._base import Id, Model, RunStamped, Stamped, Timestamp, parsed_time

__all__ = [
    "Account",
    "AccountResponse",
    "ApiKeyAdded",
    "ApiKeyList",
    "AuthenticatedUser",
    "BulkImport",
    "BulkImportList",
    "BulkImportParts",
    "BulkImportPerform",
    "BulkImportRef",
    "BulkLoadGuess",
    "BulkLoadJob",
    "BulkLoadPreview",
    "BulkLoadSession",
    "BulkLoadTarget",
    "Column",
    "Database",
    "DatabaseList",
    "DatabaseRef",
    "ImportResult",
    "IssuedJob",
    "Job",
    "JobDebug",
    "JobList",
    "JobState",
    "JobStatus",
    "JobStatusList",
    "KilledJob",
    "PreviewColumn",
    "Result",
    "ResultList",
    "ResultRef",
    "Schedule",
    "ScheduleHistory",
    "ScheduleList",
    "ScheduleRun",
    "ScheduleRunJob",
    "ScheduledJob",
    "ServerStatus",
    "Table",
    "TableList",
    "TableRef",
    "TableSwap",
    "User",
    "UserAdded",
    "UserList",
    "UserRef",
    "parse_columns",
    "parse_priority",
    "priority_name",
]

_S = TypeVar("_S", bound="_JobState")

_REDACTED: Final = "<redacted>"


# -- shared pieces -------------------------------------------------------------------------


class Column(msgspec.Struct, frozen=True, kw_only=True, array_like=True, gc=False):
    """One column of a table or result schema, from TD's ``[name, type(, alias)]`` arrays."""

    name: str
    type: str
    alias: str | None = None


_columns_decoder = msgspec.json.Decoder(list[Column])


def parse_columns(schema: str | None) -> list[Column]:
    """Decode a JSON-encoded ``[[name, type(, alias)], ...]`` string; ``None``/``""`` -> ``[]``.

    Table ``schema`` and job ``hive_result_schema`` arrive this way (v3-api.md §7.3).
    """
    if not schema:
        return []
    try:
        return _columns_decoder.decode(schema)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"bad column schema: {exc}", snippet=schema[:80]) from exc


_PRIORITY_BY_NAME: Final[dict[str, int]] = {
    "VERY LOW": -2,
    "LOW": -1,
    "NORM": 0,
    "NORMAL": 0,
    "HIGH": 1,
    "VERY HIGH": 2,
}
_PRIORITY_NAMES: Final[dict[int, str]] = {
    -2: "VERY LOW",
    -1: "LOW",
    0: "NORMAL",
    1: "HIGH",
    2: "VERY HIGH",
}


def parse_priority(value: int | str) -> int:
    """The job priority -2..2 for an int or a name (``"VERY LOW"``, ``"very_low"``, ``"NORM"``...).

    Names are matched case-insensitively with ``-``/``_`` read as a space, as td-client-python
    does (v3-api.md §2 "Issue parameters"). Raises ``ValueError`` for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a job priority: {value!r}")
    if isinstance(value, int):
        if value in _PRIORITY_NAMES:
            return value
        raise ValueError(f"job priority must be -2..2, got {value}")
    key = " ".join(value.upper().replace("-", " ").replace("_", " ").split())
    if key in _PRIORITY_BY_NAME:
        return _PRIORITY_BY_NAME[key]
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"not a job priority: {value!r}") from None
    return parse_priority(number)


def priority_name(value: int) -> str:
    """The display name of a priority -2..2 (``"VERY LOW"`` ... ``"VERY HIGH"``)."""
    try:
        return _PRIORITY_NAMES[value]
    except KeyError:
        raise ValueError(f"job priority must be -2..2, got {value}") from None


# -- server, account -----------------------------------------------------------------------


class ServerStatus(Model, frozen=True, kw_only=True):
    """``GET /v3/system/server_status``: ``"ok"`` when healthy (a Ruby spec uses ``"OK"``)."""

    status: str

    @property
    def ok(self) -> bool:
        """Whether the server says it is up."""
        return self.status.lower() == "ok"


class Account(Model, frozen=True, kw_only=True):
    """The account as ``GET /v3/account/show`` describes it."""

    id: Id
    plan: int | None = None
    storage_size: int | None = None
    guaranteed_cores: int | None = None
    maximum_cores: int | None = None
    presto_plan: float | None = None
    created_at: Timestamp = None

    created_at_dt = parsed_time()


class AccountResponse(Model, frozen=True, kw_only=True):
    """``GET /v3/account/show``: ``{"account": {...}}``."""

    account: Account


# -- databases and tables ------------------------------------------------------------------


class Database(Stamped, frozen=True, kw_only=True):
    """One database of ``GET /v3/database/list``."""

    name: str
    # A string where present (Go test, official docs); the list usually omits it (§1.3).
    id: Id | None = None
    count: int = 0
    permission: str = ""
    delete_protected: bool = False
    organization: str | None = None


class DatabaseList(Model, frozen=True, kw_only=True):
    """``GET /v3/database/list``."""

    databases: list[Database]


class DatabaseRef(Model, frozen=True, kw_only=True):
    """``POST /v3/database/create|delete/{db}``: ``{"database": name}``."""

    database: str


class Table(Stamped, frozen=True, kw_only=True):
    """A table, as in ``GET /v3/table/list/{db}`` and ``GET /v3/table/show/{db}/{table}``.

    ``type``, ``count`` and ``schema`` may be null (td-client-go api_table.go, both table
    schemas: ``Optional``); ``type`` is ``"log"`` (legacy ``"item"``) when TD says.
    """

    id: Id
    name: str
    type: str | None = None
    count: int | None = None
    estimated_storage_size: int = 0
    delete_protected: bool = False
    include_v: bool = True
    expire_days: int | None = None
    # JSON text ``[[name, type(, alias)], ...]``; see ``columns`` (v3-api.md §1.4).
    schema: str | None = None
    primary_key: str | None = None
    primary_key_type: str | None = None
    counter_updated_at: Timestamp = None
    last_log_timestamp: Timestamp = None

    counter_updated_at_dt = parsed_time()
    last_log_timestamp_dt = parsed_time()

    @property
    def columns(self) -> list[Column]:
        """The decoded ``schema``; empty when there is none."""
        return parse_columns(self.schema)


class TableList(Model, frozen=True, kw_only=True):
    """``GET /v3/table/list/{db}``."""

    database: str = ""
    tables: list[Table]


class TableRef(Model, frozen=True, kw_only=True):
    """The answer of table create, delete, update, update-schema and change_database.

    ``type`` may be absent or null (td-client-go api_table.go ``deleteTableSchema``).
    """

    database: str
    table: str
    type: str | None = None


class TableSwap(Model, frozen=True, kw_only=True):
    """``POST /v3/table/swap/{db}/{table1}/{table2}``."""

    database: str
    table1: str
    table2: str


class ImportResult(Model, frozen=True, kw_only=True):
    """``PUT /v3/table/import[_with_id]/...``."""

    database: str = ""
    table: str = ""
    md5_hex: str = ""
    # A number, but a td-client-python fixture has the string "3.14" (§1.5).
    elapsed_time: float | str | None = None
    unique_id: str | None = None

    @property
    def elapsed_seconds(self) -> float | None:
        """``elapsed_time`` as a float, whichever form it arrived in."""
        if self.elapsed_time is None or self.elapsed_time == "":
            return None
        return float(self.elapsed_time)


# -- jobs ----------------------------------------------------------------------------------


class JobState:
    """Job status values (v3-api.md §2); TD may send others, so statuses stay plain ``str``."""

    QUEUED: Final = "queued"
    BOOTING: Final = "booting"
    RUNNING: Final = "running"
    SUCCESS: Final = "success"
    ERROR: Final = "error"
    KILLED: Final = "killed"
    FINISHED: Final = frozenset({SUCCESS, ERROR, KILLED})
    FAILED: Final = frozenset({ERROR, KILLED})


class _JobState(RunStamped, frozen=True, kw_only=True):
    """A job id and status with the helpers shared by ``Job`` and ``JobStatus``."""

    job_id: Id
    # Lower-case on the wire; a td-client-python fixture has "RUNNING" (§7.17).
    status: str

    @property
    def finished(self) -> bool:
        """Success, error or killed: the job will not change any more."""
        return self.status.lower() in JobState.FINISHED

    @property
    def success(self) -> bool:
        return self.status.lower() == JobState.SUCCESS

    @property
    def error(self) -> bool:
        return self.status.lower() == JobState.ERROR

    @property
    def killed(self) -> bool:
        return self.status.lower() == JobState.KILLED

    @property
    def failed(self) -> bool:
        """Error or killed."""
        return self.status.lower() in JobState.FAILED

    @property
    def running(self) -> bool:
        return self.status.lower() == JobState.RUNNING

    @property
    def queued(self) -> bool:
        """Queued or booting: accepted but not started."""
        return self.status.lower() in (JobState.QUEUED, JobState.BOOTING)

    def raise_for_status(self: _S) -> _S:
        """Raise ``JobFailed(self)`` if the job ended in error or killed; else return it."""
        if self.failed:
            raise JobFailed(self)
        return self


class JobDebug(Model, frozen=True, kw_only=True):
    """``debug`` of ``job/show``: the engine log and the error output."""

    cmdout: str | None = None
    stderr: str | None = None


class Job(_JobState, frozen=True, kw_only=True):
    """A job as in ``job/list`` items and ``job/show`` (v3-api.md §2, job object J).

    ``type`` may be null (td-client-go api_job.go: ``Optional`` in the list and show
    schemas), ``result`` too in schedule history items (api_schedule.go), where ``duration``
    is a float (``Optional{0., 0.}``).
    """

    type: str | None = None
    # A JSON object for bulkload (embulk) jobs (§7.3).
    query: str | dict[str, Any] | None = None
    database: str = ""
    user_name: str = ""
    url: str = ""
    priority: int = 0
    retry_limit: int = 0
    # Seconds: an int in job/list and job/show bodies, a float in schedule history.
    duration: int | float | None = None
    cpu_time: float | None = None
    result_size: int | None = None
    num_records: int | None = None
    # The result output URL; "" or None when the job writes none.
    result: str | None = None
    # JSON text ``[[name, type], ...]``, or null or ""; see ``result_columns``.
    hive_result_schema: str | None = None
    organization: str | None = None
    engine_version: str | None = None
    linked_result_export_job_id: Id | None = None
    result_export_target_job_id: Id | None = None
    debug: JobDebug | None = None

    @property
    def result_columns(self) -> list[Column]:
        """The decoded ``hive_result_schema``; empty when there is none."""
        return parse_columns(self.hive_result_schema)


class JobList(Model, frozen=True, kw_only=True):
    """``GET /v3/job/list``; ``from``/``to`` are null unless asked for (§1.6)."""

    count: int = 0
    from_: int | None = msgspec.field(default=None, name="from")
    to: int | None = None
    jobs: list[Job]


class JobStatus(_JobState, frozen=True, kw_only=True):
    """``GET /v3/job/status/{id}`` (and ``status_by_domain_key``): the light poll shape."""

    duration: int | float | None = None
    cpu_time: float | None = None
    result_size: int | None = None
    num_records: int | None = None


class JobStatusList(Model, frozen=True, kw_only=True):
    """``GET /v3/job/list`` read as light ``JobStatus`` records: what a listing of unfinished
    work needs, without decoding every job's query and result settings."""

    count: int = 0
    jobs: list[JobStatus]


class IssuedJob(Model, frozen=True, kw_only=True):
    """A job TD created: job issue, bulkload issue, export run, result export, bulk load run.

    The wire shape is ``{"job", "job_id", "database"}`` or just ``{"job_id"}`` (a number for
    bulkload, §7.2). ``existing`` is set by the client when TD answered 409 with the job that
    already holds the ``domain_key``.
    """

    job_id: Id
    database: str = ""
    existing: bool = False


class KilledJob(Model, frozen=True, kw_only=True):
    """``POST /v3/job/kill/{id}``; ``former_status`` says whether it had already finished.

    td-client-python's kill fixture is ``{"former_status": ...}`` alone: ``td.jobs.kill``
    then takes ``job_id`` from the request.
    """

    job_id: Id
    former_status: str


# -- schedules (saved queries) -------------------------------------------------------------


class Schedule(Model, frozen=True, kw_only=True):
    """A saved query: schedule create/update/delete answers and ``schedule/list`` items.

    Each answer carries a subset of these keys (v3-api.md §1.8); absent ones keep defaults.
    ``result`` may be null (td-client-go api_schedule.go: ``Optional``).
    """

    name: str
    id: Id | None = None
    # null for saved queries that never run by themselves.
    cron: str | None = None
    timezone: str = ""
    delay: int = 0
    type: str = ""
    query: str | None = None
    database: str | None = None
    user_name: str = ""
    priority: int = 0
    retry_limit: int = 0
    # A URL, "" or None for none, or JSON-encoded connection settings (§7.3).
    result: str | None = None
    engine_version: str | None = None
    description: str | None = None
    executing_user_id: Id | None = None
    created_at: Timestamp = None
    start: Timestamp = None
    next_time: Timestamp = None

    created_at_dt = parsed_time()
    start_dt = parsed_time()
    next_time_dt = parsed_time()


class ScheduleList(Model, frozen=True, kw_only=True):
    """``GET /v3/schedule/list``."""

    schedules: list[Schedule]


class ScheduledJob(Job, frozen=True, kw_only=True):
    """A ``schedule/history`` item: a job plus the time it was scheduled for ("" if none)."""

    scheduled_at: Timestamp = None

    scheduled_at_dt = parsed_time()


class ScheduleHistory(Model, frozen=True, kw_only=True):
    """``GET /v3/schedule/history/{name}``."""

    history: list[ScheduledJob]
    count: int = 0
    from_: int | None = msgspec.field(default=None, name="from")
    to: int | None = None


class ScheduleRunJob(Model, frozen=True, kw_only=True):
    """One job started by ``schedule/run``; ``job_id`` is a JSON number there (§7.2)."""

    job_id: Id
    type: str = ""
    scheduled_at: Timestamp = None

    scheduled_at_dt = parsed_time()


class ScheduleRun(Model, frozen=True, kw_only=True):
    """``POST /v3/schedule/run/{name}/{time}``.

    ``existing`` is set by the client when TD answered 409 for a reused ``domain_key``:
    ``jobs`` then holds the one job TD named.
    """

    jobs: list[ScheduleRunJob]
    existing: bool = False


# -- results -------------------------------------------------------------------------------


class Result(Model, frozen=True, kw_only=True):
    """A saved result output of ``GET /v3/result/list``."""

    name: str
    url: str = ""
    organization: str | None = None


class ResultList(Model, frozen=True, kw_only=True):
    """``GET /v3/result/list``."""

    results: list[Result]


class ResultRef(Model, frozen=True, kw_only=True):
    """``POST /v3/result/create|delete/{name}``: ``{"result"}`` or ``{"name", "result"}``."""

    name: str = ""
    result: str


# -- users and API keys --------------------------------------------------------------------


class User(Stamped, frozen=True, kw_only=True):
    """A user of ``GET /v3/user/list``.

    ``id`` is None when absent: td-client-python's list fixture has only names and emails.
    """

    id: Id | None = None
    name: str
    email: str = ""
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    gravatar_url: str | None = None
    administrator: bool = False
    account_owner: bool = False
    organization: str | None = None
    roles: list[Any] = msgspec.field(default_factory=list)


class UserList(Model, frozen=True, kw_only=True):
    """``GET /v3/user/list``."""

    users: list[User]


class UserAdded(Model, frozen=True, kw_only=True):
    """``POST /v3/user/add/{name}``."""

    name: str


class UserRef(Model, frozen=True, kw_only=True):
    """``POST /v3/user/remove/{user}`` and ``POST /v3/user/apikey/remove/{user}``."""

    user: str


class AuthenticatedUser(Model, frozen=True, kw_only=True):
    """``POST /v3/user/authenticate``; the key is kept out of ``repr``."""

    name: str
    apikey: str

    def __repr__(self) -> str:
        return f"AuthenticatedUser(name={self.name!r}, apikey={_REDACTED!r})"


class ApiKeyList(Model, frozen=True, kw_only=True):
    """``GET /v3/user/apikey/list/{user}``; the keys are kept out of ``repr``."""

    apikeys: list[str]

    def __repr__(self) -> str:
        return f"ApiKeyList(apikeys=[{len(self.apikeys)} keys])"


class ApiKeyAdded(Model, frozen=True, kw_only=True):
    """``POST /v3/user/apikey/add/{user}``; the key is kept out of ``repr``."""

    apikey: str

    def __repr__(self) -> str:
        return f"ApiKeyAdded(apikey={_REDACTED!r})"


# -- bulk import sessions ------------------------------------------------------------------


class BulkImport(Model, frozen=True, kw_only=True):
    """A bulk import session (``show`` and ``list`` items; v3-api.md §1.12).

    ``status``: uploading, performing, ready, committing, committed; it may be null
    (td-client-go api_bulk_import.go: ``Optional`` in the show and list schemas).
    """

    name: str
    status: str | None = None
    database: str | None = None
    table: str | None = None
    job_id: Id | None = None
    valid_records: int | None = None
    error_records: int | None = None
    valid_parts: int | None = None
    error_parts: int | None = None
    upload_frozen: bool = False


class BulkImportList(Model, frozen=True, kw_only=True):
    """``GET /v3/bulk_import/list``."""

    bulk_imports: list[BulkImport]


class BulkImportRef(Model, frozen=True, kw_only=True):
    """Create, delete, upload/delete part, freeze, unfreeze and commit answers.

    ``job_id`` is set sometimes by commit (a Ruby spec: ``{"job_id": 12345}``).
    """

    name: str
    bulk_import: str
    job_id: Id | None = None


class BulkImportPerform(BulkImportRef, frozen=True, kw_only=True):
    """``POST /v3/bulk_import/perform/{name}``: the session and the job it started.

    ``job_id`` is a JSON number there (§7.2) and required (td-client-go api_bulk_import.go
    ``performBulkImportResultSchema``): without it the job could not be followed.
    """

    job_id: Id


class BulkImportParts(Model, frozen=True, kw_only=True):
    """``GET /v3/bulk_import/list_parts/{name}``."""

    name: str = ""
    bulk_import: str = ""
    parts: list[str]


# -- data connector bulk loads -------------------------------------------------------------


class BulkLoadGuess(Model, frozen=True, kw_only=True):
    """``POST /v3/bulk_loads/guess``: the completed load configuration."""

    config: dict[str, Any]


class PreviewColumn(Model, frozen=True, kw_only=True):
    """A column of ``bulk_loads/preview``."""

    index: int
    name: str
    type: str


class BulkLoadPreview(Model, frozen=True, kw_only=True):
    """``POST /v3/bulk_loads/preview``: the guessed columns and a few parsed records."""

    schema: list[PreviewColumn]
    records: list[list[Any]]


class BulkLoadSession(Model, frozen=True, kw_only=True):
    """A saved bulk load: create, show, update, delete answers and ``GET /v3/bulk_loads`` items."""

    name: str
    cron: str | None = None
    timezone: str = ""
    delay: int = 0
    time_column: str | None = None
    database: str | None = None
    table: str | None = None
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class BulkLoadTarget(Model, frozen=True, kw_only=True):
    """``database``/``table`` of a bulk load job, sent as ``{"id", "name"}`` objects.

    ``id`` is None when absent or null (a load whose database was deleted since).
    """

    id: Id | None = None
    name: str


class BulkLoadJob(RunStamped, frozen=True, kw_only=True):
    """An item of ``GET /v3/bulk_loads/{name}/jobs``; timestamps are epoch seconds there."""

    job_id: Id
    account_id: Id | None = None
    status: str
    records: int | None = None
    # Already decoded here: ``[[name, type, alias], ...]``.
    schema: list[Column] = msgspec.field(default_factory=list)
    database: BulkLoadTarget | None = None
    table: BulkLoadTarget | None = None
    config: dict[str, Any] = msgspec.field(default_factory=dict)
