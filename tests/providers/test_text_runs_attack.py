"""Text events one read delivers come through the pipeline as one ``TextRun``; over a real
socket, whatever the reads, a stream's caller must see what each event read on its own gives:
one chunk per event, the same answer, the same failures, and nothing after ``[DONE]``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay.errors import StreamInterruptedError
from llmrelay.types import StreamChunk

from ..conftest import CANARY_KEY
from ..transport.raw_upstream import Conn, RawRequest, chunked, raw_upstream, respond_each
from ..transport.raw_upstream import RawUpstream as Served

MODEL = "openai/gpt-4.1-mini"


def chat_chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4.1-mini",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **more,
    }


def sse(*objs: Any) -> bytes:
    return b"".join(
        b"data: " + (o if isinstance(o, bytes) else orjson.dumps(o)) + b"\n\n" for o in objs
    )


class RawUpstream:
    """Answers each request with ``body`` (SSE) in one write, chunked (``chunk``: bytes per
    chunk) or delimited by the connection's close: ``tests/transport/raw_upstream`` serving."""

    def __init__(self) -> None:
        self.body = b""
        #: Bodies for the next requests, in turn (then ``body``).
        self.bodies: list[bytes] = []
        self.chunk: int | None = None
        self._serving: contextlib.AbstractAsyncContextManager[Served] | None = None
        self._served: Served | None = None

    async def __aenter__(self) -> RawUpstream:
        self._serving = raw_upstream(respond_each(self._respond))
        self._served = await self._serving.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._serving is not None
        await self._serving.__aexit__(*(exc or (None, None, None)))

    @property
    def base_url(self) -> str:
        assert self._served is not None
        return f"http://127.0.0.1:{self._served.port}/v1"

    async def _respond(self, conn: Conn, req: RawRequest) -> None:
        body = self.bodies.pop(0) if self.bodies else self.body
        out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        if self.chunk is None:
            out += b"connection: close\r\n\r\n" + body
        else:
            size = self.chunk
            out += b"transfer-encoding: chunked\r\n\r\n"
            out += chunked(*(body[i : i + size] for i in range(0, len(body), size)))
        await conn.send(out)
        await conn.close()


@pytest.fixture
async def up() -> AsyncIterator[RawUpstream]:
    async with RawUpstream() as u:
        yield u


TEXTS = ["Hello", ",", " wörld", ' "q"', "\n", "😀", " end"]


def _texts(pad: bool) -> list[dict[str, Any]]:
    objs = [chat_chunk({"role": "assistant", "content": ""}, obfuscation="x")]
    objs += [chat_chunk({"content": t}, obfuscation="Pad" * i) for i, t in enumerate(TEXTS)]
    if not pad:
        for o in objs:
            del o["obfuscation"]
    return objs


