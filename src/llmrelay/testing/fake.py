"""An in-process fake LLM upstream on 127.0.0.1 that speaks the real wire formats.

One server answers OpenAI Chat Completions (``/v1/chat/completions``, ``/v1/models``), OpenAI
Responses (``/v1/responses``), Anthropic
Messages (``/v1/messages``, ``/v1/models``) and Gemini (``/v1beta/models/{m}:generateContent``,
``:streamGenerateContent``, ``/v1beta/models``), each through a *dialect* that renders replies in
its provider's exact format. The official ``openai`` and ``anthropic`` SDKs parse what it sends.

By default it answers ``Echo: <last user text>``; structured-output and forced-tool requests get
an instance generated from the JSON schema. Script the next replies with :meth:`FakeUpstream.push`
(errors, HTML bodies, truncated JSON, cut streams, in-stream errors, hangs, connection resets).

Use it from async code (``async with FakeUpstream() as fake``) or from sync code
(``with FakeUpstream.running() as fake`` runs it on a background thread).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

from ..providers.schema_sample import instance_from_schema
from .fake_base import Dialect, FakeRequest, FakeUsage
from .fake_dialects import DIALECTS
from .fake_embeddings import answer as embeddings_answer
from .fake_embeddings import is_embeddings_path, is_voyage_path

__all__ = ["FakeRequest", "FakeUpstream", "RecordedRequest", "Reply"]

ReplyKind = Literal[
    "text", "tool_call", "error", "raw", "cut_stream", "stream_error", "hang", "reset"
]


@dataclass(slots=True)
class Reply:
    """One scripted answer. Build with the classmethods."""

    kind: ReplyKind = "text"
    text: str | None = None
    tool_name: str | None = None
    tool_args: Any = None
    status: int = 200
    message: str = ""
    error_type: str | None = None
    error_code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = "application/json"
    after_chunks: int = 0
    delay: float = 0.0
    #: Seconds between a stream's frames (a slow model); the first frame goes at once.
    pace: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    finish: str = "stop"
    #: A redacted_thinking block's opaque data (Anthropic).
    redacted_reasoning: str = ""
    #: With ``finish="content_filter"``: the refusal's category and explanation (Anthropic
    #: ``stop_details``).
    refusal_category: str | None = None
    refusal_explanation: str | None = None
    #: Report no usage, as servers that ignore ``stream_options`` do: no ``usage`` in the body,
    #: no usage frame in an OpenAI-format stream.
    no_usage: bool = False
    #: Only answer requests whose path contains this (others get the default reply).
    path_contains: str | None = None
    #: The model's reasoning, sent before the answer. Anthropic: a thinking block with a
    #: signature (streamed as thinking_delta + signature_delta). OpenAI format:
    #: ``message.<reasoning_field>`` and ``delta.<reasoning_field>`` pieces
    #: (``reasoning_content`` as DeepSeek and vLLM send it, ``reasoning`` as OpenRouter and Groq).
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    #: A refusal instead of an answer (OpenAI format: ``message.refusal`` / ``delta.refusal``).
    refusal: str | None = None

    @classmethod
    def ok(cls, text: str, **kw: Any) -> Reply:
        return cls("text", text=text, **kw)

    @classmethod
    def refuse(cls, refusal: str, **kw: Any) -> Reply:
        """The model declines: no content, the refusal text instead (finish ``stop``)."""
        return cls("text", text="", refusal=refusal, **kw)

    @classmethod
    def tool_call(cls, name: str, args: Any, **kw: Any) -> Reply:
        return cls("tool_call", tool_name=name, tool_args=args, finish="tool_calls", **kw)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "",
        *,
        type: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Reply:
        return cls(
            "error",
            status=status,
            message=message or f"fake error {status}",
            error_type=type,
            error_code=code,
            headers=headers or {},
            **kw,
        )

    @classmethod
    def raw(
        cls,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Reply:
        return cls(
            "raw",
            status=status,
            body=body.encode() if isinstance(body, str) else body,
            content_type=content_type,
            headers=headers or {},
            **kw,
        )

    @classmethod
    def cut_stream(cls, after_chunks: int = 2, text: str | None = None, **kw: Any) -> Reply:
        """Stream ``after_chunks`` content events, then drop the connection."""
        return cls("cut_stream", after_chunks=after_chunks, text=text, **kw)

    @classmethod
    def stream_error(
        cls,
        after_chunks: int = 0,
        message: str = "Overloaded",
        *,
        type: str = "overloaded_error",
        **kw: Any,
    ) -> Reply:
        """Stream ``after_chunks`` content events, then an in-stream error event."""
        return cls(
            "stream_error", after_chunks=after_chunks, message=message, error_type=type, **kw
        )

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """Wait ``seconds`` before answering normally (for timeout tests)."""
        return cls("hang", delay=seconds)

    @classmethod
    def reset(cls) -> Reply:
        """Close the TCP connection without answering."""
        return cls("reset")


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def rough_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: words and punctuation."""
    return max(1, len(re.findall(r"\w+|[^\w\s]", text)))


