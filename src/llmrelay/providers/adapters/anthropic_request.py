"""Anthropic Messages: building the request (messages, tools, structured output, headers).

See ``anthropic_messages`` for how the common request maps onto Anthropic's format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from ...errors import InvalidRequestError
from ...transport.base import HttpRequest
from ...types import ChatRequest, ContentPart, GenerationParams, ImagePart, Message, ToolCall
from ..table import Deployment
from .base import content_parts, encode_body, json_schema_format, send_headers, tool_call_args

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "Structured",
    "build_request",
    "structured_output",
]

ANTHROPIC_VERSION = "2023-06-01"
#: Sent as ``max_tokens`` when the caller set none (Anthropic requires the field).
DEFAULT_MAX_TOKENS = 4096

_JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no code fences."
)
_TOOL_NAME_BAD = re.compile(r"[^a-zA-Z0-9_-]")


# --------------------------------------------------------------------------- structured output


@dataclass(slots=True, frozen=True)
class Structured:
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


def structured_output(p: GenerationParams) -> Structured | None:
    """The forced tool for a ``json_schema`` response format, or None."""
    rf = p.response_format
    if rf is None or rf.get("type") != "json_schema":
        return None
    js, schema = json_schema_format(rf)
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
        defs: dict[str, Any] = {
            k: input_schema.pop(k) for k in ("$defs", "definitions") if k in input_schema
        }
        input_schema = {
            "type": "object",
            "properties": {"value": input_schema},
            "required": ["value"],
            **defs,
        }
    return Structured(name or "json_output", description, input_schema, wrapped)


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


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _blocks(content: str | list[ContentPart] | None) -> list[dict[str, Any]]:
    return content_parts(content, _text, _image)


def _tool_use(tc: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": tc.id,
        "name": tc.name,
        "input": tool_call_args(tc, "Anthropic"),
    }


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


def build_request(req: ChatRequest, dep: Deployment) -> HttpRequest:
    """The HTTP request for ``req`` (see the module docstring of ``anthropic_messages``)."""
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
    structured = structured_output(p)
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
    # The key goes in x-api-key unless the provider row asks for a bearer token or none.
    auth = dep.spec.auth if dep.spec is not None else "x-api-key"
    send_headers(headers, dep, auth if auth in ("bearer", "none") else "x-api-key")
    return HttpRequest("POST", _url(dep.base_url), headers, encode_body(body, req, dep), adjusted)
