"""Extended thinking through the gateway's Anthropic stream, with the anthropic SDK as the
client: each thinking block ends with its ``signature_delta`` and a redacted block arrives
whole, as Anthropic's own stream sends them, so a tool loop with thinking can replay them."""

from __future__ import annotations

import hashlib
from typing import Any

from llmrelay.testing.fake import Reply

from .conftest import CLAUDE, Running, ant

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
