"""The emulator's SQL: a job's query, written for Presto/Trino or Hive with TD's functions,
translated with sqlglot into DuckDB's SQL; and the job-control comment.

``translate`` parses the query in its job's dialect (``trino`` for presto/trino jobs, ``hive``
for hive jobs), rewrites what sqlglot leaves to DuckDB unchanged but DuckDB lacks or reads
differently (TD's functions, a few Presto and Hive functions, UNNEST of maps, the names of
unnamed columns), qualifies every table with the emulator's catalog and the job's database,
and says what the statement does: a query, or a write (INSERT, CTAS, CREATE, DROP, DELETE)
that the store applies to the emulator's tables.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from aiotd.testing import _sql_td as td
from aiotd.testing._sql_types import engine_type, parse_duck_type

#: A sqlglot node (its class names differ between sqlglot versions).
Node = Any

__all__ = ["JobControl", "Plan", "SQLError", "dialect_of", "parse_control", "translate"]

_CONTROL_RE = re.compile(r"^\s*--\s*emulator:(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class JobControl:
    """Settings read from a ``-- emulator: key=value ...`` comment in a query."""

    queued: float | None = None
    booting: float | None = None
    running: float | None = None
    status: str | None = None
    message: str | None = None
    rows: int | None = None
    pad: int = 0


def parse_control(query: str) -> JobControl:
    """Read every ``-- emulator:`` line of ``query``; unknown keys or bad values: ValueError."""
    values: dict[str, str] = {}
    for match in _CONTROL_RE.finditer(query):
        for token in shlex.split(match.group(1)):
            key, sep, value = token.partition("=")
            if not sep:
                raise ValueError(f"emulator comment: expected key=value, got {token!r}")
            values[key.strip().lower()] = value
    if not values:
        return JobControl()
    known = {"queued", "booting", "running", "duration", "status", "message", "rows", "pad"}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"emulator comment: unknown keys {sorted(unknown)}")
    status = values.get("status")
    if status is not None and status not in ("success", "error"):
        raise ValueError("emulator comment: status must be success or error")
    running = values.get("running", values.get("duration"))
    return JobControl(
        queued=float(values["queued"]) if "queued" in values else None,
        booting=float(values["booting"]) if "booting" in values else None,
        running=float(running) if running is not None else None,
        status=status,
        message=values.get("message"),
        rows=int(values["rows"]) if "rows" in values else None,
        pad=int(values.get("pad", "0")),
    )


class SQLError(Exception):
    """A query the emulator cannot run: the message names the problem (and where it is)."""


def dialect_of(engine: str) -> str:
    """sqlglot's dialect for a job type: ``hive`` for hive jobs, else ``trino``."""
    return "hive" if engine == "hive" else "trino"


@dataclass
class Plan:
    """What one translated statement does.

    ``kind``: ``select`` (``sql`` is the query), ``insert`` (``sql`` writes into ``target``,
    into ``columns`` when listed, replacing its rows when ``overwrite``), ``ctas``, ``create``
    (``schema``: the declared columns), ``drop`` or ``delete`` (``sql`` is the WHERE
    condition, or None). ``tables``: every (database, table) the statement reads.
    """

    kind: str
    sql: str | None = None
    target: tuple[str, str] | None = None
    columns: list[str] | None = None
    overwrite: bool = False
    exists: bool = False
    schema: list[list[str]] | None = None
    tables: set[tuple[str, str]] = field(default_factory=set)


# -- helpers -----------------------------------------------------------------------------


@lru_cache(maxsize=128)
def _template(text: str) -> Node:
    return sqlglot.parse_one(text, read="duckdb")


def _build(text: str, *args: Node) -> Node:
    """A DuckDB expression from ``text`` with ``__a0``, ``__a1``, ... replaced by ``args``."""

    def put(node: Node) -> Node:
        if isinstance(node, exp.Column) and not node.table and node.name.startswith("__a"):
            return args[int(node.name[3:])].copy()
        return node

    return _template(text).copy().transform(put)


def _string(value: str | None) -> Node:
    return exp.Null() if value is None else exp.Literal.string(value)


def _number(value: int | None) -> Node:
    return exp.Null() if value is None else exp.Literal.number(value)


def _name(node: Node) -> str:
    """The upper-case function name of a call node (sqlglot's class or the written name)."""
    if isinstance(node, exp.Anonymous):
        return str(node.this).upper()
    return ""


