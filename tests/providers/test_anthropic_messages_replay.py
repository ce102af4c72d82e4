"""Every recorded Anthropic Messages exchange, replayed byte-exact over a real socket to
``llmrelay.Client`` (``achat`` / ``astream``): text, tool calls, usage, finish reasons, ids,
errors and reasoning parts as llmrelay reports them, and the request body llmrelay sends next to
the one the recording holds (where it holds one).

The recordings are tests/recordings (MANIFEST.toml, wire ``anthropic_messages``); the server is
``tests/recordings/replay.ReplayServer``, which answers the recorded responses in order and keeps
what it received.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import BaseModel

import llmrelay
from llmrelay.errors import BadRequestError, ContentFilteredError
from llmrelay.providers.adapters.anthropic_messages import AnthropicMessagesAdapter
from llmrelay.types import Message, ReasoningPart, ToolCall, Usage

from ..conftest import CANARY_KEY
from ..recordings.replay import (
    Entry,
    ReceivedRequest,
    ReplayServer,
    events,
    exchanges,
    load_manifest,
)
from .sansio import body_of, chat, deployment

ANTHROPIC = {e.id: e for e in load_manifest() if e.wire == "anthropic_messages"}
#: The recordings the tests below replay; a test that reads one not listed here fails, and
#: ``test_every_anthropic_recording_is_replayed`` fails when a new one is not listed.
REPLAYED = frozenset(
    {
        "anthropic-text",
        "anthropic-opus-4-7-no-temperature-capture",
        "anthropic-compatible-message-delta-input-tokens",
        "anthropic-tool-no-args-stream",
        "anthropic-parallel-tool-use-stream-loop",
        "anthropic-thinking-tool-use",
        "anthropic-thinking-stream-signature-delta",
        "anthropic-redacted-thinking-stream",
        "anthropic-refusal",
        "anthropic-refusal-no-details",
        "anthropic-refusal-stream",
        "anthropic-refusal-stream-reasoning-extraction",
        "anthropic-400-request-id",
        "anthropic-400-tool-reference-request-id",
        "anthropic-400-tool-schema-request-id",
    }
)


def rec(rid: str) -> Entry:
    assert rid in REPLAYED, f"{rid}: add it to REPLAYED"
    return ANTHROPIC[rid]


@asynccontextmanager
async def served(*rids: str) -> AsyncIterator[ReplayServer]:
    """A replay server answering the recordings' responses in order (all interactions)."""
    responses = [ex.response for rid in rids for ex in exchanges(rec(rid))]
    async with ReplayServer(responses) as server:
        yield server


def kw(server: ReplayServer, **extra: Any) -> dict[str, Any]:
    return {"api_key": CANARY_KEY, "base_url": server.url, "retries": 0, **extra}


def recorded_json(rid: str, interaction: int = 0) -> Any:
    """The (first) JSON body of a recorded response."""
    return events(exchanges(rec(rid))[interaction].response)[0]


def recorded_request(rid: str, interaction: int = 0) -> Any:
    ex = exchanges(rec(rid))[interaction]
    assert ex.request is not None
    assert ex.request.body is not None
    return json.loads(ex.request.body)


def normalized(body: Any) -> Any:
    """A request body with the equivalent spellings made one: a turn's string content as one
    text block, a tool's empty description left out."""
    out = dict(body)
    out["messages"] = [
        {**m, "content": [{"type": "text", "text": m["content"]}]}
        if isinstance(m["content"], str)
        else m
        for m in body["messages"]
    ]
    if "tools" in out:
        out["tools"] = [
            {k: v for k, v in t.items() if not (k == "description" and v == "")}
            for t in out["tools"]
        ]
    return out


def sent(server: ReplayServer, i: int = 0) -> Any:
    r: ReceivedRequest = server.received[i]
    assert r.path_qs == "/v1/messages"
    headers = {k.lower(): v for k, v in r.headers}
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["x-api-key"] == CANARY_KEY
    return r.json()


@pytest.fixture
def client() -> llmrelay.Client:
    return llmrelay.Client()


# ------------------------------------------------------------------------ answers


async def test_text(client: llmrelay.Client) -> None:
    async with served("anthropic-text") as server:
        r = await client.achat("anthropic/claude-sonnet-4-5", "Hello", **kw(server))
    body = recorded_json("anthropic-text")
    assert r.text == body["content"][0]["text"]
    assert (r.finish_reason, r.raw_finish_reason) == ("stop", "end_turn")
    assert r.id == "msg_01VdEjxAP5ahtHKrrRdNBteQ"
    assert r.model == "claude-sonnet-4-5-20250929"
    assert r.usage == Usage(input_tokens=12, output_tokens=29)
    assert (r.reasoning, r.reasoning_parts) == ("", [])
    assert sent(server) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    await client.aclose()


