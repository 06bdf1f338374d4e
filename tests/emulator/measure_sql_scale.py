"""Measure the emulator's SQL at scale: ``python tests/emulator/measure_sql_scale.py [ROWS]``.

Imports ROWS records (10,000,000 by default) through ``PUT /v3/table/import`` in parts of
500,000, then times two jobs from issue to success: ``SELECT count(*)`` and a ``GROUP BY``
over 1,000 keys with sums and averages. Prints the import time and each query's time.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
import time
from typing import Any

import aiohttp
import msgpack

from aiotd.testing import Emulator

PART = 500_000


def _part(start: int, count: int) -> bytes:
    packer = msgpack.Packer()
    body = b"".join(
        packer.pack(
            {
                "time": 1_400_000_000 + i,
                "k": f"key{i % 1000}",
                "v": i,
                "x": (i % 977) / 7.0,
                "s": "abcdefghij"[i % 10] * 8,
            }
        )
        for i in range(start, start + count)
    )
    return gzip.compress(body, compresslevel=1)


async def _wait(session: aiohttp.ClientSession, url: str, job_id: str) -> dict[str, Any]:
    while True:
        async with session.get(f"{url}/v3/job/status/{job_id}") as resp:
            body: dict[str, Any] = await resp.json()
        if body["status"] in ("success", "error", "killed"):
            async with session.get(f"{url}/v3/job/show/{job_id}") as resp:
                shown: dict[str, Any] = await resp.json()
            return shown
        await asyncio.sleep(0.01)


async def main(rows: int) -> None:
    async with Emulator(queued_time=0, running_time=0, booting_time=0) as emu:
        headers = {"Authorization": f"TD1 {emu.apikey}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            await session.post(f"{emu.url}/v3/database/create/scale")
            await session.post(f"{emu.url}/v3/table/create/scale/events/log")
            parts = [_part(s, min(PART, rows - s)) for s in range(0, rows, PART)]
            started = time.perf_counter()
            for body in parts:
                url = f"{emu.url}/v3/table/import/scale/events/msgpack.gz"
                async with session.put(url, data=body) as resp:
                    assert resp.status == 200, await resp.text()
            imported = time.perf_counter() - started
            print(f"import of {rows:,} rows: {imported:.1f} s ({rows / imported:,.0f} rows/s)")
            queries = {
                "count(*)": "SELECT count(*) FROM events",
                "group by": "SELECT k, count(*) AS n, sum(v) AS total, avg(x) AS mean "
                "FROM events GROUP BY k ORDER BY k",
            }
            for name, query in queries.items():
                started = time.perf_counter()
                async with session.post(
                    f"{emu.url}/v3/job/issue/presto/scale", data={"query": query}
                ) as resp:
                    job_id = (await resp.json())["job_id"]
                shown = await _wait(session, emu.url, job_id)
                took = time.perf_counter() - started
                assert shown["status"] == "success", shown["debug"]
                print(f"{name}: {took:.2f} s ({shown['num_records']} rows)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000))
