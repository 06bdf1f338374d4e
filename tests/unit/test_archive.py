"""Project archives: building as ``digdag push`` does, and refusing hostile archives on extract."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import stat
import tarfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiotd.errors import TDError
from aiotd.workflow._archive import (
    MAX_ARCHIVE_SIZE,
    ArchiveError,
    ArchiveFile,
    IgnoreRules,
    _GunzipReader,
    _walk,
    _write_archive,
    build_archive,
    build_archive_from_mapping,
    extract_archive,
)

# ------------------------------------------------------------------------------------------
# helpers


def write(root: Path, name: str, content: str | bytes = "x", mode: int | None = None) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    if mode is not None:
        path.chmod(mode)
    return path


def archive_bytes(archive: ArchiveFile) -> bytes:
    return b"".join(archive.chunks())


def members(archive: ArchiveFile) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive_bytes(archive)), mode="r:gz") as tar:
        return tar.getmembers()


def raw_typeflags(data: bytes) -> list[bytes]:
    """The typeflag of every header block in an uncompressed tar, ignoring tarfile's merging."""
    flags = []
    offset = 0
    while offset + 512 <= len(data):
        block = data[offset : offset + 512]
        if block == bytes(512):
            break
        flags.append(block[156:157])
        size = int(block[124:136].strip(b"\0 ") or b"0", 8)
        offset += 512 + -(-size // 512) * 512
    return flags


def tar_gz(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(buffer.getvalue())


def info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = linkname
    member.mode = 0o644
    return member


def snapshot(root: Path, skip: Path) -> set[str]:
    """Every path under ``root`` except inside ``skip``."""
    found = set()
    for path in root.rglob("*"):
        if path != skip and skip not in path.parents:
            found.add(str(path.relative_to(root)))
    return found


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root, "main.dig", "+t:\n  echo>: hi\n")
    write(root, "queries/a.sql", "select 1")
    return root


@pytest.fixture(params=["data_filter", "own_checks_only"])
def with_filter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run hostile-archive tests with and without Python's tarfile data filter."""
    if request.param == "own_checks_only":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return str(request.param)


# ------------------------------------------------------------------------------------------
# .digdagignore matching: the gitignore documentation's examples


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "expected"),
    [
        ("hello.*", "hello.txt", False, True),
        ("hello.*", "sub/hello.c", False, True),
        ("hello.*", "hello", False, False),
        ("foo/", "foo", True, True),
        ("foo/", "a/foo", True, True),
        ("foo/", "foo", False, False),
        ("doc/frotz/", "doc/frotz", True, True),
        ("doc/frotz/", "a/doc/frotz", True, False),
        ("frotz/", "a/frotz", True, True),
        ("doc/frotz", "doc/frotz", False, True),
        ("/doc/frotz", "doc/frotz", False, True),
        ("/bar", "bar", False, True),
        ("/bar", "a/bar", False, False),
        ("bar", "a/bar", False, True),
        ("foo/*", "foo/test.json", False, True),
        ("foo/*", "foo/bar", True, True),
        ("foo/*", "foo/bar/hello.c", False, False),
        ("**/foo", "foo", False, True),
        ("**/foo", "a/b/foo", False, True),
        ("**/foo/bar", "foo/bar", False, True),
        ("**/foo/bar", "x/foo/bar", False, True),
        ("abc/**", "abc/x", False, True),
        ("abc/**", "abc/x/y", False, True),
        ("abc/**", "abc", True, False),
        ("a/**/b", "a/b", False, True),
        ("a/**/b", "a/x/b", False, True),
        ("a/**/b", "a/x/y/b", False, True),
        ("a/**/b", "a/xb", False, False),
        ("a**b", "axyb", False, True),
        ("a**b", "ax/yb", False, False),
        ("*.txt", "a/b/c.txt", False, True),
        ("doc/*.txt", "doc/a.txt", False, True),
        ("doc/*.txt", "doc/x/a.txt", False, False),
        ("?.txt", "a.txt", False, True),
        ("?.txt", "ab.txt", False, False),
        ("a?b", "a/b", False, False),
        ("[abc].txt", "b.txt", False, True),
        ("[abc].txt", "d.txt", False, False),
        ("[!abc].txt", "d.txt", False, True),
        ("[!abc].txt", "a.txt", False, False),
        ("[a-c]x", "bx", False, True),
        ("[a-c]x", "dx", False, False),
        ("[[:digit:]]*", "1a", False, True),
        ("[[:digit:]]*", "a1", False, False),
        # JGit refuses a bracket left open ("Not closed bracket?"): the line matches nothing.
        ("[ab", "[ab", False, False),
        ("a[b/c]d", "a/d", False, False),
        # JGit drops a backslash that ends the pattern.
        ("a\\", "a", False, True),
        (r"\#file", "#file", False, True),
        ("#file", "#file", False, False),
        (r"\!important", "!important", False, True),
        ("foo   ", "foo", False, True),
        ("foo\\ ", "foo ", False, True),
        ("", "anything", False, False),
    ],
)
def test_ignore_rules_follow_gitignore(
    pattern: str, path: str, is_dir: bool, expected: bool
) -> None:
    assert IgnoreRules(pattern).ignored(path, is_dir=is_dir) is expected


