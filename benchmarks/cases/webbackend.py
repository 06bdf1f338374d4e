"""Case 3d, a web backend: one request handler per job, each awaiting ``td.jobs.wait``.

A web server's handlers (one asyncio task each, one shared ``aiotd.Client``) each wait for
their own job, the jobs arriving one by one (Poisson arrivals over a minute, not one
``wait_all``) and running 1-60 s, among busy long-running jobs of other users. The harness
issues each job through the API at its arrival time and hands its id to the contender's
process at once (one line on stdin), which starts a handler for it; the job's end is known
to the harness as in the watch case (issue midpoint + booting + duration).

Contenders: aiotd ``Jobs.wait`` per handler task (every wait shares the client's poll engine),
td-client-python ``Job.wait()`` (its default 5 s interval) in a thread per waiting handler,
and a naive asyncio loop (``job/status`` every 1 s per handler, then ``job/show``).
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

from benchmarks._contender import Contender, Figures, run_async
from benchmarks._harness import Emulator, Issued, log, percentile, run_contender
from benchmarks._report import CaseResult, Metric, Target, bar_chart
from benchmarks.cases import Context
from benchmarks.cases.watch import FINISHED, LATE, NAIVE_INTERVAL, seeding_rate

#: The emulator's booting time, given explicitly so that a job's end is known exactly.
BOOTING = 0.05
#: td-client-python's ``Job.wait`` default interval (tdclient/job_model.py, 1.7.0).
TDCLIENT_INTERVAL = 5
#: A deadline a web handler would pass (never reached here).
WAIT_TIMEOUT = 3600.0
ISSUE_PATH = "POST /v3/job/issue/{type}/{db}"


# -- contenders ------------------------------------------------------------------------------


def _job_ids() -> Iterator[str]:
    """Job ids the harness hands over, one line each, until an empty line."""
    for line in sys.stdin:
        job_id = line.strip()
        if not job_id:
            return
        yield job_id


async def _serve(handler: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    """One task per arriving job id, as a server starts one per request; waits for all.

    A thread reads the ids (the work order was read from the same buffered stdin) and hands
    each to the event loop.
    """
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    ended = asyncio.Event()

    def start(job_id: str) -> None:
        tasks.append(loop.create_task(handler(job_id)))

    def read() -> None:
        try:
            for job_id in _job_ids():
                loop.call_soon_threadsafe(start, job_id)
        finally:
            loop.call_soon_threadsafe(ended.set)

    threading.Thread(target=read, name="arrivals", daemon=True).start()
    await ended.wait()
    await asyncio.gather(*tasks)


async def _aiotd(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import aiotd

    seen: dict[str, float] = {}
    async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:

        async def handler(job_id: str) -> None:
            await td.jobs.wait(job_id, timeout=WAIT_TIMEOUT)
            seen[job_id] = time.time()

        await _serve(handler)
        engine = td.jobs.engine
        return {"seen": seen, "engine_polls": engine.polls, "engine_listings": engine.listings}


def _tdclient(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    from concurrent.futures import ThreadPoolExecutor

    import tdclient
    from tdclient.models import Job

    threads = work["threads"]
    seen: dict[str, float] = {}
    with tdclient.Client(apikey=setup["apikey"], endpoint=setup["url"], maxsize=threads) as td:

        def handler(job_id: str) -> None:
            job = Job(td, job_id, "presto", None)
            job.wait(timeout=WAIT_TIMEOUT, wait_interval=TDCLIENT_INTERVAL)
            seen[job_id] = time.time()

        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(handler, job_id) for job_id in _job_ids()]
        for future in futures:
            future.result()
    return {"seen": seen}


async def _naive(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import json

    import aiohttp

    url = setup["url"]
    seen: dict[str, float] = {}
    headers = {"Authorization": f"TD1 {setup['apikey']}"}
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as s:

        async def get(path: str) -> Any:
            async with s.get(f"{url}{path}") as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{path}: {resp.status}")
                return json.loads(body)

        async def handler(job_id: str) -> None:
            while (await get(f"/v3/job/status/{job_id}"))["status"] not in FINISHED:  # noqa: ASYNC110
                await asyncio.sleep(NAIVE_INTERVAL)
            await get(f"/v3/job/show/{job_id}")
            seen[job_id] = time.time()

        await _serve(handler)
    return {"seen": seen}


def _import_aiotd() -> None:
    import aiotd  # noqa: F401


def _import_aiohttp() -> None:
    import aiohttp  # noqa: F401


def _import_tdclient() -> None:
    import tdclient  # noqa: F401


AIOTD = "aiotd wait() per handler"
NAIVE = f"naive asyncio ({NAIVE_INTERVAL:g} s polls)"


def tdclient_name(threads: int) -> str:
    return f"td-client Job.wait ({threads:,} threads)"


#: td-client's contender runs with any thread count (the work order says how many).
CONTENDERS = {
    AIOTD: Contender(_import_aiotd, run_async(_aiotd)),
    "td-client Job.wait": Contender(_import_tdclient, _tdclient),
    NAIVE: Contender(_import_aiohttp, run_async(_naive)),
}


# -- the harness side -------------------------------------------------------------------------


class Arrivals:
    """The jobs of one run: arrival offsets (Poisson: sorted uniform times over ``span``),
    durations and outcomes, the same for every contender (one seeded generator)."""

    def __init__(self, count: int, span: float, low: float, high: float, *, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.count = count
        self.span = span
        self.offsets = sorted(round(rng.uniform(0, span), 3) for _ in range(count))
        self.durations = [round(rng.uniform(low, high), 3) for _ in range(count)]
        self.errors = [rng.random() < 0.05 for _ in range(count)]

    def query(self, index: int) -> str:
        outcome = " status=error" if self.errors[index] else ""
        return (
            f"-- emulator: queued=0 booting={BOOTING} duration={self.durations[index]} "
            f"rows=0{outcome}\nSELECT 1"
        )

    def peak_waiting(self) -> int:
        """Most handlers waiting at once (from the planned arrivals and ends)."""
        events = sorted(
            [(t, 1) for t in self.offsets]
            + [(t + BOOTING + d, -1) for t, d in zip(self.offsets, self.durations, strict=True)]
        )
        waiting = peak = 0
        for _, step in events:
            waiting += step
            peak = max(peak, waiting)
        return peak


async def arrive(
    emu: Emulator, database: str, plan: Arrivals, stdins: Sequence[asyncio.StreamWriter]
) -> tuple[list[Issued], list[float]]:
    """Issue each job at its arrival time and hand its id to the contender; (issued, ends)."""
    (stdin,) = stdins
    path = f"/v3/job/issue/presto/{database}"
    issued: list[Issued | None] = [None] * plan.count
    t0 = time.time() + 0.5

    async def one(index: int) -> None:
        await asyncio.sleep(max(0.0, t0 + plan.offsets[index] - time.time()))
        sent = time.time()
        body = await emu.request("POST", path, data={"query": plan.query(index)})
        answered = time.time()
        job_id = str(body["job_id"])
        issued[index] = Issued(job_id, sent, answered)
        stdin.write(f"{job_id}\n".encode())
        await stdin.drain()

    await asyncio.gather(*(one(i) for i in range(plan.count)))
    stdin.write(b"\n")
    await stdin.drain()
    done = [job for job in issued if job is not None]
    lag = max(job.sent - (t0 + t) for job, t in zip(done, plan.offsets, strict=True))
    if lag > 1.0:
        log(f"webbackend: an issue was sent {lag:.1f} s after its arrival time")
    ends = [
        (job.sent + job.answered) / 2 + BOOTING + d
        for job, d in zip(done, plan.durations, strict=True)
    ]
    return done, ends


def figures_of(figures: Figures, issued: list[Issued], ends: list[float]) -> None:
    """Notice latencies and per-job figures of one run (issue requests not counted)."""
    seen: dict[str, float] = figures.pop("seen")
    missing = len(issued) - len(seen)
    if missing:
        raise RuntimeError(f"{missing} handlers never woke")
    lat = [seen[job.job_id] - end for job, end in zip(issued, ends, strict=True)]
    n = len(issued)
    issues = figures["routes"].pop(ISSUE_PATH, 0)
    if issues != n:
        raise RuntimeError(f"{issues} issue requests counted for {n} jobs")
    figures["requests"] -= issues
    figures.update(
        jobs=n,
        latency_p50=percentile(lat, 50),
        latency_p99=percentile(lat, 99),
        latency_max=max(lat),
        late=sum(1 for x in lat if x > LATE),
        requests_per_job=figures["requests"] / n,
        rss_peak_mb=figures["rss_peak"] / 2**20,
        rss_growth_kb_per_job=(figures["rss_peak"] - figures["rss_ready"]) / 1024 / n,
        cpu_ms_per_job=figures["cpu"] * 1000 / n,
    )


async def backend_run(
    emu: Emulator, name: str, contender: str, plan: Arrivals, work: dict[str, Any]
) -> dict[str, Any]:
    """One contender serving the plan's handlers, with its figures."""
    arrived: list[tuple[list[Issued], list[float]]] = []

    async def feed(stdins: Sequence[asyncio.StreamWriter]) -> None:
        arrived.append(await arrive(emu, "bench", plan, stdins))

    figures = await run_contender(emu, "webbackend", contender, work=work, feed=feed)
    figures_of(figures, *arrived[0])
    log(
        f"webbackend {name}: {figures['requests_per_job']:.2f} req/job, "
        f"p50 {figures['latency_p50']:.2f} s, p99 {figures['latency_p99']:.2f} s, "
        f"max {figures['latency_max']:.1f} s, CPU {figures['cpu_ms_per_job']:.3f} ms/job, "
        f"RSS +{figures['rss_growth_kb_per_job']:.1f} KB/job, {figures['wall']:.0f} s"
    )
    return figures


