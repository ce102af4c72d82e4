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
    Response,
    StreamChunk,
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
    openai_post,
    redact,
    status_message,
)
from .openai_request import encode_message, map_reasoning_effort, thought_signature, vendor_of
from .tool_args import args_text, call_id_prefix

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


def usage_from(u: Any) -> Usage:
    if not isinstance(u, dict):
        return make_usage()
    get = u.get
    ptd = get("prompt_tokens_details")
    ctd = get("completion_tokens_details")
    cached = written = 0
    if ptd.__class__ is dict:
        cached = as_int(ptd.get("cached_tokens"))
        # OpenRouter: tokens written to the prompt cache, part of prompt_tokens like
        # cached_tokens (its "Usage Accounting" page); OpenAI and DeepSeek report none.
        written = as_int(ptd.get("cache_write_tokens"))
    if not cached:
        cached = as_int(get("prompt_cache_hit_tokens"))  # DeepSeek
    reasoning = as_int(ctd.get("reasoning_tokens")) if ctd.__class__ is dict else 0
    inp = get("prompt_tokens")
    out = get("completion_tokens")
    return Usage(  # (input, output, cached, cache_write, reasoning); as_int, inline when int
        inp if inp.__class__ is int and inp >= 0 else as_int(inp),
        out if out.__class__ is int and out >= 0 else as_int(out),
        cached,
        written,
        reasoning,
    )


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


def _groq_request_id(data: Mapping[str, Any]) -> str | None:
    """Groq's request id in the body (``x_groq.id``), for an answer without the header."""
    xg = data.get("x_groq")
    rid = xg.get("id") if isinstance(xg, dict) else None
    return rid if isinstance(rid, str) and rid else None


def _filtered_categories(choice: Mapping[str, Any]) -> str | None:
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


