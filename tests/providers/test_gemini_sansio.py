"""The gemini adapter without sockets: request bytes built, recorded answers parsed.

Recorded answers come from tests/recordings (the Gemini API as captured by vercel/ai,
pydantic-ai and llm-gemini, gzip and JSON-array streams included); SSE streams go through the
real SSE decoder, whole and cut into small reads.
"""

from __future__ import annotations

import pytest

from llmrelay.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    InvalidRequestError,
    OverloadedError,
    QuotaExhaustedError,
    RateLimitedError,
    StreamInterruptedError,
)
from llmrelay.providers.adapters.gemini import SIGNATURE_SENTINEL, GeminiAdapter
from llmrelay.types import Message, ToolCall, ToolCallDelta, Usage

from ..conftest import CANARY_KEY
from ..recordings.replay import events, string_values
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

W = Wire(GeminiAdapter(), deployment("gemini", "gemini-2.5-flash"))
A, DEP = W.adapter, W.dep
WEATHER = {
    "name": "weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def signatures(rid: str, interaction: int = 0) -> list[str]:
    """Every thoughtSignature of a recording's answer, in order (read from the JSON events,
    not through the adapter)."""
    return string_values(events(recorded(rid, interaction).response), "thoughtSignature")


# ------------------------------------------------------------------------------------ requests


def test_plain_request() -> None:
    req = chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
        temperature=0.3,
        max_tokens=40,
        stop="END",
    )
    http = A.build_request(req, DEP)
    assert http.method == "POST"
    assert http.url == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert plain_headers(http) == {"content-type": "application/json", "accept": "application/json"}
    assert sends_key(http, "x-goog-api-key")  # in a header, never in the URL
    assert body_of(http) == {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.3, "maxOutputTokens": 40, "stopSequences": ["END"]},
    }


def test_stream_request_and_dropped_user() -> None:
    http = A.build_request(chat("hi", stream=True, user="u-1"), DEP)
    assert http.url == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert plain_headers(http)["accept"] == "text/event-stream"
    assert "user" not in body_of(http)
    assert http.adjusted == {"user": "dropped: Google Gemini does not support it"}


