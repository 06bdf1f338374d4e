"""``td.imports``: stream records into a table exactly once, in bounded-size parts.

Records are packed as msgpack, cut into parts of at most ``part_size`` uncompressed bytes,
gzipped and sent with ``PUT /v3/table/import_with_id/{db}/{table}/{unique_id}/msgpack.gz``
(v3-api.md §1.5). Each part has its own fresh ``unique_id``, so a part whose answer was lost
is sent again and TD imports it once.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgpack
import msgspec

from aiotd._resource import CoreResource
from aiotd.core._common import db_segment, table_segment
from aiotd.core.results_io import RowDecoder
from aiotd.errors import ChecksumMismatch
from aiotd.models.core import ImportResult

__all__ = [
    "FILE_FORMATS",
    "ImportSummary",
    "ImportedPart",
    "Imports",
    "check_record",
    "read_records",
]

#: File formats ``upload_file`` reads.
FILE_FORMATS = ("jsonl", "csv", "tsv", "msgpack", "msgpack.gz")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".msgpack": "msgpack",
    ".mpk": "msgpack",
    ".msgpack.gz": "msgpack.gz",
    ".mpk.gz": "msgpack.gz",
}
_OCTETS = {"Content-Type": "application/octet-stream"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImportSummary:
    """What an upload sent: parts, records, compressed bytes, and TD's answer per part."""

    parts: int
    records: int
    bytes: int
    results: tuple[ImportResult, ...]


@dataclass(frozen=True)
class ImportedPart:
    """One part TD acknowledged: its number (from 0, in reading order), records, compressed
    bytes and TD's answer; what an upload's ``progress`` callback receives."""

    number: int
    records: int
    bytes: int
    result: ImportResult


def _show(record: Any) -> str:
    text = repr(record)
    return text if len(text) <= 200 else text[:197] + "..."


