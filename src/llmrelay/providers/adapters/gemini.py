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

Gemini 3 rejects a replayed ``functionCall`` without its ``thoughtSignature``. Signatures come
back where they were received (``ToolCall.signature`` on its ``functionCall`` part, thought and
text signatures from ``Response.reasoning_parts`` on theirs), with ``functionCall.id`` and
``functionResponse.id``; only a turn of calls with no signature at all (written by hand, or by
another provider) gets the sentinel Google documents (``skip_thought_signature_validator``).
``reasoning_effort`` becomes ``generationConfig.thinkingConfig`` by model family (:data:`THINKING`).

This module builds the request; answers and streams are read in ``gemini_stream.py`` and errors
mapped in ``gemini_errors.py``.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from ...errors import APIError, ConfigurationError, InvalidRequestError, shown
from ...transport.base import HttpRequest, HttpResponse
from ...types import (
    AudioPart,
    ChatRequest,
    ContentPart,
    DocumentPart,
    GenerationParams,
    ImagePart,
    Message,
    ReasoningMap,
    ReasoningPart,
    Response,
    TextPart,
)
from ..table import Deployment
from .base import (
    answer_request_id,
    decode_json,
    encode_body,
    invalid,
    json_schema_format,
    send_headers,
)
from .gemini_errors import check_prompt_blocked, in_band_error, map_error
from .gemini_stream import (
    FILTER_REASONS,
    GeminiStream,
    Turn,
    filtered,
    finish_reason,
    first_candidate,
    usage_from,
)
from .tool_args import tool_call_args

__all__ = ["GeminiAdapter"]

_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
#: Google's documented stand-in for a thought signature a function call does not have
#: (https://ai.google.dev/gemini-api/docs/thought-signatures, FAQ: history written by hand or
#: moved from another model): sent only on the first call of a model turn none of whose calls
#: has a signature. Gemini accepts the turn; no earlier reasoning is restored.
SIGNATURE_SENTINEL = "skip_thought_signature_validator"
#: Document types by extension, for ``fileData`` URLs without a media type.
_DOCUMENT_TYPES = {
    "pdf": "application/pdf",
    "txt": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "csv": "text/csv",
    "xml": "text/xml",
}
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


def _file(url: str, mime: str | None) -> dict[str, Any]:
    fd: dict[str, Any] = {"fileUri": url}
    if mime:
        fd["mimeType"] = mime
    return {"fileData": fd}


def _ext(url: str) -> tuple[str, str]:
    path = url.split("?", 1)[0].split("#", 1)[0]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return path, ext


def _image(p: ImagePart) -> dict[str, Any]:
    inline = p.as_base64()
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    url = p.url or ""
    path, ext = _ext(url)
    return _file(url, p.media_type or _IMAGE_TYPES.get(ext) or mimetypes.guess_type(path)[0])


def _document(p: DocumentPart) -> dict[str, Any]:
    """PDFs and text documents go inline (``inlineData``) or by URI (``fileData``: a Files API
    URI, a ``gs://`` object or a public URL), as https://ai.google.dev/gemini-api/docs/document-processing
    shows."""
    inline = p.as_base64()
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    url = p.url or ""
    path, ext = _ext(url)
    return _file(url, p.media_type or _DOCUMENT_TYPES.get(ext) or mimetypes.guess_type(path)[0])


