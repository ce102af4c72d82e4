"""The gemini adapter against the fake upstream's Gemini dialect, over real sockets."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pydantic
import pytest

import llmrelay
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.testing.fake_gemini import fake_signature

from ..conftest import CANARY_KEY

MODEL = "gemini/gemini-2.5-flash"
PATH = "/v1beta/models/gemini-2.5-flash"


@pytest.fixture
async def client() -> AsyncIterator[llmrelay.Client]:
    c = llmrelay.Client()
    yield c
    await c.aclose()


def _kw(fake: FakeUpstream) -> dict[str, object]:
    # No retries: every scripted error must reach the test as it is.
    return {"api_key": CANARY_KEY, "base_url": fake.gemini_base_url, "retries": 0}


WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


# --------------------------------------------------------------------------- plain calls


async def test_text_usage_and_request_shape(fake: FakeUpstream, client: llmrelay.Client) -> None:
    r = await client.achat(
        MODEL,
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
        temperature=0.2,
        max_tokens=50,
        top_p=0.9,
        stop="END",
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=0.25,
        **_kw(fake),
    )
    assert r.text == "Echo: hello there"
    assert r.finish_reason == "stop"
    assert r.raw_finish_reason == "STOP"
    assert r.provider == "gemini"
    assert r.model == "gemini-2.5-flash"
    assert r.id is not None
    assert r.id.startswith("fakeGemini")
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens > 0
    assert r.request_id
    assert r.request_id.startswith("req_fake_")
    sent = fake.requests[-1]
    assert sent.method == "POST"
    assert sent.path == PATH + ":generateContent"
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "temperature": 0.2,
            "maxOutputTokens": 50,
            "topP": 0.9,
            "stopSequences": ["END"],
            "seed": 7,
            "frequencyPenalty": 0.5,
            "presencePenalty": 0.25,
        },
    }
    # The key goes in the header, never in the URL.
    assert sent.headers["x-goog-api-key"] == CANARY_KEY
    assert sent.query == {}
    assert "authorization" not in sent.headers


async def test_multi_turn_roles_and_user_is_dropped(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    msgs = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    r = await client.achat(MODEL, msgs, user="u-123", **_kw(fake))
    assert r.text == "Echo: second"
    body = fake.requests[-1].body
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert "user" not in body  # the fake refuses unknown fields, as Google does
    assert set(r.adjusted_params) == {"user"}


async def test_empty_text_is_left_out(fake: FakeUpstream, client: llmrelay.Client) -> None:
    msgs = [
        llmrelay.Message.user("first"),
        llmrelay.Message.assistant(""),  # an empty answer
        llmrelay.Message.user([llmrelay.TextPart(""), llmrelay.TextPart("second")]),
    ]
    r = await client.achat(MODEL, msgs, **_kw(fake))
    assert r.text == "Echo: first second"
    # Google refuses empty text parts; the empty model turn goes and the user turns merge.
    assert fake.requests[-1].body["contents"] == [
        {"role": "user", "parts": [{"text": "first"}, {"text": "second"}]}
    ]


async def test_extra_merges_into_generation_config(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    await client.achat(
        MODEL,
        "hi",
        temperature=0.1,
        extra={"generationConfig": {"topK": 5}, "safetySettings": []},
        **_kw(fake),
    )
    body = fake.requests[-1].body
    assert body["generationConfig"] == {"temperature": 0.1, "topK": 5}
    assert body["safetySettings"] == []


async def test_stream_ends_with_complete_response(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.ok("one two three", input_tokens=11, output_tokens=3, cached_tokens=4))
    s = client.astream(MODEL, "stream me please", **_kw(fake))
    deltas = []
    finishes = []
    last = None
    async for c in s:
        deltas.append(c.delta)
        finishes.append(c.finish_reason)
        last = c
    assert last is not None
    assert last.done
    assert last.response is not None
    assert "".join(deltas) == "one two three" == last.response.text
    assert [f for f in finishes if f] == ["stop", "stop"]  # the last chunk, then the done chunk
    u = last.response.usage
    assert (u.input_tokens, u.output_tokens, u.cached_tokens) == (11, 3, 4)
    assert last.response.id is not None
    assert last.response.id.startswith("fakeGemini")
    sent = fake.requests[-1]
    assert sent.path == PATH + ":streamGenerateContent"
    assert sent.query == {"alt": "sse"}  # and no ?key=
    assert sent.headers["x-goog-api-key"] == CANARY_KEY


# --------------------------------------------------------------------------- errors


def _google_error(status: int, gstatus: str, message: str, *details: object) -> str:
    err: dict[str, object] = {"code": status, "message": message, "status": gstatus}
    if details:
        err["details"] = list(details)
    return orjson.dumps({"error": err}).decode()


QUOTA_PER_DAY = {
    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
    "violations": [
        {
            "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model_per_day",
            "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        }
    ],
}


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply.error(400, "Request contains an invalid argument."), llmrelay.BadRequestError),
        (
            Reply.error(
                400, "API key not valid. Please pass a valid API key.", code="API_KEY_INVALID"
            ),
            llmrelay.AuthenticationError,
        ),
        (
            Reply.error(403, "Method doesn't allow unregistered callers."),
            llmrelay.PermissionDeniedError,
        ),
        (
            Reply.error(
                404, "models/gemini-9 is not found for API version v1beta, or is not supported"
            ),
            llmrelay.NotFoundError,
        ),
        (
            Reply.error(429, "Resource has been exhausted (e.g. check quota)."),
            llmrelay.RateLimitedError,
        ),
        (
            Reply.error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                code="GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            ),
            llmrelay.QuotaExhaustedError,
        ),
        (
            Reply.error(
                400,
                "The input token count (1200293) exceeds the maximum number of tokens "
                "allowed (1048576).",
            ),
            llmrelay.ContextWindowExceededError,
        ),
        (
            Reply.error(
                400,
                "Gemini API free tier is not available in your country. Please enable billing.",
                type="FAILED_PRECONDITION",
            ),
            llmrelay.PermissionDeniedError,
        ),
        (Reply.error(500, "An internal error has occurred."), llmrelay.ServerError),
        (
            Reply.error(503, "The model is overloaded. Please try again later."),
            llmrelay.OverloadedError,
        ),
        (
            Reply.error(504, "Deadline expired before operation could complete."),
            llmrelay.ServerError,
        ),
        (
            Reply.raw("<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
            llmrelay.InvalidResponseError,
        ),
        (Reply.raw('{"candidates": [{"content": {"parts": [{"te'), llmrelay.InvalidResponseError),
        (Reply.raw('{"usageMetadata": {}}'), llmrelay.InvalidResponseError),
    ],
)
async def test_errors_are_typed(
    fake: FakeUpstream, client: llmrelay.Client, reply: Reply, error: type[Exception]
) -> None:
    fake.push(reply)
    with pytest.raises(error) as info:
        await client.achat(MODEL, "hi", **_kw(fake))
    e = info.value
    assert isinstance(e, llmrelay.LLMRelayError)
    assert e.provider == "gemini"
    assert e.model == "gemini-2.5-flash"
    assert CANARY_KEY not in str(e)
    assert CANARY_KEY not in repr(e)
    if reply.kind == "error":
        assert type(e) is error  # not merely a subclass: OverloadedError is a ServerError
        assert e.status == reply.status


async def test_overloaded_is_an_overloaded_error_not_plain_server_error(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.error(503, "The service is currently unavailable."))
    with pytest.raises(llmrelay.ServerError) as info:
        await client.achat(MODEL, "hi", **_kw(fake))
    assert type(info.value) is llmrelay.ServerError
    assert "UNAVAILABLE" in info.value.message


async def test_rate_limit_retry_after_from_retry_info(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.error(429, "Resource has been exhausted (e.g. check quota)."))
    with pytest.raises(llmrelay.RateLimitedError) as info:
        await client.achat(MODEL, "hi", **_kw(fake))
    e = info.value
    assert e.retry_after == 30.0  # google.rpc.RetryInfo retryDelay "30s"
    assert e.status == 429
    assert "RESOURCE_EXHAUSTED" in str(e)
    assert e.request_id
    assert e.request_id.startswith("req_fake_")


async def test_retry_after_header_wins_over_retry_info(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.error(429, "slow down", headers={"retry-after": "3"}))
    with pytest.raises(llmrelay.RateLimitedError) as info:
        await client.achat(MODEL, "hi", **_kw(fake))
    assert info.value.retry_after == 3.0


async def test_fractional_retry_delay(fake: FakeUpstream, client: llmrelay.Client) -> None:
    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}
    fake.push(Reply.raw(_google_error(429, "RESOURCE_EXHAUSTED", "slow", retry), status=429))
    with pytest.raises(llmrelay.RateLimitedError) as info:
        await client.achat(MODEL, "hi", **_kw(fake))
    assert info.value.retry_after == 1.5


async def test_per_day_quota_is_not_a_rate_limit(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    body = _google_error(
        429, "RESOURCE_EXHAUSTED", "You exceeded your current quota", QUOTA_PER_DAY
    )
    fake.push(Reply.raw(body, status=429))
    with pytest.raises(llmrelay.QuotaExhaustedError) as info:
        await client.achat(MODEL, "hi", **_kw(fake))
    assert "GenerateRequestsPerDayPerProjectPerModel-FreeTier" in str(info.value)
    assert not llmrelay.errors.is_retryable(info.value)


async def test_wrong_key_is_authentication_error_and_key_is_redacted(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    # Google answers a bad key with 400 INVALID_ARGUMENT and may echo the key in DebugInfo.
    body = _google_error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
        },
        {
            "@type": "type.googleapis.com/google.rpc.DebugInfo",
            "detail": f"Invalid key {CANARY_KEY}",
        },
    )
    fake.push(Reply.raw(body, status=400))
    with pytest.raises(llmrelay.AuthenticationError) as info:
        await client.achat(MODEL, "hi", **_kw(fake))
    e = info.value
    assert e.status == 400
    for text in (str(e), repr(e), orjson.dumps(e.body).decode()):
        assert CANARY_KEY not in text
    assert "[REDACTED]" in orjson.dumps(e.body).decode()


async def test_fake_refuses_a_wrong_key_like_google(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    with pytest.raises(llmrelay.AuthenticationError) as info:
        await client.achat(MODEL, "hi", api_key="not-the-key", base_url=fake.gemini_base_url)
    assert info.value.status == 400
    assert "API key not valid" in str(info.value)


async def test_missing_key_is_raised_before_any_request(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    with pytest.raises(llmrelay.MissingAPIKeyError) as info:
        await client.achat(MODEL, "hi", base_url=fake.gemini_base_url)
    assert info.value.variable == "GEMINI_API_KEY"
    assert fake.requests == []


async def test_blocked_prompt_is_content_filtered(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    body = {
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
            ],
        },
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
    }
    fake.push(Reply.raw(orjson.dumps(body)))
    with pytest.raises(llmrelay.ContentFilteredError) as info:
        await client.achat(MODEL, "something bad", **_kw(fake))
    msg = str(info.value)
    assert "SAFETY" in msg
    assert "dangerous_content" in msg
    assert "harassment" not in msg
    # The same in a stream: the only chunk has no candidates.
    fake.push(
        Reply.raw(b"data: " + orjson.dumps(body) + b"\r\n\r\n", content_type="text/event-stream")
    )
    with pytest.raises(llmrelay.ContentFilteredError):
        await client.astream(MODEL, "something bad", **_kw(fake)).collect()


async def _filtered(
    client: llmrelay.Client, fake: FakeUpstream, reply: Reply, *, streamed: bool = False
) -> tuple[llmrelay.ContentFilteredError, str]:
    """Push ``reply`` and ask once, plain or streamed: the ContentFilteredError raised and the
    text streamed before it."""
    fake.push(reply)
    seen: list[str] = []

    async def ask() -> object:
        if streamed:
            return await _drain(client.astream(MODEL, "hi", **_kw(fake)), seen)
        return await client.achat(MODEL, "hi", **_kw(fake))

    with pytest.raises(llmrelay.ContentFilteredError) as info:
        await ask()
    return info.value, "".join(seen)


async def test_safety_stop_of_the_answer_is_content_filtered(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    """finishReason SAFETY is a ContentFilteredError (it used to be an answer with finish
    ``content_filter`` that content_filter_fallbacks never saw), plain and streamed."""
    e, _ = await _filtered(client, fake, Reply.ok("partial answ", finish="content_filter"))
    assert (e.category, e.explanation, e.partial_text) == (
        "SAFETY",
        "dangerous_content (HIGH)",
        "partial answ",
    )
    assert "finishReason SAFETY" in str(e)
    cut = Reply.ok("partial answer here", finish="content_filter")
    e, seen = await _filtered(client, fake, cut, streamed=True)
    assert seen == "partial answer here"  # streamed first, raised at the end
    assert e.partial_text == "partial answer here"
    assert e.category == "SAFETY"
    for raw, mapped in (("length", "length"), ("LANGUAGE", "other")):
        fake.push(Reply.ok("x", finish=raw))
        r = await client.achat(MODEL, "hi", **_kw(fake))
        assert r.finish_reason == mapped
    fake.push(Reply.ok("x", finish="RECITATION"))
    with pytest.raises(llmrelay.ContentFilteredError, match="RECITATION"):
        await client.achat(MODEL, "hi", **_kw(fake))


def _safety_stop(text: str) -> Reply:
    return Reply.ok(text, finish="content_filter", path_contains="gemini-2.5-pro")


def _refusal(text: str) -> Reply:
    return Reply.refuse("I won't.", path_contains="gemini-2.5-pro")


@pytest.mark.parametrize("stop", [_safety_stop, _refusal], ids=["safety_finish", "refusal"])
async def test_filter_stop_triggers_content_filter_fallbacks(
    fake: FakeUpstream, point_at: Any, stop: Callable[[str], Reply]
) -> None:
    """A SAFETY finish and a scripted refusal (the fake's filter finish with a finishMessage)
    move on to the content-filter chain: plain, structured (no re-ask paid) and streamed."""
    point_at(fake)
    client = llmrelay.Client(engine=llmrelay.Engine(content_filter_fallbacks=[MODEL]))
    try:
        fake.push(stop("nope"))
        r = await client.achat("gemini/gemini-2.5-pro", "hi", api_key=CANARY_KEY, retries=0)
        assert r.text == "Echo: hi"
        assert r.model == "gemini-2.5-flash"
        assert [a.error for a in r.trace] == ["ContentFilteredError", None]
        # A structured-output call is not re-asked: the fallback answers it.
        fake.push(stop("{}"))
        r = await client.achat(
            "gemini/gemini-2.5-pro", "a city", response_model=City, api_key=CANARY_KEY, retries=0
        )
        assert isinstance(r.object, City)
        assert len([q for q in fake.requests if "gemini-2.5-pro" in q.path]) == 2
        # A stream stopped before any output falls back too.
        fake.push(stop(""))
        s = client.astream("gemini/gemini-2.5-pro", "hi", api_key=CANARY_KEY, retries=0)
        assert "".join([c.delta async for c in s]) == "Echo: hi"
        assert s.response is not None
        assert s.response.model == "gemini-2.5-flash"
        assert [a.error for a in s.response.trace] == ["ContentFilteredError", None]
    finally:
        await client.aclose()


async def test_scripted_refusal_is_a_typed_content_filter(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    """``Reply.refuse`` on the fake Gemini is a filter finish with Google's words in
    ``finishMessage``: a ContentFilteredError whose category is the finish reason and whose
    explanation is the finishMessage (over the flagged ratings), plain and streamed."""
    e, _ = await _filtered(client, fake, Reply.refuse("I can't help with that."))
    assert (e.category, e.explanation, e.partial_text) == ("SAFETY", "I can't help with that.", "")
    assert "finishReason SAFETY (I can't help with that.)" in str(e)
    odd = Reply.refuse("x", refusal_category="PROHIBITED_CONTENT", refusal_explanation="policy 7")
    e, seen = await _filtered(client, fake, odd, streamed=True)
    assert (e.category, e.explanation, seen) == ("PROHIBITED_CONTENT", "policy 7", "")
    e, _ = await _filtered(client, fake, Reply.refuse("No.", refusal_category="RECITATION"))
    assert (e.category, e.explanation) == ("RECITATION", "No.")


# --------------------------------------------------------------------------- streams that fail


async def _drain(stream: llmrelay.ResponseStream, deltas: list[str]) -> None:
    async for c in stream:
        deltas.append(c.delta)


async def test_in_stream_error_is_typed(fake: FakeUpstream, client: llmrelay.Client) -> None:
    # Before any output, the in-stream error is the typed error itself.
    fake.push(Reply.stream_error(after_chunks=0, message="The model is overloaded."))
    with pytest.raises(llmrelay.OverloadedError, match="overloaded") as info:
        await client.astream(MODEL, "hi", **_kw(fake)).collect()
    assert info.value.status == 503
    assert CANARY_KEY not in repr(info.value)
    fake.push(Reply.stream_error(after_chunks=0, message="boom", type="INTERNAL"))
    with pytest.raises(llmrelay.ServerError, match="boom"):
        await client.astream(MODEL, "hi", **_kw(fake)).collect()
    # After output, the engine reports an interrupted stream caused by the typed error.
    fake.push(Reply.stream_error(after_chunks=1, message="The model is overloaded."))
    seen: list[str] = []
    with pytest.raises(llmrelay.StreamInterruptedError) as cut:
        await _drain(client.astream(MODEL, "hi", **_kw(fake)), seen)
    assert seen[0] == "Echo:"
    assert isinstance(cut.value.__cause__, llmrelay.OverloadedError)
    assert cut.value.partial.text == "Echo:"


async def test_cut_stream_is_interrupted_with_partial_text(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.cut_stream(after_chunks=2, text="one two three four five", input_tokens=9))
    seen: list[str] = []
    with pytest.raises(llmrelay.StreamInterruptedError) as info:
        await _drain(client.astream(MODEL, "hi", **_kw(fake)), seen)
    assert "".join(seen) == "one two"
    partial = info.value.partial
    assert partial.text == "one two"
    assert partial.finish_reason is None
    assert partial.usage.input_tokens == 9  # every Gemini chunk carries the prompt count
    assert info.value.provider == "gemini"


async def test_non_stream_truncated_body(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(Reply.cut_stream(text="a long enough answer to cut in half"))
    with pytest.raises(llmrelay.InvalidResponseError, match="not valid JSON"):
        await client.achat(MODEL, "hi", **_kw(fake))


# --------------------------------------------------------------------------- tools


async def test_tool_calls_both_ways(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(Reply.tool_call("get_weather", {"city": "Paris"}))
    r = await client.achat(MODEL, "weather?", tools=[WEATHER], tool_choice="auto", **_kw(fake))
    assert r.finish_reason == "tool_calls"
    assert r.raw_finish_reason == "STOP"
    assert r.text == ""
    call = r.tool_calls[0]
    # Gemini 2.5 sends no id: one is made from the response id (unique per answer).
    assert r.id is not None
    assert (call.id, call.name) == (f"call_{r.id}_0", "get_weather")
    assert call.parsed_arguments() == {"city": "Paris"}
    sent = fake.requests[-1].body
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": WEATHER["parameters"],
                }
            ]
        }
    ]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    # The results go back as functionResponse parts, named after the call they answer.
    msgs = [
        {"role": "user", "content": "weather?"},
        r.message(),
        llmrelay.Message.tool(call.id, '{"temp": 21}'),
    ]
    r2 = await client.achat(MODEL, msgs, tools=[WEATHER], **_kw(fake))
    assert r2.text == "Echo: weather?"
    contents = fake.requests[-1].body["contents"]
    # No signature came with the call (Gemini 2.5 without thinking), so the documented
    # stand-in goes on it; the ids go both ways.
    assert contents[1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": call.id},
                "thoughtSignature": "skip_thought_signature_validator",
            }
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "name": "get_weather",
                    "response": {"temp": 21},
                    "id": call.id,
                }
            }
        ],
    }
    assert r2.id != r.id


async def test_parallel_results_share_one_turn_and_non_objects_are_wrapped(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    calls = [
        llmrelay.ToolCall("a", "get_weather", '{"city": "Paris"}'),
        llmrelay.ToolCall("b", "get_time", "{}"),
    ]
    msgs = [
        llmrelay.Message.user("weather and time?"),
        llmrelay.Message.assistant("Checking.", tool_calls=calls),
        llmrelay.Message.tool("a", "sunny"),
        llmrelay.Message.tool("b", "[1, 2]"),
    ]
    await client.achat(MODEL, msgs, **_kw(fake))
    contents = fake.requests[-1].body["contents"]
    assert len(contents) == 3
    model_parts = contents[1]["parts"]
    assert model_parts[0] == {"text": "Checking."}
    # Built by hand, no signatures: the stand-in on the first call of the turn only.
    assert model_parts[1]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in model_parts[2]
    assert [p["functionCall"]["id"] for p in model_parts[1:]] == ["a", "b"]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}, "id": "a"}},
        {"functionResponse": {"name": "get_time", "response": {"result": [1, 2]}, "id": "b"}},
    ]


async def test_tool_result_without_its_call_is_a_clear_error(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    msgs = [llmrelay.Message.user("hi"), llmrelay.Message.tool("nope", "x")]
    with pytest.raises(llmrelay.InvalidRequestError, match="function name"):
        await client.achat(MODEL, msgs, **_kw(fake))
    bad = [
        llmrelay.Message.user("hi"),
        llmrelay.Message.assistant(tool_calls=[llmrelay.ToolCall("a", "f", "[1]")]),
    ]
    with pytest.raises(llmrelay.InvalidRequestError, match="JSON object"):
        await client.achat(MODEL, bad, **_kw(fake))
    assert fake.requests == []


async def test_tool_choice_modes(fake: FakeUpstream, client: llmrelay.Client) -> None:
    expected = {
        "none": {"mode": "NONE"},
        "required": {"mode": "ANY"},
        "get_weather": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
    }
    for choice, config in expected.items():
        r = await client.achat(MODEL, "hi", tools=[WEATHER], tool_choice=choice, **_kw(fake))
        assert fake.requests[-1].body["toolConfig"] == {"functionCallingConfig": config}
        if config["mode"] == "ANY":  # the fake answers a forced tool with a schema instance
            assert r.tool_calls[0].name == "get_weather"
            assert set(r.tool_calls[0].parsed_arguments()) == {"city"}


async def test_streamed_tool_call(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(Reply.tool_call("lookup", {"q": "x" * 40}, output_tokens=12))
    s = client.astream(
        MODEL, "go", tools=[{"name": "lookup", "parameters": {"type": "object"}}], **_kw(fake)
    )
    deltas = []
    async for c in s:
        deltas.extend(c.tool_calls)
    resp = s.response
    assert resp is not None
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls[0].name == "lookup"
    assert resp.tool_calls[0].id == f"call_{resp.id}_0"
    assert resp.tool_calls[0].parsed_arguments() == {"q": "x" * 40}
    assert [(d.index, d.name) for d in deltas] == [(0, "lookup")]
    assert resp.usage.output_tokens == 12


async def test_function_call_ids_from_gemini_are_kept(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"functionCall": {"id": "fc_9", "name": "f", "args": {"a": 1}}},
                        {"functionCall": {"name": "g"}},
                    ],
                },
                "finishReason": "STOP",
            }
        ],
    }
    fake.push(Reply.raw(orjson.dumps(body)))
    r = await client.achat(MODEL, "hi", **_kw(fake))
    assert r.id is None  # no responseId: generated ids get a random part
    assert next((t.id, t.name, t.arguments) for t in r.tool_calls) == ("fc_9", "f", '{"a":1}')
    made = r.tool_calls[1].id
    assert made.startswith("call_")
    assert made.endswith("_1")
    fake.push(Reply.raw(orjson.dumps(body)))
    again = await client.achat(MODEL, "hi", **_kw(fake))
    assert again.tool_calls[1].id != made  # unique across answers


# --------------------------------------------------------------------------- images


PNG = b"\x89PNG\r\n\x1a\n"


async def test_images_inline_and_by_url(fake: FakeUpstream, client: llmrelay.Client) -> None:
    msg = llmrelay.Message.user(
        [
            llmrelay.TextPart("what are these?"),
            llmrelay.ImagePart(data=PNG, media_type="image/png"),
            llmrelay.ImagePart(url="data:image/jpeg;base64,/9j/AA=="),
            llmrelay.ImagePart(url="https://example.com/cat.webp?size=2"),
            llmrelay.ImagePart(url="https://example.com/photo", media_type="image/gif"),
        ]
    )
    r = await client.achat(MODEL, [msg], **_kw(fake))
    assert r.text == "Echo: what are these?"
    parts = fake.requests[-1].body["contents"][0]["parts"]
    assert parts == [
        {"text": "what are these?"},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/AA=="}},
        {"fileData": {"fileUri": "https://example.com/cat.webp?size=2", "mimeType": "image/webp"}},
        {"fileData": {"fileUri": "https://example.com/photo", "mimeType": "image/gif"}},
    ]


# --------------------------------------------------------------------------- structured output


class City(pydantic.BaseModel):
    name: str
    population: int
    tags: list[str]


async def test_structured_output_uses_response_json_schema(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat(MODEL, "a city", response_model=City, **_kw(fake))
    assert isinstance(r.object, City)
    assert r.object.population == 42
    gc = fake.requests[-1].body["generationConfig"]
    assert gc["responseMimeType"] == "application/json"
    assert gc["responseJsonSchema"]["properties"]["population"]["type"] == "integer"
    assert "tools" not in fake.requests[-1].body


async def test_json_object_mode_and_bad_response_format(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat(MODEL, "hi", response_format="json", **_kw(fake))
    assert orjson.loads(r.text) == {"echo": "hi"}
    assert fake.requests[-1].body["generationConfig"] == {"responseMimeType": "application/json"}
    with pytest.raises(llmrelay.InvalidRequestError, match="not supported by Gemini"):
        await client.achat(MODEL, "hi", response_format={"type": "grammar"}, **_kw(fake))


# --------------------------------------------------------------------------- thinking


async def test_thinking_tokens_are_reasoning(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(Reply.ok("The answer.", input_tokens=5, output_tokens=30, reasoning_tokens=20))
    r = await client.achat(MODEL, "think", **_kw(fake))
    assert r.usage.output_tokens == 30
    assert r.usage.reasoning_tokens == 20
    assert r.usage.total_tokens == 35


async def test_thought_parts_stay_out_of_the_text(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    thinking = {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
    fake.push(Reply.ok("The answer.", reasoning_tokens=7))
    r = await client.achat(MODEL, "think hard", extra=thinking, **_kw(fake))
    assert r.text == "The answer."
    assert r.usage.reasoning_tokens == 7
    fake.push(Reply.ok("The answer.", reasoning_tokens=7))
    s = client.astream(MODEL, "think hard", extra=thinking, **_kw(fake))
    reasoning = []
    text = []
    async for c in s:
        reasoning.append(c.reasoning)
        text.append(c.delta)
    assert "The user wrote: think hard" in "".join(reasoning)
    assert "".join(text) == "The answer." == (s.response.text if s.response else None)


# --------------------------------------------------------------------------- the fake itself


async def test_fake_lists_models_in_gemini_format(fake: FakeUpstream) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        url = fake.gemini_base_url + "/models"
        async with session.get(url, headers={"x-goog-api-key": CANARY_KEY}) as resp:
            data = await resp.json()
        assert resp.status == 200
        m = next(m for m in data["models"] if m["name"] == "models/gemini-2.5-flash")
        assert m["inputTokenLimit"] > 0
        assert "generateContent" in m["supportedGenerationMethods"]
        async with session.get(url, params={"key": CANARY_KEY}) as resp:
            assert resp.status == 200  # Google also takes ?key=
        async with session.get(url) as resp:
            err = await resp.json()
        assert resp.status == 400
        assert err["error"]["status"] == "INVALID_ARGUMENT"
        assert err["error"]["details"][0]["reason"] == "API_KEY_INVALID"


async def test_fake_refuses_a_malformed_body(fake: FakeUpstream) -> None:
    import aiohttp

    url = fake.gemini_base_url + "/models/gemini-2.5-flash:generateContent"
    bad_bodies = [
        {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
        {"contents": [{"role": "user", "parts": []}]},
        {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "user": "u1"},
        {
            "contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "generationConfig": {"max_tokens": 5},
        },
    ]
    async with aiohttp.ClientSession(headers={"x-goog-api-key": CANARY_KEY}) as session:
        for body in bad_bodies:
            async with session.post(url, json=body) as resp:
                err = await resp.json()
            assert resp.status == 400, body
            assert err["error"]["status"] == "INVALID_ARGUMENT"
        # Google's proto-JSON parser takes snake_case too (the official SDK sends some).
        snake = {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generation_config": {"max_output_tokens": 5, "response_mime_type": "application/json"},
            "system_instruction": {"parts": [{"text": "be brief"}]},
        }
        async with session.post(url, json=snake) as resp:
            data = await resp.json()
        assert resp.status == 200
        assert orjson.loads(data["candidates"][0]["content"]["parts"][0]["text"]) == {"echo": "hi"}


# --------------------------------------------------------------------------- Gemini 3 tool loops

G3 = "gemini/gemini-3-flash-preview"


@pytest.mark.parametrize("streamed", [False, True])
async def test_gemini3_two_turn_tool_loop_replays_signature_and_ids(
    fake: FakeUpstream, client: llmrelay.Client, streamed: bool
) -> None:
    """The fake issues a functionCall id and a thought signature as Gemini 3 does, and refuses
    a replay without that signature, as Gemini 3 does: the loop works end to end."""
    fake.push(Reply.tool_call("get_weather", {"city": "Paris"}, reasoning_tokens=9))
    msgs: list[object] = [llmrelay.Message.user("weather in Paris?")]
    kw = {"tools": [WEATHER], "reasoning_effort": "low", **_kw(fake)}
    if streamed:
        s = client.astream(G3, msgs, **kw)
        thoughts = [c.reasoning async for c in s]
        r = s.response
        assert r is not None
        assert "The user wrote: weather in Paris?" in "".join(thoughts)
    else:
        r = await client.achat(G3, msgs, **kw)
    assert fake.requests[-1].body["generationConfig"]["thinkingConfig"] == {
        "thinkingLevel": "LOW",
        "includeThoughts": True,
    }
    (call,) = r.tool_calls
    assert call.id.startswith("fc")  # Gemini's own id
    assert call.signature == fake_signature("get_weather")
    assert r.reasoning.startswith("**Reading the request**")
    msgs += [r.message(), llmrelay.Message.tool(call.id, '{"temp": 21}')]
    fake.push(Reply.ok("Sunny, 21.", reasoning_tokens=4))
    if streamed:
        s2 = client.astream(G3, msgs, **kw)
        assert "".join([c.delta async for c in s2]) == "Sunny, 21."
        r2 = s2.response
        assert r2 is not None
    else:
        r2 = await client.achat(G3, msgs, **kw)
    sent = fake.requests[-1].body["contents"]
    model_turn = sent[1]["parts"]
    assert model_turn[-1] == {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": call.id},
        "thoughtSignature": fake_signature("get_weather"),
    }
    assert sent[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 21}, "id": call.id}}
    ]
    assert r2.text == "Sunny, 21."
    # The text's signature is kept too, and goes back on the text in a third turn.
    assert [p.signature for p in r2.reasoning_parts if p.id and p.id.startswith("text:")] == [
        fake_signature("text")
    ]
    msgs += [r2.message(), llmrelay.Message.user("thanks")]
    await client.achat(G3, msgs, **kw)
    third = fake.requests[-1].body["contents"]
    assert {"text": "Sunny, 21.", "thoughtSignature": fake_signature("text")} in third[3]["parts"]


async def test_gemini3_refuses_a_replay_without_its_signature(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    call = llmrelay.ToolCall("fc1", "get_weather", '{"city": "Paris"}', signature="Zm9yZ2Vk")
    msgs = [
        llmrelay.Message.user("weather?"),
        llmrelay.Message.assistant(tool_calls=[call]),
        llmrelay.Message.tool("fc1", "sunny"),
    ]
    with pytest.raises(llmrelay.BadRequestError, match="Thought signature is not valid"):
        await client.achat(G3, msgs, **_kw(fake))
    # Built by hand without a signature: the documented stand-in is accepted.
    call.signature = None
    r = await client.achat(G3, msgs, **_kw(fake))
    assert r.text == "Echo: weather?"
    assert fake.requests[-1].body["contents"][1]["parts"][0]["thoughtSignature"] == (
        "skip_thought_signature_validator"
    )
