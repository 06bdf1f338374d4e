"""The base of every resource namespace: requests bound to the core or the workflow endpoint.

A resource says only its paths and models; the endpoint, the HTTP layer, the per-call
options of a ``Client.with_options`` view, the retry budget and the shared poll engines
are reached through the methods here, never through the Client's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from aiotd._client import Client
    from aiotd._http import Response, RetryBudget
    from aiotd._polling import Engine, PollSettings

__all__ = ["CoreResource", "Resource", "WorkflowResource"]

T = TypeVar("T")
R = TypeVar("R", bound="Resource")


class Resource:
    """Requests of one resource on one endpoint of a Client (or of a ``with_options`` view).

    Paths start with ``/`` and are joined to the endpoint; every method refuses to run on a
    closed client (ClientClosed).
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def _base_url(self) -> str:
        """The endpoint the paths of this resource are joined to."""
        raise NotImplementedError

    async def _call(self, method: str, path: str, type_: type[T], **kwargs: Any) -> T:
        """One request whose JSON answer is decoded into ``type_`` (DecodeError if not).

        ``kwargs`` are those of ``HTTP.request``: ``params``, ``data``, ``json``,
        ``headers``, ``idempotent``.
        """
        client = self._client
        client._check_open()
        return await client._http.request_json(
            method, self._base_url + path, type_, options=client._options, **kwargs
        )

    async def _request(self, method: str, path: str, **kwargs: Any) -> Response:
        """One request whose whole answer is returned undecoded (status, headers, body)."""
        client = self._client
        client._check_open()
        return await client._http.request(
            method, self._base_url + path, options=client._options, **kwargs
        )

    def _stream(self, path: str, **kwargs: Any) -> AbstractAsyncContextManager[Response]:
        """A streamed ``GET``: ``async with self._stream(path) as resp:``.

        ``kwargs`` are those of ``HTTP.stream``: ``params``, ``headers``, ``retries`` (False
        for a caller resuming the stream on one ``_retry_budget()``).
        """
        client = self._client
        client._check_open()
        return client._http.stream("GET", self._base_url + path, options=client._options, **kwargs)

    def _stream_presigned(self, url: str, **kwargs: Any) -> AbstractAsyncContextManager[Response]:
        """A streamed ``GET`` of an absolute, pre-signed URL: no API key is sent, since the
        URL carries its own credentials (archive and log downloads from object storage)."""
        client = self._client
        client._check_open()
        return client._http.stream("GET", url, options=client._options, auth=False, **kwargs)

    def _retry_budget(self) -> RetryBudget:
        """One budget of tries for a call that retries in its own loop (a resumed stream),
        on the RetryPolicy in force for this client or view."""
        client = self._client
        client._check_open()
        return client._http.retry_budget(client._options)

    @property
    def _poll_settings(self) -> PollSettings:
        """The client's poll timing."""
        return self._client._poll_settings

    def _engine(self: R, build: Callable[[R, PollSettings], Engine[T]]) -> Engine[T]:
        """The poll engine of this kind of resource, one per Client and shared by its views.

        ``build(resource, settings)`` makes it on first use, with the resource bound to the
        root client: an engine's polls never run on the options of the view that asked first.
        The client closes it on ``close()``.
        """
        client = self._client
        client._check_open()
        root = client._root
        found = root._engines.get(type(self))
        if found is None:
            owner = self if client is root else type(self)(root)
            found = root._engines[type(self)] = build(owner, root._poll_settings)
        return found


class CoreResource(Resource):
    """A resource of the core API (``/v3/...`` on ``Client.endpoint``)."""

    @property
    def _base_url(self) -> str:
        return self._client.endpoint


class WorkflowResource(Resource):
    """A resource of the Workflow API (``/api/...`` on ``Client.workflow_endpoint``)."""

    @property
    def _base_url(self) -> str:
        return self._client.workflow_endpoint
