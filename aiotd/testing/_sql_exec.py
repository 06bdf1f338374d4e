"""Running a translated statement on the store's DuckDB catalog: queries stream their rows,
typed as TD types them; writes (INSERT, INSERT OVERWRITE, CTAS, CREATE/DROP TABLE, DELETE)
change the emulator's tables and their metadata (schema, count) as TD does.

Called by ``Store.run`` with the store's lock held.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiotd.testing._common import APIError
from aiotd.testing._sql import Plan, SQLError, translate
from aiotd.testing._sql_types import DuckType, engine_type, parse_duck_type, value_converter

if TYPE_CHECKING:
    from aiotd.testing._store import Store, Table

__all__ = ["run"]

Sink = Callable[[list[Any]], None]
_BATCH = 8192
_SCRATCH = "__aiotd_written"
#: Presto answers a write with one row: the number of rows written (Hive with no result).
_ROWS_SCHEMA = [["rows", "bigint"]]


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _clean(message: str, catalog: str) -> str:
    """DuckDB's message without the emulator's internal catalog name."""
    message = message.replace(f'"{catalog}".', "").replace(f"{catalog}.", "")
    return message.replace(catalog, "td").strip()


def run(
    store: Store,
    db_name: str,
    query: str,
    *,
    engine: str,
    scheduled: int,
    sink: Sink | None,
) -> list[list[str]] | None:
    """Run one statement; see ``Store.run``."""
    import duckdb

    store.database(db_name)
    cursor = store.duck()
    plan = translate(
        query, engine=engine, database=db_name, catalog=store.catalog, scheduled=scheduled
    )
    for database, table in sorted(plan.tables):
        if database not in store.databases:
            raise SQLError(f"Schema '{database}' does not exist")
        if table not in store.databases[database].tables:
            raise SQLError(f"Table '{database}.{table}' does not exist")
        store.loaded(database)
    hive = engine == "hive"
    # Presto divides integers as integers; Hive's / always gives a double.
    cursor.execute(f"SET integer_division = {'false' if hive else 'true'}")
    try:
        if plan.kind == "select":
            assert plan.sql is not None
            cursor.execute(plan.sql)
            return _stream(cursor, hive, sink)
        written = _write(store, cursor, plan, db_name, scheduled, hive)
    except duckdb.Error as exc:
        raise SQLError(_clean(str(exc), store.catalog)) from None
    if hive:
        return None
    if sink is not None:
        sink([written])
    return _ROWS_SCHEMA


def _types(cursor: Any) -> list[tuple[str, DuckType]]:
    return [(str(d[0]), parse_duck_type(str(d[1]))) for d in cursor.description or []]


def _stream(cursor: Any, hive: bool, sink: Sink | None) -> list[list[str]]:
    columns = _types(cursor)
    schema = [[name, engine_type(t, hive)] for name, t in columns]
    converters = [value_converter(t, hive) for _, t in columns]
    active = [(i, c) for i, c in enumerate(converters) if c is not None]
    while True:
        batch = cursor.fetchmany(_BATCH)
        if not batch:
            break
        if sink is None:
            continue
        for row in batch:
            values = list(row)
            for index, convert in active:
                values[index] = convert(values[index])
            sink(values)
    return schema


def _target(store: Store, plan: Plan, *, must_exist: bool) -> tuple[str, str, Table | None]:
    assert plan.target is not None
    database, name = plan.target
    try:
        store.writable(database)
    except APIError as exc:
        raise SQLError(exc.message) from None
    store.loaded(database)
    table = store.databases[database].tables.get(name)
    if table is None and must_exist:
        raise SQLError(f"Table '{database}.{name}' does not exist")
    return database, name, table


def _write(store: Store, cursor: Any, plan: Plan, db_name: str, scheduled: int, hive: bool) -> int:
    if plan.kind == "create":
        database, name, table = _target(store, plan, must_exist=False)
        if table is not None:
            if plan.exists:
                return 0
            raise SQLError(f"Table '{database}.{name}' already exists")
        store.create_table(database, name, schema=plan.schema)
        return 0
    if plan.kind == "drop":
        database, name, table = _target(store, plan, must_exist=not plan.exists)
        if table is not None:
            store.delete_table(database, name)
        return 0
    if plan.kind == "delete":
        database, name, table = _target(store, plan, must_exist=True)
        assert table is not None
        where = f" WHERE {plan.sql}" if plan.sql else ""
        cursor.execute(f"DELETE FROM {store.ref(database, name)}{where}")
        deleted = int((cursor.fetchone() or [0])[0])
        store.wrote(database, table, -deleted, None)
        return deleted
    assert plan.sql is not None
    cursor.execute(f"CREATE OR REPLACE TEMP TABLE {_SCRATCH} AS {plan.sql}")
    try:
        cursor.execute(f"SELECT * FROM {_SCRATCH} LIMIT 0")
        columns = _types(cursor)
        names = [n.lower() for n, _ in columns]
        if len(set(names)) != len(names):
            raise SQLError(f"the query names a column twice: {', '.join(names)}")
        if plan.kind == "ctas":
            database, name, table = _target(store, plan, must_exist=False)
            if table is not None:
                if plan.exists:
                    return 0
                raise SQLError(f"Table '{database}.{name}' already exists")
            table = store.written_table(database, name, columns, when=float(scheduled))
            targets = names
        else:
            database, name, table = _target(store, plan, must_exist=True)
            assert table is not None
            targets = _insert_targets(plan, table, names)
        return _copy(store, cursor, database, table, names, targets, scheduled, plan.overwrite)
    finally:
        cursor.execute(f"DROP TABLE IF EXISTS {_SCRATCH}")


def _insert_targets(plan: Plan, table: Table, names: list[str]) -> list[str]:
    """The target column of each selected column: as listed, else by name when every name is
    a column of the table (as pipelines write them), else by position in the table's order."""
    if plan.columns is not None:
        targets = plan.columns
        missing = [c for c in targets if c not in table.columns]
        if missing:
            raise SQLError(f"Insert column name does not exist in target table: {missing[0]}")
    elif all(n in table.columns for n in names):
        targets = names
    else:  # TD's column order: the schema's columns, then time
        order = [c for c in table.columns if c != "time"] + ["time"]
        targets = order[: len(names)]
    if len(targets) != len(names):
        raise SQLError(
            f"Insert query has {len(names)} columns, the target table {table.name} "
            f"{'lists' if plan.columns is not None else 'has'} {len(targets)}"
        )
    return targets


