"""The one encoding of a :class:`~llmrelay.types.Response` as JSON, shared by everything that
stores answers: the response cache (``reliability/cache.py``), the batch journal
(``batch/journal.py``) and the request log's content columns (``observe/requestlog/rows.py``).

:func:`response_to_dict` gives a plain dict (JSON types only) marked with its format version
(``"v": 3``); :func:`response_from_dict` rebuilds the ``Response`` and is strict: a record of
another version, with a missing or unknown key, or a value of the wrong type raises
``InvalidResponseError`` naming the key, so a damaged entry is never served as an answer.

What a record carries: every field of ``Response`` that describes the answer -- text, tool
calls, finish reasons, usage (``estimated`` included), total usage, provider, model, alias, ids,
latencies, cost, ``cache_hit``, adjusted parameters, reasoning text and reasoning parts, tool-call
signatures. Not carried (:data:`NOT_CARRIED`):
``object`` (an instance of the caller's ``response_model``: the batch re-validates the text),
``trace`` (this process's record of its attempts, with live error objects) and ``headers`` (the
HTTP headers of one attempt; they may hold cookies).

``Cost`` is a catalog type that this module (below the catalog) cannot import: the decoder takes
it as ``cost_type``; without it a stored cost is checked and left out.

:func:`dumps` / :func:`loads` are orjson with the one ``default`` (:func:`json_default`: bytes
as base64, pydantic models and our dataclasses as dicts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final, cast, get_args

import orjson

from ..errors import InvalidResponseError
from ..types import FinishReason, ReasoningPart, Response, ToolCall, Usage
from ..types import _json_default as json_default

__all__ = [
    "FORMAT",
    "NOT_CARRIED",
    "dumps",
    "json_default",
    "loads",
    "messages_to_json",
    "response_from_dict",
    "response_to_dict",
]

#: The version written as ``"v"``. Version 1 records (before reasoning and tool-call
#: signatures were carried) are read as having none, version 2 ones (before reasoning parts
#: carried ``before_call``) as having no ``before_call``; records of any other version are
#: refused.
FORMAT: Final = 3
#: The ``Response`` fields a record does not carry (see the module docstring).
NOT_CARRIED: Final = frozenset(("object", "trace", "headers"))

_FINISH = frozenset(get_args(FinishReason))
_USAGE_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_USAGE_KEYS = frozenset((*_USAGE_COUNTS, "estimated"))
#: The fields of ``llmrelay.Cost``: amounts (a number or None), then the rest.
_COST_AMOUNTS = ("usd", "input_usd", "output_usd", "cached_usd", "reasoning_usd")
_COST_KEYS = frozenset((*_COST_AMOUNTS, "known", "reason", "estimated"))
_TOOL_CALL_KEYS = frozenset(("id", "name", "arguments", "signature"))
_REASONING_KEYS = frozenset(
    ("text", "signature", "data", "id", "provider", "redacted", "before_call")
)
_KEYS = frozenset(
    (
        "v",
        "text",
        "tool_calls",
        "finish_reason",
        "raw_finish_reason",
        "usage",
        "total_usage",
        "provider",
        "model",
        "alias",
        "id",
        "request_id",
        "latency_s",
        "time_to_first_token_s",
        "cost",
        "cache_hit",
        "adjusted_params",
        "reasoning",
        "reasoning_parts",
    )
)


def dumps(obj: Any, *, sort_keys: bool = False) -> bytes:
    """JSON bytes of ``obj`` (orjson with :func:`json_default`); ``TypeError`` if it cannot."""
    if sort_keys:
        return orjson.dumps(obj, default=json_default, option=orjson.OPT_SORT_KEYS)
    return orjson.dumps(obj, default=json_default)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The value of JSON text; ``orjson.JSONDecodeError`` (a ``ValueError``) if it is not JSON."""
    return orjson.loads(data)


_N_KEYS: Final = len(_KEYS)

# --------------------------------------------------------------------------- encoding


def _usage(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cached_tokens": u.cached_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "estimated": u.estimated,
    }


def _cost(cost: Any) -> dict[str, Any] | None:
    """A ``Cost`` as a dict; None for no cost or an object that is not cost-shaped."""
    if cost is None:
        return None
    try:
        return {k: getattr(cost, k) for k in sorted(_COST_KEYS)}
    except AttributeError:
        return None


