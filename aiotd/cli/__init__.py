"""The ``aiotd`` command (also ``python -m aiotd``): presentation over the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    try:
        if args.command == "demo":
            from aiotd.cli.demo import run_demo

            return run_demo(jobs=args.jobs, as_json=args.json)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"aiotd: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    parser.print_help()
    return EXIT_USAGE
