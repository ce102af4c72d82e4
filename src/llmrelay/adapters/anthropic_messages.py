"""Anthropic Messages (``POST {base_url}/v1/messages``, base URL ``https://api.anthropic.com``).

How the common request maps onto Anthropic's format:

* system messages become the top-level ``system`` string (joined with blank lines);
* ``max_tokens`` is required by Anthropic: :data:`DEFAULT_MAX_TOKENS` when the caller set none;
* ``stop`` is sent as ``stop_sequences``, ``user`` as ``metadata.user_id``; ``temperature``
  above 1 is clamped to Anthropic's maximum of 1; ``seed``, ``frequency_penalty`` and
  ``presence_penalty`` do not exist there and are dropped. Every such change is listed in
  ``Response.adjusted_params``;
* assistant tool calls become ``tool_use`` blocks and ``tool`` messages ``tool_result`` blocks
  of a user turn (consecutive turns of the same role are merged, as Anthropic expects);
* structured output (``response_format`` ``json_schema``) is a forced tool whose input is the
  answer: it comes back as ``Response.text`` (JSON), streamed as text deltas.

Usage: Anthropic's ``input_tokens`` does NOT include prompt-cache reads and writes, which it
reports separately. ``Usage.input_tokens`` follows llmrelay's (OpenAI's) convention and counts
every prompt token, so it is ``input_tokens + cache_read_input_tokens +
cache_creation_input_tokens``; ``cached_tokens`` is ``cache_read_input_tokens`` and
``cache_write_tokens`` is ``cache_creation_input_tokens``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from ..errors import (
    APIError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    OverloadedError,
    QuotaExhaustedError,
    StreamInterruptedError,
)
from ..headers import request_id_from
from ..providers import Deployment
from ..transport.base import HttpRequest, HttpResponse
from ..transport.sse import SSEEvent
from ..types import (
    ChatRequest,
    ContentPart,
    FinishReason,
    GenerationParams,
    ImagePart,
    Message,
    Response,
    StreamChunk,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
    chunk,
    make_usage,
)
from .base import as_int, decode_json, error_for_status, invalid, make_error

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS", "AnthropicMessagesAdapter", "usage_from"]

ANTHROPIC_VERSION = "2023-06-01"
#: Sent as ``max_tokens`` when the caller set none (Anthropic requires the field).
DEFAULT_MAX_TOKENS = 4096

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
}

#: The HTTP status each error type comes with (used for errors inside a 200 stream or body).
_STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_CONTEXT_MARKERS = (
    "prompt is too long",
    "exceed context limit",
    "exceeds context limit",
    "exceeds the context",
    "context window",
    "context length",
    "maximum context",
)
_BILLING_MARKERS = (
    "credit balance is too low",
    "purchase credits",
    "specified api usage limits",
)
_FILTER_MARKERS = ("content filtering policy",)

_JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no code fences."
)
_TOOL_NAME_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def _finish(raw: Any) -> FinishReason | None:
    if not raw or not isinstance(raw, str):
        return None
    return _FINISH.get(raw, "other")


def usage_from(u: Any) -> Usage:
    """Anthropic usage in llmrelay's convention (cache reads and writes counted as input)."""
    if not isinstance(u, dict):
        return make_usage()
    read = as_int(u.get("cache_read_input_tokens"))
    write = as_int(u.get("cache_creation_input_tokens"))
    details = u.get("output_tokens_details")
    thinking = as_int(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return make_usage(
        input_tokens=as_int(u.get("input_tokens")) + read + write,
        output_tokens=as_int(u.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=thinking,
    )


# --------------------------------------------------------------------------- structured output


@dataclass(slots=True, frozen=True)
class _Structured:
    """The forced tool that carries a ``json_schema`` answer."""

    name: str
    description: str
    input_schema: dict[str, Any]
    #: The schema's root is not an object: the answer travels as ``{"value": ...}``.
    wrapped: bool

    def text(self, tool_input: Any) -> str:
        value = tool_input
        if self.wrapped and isinstance(tool_input, dict):
            value = tool_input.get("value")
        return orjson.dumps(value).decode()

    def text_from_raw(self, raw: str) -> str:
        try:
            return self.text(orjson.loads(raw or "{}"))
        except orjson.JSONDecodeError:
            return raw


def _structured(p: GenerationParams) -> _Structured | None:
    rf = p.response_format
    if rf is None or rf.get("type") != "json_schema":
        return None
    js = rf.get("json_schema")
    schema = js.get("schema") if isinstance(js, Mapping) else None
    if not isinstance(js, Mapping) or not isinstance(schema, Mapping):
        raise InvalidRequestError(
            "response_format of type 'json_schema' needs "
            "{'json_schema': {'name': ..., 'schema': {...}}}"
        )
    raw_name = js.get("name")
    name = _TOOL_NAME_BAD.sub("_", raw_name)[:64] if isinstance(raw_name, str) else ""
    desc = js.get("description")
    description = (
        desc
        if isinstance(desc, str) and desc
        else "Give your answer by calling this tool; its input must match the schema."
    )
    input_schema = dict(schema)
    wrapped = not (
        input_schema.get("type") == "object"
        or ("type" not in input_schema and "properties" in input_schema)
    )
    if wrapped:
        # Anthropic tool inputs must be objects: carry any other schema as {"value": ...},
        # keeping $defs at the root so "#/$defs/..." references still resolve.
        defs = {k: input_schema.pop(k) for k in ("$defs", "definitions") if k in input_schema}
        input_schema = {
            "type": "object",
            "properties": {"value": input_schema},
            "required": ["value"],
            **defs,
        }
    return _Structured(name or "json_output", description, input_schema, wrapped)


# --------------------------------------------------------------------------- messages


def _image(p: ImagePart) -> dict[str, Any]:
    inline = p.as_base64()
    if inline is not None:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": inline[0], "data": inline[1]},
        }
    url = p.url or ""
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequestError(
        f"Anthropic cannot read the image URL {url[:60]!r}: pass an http(s) URL, a data: URL "
        "or the bytes (ImagePart(data=..., media_type='image/png'))"
    )


def _blocks(content: str | list[ContentPart] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, TextPart):
            if p.text:
                out.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart):
            out.append(_image(p))
    return out


