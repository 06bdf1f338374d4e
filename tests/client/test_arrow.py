"""td.jobs.record_batches / to_arrow / to_pandas: column types from hive_result_schema, values
as rows() decodes them, batches bounded and streamed, and the error without the extra.

Against the emulator (synthetic results, Presto and Hive queries of plain, container and
temporal types, an imported table) and a scripted server answering the recorded job/show body
with the schema and rows of a query of every kind of column."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from aiohttp import web

import aiotd
from aiotd import errors
from aiotd._polling import PollSettings
from aiotd.testing import Emulator
from tests._samples import samples_dir
from tests.client.conftest import KEY, Scripted, reply

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")

from aiotd.core import _arrow  # noqa: E402 - needs pyarrow, skipped above without it

FAST_POLL = PollSettings(min_interval=0.05, max_interval=0.4, first_delay=0.01)
FAST_RETRY = aiotd.RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(queued_time=0.02, running_time=0.02) as emulator:
        yield emulator


@pytest.fixture
async def td(emu: Emulator) -> AsyncIterator[aiotd.Client]:
    async with aiotd.Client(
        emu.apikey, endpoint=emu.url, poll=FAST_POLL, retry=FAST_RETRY
    ) as client:
        await client.databases.create("arrow_db")
        yield client


async def finished(td: aiotd.Client, query: str) -> aiotd.models.Job:
    issued = await td.jobs.issue(query, database="arrow_db")
    job = await td.jobs.wait(issued.job_id, timeout=30)
    assert job.success, job.debug
    return job


async def all_rows(td: aiotd.Client, job_id: str) -> list[list[Any]]:
    return [row async for row in td.jobs.rows(job_id)]


# -- the type mapping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("td_type", "expected"),
    [
        ("bigint", pa.int64()),
        ("long", pa.int64()),
        ("BIGINT", pa.int64()),
        ("integer", pa.int32()),
        ("int", pa.int32()),
        ("smallint", pa.int16()),
        ("tinyint", pa.int8()),
        ("double", pa.float64()),
        ("real", pa.float32()),
        ("float", pa.float32()),
        ("boolean", pa.bool_()),
        ("varchar", pa.string()),
        ("varchar(255)", pa.string()),
        ("char(3)", pa.string()),
        ("string", pa.string()),
        ("varbinary", pa.binary()),
        ("binary", pa.binary()),
        ("date", pa.string()),
        ("timestamp", pa.string()),
        ("timestamp(3)", pa.string()),
        ("timestamp(3) with time zone", pa.string()),
        ("decimal(10,2)", pa.string()),
        ("json", pa.string()),
        ("array(bigint)", pa.list_(pa.int64())),
        ("array<bigint>", pa.list_(pa.int64())),
        ("array<string>", pa.list_(pa.string())),
        ("array(varchar(10))", pa.list_(pa.string())),
        ("array(array(double))", pa.list_(pa.list_(pa.float64()))),
        ("map(varchar, bigint)", pa.map_(pa.string(), pa.int64())),
        ("map<string,string>", pa.map_(pa.string(), pa.string())),
        ("map(varchar, array(integer))", pa.map_(pa.string(), pa.list_(pa.int32()))),
        ("array(timestamp(3))", pa.list_(pa.string())),
        # element types it does not know: the whole value as JSON text
        ("array(row(a bigint, b varchar))", pa.string()),
        ("map(varchar, hyperloglog)", pa.string()),
        ("array", pa.string()),
        ("array(bigint", pa.string()),
        ("array(bigint>", pa.string()),
        ("map(bigint)", pa.string()),
        ("row(a bigint, b varchar)", pa.string()),
        ("struct<a:int,b:string>", pa.string()),
        ("hyperloglog", pa.string()),
        ("unknown", pa.string()),
        ("", pa.string()),
    ],
)
def test_td_type_names_map_to_arrow_types(td_type: str, expected: Any) -> None:
    assert _arrow.arrow_type(td_type) == expected


# -- against the emulator -------------------------------------------------------------------


async def test_batches_hold_the_rows_with_the_schema_types(td: aiotd.Client) -> None:
    job = await finished(td, "-- emulator: rows=25000\nselect 1")
    assert [(c.name, c.type) for c in job.result_columns] == [
        ("id", "bigint"),
        ("name", "varchar"),
        ("value", "double"),
        ("time", "bigint"),
    ]
    rows = await all_rows(td, job.job_id)
    sizes = []
    seen: list[list[Any]] = []
    async for batch in td.jobs.record_batches(job.job_id, batch_size=10_000):
        assert batch.schema == pa.schema(
            [
                ("id", pa.int64()),
                ("name", pa.string()),
                ("value", pa.float64()),
                ("time", pa.int64()),
            ]
        )
        sizes.append(batch.num_rows)
        seen.extend(list(r.values()) for r in batch.to_pylist())
    # batches of at most batch_size, full ones while rows remain (built from 8,192-row pieces)
    assert sizes == [10_000, 10_000, 5_000]
    assert seen == rows


async def test_small_batches_and_plain_msgpack(td: aiotd.Client) -> None:
    job = await finished(td, "-- emulator: rows=1000\nselect 1")
    batches = [
        b async for b in td.jobs.record_batches(job.job_id, batch_size=300, format="msgpack")
    ]
    assert [b.num_rows for b in batches] == [300, 300, 300, 100]
    table = pa.Table.from_batches(batches)
    assert table.column("id").to_pylist() == list(range(1000))


async def test_first_batch_comes_before_the_result_is_downloaded(td: aiotd.Client) -> None:
    job = await finished(td, "-- emulator: rows=100000\nselect 1")
    assert job.result_size is not None
    assert job.result_size > 512 * 1024
    before = td.stats.bytes_in
    batches = td.jobs.record_batches(job.job_id, batch_size=1000)
    first = await anext(batches)
    read = td.stats.bytes_in - before  # job/show, then the result bytes taken so far
    await batches.aclose()
    assert first.num_rows == 1000
    assert first.column("id").to_pylist() == list(range(1000))
    assert read < job.result_size / 4


async def test_to_arrow_and_to_pandas_equal_the_rows(td: aiotd.Client) -> None:
    job = await finished(td, "-- emulator: rows=3000\nselect 1")
    rows = await all_rows(td, job.job_id)
    table = await td.jobs.to_arrow(job.job_id, batch_size=1024)
    assert isinstance(table, pa.Table)
    assert table.column_names == ["id", "name", "value", "time"]
    assert [list(r.values()) for r in table.to_pylist()] == rows
    frame = await td.jobs.to_pandas(job.job_id)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "name", "value", "time"]
    assert str(frame["id"].dtype) == "int64"
    assert str(frame["value"].dtype) == "float64"
    for i, name in enumerate(frame.columns):
        assert frame[name].tolist() == [r[i] for r in rows]


async def test_query_types_and_nulls(td: aiotd.Client) -> None:
    job = await finished(
        td,
        "select cast(7 as bigint) as n, cast(2.5 as double) as x, 'text' as s, null as absent",
    )
    table = await td.jobs.to_arrow(job.job_id)
    assert table.schema == _arrow.schema(job.result_columns)
    assert table.column_names == ["n", "x", "s", "absent"]
    assert table.schema.field("n").type == pa.int64()
    assert table.schema.field("x").type == pa.float64()
    assert table.schema.field("s").type == pa.string()
    assert table.to_pylist() == [{"n": 7, "x": 2.5, "s": "text", "absent": None}]


async def test_presto_containers_booleans_and_temporal_types(td: aiotd.Client) -> None:
    job = await finished(
        td,
        "select array[1, 2] as xs, map(array['a'], array[3]) as m, true as b, "
        "cast(0.5 as real) as r, timestamp '2024-01-02 03:04:05' as ts, date '2024-01-02' as d",
    )
    rows = await all_rows(td, job.job_id)
    table = await td.jobs.to_arrow(job.job_id)
    assert table.schema == _arrow.schema(job.result_columns)
    assert [(f.name, f.type) for f in table.schema] == [
        ("xs", pa.list_(pa.int32())),
        ("m", pa.map_(pa.string(), pa.int32())),
        ("b", pa.bool_()),
        ("r", pa.float32()),
        ("ts", pa.string()),
        ("d", pa.string()),
    ]
    ((xs, m, b, r, ts, d),) = rows
    assert table.to_pylist() == [{"xs": xs, "m": list(m.items()), "b": b, "r": r, "ts": ts, "d": d}]
    assert (xs, m, b, r) == ([1, 2], {"a": 3}, True, 0.5)


async def test_hive_spellings_from_a_hive_job(td: aiotd.Client) -> None:
    issued = await td.jobs.issue(
        "select array(1, 2) as xs, map('a', 3) as m, 'x' as s, cast(7 as bigint) as n",
        database="arrow_db",
        engine="hive",
    )
    job = await td.jobs.wait(issued.job_id, timeout=30)
    assert job.success, job.debug
    table = await td.jobs.to_arrow(job.job_id)
    assert table.schema == _arrow.schema(job.result_columns)
    assert table.column_names == ["xs", "m", "s", "n"]
    assert pa.types.is_list(table.schema.field("xs").type)
    assert pa.types.is_map(table.schema.field("m").type)
    assert table.schema.field("s").type == pa.string()
    assert table.schema.field("n").type == pa.int64()
    assert table.to_pylist() == [{"xs": [1, 2], "m": [("a", 3)], "s": "x", "n": 7}]


async def test_imported_table_with_nulls(td: aiotd.Client) -> None:
    await td.tables.create("arrow_db", "events")
    records = [
        {"time": 1_700_000_000 + i, "n": i, "x": i / 4, "s": f"s{i}"}
        if i % 3
        else {"time": 1_700_000_000 + i, "n": None, "x": None, "s": None}
        for i in range(1, 301)
    ]
    await td.imports.upload("arrow_db", "events", records)
    job = await finished(td, "select n, x, s from events order by time")
    rows = await all_rows(td, job.job_id)
    assert len(rows) == 300
    table = await td.jobs.to_arrow(job.job_id, batch_size=128)
    assert table.schema == _arrow.schema(job.result_columns)
    assert [t.type for t in table.schema] == [pa.int64(), pa.float64(), pa.string()]
    assert [list(r.values()) for r in table.to_pylist()] == rows
    assert table.column("n").null_count == 100
    frame = await td.jobs.to_pandas(job.job_id)
    assert frame["n"].isna().sum() == 100
    assert frame["s"].isna().tolist() == [r[2] is None for r in rows]


async def test_empty_result_keeps_its_columns(td: aiotd.Client) -> None:
    job = await finished(td, "select cast(1 as bigint) as a, 'x' as b where 1 = 0")
    assert [b async for b in td.jobs.record_batches(job.job_id)] == []
    table = await td.jobs.to_arrow(job.job_id)
    assert table.num_rows == 0
    assert table.schema == _arrow.schema(job.result_columns)
    assert table.column_names == ["a", "b"]
    frame = await td.jobs.to_pandas(job.job_id)
    assert list(frame.columns) == ["a", "b"]
    assert len(frame) == 0


async def test_unfinished_and_failed_jobs_are_refused(td: aiotd.Client) -> None:
    running = await td.jobs.issue("-- emulator: running=60\nselect 1", database="arrow_db")
    with pytest.raises(errors.JobNotFinished):
        await td.jobs.to_arrow(running.job_id)
    with pytest.raises(errors.JobNotFinished):
        await anext(td.jobs.record_batches(running.job_id))
    failing = await td.jobs.issue("-- emulator: status=error message=boom\nx", database="arrow_db")
    await td.jobs.wait(failing.job_id, timeout=30)
    with pytest.raises(errors.JobFailed, match="boom"):
        await td.jobs.to_pandas(failing.job_id)


async def test_bad_arguments_fail_before_any_request(td: aiotd.Client) -> None:
    before = td.stats.requests
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            td.jobs.record_batches("1", batch_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="format"):
        td.jobs.record_batches("1", format="csv")
    with pytest.raises(ValueError, match="format"):
        await td.jobs.to_arrow("1", format="json")
    assert td.stats.requests == before


# -- a recorded job/show body with the schema of a query of every kind of column -----------

#: ``job/show`` as recorded (samples/v3/job_show.json), with the schema of the rows below.
SCHEMA = [
    ["id", "bigint"],
    ["ids", "array(bigint)"],
    ["tags", "array(varchar)"],
    ["counts", "map(varchar, bigint)"],
    ["flag", "boolean"],
    ["ratio", "real"],
    ["at", "timestamp(3)"],
    ["day", "date"],
    ["pair", "row(a bigint, b varchar)"],
    ["sketch", "hyperloglog"],
    ["price", "decimal(6,2)"],
    ["blob", "varbinary"],
]
ROWS: list[list[Any]] = [
    [1, [1, 2], ["a"], {"x": 1}, True, 0.5, "2024-01-02 03:04:05.678", "2024-01-02", [1, "q"],
     "AgwBAA", "12.50", b"\x00\x01"],
    [2, [], [], {}, False, -1.25, "2024-12-31 23:59:59.000", "2024-12-31", [2, None],
     None, "-0.01", b""],
    [None, None, None, None, None, None, None, None, None, None, None, None],
    [4, [None, 3], [None], {"y": None}, True, 3.0, "2025-01-01 00:00:00.000", "2025-01-01",
     None, "AQ", "0.00", None],
]  # fmt: skip


def serve_job(scripted: Scripted, schema: list[list[str]] | None, rows: list[list[Any]]) -> None:
    """The recorded job 9999999 with ``schema`` (None: no hive_result_schema), and ``rows``
    as its msgpack.gz result."""
    job = json.loads((samples_dir("v3") / "job_show.json").read_text(encoding="utf-8"))
    job["hive_result_schema"] = None if schema is None else json.dumps(schema)
    scripted.on("/v3/job/show/9999999", reply(200, json.dumps(job)))
    body = gzip.compress(b"".join(msgpack.packb(r, use_bin_type=True) for r in rows))

    async def result(request: web.Request) -> web.StreamResponse:
        assert request.query["format"] == "msgpack.gz"
        return web.Response(body=body, content_type="application/octet-stream")

    scripted.on("/v3/job/result/9999999", result)


@pytest.fixture
async def scripted_td(scripted: Scripted) -> AsyncIterator[aiotd.Client]:
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=FAST_RETRY) as client:
        yield client


async def test_recorded_schema_types_and_values(
    scripted: Scripted, scripted_td: aiotd.Client
) -> None:
    serve_job(scripted, SCHEMA, ROWS)
    table = await scripted_td.jobs.to_arrow("9999999", batch_size=3)
    assert [(f.name, f.type) for f in table.schema] == [
        ("id", pa.int64()),
        ("ids", pa.list_(pa.int64())),
        ("tags", pa.list_(pa.string())),
        ("counts", pa.map_(pa.string(), pa.int64())),
        ("flag", pa.bool_()),
        ("ratio", pa.float32()),
        ("at", pa.string()),
        ("day", pa.string()),
        ("pair", pa.string()),
        ("sketch", pa.string()),
        ("price", pa.string()),
        ("blob", pa.binary()),
    ]
    assert [b.num_rows for b in table.to_batches()] == [3, 1]
    col = {name: table.column(name).to_pylist() for name in table.column_names}
    assert col["id"] == [1, 2, None, 4]
    assert col["ids"] == [[1, 2], [], None, [None, 3]]
    assert col["tags"] == [["a"], [], None, [None]]
    assert col["counts"] == [[("x", 1)], [], None, [("y", None)]]
    assert col["flag"] == [True, False, None, True]
    assert col["ratio"] == [0.5, -1.25, None, 3.0]
    assert col["at"] == [r[6] for r in ROWS]  # timestamps: the text TD sends
    assert col["day"] == [r[7] for r in ROWS]
    assert col["pair"] == ['[1,"q"]', "[2,null]", None, None]  # a row type: JSON text
    assert col["sketch"] == ["AgwBAA", None, None, "AQ"]
    assert col["price"] == ["12.50", "-0.01", None, "0.00"]
    assert col["blob"] == [b"\x00\x01", b"", None, None]
    frame = await scripted_td.jobs.to_pandas("9999999")
    assert frame["id"].isna().tolist() == [False, False, True, False]
    assert frame["flag"].tolist()[:2] == [True, False]
    assert list(frame["ids"][0]) == [1, 2]


async def test_hive_spellings(scripted: Scripted, scripted_td: aiotd.Client) -> None:
    schema = [["n", "int"], ["xs", "array<string>"], ["m", "map<string,bigint>"], ["s", "string"]]
    serve_job(scripted, schema, [[1, ["a", "b"], {"k": 2}, "v"], [None, None, None, None]])
    table = await scripted_td.jobs.to_arrow("9999999")
    assert [f.type for f in table.schema] == [
        pa.int32(),
        pa.list_(pa.string()),
        pa.map_(pa.string(), pa.int64()),
        pa.string(),
    ]
    assert table.to_pylist() == [
        {"n": 1, "xs": ["a", "b"], "m": [("k", 2)], "s": "v"},
        {"n": None, "xs": None, "m": None, "s": None},
    ]


async def test_values_that_do_not_fit_are_converted_where_plain(
    scripted: Scripted, scripted_td: aiotd.Client
) -> None:
    schema = [["n", "bigint"], ["s", "varchar"], ["xs", "array(bigint)"], ["b", "boolean"]]
    rows: list[list[Any]] = [
        [1, "a", [1], True],
        [2.0, 5, "[2, 3]", 0],  # a float that is an integer, a number as text, JSON text
        ["3", [1, "x"], None, "true"],
    ]
    serve_job(scripted, schema, rows)
    table = await scripted_td.jobs.to_arrow("9999999")
    assert table.to_pylist() == [
        {"n": 1, "s": "a", "xs": [1], "b": True},
        {"n": 2, "s": "5", "xs": [2, 3], "b": False},
        {"n": 3, "s": '[1,"x"]', "xs": None, "b": True},
    ]


async def test_a_value_that_cannot_fit_names_its_column(
    scripted: Scripted, scripted_td: aiotd.Client
) -> None:
    serve_job(scripted, [["n", "bigint"], ["s", "varchar"]], [[1, "a"], ["many", "b"]])
    with pytest.raises(errors.DecodeError, match="'n' of type 'bigint'") as info:
        await scripted_td.jobs.to_arrow("9999999")
    assert "many" in str(info.value)


async def test_a_row_of_another_width_is_a_decode_error(
    scripted: Scripted, scripted_td: aiotd.Client
) -> None:
    serve_job(scripted, [["n", "bigint"], ["s", "varchar"]], [[1, "a"], [2, "b", "extra"]])
    with pytest.raises(errors.DecodeError, match="row 2 has 3 values"):
        await scripted_td.jobs.to_arrow("9999999")


async def test_a_job_without_schema_gets_numbered_text_columns(
    scripted: Scripted, scripted_td: aiotd.Client
) -> None:
    serve_job(scripted, None, [[1, "a"], [None, [2]]])
    table = await scripted_td.jobs.to_arrow("9999999")
    assert table.to_pylist() == [{"_col0": "1", "_col1": "a"}, {"_col0": None, "_col1": "[2]"}]


# -- without the extra ---------------------------------------------------------------------


async def test_without_pyarrow_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, scripted_td: aiotd.Client
) -> None:
    # as in an environment without pyarrow: its import fails, and aiotd's Arrow module was
    # never loaded
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.delitem(sys.modules, "aiotd.core._arrow")
    before = scripted_td.stats.requests
    with pytest.raises(errors.MissingExtra, match=r"pip install 'aiotd\[arrow\]'") as info:
        scripted_td.jobs.record_batches("9999999")
    assert isinstance(info.value, ImportError)
    assert info.value.extra == "arrow"
    with pytest.raises(errors.MissingExtra, match=r"aiotd\[arrow\]"):
        await scripted_td.jobs.to_arrow("9999999")
    assert scripted_td.stats.requests == before


async def test_without_pandas_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, scripted_td: aiotd.Client
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    before = scripted_td.stats.requests
    with pytest.raises(errors.MissingExtra, match=r"pip install 'aiotd\[pandas\]'") as info:
        await scripted_td.jobs.to_pandas("9999999")
    assert info.value.extra == "pandas"
    assert scripted_td.stats.requests == before


def test_importing_aiotd_loads_neither_pyarrow_nor_pandas() -> None:
    code = (
        "import sys, aiotd, aiotd.core.jobs\n"
        "loaded = [m for m in ('pyarrow', 'pandas', 'aiotd.core._arrow') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
