"""``td.workflow.secrets``: project secrets; keys are listed, values are only ever sent."""

from __future__ import annotations

import builtins
from collections.abc import Mapping

from aiotd._http import segment
from aiotd._paging import Pager, one_page
from aiotd._resource import WorkflowResource
from aiotd.models.workflow import Secret, SecretList

__all__ = ["Secrets"]


class Secrets(WorkflowResource):
    """Secrets of a project: ``/api/projects/{id}/secrets`` (reference §2.1).

    Values go in request bodies only, never in URLs or logs. Setting and deleting are safe
    to retry: a second PUT stores the same value, a second DELETE of a gone key is not an
    error (reference §2.1).
    """

    def _path(self, project_id: str | int, *key: str) -> str:
        # the key is a required argument of the calls that name one: a None there is
        # refused by segment(), never turned into the path of every secret
        return "/".join([f"/api/projects/{segment(project_id)}/secrets", *map(segment, key)])

    def list(self, project_id: str | int) -> Pager[str]:
        """The keys of the project's secrets, sorted as TD returns them: ``await`` or
        ``async for``. They come in one page: the endpoint has no paging (reference §2.9)."""
        path = self._path(project_id)

        async def fetch() -> builtins.list[str]:
            page = await self._call("GET", path, SecretList)
            return [secret.key for secret in page.secrets]

        return one_page(fetch)

    async def put(self, project_id: str | int, key: str, *, value: str) -> Secret:
        """Set one secret (``key``: dot-separated words; ``value``: at most 16 KiB)."""
        if not isinstance(value, str):
            raise TypeError("a secret value must be a str")
        return await self._call(
            "PUT", self._path(project_id, key), Secret, json={"value": value}, idempotent=True
        )

    async def put_many(
        self, project_id: str | int, values: Mapping[str, str]
    ) -> builtins.list[Secret]:
        """Set several secrets (key to value), one request each, in the mapping's order."""
        return [await self.put(project_id, key, value=value) for key, value in values.items()]

    async def delete(self, project_id: str | int, key: str) -> Secret:
        """Delete one secret; a key that does not exist is not an error."""
        return await self._call("DELETE", self._path(project_id, key), Secret, idempotent=True)
