"""Case 3b, watching workflow attempts (issue 6): N attempts of a one-task workflow.

The workflow's only task is ``td>`` running a query whose ``-- emulator:`` comment (filled from
the attempt's params) keeps its job queued until a common start and then running 1-20 s, so
every attempt ends after watching began; 5% of the jobs end in error (their attempt fails).
Contenders: aiotd ``td.workflow.attempts.as_completed`` against tdworkflow
``Client.wait_attempt`` (5 s interval, its default) per attempt in a 64-thread pool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

from benchmarks._contender import Contender, Figures, run_async
from benchmarks._harness import SEED_CONCURRENCY, Emulator, Issued, log, run_contender
from benchmarks._report import CaseResult, bar_chart
from benchmarks.cases import Context
from benchmarks.cases.watch import METRICS, Plan, _targets, latency_figures, notes, tail_targets

THREADS = 64
DIG = """\
timezone: UTC
+run:
  td>: q.sql
  database: bench
"""
SQL = "-- emulator: queued=${q} duration=${d} rows=0${outcome}\nSELECT 1\n"


async def _aiotd(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import aiotd

    seen: dict[str, float] = {}
    url = setup["url"]
    async with aiotd.Client(apikey=setup["apikey"], endpoint=url, workflow_endpoint=url) as td:
        async for attempt in td.workflow.attempts.as_completed(work["ids"]):
            seen[attempt.id] = time.time()
        engine = td.workflow.attempts.engine
        return {"seen": seen, "engine_polls": engine.polls, "engine_listings": engine.listings}


def _tdworkflow(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from tdworkflow.client import Client

    # its requests pool keeps 10 connections; 64 threads make urllib3 warn on every extra one
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    seen: dict[str, float] = {}
    client = Client(
        site="us",
        endpoint=setup["url"].removeprefix("http://"),
        apikey=setup["apikey"],
        scheme="http",
    )

    def wait(attempt_id: str) -> None:
        client.wait_attempt(int(attempt_id))
        seen[attempt_id] = time.time()

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(wait, work["ids"]))
    return {"seen": seen}


def _import_aiotd() -> None:
    import aiotd  # noqa: F401


def _import_tdworkflow() -> None:
    import tdworkflow.client  # noqa: F401


CONTENDERS = {
    "aiotd as_completed": Contender(_import_aiotd, run_async(_aiotd)),
    f"tdworkflow wait_attempt ({THREADS} threads)": Contender(_import_tdworkflow, _tdworkflow),
}


class _Starter:
    """Starts attempts through ``PUT /api/attempts``; every session time is new."""

    def __init__(self, emu: Emulator, workflow_id: str) -> None:
        self.emu = emu
        self.workflow_id = workflow_id
        self.sessions = 0

    async def start(self, plan: Plan, rate: float) -> tuple[list[Issued], list[float]]:
        begin = time.time() + plan.count / rate + 1.5
        out: list[Issued | None] = [None] * plan.count
        base = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
        todo = iter(range(plan.count))
        url = f"{self.emu.url}/api/attempts"

        async def worker() -> None:
            for i in todo:
                self.sessions += 1
                when = base + dt.timedelta(seconds=self.sessions)
                sent = time.time()
                params = {
                    "q": round(max(0.0, begin - sent), 3),
                    "d": plan.durations[i],
                    "outcome": " status=error" if plan.errors[i] else "",
                }
                body = {
                    "workflowId": self.workflow_id,
                    "sessionTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "params": params,
                }
                async with self.emu.session.put(url, json=body) as resp:
                    data = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"attempt start: {resp.status} {data[:200]!r}")
                out[i] = Issued(str(json.loads(data)["id"]), sent, time.time())

        await asyncio.gather(*(worker() for _ in range(SEED_CONCURRENCY)))
        issued = [item for item in out if item is not None]
        ends = [begin + plan.durations[i] for i in range(plan.count)]
        return issued, ends


async def run(ctx: Context) -> list[CaseResult]:
    import aiotd

    count, low, high = (100, 1.0, 5.0) if ctx.quick else (500, 1.0, 20.0)
    plan = Plan(count, low, high, seed=7)
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    async with Emulator(workflow=True) as emu:
        await emu.create_database("bench")
        async with aiotd.Client(
            apikey=emu.apikey, endpoint=emu.url, workflow_endpoint=emu.url
        ) as td:
            project = await td.workflow.projects.push("bench", {"wait.dig": DIG, "q.sql": SQL})
            workflow = await td.workflow.projects.workflow(project.id, "wait")
        starter = _Starter(emu, workflow.id)
        t0 = time.perf_counter()
        probe = Plan(50, 0.0, 0.0)
        await starter.start(probe, 1e9)
        rate = probe.count / (time.perf_counter() - t0)
        log(f"attempts: started at {rate:,.0f} attempts/s")
        for round_ in range(ctx.runs):
            for name in CONTENDERS:
                seeded: list[tuple[list[Issued], list[float]]] = []

                async def work(plan: Plan = plan, seeded: list[Any] = seeded) -> dict[str, Any]:
                    issued, ends = await starter.start(plan, rate * 0.7)
                    seeded.append((issued, ends))
                    return {"ids": [a.job_id for a in issued]}

                figures = await run_contender(emu, "attempts", name, work=work)
                latency_figures(figures, *seeded[0], plan.durations)
                runs[name].append(figures)
                log(
                    f"attempts #{round_ + 1} {name}: "
                    f"{figures['requests_per_job']:.2f} req/attempt, "
                    f"p50 {figures['latency_p50']:.2f} s, p95 {figures['latency_p95']:.2f} s, "
                    f"CPU {figures['cpu']:.2f} s, RSS {figures['rss_peak_mb']:.0f} MB, "
                    f"{figures['wall']:.0f} s"
                )
    base, rival = "aiotd as_completed", f"tdworkflow wait_attempt ({THREADS} threads)"
    case = CaseResult(
        name="attempts",
        title=f"3b. Watching {count:,} workflow attempts running {low:g}-{high:g} s",
        about=(
            f"{count:,} attempts of a one-task workflow (`td>` whose job is queued until a "
            f"common start, then runs {low:g}-{high:g} s; 5% fail). *requests per watched job* "
            "here is per attempt (`GET /api/attempts/{id}`, `GET /api/attempts` pages). "
            "Detection is measured from the job's planned end; the emulator moves attempts on "
            "a 0.2 s tick (or when one is read), which adds up to about 0.2 s for every "
            f"contender alike. tdworkflow runs `wait_attempt` per attempt in a {THREADS}-thread "
            "pool (its requests pool keeps 10 connections, its default)."
        ),
        metrics=METRICS,
        runs=runs,
        baseline=base,
        chart="attempts.png",
        chart_metrics=["requests_per_job", "latency_p50", "cpu", "rss_peak_mb"],
        quick=ctx.quick,
    )
    case.targets = _targets(case, base, rival) + tail_targets(case, base)
    case.notes = notes(
        case,
        base,
        rival,
        "attempt",
        "each listing carries every attempt, finished or not, down to the oldest watched one",
    )
    case.seconds = time.perf_counter() - started
    bar_chart(case, ctx.out_dir / "attempts.png")
    return [case]
