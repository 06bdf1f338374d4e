"""Models of the Workflow (Digdag) API responses (reference/workflow-api.md §3).

The wire uses camelCase; attributes are snake_case (``task.full_name``). Every collection is
wrapped in an object, e.g. ``{"attempts": [...]}``, and has its own ``...List`` model.

Which fields are required follows Digdag's REST models (digdag-client ``api/Rest*.java``,
``@Value.Immutable``): an attribute Digdag always writes is required here, so a body without
it is a DecodeError rather than an empty id. Only what a body may lack has a default:
``Optional<>`` attributes (sent as null, §1 "Absent values", and read as absent when
missing by Digdag's own client), ``@Value.Default`` ones that older servers omit, and TD's
additions (``metadata``, ``poolId``, ``status`` on a session's last attempt).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from aiotd.errors import AttemptFailed
from aiotd.models._base import Id, Model, parsed_time

__all__ = [
    "Attempt",
    "AttemptList",
    "AttemptState",
    "LastAttempt",
    "LogFileHandle",
    "LogFileList",
    "Project",
    "ProjectList",
    "ProjectMetadata",
    "ProjectRef",
    "Revision",
    "RevisionList",
    "ScheduleAttemptCollection",
    "Secret",
    "SecretKey",
    "SecretList",
    "Session",
    "SessionList",
    "SessionTime",
    "Task",
    "TaskList",
    "TaskState",
    "Version",
    "VersionCheck",
    "WorkflowDefinition",
    "WorkflowList",
    "WorkflowRef",
    "WorkflowSchedule",
    "WorkflowScheduleList",
    "WorkflowScheduleSummary",
]


class WorkflowModel(Model, frozen=True, kw_only=True, rename="camel"):
    """Base of the workflow models: camelCase on the wire, snake_case attributes."""


class ProjectRef(WorkflowModel, frozen=True, kw_only=True):
    """``IdAndName`` of a project (both required)."""

    id: Id
    name: str


class WorkflowRef(WorkflowModel, frozen=True, kw_only=True):
    """``NameOptionalId`` of a workflow: ``id`` is ``Optional<Id>``, null for one not stored."""

    name: str
    id: Id | None = None


# -- projects, revisions, workflows --------------------------------------------------------


class ProjectMetadata(WorkflowModel, frozen=True, kw_only=True):
    """A TD project metadata entry; keys can repeat."""

    key: str
    value: str


class Project(WorkflowModel, frozen=True, kw_only=True):
    """RestProject; ``updated_at`` is the latest revision's creation time."""

    id: Id
    name: str
    revision: str
    archive_type: str
    created_at: str
    updated_at: str
    # Base64 of the MD5 bytes, or null.
    archive_md5: str | None = None
    deleted_at: str | None = None
    # TD only; absent from OSS digdag.
    metadata: list[ProjectMetadata] = msgspec.field(default_factory=list)

    created_at_dt = parsed_time()
    updated_at_dt = parsed_time()
    deleted_at_dt = parsed_time()


class ProjectList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/projects``."""

    projects: list[Project]


class Revision(WorkflowModel, frozen=True, kw_only=True):
    """RestRevision; ``user_info`` is TD's ``{"td": {"user": {...}}}``, missing on old servers."""

    revision: str
    archive_type: str
    created_at: str
    archive_md5: str | None = None
    user_info: dict[str, Any] | None = None

    created_at_dt = parsed_time()


class RevisionList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/projects/{id}/revisions``."""

    revisions: list[Revision]


class WorkflowDefinition(WorkflowModel, frozen=True, kw_only=True):
    """RestWorkflowDefinition; ``config`` is the workflow body, ``schedule:`` included.

    Its id changes with every pushed revision (§2.2).
    """

    id: Id
    name: str
    project: ProjectRef
    revision: str
    timezone: str
    config: dict[str, Any]


class WorkflowList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/workflows`` and ``GET /api/projects/{id}/workflows``."""

    workflows: list[WorkflowDefinition]


