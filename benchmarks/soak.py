"""Soak run (not in CI): jobs issued and watched for minutes while 20% of requests fail.

``python benchmarks/soak.py [--minutes 10] [--issued 2000] [--watched 5000]`` starts the
emulator in its own process, creates the jobs that are only watched (``watched - issued``)
before any fault, then turns on a 20% fault mix (429 with Retry-After, 500/502/503 HTML pages,
resets before the request is applied, answers dropped after it is applied, answers slower
than the read timeout, truncated bodies) and, over the run, issues ``issued`` jobs through it
while one client watches all of them. At the end, with the faults off, it checks against the
server's job list that every issued job exists exactly once and that every watched job was
reported finished exactly once with the status the server holds; it prints the RSS and task
samples taken every few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

import aiotd

READ_TIMEOUT = 2.0
#: (kind, options): each kind gets an equal share of the faulted requests.
FAULT_MIX: tuple[tuple[str, dict[str, Any]], ...] = (
    ("429", {"retry_after": 0.5}),
    ("500", {"html": True}),
    ("502", {"html": True}),
    ("503", {"html": True}),
    ("reset", {}),
    ("drop", {}),
    ("delay", {"delay": 2 * READ_TIMEOUT}),
    ("truncate", {}),
)
TAG = re.compile(r"soak-(\w+)-(\d+)")
FINISHED = ("success", "error", "killed")


def fault_rules(total: float) -> list[dict[str, Any]]:
    """The mix as control-endpoint rules; each rule's rate is conditional on the ones before."""
    share = total / len(FAULT_MIX)
    rules, taken = [], 0.0
    for kind, options in FAULT_MIX:
        rules.append({"kind": kind, "match": "/v3/", "rate": share / (1 - taken), **options})
        taken += share
    return rules


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


