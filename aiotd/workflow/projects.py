"""``td.workflow.projects``: push and fetch project archives safely, and what a project holds."""

from __future__ import annotations

import asyncio
import base64
import builtins
import errno
import functools
import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import anyio

from aiotd._http import segment
from aiotd._paging import Pager, cursor_pager
from aiotd._resource import WorkflowResource
from aiotd.errors import Conflict, NotFound
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

__all__ = ["Projects"]

_CHUNK = 1 << 16
_T = TypeVar("_T")


def _hidden_beside(target: Path, suffix: str) -> Path:
    """A fresh hidden name in ``target``'s directory, short enough for any file system."""
    return target.with_name(f".{target.name[:100]}.{uuid.uuid4().hex[:8]}{suffix}")


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


async def _in_worker(func: Callable[[threading.Event], _T]) -> _T:
    """``func(stop)`` in a worker thread. When cancelled, set ``stop`` and wait for the thread
    to end before re-raising, so that nothing it does happens after the cancel returns."""
    stop = threading.Event()
    future = asyncio.get_running_loop().run_in_executor(None, func, stop)
    try:
        # shield: cancelling the awaited future would leave the thread running unseen
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        # anyio's shield keeps its own scopes from re-cancelling; a plain task.cancel() still
        # gets through it, so a further cancel is absorbed here and the first one re-raised.
        with anyio.CancelScope(shield=True):
            while not future.done():
                try:
                    await asyncio.wait([future])
                except asyncio.CancelledError:
                    continue
        if not future.cancelled():
            future.exception()  # retrieved: the caller gets the cancel, not the thread's error
        raise


def _check_dest(target: Path, extract: bool, overwrite: bool) -> Path:
    """``target`` made absolute; refused before any request if the download may not take it."""
    if not target.parent.is_dir():
        raise ValueError(f"directory {target.parent} does not exist")
    if extract:
        if os.path.lexists(target):
            if target.is_symlink() or not target.is_dir():
                raise ValueError(f"{target} exists and is not a directory")
            if not overwrite and any(target.iterdir()):
                raise FileExistsError(f"{target} is not empty; pass overwrite=True to replace it")
    elif target.is_dir():
        raise ValueError(f"{target} is a directory; give a file path for the .tar.gz")
    elif os.path.lexists(target) and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    return Path(os.path.abspath(target))


def _put_file(stop: threading.Event, partial: Path, target: Path, overwrite: bool) -> None:
    """Rename the downloaded archive to ``target``, unless the download was cancelled."""
    if stop.is_set():
        return
    if not overwrite and os.path.lexists(target):
        raise FileExistsError(f"{target} appeared while downloading; not replaced")
    os.replace(partial, target)


def _put_in_place(staging: Path, target: Path, overwrite: bool) -> None:
    """Rename the complete extraction to ``target``. A missing target or an empty directory is
    replaced at once; a directory with content only with ``overwrite``, and as a whole."""
    aside = None
    if overwrite and target.is_dir() and not target.is_symlink() and any(target.iterdir()):
        aside = staging.with_suffix(".old")
        os.rename(target, aside)
    try:
        os.rename(staging, target)
    except OSError as exc:
        if aside is not None:
            os.rename(aside, target)
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
            raise FileExistsError(f"{target} appeared while downloading; not replaced") from None
        raise
    if aside is not None:
        shutil.rmtree(aside)


def _extract_into_place(
    stop: threading.Event,
    archive: Path,
    target: Path,
    *,
    overwrite: bool,
    max_total_size: int,
    max_files: int,
) -> None:
    """Extract into a hidden directory beside ``target`` and rename it into place when
    complete: a refusal, an error or a stop leaves nothing, and is never merged into ``target``."""
    staging = _hidden_beside(target, ".part")
    os.mkdir(staging)
    try:
        with archive.open("rb") as source:
            extract_archive(
                source,
                staging,
                max_total_size=max_total_size,
                max_file_size=max_total_size,
                max_files=max_files,
                stop=stop,
            )
        if not stop.is_set():  # once cancelled, a finished extraction is dropped too
            _put_in_place(staging, target, overwrite)
    finally:
        if os.path.lexists(staging):
            shutil.rmtree(staging)


