"""TD's own SQL functions, in Python: the time parsing, formatting and interval arithmetic behind
TD_TIME_RANGE, TD_TIME_FORMAT, TD_TIME_PARSE, TD_TIME_ADD, TD_DATE_TRUNC and TD_INTERVAL.

Semantics follow TD's documentation of its UDFs (Presto and Hive alike): times are unix seconds;
time strings are ``yyyy-MM-dd[ HH:mm:ss[.SSS]][ zone]`` (or ISO 8601 with ``T``), read in the
given time zone unless they name their own; time zones are IANA names, Java's short ids (``JST``,
``PST``, ...) or offsets (``+09:00``); formats are Java ``SimpleDateFormat`` patterns.
``register`` adds the Python UDFs the translated SQL calls (see ``_sql``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import zoneinfo
from functools import lru_cache
from typing import Any

__all__ = [
    "date_trunc",
    "interval_bounds",
    "joda_to_strftime",
    "parse_time",
    "register",
    "time_add",
    "time_format",
    "time_range_bound",
    "zone",
]

_UTC = dt.timezone.utc
# java.time.ZoneId.SHORT_IDS (what TD's Java UDFs accept besides IANA names), and the
# fixed-offset zones java.util.TimeZone knows by these names.
_SHORT_IDS = {
    "ACT": "Australia/Darwin",
    "AET": "Australia/Sydney",
    "AGT": "America/Argentina/Buenos_Aires",
    "ART": "Africa/Cairo",
    "AST": "America/Anchorage",
    "BET": "America/Sao_Paulo",
    "BST": "Asia/Dhaka",
    "CAT": "Africa/Harare",
    "CNT": "America/St_Johns",
    "CST": "America/Chicago",
    "CTT": "Asia/Shanghai",
    "EAT": "Africa/Addis_Ababa",
    "ECT": "Europe/Paris",
    "IET": "America/Indiana/Indianapolis",
    "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo",
    "MIT": "Pacific/Apia",
    "NET": "Asia/Yerevan",
    "NST": "Pacific/Auckland",
    "PLT": "Asia/Karachi",
    "PNT": "America/Phoenix",
    "PRT": "America/Puerto_Rico",
    "PST": "America/Los_Angeles",
    "SST": "Pacific/Guadalcanal",
    "VST": "Asia/Ho_Chi_Minh",
}
_FIXED_IDS = {"EST": -5, "MST": -7, "HST": -10}
_OFFSET_RE = re.compile(r"^(?:GMT|UTC)?([+-])(\d{1,2})(?::?(\d{2}))?$")


@lru_cache(maxsize=256)
def zone(name: str | None) -> dt.tzinfo:
    """The time zone a TD function argument names (None or '' is UTC); ValueError if unknown."""
    if name is None:
        return _UTC
    text = name.strip()
    if text.upper() in ("", "UTC", "GMT", "Z", "UT", "ETC/UTC", "ETC/GMT"):
        return _UTC
    if text.upper() in _FIXED_IDS:
        return dt.timezone(dt.timedelta(hours=_FIXED_IDS[text.upper()]), text.upper())
    match = _OFFSET_RE.match(text.upper())
    if match:
        sign, hours, minutes = match.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes or 0))
        delta = -delta if sign == "-" else delta
        if not delta:
            return _UTC
        total = int(delta.total_seconds()) // 60
        label = f"GMT{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"
        return dt.timezone(delta, label)
    try:
        return zoneinfo.ZoneInfo(_SHORT_IDS.get(text, text))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


_TIME_RE = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2}|[+-]\d{1,2}|[A-Za-z][A-Za-z0-9_/+:-]*)?\s*$"
)


def parse_time(text: str, tz: str | None = None) -> int:
    """Unix seconds of a TD time string (or of a number given as text); ValueError otherwise."""
    stripped = text.strip()
    if re.fullmatch(r"[+-]?\d+", stripped):
        return int(stripped)
    match = _TIME_RE.match(stripped)
    if match is None:
        raise ValueError(f"cannot parse {text!r} as a time")
    y, mo, d, h, mi, s, _frac, own_zone = match.groups()
    where = zone(own_zone) if own_zone else zone(tz)
    local = dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
    return _epoch(local, where)


def _epoch(local: dt.datetime, where: dt.tzinfo) -> int:
    """Unix seconds of a wall-clock time in ``where``."""
    return int(local.replace(tzinfo=where).timestamp())


def _local(seconds: int, where: dt.tzinfo) -> dt.datetime:
    """The wall-clock time of unix ``seconds`` in ``where`` (aware)."""
    return dt.datetime.fromtimestamp(seconds, where)


def time_range_bound(value: Any, tz: str | None) -> int | None:
    """A TD_TIME_RANGE bound as unix seconds: NULL stays NULL (an open bound)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    return parse_time(str(value), tz)


_DURATION_RE = re.compile(r"^([+-]?)((?:\d+[wdhms])+)$")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def _duration_seconds(text: str) -> int:
    """``'1d'``, ``'-1h'``, ``'1w2d'`` -> seconds (TD_TIME_ADD's durations)."""
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise ValueError(f"invalid duration {text!r}: expected e.g. '1d', '-2h', '30m'")
    sign, body = match.groups()
    total = sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"(\d+)([wdhms])", body))
    return -total if sign == "-" else total


