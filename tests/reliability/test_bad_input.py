"""Bad input: bodies that are not what the models expect, bombs, and bad arguments.

Every bad body gives ``DecodeError`` (with where and a short excerpt) or, for an error
status, the APIError of that status with a short message; never another exception, a
hang, or unbounded memory.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from typing import Any

import msgpack
import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiotd
import aiotd.models
from aiotd import errors
from aiotd._http import decode_json, error_from_response
from aiotd._polling import PollSettings
from aiotd.testing import Emulator

from .conftest import FAST_RETRY, KEY, Scripted, client_for, reply

MODELS: list[type[msgspec.Struct]] = sorted(
    (
        obj
        for name in aiotd.models.__all__
        if isinstance(obj := getattr(aiotd.models, name), type) and issubclass(obj, msgspec.Struct)
    ),
    key=lambda cls: cls.__name__,
)
#: DecodeError's text: the message, the JSON path and an excerpt of at most 120 characters.
SHORT = 600

HTML = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    + b"<p>upstream error</p>" * 2000
    + b"</body></html>"
)
GENERIC_BAD: dict[str, bytes] = {
    "malformed": b'{"job_id": "1", "stat',
    "html": HTML,
    "empty": b"",
    "whitespace": b"  \n",
    "null": b"null",
    "scalar": b"42",
    "nul-bytes": b"\x00\x00\x00",
    "huge-unterminated": b'{"message": "' + b"x" * 10_000_000,
    "deep-array": b"[" * 100_000,
    "trailing-garbage": b"{}{}",
}


def check_short(error: BaseException, body: bytes) -> None:
    text = str(error)
    assert len(text) <= SHORT, text[:200]
    if isinstance(error, errors.DecodeError):
        assert len(error.snippet) <= 120
        assert body[:20].decode("utf-8", "replace")[:10] in error.snippet


@pytest.mark.parametrize("model", MODELS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("kind", list(GENERIC_BAD))
def test_generic_bad_bodies_give_decode_error(model: type[msgspec.Struct], kind: str) -> None:
    body = GENERIC_BAD[kind]
    with pytest.raises(errors.DecodeError) as info:
        decode_json(body, model)
    check_short(info.value, body)
    assert model.__name__ in str(info.value)


# -- wrong types, per field ------------------------------------------------------------------

_CANDIDATES: dict[str, Any] = {
    "object": {"unexpected": [1]},
    "array": [["unexpected"]],
    "string": "unexpected",
    "integer": 12,
    "float": 1.5,
    "bool": True,
    "null": None,
}


def accepted(t: Any) -> set[str]:
    """The JSON kinds a msgspec type accepts."""
    if isinstance(t, mi.UnionType):
        return set().union(*(accepted(x) for x in t.types))
    if isinstance(t, mi.AnyType):
        return set(_CANDIDATES)
    return {
        mi.StrType: {"string"},
        mi.IntType: {"integer"},
        mi.FloatType: {"integer", "float"},
        mi.BoolType: {"bool"},
        mi.NoneType: {"null"},
        mi.ListType: {"array"},
        mi.DictType: {"object"},
        mi.StructType: {"object"},
    }[type(t)]


def wrong_typed_fields() -> list[tuple[type[msgspec.Struct], str, str, Any]]:
    cases = []
    for model in MODELS:
        info = mi.type_info(model)
        assert isinstance(info, mi.StructType)
        if info.array_like:
            continue
        for field in info.fields:
            kinds = accepted(field.type)
            wrong = next((k for k in _CANDIDATES if k not in kinds), None)
            if wrong is not None:
                cases.append((model, field.name, field.encode_name, _CANDIDATES[wrong]))
    return cases


WRONG = wrong_typed_fields()


@pytest.mark.parametrize(
    ("model", "name", "wire", "value"), WRONG, ids=[f"{c[0].__name__}.{c[1]}" for c in WRONG]
)
def test_a_field_of_the_wrong_type_gives_decode_error_naming_it(
    model: type[msgspec.Struct], name: str, wire: str, value: Any
) -> None:
    body = msgspec.json.encode({wire: value})
    with pytest.raises(errors.DecodeError) as info:
        decode_json(body, model)
    assert info.value.path.startswith(f"$.{wire}")
    check_short(info.value, body)


def test_missing_required_fields_give_decode_error() -> None:
    required = [
        (model, f.name)
        for model in MODELS
        for f in mi.type_info(model).fields  # type: ignore[attr-defined]
        if f.required
    ]
    assert required  # Column is the one model with required fields (an array on the wire)
    for model, _ in required:
        for body in (b"[]", b'["name"]', b"{}"):
            with pytest.raises(errors.DecodeError):
                decode_json(body, model)


def test_huge_valid_strings_decode_and_errors_stay_short() -> None:
    big = "x" * 5_000_000
    job = decode_json(msgspec.json.encode({"job_id": 1, "status": big}), aiotd.models.Job)
    assert job.status == big
    assert job.job_id == "1"
    error = error_from_response(500, msgspec.json.encode({"message": big}), {})
    assert isinstance(error, errors.ServerError)
    assert len(str(error)) <= SHORT


# -- bodies msgspec cannot read as text or nests too deeply ---------------------------------

INVALID_UTF8 = b'{"job_id": "1", "status": "succ\xff\xfeess"}'
DEEP_IN_ANY = b'{"job_id": "1", "query": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"


def test_invalid_utf8_in_a_field_gives_decode_error() -> None:
    with pytest.raises(errors.DecodeError):
        decode_json(INVALID_UTF8, aiotd.models.Job)


def test_deep_nesting_in_a_free_form_field_gives_decode_error() -> None:
    with pytest.raises(errors.DecodeError):
        decode_json(DEEP_IN_ANY, aiotd.models.Job)


@pytest.mark.parametrize(
    "body",
    [b'{"message": "bad \xff"}', b'{"details": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
    ids=["invalid-utf8", "deep"],
)
def test_error_bodies_that_are_not_json_text_still_give_the_api_error(body: bytes) -> None:
    error = error_from_response(503, body, {})
    assert isinstance(error, errors.ServerError)


@given(st.binary(max_size=300), st.sampled_from([400, 401, 404, 409, 429, 500, 502, 503]))
@settings(max_examples=300, deadline=None)
def test_error_from_response_takes_any_ascii_body(raw: bytes, status: int) -> None:
    body = bytes(b & 0x7F for b in raw)
    error = error_from_response(status, body, {"Retry-After": "3"})
    assert isinstance(error, errors.APIError)
    assert error.status == status
    assert 0 < len(error.message) <= 500


# -- through real calls ----------------------------------------------------------------------

CALLS = {
    "job/show": ("/v3/job/show/1", lambda td: td.jobs.get("1"), b'{"status": {"s": 1}}'),
    "job/status": ("/v3/job/status/1", lambda td: td.jobs.status("1"), b'{"job_id": [1]}'),
    "job/list": ("/v3/job/list", lambda td: td.jobs.list(), b'{"count": "many", "jobs": 3}'),
    "job/issue": (
        "/v3/job/issue/presto/db",
        lambda td: td.jobs.issue("select 1", database="db"),
        b'{"job_id": [1]}',
    ),
    "database/list": ("/v3/database/list", lambda td: td.databases.list(), b'{"databases": 1}'),
    "account/show": ("/v3/account/show", lambda td: td.account(), b'{"account": [1]}'),
    "attempts": ("/api/attempts/5", lambda td: td.workflow.attempts.get("5"), b'{"id": [1]}'),
    "projects": ("/api/projects", lambda td: td.workflow.projects.list(), b'{"projects": 3}'),
}
REAL_BAD = {k: GENERIC_BAD[k] for k in ("malformed", "html", "empty", "huge-unterminated")}
REAL_BAD["wrong-type"] = b""


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("kind", list(REAL_BAD))
async def test_bad_bodies_from_the_server_give_decode_error_without_retry(
    scripted: Scripted, call: str, kind: str
) -> None:
    path, make, wrong = CALLS[call]
    body = REAL_BAD[kind] or wrong
    scripted.on(path, reply(200, body))
    async with aiotd.Client(
        KEY, endpoint=scripted.url, workflow_endpoint=scripted.url, retry=FAST_RETRY
    ) as td:
        with pytest.raises(errors.DecodeError) as info:
            await make(td)
        assert td.stats.requests == 1
    check_short(info.value, body)


@pytest.mark.parametrize("status", [200, 500])
@pytest.mark.parametrize("body", [INVALID_UTF8, DEEP_IN_ANY], ids=["invalid-utf8", "deep"])
async def test_bodies_msgspec_cannot_read_give_typed_errors_through_calls(
    scripted: Scripted, status: int, body: bytes
) -> None:
    scripted.on("/v3/job/show/1", reply(status, body))
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=aiotd.RetryPolicy.never()) as td:
        with pytest.raises(errors.TDError):
            await td.jobs.get("1")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_html_error_pages_give_server_error_with_a_short_message(
    scripted: Scripted, status: int
) -> None:
    scripted.on("/v3/job/show/1", reply(status, HTML))
    policy = aiotd.RetryPolicy(max_attempts=3, initial_delay=0.01)
    async with aiotd.Client(KEY, endpoint=scripted.url, retry=policy) as td:
        with pytest.raises(errors.ServerError) as info:
            await td.jobs.get("1")
    assert info.value.status == status
    assert info.value.message.startswith("502 Bad Gateway")
    assert len(str(info.value)) <= SHORT
    assert scripted.count("/v3/job/show/1") == 3


# -- property tests: bodies generated from the models, then mutated --------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def strategy(t: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Wire values that a msgspec type accepts."""
    if isinstance(t, mi.UnionType):
        return st.one_of(*(strategy(x, depth) for x in t.types))
    if isinstance(t, mi.StrType):
        return st.text(max_size=12)
    if isinstance(t, mi.IntType):
        return st.integers(-(2**63), 2**63 - 1)
    if isinstance(t, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.ListType):
        return st.lists(strategy(t.item_type, depth + 1), max_size=2 if depth < 2 else 0)
    if isinstance(t, mi.DictType):
        return st.dictionaries(strategy(t.key_type), strategy(t.value_type, depth + 1), max_size=2)
    if isinstance(t, mi.StructType):
        return documents(t, depth + 1)
    if isinstance(t, mi.AnyType):
        return _JSON
    raise AssertionError(f"no strategy for {t!r}")


