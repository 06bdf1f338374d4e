"""The Client: configuration, lifecycle, and the resource namespaces."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiotd._config import (
    RetryPolicy,
    Timeouts,
    is_loopback,
    resolve_apikey,
    resolve_endpoints,
)
from aiotd._http import DEFAULT_MAX_RESPONSE_SIZE, HTTP, CallOptions, Stats
from aiotd._polling import Engine, PollSettings
from aiotd._resource import CoreResource
from aiotd.core.bulk_imports import BulkImports
from aiotd.core.connectors import Connectors
from aiotd.core.databases import Databases
from aiotd.core.exports import Exports
from aiotd.core.imports import Imports
from aiotd.core.jobs import Jobs
from aiotd.core.results import Results
from aiotd.core.schedules import Schedules
from aiotd.core.tables import Tables
from aiotd.core.users import Users
from aiotd.errors import ClientClosed
from aiotd.models.core import Account, AccountResponse, ServerStatus
from aiotd.workflow import Workflow

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Client"]

logger = logging.getLogger("aiotd")


class Client:
    """An asyncio Treasure Data client: ``async with aiotd.Client() as td: ...``.

    Configuration comes from the arguments, then ``TD_API_KEY``, ``TD_API_SERVER`` and
    ``TD_WORKFLOW_SERVER``, then the ``site``. One pooled HTTP session, created inside the
    running loop on first use, serves the core API, the Workflow API and every watcher.
    A whole answer (not a stream) is read up to ``max_response_size`` bytes, decoded: past
    it comes ``errors.ResponseTooLarge``. ``close()`` cuts off the calls, streams and waits
    still under way with ``errors.ClientClosed``; a closed client cannot be reopened.
    """

    def __init__(
        self,
        apikey: str | None = None,
        *,
        site: str | None = None,
        endpoint: str | None = None,
        workflow_endpoint: str | None = None,
        max_connections: int = 64,
        timeout: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        trace_configs: Iterable[aiohttp.TraceConfig] | None = None,
        user_agent: str | None = None,
        verify_ssl: bool = True,
        headers: Mapping[str, str] | None = None,
        poll: PollSettings | None = None,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        key = resolve_apikey(apikey)
        self.endpoint, self.workflow_endpoint = resolve_endpoints(site, endpoint, workflow_endpoint)
        self._http = HTTP(
            apikey=key,
            timeouts=timeout or Timeouts(),
            retry=retry or RetryPolicy(),
            max_connections=max_connections,
            trace_configs=trace_configs,
            user_agent=user_agent,
            verify_ssl=verify_ssl,
            headers=headers,
            max_response_size=max_response_size,
        )
        self._closed = False
        self._poll_settings = poll or PollSettings()
        #: the client whose session, engines and stats a ``with_options`` view shares
        self._root = self
        self._options: CallOptions | None = None
        self._engines: dict[type, Engine[Any]] = {}
        self._bind()
        if not verify_ssl:
            logger.warning("TLS certificate verification is turned off for this client")
        for url in (self.endpoint, self.workflow_endpoint):
            if url.startswith("http://") and not is_loopback(url):
                logger.warning("%s is plain http: the API key will cross the network in clear", url)

    def _bind(self) -> None:
        """The resource namespaces, bound to this client (or view)."""
        self._core = CoreResource(self)
        self.jobs = Jobs(self)
        self.workflow = Workflow(self)
        self.databases = Databases(self)
        self.tables = Tables(self)
        self.schedules = Schedules(self)
        self.results = Results(self)
        self.users = Users(self)
        self.imports = Imports(self)
        self.bulk_imports = BulkImports(self)
        self.exports = Exports(self)
        self.connectors = Connectors(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        view = "" if self._root is self else " view"
        return (
            f"<aiotd.Client{view} endpoint={self.endpoint!r} "
            f"workflow_endpoint={self.workflow_endpoint!r} {state}>"
        )

    def with_options(
        self, *, timeout: Timeouts | None = None, retry: RetryPolicy | None = None
    ) -> Client:
        """A view of this client whose calls use ``timeout`` and ``retry`` instead of its own:
        ``await td.with_options(retry=aiotd.RetryPolicy.never()).jobs.status(1)``.

        The view shares the session, the connection budget, the poll engines and ``stats``;
        it is cheap to make for one call. What is not given is kept from this client (or
        view). Closing the view refuses further calls through it and leaves the client
        open; closing the client ends the views too. Waiters (``wait``, ``watch``, ...) run
        on the client's shared engine, whose polls keep the client's own options.
        """
        self._check_open()
        inherited = self._options or CallOptions()
        view = copy.copy(self)
        view._closed = False
        view._options = CallOptions(
            timeouts=timeout or inherited.timeouts, retry=retry or inherited.retry
        )
        view._bind()
        return view

    # -- lifecycle

    async def __aenter__(self) -> Client:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the watchers, end open streams and retry waits (ClientClosed to their callers)
        and close the HTTP session; the client cannot be used again. A ``with_options``
        view only stops taking calls: its client stays open."""
        self._closed = True
        if self._root is not self:
            return
        for engine in self._engines.values():
            await engine.close()
        await self._http.close()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called on this client (or on the client of this view)."""
        return self._closed or self._root._closed

    def _check_open(self) -> None:
        if self.closed:
            raise ClientClosed("this aiotd.Client is closed; create a new one")

    @property
    def stats(self) -> Stats:
        """Requests, retries, 429s, errors and bytes, by endpoint group."""
        return self._http.stats

    # -- the first endpoints

    async def server_status(self) -> str:
        """``GET /v3/system/server_status``: ``"ok"`` when TD is up."""
        return (await self._core._call("GET", "/v3/system/server_status", ServerStatus)).status

    async def account(self) -> Account:
        """``GET /v3/account/show``: the account's plan, storage and cores."""
        return (await self._core._call("GET", "/v3/account/show", AccountResponse)).account
