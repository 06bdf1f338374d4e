"""The commands next to td's db:list, table:list and table:import, against the emulator:
output (text and JSON), every import format, bad files, missing tables, exactly-once parts."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

import aiotd
from aiotd.cli import main
from aiotd.testing import Emulator

DB = "td_cmd_db"
TABLE = "events"
ROUTE = "PUT /v3/table/import_with_id/{db}/{table}/{unique_id}/{format}"
ENV_VARS = ("TD_API_KEY", "TD_API_SERVER", "TD_WORKFLOW_SERVER", "TD_SITE", "TD_CONFIG_PATH")
T0 = 1_700_000_000


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key or endpoint from the environment, and a HOME without td.conf."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def table(self) -> list[list[str]]:
        return [line.split() for line in self.out.splitlines()]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(queued_time=0.02, running_time=0.05) as emulator:
        async with aiotd.Client(emulator.apikey, endpoint=emulator.url) as td:
            await td.databases.create(DB)
            await td.tables.create(DB, TABLE)
        yield emulator


@pytest.fixture
async def td(emu: Emulator) -> AsyncIterator[aiotd.Client]:
    poll = aiotd.PollSettings(min_interval=0.05, max_interval=0.2, first_delay=0.01)
    async with aiotd.Client(emu.apikey, endpoint=emu.url, poll=poll) as client:
        yield client


@pytest.fixture
def cli(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``aiotd ...`` through the entry point on a thread, against ``emu``."""

    async def run(*argv: str) -> Run:
        capsys.readouterr()
        args = [*argv, "--apikey", emu.apikey, "--endpoint", emu.url]
        code = await asyncio.to_thread(main, args)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"time": T0 + i, "n": i, "name": "a,b" if i == 1 else f"r{i}", "score": i + 0.5}
        for i in range(start, start + n)
    ]