def _parts(content: str | list[ContentPart] | None) -> list[dict[str, Any]]:
    """A user (or system) message's parts. Gemini refuses empty text parts ("it has an empty
    text parameter"): they are left out. ``cache_control`` is ignored: Gemini caches repeated
    prompt prefixes by itself (implicit caching), and explicit caches are separate objects
    (``cachedContent``) a caller passes through ``extra``. Reasoning parts of other turns are
    not the user's: they are left out."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    out: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, TextPart):
            if p.text:
                out.append({"text": p.text})
        elif isinstance(p, ImagePart):
            out.append(_image(p))
        elif isinstance(p, DocumentPart):
            out.append(_document(p))
        elif isinstance(p, AudioPart):
            out.append({"inlineData": {"mimeType": p.media_type, "data": p.as_base64()}})
    return out


def _text_end(part_id: str | None) -> int | None:
    """Where a signed text part ended, from a ``text:<n>`` id (``gemini_stream.Turn``); None
    for any other id (``str.isdigit`` passes digits ``int`` refuses, such as "²", and ``int``
    refuses more than 4,300 of them)."""
    if part_id is None or not part_id.startswith("text:"):
        return None
    n = part_id[5:]
    return int(n) if 0 < len(n) <= 12 and n.isascii() and n.isdigit() else None


def _model_parts(m: Message) -> list[dict[str, Any]]:
    """An assistant message as a ``model`` turn, with every thought signature back in the part
    it came with (``gemini_stream.Turn`` says where each one was): signed thoughts first, then
    the text (cut where a signed text part ended), then the function calls with their ids and
    signatures. A turn of calls none of which has a signature (history written by hand or by
    another provider) gets Google's documented stand-in on its first call, which Gemini 3
    accepts in place of a signature it made (see :data:`SIGNATURE_SENTINEL`)."""
    content = m.content
    out: list[dict[str, Any]] = []
    text_sigs: list[tuple[int, str]] = []
    texts: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    else:
        for p in content or ():
            if isinstance(p, ReasoningPart):
                if p.provider != "gemini" or not p.signature:
                    continue  # another provider's, or a thought Gemini did not sign
                end = _text_end(p.id)
                if end is not None:
                    text_sigs.append((end, p.signature))
                else:
                    out.append({"text": p.text, "thought": True, "thoughtSignature": p.signature})
            elif isinstance(p, TextPart):
                texts.append(p.text)
            else:
                out.extend(_parts([p]))
    text = "".join(texts)
    start = 0
    for end, sig in sorted(text_sigs):
        end = min(max(end, start), len(text))
        if end > start:
            out.append({"text": text[start:end], "thoughtSignature": sig})
        elif out and "text" in out[-1] and "thought" not in out[-1] and start:
            out[-1].setdefault("thoughtSignature", sig)  # an empty signed part at the end
        start = end
    if start < len(text):
        out.append({"text": text[start:]})
    calls = m.tool_calls or []
    signed = any(tc.signature for tc in calls)
    for n, tc in enumerate(calls):
        fc: dict[str, Any] = {"name": tc.name, "args": tool_call_args(tc, "Gemini")}
        if tc.id:
            fc["id"] = tc.id
        part: dict[str, Any] = {"functionCall": fc}
        if tc.signature:
            part["thoughtSignature"] = tc.signature
        elif n == 0 and not signed:
            part["thoughtSignature"] = SIGNATURE_SENTINEL
        out.append(part)
    return out


def _tool_result(text: str, is_error: bool | None) -> dict[str, Any]:
    """Gemini wants an object: a JSON object goes as is, anything else as ``{"result": ...}``;
    a failed tool's result goes as ``{"error": ...}``, the key Google documents for error
    details (``FunctionResponse.response``: "output" for the output, "error" for errors)."""
    try:
        value = orjson.loads(text) if text else text
    except orjson.JSONDecodeError:
        value = text
    if is_error:
        return {"error": value}
    return value if isinstance(value, dict) else {"result": value}


def _contents(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(contents, system parts)``. ``system`` and ``developer`` messages become the system
    instruction. Consecutive turns of one role are merged, and consecutive tool results become
    one ``user`` turn, as Gemini expects answers to parallel calls."""
    contents: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    last_kind = ""
    for i, m in enumerate(messages):
        if m.role in ("system", "developer"):
            system.extend(_parts(m.content))
            continue
        if m.role == "tool":
            call_id = m.tool_call_id or ""
            name = names.get(call_id) or m.name
            if not name:
                raise InvalidRequestError(
                    f"messages[{i}] answers tool call {shown(call_id)}, which no earlier "
                    "assistant message made; Gemini needs the function name: keep the assistant "
                    "message with its tool_calls in the conversation, or set the tool message's "
                    "`name`"
                )
            fr: dict[str, Any] = {"name": name, "response": _tool_result(m.text(), m.is_error)}
            if call_id:
                fr["id"] = call_id
            parts = [{"functionResponse": fr}]
            role, kind = "user", "tool"
        elif m.role == "assistant":
            for tc in m.tool_calls or ():
                names[tc.id] = tc.name
            parts = _model_parts(m)
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


# reasoning_effort -> generationConfig.thinkingConfig: a catalog row's ``reasoning`` map when the
# catalog knows the model, else these family defaults (the first pattern that matches the start
# of the model name wins; the bundled rows agree with them). Sources, read 2026-12-03:
#   https://ai.google.dev/gemini-api/docs/thinking (thinkingLevel for Gemini 3 and later: 3 Pro
#   takes low and high and cannot turn thinking off, 3.x Pro takes no minimal, Flash takes
#   minimal/low/medium/high, and minimal does not guarantee no thinking; thinkingBudget for
#   2.5: 0 turns it off on Flash and Flash-Lite, not on Pro (128-32768), Flash-Lite's smallest
#   budget is 512);
#   https://ai.google.dev/gemini-api/docs/openai (Google's own reasoning_effort mapping for
#   2.5: low 1,024, medium 8,192, high 24,576 tokens; "none" turns thinking off);
#   recording gemini-400-thinking-level-unsupported ("Thinking level MINIMAL is not supported
#   for this model").
_SOURCE = "https://ai.google.dev/gemini-api/docs/thinking"
_BUDGETS = {"low": 1024, "medium": 8192, "high": 24576}
_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
_PRO_LEVELS = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
THINKING: tuple[tuple[str, ReasoningMap], ...] = (
    (
        r"gemini-3-pro",
        ReasoningMap(
            "level",
            {"low": "LOW", "high": "HIGH"},
            {"minimal": "low", "medium": "high"},
            source=_SOURCE,
        ),
    ),
    (
        r"gemini-(?:[3-9]|\d\d)(?:\.\d+)?-pro",
        ReasoningMap("level", _PRO_LEVELS, {"minimal": "low"}, source=_SOURCE),
    ),
    (r"gemini-(?:[3-9]|\d\d)", ReasoningMap("level", _LEVELS, source=_SOURCE)),
    (r"gemini-2\.5-pro", ReasoningMap("budget", {"minimal": 128, **_BUDGETS}, source=_SOURCE)),
    (
        r"gemini-2\.5-flash",
        ReasoningMap("budget", {"minimal": 512, **_BUDGETS}, off=0, source=_SOURCE),
    ),
)


