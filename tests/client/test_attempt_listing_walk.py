"""The engine's attempt listing is walked to an empty page or past the oldest watched id.

Digdag caps attempts pages at its ``api.max_attempts_page_size`` setting, which a server may
set below the 100 the client asks (reference §2.9): a short page proves nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

import aiotd

from .conftest import KEY, Scripted

SAMPLES = Path(__file__).parent.parent / "samples" / "workflow"
ATTEMPT = json.loads((SAMPLES / "GET__api_attempts_{id}__td-guide.json").read_text())
CAP = 2


def serve_capped(scripted: Scripted, ids: list[int]) -> None:
    """``GET /api/attempts`` newest first, never more than CAP per page."""

    async def handler(request: web.Request) -> web.StreamResponse:
        last = request.query.get("last_id")
        rest = [i for i in ids if last is None or i < int(last)]
        page = [ATTEMPT | {"id": str(i), "done": False, "success": False} for i in rest[:CAP]]
        return web.json_response({"attempts": page})

    scripted.on("/api/attempts", handler)


async def test_a_capped_page_does_not_pass_for_the_oldest(scripted: Scripted) -> None:
    serve_capped(scripted, list(range(10, 0, -1)))
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        kind = td.workflow.attempts.engine.kind
        listing = await kind.listing(["5", "6", "7"], 50)
    # every watched attempt is seen running: none may be presumed finished
    assert {"5", "6", "7"} <= set(listing.records)
    assert listing.covers("5")
    assert listing.covers("7")
    assert not listing.covers("1")  # below where the walk stopped
    assert scripted.count("/api/attempts") == 4  # 10-9, 8-7, 6-5, 4-3: past the oldest


async def test_a_walk_cut_by_its_budget_covers_only_what_it_saw(scripted: Scripted) -> None:
    serve_capped(scripted, list(range(10, 0, -1)))
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        listing = await td.workflow.attempts.engine.kind.listing(["1", "9"], 2)
    assert listing.pages > 2  # the engine learns a listing costs more than per-item polls
    assert listing.covers("9")
    assert not listing.covers("1")
