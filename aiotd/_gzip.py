"""The one streaming gunzip, with a size cap: job results, log files and project archives.

Compressed bytes go in as they arrive; decompressed pieces of at most ``step`` bytes come
out, one at a time, so a small chunk of a highly compressed body (a gzip bomb) never expands
into unbounded memory, and the total can be capped at ``max_size``. Concatenated members
read as one stream, as Python's ``GzipFile`` (job results, v3-api.md §3) and Java's
``GZIPInputStream`` (log files, workflow-api.md §5.1) read them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

from aiotd.errors import DecodeError, TDError

__all__ = ["Gunzip"]

_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate data


class Gunzip:
    """Feed gzip bytes, iterate the decompressed pieces; ``close`` refuses a cut stream.

    ``what`` names the stream in error messages and ``error`` is the class they are raised
    as: corrupt data, more than ``max_size`` bytes decompressed, or (on ``close``) a stream
    that ends inside a member. With ``concatenated=False`` the stream is one member: what
    follows it is ignored, and a stream that ends before that member does is truncated.
    """

    def __init__(
        self,
        *,
        what: str,
        error: Callable[[str], TDError] = DecodeError,
        step: int = 1 << 16,
        max_size: int | None = None,
        concatenated: bool = True,
    ) -> None:
        if step < 1 or (max_size is not None and max_size < 0):
            raise ValueError("step must be >= 1 and max_size >= 0")
        self._what = what
        self._error = error
        self._step = step
        self._max_size = max_size
        self._concatenated = concatenated
        self._inflate: zlib._Decompress | None = None  # None: between members
        self._ended = False
        self.size = 0  #: decompressed bytes produced so far

    @property
    def ended(self) -> bool:
        """Whether a one-member stream is complete: more input would be ignored."""
        return self._ended

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The pieces ``data`` decompresses to (a generator: iterate it before the next feed)."""
        while data and not self._ended:
            if self._inflate is None:
                self._inflate = zlib.decompressobj(_WBITS)
            inflate = self._inflate
            try:
                out = inflate.decompress(data, self._step)
            except zlib.error as exc:
                raise self._error(f"{self._what} is not valid gzip: {exc}") from None
            if inflate.eof:
                data = inflate.unused_data  # another member may follow
                self._inflate = None
                self._ended = not self._concatenated
            else:
                data = inflate.unconsumed_tail
            if out:
                yield self._count(out)

    def flush(self) -> bytes:
        """What a member cut short decoded beyond the pieces given, for readers that keep a
        truncated stream (a log file still being written); the member is then over."""
        inflate, self._inflate = self._inflate, None
        return b"" if inflate is None else self._count(inflate.flush())

    def close(self) -> None:
        """Refuse a stream cut inside a member (or, with one member, before it ended)."""
        if self._inflate is not None:
            raise self._error(f"{self._what} is truncated: it ends inside a gzip member")
        if not self._concatenated and not self._ended:
            raise self._error(f"{self._what} is truncated: it ends before its gzip member")

    def _count(self, out: bytes) -> bytes:
        self.size += len(out)
        if self._max_size is not None and self.size > self._max_size:
            raise self._error(f"{self._what} decompresses to more than {self._max_size} bytes")
        return out
