"""``aiotd import DB TABLE FILE``: a file of records into a table, exactly once per part.

What ``td table:import`` does, streamed: the file is read as parts of ``--part-size`` rows
are sent (``td.imports.upload``: each part with its own ``unique_id``, so a retried part is
imported once; v3-api.md §1.5), with a progress bar on a terminal. CSV and TSV files have a
header row naming the columns; their cells become ints, floats or strings. Every record
needs an int ``time`` (TD partitions tables by it): from a ``time`` column, from the column
``--time-column`` names, or ``--time-value`` for all.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import itertools
import math
import re
import time
import zlib
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from contextlib import aclosing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import anyio.to_thread
import msgspec

import aiotd
from aiotd._time import parse_time
from aiotd.cli._common import UsageError, add_common_options
from aiotd.cli._config import make_client
from aiotd.cli._render import Output
from aiotd.cli.tables import size_text
from aiotd.core.imports import ImportedPart
from aiotd.core.results_io import RowDecoder
from aiotd.errors import DecodeError, NotFound

__all__ = ["FORMATS", "BadFile", "FileRecords", "file_format", "register"]

#: ``--format`` values; ``jsonl`` is ``json`` (JSON lines) and ``msgpack.gz`` is ``msgpack``:
#: gzip is recognised by its magic bytes, for every format.
FORMATS = ("csv", "tsv", "json", "jsonl", "msgpack", "msgpack.gz")
_ALIASES = {"jsonl": "json", "msgpack.gz": "msgpack"}
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".msgpack": "msgpack",
    ".mpk": "msgpack",
}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
#: records read per hop to a worker thread (reading and parsing stay off the event loop)
_BATCH = 2048
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|-?[0-9]+[eE][-+]?[0-9]+")
#: what msgpack can carry as an integer (TD's long is the signed part)
_INT_RANGE = range(-(1 << 63), 1 << 64)


class BadFile(Exception):
    """The file's content cannot be imported; the message names the line or record."""


def register(sub: Any) -> None:
    """Add ``import``."""
    p = sub.add_parser(
        "import",
        help="import a csv, tsv, json lines or msgpack file into a table, exactly once",
        description="Import a file into DB.TABLE in parts of --part-size rows, each sent with "
        "its own unique id so that a retried part is imported once. CSV/TSV need a header "
        "row; gzip-compressed files are read as they are. Every record needs a unix time: "
        "a 'time' column, --time-column NAME or --time-value TIME.",
    )
    p.add_argument("database", metavar="DB")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--format", choices=FORMATS, help="file format (default: from the file's extension)"
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "-t",
        "--time-column",
        "--time-key",
        dest="time_column",
        metavar="NAME",
        help="the column holding each record's time (unix seconds or a timestamp)",
    )
    when.add_argument(
        "--time-value",
        metavar="TIME",
        help="one time for every record (unix seconds or 'YYYY-MM-DD HH:MM:SS')",
    )
    p.add_argument(
        "--part-size",
        type=int,
        default=100_000,
        metavar="ROWS",
        help="rows per uploaded part (default 100000; a part also ends at 16 MiB)",
    )
    p.add_argument(
        "--all-string",
        action="store_true",
        help="keep csv/tsv cells as strings (the time column is still read as a time)",
    )
    p.add_argument(
        "--auto-create-table",
        action="store_true",
        help="create the database and the table when they do not exist",
    )
    add_common_options(p)
    p.set_defaults(handler=import_file)


def file_format(path: Path, given: str | None) -> str:
    """``csv``, ``tsv``, ``json`` or ``msgpack``: ``--format``, else the file's extension
    (a ``.gz`` after it is looked through)."""
    if given is not None:
        return _ALIASES.get(given, given)
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    fmt = _SUFFIXES.get(Path(name).suffix)
    if fmt is None:
        raise UsageError(
            f"cannot tell the format of {path.name}: pass --format ({', '.join(FORMATS)})"
        )
    return fmt


def _epoch(value: Any) -> int:
    """A time as int unix seconds: an int, a float, digits, or a timestamp TD writes."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a time")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT.fullmatch(text):
            return int(text)
        parsed = parse_time(text)
        if parsed is not None:
            return int(parsed.timestamp())
    raise ValueError(f"{value!r} is not a unix time or a timestamp")


def _text(text: str) -> str | None:
    """A CSV cell kept as text (``--all-string``); empty is None."""
    return text or None


def _cell(text: str) -> Any:
    """A CSV cell typed as td types it: int, float, else the text; empty is None."""
    if text == "":
        return None
    if _INT.fullmatch(text):
        number = int(text)
        return number if number in _INT_RANGE else text
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


class _Counted(io.RawIOBase):
    """A binary file that remembers how many bytes were read from it (for the bar)."""

    def __init__(self, raw: io.FileIO) -> None:
        self.raw = raw
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer)
        self.done += count
        return count


@dataclass(frozen=True)
class _Time:
    """Where each record's time comes from: a column, or one value for all."""

    column: str
    value: int | None

    def stamp(self, record: dict[str, Any], where: str) -> dict[str, Any]:
        if self.value is not None:
            record["time"] = self.value
            return record
        raw = record.get(self.column)
        if raw is None:
            if self.column not in record:
                raise BadFile(f"{where}: no {self.column!r} column; {_TIME_HINT}")
            raise BadFile(f"{where}: the {self.column!r} column is empty")
        try:
            record["time"] = _epoch(raw)
        except ValueError as exc:
            raise BadFile(f"{where}: column {self.column!r}: {exc}") from None
        return record


