"""The shared streaming gunzip: pieces bounded by step, a total cap, cut streams, members."""

from __future__ import annotations

import gzip
import os

import pytest

from aiotd._gzip import Gunzip
from aiotd.errors import ArchiveError, DecodeError

DATA = b"".join(f"{i:06d} some text that compresses well\n".encode() for i in range(20_000))


def gunzip(reader: Gunzip, body: bytes, piece: int) -> bytes:
    """Everything ``body`` decompresses to, fed ``piece`` bytes at a time."""
    return b"".join(
        out for i in range(0, len(body), piece) for out in reader.feed(body[i : i + piece])
    )


@pytest.mark.parametrize("piece", [1, 7, 1 << 16, 1 << 30])
def test_any_chunking_gives_the_data_back_in_pieces_of_at_most_step(piece: int) -> None:
    reader = Gunzip(what="the stream", step=4096)
    body = gzip.compress(DATA, mtime=0)
    pieces = [out for i in range(0, len(body), piece) for out in reader.feed(body[i : i + piece])]
    reader.close()
    assert b"".join(pieces) == DATA
    assert max(map(len, pieces)) <= 4096
    assert reader.size == len(DATA)


def test_a_bomb_comes_out_one_step_at_a_time() -> None:
    bomb = gzip.compress(bytes(64 << 20))  # 64 MiB of zeros in about 64 KiB
    pieces = Gunzip(what="the stream", step=1 << 16).feed(bomb)
    assert len(next(pieces)) == 1 << 16  # the generator decompresses no further than asked
    pieces.close()


def test_over_the_cap_is_refused_as_the_callers_error() -> None:
    reader = Gunzip(what="the archive", error=ArchiveError, step=1 << 16, max_size=1 << 20)
    with pytest.raises(ArchiveError, match="the archive decompresses to more than 1048576 bytes"):
        gunzip(reader, gzip.compress(bytes(4 << 20)), 1 << 16)
    assert reader.size <= (1 << 20) + (1 << 16)  # stopped within one step of the cap


def test_exactly_the_cap_is_allowed() -> None:
    reader = Gunzip(what="the stream", max_size=len(DATA))
    assert gunzip(reader, gzip.compress(DATA), 1 << 16) == DATA
    reader.close()


@pytest.mark.parametrize("cut", [1, 4, 8])  # inside the ISIZE, into the CRC32 of the trailer
def test_a_stream_without_its_trailer_is_truncated(cut: int) -> None:
    reader = Gunzip(what="result")
    assert gunzip(reader, gzip.compress(DATA)[:-cut], 1 << 16) == DATA
    with pytest.raises(DecodeError, match="result is truncated: it ends inside a gzip member"):
        reader.close()


def test_a_stream_cut_inside_its_data_is_truncated_and_flush_keeps_what_it_decoded() -> None:
    noisy = os.urandom(100_000).hex().encode()
    body = gzip.compress(noisy)
    strict = Gunzip(what="result")
    assert noisy.startswith(gunzip(strict, body[: len(body) // 2], 1000))
    with pytest.raises(DecodeError, match="truncated"):
        strict.close()
    lenient = Gunzip(what="the log file")
    kept = gunzip(lenient, body[: len(body) // 2], 1000) + lenient.flush()
    assert 0 < len(kept) < len(noisy)
    assert noisy.startswith(kept)
    lenient.close()  # flushed: the cut member is over


def test_concatenated_members_are_one_stream() -> None:
    body = gzip.compress(DATA[:1000]) + gzip.compress(b"") + gzip.compress(DATA[1000:])
    for piece in (1, 13, len(body)):
        reader = Gunzip(what="the stream", step=512)
        assert gunzip(reader, body, piece) == DATA
        reader.close()


def test_a_second_member_cut_short_is_truncated() -> None:
    body = gzip.compress(b"first\n") + gzip.compress(b"second\n")[:-8]
    reader = Gunzip(what="the stream")
    assert gunzip(reader, body, 5) == b"first\nsecond\n"
    with pytest.raises(DecodeError, match="inside a gzip member"):
        reader.close()


def test_one_member_ignores_what_follows_it() -> None:
    reader = Gunzip(what="the archive", error=ArchiveError, concatenated=False)
    body = gzip.compress(b"tar bytes") + b"anything after the member"
    assert gunzip(reader, body, 3) == b"tar bytes"
    assert reader.ended
    reader.close()


def test_one_member_that_never_came_is_truncated() -> None:
    reader = Gunzip(what="the archive", error=ArchiveError, concatenated=False)
    assert gunzip(reader, b"", 1) == b""
    with pytest.raises(ArchiveError, match="the archive is truncated"):
        reader.close()


def test_an_empty_stream_of_members_is_empty() -> None:
    reader = Gunzip(what="result")
    assert list(reader.feed(b"")) == []
    reader.close()


@pytest.mark.parametrize(
    "body",
    [
        b"plain text, not gzip",
        gzip.compress(DATA)[:10] + bytes(100),  # a header, then zeros instead of deflate data
        gzip.compress(b"ok") + b"\x1f\x8bnot a member",  # garbage where a member would start
    ],
    ids=["not-gzip", "corrupt-data", "garbage-after"],
)
def test_corrupt_data_is_the_callers_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="the log file is not valid gzip"):
        gunzip(Gunzip(what="the log file"), body, 7)


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="step"):
        Gunzip(what="x", step=0)
    with pytest.raises(ValueError, match="max_size"):
        Gunzip(what="x", max_size=-1)
