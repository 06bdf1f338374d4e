"""``td.bulk_imports``: bulk import sessions (create, upload parts, freeze, perform, commit)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping, Sequence
from typing import Any

import anyio.to_thread
import msgpack

from aiotd._http import segment
from aiotd._paging import Pager, one_page
from aiotd._polling import Engine
from aiotd._resource import CoreResource
from aiotd._waiting import wait_all as _wait_all
from aiotd.core._common import call_filled, db_segment, table_segment
from aiotd.core.imports import _gzip
from aiotd.core.results_io import RowDecoder
from aiotd.errors import Conflict
from aiotd.models.core import (
    BulkImport,
    BulkImportList,
    BulkImportParts,
    BulkImportPerform,
    BulkImportRef,
)

__all__ = ["BulkImports"]

_OCTETS = {"Content-Type": "application/octet-stream"}


def _part_name(part: str) -> str:
    """A part name TD accepts: not empty, no ``/``, at most one ``.`` (as td-client-python)."""
    if not isinstance(part, str) or not part:
        raise ValueError("part name must be a non-empty str")
    if "/" in part or part.count(".") > 1:
        raise ValueError(f"part name must have no '/' and at most one '.': {part!r}")
    return segment(part)


def _known(name: str) -> dict[str, str]:
    """What every answer about session ``name`` says: its name, twice."""
    return {"name": name, "bulk_import": name}


def _pack(records: Iterable[Mapping[str, Any]]) -> bytes:
    packer = msgpack.Packer(autoreset=True)
    out = bytearray()
    for index, record in enumerate(records):
        try:
            out += packer.pack(record)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(f"record {index} cannot be packed as msgpack: {exc}") from None
    return _gzip(bytes(out))


class _SessionKind:
    """How the poll engine follows a session being committed (v3-api.md §1.12).

    ``show`` is the whole record; TD has no listing of the sessions being committed. The
    session is done once ``committed``: TD names no state for a commit that failed (a
    commit that cannot start is refused with 400), and td-client-python's
    ``commit(wait=True)`` likewise polls ``show`` until ``committed``.
    """

    name = "bulk import"

    def __init__(self, bulk_imports: BulkImports) -> None:
        self._bulk_imports = bulk_imports

    async def fetch(self, item_id: str) -> BulkImport:
        return await self._bulk_imports.get(item_id)

    async def fetch_final(self, item_id: str) -> BulkImport:
        return await self._bulk_imports.get(item_id)

    def status(self, record: BulkImport) -> str:
        return record.status or ""

    def finished(self, record: BulkImport) -> bool:
        return record.status == "committed"

    def needs_final(self, record: BulkImport) -> bool:
        return False

    def may_hide(self, status: str | None) -> bool:
        return False

    async def listing(self, watched: Sequence[str], page_budget: int) -> None:
        return None


class BulkImports(CoreResource):
    """Bulk import sessions: ``/v3/bulk_import/...`` (v3-api.md §1.12).

    The flow: ``create`` -> ``upload_part`` (any number, any order) -> ``freeze`` ->
    ``perform`` (a job that validates the parts) -> ``commit`` (records become visible).
    """

    async def create(
        self, name: str, *, database: str, table: str, exist_ok: bool = False, **extra: Any
    ) -> BulkImportRef:
        """Open a session writing into ``database.table``; Conflict if the name is taken.

        Retried only with ``exist_ok`` (a retried create that was applied answers 409).
        """
        path = (
            f"/v3/bulk_import/create/{segment(name)}/{db_segment(database)}/{table_segment(table)}"
        )
        try:
            return await call_filled(
                self,
                "POST",
                path,
                BulkImportRef,
                _known(name),
                data=extra,
                idempotent=exist_ok,
            )
        except Conflict:
            if not exist_ok:
                raise
            return BulkImportRef(name=name, bulk_import=name)

    def list(self) -> Pager[BulkImport]:
        """Every session of the account: ``await`` or ``async for`` (one response)."""

        async def fetch() -> builtins.list[BulkImport]:
            path = "/v3/bulk_import/list"
            return (await self._call("GET", path, BulkImportList)).bulk_imports

        return one_page(fetch)

    async def get(self, name: str) -> BulkImport:
        """``bulk_import/show``: the session's status, counts and job."""
        return await self._call("GET", f"/v3/bulk_import/show/{segment(name)}", BulkImport)

    async def list_parts(self, name: str) -> BulkImportParts:
        """The names of the parts uploaded so far."""
        path = f"/v3/bulk_import/list_parts/{segment(name)}"
        return await call_filled(self, "GET", path, BulkImportParts, _known(name))

    async def upload_part(
        self,
        name: str,
        part: str,
        records: bytes | Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
    ) -> BulkImportRef:
        """Upload one part: records (packed to msgpack.gz here) or msgpack.gz bytes as they are.

        A part uploaded again under the same name replaces it, so the PUT is retried.
        Records without a valid ``time`` are not refused here: TD counts them as error
        records of the session (see ``error_records``).
        """
        path = f"/v3/bulk_import/upload_part/{segment(name)}/{_part_name(part)}"
        if isinstance(records, (bytes, bytearray, memoryview)):
            body = bytes(records)
        else:
            # one part is held whole anyway: it is the body of one request
            if isinstance(records, AsyncIterable):
                batch = [record async for record in records]
            else:
                batch = builtins.list(records)
            body = await anyio.to_thread.run_sync(_pack, batch)
        return await call_filled(
            self,
            "PUT",
            path,
            BulkImportRef,
            _known(name),
            data=body,
            headers=_OCTETS,
            idempotent=True,
        )

    async def delete_part(self, name: str, part: str) -> BulkImportRef:
        """Remove an uploaded part; sent once."""
        path = f"/v3/bulk_import/delete_part/{segment(name)}/{_part_name(part)}"
        return await call_filled(self, "POST", path, BulkImportRef, _known(name))

    async def freeze(self, name: str) -> BulkImportRef:
        """Refuse further parts (needed before ``perform``); repeating it is harmless."""
        path = f"/v3/bulk_import/freeze/{segment(name)}"
        return await call_filled(self, "POST", path, BulkImportRef, _known(name), idempotent=True)

    async def unfreeze(self, name: str) -> BulkImportRef:
        """Accept parts again; repeating it is harmless."""
        path = f"/v3/bulk_import/unfreeze/{segment(name)}"
        return await call_filled(self, "POST", path, BulkImportRef, _known(name), idempotent=True)

    async def perform(
        self,
        name: str,
        *,
        priority: int | None = None,
        wait: bool = False,
        timeout: float | None = None,
        **extra: Any,
    ) -> BulkImportPerform:
        """Start the job that converts the parts; TD's answer carries its ``job_id``.

        Sent once (each perform starts a job); an answer without ``job_id`` is a
        DecodeError. With ``wait``, returns once the job has finished, raising
        ``JobFailed`` if it failed (``timeout`` bounds the wait).
        """
        path = f"/v3/bulk_import/perform/{segment(name)}"
        form = {"priority": priority, **extra}
        ref = await call_filled(self, "POST", path, BulkImportPerform, _known(name), data=form)
        if wait:
            await self._client.jobs.wait(ref.job_id, timeout=timeout, raise_on_failure=True)
        return ref

    async def commit(
        self, name: str, *, wait: bool = False, timeout: float | None = None
    ) -> BulkImportRef:
        """Make the performed records visible in the table; sent once.

        TD commits in the background: with ``wait``, the client's poll engine follows the
        session until it is ``committed`` (its intervals are the client's ``PollSettings``;
        WaitTimeout with the last session seen after ``timeout``).
        """
        path = f"/v3/bulk_import/commit/{segment(name)}"
        ref = await call_filled(self, "POST", path, BulkImportRef, _known(name))
        if wait:
            await _wait_all(self._sessions, [name], timeout=timeout)
        return ref

    @property
    def _sessions(self) -> Engine[BulkImport]:
        """The poll engine of this client's committing sessions."""
        return self._engine(lambda sessions, s: Engine(_SessionKind(sessions), s))

    async def delete(self, name: str) -> BulkImportRef:
        """Delete the session and its parts; sent once."""
        path = f"/v3/bulk_import/delete/{segment(name)}"
        return await call_filled(self, "POST", path, BulkImportRef, _known(name))

    async def error_records(
        self, name: str, *, chunk_size: int = 1 << 16
    ) -> AsyncGenerator[Any, None]:
        """The records ``perform`` rejected, streamed from TD's gzip'd msgpack (may be none)."""
        path = f"/v3/bulk_import/error_records/{segment(name)}"
        decoder = RowDecoder(gzip=True)
        async with self._stream(path) as resp:
            async for chunk in resp.iter_chunks(chunk_size):
                for record in decoder.feed(chunk):
                    yield record
        decoder.close()