def split_pieces(text: str) -> list[str]:
    """Split text into stream deltas: words with their leading spaces."""
    return re.findall(r"\s*\S+", text) or [text]


class FakeUpstream:
    """The fake server. ``api_key`` (if set) must be presented the provider's way."""

    DEFAULT_MODELS: tuple[str, ...] = (
        "gpt-4.1-mini",
        "gpt-4o-mini",
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
        "llama-3.1-8b-instant",
    )

    def __init__(
        self, *, api_key: str | None = None, models: tuple[str, ...] | None = None
    ) -> None:
        self.api_key = api_key
        self.models = list(models or self.DEFAULT_MODELS)
        self.requests: list[RecordedRequest] = []
        #: Stream frames written in full (scripted cuts and errors aside): what was produced.
        self.frames_sent = 0
        #: Streams being written now (a paced one ends when its client hangs up).
        self.streaming = 0
        self._script: deque[Reply] = deque()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port = 0
        self._counter = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._dialects: dict[str, Dialect] = DIALECTS

    # ------------------------------------------------------------------ control

    def push(self, *replies: Reply) -> FakeUpstream:
        """Queue replies for the next requests (first in, first out)."""
        with self._lock:
            self._script.extend(replies)
        return self

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def gemini_base_url(self) -> str:
        return self.url + "/v1beta"

    @property
    def voyage_base_url(self) -> str:
        """Voyage's ``/v1`` under a ``/voyage`` prefix (its path is OpenAI's)."""
        return self.url + "/voyage/v1"

    @property
    def cohere_base_url(self) -> str:
        """What Cohere's SDKs take as base URL (the adapter adds ``/v2/embed``)."""
        return self.url

    def base_url_for(self, provider_or_wire: str) -> str:
        """The base URL an SDK/provider row of this family would use for this fake."""
        if provider_or_wire in ("anthropic", "anthropic_messages"):
            return self.anthropic_base_url
        if provider_or_wire == "gemini":
            return self.gemini_base_url
        if provider_or_wire == "voyage":
            return self.voyage_base_url
        if provider_or_wire == "cohere":
            return self.cohere_base_url
        return self.openai_base_url

    # ------------------------------------------------------------------ lifecycle

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self) -> FakeUpstream:
        # A short shutdown: a test's hanging reply must not hold up its teardown.
        self._runner = web.AppRunner(
            self._app(), access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await self._site.start()
        server = self._site._server
        sockets = getattr(server, "sockets", None)
        if not sockets:
            raise RuntimeError("the fake upstream did not start listening")
        self.port = int(sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    @contextmanager
    def running(cls, **kw: Any) -> Iterator[FakeUpstream]:
        """Run a fake on a background thread (for sync code, the CLI demo and sync tests)."""
        fake = cls(**kw)
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(fake.start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(fake.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        t = threading.Thread(target=run, name="llmrelay-fake-upstream", daemon=True)
        t.start()
        started.wait(10)
        try:
            yield fake
        finally:
            loop.call_soon_threadsafe(loop.stop)
            t.join(10)

    # ------------------------------------------------------------------ serving

    def _dialect_for(self, path: str) -> Dialect | None:
        if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path):
            return self._dialects["gemini"]
        if path.endswith(("/messages", "/messages/count_tokens")):
            return self._dialects["anthropic"]
        if is_voyage_path(path):
            return self._dialects["voyage"]
        if path.endswith("/v2/embed"):
            return self._dialects["cohere"]
        if path.endswith(("/chat/completions", "/embeddings")):
            return self._dialects["openai"]
        if path.endswith("/responses"):
            return self._dialects["openai_responses"]
        return None

    def _next_reply(self, path: str) -> Reply | None:
        with self._lock:
            for i, r in enumerate(self._script):
                if r.path_contains is None or r.path_contains in path:
                    del self._script[i]
                    return r
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        self.requests.append(
            RecordedRequest(
                request.method,
                path,
                dict(request.query),
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        self._counter += 1
        # Model listing endpoints.
        if request.method == "GET" and (path.rstrip("/").endswith("/models")):
            if path.startswith("/v1beta"):
                d = self._dialects["gemini"]
            elif "anthropic-version" in request.headers:
                d = self._dialects["anthropic"]
            else:
                d = self._dialects["openai"]
            return self._refuse_key(request, d) or self._json(200, d.models(self.models), d)
        dialect = self._dialect_for(path)
        if dialect is None:
            return web.json_response({"error": {"message": f"no route {path}"}}, status=404)
        reply = self._next_reply(path) or Reply()
        if reply.kind == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if reply.kind == "hang" or reply.delay:
            await asyncio.sleep(reply.delay)
        refused = self._refuse_key(request, dialect)
        if refused is not None:
            return refused
        if reply.kind == "raw":
            return web.Response(
                status=reply.status,
                body=reply.body,
                headers={"content-type": reply.content_type, **reply.headers},
            )
        if reply.kind == "error":
            return self._json(
                reply.status,
                dialect.error(reply.status, reply.message, reply.error_type, reply.error_code),
                dialect,
                reply.headers,
            )
        if not isinstance(body, dict):
            return self._json(400, dialect.error(400, "body must be JSON", None, None), dialect)
        if is_embeddings_path(path):
            return self._json(*embeddings_answer(path, body), dialect, reply.headers)
        try:
            req = dialect.parse(body, path, request.query)
        except (KeyError, TypeError, ValueError) as exc:
            err = dialect.error(400, f"invalid request: {exc}", "invalid_request_error", None)
            return self._json(400, err, dialect)
        if reply.reasoning is not None:
            req.reasoning, req.reasoning_field = reply.reasoning, reply.reasoning_field
        if reply.refusal is not None:
            req.refusal = reply.refusal
        req.redacted_reasoning = reply.redacted_reasoning
        req.refusal_category = reply.refusal_category
        req.refusal_explanation = reply.refusal_explanation
        text, tool = self._answer(req, reply)
        usage = FakeUsage(
            reply.input_tokens if reply.input_tokens is not None else rough_tokens(req.prompt_text),
            reply.output_tokens
            if reply.output_tokens is not None
            else rough_tokens(orjson.dumps(tool[1]).decode() if tool else text or "x"),
            reply.cached_tokens,
            reply.reasoning_tokens,
        )
        finish = "tool_calls" if tool else reply.finish
        if reply.no_usage:
            req.include_usage = False
        if not req.stream:
            if reply.kind in ("cut_stream", "stream_error"):
                # Non-stream request: a cut becomes a truncated body.
                full = orjson.dumps(dialect.body(req, text, tool, usage, finish))
                return web.Response(
                    status=200, body=full[: len(full) // 2], content_type="application/json"
                )
            payload = dialect.body(req, text, tool, usage, finish)
            if reply.no_usage:
                payload.pop("usage", None)
                payload.pop("usageMetadata", None)
            return self._json(200, payload, dialect, reply.headers)
        return await self._stream(request, dialect, req, reply, text, tool, usage, finish)

    def _refuse_key(self, request: web.Request, dialect: Dialect) -> web.Response | None:
        """The provider's answer to a missing or wrong key (None when the key is right)."""
        if not self.api_key or dialect.check_auth(request, self.api_key):
            return None
        st = dialect.auth_error_status
        err = dialect.error(st, "Invalid API key provided", None, "invalid_api_key")
        return self._json(st, err, dialect)

    def _answer(self, req: FakeRequest, reply: Reply) -> tuple[str, tuple[str, Any] | None]:
        if reply.kind == "tool_call":
            assert reply.tool_name is not None
            return "", (reply.tool_name, reply.tool_args if reply.tool_args is not None else {})
        if reply.text is not None:
            return reply.text, None
        if req.forced_tool:
            schema = req.tool_schemas.get(req.forced_tool, {"type": "object"})
            return "", (req.forced_tool, instance_from_schema(schema))
        if req.json_schema is not None:
            return orjson.dumps(instance_from_schema(req.json_schema)).decode(), None
        if req.json_mode:
            return orjson.dumps({"echo": req.last_user_text}).decode(), None
        return f"Echo: {req.last_user_text}", None

    def _json(
        self,
        status: int,
        payload: dict[str, Any],
        dialect: Dialect,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        hdrs = {dialect.request_id_header(): f"req_fake_{self._counter:06d}"}
        if headers:
            hdrs.update(headers)
        return web.Response(
            status=status, body=orjson.dumps(payload), content_type="application/json", headers=hdrs
        )

    async def _stream(
        self,
        request: web.Request,
        dialect: Dialect,
        req: FakeRequest,
        reply: Reply,
        text: str,
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> web.StreamResponse:
        pieces = split_pieces(text) if text else []
        if reply.kind in ("cut_stream", "stream_error") and len(pieces) < reply.after_chunks + 1:
            pieces = pieces + [f" word{i}" for i in range(reply.after_chunks + 1 - len(pieces))]
        frames = dialect.stream_events(req, pieces, tool, usage, finish)
        resp = web.StreamResponse(
            status=200,
            headers={
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
                dialect.request_id_header(): f"req_fake_{self._counter:06d}",
                **reply.headers,
            },
        )
        await resp.prepare(request)
        if reply.kind == "cut_stream":
            for f in frames[: reply.after_chunks + dialect.lead_frames]:
                await resp.write(f)
            assert request.transport is not None
            request.transport.close()
            return resp
        if reply.kind == "stream_error":
            # after_chunks=0: the error is the very first event of the stream.
            n = reply.after_chunks + dialect.lead_frames if reply.after_chunks else 0
            for f in frames[:n]:
                await resp.write(f)
            await resp.write(dialect.stream_error(reply.message, reply.error_type))
            await resp.write_eof()
            return resp
        self.streaming += 1
        try:
            for i, f in enumerate(frames):
                if reply.pace and i:
                    await asyncio.sleep(reply.pace)
                    if request.transport is None or request.transport.is_closing():
                        return resp  # the client hung up: the model stops
                await resp.write(f)
                self.frames_sent += 1
        finally:
            self.streaming -= 1
        await resp.write_eof()
        return resp
