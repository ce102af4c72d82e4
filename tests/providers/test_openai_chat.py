"""The openai_chat adapter against the fake upstream, over real sockets."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import llmrelay
from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY

MODEL = "openai/gpt-4.1-mini"


@pytest.fixture
def client() -> llmrelay.Client:
    return llmrelay.Client()


async def test_chat_text_usage_and_request_shape(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat(
        MODEL,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
        temperature=0.2,
        max_tokens=50,
        stop="END",
        seed=7,
    )
    assert r.text == "Echo: hello there"
    assert r.finish_reason == "stop"
    assert r.provider == "openai"
    assert r.model == "gpt-4.1-mini"
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens > 0
    assert r.request_id
    assert r.request_id.startswith("req_fake_")
    assert r.trace[0].outcome == "success"
    body = fake.requests[-1].body
    assert body["max_completion_tokens"] == 50  # OpenAI's current field
    assert body["stop"] == ["END"]
    assert body["seed"] == 7
    assert body["temperature"] == 0.2
    assert fake.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"
    await client.aclose()


async def test_stream_ends_with_complete_response(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    s = client.astream(MODEL, "stream me please", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    deltas = []
    last = None
    async for c in s:
        deltas.append(c.delta)
        last = c
    assert last is not None
    assert last.done
    assert last.response is not None
    assert "".join(deltas) == "Echo: stream me please" == last.response.text
    assert last.response.usage.output_tokens > 0  # from the include_usage chunk
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
    await client.aclose()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply.error(400, "bad thing"), llmrelay.BadRequestError),
        (Reply.error(401, "Incorrect API key"), llmrelay.AuthenticationError),
        (Reply.error(403, "nope"), llmrelay.PermissionDeniedError),
        (Reply.error(404, "The model does not exist"), llmrelay.NotFoundError),
        (Reply.error(409, "conflict"), llmrelay.ConflictError),
        (Reply.error(429, "Rate limit reached"), llmrelay.RateLimitedError),
        (
            Reply.error(
                429,
                "You exceeded your current quota",
                type="insufficient_quota",
                code="insufficient_quota",
            ),
            llmrelay.QuotaExhaustedError,
        ),
        (
            Reply.error(
                400,
                "This model's maximum context length is 8192 tokens",
                code="context_length_exceeded",
            ),
            llmrelay.ContextWindowExceededError,
        ),
        (Reply.error(400, "filtered", code="content_filter"), llmrelay.ContentFilteredError),
        (Reply.error(500, "boom"), llmrelay.ServerError),
        (Reply.error(503, "The engine is currently overloaded"), llmrelay.ServerError),
        (
            Reply.raw("<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
            llmrelay.InvalidResponseError,
        ),
        (Reply.raw('{"id": "chatcmpl-1", "choices": [{"mess'), llmrelay.InvalidResponseError),
    ],
)
async def test_errors_are_typed(
    fake: FakeUpstream, client: llmrelay.Client, reply: Reply, error: type[Exception]
) -> None:
    fake.push(reply)
    with pytest.raises(error) as info:
        await client.achat(
            MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url, retries=0
        )
    e = info.value
    assert isinstance(e, llmrelay.LLMRelayError)
    assert e.provider == "openai"
    assert e.model == "gpt-4.1-mini"
    assert CANARY_KEY not in str(e)
    assert CANARY_KEY not in repr(e)
    await client.aclose()


async def test_rate_limit_carries_retry_after(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(
        Reply.error(
            429, "slow down", headers={"retry-after": "3", "x-ratelimit-remaining-requests": "0"}
        )
    )
    with pytest.raises(llmrelay.RateLimitedError) as info:
        await client.achat(
            MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url, retries=0
        )
    assert info.value.retry_after == 3.0
    assert info.value.status == 429
    assert info.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert info.value.request_id
    assert info.value.request_id.startswith("req_fake_")
    await client.aclose()


async def test_missing_key_is_raised_before_any_request(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    with pytest.raises(llmrelay.MissingAPIKeyError) as info:
        await client.achat(MODEL, "hi", base_url=fake.openai_base_url)
    assert "OPENAI_API_KEY" in str(info.value)
    assert info.value.variable == "OPENAI_API_KEY"
    assert fake.requests == []


async def test_env_key_and_base_url(fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", CANARY_KEY)
    monkeypatch.setenv("GROQ_BASE_URL", fake.openai_base_url)
    client = llmrelay.Client()
    r = await client.achat("groq/llama-3.1-8b-instant", "hi")
    assert r.provider == "groq"
    assert r.text == "Echo: hi"
    assert "max_tokens" not in fake.requests[-1].body
    await client.aclose()


async def test_tool_calls_pass_through(fake: FakeUpstream, client: llmrelay.Client) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    fake.push(Reply.tool_call("get_weather", {"city": "Paris"}))
    r = await client.achat(
        MODEL,
        "weather?",
        tools=tools,
        tool_choice="auto",
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
    )
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls[0].name == "get_weather"
    assert r.tool_calls[0].parsed_arguments() == {"city": "Paris"}
    sent = fake.requests[-1].body
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "auto"
    # And the tool result goes back in OpenAI's shape.
    msgs = [
        {"role": "user", "content": "weather?"},
        r.message(),
        llmrelay.Message.tool(r.tool_calls[0].id, '{"temp": 21}'),
    ]
    await client.achat(MODEL, msgs, tools=tools, api_key=CANARY_KEY, base_url=fake.openai_base_url)
    sent = fake.requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_fake_0001"}
    await client.aclose()


async def test_streamed_tool_call_is_assembled(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(Reply.tool_call("lookup", {"q": "x" * 40}))
    s = client.astream(
        MODEL,
        "go",
        tools=[{"name": "lookup", "parameters": {"type": "object"}}],
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
    )
    resp = await s.collect()
    assert resp.tool_calls[0].name == "lookup"
    assert resp.tool_calls[0].parsed_arguments() == {"q": "x" * 40}
    await client.aclose()


async def test_image_parts_become_image_url(fake: FakeUpstream, client: llmrelay.Client) -> None:
    msg = llmrelay.Message.user(
        [
            llmrelay.TextPart("what is this?"),
            llmrelay.ImagePart(data=b"\x89PNG", media_type="image/png"),
        ]
    )
    await client.achat(MODEL, [msg], api_key=CANARY_KEY, base_url=fake.openai_base_url)
    content = fake.requests[-1].body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "what is this?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    await client.aclose()


async def test_cut_stream_is_a_typed_error_with_partial_text(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.cut_stream(after_chunks=2, text="one two three four five"))
    s = client.astream(MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url, retries=0)
    seen: list[str] = []

    async def read_all() -> None:
        async for c in s:
            seen.append(c.delta)

    with pytest.raises(llmrelay.StreamInterruptedError) as info:
        await read_all()
    assert "".join(seen) == "one two"
    assert info.value.partial.text == "one two"
    await client.aclose()


async def test_in_stream_error_event(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(Reply.stream_error(after_chunks=1, message="server melted", type="server_error"))
    s = client.astream(MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    with pytest.raises(llmrelay.StreamInterruptedError, match="server melted") as info:
        await s.collect()
    assert isinstance(info.value.__cause__, llmrelay.ServerError)
    assert info.value.partial.text == "Echo:"
    # Before any output, the same error is the typed error itself (and may be retried).
    fake.push(
        *[Reply.stream_error(after_chunks=0, message="melted early", type="server_error")] * 3
    )
    s = client.astream(MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url, retries=0)
    with pytest.raises(llmrelay.ServerError, match="melted early"):
        await s.collect()
    await client.aclose()


async def test_mistral_translates_seed_and_drops_user(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat(
        "mistral/mistral-small-latest",
        "hi",
        seed=3,
        user="u1",
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
    )
    body = fake.requests[-1].body
    assert body["random_seed"] == 3
    assert "seed" not in body
    assert "user" not in body
    assert set(r.adjusted_params) == {"seed", "user"}
    await client.aclose()


# ------------------------------------------------------------------------------------ issue 10


class Verdict(BaseModel):
    ok: bool
    reason: str


async def test_refusal_with_response_model_is_not_reasked(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.refuse("I can't help with that request."))
    with pytest.raises(llmrelay.ContentFilteredError) as info:
        await client.achat(
            MODEL,
            "judge this",
            response_model=Verdict,
            max_reasks=2,
            api_key=CANARY_KEY,
            base_url=fake.openai_base_url,
        )
    e = info.value
    assert e.category == "refusal"
    assert e.explanation == "I can't help with that request."
    assert e.request_id is not None
    assert e.request_id.startswith("req_fake_")
    assert len(fake.requests) == 1  # no structured-output re-ask, no retry
    assert fake.requests[0].body["response_format"]["type"] == "json_schema"
    await client.aclose()


async def test_refusal_moves_to_the_content_filter_chain(
    fake: FakeUpstream, client: llmrelay.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", CANARY_KEY)
    monkeypatch.setenv("GROQ_BASE_URL", fake.openai_base_url)
    fake.push(Reply.refuse("No."))
    r = await client.achat(
        MODEL,
        "judge this",
        response_model=Verdict,
        content_filter_fallbacks=["groq/llama-3.1-8b-instant"],
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
    )
    assert r.provider == "groq"
    assert isinstance(r.object, Verdict)
    assert r.trace[0].error == "ContentFilteredError"
    assert [q.body["model"] for q in fake.requests] == ["gpt-4.1-mini", "llama-3.1-8b-instant"]
    await client.aclose()


async def test_streamed_refusal_raises_at_the_end(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.refuse("I won't write that."))
    s = client.astream(MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    with pytest.raises(llmrelay.ContentFilteredError) as info:
        await s.collect()
    assert info.value.explanation == "I won't write that."
    assert info.value.partial_text == ""
    assert info.value.request_id is not None
    assert info.value.request_id.startswith("req_fake_")  # the stream's header
    assert len(fake.requests) == 1
    await client.aclose()


async def test_content_filter_finish_is_typed_over_the_socket(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.ok("half a story", finish="content_filter"))
    with pytest.raises(llmrelay.ContentFilteredError) as info:
        await client.achat(MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    assert info.value.partial_text == "half a story"
    assert info.value.category == "content_filter"
    await client.aclose()


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_plain_and_streamed(
    fake: FakeUpstream, client: llmrelay.Client, field: str
) -> None:
    thought = "The user greets me. I greet back."
    fake.push(Reply.ok("Hello!", reasoning=thought, reasoning_field=field))
    r = await client.achat(MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    assert r.text == "Hello!"
    assert r.reasoning == thought
    fake.push(Reply.ok("Hello!", reasoning=thought, reasoning_field=field))
    s = client.astream(MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    pieces: list[str] = []
    last = None
    async for c in s:
        pieces.append(c.reasoning)
        last = c
    assert "".join(pieces) == thought
    assert last is not None
    assert last.response is not None
    assert last.response.reasoning == thought
    assert last.response.text == "Hello!"
    await client.aclose()


async def test_reasoning_effort_and_developer_role_reach_openai(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    msgs = [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}]
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    r = await client.achat("openai/gpt-5-mini", msgs, reasoning_effort="low", **kw)
    body = fake.requests[-1].body
    assert body["reasoning_effort"] == "low"
    assert body["messages"][0] == {"role": "developer", "content": "Be terse."}
    assert "reasoning_effort" not in r.adjusted_params
    # gpt-4.1-mini does not reason: its catalog row says OpenAI answers 400 to the parameter
    r = await client.achat(MODEL, msgs, reasoning_effort="low", **kw)
    assert "reasoning_effort" not in fake.requests[-1].body
    assert r.adjusted_params["reasoning_effort"].startswith("dropped:")
    await client.aclose()


async def test_unsupported_document_is_refused_before_sending(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    msg = llmrelay.Message.user(
        [llmrelay.DocumentPart(data=b"%PDF-1.4", media_type="application/pdf")]
    )
    with pytest.raises(llmrelay.UnsupportedCapabilityError, match="documents"):
        await client.achat(
            "groq/llama-3.1-8b-instant", [msg], api_key=CANARY_KEY, base_url=fake.openai_base_url
        )
    assert fake.requests == []
    await client.aclose()


async def test_audio_goes_only_to_models_whose_catalog_row_takes_audio(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    clip = llmrelay.Message.user(
        [llmrelay.AudioPart(b"RIFFfake", "audio/wav"), llmrelay.TextPart("transcribe")]
    )
    # gpt-4.1-mini's catalog row reads text and images only: refused before sending.
    with pytest.raises(llmrelay.UnsupportedCapabilityError) as info:
        await client.achat(MODEL, [clip], api_key=CANARY_KEY, base_url=fake.openai_base_url)
    assert info.value.capability == "audio"
    assert fake.requests == []
    # A model the catalog does not know (an audio model) gets the input_audio part.
    await client.achat(
        "openai/gpt-4o-audio-preview", [clip], api_key=CANARY_KEY, base_url=fake.openai_base_url
    )
    part = fake.requests[-1].body["messages"][0]["content"][0]
    assert part == {"type": "input_audio", "input_audio": {"data": "UklGRmZha2U=", "format": "wav"}}
    await client.aclose()


async def test_parallel_tool_calls_all_at_index_0_stay_apart(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    """Gemini's OpenAI-compatible endpoint (and gateways relaying Gemini) stream parallel calls
    each complete in its own delta, every one at ``index: 0`` with its own id: they are two
    calls, not one with concatenated arguments."""
    import orjson

    def tc(**kw: object) -> bytes:
        chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "gemini-2.5-flash"}
        chunk["choices"] = [{"index": 0, "delta": {"role": "assistant", "tool_calls": [kw]}}]
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    fn = {"name": "get_weather"}
    body = (
        tc(
            index=0,
            id="function-call-1",
            type="function",
            function={**fn, "arguments": '{"city":"Oslo"}'},
        )
        + tc(
            index=0,
            id="function-call-2",
            type="function",
            function={**fn, "arguments": '{"city":"Rome"}'},
        )
        + tc(index=0, function={"arguments": ""})
        + b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},'
        b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    fake.push(Reply.raw(body, content_type="text/event-stream"))
    r = await client.astream(
        MODEL, "weather in Oslo and Rome", api_key=CANARY_KEY, base_url=fake.openai_base_url
    ).collect()
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("function-call-1", "get_weather", '{"city":"Oslo"}'),
        ("function-call-2", "get_weather", '{"city":"Rome"}'),
    ]
    await client.aclose()


#: Google's documented exchange for thought signatures over its OpenAI-compatible endpoint
#: (https://ai.google.dev/gemini-api/docs/thought-signatures, "OpenAI compatibility": the model
#: turn of step 1 carries ``extra_content.google.thought_signature`` on its function call, and
#: the step-2 request sends it back on the same tool call). No public recording of this endpoint
#: with signatures was found (searched: ``thought_signature`` ``extra_content``), so the answer
#: is the documented one in a Chat Completions envelope.
GEMINI_TOOL_ANSWER = {
    "id": "gemini-answer-1",
    "object": "chat.completion",
    "created": 1764000000,
    "model": "gemini-3-flash-preview",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "tool_calls": [
                    {
                        "extra_content": {"google": {"thought_signature": "<Signature A>"}},
                        "function": {"arguments": '{"flight":"AA100"}', "name": "check_flight"},
                        "id": "function-call-1",
                        "type": "function",
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40},
}
FLIGHT_TOOL = {
    "name": "check_flight",
    "parameters": {"type": "object", "properties": {"flight": {"type": "string"}}},
}


async def test_gemini_thought_signatures_come_back_where_they_came(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    """Gemini's OpenAI-compatible endpoint puts a thought signature on each tool call
    (``extra_content.google.thought_signature``); Gemini 3 answers 400 to a next turn without
    it. It is kept on ``ToolCall.signature`` and sent back in the same place, plain and
    streamed, to that endpoint only."""
    import orjson

    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    model = "gemini_openai/gemini-3-flash-preview"
    ask = "Check flight status for AA100 and book a taxi 2 hours before if delayed."
    fake.push(Reply.raw(orjson.dumps(GEMINI_TOOL_ANSWER)))
    r = await client.achat(model, ask, tools=[FLIGHT_TOOL], **kw)
    assert [(c.id, c.name, c.arguments, c.signature) for c in r.tool_calls] == [
        ("function-call-1", "check_flight", '{"flight":"AA100"}', "<Signature A>")
    ]
    history = [
        {"role": "user", "content": ask},
        r.message(),
        {
            "role": "tool",
            "tool_call_id": "function-call-1",
            "content": '{"status":"delayed","departure_time":"12 PM"}',
        },
    ]
    await client.achat(model, history, tools=[FLIGHT_TOOL], **kw)
    replayed = fake.requests[-1].body["messages"][1]["tool_calls"]
    assert replayed == [
        {
            "id": "function-call-1",
            "type": "function",
            "function": {"name": "check_flight", "arguments": '{"flight":"AA100"}'},
            "extra_content": {"google": {"thought_signature": "<Signature A>"}},
        }
    ]
    # Another vendor never sees Google's field.
    await client.achat("openai/gpt-4.1-mini", history, tools=[FLIGHT_TOOL], **kw)
    assert "extra_content" not in fake.requests[-1].body["messages"][1]["tool_calls"][0]

    # Streamed: the signature comes in the delta that opens the call (parallel calls: on the
    # first one only), arguments in later deltas.
    def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
        c = {"id": "s1", "object": "chat.completion.chunk", "model": "gemini-3-flash-preview"}
        c["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
        return b"data: " + orjson.dumps(c) + b"\n\n"

    sig = {"extra_content": {"google": {"thought_signature": "<Signature B>"}}}
    body = (
        chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {"index": 0, "id": "function-call-2", "type": "function", **sig,
                     "function": {"name": "check_flight", "arguments": ""}},
                ],
            }
        )
        + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"flight":"BA1"}'}}]})
        + chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "function-call-3", "type": "function",
                     "function": {"name": "check_flight", "arguments": '{"flight":"LH2"}'}},
                ]
            },
            "tool_calls",
        )
        + b"data: [DONE]\n\n"
    )  # fmt: skip
    fake.push(Reply.raw(body, content_type="text/event-stream"))
    s = await client.astream(model, ask, tools=[FLIGHT_TOOL], **kw).collect()
    assert [(c.id, c.arguments, c.signature) for c in s.tool_calls] == [
        ("function-call-2", '{"flight":"BA1"}', "<Signature B>"),
        ("function-call-3", '{"flight":"LH2"}', None),
    ]
    await client.achat(model, [history[0], s.message()], **kw)
    calls = fake.requests[-1].body["messages"][1]["tool_calls"]
    assert [c.get("extra_content") for c in calls] == [sig["extra_content"], None]
    # ... and the streamed delta that brought it carries it, once (a relay passes it on).
    fake.push(Reply.raw(body, content_type="text/event-stream"))
    stream = client.astream(model, ask, tools=[FLIGHT_TOOL], **kw)
    deltas = [d async for c in stream for d in c.tool_calls]
    assert [(d.index, d.signature) for d in deltas] == [(0, "<Signature B>"), (0, None), (1, None)]
    await client.aclose()
