"""What a contender is: imports done before the clock starts, then the measured work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Figures = dict[str, Any]


@dataclass(frozen=True)
class Contender:
    """``prepare()`` imports the libraries (outside the measurement); ``run(setup, work)``
    does the measured work and returns its figures."""

    prepare: Callable[[], None]
    run: Callable[[dict[str, Any], dict[str, Any]], Figures]


def nothing() -> None:
    """A ``prepare`` for contenders that import at module level."""


def run_async(
    fn: Callable[[dict[str, Any], dict[str, Any]], Awaitable[Figures]],
) -> Callable[[dict[str, Any], dict[str, Any]], Figures]:
    """A ``run`` that runs the coroutine function ``fn`` in a fresh event loop."""

    def run(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
        return asyncio.run(fn(setup, work))

    return run
