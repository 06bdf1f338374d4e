"""Treasure Workflow (digdag) resources: projects and their archives, workflows, attempts."""