def _copy(
    store: Store,
    cursor: Any,
    database: str,
    table: Table,
    names: list[str],
    targets: list[str],
    scheduled: int,
    overwrite: bool,
) -> int:
    """Insert the scratch table's rows into ``table`` (cast to its column types)."""
    selects, columns = [], []
    time_expr = str(scheduled)
    for source, target in zip(names, targets, strict=True):
        column, duck_type = table.columns[target]
        value = f"TRY_CAST({_q(source)} AS {duck_type})"
        if re.fullmatch(r"VARCHAR", duck_type):
            value = f"CAST({_q(source)} AS VARCHAR)"
        if target == "time":
            value = f"COALESCE({value}, {scheduled})"
            time_expr = value
        selects.append(value)
        columns.append(_q(column))
    if "time" not in targets:
        selects.append(str(scheduled))
        columns.append(_q("time"))
    ref = store.ref(database, table.name)
    if overwrite:
        cursor.execute(f"DELETE FROM {ref}")
        store.reset_count(table)
    cursor.execute(f"SELECT count(*), max({time_expr}) FROM {_SCRATCH}")
    count, max_time = cursor.fetchone() or (0, None)
    cursor.execute(
        f"INSERT INTO {ref} ({', '.join(columns)}) SELECT {', '.join(selects)} FROM {_SCRATCH}"
    )
    store.wrote(database, table, int(count), max_time)
    return int(count)
