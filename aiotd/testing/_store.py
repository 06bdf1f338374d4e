"""Databases and tables: metadata in Python, rows in one SQLite file per database."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiotd.testing._common import APIError, iso_z, td_time
from aiotd.testing._sql import register_functions

__all__ = ["Database", "Store", "Table", "check_name"]

_NAME_RE = re.compile(r"^[a-z0-9_]{3,255}$")
#: A source of a prefilled table's rows: tuples in its column order, ``time`` first.
_Rows = Callable[[], Iterable[tuple[Any, ...]]]


def check_name(kind: str, name: str) -> None:
    """TD names: 3..255 of lower-case letters, digits and ``_``; anything else is a 400."""
    if not _NAME_RE.match(name):
        raise APIError(
            400,
            f"Name must be 3 to 255 characters long and only contain lower case letters, "
            f"numbers and '_': {kind} {name!r}",
        )


def _q(ident: str) -> str:
    """Quote an SQLite identifier."""
    return '"' + ident.replace('"', '""') + '"'


def _td_type(value: Any) -> str:
    """TD schema type of a Python value from an imported record."""
    if isinstance(value, (bool, int)):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, (list, tuple)):
        return "array<string>"
    if isinstance(value, dict):
        return "map<string,string>"
    return "string"


def _sql_value(value: Any) -> Any:
    """A record value as SQLite stores it (containers as JSON text, bytes as text)."""
    if value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, default=str)


@dataclass
class Table:
    """A TD log table; its rows live in the database's SQLite file under the same name."""

    id: int
    name: str
    database: str
    created_at: float
    updated_at: float
    count: int = 0
    estimated_storage_size: int = 0
    counter_updated_at: float | None = None
    last_log_timestamp: float | None = None
    include_v: bool = True
    expire_days: int | None = None
    delete_protected: bool = False
    detect_schema: bool = True
    schema: list[list[str]] = field(default_factory=list)
    columns: set[str] = field(default_factory=lambda: {"time"})

    def to_json(self) -> dict[str, Any]:
        """The table object of ``table/list`` and ``table/show`` (v3-api §1.4)."""
        return {
            "id": self.id,
            "name": self.name,
            "estimated_storage_size": self.estimated_storage_size,
            "counter_updated_at": iso_z(self.counter_updated_at),
            "last_log_timestamp": iso_z(self.last_log_timestamp),
            "delete_protected": self.delete_protected,
            "created_at": td_time(self.created_at),
            "updated_at": td_time(self.updated_at),
            "type": "log",
            "count": self.count,
            "schema": json.dumps(self.schema),
            "expire_days": self.expire_days,
            "include_v": self.include_v,
        }


