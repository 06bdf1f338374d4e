"""``td.workflow.logs``: task log files of an attempt, read as lines in bounded memory."""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack

from aiotd._gzip import Gunzip
from aiotd._http import StreamResponse, segment
from aiotd._resource import WorkflowResource
from aiotd.errors import APIError, DecodeError
from aiotd.models.workflow import LogFileHandle, LogFileList

__all__ = ["LogLines", "Logs"]

logger = logging.getLogger("aiotd")

_GZIP_MAGIC = b"\x1f\x8b"
_STEP = 1 << 16
# A log file is gzip data, not a gzip Content-Encoding: ask for the bytes as stored.
_RAW = {"Accept": "application/gzip, */*", "Accept-Encoding": "identity"}


class LogLines:
    """Turns the bytes of a ``.log.gz`` into text lines as they arrive.

    Several gzip members are read one after the other. A body that is not gzip (storage that
    already decoded it) is read as text. The decompressed size is capped at ``max_size``
    against gzip bombs; a line longer than ``max_line`` is cut into pieces of that length.
    """

    def __init__(self, *, max_size: int = 1 << 30, max_line: int = 1 << 20) -> None:
        if max_size < 1 or max_line < 1:
            raise ValueError("max_size and max_line must be >= 1")
        self._max_size = max_size
        self._max_line = max_line
        self._gzip: bool | None = None
        self._head = b""
        self._gunzip = Gunzip(what="the log file", step=_STEP)
        self._pending = bytearray()
        self._total = 0

    def feed(self, data: bytes) -> builtins.list[str]:
        """The complete lines that ``data`` finishes."""
        if self._gzip is None:
            self._head += data
            if len(self._head) < len(_GZIP_MAGIC):
                return []
            data, self._head = self._head, b""
            self._gzip = data.startswith(_GZIP_MAGIC)
        if not self._gzip:
            return self._text(data)
        lines: builtins.list[str] = []
        for out in self._gunzip.feed(data):
            lines.extend(self._text(out))
        return lines

    def close(self) -> builtins.list[str]:
        """The last line when the file does not end with a newline.

        A truncated gzip (a file still being written) keeps what it decoded, as the digdag
        CLI does (reference §2.6).
        """
        lines: builtins.list[str] = []
        if self._head:
            lines.extend(self._text(self._head))
            self._head = b""
        lines.extend(self._text(self._gunzip.flush()))
        if self._pending:
            lines.append(self._line(bytes(self._pending)))
            self._pending.clear()
        return lines

    def _text(self, data: bytes) -> builtins.list[str]:
        self._total += len(data)
        if self._total > self._max_size:
            raise DecodeError(f"the log file decompresses to more than {self._max_size} bytes")
        pending = self._pending
        pending += data
        lines: builtins.list[str] = []
        start = 0
        while True:
            end = pending.find(b"\n", start)
            if end < 0:
                break
            while end - start > self._max_line:
                lines.append(self._line(bytes(pending[start : start + self._max_line])))
                start += self._max_line
            lines.append(self._line(bytes(pending[start:end])))
            start = end + 1
        while len(pending) - start > self._max_line:
            lines.append(self._line(bytes(pending[start : start + self._max_line])))
            start += self._max_line
        del pending[:start]
        return lines

    @staticmethod
    def _line(raw: bytes) -> str:
        return raw.decode("utf-8", "replace").removesuffix("\r")


class Logs(WorkflowResource):
    """Task logs of attempts: ``/api/logs/{attempt_id}/files`` (reference §2.6)."""

    async def files(
        self, attempt_id: str | int, *, task: str | None = None, direct_download: bool = True
    ) -> builtins.list[LogFileHandle]:
        """The attempt's log files, sorted by name; ``task`` keeps the tasks whose full name
        starts with it (``+wf+step``). A task can have several files, written over time."""
        path = f"/api/logs/{segment(attempt_id)}/files"
        # `+` goes out as %2B: a raw `+` would reach the server as a space (reference §2.6)
        params = {"task": task, "direct_download": None if direct_download else False}
        return (await self._call("GET", path, LogFileList, params=params)).files

    async def read(
        self,
        attempt_id: str | int,
        file: LogFileHandle | str,
        *,
        max_size: int = 1 << 30,
    ) -> AsyncGenerator[str, None]:
        """The lines of one log file (a handle from ``files`` or a file name), gunzipped as
        they arrive. A handle's ``direct`` URL is fetched without the API key; if storage
        refuses it (an expired link), the file is read through the API instead."""
        decoder = LogLines(max_size=max_size)
        async with AsyncExitStack() as stack:
            resp = await self._open(stack, attempt_id, file)
            async for chunk in resp.iter_chunks(_STEP):
                for line in decoder.feed(chunk):
                    yield line
        for line in decoder.close():
            yield line

    async def text(
        self, attempt_id: str | int, file: LogFileHandle | str, *, max_size: int = 1 << 26
    ) -> str:
        """One whole log file as text (use ``read`` to keep memory flat)."""
        return "".join(
            [line + "\n" async for line in self.read(attempt_id, file, max_size=max_size)]
        )

    async def _open(
        self, stack: AsyncExitStack, attempt_id: str | int, file: LogFileHandle | str
    ) -> StreamResponse:
        if isinstance(file, LogFileHandle):
            name, direct = file.file_name, file.direct
        else:
            name, direct = file, None
        if direct:
            try:
                # The credentials are in the pre-signed URL: no API key (reference §2.6).
                stream = self._stream_presigned(direct, headers=_RAW)
                return await stack.enter_async_context(stream)
            except APIError as exc:
                logger.debug("direct log URL answered %s; reading through the API", exc.status)
        path = f"/api/logs/{segment(attempt_id)}/files/{segment(name)}"
        return await stack.enter_async_context(self._stream(path, headers=_RAW))
