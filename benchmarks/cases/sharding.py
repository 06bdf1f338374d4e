"""Case 3e, beyond one process: four processes, each with its own Client, watching one account.

The jobs are those of the watch case (N jobs queued until a common start, then running 1-60 s,
5% errors, among N/2 busy long-running ones issued before them), issued into four databases
in turn, so each database's jobs are spread over the whole id range. One process watching
every job is compared with four processes started at once, each watching a quarter: by id
range (contiguous quarters: what sharding by time of issue gives) or by database (ids
interleaved: what any split unrelated to issue order gives, a hash of the id or a round
robin alike). Every process runs ``as_completed`` over its share against one emulator; the
requests are the emulator's count for the whole group.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._harness import Emulator, Issued, log, percentile, run_contenders
from benchmarks._report import CaseResult, Metric, bar_chart
from benchmarks.cases import Context
from benchmarks.cases.watch import CONTENDERS as WATCH_CONTENDERS
from benchmarks.cases.watch import LATE, Plan, seeding_rate

AIOTD = "aiotd as_completed"
CONTENDERS = {AIOTD: WATCH_CONTENDERS[AIOTD]}
SHARDS = 4
#: The emulator's booting time, given explicitly so that a job's end is known exactly.
BOOTING = 0.05
LIST = "GET /v3/job/list"
SHOW = "GET /v3/job/show/{job_id}"

ONE = "1 process, every job"
BY_RANGE = f"{SHARDS} processes, by id range"
BY_DATABASE = f"{SHARDS} processes, by database (ids interleaved)"


async def seed(emu: Emulator, plan: Plan, rate: float) -> tuple[list[Issued], list[float]]:
    """Issue the plan's jobs in turn into ``SHARDS`` databases (job i into ``shard{i % 4}``),
    queued until a start time when all are issued; (issued, ends) in plan order."""
    start = time.time() + plan.count / rate + 1.0
    queued: dict[int, float] = {}

    def query(index: int, sent: float) -> str:
        q = queued[index] = round(max(0.0, start - sent), 3)
        outcome = " status=error" if plan.errors[index] else ""
        return (
            f"-- emulator: queued={q} booting={BOOTING} duration={plan.durations[index]} "
            f"rows=0{outcome}\nSELECT 1"
        )

    issued = await emu.issue(lambda i: f"shard{i % SHARDS}", query, plan.count)
    late = sum(1 for q in queued.values() if q == 0.0)
    if late:
        log(f"sharding: {late} jobs were issued after the planned start")
    ends = [
        (job.sent + job.answered) / 2 + queued[i] + BOOTING + plan.durations[i]
        for i, job in enumerate(issued)
    ]
    return issued, ends


def spread(shares: list[list[str]]) -> float:
    """How much of the whole id range each process's ids span, on average (1/4 for
    contiguous quarters, about 1 for interleaved ids)."""
    ids = [int(i) for share in shares for i in share]
    whole = max(ids) - min(ids) or 1
    return sum((max(map(int, s)) - min(map(int, s))) / whole for s in shares) / len(shares)


def shares(issued: list[Issued], layout: str) -> list[list[str]]:
    """Each process's job ids under ``layout``."""
    if layout == ONE:
        return [[job.job_id for job in issued]]
    if layout == BY_DATABASE:
        return [[job.job_id for job in issued[k::SHARDS]] for k in range(SHARDS)]
    ids = sorted((job.job_id for job in issued), key=int)
    size = -(-len(ids) // SHARDS)
    return [ids[k * size : (k + 1) * size] for k in range(SHARDS)]


async def layout_run(emu: Emulator, layout: str, plan: Plan, rate: float) -> dict[str, Any]:
    """One layout's processes watching fresh jobs of the plan; the group's figures."""
    seeded: list[tuple[list[Issued], list[float]]] = []
    spans: list[float] = []

    async def work() -> list[dict[str, Any]]:
        issued, ends = await seed(emu, plan, rate * 0.7)
        seeded.append((issued, ends))
        split = shares(issued, layout)
        spans.append(spread(split))
        return [{"ids": ids} for ids in split]

    count = 1 if layout == ONE else SHARDS
    each, totals = await run_contenders(emu, "sharding", AIOTD, count, work=work)
    issued, ends = seeded[0]
    seen: dict[str, float] = {}
    for figures in each:
        seen.update(figures["seen"])
    if len(seen) != len(issued):
        raise RuntimeError(f"{len(issued) - len(seen)} watched jobs were never reported")
    lat = [seen[job.job_id] - end for job, end in zip(issued, ends, strict=True)]
    n = len(issued)
    cpus = [f["cpu"] for f in each]
    routes = totals["routes"]
    return {
        **totals,
        "processes": count,
        "id_spread": spans[0],
        "listings_each": [f.get("engine_listings", 0) for f in each],
        "jobs": n,
        "requests_per_job": totals["requests"] / n,
        "list_pages": routes.get(LIST, 0),
        "list_pages_per_job": routes.get(LIST, 0) / n,
        "shows": routes.get(SHOW, 0),
        "listings": sum(f.get("engine_listings", 0) for f in each),
        "latency_p50": percentile(lat, 50),
        "latency_p99": percentile(lat, 99),
        "latency_max": max(lat),
        "late": sum(1 for x in lat if x > LATE),
        "cpu": sum(cpus),
        "cpu_busiest": max(cpus),
        "cpu_each": cpus,
        "cpu_ms_per_job": sum(cpus) * 1000 / n,
        "rss_peak_mb": sum(f["rss_peak"] for f in each) / 2**20,
        "rss_growth_kb_per_job": sum(f["rss_peak"] - f["rss_ready"] for f in each) / 1024 / n,
        "wall": max(f["wall"] for f in each),
    }


METRICS = [
    Metric("requests", "requests", "{:,.0f}"),
    Metric("requests_per_job", "requests per job", "{:.3f}"),
    Metric("list_pages", "job/list pages", "{:,.0f}"),
    Metric("listings", "listings (all processes)", "{:,.0f}", better=""),
    Metric("id_spread", "id range spanned per process", "{:.2f}", better=""),
    Metric("latency_p50", "notice p50 s", "{:.2f}"),
    Metric("latency_p99", "notice p99 s", "{:.2f}"),
    Metric("latency_max", "notice max s", "{:.1f}"),
    Metric("cpu", "client CPU s (sum)", "{:.2f}"),
    Metric("cpu_busiest", "busiest process CPU s", "{:.2f}"),
    Metric("rss_peak_mb", "peak RSS MB (sum)", "{:.0f}"),
    Metric("emulator_cpu", "emulator CPU s", "{:.1f}"),
    Metric("wall", "wall s", "{:.0f}"),
]


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _middle(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def _notes(case: CaseResult, watched: int) -> list[str]:
    """What the figures say, and what to do at that scale (computed from the medians)."""
    keys = ("requests", "list_pages", "cpu", "latency_p99", "wall", "rss_peak_mb")
    med = {row: {k: case.median(row, k) for k in keys} for row in case.runs}
    one = med[ONE]
    out: list[str] = []
    for layout in (BY_RANGE, BY_DATABASE):
        m = med[layout]
        each = _middle(case.runs[layout], "cpu")["cpu_each"]
        out.append(
            f"{layout}: {m['requests'] / one['requests']:.2f}× the requests of one process "
            f"({m['requests']:,.0f} vs {one['requests']:,.0f}), "
            f"{m['list_pages'] / max(one['list_pages'], 1):.2f}× its `job/list` pages "
            f"({m['list_pages']:,.0f} vs {one['list_pages']:,.0f}), "
            f"{m['cpu'] / one['cpu']:.2f}× its client CPU ({m['cpu']:.2f} vs {one['cpu']:.2f} s; "
            f"per process{' from the oldest ids up' if layout == BY_RANGE else ''} in the median "
            f"run: {_seconds(each)} s), "
            f"notice p99 {m['latency_p99']:.2f} s vs {one['latency_p99']:.2f} s."
        )
    shows = case.median(ONE, "shows")
    out.append(
        f"Each finished job costs one `job/show` whoever watches it ({shows:,.0f} of one "
        f"process's {one['requests']:,.0f} requests), so sharding cannot multiply that part: "
        "the cost does not grow with the processes. What grows is the listings: each "
        "process lists the account's queued and running jobs on its own, newest first, down "
        "to the oldest job it watches, and decodes every busy job on the way."
    )
    rng, db = med[BY_RANGE]["list_pages"], med[BY_DATABASE]["list_pages"]
    out.append(
        f"Interleaved ids (by database, and as well any split by hash or round robin) make "
        f"every process walk down to about the oldest watched job, as one process does: "
        f"{db:,.0f} `job/list` pages against {rng:,.0f} by id range, where the process with "
        "the newest jobs stops after its own. `job/list` filters by status, not by database "
        "(v3-api.md §1.6), so a split by database saves no listing."
    )
    share = one["cpu"] / one["wall"]
    out.append(
        f"What to do at this scale: one process watching all {watched:,} jobs used "
        f"{one['cpu']:.2f} s of CPU over {one['wall']:.0f} s ({share:.0%} of one core) and "
        f"{one['rss_peak_mb']:.0f} MB, so the first step past one machine's other limits is "
        "one watcher process that fans the ends out (each finished job published to a queue "
        "or a pub/sub topic the other processes read): its requests stay those of one "
        f"process, {one['requests'] / watched:.3f} per job. Shard the watching itself only "
        f"when one process cannot keep up: at {one['cpu'] * 1000 / watched:.2f} ms of CPU "
        f"per job, one core follows about {watched / one['cpu']:,.0f} job ends a second in "
        "this mix. "
        + (
            f"Then shard by id range ({rng / db:.2f}× the listing pages of interleaved ids): "
            "contiguous ranges of job ids, i.e. of issue time (each process takes the jobs "
            "issued in its own stretch of ids), not by database or hash."
            if rng < db
            else "Then any split serves: contiguous id ranges saved no listing pages here."
        )
    )
    return out


async def run(ctx: Context) -> list[CaseResult]:
    if ctx.quick:
        watched, busy, low, high = 500, 250, 1.0, 5.0
    else:
        watched, busy, low, high = 10_000, 5_000, 1.0, 60.0
    plan = Plan(watched, low, high)
    layouts = [ONE, BY_RANGE, BY_DATABASE]
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {layout: [] for layout in layouts}
    async with Emulator() as emu:
        for k in range(SHARDS):
            await emu.create_database(f"shard{k}")
        await emu.create_database("bench")
        rate = await seeding_rate(emu, busy)
        log(f"sharding: {busy:,} busy long-running jobs issued at {rate:,.0f} jobs/s")
        for round_ in range(ctx.runs):
            order = layouts[round_ % len(layouts) :] + layouts[: round_ % len(layouts)]
            for layout in order:
                figures = await layout_run(emu, layout, plan, rate)
                runs[layout].append(figures)
                log(
                    f"sharding #{round_ + 1} {layout}: {figures['requests']:,} requests "
                    f"({figures['requests_per_job']:.3f}/job, {figures['list_pages']:,} list "
                    f"pages), p50 {figures['latency_p50']:.2f} s, p99 "
                    f"{figures['latency_p99']:.2f} s, max {figures['latency_max']:.1f} s, "
                    f"CPU {figures['cpu']:.2f} s ({_seconds(figures['cpu_each'])})"
                )
    case = CaseResult(
        name="sharding",
        title=f"3e. Beyond one process: {SHARDS} processes watching {watched:,} jobs",
        about=(
            f"The watch case's jobs ({watched:,} running {low:g}-{high:g} s after a common "
            f"start, 5% errors, {busy:,} busy long-running jobs issued before them), issued into "
            f"{SHARDS} databases in turn. *{ONE}*: one aiotd process runs `as_completed` over "
            f"all of them. *{BY_RANGE}*: {SHARDS} processes, each with its own Client, started "
            f"at once, each watching a contiguous quarter of the job ids (what sharding by time "
            f"of issue gives). *{BY_DATABASE}*: the same, each process watching one database's "
            "jobs, whose ids interleave with the others' (as any split unrelated to issue "
            "order does); *id range spanned per process* checks the split (0.25 for contiguous "
            "quarters, about 1 for interleaved ids). *requests* are what the emulator "
            "received from the whole group; "
            "client CPU and peak RSS are summed over the processes, *wall* is the slowest "
            f"one's. On this machine's two cores the {SHARDS} processes share the CPU with the "
            "emulator (and the machine with other work), so latencies carry that contention."
        ),
        metrics=METRICS,
        runs=runs,
        baseline=ONE,
        chart="sharding.png",
        chart_metrics=["requests_per_job", "list_pages", "latency_p99", "cpu"],
        quick=ctx.quick,
    )
    case.notes = _notes(case, watched)
    case.seconds = time.perf_counter() - started
    bar_chart(case, ctx.out_dir / "sharding.png")
    return [case]
