"""Anthropic Messages: building the request (messages, tools, thinking, structured output,
prompt caching, headers).

See ``anthropic_messages`` for how the common request maps onto Anthropic's format, and
``anthropic_models`` for what each model accepts (thinking mode, JSON outputs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from ...errors import (
    ConfigurationError,
    InvalidRequestError,
    UnsupportedCapabilityError,
    shown,
)
from ...transport.base import HttpRequest
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
    TextPart,
    ToolCall,
)
from ..table import Deployment
from .anthropic_models import MIN_BUDGET_TOKENS, rules_for, schema_recurses, thinking_map
from .base import encode_body, json_schema_format, send_headers
from .tool_args import tool_call_args

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "MAX_CACHE_BREAKPOINTS",
    "REASONING_PROVIDER",
    "Structured",
    "build_request",
    "structured_output",
]

ANTHROPIC_VERSION = "2023-06-01"
#: Sent as ``max_tokens`` when the caller set none (Anthropic requires the field).
DEFAULT_MAX_TOKENS = 4096
#: Anthropic takes at most 4 ``cache_control`` breakpoints per request (tools, system and
#: messages together): https://platform.claude.com/docs/en/build-with-claude/prompt-caching
MAX_CACHE_BREAKPOINTS = 4
#: The wire API name ``ReasoningPart.provider`` carries for Anthropic's thinking blocks.
REASONING_PROVIDER = "anthropic"

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


def structured_output(p: GenerationParams, model: str | None = None) -> Structured | None:
    """The forced tool for a ``json_schema`` response format, or None (no such format, or
    ``model`` takes Anthropic's native JSON outputs, ``output_config.format``). A schema marked
    ``strict: false`` (one that cannot be closed, e.g. a free-form dict: JSON outputs need
    ``additionalProperties: false`` on every object) travels as a tool on every model."""
    rf = p.response_format
    if rf is None or rf.get("type") != "json_schema":
        return None
    js, schema = json_schema_format(rf)
    if (
        model is not None
        and rules_for(model).native_json
        and js.get("strict") is not False
        and not schema_recurses(schema)
    ):
        return None
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


# --------------------------------------------------------------------------- content blocks


def _cached(block: dict[str, Any], cache_control: dict[str, Any] | None) -> dict[str, Any]:
    if cache_control is not None:
        block["cache_control"] = dict(cache_control)
    return block


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


def _document(p: DocumentPart) -> dict[str, Any]:
    """A ``document`` block: a base64 PDF, a plain-text source, or a URL
    (https://platform.claude.com/docs/en/build-with-claude/pdf-support)."""
    inline = p.as_base64()
    source: dict[str, Any]
    if inline is not None:
        media_type = inline[0].split(";", 1)[0].strip().lower()
        if media_type == "application/pdf":
            source = {"type": "base64", "media_type": "application/pdf", "data": inline[1]}
        elif media_type == "text/plain":
            try:
                text = base64.b64decode(inline[1]).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidRequestError(
                    "a text/plain document must be UTF-8 text; send other files as PDF"
                ) from None
            source = {"type": "text", "media_type": "text/plain", "data": text}
        else:
            raise UnsupportedCapabilityError(
                "Anthropic takes PDF (application/pdf) and plain-text (text/plain) documents, "
                "not this media type; convert the document to one of them",
                capability="document",
            )
    elif (p.url or "").startswith(("http://", "https://")):
        source = {"type": "url", "url": p.url}
    else:
        raise InvalidRequestError(
            "Anthropic cannot read this document URL: pass an http(s) URL, a data: URL or "
            "the bytes (DocumentPart(data=..., media_type='application/pdf'))"
        )
    block: dict[str, Any] = {"type": "document", "source": source}
    if p.name:
        block["title"] = p.name
    return _cached(block, p.cache_control)


def _reasoning(p: ReasoningPart) -> dict[str, Any] | None:
    """A thinking block exactly as Anthropic sent it, or None for parts it cannot take back
    (another provider's, or a thinking text without its signature)."""
    if p.provider != REASONING_PROVIDER:
        return None
    if p.redacted:
        return {"type": "redacted_thinking", "data": p.data} if p.data else None
    if p.signature is None:
        return None
    return {"type": "thinking", "thinking": p.text, "signature": p.signature}


def _blocks(content: str | list[ContentPart] | None, *, assistant: bool = False) -> list[Any]:
    """A message's content as Anthropic blocks; an assistant's thinking blocks come first."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    thinking: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, TextPart):
            if p.text:
                out.append(_cached({"type": "text", "text": p.text}, p.cache_control))
        elif isinstance(p, ImagePart):
            out.append(_image(p))
        elif isinstance(p, DocumentPart):
            out.append(_document(p))
        elif isinstance(p, AudioPart):
            raise UnsupportedCapabilityError(
                "Anthropic takes no audio input; transcribe it first or send it to a model "
                "that takes audio (OpenAI, Gemini)",
                capability="audio",
            )
        elif isinstance(p, ReasoningPart) and assistant:
            block = _reasoning(p)
            if block is not None:
                thinking.append(block)
    return thinking + out


def _tool_id(raw: str | None) -> str | None:
    """A tool call id as Anthropic takes it (``^[a-zA-Z0-9_-]+$``). Ids from other providers
    may not fit (Kimi K2's ``functions.get_weather:0``): those are rewritten the same way on
    the tool_use and its tool_result, with a hash of the original so two never collide."""
    if raw is None or (raw and not _TOOL_NAME_BAD.search(raw)):
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{_TOOL_NAME_BAD.sub('_', raw)[:48]}_{digest}"


def _tool_use(tc: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": _tool_id(tc.id),
        "name": tc.name,
        "input": tool_call_args(tc, "Anthropic"),
    }


def _tool_result(m: Message) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(m.tool_call_id)}
    c = m.content
    if isinstance(c, str):
        if c:
            block["content"] = c
    elif c:
        block["content"] = _blocks(c)
    if m.is_error:
        block["is_error"] = True
    return block


def _system_blocks(m: Message) -> list[dict[str, Any]]:
    c = m.content
    if isinstance(c, list) and any(getattr(p, "cache_control", None) for p in c):
        return [
            _cached({"type": "text", "text": p.text}, p.cache_control)
            for p in c
            if isinstance(p, TextPart) and p.text
        ]
    text = m.text()
    return [{"type": "text", "text": text}] if text else []


def _messages(msgs: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System blocks (``system`` and ``developer`` messages), and the turns in Anthropic's
    shape (same-role neighbours merged)."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        if m.role in ("system", "developer"):
            system.extend(_system_blocks(m))
            continue
        if m.role == "tool":
            role, blocks = "user", [_tool_result(m)]
        elif m.role == "assistant":
            role, blocks = "assistant", _blocks(m.content, assistant=True)
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
        if len(c) == 1 and c[0].keys() == {"type", "text"}:
            turn["content"] = c[0]["text"]
    return system, out


def _url(base_url: str) -> str:
    # The SDKs' base URL has no /v1; accept one that does rather than doubling it.
    if base_url.endswith("/v1"):
        return base_url + "/messages"
    return base_url + "/v1/messages"


# --------------------------------------------------------------------------- thinking


def _thinking(
    p: GenerationParams, rmap: ReasoningMap, body: dict[str, Any], adjusted: dict[str, str]
) -> dict[str, Any] | None:
    """``thinking`` (and ``output_config.effort``, ``max_tokens``) for ``reasoning_effort`` as
    ``rmap`` (the catalog row's, else the family default) says; the thinking config sent, or
    None."""
    effort = p.reasoning_effort
    if effort is None:
        return None
    if effort != "none" and _open_turn_without_thinking(body["messages"]):
        adjusted["reasoning_effort"] = (
            "dropped for this request: the tool-use turn being continued started without a "
            "thinking block (another provider's, or thinking was off), and Anthropic refuses "
            "thinking then; it applies again from the next user turn"
        )
        return None
    if rmap.style == "none":
        adjusted["reasoning_effort"] = "dropped: this model has no extended thinking"
        return None
    if rmap.style not in ("effort", "budget"):  # a catalog row's map meant for another API
        raise ConfigurationError(
            f"the catalog's reasoning map for this model has style {shown(rmap.style)}, which "
            "Anthropic does not take; fix the row's reasoning.style (effort, budget or none)"
        )
    level = rmap.nearest.get(effort, effort)
    if level == "none":
        return None  # thinking is off unless asked for
    if level not in rmap.values:
        takes = ", ".join(rmap.values)
        adjusted["reasoning_effort"] = f"dropped: this model takes no '{effort}' (only {takes})"
        return None
    value = rmap.values[level]
    if level != effort:
        sent = f"effort '{value}'" if rmap.style != "budget" else f"a {value}-token budget"
        why = (
            "this model always thinks (thinking cannot be disabled)"
            if effort == "none"
            else f"{'Anthropic has' if effort == 'minimal' else 'this model takes'} no '{effort}'"
        )
        adjusted["reasoning_effort"] = f"sent as {sent}: {why}"
    if rmap.style != "budget":
        body.setdefault("output_config", {})["effort"] = value
        # Opus 4.7+ and Fable 5 omit the thinking text unless asked ("display" defaults to
        # "omitted" there): ask for the summary so Response.reasoning has it.
        return {"type": "adaptive", "display": "summarized"}
    budget = int(value)
    if p.max_tokens is None:
        body["max_tokens"] = DEFAULT_MAX_TOKENS + budget
    elif p.max_tokens <= budget:
        if p.max_tokens <= MIN_BUDGET_TOKENS:
            raise InvalidRequestError(
                f"max_tokens {p.max_tokens} leaves no room for thinking: Anthropic's thinking "
                f"budget is at least {MIN_BUDGET_TOKENS} tokens and must be below max_tokens; "
                "raise max_tokens or set reasoning_effort='none'",
                body={"param": "max_tokens"},
            )
        budget = max(MIN_BUDGET_TOKENS, p.max_tokens // 2)
        adjusted["reasoning_effort"] = (
            f"thinking budget cut to {budget} tokens to fit below max_tokens {p.max_tokens}"
        )
    return {"type": "enabled", "budget_tokens": budget}


def _open_turn_without_thinking(messages: list[dict[str, Any]]) -> bool:
    """True when the request continues a tool-use turn (the last turn is tool results, after
    an assistant turn with tool_use) whose assistant turn does not start with a thinking
    block: with thinking on, Anthropic refuses it ("When `thinking` is enabled, a final
    `assistant` message must start with a thinking block ... To avoid this requirement,
    disable `thinking`"); a tool loop is one assistant turn, one thinking configuration."""
    if len(messages) < 2:
        return False
    last, prev = messages[-1], messages[-2]
    c, a = last["content"], prev["content"]
    if prev["role"] != "assistant" or not isinstance(c, list) or not isinstance(a, list):
        return False
    if not any(b.get("type") == "tool_result" for b in c):
        return False
    if not any(b.get("type") == "tool_use" for b in a):
        return False
    return a[0].get("type") not in ("thinking", "redacted_thinking")


def _without_sampling(
    p: GenerationParams, body: dict[str, Any], extra: dict[str, Any], adjusted: dict[str, str]
) -> None:
    """Thinking takes no change of temperature (1, the default, is accepted) or top_k, and
    top_p only from 0.95 to 1
    (https://platform.claude.com/docs/en/build-with-claude/extended-thinking)."""
    why = "dropped: Anthropic takes no {} with thinking on"
    for where in (body, extra):
        if where.get("temperature", 1.0) != 1.0:
            del where["temperature"]
            adjusted["temperature"] = why.format("temperature other than 1")
    if extra.pop("top_k", None) is not None:
        adjusted["top_k"] = why.format("top_k")
    if p.top_p is not None and p.top_p < 0.95:
        body["top_p"] = 0.95
        adjusted["top_p"] = f"raised to 0.95: thinking takes top_p 0.95 to 1 (got {p.top_p:g})"


def _is_thinking(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in ("enabled", "adaptive")


# --------------------------------------------------------------------------- the request


def _count_breakpoints(body: dict[str, Any]) -> int:
    n = int("cache_control" in body)  # automatic caching (top level) takes a slot too
    for key in ("tools", "system"):
        v = body.get(key)
        if isinstance(v, list):
            n += sum(1 for b in v if isinstance(b, dict) and "cache_control" in b)
    for turn in body["messages"]:
        c = turn["content"]
        if isinstance(c, list):
            for b in c:
                n += "cache_control" in b
                inner = b.get("content") if b.get("type") == "tool_result" else None
                if isinstance(inner, list):
                    n += sum(1 for x in inner if "cache_control" in x)
    return n


def _tool_choice(tc: str) -> dict[str, Any]:
    if tc == "auto":
        return {"type": "auto"}
    if tc == "none":
        return {"type": "none"}
    if tc == "required":
        return {"type": "any"}
    return {"type": "tool", "name": tc}


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
        system.append({"type": "text", "text": _JSON_OBJECT_INSTRUCTION})
        adjusted["response_format"] = (
            "sent as a system-prompt instruction: Anthropic has no JSON mode"
        )
    elif rf_type not in (None, "text", "json_schema"):
        raise InvalidRequestError(
            f"response_format type {shown(rf_type)} is not supported for Anthropic; use "
            "'json_object', 'json_schema' or 'text'",
            body={"param": "response_format"},
        )
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
    for name in ("seed", "frequency_penalty", "presence_penalty", "prompt_cache_key"):
        if getattr(p, name) is not None:
            adjusted[name] = "dropped: Anthropic does not support it"
    if p.user is not None:
        body["metadata"] = {"user_id": p.user}
    extra = dict(p.extra) if p.extra else {}
    thinking = _thinking(p, req.reasoning or thinking_map(dep.model), body, adjusted)
    if thinking is not None:
        body["thinking"] = thinking
    thinking_on = _is_thinking(extra.get("thinking", thinking))
    if thinking_on:
        _without_sampling(p, body, extra, adjusted)
    tools: list[dict[str, Any]] = []
    for t in p.tools or ():
        tool: dict[str, Any] = {"name": t.name}
        if t.description:
            tool["description"] = t.description
        tool["input_schema"] = t.parameters
        tools.append(_cached(tool, t.cache_control))
    structured = structured_output(p, dep.model)
    if rf_type == "json_schema" and structured is None:
        # JSON outputs: the answer is the text, constrained to the schema.
        _, schema = json_schema_format(p.response_format or {})
        fmt = {"type": "json_schema", "schema": dict(schema)}
        body.setdefault("output_config", {})["format"] = fmt
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
        if thinking_on:
            # A forced tool is refused with thinking on: offer it, and ask for it in words.
            body["tool_choice"] = {"type": "auto"}
            system.append(
                {"type": "text", "text": f"Give your final answer by calling {structured.name}."}
            )
            adjusted["response_format"] = (
                "sent as a tool the model is asked to call (tool_choice auto): this model has "
                "no JSON outputs and forced tool use is refused with thinking on"
            )
        else:
            body["tool_choice"] = {"type": "tool", "name": structured.name}
        if p.tool_choice is not None:
            adjusted["tool_choice"] = "replaced: structured output uses its own tool"
    elif tools and p.tool_choice is not None:
        choice = _tool_choice(p.tool_choice)
        if thinking_on and choice["type"] in ("any", "tool"):
            choice = {"type": "auto"}
            adjusted["tool_choice"] = (
                "sent as 'auto': Anthropic refuses forced tool use with thinking on"
            )
        body["tool_choice"] = choice
    if tools:
        body["tools"] = tools
    if system:
        if any("cache_control" in b for b in system):
            body["system"] = system
        else:
            body["system"] = "\n\n".join(b["text"] for b in system)
    if req.stream:
        body["stream"] = True
    if extra:
        if isinstance(extra.get("output_config"), dict) and "output_config" in body:
            extra["output_config"] = {**body["output_config"], **extra["output_config"]}
        body.update(extra)
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if req.stream else "application/json",
        "anthropic-version": ANTHROPIC_VERSION,
    }
    # The key goes in x-api-key unless the provider row asks for a bearer token or none.
    auth = dep.spec.auth if dep.spec is not None else "x-api-key"
    send_headers(headers, dep, auth if auth in ("bearer", "none") else "x-api-key")
    encoded = encode_body(body, req, dep)
    if b'"cache_control"' in encoded:  # counted only when some block may carry one
        breakpoints = _count_breakpoints(body)
        if breakpoints > MAX_CACHE_BREAKPOINTS:
            raise InvalidRequestError(
                f"the request has {breakpoints} cache_control breakpoints; Anthropic allows at "
                f"most {MAX_CACHE_BREAKPOINTS} (tools, system, messages and a top-level one "
                "together): keep cache_control on the last part of each prefix you want cached"
            )
    return HttpRequest("POST", _url(dep.base_url), headers, encoded, adjusted)
