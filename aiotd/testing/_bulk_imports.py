"""``/v3/bulk_import``: bulk-import sessions (reference/v3-api.md §1.12): parts uploaded as
msgpack, performed by a job, committed into the table in the background."""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import msgpack
from aiohttp import web

from aiotd.testing._common import APIError, form_params, int_param, json_response
from aiotd.testing._jobs import SUCCESS, JobStore
from aiotd.testing._store import Store

__all__ = ["BulkImport", "BulkImports", "decode_records"]


def decode_records(body: bytes) -> list[Any]:
    """gzip'd (or plain) msgpack stream -> objects; bad data is a 400."""
    try:
        raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        return _unpack_all(raw)
    except (OSError, EOFError, zlib.error, ValueError, msgpack.UnpackException) as exc:
        raise APIError(400, f"Invalid import data: {exc}") from None


def _unpack_all(raw: bytes) -> list[Any]:
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(raw), 1), strict_map_key=False)
    unpacker.feed(raw)
    return list(unpacker)


@dataclass
class BulkImport:
    """A bulk-import session (v3-api §1.12)."""

    name: str
    database: str
    table: str
    status: str = "uploading"
    job_id: int | None = None
    upload_frozen: bool = False
    parts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: list[Any] = field(default_factory=list)
    valid_records: int | None = None
    error_records: int | None = None
    valid_parts: int | None = None
    error_parts: int | None = None
    committed_at: float = 0.0