def check_record(record: Any, index: int) -> Mapping[str, Any]:
    """The record if TD can import it: a map whose ``time`` is an int of unix seconds.

    TD partitions every table by ``time``; a record without it is refused here, naming the
    record, rather than stamped with the import time.
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"record {index} is not a dict: {_show(record)}")
    if "time" not in record:
        raise ValueError(f"record {index} has no 'time' key: {_show(record)}")
    value = record["time"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"record {index}: 'time' must be an int of unix seconds, not {value!r}: {_show(record)}"
        )
    return record


def _gzip(raw: bytes) -> bytes:
    return gzip.compress(raw, compresslevel=6, mtime=0)


async def _each(records: Iterable[Any] | AsyncIterable[Any]) -> AsyncGenerator[Any, None]:
    if isinstance(records, AsyncIterable):
        async for record in records:
            yield record
    else:
        for record in records:
            yield record


async def _raw_parts(
    records: Iterable[Any] | AsyncIterable[Any], part_size: int, part_records: int | None
) -> AsyncGenerator[tuple[bytes, int], None]:
    """Packed msgpack of whole, checked records, cut once ``part_size`` bytes or
    ``part_records`` records are reached."""
    most = part_records if part_records is not None else -1
    packer = msgpack.Packer(autoreset=True)
    chunks: list[bytes] = []
    size = 0
    count = 0
    index = 0
    async with aclosing(_each(records)) as each:
        async for record in each:
            check_record(record, index)
            try:
                data = packer.pack(record)
            except (TypeError, ValueError, OverflowError) as exc:
                raise TypeError(
                    f"record {index} cannot be packed as msgpack ({exc}): {_show(record)}"
                ) from None
            index += 1
            chunks.append(data)
            size += len(data)
            count += 1
            if size >= part_size or count == most:
                yield b"".join(chunks), count
                chunks, size, count = [], 0, 0
    if count:
        yield b"".join(chunks), count


def _convert(text: str) -> Any:
    """A CSV cell as int, float or text; empty is None."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in FILE_FORMATS:
            raise ValueError(f"format must be one of {', '.join(FILE_FORMATS)}, not {format!r}")
        return format
    name = path.name.lower()
    for suffix, fmt in sorted(_SUFFIXES.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return fmt
    raise ValueError(f"cannot tell the format of {path.name}; pass format= ({FILE_FORMATS})")


def read_records(path: str | os.PathLike[str], format: str) -> Iterator[Any]:
    """Records of a file, read lazily: JSON lines, CSV/TSV with a header row, msgpack(.gz).

    CSV cells that read as numbers become int or float (so ``time`` is an int), empty
    cells None.
    """
    target = Path(path)
    if format == "jsonl":
        decoder = msgspec.json.Decoder()
        with target.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        yield decoder.decode(line)
                    except msgspec.DecodeError as exc:
                        raise ValueError(f"{target.name} line {number}: {exc}") from None
    elif format in ("csv", "tsv"):
        with target.open(newline="", encoding="utf-8") as text:
            reader = csv.DictReader(text, delimiter="," if format == "csv" else "\t")
            for row in reader:
                yield {key: _convert(value) for key, value in row.items() if key is not None}
    elif format in ("msgpack", "msgpack.gz"):
        decoder_ = RowDecoder(gzip=format == "msgpack.gz")
        with target.open("rb") as raw:
            while chunk := raw.read(_CHUNK):
                yield from decoder_.feed(chunk)
        decoder_.close()
    else:
        raise ValueError(f"format must be one of {', '.join(FILE_FORMATS)}, not {format!r}")


class Imports(CoreResource):
    """Streaming import into tables: ``/v3/table/import_with_id/...``."""

    async def upload(
        self,
        database: str,
        table: str,
        records: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        *,
        part_size: int = 16 << 20,
        part_records: int | None = None,
        concurrency: int = 2,
        progress: Callable[[ImportedPart], object] | None = None,
    ) -> ImportSummary:
        """Import records (dicts with an int ``time``) exactly once, in parts sent in parallel.

        A part is cut at ``part_size`` uncompressed bytes, or ``part_records`` records if
        that comes first. Memory stays near ``(concurrency + 1) * part_size`` whatever the
        number of records. ``progress`` is called with each part TD acknowledged, as they
        are (an exception it raises stops the upload). A record that is not a dict, has no
        int ``time`` or cannot be packed raises TypeError/ValueError naming it; the parts
        before it are imported, none after.
        """
        base = f"/v3/table/import_with_id/{db_segment(database)}/{table_segment(table)}"
        if part_size < 1:
            raise ValueError("part_size must be >= 1")
        if part_records is not None and (
            isinstance(part_records, bool) or not isinstance(part_records, int) or part_records < 1
        ):
            raise ValueError(f"part_records must be an int >= 1 or None, not {part_records!r}")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        results: dict[int, ImportResult] = {}
        totals = {"records": 0, "bytes": 0}
        slots = anyio.Semaphore(concurrency)
        failed: list[Exception] = []
        source_error: Exception | None = None

        async with anyio.create_task_group() as tg:

            async def send(number: int, raw: bytes, count: int) -> None:
                try:
                    body = await anyio.to_thread.run_sync(_gzip, raw)
                    path = f"{base}/{uuid.uuid4().hex}/msgpack.gz"
                    result = await self._call(
                        "PUT", path, ImportResult, data=body, headers=_OCTETS, idempotent=True
                    )
                    # TD answers the MD5 of what it got; td-client-go checks it the same way
                    # ("Checksum mismatch", v3-api.md §1.5)
                    digest = hashlib.md5(body).hexdigest()
                    if result.md5_hex and result.md5_hex != digest:
                        raise ChecksumMismatch(
                            f"import part {number}: TD received md5 {result.md5_hex}, "
                            f"sent {digest}",
                            sent=digest,
                            received=result.md5_hex,
                        )
                    results[number] = result
                    totals["records"] += count
                    totals["bytes"] += len(body)
                    if progress is not None:
                        progress(ImportedPart(number, count, len(body), result))
                except Exception as exc:
                    # raised as itself below, not inside a task group's ExceptionGroup
                    failed.append(exc)
                    tg.cancel_scope.cancel()
                finally:
                    slots.release()

            try:
                async with aclosing(_raw_parts(records, part_size, part_records)) as parts:
                    number = 0
                    async for raw, count in parts:
                        await slots.acquire()
                        tg.start_soon(send, number, raw, count)
                        number += 1
            except Exception as exc:
                # a bad record or a failing source: the parts already built hold only good
                # records, so they are allowed to finish
                source_error = exc
        if failed:
            raise failed[0]
        if source_error is not None:
            raise source_error
        ordered = tuple(results[n] for n in sorted(results))
        return ImportSummary(len(ordered), totals["records"], totals["bytes"], ordered)

    async def upload_file(
        self,
        database: str,
        table: str,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        part_size: int = 16 << 20,
        part_records: int | None = None,
        concurrency: int = 2,
        progress: Callable[[ImportedPart], object] | None = None,
    ) -> ImportSummary:
        """Import a file of records (``FILE_FORMATS``; guessed from the suffix if not given).

        The file is read as the parts are sent, never whole; each record needs an int ``time``.
        Parts and ``progress`` as in ``upload``.
        """
        target = Path(path)
        fmt = _format_of(target, format)
        if not await anyio.Path(target).is_file():
            raise FileNotFoundError(f"no such file: {target}")
        return await self.upload(
            database,
            table,
            read_records(target, fmt),
            part_size=part_size,
            part_records=part_records,
            concurrency=concurrency,
            progress=progress,
        )
