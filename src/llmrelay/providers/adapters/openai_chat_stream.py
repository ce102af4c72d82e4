"""The state of one OpenAI Chat Completions stream (``OpenAIChatAdapter.stream_state``).

Most events of a stream differ from each other only in their text (and OpenAI's random
``obfuscation`` padding): the first such event becomes a template (``_template``), later ones
are read by their text alone, and those one read delivered together leave as one
:class:`~llmrelay.types.TextRun` (``feed_values``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from orjson import JSONDecodeError
from orjson import loads as _loads

from ...transport.sse import SSEEvent
from ...types import (
    Response,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    chunk,
    make_usage,
    text_chunk,
    text_run,
)
from ..table import Deployment
from .base import MapError, event_json, in_band_error, interrupted
from .openai_answer import (
    FINISH,
    filtered_categories,
    filtered_error,
    groq_request_id,
    parts_text,
    reasoning_of,
    usage_from,
)
from .openai_request import thought_signature
from .tool_args import args_text, call_id_prefix

__all__ = ["OpenAIChatStream"]

#: What ``OpenAIChatStream._template`` puts in place of a text to find where the text goes.
_MARK_TEXT = "\x00llmrelay text\x00"
_MARK = orjson.dumps(_MARK_TEXT).decode()
#: Where an event's random padding starts (``OpenAIChatStream._template``).
_PAD = '"obfuscation":"'


class OpenAIChatStream:
    """One Chat Completions stream's state: its events in, our chunks out, the answer at the
    end (``StreamState``)."""

    __slots__ = (
        "_dep",
        "_failed",
        "_filter",
        "_id",
        "_map_error",
        "_mid",
        "_model",
        "_post",
        "_pre",
        "_prefix",
        "_raw_finish",
        "_reasoning",
        "_refusal",
        "_rid",
        "_slot",
        "_text",
        "_tools",
        "_usage",
        "done",
    )

    def __init__(self, map_error: MapError, dep: Deployment) -> None:
        self._map_error = map_error
        self._dep = dep
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] | None = None
        self._filter: str | None = None
        #: index -> [id, name, argument pieces, thought signature]
        self._tools: dict[int, list[Any]] = {}
        #: wire index -> our index, where a server reuses an index for another call
        self._slot: dict[int, int] = {}
        self._raw_finish: str | None = None
        self._usage: Usage | None = None
        self._id: str | None = None
        self._model: str | None = None
        #: Of the ids made up for tool calls that came without one (see ``call_id_prefix``).
        self._prefix: str | None = None
        #: The request id a Groq stream carries in ``x_groq.id`` (other vendors: headers only).
        self._rid: str | None = None if dep.provider == "groq" else ""
        #: What a text-only event holds around its text (``_template``): an event the same
        #: but for its text is not parsed whole. None: none yet ("": none will be).
        self._pre: str | None = None
        #: Where the template has an ``obfuscation`` value after the text (OpenAI's and Azure's
        #: streams pad every event with a random one): what comes between the text and it.
        self._mid: str | None = None
        self._post = ""
        self.done = False
        #: The in-band error of an event that also carried output: raised once that output
        #: has been given (``feed_values``).
        self._failed: Exception | None = None

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        return self.feed_data(event.data)

    def feed_data(self, data: str) -> list[StreamChunk]:
        """``feed`` for an event's data, all it reads (``SSEDecoder.feed_data`` gives it)."""
        return list(self.feed_values([data]))

    def feed_values(self, values: list[str]) -> Iterator[StreamChunk]:
        """``feed_data`` for each of ``values``, the events' data one read delivered. The text
        events the template matches (``_template``: its parts around one JSON string, and
        around padding of letters and digits only, which cannot hide a quote) that follow each
        other come out as one :class:`TextRun`: one chunk through the pipeline instead of one
        each (a relay still sends one event per piece; iterating a stream gives one chunk per
        piece). Every other event is read by ``_parse``; what came before an event that raises
        has been yielded already."""
        run: list[str] | None = None
        texts = self._text
        pre, mid, post = self._pre, self._mid, self._post
        for data in values:
            # ``removeprefix``/``removesuffix`` give back the very string when it does not
            # match (one-argument methods: cheaper than ``startswith`` and a slice).
            if (
                pre
                and (rest := data.removeprefix(pre)) is not data
                and (body := rest.removesuffix(post)) is not rest
            ):
                if mid is not None:
                    at = body.rfind(mid)
                    pad = body[at + len(mid) :]
                    body = (
                        ""
                        if at < 0 or (pad and not (pad.isascii() and pad.isalnum()))
                        else body[:at]
                    )
                try:
                    text = _loads(body)
                except JSONDecodeError:
                    text = None
                if text.__class__ is str:
                    if text:
                        texts.append(text)  # kept in the order the events came
                        if run is None:
                            run = [text]
                        else:
                            run.append(text)
                    continue
            try:
                out = self._parse(data)
            except Exception:
                if run is not None:  # the text before the event that failed goes first
                    yield self._run(run)
                raise
            if isinstance(out, str):  # a text event, parsed whole (the template is new)
                texts.append(out)
                if run is None:
                    run = [out]
                else:
                    run.append(out)
                pre, mid, post = self._pre, self._mid, self._post
                continue
            if run is not None:
                yield self._run(run)
                run = None
            yield from out
            if self._failed is not None:  # an error beside output: the output went first
                raise self._failed
            if self.done:
                # [DONE] ends the answer: what a server sends after it in the same read is not
                # part of it (a later read is not read at all: the backend stops at ``done``).
                return
            pre, mid, post = self._pre, self._mid, self._post  # the template may be new
        if run is not None:
            yield self._run(run)

    @staticmethod
    def _run(pieces: list[str]) -> StreamChunk:
        return text_chunk(pieces[0]) if len(pieces) == 1 else text_run(pieces)

    def _parse(self, data: str) -> list[StreamChunk] | str:
        """``feed_data`` for an event the template does not match: parsed whole. An event of
        text alone gives the text (``feed_values`` adds it to the run it is in)."""
        pre = self._pre
        if data == "[DONE]":
            self.done = True
            return []
        try:
            obj = _loads(data)
        except JSONDecodeError:
            obj = None
        if obj.__class__ is not dict:
            obj = event_json(data, self._dep)  # raises what the event is instead
        if not self._id:
            # Azure opens with id "" / model "" (prompt filter results): take the first
            # chunk that has them.
            rid = obj.get("id")
            if rid and rid.__class__ is str:  # a hostile id (a dict) never reaches .id
                self._id = rid
        if not self._model:
            model = obj.get("model")
            if model:  # as parse_response: a str, whatever the upstream sent
                self._model = model if model.__class__ is str else str(model)
        if self._rid is None:
            self._rid = groq_request_id(obj)
        u = obj.get("usage")
        usage = usage_from(u) if u.__class__ is dict else None
        choices = obj.get("choices")
        if choices.__class__ is list and choices:
            ch = choices[0]
            if ch.__class__ is dict:
                delta = ch.get("delta")
                # The common chunk, {"delta": {"content": "..."}} and no finish: text only.
                if (
                    delta.__class__ is dict
                    and len(delta) == 1
                    and ch.get("finish_reason") is None
                    and (text := delta.get("content")).__class__ is str
                ):
                    if usage is None and not obj.get("error"):
                        if not text:
                            return []
                        if pre is None:
                            self._template(data, obj, text)
                        return text
                    out: list[StreamChunk] = []
                    if text:
                        self._text.append(text)
                        out.append(StreamChunk(text))
                else:
                    c = self._choice(ch, delta)
                    out = [] if c is None else [c]
            else:
                out = []
        else:
            out = []
        if usage is not None:
            self._usage = usage
        if obj.get("error"):
            # An error object next to (or without) choices: OpenRouter reports a failure
            # mid-stream this way. Typed; what came before it stays in ``partial()`` (the
            # engine makes it a StreamInterruptedError carrying the partial answer). Output in
            # the same event is part of the answer: given first, then the error is raised.
            err = in_band_error(self._map_error, obj, data.encode(), {}, self._dep)
            given = [
                chunk(c.delta, tool_calls=c.tool_calls, reasoning=c.reasoning)
                for c in out
                if c.delta or c.tool_calls or c.reasoning  # output, not its finish reason
            ]
            if not given:
                raise err
            self._failed = err
            return given
        if usage is not None:
            out.append(chunk(usage=usage))
        return out

    def _template(self, data: str, obj: dict[str, Any], text: str) -> None:
        """Keep what the text-only event ``data`` (``obj``, its text ``text``) holds around its
        text if a marker in its place parses to ``obj`` with the marker as text: an event of
        the same parts around any JSON string is then this one (read already) with that text.
        An ``obfuscation`` string after the text (OpenAI pads each event with a random one) is
        a second slot: ``_mid`` holds what lies between the two."""
        self._pre = ""  # tried: once per stream
        at = data.find('"content":')
        if at < 0 or text == _MARK_TEXT:
            return
        at += 10
        enc = orjson.dumps(text).decode()  # as most upstreams encode it; else no template
        if data[at : at + len(enc)] != enc:
            return
        pre, post = data[:at], data[at + len(enc) :]
        mid = None
        pad_at = post.find(_PAD)
        if pad_at >= 0:
            start = pad_at + len(_PAD)
            end = post.find('"', start)
            pad = post[start:end]
            if end < 0 or (pad and not (pad.isascii() and pad.isalnum())):
                return
            mid, post = post[:start], post[end:]
            if _PAD in post:
                return
        try:
            probe = _loads(pre + _MARK + (post if mid is None else mid + pad + post))
            delta = probe["choices"][0]["delta"]
            if delta.get("content") != _MARK_TEXT:
                return
            delta["content"] = text
        except (JSONDecodeError, LookupError, TypeError, AttributeError):
            return
        if probe == obj:
            self._pre, self._mid, self._post = pre, mid, post

    def _choice(self, ch: dict[str, Any], delta: Any) -> StreamChunk | None:
        text = reasoning = None
        tdeltas: list[ToolCallDelta] = []
        if isinstance(delta, dict) and delta:
            text = delta.get("content")
            if text.__class__ is not str:  # as in a plain answer: parts give their text
                text = parts_text(text) if text.__class__ is list else None
            reasoning = reasoning_of(delta)
            refusal = delta.get("refusal")
            if refusal and isinstance(refusal, str):
                if self._refusal is None:
                    self._refusal = []
                self._refusal.append(refusal)
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for tc in calls:
                    if isinstance(tc, dict):
                        tdeltas.append(self._tool_delta(tc))
        raw_finish = ch.get("finish_reason")
        if raw_finish.__class__ is not str:  # malformed (an object, a number): absent
            raw_finish = None
        if raw_finish:
            self._raw_finish = raw_finish
            if raw_finish == "content_filter":
                self._filter = filtered_categories(ch) or ""
        if text or reasoning or tdeltas or raw_finish:
            if text:
                self._text.append(text)
            if reasoning:
                self._reasoning.append(reasoning)
            return chunk(
                text or "",
                tool_calls=tdeltas,
                reasoning=reasoning or "",
                finish_reason=FINISH.get(raw_finish, "other") if raw_finish else None,
            )
        return None

    def _tool_delta(self, tc: dict[str, Any]) -> ToolCallDelta:
        """One tool-call delta. Some servers (OpenRouter relaying Novita, kimi-k2) repeat the
        id and the whole name in every delta of a call: both are taken once, the first time
        they come, and only new arguments are appended. A delta without ``index`` (some
        compatible servers omit it) continues the last call, unless it brings another id: then
        it starts the next one. Gemini's OpenAI-compatible endpoint sends parallel calls all at
        ``index: 0``, each with its own id: a new id at an index that holds another call starts
        the next call too (later deltas at that index continue it)."""
        new_id = tc.get("id") or None
        idx = tc.get("index")
        if idx.__class__ is not int:
            idx = max(self._tools) if self._tools else 0
            last = self._tools.get(idx)
            if last is not None and new_id is not None and last[0] not in (None, new_id):
                idx += 1
        else:
            wire = idx
            idx = self._slot.get(wire, wire)
            last = self._tools.get(idx)
            if last is not None and new_id is not None and last[0] not in (None, new_id):
                idx = max(self._tools) + 1
                self._slot[wire] = idx
        fn = tc.get("function") or {}
        slot = self._tools.get(idx)
        if slot is None:
            slot = self._tools[idx] = [None, "", [], None]
        sig = None
        if slot[3] is None and "extra_content" in tc:
            sig = slot[3] = thought_signature(tc)
        if new_id is not None:
            if slot[0] is None:
                slot[0] = new_id
            else:
                new_id = None  # repeated: not news
        name = fn.get("name") if isinstance(fn, dict) else None
        if name and isinstance(name, str) and not slot[1]:
            slot[1] = name
        else:
            name = None
        args = (fn.get("arguments") if isinstance(fn, dict) else None) or ""
        if args.__class__ is not str:  # an object (some servers): encoded, as in a plain answer
            args = args_text(args)
        if args:
            slot[2].append(args)
        return ToolCallDelta(idx, new_id, name, args, sig)

    def _response(self) -> Response:
        if self._prefix is None and any(v[0] is None for v in self._tools.values()):
            self._prefix = call_id_prefix(self._id)  # kept: partial() and finish() agree
        tools = [
            ToolCall(v[0] or f"call_{self._prefix}_{i}", v[1], "".join(v[2]) or "{}", v[3])
            for i, v in sorted(self._tools.items())
        ]
        raw = self._raw_finish
        return Response(
            text="".join(self._text),
            tool_calls=tools,
            finish_reason=FINISH.get(raw, "other") if raw else None,
            raw_finish_reason=raw,
            usage=self._usage or make_usage(),
            provider=self._dep.provider,
            model=self._model or self._dep.model,
            alias=self._dep.alias,
            id=self._id,
            request_id=self._rid or None,
            reasoning="".join(self._reasoning),
        )

    def finish(self) -> Response:
        # Some compatible servers omit [DONE]; a finish reason is then the end marker.
        if not self.done and self._raw_finish is None:
            raise interrupted(
                "the stream ended before its final event", self._dep, self._response()
            )
        if self._refusal is not None or self._filter is not None:
            raise filtered_error(
                self._dep,
                {},
                refusal="".join(self._refusal) if self._refusal is not None else None,
                categories=self._filter or None,
                partial_text="".join(self._text),
                response_id=self._id,
            )
        return self._response()

    def partial(self) -> Response:
        return self._response()
