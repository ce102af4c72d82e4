"""The openai_chat adapter without sockets: request bytes built, recorded answers parsed.

Recorded answers come from tests/recordings (real providers speaking Chat Completions: OpenAI,
Groq, DeepSeek, Azure, OpenRouter); streams go through the real SSE decoder, whole and cut into
small reads.
"""

from __future__ import annotations

import pytest

from llmrelay.errors import (
    BadRequestError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
    StreamInterruptedError,
)
from llmrelay.providers.adapters.openai_chat import OpenAIChatAdapter
from llmrelay.types import Message, ToolCall, ToolCallDelta, Usage

from ..conftest import CANARY_KEY
from ..recordings.replay import events
from .sansio import (
    BASE,
    body_of,
    chat,
    deployment,
    plain_headers,
    recorded,
    recorded_frames,
    recorded_response,
    response,
    sends_key,
    sse,
    stream,
    text_of,
)

A = OpenAIChatAdapter()
DEP = deployment("openai", "gpt-4.1-mini")
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


# ------------------------------------------------------------------------------------ requests


def test_plain_request() -> None:
    req = chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
        temperature=0.2,
        max_tokens=50,
        stop="END",
        seed=7,
    )
    http = A.build_request(req, DEP)
    assert http.method == "POST"
    assert http.url == f"{BASE}/chat/completions"
    assert plain_headers(http) == {"content-type": "application/json", "accept": "application/json"}
    assert sends_key(http, "authorization", "Bearer ")
    assert body_of(http) == {
        "model": "gpt-4.1-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ],
        "temperature": 0.2,
        "max_completion_tokens": 50,  # OpenAI's row names the current field
        "stop": ["END"],
        "seed": 7,
    }
    assert http.adjusted == {}