@dataclass
class Database:
    """A TD database: its tables and the SQLite connection holding their rows."""

    name: str
    id: int
    path: Path
    conn: sqlite3.Connection
    created_at: float
    updated_at: float
    tables: dict[str, Table] = field(default_factory=dict)
    attached: set[str] = field(default_factory=set)
    permission: str = "administrator"

    def to_json(self) -> dict[str, Any]:
        """The database object of ``database/list`` (v3-api §1.3, samples/v3/database_list.json)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "created_at": td_time(self.created_at),
            "updated_at": td_time(self.updated_at),
            "count": sum(t.count for t in self.tables.values()),
            "organization": None,
            "permission": self.permission,
            "delete_protected": False,
        }


class Store:
    """All databases and tables of one emulator, with SQL over their rows."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.databases: dict[str, Database] = {}
        self._next_db_id = 1
        self._next_table_id = 1
        #: Rows still to write, per database: (table, columns, row source).
        self._pending: dict[str, list[tuple[str, list[str], _Rows]]] = {}

    def close(self) -> None:
        """Close every SQLite connection (the files go with the emulator's temp dir)."""
        for db in self.databases.values():
            db.conn.close()
        self.databases.clear()

    # -- databases -------------------------------------------------------------------------

    def database(self, name: str) -> Database:
        """The database ``name`` or a 404 as TD words it."""
        db = self.databases.get(name)
        if db is None:
            raise APIError(404, f"Database '{name}' does not exist")
        if name in self._pending:
            self._write_pending(db)
        return db

    def writable(self, name: str) -> Database:
        """The database ``name`` if its rows and tables may change, else a 403."""
        db = self.database(name)
        if db.permission == "query_only":
            raise APIError(403, f"Access denied for the database {name}")
        return db

    def create_database(
        self, name: str, *, created_at: float | None = None, permission: str = "administrator"
    ) -> Database:
        """Create a database; 400 on a bad name, 409 if it exists."""
        check_name("database", name)
        if name in self.databases:
            raise APIError(409, f"Database {name} already exists")
        db_id = self._next_db_id
        self._next_db_id += 1
        path = self.directory / f"db{db_id}.sqlite"
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        register_functions(conn)
        now = time.time() if created_at is None else created_at
        db = Database(
            name=name,
            id=db_id,
            path=path,
            conn=conn,
            created_at=now,
            updated_at=now,
            permission=permission,
        )
        self.databases[name] = db
        return db

    def delete_database(self, name: str) -> Database:
        """Delete a database and its rows; 404 if missing."""
        db = self.writable(name)
        del self.databases[name]
        for other in self.databases.values():
            if name in other.attached:
                other.conn.execute("DETACH DATABASE " + _q(name))
                other.attached.discard(name)
        db.conn.close()
        db.path.unlink(missing_ok=True)
        return db

    # -- tables ----------------------------------------------------------------------------

    def table(self, db_name: str, name: str) -> Table:
        """The table ``db.name`` or a 404."""
        db = self.database(db_name)
        table = db.tables.get(name)
        if table is None:
            raise APIError(404, f"Table '{name}' does not exist in database '{db_name}'")
        return table

    def create_table(self, db_name: str, name: str, *, include_v: bool = True) -> Table:
        """Create a log table with only its ``time`` column; 404/400/409 as TD."""
        db = self.writable(db_name)
        check_name("table", name)
        if name in db.tables:
            raise APIError(409, f"Table {name} already exists")
        now = time.time()
        table = Table(
            id=self._next_table_id,
            name=name,
            database=db_name,
            created_at=now,
            updated_at=now,
            include_v=include_v,
        )
        self._next_table_id += 1
        db.conn.execute(f"CREATE TABLE {_q(name)} (time INTEGER)")
        db.tables[name] = table
        return table

    def add_prefilled_table(
        self,
        db_name: str,
        name: str,
        *,
        schema: list[list[str]],
        count: int,
        created_at: float,
        last_log_timestamp: float,
        rows: _Rows,
    ) -> Table:
        """A table whose ``count`` rows come from ``rows()``, written when the database is first
        used (``rows()`` yields ``time`` then the ``schema`` columns, and exactly ``count``)."""
        db = self.databases[db_name]
        columns = ["time", *(entry[0] for entry in schema)]
        table = Table(
            id=self._next_table_id,
            name=name,
            database=db_name,
            created_at=created_at,
            updated_at=created_at,
            count=count,
            estimated_storage_size=count * 16 * len(columns),
            counter_updated_at=created_at,
            last_log_timestamp=last_log_timestamp,
            schema=[list(entry) for entry in schema],
            columns={c.lower() for c in columns},
        )
        self._next_table_id += 1
        db.tables[name] = table
        self._pending.setdefault(db_name, []).append((name, columns, rows))
        return table

    def _write_pending(self, db: Database) -> None:
        for name, columns, rows in self._pending.pop(db.name):
            db.conn.execute(f"CREATE TABLE {_q(name)} ({', '.join(_q(c) for c in columns)})")
            marks = ", ".join("?" for _ in columns)
            with db.conn:  # one transaction, not one per row
                db.conn.execute("BEGIN")
                db.conn.executemany(f"INSERT INTO {_q(name)} VALUES ({marks})", rows())

    def delete_table(self, db_name: str, name: str) -> Table:
        """Drop a table and its rows."""
        db = self.writable(db_name)
        table = self.table(db_name, name)
        db.conn.execute(f"DROP TABLE {_q(name)}")
        del db.tables[name]
        return table

    def swap_tables(self, db_name: str, name1: str, name2: str) -> None:
        """Exchange the contents of two tables (names stay, rows and schemas move)."""
        db = self.writable(db_name)
        t1, t2 = self.table(db_name, name1), self.table(db_name, name2)
        tmp = "__aiotd_swap__"
        db.conn.execute(f"ALTER TABLE {_q(name1)} RENAME TO {_q(tmp)}")
        db.conn.execute(f"ALTER TABLE {_q(name2)} RENAME TO {_q(name1)}")
        db.conn.execute(f"ALTER TABLE {_q(tmp)} RENAME TO {_q(name2)}")
        moved = ("count", "estimated_storage_size", "schema", "columns", "last_log_timestamp")
        for attr in moved:
            a, b = getattr(t1, attr), getattr(t2, attr)
            setattr(t1, attr, b)
            setattr(t2, attr, a)
        now = time.time()
        t1.updated_at = t2.updated_at = now

    def change_database(self, db_name: str, name: str, dest_name: str) -> Table:
        """Move a table to another database; 404 for a missing destination, 403 if taken."""
        src = self.writable(db_name)
        table = self.table(db_name, name)
        dest = self.database(dest_name)
        if dest.permission == "query_only":  # samples/v3/error_403_change_database.json
            raise APIError(403, "Access denied for the destination")
        if name in dest.tables:
            raise APIError(403, f"Table {name} already exists in the destination")
        src.conn.execute("ATTACH DATABASE ? AS __aiotd_dest__", (str(dest.path),))
        try:
            src.conn.execute(
                f"CREATE TABLE __aiotd_dest__.{_q(name)} AS SELECT * FROM main.{_q(name)}"
            )
            src.conn.execute(f"DROP TABLE main.{_q(name)}")
        finally:
            src.conn.execute("DETACH DATABASE __aiotd_dest__")
        del src.tables[name]
        table.database = dest_name
        dest.tables[name] = table
        return table

    def update_schema(self, db_name: str, name: str, schema: list[list[str]]) -> Table:
        """Replace the declared schema and add SQLite columns for new names."""
        db = self.writable(db_name)
        table = self.table(db_name, name)
        for entry in schema:
            self._add_column(db, table, entry[0])
        table.schema = [list(entry) for entry in schema]
        table.updated_at = time.time()
        return table

    def _add_column(self, db: Database, table: Table, column: str) -> None:
        if column.lower() in table.columns:
            return
        db.conn.execute(f"ALTER TABLE {_q(table.name)} ADD COLUMN {_q(column)}")
        table.columns.add(column.lower())

    # -- rows ------------------------------------------------------------------------------

    def insert(
        self, db_name: str, name: str, records: Iterable[Mapping[str, Any]], size: int = 0
    ) -> int:
        """Append records (maps) to a table, growing its columns and schema as TD does."""
        db = self.writable(db_name)
        table = self.table(db_name, name)
        now = time.time()
        known = {entry[0].lower() for entry in table.schema}
        count = 0
        max_time = table.last_log_timestamp
        batch: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for record in records:
            row = {str(k): v for k, v in record.items()}
            t = row.get("time")
            if not isinstance(t, int) or isinstance(t, bool):
                t = int(t) if isinstance(t, float) else int(now)
                row["time"] = t
            if max_time is None or t > max_time:
                max_time = float(t)
            for key, value in row.items():
                low = key.lower()
                if low not in table.columns:
                    self._add_column(db, table, key)
                if low != "time" and low not in known and value is not None:
                    if table.detect_schema:
                        table.schema.append([key, _td_type(value)])
                    known.add(low)
            keys = tuple(row)
            batch.setdefault(keys, []).append(tuple(_sql_value(row[k]) for k in keys))
            count += 1
        for keys, rows in batch.items():
            cols = ", ".join(_q(k) for k in keys)
            marks = ", ".join("?" for _ in keys)
            db.conn.executemany(f"INSERT INTO {_q(name)} ({cols}) VALUES ({marks})", rows)
        table.count += count
        table.estimated_storage_size += size
        table.counter_updated_at = now
        table.updated_at = now
        table.last_log_timestamp = max_time
        db.updated_at = now
        return count

    def tail(self, db_name: str, name: str, count: int) -> list[dict[str, Any]]:
        """The last ``count`` records of a table as maps (nulls left out)."""
        db = self.database(db_name)
        self.table(db_name, name)
        cur = db.conn.execute(f"SELECT * FROM {_q(name)} ORDER BY rowid DESC LIMIT ?", (count,))
        cols = [d[0] for d in cur.description]
        return [{c: v for c, v in zip(cols, row, strict=True) if v is not None} for row in cur]

    def query(self, db_name: str, sql: str) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
        """Run ``sql`` on the database's SQLite file; other databases are reachable as ``db.t``."""
        db = self.database(db_name)
        for other in self.databases.values():
            if other.name in db.attached or other.name in ("main", "temp"):
                continue
            if re.search(r"\b" + re.escape(other.name) + r"\s*\.", sql):
                if other.name in self._pending:
                    self._write_pending(other)
                db.conn.execute("ATTACH DATABASE ? AS " + _q(other.name), (str(other.path),))
                db.attached.add(other.name)
        cur = db.conn.execute(sql)
        names = [d[0] for d in (cur.description or [])]
        return names, iter(cur)