def documents(info: mi.StructType, depth: int = 0) -> st.SearchStrategy[Any]:
    if info.array_like:
        return st.tuples(*(strategy(f.type, depth) for f in info.fields)).map(list)
    return st.fixed_dictionaries({f.encode_name: strategy(f.type, depth) for f in info.fields})


@st.composite
def model_and_document(draw: st.DrawFn) -> tuple[type[msgspec.Struct], Any]:
    model = draw(st.sampled_from(MODELS))
    info = mi.type_info(model)
    assert isinstance(info, mi.StructType)
    return model, draw(documents(info))


def roundtrip(value: msgspec.Struct) -> None:
    again = decode_json(msgspec.json.encode(value), type(value))
    assert again == value


@given(model_and_document())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_bodies_decode_to_stable_values(case: tuple[type[msgspec.Struct], Any]) -> None:
    model, document = case
    value = decode_json(msgspec.json.encode(document), model)
    assert isinstance(value, model)
    roundtrip(value)


MUTATIONS = ("drop", "retype", "truncate", "insert", "replace")


@given(model_and_document(), st.sampled_from(MUTATIONS), st.data())
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_bodies_decode_or_raise_decode_error(
    case: tuple[type[msgspec.Struct], Any], mutation: str, data: st.DataObject
) -> None:
    model, document = case
    body = msgspec.json.encode(document)
    expect_error = False
    dropped: str | None = None
    if mutation in ("drop", "retype") and isinstance(document, dict) and document:
        key = data.draw(st.sampled_from(sorted(document)))
        if mutation == "drop":
            del document[key]
            dropped = key
        else:
            document[key] = data.draw(st.sampled_from(list(_CANDIDATES.values())))
        body = msgspec.json.encode(document)
    elif mutation == "truncate" and len(body) > 1:
        body = body[: data.draw(st.integers(0, len(body) - 1))]
        expect_error = True
    elif mutation in ("insert", "replace"):
        at = data.draw(st.integers(0, len(body) - 1))
        byte = bytes([data.draw(st.integers(0, 0xFF))])
        body = body[:at] + byte + body[at + (mutation == "replace") :]
    try:
        value = decode_json(body, model)
    except errors.DecodeError as exc:
        error: errors.DecodeError | None = exc
    else:
        error = None
    if error is not None:
        assert len(str(error)) <= SHORT
        return
    assert not expect_error, f"a truncated body decoded: {body!r}"
    assert isinstance(value, model)
    roundtrip(value)
    if dropped is not None:
        field = next(f for f in mi.type_info(model).fields if f.encode_name == dropped)  # type: ignore[attr-defined]
        if field.default is not msgspec.NODEFAULT:
            assert getattr(value, field.name) == field.default


