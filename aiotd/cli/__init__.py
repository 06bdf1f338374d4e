"""The ``aiotd`` command (also ``python -m aiotd``): presentation over the library."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from aiotd.cli._common import UsageError, add_common_options
from aiotd.cli._render import Output

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiotd",
        description="Treasure Data from the shell: jobs, queries, workflows, and a local emulator.",
    )
    add_common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from aiotd.cli import importing, jobs, query, tables, workflow

    tables.register(sub)
    importing.register(sub)
    jobs.register(sub)
    query.register(sub)
    workflow.register(sub)
    demo = sub.add_parser(
        "demo", help="run the main job against a built-in emulator (no account needed)"
    )
    demo.add_argument("--jobs", type=int, default=300, help="queries to issue (default 300)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    sub.add_parser(
        "emulator",
        help="serve the local Treasure Data emulator (see aiotd emulator --help)",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed, 2 usage, 3 timeout)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from aiotd.testing._serve import main as serve

        return serve(args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.command == "demo":
            from aiotd.cli.demo import run_demo

            return run_demo(jobs=args.jobs, as_json=args.json)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return EXIT_USAGE
        return int(asyncio.run(handler(args, Output(as_json=args.json))))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, and keep Python from complaining
        # about the unflushable stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            raise
        print(f"aiotd: {type(exc).__name__}: {exc}", file=sys.stderr)
        return _exit_code(exc)


def _exit_code(exc: Exception) -> int:
    """Usage errors 2, timeouts 3, anything else 1."""
    from aiotd.errors import WaitTimeout

    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, WaitTimeout | TimeoutError):
        return EXIT_TIMEOUT
    return EXIT_FAILED
