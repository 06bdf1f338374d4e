"""Results: per-case tables (median, min-max, ratio to aiotd), targets, charts, RESULTS.md."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: A spread (max - min) wider than this share of the median is flagged as noisy.
WIDE_SPREAD = 0.25

PACKAGES = (
    "aiotd",
    "aiohttp",
    "msgspec",
    "anyio",
    "msgpack",
    "td-client",
    "tdworkflow",
    "urllib3",
    "requests",
    "matplotlib",
    "psutil",
    "pyarrow",
    "pandas",
    "pytd",
)


@dataclass(frozen=True)
class Metric:
    """One figure of a case: ``key`` in each run's dict, shown as ``label`` with ``fmt``."""

    key: str
    label: str
    fmt: str = "{:,.2f}"
    better: str = "lower"  # or "higher"; "" when neither (e.g. counts shown for context)


@dataclass
class Summary:
    median: float
    low: float
    high: float
    runs: int

    @property
    def wide(self) -> bool:
        if self.runs < 2 or not self.median or math.isnan(self.median):
            return False
        return (self.high - self.low) / abs(self.median) > WIDE_SPREAD


def summarize(values: Sequence[float]) -> Summary:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return Summary(float("nan"), float("nan"), float("nan"), 0)
    return Summary(statistics.median(clean), min(clean), max(clean), len(clean))


@dataclass
class Target:
    """A target from the issues, checked against the medians of this run."""

    text: str
    measured: str
    met: bool


@dataclass
class CaseResult:
    """One table of RESULTS.md: contenders (rows) by metrics (columns), every run kept."""

    name: str
    title: str
    about: str
    metrics: list[Metric]
    runs: dict[str, list[dict[str, Any]]]
    baseline: str | None = "aiotd"
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chart: str | None = None
    chart_metrics: list[str] | None = None
    date: str = ""
    quick: bool = False
    seconds: float = 0.0

    def summary(self, contender: str, key: str) -> Summary:
        return summarize([run.get(key, float("nan")) for run in self.runs.get(contender, [])])

    def median(self, contender: str, key: str) -> float:
        return self.summary(contender, key).median

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResult:
        data = dict(data)
        data["metrics"] = [Metric(**m) for m in data["metrics"]]
        data["targets"] = [Target(**t) for t in data["targets"]]
        return cls(**data)


# -- machine and versions ---------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where and with what the run happened."""
    import psutil

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


# -- markdown --------------------------------------------------------------------------------


def _fmt(metric: Metric, value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return metric.fmt.format(value)


def _ratio(value: float, base: float) -> str:
    if base is None or value is None or math.isnan(base) or math.isnan(value) or base == 0:
        return ""
    r = value / base
    text = f"{r:,.0f}" if r >= 100 else f"{r:,.1f}" if r >= 10 else f"{r:.2f}"
    return f" ({text}×)"


def case_markdown(case: CaseResult) -> str:
    lines = [f"## {case.title}", "", case.about.strip(), ""]
    runs = max((len(v) for v in case.runs.values()), default=0)
    mode = "quick" if case.quick else "full"
    lines.append(
        f"*{runs} run(s) per contender ({mode} mode), {case.date}, {case.seconds:.0f} s. "
        "Cells: median [min–max]"
        + (f"; (n×) is the median relative to {case.baseline}." if case.baseline else ".")
        + "*"
    )
    lines.append("")
    header = ["contender", *(m.label for m in case.metrics)]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    wide: list[str] = []
    for contender in case.runs:
        cells = [contender]
        for metric in case.metrics:
            s = case.summary(contender, metric.key)
            cell = _fmt(metric, s.median)
            if s.runs > 1:
                cell += f" [{_fmt(metric, s.low)}–{_fmt(metric, s.high)}]"
            if case.baseline and contender != case.baseline and case.baseline in case.runs:
                cell += _ratio(s.median, case.median(case.baseline, metric.key))
            if s.wide:
                cell += " ⚠"
                wide.append(f"{contender} / {metric.label}")
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if wide:
        lines.append(
            f"⚠ wide spread (max − min > {WIDE_SPREAD:.0%} of the median): " + "; ".join(wide)
        )
        lines.append("")
    if case.targets:
        lines.append("| target | measured | |")
        lines.append("|---|---|---|")
        for t in case.targets:
            lines.append(f"| {t.text} | {t.measured} | {'met' if t.met else '**missed**'} |")
        lines.append("")
    for note in case.notes:
        lines.append(f"- {note}")
    if case.notes:
        lines.append("")
    if case.chart:
        lines.append(f"![{case.title}]({case.chart})")
        lines.append("")
    return "\n".join(lines)


def results_markdown(
    cases: Sequence[CaseResult], info: dict[str, Any], intro: str, elapsed: dict[str, float]
) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    out = [
        "# aiotd benchmarks",
        "",
        intro.strip(),
        "",
        f"- Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB RAM, "
        f"{info['os']}; load average at start {info['load_at_start']}",
        f"- Date: {info['date']}; aiotd at {info.get('revision', 'unknown')}",
        f"- Python: {info['python']}",
        f"- Packages: {versions}",
        f"- Command: `{' '.join(info.get('argv', []))}`; "
        + ", ".join(f"{k} {v:.0f} s" for k, v in elapsed.items()),
        "",
    ]
    missed = [(c, t) for c in cases for t in c.targets if not t.met]
    met = [(c, t) for c in cases for t in c.targets if t.met]
    if met or missed:
        out.append("## Targets at a glance")
        out.append("")
        for c, t in met + missed:
            verdict = "met" if t.met else "**missed**"
            out.append(f"- {verdict}: {c.title} — {t.text}: {t.measured}")
        out.append("")
    for case in cases:
        out.append(case_markdown(case))
    return "\n".join(out).rstrip() + "\n"


# -- charts ----------------------------------------------------------------------------------


def bar_chart(case: CaseResult, path: Path) -> None:
    """One panel per metric: a bar per contender at the median, whiskers at min and max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = case.chart_metrics or [m.key for m in case.metrics]
    metrics = [m for m in case.metrics if m.key in keys]
    names = list(case.runs)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 1, 3.6), squeeze=False)
    colors = ["#2b6cb0" if n.startswith("aiotd") else "#a0aec0" for n in names]
    for ax, metric in zip(axes[0], metrics, strict=True):
        sums = [case.summary(n, metric.key) for n in names]
        med = [0.0 if math.isnan(s.median) else s.median for s in sums]
        err = [
            [0.0 if math.isnan(s.median) else s.median - s.low for s in sums],
            [0.0 if math.isnan(s.median) else s.high - s.median for s in sums],
        ]
        ax.bar(range(len(names)), med, yerr=err, color=colors, capsize=3)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        better = {"lower": " (lower is better)", "higher": " (higher is better)"}.get(
            metric.better, ""
        )
        ax.set_title(metric.label + better, fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(case.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(
    out_dir: Path,
    cases: Sequence[CaseResult],
    info: dict[str, Any],
    intro: str,
    elapsed: dict[str, float],
) -> Path:
    """RESULTS.md in ``out_dir`` (charts are written by the cases before)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "RESULTS.md"
    target.write_text(results_markdown(cases, info, intro, elapsed), encoding="utf-8")
    return target


def python_version() -> str:
    return sys.version.split()[0]
