"""The cases. Each module has ``CONTENDERS`` (run in the contender's own process by
``benchmarks._run_one``) and ``async def run(ctx) -> list[CaseResult]`` (the harness side).
Modules import only the standard library at top level, so a contender's process holds only
the libraries that contender uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NAMES = (
    "single",
    "listing",
    "watch",
    "counting",
    "attempts",
    "webbackend",
    "sharding",
    "results",
    "dataframes",
    "scale",
)


@dataclass(frozen=True)
class Context:
    """How the case is run: ``quick`` sizes, ``runs`` per contender, where charts go."""

    quick: bool
    runs: int
    out_dir: Path
