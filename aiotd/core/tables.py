"""``td.tables``: list, show, create, delete, swap, alter, move and tail tables."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from aiotd._paging import Pager, one_page
from aiotd._resource import CoreResource
from aiotd.core._common import call_filled, db_segment, table_segment
from aiotd.core.results_io import RowDecoder
from aiotd.errors import Conflict, DecodeError, NotFound
from aiotd.models.core import Column, Table, TableList, TableRef, TableSwap

__all__ = ["Tables", "schema_text"]


def schema_text(columns: Iterable[Column | Sequence[str]]) -> str:
    """The JSON text TD takes as a table schema: ``[[name, type(, alias)], ...]``.

    Columns are ``Column`` objects or ``(name, type)`` / ``(name, type, alias)`` sequences.
    """
    entries: builtins.list[builtins.list[str]] = []
    for column in columns:
        if isinstance(column, Column):
            entry = [column.name, column.type]
            if column.alias:
                entry.append(column.alias)
        elif isinstance(column, str) or not 2 <= len(column) <= 3:
            raise ValueError(f"a column is (name, type) or (name, type, alias), not {column!r}")
        else:
            entry = [str(part) for part in column]
        if not all(entry):
            raise ValueError(f"column name and type must not be empty: {column!r}")
        entries.append(entry)
    return msgspec.json.encode(entries).decode()


class Tables(CoreResource):
    """Tables of the core API: ``/v3/table/...`` (v3-api.md §1.4)."""

    def list(self, database: str) -> Pager[Table]:
        """Every table of ``database``: ``await`` or ``async for`` (one response)."""
        path = f"/v3/table/list/{db_segment(database)}"

        async def fetch() -> builtins.list[Table]:
            return (await self._call("GET", path, TableList)).tables

        return one_page(fetch)

    async def get(self, database: str, table: str) -> Table:
        """``table/show``: one table with its count, schema and settings."""
        path = f"/v3/table/show/{db_segment(database)}/{table_segment(table)}"
        return await self._call("GET", path, Table)

    async def create(
        self,
        database: str,
        table: str,
        *,
        include_v: bool | None = None,
        exist_ok: bool = False,
        **extra: Any,
    ) -> TableRef:
        """Create a log table; Conflict if it exists, unless ``exist_ok``.

        As with databases, only an ``exist_ok`` create is retried: the retry of an applied
        create answers 409.
        """
        path = f"/v3/table/create/{db_segment(database)}/{table_segment(table)}/log"
        form = {"include_v": include_v, **extra}
        known = {"database": database, "table": table}
        try:
            return await call_filled(
                self, "POST", path, TableRef, known, data=form, idempotent=exist_ok
            )
        except Conflict:
            if not exist_ok:
                raise
            return TableRef(database=database, table=table, type="log")

    async def delete(self, database: str, table: str, *, missing_ok: bool = False) -> TableRef:
        """Delete a table; NotFound if it is missing, unless ``missing_ok`` (then retried)."""
        path = f"/v3/table/delete/{db_segment(database)}/{table_segment(table)}"
        known = {"database": database, "table": table}
        try:
            return await call_filled(self, "POST", path, TableRef, known, idempotent=missing_ok)
        except NotFound:
            if not missing_ok:
                raise
            return TableRef(database=database, table=table)

    async def swap(self, database: str, table1: str, table2: str) -> TableSwap:
        """Exchange the contents of two tables; sent once (a repeated swap undoes it)."""
        path = (
            f"/v3/table/swap/{db_segment(database)}/{table_segment(table1)}/{table_segment(table2)}"
        )
        known = {"database": database, "table1": table1, "table2": table2}
        return await call_filled(self, "POST", path, TableSwap, known)

    async def update_schema(
        self, database: str, table: str, *, columns: Iterable[Column | Sequence[str]]
    ) -> TableRef:
        """Replace the table's schema; setting the same schema twice is harmless, so retried."""
        form = {"schema": schema_text(columns)}
        path = f"/v3/table/update-schema/{db_segment(database)}/{table_segment(table)}"
        known = {"database": database, "table": table}
        return await call_filled(self, "POST", path, TableRef, known, data=form, idempotent=True)

    async def update(
        self,
        database: str,
        table: str,
        *,
        expire_days: int | None = None,
        include_v: bool | None = None,
        detect_schema: bool | None = None,
    ) -> TableRef:
        """Change the table's settings (only those given); retried, as setting is idempotent."""
        if expire_days is None and include_v is None and detect_schema is None:
            raise ValueError("give at least one of expire_days, include_v, detect_schema")
        if expire_days is not None and expire_days < 0:
            raise ValueError("expire_days must be >= 0")
        form = {"expire_days": expire_days, "include_v": include_v, "detect_schema": detect_schema}
        path = f"/v3/table/update/{db_segment(database)}/{table_segment(table)}"
        known = {"database": database, "table": table}
        return await call_filled(self, "POST", path, TableRef, known, data=form, idempotent=True)

    async def change_database(self, database: str, table: str, *, destination: str) -> TableRef:
        """Move a table to the database ``destination``; sent once (a repeated move answers
        404)."""
        if not destination:
            raise ValueError("destination database must not be empty")
        form = {"dest_database_name": destination}
        path = f"/v3/table/change_database/{db_segment(database)}/{table_segment(table)}"
        # the answer names the table where it now is (a Ruby spec: {"database": "dst_db"})
        known = {"database": destination, "table": table}
        return await call_filled(self, "POST", path, TableRef, known, data=form)

    async def tail(
        self, database: str, table: str, *, count: int = 30
    ) -> builtins.list[dict[str, Any]]:
        """The most recent ``count`` records of a table, decoded (TD caps the count itself).

        ``table/tail`` answers a plain msgpack stream of maps (v3-api.md §1.4, §3).
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, not {count!r}")
        path = f"/v3/table/tail/{db_segment(database)}/{table_segment(table)}"
        params = {"count": count, "format": "msgpack"}
        response = await self._request("GET", path, params=params)
        decoder = RowDecoder(gzip=False)
        records: builtins.list[dict[str, Any]] = []
        for record in decoder.feed(response.body):
            if not isinstance(record, dict):
                raise DecodeError("table/tail: expected a map per record", snippet=repr(record))
            records.append(record)
        decoder.close()
        return records
