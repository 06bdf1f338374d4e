"""The jobs, query and workflow commands against the emulator: output, JSON shapes, exit codes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aiotd
from aiotd.cli import main
from aiotd.cli._common import UsageError
from aiotd.cli._config import read_td_conf, resolve_settings
from aiotd.cli._render import Output
from aiotd.testing import Emulator

DB = "cli_db"
TABLE = "events"
ENV_VARS = ("TD_API_KEY", "TD_API_SERVER", "TD_WORKFLOW_SERVER", "TD_SITE", "TD_CONFIG_PATH")

WORKFLOW = """\
timezone: UTC

+greet:
  echo>: hello ${who}

+steps:
  +count:
    td>: queries/count.sql
    database: cli_db
  +last:
    echo>: done
"""


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


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(queued_time=0.05, running_time=0.1) as emulator:
        async with aiotd.Client(emulator.apikey, endpoint=emulator.url) as td:
            await td.databases.create(DB)
            await td.tables.create(DB, TABLE)
            records = [
                {"time": 1_700_000_000 + i, "n": i, "name": "a,b" if i == 2 else f"r{i}"}
                for i in range(5)
            ]
            await td.imports.upload(DB, TABLE, records)
        yield emulator


@pytest.fixture
def cli(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``aiotd ...`` through the entry point on a thread, against ``emu``."""

    async def run(*argv: str, key: str | None = None) -> Run:
        capsys.readouterr()
        args = [*argv, "--apikey", key or emu.apikey, "--endpoint", emu.url]
        code = await asyncio.to_thread(main, args)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


# -- query


async def test_query_streams_the_result_as_csv_tsv_and_json_lines(cli: Any) -> None:
    sql = f"select n, name from {TABLE} order by n"
    csv_run = await cli("query", "-d", DB, "--wait", sql)
    assert csv_run.code == 0, csv_run.err
    assert csv_run.out.splitlines() == ["n,name", "0,r0", "1,r1", '2,"a,b"', "3,r3", "4,r4"]

    tsv_run = await cli("query", "-d", DB, "-w", "--format", "tsv", sql)
    assert tsv_run.out.splitlines()[:3] == ["n\tname", "0\tr0", "1\tr1"]

    json_run = await cli("query", "-d", DB, "-w", "--json", sql)
    assert json_run.json_lines() == [[0, "r0"], [1, "r1"], [2, "a,b"], [3, "r3"], [4, "r4"]]
    assert "\x1b[" not in csv_run.out + tsv_run.out + json_run.out


async def test_query_without_wait_prints_the_job_id(cli: Any, emu: Emulator) -> None:
    plain = await cli("query", "-d", DB, "select 1")
    assert plain.code == 0
    assert plain.out.startswith("job ")
    assert f"issued on {DB}" in plain.out
    shaped = await cli("query", "-d", DB, "--json", "select 1")
    (record,) = shaped.json_lines()
    assert record == {"job_id": record["job_id"], "database": DB, "existing": False}
    assert emu.jobs.get(record["job_id"]).query == "select 1"


async def test_query_from_a_file_downloads_to_a_file(cli: Any, tmp_path: Path) -> None:
    sql = tmp_path / "q.sql"
    sql.write_text(f"select n from {TABLE} where n < 2 order by n")
    target = tmp_path / "out.csv"
    done = await cli("query", "-d", DB, "-f", str(sql), "-o", str(target), "--json")
    assert done.code == 0, done.err
    (summary,) = done.json_lines()
    assert summary["path"] == str(target)
    assert summary["format"] == "csv"
    assert target.read_text().splitlines() == ["n", "0", "1"]
    assert summary["bytes"] == target.stat().st_size

    as_json = tmp_path / "out.json"
    saved = await cli("query", "-d", DB, "-f", str(sql), "-o", str(as_json))
    assert saved.code == 0
    assert "saved to" in saved.out
    assert as_json.read_text().splitlines() == ["[0]", "[1]"]


async def test_query_failures_timeouts_and_usage(cli: Any) -> None:
    failed = await cli("query", "-d", DB, "-w", "select * from no_such_table")
    assert failed.code == 1
    assert failed.err.startswith("aiotd: JobFailed: job ")
    assert "Table 'cli_db.no_such_table' does not exist" in failed.err
    assert len(failed.err.splitlines()) == 1

    slow = "-- emulator: running=30\nselect 1"
    timed_out = await cli("query", "-d", DB, "-w", "--timeout", "0.3", slow)
    assert timed_out.code == 3
    assert timed_out.err.startswith("aiotd: WaitTimeout: ")

    both = await cli("query", "-d", DB, "-f", "x.sql", "select 1")
    assert both.code == 2
    assert "aiotd: UsageError:" in both.err
    assert (await cli("query", "-d", DB, "-e", "pig", "select 1")).code == 2
    missing_db = await cli("query", "-d", "no_such_db", "select 1")
    assert missing_db.code == 1
    assert missing_db.err.startswith("aiotd: NotFound: 404")


