"""Case 5, the scale curve: aiotd watching 100 to 50,000 jobs; cost per watched job.

The jobs are made and timed as in the watch case (queued until a common start, then running
1-10 s), with no other jobs in the account, so the curve shows how aiotd's cost grows with the
work alone: requests, CPU and RSS growth per watched job, and detection latency.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import Emulator, log
from benchmarks._report import CaseResult, Metric
from benchmarks.cases import Context
from benchmarks.cases.watch import CONTENDERS as WATCH_CONTENDERS
from benchmarks.cases.watch import Plan, seeding_rate, watch_run

FINISHED_AT_ONCE = "-- emulator: queued=0 duration=0 rows=0\nSELECT 1"

CONTENDERS = {"aiotd as_completed": WATCH_CONTENDERS["aiotd as_completed"]}

METRICS = [
    Metric("requests_per_job", "requests per job", "{:.2f}"),
    Metric("cpu_ms_per_job", "client CPU ms per job", "{:.2f}"),
    Metric("rss_growth_kb_per_job", "RSS growth KB per job", "{:.2f}"),
    Metric("latency_p50", "detection p50 s", "{:.2f}"),
    Metric("latency_p95", "detection p95 s", "{:.2f}"),
    Metric("cpu", "client CPU s", "{:.2f}"),
    Metric("rss_peak_mb", "peak RSS MB", "{:.0f}"),
    Metric("wall", "wall s", "{:.0f}"),
]


def _chart(case: CaseResult, sizes: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["requests_per_job", "cpu_ms_per_job", "rss_growth_kb_per_job", "latency_p50"]
    metrics = [m for m in case.metrics if m.key in keys]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics) + 1, 3.4))
    for ax, metric in zip(axes, metrics, strict=True):
        sums = [case.summary(f"{n:,} jobs", metric.key) for n in sizes]
        med = [s.median for s in sums]
        err = [
            [0.0 if math.isnan(s.median) else s.median - s.low for s in sums],
            [0.0 if math.isnan(s.median) else s.high - s.median for s in sums],
        ]
        ax.errorbar(sizes, med, yerr=err, marker="o", color="#2b6cb0", capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel("watched jobs", fontsize=8)
        ax.set_title(metric.label, fontsize=9)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=8)
    fig.suptitle(case.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def run(ctx: Context) -> list[CaseResult]:
    sizes = [100, 1_000] if ctx.quick else [100, 1_000, 10_000, 50_000]
    low, high = (1.0, 5.0) if ctx.quick else (1.0, 10.0)
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {f"{n:,} jobs": [] for n in sizes}
    async with Emulator() as emu:
        await emu.create_database("bench")
        rate = await seeding_rate(emu, 2_000, FINISHED_AT_ONCE)
        for round_ in range(ctx.runs):
            for n in sizes:
                plan = Plan(n, low, high)
                figures = await watch_run(emu, "watch", "aiotd as_completed", plan, rate)
                runs[f"{n:,} jobs"].append(figures)
                log(
                    f"scale #{round_ + 1} {n:,} jobs: {figures['requests_per_job']:.2f} req/job, "
                    f"{figures['cpu_ms_per_job']:.2f} ms CPU/job, "
                    f"{figures['rss_growth_kb_per_job']:.2f} KB/job, "
                    f"p50 {figures['latency_p50']:.2f} s, {figures['wall']:.0f} s"
                )
    case = CaseResult(
        name="scale",
        title="5. Scale curve: aiotd watching 100 to 50,000 jobs"
        if not ctx.quick
        else f"5. Scale curve: aiotd watching {sizes[0]:,} to {sizes[-1]:,} jobs",
        about=(
            f"aiotd `as_completed` over N jobs running {low:g}-{high:g} s (5% errors), nothing "
            "else in the account. Per watched job: requests the emulator received, the client "
            "process's CPU, and its RSS growth (peak minus the RSS after imports)."
        ),
        metrics=METRICS,
        runs=runs,
        baseline=None,
        chart="scale.png",
        quick=ctx.quick,
    )
    first, last = f"{sizes[0]:,} jobs", f"{sizes[-1]:,} jobs"

    def span(key: str, fmt: str) -> str:
        return f"{fmt.format(case.median(first, key))} → {fmt.format(case.median(last, key))}"

    case.notes.append(
        f"From {sizes[0]:,} to {sizes[-1]:,} watched jobs: requests per job "
        f"{span('requests_per_job', '{:.2f}')}, client CPU per job "
        f"{span('cpu_ms_per_job', '{:.2f}')} ms, RSS growth per job "
        f"{span('rss_growth_kb_per_job', '{:.1f}')} KB, detection p50 "
        f"{span('latency_p50', '{:.2f}')} s (the emulator serves every final `job/show` from "
        "one core, so the largest sizes queue there)."
    )
    case.seconds = time.perf_counter() - started
    _chart(case, sizes, ctx.out_dir / "scale.png")
    return [case]