# -- bombs -----------------------------------------------------------------------------------


def gzip_of(parts: Any) -> bytes:
    """Gzip the byte strings of ``parts`` as one member, without holding them all."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [deflate.compress(part) for part in parts]
    out.append(deflate.flush())
    return b"".join(out)


def job_show_body() -> str:
    return '{"job_id":"1","status":"success","result_size":1,"num_records":1}'


async def _peak_while(awaitable: Any) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            result: Any = await awaitable
        except Exception as exc:
            result = exc
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


async def count_rows(td: aiotd.Client, job_id: str) -> int:
    rows = 0
    async for _ in td.jobs.rows(job_id):
        rows += 1
    return rows


async def test_a_gzip_bomb_of_big_rows_streams_in_bounded_memory(scripted: Scripted) -> None:
    row = msgpack.packb(["x" * (1 << 20), 1])
    rows = 400
    body = gzip_of(row for _ in range(rows))
    expanded = len(row) * rows
    assert expanded > 400 * len(body)
    scripted.on("/v3/job/result/1", reply(body=body))
    async with aiotd.Client(KEY, endpoint=scripted.url) as td:
        peak, result = await _peak_while(count_rows(td, "1"))
    mb = 1e6
    print(f"\nrows bomb: {len(body) / mb:.1f} MB -> {expanded / mb:.0f} MB, peak {peak / mb:.1f}")
    assert result == rows
    assert peak < 24 << 20, f"peak {peak / 1e6:.1f} MB while streaming {expanded / 1e6:.0f} MB"


async def test_a_gzip_bomb_of_one_endless_row_is_refused_in_bounded_memory(
    scripted: Scripted,
) -> None:
    # one msgpack bin32 value announcing 4 GB, then zeros: a row that never ends
    zeros = bytes(1 << 20)
    body = gzip_of([b"\xc6\xff\xff\xff\xf0", *(zeros for _ in range(512))])
    scripted.on("/v3/job/result/1", reply(body=body))
    async with aiotd.Client(KEY, endpoint=scripted.url) as td:
        peak, result = await _peak_while(count_rows(td, "1"))
    print(f"\nrow bomb: {len(body) / 1e6:.1f} MB -> 537 MB, peak {peak / 1e6:.1f} MB")
    assert isinstance(result, errors.DecodeError), result
    assert "row" in str(result)
    assert peak < 128 << 20, f"peak {peak / 1e6:.1f} MB"


def test_gzip_helper_is_plain_gzip() -> None:
    assert gzip.decompress(gzip_of([b"ab", b"cd"])) == b"abcd"


# -- bad arguments ---------------------------------------------------------------------------


async def _first(iterator: Any) -> Any:
    async for item in iterator:
        return item
    return None


BAD_CALLS: dict[str, tuple[Any, type[Exception], str]] = {
    "get empty id": (lambda td: td.jobs.get(""), ValueError, "empty"),
    "status empty id": (lambda td: td.jobs.status(""), ValueError, "empty"),
    "kill empty id": (lambda td: td.jobs.kill(""), ValueError, "empty"),
    "wait empty id": (lambda td: td.jobs.wait(" "), ValueError, "empty"),
    "wait_all empty id": (lambda td: td.jobs.wait_all(["1", ""]), ValueError, "empty"),
    "rows empty id": (lambda td: _first(td.jobs.rows("")), ValueError, "empty"),
    "by key empty": (lambda td: td.jobs.status_by_domain_key(""), ValueError, "empty"),
    "wait negative timeout": (lambda td: td.jobs.wait("1", timeout=-1), ValueError, "timeout"),
    "wait_all negative timeout": (
        lambda td: td.jobs.wait_all(["1"], timeout=-0.5),
        ValueError,
        "timeout",
    ),
    "as_completed negative timeout": (
        lambda td: _first(td.jobs.as_completed(["1"], timeout=-1)),
        ValueError,
        "timeout",
    ),
    "unknown engine": (
        lambda td: td.jobs.issue("select 1", database="db", engine="spark"),
        ValueError,
        "engine must be one of presto, trino, hive",
    ),
    "empty query": (lambda td: td.jobs.issue(" ", database="db"), ValueError, "query"),
    "negative retry_limit": (
        lambda td: td.jobs.issue("select 1", database="db", retry_limit=-1),
        ValueError,
        "retry_limit",
    ),
    "unknown priority": (
        lambda td: td.jobs.issue("select 1", database="db", priority="URGENT"),
        ValueError,
        "priority|URGENT",
    ),
    "empty database": (lambda td: td.jobs.issue("select 1", database=""), ValueError, "empty"),
    "unknown format": (
        lambda td: td.jobs.download("1", "out.parquet", format="parquet"),
        ValueError,
        "format must be one of",
    ),
    "negative limit": (lambda td: _first(td.jobs.list(limit=-1)), ValueError, "limit"),
    "unknown status": (lambda td: _first(td.jobs.list(status="done")), ValueError, "status"),
    "empty database name": (lambda td: td.databases.get(""), ValueError, "empty"),
    "import part_size": (
        lambda td: td.imports.upload("db", "t", [], part_size=0),
        ValueError,
        "part_size",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
async def test_bad_arguments_fail_before_any_request(emu: Emulator, case: str) -> None:
    call, error, message = BAD_CALLS[case]
    async with client_for(emu) as td:
        with pytest.raises(error, match=message):
            await call(td)
        assert td.stats.requests == 0
    assert emu.counters.total == 0


@pytest.mark.parametrize("name", ["a/b", "../etc"])
async def test_names_with_a_slash_fail_before_any_request(emu: Emulator, name: str) -> None:
    async with client_for(emu) as td:
        with pytest.raises(ValueError, match="name"):
            await td.databases.create(name)
        assert td.stats.requests == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: aiotd.Timeouts(read=-1), "Timeouts.read must be a positive"),
        (lambda: aiotd.Timeouts(connect=0), "Timeouts.connect must be a positive"),
        (lambda: aiotd.RetryPolicy(max_attempts=0), "max_attempts must be >= 1"),
        (lambda: aiotd.RetryPolicy(max_delay=-1), "max_delay must be >= 0"),
        (lambda: PollSettings(min_interval=0), "min_interval"),
        (lambda: aiotd.Client(KEY, max_connections=0), "max_connections must be >= 1"),
        (lambda: aiotd.Client(KEY, site="mars"), "unknown site 'mars'"),
        (lambda: aiotd.Client(KEY, endpoint="ftp://x"), "scheme must be http or https"),
        (lambda: aiotd.Client(" "), "no API key"),
        (lambda: aiotd.Client("a\nb"), "line breaks"),
    ],
)
def test_bad_configuration_is_refused_with_what_to_change(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# -- ids and names that would change the path, values that would break a header --------------

PATH_CALLS: dict[str, Any] = {
    "job get None": lambda td: td.jobs.get(None),
    "job status None": lambda td: td.jobs.status(None),
    "job kill None": lambda td: td.jobs.kill(None),
    "job rows None": lambda td: _first(td.jobs.rows(None)),
    "attempt get None": lambda td: td.workflow.attempts.get(None),
    "project get None": lambda td: td.workflow.projects.get(None),
    "session get None": lambda td: td.workflow.sessions.get(None),
    "job get ..": lambda td: td.jobs.get(".."),
    "job kill .": lambda td: td.jobs.kill("."),
    "project delete ..": lambda td: td.workflow.projects.delete(".."),
    "secret delete ..": lambda td: td.workflow.secrets.delete(1, ".."),
    "secret put .": lambda td: td.workflow.secrets.put(1, ".", value="value"),
    "secret of project ..": lambda td: td.workflow.secrets.delete("..", "k"),
    "log file ..": lambda td: _first(td.workflow.logs.read(1, "..")),
    "user delete ..": lambda td: td.users.delete(".."),
    "schedule delete .": lambda td: td.schedules.delete("."),
    "attempt kill blank": lambda td: td.workflow.attempts.kill("  "),
    "job wait None": lambda td: td.jobs.wait(None),
    "jobs wait_all [None]": lambda td: td.jobs.wait_all(["1", None]),
    "jobs wait_all ..": lambda td: td.jobs.wait_all([".."]),
    "jobs wait_all one string": lambda td: td.jobs.wait_all("123"),
    "attempt wait None": lambda td: td.workflow.attempts.wait(None),
    "attempts as_completed .": lambda td: _first(td.workflow.attempts.as_completed(["."])),
    "jobs watch None": lambda td: _first(td.jobs.watch([None])),
    "secret delete None": lambda td: td.workflow.secrets.delete(1, None),
    "secret put None": lambda td: td.workflow.secrets.put(1, None, value="value"),
}


@pytest.mark.parametrize("case", list(PATH_CALLS))
async def test_ids_of_none_and_dot_segments_are_refused_before_any_request(
    scripted: Scripted, case: str
) -> None:
    # a normalising proxy turns DELETE /api/projects/1/secrets/.. into DELETE /api/projects/1/
    async with aiotd.Client(KEY, endpoint=scripted.url, workflow_endpoint=scripted.url) as td:
        with pytest.raises((TypeError, ValueError), match="id or name|empty|blank|id|ids"):
            await PATH_CALLS[case](td)
        assert td.stats.requests == 0
    assert scripted.seen == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: aiotd.RetryPolicy(max_delay=float("nan")),
        lambda: aiotd.RetryPolicy(initial_delay=float("nan")),
        lambda: aiotd.RetryPolicy(max_retry_after=float("inf")),
        lambda: aiotd.RetryPolicy(max_elapsed=float("nan")),
        lambda: aiotd.RetryPolicy(max_attempts=2.5),  # type: ignore[arg-type]
        lambda: aiotd.Client(KEY, user_agent="tool\r\nX-Injected: 1"),
        lambda: aiotd.Client(KEY, user_agent="tool\n"),
        lambda: aiotd.Client(KEY, headers={"X-Team": "a\r\nX-Injected: 1"}),
        lambda: aiotd.Client(KEY, headers={"X-Team\n": "a"}),
    ],
)
def test_values_that_break_retries_or_headers_are_refused_at_construction(make: Any) -> None:
    with pytest.raises(ValueError, match="RetryPolicy|line breaks"):
        make()


def test_a_retry_policy_with_finite_values_still_builds() -> None:
    policy = aiotd.RetryPolicy(initial_delay=0, max_delay=0, max_elapsed=0, max_retry_after=0)
    assert policy.delay(3) == 0
    assert aiotd.Client(KEY, user_agent="tool/1.0", headers={"X-Team": "data"})


@pytest.mark.parametrize("stderr", ["   ", "\n\n \t\n"])
def test_a_failed_job_whose_stderr_is_only_whitespace_raises_job_failed(stderr: str) -> None:
    body = msgspec.json.encode(
        {"job_id": "7", "status": "error", "debug": {"cmdout": "", "stderr": stderr}}
    )
    job = decode_json(body, aiotd.models.Job)
    with pytest.raises(errors.JobFailed, match="^job 7 ended error$"):
        job.raise_for_status()
