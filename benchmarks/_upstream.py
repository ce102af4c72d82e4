"""A minimal, fast local OpenAI-compatible upstream for benchmarks.

It is a raw ``asyncio.Protocol`` HTTP/1.1 server (keep-alive, Content-Length request bodies)
that answers ``POST /v1/chat/completions`` with one fixed, realistic ``chat.completion`` body, or,
when the request body asks for ``"stream": true``, with a fixed SSE stream sent with chunked
transfer encoding (like api.openai.com). Every answer is precomputed bytes, so the server spends
as little CPU as possible per request.

It runs in a separate process (``start_upstream()``), so its CPU is never counted as client
CPU. Run it by hand with ``python benchmarks/_upstream.py --port 8765``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator

import orjson

from _responses import RESPONSE_BODY, STREAM_EVENTS

__all__ = ["COMPLETION", "STREAM_TEXT", "TEXT", "Upstream", "start_upstream"]

MODEL = "gpt-4.1-mini-2025-04-14"
TEXT = (
    "Connection pooling keeps TCP (and TLS) connections open between requests, so each call "
    "skips the handshake. In Python, reuse one aiohttp.ClientSession for the life of the "
    "program instead of creating one per request."
)

#: The fixed non-streamed answer (the shape api.openai.com returns today).
COMPLETION: dict[str, object] = {
    "id": "chatcmpl-BkQ3x9yX2mZ8vN4pL6tR1sW0uY7a",
    "object": "chat.completion",
    "created": 1750000000,
    "model": MODEL,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": TEXT,
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 32,
        "completion_tokens": 48,
        "total_tokens": 80,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_6f2eabb9a5",
}


def _stream_pieces() -> list[str]:
    """The text split into word-sized deltas, as a model streams it (~30 chunks)."""
    return re.findall(r"\S+\s*", TEXT)


STREAM_TEXT = "".join(_stream_pieces())


def _stream_events(count: int | None = None) -> list[bytes]:
    """The stream's events (``data: ...`` and a blank line each). ``count``: that many in all,
    at least 4: the text events cut short, or made longer with the text's pieces again, then
    the final, usage and ``[DONE]`` events."""
    base = {
        "id": COMPLETION["id"],
        "object": "chat.completion.chunk",
        "created": COMPLETION["created"],
        "model": MODEL,
        "service_tier": "default",
        "system_fingerprint": COMPLETION["system_fingerprint"],
    }
    events: list[dict[str, object]] = []
    for i, piece in enumerate(_stream_pieces()):
        delta: dict[str, object] = {"content": piece}
        if i == 0:
            delta = {"role": "assistant", "content": piece, "refusal": None}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        events.append({**base, "choices": [choice], "usage": None})
    if count is not None:  # the first (with the role), then the others as often as needed
        more = max(count, 4) - 4
        events = events[:1] + [events[1 + i % (len(events) - 1)] for i in range(more)]
    final = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    events.append({**base, "choices": [final], "usage": None})
    events.append({**base, "choices": [], "usage": COMPLETION["usage"]})
    out = [b"data: " + orjson.dumps(e) + b"\n\n" for e in events]
    out.append(b"data: [DONE]\n\n")
    return out


def _chunked(parts: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


_COMMON = (
    b"date: Mon, 16 Jun 2025 12:00:00 GMT\r\n"
    b"openai-organization: user-bench\r\n"
    b"openai-processing-ms: 312\r\n"
    b"openai-version: 2020-10-01\r\n"
    b"x-request-id: req_0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e\r\n"
    # A limit no benchmark reaches: llmrelay's limiter honours what a provider advertises (a
    # tier's 10,000 per minute refused the gateway benchmark's calls past ~170/s).
    b"x-ratelimit-limit-requests: 10000000\r\n"
    b"x-ratelimit-remaining-requests: 9999999\r\n"
)
_BODY = orjson.dumps(COMPLETION)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    + _COMMON
    + b"content-length: %d\r\n\r\n" % len(_BODY)
    + _BODY
)


def _stream_response(events: list[bytes]) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        + _COMMON
        + b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        + _chunked(events)
    )


STREAM_RESPONSE = _stream_response(_stream_events())
_RBODY = RESPONSE_BODY(MODEL, TEXT)
#: ``POST /v1/responses`` (``overhead.py --api responses``): the same text, Responses shapes.
RESPONSES_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    + _COMMON
    + b"content-length: %d\r\n\r\n" % len(_RBODY)
    + _RBODY
)
RESPONSES_STREAM = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    + _COMMON
    + b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    + _chunked(STREAM_EVENTS(MODEL, STREAM_TEXT))
)
_NOT_FOUND_BODY = b'{"error":{"message":"not found","type":"invalid_request_error"}}'
NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n" % len(_NOT_FOUND_BODY) + _NOT_FOUND_BODY
)
_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CONN_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


class _HTTPProtocol(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order."""

    __slots__ = ("_buf", "_transport")

    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        transport = self._transport
        assert transport is not None
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            m = _CONTENT_LENGTH.search(head)
            length = int(m.group(1)) if m else 0
            total = end + 4 + length
            if len(buf) < total:
                break
            body = buf[end + 4 : total]
            buf = buf[total:]
            if head.startswith(b"POST ") and b"/chat/completions" in head[: head.find(b"\r\n")]:
                transport.write(STREAM_RESPONSE if _STREAM_FLAG.search(body) else RESPONSE)
            elif head.startswith(b"POST ") and b"/responses" in head[: head.find(b"\r\n")]:
                stream = _STREAM_FLAG.search(body)
                transport.write(RESPONSES_STREAM if stream else RESPONSES_RESPONSE)
            else:
                transport.write(NOT_FOUND)
            if _CONN_CLOSE.search(head):
                transport.close()
                buf = b""
                break
        self._buf = buf


def raise_fd_limit() -> None:
    """Allow ~thousands of sockets (the concurrency benchmark opens 1,000 connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HTTPProtocol, host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


class Upstream:
    """A running upstream process; ``base_url`` ends in ``/v1``."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pick_cpus(pin: bool) -> tuple[int | None, int | None]:
    """(upstream CPU, client CPU): different cores when the machine has two or more."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[-1], cpus[0]


@contextlib.contextmanager
def start_upstream(cpu: int | None = None, stream_events: int | None = None) -> Iterator[Upstream]:
    """Start the upstream in a child process (optionally pinned to one CPU; ``stream_events``:
    events in a streamed answer, default 33); stop it on exit."""
    cmd = [sys.executable, os.path.abspath(__file__), "--port", "0"]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    if stream_events is not None:
        cmd += ["--stream-events", str(stream_events)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"the benchmark upstream did not start (it printed {line!r})")
    up = Upstream(proc, int(line.split()[1]))
    try:
        yield up
    finally:
        up.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    ap.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    ap.add_argument(
        "--stream-events", type=int, default=None, help="events in a streamed answer (>= 4)"
    )
    args = ap.parse_args()
    if args.stream_events is not None:
        global STREAM_RESPONSE
        STREAM_RESPONSE = _stream_response(_stream_events(args.stream_events))
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
