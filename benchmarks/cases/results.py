"""Case 4, job results: streaming the rows of a large result, and downloading it to a file.

One job with N generated rows (``-- emulator: rows=N``: id, name, value, time) is read by every
contender. Rows: aiotd ``td.jobs.row_batches()`` (a list of rows per network chunk) and
``td.jobs.rows()`` (one row at a time) from msgpack.gz, both forms again from plain msgpack,
td-client-python ``job_result_each`` (it asks for plain msgpack), and two floors on the same
msgpack.gz bytes: a bare aiohttp loop with zlib + ``msgpack.Unpacker``, and the same loop
handing every row out of an async generator (what a per-row async API cannot go below).
Download: aiotd ``td.jobs.download()`` (msgpack.gz), td-client-python ``download_job_result``
(msgpack.gz, ranged parts in 4 threads, then joined) and a bare aiohttp copy to a file. The
emulator converts formats once, before any timing.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

from benchmarks._contender import Contender, Figures, run_async
from benchmarks._harness import Emulator, log, run_contender
from benchmarks._report import CaseResult, Metric, Target, bar_chart
from benchmarks.cases import Context

# -- rows ------------------------------------------------------------------------------------


def _aiotd_row_batches(fmt: str) -> Contender:
    async def run(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
        import aiotd

        rows = 0
        async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
            async for batch in td.jobs.row_batches(work["job_id"], format=fmt):
                rows += len(batch)
        return {"rows": rows, "bytes": work["sizes"][fmt]}

    return Contender(_import_aiotd, run_async(run))


def _aiotd_rows(fmt: str) -> Contender:
    async def run(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
        import aiotd

        rows = 0
        async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
            async for _row in td.jobs.rows(work["job_id"], format=fmt):
                rows += 1
        return {"rows": rows, "bytes": work["sizes"][fmt]}

    return Contender(_import_aiotd, run_async(run))


async def _bare_rows(setup: dict[str, Any], work: dict[str, Any]) -> AsyncIterator[Any]:
    """Bare aiohttp, zlib and ``msgpack.Unpacker``: every row of the msgpack.gz result."""
    import zlib

    import aiohttp
    import msgpack

    url = f"{setup['url']}/v3/job/result/{work['job_id']}?format=msgpack.gz"
    headers = {"Authorization": f"TD1 {setup['apikey']}", "Accept-Encoding": "identity"}
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    unpacker = msgpack.Unpacker(raw=False)
    async with aiohttp.ClientSession(headers=headers) as session, session.get(url) as resp:
        async for chunk in resp.content.iter_chunked(1 << 16):
            data = chunk
            while data:
                unpacker.feed(inflate.decompress(data))
                for row in unpacker:
                    yield row
                if inflate.eof:  # the result may hold several gzip members
                    data = inflate.unused_data
                    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                else:
                    data = b""


async def _aiohttp_rows(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    """The floor: the bare loop written inline, counting rows as they leave the unpacker."""
    import zlib

    import aiohttp
    import msgpack

    rows = 0
    url = f"{setup['url']}/v3/job/result/{work['job_id']}?format=msgpack.gz"
    headers = {"Authorization": f"TD1 {setup['apikey']}", "Accept-Encoding": "identity"}
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    unpacker = msgpack.Unpacker(raw=False)
    async with aiohttp.ClientSession(headers=headers) as session, session.get(url) as resp:
        async for chunk in resp.content.iter_chunked(1 << 16):
            data = chunk
            while data:
                unpacker.feed(inflate.decompress(data))
                for _row in unpacker:
                    rows += 1
                if inflate.eof:  # the result may hold several gzip members
                    data = inflate.unused_data
                    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                else:
                    data = b""
    return {"rows": rows, "bytes": work["sizes"]["msgpack.gz"]}


async def _aiohttp_yielded_rows(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    """The floor of a per-row async API: the bare loop yielding each row out of an async
    generator."""
    rows = 0
    async for _row in _bare_rows(setup, work):
        rows += 1
    return {"rows": rows, "bytes": work["sizes"]["msgpack.gz"]}


def _tdclient_rows(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import tdclient

    rows = 0
    with tdclient.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
        for _row in td.job_result_each(work["job_id"]):
            rows += 1
    return {"rows": rows, "bytes": work["sizes"]["msgpack"]}


# -- download --------------------------------------------------------------------------------


def _scratch() -> str:
    return os.path.join(tempfile.mkdtemp(prefix="aiotd-bench-"), "result.msgpack.gz")


def _done(path: str, rows: int) -> Figures:
    size = os.path.getsize(path)
    os.unlink(path)
    os.rmdir(os.path.dirname(path))
    return {"rows": rows, "bytes": size}


async def _aiotd_download(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import aiotd

    path = _scratch()
    async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
        await td.jobs.download(work["job_id"], path)
    return _done(path, work["rows"])


async def _aiohttp_download(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import aiohttp

    path = _scratch()
    url = f"{setup['url']}/v3/job/result/{work['job_id']}?format=msgpack.gz"
    headers = {"Authorization": f"TD1 {setup['apikey']}", "Accept-Encoding": "identity"}
    async with aiohttp.ClientSession(headers=headers) as session, session.get(url) as resp:
        with open(path, "wb") as out:  # noqa: ASYNC230 - the floor: a plain blocking write
            async for chunk in resp.content.iter_chunked(1 << 20):
                out.write(chunk)
    return _done(path, work["rows"])


def _tdclient_download(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import tdclient

    path = _scratch()
    with tdclient.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
        td.download_job_result(work["job_id"], path, num_threads=4)
    return _done(path, work["rows"])


def _import_aiotd() -> None:
    import aiotd  # noqa: F401


def _import_aiohttp() -> None:
    import aiohttp  # noqa: F401
    import msgpack  # noqa: F401


def _import_tdclient() -> None:
    import tdclient  # noqa: F401


BATCHES, ROWS_ = "aiotd row_batches()", "aiotd rows()"
BATCHES_PLAIN, ROWS_PLAIN = "aiotd row_batches(msgpack)", "aiotd rows(msgpack)"
TDCLIENT = "td-client job_result_each"
FLOOR, FLOOR_YIELDED = "aiohttp + msgpack (floor)", "aiohttp + msgpack, rows yielded (floor)"
ROWS = {
    BATCHES: _aiotd_row_batches("msgpack.gz"),
    ROWS_: _aiotd_rows("msgpack.gz"),
    BATCHES_PLAIN: _aiotd_row_batches("msgpack"),
    ROWS_PLAIN: _aiotd_rows("msgpack"),
    TDCLIENT: Contender(_import_tdclient, _tdclient_rows),
    FLOOR: Contender(_import_aiohttp, run_async(_aiohttp_rows)),
    FLOOR_YIELDED: Contender(_import_aiohttp, run_async(_aiohttp_yielded_rows)),
}
DOWNLOADS = {
    "aiotd download()": Contender(_import_aiotd, run_async(_aiotd_download)),
    "td-client download_job_result": Contender(_import_tdclient, _tdclient_download),
    "aiohttp to a file (floor)": Contender(_import_aiohttp, run_async(_aiohttp_download)),
}
CONTENDERS = {**ROWS, **DOWNLOADS}

ROW_METRICS = [
    Metric("rows_per_s", "rows/s", "{:,.0f}", "higher"),
    Metric("mb_per_s", "MB/s transferred", "{:,.1f}", "higher"),
    Metric("cpu", "client CPU s", "{:.2f}"),
    Metric("rss_peak_mb", "peak RSS MB", "{:.0f}"),
    Metric("rss_growth_mb", "RSS growth MB", "{:.1f}"),
    Metric("wall", "wall s", "{:.2f}"),
]
#: RSS growth (peak minus after imports) that still counts as flat memory: a few chunks and
#: their rows, against the hundreds of MB the rows decode to.
FLAT_MB = 16
DOWNLOAD_METRICS = [
    Metric("mb_per_s", "MB/s", "{:,.1f}", "higher"),
    Metric("cpu", "client CPU s", "{:.2f}"),
    Metric("rss_peak_mb", "peak RSS MB", "{:.0f}"),
    Metric("wall", "wall s", "{:.2f}"),
]


#: Why a rows target can be missed, from cachegrind profiles of the contenders (200,000
#: rows, instructions per row against the bare loop's ~2,600).
_WHY = {
    BATCHES: (
        "the bare loop drops each row as it leaves the unpacker, so the same few cache "
        "lines and free lists serve every row; a list keeps ~256 rows alive (~100 "
        "instructions more per row in the allocator), and checking that every row is an "
        "array takes one C call per row (`map(type, batch)`, ~110 instructions). Lists of "
        "a whole network chunk were 3× slower still: the garbage collector walked and "
        "promoted every row"
    ),
    ROWS_: (
        "`rows()` yields from `row_batches()`, so it pays the lists and the array check on "
        "top of the async-generator step per row that its floor pays too"
    ),
    BATCHES_PLAIN: (
        "td-client-python hands out each row as its unpacker makes it, from a synchronous "
        "generator; the list form pays for holding rows and checking them (see above)"
    ),
}


def _row_targets(case: CaseResult) -> list[Target]:
    """The targets of the rows table, each a ratio of medians of this run."""

    def ratio(name: str, other: str) -> tuple[float, str]:
        a, b = case.median(name, "rows_per_s"), case.median(other, "rows_per_s")
        return a / b, f"{a / b:.3f}× ({a:,.0f} vs {b:,.0f} rows/s)"

    batches, batches_text = ratio(BATCHES, FLOOR)
    rows, rows_text = ratio(ROWS_, FLOOR_YIELDED)
    plain, plain_text = ratio(BATCHES_PLAIN, TDCLIENT)
    targets = [
        Target("`row_batches()` ≥ 0.95 × the bare loop's rows/s", batches_text, batches >= 0.95),
        Target(
            "`rows()` ≥ 0.9 × the bare loop yielding every row's rows/s", rows_text, rows >= 0.9
        ),
        Target(
            '`row_batches(format="msgpack")` > td-client-python `job_result_each` rows/s',
            plain_text,
            plain > 1,
        ),
    ]
    for name in (BATCHES, ROWS_, BATCHES_PLAIN, ROWS_PLAIN):
        growth = case.median(name, "rss_growth_mb")
        targets.append(
            Target(
                f"{name}: memory flat (RSS growth ≤ {FLAT_MB} MB)",
                f"{growth:.1f} MB",
                growth <= FLAT_MB,
            )
        )
    return targets


def _row_notes(case: CaseResult, n: int) -> list[str]:
    """What the rows table says in CPU, and the gap and cause of each speed target missed."""
    cpu = {name: case.median(name, "cpu") for name in ROWS}
    notes = [
        f"Client CPU for {n:,} rows: `row_batches()` {cpu[BATCHES]:.2f} s against "
        f"{cpu[FLOOR]:.2f} s for the bare loop ({cpu[BATCHES] / cpu[FLOOR]:.2f}×); "
        f"`rows()` {cpu[ROWS_]:.2f} s against {cpu[FLOOR_YIELDED]:.2f} s for the bare loop "
        f"yielding every row ({cpu[ROWS_] / cpu[FLOOR_YIELDED]:.2f}×); plain msgpack "
        f"`row_batches` {cpu[BATCHES_PLAIN]:.2f} s against td-client-python's "
        f"{cpu[TDCLIENT]:.2f} s ({cpu[BATCHES_PLAIN] / cpu[TDCLIENT]:.2f}×)."
    ]
    goals = {BATCHES: (FLOOR, 0.95), ROWS_: (FLOOR_YIELDED, 0.9), BATCHES_PLAIN: (TDCLIENT, 1.0)}
    for (name, (other, goal)), target in zip(goals.items(), case.targets, strict=False):
        if not target.met:
            got = case.median(name, "rows_per_s") / case.median(other, "rows_per_s")
            notes.append(
                f"{name} misses {goal}× {other} by {(goal - got) / goal:.1%} ({got:.3f}×): "
                f"{_WHY[name]}."
            )
    return notes


async def _size(emu: Emulator, job_id: str, fmt: str) -> int:
    """Make the emulator convert the result to ``fmt`` (cached) and return its size."""
    url = f"{emu.url}/v3/job/result/{job_id}?format={fmt}"
    headers = {"Range": "bytes=0-0", "Accept-Encoding": "identity"}
    async with emu.session.get(url, headers=headers) as resp:
        await resp.read()
        return int(resp.headers["Content-Range"].rsplit("/", 1)[1])


async def run(ctx: Context) -> list[CaseResult]:
    n = 200_000 if ctx.quick else 5_000_000
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    async with Emulator() as emu:
        await emu.create_database("bench")
        (job,) = await emu.issue("bench", [f"-- emulator: queued=0 duration=0 rows={n}\nx"], 1)
        await emu.wait_finished([job.job_id], timeout=600)
        sizes = {fmt: await _size(emu, job.job_id, fmt) for fmt in ("msgpack.gz", "msgpack")}
        log(f"results: {n:,} rows, " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
        work = {"job_id": job.job_id, "rows": n, "sizes": sizes}
        for round_ in range(ctx.runs):
            for name in CONTENDERS:
                figures = await run_contender(emu, "results", name, work=work)
                if figures["rows"] != n:
                    raise RuntimeError(f"results/{name}: {figures['rows']} rows, not {n}")
                figures["rows_per_s"] = n / figures["wall"]
                figures["mb_per_s"] = figures["bytes"] / 1e6 / figures["wall"]
                figures["rss_peak_mb"] = figures["rss_peak"] / 2**20
                figures["rss_growth_mb"] = (figures["rss_peak"] - figures["rss_ready"]) / 2**20
                runs[name].append(figures)
                log(
                    f"results #{round_ + 1} {name}: {figures['rows_per_s']:,.0f} rows/s, "
                    f"{figures['mb_per_s']:.1f} MB/s, RSS {figures['rss_peak_mb']:.0f} MB"
                )
    mb = {k: v / 1e6 for k, v in sizes.items()}
    rows_case = CaseResult(
        name="results-rows",
        title=f"4a. Result rows: {n:,} rows streamed",
        about=(
            f"Every row of one {n:,}-row result (4 columns; {mb['msgpack.gz']:.1f} MB as "
            f"msgpack.gz, {mb['msgpack']:.1f} MB as msgpack), counted as it is decoded. "
            "*MB/s* is the bytes the contender transferred (td-client-python and the "
            "`(msgpack)` forms ask for plain msgpack, the others for msgpack.gz) over the wall "
            "time; *RSS growth* (peak minus the RSS after imports) shows whether memory stays "
            "bounded whatever the result size. The floors read msgpack.gz: the bare loop "
            "counts each row as it leaves the unpacker, the *rows yielded* one hands each out "
            "of an async generator first, as any per-row `async for` must."
        ),
        metrics=ROW_METRICS,
        runs={k: runs[k] for k in ROWS},
        baseline=BATCHES,
        chart="results_rows.png",
        chart_metrics=["rows_per_s", "cpu", "rss_growth_mb"],
        quick=ctx.quick,
    )
    download_case = CaseResult(
        name="results-download",
        title=f"4b. Result download: {mb['msgpack.gz']:.1f} MB msgpack.gz to a file",
        about=(
            f"The same result saved as msgpack.gz ({mb['msgpack.gz']:.1f} MB) to a local "
            "file. aiotd checks the size against `result_size` and renames the file when "
            "complete; td-client-python fetches ranged parts in threads and joins them."
        ),
        metrics=DOWNLOAD_METRICS,
        runs={k: runs[k] for k in DOWNLOADS},
        baseline="aiotd download()",
        chart="results_download.png",
        quick=ctx.quick,
    )
    rows_case.targets = _row_targets(rows_case)
    rows_case.notes.extend(_row_notes(rows_case, n))
    seconds = time.perf_counter() - started
    for case in (rows_case, download_case):
        case.seconds = seconds
        assert case.chart is not None
        bar_chart(case, ctx.out_dir / case.chart)
    return [rows_case, download_case]