def test_ignore_rules_last_match_wins_and_negation() -> None:
    rules = IgnoreRules("# logs\n*.log\n\n!keep.log\nkeep.log.d/\n")
    assert rules.ignored("a.log", is_dir=False)
    assert not rules.ignored("keep.log", is_dir=False)
    assert not rules.ignored("sub/keep.log", is_dir=False)
    assert rules.ignored("keep.log.d", is_dir=True)
    assert not rules.ignored("main.dig", is_dir=False)


# ------------------------------------------------------------------------------------------
# building


def test_dot_names_are_skipped_at_any_depth(project: Path) -> None:
    write(project, ".hidden", "secret")
    write(project, ".git/config", "x")
    write(project, "queries/.env", "x")
    write(project, "queries/.cache/x.sql", "x")
    write(project, "deep/er/.x/y.sql", "x")
    write(project, "deep/er/z.sql", "x")
    with build_archive(project) as archive:
        assert archive.names == ("deep/er/z.sql", "main.dig", "queries/a.sql")
        assert [m.name for m in members(archive)] == list(archive.names)


def test_digdagignore_with_negation_and_directory_patterns(project: Path) -> None:
    write(project, ".digdagignore", "*.log\n!keep.log\nbuild/\n/tmp\nnotes.txt/\n")
    write(project, "a.log", "x")
    write(project, "keep.log", "x")
    write(project, "build/out.sql", "x")
    write(project, "src/build/out.sql", "x")
    write(project, "tmp", "x")
    write(project, "src/tmp", "x")
    write(project, "notes.txt", "a file, not a directory: kept")
    with build_archive(project) as archive:
        assert archive.names == (
            "keep.log",
            "main.dig",
            "notes.txt",
            "queries/a.sql",
            "src/tmp",
        )


def test_negation_matches_the_path_itself_not_what_lies_below(project: Path) -> None:
    # As JGit's IgnoreNode decides: b/x is ignored by "[!a]" (its name), and "!/[!a]" re-includes
    # the directory b but not b/x.
    write(project, ".digdagignore", "*/a\n[!a]\n!/[!a]\n")
    write(project, "b/x", "x")
    write(project, "b/a", "x")
    write(project, "a", "x")
    with build_archive(project) as archive:
        assert archive.names == ("a", "main.dig", "queries/a.sql")


def test_file_in_ignored_directory_cannot_be_reincluded(project: Path) -> None:
    write(project, ".digdagignore", "/*\n!/*.dig\n!/foo\n/foo/*\n!/foo/bar\nlib/\n!lib/x.py\n")
    write(project, "foo/bar", "x")
    write(project, "foo/baz", "x")
    write(project, "foo/lib/x.py", "x")
    write(project, "other/x", "x")
    with build_archive(project) as archive:
        assert archive.names == ("foo/bar", "main.dig")


def test_no_directory_entries_and_no_pax_headers(project: Path) -> None:
    long_name = "/".join(["d" * 60] * 3) + "/" + "f" * 120 + ".sql"
    write(project, long_name, "x")
    write(project, "ünïcode/データ.sql", "x")
    with build_archive(project) as archive:
        raw = gzip.decompress(archive_bytes(archive))
        flags = raw_typeflags(raw)
        assert b"x" not in flags
        assert b"g" not in flags
        assert b"L" in flags  # GNU long name instead
        assert b"PaxHeader" not in raw
        listed = members(archive)
        assert all(m.isreg() for m in listed)
        assert {m.name for m in listed} == {
            long_name,
            "main.dig",
            "queries/a.sql",
            "ünïcode/データ.sql",
        }


