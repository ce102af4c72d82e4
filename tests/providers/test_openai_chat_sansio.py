"""The openai_chat adapter without sockets: request bytes built, recorded answers parsed.

Recorded answers come from tests/recordings (real providers speaking Chat Completions: OpenAI,
Groq, DeepSeek, Azure, OpenRouter); streams go through the real SSE decoder, whole and cut into
small reads.
"""

from __future__ import annotations

import orjson
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
    UnsupportedCapabilityError,
)
from llmrelay.providers.adapters.openai_chat import OpenAIChatAdapter
from llmrelay.transport.base import HttpResponse
from llmrelay.types import (
    AudioPart,
    DocumentPart,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)

from ..conftest import CANARY_KEY
from ..recordings.replay import events
from .sansio import (
    BASE,
    Wire,
    body_of,
    chat,
    deployment,
    feed,
    plain_headers,
    reasoning_of,
    recorded,
    recorded_frames,
    recorded_response,
    response,
    sends_key,
    sse,
    stream,
    text_of,
)

W = Wire(OpenAIChatAdapter(), deployment("openai", "gpt-4.1-mini"))
A, DEP = W.adapter, W.dep
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
        b = W.body(chat("hi", tools=[WEATHER], tool_choice=choice))
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
    r = W.parse(resp, chat("hi"))
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
    r = W.parse(recorded_response("groq-tool-call"), chat("hi"))
    assert r.tool_calls == [ToolCall("ax9fskhev", "weather", "{}")]
    assert r.finish_reason == "tool_calls"
    assert r.text == ""
    assert r.usage == Usage(input_tokens=218, output_tokens=15)


def test_recorded_usage_counts_cache_and_reasoning() -> None:
    r = W.parse(recorded_response("deepseek-reasoner-reasoning-content"), chat("x"))
    assert r.usage == Usage(input_tokens=18, output_tokens=345, reasoning_tokens=315)
    assert r.text.startswith('The word "strawberry" contains three')
    r2 = W.parse(recorded_response("deepseek-chat-text-length"), chat("x"))
    assert r2.finish_reason == "length"
    assert r2.usage == Usage(input_tokens=13, output_tokens=300)


def test_deepseek_cache_hit_field_counts_as_cached() -> None:
    body = {
        "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 2, "prompt_cache_hit_tokens": 32},
    }
    r = W.parse(response(body), chat("x"))
    assert r.usage == Usage(input_tokens=40, output_tokens=2, cached_tokens=32)


def test_error_inside_a_200_body_is_raised() -> None:
    with pytest.raises(ServerError, match="upstream broke"):
        W.parse(response({"error": {"message": "upstream broke"}}), chat("x"))


# ------------------------------------------------------------------------------------ streams


@pytest.mark.parametrize("piece", [None, 1, 7])
def test_recorded_stream_with_fragmented_tool_arguments(piece: int | None) -> None:
    rid = "deepseek-reasoner-tool-call-stream"
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid), piece)
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
    chunks, state = W.stream(chat("x", stream=True), recorded_frames("groq-tool-call-stream"))
    assert chunks[0].tool_calls == [ToolCallDelta(0, "tk85n1k4m", "weather", "{}")]
    r = state.finish()
    assert r.tool_calls == [ToolCall("tk85n1k4m", "weather", "{}")]
    assert r.usage == Usage(input_tokens=210, output_tokens=15)  # usage on the finish chunk
    assert r.model == "llama-3.3-70b-versatile"


@pytest.mark.parametrize("piece", [None, 3])
def test_recorded_text_stream_with_usage_only_chunk(piece: int | None) -> None:
    rid = "azure-model-router-stream"
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid), piece)
    assert [c.delta for c in chunks if c.delta] == ["Capital", " of", " Denmark", "."]
    usage = Usage(input_tokens=15, output_tokens=78, reasoning_tokens=64)
    assert chunks[-1].usage == usage
    r = state.finish()
    assert r.text == "Capital of Denmark."
    assert r.finish_reason == "stop"
    assert r.usage == usage


