"""Google Gemini: the Generative Language API (``{base_url}/models/{model}:generateContent``).

Streaming uses ``:streamGenerateContent?alt=sse``: every SSE event is a whole
``GenerateContentResponse`` holding only the new parts; there is no ``[DONE]``, the chunk that
carries a ``finishReason`` (with the final ``usageMetadata``) ends the answer. The key goes in the
``x-goog-api-key`` header, never in the URL (URLs end up in logs and proxies).

Tool parameters go out as ``parametersJsonSchema`` and structured output as
``responseJsonSchema``: both take a JSON Schema as written (``$defs``/``$ref``, ``anyOf``,
``additionalProperties``, ``title``), which is what pydantic and users produce. The older
``parameters``/``responseSchema`` fields take Google's OpenAPI-3.0 ``Schema`` subset and reject
those keywords ("Unknown name \\"$defs\\""), so they would need a lossy rewrite of every schema.

Gemini 3 rejects a replayed ``functionCall`` without its ``thoughtSignature``. ``ToolCall`` has no
field to carry the signature back, so replayed calls get the sentinel Google documents for history
the model did not produce itself (``skip_thought_signature_validator``): the request is accepted,
the model's earlier reasoning is not restored.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from ..errors import (
    APIError,
    AuthenticationError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
    StreamInterruptedError,
)
from ..headers import parse_retry_after, request_id_from
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

__all__ = ["GeminiAdapter"]

_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
#: Google's documented stand-in for a thought signature we do not have (see the module doc).
SIGNATURE_SENTINEL = "skip_thought_signature_validator"
_CONTEXT_MARKERS = ("input token count", "exceeds the maximum number of tokens", "too many tokens")
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_NOT_FOUND"})
_AUTH_MARKERS = ("api key not valid", "api key expired", "api key not found", "api_key_invalid")
#: Gemini's image types by extension (mimetypes' table differs between systems).
_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
}
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


# --------------------------------------------------------------------------- request


def _image(p: ImagePart) -> dict[str, Any]:
    inline = p.as_base64()
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    url = p.url or ""
    path = url.split("?", 1)[0].split("#", 1)[0]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    mime = p.media_type or _IMAGE_TYPES.get(ext) or mimetypes.guess_type(path)[0]
    fd: dict[str, Any] = {"fileUri": url}
    if mime:
        fd["mimeType"] = mime
    return {"fileData": fd}


def _parts(content: str | list[ContentPart] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    # Gemini refuses empty text parts ("it has an empty text parameter"): leave them out.
    if isinstance(content, str):
        return [{"text": content}] if content else []
    out: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, TextPart):
            if p.text:
                out.append({"text": p.text})
        elif isinstance(p, ImagePart):
            out.append(_image(p))
    return out


def _call_args(tc: ToolCall) -> dict[str, Any]:
    try:
        args = orjson.loads(tc.arguments or "{}")
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"the assistant tool call {tc.name!r} has arguments that are not a JSON object "
            f"({tc.arguments[:80]!r}); Gemini needs the arguments as an object"
        )
    return args


def _tool_result(text: str) -> dict[str, Any]:
    """Gemini wants an object: a JSON object goes as is, anything else as ``{"result": ...}``."""
    try:
        value = orjson.loads(text) if text else text
    except orjson.JSONDecodeError:
        value = text
    return value if isinstance(value, dict) else {"result": value}


def _contents(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(contents, system parts)``. Consecutive turns of one role are merged, and consecutive
    tool results become one ``user`` turn, as Gemini expects answers to parallel calls."""
    contents: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    last_kind = ""
    for i, m in enumerate(messages):
        if m.role == "system":
            if m.text():
                system.append({"text": m.text()})
            continue
        if m.role == "tool":
            call_id = m.tool_call_id or ""
            name = names.get(call_id) or m.name
            if not name:
                raise InvalidRequestError(
                    f"messages[{i}] answers tool call {call_id!r}, which no earlier assistant "
                    "message made; Gemini needs the function name: keep the assistant message "
                    "with its tool_calls in the conversation, or set the tool message's `name`"
                )
            parts = [{"functionResponse": {"name": name, "response": _tool_result(m.text())}}]
            role, kind = "user", "tool"
        elif m.role == "assistant":
            parts = _parts(m.content)
            for n, tc in enumerate(m.tool_calls or ()):
                names[tc.id] = tc.name
                part: dict[str, Any] = {"functionCall": {"name": tc.name, "args": _call_args(tc)}}
                if n == 0:
                    part["thoughtSignature"] = SIGNATURE_SENTINEL
                parts.append(part)
            role, kind = "model", "model"
        else:
            parts = _parts(m.content)
            role, kind = "user", "user"
        if not parts:
            continue  # an empty turn (e.g. an empty answer): Gemini refuses empty parts
        if kind == last_kind and contents:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
        last_kind = kind
    return contents, system


