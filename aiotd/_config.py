"""Configuration: sites and endpoints, environment variables, timeouts, retry policy."""

from __future__ import annotations

import ipaddress
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["SITES", "RetryPolicy", "Timeouts", "resolve_endpoints"]

#: site -> (core API host, workflow API host); v3-api.md §4.2 and workflow-api.md §6.
#: The ap03 core host follows the other sites' pattern; no client source confirms it.
SITES: dict[str, tuple[str, str]] = {
    "us": ("api.treasuredata.com", "api-workflow.treasuredata.com"),
    "jp": ("api.treasuredata.co.jp", "api-workflow.treasuredata.co.jp"),
    "eu01": ("api.eu01.treasuredata.com", "api-workflow.eu01.treasuredata.com"),
    "ap02": ("api.ap02.treasuredata.com", "api-workflow.ap02.treasuredata.com"),
    "ap03": ("api.ap03.treasuredata.com", "api-workflow.ap03.treasuredata.com"),
}


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Per-request time limits in seconds; every one is set by default.

    ``connect``: to open a connection (pool wait included); ``read``: between two reads of
    the answer; ``total``: for a whole non-streaming request, body included. Streaming
    downloads are bounded by ``read`` only, since a large result may take long in total.
    """

    connect: float = 15.0
    read: float = 60.0
    total: float = 300.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"Timeouts.{name} must be a positive number of seconds")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How failed requests are retried: exponential backoff with full jitter.

    ``max_attempts`` counts the first try; ``max_elapsed`` caps the time spent retrying one
    call; a ``Retry-After`` longer than ``max_retry_after`` is not waited for: the error is
    raised at once so the caller can decide.
    """

    max_attempts: int = 7
    initial_delay: float = 0.5
    max_delay: float = 30.0
    max_elapsed: float = 300.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError("RetryPolicy.max_attempts must be an int")
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1 (1 means no retry)")
        for name in ("initial_delay", "max_delay", "max_elapsed", "max_retry_after"):
            value = getattr(self, name)
            # NaN compares false with everything: it would pass a plain ``< 0`` check
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"RetryPolicy.{name} must be >= 0 seconds (finite)")

    def delay(self, retry: int) -> float:
        """The backoff before retry number ``retry`` (0 for the first): full jitter, uniform
        between 0 and ``initial_delay * 2**retry`` capped at ``max_delay``."""
        cap = min(self.max_delay, self.initial_delay * 2.0 ** min(max(retry, 0), 64))
        return random.uniform(0, cap)

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that sends every request once."""
        return cls(max_attempts=1)


def normalize_endpoint(value: str) -> str:
    """``host`` -> ``https://host``; a value with a scheme is kept; no trailing slash."""
    value = value.strip()
    if not value:
        raise ValueError("an endpoint must not be empty")
    if "://" not in value:
        value = "https://" + value
    scheme = value.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"endpoint scheme must be http or https, not {scheme!r}")
    return value.rstrip("/")


def is_loopback(url: str) -> bool:
    """Whether ``url`` (with its scheme) names this machine: localhost or a loopback address."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_endpoints(
    site: str | None,
    endpoint: str | None,
    workflow_endpoint: str | None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Arguments first, then ``TD_API_SERVER`` / ``TD_WORKFLOW_SERVER``, then the site."""
    env = os.environ if environ is None else environ
    site_name = (site or env.get("TD_SITE") or "us").lower()
    if site_name not in SITES:
        raise ValueError(f"unknown site {site_name!r}; known sites: {', '.join(SITES)}")
    core_host, workflow_host = SITES[site_name]
    core = endpoint or env.get("TD_API_SERVER") or core_host
    workflow = workflow_endpoint or env.get("TD_WORKFLOW_SERVER") or workflow_host
    return normalize_endpoint(core), normalize_endpoint(workflow)


def resolve_apikey(apikey: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The key given, else ``TD_API_KEY``; an absent key is an error before any request."""
    env = os.environ if environ is None else environ
    key = apikey if apikey is not None else env.get("TD_API_KEY")
    if not key or not key.strip():
        raise ValueError("no API key: pass apikey= or set TD_API_KEY")
    key = key.strip()
    if any(c in key for c in "\r\n"):
        raise ValueError("the API key must not contain line breaks")
    return key
