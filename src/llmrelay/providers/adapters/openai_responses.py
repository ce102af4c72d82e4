"""OpenAI Responses (``POST {base_url}/responses``).

The API OpenAI's current models need for part of what callers do (tool calling on the GPT-6
family, reasoning items that round-trip). It serves OpenAI, Azure OpenAI's v1 API and the
OpenAI-compatible vendors that implement ``/v1/responses``; which API a call uses is decided in
``llmrelay.providers.api_choice``. Errors have the Chat Completions shape and are typed by the
same mapping (:class:`~.openai_chat.OpenAIChatAdapter`).

Request (fields as the openai SDK's types generated from OpenAI's API spec name them,
``openai.types.responses.response_create_params``, checked against recorded requests in
``tests/recordings``): system/developer messages before the first other message become
``instructions``; the rest become ``input`` items -- ``message`` items, ``function_call`` /
``function_call_output`` items for tool turns and ``reasoning`` items replayed from this API's
own ``ReasoningPart`` s (id, summary and ``encrypted_content``).

``store`` is false unless ``extra`` says otherwise: llmrelay sends the whole conversation each
turn, so nothing needs to be kept at OpenAI, and for reasoning models
``include: ["reasoning.encrypted_content"]`` is added so reasoning still round-trips (what
simonw/llm and the Vercel AI SDK send with ``store=false``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from ...errors import APIError, InvalidRequestError, shown
from ...transport.base import HttpRequest, HttpResponse
from ...types import (
    AudioPart,
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    ReasoningPart,
    Response,
    TextPart,
    ToolCall,
)
from ..table import Deployment
from .base import (
    answer_request_id,
    decode_json,
    encode_body,
    invalid,
    json_schema_format,
    openai_post,
)
from .openai_responses_output import (
    WIRE,
    failed_error,
    map_error,
    parse_output,
    plain_text,
    raise_filtered,
    raise_refusal,
    response_from,
    usage_from,
)
from .openai_responses_stream import ResponsesStream

__all__ = ["OpenAIResponsesAdapter", "build_body", "build_input", "is_reasoning_model"]

#: OpenAI reasoning models (o-series, GPT-5 and later except the ``-chat`` variants): they take
#: ``reasoning`` and can return encrypted reasoning. A vendor prefix (``openai/gpt-5``) is
#: ignored. Same rule as the Vercel AI SDK's ``isReasoningModel``.
_REASONING_MODEL = re.compile(r"^(?:o\d+(?:-|$)|gpt-(?:[5-9]|[1-9]\d)(?:\.\d+)?(?!-chat)(?:-|$))")

#: Generation parameters the Responses API does not take: dropped, and the answer's
#: ``adjusted_params`` says so (a zero penalty, seed 002's default, is dropped silently).
_UNSUPPORTED = {
    "stop": "dropped: the Responses API has no stop sequences",
    "seed": "dropped: the Responses API takes no seed",
    "frequency_penalty": "dropped: the Responses API takes no frequency_penalty",
    "presence_penalty": "dropped: the Responses API takes no presence_penalty",
}


def is_reasoning_model(model: str) -> bool:
    """Is ``model`` an OpenAI reasoning model (by its name)?"""
    try:
        return _REASONING[model]
    except KeyError:
        pass
    yes = _REASONING_MODEL.match(model.rsplit("/", 1)[-1]) is not None
    if len(_REASONING) >= 1024:
        _REASONING.clear()
    _REASONING[model] = yes
    return yes


#: model id -> is_reasoning_model (asked once per call).
_REASONING: dict[str, bool] = {}


# --------------------------------------------------------------------------- request


#: Providers whose Responses API takes no audio input: OpenAI's reference lists text, image and
#: file content for ``input`` (``ResponseInputContent``; ``ResponseInputAudio`` exists only for
#: evals and graders), and points audio at Chat Completions. OpenRouter's Responses API
#: documents ``input_audio``.
_NO_AUDIO = frozenset({"openai", "azure"})


def _user_content(m: Message, audio: bool = True) -> str | list[dict[str, Any]]:
    c = m.content
    if c is None:
        return ""
    if isinstance(c, str):
        return c
    parts: list[dict[str, Any]] = []
    for p in c:
        if isinstance(p, TextPart):
            parts.append({"type": "input_text", "text": p.text})
        elif isinstance(p, ImagePart):
            parts.append(
                {"type": "input_image", "image_url": p.as_url(), "detail": p.detail or "auto"}
            )
        elif isinstance(p, DocumentPart):
            inline = p.as_base64()
            doc: dict[str, Any] = {"type": "input_file"}
            if inline is not None:
                doc["file_data"] = f"data:{inline[0]};base64,{inline[1]}"
                doc["filename"] = p.name or "document"
            else:
                doc["file_url"] = p.url
                if p.name:
                    doc["filename"] = p.name
            parts.append(doc)
        elif isinstance(p, AudioPart):
            if not audio:
                raise InvalidRequestError(
                    "OpenAI's Responses API takes no audio input (text, images and files only); "
                    "send audio with api='chat' and an audio model, or transcribe it first"
                )
            if p.format not in ("mp3", "wav"):
                raise InvalidRequestError(
                    f"the Responses API takes mp3 or wav audio, not {p.media_type}; convert it "
                    "or send it with api='chat'"
                )
            parts.append(
                {"type": "input_audio", "input_audio": {"data": p.as_base64(), "format": p.format}}
            )
    return parts


def _text_of(m: Message) -> str:
    c = m.content
    if c is None:
        return ""
    if isinstance(c, str):
        return c
    return "".join(p.text for p in c if isinstance(p, TextPart))


def _reasoning_item(p: ReasoningPart) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": p.id,
        "summary": [{"type": "summary_text", "text": p.text}] if p.text else [],
    }
    if p.data:
        item["encrypted_content"] = p.data
    return item


def _call_item(tc: ToolCall) -> dict[str, Any]:
    return {
        "type": "function_call",
        "call_id": tc.id,
        "name": tc.name,
        "arguments": tc.arguments or "{}",
    }


def _assistant_items(m: Message, out: list[dict[str, Any]]) -> None:
    """An assistant message as output items, in the order the answer had them: each reasoning
    item directly before the item that followed it (the API refuses a function call without
    its reasoning item, and a reasoning item without its following item). The parts are read
    in order; a reasoning part's ``before_call`` puts that call right after it; text goes where
    its parts are; the remaining calls follow."""
    c = m.content
    calls = m.tool_calls or ()
    placed: set[int] = set()  # indexes into calls (ids may repeat in a malformed history)
    text = ""
    if isinstance(c, str):
        text = c
    elif c is not None:
        for p in c:
            if isinstance(p, ReasoningPart):
                # Only this API's own reasoning items go back (an Anthropic or Gemini part
                # means nothing here), and only those with the id the API needs.
                if p.provider != WIRE or not p.id:
                    continue
                if text:
                    out.append({"role": "assistant", "content": text})
                    text = ""
                out.append(_reasoning_item(p))
                after = p.before_call
                if after is not None:
                    k = next(
                        (k for k, tc in enumerate(calls) if tc.id == after and k not in placed),
                        None,
                    )
                    if k is not None:
                        out.append(_call_item(calls[k]))
                        placed.add(k)
            elif isinstance(p, TextPart):
                text += p.text
    if text:
        out.append({"role": "assistant", "content": text})
    for k, tc in enumerate(calls):
        if k not in placed:
            out.append(_call_item(tc))


def build_input(
    messages: Iterable[Message], *, audio: bool = True
) -> tuple[str | None, list[dict[str, Any]]]:
    """``(instructions, input items)`` for a conversation: the leading system and developer
    messages become the instructions; every later message an input item in order. ``audio``:
    whether the API behind takes audio parts (else they are refused before sending)."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    leading = True
    for m in messages:
        role = m.role
        if leading and role in ("system", "developer"):
            instructions.append(_text_of(m))
            continue
        leading = False
        if role == "assistant":
            _assistant_items(m, items)
        elif role == "tool":
            items.append(
                {"type": "function_call_output", "call_id": m.tool_call_id, "output": _text_of(m)}
            )
        elif role == "user":
            items.append({"role": "user", "content": _user_content(m, audio)})
        else:  # a system or developer message later in the conversation keeps its place
            items.append({"role": role, "content": _text_of(m)})
    return ("\n\n".join(instructions) if instructions else None), items