def test_tools_and_a_parallel_tool_turn() -> None:
    msgs = [
        Message("user", "weather in Oslo and Rome?"),
        Message(
            "assistant",
            None,
            tool_calls=[
                ToolCall("c1", "weather", '{"city":"Oslo"}'),
                ToolCall("c2", "weather", '{"city":"Rome"}'),
            ],
        ),
        Message("tool", '{"sky":"snow"}', tool_call_id="c1"),
        Message("tool", "sunny", tool_call_id="c2"),
    ]
    body = W.body(chat(msgs, tools=[WEATHER], tool_choice="weather"))
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "weather",
                    "description": "Weather in a city",
                    "parametersJsonSchema": WEATHER["parameters"],
                }
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}
    }
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "weather", "args": {"city": "Oslo"}, "id": "c1"},
                    "thoughtSignature": SIGNATURE_SENTINEL,  # no signature: built by hand
                },
                {"functionCall": {"name": "weather", "args": {"city": "Rome"}, "id": "c2"}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "weather", "response": {"sky": "snow"}, "id": "c1"}},
                {
                    "functionResponse": {
                        "name": "weather",
                        "response": {"result": "sunny"},
                        "id": "c2",
                    }
                },
            ],
        },
    ]
    for choice, mode in (("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")):
        b = W.body(chat("hi", tools=[WEATHER], tool_choice=choice))
        assert b["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_tool_result_without_its_call_is_refused() -> None:
    msgs = [Message("user", "hi"), Message("tool", "42", tool_call_id="nowhere")]
    with pytest.raises(InvalidRequestError, match="messages\\[1\\] answers tool call 'nowhere'"):
        A.build_request(chat(msgs), DEP)


# ------------------------------------------------------------------------------------ answers


def test_recorded_text_answer_and_usage() -> None:
    r = W.parse(recorded_response("gemini3-text"), chat("hi"))
    assert (
        r.text == "There are **3** r's in strawberry.\n\nHere is the breakdown: st**r**awbe**rr**y."
    )
    assert r.finish_reason == "stop"
    assert r.model == "gemini-3-pro-preview"
    assert r.id == "Un6LacrVMcjUxs0PmJfWoQc"
    # Thoughts are output tokens, reported apart as reasoning.
    assert r.usage == Usage(input_tokens=9, output_tokens=28 + 244, reasoning_tokens=244)


def test_recorded_tool_call_answer() -> None:
    rid = "gemini3-tool-call-thought-signature"
    r = W.parse(recorded_response(rid), chat("x"))
    # No functionCall.id: the id is made from the response id; the signature is kept.
    assert r.tool_calls == [
        ToolCall(
            "call_JniLacKqGqH0xs0P0O776As_0",
            "weather",
            '{"location":"San Francisco"}',
            signature=signatures(rid)[0],
        )
    ]
    assert r.finish_reason == "tool_calls"  # Gemini ends a turn of calls with STOP
    assert r.raw_finish_reason == "STOP"
    assert r.usage == Usage(input_tokens=29, output_tokens=15 + 1801, reasoning_tokens=1801)


def test_recorded_max_tokens_answer_without_parts() -> None:
    r = W.parse(recorded_response("gemini-max-tokens-empty-content"), chat("x"))
    assert r.text == ""
    assert r.finish_reason == "length"
    assert r.usage == Usage(input_tokens=15, output_tokens=2, reasoning_tokens=2)


def test_recorded_json_array_streams_read_as_one_answer() -> None:
    """``streamGenerateContent`` without ``alt=sse`` answers a JSON array (here gzip-encoded)."""
    r = W.parse(recorded_response("gemini15-stream-json-array-gzip"), chat("x"))
    assert r.text == "Percy\n"
    assert r.finish_reason == "stop"
    assert r.usage == Usage(input_tokens=10, output_tokens=2)
    assert r.model == "gemini-1.5-flash-002"
    t = W.parse(recorded_response("gemini3-stream-tool-call-id-gzip"), chat("x"))
    sig = signatures("gemini3-stream-tool-call-id-gzip")[0]
    assert t.tool_calls == [
        ToolCall("c9bjmkfz", "pelican_name_generator", '{"type":"funny"}', signature=sig)
    ]
    assert t.finish_reason == "tool_calls"
    assert t.usage == Usage(input_tokens=28, output_tokens=19 + 248, reasoning_tokens=248)


def test_recorded_blocked_prompt_is_content_filtered() -> None:
    with pytest.raises(ContentFilteredError, match="blockReason PROHIBITED_CONTENT"):
        W.parse(recorded_response("gemini-prompt-blocked"), chat("x"))
    with pytest.raises(ContentFilteredError, match="blockReason PROHIBITED_CONTENT"):
        W.stream(chat("x", stream=True), recorded_frames("gemini-prompt-blocked-stream"))
    armor = recorded_response("vertex-gemini-model-armor-prompt-blocked", 1)
    with pytest.raises(ContentFilteredError, match="blockReason MODEL_ARMOR"):
        W.parse(armor, chat("x"))


# ------------------------------------------------------------------------------------ streams


@pytest.mark.parametrize("piece", [None, 1, 11])
def test_recorded_stream_with_a_tool_call(piece: int | None) -> None:
    rid = "gemini3-tool-call-stream"
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid), piece)
    deltas = [d for c in chunks for d in c.tool_calls]
    cid = "call_b36LacjwM668nsEP2tbsgQQ_0"
    sig = signatures(rid)[0]
    assert deltas == [ToolCallDelta(0, cid, "weather", '{"location":"San Francisco"}', sig)]
    assert state.done  # the finishReason chunk ends a Gemini stream
    usage = Usage(input_tokens=29, output_tokens=15 + 45, reasoning_tokens=45)
    assert [(c.finish_reason, c.usage) for c in chunks if c.finish_reason] == [
        ("tool_calls", usage)
    ]
    r = state.finish()
    assert r.tool_calls == [ToolCall(cid, "weather", '{"location":"San Francisco"}', sig)]
    assert r.usage == usage
    assert r.id == "b36LacjwM668nsEP2tbsgQQ"