def _generation_config(p: GenerationParams) -> dict[str, Any]:
    gc: dict[str, Any] = {}
    if p.temperature is not None:
        gc["temperature"] = p.temperature
    if p.max_tokens is not None:
        gc["maxOutputTokens"] = p.max_tokens
    if p.top_p is not None:
        gc["topP"] = p.top_p
    if p.stop:
        gc["stopSequences"] = list(p.stop)
    if p.seed is not None:
        gc["seed"] = p.seed
    if p.frequency_penalty is not None:
        gc["frequencyPenalty"] = p.frequency_penalty
    if p.presence_penalty is not None:
        gc["presencePenalty"] = p.presence_penalty
    rf = p.response_format
    if rf is not None:
        kind = rf.get("type")
        if kind == "json_schema":
            js = rf.get("json_schema")
            schema = js.get("schema") if isinstance(js, Mapping) else None
            if not isinstance(schema, Mapping):
                raise InvalidRequestError(
                    "response_format json_schema needs {'json_schema': {'name': ..., "
                    "'schema': {...}}}"
                )
            gc["responseMimeType"] = "application/json"
            gc["responseJsonSchema"] = schema
        elif kind == "json_object":
            gc["responseMimeType"] = "application/json"
        elif kind != "text":
            raise InvalidRequestError(
                f"response_format type {kind!r} is not supported by Gemini; use 'text', "
                "'json_object' or 'json_schema'"
            )
    return gc


def _tool_config(choice: str) -> dict[str, Any]:
    mode = _TOOL_CHOICE_MODES.get(choice)
    if mode is not None:
        return {"functionCallingConfig": {"mode": mode}}
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice]}}


# --------------------------------------------------------------------------- response


