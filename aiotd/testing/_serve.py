"""``aiotd emulator``: serve the emulator until interrupted; the base URL is the first line out."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from aiotd.testing._common import LISTING_COUNTS
from aiotd.testing._emulator import Emulator

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``aiotd emulator``."""
    parser = argparse.ArgumentParser(
        prog="aiotd emulator",
        description="Serve a local Treasure Data emulator (v3 API, and the Workflow API).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--apikey", default=None, help="the accepted API key (default: random)")
    parser.add_argument(
        "--queued-time", type=float, default=0.1, help="seconds a job stays queued (0.1)"
    )
    parser.add_argument("--running-time", type=float, default=0.3, help="seconds a job runs (0.3)")
    parser.add_argument(
        "--booting-time", type=float, default=0.05, help="seconds a job shows 'booting' (0.05)"
    )
    parser.add_argument(
        "--job-list-count",
        choices=LISTING_COUNTS,
        default="page",
        help="what job/list's count reports: the page's length, the span asked, or the total",
    )
    parser.add_argument(
        "--job-list-page-cap", type=int, default=None, help="most jobs per listing page"
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed for fault rates")
    parser.add_argument(
        "--no-sample-datasets",
        action="store_true",
        help="start without TD's sample_datasets database",
    )
    parser.add_argument("--no-workflow", action="store_true", help="do not serve the Workflow API")
    parser.add_argument(
        "--show-apikey", action="store_true", help="print the API key on the second line"
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    emulator = Emulator(
        apikey=args.apikey,
        host=args.host,
        port=args.port,
        queued_time=args.queued_time,
        running_time=args.running_time,
        booting_time=args.booting_time,
        job_list_count=args.job_list_count,
        job_list_page_cap=args.job_list_page_cap,
        fault_seed=args.fault_seed,
        sample_datasets=not args.no_sample_datasets,
        workflow=not args.no_workflow,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with emulator:
        print(emulator.url, flush=True)
        if args.show_apikey:
            print(emulator.apikey, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run ``aiotd emulator [options]``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"aiotd emulator: {exc}", file=sys.stderr)
        return 1
    return 0
