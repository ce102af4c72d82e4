"""The anthropic_messages adapter against the fake upstream, over real sockets."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

import llmrelay
from llmrelay.errors import BadRequestError, ContentFilteredError
from llmrelay.providers.adapters.anthropic_messages import AnthropicMessagesAdapter
from llmrelay.providers.table import make_deployment
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.transport.sse import SSEEvent
from llmrelay.types import ChatRequest, GenerationParams, Message, build_params

from ..conftest import CANARY_KEY

MODEL = "anthropic/claude-sonnet-4-5"
#: A model without JSON outputs: structured output is a forced tool there.
TOOL_MODEL = "anthropic/claude-3-5-haiku-latest"
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def client() -> llmrelay.Client:
    return llmrelay.Client()


def kw(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {"api_key": CANARY_KEY, "base_url": fake.anthropic_base_url, **extra}


Event = tuple[str, dict[str, Any]]
TEXT_BLOCK = {"type": "text", "text": ""}
END_TURN = {"stop_reason": "end_turn", "stop_sequence": None}


def sse(*events: Event) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        for name, data in events
    )


def event(kind: str, **fields: Any) -> Event:
    """One stream event; its JSON ``type`` is its name, as in all of Anthropic's."""
    return (kind, {"type": kind, **fields})


def text_delta(index: int, text: str) -> Event:
    return event("content_block_delta", index=index, delta={"type": "text_delta", "text": text})


def message(
    content: list[dict[str, Any]], stop: str | None, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": "msg_raw",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def message_start(usage: dict[str, Any]) -> Event:
    return event("message_start", message=message([], None, usage))


def message_body(content: list[dict[str, Any]], stop: str, usage: dict[str, Any]) -> bytes:
    return orjson.dumps(message(content, stop, usage))


# --------------------------------------------------------------------------- text and shape


async def test_text_usage_and_request_shape(fake: FakeUpstream, client: llmrelay.Client) -> None:
    r = await client.achat(
        MODEL,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
        temperature=0.2,
        top_p=0.9,
        stop=["END", "STOP"],
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=0.1,
        user="user-42",
        **kw(fake),
    )
    assert r.text == "Echo: hello there"
    assert r.finish_reason == "stop"
    assert r.raw_finish_reason == "end_turn"
    assert r.provider == "anthropic"
    assert r.model == "claude-sonnet-4-5"
    assert r.id == "msg_fake0001"
    assert r.request_id
    assert r.request_id.startswith("req_fake_")
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens > 0
    rec = fake.requests[-1]
    assert rec.path == "/v1/messages"
    assert rec.body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,  # Anthropic requires it: the default when the caller set none
        "messages": [{"role": "user", "content": "hello there"}],
        "system": "Be brief.",
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END", "STOP"],
        "metadata": {"user_id": "user-42"},
    }
    assert r.adjusted_params == {
        "seed": "dropped: Anthropic does not support it",
        "frequency_penalty": "dropped: Anthropic does not support it",
        "presence_penalty": "dropped: Anthropic does not support it",
    }
    assert rec.headers["x-api-key"] == CANARY_KEY
    assert rec.headers["anthropic-version"] == "2023-06-01"
    assert rec.headers["content-type"] == "application/json"
    assert "authorization" not in rec.headers
    await client.aclose()


async def test_max_tokens_and_temperature_clamp(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat(MODEL, "hi", max_tokens=50, temperature=1.5, **kw(fake))
    body = fake.requests[-1].body
    assert body["max_tokens"] == 50
    assert body["temperature"] == 1.0
    assert r.adjusted_params["temperature"].startswith("clamped to 1.0")
    await client.aclose()


async def test_several_system_messages_and_same_role_turns_merge(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    msgs = [
        {"role": "system", "content": "Rule one."},
        {"role": "user", "content": "first"},
        {"role": "system", "content": "Rule two."},
        {"role": "user", "content": "second"},
    ]
    r = await client.achat(MODEL, msgs, **kw(fake))
    body = fake.requests[-1].body
    assert body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}],
        }
    ]
    assert r.text == "Echo: first second"
    await client.aclose()


