"""``td.workflow.projects``: push and fetch project archives safely, and what a project holds."""

from __future__ import annotations

import base64
import builtins
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from aiotd._http import segment
from aiotd._paging import Pager, cursor_pager
from aiotd.errors import Conflict, NotFound, TDError
from aiotd.models.workflow import (
    Project,
    ProjectList,
    Revision,
    RevisionList,
    Session,
    WorkflowDefinition,
    WorkflowList,
    WorkflowSchedule,
)
from aiotd.workflow._archive import (
    MAX_ARCHIVE_SIZE,
    ArchiveError,
    ArchiveFile,
    build_archive,
    build_archive_from_mapping,
    extract_archive,
)
from aiotd.workflow._common import instant
from aiotd.workflow.schedules import schedule_pager
from aiotd.workflow.sessions import session_pager

if TYPE_CHECKING:
    from aiotd._client import Client

__all__ = ["Projects"]

_CHUNK = 1 << 16


def _build(
    source: str | os.PathLike[str] | Mapping[str, bytes | str], max_size: int
) -> tuple[ArchiveFile, str]:
    """The archive and the base64 MD5 TD reports as ``archiveMd5`` (reference §1)."""
    if isinstance(source, Mapping):
        archive = build_archive_from_mapping(source, max_size=max_size)
    else:
        archive = build_archive(source, max_size=max_size)
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in archive.chunks(_CHUNK):
        digest.update(chunk)
    return archive, base64.b64encode(digest.digest()).decode()


async def _body(archive: ArchiveFile) -> AsyncIterator[bytes]:
    for chunk in archive.chunks(_CHUNK):
        yield chunk


def _extract_file(
    archive: Path, dest: Path, max_total_size: int, max_files: int
) -> builtins.list[str]:
    with archive.open("rb") as source:
        return extract_archive(
            source,
            dest,
            max_total_size=max_total_size,
            max_file_size=max_total_size,
            max_files=max_files,
        )


def _check_dest(target: Path, extract: bool) -> Path:
    if not target.parent.is_dir():
        raise ValueError(f"directory {target.parent} does not exist")
    if extract:
        if target.exists() and not target.is_dir():
            raise ValueError(f"{target} exists and is not a directory")
    elif target.is_dir():
        raise ValueError(f"{target} is a directory; give a file path for the .tar.gz")
    return target


