"""Anthropic Messages: the stream parser, and the pieces of an answer it shares with
``parse_response`` (finish reasons, usage, the status of an in-band error).

A stream is ``message_start``; per content block ``content_block_start``, its
``content_block_delta`` events and ``content_block_stop``; then ``message_delta`` (stop reason,
final usage) and ``message_stop``, the terminal event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import ContentFilteredError
from ...transport.sse import SSEEvent
from ...types import (
    FinishReason,
    ReasoningPart,
    Response,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    chunk,
    make_usage,
)
from ..table import Deployment
from .anthropic_request import REASONING_PROVIDER, Structured
from .base import as_int, event_json, interrupted, redact
from .tool_args import args_text

if TYPE_CHECKING:
    from .anthropic_messages import AnthropicMessagesAdapter

__all__ = [
    "AnthropicStream",
    "finish_reason",
    "reasoning_part",
    "refusal_error",
    "status_of",
    "usage_from",
]

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
}

#: The HTTP status each error type comes with (used for errors inside a 200 stream or body).
_STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def finish_reason(raw: Any) -> FinishReason | None:
    """llmrelay's finish reason for Anthropic's ``stop_reason``."""
    if not raw or not isinstance(raw, str):
        return None
    return _FINISH.get(raw, "other")


def usage_from(u: Any) -> Usage:
    """Anthropic usage in llmrelay's convention (cache reads and writes counted as input)."""
    if not isinstance(u, dict):
        return make_usage()
    read = as_int(u.get("cache_read_input_tokens"))
    write = as_int(u.get("cache_creation_input_tokens"))
    details = u.get("output_tokens_details")
    thinking = as_int(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return make_usage(
        input_tokens=as_int(u.get("input_tokens")) + read + write,
        output_tokens=as_int(u.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=thinking,
    )


def reasoning_part(block: Mapping[str, Any]) -> ReasoningPart | None:
    """A ``thinking`` / ``redacted_thinking`` block as a :class:`ReasoningPart` (kept exactly,
    so the next turn of a tool loop can send it back), or None for any other block."""
    kind = block.get("type")
    if kind == "thinking":
        text = block.get("thinking")
        sig = block.get("signature")
        return ReasoningPart(
            text if isinstance(text, str) else "",
            signature=sig if isinstance(sig, str) else None,
            provider=REASONING_PROVIDER,
        )
    if kind == "redacted_thinking":
        data = block.get("data")
        return ReasoningPart(
            data=data if isinstance(data, str) else "", redacted=True, provider=REASONING_PROVIDER
        )
    return None


def refusal_error(
    details: Any, text: str, dep: Deployment, request_id: str | None = None
) -> ContentFilteredError:
    """The error for ``stop_reason: "refusal"``: ``stop_details`` gives the category and the
    explanation (both may be null); ``text`` is what the model wrote before it stopped
    (https://platform.claude.com/docs/en/build-with-claude/handling-stop-reasons)."""
    category = explanation = None
    if isinstance(details, dict):
        c, e = details.get("category"), details.get("explanation")
        category = c if isinstance(c, str) else None
        explanation = redact(e, dep) if isinstance(e, str) else None
    message = "Anthropic refused to answer (stop_reason 'refusal'"
    message += f", category {category})" if category else ")"
    if explanation:
        message += f": {explanation}"
    return ContentFilteredError(
        message,
        category=category,
        explanation=explanation,
        partial_text=redact(text, dep) if text else "",
        provider=dep.provider,
        model=dep.model,
        request_id=request_id,
    )


def status_of(obj: Mapping[str, Any]) -> int:
    """The HTTP status an error object (in a 200 body or a stream) stands for."""
    err = obj.get("error")
    etype = err.get("type") if isinstance(err, dict) else None
    return _STATUS_BY_TYPE.get(etype, 500) if isinstance(etype, str) else 500


@dataclass(slots=True)
class _ToolSlot:
    ordinal: int
    id: str
    name: str
    args: list[str]
    initial: Any


@dataclass(slots=True)
class _ThinkingSlot:
    """A thinking block being streamed: its text pieces and signature, or a redacted block."""

    texts: list[str]
    signature: str | None
    data: str | None = None
    #: Its ``content_block_stop`` came: later events for the block (a repeated stop, a late
    #: delta from a hostile or broken upstream) are ignored, so a block ends once.
    stopped: bool = False

    def part(self) -> ReasoningPart:
        if self.data is not None:
            return ReasoningPart(data=self.data, redacted=True, provider=REASONING_PROVIDER)
        return ReasoningPart(
            "".join(self.texts), signature=self.signature, provider=REASONING_PROVIDER
        )


class AnthropicStream:
    """The state of one streamed answer: feed it SSE events, then ``finish()``."""

    __slots__ = (
        "_adapter",
        "_answer",
        "_answer_block",
        "_dep",
        "_id",
        "_model",
        "_raw_finish",
        "_stop_details",
        "_structured",
        "_text",
        "_thinking",
        "_tokens",
        "_tools",
        "done",
    )

    def __init__(
        self, adapter: AnthropicMessagesAdapter, dep: Deployment, structured: Structured | None
    ) -> None:
        self._adapter = adapter
        self._dep = dep
        self._structured = structured
        self._text: list[str] = []
        self._tools: dict[int, _ToolSlot] = {}
        #: The structured-output tool's block index and its raw JSON pieces.
        self._answer_block: int | None = None
        self._answer: list[str] = []
        self._raw_finish: str | None = None
        self._stop_details: Any = None
        #: Thinking and redacted_thinking blocks by index, in the order they came.
        self._thinking: dict[int, _ThinkingSlot] = {}
        #: Anthropic's raw usage fields; message_delta values overwrite message_start's.
        self._tokens: dict[str, Any] = {}
        self._id: str | None = None
        self._model: str | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        if event.event == "ping":
            return []
        obj = event_json(event.data, self._dep)
        kind = obj.get("type") or event.event
        if kind == "error" or event.event == "error":
            raise self._adapter.map_error(
                status_of(obj), {}, event.data.encode(), self._dep
            ) from None
        if kind == "content_block_delta":
            return self._delta(obj)
        if kind == "content_block_start":
            return self._block_start(obj)
        if kind == "content_block_stop":
            return self._block_stop(obj)
        if kind == "message_start":
            msg = obj.get("message")
            if isinstance(msg, dict):
                self._id = msg.get("id") if isinstance(msg.get("id"), str) else None
                self._model = msg.get("model") if isinstance(msg.get("model"), str) else None
                u = msg.get("usage")
                if isinstance(u, dict):
                    self._tokens.update(u)
            return []
        if kind == "message_delta":
            delta = obj.get("delta")
            raw = delta.get("stop_reason") if isinstance(delta, dict) else None
            if isinstance(raw, str):
                self._raw_finish = raw
            if isinstance(delta, dict) and delta.get("stop_details") is not None:
                self._stop_details = delta.get("stop_details")
            u = obj.get("usage")
            if isinstance(u, dict):
                self._tokens.update({k: v for k, v in u.items() if v is not None})
            return [chunk(finish_reason=self._finish(), usage=usage_from(self._tokens))]
        if kind == "message_stop":
            self.done = True
        return []  # ping and event types added after this adapter was written

    def _block_start(self, obj: dict[str, Any]) -> list[StreamChunk]:
        index = obj.get("index")
        block = obj.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str) and text:
                self._text.append(text)
                return [chunk(text)]
        elif kind == "tool_use":
            name = str(block.get("name") or "")
            s = self._structured
            if s is not None and self._answer_block is None and name == s.name:
                self._answer_block = index
                return []
            slot = _ToolSlot(
                len(self._tools), str(block.get("id") or ""), name, [], block.get("input")
            )
            self._tools[index] = slot
            return [chunk(tool_calls=[ToolCallDelta(slot.ordinal, slot.id, name, "")])]
        elif index in self._thinking:
            return []  # a reasoning block's index started again: the first block stands
        elif kind == "thinking":
            text, sig = block.get("thinking"), block.get("signature")
            first = text if isinstance(text, str) and text else ""
            self._thinking[index] = _ThinkingSlot(
                [first] if first else [], sig if isinstance(sig, str) and sig else None
            )
            return [chunk(reasoning=first)] if first else []
        elif kind == "redacted_thinking":
            data = block.get("data")
            self._thinking[index] = _ThinkingSlot([], None, data if isinstance(data, str) else "")
        return []

    def _delta(self, obj: dict[str, Any]) -> list[StreamChunk]:
        index = obj.get("index")
        delta = obj.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                self._text.append(text)
                return [chunk(text)]
        elif kind == "input_json_delta":
            part = delta.get("partial_json")
            if not isinstance(part, str) or not part:
                return []
            if index is not None and index == self._answer_block:
                self._answer.append(part)
                s = self._structured
                # A wrapped answer is unwrapped whole when its block ends.
                return [] if s is not None and s.wrapped else [chunk(part)]
            slot = self._tools.get(index) if isinstance(index, int) else None
            if slot is not None:
                slot.args.append(part)
                return [chunk(tool_calls=[ToolCallDelta(slot.ordinal, arguments=part)])]
        elif kind == "thinking_delta":
            thinking = delta.get("thinking")
            if isinstance(thinking, str) and thinking:
                t = self._thinking.get(index) if isinstance(index, int) else None
                if t is not None:
                    if t.stopped:
                        return []
                    t.texts.append(thinking)
                return [chunk(reasoning=thinking)]
        elif kind == "signature_delta":
            sig = delta.get("signature")
            t = self._thinking.get(index) if isinstance(index, int) else None
            if t is not None and not t.stopped and isinstance(sig, str):
                t.signature = (t.signature or "") + sig
        return []  # citations_delta, ...

    def _block_stop(self, obj: dict[str, Any]) -> list[StreamChunk]:
        s = self._structured
        index = obj.get("index")
        if s is not None and s.wrapped and index == self._answer_block:
            return [chunk(s.text_from_raw("".join(self._answer)))]
        t = self._thinking.get(index) if isinstance(index, int) else None
        if t is not None and not t.stopped:  # the finished block, for relays to pass on
            t.stopped = True
            return [chunk(reasoning_part=t.part())]
        return []

    def _finish(self) -> FinishReason | None:
        finish = finish_reason(self._raw_finish)
        if finish == "tool_calls" and self._answer_block is not None and not self._tools:
            return "stop"
        return finish

    def _response(self) -> Response:
        calls = []
        for slot in self._tools.values():
            args = "".join(slot.args)
            if not args:
                args = args_text(slot.initial or None)
            calls.append(ToolCall(slot.id or f"toolu_{slot.ordinal}", slot.name, args))
        text = "".join(self._text)
        s = self._structured
        if s is not None and self._answer_block is not None:
            raw = "".join(self._answer)
            text = s.text_from_raw(raw) if s.wrapped else (raw or "{}")
        parts = [t.part() for t in self._thinking.values()]
        return Response(
            text=text,
            tool_calls=calls,
            finish_reason=self._finish(),
            raw_finish_reason=self._raw_finish,
            usage=usage_from(self._tokens),
            provider=self._dep.provider,
            model=self._model or self._dep.model,
            alias=self._dep.alias,
            id=self._id,
            reasoning="".join(p.text for p in parts if not p.redacted),
            reasoning_parts=parts,
        )

    def finish(self) -> Response:
        if not self.done:
            raise interrupted(
                "the stream ended before its message_stop event", self._dep, self._response()
            )
        resp = self._response()
        if self._raw_finish == "refusal":
            raise refusal_error(self._stop_details, resp.text, self._dep)
        return resp

    def partial(self) -> Response:
        return self._response()
