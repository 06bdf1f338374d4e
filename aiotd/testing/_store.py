"""Databases and tables: metadata in Python, rows in DuckDB.

Every emulator has its own in-memory DuckDB catalog (attached to one DuckDB instance per
process, so that starting an emulator costs no new database instance) with a schema per TD
database and a table per TD table. DuckDB is opened on first need: an emulator whose tables
never hold rows and that runs no SQL never touches it. Access goes through one lock per store,
so the event loop, a background serving thread and direct calls from a test can share it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from aiotd.testing._common import APIError, iso_z, td_time
from aiotd.testing._sql_types import DuckType, parse_duck_type, schema_type, storage_type

__all__ = ["Database", "Store", "Table", "check_name", "duckdb_error"]

_NAME_RE = re.compile(r"^[a-z0-9_]{3,255}$")
#: A source of a prefilled table's rows: tuples in its column order, ``time`` first.
_Rows = Callable[[], Iterable[tuple[Any, ...]]]
#: Value types the JSON path carries as they are (others are converted to text first).
_JSON_TYPES = frozenset((type(None), int, float, str, bool, list, dict))


def check_name(kind: str, name: str) -> None:
    """TD names: 3..255 of lower-case letters, digits and ``_``; anything else is a 400."""
    if not _NAME_RE.match(name):
        raise APIError(
            400,
            f"Name must be 3 to 255 characters long and only contain lower case letters, "
            f"numbers and '_': {kind} {name!r}",
        )


def _q(ident: str) -> str:
    """Quote a DuckDB identifier."""
    return '"' + ident.replace('"', '""') + '"'


def _lit(text: str) -> str:
    """Quote a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


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


def _as_text(value: Any) -> Any:
    """A value JSON cannot carry as it is: bytes as UTF-8 text, anything else as its text."""
    if value is None or type(value) in _JSON_TYPES:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, tuple):
        return [_as_text(v) for v in value]
    return str(value)


def duckdb_error() -> type[Exception]:
    """DuckDB's base exception class."""
    import duckdb

    error: type[Exception] = duckdb.Error
    return error


class _Instance:
    """The process's DuckDB instance: each store takes a cursor and attaches its catalog."""

    lock = threading.Lock()
    conn: Any = None
    pid = 0
    ids = itertools.count(1)

    @classmethod
    def cursor(cls) -> tuple[Any, str]:
        import duckdb

        from aiotd.testing._sql import register_functions

        with cls.lock:
            if cls.conn is None or cls.pid != os.getpid():
                spill = Path(tempfile.gettempdir()) / f"aiotd-duckdb-{os.getpid()}"
                cls.conn = duckdb.connect(":memory:", config={"temp_directory": str(spill)})
                register_functions(cls.conn)
                cls.pid = os.getpid()
            cursor = cls.conn.cursor()
            catalog = f"aiotd_emulator_{next(cls.ids)}"
        cursor.execute(f"ATTACH ':memory:' AS {_q(catalog)}")
        cursor.execute("SET TimeZone = 'UTC'")
        return cursor, catalog


@dataclass
class Table:
    """A TD log table; its rows live in DuckDB under the same name, in its database's schema.

    ``columns`` maps each column's lower-case name to (name, DuckDB type), in table order.
    """

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
    columns: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"time": ("time", "BIGINT")}
    )

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
    """A TD database: its tables (a DuckDB schema of the same name holds their rows)."""

    name: str
    id: int
    created_at: float
    updated_at: float
    tables: dict[str, Table] = field(default_factory=dict)
    permission: str = "administrator"
    #: Prefilled tables whose rows are still to be written: (table, columns, row source).
    pending: list[tuple[str, list[str], _Rows]] = field(default_factory=list)

    @property
    def rows_written(self) -> bool:
        """Whether every prefilled table of this database holds its rows."""
        return not self.pending

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


@dataclass
class Written:
    """What a write statement did: rows written (or deleted)."""

    rows: int


