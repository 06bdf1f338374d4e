"""A body without its id is an error, not an empty id.

A recorded body without one of the fields every real body of its call carries (the record's
id or name, its status, the list a listing wraps, the id TD assigned) is a DecodeError
through the public call. Where the request already says the field, the answer is completed
from it instead; and a 409 naming no job is raised as it came, never turned into one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import aiotd
from aiotd import errors
from aiotd._http import error_from_response
from aiotd.models import JobStatus, KilledJob
from tests.client.conftest import KEY, Scripted, reply
from tests.client.test_core_samples import CASES, CONFIG, FAST, V3


@pytest.fixture
async def td(scripted: Scripted) -> AsyncIterator[aiotd.Client]:
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=FAST) as client:
        yield client


Call = Callable[[aiotd.Client], Awaitable[Any]]
CALLS: dict[str, tuple[str, Call]] = {case[0]: (case[2], case[3]) for case in CASES}


def without(sample: str, where: tuple[str | int, ...]) -> bytes:
    """The recorded body with the value at ``where`` left out."""
    doc = json.loads((V3 / sample).read_bytes())
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    del parent[where[-1]]
    return json.dumps(doc).encode()


# (sample, the field left out); the call is the sample's own in test_core_samples
REQUIRED: list[tuple[str, tuple[str | int, ...]]] = [
    ("server_status.json", ("status",)),
    ("account_show.json", ("account",)),
    ("account_show.json", ("account", "id")),
    ("database_list.json", ("databases",)),
    ("database_list.json", ("databases", 1, "name")),
    ("table_list.json", ("tables",)),
    ("table_list.json", ("tables", 2, "id")),
    ("table_list.json", ("tables", 2, "name")),
    ("table_show.json", ("id",)),
    ("table_show.json", ("name",)),
    ("job_list.json", ("jobs",)),
    ("job_list.json", ("jobs", 3, "job_id")),
    ("job_list.json", ("jobs", 3, "status")),
    ("job_show.json", ("job_id",)),
    ("job_show.json", ("status",)),
    ("job_status_running.json", ("status",)),
    ("job_issue.json", ("job_id",)),
    ("job_issue_bulkload.json", ("job_id",)),
    ("job_result_export.json", ("job_id",)),
    ("export_run.json", ("job_id",)),
    ("job_kill.json", ("former_status",)),
    ("schedule_list.json", ("schedules",)),
    ("schedule_list.json", ("schedules", 0, "name")),
    ("schedule_history.json", ("history",)),
    ("schedule_history.json", ("history", 1, "job_id")),
    ("schedule_history.json", ("history", 1, "status")),
    ("schedule_run.json", ("jobs",)),
    ("schedule_run.json", ("jobs", 0, "job_id")),
    ("result_list.json", ("results",)),
    ("result_list.json", ("results", 2, "name")),
    ("user_list.json", ("users",)),
    ("user_list.json", ("users", 2, "name")),
    ("user_apikey_list.json", ("apikeys",)),
    ("user_apikey_add.json", ("apikey",)),
    ("user_authenticate.json", ("apikey",)),
    ("bulk_import_list.json", ("bulk_imports",)),
    ("bulk_import_list.json", ("bulk_imports", 2, "name")),
    ("bulk_import_show.json", ("name",)),
    ("bulk_import_list_parts.json", ("parts",)),
    ("bulk_import_perform.json", ("job_id",)),
    ("bulk_loads_guess.json", ("config",)),
    ("bulk_loads_preview.json", ("schema",)),
    ("bulk_loads_preview.json", ("schema", 1, "name")),
    ("bulk_loads_preview.json", ("records",)),
    ("bulk_loads_list.json", (1, "name")),
    ("bulk_loads_session.json", ("name",)),
    ("bulk_loads_jobs.json", (1, "job_id")),
    ("bulk_loads_jobs.json", (0, "status")),
    ("bulk_loads_jobs.json", (0, "table", "name")),
    ("bulk_loads_run.json", ("job_id",)),
]


@pytest.mark.parametrize(
    ("sample", "where"), REQUIRED, ids=[f"{s}:{'.'.join(map(str, w))}" for s, w in REQUIRED]
)
async def test_a_body_without_a_required_field_is_a_decode_error(
    scripted: Scripted, td: aiotd.Client, sample: str, where: tuple[str | int, ...]
) -> None:
    path, call = CALLS[sample]
    scripted.on(path, reply(200, without(sample, where)))
    with pytest.raises(errors.DecodeError, match=f"`{where[-1]}`"):
        await call(td)


async def test_issue_answered_with_an_empty_object_is_a_decode_error(
    scripted: Scripted, td: aiotd.Client
) -> None:
    scripted.on("/v3/job/issue/presto/db", reply(200, "{}"))
    with pytest.raises(errors.DecodeError, match="job_id"):
        await td.jobs.issue("select 1", database="db")


async def test_job_status_answered_with_an_empty_object_is_a_decode_error(
    scripted: Scripted, td: aiotd.Client
) -> None:
    scripted.on("/v3/job/status/12345", reply(200, "{}"))
    with pytest.raises(errors.DecodeError, match="status"):
        await td.jobs.status("12345")


async def test_job_status_without_job_id_takes_the_id_asked_for(
    scripted: Scripted, td: aiotd.Client
) -> None:
    # td-client-python job_api_test.py test_job_status_success: the body is this alone
    scripted.on("/v3/job/status/12345", reply(200, '{"status": "RUNNING"}'))
    status = await td.jobs.status(12345)
    assert (status.job_id, status.status, status.running) == ("12345", "RUNNING", True)
    assert type(status) is JobStatus


async def test_job_kill_without_job_id_takes_the_id_asked_for(
    scripted: Scripted, td: aiotd.Client
) -> None:
    # td-client-python job_api_test.py test_kill_success: {"former_status": "..."} alone
    scripted.on("/v3/job/kill/12345", reply(200, '{"former_status": "running"}'))
    killed = await td.jobs.kill(12345)
    assert (killed.job_id, killed.former_status) == ("12345", "running")
    assert type(killed) is KilledJob


async def test_status_by_domain_key_without_job_id_is_a_decode_error(
    scripted: Scripted, td: aiotd.Client
) -> None:
    # the key is all the caller knows: an answer naming no job cannot be followed
    scripted.on("/v3/job/status_by_domain_key/k1", reply(200, '{"status": "running"}'))
    with pytest.raises(errors.DecodeError, match="job_id"):
        await td.jobs.status_by_domain_key("k1")


# (path served, body, the public call, what to read, expected): writes whose answer leaves out
# what the request says; the td-client-python fixtures quoted are hand-written ones
FILLED: list[tuple[str, str, Call, Callable[[Any], Any], Any]] = [
    ("/v3/database/create/db1", "{}", lambda td: td.databases.create("db1"),
     lambda r: r.database, "db1"),
    ("/v3/database/delete/db1", "{}", lambda td: td.databases.delete("db1"),
     lambda r: r.database, "db1"),
    ("/v3/table/create/db/t/log", "{}", lambda td: td.tables.create("db", "t"),
     lambda r: (r.database, r.table, r.type), ("db", "t", None)),
    # td-client-python table_api_test.py test_delete_table_success
    ("/v3/table/delete/sample_datasets/foo", '{"type": "item"}',
     lambda td: td.tables.delete("sample_datasets", "foo"),
     lambda r: (r.database, r.table, r.type), ("sample_datasets", "foo", "item")),
    ("/v3/table/update-schema/db/t", "{}",
     lambda td: td.tables.update_schema("db", "t", columns=[("c", "string")]),
     lambda r: (r.database, r.table), ("db", "t")),
    ("/v3/table/update/db/t", "{}", lambda td: td.tables.update("db", "t", expire_days=3),
     lambda r: (r.database, r.table), ("db", "t")),
    ("/v3/table/change_database/src/t", "{}",
     lambda td: td.tables.change_database("src", "t", destination="dst"),
     lambda r: (r.database, r.table), ("dst", "t")),
    ("/v3/table/swap/db/a/b", "{}", lambda td: td.tables.swap("db", "a", "b"),
     lambda r: (r.database, r.table1, r.table2), ("db", "a", "b")),
    # td-client-python schedule_api_test.py test_create_schedule_without_cron_success
    ("/v3/schedule/create/bar", '{"start": null}',
     lambda td: td.schedules.create("bar", query="select 1", database="db"),
     lambda r: (r.name, r.start), ("bar", None)),
    ("/v3/schedule/update/bar", "{}", lambda td: td.schedules.update("bar", delay=60),
     lambda r: r.name, "bar"),
    # td-client-python schedule_api_test.py test_delete_schedule_success
    ("/v3/schedule/delete/bar", '{"cron": "foo", "query": "SELECT 1 FROM nasdaq"}',
     lambda td: td.schedules.delete("bar"),
     lambda r: (r.name, r.cron, r.query), ("bar", "foo", "SELECT 1 FROM nasdaq")),
    ("/v3/bulk_import/create/s1/db/t", "{}",
     lambda td: td.bulk_imports.create("s1", database="db", table="t"),
     lambda r: (r.name, r.bulk_import), ("s1", "s1")),
    ("/v3/bulk_import/upload_part/s1/p1", "{}",
     lambda td: td.bulk_imports.upload_part("s1", "p1", [{"time": 1}]),
     lambda r: r.name, "s1"),
    ("/v3/bulk_import/delete_part/s1/p1", "{}", lambda td: td.bulk_imports.delete_part("s1", "p1"),
     lambda r: r.name, "s1"),
    ("/v3/bulk_import/freeze/s1", "{}", lambda td: td.bulk_imports.freeze("s1"),
     lambda r: r.name, "s1"),
    ("/v3/bulk_import/unfreeze/s1", "{}", lambda td: td.bulk_imports.unfreeze("s1"),
     lambda r: r.name, "s1"),
    ("/v3/bulk_import/perform/s1", '{"job_id": 12345}', lambda td: td.bulk_imports.perform("s1"),
     lambda r: (r.name, r.job_id), ("s1", "12345")),
    ("/v3/bulk_import/commit/s1", "{}", lambda td: td.bulk_imports.commit("s1"),
     lambda r: (r.name, r.job_id), ("s1", None)),
    ("/v3/bulk_import/delete/s1", "{}", lambda td: td.bulk_imports.delete("s1"),
     lambda r: r.bulk_import, "s1"),
    ("/v3/bulk_import/list_parts/s1", '{"parts": []}', lambda td: td.bulk_imports.list_parts("s1"),
     lambda r: (r.name, r.parts), ("s1", [])),
    ("/v3/result/create/out1", "{}", lambda td: td.results.create("out1", url="td://@/db/t"),
     lambda r: (r.name, r.result), ("out1", "out1")),
    # a Ruby spec's answer: {"result": name} alone
    ("/v3/result/delete/out1", '{"result": "out1"}', lambda td: td.results.delete("out1"),
     lambda r: (r.name, r.result), ("out1", "out1")),
    ("/v3/user/add/u1", "{}", lambda td: td.users.create("u1"), lambda r: r.name, "u1"),
    ("/v3/user/remove/u1", "{}", lambda td: td.users.delete("u1"), lambda r: r.user, "u1"),
    ("/v3/user/apikey/remove/u1", "{}", lambda td: td.users.delete_apikey("u1", "1/x"),
     lambda r: r.user, "u1"),
    # td-client-python user_api_test.py test_authenticate_success
    ("/v3/user/authenticate", '{"apikey": "foobarbaz"}',
     lambda td: td.users.authenticate("foo", password="bar"), lambda r: (r.name, r.apikey),
     ("foo", "foobarbaz")),
    # the answer is {"job_id": 12345} alone (samples/v3/job_issue_bulkload.json)
    ("/v3/job/issue/bulkload/db", '{"job_id": 12345}',
     lambda td: td.connectors.issue(CONFIG, database="db", table="t"),
     lambda r: (r.job_id, r.database), ("12345", "db")),
    ("/v3/export/run/db/t", '{"job_id": "12345"}',
     lambda td: td.exports.run("db", "t", bucket="b"),
     lambda r: (r.job_id, r.database, r.existing), ("12345", "db", False)),
    # td-client-python connector_api_test.py: create, update and delete answer {}
    ("/v3/bulk_loads", "{}",
     lambda td: td.connectors.create("load1", config=CONFIG, database="db", table="t"),
     lambda r: (r.name, r.config), ("load1", {})),
    ("/v3/bulk_loads/load1", "{}", lambda td: td.connectors.update("load1", cron="@daily"),
     lambda r: r.name, "load1"),
    ("/v3/bulk_loads/load1", "{}", lambda td: td.connectors.delete("load1"),
     lambda r: r.name, "load1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "call", "read", "expected"), FILLED, ids=[f[0] for f in FILLED]
)
async def test_a_write_answer_names_what_the_request_said(
    scripted: Scripted,
    td: aiotd.Client,
    path: str,
    body: str,
    call: Call,
    read: Callable[[Any], Any],
    expected: Any,
) -> None:
    scripted.on(path, reply(200, body))
    assert read(await call(td)) == expected


# -- a 409 that names no job ----------------------------------------------------------------

NOT_A_JOB = [{"job_id": "4242"}, ["4242"], True, "", "  ", 12.5]


@pytest.mark.parametrize("held", NOT_A_JOB, ids=[repr(v) for v in NOT_A_JOB])
def test_conflicts_with_that_is_not_a_string_or_number_names_no_job(held: Any) -> None:
    body = json.dumps({"message": "Domain key exists", "details": {"conflicts_with": held}})
    err = error_from_response(409, body.encode(), {})
    assert isinstance(err, errors.Conflict)
    assert err.conflicts_with is None
    assert err.message == "Domain key exists"


# (path served, the call that issues exactly once)
ISSUERS: list[tuple[str, Call]] = [
    ("/v3/job/issue/presto/db", lambda td: td.jobs.issue("select 1", database="db")),
    ("/v3/schedule/run/s/1493207820", lambda td: td.schedules.run("s", time=1493207820)),
    ("/v3/export/run/db/t", lambda td: td.exports.run("db", "t", bucket="b")),
    ("/v3/bulk_loads/load1/jobs", lambda td: td.connectors.run("load1")),
]


@pytest.mark.parametrize(("path", "call"), ISSUERS, ids=[i[0] for i in ISSUERS])
async def test_a_409_whose_conflicts_with_is_an_object_is_raised_as_it_came(
    scripted: Scripted, td: aiotd.Client, path: str, call: Call
) -> None:
    body = '{"message": "Domain key exists", "details": {"conflicts_with": {"job_id": 4242}}}'
    scripted.on(path, reply(409, body))
    with pytest.raises(errors.Conflict) as info:
        await call(td)
    assert (info.value.conflicts_with, info.value.message) == (None, "Domain key exists")
    assert scripted.count(path) == 1