def response_to_dict(resp: Response) -> dict[str, Any]:
    """The record of ``resp``: JSON types only, ``"v": FORMAT`` (see the module docstring)."""
    total = resp.total_usage
    return {
        "v": FORMAT,
        "text": resp.text,
        "tool_calls": [
            {"id": t.id, "name": t.name, "arguments": t.arguments, "signature": t.signature}
            for t in resp.tool_calls
        ],
        "finish_reason": resp.finish_reason,
        "raw_finish_reason": resp.raw_finish_reason,
        "usage": _usage(resp.usage),
        "total_usage": _usage(total) if total is not None else None,
        "provider": resp.provider,
        "model": resp.model,
        "alias": resp.alias,
        "id": resp.id,
        "request_id": resp.request_id,
        "latency_s": resp.latency_s,
        "time_to_first_token_s": resp.time_to_first_token_s,
        "cost": _cost(resp.cost),
        "cache_hit": resp.cache_hit,
        "adjusted_params": dict(resp.adjusted_params),
        "reasoning": resp.reasoning,
        "reasoning_parts": [
            {
                "text": p.text,
                "signature": p.signature,
                "data": p.data,
                "id": p.id,
                "provider": p.provider,
                "redacted": p.redacted,
                "before_call": p.before_call,
            }
            for p in resp.reasoning_parts
        ],
    }


def _upgrade(d: Mapping[str, Any]) -> dict[str, Any]:
    """A version 1 or 2 record as the current version: version 1 had no reasoning and tool
    calls without signatures; version 2 reasoning parts had no ``before_call``."""
    out = dict(d)
    if out["v"] == 1:
        out.setdefault("reasoning", "")
        out.setdefault("reasoning_parts", [])
        calls = out.get("tool_calls")
        if type(calls) is list:
            out["tool_calls"] = [
                {**c, "signature": None} if type(c) is dict and "signature" not in c else c
                for c in calls
            ]
    parts = out.get("reasoning_parts")
    if type(parts) is list:
        out["reasoning_parts"] = [
            {**p, "before_call": None} if type(p) is dict and "before_call" not in p else p
            for p in parts
        ]
    out["v"] = FORMAT
    return out


# --------------------------------------------------------------------------- decoding


def _bad(what: str) -> InvalidResponseError:
    return InvalidResponseError(f"not a stored llmrelay response: {what}")


def _keys(d: Any, keys: frozenset[str], what: str) -> None:
    if type(d) is not dict:
        raise _bad(f"{what} must be an object, not {type(d).__name__}")
    if d.keys() != keys:
        missing, unknown = sorted(keys - d.keys()), sorted(map(str, d.keys() - keys))
        raise _bad(f"{what} is missing {missing}" if missing else f"{what} has unknown {unknown}")


def _str(v: Any, what: str, optional: bool = False) -> Any:
    if type(v) is str or (optional and v is None):
        return v
    raise _bad(f"{what} must be a string{' or null' if optional else ''}")


def _bool(v: Any, what: str) -> bool:
    if type(v) is not bool:
        raise _bad(f"{what} must be true or false")
    return v


def _number(v: Any, what: str, optional: bool = False) -> Any:
    if v is None and optional:
        return None
    if type(v) not in (int, float) or not math.isfinite(v):
        raise _bad(f"{what} must be a finite number{' or null' if optional else ''}")
    return float(v)


def _usage_from(u: Any, what: str) -> Usage:
    _keys(u, _USAGE_KEYS, what)
    counts = [u[k] for k in _USAGE_COUNTS]
    for k, n in zip(_USAGE_COUNTS, counts, strict=True):
        if type(n) is not int or n < 0:
            raise _bad(f"{what}.{k} must be a count (an integer >= 0)")
    a, b, c, w, r = counts
    return Usage(a, b, c, w, r, _bool(u["estimated"], f"{what}.estimated"))


