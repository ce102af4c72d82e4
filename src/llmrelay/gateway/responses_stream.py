"""The OpenAI Responses wire's stream, server side: our stream chunks as the Responses API's
typed events (``response.created`` ... ``response.completed``), the items built as
``responses_wire`` builds a non-streamed answer's."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ..types import ReasoningPart, Response, StreamChunk
from .responses_wire import (
    call_item,
    message_item,
    reasoning_item,
    response_obj,
    status_of,
)
from .sse import each_text
from .wire import HttpError

__all__ = ["StreamWriter"]


class StreamWriter:
    """Our stream chunks as the Responses API's typed events. Each output item is announced
    (``response.output_item.added``), filled by deltas and finished
    (``response.output_item.done``) with the same id the final ``response.completed`` carries,
    as the openai SDK's stream accumulator checks. Function calls stay open until another kind
    of item starts (parallel calls may interleave)."""

    __slots__ = (
        "_calls",
        "_items",
        "_open",
        "_reasoning_k",
        "_seq",
        "base",
        "created",
        "echo",
        "model",
        "seal",
    )

    def __init__(
        self,
        base: str,
        model: str,
        echo: Mapping[str, Any],
        seal: Callable[[ReasoningPart], str],
    ) -> None:
        self.base = base
        #: Signs a reasoning item's ``encrypted_content`` for the caller (``Sealer.bind``).
        self.seal = seal
        self.model = model
        self.echo = echo
        self.created = int(time.time())
        self._seq = 0
        #: Every item announced, by output index (the finished ones as they were finished).
        self._items: list[dict[str, Any]] = []
        #: The reasoning or message item being streamed (its output index), if any.
        self._open: int | None = None
        #: tool index -> output index of function calls not yet finished
        self._calls: dict[int, int] = {}
        self._reasoning_k = 0

    def _event(self, obj: dict[str, Any]) -> bytes:
        obj["sequence_number"] = self._seq
        self._seq += 1
        kind: str = obj["type"]
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"

    def _response(
        self,
        status: str,
        resp: Response | None = None,
        details: dict[str, str] | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        output = list(self._items) if status != "in_progress" else []
        return response_obj(
            self.base, self.model, self.created, self.echo, status, output, resp, details, error
        )

    def start(self) -> bytes:
        return self._event(
            {"type": "response.created", "response": self._response("in_progress")}
        ) + self._event({"type": "response.in_progress", "response": self._response("in_progress")})

    # ------------------------------------------------------------------ items

    def _add(self, item: dict[str, Any]) -> tuple[int, bytes]:
        index = len(self._items)
        self._items.append(item)
        announced = {**item, "status": "in_progress"} if "status" in item else item
        if item["type"] == "message":
            announced = {**announced, "content": []}
        elif item["type"] == "reasoning":
            announced = {**announced, "summary": []}
        ev = self._event(
            {"type": "response.output_item.added", "output_index": index, "item": announced}
        )
        return index, ev

    def _done(self, index: int) -> bytes:
        return self._event(
            {"type": "response.output_item.done", "output_index": index, "item": self._items[index]}
        )

    def _close_calls(self) -> bytes:
        out = b""
        for index in sorted(self._calls.values()):
            item = self._items[index]
            item["status"] = "completed"
            out += self._event(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "arguments": item["arguments"],
                }
            )
            out += self._done(index)
        self._calls.clear()
        return out

    def _close(self) -> bytes:
        """Finish the open reasoning or message item."""
        index = self._open
        if index is None:
            return b""
        self._open = None
        item = self._items[index]
        if item["type"] == "reasoning":
            return self._close_reasoning(index)
        part = item["content"][0]
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        if part["type"] == "refusal":
            out = self._event(
                {"type": "response.refusal.done", **common, "refusal": part["refusal"]}
            )
        else:
            out = self._event(
                {
                    "type": "response.output_text.done",
                    **common,
                    "text": part["text"],
                    "logprobs": [],
                }
            )
        out += self._event({"type": "response.content_part.done", **common, "part": part})
        return out + self._done(index)

    def _close_reasoning(self, index: int) -> bytes:
        item = self._items[index]
        out = b""
        for i, part in enumerate(item["summary"]):
            common = {"item_id": item["id"], "output_index": index, "summary_index": i}
            out += self._event(
                {"type": "response.reasoning_summary_text.done", **common, "text": part["text"]}
            )
            out += self._event(
                {"type": "response.reasoning_summary_part.done", **common, "part": part}
            )
        return out + self._done(index)

    def _open_item(self, kind: str) -> bytes:
        """Make sure a ``kind`` item (reasoning or message) is open; close anything else."""
        if self._open is not None and self._items[self._open]["type"] == kind:
            return b""
        out = self._close() + self._close_calls()
        if kind == "reasoning":
            item = reasoning_item(f"rs_{self.base}_{self._reasoning_k}", None, "", self.seal)
            self._reasoning_k += 1
        else:
            n = sum(1 for it in self._items if it["type"] == "message")
            item = message_item(f"msg_{self.base}_{n}", "", None)
        index, ev = self._add(item)
        self._open = index
        return out + ev

    # ------------------------------------------------------------------ chunks

    def text_run(self, pieces: list[str]) -> bytes:
        return each_text(self, pieces)

    def chunk(self, c: StreamChunk) -> bytes:
        out = b""
        if c.reasoning:
            out += self._reasoning(c.reasoning)
        if c.reasoning_part is not None:
            out += self._reasoning_done(c.reasoning_part)
        if c.delta:
            out += self._text(c.delta)
        for d in c.tool_calls:
            out += self._tool(d.index, d.id, d.name, d.arguments)
        return out

    def _reasoning(self, text: str) -> bytes:
        out = self._open_item("reasoning")
        assert self._open is not None
        index = self._open
        item = self._items[index]
        common = {"item_id": item["id"], "output_index": index, "summary_index": 0}
        if not item["summary"]:
            item["summary"].append({"type": "summary_text", "text": ""})
            out += self._event(
                {
                    "type": "response.reasoning_summary_part.added",
                    **common,
                    "part": {"type": "summary_text", "text": ""},
                }
            )
        item["summary"][0]["text"] += text
        return out + self._event(
            {"type": "response.reasoning_summary_text.delta", **common, "delta": text}
        )

    def _reasoning_done(self, p: ReasoningPart) -> bytes:
        """A reasoning block the model finished: its item gets what a replay needs."""
        out = b""
        if self._open is None or self._items[self._open]["type"] != "reasoning":
            out += self._open_item("reasoning")  # nothing of it was streamed (redacted)
        assert self._open is not None
        item = self._items[self._open]
        if p.signature or p.data or p.id:
            item["encrypted_content"] = self.seal(p)
        return out + self._close()

    def _text(self, text: str) -> bytes:
        new = self._open is None or self._items[self._open]["type"] != "message"
        out = self._open_item("message")
        assert self._open is not None
        index = self._open
        item = self._items[index]
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        part = item["content"][0]
        if new:  # its content part first
            blank = {**part, "text": ""}
            out += self._event({"type": "response.content_part.added", **common, "part": blank})
        part["text"] += text
        return out + self._event(
            {"type": "response.output_text.delta", **common, "delta": text, "logprobs": []}
        )

    def _tool(self, tool: int, call_id: str | None, name: str | None, args: str) -> bytes:
        out = b""
        index = self._calls.get(tool)
        if index is None:
            out += self._close()
            fid = f"fc_{self.base}_{tool}"
            index, ev = self._add(call_item(fid, call_id or fid, name or "", "", "in_progress"))
            out += ev
            self._calls[tool] = index
        if not args:
            return out
        item = self._items[index]
        item["arguments"] += args
        return out + self._event(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": item["id"],
                "output_index": index,
                "delta": args,
            }
        )

    # ------------------------------------------------------------------ the end

    def _refusal(self, words: str) -> bytes:
        out = self._close() + self._close_calls()
        n = sum(1 for it in self._items if it["type"] == "message")
        item = message_item(f"msg_{self.base}_{n}", None, words)
        index, ev = self._add(item)
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        out += ev + self._event(
            {
                "type": "response.content_part.added",
                **common,
                "part": {"type": "refusal", "refusal": ""},
            }
        )
        out += self._event({"type": "response.refusal.delta", **common, "delta": words})
        self._open = index
        return out + self._close()

    def finish(self, resp: Response | None, *, refusal: str | None = None) -> bytes:
        """The open items finished, then ``response.completed`` (or ``response.incomplete``)
        with every item and the usage."""
        out = self._refusal(refusal) if refusal is not None else b""
        if not self._items:  # an empty answer is still a message
            out += self._open_item("message")
            index = self._open
            assert index is not None
            common = {"item_id": self._items[index]["id"], "output_index": index}
            out += self._event(
                {
                    "type": "response.content_part.added",
                    **common,
                    "content_index": 0,
                    "part": self._items[index]["content"][0],
                }
            )
        out += self._close() + self._close_calls()
        status, details = status_of(resp, refusal is not None)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event({"type": kind, "response": self._response(status, resp, details)})

    def error(self, err: HttpError) -> bytes:
        """An error after the stream started: an ``error`` event, then ``response.failed``."""
        out = self._event(
            {"type": "error", "code": err.code, "message": err.message, "param": None}
        )
        failed = self._response("failed", error={"code": err.code, "message": err.message})
        return out + self._event({"type": "response.failed", "response": failed})