def time_add(value: Any, duration: str, tz: str | None = None) -> int | None:
    """TD_TIME_ADD(time, duration[, tz]): ``time`` (seconds or a time string) plus ``duration``."""
    if value is None or duration is None:
        return None
    base = time_range_bound(value, tz)
    assert base is not None
    return base + _duration_seconds(duration)


_TRUNC_UNITS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")


def _truncate(local: dt.datetime, unit: str) -> dt.datetime:
    naive = local.replace(tzinfo=None)
    if unit == "second":
        return naive.replace(microsecond=0)
    if unit == "minute":
        return naive.replace(second=0, microsecond=0)
    if unit == "hour":
        return naive.replace(minute=0, second=0, microsecond=0)
    day = naive.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":  # weeks start on Monday (ISO 8601), as TD's functions count them
        return day - dt.timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(day=1, month=(day.month - 1) // 3 * 3 + 1)
    return day.replace(day=1, month=1)


def date_trunc(unit: str, seconds: int | None, tz: str | None = None) -> int | None:
    """TD_DATE_TRUNC(unit, time[, tz]): the start of ``time``'s unit in ``tz``, as unix seconds."""
    if seconds is None or unit is None:
        return None
    name = unit.strip().lower()
    if name not in _TRUNC_UNITS:
        raise ValueError(f"invalid unit {unit!r}: expected one of {', '.join(_TRUNC_UNITS)}")
    where = zone(tz)
    return _epoch(_truncate(_local(int(seconds), where), name), where)


_INTERVAL_UNITS = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "M": "month",
    "q": "quarter",
    "y": "year",
}
_INTERVAL_RE = re.compile(r"^([+-]?\d+)([smhdwMqy])$")


def _shift(local: dt.datetime, amount: int, unit: str) -> dt.datetime:
    """Wall-clock ``local`` moved by ``amount`` units (calendar months for M, q, y)."""
    if unit in ("month", "quarter", "year"):
        months = amount * {"month": 1, "quarter": 3, "year": 12}[unit]
        index = local.year * 12 + local.month - 1 + months
        year, month = divmod(index, 12)
        last = calendar.monthrange(year, month + 1)[1]
        return local.replace(year=year, month=month + 1, day=min(local.day, last))
    step = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}[unit]
    return local + dt.timedelta(seconds=amount * step)


def interval_bounds(interval: str, tz: str | None, scheduled: int) -> tuple[int, int]:
    """TD_INTERVAL's range ``[start, end)`` for ``'<duration>'`` or ``'<duration>/<base>'``.

    The duration is ``N`` units (s m h d w M q y). Without a base, the range is counted from
    the scheduled time cut to the duration's unit in ``tz`` (``'-1d'``: yesterday; ``'1M'``:
    this month); a base ``now`` counts from the scheduled time itself (``'-7d/now'``); a
    relative base moves the cut point (``'-1d/-1d'``: the day before yesterday); any other base
    is a time string (``'-1M/2015-02-01'``: January 2015).
    """
    where = zone(tz)
    duration_text, slash, start_text = interval.strip().partition("/")
    match = _INTERVAL_RE.match(duration_text.strip())
    if match is None:
        raise ValueError(f"invalid interval {interval!r}: expected e.g. '-1d', '1M', '-7d/now'")
    amount, unit = int(match.group(1)), _INTERVAL_UNITS[match.group(2)]
    now = _local(scheduled, where).replace(tzinfo=None)
    start = start_text.strip()
    if not slash:
        base = _truncate(now, unit)
    elif start.lower() == "now":
        base = now
    elif _INTERVAL_RE.match(start):
        offset = _INTERVAL_RE.match(start)
        assert offset is not None
        offset_unit = _INTERVAL_UNITS[offset.group(2)]
        base = _shift(_truncate(now, offset_unit), int(offset.group(1)), offset_unit)
    else:
        base = _local(parse_time(start, tz), where).replace(tzinfo=None)
    other = _shift(base, amount, unit)
    lo, hi = (base, other) if amount >= 0 else (other, base)
    return _epoch(lo, where), _epoch(hi, where)


# -- TD_TIME_FORMAT: Java SimpleDateFormat patterns --------------------------------------

_TOKEN_RE = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|[^A-Za-z']+")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _tokens(pattern: str) -> list[tuple[str, str]]:
    """(kind, text) pairs: kind is a pattern letter, or '' for literal text."""
    out: list[tuple[str, str]] = []
    for match in _TOKEN_RE.finditer(pattern):
        text = match.group(0)
        if text.startswith("'"):
            out.append(("", "'" if text == "''" else text[1:-1].replace("''", "'")))
        elif match.group(1):
            out.append((match.group(1), text))
        else:
            out.append(("", text))
    return out


def _offset(local: dt.datetime, colon: bool) -> str:
    delta = local.utcoffset() or dt.timedelta(0)
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}" if colon else f"{sign}{hours:02d}{mins:02d}"


