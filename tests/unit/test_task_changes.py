"""Task events of one snapshot: going tasks in order, finished children before parents."""

from __future__ import annotations

from aiotd.models.workflow import Task
from aiotd.workflow.attempts import task_changes


def task(id: str, name: str, parent: str | None, state: str) -> Task:
    return Task(id=id, full_name=name, parent_id=parent, state=state)


def test_first_sighting_then_changes_only() -> None:
    states: dict[str, str] = {}
    first = task_changes([task("1", "+wf", None, "running")], states)
    assert [(e.task.id, e.old_state, e.new_state) for e in first] == [("1", None, "running")]
    assert task_changes([task("1", "+wf", None, "running")], states) == []


def test_finished_children_come_before_their_group() -> None:
    states = {"1": "running", "2": "running", "3": "running", "4": "blocked", "5": "blocked"}
    snapshot = [
        task("1", "+wf", None, "success"),
        task("2", "+wf+group", "1", "success"),
        task("3", "+wf+group+a", "2", "success"),
        task("4", "+wf+group+b", "2", "success"),
        task("5", "+wf+last", "1", "success"),
    ]
    names = [e.task.full_name for e in task_changes(snapshot, states)]
    assert names == ["+wf+group+a", "+wf+group+b", "+wf+group", "+wf+last", "+wf"]


def test_going_tasks_come_first_in_task_order() -> None:
    states = {"1": "running", "2": "running", "3": "blocked"}
    snapshot = [
        task("1", "+wf", None, "running"),
        task("2", "+wf+a", "1", "error"),
        task("3", "+wf+b", "1", "running"),
    ]
    events = task_changes(snapshot, states)
    assert [(e.task.full_name, e.new_state) for e in events] == [
        ("+wf+b", "running"),
        ("+wf+a", "error"),
    ]
    assert states == {"1": "running", "2": "error", "3": "running"}
