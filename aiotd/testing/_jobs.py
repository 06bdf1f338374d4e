"""The job store: jobs whose status follows from their timestamps, indexed per status.

A job's whole timeline (queued -> booting -> running -> finished) is fixed when it is issued
and its query runs then too; nothing happens per job while time passes. Each request first calls
``advance()``, which pops the transitions that are due from one heap and moves those jobs between
per-status id lists, so listing and counting never scan every job.
"""

from __future__ import annotations

import heapq
import itertools
import json
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiotd.testing._common import APIError, td_time
from aiotd.testing._results import SYNTHETIC_COLUMNS, Result, ResultWriter, synthetic_rows
from aiotd.testing._sql import JobControl, SQLError, parse_control
from aiotd.testing._store import Store, duckdb_error

__all__ = ["FINISHED", "STATUSES", "Job", "JobStore"]

QUEUED, BOOTING, RUNNING = "queued", "booting", "running"
SUCCESS, ERROR, KILLED = "success", "error", "killed"
STATUSES = (QUEUED, BOOTING, RUNNING, SUCCESS, ERROR, KILLED)
FINISHED = frozenset((SUCCESS, ERROR, KILLED))
QUERY_TYPES = frozenset(("hive", "presto", "trino", "pig", "impala"))
_BIG_SYNTHETIC = 200_000


class Job:
    """One job. Timeline (epoch seconds): ``created`` -> ``start`` (queue left) ->
    ``running_from`` (booting done) -> ``end``; ``status`` is kept current by ``advance()``."""

    __slots__ = (
        "created",
        "database",
        "debug_cmdout",
        "domain_key",
        "end",
        "id",
        "linked_result_export_job_id",
        "outcome",
        "pending",
        "pool_name",
        "priority",
        "query",
        "result",
        "result_export_target_job_id",
        "result_schema",
        "result_url",
        "retry_limit",
        "running_from",
        "scheduled_at",
        "start",
        "status",
        "stderr",
        "type",
        "user_name",
    )

    def __init__(self, job_id: int, job_type: str, database: str, query: Any) -> None:
        self.id = job_id
        self.type = job_type
        self.database = database
        self.query = query
        self.priority = 0
        self.retry_limit = 0
        self.result_url = ""
        self.pool_name: str | None = None
        self.domain_key: str | None = None
        self.user_name = "Emulator User"
        self.created = 0.0
        self.running_from = 0.0
        self.start = 0.0
        self.end = 0.0
        self.status = QUEUED
        self.outcome = SUCCESS
        self.stderr: str | None = None
        self.debug_cmdout: str | None = None
        self.result: Result | None = None
        self.result_schema: list[list[str]] | None = None
        self.pending: Future[tuple[Result, list[list[str]]]] | None = None
        self.linked_result_export_job_id: int | None = None
        self.result_export_target_job_id: int | None = None
        self.scheduled_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def _times(self, now: float) -> tuple[float, float | None, float | None, int]:
        """(updated_at, start_at, end_at, duration) as samples/v3/job_status_*.json show them."""
        status = self.status
        if status in FINISHED:
            return self.end, self.running_from, self.end, round(self.end - self.running_from)
        if status == RUNNING:
            return now, self.running_from, None, int(now - self.running_from)
        return now, None, None, int(now - self.created)

    def status_json(self, now: float) -> dict[str, Any]:
        """The body of ``job/status`` (v3-api §1.6)."""
        updated, start, end, duration = self._times(now)
        return {
            "job_id": str(self.id),
            "status": self.status,
            "created_at": td_time(self.created),
            "updated_at": td_time(updated),
            "start_at": td_time(start),
            "end_at": td_time(end),
            "duration": duration,
            "cpu_time": self._cpu_time(),
            "result_size": self._result_size(),
            "num_records": self._num_records(),
        }

    def _cpu_time(self) -> int | None:
        if self.type in ("presto", "trino") or self.status not in FINISHED:
            return None
        return int((self.end - self.running_from) * 1000)

    def _result_size(self) -> int | None:
        if self.status == SUCCESS:
            return self.result.size if self.result is not None else 0
        if self.status == ERROR:
            return 0
        return None

    def _num_records(self) -> int | None:
        if self.status == SUCCESS:
            return self.result.num_records if self.result is not None else 0
        return None

    def to_json(self, now: float, *, debug: bool = False) -> dict[str, Any]:
        """The job object of ``job/list`` and (with ``debug``) ``job/show`` (v3-api §2)."""
        updated, start, end, duration = self._times(now)
        finished_ok = self.status == SUCCESS
        schema = self.result_schema if finished_ok else None
        body: dict[str, Any] = {
            "query": self.query,
            "type": self.type,
            "priority": self.priority,
            "retry_limit": self.retry_limit,
            "duration": duration,
            "status": self.status,
            "cpu_time": self._cpu_time(),
            "result_size": self._result_size(),
            "job_id": str(self.id),
            "created_at": td_time(self.created),
            "updated_at": td_time(updated),
            "start_at": td_time(start),
            "end_at": td_time(end),
            "num_records": self._num_records(),
            "database": self.database,
            "user_name": self.user_name,
            "result": self.result_url,
            "url": f"https://console.treasuredata.com/app/jobs/{self.id}",
            "hive_result_schema": json.dumps(schema) if schema is not None else None,
            "organization": None,
            "linked_result_export_job_id": self.linked_result_export_job_id,
            "result_export_target_job_id": self.result_export_target_job_id,
        }
        if debug:
            body["debug"] = {"cmdout": self._cmdout(), "stderr": self.stderr}
        return body

    def _cmdout(self) -> str | None:
        if self.status in (QUEUED, BOOTING):
            return None
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.running_from))
        lines = [f"started at {started}", f"executing query: {self.query}"]
        if self.status == SUCCESS and self.result is not None:
            lines.append(f"{self.result.num_records} rows.")
        if self.status in FINISHED:
            lines.append(
                f"finished at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(self.end))}"
            )
        return "\n".join(lines) + "\n"


