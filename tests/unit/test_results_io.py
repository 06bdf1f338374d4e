"""RowDecoder on its own: a stream cut inside its last row, rows that are not arrays."""

from __future__ import annotations

import gzip
from typing import Any

import msgpack
import pytest

from aiotd.core.results_io import BATCH_ROWS, RowDecoder
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


def read_until_error(decoder: RowDecoder, body: bytes, seen: list[Any]) -> None:
    """Extend ``seen`` with every batch of ``body`` until the decoder raises."""
    for batch in decoder.batches(body):
        seen.extend(batch)


def decode_batches(data: bytes, *, compressed: bool, piece: int, step: int = 1 << 18) -> list[Any]:
    """The lists ``batches()`` gives for ``data`` fed ``piece`` bytes at a time."""
    decoder = RowDecoder(gzip=compressed, arrays=True, step=step)
    body = gzip.compress(data, mtime=0) if compressed else data
    out = [b for i in range(0, len(body), piece) for b in decoder.batches(body[i : i + piece])]
    decoder.close()
    return out


@pytest.mark.parametrize("compressed", [False, True], ids=["msgpack", "gzip"])
@pytest.mark.parametrize("piece", [1, 7, 1 << 16])
def test_batches_hold_every_row_in_order(compressed: bool, piece: int) -> None:
    batches = decode_batches(BODY, compressed=compressed, piece=piece)
    assert all(type(b) is list and b for b in batches)
    assert [row for b in batches for row in b] == ROWS


def test_a_chunk_that_expands_a_lot_comes_in_batches_of_at_most_step_bytes() -> None:
    rows = [[i, "x" * 40] for i in range(5000)]
    body = b"".join(msgpack.packb(row) for row in rows)
    batches = decode_batches(body, compressed=True, piece=len(body), step=4096)
    longest = max(len(msgpack.packb(row)) for row in rows)
    assert len(batches) > 40
    assert all(sum(len(msgpack.packb(row)) for row in b) <= 4096 + longest for b in batches)
    assert [row for b in batches for row in b] == rows


@pytest.mark.parametrize("compressed", [False, True], ids=["msgpack", "gzip"])
def test_lists_stay_near_batch_rows_however_well_the_rows_compress(compressed: bool) -> None:
    # lists of thousands of rows make the garbage collector walk every row (BATCH_ROWS)
    varied = [[i, f"name_{i}", i * 0.5, 1_700_000_000 + i] for i in range(20000)]
    alike = [[1]] * 200_000  # gzip packs ~1,000 of these rows in each byte
    for rows in (varied, alike):
        body = b"".join(msgpack.packb(row) for row in rows)
        batches = decode_batches(body, compressed=compressed, piece=1 << 16)
        assert [row for b in batches for row in b] == rows
        sizes = [len(b) for b in batches]
        assert sorted(sizes)[len(sizes) // 2] >= BATCH_ROWS // 2
        assert max(sizes[8:]) <= 2 * BATCH_ROWS  # once the first few lists set the pace


@pytest.mark.parametrize("compressed", [False, True], ids=["msgpack", "gzip"])
@pytest.mark.parametrize("row", [{"id": 1}, 7, "text", None, 1.5])
def test_batches_refuse_a_row_that_is_not_an_array_after_the_rows_before_it(
    compressed: bool, row: Any
) -> None:
    decoder = RowDecoder(gzip=compressed, arrays=True)
    data = BODY + msgpack.packb(row) + BODY
    body = gzip.compress(data, mtime=0) if compressed else data
    seen: list[Any] = []
    with pytest.raises(DecodeError, match="not a msgpack array"):
        read_until_error(decoder, body, seen)
    assert seen == ROWS


@pytest.mark.parametrize("compressed", [False, True], ids=["msgpack", "gzip"])
def test_batches_refuse_bytes_that_are_not_msgpack_after_the_rows_before_them(
    compressed: bool,
) -> None:
    decoder = RowDecoder(gzip=compressed, arrays=True)
    data = BODY + b"\xc1" + BODY  # 0xc1 is the one byte msgpack never uses
    body = gzip.compress(data, mtime=0) if compressed else data
    seen: list[Any] = []
    with pytest.raises(DecodeError, match="not a msgpack row stream"):
        read_until_error(decoder, body, seen)
    assert seen == ROWS


@pytest.mark.parametrize("compressed", [False, True], ids=["msgpack", "gzip"])
def test_batches_of_a_stream_cut_inside_its_last_row_are_truncated(compressed: bool) -> None:
    for cut in range(1, LAST):
        with pytest.raises(DecodeError, match="truncated"):
            decode_batches(BODY[:-cut], compressed=compressed, piece=7)
