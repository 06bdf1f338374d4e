"""A corpus of TD queries (Presto/Trino and Hive) run as jobs through the emulator's HTTP API on
DuckDB, each checked for its result: exact rows, or a property computed here in Python from the
sample data's generators (the same rows the emulator serves) and from the imported rows."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import gzip
import itertools
import json
import re
import statistics
import zoneinfo
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import msgpack
import pytest
import pytest_asyncio

from aiotd.testing import Emulator
from aiotd.testing._datasets import nasdaq_rows, www_access_rows

WWW = list(www_access_rows())  # time, user, host, path, referer, code, agent, size, method
NASDAQ = list(nasdaq_rows())  # time, symbol, open, volume, high, low, close
DAY = 1412294400  # 2014-10-03 00:00:00 UTC, the day www_access covers
JST = zoneinfo.ZoneInfo("Asia/Tokyo")
T0 = 1_700_000_000
EVENTS = [
    {
        "time": T0 + i * 60,
        "user_id": i % 7,
        "tags": [f"t{i % 3}", f"t{i % 5}"],
        "props": {"color": ["red", "blue"][i % 2], "size": str(i % 4)},
        "payload": json.dumps({"user": {"name": f"u{i % 7}"}, "items": list(range(i % 4))}),
        "amount": i * 1.5,
    }
    for i in range(40)
]

Rows = list[list[Any]]
Check = Callable[[Rows], Any]


class Runner:
    """Issues jobs over HTTP and reads their results (msgpack) and hive_result_schema."""

    def __init__(self, emu: Emulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session

    async def job(self, query: str, engine: str = "presto", db: str = "sample_datasets") -> Any:
        url = f"{self.emu.url}/v3/job/issue/{engine}/{db}"
        async with self.session.post(url, data={"query": query}) as resp:
            assert resp.status == 200, await resp.text()
            job_id = (await resp.json())["job_id"]
        while True:
            async with self.session.get(f"{self.emu.url}/v3/job/show/{job_id}") as resp:
                assert resp.status == 200
                shown = await resp.json()
            if shown["status"] in ("success", "error", "killed"):
                return shown
            await asyncio.sleep(0.005)

    async def rows(self, query: str, engine: str = "presto", db: str = "sample_datasets") -> Rows:
        shown = await self.job(query, engine, db)
        assert shown["status"] == "success", shown["debug"]["stderr"]
        url = f"{self.emu.url}/v3/job/result/{shown['job_id']}"
        async with self.session.get(url, params={"format": "msgpack"}) as resp:
            raw = await resp.read()
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(raw)
        rows = list(unpacker)
        assert shown["num_records"] == len(rows)
        return rows

    async def schema(self, query: str, engine: str = "presto", db: str = "sample_datasets") -> Any:
        shown = await self.job(query, engine, db)
        assert shown["status"] == "success", shown["debug"]["stderr"]
        return json.loads(shown["hive_result_schema"])

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        async with self.session.request(method, self.emu.url + path, **kw) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


@pytest_asyncio.fixture
async def run() -> AsyncIterator[Runner]:
    async with Emulator(queued_time=0, running_time=0, booting_time=0) as emu:
        headers = {"Authorization": f"TD1 {emu.apikey}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            runner = Runner(emu, session)
            await runner.call("POST", "/v3/database/create/corpus")
            await runner.call("POST", "/v3/table/create/corpus/events/log")
            body = gzip.compress(b"".join(msgpack.packb(r) for r in EVENTS))
            await runner.call("PUT", "/v3/table/import/corpus/events/msgpack.gz", data=body)
            yield runner


def _counter(values: Iterator[Any]) -> list[list[Any]]:
    return [[k, n] for k, n in sorted(collections.Counter(values).items())]


def _jst_hour(t: int) -> str:
    return dt.datetime.fromtimestamp(t, JST).strftime("%Y-%m-%d %H")


def _last_by_symbol(index: int) -> list[list[Any]]:
    last: dict[str, Any] = {}
    for row in NASDAQ:  # oldest first
        last[row[1]] = row[index]
    return [[s, v] for s, v in sorted(last.items())]


def _median_element(values: list[int], got: Any) -> bool:
    below = sum(1 for v in values if v <= got)
    above = sum(1 for v in values if v >= got)
    return got in values and below >= len(values) / 2 and above >= len(values) / 2


def _sessions(timeout: int) -> int:
    by_host: dict[str, list[int]] = collections.defaultdict(list)
    for row in WWW:
        by_host[row[2]].append(row[0])
    total = 0
    for times in by_host.values():
        times.sort()
        total += 1 + sum(1 for a, b in itertools.pairwise(times) if b - a > timeout)
    return total


def _item_kind(path: str) -> str | None:
    match = re.match(r"^/item/([a-z]+)/", path)
    return match.group(1) if match else None


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


SIZES = [r[7] for r in WWW]
AAPL = [r for r in NASDAQ if r[1] == "AAPL"]

#: (id, engine, database, query, expected rows or a check of the rows)
CORPUS: list[tuple[str, str, str, str, Rows | Check]] = [
    # -- aggregation ------------------------------------------------------------------
    ("count", "presto", "sample_datasets", "SELECT count(*) FROM www_access", [[5000]]),
    (
        "group_by_code",
        "presto",
        "sample_datasets",
        "SELECT code, count(1) AS n FROM www_access GROUP BY code ORDER BY code",
        _counter(r[5] for r in WWW),
    ),
    (
        "avg_size_by_method",
        "presto",
        "sample_datasets",
        "SELECT method, round(avg(size), 6) FROM www_access GROUP BY method ORDER BY method",
        [
            [m, round(statistics.mean(r[7] for r in WWW if r[8] == m), 6)]
            for m in sorted({r[8] for r in WWW})
        ],
    ),
    (
        "distinct_hosts",
        "presto",
        "sample_datasets",
        "SELECT count(DISTINCT host), approx_distinct(host) FROM www_access",
        [[len({r[2] for r in WWW})] * 2],
    ),
    (
        "having",
        "presto",
        "sample_datasets",
        "SELECT host FROM www_access GROUP BY host HAVING count(*) >= 20 ORDER BY host",
        [[h] for h, n in sorted(collections.Counter(r[2] for r in WWW).items()) if n >= 20],
    ),
    (
        "count_if_max_by_min_by",
        "presto",
        "sample_datasets",
        "SELECT symbol, count_if(close > open), max_by(close, time), min_by(open, time) "
        "FROM nasdaq GROUP BY symbol ORDER BY symbol",
        [
            [
                s,
                sum(1 for r in NASDAQ if r[1] == s and r[6] > r[2]),
                [r[6] for r in NASDAQ if r[1] == s][-1],
                next(r[2] for r in NASDAQ if r[1] == s),
            ]
            for s in sorted({r[1] for r in NASDAQ})
        ],
    ),
    (
        "approx_percentile",
        "presto",
        "sample_datasets",
        "SELECT approx_percentile(size, 0.5) FROM www_access",
        lambda rows: _median_element(SIZES, rows[0][0]),
    ),
    (
        "sum_volume_top3",
        "presto",
        "sample_datasets",
        "SELECT symbol, sum(volume) AS v FROM nasdaq GROUP BY 1 ORDER BY v DESC LIMIT 3",
        sorted(
            ([s, sum(r[3] for r in NASDAQ if r[1] == s)] for s in {r[1] for r in NASDAQ}),
            key=lambda x: -x[1],
        )[:3],
    ),
    (
        "map_agg",
        "presto",
        "sample_datasets",
        "SELECT map_agg(symbol, c) FROM (SELECT symbol, max(close) AS c FROM nasdaq GROUP BY 1)",
        [[{s: max(r[6] for r in NASDAQ if r[1] == s) for s in {r[1] for r in NASDAQ}}]],
    ),
    (
        "array_agg_join",
        "presto",
        "sample_datasets",
        "SELECT array_join(array_agg(DISTINCT method ORDER BY method), ',') FROM www_access",
        [[",".join(sorted({r[8] for r in WWW}))]],
    ),
    # -- TD's time functions -------------------------------------------------------------
    (
        "td_time_range",
        "presto",
        "sample_datasets",
        "SELECT count(*) FROM www_access "
        "WHERE TD_TIME_RANGE(time, '2014-10-03 06:00:00', '2014-10-03 12:00:00')",
        [[sum(1 for r in WWW if DAY + 6 * 3600 <= r[0] < DAY + 12 * 3600)]],
    ),
    (
        "td_time_range_tz_open_end",
        "presto",
        "sample_datasets",
        "SELECT count(*) FROM www_access WHERE TD_TIME_RANGE(time, '2014-10-03 12:00:00', "
        "NULL, 'JST')",
        [[sum(1 for r in WWW if r[0] >= DAY + 3 * 3600)]],
    ),
    (
        "td_time_range_epochs",
        "presto",
        "sample_datasets",
        f"SELECT count(*) FROM www_access WHERE TD_TIME_RANGE(time, NULL, {DAY + 3600})",
        [[sum(1 for r in WWW if r[0] < DAY + 3600)]],
    ),
    (
        "td_time_format_jst_hours",
        "presto",
        "sample_datasets",
        "SELECT TD_TIME_FORMAT(time, 'yyyy-MM-dd HH', 'JST') AS h, count(1) FROM www_access "
        "GROUP BY 1 ORDER BY 1",
        _counter(_jst_hour(r[0]) for r in WWW),
    ),
    (
        "td_time_format_zone_letters",
        "presto",
        "sample_datasets",
        "SELECT TD_TIME_FORMAT(min(time), 'yyyy-MM-dd HH:mm:ss z', 'JST'), "
        "TD_TIME_FORMAT(min(time), 'EEE, d MMM yyyy hh:mm a Z', 'America/Los_Angeles'), "
        "TD_TIME_FORMAT(min(time), 'yyyy-MM-dd''T''HH:mm:ssXXX') FROM www_access",
        [["2014-10-03 09:00:00 JST", "Thu, 2 Oct 2014 05:00 PM -0700", "2014-10-03T00:00:00Z"]],
    ),
    (
        "td_time_parse_add_trunc",
        "presto",
        "sample_datasets",
        "SELECT TD_TIME_PARSE('2014-10-03 09:00:00', 'JST'), TD_TIME_PARSE('2014-10-03'), "
        "TD_TIME_PARSE('not a time'), TD_TIME_ADD('2014-10-03', '1d'), "
        "TD_TIME_ADD(1412294400, '-1h30m'), TD_DATE_TRUNC('month', 1412294400, 'JST'), "
        "TD_DATE_TRUNC('week', 1412294400)",
        [[DAY, DAY, None, DAY + 86400, DAY - 5400, 1412089200, DAY - 4 * 86400]],  # a Friday,
    ),
    (
        "td_date_trunc_per_row",
        "presto",
        "sample_datasets",
        "SELECT TD_DATE_TRUNC('hour', time, 'JST') AS h, count(*) FROM www_access "
        "GROUP BY 1 ORDER BY 1 LIMIT 2",
        [
            [DAY, sum(1 for r in WWW if r[0] < DAY + 3600)],
            [DAY + 3600, sum(1 for r in WWW if DAY + 3600 <= r[0] < DAY + 7200)],
        ],
    ),
    (
        "td_sessionize",
        "presto",
        "sample_datasets",
        "SELECT count(DISTINCT session) FROM (SELECT TD_SESSIONIZE_WINDOW(time, 3600) "
        "OVER (PARTITION BY host ORDER BY time) AS session, host FROM www_access)",
        [[_sessions(3600)]],
    ),
    # -- windows -------------------------------------------------------------------------
    (
        "row_number_top_volume",
        "presto",
        "sample_datasets",
        "SELECT symbol, volume FROM (SELECT symbol, volume, row_number() OVER "
        "(PARTITION BY symbol ORDER BY volume DESC) AS rn FROM nasdaq) WHERE rn = 1 "
        "ORDER BY symbol",
        [[s, max(r[3] for r in NASDAQ if r[1] == s)] for s in sorted({r[1] for r in NASDAQ})],
    ),
    (
        "moving_average_frame",
        "presto",
        "sample_datasets",
        "SELECT round(avg(close) OVER (ORDER BY time ROWS BETWEEN 4 PRECEDING AND CURRENT ROW), "
        "6) FROM nasdaq WHERE symbol = 'AAPL' ORDER BY time DESC LIMIT 1",
        [[round(statistics.mean(r[6] for r in AAPL[-5:]), 6)]],
    ),
    (
        "lag_change",
        "presto",
        "sample_datasets",
        "SELECT round(close - lag(close) OVER (ORDER BY time), 4) FROM nasdaq "
        "WHERE symbol = 'AAPL' ORDER BY time LIMIT 3",
        [[None], [round(AAPL[1][6] - AAPL[0][6], 4)], [round(AAPL[2][6] - AAPL[1][6], 4)]],
    ),
    (
        "running_sum_rank",
        "presto",
        "sample_datasets",
        "SELECT symbol, max(running) FROM (SELECT symbol, sum(volume) OVER (PARTITION BY symbol "
        "ORDER BY time ROWS UNBOUNDED PRECEDING) AS running FROM nasdaq) GROUP BY 1 "
        "ORDER BY 2 DESC LIMIT 1",
        [
            max(
                ([s, sum(r[3] for r in NASDAQ if r[1] == s)] for s in {r[1] for r in NASDAQ}),
                key=lambda x: x[1],
            )
        ],
    ),
    # -- CTEs, joins, subqueries, set operations -------------------------------------------
    (
        "cte_join",
        "presto",
        "sample_datasets",
        "WITH hits AS (SELECT host, count(*) AS n FROM www_access GROUP BY host), "
        "errors AS (SELECT host, count(*) AS e FROM www_access WHERE code = 404 GROUP BY host) "
        "SELECT count(*), sum(e) FROM hits JOIN errors ON hits.host = errors.host",
        [
            [
                len({r[2] for r in WWW if r[5] == 404}),
                sum(1 for r in WWW if r[5] == 404),
            ]
        ],
    ),
    (
        "left_join_coalesce",
        "presto",
        "sample_datasets",
        "SELECT count(*), sum(coalesce(p.n, 0)) FROM (SELECT DISTINCT method FROM www_access) m "
        "LEFT JOIN (SELECT method, count(*) AS n FROM www_access WHERE code = 304 GROUP BY 1) p "
        "ON m.method = p.method",
        [[len({r[8] for r in WWW}), sum(1 for r in WWW if r[5] == 304)]],
    ),
    (
        "in_subquery",
        "presto",
        "sample_datasets",
        "SELECT count(*) FROM www_access WHERE host IN "
        "(SELECT host FROM www_access WHERE method = 'POST')",
        [[sum(1 for r in WWW if r[2] in {x[2] for x in WWW if x[8] == "POST"})]],
    ),
    (
        "union_all",
        "presto",
        "sample_datasets",
        "SELECT 'www' AS t, count(*) FROM www_access UNION ALL "
        "SELECT 'nasdaq', count(*) FROM nasdaq ORDER BY 1",
        [["nasdaq", 5000], ["www", 5000]],
    ),
    (
        "cross_database_join",
        "presto",
        "corpus",
        "SELECT count(*) FROM events e JOIN sample_datasets.nasdaq n "
        "ON n.symbol = 'AAPL' AND e.user_id = 0 AND n.time = (SELECT max(time) FROM "
        "sample_datasets.nasdaq)",
        [[sum(1 for e in EVENTS if e["user_id"] == 0)]],
    ),
    (
        "case_if",
        "presto",
        "sample_datasets",
        "SELECT IF(code = 200, 'ok', 'other') AS k, CASE WHEN size > 100 THEN 'big' ELSE 'small' "
        "END AS s, count(*) FROM www_access GROUP BY 1, 2 ORDER BY 1, 2",
        [
            [*key, n]
            for key, n in _counter(
                ("ok" if r[5] == 200 else "other", "big" if r[7] > 100 else "small") for r in WWW
            )
        ],
    ),
    # -- strings, regular expressions, URLs ----------------------------------------------
    (
        "regexp_extract",
        "presto",
        "sample_datasets",
        "SELECT regexp_extract(path, '^/item/([a-z]+)/', 1) AS kind, count(*) FROM www_access "
        "GROUP BY 1 ORDER BY 1 NULLS FIRST",
        sorted(
            ([k, n] for k, n in collections.Counter(_item_kind(r[3]) for r in WWW).items()),
            key=lambda x: (x[0] is not None, x[0] or ""),
        ),
    ),
    (
        "regexp_like_split_part",
        "presto",
        "sample_datasets",
        "SELECT split_part(path, '/', 2) AS top, count(*) FROM www_access "
        "WHERE regexp_like(path, '^/(category|item)/') GROUP BY 1 ORDER BY 1",
        _counter(r[3].split("/")[1] for r in WWW if re.match(r"^/(category|item)/", r[3])),
    ),
    (
        "url_functions",
        "presto",
        "sample_datasets",
        "SELECT url_extract_host(referer) AS h, url_extract_parameter(referer, 'q') AS q, "
        "count(*) FROM www_access WHERE referer LIKE 'http%' GROUP BY 1, 2 ORDER BY 1, 2",
        [
            [h, q, n]
            for (h, q), n in sorted(
                collections.Counter(
                    (
                        urlparse(r[4]).hostname,
                        (parse_qs(urlparse(r[4]).query).get("q") or [None])[0],
                    )
                    for r in WWW
                    if r[4].startswith("http")
                ).items(),
                key=lambda x: (x[0][0], x[0][1] or ""),
            )
        ],
    ),
    (
        "string_functions",
        "presto",
        "sample_datasets",
        "SELECT upper(substr(method, 1, 1)), length(host) > 6, strpos(path, '/'), "
        "concat(method, ' ', path), lower('ABC') FROM www_access ORDER BY time LIMIT 1",
        [
            [
                "G" if WWW[0][8] == "GET" else "P",
                len(WWW[0][2]) > 6,
                1,
                f"{WWW[0][8]} {WWW[0][3]}",
                "abc",
            ]
        ],
    ),
    # -- Presto's date functions ---------------------------------------------------------
    (
        "date_format_from_unixtime",
        "presto",
        "sample_datasets",
        "SELECT date_format(from_unixtime(time), '%Y-%m-%d %H') AS h, count(*) FROM www_access "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
        lambda rows: (
            rows[0][1]
            == max(
                collections.Counter(
                    dt.datetime.fromtimestamp(r[0], dt.timezone.utc).hour for r in WWW
                ).values()
            )
        ),
    ),
    (
        "date_parse_to_unixtime",
        "presto",
        "sample_datasets",
        "SELECT to_unixtime(date_parse('2014-10-03 12:00:00', '%Y-%m-%d %H:%i:%s')), "
        "from_unixtime(1412294400), hour(from_unixtime(1412294400, 'Asia/Tokyo'))",
        [[1412337600.0, "2014-10-03 00:00:00.000 UTC", 9]],
    ),
    (
        "date_trunc_date_diff",
        "presto",
        "sample_datasets",
        "SELECT date_diff('day', DATE '2014-10-01', DATE '2014-10-03'), "
        "CAST(date_trunc('month', DATE '2014-10-03') AS varchar)",
        [[2, "2014-10-01"]],
    ),
    # -- arrays, maps, UNNEST, lambdas -------------------------------------------------
    (
        "array_functions",
        "presto",
        "sample_datasets",
        "SELECT ARRAY[1, 2, 3], element_at(ARRAY[1, 2, 3], 2), element_at(ARRAY[1, 2, 3], -1), "
        "cardinality(ARRAY[1, 2, 3]), contains(ARRAY['a', 'b'], 'b'), split('a/b/c', '/')",
        [[[1, 2, 3], 2, 3, 3, True, ["a", "b", "c"]]],
    ),
    (
        "lambdas",
        "presto",
        "sample_datasets",
        "SELECT transform(ARRAY[1, 2, 3], x -> x * 2), filter(ARRAY[1, 2, 3, 4], x -> x % 2 = 0), "
        "reduce(ARRAY[1, 2, 3], 0, (s, x) -> s + x, s -> s)",
        [[[2, 4, 6], [2, 4], 6]],
    ),
    (
        "unnest_with_ordinality",
        "presto",
        "sample_datasets",
        "SELECT x, n FROM UNNEST(ARRAY['a', 'b', 'c']) WITH ORDINALITY AS t(x, n) ORDER BY n",
        [["a", 1], ["b", 2], ["c", 3]],
    ),
    (
        "cross_join_unnest_column",
        "presto",
        "corpus",
        "SELECT tag, count(*) FROM events CROSS JOIN UNNEST(tags) AS t(tag) GROUP BY 1 ORDER BY 1",
        _counter(t for e in EVENTS for t in e["tags"]),
    ),
    (
        "maps",
        "presto",
        "sample_datasets",
        "SELECT MAP(ARRAY['a', 'b'], ARRAY[1, 2])['b'], map_keys(MAP(ARRAY['a'], ARRAY[1])), "
        "element_at(MAP(ARRAY['a'], ARRAY[1]), 'a')",
        [[2, ["a"], 1]],
    ),
    (
        "map_column",
        "presto",
        "corpus",
        "SELECT props['color'] AS c, count(*) FROM events GROUP BY 1 ORDER BY 1",
        _counter(e["props"]["color"] for e in EVENTS),
    ),
    (
        "unnest_map",
        "presto",
        "corpus",
        "SELECT k, count(DISTINCT v) FROM events CROSS JOIN UNNEST(props) AS t(k, v) "
        "GROUP BY 1 ORDER BY 1",
        [["color", 2], ["size", 4]],
    ),
    # -- JSON -----------------------------------------------------------------------------
    (
        "json_extract_scalar",
        "presto",
        "corpus",
        "SELECT json_extract_scalar(payload, '$.user.name') AS name, count(*) FROM events "
        "GROUP BY 1 ORDER BY 1",
        _counter(json.loads(e["payload"])["user"]["name"] for e in EVENTS),
    ),
    (
        "json_array",
        "presto",
        "corpus",
        "SELECT sum(json_array_length(json_extract(payload, '$.items'))), "
        "CAST(json_parse('[1, 2]') AS ARRAY(BIGINT)), json_format(json_parse('{\"a\": 1}')) "
        "FROM events",
        [[sum(len(json.loads(e["payload"])["items"]) for e in EVENTS), [1, 2], '{"a":1}']],
    ),
    # -- arithmetic and types --------------------------------------------------------------
    (
        "integer_division",
        "presto",
        "sample_datasets",
        "SELECT 7 / 2, 7 / 2.0, -7 / 2, typeof(1), typeof(count(*)), typeof(1.5)",
        [[3, 3.5, -3, "integer", "bigint", "decimal(2,1)"]],
    ),
    # -- Hive ---------------------------------------------------------------------------
    ("hive_count", "hive", "sample_datasets", "SELECT COUNT(1) FROM www_access", [[5000]]),
    (
        "hive_from_unixtime",
        "hive",
        "sample_datasets",
        "SELECT from_unixtime(time, 'yyyy-MM-dd HH') AS h, COUNT(1) FROM www_access "
        "WHERE TD_TIME_RANGE(time, '2014-10-03 00:00:00', '2014-10-03 03:00:00') "
        "GROUP BY from_unixtime(time, 'yyyy-MM-dd HH') ORDER BY h",
        _counter(
            dt.datetime.fromtimestamp(r[0], dt.timezone.utc).strftime("%Y-%m-%d %H")
            for r in WWW
            if r[0] < DAY + 3 * 3600
        ),
    ),
    (
        "hive_td_time_format",
        "hive",
        "sample_datasets",
        "SELECT TD_TIME_FORMAT(time, 'yyyy-MM-dd HH', 'JST'), COUNT(1) FROM www_access "
        "GROUP BY TD_TIME_FORMAT(time, 'yyyy-MM-dd HH', 'JST') ORDER BY 1 LIMIT 24",
        _counter(_jst_hour(r[0]) for r in WWW),
    ),
    (
        "hive_lateral_view_explode",
        "hive",
        "sample_datasets",
        "SELECT part, COUNT(1) FROM www_access LATERAL VIEW explode(split(path, '/')) p AS part "
        "WHERE part <> '' GROUP BY part ORDER BY part LIMIT 5",
        _counter(p for r in WWW for p in r[3].split("/") if p)[:5],
    ),
    (
        "hive_collect_set",
        "hive",
        "sample_datasets",
        "SELECT sort_array(collect_set(method)) FROM www_access",
        [[sorted({r[8] for r in WWW})]],
    ),
    (
        "hive_percentile",
        "hive",
        "sample_datasets",
        "SELECT percentile(size, 0.5) FROM www_access",
        [[_median([float(s) for s in SIZES])]],
    ),
    (
        "hive_division_nvl_if",
        "hive",
        "sample_datasets",
        "SELECT 7 / 2, nvl(NULL, 'x'), if(1 > 2, 'a', 'b'), unix_timestamp('2014-10-03 00:00:00')",
        [[3.5, "x", "b", DAY]],
    ),
    (
        "hive_get_json_object",
        "hive",
        "corpus",
        "SELECT get_json_object(payload, '$.user.name') AS n, COUNT(1) FROM events "
        "GROUP BY get_json_object(payload, '$.user.name') ORDER BY n",
        _counter(json.loads(e["payload"])["user"]["name"] for e in EVENTS),
    ),
    (
        "hive_arrays_maps",
        "hive",
        "corpus",
        "SELECT SUM(size(tags)), SUM(IF(array_contains(tags, 't0'), 1, 0)), "
        "COUNT(DISTINCT props['size']) FROM events",
        [[80, sum(1 for e in EVENTS if "t0" in e["tags"]), 4]],
    ),
    (
        "hive_explode_map",
        "hive",
        "corpus",
        "SELECT k, COUNT(1) FROM events LATERAL VIEW explode(props) t AS k, v "
        "GROUP BY k ORDER BY k",
        [["color", 40], ["size", 40]],
    ),
    (
        "hive_window_rank",
        "hive",
        "sample_datasets",
        "SELECT symbol, close FROM (SELECT symbol, close, rank() OVER (PARTITION BY symbol "
        "ORDER BY close DESC) AS r FROM nasdaq) t WHERE r = 1 ORDER BY symbol LIMIT 3",
        [[s, max(r[6] for r in NASDAQ if r[1] == s)] for s in sorted({r[1] for r in NASDAQ})[:3]],
    ),
    (
        "hive_regexp_extract_no_match",
        "hive",
        "sample_datasets",
        "SELECT regexp_extract('abc', 'x(y)', 1), regexp_extract('abc', 'a(b)', 1)",
        [["", "b"]],
    ),
]


@pytest.mark.parametrize(
    ("engine", "db", "query", "expected"),
    [pytest.param(e, d, q, x, id=i) for i, e, d, q, x in CORPUS],
)
async def test_corpus_query(run: Runner, engine: str, db: str, query: str, expected: Any) -> None:
    rows = await run.rows(query, engine, db)
    if callable(expected):
        assert expected(rows), rows
    else:
        assert rows == expected


def test_corpus_size() -> None:
    engines = collections.Counter(engine for _, engine, *_ in CORPUS)
    assert engines["presto"] >= 40
    assert engines["hive"] >= 10


async def test_result_types_follow_td(run: Runner) -> None:
    query = (
        "SELECT count(*), sum(size), avg(size), max(host), code = 200, ARRAY['a'], "
        "MAP(ARRAY['k'], ARRAY[1]), from_unixtime(time), CAST(time AS integer) "
        "FROM www_access GROUP BY code, time ORDER BY time LIMIT 1"
    )
    assert await run.schema(query) == [
        ["_col0", "bigint"],
        ["_col1", "bigint"],
        ["_col2", "double"],
        ["_col3", "varchar"],
        ["_col4", "boolean"],
        ["_col5", "array(varchar)"],
        ["_col6", "map(varchar, integer)"],
        ["_col7", "timestamp(3) with time zone"],
        ["_col8", "integer"],
    ]
    hive = "SELECT COUNT(1), MAX(host), array('a'), map('k', 1), 1 > 0 FROM www_access"
    assert await run.schema(hive, "hive") == [
        ["_c0", "bigint"],
        ["_c1", "string"],
        ["_c2", "array<string>"],
        ["_c3", "map<string,int>"],
        ["_c4", "boolean"],
    ]
    assert await run.schema("SELECT host AS Host, Code FROM www_access LIMIT 1") == [
        ["host", "varchar"],
        ["code", "bigint"],
    ]


async def test_arrays_and_maps_in_each_result_format(run: Runner) -> None:
    shown = await run.job("SELECT ARRAY['a', 'b'] AS a, MAP(ARRAY['k'], ARRAY[1]) AS m, true AS b")
    assert shown["status"] == "success"
    url = f"{run.emu.url}/v3/job/result/{shown['job_id']}"
    bodies = {}
    for fmt in ("msgpack", "json", "csv", "tsv"):
        async with run.session.get(url, params={"format": fmt}) as resp:
            bodies[fmt] = await resp.read()
    assert msgpack.unpackb(bodies["msgpack"], raw=False) == [["a", "b"], {"k": 1}, True]
    assert json.loads(bodies["json"]) == [["a", "b"], {"k": 1}, True]
    assert bodies["csv"] == b'"[""a"",""b""]","{""k"":1}",true\r\n'
    assert bodies["tsv"] == b'["a","b"]\t{"k":1}\ttrue\n'


async def test_scheduled_time_and_intervals(run: Runner) -> None:
    """TD_SCHEDULED_TIME() is the time a schedule runs for; TD_INTERVAL counts from it."""
    query = (
        "SELECT TD_SCHEDULED_TIME(), "
        "count_if(TD_INTERVAL(time, '-1d')), count_if(TD_INTERVAL(time, '1d')), "
        "count_if(TD_INTERVAL(time, '-1h', 'JST')), count_if(TD_INTERVAL(time, '-2h/now')), "
        "count_if(TD_INTERVAL(time, '1M')), count_if(TD_INTERVAL(time, '-1d/-1d')) "
        "FROM www_access"
    )
    await run.call(
        "POST",
        "/v3/schedule/create/daily_report",
        data={"query": query, "database": "sample_datasets", "type": "presto", "cron": ""},
    )
    at = DAY + 86400 + 3600  # 2014-10-04 01:00:00 UTC
    ran = await run.call("POST", f"/v3/schedule/run/daily_report/{at}", data={"num": "1"})
    job_id = ran["jobs"][0]["job_id"]
    while True:
        shown = await run.call("GET", f"/v3/job/show/{job_id}")
        if shown["status"] in ("success", "error"):
            break
        await asyncio.sleep(0.01)
    assert shown["status"] == "success", shown["debug"]["stderr"]
    async with run.session.get(
        f"{run.emu.url}/v3/job/result/{job_id}", params={"format": "json"}
    ) as resp:
        row = json.loads(await resp.read())
    # scheduled 2014-10-04 01:00 UTC: -1d is 10-03 (every row), 1d is 10-04 (none), -1h in
    # JST is 09:00-10:00 JST (none), -2h/now is 23:00-01:00 UTC, 1M is October (every row),
    # -1d/-1d is 10-02 (none)
    last_hour = sum(1 for r in WWW if r[0] >= DAY + 86400 - 3600)
    assert row == [at, 5000, 0, 0, last_hour, 5000, 0]


async def test_insert_into_and_ctas_pipeline(run: Runner) -> None:
    """A pipeline's later query sees an earlier one's output; table/show follows the writes."""
    ctas = (
        "CREATE TABLE daily AS SELECT TD_TIME_FORMAT(time, 'yyyy-MM-dd HH') AS hour, "
        "count(*) AS hits, avg(size) AS mean FROM sample_datasets.www_access "
        "WHERE TD_TIME_RANGE(time, '2014-10-03', '2014-10-03 06:00:00') GROUP BY 1"
    )
    assert await run.rows(ctas, db="corpus") == [[6]]
    shown = await run.call("GET", "/v3/table/show/corpus/daily")
    assert shown["count"] == 6
    assert json.loads(shown["schema"]) == [["hour", "string"], ["hits", "long"], ["mean", "double"]]
    insert = (
        "INSERT INTO daily (hour, hits, mean) SELECT TD_TIME_FORMAT(time, 'yyyy-MM-dd HH'), "
        "count(*), avg(size) FROM sample_datasets.www_access "
        "WHERE TD_TIME_RANGE(time, '2014-10-03 06:00:00', '2014-10-03 08:00:00') GROUP BY 1"
    )
    assert await run.rows(insert, db="corpus") == [[2]]
    by_name = "INSERT INTO daily SELECT 'total' AS hour, 5000 AS hits, 0.5 AS mean, 1 AS time"
    assert await run.rows(by_name, db="corpus") == [[1]]
    assert (await run.call("GET", "/v3/table/show/corpus/daily"))["count"] == 9
    listed = await run.call("GET", "/v3/table/list/corpus")
    assert {t["name"]: t["count"] for t in listed["tables"]}["daily"] == 9
    rows = await run.rows("SELECT sum(hits) FROM daily WHERE hour <> 'total'", db="corpus")
    assert rows == [[sum(1 for r in WWW if r[0] < DAY + 8 * 3600)]]
    times = await run.rows("SELECT min(time), count(DISTINCT time) FROM daily", db="corpus")
    assert times[0][0] == 1  # the listed time; rows without one take the job's time
    # Hive: INSERT OVERWRITE replaces the rows
    overwrite = "INSERT OVERWRITE TABLE daily SELECT hour, hits, mean FROM daily WHERE hits > 1000"
    shown_job = await run.job(overwrite, "hive", "corpus")
    assert shown_job["status"] == "success", shown_job["debug"]["stderr"]
    assert shown_job["hive_result_schema"] is None
    assert (await run.call("GET", "/v3/table/show/corpus/daily"))["count"] == 1
    assert await run.rows("DELETE FROM daily WHERE hits > 1000", db="corpus") == [[1]]
    assert (await run.call("GET", "/v3/table/show/corpus/daily"))["count"] == 0
    assert await run.rows("CREATE TABLE IF NOT EXISTS daily AS SELECT 1 AS a", db="corpus") == [[0]]
    await run.rows("CREATE TABLE typed (n bigint, tags array(varchar))", db="corpus")
    shown = await run.call("GET", "/v3/table/show/corpus/typed")
    assert json.loads(shown["schema"]) == [["n", "long"], ["tags", "array<string>"]]
    assert await run.rows("INSERT INTO typed SELECT 1, ARRAY['x'], 7", db="corpus") == [[1]]
    assert await run.rows("SELECT n, tags, time FROM typed", db="corpus") == [[1, ["x"], 7]]
    await run.rows("DROP TABLE typed", db="corpus")
    listed = await run.call("GET", "/v3/table/list/corpus")
    assert "typed" not in {t["name"] for t in listed["tables"]}


@pytest.mark.parametrize(
    ("engine", "query", "db", "words"),
    [
        ("presto", "SELEC count(*) FROM www_access", "sample_datasets", ["line 1:", "SELEC"]),
        ("presto", "SELECT count(*) FROM nope", "sample_datasets", ["sample_datasets.nope"]),
        ("presto", "SELECT CAST('x' AS bigint)", "sample_datasets", ["Conversion Error"]),
        ("presto", "SELECT no_such FROM www_access", "sample_datasets", ["no_such"]),
        ("hive", "SELECT FROM", "sample_datasets", ["hive"]),
        (
            "presto",
            "CREATE TABLE mine AS SELECT 1 AS a",
            "sample_datasets",
            ["Access denied for the database sample_datasets"],
        ),
        ("presto", "INSERT INTO missing SELECT 1", "corpus", ["corpus.missing"]),
        (
            "presto",
            "SELECT TD_TIME_FORMAT(time, 'yyyy', 'Mars/Olympus') FROM www_access",
            "sample_datasets",
            ["Mars/Olympus"],
        ),
    ],
)
async def test_errors_end_the_job_with_a_message(
    run: Runner, engine: str, query: str, db: str, words: list[str]
) -> None:
    shown = await run.job(query, engine, db)
    assert shown["status"] == "error"
    assert shown["hive_result_schema"] is None
    for word in words:
        assert word in shown["debug"]["stderr"]