class SessionTime(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/workflows/{id}/truncated_session_time``; the time is in the workflow's zone."""

    project: ProjectRef
    revision: str
    session_time: str
    timezone: str

    session_time_dt = parsed_time()


# -- attempts and sessions -----------------------------------------------------------------


class AttemptState:
    """Attempt status values: OSS derives four, TD adds queued, blocked, canceling (§3.1)."""

    BLOCKED: Final = "blocked"
    QUEUED: Final = "queued"
    RUNNING: Final = "running"
    CANCELING: Final = "canceling"
    SUCCESS: Final = "success"
    ERROR: Final = "error"
    KILLED: Final = "killed"
    # The values only the flags decide: finished ones, and a kill under way.
    FROM_FLAGS: Final = frozenset({SUCCESS, ERROR, KILLED, CANCELING})


class _AttemptFlags(WorkflowModel, frozen=True, kw_only=True):
    """The flags shared by attempts and a session's last attempt, and the status they imply."""

    id: Id
    done: bool
    success: bool
    cancel_requested: bool
    params: dict[str, Any]
    created_at: str
    retry_attempt_name: str | None = None
    finished_at: str | None = None
    # Sent by OSS >= 0.10 and by TD (not on OSS's lastAttempt); read through ``status``.
    status_: str | None = msgspec.field(default=None, name="status")
    # TD only.
    pool_id: Id | None = None

    created_at_dt = parsed_time()
    finished_at_dt = parsed_time()

    @property
    def status(self) -> str:
        """The status, never at odds with the flags (§3.1).

        ``done`` decides whether it is a finished one: ``success``, else ``killed`` after a
        kill request, else ``error``, as OSS derives them. Not done, it is ``canceling``
        once a kill is requested, else the server's own value (``running``, TD's
        ``queued``/``blocked``, values TD adds) unless that one names a finished state or a
        kill the flags do not show, then ``running``.
        """
        if self.done:
            if self.success:
                return AttemptState.SUCCESS
            return AttemptState.KILLED if self.cancel_requested else AttemptState.ERROR
        if self.cancel_requested:
            return AttemptState.CANCELING
        sent = self.status_
        if sent and sent not in AttemptState.FROM_FLAGS:
            return sent
        return AttemptState.RUNNING

    @property
    def finished(self) -> bool:
        """Same as ``done``: the only reliable "finished" signal."""
        return self.done

    @property
    def failed(self) -> bool:
        """Done without success (error or killed)."""
        return self.done and not self.success

    @property
    def killed(self) -> bool:
        """Done without success after a kill request."""
        return self.done and not self.success and self.cancel_requested


class LastAttempt(_AttemptFlags, frozen=True, kw_only=True):
    """A session's ``lastAttempt`` (RestSession.Attempt): no project, workflow or index."""


class Attempt(_AttemptFlags, frozen=True, kw_only=True):
    """RestSessionAttempt."""

    project: ProjectRef
    workflow: WorkflowRef
    session_id: Id
    session_uuid: str
    session_time: str
    # 1, 2, 3... within the session; 0 from old servers and dry-run backfills.
    index: int = 0
    # Not on the wire: set by ``attempts.start`` when TD answered 409 with this attempt, the
    # one already started for that session (reference §2.4).
    existing: bool = False
    # Not on the wire: the tasks in error of a failed attempt as the waiters return it
    # (``attempts.wait``, ``wait_all``, ``as_completed``); empty from ``get`` and listings.
    failed_tasks: list[Task] = msgspec.field(default_factory=list)

    session_time_dt = parsed_time()

    def raise_for_status(self) -> Attempt:
        """Raise ``AttemptFailed`` naming ``failed_tasks`` if done without success; else
        return the attempt."""
        if self.failed:
            raise AttemptFailed(self, self.failed_tasks)
        return self


class AttemptList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/attempts``, ``/api/sessions/{id}/attempts``, ``/api/attempts/{id}/retries``."""

    attempts: list[Attempt]


class Session(WorkflowModel, frozen=True, kw_only=True):
    """RestSession; ``last_attempt`` is ``Optional`` in the model but set in practice."""

    id: Id
    project: ProjectRef
    workflow: WorkflowRef
    session_uuid: str
    session_time: str
    last_attempt: LastAttempt | None = None

    session_time_dt = parsed_time()


class SessionList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/sessions`` and ``GET /api/projects/{id}/sessions``."""

    sessions: list[Session]


# -- tasks ---------------------------------------------------------------------------------


class TaskState:
    """Task states, lower-case ``TaskStateCode`` (§3.2); there is no ``failed`` state."""

    BLOCKED: Final = "blocked"
    READY: Final = "ready"
    RETRY_WAITING: Final = "retry_waiting"
    GROUP_RETRY_WAITING: Final = "group_retry_waiting"
    RUNNING: Final = "running"
    PLANNED: Final = "planned"
    GROUP_ERROR: Final = "group_error"
    SUCCESS: Final = "success"
    ERROR: Final = "error"
    CANCELED: Final = "canceled"
    DONE: Final = frozenset({SUCCESS, GROUP_ERROR, ERROR, CANCELED})
    ERRORS: Final = frozenset({ERROR, GROUP_ERROR})


class Task(WorkflowModel, frozen=True, kw_only=True):
    """RestTask: one task of an attempt; the root task is ``+<workflow>``."""

    id: Id
    full_name: str
    config: dict[str, Any]
    # Ids of the sibling tasks this one waits for.
    upstreams: list[str]
    # The wire key really is ``isGroup`` (not ``group`` as the swagger says).
    is_group: bool
    state: str
    export_params: dict[str, Any]
    store_params: dict[str, Any]
    state_params: dict[str, Any]
    # ``{}``, or ``{"message": ..., "stacktrace": ...}``.
    error: dict[str, Any]
    updated_at: str
    parent_id: Id | None = None
    # ``@Value.Default`` false: servers before 0.9.20 do not send it.
    cancel_requested: bool = False
    retry_at: str | None = None
    started_at: str | None = None

    updated_at_dt = parsed_time()
    retry_at_dt = parsed_time()
    started_at_dt = parsed_time()

    @property
    def done(self) -> bool:
        """The task reached success, error, group_error or canceled."""
        return self.state in TaskState.DONE

    @property
    def failed(self) -> bool:
        """The task is in error or group_error."""
        return self.state in TaskState.ERRORS

    @property
    def error_message(self) -> str | None:
        """The error's ``message``, if the task has one."""
        message = self.error.get("message")
        return None if message is None else str(message)


class TaskList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/attempts/{id}/tasks``: every task, root first."""

    tasks: list[Task]


# -- schedules -----------------------------------------------------------------------------


class WorkflowSchedule(WorkflowModel, frozen=True, kw_only=True):
    """RestSchedule; ``next_schedule_time`` is in the workflow's zone, the others UTC."""

    id: Id
    project: ProjectRef
    workflow: WorkflowRef
    next_run_time: str
    next_schedule_time: str
    disabled_at: str | None = None

    next_run_time_dt = parsed_time()
    next_schedule_time_dt = parsed_time()
    disabled_at_dt = parsed_time()


class WorkflowScheduleList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/schedules`` and ``GET /api/projects/{id}/schedules``."""

    schedules: list[WorkflowSchedule]


class WorkflowScheduleSummary(WorkflowSchedule, frozen=True, kw_only=True):
    """RestScheduleSummary, the answer of skip, enable and disable.

    OSS fills ``updated_at`` from ``created_at`` (§3 "Schedules").
    """

    created_at: str
    updated_at: str

    created_at_dt = parsed_time()
    updated_at_dt = parsed_time()


class ScheduleAttemptCollection(WorkflowModel, frozen=True, kw_only=True):
    """``POST /api/schedules/{id}/backfill``; a dry run returns dummies with id ``"0"``."""

    id: Id
    project: ProjectRef
    workflow: WorkflowRef
    attempts: list[Attempt]


# -- logs, secrets, version ----------------------------------------------------------------


class LogFileHandle(WorkflowModel, frozen=True, kw_only=True):
    """RestLogFileHandle; ``direct`` is a pre-signed URL to fetch without TD credentials."""

    file_name: str
    file_size: int
    task_name: str
    file_time: str
    agent_id: str
    direct: str | None = None

    file_time_dt = parsed_time()


class LogFileList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/logs/{attempt_id}/files``."""

    files: list[LogFileHandle]


class Secret(WorkflowModel, frozen=True, kw_only=True):
    """RestSecret: the answer of setting or deleting a secret."""

    key: str
    project: ProjectRef


class SecretKey(WorkflowModel, frozen=True, kw_only=True):
    """RestSecretMetadata: one key of a project's secret list."""

    key: str


class SecretList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/projects/{id}/secrets``: keys only, never values."""

    secrets: list[SecretKey]


class Version(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/version``."""

    version: str


class VersionCheck(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/version/check``."""

    server_version: str
    upgrade_recommended: bool
    api_compatible: bool