def test_recorded_text_stream_with_an_empty_last_part() -> None:
    rid = "gemini3-stream-empty-text-thought-signature"
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid), 4)
    assert text_of(chunks) == "4"
    r = state.finish()
    assert r.text == "4"
    assert r.finish_reason == "stop"
    assert r.usage == Usage(input_tokens=15, output_tokens=53, reasoning_tokens=52)


def test_recorded_stream_thought_parts_are_reasoning() -> None:
    rid = "vertex-gemini3-stream-thought-part-partial-args"
    chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid))
    assert reasoning_of(chunks).startswith("**Processing User Requests**")
    assert text_of(chunks) == ""
    names = [d.name for c in chunks for d in c.tool_calls]
    assert names[:2] == ["read_theme", "read_screen"]
    assert state.finish().finish_reason == "tool_calls"


def test_in_stream_error_is_typed() -> None:
    frames = sse(
        {"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]},
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
    )
    with pytest.raises(OverloadedError, match="UNAVAILABLE: The model is overloaded") as info:
        W.stream(chat("x", stream=True), [frames])
    assert info.value.status == 503


def test_cut_stream_keeps_the_partial_answer() -> None:
    frames = sse({"candidates": [{"content": {"parts": [{"text": "half"}]}}]})
    chunks, state = W.stream(chat("x", stream=True), [frames])
    assert text_of(chunks) == "half"
    with pytest.raises(StreamInterruptedError) as info:
        state.finish()
    assert info.value.partial.text == "half"


# ------------------------------------------------------------------------------------ errors


def test_recorded_rate_limit_carries_the_retry_delay() -> None:
    resp = recorded_response("gemini-429-retry-info")
    e = A.map_error(resp.status, resp.headers, resp.body, DEP)
    assert isinstance(e, RateLimitedError)
    assert e.retry_after == 34.4
    assert str(e).startswith(f"[{DEP.label}] RESOURCE_EXHAUSTED: You exceeded your current quota")


@pytest.mark.parametrize(
    ("rid", "needle"),
    [
        ("gemini-400-invalid-argument", "INVALID_ARGUMENT: Penalty is not enabled"),
        ("gemini-400-thinking-level-unsupported", "Thinking level MINIMAL is not supported"),
        ("gemini-400-forced-tool-with-json-mime", "Forced function calling (ANY mode)"),
    ],
)
def test_recorded_bad_requests(rid: str, needle: str) -> None:
    resp = recorded_response(rid)
    e = A.map_error(resp.status, resp.headers, resp.body, DEP)
    assert isinstance(e, BadRequestError)
    assert e.status == 400
    assert needle in str(e)


def test_daily_quota_and_bad_key_classes() -> None:
    daily = {
        "error": {
            "code": 429,
            "message": "Quota exceeded",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}],
                }
            ],
        }
    }
    resp = response(daily, 429)
    assert type(A.map_error(429, resp.headers, resp.body, DEP)) is QuotaExhaustedError
    bad_key = {
        "error": {
            "code": 400,
            "message": f"API key not valid. Please pass a valid API key. ({CANARY_KEY})",
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ],
        }
    }
    resp = response(bad_key, 400)
    e = A.map_error(400, resp.headers, resp.body, DEP)
    assert type(e) is AuthenticationError
    assert CANARY_KEY not in str(e)
    assert CANARY_KEY not in repr(e.body)


# ------------------------------------------------------------------------------------ issue 10