def _position(node: Node) -> str:
    meta = getattr(node, "meta", None) or {}
    line, col = meta.get("line"), meta.get("col")
    return f"line {line}:{col}: " if line is not None and col is not None else ""


class _Translator:
    """One translation: the dialect, the job's database and scheduled time, the catalog."""

    def __init__(self, *, engine: str, database: str, catalog: str, scheduled: int) -> None:
        self.hive = engine == "hive"
        self.database = database
        self.catalog = catalog
        self.scheduled = scheduled
        self.ctes: set[str] = set()
        self.tables: set[tuple[str, str]] = set()

    # -- constants: TD functions of literals are computed here, so that DuckDB compares the
    # time column with numbers (and prunes row groups) instead of calling Python per row.

    def const(self, node: Node) -> tuple[bool, Any]:
        """(True, value) when ``node`` is a constant this module can compute."""
        if isinstance(node, exp.Null):
            return True, None
        if isinstance(node, exp.Literal):
            if node.is_string:
                return True, node.this
            text = node.this
            return True, int(text) if re.fullmatch(r"-?\d+", text) else float(text)
        if isinstance(node, exp.Neg):
            ok, value = self.const(node.this)
            return (True, -value) if ok and isinstance(value, (int, float)) else (False, None)
        if isinstance(node, exp.Paren):
            return self.const(node.this)
        name = _name(node)
        if name == "TD_SCHEDULED_TIME" and not node.expressions:
            return True, self.scheduled
        if name in ("TD_TIME_ADD", "TD_TIME_PARSE", "TD_DATE_TRUNC"):
            values = [self.const(a) for a in node.expressions]
            if not all(ok for ok, _ in values):
                return False, None
            args = [v for _, v in values]
            try:
                if name == "TD_TIME_ADD" and len(args) in (2, 3):
                    return True, td.time_add(args[0], args[1], args[2] if len(args) > 2 else None)
                if name == "TD_TIME_PARSE" and len(args) in (1, 2):
                    if args[0] is None:
                        return True, None
                    text, zone = str(args[0]), args[1] if len(args) > 1 else None
                    try:
                        return True, td.parse_time(text, zone)
                    except ValueError:
                        td.zone(zone)  # an unknown zone is an error, bad text is NULL
                        return True, None
                if name == "TD_DATE_TRUNC" and len(args) in (2, 3):
                    zone = args[2] if len(args) > 2 else None
                    return True, td.date_trunc(args[0], args[1], zone)
            except (ValueError, TypeError) as exc:
                raise SQLError(f"{_position(node)}{name}: {exc}") from None
        return False, None

    # -- TD functions --------------------------------------------------------------------

    def td_function(self, node: Node, name: str) -> Node | None:
        args = [self.rewrite(a) for a in node.expressions]
        original = list(node.expressions)
        where = _position(node)

        def arity(*allowed: int) -> None:
            if len(args) not in allowed:
                counts = " or ".join(str(n) for n in allowed)
                raise SQLError(f"{where}{name} takes {counts} arguments, got {len(args)}")

        def zone_arg(index: int) -> Node:
            if len(args) <= index:
                return exp.Literal.string("UTC")
            ok, value = self.const(original[index])
            if ok:
                try:
                    td.zone(value)
                except ValueError as exc:
                    raise SQLError(f"{where}{name}: {exc}") from None
            return args[index]

        try:
            if name == "TD_SCHEDULED_TIME":
                arity(0)
                return _number(self.scheduled)
            if name in ("TD_TIME_ADD", "TD_TIME_PARSE", "TD_DATE_TRUNC"):
                ok, value = self.const(node)
                if ok:
                    return _number(value)
                if name == "TD_TIME_ADD":
                    arity(2, 3)
                    return _build(
                        "__td_time_add(CAST(__a0 AS VARCHAR), __a1, __a2)",
                        args[0],
                        args[1],
                        zone_arg(2),
                    )
                if name == "TD_TIME_PARSE":
                    arity(1, 2)
                    return _build(
                        "__td_time_parse(CAST(__a0 AS VARCHAR), __a1)", args[0], zone_arg(1)
                    )
                arity(2, 3)
                return _build("__td_date_trunc(__a0, __a1, __a2)", args[0], args[1], zone_arg(2))
            if name == "TD_TIME_RANGE":
                arity(2, 3, 4)
                zone = zone_arg(3)
                bounds: list[Node | None] = []
                for index in (1, 2):
                    if index >= len(args):
                        bounds.append(None)
                        continue
                    ok, value = self.const(original[index])
                    ok_zone, zone_value = self.const(zone)
                    if ok and ok_zone:
                        number = td.time_range_bound(value, zone_value)
                        bounds.append(None if number is None else _number(number))
                    else:
                        bounds.append(
                            _build(
                                "__td_time_bound(CAST(__a0 AS VARCHAR), __a1)", args[index], zone
                            )
                        )
                lo, hi = bounds
                if lo is None and hi is None:
                    return _build("(__a0 IS NOT NULL OR __a0 IS NULL)", args[0])
                if hi is None:
                    assert lo is not None
                    return _build("(__a0 >= __a1)", args[0], lo)
                if lo is None:
                    return _build("(__a0 < __a1)", args[0], hi)
                return _build("(__a0 >= __a1 AND __a0 < __a2)", args[0], lo, hi)
            if name == "TD_INTERVAL":
                arity(2, 3)
                zone = zone_arg(2)
                ok, interval = self.const(original[1])
                ok_zone, zone_value = self.const(zone)
                if ok and ok_zone:
                    lo_value, hi_value = td.interval_bounds(
                        str(interval), zone_value, self.scheduled
                    )
                    return _build(
                        "(__a0 >= __a1 AND __a0 < __a2)",
                        args[0],
                        _number(lo_value),
                        _number(hi_value),
                    )
                return _build(
                    "(__a0 >= __td_interval_start(__a1, __a2, __a3) "
                    "AND __a0 < __td_interval_end(__a1, __a2, __a3))",
                    args[0],
                    args[1],
                    zone,
                    _number(self.scheduled),
                )
            if name == "TD_TIME_FORMAT":
                arity(2, 3)
                zone = zone_arg(2)
                ok, pattern = self.const(original[1])
                ok_zone, zone_value = self.const(zone)
                fast = td.joda_to_strftime(pattern) if ok and isinstance(pattern, str) else None
                if fast is not None and ok_zone:
                    return _build(
                        "strftime(timezone(__a1, to_timestamp(__a0)), __a2)",
                        args[0],
                        _string(str(td.zone(zone_value))),
                        exp.Literal.string(fast),
                    )
                return _build("__td_time_format(__a0, __a1, __a2)", args[0], args[1], zone)
            if name == "TD_TIME_STRING":
                arity(2, 3)
                ok, unit = self.const(original[1])
                patterns = {
                    "y!": "yyyy", "q!": "yyyy-MM", "M!": "yyyy-MM", "w!": "yyyy-MM-dd",
                    "d!": "yyyy-MM-dd", "h!": "yyyy-MM-dd HH", "m!": "yyyy-MM-dd HH:mm",
                    "s!": "yyyy-MM-dd HH:mm:ss",
                }  # fmt: skip
                full = {k.rstrip("!"): "yyyy-MM-dd HH:mm:ssZ" for k in patterns}
                if not ok or (unit not in patterns and unit not in full):
                    raise SQLError(f"{where}TD_TIME_STRING: unknown unit {unit!r}")
                pattern = patterns.get(unit) or full[unit]
                truncated = args[0]
                trunc_units = {"y": "year", "q": "quarter", "M": "month", "w": "week", "d": "day"}
                if unit.endswith("!") and unit[0] in trunc_units:
                    truncated = _build(
                        "__td_date_trunc(__a0, __a1, __a2)",
                        exp.Literal.string(trunc_units[unit[0]]),
                        args[0],
                        zone_arg(2),
                    )
                elif unit in trunc_units:
                    truncated = _build(
                        "__td_date_trunc(__a0, __a1, __a2)",
                        exp.Literal.string(trunc_units[unit]),
                        args[0],
                        zone_arg(2),
                    )
                return _build(
                    "__td_time_format(__a0, __a1, __a2)",
                    truncated,
                    exp.Literal.string(pattern),
                    zone_arg(2),
                )
        except ValueError as exc:
            raise SQLError(f"{where}{name}: {exc}") from None
        return None

    def sessionize(self, window: exp.Window) -> Node:
        """TD_SESSIONIZE_WINDOW(time, timeout) OVER (PARTITION BY ... ORDER BY time): rewritten
        by ``rewrite_select`` (it needs a second window over the first)."""
        raise SQLError(
            f"{_position(window)}TD_SESSIONIZE_WINDOW is supported only as a plain select item "
            "over one table, without GROUP BY"
        )

    # -- other functions -----------------------------------------------------------------

    def function(self, node: Node) -> Node | None:
        name = _name(node)
        if name.startswith("TD_"):
            return self.td_function(node, name)
        if isinstance(node, exp.ApproxDistinct):
            # Presto's estimate made exact, as the emulator always counted it.
            return _build("count(DISTINCT __a0)", self.rewrite(node.this))
        if isinstance(node, exp.ApproxQuantile) and node.args.get("quantile") is not None:
            if node.args.get("weight") is not None or node.args.get("accuracy") is not None:
                return None
            kind = "quantile_cont" if self.hive else "quantile_disc"
            return _build(
                f"{kind}(__a0, __a1)", self.rewrite(node.this), self.rewrite(node.args["quantile"])
            )
        if isinstance(node, exp.Quantile) and self.hive:
            return _build(
                "quantile_cont(__a0, __a1)",
                self.rewrite(node.this),
                self.rewrite(node.args["quantile"]),
            )
        if isinstance(node, exp.UnixToTime) and node.args.get("zone") is not None:
            return _build(
                "timezone(__a1, to_timestamp(__a0))",
                self.rewrite(node.this),
                self.rewrite(node.args["zone"]),
            )
        if isinstance(node, exp.RegexpExtract) and not self.hive:
            # Presto: NULL when the pattern does not match (DuckDB: '')
            this, pattern = self.rewrite(node.this), self.rewrite(node.expression)
            group = node.args.get("group")
            call = _build(
                "regexp_extract(__a0, __a1, __a2)",
                this,
                pattern,
                self.rewrite(group) if group is not None else exp.Literal.number(0),
            )
            return _build("CASE WHEN regexp_matches(__a0, __a1) THEN __a2 END", this, pattern, call)
        split_part = getattr(exp, "SplitPart", None)
        if split_part is not None and isinstance(node, split_part) and not self.hive:
            this = self.rewrite(node.this)
            delimiter = self.rewrite(node.args["delimiter"])
            index = self.rewrite(node.args["part_index"])
            return _build(
                "CASE WHEN __a2 <= len(string_split(__a0, __a1)) "
                "THEN split_part(__a0, __a1, __a2) END",
                this,
                delimiter,
                index,
            )
        parse_url = getattr(exp, "ParseUrl", None)
        if parse_url is not None and isinstance(node, parse_url):
            part = node.args.get("part_to_extract")
            ok, value = self.const(part) if part is not None else (False, None)
            key = node.args.get("key")
            url = self.rewrite(node.this)
            if ok and str(value).upper() == "QUERY" and key is not None:
                return self.url("parameter", url, self.rewrite(key))
            parts = {"HOST": "host", "PATH": "path", "QUERY": "query", "PROTOCOL": "protocol"}
            if ok and str(value).upper() in parts:
                return self.url(parts[str(value).upper()], url)
            return None
        lowered = name.lower()
        if lowered.startswith("url_extract_") and node.expressions:
            part = lowered.removeprefix("url_extract_")
            args = [self.rewrite(a) for a in node.expressions]
            if part in ("host", "path", "query", "protocol", "port", "fragment") or (
                part == "parameter" and len(args) == 2
            ):
                return self.url(part, *args)
        if (lowered == "typeof" or type(node).__name__ == "Typeof") and not self.hive:
            # Presto's type names, not DuckDB's
            return _build(
                "__td_typeof(typeof(__a0))", self.rewrite(node.this or node.expressions[0])
            )
        if lowered == "map_agg" and len(node.expressions) == 2:
            key, value = (self.rewrite(a) for a in node.expressions)
            return _build(
                "map(list(__a0) FILTER (WHERE __a0 IS NOT NULL), "
                "list(__a1) FILTER (WHERE __a0 IS NOT NULL))",
                key,
                value,
            )
        if lowered == "format_datetime" and len(node.expressions) == 2:
            return self.joda(node, "strftime")
        if lowered == "parse_datetime" and len(node.expressions) == 2:
            return self.joda(node, "strptime")
        if isinstance(node, (exp.JSONExtract, exp.JSONExtractScalar)):
            # as calls: DuckDB may read the -> operator as a lambda inside a function's arguments
            function = (
                "json_extract_string" if isinstance(node, exp.JSONExtractScalar) else "json_extract"
            )
            path = node.expression
            if isinstance(path, exp.JSONPath):
                path = exp.Literal.string(path.sql(dialect="duckdb").strip("'"))
            args = [self.rewrite(node.this), self.rewrite(path)]
            return exp.Anonymous(this=function, expressions=args)
        if lowered == "json_array_get" and len(node.expressions) == 2:
            array, index = (self.rewrite(a) for a in node.expressions)
            return _build("json_extract(__a0, '$[' || CAST(__a1 AS VARCHAR) || ']')", array, index)
        return None

    def joda(self, node: Node, function: str) -> Node:
        value, pattern = node.expressions
        ok, text = self.const(pattern)
        fmt = td.joda_to_strftime(text) if ok and isinstance(text, str) else None
        if fmt is None:
            raise SQLError(f"{_position(node)}{_name(node).lower()}: unsupported format {text!r}")
        return _build(f"{function}(__a0, __a1)", self.rewrite(value), exp.Literal.string(fmt))

    def url(self, part: str, url: Node, *extra: Node) -> Node:
        """Presto's url_extract_* (and Hive's parse_url) with regular expressions."""
        authority = r"^[A-Za-z][A-Za-z0-9+.-]*://"
        patterns = {
            "protocol": (r"^([A-Za-z][A-Za-z0-9+.-]*):", 1),
            "host": (authority + r"(?:[^@/?#]*@)?([^/?#:]*)", 1),
            "port": (authority + r"(?:[^@/?#]*@)?[^/?#:]*:([0-9]+)", 1),
            "path": (r"^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)?([^?#]*)", 1),
            "query": (r"\?([^#]*)", 1),
            "fragment": (r"#(.*)$", 1),
        }
        if part == "parameter":
            return _build(
                "CASE WHEN regexp_matches(__a0, '[?&]' || __a1 || '=') THEN "
                "url_decode(regexp_extract(__a0, '[?&]' || __a1 || '=([^&#]*)', 1)) END",
                url,
                extra[0],
            )
        pattern, group = patterns[part]
        call = _build(
            "regexp_extract(__a0, __a1, __a2)",
            url,
            exp.Literal.string(pattern),
            exp.Literal.number(group),
        )
        if part == "port":
            call = _build("TRY_CAST(NULLIF(__a0, '') AS BIGINT)", call)
        return _build("CASE WHEN regexp_matches(__a0, __a1) THEN __a2 END", url,
                      exp.Literal.string(pattern), call)  # fmt: skip

    # -- UNNEST of maps and of several arrays ----------------------------------------------

    def unnest(self, node: exp.Unnest) -> Node | None:
        alias = node.args.get("alias")
        columns = [c.name for c in alias.columns] if alias is not None else []
        offset = node.args.get("offset")
        ordinal = offset.name if isinstance(offset, exp.Identifier) else None
        if ordinal is None and isinstance(offset, exp.Expression) and columns:
            ordinal = columns.pop()
        count = len(node.expressions)
        if count == 1 and len(columns) != 2 and ordinal is None:
            return None
        if count > 1 and len(columns) != count:
            return None
        values = [self.rewrite(e) for e in node.expressions]
        items: list[str] = []
        args: list[Node] = []
        lengths: list[str] = []
        if len(values) == 1 and len(columns) == 2:
            # UNNEST(map) AS t(key, value)
            args.append(values[0])
            items = [f"unnest(map_keys(__a0)) AS {_ident(columns[0])}",
                     f"unnest(map_values(__a0)) AS {_ident(columns[1])}"]  # fmt: skip
            lengths = ["len(map_keys(__a0))"]
        else:
            for i, (value, column) in enumerate(zip(values, columns, strict=True)):
                args.append(value)
                items.append(f"unnest(__a{i}) AS {_ident(column)}")
                lengths.append(f"len(__a{i})")
        if ordinal is not None:
            longest = lengths[0] if len(lengths) == 1 else f"greatest({', '.join(lengths)})"
            items.append(f"unnest(range(1, {longest} + 1)) AS {_ident(ordinal)}")
        name = alias.name if alias is not None and alias.name else "_u"
        subquery = _template(f"SELECT {', '.join(items)}").copy()
        filled = subquery.transform(
            lambda n: (
                args[int(n.name[3:])].copy()
                if isinstance(n, exp.Column) and not n.table and n.name.startswith("__a")
                else n
            )
        )
        return exp.Subquery(this=filled, alias=exp.TableAlias(this=exp.to_identifier(name)))

    def lateral(self, node: exp.Lateral) -> Node | None:
        """Hive's LATERAL VIEW explode(map) t AS k, v (and explode of an array)."""
        explode = node.this
        alias = node.args.get("alias")
        if not isinstance(explode, exp.Explode) or alias is None:
            return None
        if node.args.get("outer"):
            return None
        unnest = exp.Unnest(expressions=[explode.this], alias=alias.copy())
        replaced = self.unnest(unnest)
        if replaced is None:
            return None
        return exp.Join(this=replaced, kind="CROSS")

    # -- the tree ------------------------------------------------------------------------

    def rewrite(self, tree: Node) -> Node:
        return tree.transform(self.visit, copy=False)

    def visit(self, node: Node) -> Node:
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            return self.table(node)
        if isinstance(node, exp.Unnest) and isinstance(node.parent, (exp.Join, exp.From)):
            return self.unnest(node) or node
        if isinstance(node, exp.Select) and node.args.get("laterals"):
            laterals = node.args["laterals"]
            joins = list(node.args.get("joins") or [])
            kept = []
            for lateral in laterals:
                join = self.lateral(lateral)
                if join is None:
                    kept.append(lateral)
                else:
                    joins.append(join)
            node.set("laterals", kept or None)
            node.set("joins", joins or None)
            return node
        if isinstance(node, exp.Window) and _name(node.this) == "TD_SESSIONIZE_WINDOW":
            return self.sessionize(node)
        if isinstance(node, (exp.Func, exp.JSONExtract, exp.JSONExtractScalar)):
            replaced = self.function(node)
            if replaced is not None:
                return replaced
        return node

    def table(self, node: exp.Table) -> Node:
        if node.args.get("catalog") is not None:
            raise SQLError(f"{_position(node)}Catalog '{node.catalog}' does not exist")
        name = node.name.lower()
        if not node.db and name in self.ctes:
            return node
        database = node.db.lower() if node.db else self.database
        self.tables.add((database, name))
        node.set("db", exp.to_identifier(database, quoted=True))
        node.set("catalog", exp.to_identifier(self.catalog, quoted=True))
        node.set("this", exp.to_identifier(name, quoted=True))
        if node.args.get("alias") is None and not isinstance(node.parent, (exp.Insert, exp.Schema)):
            node.set("alias", exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
        return node


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _outputs(query: Node) -> exp.Select | None:
    """The SELECT whose items name a query's columns (the left end of a set operation)."""
    while isinstance(query, exp.SetOperation if hasattr(exp, "SetOperation") else exp.Union):
        query = query.left
    if isinstance(query, exp.Subquery):
        return _outputs(query.this)
    return query if isinstance(query, exp.Select) else None


def _name_columns(query: Node, hive: bool) -> None:
    """Name unnamed result columns as the engines do (``_col0`` in Presto, ``_c0`` in Hive)
    and every name in lower case, as both engines report them."""
    select = _outputs(query)
    if select is None:
        return
    prefix = "_c" if hive else "_col"
    items: list[Node] = []
    for index, item in enumerate(select.expressions):
        if isinstance(item, exp.Star) or (isinstance(item, exp.Column) and item.is_star):
            items.append(item)
            continue
        if isinstance(item, exp.Alias):
            item.set("alias", exp.to_identifier(item.alias.lower(), quoted=True))
            items.append(item)
            continue
        if isinstance(item, exp.Column):
            items.append(exp.alias_(item, exp.to_identifier(item.name.lower(), quoted=True)))
            continue
        items.append(exp.alias_(item, exp.to_identifier(f"{prefix}{index}", quoted=True)))
    select.set("expressions", items)


def _sessionize(select: exp.Select, translator: _Translator) -> Node:
    """Rewrite a SELECT holding ``TD_SESSIONIZE_WINDOW(time, timeout) OVER (PARTITION BY p
    ORDER BY time)`` items: an inner query marks the rows that start a session (gap over the
    timeout, or first of the partition), the outer one numbers sessions with a running sum."""
    windows = [
        w
        for w in select.find_all(exp.Window)
        if _name(w.this) == "TD_SESSIONIZE_WINDOW" and w.find_ancestor(exp.Select) is select
    ]
    if not windows:
        return select
    joins = select.args.get("joins")
    if select.args.get("group") or joins or select.args.get("laterals"):
        raise SQLError(
            f"{_position(windows[0])}TD_SESSIONIZE_WINDOW is supported over one table, "
            "without joins or GROUP BY"
        )
    from_key = "from_" if "from_" in select.args else "from"
    from_ = select.args.get(from_key)
    where = select.args.get("where")
    marks: list[tuple[exp.Window, str]] = []
    inner_items: list[Node] = [exp.Star()]
    for index, window in enumerate(windows):
        call = window.this
        if len(call.expressions) != 2:
            raise SQLError(f"{_position(window)}TD_SESSIONIZE_WINDOW takes 2 arguments")
        time_arg, timeout = call.expressions
        spec = window.copy()
        spec.set("this", exp.Anonymous(this="lag", expressions=[time_arg.copy()]))
        mark = f"__td_session_start{index}"
        gap = _build(
            "CASE WHEN __a1 IS NULL OR __a0 - __a1 > __a2 THEN 1 ELSE 0 END",
            time_arg.copy(),
            spec,
            timeout.copy(),
        )
        inner_items.append(exp.alias_(gap, exp.to_identifier(mark, quoted=True)))
        marks.append((window, mark))
    inner = exp.Select(expressions=inner_items)
    inner.set(from_key, from_.copy() if from_ is not None else None)
    if where is not None:
        inner.set("where", where.copy())
        select.set("where", None)
    for window, mark in marks:
        partitions = window.args.get("partition_by") or []
        running = window.copy()
        running.set("this", exp.Anonymous(this="sum", expressions=[exp.column(mark, quoted=True)]))
        running.set(
            "spec",
            exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING",
                           end="CURRENT ROW"),
        )  # fmt: skip
        keys = [_build("CAST(__a0 AS VARCHAR)", p.copy()) for p in partitions]
        key = exp.func("concat_ws", exp.Literal.string("\x1f"), *keys, running) if keys else running
        session = _build(
            "regexp_replace(md5(CAST(__a0 AS VARCHAR)), "
            "'^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\\1-\\2-\\3-\\4-\\5')",
            key,
        )
        window.replace(session)
    select.set(
        from_key,
        exp.From(this=exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("_s")))),
    )
    return select


