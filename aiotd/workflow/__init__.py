"""Treasure Workflow (digdag) resources: projects and their archives, workflows, attempts."""

from aiotd.workflow._namespace import Workflow
from aiotd.workflow.attempts import TaskEvent

__all__ = ["TaskEvent", "Workflow"]
