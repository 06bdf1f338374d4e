"""The Workflow API's stored objects, their JSON shapes (reference §3) and the registry
that holds them: every route and the executor work on one ``WorkflowState``."""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from aiotd.testing._digdag import ScheduleSpec, TaskSpec, format_instant, format_offset
from aiotd.testing._wf_http import Fail, missing

__all__ = [
    "DONE",
    "FAILED",
    "Attempt",
    "LogFile",
    "Project",
    "Revision",
    "Schedule",
    "Session",
    "Task",
    "Workflow",
    "WorkflowState",
    "attempt_json",
    "project_json",
    "revision_json",
    "schedule_json",
    "session_json",
    "task_json",
    "workflow_json",
]

DONE = frozenset({"success", "group_error", "error", "canceled"})  # reference §3.2
FAILED = frozenset({"group_error", "error", "canceled"})


@dataclass(eq=False)
class Project:
    """A project: its revisions, newest last, and its secrets; deleted ones stay, marked."""

    id: int
    name: str
    created_at: float
    revisions: list[Revision] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    deleted_at: float | None = None

    @property
    def latest(self) -> Revision:
        return self.revisions[-1]

    def ref(self) -> dict[str, str]:
        return {"id": str(self.id), "name": self.name}


@dataclass(eq=False)
class Revision:
    """One push: the archive as sent, its files, and the workflows compiled from them."""

    id: int
    name: str
    created_at: float
    archive: bytes
    files: dict[str, bytes]
    storage_key: str
    workflows: list[Workflow] = field(default_factory=list)

    @property
    def md5(self) -> str:
        return base64.b64encode(hashlib.md5(self.archive).digest()).decode()


@dataclass(eq=False)
class Workflow:
    """A top-level ``.dig`` of one revision: its task tree, time zone and schedule."""

    id: int
    name: str
    project: Project
    revision: Revision
    timezone: str
    tz: tzinfo
    config: dict[str, Any]
    root: TaskSpec
    schedule: ScheduleSpec | None
    schedule_source: bytes


@dataclass(eq=False)
class Schedule:
    """A workflow's schedule: the next session and run times, and when it was disabled."""

    id: int
    project: Project
    workflow: Workflow
    spec: ScheduleSpec
    source: bytes
    next_session: float
    next_run: float
    created_at: float
    updated_at: float
    last_session: float | None = None
    disabled_at: float | None = None


@dataclass(eq=False)
class Session:
    """A workflow at one session time, with its attempts, oldest first."""

    id: int
    project: Project
    workflow_name: str
    time: float
    uuid: str
    attempts: list[Attempt] = field(default_factory=list)


@dataclass(eq=False)
class Task:
    """A task of an attempt: its state (reference §3.2) and the times the executor keeps."""

    id: int
    spec: TaskSpec
    parent: Task | None
    updated_at: float
    state: str = "blocked"
    upstreams: list[Task] = field(default_factory=list)
    children: list[Task] = field(default_factory=list)
    store_params: dict[str, Any] = field(default_factory=dict)
    state_params: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    retry_at: float | None = None
    cancel_requested: bool = False
    due: float | None = None
    job_id: str | None = None
    retries: int = 0
    error_added: bool = False
    resumed: bool = False


@dataclass(eq=False)
class LogFile:
    """One ``.log.gz`` of a task, also stored on the storage origin under ``storage_key``."""

    task_name: str
    file_name: str
    data: bytes
    file_time: float
    storage_key: str


@dataclass(eq=False)
class Attempt:
    """An attempt of a session: its tasks, logs, and its own virtual clock."""

    id: int
    index: int
    session: Session
    workflow: Workflow
    retry_name: str | None
    params: dict[str, Any]
    created_at: float
    clock: float
    pool_id: str | None = None
    tasks: list[Task] = field(default_factory=list)
    logs: list[LogFile] = field(default_factory=list)
    done: bool = False
    success: bool = False
    cancel_requested: bool = False
    cancel_at: float | None = None
    finished_at: float | None = None
    wait_state: str | None = None

    @property
    def status(self) -> str:
        """TD's ``status`` (reference §3.1): ``canceling`` while a kill is pending,
        ``queued`` or ``blocked`` while it waits for a place in the pool."""
        if self.done:
            if self.success:
                return "success"
            return "killed" if self.cancel_requested else "error"
        if self.cancel_requested:
            return "canceling"
        return self.wait_state or "running"


# --- JSON shapes (reference §3) --------------------------------------------------------------


def project_json(project: Project) -> dict[str, Any]:
    latest = project.latest
    return {
        "id": str(project.id),
        "name": project.name,
        "revision": latest.name,
        "createdAt": format_instant(project.created_at),
        "updatedAt": format_instant(latest.created_at),
        "deletedAt": format_instant(project.deleted_at),
        "archiveType": "s3",
        "archiveMd5": latest.md5,
        "metadata": [],
    }


def revision_json(revision: Revision) -> dict[str, Any]:
    return {
        "revision": revision.name,
        "createdAt": format_instant(revision.created_at),
        "archiveType": "s3",
        "archiveMd5": revision.md5,
        "userInfo": {},
    }


