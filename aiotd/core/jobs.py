"""``td.jobs``: issue exactly once, inspect, list, kill, and wait for jobs at scale."""

from __future__ import annotations

import builtins
import math
import operator
import os
import re
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from aiotd._http import segment
from aiotd._paging import Pager, offset_pager
from aiotd._polling import Engine, Listing
from aiotd._resource import CoreResource
from aiotd._waiting import as_completed as _as_completed
from aiotd._waiting import wait_all as _wait_all
from aiotd._waiting import watch as _watch
from aiotd.core._common import call_filled, db_segment, issue_once, new_domain_key
from aiotd.core.results_io import RESULT_FORMATS, RowDecoder
from aiotd.errors import DecodeError, JobFailed, JobNotFinished, TDError, TransportError
from aiotd.models.core import (
    Column,
    IssuedJob,
    Job,
    JobList,
    JobStatus,
    JobStatusList,
    KilledJob,
    parse_priority,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from aiotd._http import StreamResponse

__all__ = ["ENGINES", "JobEvent", "Jobs"]

#: Query engines ``issue`` accepts (v3-api.md §1.6; pig and impala are gone from TD).
ENGINES = ("presto", "trino", "hive")
_Page = TypeVar("_Page", JobList, JobStatusList)
_LIST_STATUSES = ("queued", "running", "success", "error")
#: Status strings as TD writes them (lower case, §2), and the upper case of td-client-python's
#: fixture (§7.17), each to its one lower-case string.
_STATUSES = {
    spelling: status
    for status in ("queued", "booting", "running", "success", "error", "killed")
    for spelling in (status, status.upper())
}
#: Items of each engine listing page asked again with the next page.
_OVERLAP = 8


class JobEvent(NamedTuple):
    """A job's status changed: ``job`` is a JobStatus, or the full Job once finished."""

    job_id: str
    old_status: str | None
    new_status: str
    job: JobStatus | Job


class _JobKind:
    """How the poll engine learns about jobs (v3-api.md §1.6, §5)."""

    name = "job"

    def __init__(self, jobs: Jobs, page_size: int) -> None:
        self._jobs = jobs
        self._page_size = page_size

    async def fetch(self, item_id: str) -> JobStatus | Job:
        return await self._jobs.status(item_id)

    async def fetch_final(self, item_id: str) -> JobStatus | Job:
        return await self._jobs.get(item_id)

    def status(self, record: JobStatus | Job) -> str:
        # one shared string per status: tens of thousands of entries hold one each
        status = record.status
        return _STATUSES.get(status) or status.lower()

    def finished(self, record: JobStatus | Job) -> bool:
        return record.finished

    def needs_final(self, record: JobStatus | Job) -> bool:
        return isinstance(record, JobStatus)

    def may_hide(self, status: str | None) -> bool:
        # a job goes queued -> booting -> running, and booting jobs are in neither the
        # queued nor the running listing (v3-api.md §2: status values; job/list accepts
        # queued, running, success, error); one never seen may be booting already
        return status is None or status == "queued"

    async def listing(self, watched: Sequence[str], page_budget: int) -> Listing[JobStatus | Job]:
        """Queued and running jobs, newest first by id, down to the oldest watched job.

        Booting jobs appear in neither list (v3-api.md §2). What a walk covered is known
        from the ids it saw, never from ``count``: the recorded bodies disagree on what it
        counts (td-client-python's fixture: 11 for 3 jobs asked ``from 0 to 10``; td-client-
        go's: 4 for 4 jobs; the guide: 20 for a default page), and a page may be cut shorter
        than ``to`` asks. A walk ends on an empty page or once past the oldest watched id.
        """
        floor = min((int(i) for i in watched if i.isdigit()), default=None)
        records: dict[str, JobStatus | Job] = {}
        pages = 0
        bound = -math.inf  # every id >= bound was in one of the walks
        for status in ("queued", "running"):
            lowest = math.inf  # the lowest id this walk saw
            ended = pages < page_budget  # then: the walk reached an empty page or the floor
            walk = self._jobs._status_pager(status, self._page_size).pages()
            async with aclosing(walk):
                while ended:
                    page = await anext(walk, None)
                    if page is None:
                        pages += 1  # the empty page that ended the walk
                        break
                    pages += 1
                    ids = list(map(_job_id, page))
                    records.update(zip(ids, page, strict=True))
                    lowest = min(lowest, min(map(int, filter(str.isdigit, ids)), default=lowest))
                    if floor is not None and lowest < floor:
                        break
                    ended = pages < page_budget
            if not ended:
                # cut short by the budget: a whole listing costs more than that
                bound = max(bound, lowest)
                pages = page_budget + 1
        if bound == -math.inf:
            return Listing(records, pages, lambda _id: True)
        covered = bound

        def covers(item_id: str) -> bool:
            return item_id.isdigit() and int(item_id) >= covered

        return Listing(records, pages, covers)


_job_id: Callable[[JobStatus | Job], str] = operator.attrgetter("job_id")


def _file_target(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """A file path whose directory exists (aiotd creates no directories of its own)."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{target} is a directory; give a file path")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    if not target.parent.is_dir():
        raise ValueError(f"directory {target.parent} does not exist")
    return target


class Jobs(CoreResource):
    """Jobs of the core API: ``/v3/job/...``."""

    # -- single calls

    async def issue(
        self,
        query: str,
        *,
        database: str,
        engine: str = "presto",
        priority: int | str | None = None,
        retry_limit: int | None = None,
        result_url: str | None = None,
        pool_name: str | None = None,
        domain_key: str | None = None,
        **extra: Any,
    ) -> IssuedJob:
        """Issue a query job exactly once, however often the request has to be retried.

        A ``domain_key`` (generated when not given) goes with every try, so TD refuses a
        second job with 409; that answer names the job already issued, which is returned
        with ``existing=True``.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty SQL string")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if retry_limit is not None and retry_limit < 0:
            raise ValueError("retry_limit must be >= 0")
        key = domain_key if domain_key is not None else new_domain_key()
        form: dict[str, Any] = {
            "query": query,
            "priority": None if priority is None else parse_priority(priority),
            "retry_limit": retry_limit,
            "result": result_url,
            "pool_name": pool_name,
            "domain_key": key,
            **extra,
        }
        path = f"/v3/job/issue/{engine}/{db_segment(database)}"
        return await issue_once(self, path, database=database, data=form)

    async def get(self, job_id: str | int) -> Job:
        """``job/show``: the full record, with ``debug.cmdout`` and ``debug.stderr``."""
        return await self._call("GET", f"/v3/job/show/{segment(job_id)}", Job)

    async def status(self, job_id: str | int) -> JobStatus:
        """``job/status``: the light record meant for polling.

        ``job_id`` is the one asked for when TD's answer leaves it out (td-client-python's
        fixture is ``{"status": "RUNNING"}`` alone); a body without ``status`` is a DecodeError.
        """
        path = f"/v3/job/status/{segment(job_id)}"
        return await call_filled(self, "GET", path, JobStatus, {"job_id": str(job_id)})

    async def status_by_domain_key(self, domain_key: str) -> JobStatus:
        """The job issued with ``domain_key``."""
        path = f"/v3/job/status_by_domain_key/{segment(domain_key)}"
        return await self._call("GET", path, JobStatus)

    async def kill(self, job_id: str | int) -> KilledJob:
        """Ask TD to kill a job; ``former_status`` tells whether it was still running."""
        path = f"/v3/job/kill/{segment(job_id)}"
        known = {"job_id": str(job_id)}
        return await call_filled(self, "POST", path, KilledJob, known, idempotent=True)

    async def result_export(self, job_id: str | int, *, result_url: str) -> IssuedJob:
        """Write a finished job's result to ``result_url``; returns the export job."""
        if not result_url:
            raise ValueError("result_url must not be empty")
        path = f"/v3/job/result_export/{segment(job_id)}"
        return await self._call("POST", path, IssuedJob, data={"result": result_url})

    async def _page(
        self,
        shape: type[_Page],
        from_: int,
        to: int,
        *,
        status: str | None = None,
        from_id: str | int | None = None,
        to_id: str | int | None = None,
        slower_than: float | None = None,
    ) -> _Page:
        """One ``job/list`` page, decoded into ``shape`` (full jobs, or light statuses)."""
        params = {
            "from": from_,
            "to": to,
            "status": status,
            "from_id": from_id,
            "to_id": to_id,
            "slower_than": slower_than,
        }
        return await self._call("GET", "/v3/job/list", shape, params=params)

    def list(
        self,
        *,
        status: str | None = None,
        from_id: str | int | None = None,
        to_id: str | int | None = None,
        slower_than: float | None = None,
        page_size: int = 100,
        limit: int | None = None,
    ) -> Pager[Job]:
        """Jobs newest first: ``await`` for one page, ``async for`` for all of them."""
        if status is not None and status not in _LIST_STATUSES:
            raise ValueError(f"status must be one of {', '.join(_LIST_STATUSES)}")

        async def fetch(from_: int, to: int) -> builtins.list[Job]:
            page = await self._page(
                JobList,
                from_,
                to,
                status=status,
                from_id=from_id,
                to_id=to_id,
                slower_than=slower_than,
            )
            return page.jobs

        return offset_pager(fetch, page_size=page_size, limit=limit, key=_job_id)

    def _status_pager(self, status: str, page_size: int) -> Pager[JobStatus]:
        """Light records of the jobs in one status, newest first (for the poll engine)."""

        async def fetch(from_: int, to: int) -> builtins.list[JobStatus]:
            return (await self._page(JobStatusList, from_, to, status=status)).jobs

        # jobs finish during a walk: a few items of overlap keep them from slipping by
        return offset_pager(fetch, page_size=page_size, key=_job_id, overlap=_OVERLAP)

    # -- waiting

    @property
    def engine(self) -> Engine[JobStatus | Job]:
        """The poll engine every waiter of this client shares."""
        return self._engine(lambda jobs, s: Engine(_JobKind(jobs, s.list_page_size), s))

    async def wait(
        self,
        job_id: str | int,
        *,
        timeout: float | None = None,
        raise_on_failure: bool = False,
        kill_on_cancel: bool = False,
    ) -> Job:
        """Wait until the job finishes and return its full record.

        A failed job is returned as it is (use ``raise_for_status()``), unless
        ``raise_on_failure`` raises its ``JobFailed``.
        """
        (job,) = await self.wait_all(
            [job_id],
            timeout=timeout,
            raise_on_failure=raise_on_failure,
            kill_on_cancel=kill_on_cancel,
        )
        return job

    async def wait_all(
        self,
        job_ids: Iterable[str | int],
        *,
        timeout: float | None = None,
        raise_on_failure: bool = False,
        kill_on_cancel: bool = False,
    ) -> builtins.list[Job]:
        """Wait for every job; results in the order of ``job_ids``.

        Failed jobs are returned as they are (use ``raise_for_status()``), unless
        ``raise_on_failure`` raises the first ``JobFailed``. With ``kill_on_cancel``, the
        jobs still running are killed when this wait is cancelled.
        """
        on_cancel = self.kill if kill_on_cancel else None
        jobs: builtins.list[Job] = await _wait_all(
            self.engine, job_ids, timeout=timeout, on_cancel=on_cancel
        )
        if raise_on_failure:
            for job in jobs:
                if job.failed:
                    raise JobFailed(job)
        return jobs

    async def as_completed(
        self, job_ids: Iterable[str | int], *, timeout: float | None = None
    ) -> AsyncGenerator[Job, None]:
        """Each job's full record as soon as it finishes, in finishing order."""
        async with aclosing(_as_completed(self.engine, job_ids, timeout=timeout)) as jobs:
            async for job in jobs:
                yield job

    async def watch(self, job_ids: Iterable[str | int]) -> AsyncGenerator[JobEvent, None]:
        """Every status change of the jobs, in order, until all are finished."""
        async with aclosing(_watch(self.engine, job_ids)) as changes:
            async for change in changes:
                yield JobEvent(change.item_id, change.old_status, change.new_status, change.record)

    # -- results

    async def _result_chunks(
        self,
        job_id: str | int,
        fmt: str,
        *,
        header: bool | None = None,
        chunk_size: int = 1 << 16,
    ) -> AsyncGenerator[bytes, None]:
        """The raw result bytes; a dropped connection resumes with ``Range`` + ``If-Range``.

        Resuming needs the server's ETag and a 206 from the byte asked (v3-api.md §3, §7.14):
        any other answer to a resumed request is an error, never duplicated bytes. The whole
        call, resumptions included, gets one budget of the client's RetryPolicy.
        """
        path = f"/v3/job/result/{segment(job_id)}"
        params = {"format": fmt, "header": header}
        budget = self._retry_budget()
        offset = 0
        total: int | None = None
        #: the ETag a resumed request sends as If-Range; None when the bytes cannot be resumed
        validator: str | None = None
        while True:
            headers = {"Accept-Encoding": "identity"}
            if offset and validator is not None:
                headers |= {"Range": f"bytes={offset}-", "If-Range": validator}
            try:
                async with self._stream(
                    path, params=params, headers=headers, retries=False
                ) as resp:
                    if not offset:
                        # a Range counts the bytes as sent: the decoded bytes of an encoded
                        # answer cannot be resumed (v3-api.md §7.15)
                        validator = None if _encoded(resp) else resp.headers.get("ETag")
                    try:
                        stop, total = _result_span(resp, offset, total, validator)
                    except TransportError:
                        validator = None  # a server that answers other bytes is not resumed
                        raise
                    async for chunk in resp.iter_chunks(chunk_size):
                        if stop is not None and offset + len(chunk) > stop:
                            validator = None
                            raise TransportError(
                                f"GET {resp.url}: the body runs past byte {stop}",
                                method="GET",
                                url=resp.url,
                            )
                        offset += len(chunk)
                        yield chunk
                    if stop is not None and offset < stop:
                        raise TransportError(
                            f"GET {resp.url}: the body ended at byte {offset} of {stop}",
                            method="GET",
                            url=resp.url,
                        )
                if total is None or offset >= total:
                    return
                # a 206 whose Content-Range stops short of the length (a server that caps
                # its ranges) was read whole: the next request asks for the rest
                if validator is None:
                    raise TransportError(
                        f"GET {resp.url}: the answer ends at byte {offset} of {total}, "
                        "and without an ETag the rest cannot be asked for",
                        method="GET",
                        url=resp.url,
                    )
            except TDError as exc:
                if offset and validator is None:
                    raise  # bytes given to the caller cannot be taken back
                await budget.backoff(exc)  # raises exc when no other try is worth it

    async def row_batches(
        self, job_id: str | int, *, format: str = "msgpack.gz", chunk_size: int = 1 << 16
    ) -> AsyncGenerator[builtins.list[builtins.list[Any]], None]:
        """Rows of a job's result in lists of about 256, decoded as the bytes arrive.

        The fast way through a large result: one async step per list, not per row.
        ``format="msgpack"`` trades bytes for CPU (no gunzip; v3-api.md §3). Memory stays
        bounded whatever the size of the result. A result that ends inside a row or a gzip
        member, or whose rows are not arrays, is a DecodeError, raised after the rows before
        the fault.
        """
        if format not in _ROW_FORMATS:
            raise ValueError(f"format must be one of {', '.join(_ROW_FORMATS)}, not {format!r}")
        decoder = RowDecoder(gzip=format == "msgpack.gz", arrays=True)
        chunks = self._result_chunks(job_id, format, chunk_size=chunk_size)
        async with aclosing(chunks):
            async for chunk in chunks:
                for batch in decoder.batches(chunk):
                    yield batch
        decoder.close()

    async def rows(
        self, job_id: str | int, *, format: str = "msgpack.gz", chunk_size: int = 1 << 16
    ) -> AsyncGenerator[builtins.list[Any], None]:
        """Rows of a job's result one by one, as ``row_batches`` decodes them."""
        batches = self.row_batches(job_id, format=format, chunk_size=chunk_size)
        async with aclosing(batches):
            async for batch in batches:
                for row in batch:
                    yield row

    def record_batches(
        self, job_id: str | int, *, batch_size: int = 65_536, format: str = "msgpack.gz"
    ) -> AsyncGenerator[pa.RecordBatch, None]:
        """A finished job's result as ``pyarrow.RecordBatch``es of at most ``batch_size`` rows,
        typed from its ``hive_result_schema`` (the mapping: ``aiotd.core._arrow``).

        Streamed as the bytes arrive, in memory bounded by the batch size. Needs the
        ``arrow`` extra (``pip install 'aiotd[arrow]'``; else ``errors.MissingExtra``). A job
        still running raises ``JobNotFinished``, a failed one ``JobFailed``.
        """
        from aiotd.core._arrow import record_batches  # the optional extra, loaded on use

        return record_batches(self, job_id, batch_size=batch_size, format=format)

    async def to_arrow(
        self, job_id: str | int, *, batch_size: int = 65_536, format: str = "msgpack.gz"
    ) -> pa.Table:
        """A finished job's whole result as one ``pyarrow.Table`` (``record_batches``
        collected). Needs the ``arrow`` extra."""
        from aiotd.core._arrow import to_arrow  # the optional extra, loaded on use

        return await to_arrow(self, job_id, batch_size=batch_size, format=format)

    async def to_pandas(
        self,
        job_id: str | int,
        *,
        batch_size: int = 65_536,
        format: str = "msgpack.gz",
        **options: Any,
    ) -> pd.DataFrame:
        """A finished job's whole result as a ``pandas.DataFrame``, by way of ``to_arrow``;
        ``options`` go to ``pyarrow.Table.to_pandas`` (e.g. ``types_mapper``). Needs the
        ``pandas`` extra (``pip install 'aiotd[pandas]'``)."""
        from aiotd.core._arrow import to_pandas  # the optional extra, loaded on use

        return await to_pandas(self, job_id, batch_size=batch_size, format=format, options=options)

    async def columns(self, job: Job | str | int) -> builtins.list[Column]:
        """Result column names and types, from the job's ``hive_result_schema``."""
        record = job if isinstance(job, Job) else await self.get(job)
        return record.result_columns

    async def download(
        self,
        job_id: str | int,
        path: str | os.PathLike[str],
        *,
        format: str = "msgpack.gz",
        header: bool = False,
        progress: Callable[[int, int | None], None] | None = None,
        chunk_size: int = 1 << 20,
        overwrite: bool = False,
    ) -> Path:
        """Stream a finished job's result to ``path``, resuming if the connection drops.

        The file appears under its final name only when complete (written to a temporary
        name in the same directory, then renamed). For ``msgpack.gz`` the byte count is
        checked against the job's ``result_size``. ``progress(done, total)`` is called per
        chunk (``total`` is None when TD does not say). An existing file is replaced only
        with ``overwrite=True``. A job still running raises ``JobNotFinished``, a failed one
        ``JobFailed``.
        """
        if format not in RESULT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(RESULT_FORMATS)}, not {format!r}")
        target = _file_target(path, overwrite=overwrite)
        job = await self.get(job_id)
        if not job.finished:
            raise JobNotFinished(job)
        job.raise_for_status()
        expected = job.result_size if format == "msgpack.gz" else None
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        done = 0
        params_header = header if format in ("csv", "tsv", "json") else None
        chunks = self._result_chunks(job_id, format, header=params_header, chunk_size=chunk_size)
        try:
            async with aclosing(chunks):
                with partial.open("wb") as out:
                    async for chunk in chunks:
                        out.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, expected)
            if expected is not None and done != expected:
                raise DecodeError(
                    f"job {job.job_id} result has {done} bytes but TD says {expected}"
                )
            if not overwrite and target.exists():
                raise FileExistsError(f"{target} appeared while downloading; not replaced")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target