class OpenAIChatAdapter:
    name: ClassVar[str] = "openai_chat"

    def build_request(self, req: ChatRequest, dep: Deployment) -> HttpRequest:
        spec = dep.spec
        p = req.params
        body: dict[str, Any] = {
            "model": dep.model,
            "messages": [encode_message(m, dep) for m in req.messages],
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
        if p.prompt_cache_key is not None:
            if vendor_of(dep).prompt_cache_key:
                body["prompt_cache_key"] = p.prompt_cache_key
            else:
                adjusted["prompt_cache_key"] = (
                    f"dropped: {(spec.display_name if spec else '') or dep.provider} does not "
                    "document prompt_cache_key"
                )
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
        data = decode_json(resp.body, dep)
        if not isinstance(data, dict):
            raise invalid("the response is not a JSON object", dep, resp.headers)
        if data.get("error") and not data.get("choices"):
            raise in_band_error(self.map_error, data, resp.body, resp.headers, dep)
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
        text = content if isinstance(content, str) else ""
        refusal = msg.get("refusal")
        if (refusal and refusal.__class__ is str) or raw_finish == "content_filter":
            rid = data.get("id")
            raise filtered_error(
                dep,
                resp.headers,
                refusal=refusal if isinstance(refusal, str) and refusal else None,
                categories=_filtered_categories(choice),
                partial_text=text,
                response_id=rid if isinstance(rid, str) else None,
            )
        return Response(
            text=text,
            tool_calls=_tool_calls(msg.get("tool_calls"), data),
            finish_reason=_FINISH.get(raw_finish, "other") if raw_finish else None,
            raw_finish_reason=raw_finish,
            usage=usage_from(data.get("usage")),
            provider=dep.provider,
            model=str(data.get("model") or dep.model),
            alias=dep.alias,
            id=data.get("id"),
            request_id=answer_request_id(resp.headers, dep)
            or (_groq_request_id(data) if dep.provider == "groq" else None),
            reasoning=reasoning_of(msg)
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

    def stream_state(self, req: ChatRequest, dep: Deployment) -> _OpenAIStream:
        return _OpenAIStream(self, dep)


class _OpenAIStream:
    __slots__ = (
        "_adapter",
        "_dep",
        "_filter",
        "_id",
        "_model",
        "_prefix",
        "_raw_finish",
        "_reasoning",
        "_refusal",
        "_rid",
        "_slot",
        "_text",
        "_tools",
        "_usage",
        "done",
    )

    def __init__(self, adapter: OpenAIChatAdapter, dep: Deployment) -> None:
        self._adapter = adapter
        self._dep = dep
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] | None = None
        self._filter: str | None = None
        #: index -> [id, name, argument pieces, thought signature]
        self._tools: dict[int, list[Any]] = {}
        #: wire index -> our index, where a server reuses an index for another call
        self._slot: dict[int, int] = {}
        self._raw_finish: str | None = None
        self._usage: Usage | None = None
        self._id: str | None = None
        self._model: str | None = None
        #: Of the ids made up for tool calls that came without one (see ``call_id_prefix``).
        self._prefix: str | None = None
        #: The request id a Groq stream carries in ``x_groq.id`` (other vendors: headers only).
        self._rid: str | None = None if dep.provider == "groq" else ""
        self.done = False

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        data = event.data
        if data == "[DONE]":
            self.done = True
            return []
        obj = event_json(data, self._dep)
        if not self._id:
            # Azure opens with id "" / model "" (prompt filter results): take the first
            # chunk that has them.
            rid = obj.get("id")
            if rid:
                self._id = rid
        if not self._model:
            model = obj.get("model")
            if model:
                self._model = model
        if self._rid is None:
            self._rid = _groq_request_id(obj)
        out: list[StreamChunk] = []
        u = obj.get("usage")
        usage = usage_from(u) if u.__class__ is dict else None
        if usage is not None:
            self._usage = usage
        choices = obj.get("choices")
        if choices.__class__ is list and choices:
            ch = choices[0]
            if ch.__class__ is dict:
                delta = ch.get("delta")
                # The common chunk, {"delta": {"content": "..."}} and no finish: text only.
                if (
                    delta.__class__ is dict
                    and len(delta) == 1
                    and ch.get("finish_reason") is None
                    and (text := delta.get("content")).__class__ is str
                ):
                    if text:
                        self._text.append(text)
                        out.append(chunk(text))
                else:
                    c = self._choice(ch, delta)
                    if c is not None:
                        out.append(c)
        if obj.get("error"):
            # An error object next to (or without) choices: OpenRouter reports a failure
            # mid-stream this way. Typed; what came before it stays in ``partial()`` (the
            # engine makes it a StreamInterruptedError carrying the partial answer).
            raise in_band_error(self._adapter.map_error, obj, data.encode(), {}, self._dep)
        if usage is not None:
            out.append(chunk(usage=usage))
        return out

    def _choice(self, ch: dict[str, Any], delta: Any) -> StreamChunk | None:
        text = reasoning = None
        tdeltas: list[ToolCallDelta] = []
        if isinstance(delta, dict) and delta:
            text = delta.get("content")
            reasoning = reasoning_of(delta)
            refusal = delta.get("refusal")
            if refusal and isinstance(refusal, str):
                if self._refusal is None:
                    self._refusal = []
                self._refusal.append(refusal)
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for tc in calls:
                    if isinstance(tc, dict):
                        tdeltas.append(self._tool_delta(tc))
        raw_finish = ch.get("finish_reason")
        if raw_finish:
            self._raw_finish = raw_finish
            if raw_finish == "content_filter":
                self._filter = _filtered_categories(ch) or ""
        if text or reasoning or tdeltas or raw_finish:
            if text:
                self._text.append(text)
            if reasoning:
                self._reasoning.append(reasoning)
            return chunk(
                text or "",
                tool_calls=tdeltas,
                reasoning=reasoning or "",
                finish_reason=_FINISH.get(raw_finish, "other") if raw_finish else None,
            )
        return None

    def _tool_delta(self, tc: dict[str, Any]) -> ToolCallDelta:
        """One tool-call delta. Some servers (OpenRouter relaying Novita, kimi-k2) repeat the
        id and the whole name in every delta of a call: both are taken once, the first time
        they come, and only new arguments are appended. A delta without ``index`` (some
        compatible servers omit it) continues the last call, unless it brings another id: then
        it starts the next one. Gemini's OpenAI-compatible endpoint sends parallel calls all at
        ``index: 0``, each with its own id: a new id at an index that holds another call starts
        the next call too (later deltas at that index continue it)."""
        new_id = tc.get("id") or None
        idx = tc.get("index")
        if idx.__class__ is not int:
            idx = max(self._tools) if self._tools else 0
            last = self._tools.get(idx)
            if last is not None and new_id is not None and last[0] not in (None, new_id):
                idx += 1
        else:
            wire = idx
            idx = self._slot.get(wire, wire)
            last = self._tools.get(idx)
            if last is not None and new_id is not None and last[0] not in (None, new_id):
                idx = max(self._tools) + 1
                self._slot[wire] = idx
        fn = tc.get("function") or {}
        slot = self._tools.get(idx)
        if slot is None:
            slot = self._tools[idx] = [None, "", [], None]
        if slot[3] is None and "extra_content" in tc:
            slot[3] = thought_signature(tc)
        if new_id is not None:
            if slot[0] is None:
                slot[0] = new_id
            else:
                new_id = None  # repeated: not news
        name = fn.get("name") if isinstance(fn, dict) else None
        if name and isinstance(name, str) and not slot[1]:
            slot[1] = name
        else:
            name = None
        args = (fn.get("arguments") if isinstance(fn, dict) else None) or ""
        if args:
            slot[2].append(args)
        return ToolCallDelta(idx, new_id, name, args)

    def _response(self) -> Response:
        if self._prefix is None and any(v[0] is None for v in self._tools.values()):
            self._prefix = call_id_prefix(self._id)  # kept: partial() and finish() agree
        tools = [
            ToolCall(v[0] or f"call_{self._prefix}_{i}", v[1], "".join(v[2]) or "{}", v[3])
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
            request_id=self._rid or None,
            reasoning="".join(self._reasoning),
        )

    def finish(self) -> Response:
        # Some compatible servers omit [DONE]; a finish reason is then the end marker.
        if not self.done and self._raw_finish is None:
            raise interrupted(
                "the stream ended before its final event", self._dep, self._response()
            )
        if self._refusal is not None or self._filter is not None:
            raise filtered_error(
                self._dep,
                {},
                refusal="".join(self._refusal) if self._refusal is not None else None,
                categories=self._filter or None,
                partial_text="".join(self._text),
                response_id=self._id,
            )
        return self._response()

    def partial(self) -> Response:
        return self._response()
