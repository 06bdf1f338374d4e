"""Job results as Arrow record batches, tables and pandas DataFrames (the ``arrow`` extra).

``td.jobs.record_batches()``, ``to_arrow()`` and ``to_pandas()`` import this module on first
use, so ``import aiotd`` never loads pyarrow. Rows stream from the msgpack result as
``td.jobs.row_batches()`` reads it (same resumable download, same checks), decoded to
tuples and converted a few thousand at a time, so memory holds at most one batch.

Column names and types come from the job's ``hive_result_schema``. TD sends values typed
by msgpack (v3-api.md §3: ints, floats, strings, nil, arrays, maps); the engine type names
decide the Arrow type of each column:

=================================================  =========================================
TD type (Presto/Trino, Hive, table schemas)        Arrow type
=================================================  =========================================
``bigint``, ``long``                               ``int64``
``integer``, ``int``                               ``int32``
``smallint`` / ``tinyint``                         ``int16`` / ``int8``
``double``                                         ``float64``
``real``, ``float``                                ``float32`` (4-byte in both engines)
``boolean``                                        ``bool``
``varchar``, ``varchar(n)``, ``char(n)``,          ``string``
``string``
``varbinary``, ``binary``                          ``binary``
``date``, ``time``, ``timestamp(p)``               ``string``: the text TD sends (no client
[``with time zone``], ``interval ...``,            converts them; pytd's ``read_td_job``
``decimal(p, s)``, ``json``, ``uuid``,             leaves dates to ``parse_dates``). Parse
``ipaddress``                                      with ``pyarrow.compute.strptime`` or
                                                   ``pandas.to_datetime``.
``array(T)``, ``array<T>``                         ``list<T>`` when T is in this table,
                                                   else ``string`` holding JSON
``map(K, V)``, ``map<K,V>``                        ``map<K, V>`` when K and V are, else
                                                   ``string`` holding JSON
``row(...)``, ``struct<...>``, any other name      ``string``: text as sent, other values
                                                   as JSON
=================================================  =========================================

Type names are read case-insensitively, with or without parameters, in Presto's
``array(bigint)`` and Hive's ``array<bigint>`` spellings. A value that does not fit its
column's type is converted where the meaning is plain (``1.0`` in an integer column, an
array sent as JSON text in a list column, a number in a text column as JSON); otherwise
the stream stops with a DecodeError naming the column and the value.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast

import msgspec

from aiotd.core.results_io import RowDecoder
from aiotd.errors import DecodeError, JobNotFinished, MissingExtra
from aiotd.models.core import Column, Job

try:
    import pyarrow as pa
except ImportError as exc:  # pragma: no branch - which branch depends on the environment
    raise MissingExtra(
        "Arrow results need pyarrow, from the 'arrow' extra: pip install 'aiotd[arrow]'",
        extra="arrow",
        name="pyarrow",
    ) from exc

if TYPE_CHECKING:
    import pandas as pd

    from aiotd.core.jobs import Jobs

__all__ = ["arrow_type", "record_batches", "schema", "to_arrow", "to_pandas"]

#: Formats the rows are read from (msgpack arrays, gzip'd or not; v3-api.md §3).
FORMATS = ("msgpack.gz", "msgpack")
#: Rows converted to Arrow at a time: a batch is built from pieces of this many rows, so a
#: large ``batch_size`` holds Arrow data (compact) rather than that many Python rows.
_STEP_ROWS = 8192

_SCALARS: dict[str, pa.DataType] = {
    "bigint": pa.int64(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "int": pa.int32(),
    "smallint": pa.int16(),
    "tinyint": pa.int8(),
    "double": pa.float64(),
    "real": pa.float32(),
    "float": pa.float32(),
    "boolean": pa.bool_(),
    "bool": pa.bool_(),
    "varbinary": pa.binary(),
    "binary": pa.binary(),
    **dict.fromkeys(
        (
            "varchar",
            "string",
            "char",
            "character",
            "date",
            "time",
            "timestamp",
            "interval",
            "decimal",
            "json",
            "uuid",
            "ipaddress",
        ),
        pa.string(),
    ),
}
_CONTAINER = re.compile(r"(array|map|row|struct)\s*([(<])(.*)([)>])", re.DOTALL)
_PARAMS = re.compile(r"\([^()]*\)")


def _split_args(text: str) -> list[str]:
    """``"varchar, array(bigint)"`` -> ``["varchar", "array(bigint)"]`` (top-level commas)."""
    args: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char in "(<":
            depth += 1
        elif char in ")>":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    args.append(text[start:].strip())
    return args


def _resolve(td_type: str) -> pa.DataType | None:
    """The Arrow type of a TD type name, or None when the name is not in the table."""
    text = " ".join(td_type.lower().split())
    container = _CONTAINER.fullmatch(text)
    if container is not None:
        kind, opening, inner, closing = container.groups()
        if (opening, closing) not in (("(", ")"), ("<", ">")):
            return None
        args = _split_args(inner)
        if kind == "array" and len(args) == 1:
            item = _resolve(args[0])
            return None if item is None else pa.list_(item)
        if kind == "map" and len(args) == 2:
            key, value = _resolve(args[0]), _resolve(args[1])
            return None if key is None or value is None else pa.map_(key, value)
        return None
    words = _PARAMS.sub(" ", text).split()
    return _SCALARS.get(words[0]) if words else None


def arrow_type(td_type: str) -> pa.DataType:
    """The Arrow type of a column of TD type ``td_type`` (see the module's table);
    ``string`` for a name it does not know."""
    found = _resolve(td_type)
    return pa.string() if found is None else found


def schema(columns: Sequence[Column]) -> pa.Schema:
    """The Arrow schema of a result with these columns (``Job.result_columns``)."""
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in columns])


# -- values that do not fit their column's type (the slow path) --------------------------

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def _text(value: Any) -> Any:
    if value is None or type(value) is str:
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    try:
        return _json_encode(value).decode()
    except (TypeError, ValueError):  # not JSON-encodable (a msgpack ext type)
        return str(value)


def _integer(value: Any) -> Any:
    if value is None or isinstance(value, int):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError


def _floating(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str)):
        return value if value is None else float(value)
    raise TypeError


def _boolean(value: Any) -> Any:
    if value is None or type(value) is bool:
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise TypeError


def _binary(value: Any) -> Any:
    return value.encode() if isinstance(value, str) else value


def _nested(value: Any) -> Any:
    return _json_decode(value) if isinstance(value, str) else value


def _coercer(type_: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_string(type_):
        return _text
    if pa.types.is_integer(type_):
        return _integer
    if pa.types.is_floating(type_):
        return _floating
    if pa.types.is_boolean(type_):
        return _boolean
    if pa.types.is_binary(type_):
        return _binary
    return _nested


class _Converter:
    """Rows (tuples) to Arrow struct arrays of the result's schema.

    All rows at once in one C pass when every value fits its column; otherwise (and from
    then on for this result) column by column, converting the values that do not fit.
    """

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self.schema = schema(self.columns)
        self._fields = list(self.schema)
        self._struct = pa.struct(self._fields)
        self._coercers = [_coercer(f.type) for f in self._fields]
        self._fast = True
        self.rows = 0  #: rows converted so far

    def convert(self, rows: list[tuple[Any, ...]]) -> pa.StructArray:
        array: pa.StructArray | None = None
        if self._fast:
            try:
                array = cast("pa.StructArray", pa.array(rows, type=self._struct))
            except (pa.ArrowException, OverflowError):
                self._fast = False
        if array is None:
            array = self._by_column(rows)
        self.rows += len(rows)
        return array

    def _by_column(self, rows: list[tuple[Any, ...]]) -> pa.StructArray:
        width = len(self._fields)
        for i, row in enumerate(rows):
            if len(row) != width:
                raise DecodeError(
                    f"result row {self.rows + i + 1} has {len(row)} values, but the job's "
                    f"hive_result_schema has {width} columns"
                )
        arrays = []
        for i, field in enumerate(self._fields):
            values = [row[i] for row in rows]
            try:
                arrays.append(pa.array(values, type=field.type))
            except (pa.ArrowException, OverflowError):
                arrays.append(self._coerced(i, values))
        return pa.StructArray.from_arrays(arrays, fields=self._fields)

    def _coerced(self, index: int, values: list[Any]) -> pa.Array[Any]:
        coerce, field = self._coercers[index], self._fields[index]
        try:
            array: pa.Array[Any] = pa.array([coerce(v) for v in values], type=field.type)
            return array
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            pass
        for value in values:  # find the value at fault, for the message
            try:
                pa.array([coerce(value)], type=field.type)
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                column = self.columns[index]
                raise DecodeError(
                    f"result column {column.name!r} of type {column.type!r} has a "
                    f"{type(value).__name__} value that is not {field.type}",
                    snippet=repr(value)[:80],
                ) from None
        raise DecodeError(f"result column {self.columns[index].name!r} cannot be converted")


def _record_batch(pieces: list[pa.StructArray]) -> pa.RecordBatch:
    array = pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)
    return pa.RecordBatch.from_struct_array(array)


async def _finished(jobs: Jobs, job_id: str | int) -> Job:
    """The job's record, which must be a success: its result is what is read."""
    job = await jobs.get(job_id)
    if not job.finished:
        raise JobNotFinished(job)
    job.raise_for_status()
    return job


def _check(batch_size: int, format: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")


class _Stream:
    """One read of a finished job's result as record batches of at most ``batch_size`` rows.

    A job without ``hive_result_schema`` gets columns ``_col0``, ``_col1``... as wide as
    its first row, read as text.
    """

    def __init__(self, jobs: Jobs, job: Job, batch_size: int, format: str) -> None:
        self._jobs = jobs
        self._job = job
        self._batch_size = batch_size
        self._format = format
        columns = job.result_columns
        self._converter = _Converter(columns) if columns else None

    @property
    def schema(self) -> pa.Schema:
        """The batches' schema (empty for a result without schema nor rows)."""
        return pa.schema([]) if self._converter is None else self._converter.schema

    async def batches(self) -> AsyncGenerator[pa.RecordBatch, None]:
        batch_size = self._batch_size
        decoder = RowDecoder(gzip=self._format == "msgpack.gz", arrays=True, tuples=True)
        pending: list[tuple[Any, ...]] = []  #: rows decoded, not converted yet
        pieces: list[pa.StructArray] = []  #: rows converted, for the next batch
        ready = 0  #: rows in ``pieces``
        converter = self._converter
        chunks = self._jobs._result_chunks(self._job.job_id, self._format)
        async with aclosing(chunks):
            async for chunk in chunks:
                for rows in decoder.batches(chunk):
                    pending += rows
                if not pending:
                    continue
                if converter is None:
                    width = len(pending[0])
                    columns = [Column(name=f"_col{i}", type="") for i in range(width)]
                    converter = self._converter = _Converter(columns)
                step = min(batch_size - ready, _STEP_ROWS)
                while len(pending) >= step:
                    pieces.append(converter.convert(pending[:step]))
                    del pending[:step]
                    ready += step
                    if ready == batch_size:
                        yield _record_batch(pieces)
                        pieces, ready = [], 0
                    step = min(batch_size - ready, _STEP_ROWS)
        decoder.close()
        if pending and converter is not None:
            pieces.append(converter.convert(pending))
        if pieces:
            yield _record_batch(pieces)


def record_batches(
    jobs: Jobs, job_id: str | int, *, batch_size: int, format: str
) -> AsyncGenerator[pa.RecordBatch, None]:
    """``td.jobs.record_batches``: arguments checked now, the job asked for on iteration."""
    _check(batch_size, format)

    async def batches() -> AsyncGenerator[pa.RecordBatch, None]:
        job = await _finished(jobs, job_id)
        stream = _Stream(jobs, job, batch_size, format)
        async with aclosing(stream.batches()) as each:
            async for batch in each:
                yield batch

    return batches()


async def to_arrow(jobs: Jobs, job_id: str | int, *, batch_size: int, format: str) -> pa.Table:
    """``td.jobs.to_arrow``: every record batch of the result in one Table."""
    _check(batch_size, format)
    stream = _Stream(jobs, await _finished(jobs, job_id), batch_size, format)
    async with aclosing(stream.batches()) as each:
        batches = [batch async for batch in each]
    return pa.Table.from_batches(batches, schema=stream.schema)


async def to_pandas(
    jobs: Jobs, job_id: str | int, *, batch_size: int, format: str, options: dict[str, Any]
) -> pd.DataFrame:
    """``td.jobs.to_pandas``: the Table of ``to_arrow`` converted, its Arrow memory freed
    column by column as it goes (``self_destruct``), so the peak is not twice the data."""
    try:
        import pandas  # noqa: F401 - pyarrow imports it lazily; fail before any request
    except ImportError as exc:
        raise MissingExtra(
            "DataFrame results need pandas and pyarrow, from the 'pandas' extra: "
            "pip install 'aiotd[pandas]'",
            extra="pandas",
            name="pandas",
        ) from exc
    table = await to_arrow(jobs, job_id, batch_size=batch_size, format=format)
    frame: pd.DataFrame = table.to_pandas(
        **{"self_destruct": True, "split_blocks": True, **options}
    )
    return frame
