"""The gateway's streamed path without a network: engine, adapter, SSE decoder and writer.

    python benchmarks/stream_path.py N [--events K] [--profile] [--chunk BYTES]

Streams ``N`` Chat Completions answers through ``Gateway._sse`` (what ``llmrelay serve`` runs
for ``"stream": true``) against an in-memory transport that answers with the fast upstream's
SSE body (``_upstream.py``: 33 events, ``--events`` fewer text events), delivered in one piece
(``--chunk``: pieces of that many bytes). The response the frames go to discards them: what is
measured is the per-stream and per-event work of llmrelay itself, not aiohttp's server nor an
HTTP parser. (The transport is a few slots, not ``MockTransport``, whose generator-based
context manager and async generator per stream cost ~28 µs: more than the engine's own
per-stream work, which it hid.)

Count instructions with valgrind (per stream = the difference of two runs / their N's)::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python stream_path.py 200
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python stream_path.py 2200

``--profile`` prints cProfile's top functions instead (their own time, which cProfile
inflates for small functions: read it for where, not how much).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _upstream import _stream_events


def _body(events: int | None) -> bytes:
    evs = _stream_events()
    if events is not None:  # keep the final, usage and [DONE] events
        evs = evs[: max(events - 3, 1)] + evs[-3:]
    return b"".join(evs)


class _Out:
    """A StreamResponse that drops what it is given."""

    status = 200
    written = 0

    async def write(self, data: bytes) -> None:
        self.written += len(data)

    async def write_eof(self, data: bytes = b"") -> None:
        self.written += len(data)


class _Memory:
    """A transport whose every stream answers ``body`` in ``chunk``-byte pieces: it is its own
    context manager, streaming response and iterator (no generator, no task)."""

    def __init__(self, body: bytes, chunk: int | None) -> None:
        size = chunk or max(len(body), 1)
        self.pieces = [body[i : i + size] for i in range(0, len(body), size)]

    def stream(self, request: Any, timeouts: Any) -> _MemoryStream:
        return _MemoryStream(self.pieces)

    async def send(self, request: Any, timeouts: Any) -> Any:
        raise NotImplementedError("stream_path.py streams only")

    async def aclose(self) -> None:
        return None


class _MemoryStream:
    __slots__ = ("_at", "_pieces", "headers", "status")

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces
        self._at = 0
        self.status = 200
        self.headers = {"content-type": "text/event-stream; charset=utf-8", "x-request-id": "r"}

    async def __aenter__(self) -> _MemoryStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def aiter_bytes(self) -> _MemoryStream:
        return self

    def __aiter__(self) -> _MemoryStream:
        return self

    async def __anext__(self) -> bytes:
        at = self._at
        if at >= len(self._pieces):
            raise StopAsyncIteration
        self._at = at + 1
        return self._pieces[at]

    async def aread(self) -> bytes:
        return b"".join(self._pieces)


async def _run(n: int, events: int | None, chunk: int | None) -> int:
    from llmrelay.gateway import openai_wire
    from llmrelay.gateway.app import GatewaySettings
    from llmrelay.gateway.server import build_gateway
    from llmrelay.gateway.sse import Frames

    gw = build_gateway(GatewaySettings(), transport=_Memory(_body(events), chunk))
    outs: list[_Out] = []

    async def start(request: Any, request_id: str, writer: Any, stream: Any) -> tuple[Any, Frames]:
        out = _Out()
        outs.append(out)
        frames = Frames(out)  # type: ignore[arg-type]
        opening = writer.start()
        if opening:
            await frames.add(opening)
        return out, frames

    gw._start_sse = start  # type: ignore[method-assign]
    request = orjson.loads(
        orjson.dumps(
            {
                "model": "openai/gpt-4.1-mini",
                "messages": [{"role": "user", "content": "How do I pool connections?"}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
    )
    for i in range(n):
        call = openai_wire.parse_chat_request(request)
        rid = f"req_{i:032x}"
        writer = openai_wire.StreamWriter("chatcmpl-" + rid[4:], call.model, call.include_usage)
        await gw._sse(None, rid, call, {"trace_id": rid}, writer)  # type: ignore[arg-type]
    await gw.client.aclose()
    return sum(o.written for o in outs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    for k in list(os.environ):
        if k.startswith("LLMRELAY_") or k.endswith(("_API_KEY", "_BASE_URL")):
            os.environ.pop(k)
    os.environ["OPENAI_API_KEY"] = "sk-upstream"
    os.environ["LLMRELAY_CONFIG"] = os.devnull
    asyncio.run(_run(3, args.events, args.chunk))  # warm: imports, catalog, caches
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        asyncio.run(_run(args.n, args.events, args.chunk))
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(40)
        return 0
    written = asyncio.run(_run(args.n, args.events, args.chunk))
    print(f"{args.n} streams, {written} bytes written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
