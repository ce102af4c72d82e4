"""``POST /v1/responses`` on the fake upstream: the official ``openai`` SDK parses what it sends
(strict validation), and llmrelay's calls choose the API per call, alias, provider and model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import orjson
import pytest
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseTextDeltaEvent,
)

import llmrelay
from llmrelay.errors import (
    ConfigFileError,
    ConfigurationError,
    InvalidRequestError,
    ServerError,
    StreamInterruptedError,
)
from llmrelay.providers.api_choice import needs_responses
from llmrelay.settings import file as settings_file
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import Message

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY

TOOL = {
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


# ---------------------------------------------------------------------------- the official SDK


async def test_sdk_parses_a_text_response(sdk: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    r = await sdk.responses.create(model="gpt-4.1-mini", input="hello sdk", instructions="Brief.")
    assert r.object == "response"
    assert r.status == "completed"
    assert r.output_text == "Echo: hello sdk"
    assert isinstance(r.output[0], ResponseOutputMessage)
    assert r.usage is not None
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r._request_id is not None
    assert fake.requests[-1].path == "/v1/responses"


async def test_sdk_parses_reasoning_and_a_function_call(sdk: openai.AsyncOpenAI) -> None:
    r = await sdk.responses.create(
        model="gpt-5.5",
        input="weather in Paris?",
        reasoning={"effort": "low", "summary": "auto"},
        tools=[
            {
                "type": "function",
                "name": "get_weather",
                "parameters": TOOL["function"]["parameters"],  # type: ignore[index]
                "strict": False,
            }
        ],
        tool_choice="required",
    )
    reasoning, call = r.output
    assert isinstance(reasoning, ResponseReasoningItem)
    assert reasoning.encrypted_content
    assert reasoning.summary[0].text == "Thinking about: weather in Paris?"
    assert isinstance(call, ResponseFunctionToolCall)
    assert call.name == "get_weather"
    assert call.call_id == "call_fake_0001"
    assert "city" in call.arguments


async def test_sdk_streams_and_accumulates_the_same_response(sdk: openai.AsyncOpenAI) -> None:
    kinds = []
    deltas = []
    async with sdk.responses.stream(
        model="gpt-5.5",
        input="stream me please",
        reasoning={"effort": "low", "summary": "auto"},
    ) as stream:
        async for event in stream:
            kinds.append(event.type)
            if isinstance(event, ResponseTextDeltaEvent):
                deltas.append(event.delta)
        final = await stream.get_final_response()
    assert "".join(deltas) == "Echo: stream me please" == final.output_text
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "response.reasoning_summary_text.delta" in kinds
    assert final.usage is not None


async def test_sdk_streams_a_tool_call(sdk: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    fake.push(Reply.tool_call("get_weather", {"city": "Paris"}))
    async with sdk.responses.stream(model="gpt-4.1-mini", input="weather?") as stream:
        args = [e.delta async for e in stream if e.type == "response.function_call_arguments.delta"]
        final = await stream.get_final_response()
    [call] = final.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert "".join(args) == call.arguments == '{"city":"Paris"}'


# ---------------------------------------------------------------------------- llmrelay calls


async def test_chat_and_stream_through_responses(fake: FakeUpstream) -> None:
    client = llmrelay.Client()
    base = fake.openai_base_url
    r = await client.achat(
        "openai/gpt-4.1-mini",
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}],
        api_key=CANARY_KEY,
        base_url=base,
        api="responses",
        max_tokens=50,
        stop="END",
    )
    assert r.text == "Echo: hi there"
    assert r.finish_reason == "stop"
    assert r.usage.input_tokens > 0
    assert r.request_id is not None
    assert r.adjusted_params["stop"].startswith("dropped")
    body = fake.requests[-1].body
    assert fake.requests[-1].path == "/v1/responses"
    assert body["instructions"] == "Be brief."
    assert body["max_output_tokens"] == 50
    assert "stop" not in body
    assert "include" not in body  # not a reasoning model
    s = client.astream(
        "openai/gpt-4.1-mini", "stream me", api_key=CANARY_KEY, base_url=base, api="responses"
    )
    text = "".join([c.delta async for c in s])
    assert text == "Echo: stream me" == s.response.text
    assert s.response.usage.output_tokens > 0
    await client.aclose()


async def test_reasoning_round_trips_in_a_tool_loop(fake: FakeUpstream) -> None:
    client = llmrelay.Client()
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url, "api": "responses"}
    r = await client.achat("openai/gpt-5.5", "plain", **kw)
    assert r.reasoning == ""  # a reasoning model without an effort: encrypted item, no summary
    assert r.reasoning_parts[0].data
    fake.push(Reply.tool_call("get_weather", {"city": "Paris"}))
    kw["reasoning_effort"] = "low"
    r = await client.achat("openai/gpt-5.5", "weather in Paris?", tools=[TOOL], **kw)
    assert r.reasoning == "Thinking about: weather in Paris?"
    [part] = r.reasoning_parts
    assert part.id == "rs_fake0001"
    assert part.data is not None
    assert part.data.startswith("gAAAAAB")
    msgs = [
        Message("user", "weather in Paris?"),
        r.message(),
        Message("tool", "sunny", tool_call_id=r.tool_calls[0].id),
    ]
    await client.achat("openai/gpt-5.5", msgs, tools=[TOOL], **kw)
    sent = fake.requests[-1].body
    assert [i.get("type", "message") for i in sent["input"]] == [
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
    ]
    assert sent["input"][1]["encrypted_content"] == part.data
    assert sent["store"] is False
    assert sent["include"] == ["reasoning.encrypted_content"]
    # streamed, the reasoning comes as chunks and the same parts
    s = client.astream("openai/gpt-5.5", "think", **kw)
    reasoning = "".join([c.reasoning async for c in s])
    assert reasoning == "Thinking about: think" == s.response.reasoning
    assert s.response.reasoning_parts[0].data == part.data
    await client.aclose()


async def test_incomplete_is_length_and_errors_are_typed(fake: FakeUpstream) -> None:
    client = llmrelay.Client()
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url, "api": "responses"}
    fake.push(Reply.ok("cut sh", finish="length"))
    r = await client.achat("openai/gpt-4.1-mini", "long", **kw)
    assert r.finish_reason == "length"
    assert r.raw_finish_reason == "max_output_tokens"
    fake.push(Reply.error(500, "boom"), Reply.error(500, "boom"), Reply.error(500, "boom"))
    with pytest.raises(ServerError):
        await client.achat("openai/gpt-4.1-mini", "x", retries=0, **kw)
    fake.push(Reply.stream_error(1, "overloaded", type="server_error"))
    with pytest.raises(ServerError):
        async for _ in client.astream("openai/gpt-4.1-mini", "x y z", retries=0, **kw):
            pass
    fake.clear()
    fake.push(Reply.cut_stream(1))
    with pytest.raises(StreamInterruptedError):
        async for _ in client.astream("openai/gpt-4.1-mini", "x y z", retries=0, **kw):
            pass
    await client.aclose()


async def test_gpt6_with_tools_uses_responses_by_itself(fake: FakeUpstream) -> None:
    assert needs_responses("openai", "gpt-6.1-sol") == "tools"
    assert needs_responses("groq", "gpt-6.1-sol") is None
    client = llmrelay.Client()
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    await client.achat("openai/gpt-6.1-sol", "no tools", **kw)
    assert fake.requests[-1].path == "/v1/chat/completions"
    fake.push(Reply.tool_call("get_weather", {"city": "Oslo"}))
    r = await client.achat("openai/gpt-6.1-sol", "weather?", tools=[TOOL], **kw)
    assert fake.requests[-1].path == "/v1/responses"
    assert r.tool_calls[0].name == "get_weather"
    # the caller can still say otherwise
    await client.achat("openai/gpt-6.1-sol", "weather?", tools=[TOOL], api="chat", **kw)
    assert fake.requests[-1].path == "/v1/chat/completions"
    await client.aclose()


async def test_alias_and_provider_config_choose_the_api(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    monkeypatch.setenv("AZURE_API_KEY", CANARY_KEY)
    cfg = tmp_path / "llmrelay.toml"
    cfg.write_text(
        f"""