def test_modes_and_mtimes_are_kept(project: Path) -> None:
    script = write(project, "bin/run.sh", "#!/bin/sh\n", mode=0o755)
    write(project, "ro.txt", "x", mode=0o444)
    os.utime(script, (1_600_000_000, 1_600_000_000))
    with build_archive(project) as archive:
        by_name = {m.name: m for m in members(archive)}
    assert by_name["bin/run.sh"].mode == 0o755
    assert by_name["bin/run.sh"].mtime == 1_600_000_000
    assert by_name["ro.txt"].mode == 0o444
    assert by_name["main.dig"].uid == 0
    assert by_name["main.dig"].uname == ""


def test_output_is_deterministic(project: Path) -> None:
    with build_archive(project) as first, build_archive(project) as second:
        assert archive_bytes(first) == archive_bytes(second)


def test_symlinks_inside_are_relative_link_entries(project: Path) -> None:
    (project / "link.sql").symlink_to("queries/a.sql")
    (project / "queries" / "up.dig").symlink_to("../main.dig")
    (project / "queries" / "abs.sql").symlink_to(project / "queries" / "a.sql")
    (project / "qdir").symlink_to("queries", target_is_directory=True)
    with build_archive(project) as archive:
        links = {m.name: m.linkname for m in members(archive) if m.issym()}
    assert links == {
        "link.sql": "queries/a.sql",
        "queries/up.dig": "../main.dig",
        "queries/abs.sql": "a.sql",
        "qdir": "queries",
    }


@pytest.mark.parametrize("target", ["../../outside.sql", "/etc/passwd", "../a.sql/../../../x"])
def test_symlink_leaving_the_project_is_refused(project: Path, target: str) -> None:
    write(project.parent, "outside.sql", "secret")
    (project / "queries" / "evil.sql").symlink_to(target)
    with pytest.raises(ArchiveError, match="outside the project") as caught:
        build_archive(project)
    assert caught.value.member == "queries/evil.sql"


@pytest.mark.parametrize("kind", ["name-too-long", "symlink-loop"])
def test_a_symlink_that_cannot_be_followed_is_an_archive_error(project: Path, kind: str) -> None:
    if kind == "name-too-long":
        (project / "queries" / "long.sql").symlink_to("n" * 300)  # ENAMETOOLONG when followed
        expected = {"queries/long.sql"}
    else:
        (project / "queries" / "a.sql").unlink()
        (project / "queries" / "a.sql").symlink_to("b.sql")  # ELOOP when followed
        (project / "queries" / "b.sql").symlink_to("a.sql")
        expected = {"queries/a.sql", "queries/b.sql"}
    with pytest.raises(ArchiveError, match="cannot be read") as caught:
        build_archive(project)
    assert caught.value.member in expected
    assert isinstance(caught.value.__cause__, OSError)


def test_an_ignored_symlink_that_cannot_be_followed_is_left_out(project: Path) -> None:
    (project / "loop").symlink_to("loop")
    write(project, ".digdagignore", "loop\n")
    with build_archive(project) as archive:
        assert archive.names == ("main.dig", "queries/a.sql")


def test_a_file_gone_since_the_walk_is_an_archive_error(project: Path) -> None:
    entries = _walk(str(project))
    (project / "queries" / "a.sql").unlink()
    with pytest.raises(ArchiveError, match="cannot be read") as caught:
        _write_archive(entries, MAX_ARCHIVE_SIZE)
    assert caught.value.member == "queries/a.sql"
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_special_files_are_refused(project: Path) -> None:
    os.mkfifo(project / "pipe")
    with pytest.raises(ArchiveError, match="not a regular file"):
        build_archive(project)


def test_a_top_level_workflow_is_required(tmp_path: Path) -> None:
    write(tmp_path / "p", "sub/nested.dig", "x")
    write(tmp_path / "p", "README.md", "x")
    with pytest.raises(ArchiveError, match=r"no top-level \*\.dig"):
        build_archive(tmp_path / "p")
    with pytest.raises(ArchiveError, match="not a directory"):
        build_archive(tmp_path / "missing")


def test_an_entry_over_the_limit_is_refused(project: Path) -> None:
    write(project, "big.csv", b"a" * 5000)
    with pytest.raises(ArchiveError, match="big.csv is 5000 bytes.*limit of 4096") as caught:
        build_archive(project, max_size=4096)
    assert caught.value.member == "big.csv"


def test_the_sum_of_entries_over_the_limit_is_refused(project: Path) -> None:
    for i in range(3):
        write(project, f"part{i}.csv", b"a" * 2000)
    with pytest.raises(ArchiveError, match="total .* over the archive limit of 4096"):
        build_archive(project, max_size=4096)


