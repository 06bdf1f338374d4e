"""Parsing of every timestamp form TD sends (v3-api.md §7.1, workflow-api.md §1).

Forms: ``"2016-07-26 08:14:46 UTC"``, ISO with ``Z``, ``+09:00`` or ``+0900`` offsets,
``"2015-02-17 14:16:00 +0900"``, epoch seconds (int, float or digits), and ``""``/``None``
for "not set". Every result is timezone-aware.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["parse_time"]

_SPACE_FORM = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(UTC|GMT|Z|[+-]\d{2}:?\d{2})?$"
)


def _offset(text: str | None) -> timezone:
    if text is None or text in ("UTC", "GMT", "Z"):
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return timezone(sign * delta)


def parse_time(value: str | int | float | None) -> datetime | None:
    """An aware datetime for any TD timestamp; ``None`` for ``None`` and ``""``.

    Raises ``ValueError`` for text that is not a timestamp. A string without any zone is
    read as UTC, which is how TD writes its ``"... UTC"`` form without the suffix.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return datetime.fromtimestamp(int(text), tz=timezone.utc)
    match = _SPACE_FORM.match(text)
    if match is None:
        raise ValueError(f"not a timestamp: {value!r}")
    date, clock, zone = match.groups()
    if "." in clock:  # Python 3.10 reads only 3 or 6 fraction digits
        whole, fraction = clock.split(".")
        clock = f"{whole}.{(fraction + '000000')[:6]}"
    naive = datetime.fromisoformat(f"{date}T{clock}")
    return naive.replace(tzinfo=_offset(zone))
