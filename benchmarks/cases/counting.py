"""Case 3c, watching under every reading of ``job/list``'s ``count`` and two page caps.

The recorded bodies disagree on what ``count`` counts (the page's length, the span asked,
or the total), and a server may cut pages shorter than ``to`` asks. The emulator serves each
reading (``--job-list-count``) with a page cap (``--job-list-page-cap``); in each of the six
combinations aiotd watches N jobs among N busy long-running ones, half of them issued before
the watched jobs and half after, so every listing walks through busy jobs on both sides.
A naive asyncio loop (``job/status`` every 1 s per job), whose cost does not depend on
listings at all, runs once as the reference.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._harness import Emulator, Issued, log, run_contender
from benchmarks._report import CaseResult, Metric, Target
from benchmarks.cases import Context
from benchmarks.cases.watch import (
    CONTENDERS as WATCH_CONTENDERS,
)
from benchmarks.cases.watch import (
    LONG_RUNNING,
    NAIVE_INTERVAL,
    Plan,
    latency_figures,
    seeding_rate,
)

AIOTD = "aiotd as_completed"
NAIVE = f"naive asyncio ({NAIVE_INTERVAL:g} s polls)"
CONTENDERS = {AIOTD: WATCH_CONTENDERS[AIOTD], NAIVE: WATCH_CONTENDERS[NAIVE]}
COUNTS = ("page", "span", "total")
CAPS = (100, 1000)

METRICS = [
    Metric("requests_per_job", "requests per watched job", "{:.2f}"),
    Metric("list_pages", "job/list pages", "{:,.0f}", better=""),
    Metric("latency_p50", "detection p50 s", "{:.2f}"),
    Metric("latency_p95", "detection p95 s", "{:.2f}"),
    Metric("latency_max", "detection max s", "{:.1f}"),
    Metric("cpu", "client CPU s", "{:.2f}"),
    Metric("wall", "wall s", "{:.0f}"),
]


async def _one(count: str, cap: int, name: str, plan: Plan, busy: int) -> dict[str, Any]:
    options = ["--job-list-count", count, "--job-list-page-cap", str(cap)]
    async with Emulator(options=options) as emu:
        await emu.create_database("bench")
        rate = await seeding_rate(emu, busy // 2)
        seeded: list[tuple[list[Issued], list[float]]] = []

        async def work() -> dict[str, Any]:
            issued, ends = await plan.seed(emu, "bench", rate * 0.7)
            seeded.append((issued, ends))
            await emu.issue("bench", [LONG_RUNNING] * (busy - busy // 2), busy - busy // 2)
            return {"ids": [job.job_id for job in issued]}

        figures = await run_contender(emu, "counting", name, work=work)
    latency_figures(figures, *seeded[0], plan.durations)
    figures["list_pages"] = figures["routes"].get("GET /v3/job/list", 0)
    return figures


async def run(ctx: Context) -> list[CaseResult]:
    if ctx.quick:
        watched, low, high = 200, 1.0, 5.0
    else:
        watched, low, high = 1_000, 1.0, 30.0
    plan = Plan(watched, low, high, seed=12)
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {}
    for count in COUNTS:
        for cap in CAPS:
            row = f"aiotd, count={count}, cap {cap}"
            runs[row] = []
            for _ in range(ctx.runs):
                figures = await _one(count, cap, AIOTD, plan, watched)
                runs[row].append(figures)
                log(
                    f"counting {row}: {figures['requests_per_job']:.2f} req/job, "
                    f"{figures['list_pages']} list pages, p50 {figures['latency_p50']:.2f} s"
                )
    runs[NAIVE] = [await _one("page", 100, NAIVE, plan, watched)]
    case = CaseResult(
        name="counting",
        title=f"3c. Watching {watched:,} jobs among {watched:,} busy ones, every reading of count",
        about=(
            f"{watched:,} jobs running {low:g}-{high:g} s (uniform; 5% end in error) among "
            f"{watched:,} unwatched long-running jobs, half issued before them and half after. "
            "The emulator's `job/list` says `count` is the page's length (`page`), the span "
            "asked (`span`) or the number of matching jobs (`total`), and never sends more "
            "than the cap per page whatever `to` asks (aiotd asks for 1,000). aiotd reads "
            "neither `count` nor the page's length as the end of a walk: it walks to an empty "
            "page or past the oldest watched job, and knows what it covered from the ids it "
            f"saw. The naive loop (per-job `job/status` every {NAIVE_INTERVAL:g} s) runs once, "
            "under `page` with cap 100, as the reference."
        ),
        metrics=METRICS,
        runs=runs,
        baseline=None,
        quick=ctx.quick,
    )
    rows = [r for r in runs if r != NAIVE]
    worst_req = max(case.median(r, "requests_per_job") for r in rows)
    worst_p50 = max(case.median(r, "latency_p50") for r in rows)
    case.targets = [
        Target(
            "≤ 1.5 requests per watched job in every combination",
            f"worst {worst_req:.2f}",
            worst_req <= 1.5,
        ),
        Target(
            "median detection ≤ 2 s in every combination",
            f"worst {worst_p50:.2f} s",
            worst_p50 <= 2.0,
        ),
    ]
    case.seconds = time.perf_counter() - started
    return [case]