def _collect_ctes(tree: Node) -> set[str]:
    return {cte.alias.lower() for cte in tree.find_all(exp.CTE) if cte.alias}


def _parse(query: str, dialect: str) -> Node:
    try:
        statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except ParseError as exc:
        errors = exc.errors[0] if exc.errors else {}
        line, col = errors.get("line"), errors.get("col")
        description = errors.get("description") or str(exc)
        where = f"line {line}:{col}: " if line is not None else ""
        near = (errors.get("start_context") or "")[-30:] + (errors.get("highlight") or "")
        context = f" near '{near.strip()}'" if near.strip() else ""
        raise SQLError(f"{where}{description}{context} (as {dialect} SQL)") from None
    except SqlglotError as exc:
        raise SQLError(f"{exc} (as {dialect} SQL)") from None
    if not statements:
        raise SQLError("the query has no statement")
    if len(statements) > 1:
        raise SQLError("only one statement can be run per job")
    return statements[0]


def _target(node: Node, database: str) -> tuple[str, str]:
    table = node.this if isinstance(node, exp.Schema) else node
    if not isinstance(table, exp.Table):
        raise SQLError(f"unsupported write target: {table.sql()}")
    return (table.db.lower() if table.db else database, table.name.lower())


def _td_schema_type(kind: exp.DataType) -> str:
    text = kind.sql("trino").lower()
    if text.startswith("array"):
        inner = kind.expressions[0] if kind.expressions else None
        return f"array<{_td_schema_type(inner) if inner is not None else 'string'}>"
    if text.startswith("map") and len(kind.expressions) == 2:
        key, value = (_td_schema_type(e) for e in kind.expressions)
        return f"map<{key},{value}>"
    base = re.sub(r"\(.*$", "", text).strip()
    if base in ("bigint", "integer", "int", "smallint", "tinyint"):
        return "long"
    if base in ("double", "real", "float", "decimal"):
        return "double"
    if base == "boolean":
        return "boolean"
    return "string"