class Projects(WorkflowResource):
    """Workflow projects: ``/api/projects`` (reference §2.1)."""

    def list(
        self, *, name_pattern: str | None = None, page_size: int = 100, limit: int | None = None
    ) -> Pager[Project]:
        """Projects by ascending id: ``await`` for one page, ``async for`` for all."""
        if page_size < 1:
            raise ValueError("page_size must be >= 1")

        async def fetch(last_id: int | None) -> builtins.list[Project]:
            params = {"last_id": last_id, "count": page_size, "name_pattern": name_pattern}
            page = await self._call("GET", "/api/projects", ProjectList, params=params)
            return page.projects

        return cursor_pager(fetch, lambda p: p.id, order="asc", page_size=page_size, limit=limit)

    async def get(self, project_id: str | int) -> Project:
        """One project; NotFound if it does not exist or was deleted."""
        return await self._call("GET", f"/api/projects/{segment(project_id)}", Project)

    async def get_by_name(self, name: str) -> Project:
        """The project named ``name`` (exact); NotFound when there is none."""
        if not name:
            raise ValueError("a project name must not be empty")
        page = await self._call("GET", "/api/projects", ProjectList, params={"name": name})
        if not page.projects:
            # TD answers an empty list, not 404, for a missing name (reference §2.1).
            raise NotFound(
                404, f"project {name!r} does not exist", method="GET", url="/api/projects"
            )
        return page.projects[0]

    async def delete(self, project_id: str | int) -> Project:
        """Delete a project (and its schedules); returns it as it was before the deletion."""
        path = f"/api/projects/{segment(project_id)}"
        return await self._call("DELETE", path, Project)

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
                return await self._call(
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
        overwrite: bool = False,
        max_total_size: int = 1 << 30,
        max_files: int = 100_000,
    ) -> Path:
        """Fetch a project archive (latest revision by default) and extract it into ``dest``.

        The archive is streamed to a temporary file beside ``dest`` and extracted in a worker
        thread into a hidden directory beside it, renamed to ``dest`` when complete: ``dest``
        holds the whole project or is left as it was, and a refusal, an error or a cancel
        leaves nothing behind (a cancel returns once the thread has stopped). Nothing lands
        outside ``dest`` (absolute names, ``..``, links leaving it and devices are refused
        with ArchiveError); ``max_total_size`` caps both the download and the extracted bytes.
        ``dest`` may be missing or an empty directory; one with content is replaced, as a
        whole and never merged, only with ``overwrite=True``. With ``extract=False`` the
        ``.tar.gz`` itself is saved at ``dest``, replacing a file there only with
        ``overwrite=True``. TD answers with a redirect to object storage, which is followed
        without the API key (reference §2.1).
        """
        target = Path(dest)
        absolute = await anyio.to_thread.run_sync(_check_dest, target, extract, overwrite)
        partial = _hidden_beside(absolute, ".tar.gz.part")
        try:
            await self._save_archive(project_id, revision, partial, max_total_size)
            if extract:
                work = functools.partial(
                    _extract_into_place,
                    archive=partial,
                    target=absolute,
                    overwrite=overwrite,
                    max_total_size=max_total_size,
                    max_files=max_files,
                )
            else:
                work = functools.partial(
                    _put_file, partial=partial, target=absolute, overwrite=overwrite
                )
            await _in_worker(work)
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
            async with self._stream(url, params=params, headers=headers) as resp:
                async for chunk in resp.iter_chunks(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise ArchiveError(f"the archive is larger than the limit of {limit} bytes")
                    out.write(chunk)
        if size == 0:
            raise ArchiveError(f"project {project_id}: the archive is empty")

    async def revisions(
        self, project_id: str | int, *, name: str | None = None
    ) -> builtins.list[Revision]:
        """Revisions newest first (TD keeps at most 100 in this list; no paging exists)."""
        path = f"/api/projects/{segment(project_id)}/revisions"
        page = await self._call("GET", path, RevisionList, params={"name": name})
        return page.revisions

    async def workflows(
        self, project_id: str | int, *, revision: str | None = None, name: str | None = None
    ) -> builtins.list[WorkflowDefinition]:
        """The workflows of a revision (latest by default); ``name`` filters exactly."""
        path = f"/api/projects/{segment(project_id)}/workflows"
        params = {"revision": revision, "name": name}
        return (await self._call("GET", path, WorkflowList, params=params)).workflows

    async def workflow(
        self, project_id: str | int, name: str, *, revision: str | None = None
    ) -> WorkflowDefinition:
        """One workflow by name; its id changes with every push (reference §2.2)."""
        path = f"/api/projects/{segment(project_id)}/workflows/{segment(name)}"
        return await self._call("GET", path, WorkflowDefinition, params={"revision": revision})

    def schedules(
        self, project_id: str | int, *, workflow: str | None = None, limit: int | None = None
    ) -> Pager[WorkflowSchedule]:
        """The project's schedules by ascending id (pages of up to 100)."""
        path = f"/api/projects/{segment(project_id)}/schedules"
        return schedule_pager(self, path, {"workflow": workflow}, limit)

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
        return session_pager(self, path, {"workflow": workflow}, page_size, limit)

    def secrets(self, project_id: str | int) -> Pager[str]:
        """The keys of the project's secrets (values are never returned), as ``secrets.list``."""
        return self._client.workflow.secrets.list(project_id)
