"""The anthropic_messages adapter without sockets: request bytes built, recorded answers parsed.

Recorded answers and requests come from tests/recordings (Anthropic's API as captured by
vercel/ai, pydantic-ai and llm-anthropic); streams go through the real SSE decoder, whole and cut
into small reads.
"""

from __future__ import annotations

import base64
from typing import Any

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
    UnsupportedCapabilityError,
)
from llmrelay.providers.adapters.anthropic_messages import AnthropicMessagesAdapter
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
from .sansio import (
    BASE,
    Wire,
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
    text_of,
)

W = Wire(AnthropicMessagesAdapter(), deployment("anthropic", "claude-sonnet-4-5"))
A, DEP = W.adapter, W.dep
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
    body = W.body(req, deployment("anthropic", "claude-3-5-haiku-latest"))
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
    body = W.body(chat("hi", tools=[PELICAN], tool_choice=choice))
    assert body["tool_choice"] == sent


def test_stream_request_and_clamped_temperature() -> None:
    http = A.build_request(chat("hi", stream=True, temperature=1.5), DEP)
    assert plain_headers(http)["accept"] == "text/event-stream"
    assert body_of(http)["stream"] is True
    assert body_of(http)["temperature"] == 1.0
    assert http.adjusted["temperature"].startswith("clamped to 1.0")


# ------------------------------------------------------------------- thinking / reasoning_effort


def _body(model: str, **params: Any) -> tuple[dict[str, Any], dict[str, str]]:
    http = A.build_request(chat("hi", **params), deployment("anthropic", model))
    return body_of(http), http.adjusted


@pytest.mark.parametrize(
    ("model", "effort", "thinking", "output_config"),
    [
        # Claude 4.6 and later: adaptive thinking + output_config.effort.
        ("claude-opus-4-7", "high", {"type": "adaptive", "display": "summarized"}, "high"),
        ("claude-sonnet-4-6", "medium", {"type": "adaptive", "display": "summarized"}, "medium"),
        ("claude-sonnet-5-5", "low", {"type": "adaptive", "display": "summarized"}, "low"),
        ("claude-opus-4-6", "minimal", {"type": "adaptive", "display": "summarized"}, "low"),
        # Sonnet/Opus/Haiku 4.5 and older: budget thinking.
        ("claude-sonnet-4-5", "medium", {"type": "enabled", "budget_tokens": 8192}, None),
        ("claude-haiku-4-5-20251001", "low", {"type": "enabled", "budget_tokens": 2048}, None),
        ("claude-3-7-sonnet-20250219", "minimal", {"type": "enabled", "budget_tokens": 1024}, None),
        # reasoning_effort none: no thinking where it is off by default.
        ("claude-sonnet-4-5", "none", None, None),
        ("claude-opus-4-7", "none", None, None),
    ],
)
def test_reasoning_effort_maps_to_thinking(
    model: str, effort: str, thinking: Any, output_config: str | None
) -> None:
    body, _ = _body(model, reasoning_effort=effort)
    assert body.get("thinking") == thinking
    assert body.get("output_config", {}).get("effort") == output_config
    if thinking and thinking["type"] == "enabled":
        # max_tokens must exceed the budget: the default grows by the budget.
        assert body["max_tokens"] == 4096 + thinking["budget_tokens"]


def test_reasoning_effort_on_models_without_a_choice() -> None:
    body, adjusted = _body("claude-fable-5-1", reasoning_effort="none")
    assert body["thinking"]["type"] == "adaptive"  # Fable always thinks
    assert body["output_config"] == {"effort": "low"}
    assert "cannot be disabled" in adjusted["reasoning_effort"]
    body, adjusted = _body("claude-3-5-haiku-latest", reasoning_effort="high")
    assert "thinking" not in body
    assert "output_config" not in body
    assert adjusted["reasoning_effort"] == "dropped: this model has no extended thinking"


def test_thinking_drops_what_it_cannot_take() -> None:
    body, adjusted = _body(
        "claude-sonnet-4-5",
        reasoning_effort="low",
        temperature=0.2,
        top_p=0.5,
        tools=[PELICAN],
        tool_choice="required",
        extra={"top_k": 5},
    )
    assert "temperature" not in body
    assert "top_k" not in body
    assert body["top_p"] == 0.95
    assert body["tool_choice"] == {"type": "auto"}
    assert set(adjusted) == {"temperature", "top_k", "top_p", "tool_choice"}
    # Thinking switched on through extra counts too.
    body, adjusted = _body(
        "claude-sonnet-4-5",
        temperature=0.2,
        extra={"thinking": {"type": "enabled", "budget_tokens": 2000}},
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert "temperature" not in body
    assert "temperature" in adjusted


def test_thinking_budget_fits_below_max_tokens() -> None:
    body, adjusted = _body("claude-sonnet-4-5", reasoning_effort="high", max_tokens=6000)
    assert body["max_tokens"] == 6000
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    assert "3000" in adjusted["reasoning_effort"]
    with pytest.raises(InvalidRequestError, match="leaves no room for thinking"):
        _body("claude-sonnet-4-5", reasoning_effort="low", max_tokens=1000)


# ------------------------------------------------------------------------ structured output

PERSON = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        },
    },
}


def test_structured_output_is_native_where_the_model_has_json_outputs() -> None:
    body, adjusted = _body("claude-sonnet-4-5", response_format=PERSON)
    assert body["output_config"] == {
        "format": {"type": "json_schema", "schema": PERSON["json_schema"]["schema"]}
    }
    assert "tools" not in body
    assert "tool_choice" not in body
    assert adjusted == {}
    # With thinking on, both travel in the one output_config.
    body, _ = _body("claude-opus-4-7", response_format=PERSON, reasoning_effort="low")
    assert body["output_config"]["effort"] == "low"
    assert body["output_config"]["format"]["type"] == "json_schema"
    # The answer is the text block.
    answer = {
        "content": [{"type": "text", "text": '{"name": "Ada"}'}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    dep = deployment("anthropic", "claude-sonnet-4-5")
    r = W.parse(response(answer), chat("x", response_format=PERSON), dep)
    assert (r.text, r.finish_reason) == ('{"name": "Ada"}', "stop")


def test_a_schema_that_cannot_be_strict_is_a_tool_everywhere() -> None:
    loose = {
        "type": "json_schema",
        "json_schema": {"name": "bag", "schema": {"type": "object"}, "strict": False},
    }
    body, _ = _body("claude-sonnet-4-5", response_format=loose)
    assert "output_config" not in body
    assert body["tool_choice"] == {"type": "tool", "name": "bag"}


def test_structured_output_is_a_tool_on_older_models() -> None:
    body, _ = _body("claude-3-5-haiku-latest", response_format=PERSON)
    assert body["tool_choice"] == {"type": "tool", "name": "person"}
    assert "output_config" not in body
    # Forced tool use is refused with thinking on: the tool is offered and asked for.
    body, adjusted = _body(
        "claude-sonnet-4-20250514", response_format=PERSON, reasoning_effort="low"
    )
    assert body["tool_choice"] == {"type": "auto"}
    assert [t["name"] for t in body["tools"]] == ["person"]
    assert "calling person" in body["system"]
    assert "forced tool use is refused" in adjusted["response_format"]


# ------------------------------------------------------------------------ content and caching


def test_developer_role_and_system_parts_with_cache_control() -> None:
    cached = {"type": "ephemeral"}
    msgs = [
        {"role": "developer", "content": "Rules."},
        {
            "role": "system",
            "content": [{"type": "text", "text": "Long context.", "cache_control": cached}],
        },
        {"role": "user", "content": "hi"},
    ]
    body = W.body(chat(msgs))
    assert body["system"] == [
        {"type": "text", "text": "Rules."},
        {"type": "text", "text": "Long context.", "cache_control": cached},
    ]
    # Without cache_control the system prompt stays one string.
    plain = W.body(chat([msgs[0], msgs[2]]))
    assert plain["system"] == "Rules."


def test_cache_control_on_message_parts_and_tools() -> None:
    cached = {"type": "ephemeral", "ttl": "1h"}
    user = Message("user", [TextPart("big document", cache_control=cached), TextPart("q")])
    tool = {**PELICAN, "cache_control": {"type": "ephemeral"}}
    body = W.body(chat([user], tools=[tool]))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "big document", "cache_control": cached},
        {"type": "text", "text": "q"},
    ]
    assert body["tools"][0]["cache_control"] == {"type": "ephemeral"}
    # One text part with cache_control is not collapsed into a plain string.
    one = W.body(chat([Message("user", [TextPart("x", cache_control=cached)])]))
    assert one["messages"][0]["content"] == [{"type": "text", "text": "x", "cache_control": cached}]


def test_more_than_four_cache_breakpoints_is_refused_before_sending() -> None:
    cc = {"type": "ephemeral"}
    parts = [TextPart(f"part {i}", cache_control=cc) for i in range(5)]
    with pytest.raises(InvalidRequestError, match="5 cache_control breakpoints"):
        A.build_request(chat([Message("user", parts)]), DEP)
    A.build_request(chat([Message("user", parts[:4])]), DEP)
    # Automatic caching (a top-level cache_control) takes one of the four slots too: the API
    # answers "A maximum of 4 blocks with cache_control may be provided. Found 5."
    auto = {"cache_control": cc}
    with pytest.raises(InvalidRequestError, match="5 cache_control breakpoints"):
        A.build_request(chat([Message("user", parts[:4])], extra=auto), DEP)
    A.build_request(chat([Message("user", parts[:3])], extra=auto), DEP)


def test_documents() -> None:
    pdf = DocumentPart(data=b"%PDF-1.4 x", media_type="application/pdf", name="r.pdf")
    txt = DocumentPart(data="héllo".encode(), media_type="text/plain")
    url = DocumentPart(url="https://example.test/a.pdf", cache_control={"type": "ephemeral"})
    body = W.body(chat([Message("user", [pdf, txt, url, TextPart("sum")])]))
    blocks = body["messages"][0]["content"]
    assert blocks[0] == {
        "type": "document",
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": base64.b64encode(b"%PDF-1.4 x").decode(),
        },
        "title": "r.pdf",
    }
    assert blocks[1]["source"] == {"type": "text", "media_type": "text/plain", "data": "héllo"}
    assert blocks[2] == {
        "type": "document",
        "source": {"type": "url", "url": "https://example.test/a.pdf"},
        "cache_control": {"type": "ephemeral"},
    }
    # OpenAI's file part carries a PDF too.
    data_url = "data:application/pdf;base64," + base64.b64encode(b"%PDF").decode()
    msgs = [{"role": "user", "content": [{"type": "file", "file": {"file_data": data_url}}]}]
    sent = W.body(chat(msgs))["messages"][0]["content"][0]
    assert sent["source"]["media_type"] == "application/pdf"
    doc = DocumentPart(data=b"x", media_type="application/msword")
    with pytest.raises(UnsupportedCapabilityError, match="PDF"):
        A.build_request(chat([Message("user", [doc])]), DEP)


def test_audio_is_refused_before_sending() -> None:
    part = AudioPart(data=b"RIFF", media_type="audio/wav")
    with pytest.raises(UnsupportedCapabilityError, match="no audio") as info:
        A.build_request(chat([Message("user", [part, TextPart("transcribe")])]), DEP)
    assert info.value.capability == "audio"


