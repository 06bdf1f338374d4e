"""aiotd: an asyncio client for Treasure Data's v3 REST API and Workflow API."""

from aiotd import errors, models
from aiotd._client import Client
from aiotd._config import RetryPolicy, Timeouts
from aiotd._http import Stats
from aiotd._paging import Pager
from aiotd._polling import PollSettings
from aiotd._version import __version__
from aiotd.core.jobs import JobEvent
from aiotd.workflow.attempts import TaskEvent

__all__ = [
    "Client",
    "JobEvent",
    "Pager",
    "PollSettings",
    "RetryPolicy",
    "Stats",
    "TaskEvent",
    "Timeouts",
    "__version__",
    "errors",
    "models",
]