def thinking_map(model: str) -> ReasoningMap | None:
    """How ``model`` takes ``reasoning_effort`` when the catalog does not say (by name), or
    None for a model no family default covers."""
    name = model.removeprefix("models/").rsplit("/", 1)[-1]
    return next((r for pattern, r in THINKING if re.match(pattern, name)), None)


def _thinking(
    effort: str, model: str, rule: ReasoningMap | None, adjusted: dict[str, str]
) -> dict[str, Any] | None:
    """``thinkingConfig`` for ``reasoning_effort`` on ``model`` as ``rule`` says (thought
    summaries included, so ``Response.reasoning`` has them), or None with the reason in
    ``adjusted``."""
    name = model.removeprefix("models/").rsplit("/", 1)[-1]
    if rule is None:
        adjusted["reasoning_effort"] = (
            f"dropped: no known thinking setting for Gemini model {name}; pass "
            "extra={'generationConfig': {'thinkingConfig': {...}}} to set one"
        )
        return None
    if rule.style == "none":
        adjusted["reasoning_effort"] = f"dropped: {name} does not think"
        return None
    if rule.style not in ("level", "budget"):  # a catalog row's map meant for another API
        raise ConfigurationError(
            f"the catalog's reasoning map for {name} has style {shown(rule.style)}, which "
            "Gemini does not take; fix the row's reasoning.style (level, budget or none)"
        )
    level = rule.nearest.get(effort, effort)
    if level == "none":
        if rule.off is None:
            adjusted["reasoning_effort"] = f"dropped: {name} cannot turn thinking off"
            return None
        value: str | int = rule.off
    elif level not in rule.values:
        takes = ", ".join(rule.values)
        adjusted["reasoning_effort"] = f"dropped: {name} takes no {effort} (only {takes})"
        return None
    else:
        if level != effort:
            adjusted["reasoning_effort"] = f"sent as {level}: {name} takes {', '.join(rule.values)}"
        value = rule.values[level]
    if rule.style == "level":
        return {"thinkingLevel": value, "includeThoughts": True}
    if value == 0:
        return {"thinkingBudget": 0}  # thinking off: there are no thoughts to include
    return {"thinkingBudget": value, "includeThoughts": True}


def _generation_config(
    p: GenerationParams, model: str, reasoning: ReasoningMap | None, adjusted: dict[str, str]
) -> dict[str, Any]:
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
                f"response_format type {shown(kind)} is not supported by Gemini; use 'text', "
                "'json_object' or 'json_schema'",
                body={"param": "response_format"},
            )
    if p.reasoning_effort is not None:
        tc = _thinking(p.reasoning_effort, model, reasoning or thinking_map(model), adjusted)
        if tc is not None:
            gc["thinkingConfig"] = tc
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
        adjusted: dict[str, str] = {}
        gc = _generation_config(p, dep.model, req.reasoning, adjusted)
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
        if p.user is not None:
            adjusted["user"] = "dropped: Google Gemini does not support it"
        if p.prompt_cache_key is not None:
            adjusted["prompt_cache_key"] = "dropped: Google Gemini does not support it"
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
        rid = data.get("responseId")
        rid = rid if isinstance(rid, str) else None
        turn = Turn()
        turn.add(cand.get("content"), rid)
        turn.finish()
        raw = cand.get("finishReason")
        raw = raw if isinstance(raw, str) else None
        if raw in FILTER_REASONS:
            assert raw is not None
            raise filtered(raw, cand, "".join(turn.text), dep, resp.headers, data)
        return Response(
            text="".join(turn.text),
            tool_calls=turn.calls,
            finish_reason=finish_reason(raw, bool(turn.calls)),
            raw_finish_reason=raw,
            usage=usage_from(data.get("usageMetadata")),
            provider=dep.provider,
            model=str(data.get("modelVersion") or dep.model),
            alias=dep.alias,
            id=rid,
            request_id=answer_request_id(resp.headers, dep),
            reasoning="".join(turn.thoughts),
            reasoning_parts=turn.reasoning_parts,
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