# -- jobs


def _issue(
    emu: Emulator, *, running: float = 0.1, status: str | None = None, booting: float = 0
) -> str:
    job = emu.jobs.issue(
        job_type="presto",
        database=DB,
        query="select 1",
        queued=0,
        booting=booting,
        running=running,
        status=status,
    )
    return str(job.id)


async def test_jobs_list_and_show(cli: Any, emu: Emulator) -> None:
    ok = _issue(emu, running=0)
    bad = _issue(emu, running=0, status="error")
    table = await cli("jobs", "list", "--limit", "5")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == ["job", "status", "type", "database", "created", "duration"]
    assert lines[1].split()[:2] == [bad, "error"]
    assert lines[2].split()[:2] == [ok, "success"]

    listed = await cli("jobs", "list", "--status", "error", "--json")
    assert [job["job_id"] for job in listed.json_lines()] == [bad]
    assert {"job_id", "status", "database", "query", "created_at"} <= set(listed.json_lines()[0])

    shown = await cli("jobs", "show", ok)
    assert shown.code == 0
    fields = dict(line.split(None, 1) for line in shown.out.splitlines() if line.strip())
    assert (fields["job"], fields["status"], fields["database"]) == (ok, "success", DB)
    as_json = await cli("--json", "jobs", "show", bad)
    (record,) = as_json.json_lines()
    assert record["status"] == "error"
    assert record["debug"]["stderr"]

    missing = await cli("jobs", "show", "999999")
    assert missing.code == 1
    assert missing.err.startswith("aiotd: NotFound: 404")
    assert (await cli("jobs", "list", "--status", "nope")).code == 2


async def test_jobs_kill_and_wait_exit_codes(cli: Any, emu: Emulator) -> None:
    quick = [_issue(emu), _issue(emu)]
    waited = await cli("jobs", "wait", *quick)
    assert waited.code == 0, waited.err
    assert sorted(line.split()[1] for line in waited.out.splitlines()) == sorted(quick)
    assert all(" success after " in line for line in waited.out.splitlines())

    slow = _issue(emu, running=30)
    killed = await cli("jobs", "kill", slow, "--json")
    assert killed.code == 0
    assert killed.json_lines()[0]["job_id"] == slow
    after = await cli("jobs", "wait", slow, quick[0], "--json")
    assert after.code == 1  # a killed job counts as failed
    assert {job["job_id"]: job["status"] for job in after.json_lines()} == {
        slow: "killed",
        quick[0]: "success",
    }

    stuck = _issue(emu, running=30)
    timed_out = await cli("jobs", "wait", stuck, "--timeout", "0.3")
    assert timed_out.code == 3
    assert timed_out.err.startswith("aiotd: WaitTimeout:")


async def test_jobs_watch_reports_every_change_as_json_lines(cli: Any, emu: Emulator) -> None:
    ids = [_issue(emu, running=0.2), _issue(emu, running=0.4, status="error")]
    watched = await cli("jobs", "watch", *ids, "--json")
    assert watched.code == 1  # one job failed
    events = watched.json_lines()
    assert all(set(e) == {"job_id", "old_status", "new_status", "time"} for e in events)
    final = {e["job_id"]: e["new_status"] for e in events}
    assert final == {ids[0]: "success", ids[1]: "error"}
    assert all(e["old_status"] is None for e in events[: len(ids)])

    plain = await cli("jobs", "watch", ids[0])
    assert plain.code == 0
    assert plain.out.splitlines()[-1] == "1 jobs: 1 success"
    assert "\x1b[" not in plain.out


async def test_jobs_watch_running_and_usage(cli: Any, emu: Emulator) -> None:
    assert (await cli("jobs", "watch")).code == 2
    both = await cli("jobs", "watch", "1", "--running")
    assert both.code == 2
    assert both.err.startswith("aiotd: UsageError:")

    nothing = await cli("jobs", "watch", "--running")
    assert nothing.code == 0
    assert "no queued or running jobs" in nothing.out

    running = [_issue(emu, running=1.0), _issue(emu, running=1.0), _issue(emu, booting=0.5)]
    watched = await cli("jobs", "watch", "--running", "--json")
    assert watched.code == 0
    # the booting one is in neither the queued nor the running listing, and still watched
    assert {e["job_id"] for e in watched.json_lines()} == set(running)

    stuck = _issue(emu, running=30)
    timed_out = await cli("jobs", "watch", stuck, "--timeout", "0.5")
    assert timed_out.code == 3
    assert "1 of 1 jobs still unfinished" in timed_out.err


# -- workflow


