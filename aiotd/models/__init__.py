"""Response models of the v3 REST API and the Workflow API: msgspec Structs, no I/O.

Every model is frozen and keyword-only, ignores unknown fields, holds ids as ``str`` and keeps
timestamps as received with parsed ``<field>_dt`` accessors. Fields without a default are
required: a body lacking one is a DecodeError (see ``aiotd.models.core``).

A model is named once, in the ``__all__`` of the module defining it; this package re-exports
those names as they stand (the form type checkers read as a library's interface).
"""

from aiotd.models import core, workflow
from aiotd.models._base import Model
from aiotd.models.core import *  # noqa: F403
from aiotd.models.workflow import *  # noqa: F403

__all__ = ["Model"]
__all__ += core.__all__
__all__ += workflow.__all__
