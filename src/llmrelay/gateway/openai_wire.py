"""The OpenAI Chat Completions wire, server side: read a ``POST /v1/chat/completions`` body into
our call, write our ``Response`` (or stream) back as OpenAI's JSON and SSE.

Only fields that describe the conversation and the generation are read; anything that could
choose the upstream (base URL, API key, headers, provider-specific body fields) has no field
here, so a caller cannot reach it. An unknown field is refused with 400 naming it, as OpenAI
does ("Unrecognized request argument supplied"), except the ones OpenAI clients send that have
no meaning behind a gateway (:data:`IGNORED`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import InvalidRequestError, shown
from ..types import (
    Message,
    ReasoningPart,
    Response,
    StreamChunk,
    normalize_messages,
)
from ..types.request import _plain_messages
from .media import check_media_url
from .sse import each_text
from .wire import GatewayCall, HttpError, usage_of
from .wire import param_error as _bad

__all__ = [
    "IGNORED",
    "StreamWriter",
    "error_param",
    "parse_chat_request",
    "render_chunk",
    "render_response",
    "stream_tail",
]

#: Fields OpenAI clients send that a gateway accepts and does not forward: storage and
#: bookkeeping on OpenAI's side, or output options every answer here already satisfies.
IGNORED = frozenset(
    {"store", "metadata", "service_tier", "parallel_tool_calls", "prediction", "modalities"}
)
_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "tools": "tools",
    "tool_choice": "tool_choice",
    "response_format": "response_format",
    "user": "user",
    "reasoning_effort": "reasoning_effort",
    "prompt_cache_key": "prompt_cache_key",
}
_ORDER = {field: i for i, field in enumerate(_PARAMS)}
_KNOWN = frozenset({"model", "messages", "stream", "stream_options", "n", *_PARAMS, *IGNORED})
_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def parse_chat_request(body: Any, *, media: str = "https") -> GatewayCall:
    """The call a Chat Completions body asks for; ``InvalidRequestError`` naming the field.
    ``media``: which image and file URLs may be forwarded (``[server] media_urls``)."""
    if not isinstance(body, Mapping):
        raise InvalidRequestError("the request body must be a JSON object")
    unknown = None if _KNOWN.issuperset(body) else sorted(k for k in body if k not in _KNOWN)
    if unknown:
        raise InvalidRequestError(
            f"Unrecognized request argument supplied: {shown(unknown[0])}",
            body={"param": unknown[0]},
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("`model` is required: the name of a model or alias", "model")
    n = body.get("n", 1)
    if n not in (1, None):
        raise _bad(f"n={shown(n)} is not supported; ask for one choice (n=1)", "n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad(f"`stream` must be true or false, not {shown(stream)}", "stream")
    opts = body.get("stream_options")
    include_usage = False
    if opts is not None:
        if not isinstance(opts, Mapping) or not isinstance(opts.get("include_usage", False), bool):
            raise _bad(
                "stream_options must be an object like {'include_usage': true}", "stream_options"
            )
        include_usage = bool(opts.get("include_usage", False))
    if "max_completion_tokens" in body:
        _check_max_completion_tokens(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("`messages` must be a non-empty list of messages", "messages")
    # The common call, text messages only, as normalize_messages reads it first; anything
    # else is read in full, and its media URLs checked.
    msgs = _plain_messages(messages)
    if msgs is None:
        msgs = _full_messages(messages, media)
    params: dict[str, Any] = {}
    sent = [f for f in body if f in _PARAMS]  # in _PARAMS' order: the first bad one is named
    if len(sent) > 1:
        sent.sort(key=_ORDER.__getitem__)
    for field in sent:
        v = body[field]
        if v is not None:
            params[_PARAMS[field]] = v
    choice = params.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        fn = choice.get("function")
        params["tool_choice"] = fn.get("name") if isinstance(fn, Mapping) else None
    return GatewayCall(
        model=model,
        messages=msgs,
        params=params,
        stream=stream,
        include_usage=include_usage,
        wire_names=_AS_SENT if body.get("max_completion_tokens") is not None else None,
    )


#: ``max_tokens`` as a request that sent ``max_completion_tokens`` names it.
_AS_SENT = {"max_tokens": "max_completion_tokens"}


def _check_max_completion_tokens(body: Mapping[str, Any]) -> None:
    """``max_completion_tokens`` is checked here, so an error names it (the engine knows it as
    ``max_tokens``)."""
    if "max_tokens" in body:
        raise _bad("give max_tokens or max_completion_tokens, not both", "max_completion_tokens")
    v = body["max_completion_tokens"]
    if v is not None and (type(v) is not int or v < 1):
        raise _bad(
            f"max_completion_tokens must be a positive integer, not {shown(v)}",
            "max_completion_tokens",
        )


def _full_messages(messages: list[Any], media: str) -> list[Message]:
    try:
        msgs: list[Message] = normalize_messages(messages)
    except InvalidRequestError as exc:
        raise _bad(exc.message, "messages") from None
    for i, m in enumerate(msgs):  # one Message per message, one part per part
        if m.content.__class__ is list:
            _check_parts(m.content, messages[i], i, media)
    return msgs


def _check_parts(parts: list[Any], raw: Any, i: int, media: str) -> None:
    """Refuse a part's URL that ``media`` does not allow, naming the field as it was sent, and
    reasoning parts: llmrelay's own shape, not OpenAI's, they would replay a provider's
    signature or encrypted content unchecked (``/v1/responses`` signs what it hands out)."""
    for j, p in enumerate(parts):
        if p.__class__ is ReasoningPart:
            raise _bad(
                f"messages[{i}].content[{j}]: reasoning parts are not part of the Chat "
                "Completions API; replay reasoning through /v1/responses (its reasoning items) "
                "or /v1/messages (thinking blocks)",
                f"messages[{i}].content[{j}]",
            )
        url = getattr(p, "url", None) if media != "any" else None
        if url is None:
            continue
        sent = raw["content"][j] if isinstance(raw, Mapping) else None
        kind = sent.get("type") if isinstance(sent, Mapping) else None
        where = f"messages[{i}].content[{j}]"
        if kind == "image_url":
            inner = sent.get("image_url") if isinstance(sent, Mapping) else None
            where += ".image_url.url" if isinstance(inner, Mapping) else ".image_url"
        elif kind == "file":
            where += ".file.file_data"
        else:
            where += ".url"
        check_media_url(url, media, where)


# --------------------------------------------------------------------------- answers


def _tool_calls(resp: Response) -> list[dict[str, Any]]:
    out = []
    for t in resp.tool_calls:
        call: dict[str, Any] = {
            "id": t.id,
            "type": "function",
            "function": {"name": t.name, "arguments": t.arguments},
        }
        if t.signature is not None:
            # A Gemini thought signature, in Google's OpenAI-compatible place: an SDK keeps the
            # field and sends it back with the call, and the next turn replays it to Gemini.
            call["extra_content"] = {"google": {"thought_signature": t.signature}}
        out.append(call)
    return out


def _usage(resp: Response) -> dict[str, Any]:
    u = usage_of(resp)
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def render_response(
    resp: Response, model: str, call_id: str, *, refusal: str | None = None
) -> bytes:
    """``resp`` as a ``chat.completion`` object (``refusal`` set: the model refused)."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": resp.text if (resp.text or not resp.tool_calls) and refusal is None else None,
        "refusal": refusal,
    }
    if resp.tool_calls:
        message["tool_calls"] = _tool_calls(resp)
    if resp.reasoning:
        message["reasoning_content"] = resp.reasoning
    finish = _FINISH.get(resp.finish_reason or "", "stop")
    return orjson.dumps(
        {
            "id": call_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": _usage(resp),
        }
    )


