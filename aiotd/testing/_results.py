"""Job results: written once as msgpack.gz (small ones in memory, large ones spilled to disk),
converted lazily to the other formats, served in chunks with Range/If-Range/ETag."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import msgspec
from aiohttp import web

__all__ = ["FORMATS", "Result", "ResultWriter", "serve", "synthetic_rows"]

FORMATS = ("msgpack.gz", "msgpack", "json", "csv", "tsv")
_SPILL_AT = 1 << 20
_CHUNK = 256 * 1024


class _Spill(io.RawIOBase):
    """A write-only sink that keeps bytes in memory until ``limit``, then moves them to ``path``."""

    def __init__(self, path: Path, limit: int = _SPILL_AT) -> None:
        super().__init__()
        self.path = path
        self.limit = limit
        self.buffer: io.BytesIO | None = io.BytesIO()
        self.file: io.BufferedWriter | None = None
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.size += len(data)
        if self.buffer is not None:
            self.buffer.write(data)
            if self.buffer.tell() > self.limit:
                self.file = open(self.path, "wb")  # noqa: SIM115 - closed in finish()
                self.file.write(self.buffer.getvalue())
                self.buffer = None
        elif self.file is not None:
            self.file.write(data)
        return len(data)

    def finish(self) -> bytes | Path:
        """The written data: bytes if it stayed small, else the file path."""
        if self.file is not None:
            self.file.close()
            return self.path
        assert self.buffer is not None
        return self.buffer.getvalue()


class Result:
    """One job's result: the canonical msgpack.gz plus converted formats made on demand."""

    def __init__(self, key: str, data: bytes | Path, num_records: int, directory: Path) -> None:
        self.key = key
        self.num_records = num_records
        self.directory = directory
        self._variants: dict[str, bytes | Path] = {"msgpack.gz": data}

    @property
    def size(self) -> int:
        """Length of the msgpack.gz form: the job's ``result_size`` (v3-api §2)."""
        return _length(self._variants["msgpack.gz"])

    def rows(self) -> Iterator[Any]:
        """Decode the rows back (streaming)."""
        source = self._variants["msgpack.gz"]
        raw: io.BufferedIOBase
        raw = open(source, "rb") if isinstance(source, Path) else io.BytesIO(source)  # noqa: SIM115
        with raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            yield from msgpack.Unpacker(
                gz, raw=False, max_buffer_size=1 << 30, strict_map_key=False
            )

    def is_large(self) -> bool:
        return isinstance(self._variants["msgpack.gz"], Path)

    def variant(self, fmt: str, header: bool, columns: list[str]) -> bytes | Path:
        """The result in ``fmt`` (converted once, then cached); blocking for large results."""
        name = fmt if fmt in ("msgpack.gz", "msgpack") or not header else fmt + "+header"
        found = self._variants.get(name)
        if found is not None:
            return found
        spill = _Spill(self.directory / f"{self.key}.{name}")
        _convert(self.rows(), fmt, header, columns, spill)
        data = spill.finish()
        self._variants[name] = data
        return data

    def discard(self) -> None:
        """Remove the files of this result."""
        for data in self._variants.values():
            if isinstance(data, Path):
                data.unlink(missing_ok=True)
        self._variants.clear()


def _length(data: bytes | Path) -> int:
    return data.stat().st_size if isinstance(data, Path) else len(data)


def _convert(rows: Iterable[Any], fmt: str, header: bool, columns: list[str], out: _Spill) -> None:
    if fmt == "msgpack":
        packer = msgpack.Packer()
        for row in rows:
            out.write(packer.pack(row))
    elif fmt == "json":
        enc = msgspec.json.Encoder()
        if header:
            out.write(enc.encode(columns) + b"\n")
        for row in rows:
            out.write(enc.encode(row) + b"\n")
    else:
        enc = msgspec.json.Encoder()
        text = io.TextIOWrapper(
            io.BufferedWriter(out), encoding="utf-8", newline="", write_through=True
        )
        writer = csv.writer(text, lineterminator="\r\n") if fmt == "csv" else _TsvWriter(text)
        if header:
            writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(v, enc) for v in row])
        text.flush()
        buffered = text.detach()
        buffered.flush()


