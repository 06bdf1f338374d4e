"""Small helpers shared by the workflow resources: request time formats, page cursors."""

from __future__ import annotations

from datetime import datetime, timezone

from aiotd.errors import DecodeError

__all__ = ["cursor_id", "instant", "session_time"]


def cursor_id(item_id: str) -> int:
    """An id as the ``last_id`` cursor of the next page.

    Digdag's ids are decimal digits (reference §1 "IDs"); any other id in a listing is a body
    of the wrong shape, a DecodeError, not a ValueError from ``int``.
    """
    if not (item_id.isascii() and item_id.isdigit()):
        raise DecodeError(f"a listing holds the id {item_id[:40]!r}, not a number to page from")
    return int(item_id)


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (TD reads a naive time ambiguously)")
    return value


def instant(value: datetime | str, what: str = "time") -> str:
    """A UTC instant as digdag parses it, ``2024-01-01T00:00:00Z`` (reference §1, §2.1)."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{what} must not be empty")
        return value
    utc = _aware(value, what).astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def session_time(value: datetime | str | None) -> str:
    """A session time with its offset (a local time without one is refused, reference §3).

    ``None`` means now; a ``datetime`` keeps its own offset so the session falls on the day
    the caller meant.
    """
    if value is None:
        return datetime.now(timezone.utc).isoformat(timespec="seconds")
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("session_time must not be empty")
        return value
    return _aware(value, "session_time").isoformat(timespec="seconds")
