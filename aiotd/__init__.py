"""aiotd: an asyncio client for Treasure Data's v3 REST API and Workflow API."""

from aiotd import errors
from aiotd._config import RetryPolicy, Timeouts
from aiotd._version import __version__

__all__ = ["RetryPolicy", "Timeouts", "__version__", "errors"]