@dataclass
class Run:
    minutes: float
    issued: int
    watched: int
    fault_rate: float
    seed: int
    finals: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    events: int = 0
    issue_errors: list[str] = field(default_factory=list)
    watch_errors: list[str] = field(default_factory=list)
    issued_ids: dict[str, str] = field(default_factory=dict)
    samples: list[tuple[float, float, int, int, int, int]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.minutes * 60


def query(kind: str, n: int, rng: random.Random, queued: float, running: float) -> str:
    status = "error" if rng.random() < 0.1 else "success"
    control = f"queued={queued:.1f} running={running:.1f} status={status}"
    return f"-- emulator: {control}\nselect 'soak-{kind}-{n}' as tag"


async def watch(td: aiotd.Client, ids: list[str], run: Run) -> None:
    """Watch ``ids`` to the end; a watch that fails is restarted for the jobs still open."""
    remaining = set(ids)
    while remaining:
        try:
            async for event in td.jobs.watch(sorted(remaining)):
                run.events += 1
                if event.new_status in FINISHED:
                    run.finals[event.job_id].append(event.new_status)
                    remaining.discard(event.job_id)
        except aiotd.errors.TDError as exc:
            run.watch_errors.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(1)


async def sampler(td: aiotd.Client, run: Run, start: float, every: float) -> None:
    while True:
        run.samples.append(
            (
                time.monotonic() - start,
                rss_mb(),
                len(asyncio.all_tasks()),
                len(td.jobs.engine),
                td.stats.requests,
                run.events,
            )
        )
        await asyncio.sleep(every)


async def control(session: aiohttp.ClientSession, url: str, method: str, body: Any = None) -> Any:
    async with session.request(method, url, json=body) as resp:
        resp.raise_for_status()
        return await resp.json()


async def soak(url: str, apikey: str, run: Run) -> dict[str, Any]:
    rng = random.Random(run.seed)
    tasks_before = len(asyncio.all_tasks())
    client = aiotd.Client(
        apikey,
        endpoint=url,
        timeout=aiotd.Timeouts(connect=5, read=READ_TIMEOUT, total=30),
        retry=aiotd.RetryPolicy(max_attempts=15, initial_delay=0.05, max_delay=2.0),
    )
    async with aiohttp.ClientSession() as ctl, client as td:
        await td.databases.create("soak", exist_ok=True)
        # the jobs only watched: made before any fault, finishing across the run
        background = run.watched - run.issued
        made = await asyncio.gather(
            *(
                td.jobs.issue(
                    query("bg", n, rng, 1.0, rng.uniform(10, 0.85 * run.seconds)), database="soak"
                )
                for n in range(background)
            )
        )
        background_ids = [job.job_id for job in made]
        await control(ctl, url + "/_emulator/faults", "POST", fault_rules(run.fault_rate))
        start = time.monotonic()
        sampling = asyncio.create_task(sampler(td, run, start, max(5.0, run.seconds / 40)))
        watchers = [asyncio.create_task(watch(td, background_ids, run))]

        async def issue(n: int) -> None:
            running = rng.uniform(2, 0.2 * run.seconds)
            text = query("issued", n, rng, rng.uniform(0, 3), running)
            for _ in range(5):
                try:
                    # the same key on a repeat, as a caller repeating a failed issue should do
                    job = await td.jobs.issue(text, database="soak", domain_key=f"soak-{n}")
                except aiotd.errors.TDError as exc:
                    run.issue_errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                run.issued_ids[str(n)] = job.job_id
                return

        # issue over the first 70% of the run, in batches, each batch watched on its own
        batch = 20
        spacing = 0.7 * run.seconds / max(1, run.issued // batch)
        for first in range(0, run.issued, batch):
            due = start + (first // batch) * spacing
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            numbers = range(first, min(first + batch, run.issued))
            await asyncio.gather(*(issue(n) for n in numbers))
            ids = [run.issued_ids[str(n)] for n in numbers if str(n) in run.issued_ids]
            watchers.append(asyncio.create_task(watch(td, ids, run)))
        deadline = start + run.seconds + 120
        pending = set(watchers)
        while pending and time.monotonic() < deadline:
            _, pending = await asyncio.wait(pending, timeout=5)
        elapsed = time.monotonic() - start
        for task in pending:
            task.cancel()
        sampling.cancel()
        await asyncio.gather(sampling, *watchers, return_exceptions=True)
        tasks_open = len(asyncio.all_tasks())
        stats = td.stats.as_dict()

        await control(ctl, url + "/_emulator/faults", "DELETE")
        counters = await control(ctl, url + "/_emulator/counters", "GET")
        server = [job async for job in td.jobs.list(page_size=1000)]
    await asyncio.sleep(0.5)
    tasks_after = len(asyncio.all_tasks())
    return check(
        run,
        server,
        background_ids,
        stats,
        counters,
        elapsed,
        pending,
        tasks_before,
        tasks_open,
        tasks_after,
    )


def check(
    run: Run,
    server: list[Any],
    background_ids: list[str],
    stats: dict[str, Any],
    counters: dict[str, Any],
    elapsed: float,
    pending: set[Any],
    tasks_before: int,
    tasks_open: int,
    tasks_after: int,
) -> dict[str, Any]:
    by_tag: dict[str, list[Any]] = collections.defaultdict(list)
    for job in server:
        match = TAG.search(str(job.query))
        if match and match.group(1) == "issued":
            by_tag[match.group(2)].append(job)
    status = {job.job_id: job.status for job in server}
    issued_once = sum(1 for n in range(run.issued) if len(by_tag.get(str(n), [])) == 1)
    duplicated = sum(1 for jobs in by_tag.values() if len(jobs) > 1)
    missing = run.issued - len(by_tag)
    mismatched_ids = sum(
        1 for n, job_id in run.issued_ids.items() if [j.job_id for j in by_tag[n]] != [job_id]
    )
    watched = list(background_ids) + list(run.issued_ids.values())
    once = sum(1 for j in watched if len(run.finals.get(j, [])) == 1)
    twice = sum(1 for j in watched if len(run.finals.get(j, [])) > 1)
    lost = sum(1 for j in watched if not run.finals.get(j))
    wrong = sum(1 for j in watched if run.finals.get(j) and run.finals[j][-1] != status.get(j))
    return {
        "minutes": run.minutes,
        "elapsed_s": round(elapsed, 1),
        "jobs_on_server": len(server),
        "issued": {
            "asked": run.issued,
            "exist_exactly_once": issued_once,
            "duplicated": duplicated,
            "missing": missing,
            "id_differs_from_server": mismatched_ids,
            "issue_calls_failed_and_repeated": len(run.issue_errors),
        },
        "watched": {
            "jobs": len(watched),
            "reported_exactly_once": once,
            "reported_more_than_once": twice,
            "never_reported": lost,
            "status_differs_from_server": wrong,
            "watch_restarts": len(run.watch_errors),
            "events": run.events,
            "watchers_unfinished": len(pending),
        },
        "server_requests": counters.get("total"),
        "faults_injected": counters.get("faults"),
        "client": {k: stats[k] for k in ("requests", "retries", "rate_limited", "errors")},
        "tasks": {"before": tasks_before, "at_end": tasks_open, "after_close": tasks_after},
        "errors_seen": (run.issue_errors + run.watch_errors)[:5],
    }


def report(run: Run, result: dict[str, Any]) -> str:
    lines = ["## Samples (every few seconds)", ""]
    lines.append("| t (s) | RSS (MB) | tasks | watched now | requests | events |")
    lines.append("|---:|---:|---:|---:|---:|---:|")
    for t, rss, tasks, watching, requests, events in run.samples:
        lines.append(f"| {t:.0f} | {rss:.1f} | {tasks} | {watching} | {requests} | {events} |")
    warm = [s for s in run.samples if s[0] >= 0.2 * run.seconds]
    if len(warm) >= 2:
        rss = [s[1] for s in warm]
        lines += [
            "",
            f"RSS after warm-up (t >= {0.2 * run.seconds:.0f} s): first {rss[0]:.1f} MB, "
            f"min {min(rss):.1f}, max {max(rss):.1f}, last {rss[-1]:.1f} MB "
            f"({rss[-1] - rss[0]:+.1f} MB over {warm[-1][0] - warm[0][0]:.0f} s)",
        ]
    lines += ["", "## Result", "", "```json", json.dumps(result, indent=2), "```"]
    return "\n".join(lines)


def start_emulator(apikey: str, seed: int) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "aiotd.testing", "--port", "0", "--apikey", apikey]
    command += ["--fault-seed", str(seed), "--no-workflow"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise SystemExit(f"the emulator did not start: {url!r}")
    return process, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run (10)")
    parser.add_argument("--issued", type=int, default=2000, help="jobs issued through faults")
    parser.add_argument("--watched", type=int, default=5000, help="jobs watched in all")
    parser.add_argument("--fault-rate", type=float, default=0.2, help="share of requests failed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.issued < 1 or args.watched < args.issued:
        parser.error("need --minutes > 0 and 1 <= --issued <= --watched")
    if not 0 <= args.fault_rate < 1:
        parser.error("--fault-rate must be within 0..1")
    run = Run(args.minutes, args.issued, args.watched, args.fault_rate, args.seed)
    apikey = "1/" + secrets.token_hex(20)
    process, url = start_emulator(apikey, args.seed)
    try:
        result = asyncio.run(soak(url, apikey, run))
    finally:
        process.terminate()
        process.wait(10)
    print(report(run, result))
    issued, watched = result["issued"], result["watched"]
    ok = (
        issued["exist_exactly_once"] == run.issued
        and watched["reported_exactly_once"] == watched["jobs"] == run.watched
        and watched["status_differs_from_server"] == 0
        and result["tasks"]["after_close"] <= result["tasks"]["before"]
    )
    print("\nexactly-once checks:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