def _select_sql(tree: Node, translator: _Translator) -> str:
    if isinstance(tree, exp.Select):
        tree = _sessionize(tree, translator)
    for select in list(tree.find_all(exp.Select)):
        if select is not tree:
            _sessionize(select, translator)
    tree = translator.rewrite(tree)
    _name_columns(tree, translator.hive)
    try:
        return str(tree.sql(dialect="duckdb"))
    except SqlglotError as exc:
        raise SQLError(str(exc)) from None


def translate(query: str, *, engine: str, database: str, catalog: str, scheduled: int) -> Plan:
    """Translate one job's statement (see the module docstring); SQLError when it cannot be."""
    uses_time = "td_scheduled_time" in query.lower() or "td_interval" in query.lower()
    return _translate(query, engine, database, catalog, scheduled if uses_time else 0)


@lru_cache(maxsize=512)
def _translate(query: str, engine: str, database: str, catalog: str, scheduled: int) -> Plan:
    dialect = dialect_of(engine)
    tree = _parse(query, dialect)
    translator = _Translator(engine=engine, database=database, catalog=catalog, scheduled=scheduled)
    translator.ctes = _collect_ctes(tree)
    plan = _plan(tree, translator, database)
    plan.tables = translator.tables
    return plan


#: Statement classes that are queries (``Query`` in current sqlglot, ``Subqueryable`` before).
_QUERY: Any = vars(exp).get("Query") or vars(exp).get("Subqueryable")