async def test_workflow_push_start_watch_attempts_and_logs(cli: Any, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "queries").mkdir(parents=True)
    (project / "daily.dig").write_text(WORKFLOW)
    (project / "queries" / "count.sql").write_text(f"select count(*) from {TABLE}")

    pushed = await cli("workflow", "push", "proj", str(project), "--json")
    assert pushed.code == 0, pushed.err
    assert pushed.json_lines()[0]["name"] == "proj"

    started = await cli("workflow", "start", "proj", "daily", "-p", "who=cli", "--wait", "--json")
    assert started.code == 0, started.err
    first, last = started.json_lines()
    assert first["id"] == last["id"]
    assert last["status"] == "success"
    assert last["params"] == {"who": "cli"}
    attempt_id = first["id"]

    listed = await cli("workflow", "attempts", "--project", "proj")
    assert listed.code == 0
    assert listed.out.splitlines()[1].split()[:3] == [attempt_id, "proj", "daily"]

    watched = await cli("workflow", "watch", attempt_id, "--json")
    assert watched.code == 0
    names = {e["full_name"] for e in watched.json_lines()}
    assert {"+daily", "+daily+greet", "+daily+steps+count"} <= names
    text = await cli("workflow", "watch", attempt_id)
    assert "+daily+steps+last  - -> success" in text.out
    assert text.out.splitlines()[-1].endswith(": success")

    logs = await cli("workflow", "logs", attempt_id, "--task", "+daily+greet")
    assert logs.code == 0
    assert logs.out.startswith("== +daily+greet")
    assert "hello cli" in logs.out
    log_lines = (await cli("workflow", "logs", attempt_id, "--json")).json_lines()
    assert {"task", "file", "line"} == set(log_lines[0])
    assert any("hello cli" in entry["line"] for entry in log_lines)


async def test_workflow_failures_and_usage(cli: Any, tmp_path: Path) -> None:
    project = tmp_path / "bad"
    project.mkdir()
    (project / "broken.dig").write_text("+go:\n  fail>: it broke\n")
    assert (await cli("workflow", "push", "bad", str(project))).code == 0
    failed = await cli("workflow", "start", "bad", "broken", "--wait")
    assert failed.code == 1
    assert "+broken+go: it broke" in failed.out
    assert (await cli("workflow", "start", "bad", "broken", "-p", "novalue")).code == 2
    assert (await cli("workflow", "push", "x", str(tmp_path / "none"))).code == 2
    unknown = await cli("workflow", "start", "no_such_project", "wf")
    assert unknown.code == 1
    assert unknown.err.startswith("aiotd: NotFound:")


# -- configuration and errors


async def test_a_wrong_key_is_one_line_and_exit_1(cli: Any) -> None:
    wrong = "1/" + "f" * 40
    done = await cli("jobs", "list", key=wrong)
    assert done.code == 1
    assert done.err.startswith("aiotd: AuthError: 401")
    assert len(done.err.splitlines()) == 1
    assert wrong not in done.err
    assert "Traceback" not in done.err


def _write_conf(home: Path, body: str) -> None:
    (home / ".td").mkdir(parents=True, exist_ok=True)
    (home / ".td" / "td.conf").write_text(body)


async def test_the_key_and_endpoint_come_from_td_conf(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the td command writes its keys indented under [account]
    _write_conf(
        tmp_path / "home",
        f"[account]\n  user = me@example.com\n  apikey = {emu.apikey}\n  endpoint = {emu.url}\n",
    )
    _issue(emu, running=0)
    assert await asyncio.to_thread(main, ["jobs", "list", "--json"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    assert emu.apikey not in captured.out + captured.err


def test_settings_precedence(tmp_path: Path) -> None:
    _write_conf(tmp_path, "[account]\napikey = conf-key\nendpoint = api.treasuredata.co.jp\n")
    env = {"HOME": str(tmp_path)}
    blank = _args()
    from_conf = resolve_settings(blank, env)
    assert from_conf.apikey == "conf-key"
    assert from_conf.endpoint == "api.treasuredata.co.jp"
    assert from_conf.workflow_endpoint == "api-workflow.treasuredata.co.jp"
    assert "conf-key" not in repr(from_conf)

    env_first = resolve_settings(blank, {**env, "TD_API_KEY": "env-key", "TD_API_SERVER": "x.io"})
    assert (env_first.apikey, env_first.endpoint) == ("env-key", "x.io")
    flags = resolve_settings(_args(apikey="flag-key", endpoint="http://127.0.0.1:9"), env)
    assert flags.apikey == "flag-key"
    assert flags.workflow_endpoint == "http://127.0.0.1:9"  # a local emulator serves both

    with pytest.raises(UsageError, match="no API key"):
        resolve_settings(blank, {"HOME": str(tmp_path / "nowhere")})
    assert read_td_conf(tmp_path / "missing.conf") == {}
    (tmp_path / "broken.conf").write_text("apikey = x\n")
    with pytest.raises(UsageError, match="not a valid td config file"):
        read_td_conf(tmp_path / "broken.conf")


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("http://127.0.0.1:9", True),
        ("127.0.0.2:9", True),  # the whole loopback range, as the client's plain-http check
        ("http://[::1]:9", True),
        ("localhost:9", True),
        ("http://10.0.0.1:9", False),
    ],
)
def test_a_loopback_endpoint_serves_both_apis(endpoint: str, local: bool) -> None:
    settings = resolve_settings(_args(apikey="k", endpoint=endpoint), {"HOME": "/nonexistent"})
    assert settings.workflow_endpoint == (endpoint if local else None)


def _args(**given: Any) -> Any:
    import argparse

    values = {"apikey": None, "endpoint": None, "workflow_endpoint": None, "site": None}
    return argparse.Namespace(**{**values, **given})


def test_no_key_anywhere_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "list"]) == 2
    assert capsys.readouterr().err.startswith("aiotd: UsageError: no API key")


