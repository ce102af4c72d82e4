"""The official SDKs as gateway clients, over real sockets: plain, streamed, tools, any model
behind either endpoint, and the errors each SDK must recognise."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from llmrelay.testing.fake import Reply

from ..conftest import CANARY_KEY, FakeClock
from .conftest import ADMIN, CLAUDE, GPT, Running, ant, oai


async def test_openai_sdk_plain_call(gw: Running) -> None:
    client = oai(gw)
    r = await client.chat.completions.with_raw_response.create(
        model=GPT, messages=[{"role": "user", "content": "hello"}]
    )
    c = r.parse()
    assert c.choices[0].message.content == "Echo: hello"
    assert c.choices[0].finish_reason == "stop"
    assert c.model == GPT
    assert c.usage is not None
    assert c.usage.prompt_tokens > 0
    assert r.headers["x-request-id"].startswith("req_")
    # The provider got the gateway's key, never the client's.
    (sent,) = gw.fake.requests
    assert sent.headers.get("authorization") == f"Bearer {CANARY_KEY}"
    assert CANARY_KEY not in r.text


async def test_openai_sdk_stream_with_usage(gw: Running) -> None:
    client = oai(gw)
    stream = await client.chat.completions.create(
        model=GPT,
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "Echo: stream me"
    assert finish == "stop"
    assert usage is not None
    assert usage.completion_tokens > 0


async def test_openai_sdk_tool_call_from_a_claude_model(gw: Running) -> None:
    gw.fake.push(Reply.tool_call("get_weather", {"city": "Paris"}))
    client = oai(gw)
    c = await client.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    )
    (call,) = c.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Paris"}'
    assert c.choices[0].finish_reason == "tool_calls"
    (sent,) = gw.fake.requests
    assert sent.path.endswith("/v1/messages")  # translated to Anthropic's wire upstream


async def test_anthropic_sdk_calls_a_gpt_alias(gw: Running) -> None:
    client = ant(gw)
    m = await client.messages.create(
        model=GPT, max_tokens=100, messages=[{"role": "user", "content": "hi there"}]
    )
    assert m.content[0].type == "text"
    assert m.content[0].text == "Echo: hi there"
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens > 0
    (sent,) = gw.fake.requests
    assert sent.path.endswith("/chat/completions")


async def test_anthropic_sdk_stream(gw: Running) -> None:
    client = ant(gw)
    async with client.messages.stream(
        model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "flow"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Echo: flow"
    assert final.stop_reason == "end_turn"


async def test_anthropic_sdk_tool_use_round_trip(gw: Running) -> None:
    gw.fake.push(Reply.tool_call("lookup", {"q": "x"}))
    client = ant(gw)
    tools = [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]
    m = await client.messages.create(
        model=GPT,
        max_tokens=100,
        tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "find x"}],
    )
    (block,) = [b for b in m.content if b.type == "tool_use"]
    assert (block.name, block.input) == ("lookup", {"q": "x"})
    assert m.stop_reason == "tool_use"
    m2 = await client.messages.create(
        model=GPT,
        max_tokens=100,
        tools=tools,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "find x"},
            {"role": "assistant", "content": m.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "42"}],
            },
        ],
    )
    assert m2.content[0].type == "text"
    sent = gw.fake.requests[-1].body
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": block.id, "content": "42"}


async def test_models_are_listed_for_the_key(gw: Running) -> None:
    exact = [GPT, "gpt-4o-2024-08-06", "mistral/mistral-small-latest"]  # none is an alias
    unusable = ["no-such-model-anywhere", "test/echo"]  # unresolvable; a test double (404)
    key = await gw.key(models=["claude-*", *exact, *unusable])
    client = oai(gw, key)
    page = await client.models.list()
    names = [m.id for m in page.data]
    assert all(n in exact or n.startswith("claude-") for n in names)
    assert [n for n in names if not n.startswith("claude-")] == exact  # in the key's order
    assert len(names) == len(set(names))
    assert any(n.startswith("claude-") for n in names)  # the aliases the glob allows
    assert {m.object for m in page.data} == {"model"}
    for name in names:  # every id listed can be called with this key
        c = await client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "x"}]
        )
        assert c.choices[0].message.content == "Echo: x"
    for name in unusable:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model=name, messages=[{"role": "user", "content": "x"}]
            )


async def test_models_of_a_key_without_an_allow_list_are_every_alias(gw: Running) -> None:
    from llmrelay.providers.resolve import known_aliases

    for key in (await gw.key(), None):  # a key that may call anything; the admin key
        page = await oai(gw, key or ADMIN).models.list()
        assert [m.id for m in page.data] == sorted(known_aliases())


# --------------------------------------------------------------------------- keys


async def test_unknown_key_is_401_in_each_shape(gw: Running) -> None:
    with pytest.raises(openai.AuthenticationError):
        await oai(gw, "sk-relay-nope").chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.AuthenticationError) as ei:
        await ant(gw, "sk-relay-nope").messages.create(
            model=GPT, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert ei.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert gw.fake.requests == []


async def test_a_key_may_call_only_its_models(gw: Running) -> None:
    key = await gw.key(models=["claude-*"])
    with pytest.raises(openai.PermissionDeniedError):
        await oai(gw, key).chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "x"}]
        )
    assert gw.fake.requests == []


async def test_a_revoked_key_is_refused_within_the_cache_time(gw: Running) -> None:
    clock = FakeClock()
    assert gw.gateway.keys is not None
    gw.gateway.keys.clock = clock
    key = await gw.key()
    c = oai(gw, key)
    await c.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])
    store = gw.gateway.key_store
    assert store is not None
    (record,) = await store.all()
    await store.revoke(record.id)  # as `llmrelay keys revoke` does, from any instance
    clock.advance(0.5)  # still cached: this instance has not re-read the key yet
    await c.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])
    clock.advance(0.6)  # past the one-second cache: refused
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        await c.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])


async def test_rpm_of_a_key_is_enforced_with_retry_after(gw: Running) -> None:
    key = await gw.key(rpm=2)
    c = oai(gw, key)
    for _ in range(2):
        await c.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as ei:
        await c.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])
    assert int(ei.value.response.headers["retry-after"]) >= 1
    assert len(gw.fake.requests) == 2


async def test_budget_of_a_key_is_enforced(gw: Running) -> None:
    key = await gw.key(budget_usd=0.000001)
    with pytest.raises(openai.RateLimitError) as ei:
        await oai(gw, key).chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "x" * 2000}], max_tokens=1000
        )
    assert ei.value.code == "budget_exceeded"
    assert gw.fake.requests == []


# --------------------------------------------------------------------------- bad input


async def test_unknown_fields_cannot_reach_the_upstream(gw: Running) -> None:
    for field in ("base_url", "api_key", "extra_headers", "api_base"):
        with pytest.raises(openai.BadRequestError) as ei:
            await oai(gw).chat.completions.create(
                model=GPT,
                messages=[{"role": "user", "content": "x"}],
                extra_body={field: "http://evil.example"},
            )
        assert field in str(ei.value)
    assert gw.fake.requests == []


async def test_unknown_model_is_404(gw: Running) -> None:
    with pytest.raises(openai.NotFoundError):
        await oai(gw).chat.completions.create(
            model="no-such-model-anywhere", messages=[{"role": "user", "content": "x"}]
        )


async def test_upstream_failure_is_502_without_upstream_details(gw: Running) -> None:
    gw.fake.push(*[Reply.error(500, f"boom {CANARY_KEY}") for _ in range(10)])
    with pytest.raises(openai.APIStatusError) as ei:
        await oai(gw).chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "x"}]
        )
    assert ei.value.status_code == 502
    assert CANARY_KEY not in ei.value.response.text


#: The tool both Gemini thought-signature loops below offer.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def test_openai_sdk_tool_loop_keeps_gemini_thought_signatures(gw: Running) -> None:
    """A Gemini 3 function call through the OpenAI endpoint carries its thought signature as
    Google's OpenAI-compatible API does (``extra_content.google.thought_signature``); the SDK
    sends the message back as it got it and the next turn replays the real signature to
    Gemini, not the stand-in."""
    from llmrelay.testing.fake_gemini import fake_signature

    gw.fake.push(Reply.tool_call("get_weather", {"city": "Paris"}))
    client = oai(gw)
    tools: Any = [WEATHER_TOOL]
    ask: Any = {"role": "user", "content": "weather?"}
    c = await client.chat.completions.create(
        model="gemini/gemini-3.5-flash", messages=[ask], tools=tools
    )
    message = c.choices[0].message
    assert message.model_dump()["tool_calls"][0]["extra_content"] == {
        "google": {"thought_signature": fake_signature("get_weather")}
    }
    (call,) = message.tool_calls or []
    answer: Any = {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
    c = await client.chat.completions.create(
        model="gemini/gemini-3.5-flash",
        messages=[ask, message.model_dump(exclude_none=True), answer],
        tools=tools,
    )
    assert c.choices[0].message.content
    model_turn = gw.fake.requests[-1].body["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == fake_signature("get_weather")


async def test_openai_sdk_streamed_tool_loop_keeps_gemini_thought_signatures(
    gw: Running,
) -> None:
    """Streamed, the signature rides on the tool-call delta that brings it, where Google's
    OpenAI-compatible stream puts it; a client that keeps the delta's fields sends it back and
    the next turn replays the real signature, not the stand-in."""
    from llmrelay.testing.fake_gemini import fake_signature

    gw.fake.push(Reply.tool_call("get_weather", {"city": "Paris"}))
    client = oai(gw)
    tools: Any = [WEATHER_TOOL]
    ask: Any = {"role": "user", "content": "weather?"}
    stream = await client.chat.completions.create(
        model="gemini/gemini-3.5-flash", messages=[ask], tools=tools, stream=True
    )
    call: dict[str, Any] = {"type": "function", "function": {"name": "", "arguments": ""}}
    async for c in stream:
        for d in c.choices[0].delta.tool_calls or [] if c.choices else []:
            call["id"] = d.id or call.get("id")
            if d.function is not None:
                call["function"]["name"] += d.function.name or ""
                call["function"]["arguments"] += d.function.arguments or ""
            extra = (d.model_extra or {}).get("extra_content")
            if extra is not None:
                call["extra_content"] = extra
    assert call["extra_content"] == {"google": {"thought_signature": fake_signature("get_weather")}}
    message: Any = {"role": "assistant", "tool_calls": [call]}
    answer: Any = {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}
    c = await client.chat.completions.create(
        model="gemini/gemini-3.5-flash", messages=[ask, message, answer], tools=tools
    )
    assert c.choices[0].message.content
    model_turn = gw.fake.requests[-1].body["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == fake_signature("get_weather")