def test_recorded_partial_args_stream_is_one_call_per_function_call() -> None:
    """Vertex streams Gemini 3 call arguments as willContinue/partialArgs pieces: they used to
    become a call per piece; now each function call is one call, in order."""
    rid = "vertex-gemini3-stream-thought-part-partial-args"
    for piece in (None, 7):
        chunks, state = W.stream(chat("x", stream=True), recorded_frames(rid), piece)
        assert state.done
        r = state.finish()
        prefix = "call__vr4aYiWEJnYodAPkujX0QM_"
        assert [(t.id, t.name, t.parsed_arguments()) for t in r.tool_calls] == [
            (prefix + "0", "read_theme", {}),
            (prefix + "1", "read_screen", {"id": "A"}),
            (prefix + "2", "read_screen", {"id": "B"}),
            (prefix + "3", "read_screen", {"id": "C"}),
        ]
        assert r.tool_calls[0].signature == signatures(rid)[0]
        assert [t.signature for t in r.tool_calls[1:]] == [None, None, None]
        assert r.finish_reason == "tool_calls"
        # The deltas: each call opened once with its id and name, its arguments once.
        deltas = [d for c in chunks for d in c.tool_calls]
        assert [(d.index, d.id, d.name) for d in deltas if d.name] == [
            (i, prefix + str(i), n)
            for i, n in enumerate(["read_theme", "read_screen", "read_screen", "read_screen"])
        ]
        joined = ["".join(d.arguments for d in deltas if d.index == i) for i in range(4)]
        assert joined == ["{}", '{"id":"A"}', '{"id":"B"}', '{"id":"C"}']
        # The thought part is reasoning, kept (unsigned) in reasoning_parts.
        assert r.reasoning.startswith("**Processing User Requests**")
        assert r.text == ""
        assert [(p.id, p.signature, p.provider) for p in r.reasoning_parts] == [
            ("thought", None, "gemini")
        ]


def test_partial_args_paths_and_value_kinds() -> None:
    def fc(**kw: object) -> dict[str, object]:
        return {"candidates": [{"content": {"parts": [{"functionCall": kw}]}}]}

    frames = sse(
        fc(name="plan", willContinue=True, id="fc1"),
        fc(
            partialArgs=[
                {"jsonPath": "$.steps[0].title", "stringValue": "Wr", "willContinue": True},
                {"jsonPath": "$.steps[0].title", "stringValue": "ite"},
                {"jsonPath": "$.steps[1]['n']", "numberValue": 2},
                {"jsonPath": "$.done", "boolValue": False},
                {"jsonPath": "$.note", "nullValue": "NULL_VALUE"},
            ],
            willContinue=True,
        ),
        fc(),
        {"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}]},
    )
    _, state = W.stream(chat("x", stream=True), [frames], 5)
    (call,) = state.finish().tool_calls
    assert call.id == "fc1"
    assert call.parsed_arguments() == {
        "steps": [{"title": "Write"}, {"n": 2}],
        "done": False,
        "note": None,
    }


def test_non_partial_stream_parts_stay_one_call_each() -> None:
    part = {"functionCall": {"name": "f", "args": {"a": 1}}}
    frames = sse(
        {"candidates": [{"content": {"parts": [part, part]}}], "responseId": "R1"},
        {"candidates": [{"content": {"parts": [part]}, "finishReason": "STOP"}]},
    )
    _, state = W.stream(chat("x", stream=True), [frames])
    assert [t.id for t in state.finish().tool_calls] == ["call_R1_0", "call_R1_1", "call_R1_2"]


def test_recorded_text_signature_is_kept_and_replayed_on_its_text() -> None:
    rid = "gemini3-text"
    r = W.parse(recorded_response(rid), chat("hi"))
    (sig,) = signatures(rid)
    assert [(p.signature, p.id, p.provider, p.text) for p in r.reasoning_parts] == [
        (sig, f"text:{len(r.text)}", "gemini", "")
    ]
    body = W.body(chat([Message.user("hi"), r.message(), Message.user("and?")]))
    assert body["contents"][1] == {
        "role": "model",
        "parts": [{"text": r.text, "thoughtSignature": sig}],
    }


def test_recorded_empty_last_part_signature_goes_back_on_the_text() -> None:
    rid = "gemini3-stream-empty-text-thought-signature"
    _, state = W.stream(chat("x", stream=True), recorded_frames(rid))
    r = state.finish()
    (sig,) = signatures(rid)
    assert [(p.signature, p.id) for p in r.reasoning_parts] == [(sig, "text:1")]
    body = W.body(chat([Message.user("x"), r.message(), Message.user("y")]))
    assert body["contents"][1]["parts"] == [{"text": "4", "thoughtSignature": sig}]


def test_recorded_tool_loop_replays_the_signature_not_the_sentinel() -> None:
    """The call's own signature and id go back; the sentinel used to be sent every time."""
    rid = "gemini3-tool-call-thought-signature"
    r = W.parse(recorded_response(rid), chat("x"))
    call = r.tool_calls[0]
    msgs = [Message("user", "weather?"), r.message(), Message.tool(call.id, '{"temp": 21}')]
    body = W.body(chat(msgs))
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {
                        "name": "weather",
                        "args": {"location": "San Francisco"},
                        "id": call.id,
                    },
                    "thoughtSignature": signatures(rid)[0],
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "weather", "response": {"temp": 21}, "id": call.id}}
            ],
        },
    ]
    assert SIGNATURE_SENTINEL.encode() not in (A.build_request(chat(msgs), DEP).body or b"")


