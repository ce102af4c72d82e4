"""OpenAI Chat Completions (``POST {base_url}/chat/completions``).

Serves OpenAI itself and every OpenAI-compatible vendor (Groq, Mistral, DeepSeek, Together,
OpenRouter, Fireworks, xAI, Ollama, vLLM, LM Studio, Azure OpenAI's v1 API); the differences
between them live in their rows of ``llmrelay.providers.table``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from orjson import JSONDecodeError
from orjson import loads as _loads

from ...errors import (
    APIError,
    ContentFilteredError,
    ContextWindowExceededError,
    QuotaExhaustedError,
)
from ...transport.base import HttpRequest, HttpResponse
from ...transport.sse import SSEEvent
from ...types import (
    NO_PARAMS,
    ChatRequest,
    FinishReason,
    GenerationParams,
    Response,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    chunk,
    make_usage,
    new_response,
    text_chunk,
)
from ..table import Deployment, ProviderSpec
from .base import (
    answer_request_id,
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
from .openai_answer import (
    filtered_categories,
    filtered_error,
    groq_request_id,
    reasoning_of,
    usage_from,
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
_new = object.__new__
_NOT_JSON = object()  # ``parse_response``'s mark for a body that is not JSON

#: What ``_OpenAIStream._template`` puts in place of a text to find where the text goes.
_MARK_TEXT = "\x00llmrelay text\x00"
_MARK = orjson.dumps(_MARK_TEXT).decode()

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
            text = _parts_text(text) if text.__class__ is list else ""
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
            _FINISH.get(raw_finish, "other") if raw_finish else None,
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

    def stream_state(self, req: ChatRequest, dep: Deployment) -> _OpenAIStream:
        return _OpenAIStream(self, dep)


class _OpenAIStream:
    __slots__ = (
        "_adapter",
        "_dep",
        "_filter",
        "_id",
        "_model",
        "_post",
        "_pre",
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
        #: What a text-only event holds around its text (``_template``): an event the same
        #: but for its text is not parsed whole. None: none yet ("": none will be).
        self._pre: str | None = None
        self._post = ""
        self.done = False

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        return self.feed_data(event.data)

    def feed_data(self, data: str) -> list[StreamChunk]:
        """``feed`` for an event's data, all it reads (``SSEDecoder.feed_data`` gives it)."""
        pre = self._pre
        if pre and data.startswith(pre) and data.endswith(self._post):
            # The same event as the text-only one ``_template`` read, but for its text: it
            # parses to that event with this text in place of that one, or not at all.
            try:
                text = _loads(data[len(pre) : len(data) - len(self._post)])
            except JSONDecodeError:
                text = None
            if text.__class__ is str:
                if not text:
                    return []
                self._text.append(text)
                return [text_chunk(text)]
        if data == "[DONE]":
            self.done = True
            return []
        try:
            obj = _loads(data)
        except JSONDecodeError:
            obj = None
        if obj.__class__ is not dict:
            obj = event_json(data, self._dep)  # raises what the event is instead
        if not self._id:
            # Azure opens with id "" / model "" (prompt filter results): take the first
            # chunk that has them.
            rid = obj.get("id")
            if rid and rid.__class__ is str:  # a hostile id (a dict) never reaches .id
                self._id = rid
        if not self._model:
            model = obj.get("model")
            if model:  # as parse_response: a str, whatever the upstream sent
                self._model = model if model.__class__ is str else str(model)
        if self._rid is None:
            self._rid = groq_request_id(obj)
        u = obj.get("usage")
        usage = usage_from(u) if u.__class__ is dict else None
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
                    if usage is None and not obj.get("error"):
                        if not text:
                            return []
                        self._text.append(text)
                        if pre is None:
                            self._template(data, obj, text)
                        return [StreamChunk(text)]
                    out: list[StreamChunk] = []
                    if text:
                        self._text.append(text)
                        out.append(StreamChunk(text))
                else:
                    c = self._choice(ch, delta)
                    out = [] if c is None else [c]
            else:
                out = []
        else:
            out = []
        if usage is not None:
            self._usage = usage
        if obj.get("error"):
            # An error object next to (or without) choices: OpenRouter reports a failure
            # mid-stream this way. Typed; what came before it stays in ``partial()`` (the
            # engine makes it a StreamInterruptedError carrying the partial answer).
            raise in_band_error(self._adapter.map_error, obj, data.encode(), {}, self._dep)
        if usage is not None:
            out.append(chunk(usage=usage))
        return out

    def _template(self, data: str, obj: dict[str, Any], text: str) -> None:
        """Keep what the text-only event ``data`` (``obj``, its text ``text``) holds around its
        text if a marker in its place parses to ``obj`` with the marker as text: an event of
        the same parts around any JSON string is then this one (read already) with that text."""
        self._pre = ""  # tried: once per stream
        at = data.find('"content":')
        if at < 0 or text == _MARK_TEXT:
            return
        at += 10
        enc = orjson.dumps(text).decode()  # as most upstreams encode it; else no template
        if data[at : at + len(enc)] != enc:
            return
        pre, post = data[:at], data[at + len(enc) :]
        try:
            probe = _loads(pre + _MARK + post)
            delta = probe["choices"][0]["delta"]
            if delta.get("content") != _MARK_TEXT:
                return
            delta["content"] = text
        except (JSONDecodeError, LookupError, TypeError, AttributeError):
            return
        if probe == obj:
            self._pre, self._post = pre, post

    def _choice(self, ch: dict[str, Any], delta: Any) -> StreamChunk | None:
        text = reasoning = None
        tdeltas: list[ToolCallDelta] = []
        if isinstance(delta, dict) and delta:
            text = delta.get("content")
            if text.__class__ is not str:  # as in a plain answer: parts give their text
                text = _parts_text(text) if text.__class__ is list else None
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
        if raw_finish.__class__ is not str:  # malformed (an object, a number): absent
            raw_finish = None
        if raw_finish:
            self._raw_finish = raw_finish
            if raw_finish == "content_filter":
                self._filter = filtered_categories(ch) or ""
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
        sig = None
        if slot[3] is None and "extra_content" in tc:
            sig = slot[3] = thought_signature(tc)
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
        if args.__class__ is not str:  # an object (some servers): encoded, as in a plain answer
            args = args_text(args)
        if args:
            slot[2].append(args)
        return ToolCallDelta(idx, new_id, name, args, sig)

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


def _parts_text(parts: list[Any]) -> str:
    """The text of content given as parts (``[{"type": "text", "text": ...}, ...]``)."""
    return "".join(
        t
        for p in parts
        if isinstance(p, dict) and p.get("type") == "text"
        if (t := p.get("text", "")).__class__ is str
    )