def workflow_json(workflow: Workflow) -> dict[str, Any]:
    return {
        "id": str(workflow.id),
        "name": workflow.name,
        "project": workflow.project.ref(),
        "revision": workflow.revision.name,
        "timezone": workflow.timezone,
        "config": workflow.config,
    }


def _attempt_state(attempt: Attempt) -> dict[str, Any]:
    """The fields an attempt and a session's ``lastAttempt`` share, after their ids."""
    body: dict[str, Any] = {
        "retryAttemptName": attempt.retry_name,
        "done": attempt.done,
        "success": attempt.success,
        "cancelRequested": attempt.cancel_requested,
        "params": attempt.params,
        "createdAt": format_instant(attempt.created_at),
        "finishedAt": format_instant(attempt.finished_at),
        "status": attempt.status,
    }
    if attempt.pool_id is not None:
        body["poolId"] = attempt.pool_id
    return body


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    session = attempt.session
    return {
        "id": str(attempt.id),
        "index": attempt.index,
        "project": session.project.ref(),
        "workflow": {"name": session.workflow_name, "id": str(attempt.workflow.id)},
        "sessionId": str(session.id),
        "sessionUuid": session.uuid,
        "sessionTime": format_offset(session.time, attempt.workflow.tz),
        **_attempt_state(attempt),
    }


def session_json(session: Session) -> dict[str, Any]:
    last = session.attempts[-1]
    return {
        "id": str(session.id),
        "project": session.project.ref(),
        "workflow": {"name": session.workflow_name, "id": str(last.workflow.id)},
        "sessionUuid": session.uuid,
        "sessionTime": format_offset(session.time, last.workflow.tz),
        "lastAttempt": {"id": str(last.id), **_attempt_state(last)},
    }


def task_json(task: Task) -> dict[str, Any]:
    return {
        "id": str(task.id),
        "fullName": task.spec.full_name,
        "parentId": None if task.parent is None else str(task.parent.id),
        "config": task.spec.config,
        "upstreams": [str(upstream.id) for upstream in task.upstreams],
        "state": task.state,
        "cancelRequested": task.cancel_requested,
        "exportParams": task.spec.export,
        "storeParams": task.store_params,
        "stateParams": task.state_params,
        "updatedAt": format_instant(task.updated_at),
        "retryAt": format_instant(task.retry_at),
        "startedAt": format_instant(task.started_at),
        "error": task.error,
        "isGroup": task.spec.is_group,
    }


def schedule_json(schedule: Schedule, *, summary: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(schedule.id),
        "project": schedule.project.ref(),
        "workflow": {"id": str(schedule.workflow.id), "name": schedule.workflow.name},
        "nextRunTime": format_instant(schedule.next_run),
        "nextScheduleTime": format_offset(schedule.next_session, schedule.spec.tz),
        "disabledAt": format_instant(schedule.disabled_at),
    }
    if summary:
        # RestScheduleSummary; OSS fills updatedAt from createdAt (reference §3, Schedules).
        body["createdAt"] = format_instant(schedule.created_at)
        body["updatedAt"] = format_instant(schedule.created_at)
    return body


# --- the registry -----------------------------------------------------------------------------


class WorkflowState:
    """Every project, workflow, schedule, session and attempt of one emulator, by id.

    ``active`` holds the attempts that run, ``waiting`` those in the pool's line, oldest first.
    Ids are counted per kind from 1.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._ids: dict[str, itertools.count[int]] = {}
        self.projects: dict[int, Project] = {}
        self.workflows: dict[int, Workflow] = {}
        self.schedules: dict[int, Schedule] = {}
        self.sessions: dict[int, Session] = {}
        self.session_index: dict[tuple[int, str, float], Session] = {}
        self.attempts: dict[int, Attempt] = {}
        self.active: dict[int, Attempt] = {}
        self.waiting: dict[int, Attempt] = {}

    def next_id(self, kind: str) -> int:
        """The next id of ``kind`` ("project", "attempt", ...)."""
        return next(self._ids.setdefault(kind, itertools.count(1)))

    def project(self, project_id: int) -> Project:
        """A live project; 404 for an unknown or deleted one, as digdag words each."""
        project = self.projects.get(project_id)
        if project is None:
            missing("project", project_id)
        if project.deleted_at is not None:
            deleted = format_instant(project.deleted_at)
            raise Fail(404, f"Project id={project_id} is already deleted at {deleted}")
        return project

    def live_projects(self) -> Iterable[Project]:
        """Projects not deleted, oldest first."""
        return (p for p in self.projects.values() if p.deleted_at is None)

    def project_named(self, name: str) -> Project | None:
        """The live project of that name, if any."""
        return next((p for p in self.live_projects() if p.name == name), None)

    def workflow(self, workflow_id: int) -> Workflow:
        """A workflow of any revision, by id; 404 when unknown."""
        workflow = self.workflows.get(workflow_id)
        if workflow is None:
            missing("workflow", workflow_id)
        return workflow

    def session(self, session_id: int) -> Session:
        """A session by id; 404 when unknown."""
        session = self.sessions.get(session_id)
        if session is None:
            missing("session", session_id)
        return session

    def schedule(self, schedule_id: int) -> Schedule:
        """A schedule by id; 404 when unknown."""
        schedule = self.schedules.get(schedule_id)
        if schedule is None:
            missing("schedule", schedule_id)
        return schedule
