"""``/v3/bulk_loads`` on the emulator, its bodies shaped as samples/v3/bulk_loads_*.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiotd.testing import Emulator
from tests.emulator._core_support import Api, api, emu, loaded

__all__ = ["api", "emu", "loaded"]

SAMPLES = {
    p.stem: json.loads(p.read_text())
    for p in (Path(__file__).resolve().parents[1] / "samples" / "v3").glob("bulk_loads_*.json")
}
CONFIG = {"in": {"type": "s3", "bucket": "b", "path_prefix": "logs/"}, "out": {}, "exec": {}}


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


async def json_call(api: Api, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url = api.emu.url + path
    async with api.session.request(method, url, json=body, headers=api.headers) as resp:
        return resp.status, await resp.json()


async def test_guess_completes_the_parser_as_the_recorded_guess(api: Api) -> None:
    status, body = await json_call(api, "POST", "/v3/bulk_loads/guess", {"config": CONFIG})
    assert status == 200
    guessed = body["config"]["in"]
    assert {k: guessed[k] for k in CONFIG["in"]} == CONFIG["in"]
    assert guessed["parser"] == SAMPLES["bulk_loads_guess"]["config"]["parser"]
    assert (body["config"]["out"], body["config"]["exec"]) == ({}, {})
    given = {"in": {"type": "s3", "parser": {"type": "tsv", "columns": [{"name": "a"}]}}}
    _, body = await json_call(api, "POST", "/v3/bulk_loads/guess", {"config": given})
    assert body["config"]["in"]["parser"]["type"] == "tsv"
    assert body["config"]["in"]["parser"]["columns"] == [{"name": "a"}]
    status, body = await json_call(api, "POST", "/v3/bulk_loads/guess", {})
    assert (status, body) == (422, {"message": "'config' is required"})


async def test_preview_is_shaped_as_the_recorded_one(api: Api) -> None:
    status, body = await json_call(api, "POST", "/v3/bulk_loads/preview", {"config": CONFIG})
    assert status == 200
    recorded = SAMPLES["bulk_loads_preview"]
    assert set(body) == set(recorded)
    assert shape(body["schema"]) == shape(recorded["schema"])
    assert [c["name"] for c in body["schema"]] == ["time", "c1", "c2", "c3"]
    assert all(len(r) == len(body["schema"]) for r in body["records"])
    assert len(body["records"]) == len(SAMPLES["bulk_loads_preview"]["records"]) == 10
    _, again = await json_call(api, "POST", "/v3/bulk_loads/preview", {"config": CONFIG})
    assert again == body


async def test_saved_load_lifecycle(loaded: Api) -> None:
    create = {"name": "nahi_test_1", "database": "db1", "table": "events", "config": CONFIG}
    create |= {"cron": "@daily", "timezone": "Asia/Tokyo", "delay": 3600}
    status, session = await json_call(loaded, "POST", "/v3/bulk_loads", create)
    assert status == 200
    recorded = SAMPLES["bulk_loads_session"]
    assert {k: session[k] for k in recorded if k != "config"} == {
        k: v for k, v in recorded.items() if k != "config"
    }
    assert (session["database"], session["table"], session["config"]) == ("db1", "events", CONFIG)
    assert (await json_call(loaded, "POST", "/v3/bulk_loads", create))[0] == 409
    missing = create | {"name": "other", "table": "nope"}
    assert (await json_call(loaded, "POST", "/v3/bulk_loads", missing))[0] == 404
    bad_cron = create | {"name": "other", "cron": "61 * * * *"}
    assert (await json_call(loaded, "POST", "/v3/bulk_loads", bad_cron))[0] == 422
    status, listed = await json_call(loaded, "GET", "/v3/bulk_loads")
    assert (status, listed) == (200, [session])
    assert (await json_call(loaded, "GET", "/v3/bulk_loads/nahi_test_1"))[1] == session
    status, updated = await json_call(loaded, "PUT", "/v3/bulk_loads/nahi_test_1", {"cron": ""})
    assert (status, updated["cron"], updated["timezone"]) == (200, None, "Asia/Tokyo")
    renamed = {"name": "renamed"}
    status, updated = await json_call(loaded, "PUT", "/v3/bulk_loads/nahi_test_1", renamed)
    assert (status, updated["name"]) == (200, "renamed")
    assert (await json_call(loaded, "GET", "/v3/bulk_loads/nahi_test_1"))[0] == 404
    status, deleted = await json_call(loaded, "DELETE", "/v3/bulk_loads/renamed")
    assert (status, deleted["name"]) == (200, "renamed")
    assert (await json_call(loaded, "GET", "/v3/bulk_loads"))[1] == []


async def test_runs_load_rows_and_show_in_the_load_history(emu: Emulator, loaded: Api) -> None:
    create = {"name": "load1", "database": "db1", "table": "events", "config": CONFIG}
    await json_call(loaded, "POST", "/v3/bulk_loads", create)
    body = {"scheduled_time": 1_700_000_000, "domain_key": "run-1"}
    status, run = await json_call(loaded, "POST", "/v3/bulk_loads/load1/jobs", body)
    assert status == 200
    assert shape(run) == shape(SAMPLES["bulk_loads_run"])  # {"job_id": int}
    status, again = await json_call(loaded, "POST", "/v3/bulk_loads/load1/jobs", body)
    assert (status, again["details"]) == (409, {"conflicts_with": str(run["job_id"])})
    _, history = await json_call(loaded, "GET", "/v3/bulk_loads/load1/jobs")
    assert [j["job_id"] for j in history] == [run["job_id"]]
    assert history[0]["records"] is None
    shown = await loaded.wait(str(run["job_id"]))
    assert (shown["type"], shown["status"]) == ("bulkload", "success")
    _, history = await json_call(loaded, "GET", "/v3/bulk_loads/load1/jobs")
    (job,) = history
    recorded = SAMPLES["bulk_loads_jobs"][0]
    assert set(job) >= set(recorded)
    assert {k: shape(job[k]) for k in recorded if k != "config"} == {
        k: shape(v) for k, v in recorded.items() if k != "config"
    }
    assert job["config"] == CONFIG
    assert (job["status"], job["records"]) == ("success", 10)
    assert (job["database"]["name"], job["table"]["name"]) == ("db1", "events")
    assert job["start_at"] <= job["end_at"]
    table = await loaded.ok("GET", "/v3/table/show/db1/events")
    assert table["count"] == 20
    assert ["c1", "long"] in json.loads(table["schema"])


async def test_one_off_load_and_a_missing_table(loaded: Api) -> None:
    body = {"config": CONFIG, "database": "db1", "table": "events"}
    status, issued = await json_call(loaded, "POST", "/v3/job/issue/bulkload/db1", body)
    assert (status, set(issued)) == (200, {"job_id"})
    assert (await loaded.wait(str(issued["job_id"])))["status"] == "success"
    assert (await loaded.ok("GET", "/v3/table/show/db1/events"))["count"] == 20
    body["table"] = "nope"
    _, issued = await json_call(loaded, "POST", "/v3/job/issue/bulkload/db1", body)
    shown = await loaded.wait(str(issued["job_id"]))
    assert shown["status"] == "error"
    assert shown["debug"]["stderr"] == "Table 'nope' does not exist in database 'db1'"
    status, _ = await json_call(loaded, "POST", "/v3/job/issue/bulkload/nodb", body)
    assert status == 404
