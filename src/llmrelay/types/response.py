"""The answer side of the public types: usage, responses and stream chunks."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .messages import (
    ContentPart,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
    ToolCallDelta,
    _Dumpable,
    _json_default,
)

__all__ = [
    "FinishReason",
    "Response",
    "StreamChunk",
    "Usage",
    "chunk",
    "make_usage",
    "new_response",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]


@dataclass(slots=True)
class Usage(_Dumpable):
    """Token usage as the provider reported it.

    ``cached_tokens`` (read from the prompt cache) and ``cache_write_tokens`` are parts of
    ``input_tokens``; ``reasoning_tokens`` is part of ``output_tokens`` -- OpenAI's convention.
    Adapters of providers that report them separately (Anthropic) add them in.

    ``estimated`` is True when the provider reported no usage (a stream without a usage chunk,
    a body without ``usage``) and the engine counted the tokens itself: the prompt from the
    request, the completion from the text received (``llmrelay.count_tokens``).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens

    @property
    def completion_tokens(self) -> int:
        return self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.estimated or other.estimated,
        )


def make_usage(
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> Usage:
    return Usage(input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens)


@dataclass(slots=True)
class Response(_Dumpable):
    """The answer to one logical chat call."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    alias: str | None = None
    id: str | None = None
    request_id: str | None = None
    latency_s: float = 0.0
    time_to_first_token_s: float | None = None
    #: The validated object when ``response_model`` was given.
    object: Any = None
    #: The engine's record of every attempt (``llmrelay.Attempt`` items).
    trace: list[Any] = field(default_factory=list)
    #: Usage summed over every attempt that reached a provider (retries, re-asks, fallbacks).
    total_usage: Usage | None = None
    #: Cost of this call (a ``llmrelay.Cost``), when accounting is on.
    cost: Any = None
    cache_hit: bool = False
    #: Parameters the provider does not support, dropped or translated: ``{name: what happened}``.
    adjusted_params: dict[str, str] = field(default_factory=dict)
    #: The HTTP response headers of the successful attempt (rate-limit headers and the like).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    #: The model's reasoning text (or summary), where the provider returns it; "" otherwise.
    reasoning: str = ""
    #: The reasoning blocks as the provider sent them, with the opaque signatures and encrypted
    #: data it needs back: :meth:`message` puts them in the assistant message so a tool loop
    #: replays them exactly.
    reasoning_parts: list[ReasoningPart] = field(default_factory=list)

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return orjson.loads(self.to_json())  # type: ignore[no-any-return]

    def to_json(self) -> str:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["headers"] = {str(k).lower(): v for k, v in self.headers.items()}
        return orjson.dumps(d, default=_json_default).decode()

    def message(self) -> Message:
        """The assistant message to append to the conversation (with the reasoning parts the
        provider needs back, and each tool call's signature)."""
        if not self.reasoning_parts:
            return Message("assistant", self.text or None, tool_calls=list(self.tool_calls) or None)
        content: list[ContentPart] = list(self.reasoning_parts)
        if self.text:
            content.append(TextPart(self.text))
        return Message("assistant", content, tool_calls=list(self.tool_calls) or None)


_new = object.__new__


def new_response(
    text: str,
    tool_calls: list[ToolCall],
    finish_reason: FinishReason | None,
    raw_finish_reason: str | None,
    usage: Usage,
    provider: str,
    model: str,
    alias: str | None,
    id: str | None,
    request_id: str | None,
    reasoning: str,
) -> Response:
    """``Response(text=..., ..., reasoning=...)`` with every other field at its default, built
    without the dataclass ``__init__`` (keyword matching and default factories for 23 fields
    cost an adapter's parse about as much again): the adapters' fast path for a fresh answer.
    ``tests/types`` holds it equal to the ``Response(...)`` it stands for, field by field."""
    r: Response = _new(Response)
    r.text = text
    r.tool_calls = tool_calls
    r.finish_reason = finish_reason
    r.raw_finish_reason = raw_finish_reason
    r.usage = usage
    r.provider = provider
    r.model = model
    r.alias = alias
    r.id = id
    r.request_id = request_id
    r.latency_s = 0.0
    r.time_to_first_token_s = None
    r.object = None
    r.trace = []
    r.total_usage = None
    r.cost = None
    r.cache_hit = False
    r.adjusted_params = {}
    r.headers = {}
    r.reasoning = reasoning
    r.reasoning_parts = []
    return r


@dataclass(slots=True)
class StreamChunk(_Dumpable):
    """One piece of a streamed answer. The last chunk has ``done=True`` and ``response`` set."""

    delta: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    reasoning: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    done: bool = False
    response: Response | None = None
    #: A reasoning block the provider finished (with its signature, or redacted), sent when
    #: it ends: what a relay needs to pass the block on exactly (Anthropic's
    #: ``signature_delta`` and ``redacted_thinking``). Its text came in ``reasoning`` chunks.
    reasoning_part: ReasoningPart | None = None


def chunk(
    delta: str = "",
    *,
    tool_calls: list[ToolCallDelta] | None = None,
    reasoning: str = "",
    finish_reason: FinishReason | None = None,
    usage: Usage | None = None,
    done: bool = False,
    response: Response | None = None,
    reasoning_part: ReasoningPart | None = None,
) -> StreamChunk:
    return StreamChunk(
        delta,
        tool_calls if tool_calls is not None else [],
        reasoning,
        finish_reason,
        usage,
        done,
        response,
        reasoning_part,
    )


def text_chunk(delta: str) -> StreamChunk:
    """``StreamChunk(delta)`` at a quarter less: the chunk most stream events become, made
    without the dataclass's ``__init__`` (every field set here, as it sets them)."""
    c: StreamChunk = _new(StreamChunk)
    c.delta = delta
    c.tool_calls = []
    c.reasoning = ""
    c.finish_reason = None
    c.usage = None
    c.done = False
    c.response = None
    c.reasoning_part = None
    return c


@dataclass(slots=True)
class TextRun(StreamChunk):
    """Text events that one read of a stream delivered together, passed on as one chunk:
    ``delta`` is their text joined, ``pieces`` each event's text, in order. Only a relay reading
    the pipeline's own chunks (``ResponseStream.chunks``) meets one, and renders one event per
    piece; iterating a stream yields a chunk per piece, as the provider sent them."""

    pieces: list[str] = field(default_factory=list)


def text_run(pieces: list[str]) -> TextRun:
    """The :class:`TextRun` of ``pieces`` (two or more non-empty texts), made as
    ``text_chunk`` makes a chunk (its field setting is written out in both on purpose: a shared
    setter costs ``text_chunk``, called for every stream event, ~13% more)."""
    c: TextRun = _new(TextRun)
    c.delta = "".join(pieces)
    c.tool_calls = []
    c.reasoning = ""
    c.finish_reason = None
    c.usage = None
    c.done = False
    c.response = None
    c.reasoning_part = None
    c.pieces = pieces
    return c
