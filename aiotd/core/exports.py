"""``td.exports``: dump a table to object storage as a job, exactly once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiotd._resource import CoreResource
from aiotd.core._common import (
    db_segment,
    epoch_seconds,
    issue_once,
    new_domain_key,
    required,
    table_segment,
)
from aiotd.models.core import IssuedJob

__all__ = ["EXPORT_FORMATS", "Exports"]

#: ``file_format`` values ``export/run`` takes (v3-api.md §1.7).
EXPORT_FORMATS = ("jsonl.gz", "tsv.gz", "json.gz")


class Exports(CoreResource):
    """Table exports: ``POST /v3/export/run/{db}/{table}`` (v3-api.md §1.7)."""

    async def run(
        self,
        database: str,
        table: str,
        *,
        bucket: str,
        storage_type: str = "s3",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        file_prefix: str | None = None,
        file_format: str | None = None,
        from_time: int | datetime | None = None,
        to_time: int | datetime | None = None,
        assume_role: str | None = None,
        pool_name: str | None = None,
        domain_key: str | None = None,
        **extra: Any,
    ) -> IssuedJob:
        """Start an export job; wait for it with ``td.jobs.wait``.

        Exactly once like ``jobs.issue``: a ``domain_key`` (generated when not given) goes
        with every try, and a 409 naming a job returns it with ``existing=True``. TD
        exports to S3 only ("Only s3 output type is supported").
        """
        if file_format is not None and file_format not in EXPORT_FORMATS:
            raise ValueError(
                f"file_format must be one of {', '.join(EXPORT_FORMATS)}, not {file_format!r}"
            )
        form: dict[str, Any] = {
            "storage_type": required(storage_type, "storage_type"),
            "bucket": required(bucket, "bucket"),
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "file_prefix": file_prefix,
            "file_format": file_format,
            "from": None if from_time is None else epoch_seconds(from_time, "from_time"),
            "to": None if to_time is None else epoch_seconds(to_time, "to_time"),
            "assume_role": assume_role,
            "pool_name": pool_name,
            "domain_key": domain_key if domain_key is not None else new_domain_key(),
            **extra,
        }
        path = f"/v3/export/run/{db_segment(database)}/{table_segment(table)}"
        return await issue_once(self, path, database=database, data=form)
