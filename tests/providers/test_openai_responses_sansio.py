"""The openai_responses adapter without a socket: request bodies, output items, stream events.

Shapes follow the API reference (https://platform.openai.com/docs/api-reference/responses) and
the recordings in ``tests/recordings`` (the replay tests use those over a socket)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmrelay.errors import (
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    RateLimitedError,
    ServerError,
    StreamInterruptedError,
)
from llmrelay.providers.adapters.openai_responses import (
    OpenAIResponsesAdapter,
    is_reasoning_model,
)
from llmrelay.providers.api_choice import check_api
from llmrelay.providers.table import make_deployment
from llmrelay.types import (
    AudioPart,
    DocumentPart,
    ImagePart,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
)

from ..conftest import CANARY_KEY
from .sansio import (
    Wire,
    body_of,
    chat,
    deployment,
    recorded_frames,
    response,
    sends_key,
    sse,
    stream,
)

W = Wire(OpenAIResponsesAdapter(), deployment("openai", "gpt-4.1-mini"))
A, DEP = W.adapter, W.dep
REASONER = deployment("openai", "gpt-5.5")


def build(messages: Any, dep: Any = DEP, **params: Any) -> dict[str, Any]:
    http = A.build_request(chat(messages, **params), dep)
    assert http.url == dep.base_url + "/responses"
    return body_of(http)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------- requests


def test_instructions_and_input_items() -> None:
    body = build(
        [
            Message("system", "Be brief."),
            Message("developer", "Answer in French."),
            Message("user", "hi"),
            Message("developer", "Now in German."),
        ]
    )
    assert body["instructions"] == "Be brief.\n\nAnswer in French."
    assert body["input"] == [
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": "Now in German."},
    ]
    assert body["store"] is False
    assert "include" not in body
    assert "reasoning" not in body
    assert "stream" not in body


def test_parts_become_input_parts() -> None:
    body = build(
        [
            Message(
                "user",
                [
                    TextPart("look"),
                    ImagePart(url="https://x.test/a.png", detail="low"),
                    ImagePart(data=b"\x89PNG", media_type="image/png"),
                    DocumentPart(data=b"%PDF", media_type="application/pdf", name="r.pdf"),
                    DocumentPart(url="https://x.test/r.pdf"),
                    AudioPart(data=b"RIFF", media_type="audio/wav"),
                ],
            )
        ],
        deployment("openrouter", "openai/gpt-4o-audio-preview"),  # documents input_audio
    )
    parts = body["input"][0]["content"]
    assert parts[0] == {"type": "input_text", "text": "look"}
    assert parts[1] == {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"}
    assert parts[2]["image_url"].startswith("data:image/png;base64,")
    assert parts[3] == {
        "type": "input_file",
        "file_data": "data:application/pdf;base64,JVBERg==",
        "filename": "r.pdf",
    }
    assert parts[4] == {"type": "input_file", "file_url": "https://x.test/r.pdf"}
    assert parts[5] == {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    or_dep = deployment("openrouter", "openai/gpt-4o-audio-preview")
    with pytest.raises(InvalidRequestError, match="mp3 or wav"):
        build([Message("user", [AudioPart(data=b"x", media_type="audio/ogg")])], or_dep)


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_openai_responses_refuses_audio_before_sending(provider: str) -> None:
    """OpenAI's Responses ``input`` content is text, image or file (its reference; the SDK's
    ``ResponseInputContentParam``): an ``input_audio`` part would be a 400 after the request
    was paid for in time and a rate-limit slot."""
    with pytest.raises(InvalidRequestError, match="no audio input"):
        build(
            [Message("user", [AudioPart(data=b"RIFF", media_type="audio/wav")])],
            deployment(provider, "gpt-4.1-mini"),
        )


def test_tool_turns_and_foreign_reasoning() -> None:
    tc = ToolCall("call_1", "get_weather", '{"city":"Oslo"}')
    assistant = Message(
        "assistant",
        [
            ReasoningPart(text="thinking", signature="sig", provider="anthropic"),
            ReasoningPart(text="plan", id="rs_1", data="enc", provider="openai_responses"),
            TextPart("Let me look."),
        ],
        tool_calls=[tc],
    )
    body = build(
        [Message("user", "weather?"), assistant, Message("tool", "sunny", tool_call_id="call_1")]
    )
    assert body["input"][1:] == [
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "plan"}],
            "encrypted_content": "enc",
        },
        {"role": "assistant", "content": "Let me look."},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Oslo"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]


def test_tools_choice_format_and_limits() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = build(
        "hi",
        tools=[{"name": "f", "description": "d", "parameters": schema, "strict": True}],
        tool_choice="f",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "Out", "schema": schema, "strict": True},
        },
        max_tokens=99,
        temperature=0.5,
        top_p=0.9,
        user="u1",
    )
    assert body["tools"] == [
        {"type": "function", "name": "f", "description": "d", "parameters": schema, "strict": True}
    ]
    assert body["tool_choice"] == {"type": "function", "name": "f"}
    assert body["text"] == {
        "format": {"type": "json_schema", "name": "Out", "schema": schema, "strict": True}
    }
    assert (body["max_output_tokens"], body["temperature"], body["top_p"]) == (99, 0.5, 0.9)
    assert body["user"] == "u1"
    assert build("hi", tool_choice="required")["tool_choice"] == "required"
    assert build("hi", response_format="json")["text"] == {"format": {"type": "json_object"}}
    with pytest.raises(InvalidRequestError, match="json_schema"):
        build("hi", response_format={"type": "grammar"})


def test_unsupported_parameters_are_dropped_and_said() -> None:
    http = A.build_request(
        chat("hi", stop="END", seed=3, frequency_penalty=0.5, presence_penalty=0.0), DEP
    )
    body = body_of(http)
    assert not {"stop", "seed", "frequency_penalty", "presence_penalty"} & set(body)
    assert set(http.adjusted) == {"stop", "seed", "frequency_penalty"}  # a zero is no change


def test_reasoning_effort_summary_and_encrypted_content() -> None:
    body = build("hi", REASONER)
    assert "reasoning" not in body  # no summary unasked: unverified organisations get a 400
    assert body["include"] == ["reasoning.encrypted_content"]
    body = build("hi", REASONER, reasoning_effort="high")
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert build("hi", REASONER, reasoning_effort="none")["reasoning"] == {"effort": "none"}
    # a stored response keeps its reasoning at OpenAI; previous_response_id rides in extra
    body = build("hi", REASONER, extra={"store": True, "previous_response_id": "resp_1"})
    assert body["store"] is True
    assert body["previous_response_id"] == "resp_1"
    assert "include" not in body
    body = build("hi", REASONER, extra={"include": ["message.output_text.logprobs"]})
    assert body["include"] == ["message.output_text.logprobs"]
    assert [
        m
        for m in ("o3", "o4-mini", "gpt-5", "gpt-6.1-sol", "openai/gpt-5.5")
        if is_reasoning_model(m)
    ] == [
        "o3",
        "o4-mini",
        "gpt-5",
        "gpt-6.1-sol",
        "openai/gpt-5.5",
    ]
    assert not any(is_reasoning_model(m) for m in ("gpt-4.1", "gpt-5-chat-latest", "gpt-4o"))


def test_azure_key_header_and_api_version() -> None:
    dep = make_deployment(
        "azure",
        "my-dep",
        api_key=CANARY_KEY,
        base_url="https://r.openai.azure.com/openai/v1",
        options={"api_version": "preview"},
    )
    http = A.build_request(chat("hi"), dep)
    assert http.url == "https://r.openai.azure.com/openai/v1/responses?api-version=preview"
    assert sends_key(http, "api-key")
    assert sends_key(A.build_request(chat("hi"), DEP), "authorization", "Bearer ")


def test_check_api_names_the_choices() -> None:
    assert check_api(None) is None
    assert check_api("responses") == "responses"
    with pytest.raises(InvalidRequestError, match="'chat' or 'responses'"):
        check_api(object())


# ---------------------------------------------------------------------------- answers


def _answer(output: list[Any], **top: Any) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": "gpt-4.1-mini",
        "output": output,
        "usage": {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 2},
        },
        **top,
    }


def _message(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "id": "msg_1", "content": list(parts)}


def test_usage_and_incomplete() -> None:
    text = {"type": "output_text", "text": "cut sh"}
    r = W.parse(response(_answer([_message(text)])), chat("hi"))
    assert (r.text, r.finish_reason, r.raw_finish_reason) == ("cut sh", "stop", "completed")
    u = r.usage
    assert (u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens) == (10, 7, 4, 2)
    for reason, finish in (("max_output_tokens", "length"), ("some_future_reason", "other")):
        body = _answer([_message(text)], status="incomplete", incomplete_details={"reason": reason})
        r = W.parse(response(body), chat("hi"))
        assert (r.finish_reason, r.raw_finish_reason, r.text) == (finish, reason, "cut sh")
    # A content filter stop is the error Chat Completions' finish_reason content_filter is.
    body = _answer(
        [_message(text)], status="incomplete", incomplete_details={"reason": "content_filter"}
    )
    with pytest.raises(ContentFilteredError) as ei:
        A.parse_response(response(body), chat("hi"), DEP)
    assert (ei.value.category, ei.value.partial_text) == ("content_filter", "cut sh")


def test_refusal_is_content_filtered() -> None:
    refusal = {"type": "refusal", "refusal": "I can't help with that."}
    with pytest.raises(ContentFilteredError) as ei:
        W.parse(response(_answer([_message(refusal)])), chat("hi"))
    assert ei.value.category == "refusal"
    assert ei.value.explanation == "I can't help with that."
    assert ei.value.provider == "openai"


def test_failed_responses_are_typed() -> None:
    for code, cls in (
        ("rate_limit_exceeded", RateLimitedError),
        ("server_error", ServerError),
        ("context_length_exceeded", ContextWindowExceededError),
    ):
        body = _answer([], status="failed", error={"code": code, "message": f"{code} happened"})
        with pytest.raises(cls, match=code):
            W.parse(response(body), chat("hi"))


# ---------------------------------------------------------------------------- streams


def _events(*objs: dict[str, Any]) -> bytes:
    return sse(*objs, events=True)


def test_stream_refusal_incomplete_and_cut() -> None:
    refusal = _events(
        {"type": "response.created", "response": {"id": "resp_1", "model": "m"}},
        {"type": "response.refusal.delta", "delta": "No."},
        {"type": "response.completed", "response": {"status": "completed", "output": []}},
    )
    with pytest.raises(ContentFilteredError) as ei:
        W.stream(chat("hi", stream=True), [refusal])
    assert ei.value.category == "refusal"
    assert ei.value.explanation == "No."
    incomplete = _events(
        {"type": "response.output_text.delta", "delta": "cut", "output_index": 0},
        {
            "type": "response.incomplete",
            "response": {
                "status": "incomplete",
                "incomplete_details": {"reason": "max_output_tokens"},
            },
        },
    )
    chunks, state = W.stream(chat("hi", stream=True), [incomplete])
    r = state.finish()
    assert (r.text, r.finish_reason) == ("cut", "length")
    assert chunks[-1].finish_reason == "length"
    cut = _events({"type": "response.output_text.delta", "delta": "half", "output_index": 0})
    _, state = W.stream(chat("hi", stream=True), [cut])
    with pytest.raises(StreamInterruptedError) as si:
        state.finish()
    assert si.value.partial is not None
    assert si.value.partial.text == "half"


def test_stream_call_without_deltas_and_nested_error_event() -> None:
    item = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_9",
        "name": "f",
        "arguments": '{"a":1}',
    }
    frames = _events(
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": {"status": "completed", "output": [item]}},
    )
    chunks, state = W.stream(chat("hi", stream=True), [frames], piece=7)
    deltas = [d for c in chunks for d in c.tool_calls]
    assert (deltas[0].id, deltas[0].name) == ("call_9", "f")
    assert "".join(d.arguments for d in deltas) == '{"a":1}'
    assert state.finish().finish_reason == "tool_calls"
    err = _events({"type": "error", "error": {"code": "server_error", "message": "oops"}})
    with pytest.raises(ServerError, match="oops"):
        W.stream(chat("hi", stream=True), [err])


def test_recorded_stream_in_small_pieces_gives_the_same_answer() -> None:
    frames = recorded_frames("openai-responses-tool-call-stream")
    whole, s1 = stream(A, chat("hi", stream=True), REASONER, frames)
    pieces, s2 = stream(A, chat("hi", stream=True), REASONER, frames, piece=5)
    assert [c.to_dict() for c in whole] == [c.to_dict() for c in pieces]
    assert s1.finish().tool_calls == s2.finish().tool_calls
    assert orjson.loads(s1.finish().tool_calls[0].arguments)