def _plan(tree: Node, translator: _Translator, database: str) -> Plan:
    if isinstance(tree, exp.Insert):
        target = _target(tree.this, database)
        columns = (
            [c.name.lower() for c in tree.this.expressions]
            if isinstance(tree.this, exp.Schema)
            else None
        )
        source = tree.expression
        if source is None:
            raise SQLError("INSERT needs a query or VALUES")
        return Plan(
            "insert",
            sql=_select_sql(source, translator),
            target=target,
            columns=columns,
            overwrite=bool(tree.args.get("overwrite")),
        )
    if isinstance(tree, exp.Create):
        kind = str(tree.args.get("kind") or "").upper()
        if kind != "TABLE":
            raise SQLError(f"CREATE {kind or '...'} is not supported; CREATE TABLE is")
        target = _target(tree.this, database)
        exists = bool(tree.args.get("exists"))
        if tree.expression is not None:
            return Plan(
                "ctas",
                sql=_select_sql(tree.expression, translator),
                target=target,
                exists=exists,
            )
        schema = tree.this
        if not isinstance(schema, exp.Schema):
            raise SQLError("CREATE TABLE needs columns or AS SELECT")
        columns = [
            [d.name.lower(), _td_schema_type(d.args["kind"])]
            for d in schema.expressions
            if isinstance(d, exp.ColumnDef) and d.args.get("kind") is not None
        ]
        return Plan("create", target=target, exists=exists, schema=columns)
    if isinstance(tree, exp.Drop):
        if str(tree.args.get("kind") or "").upper() != "TABLE":
            raise SQLError("only DROP TABLE is supported")
        tables = tree.args.get("tables") or [tree.this]
        if len(tables) != 1:
            raise SQLError("DROP TABLE takes one table")
        return Plan(
            "drop", target=_target(tables[0], database), exists=bool(tree.args.get("exists"))
        )
    if isinstance(tree, exp.Delete):
        target = _target(tree.this, database)
        where = tree.args.get("where")
        condition = None
        if where is not None:
            condition = translator.rewrite(where.this.copy()).sql(dialect="duckdb")
        return Plan("delete", sql=condition, target=target)
    if isinstance(tree, _QUERY):
        return Plan("select", sql=_select_sql(tree, translator))
    raise SQLError(f"unsupported statement: {tree.key.upper()}")


def _presto_type(duck_type: str | None) -> str | None:
    if duck_type is None:
        return None
    try:
        return engine_type(parse_duck_type(duck_type), hive=False)
    except ValueError:
        return duck_type.lower()


def register_functions(conn: Any) -> None:
    """Add the UDFs translated SQL calls to a DuckDB connection (its cursors see them too)."""
    td.register(conn)
    conn.create_function("__td_typeof", _presto_type, ["VARCHAR"], "VARCHAR")
