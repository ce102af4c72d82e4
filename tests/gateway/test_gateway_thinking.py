"""Extended thinking through the gateway's Anthropic stream, with the anthropic SDK as the
client: each thinking block ends with its ``signature_delta`` and a redacted block arrives
whole, as Anthropic's own stream sends them, so a tool loop with thinking can replay them."""

from __future__ import annotations

import hashlib
from typing import Any

from llmrelay.testing.fake import Reply

from .conftest import CLAUDE, Running, ant, named_sse, oai

_TOOLS: Any = [
    {
        "name": "lookup",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
]
_THINKING: Any = {"type": "enabled", "budget_tokens": 2048}


def _kind(event: Any) -> tuple[str, str | None]:
    """A stream event's type and its delta's or block's type."""
    inner = getattr(event, "delta", None) or getattr(event, "content_block", None)
    return event.type, getattr(inner, "type", None)


async def test_a_streamed_tool_loop_with_thinking_replays_signatures(gw: Running) -> None:
    sig = "sig_fake_" + hashlib.sha256(b"let me look it up").hexdigest()[:24]
    gw.fake.push(
        Reply.tool_call(
            "lookup", {"q": "x"}, reasoning="let me look it up", redacted_reasoning="opaque=="
        ),
        Reply.ok("found it"),
    )
    client = ant(gw)
    first: list[Any] = [{"role": "user", "content": "find x"}]
    events: list[Any] = []
    async with client.messages.stream(
        model=CLAUDE, max_tokens=4096, thinking=_THINKING, tools=_TOOLS, messages=first
    ) as stream:
        async for event in stream:
            events.append(event)
        message = await stream.get_final_message()
    # The events Anthropic sends: thinking deltas, then the signature, then the block's end.
    kinds = [_kind(e) for e in events if e.type.startswith("content_block")]
    thinking_end = kinds.index(("content_block_delta", "signature_delta"))
    assert kinds[0] == ("content_block_start", "thinking")
    assert thinking_end > 1
    assert set(kinds[1:thinking_end]) == {("content_block_delta", "thinking_delta")}
    assert kinds[thinking_end + 1 : thinking_end + 4] == [
        ("content_block_stop", "thinking"),  # the SDK's stop event carries the whole block
        ("content_block_start", "redacted_thinking"),
        ("content_block_stop", "redacted_thinking"),
    ]
    thinking, redacted, tool = message.content
    assert thinking.type == "thinking"
    assert (thinking.thinking, thinking.signature) == ("let me look it up", sig)
    assert redacted.type == "redacted_thinking"
    assert redacted.data == "opaque=="
    assert tool.type == "tool_use"
    assert message.stop_reason == "tool_use"

    follow = [
        *first,
        {"role": "assistant", "content": message.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "42"}],
        },
    ]
    async with client.messages.stream(
        model=CLAUDE, max_tokens=4096, thinking=_THINKING, tools=_TOOLS, messages=follow
    ) as stream:
        answer = await stream.get_final_message()
    assert answer.content[-1].type == "text"
    # What reached Anthropic: the thinking block with its signature and the redacted block,
    # exactly as they came.
    sent = gw.fake.requests[-1].body["messages"][1]["content"]
    assert sent[0] == {"type": "thinking", "thinking": "let me look it up", "signature": sig}
    assert sent[1] == {"type": "redacted_thinking", "data": "opaque=="}
    assert sent[2]["type"] == "tool_use"


def _hostile_thinking_stream() -> bytes:
    """An Anthropic stream whose upstream stops its thinking block twice, sends a late delta
    for it and starts its index again: one block, however often it is ended."""
    start: dict[str, Any] = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [],
            "usage": {"input_tokens": 3, "output_tokens": 0},
        },
    }
    block = {"type": "thinking", "thinking": "", "signature": ""}
    stop = {"type": "content_block_stop", "index": 0}
    return named_sse(
        start,
        {"type": "content_block_start", "index": 0, "content_block": block},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hmm"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "S1"},
        },
        stop,
        stop,
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "S2"},
        },
        {"type": "content_block_start", "index": 0, "content_block": block},
        stop,
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "ok"}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    )


async def test_a_thinking_block_stopped_twice_is_one_reasoning_item(gw: Running) -> None:
    """A hostile upstream repeats ``content_block_stop`` (and more) for a thinking block: the
    Responses stream carries one reasoning item, the Anthropic stream one thinking block."""
    body = _hostile_thinking_stream()
    gw.fake.push(Reply.raw(body, content_type="text/event-stream"))
    async with oai(gw).responses.stream(model=CLAUDE, input="x") as s:
        events = [e async for e in s]
        final = await s.get_final_response()
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["reasoning", "message"]
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert final.output[0].encrypted_content
    assert final.output_text == "ok"

    gw.fake.push(Reply.raw(body, content_type="text/event-stream"))
    async with ant(gw).messages.stream(
        model=CLAUDE,
        max_tokens=4096,
        thinking=_THINKING,
        messages=[{"role": "user", "content": "x"}],
    ) as stream:
        kinds = [_kind(e) async for e in stream if e.type.startswith("content_block")]
        message = await stream.get_final_message()
    assert kinds.count(("content_block_start", "thinking")) == 1
    assert kinds.count(("content_block_delta", "signature_delta")) == 1
    thinking, text = message.content
    assert thinking.type == "thinking"
    assert (thinking.thinking, thinking.signature) == ("hmm", "S1")
    assert text.type == "text"