def _text_format(rf: Mapping[str, Any]) -> dict[str, Any]:
    kind = rf.get("type")
    if kind == "json_schema":
        js, schema = json_schema_format(rf)
        fmt: dict[str, Any] = {
            "type": "json_schema",
            "name": js.get("name") or "response",
            "schema": dict(schema),
        }
        if js.get("strict") is not None:
            fmt["strict"] = js["strict"]
        if js.get("description"):
            fmt["description"] = js["description"]
        return fmt
    if kind in ("json_object", "text"):
        return {"type": kind}
    raise InvalidRequestError(
        f"the Responses API takes response_format of type 'json_schema', 'json_object' or "
        f"'text', not {shown(kind)}",
        body={"param": "response_format"},
    )


def build_body(req: ChatRequest, dep: Deployment) -> tuple[dict[str, Any], dict[str, str]]:
    """The request body and the parameters adjusted for the API (``{name: what happened}``)."""
    p = req.params
    instructions, items = build_input(req.messages, audio=dep.provider not in _NO_AUDIO)
    body: dict[str, Any] = {"model": dep.model, "input": items}
    if instructions is not None:
        body["instructions"] = instructions
    adjusted: dict[str, str] = {}
    if p.temperature is not None:
        body["temperature"] = p.temperature
    if p.top_p is not None:
        body["top_p"] = p.top_p
    if p.max_tokens is not None:
        body["max_output_tokens"] = p.max_tokens
    if p.stop or p.seed is not None or p.frequency_penalty or p.presence_penalty:
        for name, what in _UNSUPPORTED.items():
            v = getattr(p, name)
            if v is not None and v != 0:
                adjusted[name] = what
    if p.tools:
        tools = []
        for t in p.tools:
            tool: dict[str, Any] = {"type": "function", "name": t.name}
            if t.description:
                tool["description"] = t.description
            tool["parameters"] = t.parameters
            # Chat Completions' default: not strict (the Responses API needs it named).
            tool["strict"] = bool(t.strict)
            tools.append(tool)
        body["tools"] = tools
    if p.tool_choice is not None:
        tc = p.tool_choice
        body["tool_choice"] = (
            tc if tc in ("auto", "none", "required") else {"type": "function", "name": tc}
        )
    if p.response_format is not None:
        body["text"] = {"format": _text_format(p.response_format)}
    effort = p.reasoning_effort
    reasoning = is_reasoning_model(dep.model) or (effort is not None and effort != "none")
    if effort is not None:
        # A summary only when the caller asks for reasoning: OpenAI refuses summaries to
        # organisations it has not verified, so a plain call never asks for one.
        body["reasoning"] = (
            {"effort": effort}
            if effort == "none"
            else {
                "effort": effort,
                "summary": "auto",
            }
        )
    if p.user is not None:
        body["user"] = p.user
    if p.prompt_cache_key is not None:
        body["prompt_cache_key"] = p.prompt_cache_key
    body["store"] = False
    if reasoning:
        body["include"] = ["reasoning.encrypted_content"]
    if req.stream:
        body["stream"] = True
    if p.extra:
        body.update(p.extra)
        if body.get("store") is not False and "include" not in p.extra:
            body.pop("include", None)  # stored responses keep their reasoning at OpenAI
    return body, adjusted