class BulkImports:
    """The bulk-import sessions and their routes. ``commit_time`` (seconds a commit shows
    ``committing`` before its rows land) may be changed at any time."""

    def __init__(self, store: Store, jobs: JobStore, *, commit_time: float) -> None:
        self.store = store
        self.jobs = jobs
        self.commit_time = commit_time
        self.sessions: dict[str, BulkImport] = {}
        self._commits: dict[str, asyncio.TimerHandle] = {}

    def close(self) -> None:
        """Drop the commits still under way (their rows stay out)."""
        for timer in self._commits.values():
            timer.cancel()
        self._commits.clear()

    def add_routes(self, app: web.Application) -> None:
        """Register the ``/v3/bulk_import/...`` routes on ``app``."""
        r = app.router
        r.add_post("/v3/bulk_import/create/{name}/{db}/{table}", self.create)
        r.add_post("/v3/bulk_import/delete/{name}", self.delete)
        r.add_get("/v3/bulk_import/show/{name}", self.show)
        r.add_get("/v3/bulk_import/list", self.list_sessions)
        r.add_get("/v3/bulk_import/list_parts/{name}", self.list_parts)
        r.add_put("/v3/bulk_import/upload_part/{name}/{part}", self.upload_part)
        r.add_post("/v3/bulk_import/delete_part/{name}/{part}", self.delete_part)
        r.add_post("/v3/bulk_import/freeze/{name}", self.freeze)
        r.add_post("/v3/bulk_import/unfreeze/{name}", self.unfreeze)
        r.add_post("/v3/bulk_import/perform/{name}", self.perform)
        r.add_post("/v3/bulk_import/commit/{name}", self.commit)
        r.add_get("/v3/bulk_import/error_records/{name}", self.error_records)

    def _session(self, name: str) -> BulkImport:
        session = self.sessions.get(name)
        if session is None:
            raise APIError(404, f"Bulk import session '{name}' does not exist")
        if session.status == "performing" and session.job_id is not None:
            job = self.jobs.get(session.job_id)
            if job.finished:
                session.status = "ready" if job.status == SUCCESS else "uploading"
                session.valid_records = sum(len(p) for p in session.parts.values())
                session.error_records = len(session.errors)
                session.valid_parts = len(session.parts)
                session.error_parts = 0
        if session.status == "committing" and time.time() >= session.committed_at:
            self._finish_commit(session)
        return session

    def _finish_commit(self, session: BulkImport) -> None:
        """Write a committing session's rows and mark it committed (once)."""
        timer = self._commits.pop(session.name, None)
        if timer is not None:
            timer.cancel()
        if session.status != "committing" or self.sessions.get(session.name) is not session:
            return
        for records in session.parts.values():
            self.store.insert(session.database, session.table, records)
        session.status = "committed"

    @staticmethod
    def _json(s: BulkImport) -> dict[str, Any]:
        return {
            "name": s.name,
            "database": s.database,
            "table": s.table,
            "status": s.status,
            "job_id": str(s.job_id) if s.job_id is not None else None,
            "valid_records": s.valid_records,
            "error_records": s.error_records,
            "valid_parts": s.valid_parts,
            "error_parts": s.error_parts,
            "upload_frozen": s.upload_frozen,
        }

    @staticmethod
    def _ref(name: str) -> web.Response:
        return json_response({"name": name, "bulk_import": name})

    async def create(self, request: web.Request) -> web.Response:
        await form_params(request)
        mi = request.match_info
        name = mi["name"]
        if len(name) < 3:
            raise APIError(422, "Validation failed: Name is too short")
        self.store.table(mi["db"], mi["table"])
        if name in self.sessions:
            raise APIError(409, f"Bulk import session {name} already exists")
        self.sessions[name] = BulkImport(name=name, database=mi["db"], table=mi["table"])
        return self._ref(name)

    async def delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._session(name)
        del self.sessions[name]
        timer = self._commits.pop(name, None)
        if timer is not None:
            timer.cancel()
        return self._ref(name)

    async def show(self, request: web.Request) -> web.Response:
        return json_response(self._json(self._session(request.match_info["name"])))

    async def list_sessions(self, request: web.Request) -> web.Response:
        sessions = [self._json(self._session(n)) for n in list(self.sessions)]
        return json_response({"bulk_imports": sessions})

    async def list_parts(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        session = self._session(name)
        return json_response({"parts": list(session.parts), "name": name, "bulk_import": name})

    async def upload_part(self, request: web.Request) -> web.Response:
        mi = request.match_info
        session = self._session(mi["name"])
        if session.upload_frozen:
            raise APIError(400, f"Bulk import session {session.name} is frozen")
        records = decode_records(await request.read())
        valid: list[dict[str, Any]] = []
        for record in records:
            if isinstance(record, dict) and isinstance(record.get("time"), int):
                valid.append(record)
            else:
                session.errors.append(record)
        session.parts[mi["part"]] = valid
        return self._ref(session.name)

    async def delete_part(self, request: web.Request) -> web.Response:
        mi = request.match_info
        session = self._session(mi["name"])
        session.parts.pop(mi["part"], None)
        return self._ref(session.name)

    async def freeze(self, request: web.Request) -> web.Response:
        session = self._session(request.match_info["name"])
        session.upload_frozen = True
        return self._ref(session.name)

    async def unfreeze(self, request: web.Request) -> web.Response:
        session = self._session(request.match_info["name"])
        session.upload_frozen = False
        return self._ref(session.name)

    async def perform(self, request: web.Request) -> web.Response:
        params = await form_params(request)
        session = self._session(request.match_info["name"])
        if session.status not in ("uploading", "ready"):
            raise APIError(400, f"Bulk import session {session.name} is {session.status}")
        job = self.jobs.issue(
            job_type="bulk_import_perform",
            database=session.database,
            query="",
            priority=int_param(params, "priority", 0) or 0,
        )
        session.job_id = job.id
        session.status = "performing"
        return json_response({"name": session.name, "bulk_import": session.name, "job_id": job.id})

    async def commit(self, request: web.Request) -> web.Response:
        session = self._session(request.match_info["name"])
        if session.status in ("committing", "committed"):
            return self._ref(session.name)
        if session.status != "ready":
            raise APIError(400, f"Bulk import session {session.name} is not ready to commit")
        self.store.writable(session.database)
        # TD commits in the background: ``committing`` until the rows are in the table.
        session.status = "committing"
        delay = self.commit_time
        session.committed_at = time.time() + delay
        loop = asyncio.get_running_loop()
        self._commits[session.name] = loop.call_later(delay, self._finish_commit, session)
        return self._ref(session.name)

    async def error_records(self, request: web.Request) -> web.Response:
        session = self._session(request.match_info["name"])
        packer = msgpack.Packer()
        raw = b"".join(packer.pack(r) for r in session.errors)
        body = gzip.compress(raw, mtime=0) if raw else b""
        return web.Response(body=body, content_type="application/octet-stream")
