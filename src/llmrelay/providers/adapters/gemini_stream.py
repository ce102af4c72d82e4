"""Google Gemini: reading answers — the stream parser, and the pieces of an answer it shares
with ``parse_response`` (a candidate's parts, usage, finish reasons).

A streamed answer is a series of whole ``GenerateContentResponse`` objects, each holding only
the new parts; there is no end marker (see :class:`GeminiStream`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ...transport.sse import SSEEvent
from ...types import (
    FinishReason,
    Response,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    chunk,
    make_usage,
)
from ..table import Deployment
from .base import as_int, event_json, interrupted
from .gemini_errors import check_prompt_blocked, in_band_error

__all__ = ["GeminiStream", "Parts", "finish_reason", "first_candidate", "usage_from"]

_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


def usage_from(u: Any) -> Usage:
    """Gemini's ``usageMetadata`` as ``Usage`` (thoughts count as output)."""
    if not isinstance(u, dict):
        return make_usage()
    thoughts = as_int(u.get("thoughtsTokenCount"))
    return make_usage(
        # Tokens of tool-use prompts (e.g. search results) are billed as input.
        input_tokens=as_int(u.get("promptTokenCount")) + as_int(u.get("toolUsePromptTokenCount")),
        output_tokens=as_int(u.get("candidatesTokenCount")) + thoughts,
        cached_tokens=as_int(u.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def finish_reason(raw: str | None, has_calls: bool) -> FinishReason | None:
    """llmrelay's finish reason for a candidate's ``finishReason``."""
    if not raw:
        return None
    reason = _FINISH.get(raw, "other")
    # Gemini ends a turn of function calls with STOP.
    return "tool_calls" if has_calls and reason == "stop" else reason


class Parts:
    """What the parts of one candidate hold: text, thoughts and function calls."""

    __slots__ = ("calls", "text", "thoughts")

    def __init__(self, content: Any) -> None:
        self.text: list[str] = []
        self.thoughts: list[str] = []
        self.calls: list[tuple[str | None, str, str]] = []
        parts = content.get("parts") if isinstance(content, dict) else None
        for p in parts if isinstance(parts, list) else ():
            if not isinstance(p, dict):
                continue
            t = p.get("text")
            if isinstance(t, str):
                (self.thoughts if p.get("thought") else self.text).append(t)
            fc = p.get("functionCall")
            if isinstance(fc, dict):
                args = fc.get("args")
                cid = fc.get("id")
                self.calls.append(
                    (
                        cid if isinstance(cid, str) and cid else None,
                        str(fc.get("name") or ""),
                        orjson.dumps(args if args is not None else {}).decode(),
                    )
                )


def first_candidate(data: dict[str, Any]) -> dict[str, Any] | None:
    """The first candidate of an answer, if it has one."""
    cands = data.get("candidates")
    if isinstance(cands, list) and cands and isinstance(cands[0], dict):
        return cands[0]
    return None


class GeminiStream:
    """Gemini has no end marker: a chunk with a ``finishReason`` completes the answer, and the
    backend reads on to the end of the body in case usage follows in a later chunk."""

    __slots__ = (
        "_calls",
        "_dep",
        "_id",
        "_model",
        "_raw_finish",
        "_text",
        "_usage",
        "done",
    )

    def __init__(self, dep: Deployment) -> None:
        self._dep = dep
        self._text: list[str] = []
        self._calls: list[ToolCall] = []
        self._raw_finish: str | None = None
        self._usage: Usage | None = None
        self._id: str | None = None
        self._model: str | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        data = event.data
        if data == "[DONE]":  # not Google's, but some proxies add it: nothing to read
            return []
        obj = event_json(data, self._dep)
        if "error" in obj and "candidates" not in obj:
            raise in_band_error(obj, {}, self._dep)
        return self.feed_obj(obj, {})

    def feed_obj(self, obj: dict[str, Any], headers: Mapping[str, str]) -> list[StreamChunk]:
        check_prompt_blocked(obj, self._dep, headers)
        if self._id is None:
            rid = obj.get("responseId")
            self._id = rid if isinstance(rid, str) else None
            mv = obj.get("modelVersion")
            self._model = mv if isinstance(mv, str) else None
        if isinstance(obj.get("usageMetadata"), dict):
            self._usage = usage_from(obj["usageMetadata"])
        cand = first_candidate(obj)
        if cand is None:
            return []
        parts = Parts(cand.get("content"))
        deltas: list[ToolCallDelta] = []
        for cid, name, args in parts.calls:
            index = len(self._calls)
            call = ToolCall(cid or f"call_{index}", name, args)
            self._calls.append(call)
            deltas.append(ToolCallDelta(index, call.id, name, args))
        text = "".join(parts.text)
        self._text.append(text)
        raw = cand.get("finishReason")
        finish: FinishReason | None = None
        if isinstance(raw, str) and raw:
            self._raw_finish = raw
            finish = finish_reason(raw, bool(self._calls))
        if not (text or deltas or parts.thoughts or finish):
            return []
        return [
            chunk(
                text,
                tool_calls=deltas,
                reasoning="".join(parts.thoughts),
                finish_reason=finish,
                usage=self._usage if finish else None,
            )
        ]

    def _response(self) -> Response:
        raw = self._raw_finish
        return Response(
            text="".join(self._text),
            tool_calls=list(self._calls),
            finish_reason=finish_reason(raw, bool(self._calls)),
            raw_finish_reason=raw,
            usage=self._usage or make_usage(),
            provider=self._dep.provider,
            model=self._model or self._dep.model,
            alias=self._dep.alias,
            id=self._id,
        )

    def finish(self) -> Response:
        if self._raw_finish is None:
            raise interrupted(
                "the stream ended before a chunk with a finishReason", self._dep, self._response()
            )
        return self._response()

    def partial(self) -> Response:
        return self._response()
