"""Workflow response models: every recorded body decodes; attempt status, tasks, edge cases."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiotd.errors import AttemptFailed
from aiotd.models import (
    Attempt,
    AttemptList,
    AttemptState,
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


def _samples_root() -> Path:
    """The recorded bodies: $AIOTD_SAMPLES, tests/samples, or the shared copy next to the repo."""
    here = Path(__file__).resolve()
    candidates = [here.parents[1] / "samples", here.parents[3] / "shared" / "samples"]
    if "AIOTD_SAMPLES" in os.environ:
        candidates.insert(0, Path(os.environ["AIOTD_SAMPLES"]))
    for path in candidates:
        if (path / "workflow").is_dir():
            return path
    raise RuntimeError(f"no samples directory among {candidates}; set AIOTD_SAMPLES")


WF = _samples_root() / "workflow"

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


# -- attempt status (§3.1) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("success", "done", "cancel_requested", "status"),
    [
        (True, True, False, "success"),
        (True, True, True, "success"),
        (False, True, True, "killed"),
        (False, True, False, "error"),
        (False, False, False, "running"),
        (False, False, True, "running"),
    ],
)
def test_attempt_status_derived_when_absent(
    success: bool, done: bool, cancel_requested: bool, status: str
) -> None:
    body = msgspec.json.encode(
        {"id": "1", "success": success, "done": done, "cancelRequested": cancel_requested}
    )
    for model in (Attempt, LastAttempt):
        attempt = msgspec.json.decode(body, type=model)
        assert attempt.status_ is None
        assert attempt.status == status


@pytest.mark.parametrize("sent", ["queued", "blocked", "canceling", "some_new_value"])
def test_attempt_status_from_the_server_wins(sent: str) -> None:
    attempt = msgspec.json.decode(
        msgspec.json.encode({"id": "1", "done": False, "status": sent}), type=Attempt
    )
    assert attempt.status == sent


def test_attempt_null_status_is_derived() -> None:
    attempt = msgspec.json.decode(b'{"done": true, "status": null}', type=Attempt)
    assert attempt.status == AttemptState.ERROR


def test_attempt_flags() -> None:
    killed = Attempt(id="9", done=True, cancel_requested=True)
    assert (killed.finished, killed.failed, killed.killed) == (True, True, True)
    ok = Attempt(id="9", done=True, success=True, cancel_requested=True)
    assert (ok.finished, ok.failed, ok.killed) == (True, False, False)
    running = Attempt(id="9")
    assert (running.finished, running.failed, running.killed) == (False, False, False)


def test_attempt_raise_for_status_carries_the_failed_tasks() -> None:
    attempt = Attempt(id="77", done=True)
    failed = [
        Task(
            full_name="+wf+load",
            state=TaskState.ERROR,
            error={"message": "Query failed", "stacktrace": "..."},
        )
    ]
    with pytest.raises(AttemptFailed) as info:
        attempt.raise_for_status(failed)
    assert info.value.attempt is attempt
    assert info.value.failed_tasks == failed
    assert "77" in str(info.value)
    assert "error" in str(info.value)
    assert "+wf+load: Query failed" in str(info.value)


def test_attempt_raise_for_status_returns_it_otherwise() -> None:
    for attempt in (Attempt(id="1", done=True, success=True), Attempt(id="1")):
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
    task = Task(state=state)
    assert (task.done, task.failed) == (done, failed)


def test_task_error_message() -> None:
    task = msgspec.json.decode(
        b'{"id": "5", "fullName": "+wf+t", "isGroup": false, "state": "error",'
        b' "error": {"message": "boom", "stacktrace": "a, b"}}',
        type=Task,
    )
    assert (task.id, task.full_name, task.error_message) == ("5", "+wf+t", "boom")
    assert Task().error_message is None


# -- other shapes (no public sample; shapes from workflow-api.md §3) -------------------------


def test_schedule_list_and_summary() -> None:
    body = (
        b'{"schedules": [{"id": "3", "project": {"id": "1", "name": "p"},'
        b' "workflow": {"id": "7", "name": "w"}, "nextRunTime": "2019-11-01T07:00:00Z",'
        b' "nextScheduleTime": "2019-11-01T00:00:00+09:00", "disabledAt": null}]}'
    )
    (schedule,) = msgspec.json.decode(body, type=WorkflowScheduleList).schedules
    assert (schedule.id, schedule.workflow.id, schedule.disabled_at_dt) == ("3", "7", None)
    assert schedule.next_schedule_time_dt == datetime(
        2019, 11, 1, tzinfo=timezone(timedelta(hours=9))
    )
    summary = msgspec.json.decode(
        b'{"id": "3", "disabledAt": "2019-11-02T00:00:00Z", "createdAt": "2019-01-01T00:00:00Z",'
        b' "updatedAt": "2019-01-01T00:00:00Z"}',
        type=WorkflowScheduleSummary,
    )
    assert summary.disabled_at_dt == datetime(2019, 11, 2, tzinfo=UTC)
    assert summary.updated_at_dt == datetime(2019, 1, 1, tzinfo=UTC)
    assert isinstance(summary, WorkflowSchedule)


def test_backfill_dry_run() -> None:
    body = (
        b'{"id": "3", "project": {"id": "1", "name": "p"}, "workflow": {"id": "7", "name": "w"},'
        b' "attempts": [{"id": "0", "index": 0, "sessionId": "0", "done": false,'
        b' "sessionTime": "1987-01-01T00:00:00+00:00"}]}'
    )
    collection = msgspec.json.decode(body, type=ScheduleAttemptCollection)
    assert collection.id == "3"
    assert [(a.id, a.index, a.session_id) for a in collection.attempts] == [("0", 0, "0")]


def test_log_files() -> None:
    body = (
        b'{"files": [{"fileName": "+wf1+t1@64e44ee12f7e43a0.452660@ip-10-20.log.gz",'
        b' "fileSize": 123, "taskName": "+wf1+t1", "fileTime": "2023-08-22T06:00:01Z",'
        b' "agentId": "452660@ip-10-20", "direct": null},'
        b' {"fileName": "f2", "fileSize": 1, "taskName": "+wf1+t2",'
        b' "fileTime": "2023-08-22T06:00:02Z", "agentId": "a", "direct": "https://s3/x?sig=1"}]}'
    )
    files = msgspec.json.decode(body, type=LogFileList).files
    assert [(f.task_name, f.file_size, f.direct) for f in files] == [
        ("+wf1+t1", 123, None),
        ("+wf1+t2", 1, "https://s3/x?sig=1"),
    ]
    assert files[0].file_time_dt == datetime(2023, 8, 22, 6, 0, 1, tzinfo=UTC)
    assert LogFileHandle().direct is None


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
    assert [(s.key, s.project) for s in keys.secrets] == [("a", None), ("b.c", None)]
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
    oss = msgspec.json.decode(b'{"id": "1", "name": "p"}', type=Project)
    assert oss.metadata == []
    attempt = msgspec.json.decode(b'{"id": "1", "poolId": "42", "status": "queued"}', type=Attempt)
    assert (attempt.pool_id, attempt.status) == ("42", "queued")


def test_numeric_ids_become_str() -> None:
    attempt = msgspec.json.decode(
        b'{"id": 5, "sessionId": 6, "project": {"id": 1, "name": "p"},'
        b' "workflow": {"name": "w", "id": 2}}',
        type=Attempt,
    )
    assert (attempt.id, attempt.session_id, attempt.project.id, attempt.workflow.id) == (
        "5",
        "6",
        "1",
        "2",
    )


def test_workflow_id_may_be_null() -> None:
    session = msgspec.json.decode(
        b'{"id": "1", "workflow": {"name": "w", "id": null}}', type=Session
    )
    assert session.workflow == WorkflowRef(name="w", id=None)


def test_unknown_fields_are_ignored_and_missing_ones_default() -> None:
    task = msgspec.json.decode(b'{"id": "1", "newThing": [1, 2], "group": true}', type=Task)
    assert task == Task(id="1")
    assert (task.is_group, task.error, task.upstreams, task.state) == (False, {}, [], "")


def test_wire_names_are_camel_case() -> None:
    encoded = msgspec.json.decode(
        msgspec.json.encode(Task(id="1", full_name="+a", is_group=True, parent_id="0"))
    )
    assert {"fullName", "isGroup", "parentId", "cancelRequested", "retryAt"} <= encoded.keys()
    encoded = msgspec.json.decode(msgspec.json.encode(Attempt(id="1", status_="success")))
    assert encoded["status"] == "success"
    assert "status_" not in encoded


# -- round trips ---------------------------------------------------------------------------

_text = st.text(max_size=20)
_opt_text = st.none() | _text
_ids = st.integers(min_value=0, max_value=2**63).map(str)
_instant = st.none() | st.sampled_from(["2021-09-29T13:17:27Z", "2025-08-03T03:05:30Z"])
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
    finished_at=_instant,
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
    error=st.just({}) | st.builds(lambda m: {"message": m}, _text),
    started_at=_instant,
)
_projects = st.builds(
    Project,
    id=_ids,
    name=_text,
    revision=_text,
    archive_md5=_opt_text,
    metadata=st.lists(st.builds(ProjectMetadata, key=_text, value=_text), max_size=3),
    deleted_at=_instant,
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
