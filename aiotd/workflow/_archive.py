"""Workflow project archives: build the tar.gz ``digdag push`` would send, and extract one safely.

Pure code (no network): the HTTP layer sends :class:`ArchiveFile` chunks as the body of
``PUT /api/projects`` and hands a downloaded archive to :func:`extract_archive`.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import re
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, TYPE_CHECKING

from aiotd._gzip import Gunzip
from aiotd.errors import ArchiveError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "MAX_ARCHIVE_SIZE",
    "ArchiveError",
    "ArchiveFile",
    "IgnoreRules",
    "build_archive",
    "build_archive_from_mapping",
    "extract_archive",
]

# The server's api.max_archive_total_size_limit default (reference §2.1); it applies to the
# Content-Length, to each entry and to the sum of the entries.
MAX_ARCHIVE_SIZE = 2 * 1024 * 1024

_IGNORE_FILE = ".digdagignore"
_SPOOL_BYTES = 4 * 1024 * 1024
_COPY_CHUNK = 64 * 1024
# An extended header (GNU long name, PAX record) longer than this is refused before it is read:
# tarfile would hold it in memory whole.
_MAX_EXTENDED_HEADER = 64 * 1024
# Extended headers allowed in a row before one member's own header.
_MAX_EXTENDED_CHAIN = 4
_EXTENDED_TYPES = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)


def _refused(member: str, reason: str) -> ArchiveError:
    return ArchiveError(f"archive member {member!r} refused: {reason}", member=member)


# ----------------------------------------------------------------------------------------------
# .digdagignore: gitignore syntax as JGit's IgnoreNode reads it (reference §5.1). digdag-core's
# DigdagIgnore hands each name to IgnoreNode.checkIgnored(path, isDirectory) (JGit 5.11.1 in
# digdag-core/build.gradle) while ProjectArchive.listFiles walks the tree, never entering a
# rejected directory. pathspec's gitwildmatch is not that matcher: it has no POSIX classes
# (``[[:digit:]]``), refuses a whole file over a trailing backslash that JGit drops, and every
# pattern of it also matches all paths below a matching directory, so with negations it keeps
# files JGit leaves out (``*/a``, ``[!a]``, ``!/[!a]`` keeps ``b/x``). Run side by side with
# JGit's IgnoreNode on random rules (brackets, backslashes, ``**``, negations) and trees, the
# translator below kept the same files.

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "digit": "0-9",
    "lower": "a-z",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9a-fA-F",
}


def _class_to_regex(pattern: str, start: int) -> tuple[str, int] | None:
    """Translate the bracket expression at ``pattern[start] == '['``; None if it is not closed
    within its path segment (JGit splits a pattern at each ``/`` first)."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    parts: list[str] = []
    first = True
    while i < len(pattern):
        c = pattern[i]
        if c == "/":
            return None
        if c == "]" and not first:
            body = "".join(parts)
            return ("[^/" + body + "]" if negate else "[" + body + "]"), i + 1
        first = False
        if c == "[" and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            if end != -1 and pattern[i + 2 : end] in _POSIX_CLASSES:
                parts.append(_POSIX_CLASSES[pattern[i + 2 : end]])
                i = end + 2
                continue
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            c = pattern[i]
        if c == "-" and parts and i + 1 < len(pattern) and pattern[i + 1] != "]":
            parts.append("-")
        else:
            parts.append(re.escape(c))
        i += 1
    return None


