"""The official ``anthropic`` SDK parses what the fake upstream sends: proof that the fake
speaks api.anthropic.com's real format (bodies, SSE streams, model lists and errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import orjson
import pytest

from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY

#: Any current model name (the SDK warns about deprecated ones); the fake answers them all.
MODEL = "claude-haiku-4-5"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def sdk(fake: FakeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(
        api_key=CANARY_KEY, base_url=fake.anthropic_base_url, max_retries=0
    )
    yield client
    await client.close()


async def test_message(fake: FakeUpstream, sdk: anthropic.AsyncAnthropic) -> None:
    fake.push(Reply.ok("Hello from the fake", input_tokens=30, output_tokens=4, cached_tokens=10))
    msg = await sdk.messages.create(
        model=MODEL,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.model == MODEL
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "Hello from the fake"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 20  # Anthropic's count excludes the cache read
    assert msg.usage.cache_read_input_tokens == 10
    assert msg.usage.output_tokens == 4
    assert msg._request_id is not None
    assert msg._request_id.startswith("req_fake_")
    rec = fake.requests[-1]
    assert rec.path == "/v1/messages"
    # This SDK sends the key as a bearer token (older ones used x-api-key): the fake takes both.
    assert CANARY_KEY in (rec.headers.get("x-api-key"), rec.headers["authorization"][7:])


async def test_stream_and_final_message(fake: FakeUpstream, sdk: anthropic.AsyncAnthropic) -> None:
    async with sdk.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "stream this please"}]
    ) as stream:
        pieces = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == "Echo: stream this please"
    assert final.content[0].type == "text"
    assert final.content[0].text == "Echo: stream this please"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 1  # updated by message_delta
    assert final.id == "msg_fake0001"


async def test_raw_stream_events(fake: FakeUpstream, sdk: anthropic.AsyncAnthropic) -> None:
    stream = await sdk.messages.create(
        model=MODEL, max_tokens=50, stream=True, messages=[{"role": "user", "content": "a b"}]
    )
    kinds = [event.type async for event in stream]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "content_block_delta" in kinds


async def test_tool_use_reply(fake: FakeUpstream, sdk: anthropic.AsyncAnthropic) -> None:
    fake.push(Reply.tool_call("get_weather", {"city": "Paris"}))
    msg = await sdk.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    block = msg.content[0]
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert block.input == {"city": "Paris"}
    assert block.id == "toolu_fake0001"
    assert msg.stop_reason == "tool_use"


async def test_streamed_tool_use_and_forced_tool(
    fake: FakeUpstream, sdk: anthropic.AsyncAnthropic
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    async with sdk.messages.stream(
        model=MODEL,
        max_tokens=100,
        tools=[{"name": "Person", "input_schema": schema}],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "Person"},
        messages=[{"role": "user", "content": "Invent a person"}],
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert block.name == "Person"
    assert block.input == {"name": "example", "age": 42}
    assert final.stop_reason == "tool_use"


async def test_model_list(fake: FakeUpstream, sdk: anthropic.AsyncAnthropic) -> None:
    models = [m async for m in sdk.models.list()]
    ids = [m.id for m in models]
    assert "claude-sonnet-4-5" in ids
    claude = models[ids.index("claude-sonnet-4-5")]
    assert claude.type == "model"
    assert claude.display_name
    assert claude.created_at.year == 2025
    page = await sdk.models.list()
    assert page.has_more is False
    assert page.first_id == ids[0]
    assert page.last_id == ids[-1]
    assert fake.requests[-1].headers["anthropic-version"]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply.error(400, "messages: field required"), anthropic.BadRequestError),
        (Reply.error(403, "not allowed"), anthropic.PermissionDeniedError),
        (Reply.error(404, "model: claude-nope"), anthropic.NotFoundError),
        (Reply.error(429, "rate limited", headers={"retry-after": "3"}), anthropic.RateLimitError),
        (Reply.error(500, "Internal server error"), anthropic.InternalServerError),
        (Reply.error(529, "Overloaded"), anthropic.OverloadedError),
    ],
)
async def test_sdk_raises_its_typed_errors(
    fake: FakeUpstream,
    sdk: anthropic.AsyncAnthropic,
    reply: Reply,
    error: type[anthropic.APIStatusError],
) -> None:
    fake.push(reply)
    with pytest.raises(error) as info:
        await sdk.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    e = info.value
    assert e.status_code == reply.status
    assert isinstance(e.body, dict)
    assert e.body["error"]["message"] == reply.message
    assert e.request_id is not None
    assert e.request_id.startswith("req_fake_")
    if reply.status == 529:
        assert isinstance(e, anthropic.InternalServerError)
        assert e.body["error"]["type"] == "overloaded_error"


async def test_sdk_authentication_error(fake: FakeUpstream) -> None:
    client = anthropic.AsyncAnthropic(
        api_key="sk-wrong", base_url=fake.anthropic_base_url, max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as info:
        await client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "authentication_error"
    await client.close()


async def test_sdk_sees_in_stream_error_event(
    fake: FakeUpstream, sdk: anthropic.AsyncAnthropic
) -> None:
    fake.push(Reply.stream_error(after_chunks=1, message="Overloaded", type="overloaded_error"))
    stream = await sdk.messages.create(
        model=MODEL, max_tokens=10, stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    kinds: list[str] = []

    async def read() -> None:
        async for event in stream:
            kinds.append(event.type)

    with pytest.raises(anthropic.APIStatusError) as info:
        await read()
    assert kinds[0] == "message_start"
    assert "content_block_delta" in kinds
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "overloaded_error"


async def test_sdk_parses_thinking_blocks(
    fake: FakeUpstream, sdk: anthropic.AsyncAnthropic
) -> None:
    fake.push(Reply.ok("42", reasoning="Six times seven.", redacted_reasoning="b3BhcXVl"))
    msg = await sdk.messages.create(
        model=MODEL,
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2000},
        messages=[{"role": "user", "content": "6*7?"}],
    )
    assert [b.type for b in msg.content] == ["thinking", "redacted_thinking", "text"]
    thinking, redacted, text = msg.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Six times seven."
    assert thinking.signature.startswith("sig_fake_")
    assert redacted.type == "redacted_thinking"
    assert redacted.data == "b3BhcXVl"
    assert text.type == "text"
    assert text.text == "42"


async def test_sdk_streams_thinking_and_signature(
    fake: FakeUpstream, sdk: anthropic.AsyncAnthropic
) -> None:
    fake.push(Reply.ok("42", reasoning="Six times seven."))
    async with sdk.messages.stream(
        model=MODEL,
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2000},
        messages=[{"role": "user", "content": "6*7?"}],
    ) as stream:
        kinds = [e.type async for e in stream]
        final = await stream.get_final_message()
    assert "thinking" in kinds
    assert "signature" in kinds
    block = final.content[0]
    assert block.type == "thinking"
    assert block.thinking == "Six times seven."
    assert block.signature.startswith("sig_fake_")
    assert final.content[1].type == "text"


async def test_sdk_parses_a_refusal_with_stop_details(
    fake: FakeUpstream, sdk: anthropic.AsyncAnthropic
) -> None:
    fake.push(
        Reply.ok(
            "",
            finish="content_filter",
            refusal_category="cyber",
            refusal_explanation="blocked under the Usage Policy",
        )
    )
    msg = await sdk.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "x"}]
    )
    assert msg.stop_reason == "refusal"
    assert msg.stop_details is not None
    assert msg.stop_details.category == "cyber"
    assert msg.stop_details.explanation == "blocked under the Usage Policy"
    fake.push(Reply.ok("Sure, h", finish="content_filter", refusal_category="cyber"))
    async with sdk.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "refusal"
    assert final.stop_details is not None
    assert final.stop_details.category == "cyber"


async def test_sdk_json_outputs(fake: FakeUpstream, sdk: anthropic.AsyncAnthropic) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    msg = await sdk.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": "a city"}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    assert msg.content[0].type == "text"
    assert set(orjson.loads(msg.content[0].text)) == {"city"}


async def test_fake_refuses_a_tool_loop_that_lost_its_thinking(
    fake: FakeUpstream, sdk: anthropic.AsyncAnthropic
) -> None:
    """As the API does: with thinking on, the last assistant turn's tool_use must follow its
    thinking block."""
    turns: list[Any] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
    ]
    with pytest.raises(anthropic.BadRequestError, match="Expected `thinking`"):
        await sdk.messages.create(
            model=MODEL,
            max_tokens=4000,
            thinking={"type": "enabled", "budget_tokens": 2000},
            tools=[WEATHER],  # type: ignore[list-item]
            messages=turns,
        )
