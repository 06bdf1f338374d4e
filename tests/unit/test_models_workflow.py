"""Workflow response models: every recorded body decodes; attempt status, tasks, edge cases."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiotd._http import decode_json
from aiotd.errors import AttemptFailed, DecodeError
from aiotd.models import (
    Attempt,
    AttemptList,
    LastAttempt,
    LogFileHandle,
    LogFileList,
    Project,
    ProjectList,
    ProjectMetadata,
    ProjectRef,
    Revision,
    RevisionList,
    ScheduleAttemptCollection,
    Secret,
    SecretList,
    Session,
    SessionList,
    SessionTime,
    Task,
    TaskList,
    TaskState,
    Version,
    VersionCheck,
    WorkflowDefinition,
    WorkflowList,
    WorkflowRef,
    WorkflowSchedule,
    WorkflowScheduleList,
    WorkflowScheduleSummary,
)
from aiotd.models.workflow import SecretKey
from tests._samples import samples_dir

WF = samples_dir("workflow")

UTC = timezone.utc


def load(name: str, model: Any) -> Any:
    return msgspec.json.decode((WF / name).read_bytes(), type=model)


Case = tuple[str, Any, Callable[[Any], Any], Any]

_UI_ATTEMPT = (
    "1",
    1,
    "example",
    ("basic", "5"),
    "1",
    None,
    "success",
    datetime(2021, 9, 29, 13, 17, 29, tzinfo=UTC),
)


def _attempt_summary(a: Attempt) -> tuple[Any, ...]:
    return (
        a.id,
        a.index,
        a.project.name,
        (a.workflow.name, a.workflow.id),
        a.session_id,
        a.retry_attempt_name,
        a.status,
        a.finished_at_dt,
    )


CASES: list[Case] = [
    (
        "GET__api_attempts_{id}__digdag-ui.json",
        Attempt,
        _attempt_summary,
        _UI_ATTEMPT,
    ),
    (
        "GET__api_attempts_{id}__td-guide.json",
        Attempt,
        lambda m: (
            m.id,
            m.session_time_dt,
            m.params["next_session_time"],
            m.done,
            m.success,
            m.cancel_requested,
            m.status,
            m.pool_id,
        ),
        (
            "987654321",
            datetime(2025, 8, 3, 3, tzinfo=UTC),
            "2025-08-03T04:00:00+00:00",
            True,
            True,
            False,
            "success",
            None,
        ),
    ),
    (
        "GET__api_attempts_{id}_tasks__digdag-ui.json",
        TaskList,
        lambda m: (
            m.tasks[0].full_name,
            m.tasks[0].parent_id,
            m.tasks[0].is_group,
            m.tasks[0].started_at_dt,
            m.tasks[2].upstreams,
            m.tasks[2].parent_id,
            m.tasks[1].config,
            all(t.done and not t.failed for t in m.tasks),
        ),
        (
            "+basic",
            None,
            True,
            None,
            ["2"],
            "1",
            {"sh>": "echo this task runs first."},
            True,
        ),
    ),
    (
        "GET__api_attempts_{id}_tasks__td-guide.json",
        TaskList,
        lambda m: (
            [t.id for t in m.tasks],
            m.tasks[1].store_params,
            m.tasks[1].config["td>"]["engine"],
            m.tasks[1].error,
            m.tasks[1].error_message,
            m.tasks[1].retry_at_dt,
            m.tasks[2].updated_at_dt,
        ),
        (
            ["1234567890", "1234567891", "1234567892"],
            {"td": {"last_job_id": "123456789"}},
            "presto",
            {},
            None,
            None,
            datetime(2025, 8, 3, 3, 5, 30, tzinfo=UTC),
        ),
    ),
    (
        "GET__api_projects__td-guide.json",
        ProjectList,
        lambda m: (
            [p.id for p in m.projects],
            m.projects[0].metadata,
            m.projects[1].metadata[2],
            m.projects[1].archive_md5,
            m.projects[1].archive_type,
            m.projects[0].deleted_at_dt,
            m.projects[1].updated_at_dt,
        ),
        (
            ["123456", "789012"],
            [],
            ProjectMetadata(key="sys", value="cdp_audience"),
            "zyxwvutsrqponmlkjihgfed==",
            "s3",
            None,
            datetime(2023, 1, 1, tzinfo=UTC),
        ),
    ),
    (
        "GET__api_projects_{id}_workflows__td-guide.json",
        WorkflowList,
        lambda m: (
            [(w.id, w.name, w.timezone) for w in m.workflows],
            m.workflows[0].project,
            "+loop" in m.workflows[0].config,
        ),
        (
            [("123456", "create_segment_list", "UTC"), ("789012", "session_time", "Asia/Tokyo")],
            ProjectRef(id="123456", name="workflow_examples"),
            True,
        ),
    ),
    (
        "GET__api_sessions__digdag-ui.json",
        SessionList,
        lambda m: (
            m.sessions[0].id,
            m.sessions[0].session_uuid,
            m.sessions[0].last_attempt.id,
            m.sessions[0].last_attempt.status_,
            m.sessions[0].last_attempt.status,
        ),
        ("1", "1670ab44-c8ca-433e-8f47-ea0c1ddb7f21", "1", None, "success"),
    ),
    ("GET__api_sessions__digdag-ui__empty-last-page.json", SessionList, lambda m: m.sessions, []),
    (
        "GET__api_sessions__td-guide.json",
        SessionList,
        lambda m: (
            m.sessions[0].workflow,
            m.sessions[0].last_attempt.status_,
            m.sessions[0].session_time_dt,
        ),
        (
            WorkflowRef(name="daily_aggregation", id="12345678"),
            "success",
            datetime(2025, 8, 3, 3, tzinfo=UTC),
        ),
    ),
    (
        "GET__api_sessions_{id}__digdag-ui.json",
        Session,
        lambda m: (m.id, m.project.id, m.last_attempt.done, m.last_attempt.finished_at_dt),
        ("1", "1", True, datetime(2021, 9, 29, 13, 17, 29, tzinfo=UTC)),
    ),
    (
        "GET__api_sessions_{id}__td-guide.json",
        Session,
        lambda m: (m.id, m.last_attempt.params["last_session_time"], m.last_attempt.status),
        ("123456789", "2025-08-03T02:00:00+00:00", "success"),
    ),
    (
        "GET__api_sessions_{id}_attempts__digdag-ui.json",
        AttemptList,
        lambda m: [_attempt_summary(a) for a in m.attempts],
        [_UI_ATTEMPT],
    ),
    (
        "GET__api_sessions_{id}_attempts__td-guide.json",
        AttemptList,
        lambda m: (m.attempts[0].id, m.attempts[0].session_id, m.attempts[0].status),
        ("987654321", "123456789", "success"),
    ),
    (
        "GET__api_workflows__digdag-ui.json",
        WorkflowList,
        lambda m: (
            [w.id for w in m.workflows[:5]],
            len(m.workflows),
            m.workflows[2].timezone,
            m.workflows[2].config["schedule"],
            m.workflows[0].revision,
        ),
        (
            ["1", "2", "3", "4", "5"],
            24,
            "America/Los_Angeles",
            {"hourly>": "15:00"},
            "d232a92c-09dc-4eba-815d-f95d18dc3d7f",
        ),
    ),
    (
        "GET__api_workflows_{id}__digdag-ui.json",
        WorkflowDefinition,
        lambda m: (m.id, m.name, m.project, m.config["+parallel_task_foo"]["_parallel"]),
        ("5", "basic", ProjectRef(id="1", name="example"), True),
    ),
]


def test_every_sample_has_a_model() -> None:
    on_disk = {p.name for p in WF.glob("*.json")}
    assert on_disk == {case[0] for case in CASES}


@pytest.mark.parametrize(("name", "model", "read", "expected"), CASES, ids=[c[0] for c in CASES])
def test_sample_decodes(name: str, model: Any, read: Callable[[Any], Any], expected: Any) -> None:
    assert read(load(name, model)) == expected


# -- required fields (digdag-client api/Rest*.java, reference §3) --------------------------

# What every body of a model carries: the attributes Digdag always writes, neither
# Optional<> nor @Value.Default. The other wire fields may be missing: Optional<> ones (null
# when sent), index (Default 0, absent on old servers), a task's cancelRequested (Default,
# added in 0.9.20), a revision's userInfo (old servers), TD's metadata, poolId and status.
REQUIRED: dict[type[msgspec.Struct], set[str]] = {
    ProjectRef: {"id", "name"},
    WorkflowRef: {"name"},
    ProjectMetadata: {"key", "value"},
    Project: {"id", "name", "revision", "createdAt", "updatedAt", "archiveType"},
    ProjectList: {"projects"},
    Revision: {"revision", "createdAt", "archiveType"},
    RevisionList: {"revisions"},
    WorkflowDefinition: {"id", "name", "project", "revision", "timezone", "config"},
    WorkflowList: {"workflows"},
    SessionTime: {"project", "revision", "sessionTime", "timezone"},
    Attempt: {
        "id",
        "project",
        "workflow",
        "sessionId",
        "sessionUuid",
        "sessionTime",
        "done",
        "success",
        "cancelRequested",
        "params",
        "createdAt",
    },
    LastAttempt: {"id", "done", "success", "cancelRequested", "params", "createdAt"},
    AttemptList: {"attempts"},
    Session: {"id", "project", "workflow", "sessionUuid", "sessionTime"},
    SessionList: {"sessions"},
    Task: {
        "id",
        "fullName",
        "config",
        "upstreams",
        "isGroup",
        "state",
        "exportParams",
        "storeParams",
        "stateParams",
        "updatedAt",
        "error",
    },
    TaskList: {"tasks"},
    WorkflowSchedule: {"id", "project", "workflow", "nextRunTime", "nextScheduleTime"},
    WorkflowScheduleSummary: {
        "id",
        "project",
        "workflow",
        "nextRunTime",
        "nextScheduleTime",
        "createdAt",
        "updatedAt",
    },
    WorkflowScheduleList: {"schedules"},
    ScheduleAttemptCollection: {"id", "project", "workflow", "attempts"},
    LogFileHandle: {"fileName", "fileSize", "taskName", "fileTime", "agentId"},
    LogFileList: {"files"},
    Secret: {"key", "project"},
    SecretKey: {"key"},
    SecretList: {"secrets"},
    Version: {"version"},
    VersionCheck: {"serverVersion", "upgradeRecommended", "apiCompatible"},
}

_REF = {"id": "1", "name": "p"}
_ATTEMPT_BODY = json.loads((WF / "GET__api_attempts_{id}__td-guide.json").read_text())
_SCHEDULE_BODY = {
    "id": "3",
    "project": _REF,
    "workflow": {"id": "7", "name": "w"},
    "nextRunTime": "2019-11-01T07:00:00Z",
    "nextScheduleTime": "2019-11-01T00:00:00+09:00",
    "disabledAt": None,
}
# Shapes without a recorded body, every field as reference §3 lists it.
REFERENCE_BODIES: list[tuple[str, type[msgspec.Struct], Any]] = [
    (
        "revisions",
        RevisionList,
        {
            "revisions": [
                {
                    "revision": "r2",
                    "createdAt": "2020-01-02T00:00:00Z",
                    "archiveType": "s3",
                    "archiveMd5": "KruTqOtJ659HHpIJ6NyTTA==",
                    "userInfo": {"td": {"user": {"id": 1, "name": "n", "email": "e"}}},
                }
            ]
        },
    ),
    (
        "truncated_session_time",
        SessionTime,
        {
            "project": _REF,
            "revision": "r",
            "sessionTime": "2016-01-01T00:00:00+09:00",
            "timezone": "Asia/Tokyo",
        },
    ),
    ("schedules", WorkflowScheduleList, {"schedules": [_SCHEDULE_BODY]}),
    (
        "schedule summary",
        WorkflowScheduleSummary,
        _SCHEDULE_BODY | {"createdAt": "2019-01-01T00:00:00Z", "updatedAt": "2019-01-01T00:00:00Z"},
    ),
    (
        "backfill",
        ScheduleAttemptCollection,
        {"id": "3", "project": _REF, "workflow": {"id": "7", "name": "w"}, "attempts": []},
    ),
    (
        "log files",
        LogFileList,
        {
            "files": [
                {
                    "fileName": "+wf1+t1@64e44ee12f7e43a0.452660@ip-10-20.log.gz",
                    "fileSize": 123,
                    "taskName": "+wf1+t1",
                    "fileTime": "2023-08-22T06:00:01Z",
                    "agentId": "452660@ip-10-20",
                    "direct": None,
                }
            ]
        },
    ),
    ("secret", Secret, {"key": "td.apikey", "project": _REF}),
    ("secret list", SecretList, {"secrets": [{"key": "a"}]}),
    ("version", Version, {"version": "0.10.5"}),
    (
        "version check",
        VersionCheck,
        {"serverVersion": "0.10.5", "upgradeRecommended": True, "apiCompatible": False},
    ),
]


def test_the_models_require_exactly_what_digdag_always_writes() -> None:
    for model, required in REQUIRED.items():
        fields = msgspec.structs.fields(model)
        assert {f.encode_name for f in fields if f.required} == required, model.__name__


def _struct_of(hint: Any) -> type[msgspec.Struct] | None:
    """The Struct a field holds, itself, in a list, or as an optional value."""
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return hint
    for arg in typing.get_args(hint):
        found = _struct_of(arg)
        if found is not None:
            return found
    return None


def _drops(model: type[msgspec.Struct], raw: Any, path: list[Any]) -> Iterator[tuple[Any, ...]]:
    """(path to a key, model, key) for every key of ``raw`` the model reads, nested ones too."""
    fields = {f.encode_name: f for f in msgspec.structs.fields(model)}
    for key, value in raw.items():
        if key not in fields:
            continue
        yield (*path, key), model, key
        inner = _struct_of(fields[key].type)
        if inner is None or value is None:
            continue
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            where = [*path, key, i] if isinstance(value, list) else [*path, key]
            if isinstance(item, dict):
                yield from _drops(inner, item, where)


def _without(doc: Any, path: tuple[Any, ...]) -> Any:
    copy = json.loads(json.dumps(doc))
    node = copy
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return copy


BODIES = [
    (case[0], case[1], json.loads((WF / case[0]).read_text())) for case in CASES
] + REFERENCE_BODIES


@pytest.mark.parametrize(("name", "model", "doc"), BODIES, ids=[b[0] for b in BODIES])
def test_a_body_without_a_required_field_is_a_decode_error(
    name: str, model: type[msgspec.Struct], doc: Any
) -> None:
    decode_json(json.dumps(doc).encode(), model)  # the whole body decodes
    checked = 0
    for path, owner, key in _drops(model, doc, []):
        body = json.dumps(_without(doc, path)).encode()
        if key in REQUIRED[owner]:
            with pytest.raises(DecodeError, match=f"missing required field `{key}`"):
                decode_json(body, model)
            checked += 1
        else:
            decode_json(body, model)  # a field that may be missing
    assert checked >= len(REQUIRED[model])


def test_an_empty_answer_is_no_attempt() -> None:
    # `{}` to PUT /api/attempts once gave Attempt(id='')
    with pytest.raises(DecodeError, match="missing required field `id`"):
        decode_json(b"{}", Attempt)
    for model in (AttemptList, TaskList, SessionList, ProjectList, WorkflowList, LogFileList):
        with pytest.raises(DecodeError, match="missing required field"):
            decode_json(b"{}", model)  # not an empty listing


def test_a_required_field_sent_as_null_is_a_decode_error() -> None:
    for key in ("id", "sessionTime", "project", "done", "params"):
        with pytest.raises(DecodeError, match="Expected"):
            decode_json(json.dumps(_ATTEMPT_BODY | {key: None}).encode(), Attempt)


# -- attempt status (§3.1): every combination of the flags and of what the server sent ------

_MISSING = object()
_SENT = [_MISSING, None, "running", "queued", "blocked", "canceling"]
_SENT += ["success", "error", "killed", "some_new_value"]
_FINISHED = {"success", "error", "killed"}


@pytest.mark.parametrize("model", [Attempt, LastAttempt])
@pytest.mark.parametrize("sent", _SENT, ids=lambda s: "absent" if s is _MISSING else str(s))
@pytest.mark.parametrize("done", [True, False])
@pytest.mark.parametrize("success", [True, False])
@pytest.mark.parametrize("cancel_requested", [True, False])
def test_attempt_status_never_contradicts_the_flags(
    model: type[Attempt | LastAttempt],
    sent: Any,
    done: bool,
    success: bool,
    cancel_requested: bool,
) -> None:
    body = dict(_ATTEMPT_BODY)
    body.pop("status")
    if sent is not _MISSING:
        body["status"] = sent
    body |= {"done": done, "success": success, "cancelRequested": cancel_requested}
    attempt = decode_json(json.dumps(body).encode(), model)
    status = attempt.status
    assert (status in _FINISHED) == done == attempt.finished
    assert (status == "success") == (done and success) == (done and not attempt.failed)
    assert (status == "killed") == attempt.killed == (done and not success and cancel_requested)
    assert (status == "error") == (done and not success and not cancel_requested)
    assert (status == "canceling") == (not done and cancel_requested)
    if not done and not cancel_requested:
        # what the server says of an attempt under way is kept, TD's extra values included
        kept = sent if sent in ("running", "queued", "blocked", "some_new_value") else "running"
        assert status == kept


def test_the_recorded_attempts_keep_their_status() -> None:
    assert load("GET__api_attempts_{id}__td-guide.json", Attempt).status == "success"
    # OSS sends no status on a session's last attempt: derived from the flags
    session = load("GET__api_sessions_{id}__digdag-ui.json", Session)
    assert session.last_attempt.status_ is None
    assert session.last_attempt.status == "success"


def _attempt(**changes: Any) -> Attempt:
    recorded: Attempt = load("GET__api_attempts_{id}__td-guide.json", Attempt)
    return msgspec.structs.replace(recorded, **changes)


def test_attempt_flags() -> None:
    killed = _attempt(done=True, success=False, cancel_requested=True)
    assert (killed.finished, killed.failed, killed.killed) == (True, True, True)
    ok = _attempt(done=True, success=True, cancel_requested=True)
    assert (ok.finished, ok.failed, ok.killed) == (True, False, False)
    running = _attempt(done=False, success=False)
    assert (running.finished, running.failed, running.killed) == (False, False, False)


def _task(**changes: Any) -> Task:
    tasks: list[Task] = load("GET__api_attempts_{id}_tasks__td-guide.json", TaskList).tasks
    return msgspec.structs.replace(tasks[1], **changes)


def test_attempt_raise_for_status_names_its_failed_tasks() -> None:
    failed = [
        _task(
            full_name="+wf+load",
            state=TaskState.ERROR,
            error={"message": "Query failed", "stacktrace": "..."},
        )
    ]
    attempt = _attempt(id="77", done=True, success=False, failed_tasks=failed)
    with pytest.raises(AttemptFailed) as info:
        attempt.raise_for_status()
    assert info.value.attempt is attempt
    assert info.value.failed_tasks == failed
    assert "77" in str(info.value)
    assert "error" in str(info.value)
    assert "+wf+load: Query failed" in str(info.value)


def test_attempt_raise_for_status_returns_it_otherwise() -> None:
    for attempt in (_attempt(done=True, success=True), _attempt(done=False, success=False)):
        assert attempt.raise_for_status() is attempt


# -- tasks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "done", "failed"),
    [
        ("blocked", False, False),
        ("ready", False, False),
        ("retry_waiting", False, False),
        ("group_retry_waiting", False, False),
        ("running", False, False),
        ("planned", False, False),
        ("group_error", True, True),
        ("success", True, False),
        ("error", True, True),
        ("canceled", True, False),
    ],
)
def test_task_states(state: str, done: bool, failed: bool) -> None:
    task = _task(state=state)
    assert (task.done, task.failed) == (done, failed)


def test_task_error_message() -> None:
    task = _task(state="error", error={"message": "boom", "stacktrace": "a, b"})
    assert task.error_message == "boom"
    assert _task().error_message is None


# -- other shapes (no public sample; shapes from workflow-api.md §3) -------------------------


def test_schedule_list_and_summary() -> None:
    (schedule,) = decode_json(
        json.dumps({"schedules": [_SCHEDULE_BODY]}).encode(), WorkflowScheduleList
    ).schedules
    assert (schedule.id, schedule.workflow.id, schedule.disabled_at_dt) == ("3", "7", None)
    assert schedule.next_schedule_time_dt == datetime(
        2019, 11, 1, tzinfo=timezone(timedelta(hours=9))
    )
    body = _SCHEDULE_BODY | {
        "disabledAt": "2019-11-02T00:00:00Z",
        "createdAt": "2019-01-01T00:00:00Z",
        "updatedAt": "2019-01-01T00:00:00Z",
    }
    summary = decode_json(json.dumps(body).encode(), WorkflowScheduleSummary)
    assert summary.disabled_at_dt == datetime(2019, 11, 2, tzinfo=UTC)
    assert summary.updated_at_dt == datetime(2019, 1, 1, tzinfo=UTC)
    assert isinstance(summary, WorkflowSchedule)


def test_backfill_dry_run() -> None:
    dummy = _ATTEMPT_BODY | {"id": "0", "index": 0, "sessionId": "0", "done": False}
    body = {"id": "3", "project": _REF, "workflow": {"id": "7", "name": "w"}, "attempts": [dummy]}
    collection = decode_json(json.dumps(body).encode(), ScheduleAttemptCollection)
    assert collection.id == "3"
    assert [(a.id, a.index, a.session_id) for a in collection.attempts] == [("0", 0, "0")]


def test_log_files() -> None:
    handle = REFERENCE_BODIES[5][2]["files"][0]
    other = handle | {"fileName": "f2", "taskName": "+wf1+t2", "direct": "https://s3/x?sig=1"}
    body = {"files": [handle, other | {"fileSize": 1}]}
    files = decode_json(json.dumps(body).encode(), LogFileList).files
    assert [(f.task_name, f.file_size, f.direct) for f in files] == [
        ("+wf1+t1", 123, None),
        ("+wf1+t2", 1, "https://s3/x?sig=1"),
    ]
    assert files[0].file_time_dt == datetime(2023, 8, 22, 6, 0, 1, tzinfo=UTC)


def test_revisions_with_and_without_user_info() -> None:
    body = (
        b'{"revisions": [{"revision": "r2", "createdAt": "2020-01-02T00:00:00Z",'
        b' "archiveType": "s3", "archiveMd5": "KruTqOtJ659HHpIJ6NyTTA==",'
        b' "userInfo": {"td": {"user": {"id": 1, "name": "n", "email": "e"}}}},'
        b' {"revision": "r1", "createdAt": "2020-01-01T00:00:00Z", "archiveType": "db",'
        b' "archiveMd5": null}]}'
    )
    r2, r1 = msgspec.json.decode(body, type=RevisionList).revisions
    assert r2.user_info == {"td": {"user": {"id": 1, "name": "n", "email": "e"}}}
    assert r2.archive_md5 == "KruTqOtJ659HHpIJ6NyTTA=="
    assert (r1.user_info, r1.archive_md5, r1.archive_type) == (None, None, "db")
    assert isinstance(r1, Revision)


def test_secrets_session_time_version() -> None:
    secret = msgspec.json.decode(
        b'{"key": "td.apikey", "project": {"id": "1", "name": "p"}}', type=Secret
    )
    assert (secret.key, secret.project) == ("td.apikey", ProjectRef(id="1", name="p"))
    keys = msgspec.json.decode(b'{"secrets": [{"key": "a"}, {"key": "b.c"}]}', type=SecretList)
    assert keys.secrets == [SecretKey(key="a"), SecretKey(key="b.c")]
    truncated = msgspec.json.decode(
        b'{"project": {"id": "1", "name": "p"}, "revision": "r",'
        b' "sessionTime": "2016-01-01T00:00:00+09:00", "timezone": "Asia/Tokyo"}',
        type=SessionTime,
    )
    assert truncated.session_time == "2016-01-01T00:00:00+09:00"
    assert truncated.session_time_dt == datetime(2015, 12, 31, 15, tzinfo=UTC)
    assert msgspec.json.decode(b'{"version": "0.10.5"}', type=Version).version == "0.10.5"
    check = msgspec.json.decode(
        b'{"serverVersion": "0.10.5", "upgradeRecommended": true, "apiCompatible": false}',
        type=VersionCheck,
    )
    assert (check.server_version, check.upgrade_recommended, check.api_compatible) == (
        "0.10.5",
        True,
        False,
    )


def test_td_only_fields_are_optional_and_read() -> None:
    oss = load("GET__api_projects__td-guide.json", ProjectList).projects[0]
    assert oss.metadata == []
    attempt = decode_json(
        json.dumps(_ATTEMPT_BODY | {"poolId": "42", "status": "queued", "done": False}).encode(),
        Attempt,
    )
    assert (attempt.pool_id, attempt.status) == ("42", "queued")
    assert load("GET__api_attempts_{id}__td-guide.json", Attempt).pool_id is None


def test_numeric_ids_become_str() -> None:
    body = _ATTEMPT_BODY | {
        "id": 5,
        "sessionId": 6,
        "project": {"id": 1, "name": "p"},
        "workflow": {"name": "w", "id": 2},
    }
    attempt = decode_json(json.dumps(body).encode(), Attempt)
    assert (attempt.id, attempt.session_id, attempt.project.id, attempt.workflow.id) == (
        "5",
        "6",
        "1",
        "2",
    )


def test_workflow_id_may_be_null() -> None:
    raw = json.loads((WF / "GET__api_sessions_{id}__td-guide.json").read_text())
    raw["workflow"]["id"] = None
    session = decode_json(json.dumps(raw).encode(), Session)
    assert session.workflow == WorkflowRef(name="daily_aggregation", id=None)


def test_unknown_fields_are_ignored() -> None:
    raw = json.loads((WF / "GET__api_attempts_{id}_tasks__td-guide.json").read_text())
    raw["tasks"][0] |= {"newThing": [1, 2], "group": True}
    tasks = decode_json(json.dumps(raw).encode(), TaskList).tasks
    assert tasks == load("GET__api_attempts_{id}_tasks__td-guide.json", TaskList).tasks


def test_wire_names_are_camel_case() -> None:
    encoded = msgspec.json.decode(msgspec.json.encode(_task(is_group=True, parent_id="0")))
    assert {"fullName", "isGroup", "parentId", "cancelRequested", "retryAt"} <= encoded.keys()
    encoded = msgspec.json.decode(msgspec.json.encode(_attempt(status_="success")))
    assert encoded["status"] == "success"
    assert "status_" not in encoded


# -- round trips ---------------------------------------------------------------------------

_text = st.text(max_size=20)
_opt_text = st.none() | _text
_ids = st.integers(min_value=0, max_value=2**63).map(str)
_instant = st.sampled_from(["2021-09-29T13:17:27Z", "2025-08-03T03:05:30Z"])
_params = st.dictionaries(_text, _text | st.integers(-5, 5) | st.booleans(), max_size=3)

_attempts = st.builds(
    Attempt,
    id=_ids,
    index=st.integers(0, 10),
    project=st.builds(ProjectRef, id=_ids, name=_text),
    workflow=st.builds(WorkflowRef, name=_text, id=st.none() | _ids),
    session_id=_ids,
    session_uuid=_text,
    session_time=st.sampled_from(["2021-09-29T13:17:27+00:00", "2016-01-01T00:00:00+09:00"]),
    retry_attempt_name=_opt_text,
    done=st.booleans(),
    success=st.booleans(),
    cancel_requested=st.booleans(),
    params=_params,
    status_=st.none() | st.sampled_from(["success", "error", "queued"]),
    pool_id=st.none() | _ids,
    created_at=_instant,
    finished_at=st.none() | _instant,
)
_tasks = st.builds(
    Task,
    id=_ids,
    full_name=_text,
    parent_id=st.none() | _ids,
    config=_params,
    upstreams=st.lists(_ids, max_size=3),
    is_group=st.booleans(),
    state=st.sampled_from(["blocked", "running", "success", "error", "group_error"]),
    export_params=_params,
    store_params=_params,
    state_params=_params,
    error=st.just({}) | st.builds(lambda m: {"message": m}, _text),
    updated_at=_instant,
    started_at=st.none() | _instant,
)
_projects = st.builds(
    Project,
    id=_ids,
    name=_text,
    revision=_text,
    archive_type=st.sampled_from(["s3", "db"]),
    created_at=_instant,
    updated_at=_instant,
    archive_md5=_opt_text,
    metadata=st.lists(st.builds(ProjectMetadata, key=_text, value=_text), max_size=3),
    deleted_at=st.none() | _instant,
)


@given(st.builds(AttemptList, attempts=st.lists(_attempts, max_size=3)))
def test_attempt_list_round_trips(model: AttemptList) -> None:
    assert msgspec.json.decode(msgspec.json.encode(model), type=AttemptList) == model


@given(st.builds(TaskList, tasks=st.lists(_tasks, max_size=3)))
def test_task_list_round_trips(model: TaskList) -> None:
    assert msgspec.json.decode(msgspec.json.encode(model), type=TaskList) == model


@given(_projects)
def test_project_round_trips(model: Project) -> None:
    assert msgspec.json.decode(msgspec.json.encode(model), type=Project) == model
