"""Google Gemini: error answers as typed errors.

Gemini's errors are ``{"error": {"code", "message", "status", "details": [...]}}``; the details
say more than the status: ``google.rpc.ErrorInfo`` reasons (a bad key comes as 400
``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``), ``google.rpc.QuotaFailure`` violations (a
``...PerDay`` quota is used up for the day) and ``google.rpc.RetryInfo`` (how long to wait). A
blocked prompt is a 200 answer with ``promptFeedback.blockReason`` and no candidates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ...errors import (
    APIError,
    AuthenticationError,
    ContentFilteredError,
    ContextWindowExceededError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitedError,
)
from ...transport.headers import parse_retry_after
from ..table import Deployment
from . import base
from .base import error_body, error_for_status, make_error, status_message

__all__ = ["check_prompt_blocked", "flagged_ratings", "in_band_error", "map_error"]

_CONTEXT_MARKERS = ("input token count", "exceeds the maximum number of tokens", "too many tokens")
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_NOT_FOUND"})
_AUTH_MARKERS = ("api key not valid", "api key expired", "api key not found", "api_key_invalid")
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def map_error(status: int, headers: Mapping[str, str], body: bytes, dep: Deployment) -> APIError:
    """The typed error for a Gemini error answer (``GeminiAdapter.map_error``)."""
    data = error_body(body)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # the array form of streamGenerateContent
    err = data.get("error") if isinstance(data, dict) else None
    message = gstatus = ""
    details: list[Any] = []
    if isinstance(err, dict):
        message = str(err.get("message") or "")
        gstatus = str(err.get("status") or "")
        if isinstance(err.get("details"), list):
            details = err["details"]
    elif isinstance(err, str):
        message = err
    if not message:
        message = status_message(status, body)
    reasons = {
        str(d.get("reason"))
        for d in details
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.ErrorInfo")
    }
    quota_ids = [
        str(v.get("quotaId") or "")
        for d in details
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.QuotaFailure")
        for v in d.get("violations") or ()
        if isinstance(v, dict)
    ]
    low = message.lower()
    retry_after = parse_retry_after(headers)
    if retry_after is None:
        retry_after = _retry_delay(details)
    cls: type[APIError]
    if status == 429 or gstatus == "RESOURCE_EXHAUSTED":
        daily = [q for q in quota_ids if "PerDay" in q]
        if daily:
            cls = QuotaExhaustedError
            message += (
                f" [daily quota {daily[0]} is used up: it resets once a day; raise the quota "
                "or use another project or model]"
            )
        else:
            cls = RateLimitedError
    elif reasons & _AUTH_REASONS or any(m in low for m in _AUTH_MARKERS):
        cls = AuthenticationError  # Gemini answers 400 INVALID_ARGUMENT for a bad key
    elif gstatus == "FAILED_PRECONDITION":
        # "free tier is not available in your country; enable billing": account setup.
        cls = PermissionDeniedError
    elif status in (400, 413) and any(m in low for m in _CONTEXT_MARKERS):
        cls = ContextWindowExceededError
    elif status >= 500 and "overloaded" in low:
        cls = OverloadedError
    else:
        cls = error_for_status(status)
    if gstatus:
        message = f"{gstatus}: {message}"
    return make_error(
        cls,
        message,
        status=status,
        headers=headers,
        dep=dep,
        body=data if data else None,
        retry_after=retry_after,
    )


def in_band_error(obj: dict[str, Any], headers: Mapping[str, str], dep: Deployment) -> APIError:
    """The typed error for an error object inside a 200 body or stream."""
    return base.in_band_error(map_error, obj, orjson.dumps(obj), headers, dep)


def flagged_ratings(ratings: Any) -> list[str]:
    """The categories of ``safetyRatings`` that were blocked or rated MEDIUM/HIGH, e.g.
    ``["dangerous_content (HIGH)"]``."""
    out = []
    for r in ratings if isinstance(ratings, list) else ():
        if not isinstance(r, dict):
            continue
        prob = r.get("probability")
        if r.get("blocked") or prob in ("MEDIUM", "HIGH"):
            name = str(r.get("category", "")).removeprefix("HARM_CATEGORY_").lower()
            out.append(f"{name} ({prob})" if isinstance(prob, str) else name)
    return out


def check_prompt_blocked(data: dict[str, Any], dep: Deployment, headers: Mapping[str, str]) -> None:
    """Raise ``ContentFilteredError`` when Gemini blocked the prompt (no candidates):
    ``category`` is the ``blockReason``, ``explanation`` Vertex's ``blockReasonMessage`` or the
    flagged safety ratings."""
    pf = data.get("promptFeedback")
    if data.get("candidates") or not isinstance(pf, dict) or not pf.get("blockReason"):
        return
    reason = str(pf["blockReason"])
    said = pf.get("blockReasonMessage")
    flagged = ", ".join(flagged_ratings(pf.get("safetyRatings")))
    explanation = said if isinstance(said, str) and said else flagged or None
    detail = f" ({explanation})" if explanation else ""
    err = make_error(
        ContentFilteredError,
        f"Gemini blocked the prompt: blockReason {reason}{detail}",
        status=None,
        headers=headers,
        dep=dep,
        body=data,
    )
    assert isinstance(err, ContentFilteredError)
    err.category, err.explanation = reason, explanation
    raise err


def _retry_delay(details: list[Any]) -> float | None:
    for d in details:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            m = _DELAY.match(str(d.get("retryDelay") or ""))
            if m:
                return float(m.group(1))
    return None
