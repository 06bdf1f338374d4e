"""Auth, counters, databases, tables and the import API of the emulator, over real HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import aiohttp
import msgpack

from aiotd.testing import Emulator
from tests.emulator._core_support import Api, api, emu, loaded, msgpack_gz, sample_records

__all__ = ["api", "emu", "loaded"]

ERROR_SAMPLES = {
    path.name: json.loads(path.read_text())
    for path in (Path(__file__).resolve().parents[1] / "samples" / "v3").glob("error_*.json")
}


async def test_url_and_default_apikey(emu: Emulator) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.url)
    assert re.fullmatch(r"1/[0-9a-f]{40}", emu.apikey)


async def test_auth_missing_and_wrong_key_are_401(api: Api) -> None:
    status, body = await api.get("/v3/database/list", auth=False)
    assert status == 401
    # v3 error bodies are {"message": ...} (samples/v3/error_*.json).
    assert body == {"message": "Authentication failed. Set a valid API key (TD1 <key>)."}
    status, _ = await api.get("/v3/database/list", auth=False, headers={"Authorization": "TD1 x"})
    assert status == 401
    status, body = await api.get("/v3/system/server_status", auth=False)
    assert (status, body) == (200, {"status": "ok"})


async def test_double_slash_paths_route_like_single(api: Api) -> None:
    status, body = await api.get("//v3/database/list")
    assert status == 200
    assert [d["name"] for d in body["databases"]] == ["sample_datasets"]


async def test_counters_by_route_and_total(api: Api, emu: Emulator) -> None:
    for _ in range(3):
        await api.get("/v3/job/status/1")
    await api.get("/v3/database/list")
    assert emu.counters["GET /v3/job/status/{job_id}"] == 3
    assert emu.counters.total == 4
    status, snap = await api.get("/_emulator/counters", auth=False)
    assert status == 200
    assert snap["routes"]["GET /v3/database/list"] == 1
    await api.call("DELETE", "/_emulator/counters")
    assert emu.counters.total == 0


async def test_databases(api: Api) -> None:
    assert await api.ok("POST", "/v3/database/create/db_a", data={}) == {"database": "db_a"}
    status, body = await api.post("/v3/database/create/db_a")
    assert status == 409
    assert body["message"] == "Database db_a already exists"
    assert (await api.post("/v3/database/create/Bad-Name"))[0] == 400
    listed = await api.ok("GET", "/v3/database/list")
    sample, db = listed["databases"]
    assert (sample["name"], db["name"]) == ("sample_datasets", "db_a")
    assert (sample["permission"], db["permission"]) == ("query_only", "administrator")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", db["created_at"])
    assert set(db) >= {"count", "updated_at", "organization", "permission", "delete_protected"}
    assert (await api.ok("GET", "/v3/database/show/db_a"))["name"] == "db_a"
    assert await api.ok("POST", "/v3/database/delete/db_a", data={}) == {"database": "db_a"}
    assert (await api.get("/v3/database/show/db_a"))[0] == 404
    assert (await api.post("/v3/database/delete/db_a"))[0] == 404


async def test_tables(api: Api) -> None:
    assert (await api.post("/v3/table/create/nodb/tb1/log"))[0] == 404
    await api.ok("POST", "/v3/database/create/db1", data={})
    created = await api.ok("POST", "/v3/table/create/db1/tb1/log", data={})
    assert created == {"table": "tb1", "type": "log", "database": "db1"}
    assert (await api.post("/v3/table/create/db1/tb1/log"))[0] == 409
    assert (await api.post("/v3/table/create/db1/X!/log"))[0] == 400
    await api.ok("POST", "/v3/table/create/db1/tb2/log", data={})
    shown = await api.ok("GET", "/v3/table/show/db1/tb1")
    assert shown["type"] == "log"
    assert json.loads(shown["schema"]) == []
    assert shown["counter_updated_at"] is None
    await api.ok("PUT", "/v3/table/import/db1/tb1/msgpack.gz", data=msgpack_gz(sample_records()))
    shown = await api.ok("GET", "/v3/table/show/db1/tb1")
    assert shown["count"] == 10
    assert json.loads(shown["schema"]) == [["n", "long"], ["s", "string"], ["x", "double"]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["last_log_timestamp"])

    swapped = await api.ok("POST", "/v3/table/swap/db1/tb1/tb2", data={})
    assert swapped == {"database": "db1", "table1": "tb1", "table2": "tb2"}
    assert (await api.ok("GET", "/v3/table/show/db1/tb2"))["count"] == 10
    assert (await api.ok("GET", "/v3/table/show/db1/tb1"))["count"] == 0

    await api.ok(
        "POST", "/v3/table/update/db1/tb2", data={"expire_days": "7", "include_v": "false"}
    )
    shown = await api.ok("GET", "/v3/table/show/db1/tb2")
    assert (shown["expire_days"], shown["include_v"]) == (7, False)

    schema = json.dumps([["n", "long"], ["extra", "string", "alias"]])
    await api.ok("POST", "/v3/table/update-schema/db1/tb2", data={"schema": schema})
    shown = await api.ok("GET", "/v3/table/show/db1/tb2")
    assert json.loads(shown["schema"])[1] == ["extra", "string", "alias"]

    tail = await api.ok("GET", "/v3/table/tail/db1/tb2", params={"count": "3", "format": "msgpack"})
    rows = list(msgpack.Unpacker(io.BytesIO(tail), raw=False))
    assert len(rows) == 3
    assert all(isinstance(r, dict) and "time" in r for r in rows)

    listed = await api.ok("GET", "/v3/table/list/db1")
    assert listed["database"] == "db1"
    assert sorted(t["name"] for t in listed["tables"]) == ["tb1", "tb2"]

    status, _ = await api.post("/v3/table/change_database/db1/tb2", {"dest_database_name": "none"})
    assert status == 404
    await api.ok("POST", "/v3/database/create/db2", data={})
    moved = await api.ok(
        "POST", "/v3/table/change_database/db1/tb2", data={"dest_database_name": "db2"}
    )
    assert moved == {"database": "db2", "table": "tb2", "type": "log"}
    assert (await api.ok("GET", "/v3/table/show/db2/tb2"))["count"] == 10
    deleted = await api.ok("POST", "/v3/table/delete/db2/tb2", data={})
    assert deleted == {"table": "tb2", "type": "log", "database": "db2"}
    assert (await api.get("/v3/table/show/db2/tb2"))[0] == 404


async def test_import_response_and_unique_id_dedup(api: Api) -> None:
    await api.ok("POST", "/v3/database/create/db1", data={})
    await api.ok("POST", "/v3/table/create/db1/tb1/log", data={})
    body = msgpack_gz(sample_records(5))
    path = "/v3/table/import_with_id/db1/tb1/uid-1/msgpack.gz"
    first = await api.ok("PUT", path, data=body)
    assert first["md5_hex"] == hashlib.md5(body).hexdigest()
    assert first["unique_id"] == "uid-1"
    assert (first["database"], first["table"]) == ("db1", "tb1")
    assert isinstance(first["elapsed_time"], float)
    again = await api.ok("PUT", path, data=body)
    assert again == first
    assert (await api.ok("GET", "/v3/table/show/db1/tb1"))["count"] == 5
    plain = b"".join(msgpack.packb(r) for r in sample_records(2))
    await api.ok("PUT", "/v3/table/import/db1/tb1/msgpack", data=plain)
    assert (await api.ok("GET", "/v3/table/show/db1/tb1"))["count"] == 7
    status, err = await api.call("PUT", "/v3/table/import/db1/tb1/msgpack.gz", data=b"\x1f\x8bxx")
    assert status == 400
    assert set(err) == {"message"}
    assert err["message"].startswith("Invalid import data: ")


async def test_form_bodies_multipart_and_urlencoded(api: Api) -> None:
    form = aiohttp.FormData({"x": "1"}, default_to_multipart=True)
    assert (await api.call("POST", "/v3/database/create/db_m", data=form))[0] == 200
    assert (await api.post("/v3/database/create/db_u", {"x": "1"}))[0] == 200
    await api.ok("POST", "/v3/table/create/db_m/tb1/log", data={})
    form = aiohttp.FormData({"expire_days": "3"}, default_to_multipart=True)
    await api.ok("POST", "/v3/table/update/db_m/tb1", data=form)
    assert (await api.ok("GET", "/v3/table/show/db_m/tb1"))["expire_days"] == 3


async def test_account_show(api: Api) -> None:
    account = (await api.ok("GET", "/v3/account/show"))["account"]
    assert set(account) >= {"id", "plan", "storage_size", "created_at", "presto_plan"}


async def test_unknown_route_is_a_td_error_body(api: Api) -> None:
    status, body = await api.get("/v3/no/such/thing")
    assert (status, body) == (404, {"message": "404 Not Found: GET /v3/no/such/thing"})
    status, body = await api.call("DELETE", "/v3/database/list")
    assert status == 405
    assert set(body) == {"message"}


async def test_error_bodies_are_the_recorded_ones(api: Api) -> None:
    """The same requests as the recorded errors get the same bodies (samples/v3/error_*.json)."""
    await api.ok("POST", "/v3/database/create/db_test", data={})
    await api.ok("POST", "/v3/table/create/db_test/table_test/log", data={})
    move = {"dest_database_name": "sample_datasets"}
    calls = [
        ("error_404_job_show.json", "GET", "/v3/job/show/10000000000", None),
        ("error_409_database_exists.json", "POST", "/v3/database/create/db_test", {}),
        ("error_409_table_exists.json", "POST", "/v3/table/create/db_test/table_test/log", {}),
        ("error_422_validation.json", "POST", "/v3/schedule/create/x", {"query": "SELECT 1"}),
        (
            "error_403_change_database.json",
            "POST",
            "/v3/table/change_database/db_test/table_test",
            move,
        ),
    ]
    for name, method, path, form in calls:
        status = int(name.split("_")[1])
        got = await api.call(method, path, data=form)
        assert got == (status, ERROR_SAMPLES[name]), name