def test_thought_parts_with_signatures_are_replayed_in_place() -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "Let me think. ", "thought": True},
                        {"text": "Done.", "thought": True, "thoughtSignature": "U0lHMQ=="},
                        {"text": "Answer "},
                        {"text": "here.", "thoughtSignature": "U0lHMg=="},
                        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "U0lHMw=="},
                        {"functionCall": {"name": "g", "args": {}}},
                    ]
                },
                "finishReason": "STOP",
            }
        ],
        "responseId": "R9",
    }
    r = W.parse(response(body), chat("x"))
    assert r.text == "Answer here."
    assert r.reasoning == "Let me think. Done."
    assert [(t.id, t.signature) for t in r.tool_calls] == [
        ("call_R9_0", "U0lHMw=="),
        ("call_R9_1", None),
    ]
    m = r.message()
    replay = W.body(chat([Message.user("x"), m, Message.user("more")]))["contents"][1]["parts"]
    assert replay == [
        {"text": "Let me think. Done.", "thought": True, "thoughtSignature": "U0lHMQ=="},
        {"text": "Answer here.", "thoughtSignature": "U0lHMg=="},
        {
            "functionCall": {"name": "f", "args": {}, "id": "call_R9_0"},
            "thoughtSignature": "U0lHMw==",
        },
        # The second parallel call had no signature and gets none (nor the sentinel).
        {"functionCall": {"name": "g", "args": {}, "id": "call_R9_1"}},
    ]


def test_other_providers_reasoning_parts_are_not_replayed() -> None:
    from llmrelay.types import ReasoningPart, TextPart

    m = Message(
        "assistant",
        [
            ReasoningPart("thinking", signature="anthropic-sig", provider="anthropic"),
            TextPart("ok"),
        ],
    )
    body = W.body(chat([Message.user("hi"), m, Message.user("and?")]))
    assert body["contents"][1] == {"role": "model", "parts": [{"text": "ok"}]}


