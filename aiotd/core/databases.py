"""``td.databases``: list, show, create and delete databases."""

from __future__ import annotations

import builtins
from typing import Any

from aiotd._paging import Pager, one_page
from aiotd._resource import CoreResource
from aiotd.core._common import call_filled, db_segment
from aiotd.errors import Conflict, NotFound
from aiotd.models.core import Database, DatabaseList, DatabaseRef

__all__ = ["Databases"]


class Databases(CoreResource):
    """Databases of the core API: ``/v3/database/...`` (v3-api.md §1.3)."""

    def list(self) -> Pager[Database]:
        """Every database the key can see: ``await`` or ``async for`` (TD answers them in one
        response)."""

        async def fetch() -> builtins.list[Database]:
            return (await self._call("GET", "/v3/database/list", DatabaseList)).databases

        return one_page(fetch)

    async def get(self, database: str) -> Database:
        """``database/show``: one database; NotFound if it does not exist."""
        return await self._call("GET", f"/v3/database/show/{db_segment(database)}", Database)

    async def create(self, database: str, *, exist_ok: bool = False, **extra: Any) -> DatabaseRef:
        """Create a database; Conflict if it exists, unless ``exist_ok``.

        A create is retried only with ``exist_ok``: after a lost answer the retry sees 409,
        which ``exist_ok`` reads as success; without it that 409 would be a false error,
        so the request is sent once.
        """
        path = f"/v3/database/create/{db_segment(database)}"
        known = {"database": database}
        try:
            return await call_filled(
                self, "POST", path, DatabaseRef, known, data=extra, idempotent=exist_ok
            )
        except Conflict:
            if not exist_ok:
                raise
            return DatabaseRef(database=database)

    async def delete(self, database: str, *, missing_ok: bool = False) -> DatabaseRef:
        """Delete a database and its tables; NotFound if it is missing, unless ``missing_ok``.

        Retried only with ``missing_ok``, for the reason ``create`` gives: a repeated delete
        answers 404.
        """
        path = f"/v3/database/delete/{db_segment(database)}"
        known = {"database": database}
        try:
            return await call_filled(self, "POST", path, DatabaseRef, known, idempotent=missing_ok)
        except NotFound:
            if not missing_ok:
                raise
            return DatabaseRef(database=database)
