"""Every recorded v3 body, served by a local server, decodes through the public call that
returns it; error bodies come out as the right exception with TD's message."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import pytest

import aiotd
from aiotd import errors
from aiotd.models.core import Column
from tests._samples import samples_dir
from tests.client.conftest import KEY, Scripted, reply

UTC = timezone.utc
FAST = aiotd.RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02)
CONFIG = {"type": "s3_file", "bucket": "b", "path_prefix": "in/"}


V3 = samples_dir("v3")


@pytest.fixture
async def td(scripted: Scripted) -> AsyncIterator[aiotd.Client]:
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=FAST) as client:
        yield client


Call = Callable[[aiotd.Client], Awaitable[Any]]

# (sample, method, path served, the public call, what to read from its answer, expected)
Case = tuple[str, str, str, Call, Callable[[Any], Any], Any]

CASES: list[Case] = [
    ("server_status.json", "GET", "/v3/system/server_status", lambda td: td.server_status(),
     lambda r: r, "ok"),
    ("account_show.json", "GET", "/v3/account/show", lambda td: td.account(),
     lambda r: (r.id, r.maximum_cores, r.created_at_dt),
     ("1", 4, datetime(2014, 12, 14, 8, 24, tzinfo=UTC))),
    # -- databases
    ("database_list.json", "GET", "/v3/database/list", lambda td: td.databases.list(),
     lambda r: ([d.name for d in r], r[0].delete_protected, r[0].count, r[1].permission),
     (["test", "sample_datasets", "information_schema"], True, 69664, "query_only")),
    ("database_create.json", "POST", "/v3/database/create/test",
     lambda td: td.databases.create("test"), lambda r: r.database, "test"),
    ("database_delete.json", "POST", "/v3/database/delete/test",
     lambda td: td.databases.delete("test"), lambda r: r.database, "test"),
    # -- tables
    ("table_list.json", "GET", "/v3/table/list/nh4_test", lambda td: td.tables.list("nh4_test"),
     lambda r: (len(r), r[0].id, r[0].count, r[0].columns[1], r[0].counter_updated_at_dt),
     (3, "99999991", 1751, Column(name="fizz", type="string"),
      datetime(2017, 5, 13, 11, 39, 53, tzinfo=UTC))),
    ("table_show.json", "GET", "/v3/table/show/db/test_table",
     lambda td: td.tables.get("db", "test_table"),
     lambda r: (r.name, r.expire_days, r.columns, r.counter_updated_at_dt, r.include_v),
     ("test_table", 10, [Column(name="col1", type="string")], None, True)),
    ("table_create.json", "POST", "/v3/table/create/test_database/test_table/log",
     lambda td: td.tables.create("test_database", "test_table"),
     lambda r: (r.database, r.table, r.type), ("test_database", "test_table", "log")),
    ("table_swap.json", "POST", "/v3/table/swap/test_database/test_table2/test_table",
     lambda td: td.tables.swap("test_database", "test_table2", "test_table"),
     lambda r: (r.database, r.table1, r.table2),
     ("test_database", "test_table2", "test_table")),
    ("table_update_schema.json", "POST", "/v3/table/update-schema/test_database/test_table",
     lambda td: td.tables.update_schema("test_database", "test_table", columns=[("c", "string")]),
     lambda r: (r.table, r.type), ("test_table", "log")),
    ("table_update.json", "POST", "/v3/table/update/test_database/test_table",
     lambda td: td.tables.update("test_database", "test_table", expire_days=7),
     lambda r: (r.database, r.table), ("test_database", "test_table")),
    ("table_delete.json", "POST", "/v3/table/delete/test_database/test_table",
     lambda td: td.tables.delete("test_database", "test_table"),
     lambda r: (r.database, r.table, r.type), ("test_database", "test_table", "log")),
    ("table_change_database.json", "POST", "/v3/table/change_database/src_db/table",
     lambda td: td.tables.change_database("src_db", "table", destination="dst_db"),
     lambda r: (r.database, r.table), ("dst_db", "table")),
    # -- jobs
    ("job_list.json", "GET", "/v3/job/list", lambda td: td.jobs.list(),
     lambda r: ([j.status for j in r], r[0].result_size, r[2].result_size, r[0].job_id),
     (["killed", "killed", "success", "success"], None, 24, "9999991")),
    ("job_show.json", "GET", "/v3/job/show/9999999", lambda td: td.jobs.get(9999999),
     lambda r: (r.success, r.result_columns, r.debug.cmdout.startswith("started at"),
                r.end_at_dt),
     (True, [Column(name="_col0", type="bigint")], True,
      datetime(2016, 7, 26, 8, 29, 34, tzinfo=UTC))),
    ("job_status_success.json", "GET", "/v3/job/status/9999999",
     lambda td: td.jobs.status("9999999"), lambda r: (r.success, r.finished, r.num_records),
     (True, True, 10)),
    ("job_status_error.json", "GET", "/v3/job/status/9999999",
     lambda td: td.jobs.status("9999999"), lambda r: (r.error, r.failed, r.finished),
     (True, True, True)),
    ("job_status_killed.json", "GET", "/v3/job/status/9999999",
     lambda td: td.jobs.status("9999999"), lambda r: (r.killed, r.result_size),
     (True, None)),
    ("job_status_queued.json", "GET", "/v3/job/status/9999999",
     lambda td: td.jobs.status("9999999"), lambda r: (r.queued, r.finished, r.start_at_dt),
     (True, False, None)),
    ("job_status_running.json", "GET", "/v3/job/status/9999999",
     lambda td: td.jobs.status("9999999"), lambda r: (r.running, r.finished, r.end_at),
     (True, False, None)),
    ("job_issue.json", "POST", "/v3/job/issue/presto/sample_datasets",
     lambda td: td.jobs.issue("select 1", database="sample_datasets"),
     lambda r: (r.job_id, r.database, r.existing), ("9999999", "sample_datasets", False)),
    ("job_issue_bulkload.json", "POST", "/v3/job/issue/bulkload/db",
     lambda td: td.connectors.issue(CONFIG, database="db", table="t"),
     lambda r: r.job_id, "12345"),
    ("job_kill.json", "POST", "/v3/job/kill/9999999", lambda td: td.jobs.kill("9999999"),
     lambda r: (r.job_id, r.former_status), ("9999999", "running")),
    ("job_result_export.json", "POST", "/v3/job/result_export/100",
     lambda td: td.jobs.result_export("100", result_url="td://@/db/t"), lambda r: r.job_id, "101"),
    ("export_run.json", "POST", "/v3/export/run/sample_datasets/www_access",
     lambda td: td.exports.run("sample_datasets", "www_access", bucket="b"),
     lambda r: (r.job_id, r.database, r.existing), ("9999999", "sample_datasets", False)),
    # -- schedules
    ("schedule_list.json", "GET", "/v3/schedule/list", lambda td: td.schedules.list(),
     lambda r: (r[0].name, r[0].cron, r[0].next_time_dt, r[0].created_at_dt),
     ("test_query", None, None, datetime(2017, 3, 27, 9, 39, 42, tzinfo=UTC))),
    ("schedule_create.json", "POST", "/v3/schedule/create/test_sdk_query",
     lambda td: td.schedules.create("test_sdk_query", query="select * from test",
                                    database="test_db"),
     lambda r: (r.id, r.type, r.start, r.database), ("234451", "presto", None, "test_db")),
    ("schedule_update.json", "POST", "/v3/schedule/update/test_sdk_query",
     lambda td: td.schedules.update("test_sdk_query", priority="VERY HIGH"),
     lambda r: (r.name, r.priority), ("test_sdk_query", 2)),
    ("schedule_delete.json", "POST", "/v3/schedule/delete/test_schedule",
     lambda td: td.schedules.delete("test_schedule"),
     lambda r: (r.name, r.query, r.user_name),
     ("test_schedule", "SELECT * FROM test_table", "Test User")),
    ("schedule_history.json", "GET", "/v3/schedule/history/test_schedule",
     lambda td: td.schedules.history("test_schedule"),
     lambda r: ([j.job_id for j in r], r[0].scheduled_at_dt, r[0].result_columns[0].name),
     (["1111111", "99999999"], datetime(2017, 4, 26, 8, 39, tzinfo=UTC), "aaaaaaaa")),
    ("schedule_run.json", "POST", "/v3/schedule/run/test_schedule/1493207820",
     lambda td: td.schedules.run("test_schedule", time=1493207820),
     lambda r: (r.jobs[0].job_id, r.jobs[0].type, r.existing), ("11111111111", "presto", False)),
    # -- results
    ("result_list.json", "GET", "/v3/result/list", lambda td: td.results.list(),
     lambda r: [(x.name, x.url) for x in r][:2],
     [("foo", "mysql://example.com/db/foo"), ("bar", "postgresql://example.com/db/bar")]),
    # -- users
    ("user_list.json", "GET", "/v3/user/list", lambda td: td.users.list(),
     lambda r: (len(r), r[0].id, r[0].account_owner, r[2].first_name, r[1].email),
     (3, "1", True, None, "fizzbuzz@github.com")),
    ("user_add.json", "POST", "/v3/user/add/Test User",
     lambda td: td.users.create("Test User", email="t@example.com"), lambda r: r.name, "Test User"),
    ("user_remove.json", "POST", "/v3/user/remove/hogefuga@github.com",
     lambda td: td.users.delete("hogefuga@github.com"), lambda r: r.user, "hogefuga@github.com"),
    ("user_apikey_list.json", "GET", "/v3/user/apikey/list/someone",
     lambda td: td.users.list_apikeys("someone"),
     lambda r: (len(r.apikeys), "hoge" in repr(r)), (2, False)),
    ("user_apikey_add.json", "POST", "/v3/user/apikey/add/someone",
     lambda td: td.users.create_apikey("someone"),
     lambda r: (r.apikey.startswith("0000/"), "hoge" in repr(r)), (True, False)),
    ("user_apikey_remove.json", "POST", "/v3/user/apikey/remove/someone",
     lambda td: td.users.delete_apikey("someone", "0000/x"), lambda r: r.user,
     "hogefuga@github.com"),
    ("user_authenticate.json", "POST", "/v3/user/authenticate",
     lambda td: td.users.authenticate("Test User", password="pw"),
     lambda r: (r.name, len(r.apikey), "0000/" in repr(r)), ("Test User", 45, False)),
    # -- bulk import sessions
    ("bulk_import_create.json", "POST", "/v3/bulk_import/create/test_bulk_import_name/db/t",
     lambda td: td.bulk_imports.create("test_bulk_import_name", database="db", table="t"),
     lambda r: r.name, "test_bulk_import_name"),
    ("bulk_import_delete.json", "POST", "/v3/bulk_import/delete/test_bulk_import_name",
     lambda td: td.bulk_imports.delete("test_bulk_import_name"),
     lambda r: r.bulk_import, "test_bulk_import_name"),
    ("bulk_import_show.json", "GET", "/v3/bulk_import/show/test_bulk_import_name",
     lambda td: td.bulk_imports.get("test_bulk_import_name"),
     lambda r: (r.status, r.database, r.job_id, r.upload_frozen),
     ("uploading", "test_bulk_import_db", None, False)),
    ("bulk_import_list.json", "GET", "/v3/bulk_import/list", lambda td: td.bulk_imports.list(),
     lambda r: ([b.name for b in r], r[1].database, r[2].table),
     (["test_bulk_import_name1", "test_bulk_import_name2", "test_bulk_import_name3"],
      None, None)),
    ("bulk_import_list_parts.json", "GET", "/v3/bulk_import/list_parts/test_bulk_import_name",
     lambda td: td.bulk_imports.list_parts("test_bulk_import_name"),
     lambda r: r.parts, ["test_bulk_import_part_1", "test_bulk_import_part_2"]),
    ("bulk_import_upload_part.json", "PUT", "/v3/bulk_import/upload_part/s1/part_1",
     lambda td: td.bulk_imports.upload_part("s1", "part_1", [{"time": 1}]),
     lambda r: r.name, "test_bulk_import_name"),
    ("bulk_import_delete_part.json", "POST", "/v3/bulk_import/delete_part/s1/part_1",
     lambda td: td.bulk_imports.delete_part("s1", "part_1"),
     lambda r: r.name, "test_bulk_import_name"),
    ("bulk_import_freeze.json", "POST", "/v3/bulk_import/freeze/s1",
     lambda td: td.bulk_imports.freeze("s1"), lambda r: r.name, "test_bulk_import_name"),
    ("bulk_import_unfreeze.json", "POST", "/v3/bulk_import/unfreeze/s1",
     lambda td: td.bulk_imports.unfreeze("s1"), lambda r: r.name, "test_bulk_import_name"),
    ("bulk_import_perform.json", "POST", "/v3/bulk_import/perform/s1",
     lambda td: td.bulk_imports.perform("s1"), lambda r: r.job_id, "11111111111"),
    ("bulk_import_commit.json", "POST", "/v3/bulk_import/commit/s1",
     lambda td: td.bulk_imports.commit("s1"), lambda r: (r.name, r.job_id),
     ("test_bulk_import_name", None)),
    # -- bulk loads
    ("bulk_loads_guess.json", "POST", "/v3/bulk_loads/guess",
     lambda td: td.connectors.guess(CONFIG),
     lambda r: (r.config["type"], len(r.config["parser"]["columns"])), ("s3_file", 4)),
    ("bulk_loads_preview.json", "POST", "/v3/bulk_loads/preview",
     lambda td: td.connectors.preview(CONFIG),
     lambda r: ([c.name for c in r.schema], r.schema[1].type, r.records[0][1]),
     (["c0", "c1", "c2", "c3"], "long", 32864)),
    ("bulk_loads_list.json", "GET", "/v3/bulk_loads", lambda td: td.connectors.list(),
     lambda r: (len(r), r[0].name, r[0].cron, r[0].delay), (2, "nahi_test_1", "@daily", 3600)),
    ("bulk_loads_session.json", "GET", "/v3/bulk_loads/nahi_test_1",
     lambda td: td.connectors.get("nahi_test_1"),
     lambda r: (r.name, r.timezone, r.config["bucket"]),
     ("nahi_test_1", "Asia/Tokyo", "td-bulk-loader-test-tokyo")),
    ("bulk_loads_jobs.json", "GET", "/v3/bulk_loads/nahi_test_1/jobs",
     lambda td: td.connectors.history("nahi_test_1"),
     lambda r: (len(r), r[0].job_id, r[0].records, r[0].schema[1], r[0].table.name,
                r[0].created_at_dt),
     (2, "123456", 10, Column(name="c1", type="long", alias=""), "bulkload_import_test",
      datetime.fromtimestamp(1426738133, UTC))),
    ("bulk_loads_run.json", "POST", "/v3/bulk_loads/nahi_test_1/jobs",
     lambda td: td.connectors.run("nahi_test_1"), lambda r: (r.job_id, r.existing),
     ("12345", False)),
]  # fmt: skip


def test_every_sample_has_a_case() -> None:
    covered = {case[0] for case in CASES} | {case[0] for case in ERRORS}
    assert covered >= {p.name for p in V3.glob("*.json")}


@pytest.mark.parametrize(
    ("sample", "method", "path", "call", "read", "expected"), CASES, ids=[c[0] for c in CASES]
)
async def test_sample_decodes_through_its_call(
    scripted: Scripted,
    td: aiotd.Client,
    sample: str,
    method: str,
    path: str,
    call: Call,
    read: Callable[[Any], Any],
    expected: Any,
) -> None:
    scripted.on(path, reply(200, (V3 / sample).read_bytes()))
    result = await call(td)
    assert read(result) == expected
    assert [(r.method, r.path) for r in scripted.seen] == [(method, path)]


@pytest.mark.parametrize(
    "call",
    [
        lambda td: td.connectors.create("nahi_test_1", config=CONFIG, database="db", table="t"),
        lambda td: td.connectors.update("nahi_test_1", cron="@hourly"),
        lambda td: td.connectors.delete("nahi_test_1"),
    ],
    ids=["create", "update", "delete"],
)
async def test_bulk_load_session_sample_through_every_call_that_answers_it(
    scripted: Scripted, td: aiotd.Client, call: Call
) -> None:
    body = (V3 / "bulk_loads_session.json").read_bytes()
    scripted.on("/v3/bulk_loads", reply(200, body))
    scripted.on("/v3/bulk_loads/nahi_test_1", reply(200, body))
    session = await call(td)
    assert (session.name, session.cron, session.config["type"]) == (
        "nahi_test_1",
        "@daily",
        "s3_file",
    )


# (sample, status, path served, the public call, exception, message)
ERRORS: list[tuple[str, int, str, Call, type[errors.APIError], str]] = [
    ("error_404_job_show.json", 404, "/v3/job/show/10000000000",
     lambda td: td.jobs.get("10000000000"), errors.NotFound,
     "Couldn't find Job with account_id = 1, id = 10000000000"),
    ("error_409_database_exists.json", 409, "/v3/database/create/db_test",
     lambda td: td.databases.create("db_test"), errors.Conflict,
     "Database db_test already exists"),
    ("error_409_table_exists.json", 409, "/v3/table/create/db/table_test/log",
     lambda td: td.tables.create("db", "table_test"), errors.Conflict,
     "Table table_test already exists"),
    ("error_422_validation.json", 422, "/v3/schedule/create/x",
     lambda td: td.schedules.create("x", query="select 1", database="db"),
     errors.Unprocessable, "Validation failed: Name is too short"),
    ("error_403_change_database.json", 403, "/v3/table/change_database/db/t",
     lambda td: td.tables.change_database("db", "t", destination="other"), errors.Forbidden,
     "Access denied for the destination"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sample", "status", "path", "call", "error", "message"), ERRORS, ids=[e[0] for e in ERRORS]
)
async def test_error_sample_maps_to_its_exception(
    scripted: Scripted,
    td: aiotd.Client,
    sample: str,
    status: int,
    path: str,
    call: Call,
    error: type[errors.APIError],
    message: str,
) -> None:
    scripted.on(path, reply(status, (V3 / sample).read_bytes()))
    with pytest.raises(error) as info:
        await call(td)
    assert info.value.status == status
    assert info.value.message == message
    assert info.value.conflicts_with is None
    assert scripted.count(path) == 1  # a 4xx is never retried


async def test_exist_ok_reads_the_409_sample_as_success(
    scripted: Scripted, td: aiotd.Client
) -> None:
    body = (V3 / "error_409_database_exists.json").read_bytes()
    scripted.on("/v3/database/create/db_test", reply(409, body))
    ref = await td.databases.create("db_test", exist_ok=True)
    assert ref.database == "db_test"
    body = (V3 / "error_409_table_exists.json").read_bytes()
    scripted.on("/v3/table/create/db/table_test/log", reply(409, body))
    table = await td.tables.create("db", "table_test", exist_ok=True)
    assert (table.database, table.table) == ("db", "table_test")


async def test_export_conflict_names_the_job_holding_the_domain_key(
    scripted: Scripted, td: aiotd.Client
) -> None:
    body = '{"message": "Domain key exists", "details": {"conflicts_with": 4242}}'
    scripted.on("/v3/export/run/db/t", reply(409, body))
    issued = await td.exports.run("db", "t", bucket="b", domain_key="nightly")
    assert (issued.job_id, issued.existing) == ("4242", True)
    form = await scripted.seen[-1].post()
    assert form["domain_key"] == "nightly"
