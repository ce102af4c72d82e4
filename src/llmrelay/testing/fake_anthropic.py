"""Anthropic Messages, as the fake upstream speaks it (the format of api.anthropic.com).

Non-stream bodies are ``{"type": "message", "content": [...], "stop_reason", "usage"}``; streams
are named SSE events (``message_start``, ``content_block_start``, ``ping``,
``content_block_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``); errors
are ``{"type": "error", "error": {"type", "message"}}``, in a stream as ``event: error``. Usage
follows Anthropic's convention: ``input_tokens`` excludes the cache reads
(``cache_read_input_tokens``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .fake_base import FakeRequest, FakeUsage, halves, sse, tool_arguments

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

#: The fake's generic finish reasons (OpenAI's words) as Anthropic stop reasons.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}

_MESSAGE_ID = "msg_fake0001"
_TOOL_ID = "toolu_fake0001"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for b in content:
            if not isinstance(b, dict):
                continue
            if b.get("type") == "text":
                parts.append(str(b.get("text", "")))
            elif b.get("type") == "tool_result":
                parts.append(_text_of(b.get("content")))
        return " ".join(p for p in parts if p)
    return ""


def _user_text(content: Any) -> str | None:
    """The user's own text in a turn (None for a turn of tool results only)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        ]
        return " ".join(texts) if texts else None
    return None


def _thinking_on(body: dict[str, Any]) -> bool:
    t = body.get("thinking")
    return isinstance(t, dict) and t.get("type") in ("enabled", "adaptive")


_TOOL_ID_OK = re.compile(r"^[a-zA-Z0-9_-]+$")


def _check_tool_ids(i: int, content: Any) -> None:
    """The API validates tool_use ids against ``^[a-zA-Z0-9_-]+$`` (a 400 otherwise)."""
    if not isinstance(content, list):
        return
    for j, b in enumerate(content):
        bad = not _TOOL_ID_OK.match(str(b.get("id", ""))) if isinstance(b, dict) else False
        if bad and b.get("type") == "tool_use":
            raise ValueError(
                f"messages.{i}.content.{j}.tool_use.id: String should match pattern "
                "'^[a-zA-Z0-9_-]+$'"
            )


def _check_thinking_replayed(messages: list[Any]) -> None:
    """With thinking on, the API refuses a tool loop whose last assistant turn lost its
    thinking block: a tool_use there must follow a thinking or redacted_thinking block."""
    last = next((m for m in reversed(messages) if m.get("role") == "assistant"), None)
    content = last.get("content") if isinstance(last, dict) else None
    if not isinstance(content, list) or not any(
        isinstance(b, dict) and b.get("type") == "tool_use" for b in content
    ):
        return
    first = content[0] if isinstance(content[0], dict) else {}
    if first.get("type") not in ("thinking", "redacted_thinking"):
        raise ValueError(
            "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
            f"`{first.get('type')}`. When `thinking` is enabled, a final `assistant` message "
            "must start with a thinking block"
        )


def _thinking_blocks(req: FakeRequest) -> list[dict[str, Any]]:
    """The scripted thinking (``Reply(reasoning=...)``) as Anthropic's thinking block, with a
    signature, and a redacted_thinking block when the reply asks for one."""
    blocks: list[dict[str, Any]] = []
    if req.reasoning:
        sig = "sig_fake_" + hashlib.sha256(req.reasoning.encode()).hexdigest()[:24]
        blocks.append({"type": "thinking", "thinking": req.reasoning, "signature": sig})
    if req.redacted_reasoning:
        blocks.append({"type": "redacted_thinking", "data": req.redacted_reasoning})
    return blocks


def _event(kind: str, **fields: Any) -> bytes:
    """One SSE frame; its JSON ``type`` is its event name, as in all of Anthropic's."""
    return sse({"type": kind, **fields}, kind)


def _block(index: int, block: dict[str, Any], deltas: list[dict[str, Any]]) -> list[bytes]:
    """One content block: its start (a ping follows the first block's), deltas and stop."""
    frames = [_event("content_block_start", index=index, content_block=block)]
    if index == 0:
        frames.append(_event("ping"))
    frames += [_event("content_block_delta", index=index, delta=d) for d in deltas]
    frames.append(_event("content_block_stop", index=index))
    return frames


def _stop_details(req: FakeRequest) -> dict[str, Any] | None:
    explanation = req.refusal_explanation or req.refusal
    if req.refusal_category is None and explanation is None:
        return None
    return {"type": "refusal", "category": req.refusal_category, "explanation": explanation}


def _stop_reason(req: FakeRequest, finish: str) -> str:
    """``Reply.refuse(...)`` is Anthropic's refusal (``stop_reason: "refusal"``), as
    ``finish="content_filter"`` is."""
    return "refusal" if req.refusal is not None else _STOP_REASONS.get(finish, finish)


