"""OpenAI Chat Completions (``POST {base_url}/chat/completions``).

Serves OpenAI itself and every OpenAI-compatible vendor (Groq, Mistral, DeepSeek, Together,
OpenRouter, Fireworks, xAI, Ollama, vLLM, LM Studio, Azure OpenAI's v1 API); the differences
between them live in their rows of ``llmrelay.providers.table``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from ...errors import (
    APIError,
    ContentFilteredError,
    ContextWindowExceededError,
    QuotaExhaustedError,
)
from ...transport.base import HttpRequest, HttpResponse
from ...transport.sse import SSEEvent
from ...types import (
    ChatRequest,
    FinishReason,
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
from ..table import Deployment
from .base import (
    answer_request_id,
    as_int,
    decode_json,
    encode_body,
    error_body,
    error_for_status,
    event_json,
    in_band_error,
    interrupted,
    invalid,
    make_error,
    send_headers,
    status_message,
)

__all__ = ["OpenAIChatAdapter"]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "eos": "stop",
}

_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "too many tokens",
    "prompt is too long",
    "reduce the length",
)
_FILTER_CODES = ("content_filter", "content_policy_violation", "responsibleaipolicyviolation")


def _message(m: Message) -> dict[str, Any]:
    c = m.content
    out: dict[str, Any] = {"role": m.role}
    if c is None or isinstance(c, str):
        out["content"] = c
    else:
        parts: list[dict[str, Any]] = []
        for p in c:
            if isinstance(p, TextPart):
                parts.append({"type": "text", "text": p.text})
            elif isinstance(p, ImagePart):
                iu: dict[str, Any] = {"url": p.as_url()}
                if p.detail:
                    iu["detail"] = p.detail
                parts.append({"type": "image_url", "image_url": iu})
        out["content"] = parts
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in m.tool_calls
        ]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def usage_from(u: Any) -> Usage:
    if not isinstance(u, dict):
        return make_usage()
    get = u.get
    ptd = get("prompt_tokens_details")
    ctd = get("completion_tokens_details")
    cached = as_int(ptd.get("cached_tokens")) if ptd.__class__ is dict else 0
    if not cached:
        cached = as_int(get("prompt_cache_hit_tokens"))  # DeepSeek
    reasoning = as_int(ctd.get("reasoning_tokens")) if ctd.__class__ is dict else 0
    inp = get("prompt_tokens")
    out = get("completion_tokens")
    return Usage(  # (input, output, cached, cache_write, reasoning); as_int, inline when int
        inp if inp.__class__ is int and inp >= 0 else as_int(inp),
        out if out.__class__ is int and out >= 0 else as_int(out),
        cached,
        0,
        reasoning,
    )


def _tool_calls(raw: Any) -> list[ToolCall]:
    out: list[ToolCall] = []
    if not isinstance(raw, list):
        return out
    for i, tc in enumerate(raw):
        if not isinstance(tc, dict):
            continue
        fn = tc.get("function") or {}
        args = fn.get("arguments", "{}")
        if not isinstance(args, str):
            args = orjson.dumps(args).decode()
        out.append(ToolCall(str(tc.get("id") or f"call_{i}"), str(fn.get("name", "")), args))
    return out


class OpenAIChatAdapter:
    name: ClassVar[str] = "openai_chat"

    def build_request(self, req: ChatRequest, dep: Deployment) -> HttpRequest:
        spec = dep.spec
        p = req.params
        body: dict[str, Any] = {
            "model": dep.model,
            "messages": [_message(m) for m in req.messages],
        }
        if p.temperature is not None:
            body["temperature"] = p.temperature
        if p.max_tokens is not None:
            body[spec.max_tokens_field if spec else "max_tokens"] = p.max_tokens
        if p.top_p is not None:
            body["top_p"] = p.top_p
        if p.stop:
            body["stop"] = p.stop
        if p.seed is not None:
            body["seed"] = p.seed
        if p.frequency_penalty is not None:
            body["frequency_penalty"] = p.frequency_penalty
        if p.presence_penalty is not None:
            body["presence_penalty"] = p.presence_penalty
        if p.tools:
            tools = []
            for t in p.tools:
                fn: dict[str, Any] = {"name": t.name, "parameters": t.parameters}
                if t.description:
                    fn["description"] = t.description
                if t.strict is not None:
                    fn["strict"] = t.strict
                tools.append({"type": "function", "function": fn})
            body["tools"] = tools
        if p.tool_choice is not None:
            tc = p.tool_choice
            body["tool_choice"] = (
                tc
                if tc in ("auto", "none", "required") or not isinstance(tc, str)
                else {"type": "function", "function": {"name": tc}}
            )
        if p.response_format is not None:
            body["response_format"] = p.response_format
        if p.user is not None:
            body["user"] = p.user
        if req.stream:
            body["stream"] = True
            if spec is None or spec.stream_usage:
                body["stream_options"] = {"include_usage": True}
        adjusted: dict[str, str] = {}
        if spec is not None and (spec.unsupported_params or spec.param_renames):
            for name in spec.unsupported_params:
                if name in body:
                    del body[name]
                    adjusted[name] = (
                        f"dropped: {spec.display_name or spec.name} does not support it"
                    )
            for old, new in spec.param_renames.items():
                if old in body:
                    body[new] = body.pop(old)
                    adjusted[old] = f"sent as {new!r}"
        if p.extra:
            body.update(p.extra)
        headers = send_headers(
            {
                "content-type": "application/json",
                "accept": "text/event-stream" if req.stream else "application/json",
            },
            dep,
            "api-key" if spec is not None and spec.auth == "api-key" else "bearer",
        )
        url = dep.base_url + "/chat/completions"
        api_version = dep.options.get("api_version")
        if api_version:
            url += f"?api-version={api_version}"
        return HttpRequest("POST", url, headers, encode_body(body, req, dep), adjusted)

    def parse_response(self, resp: HttpResponse, req: ChatRequest, dep: Deployment) -> Response:
        data = decode_json(resp.body, dep)
        if not isinstance(data, dict):
            raise invalid("the response is not a JSON object", dep, resp.headers)
        if "error" in data and "choices" not in data:
            raise self.map_error(500, resp.headers, resp.body, dep)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise invalid("the response has no choices", dep, resp.headers)
        choice = choices[0]
        msg = choice.get("message")
        if not isinstance(msg, dict):
            raise invalid("the first choice has no message", dep, resp.headers)
        content = msg.get("content")
        if isinstance(content, list):  # some vendors answer with parts
            content = "".join(
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
        raw_finish = choice.get("finish_reason")
        return Response(
            text=content if isinstance(content, str) else "",
            tool_calls=_tool_calls(msg.get("tool_calls")),
            finish_reason=_FINISH.get(raw_finish, "other") if raw_finish else None,
            raw_finish_reason=raw_finish,
            usage=usage_from(data.get("usage")),
            provider=dep.provider,
            model=str(data.get("model") or dep.model),
            alias=dep.alias,
            id=data.get("id"),
            request_id=answer_request_id(resp.headers, dep),
        )

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        data = error_body(body)
        err = data.get("error") if isinstance(data, dict) else None
        message = ""
        code = etype = ""
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            code = str(err.get("code") or "")
            etype = str(err.get("type") or "")
        elif isinstance(err, str):
            message = err
        elif isinstance(data, dict):
            message = str(data.get("message") or data.get("detail") or "")
            etype = str(data.get("type") or "")
        if not message:
            message = status_message(status, body)
        low = f"{code} {etype} {message}".lower()
        cls: type[APIError]
        if status in (400, 413, 422) and any(m in low for m in _CONTEXT_MARKERS):
            cls = ContextWindowExceededError
        elif any(c in low for c in _FILTER_CODES):
            cls = ContentFilteredError
        elif status == 402 or (status == 429 and "insufficient_quota" in low):
            cls = QuotaExhaustedError
        else:
            cls = error_for_status(status)
        return make_error(
            cls, message, status=status, headers=headers, dep=dep, body=data if data else None
        )

    def stream_state(self, req: ChatRequest, dep: Deployment) -> _OpenAIStream:
        return _OpenAIStream(self, dep)


class _OpenAIStream:
    __slots__ = (
        "_adapter",
        "_dep",
        "_id",
        "_model",
        "_raw_finish",
        "_text",
        "_tools",
        "_usage",
        "done",
    )

    def __init__(self, adapter: OpenAIChatAdapter, dep: Deployment) -> None:
        self._adapter = adapter
        self._dep = dep
        self._text: list[str] = []
        self._tools: dict[int, list[Any]] = {}
        self._raw_finish: str | None = None
        self._usage: Usage | None = None
        self._id: str | None = None
        self._model: str | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        data = event.data
        if data == "[DONE]":
            self.done = True
            return []
        obj = event_json(data, self._dep)
        if "error" in obj and "choices" not in obj:
            raise in_band_error(self._adapter.map_error, obj, data.encode(), {}, self._dep)
        if self._id is None:
            self._id = obj.get("id")
            self._model = obj.get("model")
        out: list[StreamChunk] = []
        u = obj.get("usage")
        usage = usage_from(u) if isinstance(u, dict) else None
        if usage is not None:
            self._usage = usage
        choices = obj.get("choices")
        if isinstance(choices, list) and choices:
            ch = choices[0]
            if isinstance(ch, dict):
                delta = ch.get("delta") or {}
                text = delta.get("content") if isinstance(delta, dict) else None
                tdeltas: list[ToolCallDelta] = []
                if isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
                    for tc in delta["tool_calls"]:
                        if not isinstance(tc, dict):
                            continue
                        idx = tc.get("index", 0)
                        fn = tc.get("function") or {}
                        slot = self._tools.setdefault(idx, [None, "", []])
                        if tc.get("id"):
                            slot[0] = tc["id"]
                        if fn.get("name"):
                            slot[1] += fn["name"]
                        args = fn.get("arguments") or ""
                        if args:
                            slot[2].append(args)
                        tdeltas.append(ToolCallDelta(idx, tc.get("id"), fn.get("name"), args))
                raw_finish = ch.get("finish_reason")
                if raw_finish:
                    self._raw_finish = raw_finish
                if text or tdeltas or raw_finish:
                    if text:
                        self._text.append(text)
                    out.append(
                        chunk(
                            text or "",
                            tool_calls=tdeltas,
                            finish_reason=_FINISH.get(raw_finish, "other") if raw_finish else None,
                        )
                    )
        if usage is not None:
            out.append(chunk(usage=usage))
        return out

    def _response(self) -> Response:
        tools = [
            ToolCall(v[0] or f"call_{i}", v[1], "".join(v[2]) or "{}")
            for i, v in sorted(self._tools.items())
        ]
        raw = self._raw_finish
        return Response(
            text="".join(self._text),
            tool_calls=tools,
            finish_reason=_FINISH.get(raw, "other") if raw else None,
            raw_finish_reason=raw,
            usage=self._usage or make_usage(),
            provider=self._dep.provider,
            model=self._model or self._dep.model,
            alias=self._dep.alias,
            id=self._id,
        )

    def finish(self) -> Response:
        # Some compatible servers omit [DONE]; a finish reason is then the end marker.
        if not self.done and self._raw_finish is None:
            raise interrupted(
                "the stream ended before its final event", self._dep, self._response()
            )
        return self._response()

    def partial(self) -> Response:
        return self._response()
