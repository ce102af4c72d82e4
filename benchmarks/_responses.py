"""The OpenAI Responses API for the overhead benchmark (``overhead.py --api responses``).

The upstream's fixed answers to ``POST /v1/responses`` (the same text and token counts as its
Chat Completions answers, in the shapes api.openai.com sends: see ``tests/recordings/llm/``) and
what the floor client (``_clients.aiohttp_floor``) reads of them: ``output_text`` or the
``response.output_text.delta`` events, nothing else.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = ["RESPONSE_BODY", "STREAM_EVENTS", "read_output_text", "read_text_deltas"]

_ID = "resp_0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b"
_MSG = "msg_0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3c"


def _response(model: str, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": _ID,
        "object": "response",
        "created_at": 1750000000,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _message(text: str) -> dict[str, Any]:
    return {
        "id": _MSG,
        "type": "message",
        "status": "completed",
        "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
        "role": "assistant",
    }


_USAGE = {
    "input_tokens": 32,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 48,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 80,
}


def RESPONSE_BODY(model: str, text: str) -> bytes:
    """The non-streamed answer."""
    return orjson.dumps(_response(model, "completed", [_message(text)], _USAGE))


def STREAM_EVENTS(model: str, text: str) -> list[bytes]:
    """The streamed answer's events (word-sized text deltas, ~30 of them)."""
    seq = 0
    out: list[bytes] = []

    def emit(obj: dict[str, Any]) -> None:
        nonlocal seq
        obj = {**obj, "sequence_number": seq}
        seq += 1
        out.append(b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n")

    emit({"type": "response.created", "response": _response(model, "in_progress", [], None)})
    emit({"type": "response.in_progress", "response": _response(model, "in_progress", [], None)})
    added = {**_message(""), "status": "in_progress", "content": []}
    emit({"type": "response.output_item.added", "output_index": 0, "item": added})
    common = {"item_id": _MSG, "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    emit({"type": "response.content_part.added", **common, "part": part})
    for piece in re.findall(r"\S+\s*", text):
        emit({"type": "response.output_text.delta", **common, "delta": piece, "logprobs": []})
    emit({"type": "response.output_text.done", **common, "text": text, "logprobs": []})
    emit({"type": "response.content_part.done", **common, "part": {**part, "text": text}})
    emit({"type": "response.output_item.done", "output_index": 0, "item": _message(text)})
    done = _response(model, "completed", [_message(text)], _USAGE)
    emit({"type": "response.completed", "response": done})
    return out


def read_output_text(data: Any) -> str:
    """The text of a decoded answer: its messages' ``output_text`` parts."""
    return "".join(
        c["text"]
        for item in data["output"]
        if item["type"] == "message"
        for c in item["content"]
        if c["type"] == "output_text"
    )


async def read_text_deltas(content: Any) -> str:
    """The text of a streamed answer: its ``response.output_text.delta`` events, up to
    ``response.completed``."""
    loads = orjson.loads
    parts: list[str] = []
    async for line in content:
        if not line.startswith(b"data: "):
            continue
        ev = loads(line[6:])
        kind = ev["type"]
        if kind == "response.output_text.delta":
            parts.append(ev["delta"])
        elif kind == "response.completed":
            break
    return "".join(parts)
