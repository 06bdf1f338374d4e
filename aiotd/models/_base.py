"""Shared building blocks of the response models: the base Struct, ids, timestamps.

Ids: TD sends some ids as JSON strings and others as numbers (v3-api.md §7.2). A field typed
``Id`` accepts both on the wire and always holds a ``str`` after decoding; type checkers see
``str``. Timestamps are kept as received (TD uses several forms, v3-api.md §7.1) and parsed
on access through ``parsed_time`` attributes named ``<field>_dt``.
"""

from __future__ import annotations

from datetime import datetime
from types import UnionType
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    overload,
)

import msgspec
from msgspec.structs import force_setattr

from aiotd._time import parse_time

__all__ = ["Id", "Model", "Timestamp", "parsed_time"]


class _IdMarker:
    """Marks an ``Annotated`` type as an id that must end up a ``str``."""


_ID = _IdMarker()

if TYPE_CHECKING:
    Id = str
else:
    Id = Annotated[str | int, _ID]

Timestamp = str | int | float | None

_ID_FIELDS: dict[type, tuple[str, ...]] = {}


def _is_id(hint: Any) -> bool:
    """``Id`` itself or an optional ``Id`` (not a container of ids)."""
    if get_origin(hint) is Annotated:
        return any(meta is _ID for meta in hint.__metadata__)
    if get_origin(hint) in (Union, UnionType):
        return any(_is_id(arg) for arg in get_args(hint))
    return False


def _id_fields(cls: type) -> tuple[str, ...]:
    names = tuple(
        name
        for name, hint in get_type_hints(cls, include_extras=True).items()
        if name in cls.__struct_fields__ and _is_id(hint)  # type: ignore[attr-defined]
    )
    _ID_FIELDS[cls] = names
    return names


class Model(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Base of every response model: frozen, keyword-only, unknown fields ignored.

    ``gc=False``: models hold no reference cycles, and big lists decode faster untracked.
    """

    def __post_init__(self) -> None:
        cls = type(self)
        try:
            names = _ID_FIELDS[cls]
        except KeyError:
            names = _id_fields(cls)
        for name in names:
            value = getattr(self, name)
            if value is not None and type(value) is not str:
                force_setattr(self, name, str(value))


class parsed_time:
    """A read-only attribute giving a timestamp field as an aware datetime (None if unset).

    Raises ``ValueError`` when the field holds text that is not a TD timestamp.
    """

    def __init__(self, field: str) -> None:
        self.field = field

    @overload
    def __get__(self, obj: None, owner: type) -> parsed_time: ...

    @overload
    def __get__(self, obj: object, owner: type) -> datetime | None: ...

    def __get__(self, obj: object | None, owner: type) -> parsed_time | datetime | None:
        if obj is None:
            return self
        value: Timestamp = getattr(obj, self.field)
        return parse_time(value)
