"""Types between TD and DuckDB: TD table schemas as DuckDB column types, DuckDB result types as
the engine type names of ``hive_result_schema``, and result values as TD sends them.

Presto/Trino name types ``bigint``, ``double``, ``varchar``, ``boolean``, ``array(varchar)``,
``map(varchar, bigint)``, ``row(a bigint, b varchar)``, ``timestamp(3)``; Hive names them
``bigint``, ``double``, ``string``, ``boolean``, ``array<string>``, ``map<string,bigint>``,
``struct<a:bigint,b:string>`` (v3-api.md §2: "Types are engine type names"). Values go out as
msgpack types (v3-api.md §3): numbers, strings, nil, arrays and maps; dates, times and decimals
as the text the engines print.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DuckType",
    "engine_type",
    "parse_duck_type",
    "schema_type",
    "storage_type",
    "value_converter",
]

Convert = Callable[[Any], Any]


@dataclass(frozen=True)
class DuckType:
    """A parsed DuckDB type: ``name`` (upper case), ``params`` (DECIMAL's), ``children``
    (LIST: one; MAP: key, value; STRUCT: the fields, named by ``fields``)."""

    name: str
    params: tuple[int, ...] = ()
    children: tuple[DuckType, ...] = ()
    fields: tuple[str, ...] = ()


_ALIASES = {
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
    "TIME WITH TIME ZONE": "TIMETZ",
    "TIMESTAMP_S": "TIMESTAMP",
    "TIMESTAMP_MS": "TIMESTAMP",
    "TIMESTAMP_NS": "TIMESTAMP",
    "TIMESTAMP_US": "TIMESTAMP",
    "STRING": "VARCHAR",
    "TEXT": "VARCHAR",
    "INT": "INTEGER",
    "INT4": "INTEGER",
    "INT8": "BIGINT",
    "LONG": "BIGINT",
    "BOOL": "BOOLEAN",
    "FLOAT4": "FLOAT",
    "REAL": "FLOAT",
    "FLOAT8": "DOUBLE",
    "BYTEA": "BLOB",
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        rest = self.text[self.pos :].lstrip()
        return rest[:1]

    def take(self, char: str) -> None:
        rest = self.text[self.pos :]
        stripped = rest.lstrip()
        if not stripped.startswith(char):
            raise ValueError(f"bad DuckDB type {self.text!r} at {self.pos}")
        self.pos += len(rest) - len(stripped) + 1

    def word(self) -> str:
        match = re.compile(r'\s*("(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_]*)').match(self.text, self.pos)
        if match is None:
            raise ValueError(f"bad DuckDB type {self.text!r} at {self.pos}")
        self.pos = match.end()
        word = match.group(1)
        return word[1:-1].replace('""', '"') if word.startswith('"') else word

    def number(self) -> int:
        match = re.compile(r"\s*(\d+)").match(self.text, self.pos)
        if match is None:
            raise ValueError(f"bad DuckDB type {self.text!r} at {self.pos}")
        self.pos = match.end()
        return int(match.group(1))

    def type(self) -> DuckType:
        name = self.word().upper()
        # multi-word names: TIMESTAMP WITH TIME ZONE, DOUBLE PRECISION
        while True:
            match = re.compile(r"\s+(WITH|TIME|ZONE|PRECISION|VARYING)\b", re.I).match(
                self.text, self.pos
            )
            if match is None:
                break
            self.pos = match.end()
            name += " " + match.group(1).upper()
        name = _ALIASES.get(name, name)
        if name == "DOUBLE PRECISION":
            name = "DOUBLE"
        result = DuckType(name)
        if self.peek() == "(":
            self.take("(")
            if name in ("STRUCT", "UNION"):
                names: list[str] = []
                kids: list[DuckType] = []
                while True:
                    names.append(self.word())
                    kids.append(self.type())
                    if self.peek() != ",":
                        break
                    self.take(",")
                result = DuckType(name, children=tuple(kids), fields=tuple(names))
            elif name in ("MAP", "LIST"):
                kids = [self.type()]
                while self.peek() == ",":
                    self.take(",")
                    kids.append(self.type())
                result = DuckType(name, children=tuple(kids))
            else:
                params = [self.number()]
                while self.peek() == ",":
                    self.take(",")
                    params.append(self.number())
                result = DuckType(name, params=tuple(params))
            self.take(")")
        while self.peek() == "[":
            self.take("[")
            if self.peek() != "]":
                self.number()  # fixed-size ARRAY: same values as a LIST
            self.take("]")
            result = DuckType("LIST", children=(result,))
        return result


def parse_duck_type(text: str) -> DuckType:
    """Parse DuckDB's spelling of a type (``str()`` of a result column's type)."""
    parser = _Parser(text)
    parsed = parser.type()
    if parser.text[parser.pos :].strip():
        raise ValueError(f"bad DuckDB type {text!r}")
    return parsed


_INTEGERS = {"BIGINT", "HUGEINT", "UBIGINT", "UHUGEINT", "UINTEGER", "INTEGER"}
_PRESTO = {
    "BIGINT": "bigint",
    "HUGEINT": "bigint",
    "UBIGINT": "bigint",
    "UHUGEINT": "bigint",
    "UINTEGER": "bigint",
    "INTEGER": "integer",
    "USMALLINT": "integer",
    "SMALLINT": "smallint",
    "UTINYINT": "smallint",
    "TINYINT": "tinyint",
    "DOUBLE": "double",
    "FLOAT": "real",
    "BOOLEAN": "boolean",
    "VARCHAR": "varchar",
    "BLOB": "varbinary",
    "DATE": "date",
    "TIME": "time(3)",
    "TIMETZ": "time(3) with time zone",
    "TIMESTAMP": "timestamp(3)",
    "TIMESTAMPTZ": "timestamp(3) with time zone",
    "UUID": "uuid",
    "JSON": "json",
    "INTERVAL": "interval day to second",
    '"NULL"': "unknown",
    "NULL": "unknown",
}
_HIVE = {
    "BIGINT": "bigint",
    "HUGEINT": "bigint",
    "UBIGINT": "bigint",
    "UHUGEINT": "bigint",
    "UINTEGER": "bigint",
    "INTEGER": "int",
    "USMALLINT": "int",
    "SMALLINT": "smallint",
    "UTINYINT": "smallint",
    "TINYINT": "tinyint",
    "DOUBLE": "double",
    "FLOAT": "float",
    "BOOLEAN": "boolean",
    "BLOB": "binary",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMPTZ": "timestamp",
    "NULL": "void",
}


def engine_type(t: DuckType, hive: bool) -> str:
    """The ``hive_result_schema`` type name TD's Presto/Trino (or Hive) gives ``t``."""
    if t.name == "LIST":
        inner = engine_type(t.children[0], hive)
        return f"array<{inner}>" if hive else f"array({inner})"
    if t.name == "MAP":
        key, value = (engine_type(c, hive) for c in t.children)
        return f"map<{key},{value}>" if hive else f"map({key}, {value})"
    if t.name == "STRUCT":
        parts = [(f, engine_type(c, hive)) for f, c in zip(t.fields, t.children, strict=True)]
        if hive:
            return "struct<" + ",".join(f"{f}:{c}" for f, c in parts) + ">"
        return "row(" + ", ".join(f"{f} {c}" for f, c in parts) + ")"
    if t.name == "DECIMAL":
        precision = t.params[0] if t.params else 18
        scale = t.params[1] if len(t.params) > 1 else 0
        return f"decimal({precision},{scale})"
    names = _HIVE if hive else _PRESTO
    return names.get(t.name, "string" if hive else "varchar")


