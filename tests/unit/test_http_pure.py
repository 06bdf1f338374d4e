"""Pure functions of the HTTP layer: status -> error, Retry-After, messages, URL pieces."""

from __future__ import annotations

import email.utils
from datetime import datetime, timedelta, timezone

import aiohttp
import msgspec
import multidict
import pytest
import yarl

from aiotd import errors
from aiotd._config import RetryPolicy, Timeouts, resolve_apikey, resolve_endpoints
from aiotd._http import decode_json, error_from_response, group_of, parse_retry_after, segment
from aiotd._time import parse_time


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequest),
        (401, errors.AuthError),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (405, errors.APIError),
        (409, errors.Conflict),
        (422, errors.Unprocessable),
        (429, errors.RateLimited),
        (500, errors.ServerError),
        (502, errors.ServerError),
        (503, errors.ServerError),
    ],
)
def test_status_maps_to_the_most_specific_error(status: int, cls: type) -> None:
    err = error_from_response(status, b'{"message":"boom"}', {})
    assert type(err) is cls
    assert err.status == status
    assert err.message == "boom"


def test_message_falls_back_to_error_key_then_body() -> None:
    assert error_from_response(400, b'{"error":"bad thing"}', {}).message == "bad thing"
    assert error_from_response(500, b"plain text failure", {}).message == "plain text failure"
    assert error_from_response(500, b"", {}).message == "HTTP 500"
    long = b"x" * 2000
    assert len(error_from_response(500, long, {}).message) == 500


def test_html_error_page_becomes_a_readable_line() -> None:
    page = (
        b"<html><head><title>502 Bad Gateway</title><style>p{}</style></head>"
        b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
    )
    err = error_from_response(502, page, {}, method="GET", url="https://h/v3/job/list")
    assert isinstance(err, errors.ServerError)
    assert err.message == "502 Bad Gateway nginx"
    assert "<" not in str(err)
    assert "GET https://h/v3/job/list" in str(err)


def test_conflict_carries_conflicts_with() -> None:
    body = b'{"message":"Domain key exists","details":{"conflicts_with":12345}}'
    err = error_from_response(409, body, {})
    assert isinstance(err, errors.Conflict)
    assert err.conflicts_with == "12345"


def test_rate_limited_carries_retry_after() -> None:
    err = error_from_response(429, b"{}", {"Retry-After": "7"})
    assert isinstance(err, errors.RateLimited)
    assert err.retry_after == 7.0


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    later = email.utils.format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)
    earlier = email.utils.format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


def test_api_errors_pickle() -> None:
    import pickle

    err = errors.Conflict(409, "dup", method="POST", url="u", conflicts_with="9")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is errors.Conflict
    assert back.conflicts_with == "9"
    assert str(back) == str(err)


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        ("plain", "plain"),
        ("a/b", "a%2Fb"),
        ("sched test", "sched%20test"),
        ("a+b", "a%2Bb"),
        ("+wf+task", "%2Bwf%2Btask"),
        ("ü", "%C3%BC"),
        (12345, "12345"),
    ],
)
def test_segment_escapes_everything_reserved(raw: object, quoted: str) -> None:
    assert segment(raw) == quoted


def test_segment_refuses_empty() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        segment("")


@pytest.mark.parametrize("value", [None, True, 1.5, b"1", ["1"]])
def test_segment_refuses_what_is_not_an_id_or_a_name(value: object) -> None:
    with pytest.raises(TypeError, match="must be a str or an int"):
        segment(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [".", "..", " ", "\t"])
def test_segment_refuses_dot_segments_and_blanks(value: str) -> None:
    with pytest.raises(ValueError, match="blank|would change the path"):
        segment(value)
    # dots that do not make a dot segment stay
    assert [segment(v) for v in ("...", ".hidden", "a..b")] == ["...", ".hidden", "a..b"]


def test_group_of() -> None:
    assert group_of("/v3/job/status/123") == "job/status"
    assert group_of("/v3/system/server_status") == "system/server_status"
    assert group_of("/api/attempts/5/tasks") == "api/attempts"
    assert group_of("/v3/job/list?status=running") == "job/list"


@pytest.mark.parametrize(
    ("url", "group"),
    [
        ("http://127.0.0.1:8080/v3/job/status/123", "job/status"),
        ("https://api.treasuredata.com/v3/system/server_status", "system/server_status"),
        ("https://h/api/attempts/5/tasks", "api/attempts"),
        ("https://h/api/projects?name=x", "api/projects"),
        ("https://h/v3/job/list/?from=0", "job/list"),
        # empty segments are skipped, as in a path
        ("https://h/v3//job//status/1", "job/status"),
        ("https://h/api//logs/1", "api/logs"),
        ("https://h/v3/job?x=/a/b", "job"),
        ("https://h/v3", "v3"),
        ("https://h", "/"),
        ("https://h/other/thing", "other"),
    ],
)
def test_group_of_a_whole_url(url: str, group: str) -> None:
    assert group_of(url) == group


