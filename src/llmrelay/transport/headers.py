"""Reading the HTTP headers that steer retries: ``retry-after-ms``, ``retry-after``,
``x-should-retry`` and request ids.

Malformed values ("inf", "nan", "-10", absurdly large numbers, bad or past dates) count as
absent, as in the official SDKs.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = [
    "MAX_HEADER_DELAY",
    "get_header",
    "header_problem",
    "parse_retry_after",
    "request_id_from",
    "should_retry_header",
]

#: Values above this (seconds) are treated as malformed rather than obeyed.
MAX_HEADER_DELAY = 7 * 24 * 3600.0

#: RFC 9110 ``token``: what a header name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def header_problem(name: object, value: object) -> str | None:
    """What is wrong with one header a caller asks us to send, or None. Names are RFC 9110
    tokens; values are strings without CR, LF or NUL (which would split the request's headers:
    a header injection). The answer never shows the value: it may be a key."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        return "is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if "\r" in value or "\n" in value or "\0" in value:
        return (
            "holds a line break or NUL character (not shown), which would split the "
            "request's headers; remove it"
        )
    return None


_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "cf-ray")


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup of a lower-case ``name``. aiohttp's header mappings already are
    case-insensitive; plain dicts (mock transports, user code) are scanned."""
    v: str | None = headers.get(name)
    if v is None and isinstance(headers, dict):
        for k, val in headers.items():
            if k.lower() == name:
                return str(val)
    return v


def _seconds(value: str, scale: float) -> float | None:
    try:
        f = float(value.strip())
    except (ValueError, AttributeError):
        return None
    if math.isnan(f) or math.isinf(f) or f < 0:
        return None
    f = f * scale + 0.0  # + 0.0 turns "-0" into 0.0
    if f > MAX_HEADER_DELAY:
        return None
    return f


def parse_retry_after(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait as the server asked, or None when absent or malformed.

    ``retry-after-ms`` wins over ``retry-after``; ``retry-after`` may be seconds or an HTTP
    date (a date in the past counts as absent).
    """
    if not headers:
        return None
    ms = get_header(headers, "retry-after-ms")
    if ms is not None:
        v = _seconds(ms, 0.001)
        if v is not None:
            return v
    ra = get_header(headers, "retry-after")
    if ra is None:
        return None
    v = _seconds(ra, 1.0)
    if v is not None:
        return v
    try:
        when = parsedate_to_datetime(ra.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no zone information (RFC 5322)
        when = when.replace(tzinfo=UTC)
    try:
        delta = when.timestamp() - now()
    except (OverflowError, OSError, ValueError):
        return None
    if delta <= 0 or delta > MAX_HEADER_DELAY or math.isnan(delta):
        return None
    return delta


def should_retry_header(headers: Mapping[str, str]) -> bool | None:
    """``x-should-retry: true|false`` as a bool; None when absent or anything else."""
    v = get_header(headers, "x-should-retry") if headers else None
    if v is None:
        return None
    v = v.strip().lower()
    if v == "true":
        return True
    if v == "false":
        return False
    return None


def request_id_from(headers: Mapping[str, str]) -> str | None:
    if not headers:
        return None
    for name in _REQUEST_ID_HEADERS:
        v = headers.get(name)  # ``get_header``: its scan only for a dict without the name
        if v is None and isinstance(headers, dict):
            v = get_header(headers, name)
        if v:
            return v
    return None
