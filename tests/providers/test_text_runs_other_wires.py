"""Text events one read delivers pass the pipeline as one ``TextRun`` for every wire, not only
OpenAI's (``backends._in_runs``). Over a real socket, a stream's caller must see exactly what
the same events read one at a time give: the same chunks in the same order (text, thinking,
tool calls, finish, usage), the same answer, and on an error event the text before it first."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import llmrelay
from llmrelay.errors import StreamInterruptedError
from llmrelay.providers.backends import _in_runs
from llmrelay.transport.sse import SSEDecoder, SSEEvent
from llmrelay.types import StreamChunk, TextRun, ToolCallDelta, Usage, chunk, text_chunk

from .test_text_runs_attack import RawUpstream, _client, _kw, up

__all__ = ["up"]  # the fixture, imported for these tests

TEXTS = ["Hello", ",", " wörld", ' "q"', "\n", "😀", " end"]


def _event(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return _event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


def _anthropic(error_after_text: bool = False) -> bytes:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    out = _event("message_start", {"type": "message_start", "message": message})
    out += _event("ping", {"type": "ping"})
    thinking = {"type": "thinking", "thinking": "", "signature": ""}
    out += _event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": thinking},
    )
    out += _delta(0, {"type": "thinking_delta", "thinking": "let me see"})
    out += _delta(0, {"type": "signature_delta", "signature": "sig=="})
    out += _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    text = {"type": "text", "text": ""}
    out += _event(
        "content_block_start", {"type": "content_block_start", "index": 1, "content_block": text}
    )
    out += b"".join(_delta(1, {"type": "text_delta", "text": t}) for t in TEXTS)
    if error_after_text:
        err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return out + _event("error", err)
    out += _event("content_block_stop", {"type": "content_block_stop", "index": 1})
    tool = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}
    out += _event(
        "content_block_start", {"type": "content_block_start", "index": 2, "content_block": tool}
    )
    out += _delta(2, {"type": "input_json_delta", "partial_json": '{"city": '})
    out += _delta(2, {"type": "input_json_delta", "partial_json": '"Paris"}'})
    out += _event("content_block_stop", {"type": "content_block_stop", "index": 2})
    # More text after the tool call: a second run, apart from the first.
    out += _event(
        "content_block_start", {"type": "content_block_start", "index": 3, "content_block": text}
    )
    out += b"".join(_delta(3, {"type": "text_delta", "text": t}) for t in ("a", "b"))
    out += _event("content_block_stop", {"type": "content_block_stop", "index": 3})
    done = {"stop_reason": "tool_use", "stop_sequence": None}
    out += _event(
        "message_delta", {"type": "message_delta", "delta": done, "usage": {"output_tokens": 9}}
    )
    return out + _event("message_stop", {"type": "message_stop"})


def _gemini() -> bytes:
    def ev(parts: list[dict[str, Any]], finish: str | None = None) -> bytes:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            cand["finishReason"] = finish
        obj = {
            "candidates": [cand],
            "usageMetadata": {
                "promptTokenCount": 4,
                "candidatesTokenCount": 6,
                "totalTokenCount": 10,
            },
            "modelVersion": "gemini-2.5-flash",
        }
        return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"

    out = ev([{"text": "thinking it over", "thought": True}])
    out += b"".join(ev([{"text": t}]) for t in TEXTS)
    out += ev([{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}])
    return out + ev([{"text": "!"}], "STOP")


WIRES = {
    "anthropic": ("anthropic/claude-sonnet-4-5", _anthropic),
    "gemini": ("gemini/gemini-2.5-flash", _gemini),
}


def _seen(chunks: list[StreamChunk]) -> list[Any]:
    """The chunks as data, without the final response (it holds the call's timings)."""
    return [
        (
            c.delta,
            [(t.index, bool(t.id), t.name, t.arguments) for t in c.tool_calls],
            c.reasoning,
            c.finish_reason,
            None if c.usage is None else (c.usage.input_tokens, c.usage.output_tokens),
            c.done,
            None if c.reasoning_part is None else repr(c.reasoning_part),
        )
        for c in chunks
    ]


async def _read(up: RawUpstream, model: str, chunk: int | None) -> tuple[list[Any], Any]:
    up.chunk = chunk
    client = _client()
    try:
        stream = client.astream(model, "hi", **_kw(up))
        got = [c async for c in stream]
        assert all(type(c) is StreamChunk for c in got)  # never a TextRun to a caller
        assert stream.response is not None
        r = stream.response
        return _seen(got), (
            r.text,
            r.reasoning,
            [(t.name, t.arguments) for t in r.tool_calls],
            r.finish_reason,
            r.usage.output_tokens,
        )
    finally:
        await client.aclose()


@pytest.mark.parametrize("wire", sorted(WIRES))
async def test_one_read_gives_what_one_event_a_read_gives(up: RawUpstream, wire: str) -> None:
    model, body = WIRES[wire]
    up.body = body()
    whole = await _read(up, model, None)  # one read: the runs are made
    apart = await _read(up, model, 1)  # a byte a chunk: no two events in one read
    assert whole == apart
    chunks, (text, _, calls, _, _) = whole
    assert [c[0] for c in chunks if c[0]] == [
        *TEXTS,
        *(["a", "b"] if wire == "anthropic" else ["!"]),
    ]
    assert text.startswith("".join(TEXTS))
    assert calls
    assert calls[0][0] == "weather"


@pytest.mark.parametrize("chunk", [None, 5])
async def test_an_error_event_after_a_run_comes_after_its_text(
    up: RawUpstream, chunk: int | None
) -> None:
    up.body = _anthropic(error_after_text=True)
    up.chunk = chunk
    client = _client()
    got: list[str] = []

    async def read() -> None:
        async for c in client.astream("anthropic/claude-sonnet-4-5", "hi", **_kw(up)):
            got.append(c.delta)

    try:
        with pytest.raises(StreamInterruptedError) as info:
            await read()
    finally:
        await client.aclose()
    assert [g for g in got if g] == TEXTS
    assert info.value.partial is not None
    assert info.value.partial.text == "".join(TEXTS)
    assert isinstance(info.value.__cause__, llmrelay.OverloadedError)


# -- _in_runs itself, on any sequence of chunks -------------------------------------------------

_CHUNKS = st.one_of(
    st.builds(text_chunk, st.text(min_size=1, max_size=3)),
    st.builds(lambda d: chunk(d), st.text(max_size=2)),
    st.builds(
        lambda d, r: chunk(d, reasoning=r), st.text(max_size=2), st.text(min_size=1, max_size=2)
    ),
    st.builds(lambda d: chunk(d, finish_reason="stop"), st.text(max_size=2)),
    st.builds(lambda d: chunk(d, usage=Usage(1, 2)), st.text(max_size=2)),
    st.builds(
        lambda d: chunk(d, tool_calls=[ToolCallDelta(0, "c", "f", "{}")]), st.text(max_size=2)
    ),
)


class _Failed(Exception):
    pass


class _State:
    """Each event's data names the chunks ``feed`` gives for it (or that it fails)."""

    done = False

    def __init__(self, script: list[list[StreamChunk] | None]) -> None:
        self.script = script

    def feed(self, ev: SSEEvent) -> list[StreamChunk]:
        out = self.script[int(ev.data)]
        if out is None:
            raise _Failed
        return out


def _flat(chunks: list[StreamChunk]) -> list[Any]:
    out: list[StreamChunk] = []
    for c in chunks:
        if isinstance(c, TextRun):
            assert len(c.pieces) > 1
            out += [text_chunk(p) for p in c.pieces]
        else:
            out.append(c)
    return _seen(out)


@given(st.lists(st.one_of(st.none(), st.lists(_CHUNKS, max_size=4)), max_size=8))
def test_in_runs_gives_every_chunk_in_order_and_what_came_before_a_failure(
    script: list[list[StreamChunk] | None],
) -> None:
    events = [SSEDecoder(1 << 20).feed(f"data: {i}\n\n".encode())[0] for i in range(len(script))]
    got: list[StreamChunk] = []
    failed = False
    try:
        for c in _in_runs(_State(script), events):  # type: ignore[arg-type]
            got.append(c)
    except _Failed:
        failed = True
    before = script[: script.index(None)] if None in script else script
    assert failed == (None in script)
    # (Each run spread into its pieces: a chunk merged that was not plain text would lose a
    # field here.)
    assert _flat(got) == _seen([c for out in before for c in out if out is not None])
