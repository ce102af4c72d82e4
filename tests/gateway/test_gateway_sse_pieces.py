"""An upstream's SSE stream cut into arbitrary network pieces, over real sockets, through the
gateway to the official OpenAI SDK: whatever the pieces (a cut inside a UTF-8 character, a
CRLF, a field name) and whatever the framing the spec allows (CR, CRLF, comments, ``id`` and
``retry`` lines, ``data:`` without a space, a leading BOM, data over several lines), the
client reads the text the upstream sent. The decoder's fast path and its line-by-line way
take turns on such streams."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import GPT, Running, ant, chat_chunk, chat_upstream, oai

_pieces = st.sampled_from(["a", "é", "€", "😀", " b", "x\n", "\u2028"])
_texts = st.lists(_pieces, min_size=1, max_size=4).map("".join)
_shape = st.fixed_dictionaries(
    {
        "eol": st.sampled_from(["\n", "\r\n", "\r"]),
        "comment": st.booleans(),
        "id": st.booleans(),
        "retry": st.booleans(),
        "nospace": st.booleans(),
        "multiline": st.booleans(),
    }
)


def _event(obj: object, shape: dict[str, object]) -> bytes:
    eol = str(shape["eol"])
    lines = []
    if shape["comment"]:
        lines.append(": keep-alive")
    if shape["id"]:
        lines.append("id: 7")
    if shape["retry"]:
        lines.append("retry: 1000")
    data = orjson.dumps(obj).decode()
    if shape["multiline"]:
        # JSON allows a line end between tokens: the spec joins data lines with LF.
        head, sep, tail = data.partition(",")
        parts = [head + sep, tail] if sep else [data]
    else:
        parts = [data]
    prefix = "data:" if shape["nospace"] else "data: "
    lines += [prefix + p for p in parts]
    return (eol.join(lines) + eol + eol).encode()


class _Pieces:
    """An upstream that writes its stream in the given pieces, one write (and a turn of the
    loop) each."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        out = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await out.prepare(request)
        for p in self.pieces:
            await out.write(p)
            await asyncio.sleep(0)
        await out.write_eof()
        return out


@pytest.fixture
async def pieces(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[_Pieces]:
    up = _Pieces()
    async with chat_upstream(up.handle, monkeypatch):
        yield up


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(_texts, min_size=1, max_size=5),
    shapes=st.lists(_shape, min_size=7, max_size=7),
    bom=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
async def test_any_cut_of_any_framing_reaches_the_sdk_whole(
    gw: Running,
    pieces: _Pieces,
    texts: list[str],
    shapes: list[dict[str, object]],
    bom: bool,
    cuts: list[int],
) -> None:
    objs = [chat_chunk({"role": "assistant", "content": ""})]
    objs += [chat_chunk({"content": t}) for t in texts]
    objs.append(chat_chunk({}, finish="stop"))
    body = b"\xef\xbb\xbf" if bom else b""
    body += b"".join(_event(o, shapes[i % len(shapes)]) for i, o in enumerate(objs))
    body += b"data: [DONE]\n\n"
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    pieces.pieces = [body[a:b] for a, b in itertools.pairwise(points) if b > a]
    client = oai(gw)
    stream = await client.chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": "x"}], stream=True
    )
    got = []
    finish = None
    async for c in stream:
        if c.choices:
            got.append(c.choices[0].delta.content or "")
            finish = c.choices[0].finish_reason or finish
    assert "".join(got) == "".join(texts)
    assert finish == "stop"


@pytest.mark.parametrize("pad", [False, True])
@pytest.mark.parametrize("client_wire", ["openai", "anthropic"])
async def test_events_that_arrive_together_leave_one_for_one(
    gw: Running, pieces: _Pieces, client_wire: str, pad: bool
) -> None:
    # The whole stream in one write: the gateway reads its text events together (one
    # TextRun through the engine) and must still send each as its own event, in order.
    texts = ["Hello", ",", " wörld", ' "q"', "\n", "😀", " end"]
    objs = [chat_chunk({"role": "assistant", "content": ""})]
    objs += [chat_chunk({"content": t}) for t in texts]
    if pad:  # OpenAI's random padding on every event
        objs = [{**o, "obfuscation": "p" * (i % 5)} for i, o in enumerate(objs)]
    objs.append(chat_chunk({}, finish="stop"))
    pieces.pieces = [b"".join(b"data: " + orjson.dumps(o) + b"\n\n" for o in objs)]
    pieces.pieces[0] += b"data: [DONE]\n\n"
    got: list[str] = []
    if client_wire == "openai":
        stream = await oai(gw).chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "x"}], stream=True
        )
        async for c in stream:
            if c.choices and c.choices[0].delta.content:
                got.append(c.choices[0].delta.content)
    else:
        async with ant(gw).messages.stream(
            model=GPT, max_tokens=64, messages=[{"role": "user", "content": "x"}]
        ) as s:
            async for ev in s:
                if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                    got.append(ev.delta.text)
    assert got == texts