async def test_base_url_with_v1_is_not_doubled(fake: FakeUpstream, client: llmrelay.Client) -> None:
    r = await client.achat(
        MODEL, "hi", api_key=CANARY_KEY, base_url=fake.anthropic_base_url + "/v1"
    )
    assert r.text == "Echo: hi"
    assert fake.requests[-1].path == "/v1/messages"
    await client.aclose()


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "stop"),  # end_turn
        ("stop_sequence", "stop"),
        ("length", "length"),  # max_tokens
        ("pause_turn", "other"),
        ("model_context_window_exceeded", "length"),
    ],
)
async def test_stop_reasons(
    fake: FakeUpstream, client: llmrelay.Client, finish: str, expected: str
) -> None:
    fake.push(Reply.ok("partial answer", finish=finish))
    r = await client.achat(MODEL, "hi", **kw(fake))
    assert r.finish_reason == expected
    fake.push(Reply.ok("partial answer", finish=finish))
    s = await client.astream(MODEL, "hi", **kw(fake)).collect()
    assert s.finish_reason == expected
    assert s.text == "partial answer"
    await client.aclose()


async def test_refusal_is_a_content_filtered_error_with_the_partial_text(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    """stop_reason "refusal" is no successful answer: plain and streamed it raises
    ContentFilteredError (streamed: at the end, the text that came kept)."""
    fake.push(Reply.ok("partial answer", finish="content_filter"))
    with pytest.raises(ContentFilteredError) as info:
        await client.achat(MODEL, "hi", **kw(fake))
    assert info.value.partial_text == "partial answer"
    fake.push(Reply.ok("partial answer", finish="content_filter"))
    got: list[str] = []

    async def consume() -> None:
        async for c in client.astream(MODEL, "hi", **kw(fake)):
            got.append(c.delta)

    with pytest.raises(ContentFilteredError) as info:
        await consume()
    assert "".join(got) == "partial answer" == info.value.partial_text
    await client.aclose()


@pytest.mark.parametrize("streamed", [False, True])
async def test_thinking_tool_loop_against_the_fake(
    fake: FakeUpstream, client: llmrelay.Client, streamed: bool
) -> None:
    """The fake refuses, as the API does, a thinking tool loop whose assistant turn lost its
    thinking block; llmrelay's replay of ``r.message()`` passes."""

    async def ask(msgs: list[Any]) -> llmrelay.Response:
        params = {"tools": [WEATHER_TOOL], "reasoning_effort": "low", **kw(fake)}
        if streamed:
            return await client.astream(MODEL, msgs, **params).collect()
        return await client.achat(MODEL, msgs, **params)

    fake.push(Reply.tool_call("get_weather", {"city": "Oslo"}, reasoning="Need the weather."))
    msgs: list[Any] = [Message("user", "Weather in Oslo?")]
    r = await ask(msgs)
    assert r.reasoning == "Need the weather."
    assert r.reasoning_parts[0].signature
    msgs += [r.message(), Message("tool", "sunny", tool_call_id=r.tool_calls[0].id)]
    fake.push(Reply.ok("It is sunny."))
    assert (await ask(msgs)).text == "It is sunny."
    sent = fake.requests[-1].body["messages"][1]["content"]
    assert [b["type"] for b in sent] == ["thinking", "tool_use"]
    # Without the thinking block the fake answers the API's 400 to thinking asked by hand...
    fake.push(Reply.ok("unused"))
    bare = [msgs[0], Message("assistant", None, tool_calls=r.tool_calls), msgs[2]]
    with pytest.raises(BadRequestError, match="Expected `thinking`"):
        await client.achat(
            MODEL,
            bare,
            tools=[WEATHER_TOOL],
            extra={"thinking": {"type": "enabled", "budget_tokens": 1024}},
            **kw(fake),
        )
    # ...while reasoning_effort leaves thinking off until that tool-use turn ends (the API's
    # own advice), and says so.
    fake.push(Reply.ok("It is sunny."))
    done = await ask(bare)
    assert done.text == "It is sunny."
    assert "thinking" not in fake.requests[-1].body
    assert "reasoning_effort" in done.adjusted_params
    await client.aclose()


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_loop_started_on_openai_continues_on_anthropic_with_thinking(
    fake: FakeUpstream, client: llmrelay.Client, streamed: bool
) -> None:
    """A tool loop begun on another provider (as after a fallback) carries no thinking block;
    Anthropic refuses thinking on that turn, so reasoning_effort waits for the next user
    turn instead of costing a 400. The tool call id survives the switch."""
    fake.push(Reply.tool_call("get_weather", {"city": "Oslo"}))
    first = await client.achat(
        "openai/gpt-4o-mini",
        "Weather in Oslo?",
        tools=[WEATHER_TOOL],
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
    )
    call_id = first.tool_calls[0].id
    msgs: list[Any] = [
        "Weather in Oslo?",
        first.message(),
        Message("tool", "sunny", tool_call_id=call_id),
    ]
    msgs[0] = Message("user", msgs[0])
    params: dict[str, Any] = {"tools": [WEATHER_TOOL], "reasoning_effort": "high", **kw(fake)}
    fake.push(Reply.ok("It is sunny."), Reply.ok("Bye.", reasoning="Wrap up."))
    if streamed:
        r = await client.astream(MODEL, msgs, **params).collect()
    else:
        r = await client.achat(MODEL, msgs, **params)
    assert r.text == "It is sunny."
    sent = fake.requests[-1].body
    assert "thinking" not in sent
    assert sent["messages"][1]["content"][0]["id"] == call_id
    assert sent["messages"][2]["content"][0]["tool_use_id"] == call_id
    # The next user turn thinks again.
    msgs += [r.message(), Message("user", "Thanks")]
    await client.achat(MODEL, msgs, **params)
    assert fake.requests[-1].body["thinking"]["type"] == "enabled"
    await client.aclose()


# --------------------------------------------------------------------------- streaming


async def test_stream_ends_with_complete_response(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    s = client.astream(MODEL, "stream me please", max_tokens=100, **kw(fake))
    deltas = []
    finish_chunks = []
    last = None
    async for c in s:
        deltas.append(c.delta)
        if c.finish_reason and not c.done:
            finish_chunks.append(c)
        last = c
    assert last is not None
    assert last.done
    assert last.response is not None
    resp = last.response
    assert "".join(deltas) == "Echo: stream me please" == resp.text
    assert resp.finish_reason == "stop"
    assert resp.raw_finish_reason == "end_turn"
    assert resp.usage.input_tokens > 0
    assert resp.usage.output_tokens > 1
    assert finish_chunks
    assert finish_chunks[0].usage == resp.usage
    assert resp.id == "msg_fake0001"
    assert resp.request_id
    assert resp.request_id.startswith("req_fake_")
    rec = fake.requests[-1]
    assert rec.body["stream"] is True
    assert rec.body["max_tokens"] == 100
    assert rec.headers["accept"] == "text/event-stream"
    await client.aclose()


async def test_stream_thinking_ping_and_unknown_events(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    body = sse(
        message_start({"input_tokens": 12, "output_tokens": 1}),
        event(
            "content_block_start",
            index=0,
            content_block={"type": "thinking", "thinking": "", "signature": ""},
        ),
        event("ping"),
        event(
            "content_block_delta",
            index=0,
            delta={"type": "thinking_delta", "thinking": "Let me think."},
        ),
        event(
            "content_block_delta",
            index=0,
            delta={"type": "signature_delta", "signature": "EqQBCgIYAh"},
        ),
        event("content_block_stop", index=0),
        event("brand_new_event", anything=[1, 2]),
        event("content_block_start", index=1, content_block=TEXT_BLOCK),
        text_delta(1, "The answer"),
        text_delta(1, " is 4."),
        event("content_block_stop", index=1),
        event(
            "message_delta",
            delta=END_TURN,
            usage={"output_tokens": 30, "output_tokens_details": {"thinking_tokens": 20}},
        ),
        event("message_stop"),
    )
    fake.push(Reply.raw(body, content_type="text/event-stream"))
    reasoning, text = [], []
    resp = None
    async for c in client.astream(MODEL, "2+2?", **kw(fake)):
        reasoning.append(c.reasoning)
        text.append(c.delta)
        resp = c.response or resp
    assert "".join(reasoning) == "Let me think."
    assert "".join(text) == "The answer is 4."
    assert resp is not None
    assert resp.text == "The answer is 4."
    assert resp.usage.output_tokens == 30
    assert resp.usage.reasoning_tokens == 20
    assert resp.usage.input_tokens == 12
    await client.aclose()


async def test_thinking_blocks_are_not_text(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(
        Reply.raw(
            message_body(
                [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xyz"},
                    {"type": "text", "text": "Four"},
                    {"type": "text", "text": "."},
                ],
                "end_turn",
                {"input_tokens": 5, "output_tokens": 9},
            )
        )
    )
    r = await client.achat(MODEL, "2+2?", **kw(fake))
    assert r.text == "Four."
    assert r.tool_calls == []
    await client.aclose()


async def test_cut_stream_is_a_typed_error_with_partial_text(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.cut_stream(after_chunks=2, text="one two three four five"))
    s = client.astream(MODEL, "hi", retries=0, **kw(fake))
    seen: list[str] = []

    async def read() -> None:
        async for c in s:
            seen.append(c.delta)

    with pytest.raises(llmrelay.StreamInterruptedError) as info:
        await read()
    assert "".join(seen) == "one two"
    assert info.value.partial.text == "one two"
    assert CANARY_KEY not in str(info.value)
    assert CANARY_KEY not in repr(info.value)
    await client.aclose()


async def test_stream_without_message_stop_is_interrupted(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    body = sse(
        message_start({"input_tokens": 3, "output_tokens": 1}),
        event("content_block_start", index=0, content_block=TEXT_BLOCK),
        text_delta(0, "Hal"),
    )
    fake.push(Reply.raw(body, content_type="text/event-stream"))
    with pytest.raises(llmrelay.StreamInterruptedError) as info:
        await client.astream(MODEL, "hi", retries=0, **kw(fake)).collect()
    assert info.value.partial.text == "Hal"
    await client.aclose()


async def test_error_event_first_is_the_typed_error(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.stream_error(after_chunks=0, message="Overloaded", type="overloaded_error"))
    with pytest.raises(llmrelay.OverloadedError, match="Overloaded") as info:
        await client.astream(MODEL, "hi", retries=0, **kw(fake)).collect()
    assert info.value.status == 529
    fake.push(Reply.stream_error(after_chunks=0, message="slow down", type="rate_limit_error"))
    with pytest.raises(llmrelay.RateLimitedError, match="slow down"):
        await client.astream(MODEL, "hi", retries=0, **kw(fake)).collect()
    fake.push(Reply.stream_error(after_chunks=0, message="Internal error", type="api_error"))
    with pytest.raises(llmrelay.ServerError, match="Internal error") as info2:
        await client.astream(MODEL, "hi", retries=0, **kw(fake)).collect()
    assert info2.value.status == 500
    await client.aclose()


async def test_error_event_mid_stream(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(Reply.stream_error(after_chunks=1, message="Overloaded", type="overloaded_error"))
    s = client.astream(MODEL, "hi", **kw(fake))
    with pytest.raises(llmrelay.StreamInterruptedError, match="Overloaded") as info:
        await s.collect()
    # Output was already sent: the engine keeps the typed cause and the partial text.
    assert isinstance(info.value.__cause__, llmrelay.OverloadedError)
    assert info.value.partial.text == "Echo:"
    await client.aclose()


def test_stream_state_maps_error_events_directly() -> None:
    adapter = AnthropicMessagesAdapter()
    dep = make_deployment("anthropic", "claude-sonnet-4-5", api_key=CANARY_KEY)
    req = ChatRequest([Message.user("hi")], GenerationParams(), stream=True)
    cases = {
        "overloaded_error": llmrelay.OverloadedError,
        "rate_limit_error": llmrelay.RateLimitedError,
        "api_error": llmrelay.ServerError,
        "invalid_request_error": llmrelay.BadRequestError,
        "authentication_error": llmrelay.AuthenticationError,
    }
    for etype, cls in cases.items():
        state = adapter.stream_state(req, dep)
        data = orjson.dumps({"type": "error", "error": {"type": etype, "message": "m"}}).decode()
        with pytest.raises(cls) as info:
            state.feed(SSEEvent(data, "error"))
        assert type(info.value) is cls
        assert info.value.provider == "anthropic"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("reply", "error", "status"),
    [
        (Reply.error(400, "messages: field required"), llmrelay.BadRequestError, 400),
        (Reply.error(401, "invalid x-api-key"), llmrelay.AuthenticationError, 401),
        (Reply.error(403, "not allowed"), llmrelay.PermissionDeniedError, 403),
        (Reply.error(404, "model: claude-nope"), llmrelay.NotFoundError, 404),
        (Reply.error(413, "Request exceeds the maximum size"), llmrelay.BadRequestError, 413),
        (Reply.error(429, "Number of requests has exceeded"), llmrelay.RateLimitedError, 429),
        (Reply.error(529, "Overloaded"), llmrelay.OverloadedError, 529),
        (Reply.error(500, "Internal server error"), llmrelay.ServerError, 500),
        (
            Reply.error(400, "prompt is too long: 208310 tokens > 200000 maximum"),
            llmrelay.ContextWindowExceededError,
            400,
        ),
        (
            Reply.error(
                400,
                "input length and `max_tokens` exceed context limit: 190000 + 20000 > 200000",
            ),
            llmrelay.ContextWindowExceededError,
            400,
        ),
        (
            Reply.error(
                400,
                "Your credit balance is too low to access the Anthropic API. Please go to "
                "Plans & Billing to upgrade or purchase credits.",
            ),
            llmrelay.QuotaExhaustedError,
            400,
        ),
        (Reply.error(402, "payment required"), llmrelay.QuotaExhaustedError, 402),
        (
            Reply.error(400, "Output blocked by content filtering policy"),
            llmrelay.ContentFilteredError,
            400,
        ),
        (
            Reply.raw("<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
            llmrelay.InvalidResponseError,
            None,
        ),
        (
            Reply.raw('{"id": "msg_1", "type": "message", "cont'),
            llmrelay.InvalidResponseError,
            None,
        ),
        (Reply.raw('{"id": "msg_1", "type": "message"}'), llmrelay.InvalidResponseError, None),
    ],
)
async def test_errors_are_typed(
    fake: FakeUpstream,
    client: llmrelay.Client,
    reply: Reply,
    error: type[Exception],
    status: int | None,
) -> None:
    fake.push(reply)
    with pytest.raises(error) as info:
        await client.achat(MODEL, "hi", retries=0, **kw(fake))
    e = info.value
    assert type(e) is error
    assert isinstance(e, llmrelay.LLMRelayError)
    assert e.provider == "anthropic"
    assert e.model == "claude-sonnet-4-5"
    assert e.status == status
    if status is not None:
        assert e.request_id
        assert e.request_id.startswith("req_fake_")
        assert e.body["type"] == "error"
    assert CANARY_KEY not in str(e)
    assert CANARY_KEY not in repr(e)
    await client.aclose()


async def test_rate_limit_carries_retry_after(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(
        Reply.error(
            429,
            "Number of request tokens has exceeded your per-minute rate limit",
            headers={"retry-after": "7", "anthropic-ratelimit-requests-remaining": "0"},
        )
    )
    with pytest.raises(llmrelay.RateLimitedError) as info:
        await client.achat(MODEL, "hi", retries=0, **kw(fake))
    e = info.value
    assert e.retry_after == 7.0
    assert e.status == 429
    assert e.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert "rate_limit_error" in e.message
    await client.aclose()


async def test_wrong_key_is_an_authentication_error(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    with pytest.raises(llmrelay.AuthenticationError) as info:
        await client.achat(
            MODEL, "hi", api_key="sk-wrong-key", base_url=fake.anthropic_base_url, retries=0
        )
    assert info.value.body["error"]["type"] == "authentication_error"
    await client.aclose()


async def test_canary_key_echoed_by_the_server_is_redacted(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.error(400, f"bad header value {CANARY_KEY}"))
    with pytest.raises(llmrelay.BadRequestError) as info:
        await client.achat(MODEL, "hi", retries=0, **kw(fake))
    e = info.value
    assert CANARY_KEY not in str(e)
    assert CANARY_KEY not in repr(e)
    assert CANARY_KEY not in orjson.dumps(e.body).decode()
    fake.push(Reply.raw(f"<html>key {CANARY_KEY} rejected</html>", content_type="text/html"))
    with pytest.raises(llmrelay.InvalidResponseError) as info2:
        await client.achat(MODEL, "hi", retries=0, **kw(fake))
    assert CANARY_KEY not in str(info2.value)
    assert "HTML" in str(info2.value)
    await client.aclose()


async def test_bad_input_fails_before_any_request(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    with pytest.raises(llmrelay.InvalidRequestError, match="at least one user message"):
        await client.achat(
            MODEL, [{"role": "system", "content": "only a system prompt"}], **kw(fake)
        )
    bad_call = Message.assistant(tool_calls=[llmrelay.ToolCall("toolu_1", "f", "{not json")])
    with pytest.raises(llmrelay.InvalidRequestError, match="not a JSON object"):
        await client.achat(MODEL, [Message.user("hi"), bad_call], **kw(fake))
    img = llmrelay.ImagePart(url="gs://bucket/cat.png")
    with pytest.raises(llmrelay.InvalidRequestError, match="image URL"):
        await client.achat(MODEL, [Message.user([img])], **kw(fake))
    assert fake.requests == []
    await client.aclose()


# --------------------------------------------------------------------------- tools


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ("get_weather", {"type": "tool", "name": "get_weather"}),
    ],
)
async def test_tool_choice_mapping(
    fake: FakeUpstream, client: llmrelay.Client, choice: str, sent: dict[str, str]
) -> None:
    await client.achat(MODEL, "weather?", tools=[WEATHER_TOOL], tool_choice=choice, **kw(fake))
    body = fake.requests[-1].body
    assert body["tool_choice"] == sent
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    await client.aclose()


async def test_tool_use_out_and_tool_results_back(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.tool_call("get_weather", {"city": "Paris"}))
    r = await client.achat(MODEL, "weather?", tools=[WEATHER_TOOL], **kw(fake))
    assert r.finish_reason == "tool_calls"
    assert r.raw_finish_reason == "tool_use"
    assert r.text == ""
    call = r.tool_calls[0]
    assert call.id == "toolu_fake0001"
    assert call.name == "get_weather"
    assert call.parsed_arguments() == {"city": "Paris"}
    # Two results in a row, then the user's next words: one user turn, results first.
    second = llmrelay.ToolCall("toolu_2", "get_weather", '{"city": "Rome"}')
    msgs = [
        Message.user("weather?"),
        Message.assistant("Checking both.", tool_calls=[call, second]),
        Message.tool(call.id, '{"temp": 21}'),
        Message.tool("toolu_2", '{"temp": 25}'),
        Message.user("which is warmer?"),
    ]
    r2 = await client.achat(MODEL, msgs, tools=[WEATHER_TOOL], **kw(fake))
    sent = fake.requests[-1].body["messages"]
    assert sent == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {
                    "type": "tool_use",
                    "id": "toolu_fake0001",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_fake0001", "content": '{"temp": 21}'},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": '{"temp": 25}'},
                {"type": "text", "text": "which is warmer?"},
            ],
        },
    ]
    assert r2.text == "Echo: which is warmer?"
    await client.aclose()


async def test_streamed_tool_use_is_assembled(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(Reply.tool_call("lookup", {"q": "x" * 40}))
    deltas = []
    resp = None
    async for c in client.astream(
        MODEL, "go", tools=[{"name": "lookup", "parameters": {"type": "object"}}], **kw(fake)
    ):
        deltas.extend(c.tool_calls)
        resp = c.response or resp
    assert deltas[0].index == 0
    assert deltas[0].id == "toolu_fake0001"
    assert deltas[0].name == "lookup"
    assert "".join(d.arguments for d in deltas) == orjson.dumps({"q": "x" * 40}).decode()
    assert all(d.index == 0 for d in deltas)
    assert resp is not None
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls[0].name == "lookup"
    assert resp.tool_calls[0].id == "toolu_fake0001"
    assert resp.tool_calls[0].parsed_arguments() == {"q": "x" * 40}
    await client.aclose()


# --------------------------------------------------------------------------- images and usage


async def test_images(fake: FakeUpstream, client: llmrelay.Client) -> None:
    msg = Message.user(
        [
            llmrelay.TextPart("what are these?"),
            llmrelay.ImagePart(data=b"\x89PNG", media_type="image/png"),
            llmrelay.ImagePart(url="https://example.com/cat.jpg"),
            llmrelay.ImagePart(url="data:image/webp;base64,UklGRg=="),
        ]
    )
    r = await client.achat(MODEL, [msg], **kw(fake))
    content = fake.requests[-1].body["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": "what are these?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="},
        },
    ]
    assert r.text == "Echo: what are these?"
    await client.aclose()


async def test_cached_tokens_are_counted_as_input(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    # The fake reports Anthropic-style: input_tokens 20 (excluding the cache) + 80 read.
    fake.push(Reply.ok("cached", input_tokens=100, output_tokens=5, cached_tokens=80))
    r = await client.achat(MODEL, "hi", **kw(fake))
    assert (r.usage.input_tokens, r.usage.cached_tokens, r.usage.output_tokens) == (100, 80, 5)
    assert r.usage.total_tokens == 105
    # Reads and writes both add to Anthropic's input_tokens.
    usage = {
        "input_tokens": 10,
        "cache_read_input_tokens": 50,
        "cache_creation_input_tokens": 30,
        "output_tokens": 7,
    }
    fake.push(Reply.raw(message_body([{"type": "text", "text": "ok"}], "end_turn", usage)))
    r = await client.achat(MODEL, "hi", **kw(fake))
    assert r.usage == llmrelay.Usage(
        input_tokens=90, output_tokens=7, cached_tokens=50, cache_write_tokens=30
    )
    # Streamed: message_start's counts, overwritten by message_delta's cumulative ones.
    body = sse(
        message_start({**usage, "output_tokens": 1}),
        event("content_block_start", index=0, content_block=TEXT_BLOCK),
        text_delta(0, "ok"),
        event("content_block_stop", index=0),
        event(
            "message_delta",
            delta=END_TURN,
            usage={"output_tokens": 7, "cache_creation_input_tokens": 40},
        ),
        event("message_stop"),
    )
    fake.push(Reply.raw(body, content_type="text/event-stream"))
    resp = await client.astream(MODEL, "hi", **kw(fake)).collect()
    assert resp.usage == llmrelay.Usage(
        input_tokens=100, output_tokens=7, cached_tokens=50, cache_write_tokens=40
    )
    await client.aclose()


# --------------------------------------------------------------------------- structured output


def person_format() -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "Person", "schema": PERSON}}


class Person(BaseModel):
    name: str
    age: int


@pytest.mark.parametrize("streamed", [False, True])
async def test_response_model_uses_json_outputs_with_thinking_on(
    fake: FakeUpstream, client: llmrelay.Client, streamed: bool
) -> None:
    """On a model with JSON outputs, response_model= is output_config.format (no forced tool,
    which thinking would refuse), and it works with thinking on."""
    params: dict[str, Any] = {"reasoning_effort": "medium", **kw(fake)}
    fake.push(Reply(reasoning="A person: name and age."))
    model = "anthropic/claude-opus-4-7"
    if streamed:  # response_model= does not stream (yet): the same schema as response_format
        rf = {"type": "json_schema", "json_schema": {"name": "Person", "schema": PERSON}}
        r = await client.astream(model, "Invent a person", response_format=rf, **params).collect()
        assert Person.model_validate_json(r.text)
    else:
        r = await client.achat(model, "Invent a person", response_model=Person, **params)
        assert isinstance(r.object, Person)
    assert r.reasoning == "A person: name and age."
    body = fake.requests[-1].body
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert body["output_config"]["format"]["schema"]["properties"].keys() == {"name", "age"}
    assert body["output_config"]["effort"] == "medium"
    assert body["thinking"]["type"] == "adaptive"
    assert "tools" not in body
    assert "tool_choice" not in body
    await client.aclose()


async def test_structured_output_via_forced_tool(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat(
        TOOL_MODEL, "Invent a person", response_format=person_format(), **kw(fake)
    )
    assert orjson.loads(r.text) == {"name": "example", "age": 42}
    assert r.tool_calls == []
    assert r.finish_reason == "stop"
    body = fake.requests[-1].body
    assert body["tool_choice"] == {"type": "tool", "name": "Person"}
    assert body["tools"][0]["name"] == "Person"
    assert body["tools"][0]["input_schema"] == PERSON
    assert "response_format" not in body
    await client.aclose()


async def test_structured_output_streams_as_text(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    deltas = []
    resp = None
    async for c in client.astream(
        TOOL_MODEL, "Invent a person", response_format=person_format(), **kw(fake)
    ):
        deltas.append(c.delta)
        assert c.tool_calls == []
        resp = c.response or resp
    assert resp is not None
    assert len([d for d in deltas if d]) >= 2  # really streamed, in pieces
    assert "".join(deltas) == resp.text
    assert orjson.loads(resp.text) == {"name": "example", "age": 42}
    assert resp.finish_reason == "stop"
    assert resp.tool_calls == []
    await client.aclose()


async def test_structured_output_with_non_object_schema(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    schema = {
        "type": "array",
        "items": {"$ref": "#/$defs/Tag"},
        "$defs": {"Tag": {"type": "string"}},
    }
    rf = {"type": "json_schema", "json_schema": {"name": "tag list!", "schema": schema}}
    r = await client.achat(TOOL_MODEL, "tags", response_format=rf, **kw(fake))
    assert orjson.loads(r.text) == ["example"]
    tool = fake.requests[-1].body["tools"][0]
    assert tool["name"] == "tag_list_"  # made a valid tool name
    assert tool["input_schema"]["type"] == "object"
    assert tool["input_schema"]["$defs"] == {"Tag": {"type": "string"}}
    resp = await client.astream(TOOL_MODEL, "tags", response_format=rf, **kw(fake)).collect()
    assert orjson.loads(resp.text) == ["example"]
    assert schema["$defs"] == {"Tag": {"type": "string"}}  # the caller's schema is untouched
    await client.aclose()


async def test_structured_output_alongside_user_tools(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat(
        TOOL_MODEL,
        "Invent a person",
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        response_format=person_format(),
        **kw(fake),
    )
    body = fake.requests[-1].body
    assert [t["name"] for t in body["tools"]] == ["get_weather", "Person"]
    assert body["tool_choice"] == {"type": "tool", "name": "Person"}
    assert "tool_choice" in r.adjusted_params
    assert orjson.loads(r.text)["age"] == 42
    await client.aclose()


async def test_json_object_mode_is_a_system_instruction(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat(MODEL, "hi", system="Be nice.", response_format="json", **kw(fake))
    body = fake.requests[-1].body
    assert body["system"].startswith("Be nice.\n\n")
    assert "JSON object" in body["system"]
    assert "response_format" in r.adjusted_params
    await client.aclose()


def test_adapter_parses_structured_tool_use_body() -> None:
    adapter = AnthropicMessagesAdapter()
    dep = make_deployment("anthropic", "claude-3-5-haiku-latest", api_key=CANARY_KEY)
    req = ChatRequest([Message.user("hi")], build_params({"response_format": person_format()}))
    from llmrelay.transport.base import HttpResponse

    body = message_body(
        [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "Person",
                "input": {"name": "Ada", "age": 36},
            }
        ],
        "tool_use",
        {"input_tokens": 3, "output_tokens": 4},
    )
    r = adapter.parse_response(HttpResponse(200, {"request-id": "req_1"}, body), req, dep)
    assert orjson.loads(r.text) == {"name": "Ada", "age": 36}
    assert r.finish_reason == "stop"
    assert r.tool_calls == []
    assert r.request_id == "req_1"


async def test_tool_call_ids_from_other_providers_are_made_valid_for_anthropic(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    """Kimi K2 (Moonshot, Novita, vLLM) names its tool calls ``functions.get_weather:0``;
    Anthropic takes only ``^[a-zA-Z0-9_-]+$`` ids. Continued on Anthropic, both the tool_use and
    its tool_result carry the same valid id, and two ids never become one."""
    calls = [
        {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": a}}
        for i, a in (
            ("functions.get_weather:0", '{"city":"Oslo"}'),
            ("functions.get_weather.0", '{"city":"Bergen"}'),
        )
    ]
    kimi = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "moonshotai/kimi-k2",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": calls},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }
    fake.push(Reply.raw(orjson.dumps(kimi)))
    first = await client.achat(
        "openrouter/moonshotai/kimi-k2",
        "Weather in Oslo and Bergen?",
        tools=[WEATHER_TOOL],
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
    )
    assert [c.id for c in first.tool_calls] == [
        "functions.get_weather:0",
        "functions.get_weather.0",
    ]
    msgs: list[Any] = [Message("user", "Weather in Oslo and Bergen?"), first.message()]
    msgs += [Message("tool", "sunny", tool_call_id=c.id) for c in first.tool_calls]
    fake.push(Reply.ok("Sunny in both."))
    r = await client.achat(MODEL, msgs, tools=[WEATHER_TOOL], **kw(fake))
    assert r.text == "Sunny in both."
    sent = fake.requests[-1].body["messages"]
    uses = [b["id"] for b in sent[1]["content"]]
    results = [b["tool_use_id"] for b in sent[2]["content"]]
    assert uses == results
    assert len(set(uses)) == 2
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", u) for u in uses)
    await client.aclose()


@pytest.mark.parametrize("streamed", [False, True])
async def test_fake_speaks_reply_refuse_as_anthropic_refuses(
    fake: FakeUpstream, client: llmrelay.Client, streamed: bool
) -> None:
    """``Reply.refuse`` (the fake's one way to script a refusal for any wire) is Anthropic's
    ``stop_reason: "refusal"`` here, not a successful empty answer."""

    async def ask() -> llmrelay.Response:
        if streamed:
            return await client.astream(MODEL, "hi", **kw(fake)).collect()
        return await client.achat(MODEL, "hi", **kw(fake))

    fake.push(Reply.refuse("I can't help with that."))
    with pytest.raises(ContentFilteredError) as info:
        await ask()
    assert info.value.explanation == "I can't help with that."
    await client.aclose()


class TreeNode(BaseModel):
    name: str
    children: list[TreeNode] = []


async def test_a_recursive_response_model_travels_as_a_tool(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    """JSON outputs (``output_config.format``) take no recursive schema; a model that refers
    to itself (a tree) is asked for with a tool even where the model has JSON outputs."""
    tree = {"name": "root", "children": [{"name": "leaf", "children": []}]}
    fake.push(Reply.tool_call("TreeNode", tree))
    r = await client.achat(
        "anthropic/claude-sonnet-4-5", "a tree", response_model=TreeNode, **kw(fake)
    )
    assert r.object == TreeNode.model_validate(tree)
    sent = fake.requests[-1].body
    assert "format" not in sent.get("output_config", {})
    assert [t["name"] for t in sent["tools"]] == ["TreeNode"]
    assert "$defs" in sent["tools"][0]["input_schema"]
    await client.aclose()
