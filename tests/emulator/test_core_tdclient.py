"""Acceptance: the official td-client-python works against the emulator unchanged."""

from __future__ import annotations

import asyncio
import gzip
import os
import tempfile
from typing import Any

import msgpack
import tdclient

from aiotd.testing import Emulator
from tests.emulator._core_support import emu

__all__ = ["emu"]


def _flow(emu: Emulator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tdclient.Client(apikey=emu.apikey, endpoint=emu.url) as td:
        td.create_database("acceptance")
        td.create_log_table("acceptance", "events")
        records = [{"time": 1_700_000_000 + i, "user": f"u{i % 3}", "n": i} for i in range(30)]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "events.msgpack.gz")
            with gzip.open(path, "wb") as f:
                for r in records:
                    f.write(msgpack.packb(r))
            with open(path, "rb") as f:
                td.import_file("acceptance", "events", "msgpack.gz", f)
        out["tables"] = [(t.name, t.count) for t in td.tables("acceptance")]
        job = td.query(
            "acceptance",
            "SELECT user, COUNT(*) AS c, SUM(n) AS s FROM events GROUP BY user ORDER BY user",
            type="presto",
        )
        job.wait(wait_interval=0.05, timeout=20)
        out["status"] = job.status()
        out["schema"] = job.result_schema
        out["rows"] = list(job.result())
        out["json_rows"] = td.job_result_format(job.job_id, "json")
        bad = td.query("acceptance", "SELECT missing_col FROM events", type="presto")
        bad.wait(wait_interval=0.05, timeout=20)
        out["bad"] = (bad.status(), bad.error(), bad.debug["stderr"])
        out["jobs"] = {j.job_id: j.status() for j in td.jobs()}
        out["ids"] = (job.job_id, bad.job_id)
        out["server"] = td.api.server_status()
        out["databases"] = [d.name for d in td.databases()]
    return out


async def test_td_client_python_end_to_end(emu: Emulator) -> None:
    out = await asyncio.to_thread(_flow, emu)
    assert out["tables"] == [("events", 30)]
    assert out["status"] == "success"
    assert out["schema"] == [["user", "varchar"], ["c", "bigint"], ["s", "bigint"]]
    expected = [["u0", 10, 135], ["u1", 10, 145], ["u2", 10, 155]]
    assert out["rows"] == expected
    assert out["json_rows"] == expected
    status, is_error, stderr = out["bad"]
    assert (status, is_error) == ("error", True)
    assert "missing_col" in stderr
    ok_id, bad_id = out["ids"]
    assert out["jobs"] == {bad_id: "error", ok_id: "success"}
    assert out["server"] == "ok"
    assert out["databases"] == ["sample_datasets", "acceptance"]


def _misc(emu: Emulator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tdclient.Client(apikey=emu.apikey, endpoint=emu.url) as td:
        td.create_database("misc_db")
        td.create_log_table("misc_db", "tbl")
        data = gzip.compress(b"".join(msgpack.packb({"time": 1, "a": i}) for i in range(4)))
        td.import_data("misc_db", "tbl", "msgpack.gz", data, len(data), unique_id="u-1")
        td.import_data("misc_db", "tbl", "msgpack.gz", data, len(data), unique_id="u-1")
        out["count"] = td.table("misc_db", "tbl").count
        job = td.query("misc_db", "-- emulator: queued=5\nSELECT 1", type="trino")
        out["kill"] = td.kill(job.job_id)
        out["killed"] = td.job_status(job.job_id)
        td.create_schedule(
            "sched_one", {"type": "presto", "database": "misc_db", "query": "SELECT 1",
                          "cron": "@daily"}
        )  # fmt: skip
        out["schedules"] = [s.name for s in td.schedules()]
        out["run"] = [j.job_id for j in td.run_schedule("sched_one", 1_700_000_000, 2)]
        out["history"] = len(td.history("sched_one"))
        td.create_result("res_one", "td://@/misc_db/out")
        out["results"] = [r.name for r in td.results()]
        out["users"] = [u.name for u in td.users()]
        bi = td.create_bulk_import("bi_one", "misc_db", "tbl")
        part = gzip.compress(b"".join(msgpack.packb({"time": 10 + i, "z": i}) for i in range(2)))
        bi.upload_part("p1", part, len(part))
        bi.freeze()
        bi.perform(wait=True, wait_interval=0.05)
        bi.commit(wait=True, wait_interval=0.05)
        out["bi_status"] = bi.status
        out["count_after"] = td.table("misc_db", "tbl").count
    return out


async def test_td_client_python_other_resources(emu: Emulator) -> None:
    out = await asyncio.to_thread(_misc, emu)
    assert out["count"] == 4
    assert out["kill"] == "queued"
    assert out["killed"] == "killed"
    assert out["schedules"] == ["sched_one"]
    assert len(out["run"]) == 2
    assert out["history"] == 2
    assert out["results"] == ["res_one"]
    assert out["users"] == ["Emulator User"]
    assert out["bi_status"] == "committed"
    assert out["count_after"] == 6
