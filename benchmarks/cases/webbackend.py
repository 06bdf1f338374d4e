"""Case 3d, a web backend: one request handler per job, each awaiting ``td.jobs.wait``.

A web server's handlers (one asyncio task each, one shared ``aiotd.Client``) each wait for
their own job, the jobs arriving one by one (Poisson arrivals over a minute, not one
``wait_all``) and running 1-60 s, among busy long-running jobs of other users. The harness
issues each job through the API at its arrival time and hands its id to the contender's
process at once (one line on stdin), which starts a handler for it; the job's end is known
to the harness as in the watch case (issue midpoint + booting + duration).

Contenders: aiotd ``Jobs.wait`` per handler task (every wait shares the client's poll engine),
td-client-python ``Job.wait()`` (its default 5 s interval) in a thread per waiting handler,
a naive asyncio loop (``job/status`` every 1 s per handler, then ``job/show``), and a floor
told each job's end (one bare ``job/show`` just after it). A second table shows the memory a
waiting handler holds: tasks awaiting ``wait()`` against tasks awaiting a bare future.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

from benchmarks._contender import Contender, Figures, run_async
from benchmarks._harness import Emulator, Issued, log, percentile, run_contender
from benchmarks._report import CaseResult, Metric, Target, bar_chart
from benchmarks.cases import Context
from benchmarks.cases.watch import FINISHED, LATE, LONG_RUNNING, NAIVE_INTERVAL, seeding_rate

#: The emulator's booting time, given explicitly so that a job's end is known exactly.
BOOTING = 0.05
#: td-client-python's ``Job.wait`` default interval (tdclient/job_model.py, 1.7.0).
TDCLIENT_INTERVAL = 5
#: A deadline a web handler would pass (never reached here).
WAIT_TIMEOUT = 3600.0
ISSUE_PATH = "POST /v3/job/issue/{type}/{db}"


# -- contenders ------------------------------------------------------------------------------


def _arrival(line: bytes | str) -> tuple[str, float] | None:
    """``job_id end`` (the end as the harness plans it: only the floor may look) or None at
    the empty line that ends the arrivals."""
    fields = line.split()
    if not fields:
        return None
    job_id, end = fields
    return (job_id.decode() if isinstance(job_id, bytes) else job_id), float(end)


def _arrivals_blocking() -> Iterator[tuple[str, float]]:
    """The arrivals read from stdin by a thread (td-client-python's server)."""
    for line in sys.stdin:
        arrival = _arrival(line)
        if arrival is None:
            return
        yield arrival


async def _serve(handler: Callable[[str, float], Coroutine[Any, Any, None]]) -> None:
    """One task per arriving job, as a server starts one per request; waits for them all.

    The event loop reads the arrivals from stdin itself, as a server reads its sockets. The
    work order was read through ``sys.stdin``'s buffer, which holds nothing more: the first
    arrival comes half a second after the work order (see ``arrive``).
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    tasks: list[asyncio.Task[None]] = []
    try:
        while (arrival := _arrival(await reader.readline())) is not None:
            tasks.append(loop.create_task(handler(*arrival)))
    finally:
        transport.close()
    await asyncio.gather(*tasks)


async def _aiotd(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import aiotd

    seen: dict[str, float] = {}
    async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:

        async def handler(job_id: str, _end: float) -> None:
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
            futures = [pool.submit(handler, job_id) for job_id, _ in _arrivals_blocking()]
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

        async def handler(job_id: str, _end: float) -> None:
            while (await get(f"/v3/job/status/{job_id}"))["status"] not in FINISHED:  # noqa: ASYNC110
                await asyncio.sleep(NAIVE_INTERVAL)
            await get(f"/v3/job/show/{job_id}")
            seen[job_id] = time.time()

        await _serve(handler)
    return {"seen": seen}


async def _floor(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    """What any waiter that hands out full records must spend: one bare ``job/show`` per
    job, sent just after the job's end, which this handler is told (no waiter knows it)."""
    import json

    import aiohttp

    url = setup["url"]
    seen: dict[str, float] = {}
    headers = {"Authorization": f"TD1 {setup['apikey']}"}
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as s:

        async def handler(job_id: str, end: float) -> None:
            while True:
                await asyncio.sleep(max(0.0, end + FLOOR_MARGIN - time.time()))
                async with s.get(f"{url}/v3/job/show/{job_id}") as resp:
                    job = json.loads(await resp.read())
                if job["status"] in FINISHED:
                    break
                end = time.time()  # ended a little later than planned: ask again soon
            seen[job_id] = time.time()

        await _serve(handler)
    return {"seen": seen}


async def _held(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    """The memory that waiting handlers hold: tasks awaiting ``td.jobs.wait`` on jobs that
    run on, or (``bare``) tasks awaiting a future of their own, the handler's floor. Both
    start from a client whose engine already watches one job and lists."""
    import gc

    import aiotd
    from benchmarks._run_one import _rss

    loop = asyncio.get_running_loop()
    first, *ids = work["ids"]
    async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
        warm = loop.create_task(td.jobs.wait(first, timeout=WAIT_TIMEOUT))
        await asyncio.sleep(HOLD)

        async def bare(_job_id: str) -> None:
            await loop.create_future()

        async def wait(job_id: str) -> None:
            await td.jobs.wait(job_id, timeout=WAIT_TIMEOUT)

        gc.collect()
        before = _rss()
        tasks = [loop.create_task((bare if work["bare"] else wait)(i)) for i in ids]
        await asyncio.sleep(HOLD)  # a few listings of every watched job
        gc.collect()
        held = _rss() - before
        for task in [*tasks, warm]:
            task.cancel()
        await asyncio.gather(*tasks, warm, return_exceptions=True)
    return {"tasks": len(tasks), "bytes_per_task": held / len(tasks)}


def _import_aiotd() -> None:
    import aiotd  # noqa: F401


def _import_aiohttp() -> None:
    import aiohttp  # noqa: F401


def _import_tdclient() -> None:
    import tdclient  # noqa: F401


AIOTD = "aiotd wait() per handler"
NAIVE = f"naive asyncio ({NAIVE_INTERVAL:g} s polls)"
FLOOR = "floor: one bare job/show at each end"
#: Seconds after a job's planned end the floor asks for it.
FLOOR_MARGIN = 0.2
HELD = "tasks awaiting td.jobs.wait"
HELD_BARE = "tasks awaiting a bare future"
#: Seconds the held-memory contender lets the engine run before and after it measures.
HOLD = 3.0


def tdclient_name(threads: int) -> str:
    return f"td-client Job.wait ({threads:,} threads)"


#: td-client's contender runs with any thread count (the work order says how many).
CONTENDERS = {
    AIOTD: Contender(_import_aiotd, run_async(_aiotd)),
    "td-client Job.wait": Contender(_import_tdclient, _tdclient),
    NAIVE: Contender(_import_aiohttp, run_async(_naive)),
    FLOOR: Contender(_import_aiohttp, run_async(_floor)),
    HELD: Contender(_import_aiotd, run_async(_held)),
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
        end = (sent + answered) / 2 + BOOTING + plan.durations[index]
        stdin.write(f"{job_id} {end:.3f}\n".encode())
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


#: Jobs ending in the first part of the arrivals (this share of their span) are told apart:
#: the poll engine has seen few finishes then, which spaces its listings.
EARLY_SHARE = 0.25


def figures_of(figures: Figures, issued: list[Issued], ends: list[float], span: float) -> None:
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
    first = min(job.sent for job in issued)
    early = [x for x, end in zip(lat, ends, strict=True) if end - first < span * EARLY_SHARE]
    figures.update(
        jobs=n,
        latency_p50=percentile(lat, 50),
        latency_p99=percentile(lat, 99),
        latency_max=max(lat),
        late=sum(1 for x in lat if x > LATE),
        over_2s=sum(1 for x in lat if x > 2.0),
        early_jobs=len(early),
        early_over_2s=sum(1 for x in early if x > 2.0),
        early_p50=percentile(early, 50),
        later_max=max(
            (x for x, end in zip(lat, ends, strict=True) if end - first >= span * EARLY_SHARE),
            default=float("nan"),
        ),
        requests_per_job=figures["requests"] / n,
        list_pages_per_job=figures["routes"].get("GET /v3/job/list", 0) / n,
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
    figures_of(figures, *arrived[0], plan.span)
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
    Metric("over_2s", "noticed > 2 s late", "{:,.0f}"),
    Metric("cpu_ms_per_job", "client CPU ms/job", "{:.3f}"),
    Metric("rss_growth_kb_per_job", "RSS growth KB/job", "{:.1f}"),
    Metric("rss_peak_mb", "peak RSS MB", "{:.0f}"),
    Metric("wall", "wall s", "{:.0f}"),
    Metric("emulator_cpu", "emulator CPU s", "{:.1f}"),
]


def _gap(value: float, limit: float, unit: str, fmt: str) -> str:
    """The measured value, and by how much it misses ``limit`` if it does."""
    text = fmt.format(value) + unit
    if value <= limit:
        return text
    return f"{text}: {value / limit:.2f}× the target ({fmt.format(value - limit)}{unit} over)"


def _targets(case: CaseResult) -> list[Target]:
    worst = max(float(run["latency_max"]) for run in case.runs[AIOTD])
    p99 = case.median(AIOTD, "latency_p99")
    req = case.median(AIOTD, "requests_per_job")
    cpu = case.median(AIOTD, "cpu_ms_per_job")
    mem = case.median(AIOTD, "rss_growth_kb_per_job")
    return [
        Target(
            f"every end noticed ≤ {LATE:g} s after it happened (every run)",
            _gap(worst, LATE, " s", "{:.1f}"),
            worst <= LATE,
        ),
        Target("notice p99 ≤ 2 s", _gap(p99, 2.0, " s", "{:.2f}"), p99 <= 2.0),
        Target("≤ 1.15 requests per job", _gap(req, 1.15, "", "{:.2f}"), req <= 1.15),
        Target("client CPU ≤ 0.2 ms per watched job", _gap(cpu, 0.2, " ms", "{:.3f}"), cpu <= 0.2),
        Target(
            "memory ≤ 2 KB per watched job (RSS growth)",
            _gap(mem, 2.0, " KB", "{:.1f}"),
            mem <= 2.0,
        ),
    ]


def _notes(case: CaseResult, tdclient: str, busy: int, span: float, held: CaseResult) -> list[str]:
    """What the medians say about each target (computed, not typed in)."""

    def med(row: str, key: str) -> float:
        return case.median(row, key)

    runs = case.runs[AIOTD]
    keys = sorted({k for r in runs for k in r["routes"]})
    routes = {k: statistics.median(r["routes"].get(k, 0) for r in runs) for k in keys}
    listings = med(AIOTD, "engine_listings")
    pages = routes.get("GET /v3/job/list", 0)
    early, early_over = med(AIOTD, "early_jobs"), med(AIOTD, "early_over_2s")
    over = med(AIOTD, "over_2s")
    f_cpu, a_cpu = med(FLOOR, "cpu_ms_per_job"), med(AIOTD, "cpu_ms_per_job")
    f_mem, a_mem = med(FLOOR, "rss_growth_kb_per_job"), med(AIOTD, "rss_growth_kb_per_job")
    return [
        "aiotd's requests (medians of the runs): "
        + ", ".join(f"`{k}` {v:,.0f}" for k, v in routes.items())
        + f"; its engine made {listings:,.0f} listings of {pages / max(listings, 1):.1f} pages "
        "each (the queued walk, then the running walk down to the oldest waiting job, whose "
        f"first page also carries the busy jobs), {med(AIOTD, 'list_pages_per_job'):.2f} "
        "requests per job on top of the one `job/show` each job needs.",
        (
            f"Tail: {over:,.0f} jobs were noticed more than 2 s after their end, "
            f"{early_over:,.0f} of them among the {early:,.0f} that ended in the first "
            f"{span * EARLY_SHARE:g} s of the arrivals (their median notice "
            f"{med(AIOTD, 'early_p50'):.2f} s; the worst of the jobs ending later "
            f"{med(AIOTD, 'later_max'):.2f} s). Few jobs have ended yet at that time, and "
            "the engine spaces its listings by the finishes that pay for them."
            if over
            else "Tail: no job was noticed more than 2 s after its end."
        ),
        f"The floor (told each job's end, one bare `job/show` just after it): "
        f"{f_cpu:.3f} ms of CPU and {f_mem:.1f} KB of RSS growth per job. aiotd spends "
        f"{a_cpu:.3f} ms ({a_cpu / f_cpu:.2f}× the floor) and {a_mem:.1f} KB: "
        f"{a_cpu - f_cpu:.3f} ms per job for finding the ends (listings, decoding, the "
        f"engine, each wait's own machinery) and {a_mem - f_mem:.1f} KB for the waits' state "
        "and the listings in memory. A task awaiting `wait()` holds "
        f"{held.median(HELD, 'bytes_per_task'):,.0f} bytes against "
        f"{held.median(HELD_BARE, 'bytes_per_task'):,.0f} for a task awaiting a bare future "
        "(3d memory, below): a wait of one job carries the machinery of `wait_all` (the "
        "id lists, a listener with its dicts, `asyncio.wait` and `anyio.fail_after`)."
        + (
            " The floor alone, one request per job spread over time like these, costs more "
            "CPU than the 0.2 ms target."
            if f_cpu > 0.2
            else ""
        ),
        f"Per job: {tdclient} {med(tdclient, 'requests_per_job'):.2f} requests (a "
        f"`job/status` every {TDCLIENT_INTERVAL} s, then `job/show`) for "
        f"{med(tdclient, 'cpu_ms_per_job'):.3f} ms of CPU; {NAIVE} "
        f"{med(NAIVE, 'requests_per_job'):.2f} requests for {med(NAIVE, 'cpu_ms_per_job'):.3f} "
        "ms.",
    ]


async def run(ctx: Context) -> list[CaseResult]:
    if ctx.quick:
        count, span, low, high, busy = 100, 3.0, 1.0, 3.0, 250
    else:
        count, span, low, high, busy = 1_000, 60.0, 1.0, 60.0, 5_000
    plan = Arrivals(count, span, low, high)
    threads = count  # one thread per waiting handler, as a threaded server needs
    tdclient = tdclient_name(threads)
    rows = {
        AIOTD: (AIOTD, {}),
        tdclient: ("td-client Job.wait", {"threads": threads}),
        NAIVE: (NAIVE, {}),
        FLOOR: (FLOOR, {}),
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
        held_started = time.perf_counter()
        held = await _held_runs(emu, count, ctx.runs)
        held.quick = ctx.quick
        held.seconds = time.perf_counter() - held_started
    case = CaseResult(
        name="webbackend",
        title=f"3d. A web backend: {count:,} handlers, each awaiting its own job",
        about=(
            f"{count:,} request handlers, one per job, the jobs arriving one by one over "
            f"{span:g} s (Poisson arrivals, seeded) and running {low:g}-{high:g} s (uniform; 5% "
            f"end in error), among {busy:,} busy long-running jobs of the same account; at most "
            f"{plan.peak_waiting():,} handlers wait at once. The harness issues each job at its "
            "arrival time and hands its id to the contender's process at once (a line on its "
            "stdin, read by the event loop as a server reads its sockets); the process starts "
            "a handler for it, as a server does per request. aiotd runs one task per handler "
            "awaiting `td.jobs.wait(job_id)` on one shared Client (every wait joins the "
            "client's one poll engine); td-client-python runs `Job.wait(timeout=..., "
            f"wait_interval={TDCLIENT_INTERVAL})` (its default interval) in a thread per "
            f"handler ({threads:,} threads: a threaded server needs one per waiting request, "
            "a smaller pool would hold handlers back until a thread frees; its urllib3 pool "
            "keeps as many connections); the naive loop polls `job/status` every "
            f"{NAIVE_INTERVAL:g} s per handler, then `job/show`. The *floor* is not a waiter: "
            "told each job's end, it sends one bare `job/show` just after it, what any waiter "
            "that hands out full records must spend at least. *requests per job* counts what "
            "the emulator received from the contender (the harness's issue requests not "
            "counted); *notice* is the time from a job's end to its handler waking with the "
            "finished record; *client CPU* covers the whole run; *RSS growth* is the peak RSS "
            "minus the RSS once imports were done, per job. The machine was shared with other "
            "work during the run, so CPU and wall figures carry its noise."
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
    case.notes = _notes(case, tdclient, busy, span, held)
    case.seconds = time.perf_counter() - started
    bar_chart(case, ctx.out_dir / "webbackend.png")
    return [case, held]


async def _held_runs(emu: Emulator, count: int, runs: int) -> CaseResult:
    """Memory per waiting handler: ``count`` tasks awaiting ``wait()`` on long-running jobs,
    next to as many awaiting bare futures, each in a fresh process (issued after the rounds:
    these jobs run on)."""
    issued = await emu.issue("bench", [LONG_RUNNING] * (count + 1), count + 1)
    ids = [job.job_id for job in issued]
    rows: dict[str, list[dict[str, Any]]] = {HELD: [], HELD_BARE: []}
    for _ in range(runs):
        for row, bare in ((HELD, False), (HELD_BARE, True)):
            figures = await run_contender(emu, "webbackend", HELD, work={"ids": ids, "bare": bare})
            figures["kb_per_task"] = figures["bytes_per_task"] / 1024
            rows[row].append(figures)
    log(
        "webbackend: RSS held per waiting task "
        + ", ".join(f"{row} {r[-1]['bytes_per_task']:,.0f} B" for row, r in rows.items())
    )
    held = CaseResult(
        name="webbackend_memory",
        title=f"3d (memory). What {count:,} waiting handlers hold",
        about=(
            f"{count:,} tasks started at once on a client whose engine already watches one "
            f"job, each awaiting `td.jobs.wait` on its own long-running job, next to {count:,} "
            "tasks awaiting a bare future of their own (what any handler task holds); each in "
            f"a fresh process, the RSS read {HOLD:g} s after the tasks started (the engine "
            "listed every job meanwhile) minus the RSS just before, per task."
        ),
        metrics=[
            Metric("bytes_per_task", "RSS per waiting task, bytes", "{:,.0f}"),
            Metric("cpu", "client CPU s", "{:.2f}"),
        ],
        runs=rows,
        baseline=HELD,
    )
    return held
