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

This module builds the request; answers and streams are read in ``gemini_stream.py`` and errors
mapped in ``gemini_errors.py``.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from ...errors import APIError, InvalidRequestError
from ...transport.base import HttpRequest, HttpResponse
from ...types import (
    ChatRequest,
    ContentPart,
    GenerationParams,
    ImagePart,
    Message,
    Response,
    ToolCall,
)
from ..table import Deployment
from .base import (
    answer_request_id,
    content_parts,
    decode_json,
    encode_body,
    invalid,
    json_schema_format,
    send_headers,
    tool_call_args,
)
from .gemini_errors import check_prompt_blocked, in_band_error, map_error
from .gemini_stream import GeminiStream, Parts, finish_reason, first_candidate, usage_from

__all__ = ["GeminiAdapter"]

_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
#: Google's documented stand-in for a thought signature we do not have (see the module doc).
SIGNATURE_SENTINEL = "skip_thought_signature_validator"
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


def _text(text: str) -> dict[str, Any]:
    return {"text": text}


def _parts(content: str | list[ContentPart] | None) -> list[dict[str, Any]]:
    # Gemini refuses empty text parts ("it has an empty text parameter"): they are left out.
    return content_parts(content, _text, _image)


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
            text = m.text()
            if text:
                system.append({"text": text})
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
                args = tool_call_args(tc, "Gemini")
                part: dict[str, Any] = {"functionCall": {"name": tc.name, "args": args}}
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
            gc["responseMimeType"] = "application/json"
            gc["responseJsonSchema"] = json_schema_format(rf)[1]
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


# --------------------------------------------------------------------------- adapter


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
        headers = send_headers(
            {
                "content-type": "application/json",
                "accept": "text/event-stream" if req.stream else "application/json",
            },
            dep,
            "x-goog-api-key",
        )
        model = dep.model
        if not model.startswith(("models/", "tunedModels/")):
            model = "models/" + model
        if req.stream:
            url = f"{dep.base_url}/{model}:streamGenerateContent?alt=sse"
        else:
            url = f"{dep.base_url}/{model}:generateContent"
        return HttpRequest("POST", url, headers, encode_body(body, req, dep), adjusted)

    def parse_response(self, resp: HttpResponse, req: ChatRequest, dep: Deployment) -> Response:
        data = decode_json(resp.body, dep)
        if isinstance(data, list):
            # streamGenerateContent without alt=sse answers a JSON array of chunks.
            return self._from_chunks(data, resp, dep)
        if not isinstance(data, dict):
            raise invalid("the response is not a JSON object", dep, resp.headers)
        if "error" in data and "candidates" not in data:
            raise in_band_error(data, resp.headers, dep)
        check_prompt_blocked(data, dep, resp.headers)
        cand = first_candidate(data)
        if cand is None:
            raise invalid("the response has no candidates", dep, resp.headers)
        parts = Parts(cand.get("content"))
        calls = [ToolCall(c[0] or f"call_{i}", c[1], c[2]) for i, c in enumerate(parts.calls)]
        raw = cand.get("finishReason")
        raw = raw if isinstance(raw, str) else None
        return Response(
            text="".join(parts.text),
            tool_calls=calls,
            finish_reason=finish_reason(raw, bool(calls)),
            raw_finish_reason=raw,
            usage=usage_from(data.get("usageMetadata")),
            provider=dep.provider,
            model=str(data.get("modelVersion") or dep.model),
            alias=dep.alias,
            id=data.get("responseId"),
            request_id=answer_request_id(resp.headers, dep),
        )

    def _from_chunks(self, chunks: list[Any], resp: HttpResponse, dep: Deployment) -> Response:
        state = GeminiStream(dep)
        for c in chunks:
            if not isinstance(c, dict):
                raise invalid("the response array holds a non-object", dep, resp.headers)
            if "error" in c and "candidates" not in c:
                raise in_band_error(c, resp.headers, dep)
            state.feed_obj(c, resp.headers)
        out = state.finish()
        out.request_id = answer_request_id(resp.headers, dep)
        return out

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        return map_error(status, headers, body, dep)

    def stream_state(self, req: ChatRequest, dep: Deployment) -> GeminiStream:
        return GeminiStream(dep)
