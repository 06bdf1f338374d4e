"""Watching attempts' tasks: one poll of each watched attempt's task list, on the shared poll
engine, whatever the number of its watchers; and the events between two snapshots of a task
list, in the order the attempt ran them."""

from __future__ import annotations

import contextlib
import hashlib
import heapq
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing
from typing import NamedTuple

from aiotd._http import segment
from aiotd._polling import Engine, Listing
from aiotd._resource import WorkflowResource
from aiotd._waiting import watch as _watch
from aiotd.models.workflow import Attempt, Task, TaskList, TaskState

__all__ = ["TaskEvent", "TaskSnapshot", "TaskWatch", "task_changes"]

# The attempt's `done` is read at least every this many polls of unchanged tasks, when the
# root task says nothing.
_CHECK_EVERY = 10


class TaskEvent(NamedTuple):
    """A task of a watched attempt appeared (``old_state`` None) or changed state."""

    task: Task
    old_state: str | None
    new_state: str


# States a task reaches after its children did: a finished one, or a group about to retry
# its failed children (reference §3.2).
_AFTER_CHILDREN = TaskState.DONE | {TaskState.GROUP_RETRY_WAITING}


def task_changes(tasks: Sequence[Task], states: dict[str, str]) -> list[TaskEvent]:
    """The events between the states last seen and ``tasks``; updates ``states``.

    Ordered as the attempt ran them: siblings after the siblings they wait for
    (``upstreams``), else in task order; a task's start before its children's events, its
    end after them. So an upstream that ended in the same snapshot comes before the task
    that could only then start.
    """
    changed: dict[str, TaskEvent] = {}
    for task in tasks:
        old = states.get(task.id)
        if old != task.state:
            states[task.id] = task.state
            changed[task.id] = TaskEvent(task, old, task.state)
    if len(changed) < 2:
        return list(changed.values())
    known = {task.id for task in tasks}
    children: dict[str | None, list[Task]] = {}
    for task in tasks:
        # a task whose parent is not in the list is ordered as a root
        parent = task.parent_id if task.parent_id in known else None
        children.setdefault(parent, []).append(task)
    ordered: list[TaskEvent] = []
    visited: set[str] = set()
    # depth first without recursion: a Task on the stack is to visit, a TaskEvent to emit
    # once the task's children are done with
    stack: list[Task | TaskEvent] = list(reversed(_by_upstreams(children.get(None, []))))
    while stack:
        item = stack.pop()
        if isinstance(item, TaskEvent):
            ordered.append(item)
            continue
        if item.id in visited:
            continue
        visited.add(item.id)
        event = changed.pop(item.id, None)
        if event is not None:
            if event.new_state in _AFTER_CHILDREN:
                stack.append(event)
            else:
                ordered.append(event)
        stack.extend(reversed(_by_upstreams(children.get(item.id, []))))
    ordered.extend(changed.values())  # tasks no walk from a root reaches (a parent cycle)
    return ordered


def _by_upstreams(siblings: list[Task]) -> list[Task]:
    """Siblings, each after the siblings it waits for; otherwise in their given order."""
    if len(siblings) < 2:
        return siblings
    index = {task.id: i for i, task in enumerate(siblings)}
    blockers = [0] * len(siblings)
    dependents: list[list[int]] = [[] for _ in siblings]
    for i, task in enumerate(siblings):
        for upstream in set(task.upstreams):
            j = index.get(upstream)
            if j is not None and j != i:
                blockers[i] += 1
                dependents[j].append(i)
    ready = [i for i, count in enumerate(blockers) if count == 0]  # ascending: a heap
    ordered: list[Task] = []
    while ready:
        i = heapq.heappop(ready)
        ordered.append(siblings[i])
        for k in dependents[i]:
            blockers[k] -= 1
            if blockers[k] == 0:
                heapq.heappush(ready, k)
    if len(ordered) < len(siblings):  # a cycle of upstreams: the rest in their order
        placed = {task.id for task in ordered}
        ordered.extend(task for task in siblings if task.id not in placed)
    return ordered


class TaskSnapshot(NamedTuple):
    """An attempt's tasks as one poll read them, the engine's record of a watched attempt.

    ``done`` is True or False once the attempt itself was read; None when the tasks suggest
    it may be done (the root task ended, or nothing moved for a while), so that the engine
    reads the attempt before it takes the snapshot as final; False otherwise.
    """

    tasks: list[Task]
    digest: str
    done: bool | None


