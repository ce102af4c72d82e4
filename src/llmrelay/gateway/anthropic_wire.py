"""The Anthropic Messages wire, server side: read a ``POST /v1/messages`` body into our call,
write our ``Response`` (or stream) back as Anthropic's JSON and named SSE events.

Content blocks map one to one: ``text`` (with ``cache_control``), ``image`` and ``document``
(base64 or URL sources), assistant ``tool_use`` -> our tool calls, user ``tool_result`` (with
``is_error``) -> tool messages, ``thinking``/``redacted_thinking`` -> reasoning parts that are
replayed to Anthropic upstreams exactly. Requests for any model work: a GPT or Gemini alias
answers in Anthropic's shape.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import InvalidRequestError, shown
from ..types import (
    ContentPart,
    DocumentPart,
    ImagePart,
    Message,
    ReasoningPart,
    Response,
    StreamChunk,
    TextPart,
    ToolCall,
)
from .media import check_media_url
from .sse import each_text
from .wire import GatewayCall, HttpError, usage_of

__all__ = [
    "StreamWriter",
    "error_body",
    "parse_count_tokens_request",
    "parse_messages_request",
    "render_response",
]

_KNOWN = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stream",
        "temperature",
        "top_p",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
    }
)
_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def _b64(data: Any, what: str) -> bytes:
    if not isinstance(data, str):
        raise InvalidRequestError(f"{what}: source.data must be a base64 string")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{what}: source.data is not valid base64") from None


def _cache(block: Mapping[str, Any]) -> dict[str, Any] | None:
    cc = block.get("cache_control")
    if cc is None:
        return None
    if not isinstance(cc, Mapping):
        raise InvalidRequestError("cache_control must be an object like {'type': 'ephemeral'}")
    return dict(cc)


def _source_part(block: Mapping[str, Any], what: str, policy: str) -> ContentPart:
    src = block.get("source")
    if not isinstance(src, Mapping):
        raise InvalidRequestError(f"{what} needs a `source` object")
    kind = src.get("type")
    is_image = block.get("type") == "image"
    if kind == "base64":
        data = _b64(src.get("data"), what)
        media = src.get("media_type")
        if is_image:
            return ImagePart(data=data, media_type=media)
        return DocumentPart(data=data, media_type=media, cache_control=_cache(block))
    if kind == "text" and not is_image:
        text = src.get("data")
        if not isinstance(text, str):
            raise InvalidRequestError(f"{what}: a text source needs `data` as a string")
        return DocumentPart(
            data=text.encode(), media_type="text/plain", cache_control=_cache(block)
        )
    if kind == "url":
        url = src.get("url")
        if not isinstance(url, str):
            raise InvalidRequestError(f"{what}: a url source needs `url` as a string")
        check_media_url(url, policy, f"{what}.source.url")
        return (
            ImagePart(url=url) if is_image else DocumentPart(url=url, cache_control=_cache(block))
        )
    raise InvalidRequestError(f"{what}: source type {shown(kind)} is not base64, text or url")


def _text_of(content: Any, what: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for b in content:
            if (
                not isinstance(b, Mapping)
                or b.get("type") != "text"
                or not isinstance(b.get("text"), str)
            ):
                raise InvalidRequestError(f"{what}: only text blocks are supported here")
            out.append(b["text"])
        return "".join(out)
    if content is None:
        return ""
    raise InvalidRequestError(f"{what} must be a string or a list of text blocks")


def _messages(raw: list[Any], media: str) -> list[Message]:
    out: list[Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, Mapping):
            raise InvalidRequestError(f"{where} must be an object with role and content")
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise InvalidRequestError(
                f"{where}.role must be 'user' or 'assistant', not {shown(role)}"
            )
        content = m.get("content")
        if isinstance(content, str):
            out.append(Message(role, content))
            continue
        if not isinstance(content, list):
            raise InvalidRequestError(f"{where}.content must be a string or a list of blocks")
        parts: list[ContentPart] = []
        calls: list[ToolCall] = []
        for j, b in enumerate(content):
            what = f"{where}.content[{j}]"
            if not isinstance(b, Mapping):
                raise InvalidRequestError(f"{what} must be a content block object")
            t = b.get("type")
            if t == "text":
                text = b.get("text")
                if not isinstance(text, str):
                    raise InvalidRequestError(f"{what}: a text block needs `text` as a string")
                parts.append(TextPart(text, cache_control=_cache(b)))
            elif t in ("image", "document"):
                parts.append(_source_part(b, what, media))
            elif t == "tool_use" and role == "assistant":
                tid, name = b.get("id"), b.get("name")
                if not isinstance(tid, str) or not isinstance(name, str):
                    raise InvalidRequestError(f"{what}: tool_use needs `id` and `name` strings")
                try:
                    args = orjson.dumps(b.get("input", {})).decode()
                except TypeError:
                    raise InvalidRequestError(f"{what}: tool_use input must be JSON") from None
                calls.append(ToolCall(tid, name, args))
            elif t == "tool_result" and role == "user":
                tid = b.get("tool_use_id")
                if not isinstance(tid, str):
                    raise InvalidRequestError(f"{what}: tool_result needs `tool_use_id`")
                is_error = b.get("is_error")
                if is_error is not None and not isinstance(is_error, bool):
                    raise InvalidRequestError(f"{what}: is_error must be true or false")
                if parts:  # text before a tool result stays before it
                    out.append(Message("user", parts))
                    parts = []
                out.append(
                    Message(
                        "tool",
                        _text_of(b.get("content"), what),
                        tool_call_id=tid,
                        is_error=is_error,
                    )
                )
            elif t == "thinking" and role == "assistant":
                parts.append(
                    ReasoningPart(
                        text=b.get("thinking") or "",
                        signature=b.get("signature"),
                        provider="anthropic",
                    )
                )
            elif t == "redacted_thinking" and role == "assistant":
                parts.append(ReasoningPart(data=b.get("data"), redacted=True, provider="anthropic"))
            else:
                raise InvalidRequestError(
                    f"{what}: block type {shown(t)} is not supported in a {role} message"
                )
        if parts or calls:
            out.append(Message(role, parts or None, tool_calls=calls or None))
    return out


def _tool(t: Any, i: int) -> dict[str, Any]:
    if not isinstance(t, Mapping) or not isinstance(t.get("name"), str):
        raise InvalidRequestError(f"tools[{i}] needs a `name`")
    if t.get("type") not in (None, "custom"):
        raise InvalidRequestError(
            f"tools[{i}]: server tool {shown(t.get('type'))} is not supported by the gateway"
        )
    out: dict[str, Any] = {"name": t["name"], "parameters": t.get("input_schema") or {}}
    if t.get("description") is not None:
        out["description"] = t["description"]
    if t.get("cache_control") is not None:
        out["cache_control"] = t["cache_control"]
    return out


def _tool_choice(tc: Any) -> str | None:
    if tc is None:
        return None
    if not isinstance(tc, Mapping):
        raise InvalidRequestError("tool_choice must be an object like {'type': 'auto'}")
    kind = tc.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and isinstance(tc.get("name"), str):
        return str(tc["name"])
    raise InvalidRequestError(f"tool_choice type {shown(kind)} is not auto, any, tool or none")


def _effort(thinking: Any) -> str | None:
    """Anthropic's ``thinking`` as our cross-provider ``reasoning_effort``."""
    if thinking is None:
        return None
    if not isinstance(thinking, Mapping):
        raise InvalidRequestError("thinking must be an object like {'type': 'enabled', ...}")
    kind = thinking.get("type")
    if kind == "disabled":
        return "none"
    if kind == "adaptive":
        return "medium"
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
            raise InvalidRequestError("thinking.budget_tokens must be an integer >= 1024")
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    raise InvalidRequestError(f"thinking.type {shown(kind)} is not enabled, adaptive or disabled")