def _frame(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _chunk_obj(call_id: str, model: str, created: int, choices: list[Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }


def render_chunk(
    c: StreamChunk, call_id: str, model: str, created: int, first: bool, include_usage: bool
) -> bytes:
    """One stream chunk as SSE (the first carries the role). The final chunk (``c.done``) is
    written by :func:`stream_tail`; it yields nothing here."""
    if c.done:
        return b""
    delta: dict[str, Any] = {}
    if first:
        delta["role"] = "assistant"
    if c.delta:
        delta["content"] = c.delta
    elif first:
        delta["content"] = ""
    if c.reasoning:
        delta["reasoning_content"] = c.reasoning
    if c.tool_calls:
        calls = []
        for d in c.tool_calls:
            fn: dict[str, Any] = {"arguments": d.arguments}
            item: dict[str, Any] = {"index": d.index, "function": fn}
            if d.id:
                item["id"] = d.id
                item["type"] = "function"
            if d.name:
                fn["name"] = d.name
            if d.signature is not None:  # a Gemini thought signature, where Google puts it
                item["extra_content"] = {"google": {"thought_signature": d.signature}}
            calls.append(item)
        delta["tool_calls"] = calls
    if not delta:
        return b""
    obj = _chunk_obj(call_id, model, created, [{"index": 0, "delta": delta, "finish_reason": None}])
    if include_usage:
        obj["usage"] = None
    return _frame(obj)


def stream_tail(
    resp: Response | None,
    call_id: str,
    model: str,
    created: int,
    include_usage: bool,
    *,
    refusal: str | None = None,
) -> bytes:
    """The last frames: the finish reason, the usage chunk when asked for, ``[DONE]``."""
    finish = "stop" if resp is None else _FINISH.get(resp.finish_reason or "", "stop")
    delta: dict[str, Any] = {}
    if refusal is not None:
        delta["refusal"] = refusal
    obj = _chunk_obj(
        call_id, model, created, [{"index": 0, "delta": delta, "finish_reason": finish}]
    )
    if include_usage:
        obj["usage"] = None
    out = _frame(obj)
    if include_usage and resp is not None:
        out += _frame({**_chunk_obj(call_id, model, created, []), "usage": _usage(resp)})
    return out + b"data: [DONE]\n\n"


#: Engine parameter names another OpenAI wire spells differently (``_serve``'s ``wire``).
_WIRE_NAMES: dict[str, dict[str, str]] = {
    "responses": {
        "max_tokens": "max_output_tokens",
        "response_format": "text",
        "reasoning_effort": "reasoning",
    },
}


def error_param(wire: str, param: Any, sent: Mapping[str, str] | None = None) -> str | None:
    """The request field an error's ``param`` (the engine's name for it) is on ``wire``
    (``sent``: the call's own spellings, ``GatewayCall.wire_names``)."""
    if not isinstance(param, str) or not param:
        return None
    if sent is not None and param in sent:
        return sent[param]
    names = _WIRE_NAMES.get(wire)
    return param if names is None else names.get(param, param)


def error_body(status: int, message: str, code: str | None, param: str | None = None) -> bytes:
    """OpenAI's error object."""
    etype = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "invalid_request_error",
        413: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status, "api_error" if status < 500 else "server_error")
    return orjson.dumps(
        {"error": {"message": message, "type": etype, "param": param, "code": code}}
    )


def stream_error(message: str, code: str | None) -> bytes:
    """An error after the stream started: OpenAI's in-band error event, then ``[DONE]``."""
    return (
        _frame({"error": {"message": message, "type": "server_error", "param": None, "code": code}})
        + b"data: [DONE]\n\n"
    )


class StreamWriter:
    """Our stream chunks as Chat Completions SSE frames (the same interface as
    ``anthropic_wire.StreamWriter``: ``start``, ``chunk``, ``finish``, ``error``)."""

    __slots__ = ("_around", "call_id", "created", "first", "include_usage", "model")

    def __init__(self, call_id: str, model: str, include_usage: bool) -> None:
        self.call_id = call_id
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())
        self.first = True
        self._around: tuple[bytes, bytes] | None = None

    def start(self) -> bytes:
        return b""  # Chat Completions has no opening event

    def chunk(self, c: StreamChunk) -> bytes:
        if not self.first and c.delta and not (c.done or c.reasoning or c.tool_calls):
            # Most frames carry text alone: the frame around it is the same every time.
            around = self._around
            if around is None:
                around = self._around = self._text_frame()
            return around[0] + orjson.dumps(c.delta) + around[1]
        frame = render_chunk(
            c, self.call_id, self.model, self.created, self.first, self.include_usage
        )
        if frame:
            self.first = False
        return frame

    def text_run(self, pieces: list[str]) -> bytes:
        """The frames of a ``TextRun``: one per piece, as ``chunk`` renders a text chunk."""
        if self.first:
            return each_text(self, pieces)
        around = self._around
        if around is None:
            around = self._around = self._text_frame()
        before, after = around
        dumps = orjson.dumps
        return before + (after + before).join([dumps(p) for p in pieces]) + after

    def _text_frame(self) -> tuple[bytes, bytes]:
        """What ``render_chunk`` writes before and after a text delta (split at a marker)."""
        marker = "\x00text\x00"
        frame = render_chunk(
            StreamChunk(delta=marker),
            self.call_id,
            self.model,
            self.created,
            False,
            self.include_usage,
        )
        before, _, after = frame.partition(orjson.dumps(marker))
        return before, after

    def finish(self, resp: Response | None, *, refusal: str | None = None) -> bytes:
        return stream_tail(
            resp, self.call_id, self.model, self.created, self.include_usage, refusal=refusal
        )

    def error(self, err: HttpError) -> bytes:
        return stream_error(err.message, err.code)
