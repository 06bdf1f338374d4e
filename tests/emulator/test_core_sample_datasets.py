"""``sample_datasets`` on the emulator, and the README's first example run verbatim against it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import msgpack

from aiotd.testing import Emulator
from tests.emulator._core_support import Api, api, emu

__all__ = ["api", "emu"]

README = Path(__file__).resolve().parents[2] / "README.md"
WWW_ACCESS_SCHEMA = [
    ["user", "long"], ["host", "string"], ["path", "string"], ["referer", "string"],
    ["code", "long"], ["agent", "string"], ["size", "long"], ["method", "string"],
]  # fmt: skip
NASDAQ_SCHEMA = [
    ["symbol", "string"], ["open", "double"], ["volume", "long"], ["high", "double"],
    ["low", "double"], ["close", "double"],
]  # fmt: skip


def readme_block(heading: str) -> str:
    """The first ```python block under ``heading`` in README.md, as written there."""
    text = README.read_text(encoding="utf-8")
    at = text.index(f"\n{heading}\n")
    match = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL).search(text, at)
    assert match is not None, f"no python block under {heading!r}"
    return match.group(1)


async def test_tables_as_td_lists_them(api: Api) -> None:
    listed = await api.ok("GET", "/v3/database/list")
    (sample,) = [d for d in listed["databases"] if d["name"] == "sample_datasets"]
    # samples/v3/database_list.json: sample_datasets is query_only, created 2014-10-04.
    assert sample["permission"] == "query_only"
    assert sample["created_at"] == "2014-10-04 01:13:11 UTC"
    tables = (await api.ok("GET", "/v3/table/list/sample_datasets"))["tables"]
    by_name = {t["name"]: t for t in tables}
    assert set(by_name) == {"www_access", "nasdaq"}
    www = by_name["www_access"]
    assert (www["type"], www["count"]) == ("log", 5000)
    assert json.loads(www["schema"]) == WWW_ACCESS_SCHEMA
    assert json.loads(by_name["nasdaq"]["schema"]) == NASDAQ_SCHEMA
    assert by_name["nasdaq"]["count"] == 5000
    assert sample["count"] == 10_000
    shown = await api.ok("GET", "/v3/table/show/sample_datasets/www_access")
    assert shown["last_log_timestamp"].startswith("2014-10-03T23:")


async def test_queries_see_the_rows(api: Api) -> None:
    body = await api.ok(
        "POST",
        "/v3/job/issue/presto/sample_datasets",
        data={"query": "select count(*), count(distinct host), min(time) from www_access"},
    )
    job = await api.wait(str(body["job_id"]))
    assert job["status"] == "success"
    status, raw = await api.get(f"/v3/job/result/{job['job_id']}", params={"format": "json"})
    assert status == 200
    count, hosts, first = json.loads(raw)
    assert (count, first) == (5000, 1412294400)
    assert 100 < hosts <= 400
    query = "select symbol, open, volume, high, low, close, time from nasdaq where symbol = 'AAPL'"
    body = await api.ok("POST", "/v3/job/issue/presto/sample_datasets", data={"query": query})
    job = await api.wait(str(body["job_id"]))
    assert job["num_records"] == 250
    row = json.loads(
        (await api.get(f"/v3/job/result/{job['job_id']}", params={"format": "json"}))[
            1
        ].splitlines()[0]
    )
    symbol, open_, volume, high, low, close, _ = row
    assert symbol == "AAPL"
    assert low <= min(open_, close) <= max(open_, close) <= high
    assert isinstance(volume, int)


async def test_rows_are_the_same_in_every_emulator(api: Api) -> None:
    params = {"count": "3", "format": "msgpack"}
    status, raw = await api.get("/v3/table/tail/sample_datasets/www_access", params=params)
    assert status == 200
    async with Emulator() as other:
        store = other.core.store
        _, again = store.query("sample_datasets", "select * from www_access order by rowid desc")
        first_three = [row for _, row in zip(range(3), again, strict=False)]
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(raw)
    tail = list(unpacker)
    assert [r["host"] for r in tail] == [row[2] for row in first_three]
    assert [r["time"] for r in tail] == [row[0] for row in first_three]


async def test_rows_are_written_on_first_use_only(emu: Emulator) -> None:
    store = emu.core.store
    sample = store.databases["sample_datasets"]
    assert not sample.rows_written
    _, rows = store.query("sample_datasets", "select count(*) from nasdaq")
    assert list(rows) == [(5000,)]
    assert sample.rows_written
    with store.lock:
        cursor = store.duck()
        cursor.execute(f"SELECT count(*) FROM {store.ref('sample_datasets', 'www_access')}")
        assert cursor.fetchone() == (5000,)


async def test_sample_datasets_are_query_only(api: Api) -> None:
    status, body = await api.post("/v3/table/create/sample_datasets/mine/log")
    assert status == 403
    assert body["message"] == "Access denied for the database sample_datasets"
    status, _ = await api.post("/v3/database/delete/sample_datasets")
    assert status == 403
    status, _ = await api.call(
        "PUT", "/v3/table/import/sample_datasets/www_access/msgpack.gz", data=b""
    )
    assert status == 403


async def test_sample_datasets_can_be_left_out() -> None:
    async with Emulator(sample_datasets=False) as emu:
        assert "sample_datasets" not in emu.core.store.databases


def test_readme_quick_example_runs_verbatim_against_aiotd_emulator(tmp_path: Path) -> None:
    script = tmp_path / "quick_example.py"
    script.write_text(readme_block("## Quick example"), encoding="utf-8")
    apikey = "1/" + "e" * 40
    command = [sys.executable, "-m", "aiotd", "emulator", "--port", "0", "--apikey", apikey]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            env = {**os.environ, "TD_API_KEY": apikey, "TD_API_SERVER": url}
            env.pop("TD_WORKFLOW_SERVER", None)
            run = subprocess.run(
                [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
            )
        finally:
            server.terminate()
            server.wait(timeout=20)
    assert run.returncode == 0, run.stderr
    # select count(*) from www_access: one row, 5,000 (TD's www_access size).
    assert run.stdout.split() == ["[5000]"]