@pytest.mark.parametrize(
    ("model", "effort", "config", "adjusted"),
    [
        ("gemini-3-pro-preview", "high", {"thinkingLevel": "HIGH", "includeThoughts": True}, None),
        (
            "gemini-3-pro-preview",
            "minimal",
            {"thinkingLevel": "LOW", "includeThoughts": True},
            "sent as low",
        ),
        ("gemini-3-pro-preview", "none", None, "cannot turn thinking off"),
        (
            "gemini-3-flash-preview",
            "minimal",
            {"thinkingLevel": "MINIMAL", "includeThoughts": True},
            None,
        ),
        (
            "gemini-3-flash-preview",
            "medium",
            {"thinkingLevel": "MEDIUM", "includeThoughts": True},
            None,
        ),
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}, None),
        ("gemini-2.5-flash", "medium", {"thinkingBudget": 8192, "includeThoughts": True}, None),
        (
            "gemini-2.5-flash-lite",
            "minimal",
            {"thinkingBudget": 512, "includeThoughts": True},
            None,
        ),
        ("gemini-2.5-pro", "low", {"thinkingBudget": 1024, "includeThoughts": True}, None),
        ("gemini-2.5-pro", "none", None, "cannot turn thinking off"),
        ("gemini-1.5-flash", "high", None, "no known thinking setting"),
        (
            "gemini-3.1-pro-preview",
            "minimal",
            {"thinkingLevel": "LOW", "includeThoughts": True},
            "sent as low",
        ),
        (
            "gemini-3.1-pro-preview",
            "medium",
            {"thinkingLevel": "MEDIUM", "includeThoughts": True},
            None,
        ),
        (
            "gemini-3.5-flash",
            "minimal",
            {"thinkingLevel": "MINIMAL", "includeThoughts": True},
            None,
        ),
        ("gemini-3.5-flash", "none", None, "cannot turn thinking off"),
        ("models/gemini-2.5-flash-lite", "none", {"thinkingBudget": 0}, None),
    ],
)
def test_reasoning_effort_to_thinking_config(
    model: str, effort: str, config: dict[str, object] | None, adjusted: str | None
) -> None:
    http = A.build_request(chat("hi", reasoning_effort=effort), deployment("gemini", model))
    gc = body_of(http).get("generationConfig", {})
    assert gc.get("thinkingConfig") == config
    if adjusted is None:
        assert "reasoning_effort" not in http.adjusted
    else:
        assert adjusted in http.adjusted["reasoning_effort"]


def test_recorded_thoughts_answer_has_reasoning_and_signature() -> None:
    rid = "gemini3-reasoning"
    r = W.parse(recorded_response(rid), chat("x"))
    assert r.reasoning == ""  # thoughts not included: only the signature came
    assert [p.signature for p in r.reasoning_parts] == signatures(rid)
    assert r.usage.reasoning_tokens == 282


