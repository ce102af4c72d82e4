"""A tiny aiohttp server on a background thread for transport edge cases.

Routes are chosen by the first path segment, so a client can point ``base_url`` at
``<url>/<route>/v1`` and the OpenAI adapter's ``/chat/completions`` lands on that route:

- ``stall``: never answers.
- ``bodystall``: sends the headers and part of the body, then stalls.
- ``cut``: sends the headers and part of the body, then closes the connection.
- ``sse``: an OpenAI-format stream of two content chunks, then stalls with the stream open.
- ``peer``: answers the client's TCP port (JSON ``{"port": N}``, or as a chat completion's text).

Handlers run with ``handler_cancellation``, so a client that goes away cancels its handler:
``disconnected[route]`` is set then, which is how tests see that a connection was closed.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from aiohttp import web

_SSE_CHUNKS = [
    {"role": "assistant", "content": "Hel"},
    {"content": "lo"},
]


def _sse_frame(delta: dict[str, str]) -> bytes:
    obj = {
        "id": "chatcmpl-edge",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "edge-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def completion(text: str) -> dict[str, object]:
    """A minimal, valid OpenAI chat completion body."""
    return {
        "id": "chatcmpl-edge",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "edge-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


class EdgeServer:
    def __init__(self) -> None:
        self.port = 0
        self.started: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.disconnected: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.ports: list[int] = []
        self._release: asyncio.Event | None = None

    def base_url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.port}/{route}/v1"

    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.port}/{route}"

    async def _stall(self) -> None:
        assert self._release is not None
        await self._release.wait()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = request.path.strip("/").split("/", 1)[0]
        await request.read()
        self.started[route].set()
        try:
            return await self._route(route, request)
        except asyncio.CancelledError:
            self.disconnected[route].set()
            raise

    async def _route(self, route: str, request: web.Request) -> web.StreamResponse:
        if route == "stall":
            await self._stall()
            return web.json_response(completion("too late"))
        if route in ("bodystall", "cut"):
            resp = web.StreamResponse(headers={"content-type": "application/json"})
            resp.content_length = 1000
            await resp.prepare(request)
            await resp.write(b'{"id": "chatcmpl-edge", "choices": [')
            if route == "cut":
                assert request.transport is not None
                request.transport.close()
                return resp
            await self._stall()
            return resp
        if route == "sse":
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            for delta in _SSE_CHUNKS:
                await resp.write(_sse_frame(delta))
            await self._stall()
            return resp
        if route == "peer":
            assert request.transport is not None
            port = request.transport.get_extra_info("peername")[1]
            self.ports.append(port)
            if request.path.endswith("/chat/completions"):
                return web.json_response(completion(str(port)))
            return web.json_response({"port": port})
        return web.json_response({"error": {"message": f"no route {route}"}}, status=404)

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[EdgeServer]:
        server = cls()
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        runner_box: list[web.AppRunner] = []

        async def start() -> None:
            server._release = asyncio.Event()
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", server._handle)
            runner = web.AppRunner(
                app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
            )
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server.port = runner.addresses[0][1]
            runner_box.append(runner)

        async def stop() -> None:
            assert server._release is not None
            server._release.set()
            await runner_box[0].cleanup()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        t = threading.Thread(target=run, name="edge-server", daemon=True)
        t.start()
        assert ready.wait(10), "the edge server did not start"
        try:
            yield server
        finally:
            loop.call_soon_threadsafe(loop.stop)
            t.join(10)