def parse_messages_request(body: Any, *, media: str = "https") -> GatewayCall:
    """The call a Messages body asks for; ``InvalidRequestError`` naming the field.
    ``media``: which image and document URLs may be forwarded (``[server] media_urls``)."""
    if not isinstance(body, Mapping):
        raise InvalidRequestError("the request body must be a JSON object")
    if body.get("top_k") is not None:
        raise InvalidRequestError(
            "top_k is not supported by the gateway (not every model behind it has it); use "
            "temperature or top_p",
            body={"param": "top_k"},
        )
    unknown = sorted(k for k in body if k not in _KNOWN and k != "top_k")
    if unknown:
        raise InvalidRequestError(
            f"{unknown[0]}: Extra inputs are not permitted", body={"param": unknown[0]}
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("model: Field required")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequestError("max_tokens: Field required (a positive integer)")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequestError(f"stream must be true or false, not {shown(stream)}")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequestError("messages: a non-empty list of messages is required")
    messages: list[Message] = []
    system = body.get("system")
    if system is not None:
        if isinstance(system, str):
            if system:
                messages.append(Message("system", system))
        elif isinstance(system, list):
            blocks: list[ContentPart] = []
            for j, b in enumerate(system):
                if (
                    not isinstance(b, Mapping)
                    or b.get("type") != "text"
                    or not isinstance(b.get("text"), str)
                ):
                    raise InvalidRequestError(f"system[{j}] must be a text block")
                blocks.append(TextPart(b["text"], cache_control=_cache(b)))
            if blocks:
                messages.append(Message("system", blocks))
        else:
            raise InvalidRequestError("system must be a string or a list of text blocks")
    messages.extend(_messages(raw, media))
    params: dict[str, Any] = {"max_tokens": max_tokens}
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stop_sequences", "stop"),
    ):
        if body.get(src) is not None:
            params[dst] = body[src]
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequestError("tools must be a list")
        params["tools"] = [_tool(t, i) for i, t in enumerate(tools)]
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        params["tool_choice"] = choice
    effort = _effort(body.get("thinking"))
    if effort is not None:
        params["reasoning_effort"] = effort
    meta = body.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("user_id"), str):
        params["user"] = meta["user_id"]
    return GatewayCall(model=model, messages=messages, params=params, stream=stream)


