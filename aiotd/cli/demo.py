"""``aiotd demo``: the main job, end to end, against an emulator started in-process.

It creates a database and a table, imports rows, issues a few hundred queries of mixed
length and outcome, watches them all through the shared poll engine, pushes a workflow
project and follows an attempt's tasks, downloads one result, and reports what it cost.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiotd
from aiotd._polling import PollSettings
from aiotd.cli._render import rich_available
from aiotd.models.core import JobState
from aiotd.models.workflow import Attempt
from aiotd.testing import Emulator

__all__ = ["run_demo"]

DATABASE = "demo_db"
TABLE = "events"
CATEGORIES = ("search", "cart", "checkout", "view", "login")

WORKFLOW = """\
timezone: UTC

+prepare:
  echo>: preparing the daily report

+count:
  td>: queries/count.sql
  database: demo_db

+report:
  echo>: report ready
"""


def _query(i: int, rng: random.Random) -> str:
    """A mix: most queries run real SQL for 0.5-8 s; some fail on purpose."""
    queued = round(rng.uniform(0.1, 1.5), 2)
    running = round(rng.uniform(0.5, 8.0), 2)
    timing = f"-- emulator: queued={queued} running={running}"
    if i % 10 == 3:
        return f'{timing} status=error message="demo: simulated failure"\nselect 1'
    if i % 37 == 5:
        return f"{timing}\nselect * from no_such_table"
    category = CATEGORIES[i % len(CATEGORIES)]
    return (
        f"{timing}\nselect category, count(*) as n, sum(amount) as total "
        f"from {TABLE} where category = '{category}' group by category"
    )


class _Display:
    """A live table on a terminal; a few plain lines otherwise."""

    def __init__(self, total: int, live: bool) -> None:
        self.total = total
        self.counts: Counter[str] = Counter()
        self.finished = 0
        self._live: Any = None
        self._last_line = -1
        if live:
            from rich.console import Group
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("[bold]jobs"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[line]}"),
            )
            self._task = self._progress.add_task("jobs", total=total, line="")
            self._live = Live(Group(self._progress), refresh_per_second=8, transient=False)
            self._live.start()

    def update(self, status: str, old: str | None, requests: int) -> None:
        if old is not None:
            self.counts[old] -= 1
        self.counts[status] += 1
        if status in JobState.FINISHED:
            self.finished += 1
        line = "  ".join(f"{k} {v}" for k, v in sorted(self.counts.items()) if v)
        line += f"  | requests {requests}"
        if self._live is not None:
            self._progress.update(self._task, completed=self.finished, line=line)
        else:
            step = self.finished * 4 // self.total
            if step != self._last_line and status in JobState.FINISHED:
                self._last_line = step
                print(f"  {self.finished}/{self.total} finished  {line}", flush=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()


def _say(text: str, quiet: bool) -> None:
    if not quiet:
        print(text, flush=True)


async def _demo(jobs: int, quiet: bool, live: bool) -> dict[str, Any]:
    rng = random.Random(7)
    started = time.monotonic()
    async with Emulator() as emu:
        _say(f"emulator listening on {emu.url}", quiet)
        async with aiotd.Client(
            emu.apikey,
            endpoint=emu.url,
            workflow_endpoint=emu.url,
            poll=PollSettings(min_interval=0.5, max_interval=5.0),
        ) as td:
            await _load(td, rng, quiet)
            watched = await _watch_jobs(td, jobs, rng, quiet, live)
            attempt = await _follow_attempt(td, quiet)
            winner = next(
                job_id for job_id in watched.ids if watched.final.get(job_id) == "success"
            )
            await _fetch_result(td, winner, quiet)
            outcome = Counter(watched.final.values())
            return {
                "jobs": len(watched.ids),
                "success": outcome.get("success", 0),
                "error": outcome.get("error", 0),
                "watch_requests": watched.requests,
                "requests_per_job": round(watched.requests / len(watched.ids), 3),
                "watch_seconds": round(watched.seconds, 2),
                "attempt_status": attempt.status,
                "requests_total": td.stats.requests,
                "retries": td.stats.retries,
                "seconds": round(time.monotonic() - started, 2),
            }


async def _load(td: aiotd.Client, rng: random.Random, quiet: bool) -> None:
    """The table the queries read, and the workflow project the attempt runs."""
    await td.databases.create(DATABASE)
    await td.tables.create(DATABASE, TABLE)
    base = int(time.time()) - 86_400
    records = [
        {
            "time": base + i * 60,
            "category": CATEGORIES[i % len(CATEGORIES)],
            "amount": round(rng.uniform(1, 200), 2),
            "user_id": f"u{i % 97}",
        }
        for i in range(1_000)
    ]
    imported = await td.imports.upload(DATABASE, TABLE, records)
    _say(f"imported {imported.records} rows into {DATABASE}.{TABLE}", quiet)
    project = await td.workflow.projects.push(
        "daily_report",
        {"daily_report.dig": WORKFLOW, "queries/count.sql": f"select count(*) from {TABLE}"},
    )
    _say(f"pushed workflow project {project.name} (revision {project.revision})", quiet)


@dataclass(frozen=True)
class _Watched:
    """The jobs issued, how each ended, and what watching them cost."""

    ids: list[str]
    final: dict[str, str]
    requests: int
    seconds: float


async def _watch_jobs(
    td: aiotd.Client, jobs: int, rng: random.Random, quiet: bool, live: bool
) -> _Watched:
    """Issue ``jobs`` queries and watch them all to the end through the poll engine."""
    issue_start = time.monotonic()
    issued = await asyncio.gather(
        *(td.jobs.issue(_query(i, rng), database=DATABASE) for i in range(jobs))
    )
    ids = [job.job_id for job in issued]
    _say(f"issued {len(ids)} queries in {time.monotonic() - issue_start:.1f}s; watching", quiet)
    before = td.stats.requests
    watch_start = time.monotonic()
    display = _Display(len(ids), live and not quiet)
    final: dict[str, str] = {}
    try:
        async for event in td.jobs.watch(ids):
            if event.new_status in JobState.FINISHED:
                final[event.job_id] = event.new_status
            display.update(event.new_status, event.old_status, td.stats.requests - before)
    finally:
        display.close()
    return _Watched(ids, final, td.stats.requests - before, time.monotonic() - watch_start)


async def _follow_attempt(td: aiotd.Client, quiet: bool) -> Attempt:
    """Start the workflow and print its tasks' changes until it is done."""
    attempt = await td.workflow.attempts.start(project="daily_report", workflow="daily_report")
    _say(f"started attempt {attempt.id} of daily_report", quiet)
    async for task_event in td.workflow.attempts.watch(attempt.id):
        _say(
            f"  {task_event.task.full_name:<24} {task_event.old_state or '-'} -> "
            f"{task_event.new_state}",
            quiet,
        )
    return await td.workflow.attempts.wait(attempt.id)