FINAL = [
    chat_chunk({}, "stop"),
    {**chat_chunk({}), "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 7}},
]


async def _collect(stream: llmrelay.ResponseStream, seen: list[StreamChunk]) -> None:
    async for c in stream:
        seen.append(c)


async def _read_into(stream: llmrelay.ResponseStream, got: list[str]) -> None:
    async for c in stream:
        got.append(c.delta)


def _client() -> llmrelay.Client:
    return llmrelay.Client()


def _kw(up: RawUpstream, **more: Any) -> dict[str, Any]:
    return {"api_key": CANARY_KEY, "base_url": up.base_url, **more}


@pytest.mark.parametrize("chunk", [None, 1, 7, 4096])
@pytest.mark.parametrize("pad", [False, True])
async def test_one_chunk_per_event_and_the_whole_answer(
    up: RawUpstream, pad: bool, chunk: int | None
) -> None:
    up.body = sse(*_texts(pad), *FINAL) + b"data: [DONE]\n\n"
    up.chunk = chunk
    client = _client()
    stream = client.astream(MODEL, "hi", **_kw(up))
    got = [c async for c in stream]
    assert all(type(c) is StreamChunk for c in got)
    assert [c.delta for c in got if c.delta] == TEXTS
    assert stream.response is not None
    assert stream.response.text == "".join(TEXTS)
    assert stream.response.usage.output_tokens == 7


@pytest.mark.parametrize(
    "after",
    [
        chat_chunk({"content": "after the end"}),
        b"not json at all",
        b'{"error":{"message":"late","code":500}}',
    ],
    ids=["text", "garbage", "error"],
)
async def test_nothing_after_done_counts_whatever_the_reads(up: RawUpstream, after: Any) -> None:
    # [DONE] ends the stream: what a server sends after it is not part of the answer, whether
    # it comes in the same read as [DONE] (here: one write) or in a later one.
    up.body = sse(*_texts(True), *FINAL) + b"data: [DONE]\n\n" + sse(after)
    client = _client()
    stream = client.astream(MODEL, "hi", **_kw(up))
    got = [c.delta async for c in stream if c.delta]
    assert got == TEXTS
    assert stream.response is not None
    assert stream.response.text == "".join(TEXTS)


@pytest.mark.parametrize("tail", [b"", b'data: {"choices":[{"index":0,"delta":{"content":"lo'])
async def test_a_cut_stream_reports_the_pieces_it_gave(up: RawUpstream, tail: bytes) -> None:
    up.body = sse(*_texts(True)) + tail
    client = _client()
    stream = client.astream(MODEL, "hi", **_kw(up))
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        await _read_into(stream, got)
    assert "".join(got) == "".join(TEXTS)
    assert info.value.partial is not None
    assert info.value.partial.text == "".join(TEXTS)


async def test_an_error_event_after_a_run_comes_after_its_pieces(up: RawUpstream) -> None:
    up.body = sse(*_texts(True), b'{"error":{"message":"boom","code":502}}')
    client = _client()
    stream = client.astream(MODEL, "hi", **_kw(up))
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        await _read_into(stream, got)
    assert [g for g in got if g] == TEXTS
    assert info.value.partial is not None
    assert info.value.partial.text == "".join(TEXTS)


@pytest.mark.parametrize("chunk", [None, 7])
async def test_text_beside_an_in_band_error_is_streamed_before_the_error(
    up: RawUpstream, chunk: int | None
) -> None:
    # An event carrying text and an error object (OpenRouter reports mid-stream failures with
    # an ``error`` beside ``choices``): the text is part of the answer -- the caller receives
    # it as a chunk, then the error; the cut answer holds exactly what the caller received.
    failing = {
        **chat_chunk({"content": " and then"}),
        "error": {"message": "the upstream died", "code": 502},
    }
    up.body = sse(*_texts(True), failing)
    up.chunk = chunk
    client = _client()
    stream = client.astream(MODEL, "hi", **_kw(up))
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        await _read_into(stream, got)
    assert [g for g in got if g] == [*TEXTS, " and then"]
    assert info.value.partial is not None
    assert info.value.partial.text == "".join(got)
    assert "the upstream died" in str(info.value)


@pytest.mark.parametrize("chunk", [None, 7])
async def test_an_event_past_the_limit_comes_after_the_pieces_before_it(
    up: RawUpstream, chunk: int | None
) -> None:
    # A read holding text events and then one event past max_event_bytes: the text before it
    # reaches the caller and the cut answer; the stream fails at the long event, naming the
    # setting. (It used to fail at once, the read's earlier text lost.)
    long = chat_chunk({"content": "x" * 3000})
    up.body = sse(*_texts(True), long, *FINAL) + b"data: [DONE]\n\n"
    up.chunk = chunk
    client = llmrelay.Client(max_event_bytes=2000)
    stream = client.astream(MODEL, "hi", **_kw(up))
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        await _read_into(stream, got)
    assert [g for g in got if g] == TEXTS
    assert "max_event_bytes" in str(info.value)
    assert info.value.partial is not None
    assert info.value.partial.text == "".join(TEXTS)


async def test_leaving_in_the_middle_of_a_run(up: RawUpstream) -> None:
    up.body = sse(*_texts(True), *FINAL) + b"data: [DONE]\n\n"
    client = _client()
    stream = client.astream(MODEL, "hi", **_kw(up))
    got = []
    async for c in stream:
        if c.delta:
            got.append(c.delta)
        if len(got) == 3:
            break
    await stream.aclose()
    assert got == TEXTS[:3]
    assert stream.closed
    assert [c async for c in stream] == []


async def test_a_streamed_answer_that_came_as_runs_is_cached_and_replayed_whole(
    up: RawUpstream,
) -> None:
    up.body = sse(*_texts(True), *FINAL) + b"data: [DONE]\n\n"
    client = llmrelay.Client(cache=llmrelay.ResponseCache())
    first = client.astream(MODEL, "hi", **_kw(up))
    streamed = "".join([c.delta async for c in first])
    up.body = b"data: [DONE]\n\n"  # a second call reaching the upstream would get nothing
    again = client.astream(MODEL, "hi", **_kw(up))
    replayed = "".join([c.delta async for c in again])
    assert streamed == replayed == "".join(TEXTS)
    assert first.response is not None
    assert again.response is not None
    assert again.response.text == first.response.text
    assert again.response.cache_hit


async def test_structured_output_streamed_as_runs(up: RawUpstream) -> None:
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    parts = ['{"na', 'me": "Ad', 'a", "a', 'ge": 3', "6}"]
    objs = [chat_chunk({"role": "assistant", "content": ""}, obfuscation="x")]
    objs += [chat_chunk({"content": p}, obfuscation="q" * i) for i, p in enumerate(parts)]
    up.body = sse(*objs, *FINAL) + b"data: [DONE]\n\n"
    client = _client()
    stream = client.astream(MODEL, "who?", response_model=Person, **_kw(up))
    got = [c async for c in stream]
    assert [c.delta for c in got if c.delta] == parts
    assert stream.response is not None
    assert stream.response.object == Person(name="Ada", age=36)


async def test_a_fallback_before_the_first_token_then_runs_from_the_next(
    up: RawUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first deployment fails before any text (an error event in its first read, after an
    # empty role chunk); the next one's first read holds the whole answer, runs and all.
    bodies = [
        sse(chat_chunk({"role": "assistant", "content": ""}))
        + b'data: {"error":{"message":"overloaded","code":503}}\n\n',
        sse(*_texts(True), *FINAL) + b"data: [DONE]\n\n",
    ]
    up.bodies = bodies
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", up.base_url)
    client = _client()
    stream = client.astream(MODEL, "hi", fallbacks=["openai/gpt-4.1"], retries=0)
    got = [c async for c in stream]
    assert [c.delta for c in got if c.delta] == TEXTS
    assert stream.response is not None
    assert stream.response.text == "".join(TEXTS)
    assert [a.outcome for a in stream.response.trace] == ["error", "success"]


@pytest.fixture
def up_thread() -> Iterator[RawUpstream]:
    """``RawUpstream`` on a loop of its own thread, for sync clients."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    server = RawUpstream()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.__aenter__())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.__aexit__())
        loop.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait()
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join()


def test_a_sync_stream_left_in_the_middle_of_a_run(up_thread: RawUpstream) -> None:
    up_thread.body = sse(*_texts(True), *FINAL) + b"data: [DONE]\n\n"
    client = _client()
    with client.stream(MODEL, "hi", **_kw(up_thread)) as s:
        got = [next(s).delta for _ in range(3)]
    assert got == TEXTS[:3]
    assert s.closed
    assert list(s) == []
    again = client.stream(MODEL, "hi", **_kw(up_thread))
    assert list(again.text_deltas()) == TEXTS
    assert again.response is not None
    assert again.response.text == "".join(TEXTS)


async def test_an_in_band_error_with_a_finish_reason_and_no_text_is_only_the_error(
    up: RawUpstream,
) -> None:
    # OpenRouter's shape: an empty delta, finish_reason "error" and the error object. No
    # finish chunk reaches the caller before the error.
    failing = {
        **chat_chunk({"content": ""}, "error"),
        "error": {"message": "the upstream died", "code": 502},
    }
    up.body = sse(*_texts(True), failing)
    client = _client()
    stream = client.astream(MODEL, "hi", **_kw(up))
    seen: list[StreamChunk] = []
    with pytest.raises(StreamInterruptedError) as info:
        await _collect(stream, seen)
    assert [c.delta for c in seen if c.delta] == TEXTS
    assert all(c.finish_reason is None for c in seen)
    assert info.value.partial is not None
    assert info.value.partial.text == "".join(TEXTS)
