"""The anthropic_messages adapter without sockets: request bytes built, recorded answers parsed.

Recorded answers and requests come from tests/recordings (Anthropic's API as captured by
vercel/ai, pydantic-ai and llm-anthropic); streams go through the real SSE decoder, whole and cut
into small reads.
"""

from __future__ import annotations

import orjson
import pytest

from llmrelay.errors import (
    BadRequestError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    OverloadedError,
    QuotaExhaustedError,
    RateLimitedError,
    StreamInterruptedError,
)
from llmrelay.providers.adapters.anthropic_messages import AnthropicMessagesAdapter
from llmrelay.types import Message, ReasoningPart, TextPart, ToolCall, ToolCallDelta, Usage

from ..conftest import CANARY_KEY
from .sansio import (
    BASE,
    body_of,
    chat,
    deployment,
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

A = AnthropicMessagesAdapter()
DEP = deployment("anthropic", "claude-sonnet-4-5")
PELICAN = {"name": "pelican_name_generator", "parameters": {"properties": {}, "type": "object"}}


# ------------------------------------------------------------------------------------ requests


def test_plain_request() -> None:
    req = chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
        temperature=0.5,
        stop=["END"],
        seed=3,
    )
    http = A.build_request(req, DEP)
    assert http.method == "POST"
    assert http.url == f"{BASE}/messages"  # a base URL ending in /v1 is not doubled
    assert plain_headers(http) == {
        "content-type": "application/json",
        "accept": "application/json",
        "anthropic-version": "2023-06-01",
    }
    assert sends_key(http, "x-api-key")
    assert body_of(http) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,  # Anthropic requires one; the adapter's default
        "messages": [{"role": "user", "content": "hello"}],
        "system": "Be brief.",
        "temperature": 0.5,
        "stop_sequences": ["END"],
    }
    assert http.adjusted == {"seed": "dropped: Anthropic does not support it"}
    root = deployment("anthropic", "claude-sonnet-4-5", base_url="https://api.example.test")
    assert A.build_request(req, root).url == "https://api.example.test/v1/messages"


def test_tool_loop_request_matches_the_recorded_one() -> None:
    """The second request of a recorded parallel tool loop: the same turns built by the adapter
    give the same assistant and tool-result turns as the request Anthropic accepted."""
    asked = recorded("anthropic-parallel-tool-use-stream-loop", 1).request
    assert asked is not None
    assert asked.body is not None
    sent = orjson.loads(asked.body)
    ids = ("toolu_011ouQLPrqhKSuFJtuJrpaUX", "toolu_01NtJRxGhJcEQ4axN1FzHayX")
    text = sent["messages"][1]["content"][0]["text"]
    msgs = [
        Message("user", "Two names for a pet pelican"),
        Message(
            "assistant",
            text,
            tool_calls=[
                ToolCall(ids[0], "pelican_name_generator", "{}"),
                ToolCall(ids[1], "pelican_name_generator", "{}"),
            ],
        ),
        Message("tool", "Charles", tool_call_id=ids[0]),
        Message("tool", "Sammy", tool_call_id=ids[1]),
    ]
    req = chat(msgs, stream=True, tools=[PELICAN], max_tokens=8192, temperature=1.0)
    body = body_of(A.build_request(req, deployment("anthropic", "claude-3-5-haiku-latest")))
    assert body["messages"][1:] == sent["messages"][1:]
    assert body["messages"][0] == {"role": "user", "content": "Two names for a pet pelican"}
    assert [t["input_schema"] for t in body["tools"]] == [t["input_schema"] for t in sent["tools"]]
    for field in ("model", "max_tokens", "temperature", "stream"):
        assert body[field] == sent[field]


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ("pelican_name_generator", {"type": "tool", "name": "pelican_name_generator"}),
    ],
)
def test_tool_choice(choice: str, sent: dict[str, str]) -> None:
    body = body_of(A.build_request(chat("hi", tools=[PELICAN], tool_choice=choice), DEP))
    assert body["tool_choice"] == sent


def test_stream_request_and_clamped_temperature() -> None:
    http = A.build_request(chat("hi", stream=True, temperature=1.5), DEP)
    assert plain_headers(http)["accept"] == "text/event-stream"
    assert body_of(http)["stream"] is True
    assert body_of(http)["temperature"] == 1.0
    assert http.adjusted["temperature"].startswith("clamped to 1.0")


def test_request_without_a_user_turn_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="at least one user message"):
        A.build_request(chat([{"role": "system", "content": "only system"}]), DEP)


# ------------------------------------------------------------------------------------ answers


def test_recorded_text_answer_and_usage() -> None:
    r = A.parse_response(recorded_response("anthropic-text"), chat("hi"), DEP)
    assert r.text == (
        "Hello! I'm doing well, thanks for asking. How are you doing today? "
        "Is there anything I can help you with?"
    )
    assert r.finish_reason == "stop"
    assert r.raw_finish_reason == "end_turn"
    assert r.model == "claude-sonnet-4-5-20250929"
    assert r.id == "msg_01VdEjxAP5ahtHKrrRdNBteQ"
    assert r.usage == Usage(input_tokens=12, output_tokens=29)


def test_recorded_thinking_and_tool_use_answer() -> None:
    r = A.parse_response(recorded_response("anthropic-thinking-tool-use"), chat("hi"), DEP)
    assert r.tool_calls == [ToolCall("toolu_01Vr1rLVLRYrbNn7qECH8SPR", "checkSandboxErrors", "{}")]
    assert r.text == ""  # the thinking block is not answer text
    assert r.finish_reason == "tool_calls"
    assert r.usage == Usage(input_tokens=619, output_tokens=94, reasoning_tokens=53)
    recorded_block = orjson.loads(recorded_response("anthropic-thinking-tool-use").body)["content"][
        0
    ]
    assert r.reasoning == recorded_block["thinking"]
    assert r.reasoning_parts == [
        ReasoningPart(
            recorded_block["thinking"],
            signature=recorded_block["signature"],
            provider="anthropic",
        )
    ]


def test_thinking_is_replayed_before_the_tool_use_in_the_next_turn() -> None:
    """The API refuses a tool loop whose assistant turn lost its thinking block ("Expected
    `thinking` or `redacted_thinking`, but found `tool_use`"): the block goes back first,
    byte for byte, with its signature."""
    raw = orjson.loads(recorded_response("anthropic-thinking-tool-use").body)
    r = A.parse_response(recorded_response("anthropic-thinking-tool-use"), chat("hi"), DEP)
    msgs = [
        Message("user", "check the sandbox"),
        r.message(),
        Message("tool", "no errors", tool_call_id=r.tool_calls[0].id),
    ]
    body = body_of(A.build_request(chat(msgs, reasoning_effort="low"), DEP))
    sent = body["messages"][1]["content"]
    assert sent[0] == {k: raw["content"][0][k] for k in ("type", "thinking", "signature")}
    assert sent[1] == {
        "type": "tool_use",
        "id": "toolu_01Vr1rLVLRYrbNn7qECH8SPR",
        "name": "checkSandboxErrors",
        "input": {},
    }
    assert body["messages"][2]["content"][0]["type"] == "tool_result"


def test_only_anthropic_reasoning_parts_are_replayed() -> None:
    content = [
        ReasoningPart("gemini thought", signature="c2ln", provider="gemini"),
        ReasoningPart("no signature", provider="anthropic"),
        ReasoningPart(data="opaque==", redacted=True, provider="anthropic"),
        TextPart("answer"),
        ReasoningPart("kept", signature="sig", provider="anthropic"),
    ]
    msgs = [Message("user", "q"), Message("assistant", content), Message("user", "next")]
    body = body_of(A.build_request(chat(msgs), DEP))
    assert body["messages"][1]["content"] == [
        {"type": "redacted_thinking", "data": "opaque=="},
        {"type": "thinking", "thinking": "kept", "signature": "sig"},
        {"type": "text", "text": "answer"},
    ]


def test_cache_reads_and_writes_count_as_input() -> None:
    body = {
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
            "output_tokens": 2,
        },
    }
    r = A.parse_response(response(body), chat("x"), DEP)
    assert r.usage == Usage(
        input_tokens=130, output_tokens=2, cached_tokens=100, cache_write_tokens=20
    )


CYBER = (
    "This request triggered restrictions on violative cyber content and was blocked under "
    "Anthropic's Usage Policy."
)


def test_recorded_refusal_is_a_content_filtered_error() -> None:
    """stop_reason "refusal" used to come back as a successful empty answer; it is a typed
    error carrying stop_details' category and explanation."""
    with pytest.raises(ContentFilteredError) as info:
        A.parse_response(recorded_response("anthropic-refusal"), chat("x"), DEP)
    e = info.value
    assert (e.category, e.explanation, e.partial_text) == ("cyber", CYBER, "")
    assert "category cyber" in str(e)
    with pytest.raises(ContentFilteredError) as info:
        A.parse_response(recorded_response("anthropic-refusal-no-details"), chat("x"), DEP)
    assert (info.value.category, info.value.explanation) == (None, None)


def test_recorded_streamed_refusal_raises_at_the_end() -> None:
    chunks, state = stream(
        A, chat("x", stream=True), DEP, recorded_frames("anthropic-refusal-stream")
    )
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["content_filter"]
    assert state.done
    with pytest.raises(ContentFilteredError) as info:
        state.finish()
    assert (info.value.category, info.value.explanation) == ("cyber", CYBER)
    assert state.partial().usage == Usage(input_tokens=18, output_tokens=5)


def test_streamed_refusal_keeps_the_partial_text() -> None:
    frames = sse(
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Su"}},
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": "refusal",
                "stop_details": {"type": "refusal", "category": "bio", "explanation": None},
            },
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
        events=True,
    )
    _, state = stream(A, chat("x", stream=True), DEP, [frames])
    with pytest.raises(ContentFilteredError) as info:
        state.finish()
    assert (info.value.partial_text, info.value.category) == ("Su", "bio")


def test_error_inside_a_200_body_is_raised() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(OverloadedError, match="Overloaded"):
        A.parse_response(response(body), chat("x"), DEP)


# ------------------------------------------------------------------------------------ streams


@pytest.mark.parametrize("piece", [None, 1, 9])
def test_recorded_stream_with_text_then_tool_use(piece: int | None) -> None:
    rid = "anthropic-tool-no-args-stream"
    chunks, state = stream(A, chat("x", stream=True), DEP, recorded_frames(rid), piece)
    assert text_of(chunks) == "I'll update the issue list for you."
    deltas = [d for c in chunks for d in c.tool_calls]
    assert deltas == [ToolCallDelta(0, "toolu_01QE1WLsSVp5hy5Q3GmGTmjP", "updateIssueList", "")]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    assert state.done
    r = state.finish()
    assert r.tool_calls == [ToolCall("toolu_01QE1WLsSVp5hy5Q3GmGTmjP", "updateIssueList", "{}")]
    assert r.usage == Usage(input_tokens=565, output_tokens=48)  # message_delta's count wins
    assert r.id == "msg_01GE2RKp1VYsPzdFs3sS9z5S"


def test_recorded_parallel_tool_use_stream() -> None:
    rid = "anthropic-parallel-tool-use-stream-loop"
    chunks, state = stream(A, chat("x", stream=True), DEP, recorded_frames(rid, 0))
    deltas = [d for c in chunks for d in c.tool_calls]
    assert [(d.index, d.id) for d in deltas] == [
        (0, "toolu_011ouQLPrqhKSuFJtuJrpaUX"),
        (1, "toolu_01NtJRxGhJcEQ4axN1FzHayX"),
    ]
    r = state.finish()
    assert [(t.id, t.name, t.arguments) for t in r.tool_calls] == [
        ("toolu_011ouQLPrqhKSuFJtuJrpaUX", "pelican_name_generator", "{}"),
        ("toolu_01NtJRxGhJcEQ4axN1FzHayX", "pelican_name_generator", "{}"),
    ]
    assert r.text.startswith("I'll help you generate two potential names")
    assert r.usage == Usage(input_tokens=310, output_tokens=84)
    chunks2, state2 = stream(A, chat("x", stream=True), DEP, recorded_frames(rid, 1), 4)
    assert state2.finish().text == text_of(chunks2)
    assert state2.finish().finish_reason == "stop"


@pytest.mark.parametrize("piece", [None, 5])
def test_recorded_thinking_stream(piece: int | None) -> None:
    rid = "anthropic-thinking-stream-signature-delta"
    chunks, state = stream(A, chat("x", stream=True), DEP, recorded_frames(rid), piece)
    assert reasoning_of(chunks).startswith("I'm working through the Euclidean algori")
    assert all(not (c.reasoning and c.delta) for c in chunks)
    r = state.finish()
    assert r.text.startswith("# Finding GCD(1071, 462) Using the Euclidean Algorithm")
    assert "I'm working through" not in r.text
    assert r.usage == Usage(input_tokens=47, output_tokens=373, reasoning_tokens=62)
    events = [orjson.loads(f.split(b"data: ", 1)[1]) for f in recorded_frames(rid)]
    signatures = [
        e["delta"]["signature"]
        for e in events
        if e.get("delta", {}).get("type") == "signature_delta"
    ]
    assert r.reasoning == reasoning_of(chunks)
    assert r.reasoning_parts == [
        ReasoningPart(r.reasoning, signature="".join(signatures), provider="anthropic")
    ]
    assert signatures


def test_recorded_redacted_thinking_stream() -> None:
    rid = "anthropic-redacted-thinking-stream"
    frames = recorded_frames(rid)
    chunks, state = stream(A, chat("x", stream=True), DEP, frames, 7)
    r = state.finish()
    body = b"".join(frames)
    datas = [
        orjson.loads(line[6:])["content_block"]["data"]
        for line in body.split(b"\n")
        if line.startswith(b"data: ") and b'"redacted_thinking"' in line
    ]
    assert len(datas) == 2
    assert r.reasoning_parts == [
        ReasoningPart(data=d, redacted=True, provider="anthropic") for d in datas
    ]
    assert r.reasoning == "" == reasoning_of(chunks)
    assert r.text == text_of(chunks) != ""


def test_recorded_compatible_stream_with_usage_in_message_delta() -> None:
    rid = "anthropic-compatible-message-delta-input-tokens"
    chunks, state = stream(A, chat("x", stream=True), DEP, recorded_frames(rid))
    assert text_of(chunks) == "pong"
    assert state.finish().usage == Usage(input_tokens=61, output_tokens=2)


def test_streamed_tool_arguments_in_pieces() -> None:
    frames = sse(
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"city"'},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": ': "Oslo"}'},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
        events=True,
    )
    chunks, state = stream(A, chat("x", stream=True), DEP, [frames], 6)
    assert [d.arguments for c in chunks for d in c.tool_calls] == ["", '{"city"', ': "Oslo"}']
    r = state.finish()
    assert r.tool_calls == [ToolCall("toolu_1", "weather", '{"city": "Oslo"}')]
    assert r.usage == Usage(input_tokens=5, output_tokens=9)


def test_in_stream_error_event_is_typed() -> None:
    frames = sse(
        {"type": "message_start", "message": {"id": "msg_1"}},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        events=True,
    )
    with pytest.raises(OverloadedError, match="Overloaded"):
        stream(A, chat("x", stream=True), DEP, [frames])


def test_cut_stream_keeps_the_partial_answer() -> None:
    frames = sse(
        {"type": "message_start", "message": {"id": "msg_1"}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "half"},
        },
        events=True,
    )
    chunks, state = stream(A, chat("x", stream=True), DEP, [frames])
    assert text_of(chunks) == "half"
    assert not state.done
    with pytest.raises(StreamInterruptedError) as info:
        state.finish()
    assert info.value.partial.text == "half"


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("rid", "needle"),
    [
        ("anthropic-400-request-id", "unexpected `tool_use_id`"),
        ("anthropic-400-tool-reference-request-id", "Tool reference 'lookup_documents'"),
        ("anthropic-400-tool-schema-request-id", "input_schema.type: Field required"),
    ],
)
def test_recorded_errors_are_mapped(rid: str, needle: str) -> None:
    resp = recorded_response(rid)
    e = A.map_error(resp.status, resp.headers, resp.body, DEP)
    assert isinstance(e, BadRequestError)
    assert e.status == 400
    assert needle in str(e)
    assert str(e).startswith(f"[{DEP.label}] invalid_request_error: ")
    # The id Anthropic puts in the error body (no request-id header in these recordings).
    assert e.request_id == orjson.loads(resp.body)["request_id"]
    assert e.request_id.startswith("req_011C")
    with_header = A.map_error(400, {"request-id": "req_header"}, resp.body, DEP)
    assert with_header.request_id == "req_header"


@pytest.mark.parametrize(
    ("status", "etype", "message", "expected"),
    [
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens",
            ContextWindowExceededError,
        ),
        (400, "invalid_request_error", "Your credit balance is too low", QuotaExhaustedError),
        (529, "overloaded_error", "Overloaded", OverloadedError),
        (429, "rate_limit_error", "slow down", RateLimitedError),
    ],
)
def test_error_classes(status: int, etype: str, message: str, expected: type[Exception]) -> None:
    resp = response({"type": "error", "error": {"type": etype, "message": message}}, status)
    assert type(A.map_error(status, resp.headers, resp.body, DEP)) is expected


def test_error_keeps_retry_after_and_hides_an_echoed_key() -> None:
    body = {
        "type": "error",
        "error": {"type": "authentication_error", "message": f"bad key {CANARY_KEY}"},
    }
    resp = response(body, 429, **{"retry-after": "63"})
    e = A.map_error(resp.status, resp.headers, resp.body, DEP)
    assert e.retry_after == 63.0
    assert CANARY_KEY not in str(e)
    assert CANARY_KEY not in repr(e.body)
