"""What every command shares: the usage error and the connection and output options."""

from __future__ import annotations

import argparse
from typing import Any

from aiotd._config import SITES

__all__ = ["UsageError", "add_common_options"]


class UsageError(Exception):
    """The command line asks for something impossible (exit code 2)."""


def add_common_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """Connection and output options, accepted before or after the command name.

    On subcommands the defaults are suppressed so that a value given before the command
    is not overwritten by the subcommand's default.
    """

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--apikey", default=default(None), help="API key (default: $TD_API_KEY, td.conf)"
    )
    group.add_argument("--endpoint", default=default(None), help="core API URL or host")
    group.add_argument(
        "--workflow-endpoint", default=default(None), help="workflow API URL or host"
    )
    group.add_argument(
        "--site", default=default(None), choices=sorted(SITES), help="TD region (default us)"
    )
    group.add_argument(
        "--json", action="store_true", default=default(False), help="machine-readable output"
    )
    group.add_argument(
        "--debug", action="store_true", default=default(False), help="tracebacks and debug logs"
    )
