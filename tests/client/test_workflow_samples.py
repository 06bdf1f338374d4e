"""Every recorded Workflow API body decodes through the public call that returns it.

Each sample is served by a scripted server at its path; the call's result is compared field
by field with the raw JSON (wire camelCase against model attributes, ids as strings).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

import aiotd
from aiotd import errors
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


def recorded(name: str, project: int | None = None) -> Any:
    """A recorded body; with ``project``, the projects sample cut to that one, as ``p`` id 3."""
    body = json.loads((SAMPLES / name).read_text())
    if project is not None:
        body = {"projects": [body["projects"][project] | {"id": "3", "name": "p"}]}
        return json.dumps(body)
    return body


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

    scripted.on("/api/projects", reply(200, recorded("GET__api_projects__td-guide.json", 1)))
    workflow = recorded("GET__api_workflows_{id}__digdag-ui.json") | {"id": "1", "name": "wf"}
    scripted.on("/api/projects/3/workflows/wf", reply(200, json.dumps(workflow)))
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
        ref = {"id": "1", "name": "p"}
        return web.json_response({"id": "4", "project": ref, "workflow": ref, "attempts": []})

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


# -- bodies without what every real one carries ----------------------------------------------

ATTEMPT = json.loads((SAMPLES / "GET__api_attempts_{id}__td-guide.json").read_text())
T0 = "2024-01-01T00:00:00+00:00"


def start_on(scripted: Scripted, *answers: web.StreamResponse | Any) -> None:
    """Project ``p`` with workflow ``wf`` (recorded bodies), and PUT answers in turn."""
    scripted.on("/api/projects", reply(200, recorded("GET__api_projects__td-guide.json", 1)))
    workflow = recorded("GET__api_workflows_{id}__digdag-ui.json") | {"id": "1", "name": "wf"}
    scripted.on("/api/projects/3/workflows/wf", reply(200, json.dumps(workflow)))
    scripted.on("/api/attempts", *answers)


@pytest.mark.parametrize(
    "body",
    [b"{}", json.dumps({k: v for k, v in ATTEMPT.items() if k != "id"}).encode()],
    ids=["empty", "no-id"],
)
async def test_a_start_answered_without_an_attempt_is_a_decode_error(
    scripted: Scripted, body: bytes
) -> None:
    start_on(scripted, reply(200, body))
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        with pytest.raises(errors.DecodeError, match="missing required field `id`"):
            await td.workflow.attempts.start(project="p", workflow="wf", session_time=T0)
    assert scripted.count("/api/attempts") == 1


@pytest.mark.parametrize(
    "body", ["{}", '{"message": "Session attempt already killed or finished", "status": 409}']
)
async def test_a_409_that_carries_no_attempt_stays_a_conflict(
    scripted: Scripted, body: str
) -> None:
    start_on(scripted, reply(409, body))
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        with pytest.raises(errors.Conflict):
            await td.workflow.attempts.start(project="p", workflow="wf", session_time=T0)


RESUME = {
    "all": None,
    "failed": {"mode": "failed", "attemptId": "987654321"},
    "from": {"mode": "from", "attemptId": "987654321", "from": "+daily_aggregation+step"},
}


@pytest.mark.parametrize("mode", ["all", "failed", "from"])
async def test_retry_sends_what_digdag_retry_sends(scripted: Scripted, mode: str) -> None:
    # digdag-cli Retry.java: the old session time, a new UUID name, the old params merged
    # with the new, and RestSessionAttemptRequest.Resume for --resume / --resume-from
    sent: list[dict[str, Any]] = []

    async def put(request: web.Request) -> web.StreamResponse:
        sent.append(await request.json())
        return web.json_response(ATTEMPT | {"id": "987654322", "index": 2})

    scripted.on("/api/attempts/987654321", reply(200, json.dumps(ATTEMPT)))
    scripted.on("/api/attempts", put)
    retry: Any = {"mode": mode} | (
        {"from_task": "+daily_aggregation+step"} if mode == "from" else {}
    )
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        again = await td.workflow.attempts.retry(987654321, params={"extra": 1}, **retry)
    (body,) = sent
    name = body.pop("retryAttemptName")
    assert str(uuid.UUID(name)) == name
    expected = {
        "workflowId": "12345678",
        "sessionTime": "2025-08-03T03:00:00+00:00",
        "params": ATTEMPT["params"] | {"extra": 1},
    }
    if RESUME[mode] is not None:
        expected["resume"] = RESUME[mode]
    assert body == expected
    assert (again.id, again.index) == ("987654322", 2)


async def test_retry_of_an_attempt_of_a_workflow_not_stored_takes_the_latest(
    scripted: Scripted,
) -> None:
    old = ATTEMPT | {"workflow": {"name": "daily_aggregation", "id": None}}
    latest = recorded("GET__api_workflows_{id}__digdag-ui.json")  # id 5
    sent: list[dict[str, Any]] = []

    async def put(request: web.Request) -> web.StreamResponse:
        sent.append(await request.json())
        return web.json_response(ATTEMPT)

    scripted.on("/api/attempts/1", reply(200, json.dumps(old)))
    scripted.on("/api/projects/123456/workflows/daily_aggregation", reply(200, json.dumps(latest)))
    scripted.on("/api/attempts", put)
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        await td.workflow.attempts.retry(1, mode="all")
    assert sent[0]["workflowId"] == "5"


def _with_ids(name: str, ids: list[str]) -> str:
    """A recorded listing whose one item is repeated with the given ids."""
    body = json.loads((SAMPLES / name).read_text())
    ((key, items),) = body.items()
    return json.dumps({key: [items[0] | {"id": i} for i in ids]})


_SCHEDULE = {
    "id": "abc",
    "project": {"id": "1", "name": "p"},
    "workflow": {"id": "7", "name": "w"},
    "nextRunTime": "2019-11-01T07:00:00Z",
    "nextScheduleTime": "2019-11-01T00:00:00+09:00",
    "disabledAt": None,
}
LISTINGS: dict[str, tuple[str, str, Callable[[aiotd.Client], Any]]] = {
    "sessions": (
        "/api/sessions",
        _with_ids("GET__api_sessions__td-guide.json", ["abc"]),
        lambda td: td.workflow.sessions.list(page_size=1),
    ),
    "session attempts": (
        "/api/sessions/7/attempts",
        _with_ids("GET__api_sessions_{id}_attempts__td-guide.json", ["abc"]),
        lambda td: td.workflow.sessions.attempts(7, page_size=1),
    ),
    "attempts": (
        "/api/attempts",
        _with_ids("GET__api_sessions_{id}_attempts__td-guide.json", ["abc"]),
        lambda td: td.workflow.attempts.list(page_size=1),
    ),
    "workflows": (
        "/api/workflows",
        _with_ids("GET__api_workflows__digdag-ui.json", ["wf-5"]),
        lambda td: td.workflow.workflows.list(page_size=1),
    ),
    "schedules": (
        "/api/schedules",
        json.dumps({"schedules": [_SCHEDULE]}),
        lambda td: td.workflow.schedules.list(),
    ),
}


@pytest.mark.parametrize("name", list(LISTINGS))
async def test_a_listing_id_that_is_no_number_is_a_decode_error(
    scripted: Scripted, name: str
) -> None:
    path, body, make = LISTINGS[name]
    scripted.on(path, reply(200, body))
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        with pytest.raises(errors.DecodeError, match="not a number to page from"):
            await make(td).all()


async def test_the_attempt_listing_of_the_engine_refuses_an_id_that_is_no_number(
    scripted: Scripted,
) -> None:
    ids = [str(1000 - i) for i in range(99)] + ["abc"]  # a full page: its last id is the cursor
    scripted.on(
        "/api/attempts",
        reply(200, _with_ids("GET__api_sessions_{id}_attempts__td-guide.json", ids)),
    )
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        with pytest.raises(errors.DecodeError, match="not a number to page from"):
            await td.workflow.attempts.engine.kind.listing(["5"], 10)