class _Thing(msgspec.Struct):
    id: str
    count: int


def test_decode_json_gives_struct_or_decode_error() -> None:
    assert decode_json(b'{"id":"1","count":2,"extra":true}', _Thing) == _Thing("1", 2)
    with pytest.raises(errors.DecodeError) as info:
        decode_json(b'{"id":"1","count":"two"}', _Thing)
    assert info.value.path == "$.count"
    assert "Expected `int`" in str(info.value)
    with pytest.raises(errors.DecodeError, match="body starts"):
        decode_json(b"<html>oops</html>", _Thing)
    with pytest.raises(errors.DecodeError):
        decode_json(b'{"id":"1","cou', _Thing)
    with pytest.raises(errors.DecodeError):
        decode_json(b"", _Thing)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-07-26 08:14:46 UTC", datetime(2016, 7, 26, 8, 14, 46, tzinfo=timezone.utc)),
        ("2014-10-04T01:13:20Z", datetime(2014, 10, 4, 1, 13, 20, tzinfo=timezone.utc)),
        (
            "2019-11-01T00:00:00+09:00",
            datetime(2019, 10, 31, 15, 0, 0, tzinfo=timezone.utc),
        ),
        ("2014-12-14T17:24:00+0900", datetime(2014, 12, 14, 8, 24, tzinfo=timezone.utc)),
        ("2015-02-17 14:16:00 +0900", datetime(2015, 2, 17, 5, 16, tzinfo=timezone.utc)),
        ("2019-11-01T07:00:00.5Z", datetime(2019, 11, 1, 7, 0, 0, 500000, tzinfo=timezone.utc)),
        (1462253475, datetime(2016, 5, 3, 5, 31, 15, tzinfo=timezone.utc)),
        ("1462253475", datetime(2016, 5, 3, 5, 31, 15, tzinfo=timezone.utc)),
    ],
)
def test_parse_time_every_form(value: str | int, expected: datetime) -> None:
    parsed = parse_time(value)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("value", ["", None, "   "])
def test_parse_time_empty_is_none(value: str | None) -> None:
    assert parse_time(value) is None


@pytest.mark.parametrize("value", ["yesterday", "2016-13-45 99:00:00 UTC", True])
def test_parse_time_rejects_garbage(value: object) -> None:
    with pytest.raises(ValueError, match="timestamp|month|hour|day"):
        parse_time(value)  # type: ignore[arg-type]


def test_endpoints_arguments_then_environment_then_site() -> None:
    env = {"TD_API_SERVER": "api.example.com", "TD_WORKFLOW_SERVER": "http://127.0.0.1:9"}
    assert resolve_endpoints(None, None, None, env) == (
        "https://api.example.com",
        "http://127.0.0.1:9",
    )
    assert resolve_endpoints(None, "https://x.test/", None, env)[0] == "https://x.test"
    assert resolve_endpoints("jp", None, None, {}) == (
        "https://api.treasuredata.co.jp",
        "https://api-workflow.treasuredata.co.jp",
    )
    assert resolve_endpoints("eu01", None, None, {})[1] == (
        "https://api-workflow.eu01.treasuredata.com"
    )
    with pytest.raises(ValueError, match="unknown site"):
        resolve_endpoints("mars", None, None, {})
    with pytest.raises(ValueError, match="scheme"):
        resolve_endpoints(None, "ftp://x", None, {})


def test_apikey_from_argument_or_environment() -> None:
    assert resolve_apikey("k", {}) == "k"
    assert resolve_apikey(None, {"TD_API_KEY": " 1/abc "}) == "1/abc"
    with pytest.raises(ValueError, match="TD_API_KEY"):
        resolve_apikey(None, {})
    with pytest.raises(ValueError, match="line breaks"):
        resolve_apikey("a\nb", {})


def test_retry_delay_is_full_jitter_capped() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=4.0)
    for retry in range(12):
        cap = min(4.0, 0.5 * 2**retry)
        delays = [policy.delay(retry) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap / 2  # spread over the range, not a fixed value
    assert 0 <= policy.delay(10**6) <= 4.0  # no overflow however many retries


def test_the_key_is_redacted_with_its_secret_part() -> None:
    from aiotd._http import HTTP

    key = "1/0123456789abcdef0123456789abcdef01234567"
    http = HTTP(apikey=key, timeouts=Timeouts(), retry=RetryPolicy(), max_connections=1)
    secret = key.split("/", 1)[1]
    text = f"TD1 {key} | {key.replace('/', '%2F')} | 1\\/{secret} | {secret.upper()}"
    assert http.redact(text) == f"TD1 *** | 1%2F*** | 1\\/*** | {secret.upper()}"
    error = errors.BadRequest(400, f"echo {key}", body=f'{{"h": "{key}"}}', url="http://x")
    scrubbed = http._scrubbed(error)
    assert key not in repr(scrubbed) + str(scrubbed) + scrubbed.body
    assert scrubbed.args == (400, "echo ***")
    short = HTTP(apikey="1/abc", timeouts=Timeouts(), retry=RetryPolicy(), max_connections=1)
    assert short.redact("1/abc and abc") == "*** and abc"  # a short part alone is not hunted


def test_policies_validate() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="read"):
        Timeouts(read=0)
    assert RetryPolicy.never().max_attempts == 1


