"""Every recorded Workflow API body decodes through the public call that returns it.

Each sample is served by a scripted server at its path; the call's result is compared field
by field with the raw JSON (wire camelCase against model attributes, ids as strings).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

import aiotd
from tests.client.conftest import KEY, Scripted, reply

SAMPLES = Path(__file__).parent.parent / "samples" / "workflow"

Call = Callable[[aiotd.Client], Awaitable[Any]]

# sample path template -> (served path, the public call)
CALLS: dict[str, tuple[str, Call]] = {
    "GET__api_attempts_{id}": ("/api/attempts/7", lambda td: td.workflow.attempts.get(7)),
    "GET__api_attempts_{id}_tasks": (
        "/api/attempts/7/tasks",
        lambda td: td.workflow.attempts.tasks(7),
    ),
    "GET__api_projects": ("/api/projects", lambda td: td.workflow.projects.list().first_page()),
    "GET__api_projects_{id}_workflows": (
        "/api/projects/7/workflows",
        lambda td: td.workflow.projects.workflows(7),
    ),
    "GET__api_sessions": ("/api/sessions", lambda td: td.workflow.sessions.list().first_page()),
    "GET__api_sessions_{id}": ("/api/sessions/7", lambda td: td.workflow.sessions.get(7)),
    "GET__api_sessions_{id}_attempts": (
        "/api/sessions/7/attempts",
        lambda td: td.workflow.sessions.attempts(7).first_page(),
    ),
    "GET__api_workflows": ("/api/workflows", lambda td: td.workflow.workflows.list().first_page()),
    "GET__api_workflows_{id}": ("/api/workflows/7", lambda td: td.workflow.workflows.get(7)),
}


def sample_files() -> list[str]:
    return sorted(p.name for p in SAMPLES.glob("GET__*.json"))


def assert_matches(decoded: Any, raw: Any, where: str) -> None:
    """``decoded`` holds every value of ``raw`` under the attribute its wire name maps to."""
    if isinstance(decoded, msgspec.Struct):
        assert isinstance(raw, dict), where
        by_wire = {f.encode_name: f.name for f in msgspec.structs.fields(decoded)}
        for key, value in raw.items():
            if key not in by_wire:
                continue  # a field the model does not keep
            assert_matches(getattr(decoded, by_wire[key]), value, f"{where}.{key}")
    elif isinstance(raw, list) and isinstance(decoded, list):
        assert len(decoded) == len(raw), where
        for i, (item, raw_item) in enumerate(zip(decoded, raw, strict=True)):
            assert_matches(item, raw_item, f"{where}[{i}]")
    elif isinstance(raw, int) and not isinstance(raw, bool) and isinstance(decoded, str):
        assert decoded == str(raw), where  # an id sent as a number
    else:
        assert decoded == raw, where


def test_every_sample_has_a_call() -> None:
    templates = {name.split("__")[0] + "__" + name.split("__")[1] for name in sample_files()}
    assert templates == set(CALLS)


@pytest.mark.parametrize("name", sample_files())
async def test_sample_decodes_through_its_call(scripted: Scripted, name: str) -> None:
    body = (SAMPLES / name).read_bytes()
    raw = json.loads(body)
    path, call = CALLS["__".join(name.split("__")[:2])]
    scripted.on(path, reply(200, body))
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        result = await call(td)
    assert scripted.seen[0].path == path
    if isinstance(result, list):
        (items,) = raw.values()  # the collection's wrapper object, e.g. {"attempts": [...]}
        assert_matches(result, items, name)
    else:
        assert_matches(result, raw, name)


async def test_start_sends_the_request_body_digdag_documents(scripted: Scripted) -> None:
    documented = json.loads(
        (SAMPLES / "requests/PUT__api_attempts__request__digdag-examples.json").read_text()
    )
    attempt = (SAMPLES / "GET__api_attempts_{id}__td-guide.json").read_text()
    sent: list[dict[str, Any]] = []

    async def put(request: web.Request) -> web.StreamResponse:
        sent.append(await request.json())
        return web.Response(body=attempt, content_type="application/json")

    scripted.on("/api/projects", reply(200, '{"projects":[{"id":"3","name":"p"}]}'))
    scripted.on("/api/projects/3/workflows/wf", reply(200, '{"id":"1","name":"wf"}'))
    scripted.on("/api/attempts", put)
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        started = await td.workflow.attempts.start(
            project="p",
            workflow="wf",
            session_time=documented["sessionTime"],
            params=documented["params"],
        )
    assert sent == [documented]
    assert started.id == "987654321"
    assert started.existing is False


async def test_backfill_sends_the_request_body_digdag_documents(scripted: Scripted) -> None:
    documented = json.loads(
        (
            SAMPLES
            / "requests/POST__api_schedules_{id}_backfill__request__HttpContentEncodingIT.json"
        ).read_text()
    )
    sent: list[dict[str, Any]] = []

    async def backfill(request: web.Request) -> web.StreamResponse:
        sent.append(await request.json())
        return web.json_response({"id": "4", "attempts": []})

    scripted.on("/api/schedules/4/backfill", backfill)
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        result = await td.workflow.schedules.backfill(
            4,
            from_time=documented["fromTime"],
            attempt_name=documented["attemptName"],
            dry_run=documented["dryRun"],
        )
    assert sent == [documented]
    assert result.id == "4"