def test_the_compressed_size_over_the_limit_is_refused() -> None:
    with pytest.raises(ArchiveError, match=r"the archive is \d+ bytes, over the limit of 20000"):
        build_archive_from_mapping({"main.dig": os.urandom(19_990)}, max_size=20_000)


def test_default_limit_is_the_servers_two_mib() -> None:
    with pytest.raises(ArchiveError, match="limit of 2097152"):
        build_archive_from_mapping({"main.dig": "x", "big": b"a" * (2 * 1024 * 1024 + 1)})


def test_chunks_size_and_close(project: Path) -> None:
    archive = build_archive(project)
    pieces = list(archive.chunks(chunk_size=100))
    assert all(len(p) <= 100 for p in pieces)
    assert sum(map(len, pieces)) == archive.size
    assert b"".join(archive.chunks()) == b"".join(pieces)  # can be read again for a retry
    assert not archive.closed
    archive.close()
    assert archive.closed


def test_from_mapping(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "main.dig": "+t:\n  sh>: q/run.sh\n",
        "q/a.sql": b"select 1",
        "q/run.sh": "echo",
    }
    with build_archive_from_mapping(files, mtime=1_700_000_000) as archive:
        assert archive.names == ("main.dig", "q/a.sql", "q/run.sh")
        listed = members(archive)
        assert {m.mode for m in listed} == {0o644}
        assert {m.mtime for m in listed} == {1_700_000_000}
        assert extract_archive(archive.chunks(), tmp_path / "out") == list(archive.names)
    assert (tmp_path / "out" / "main.dig").read_text() == files["main.dig"]
    assert (tmp_path / "out" / "q" / "a.sql").read_bytes() == b"select 1"


@pytest.mark.parametrize(
    "name", ["", "/abs.dig", "../up.dig", "a/../b", "a//b", "./a", "a/", "a\\b", "nul\0"]
)
def test_from_mapping_refuses_bad_names(name: str) -> None:
    with pytest.raises(ArchiveError, match="invalid project file name"):
        build_archive_from_mapping({"main.dig": "x", name: "x"})


def test_from_mapping_refuses_a_file_that_is_also_a_directory() -> None:
    with pytest.raises(ArchiveError, match="both a file and the directory"):
        build_archive_from_mapping({"main.dig": "x", "q": "x", "q/a.sql": "x"})


def test_archive_error_is_a_td_error_and_pickles() -> None:
    error = ArchiveError("refused", member="a")
    assert isinstance(error, TDError)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.member) == ("refused", "a")


# ------------------------------------------------------------------------------------------
# extraction


def test_round_trip_gives_identical_files(project: Path, tmp_path: Path) -> None:
    write(project, "bin/run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    write(project, "data/blob.bin", os.urandom(300_000))
    write(project, "x" * 50 + "/" + "y" * 80 + ".sql", "long")
    (project / "queries" / "link.sql").symlink_to("a.sql")
    (project / "qdir").symlink_to("queries", target_is_directory=True)
    dest = tmp_path / "out"
    with build_archive(project) as archive:
        names = extract_archive(archive.chunks(), dest)
        assert names == list(archive.names)
    for name in names:
        source, copy = project / name, dest / name
        if source.is_symlink():
            assert os.readlink(copy) == os.readlink(source)
            continue
        assert copy.read_bytes() == source.read_bytes()
        assert stat.S_IMODE(copy.stat().st_mode) == stat.S_IMODE(source.stat().st_mode)
        assert int(copy.stat().st_mtime) == int(source.stat().st_mtime)
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        p.name for p in project.iterdir() if not p.name.startswith(".")
    )


def test_extract_accepts_bytes_file_and_small_chunks(tmp_path: Path) -> None:
    data = tar_gz((info("main.dig"), b"hello"), (info("./q/a.sql"), b"select 1"))
    assert extract_archive(data, tmp_path / "a") == ["main.dig", "q/a.sql"]
    assert extract_archive(io.BytesIO(data), tmp_path / "b") == ["main.dig", "q/a.sql"]
    pieces: list[bytes] = []
    for i in range(0, len(data), 7):
        pieces += [b"", data[i : i + 7]]  # empty chunks too, as an HTTP stream may yield
    assert extract_archive(iter(pieces), tmp_path / "c") == ["main.dig", "q/a.sql"]
    assert (tmp_path / "c" / "q" / "a.sql").read_bytes() == b"select 1"


