"""Models of the Workflow (Digdag) API responses (reference/workflow-api.md §3).

The wire uses camelCase; attributes are snake_case (``task.full_name``). Absent optional
values arrive as explicit nulls (§1 "Absent values"). Every collection is wrapped in an
object, e.g. ``{"attempts": [...]}``, and has its own ``...List`` model.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from aiotd.errors import AttemptFailed
from aiotd.models._base import Id, Model, Timestamp, parsed_time

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
    """``IdAndName`` of a project."""

    id: Id = ""
    name: str = ""


class WorkflowRef(WorkflowModel, frozen=True, kw_only=True):
    """``NameOptionalId`` of a workflow; ``id`` may be null (§3)."""

    name: str = ""
    id: Id | None = None


# -- projects, revisions, workflows --------------------------------------------------------


class ProjectMetadata(WorkflowModel, frozen=True, kw_only=True):
    """A TD project metadata entry; keys can repeat."""

    key: str = ""
    value: str = ""


class Project(WorkflowModel, frozen=True, kw_only=True):
    """RestProject; ``updated_at`` is the latest revision's creation time."""

    id: Id = ""
    name: str = ""
    revision: str = ""
    archive_type: str = ""
    # Base64 of the MD5 bytes, or null.
    archive_md5: str | None = None
    # TD only; absent from OSS digdag.
    metadata: list[ProjectMetadata] = msgspec.field(default_factory=list)
    created_at: Timestamp = None
    updated_at: Timestamp = None
    deleted_at: Timestamp = None

    created_at_dt = parsed_time("created_at")
    updated_at_dt = parsed_time("updated_at")
    deleted_at_dt = parsed_time("deleted_at")


class ProjectList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/projects``."""

    projects: list[Project] = msgspec.field(default_factory=list)


class Revision(WorkflowModel, frozen=True, kw_only=True):
    """RestRevision; ``user_info`` is TD's ``{"td": {"user": {...}}}`` and may be missing."""

    revision: str = ""
    archive_type: str = ""
    archive_md5: str | None = None
    user_info: dict[str, Any] | None = None
    created_at: Timestamp = None

    created_at_dt = parsed_time("created_at")


class RevisionList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/projects/{id}/revisions``."""

    revisions: list[Revision] = msgspec.field(default_factory=list)


class WorkflowDefinition(WorkflowModel, frozen=True, kw_only=True):
    """RestWorkflowDefinition; ``config`` is the workflow body, ``schedule:`` included.

    Its id changes with every pushed revision (§2.2).
    """

    id: Id = ""
    name: str = ""
    project: ProjectRef = msgspec.field(default_factory=ProjectRef)
    revision: str = ""
    timezone: str = ""
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class WorkflowList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/workflows`` and ``GET /api/projects/{id}/workflows``."""

    workflows: list[WorkflowDefinition] = msgspec.field(default_factory=list)


