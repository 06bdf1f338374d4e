"""tdworkflow, unchanged, against the Emulator's Workflow API (DESIGN.md, the emulator)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiotd.testing import Emulator

tdworkflow_client = pytest.importorskip("tdworkflow.client")

MAIN_DIG = """
timezone: Asia/Tokyo
_export:
  td:
    database: acceptance
+hello:
  echo>: hello ${session_date}
+steps:
  _parallel: true
  +count:
    td>: queries/count.sql
  +shell:
    sh>: echo done
+bye:
  echo>: bye
"""


def _run_tdworkflow(url: str, apikey: str, project_dir: Path, archive_path: Path) -> dict[str, Any]:
    client = tdworkflow_client.Client(
        site="us", endpoint=url.removeprefix("http://"), apikey=apikey, scheme="http"
    )
    project = client.create_project("acceptance", str(project_dir))
    workflows = client.project_workflows(project)
    main = next(w for w in workflows if w.name == "main")
    attempt = client.start_attempt(main)
    finished = client.wait_attempt(attempt, wait_interval=0.05)  # type: ignore[arg-type]
    tasks = client.attempt_tasks(finished)
    logs = client.logs(finished)
    client.set_secrets(project, {"td.apikey": "secret"})
    secrets = client.secrets(project)
    client.download_project_archive(project, str(archive_path))
    sessions = client.sessions()
    killed_attempt = client.start_attempt(main, retry_attempt_name="second")
    killed = client.kill_attempt(killed_attempt)
    client.http.close()
    return {
        "finished": finished,
        "tasks": tasks,
        "logs": logs,
        "secrets": secrets,
        "sessions": sessions,
        "killed": killed,
    }


async def test_tdworkflow_pushes_runs_and_waits(tmp_path: Path) -> None:
    project_dir = tmp_path / "project"
    (project_dir / "queries").mkdir(parents=True)
    (project_dir / "main.dig").write_text(MAIN_DIG)
    (project_dir / "queries" / "count.sql").write_text("SELECT 1 AS one")
    options = {"task_duration": 0.05, "tick_interval": 0.02}
    async with Emulator(running_time=0.1, queued_time=0.05, workflow_options=options) as emu:
        emu.core.store.create_database("acceptance")
        result = await asyncio.to_thread(
            _run_tdworkflow, emu.url, emu.apikey, project_dir, tmp_path / "back.tar.gz"
        )
        finished = result["finished"]
        assert finished.done
        assert finished.success
        assert finished.status == "success"
        names = [task.full_name for task in result["tasks"]]
        assert names == [
            "+main",
            "+main+hello",
            "+main+steps",
            "+main+steps+count",
            "+main+steps+shell",
            "+main+bye",
        ]
        assert {task.state for task in result["tasks"]} == {"success"}
        count = result["tasks"][3]
        job_id = count.store_params["td"]["last_job_id"]
        assert emu.jobs.job_status(job_id) == "success"
        assert any("hello " in log for log in result["logs"])
        assert result["secrets"] == ["td.apikey"]
        assert (tmp_path / "back.tar.gz").read_bytes()[:2] == b"\x1f\x8b"
        assert len(result["sessions"]) == 1
        assert result["killed"].cancel_requested

        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(f"{emu.url}/api/projects") as resp:
                assert resp.status == 401
            async with anonymous.get(f"{emu.url}/api/version") as resp:
                assert resp.status == 200
            headers = {"Authorization": f"TD1 {emu.apikey}"}
            async with anonymous.get(
                f"{emu.url}/api/projects/1/archive", headers=headers, allow_redirects=False
            ) as resp:
                assert resp.status == 303
                location = resp.headers["Location"]
            async with anonymous.get(location) as resp:
                assert resp.status == 200
                assert resp.content_type == "application/gzip"
