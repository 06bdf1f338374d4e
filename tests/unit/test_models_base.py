"""The models' shared mechanisms: one ``<field>_dt`` accessor per timestamp, each model
named once and exported by ``aiotd.models``."""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec
import pytest

import aiotd.models
from aiotd.models import core, workflow
from aiotd.models._base import Model, RunStamped, Stamped, Timestamp, parsed_time

MODELS = sorted(
    (
        obj
        for name in aiotd.models.__all__
        if isinstance(obj := getattr(aiotd.models, name), type) and issubclass(obj, msgspec.Struct)
    ),
    key=lambda cls: cls.__name__,
)
# Fields named like times that hold durations, not instants.
DURATIONS = {"cpu_time", "elapsed_time"}


def accessors(cls: type) -> dict[str, parsed_time]:
    return {
        name: value
        for klass in cls.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, parsed_time)
    }


def timestamp_fields(cls: type[msgspec.Struct]) -> set[str]:
    """Fields holding an instant: typed ``Timestamp`` or named ``*_at`` / ``*_time``."""
    return {
        f.name
        for f in msgspec.structs.fields(cls)
        if f.type == Timestamp or (f.name.endswith(("_at", "_time")) and f.name not in DURATIONS)
    }


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
def test_every_timestamp_has_its_accessor_and_every_accessor_its_field(
    cls: type[msgspec.Struct],
) -> None:
    found = accessors(cls)
    assert {name.removesuffix("_dt") for name in found} >= timestamp_fields(cls)
    for name, accessor in found.items():
        assert accessor.field == name.removesuffix("_dt")
        assert accessor.field in cls.__struct_fields__


def test_the_accessor_reads_the_field_its_name_says() -> None:
    class Stamp(Model, frozen=True, kw_only=True):
        seen_at: Timestamp = None
        seen_at_dt = parsed_time()

    assert Stamp(seen_at="2023-01-02 03:04:05 UTC").seen_at_dt == datetime(
        2023, 1, 2, 3, 4, 5, tzinfo=timezone.utc
    )
    assert Stamp().seen_at_dt is None
    assert isinstance(Stamp.seen_at_dt, parsed_time)


def test_an_accessor_not_named_after_a_field_is_refused() -> None:
    with pytest.raises((TypeError, RuntimeError)) as caught:  # 3.11 wraps it: RuntimeError

        class Odd(Model, frozen=True, kw_only=True):
            seen_at: Timestamp = None
            seen = parsed_time()

    error = caught.value.__cause__ or caught.value
    assert isinstance(error, TypeError)
    assert "Odd.seen: a parsed_time is named <field>_dt" in str(error)


@pytest.mark.parametrize(
    ("cls", "stamps"),
    [
        (core.Database, Stamped),
        (core.Table, Stamped),
        (core.User, Stamped),
        (core.Job, RunStamped),
        (core.JobStatus, RunStamped),
        (core.ScheduledJob, RunStamped),
        (core.BulkLoadJob, RunStamped),
    ],
    ids=lambda x: x.__name__,
)
def test_the_shared_stamps_decode_from_the_wire(cls: type[Model], stamps: type[Model]) -> None:
    # the forms TD sends (v3-api.md §7.1): "... UTC" text, ISO with an offset, epoch seconds
    assert issubclass(cls, stamps)
    body = {
        "job_id": "1",
        "status": "success",
        "name": "n",
        "id": "1",
        "created_at": "2023-01-01 00:00:00 UTC",
        "updated_at": "2023-01-01T09:00:00+09:00",
        "start_at": 1672531200,
        "end_at": "",
    }
    record = msgspec.json.decode(msgspec.json.encode(body), type=cls)
    first = datetime(2023, 1, 1, tzinfo=timezone.utc)
    assert record.created_at_dt == record.updated_at_dt == first  # type: ignore[attr-defined]
    if stamps is RunStamped:
        assert record.start_at_dt == first  # type: ignore[attr-defined]
        assert record.end_at_dt is None  # type: ignore[attr-defined]


def test_each_model_is_named_once_and_exported() -> None:
    defined = core.__all__ + workflow.__all__
    assert len(defined) == len(set(defined))
    assert sorted(aiotd.models.__all__) == sorted(["Model", *defined])
    for name in defined:
        module = core if name in core.__all__ else workflow
        assert getattr(aiotd.models, name) is getattr(module, name)
    # every public model class of the two modules (but the base) is in its module's __all__
    for module in (core, workflow):
        public = {
            name
            for name, obj in vars(module).items()
            if isinstance(obj, type)
            and issubclass(obj, msgspec.Struct)
            and obj.__module__ == module.__name__
            and not name.startswith("_")
            and obj is not workflow.WorkflowModel
        }
        assert public <= set(module.__all__), public - set(module.__all__)