class SessionTime(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/workflows/{id}/truncated_session_time``; the time is in the workflow's zone."""

    project: ProjectRef = msgspec.field(default_factory=ProjectRef)
    revision: str = ""
    session_time: Timestamp = None
    timezone: str = ""

    session_time_dt = parsed_time("session_time")


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


class _AttemptFlags(WorkflowModel, frozen=True, kw_only=True):
    """The flags shared by attempts and a session's last attempt, and the status they imply."""

    id: Id = ""
    retry_attempt_name: str | None = None
    done: bool = False
    success: bool = False
    cancel_requested: bool = False
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    # Sent by OSS >= 0.10 and by TD; see ``status``.
    status_: str | None = msgspec.field(default=None, name="status")
    # TD only.
    pool_id: Id | None = None
    created_at: Timestamp = None
    finished_at: Timestamp = None

    created_at_dt = parsed_time("created_at")
    finished_at_dt = parsed_time("finished_at")

    @property
    def status(self) -> str:
        """The server's status, or when it sent none the one OSS derives from the flags (§3.1)."""
        if self.status_:
            return self.status_
        if self.success:
            return AttemptState.SUCCESS
        if self.done:
            return AttemptState.KILLED if self.cancel_requested else AttemptState.ERROR
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
    """A session's ``lastAttempt``: an attempt without project, workflow and index."""


class Attempt(_AttemptFlags, frozen=True, kw_only=True):
    """RestSessionAttempt."""

    # 1, 2, 3... within the session; 0 from old servers and dry-run backfills.
    index: int = 0
    project: ProjectRef = msgspec.field(default_factory=ProjectRef)
    workflow: WorkflowRef = msgspec.field(default_factory=WorkflowRef)
    session_id: Id = ""
    session_uuid: str = ""
    session_time: Timestamp = None
    # Not on the wire: set by ``attempts.start`` when TD answered 409 with this attempt, the
    # one already started for that session (reference §2.4).
    existing: bool = False

    session_time_dt = parsed_time("session_time")

    def raise_for_status(self, failed_tasks: list[Task] | None = None) -> Attempt:
        """Raise ``AttemptFailed(self, failed_tasks)`` if done without success; else return it."""
        if self.failed:
            raise AttemptFailed(self, failed_tasks)
        return self


class AttemptList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/attempts``, ``/api/sessions/{id}/attempts``, ``/api/attempts/{id}/retries``."""

    attempts: list[Attempt] = msgspec.field(default_factory=list)


class Session(WorkflowModel, frozen=True, kw_only=True):
    """RestSession; ``last_attempt`` is null in the model but set in practice."""

    id: Id = ""
    project: ProjectRef = msgspec.field(default_factory=ProjectRef)
    workflow: WorkflowRef = msgspec.field(default_factory=WorkflowRef)
    session_uuid: str = ""
    session_time: Timestamp = None
    last_attempt: LastAttempt | None = None

    session_time_dt = parsed_time("session_time")


class SessionList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/sessions`` and ``GET /api/projects/{id}/sessions``."""

    sessions: list[Session] = msgspec.field(default_factory=list)


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

    id: Id = ""
    full_name: str = ""
    parent_id: Id | None = None
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    # Ids of the sibling tasks this one waits for.
    upstreams: list[str] = msgspec.field(default_factory=list)
    # The wire key really is ``isGroup`` (not ``group`` as the swagger says).
    is_group: bool = False
    state: str = ""
    cancel_requested: bool = False
    export_params: dict[str, Any] = msgspec.field(default_factory=dict)
    store_params: dict[str, Any] = msgspec.field(default_factory=dict)
    state_params: dict[str, Any] = msgspec.field(default_factory=dict)
    # ``{}``, or ``{"message": ..., "stacktrace": ...}``.
    error: dict[str, Any] = msgspec.field(default_factory=dict)
    updated_at: Timestamp = None
    retry_at: Timestamp = None
    started_at: Timestamp = None

    updated_at_dt = parsed_time("updated_at")
    retry_at_dt = parsed_time("retry_at")
    started_at_dt = parsed_time("started_at")

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

    tasks: list[Task] = msgspec.field(default_factory=list)


# -- schedules -----------------------------------------------------------------------------


class WorkflowSchedule(WorkflowModel, frozen=True, kw_only=True):
    """RestSchedule; ``next_schedule_time`` is in the workflow's zone, the others UTC."""

    id: Id = ""
    project: ProjectRef = msgspec.field(default_factory=ProjectRef)
    workflow: WorkflowRef = msgspec.field(default_factory=WorkflowRef)
    next_run_time: Timestamp = None
    next_schedule_time: Timestamp = None
    disabled_at: Timestamp = None

    next_run_time_dt = parsed_time("next_run_time")
    next_schedule_time_dt = parsed_time("next_schedule_time")
    disabled_at_dt = parsed_time("disabled_at")


class WorkflowScheduleList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/schedules`` and ``GET /api/projects/{id}/schedules``."""

    schedules: list[WorkflowSchedule] = msgspec.field(default_factory=list)


class WorkflowScheduleSummary(WorkflowSchedule, frozen=True, kw_only=True):
    """RestScheduleSummary, the answer of skip, enable and disable.

    OSS fills ``updated_at`` from ``created_at`` (§3 "Schedules").
    """

    created_at: Timestamp = None
    updated_at: Timestamp = None

    created_at_dt = parsed_time("created_at")
    updated_at_dt = parsed_time("updated_at")


class ScheduleAttemptCollection(WorkflowModel, frozen=True, kw_only=True):
    """``POST /api/schedules/{id}/backfill``; a dry run returns dummies with id ``"0"``."""

    id: Id = ""
    project: ProjectRef = msgspec.field(default_factory=ProjectRef)
    workflow: WorkflowRef = msgspec.field(default_factory=WorkflowRef)
    attempts: list[Attempt] = msgspec.field(default_factory=list)


# -- logs, secrets, version ----------------------------------------------------------------


class LogFileHandle(WorkflowModel, frozen=True, kw_only=True):
    """RestLogFileHandle; ``direct`` is a pre-signed URL to fetch without TD credentials."""

    file_name: str = ""
    file_size: int = 0
    task_name: str = ""
    agent_id: str = ""
    direct: str | None = None
    file_time: Timestamp = None

    file_time_dt = parsed_time("file_time")


class LogFileList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/logs/{attempt_id}/files``."""

    files: list[LogFileHandle] = msgspec.field(default_factory=list)


class Secret(WorkflowModel, frozen=True, kw_only=True):
    """RestSecret (PUT/DELETE answers) or a key of RestSecretList (``project`` absent)."""

    key: str = ""
    project: ProjectRef | None = None


class SecretList(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/projects/{id}/secrets``: keys only, never values."""

    secrets: list[Secret] = msgspec.field(default_factory=list)


class Version(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/version``."""

    version: str = ""


class VersionCheck(WorkflowModel, frozen=True, kw_only=True):
    """``GET /api/version/check``."""

    server_version: str = ""
    upgrade_recommended: bool = False
    api_compatible: bool = True
