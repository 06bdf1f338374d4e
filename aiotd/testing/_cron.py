"""Cron times of saved queries: 5-field cron (or ``@daily`` style) read in the schedule's
timezone, as TD runs them (a schedule's ``timezone`` says how its ``cron`` is read)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Cron", "parse_cron", "zone"]

_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_SEARCH_DAYS = 366 * 5


def zone(name: str) -> ZoneInfo | None:
    """The timezone ``name`` (``UTC``, ``Asia/Tokyo``, ...) or None if unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _field(spec: str, lo: int, hi: int) -> frozenset[int]:
    out: set[int] = set()
    for part in spec.split(","):
        body, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if step < 1:
            raise ValueError(f"bad step in {spec!r}")
        if body == "*":
            a, b = lo, hi
        elif "-" in body:
            a_s, b_s = body.split("-", 1)
            a, b = int(a_s), int(b_s)
        else:
            a = b = int(body)
            if step_s:
                b = hi
        if not (lo <= a <= b <= hi):
            raise ValueError(f"{spec!r} is out of {lo}-{hi}")
        out.update(range(a, b + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class Cron:
    """A parsed cron: the matching minutes, hours, days, months and weekdays (0 = Sunday)."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        # As cron: with both restricted, either matches; with one restricted, that one.
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def _times(self, day: dt.date, tz: ZoneInfo, *, reverse: bool) -> Iterator[float]:
        for hour in sorted(self.hours, reverse=reverse):
            for minute in sorted(self.minutes, reverse=reverse):
                local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
                yield local.timestamp()

    def after(self, at: float, tz: ZoneInfo) -> float | None:
        """The first cron time strictly after ``at`` (epoch seconds), None within 5 years."""
        start = dt.datetime.fromtimestamp(at, tz).date()
        for offset in range(_SEARCH_DAYS):
            day = start + dt.timedelta(days=offset)
            if self._day_matches(day):
                for t in self._times(day, tz, reverse=False):
                    if t > at:
                        return t
        return None

    def until(self, at: float, tz: ZoneInfo) -> Iterator[float]:
        """Cron times at or before ``at``, latest first (searching 5 years back)."""
        start = dt.datetime.fromtimestamp(at, tz).date()
        for offset in range(_SEARCH_DAYS):
            day = start - dt.timedelta(days=offset)
            if self._day_matches(day):
                for t in self._times(day, tz, reverse=True):
                    if t <= at:
                        yield t


def parse_cron(text: str) -> Cron | None:
    """A 5-field cron or an alias such as ``@daily``; None when it is not one."""
    fields = _ALIASES.get(text.strip(), text.strip()).split()
    if len(fields) != 5:
        return None
    try:
        minutes = _field(fields[0], 0, 59)
        hours = _field(fields[1], 0, 23)
        days = _field(fields[2], 1, 31)
        months = _field(fields[3], 1, 12)
        weekdays = frozenset(d % 7 for d in _field(fields[4], 0, 7))
    except ValueError:
        return None
    return Cron(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=days,
        months=months,
        weekdays=weekdays,
        any_day=fields[2] == "*",
        any_weekday=fields[4] == "*",
    )
