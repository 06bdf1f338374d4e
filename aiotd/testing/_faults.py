"""Fault injection rules and request counters of the emulator."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FAULT_KINDS", "Counters", "Fault", "Faults"]

#: What a fault does to a matching request:
#: ``rate_limit`` 429 + Retry-After; ``error`` a 5xx (JSON or HTML body); ``reset`` TCP reset
#: before the request is applied; ``drop`` request applied, connection closed without an answer;
#: ``delay`` the answer comes ``delay`` seconds late; ``truncate`` Content-Length promises more
#: than is sent, then close; ``malformed`` a 200 whose JSON body is cut.
FAULT_KINDS = ("rate_limit", "error", "reset", "drop", "delay", "truncate", "malformed")

_ALIASES = {"429": ("rate_limit", None), "500": ("error", 500), "502": ("error", 502)}
_ALIASES["503"] = ("error", 503)


@dataclass
class Fault:
    """One rule: ``kind`` applied to requests matching ``match``, with ``rate`` and ``count``.

    ``match`` is ``"*"`` (every route), a route key such as ``"GET /v3/job/status/{job_id}"``,
    a path prefix such as ``"/v3/job/"``, or a method plus prefix (``"POST /v3/job/issue/"``).
    ``count`` (None = unlimited) is how many more requests it hits; ``rate`` the chance per match.
    """

    kind: str
    match: str = "*"
    rate: float = 1.0
    count: int | None = None
    status: int = 500
    html: bool = False
    retry_after: float = 1.0
    delay: float = 1.0
    id: int = 0
    hits: int = 0
    _method: str | None = field(default=None, repr=False)
    _pattern: str = field(default="*", repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {FAULT_KINDS}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        method, sep, pattern = self.match.partition(" ")
        if sep and method.isupper():
            self._method, self._pattern = method, pattern.strip() or "*"
        else:
            self._method, self._pattern = None, self.match

    def matches(self, method: str, canonical: str, path: str) -> bool:
        if self._method is not None and self._method != method:
            return False
        pattern = self._pattern
        return pattern == "*" or pattern == canonical or path.startswith(pattern)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class Faults:
    """The active fault rules; deterministic for a given ``seed``.

    Rules are tried in the order added; the first that matches and fires is applied.
    """

    def __init__(self, seed: int | None = 0) -> None:
        self._rules: list[Fault] = []
        self._rng = random.Random(seed)
        self._next_id = 1
        self.active = False

    def seed(self, seed: int | None) -> None:
        """Restart the random sequence used by ``rate``."""
        self._rng.seed(seed)

    def add(
        self,
        kind: str,
        match: str = "*",
        *,
        rate: float = 1.0,
        count: int | None = None,
        status: int | None = None,
        html: bool = False,
        retry_after: float = 1.0,
        delay: float = 1.0,
    ) -> Fault:
        """Add a rule; ``kind`` may also be ``"429"``, ``"500"``, ``"502"`` or ``"503"``."""
        alias = _ALIASES.get(kind)
        if alias is not None:
            kind, alias_status = alias
            status = status if status is not None else alias_status
        fault = Fault(
            kind=kind,
            match=match,
            rate=rate,
            count=count,
            status=status if status is not None else 500,
            html=html,
            retry_after=retry_after,
            delay=delay,
            id=self._next_id,
        )
        self._next_id += 1
        self._rules.append(fault)
        self.active = True
        return fault

    def rate_limit(self, match: str = "*", *, retry_after: float = 1.0, **kw: Any) -> Fault:
        """429 Too Many Requests with ``Retry-After: retry_after`` (seconds)."""
        return self.add("rate_limit", match, retry_after=retry_after, **kw)

    def server_error(
        self, match: str = "*", *, status: int = 500, html: bool = False, **kw: Any
    ) -> Fault:
        """A 5xx answer; ``html=True`` sends a proxy-style HTML page instead of TD's JSON."""
        return self.add("error", match, status=status, html=html, **kw)

    def reset(self, match: str = "*", **kw: Any) -> Fault:
        """TCP reset before the request is applied."""
        return self.add("reset", match, **kw)

    def drop(self, match: str = "*", **kw: Any) -> Fault:
        """Apply the request, then close the connection without answering."""
        return self.add("drop", match, **kw)

    def delay(self, match: str = "*", *, seconds: float = 1.0, **kw: Any) -> Fault:
        """Answer ``seconds`` late."""
        return self.add("delay", match, delay=seconds, **kw)

    def truncate(self, match: str = "*", **kw: Any) -> Fault:
        """Send half the body under a full Content-Length, then close."""
        return self.add("truncate", match, **kw)

    def malformed(self, match: str = "*", **kw: Any) -> Fault:
        """Answer with a cut (invalid) JSON body and a consistent Content-Length."""
        return self.add("malformed", match, **kw)

    def remove(self, fault: Fault | int) -> None:
        """Remove one rule (by object or id)."""
        fid = fault if isinstance(fault, int) else fault.id
        self._rules = [f for f in self._rules if f.id != fid]
        self.active = bool(self._rules)

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()
        self.active = False

    def __iter__(self) -> Iterator[Fault]:
        return iter(list(self._rules))

    def __len__(self) -> int:
        return len(self._rules)

    def pick(self, method: str, canonical: str, path: str) -> Fault | None:
        """The rule to apply to this request, if any (consumes one of its ``count``)."""
        for fault in self._rules:
            if fault.count is not None and fault.count <= 0:
                continue
            if not fault.matches(method, canonical, path):
                continue
            if fault.rate < 1.0 and self._rng.random() >= fault.rate:
                continue
            if fault.count is not None:
                fault.count -= 1
            fault.hits += 1
            return fault
        return None


class Counters(Mapping[str, int]):
    """Requests received per route key (``"GET /v3/job/status/{job_id}"``) plus ``total``.

    ``faults`` counts the faults injected per kind. Control endpoints are not counted.
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self.total = 0
        self.faults: dict[str, int] = {}

    def hit(self, key: str) -> None:
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        self.total += 1

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def __getitem__(self, key: str) -> int:
        return self._counts.get(key, 0)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._counts))

    def __len__(self) -> int:
        return len(self._counts)

    def __contains__(self, key: object) -> bool:
        return key in self._counts

    def snapshot(self) -> dict[str, Any]:
        """``{"total", "routes": {key: n}, "faults": {kind: n}}``, as the control endpoint shows."""
        return {"total": self.total, "routes": dict(self._counts), "faults": dict(self.faults)}

    def reset(self) -> None:
        """Zero every counter."""
        self._counts.clear()
        self.faults.clear()
        self.total = 0