def _cost_from(c: Any, cost_type: Callable[..., Any] | None) -> Any:
    if c is None:
        return None
    _keys(c, _COST_KEYS, "cost")
    fields = {k: _number(c[k], f"cost.{k}", optional=True) for k in _COST_AMOUNTS}
    fields["known"] = _bool(c["known"], "cost.known")
    fields["reason"] = _str(c["reason"], "cost.reason", optional=True)
    fields["estimated"] = _bool(c["estimated"], "cost.estimated")
    return cost_type(**fields) if cost_type is not None else None


def _fast_usage(u: Any) -> Usage | None:
    """``u`` as a Usage when it is a valid usage record, else None (the checked path explains)."""
    if type(u) is not dict or len(u) != 6:
        return None
    try:
        a, b, c = u["input_tokens"], u["output_tokens"], u["cached_tokens"]
        w, r, e = u["cache_write_tokens"], u["reasoning_tokens"], u["estimated"]
    except KeyError:
        return None
    if (
        type(a) is int
        and type(b) is int
        and type(c) is int
        and type(w) is int
        and type(r) is int
        and type(e) is bool
        and a >= 0
        and b >= 0
        and c >= 0
        and w >= 0
        and r >= 0
    ):
        return Usage(a, b, c, w, r, e)
    return None


def response_from_dict(
    d: Mapping[str, Any], *, cost_type: Callable[..., Any] | None = None
) -> Response:
    """The ``Response`` a :func:`response_to_dict` record holds. ``cost_type`` rebuilds the cost
    (pass ``llmrelay.Cost``). Raises ``InvalidResponseError`` when the record is not one.

    A cache hit decodes one, so the common case is checked inline; anything it does not accept
    goes through :func:`_checked`, which accepts the same records and names what is wrong."""
    if type(d) is dict and d.get("v") in (1, 2) and type(d["v"]) is int:
        d = _upgrade(d)
    if type(d) is not dict or len(d) != _N_KEYS or d.get("v") != FORMAT or d["v"] is True:
        return _checked(d, cost_type)
    try:
        text, calls, finish, raw = (
            d["text"],
            d["tool_calls"],
            d["finish_reason"],
            d["raw_finish_reason"],
        )
        provider, model, alias, rid = d["provider"], d["model"], d["alias"], d["id"]
        req_id, latency, ttft = d["request_id"], d["latency_s"], d["time_to_first_token_s"]
        adjusted, cache_hit, total, cost = (
            d["adjusted_params"],
            d["cache_hit"],
            d["total_usage"],
            d["cost"],
        )
        reasoning, rparts = d["reasoning"], d["reasoning_parts"]
    except KeyError:
        return _checked(d, cost_type)
    usage = _fast_usage(d["usage"])
    total_usage = _fast_usage(total) if total is not None else None
    if (
        usage is None
        or (total is not None and total_usage is None)
        or type(text) is not str
        or type(provider) is not str
        or type(model) is not str
        or not (finish is None or (type(finish) is str and finish in _FINISH))
        or not (raw is None or type(raw) is str)
        or not (alias is None or type(alias) is str)
        or not (rid is None or type(rid) is str)
        or not (req_id is None or type(req_id) is str)
        or type(latency) is not float
        or not math.isfinite(latency)
        or not (ttft is None or (type(ttft) is float and math.isfinite(ttft)))
        or type(cache_hit) is not bool
        or type(adjusted) is not dict
        or type(calls) is not list
        or type(reasoning) is not str
        or rparts != []
    ):
        return _checked(d, cost_type)
    for v in adjusted.values():
        if type(v) is not str:
            return _checked(d, cost_type)
    tool_calls = []
    for c in calls:
        if type(c) is not dict or len(c) != 4:
            return _checked(d, cost_type)
        i, n, args, sig = c.get("id"), c.get("name"), c.get("arguments"), c.get("signature")
        if (
            type(i) is not str
            or type(n) is not str
            or type(args) is not str
            or not (sig is None or type(sig) is str)
        ):
            return _checked(d, cost_type)
        tool_calls.append(ToolCall(i, n, args, sig))
    return Response(
        text,
        tool_calls,
        cast("FinishReason | None", finish),
        raw,
        usage,
        provider,
        model,
        alias,
        rid,
        req_id,
        latency,
        ttft,
        total_usage=total_usage,
        cost=_cost_from(cost, cost_type) if cost is not None else None,
        cache_hit=cache_hit,
        adjusted_params=adjusted,
        reasoning=reasoning,
    )


