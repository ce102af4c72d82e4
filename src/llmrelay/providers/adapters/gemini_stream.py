"""Google Gemini: reading answers — the stream parser, and the pieces of an answer it shares
with ``parse_response`` (a candidate's parts, usage, finish reasons, content filters).

A streamed answer is a series of whole ``GenerateContentResponse`` objects, each holding only
the new parts; there is no end marker (see :class:`GeminiStream`).

What a model turn's parts become (:class:`Turn`, the same for a whole answer and a stream):

- ``text`` parts are the answer; ``thought: true`` parts are the reasoning (thought summaries,
  sent when ``thinkingConfig.includeThoughts`` is on).
- ``functionCall`` parts are tool calls, in order. Gemini 3 on Vertex AI can stream one call's
  arguments in pieces (``FunctionCallingConfig.streamFunctionCallArguments``): a part with the
  ``name`` and ``willContinue: true`` opens the call, parts with ``partialArgs`` (a JSON path and
  a value; string values arrive in pieces) fill it, and a ``functionCall`` part without
  ``willContinue`` closes it. They become one call.
- ``functionCall.id`` is kept when Gemini sends one; otherwise the id is made from the
  response id (``call_<responseId>_<n>``), so ids differ from one answer to the next.
- ``thoughtSignature`` (https://ai.google.dev/gemini-api/docs/thought-signatures) is opaque and
  must go back in the part it came with: on a ``functionCall`` part it is the call's
  ``ToolCall.signature``; on a thought part it is kept with the thought's text in a
  ``ReasoningPart(id="thought")``; on a text part (the last part of an answer, or an empty text
  part at the end of a stream) in a ``ReasoningPart(id="text:<n>")`` where ``n`` is where that
  part ends in ``Response.text``. ``gemini.py`` puts each one back there when replaying.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

import orjson

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
from .base import as_int, event_json, interrupted, make_error
from .gemini_errors import check_prompt_blocked, flagged_ratings, in_band_error
from .tool_args import call_id_prefix

__all__ = [
    "FILTER_REASONS",
    "GeminiStream",
    "Turn",
    "filtered",
    "finish_reason",
    "first_candidate",
    "usage_from",
]

#: ``finishReason`` values that mean Google's filters stopped the answer (Gemini API
#: ``FinishReason``; ``MODEL_ARMOR`` is Vertex AI's Model Armor). They raise
#: ``ContentFilteredError`` instead of coming back as an answer.
FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **{r: "content_filter" for r in FILTER_REASONS},
}
#: One step of a JSON path (RFC 9535) as ``partialArgs`` name them: ``.name``, ``[0]``,
#: ``['name']`` or ``["name"]``.
_PATH_STEP = re.compile(
    r"\.([^.\[\]]+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]"
)


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


def first_candidate(data: dict[str, Any]) -> dict[str, Any] | None:
    """The first candidate of an answer, if it has one."""
    cands = data.get("candidates")
    if isinstance(cands, list) and cands and isinstance(cands[0], dict):
        return cands[0]
    return None


def filtered(
    raw: str,
    cand: Mapping[str, Any],
    partial_text: str,
    dep: Deployment,
    headers: Mapping[str, str],
    body: Any,
) -> ContentFilteredError:
    """The error for an answer Google's filters stopped (``finishReason`` in
    :data:`FILTER_REASONS`): the reason as ``category``, ``finishMessage`` or the flagged safety
    ratings as ``explanation``, and what the model wrote before it stopped."""
    flagged = flagged_ratings(cand.get("safetyRatings"))
    message = cand.get("finishMessage")
    explanation = message if isinstance(message, str) and message else ", ".join(flagged) or None
    detail = f" ({explanation})" if explanation else ""
    err = make_error(
        ContentFilteredError,
        f"Gemini's filters stopped the answer: finishReason {raw}{detail}",
        status=None,
        headers=headers,
        dep=dep,
        body=body,
    )
    assert isinstance(err, ContentFilteredError)
    err.category, err.explanation, err.partial_text = raw, explanation, partial_text
    return err


def _set_path(root: dict[str, Any], path: str, value: Any) -> None:
    """Put one ``partialArgs`` value at its JSON path; a string at a path that already holds
    a string is appended to it (long strings arrive in pieces)."""
    steps: list[str | int] = []
    rest = path[1:] if path.startswith("$") else path
    pos = 0
    while pos < len(rest):
        m = _PATH_STEP.match(rest, pos)
        if m is None:
            return  # a path we cannot read: leave the arguments as they are
        name, index, sq, dq = m.groups()
        steps.append(int(index) if index is not None else (name or sq or dq or ""))
        pos = m.end()
    if not steps:
        return
    node: Any = root
    for step, nxt in itertools.pairwise(steps):
        child: Any = [] if isinstance(nxt, int) else {}
        if isinstance(step, int) and isinstance(node, list):
            while len(node) <= step:
                node.append(None)
            if not isinstance(node[step], dict | list):
                node[step] = child
            node = node[step]
        elif isinstance(step, str) and isinstance(node, dict):
            if not isinstance(node.get(step), dict | list):
                node[step] = child
            node = node[step]
        else:
            return
    last = steps[-1]
    if isinstance(last, int) and isinstance(node, list):
        while len(node) <= last:
            node.append(None)
        old = node[last]
        node[last] = old + value if isinstance(old, str) and isinstance(value, str) else value
    elif isinstance(last, str) and isinstance(node, dict):
        old = node.get(last)
        node[last] = old + value if isinstance(old, str) and isinstance(value, str) else value


def _partial_value(arg: Mapping[str, Any]) -> tuple[bool, Any]:
    for key in ("stringValue", "numberValue", "boolValue"):
        if key in arg:
            return True, arg[key]
    if "nullValue" in arg:
        return True, None
    return False, None


class _Call:
    __slots__ = ("args", "id", "index", "name", "signature")

    def __init__(self, index: int, cid: str, name: str, signature: str | None) -> None:
        self.index = index
        self.id = cid
        self.name = name
        self.args: dict[str, Any] = {}
        self.signature = signature

    def tool_call(self) -> ToolCall:
        return ToolCall(self.id, self.name, orjson.dumps(self.args).decode(), self.signature)


class Turn:
    """What a model turn's parts add up to, part by part (see the module doc)."""

    __slots__ = (
        "_open",
        "_prefix",
        "_thought",
        "_thought_sig",
        "calls",
        "reasoning_parts",
        "text",
        "thoughts",
    )

    def __init__(self) -> None:
        self.text: list[str] = []
        self.thoughts: list[str] = []
        self.calls: list[ToolCall] = []
        self.reasoning_parts: list[ReasoningPart] = []
        self._open: _Call | None = None
        self._thought: list[str] = []
        self._prefix: str | None = None

    def _id(self, response_id: str | None) -> str:
        if self._prefix is None:
            self._prefix = call_id_prefix(response_id)
        return f"call_{self._prefix}_{len(self.calls)}"

    def _end_thought(self, signature: str | None = None) -> None:
        if self._thought or signature:
            self.reasoning_parts.append(
                ReasoningPart(
                    "".join(self._thought), signature=signature, id="thought", provider="gemini"
                )
            )
            self._thought = []

    def add(
        self, content: Any, response_id: str | None = None
    ) -> tuple[str, str, list[ToolCallDelta]]:
        """Read one candidate's ``content``: ``(text, thought text, tool-call deltas)`` of its
        parts (a streamed call's arguments come in the delta of the part that closes it)."""
        parts = content.get("parts") if isinstance(content, dict) else None
        text: list[str] = []
        thoughts: list[str] = []
        deltas: list[ToolCallDelta] = []
        for p in parts if isinstance(parts, list) else ():
            if not isinstance(p, dict):
                continue
            sig = p.get("thoughtSignature")
            sig = sig if isinstance(sig, str) and sig else None
            fc = p.get("functionCall")
            if isinstance(fc, dict):
                self._end_thought()
                self._call(fc, sig, response_id, deltas)
                continue
            t = p.get("text")
            if p.get("thought"):
                if isinstance(t, str) and t:
                    self._thought.append(t)
                    self.thoughts.append(t)
                    thoughts.append(t)
                if sig:
                    self._end_thought(sig)
                continue
            self._end_thought()
            if not isinstance(t, str):
                continue  # images, code execution ...: not read (nor replayed)
            self.text.append(t)
            text.append(t)
            if sig:
                end = sum(len(x) for x in self.text)
                self.reasoning_parts.append(
                    ReasoningPart(signature=sig, id=f"text:{end}", provider="gemini")
                )
        return "".join(text), "".join(thoughts), deltas

    def _call(
        self,
        fc: dict[str, Any],
        sig: str | None,
        response_id: str | None,
        deltas: list[ToolCallDelta],
    ) -> None:
        name = fc.get("name")
        cid = fc.get("id")
        cid = cid if isinstance(cid, str) and cid else None
        call = self._open
        if call is None and not name:
            return  # a stray end-of-call part: nothing is open
        if call is None or (isinstance(name, str) and name and name != call.name):
            if call is not None:  # a new call while one is open: the old one is complete
                self._close(call, deltas)
            call = _Call(len(self.calls), cid or self._id(response_id), str(name or ""), sig)
            self._open = call
            deltas.append(ToolCallDelta(call.index, call.id, call.name, ""))
        elif sig and call.signature is None:
            call.signature = sig
        args = fc.get("args")
        if isinstance(args, dict):
            call.args.update(args)
        for pa in fc.get("partialArgs") or ():
            if isinstance(pa, dict) and isinstance(pa.get("jsonPath"), str):
                ok, value = _partial_value(pa)
                if ok:
                    _set_path(call.args, pa["jsonPath"], value)
        if not fc.get("willContinue"):
            self._close(call, deltas)

    def _close(self, call: _Call, deltas: list[ToolCallDelta]) -> None:
        tc = call.tool_call()
        self.calls.append(tc)
        self._open = None
        for d in deltas:
            if d.index == call.index and not d.arguments:
                d.arguments = tc.arguments  # opened and closed in the same chunk
                d.signature = tc.signature
                return
        deltas.append(ToolCallDelta(call.index, None, None, tc.arguments, tc.signature))

    def finish(self) -> None:
        """End of the answer: a thought run or a call still open is complete as it is."""
        self._end_thought()
        if self._open is not None:
            self._close(self._open, [])