def _field(letter: str, n: int, t: dt.datetime) -> str:
    """One SimpleDateFormat field of ``t`` (aware, local)."""
    if letter in "yY":
        year = t.isocalendar()[0] if letter == "Y" else t.year
        return f"{year % 100:02d}" if n == 2 else f"{year:0{n}d}"
    if letter in "ML":
        if n >= 4:
            return _MONTHS[t.month - 1]
        return _MONTHS[t.month - 1][:3] if n == 3 else f"{t.month:0{n}d}"
    if letter == "E":
        name = _DAYS[t.weekday()]
        return name if n >= 4 else name[:3]
    if letter == "a":
        return "AM" if t.hour < 12 else "PM"
    if letter in "zZX":
        if letter == "z":
            return t.tzname() or "UTC"
        if letter == "X" and not t.utcoffset():
            return "Z"
        text = _offset(t, colon=n >= 2 if letter == "Z" else n == 3)
        return text[:3] if letter == "X" and n == 1 else text
    values = {
        "G": "AD",
        "d": t.day,
        "D": t.timetuple().tm_yday,
        "H": t.hour,
        "k": t.hour or 24,
        "K": t.hour % 12,
        "h": t.hour % 12 or 12,
        "m": t.minute,
        "s": t.second,
        "S": 0,
        "u": t.isoweekday(),
        "w": t.isocalendar()[1],
        "W": (t.day + t.replace(day=1).weekday() - 1) // 7 + 1,
        "F": (t.day - 1) // 7 + 1,
    }
    if letter not in values:
        raise ValueError(f"illegal pattern character {letter!r}")
    value = values[letter]
    return value if isinstance(value, str) else f"{value:0{n}d}"


def time_format(seconds: int | None, pattern: str | None, tz: str | None = None) -> str | None:
    """TD_TIME_FORMAT(time, pattern[, tz]): ``time`` in ``tz`` as a SimpleDateFormat pattern."""
    if seconds is None or pattern is None:
        return None
    local = _local(int(seconds), zone(tz))
    return "".join(
        text if not kind else _field(kind, len(text), local) for kind, text in _tokens(pattern)
    )


_STRFTIME = {
    "yyyy": "%Y",
    "yy": "%y",
    "MM": "%m",
    "M": "%-m",
    "MMM": "%b",
    "MMMM": "%B",
    "dd": "%d",
    "d": "%-d",
    "HH": "%H",
    "H": "%-H",
    "hh": "%I",
    "h": "%-I",
    "mm": "%M",
    "m": "%-M",
    "ss": "%S",
    "s": "%-S",
    "EEE": "%a",
    "EEEE": "%A",
    "a": "%p",
    "DDD": "%j",
}


def joda_to_strftime(pattern: str) -> str | None:
    """The DuckDB ``strftime`` format of a SimpleDateFormat pattern, or None when a field has
    no exact equivalent (zones, week fields, ...)."""
    out: list[str] = []
    for kind, text in _tokens(pattern):
        if not kind:
            out.append(text.replace("%", "%%"))
        elif text in _STRFTIME:
            out.append(_STRFTIME[text])
        else:
            return None
    return "".join(out)


# -- registration ------------------------------------------------------------------------


def _udf_parse(text: str | None, tz: str | None) -> int | None:
    """TD_TIME_PARSE: NULL for NULL or text that is not a time, as TD's function answers."""
    if text is None:
        return None
    try:
        return parse_time(text, tz)
    except ValueError:
        return None


def _udf_bound(text: str | None, tz: str | None) -> int | None:
    return time_range_bound(text, tz)


def _udf_interval(interval: str | None, tz: str | None, scheduled: int, end: bool) -> int | None:
    if interval is None:
        return None
    return interval_bounds(interval, tz, scheduled)[1 if end else 0]


#: (name, function, parameter types, return type) of every UDF the translated SQL may call.
UDFS: tuple[tuple[str, Any, list[str], str], ...] = (
    ("__td_time_parse", _udf_parse, ["VARCHAR", "VARCHAR"], "BIGINT"),
    ("__td_time_bound", _udf_bound, ["VARCHAR", "VARCHAR"], "BIGINT"),
    ("__td_time_format", time_format, ["BIGINT", "VARCHAR", "VARCHAR"], "VARCHAR"),
    ("__td_time_add", time_add, ["VARCHAR", "VARCHAR", "VARCHAR"], "BIGINT"),
    ("__td_date_trunc", date_trunc, ["VARCHAR", "BIGINT", "VARCHAR"], "BIGINT"),
    (
        "__td_interval_start",
        lambda i, tz, s: _udf_interval(i, tz, s, False),
        ["VARCHAR", "VARCHAR", "BIGINT"],
        "BIGINT",
    ),
    (
        "__td_interval_end",
        lambda i, tz, s: _udf_interval(i, tz, s, True),
        ["VARCHAR", "VARCHAR", "BIGINT"],
        "BIGINT",
    ),
)


def register(conn: Any) -> None:
    """Add the TD UDFs to a DuckDB connection (visible to its cursors)."""
    for name, function, params, returns in UDFS:
        conn.create_function(name, function, params, returns, null_handling="special")
