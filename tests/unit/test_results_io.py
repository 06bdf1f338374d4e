"""RowDecoder on its own: a stream cut inside its last row, rows that are not arrays."""

from __future__ import annotations

import gzip
from typing import Any

import msgpack
import pytest

from aiotd.core.results_io import RowDecoder
from aiotd.errors import DecodeError

ROWS: list[list[Any]] = [[i, f"user{i}", i * 1.5, None, [i, {"k": "v"}]] for i in range(20)]
BODY = b"".join(msgpack.packb(row) for row in ROWS)
LAST = len(msgpack.packb(ROWS[-1]))


def decode(data: bytes, *, compressed: bool, piece: int) -> list[Any]:
    """Every row of ``data`` fed ``piece`` bytes at a time, then ``close()``."""
    decoder = RowDecoder(gzip=compressed, arrays=True)
    body = gzip.compress(data, mtime=0) if compressed else data
    rows = [row for i in range(0, len(body), piece) for row in decoder.feed(body[i : i + piece])]
    decoder.close()
    return rows


def test_the_example_of_a_half_array_is_truncated() -> None:
    decoder = RowDecoder(gzip=False)
    assert list(decoder.feed(b"\x92\x01")) == []
    with pytest.raises(DecodeError, match="truncated"):
        decoder.close()


@pytest.mark.parametrize("compressed", [False, True], ids=["msgpack", "complete-gzip"])
@pytest.mark.parametrize("piece", [1, 7, 1 << 16])
def test_a_stream_cut_anywhere_inside_its_last_row_is_truncated(
    compressed: bool, piece: int
) -> None:
    assert decode(BODY, compressed=compressed, piece=piece) == ROWS
    for cut in range(1, LAST):
        with pytest.raises(DecodeError, match="truncated"):
            decode(BODY[:-cut], compressed=compressed, piece=piece)


def test_a_gzip_stream_without_its_trailer_is_truncated() -> None:
    body = gzip.compress(BODY, mtime=0)
    for cut in (1, 4, 8):  # inside the ISIZE, into the CRC32 of the trailer
        decoder = RowDecoder(gzip=True)
        assert list(decoder.feed(body[:-cut])) == ROWS
        with pytest.raises(DecodeError, match="gzip member"):
            decoder.close()


@pytest.mark.parametrize("row", [{"id": 1}, 7, "text", None, b"\x00", 1.5, True])
def test_rows_that_are_not_arrays_are_refused(row: Any) -> None:
    decoder = RowDecoder(gzip=False, arrays=True)
    with pytest.raises(DecodeError, match="not a msgpack array"):
        list(decoder.feed(BODY + msgpack.packb(row)))


def test_a_stream_of_records_keeps_its_maps() -> None:
    # table/tail and bulk_import/error_records answer streams of maps (v3-api.md §3)
    records = [{"id": i, "name": f"user{i}"} for i in range(5)]
    decoder = RowDecoder(gzip=False)
    assert list(decoder.feed(b"".join(msgpack.packb(r) for r in records))) == records
    decoder.close()


def test_a_result_in_several_gzip_members_is_one_row_stream() -> None:
    # td-client-python reads msgpack.gz with GzipFile, which reads every member (v3-api.md §3)
    half = len(BODY) // 2 + 3  # a row split across the two members
    body = gzip.compress(BODY[:half], mtime=0) + gzip.compress(BODY[half:], mtime=0)
    decoder = RowDecoder(gzip=True, arrays=True, step=64)
    rows = [row for i in range(0, len(body), 5) for row in decoder.feed(body[i : i + 5])]
    decoder.close()
    assert rows == ROWS
