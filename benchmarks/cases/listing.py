"""Case 2, large listing decode: 10,000 jobs from one ``job/list`` answer.

aiotd (``await td.jobs.list(page_size=N)``: one request, msgspec Structs) against
td-client-python (``Client.jobs(0, N - 1)``: ``list_jobs`` then its Job models) and a bare
aiohttp GET + ``json.loads`` (dicts, no models) for scale. Each process makes one untimed
call, then ``CALLS`` timed ones; a fresh process per run gives each its own peak RSS.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._contender import Contender, Figures, run_async
from benchmarks._harness import Emulator, log, run_contender
from benchmarks._report import CaseResult, Metric, Target, bar_chart
from benchmarks.cases import Context

CALLS = 3
QUICK_CALLS = 1


def _measure(samples: list[tuple[float, float]], count: int) -> Figures:
    walls = sorted(w for w, _ in samples)
    cpus = sorted(c for _, c in samples)
    return {
        "ms_per_call": walls[len(walls) // 2] * 1000,
        "cpu_ms_per_call": cpus[len(cpus) // 2] * 1000,
        "jobs": count,
    }


async def _aiotd(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import aiotd

    n = work["jobs"]
    async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
        jobs = await td.jobs.list(page_size=n)
        samples = []
        for _ in range(work["calls"]):
            del jobs
            wall, cpu = time.perf_counter(), time.process_time()
            jobs = await td.jobs.list(page_size=n)
            samples.append((time.perf_counter() - wall, time.process_time() - cpu))
        return _measure(samples, len(jobs))


async def _aiohttp(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import json

    import aiohttp

    url = f"{setup['url']}/v3/job/list?from=0&to={work['jobs'] - 1}"
    headers = {"Authorization": f"TD1 {setup['apikey']}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def fetch() -> list[Any]:
            async with session.get(url) as resp:
                jobs: list[Any] = json.loads(await resp.read())["jobs"]
                return jobs

        jobs = await fetch()
        samples = []
        for _ in range(work["calls"]):
            del jobs
            wall, cpu = time.perf_counter(), time.process_time()
            jobs = await fetch()
            samples.append((time.perf_counter() - wall, time.process_time() - cpu))
        return _measure(samples, len(jobs))


def _tdclient(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import tdclient

    n = work["jobs"]
    with tdclient.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
        jobs = td.jobs(0, n - 1)
        samples = []
        for _ in range(work["calls"]):
            del jobs
            wall, cpu = time.perf_counter(), time.process_time()
            jobs = td.jobs(0, n - 1)
            samples.append((time.perf_counter() - wall, time.process_time() - cpu))
        return _measure(samples, len(jobs))


def _import_aiotd() -> None:
    import aiotd  # noqa: F401


def _import_aiohttp() -> None:
    import aiohttp  # noqa: F401


def _import_tdclient() -> None:
    import tdclient  # noqa: F401


CONTENDERS = {
    "aiotd": Contender(_import_aiotd, run_async(_aiotd)),
    "td-client": Contender(_import_tdclient, _tdclient),
    "aiohttp + json.loads": Contender(_import_aiohttp, run_async(_aiohttp)),
}

METRICS = [
    Metric("cpu_ms_per_call", "client CPU ms/call", "{:,.0f}"),
    Metric("ms_per_call", "wall ms/call", "{:,.0f}"),
    Metric("rss_peak_mb", "peak RSS MB", "{:.0f}"),
    Metric("rss_growth_mb", "RSS growth MB", "{:.1f}"),
]


async def run(ctx: Context) -> list[CaseResult]:
    n = 10_000
    calls = QUICK_CALLS if ctx.quick else CALLS
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    async with Emulator() as emu:
        await emu.create_database("bench")
        queries = [
            "-- emulator: queued=0 duration=0 rows=0\n"
            f"SELECT {i} AS n, 'a query long enough to look like one' AS text"
            for i in range(n)
        ]
        seeded = await emu.issue("bench", queries, n)
        await emu.wait_finished([s.job_id for s in seeded[-50:]])
        async with emu.session.get(f"{emu.url}/v3/job/list?from=0&to={n - 1}") as resp:
            answer_mb = len(await resp.read()) / 1e6
        for round_ in range(ctx.runs):
            for name in CONTENDERS:
                figures = await run_contender(
                    emu, "listing", name, work={"jobs": n, "calls": calls}
                )
                if figures["jobs"] != n:
                    raise RuntimeError(f"listing/{name}: got {figures['jobs']} jobs, not {n}")
                figures["rss_peak_mb"] = figures["rss_peak"] / 2**20
                figures["rss_growth_mb"] = (figures["rss_peak"] - figures["rss_ready"]) / 2**20
                runs[name].append(figures)
                log(
                    f"listing #{round_ + 1} {name}: {figures['cpu_ms_per_call']:.0f} ms CPU, "
                    f"{figures['ms_per_call']:.0f} ms wall, RSS {figures['rss_peak_mb']:.0f} MB"
                )
    case = CaseResult(
        name="listing",
        title=f"2. Large listing decode: {n:,} jobs from one job/list",
        about=(
            f"One `GET /v3/job/list?from=0&to={n - 1}` answer ({n:,} finished jobs, "
            f"{answer_mb:.1f} MB of JSON) decoded into each client's job objects. "
            "*client CPU* is the contender process's CPU per call (decoding and HTTP, the "
            "emulator's JSON encoding excluded); *wall* includes the emulator producing the "
            f"answer. Median of {calls} call(s) after one untimed call, in a fresh process "
            "per run; *RSS growth* is the peak minus the RSS once the libraries were imported."
        ),
        metrics=METRICS,
        runs=runs,
        chart="listing.png",
        chart_metrics=["cpu_ms_per_call", "ms_per_call", "rss_peak_mb"],
        quick=ctx.quick,
    )
    a = case.median("aiotd", "cpu_ms_per_call")
    t = case.median("td-client", "cpu_ms_per_call")
    aw = case.median("aiotd", "ms_per_call")
    tw = case.median("td-client", "ms_per_call")
    case.targets = [
        Target(
            "aiotd decodes ≥ 3 × faster than td-client-python (client CPU per call)",
            f"{t / a:.1f} × ({a:,.0f} vs {t:,.0f} ms)",
            t >= 3 * a,
        ),
        Target(
            "the same in wall time (includes the emulator encoding the answer)",
            f"{tw / aw:.1f} × ({aw:,.0f} vs {tw:,.0f} ms)",
            tw >= 3 * aw,
        ),
    ]
    case.seconds = time.perf_counter() - started
    bar_chart(case, ctx.out_dir / "listing.png")
    return [case]
