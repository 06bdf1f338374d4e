"""Measure the emulator's small-request throughput: ``python tests/emulator/measure_core_rps.py``.

The server runs in its own process (one core) holding 100,000 jobs; a client process sends
``job/status`` and ``job/list`` requests over keep-alive connections and prints requests/s.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import sys
import time
from collections.abc import Callable

from aiotd.testing import Emulator

JOBS = 100_000
APIKEY = "1/" + "0" * 40


def _serve(port_out: multiprocessing.SimpleQueue[object], jobs: int) -> None:
    async def main() -> None:
        async with Emulator(apikey=APIKEY) as emu:
            emu.core.store.create_database("bench")
            now = time.time()
            for i in range(jobs):
                emu.jobs.issue(
                    job_type="presto",
                    database="bench",
                    query="SELECT 1",
                    queued=0 if i % 10 else 3600,
                    running=0 if i % 5 else 3600,
                    rows=0,
                    now=now,
                )
            port_out.put(emu.url)
            await asyncio.Event().wait()

    asyncio.run(main())


async def _client(
    url: str, seconds: float, concurrency: int, path_of: Callable[[random.Random], str]
) -> int:
    """Keep-alive connections sending one request at a time with minimal client-side parsing,
    so that the server, not the client, is what is measured."""
    host, port = url.removeprefix("http://").split(":")
    done = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        rng = random.Random()
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < deadline:
                request = (
                    f"GET {path_of(rng)} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: TD1 {APIKEY}\r\n\r\n"
                )
                writer.write(request.encode())
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise AssertionError(head)
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


def _deep_page(rng: random.Random) -> str:
    start = rng.randint(0, 90_000)
    return f"/v3/job/list?from={start}&to={start + 19}"


def main() -> int:
    queue: multiprocessing.SimpleQueue[object] = multiprocessing.SimpleQueue()
    server = multiprocessing.Process(target=_serve, args=(queue, JOBS), daemon=True)
    server.start()
    url = str(queue.get())
    cases = {
        "job/status": lambda rng: f"/v3/job/status/{rng.randint(1, JOBS)}",
        "job/list?status=running (20/page)": lambda rng: "/v3/job/list?status=running",
        "job/list deep page": _deep_page,
    }
    try:
        for name, path_of in cases.items():
            seconds = 3.0
            count = asyncio.run(_client(url, seconds, 16, path_of))
            print(f"{name:40s} {count / seconds:8.0f} req/s", flush=True)
    finally:
        server.kill()
        server.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
