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
from ...types import (
    NO_PARAMS,
    ChatRequest,
    GenerationParams,
    Response,
    ToolCall,
    new_response,
)
from ..table import Deployment, ProviderSpec
from .base import (
    answer_request_id,
    decode_json,
    encode_body,
    error_body,
    error_for_status,
    in_band_error,
    invalid,
    make_error,
    openai_post,
    redact,
    status_message,
)
from .openai_answer import (
    FINISH,
    filtered_categories,
    filtered_error,
    groq_request_id,
    parts_text,
    reasoning_of,
    usage_from,
)
from .openai_chat_stream import OpenAIChatStream
from .openai_request import encode_message, map_reasoning_effort, thought_signature, vendor_of
from .tool_args import args_text, call_id_prefix

__all__ = ["OpenAIChatAdapter"]


_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "too many tokens",
    "prompt is too long",
    "reduce the length",
)
_new = object.__new__
_NOT_JSON = object()  # ``parse_response``'s mark for a body that is not JSON


_FILTER_CODES = ("content_filter", "content_policy_violation", "responsibleaipolicyviolation")


def _tool_calls(raw: Any, data: Mapping[str, Any]) -> list[ToolCall]:
    out: list[ToolCall] = []
    if not isinstance(raw, list):
        return out
    prefix = None
    for i, tc in enumerate(raw):
        if not isinstance(tc, dict):
            continue
        fn = tc.get("function")
        if not isinstance(fn, dict):
            fn = {}
        cid = tc.get("id")
        if not cid:  # some compatible servers send none: made up, unique across answers
            prefix = prefix or call_id_prefix(data.get("id"))
            cid = f"call_{prefix}_{i}"
        out.append(
            ToolCall(
                str(cid),
                str(fn.get("name", "")),
                args_text(fn.get("arguments")),
                thought_signature(tc) if "extra_content" in tc else None,
            )
        )
    return out


def _params_into(body: dict[str, Any], p: GenerationParams, spec: ProviderSpec | None) -> None:
    """The generation parameters a call sets, in Chat Completions' names."""
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


class OpenAIChatAdapter:
    name: ClassVar[str] = "openai_chat"

    def build_request(self, req: ChatRequest, dep: Deployment) -> HttpRequest:
        spec = dep.spec
        p = req.params
        body: dict[str, Any] = {
            "model": dep.model,
            "messages": [encode_message(m, dep) for m in req.messages],
        }
        if p is not NO_PARAMS:  # most calls set none: nothing to look at
            _params_into(body, p, spec)
        if req.stream:
            body["stream"] = True
            if spec is None or spec.stream_usage:
                body["stream_options"] = {"include_usage": True}
        adjusted: dict[str, str] = {}
        if p is not NO_PARAMS:
            if p.prompt_cache_key is not None:
                if vendor_of(dep).prompt_cache_key:
                    body["prompt_cache_key"] = p.prompt_cache_key
                else:
                    who = (spec.display_name if spec else "") or dep.provider
                    adjusted["prompt_cache_key"] = f"dropped: {who} does not document it"
            if p.reasoning_effort is not None:
                map_reasoning_effort(body, p.reasoning_effort, dep, adjusted)
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
            if adjusted:  # what the caller sends through extra is sent as given
                for k in p.extra:
                    adjusted.pop(k, None)
        return openai_post(
            dep, "/chat/completions", encode_body(body, req, dep), req.stream, adjusted
        )

    def parse_response(self, resp: HttpResponse, req: ChatRequest, dep: Deployment) -> Response:
        try:
            data = orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            data = _NOT_JSON
        # orjson gives exact dicts, lists and strs: ``__class__ is`` checks, not ``isinstance``.
        if data.__class__ is not dict:
            if data is _NOT_JSON:  # the typed error, raised outside the except block above
                decode_json(resp.body, dep)
            raise invalid("the response is not a JSON object", dep, resp.headers)
        choices = data.get("choices")
        if data.get("error") and not choices:
            raise in_band_error(self.map_error, data, resp.body, resp.headers, dep)
        if choices.__class__ is not list or not choices or choices[0].__class__ is not dict:
            raise invalid("the response has no choices", dep, resp.headers)
        choice = choices[0]
        msg = choice.get("message")
        if msg.__class__ is not dict:
            raise invalid("the first choice has no message", dep, resp.headers)
        text = msg.get("content")
        if text.__class__ is not str:  # some vendors answer with parts
            text = parts_text(text) if text.__class__ is list else ""
        raw_finish = choice.get("finish_reason")
        if raw_finish.__class__ is not str:  # malformed (an object, a number): absent
            raw_finish = None
        refusal = msg.get("refusal")
        if (refusal and refusal.__class__ is str) or raw_finish == "content_filter":
            rid = data.get("id")
            raise filtered_error(
                dep,
                resp.headers,
                refusal=refusal if isinstance(refusal, str) and refusal else None,
                categories=filtered_categories(choice),
                partial_text=text,
                response_id=rid if isinstance(rid, str) else None,
            )
        calls = msg.get("tool_calls")
        model = data.get("model")
        rid = data.get("id")
        return new_response(  # Response(text=..., ..., reasoning=...), built directly
            text,
            _tool_calls(calls, data) if calls else [],
            FINISH.get(raw_finish, "other") if raw_finish else None,
            raw_finish,
            usage_from(data.get("usage")),
            dep.provider,
            model if model.__class__ is str and model else str(model or dep.model),
            dep.alias,
            rid if rid.__class__ is str else None,  # a hostile id (a dict) never reaches .id
            answer_request_id(resp.headers, dep)
            or (groq_request_id(data) if dep.provider == "groq" else None),
            reasoning_of(msg)
            if "reasoning" in msg or "reasoning_content" in msg or "reasoning_details" in msg
            else "",
        )

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        data = error_body(body)
        err = data.get("error") if isinstance(data, dict) else None
        message = ""
        code = etype = ""
        body_rid: Any = None
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            code = str(err.get("code") or "")
            etype = str(err.get("type") or "")
            meta = err.get("metadata")
            if isinstance(meta, dict):
                # OpenRouter: the upstream's own words are in metadata.raw (a string or JSON),
                # the message often only says "Provider returned error".
                raw = meta.get("raw")
                if raw is not None and not isinstance(raw, str):
                    raw = orjson.dumps(raw).decode()
                where = meta.get("provider_name")
                if raw or where:
                    message += f" ({where or 'upstream'}: {raw or 'no details'})"
            body_rid = err.get("request_id") or data.get("request_id")
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
        e = make_error(
            cls, message, status=status, headers=headers, dep=dep, body=data if data else None
        )
        if e.request_id is None and isinstance(body_rid, str) and body_rid:
            e.request_id = redact(body_rid, dep)
        return e

    def stream_state(self, req: ChatRequest, dep: Deployment) -> OpenAIChatStream:
        return OpenAIChatStream(self.map_error, dep)