class _Bucket:
    """Ids of the jobs in one status, ascending; removals are tombstones compacted lazily."""

    __slots__ = ("dead", "ids", "live")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.dead: set[int] = set()
        self.live = 0

    def add(self, job_id: int) -> None:
        if not self.ids or job_id > self.ids[-1]:
            self.ids.append(job_id)
        else:
            insort(self.ids, job_id)
        self.live += 1

    def remove(self, job_id: int) -> None:
        self.dead.add(job_id)
        self.live -= 1
        if len(self.dead) > 64 and len(self.dead) * 2 > len(self.ids):
            dead = self.dead
            self.ids = [i for i in self.ids if i not in dead]
            self.dead = set()

    def page(self, lo: int | None, hi: int | None, skip: int, limit: int) -> list[int]:
        """Live ids in ``[lo, hi]``, newest first, ``skip`` then ``limit`` of them.

        Without tombstones (always so for finished statuses and for "all") this is a slice.
        """
        if limit <= 0:
            return []
        if self.dead:
            return list(itertools.islice(self.newest_first(lo, hi), skip, skip + limit))
        ids = self.ids
        start = bisect_right(ids, hi) if hi is not None else len(ids)
        stop = bisect_left(ids, lo) if lo is not None else 0
        end = start - skip
        begin = max(end - limit, stop)
        if end <= begin:
            return []
        return ids[begin:end][::-1]

    def newest_first(self, lo: int | None, hi: int | None) -> Iterator[int]:
        """Live ids in ``[lo, hi]``, newest first."""
        ids, dead = self.ids, self.dead
        start = bisect_right(ids, hi) - 1 if hi is not None else len(ids) - 1
        stop = bisect_left(ids, lo) if lo is not None else 0
        for index in range(start, stop - 1, -1):
            job_id = ids[index]
            if job_id not in dead:
                yield job_id

    def count(self, lo: int | None, hi: int | None) -> int:
        if lo is None and hi is None:
            return self.live
        ids = self.ids
        a = bisect_left(ids, lo) if lo is not None else 0
        b = bisect_right(ids, hi) if hi is not None else len(ids)
        low = lo if lo is not None else -1
        high = hi if hi is not None else 1 << 62
        return (b - a) - sum(1 for d in self.dead if low <= d <= high)