def _glob_to_regex(glob: str) -> str | None:
    """Translate one gitignore glob (no leading ``/``, no trailing ``/``) to a regex body; None
    for a bracket left open, which JGit refuses ("Not closed bracket?"): the line matches
    nothing."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            run = i
            while run < n and glob[run] == "*":
                run += 1
            at_segment_start = i == 0 or glob[i - 1] == "/"
            at_segment_end = run == n or glob[run] == "/"
            if run - i >= 2 and at_segment_start and at_segment_end:
                if run == n:
                    out.append(".*")  # "abc/**": everything inside
                else:
                    out.append("(?:.*/)?")  # "**/x", "a/**/b": zero or more directories
                    run += 1
            else:
                out.append("[^/]*")
            i = run
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            translated = _class_to_regex(glob, i)
            if translated is None:
                return None
            out.append(translated[0])
            i = translated[1]
        elif c == "\\":
            # JGit drops a backslash that ends the pattern.
            out.append(re.escape(glob[i + 1]) if i + 1 < n else "")
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class _IgnorePattern:
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool


def _strip_trailing_spaces(line: str) -> str:
    while line.endswith(" ") and not line.endswith("\\ "):
        line = line[:-1]
    return line


class IgnoreRules:
    """Parsed gitignore-syntax rules, matched against ``/``-separated paths relative to the root.

    The last matching pattern decides; ``!`` re-includes. As in git, a path inside an ignored
    directory cannot be re-included: the walk in :func:`build_archive` never enters one.
    """

    def __init__(self, text: str = "") -> None:
        self._patterns: list[_IgnorePattern] = []
        for raw in text.splitlines():
            line = _strip_trailing_spaces(raw)
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated:
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            # A slash at the start or in the middle anchors the pattern to the root; otherwise
            # it matches a name at any depth.
            anchored = "/" in line
            body = _glob_to_regex(line.lstrip("/"))
            if not body:
                continue
            regex = re.compile(("" if anchored else "(?:.*/)?") + body, re.DOTALL)
            self._patterns.append(_IgnorePattern(regex, negated, dir_only))

    def ignored(self, path: str, *, is_dir: bool) -> bool:
        """Whether ``path`` (relative, ``/``-separated) is ignored by these rules."""
        result = False
        for pattern in self._patterns:
            if pattern.dir_only and not is_dir:
                continue
            if pattern.regex.fullmatch(path):
                result = not pattern.negated
        return result


# ----------------------------------------------------------------------------------------------
# Building


class ArchiveFile:
    """A built project archive: its gzip bytes in a spooled temporary file, ready to send.

    ``size`` is the exact byte count for Content-Length; ``names`` lists the entries in archive
    order. :meth:`chunks` may be iterated again (for a retried upload), one iteration at a time.
    """

    def __init__(self, file: IO[bytes], *, size: int, names: tuple[str, ...]) -> None:
        self._file = file
        self.size = size
        self.names = names

    def chunks(self, chunk_size: int = 65536) -> Iterator[bytes]:
        """The archive bytes from the start, in pieces of at most ``chunk_size``."""
        self._file.seek(0)
        while chunk := self._file.read(chunk_size):
            yield chunk

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        """Release the temporary file."""
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class _Entry:
    name: str
    size: int
    mode: int
    mtime: int
    path: str | None = None  # a file to read, or None when ``data`` holds the content
    data: bytes = b""
    linkname: str | None = None


def _check_entries(entries: list[_Entry], max_size: int) -> None:
    if not any("/" not in e.name and e.name.endswith(".dig") for e in entries):
        raise ArchiveError("the project has no workflow: no top-level *.dig file")
    total = 0
    for entry in entries:
        if entry.size > max_size:
            raise ArchiveError(
                f"{entry.name} is {entry.size} bytes, over the archive limit of {max_size} bytes",
                member=entry.name,
            )
        total += entry.size
    if total > max_size:
        raise ArchiveError(
            f"the project files total {total} bytes, over the archive limit of {max_size} bytes"
        )


def _write_archive(entries: list[_Entry], max_size: int) -> ArchiveFile:
    _check_entries(entries, max_size)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
    try:
        # mtime=0 and no file name in the gzip header: the same files give the same bytes.
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=spool, mtime=0) as gz,
            # GNU format: long names become ././@LongLink entries, never PaxHeader files
            # (reference §7 item 4).
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            for entry in entries:
                info = tarfile.TarInfo(entry.name)
                info.mode = entry.mode
                info.mtime = entry.mtime
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if entry.linkname is not None:
                    info.type = tarfile.SYMTYPE
                    info.linkname = entry.linkname
                    tar.addfile(info)
                elif entry.path is not None:
                    info.size = entry.size
                    try:
                        source = open(entry.path, "rb")  # noqa: SIM115
                    except OSError as exc:  # gone or unreadable since the walk
                        raise _unreadable(entry.name, exc) from exc
                    with source:
                        tar.addfile(info, source)
                else:
                    info.size = entry.size
                    tar.addfile(info, io.BytesIO(entry.data))
        size = spool.tell()
        if size > max_size:
            raise ArchiveError(f"the archive is {size} bytes, over the limit of {max_size} bytes")
    except BaseException:
        spool.close()
        raise
    return ArchiveFile(spool, size=size, names=tuple(e.name for e in entries))


def _symlink_entry(root: str, root_real: str, path: str, name: str, mtime: int) -> _Entry:
    """A symlink stored as a relative link, as ``digdag push`` does (reference §5.1)."""
    target = os.readlink(path)
    resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
    for base in (root, root_real):
        if resolved == base or resolved.startswith(base + os.sep):
            inside = os.path.join(root, os.path.relpath(resolved, base))
            linkname = os.path.relpath(inside, os.path.dirname(path)).replace(os.sep, "/")
            return _Entry(name, 0, 0o777, mtime, linkname=linkname)
    raise ArchiveError(
        f"{name} is a symlink to {target!r}, which is outside the project {root}", member=name
    )


def _unreadable(name: str, exc: OSError) -> ArchiveError:
    """A project file the archive cannot be built from; the OSError is chained by the caller."""
    return ArchiveError(f"{name} cannot be read: {exc.strerror or exc}", member=name)


def _ignore_rules(root: str) -> IgnoreRules:
    path = os.path.join(root, _IGNORE_FILE)
    if not os.path.isfile(path):
        return IgnoreRules()
    try:
        with open(path, encoding="utf-8") as f:
            return IgnoreRules(f.read())
    except OSError as exc:
        raise _unreadable(_IGNORE_FILE, exc) from exc


def _walk(root: str) -> list[_Entry]:
    root_real = os.path.realpath(root)
    rules = _ignore_rules(root)
    entries: list[_Entry] = []
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as it:
                children = list(it)
        except OSError as exc:  # e.g. a path longer than the system allows
            raise _unreadable(prefix.rstrip("/") or root, exc) from exc
        for child in children:
            # Every name starting with "." is skipped at any depth, dot-directories are not
            # entered (reference §5.1); .digdagignore itself is one of them.
            if child.name.startswith("."):
                continue
            name = prefix + child.name
            try:
                # Like digdag, a symlink to a directory counts as a directory for ignore rules.
                is_dir = child.is_dir()
            except OSError as exc:
                # A symlink that cannot be followed (a loop, a name too long for the system)
                # is refused unless the rules ignore it: whether it is a directory is unknown.
                if rules.ignored(name, is_dir=False):
                    continue
                raise _unreadable(name, exc) from exc
            if rules.ignored(name, is_dir=is_dir):
                continue
            try:
                st = child.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    entries.append(
                        _symlink_entry(root, root_real, child.path, name, int(st.st_mtime))
                    )
                elif stat.S_ISDIR(st.st_mode):
                    pending.append((child.path, name + "/"))
                elif stat.S_ISREG(st.st_mode):
                    mode = st.st_mode & 0o777  # permission bits only, as digdag (reference §5.1)
                    entries.append(
                        _Entry(name, st.st_size, mode, int(st.st_mtime), path=child.path)
                    )
                else:
                    raise ArchiveError(
                        f"{name} is not a regular file, directory or symlink", member=name
                    )
            except OSError as exc:
                raise _unreadable(name, exc) from exc
    entries.sort(key=lambda e: e.name)
    return entries


def build_archive(
    directory: str | os.PathLike[str], *, max_size: int = MAX_ARCHIVE_SIZE
) -> ArchiveFile:
    """Build the tar.gz of a project directory as ``digdag push`` does (reference §5.1).

    Files only (no directory entries), permission bits and mtimes kept, dot names and
    ``.digdagignore`` matches left out, symlinks inside the project stored as relative links.
    Raises :class:`ArchiveError` for a symlink leaving the project, a file that cannot be read
    (the OSError chained: a symlink loop, a name too long), a project without a top-level
    ``*.dig``, or any size over ``max_size``. Blocking file I/O: run it in a thread from async
    code.
    """
    root = os.path.abspath(os.fspath(directory))
    if not os.path.isdir(root):
        raise ArchiveError(f"{root} is not a directory")
    return _write_archive(_walk(root), max_size)


def _check_mapping_name(name: str) -> None:
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        raise ArchiveError(f"invalid project file name {name!r}", member=name)
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ArchiveError(
            f"invalid project file name {name!r}: empty, '.' or '..' segment", member=name
        )


def build_archive_from_mapping(
    files: Mapping[str, bytes | str],
    *,
    max_size: int = MAX_ARCHIVE_SIZE,
    mtime: int | None = None,
) -> ArchiveFile:
    """Build a project archive from in-memory files, ``{"main.dig": "...", "q/a.sql": b"..."}``.

    Names are relative ``/``-separated paths; text is stored as UTF-8, every file with mode
    0644 and ``mtime`` (default: now). The same checks as :func:`build_archive` apply.
    """
    stamp = int(time.time()) if mtime is None else mtime
    entries: list[_Entry] = []
    for name, content in files.items():
        _check_mapping_name(name)
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        entries.append(_Entry(name, len(data), 0o644, stamp, data=data))
    entries.sort(key=lambda e: e.name)
    names = {e.name for e in entries}
    for entry in entries:
        parent = entry.name.rpartition("/")[0]
        while parent:
            if parent in names:
                raise ArchiveError(
                    f"{parent!r} is both a file and the directory of {entry.name!r}",
                    member=entry.name,
                )
            parent = parent.rpartition("/")[0]
    return _write_archive(entries, max_size)


# ----------------------------------------------------------------------------------------------
# Extraction


class _GunzipReader:
    """A file-like ``read`` over a one-member gzip stream, at most ``limit`` bytes decompressed.

    The cap bounds the work a decompression bomb can cause, whatever the tar headers claim.
    """

    def __init__(self, source: Iterator[bytes], limit: int) -> None:
        self._source = source
        self._gunzip = Gunzip(
            what="the archive",
            error=ArchiveError,
            step=_COPY_CHUNK,
            max_size=limit,
            concatenated=False,
        )
        self._pieces: Iterator[bytes] = iter(())
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buffer) < size) and not self._gunzip.ended:
            piece = next(self._pieces, None)
            if piece is not None:
                self._buffer += piece
                continue
            data = next(self._source, None)
            if data is None:
                self._gunzip.close()  # the stream ends before its member: truncated
            else:
                self._pieces = self._gunzip.feed(data)
        if size < 0:
            size = len(self._buffer)
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk


def _checked_tarinfo_class() -> type[tarfile.TarInfo]:
    """A TarInfo class that refuses oversized or endless extended headers before tarfile reads
    them (tarfile would load a GNU long name or a PAX record into memory whole)."""
    chain = 0

    class _CheckedTarInfo(tarfile.TarInfo):
        @classmethod
        def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
            nonlocal chain
            info = super().frombuf(buf, encoding, errors)
            if info.type in _EXTENDED_TYPES:
                chain += 1
                if info.size > _MAX_EXTENDED_HEADER:
                    raise ArchiveError(
                        f"an extended tar header of {info.size} bytes is over the limit of "
                        f"{_MAX_EXTENDED_HEADER}; refused"
                    )
                if chain > _MAX_EXTENDED_CHAIN:
                    raise ArchiveError("too many extended tar headers in a row; refused")
            else:
                chain = 0
            return info

    return _CheckedTarInfo


def _member_parts(name: str) -> list[str]:
    """The path segments of a member name, refusing anything that could leave the destination."""
    if not name or "\0" in name or "\\" in name:
        raise _refused(name, "empty name, NUL or backslash in the name")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise _refused(name, "absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refused(name, "'..' in the path")
    if not parts:
        raise _refused(name, "the name is the destination itself")
    return parts


def _check_link_target(name: str, parts: list[str], linkname: str) -> None:
    """Allow only relative links that stay in the destination: '..' may only lead the target,
    so no symlink along the way can redirect it."""
    if not linkname or linkname.startswith("/") or "\\" in linkname or "\0" in linkname:
        raise _refused(name, f"symlink to {linkname!r}: absolute or malformed target")
    segments = linkname.split("/")
    ups = 0
    while ups < len(segments) and segments[ups] == "..":
        ups += 1
    if ".." in segments[ups:]:
        raise _refused(name, f"symlink to {linkname!r}: '..' after a name")
    if ups > len(parts) - 1:
        raise _refused(name, f"symlink to {linkname!r} leaves the destination")


def _ensure_directory(dest: str, parts: list[str], member: str) -> str:
    """Create ``dest/parts...`` as real directories; an existing symlink or file on the way is
    refused, so nothing is ever written through a link."""
    path = dest
    for part in parts:
        path = os.path.join(path, part)
        try:
            os.mkdir(path)
        except FileExistsError:
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise _refused(member, f"{part!r} on the path is a symlink") from None
            if not stat.S_ISDIR(mode):
                raise _refused(member, f"{part!r} on the path is not a directory") from None
    return path


def _safe_file_mode(mode: int) -> int:
    """Permission bits as Python's ``data`` filter sets them: owner read/write added; setuid,
    setgid, sticky and group/other write removed; group/other execute only with the owner's."""
    mode = (mode & 0o755) | 0o600
    if not mode & stat.S_IXUSR:
        mode &= ~(stat.S_IXGRP | stat.S_IXOTH)
    return mode


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise ArchiveError("the extraction was stopped")