def test_extract_reads_pax_and_directory_entries(tmp_path: Path) -> None:
    long_name = "d/" + "n" * 150 + ".sql"
    data = tar_gz(
        (info("d/", tarfile.DIRTYPE), b""),
        (info(long_name), b"x"),
        fmt=tarfile.PAX_FORMAT,
    )
    assert extract_archive(data, tmp_path / "out") == [long_name]


def test_extracted_modes_drop_dangerous_bits(tmp_path: Path) -> None:
    member = info("run.sh")
    member.mode = 0o4777
    extract_archive(tar_gz((member, b"x")), tmp_path)
    assert stat.S_IMODE((tmp_path / "run.sh").stat().st_mode) == 0o755


HOSTILE = {
    "absolute path": ([(info("/tmp/evil"), b"x")], "/tmp/evil", "absolute path"),
    "dot-dot": ([(info("../evil"), b"x")], "../evil", r"'\.\.' in the path"),
    "nested dot-dot": ([(info("a/../../evil"), b"x")], "a/../../evil", r"'\.\.'"),
    "symlink to /etc": (
        [(info("passwd", tarfile.SYMTYPE, "/etc/passwd"), b"")],
        "passwd",
        "absolute",
    ),
    "symlink upwards": (
        [(info("sub/up", tarfile.SYMTYPE, "../../evil"), b"")],
        "sub/up",
        "leaves the destination",
    ),
    "symlink through a symlink": (
        [
            (info("l1", tarfile.SYMTYPE, "."), b""),
            (info("l2", tarfile.SYMTYPE, "l1/.."), b""),
        ],
        "l2",
        r"'\.\.' after a name",
    ),
    "write through a symlink": (
        [
            (info("real/", tarfile.DIRTYPE), b""),
            (info("link", tarfile.SYMTYPE, "real"), b""),
            (info("link/evil"), b"x"),
        ],
        "link/evil",
        "is a symlink",
    ),
    "hardlink outside": (
        [(info("h", tarfile.LNKTYPE, "../../etc/passwd"), b"")],
        "h",
        "only regular files",
    ),
    "hardlink inside": (
        [(info("a"), b"x"), (info("h", tarfile.LNKTYPE, "a"), b"")],
        "h",
        "only regular files",
    ),
    "character device": ([(info("dev", tarfile.CHRTYPE), b"")], "dev", "only regular files"),
    "fifo": ([(info("fifo", tarfile.FIFOTYPE), b"")], "fifo", "only regular files"),
    "duplicate": ([(info("a"), b"x"), (info("./a"), b"y")], "./a", "duplicate"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_members_are_refused(tmp_path: Path, with_filter: str, case: str) -> None:
    entries, member, reason = HOSTILE[case]
    dest = tmp_path / "parent" / "dest"
    dest.mkdir(parents=True)
    before = snapshot(tmp_path, dest)
    with pytest.raises(ArchiveError, match=reason) as caught:
        extract_archive(tar_gz(*entries), dest)
    assert caught.value.member == member
    assert member in str(caught.value)
    assert snapshot(tmp_path, dest) == before
    assert not [p for p in dest.rglob("*") if p.name.endswith(".part")]


def test_a_huge_declared_member_is_refused_before_reading(tmp_path: Path) -> None:
    header = info("zeros.bin")
    header.size = 2 * 1024**3  # a 2 GiB member in a stream of a few hundred bytes
    stream = gzip.compress(header.tobuf(tarfile.GNU_FORMAT) + bytes(4096))
    assert len(stream) < 1000
    with pytest.raises(ArchiveError, match="zeros.bin.*over the limit") as caught:
        extract_archive(stream, tmp_path / "dest", max_total_size=1 << 20)
    assert caught.value.member == "zeros.bin"
    assert list((tmp_path / "dest").iterdir()) == []


def test_a_gzip_bomb_is_capped_by_the_total(tmp_path: Path) -> None:
    zeros = bytes(8 * 1024 * 1024)
    data = tar_gz((info("a.bin"), zeros[: 600 * 1024]), (info("b.bin"), zeros[: 600 * 1024]))
    assert len(data) < 20_000
    with pytest.raises(ArchiveError, match="b.bin.*total more than the limit of 1048576"):
        extract_archive(data, tmp_path / "dest", max_total_size=1 << 20)
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["a.bin"]


def test_a_single_member_over_its_limit_is_refused(tmp_path: Path) -> None:
    data = tar_gz((info("a.bin"), bytes(5000)))
    with pytest.raises(ArchiveError, match="5000 bytes, over the limit of 4096"):
        extract_archive(data, tmp_path, max_file_size=4096)


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    data = tar_gz(*[(info(f"f{i}"), b"x") for i in range(6)])
    with pytest.raises(ArchiveError, match="more than 5 members"):
        extract_archive(data, tmp_path, max_files=5)


def test_the_decompressed_stream_is_capped() -> None:
    reader = _GunzipReader(iter([gzip.compress(bytes(4 * 1024 * 1024))]), 1 << 20)
    with pytest.raises(ArchiveError, match="decompresses to more than 1048576 bytes"):
        reader.read(2 * 1024 * 1024)


def test_an_oversized_extended_header_is_refused(tmp_path: Path) -> None:
    header = info("././@LongLink", tarfile.GNUTYPE_LONGNAME)
    header.size = 100 * 1024 * 1024
    stream = gzip.compress(header.tobuf(tarfile.GNU_FORMAT) + bytes(1024))
    with pytest.raises(ArchiveError, match="extended tar header of 104857600 bytes"):
        extract_archive(stream, tmp_path)


def test_endless_extended_headers_are_refused(tmp_path: Path) -> None:
    pax = info("pax", tarfile.XHDTYPE)
    record = b"13 comment=x\n"
    pax.size = len(record)
    block = pax.tobuf(tarfile.USTAR_FORMAT) + record.ljust(512, b"\0")
    stream = gzip.compress(block * 2000 + info("a").tobuf(tarfile.USTAR_FORMAT))
    with pytest.raises(ArchiveError, match="too many extended tar headers"):
        extract_archive(stream, tmp_path)


def test_a_truncated_member_leaves_no_partial_file(tmp_path: Path) -> None:
    data = gzip.decompress(tar_gz((info("big.bin"), os.urandom(200_000))))
    cut = zlib.compressobj(wbits=31)
    stream = cut.compress(data[:100_000]) + cut.flush(zlib.Z_SYNC_FLUSH)
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match="truncated"):
        extract_archive(stream, dest)
    assert list(dest.iterdir()) == []


def test_a_name_too_long_for_the_file_system_is_refused(tmp_path: Path) -> None:
    name = "q/" + "n" * 300 + ".sql"
    with pytest.raises(ArchiveError, match="too long") as caught:
        extract_archive(tar_gz((info(name), b"x")), tmp_path)
    assert caught.value.member == name


def test_a_set_stop_writes_nothing(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(ArchiveError, match="stopped"):
        extract_archive(tar_gz((info("main.dig"), b"x")), tmp_path / "dest", stop=stop)
    assert list((tmp_path / "dest").iterdir()) == []


def test_stop_ends_the_extraction_at_the_next_chunk(tmp_path: Path) -> None:
    data = tar_gz((info("big.bin"), os.urandom(4 << 20)))  # random: as large compressed
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    stop = threading.Event()
    read = 0

    def source() -> Iterator[bytes]:
        nonlocal read
        for piece in pieces:
            read += 1
            if read == 3:
                stop.set()  # as a cancel would, from another thread, in the middle of a member
            yield piece

    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match="stopped"):
        extract_archive(source(), dest, stop=stop)
    assert read <= 4 < len(pieces)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"plain text, not gzip", "not valid gzip"),
        (gzip.compress(b"\x01" * 1024, mtime=0), "not a valid"),
    ],
)
def test_garbage_is_refused(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(ArchiveError, match=reason):
        extract_archive(data, tmp_path)


def test_a_file_cannot_replace_a_directory(tmp_path: Path) -> None:
    (tmp_path / "q").mkdir()
    with pytest.raises(ArchiveError, match="a directory of that name exists"):
        extract_archive(tar_gz((info("q"), b"x")), tmp_path)


def test_existing_symlink_in_dest_is_not_followed(tmp_path: Path, with_filter: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "q").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArchiveError, match="'q' on the path is a symlink|outside the destination"):
        extract_archive(tar_gz((info("q/evil.sql"), b"x")), dest)
    assert list(outside.iterdir()) == []


def test_extract_creates_dest_and_overwrites_files(tmp_path: Path) -> None:
    dest = tmp_path / "new" / "dest"
    extract_archive(tar_gz((info("a"), b"old")), dest)
    extract_archive(tar_gz((info("a"), b"new")), dest)
    assert (dest / "a").read_bytes() == b"new"
