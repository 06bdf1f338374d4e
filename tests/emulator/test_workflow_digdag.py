"""The pure digdag pieces of the Workflow emulator and its engine on a hand-moved clock."""

from __future__ import annotations

from datetime import timezone

import pytest

from aiotd.testing._digdag import (
    ArchiveError,
    DigError,
    ScheduleSpec,
    compile_workflow,
    format_instant,
    format_offset,
    load_dig,
    parse_instant,
    read_archive,
    render,
    validate_project_name,
    validate_secret,
    zone,
)
from tests.emulator._workflow_support import (
    FakeClock,
    archive,
    by_name,
    get,
    push,
    serve,
    start,
    workflow_id,
)


def _at(text: str) -> float:
    return parse_instant(text)


def test_dig_yaml_keeps_clock_times_as_text() -> None:
    body = load_dig("schedule:\n  daily>: 07:00:00\n+a:\n  n: 3\n  f: 1.5\n  b: true\n")
    assert body == {"schedule": {"daily>": "07:00:00"}, "+a": {"n": 3, "f": 1.5, "b": True}}
    assert load_dig("") == {}
    with pytest.raises(DigError):
        load_dig("- a list")


def test_compile_workflow() -> None:
    body = load_dig(
        "timezone: UTC\nschedule:\n  daily>: 01:00:00\n_export:\n  x: 1\n"
        "+g:\n  _parallel: true\n  _retry: 2\n  +a:\n    sh>: a\n  +b:\n    echo>: b\n"
        "_error:\n  echo>: oops\n"
    )
    root = compile_workflow("wf", body)
    assert root.full_name == "+wf"
    assert root.config == {"_export": {"x": 1}}
    assert root.export == {"x": 1}
    assert root.error is not None
    assert root.error.full_name == "+wf^error"
    assert root.error.operator == "echo"
    group = root.children[0]
    assert group.parallel
    assert group.retry == 2
    assert group.is_group
    assert [c.full_name for c in group.children] == ["+wf+g+a", "+wf+g+b"]
    assert [t.full_name for t in root.walk()] == ["+wf", "+wf+g", "+wf+g+a", "+wf+g+b"]
    with pytest.raises(DigError):
        compile_workflow("wf", {"+a": "not a mapping"})


def test_time_formats() -> None:
    assert format_instant(0) == "1970-01-01T00:00:00Z"
    assert format_instant(None) is None
    assert format_offset(0, zone("Asia/Tokyo")) == "1970-01-01T09:00:00+09:00"
    assert format_offset(0, zone("UTC")) == "1970-01-01T00:00:00+00:00"
    assert _at("2019-05-01T13:38:52+09:00") == _at("2019-05-01T04:38:52Z")
    assert _at("2019-05-01T04:38:52.5Z") == _at("2019-05-01T04:38:52Z") + 0.5
    with pytest.raises(ValueError, match="offset"):
        parse_instant("2019-05-01T04:38:52")
    local = parse_instant("2019-05-01T09:00:00", local_tz=zone("Asia/Tokyo"))
    assert local == _at("2019-05-01T00:00:00Z")
    with pytest.raises(DigError):
        zone("Mars/Olympus")


def test_schedules() -> None:
    tokyo = zone("Asia/Tokyo")
    daily = ScheduleSpec.parse({"daily>": "07:00:00"}, tokyo)
    first = daily.first_run_from(_at("2024-01-01T00:00:00Z"))  # 09:00 in Tokyo: 07:00 passed
    assert format_offset(first, tokyo) == "2024-01-02T00:00:00+09:00"
    assert format_instant(daily.run_time(first)) == "2024-01-01T22:00:00Z"
    assert format_offset(daily.next_after(first), tokyo) == "2024-01-03T00:00:00+09:00"

    hourly = ScheduleSpec.parse({"hourly>": "15:00"}, timezone.utc)
    first = hourly.first_run_from(_at("2024-01-01T10:20:00Z"))
    assert format_instant(first) == "2024-01-01T11:00:00Z"
    assert format_instant(hourly.run_time(first)) == "2024-01-01T11:15:00Z"
    assert format_instant(hourly.floor(_at("2024-01-01T10:20:00Z"))) == "2024-01-01T10:00:00Z"

    cron = ScheduleSpec.parse({"cron>": "*/20 9-17 * * mon-fri"}, timezone.utc)
    saturday = _at("2024-01-06T12:00:00Z")
    assert format_instant(cron.next_after(saturday)) == "2024-01-08T09:00:00Z"
    assert format_instant(cron.floor(saturday)) == "2024-01-05T17:40:00Z"

    weekly = ScheduleSpec.parse({"weekly>": "Sun,09:00:00"}, timezone.utc)
    assert format_instant(weekly.next_after(saturday)) == "2024-01-07T00:00:00Z"
    monthly = ScheduleSpec.parse({"monthly>": "31,00:00:00"}, timezone.utc)
    assert format_instant(monthly.next_after(_at("2024-02-01T00:00:00Z"))) == (
        "2024-02-29T00:00:00Z"
    )
    interval = ScheduleSpec.parse({"minutes_interval>": 30}, timezone.utc)
    assert format_instant(interval.next_after(_at("2024-01-01T10:20:00Z"))) == (
        "2024-01-01T10:30:00Z"
    )
    for broken in ({"yearly>": "x"}, {"cron>": "* * *"}, {"daily>": "7"}, {}):
        with pytest.raises(DigError):
            ScheduleSpec.parse(broken, timezone.utc)