def test_tool_result_is_error() -> None:
    msgs = [
        Message("user", "weather?"),
        Message("assistant", None, tool_calls=[ToolCall("toolu_1", "weather", "{}")]),
        Message("tool", "city not found", tool_call_id="toolu_1", is_error=True),
    ]
    body = W.body(chat(msgs))
    assert body["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": "city not found",
            "is_error": True,
        }
    ]


def test_request_without_a_user_turn_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="at least one user message"):
        A.build_request(chat([{"role": "system", "content": "only system"}]), DEP)


# ------------------------------------------------------------------------------------ answers


def test_recorded_text_answer_and_usage() -> None:
    r = W.parse(recorded_response("anthropic-text"), chat("hi"))
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
    r = W.parse(recorded_response("anthropic-thinking-tool-use"), chat("hi"))
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
    r = W.parse(recorded_response("anthropic-thinking-tool-use"), chat("hi"))
    msgs = [
        Message("user", "check the sandbox"),
        r.message(),
        Message("tool", "no errors", tool_call_id=r.tool_calls[0].id),
    ]
    body = W.body(chat(msgs, reasoning_effort="low"))
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
    body = W.body(chat(msgs))
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
    r = W.parse(response(body), chat("x"))
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
        W.parse(recorded_response("anthropic-refusal"), chat("x"))
    e = info.value
    assert (e.category, e.explanation, e.partial_text) == ("cyber", CYBER, "")
    assert "category cyber" in str(e)
    with pytest.raises(ContentFilteredError) as info:
        W.parse(recorded_response("anthropic-refusal-no-details"), chat("x"))
    assert (info.value.category, info.value.explanation) == (None, None)


def test_recorded_streamed_refusal_raises_at_the_end() -> None:
    chunks, state = W.stream(chat("x", stream=True), recorded_frames("anthropic-refusal-stream"))
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
    _, state = W.stream(chat("x", stream=True), [frames])
    with pytest.raises(ContentFilteredError) as info:
        state.finish()
    assert (info.value.partial_text, info.value.category) == ("Su", "bio")


def test_error_inside_a_200_body_is_raised() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(OverloadedError, match="Overloaded"):
        W.parse(response(body), chat("x"))


# ------------------------------------------------------------------------------------ streams


@pytest.mark.parametrize("piece", [None, 1, 9])
def test_recorded_stream_with_text_then_tool_use(piece: int | None) -> None:
    rid = "anthropic-tool-no-args-stream"
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid), piece)
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
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid, 0))
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
    chunks2, state2 = W.stream(chat("x", stream=True), recorded_frames(rid, 1), 4)
    assert state2.finish().text == text_of(chunks2)
    assert state2.finish().finish_reason == "stop"


@pytest.mark.parametrize("piece", [None, 5])
def test_recorded_thinking_stream(piece: int | None) -> None:
    rid = "anthropic-thinking-stream-signature-delta"
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid), piece)
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
    # Each finished block is also a chunk, when it ends (before the answer's text).
    finished = [i for i, c in enumerate(chunks) if c.reasoning_part is not None]
    assert [chunks[i].reasoning_part for i in finished] == r.reasoning_parts
    assert "".join(c.delta for c in chunks[: finished[0]]) == ""


def test_recorded_redacted_thinking_stream() -> None:
    rid = "anthropic-redacted-thinking-stream"
    frames = recorded_frames(rid)
    chunks, state = W.stream(chat("x", stream=True), frames, 7)
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
    assert [c.reasoning_part for c in chunks if c.reasoning_part] == r.reasoning_parts
    assert r.reasoning == "" == reasoning_of(chunks)
    assert r.text == text_of(chunks) != ""


def test_recorded_compatible_stream_with_usage_in_message_delta() -> None:
    rid = "anthropic-compatible-message-delta-input-tokens"
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid))
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
    chunks, state = W.stream(chat("x", stream=True), [frames], 6)
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
        W.stream(chat("x", stream=True), [frames])


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
    chunks, state = W.stream(chat("x", stream=True), [frames])
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