#: Formats ``rows`` and ``row_batches`` decode: msgpack arrays, gzip'd or not (v3-api.md §3).
_ROW_FORMATS = ("msgpack.gz", "msgpack")

#: ``Content-Range`` of a 206: ``bytes first-last/complete-length`` or ``/*`` (RFC 9110 §14.4).
_CONTENT_RANGE = re.compile(r"bytes[ \t]+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


def _encoded(resp: StreamResponse) -> bool:
    return resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")


def _result_span(
    resp: StreamResponse, offset: int, total: int | None, etag: str | None
) -> tuple[int | None, int | None]:
    """Where the body of ``resp`` ends in the result (exclusive), and the result's length;
    None where the answer does not say.

    A request from byte ``offset`` > 0 must get a 206 of the same ETag whose
    ``Content-Range`` starts at ``offset`` (RFC 9110 §14.4: ``bytes first-last/length``);
    a first request a 200, or a 206 from byte 0. A length that contradicts ``total`` (what
    earlier answers said) is a mismatch too. A mismatch is a TransportError: the exchange
    did not deliver the bytes asked for, as with a cut body.
    """

    def mismatch(what: str, why: str = "") -> TransportError:
        asked = f"bytes {offset}-" if offset else "the whole result"
        text = f"GET {resp.url}: answered {what} to a request for {asked}{why}"
        return TransportError(text, method="GET", url=resp.url)

    if resp.status != 206:
        if offset:
            raise mismatch(str(resp.status), "; the result changed or ranges are unsupported")
        length = resp.headers.get("Content-Length", "")
        size = int(length) if length.isdigit() and not _encoded(resp) else None
        return size, size
    value = resp.headers.get("Content-Range")
    found = _CONTENT_RANGE.fullmatch(value.strip()) if value is not None else None
    if found is None:
        raise mismatch("206 without a valid Content-Range" + (f" ({value!r})" if value else ""))
    first, last = int(found[1]), int(found[2])
    length_of = None if found[3] == "*" else int(found[3])
    if first != offset or last < first or (length_of is not None and last >= length_of):
        raise mismatch(f"206 with Content-Range {value!r}")
    if total is not None and length_of is not None and length_of != total:
        raise mismatch(f"206 with Content-Range {value!r}", f"; the result has {total} bytes")
    if offset and resp.headers.get("ETag", etag) != etag:
        raise mismatch(f"206 with ETag {resp.headers['ETag']!r}", f"; the result's is {etag!r}")
    return last + 1, total if length_of is None else length_of