def write_csv(path: Path, records: list[dict[str, Any]], sep: str = ",") -> Path:
    lines = [sep.join(records[0])]
    for r in records:
        cells = [str(v) for v in r.values()]
        lines.append(sep.join(f'"{c}"' if sep in c else c for c in cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


async def count(td: aiotd.Client, table: str = TABLE) -> int:
    return (await td.tables.get(DB, table)).count or 0


async def query(td: aiotd.Client, sql: str) -> list[list[Any]]:
    issued = await td.jobs.issue(sql, database=DB)
    job = await td.jobs.wait(issued.job_id, timeout=20, raise_on_failure=True)
    return [row async for row in td.jobs.rows(job.job_id)]


# -- databases and tables


async def test_databases_as_a_table_and_as_json_lines(cli: Any, td: aiotd.Client) -> None:
    await td.imports.upload(DB, TABLE, rows(7))
    text = await cli("databases")
    assert text.code == 0, text.err
    table = text.table()
    assert table[0] == ["database", "count", "permission", "created"]
    by_name = {row[0]: row for row in table[1:]}
    assert set(by_name) == {DB, "sample_datasets"}
    assert by_name[DB][1:3] == ["7", "administrator"]
    assert by_name["sample_datasets"][2] == "query_only"

    shaped = await cli("databases", "--json")
    records = {r["name"]: r for r in shaped.json_lines()}
    assert records[DB]["count"] == 7
    assert records[DB]["permission"] == "administrator"
    assert records[DB]["created_at"].endswith(" UTC")
    assert "\x1b[" not in text.out + shaped.out


async def test_tables_of_one_database_and_of_all(cli: Any, td: aiotd.Client) -> None:
    await td.tables.create(DB, "other")
    await td.imports.upload(DB, TABLE, rows(3))
    text = await cli("tables", DB)
    assert text.code == 0, text.err
    header, *body = text.table()
    assert header == [
        "database", "table", "type", "count", "size", "last_import", "last_log", "created",
    ]  # fmt: skip
    assert [row[:4] for row in body] == [[DB, TABLE, "log", "3"], [DB, "other", "log", "0"]]
    assert body[0][5].endswith("B")  # a size for people: "123 B", "1.5 KiB"
    last_log = body[0][7]
    assert last_log.startswith("2023-11-14T22:13:")  # the newest record's time, T0 + 2

    shaped = await cli("tables", DB, "--json")
    records = {r["name"]: r for r in shaped.json_lines()}
    assert set(records) == {TABLE, "other"}
    events = records[TABLE]
    assert (events["database"], events["count"], events["type"]) == (DB, 3, "log")
    assert events["estimated_storage_size"] > 0
    assert {"last_log_timestamp", "counter_updated_at", "schema", "created_at"} <= set(events)

    everywhere = await cli("tables", "--json")
    assert {(r["database"], r["name"]) for r in everywhere.json_lines()} == {
        (DB, TABLE),
        (DB, "other"),
        ("sample_datasets", "www_access"),
        ("sample_datasets", "nasdaq"),
    }


async def test_an_empty_database_and_a_missing_one(cli: Any, td: aiotd.Client) -> None:
    await td.databases.create("empty_db")
    empty = await cli("tables", "empty_db")
    assert (empty.code, empty.out.strip()) == (0, "(none)")
    assert (await cli("tables", "empty_db", "--json")).out == ""

    missing = await cli("tables", "no_such_db")
    assert missing.code == 1
    assert missing.err.startswith("aiotd: NotFound: 404")
    assert "no_such_db" in missing.err
    assert len(missing.err.splitlines()) == 1
    assert "Traceback" not in missing.err


# -- import: formats


async def test_import_of_every_format_types_the_values(
    cli: Any, td: aiotd.Client, tmp_path: Path
) -> None:
    write_csv(tmp_path / "a.csv", rows(5))
    write_csv(tmp_path / "b.tsv", rows(5, 5), sep="\t")
    jsonl = write_jsonl(tmp_path / "c.json", rows(5, 10))
    packed = b"".join(msgpack.packb(r) for r in rows(5, 15))
    (tmp_path / "d.msgpack").write_bytes(packed)
    (tmp_path / "e.msgpack.gz").write_bytes(gzip.compress(b"".join(
        msgpack.packb(r) for r in rows(5, 20)
    )))  # fmt: skip
    gz_csv = tmp_path / "f.csv.gz"
    gz_csv.write_bytes(gzip.compress(write_csv(tmp_path / "f.csv", rows(5, 25)).read_bytes()))
    (tmp_path / "g.data").write_text(jsonl.read_text().replace('"n": 1', '"n": 3'))

    expected = {"a.csv": "csv", "b.tsv": "tsv", "c.json": "json", "d.msgpack": "msgpack"}
    expected |= {"e.msgpack.gz": "msgpack", "f.csv.gz": "csv"}
    for name, fmt in expected.items():
        done = await cli("import", DB, TABLE, str(tmp_path / name), "--json")
        assert done.code == 0, (name, done.err)
        (summary,) = done.json_lines()
        assert (summary["format"], summary["rows"], summary["parts"]) == (fmt, 5, 1), name
        assert summary["bytes"] > 0
        assert summary["file_bytes"] == (tmp_path / name).stat().st_size
        assert summary["elapsed"] >= 0
    assert await count(td) == 30

    # the format named, for a file whose extension says nothing
    named = await cli("import", DB, TABLE, str(tmp_path / "g.data"), "--format", "jsonl")
    assert named.code == 0, named.err
    assert named.out.startswith("5 rows imported into td_cmd_db.events in 1 part ")
    assert await count(td) == 35

    got = await query(td, f"select n, name, score, time from {TABLE} where n < 30 order by n")
    assert got == [[r["n"], r["name"], r["score"], r["time"]] for r in rows(30)]


async def test_csv_cells_become_ints_floats_strings_or_null(
    cli: Any, td: aiotd.Client, tmp_path: Path
) -> None:
    source = tmp_path / "typed.csv"
    source.write_text(
        "\ufefftime,i,f,s,empty,big\n"  # a byte order mark, as spreadsheets write
        f"{T0},-12,2.5e3,007x,,123456789012345678901234567890\n"
        f"{T0 + 1},0,.5,1_000,,1\n"
    )
    # Each row into its own table: a table's column holds one type (the first one seen).
    found = []
    for line, table in ((1, TABLE), (2, "events_two")):
        lines = source.read_text().splitlines()
        part = tmp_path / f"typed{line}.csv"
        part.write_text(f"{lines[0]}\n{lines[line]}\n")
        if table != TABLE:
            await td.tables.create(DB, table)
        done = await cli("import", DB, table, str(part))
        assert done.code == 0, done.err
        found += await td.tables.tail(DB, table, count=10)
    assert [(r["i"], r["f"], r["s"], r.get("empty"), r["big"]) for r in found] == [
        (-12, 2500.0, "007x", None, "123456789012345678901234567890"),  # too big: kept as text
        (0, 0.5, "1_000", None, 1),
    ]

    strings = await cli("import", DB, "strings", str(source), "--all-string", "--auto-create-table")
    assert strings.code == 0, strings.err
    kept = sorted(await td.tables.tail(DB, "strings", count=10), key=lambda r: r["time"])
    assert [(r["time"], r["i"], r["f"]) for r in kept] == [
        (T0, "-12", "2.5e3"),
        (T0 + 1, "0", ".5"),
    ]


async def test_time_from_another_column_or_one_value(
    cli: Any, td: aiotd.Client, tmp_path: Path
) -> None:
    stamped = tmp_path / "stamped.csv"
    stamped.write_text(
        "created,n\n2023-11-14 22:13:20 UTC,1\n1700000005,2\n2023-11-14T22:13:30Z,3\n"
    )
    done = await cli("import", DB, TABLE, str(stamped), "--time-column", "created")
    assert done.code == 0, done.err
    records = sorted(await td.tables.tail(DB, TABLE, count=10), key=lambda r: r["n"])
    assert [(r["n"], r["time"]) for r in records] == [(1, T0), (2, T0 + 5), (3, T0 + 10)]
    assert records[0]["created"] == "2023-11-14 22:13:20 UTC"  # the column itself is kept

    plain = write_jsonl(tmp_path / "plain.jsonl", [{"n": 10}, {"n": 11}])
    fixed = await cli("import", DB, "fixed", str(plain), "--time-value", "2024-01-01 00:00:00",
                      "--auto-create-table")  # fmt: skip
    assert fixed.code == 0, fixed.err
    assert {r["time"] for r in await td.tables.tail(DB, "fixed")} == {1_704_067_200}

    both = await cli("import", DB, TABLE, str(plain), "-t", "n", "--time-value", "1")
    assert both.code == 2
    bad_value = await cli("import", DB, TABLE, str(plain), "--time-value", "yesterday")
    assert (bad_value.code, bad_value.err.startswith("aiotd: UsageError: --time-value")) == (
        2,
        True,
    )


# -- import: parts, exactly once


async def test_parts_of_n_rows_each_sent_once(
    cli: Any, td: aiotd.Client, emu: Emulator, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "many.jsonl", rows(2500))
    emu.counters.reset()
    done = await cli("import", DB, TABLE, str(source), "--part-size", "1000", "--json")
    assert done.code == 0, done.err
    (summary,) = done.json_lines()
    assert (summary["parts"], summary["rows"]) == (3, 2500)
    assert emu.counters[ROUTE] == 3
    assert await count(td) == 2500


async def test_exactly_once_through_lost_answers_and_server_errors(
    cli: Any, td: aiotd.Client, emu: Emulator, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "faulty.csv", rows(1000))
    # each fault hits a different try: the server applies the part and the answer is lost
    # (twice), or answers 500 before applying it
    emu.faults.drop("PUT /v3/table/import_with_id/", count=2)
    emu.faults.server_error("PUT /v3/table/import_with_id/", status=500, count=1)
    emu.counters.reset()
    done = await cli("import", DB, TABLE, str(source), "--part-size", "200", "--json")
    assert done.code == 0, done.err
    (summary,) = done.json_lines()
    assert (summary["parts"], summary["rows"]) == (5, 1000)
    assert emu.counters.faults == {"drop": 2, "error": 1}
    assert emu.counters[ROUTE] == 5 + 3  # every faulted try was sent again
    imported = [key for key in emu.core.imported_ids if key[:2] == (DB, TABLE)]
    assert len(imported) == 5  # one import per part on the server
    assert await count(td) == 1000
    assert await query(td, f"select count(*), count(distinct n), sum(n) from {TABLE}") == [
        [1000, 1000, sum(range(1000))]
    ]


# -- import: bad files and missing tables


BAD_FILES = [
    ("fields.csv", f"time,n\n{T0},1\n{T0},2,3\n", "fields.csv line 3: 3 fields, the header has 2"),
    ("quote.csv", f'time,n\n{T0},"open\n', "quote.csv line 2: unexpected end of data"),
    ("header.csv", "n,name\n1,a\n", "no 'time' column (columns: n, name)"),
    ("twice.tsv", "time\tn\tn\n1\t2\t3\n", "column 'n' appears twice"),
    ("when.csv", "time,n\nlater,1\n", "when.csv line 2: column 'time': not a timestamp"),
    ("broken.jsonl", f'{{"time": {T0}}}\n{{"time": \n', "broken.jsonl line 2: not JSON"),
    ("list.jsonl", "[1, 2]\n", "list.jsonl line 1: a record is a JSON object, not an array"),
    ("notime.jsonl", '{"n": 1}\n', "notime.jsonl line 1: no 'time' column"),
    ("latin1.csv", b"time,name\n1,caf\xe9\n", "latin1.csv: not UTF-8 text"),
    (
        "junk.msgpack",
        b"\x92\x01",
        "junk.msgpack: not msgpack records after record 0 (result ended in the middle",
    ),
    (
        "cut.csv.gz",
        gzip.compress(b"time,n\n" + b"1,2\n" * 50)[:-12],
        "cut.csv.gz: cannot read as gzip",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
async def test_a_bad_file_is_one_clear_line_and_exit_1(
    cli: Any, td: aiotd.Client, tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    source = tmp_path / name
    if isinstance(content, bytes):
        source.write_bytes(content)
    else:
        source.write_text(content)
    done = await cli("import", DB, TABLE, str(source))
    assert done.code == 1
    assert done.err.startswith("aiotd: BadFile: ")
    assert message in done.err
    assert done.err.rstrip().endswith("; nothing was imported")
    assert len(done.err.splitlines()) == 1
    assert "Traceback" not in done.err
    assert done.out == ""
    assert await count(td) == 0


async def test_a_bad_line_after_full_parts_says_what_was_imported(
    cli: Any, td: aiotd.Client, tmp_path: Path
) -> None:
    good = write_jsonl(tmp_path / "late.jsonl", rows(25))
    good.write_text(
        good.read_text() + "not json\n" + "".join(json.dumps(r) + "\n" for r in rows(5))
    )
    done = await cli("import", DB, TABLE, str(good), "--part-size", "10")
    assert done.code == 1
    assert "late.jsonl line 26: not JSON" in done.err
    assert done.err.rstrip().endswith("; the first 20 rows were imported")
    assert await count(td) == 20
    assert await query(td, f"select min(n), max(n) from {TABLE}") == [[0, 19]]


async def test_a_missing_database_or_table(cli: Any, td: aiotd.Client, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "a.csv", rows(3))
    no_db = await cli("import", "no_such_db", TABLE, str(source))
    assert no_db.code == 1
    assert no_db.err.startswith("aiotd: NotFound: 404: Database 'no_such_db' does not exist")
    assert len(no_db.err.splitlines()) == 1

    no_table = await cli("import", DB, "absent", str(source))
    assert no_table.code == 1
    assert "Table 'absent' does not exist" in no_table.err
    assert "pass --auto-create-table" in no_table.err

    created = await cli("import", "new_db", "fresh", str(source), "--auto-create-table")
    assert created.code == 0, created.err
    assert (await td.tables.get("new_db", "fresh")).count == 3


async def test_usage_errors_before_any_request(cli: Any, emu: Emulator, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "a.csv", rows(1))
    (tmp_path / "a.parquet").write_bytes(b"PAR1")
    emu.counters.reset()
    cases = [
        (("import", DB, TABLE, str(tmp_path / "a.parquet")), "cannot tell the format of a.parquet"),
        (("import", DB, TABLE, str(tmp_path / "none.csv")), "no such file"),
        (("import", DB, TABLE, str(source), "--part-size", "0"), "--part-size must be >= 1"),
    ]
    for argv, message in cases:
        done = await cli(*argv)
        assert done.code == 2, argv
        assert done.err.startswith("aiotd: UsageError: ")
        assert message in done.err
    assert (await cli("import", DB, TABLE, str(source), "--format", "xml")).code == 2
    assert emu.counters.total == 0


# -- on a terminal


class _Terminal(io.StringIO):
    """A stdout that says it is a terminal, so the live displays run."""

    def isatty(self) -> bool:
        return True


async def test_a_progress_bar_on_a_terminal_and_none_with_json(
    emu: Emulator, td: aiotd.Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "bar.csv", rows(3000))
    connect = ["--apikey", emu.apikey, "--endpoint", emu.url]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    argv = ["import", DB, TABLE, str(source), "--part-size", "1000", *connect]
    assert await asyncio.to_thread(main, argv) == 0
    shown = terminal.getvalue()
    assert "\x1b[" in shown
    assert "importing bar.csv" in shown
    assert "3000 rows in 3 parts" in shown
    assert re.search(r"3000 rows imported into td_cmd_db.events in 3 parts \(.* sent\)", shown)

    quiet = _Terminal()
    monkeypatch.setattr(sys, "stdout", quiet)
    assert await asyncio.to_thread(main, [*argv, "--json"]) == 0
    assert "\x1b[" not in quiet.getvalue()
    (summary,) = [json.loads(line) for line in quiet.getvalue().splitlines()]
    assert summary["rows"] == 3000
    assert await count(td) == 6000