class OpenAIResponsesAdapter:
    name: ClassVar[str] = WIRE

    def build_request(self, req: ChatRequest, dep: Deployment) -> HttpRequest:
        body, adjusted = build_body(req, dep)
        return openai_post(dep, "/responses", encode_body(body, req, dep), req.stream, adjusted)

    def parse_response(self, resp: HttpResponse, req: ChatRequest, dep: Deployment) -> Response:
        data = decode_json(resp.body, dep)
        if not isinstance(data, dict):
            raise invalid("the response is not a JSON object", dep, resp.headers)
        status = data.get("status")
        if status == "failed" or (data.get("error") and "output" not in data):
            raise failed_error(data.get("error"), dep, resp.headers)
        if status in ("queued", "in_progress"):
            # A background response (``extra={"background": True}``) is not an answer yet;
            # returning it would pass an empty or partial text off as the model's reply.
            raise invalid(
                f"the response is {status}, not finished: background responses are not "
                "supported (call without background=True)",
                dep,
                resp.headers,
            )
        output = data.get("output")
        if not isinstance(output, list):
            raise invalid("the response has no output list", dep, resp.headers)
        if status == "completed":
            text = plain_text(output)
            if text is not None:  # most answers: one message of text, nothing else to read
                rid = data.get("id")
                return Response(
                    text=text,
                    finish_reason="stop",
                    raw_finish_reason="completed",
                    usage=usage_from(data.get("usage")),
                    provider=dep.provider,
                    model=str(data.get("model") or dep.model),
                    alias=dep.alias,
                    id=rid if isinstance(rid, str) else None,
                    request_id=answer_request_id(resp.headers, dep),
                )
        out = parse_output(output)
        raise_refusal(out, dep, resp.headers)
        raise_filtered(data, out, dep, resp.headers)
        return response_from(data, out, dep, resp.headers)

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        return map_error(status, headers, body, dep)

    def stream_state(self, req: ChatRequest, dep: Deployment) -> ResponsesStream:
        return ResponsesStream(dep)
