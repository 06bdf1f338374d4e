"""The ``Emulator``: an aiohttp server speaking TD's v3 API (and the Workflow API when that
module is present) on 127.0.0.1, with auth, fault injection and request counters."""

from __future__ import annotations

import asyncio
import importlib
import re
import shutil
import socket
import struct
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import UrlDispatcher, UrlMappingMatchInfo

from aiotd._version import __version__
from aiotd.testing._common import APIError, ListingCount, json_response, td_error
from aiotd.testing._core import TRUNCATE, Core, check_listing
from aiotd.testing._datasets import add_sample_datasets
from aiotd.testing._faults import Counters, Fault, Faults
from aiotd.testing._jobs import JobStore
from aiotd.testing._store import Store
from aiotd.testing._users import new_apikey

__all__ = ["EMULATOR_KEY", "PUBLIC_PATHS", "Emulator"]

#: Paths answered without an API key (v3-api §7.18; the workflow API's version).
PUBLIC_PATHS = frozenset(("/v3/system/server_status", "/api/version"))
_CONTROL_PREFIX = "/_emulator/"
_SLASHES = re.compile(r"/{2,}")
_HTML_ERROR = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
)


class _Router(UrlDispatcher):
    """Routes ``//v3/...`` like ``/v3/...``: td-client-python joins its endpoint and path with
    an extra slash (v3-api §7.9)."""

    async def resolve(self, request: web.Request) -> UrlMappingMatchInfo:
        path = request.rel_url.path
        if "//" in path:
            request = request.clone(rel_url=request.rel_url.with_path(_SLASHES.sub("/", path)))
        return await super().resolve(request)


#: ``app[EMULATOR_KEY]`` is the Emulator serving that application (for route add-ons).
EMULATOR_KEY: web.AppKey[Emulator] = web.AppKey("aiotd_emulator")


def _abort(request: web.Request, *, reset: bool) -> None:
    """Close the connection now: with a TCP RST (``reset``) or a plain FIN."""
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