def _tool_use(tc: ToolCall) -> dict[str, Any]:
    try:
        args = orjson.loads(tc.arguments or "{}")
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"the assistant tool call {tc.name!r} (id {tc.id!r}) has arguments that are not a "
            "JSON object; Anthropic needs each tool call's input as an object"
        )
    return {"type": "tool_use", "id": tc.id, "name": tc.name, "input": args}


def _tool_result(m: Message) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id}
    c = m.content
    if isinstance(c, str):
        if c:
            block["content"] = c
    elif c:
        block["content"] = _blocks(c)
    return block


def _messages(msgs: list[Message]) -> tuple[list[str], list[dict[str, Any]]]:
    """System texts, and the turns in Anthropic's shape (same-role neighbours merged)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        if m.role == "system":
            text = m.text()
            if text:
                system.append(text)
            continue
        if m.role == "tool":
            role, blocks = "user", [_tool_result(m)]
        elif m.role == "assistant":
            role, blocks = "assistant", _blocks(m.content)
            blocks.extend(_tool_use(tc) for tc in m.tool_calls or ())
        else:
            role, blocks = "user", _blocks(m.content)
        if not blocks:
            raise InvalidRequestError(
                f"messages[{i}] ({m.role}) is empty; Anthropic rejects empty messages, so give "
                "it some text or leave it out"
            )
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:
        c = turn["content"]
        if len(c) == 1 and c[0]["type"] == "text":
            turn["content"] = c[0]["text"]
    return system, out


def _url(base_url: str) -> str:
    # The SDKs' base URL has no /v1; accept one that does rather than doubling it.
    if base_url.endswith("/v1"):
        return base_url + "/messages"
    return base_url + "/v1/messages"


# --------------------------------------------------------------------------- adapter


class AnthropicMessagesAdapter:
    name: ClassVar[str] = "anthropic_messages"

    def build_request(self, req: ChatRequest, dep: Deployment) -> HttpRequest:
        p = req.params
        adjusted: dict[str, str] = {}
        system, messages = _messages(req.messages)
        if not messages:
            raise InvalidRequestError(
                "Anthropic needs at least one user message besides the system prompt"
            )
        body: dict[str, Any] = {
            "model": dep.model,
            "max_tokens": p.max_tokens if p.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "messages": messages,
        }
        rf_type = p.response_format.get("type") if p.response_format is not None else None
        if rf_type == "json_object":
            system.append(_JSON_OBJECT_INSTRUCTION)
            adjusted["response_format"] = (
                "sent as a system-prompt instruction: Anthropic has no JSON mode"
            )
        elif rf_type not in (None, "text", "json_schema"):
            raise InvalidRequestError(
                f"response_format type {rf_type!r} is not supported for Anthropic; use "
                "'json_object', 'json_schema' or 'text'"
            )
        if system:
            body["system"] = "\n\n".join(system)
        if p.temperature is not None:
            if p.temperature > 1.0:
                body["temperature"] = 1.0
                adjusted["temperature"] = (
                    f"clamped to 1.0: Anthropic accepts 0 to 1 (got {p.temperature:g})"
                )
            else:
                body["temperature"] = p.temperature
        if p.top_p is not None:
            body["top_p"] = p.top_p
        if p.stop:
            body["stop_sequences"] = list(p.stop)
        for name in ("seed", "frequency_penalty", "presence_penalty"):
            if getattr(p, name) is not None:
                adjusted[name] = "dropped: Anthropic does not support it"
        if p.user is not None:
            body["metadata"] = {"user_id": p.user}
        tools: list[dict[str, Any]] = []
        for t in p.tools or ():
            tool: dict[str, Any] = {"name": t.name}
            if t.description:
                tool["description"] = t.description
            tool["input_schema"] = t.parameters
            tools.append(tool)
        structured = _structured(p)
        if structured is not None:
            if any(t["name"] == structured.name for t in tools):
                raise InvalidRequestError(
                    f"a tool is named {structured.name!r} like the response_format schema; "
                    "rename one of them"
                )
            tools.append(
                {
                    "name": structured.name,
                    "description": structured.description,
                    "input_schema": structured.input_schema,
                }
            )
            body["tool_choice"] = {"type": "tool", "name": structured.name}
            if p.tool_choice is not None:
                adjusted["tool_choice"] = "replaced: structured output forces its own tool"
        elif tools and p.tool_choice is not None:
            tc = p.tool_choice
            if tc == "auto":
                body["tool_choice"] = {"type": "auto"}
            elif tc == "none":
                body["tool_choice"] = {"type": "none"}
            elif tc == "required":
                body["tool_choice"] = {"type": "any"}
            else:
                body["tool_choice"] = {"type": "tool", "name": tc}
        if tools:
            body["tools"] = tools
        if req.stream:
            body["stream"] = True
        if p.extra:
            body.update(p.extra)
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if req.stream else "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        spec = dep.spec
        key = dep.api_key.get() if dep.api_key else None
        if key:
            auth = spec.auth if spec is not None else "x-api-key"
            if auth == "bearer":
                headers["authorization"] = "Bearer " + key
            elif auth != "none":
                headers["x-api-key"] = key
        if spec is not None and spec.extra_headers:
            headers.update(spec.extra_headers)
        if dep.headers:
            headers.update(dep.headers)
        return HttpRequest("POST", _url(dep.base_url), headers, orjson.dumps(body), adjusted)

    def parse_response(self, resp: HttpResponse, req: ChatRequest, dep: Deployment) -> Response:
        data = decode_json(resp.body, dep)
        if not isinstance(data, dict):
            raise invalid("the response is not a JSON object", dep, resp.headers)
        if data.get("type") == "error":
            raise self.map_error(_status_of(data), resp.headers, resp.body, dep)
        content = data.get("content")
        if not isinstance(content, list):
            raise invalid("the response has no content list", dep, resp.headers)
        structured = _structured(req.params)
        texts: list[str] = []
        calls: list[ToolCall] = []
        answer: str | None = None
        for i, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                t = block.get("text")
                if isinstance(t, str):
                    texts.append(t)
            elif kind == "tool_use":
                name = str(block.get("name") or "")
                tool_input = block.get("input")
                if structured is not None and answer is None and name == structured.name:
                    answer = structured.text(tool_input)
                    continue
                calls.append(
                    ToolCall(
                        str(block.get("id") or f"toolu_{i}"),
                        name,
                        orjson.dumps(tool_input if tool_input is not None else {}).decode(),
                    )
                )
            # thinking, redacted_thinking and server-tool blocks carry no answer text.
        raw_finish = data.get("stop_reason")
        finish = _finish(raw_finish)
        if answer is not None and finish == "tool_calls" and not calls:
            finish = "stop"
        return Response(
            text=answer if answer is not None else "".join(texts),
            tool_calls=calls,
            finish_reason=finish,
            raw_finish_reason=raw_finish if isinstance(raw_finish, str) else None,
            usage=usage_from(data.get("usage")),
            provider=dep.provider,
            model=str(data.get("model") or dep.model),
            alias=dep.alias,
            id=data.get("id") if isinstance(data.get("id"), str) else None,
            request_id=request_id_from(resp.headers),
        )

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        err = data.get("error") if isinstance(data, dict) else None
        message = etype = ""
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            etype = str(err.get("type") or "")
        elif isinstance(err, str):
            message = err
        if not message:
            text = body[:300].decode("utf-8", "replace").strip()
            message = f"HTTP {status}" + (f": {text}" if text else "")
        low = f"{etype} {message}".lower()
        cls: type[APIError]
        if status in (400, 413, 422) and any(m in low for m in _CONTEXT_MARKERS):
            cls = ContextWindowExceededError
        elif (
            etype == "billing_error"
            or status == 402
            or (status in (400, 429) and any(m in low for m in _BILLING_MARKERS))
        ):
            cls = QuotaExhaustedError
        elif etype == "overloaded_error":
            cls = OverloadedError
        elif any(m in low for m in _FILTER_MARKERS):
            cls = ContentFilteredError
        else:
            cls = error_for_status(status)
        return make_error(
            cls,
            f"{etype}: {message}" if etype else message,
            status=status,
            headers=headers,
            dep=dep,
            body=data if data else None,
        )

    def stream_state(self, req: ChatRequest, dep: Deployment) -> _AnthropicStream:
        return _AnthropicStream(self, dep, _structured(req.params))


def _status_of(obj: Mapping[str, Any]) -> int:
    err = obj.get("error")
    etype = err.get("type") if isinstance(err, dict) else None
    return _STATUS_BY_TYPE.get(etype, 500) if isinstance(etype, str) else 500


# --------------------------------------------------------------------------- streaming


@dataclass(slots=True)
class _ToolSlot:
    ordinal: int
    id: str
    name: str
    args: list[str]
    initial: Any


class _AnthropicStream:
    __slots__ = (
        "_adapter",
        "_answer",
        "_answer_block",
        "_dep",
        "_id",
        "_model",
        "_raw_finish",
        "_structured",
        "_text",
        "_tokens",
        "_tools",
        "done",
    )

    def __init__(
        self, adapter: AnthropicMessagesAdapter, dep: Deployment, structured: _Structured | None
    ) -> None:
        self._adapter = adapter
        self._dep = dep
        self._structured = structured
        self._text: list[str] = []
        self._tools: dict[int, _ToolSlot] = {}
        #: The structured-output tool's block index and its raw JSON pieces.
        self._answer_block: int | None = None
        self._answer: list[str] = []
        self._raw_finish: str | None = None
        #: Anthropic's raw usage fields; message_delta values overwrite message_start's.
        self._tokens: dict[str, Any] = {}
        self._id: str | None = None
        self._model: str | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        if event.event == "ping":
            return []
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise invalid(f"stream event is not JSON: {event.data[:200]!r}", self._dep) from None
        if not isinstance(obj, dict):
            raise invalid("stream event is not a JSON object", self._dep)
        kind = obj.get("type") or event.event
        if kind == "error" or event.event == "error":
            raise self._adapter.map_error(
                _status_of(obj), {}, event.data.encode(), self._dep
            ) from None
        if kind == "content_block_delta":
            return self._delta(obj)
        if kind == "content_block_start":
            return self._block_start(obj)
        if kind == "content_block_stop":
            return self._block_stop(obj)
        if kind == "message_start":
            msg = obj.get("message")
            if isinstance(msg, dict):
                self._id = msg.get("id") if isinstance(msg.get("id"), str) else None
                self._model = msg.get("model") if isinstance(msg.get("model"), str) else None
                u = msg.get("usage")
                if isinstance(u, dict):
                    self._tokens.update(u)
            return []
        if kind == "message_delta":
            delta = obj.get("delta")
            raw = delta.get("stop_reason") if isinstance(delta, dict) else None
            if isinstance(raw, str):
                self._raw_finish = raw
            u = obj.get("usage")
            if isinstance(u, dict):
                self._tokens.update({k: v for k, v in u.items() if v is not None})
            return [chunk(finish_reason=self._finish(), usage=usage_from(self._tokens))]
        if kind == "message_stop":
            self.done = True
        return []  # ping and event types added after this adapter was written

    def _block_start(self, obj: dict[str, Any]) -> list[StreamChunk]:
        index = obj.get("index")
        block = obj.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str) and text:
                self._text.append(text)
                return [chunk(text)]
        elif kind == "tool_use":
            name = str(block.get("name") or "")
            s = self._structured
            if s is not None and self._answer_block is None and name == s.name:
                self._answer_block = index
                return []
            slot = _ToolSlot(
                len(self._tools), str(block.get("id") or ""), name, [], block.get("input")
            )
            self._tools[index] = slot
            return [chunk(tool_calls=[ToolCallDelta(slot.ordinal, slot.id, name, "")])]
        return []

    def _delta(self, obj: dict[str, Any]) -> list[StreamChunk]:
        index = obj.get("index")
        delta = obj.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                self._text.append(text)
                return [chunk(text)]
        elif kind == "input_json_delta":
            part = delta.get("partial_json")
            if not isinstance(part, str) or not part:
                return []
            if index is not None and index == self._answer_block:
                self._answer.append(part)
                s = self._structured
                # A wrapped answer is unwrapped whole when its block ends.
                return [] if s is not None and s.wrapped else [chunk(part)]
            slot = self._tools.get(index) if isinstance(index, int) else None
            if slot is not None:
                slot.args.append(part)
                return [chunk(tool_calls=[ToolCallDelta(slot.ordinal, arguments=part)])]
        elif kind == "thinking_delta":
            thinking = delta.get("thinking")
            if isinstance(thinking, str) and thinking:
                return [chunk(reasoning=thinking)]
        return []  # signature_delta, citations_delta, ...

    def _block_stop(self, obj: dict[str, Any]) -> list[StreamChunk]:
        s = self._structured
        if s is not None and s.wrapped and obj.get("index") == self._answer_block:
            return [chunk(s.text_from_raw("".join(self._answer)))]
        return []

    def _finish(self) -> FinishReason | None:
        finish = _finish(self._raw_finish)
        if finish == "tool_calls" and self._answer_block is not None and not self._tools:
            return "stop"
        return finish

    def _response(self) -> Response:
        calls = []
        for slot in self._tools.values():
            args = "".join(slot.args)
            if not args:
                args = orjson.dumps(slot.initial).decode() if slot.initial else "{}"
            calls.append(ToolCall(slot.id or f"toolu_{slot.ordinal}", slot.name, args))
        text = "".join(self._text)
        s = self._structured
        if s is not None and self._answer_block is not None:
            raw = "".join(self._answer)
            text = s.text_from_raw(raw) if s.wrapped else (raw or "{}")
        return Response(
            text=text,
            tool_calls=calls,
            finish_reason=self._finish(),
            raw_finish_reason=self._raw_finish,
            usage=usage_from(self._tokens),
            provider=self._dep.provider,
            model=self._model or self._dep.model,
            alias=self._dep.alias,
            id=self._id,
        )

    def finish(self) -> Response:
        if not self.done:
            raise StreamInterruptedError(
                "the stream ended before its message_stop event",
                provider=self._dep.provider,
                model=self._dep.model,
                partial=self._response(),
            )
        return self._response()

    def partial(self) -> Response:
        return self._response()
