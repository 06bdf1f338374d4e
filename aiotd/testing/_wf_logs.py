"""Task logs of the emulator's attempts (reference §2.6): written as each operator ends,
listed and served as digdag does, with direct URLs on the storage origin."""

from __future__ import annotations

import gzip
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from aiotd.testing._common import json_response
from aiotd.testing._digdag import format_instant
from aiotd.testing._wf_http import Fail, bool_query, path_id
from aiotd.testing._wf_state import Attempt, LogFile, Task
from aiotd.testing._wf_storage import StorageOrigin

if TYPE_CHECKING:
    from aiotd.testing._wf_attempts import Attempts

__all__ = ["AGENT_ID", "Logs", "write_log"]

AGENT_ID = f"{os.getpid()}@aiotd-emulator"


def write_log(
    storage: StorageOrigin,
    attempt: Attempt,
    task: Task,
    operator: str,
    lines: list[str],
    *,
    error: bool,
) -> None:
    """Add a task's ``.log.gz`` to its attempt, named as digdag names them (reference §2.6)."""
    started = task.started_at if task.started_at is not None else attempt.clock
    seconds = int(started)
    nanos = int((started - seconds) * 1e9)
    name = task.spec.full_name
    file_name = f"{name}@{seconds:08x}{nanos:08x}.{AGENT_ID}.log.gz"
    stamp = datetime.fromtimestamp(started, tz=timezone.utc)
    prefix = f"{stamp:%Y-%m-%d %H:%M:%S}.{nanos // 1_000_000:03d} {stamp:%z}"
    context = f"({task.id:04d}@[0:{attempt.session.project.name}]{name})"
    text = [
        f"{prefix} [INFO] {context} io.digdag.core.agent.OperatorManager: "
        f"{operator}>: {_short(task.spec.command)}"
    ]
    level = "ERROR" if error else "INFO"
    text.extend(f"{prefix} [{level}] {context} {line}" for line in lines)
    data = gzip.compress(("\n".join(text) + "\n").encode("utf-8"))
    attempt.logs.append(LogFile(name, file_name, data, started, storage.put(data)))


class Logs:
    """``/api/logs/{attempt id}/files``: the list of an attempt's log files, and each file."""

    def __init__(self, attempts: Attempts, storage: StorageOrigin) -> None:
        self._attempts = attempts
        self._storage = storage

    async def files(self, request: web.Request) -> web.Response:
        attempt = self._attempts.attempt(path_id(request))
        prefix = request.query.get("task", "")
        direct = bool_query(request, "direct_download", True)
        files = sorted(
            (f for f in attempt.logs if f.task_name.startswith(prefix)), key=lambda f: f.file_name
        )
        return json_response(
            {
                "files": [
                    {
                        "fileName": f.file_name,
                        "fileSize": len(f.data),
                        "taskName": f.task_name,
                        "fileTime": format_instant(f.file_time),
                        "agentId": AGENT_ID,
                        "direct": self._storage.url(request, f.storage_key) if direct else None,
                    }
                    for f in files
                ]
            }
        )

    async def file(self, request: web.Request) -> web.Response:
        attempt = self._attempts.attempt(path_id(request))
        name = request.match_info["file_name"]
        for log in attempt.logs:
            if log.file_name == name:
                return web.Response(body=log.data, content_type="application/gzip")
        raise Fail(404, f"Log file {name} does not exist")


def _short(command: Any) -> str:
    text = command if isinstance(command, str) else msgspec.json.encode(command).decode()
    return text if len(text) <= 200 else text[:197] + "..."
