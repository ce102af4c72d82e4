"""What the gateway tells its operators: the readiness checks of ``GET /health/ready``, the
Prometheus text of ``GET /metrics`` and, asked with ``x-llmrelay-trace: 1``, a call's attempts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..core.trace import Attempt
from ..errors import LLMRelayError
from .keys import KeyStore
from .known import KnownValues
from .wire import shown

__all__ = [
    "TRACE_HEADER_BYTES",
    "TRACE_REASON_CHARS",
    "prometheus_text",
    "readiness",
    "trace_headers",
]


#: The most bytes of an ``x-llmrelay-trace`` value: a header line over 8,190 bytes is refused by
#: aiohttp's client (and others'), which would lose the whole answer; a long fallback chain
#: with long reasons passes it. Each reason is cut to ``TRACE_REASON_CHARS`` characters, and the
#: attempts that do not fit after that are left out, counted in a last entry: outcome
#: ``omitted``, ``deployment`` "+N more", ``number`` N.
TRACE_HEADER_BYTES = 4096
TRACE_REASON_CHARS = 200


def trace_headers(
    headers: Mapping[str, str], attempts: Sequence[Attempt], known: KnownValues | None = None
) -> dict[str, str]:
    """The ``x-llmrelay-trace`` header (``attempts``: a call's, an answer's or a failure's
    ``trace``) when the request asked for it: at most ``TRACE_HEADER_BYTES``; the reasons
    ``shown`` with the gateway's ``known`` values."""
    if headers.get("x-llmrelay-trace") != "1":
        return {}
    parts = [
        orjson.dumps(
            {
                "deployment": a.deployment,
                "outcome": a.outcome,
                "number": a.number,
                "error": a.error,
                "status": a.status,
                "latency_s": round(a.latency_s, 6),
                "reason": _reason(a, known),
            }
        )
        for a in attempts
    ]
    size = sum(len(p) for p in parts) + len(parts) + 1  # the brackets and commas
    if size > TRACE_HEADER_BYTES:
        room = TRACE_HEADER_BYTES - 2 - len(_omitted(len(parts)))  # brackets, largest marker
        kept = 0
        for p in parts:
            room -= len(p) + 1
            if room < 0:
                break
            kept += 1
        parts = [*parts[:kept], _omitted(len(parts) - kept)]
    return {"x-llmrelay-trace": (b"[" + b",".join(parts) + b"]").decode()}


def _omitted(n: int) -> bytes:
    """The last entry of a trace the header's size cut: ``n`` attempts are not shown."""
    return orjson.dumps(
        {
            "deployment": f"+{n} more",
            "outcome": "omitted",
            "number": n,
            "error": None,
            "status": None,
            "latency_s": 0.0,
            "reason": f"{n} more attempts do not fit the header ({TRACE_HEADER_BYTES} bytes)",
        }
    )


def _reason(a: Attempt, known: KnownValues | None) -> str | None:
    """An attempt's reason as a caller may see it: no URL, address or key (``shown``), at most
    ``TRACE_REASON_CHARS`` characters; and for a candidate the shared state store refused, not
    the store's error (its host and port: Redis' own connection errors name them)."""
    if a.reason is None:
        return None
    if a.error == "StateStoreError":
        return "the shared state store is unavailable"
    reason = shown(a.reason, None, known)
    if len(reason) > TRACE_REASON_CHARS:
        reason = reason[: TRACE_REASON_CHARS - 3] + "..."
    return reason


async def readiness(key_store: KeyStore | None, limiter: Any) -> tuple[dict[str, str], bool]:
    """Each configured store's check (``"ok"`` or the failure's type), and whether all passed."""
    checks: dict[str, str] = {}
    ok = True
    if key_store is not None:
        try:
            await key_store.by_id("key_readiness_probe")
            checks["keys"] = "ok"
        except LLMRelayError as exc:
            ok = False
            checks["keys"] = type(exc).__name__
    store = getattr(limiter, "store", None)
    if store is not None and hasattr(store, "ping"):
        try:
            await store.ping()
            checks["state"] = "ok"
        except Exception as exc:
            ok = False
            checks["state"] = type(exc).__name__
    return checks, ok


def _label(v: str) -> str:
    return v[:120].replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(stats: dict[tuple[str, str, int], list[float]], in_flight: int) -> str:
    """Requests and seconds by key, model and status; requests in flight."""
    lines = [
        "# HELP llmrelay_gateway_requests_total Requests answered, by key, model and status.",
        "# TYPE llmrelay_gateway_requests_total counter",
    ]
    rows = sorted(stats.items())
    for (who, model, status), (n, _s) in rows:
        lines.append(
            f'llmrelay_gateway_requests_total{{key="{_label(who)}",model="{_label(model)}",'
            f'status="{status}"}} {int(n)}'
        )
    lines += [
        "# HELP llmrelay_gateway_request_seconds_total Seconds spent answering, by key, model "
        "and status.",
        "# TYPE llmrelay_gateway_request_seconds_total counter",
    ]
    for (who, model, status), (_n, s) in rows:
        lines.append(
            f'llmrelay_gateway_request_seconds_total{{key="{_label(who)}",model="{_label(model)}",'
            f'status="{status}"}} {s:.6f}'
        )
    lines += [
        "# HELP llmrelay_gateway_in_flight Requests being answered now.",
        "# TYPE llmrelay_gateway_in_flight gauge",
        f"llmrelay_gateway_in_flight {in_flight}",
    ]
    return "\n".join(lines) + "\n"