def _snapshot(tasks: list[Task], done: bool | None) -> TaskSnapshot:
    """``tasks`` with a digest that changes whenever a task appears, goes or changes state."""
    digest = hashlib.blake2b(digest_size=16)
    for task in tasks:
        digest.update(f"{task.id}\0{task.state}\n".encode())
    return TaskSnapshot(tasks, digest.hexdigest(), done)


class _Seen:
    """What the watchers of one attempt share: the latest snapshot and how long it held."""

    __slots__ = ("last", "quiet", "watchers")

    def __init__(self) -> None:
        self.last: TaskSnapshot | None = None
        self.quiet = 0  # polls in a row that found the tasks unchanged
        self.watchers = 0


class _TaskKind:
    """How the poll engine follows an attempt's tasks: the item is the attempt, its status a
    digest of its task states, and it is finished once the attempt is done (reference §2.4).
    There is no listing of task lists: each watched attempt is polled on its own."""

    name = "attempt tasks"

    def __init__(self, resource: TaskWatch) -> None:
        self._resource = resource
        self._seen: dict[str, _Seen] = {}

    async def _tasks(self, attempt_id: str) -> list[Task]:
        path = f"/api/attempts/{segment(attempt_id)}/tasks"
        return (await self._resource._call("GET", path, TaskList)).tasks

    async def fetch(self, item_id: str) -> TaskSnapshot:
        tasks = await self._tasks(item_id)
        root_done = bool(tasks) and tasks[0].parent_id is None and tasks[0].done
        snapshot = _snapshot(tasks, None if root_done else False)
        seen = self._seen.get(item_id)
        if seen is None:  # its last watcher left while this poll was under way
            return snapshot
        unchanged = seen.last is not None and seen.last.digest == snapshot.digest
        seen.quiet = seen.quiet + 1 if unchanged else 0
        if seen.quiet >= _CHECK_EVERY:
            snapshot = snapshot._replace(done=None)
        seen.last = snapshot
        return snapshot

    async def fetch_final(self, item_id: str) -> TaskSnapshot:
        """The attempt read; once it is done, its tasks read again: those are final."""
        attempt = await self._resource._call("GET", f"/api/attempts/{segment(item_id)}", Attempt)
        seen = self._seen.get(item_id)
        last = None if seen is None else seen.last
        if attempt.done:
            snapshot = _snapshot(await self._tasks(item_id), True)
        elif last is not None:
            snapshot = last._replace(done=False)
        else:
            snapshot = _snapshot(await self._tasks(item_id), False)
        if seen is not None:
            seen.last = snapshot
            seen.quiet = 0
        return snapshot

    def status(self, record: TaskSnapshot) -> str:
        return record.digest

    def finished(self, record: TaskSnapshot) -> bool:
        return record.done is not False

    def needs_final(self, record: TaskSnapshot) -> bool:
        return record.done is None

    async def listing(
        self, watched: Sequence[str], page_budget: int
    ) -> Listing[TaskSnapshot] | None:
        return None

    def may_hide(self, status: str | None) -> bool:
        return False

    @contextlib.contextmanager
    def watching(self, attempt_id: str) -> Iterator[TaskSnapshot | None]:
        """Count one more watcher of the attempt while the block runs, and give the latest
        snapshot the polls read for the others, if any. What is kept goes with the last one."""
        seen = self._seen.setdefault(attempt_id, _Seen())
        seen.watchers += 1
        try:
            yield seen.last
        finally:
            seen.watchers -= 1
            if not seen.watchers and self._seen.get(attempt_id) is seen:
                del self._seen[attempt_id]


class TaskWatch(WorkflowResource):
    """Task events of attempts: the client polls each watched attempt's tasks once, at the
    engine's growing intervals, for all of its watchers."""

    @property
    def engine(self) -> Engine[TaskSnapshot]:
        """The poll engine every task watcher of this client shares."""
        return self._engine(lambda watch, settings: Engine(_TaskKind(watch), settings))

    async def watch(self, attempt_id: str | int) -> AsyncGenerator[TaskEvent, None]:
        """Every task's first sighting and state change, in order, until the attempt is done;
        the events of the final task list included."""
        segment(attempt_id)  # an id that names no attempt is refused before any request
        key = str(attempt_id).strip()
        engine = self.engine
        kind = engine.kind
        assert isinstance(kind, _TaskKind)
        states: dict[str, str] = {}
        with kind.watching(key) as latest:
            if latest is not None:
                # the attempt is watched already: start from what its polls read, as a first
                # poll would, rather than wait for its next change
                for event in task_changes(latest.tasks, states):
                    yield event
                if latest.done is True:
                    return
            async with aclosing(_watch(engine, [key])) as changes:
                async for change in changes:
                    for event in task_changes(change.record.tasks, states):
                        yield event
