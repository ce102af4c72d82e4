"""What the fake upstream and its wire dialects share: the parsed request, the usage to report,
the dialect protocol, and the pieces every dialect renders alike (SSE frames, a scripted tool
call's arguments and the fragments a stream sends them in, a message's text). It imports
nothing of the fake, so the dialect modules and ``fake.py`` both build on it without importing
each other."""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

__all__ = ["Dialect", "FakeRequest", "FakeUsage", "halves", "sse", "text_of", "tool_arguments"]


@dataclass(slots=True)
class FakeRequest:
    """What a dialect understood of a request."""

    model: str
    last_user_text: str
    prompt_text: str
    stream: bool
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    forced_tool: str | None = None
    tool_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    include_usage: bool = True
    #: Set by the fake from the scripted ``Reply``: reasoning text (OpenAI dialect: in
    #: ``reasoning_field``; Anthropic: a signed thinking block), an opaque redacted-thinking
    #: payload, a refusal (OpenAI), and a refusal's category and explanation (Anthropic).
    #: OpenAI Responses: ``reasoning`` None means no reasoning item, else the summary asked
    #: for ("" = none).
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    refusal: str | None = None
    redacted_reasoning: str = ""
    refusal_category: str | None = None
    refusal_explanation: str | None = None


@dataclass(slots=True)
class FakeUsage:
    """The token counts a reply reports (each dialect renders them its own way)."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE frame of JSON ``data``, after an ``event:`` line when ``event`` is given."""
    frame = b"data: " + orjson.dumps(data) + b"\n\n"
    return b"event: " + event.encode() + b"\n" + frame if event else frame


def tool_arguments(tool: tuple[str, Any]) -> str:
    """A scripted tool call's arguments as the JSON text providers send."""
    return orjson.dumps(tool[1]).decode()


def halves(text: str) -> tuple[str, str]:
    """``text`` in the two fragments a stream sends it in (tool arguments, thinking)."""
    half = len(text) // 2
    return text[:half], text[half:]


def text_of(content: Any, kinds: Container[str] = ("text",)) -> str:
    """A message's text: a string as it is, or the ``text`` of its parts whose type is one of
    ``kinds``, joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") in kinds
        )
    return ""


class Dialect(Protocol):
    name: str
    #: Frames sent before the first content frame (Anthropic: message_start, ...).
    lead_frames: int
    #: The status the provider answers a bad key with (Gemini: 400).
    auth_error_status: int

    def parse(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> FakeRequest: ...

    def check_auth(self, request: web.Request, api_key: str) -> bool: ...

    def body(
        self,
        req: FakeRequest,
        text: str,
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> dict[str, Any]: ...

    def stream_events(
        self,
        req: FakeRequest,
        pieces: list[str],
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> list[bytes]:
        """SSE frames: ``lead_frames`` opening frames, then one frame per piece, then the
        closing frames (finish reason, usage, end marker)."""
        ...

    def error(
        self, status: int, message: str, type_: str | None, code: str | None
    ) -> dict[str, Any]: ...

    def stream_error(self, message: str, type_: str | None) -> bytes: ...

    def models(self, names: list[str]) -> dict[str, Any]: ...

    def request_id_header(self) -> str: ...
