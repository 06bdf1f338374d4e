"""Shared building blocks of the response models: the base Struct, ids, timestamps.

Ids: TD sends some ids as JSON strings and others as numbers (v3-api.md §7.2). A field typed
``Id`` accepts both on the wire and always holds a ``str`` after decoding; type checkers see
``str``. Timestamps are kept as received (TD uses several forms, v3-api.md §7.1) and parsed
on access: an attribute ``<field>_dt = parsed_time()`` reads ``<field>``. The stamps most
v3 records carry (``created_at``, ``updated_at``; a job's ``start_at``, ``end_at``) come
with their accessors from ``Stamped`` and ``RunStamped``.

Answers that may leave out what the request already says (the name of the table just
deleted, the job id polled) are decoded as ``relaxed(cls, names)`` and turned back into a
``cls`` by ``completed``, which fills those fields from the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import UnionType
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
    overload,
)

import msgspec
from msgspec.structs import force_setattr

from aiotd._time import parse_time

__all__ = [
    "Id",
    "Model",
    "RunStamped",
    "Stamped",
    "Timestamp",
    "completed",
    "parsed_time",
    "relaxed",
]


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


_M = TypeVar("_M", bound=Model)
_RELAXED: dict[tuple[type, tuple[str, ...]], type] = {}


def relaxed(cls: type[_M], names: tuple[str, ...]) -> type[_M]:
    """``cls`` with its required str fields ``names`` defaulting to ``""`` (cached per pair).

    The shape to decode an answer with when the request already says those fields; every
    other required field stays required. ``cls`` itself when none of ``names`` is required.
    """
    key = (cls, names)
    found = _RELAXED.get(key)
    if found is None:
        fields = {f.name: f for f in msgspec.structs.fields(cls)}
        loose = [(name, fields[name].type, "") for name in names if fields[name].required]
        found = _RELAXED[key] = (
            msgspec.defstruct(
                cls.__name__,
                loose,
                bases=(cls,),
                module=cls.__module__,
                frozen=True,
                kw_only=True,
                gc=False,
            )
            if loose
            else cls
        )
    return cast("type[_M]", found)


def completed(answer: Model, cls: type[_M], known: Mapping[str, str]) -> _M:
    """``answer`` (decoded as ``relaxed(cls, ...)``) as a plain ``cls``, each field of
    ``known`` that the answer left empty taken from ``known``."""
    values = msgspec.structs.asdict(answer)  # the fields of cls: relaxed() adds none
    for name, value in known.items():
        if not values[name]:
            values[name] = value
    return cls(**values)


class parsed_time:
    """A read-only attribute ``<field>_dt``: the timestamp field ``<field>`` as an aware
    datetime (None if unset). Its name says which field, so no model spells it twice.

    Raises ``ValueError`` when the field holds text that is not a TD timestamp.
    """

    field: str

    def __set_name__(self, owner: type, name: str) -> None:
        if not name.endswith("_dt"):
            raise TypeError(f"{owner.__name__}.{name}: a parsed_time is named <field>_dt")
        self.field = name.removesuffix("_dt")

    @overload
    def __get__(self, obj: None, owner: type) -> parsed_time: ...

    @overload
    def __get__(self, obj: object, owner: type) -> datetime | None: ...

    def __get__(self, obj: object | None, owner: type) -> parsed_time | datetime | None:
        if obj is None:
            return self
        value: Timestamp = getattr(obj, self.field)
        return parse_time(value)


class Stamped(Model, frozen=True, kw_only=True):
    """A v3 record's ``created_at`` and ``updated_at`` (databases, tables, users, jobs)."""

    created_at: Timestamp = None
    updated_at: Timestamp = None

    created_at_dt = parsed_time()
    updated_at_dt = parsed_time()


class RunStamped(Stamped, frozen=True, kw_only=True):
    """A job's stamps: those of ``Stamped`` and when it started and ended running."""

    start_at: Timestamp = None
    end_at: Timestamp = None

    start_at_dt = parsed_time()
    end_at_dt = parsed_time()
