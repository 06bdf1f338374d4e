"""``aiotd databases`` and ``aiotd tables``: what ``td db:list`` and ``td table:list`` show."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aiotd.cli._common import add_common_options
from aiotd.cli._config import make_client
from aiotd.cli._render import Output, plain, show_table, text
from aiotd.models.core import Table

__all__ = ["register", "size_text"]


def register(sub: Any) -> None:
    """Add ``databases`` and ``tables``."""
    p = sub.add_parser("databases", help="the databases the key can see, with their row counts")
    add_common_options(p)
    p.set_defaults(handler=list_databases)

    p = sub.add_parser(
        "tables", help="a database's tables (every database's without DB): type, rows, size"
    )
    p.add_argument("database", nargs="?", metavar="DB", help="the database (default: all)")
    add_common_options(p)
    p.set_defaults(handler=list_tables)


def size_text(size: int | None) -> str:
    """Bytes for people: ``1536`` -> ``1.5 KiB``; ``""`` for None."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # the loop returns at TiB


async def list_databases(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as td:
        databases = await td.databases.list()
    rows: list[list[str]] = []
    for db in sorted(databases, key=lambda d: d.name):
        out.record(db)
        rows.append([db.name, text(db.count), db.permission, text(db.created_at)])
    show_table(out, ["database", "count", "permission", "created"], rows)
    return 0


async def list_tables(args: argparse.Namespace, out: Output) -> int:
    """One database's tables, or every database's (read at once) when none is named."""
    async with make_client(args) as td:
        if args.database is not None:
            names = [str(args.database)]
        else:
            names = sorted(db.name for db in await td.databases.list())
        listed: list[list[Table]] = list(
            await asyncio.gather(*(td.tables.list(name) for name in names))
        )
    rows: list[list[str]] = []
    for database, tables in zip(names, listed, strict=True):
        for table in sorted(tables, key=lambda t: t.name):
            out.record({"database": database, **plain(table)})
            rows.append(
                [
                    database,
                    table.name,
                    text(table.type),
                    text(table.count),
                    size_text(table.estimated_storage_size),
                    text(table.counter_updated_at),
                    text(table.last_log_timestamp),
                    text(table.created_at),
                ]
            )
    columns = ["database", "table", "type", "count", "size", "last_import", "last_log", "created"]
    show_table(out, columns, rows)
    return 0