def _write_file(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    directory: str,
    final: str,
    stop: threading.Event | None,
) -> None:
    """Copy a regular member to a temporary name beside ``final``, then rename it into place."""
    source = tar.extractfile(member)
    if source is None:
        raise _refused(member.name, "no data")
    fd, temp = tempfile.mkstemp(prefix=".aiotd-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            remaining = member.size
            while remaining > 0:
                _check_stop(stop)
                chunk = source.read(min(_COPY_CHUNK, remaining))
                if not chunk:
                    raise ArchiveError(
                        "the archive is truncated inside a member", member=member.name
                    )
                out.write(chunk)
                remaining -= len(chunk)
        os.chmod(temp, _safe_file_mode(member.mode))
        os.utime(temp, (member.mtime, member.mtime))
        os.replace(temp, final)
    except BaseException:
        if os.path.lexists(temp):
            os.unlink(temp)
        raise


def _write_symlink(linkname: str, directory: str, final: str) -> None:
    temp = os.path.join(directory, f".aiotd-{os.urandom(8).hex()}.part")
    os.symlink(linkname, temp)
    try:
        os.replace(temp, final)
    except BaseException:
        os.unlink(temp)
        raise


def _source_chunks(source: bytes | IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return iter([bytes(source)])
    read = getattr(source, "read", None)
    if read is not None:
        return iter(lambda: bytes(read(_COPY_CHUNK)), b"")
    return iter(source)


@dataclass
class _Extraction:
    """One :func:`extract_archive` call: its limits, and the members and bytes it has seen."""

    root: str
    max_total_size: int
    max_file_size: int
    max_files: int
    stop: threading.Event | None
    members: int = 0
    total: int = 0
    seen: set[str] = field(default_factory=set)

    def check(self, member: tarfile.TarInfo) -> list[str]:
        """The member's path segments once it passes every limit and rule, else ArchiveError."""
        _check_stop(self.stop)
        name = member.name
        self.members += 1
        if self.members > self.max_files:
            raise ArchiveError(f"the archive has more than {self.max_files} members; refused")
        parts = _member_parts(name)
        key = "/".join(parts)
        if key in self.seen:
            raise _refused(name, "duplicate member")
        self.seen.add(key)
        if member.issym():
            _check_link_target(name, parts, member.linkname)
        elif member.isreg() and not member.issparse():
            if member.size > self.max_file_size:
                raise _refused(name, f"{member.size} bytes, over the limit of {self.max_file_size}")
            self.total += member.size
            if self.total > self.max_total_size:
                raise _refused(
                    name, f"the files total more than the limit of {self.max_total_size} bytes"
                )
        elif not member.isdir():
            raise _refused(name, "only regular files, directories and symlinks are allowed")
        data_filter = getattr(tarfile, "data_filter", None)  # 3.10.12+, 3.11.4+, 3.12+
        if data_filter is not None:
            try:
                data_filter(member, self.root)
            except tarfile.FilterError as exc:
                raise _refused(name, str(exc)) from None
        return parts

    def write(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: list[str]) -> bool:
        """Create a checked member under the root; whether it was a file or symlink."""
        name = member.name
        try:
            if member.isdir():
                _ensure_directory(self.root, parts, name)
                return False
            directory = _ensure_directory(self.root, parts[:-1], name)
            final = os.path.join(directory, parts[-1])
            if os.path.isdir(final) and not os.path.islink(final):
                raise _refused(name, "a directory of that name exists")
            if member.issym():
                _write_symlink(member.linkname, directory, final)
            else:
                _write_file(tar, member, directory, final, self.stop)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise _refused(name, "a name too long for this file system") from None
            raise
        return True


def extract_archive(
    source: bytes | IO[bytes] | Iterable[bytes],
    dest: str | os.PathLike[str],
    *,
    max_total_size: int = 1 << 30,
    max_file_size: int = 1 << 30,
    max_files: int = 100_000,
    stop: threading.Event | None = None,
) -> list[str]:
    """Extract a project tar.gz (bytes, a binary file or an iterable of chunks) into ``dest``.

    Returns the names of the files and symlinks written. Nothing is written outside ``dest``
    (created if missing): absolute names, ``..``, hard links, devices, fifos and symlinks that
    are absolute or leave ``dest`` are refused with :class:`ArchiveError` naming the member,
    as are members over ``max_file_size``, a total over ``max_total_size`` and more than
    ``max_files`` members, and names too long for the file system. Each file is written under
    a temporary name and renamed when complete, so a failure leaves no partial file under a
    member's name; files already extracted stay. Once ``stop`` is set, the extraction ends
    with :class:`ArchiveError` at the next member or 64 KiB chunk. Blocking: from async code,
    download to a temporary file and run this in a worker thread.
    """
    root = os.path.abspath(os.fspath(dest))
    os.makedirs(root, exist_ok=True)
    # Headers and padding may add some bytes per member to the decompressed stream.
    reader = _GunzipReader(_source_chunks(source), max_total_size + max_files * 4096 + (1 << 20))
    extraction = _Extraction(root, max_total_size, max_file_size, max_files, stop)
    written: list[str] = []
    try:
        # Stream mode only ever calls read(): the reader need not seek, tell or write.
        with tarfile.open(  # type: ignore[call-overload]
            fileobj=reader, mode="r|", tarinfo=_checked_tarinfo_class()
        ) as tar:
            for member in tar:
                parts = extraction.check(member)
                if extraction.write(tar, member, parts):
                    written.append("/".join(parts))
    except tarfile.TarError as exc:
        raise ArchiveError(f"the archive is not a valid tar.gz: {exc}") from None
    return written