def test_recorded_stream_with_sse_comments() -> None:
    rid = "openrouter-stream-cache-write-tokens-usage-only"
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid))
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
    chunks, state = W.stream(chat("x", stream=True), [frames], 5)
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
        W.stream(chat("x", stream=True), [frames])
    assert info.value.status == 429


def test_cut_stream_keeps_the_partial_answer() -> None:
    frames = sse({"id": "c1", "choices": [{"index": 0, "delta": {"content": "half an"}}]})
    chunks, state = W.stream(chat("x", stream=True), [frames])
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


# ------------------------------------------------------------------------------------ issue 10


def _answer(message: dict[str, object], finish: str = "stop", **extra: object) -> HttpResponse:
    body = {
        "id": "chatcmpl-r1",
        "model": "gpt-4.1-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **extra}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4},
    }
    return response(body, **{"x-request-id": "req_refused"})


def test_refusal_is_a_typed_error_with_the_refusal_text() -> None:
    refused = _answer({"role": "assistant", "content": None, "refusal": "I can't help with that."})
    with pytest.raises(ContentFilteredError) as info:
        W.parse(refused, chat("x"))
    e = info.value
    assert e.category == "refusal"
    assert e.explanation == "I can't help with that."
    assert e.partial_text == ""
    assert e.request_id == "req_refused"
    assert "I can't help with that." in str(e)
    assert "chatcmpl-r1" in str(e)


def test_refusal_null_is_an_answer() -> None:
    r = W.parse(_answer({"role": "assistant", "content": "fine", "refusal": None}), chat("x"))
    assert r.text == "fine"


def test_azure_content_filter_finish_is_typed_with_the_categories() -> None:
    msg = {"role": "assistant", "content": "Partial ans"}
    results = {
        "hate": {"filtered": False, "severity": "safe"},
        "violence": {"filtered": True, "severity": "high"},
    }
    cut = _answer(msg, "content_filter", content_filter_results=results)
    with pytest.raises(ContentFilteredError) as info:
        W.parse(cut, chat("x"), deployment("azure", "gpt-4o"))
    assert info.value.category == "content_filter"
    assert info.value.explanation == "violence"
    assert info.value.partial_text == "Partial ans"


@pytest.mark.parametrize("piece", [None, 4])
def test_streamed_refusal_raises_at_the_end_with_the_partial_text(piece: int | None) -> None:
    def delta(d: dict[str, object], finish: str | None = None) -> dict[str, object]:
        return {"id": "c9", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    frames = sse(
        delta({"role": "assistant", "content": "Sure", "refusal": None}),
        delta({"refusal": ""}),
        delta({"refusal": "I can't"}),
        delta({"refusal": " help."}),
        delta({}, "stop"),
        done=True,
    )
    chunks, state = W.stream(chat("x", stream=True), [frames], piece)
    assert text_of(chunks) == "Sure"  # the refusal is not answer text
    with pytest.raises(ContentFilteredError) as info:
        state.finish()
    assert info.value.category == "refusal"
    assert info.value.explanation == "I can't help."
    assert info.value.partial_text == "Sure"


def test_streamed_content_filter_finish_raises_at_the_end() -> None:
    frames = sse(
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Once"}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]},
        done=True,
    )
    chunks, state = W.stream(chat("x", stream=True), [frames])
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["content_filter"]
    with pytest.raises(ContentFilteredError) as info:
        state.finish()
    assert info.value.partial_text == "Once"
    assert info.value.category == "content_filter"


@pytest.mark.parametrize(
    ("rid", "starts"),
    [
        ("groq-reasoning", 'Okay, so the user is asking how many times the letter "r"'),
        ("deepseek-reasoner-reasoning-content", "We are asked: \"How many 'r's"),
        ("openrouter-kimi-k2-5-reasoning", "The user is asking for the answer to 2+2."),
        ("groq-qwen-reasoning-only-length", "Here's a thinking process:"),
    ],
)
def test_recorded_reasoning_is_kept(rid: str, starts: str) -> None:
    msg = events(recorded(rid).response)[0]["choices"][0]["message"]
    r = W.parse(recorded_response(rid), chat("x"))
    assert r.reasoning.startswith(starts)
    assert r.reasoning == (msg.get("reasoning") or msg.get("reasoning_content"))
    assert r.reasoning_parts == []  # nothing to replay on this wire


def test_reasoning_details_text_when_no_reasoning_field() -> None:
    details = [
        {"type": "reasoning.text", "text": "step one. "},
        {"type": "reasoning.encrypted", "data": "opaque"},
        {"type": "reasoning.summary", "summary": "summed up"},
    ]
    msg = {"role": "assistant", "content": "ok", "reasoning_details": details}
    r = W.parse(_answer(msg), chat("x"))
    assert r.reasoning == "step one. summed up"


@pytest.mark.parametrize("piece", [None, 5])
def test_recorded_stream_reasoning_content(piece: int | None) -> None:
    rid = "deepseek-reasoner-tool-call-stream"
    sent = "".join(
        ev["choices"][0]["delta"].get("reasoning_content") or ""
        for ev in events(recorded(rid).response)
        if ev.get("choices")
    )
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid), piece)
    assert sent.startswith("The user is asking for the weather in San Francisco.")
    assert reasoning_of(chunks) == sent
    assert state.finish().reasoning == sent