METRICS = [
    Metric("requests_per_job", "requests per job", "{:.2f}"),
    Metric("latency_p50", "notice p50 s", "{:.2f}"),
    Metric("latency_p99", "notice p99 s", "{:.2f}"),
    Metric("latency_max", "notice max s", "{:.1f}"),
    Metric("late", f"noticed > {LATE:g} s late", "{:,.0f}"),
    Metric("cpu_ms_per_job", "client CPU ms/job", "{:.3f}"),
    Metric("rss_growth_kb_per_job", "RSS growth KB/job", "{:.1f}"),
    Metric("rss_peak_mb", "peak RSS MB", "{:.0f}"),
    Metric("wall", "wall s", "{:.0f}"),
    Metric("emulator_cpu", "emulator CPU s", "{:.1f}"),
]


def _worst(case: CaseResult, contender: str, key: str) -> float:
    return max(float(run[key]) for run in case.runs[contender])


def _targets(case: CaseResult) -> list[Target]:
    worst_max = _worst(case, AIOTD, "latency_max")
    p99 = case.median(AIOTD, "latency_p99")
    req = case.median(AIOTD, "requests_per_job")
    cpu = case.median(AIOTD, "cpu_ms_per_job")
    rss = case.median(AIOTD, "rss_growth_kb_per_job")

    def gap(value: float, limit: float, unit: str, fmt: str = "{:.2f}") -> str:
        text = (fmt + "{}").format(value, unit)
        if value <= limit:
            return text
        return text + f" ({value / limit:.2f}× the target, {fmt.format(value - limit)}{unit} over)"

    return [
        Target(
            f"every end noticed ≤ {LATE:g} s after it happened (worst run)",
            gap(worst_max, LATE, " s", "{:.1f}"),
            worst_max <= LATE,
        ),
        Target("notice p99 ≤ 2 s", gap(p99, 2.0, " s"), p99 <= 2.0),
        Target("≤ 1.15 requests per job", gap(req, 1.15, ""), req <= 1.15),
        Target("client CPU ≤ 0.2 ms per watched job", gap(cpu, 0.2, " ms", "{:.3f}"), cpu <= 0.2),
        Target(
            "memory ≤ 2 KB per watched job (RSS growth)", gap(rss, 2.0, " KB", "{:.1f}"), rss <= 2.0
        ),
    ]


