"""Pure digdag pieces of the Workflow emulator: time formats, names, archives, ``.dig`` files.

Nothing here touches the network or the clock; ``_workflow.py`` and its ``_wf_*`` modules hold
the state and routes.
"""

from __future__ import annotations

import calendar
import gzip
import io
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

__all__ = [
    "ArchiveError",
    "DigError",
    "ScheduleSpec",
    "TaskSpec",
    "compile_workflow",
    "format_instant",
    "format_offset",
    "load_dig",
    "parse_instant",
    "read_archive",
    "render",
    "validate_project_name",
    "validate_secret",
    "zone",
]


class DigError(ValueError):
    """A ``.dig`` file or a schedule that digdag would refuse (400 on push)."""


class ArchiveError(ValueError):
    """A project archive that digdag would refuse (400 on push)."""


# --- time formats (workflow-api.md §1) ---------------------------------------------------------

_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


def format_instant(ts: float | None) -> str | None:
    """An Instant field: UTC, second precision, ``Z`` (``"2019-11-01T07:00:00Z"``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_offset(ts: float, tz: tzinfo) -> str:
    """An OffsetDateTime field: in the workflow's zone, never ``Z`` (``"...T00:00:00+09:00"``)."""
    return datetime.fromtimestamp(int(ts), tz=tz).isoformat(timespec="seconds")


def zone(name: str) -> tzinfo:
    """The zone of a workflow's ``timezone:``; unknown names are a push error."""
    if name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DigError(f"Unknown timezone: {name}") from exc


_FRACTION = re.compile(r"\.(\d+)")


def parse_instant(text: str, *, local_tz: tzinfo | None = None) -> float:
    """Epoch seconds of an ISO date-time with ``Z`` or an offset.

    Without an offset the text is local time in ``local_tz``; with no ``local_tz`` it is an
    error, as digdag rejects a ``sessionTime`` without an offset.
    """
    value = text.strip()
    has_offset = _OFFSET.search(value) is not None and "T" in value
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # Python 3.10's fromisoformat reads only 3 or 6 fraction digits: pad or cut to 6
    value = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"Invalid time: {text}") from exc
    if not has_offset or parsed.tzinfo is None:
        if local_tz is None:
            raise ValueError(f"Time must have a time zone offset: {text}")
        parsed = parsed.replace(tzinfo=local_tz)
    return parsed.timestamp()


# --- names and secrets (workflow-api.md §2.1) -------------------------------------------------

_SEGMENT = r"(?:[a-zA-Z]|[a-zA-Z][a-zA-Z0-9_-]*[a-zA-Z0-9])"
_SECRET_KEY = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})*$")
_SECRET_VALUE_LIMIT = 16 * 1024


def validate_project_name(name: str) -> str | None:
    """Why digdag refuses a project name, or ``None`` when the name is fine."""
    if not name:
        return "project name must not be empty"
    if len(name) > 255:
        return "project name must not be longer than 255 characters"
    if name[0].isdigit():
        return f"project name must not start with a digit: {name}"
    if name[0] in '+^@/\\:*?"<>|':
        return f"project name must not start with '{name[0]}': {name}"
    if name.endswith(".dig"):
        return f"project name must not end with .dig: {name}"
    return None


def validate_secret(key: str, value: object) -> bool:
    """Whether a secret key and its value pass digdag's checks (key regex, 16 KiB of UTF-8)."""
    if len(key) > 255 or _SECRET_KEY.match(key) is None:
        return False
    return isinstance(value, str) and len(value.encode("utf-8")) <= _SECRET_VALUE_LIMIT


# --- archives ---------------------------------------------------------------------------------


def read_archive(data: bytes, limit: int) -> dict[str, bytes]:
    """The regular files of a project tar.gz by normalised path.

    The size limit applies to each entry and to their sum (workflow-api.md §2.1).
    """
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.size > limit:
                    raise ArchiveError(
                        f"Size of a file in the archive exceeds limit ({limit} bytes)"
                    )
                total += member.size
                if total > limit:
                    raise ArchiveError(
                        f"Total size of files in the archive exceeds limit ({limit} bytes)"
                    )
                name = _normalise(member.name)
                extracted = tar.extractfile(member)
                if name is None or extracted is None:
                    continue
                files[name] = extracted.read()
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError) as exc:
        raise ArchiveError(f"Invalid project archive: {exc}") from exc
    return files


def _normalise(path: str) -> str | None:
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


# --- .dig files -------------------------------------------------------------------------------


