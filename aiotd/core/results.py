"""``td.results``: saved result outputs (named connection URLs)."""

from __future__ import annotations

import builtins
from typing import Any

from aiotd._http import segment
from aiotd._paging import Pager, one_page
from aiotd._resource import CoreResource
from aiotd.core._common import call_filled, required
from aiotd.models.core import Result, ResultList, ResultRef

__all__ = ["Results"]


class Results(CoreResource):
    """Saved results of the core API: ``/v3/result/...`` (v3-api.md §1.9)."""

    def list(self) -> Pager[Result]:
        """Every saved result output with its URL: ``await`` or ``async for`` (one response)."""

        async def fetch() -> builtins.list[Result]:
            return (await self._call("GET", "/v3/result/list", ResultList)).results

        return one_page(fetch)

    async def create(self, name: str, *, url: str, **extra: Any) -> ResultRef:
        """Save ``url`` (``mysql://...``, ``td://@/db/table``...) under ``name``; sent once."""
        form = {"url": required(url, "url"), **extra}
        path = f"/v3/result/create/{segment(name)}"
        known = {"name": name, "result": name}
        return await call_filled(self, "POST", path, ResultRef, known, data=form)

    async def delete(self, name: str) -> ResultRef:
        """Forget a saved result; sent once (a repeat is 404)."""
        path = f"/v3/result/delete/{segment(name)}"
        known = {"name": name, "result": name}
        return await call_filled(self, "POST", path, ResultRef, known)