[providers.azure]
base_url = "{fake.openai_base_url}"
api = "responses"

[models.thinker]
provider = "openai"
model = "gpt-4.1-mini"
base_url = "{fake.openai_base_url}"
api = "responses"
"""
    )
    with isolated_config():
        settings_file.load_file(cfg)
        client = llmrelay.Client()
        await client.achat("thinker", "hi")
        assert fake.requests[-1].path == "/v1/responses"
        await client.achat("thinker", "hi", api="chat")
        assert fake.requests[-1].path == "/v1/chat/completions"
        await client.achat("azure/my-deployment", "hi")
        assert fake.requests[-1].path == "/v1/responses"
        assert fake.requests[-1].headers["api-key"] == CANARY_KEY
        await client.aclose()


def test_bad_api_values_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="api must be 'chat' or 'responses'"):
        llmrelay.chat("openai/gpt-4.1-mini", "hi", api="soap", api_key=CANARY_KEY)
    with pytest.raises(InvalidRequestError, match="needs an OpenAI or OpenAI-compatible"):
        llmrelay.chat("anthropic/claude-haiku-4-5", "hi", api="responses", api_key=CANARY_KEY)
    bad = tmp_path / "bad.toml"
    bad.write_text('[models.x]\nprovider = "openai"\nmodel = "gpt-4.1"\napi = "rest"\n')
    worse = tmp_path / "worse.toml"
    worse.write_text('[providers.anthropic]\napi = "responses"\n')
    with isolated_config():
        with pytest.raises(ConfigFileError, match="api must be"):
            settings_file.load_file(bad)
        with pytest.raises(ConfigFileError, match="speaks the anthropic_messages API"):
            settings_file.load_file(worse)


async def test_structured_output_through_text_format(fake: FakeUpstream) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    client = llmrelay.Client()
    r = await client.achat(
        "openai/gpt-4.1-mini",
        "a city",
        response_model=City,
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
        api="responses",
    )
    assert isinstance(r.object, City)
    fmt = fake.requests[-1].body["text"]["format"]
    assert fmt["type"] == "json_schema"
    assert set(fmt["schema"]["properties"]) == {"name", "population"}
    assert "response_format" not in fake.requests[-1].body
    await client.aclose()


async def test_seed_002_configuration_chooses_the_api(fake: FakeUpstream) -> None:
    from llmrelay.seeds.seed002 import registry

    with isolated_config():
        registry.define_config(
            "resp-alias", "openai", "gpt-4.1-mini", base_url=fake.openai_base_url, api="responses"
        )
        target = registry.lookup("resp-alias")
        assert target is not None
        assert target.options == {"api": "responses"}
        client = llmrelay.Client()
        await client.achat("resp-alias", "hi", api_key=CANARY_KEY)
        assert fake.requests[-1].path == "/v1/responses"
        await client.aclose()
        registry.define_config("bad-alias", "openai", "gpt-4.1", api="grpc")
        with pytest.raises(ConfigurationError, match="api must be 'chat' or 'responses'"):
            registry.lookup("bad-alias")


@pytest.mark.parametrize("status", ["queued", "in_progress"])
async def test_an_unfinished_background_response_is_not_an_answer(
    fake: FakeUpstream, status: str
) -> None:
    body = {
        "id": "resp_1",
        "object": "response",
        "status": status,
        "model": "gpt-4.1-mini",
        "output": [],
        "usage": None,
    }
    fake.push(Reply.raw(orjson.dumps(body)))
    client = llmrelay.Client()
    with pytest.raises(llmrelay.InvalidResponseError, match=f"the response is {status}"):
        await client.achat(
            "openai/gpt-4.1-mini",
            "hi",
            api_key=CANARY_KEY,
            base_url=fake.openai_base_url,
            api="responses",
            retries=0,
        )
    await client.aclose()
