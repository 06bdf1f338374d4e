"""``td.workflow``: the Treasure Workflow (Digdag) API's resources on one client."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiotd._resource import WorkflowResource
from aiotd.models.workflow import Version, VersionCheck
from aiotd.workflow.attempts import Attempts
from aiotd.workflow.logs import Logs
from aiotd.workflow.projects import Projects
from aiotd.workflow.schedules import Schedules
from aiotd.workflow.secrets import Secrets
from aiotd.workflow.sessions import Sessions
from aiotd.workflow.workflows import Workflows

if TYPE_CHECKING:
    from aiotd._client import Client

__all__ = ["Workflow"]


class Workflow(WorkflowResource):
    """The Workflow API (``/api/...`` on the workflow endpoint), one namespace per resource."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.projects = Projects(client)
        self.workflows = Workflows(client)
        self.sessions = Sessions(client)
        self.attempts = Attempts(client)
        self.schedules = Schedules(client)
        self.logs = Logs(client)
        self.secrets = Secrets(client)

    async def version(self) -> str:
        """The server's digdag version (``GET /api/version``)."""
        return (await self._call("GET", "/api/version", Version)).version

    async def version_check(self, *, client_version: str | None = None) -> VersionCheck:
        """Whether a client of ``client_version`` is compatible with the server."""
        params = {"client": client_version}
        return await self._call("GET", "/api/version/check", VersionCheck, params=params)
