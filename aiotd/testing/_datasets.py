"""``sample_datasets``: the database every TD account has, with tables ``www_access`` (an Apache
access log of 5,000 rows) and ``nasdaq`` (daily stock prices), generated from fixed seeds.

The tables' metadata is there from the start; their rows are written on first use, so starting
an emulator costs nothing for them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from aiotd.testing._store import Store

__all__ = ["NASDAQ_ROWS", "SAMPLE_DATABASE", "WWW_ACCESS_ROWS", "add_sample_datasets"]

SAMPLE_DATABASE = "sample_datasets"
#: TD's www_access holds 5,000 rows; the query plan in samples/v3/job_show.json scans 5,000.
WWW_ACCESS_ROWS = 5_000
_SYMBOLS = (
    "AAPL", "ADBE", "AMAT", "AMGN", "AMZN", "ATRO", "ALOG", "ATAX", "CSCO", "CMCSA",
    "COST", "EBAY", "GILD", "GOOG", "INTC", "MSFT", "NVDA", "ORCL", "QCOM", "SBUX",
)  # fmt: skip
_TRADING_DAYS = 250
NASDAQ_ROWS = len(_SYMBOLS) * _TRADING_DAYS

# Times of the sample data: the database was created 2014-10-04 01:13:11 UTC
# (samples/v3/database_list.json); www_access covers the day before, 2014-10-03 UTC.
_CREATED = 1412385191.0
_WWW_START = 1412294400
_WWW_STEP = 86400 / WWW_ACCESS_ROWS
# Trading days end at 16:00 New York time (20:00 UTC in summer); the last is Friday 2014-10-03.
_NASDAQ_LAST_DAY = 1412366400

_WWW_SCHEMA = [
    ["user", "long"],
    ["host", "string"],
    ["path", "string"],
    ["referer", "string"],
    ["code", "long"],
    ["agent", "string"],
    ["size", "long"],
    ["method", "string"],
]
_NASDAQ_SCHEMA = [
    ["symbol", "string"],
    ["open", "double"],
    ["volume", "long"],
    ["high", "double"],
    ["low", "double"],
    ["close", "double"],
]
_PATHS = (
    "/category/electronics", "/category/books", "/category/games", "/category/software",
    "/category/toys", "/category/health", "/category/office", "/category/finance",
    "/item/electronics/{n}", "/item/books/{n}", "/item/games/{n}", "/item/software/{n}",
    "/search/?c=Electronics+Games", "/search/?c=Books+Software", "/", "/cart", "/checkout",
)  # fmt: skip
_REFERERS = (
    "-", "-", "-", "http://www.google.com/search?ie=UTF-8&q=google&sclient=psy-ab",
    "http://www.bing.com/search?q=electronics", "http://search.yahoo.com/search?p=books",
    "/category/electronics", "/category/books", "/item/games/{n}",
)  # fmt: skip
_AGENTS = (
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/37.0.2062.124 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_5) AppleWebKit/537.78.2 (KHTML, like Gecko) "
    "Version/7.0.6 Safari/537.78.2",
    "Mozilla/5.0 (Windows NT 6.3; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 8_0_2 like Mac OS X) AppleWebKit/600.1.4 "
    "(KHTML, like Gecko) Version/8.0 Mobile/12A405 Safari/600.1.4",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:32.0) Gecko/20100101 Firefox/32.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
_CODES = (200,) * 18 + (304, 404)


def _fill(template: str, rng: random.Random) -> str:
    return template.format(n=rng.randrange(1, 10_000)) if "{n}" in template else template


def www_access_rows() -> Iterator[tuple[Any, ...]]:
    """(time, user, host, path, referer, code, agent, size, method), oldest first."""
    rng = random.Random(20141003)
    hosts = [
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
        for _ in range(400)
    ]
    for i in range(WWW_ACCESS_ROWS):
        method = "POST" if rng.random() < 0.05 else "GET"
        code = rng.choice(_CODES)
        size = rng.randrange(30, 140) if code == 200 else 0
        yield (
            _WWW_START + int(i * _WWW_STEP),
            None,
            rng.choice(hosts),
            _fill(rng.choice(_PATHS), rng),
            _fill(rng.choice(_REFERERS), rng),
            code,
            rng.choice(_AGENTS),
            size,
            method,
        )


def _trading_days() -> list[int]:
    """The epoch of the close of each of the last ``_TRADING_DAYS`` weekdays, oldest first."""
    days: list[int] = []
    day = _NASDAQ_LAST_DAY
    while len(days) < _TRADING_DAYS:
        if (day // 86400 + 3) % 7 < 5:  # 1970-01-01 was a Thursday: Monday..Friday are 0..4
            days.append(day)
        day -= 86400
    return days[::-1]


def nasdaq_rows() -> Iterator[tuple[Any, ...]]:
    """(time, symbol, open, volume, high, low, close): one row per symbol and trading day."""
    rng = random.Random(19920825)
    prices = {symbol: rng.uniform(5.0, 500.0) for symbol in _SYMBOLS}
    for day in _trading_days():
        for symbol in _SYMBOLS:
            last = prices[symbol]
            open_ = round(last * (1 + rng.gauss(0, 0.005)), 4)
            close = round(max(open_ * (1 + rng.gauss(0, 0.02)), 0.01), 4)
            high = round(max(open_, close) * (1 + abs(rng.gauss(0, 0.01))), 4)
            low = round(min(open_, close) * (1 - abs(rng.gauss(0, 0.01))), 4)
            prices[symbol] = close
            volume = int(rng.lognormvariate(13, 1.2))
            yield (day, symbol, open_, volume, high, low, close)


def add_sample_datasets(store: Store) -> None:
    """Create ``sample_datasets`` (query only, as TD's) with its two tables, rows to come."""
    store.create_database(SAMPLE_DATABASE, created_at=_CREATED, permission="query_only")
    store.add_prefilled_table(
        SAMPLE_DATABASE,
        "www_access",
        schema=_WWW_SCHEMA,
        count=WWW_ACCESS_ROWS,
        created_at=_CREATED,
        last_log_timestamp=float(_WWW_START + int((WWW_ACCESS_ROWS - 1) * _WWW_STEP)),
        rows=www_access_rows,
    )
    store.add_prefilled_table(
        SAMPLE_DATABASE,
        "nasdaq",
        schema=_NASDAQ_SCHEMA,
        count=NASDAQ_ROWS,
        created_at=_CREATED,
        last_log_timestamp=float(_NASDAQ_LAST_DAY),
        rows=nasdaq_rows,
    )