async def _fetch_result(td: aiotd.Client, job_id: str, quiet: bool) -> None:
    """Download one job's result as csv and stream its rows."""
    with tempfile.TemporaryDirectory(prefix="aiotd-demo-") as tmp:
        path = await td.jobs.download(job_id, Path(tmp) / "result.csv", format="csv")
        size = path.stat().st_size
    rows = [row async for row in td.jobs.rows(job_id)]
    _say(f"downloaded job {job_id}'s result: {size} bytes as csv, {len(rows)} rows", quiet)


def run_demo(*, jobs: int = 300, as_json: bool = False) -> int:
    """Run the demo; 0 when every step did what it should."""
    if jobs < 1:
        raise ValueError("--jobs must be >= 1")
    live = sys.stdout.isatty() and not as_json and rich_available()
    summary = asyncio.run(_demo(jobs, as_json, live))
    if as_json:
        print(json.dumps(summary))
    else:
        print(
            f"\n{summary['jobs']} jobs watched: {summary['success']} succeeded, "
            f"{summary['error']} failed (on purpose)\n"
            f"watching cost {summary['watch_requests']} requests "
            f"({summary['requests_per_job']} per job) over {summary['watch_seconds']}s\n"
            f"workflow attempt: {summary['attempt_status']}\n"
            f"{summary['requests_total']} requests in all, {summary['retries']} retries, "
            f"{summary['seconds']}s"
        )
    return 0 if summary["attempt_status"] == "success" else 1
