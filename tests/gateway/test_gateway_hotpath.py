"""The gateway's per-request shortcuts give what the general paths give: the text frame of a
stream is the frame ``render_chunk`` writes, frames that arrive together leave together (and a
failed write or a slow client still reaches the handler), request ids stay unique."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay.gateway import app as gateway_app
from llmrelay.gateway import openai_wire, sse
from llmrelay.types import StreamChunk, ToolCallDelta


@given(
    deltas=st.lists(st.text(st.characters(blacklist_categories=["Cs"]), min_size=1), max_size=5),
    include_usage=st.booleans(),
)
def test_a_text_frame_is_the_frame_render_chunk_writes(
    deltas: list[str], include_usage: bool
) -> None:
    w = openai_wire.StreamWriter("chatcmpl-1", "openai/gpt-4.1-mini", include_usage)
    first = w.chunk(StreamChunk(delta="hi"))
    assert first == openai_wire.render_chunk(
        StreamChunk(delta="hi"), "chatcmpl-1", w.model, w.created, True, include_usage
    )
    for d in deltas:
        c = StreamChunk(delta=d)
        want = openai_wire.render_chunk(c, "chatcmpl-1", w.model, w.created, False, include_usage)
        assert w.chunk(c) == want
    # Anything but bare text takes the general path.
    mixed = StreamChunk(delta="a", reasoning="b")
    assert w.chunk(mixed) == openai_wire.render_chunk(
        mixed, "chatcmpl-1", w.model, w.created, False, include_usage
    )
    call = StreamChunk(delta="a", tool_calls=[ToolCallDelta(0, "c1", "f", "{}")])
    assert b'"tool_calls"' in w.chunk(call)


class _Out:
    """Records what the batcher writes; ``block`` makes writes wait (a slow client)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.eof: bytes | None = None
        self.block: asyncio.Event | None = None
        self.fail: BaseException | None = None

    async def write(self, data: bytes) -> None:
        if self.fail is not None:
            raise self.fail
        if self.block is not None:
            await self.block.wait()
        self.writes.append(data)

    async def write_eof(self, data: bytes = b"") -> None:
        self.eof = data


def _frames(out: _Out) -> Any:
    return sse.Frames(out)  # type: ignore[arg-type]


async def test_frames_that_arrive_together_leave_in_one_write() -> None:
    out = _Out()
    frames = _frames(out)
    for i in range(30):
        await frames.add(b"f%d;" % i)
    assert out.writes == []  # nothing yet: the handler has not waited
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert out.writes == [b"".join(b"f%d;" % i for i in range(30))]
    await frames.add(b"late;")
    await frames.close(b"end")
    assert out.eof in (b"late;end", b"end")
    assert (
        b"".join(out.writes) + (out.eof or b"")
        == b"".join(b"f%d;" % i for i in range(30)) + b"late;end"
    )


async def test_a_slow_client_holds_at_most_the_limit() -> None:
    out = _Out()
    out.block = asyncio.Event()
    frames = _frames(out)
    big = b"x" * 1024
    await frames.add(big)
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the write started and waits for the client
    held = 0
    adding = asyncio.ensure_future(_fill(frames, big, 200))
    for _ in range(50):
        await asyncio.sleep(0)
        held = max(held, frames._held)
    assert not adding.done()  # the handler waits for the client
    assert held <= sse._HOLD + len(big)
    out.block.set()
    await adding
    await frames.close(b"")
    assert sum(map(len, out.writes)) + len(out.eof or b"") == 201 * len(big)


async def _fill(frames: Any, frame: bytes, n: int) -> None:
    for _ in range(n):
        await frames.add(frame)


async def test_a_failed_write_reaches_the_handler() -> None:
    out = _Out()
    out.fail = ConnectionResetError("the client left")
    frames = _frames(out)
    await frames.add(b"a")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    with pytest.raises(ConnectionResetError):
        await frames.add(b"b")


def test_request_ids_are_unique_and_shaped_like_before() -> None:
    ids = {gateway_app._request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in ids)
