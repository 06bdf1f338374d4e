"""``aiotd workflow``: push projects, start, list and watch attempts, read task logs."""

from __future__ import annotations

import argparse
import time
from contextlib import aclosing, nullcontext
from pathlib import Path
from typing import Any

import anyio

from aiotd.cli._common import UsageError, add_common_options
from aiotd.cli._config import make_client
from aiotd.cli._render import Output, duration, now, show_table, styled, text
from aiotd.errors import WaitTimeout
from aiotd.models.workflow import Attempt, Task

__all__ = ["register"]


def _param(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {value!r}")
    return key, val


def register(sub: Any) -> None:
    """Add ``workflow`` and its subcommands."""
    wf = sub.add_parser("workflow", help="workflow projects, attempts, tasks and logs")
    cmds = wf.add_subparsers(dest="workflow_command", metavar="SUBCOMMAND", required=True)

    p = cmds.add_parser("push", help="upload a project directory as a new revision")
    p.add_argument("name", metavar="NAME")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--revision", help="revision name (default: a new UUID)")
    add_common_options(p)
    p.set_defaults(handler=push)

    p = cmds.add_parser("start", help="start an attempt of a workflow")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("workflow", metavar="WORKFLOW")
    p.add_argument("--param", "-p", type=_param, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--session-time", help="the session time (default: now)")
    p.add_argument("--wait", "-w", action="store_true", help="wait until the attempt is done")
    p.add_argument("--timeout", type=float, help="seconds to wait at most (exit 3 after)")
    add_common_options(p)
    p.set_defaults(handler=start)

    p = cmds.add_parser("attempts", help="recent attempts, newest first")
    p.add_argument("--project", metavar="P")
    p.add_argument("--workflow", metavar="W", help="with --project: only this workflow")
    p.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    add_common_options(p)
    p.set_defaults(handler=attempts)

    p = cmds.add_parser("watch", help="an attempt's task tree with live states")
    p.add_argument("attempt_id", metavar="ATTEMPT_ID")
    p.add_argument("--timeout", type=float, help="seconds to watch at most (exit 3 after)")
    add_common_options(p)
    p.set_defaults(handler=watch)

    p = cmds.add_parser("logs", help="print an attempt's task logs")
    p.add_argument("attempt_id", metavar="ATTEMPT_ID")
    p.add_argument("--task", metavar="T", help="only tasks whose name starts with T (+wf+step)")
    add_common_options(p)
    p.set_defaults(handler=logs)


def _attempt_line(attempt: Attempt) -> str:
    return (
        f"attempt {attempt.id} of {attempt.project.name}/{attempt.workflow.name} "
        f"(session {text(attempt.session_time)}): {attempt.status}"
    )


def _project_dir(name: str) -> Path:
    directory = Path(name)
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    return directory


async def push(args: argparse.Namespace, out: Output) -> int:
    directory = _project_dir(args.directory)
    async with make_client(args) as td:
        project = await td.workflow.projects.push(args.name, directory, revision=args.revision)
    out.record(project)
    out.line(f"pushed project {project.name} (id {project.id}, revision {project.revision})")
    return 0


async def start(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as td:
        attempt = await td.workflow.attempts.start(
            project=args.project,
            workflow=args.workflow,
            session_time=args.session_time,
            params=dict(args.param),
        )
        out.record(attempt)
        how = "already running" if attempt.existing else "started"
        out.line(f"{how}: attempt {attempt.id} (session {text(attempt.session_time)})")
        if not args.wait:
            return 0
        attempt = await _wait(td, attempt.id, args.timeout, out)
        out.record(attempt)
        out.line(_attempt_line(attempt))
        _print_failures(attempt, out)
    return 0 if attempt.success else 1


async def _wait(td: Any, attempt_id: str, timeout: float | None, out: Output) -> Attempt:
    spinner = None
    if out.live:
        spinner = out.console.status(f"attempt {attempt_id}: running", spinner="dots")
    with spinner or nullcontext():
        attempt: Attempt = await td.workflow.attempts.wait(attempt_id, timeout=timeout)
    return attempt


def _print_failures(attempt: Attempt, out: Output) -> None:
    """The failed tasks a waiter's attempt carries, with their errors."""
    for task in attempt.failed_tasks:
        message = task.error_message or task.state
        out.line(f"  {task.full_name}: {message}")


async def attempts(args: argparse.Namespace, out: Output) -> int:
    if args.limit < 0:
        raise UsageError("--limit must be >= 0")
    async with make_client(args) as td:
        rows: list[list[str]] = []
        pager = td.workflow.attempts.list(
            project=args.project, workflow=args.workflow, limit=args.limit
        )
        async for attempt in pager:
            out.record(attempt)
            rows.append(
                [
                    attempt.id,
                    attempt.project.name,
                    attempt.workflow.name,
                    text(attempt.session_time),
                    styled(attempt.status) if out.live else attempt.status,
                    text(attempt.created_at),
                ]
            )
    show_table(out, ["attempt", "project", "workflow", "session", "status", "created"], rows)
    return 0


class _Tree:
    """The live view of ``workflow watch``: every task indented under its parent."""

    def __init__(self, attempt_id: str) -> None:
        self.attempt_id = attempt_id
        self.tasks: dict[str, Task] = {}
        self.started = time.monotonic()

    def update(self, task: Task) -> None:
        self.tasks[task.id] = task

    def depth(self, task: Task) -> int:
        level = 0
        parent = task.parent_id
        while parent is not None and parent in self.tasks and level < 100:
            level += 1
            parent = self.tasks[parent].parent_id
        return level

    def label(self, task: Task) -> str:
        parent = self.tasks.get(task.parent_id) if task.parent_id is not None else None
        if parent is not None and task.full_name.startswith(parent.full_name):
            return task.full_name[len(parent.full_name) :]
        return task.full_name

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table

        grid = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("task", "state", "error"):
            grid.add_column(name)
        for task in sorted(self.tasks.values(), key=_task_order):
            name = "  " * self.depth(task) + self.label(task)
            grid.add_row(escape(name), styled(task.state), escape(task.error_message or ""))
        done = sum(1 for t in self.tasks.values() if t.done)
        footer = (
            f"attempt {self.attempt_id}: {done}/{len(self.tasks)} tasks done, "
            f"{duration(time.monotonic() - self.started)}"
        )
        return Group(grid, footer)


def _task_order(task: Task) -> tuple[int, str]:
    return (int(task.id), "") if task.id.isdigit() else (0, task.id)


async def watch(args: argparse.Namespace, out: Output) -> int:
    """Task events until the attempt is done; exit 0 on success, 1 otherwise."""
    tree = _Tree(args.attempt_id)
    async with make_client(args) as td:
        live: Any = None
        if out.live:
            from rich.live import Live

            live = Live(tree, console=out.console, refresh_per_second=4)
            live.start()
        try:
            with anyio.fail_after(args.timeout):
                async with aclosing(td.workflow.attempts.watch(args.attempt_id)) as events:
                    async for event in events:
                        tree.update(event.task)
                        out.record(
                            {
                                "task_id": event.task.id,
                                "full_name": event.task.full_name,
                                "old_state": event.old_state,
                                "new_state": event.new_state,
                                "time": now().isoformat(timespec="seconds"),
                            }
                        )
                        if live is None:
                            old = event.old_state or "-"
                            out.line(
                                f"{now():%H:%M:%S}  {event.task.full_name}  {old} -> "
                                f"{event.new_state}"
                            )
        except TimeoutError:
            raise WaitTimeout(f"attempt {args.attempt_id} not done after {args.timeout}s") from None
        finally:
            if live is not None:
                live.stop()
        # done, so this returns at its first poll, with the failed tasks if it failed
        attempt = await td.workflow.attempts.wait(args.attempt_id)
        out.line(_attempt_line(attempt))
        _print_failures(attempt, out)
    return 0 if attempt.success else 1


async def logs(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as td:
        files = await td.workflow.logs.files(args.attempt_id, task=args.task)
        if not files:
            out.line("(no log files)")
        for handle in files:
            out.line(f"== {handle.task_name} ({handle.file_name})")
            lines = td.workflow.logs.read(args.attempt_id, handle)
            async with aclosing(lines) as stream:
                async for line in stream:
                    if out.json:
                        out.record(
                            {"task": handle.task_name, "file": handle.file_name, "line": line}
                        )
                    else:
                        out.stream.write(line + "\n")
            out.stream.flush()
    return 0
