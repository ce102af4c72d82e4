"""The gateway's per-request shortcuts give what the general paths give: the text frame of a
stream is the frame ``render_chunk`` writes, frames that arrive together leave together (and a
failed write or a slow client still reaches the handler), request ids stay unique."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay.catalog import tokens
from llmrelay.gateway import openai_wire, sse, wire
from llmrelay.testing.fake import Reply
from llmrelay.types import StreamChunk, ToolCallDelta

from .conftest import Running


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


async def _put(frames: Any, frame: bytes, nowait: bool) -> None:
    """A frame added as the handler adds it (``add_nowait``, else ``add``) or by ``add``."""
    if not (nowait and frames.add_nowait(frame)):
        await frames.add(frame)


@pytest.mark.parametrize("nowait", [False, True])
async def test_frames_that_arrive_together_leave_in_one_write(nowait: bool) -> None:
    out = _Out()
    frames = _frames(out)
    for i in range(30):
        await _put(frames, b"f%d;" % i, nowait)
    assert out.writes == [b"f0;"]  # the first at once; the rest when the handler waits
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert out.writes == [b"f0;", b"".join(b"f%d;" % i for i in range(1, 30))]
    await _put(frames, b"late;", nowait)
    await frames.close(b"end")
    assert out.eof in (b"late;end", b"end")
    assert (
        b"".join(out.writes) + (out.eof or b"")
        == b"".join(b"f%d;" % i for i in range(30)) + b"late;end"
    )


@pytest.mark.parametrize("nowait", [False, True])
async def test_a_slow_client_holds_at_most_the_limit(nowait: bool) -> None:
    out = _Out()
    out.block = asyncio.Event()
    frames = _frames(out)
    big = b"x" * 1024
    out.block = None
    await frames.add(big)  # the first frame, written at once
    out.block = asyncio.Event()
    await frames.add(big)
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the write started and waits for the client
    held = 0
    adding = asyncio.ensure_future(_fill(frames, big, 200, nowait))
    for _ in range(50):
        await asyncio.sleep(0)
        held = max(held, frames._held)
    assert not adding.done()  # the handler waits for the client
    assert held <= sse._HOLD + len(big)
    out.block.set()
    await adding
    await frames.close(b"")
    assert sum(map(len, out.writes)) + len(out.eof or b"") == 202 * len(big)


async def _fill(frames: Any, frame: bytes, n: int, nowait: bool) -> None:
    for _ in range(n):
        await _put(frames, frame, nowait)


@pytest.mark.parametrize("nowait", [False, True])
async def test_a_failed_write_reaches_the_handler(nowait: bool) -> None:
    out = _Out()
    frames = _frames(out)
    await _put(frames, b"first", nowait)
    out.fail = ConnectionResetError("the client left")
    await _put(frames, b"a", nowait)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    if nowait:
        assert not frames.add_nowait(b"b")  # the failure is for ``add`` to raise
    with pytest.raises(ConnectionResetError):
        await frames.add(b"b")


async def test_add_nowait_leaves_the_first_frame_and_a_full_buffer_to_add() -> None:
    out = _Out()
    frames = _frames(out)
    assert not frames.add_nowait(b"first")  # written at once, with the headers, by add
    assert out.writes == []
    await frames.add(b"first")
    assert frames.add_nowait(b"second")
    assert not frames.add_nowait(b"x" * (sse._HOLD + 1))  # past the limit: add waits
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert out.writes == [b"first", b"second"]
    assert frames.add_nowait(b"third")  # after a finished write, the next is scheduled
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert out.writes == [b"first", b"second", b"third"]


def test_request_ids_are_unique_and_shaped_like_before() -> None:
    ids = {wire.new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in ids)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_budgeted_key_is_served_without_the_exact_tokenizer(
    gw: Running, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    # The budget's reservation is the byte bound: the ~70 MB tokenizer never loads in a worker.
    def no_tokenizer(*_: Any) -> Any:
        raise AssertionError("the gateway must not load the exact tokenizer")

    monkeypatch.setattr(tokens._backend, "tokenizer", no_tokenizer)
    key = await gw.key(budget_usd=5.0, rpm=100)
    gw.fake.push(Reply.ok("pooled", input_tokens=12, output_tokens=3))
    body = {"model": "openai/gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.url + "/v1/chat/completions",
            data=orjson.dumps(body),
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        ) as r,
    ):
        raw = await r.read()
    assert r.status == 200, raw
    assert b"pooled" in raw
    # Charged what the upstream reported; nothing left reserved.
    assert gw.gateway.keys is not None
    assert gw.gateway.budgets is not None
    record = await gw.gateway.keys.lookup(key)
    assert record is not None
    limit = gw.gateway.budgets.limit_for(record)
    assert limit is not None
    status = await gw.gateway.budgets.status(limit, record.id)
    assert status["spent_usd"] > 0
    assert status["reserved_usd"] == pytest.approx(0.0)