def _transport() -> errors.TransportError:
    return errors.TransportError("GET u: reset", method="GET", url="u")


@pytest.mark.parametrize(
    ("error", "resend", "connected", "expected"),
    [
        # a transport failure: again when safe to repeat, or when it never reached TD
        (_transport(), True, True, True),
        (_transport(), False, True, False),
        (_transport(), False, False, True),
        # 408 and 5xx: only what may be applied twice
        (error_from_response(503, b"", {}), True, True, True),
        (error_from_response(500, b"", {}), False, True, False),
        (error_from_response(408, b"", {}), True, True, True),
        (error_from_response(408, b"", {}), False, True, False),
        # 429: refused before being applied, so even a POST
        (error_from_response(429, b"", {}), False, True, True),
        # the rest fails the same way every time
        (error_from_response(400, b"", {}), True, True, False),
        (error_from_response(404, b"", {}), True, True, False),
        (errors.ClientClosed("closed"), True, False, False),
        (errors.ResponseTooLarge("big", limit=1), True, True, False),
        (errors.DecodeError("bad"), True, True, False),
    ],
)
def test_should_retry(error: errors.TDError, resend: bool, connected: bool, expected: bool) -> None:
    from aiotd._http import should_retry

    assert should_retry(error, resend=resend, connected=connected) is expected


def _request_info(key: str) -> aiohttp.RequestInfo:
    url = yarl.URL("http://127.0.0.1/v3/job/show/1")
    headers = multidict.CIMultiDictProxy(multidict.CIMultiDict({"Authorization": f"TD1 {key}"}))
    return aiohttp.RequestInfo(url, "GET", headers, url)


def test_safe_cause_copies_what_holds_the_key_and_keeps_plain_exceptions() -> None:
    from aiotd._http import HTTP, RedactedCause, safe_cause

    key = "1/0123456789abcdef0123456789abcdef01234567"
    http = HTTP(apikey=key, timeouts=Timeouts(), retry=RetryPolicy(), max_connections=1)
    reset = ConnectionResetError(104, "Connection reset by peer")
    try:
        try:
            raise reset
        except OSError as exc:
            raise aiohttp.ClientResponseError(_request_info(key), (), status=400) from exc
    except aiohttp.ClientResponseError as exc:
        original = exc
    assert key in repr(vars(original))  # what aiohttp raises does hold the key

    cause = safe_cause(original, http.redact)
    assert isinstance(cause, RedactedCause)
    assert str(cause).startswith("aiohttp.client_exceptions.ClientResponseError: 400")
    assert cause.__traceback__ is original.__traceback__
    assert cause.__cause__ is reset  # plain values only: kept as it is
    texts = [str(cause), repr(cause), repr(vars(cause)), repr(vars(reset)), repr(reset.args)]
    assert not any(key in text or key.split("/")[1] in text for text in texts)

    # a plain exception whose message holds the key is copied, redacted
    echoed = safe_cause(ValueError(f"bad key {key}"), http.redact)
    assert isinstance(echoed, RedactedCause)
    assert str(echoed) == "builtins.ValueError: bad key ***"
    # what an exception was raised in (not from) is dropped: it may hold anything
    try:
        try:
            raise aiohttp.ClientResponseError(_request_info(key), ())
        except aiohttp.ClientResponseError:
            raise TimeoutError  # noqa: B904
    except TimeoutError as exc:
        timeout = exc
    assert timeout.__context__ is not None
    kept = safe_cause(timeout, http.redact)
    assert kept is timeout
    assert kept.__context__ is None
    assert kept.__cause__ is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v3/job/status/123",
        "https://api.treasuredata.com/v3/job/status/1",
        "https://api-workflow.treasuredata.com/api/logs/1/files/a%40b%2Fc.gz",  # kept encoded
        "https://user:pass@h:8443/x/y",
        "http://[::1]:9000/v3/x",
        "https://h/",
        "https://h",
        "https://h/a?X-Amz-Signature=a%2Bb&x=1",
        "https://h/a#frag",
        "/v3/relative",
    ],
)
def test_urls_are_given_to_aiohttp_as_yarl_parses_them(url: str) -> None:
    from aiotd._http import HTTP

    http = HTTP(apikey="1/" + "a" * 40, timeouts=Timeouts(), retry=RetryPolicy(), max_connections=1)
    for _ in range(2):  # the origin parsed, then kept
        got = http._yarl(url)
        want = yarl.URL(url, encoded=True)
        assert got == want
        assert (str(got), got.raw_path, got.raw_query_string) == (
            str(want),
            want.raw_path,
            want.raw_query_string,
        )
