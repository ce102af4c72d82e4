"""The OpenAI Responses wire, server side: read a ``POST /v1/responses`` body into our call,
write our ``Response`` (or stream) back as a ``response`` object and its typed SSE events.

Request (fields as ``openai.types.responses.response_create_params`` names them): ``input`` (a
string, or items: ``message`` items of any role with ``input_text`` / ``input_image`` /
``input_file`` / ``input_audio`` parts, assistant ``message`` items with ``output_text``,
``function_call`` / ``function_call_output`` items, ``reasoning`` items), ``instructions`` (a
leading system message), ``function`` tools, ``tool_choice``, ``text.format``
(``json_schema`` / ``json_object`` / ``text``), ``max_output_tokens``, ``temperature``,
``top_p``, ``reasoning.effort``, ``user``. Assistant-side items are read by the same
:class:`~llmrelay.providers.adapters.openai_responses_output.Output` that reads OpenAI's own
answers. The gateway keeps nothing between calls: ``previous_response_id``, ``conversation``,
``background`` and item references are refused (send the whole conversation), as are built-in
tools (web search, file search, ...), which only OpenAI runs. Any model answers: a Claude or
Gemini alias comes back as ``output`` items. A reasoning item's ``encrypted_content`` carries
what the model behind needs replayed (an Anthropic thinking signature, a redacted block, an
OpenAI reasoning item's id and encrypted content), signed for the caller's tenant
(:mod:`.sealing`), so a tool loop with reasoning round-trips through the gateway whatever model
answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from ..errors import InvalidRequestError, shown
from ..providers.adapters.openai_responses_output import WIRE, Output
from ..types import Message, ReasoningPart, Response, TextPart, normalize_messages
from .media import check_media_url
from .sealing import read_sealed
from .wire import GatewayCall, usage_of
from .wire import param_error as _bad

__all__ = [
    "ResponsesCall",
    "call_item",
    "message_item",
    "parse_responses_request",
    "reasoning_item",
    "render_response",
    "response_obj",
    "status_of",
]

#: Fields OpenAI clients send that a gateway accepts and does not act on: storage and
#: bookkeeping on OpenAI's side (the gateway stores nothing), or hints.
IGNORED = frozenset(
    {
        "store",
        "metadata",
        "parallel_tool_calls",
        "include",
        "truncation",
        "service_tier",
        "safety_identifier",
        "stream_options",
    }
)
#: Fields that need state the gateway does not keep.
_STATEFUL = {
    "previous_response_id": "the gateway keeps no responses: send the whole conversation in "
    "`input`",
    "conversation": "the gateway keeps no conversations: send the whole conversation in `input`",
    "background": "background responses are not supported by the gateway",
    "prompt": "stored prompts are not supported by the gateway: send `instructions`",
}
_KNOWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "user",
        "prompt_cache_key",
        "stream",
        *IGNORED,
        *_STATEFUL,
    }
)


@dataclass(slots=True)
class ResponsesCall(GatewayCall):
    """A Responses call, with the request fields its answer echoes."""

    echo: dict[str, Any] = field(default_factory=dict)
    #: ``(where, encrypted_content)`` of the gateway-written reasoning items replayed: each
    #: must pass ``Sealer.verify`` for the caller's tenant before the call is made.
    sealed: list[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- reasoning items


def _reasoning_part(
    item: Mapping[str, Any], where: str, sealed: list[tuple[str, str]]
) -> ReasoningPart:
    enc = item.get("encrypted_content")
    if enc is not None and enc != "":
        ours = read_sealed(enc, where) if isinstance(enc, str) else None
        if ours is None:
            # Only the gateway's own blobs are replayed: another one would reach the model
            # unchecked (an OpenAI item's encrypted content taken from someone else's answer).
            raise _bad(
                f"{where}.encrypted_content is not one this gateway wrote: replay reasoning "
                "items as the gateway returned them",
                f"{where}.encrypted_content",
            )
        p, signed = ours
        sealed.append((where, signed))  # checked against the caller's tenant before sending
    else:
        for name in ("summary", "content"):
            if item.get(name) is not None and not isinstance(item[name], list):
                raise _bad(f"{where}.{name} must be a list of parts", "input")
        out = Output()  # OpenAI's own reasoning item, as its answers carry them
        out.add(dict(item))
        p = out.reasoning_parts[0]
    if p.provider == WIRE and p.id and not p.data:
        # An id without its encrypted content would make OpenAI look the item up in what it
        # stored -- the gateway stores nothing (store=false), so that is someone else's item
        # or none (and our own item ids mean nothing upstream): only the summary is kept.
        p.id = None
    return p


# --------------------------------------------------------------------------- request


_USER_PARTS = {"input_text", "input_image", "input_file", "input_audio", "output_text", "text"}


def _chat_part(p: Any, where: str, media: str) -> dict[str, Any]:
    """A Responses content part as the Chat Completions part ``normalize_messages`` reads."""
    if not isinstance(p, Mapping) or p.get("type") not in _USER_PARTS:
        kind = p.get("type") if isinstance(p, Mapping) else None
        raise _bad(f"{where}: content part type {shown(kind)} is not supported", "input")
    t = p["type"]
    if t in ("input_text", "output_text", "text"):
        if not isinstance(p.get("text"), str):
            raise _bad(f"{where}: a {t} part needs `text` as a string", "input")
        return {"type": "text", "text": p["text"]}
    if t == "input_image":
        url = p.get("image_url")
        if not isinstance(url, str):
            raise _bad(
                f"{where}: input_image needs `image_url` (a URL or data: URL; file ids are not "
                "portable across providers)",
                "input",
            )
        check_media_url(url, media, f"{where}.image_url")
        detail = p.get("detail")
        return {"type": "image_url", "image_url": {"url": url, "detail": detail}}
    if t == "input_file":
        data = p.get("file_data")
        if not isinstance(data, str) or not data.startswith("data:"):
            raise _bad(
                f"{where}: input_file needs `file_data` as a data: URL "
                "('data:application/pdf;base64,...'; file ids and URLs are not portable across "
                "providers)",
                "input",
            )
        return {"type": "file", "file": {"file_data": data, "filename": p.get("filename")}}
    return {"type": "input_audio", "input_audio": p.get("input_audio")}


def _content_message(role: str, content: Any, where: str, media: str) -> Message:
    if isinstance(content, list):
        content = [_chat_part(p, f"{where}.content[{j}]", media) for j, p in enumerate(content)]
    elif not isinstance(content, str):
        raise _bad(f"{where}.content must be a string or a list of content parts", "input")
    try:
        (m,) = normalize_messages([{"role": role, "content": content}])
    except InvalidRequestError as exc:
        raise _bad(f"{where}: {exc.message.removeprefix('messages[0]: ')}", "input") from None
    return m


def _assistant_part(p: Any) -> Any:
    """An assistant message's content part as ``Output`` reads it: text parts as output text,
    and a refusal (an answer replayed as it came) as the text the model answered with."""
    if isinstance(p, Mapping):
        kind = p.get("type")
        if kind in ("input_text", "text"):
            return {**p, "type": "output_text"}
        if kind == "refusal":
            return {"type": "output_text", "text": p.get("refusal")}
    return p


class _Assistant:
    """Consecutive assistant-side items (messages, function calls, reasoning): one turn. A
    reasoning item directly followed by a function call names it (``before_call``), so the
    turn goes on to the model in its order."""

    def __init__(self, sealed: list[tuple[str, str]]) -> None:
        self.out = Output()
        self.parts: list[ReasoningPart] = []
        self.sealed = sealed
        self._after_reasoning = False

    def add(self, item: Mapping[str, Any], where: str) -> None:
        kind = item.get("type")
        after_reasoning, self._after_reasoning = self._after_reasoning, kind == "reasoning"
        if kind == "reasoning":
            self.parts.append(_reasoning_part(item, where, self.sealed))
            return
        if kind == "function_call":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not isinstance(item.get("name"), str):
                raise _bad(f"{where}: a function_call needs `call_id` and `name`", "input")
            self.out.add(dict(item))
            if after_reasoning:
                self.parts[-1] = replace(self.parts[-1], before_call=call_id)
            return
        content = item.get("content")
        if isinstance(content, str):
            content = [{"type": "output_text", "text": content}]
        elif isinstance(content, list):
            content = [_assistant_part(p) for p in content]
        else:
            raise _bad(f"{where}.content must be a string or a list of content parts", "input")
        self.out.add({"type": "message", "content": content})

    def message(self) -> Message:
        text = "".join(self.out.text)
        content: Any = text or None
        if self.parts:  # reasoning first, as the model produced it
            content = [*self.parts, TextPart(text)] if text else list(self.parts)
        return Message("assistant", content, tool_calls=self.out.tool_calls or None)


def _input(raw: Any, media: str, sealed: list[tuple[str, str]]) -> list[Message]:
    if isinstance(raw, str):
        if not raw:
            raise _bad("`input` is empty: give some text or input items", "input")
        return [Message("user", raw)]
    if not isinstance(raw, list) or not raw:
        raise _bad("`input` must be a string or a non-empty list of input items", "input")
    out: list[Message] = []
    turn: _Assistant | None = None
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        if not isinstance(item, Mapping):
            raise _bad(f"{where} must be an input item object", "input")
        kind = item.get("type", "message")
        role = item.get("role")
        assistant_side = kind in ("reasoning", "function_call") or (
            kind == "message" and role == "assistant"
        )
        if assistant_side:
            if turn is None:
                turn = _Assistant(sealed)
            turn.add(item, where)
            continue
        if turn is not None:
            out.append(turn.message())
            turn = None
        if kind == "message":
            if role not in ("user", "system", "developer"):
                raise _bad(
                    f"{where}.role must be user, assistant, system or developer, not {shown(role)}",
                    "input",
                )
            out.append(_content_message(role, item.get("content"), where, media))
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str):
                raise _bad(f"{where}: a function_call_output needs `call_id`", "input")
            if isinstance(output, list):
                texts = [
                    p.get("text")
                    for p in output
                    if isinstance(p, Mapping) and p.get("type") in ("input_text", "output_text")
                ]
                # Anything else (images, files) would be dropped without a word: refused.
                strs = [t for t in texts if isinstance(t, str)]
                output = "".join(strs) if len(strs) == len(output) else None
            if not isinstance(output, str):
                raise _bad(
                    f"{where}: a function_call_output needs `output` as a string or a list of "
                    "input_text parts",
                    "input",
                )
            out.append(Message("tool", output, tool_call_id=call_id))
        else:
            raise _bad(
                f"{where}: input item type {shown(kind)} is not supported by the gateway "
                "(messages, function_call, function_call_output and reasoning items are)",
                "input",
            )
    if turn is not None:
        out.append(turn.message())
    return out


def _tool(t: Any, i: int) -> dict[str, Any]:
    if not isinstance(t, Mapping):
        raise _bad(f"tools[{i}] must be a tool object", "tools")
    if t.get("type") != "function":
        raise _bad(
            f"tools[{i}]: tool type {shown(t.get('type'))} is not supported by the gateway "
            "(function tools are; built-in tools run only at OpenAI)",
            "tools",
        )
    if not isinstance(t.get("name"), str):
        raise _bad(f"tools[{i}] needs a `name`", "tools")
    out: dict[str, Any] = {"name": t["name"], "parameters": t.get("parameters") or {}}
    if t.get("description") is not None:
        out["description"] = t["description"]
    if t.get("strict") is not None:
        out["strict"] = t["strict"]
    return out


def _tool_choice(tc: Any) -> str:
    if tc in ("auto", "none", "required"):
        return str(tc)
    if isinstance(tc, Mapping) and tc.get("type") == "function" and isinstance(tc.get("name"), str):
        return str(tc["name"])
    raise _bad(
        "tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}",
        "tool_choice",
    )


def _response_format(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, Mapping):
        raise _bad("`text` must be an object like {'format': {'type': 'text'}}", "text")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt, Mapping):
        if not isinstance(fmt.get("schema"), Mapping):
            raise _bad("text.format of type json_schema needs a `schema` object", "text")
        js = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": js}
    raise _bad(
        f"text.format.type must be text, json_object or json_schema, not {shown(kind)}", "text"
    )


def parse_responses_request(body: Any, *, media: str = "https") -> ResponsesCall:
    """The call a Responses body asks for; ``InvalidRequestError`` naming the field.
    ``media``: which image URLs may be forwarded (``[server] media_urls``)."""
    if not isinstance(body, Mapping):
        raise InvalidRequestError("the request body must be a JSON object")
    unknown = sorted(k for k in body if k not in _KNOWN)
    if unknown:
        raise _bad(f"Unrecognized request argument supplied: {shown(unknown[0])}", unknown[0])
    for name, why in _STATEFUL.items():
        if body.get(name) not in (None, False):
            raise _bad(f"{name}: {why}", name)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("`model` is required: the name of a model or alias", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad(f"`stream` must be true or false, not {shown(stream)}", "stream")
    messages: list[Message] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _bad("`instructions` must be a string", "instructions")
        if instructions:
            messages.append(Message("system", instructions))
    sealed: list[tuple[str, str]] = []
    messages.extend(_input(body.get("input"), media, sealed))
    cap = body.get("max_output_tokens")
    if cap is not None and (type(cap) is not int or cap < 1):
        raise _bad(
            f"max_output_tokens must be a positive integer, not {shown(cap)}", "max_output_tokens"
        )
    params: dict[str, Any] = {"max_tokens": cap} if cap is not None else {}
    for name in ("temperature", "top_p", "user", "prompt_cache_key"):
        if body.get(name) is not None:
            params[name] = body[name]
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("`tools` must be a list", "tools")
        if tools:
            params["tools"] = [_tool(t, i) for i, t in enumerate(tools)]
    if body.get("tool_choice") is not None:
        params["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("text") is not None:
        rf = _response_format(body["text"])
        if rf is not None:
            params["response_format"] = rf
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, Mapping):
            raise _bad("`reasoning` must be an object like {'effort': 'low'}", "reasoning")
        effort = reasoning.get("effort")
        if effort is not None:
            if not isinstance(effort, str):
                raise _bad(f"reasoning.effort must be a string, not {shown(effort)}", "reasoning")
            params["reasoning_effort"] = effort
    echo = {
        "instructions": instructions,
        "max_output_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "tools": tools or [],
        "tool_choice": body.get("tool_choice") or "auto",
        "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
        "reasoning": {"effort": (reasoning or {}).get("effort"), "summary": None},
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
    }
    return ResponsesCall(
        model=model, messages=messages, params=params, stream=stream, echo=echo, sealed=sealed
    )


# --------------------------------------------------------------------------- answers


def _usage(resp: Response | None) -> dict[str, Any] | None:
    if resp is None:
        return None
    u = usage_of(resp)
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def status_of(resp: Response | None, refusal: bool) -> tuple[str, dict[str, str] | None]:
    finish = resp.finish_reason if resp is not None else None
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter" and not refusal:
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def reasoning_item(
    rid: str, p: ReasoningPart | None, text: str, seal: Callable[[ReasoningPart], str]
) -> dict[str, Any]:
    """A reasoning output item; ``seal`` (``Sealer.bind``) signs what a replay needs."""
    item: dict[str, Any] = {
        "id": rid,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if text else [],
    }
    if p is not None and (p.signature or p.data or p.id):
        item["encrypted_content"] = seal(p)
    return item


def message_item(mid: str, text: str | None, refusal: str | None) -> dict[str, Any]:
    part: dict[str, Any] = (
        {"type": "refusal", "refusal": refusal}
        if refusal is not None
        else {"type": "output_text", "text": text or "", "annotations": [], "logprobs": []}
    )
    return {
        "id": mid,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }


def call_item(fid: str, call_id: str, name: str, args: str, status: str) -> dict[str, Any]:
    return {
        "id": fid,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": args,
    }


def _output(
    resp: Response, base: str, refusal: str | None, seal: Callable[[ReasoningPart], str]
) -> list[dict[str, Any]]:
    """The answer's output items: a reasoning part that came right before a call
    (``before_call``) is followed by that call, as the model produced them; then the text, then
    the other calls."""
    out: list[dict[str, Any]] = []
    parts, calls = resp.reasoning_parts, resp.tool_calls
    placed: set[int] = set()

    def call(i: int) -> None:
        t = calls[i]
        out.append(call_item(f"fc_{base}_{i}", t.id, t.name, t.arguments, "completed"))
        placed.add(i)

    for k, p in enumerate(parts):
        out.append(reasoning_item(f"rs_{base}_{k}", p, p.text, seal))
        if p.before_call is not None:
            i = next(
                (i for i, t in enumerate(calls) if t.id == p.before_call and i not in placed),
                None,
            )
            if i is not None:
                call(i)
    if not parts and resp.reasoning:
        out.append(reasoning_item(f"rs_{base}_0", None, resp.reasoning, seal))
    if resp.text or refusal is not None or not calls:
        out.append(message_item(f"msg_{base}_0", resp.text, refusal))
    for i in range(len(calls)):
        if i not in placed:
            call(i)
    return out


def response_obj(
    base: str,
    model: str,
    created: int,
    echo: Mapping[str, Any],
    status: str,
    output: list[dict[str, Any]],
    resp: Response | None,
    details: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": "resp_" + base,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": details,
        "model": model,
        "output": output,
        "previous_response_id": None,
        "store": False,
        "truncation": "disabled",
        "usage": _usage(resp),
        **echo,
    }


def render_response(
    resp: Response,
    model: str,
    base: str,
    echo: Mapping[str, Any],
    *,
    seal: Callable[[ReasoningPart], str],
    refusal: str | None = None,
) -> bytes:
    """``resp`` as a ``response`` object (``refusal`` set: the model refused, in its words;
    ``seal`` signs reasoning items for the caller's tenant)."""
    status, details = status_of(resp, refusal is not None)
    obj = response_obj(
        base,
        model,
        int(time.time()),
        echo,
        status,
        _output(resp, base, refusal, seal),
        resp,
        details,
    )
    return orjson.dumps(obj)
