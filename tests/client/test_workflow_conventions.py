"""td.workflow's one shape: what a call acts on is positional, everything else keyword-only."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import aiotd
from aiotd.testing import Emulator
from tests.client._workflow_support import SIMPLE_DIG, client, emulator

# Every public method of every workflow namespace, with the parameters it takes positionally:
# the ids of the object (outermost first) and the one thing a call moves (a project's files
# to push, the local path of a download).
POSITIONAL = {
    "workflow": {"version": [], "version_check": []},
    "projects": {
        "list": [],
        "get": ["project_id"],
        "get_by_name": ["name"],
        "delete": ["project_id"],
        "push": ["name", "source"],
        "download": ["project_id", "dest"],
        "revisions": ["project_id"],
        "workflows": ["project_id"],
        "workflow": ["project_id", "name"],
        "schedules": ["project_id"],
        "sessions": ["project_id"],
        "secrets": ["project_id"],
    },
    "workflows": {"list": [], "get": ["workflow_id"], "truncated_session_time": ["workflow_id"]},
    "sessions": {"list": [], "get": ["session_id"], "attempts": ["session_id"]},
    "attempts": {
        "start": [],
        "retry": ["attempt_id"],
        "kill": ["attempt_id"],
        "get": ["attempt_id"],
        "list": [],
        "tasks": ["attempt_id"],
        "failed_tasks": ["attempt_id"],
        "retries": ["attempt_id"],
        "wait": ["attempt_id"],
        "wait_all": ["attempt_ids"],
        "as_completed": ["attempt_ids"],
        "watch": ["attempt_id"],
    },
    "schedules": {
        "list": [],
        "get": ["schedule_id"],
        "disable": ["schedule_id"],
        "enable": ["schedule_id"],
        "skip": ["schedule_id"],
        "backfill": ["schedule_id"],
    },
    "logs": {
        "files": ["attempt_id"],
        "read": ["attempt_id", "file"],
        "text": ["attempt_id", "file"],
    },
    "secrets": {
        "list": ["project_id"],
        "put": ["project_id", "key"],
        "put_many": ["project_id", "values"],
        "delete": ["project_id", "key"],
    },
}


def _namespace(td: aiotd.Client, name: str) -> object:
    return td.workflow if name == "workflow" else getattr(td.workflow, name)


def test_ids_are_positional_and_everything_else_keyword_only() -> None:
    td = aiotd.Client(
        "1/key", endpoint="http://127.0.0.1:9", workflow_endpoint="http://127.0.0.1:9"
    )
    for name, methods in POSITIONAL.items():
        namespace = _namespace(td, name)
        public = {
            member
            for member, value in inspect.getmembers(type(namespace), inspect.isfunction)
            if not member.startswith("_")
        }
        assert public == set(methods), name  # a new method gets its line here
        for method, expected in methods.items():
            params = inspect.signature(getattr(namespace, method)).parameters.values()
            positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
            assert positional == expected, f"{name}.{method}"


@pytest.fixture
async def emu():
    async with emulator() as emulated:
        yield emulated


async def test_an_option_given_positionally_is_refused_before_any_request(emu: Emulator) -> None:
    async with client(emu) as td:
        project = await td.workflow.projects.push("proj", {"main.dig": SIMPLE_DIG})
        workflow = await td.workflow.projects.workflow(project.id, "main")
        before = dict(emu.counters)
        wf: Any = td.workflow  # the calls a type checker refuses
        loose: dict[str, Callable[[], Awaitable[object]]] = {
            "secret value": lambda: wf.secrets.put(project.id, "k", "v"),
            "client version": lambda: wf.version_check("0.10.5"),
            "session time": lambda: wf.workflows.truncated_session_time(
                workflow.id, "2024-05-06T07:08:09+00:00"
            ),
        }
        for what, call in loose.items():
            with pytest.raises(TypeError, match="positional argument"):
                await call()
            assert dict(emu.counters) == before, what
        stored = await td.workflow.secrets.put(project.id, "k", value="v")
        assert stored.key == "k"
