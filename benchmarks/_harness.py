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
        self, database: str, queries: Sequence[str] | Callable[[int, float], str], count: int
    ) -> list[Issued]:
        """Issue ``count`` presto jobs through the API, ``SEED_CONCURRENCY`` at a time.

        ``queries`` is a list, or a function of (index, send time) giving the query, so a job's
        control comment can depend on when it is sent (its queue time).
        """
        out: list[Issued | None] = [None] * count
        path = f"{self.url}/v3/job/issue/presto/{database}"
        next_index = iter(range(count))

        async def worker() -> None:
            for index in next_index:
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


async def run_contender(
    emu: Emulator,
    case: str,
    name: str,
    *,
    options: dict[str, Any] | None = None,
    work: dict[str, Any] | Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Run one contender in a fresh ``python -m benchmarks._run_one`` process.

    ``work`` (or the coroutine function making it, called once the contender is ready, so it
    may seed jobs with the contender already waiting) is sent as the work order. The figures
    come back with ``requests`` (per route and in total, from the emulator's counters) and
    ``emulator_cpu`` measured around the work.
    """
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = await asyncio.create_subprocess_exec(
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
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        proc.stdin.write((json.dumps({**emu.setup, **(options or {})}) + "\n").encode())
        await proc.stdin.drain()
        ready = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not ready:
            raise RuntimeError(f"{case}/{name}: the contender exited before it was ready")
        order = work if isinstance(work, dict) else await work()
        before, cpu_before = await emu.counters(), emu.cpu()
        proc.stdin.write((json.dumps(order) + "\n").encode())
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), CHILD_TIMEOUT)
        cpu_after, after = emu.cpu(), await emu.counters()
        if not line:
            raise RuntimeError(f"{case}/{name}: the contender failed (see its stderr above)")
        figures: dict[str, Any] = json.loads(line)
        await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    routes = {
        key: n - before["routes"].get(key, 0)
        for key, n in after["routes"].items()
        if n - before["routes"].get(key, 0)
    }
    figures["requests"] = after["total"] - before["total"]
    figures["routes"] = routes
    figures["emulator_cpu"] = cpu_after - cpu_before
    return figures


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` percentile (0..100) of ``values``, linear between ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
