"""The official ``openai`` SDK against the fake upstream: proof the fake speaks the real format.

The SDK runs with ``_strict_response_validation=True``, so any field of the wrong type or shape
in what the fake sends fails the test.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)
from pydantic import BaseModel

from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY

MODEL = "gpt-4.1-mini"
TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


class City(BaseModel):
    name: str
    population: int
    tags: list[str]


class Lookup(BaseModel):
    query: str
    limit: int


@pytest.fixture
async def sdk(fake: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
        max_retries=0,
        _strict_response_validation=True,
    )
    yield client
    await client.close()


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


async def test_chat_completion(sdk: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    raw = await sdk.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, *user("hello sdk")],
        temperature=0.2,
        max_completion_tokens=20,
    )
    r = raw.parse()
    assert r.object == "chat.completion"
    assert r.model == MODEL
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "Echo: hello sdk"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert r.usage.total_tokens == (r.usage.prompt_tokens + r.usage.completion_tokens)
    assert r.usage.prompt_tokens_details is not None
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r._request_id is not None
    assert r._request_id.startswith("req_fake_")
    assert raw.headers["content-type"].startswith("application/json")
    assert fake.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"


async def test_cached_and_reasoning_tokens(sdk: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.push(
        Reply.ok("hi", input_tokens=100, output_tokens=40, cached_tokens=64, reasoning_tokens=30)
    )
    r = await sdk.chat.completions.create(model=MODEL, messages=user("x"))
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (100, 40)
    assert r.usage.prompt_tokens_details
    assert r.usage.prompt_tokens_details.cached_tokens == 64
    details = r.usage.completion_tokens_details
    assert details is not None
    assert details.reasoning_tokens == 30


async def test_stream_with_include_usage(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model=MODEL,
        messages=user("stream this please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream this please"
    # Like api.openai.com: the stream opens with the role and an empty content.
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    # The finish reason arrives on the last choice chunk; the usage chunk comes after it.
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_usage(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model=MODEL,
        messages=user("no usage"),
        stream=True,
    )
    chunks = [c async for c in stream]
    assert all(c.usage is None and c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_stream_helper_accumulates_the_final_completion(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.chat.completions.stream(
        model=MODEL,
        messages=user("helper"),
        stream_options={"include_usage": True},
    ) as s:
        deltas = [e.delta async for e in s if e.type == "content.delta"]
        final = await s.get_final_completion()
    assert "".join(deltas) == "Echo: helper"
    assert final.choices[0].message.content == "Echo: helper"
    assert final.usage is not None
    assert final.usage.total_tokens > 0


async def test_tool_call_reply(sdk: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.push(Reply.tool_call("get_weather", {"city": "Paris"}))
    r = await sdk.chat.completions.create(
        model=MODEL,
        messages=user("weather?"),
        tools=TOOLS,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


async def test_streamed_tool_call(sdk: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.push(Reply.tool_call("get_weather", {"city": "Zürich, 🇨🇭"}))
    stream = await sdk.chat.completions.create(
        model=MODEL,
        messages=user("weather?"),
        tools=TOOLS,
        stream=True,
    )
    name, args, ids, finish = "", "", set(), None
    first = True
    async for c in stream:
        if first:  # a tool-only answer opens with the role and the tool call's head
            assert c.choices[0].delta.role == "assistant"
            assert c.choices[0].delta.content is None
            first = False
        for ch in c.choices:
            for tc in ch.delta.tool_calls or []:
                assert tc.index == 0
                if tc.id:
                    ids.add(tc.id)
                if tc.function and tc.function.name:
                    name += tc.function.name
                if tc.function and tc.function.arguments:
                    args += tc.function.arguments
            finish = ch.finish_reason or finish
    assert name == "get_weather"
    assert len(ids) == 1
    assert json.loads(args) == {"city": "Zürich, 🇨🇭"}
    assert finish == "tool_calls"


async def test_streamed_tool_call_through_the_helper(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    fake.push(Reply.tool_call("lookup", {"query": "llmrelay", "limit": 3}))
    async with sdk.chat.completions.stream(
        model=MODEL,
        messages=user("find"),
        tools=[openai.pydantic_function_tool(Lookup, name="lookup")],
    ) as s:
        async for _ in s:
            pass
        final = await s.get_final_completion()
    assert final.choices[0].message.tool_calls is not None
    call = final.choices[0].message.tool_calls[0]
    assert call.function.parsed_arguments == Lookup(query="llmrelay", limit=3)


async def test_structured_output_parse(sdk: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    r = await sdk.chat.completions.parse(
        model=MODEL,
        messages=user("a city"),
        response_format=City,
    )
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, City)
    sent = fake.requests[-1].body["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["strict"] is True


async def test_structured_tool_arguments_parse(sdk: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    r = await sdk.chat.completions.parse(
        model=MODEL,
        messages=user("find"),
        tools=[openai.pydantic_function_tool(Lookup, name="lookup")],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )
    assert r.choices[0].message.tool_calls is not None
    call = r.choices[0].message.tool_calls[0]
    assert isinstance(call.function.parsed_arguments, Lookup)


async def test_model_list(sdk: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    ids = [m.id async for m in sdk.models.list()]
    assert ids == fake.models
    page = await sdk.models.list()
    assert page.data[0].object == "model"
    assert page.data[0].owned_by == "fake"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply.error(400, "bad thing", code="invalid_value"), openai.BadRequestError),
        (Reply.error(401, "Incorrect API key provided"), openai.AuthenticationError),
        (Reply.error(403, "nope"), openai.PermissionDeniedError),
        (
            Reply.error(404, "The model `x` does not exist", code="model_not_found"),
            openai.NotFoundError,
        ),
        (Reply.error(409, "conflict"), openai.ConflictError),
        (Reply.error(422, "unprocessable"), openai.UnprocessableEntityError),
        (
            Reply.error(
                429, "Rate limit reached", code="rate_limit_exceeded", headers={"retry-after": "2"}
            ),
            openai.RateLimitError,
        ),
        (Reply.error(500, "The server had an error"), openai.InternalServerError),
        (Reply.error(503, "The engine is overloaded"), openai.InternalServerError),
    ],
)
async def test_sdk_typed_errors(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream, reply: Reply, error: type[openai.APIStatusError]
) -> None:
    fake.push(reply)
    with pytest.raises(error) as info:
        await sdk.chat.completions.create(model=MODEL, messages=user("hi"))
    e = info.value
    assert type(e) is error
    assert e.status_code == reply.status
    assert reply.message in e.message
    # The SDK unwraps {"error": {...}}: message, type, param and code are all there.
    assert isinstance(e.body, dict)
    assert e.body["message"] == reply.message
    assert set(e.body) == {"message", "type", "param", "code"}
    assert e.code == reply.error_code
    assert e.type == e.body["type"]
    assert e.request_id is not None
    assert e.request_id.startswith("req_fake_")


async def test_wrong_key_is_the_sdks_authentication_error(fake: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(api_key="sk-wrong", base_url=fake.openai_base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await client.chat.completions.create(model=MODEL, messages=user("hi"))
    assert info.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()
    await client.close()


async def test_in_stream_error_is_the_sdks_api_error(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    fake.push(Reply.stream_error(after_chunks=1, message="server melted", type="server_error"))
    stream = await sdk.chat.completions.create(
        model=MODEL,
        messages=user("hi"),
        stream=True,
    )
    seen: list[str | None] = []

    async def read() -> None:
        async for c in stream:
            seen.append(c.choices[0].delta.content)

    with pytest.raises(openai.APIError, match="server melted") as info:
        await read()
    assert seen == ["", "Echo:"]
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "server_error"


async def test_refusal_as_the_sdk_reads_it(sdk: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.push(Reply.refuse("I can't help with that."))
    r = await sdk.chat.completions.create(model=MODEL, messages=user("x"))
    msg = r.choices[0].message
    assert msg.refusal == "I can't help with that."
    assert msg.content is None
    assert r.choices[0].finish_reason == "stop"
    fake.push(Reply.refuse("I can't help with that."))
    stream = await sdk.chat.completions.create(model=MODEL, messages=user("x"), stream=True)
    chunks = [c async for c in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert deltas[0].content is None
    assert "".join(d.refusal or "" for d in deltas) == "I can't help with that."
    assert all(not d.content for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_as_the_sdk_reads_it(
    sdk: openai.AsyncOpenAI, fake: FakeUpstream, field: str
) -> None:
    thought = "Two and two make four."
    fake.push(Reply.ok("4", reasoning=thought, reasoning_field=field))
    r = await sdk.chat.completions.create(model=MODEL, messages=user("2+2?"))
    msg = r.choices[0].message
    assert msg.content == "4"
    assert msg.model_extra == {field: thought}  # not an OpenAI field: kept as an extra
    fake.push(Reply.ok("4", reasoning=thought, reasoning_field=field))
    stream = await sdk.chat.completions.create(model=MODEL, messages=user("2+2?"), stream=True)
    deltas = [c.choices[0].delta async for c in stream if c.choices]
    extras = [d.model_extra or {} for d in deltas]
    assert "".join(e.get(field) or "" for e in extras) == thought
    assert "".join(d.content or "" for d in deltas) == "4"
