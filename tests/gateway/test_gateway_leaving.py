"""A client that leaves a stream (the official SDKs closing it, or a raw socket hanging up):
the upstream is cancelled and what the call reserved is settled -- the key's rate-limit
tokens and its budget hold nothing for the dead call."""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest

from llmrelay.gateway import sse
from llmrelay.testing.fake import Reply

from .conftest import AUTH, GPT, Running, oai


async def _settled(gw: Running) -> None:
    for _ in range(300):  # the gateway notices on its next write
        if gw.gateway.in_flight == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the call is still in flight")


async def test_an_sdk_client_leaving_a_stream_leaves_nothing_reserved(gw: Running) -> None:
    key = await gw.key(budget_usd=5.0, rpm=100, tpm=100_000)
    gw.fake.push(Reply.ok("word " * 2000))
    client = oai(gw, key)
    stream = await client.chat.completions.create(
        model=GPT,
        messages=[{"role": "user", "content": "long"}],
        stream=True,
        max_tokens=4000,
    )
    got = 0
    async for _ in stream:
        got += 1
        if got == 3:
            break
    await stream.close()
    await _settled(gw)
    assert gw.gateway.keys is not None
    assert gw.gateway.budgets is not None
    record = await gw.gateway.keys.lookup(key)
    assert record is not None
    limit = gw.gateway.budgets.limit_for(record)
    assert limit is not None
    status = await gw.gateway.budgets.status(limit, record.id)
    assert status["reserved_usd"] == 0, status  # the reservation settled ...
    assert status["spent_usd"] > 0, status  # ... at what was produced
    limiter = gw.gateway.limiter
    assert limiter is not None
    mem = limiter._memory
    assert mem is not None
    # The key's tokens per minute: the ~4,000 estimated (2.4 s of a 100,000 tpm window) are
    # given back, not held for the dead call.
    held = mem._scopes[f"vkey:{record.id}"].tat[1] - time.monotonic()
    assert held < 60 * 2000 / 100_000


async def test_a_client_that_stops_reading_holds_the_stream_not_the_upstream(
    gw: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends a streamed request over a raw socket and never reads: the frames
    the gateway holds for it stay within ``_HOLD`` (plus one frame), and reading the upstream
    waits for the client. Hanging up then ends the call."""
    most = [0]
    real_add = sse.Frames.add

    async def add(self: sse.Frames, frame: bytes) -> None:
        most[0] = max(most[0], self._held)
        await real_add(self, frame)
        most[0] = max(most[0], self._held)

    def add_nowait(self: sse.Frames, frame: bytes) -> bool:
        ok = real_nowait(self, frame)
        most[0] = max(most[0], self._held)
        return ok

    real_nowait = sse.Frames.add_nowait
    monkeypatch.setattr(sse.Frames, "add", add)
    monkeypatch.setattr(sse.Frames, "add_nowait", add_nowait)
    words = 200_000
    gw.fake.push(Reply.ok("word " * words))
    body = orjson.dumps(
        {"model": GPT, "stream": True, "messages": [{"role": "user", "content": "long"}]}
    )
    host, port = gw.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: {AUTH['authorization']}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    await loop.sock_sendall(sock, head + body)
    for _ in range(100):  # let the gateway fill what the client's socket and its own hold
        await asyncio.sleep(0.02)
    assert gw.gateway.in_flight == 1  # still streaming: the client has not read it all
    assert 0 < most[0] <= sse._HOLD + 256
    sock.close()
    await _settled(gw)
