"""The openai_responses adapter against recorded OpenAI / Azure Responses traffic, replayed
byte-exact over a real socket and called through ``llmrelay.Client`` (``api="responses"``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import llmrelay
from llmrelay.errors import (
    BadRequestError,
    QuotaExhaustedError,
    RateLimitedError,
)
from llmrelay.types import Message, ReasoningPart, ToolCall

from ..conftest import CANARY_KEY
from ..recordings.replay import ReplayServer, entry, events, exchanges

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_population",
            "description": "Returns the current population of the specified fictional country.",
            "parameters": {
                "properties": {"country": {"type": "string"}},
                "required": ["country"],
                "type": "object",
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "can_have_dragons",
            "description": "Returns True if the specified population can have dragons.",
            "parameters": {
                "properties": {"population": {"type": "integer"}},
                "required": ["population"],
                "type": "object",
            },
        },
    },
]


def _replay(rid: str) -> ReplayServer:
    return ReplayServer([x.response for x in exchanges(entry(rid))])


def _client() -> llmrelay.Client:
    return llmrelay.Client()


async def _chat(server: ReplayServer, model: str, messages: Any, **kw: Any) -> llmrelay.Response:
    client = _client()
    try:
        return await client.achat(
            model,
            messages,
            api_key=CANARY_KEY,
            base_url=server.url,
            api="responses",
            retries=0,
            **kw,
        )
    finally:
        await client.aclose()


async def _stream(
    server: ReplayServer, model: str, messages: Any, **kw: Any
) -> tuple[list[llmrelay.StreamChunk], llmrelay.Response]:
    client = _client()
    chunks = []
    try:
        s = client.astream(
            model,
            messages,
            api_key=CANARY_KEY,
            base_url=server.url,
            api="responses",
            retries=0,
            **kw,
        )
        async for c in s:
            chunks.append(c)
    finally:
        await client.aclose()
    last = chunks[-1]
    assert last.done
    assert last.response is not None
    return chunks, last.response


async def test_plain_text() -> None:
    async with _replay("openai-responses-text") as server:
        r = await _chat(server, "openai/gpt-5.5", "Reply with exactly: pong")
    assert r.text == "pong"
    assert r.finish_reason == "stop"
    assert r.raw_finish_reason == "completed"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (11, 5)
    assert r.model == "gpt-5.5-2026-04-23"
    assert r.id is not None
    assert r.id.startswith("resp_")
    assert r.request_id is not None
    assert r.request_id.startswith("req_")
    sent = server.received[0]
    assert sent.path_qs == "/responses"
    body = sent.json()
    assert body["input"] == [{"role": "user", "content": "Reply with exactly: pong"}]
    assert body["store"] is False
    assert body["include"] == ["reasoning.encrypted_content"]
    assert "messages" not in body


async def test_streamed_text_is_the_same_answer() -> None:
    async with _replay("openai-responses-text-stream") as server:
        chunks, r = await _stream(server, "openai/gpt-5.5", "Reply with exactly: pong")
    assert "".join(c.delta for c in chunks) == "pong" == r.text
    assert r.finish_reason == "stop"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (11, 5)
    assert server.received[0].json()["stream"] is True


async def test_tool_loop_sends_function_call_items() -> None:
    async with _replay("openai-responses-tool-call") as server:
        r = await _chat(server, "openai/gpt-5.5", "Look up the population of Pundora", tools=TOOLS)
        assert r.finish_reason == "tool_calls"
        [tc] = r.tool_calls
        assert tc.id.startswith("call_")  # the call_id, not the item id
        assert tc.name
        assert tc.parsed_arguments()
        msgs = [
            Message("user", "Look up the population of Pundora"),
            r.message(),
            Message("tool", "123124", tool_call_id=tc.id),
        ]
        r2 = await _chat(server, "openai/gpt-5.5", msgs, tools=TOOLS)
    assert r2.text
    assert r2.finish_reason == "stop"
    second = server.received[1].json()["input"]
    assert second[1] == {
        "type": "function_call",
        "call_id": tc.id,
        "name": tc.name,
        "arguments": tc.arguments,
    }
    assert second[2] == {"type": "function_call_output", "call_id": tc.id, "output": "123124"}
    # the flat tool shape of the Responses API
    tools = server.received[0].json()["tools"]
    assert tools[0]["type"] == "function"
    assert tools[0]["name"] == "lookup_population"
    assert "function" not in tools[0]


async def test_streamed_tool_call() -> None:
    async with _replay("openai-responses-tool-call-stream") as server:
        chunks, r = await _stream(
            server, "openai/gpt-5.5", "Look up the population of Pundora", tools=TOOLS
        )
    [tc] = r.tool_calls
    deltas = [d for c in chunks for d in c.tool_calls]
    assert deltas[0].id == tc.id
    assert deltas[0].name == tc.name
    assert "".join(d.arguments for d in deltas) == tc.arguments
    assert {d.index for d in deltas} == {0}
    assert r.finish_reason == "tool_calls"


async def test_azure_streamed_tool_call() -> None:
    async with _replay("azure-responses-tool-call-stream") as server:
        chunks, r = await _stream(server, "azure/gpt-5.1", "What is the weather?", tools=TOOLS)
    [tc] = r.tool_calls
    recorded = [
        ev["item"]
        for ev in events(exchanges(entry("azure-responses-tool-call-stream"))[0].response)
        if ev["type"] == "response.output_item.done"
    ]
    assert tc.id == recorded[0]["call_id"]
    assert tc.arguments == recorded[0]["arguments"]
    assert "".join(d.arguments for c in chunks for d in c.tool_calls) == tc.arguments


async def test_encrypted_reasoning_round_trips_as_recorded() -> None:
    """The recorded second request (simonw/llm, store=false) replays the reasoning item with
    its encrypted content before the function call: ours sends the same items."""
    rec = exchanges(entry("openai-responses-encrypted-reasoning-round-trip"))
    assert rec[1].request is not None
    assert rec[1].request.body is not None
    recorded_input = json.loads(rec[1].request.body)["input"]
    prompt = recorded_input[0]["content"]
    async with _replay("openai-responses-encrypted-reasoning-round-trip") as server:
        r = await _chat(server, "openai/gpt-5.5", prompt, tools=TOOLS, reasoning_effort="high")
        [part] = r.reasoning_parts
        assert part.provider == "openai_responses"
        assert part.id == recorded_input[1]["id"]
        assert part.data == recorded_input[1]["encrypted_content"]
        assert r.usage.reasoning_tokens == 63
        [tc] = r.tool_calls
        msgs = [Message("user", prompt), r.message(), Message("tool", "123124", tool_call_id=tc.id)]
        await _chat(server, "openai/gpt-5.5", msgs, tools=TOOLS, reasoning_effort="high")
    sent = server.received[1].json()
    # simonw/llm re-serialized the arguments ({"country": "Pundora"}); llmrelay sends the
    # model's own text back: the same JSON.
    for item in (*sent["input"], *recorded_input):
        if item.get("type") == "function_call":
            item["arguments"] = json.loads(item["arguments"])
    assert sent["input"] == recorded_input
    assert sent["store"] is False
    assert sent["include"] == ["reasoning.encrypted_content"]
    assert sent["reasoning"]["effort"] == "high"


async def test_reasoning_summary_and_cached_tokens() -> None:
    async with _replay("openai-responses-reasoning-summary-tool-loop") as server:
        r = await _chat(server, "openai/gpt-5", "hello", tools=TOOLS)
        assert r.reasoning  # the five summary_text parts, joined
        assert r.reasoning.count("\n\n") >= 4
        [part] = r.reasoning_parts
        assert part.text == r.reasoning
        assert part.data
        assert part.id
        assert r.usage.reasoning_tokens == 1792
        [tc] = r.tool_calls
        msgs = [Message("user", "hello"), r.message(), Message("tool", "ok", tool_call_id=tc.id)]
        r2 = await _chat(server, "openai/gpt-5", msgs, tools=TOOLS)
    assert r2.usage.cached_tokens == 2048
    replayed = server.received[1].json()["input"][1]
    assert replayed["type"] == "reasoning"
    assert replayed["id"] == part.id
    assert replayed["encrypted_content"] == part.data
    assert [s["text"] for s in replayed["summary"]] == [part.text]


async def test_streamed_reasoning_summary_and_tool_calls() -> None:
    rec = exchanges(entry("openai-responses-reasoning-stream"))[0].response
    evs = events(rec)
    first_end = next(i for i, ev in enumerate(evs) if ev["type"] == "response.completed")
    summary = "".join(
        ev["delta"]
        for ev in evs[:first_end]
        if ev["type"] == "response.reasoning_summary_text.delta"
    )
    async with _replay("openai-responses-reasoning-stream") as server:
        chunks, r = await _stream(server, "openai/o3-mini", "weather?", tools=TOOLS)
    assert "".join(c.reasoning for c in chunks) == summary == r.reasoning
    assert r.reasoning_parts
    assert r.reasoning_parts[0].data
    # Each finished reasoning item is also a chunk, with its id and the encrypted content of
    # its output_item.done event (OpenAI sends another encryption in response.completed).
    finished = [c.reasoning_part for c in chunks if c.reasoning_part]
    assert [(p.id, p.text) for p in finished] == [(p.id, p.text) for p in r.reasoning_parts]
    items = [ev["item"] for ev in evs[:first_end] if ev["type"] == "response.output_item.done"]
    assert [p.data for p in finished] == [
        i["encrypted_content"] for i in items if i["type"] == "reasoning"
    ]
    assert r.tool_calls
    assert r.finish_reason == "tool_calls"
    done = [ev["item"] for ev in evs[:first_end] if ev["type"] == "response.output_item.done"]
    calls = [i for i in done if i["type"] == "function_call"]
    assert [(t.id, t.arguments) for t in r.tool_calls] == [
        (c["call_id"], c["arguments"]) for c in calls
    ]


async def test_400_on_a_stream_request() -> None:
    async with _replay("openai-responses-400-stream-request") as server:
        with pytest.raises(BadRequestError) as ei:
            await _stream(server, "openai/gpt-4o", "What is the capital of France?")
    assert "temperature" in ei.value.message
    assert ei.value.status == 400


async def test_429_insufficient_quota() -> None:
    async with _replay("openai-responses-429-insufficient-quota") as server:
        with pytest.raises(QuotaExhaustedError):
            await _chat(server, "openai/gpt-5-nano", "hi")


async def test_stream_error_event_is_typed() -> None:
    async with _replay("openai-responses-stream-error-event") as server:
        with pytest.raises(QuotaExhaustedError) as ei:
            await _stream(server, "openai/gpt-5-nano", "hi")
    assert "quota" in ei.value.message


async def test_stream_failed_event_is_typed() -> None:
    async with _replay("openai-responses-stream-failed-only") as server:
        with pytest.raises(RateLimitedError) as ei:
            await _stream(server, "openai/gpt-4o-mini", "hi")
    assert "TPM" in ei.value.message


async def test_recorded_reasoning_json_body() -> None:
    async with _replay("openai-responses-reasoning-encrypted-summary") as server:
        r = await _chat(server, "openai/gpt-5-mini", "hi")
    assert r.text
    [part] = r.reasoning_parts
    assert part.data
    assert part.id
    assert part.text == r.reasoning
    assert isinstance(part, ReasoningPart)


async def test_azure_function_call_json_body() -> None:
    async with _replay("azure-responses-function-call") as server:
        r = await _chat(server, "azure/gpt-5.1", "weather?", tools=TOOLS)
    [tc] = r.tool_calls
    assert isinstance(tc, ToolCall)
    assert tc.id.startswith("call_")
    assert r.usage.input_tokens > 0
    assert server.received[0].headers  # the key goes as api-key (Azure), never in the URL
    names = {k.lower(): v for k, v in server.received[0].headers}
    assert names["api-key"] == CANARY_KEY
    assert CANARY_KEY not in server.received[0].path_qs


async def test_400_unsupported_temperature_is_typed() -> None:
    """The recorded 400 a reasoning model gives a temperature: a model the catalog does not
    know gets the temperature sent (nothing to drop it by), and the answer is a typed
    BadRequestError naming the parameter, not retried."""
    async with _replay("openai-responses-400-temperature") as server:
        with pytest.raises(BadRequestError) as ei:
            await _chat(server, "openai/my-reasoner", "hi", temperature=0.5)
        assert json.loads(server.received[0].body)["temperature"] == 0.5
        assert len(server.received) == 1
    assert ei.value.status == 400
    assert "'temperature' is not supported with this model" in ei.value.message