class AnthropicDialect:
    name = "anthropic"
    #: message_start, content_block_start and ping come before the first content delta.
    lead_frames = 3
    auth_error_status = 401

    def parse(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> FakeRequest:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ValueError("model: Field required")
        if not isinstance(body.get("max_tokens"), int):
            raise ValueError("max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages: at least one message is required")
        last_user = ""
        texts = []
        system = body.get("system")
        if system:
            texts.append(_text_of(system))
        for i, m in enumerate(messages):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ("user", "assistant"):
                raise ValueError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            content = m.get("content")
            _check_tool_ids(i, content)
            texts.append(_text_of(content))
            if role == "user":
                own = _user_text(content)
                if own is not None:
                    last_user = own
        tools = {
            t["name"]: t.get("input_schema", {"type": "object"}) for t in body.get("tools") or []
        }
        forced = None
        tc = body.get("tool_choice")
        if isinstance(tc, dict):
            if tc.get("type") == "tool":
                forced = tc["name"]
                if forced not in tools:
                    raise ValueError(f"tool_choice names the unknown tool {forced!r}")
            elif tc.get("type") == "any" and tools:
                forced = next(iter(tools))
        fmt = (
            body.get("output_config", {}).get("format")
            if isinstance(body.get("output_config"), dict)
            else None
        )
        schema = fmt.get("schema") if isinstance(fmt, dict) else None
        if _thinking_on(body):
            _check_thinking_replayed(messages)
        if isinstance(tc, dict) and tc.get("type") in ("any", "tool") and _thinking_on(body):
            raise ValueError("Thinking may not be enabled when tool_choice forces tool use.")
        return FakeRequest(
            model=model,
            json_schema=schema if isinstance(schema, dict) else None,
            last_user_text=last_user,
            prompt_text=" ".join(t for t in texts if t),
            stream=bool(body.get("stream")),
            forced_tool=forced,
            tool_schemas=tools,
            include_usage=True,
        )

    def check_auth(self, request: web.Request, api_key: str) -> bool:
        # x-api-key is the documented header; recent official SDKs send the key as a bearer
        # token, which the API accepts too.
        return (
            request.headers.get("x-api-key") == api_key
            or request.headers.get("authorization") == f"Bearer {api_key}"
        )

    def request_id_header(self) -> str:
        return "request-id"

    def _usage(self, u: FakeUsage, output_tokens: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_tokens": max(0, u.input_tokens - u.cached_tokens),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": u.cached_tokens,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        if u.reasoning_tokens:
            out["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
        return out

    def _message(
        self,
        req: FakeRequest,
        content: list[dict[str, Any]],
        stop: str | None,
        usage: dict[str, Any],
    ) -> dict[str, Any]:
        msg = {
            "id": _MESSAGE_ID,
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if stop == "refusal":
            msg["stop_details"] = _stop_details(req)
        return msg

    def body(
        self,
        req: FakeRequest,
        text: str,
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> dict[str, Any]:
        content: list[dict[str, Any]] = _thinking_blocks(req)
        if text:
            content.append({"type": "text", "text": text})
        if tool:
            content.append({"type": "tool_use", "id": _TOOL_ID, "name": tool[0], "input": tool[1]})
        return self._message(
            req,
            content,
            _stop_reason(req, finish),
            self._usage(usage, usage.output_tokens),
        )

    def stream_events(
        self,
        req: FakeRequest,
        pieces: list[str],
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> list[bytes]:
        frames = [
            _event("message_start", message=self._message(req, [], None, self._usage(usage, 1)))
        ]
        index = 0
        for block in _thinking_blocks(req):
            if block["type"] == "thinking":
                start = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [
                    {"type": "thinking_delta", "thinking": part}
                    for part in halves(block["thinking"])
                    if part
                ]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
                frames += _block(index, start, deltas)
            else:
                frames += _block(index, block, [])
            index += 1
        if pieces or not tool:
            text = [{"type": "text_delta", "text": p} for p in pieces]
            frames += _block(index, {"type": "text", "text": ""}, text)
            index += 1
        if tool:
            block = {"type": "tool_use", "id": _TOOL_ID, "name": tool[0], "input": {}}
            parts = [
                {"type": "input_json_delta", "partial_json": part}
                for part in ("", *halves(tool_arguments(tool)))
            ]
            frames += _block(index, block, parts)
        stop = _stop_reason(req, finish)
        delta: dict[str, Any] = {"stop_reason": stop, "stop_sequence": None}
        if stop == "refusal":
            delta["stop_details"] = _stop_details(req)
        frames.append(
            _event(
                "message_delta",
                delta=delta,
                usage={"output_tokens": usage.output_tokens},
            )
        )
        frames.append(_event("message_stop"))
        return frames

    def error(
        self, status: int, message: str, type_: str | None, code: str | None
    ) -> dict[str, Any]:
        etype = type_ or _ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return {"type": "error", "error": {"type": etype, "message": message}}

    def stream_error(self, message: str, type_: str | None) -> bytes:
        return _event("error", error={"type": type_ or "api_error", "message": message})

    def models(self, names: list[str]) -> dict[str, Any]:
        data = [
            {
                "type": "model",
                "id": n,
                "display_name": n.replace("-", " ").title(),
                "created_at": "2025-09-29T00:00:00Z",
                "lifecycle": "active",
            }
            for n in names
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