def test_tools_and_tool_turns_in_the_request() -> None:
    msgs = [
        Message("user", "weather in Paris?"),
        Message("assistant", None, tool_calls=[ToolCall("call_1", "weather", '{"city":"Paris"}')]),
        Message("tool", "sunny", tool_call_id="call_1"),
    ]
    http = A.build_request(chat(msgs, tools=[WEATHER], tool_choice="weather"), DEP)
    body = body_of(http)
    assert body["tools"] == [WEATHER]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert body["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert body["messages"][2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
    for choice in ("auto", "none", "required"):
        b = body_of(A.build_request(chat("hi", tools=[WEATHER], tool_choice=choice), DEP))
        assert b["tool_choice"] == choice


def test_stream_request_asks_for_usage() -> None:
    http = A.build_request(chat("hi", stream=True), DEP)
    assert plain_headers(http)["accept"] == "text/event-stream"
    body = body_of(http)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_azure_sends_its_key_header_and_api_version() -> None:
    dep = deployment("azure", "gpt-4o").replace(options={"api_version": "2024-10-21"})
    http = A.build_request(chat("hi"), dep)
    assert http.url == f"{BASE}/chat/completions?api-version=2024-10-21"
    assert sends_key(http, "api-key")
    assert "authorization" not in http.headers


def test_unencodable_text_is_refused_before_sending() -> None:
    with pytest.raises(InvalidRequestError, match="JSON"):
        A.build_request(chat("bad \ud800 surrogate"), DEP)


# ------------------------------------------------------------------------------------ answers


def test_recorded_text_answer_and_usage() -> None:
    resp = recorded_response("openai-chat-text")
    sent = events(recorded("openai-chat-text").response)[0]
    r = A.parse_response(resp, chat("hi"), DEP)
    assert r.text == sent["choices"][0]["message"]["content"]
    assert r.text.startswith("**Holiday Name:** Galaxy Day")
    assert r.finish_reason == "stop"
    assert r.raw_finish_reason == "stop"
    assert r.model == "gpt-4.1-nano-2025-04-14"
    assert r.id == "chatcmpl-D8Z5f52zQqikDBEKQMQoYcWMcWPeU"
    assert r.provider == "openai"
    assert r.tool_calls == []
    assert r.usage == Usage(input_tokens=16, output_tokens=363)


def test_recorded_tool_call_answer() -> None:
    r = A.parse_response(recorded_response("groq-tool-call"), chat("hi"), DEP)
    assert r.tool_calls == [ToolCall("ax9fskhev", "weather", "{}")]
    assert r.finish_reason == "tool_calls"
    assert r.text == ""
    assert r.usage == Usage(input_tokens=218, output_tokens=15)


def test_recorded_usage_counts_cache_and_reasoning() -> None:
    r = A.parse_response(recorded_response("deepseek-reasoner-reasoning-content"), chat("x"), DEP)
    assert r.usage == Usage(input_tokens=18, output_tokens=345, reasoning_tokens=315)
    assert r.text.startswith('The word "strawberry" contains three')
    r2 = A.parse_response(recorded_response("deepseek-chat-text-length"), chat("x"), DEP)
    assert r2.finish_reason == "length"
    assert r2.usage == Usage(input_tokens=13, output_tokens=300)


def test_deepseek_cache_hit_field_counts_as_cached() -> None:
    body = {
        "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 2, "prompt_cache_hit_tokens": 32},
    }
    r = A.parse_response(response(body), chat("x"), DEP)
    assert r.usage == Usage(input_tokens=40, output_tokens=2, cached_tokens=32)


def test_error_inside_a_200_body_is_raised() -> None:
    with pytest.raises(ServerError, match="upstream broke"):
        A.parse_response(response({"error": {"message": "upstream broke"}}), chat("x"), DEP)


# ------------------------------------------------------------------------------------ streams


@pytest.mark.parametrize("piece", [None, 1, 7])
def test_recorded_stream_with_fragmented_tool_arguments(piece: int | None) -> None:
    rid = "deepseek-reasoner-tool-call-stream"
    chunks, state = stream(A, chat("x", stream=True), DEP, recorded_frames(rid), piece)
    deltas = [d for c in chunks for d in c.tool_calls]
    assert deltas[0] == ToolCallDelta(0, "call_00_ioIn7yN9p1ZOMNpDLwd4MgAF", "weather", "")
    assert all(d.index == 0 and d.id is None and d.name is None for d in deltas[1:])
    assert "".join(d.arguments for d in deltas) == '{"location": "San Francisco"}'
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    usage = Usage(input_tokens=339, output_tokens=83, cached_tokens=320, reasoning_tokens=39)
    assert [c.usage for c in chunks if c.usage] == [usage]
    assert state.done
    r = state.finish()
    assert r.tool_calls == [
        ToolCall("call_00_ioIn7yN9p1ZOMNpDLwd4MgAF", "weather", '{"location": "San Francisco"}')
    ]
    assert r.finish_reason == "tool_calls"
    assert r.usage == usage


def test_recorded_stream_with_whole_tool_call_in_one_delta() -> None:
    chunks, state = stream(A, chat("x", stream=True), DEP, recorded_frames("groq-tool-call-stream"))
    assert chunks[0].tool_calls == [ToolCallDelta(0, "tk85n1k4m", "weather", "{}")]
    r = state.finish()
    assert r.tool_calls == [ToolCall("tk85n1k4m", "weather", "{}")]
    assert r.usage == Usage(input_tokens=210, output_tokens=15)  # usage on the finish chunk
    assert r.model == "llama-3.3-70b-versatile"


@pytest.mark.parametrize("piece", [None, 3])
def test_recorded_text_stream_with_usage_only_chunk(piece: int | None) -> None:
    rid = "azure-model-router-stream"
    chunks, state = stream(A, chat("x", stream=True), DEP, recorded_frames(rid), piece)
    assert [c.delta for c in chunks if c.delta] == ["Capital", " of", " Denmark", "."]
    usage = Usage(input_tokens=15, output_tokens=78, reasoning_tokens=64)
    assert chunks[-1].usage == usage
    r = state.finish()
    assert r.text == "Capital of Denmark."
    assert r.finish_reason == "stop"
    assert r.usage == usage


def test_recorded_stream_with_sse_comments() -> None:
    rid = "openrouter-stream-cache-write-tokens-usage-only"
    chunks, state = stream(A, chat("x", stream=True), DEP, recorded_frames(rid))
    assert text_of(chunks) == "Hello!"
    r = state.finish()
    assert r.text == "Hello!"
    assert r.usage == Usage(input_tokens=254, output_tokens=5)
    assert r.model == "anthropic/claude-4.6-sonnet-20260217"


def test_parallel_tool_calls_are_kept_apart_by_index() -> None:
    def tc(i: int, **kw: object) -> dict[str, object]:
        return {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, **kw}]}}]}

    frames = sse(
        tc(0, id="call_a", type="function", function={"name": "weather", "arguments": ""}),
        tc(1, id="call_b", type="function", function={"name": "time", "arguments": '{"tz":'}),
        tc(0, function={"arguments": '{"city":"Oslo"}'}),
        tc(1, function={"arguments": '"UTC"}'}),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        done=True,
    )
    chunks, state = stream(A, chat("x", stream=True), DEP, [frames], 5)
    assert [d.index for c in chunks for d in c.tool_calls] == [0, 1, 0, 1]
    assert state.finish().tool_calls == [
        ToolCall("call_a", "weather", '{"city":"Oslo"}'),
        ToolCall("call_b", "time", '{"tz":"UTC"}'),
    ]


