"""The emulator's SQL: TD's time functions added to SQLite, and the job-control comment."""

from __future__ import annotations

import calendar
import re
import shlex
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["JobControl", "parse_control", "register_functions", "result_type"]

_CONTROL_RE = re.compile(r"^\s*--\s*emulator:(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class JobControl:
    """Settings read from a ``-- emulator: key=value ...`` comment in a query."""

    queued: float | None = None
    booting: float | None = None
    running: float | None = None
    status: str | None = None
    message: str | None = None
    rows: int | None = None
    pad: int = 0


def parse_control(query: str) -> JobControl:
    """Read every ``-- emulator:`` line of ``query``; unknown keys or bad values: ValueError."""
    values: dict[str, str] = {}
    for match in _CONTROL_RE.finditer(query):
        for token in shlex.split(match.group(1)):
            key, sep, value = token.partition("=")
            if not sep:
                raise ValueError(f"emulator comment: expected key=value, got {token!r}")
            values[key.strip().lower()] = value
    if not values:
        return JobControl()
    known = {"queued", "booting", "running", "duration", "status", "message", "rows", "pad"}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"emulator comment: unknown keys {sorted(unknown)}")
    status = values.get("status")
    if status is not None and status not in ("success", "error"):
        raise ValueError("emulator comment: status must be success or error")
    running = values.get("running", values.get("duration"))
    return JobControl(
        queued=float(values["queued"]) if "queued" in values else None,
        booting=float(values["booting"]) if "booting" in values else None,
        running=float(running) if running is not None else None,
        status=status,
        message=values.get("message"),
        rows=int(values["rows"]) if "rows" in values else None,
        pad=int(values.get("pad", "0")),
    )


def result_type(value: Any) -> str:
    """The engine type name reported in ``hive_result_schema`` for a result value."""
    if isinstance(value, (bool, int)):
        return "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, bytes):
        return "varbinary"
    return "varchar"


def _to_epoch(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return calendar.timegm(time.strptime(text, fmt))
        except ValueError:
            continue
    return int(text)


def _td_time_range(t: Any, start: Any, end: Any = None, tz: Any = None) -> int:
    """TD_TIME_RANGE(time, start[, end[, tz]]): start <= time < end; NULL bound = open."""
    if t is None:
        return 0
    lo, hi = _to_epoch(start), _to_epoch(end)
    return int((lo is None or t >= lo) and (hi is None or t < hi))


_JAVA_FMT = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"))


def _td_time_format(t: Any, fmt: str, tz: Any = None) -> str | None:
    """TD_TIME_FORMAT(time, 'yyyy-MM-dd HH:mm:ss'[, tz]) in UTC."""
    if t is None:
        return None
    out = fmt
    for java, c in _JAVA_FMT:
        out = out.replace(java, c)
    return time.strftime(out, time.gmtime(int(t)))


def _td_time_parse(text: Any, tz: Any = None) -> int | None:
    """TD_TIME_PARSE('2024-01-01 00:00:00'[, tz]) -> epoch seconds (UTC)."""
    return _to_epoch(text)


class _ApproxDistinct:
    """approx_distinct(x): exact distinct count (Presto's estimate, made exact)."""

    def __init__(self) -> None:
        self.seen: set[Any] = set()

    def step(self, value: Any) -> None:
        if value is not None:
            self.seen.add(value)

    def finalize(self) -> int:
        return len(self.seen)


def register_functions(conn: sqlite3.Connection) -> None:
    """Add TD/Presto functions to an SQLite connection (see docs/emulator.md)."""
    conn.create_function("TD_TIME_RANGE", -1, _td_time_range, deterministic=True)
    conn.create_function("TD_TIME_FORMAT", -1, _td_time_format, deterministic=True)
    conn.create_function("TD_TIME_PARSE", -1, _td_time_parse, deterministic=True)
    conn.create_function("TD_SCHEDULED_TIME", 0, lambda: int(time.time()))
    conn.create_aggregate("approx_distinct", 1, _ApproxDistinct)