def _timestamp(hive: bool) -> Convert:
    def convert(v: dt.datetime) -> str:
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc)
            text = v.strftime("%Y-%m-%d %H:%M:%S")
            return text if hive else f"{text}.{v.microsecond // 1000:03d} UTC"
        text = v.strftime("%Y-%m-%d %H:%M:%S")
        if hive:
            return text + (f".{v.microsecond:06d}".rstrip("0") if v.microsecond else "")
        return f"{text}.{v.microsecond // 1000:03d}"

    return convert


def _interval(v: dt.timedelta) -> str:
    seconds = v.days * 86400 + v.seconds
    sign = "-" if seconds < 0 else ""
    days, rest = divmod(abs(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{days} {hours:02d}:{minutes:02d}:{secs:02d}.{v.microseconds // 1000:03d}"


def _text(v: Any) -> str:
    return str(v)


def value_converter(t: DuckType, hive: bool) -> Convert | None:
    """A function turning a fetched value of type ``t`` into what TD sends, or None when the
    value goes out as fetched (ints, floats, strings, bools, bytes and lists/maps of them)."""
    name = t.name
    if name in ("TIMESTAMP", "TIMESTAMPTZ"):
        stamp = _timestamp(hive)
        return lambda v: None if v is None else stamp(v)
    if name in ("DATE", "TIME", "TIMETZ"):
        return lambda v: None if v is None else v.isoformat()
    if name == "INTERVAL":
        return lambda v: None if v is None else _interval(v)
    if name in ("DECIMAL", "UUID", "BIT", "VARINT", "BIGNUM"):
        return lambda v: None if v is None else _text(v)
    if name == "LIST":
        inner = value_converter(t.children[0], hive)
        if inner is None:
            return None
        element = inner
        return lambda v: None if v is None else [element(x) for x in v]
    if name == "MAP":
        key = value_converter(t.children[0], hive) or (lambda x: x)
        value = value_converter(t.children[1], hive) or (lambda x: x)
        return lambda v: None if v is None else {key(k): value(x) for k, x in v.items()}
    if name == "STRUCT":
        fields = [(f, value_converter(c, hive)) for f, c in zip(t.fields, t.children, strict=True)]

        def struct(v: Any) -> Any:
            if v is None:
                return None
            values = {f: (c(v[f]) if c is not None else v[f]) for f, c in fields}
            return values if hive else list(values.values())

        return struct
    if name not in _PRESTO and name not in ("VARCHAR", "DOUBLE", "BLOB", "BOOLEAN"):
        return lambda v: None if v is None else _plain(v)
    return None


def _plain(v: Any) -> Any:
    """A value of a type without a TD counterpart: kept if msgpack can carry it, else text."""
    if isinstance(v, (int, float, str, bytes, bool)):
        return v
    if isinstance(v, (decimal.Decimal, uuid.UUID, dt.date, dt.time, dt.timedelta)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {_plain(k): _plain(x) for k, x in v.items()}
    return str(v)


# -- TD table schemas --------------------------------------------------------------------

_SCHEMA_SCALARS = {
    "int": "BIGINT",
    "long": "BIGINT",
    "bigint": "BIGINT",
    "integer": "BIGINT",
    "smallint": "BIGINT",
    "tinyint": "BIGINT",
    "double": "DOUBLE",
    "float": "DOUBLE",
    "real": "DOUBLE",
    "decimal": "DOUBLE",
    "string": "VARCHAR",
    "varchar": "VARCHAR",
    "char": "VARCHAR",
    "boolean": "BOOLEAN",
}


def _split_top(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "<(":
            depth += 1
        elif char in ">)":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def storage_type(td_type: str) -> str:
    """The DuckDB column type holding a TD schema type (``long``, ``array<string>``, or a
    Presto spelling from ``CREATE TABLE``); unknown names are VARCHAR."""
    text = td_type.strip().lower()
    match = re.fullmatch(r"(array|map)\s*[<(](.*)[>)]", text, re.DOTALL)
    if match:
        kind, inner = match.groups()
        args = _split_top(inner)
        if kind == "array" and len(args) == 1:
            return f"{storage_type(args[0])}[]"
        if kind == "map" and len(args) == 2:
            return f"MAP({storage_type(args[0])}, {storage_type(args[1])})"
        return "VARCHAR"
    base = re.sub(r"\(.*\)$", "", text).strip()
    return _SCHEMA_SCALARS.get(base, "VARCHAR")


def schema_type(t: DuckType) -> str:
    """The TD schema type of a column written from a result of type ``t`` (CTAS, INSERT)."""
    if t.name in _INTEGERS or t.name in ("SMALLINT", "TINYINT", "USMALLINT", "UTINYINT"):
        return "long"
    if t.name in ("DOUBLE", "FLOAT", "DECIMAL"):
        return "double"
    if t.name == "BOOLEAN":
        return "boolean"
    if t.name == "LIST":
        return f"array<{schema_type(t.children[0])}>"
    if t.name == "MAP":
        return f"map<{schema_type(t.children[0])},{schema_type(t.children[1])}>"
    return "string"