class _TsvWriter:
    """Tab-separated rows: a backslash, tab or line break inside a field is escaped with a
    backslash (quotes stay as they are: JSON text of arrays and maps reads back as written)."""

    _ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

    def __init__(self, out: io.TextIOWrapper) -> None:
        self.out = out

    def writerow(self, row: list[Any]) -> None:
        self.out.write("\t".join(str(v).translate(self._ESCAPES) for v in row) + "\n")


def _cell(value: Any, enc: msgspec.json.Encoder) -> Any:
    """A csv/tsv field: arrays and maps as JSON text, booleans as Presto prints them."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return enc.encode(value).decode()
    return value


class ResultWriter:
    """Streams rows into a gzip'd msgpack sink; small results stay in memory."""

    def __init__(self, key: str, directory: Path) -> None:
        self.key = key
        self.directory = directory
        self._spill = _Spill(directory / f"{key}.msgpack.gz")
        self._gz = gzip.GzipFile(fileobj=self._spill, mode="wb", compresslevel=6, mtime=0)
        self._packer = msgpack.Packer()
        self._pending: list[bytes] = []
        self.count = 0

    def write(self, row: Any) -> None:
        self._pending.append(self._packer.pack(row))
        self.count += 1
        if len(self._pending) >= 1024:
            self._gz.write(b"".join(self._pending))
            self._pending.clear()

    def close(self) -> Result:
        if self._pending:
            self._gz.write(b"".join(self._pending))
            self._pending.clear()
        self._gz.close()
        return Result(self.key, self._spill.finish(), self.count, self.directory)

    def abort(self) -> None:
        self._gz.close()
        data = self._spill.finish()
        if isinstance(data, Path):
            data.unlink(missing_ok=True)


SYNTHETIC_COLUMNS = [["id", "bigint"], ["name", "varchar"], ["value", "double"], ["time", "bigint"]]


def synthetic_rows(n: int, pad: int = 0) -> Iterator[list[Any]]:
    """``n`` deterministic rows (id, name, value, time[, pad]) for big-result tests."""
    filler = "x" * pad
    for i in range(n):
        row: list[Any] = [i, f"name_{i}", i * 0.5, 1_700_000_000 + i]
        if pad:
            row.append(filler)
        yield row


def _parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """``bytes=a-b``/``a-``/``-n`` -> (start, end inclusive); None: ignore; False: unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return False
            return max(size - n, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


def _file_chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    """Read ``length`` bytes of ``path`` from ``start`` in bounded chunks (local disk: fast)."""
    with open(path, "rb") as f:
        f.seek(start)
        remaining = length
        while remaining > 0:
            chunk = f.read(min(_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


_TYPES = {
    "msgpack.gz": "application/octet-stream",
    "msgpack": "application/x-msgpack",
    "json": "application/json",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
}


async def serve(
    request: web.Request, data: bytes | Path, fmt: str, etag: str, truncate: bool
) -> web.StreamResponse:
    """Send ``data`` honouring ``Range`` (206 + Content-Range), ``If-Range`` and ``ETag``.

    With ``truncate`` the answer promises the full length, sends half, and closes (a fault).
    """
    size = _length(data)
    status, start, end = 200, 0, size - 1
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if range_header and (if_range is None or if_range == etag):
        parsed = _parse_range(range_header, size)
        if parsed is False:
            return web.Response(
                status=416, headers={"Content-Range": f"bytes */{size}", "ETag": etag}
            )
        if isinstance(parsed, tuple):
            status, (start, end) = 206, parsed
    length = max(end - start + 1, 0)
    resp = web.StreamResponse(status=status)
    resp.content_type = _TYPES.get(fmt, "application/octet-stream")
    resp.headers["ETag"] = etag
    resp.headers["Accept-Ranges"] = "bytes"
    if status == 206:
        resp.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    resp.content_length = length
    await resp.prepare(request)
    budget = length // 2 if truncate else length
    if isinstance(data, bytes):
        await resp.write(data[start : start + budget])
    else:
        for chunk in _file_chunks(data, start, budget):
            await resp.write(chunk)
    if truncate:
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp
