"""The gateway's HTTP application: OpenAI- and Anthropic-shaped endpoints over one engine.

Request path (one aiohttp handler, no middleware): read the body (bounded) -> authenticate the
key (:class:`~.keys.KeyCache`, one store read per key per second) -> the key's model allow-list
-> translate the wire shape to our call (``openai_wire`` / ``anthropic_wire``) -> the same engine
every library call uses, with the key's budget and limits as engine layers (``policy``) -> the
answer translated back (JSON or SSE). Nothing a client sends chooses the upstream: there is no
field for a base URL, a key or a header, and the call options the gateway passes are its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from ..client import Client
from ..core.streaming import ResponseStream
from ..errors import ContentFilteredError, LLMRelayError, StateStoreError
from ..providers.aliases import lookup
from ..providers.resolve import known_aliases
from ..types import Response, TextRun
from . import anthropic_wire, embeddings_wire, openai_wire, responses_stream, responses_wire
from .access import KEY_STORE_DOWN, metrics_refusal
from .access import NOT_LOCAL as _NOT_LOCAL
from .access import local_client as _local
from .access import same_secret as _same
from .calls import KeyOptions, RequestOptions, prepared_args
from .config import GatewaySettings, check_bind
from .keys import KeyCache, KeyStore, VirtualKey
from .known import KnownValues, known_values
from .media import with_media
from .observe import prometheus_text, readiness, trace_headers
from .policy import KeyBudgets, KeyRateLimiter
from .sealing import Sealer
from .sse import EventStream, Frames, StreamWriter
from .wire import (
    GatewayCall,
    HttpError,
    callable_models,
    check_model,
    forget,
    http_error,
    json_body,
    new_request_id,
)

__all__ = ["THREAD_PARSE_BYTES", "Gateway", "GatewaySettings", "check_bind"]

#: Request bodies this large or larger are parsed in a worker thread (JSON, base64 images and
#: documents), not on the event loop that serves every other request.
THREAD_PARSE_BYTES = 256 * 1024
_T = TypeVar("_T")


#: What a refusal says when the provider gave no words for it.
_REFUSED = "I can't help with that."
#: The most frames of a ``TextRun`` rendered into one write (``Gateway._sse``).
_RUN_FRAMES = 64


@dataclass(slots=True)
class _Caller:
    key: VirtualKey | None  # None: the admin key, or open loopback mode
    label: str


class _Unauthorized(Exception):
    def __init__(self, error: HttpError) -> None:
        self.error = error


def _check_allowed(key: VirtualKey, model: str) -> None:
    if not key.allows(model):
        raise _Unauthorized(
            HttpError(403, "model_not_allowed", f"this key may not call {model[:100]}")
        )


class Gateway:
    """One worker's application. ``client`` is the engine every call goes through; build it
    with :meth:`build_client` so the key budgets and limits are its layers."""

    def __init__(
        self,
        client: Client,
        settings: GatewaySettings,
        *,
        keys: KeyStore | None = None,
        budgets: KeyBudgets | None = None,
        limiter: KeyRateLimiter | None = None,
        request_log: Any = None,
        clock: Callable[[], float] = time.time,
        known: KnownValues | None = None,
    ) -> None:
        self.client = client
        #: The configured upstream hosts and keys no error text shows (``known``).
        self.known = known_values() if known is None else known
        self.settings = settings
        self.keys = KeyCache(keys, ttl=settings.key_cache_ttl) if keys is not None else None
        self.key_store = keys
        self.budgets = budgets
        self.limiter = limiter
        #: The request log the engine writes to (flushed and closed on shutdown).
        self.request_log = request_log
        self.clock = clock
        #: (key id, model, status) -> [requests, seconds]
        self.stats: dict[tuple[str, str, int], list[float]] = {}
        self.in_flight = 0
        #: Models that may be metric labels (see _model_label).
        self._models: set[str] = set()
        #: Model names check_model passed (it resolves the name and reads the environment:
        #: both fixed for a worker's life), at most 4,096 of them.
        self._checked: set[str] = set()
        media = settings.media_urls
        self._parse_chat = with_media(openai_wire.parse_chat_request, media)
        self._parse_messages = with_media(anthropic_wire.parse_messages_request, media)
        self._parse_resp = with_media(responses_wire.parse_responses_request, media)
        self.sealer = Sealer(settings.signing_secret or settings.admin_key)
        self._key_options = KeyOptions()

    # ------------------------------------------------------------------ the application

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        r = app.router
        r.add_post("/v1/chat/completions", self.chat_completions)
        r.add_post("/v1/messages", self.messages)
        r.add_post("/v1/messages/count_tokens", self.count_tokens)
        r.add_post("/v1/embeddings", self.embeddings)
        r.add_post("/v1/responses", self.responses)
        r.add_get("/v1/models", self.list_models)
        r.add_get("/health/live", self.live)
        r.add_get("/health/ready", self.ready)
        r.add_get("/metrics", self.metrics)
        r.add_route("*", "/{tail:.*}", self.unknown)  # last: only what nothing else matched
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _: web.Application) -> None:
        await self.client.aclose()
        if self.key_store is not None:
            await self.key_store.close()
        if self.request_log is not None:
            await asyncio.to_thread(self.request_log.close)

    # ------------------------------------------------------------------ request plumbing

    async def _parse(self, request: web.Request, parse: Callable[[Any], _T]) -> _T:
        """The request's body read and parsed by ``parse``; a large body (images, documents,
        long conversations) in a worker thread, so the event loop keeps serving the others."""
        raw = await self._read(request)
        if len(raw) < THREAD_PARSE_BYTES:
            return parse(json_body(raw))
        return await asyncio.to_thread(lambda: parse(json_body(raw)))

    async def _read(self, request: web.Request) -> bytes:
        try:
            if request.content.is_eof():  # the whole body came with the headers: no wait
                raw = await request.read()
            else:
                async with asyncio.timeout(self.settings.read_timeout):
                    raw = await request.read()
        except TimeoutError:
            raise _Unauthorized(
                HttpError(
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {self.settings.read_timeout:g} "
                    "seconds",
                )
            ) from None
        except web.HTTPRequestEntityTooLarge:
            raise _Unauthorized(
                HttpError(
                    413,
                    "request_too_large",
                    f"the request body is over {self.settings.max_body_bytes} bytes",
                )
            ) from None
        return raw

    async def _authenticate(self, request: web.Request) -> _Caller:
        auth = request.headers.get("authorization", "")
        presented = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if presented is None:
            presented = request.headers.get("x-api-key")
        admin = self.settings.admin_key
        if admin is None and self.keys is None:
            # Loopback only (check_bind), no keys configured: whatever key a client presents
            # is ignored (the SDKs always send one) and never forwarded; a web page the
            # developer opens must not spend their provider keys (local_client).
            if not _local(request):
                raise _Unauthorized(_NOT_LOCAL)
            return _Caller(None, "local")
        if not presented:
            raise _Unauthorized(
                HttpError(401, "missing_api_key", "pass your key as 'Authorization: Bearer ...'")
            )
        if admin is not None and _same(presented, admin):
            return _Caller(None, "admin")
        try:
            key = await self.keys.lookup(presented) if self.keys is not None else None
        except StateStoreError:
            # Our own dependency is down, no provider failed: 503, and nothing of the store's
            # error (its DSN, host, schema) reaches the caller.
            raise _Unauthorized(KEY_STORE_DOWN) from None
        if key is None:
            raise _Unauthorized(HttpError(401, "invalid_api_key", "the API key is not valid"))
        why = key.state(self.clock())
        if why is not None:
            raise _Unauthorized(HttpError(401, f"key_{why}", f"the API key is {why}"))
        return _Caller(key, key.id)

    def _options(self, caller: _Caller, call: GatewayCall, request_id: str) -> RequestOptions:
        key = caller.key
        if key is not None:
            _check_allowed(key, call.model)
        kwargs, checked = self._key_options.of(key, self.settings.cache_scope)
        opts = RequestOptions(kwargs, checked)
        opts["trace_id"] = request_id
        if key is None:
            return opts
        if self.budgets is not None:
            self.budgets.limit_for(key)
        if self.limiter is not None:
            self.limiter.limits_for(key)
        return opts

    def _model_label(self, model: str, status: int) -> str:
        """A model name a client made up is not a label (no unbounded metric series): only
        aliases and models that answered (at most 1,000 of them) are; the rest are "-"."""
        if model in self._models:
            return model
        if (status < 400 and len(self._models) < 1000) or lookup(model) is not None:
            self._models.add(model)
            return model
        return "-"

    def _count(self, caller: str, model: str, status: int, seconds: float) -> None:
        k = (caller, model, status)
        s = self.stats.get(k)
        if s is None:
            if len(self.stats) > 50_000:
                self.stats.clear()
            s = self.stats[k] = [0.0, 0.0]
        s[0] += 1
        s[1] += seconds

    def _error(
        self, wire: str, err: HttpError, request_id: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        hdrs = {"x-request-id": request_id, **err.headers(), **(headers or {})}
        if wire == "anthropic":
            body = anthropic_wire.error_body(err.status, err.message)
            hdrs["request-id"] = request_id  # as Anthropic's API names it
        else:
            body = openai_wire.error_body(err.status, err.message, err.code, err.param)
        out = web.Response(
            body=body, status=err.status, content_type="application/json", headers=hdrs
        )
        if err.status in (408, 413):
            out.force_close()  # the rest of the body is not worth reading
        return out

    async def _serve(
        self,
        request: web.Request,
        wire: str,
        parse: Callable[[Any], GatewayCall],
        answer: Callable[
            [web.Request, GatewayCall, dict[str, Any], str], Awaitable[web.StreamResponse]
        ],
    ) -> web.StreamResponse:
        request_id = new_request_id()
        t0 = time.perf_counter()
        who, model = "-", "-"
        call: GatewayCall | None = None
        try:
            caller = await self._authenticate(request)
            who = caller.label
            call = await self._parse(request, parse)
            if call.model not in self._checked:
                check_model(call.model)
                if len(self._checked) >= 4096:
                    self._checked.clear()
                self._checked.add(call.model)
            model = call.model
            opts = self._options(caller, call, request_id)
            self.in_flight += 1
            try:
                out = await answer(request, call, opts, request_id)
            finally:
                self.in_flight -= 1
        except _Unauthorized as exc:
            out = self._error(wire, exc.error, request_id)
        except LLMRelayError as exc:
            err = http_error(exc, self.known)  # param: as the engine names it, then the wire
            traced = trace_headers(request.headers, exc.trace, self.known)  # attempts that failed
            forget(exc)
            sent = call.wire_names if call is not None else None
            err.param = openai_wire.error_param(wire, err.param, sent)
            out = self._error(wire, err, request_id, traced)
        self._count(who, self._model_label(model, out.status), out.status, time.perf_counter() - t0)
        return out

    # ------------------------------------------------------------------ OpenAI

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "openai", self._parse_chat, self._openai_answer)

    async def _openai_answer(
        self, request: web.Request, call: GatewayCall, opts: dict[str, Any], request_id: str
    ) -> web.StreamResponse:
        call_id = "chatcmpl-" + request_id[4:]
        if call.stream:
            writer = openai_wire.StreamWriter(call_id, call.model, call.include_usage)
            return await self._sse(request, request_id, call, opts, writer)
        resp, refusal = await self._achat(call, opts)
        traced = trace_headers(request.headers, resp.trace, self.known)
        headers = {"x-request-id": request_id, **traced}
        return web.Response(
            body=openai_wire.render_response(resp, call.model, call_id, refusal=refusal),
            content_type="application/json",
            headers=headers,
        )

    async def _achat(self, call: GatewayCall, opts: dict[str, Any]) -> tuple[Response, str | None]:
        """The answer, and the refusal's words when the model refused (OpenAI's wires carry a
        refusal in the answer; it is not an error)."""
        try:
            return await self._complete(call, opts), None
        except ContentFilteredError as exc:
            forget(exc)
            refusal = exc.explanation or _REFUSED
            return Response(text=exc.partial_text, finish_reason="stop"), refusal

    def _complete(self, call: GatewayCall, opts: dict[str, Any]) -> Awaitable[Response]:
        """``client.achat(call.model, call.messages, **call.params, **opts)``, with the options
        the gateway made once for the caller (``calls``); the engine's coroutine itself."""
        args = prepared_args(call, opts)
        if args is None:
            return self.client.achat(call.model, call.messages, **call.params, **opts)
        msgs, params, options = args
        return self.client.engine.complete_messages(call.model, msgs, params, options)

    def _stream(self, call: GatewayCall, opts: dict[str, Any]) -> ResponseStream:
        """``client.astream(...)`` as ``_complete`` is ``client.achat(...)``."""
        args = prepared_args(call, opts)
        if args is None:
            return self.client.astream(call.model, call.messages, **call.params, **opts)
        msgs, params, options = args
        return self.client.engine.stream(call.model, msgs, params, options)

    async def _sse(
        self,
        request: web.Request,
        request_id: str,
        call: GatewayCall,
        opts: dict[str, Any],
        writer: StreamWriter,
    ) -> web.StreamResponse:
        """A streamed answer in either wire shape (``writer`` renders the frames). A refusal
        ends the stream as a refusal; an error after the first frame ends it in band; an error
        before it is a plain error response. A client that leaves cancels the upstream (the
        stream is closed): only what was produced is charged."""
        stream = self._stream(call, opts)
        chunks = stream.chunks()  # the engine's generator: no wrapper per chunk
        out: web.StreamResponse | None = None
        frames: Frames | None = None
        last = b""
        try:
            async for c in chunks:
                if c.__class__ is TextRun:  # text events that came together: one frame each
                    if frames is None:
                        out, frames = await self._start_sse(request, request_id, writer, stream)
                    pieces = c.pieces
                    # Rendered ``_RUN_FRAMES`` at a time: a run is up to a whole read of tiny
                    # events (thousands), and a slow client's backpressure (``Frames``) must
                    # still apply between them, not after all of them are held in one write.
                    for i in range(0, len(pieces), _RUN_FRAMES):
                        frame = writer.text_run(pieces[i : i + _RUN_FRAMES])
                        if not frames.add_nowait(frame):
                            await frames.add(frame)
                    continue
                if c.done:  # the call finishes (recorded, settled) before its answer is used
                    await stream.finish(c)
                if frames is None:
                    out, frames = await self._start_sse(request, request_id, writer, stream)
                if c.done:
                    last = writer.finish(c.response)
                    break
                frame = writer.chunk(c)
                if frame and not frames.add_nowait(frame):
                    await frames.add(frame)
        except ContentFilteredError as exc:
            forget(exc)
            last = writer.finish(None, refusal=exc.explanation or _REFUSED)
        except LLMRelayError as exc:
            if frames is None:
                raise  # nothing sent yet: a plain error response
            last = writer.error(http_error(exc, self.known))
            forget(exc)
        except BaseException:
            if frames is not None:
                frames.cancel()
            raise
        finally:
            await stream.aclose()
        if out is None or frames is None:  # a refusal or an empty stream: still a stream
            out, frames = await self._start_sse(request, request_id, writer, stream)
            last = last or writer.finish(None)
        try:
            await frames.close(last)
        except BaseException:
            frames.cancel()
            raise
        return out

    async def _start_sse(
        self, request: web.Request, request_id: str, writer: StreamWriter, stream: ResponseStream
    ) -> tuple[web.StreamResponse, Frames]:
        """The stream's response, started: its headers carry the request id (Anthropic's
        ``request-id`` too, as a plain answer's) and, when asked for, the attempts made until
        now: the first byte (the failed attempts, retries and fallbacks before the stream
        started, and the one streaming; not what happens after)."""
        headers = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "x-request-id": request_id,
        }
        if isinstance(writer, anthropic_wire.StreamWriter):
            headers["request-id"] = request_id
        if request.headers.get("x-llmrelay-trace") == "1":
            headers.update(trace_headers(request.headers, stream.trace, self.known))
        out = EventStream(headers=headers)
        await out.prepare(request)
        frames = Frames(out)
        opening = writer.start()
        if opening:
            await frames.add(opening)
        return out, frames

    # ------------------------------------------------------------------ Anthropic

    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "anthropic", self._parse_messages, self._anthropic_answer)

    async def _anthropic_answer(
        self, request: web.Request, call: GatewayCall, opts: dict[str, Any], request_id: str
    ) -> web.StreamResponse:
        call_id = "msg_" + request_id[4:]
        if call.stream:
            return await self._sse(
                request, request_id, call, opts, anthropic_wire.StreamWriter(call_id, call.model)
            )
        refused = False
        try:
            resp = await self._complete(call, opts)
        except ContentFilteredError as exc:
            forget(exc)
            refused = True
            resp = Response(text=exc.partial_text, finish_reason="content_filter")
        headers = {
            "request-id": request_id,
            "x-request-id": request_id,
            **trace_headers(request.headers, resp.trace, self.known),
        }
        return web.Response(
            body=anthropic_wire.render_response(resp, call.model, call_id, refusal=refused),
            content_type="application/json",
            headers=headers,
        )

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        request_id = new_request_id()
        try:
            caller = await self._authenticate(request)
            call = await self._parse(request, anthropic_wire.parse_count_tokens_request)
            if caller.key is not None:
                _check_allowed(caller.key, call.model)
            from ..catalog.tokens import count_message_tokens

            def count() -> int:
                return count_message_tokens(
                    call.messages, call.model, tools=call.params.get("tools")
                )

            # The body's size, not Content-Length: a chunked body has none (aiohttp keeps
            # the body it read, so this reads nothing again).
            large = len(await request.read()) >= THREAD_PARSE_BYTES
            n = await asyncio.to_thread(count) if large else count()
        except _Unauthorized as exc:
            return self._error("anthropic", exc.error, request_id)
        except LLMRelayError as exc:
            return self._error("anthropic", http_error(exc, self.known), request_id)
        return web.json_response(
            {"input_tokens": n}, headers={"request-id": request_id, "x-request-id": request_id}
        )

    # ------------------------------------------------------------------ Responses

    async def responses(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "responses", self._parse_resp, self._responses_answer)

    async def _responses_answer(
        self, request: web.Request, call: GatewayCall, opts: dict[str, Any], request_id: str
    ) -> web.StreamResponse:
        base = request_id[4:]
        echo = call.echo if isinstance(call, responses_wire.ResponsesCall) else {}
        seal = self.sealer.bind(call, opts)  # replayed reasoning items checked: 400 if not ours
        if call.stream:
            writer = responses_stream.StreamWriter(base, call.model, echo, seal)
            return await self._sse(request, request_id, call, opts, writer)
        resp, refusal = await self._achat(call, opts)
        body = responses_wire.render_response(
            resp, call.model, base, echo, seal=seal, refusal=refusal
        )
        traced = trace_headers(request.headers, resp.trace, self.known)
        return web.Response(
            body=body,
            content_type="application/json",
            headers={"x-request-id": request_id, **traced},
        )

    # ------------------------------------------------------------------ embeddings

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(
            request, "openai", embeddings_wire.parse_embeddings_request, self._embeddings_answer
        )

    async def _embeddings_answer(
        self, request: web.Request, call: GatewayCall, opts: dict[str, Any], request_id: str
    ) -> web.StreamResponse:
        p = call.params
        kw = {k: p[k] for k in ("dimensions", "user") if k in p}
        result = await self.client.aembed(call.model, p["inputs"], **kw, **opts)
        traced = trace_headers(request.headers, result.trace, self.known)
        return web.Response(
            body=embeddings_wire.render_embeddings(result, call.model, p["encoding_format"]),
            content_type="application/json",
            headers={"x-request-id": request_id, **traced},
        )

    # ------------------------------------------------------------------ the rest

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        request_id = new_request_id()
        try:
            caller = await self._authenticate(request)
        except _Unauthorized as exc:
            return self._error("openai", exc.error, request_id)
        names = list(self.settings.models) or sorted(known_aliases())
        if caller.key is not None and caller.key.models:
            names = [n for n in names if caller.key.allows(n)]
            names = list(dict.fromkeys([*names, *callable_models(caller.key.models)]))
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "llmrelay"} for n in names]
        return web.json_response(
            {"object": "list", "data": data}, headers={"x-request-id": request_id}
        )

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        """A path or method the gateway does not serve (``GET /v1/responses/{id}``, ...): 404
        in the shape of the API the path belongs to, as the SDKs read errors."""
        wire = "anthropic" if request.path.startswith("/v1/messages") else "openai"
        why = f"the gateway does not serve {request.method[:10]} {request.path[:100]} (it keeps "
        err = HttpError(404, "unknown_url", why + "no responses, files or batches)")
        return self._error(wire, err, new_request_id())

    async def live(self, _: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"}, headers={"x-request-id": new_request_id()})

    async def ready(self, _: web.Request) -> web.StreamResponse:
        checks, ok = await readiness(self.key_store, self.client.engine.limiter)
        return web.json_response(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status=200 if ok else 503,
            headers={"x-request-id": new_request_id()},
        )

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        refused = metrics_refusal(request, self.settings.admin_key, self.settings.metrics_public)
        if refused is not None:
            return self._error("openai", refused, new_request_id())
        text = prometheus_text(self.stats, self.in_flight)
        return web.Response(
            text=text, content_type="text/plain", headers={"x-request-id": new_request_id()}
        )
