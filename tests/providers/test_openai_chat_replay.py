"""Every recorded Chat Completions exchange (``wire = "openai_chat"`` in
tests/recordings/MANIFEST.toml), replayed byte-exact over a real socket to ``llmrelay.Client``.

Each test points a client at a :class:`ReplayServer` through ``base_url`` and checks what the
user gets -- text, tool calls, usage, finish reason, ids, errors, reasoning -- against the
recorded events, and what llmrelay sent against the recorded request body where the recording
kept one. Expected values are read from the recording itself (and pinned with a literal where
that makes a mistake in the reading visible). Where llmrelay's body differs from the recorded
client's on purpose, the test names the difference (:func:`same_body`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import llmrelay
from llmrelay.types import StreamChunk, ToolCall, Usage

from ..conftest import CANARY_KEY, FakeClock
from ..recordings.replay import (
    RecordedResponse,
    ReplayServer,
    entry,
    events,
    exchanges,
    load_manifest,
)


def covers(rid: str) -> str:
    """Marks the recording a test replays (``test_every_openai_chat_recording_is_replayed``
    reads these names from this file)."""
    assert entry(rid).wire == "openai_chat"
    return rid


@pytest.fixture
async def client() -> AsyncIterator[llmrelay.Client]:
    async def sleep(seconds: float) -> None:  # retries wait on a fake clock, not for real
        clock.advance(seconds)

    clock = FakeClock()
    c = llmrelay.Client(engine=llmrelay.Engine(clock=clock, sleep=sleep))
    yield c
    await c.aclose()


def server(rid: str) -> ReplayServer:
    return ReplayServer([x.response for x in exchanges(entry(rid))])


def evs(rid: str, interaction: int = 0) -> list[Any]:
    return events(exchanges(entry(rid))[interaction].response)


def message_of(rid: str, interaction: int = 0) -> dict[str, Any]:
    return evs(rid, interaction)[0]["choices"][0]["message"]  # type: ignore[no-any-return]


def recorded_body(rid: str, interaction: int = 0) -> dict[str, Any]:
    req = exchanges(entry(rid))[interaction].request
    assert req is not None
    assert req.body is not None
    return json.loads(req.body)  # type: ignore[no-any-return]


def same_body(ours: dict[str, Any], recorded: dict[str, Any], **differences: Any) -> None:
    """``ours`` equals ``recorded`` field by field, except the named differences: a key mapped
    to ``None`` is one the recorded client sent and llmrelay does not (``stream: false``,
    ``n: 1`` -- both the API defaults); a key mapped to a string is the name llmrelay sends
    the recorded value under."""
    expected = dict(recorded)
    for key, what in differences.items():
        value = expected.pop(key)
        if isinstance(what, str):
            expected[what] = value
    assert ours == expected


def stream_deltas(rid: str, field: str) -> str:
    out = []
    for ev in evs(rid):
        for ch in ev.get("choices") or []:
            v = (ch.get("delta") or {}).get(field)
            if isinstance(v, str):
                out.append(v)
    return "".join(out)


async def drain(s: Any) -> tuple[list[StreamChunk], llmrelay.Response]:
    chunks: list[StreamChunk] = []
    async for c in s:
        chunks.append(c)
    assert chunks[-1].done
    assert chunks[-1].response is not None
    return chunks, chunks[-1].response


def key(**kw: Any) -> dict[str, Any]:
    return {"api_key": CANARY_KEY, **kw}


# ------------------------------------------------------------------------------------ OpenAI


async def test_openai_text(client: llmrelay.Client) -> None:
    rid = covers("openai-chat-text")
    ev = evs(rid)[0]
    async with server(rid) as srv:
        r = await client.achat("openai/gpt-4.1-nano", "hi", **key(base_url=srv.url + "/v1"))
    assert r.text == ev["choices"][0]["message"]["content"]
    assert r.text.startswith("**Holiday Name:** Galaxy Day")
    assert (r.finish_reason, r.raw_finish_reason) == ("stop", "stop")
    assert r.id == ev["id"] == "chatcmpl-D8Z5f52zQqikDBEKQMQoYcWMcWPeU"
    assert r.model == "gpt-4.1-nano-2025-04-14"
    assert r.usage == Usage(input_tokens=16, output_tokens=363)
    assert r.reasoning == ""
    assert r.tool_calls == []
    sent = srv.received[0]
    assert sent.path_qs == "/v1/chat/completions"
    assert sent.json() == {"model": "gpt-4.1-nano", "messages": [{"role": "user", "content": "hi"}]}


async def test_openai_400_unsupported_parameter(client: llmrelay.Client) -> None:
    rid = covers("openai-chat-400-unsupported-parameter")
    async with server(rid) as srv:
        with pytest.raises(llmrelay.BadRequestError) as info:
            await client.achat(
                "openai/o3-mini",
                "hi",
                **key(base_url=srv.url + "/v1", extra={"max_tokens": 100}),
            )
    e = info.value
    assert e.status == 400
    assert "Unsupported parameter: 'max_tokens'" in e.message
    assert e.body["error"]["param"] == "max_tokens"
    assert len(srv.received) == 1  # a 400 is not retried
    assert srv.received[0].json()["max_tokens"] == 100


# ------------------------------------------------------------------------------------ Azure


@pytest.mark.parametrize(
    ("rid", "text", "usage"),
    [
        (
            "azure-text-stream-prompt-filter",
            "Hello World",
            Usage(input_tokens=15, output_tokens=5),
        ),
        (
            "azure-model-router-stream",
            "Capital of Denmark.",
            Usage(input_tokens=15, output_tokens=78, reasoning_tokens=64),
        ),
    ],
)
async def test_azure_stream_with_prompt_filter_first_chunk(
    client: llmrelay.Client, rid: str, text: str, usage: Usage
) -> None:
    covers(rid)
    first = evs(rid)[0]
    assert (first["id"], first["model"]) == ("", "")
    named = next(ev for ev in evs(rid) if ev["id"])
    async with server(rid) as srv:
        s = client.astream("azure/gpt-4", "hi", **key(base_url=srv.url + "/openai/v1"))
        chunks, r = await drain(s)
    assert "".join(c.delta for c in chunks) == text == r.text
    assert r.id == named["id"]
    assert r.model == named["model"]
    assert r.usage == usage
    assert r.finish_reason == "stop"
    sent = srv.received[0]
    assert sent.path_qs == "/openai/v1/chat/completions"
    assert dict(sent.headers)["api-key"] == CANARY_KEY
    assert sent.json()["stream_options"] == {"include_usage": True}


# ------------------------------------------------------------------------------------ Groq


async def test_groq_tool_call(client: llmrelay.Client) -> None:
    rid = covers("groq-tool-call")
    weather = {"name": "weather", "parameters": {"type": "object", "properties": {}}}
    async with server(rid) as srv:
        r = await client.achat(
            "groq/llama-3.3-70b-versatile",
            "weather?",
            **key(base_url=srv.url + "/openai/v1", tools=[weather]),
        )
    assert r.tool_calls == [ToolCall("ax9fskhev", "weather", "{}")]
    assert r.finish_reason == "tool_calls"
    assert r.text == ""
    assert r.usage == Usage(input_tokens=218, output_tokens=15)
    assert r.request_id == evs(rid)[0]["x_groq"]["id"] == "req_01kh52madzem68scv0bcz3vm00"
    assert srv.received[0].json()["tools"] == [{"type": "function", "function": weather}]


@pytest.mark.parametrize(
    ("rid", "finish", "usage"),
    [
        ("groq-reasoning", "stop", Usage(input_tokens=17, output_tokens=649, reasoning_tokens=570)),
        (
            "groq-qwen-reasoning-only-length",
            "length",
            Usage(input_tokens=27, output_tokens=64, reasoning_tokens=64),
        ),
    ],
)
async def test_groq_reasoning(client: llmrelay.Client, rid: str, finish: str, usage: Usage) -> None:
    covers(rid)
    msg = message_of(rid)
    async with server(rid) as srv:
        r = await client.achat("groq/qwen/qwen3-32b", "x", **key(base_url=srv.url))
    assert r.reasoning == msg["reasoning"]
    assert len(r.reasoning) > 100
    assert r.text == msg["content"]
    assert r.finish_reason == finish
    assert r.usage == usage
    assert r.request_id == evs(rid)[0]["x_groq"]["id"]


@pytest.mark.parametrize(
    ("rid", "call"),
    [
        ("groq-tool-call-stream", ToolCall("tk85n1k4m", "weather", "{}")),
        ("groq-json-tool-call-stream", ToolCall("ax9fskhew", "json", '{"value":"Sparkle Day"}')),
    ],
)
async def test_groq_streamed_tool_calls(client: llmrelay.Client, rid: str, call: ToolCall) -> None:
    covers(rid)
    last = evs(rid)[-1]
    async with server(rid) as srv:
        s = client.astream(
            "groq/" + evs(rid)[0]["model"],
            "x",
            **key(base_url=srv.url, tools=[{"name": call.name, "parameters": {"type": "object"}}]),
        )
        chunks, r = await drain(s)
    assert r.tool_calls == [call]
    names = [d.name for c in chunks for d in c.tool_calls if d.name]
    assert names == [call.name]
    assert r.finish_reason == "tool_calls"
    u = last["usage"]
    assert r.usage == Usage(input_tokens=u["prompt_tokens"], output_tokens=u["completion_tokens"])
    assert r.request_id == evs(rid)[0]["x_groq"]["id"]
    assert r.id == last["id"]


async def test_groq_404(client: llmrelay.Client) -> None:
    rid = covers("groq-404-model-not-found")
    async with server(rid) as srv:
        with pytest.raises(llmrelay.NotFoundError) as info:
            await client.achat("groq/non-existent", "hello", **key(base_url=srv.url))
    assert info.value.status == 404
    assert "The model `non-existent` does not exist" in info.value.message
    assert len(srv.received) == 1
    same_body(srv.received[0].json(), recorded_body(rid), n=None, stream=None)


async def test_groq_tool_loop_after_tool_use_failed(client: llmrelay.Client) -> None:
    """pydantic-ai's recorded tool loop, replayed turn by turn: Groq refuses the first call with
    400 ``tool_use_failed``; the second returns a tool call with ``message.reasoning``; the
    third the answer. llmrelay's bodies match the recorded ones field by field, except that it
    sends neither the API defaults ``n: 1`` / ``stream: false`` nor an empty tool description,
    and it does not paste the reasoning into the assistant turn as ``<think>`` text (Groq
    documents no such replay; the turn goes back as the tool call alone)."""
    rid = covers("groq-400-tool-use-failed-then-retry")
    rec = [recorded_body(rid, i) for i in range(3)]
    tool = dict(rec[0]["tools"][0]["function"])
    tool.pop("description")
    base = [llmrelay.Message(m["role"], m["content"]) for m in rec[0]["messages"]]
    model = "groq/openai/gpt-oss-120b"
    kw = key(tools=[tool], tool_choice="auto")
    async with server(rid) as srv:
        kw["base_url"] = srv.url + "/openai/v1"
        with pytest.raises(llmrelay.BadRequestError) as info:
            await client.achat(model, base, **kw)
        assert info.value.status == 400
        assert info.value.message.startswith("Tool call validation failed")
        assert "failed_generation" in info.value.body["error"]
        assert len(srv.received) == 1  # not retried

        failed = rec[1]["messages"][2]["tool_calls"][0]
        first_try = llmrelay.Message(
            "assistant",
            None,
            tool_calls=[
                ToolCall(failed["id"], failed["function"]["name"], failed["function"]["arguments"])
            ],
        )
        correction = llmrelay.Message.tool(failed["id"], rec[1]["messages"][3]["content"])
        second = [*base, first_try, correction]
        r2 = await client.achat(model, second, **kw)
        msg2 = message_of(rid, 1)
        want = msg2["tool_calls"][0]
        assert r2.tool_calls == [
            ToolCall(want["id"], want["function"]["name"], want["function"]["arguments"])
        ]
        assert r2.reasoning == msg2["reasoning"]
        assert r2.usage == Usage(input_tokens=301, output_tokens=52, reasoning_tokens=22)

        third = [
            *second,
            r2.message(),
            llmrelay.Message.tool(want["id"], "Something with name: test"),
        ]
        r3 = await client.achat(model, third, **kw)
    msg3 = message_of(rid, 2)
    assert r3.text == msg3["content"]
    assert r3.reasoning == msg3["reasoning"]
    assert r3.finish_reason == "stop"
    assert r3.usage == Usage(
        input_tokens=336, output_tokens=96, cached_tokens=256, reasoning_tokens=59
    )
    assert r3.request_id == "req_01khrvt137e9qtvva4t9mk7bzr"

    def without_description(body: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(json.dumps(body))
        del body["tools"][0]["function"]["description"]
        for m in body["messages"]:
            if m["role"] == "assistant" and "tool_calls" in m:
                m["content"] = None  # llmrelay sends the key, null
        return body

    sent = [q.json() for q in srv.received]
    for i in range(2):
        same_body(sent[i], without_description(rec[i]), n=None, stream=None)
    recorded_third = without_description(rec[2])
    assert recorded_third["messages"][4]["content"] is None  # was "<think>...</think>"
    assert rec[2]["messages"][4]["content"].startswith("<think>")
    same_body(sent[2], recorded_third, n=None, stream=None)


# ------------------------------------------------------------------------------------ DeepSeek


async def test_deepseek_reasoning_content(client: llmrelay.Client) -> None:
    rid = covers("deepseek-reasoner-reasoning-content")
    msg = message_of(rid)
    async with server(rid) as srv:
        r = await client.achat("deepseek/deepseek-reasoner", "x", **key(base_url=srv.url))
    assert r.reasoning == msg["reasoning_content"]
    assert r.text == msg["content"]
    assert r.usage == Usage(input_tokens=18, output_tokens=345, reasoning_tokens=315)
    assert r.id == evs(rid)[0]["id"]


async def test_deepseek_text_cut_at_length(client: llmrelay.Client) -> None:
    rid = covers("deepseek-chat-text-length")
    async with server(rid) as srv:
        r = await client.achat(
            "deepseek/deepseek-chat", "x", **key(base_url=srv.url, max_tokens=300)
        )
    assert r.text == message_of(rid)["content"]
    assert (r.finish_reason, r.raw_finish_reason) == ("length", "length")
    assert r.usage == Usage(input_tokens=13, output_tokens=300)
    assert srv.received[0].json()["max_tokens"] == 300


async def test_deepseek_streamed_reasoning_and_tool_call(client: llmrelay.Client) -> None:
    rid = covers("deepseek-reasoner-tool-call-stream")
    thought = stream_deltas(rid, "reasoning_content")
    async with server(rid) as srv:
        s = client.astream(
            "deepseek/deepseek-reasoner",
            "weather in SF?",
            **key(base_url=srv.url, tools=[{"name": "weather", "parameters": {"type": "object"}}]),
        )
        chunks, r = await drain(s)
    assert thought.startswith("The user is asking for the weather in San Francisco.")
    assert "".join(c.reasoning for c in chunks) == thought == r.reasoning
    assert r.tool_calls == [
        ToolCall("call_00_ioIn7yN9p1ZOMNpDLwd4MgAF", "weather", '{"location": "San Francisco"}')
    ]
    assert r.finish_reason == "tool_calls"
    assert r.usage == Usage(
        input_tokens=339, output_tokens=83, cached_tokens=320, reasoning_tokens=39
    )


async def test_deepseek_stream_usage_on_the_finish_chunk(client: llmrelay.Client) -> None:
    rid = covers("deepseek-stream-usage-cache")
    async with server(rid) as srv:
        r = await client.astream(
            "deepseek/deepseek-v4-flash", "x", **key(base_url=srv.url)
        ).collect()
    assert r.text == "sanitized"
    assert r.finish_reason == "length"
    assert r.usage == Usage(input_tokens=88, output_tokens=4, reasoning_tokens=4)
    assert not r.usage.estimated


# ------------------------------------------------------------------------------------ OpenRouter


async def test_openrouter_429_reason_from_metadata_raw(client: llmrelay.Client) -> None:
    rid = covers("openrouter-429-metadata-raw")
    raw = json.loads(exchanges(entry(rid))[0].response.body)["error"]["metadata"]["raw"]
    async with server(rid) as srv:
        with pytest.raises(llmrelay.RateLimitedError) as info:
            await client.achat(
                "openrouter/google/gemini-2.0-flash-exp:free",
                [
                    {"role": "system", "content": "Be helpful."},
                    {"role": "user", "content": "Tell me a joke."},
                ],
                **key(base_url=srv.url + "/api/v1", retries=2),
            )
    e = info.value
    assert e.status == 429
    assert e.message == f"Provider returned error (Google: {raw})"
    assert "temporarily rate-limited upstream" in str(e)
    assert len(srv.received) == 3  # the recording's three attempts, then the retries ran out
    assert [a.outcome for a in e.trace] == ["error"] * 3
    for i, q in enumerate(srv.received):
        same_body(q.json(), recorded_body(rid, i), stream=None)


async def test_openrouter_kimi_reasoning(client: llmrelay.Client) -> None:
    rid = covers("openrouter-kimi-k2-5-reasoning")
    msg = message_of(rid)
    async with server(rid) as srv:
        r = await client.achat(
            "openrouter/moonshotai/kimi-k2.5",
            "What is 2+2? Answer with just the number.",
            **key(base_url=srv.url + "/api/v1"),
        )
    assert r.text == "4"
    assert r.reasoning == msg["reasoning"]
    assert msg["reasoning_details"][0]["text"] == msg["reasoning"]
    assert r.usage == Usage(input_tokens=20, output_tokens=48, reasoning_tokens=42)
    assert r.id == evs(rid)[0]["id"]
    same_body(srv.received[0].json(), recorded_body(rid), stream=None)


async def test_openrouter_in_band_error_next_to_choices(client: llmrelay.Client) -> None:
    """The recorded client sent ``max_completion_tokens``; llmrelay sends OpenRouter's
    documented ``max_tokens`` (OpenRouter takes both)."""
    rid = covers("openrouter-stream-inband-error")
    thought = stream_deltas(rid, "reasoning")
    seen: list[StreamChunk] = []
    async with server(rid) as srv:
        s = client.astream(
            "openrouter/minimax/minimax-m2:free",
            "Hello there",
            **key(base_url=srv.url + "/api/v1", max_tokens=10),
        )

        async def read() -> None:
            async for c in s:
                seen.append(c)

        with pytest.raises(llmrelay.BadRequestError) as info:
            await read()
    e = info.value
    assert isinstance(e, llmrelay.StreamInterruptedError)  # output had been sent
    assert e.status == 400
    assert "Token limit reached" in e.message
    assert thought == "We need to respond to a greeting. The user"
    assert "".join(c.reasoning for c in seen) == thought
    assert e.partial.text == ""
    same_body(srv.received[0].json(), recorded_body(rid), max_completion_tokens="max_tokens")


async def test_openrouter_cache_control_and_cache_write_usage(client: llmrelay.Client) -> None:
    rid = covers("openrouter-stream-cache-write-tokens-usage-only")
    rec = recorded_body(rid)
    messages = [
        llmrelay.Message(
            m["role"],
            [llmrelay.TextPart(p["text"], cache_control=p["cache_control"]) for p in m["content"]],
        )
        for m in rec["messages"]
    ]
    usage = evs(rid)[-1]["usage"]
    async with server(rid) as srv:
        s = client.astream(
            "openrouter/anthropic/claude-sonnet-4.6", messages, **key(base_url=srv.url + "/api/v1")
        )
        _, r = await drain(s)
    assert r.text == "Hello!"
    assert r.model == "anthropic/claude-4.6-sonnet-20260217"
    assert usage["prompt_tokens_details"] == {
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "audio_tokens": 0,
        "video_tokens": 0,
    }
    assert r.usage == Usage(input_tokens=254, output_tokens=5)
    same_body(srv.received[0].json(), rec)  # cache_control kept on both text parts


# ------------------------------------------------------------ OpenAI streams with "obfuscation"
#
# api.openai.com's Chat Completions chunks (since August 2025) end with a random-length
# ``"obfuscation"`` string, on the usage-only chunk too. These recordings are served twice: as
# recorded (the whole body in one write, so all its events can arrive in one read), and written
# in 13-byte pieces (each its own HTTP chunk, so events, JSON strings and the padding can
# arrive split). Either way a caller must see each recorded content delta as one chunk: none
# merged, none split.


def split_every(n: int) -> Any:
    def reframe(resp: RecordedResponse) -> RecordedResponse:
        body = resp.body
        return RecordedResponse(
            resp.status, resp.headers, tuple(body[i : i + n] for i in range(0, len(body), n))
        )

    return reframe


FRAMINGS = pytest.mark.parametrize(
    "reframe", [lambda r: r, split_every(13)], ids=["as-recorded", "split-every-13-bytes"]
)


def obfuscated_server(rid: str, reframe: Any) -> ReplayServer:
    return ReplayServer([reframe(x.response) for x in exchanges(entry(rid))])


def content_deltas(ev_list: list[Any]) -> list[str]:
    """Every non-empty ``delta.content`` of a recorded stream, in order."""
    out = []
    for ev in ev_list:
        for ch in ev.get("choices") or []:
            v = (ch.get("delta") or {}).get("content")
            if isinstance(v, str) and v:
                out.append(v)
    return out


def recorded_usage(ev_list: list[Any]) -> Usage:
    """The usage of the recording's usage-only chunk, read as llmrelay maps OpenAI's fields."""
    (u,) = [ev["usage"] for ev in ev_list if ev.get("choices") == [] and ev.get("usage")]
    return Usage(
        input_tokens=u["prompt_tokens"],
        output_tokens=u["completion_tokens"],
        cached_tokens=u["prompt_tokens_details"]["cached_tokens"],
        reasoning_tokens=u["completion_tokens_details"]["reasoning_tokens"],
    )


def finish_of(ev_list: list[Any]) -> str:
    (f,) = [c["finish_reason"] for ev in ev_list for c in ev["choices"] if c.get("finish_reason")]
    return f  # type: ignore[no-any-return]


@FRAMINGS
async def test_openai_stream_with_obfuscation_tool_call_then_text(
    client: llmrelay.Client, reframe: Any
) -> None:
    """pydantic-ai's recorded tool loop, replayed turn by turn. llmrelay's bodies match the
    recorded ones field by field, except that it does not send the tool's empty description."""
    rid = covers("openai-chat-stream-obfuscation-tool-loop")
    ev1, ev2 = evs(rid, 0), evs(rid, 1)
    assert all(isinstance(ev["obfuscation"], str) for ev in ev1 + ev2)
    rec = [recorded_body(rid, i) for i in range(2)]
    tool = dict(rec[0]["tools"][0]["function"])
    assert tool.pop("description") == ""
    question = rec[0]["messages"][0]["content"]
    model = "openai/gpt-4o-mini"
    kw = key(tools=[tool], tool_choice="auto")

    async with obfuscated_server(rid, reframe) as srv:
        kw["base_url"] = srv.url + "/v1"
        chunks1, r1 = await drain(client.astream(model, question, **kw))
        messages = [
            llmrelay.Message("user", question),
            r1.message(),
            llmrelay.Message.tool(r1.tool_calls[0].id, rec[1]["messages"][2]["content"]),
        ]
        chunks2, r2 = await drain(client.astream(model, messages, **kw))

    # Turn 1: a tool call, its arguments in five pieces, no text.
    recorded_calls = [
        tc for ev in ev1 for c in ev["choices"] for tc in c["delta"].get("tool_calls", [])
    ]
    pieces = [tc["function"]["arguments"] for tc in recorded_calls if tc["function"]["arguments"]]
    assert pieces == ['{"', "country", '":"', "UK", '"}']
    deltas = [d for c in chunks1 for d in c.tool_calls]
    assert [d.arguments for d in deltas if d.arguments] == pieces
    assert [(d.id, d.name) for d in deltas if d.name] == [(recorded_calls[0]["id"], "get_capital")]
    assert r1.tool_calls == [
        ToolCall("call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital", "".join(pieces))
    ]
    assert [c.delta for c in chunks1 if c.delta] == []
    assert r1.text == ""
    assert r1.finish_reason == finish_of(ev1) == "tool_calls"
    assert r1.usage == recorded_usage(ev1) == Usage(input_tokens=53, output_tokens=15)
    assert not r1.usage.estimated
    assert (r1.id, r1.model) == (ev1[0]["id"], ev1[0]["model"])

    # Turn 2: text, one caller-visible chunk per recorded content delta.
    text = content_deltas(ev2)
    assert text == ["The", " capital", " of", " the", " UK", " is", " London", "."]
    assert ev2[0]["choices"][0]["delta"]["content"] == ""  # the role chunk: no text chunk
    assert [c.delta for c in chunks2 if c.delta] == text
    assert "".join(c.delta for c in chunks2) == "".join(text) == r2.text
    assert r2.tool_calls == []
    assert r2.finish_reason == finish_of(ev2) == "stop"
    assert r2.usage == recorded_usage(ev2) == Usage(input_tokens=78, output_tokens=9)
    assert (r2.id, r2.model) == (ev2[0]["id"], "gpt-4o-mini-2024-07-18")

    sent = [q.json() for q in srv.received]
    assert len(sent) == 2
    for i in range(2):
        want = json.loads(json.dumps(rec[i]))
        del want["tools"][0]["function"]["description"]
        same_body(sent[i], want)