class GeminiStream:
    """Gemini has no end marker: the chunk with a ``finishReason`` (and the final
    ``usageMetadata``) is the last one, so ``done`` is set there and the backend stops
    reading. Filter finishes (:data:`FILTER_REASONS`) raise ``ContentFilteredError`` from
    :meth:`finish`, with the text streamed so far."""

    __slots__ = (
        "_dep",
        "_filter",
        "_id",
        "_model",
        "_raw_finish",
        "_turn",
        "_usage",
        "done",
    )

    def __init__(self, dep: Deployment) -> None:
        self._dep = dep
        self._turn = Turn()
        self._raw_finish: str | None = None
        self._filter: tuple[dict[str, Any], dict[str, Any]] | None = None
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
        text, thoughts, deltas = self._turn.add(cand.get("content"), self._id)
        raw = cand.get("finishReason")
        finish: FinishReason | None = None
        if isinstance(raw, str) and raw:
            self._turn.finish()
            self._raw_finish = raw
            finish = finish_reason(raw, bool(self._turn.calls))
            self.done = True
            if raw in FILTER_REASONS:
                self._filter = (cand, obj)
                finish = None  # the stream ends with ContentFilteredError, not a finish
        if not (text or deltas or thoughts or finish):
            return []
        return [
            chunk(
                text,
                tool_calls=deltas,
                reasoning=thoughts,
                finish_reason=finish,
                usage=self._usage if finish else None,
            )
        ]

    def _response(self) -> Response:
        raw = self._raw_finish
        t = self._turn
        return Response(
            text="".join(t.text),
            tool_calls=list(t.calls),
            finish_reason=finish_reason(raw, bool(t.calls)),
            raw_finish_reason=raw,
            usage=self._usage or make_usage(),
            provider=self._dep.provider,
            model=self._model or self._dep.model,
            alias=self._dep.alias,
            id=self._id,
            reasoning="".join(t.thoughts),
            reasoning_parts=list(t.reasoning_parts),
        )

    def finish(self) -> Response:
        if self._raw_finish is None:
            raise interrupted(
                "the stream ended before a chunk with a finishReason", self._dep, self._response()
            )
        if self._filter is not None:
            cand, obj = self._filter
            raise filtered(self._raw_finish, cand, "".join(self._turn.text), self._dep, {}, obj)
        return self._response()

    def partial(self) -> Response:
        return self._response()
