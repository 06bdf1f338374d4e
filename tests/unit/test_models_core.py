"""v3 response models: every recorded body decodes, and the edge cases TD is known for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiotd.errors import DecodeError, JobFailed
from aiotd.models import (
    AccountResponse,
    ApiKeyAdded,
    ApiKeyList,
    AuthenticatedUser,
    BulkImport,
    BulkImportList,
    BulkImportParts,
    BulkImportRef,
    BulkLoadGuess,
    BulkLoadJob,
    BulkLoadPreview,
    BulkLoadSession,
    Column,
    Database,
    DatabaseList,
    DatabaseRef,
    ImportResult,
    IssuedJob,
    Job,
    JobDebug,
    JobList,
    JobStatus,
    KilledJob,
    ResultList,
    Schedule,
    ScheduleHistory,
    ScheduleList,
    ScheduleRun,
    ServerStatus,
    Table,
    TableList,
    TableRef,
    TableSwap,
    UserAdded,
    UserList,
    UserRef,
    parse_priority,
    priority_name,
)
from tests._samples import samples_dir

V3 = samples_dir("v3")

UTC = timezone.utc


def load(name: str, model: Any) -> Any:
    return msgspec.json.decode((V3 / name).read_bytes(), type=model)


# (file, model, what to read from the decoded model, what it must be)
Case = tuple[str, Any, Callable[[Any], Any], Any]

CASES: list[Case] = [
    ("server_status.json", ServerStatus, lambda m: (m.status, m.ok), ("ok", True)),
    (
        "account_show.json",
        AccountResponse,
        lambda m: (m.account.id, m.account.maximum_cores, m.account.created_at_dt),
        ("1", 4, datetime(2014, 12, 14, 8, 24, tzinfo=UTC)),
    ),
    (
        "database_list.json",
        DatabaseList,
        lambda m: (
            [d.name for d in m.databases],
            m.databases[0].delete_protected,
            m.databases[1].permission,
            m.databases[0].organization,
            m.databases[0].id,
            m.databases[1].updated_at_dt,
        ),
        (
            ["test", "sample_datasets", "information_schema"],
            True,
            "query_only",
            None,
            None,
            datetime(2016, 4, 21, 6, 31, 45, tzinfo=UTC),
        ),
    ),
    ("database_create.json", DatabaseRef, lambda m: m.database, "test"),
    ("database_delete.json", DatabaseRef, lambda m: m.database, "test"),
    (
        "table_list.json",
        TableList,
        lambda m: (
            m.database,
            m.tables[0].id,
            m.tables[0].columns[:2],
            len(m.tables[1].columns),
            m.tables[0].counter_updated_at_dt,
            m.tables[0].expire_days,
        ),
        (
            "nh4_test",
            "99999991",
            [Column(name="id", type="long"), Column(name="fizz", type="string")],
            7,
            datetime(2017, 5, 13, 11, 39, 53, tzinfo=UTC),
            None,
        ),
    ),
    (
        "table_show.json",
        Table,
        lambda m: (m.id, m.columns, m.expire_days, m.last_log_timestamp_dt, m.created_at_dt),
        (
            "999999",
            [Column(name="col1", type="string")],
            10,
            None,
            datetime(2017, 5, 14, 12, 19, 37, tzinfo=UTC),
        ),
    ),
    *[
        (
            f"table_{name}.json",
            TableRef,
            lambda m: (m.database, m.table, m.type),
            ("test_database", "test_table", "log"),
        )
        for name in ("create", "delete", "update", "update_schema")
    ],
    (
        "table_change_database.json",
        TableRef,
        lambda m: (m.database, m.table, m.type),
        ("dst_db", "table", "log"),
    ),
    (
        "table_swap.json",
        TableSwap,
        lambda m: (m.database, m.table1, m.table2),
        ("test_database", "test_table2", "test_table"),
    ),
    (
        "job_list.json",
        JobList,
        lambda m: (
            m.count,
            m.from_,
            m.to,
            [j.job_id for j in m.jobs],
            m.jobs[0].killed,
            m.jobs[0].result_size,
            m.jobs[0].result_columns,
            m.jobs[2].result_columns,
            m.jobs[2].finished,
            m.jobs[0].created_at_dt,
        ),
        (
            4,
            None,
            None,
            ["9999991", "9999992", "9999993", "9999994"],
            True,
            None,
            [],
            [Column(name="_col0", type="bigint")],
            True,
            datetime(2016, 7, 26, 8, 14, 46, tzinfo=UTC),
        ),
    ),
    (
        "job_show.json",
        Job,
        lambda m: (
            m.job_id,
            m.type,
            m.success,
            m.debug.stderr,
            m.debug.cmdout.startswith("started at"),
            m.cpu_time,
            m.end_at_dt,
            m.result_columns,
        ),
        (
            "9999999",
            "presto",
            True,
            None,
            True,
            None,
            datetime(2016, 7, 26, 8, 29, 34, tzinfo=UTC),
            [Column(name="_col0", type="bigint")],
        ),
    ),
    (
        "job_status_success.json",
        JobStatus,
        lambda m: (m.job_id, m.success, m.finished, m.num_records),
        ("9999999", True, True, 10),
    ),
    (
        "job_status_error.json",
        JobStatus,
        lambda m: (m.error, m.failed, m.finished, m.result_size),
        (True, True, True, 0),
    ),
    (
        "job_status_killed.json",
        JobStatus,
        lambda m: (m.killed, m.failed, m.result_size),
        (True, True, None),
    ),
    (
        "job_status_queued.json",
        JobStatus,
        lambda m: (m.queued, m.finished, m.start_at, m.start_at_dt, m.end_at_dt),
        (True, False, None, None, None),
    ),
    (
        "job_status_running.json",
        JobStatus,
        lambda m: (m.running, m.finished, m.start_at_dt, m.end_at_dt),
        (True, False, datetime(2016, 7, 26, 8, 36, 50, tzinfo=UTC), None),
    ),
    (
        "job_issue.json",
        IssuedJob,
        lambda m: (m.job_id, m.database, m.existing),
        ("9999999", "sample_datasets", False),
    ),
    ("job_issue_bulkload.json", IssuedJob, lambda m: (m.job_id, m.database), ("12345", "")),
    (
        "job_kill.json",
        KilledJob,
        lambda m: (m.job_id, m.former_status),
        ("9999999", "running"),
    ),
    ("job_result_export.json", IssuedJob, lambda m: m.job_id, "101"),
    (
        "export_run.json",
        IssuedJob,
        lambda m: (m.job_id, m.database),
        ("9999999", "sample_datasets"),
    ),
    (
        "schedule_list.json",
        ScheduleList,
        lambda m: (
            m.schedules[0].name,
            m.schedules[0].cron,
            m.schedules[0].next_time_dt,
            m.schedules[0].created_at_dt,
        ),
        ("test_query", None, None, datetime(2017, 3, 27, 9, 39, 42, tzinfo=UTC)),
    ),
    (
        "schedule_create.json",
        Schedule,
        lambda m: (m.id, m.name, m.start_dt, m.result, m.database),
        ("234451", "test_sdk_query", None, "", "test_db"),
    ),
    (
        "schedule_update.json",
        Schedule,
        lambda m: (m.id, m.priority),
        ("234451", 2),
    ),
    (
        "schedule_delete.json",
        Schedule,
        lambda m: (m.name, m.id, m.query, m.priority, m.created_at_dt),
        (
            "test_schedule",
            None,
            "SELECT * FROM test_table",
            0,
            datetime(2016, 11, 25, 11, 59, 19, tzinfo=UTC),
        ),
    ),
    (
        "schedule_history.json",
        ScheduleHistory,
        lambda m: (
            m.count,
            m.from_,
            m.to,
            m.history[0].job_id,
            m.history[0].priority,
            m.history[0].scheduled_at_dt,
            m.history[1].result_columns,
        ),
        (
            2,
            0,
            20,
            "1111111",
            -2,
            datetime(2017, 4, 26, 8, 39, tzinfo=UTC),
            [Column(name="ccccc", type="ddddddd")],
        ),
    ),
    (
        "schedule_run.json",
        ScheduleRun,
        lambda m: (m.jobs[0].job_id, m.jobs[0].type, m.jobs[0].scheduled_at_dt),
        ("11111111111", "presto", datetime(2017, 4, 26, 11, 57, tzinfo=UTC)),
    ),
    (
        "result_list.json",
        ResultList,
        lambda m: [(r.name, r.organization) for r in m.results],
        [("foo", None), ("bar", None), ("baz", None)],
    ),
    (
        "user_authenticate.json",
        AuthenticatedUser,
        lambda m: (m.name, m.apikey.startswith("0000/"), "0000/" in repr(m)),
        ("Test User", True, False),
    ),
    (
        "user_list.json",
        UserList,
        lambda m: (
            [u.id for u in m.users],
            m.users[2].first_name,
            m.users[0].administrator,
            m.users[0].roles,
            m.users[0].created_at_dt,
        ),
        (["1", "2", "3"], None, True, [], datetime(2016, 5, 17, 9, 26, 38, tzinfo=UTC)),
    ),
    (
        "user_apikey_list.json",
        ApiKeyList,
        lambda m: (len(m.apikeys), "hoge" in repr(m)),
        (2, False),
    ),
    ("user_add.json", UserAdded, lambda m: m.name, "Test User"),
    ("user_remove.json", UserRef, lambda m: m.user, "hogefuga@github.com"),
    (
        "user_apikey_add.json",
        ApiKeyAdded,
        lambda m: (m.apikey.startswith("0000/"), "hoge" in repr(m)),
        (True, False),
    ),
    ("user_apikey_remove.json", UserRef, lambda m: m.user, "hogefuga@github.com"),
    *[
        (
            f"bulk_import_{name}.json",
            BulkImportRef,
            lambda m: (m.name, m.bulk_import, m.job_id),
            ("test_bulk_import_name", "test_bulk_import_name", None),
        )
        for name in ("create", "delete", "delete_part", "freeze", "unfreeze", "upload_part")
    ],
    (
        "bulk_import_commit.json",
        BulkImportRef,
        lambda m: (m.name, m.job_id),
        ("test_bulk_import_name", None),
    ),
    (
        "bulk_import_perform.json",
        BulkImportRef,
        lambda m: (m.name, m.job_id),
        ("test_bulk_import_name", "11111111111"),
    ),
    (
        "bulk_import_show.json",
        BulkImport,
        lambda m: (m.status, m.job_id, m.valid_records, m.upload_frozen, m.table),
        ("uploading", None, None, False, "test_bulk_import_table"),
    ),
    (
        "bulk_import_list.json",
        BulkImportList,
        lambda m: [(b.database, b.table) for b in m.bulk_imports],
        [
            ("test_bulk_import_db", "test_bulk_import_table"),
            (None, None),
            ("test_bulk_import_db", None),
        ],
    ),
    (
        "bulk_import_list_parts.json",
        BulkImportParts,
        lambda m: (m.name, m.parts),
        ("test_bulk_import_name", ["test_bulk_import_part_1", "test_bulk_import_part_2"]),
    ),
    (
        "bulk_loads_guess.json",
        BulkLoadGuess,
        lambda m: (m.config["type"], m.config["parser"]["columns"][0]["name"]),
        ("s3_file", "time"),
    ),
    (
        "bulk_loads_preview.json",
        BulkLoadPreview,
        lambda m: ((m.schema[1].index, m.schema[1].name, m.schema[1].type), m.records[0]),
        ((1, "c1", "long"), ["19920116", 32864, "06612", "00195"]),
    ),
    (
        "bulk_loads_session.json",
        BulkLoadSession,
        lambda m: (m.name, m.cron, m.timezone, m.delay, m.config["bucket"]),
        ("nahi_test_1", "@daily", "Asia/Tokyo", 3600, "td-bulk-loader-test-tokyo"),
    ),
    (
        "bulk_loads_list.json",
        list[BulkLoadSession],
        lambda m: [s.name for s in m],
        ["nahi_test_1", "nahi_test_1"],
    ),
    (
        "bulk_loads_jobs.json",
        list[BulkLoadJob],
        lambda m: (
            m[0].job_id,
            m[0].account_id,
            m[0].database.id,
            m[0].table.name,
            m[0].schema[0],
            m[0].created_at_dt,
            m[0].records,
        ),
        (
            "123456",
            "1",
            "189263",
            "bulkload_import_test",
            Column(name="c0", type="string", alias=""),
            datetime(2015, 3, 19, 4, 8, 53, tzinfo=UTC),
            10,
        ),
    ),
    ("bulk_loads_run.json", IssuedJob, lambda m: m.job_id, "12345"),
]

# Error bodies are read by the HTTP layer (APIError), not decoded into response models.
SKIPPED_ERROR_BODIES = {
    "error_403_change_database.json",
    "error_404_job_show.json",
    "error_409_database_exists.json",
    "error_409_table_exists.json",
    "error_422_validation.json",
}


def test_every_sample_has_a_model_or_is_an_intentionally_skipped_error_body() -> None:
    on_disk = {p.name for p in V3.glob("*.json")}
    mapped = {case[0] for case in CASES}
    assert on_disk - mapped == SKIPPED_ERROR_BODIES
    assert mapped <= on_disk
    assert all(name.startswith("error_") for name in SKIPPED_ERROR_BODIES)


@pytest.mark.parametrize(("name", "model", "read", "expected"), CASES, ids=[c[0] for c in CASES])
def test_sample_decodes(name: str, model: Any, read: Callable[[Any], Any], expected: Any) -> None:
    assert read(load(name, model)) == expected


# -- ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b'{"job_id": 12345, "status": "queued"}', b'{"job_id": "12345", "status": "queued"}']
)
def test_job_id_number_or_string_becomes_str(raw: bytes) -> None:
    job = msgspec.json.decode(raw, type=Job)
    assert job.job_id == "12345"
    assert type(job.job_id) is str


def test_every_id_kind_is_normalised() -> None:
    job = msgspec.json.decode(
        b'{"job_id": 1, "status": "success", "linked_result_export_job_id": 2,'
        b' "result_export_target_job_id": 3}',
        type=Job,
    )
    assert (job.job_id, job.linked_result_export_job_id, job.result_export_target_job_id) == (
        "1",
        "2",
        "3",
    )
    assert msgspec.json.decode(b'{"id": 7, "name": "t"}', type=Table).id == "7"
    assert msgspec.json.decode(b'{"id": "1761984", "name": "d"}', type=Database).id == "1761984"
    assert msgspec.json.decode(b'{"id": 1761984, "name": "d"}', type=Database).id == "1761984"
    schedule = msgspec.json.decode(b'{"name": "s", "executing_user_id": 9}', type=Schedule)
    assert schedule.executing_user_id == "9"


def test_constructing_with_an_int_id_normalises_too() -> None:
    assert IssuedJob(job_id=5).job_id == "5"  # type: ignore[arg-type]


def test_an_id_of_another_type_is_a_decode_error() -> None:
    with pytest.raises(msgspec.ValidationError, match="job_id"):
        msgspec.json.decode(b'{"job_id": [1], "status": "queued"}', type=Job)
    with pytest.raises(msgspec.ValidationError, match="job_id"):
        msgspec.json.decode(b'{"job_id": true, "status": "queued"}', type=Job)


# -- schema evolution ----------------------------------------------------------------------


def test_unknown_fields_are_ignored() -> None:
    job = msgspec.json.decode(
        b'{"job_id": "1", "status": "queued", "job_type": "presto", "new_field": {"x": [1]}}',
        type=Job,
    )
    assert job == Job(job_id="1", status="queued")


def test_missing_optional_fields_default() -> None:
    job = msgspec.json.decode(b'{"job_id": "1", "status": "queued"}', type=Job)
    assert (job.type, job.query, job.result, job.duration, job.debug) == (None,) * 5
    assert job.result_columns == []
    assert job.created_at_dt is None
    table = msgspec.json.decode(b'{"id": 1, "name": "t"}', type=Table)
    assert (table.columns, table.expire_days, table.type, table.count) == ([], None, None, None)
    assert msgspec.json.decode(b'{"jobs": []}', type=JobList).count == 0
    assert msgspec.json.decode(b'{"account": {"id": 1}}', type=AccountResponse).account.plan is None


def test_older_database_list_without_delete_protected() -> None:
    # td-client-python database_api_test.py test_list_databases_success (2014 bodies)
    body = (
        b'{"databases": [{"name": "sample_datasets", "count": 8812278, "created_at":'
        b' "2014-10-04 01:13:11 UTC", "updated_at": "2014-10-08 18:42:12 UTC",'
        b' "organization": null, "permission": "administrator"}]}'
    )
    (db,) = msgspec.json.decode(body, type=DatabaseList).databases
    assert (db.name, db.delete_protected, db.permission) == (
        "sample_datasets",
        False,
        "administrator",
    )


def test_bulkload_job_query_may_be_an_object() -> None:
    job = msgspec.json.decode(
        b'{"job_id": "1", "status": "running", "query": {"in": {"type": "s3"}}}', type=Job
    )
    assert job.query == {"in": {"type": "s3"}}


def test_import_result_elapsed_time_as_number_or_string() -> None:
    assert msgspec.json.decode(b'{"elapsed_time": 3.14}', type=ImportResult).elapsed_seconds == 3.14
    assert msgspec.json.decode(b'{"elapsed_time": "3.14"}', type=ImportResult).elapsed_seconds == (
        3.14
    )
    assert ImportResult().elapsed_seconds is None


# -- JSON in a string ----------------------------------------------------------------------


@pytest.mark.parametrize("schema", [None, ""])
def test_no_hive_result_schema_means_no_columns(schema: str | None) -> None:
    assert Job(job_id="1", status="success", hive_result_schema=schema).result_columns == []


def test_hive_result_schema_json_decodes() -> None:
    job = Job(
        job_id="1", status="success", hive_result_schema='[["a", "bigint"], ["b", "varchar"]]'
    )
    assert job.result_columns == [Column(name="a", type="bigint"), Column(name="b", type="varchar")]


def test_table_schema_with_aliases() -> None:
    table = Table(id="1", name="t", schema='[["user_id", "long", "uid"], ["name", "string"]]')
    assert table.columns == [
        Column(name="user_id", type="long", alias="uid"),
        Column(name="name", type="string"),
    ]


def test_malformed_schema_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        _ = Table(id="1", name="t", schema="[[not json").columns


# -- timestamps ----------------------------------------------------------------------------


def test_empty_start_at_is_none() -> None:
    assert JobStatus(job_id="1", status="running", start_at="").start_at_dt is None
    assert Job(job_id="1", status="running", start_at="", end_at=None).start_at_dt is None


def test_all_timestamp_forms() -> None:
    expected = datetime(2016, 7, 26, 8, 14, 46, tzinfo=UTC)
    for raw in ("2016-07-26 08:14:46 UTC", "2016-07-26T08:14:46Z", "2016-07-26T17:14:46+09:00"):
        assert Job(job_id="1", status="queued", created_at=raw).created_at_dt == expected
    assert Job(job_id="1", status="queued", created_at=1469520886).created_at_dt == expected


def test_unknown_timestamp_text_raises() -> None:
    with pytest.raises(ValueError, match="not a timestamp"):
        _ = Job(job_id="1", status="queued", created_at="yesterday").created_at_dt


# -- status helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "finished", "success", "failed", "running", "queued"),
    [
        ("queued", False, False, False, False, True),
        ("booting", False, False, False, False, True),
        ("running", False, False, False, True, False),
        ("RUNNING", False, False, False, True, False),
        ("success", True, True, False, False, False),
        ("error", True, False, True, False, False),
        ("killed", True, False, True, False, False),
        ("some_new_status", False, False, False, False, False),
    ],
)
def test_job_status_helpers(
    status: str, finished: bool, success: bool, failed: bool, running: bool, queued: bool
) -> None:
    for model in (Job(job_id="1", status=status), JobStatus(job_id="1", status=status)):
        assert (model.finished, model.success, model.failed, model.running, model.queued) == (
            finished,
            success,
            failed,
            running,
            queued,
        )


@pytest.mark.parametrize("status", ["error", "killed"])
def test_raise_for_status_raises_job_failed(status: str) -> None:
    job = Job(job_id="42", status=status, debug=JobDebug(stderr="line one\nSyntax error"))
    with pytest.raises(JobFailed) as info:
        job.raise_for_status()
    assert info.value.job is job
    assert "42" in str(info.value)
    assert "Syntax error" in str(info.value)
    with pytest.raises(JobFailed):
        JobStatus(job_id="42", status=status).raise_for_status()


@pytest.mark.parametrize("status", ["success", "running", "queued"])
def test_raise_for_status_returns_the_job_otherwise(status: str) -> None:
    job = Job(job_id="1", status=status)
    assert job.raise_for_status() is job


# -- priority ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("VERY LOW", -2),
        ("VERY-LOW", -2),
        ("very_low", -2),
        ("Very Low", -2),
        ("LOW", -1),
        ("low", -1),
        ("NORM", 0),
        ("NORMAL", 0),
        ("normal", 0),
        ("HIGH", 1),
        ("VERY HIGH", 2),
        ("VERY-HIGH", 2),
        ("very_high", 2),
        (-2, -2),
        (0, 0),
        (2, 2),
        ("-1", -1),
    ],
)
def test_parse_priority(value: int | str, expected: int) -> None:
    assert parse_priority(value) == expected


@pytest.mark.parametrize("value", ["URGENT", "", "VERYLOW", 3, -3, "5", True])
def test_parse_priority_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="priority"):
        parse_priority(value)


def test_priority_name() -> None:
    assert [priority_name(p) for p in range(-2, 3)] == [
        "VERY LOW",
        "LOW",
        "NORMAL",
        "HIGH",
        "VERY HIGH",
    ]
    with pytest.raises(ValueError, match="-2..2"):
        priority_name(7)


# -- round trips ---------------------------------------------------------------------------

_text = st.text(max_size=20)
_opt_text = st.none() | _text
_ts = st.none() | st.sampled_from(["", "2016-07-26 08:14:46 UTC", "2017-05-13T11:39:53Z"])
_small = st.integers(min_value=-(2**53), max_value=2**53)

_jobs = st.builds(
    Job,
    job_id=st.integers(min_value=0).map(str),
    status=st.sampled_from(["queued", "running", "success", "error", "killed"]),
    type=_text,
    query=st.none() | _text | st.dictionaries(_text, _text, max_size=3),
    database=_text,
    priority=st.integers(-2, 2),
    result_size=st.none() | _small,
    cpu_time=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    hive_result_schema=_opt_text,
    linked_result_export_job_id=st.none() | st.integers(min_value=0).map(str),
    debug=st.none() | st.builds(JobDebug, cmdout=_opt_text, stderr=_opt_text),
    created_at=_ts,
    start_at=_ts | _small,
)
_tables = st.builds(
    Table,
    id=st.integers(min_value=0).map(str),
    name=_text,
    count=_small,
    expire_days=st.none() | _small,
    schema=_text,
    counter_updated_at=_ts,
)
_schedules = st.builds(
    Schedule,
    name=_text,
    id=st.none() | st.integers(min_value=0).map(str),
    cron=_opt_text,
    database=_opt_text,
    delay=_small,
    next_time=_ts,
)


@given(st.builds(JobList, count=_small, from_=st.none() | _small, jobs=st.lists(_jobs, max_size=3)))
def test_job_list_round_trips(model: JobList) -> None:
    assert msgspec.json.decode(msgspec.json.encode(model), type=JobList) == model


@given(_tables)
def test_table_round_trips(model: Table) -> None:
    assert msgspec.json.decode(msgspec.json.encode(model), type=Table) == model


@given(_schedules)
def test_schedule_round_trips(model: Schedule) -> None:
    assert msgspec.json.decode(msgspec.json.encode(model), type=Schedule) == model