def test_repeated_tool_name_and_id_in_every_delta_are_taken_once() -> None:
    """No public recording of this was found (tests/recordings/README.md): these bytes follow
    the shape OpenRouter sends when relaying Novita's kimi-k2, as reported in issue 10 -- every
    tool delta repeats ``id``, ``type`` and the whole ``function.name`` while ``arguments``
    grows piece by piece."""

    def tc(args: str) -> dict[str, object]:
        call = {
            "index": 0,
            "id": "functions.llm_version:0",
            "type": "function",
            "function": {"name": "llm_version", "arguments": args},
        }
        return {"id": "gen-1", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}

    frames = sse(
        tc(""),
        tc('{"pkg"'),
        tc(': "llm"}'),
        {"id": "gen-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        done=True,
    )
    chunks, state = W.stream(chat("x", stream=True), [frames], 6)
    deltas = [d for c in chunks for d in c.tool_calls]
    assert deltas[0] == ToolCallDelta(0, "functions.llm_version:0", "llm_version", "")
    assert [(d.id, d.name) for d in deltas[1:]] == [(None, None), (None, None)]
    assert state.finish().tool_calls == [
        ToolCall("functions.llm_version:0", "llm_version", '{"pkg": "llm"}')
    ]


@pytest.mark.parametrize("rid", ["azure-text-stream-prompt-filter", "azure-model-router-stream"])
def test_azure_metadata_from_the_first_chunk_that_has_it(rid: str) -> None:
    evs = events(recorded(rid).response)
    assert evs[0]["id"] == ""
    assert evs[0]["model"] == ""
    first = next(ev for ev in evs if ev.get("id"))
    _, state = stream(A, chat("x", stream=True), deployment("azure", "gpt-4"), recorded_frames(rid))
    r = state.finish()
    assert r.id == first["id"]
    assert r.model == first["model"]


def test_recorded_in_band_error_next_to_choices_is_raised() -> None:
    rid = "openrouter-stream-inband-error"
    state = A.stream_state(chat("x", stream=True), DEP)
    with pytest.raises(BadRequestError, match="Token limit reached") as info:
        feed(state, recorded_frames(rid))
    assert info.value.status == 400
    partial = state.partial()
    assert partial.reasoning == "We need to respond to a greeting. The user"
    assert partial.usage == Usage(input_tokens=43, output_tokens=10, reasoning_tokens=11)


def test_cache_write_tokens_are_read_once() -> None:
    body = {
        "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 194,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 50, "cache_write_tokens": 100},
        },
    }
    r = W.parse(response(body), chat("x"))
    # Both are parts of prompt_tokens (OpenRouter "Usage Accounting"): not added again.
    assert r.usage == Usage(
        input_tokens=194, output_tokens=2, cached_tokens=50, cache_write_tokens=100
    )
    assert r.usage.total_tokens == 196


