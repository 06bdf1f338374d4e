"""Task events of one snapshot, in the order the attempt ran them.

The task tree is the recorded ``GET /api/attempts/{id}/tasks`` body of the digdag UI tests
(``+basic``: a chain of tasks, a nested group, a ``_parallel`` group); the snapshots move its
tasks through the states a run passes.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from aiotd.models.workflow import Task, TaskList
from aiotd.workflow._task_watch import TaskEvent, task_changes

SAMPLE = Path(__file__).parents[1] / "samples" / "workflow"
TREE = msgspec.json.decode(
    (SAMPLE / "GET__api_attempts_{id}_tasks__digdag-ui.json").read_bytes(), type=TaskList
).tasks
# 1 +basic > 2 my_task_1 > 3 my_task_2 > 4 any_task_name_here (5 nested_task > 6 nested_task_2)
#   > 7 parallel_task_foo (8 bar, 9 baz) > 10 abc
NAMES = {t.id: t.full_name.removeprefix("+basic").removeprefix("+") or "+basic" for t in TREE}


def snapshot(states: dict[str, str], tasks: list[Task] = TREE) -> list[Task]:
    """The tree with the given states by task id; every other task blocked."""
    return [msgspec.structs.replace(t, state=states.get(t.id, "blocked")) for t in tasks]


def names(events: list[TaskEvent]) -> list[tuple[str, str]]:
    return [(NAMES[e.task.id], e.new_state) for e in events]


def test_first_sighting_then_changes_only() -> None:
    states: dict[str, str] = {}
    first = task_changes(snapshot({"1": "running"}), states)
    assert [(e.task.id, e.old_state, e.new_state) for e in first][:2] == [
        ("1", None, "running"),
        ("2", None, "blocked"),
    ]
    assert len(first) == len(TREE)
    assert task_changes(snapshot({"1": "running"}), states) == []


def test_an_upstream_that_ended_comes_before_the_task_it_let_start() -> None:
    # what `aiotd demo` showed: the next task's start printed before the end it waited for
    states = {t.id: "blocked" for t in TREE} | {"1": "planned", "2": "running"}
    events = task_changes(snapshot({"1": "planned", "2": "success", "3": "running"}), states)
    assert names(events) == [("my_task_1", "success"), ("my_task_2", "running")]
    assert events[0].old_state == "running"


def test_a_group_starts_before_its_children_and_after_its_upstream() -> None:
    states = {t.id: "blocked" for t in TREE} | {"1": "planned", "2": "success", "3": "running"}
    now = {"1": "planned", "2": "success", "3": "success", "4": "planned", "5": "running"}
    assert names(task_changes(snapshot(now), states)) == [
        ("my_task_2", "success"),
        ("any_task_name_here", "planned"),
        ("any_task_name_here+nested_task", "running"),
    ]


def test_a_group_ends_after_its_children_and_before_what_waits_for_it() -> None:
    before = {"1": "planned", "2": "success", "3": "success", "4": "planned", "5": "running"}
    states = {t.id: "blocked" for t in TREE} | before
    now = before | {"5": "success", "6": "success", "4": "success", "7": "planned"}
    now |= {"8": "running", "9": "success"}
    assert names(task_changes(snapshot(now), states)) == [
        ("any_task_name_here+nested_task", "success"),
        ("any_task_name_here+nested_task_2", "success"),
        ("any_task_name_here", "success"),
        ("parallel_task_foo", "planned"),
        ("parallel_task_foo+bar", "running"),
        ("parallel_task_foo+baz", "success"),
    ]


def test_a_whole_run_in_one_snapshot_comes_in_run_order() -> None:
    done = {t.id: "success" for t in TREE}
    assert [name for name, _ in names(task_changes(snapshot(done), {}))] == [
        "my_task_1",
        "my_task_2",
        "any_task_name_here+nested_task",
        "any_task_name_here+nested_task_2",
        "any_task_name_here",
        "parallel_task_foo+bar",
        "parallel_task_foo+baz",
        "parallel_task_foo",
        "abc",
        "+basic",
    ]


def test_dependencies_decide_and_not_the_order_of_the_list() -> None:
    done = {t.id: "success" for t in TREE}
    shuffled = [TREE[i] for i in (9, 3, 0, 6, 5, 2, 8, 4, 1, 7)]
    order = [e.task.id for e in task_changes(snapshot(done, shuffled), {})]
    assert sorted(order) == sorted(t.id for t in TREE)
    position = {task_id: i for i, task_id in enumerate(order)}
    for task in TREE:
        for upstream in task.upstreams:
            assert position[upstream] < position[task.id], NAMES[task.id]
        if task.parent_id is not None:
            assert position[task.id] < position[task.parent_id], NAMES[task.id]


def test_a_group_waiting_to_retry_comes_after_the_child_that_failed() -> None:
    before = {"1": "planned", "2": "success", "3": "success", "4": "planned", "5": "success"}
    states = {t.id: "blocked" for t in TREE} | before | {"6": "running"}
    now = before | {"6": "error", "4": "group_retry_waiting"}
    assert names(task_changes(snapshot(now), states)) == [
        ("any_task_name_here+nested_task_2", "error"),
        ("any_task_name_here", "group_retry_waiting"),
    ]


def test_tasks_outside_the_tree_keep_their_events() -> None:
    # a parent missing from the list, a parent cycle, an upstream cycle: nothing is lost
    odd = [
        msgspec.structs.replace(TREE[1], parent_id="404", state="running"),
        msgspec.structs.replace(TREE[2], parent_id="5", upstreams=["5"], state="running"),
        msgspec.structs.replace(TREE[4], parent_id="3", upstreams=["3"], state="success"),
    ]
    events = task_changes(odd, {})
    assert sorted(e.task.id for e in events) == ["2", "3", "5"]
    assert events[0].task.id == "2"
