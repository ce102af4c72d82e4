"""A ``TextRun`` (text events one read delivered, passed through the pipeline as one chunk) is
the pipeline's business: a stream's caller gets one chunk per event, async and sync, and
closing a stream in the middle of a run ends it there."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from llmrelay.core.streaming import ResponseStream, SyncResponseStream
from llmrelay.types import Response, StreamChunk, TextRun, chunk, text_chunk, text_run


async def _pipeline(closed: list[bool]) -> AsyncGenerator[StreamChunk, None]:
    try:
        yield text_chunk("a")
        yield text_run(["b", "c", "d"])
        yield text_run(["e", "f"])
        resp = Response(text="abcdef")
        yield chunk(done=True, response=resp)
    finally:
        closed.append(True)


def test_a_run_is_its_pieces() -> None:
    run = text_run(["x", "y"])
    assert isinstance(run, TextRun)
    assert run == TextRun(delta="xy", pieces=["x", "y"])  # every field as the dataclass sets


async def test_iterating_gives_one_chunk_per_piece() -> None:
    closed: list[bool] = []
    stream = ResponseStream(_pipeline(closed))
    got = [c async for c in stream]
    assert [c.delta for c in got[:-1]] == ["a", "b", "c", "d", "e", "f"]
    assert all(type(c) is StreamChunk for c in got)
    assert got[-1].done
    assert stream.response is not None
    assert stream.response.text == "abcdef"
    assert closed == [True]


async def test_closing_in_the_middle_of_a_run_ends_the_stream() -> None:
    closed: list[bool] = []
    stream = ResponseStream(_pipeline(closed))
    assert [(await stream.__anext__()).delta for _ in range(3)] == ["a", "b", "c"]
    await stream.aclose()
    assert closed == [True]
    assert [c async for c in stream] == []
    assert stream.closed


def test_a_sync_stream_gives_one_chunk_per_piece_too() -> None:
    closed: list[bool] = []
    stream = SyncResponseStream(ResponseStream(_pipeline(closed)))
    assert list(stream.text_deltas()) == ["a", "b", "c", "d", "e", "f"]
    assert closed == [True]


async def test_a_relay_reading_chunks_finishes_the_call_at_the_final_chunk() -> None:
    # ``chunks()`` is the pipeline itself (runs and all); ``finish`` at the final chunk ends the
    # call as iterating does: the pipeline runs to its end, ``response`` is set.
    closed: list[bool] = []
    stream = ResponseStream(_pipeline(closed))
    seen: list[StreamChunk] = []
    async for c in stream.chunks():
        seen.append(c)
        if c.done:
            await stream.finish(c)
            break
    assert [type(c) for c in seen] == [StreamChunk, TextRun, TextRun, StreamChunk]
    assert closed == [True]
    assert stream.closed
    assert stream.response is not None
    assert stream.response.text == "abcdef"