class Emulator:
    """A local TD: ``async with Emulator() as emu:`` serves on ``emu.url`` until exit.

    Options: ``apikey`` (default: a fresh ``1/<40 hex>``), ``host``/``port`` (0 = any free
    port), ``queued_time``/``running_time``/``booting_time`` (seconds each job spends in those
    states unless its query's ``-- emulator:`` comment says otherwise), ``job_list_count``
    (what ``count`` means in ``job/list`` and ``schedule/history``: ``"page"``, the page's
    length; ``"span"``, the items asked for; ``"total"``, the matching items) and
    ``job_list_page_cap`` (most items per page whatever ``to`` asks; None honours ``to``), both
    also on ``emu.core`` to change at run time, ``fault_seed`` (makes fault rates
    reproducible), ``sample_datasets`` (serve TD's ``sample_datasets`` database, query only,
    with ``www_access`` and ``nasdaq``), ``workflow`` (add the Workflow API when its module
    exists) and ``workflow_options`` (passed to it). Also usable from sync code:
    ``with Emulator() as emu:`` runs it on a background thread.
    """

    def __init__(
        self,
        *,
        apikey: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        queued_time: float = 0.1,
        running_time: float = 0.3,
        booting_time: float = 0.05,
        job_list_count: ListingCount = "page",
        job_list_page_cap: int | None = None,
        fault_seed: int | None = 0,
        sample_datasets: bool = True,
        workflow: bool = True,
        workflow_options: dict[str, Any] | None = None,
    ) -> None:
        self.apikey = apikey or new_apikey()
        self.host = host
        self.port = port
        self.faults = Faults(fault_seed)
        self.counters = Counters()
        self._timing = (queued_time, running_time, booting_time)
        check_listing(job_list_count, job_list_page_cap)
        self._listing: tuple[ListingCount, int | None] = (job_list_count, job_list_page_cap)
        self._sample_datasets = sample_datasets
        self._want_workflow = workflow
        self._workflow_options = dict(workflow_options or {})
        self.workflow: Any = None
        self._dir: Path | None = None
        self._core: Core | None = None
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # -- state -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._runner is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def core(self) -> Core:
        """The v3 state: ``core.store`` (databases, tables), ``core.jobs``, users, schedules."""
        if self._core is None:
            raise RuntimeError("the emulator is not started")
        return self._core

    @property
    def jobs(self) -> JobStore:
        """The job store (also the workflow module's ``JobRunner``)."""
        return self.core.jobs

    @property
    def app(self) -> web.Application:
        if self._app is None:
            raise RuntimeError("the emulator is not started")
        return self._app

    @property
    def directory(self) -> Path:
        """The temp directory holding table files and large results (removed on close)."""
        if self._dir is None:
            raise RuntimeError("the emulator is not started")
        return self._dir

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Emulator:
        """Bind and serve; returns self."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already started")
        self._dir = Path(tempfile.mkdtemp(prefix="aiotd-emulator-"))
        store = Store(self._dir)
        if self._sample_datasets:
            add_sample_datasets(store)
        queued, running, booting = self._timing
        jobs = JobStore(
            store, self._dir, queued_time=queued, running_time=running, booting_time=booting
        )
        count, page_cap = self._listing
        self._core = Core(
            store,
            jobs,
            self.apikey,
            self._dir,
            job_list_count=count,
            job_list_page_cap=page_cap,
        )
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 31)
        app._router = _Router()  # see _Router: the public ``router=`` argument is deprecated
        app[EMULATOR_KEY] = self
        self._core.add_routes(app)
        self._add_control_routes(app)
        await self._start_workflow(app, jobs)
        self._app = app
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        self._runner = runner
        return self

    async def _start_workflow(self, app: web.Application, jobs: JobStore) -> None:
        if not self._want_workflow:
            return
        try:
            module = importlib.import_module("aiotd.testing._workflow")
        except ModuleNotFoundError as exc:
            # Absent module, or its optional dependency (pyyaml, the "testing" extra) missing.
            if exc.name not in ("aiotd.testing._workflow", "yaml"):
                raise
            return
        self.workflow = module.WorkflowService(jobs=jobs, **self._workflow_options)
        self.workflow.add_routes(app)
        await self.workflow.start(self.host)  # the storage origin of pre-signed URLs

    async def close(self) -> None:
        """Stop serving, close the workflow part, drop every file."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self.workflow is not None:
            workflow, self.workflow = self.workflow, None
            await workflow.close()
        if self._core is not None:
            self._core.close()
            self._core.jobs.close()
            self._core.store.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- running on a thread (sync callers) ----------------------------------------------------

    def start_in_thread(self) -> Emulator:
        """Serve on a daemon thread with its own event loop; returns once listening."""
        started = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                started.set()
                raise
            started.set()
            try:
                await self._stop.wait()
            finally:
                await self.close()

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException:  # reported to start_in_thread through ``failure``
                if not failure:
                    raise

        self._thread = threading.Thread(target=run, name="aiotd-emulator", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        """Stop a server started with ``start_in_thread`` and wait for it."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join()
        self._thread = self._loop = self._stop = None

    def __enter__(self) -> Emulator:
        return self.start_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()

    # -- middleware: counters, faults, auth ----------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        if "//" in path:
            path = _SLASHES.sub("/", path)
        if path.startswith(_CONTROL_PREFIX):
            return await self._call(request, handler)
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else "<unmatched>"
        key = f"{request.method} {canonical}"
        self.counters.hit(key)
        fault = self.faults.pick(request.method, canonical, path) if self.faults.active else None
        if fault is not None:
            self.counters.fault(fault.kind)
            early = await self._fault_before(request, fault)
            if early is not None:
                return early
        if path not in PUBLIC_PATHS:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("TD1 ") or auth[4:].strip() not in self.core.keys:
                return td_error(401, "Authentication failed. Set a valid API key (TD1 <key>).")
        if fault is None:
            return await self._call(request, handler)
        token = TRUNCATE.set(fault.kind == "truncate")
        try:
            response = await self._call(request, handler)
        finally:
            TRUNCATE.reset(token)
        return await self._fault_after(request, fault, response)

    @staticmethod
    async def _call(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except APIError as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return td_error(
                exc.status, f"{exc.status} {exc.reason}: {request.method} {request.path}"
            )
        return response

    async def _fault_before(self, request: web.Request, fault: Fault) -> web.StreamResponse | None:
        kind = fault.kind
        if kind == "delay":
            await asyncio.sleep(fault.delay)
            return None
        if kind == "rate_limit":
            retry_after = fault.retry_after
            header = str(int(retry_after)) if retry_after == int(retry_after) else str(retry_after)
            resp = td_error(429, "Too many requests: rate limit exceeded, retry later")
            resp.headers["Retry-After"] = header
            return resp
        if kind == "error":
            status = fault.status
            if fault.html:
                reason = web.Response(status=status).reason
                return web.Response(
                    status=status,
                    text=_HTML_ERROR.format(status=status, reason=reason),
                    content_type="text/html",
                )
            return td_error(status, f"Internal server error (emulated {status})")
        if kind == "reset":
            _abort(request, reset=True)
            return web.Response(status=500)
        return None

    async def _fault_after(
        self, request: web.Request, fault: Fault, response: web.StreamResponse
    ) -> web.StreamResponse:
        kind = fault.kind
        if kind == "drop":
            if not response.prepared:
                _abort(request, reset=False)
            return response
        if not isinstance(response, web.Response) or response.prepared:
            return response
        body = response.body
        data = body if isinstance(body, bytes) else b""
        if kind == "malformed":
            cut = data[: max(len(data) // 2, 1)] if data else b"{"
            response.body = cut + b"\x00<!--"
            return response
        if kind == "truncate":
            stream = web.StreamResponse(status=response.status, headers=response.headers)
            stream.content_length = len(data)
            await stream.prepare(request)
            await stream.write(data[: len(data) // 2])
            _abort(request, reset=False)
            return stream
        return response

    # -- control endpoint --------------------------------------------------------------------

    def _add_control_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/_emulator/faults", self._control_faults_list)
        r.add_post("/_emulator/faults", self._control_faults_add)
        r.add_delete("/_emulator/faults", self._control_faults_clear)
        r.add_delete("/_emulator/faults/{id}", self._control_faults_remove)
        r.add_get("/_emulator/counters", self._control_counters)
        r.add_delete("/_emulator/counters", self._control_counters_reset)
        r.add_get("/_emulator/info", self._control_info)

    async def _control_faults_list(self, request: web.Request) -> web.Response:
        return json_response({"faults": [f.to_json() for f in self.faults]})

    async def _control_faults_add(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError as exc:
            raise APIError(400, f"Invalid JSON: {exc}") from None
        items = data if isinstance(data, list) else [data]
        added = []
        allowed = {"kind", "match", "rate", "count", "status", "html", "retry_after", "delay"}
        for item in items:
            if not isinstance(item, dict) or "kind" not in item:
                raise APIError(400, "Each fault is an object with at least a 'kind'")
            item = dict(item)
            seed = item.pop("seed", None)
            unknown = set(item) - allowed
            if unknown:
                raise APIError(400, f"Unknown fault fields: {sorted(unknown)}")
            if seed is not None:
                self.faults.seed(int(seed))
            try:
                added.append(self.faults.add(**item).to_json())
            except (TypeError, ValueError) as exc:
                raise APIError(400, str(exc)) from None
        return json_response({"faults": added})

    async def _control_faults_clear(self, request: web.Request) -> web.Response:
        self.faults.clear()
        if "seed" in request.query:
            self.faults.seed(int(request.query["seed"]))
        return json_response({"faults": []})

    async def _control_faults_remove(self, request: web.Request) -> web.Response:
        try:
            fid = int(request.match_info["id"])
        except ValueError:
            raise APIError(400, "fault id must be an integer") from None
        self.faults.remove(fid)
        return json_response({"faults": [f.to_json() for f in self.faults]})

    async def _control_counters(self, request: web.Request) -> web.Response:
        return json_response(self.counters.snapshot())

    async def _control_counters_reset(self, request: web.Request) -> web.Response:
        self.counters.reset()
        return json_response(self.counters.snapshot())

    async def _control_info(self, request: web.Request) -> web.Response:
        jobs = self.core.jobs
        return json_response(
            {
                "version": __version__,
                "url": self.url,
                "jobs": jobs.count(),
                "workflow": self.workflow is not None,
            }
        )