_TIME_HINT = "TD needs a time per record: name its column with --time-column or give --time-value"


class FileRecords:
    """The records of a file, read lazily and checked: dicts with an int ``time``.

    ``done`` is how many bytes of the file were read (compressed bytes for a gzip file);
    content that cannot be imported raises ``BadFile`` naming its line (or record).
    """

    def __init__(
        self,
        path: Path,
        fmt: str,
        *,
        time_column: str | None = None,
        time_value: int | None = None,
        all_string: bool = False,
    ) -> None:
        self.path = path
        self.format = fmt
        self.size = path.stat().st_size
        self._time = _Time(time_column or "time", time_value)
        self._all_string = all_string
        self._file: _Counted | None = None

    @property
    def done(self) -> int:
        return self._file.done if self._file is not None else 0

    def __iter__(self) -> Generator[dict[str, Any], None, None]:
        with self.path.open("rb", buffering=0) as raw:
            counted = self._file = _Counted(raw)
            stream = io.BufferedReader(counted, _CHUNK)
            gzipped = stream.peek(2)[:2] == _GZIP_MAGIC
            try:
                if self.format == "msgpack":
                    yield from self._msgpack(stream, gzipped)
                    return
                binary: io.BufferedIOBase = gzip.GzipFile(fileobj=stream) if gzipped else stream
                if self.format == "json":
                    yield from self._json(binary)
                else:
                    yield from self._csv(binary)
            except (OSError, EOFError, zlib.error) as exc:
                # gzip.BadGzipFile is an OSError; a cut gzip member ends in EOFError
                what = "as gzip" if gzipped else "the file"
                raise BadFile(f"{self.path.name}: cannot read {what}: {exc}") from None

    def _where(self, line: int) -> str:
        return f"{self.path.name} line {line}"

    def _csv(self, stream: io.BufferedIOBase) -> Iterator[dict[str, Any]]:
        # utf-8-sig: a byte order mark (spreadsheets write one) is not part of the first name
        text = io.TextIOWrapper(cast(IO[bytes], stream), encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter="," if self.format == "csv" else "\t", strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return
            self._check_header(header)
            width = len(header)
            typed = _text if self._all_string else _cell
            for row in reader:
                if not row:
                    continue  # a blank line
                where = self._where(reader.line_num)
                if len(row) != width:
                    raise BadFile(f"{where}: {len(row)} fields, the header has {width}")
                record = {name: typed(value) for name, value in zip(header, row, strict=True)}
                yield self._time.stamp(record, where)
        except csv.Error as exc:
            raise BadFile(f"{self._where(reader.line_num)}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise BadFile(f"{self.path.name}: not UTF-8 text ({exc.reason})") from None

    def _check_header(self, header: list[str]) -> None:
        where = self._where(1) + " (the header)"
        if any(not name.strip() for name in header):
            raise BadFile(f"{where}: a column has no name")
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise BadFile(f"{where}: column {name!r} appears twice")
            seen.add(name)
        if self._time.value is None and self._time.column not in seen:
            raise BadFile(
                f"{where}: no {self._time.column!r} column (columns: {', '.join(header)}); "
                + _TIME_HINT
            )

    def _json(self, stream: io.BufferedIOBase) -> Iterator[dict[str, Any]]:
        decoder = msgspec.json.Decoder()
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            where = self._where(number)
            try:
                record = decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise BadFile(f"{where}: not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise BadFile(f"{where}: a record is a JSON object, not {_kind(record)}")
            yield self._time.stamp(record, where)

    def _msgpack(self, stream: io.BufferedIOBase, gzipped: bool) -> Iterator[dict[str, Any]]:
        decoder = RowDecoder(gzip=gzipped)
        number = 0
        try:
            while chunk := stream.read(_CHUNK):
                for record in decoder.feed(chunk):
                    number += 1
                    where = f"{self.path.name} record {number}"
                    if not isinstance(record, dict):
                        raise BadFile(f"{where}: a record is a msgpack map, not {_kind(record)}")
                    yield self._time.stamp(record, where)
            decoder.close()
        except DecodeError as exc:
            raise BadFile(
                f"{self.path.name}: not msgpack records after record {number} ({exc})"
            ) from None


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


async def _batches(
    records: FileRecords, read: Callable[[], None]
) -> AsyncGenerator[dict[str, Any], None]:
    """The records, read ``_BATCH`` at a time on a worker thread: the event loop keeps
    sending parts while the next ones are parsed; ``read()`` is called after each batch.
    The file is closed when this closes."""
    source = iter(records)

    def take() -> tuple[list[dict[str, Any]], Exception | None]:
        """The next records, and the error that stopped them (raised once they are sent)."""
        batch: list[dict[str, Any]] = []
        try:
            batch.extend(itertools.islice(source, _BATCH))
        except Exception as exc:
            return batch, exc
        return batch, None

    try:
        # a worker thread's read is waited for even when cancelled, so the file is never
        # closed under it
        while True:
            batch, error = await anyio.to_thread.run_sync(take)
            read()
            for record in batch:
                yield record
            if error is not None:
                raise error
            if not batch:
                return
    finally:
        source.close()


async def _ensure_table(td: aiotd.Client, database: str, table: str, create: bool) -> None:
    """Fail before reading the file when the table is missing (or create it, if asked)."""
    if create:
        await td.databases.create(database, exist_ok=True)
        await td.tables.create(database, table, exist_ok=True)
        return
    try:
        await td.tables.get(database, table)
    except NotFound as exc:
        await td.databases.get(database)  # a missing database: TD's own 404 says so
        raise NotFound(
            exc.status,
            f"{exc.message} (create it, or pass --auto-create-table)",
            body=exc.body,
            method=exc.method,
            url=exc.url,
        ) from None


def _records_of(args: argparse.Namespace) -> FileRecords:
    """The file's records as the options say; usage errors before any request."""
    path = Path(args.file)
    fmt = file_format(path, args.format)
    if args.part_size < 1:
        raise UsageError("--part-size must be >= 1")
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        time_value = None if args.time_value is None else _epoch(args.time_value)
    except ValueError as exc:
        raise UsageError(f"--time-value: {exc}") from None
    return FileRecords(
        path,
        fmt,
        time_column=args.time_column,
        time_value=time_value,
        all_string=args.all_string,
    )


async def import_file(args: argparse.Namespace, out: Output) -> int:
    records = _records_of(args)
    path = records.path
    totals = {"parts": 0, "rows": 0, "bytes": 0}
    bar = _Bar(out, path.name, records) if out.live else None

    def show() -> None:
        if bar is not None:
            bar.update(totals)

    def progress(part: ImportedPart) -> None:
        totals["parts"] += 1
        totals["rows"] += part.records
        totals["bytes"] += part.bytes
        show()

    started = time.monotonic()
    async with make_client(args) as td:
        await _ensure_table(td, args.database, args.table, args.auto_create_table)
        try:
            async with aclosing(_batches(records, show)) as batches:
                with bar or nullcontext():
                    await td.imports.upload(
                        args.database,
                        args.table,
                        batches,
                        part_records=args.part_size,
                        progress=progress,
                    )
        except BadFile as exc:
            done = totals["rows"]
            # the parts before the bad record are imported, in order: they hold the first rows
            note = f"; the first {done} rows were imported" if done else "; nothing was imported"
            raise BadFile(f"{exc}{note}") from None
    elapsed = time.monotonic() - started
    out.record(
        {
            "database": args.database,
            "table": args.table,
            "file": str(path),
            "format": records.format,
            **totals,
            "file_bytes": records.size,
            "elapsed": round(elapsed, 3),
        }
    )
    parts = "1 part" if totals["parts"] == 1 else f"{totals['parts']} parts"
    out.line(
        f"{totals['rows']} rows imported into {args.database}.{args.table} in {parts} "
        f"({size_text(totals['bytes'])} sent) in {elapsed:.1f}s"
    )
    return 0


class _Bar:
    """A rich progress bar of the file read, with the rows and parts TD acknowledged."""

    def __init__(self, out: Output, name: str, records: FileRecords) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        self._records = records
        self._progress = Progress(
            TextColumn(f"importing {name}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rows]} rows in {task.fields[parts]} parts"),
            TimeElapsedColumn(),
            console=out.console,
        )
        self._task = self._progress.add_task("import", total=records.size, rows=0, parts=0)

    def update(self, totals: dict[str, int]) -> None:
        self._progress.update(
            self._task, completed=self._records.done, rows=totals["rows"], parts=totals["parts"]
        )

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.update(self._task, completed=self._records.done)
        self._progress.stop()
