"""``aiotd jobs``: list, show, kill, wait for and watch jobs."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from contextlib import aclosing
from typing import Any

import anyio

from aiotd.cli._common import UsageError, add_common_options
from aiotd.cli._config import make_client
from aiotd.cli._render import Output, duration, now, show_table, styled, text
from aiotd.errors import WaitTimeout
from aiotd.models.core import Job, JobState, JobStatus

__all__ = ["register"]

STATUSES = ("queued", "running", "success", "error")


def register(sub: Any) -> None:
    """Add ``jobs`` and its subcommands."""
    jobs = sub.add_parser("jobs", help="list, show, kill, wait for and watch jobs")
    cmds = jobs.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND", required=True)

    p = cmds.add_parser("list", help="recent jobs, newest first")
    p.add_argument("--status", choices=STATUSES, help="only jobs in this status")
    p.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    add_common_options(p)
    p.set_defaults(handler=list_jobs)

    p = cmds.add_parser("show", help="one job in full, with its error output")
    p.add_argument("job_id", metavar="ID")
    add_common_options(p)
    p.set_defaults(handler=show_job)

    p = cmds.add_parser("kill", help="kill jobs")
    p.add_argument("job_ids", metavar="ID", nargs="+")
    add_common_options(p)
    p.set_defaults(handler=kill_jobs)

    p = cmds.add_parser("wait", help="wait for jobs; exit 1 if any failed, 3 on timeout")
    p.add_argument("job_ids", metavar="ID", nargs="+")
    p.add_argument("--timeout", type=float, help="seconds to wait at most")
    add_common_options(p)
    p.set_defaults(handler=wait_jobs)

    p = cmds.add_parser("watch", help="a live table of jobs until they finish")
    p.add_argument("job_ids", metavar="ID", nargs="*")
    p.add_argument(
        "--running", action="store_true", help="watch every queued, booting and running job"
    )
    p.add_argument("--timeout", type=float, help="seconds to watch at most (exit 3 after)")
    add_common_options(p)
    p.set_defaults(handler=watch_jobs)


def _elapsed(job: Job | JobStatus) -> float | None:
    """Seconds since the job was created, until it ended if it did."""
    start = job.created_at_dt
    if start is None:
        return None
    end = job.end_at_dt if job.finished and job.end_at_dt is not None else now()
    return (end - start).total_seconds()


async def list_jobs(args: argparse.Namespace, out: Output) -> int:
    if args.limit < 0:
        raise UsageError("--limit must be >= 0")
    async with make_client(args) as td:
        rows: list[list[str]] = []
        async for job in td.jobs.list(status=args.status, limit=args.limit):
            out.record(job)
            rows.append(
                [
                    job.job_id,
                    styled(job.status) if out.live else job.status,
                    text(job.type),
                    job.database,
                    text(job.created_at),
                    duration(job.duration),
                ]
            )
    show_table(out, ["job", "status", "type", "database", "created", "duration"], rows)
    return 0


async def show_job(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as td:
        job = await td.jobs.get(args.job_id)
        columns = await td.jobs.columns(job) if job.success else []
    if out.json:
        out.record(job)
        return 0
    fields = [
        ("job", job.job_id),
        ("status", job.status),
        ("type", job.type),
        ("database", job.database),
        ("created", text(job.created_at)),
        ("started", text(job.start_at)),
        ("ended", text(job.end_at)),
        ("duration", duration(job.duration)),
        ("records", text(job.num_records)),
        ("result size", text(job.result_size)),
        ("columns", ", ".join(f"{c.name} {c.type}" for c in columns)),
        ("query", job.query if isinstance(job.query, str) else text(job.query)),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if value:
            first, *rest = str(value).splitlines() or [""]
            out.line(f"{name:<{width}}  {first}")
            for more in rest:
                out.line(f"{'':<{width}}  {more}")
    stderr = job.debug.stderr if job.debug is not None else None
    if job.failed and stderr:
        out.line("\nerror output:")
        out.line(stderr.rstrip())
    return 0


async def kill_jobs(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as td:
        killed = await asyncio.gather(*(td.jobs.kill(job_id) for job_id in args.job_ids))
    for result in killed:
        out.record(result)
        if result.former_status in JobState.FINISHED:
            out.line(f"job {result.job_id} had already finished ({result.former_status})")
        else:
            was = f" (was {result.former_status})" if result.former_status else ""
            out.line(f"job {result.job_id} killed{was}")
    return 0


def _outcome(statuses: list[str]) -> int:
    """0 when every job succeeded, 1 otherwise."""
    return 0 if all(s == "success" for s in statuses) else 1


async def wait_jobs(args: argparse.Namespace, out: Output) -> int:
    """Each job is reported as it finishes; the exit code sums them up."""
    statuses: list[str] = []
    async with make_client(args) as td:
        done = td.jobs.as_completed(args.job_ids, timeout=args.timeout)
        async with aclosing(done) as finished:
            async for job in finished:
                statuses.append(job.status)
                out.record(job)
                note = ""
                stderr = job.debug.stderr if job.failed and job.debug is not None else None
                last = (stderr or "").strip().splitlines()[-1:]  # a blank stderr has no line
                if last:
                    note = ": " + last[0][:200]
                out.line(f"job {job.job_id} {job.status} after {duration(_elapsed(job))}{note}")
    return _outcome(statuses)


class _Board:
    """The live view of ``jobs watch``: a progress bar and the jobs that matter most."""

    MAX_ROWS = 20

    def __init__(self, job_ids: list[str]) -> None:
        self.order = list(dict.fromkeys(job_ids))
        self.status: dict[str, str] = {}
        self.records: dict[str, Job | JobStatus] = {}
        self.seen_at: dict[str, float] = {}
        self.changed_at: dict[str, float] = {}
        self.started = time.monotonic()

    def update(self, job_id: str, status: str, record: Job | JobStatus) -> None:
        self.status[job_id] = status
        self.records[job_id] = record
        self.seen_at.setdefault(job_id, time.monotonic())
        self.changed_at[job_id] = time.monotonic()

    @property
    def finished(self) -> int:
        return sum(1 for s in self.status.values() if s in JobState.FINISHED)

    def counts(self) -> Counter[str]:
        return Counter(self.status.get(job_id, "pending") for job_id in self.order)

    def _elapsed(self, job_id: str) -> str:
        record = self.records.get(job_id)
        seconds = _elapsed(record) if record is not None else None
        if seconds is None and job_id in self.seen_at:
            seconds = time.monotonic() - self.seen_at[job_id]
        return duration(seconds)

    def _shown(self) -> list[str]:
        """Unfinished jobs first, then the most recently finished ones."""
        pending = [j for j in self.order if self.status.get(j) not in JobState.FINISHED]
        done = sorted(
            (j for j in self.order if self.status.get(j) in JobState.FINISHED),
            key=lambda j: -self.changed_at.get(j, 0.0),
        )
        return (pending + done)[: self.MAX_ROWS]

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        total = len(self.order)
        grid = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("job", "status", "elapsed", "database"):
            grid.add_column(name)
        for job_id in self._shown():
            status = self.status.get(job_id, "pending")
            record = self.records.get(job_id)
            database = record.database if isinstance(record, Job) else ""
            grid.add_row(job_id, styled(status), self._elapsed(job_id), database)
        hidden = total - len(self._shown())
        counts = "  ".join(f"{styled(k)} {v}" for k, v in sorted(self.counts().items()))
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(total, 1), completed=self.finished, width=40),
            f"{self.finished}/{total} finished",
            duration(time.monotonic() - self.started),
        )
        parts: list[Any] = [grid]
        if hidden > 0:
            parts.append(f"[dim]... and {hidden} more[/]")
        parts += [bar, counts]
        return Group(*parts)


async def _running_ids(td: Any) -> list[str]:
    """The account's unfinished jobs: queued, running, and booting among the newest.

    Booting jobs are in neither the queued nor the running listing (v3-api.md §2), so the
    newest page of the unfiltered listing is read for them too.
    """
    ids: dict[str, None] = {}
    for status in ("queued", "running"):
        async for job in td.jobs.list(status=status):
            ids[job.job_id] = None
    for job in await td.jobs.list(page_size=100):
        if not job.finished:
            ids[job.job_id] = None
    return list(ids)


async def watch_jobs(args: argparse.Namespace, out: Output) -> int:
    """Every status change until all jobs finish: live on a terminal, lines otherwise."""
    if bool(args.job_ids) == bool(args.running):
        raise UsageError("give job ids or --running (not both)")
    async with make_client(args) as td:
        ids = await _running_ids(td) if args.running else list(args.job_ids)
        if not ids:
            out.line("no queued or running jobs")
            return 0
        board = _Board(ids)
        live: Any = None
        if out.live:
            from rich.live import Live

            live = Live(board, console=out.console, refresh_per_second=4)
            live.start()
        try:
            with anyio.fail_after(args.timeout):
                async with aclosing(td.jobs.watch(ids)) as events:
                    async for event in events:
                        board.update(event.job_id, event.new_status, event.job)
                        out.record(
                            {
                                "job_id": event.job_id,
                                "old_status": event.old_status,
                                "new_status": event.new_status,
                                "time": now().isoformat(timespec="seconds"),
                            }
                        )
                        if live is None:
                            old = event.old_status or "-"
                            out.line(
                                f"{now():%H:%M:%S}  job {event.job_id}  {old} -> "
                                f"{event.new_status}  ({board.finished}/{len(board.order)})"
                            )
        except TimeoutError:
            raise WaitTimeout(
                f"{len(board.order) - board.finished} of {len(board.order)} jobs still "
                f"unfinished after {args.timeout}s"
            ) from None
        finally:
            if live is not None:
                live.stop()
    counts = board.counts()
    out.line(
        f"{len(board.order)} jobs: "
        + ", ".join(f"{counts[s]} {s}" for s in ("success", "error", "killed") if counts[s])
    )
    return _outcome([board.status.get(j, "") for j in board.order])