def usage_from(u: Any) -> Usage:
    if not isinstance(u, dict):
        return make_usage()
    thoughts = as_int(u.get("thoughtsTokenCount"))
    return make_usage(
        # Tokens of tool-use prompts (e.g. search results) are billed as input.
        input_tokens=as_int(u.get("promptTokenCount")) + as_int(u.get("toolUsePromptTokenCount")),
        output_tokens=as_int(u.get("candidatesTokenCount")) + thoughts,
        cached_tokens=as_int(u.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _finish(raw: str | None, has_calls: bool) -> FinishReason | None:
    if not raw:
        return None
    reason = _FINISH.get(raw, "other")
    # Gemini ends a turn of function calls with STOP.
    return "tool_calls" if has_calls and reason == "stop" else reason


def _check_prompt_blocked(
    data: dict[str, Any], dep: Deployment, headers: Mapping[str, str]
) -> None:
    pf = data.get("promptFeedback")
    if data.get("candidates") or not isinstance(pf, dict) or not pf.get("blockReason"):
        return
    reason = str(pf["blockReason"])
    flagged = [
        str(r.get("category", "")).removeprefix("HARM_CATEGORY_").lower()
        for r in pf.get("safetyRatings") or ()
        if isinstance(r, dict) and (r.get("blocked") or r.get("probability") in ("MEDIUM", "HIGH"))
    ]
    detail = f" ({', '.join(flagged)})" if flagged else ""
    raise make_error(
        ContentFilteredError,
        f"Gemini blocked the prompt: blockReason {reason}{detail}",
        status=None,
        headers=headers,
        dep=dep,
        body=data,
    )


class _Parts:
    """What the parts of one candidate hold: text, thoughts and function calls."""

    __slots__ = ("calls", "text", "thoughts")

    def __init__(self, content: Any) -> None:
        self.text: list[str] = []
        self.thoughts: list[str] = []
        self.calls: list[tuple[str | None, str, str]] = []
        parts = content.get("parts") if isinstance(content, dict) else None
        for p in parts if isinstance(parts, list) else ():
            if not isinstance(p, dict):
                continue
            t = p.get("text")
            if isinstance(t, str):
                (self.thoughts if p.get("thought") else self.text).append(t)
            fc = p.get("functionCall")
            if isinstance(fc, dict):
                args = fc.get("args")
                cid = fc.get("id")
                self.calls.append(
                    (
                        cid if isinstance(cid, str) and cid else None,
                        str(fc.get("name") or ""),
                        orjson.dumps(args if args is not None else {}).decode(),
                    )
                )


def _first_candidate(data: dict[str, Any]) -> dict[str, Any] | None:
    cands = data.get("candidates")
    if isinstance(cands, list) and cands and isinstance(cands[0], dict):
        return cands[0]
    return None


def _retry_delay(details: list[Any]) -> float | None:
    for d in details:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            m = _DELAY.match(str(d.get("retryDelay") or ""))
            if m:
                return float(m.group(1))
    return None


class GeminiAdapter:
    name: ClassVar[str] = "gemini"

    def build_request(self, req: ChatRequest, dep: Deployment) -> HttpRequest:
        p = req.params
        contents, system = _contents(req.messages)
        if not contents:
            raise InvalidRequestError(
                "Gemini needs at least one user message besides the system prompt"
            )
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        gc = _generation_config(p)
        if gc:
            body["generationConfig"] = gc
        if p.tools:
            decls = []
            for t in p.tools:
                fn: dict[str, Any] = {"name": t.name}
                if t.description:
                    fn["description"] = t.description
                fn["parametersJsonSchema"] = t.parameters
                decls.append(fn)
            body["tools"] = [{"functionDeclarations": decls}]
        if p.tool_choice is not None:
            body["toolConfig"] = _tool_config(p.tool_choice)
        adjusted: dict[str, str] = {}
        if p.user is not None:
            adjusted["user"] = "dropped: Google Gemini does not support it"
        for k, v in p.extra.items():
            cur = body.get(k)
            # Merge objects one level deep, so extra={"generationConfig": {"thinkingConfig":
            # ...}} adds to the generation config instead of replacing it.
            body[k] = {**cur, **v} if isinstance(cur, dict) and isinstance(v, Mapping) else v
        headers = {"content-type": "application/json", "accept": "application/json"}
        if req.stream:
            headers["accept"] = "text/event-stream"
        key = dep.api_key.get() if dep.api_key else None
        if key:
            headers["x-goog-api-key"] = key
        if dep.spec is not None and dep.spec.extra_headers:
            headers.update(dep.spec.extra_headers)
        if dep.headers:
            headers.update(dep.headers)
        model = dep.model
        if not model.startswith(("models/", "tunedModels/")):
            model = "models/" + model
        if req.stream:
            url = f"{dep.base_url}/{model}:streamGenerateContent?alt=sse"
        else:
            url = f"{dep.base_url}/{model}:generateContent"
        return HttpRequest("POST", url, headers, orjson.dumps(body), adjusted)

    def parse_response(self, resp: HttpResponse, req: ChatRequest, dep: Deployment) -> Response:
        data = decode_json(resp.body, dep)
        if isinstance(data, list):
            # streamGenerateContent without alt=sse answers a JSON array of chunks.
            return self._from_chunks(data, resp, dep)
        if not isinstance(data, dict):
            raise invalid("the response is not a JSON object", dep, resp.headers)
        if "error" in data and "candidates" not in data:
            raise self._in_band_error(data, resp.headers, dep)
        _check_prompt_blocked(data, dep, resp.headers)
        cand = _first_candidate(data)
        if cand is None:
            raise invalid("the response has no candidates", dep, resp.headers)
        parts = _Parts(cand.get("content"))
        calls = [ToolCall(c[0] or f"call_{i}", c[1], c[2]) for i, c in enumerate(parts.calls)]
        raw = cand.get("finishReason")
        raw = raw if isinstance(raw, str) else None
        return Response(
            text="".join(parts.text),
            tool_calls=calls,
            finish_reason=_finish(raw, bool(calls)),
            raw_finish_reason=raw,
            usage=usage_from(data.get("usageMetadata")),
            provider=dep.provider,
            model=str(data.get("modelVersion") or dep.model),
            alias=dep.alias,
            id=data.get("responseId"),
            request_id=request_id_from(resp.headers),
        )

    def _from_chunks(self, chunks: list[Any], resp: HttpResponse, dep: Deployment) -> Response:
        state = _GeminiStream(self, dep)
        for c in chunks:
            if not isinstance(c, dict):
                raise invalid("the response array holds a non-object", dep, resp.headers)
            if "error" in c and "candidates" not in c:
                raise self._in_band_error(c, resp.headers, dep)
            state.feed_obj(c, resp.headers)
        out = state.finish()
        out.request_id = request_id_from(resp.headers)
        return out

    def _in_band_error(
        self, obj: dict[str, Any], headers: Mapping[str, str], dep: Deployment
    ) -> APIError:
        err = obj.get("error")
        code = err.get("code") if isinstance(err, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        e = self.map_error(status, headers, orjson.dumps(obj), dep)
        if type(e).__name__ == "APIStatusError":
            e = make_error(ServerError, e.message, status=status, headers=headers, dep=dep)
        return e

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
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
            text = body[:300].decode("utf-8", "replace").strip()
            message = f"HTTP {status}" + (f": {text}" if text else "")
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

    def stream_state(self, req: ChatRequest, dep: Deployment) -> _GeminiStream:
        return _GeminiStream(self, dep)


class _GeminiStream:
    """Gemini has no end marker: a chunk with a ``finishReason`` completes the answer, and the
    backend reads on to the end of the body in case usage follows in a later chunk."""

    __slots__ = (
        "_adapter",
        "_calls",
        "_dep",
        "_id",
        "_model",
        "_raw_finish",
        "_text",
        "_usage",
        "done",
    )

    def __init__(self, adapter: GeminiAdapter, dep: Deployment) -> None:
        self._adapter = adapter
        self._dep = dep
        self._text: list[str] = []
        self._calls: list[ToolCall] = []
        self._raw_finish: str | None = None
        self._usage: Usage | None = None
        self._id: str | None = None
        self._model: str | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        data = event.data
        if data == "[DONE]":  # not Google's, but some proxies add it: nothing to read
            return []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise invalid(f"stream event is not JSON: {data[:200]!r}", self._dep) from None
        if not isinstance(obj, dict):
            raise invalid("stream event is not a JSON object", self._dep)
        if "error" in obj and "candidates" not in obj:
            raise self._adapter._in_band_error(obj, {}, self._dep)
        return self.feed_obj(obj, {})

    def feed_obj(self, obj: dict[str, Any], headers: Mapping[str, str]) -> list[StreamChunk]:
        _check_prompt_blocked(obj, self._dep, headers)
        if self._id is None:
            rid = obj.get("responseId")
            self._id = rid if isinstance(rid, str) else None
            mv = obj.get("modelVersion")
            self._model = mv if isinstance(mv, str) else None
        if isinstance(obj.get("usageMetadata"), dict):
            self._usage = usage_from(obj["usageMetadata"])
        cand = _first_candidate(obj)
        if cand is None:
            return []
        parts = _Parts(cand.get("content"))
        deltas: list[ToolCallDelta] = []
        for cid, name, args in parts.calls:
            index = len(self._calls)
            call = ToolCall(cid or f"call_{index}", name, args)
            self._calls.append(call)
            deltas.append(ToolCallDelta(index, call.id, name, args))
        text = "".join(parts.text)
        self._text.append(text)
        raw = cand.get("finishReason")
        finish: FinishReason | None = None
        if isinstance(raw, str) and raw:
            self._raw_finish = raw
            finish = _finish(raw, bool(self._calls))
        if not (text or deltas or parts.thoughts or finish):
            return []
        return [
            chunk(
                text,
                tool_calls=deltas,
                reasoning="".join(parts.thoughts),
                finish_reason=finish,
                usage=self._usage if finish else None,
            )
        ]

    def _response(self) -> Response:
        raw = self._raw_finish
        return Response(
            text="".join(self._text),
            tool_calls=list(self._calls),
            finish_reason=_finish(raw, bool(self._calls)),
            raw_finish_reason=raw,
            usage=self._usage or make_usage(),
            provider=self._dep.provider,
            model=self._model or self._dep.model,
            alias=self._dep.alias,
            id=self._id,
        )

    def finish(self) -> Response:
        if self._raw_finish is None:
            raise StreamInterruptedError(
                "the stream ended before a chunk with a finishReason",
                provider=self._dep.provider,
                model=self._dep.model,
                partial=self._response(),
            )
        return self._response()

    def partial(self) -> Response:
        return self._response()
