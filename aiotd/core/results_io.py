"""Incremental decoding of job results: bytes in as they arrive, rows out, memory bounded.

``msgpack.gz`` is a gzip file (possibly several members) holding a stream of msgpack
arrays, one per row (v3-api.md §3). Decompression (``aiotd._gzip``) is capped per step so
that a small chunk of a highly compressed body (a gzip bomb) never expands into unbounded
memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import msgpack

from aiotd._gzip import Gunzip
from aiotd.errors import DecodeError

__all__ = ["BATCH_ROWS", "RESULT_FORMATS", "RowDecoder"]

#: Formats ``job/result`` serves (v3-api.md §3).
RESULT_FORMATS = ("msgpack.gz", "msgpack", "json", "csv", "tsv")

_PENDING = object()

#: Rows a list of ``RowDecoder.batches`` aims at. Two lists alive (the one being read, the
#: one being built) stay under the garbage collector's first threshold (700 new
#: containers), so no collection runs while rows are decoded: lists of a whole network
#: chunk (thousands of rows) made it walk and promote every row, which cost more than
#: decoding them. Small pieces also keep the bytes in the CPU cache from gunzip to rows.
BATCH_ROWS = 256
#: Bounds of the input one list is decoded from, in bytes.
_MIN_SLICE, _FIRST_SLICE = 64, 2048


class RowDecoder:
    """Feed compressed (``gzip=True``) or plain msgpack bytes; iterate the rows decoded.

    At most ``step`` decompressed bytes are produced per step and consumed before the next,
    and a single row larger than ``max_row_bytes`` is an error: memory stays bounded
    whatever the size of the result. With ``arrays=True`` every top-level object must be
    an array, as the rows of a job result are; streams of records (maps) leave it off.
    With ``tuples=True`` msgpack arrays (rows and the arrays inside them) decode to tuples:
    pyarrow converts rows of tuples in one C pass, and the garbage collector stops tracking
    a tuple of plain values.
    """

    def __init__(
        self,
        *,
        gzip: bool = True,
        arrays: bool = False,
        tuples: bool = False,
        step: int = 1 << 18,
        max_row_bytes: int = 64 << 20,
    ) -> None:
        self._arrays = arrays
        self._row_type: type = tuple if tuples else list  #: what an array decodes to
        self._gunzip = Gunzip(what="result", step=step) if gzip else None
        self._unpacker = msgpack.Unpacker(
            raw=False, use_list=not tuples, max_buffer_size=max_row_bytes + step
        )
        self._step = step
        self._slice = _FIRST_SLICE  #: input bytes ``batches`` decodes a list from
        self._cap: int | None = None  #: rows ``batches`` takes at a time, once it must

    def _pieces(self, chunk: bytes) -> Iterator[None]:
        """Feed ``chunk`` to the unpacker, at most ``step`` decompressed bytes at a time."""
        if self._gunzip is None:
            if chunk:
                self._feed(chunk)
                yield
            return
        for out in self._gunzip.feed(chunk):
            self._feed(out)
            yield

    def _feed(self, data: bytes) -> None:
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            raise DecodeError("a result row exceeds the row size limit") from None

    def feed(self, chunk: bytes) -> Iterator[Any]:
        """Rows completed by ``chunk`` (a generator: iterate it before the next feed).

        Rows come straight off the unpacker, one at a time: no list of rows is built, so
        memory stays flat and the garbage collector has nothing to walk. With ``arrays``,
        a row that is not an array (a map, a scalar) is a DecodeError.
        """
        for _ in self._pieces(chunk):
            try:
                if self._arrays:
                    row_type = self._row_type
                    for row in self._unpacker:
                        if type(row) is not row_type:
                            name = type(row).__name__
                            raise DecodeError(f"a result row is not a msgpack array ({name})")
                        yield row
                else:
                    yield from self._unpacker
            except (msgpack.FormatError, msgpack.StackError, ValueError) as exc:
                raise DecodeError(f"result is not a msgpack row stream: {exc}") from None

    def batches(self, chunk: bytes) -> Iterator[list[Any]]:
        """The rows completed by ``chunk`` in lists of about ``BATCH_ROWS`` (a generator:
        iterate it before the next feed).

        ``chunk`` is fed in slices sized from the rows per input byte of the slices before.
        Rows before a bad one (not an array, not msgpack) still come, in a last list, then
        the DecodeError.
        """
        start = 0
        while start < len(chunk):
            part = chunk[start : start + self._slice]
            start += len(part)
            rows = 0
            for _ in self._pieces(part):
                while True:
                    batch, error = self._take()
                    if batch:
                        rows += len(batch)
                        yield batch
                    if error is not None:
                        raise error
                    if len(batch) > 4 * BATCH_ROWS:
                        # a few input bytes held many rows (data that compresses very well):
                        # lists are cut to size from now on
                        self._cap = BATCH_ROWS
                    if self._cap is None or len(batch) < self._cap:
                        break
            # halfway to the size that would have given BATCH_ROWS: steady, yet quick to follow
            wanted = len(part) * BATCH_ROWS // rows if rows else 2 * self._slice
            self._slice = min(max((self._slice + wanted) // 2, _MIN_SLICE), self._step)

    def _take(self) -> tuple[list[Any], DecodeError | None]:
        """The rows the unpacker holds (at most ``_cap``), and the error that stopped them
        short of its last byte, if one did.

        One C call takes them and one more checks them: no Python code runs per row.
        """
        batch: list[Any] = []
        error: DecodeError | None = None
        rows = self._unpacker if self._cap is None else islice(self._unpacker, self._cap)
        try:
            batch.extend(rows)  # keeps the rows it took when the unpacker raises
        except (msgpack.FormatError, msgpack.StackError, ValueError) as exc:
            error = DecodeError(f"result is not a msgpack row stream: {exc}")
        row_type = self._row_type
        if self._arrays and list(map(type, batch)).count(row_type) != len(batch):
            bad = next(i for i, row in enumerate(batch) if type(row) is not row_type)
            error = DecodeError(
                f"a result row is not a msgpack array ({type(batch[bad]).__name__})"
            )
            del batch[bad:]
        return batch, error

    def close(self) -> None:
        """Check that the stream ended cleanly, once every feed was iterated: no cut gzip
        member, no half row."""
        if self._gunzip is not None:
            self._gunzip.close()
        if not self._between_rows():
            raise DecodeError("result ended in the middle of a row (truncated)")

    def _between_rows(self) -> bool:
        """Whether the unpacker holds no started row.

        Its ``tell()`` cannot say: it counts the bytes of a started array it has parsed
        already. So a nil goes in after the stream: it comes back on its own only when the
        unpacker is between rows; a started row takes it in, or it completes a started
        number or string.
        """
        try:
            self._unpacker.feed(b"\xc0")
            return next(self._unpacker, _PENDING) is None
        except (msgpack.BufferFull, msgpack.FormatError, msgpack.StackError, ValueError):
            return False