def test_openrouter_metadata_raw_is_in_the_message() -> None:
    limited = recorded_response("openrouter-429-metadata-raw")
    e = A.map_error(limited.status, limited.headers, limited.body, deployment("openrouter", "m"))
    assert isinstance(e, RateLimitedError)
    assert "Provider returned error (Google: google/gemini-2.0-flash-exp:free is " in e.message
    assert "temporarily rate-limited upstream" in e.message


def test_metadata_raw_is_redacted_and_json_raw_is_shown() -> None:
    err = {
        "message": "Provider returned error",
        "code": 400,
        "metadata": {"raw": {"error": f"bad key {CANARY_KEY}"}, "provider_name": "X"},
        "request_id": "req_in_body",
    }
    resp = response({"error": err}, 400)
    e = A.map_error(400, resp.headers, resp.body, DEP)
    assert CANARY_KEY not in str(e)
    assert "bad key [REDACTED]" in e.message
    assert e.request_id == "req_in_body"  # no id header: the body's id


# ------------------------------------------------------------------------------------ content


def test_developer_role_per_vendor() -> None:
    msgs = [Message("developer", "Be terse."), Message("user", "hi")]
    for provider, role in [
        ("openai", "developer"),
        ("azure", "developer"),
        ("groq", "system"),
        ("deepseek", "system"),
        ("openrouter", "system"),
        ("vllm", "system"),
    ]:
        body = W.body(chat(msgs), deployment(provider, "m"))
        assert body["messages"][0] == {"role": role, "content": "Be terse."}, provider


PDF = b"%PDF-1.4 tiny"


def test_document_is_a_file_part_for_openai_and_openrouter() -> None:
    doc = DocumentPart(data=PDF, media_type="application/pdf", name="r.pdf")
    msgs = [Message("user", [TextPart("Summarise"), doc])]
    want = {
        "type": "file",
        "file": {
            "filename": "r.pdf",
            "file_data": "data:application/pdf;base64,JVBERi0xLjQgdGlueQ==",
        },
    }
    for provider in ("openai", "openrouter"):
        body = W.body(chat(msgs), deployment(provider, "m"))
        assert body["messages"][0]["content"][1] == want
    url_doc = Message("user", [DocumentPart(url="https://example.test/a.pdf", name="a.pdf")])
    body = W.body(chat([url_doc]), deployment("openrouter", "m"))
    assert body["messages"][0]["content"][0]["file"]["file_data"] == "https://example.test/a.pdf"
    with pytest.raises(UnsupportedCapabilityError, match="by URL"):
        A.build_request(chat([url_doc]), DEP)
    txt = Message("user", [DocumentPart(data=b"hi", media_type="text/plain")])
    with pytest.raises(UnsupportedCapabilityError, match="only PDF"):
        A.build_request(chat([txt]), DEP)


@pytest.mark.parametrize("provider", ["groq", "deepseek", "mistral", "vllm", "azure"])
def test_document_is_refused_before_sending_where_not_documented(provider: str) -> None:
    msgs = [Message("user", [DocumentPart(data=PDF, media_type="application/pdf")])]
    with pytest.raises(UnsupportedCapabilityError) as info:
        A.build_request(chat(msgs), deployment(provider, "m"))
    assert info.value.capability == "documents"
    assert info.value.provider == provider


def test_audio_is_input_audio_or_refused() -> None:
    msgs = [Message("user", [AudioPart(b"RIFF....", "audio/wav"), TextPart("what is said?")])]
    for provider in ("openai", "azure", "openrouter"):
        body = W.body(chat(msgs), deployment(provider, "m"))
        assert body["messages"][0]["content"][0] == {
            "type": "input_audio",
            "input_audio": {"data": "UklGRi4uLi4=", "format": "wav"},
        }
    mp3 = [Message("user", [AudioPart(b"ID3", "audio/mpeg")])]
    body = W.body(chat(mp3))
    assert body["messages"][0]["content"][0]["input_audio"]["format"] == "mp3"
    with pytest.raises(UnsupportedCapabilityError) as info:
        A.build_request(chat(msgs), deployment("groq", "m"))
    assert info.value.capability == "audio"
    ogg = [Message("user", [AudioPart(b"OggS", "audio/ogg")])]
    with pytest.raises(UnsupportedCapabilityError, match="'ogg' audio"):
        A.build_request(chat(ogg), DEP)  # OpenAI documents wav and mp3
    body = W.body(chat(ogg), deployment("openrouter", "m"))
    assert body["messages"][0]["content"][0]["input_audio"]["format"] == "ogg"


def test_reasoning_parts_signatures_and_is_error_in_a_tool_loop() -> None:
    msgs = [
        Message("user", "weather?"),
        Message(
            "assistant",
            [ReasoningPart("thinking", signature="sig", provider="anthropic"), TextPart("Let me")],
            tool_calls=[ToolCall("c1", "weather", "{}", signature="gsig")],
        ),
        Message("tool", "city not found", tool_call_id="c1", is_error=True),
        Message("assistant", [ReasoningPart("only thoughts")], tool_calls=[ToolCall("c2", "w")]),
    ]
    body = W.body(chat(msgs))
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Let me"}],
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
        ],
    }
    assert body["messages"][2] == {
        "role": "tool",
        "content": "city not found",
        "tool_call_id": "c1",
    }
    assert body["messages"][3]["content"] is None
    # An Anthropic turn that only thought (cut by max_tokens) sends no empty content array
    # (the Chat Completions schema's array content has minItems 1).
    thought = [ReasoningPart("hmm", signature="s", provider="anthropic_messages")]
    msgs = [Message("user", "hi"), Message("assistant", thought), Message("user", "go on")]
    assert W.body(chat(msgs))["messages"][1]["content"] == ""


def test_cache_control_only_where_the_vendor_takes_it() -> None:
    cc = {"type": "ephemeral", "ttl": "5m"}
    msgs = [Message("system", [TextPart("long context", cache_control=cc)])]
    body = W.body(chat(msgs), deployment("openrouter", "m"))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "long context", "cache_control": cc}
    ]
    body = W.body(chat(msgs))
    assert body["messages"][0]["content"] == [{"type": "text", "text": "long context"}]


def test_prompt_cache_key_via_extra() -> None:
    body = W.body(chat("hi", extra={"prompt_cache_key": "tenant-7"}))
    assert body["prompt_cache_key"] == "tenant-7"


# ------------------------------------------------------------------------------------ effort


@pytest.mark.parametrize(
    ("provider", "effort", "sent", "note"),
    [
        ("openai", "none", {"reasoning_effort": "none"}, None),
        ("openai", "minimal", {"reasoning_effort": "minimal"}, None),
        ("azure", "high", {"reasoning_effort": "high"}, None),
        ("openrouter", "low", {"reasoning": {"effort": "low"}}, "sent as reasoning.effort"),
        ("openrouter", "none", {"reasoning": {"effort": "none"}}, "sent as reasoning.effort"),
        ("deepseek", "high", {"reasoning_effort": "high"}, None),
        ("deepseek", "none", {"thinking": {"type": "disabled"}}, "sent as thinking"),
        ("groq", "none", {"reasoning_effort": "none"}, None),
        ("groq", "medium", {"reasoning_effort": "medium"}, None),
        ("groq", "minimal", {"reasoning_effort": "low"}, "sent as 'low'"),
        ("mistral", "high", {}, "dropped"),
        ("vllm", "low", {}, "dropped"),
    ],
)
def test_reasoning_effort_per_vendor(
    provider: str, effort: str, sent: dict[str, object], note: str | None
) -> None:
    http = A.build_request(chat("hi", reasoning_effort=effort), deployment(provider, "m"))
    body = body_of(http)
    keys = ("reasoning_effort", "reasoning", "thinking")
    assert {k: body[k] for k in keys if k in body} == sent
    if note is None:
        assert "reasoning_effort" not in http.adjusted
    else:
        assert http.adjusted["reasoning_effort"].startswith(note)


@pytest.mark.parametrize(
    ("model", "effort", "sent", "note"),
    [
        ("qwen/qwen3-32b", "none", "none", None),
        ("qwen/qwen3-32b", "high", "default", "sent as 'default'"),
        ("qwen/qwen3-32b", "low", "default", "sent as 'default'"),
        ("openai/gpt-oss-120b", "high", "high", None),
        ("openai/gpt-oss-20b", "none", "low", "sent as 'low'"),
        ("openai/gpt-oss-20b", "minimal", "low", "sent as 'low'"),
    ],
)
def test_groq_reasoning_effort_per_model(
    model: str, effort: str, sent: str, note: str | None
) -> None:
    """Groq "Reasoning": Qwen 3 takes reasoning_effort none or default only, GPT-OSS low,
    medium or high only; anything else is a 400."""
    http = A.build_request(chat("hi", reasoning_effort=effort), deployment("groq", model))
    assert body_of(http)["reasoning_effort"] == sent
    if note is None:
        assert "reasoning_effort" not in http.adjusted
    else:
        assert http.adjusted["reasoning_effort"].startswith(note)


def test_reasoning_effort_through_extra_is_sent_as_given() -> None:
    http = A.build_request(
        chat("hi", reasoning_effort="low", extra={"reasoning_effort": "low"}),
        deployment("vllm", "m"),
    )
    assert body_of(http)["reasoning_effort"] == "low"
    assert http.adjusted == {}


def test_plain_request_has_no_new_fields() -> None:
    body = W.body(chat("hi"), deployment("openrouter", "m"))
    assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_tool_deltas_without_index_are_told_apart_by_id() -> None:
    """Some compatible servers send tool deltas without ``index``: a delta with a new id
    starts the next call, one without an id continues the last."""

    def tc(**kw: object) -> dict[str, object]:
        return {"choices": [{"index": 0, "delta": {"tool_calls": [kw]}}]}

    frames = sse(
        tc(id="a", type="function", function={"name": "weather", "arguments": '{"city":'}),
        tc(function={"arguments": '"Oslo"}'}),
        tc(id="b", type="function", function={"name": "time", "arguments": "{}"}),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        done=True,
    )
    chunks, state = W.stream(chat("x", stream=True), [frames])
    assert [d.index for c in chunks for d in c.tool_calls] == [0, 0, 1]
    assert state.finish().tool_calls == [
        ToolCall("a", "weather", '{"city":"Oslo"}'),
        ToolCall("b", "time", "{}"),
    ]


def test_thought_signatures_go_back_to_gemini_only() -> None:
    """``extra_content.google.thought_signature`` (Google's "Thought signatures" page,
    OpenAI compatibility) is read from any answer into ``ToolCall.signature`` and sent back on
    the same tool call only to Gemini's OpenAI-compatible endpoint: the ``gemini_openai``
    provider or any row pointed at generativelanguage.googleapis.com."""
    from .test_openai_chat import GEMINI_TOOL_ANSWER

    gem = deployment("gemini_openai", "gemini-3-flash-preview")
    r = W.parse(response(GEMINI_TOOL_ANSWER), chat("hi"), gem)
    assert r.tool_calls[0].signature == "<Signature A>"
    turn = [Message.user("hi"), r.message()]
    google = "https://generativelanguage.googleapis.com/v1beta/openai"
    for dep in (gem, deployment("openai", "gemini-3-flash-preview", base_url=google)):
        call = W.body(chat(turn), dep)["messages"][1]["tool_calls"][0]
        assert call["extra_content"] == {"google": {"thought_signature": "<Signature A>"}}
    for dep in (DEP, deployment("openrouter", "google/gemini-3-flash-preview")):
        call = W.body(chat(turn), dep)["messages"][1]["tool_calls"][0]
        assert "extra_content" not in call
    # a history of dicts in Google's documented request form keeps the signature too
    as_dicts = [{"role": "user", "content": "hi"}, W.body(chat(turn), gem)["messages"][1]]
    again = W.body(chat(as_dicts), gem)["messages"][1]["tool_calls"][0]
    assert again["extra_content"] == {"google": {"thought_signature": "<Signature A>"}}
    # Google's endpoint reads audio (input_audio, Gemini's formats); documents are refused
    ogg = [Message("user", [AudioPart(b"OggS", "audio/ogg")])]
    part = W.body(chat(ogg), gem)["messages"][0]["content"][0]
    assert part == {"type": "input_audio", "input_audio": {"data": "T2dnUw==", "format": "ogg"}}
    pdf = [Message("user", [DocumentPart(data=b"%PDF", media_type="application/pdf")])]
    with pytest.raises(UnsupportedCapabilityError):
        W.body(chat(pdf), gem)
    # odd shapes are no signature (and never an error)
    for extra in ([], {"google": "x"}, {"google": {"thought_signature": 7}}, {"other": {}}):
        odd = {"id": "c", "function": {"name": "f", "arguments": {"a": 1}}, "extra_content": extra}
        body = {"choices": [{"message": {"tool_calls": [odd]}, "finish_reason": "tool_calls"}]}
        call = W.parse(response(body), chat("hi"), gem).tool_calls[0]
        assert (call.signature, call.arguments) == (None, '{"a":1}')


def test_made_up_tool_call_ids_differ_across_answers() -> None:
    """A compatible server that sends tool calls without ids: llmrelay makes them up as
    ``call_<answer id or random>_<n>``, so two answers of a tool loop never share one (they
    used to restart at ``call_0``); a stream's partial and final answers agree."""
    calls = [{"function": {"name": "f", "arguments": "{}"}}] * 2
    body = {"choices": [{"message": {"tool_calls": calls}, "finish_reason": "tool_calls"}]}
    first = [c.id for c in W.parse(response(body), chat("x")).tool_calls]
    second = [c.id for c in W.parse(response(body), chat("x")).tool_calls]
    assert len({*first, *second}) == 4
    assert all(i.startswith("call_") for i in first)
    named = [c.id for c in W.parse(response({**body, "id": "chatcmpl-7"}), chat("x")).tool_calls]
    assert named == ["call_chatcmpl-7_0", "call_chatcmpl-7_1"]
    frames = [
        sse({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f"}}]}}]}),
        sse({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}, done=True),
    ]
    _, state = W.stream(chat("x", stream=True), frames)
    partial = state.partial().tool_calls[0].id
    assert state.finish().tool_calls[0].id == partial
    _, again = W.stream(chat("x", stream=True), frames)
    assert again.finish().tool_calls[0].id != partial


@pytest.mark.parametrize("rid", [{"x": 1}, [1], 7, True, 1.5])
@pytest.mark.parametrize("model", [[1, 2], 5, {"m": 1}])
def test_hostile_id_and_model_never_reach_the_response_as_other_types(
    rid: object, model: object
) -> None:
    # The answer is built without Response.__init__ (new_response) and the stream keeps what
    # the first chunk sent: an id that is not a string is dropped, a model becomes a str, plain
    # and streamed alike (a dict in Response.id reached repr, pickles and the cache codec).
    choice = {"message": {"content": "hi"}, "finish_reason": "stop"}
    r = W.parse(response({"id": rid, "model": model, "choices": [choice]}), chat("hi"))
    frame = {"id": rid, "model": model, "choices": [{"delta": {"content": "hi"}}]}
    end = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
    _, state = W.stream(chat("hi"), [sse(frame, end, done=True)])
    s = state.finish()
    for got in (r, s):
        assert got.id is None
        assert got.model.__class__ is str
        assert got.model == str(model)


@pytest.mark.parametrize("fin", [{"x": 1}, ["stop"], 7, True, 1.5])
def test_a_finish_reason_that_is_not_a_string_counts_as_absent(fin: object) -> None:
    # An unhashable finish_reason (an object, a list) raised TypeError out of the adapter --
    # no typed error, and in a stream the usage of the same chunk was lost with it -- and a
    # number reached Response.raw_finish_reason. Like other malformed fields it counts as
    # absent, plain and streamed.
    u = {"prompt_tokens": 7, "completion_tokens": 3}
    choice = {"message": {"content": "hi"}, "finish_reason": fin}
    r = W.parse(response({"choices": [choice], "usage": u}), chat("hi"))
    frame = {"choices": [{"delta": {"content": "hi"}, "finish_reason": fin}], "usage": u}
    _, state = W.stream(chat("hi"), [sse(frame, done=True)])
    s = state.finish()
    for got in (r, s):
        assert got.text == "hi"
        assert got.finish_reason is None
        assert got.raw_finish_reason is None
        assert (got.usage.input_tokens, got.usage.output_tokens) == (7, 3)


@pytest.mark.parametrize("value", [7, 1.5, True, {"x": 1}, ["s"], [1], [{"type": "text"}]])
def test_streamed_content_and_arguments_that_are_not_strings_are_not_a_type_error(
    value: object,
) -> None:
    # A delta's content or a tool call's arguments of another type was kept as it came and
    # "".join raised TypeError in partial() and finish() -- an untyped failure (a gateway
    # 500) and a StreamChunk.delta that was not a str. As in a plain answer: content parts
    # give their text, anything else no text; arguments that are an object are encoded.
    frame = {"choices": [{"delta": {"role": "assistant", "content": value}}]}
    end = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
    chunks, state = W.stream(chat("hi"), [sse(frame, end, done=True)])
    assert all(c.delta.__class__ is str for c in chunks)
    assert state.partial().text == state.finish().text == ""
    parts = [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]
    frame = {"choices": [{"delta": {"role": "assistant", "content": parts}}]}
    _, state = W.stream(chat("hi"), [sse(frame, end, done=True)])
    assert state.finish().text == "ab"
    tc = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": value}}
    frame = {"choices": [{"delta": {"tool_calls": [tc]}, "finish_reason": "tool_calls"}]}
    chunks, state = W.stream(chat("hi"), [sse(frame, done=True)])
    [call] = state.finish().tool_calls
    assert call.arguments == orjson.dumps(value).decode()
    assert state.partial().tool_calls[0].arguments == call.arguments
    assert all(d.arguments.__class__ is str for c in chunks for d in c.tool_calls)


@pytest.mark.parametrize(
    "n", [2**64 - 1, 2**63, 2**53, -1, True, 1.0, "5", [5], {"n": 5}, None, 2**64 * 1.0]
)
def test_odd_token_counts_count_as_zero_plain_and_streamed(n: object) -> None:
    # Usage is built without its __init__ (usage_from): every count must still be an exact int
    # in 0 <= n < 2**53. A count up to 2**64 - 1 (what JSON integers reach) went into the
    # request log's BIGINT columns (a whole batch of other calls' rows refused) and, summed
    # over attempts, past what orjson encodes for the cache and the batch journal.
    from llmrelay.core.codec import dumps, response_to_dict

    u = {
        "prompt_tokens": n,
        "completion_tokens": n,
        "prompt_tokens_details": {"cached_tokens": n, "cache_write_tokens": n},
        "completion_tokens_details": {"reasoning_tokens": n},
        "prompt_cache_hit_tokens": n,
    }
    choice = {"message": {"content": "hi"}, "finish_reason": "stop"}
    r = W.parse(response({"id": "x", "model": "m", "choices": [choice], "usage": u}), chat("hi"))
    end = {"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}], "usage": u}
    _, state = W.stream(chat("hi"), [sse(end, done=True)])
    for got in (r.usage, state.finish().usage):
        assert got == Usage()
        for v in (got.input_tokens, got.output_tokens, got.cached_tokens):
            assert v.__class__ is int
    r.total_usage = r.usage + r.usage + r.usage
    dumps(response_to_dict(r))
