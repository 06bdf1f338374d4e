"""The harness side: the emulator in its own process, seeding over the API, contenders run in
subprocesses, and the request counters and CPU of the emulator around each run."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import psutil

#: Concurrency of seeding requests (issue calls), as a script issuing many jobs would use.
SEED_CONCURRENCY = 32
#: A contender that takes longer than this is stopped and its case fails.
CHILD_TIMEOUT = 900.0
#: Longest protocol line (a watch run reports one time per watched job).
STREAM_LIMIT = 64 << 20


def log(message: str) -> None:
    """Progress on stderr (stdout stays clean for a caller piping the summary)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Issued:
    """One seeded job: its id and when the issue request was sent and answered (epoch s)."""

    job_id: str
    sent: float
    answered: float


class Emulator:
    """``aiotd emulator`` in a subprocess: ``async with Emulator() as emu:``."""

    def __init__(self, *, workflow: bool = False, options: Sequence[str] = ()) -> None:
        self.apikey = "1/" + secrets.token_hex(20)
        self.workflow = workflow
        self.options = list(options)  # more ``aiotd emulator`` arguments
        self.url = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ps: psutil.Process | None = None

    async def __aenter__(self) -> Emulator:
        args = [sys.executable, "-m", "aiotd.testing", "--host", "127.0.0.1", "--port", "0"]
        args += ["--apikey", self.apikey]
        if not self.workflow:
            args.append("--no-workflow")
        args += self.options
        self._proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 60)
        if not line.startswith(b"http"):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.url = line.decode().strip()
        self._ps = psutil.Process(self._proc.pid)
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"TD1 {self.apikey}"},
            connector=aiohttp.TCPConnector(limit=SEED_CONCURRENCY),
            timeout=aiohttp.ClientTimeout(total=600),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 30)
            except asyncio.TimeoutError:
                self._proc.kill()
                await self._proc.wait()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    @property
    def setup(self) -> dict[str, Any]:
        """What every contender is given to reach the emulator."""
        return {"url": self.url, "apikey": self.apikey}

    def cpu(self) -> float:
        """CPU seconds the emulator process has used so far."""
        assert self._ps is not None
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    async def counters(self) -> dict[str, Any]:
        """``GET /_emulator/counters``: requests in total and per route."""
        async with self.session.get(f"{self.url}/_emulator/counters") as resp:
            resp.raise_for_status()
            data: dict[str, Any] = await resp.json()
            return data

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; the decoded JSON answer."""
        async with self.session.request(method, f"{self.url}{path}", **kwargs) as resp:
            body = await resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path}: {resp.status} {body[:200]!r}")
            return json.loads(body) if body else None

    async def create_database(self, name: str) -> None:
        await self.request("POST", f"/v3/database/create/{name}")

    async def issue(
        self,
        database: str | Callable[[int], str],
        queries: Sequence[str] | Callable[[int, float], str],
        count: int,
    ) -> list[Issued]:
        """Issue ``count`` presto jobs through the API, ``SEED_CONCURRENCY`` at a time.

        ``queries`` is a list, or a function of (index, send time) giving the query, so a job's
        control comment can depend on when it is sent (its queue time); ``database`` is a
        name, or a function of the index giving each job's database.
        """
        out: list[Issued | None] = [None] * count
        next_index = iter(range(count))

        async def worker() -> None:
            for index in next_index:
                db = database(index) if callable(database) else database
                path = f"{self.url}/v3/job/issue/presto/{db}"
                sent = time.time()
                query = queries(index, sent) if callable(queries) else queries[index]
                async with self.session.post(path, data={"query": query}) as resp:
                    body = await resp.read()
                    answered = time.time()
                    if resp.status != 200:
                        raise RuntimeError(f"job issue: {resp.status} {body[:200]!r}")
                out[index] = Issued(str(json.loads(body)["job_id"]), sent, answered)

        await asyncio.gather(*(worker() for _ in range(SEED_CONCURRENCY)))
        return [item for item in out if item is not None]

    async def wait_finished(self, job_ids: Sequence[str], *, timeout: float = 600) -> None:
        """Poll until every job has finished (seeding helper, not measured)."""
        deadline = time.monotonic() + timeout
        pending = list(job_ids)
        while pending:
            still = []
            for job_id in pending:
                body = await self.request("GET", f"/v3/job/status/{job_id}")
                if body["status"] not in ("success", "error", "killed"):
                    still.append(job_id)
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(pending)} seeded jobs did not finish")
                await asyncio.sleep(0.2)


#: Work orders for the processes of a group, or the coroutine function making them.
Orders = Sequence[dict[str, Any]] | Callable[[], Awaitable[Sequence[dict[str, Any]]]]
#: Writes more lines to the contenders' stdin while they work (work arriving over time).
Feed = Callable[[Sequence[asyncio.StreamWriter]], Awaitable[None]]


async def run_contender(
    emu: Emulator,
    case: str,
    name: str,
    *,
    options: dict[str, Any] | None = None,
    work: dict[str, Any] | Callable[[], Awaitable[dict[str, Any]]],
    feed: Feed | None = None,
) -> dict[str, Any]:
    """Run one contender in a fresh ``python -m benchmarks._run_one`` process.

    ``work`` (or the coroutine function making it, called once the contender is ready, so it
    may seed jobs with the contender already waiting) is sent as the work order; ``feed``, if
    given, then writes more lines to the contender's stdin while it works. The figures come
    back with ``requests`` (per route and in total, from the emulator's counters) and
    ``emulator_cpu`` measured around the work.
    """
    orders: Orders
    if isinstance(work, dict):
        orders = [work]
    else:
        make = work

        async def one() -> Sequence[dict[str, Any]]:
            return [await make()]

        orders = one
    (figures,), totals = await run_contenders(
        emu, case, name, 1, options=options, work=orders, feed=feed
    )
    figures.update(totals)
    return figures


async def run_contenders(
    emu: Emulator,
    case: str,
    name: str,
    count: int,
    *,
    options: dict[str, Any] | None = None,
    work: Orders,
    feed: Feed | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run ``count`` processes of one contender side by side, their work sent at once.

    ``work`` holds one work order per process (or is the coroutine function making them,
    called once every process is ready). Returns each process's figures, and the group's
    ``requests``, ``routes`` and ``emulator_cpu`` measured around the work of all of them.
    """
    env = dict(os.environ, PYTHONHASHSEED="0")
    procs: list[asyncio.subprocess.Process] = []
    tasks: list[asyncio.Future[Any]] = []
    label = f"{case}/{name}"
    try:
        for _ in range(count):
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "benchmarks._run_one",
                    case,
                    name,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=env,
                    limit=STREAM_LIMIT,
                )
            )
        stdins = [proc.stdin for proc in procs if proc.stdin is not None]
        stdouts = [proc.stdout for proc in procs if proc.stdout is not None]
        setup = (json.dumps({**emu.setup, **(options or {})}) + "\n").encode()
        await _send_each(stdins, [setup] * count)
        readies = await asyncio.wait_for(asyncio.gather(*(o.readline() for o in stdouts)), 120)
        if not all(readies):
            raise RuntimeError(f"{label}: the contender exited before it was ready")
        orders = list(work if not callable(work) else await work())
        if len(orders) != count:
            raise ValueError(f"{label}: {len(orders)} work orders for {count} processes")
        before, cpu_before = await emu.counters(), emu.cpu()
        await _send_each(stdins, [(json.dumps(order) + "\n").encode() for order in orders])
        reading = asyncio.ensure_future(asyncio.gather(*(o.readline() for o in stdouts)))
        tasks.append(reading)
        if feed is not None:
            tasks.append(asyncio.ensure_future(feed(stdins)))
        deadline = time.monotonic() + CHILD_TIMEOUT
        while not reading.done():
            left = deadline - time.monotonic()
            done, _ = await asyncio.wait(
                [t for t in tasks if not t.done()],
                timeout=max(0.0, left),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                raise TimeoutError(f"{label}: no figures after {CHILD_TIMEOUT:.0f} s")
            for task in done:
                task.result()  # a feed's error ends the run here, not at the timeout
        lines: list[bytes] = reading.result()
        cpu_after, after = emu.cpu(), await emu.counters()
        if not all(lines):
            raise RuntimeError(f"{label}: the contender failed (see its stderr above)")
        figures: list[dict[str, Any]] = [json.loads(line) for line in lines]
        await asyncio.wait_for(asyncio.gather(*(proc.wait() for proc in procs)), 60)
    finally:
        for task in tasks:
            task.cancel()
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    routes = {
        key: n - before["routes"].get(key, 0)
        for key, n in after["routes"].items()
        if n - before["routes"].get(key, 0)
    }
    totals = {
        "requests": after["total"] - before["total"],
        "routes": routes,
        "emulator_cpu": cpu_after - cpu_before,
    }
    return figures, totals


async def _send_each(stdins: Sequence[asyncio.StreamWriter], lines: Sequence[bytes]) -> None:
    """One line to each process, written to all before any is waited on."""
    for stdin, line in zip(stdins, lines, strict=True):
        stdin.write(line)
    await asyncio.gather(*(stdin.drain() for stdin in stdins))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` percentile (0..100) of ``values``, linear between ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