def _checked(d: Any, cost_type: Callable[..., Any] | None) -> Response:
    """:func:`response_from_dict`, checking each value in turn to name the first bad one."""
    if type(d) is not dict:
        raise _bad(f"a record must be an object, not {type(d).__name__}")
    if d.get("v") != FORMAT or d["v"] is True:
        raise _bad(f"format {d.get('v')!r} is not {FORMAT}")
    _keys(d, _KEYS, "the record")
    calls = d["tool_calls"]
    if type(calls) is not list:
        raise _bad("tool_calls must be a list")
    tool_calls = []
    for i, c in enumerate(calls):
        _keys(c, _TOOL_CALL_KEYS, f"tool_calls[{i}]")
        tool_calls.append(
            ToolCall(
                _str(c["id"], f"tool_calls[{i}].id"),
                _str(c["name"], f"tool_calls[{i}].name"),
                _str(c["arguments"], f"tool_calls[{i}].arguments"),
                _str(c["signature"], f"tool_calls[{i}].signature", optional=True),
            )
        )
    rparts = d["reasoning_parts"]
    if type(rparts) is not list:
        raise _bad("reasoning_parts must be a list")
    reasoning_parts = []
    for i, p in enumerate(rparts):
        what = f"reasoning_parts[{i}]"
        _keys(p, _REASONING_KEYS, what)
        reasoning_parts.append(
            ReasoningPart(
                text=_str(p["text"], f"{what}.text"),
                signature=_str(p["signature"], f"{what}.signature", optional=True),
                data=_str(p["data"], f"{what}.data", optional=True),
                id=_str(p["id"], f"{what}.id", optional=True),
                provider=_str(p["provider"], f"{what}.provider", optional=True),
                redacted=_bool(p["redacted"], f"{what}.redacted"),
                before_call=_str(p["before_call"], f"{what}.before_call", optional=True),
            )
        )
    finish: Any = d["finish_reason"]
    if finish is not None and (type(finish) is not str or finish not in _FINISH):
        raise _bad(f"finish_reason {str(finish)[:40]!r} is not one of {sorted(_FINISH)}")
    adjusted = d["adjusted_params"]
    if type(adjusted) is not dict or not all(type(v) is str for v in adjusted.values()):
        raise _bad("adjusted_params must be an object of strings")
    total = d["total_usage"]
    return Response(
        text=_str(d["text"], "text"),
        tool_calls=tool_calls,
        finish_reason=cast("FinishReason | None", finish),
        raw_finish_reason=_str(d["raw_finish_reason"], "raw_finish_reason", optional=True),
        usage=_usage_from(d["usage"], "usage"),
        provider=_str(d["provider"], "provider"),
        model=_str(d["model"], "model"),
        alias=_str(d["alias"], "alias", optional=True),
        id=_str(d["id"], "id", optional=True),
        request_id=_str(d["request_id"], "request_id", optional=True),
        latency_s=_number(d["latency_s"], "latency_s"),
        time_to_first_token_s=_number(
            d["time_to_first_token_s"], "time_to_first_token_s", optional=True
        ),
        total_usage=_usage_from(total, "total_usage") if total is not None else None,
        cost=_cost_from(d["cost"], cost_type),
        cache_hit=_bool(d["cache_hit"], "cache_hit"),
        adjusted_params=adjusted,
        reasoning=_str(d["reasoning"], "reasoning"),
        reasoning_parts=reasoning_parts,
    )


# --------------------------------------------------------------------------- messages


def _log_default(obj: Any) -> Any:
    try:
        return json_default(obj)
    except TypeError:
        return str(obj)


def messages_to_json(prompt: Any) -> str:
    """The request log's prompt column: the messages (``Message.to_dict()`` items) as JSON with
    sorted keys and without their empty (None) fields; inline image bytes as base64. Never
    raises for an odd value (it is written as its ``str``)."""
    if isinstance(prompt, list):
        prompt = [
            {k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m
            for m in prompt
        ]
    return orjson.dumps(prompt, default=_log_default, option=orjson.OPT_SORT_KEYS).decode()
