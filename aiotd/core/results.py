"""``td.results``: saved result outputs (named connection URLs)."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from aiotd._http import segment
from aiotd.core._common import call_filled, required
from aiotd.models.core import Result, ResultList, ResultRef

if TYPE_CHECKING:
    from aiotd._client import Client

__all__ = ["Results"]


class Results:
    """Saved results of the core API: ``/v3/result/...`` (v3-api.md §1.9)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def list(self) -> builtins.list[Result]:
        """Every saved result output with its URL."""
        return (await self._client._call("GET", "/v3/result/list", ResultList)).results

    async def create(self, name: str, url: str, **extra: Any) -> ResultRef:
        """Save ``url`` (``mysql://...``, ``td://@/db/table``...) under ``name``; sent once."""
        form = {"url": required(url, "url"), **extra}
        path = f"/v3/result/create/{segment(name)}"
        known = {"name": name, "result": name}
        return await call_filled(self._client, "POST", path, ResultRef, known, data=form)

    async def delete(self, name: str) -> ResultRef:
        """Forget a saved result; sent once (a repeat is 404)."""
        path = f"/v3/result/delete/{segment(name)}"
        known = {"name": name, "result": name}
        return await call_filled(self._client, "POST", path, ResultRef, known)