def test_names_secrets_archives_and_variables() -> None:
    assert validate_project_name("good_name") is None
    for bad in ("", "1x", "+x", "x.dig", "x" * 256):
        assert validate_project_name(bad) is not None
    assert validate_secret("td.apikey", "v")
    assert validate_secret("a.b-c.d_1", "v")
    assert not validate_secret("a..b", "v")
    assert not validate_secret("a-", "v")
    assert not validate_secret("a", 1)
    assert read_archive(archive({"./a.dig": "x", "d/b.sql": "y"}), 100) == {
        "a.dig": b"x",
        "d/b.sql": b"y",
    }
    with pytest.raises(ArchiveError, match="exceeds limit"):
        read_archive(archive({"a": "x" * 60, "b": "y" * 60}), 100)
    with pytest.raises(ArchiveError):
        read_archive(b"plain", 100)
    assert render("${a} ${td.database} ${x.y} ${secret:k}", {"a": 1, "td": {"database": "d"}}) == (
        "1 d ${x.y} ${secret:k}"
    )


async def test_operator_and_group_retries() -> None:
    clock = FakeClock()
    flow = "+g:\n  _retry: 1\n  +x:\n    _retry: 1\n    fail>: always\n"
    async with serve(clock=clock, tick_interval=None, dispatch_delay=0.0, retry_interval=5.0) as s:
        pid = (await push(s.http, "retries", {"r.dig": flow}))["id"]
        attempt = await start(s.http, await workflow_id(s.http, pid, "r"))
        aid = attempt["id"]
        clock.advance(1)
        tasks = by_name((await get(s.http, f"/api/attempts/{aid}/tasks"))["tasks"])
        assert tasks["+r+g+x"]["state"] == "retry_waiting"
        assert tasks["+r+g+x"]["retryAt"] is not None
        clock.advance(6)
        tasks = by_name((await get(s.http, f"/api/attempts/{aid}/tasks"))["tasks"])
        assert tasks["+r+g+x"]["state"] == "error"
        assert tasks["+r+g"]["state"] == "group_retry_waiting"
        clock.advance(60)
        done = await get(s.http, f"/api/attempts/{aid}")
        assert done["status"] == "error"
        tasks = by_name((await get(s.http, f"/api/attempts/{aid}/tasks"))["tasks"])
        assert tasks["+r+g"]["state"] == "group_error"
        logs = (await get(s.http, f"/api/logs/{aid}/files", task="+r+g+x"))["files"]
        assert len(logs) == 4  # two runs of the group, each with one retry


async def test_schedules_fire_when_due() -> None:
    clock = FakeClock()
    flow = "schedule:\n  minutes_interval>: 10\n+t:\n  echo>: ${last_session_time}\n"
    async with serve(clock=clock, tick_interval=None, dispatch_delay=0.0) as s:
        await push(s.http, "cron", {"c.dig": flow})
        schedule = (await get(s.http, "/api/schedules"))["schedules"][0]
        s.service.tick()
        assert (await get(s.http, "/api/sessions")) == {"sessions": []}
        clock.advance(600)
        s.service.tick()
        sessions = (await get(s.http, "/api/sessions"))["sessions"]
        assert [x["sessionTime"] for x in sessions] == [schedule["nextScheduleTime"]]
        params = sessions[0]["lastAttempt"]["params"]
        assert set(params) == {"last_session_time", "next_session_time"}
        moved = await get(s.http, f"/api/schedules/{schedule['id']}")
        assert moved["nextScheduleTime"] > schedule["nextScheduleTime"]