class Projects:
    """Workflow projects: ``/api/projects`` (reference §2.1)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self, *, name_pattern: str | None = None, page_size: int = 100, limit: int | None = None
    ) -> Pager[Project]:
        """Projects by ascending id: ``await`` for one page, ``async for`` for all."""
        if page_size < 1:
            raise ValueError("page_size must be >= 1")

        async def fetch(last_id: int | None) -> builtins.list[Project]:
            params = {"last_id": last_id, "count": page_size, "name_pattern": name_pattern}
            page = await self._client._wf_call("GET", "/api/projects", ProjectList, params=params)
            return page.projects

        return cursor_pager(fetch, lambda p: p.id, order="asc", page_size=page_size, limit=limit)

    async def get(self, project_id: str | int) -> Project:
        """One project; NotFound if it does not exist or was deleted."""
        return await self._client._wf_call("GET", f"/api/projects/{segment(project_id)}", Project)

    async def get_by_name(self, name: str) -> Project:
        """The project named ``name`` (exact); NotFound when there is none."""
        if not name:
            raise ValueError("a project name must not be empty")
        page = await self._client._wf_call(
            "GET", "/api/projects", ProjectList, params={"name": name}
        )
        if not page.projects:
            # TD answers an empty list, not 404, for a missing name (reference §2.1).
            raise NotFound(
                404, f"project {name!r} does not exist", method="GET", url="/api/projects"
            )
        return page.projects[0]

    async def delete(self, project_id: str | int) -> Project:
        """Delete a project (and its schedules); returns it as it was before the deletion."""
        path = f"/api/projects/{segment(project_id)}"
        return await self._client._wf_call("DELETE", path, Project)

    async def push(
        self,
        name: str,
        source: str | os.PathLike[str] | Mapping[str, bytes | str],
        *,
        revision: str | None = None,
        schedule_from: datetime | str | None = None,
        clear_schedule: Iterable[str] = (),
        clear_schedule_all: bool = False,
        skip_schedule: bool | None = None,
        max_size: int = MAX_ARCHIVE_SIZE,
    ) -> Project:
        """Upload a project directory (or ``{"name.dig": text, ...}``) as a new revision.

        The archive is built as ``digdag push`` builds it and streamed with its exact
        Content-Length. The revision name (a new UUID by default) makes the upload safe to
        retry: a retried push whose first try was applied gets 409 "already exists", and is a
        success when that revision holds this very archive (same MD5). Returns the project.
        """
        if not name:
            raise ValueError("a project name must not be empty")
        if isinstance(clear_schedule, str):
            raise TypeError("clear_schedule takes workflow names, e.g. ['daily']")
        rev = revision if revision is not None else str(uuid.uuid4())
        if not rev:
            raise ValueError("revision must not be empty")
        params = {
            "project": name,
            "revision": rev,
            "schedule_from": None if schedule_from is None else instant(schedule_from),
            "clear_schedule": list(clear_schedule) or None,
            "clear_schedule_all": True if clear_schedule_all else None,
            "skip_schedule": skip_schedule,
        }
        archive, md5 = await anyio.to_thread.run_sync(_build, source, max_size)
        try:
            headers = {"Content-Type": "application/gzip", "Content-Length": str(archive.size)}
            try:
                return await self._client._wf_call(
                    "PUT",
                    "/api/projects",
                    Project,
                    params=params,
                    data=lambda: _body(archive),
                    headers=headers,
                    idempotent=True,
                )
            except Conflict:
                pushed = await self._pushed(name, rev, md5, generated=revision is None)
                if pushed is None:
                    raise
                return pushed
        finally:
            archive.close()

    async def _pushed(
        self, name: str, revision: str, md5: str, *, generated: bool
    ) -> Project | None:
        """The project if ``revision`` is the archive just sent (an earlier try got through)."""
        try:
            project = await self.get_by_name(name)
        except NotFound:
            return None
        found = await self.revisions(project.id, name=revision)
        if not found:
            return None
        if found[0].archive_md5 is not None:
            return project if found[0].archive_md5 == md5 else None
        # Without an MD5, only a revision name this call made up proves the upload is ours.
        return project if generated else None

    async def download(
        self,
        project_id: str | int,
        dest: str | os.PathLike[str],
        *,
        revision: str | None = None,
        extract: bool = True,
        max_total_size: int = 1 << 30,
        max_files: int = 100_000,
    ) -> Path:
        """Fetch a project archive (latest revision by default) and extract it into ``dest``.

        The archive is streamed to a temporary file next to ``dest`` and extracted in a worker
        thread; nothing is written outside ``dest`` (absolute names, ``..``, links leaving it
        and devices are refused with ArchiveError), and ``max_total_size`` caps both the
        download and the extracted bytes. With ``extract=False`` the ``.tar.gz`` itself is
        saved at ``dest``. TD answers with a redirect to object storage, which is followed
        without the API key (reference §2.1).
        """
        target = await anyio.to_thread.run_sync(_check_dest, Path(dest), extract)
        partial = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tar.gz.part"
        try:
            await self._save_archive(project_id, revision, partial, max_total_size)
            if extract:
                await anyio.to_thread.run_sync(
                    _extract_file, partial, target, max_total_size, max_files
                )
            else:
                os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    async def _save_archive(
        self, project_id: str | int, revision: str | None, path: Path, limit: int
    ) -> None:
        url = f"/api/projects/{segment(project_id)}/archive"
        params = {"revision": revision}
        # The archive is gzip data, not a gzip Content-Encoding: keep the bytes as sent.
        headers = {"Accept": "application/gzip, */*", "Accept-Encoding": "identity"}
        size = 0
        with path.open("wb") as out:
            async with self._client._wf_stream(url, params=params, headers=headers) as resp:
                async for chunk in resp.iter_chunks(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise ArchiveError(f"the archive is larger than the limit of {limit} bytes")
                    out.write(chunk)
        if size == 0:
            raise TDError(f"project {project_id}: the archive is empty")

    async def revisions(
        self, project_id: str | int, *, name: str | None = None
    ) -> builtins.list[Revision]:
        """Revisions newest first (TD keeps at most 100 in this list; no paging exists)."""
        path = f"/api/projects/{segment(project_id)}/revisions"
        page = await self._client._wf_call("GET", path, RevisionList, params={"name": name})
        return page.revisions

    async def workflows(
        self, project_id: str | int, *, revision: str | None = None, name: str | None = None
    ) -> builtins.list[WorkflowDefinition]:
        """The workflows of a revision (latest by default); ``name`` filters exactly."""
        path = f"/api/projects/{segment(project_id)}/workflows"
        params = {"revision": revision, "name": name}
        return (await self._client._wf_call("GET", path, WorkflowList, params=params)).workflows

    async def workflow(
        self, project_id: str | int, name: str, *, revision: str | None = None
    ) -> WorkflowDefinition:
        """One workflow by name; its id changes with every push (reference §2.2)."""
        path = f"/api/projects/{segment(project_id)}/workflows/{segment(name)}"
        return await self._client._wf_call(
            "GET", path, WorkflowDefinition, params={"revision": revision}
        )

    def schedules(
        self, project_id: str | int, *, workflow: str | None = None, limit: int | None = None
    ) -> Pager[WorkflowSchedule]:
        """The project's schedules by ascending id (pages of up to 100)."""
        path = f"/api/projects/{segment(project_id)}/schedules"
        return schedule_pager(self._client, path, {"workflow": workflow}, limit)

    def sessions(
        self,
        project_id: str | int,
        *,
        workflow: str | None = None,
        page_size: int = 100,
        limit: int | None = None,
    ) -> Pager[Session]:
        """The project's sessions newest first; ``workflow`` filters by name."""
        path = f"/api/projects/{segment(project_id)}/sessions"
        return session_pager(self._client, path, {"workflow": workflow}, page_size, limit)

    async def secrets(self, project_id: str | int) -> builtins.list[str]:
        """The keys of the project's secrets (values are never returned)."""
        return await self._client.workflow.secrets.list(project_id)
