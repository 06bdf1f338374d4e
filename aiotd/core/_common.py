"""Argument helpers shared by the v3 resources."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aiotd._http import segment
from aiotd.errors import Conflict
from aiotd.models._base import Model, completed, relaxed
from aiotd.models.core import IssuedJob

if TYPE_CHECKING:
    from aiotd._resource import CoreResource

__all__ = [
    "call_filled",
    "db_segment",
    "epoch_seconds",
    "issue_once",
    "new_domain_key",
    "required",
    "table_segment",
]


_M = TypeVar("_M", bound=Model)
_T = TypeVar("_T")


async def call_filled(
    resource: CoreResource,
    method: str,
    path: str,
    type_: type[_M],
    known: Mapping[str, str],
    **kwargs: Any,
) -> _M:
    """``resource._call`` for an answer that may leave out what the request already says.

    The fields of ``known`` may be missing from the body and are then taken from ``known``,
    so the answer always names what was asked about: td-client-python's recorded bodies of
    ``job/status`` (``{"status"}``), ``table/delete`` (``{"type"}``), ``schedule/create``
    (``{"start"}``) carry none of them. A write TD applied is thus never reported as a
    DecodeError over a missing echo; every other required field is still required.
    """
    answer = await resource._call(method, path, relaxed(type_, tuple(known)), **kwargs)
    return completed(answer, type_, known)


def epoch_seconds(value: int | datetime, name: str) -> int:
    """Unix seconds from an int or an aware datetime (a naive one is ambiguous: refused)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be an aware datetime (with tzinfo) or unix seconds")
        return int(value.timestamp())
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be unix seconds (int) or a datetime, not {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0")
    return value


def required(value: str, name: str) -> str:
    """``value`` if it is a non-blank str."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value


def name_segment(value: str, what: str) -> str:
    """A database or table name as a path segment; TD names are ``[a-z0-9_]``, so a name
    that is empty or holds ``/`` is a mistake caught before any request."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"the {what} name must be a non-empty string")
    if "/" in value:
        raise ValueError(f"the {what} name {value!r} must not contain '/'")
    return segment(value)


def db_segment(name: str) -> str:
    """A database name as a path segment (empty or ``/``: ValueError before any request)."""
    return name_segment(name, "database")


def table_segment(name: str) -> str:
    """A table name as a path segment (empty or ``/``: ValueError before any request)."""
    return name_segment(name, "table")


def new_domain_key() -> str:
    return f"aiotd-{uuid.uuid4()}"


async def issue_once(
    resource: CoreResource,
    path: str,
    *,
    database: str = "",
    data: dict[str, Any] | None = None,
    json: Any = None,
) -> IssuedJob:
    """POST a job-creating request that carries a ``domain_key``, retried safely.

    TD refuses a second job for the key with 409 ``details.conflicts_with``; that job is
    returned with ``existing=True`` (v3-api.md §2 "domain_key"). A 409 naming no job (no
    ``conflicts_with``, or one that is not a string or number) is raised as it came. The
    answer's ``database`` is ``database`` when TD leaves it out.
    """
    known = {"database": database} if database else {}
    try:
        return await call_filled(
            resource, "POST", path, IssuedJob, known, data=data, json=json, idempotent=True
        )
    except Conflict as exc:
        if exc.conflicts_with is None:
            raise
        return IssuedJob(job_id=exc.conflicts_with, database=database, existing=True)
