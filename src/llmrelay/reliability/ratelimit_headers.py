"""Reading the rate-limit headers providers send with every answer.

- OpenAI and compatibles (Groq, Together, ...): ``x-ratelimit-limit-requests``,
  ``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` and the same for
  ``-tokens``; resets are durations like ``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``.
- Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,
  reset}``; resets are RFC 3339 times.
- ``retry-after`` / ``retry-after-ms`` on a 429.

Malformed values count as absent (as the retry logic treats them).

A block learned from these headers never outlasts the provider's own limit period -- the
families above are per-minute limits, so their resets count for at most 60 s; explicit
``-minute`` / ``-hour`` / ``-day`` families (``x-ratelimit-reset-requests-day``, as Cerebras
sends) for at most that period -- nor ``max_block`` (60 s by default), which also caps a
429's ``retry-after``. A single absurd header ("160h") cannot take a deployment away for days.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ..transport.headers import MAX_HEADER_DELAY, parse_retry_after

__all__ = [
    "DEFAULT_MAX_BLOCK",
    "HeaderInfo",
    "limit_values",
    "parse_duration",
    "parse_reset",
    "read_limit_headers",
]

Vector = tuple[float, float, float, float]

#: Seconds a learned block lasts at most unless configured otherwise (``max_block``).
DEFAULT_MAX_BLOCK = 60.0

_MINUTE, _HOUR, _DAY = 60.0, 3600.0, 86400.0

#: Per dimension a provider reports (index into rpm, tpm, itpm, otpm, or -1 for a limit over a
#: longer period, which only blocks): its limit, remaining and reset headers and the period the
#: limit is counted over -- OpenAI's, Anthropic's, then explicit per-period families. Spelled
#: out once, not on every call.
_FAMILIES: tuple[tuple[int, str, str, str, float], ...] = (
    *(
        (
            i,
            f"x-ratelimit-limit-{k}",
            f"x-ratelimit-remaining-{k}",
            f"x-ratelimit-reset-{k}",
            _MINUTE,
        )
        for k, i in (("requests", 0), ("tokens", 1))
    ),
    *(
        (
            i,
            f"anthropic-ratelimit-{k}-limit",
            f"anthropic-ratelimit-{k}-remaining",
            f"anthropic-ratelimit-{k}-reset",
            _MINUTE,
        )
        for k, i in (("requests", 0), ("tokens", 1), ("input-tokens", 2), ("output-tokens", 3))
    ),
    *(
        (
            i if period == _MINUTE else -1,
            f"x-ratelimit-limit-{k}-{p}",
            f"x-ratelimit-remaining-{k}-{p}",
            f"x-ratelimit-reset-{k}-{p}",
            period,
        )
        for k, i in (("requests", 0), ("tokens", 1))
        for p, period in (("minute", _MINUTE), ("hour", _HOUR), ("day", _DAY))
    ),
)

#: Which family of ``_FAMILIES`` each of their header names belongs to.
_FAMILY_OF: dict[str, int] = {name: n for n, family in enumerate(_FAMILIES) for name in family[1:4]}
_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after")
#: Header names as received (any case) -> when it is one of ours (starts with one of
#: ``_PREFIXES``), the name in lower case and its family in ``_FAMILIES`` (-1: none), else ():
#: answers repeat the same few names, so each is looked at once, not on every answer. At most
#: ``_MAX_NAMES`` names are kept.
_NAMES: dict[str, tuple[str, int] | tuple[()]] = {}
_MAX_NAMES = 1024

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    #: Seconds the deployment must not be called (0: no block).
    block: float
    #: Limits per minute the provider announced (0: none), per dimension.
    learned: Vector
    #: Units the provider counts as used in its current window (-1: unknown).
    used: Vector


def parse_duration(value: str) -> float | None:
    """``"6m0s"`` -> 360.0, ``"1.5s"`` -> 1.5, ``"20ms"`` -> 0.02, ``"3"`` -> 3.0; None if
    malformed, negative or absurdly long."""
    v = value.strip()
    if not v:
        return None
    try:
        total = float(v)
    except ValueError:
        pos = 0
        total = 0.0
        for m in _PART.finditer(v):
            if m.start() != pos:
                return None
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(v) or pos == 0:
            return None
    if not math.isfinite(total) or total < 0 or total > MAX_HEADER_DELAY:
        return None
    return total


def parse_reset(value: str, now: Callable[[], float] = time.time) -> float | None:
    """Seconds until a reset given as an RFC 3339 time (Anthropic) or a duration (OpenAI)."""
    v = value.strip()
    if "T" in v and "-" in v:
        try:
            when = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            return None
        delta = when.timestamp() - now()
        if not math.isfinite(delta) or delta > MAX_HEADER_DELAY:
            return None
        return max(0.0, delta)
    return parse_duration(v)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        f = float(value.strip())
    except ValueError:
        return None
    return f if math.isfinite(f) and f >= 0 else None


def _our_name(name: str) -> tuple[str, int] | tuple[()]:
    """``_NAMES[name]``, worked out (and remembered while there is room)."""
    lower = name.lower()
    ours = (lower, _FAMILY_OF.get(lower, -1)) if lower.startswith(_PREFIXES) else ()
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[name] = ours
    return ours


def read_limit_headers(
    headers: Mapping[str, str],
    *,
    rate_limited: bool = False,
    now: Callable[[], float] = time.time,
    max_block: float = DEFAULT_MAX_BLOCK,
) -> HeaderInfo | None:
    """What the headers say about the deployment's limits, or None if they say nothing.

    The block is at most the period of the limit that asked for it and at most ``max_block``
    seconds; a learned limit below one unit per minute is garbage and ignored.
    """
    values = limit_values(headers, rate_limited, max_block, now)
    return None if values is None else HeaderInfo(*values)


def limit_values(
    headers: Mapping[str, str],
    rate_limited: bool = False,
    max_block: float = DEFAULT_MAX_BLOCK,
    now: Callable[[], float] = time.time,
) -> tuple[float, Vector, Vector] | None:
    """:func:`read_limit_headers`' answer as a tuple: ``(block, learned, used)``."""
    found: dict[str, str] = {}
    families: list[int] = []  # the families with a header here: only they can say anything
    names = _NAMES
    for k, v in headers.items():
        ours = names.get(k)
        if ours is None:
            ours = _our_name(k)
        if ours:
            found[ours[0]] = v
            if ours[1] >= 0 and ours[1] not in families:
                families.append(ours[1])
    if not found:
        return None
    learned = [0.0, 0.0, 0.0, 0.0]
    used = [-1.0, -1.0, -1.0, -1.0]
    block = 0.0
    if len(families) > 1:
        families.sort()  # in their order: a later family's limit replaces an earlier one's
    for n in families:
        i, lim_h, rem_h, reset_h, period = _FAMILIES[n]
        remaining = _number(found.get(rem_h))
        if i >= 0:
            limit = _number(found.get(lim_h))
            if limit is not None and limit >= 1:
                learned[i] = limit
                if remaining is not None:
                    spent = limit - remaining
                    used[i] = spent if spent > 0.0 else 0.0  # max(0.0, spent)
        if remaining is not None and remaining < 1:
            raw = found.get(reset_h)
            reset = parse_reset(raw, now) if raw is not None else None
            if reset is not None:
                # A limit counted over a minute is whole again within the minute, whatever
                # the header claims.
                block = max(block, min(reset, period))
    if rate_limited:
        ra = parse_retry_after(found, now)
        if ra is not None:
            block = max(block, ra)
    if max_block < block:  # min(block, max_block)
        block = max_block
    return block, tuple(learned), tuple(used)  # type: ignore[return-value]