class JobStore:
    """Every job of one emulator; implements the workflow module's ``JobRunner`` protocol."""

    def __init__(
        self,
        store: Store,
        directory: Path,
        *,
        queued_time: float = 0.1,
        running_time: float = 0.3,
        booting_time: float = 0.05,
        first_job_id: int = 1,
    ) -> None:
        self.store = store
        self.directory = directory
        self.queued_time = queued_time
        self.running_time = running_time
        self.booting_time = booting_time
        self.jobs: dict[int, Job] = {}
        self.by_domain_key: dict[str, int] = {}
        self._ids = itertools.count(first_job_id)
        self._all = _Bucket()
        self._buckets = {status: _Bucket() for status in STATUSES}
        self._heap: list[tuple[float, int]] = []
        self._executor: ThreadPoolExecutor | None = None
        self.on_finish: list[Callable[[Job], None]] = []

    def close(self) -> None:
        """Stop background result generation and drop results."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        for job in self.jobs.values():
            if job.result is not None:
                job.result.discard()

    # -- issuing ---------------------------------------------------------------------------

    def issue(
        self,
        *,
        job_type: str,
        database: str,
        query: Any,
        priority: int = 0,
        retry_limit: int = 0,
        result_url: str = "",
        pool_name: str | None = None,
        domain_key: str | None = None,
        queued: float | None = None,
        booting: float | None = None,
        running: float | None = None,
        status: str | None = None,
        rows: int | None = None,
        now: float | None = None,
        scheduled_at: float | None = None,
    ) -> Job:
        """Create a job; the query runs now and its outcome shows once the timeline says so.

        ``queued``/``booting``/``running``/``status``/``rows`` override the job-control
        comment, which overrides the store's defaults. A used ``domain_key`` is a 409 naming
        the holder. ``scheduled_at`` is the job's TD_SCHEDULED_TIME (default: its creation).
        """
        if domain_key:
            holder = self.by_domain_key.get(domain_key)
            if holder is not None:
                raise APIError(
                    409,
                    f"Domain key '{domain_key}' already exists (conflicts with job {holder})",
                    details={"conflicts_with": str(holder)},
                )
        control = JobControl()
        if isinstance(query, str):
            try:
                control = parse_control(query)
            except ValueError as exc:
                raise APIError(400, str(exc)) from None
        job = Job(next(self._ids), job_type, database, query)
        job.priority = priority
        job.retry_limit = retry_limit
        job.result_url = result_url
        job.pool_name = pool_name
        job.domain_key = domain_key or None
        job.scheduled_at = scheduled_at
        t0 = time.time() if now is None else now
        job.created = t0
        self._execute(job, control, status, rows)
        # The query ran while the job was queued: its timeline counts from when it is done, so
        # that a slow query (or the first, which opens DuckDB) does not eat the queued time.
        base = max(t0, time.time()) if now is None else t0
        job.created = base
        q = queued if queued is not None else control.queued
        b = booting if booting is not None else control.booting
        r = running if running is not None else control.running
        job.start = base + (q if q is not None else self.queued_time)
        job.running_from = job.start + (b if b is not None else self.booting_time)
        job.end = job.running_from + (r if r is not None else self.running_time)
        self.jobs[job.id] = job
        if domain_key:
            self.by_domain_key[domain_key] = job.id
        self._all.add(job.id)
        job.status = QUEUED
        self._buckets[QUEUED].add(job.id)
        heapq.heappush(self._heap, (job.start, job.id))
        return job

    def _execute(self, job: Job, control: JobControl, status: str | None, rows: int | None) -> None:
        outcome = status or control.status
        nrows = rows if rows is not None else control.rows
        if outcome == ERROR:
            job.outcome = ERROR
            job.stderr = control.message or f"Query {job.id} failed: error requested by the test"
            return
        if job.type not in QUERY_TYPES:
            return
        key = f"job{job.id}"
        if nrows is not None:
            columns = [list(c) for c in SYNTHETIC_COLUMNS]
            if control.pad:
                columns.append(["pad", "varchar"])
            if nrows > _BIG_SYNTHETIC:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix="aiotd-emu-result")
                job.pending = self._executor.submit(
                    self._write_synthetic, key, nrows, control.pad, columns
                )
            else:
                job.result, job.result_schema = self._write_synthetic(
                    key, nrows, control.pad, columns
                )
            return
        writer = ResultWriter(key, self.directory)
        scheduled = job.scheduled_at if job.scheduled_at is not None else job.created
        try:
            schema = self.store.run(
                job.database,
                str(job.query),
                engine=job.type,
                scheduled=int(scheduled),
                sink=writer.write,
            )
        except (SQLError, APIError, ValueError, OverflowError, TypeError, duckdb_error()) as exc:
            # Never a 500: a query that does not parse or run ends the job in error, and
            # debug.stderr says why (the parse position, or DuckDB's message).
            writer.abort()
            job.outcome = ERROR
            message = exc.message if isinstance(exc, APIError) else str(exc)
            job.stderr = f"Query {job.id} failed: {message}"
            return
        job.result = writer.close()
        job.result_schema = schema

    def _write_synthetic(
        self, key: str, nrows: int, pad: int, columns: list[list[str]]
    ) -> tuple[Result, list[list[str]]]:
        writer = ResultWriter(key, self.directory)
        for row in synthetic_rows(nrows, pad):
            writer.write(row)
        return writer.close(), columns

    # -- time ------------------------------------------------------------------------------

    def _move(self, job: Job, status: str) -> None:
        self._buckets[job.status].remove(job.id)
        job.status = status
        self._buckets[status].add(job.id)

    def advance(self, now: float | None = None) -> None:
        """Apply every status transition that is due (cheap when none are)."""
        heap = self._heap
        if not heap:
            return
        if now is None:
            now = time.time()
        while heap and heap[0][0] <= now:
            _, job_id = heapq.heappop(heap)
            job = self.jobs.get(job_id)
            if job is None or job.status in FINISHED:
                continue
            if now < job.running_from:
                if job.status != BOOTING:
                    self._move(job, BOOTING)
                heapq.heappush(heap, (job.running_from, job_id))
            elif now < job.end:
                if job.status != RUNNING:
                    self._move(job, RUNNING)
                heapq.heappush(heap, (job.end, job_id))
            else:
                self._finish(job, now)

    def _finish(self, job: Job, now: float) -> None:
        pending = job.pending
        if pending is not None:
            if not pending.done():
                job.end = now + 0.05
                if job.status != RUNNING:
                    self._move(job, RUNNING)
                heapq.heappush(self._heap, (job.end, job.id))
                return
            job.pending = None
            try:
                job.result, job.result_schema = pending.result()
            except Exception as exc:  # the generator thread failed: the job fails
                job.outcome = ERROR
                job.stderr = f"Query {job.id} failed: {exc}"
        self._move(job, job.outcome)
        for callback in self.on_finish:
            callback(job)

    # -- reading ---------------------------------------------------------------------------

    def get(self, job_id: str | int) -> Job:
        """The job with that id, status current, or a 404 as TD words it."""
        try:
            key = int(job_id)
        except ValueError:
            key = -1
        job = self.jobs.get(key)
        if job is None:
            raise APIError(404, f"Couldn't find Job with account_id = 1, id = {job_id}")
        self.advance()
        return job

    def kill(self, job_id: str | int, now: float | None = None) -> str:
        """Kill a job; returns its former status (a finished job stays as it was)."""
        job = self.get(job_id)
        former = job.status
        if former not in FINISHED:
            job.end = time.time() if now is None else now
            if former in (QUEUED, BOOTING):
                job.running_from = job.end
            job.pending = None
            if job.result is not None:
                job.result.discard()
                job.result = None
            self._move(job, KILLED)
            for callback in self.on_finish:
                callback(job)
        return former

    def count(self, status: str | None = None) -> int:
        """How many jobs have ``status`` (all jobs when None)."""
        self.advance()
        return (self._all if status is None else self._buckets[status]).live

    def page(
        self,
        *,
        status: str | None,
        skip: int,
        limit: int,
        from_id: int | None = None,
        to_id: int | None = None,
        slower_than: float | None = None,
        now: float | None = None,
    ) -> tuple[int, list[Job]]:
        """(matching count, jobs ``skip..skip+limit-1`` newest first) for ``job/list``."""
        if now is None:
            now = time.time()
        self.advance(now)
        bucket = self._all if status is None else self._buckets[status]
        jobs = self.jobs
        if slower_than is None:
            total = bucket.count(from_id, to_id)
            return total, [jobs[i] for i in bucket.page(from_id, to_id, skip, limit)]
        matching = [
            jobs[i]
            for i in bucket.newest_first(from_id, to_id)
            if jobs[i]._times(now)[3] >= slower_than
        ]
        return len(matching), matching[skip : skip + max(limit, 0)]

    def by_key(self, domain_key: str) -> Job:
        """The job created with ``domain_key`` or 404."""
        job_id = self.by_domain_key.get(domain_key)
        if job_id is None:
            raise APIError(404, f"Couldn't find Job with domain_key = {domain_key}")
        return self.get(job_id)

    # -- the workflow module's JobRunner protocol --------------------------------------------

    def issue_job(self, *, database: str, query: str, engine: str = "presto") -> str:
        """Issue a query job (``td>`` operator); returns its id."""
        self.store.database(database)
        return str(self.issue(job_type=engine, database=database, query=query).id)

    def job_status(self, job_id: str) -> str:
        """The current status of a job: queued|booting|running|success|error|killed."""
        return self.get(job_id).status
