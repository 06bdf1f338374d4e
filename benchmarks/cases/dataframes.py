"""Case 4c, results as DataFrames: one large result to a pyarrow Table and a pandas DataFrame.

The job of the results case (``-- emulator: rows=N``: id bigint, name varchar, value double,
time bigint) read whole by every contender: aiotd ``td.jobs.to_arrow()`` and
``td.jobs.to_pandas()`` (msgpack.gz, and plain msgpack as td-client-python asks for),
``td.jobs.record_batches()`` with each batch dropped (the memory of the stream itself),
td-client-python ``pandas.DataFrame(list(job_result_each(...)))`` with the columns of
``job.result_schema``, pytd ``pandas_td.read_td_job`` (its Hive engine, which goes through
td-client-python's job API), and aiotd ``row_batches()`` counting rows (decoding without
conversion, the floor of any conversion). Each contender also sums the ``id`` column, so
every one is checked to hold the same rows. pytd's Presto engine speaks the Trino protocol to
``api-presto``, which the emulator does not serve.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._contender import Contender, Figures, run_async
from benchmarks._harness import Emulator, log, run_contender
from benchmarks._report import CaseResult, Metric, Target, bar_chart
from benchmarks.cases import Context
from benchmarks.cases.results import _size


def _frame_figures(frame: Any) -> Figures:
    return {
        "rows": len(frame),
        "id_sum": int(frame["id"].sum()),
        "dtypes": [str(t) for t in frame.dtypes],
    }


async def _aiotd_to_arrow(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import pyarrow.compute as pc

    import aiotd

    async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
        table = await td.jobs.to_arrow(work["job_id"])
    return {
        "rows": table.num_rows,
        "id_sum": pc.sum(table.column("id")).as_py(),
        "dtypes": [str(t) for t in table.schema.types],
    }


def _aiotd_to_pandas(fmt: str) -> Contender:
    async def run(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
        import aiotd

        async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
            frame = await td.jobs.to_pandas(work["job_id"], format=fmt)
        return _frame_figures(frame)

    return Contender(_import_aiotd_pandas, run_async(run))


async def _aiotd_record_batches(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import pyarrow.compute as pc

    import aiotd

    rows = id_sum = 0
    async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
        async for batch in td.jobs.record_batches(work["job_id"]):
            rows += batch.num_rows
            id_sum += pc.sum(batch.column(0)).as_py()
    return {"rows": rows, "id_sum": id_sum}


async def _aiotd_row_batches(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import aiotd

    rows = 0
    async with aiotd.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
        async for batch in td.jobs.row_batches(work["job_id"]):
            rows += len(batch)
    return {"rows": rows, "id_sum": None}


def _tdclient_pandas(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import pandas
    import tdclient

    with tdclient.Client(apikey=setup["apikey"], endpoint=setup["url"]) as td:
        columns = [c[0] for c in td.job(work["job_id"]).result_schema]
        frame = pandas.DataFrame(list(td.job_result_each(work["job_id"])), columns=columns)
    return _frame_figures(frame)


def _pytd_read_td_job(setup: dict[str, Any], work: dict[str, Any]) -> Figures:
    import pytd
    import pytd.pandas_td

    client = pytd.Client(
        apikey=setup["apikey"], endpoint=setup["url"], database="bench", default_engine="hive"
    )
    try:
        frame = pytd.pandas_td.read_td_job(int(work["job_id"]), client.default_engine)
    finally:
        client.close()
    return _frame_figures(frame)


def _import_aiotd_arrow() -> None:
    import pyarrow.compute  # noqa: F401

    import aiotd.core._arrow  # noqa: F401


def _import_aiotd_pandas() -> None:
    import pandas  # noqa: F401

    _import_aiotd_arrow()


def _import_aiotd() -> None:
    import aiotd  # noqa: F401


def _import_tdclient_pandas() -> None:
    import pandas  # noqa: F401
    import tdclient  # noqa: F401


def _import_pytd() -> None:
    import pytd.pandas_td  # noqa: F401


ARROW, PANDAS, PANDAS_PLAIN = "aiotd to_arrow()", "aiotd to_pandas()", "aiotd to_pandas(msgpack)"
BATCHES, TDCLIENT = "aiotd record_batches()", "td-client + pandas.DataFrame(list(...))"
PYTD, FLOOR = "pytd read_td_job (hive)", "aiotd row_batches(), no conversion"
CONTENDERS = {
    ARROW: Contender(_import_aiotd_arrow, run_async(_aiotd_to_arrow)),
    PANDAS: _aiotd_to_pandas("msgpack.gz"),
    PANDAS_PLAIN: _aiotd_to_pandas("msgpack"),
    BATCHES: Contender(_import_aiotd_arrow, run_async(_aiotd_record_batches)),
    TDCLIENT: Contender(_import_tdclient_pandas, _tdclient_pandas),
    PYTD: Contender(_import_pytd, _pytd_read_td_job),
    FLOOR: Contender(_import_aiotd, run_async(_aiotd_row_batches)),
}

METRICS = [
    Metric("rows_per_s", "rows/s", "{:,.0f}", "higher"),
    Metric("cpu", "client CPU s", "{:.2f}"),
    Metric("rss_peak_mb", "peak RSS MB", "{:,.0f}"),
    Metric("rss_growth_mb", "RSS growth MB", "{:,.1f}"),
    Metric("wall", "wall s", "{:.2f}"),
]
#: RSS growth that still counts as a bounded stream: a few batches of 65,536 rows and the
#: allocator's pools, against the hundreds of MB the whole result takes.
BOUNDED_MB = 64


def _targets(case: CaseResult) -> list[Target]:
    def ratio(name: str, other: str, key: str) -> float:
        return case.median(name, key) / case.median(other, key)

    speed = ratio(PANDAS, TDCLIENT, "rows_per_s")
    memory = ratio(PANDAS, TDCLIENT, "rss_peak_mb")
    growth = case.median(BATCHES, "rss_growth_mb")
    return [
        Target(
            "`to_pandas()` rows/s > td-client-python + `pandas.DataFrame(list(...))`",
            f"{speed:.2f}× ({case.median(PANDAS, 'rows_per_s'):,.0f} vs "
            f"{case.median(TDCLIENT, 'rows_per_s'):,.0f} rows/s)",
            speed > 1,
        ),
        Target(
            "`to_pandas()` peak RSS < td-client-python + `pandas.DataFrame(list(...))`",
            f"{memory:.2f}× ({case.median(PANDAS, 'rss_peak_mb'):,.0f} vs "
            f"{case.median(TDCLIENT, 'rss_peak_mb'):,.0f} MB)",
            memory < 1,
        ),
        Target(
            f"`record_batches()`: memory bounded (RSS growth ≤ {BOUNDED_MB} MB)",
            f"{growth:.1f} MB",
            growth <= BOUNDED_MB,
        ),
    ]


def _notes(case: CaseResult, n: int, dtypes: dict[str, list[str]]) -> list[str]:
    cpu = {name: case.median(name, "cpu") for name in case.runs}
    notes = [
        f"Client CPU for {n:,} rows: decoding alone (`row_batches()`) {cpu[FLOOR]:.2f} s; "
        f"`to_arrow()` {cpu[ARROW]:.2f} s, so the conversion to Arrow costs "
        f"{cpu[ARROW] - cpu[FLOOR]:.2f} s ({(cpu[ARROW] - cpu[FLOOR]) / n * 1e9:,.0f} ns per "
        f"row); `to_pandas()` {cpu[PANDAS]:.2f} s; td-client-python + pandas "
        f"{cpu[TDCLIENT]:.2f} s; pytd {cpu[PYTD]:.2f} s.",
        "Column types: "
        + "; ".join(f"{name}: {', '.join(types)}" for name, types in dtypes.items())
        + ". aiotd types the columns from `hive_result_schema`; the frames built from lists "
        "of rows infer theirs from the values.",
        "pyarrow imports pandas, when it is installed, on its first conversion of Python "
        "values (`pyarrow.array` checks whether they are pandas objects): `to_arrow()` and "
        "`record_batches()` pay that import once in their figures (CPU, and part of their RSS "
        "growth), the `to_pandas()` forms import pandas before the clock starts, as the "
        "td-client-python and pytd contenders do.",
        "pytd runs here through `pandas_td.read_td_job(job_id, engine)`: its Hive engine "
        "(and `force_tdclient`) goes through td-client-python's job API, which the emulator "
        "serves, and reads the whole result into a list before building the frame. Its "
        "default Presto path sends the query over the Trino protocol to `api-presto` "
        "(`TD_PRESTO_API`), which the emulator does not speak, so that path is not measured.",
    ]
    return notes


async def run(ctx: Context) -> list[CaseResult]:
    n = 200_000 if ctx.quick else 5_000_000
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    dtypes: dict[str, list[str]] = {}
    id_sum = n * (n - 1) // 2
    async with Emulator() as emu:
        await emu.create_database("bench")
        (job,) = await emu.issue("bench", [f"-- emulator: queued=0 duration=0 rows={n}\nx"], 1)
        await emu.wait_finished([job.job_id], timeout=600)
        sizes = {fmt: await _size(emu, job.job_id, fmt) for fmt in ("msgpack.gz", "msgpack")}
        log(f"dataframes: {n:,} rows, {sizes['msgpack.gz'] / 1e6:.1f} MB msgpack.gz")
        work = {"job_id": job.job_id, "rows": n}
        for round_ in range(ctx.runs):
            for name in CONTENDERS:
                figures = await run_contender(emu, "dataframes", name, work=work)
                if figures["rows"] != n or figures["id_sum"] not in (id_sum, None):
                    raise RuntimeError(
                        f"dataframes/{name}: {figures['rows']} rows, id sum "
                        f"{figures['id_sum']}; expected {n} and {id_sum}"
                    )
                if "dtypes" in figures:
                    dtypes.setdefault(name, figures.pop("dtypes"))
                figures["rows_per_s"] = n / figures["wall"]
                figures["rss_peak_mb"] = figures["rss_peak"] / 2**20
                figures["rss_growth_mb"] = (figures["rss_peak"] - figures["rss_ready"]) / 2**20
                runs[name].append(figures)
                log(
                    f"dataframes #{round_ + 1} {name}: {figures['rows_per_s']:,.0f} rows/s, "
                    f"CPU {figures['cpu']:.2f} s, RSS {figures['rss_peak_mb']:,.0f} MB"
                )
    case = CaseResult(
        name="dataframes",
        title=f"4c. Results as DataFrames: {n:,} rows to Arrow and pandas",
        about=(
            f"One {n:,}-row result (4 columns: bigint, varchar, double, bigint; "
            f"{sizes['msgpack.gz'] / 1e6:.1f} MB as msgpack.gz, {sizes['msgpack'] / 1e6:.1f} MB "
            "as msgpack) read whole into a pyarrow Table or a pandas DataFrame. "
            "`record_batches()` drops each batch (what streaming costs in memory); "
            "`row_batches()` only decodes, the floor of any conversion. td-client-python and "
            "pytd read plain msgpack, the aiotd forms msgpack.gz unless marked. *RSS growth* is "
            "the peak minus the RSS after imports: the memory the result took."
        ),
        metrics=METRICS,
        runs=runs,
        baseline=PANDAS,
        chart="dataframes.png",
        chart_metrics=["rows_per_s", "cpu", "rss_peak_mb"],
        quick=ctx.quick,
    )
    case.targets = _targets(case)
    case.notes.extend(_notes(case, n, dtypes))
    case.seconds = time.perf_counter() - started
    bar_chart(case, ctx.out_dir / "dataframes.png")
    return [case]