# -- as subprocesses, against `aiotd emulator`


@pytest.fixture
def served() -> Iterator[tuple[str, str]]:
    key = "1/" + "c" * 40
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiotd", "emulator", "--port", "0", "--apikey", key],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip(), key
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def _aiotd(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiotd", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_commands_as_subprocesses(served: tuple[str, str], tmp_path: Path) -> None:
    url, key = served
    env = {**os.environ, "TD_API_KEY": key, "TD_API_SERVER": url, "HOME": str(tmp_path)}
    env.pop("TD_WORKFLOW_SERVER", None)

    async def setup() -> None:
        async with aiotd.Client(key, endpoint=url) as td:
            await td.databases.create(DB)

    asyncio.run(setup())
    issued = [
        _aiotd("query", "-d", DB, "--json", f"-- emulator: running={t}\nselect {t}", env=env)
        for t in ("0.2", "0.5")
    ]
    ids = [json.loads(done.stdout)["job_id"] for done in issued]
    watched = _aiotd("jobs", "watch", *ids, env=env)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.splitlines()[-1] == "2 jobs: 2 success"
    assert "\x1b[" not in watched.stdout

    result = _aiotd("query", "-d", DB, "-w", "select 41 + 1 as answer", env=env)
    assert (result.returncode, result.stdout) == (0, "answer\n42\n")

    wrong = _aiotd("jobs", "list", env={**env, "TD_API_KEY": "1/" + "0" * 40})
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("aiotd: AuthError: 401")
    assert "Traceback" not in wrong.stderr
    assert _aiotd("jobs", "frobnicate", env=env).returncode == 2


# -- on a terminal


class _Terminal(io.StringIO):
    """A stdout that says it is a terminal, so the live displays run."""

    def isatty(self) -> bool:
        return True


async def test_live_displays_on_a_terminal(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    connect = ["--apikey", emu.apikey, "--endpoint", emu.url]
    ids = [_issue(emu, running=0.3), _issue(emu, running=0.3, status="error")]
    assert await asyncio.to_thread(main, ["jobs", "watch", *ids, *connect]) == 1
    watched = terminal.getvalue()
    assert "\x1b[" in watched
    assert "2/2 finished" in watched
    assert watched.rstrip().endswith("2 jobs: 1 success, 1 error")

    target = tmp_path / "r.tsv"
    query = ["query", "-d", DB, "-o", str(target), f"select n from {TABLE}", *connect]
    assert await asyncio.to_thread(main, query) == 0
    assert target.read_text().splitlines()[0] == "n"
    assert "saved to" in terminal.getvalue()
    assert await asyncio.to_thread(main, ["jobs", "list", *connect]) == 0


def test_without_rich_the_output_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Output(as_json=False, stream=_Terminal()).live
    assert not Output(as_json=True, stream=_Terminal()).live
    monkeypatch.setitem(sys.modules, "rich", None)
    assert not Output(as_json=False, stream=_Terminal()).live


async def test_jobs_wait_on_a_failed_job_whose_stderr_is_blank(cli: Any, emu: Emulator) -> None:
    async with aiotd.Client(emu.apikey, endpoint=emu.url) as td:
        issued = await td.jobs.issue(
            "-- emulator: queued=0 running=0.1 status=error message='  '\nselect 1", database=DB
        )
        assert (await td.jobs.wait(issued.job_id)).debug.stderr.strip() == ""  # type: ignore[union-attr]
    waited = await cli("jobs", "wait", issued.job_id)
    assert waited.code == 1, waited.err
    # the job's line, with no note: a blank stderr has no last line to show
    assert re.fullmatch(rf"job {issued.job_id} error after [^:]+", waited.out.strip())
    assert "Traceback" not in waited.err