class _DigLoader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML as digdag reads it: no sexagesimal numbers, so ``daily>: 07:00:00`` stays a string."""


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_DigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NUMBER_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_DigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)
_DigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def load_dig(text: str) -> dict[str, Any]:
    """The body of a ``.dig`` file; anything but a mapping is a push error."""
    try:
        body = yaml.load(text, Loader=_DigLoader)
    except yaml.YAMLError as exc:
        raise DigError(f"Invalid workflow definition: {exc}") from exc
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise DigError("Workflow definition must be a mapping")
    return {str(key): value for key, value in body.items()}


@dataclass(frozen=True)
class TaskSpec:
    """One task of a compiled workflow: what RestTask shows and how the emulator runs it."""

    full_name: str
    config: dict[str, Any]
    export: dict[str, Any]
    operator: str | None
    command: Any = None
    children: tuple[TaskSpec, ...] = ()
    parallel: bool = False
    error: TaskSpec | None = None
    retry: int = 0

    @property
    def is_group(self) -> bool:
        """Tasks without an operator are groups (RestTask ``isGroup``)."""
        return self.operator is None

    def walk(self) -> Iterator[TaskSpec]:
        """This task and its static descendants in digdag's id order (pre-order)."""
        yield self
        for child in self.children:
            yield from child.walk()


_ROOT_ONLY_KEYS = ("schedule", "timezone", "sla")


def compile_workflow(name: str, body: Mapping[str, Any]) -> TaskSpec:
    """The task tree of a workflow: the root ``+name``, ``+`` children in order, ``_error``."""
    config = {key: value for key, value in body.items() if key not in _ROOT_ONLY_KEYS}
    return _compile(f"+{name}", config)


def _compile(full_name: str, body: Mapping[str, Any]) -> TaskSpec:
    children: list[TaskSpec] = []
    config: dict[str, Any] = {}
    operator: str | None = None
    command: Any = None
    for key, value in body.items():
        if key.startswith("+"):
            if not isinstance(value, Mapping):
                raise DigError(f"Task {full_name}{key} must be a mapping")
            children.append(_compile(f"{full_name}{key}", value))
            continue
        if key == "_error":
            continue
        config[key] = value
        if key.endswith(">") and operator is None:
            operator, command = key[:-1], value
    error_body = body.get("_error")
    error: TaskSpec | None = None
    if error_body is not None:
        if not isinstance(error_body, Mapping):
            raise DigError(f"_error of {full_name} must be a mapping")
        error = _compile(f"{full_name}^error", error_body)
    export = body.get("_export") or {}
    if not isinstance(export, Mapping):
        raise DigError(f"_export of {full_name} must be a mapping")
    return TaskSpec(
        full_name=full_name,
        config=config,
        export=dict(export),
        operator=operator,
        command=command,
        children=() if operator is not None else tuple(children),
        parallel=bool(body.get("_parallel", False)),
        error=error,
        retry=_retry_limit(body.get("_retry")),
    )