def _middle(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def _notes(case: CaseResult, tdclient: str, busy: int) -> list[str]:
    a = _middle(case.runs[AIOTD], "requests_per_job")
    t = _middle(case.runs[tdclient], "requests_per_job")
    n = _middle(case.runs[NAIVE], "requests_per_job")
    routes = ", ".join(f"`{k}` {v:,}" for k, v in sorted(a["routes"].items()))
    lists = a["routes"].get("GET /v3/job/list", 0)
    listings = a.get("engine_listings", 0)
    out = [
        f"aiotd's requests (median run): {routes}; its engine made {listings:,} listings "
        f"({lists / max(listings, 1):.1f} pages each: the queued walk, then the running walk "
        f"down to the oldest waiting job, through the {busy:,} busy jobs' first page) and "
        f"{a.get('engine_polls', 0):,} per-job requests. Listing pages cost "
        f"{lists / a['jobs']:.2f} requests per job on top of the one `job/show` each job needs.",
        f"Per job: aiotd {a['requests_per_job']:.2f} requests, {a['cpu_ms_per_job']:.3f} ms CPU; "
        f"{tdclient} {t['requests_per_job']:.2f} requests, {t['cpu_ms_per_job']:.3f} ms CPU "
        f"(a `job/status` every {TDCLIENT_INTERVAL} s per job, then `job/show`); "
        f"{NAIVE} {n['requests_per_job']:.2f} requests, {n['cpu_ms_per_job']:.3f} ms CPU.",
    ]
    return out


async def run(ctx: Context) -> list[CaseResult]:
    if ctx.quick:
        count, span, low, high, busy = 100, 5.0, 1.0, 5.0, 250
    else:
        count, span, low, high, busy = 1_000, 60.0, 1.0, 60.0, 5_000
    plan = Arrivals(count, span, low, high)
    threads = count  # one thread per waiting handler, as a threaded server needs
    tdclient = tdclient_name(threads)
    rows = {
        AIOTD: (AIOTD, {}),
        tdclient: ("td-client Job.wait", {"threads": threads}),
        NAIVE: (NAIVE, {}),
    }
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
    async with Emulator() as emu:
        await emu.create_database("bench")
        rate = await seeding_rate(emu, busy)
        log(f"webbackend: {busy:,} busy long-running jobs issued at {rate:,.0f} jobs/s")
        for round_ in range(ctx.runs):
            order = list(rows) if round_ % 2 == 0 else list(reversed(rows))
            for row in order:
                contender, work = rows[row]
                runs[row].append(
                    await backend_run(emu, f"#{round_ + 1} {row}", contender, plan, work)
                )
    case = CaseResult(
        name="webbackend",
        title=f"3d. A web backend: {count:,} handlers, each awaiting its own job",
        about=(
            f"{count:,} request handlers, one per job, the jobs arriving one by one over "
            f"{span:g} s (Poisson arrivals, seeded) and running {low:g}-{high:g} s (uniform; 5% "
            f"end in error), among {busy:,} busy long-running jobs of the same account; at most "
            f"{plan.peak_waiting():,} handlers wait at once. The harness issues each job at its "
            "arrival time and hands its id to the contender's process at once; the process "
            "starts a handler for it, as a server does per request. aiotd runs one task per "
            "handler awaiting `td.jobs.wait(job_id)` on one shared Client (every wait joins "
            f"the client's one poll engine); td-client-python runs `Job.wait(timeout=..., "
            f"wait_interval={TDCLIENT_INTERVAL})` (its default interval) in a thread per handler "
            f"({threads:,} threads, as a threaded server needs one per waiting request; its "
            f"urllib3 pool keeps as many connections); the naive loop polls `job/status` every "
            f"{NAIVE_INTERVAL:g} s per handler, then `job/show`. *requests per job* counts what "
            "the emulator received from the contender (the harness's issue requests not "
            "counted); *notice* is the time from a job's end to its handler waking with the "
            "finished record; *client CPU* covers the whole run (handing over the ids "
            "included, alike for all); *RSS growth* is the peak RSS minus the RSS once imports "
            "were done, per job. The machine is shared with other work, so CPU and wall "
            "figures carry its noise."
        ),
        metrics=METRICS,
        runs=runs,
        baseline=AIOTD,
        chart="webbackend.png",
        chart_metrics=[
            "requests_per_job",
            "latency_p99",
            "cpu_ms_per_job",
            "rss_growth_kb_per_job",
        ],
        quick=ctx.quick,
    )
    case.targets = _targets(case)
    case.notes = _notes(case, tdclient, busy)
    case.seconds = time.perf_counter() - started
    bar_chart(case, ctx.out_dir / "webbackend.png")
    return [case]