async def test_opus_4_7_capture_sends_the_recorded_body(client: llmrelay.Client) -> None:
    rid = "anthropic-opus-4-7-no-temperature-capture"
    asked = recorded_request(rid)
    text = asked["messages"][0]["content"][0]["text"]
    async with served(rid) as server:
        r = await client.achat("anthropic/claude-opus-4-7", text, max_tokens=5, **kw(server))
    assert normalized(sent(server)) == normalized(asked)
    assert r.text == "OK"
    assert (r.finish_reason, r.raw_finish_reason) == ("length", "max_tokens")
    assert r.request_id == "req_011CcnkUPiddarVDRngNU9S9"  # the request-id header
    assert r.id == "msg_011CcnkURCviqzbiZ4JFqtwp"
    assert r.usage == Usage(input_tokens=21, output_tokens=5)
    await client.aclose()


async def test_compatible_stream_with_usage_in_message_delta(client: llmrelay.Client) -> None:
    async with served("anthropic-compatible-message-delta-input-tokens") as server:
        r = await client.astream("anthropic/claude-sonnet-4-5", "ping", **kw(server)).collect()
    assert r.text == "pong"
    assert r.usage == Usage(input_tokens=61, output_tokens=2)
    assert r.finish_reason == "stop"
    assert sent(server)["stream"] is True
    await client.aclose()


async def test_tool_call_stream_with_empty_input(client: llmrelay.Client) -> None:
    tool = {"name": "updateIssueList", "parameters": {"type": "object", "properties": {}}}
    async with served("anthropic-tool-no-args-stream") as server:
        chunks = [
            c
            async for c in client.astream(
                "anthropic/claude-sonnet-4-5", "update", tools=[tool], **kw(server)
            )
        ]
    r = chunks[-1].response
    assert r is not None
    assert r.text == "I'll update the issue list for you."
    assert r.tool_calls == [ToolCall("toolu_01QE1WLsSVp5hy5Q3GmGTmjP", "updateIssueList", "{}")]
    assert r.finish_reason == "tool_calls"
    assert r.id == "msg_01GE2RKp1VYsPzdFs3sS9z5S"
    assert r.usage == Usage(input_tokens=565, output_tokens=48)
    assert sent(server)["tools"] == [
        {"name": "updateIssueList", "input_schema": tool["parameters"]}
    ]
    await client.aclose()


async def test_parallel_tool_loop_sends_the_recorded_second_request(
    client: llmrelay.Client,
) -> None:
    """Both turns of a recorded tool loop: the second request llmrelay builds from the first
    answer (``r.message()`` + two tool results) is the one Anthropic accepted."""
    rid = "anthropic-parallel-tool-use-stream-loop"
    first, second = recorded_request(rid, 0), recorded_request(rid, 1)
    tool = {"name": "pelican_name_generator", "parameters": first["tools"][0]["input_schema"]}
    params = {"tools": [tool], "max_tokens": 8192, "temperature": 1.0}
    model = "anthropic/claude-3-5-haiku-latest"
    async with served(rid) as server:
        msgs: list[Any] = [Message("user", first["messages"][0]["content"][0]["text"])]
        r = await client.astream(model, msgs, **params, **kw(server)).collect()
        assert [(t.id, t.arguments) for t in r.tool_calls] == [
            ("toolu_011ouQLPrqhKSuFJtuJrpaUX", "{}"),
            ("toolu_01NtJRxGhJcEQ4axN1FzHayX", "{}"),
        ]
        assert r.finish_reason == "tool_calls"
        assert r.request_id == "req_011CV8mPP4EhtUV82q45AN9n"
        msgs.append(r.message())
        for call, name in zip(r.tool_calls, ("Charles", "Sammy"), strict=True):
            msgs.append(Message("tool", name, tool_call_id=call.id))
        r2 = await client.astream(model, msgs, **params, **kw(server)).collect()
    assert normalized(sent(server, 0)) == normalized(first)
    # llm-anthropic sent the streamed text back with a trailing space of its own; llmrelay
    # sends it as it came. Everything else is the recorded request.
    recorded_text = second["messages"][1]["content"][0]["text"]
    assert recorded_text == r.text + " "
    second["messages"][1]["content"][0]["text"] = r.text
    assert normalized(sent(server, 1)) == normalized(second)
    assert r2.finish_reason == "stop"
    assert r2.text
    await client.aclose()


