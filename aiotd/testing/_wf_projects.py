"""Projects, revisions, workflows and secrets of the emulator's Workflow API (reference
§2.1, §2.2): pushing an archive compiles its top-level ``.dig`` files and their schedules."""

from __future__ import annotations

from datetime import datetime

import msgspec
from aiohttp import web

from aiotd.testing._common import json_response
from aiotd.testing._digdag import (
    ArchiveError,
    DigError,
    ScheduleSpec,
    compile_workflow,
    format_offset,
    load_dig,
    parse_instant,
    read_archive,
    validate_project_name,
    validate_secret,
    zone,
)
from aiotd.testing._wf_http import Fail, bool_query, int_query, json_body, page, path_id
from aiotd.testing._wf_schedules import Schedules
from aiotd.testing._wf_state import (
    Project,
    Revision,
    Workflow,
    WorkflowState,
    project_json,
    revision_json,
    workflow_json,
)
from aiotd.testing._wf_storage import StorageOrigin

__all__ = ["Projects"]

_encoder = msgspec.json.Encoder()


class Projects:
    """The project, workflow and secret routes.

    ``max_archive`` is the largest archive a push takes; with ``archive_redirect`` a download
    answers 303 to the storage origin, as TD does.
    """

    def __init__(
        self,
        state: WorkflowState,
        scheduler: Schedules,
        storage: StorageOrigin,
        *,
        max_archive: int,
        archive_redirect: bool,
    ) -> None:
        self._state = state
        self._scheduler = scheduler
        self._storage = storage
        self._max_archive = max_archive
        self._archive_redirect = archive_redirect

    async def projects_list(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        if name is not None:
            found = self._state.project_named(name)
            return json_response({"projects": [] if found is None else [project_json(found)]})
        last_id = int_query(request, "last_id", 0) or 0
        count = int_query(request, "count", 100) or 100
        pattern = request.query.get("name_pattern", "")
        items = (
            p
            for p in self._state.live_projects()
            if p.id > last_id and pattern.lower() in p.name.lower()
        )
        return json_response({"projects": [project_json(p) for p in page(items, count)]})

    async def project_by_name(self, request: web.Request) -> web.Response:
        name = request.query.get("name", "")
        found = self._state.project_named(name)
        if found is None:
            raise Fail(404, f"Resource does not exist: project name={name}")
        return json_response(project_json(found))

    async def project_get(self, request: web.Request) -> web.Response:
        return json_response(project_json(self._state.project(path_id(request))))

    async def project_delete(self, request: web.Request) -> web.Response:
        project = self._state.project(path_id(request))
        body = project_json(project)
        project.deleted_at = self._state.clock()
        for schedule in [s for s in self._state.schedules.values() if s.project is project]:
            del self._state.schedules[schedule.id]
        return json_response(body)

    async def project_put(self, request: web.Request) -> web.Response:
        name, revision_name = _push_names(request)
        now = self._state.clock()
        schedule_from = _schedule_from(request, now)
        data = await self._read_upload(request)
        project, revision = self._new_revision(name, revision_name, data, now)
        names = {w.name for w in revision.workflows}
        cleared = request.query.getall("clear_schedule", [])
        for workflow_name in cleared:
            if workflow_name not in names:
                raise Fail(400, f"{workflow_name} does not exist")
        self._register(project, revision)
        self._scheduler.update(
            project,
            revision,
            start=schedule_from,
            now=now,
            cleared=set(names) if bool_query(request, "clear_schedule_all") else set(cleared),
            skip=bool_query(request, "skip_schedule"),
        )
        return json_response(project_json(project))

    def _new_revision(
        self, name: str, revision_name: str, data: bytes, now: float
    ) -> tuple[Project, Revision]:
        """The pushed revision with its workflows compiled, and its project (a new one not yet
        registered); 400 for a bad archive or ``.dig``, 409 for a revision name taken."""
        try:
            files = read_archive(data, self._max_archive)
        except ArchiveError as exc:
            raise Fail(400, str(exc)) from None
        project = self._state.project_named(name)
        if project is not None and any(r.name == revision_name for r in project.revisions):
            raise Fail(
                409, f"Resource already exists: revision={revision_name} in project id={project.id}"
            )
        if project is None:
            project = Project(id=0, name=name, created_at=now)
        revision = Revision(
            id=0,
            name=revision_name,
            created_at=now,
            archive=data,
            files=files,
            storage_key="",
        )
        try:
            revision.workflows = self._compile_workflows(project, revision)
        except DigError as exc:
            raise Fail(400, str(exc)) from None
        return project, revision

    def _register(self, project: Project, revision: Revision) -> None:
        """Give an accepted push its ids and store its archive. Ids are taken only then, so
        refused pushes leave no gaps."""
        if project.id == 0:
            project.id = self._state.next_id("project")
        revision.id = self._state.next_id("revision")
        self._state.projects[project.id] = project
        project.revisions.append(revision)
        for workflow in revision.workflows:
            workflow.id = self._state.next_id("workflow")
            self._state.workflows[workflow.id] = workflow
        revision.storage_key = self._storage.put(revision.archive)

    async def _read_upload(self, request: web.Request) -> bytes:
        """The archive body, checked against Content-Length and the size limit (reference §2.1)."""
        length = request.content_length
        if length is None:
            raise Fail(400, "Content-Length header is required")
        if length > self._max_archive:
            raise Fail(
                400, f"Size of the uploaded archive file exceeds limit ({self._max_archive} bytes)"
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(65536):
            size += len(chunk)
            if size > length:
                break
            chunks.append(chunk)
        if size != length:
            raise Fail(400, "Content-Length header doesn't match with uploaded data size")
        return b"".join(chunks)

    def _compile_workflows(self, project: Project, revision: Revision) -> list[Workflow]:
        """Workflows are the top-level ``*.dig`` files only (reference §2.1)."""
        workflows: list[Workflow] = []
        for path in sorted(revision.files):
            if "/" in path or not path.endswith(".dig") or len(path) <= 4:
                continue
            name = path[:-4]
            try:
                text = revision.files[path].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DigError(f"{path} is not UTF-8") from exc
            body = load_dig(text)
            tz_name = str(body.get("timezone") or "UTC")
            tz = zone(tz_name)
            schedule = ScheduleSpec.parse(body["schedule"], tz) if "schedule" in body else None
            config = {key: value for key, value in body.items() if key != "timezone"}
            workflows.append(
                Workflow(
                    id=0,
                    name=name,
                    project=project,
                    revision=revision,
                    timezone=tz_name,
                    tz=tz,
                    config=config,
                    root=compile_workflow(name, body),
                    schedule=schedule,
                    schedule_source=_encoder.encode([tz_name, body.get("schedule")]),
                )
            )
        return workflows

    async def project_archive(self, request: web.Request) -> web.StreamResponse:
        project = self._state.project(path_id(request))
        revision = self._revision(project, request.query.get("revision"))
        if self._archive_redirect and bool_query(request, "direct_download", True):
            # TD answers 303 to a pre-signed S3 URL that takes no Authorization (reference §2.1).
            location = self._storage.url(request, revision.storage_key)
            if location is not None:
                raise web.HTTPSeeOther(location)
        return web.Response(body=revision.archive, content_type="application/gzip")

    def _revision(self, project: Project, name: str | None) -> Revision:
        if not name:
            return project.latest
        for revision in project.revisions:
            if revision.name == name:
                return revision
        raise Fail(404, f"Resource does not exist: revision={name} in project id={project.id}")

    async def project_revisions(self, request: web.Request) -> web.Response:
        project = self._state.project(path_id(request))
        name = request.query.get("name")
        revisions = [r for r in reversed(project.revisions) if name is None or r.name == name]
        return json_response({"revisions": [revision_json(r) for r in revisions[:100]]})

    async def project_workflows(self, request: web.Request) -> web.Response:
        project = self._state.project(path_id(request))
        revision = self._revision(project, request.query.get("revision"))
        name = request.query.get("name")
        workflows = [w for w in revision.workflows if name is None or w.name == name]
        return json_response({"workflows": [workflow_json(w) for w in workflows]})

    def _named_workflow(self, request: web.Request, name: str) -> Workflow:
        project = self._state.project(path_id(request))
        revision = self._revision(project, request.query.get("revision"))
        for workflow in revision.workflows:
            if workflow.name == name:
                return workflow
        raise Fail(404, f"Resource does not exist: workflow name={name}")

    async def project_workflow(self, request: web.Request) -> web.Response:
        return json_response(
            workflow_json(self._named_workflow(request, request.match_info["name"]))
        )

    async def project_workflow_query(self, request: web.Request) -> web.Response:
        return json_response(
            workflow_json(self._named_workflow(request, request.query.get("name", "")))
        )

    async def secrets_list(self, request: web.Request) -> web.Response:
        project = self._state.project(path_id(request))
        return json_response({"secrets": [{"key": key} for key in sorted(project.secrets)]})

    async def secret_put(self, request: web.Request) -> web.Response:
        project = self._state.project(path_id(request))
        key = request.match_info["key"]
        body = await json_body(request, required=False)
        value = body.get("value")
        if not validate_secret(key, value):
            raise Fail(400, "Invalid secret")
        assert isinstance(value, str)
        project.secrets[key] = value
        return json_response({"key": key, "project": project.ref()})

    async def secret_delete(self, request: web.Request) -> web.Response:
        project = self._state.project(path_id(request))
        key = request.match_info["key"]
        # Deleting a key that does not exist is not an error (reference §2.1).
        project.secrets.pop(key, None)
        return json_response({"key": key, "project": project.ref()})

    async def workflows_list(self, request: web.Request) -> web.Response:
        order = request.query.get("order", "asc")
        if order not in ("asc", "desc"):
            raise Fail(400, "parameter 'order' must be either 'asc' or 'desc'")
        last_id = int_query(request, "last_id")
        count = int_query(request, "count", 100) or 100
        pattern = request.query.get("name_pattern", "").lower()
        with_project = bool_query(request, "search_project_name")
        latest = [w for p in self._state.live_projects() for w in p.latest.workflows]
        latest.sort(key=lambda w: w.id, reverse=order == "desc")
        items = (
            w
            for w in latest
            if (last_id is None or (w.id > last_id if order == "asc" else w.id < last_id))
            and (pattern in w.name.lower() or (with_project and pattern in w.project.name.lower()))
        )
        return json_response({"workflows": [workflow_json(w) for w in page(items, count)]})

    async def workflow_get(self, request: web.Request) -> web.Response:
        return json_response(workflow_json(self._state.workflow(path_id(request))))

    async def truncated_session_time(self, request: web.Request) -> web.Response:
        workflow = self._state.workflow(path_id(request))
        raw = request.query.get("session_time")
        if not raw:
            raise Fail(400, "session_time= is required")
        mode = request.query.get("mode")
        if mode not in (None, "hour", "day", "schedule", "next_schedule"):
            raise web.HTTPNotFound()  # an enum that does not convert (reference §2.2)
        try:
            instant = parse_instant(raw, local_tz=workflow.tz)
        except ValueError:
            raise web.HTTPNotFound() from None
        local = datetime.fromtimestamp(instant, tz=workflow.tz)
        if mode == "hour":
            instant = local.replace(minute=0, second=0, microsecond=0).timestamp()
        elif mode == "day":
            instant = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        elif mode in ("schedule", "next_schedule"):
            if workflow.schedule is None:
                raise Fail(400, f"Workflow {workflow.name} does not have schedule")
            floor = workflow.schedule.floor(instant)
            instant = (
                floor
                if mode == "schedule" or floor == instant
                else (workflow.schedule.next_after(instant))
            )
        return json_response(
            {
                "project": workflow.project.ref(),
                "revision": workflow.revision.name,
                "sessionTime": format_offset(instant, workflow.tz),
                "timezone": workflow.timezone,
            }
        )


def _push_names(request: web.Request) -> tuple[str, str]:
    """The project and revision names of a push, checked in digdag's order (reference §2.1)."""
    name = request.query.get("project")
    revision_name = request.query.get("revision")
    if not name:
        raise Fail(400, "project= is required")
    if not revision_name:
        raise Fail(400, "revision= is required")
    if len(revision_name) > 255:
        raise Fail(400, "revision name must not be longer than 255 characters")
    problem = validate_project_name(name)
    if problem is not None:
        raise Fail(400, problem)
    if request.content_type != "application/gzip":
        # JAX-RS NotSupportedException is mapped to 400, not 415 (reference §4).
        raise Fail(400, "HTTP 415 Unsupported Media Type")
    return name, revision_name


def _schedule_from(request: web.Request, now: float) -> float:
    """``schedule_from=``, an instant ending in ``Z``; ``now`` when absent."""
    raw = request.query.get("schedule_from")
    if not raw:
        return now
    try:
        if not raw.endswith("Z"):
            raise ValueError(raw)
        return parse_instant(raw)
    except ValueError:
        raise Fail(400, f"Invalid schedule_from= parameter format: {raw}") from None