class Store:
    """All databases and tables of one emulator, with SQL over their rows."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.databases: dict[str, Database] = {}
        self._next_db_id = 1
        self._next_table_id = 1
        self._lock = threading.RLock()
        self._cursor: Any = None
        self.catalog = ""
        self._files = itertools.count(1)

    def close(self) -> None:
        """Drop this emulator's DuckDB catalog."""
        with self._lock:
            cursor, self._cursor = self._cursor, None
            if cursor is not None:
                try:
                    cursor.execute(f"DETACH {_q(self.catalog)}")
                finally:
                    cursor.close()
        self.databases.clear()

    # -- DuckDB ----------------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        """Held around every use of the DuckDB cursor."""
        return self._lock

    def duck(self) -> Any:
        """The store's DuckDB cursor, opened (with every known schema and table) on first use.

        Call with ``lock`` held.
        """
        if self._cursor is None:
            cursor, catalog = _Instance.cursor()
            self._cursor, self.catalog = cursor, catalog
            for db in self.databases.values():
                self._create_schema(db.name)
                for table in db.tables.values():
                    self._create_table(table)
        return self._cursor

    def ref(self, db_name: str, table: str) -> str:
        """The DuckDB name of a table."""
        return f"{_q(self.catalog)}.{_q(db_name)}.{_q(table)}"

    def _create_schema(self, name: str) -> None:
        self._cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(self.catalog)}.{_q(name)}")

    def _create_table(self, table: Table) -> None:
        columns = ", ".join(f"{_q(n)} {t}" for n, t in table.columns.values())
        self._cursor.execute(f"CREATE TABLE {self.ref(table.database, table.name)} ({columns})")

    def _ddl(self, sql: str) -> None:
        """Run DDL when DuckDB is open (otherwise the metadata is created with it later)."""
        if self._cursor is not None:
            self._cursor.execute(sql)

    # -- databases -------------------------------------------------------------------------

    def database(self, name: str) -> Database:
        """The database ``name`` or a 404 as TD words it."""
        db = self.databases.get(name)
        if db is None:
            raise APIError(404, f"Database '{name}' does not exist")
        return db

    def loaded(self, name: str) -> Database:
        """The database ``name`` with its prefilled rows written (DuckDB open); lock held."""
        db = self.database(name)
        self.duck()
        while db.pending:
            table_name, columns, rows = db.pending.pop(0)
            table = db.tables.get(table_name)
            if table is None:
                continue
            records = [dict(zip(columns, row, strict=True)) for row in rows()]
            self._append(db, table, records, update_counts=False)
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
        with self._lock:
            if name in self.databases:
                raise APIError(409, f"Database {name} already exists")
            db_id = self._next_db_id
            self._next_db_id += 1
            now = time.time() if created_at is None else created_at
            db = Database(
                name=name, id=db_id, created_at=now, updated_at=now, permission=permission
            )
            self.databases[name] = db
            if self._cursor is not None:
                self._create_schema(name)
            return db

    def delete_database(self, name: str) -> Database:
        """Delete a database and its rows; 404 if missing."""
        with self._lock:
            db = self.writable(name)
            del self.databases[name]
            if self._cursor is not None:
                for table in db.tables:
                    self._cursor.execute(f"DROP TABLE IF EXISTS {self.ref(name, table)}")
                if name != "main":  # DuckDB's default schema stays
                    self._cursor.execute(f"DROP SCHEMA IF EXISTS {_q(self.catalog)}.{_q(name)}")
            return db

    # -- tables ----------------------------------------------------------------------------

    def table(self, db_name: str, name: str) -> Table:
        """The table ``db.name`` or a 404."""
        db = self.database(db_name)
        table = db.tables.get(name)
        if table is None:
            raise APIError(404, f"Table '{name}' does not exist in database '{db_name}'")
        return table

    def create_table(
        self,
        db_name: str,
        name: str,
        *,
        include_v: bool = True,
        schema: list[list[str]] | None = None,
    ) -> Table:
        """Create a log table (its ``time`` column, and ``schema``'s); 404/400/409 as TD."""
        with self._lock:
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
            for column, td_type in schema or []:
                if column.lower() != "time":
                    table.schema.append([column, td_type])
                    table.columns[column.lower()] = (column, storage_type(td_type))
            self._next_table_id += 1
            db.tables[name] = table
            if self._cursor is not None:
                self._create_table(table)
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
        with self._lock:
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
            )
            for column, td_type in schema:
                table.columns[column.lower()] = (column, storage_type(td_type))
            self._next_table_id += 1
            db.tables[name] = table
            db.pending.append((name, columns, rows))
            if self._cursor is not None:
                self._create_table(table)
            return table

    def delete_table(self, db_name: str, name: str) -> Table:
        """Drop a table and its rows."""
        with self._lock:
            self.writable(db_name)
            table = self.table(db_name, name)
            self._ddl(f"DROP TABLE IF EXISTS {self.ref(db_name, name)}")
            del self.databases[db_name].tables[name]
            return table

    def swap_tables(self, db_name: str, name1: str, name2: str) -> None:
        """Exchange the contents of two tables (names stay, rows and schemas move)."""
        with self._lock:
            self.writable(db_name)
            t1, t2 = self.table(db_name, name1), self.table(db_name, name2)
            if self._cursor is not None:
                tmp = "__aiotd_swap__"
                self._cursor.execute(f"ALTER TABLE {self.ref(db_name, name1)} RENAME TO {_q(tmp)}")
                self._cursor.execute(
                    f"ALTER TABLE {self.ref(db_name, name2)} RENAME TO {_q(name1)}"
                )
                self._cursor.execute(f"ALTER TABLE {self.ref(db_name, tmp)} RENAME TO {_q(name2)}")
            moved = ("count", "estimated_storage_size", "schema", "columns", "last_log_timestamp")
            for attr in moved:
                a, b = getattr(t1, attr), getattr(t2, attr)
                setattr(t1, attr, b)
                setattr(t2, attr, a)
            now = time.time()
            t1.updated_at = t2.updated_at = now

    def change_database(self, db_name: str, name: str, dest_name: str) -> Table:
        """Move a table to another database; 404 for a missing destination, 403 if taken."""
        with self._lock:
            src = self.writable(db_name)
            table = self.table(db_name, name)
            dest = self.database(dest_name)
            if dest.permission == "query_only":  # samples/v3/error_403_change_database.json
                raise APIError(403, "Access denied for the destination")
            if name in dest.tables:
                raise APIError(403, f"Table {name} already exists in the destination")
            if self._cursor is not None:
                self._cursor.execute(
                    f"CREATE TABLE {self.ref(dest_name, name)} AS "
                    f"SELECT * FROM {self.ref(db_name, name)}"
                )
                self._cursor.execute(f"DROP TABLE {self.ref(db_name, name)}")
            del src.tables[name]
            table.database = dest_name
            dest.tables[name] = table
            return table

    def update_schema(self, db_name: str, name: str, schema: list[list[str]]) -> Table:
        """Replace the declared schema: new names become columns, changed types are converted
        (values that do not convert read as NULL, as TD reads them through the new schema)."""
        with self._lock:
            self.writable(db_name)
            table = self.table(db_name, name)
            for entry in schema:
                column, wanted = entry[0], storage_type(entry[1])
                known = table.columns.get(column.lower())
                if known is None:
                    self._add_column(table, column, wanted)
                elif known[1] != wanted and column.lower() != "time":
                    self._ddl(
                        f"ALTER TABLE {self.ref(db_name, name)} ALTER {_q(known[0])} "
                        f"SET DATA TYPE {wanted} USING TRY_CAST({_q(known[0])} AS {wanted})"
                    )
                    table.columns[column.lower()] = (known[0], wanted)
            table.schema = [list(entry) for entry in schema]
            table.updated_at = time.time()
            return table

    def _add_column(self, table: Table, column: str, duck_type: str) -> None:
        if column.lower() in table.columns:
            return
        ref = self.ref(table.database, table.name)
        self._ddl(f"ALTER TABLE {ref} ADD COLUMN {_q(column)} {duck_type}")
        table.columns[column.lower()] = (column, duck_type)

    # -- rows ------------------------------------------------------------------------------

    def insert(
        self, db_name: str, name: str, records: Iterable[Mapping[str, Any]], size: int = 0
    ) -> int:
        """Append records (maps) to a table, growing its columns and schema as TD does."""
        with self._lock:
            db = self.writable(db_name)
            table = self.table(db_name, name)
            self.duck()
            rows = [r if type(r) is dict else dict(r) for r in records]
            count = self._append(db, table, rows)
            table.estimated_storage_size += size
            return count

    def _append(
        self,
        db: Database,
        table: Table,
        records: list[dict[str, Any]],
        *,
        update_counts: bool = True,
    ) -> int:
        """Write records through newline-delimited JSON read by DuckDB (columnar, parallel)."""
        if not records:
            return 0
        now = int(time.time())
        keys: dict[str, None] = dict.fromkeys(itertools.chain.from_iterable(records))
        if not all(type(k) is str for k in keys):
            records = [{str(k): v for k, v in r.items()} for r in records]
            keys = dict.fromkeys(itertools.chain.from_iterable(records))
        known = {entry[0].lower() for entry in table.schema}
        chosen: dict[str, str] = {}  # lower-case column -> the key that fills it
        for key in keys:
            low = key.lower()
            if low in chosen:
                continue
            chosen[low] = key
            values = [r.get(key) for r in records]
            if not set(map(type, values)) <= _JSON_TYPES:
                for record in records:
                    if key in record:
                        record[key] = _as_text(record[key])
            if low == "time":
                continue
            if low not in table.columns or low not in known:
                first = next((v for v in values if v is not None), None)
                td_type = _td_type(first) if first is not None else "string"
                if low not in table.columns:
                    self._add_column(table, key, storage_type(td_type))
                if low not in known and first is not None:
                    if table.detect_schema:
                        table.schema.append([key, td_type])
                    known.add(low)
        time_key = chosen.get("time")
        times = [r.get(time_key) for r in records] if time_key else []
        if not time_key or not set(map(type, times)) <= {int}:
            for record in records:
                t = record.pop(time_key, None) if time_key else None
                if isinstance(t, float):
                    t = int(t)
                elif not isinstance(t, int) or isinstance(t, bool):
                    try:
                        t = int(str(t)) if t is not None else now
                    except ValueError:
                        t = now
                record["time"] = t
            time_key = "time"
            chosen["time"] = "time"
            times = [r["time"] for r in records]
        path = self.directory / f"import-{next(self._files)}.ndjson"
        try:
            path.write_bytes(msgspec.json.Encoder().encode_lines(records))
            reads: list[str] = []
            selects: list[str] = []
            targets: list[str] = []
            for low, key in chosen.items():
                column, duck_type = table.columns[low]
                read = "VARCHAR" if duck_type == "VARCHAR" else "JSON"
                reads.append(f"{_lit(key)}: {_lit(read)}")
                value = _q(key) if read == "VARCHAR" else f"TRY_CAST({_q(key)} AS {duck_type})"
                selects.append(value)
                targets.append(_q(column))
            self._cursor.execute(
                f"INSERT INTO {self.ref(db.name, table.name)} ({', '.join(targets)}) "
                f"SELECT {', '.join(selects)} FROM read_json({_lit(str(path))}, "
                f"format = 'newline_delimited', columns = {{{', '.join(reads)}}})"
            )
        finally:
            path.unlink(missing_ok=True)
        if update_counts:
            latest = max((t for t in times if isinstance(t, int)), default=None)
            self._counted(db, table, len(records), latest)
        return len(records)

    def _counted(self, db: Database, table: Table, added: int, max_time: Any) -> None:
        now = time.time()
        table.count = max(table.count + added, 0)
        if isinstance(max_time, (int, float)) and (
            table.last_log_timestamp is None or max_time > table.last_log_timestamp
        ):
            table.last_log_timestamp = float(max_time)
        table.counter_updated_at = now
        table.updated_at = now
        db.updated_at = now

    def tail(self, db_name: str, name: str, count: int) -> list[dict[str, Any]]:
        """The last ``count`` records of a table as maps (nulls left out)."""
        with self._lock:
            self.loaded(db_name)
            self.table(db_name, name)
            cursor = self.duck()
            cursor.execute(
                f"SELECT * FROM {self.ref(db_name, name)} ORDER BY rowid DESC LIMIT {int(count)}"
            )
            cols = [d[0] for d in cursor.description]
            return [
                {c: v for c, v in zip(cols, row, strict=True) if v is not None}
                for row in cursor.fetchall()
            ]

    # -- SQL -------------------------------------------------------------------------------

    def run(
        self,
        db_name: str,
        query: str,
        *,
        engine: str = "presto",
        scheduled: int | None = None,
        sink: Callable[[list[Any]], None] | None = None,
    ) -> list[list[str]] | None:
        """Run one job's statement; rows go to ``sink`` as TD sends them. Returns the result's
        ``hive_result_schema`` (None for a statement without one). SQLError, APIError or
        DuckDB's errors when it cannot run."""
        from aiotd.testing import _sql_exec

        with self._lock:
            return _sql_exec.run(
                self,
                db_name,
                query,
                engine=engine,
                scheduled=int(time.time()) if scheduled is None else scheduled,
                sink=sink,
            )

    def query(
        self, db_name: str, sql: str, *, engine: str = "presto"
    ) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
        """Run a query (in the job's dialect) and return its column names and rows."""
        rows: list[tuple[Any, ...]] = []
        schema = self.run(db_name, sql, engine=engine, sink=lambda row: rows.append(tuple(row)))
        return [c[0] for c in schema or []], iter(rows)

    # -- writes from SQL -----------------------------------------------------------------

    def written_table(
        self, db_name: str, name: str, columns: list[tuple[str, DuckType]], *, when: float
    ) -> Table:
        """Create a table for CTAS: its schema from the result's columns (``time`` aside)."""
        schema = [[n, schema_type(t)] for n, t in columns if n.lower() != "time"]
        table = self.create_table(db_name, name, schema=schema)
        table.created_at = table.updated_at = when
        return table

    def wrote(self, db_name: str, table: Table, added: int, max_time: Any) -> None:
        """Count rows a statement wrote (negative: deleted) into a table's metadata."""
        self._counted(self.database(db_name), table, added, max_time)

    def reset_count(self, table: Table) -> None:
        """A table emptied (INSERT OVERWRITE)."""
        table.count = 0
        table.last_log_timestamp = None

    def parse_type(self, text: str) -> DuckType:
        """DuckDB's spelling of a type, parsed."""
        return parse_duck_type(text)
