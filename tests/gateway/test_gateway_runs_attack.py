"""Text events that one upstream read delivers together pass the engine as one ``TextRun``;
over real sockets, through the gateway, a client must get what it would get had each event
been read on its own: the same bytes (ids and times aside), in order, on every wire, and what
came before an in-band error before the error."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay.gateway import sse as gw_sse

from .conftest import AUTH, GPT, Running, chat_chunk, chat_upstream, oai

TEXTS = ["Hello", ",", " wörld", ' "q"', "\n", "😀", " end", "\u2028", "\\"]


class _Upstream:
    """A Chat Completions upstream that writes its whole stream in one write."""

    def __init__(self) -> None:
        self.body = b""
        self.requests = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests += 1
        out = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await out.prepare(request)
        await out.write(self.body)
        await out.write_eof()
        return out


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[_Upstream]:
    up = _Upstream()
    async with chat_upstream(up.handle, monkeypatch):
        yield up


def _body(objs: list[dict[str, object]], *, spaced: bool) -> bytes:
    """The events; ``spaced``: written ``"content" : ...`` so that no text-event template forms
    (every event parsed whole, one chunk each: per-event rendering)."""
    out = b""
    for o in objs:
        data = orjson.dumps(o)
        if spaced:
            data = data.replace(b'"content":', b'"content" : ')
        out += b"data: " + data + b"\n\n"
    return out


_NORMAL = [
    (re.compile(rb'"created(_at)?":\d+'), b'"created":0'),
    (re.compile(rb"(chatcmpl|msg|resp|rs|msg_|fc|item)[-_][A-Za-z0-9]+"), b"ID"),
]


def _normal(raw: bytes) -> bytes:
    for pat, rep in _NORMAL:
        raw = pat.sub(rep, raw)
    return raw


async def _raw(gw: Running, path: str, body: dict[str, object]) -> bytes:
    async with (
        aiohttp.ClientSession() as s,
        s.post(gw.url + path, json=body, headers=AUTH) as r,
    ):
        assert r.status == 200, await r.read()
        return await r.read()


_WIRES = {
    "chat": (
        "/v1/chat/completions",
        {"model": GPT, "messages": [{"role": "user", "content": "x"}], "stream": True},
    ),
    "chat-usage": (
        "/v1/chat/completions",
        {
            "model": GPT,
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    "messages": (
        "/v1/messages",
        {
            "model": GPT,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
        },
    ),
    "responses": ("/v1/responses", {"model": GPT, "input": "x", "stream": True}),
}


@pytest.mark.parametrize("pad", [False, True])
@pytest.mark.parametrize("wire", sorted(_WIRES))
async def test_a_run_renders_the_bytes_per_event_rendering_gives(
    gw: Running, upstream: _Upstream, wire: str, pad: bool
) -> None:
    objs: list[dict[str, object]] = [chat_chunk({"role": "assistant", "content": ""})]
    objs += [chat_chunk({"content": t}) for t in TEXTS]
    objs.append(chat_chunk({"reasoning_content": "hm"}))
    objs += [chat_chunk({"content": t}) for t in TEXTS[:3]]
    if pad:
        objs = [{**o, "obfuscation": "p" * (i % 4)} for i, o in enumerate(objs)]
    objs.append(chat_chunk({}, finish="stop"))
    objs.append(
        {**chat_chunk({}), "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}}
    )
    path, req = _WIRES[wire]
    upstream.body = _body(objs, spaced=False) + b"data: [DONE]\n\n"
    runs = await _raw(gw, path, req)
    upstream.body = _body(objs, spaced=True) + b"data: [DONE]\n\n"
    each = await _raw(gw, path, req)
    assert _normal(runs) == _normal(each)
    if wire.startswith("chat"):
        assert _chat_texts(runs) == [*TEXTS, *TEXTS[:3]]


def _chat_texts(raw: bytes) -> list[str]:
    """The text deltas of a Chat Completions SSE body, one per event."""
    out = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data: {"):
            choices = orjson.loads(line[6:]).get("choices") or [{}]
            text = choices[0].get("delta", {}).get("content")
            if text:
                out.append(text)
    return out


_ENDS = {
    # An in-band error event in the same read as the run (OpenRouter's way).
    "error": b'data: {"error":{"message":"upstream boom","code":502}}\n\n',
    # An error next to choices, the text before it in the same event.
    "error-with-text": b'data: {"choices":[{"index":0,"delta":{"content":"!"}}],'
    b'"error":{"message":"upstream boom","code":502}}\n\n',
    # A refusal after the text: the stream ends as a refusal.
    "refusal": b'data: {"choices":[{"index":0,"delta":{"refusal":"I will not."}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    # The upstream closes without its final event.
    "cut": b"",
    # A cut inside an event.
    "cut-inside": b'data: {"choices":[{"index":0,"delta":{"content":"lost',
}


@pytest.mark.parametrize("end", sorted(_ENDS))
@pytest.mark.parametrize("wire", sorted(_WIRES))
async def test_what_came_before_a_failure_reaches_the_client_before_it(
    gw: Running, upstream: _Upstream, wire: str, end: str
) -> None:
    objs: list[dict[str, object]] = [chat_chunk({"role": "assistant", "content": ""})]
    objs += [{**chat_chunk({"content": t}), "obfuscation": "Ab1"} for t in TEXTS]
    path, req = _WIRES[wire]
    upstream.body = _body(objs, spaced=False) + _ENDS[end]
    runs = await _raw(gw, path, req)
    upstream.body = _body(objs, spaced=True) + _ENDS[end]
    each = await _raw(gw, path, req)
    assert _normal(runs) == _normal(each)
    if wire.startswith("chat"):
        texts = _chat_texts(runs)
        # Text beside the error object, in the same event, is part of the answer: sent first.
        assert texts == ([*TEXTS, "!"] if end == "error-with-text" else TEXTS)
        after = runs.split(b'" end"', 1)[1]
        assert (b'"refusal"' if end == "refusal" else b'"error"') in after  # after the text


_word = st.text(
    st.sampled_from(["a", "é", "😀", " ", '"', "\\", "\n", "\u2028", "\x00"]), max_size=4
)
_ev = st.one_of(
    st.tuples(st.just("text"), _word),
    st.tuples(st.just("reasoning"), _word),
    st.tuples(st.just("tool"), st.sampled_from(['{"a"', ":1}", ""])),
    st.tuples(st.just("text+usage"), _word),
    st.tuples(st.just("pad"), st.sampled_from(["", "Ab9", 'a"b', "é"])),
)


def _obj(kind: str, payload: str, i: int) -> dict[str, object]:
    if kind == "text":
        return {**chat_chunk({"content": payload}), "obfuscation": "x" * (i % 3)}
    if kind == "pad":
        return {**chat_chunk({"content": "p"}), "obfuscation": payload}
    if kind == "reasoning":
        return chat_chunk({"reasoning_content": payload})
    if kind == "tool":
        fn = {"name": "f", "arguments": payload}
        return chat_chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": fn}]})
    return {
        **chat_chunk({"content": payload}),
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(_ev, max_size=12), wire=st.sampled_from(sorted(_WIRES)))
async def test_any_mix_of_events_renders_as_per_event_rendering_does(
    gw: Running, upstream: _Upstream, events: list[tuple[str, str]], wire: str
) -> None:
    objs: list[dict[str, object]] = [
        chat_chunk({"role": "assistant", "content": ""}),
        {**chat_chunk({"content": "first"}), "obfuscation": "Q"},
    ]
    objs += [_obj(k, p, i) for i, (k, p) in enumerate(events)]
    objs.append(chat_chunk({}, finish="stop"))
    path, req = _WIRES[wire]
    upstream.body = _body(objs, spaced=False) + b"data: [DONE]\n\n"
    runs = await _raw(gw, path, req)
    upstream.body = _body(objs, spaced=True) + b"data: [DONE]\n\n"
    each = await _raw(gw, path, req)
    assert _normal(runs) == _normal(each)


async def test_an_sdk_client_leaving_in_the_middle_of_a_run_ends_the_upstream_call(
    gw: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The upstream sends a burst of text events in one write and keeps the stream open: the
    # gateway reads them together (one run); the client reads three events and leaves.
    hung_up = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        objs = [chat_chunk({"role": "assistant", "content": ""})]
        objs += [
            {**chat_chunk({"content": f"w{i} "}), "obfuscation": "Z" * (i % 7)} for i in range(200)
        ]
        body = _body(objs, spaced=False)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(body), body)
        )
        await writer.drain()
        while await reader.read(65536):  # until the gateway hangs up
            pass
        hung_up.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    try:
        stream = await oai(gw).chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "x"}], stream=True
        )
        got: list[str] = []
        async for c in stream:
            if c.choices and c.choices[0].delta.content:
                got.append(c.choices[0].delta.content)
            if len(got) == 3:
                break
        await stream.close()
        assert got == ["w0 ", "w1 ", "w2 "]
        async with asyncio.timeout(30):
            await hung_up.wait()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("wire", ["chat", "messages"])
async def test_a_read_of_thousands_of_tiny_events_still_meets_backpressure(
    gw: Running, upstream: _Upstream, monkeypatch: pytest.MonkeyPatch, wire: str
) -> None:
    # A minimal upstream (no id, no padding: ~50 bytes an event) sends a burst: one read of the
    # gateway holds thousands of text events, one run. The frames go to the client a bounded
    # amount at a time (``Frames`` holds at most ``_HOLD`` bytes before it waits for the
    # client), not the whole run rendered into one write.
    largest = [0]
    real_add, real_nowait = gw_sse.Frames.add, gw_sse.Frames.add_nowait

    async def add(self: gw_sse.Frames, frame: bytes) -> None:
        largest[0] = max(largest[0], len(frame))
        await real_add(self, frame)

    def add_nowait(self: gw_sse.Frames, frame: bytes) -> bool:
        largest[0] = max(largest[0], len(frame))
        return real_nowait(self, frame)

    monkeypatch.setattr(gw_sse.Frames, "add", add)
    monkeypatch.setattr(gw_sse.Frames, "add_nowait", add_nowait)
    n = 20_000
    tiny = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    upstream.body = (
        b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
        + tiny * n
        + b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    path, req = _WIRES[wire]
    raw = await _raw(gw, path, req)
    assert raw.count(b'"a"') == n
    assert largest[0] <= gw_sse._HOLD
