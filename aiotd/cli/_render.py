"""How commands write: JSON lines, rich tables and colours on a terminal, plain text in pipes."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

import msgspec

__all__ = [
    "STATUS_STYLE",
    "Output",
    "duration",
    "now",
    "plain",
    "rich_available",
    "show_table",
    "styled",
    "text",
    "text_table",
]


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
    """The current time in UTC, for event lines and elapsed times."""
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
