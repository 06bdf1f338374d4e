"""Fields TD may send as null, and a fractional duration: a recorded body with that one field
changed still decodes through its public call, None (or the number) exposed, and one such
item never fails the rest of its listing.

The fields are those td-client-go's schemas mark ``Optional`` (a null is then allowed), at
treasure-data/td-client-go@9ec45def; each case names the line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import aiotd
from tests.client.conftest import KEY, Scripted, reply
from tests.client.test_core_samples import FAST, V3


@pytest.fixture
async def td(scripted: Scripted) -> AsyncIterator[aiotd.Client]:
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=FAST) as client:
        yield client


def edited(sample: str, where: tuple[str | int, ...], value: Any) -> bytes:
    """The recorded body with the one value at ``where`` replaced."""
    doc = json.loads((V3 / sample).read_bytes())
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    assert where[-1] in parent, f"{sample} has no {where}"
    parent[where[-1]] = value
    return json.dumps(doc).encode()


Call = Callable[[aiotd.Client], Awaitable[Any]]

# (sample, path served, the public call, where, new value, what to read, expected)
CASES: list[tuple[str, str, Call, tuple[str | int, ...], Any, Callable[[Any], Any], Any]] = [
    # api_table.go:77 listTablesSchema "type": Optional{"", "?"}
    ("table_list.json", "/v3/table/list/nh4_test", lambda td: td.tables.list("nh4_test"),
     ("tables", 1, "type"), None, lambda r: [t.type for t in r], ["log", None, "log"]),
    # api_table.go:78 "count": Optional{0, 0}
    ("table_list.json", "/v3/table/list/nh4_test", lambda td: td.tables.list("nh4_test"),
     ("tables", 1, "count"), None, lambda r: [t.count for t in r], [1751, None, 76]),
    # api_table.go:85 "schema": Optional{EmbeddedJSON([]interface{}{}), nil}
    ("table_list.json", "/v3/table/list/nh4_test", lambda td: td.tables.list("nh4_test"),
     ("tables", 1, "schema"), None, lambda r: [(t.schema is None, len(t.columns)) for t in r],
     [(False, 10), (True, 0), (False, 9)]),
    # api_job.go:61 listJobsSchema "type": Optional{"", "?"}
    ("job_list.json", "/v3/job/list", lambda td: td.jobs.list(),
     ("jobs", 1, "type"), None, lambda r: [j.type for j in r], ["hive", None, "presto", "presto"]),
    # api_job.go:133 showJobSchema "type": Optional{"", "?"}
    ("job_show.json", "/v3/job/show/9999999", lambda td: td.jobs.get("9999999"),
     ("type",), None, lambda r: (r.job_id, r.type, r.success), ("9999999", None, True)),
    # api_schedule.go:193 scheduleHistorySchema "result": Optional{"", "?"}
    ("schedule_history.json", "/v3/schedule/history/s", lambda td: td.schedules.history("s"),
     ("history", 1, "result"), None, lambda r: [j.result for j in r],
     ["td://@/test_db/test_table", None]),
    # the same Job model reads job/list items
    ("job_list.json", "/v3/job/list", lambda td: td.jobs.list(),
     ("jobs", 2, "result"), None, lambda r: [j.result for j in r], ["", "", None, ""]),
    # api_schedule.go:60 listScheduleSchema "result": Optional{"", "?"}
    ("schedule_list.json", "/v3/schedule/list", lambda td: td.schedules.list(),
     ("schedules", 0, "result"), None, lambda r: [(s.name, s.result) for s in r],
     [("test_query", None)]),
    # api_bulk_import.go:71 listBulkImportElementsSchema "status": Optional{"", nil}
    ("bulk_import_list.json", "/v3/bulk_import/list", lambda td: td.bulk_imports.list(),
     ("bulk_imports", 1, "status"), None, lambda r: [b.status for b in r],
     ["uploading", None, "uploading"]),
    # api_bulk_import.go:56 bulkImportElementSchema (show) "status": Optional{"", nil}
    ("bulk_import_show.json", "/v3/bulk_import/show/s1", lambda td: td.bulk_imports.get("s1"),
     ("status",), None, lambda r: (r.name, r.status), ("test_bulk_import_name", None)),
    # api_schedule.go:188 scheduleHistorySchema "duration": Optional{0., 0.}: a float
    ("schedule_history.json", "/v3/schedule/history/s", lambda td: td.schedules.history("s"),
     ("history", 0, "duration"), 10.5, lambda r: [j.duration for j in r], [10.5, 10]),
    # the job/list items and the job/status poll share the field: a float decodes there too
    ("job_list.json", "/v3/job/list", lambda td: td.jobs.list(),
     ("jobs", 0, "duration"), 2.25, lambda r: [j.duration for j in r], [2.25, 2, 0, 1]),
    ("job_status_running.json", "/v3/job/status/9999999", lambda td: td.jobs.status("9999999"),
     ("duration",), 2.5, lambda r: (r.running, r.duration), (True, 2.5)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sample", "path", "call", "where", "value", "read", "expected"),
    CASES,
    ids=[f"{c[0]}:{'.'.join(map(str, c[3]))}={c[4]}" for c in CASES],
)
async def test_field_td_may_send_as_null_decodes_through_its_call(
    scripted: Scripted,
    td: aiotd.Client,
    sample: str,
    path: str,
    call: Call,
    where: tuple[str | int, ...],
    value: Any,
    read: Callable[[Any], Any],
    expected: Any,
) -> None:
    scripted.on(path, reply(200, edited(sample, where, value)))
    assert read(await call(td)) == expected
