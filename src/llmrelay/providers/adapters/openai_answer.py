"""Reading an OpenAI-style answer's parts that both its plain and streamed forms carry: usage
(with cached, cache-write and reasoning tokens), reasoning text in each vendor's field, Groq's
body request id, and the typed error for a refusal or a content filter (Azure's categories).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import ContentFilteredError
from ...types import FinishReason, Usage, make_usage
from ..table import Deployment
from .base import MAX_COUNT, as_int, make_error, redact

__all__ = [
    "FINISH",
    "filtered_categories",
    "filtered_error",
    "groq_request_id",
    "parts_text",
    "reasoning_of",
    "usage_from",
]

_new = object.__new__

#: Finish reasons as OpenAI-style servers name them, ours.
FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "eos": "stop",
}


def usage_from(u: Any) -> Usage:
    if not isinstance(u, dict):
        return make_usage()
    # ``as_int`` inline where the value is a plain int or missing (what providers send).
    get = u.get
    ptd = get("prompt_tokens_details")
    ctd = get("completion_tokens_details")
    cached = written = 0
    if ptd.__class__ is dict:
        v = ptd.get("cached_tokens")
        cached = v if v.__class__ is int and 0 <= v < MAX_COUNT else as_int(v)
        # OpenRouter: tokens written to the prompt cache, part of prompt_tokens like
        # cached_tokens (its "Usage Accounting" page); OpenAI and DeepSeek report none.
        v = ptd.get("cache_write_tokens")
        written = v if v.__class__ is int and 0 <= v < MAX_COUNT else as_int(v)
    if not cached:
        v = get("prompt_cache_hit_tokens")  # DeepSeek
        if v is not None:
            cached = as_int(v)
    reasoning = 0
    if ctd.__class__ is dict:
        v = ctd.get("reasoning_tokens")
        reasoning = v if v.__class__ is int and 0 <= v < MAX_COUNT else as_int(v)
    inp = get("prompt_tokens")
    out = get("completion_tokens")
    usage: Usage = _new(Usage)  # ``Usage(...)`` without its ``__init__`` (tests: equal)
    usage.input_tokens = inp if inp.__class__ is int and 0 <= inp < MAX_COUNT else as_int(inp)
    usage.output_tokens = out if out.__class__ is int and 0 <= out < MAX_COUNT else as_int(out)
    usage.cached_tokens = cached
    usage.cache_write_tokens = written
    usage.reasoning_tokens = reasoning
    usage.estimated = False
    return usage


def reasoning_of(d: Mapping[str, Any]) -> str:
    """The reasoning text of a message or delta: ``reasoning`` (OpenRouter, Groq, vLLM),
    ``reasoning_content`` (DeepSeek, vLLM, many hosts) or the text of OpenRouter's
    ``reasoning_details`` (``reasoning.text`` / ``reasoning.summary`` items; encrypted items have
    none)."""
    r = d.get("reasoning")
    if r.__class__ is str and r:
        return r
    r = d.get("reasoning_content")
    if r.__class__ is str and r:
        return r
    details = d.get("reasoning_details")
    if details.__class__ is list and details:
        out = []
        for item in details:
            if isinstance(item, dict):
                t = item.get("text") if item.get("type") == "reasoning.text" else None
                if t is None and item.get("type") == "reasoning.summary":
                    t = item.get("summary")
                if isinstance(t, str):
                    out.append(t)
        return "".join(out)
    return ""


def groq_request_id(data: Mapping[str, Any]) -> str | None:
    """Groq's request id in the body (``x_groq.id``), for an answer without the header."""
    xg = data.get("x_groq")
    rid = xg.get("id") if isinstance(xg, dict) else None
    return rid if isinstance(rid, str) and rid else None


def filtered_categories(choice: Mapping[str, Any]) -> str | None:
    """Azure's ``content_filter_results``: the names of the categories that filtered."""
    results = choice.get("content_filter_results")
    if not isinstance(results, dict):
        return None
    names = [
        str(k) for k, v in results.items() if isinstance(v, dict) and v.get("filtered") is True
    ]
    return ", ".join(sorted(names)) or None


def filtered_error(
    dep: Deployment,
    headers: Mapping[str, str],
    *,
    refusal: str | None,
    categories: str | None,
    partial_text: str,
    response_id: str | None = None,
) -> ContentFilteredError:
    """The error for an answer the model refused (``refusal`` text) or the provider's content
    filter stopped (``finish_reason: content_filter``, Azure's ``categories``)."""
    explanation: str | None
    if refusal is not None:
        message = f"the model refused to answer: {refusal}"
        category, explanation = "refusal", refusal
    else:
        what = f" ({categories})" if categories else ""
        message = (
            f"the provider's content filter stopped the answer{what}: finish_reason "
            "content_filter; rephrase the request or configure content_filter_fallbacks"
        )
        category, explanation = "content_filter", categories
    if response_id:
        message += f" [response id {response_id}]"
    err = make_error(ContentFilteredError, message, status=None, headers=headers, dep=dep)
    assert isinstance(err, ContentFilteredError)
    err.category = category
    err.explanation = redact(explanation, dep) if explanation else None
    err.partial_text = redact(partial_text, dep) if partial_text else ""
    return err


def parts_text(parts: list[Any]) -> str:
    """The text of content given as parts (``[{"type": "text", "text": ...}, ...]``)."""
    return "".join(
        t
        for p in parts
        if isinstance(p, dict) and p.get("type") == "text"
        if (t := p.get("text", "")).__class__ is str
    )
