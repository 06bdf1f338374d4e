"""The emulator's attempt executor: runs an attempt's task tree on its virtual clock
(reference §3.2), issues the jobs of ``td>`` tasks, and keeps TD's pool of running attempts."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from aiotd.testing._digdag import TaskSpec, format_offset, render
from aiotd.testing._wf_logs import write_log
from aiotd.testing._wf_state import DONE, FAILED, Attempt, Task, WorkflowState
from aiotd.testing._wf_storage import StorageOrigin

__all__ = ["Executor", "JobRunner", "TimedJobs"]

_JOB_DONE = frozenset({"success", "error", "killed"})
_DEFAULT_DURATIONS = {"echo": 0.02, "fail": 0.02}


class JobRunner(Protocol):
    """What ``td>`` tasks need from the v3 side of the emulator: issue, follow, kill a job."""

    def issue_job(self, *, database: str, query: str, engine: str = "presto") -> str: ...

    def job_status(self, job_id: str) -> str: ...

    def kill(self, job_id: str) -> object: ...


class TimedJobs:
    """Stand-in jobs for a service created without a JobRunner: each succeeds after a while."""

    def __init__(self, clock: Callable[[], float], duration: float) -> None:
        self._clock = clock
        self._duration = duration
        self._ends: dict[str, float] = {}
        self._killed: set[str] = set()
        self._ids = itertools.count(1)

    def issue_job(self, *, database: str, query: str, engine: str = "presto") -> str:
        job_id = str(next(self._ids))
        self._ends[job_id] = self._clock() + self._duration
        return job_id

    def job_status(self, job_id: str) -> str:
        if job_id in self._killed:
            return "killed"
        return "success" if self._clock() >= self._ends[job_id] else "running"

    def kill(self, job_id: str) -> str:
        former = self.job_status(job_id)
        if former == "running":
            self._killed.add(job_id)
        return former


class Executor:
    """Advances attempts: timed task transitions in order, then the jobs their tasks wait for.

    ``task_duration`` is how long an operator task runs unless ``operator_durations`` names
    its operator; ``dispatch_delay`` the time a task stays ``ready``; ``retry_interval`` the
    wait of ``_retry``; ``max_running`` the pool's limit of running attempts (None: none).
    """

    def __init__(
        self,
        state: WorkflowState,
        storage: StorageOrigin,
        jobs: JobRunner,
        *,
        task_duration: float,
        operator_durations: Mapping[str, float] | None,
        dispatch_delay: float,
        retry_interval: float,
        max_running: int | None,
    ) -> None:
        self._state = state
        self._storage = storage
        self.jobs = jobs
        self._task_duration = task_duration
        self._durations = {**_DEFAULT_DURATIONS, **(operator_durations or {})}
        self.dispatch_delay = dispatch_delay
        self._retry_interval = retry_interval
        self.max_running = max_running

    # --- the pool: TD's concurrency limit and its line of waiting attempts ----------------------

    def refresh_pool(self, now: float) -> None:
        """Bring the running attempts up to ``now``, so the places they free are taken."""
        if self.max_running is not None:
            for attempt in list(self._state.active.values()):
                self.advance(attempt, now)

    def pool_full(self) -> bool:
        """Whether a new attempt has to wait: no free place, or others waiting before it."""
        limit = self.max_running
        return limit is not None and (bool(self._state.waiting) or len(self._state.active) >= limit)

    def _admit(self, now: float) -> None:
        """Start waiting attempts, oldest first, while the pool has room."""
        limit = self.max_running
        while self._state.waiting and (limit is None or len(self._state.active) < limit):
            attempt = self._state.waiting.pop(next(iter(self._state.waiting)))
            attempt.wait_state = None
            attempt.clock = max(attempt.clock, now)
            root = attempt.tasks[0]
            root.due = attempt.clock + self.dispatch_delay
            self.set_state(root, "ready", attempt.clock)
            self._state.active[attempt.id] = attempt
        self.label_waiting()

    def label_waiting(self) -> None:
        """TD shows a waiting attempt as ``queued`` or ``blocked``; the record names both as
        not started yet, not what tells them apart. Here the first waiting attempt of a
        workflow is ``queued``, those behind it in the line are ``blocked``."""
        ahead: set[tuple[int, str]] = set()
        for attempt in self._state.waiting.values():
            key = (attempt.session.project.id, attempt.session.workflow_name)
            attempt.wait_state = "blocked" if key in ahead else "queued"
            ahead.add(key)

    def instantiate(
        self, attempt: Attempt, spec: TaskSpec, parent: Task | None, now: float
    ) -> Task:
        """The tasks of ``spec``'s tree, added to the attempt; siblings of a serial group wait
        for the one before."""
        task = Task(id=self._state.next_id("task"), spec=spec, parent=parent, updated_at=now)
        attempt.tasks.append(task)
        previous: Task | None = None
        for child_spec in spec.children:
            child = self.instantiate(attempt, child_spec, task, now)
            if previous is not None and not spec.parallel:
                child.upstreams.append(previous)
            task.children.append(child)
            previous = child
        return task

    # --- attempt execution (reference §3.2) ---------------------------------------------------

    def advance(self, attempt: Attempt, now: float) -> None:
        """Run the attempt's virtual clock up to ``now``: timed events in order, then jobs."""
        if attempt.wait_state is not None:
            self.refresh_pool(now)
            if attempt.wait_state is not None:
                return
        while not attempt.done:
            while self._step(attempt, attempt.clock):
                pass
            if attempt.done:
                break
            upcoming = self._next_event(attempt)
            if upcoming is not None and upcoming <= now:
                attempt.clock = max(attempt.clock, upcoming)
                continue
            attempt.clock = max(attempt.clock, now)
            if not self._poll_jobs(attempt, attempt.clock):
                break
        if attempt.done:
            self._state.active.pop(attempt.id, None)

    def _next_event(self, attempt: Attempt) -> float | None:
        if attempt.cancel_at is not None:
            # A kill freezes the attempt until it takes effect: nothing else is due.
            return attempt.cancel_at
        times = [
            t.due if t.state in ("ready", "running") else t.retry_at
            for t in attempt.tasks
            if t.state in ("ready", "running", "retry_waiting", "group_retry_waiting")
        ]
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def set_state(self, task: Task, state: str, now: float) -> None:
        """Move a task to ``state`` at ``now``."""
        task.state, task.updated_at = state, now

    def _step(self, attempt: Attempt, now: float) -> bool:
        """Apply every transition due at ``now``; whether anything changed."""
        if attempt.done:
            return False
        if attempt.cancel_at is not None and attempt.cancel_at <= now:
            for task in attempt.tasks:
                if task.state not in DONE:
                    self.set_state(task, "canceled", now)
            self.finish(attempt, now)
            return True
        if attempt.cancel_requested:
            return False
        changed = False
        for task in list(attempt.tasks):
            state = task.state
            if state == "blocked":
                changed |= self._unblock(task, now)
            elif state == "ready" and task.due is not None and task.due <= now:
                if task.spec.is_group:
                    self.set_state(task, "planned", now)
                else:
                    self._run(attempt, task, now)
                changed = True
            elif state == "running" and task.job_id is None and task.due is not None:
                if task.due <= now:
                    self._complete(attempt, task, now)
                    changed = True
            elif state == "retry_waiting" and task.retry_at is not None and task.retry_at <= now:
                task.retry_at, task.due = None, now
                self.set_state(task, "ready", now)
                changed = True
            elif state == "group_retry_waiting" and task.retry_at is not None:
                if task.retry_at <= now:
                    self._restart_group(attempt, task, now)
                    changed = True
            elif state == "planned":
                changed |= self._settle_group(attempt, task, now)
        root = attempt.tasks[0]
        if root.state in DONE:
            self.finish(attempt, now)
            return True
        return changed

    def _unblock(self, task: Task, now: float) -> bool:
        if task.parent is not None and task.parent.state != "planned":
            return False
        if any(upstream.state in FAILED for upstream in task.upstreams):
            # A task whose upstream failed never runs; digdag cancels it.
            self.set_state(task, "canceled", now)
            return True
        if all(upstream.state == "success" for upstream in task.upstreams):
            task.due = now + self.dispatch_delay
            self.set_state(task, "ready", now)
            return True
        return False

    def _settle_group(self, attempt: Attempt, task: Task, now: float) -> bool:
        if any(child.state not in DONE for child in task.children):
            return False
        if not task.error_added and all(child.state == "success" for child in task.children):
            self.set_state(task, "success", now)
        elif task.retries < task.spec.retry and not task.error_added:
            task.retries += 1
            task.retry_at = now + self._retry_interval
            self.set_state(task, "group_retry_waiting", now)
        elif task.spec.error is not None and not task.error_added:
            # `_error` tasks are added as a child `^error` when the group fails.
            task.error_added = True
            error_task = self.instantiate(attempt, task.spec.error, task, now)
            task.children.append(error_task)
        else:
            self.set_state(task, "group_error", now)
        return True

    def _restart_group(self, attempt: Attempt, group: Task, now: float) -> None:
        """``_retry`` of a group: its children start again from the beginning."""
        removed: set[int] = set()
        for child in list(group.children):
            if "^" in child.spec.full_name.removeprefix(group.spec.full_name):
                group.children.remove(child)
                removed.update(id(t) for t in _subtree(child))
        attempt.tasks = [t for t in attempt.tasks if id(t) not in removed]
        for child in group.children:
            for task in _subtree(child):
                task.state, task.updated_at, task.due, task.job_id = "blocked", now, None, None
                task.started_at, task.retry_at, task.error = None, None, {}
                task.store_params, task.state_params, task.error_added = {}, {}, False
                task.retries, task.cancel_requested = 0, False
        group.retry_at = None
        self.set_state(group, "planned", now)

    def _run(self, attempt: Attempt, task: Task, now: float) -> None:
        """Start an operator: ``td>``/``td_run>`` issue a job, the others run for a while."""
        task.started_at, task.due = now, None
        self.set_state(task, "running", now)
        operator = task.spec.operator
        if operator in ("td", "td_run"):
            try:
                database, query, engine = self._td_job(attempt, task)
                task.job_id = self.jobs.issue_job(database=database, query=query, engine=engine)
            except Exception as exc:  # an emulator job store refusing the job fails the task
                task.due = now
                task.state_params = {"failure": str(exc) or type(exc).__name__}
                return
            task.state_params = {"job": {"jobId": task.job_id, "domainKey": str(uuid.uuid4())}}
            task.store_params = {"td": {"last_job_id": task.job_id}}
            return
        duration = self._durations.get(operator or "", self._task_duration)
        task.due = now + duration

    def _td_job(self, attempt: Attempt, task: Task) -> tuple[str, str, str]:
        variables = self._variables(attempt, task)
        command = task.spec.command
        options: Mapping[str, Any] = command if isinstance(command, Mapping) else {}
        config = task.spec.config

        def option(name: str) -> Any:
            found = options.get(name, config.get(name))
            if found is None:
                td = variables.get("td")
                found = td.get(name) if isinstance(td, Mapping) else None
            return found if found is not None else variables.get(f"td.{name}")

        database = option("database")
        if not database:
            raise ValueError("Parameter 'database' is required but not set")
        if task.spec.operator == "td_run":
            query = f"-- td_run>: {command}\nSELECT 1"
        elif isinstance(command, str) and command:
            data = attempt.workflow.revision.files.get(command.removeprefix("./"))
            if data is None:
                raise ValueError(f"File not found: {command}")
            query = data.decode("utf-8")
        elif option("query"):
            query = str(option("query"))
        else:
            raise ValueError("td> needs a query file or query: parameter")
        return str(database), render(query, variables), str(option("engine") or "presto")

    def _poll_jobs(self, attempt: Attempt, now: float) -> bool:
        if attempt.cancel_requested:
            return False
        finished = False
        for task in attempt.tasks:
            if task.state != "running" or task.job_id is None:
                continue
            try:
                status = self.jobs.job_status(task.job_id)
            except Exception as exc:  # a job the store forgot fails its task
                status, task.state_params = "error", {"failure": str(exc)}
            if status in _JOB_DONE:
                task.state_params = {**task.state_params, "status": status}
                self._complete(attempt, task, now)
                finished = True
        return finished

    def _complete(self, attempt: Attempt, task: Task, now: float) -> None:
        """An operator finished: success, or error (retried while ``_retry`` allows)."""
        operator = task.spec.operator or ""
        failure: str | None = task.state_params.get("failure")
        lines: list[str] = []
        variables = self._variables(attempt, task)
        if operator == "fail":
            failure = render(str(task.spec.command), variables)
        elif operator == "echo":
            lines.append(render(str(task.spec.command), variables))
        elif task.job_id is not None:
            status = task.state_params.get("status", "success")
            lines.append(f"td-client version: emulator; started job id={task.job_id}")
            if status != "success":
                failure = failure or f"Query failed: job id={task.job_id} finished as {status}"
        elif failure is None:
            lines.append(f"{operator}>: {render(str(task.spec.command), variables)}")
        if failure is not None:
            lines.append(failure)
        write_log(self._storage, attempt, task, operator, lines, error=failure is not None)
        task.due = None
        task.job_id = None
        if failure is None:
            self.set_state(task, "success", now)
        elif task.retries < task.spec.retry:
            task.retries += 1
            task.retry_at = now + self._retry_interval
            task.state_params, task.store_params = {"retry_count": task.retries}, {}
            self.set_state(task, "retry_waiting", now)
        else:
            task.error = {"message": failure}
            self.set_state(task, "error", now)

    def finish(self, attempt: Attempt, now: float) -> None:
        attempt.done = True
        attempt.success = attempt.tasks[0].state == "success"
        attempt.finished_at = now
        self._state.active.pop(attempt.id, None)
        self._admit(now)

    def _variables(self, attempt: Attempt, task: Task) -> dict[str, Any]:
        """What ``${...}`` sees: built-ins, params, ``_export`` of the ancestors, the task's own."""
        session = attempt.session
        tz = attempt.workflow.tz
        local = datetime.fromtimestamp(session.time, tz=tz)
        variables: dict[str, Any] = {
            "session_time": format_offset(session.time, tz),
            "session_date": local.strftime("%Y-%m-%d"),
            "session_date_compact": local.strftime("%Y%m%d"),
            "session_local_time": local.strftime("%Y-%m-%d %H:%M:%S"),
            "session_tz_offset": local.strftime("%z"),
            "session_unixtime": int(session.time),
            "session_id": session.id,
            "session_uuid": session.uuid,
            "attempt_id": attempt.id,
            "project_id": session.project.id,
            "project_name": session.project.name,
            "workflow_name": session.workflow_name,
            "timezone": attempt.workflow.timezone,
            "task_name": task.spec.full_name,
            "retry_attempt_name": attempt.retry_name or "",
        }
        variables.update(attempt.params)
        chain: list[Task] = []
        walker: Task | None = task
        while walker is not None:
            chain.append(walker)
            walker = walker.parent
        for node in reversed(chain):
            _merge(variables, node.spec.export)
        _merge(variables, {k: v for k, v in task.spec.config.items() if not k.endswith(">")})
        return variables


def _subtree(task: Task) -> Iterable[Task]:
    yield task
    for child in task.children:
        yield from _subtree(child)


def _merge(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged = dict(current)
            _merge(merged, value)
            target[key] = merged
        else:
            target[key] = value
