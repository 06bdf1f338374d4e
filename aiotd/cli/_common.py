"""What every command shares: options, configuration (flags, env, td.conf, site), output."""

from __future__ import annotations

import argparse
import configparser
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import msgspec

import aiotd
from aiotd._config import SITES

__all__ = [
    "Output",
    "UsageError",
    "add_common_options",
    "make_client",
    "plain",
    "read_td_conf",
    "resolve_settings",
    "rich_available",
]


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


# -- configuration


def td_conf_path(environ: Mapping[str, str]) -> Path:
    """``$TD_CONFIG_PATH``, else ``~/.td/td.conf`` with ``~`` from ``$HOME``."""
    explicit = environ.get("TD_CONFIG_PATH")
    if explicit:
        return Path(explicit)
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".td" / "td.conf"


def read_td_conf(path: Path) -> dict[str, str]:
    """The ``[account]`` section of the td command's config file; ``{}`` when there is none.

    The td command writes its keys indented under the section header, which configparser
    would read as continuation lines: indentation is dropped first.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string("\n".join(line.strip() for line in text.splitlines()), str(path))
    except configparser.Error as exc:
        raise UsageError(f"{path} is not a valid td config file: {exc.message}") from None
    if not parser.has_section("account"):
        return {}
    return {key: value.strip() for key, value in parser.items("account") if value.strip()}


def _workflow_for(core: str) -> str | None:
    """The workflow endpoint that goes with a core endpoint of a known site (or a local one)."""
    host = urlsplit(core if "://" in core else "https://" + core).hostname or ""
    for core_host, workflow_host in SITES.values():
        if host == core_host:
            return workflow_host
    if host in ("127.0.0.1", "localhost", "::1"):
        # a local server (the emulator) serves both APIs on one address
        return core
    return None


@dataclass(frozen=True)
class Settings:
    """Where and how to connect; ``repr`` leaves the key out."""

    apikey: str | None
    endpoint: str | None
    workflow_endpoint: str | None
    site: str | None

    def __repr__(self) -> str:
        return (
            f"Settings(endpoint={self.endpoint!r}, workflow_endpoint={self.workflow_endpoint!r}, "
            f"site={self.site!r})"
        )


def resolve_settings(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    """Flags first, then ``TD_API_KEY``/``TD_API_SERVER``/``TD_WORKFLOW_SERVER``, then
    td.conf (``[account] apikey``, ``endpoint``), then the site."""
    env = os.environ if environ is None else environ
    conf = read_td_conf(td_conf_path(env))
    apikey = args.apikey or env.get("TD_API_KEY") or conf.get("apikey")
    if not apikey:
        raise UsageError(
            "no API key: pass --apikey, set TD_API_KEY, or write it in ~/.td/td.conf ([account])"
        )
    endpoint = args.endpoint or env.get("TD_API_SERVER") or conf.get("endpoint")
    workflow = args.workflow_endpoint or env.get("TD_WORKFLOW_SERVER")
    if workflow is None and endpoint is not None:
        workflow = _workflow_for(endpoint)
    return Settings(apikey, endpoint, workflow, args.site)


def make_client(args: argparse.Namespace) -> aiotd.Client:
    """A client configured from the command line, the environment and td.conf."""
    settings = resolve_settings(args)
    return aiotd.Client(
        settings.apikey,
        site=settings.site,
        endpoint=settings.endpoint,
        workflow_endpoint=settings.workflow_endpoint,
    )


# -- output


def plain(value: Any) -> Any:
    """Models as JSON-ready data with their Python attribute names (snake_case)."""
    if isinstance(value, msgspec.Struct):
        out: dict[str, Any] = {}
        for name in value.__struct_fields__:
            key = name.rstrip("_")
            # a field stored as `status_` is read through its `status` property
            attr = key if key != name and hasattr(type(value), key) else name
            out[key] = plain(getattr(value, attr))
        return out
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def now() -> datetime:
    return datetime.now(timezone.utc)


def rich_available() -> bool:
    """Whether the optional rich package (the ``cli`` extra) can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


class Output:
    """Where a command writes: JSON lines, a rich terminal, or plain lines for pipes.

    Colour and live displays are used only when stdout is a terminal, never with ``--json``,
    and only when rich is installed (the ``cli`` extra).
    """

    def __init__(self, *, as_json: bool, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.json = as_json
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.live = tty and not as_json and rich_available()
        self._console: Any = None

    @property
    def console(self) -> Any:
        """A rich Console on stdout (only when ``live``)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)
        return self._console

    def line(self, text: str = "") -> None:
        """A plain line of text (nothing in JSON mode)."""
        if not self.json:
            print(text, file=self.stream, flush=True)

    def rich(self, renderable: Any, fallback: str) -> None:
        """A rich renderable on a terminal, else the plain fallback text."""
        if self.json:
            return
        if self.live:
            self.console.print(renderable)
        else:
            print(fallback, file=self.stream, flush=True)

    def record(self, value: Any) -> None:
        """One JSON line (only in JSON mode)."""
        if self.json:
            print(json.dumps(plain(value), default=str), file=self.stream, flush=True)


def table(columns: list[str], rows: list[list[str]], title: str | None = None) -> Any:
    """A rich Table of plain strings."""
    from rich.table import Table

    out = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for name in columns:
        out.add_column(name)
    for row in rows:
        out.add_row(*row)
    return out


def text_table(columns: list[str], rows: list[list[str]]) -> str:
    """The same table as aligned plain text."""
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def show_table(out: Output, columns: list[str], rows: list[list[str]]) -> None:
    """Rows as a rich table on a terminal, aligned text otherwise."""
    if not rows:
        out.line("(none)")
        return
    if out.live:
        out.rich(table(columns, rows), "")
    else:
        out.line(text_table(columns, rows))


STATUS_STYLE = {
    "success": "green",
    "error": "red",
    "killed": "magenta",
    "group_error": "red",
    "canceled": "magenta",
    "running": "yellow",
    "queued": "cyan",
    "booting": "cyan",
    "planned": "cyan",
    "blocked": "dim",
    "ready": "cyan",
    "retry_waiting": "yellow",
    "group_retry_waiting": "yellow",
}


def styled(status: str) -> str:
    """Rich markup colouring a job, attempt or task status."""
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def duration(seconds: float | None) -> str:
    """``75.2`` -> ``1m15s``; ``""`` for None."""
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def text(value: Any) -> str:
    """A table cell: ``""`` for None, the value's text otherwise."""
    return "" if value is None else str(value)