def test_developer_documents_audio_and_tool_errors() -> None:
    from llmrelay.types import AudioPart, DocumentPart, TextPart

    msgs = [
        Message("system", "Be brief."),
        Message("developer", [TextPart("Cite pages.", cache_control={"type": "ephemeral"})]),
        Message(
            "user",
            [
                TextPart("Summarise", cache_control={"type": "ephemeral"}),
                DocumentPart(data=b"%PDF-1.4", media_type="application/pdf", name="a.pdf"),
                DocumentPart(url="https://example.com/paper.pdf"),
                DocumentPart(url="gs://bucket/notes.txt", media_type="text/plain"),
                AudioPart(data=b"RIFF", media_type="audio/wav"),
            ],
        ),
        Message("assistant", None, tool_calls=[ToolCall("c1", "lookup", "{}")]),
        Message("tool", "not found", tool_call_id="c1", is_error=True),
        Message("tool", '{"code": 404}', tool_call_id="c1", is_error=True),
    ]
    body = W.body(chat(msgs))
    # developer -> system instruction; cache_control is not sent (Gemini caches implicitly).
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Cite pages."}]}
    assert body["contents"][0]["parts"] == [
        {"text": "Summarise"},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0xLjQ="}},
        {"fileData": {"fileUri": "https://example.com/paper.pdf", "mimeType": "application/pdf"}},
        {"fileData": {"fileUri": "gs://bucket/notes.txt", "mimeType": "text/plain"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
    ]
    assert [p["functionResponse"]["response"] for p in body["contents"][2]["parts"]] == [
        {"error": "not found"},
        {"error": {"code": 404}},
    ]


def test_recorded_model_armor_finish_is_content_filtered() -> None:
    rid = "vertex-gemini-model-armor-response-block"
    with pytest.raises(ContentFilteredError) as info:
        W.parse(recorded_response(rid), chat("x"))
    e = info.value
    assert e.category == "MODEL_ARMOR"
    assert e.explanation is not None
    assert e.explanation.startswith("The response violated Responsible AI Safety settings")
    assert e.partial_text == ""


def test_recorded_blocked_prompts_carry_category_and_explanation() -> None:
    with pytest.raises(ContentFilteredError) as info:
        W.parse(recorded_response("gemini-prompt-blocked"), chat("x"))
    assert (info.value.category, info.value.explanation) == ("PROHIBITED_CONTENT", None)
    armor = recorded_response("vertex-gemini-model-armor-prompt-blocked", 1)
    with pytest.raises(ContentFilteredError) as info:
        W.parse(armor, chat("x"))
    assert info.value.category == "MODEL_ARMOR"
    assert info.value.explanation == "The prompt violated Prompt Injection and Jailbreak filters."


@pytest.mark.parametrize(
    "reason",
    [
        "SAFETY",
        "RECITATION",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "IMAGE_SAFETY",
        "MODEL_ARMOR",
    ],
)
def test_filter_finishes_raise_with_the_partial_text(reason: str) -> None:
    ratings = [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "MEDIUM", "blocked": True}]
    first = {"candidates": [{"content": {"parts": [{"text": "Once upon"}]}}]}
    last = {
        "candidates": [
            {
                "content": {"parts": [{"text": " a"}]},
                "finishReason": reason,
                "safetyRatings": ratings,
            }
        ]
    }
    chunks, state = W.stream(chat("x", stream=True), [sse(first, last)])
    assert text_of(chunks) == "Once upon a"
    assert state.done
    with pytest.raises(ContentFilteredError) as info:
        state.finish()
    assert info.value.category == reason
    assert info.value.explanation == "hate_speech (MEDIUM)"
    assert info.value.partial_text == "Once upon a"
    with pytest.raises(ContentFilteredError):
        W.parse(response(last), chat("x"))


def test_stream_done_only_at_the_finish_chunk() -> None:
    state = A.stream_state(chat("x", stream=True), DEP)
    feed_chunks = sse({"candidates": [{"content": {"parts": [{"text": "a"}]}}]})
    from .sansio import feed

    feed(state, [feed_chunks])
    assert not state.done
    feed(state, [sse({"candidates": [{"content": {"parts": []}, "finishReason": "STOP"}]})])
    assert state.done


def test_signatures_survive_the_response_codec_and_other_parts_are_not_pinned() -> None:
    """A cached or journalled answer (the one Response codec) replays the same signatures."""
    from llmrelay.core.codec import response_from_dict, response_to_dict

    body = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {
                            "inlineData": {"mimeType": "image/png", "data": "AA=="},
                            "thoughtSignature": "SU1H",
                        },
                        {"text": "Here.", "thoughtSignature": "VFhU"},
                        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "Rk4="},
                    ]
                },
                "finishReason": "STOP",
            }
        ],
        "responseId": "R2",
    }
    r = W.parse(response(body), chat("x"))
    assert [(p.id, p.signature) for p in r.reasoning_parts] == [("text:5", "VFhU")]
    back = response_from_dict(response_to_dict(r))
    assert back.reasoning_parts == r.reasoning_parts
    assert back.tool_calls == r.tool_calls
    msgs = [Message.user("x"), back.message(), Message.tool("call_R2_0", "ok")]
    parts = W.body(chat(msgs))["contents"][1]["parts"]
    assert parts == [
        {"text": "Here.", "thoughtSignature": "VFhU"},
        {"functionCall": {"name": "f", "args": {}, "id": "call_R2_0"}, "thoughtSignature": "Rk4="},
    ]
