"""aiotd: an asyncio client for Treasure Data's v3 REST API and Workflow API."""

from aiotd import errors, models
from aiotd._client import Client
from aiotd._config import RetryPolicy, Timeouts
from aiotd._http import Stats
from aiotd._paging import Pager
from aiotd._version import __version__

__all__ = ["Client", "Pager", "RetryPolicy", "Stats", "Timeouts", "__version__", "errors", "models"]
