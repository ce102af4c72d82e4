"""The Responses API's typed stream events, as llmrelay chunks.

Every event is ``event: <type>`` / ``data: {"type": <type>, ...}``; there is no ``[DONE]``: the
stream ends with ``response.completed``, ``response.incomplete`` or ``response.failed`` (an
``error`` event may come first). Deltas become chunks as they arrive (``output_text.delta`` ->
text, ``reasoning_summary_text.delta`` -> reasoning, ``function_call_arguments.delta`` -> tool
call pieces indexed in call order); the final :class:`Response` is read from the finished output
items, the same way a non-streamed answer is, so both give the same result.
"""

from __future__ import annotations

from typing import Any

from ...transport.sse import SSEEvent
from ...types import Response, StreamChunk, ToolCall, ToolCallDelta, chunk, make_usage
from ..table import Deployment
from .base import event_json, interrupted
from .openai_responses_output import (
    Output,
    failed_error,
    finish_of,
    parse_output,
    raise_filtered,
    raise_refusal,
    response_from,
)

__all__ = ["ResponsesStream"]


class ResponsesStream:
    __slots__ = (
        "_args",
        "_calls",
        "_dep",
        "_done_items",
        "_id",
        "_model",
        "_reasoning",
        "_refusal",
        "_summary_key",
        "_text",
        "done",
        "response",
    )

    def __init__(self, dep: Deployment) -> None:
        self._dep = dep
        self._id: str | None = None
        self._model: str | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        #: output_index -> [tool index, call_id, name, argument pieces]
        self._calls: dict[int, list[Any]] = {}
        #: item_id -> output_index of function calls (argument events name either)
        self._args: dict[str, int] = {}
        #: output_index -> the finished item (``response.output_item.done``)
        self._done_items: dict[int, Any] = {}
        #: (item_id, summary_index) of the reasoning text streamed last
        self._summary_key: tuple[Any, Any] | None = None
        self.done = False
        #: The final answer, once a terminal event arrived.
        self.response: Response | None = None

    # ------------------------------------------------------------------ events

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        if self.done:
            return []  # the answer is complete: anything after its terminal event is not it
        obj = event_json(event.data, self._dep)
        kind = obj.get("type")
        if kind == "response.output_text.delta":
            d = obj.get("delta")
            if isinstance(d, str) and d:
                self._text.append(d)
                return [chunk(d)]
            return []
        if kind == "response.function_call_arguments.delta":
            return self._arguments(obj, obj.get("delta"), final=False)
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._reasoning_delta(obj)
        if kind == "response.output_item.added":
            return self._item_added(obj)
        if kind == "response.function_call_arguments.done":
            return self._arguments(obj, obj.get("arguments"), final=True)
        if kind == "response.output_item.done":
            return self._item_done(obj)
        if kind == "response.refusal.delta":
            d = obj.get("delta")
            if isinstance(d, str):
                self._refusal.append(d)
            return []
        if kind in ("response.created", "response.in_progress"):
            r = obj.get("response")
            if isinstance(r, dict):
                self._id = r.get("id") if isinstance(r.get("id"), str) else self._id
                self._model = r.get("model") if isinstance(r.get("model"), str) else self._model
            return []
        if kind in ("response.completed", "response.incomplete"):
            return self._finished(obj)
        if kind == "response.failed":
            r = obj.get("response")
            self.done = True
            raise failed_error(r.get("error") if isinstance(r, dict) else None, self._dep, {})
        if kind == "error":
            self.done = True
            err = obj.get("error")
            raise failed_error(err if isinstance(err, dict) else obj, self._dep, {})
        return []  # content_part.*, output_text.done, in-progress markers, built-in tools

    def _call_slot(self, obj: dict[str, Any]) -> list[Any] | None:
        idx = obj.get("output_index")
        if not isinstance(idx, int):
            idx = self._args.get(str(obj.get("item_id")))
        return self._calls.get(idx) if isinstance(idx, int) else None

    def _item_added(self, obj: dict[str, Any]) -> list[StreamChunk]:
        item = obj.get("item")
        idx = obj.get("output_index")
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return []
        if not isinstance(idx, int):
            idx = len(self._done_items) + len(self._calls) + 1000
        elif idx in self._calls:
            return []  # the same item announced again: one call, one tool index
        call_id = item.get("call_id") or item.get("id")
        name = str(item.get("name") or "")
        slot: list[Any] = [len(self._calls), call_id, name, []]
        self._calls[idx] = slot
        if isinstance(item.get("id"), str):
            self._args[item["id"]] = idx
        return [chunk(tool_calls=[ToolCallDelta(slot[0], call_id, name, "")])]

    def _arguments(self, obj: dict[str, Any], text: Any, *, final: bool) -> list[StreamChunk]:
        slot = self._call_slot(obj)
        if slot is None or not isinstance(text, str) or not text:
            return []
        if final and slot[3]:
            return []  # the deltas already carried it
        slot[3].append(text)
        return [chunk(tool_calls=[ToolCallDelta(slot[0], None, None, text)])]

    def _item_done(self, obj: dict[str, Any]) -> list[StreamChunk]:
        item = obj.get("item")
        idx = obj.get("output_index")
        if not isinstance(idx, int):
            idx = len(self._done_items) + 10_000
        self._done_items[idx] = item
        if isinstance(item, dict) and item.get("type") == "function_call":
            slot = self._calls.get(idx)
            if slot is None:  # a call that was never announced: announce it whole
                self._item_added({"item": item, "output_index": idx})
                slot = self._calls[idx]
                return [
                    chunk(tool_calls=[ToolCallDelta(slot[0], slot[1], slot[2], "")]),
                    *self._arguments(obj, item.get("arguments"), final=True),
                ]
            return self._arguments(obj, item.get("arguments"), final=True)
        if isinstance(item, dict) and item.get("type") == "reasoning":
            # The finished item (id, encrypted content), for relays to pass on.
            return [chunk(reasoning_part=parse_output([item]).reasoning_parts[0])]
        return []

    def _reasoning_delta(self, obj: dict[str, Any]) -> list[StreamChunk]:
        d = obj.get("delta")
        if not isinstance(d, str) or not d:
            return []
        key = (obj.get("item_id"), obj.get("summary_index", obj.get("content_index")))
        if self._summary_key is not None and key != self._summary_key:
            d = "\n\n" + d  # a new summary part: separated as the final reasoning text is
        self._summary_key = key
        self._reasoning.append(d)
        return [chunk(reasoning=d)]

    def _finished(self, obj: dict[str, Any]) -> list[StreamChunk]:
        self.done = True
        data = obj.get("response")
        if not isinstance(data, dict):
            data = {"status": "completed" if obj["type"] == "response.completed" else "incomplete"}
        output = data.get("output")
        if isinstance(output, list) and output:
            out = parse_output(output)
        elif self._done_items:
            out = parse_output([self._done_items[i] for i in sorted(self._done_items)])
        else:
            out = self._streamed_output()
        if not out.refusal and self._refusal:
            out.refusal.append("".join(self._refusal))
        raise_refusal(out, self._dep, {})
        data = {"id": self._id, "model": self._model, **data}
        raise_filtered(data, out, self._dep, {})
        resp = response_from(data, out, self._dep, {})
        self.response = resp
        end = chunk(finish_reason=resp.finish_reason, usage=resp.usage)
        # What only the final event carries (a relay that sends no deltas) still reaches the
        # chunks: a consumer of the stream sees the text and calls the response holds.
        head: list[StreamChunk] = []
        if not self._text and resp.text:
            head.append(chunk(resp.text))
        if not self._calls and resp.tool_calls:
            calls = resp.tool_calls
            deltas = [ToolCallDelta(i, c.id, c.name, c.arguments) for i, c in enumerate(calls)]
            head.append(chunk(tool_calls=deltas))
        return [*head, end] if head else [end]

    # ------------------------------------------------------------------ results

    def _streamed_output(self) -> Output:
        out = Output()
        out.text.append("".join(self._text))
        out.tool_calls = [
            ToolCall(str(s[1] or f"call_{s[0]}"), s[2], "".join(s[3]) or "{}")
            for _, s in sorted(self._calls.items())
        ]
        if self._reasoning:
            out.reasoning.append("".join(self._reasoning))
        return out

    def finish(self) -> Response:
        if self.response is None:
            raise interrupted(
                "the stream ended before its final event (response.completed)",
                self._dep,
                self.partial(),
            )
        return self.response

    def partial(self) -> Response:
        out = self._streamed_output()
        finish, raw = finish_of(None, None, out)
        return Response(
            text="".join(out.text),
            tool_calls=out.tool_calls,
            finish_reason=finish,
            raw_finish_reason=raw,
            usage=make_usage(),
            provider=self._dep.provider,
            model=self._model or self._dep.model,
            alias=self._dep.alias,
            id=self._id,
            reasoning="\n\n".join(out.reasoning),
        )