# ------------------------------------------------------------------------ thinking


async def test_thinking_tool_loop_replays_the_signed_block_first(client: llmrelay.Client) -> None:
    """Response with thinking + tool_use -> ``r.message()`` + the tool result -> the next request
    holds the thinking block, signature and all, before the tool_use block (the API refuses the
    turn otherwise)."""
    block = recorded_json("anthropic-thinking-tool-use")["content"][0]
    tool = {"name": "checkSandboxErrors", "parameters": {"type": "object", "properties": {}}}
    model = "anthropic/claude-sonnet-4-5"
    async with served("anthropic-thinking-tool-use", "anthropic-text") as server:
        msgs: list[Any] = [Message("user", "Check the sandbox; call the tool.")]
        params = {"tools": [tool], "reasoning_effort": "low"}
        r = await client.achat(model, msgs, **params, **kw(server))
        assert r.reasoning == block["thinking"]
        assert r.reasoning_parts == [
            ReasoningPart(block["thinking"], signature=block["signature"], provider="anthropic")
        ]
        assert r.tool_calls == [ToolCall("toolu_01Vr1rLVLRYrbNn7qECH8SPR", "checkSandboxErrors")]
        assert r.usage == Usage(input_tokens=619, output_tokens=94, reasoning_tokens=53)
        msgs += [r.message(), Message("tool", "no errors", tool_call_id=r.tool_calls[0].id)]
        final = await client.achat(model, msgs, **params, **kw(server))
    assert final.text.startswith("Hello!")
    first = sent(server, 0)
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert first["max_tokens"] == 4096 + 2048
    assistant = sent(server, 1)["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"] == [
        {"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]},
        {
            "type": "tool_use",
            "id": "toolu_01Vr1rLVLRYrbNn7qECH8SPR",
            "name": "checkSandboxErrors",
            "input": {},
        },
    ]
    await client.aclose()


async def test_thinking_stream_with_signature_delta(client: llmrelay.Client) -> None:
    rid = "anthropic-thinking-stream-signature-delta"
    evs = events(exchanges(rec(rid))[0].response)
    thinking = "".join(
        e["delta"]["thinking"] for e in evs if e.get("delta", {}).get("type") == "thinking_delta"
    )
    signature = "".join(
        e["delta"]["signature"] for e in evs if e.get("delta", {}).get("type") == "signature_delta"
    )
    async with served(rid) as server:
        chunks = [
            c
            async for c in client.astream(
                "anthropic/claude-sonnet-5", "GCD of 1071 and 462?", **kw(server)
            )
        ]
    assert "".join(c.reasoning for c in chunks) == thinking
    r = chunks[-1].response
    assert r is not None
    assert r.reasoning == thinking
    assert r.reasoning_parts == [ReasoningPart(thinking, signature=signature, provider="anthropic")]
    assert r.text.startswith("# Finding GCD(1071, 462)")
    assert r.usage == Usage(input_tokens=47, output_tokens=373, reasoning_tokens=62)
    assert r.id == "msg_011CdZqGg4K3tq97K7RDtTw7"
    await client.aclose()


async def test_redacted_thinking_stream_sends_the_recorded_body(client: llmrelay.Client) -> None:
    rid = "anthropic-redacted-thinking-stream"
    asked = recorded_request(rid)
    text = asked["messages"][0]["content"][0]["text"]
    datas = [
        e["content_block"]["data"]
        for e in events(exchanges(rec(rid))[0].response)
        if e.get("content_block", {}).get("type") == "redacted_thinking"
    ]
    async with served(rid) as server:
        r = await client.astream(
            "anthropic/claude-sonnet-4-5-20250929",
            text,
            max_tokens=4096,
            reasoning_effort="minimal",
            **kw(server),
        ).collect()
    assert normalized(sent(server)) == normalized(asked)  # thinking budget_tokens 1024
    assert len(datas) == 2
    assert r.reasoning_parts == [
        ReasoningPart(data=d, redacted=True, provider="anthropic") for d in datas
    ]
    assert r.reasoning == ""
    assert r.text
    assert r.id == "msg_018XZkwvj9asBiffg3fXt88s"
    # The next turn sends both opaque blocks back, first.
    msgs = [Message("user", text), r.message(), Message("user", "and?")]
    dep = deployment("anthropic", "claude-sonnet-4-5-20250929")
    body = body_of(AnthropicMessagesAdapter().build_request(chat(msgs), dep))
    assert body["messages"][1]["content"][:2] == [
        {"type": "redacted_thinking", "data": d} for d in datas
    ]
    await client.aclose()


# ------------------------------------------------------------------------ refusals


class Person(BaseModel):
    name: str


async def test_refusal_is_typed_and_not_reasked(client: llmrelay.Client) -> None:
    async with served("anthropic-refusal") as server:
        with pytest.raises(ContentFilteredError) as info:
            await client.achat("anthropic/claude-fable-5", "x", response_model=Person, **kw(server))
    details = recorded_json("anthropic-refusal")["stop_details"]
    assert info.value.category == "cyber"
    assert info.value.explanation == details["explanation"]
    assert info.value.partial_text == ""
    assert len(server.received) == 1  # no structured-output re-ask paid for a refusal
    await client.aclose()


async def test_refusal_without_details(client: llmrelay.Client) -> None:
    async with served("anthropic-refusal-no-details") as server:
        with pytest.raises(ContentFilteredError) as info:
            await client.achat("anthropic/claude-sonnet-4-5", "x", **kw(server))
    assert (info.value.category, info.value.explanation) == (None, None)
    await client.aclose()


async def test_refusal_triggers_content_filter_fallbacks(
    monkeypatch: pytest.MonkeyPatch, keys: str
) -> None:
    """A refusal (plain, then streamed) moves on to the content-filter chain."""
    engine = llmrelay.Engine(content_filter_fallbacks=["anthropic/claude-sonnet-4-5"])
    client = llmrelay.Client(engine=engine)
    async with served("anthropic-refusal", "anthropic-text") as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        r = await client.achat("anthropic/claude-fable-5", "x", retries=0)
        assert r.text.startswith("Hello!")
        assert [a.error for a in r.trace] == ["ContentFilteredError", None]
        assert [sent(server, i)["model"] for i in (0, 1)] == [
            "claude-fable-5",
            "claude-sonnet-4-5",
        ]
    async with served("anthropic-refusal-stream", "anthropic-text") as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        # The refusal comes before any output: the stream moves on to the fallback.
        chain = ["anthropic/claude-sonnet-4-5"]
        stream = client.astream(
            "anthropic/claude-fable-5", "x", retries=0, content_filter_fallbacks=chain
        )
        r = await stream.collect()
        assert r.text.startswith("Hello!")
        assert r.trace[0].error == "ContentFilteredError"
    await client.aclose()


async def test_streamed_refusal_raises_at_the_end(client: llmrelay.Client) -> None:
    async with served("anthropic-refusal-stream") as server:
        with pytest.raises(ContentFilteredError) as info:
            await client.astream("anthropic/claude-fable-5", "x", **kw(server)).collect()
    assert info.value.category == "cyber"
    await client.aclose()


async def test_recorded_adaptive_thinking_refusal_sends_the_recorded_body(
    client: llmrelay.Client,
) -> None:
    rid = "anthropic-refusal-stream-reasoning-extraction"
    asked = recorded_request(rid)
    async with served(rid) as server:
        with pytest.raises(ContentFilteredError) as info:
            await client.astream(
                "anthropic/claude-fable-5-1",
                asked["messages"][0]["content"][0]["text"],
                max_tokens=128000,
                temperature=1.0,
                reasoning_effort="high",
                **kw(server),
            ).collect()
    assert info.value.category == "reasoning_extraction"
    assert info.value.request_id == "req_011Cef1BeSqcyH3S7gNQq2MN"  # the stream's header
    assert info.value.explanation is not None
    assert "reverse engineering" in info.value.explanation
    # The recorded body, plus the effort llmrelay maps reasoning_effort to.
    assert normalized(sent(server)) == {**normalized(asked), "output_config": {"effort": "high"}}
    await client.aclose()


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "rid",
    [
        "anthropic-400-request-id",
        "anthropic-400-tool-reference-request-id",
        "anthropic-400-tool-schema-request-id",
    ],
)
async def test_recorded_errors_carry_the_body_request_id(client: llmrelay.Client, rid: str) -> None:
    body = recorded_json(rid)
    async with served(rid) as server:
        with pytest.raises(BadRequestError) as info:
            await client.achat("anthropic/claude-sonnet-4-5", "x", **kw(server))
    e = info.value
    assert e.status == 400
    assert e.request_id == body["request_id"]
    assert body["error"]["message"][:40] in str(e)
    assert len(server.received) == 1  # a 400 is not retried
    await client.aclose()


def test_every_anthropic_recording_is_replayed() -> None:
    assert set(ANTHROPIC) == REPLAYED
