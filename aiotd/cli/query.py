"""``aiotd query``: issue a query, wait for it, and stream its result to stdout or a file."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from contextlib import aclosing, nullcontext
from pathlib import Path
from typing import Any

import anyio

from aiotd.cli._common import UsageError, add_common_options
from aiotd.cli._config import make_client
from aiotd.cli._render import Output
from aiotd.core.jobs import ENGINES
from aiotd.errors import WaitTimeout
from aiotd.models.core import Job, JobStatus

__all__ = ["register"]

FORMATS = ("csv", "tsv", "json")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json", ".gz": "msgpack.gz"}


def register(sub: Any) -> None:
    """Add ``query``."""
    p = sub.add_parser(
        "query",
        help="issue a query; with --wait (or -o) wait and print or save its result",
        description="Issue a query. Without --wait, print the job id; with --wait, wait for "
        "the job and stream its result to stdout, or with -o FILE download it.",
    )
    p.add_argument("sql", nargs="?", metavar="SQL", help="the query text")
    p.add_argument("-f", "--file", metavar="FILE", help="read the query from FILE ('-': stdin)")
    p.add_argument("-d", "--database", required=True, metavar="DB")
    p.add_argument("-e", "--engine", choices=ENGINES, default="presto")
    p.add_argument("-w", "--wait", action="store_true", help="wait and output the result")
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="result format (default csv; for -o, from the file's suffix)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="download the result to FILE")
    p.add_argument("--timeout", type=float, help="seconds to wait at most (exit 3 after)")
    p.add_argument("--priority", help="-2..2 or VERY LOW, LOW, NORMAL, HIGH, VERY HIGH")
    add_common_options(p)
    p.set_defaults(handler=run_query)


def _query_text(args: argparse.Namespace) -> str:
    if (args.sql is None) == (args.file is None):
        raise UsageError("give the query as SQL or with -f FILE (one of them)")
    if args.file is None:
        return str(args.sql)
    if args.file == "-":
        return sys.stdin.read()
    try:
        return Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None


def _file_format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    name = str(args.output)
    if name.endswith(".msgpack.gz"):
        return "msgpack.gz"
    return _SUFFIXES.get(Path(name).suffix.lower(), "csv")


def _cell(value: Any) -> Any:
    """A result value as csv/tsv text: arrays and maps as JSON, NULL as empty."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


async def run_query(args: argparse.Namespace, out: Output) -> int:
    query = _query_text(args)
    wait = args.wait or args.output is not None
    async with make_client(args) as td:
        issued = await td.jobs.issue(
            query, database=args.database, engine=args.engine, priority=args.priority
        )
        if not wait:
            out.record(issued)
            out.line(f"job {issued.job_id} issued on {args.database}")
            return 0
        job = await _wait(td, issued.job_id, args.timeout, out)
        job.raise_for_status()
        if args.output is not None:
            return await _download(td, job, args, out)
        fmt = "json" if args.json and not args.format else (args.format or "csv")
        if fmt == "json":
            async with aclosing(td.jobs.rows(job.job_id)) as rows:
                async for row in rows:
                    out.stream.write(json.dumps(row, default=str) + "\n")
        else:
            writer = csv.writer(
                out.stream, delimiter="," if fmt == "csv" else "\t", lineterminator="\n"
            )
            columns = job.result_columns
            if columns:
                writer.writerow([c.name for c in columns])
            async with aclosing(td.jobs.rows(job.job_id)) as rows:
                async for row in rows:
                    writer.writerow([_cell(v) for v in row])
        out.stream.flush()
    return 0


async def _wait(td: Any, job_id: str, timeout: float | None, out: Output) -> Job:
    """The finished job, followed through the poll engine; a spinner shows its status."""
    spinner = out.console.status(f"job {job_id}: waiting", spinner="dots") if out.live else None
    last: Job | JobStatus | None = None
    try:
        with spinner or nullcontext(), anyio.fail_after(timeout):
            async with aclosing(td.jobs.watch([job_id])) as events:
                async for event in events:
                    last = event.job
                    if spinner is not None:
                        spinner.update(f"job {job_id}: {event.new_status}")
    except TimeoutError:
        raise WaitTimeout(f"job {job_id} did not finish within {timeout}s", last) from None
    return last if isinstance(last, Job) else await td.jobs.get(job_id)


async def _download(td: Any, job: Job, args: argparse.Namespace, out: Output) -> int:
    """Save the result to a file, with a progress bar of bytes on a terminal."""
    fmt = _file_format(args)
    header = fmt in ("csv", "tsv")
    progress: Any = None
    report = None
    if out.live:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        progress = Progress(
            TextColumn(f"job {job.job_id}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=out.console,
        )
        task = progress.add_task("download", total=None)

        def report(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

    with progress or nullcontext():
        path = await td.jobs.download(
            job.job_id, args.output, format=fmt, header=header, progress=report, overwrite=True
        )
    size = path.stat().st_size
    out.record({"job_id": job.job_id, "path": str(path), "format": fmt, "bytes": size})
    out.line(f"job {job.job_id}: {size} bytes of {fmt} saved to {path}")
    return 0
