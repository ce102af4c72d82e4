"""Issue 10, items 3b and 4 (the engine side): streaming with ``response_model=``, and refusals.

Streams: the text chunks flow as they come; the final chunk (``done=True``) carries the validated
object; a bad answer is re-asked once and the re-ask re-streams; a refusal
(``ContentFilteredError``) is never re-asked, is raised after the text already streamed and keeps
it in ``partial_text``. Over a real socket against the fake upstream's wire formats.

Refusals in the engine: never re-asked by structured output, never retried, they switch to
``content_filter_fallbacks``, never count for a circuit breaker and keep ``partial_text`` --
with ``TestModel`` raising them and with the fake upstream's Gemini blocked prompt.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import BaseModel

import llmrelay
from llmrelay import (
    ContentFilteredError,
    StreamInterruptedError,
    StructuredOutputError,
    TestModel,
)
from llmrelay.core.engine import Engine
from llmrelay.reliability.breaker import BreakerRegistry
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import StreamChunk

from ..conftest import CANARY_KEY

MODEL = "openai/gpt-4.1-mini"
GEMINI = "gemini/gemini-2.5-flash"
BAD = '{"name": "Ada", "age": "thirty"}'
GOOD = '{"name": "Ada", "age": 36}'
FILTERED = "The response was filtered due to the prompt triggering content management policy"


class Person(BaseModel):
    name: str
    age: int


def _kw(fake: FakeUpstream, provider: str = "openai") -> dict[str, Any]:
    return {"api_key": CANARY_KEY, "base_url": fake.base_url_for(provider)}


async def _read(stream: llmrelay.ResponseStream) -> list[StreamChunk]:
    return [c async for c in stream]


async def _drain(stream: llmrelay.ResponseStream, seen: list[str]) -> None:
    """Read a stream to its end (or its error), keeping the text deltas it yielded."""
    async for c in stream:
        seen.append(c.delta)


# --------------------------------------------------------------------------- streamed objects


async def test_stream_text_then_a_final_chunk_with_the_validated_object(
    fake: FakeUpstream,
) -> None:
    fake.push(Reply.ok(GOOD, input_tokens=9, output_tokens=6))
    client = llmrelay.Client()
    try:
        chunks = await _read(client.astream(MODEL, "who?", response_model=Person, **_kw(fake)))
    finally:
        await client.aclose()
    *body, last = chunks
    assert [c.done for c in chunks].count(True) == 1
    assert last.done
    assert "".join(c.delta for c in body) == GOOD  # the text streamed as it came
    assert len([c for c in body if c.delta]) > 1
    assert last.response is not None
    assert last.response.object == Person(name="Ada", age=36)
    assert last.response.text == GOOD
    (req,) = fake.requests
    assert req.body["stream"] is True
    assert req.body["response_format"]["type"] == "json_schema"
    assert req.body["response_format"]["json_schema"]["name"] == "Person"


@pytest.mark.parametrize(
    ("model", "wire"),
    [("anthropic/claude-sonnet-4-5", "anthropic_messages"), (GEMINI, "gemini")],
)
async def test_structured_streams_on_the_other_wires(
    fake: FakeUpstream, model: str, wire: str
) -> None:
    client = llmrelay.Client()
    try:
        chunks = await _read(
            client.astream(model, "who?", response_model=Person, **_kw(fake, wire))
        )
    finally:
        await client.aclose()
    resp = chunks[-1].response
    assert resp is not None
    assert isinstance(resp.object, Person)
    assert "".join(c.delta for c in chunks) == resp.text
    assert len(fake.requests) == 1


async def test_a_bad_streamed_answer_is_reasked_once_and_the_reask_streams(
    fake: FakeUpstream,
) -> None:
    fake.push(Reply.ok(BAD, input_tokens=11, output_tokens=7))
    fake.push(Reply.ok(GOOD, input_tokens=20, output_tokens=6))
    client = llmrelay.Client()
    try:
        stream = client.astream(MODEL, "who?", response_model=Person, **_kw(fake))
        chunks = await _read(stream)
    finally:
        await client.aclose()
    assert [c.done for c in chunks].count(True) == 1  # only the answer that validated ends it
    assert "".join(c.delta for c in chunks) == BAD + GOOD  # both answers streamed, in order
    resp = chunks[-1].response
    assert resp is stream.response
    assert resp is not None
    assert resp.object == Person(name="Ada", age=36)
    assert resp.text == GOOD
    assert resp.total_usage is not None
    assert (resp.total_usage.input_tokens, resp.total_usage.output_tokens) == (31, 13)
    first, second = fake.requests
    assert first.body["stream"] is second.body["stream"] is True
    msgs = second.body["messages"]
    assert msgs[-2] == {"role": "assistant", "content": BAD}
    assert "age: Input should be a valid integer" in msgs[-1]["content"]
    assert [a.outcome for a in resp.trace] == ["success", "success"]
    assert "re-asking" in (resp.trace[0].reason or "")


async def test_a_streamed_answer_that_never_validates_raises_after_its_text(
    fake: FakeUpstream,
) -> None:
    fake.push(Reply.ok(BAD))
    client = llmrelay.Client()
    seen: list[str] = []
    try:
        stream = client.astream(MODEL, "who?", response_model=Person, max_reasks=0, **_kw(fake))
        with pytest.raises(StructuredOutputError, match="did not validate into Person") as info:
            await _drain(stream, seen)
    finally:
        await client.aclose()
    assert "".join(seen) == BAD
    assert info.value.raw == BAD
    assert len(fake.requests) == 1


async def test_a_refusal_at_the_end_of_a_structured_stream_is_never_reasked(
    fake: FakeUpstream,
) -> None:
    """Text first, then the provider's content filter: ContentFilteredError after the text,
    with that text kept; no re-ask is paid for; the breaker does not count it."""
    fake.push(Reply.stream_error(after_chunks=2, message=FILTERED, type="content_filter"))
    engine = Engine(breakers=BreakerRegistry(failure_threshold=1, recovery_timeout=60.0))
    client = llmrelay.Client(engine=engine)
    seen: list[str] = []
    try:
        stream = client.astream(MODEL, "who?", response_model=Person, **_kw(fake))
        with pytest.raises(ContentFilteredError) as info:
            await _drain(stream, seen)
        err = info.value
        assert not isinstance(err, StreamInterruptedError)  # the answer, not a broken stream
        assert seen
        assert err.partial_text == "".join(seen)
        assert (err.provider, err.model) == ("openai", "gpt-4.1-mini")
        assert err.trace[-1].reason == "refused after output was sent"
        assert len(fake.requests) == 1  # no re-ask
        # The breaker (threshold 1) did not count the refusal: the next call goes through.
        r = await client.astream(MODEL, "who?", response_model=Person, **_kw(fake)).collect()
        assert isinstance(r.object, Person)
    finally:
        await client.aclose()


async def test_a_refusal_at_the_end_of_a_plain_stream_keeps_the_partial_text(
    fake: FakeUpstream,
) -> None:
    fake.push(Reply.stream_error(after_chunks=2, message=FILTERED, type="content_filter"))
    client = llmrelay.Client()
    seen: list[str] = []
    try:
        with pytest.raises(ContentFilteredError) as info:
            await _drain(client.astream(MODEL, "tell me more", **_kw(fake)), seen)
    finally:
        await client.aclose()
    assert "".join(seen) == "Echo: tell"
    assert info.value.partial_text == "Echo: tell"


def test_sync_stream_with_response_model() -> None:
    client = llmrelay.Client()
    model = TestModel(["not json", GOOD])
    with client.stream(model, "who?", response_model=Person) as stream:
        chunks = list(stream)
    assert chunks[-1].done
    assert stream.response is not None
    assert stream.response.object == Person(name="Ada", age=36)
    assert "".join(c.delta for c in chunks) == "not json" + GOOD
    assert len(model.calls) == 2
    assert all(req.stream for req in model.calls)


async def test_a_cached_structured_stream_replays_with_its_object(fake: FakeUpstream) -> None:
    fake.push(Reply.ok(GOOD))
    client = llmrelay.Client(cache=True)
    try:
        first = await client.astream(MODEL, "who?", response_model=Person, **_kw(fake)).collect()
        again = await client.astream(MODEL, "who?", response_model=Person, **_kw(fake)).collect()
    finally:
        await client.aclose()
    assert first.object == again.object == Person(name="Ada", age=36)
    assert again.cache_hit
    assert len(fake.requests) == 1


async def test_a_bad_response_model_fails_before_the_stream_starts(fake: FakeUpstream) -> None:
    client = llmrelay.Client()
    with pytest.raises(llmrelay.InvalidRequestError, match="response_model"):
        client.astream(MODEL, "who?", response_model=dict, **_kw(fake))
    with pytest.raises(llmrelay.InvalidRequestError, match="not both"):
        client.astream(MODEL, "who?", response_model=Person, response_format="json", **_kw(fake))
    await client.aclose()
    assert fake.requests == []


# --------------------------------------------------------------------------- refusals (engine)


def _refusal() -> ContentFilteredError:
    return ContentFilteredError(
        "the model refused",
        category="cyber",
        explanation="This request was flagged.",
        partial_text="I can't",
        provider="test",
        model="refuser",
    )


async def test_a_refusal_is_never_reasked_nor_retried() -> None:
    model = TestModel([_refusal(), GOOD, GOOD])
    client = llmrelay.Client()
    with pytest.raises(ContentFilteredError) as info:
        await client.achat(model, "who?", response_model=Person, retries=3)
    assert len(model.calls) == 1
    err = info.value
    assert (err.category, err.explanation, err.partial_text) == (
        "cyber",
        "This request was flagged.",
        "I can't",
    )
    await client.aclose()


async def test_a_refusal_during_a_reask_is_not_reasked_again() -> None:
    model = TestModel(["not json", _refusal(), GOOD])
    client = llmrelay.Client()
    with pytest.raises(ContentFilteredError):
        await client.achat(model, "who?", response_model=Person, max_reasks=3)
    assert len(model.calls) == 2
    await client.aclose()


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_a_refusal_switches_to_the_content_filter_fallbacks(stream: bool) -> None:
    model = TestModel([_refusal()])
    client = llmrelay.Client()
    try:
        if stream:
            r = await client.astream(
                model, "hello", content_filter_fallbacks=["test/echo"]
            ).collect()
        else:
            r = await client.achat(model, "hello", content_filter_fallbacks=["test/echo"])
    finally:
        await client.aclose()
    assert r.text == "Echo: hello"
    assert [(a.deployment, a.outcome, a.error) for a in r.trace] == [
        ("test/test-model", "error", "ContentFilteredError"),
        ("test/echo", "success", None),
    ]


async def test_refusals_never_open_a_breaker() -> None:
    model = TestModel([_refusal() for _ in range(4)])
    engine = Engine(breakers=BreakerRegistry(failure_threshold=1, recovery_timeout=60.0))
    client = llmrelay.Client(engine=engine)
    for _ in range(3):
        with pytest.raises(ContentFilteredError):
            await client.achat(model, "hi")
    with pytest.raises(ContentFilteredError):  # not CircuitOpenError
        await client.astream(model, "hi").collect()
    assert len(model.calls) == 4
    assert (await client.achat(model, "hi")).text == "Echo: hi"
    await client.aclose()


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_a_blocked_gemini_prompt_falls_back_and_is_not_reasked(
    fake: FakeUpstream, point_at: Any, stream: bool
) -> None:
    """The fake upstream's Gemini blocked prompt (a 200 with ``promptFeedback.blockReason`` and
    no candidates), with ``response_model=``: one Gemini request, then the fallback answers."""
    point_at(fake)
    body = orjson.dumps(
        {
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        }
    )
    if stream:
        fake.push(Reply.raw(b"data: " + body + b"\r\n\r\n", content_type="text/event-stream"))
    else:
        fake.push(Reply.raw(body))
    client = llmrelay.Client()
    kw: dict[str, Any] = {"response_model": Person, "content_filter_fallbacks": [MODEL]}
    try:
        if stream:
            r = await client.astream(GEMINI, "who?", **kw).collect()
        else:
            r = await client.achat(GEMINI, "who?", **kw)
        fake.push(Reply.raw(body))
        with pytest.raises(ContentFilteredError, match="SAFETY"):
            await client.achat(GEMINI, "who?", response_model=Person)
    finally:
        await client.aclose()
    assert isinstance(r.object, Person)
    paths = [q.path for q in fake.requests]
    assert len(paths) == 3
    assert "gemini-2.5-flash" in paths[0]
    assert paths[1].endswith("/chat/completions")
    assert "gemini-2.5-flash" in paths[2]


class _Records:
    def __init__(self) -> None:
        self.records: list[Any] = []

    def record(self, rec: Any) -> None:
        self.records.append(rec)


async def test_a_reasked_stream_is_recorded_once_with_both_attempts(fake: FakeUpstream) -> None:
    fake.push(Reply.ok(BAD, input_tokens=11, output_tokens=7))
    fake.push(Reply.ok(GOOD, input_tokens=20, output_tokens=6))
    recorder = _Records()
    client = llmrelay.Client(engine=Engine(recorder=recorder))  # type: ignore[arg-type]
    try:
        r = await client.astream(MODEL, "who?", response_model=Person, **_kw(fake)).collect()
    finally:
        await client.aclose()
    assert isinstance(r.object, Person)
    (rec,) = recorder.records
    assert (rec.outcome, rec.stream, len(rec.attempts)) == ("success", True, 2)
    assert (rec.usage.input_tokens, rec.usage.output_tokens) == (31, 13)
