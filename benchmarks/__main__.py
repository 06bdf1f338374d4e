"""``python -m benchmarks [--quick] [--runs N] [--out DIR] [case ...]``.

Runs the cases (all by default) and writes RESULTS.md, ``raw.json`` (every run's figures)
and the charts into ``--out`` (default ``benchmarks/results``; ``--quick`` defaults to
``benchmarks/results/tmp/quick`` so a smoke run never overwrites the committed results).
Running some cases only replaces those cases in an existing ``raw.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._harness import log
from benchmarks._report import CaseResult, machine, write
from benchmarks.cases import NAMES, Context

RESULTS = Path(__file__).resolve().parent / "results"

INTRO = """
How much aiotd costs next to the clients people use today, measured side by side in one run:
td-client-python (synchronous, in threads), tdworkflow (synchronous, in threads), a plain
aiohttp loop (the floor: what hand-written asyncio code costs) and aiotd. Everything runs
against the aiotd emulator (`aiotd emulator`), served by its own process; every contender runs
in a fresh subprocess of its own on the same data, so *CPU* and *peak RSS* are that client's
alone (the emulator's CPU is reported apart where it matters). Requests are counted by the
emulator. The machine's two cores are shared by the emulator and the contender, so absolute
throughput is bounded by the emulator; CPU seconds and request counts are the robust figures.
Every figure below comes from this run (`raw.json` holds every run's numbers); regenerate
with `nox -s bench` or `python -m benchmarks [case ...]`.
"""


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("cases", nargs="*", help=f"cases (default: all): {', '.join(NAMES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each")
    parser.add_argument("--runs", type=int, default=None, help="runs per contender (default 3)")
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    args = parser.parse_args(argv)
    unknown = [c for c in args.cases if c not in NAMES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; cases are {', '.join(NAMES)}")
    return args


def _revision() -> str:
    """The checked-out commit, ``+dirty`` when aiotd/ has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, check=True
            )
        except (OSError, subprocess.CalledProcessError):
            return ""
        return out.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--", "aiotd") else "")


def _load(raw: Path) -> dict[str, list[CaseResult]]:
    if not raw.exists():
        return {}
    data = json.loads(raw.read_text(encoding="utf-8"))
    return {
        name: [CaseResult.from_json(c) for c in cases]
        for name, cases in data.get("cases", {}).items()
    }


async def _main(args: argparse.Namespace, out_dir: Path) -> int:
    runs = args.runs or (1 if args.quick else 3)
    ctx = Context(quick=args.quick, runs=runs, out_dir=out_dir)
    selected = args.cases or list(NAMES)
    info = machine()
    info["argv"] = ["python", "-m", "benchmarks", *sys.argv[1:]]
    info["revision"] = _revision()
    raw = out_dir / "raw.json"
    done = _load(raw)
    started = time.perf_counter()
    for name in NAMES:
        if name not in selected:
            continue
        module = importlib.import_module(f"benchmarks.cases.{name}")
        log(f"case {name}: {'quick' if ctx.quick else 'full'}, {runs} run(s) per contender")
        t0 = time.perf_counter()
        results: list[CaseResult] = await module.run(ctx)
        for result in results:
            result.date = time.strftime("%Y-%m-%d %H:%M")
        done[name] = results
        log(f"case {name}: {time.perf_counter() - t0:.0f} s")
        # written after every case so an interrupted run keeps what it measured
        raw.write_text(
            json.dumps(
                {"info": info, "cases": {k: [c.to_json() for c in v] for k, v in done.items()}},
                indent=1,
            ),
            encoding="utf-8",
        )
    elapsed = {"this run": time.perf_counter() - started}
    end_revision = _revision()
    if end_revision != info["revision"]:
        info["revision"] += f", then {end_revision} by the end (aiotd changed during the run)"
    ordered = [case for name in NAMES for case in done.get(name, [])]
    target = write(out_dir, ordered, info, INTRO, elapsed)
    log(f"wrote {target} in {elapsed['this run']:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    out_dir: Path = args.out or (RESULTS / "tmp" / "quick" if args.quick else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_main(args, out_dir))


if __name__ == "__main__":
    sys.exit(main())