def parse_count_tokens_request(body: Any) -> GatewayCall:
    """A ``count_tokens`` body: a Messages body without ``max_tokens``. Media URLs are not
    checked: counting fetches nothing and sends nothing upstream."""
    if isinstance(body, dict):
        body = {"max_tokens": 1, **body}
    return parse_messages_request(body, media="any")


# --------------------------------------------------------------------------- answers


def _usage(resp: Response) -> dict[str, Any]:
    u = usage_of(resp)
    return {
        "input_tokens": max(0, u.input_tokens - u.cached_tokens - u.cache_write_tokens),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
    }


def _reasoning_blocks(resp: Response) -> list[dict[str, Any]]:
    blocks = []
    for p in resp.reasoning_parts:
        if p.redacted:
            blocks.append({"type": "redacted_thinking", "data": p.data or ""})
        else:
            blocks.append({"type": "thinking", "thinking": p.text, "signature": p.signature or ""})
    if not blocks and resp.reasoning:
        blocks.append({"type": "thinking", "thinking": resp.reasoning, "signature": ""})
    return blocks


def _input(args: str) -> Any:
    try:
        return orjson.loads(args or "{}")
    except orjson.JSONDecodeError:
        return {}


def render_response(resp: Response, model: str, call_id: str, *, refusal: bool = False) -> bytes:
    """``resp`` as an Anthropic ``message`` object."""
    content = _reasoning_blocks(resp)
    if resp.text:
        content.append({"type": "text", "text": resp.text})
    for t in resp.tool_calls:
        content.append(
            {"type": "tool_use", "id": t.id, "name": t.name, "input": _input(t.arguments)}
        )
    stop = "refusal" if refusal else _STOP.get(resp.finish_reason or "", "end_turn")
    return orjson.dumps(
        {
            "id": call_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": _usage(resp),
        }
    )


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class StreamWriter:
    """Our stream chunks as Anthropic's events: one open content block at a time (thinking,
    then text, then each tool call), as Anthropic sends them. A thinking block ends with its
    ``signature_delta`` when the upstream finished it (``StreamChunk.reasoning_part``)."""

    __slots__ = ("_index", "_open", "_tools", "call_id", "model")

    def __init__(self, call_id: str, model: str) -> None:
        self.call_id = call_id
        self.model = model
        self._index = -1
        self._open: str | None = None
        self._tools: dict[int, int] = {}

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self.call_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"message": message})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _event("content_block_stop", {"index": self._index})

    def _begin(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._index += 1
        self._open = kind
        return out + _event("content_block_start", {"index": self._index, "content_block": block})

    def text_run(self, pieces: list[str]) -> bytes:
        return each_text(self, pieces)

    def chunk(self, c: StreamChunk) -> bytes:
        out = b""
        if c.reasoning:
            if self._open != "thinking":
                out += self._begin(
                    "thinking", {"type": "thinking", "thinking": "", "signature": ""}
                )
            out += _event(
                "content_block_delta",
                {
                    "index": self._index,
                    "delta": {"type": "thinking_delta", "thinking": c.reasoning},
                },
            )
        if c.reasoning_part is not None:
            out += self._reasoning_done(c.reasoning_part)
        if c.delta:
            if self._open != "text":
                out += self._begin("text", {"type": "text", "text": ""})
            out += _event(
                "content_block_delta",
                {"index": self._index, "delta": {"type": "text_delta", "text": c.delta}},
            )
        for d in c.tool_calls:
            if d.index not in self._tools:
                out += self._begin(
                    f"tool{d.index}",
                    {
                        "type": "tool_use",
                        "id": d.id or f"toolu_{d.index}",
                        "name": d.name or "",
                        "input": {},
                    },
                )
                self._tools[d.index] = self._index
            if d.arguments:
                out += _event(
                    "content_block_delta",
                    {
                        "index": self._tools[d.index],
                        "delta": {"type": "input_json_delta", "partial_json": d.arguments},
                    },
                )
        return out

    def _reasoning_done(self, p: ReasoningPart) -> bytes:
        """A finished reasoning block, as Anthropic ends one: a thinking block gets its
        ``signature_delta`` (a client replays the signature in its next turn); a redacted one
        is a whole ``redacted_thinking`` block."""
        if p.provider != "anthropic":  # another API's reasoning: nothing Anthropic could use
            return self._close() if self._open == "thinking" else b""
        if p.redacted:
            block = {"type": "redacted_thinking", "data": p.data or ""}
            return self._begin("redacted_thinking", block) + self._close()
        out = b""
        if self._open != "thinking":  # a signed block whose text was empty
            out += self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if p.signature:
            out += _event(
                "content_block_delta",
                {
                    "index": self._index,
                    "delta": {"type": "signature_delta", "signature": p.signature},
                },
            )
        return out + self._close()

    def error(self, err: HttpError) -> bytes:
        return stream_error(err.status, err.message)

    def finish(self, resp: Response | None, *, refusal: str | None = None) -> bytes:
        """The closing events; ``refusal`` set (the refusal's words): ``stop_reason: refusal``."""
        out = b""
        if resp is not None and self._open == "thinking":
            sig = next((p.signature for p in resp.reasoning_parts if p.signature), None)
            if sig:
                out += _event(
                    "content_block_delta",
                    {"index": self._index, "delta": {"type": "signature_delta", "signature": sig}},
                )
        out += self._close()
        stop = (
            "refusal"
            if refusal is not None
            else "end_turn"
            if resp is None
            else _STOP.get(resp.finish_reason or "", "end_turn")
        )
        usage = _usage(resp) if resp is not None else {"output_tokens": 0}
        out += _event(
            "message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage}
        )
        return out + _event("message_stop", {})


def error_body(status: int, message: str) -> bytes:
    """Anthropic's error object."""
    etype = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        503: "overloaded_error",
        504: "timeout_error",
    }.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}})


def stream_error(status: int, message: str) -> bytes:
    """An error after the stream started: Anthropic's ``error`` event."""
    return b"event: error\ndata: " + error_body(status, message) + b"\n\n"