def _retry_limit(value: Any) -> int:
    if isinstance(value, Mapping):
        value = value.get("limit", 0)
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError) as exc:
        raise DigError(f"Invalid _retry: {value!r}") from exc


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def render(text: str, variables: Mapping[str, Any]) -> str:
    """Replace ``${name}`` and ``${a.b}`` with known values; leave the rest as written."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return str(variables[name])
        value: Any = variables
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return match.group(0)
            value = value[part]
        return str(value)

    return _VARIABLE.sub(lookup, text)


# --- schedules (daily>, hourly>, cron>, ...) ------------------------------------------------

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock(text: Any, parts: int) -> timedelta:
    pieces = str(text).strip().split(":")
    if len(pieces) != parts or not all(piece.isdigit() for piece in pieces):
        raise DigError(f"Invalid time in schedule: {text!r}")
    numbers = [int(piece) for piece in pieces]
    if parts == 3:
        return timedelta(hours=numbers[0], minutes=numbers[1], seconds=numbers[2])
    return timedelta(minutes=numbers[0], seconds=numbers[1])


@dataclass(frozen=True)
class _Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday, as cron counts
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expr: str) -> _Cron:
        fields = expr.split()
        if len(fields) != 5:
            raise DigError(f"Invalid cron expression: {expr!r}")
        spans = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
        sets = [
            _cron_field(text, low, high) for text, (low, high) in zip(fields, spans, strict=True)
        ]
        weekdays = frozenset(day % 7 for day in sets[4])
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays, fields[2] == "*", fields[4] == "*")

    def matches_day(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week


def _cron_field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text) if step_text.isdigit() else 0
        if part == "*":
            start, end = low, high
        elif "-" in part:
            first, _, last = part.partition("-")
            start, end = _cron_number(first), _cron_number(last)
        else:
            start = _cron_number(part)
            end = high if "/" in text else start
        if step <= 0 or start < low or end > high or start > end:
            raise DigError(f"Invalid cron field: {text!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _cron_number(text: str) -> int:
    lowered = text.lower()
    if lowered in _DAYS:
        return (_DAYS.index(lowered) + 1) % 7
    if not text.isdigit():
        raise DigError(f"Invalid cron field: {text!r}")
    return int(text)


@dataclass(frozen=True)
class ScheduleSpec:
    """A ``schedule:`` block: session times in the workflow zone and the delay to run time."""

    kind: str
    tz: tzinfo
    delay: timedelta = timedelta(0)
    interval: timedelta = timedelta(days=1)
    weekday: int | None = None
    monthday: int | None = None
    cron: _Cron | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, block: Any, tz: tzinfo) -> ScheduleSpec:
        """A schedule from the ``schedule:`` mapping; an unknown or broken one is a DigError."""
        if not isinstance(block, Mapping):
            raise DigError("schedule must be a mapping")
        extra = timedelta(seconds=int(block.get("delay", 0) or 0))
        for key, value in block.items():
            if not str(key).endswith(">"):
                continue
            kind = str(key)[:-1]
            if kind == "daily":
                return cls(kind, tz, _clock(value, 3) + extra)
            if kind == "hourly":
                return cls(kind, tz, _clock(value, 2) + extra, timedelta(hours=1))
            if kind == "minutes_interval":
                return cls(kind, tz, extra, timedelta(minutes=int(value)))
            if kind in ("weekly", "monthly"):
                day, _, clock = str(value).partition(",")
                if kind == "weekly":
                    if day.strip().lower()[:3] not in _DAYS:
                        raise DigError(f"Invalid weekly schedule: {value!r}")
                    weekday = _DAYS.index(day.strip().lower()[:3])
                    return cls(kind, tz, _clock(clock, 3) + extra, weekday=weekday)
                return cls(kind, tz, _clock(clock, 3) + extra, monthday=int(day))
            if kind == "cron":
                return cls(kind, tz, extra, cron=_Cron.parse(str(value)))
            raise DigError(f"Unknown scheduler: {key}")
        raise DigError("schedule has no scheduler (daily>, hourly>, cron>, ...)")

    def run_time(self, session_time: float) -> float:
        """When the session of ``session_time`` runs."""
        return session_time + self.delay.total_seconds()

    def floor(self, ts: float) -> float:
        """The last session time at or before ``ts``."""
        candidate = self._candidates(ts, backwards=True)
        return next(candidate)

    def next_after(self, ts: float) -> float:
        """The first session time strictly after ``ts``."""
        return next(t for t in self._candidates(ts, backwards=False) if t > ts)

    def first_run_from(self, ts: float) -> float:
        """The first session time whose run time is at or after ``ts`` (a new schedule's start)."""
        session = self.floor(ts - self.delay.total_seconds())
        while self.run_time(session) < ts:
            session = self.next_after(session)
        return session

    def _candidates(self, ts: float, *, backwards: bool) -> Iterator[float]:
        local = datetime.fromtimestamp(ts, tz=self.tz).replace(tzinfo=None)
        sign = -1 if backwards else 1
        if self.kind in ("hourly", "minutes_interval"):
            size = int(self.interval.total_seconds())
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            offset = int((local - midnight).total_seconds()) // size * size
            slot = midnight + timedelta(seconds=offset)
            while True:
                yield self._epoch(slot)
                slot += sign * timedelta(seconds=size)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(366 * 8):
            if self.kind == "cron":
                assert self.cron is not None
                if self.cron.matches_day(day):
                    hours = sorted(self.cron.hours, reverse=backwards)
                    minutes = sorted(self.cron.minutes, reverse=backwards)
                    for hour in hours:
                        for minute in minutes:
                            slot = day.replace(hour=hour, minute=minute)
                            if (slot <= local) if backwards else (slot >= local):
                                yield self._epoch(slot)
            elif self._day_matches(day) and ((day <= local) if backwards else (day >= local)):
                yield self._epoch(day)
            day += sign * timedelta(days=1)
        raise DigError("schedule never fires")

    def _day_matches(self, day: datetime) -> bool:
        if self.kind == "weekly":
            return day.weekday() == self.weekday
        if self.kind == "monthly":
            last = calendar.monthrange(day.year, day.month)[1]
            return day.day == min(self.monthday or 1, last)
        return True

    def _epoch(self, local: datetime) -> float:
        return local.replace(tzinfo=self.tz).timestamp()