def test_in_stream_error_event_is_typed() -> None:
    frames = sse(
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"error": {"message": "Rate limit reached", "code": 429}},
    )
    with pytest.raises(RateLimitedError, match="Rate limit reached") as info:
        stream(A, chat("x", stream=True), DEP, [frames])
    assert info.value.status == 429


def test_cut_stream_keeps_the_partial_answer() -> None:
    frames = sse({"id": "c1", "choices": [{"index": 0, "delta": {"content": "half an"}}]})
    chunks, state = stream(A, chat("x", stream=True), DEP, [frames])
    assert text_of(chunks) == "half an"
    with pytest.raises(StreamInterruptedError) as info:
        state.finish()
    assert info.value.partial.text == "half an"


# ------------------------------------------------------------------------------------ errors


def test_recorded_errors_are_mapped() -> None:
    bad = recorded_response("openai-chat-400-unsupported-parameter")
    e = A.map_error(bad.status, bad.headers, bad.body, DEP)
    assert isinstance(e, BadRequestError)
    assert e.status == 400
    assert "max_completion_tokens" in str(e)
    missing = recorded_response("groq-404-model-not-found")
    assert isinstance(A.map_error(404, missing.headers, missing.body, DEP), NotFoundError)
    for i in range(3):
        limited = recorded_response("openrouter-429-metadata-raw", i)
        e = A.map_error(limited.status, limited.headers, limited.body, DEP)
        assert isinstance(e, RateLimitedError)
        assert "Provider returned error" in str(e)


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (
            400,
            {"code": "context_length_exceeded", "message": "too long"},
            ContextWindowExceededError,
        ),
        (
            429,
            {"type": "insufficient_quota", "message": "You exceeded your quota"},
            QuotaExhaustedError,
        ),
        (400, {"code": "content_filter", "message": "filtered"}, ContentFilteredError),
        (429, {"message": "slow down"}, RateLimitedError),
    ],
)
def test_error_classes(status: int, error: dict[str, str], expected: type[Exception]) -> None:
    resp = response({"error": error}, status)
    assert type(A.map_error(status, resp.headers, resp.body, DEP)) is expected


def test_error_keeps_retry_after_and_hides_an_echoed_key() -> None:
    resp = response(
        {"error": {"message": f"Incorrect API key provided: {CANARY_KEY}"}},
        429,
        **{"retry-after": "3"},
    )
    e = A.map_error(resp.status, resp.headers, resp.body, DEP)
    assert isinstance(e, RateLimitedError)
    assert e.retry_after == 3.0
    assert "Incorrect API key provided" in str(e)
    assert CANARY_KEY not in str(e)
    assert CANARY_KEY not in repr(e.body)
