"""Attack tests on a4ba96c: a read holding good events and then one past max_event_bytes.
The decoder keeps the error for its next call, but the stream must not wait on the network
for another read before failing: the upstream may send nothing more for a long time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import llmrelay
from llmrelay.errors import StreamInterruptedError

from ..conftest import CANARY_KEY
from ..transport.raw_upstream import Conn, RawRequest, raw_upstream, respond_each
from . import test_anthropic_messages as am
from .test_text_runs_attack import TEXTS, _texts, chat_chunk, sse


def _openai() -> tuple[str, bytes, str]:
    long = chat_chunk({"content": "x" * 3000})
    return "openai/gpt-4.1-mini", sse(*_texts(False), long), "/v1"


def _anthropic() -> tuple[str, bytes, str]:
    # The Anthropic stream: ``decoder.feed`` and the state's ``feed`` per event.
    body = am.sse(
        am.message_start({"input_tokens": 3, "output_tokens": 1}),
        am.event("content_block_start", index=0, content_block=am.TEXT_BLOCK),
        *(am.text_delta(0, t) for t in TEXTS),
        am.text_delta(0, "x" * 3000),
    )
    return "anthropic/claude-sonnet-4-5", body, ""


@pytest.mark.parametrize("wire", [_openai, _anthropic])
async def test_an_event_past_the_limit_fails_the_stream_without_waiting_for_the_next_read(
    wire: Any,
) -> None:
    # One read: text events, then an event past the limit. The upstream then keeps the
    # connection open and quiet (a model thinking, a proxy buffering). The stream is already
    # known to be broken -- it must fail at once with the limit named, not sit until the next
    # bytes (or the read timeout, which then reports a timeout instead).
    release = asyncio.Event()
    model, body, path = wire()

    async def respond(conn: Conn, req: RawRequest) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        await conn.send(head + body)
        await release.wait()
        await conn.close()

    async with raw_upstream(respond_each(respond)) as served:
        client = llmrelay.Client(max_event_bytes=2000)
        kw: dict[str, Any] = {
            "api_key": CANARY_KEY,
            "base_url": f"http://127.0.0.1:{served.port}{path}",
        }
        got: list[str] = []

        async def read() -> None:
            async for c in client.astream(model, "hi", **kw):
                got.append(c.delta)

        try:
            with pytest.raises(StreamInterruptedError) as info:
                await asyncio.wait_for(read(), 3.0)
        finally:
            release.set()
        await client.aclose()
    assert [g for g in got if g] == TEXTS
    assert "max_event_bytes" in str(info.value)


@pytest.mark.parametrize("chunk", [None, 7])
async def test_done_before_an_event_past_the_limit_in_the_same_read_succeeds(
    chunk: int | None,
) -> None:
    # [DONE] ends the stream: an event past the limit after it, in the same read or not, is
    # not the stream's (it is never read as an error).
    from .test_text_runs_attack import FINAL, RawUpstream

    async with RawUpstream() as up:
        long = chat_chunk({"content": "x" * 3000})
        up.body = sse(*_texts(False), *FINAL) + b"data: [DONE]\n\n" + sse(long)
        up.chunk = chunk
        client = llmrelay.Client(max_event_bytes=2000)
        kw: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": up.base_url}
        got = [c.delta async for c in client.astream("openai/gpt-4.1-mini", "hi", **kw)]
        await client.aclose()
    assert "".join(got) == "".join(TEXTS)