@FRAMINGS
async def test_openai_stream_with_obfuscation_chunk_after_usage(
    client: llmrelay.Client, reframe: Any
) -> None:
    """After the usage-only chunk OpenAI sends one more chunk (``choices: []``, ``usage:
    null``, the moderation results the request asked for): the usage must survive it."""
    rid = covers("openai-chat-stream-obfuscation-moderation-after-usage")
    ev = evs(rid)
    assert all(isinstance(e["obfuscation"], str) for e in ev)
    assert ev[-1]["usage"] is None
    assert ev[-1]["choices"] == []
    assert "moderation" in ev[-1]
    rec = recorded_body(rid)
    async with obfuscated_server(rid, reframe) as srv:
        s = client.astream(
            "openai/gpt-5",
            rec["messages"][0]["content"],
            **key(base_url=srv.url + "/v1", extra={"moderation": rec["moderation"]}),
        )
        chunks, r = await drain(s)
    text = content_deltas(ev)
    assert text == ["Paris", "."]
    assert [c.delta for c in chunks if c.delta] == text
    assert r.text == "Paris."
    assert r.finish_reason == finish_of(ev) == "stop"
    assert r.usage == recorded_usage(ev) == Usage(input_tokens=13, output_tokens=11)
    assert not r.usage.estimated
    assert [c.usage for c in chunks if c.usage is not None][-1] == r.usage
    assert (r.id, r.model) == (ev[0]["id"], "gpt-5-2025-08-07")
    assert len(srv.received) == 1
    same_body(srv.received[0].json(), rec)


def test_every_openai_chat_recording_is_replayed() -> None:
    source = Path(__file__).read_text()
    wanted = {e.id for e in load_manifest() if e.wire == "openai_chat"}
    assert len(wanted) >= 21
    assert {rid for rid in wanted if f'"{rid}"' not in source} == set()
