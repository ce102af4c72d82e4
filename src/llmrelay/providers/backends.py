"""Backends: what actually answers one attempt of a call.

``HttpBackend`` joins a sans-IO wire adapter to a transport. Other backends (the ``test``
provider, user functions) answer without a network. The engine picks one per deployment.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, NoReturn, Protocol, runtime_checkable

from ..errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    InvalidRequestError,
    InvalidResponseError,
    LLMRelayError,
    ResponseTooLargeError,
    UnknownModelError,
    UnsupportedCapabilityError,
    interrupted_by,
)
from ..transport.base import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpRequest,
    HttpResponse,
    StreamingResponse,
    Timeouts,
    Transport,
)
from ..transport.headers import get_header
from ..transport.sse import SSEDecoder, SSEEvent
from ..types import (
    PARAM_NAMES,
    ChatRequest,
    Response,
    StreamChunk,
    Usage,
    chunk,
    text_chunk,
    text_run,
)
from .adapters.base import (
    StreamState,
    WireAdapter,
    answer_request_id,
    scrub_answer,
    status_error,
)
from .table import EMBEDDINGS_ONLY_WIRES, Deployment

__all__ = [
    "Backend",
    "CallableBackend",
    "HttpBackend",
    "get_adapter",
    "register_adapter",
    "send_failed",
    "size_limit",
]


def size_limit(name: str, value: object) -> int:
    """``value`` as a size limit in bytes, or ``ConfigurationError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive whole number of bytes, not {value!r}")
    return value


@runtime_checkable
class Backend(Protocol):
    """Answers one attempt. ``stream`` yields chunks; its last chunk has ``done=True`` and the
    complete ``response``."""

    async def complete(self, req: ChatRequest, dep: Deployment, timeouts: Timeouts) -> Response: ...

    def stream(
        self, req: ChatRequest, dep: Deployment, timeouts: Timeouts
    ) -> AsyncIterator[StreamChunk]: ...


_ADAPTER_MODULES: dict[str, tuple[str, str]] = {
    "openai_chat": ("llmrelay.providers.adapters.openai_chat", "OpenAIChatAdapter"),
    "anthropic_messages": (
        "llmrelay.providers.adapters.anthropic_messages",
        "AnthropicMessagesAdapter",
    ),
    "gemini": ("llmrelay.providers.adapters.gemini", "GeminiAdapter"),
    "openai_responses": (
        "llmrelay.providers.adapters.openai_responses",
        "OpenAIResponsesAdapter",
    ),
}
_ADAPTERS: dict[str, WireAdapter] = {}


def register_adapter(wire: str, adapter: WireAdapter) -> None:
    """Add a wire adapter (for a provider row whose ``wire`` names it)."""
    _ADAPTERS[wire] = adapter


def get_adapter(wire: str) -> WireAdapter:
    a = _ADAPTERS.get(wire)
    if a is None:
        spec = _ADAPTER_MODULES.get(wire)
        if spec is None:
            if wire in EMBEDDINGS_ONLY_WIRES:
                raise UnsupportedCapabilityError(
                    f"{wire} serves embeddings only: llmrelay speaks no chat API of it; call "
                    "llmrelay.embed(...) with its models, or chat with another provider",
                    provider=wire,
                    capability="chat",
                )
            raise UnknownModelError(f"no wire adapter named {wire!r}")
        cls: Any = getattr(importlib.import_module(spec[0]), spec[1])
        a = _ADAPTERS[wire] = cls()
    return a


class HttpBackend:
    """An adapter plus a transport. ``max_response_bytes`` bounds a response body (decoded)
    and ``max_event_bytes`` one stream event; past either, ``ResponseTooLargeError``."""

    __slots__ = ("adapter", "max_event_bytes", "max_response_bytes", "transport")

    def __init__(
        self,
        adapter: WireAdapter,
        transport: Transport,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.adapter = adapter
        self.transport = transport
        self.max_response_bytes = size_limit("max_response_bytes", max_response_bytes)
        self.max_event_bytes = size_limit("max_event_bytes", max_event_bytes)

    async def complete(self, req: ChatRequest, dep: Deployment, timeouts: Timeouts) -> Response:
        # The engine's attempts take these steps inline (``AttemptRunner.run``): one coroutine
        # fewer per call.
        http_req = self.request(req, dep)
        try:
            resp = await self.transport.send(http_req, timeouts)
        except Exception as exc:
            send_failed(exc, dep)
        return self.answer(resp, req, http_req, dep)

    def request(self, req: ChatRequest, dep: Deployment) -> HttpRequest:
        """The HTTP request of ``req`` for ``dep`` (a failure raised as ``send_failed`` says)."""
        try:
            http_req = self.adapter.build_request(req, dep)
        except Exception as exc:
            send_failed(exc, dep)
        http_req.max_response_bytes = self.max_response_bytes
        return http_req

    def answer(
        self, resp: HttpResponse, req: ChatRequest, http_req: HttpRequest, dep: Deployment
    ) -> Response:
        """The answer of ``resp``, the response to ``http_req`` (``req`` built for ``dep``)."""
        adapter = self.adapter
        if resp.status >= 300:
            raise status_error(adapter.map_error, resp.status, resp.headers, resp.body, dep)
        return _finish(adapter.parse_response(resp, req, dep), resp.headers, req, http_req, dep)

    async def stream(
        self, req: ChatRequest, dep: Deployment, timeouts: Timeouts
    ) -> AsyncIterator[StreamChunk]:
        adapter = self.adapter
        sent = False
        try:
            http_req = adapter.build_request(req, dep)
            http_req.max_response_bytes = self.max_response_bytes
            async with self.transport.stream(http_req, timeouts) as s:
                sent = True
                if s.status >= 300:
                    body = await _aread(s, dep) if s.status >= 400 else b""
                    raise status_error(adapter.map_error, s.status, s.headers, body, dep)
                ctype = get_header(s.headers, "content-type") or ""
                if ctype.lower().startswith("application/json"):
                    # Some servers answer a stream request with one JSON body (often an error).
                    body = await _aread(s, dep)
                    resp = adapter.parse_response(HttpResponse(s.status, s.headers, body), req, dep)
                    _finish(resp, s.headers, req, http_req, dep)
                    yield chunk(resp.text, finish_reason=resp.finish_reason, usage=resp.usage)
                    yield chunk(done=True, response=resp, finish_reason=resp.finish_reason)
                    return
                state = adapter.stream_state(req, dep)
                decoder = SSEDecoder(self.max_event_bytes)
                feed_values = getattr(state, "feed_values", None)
                try:
                    if feed_values is not None:  # the state reads the events' data alone
                        async for data in s.aiter_bytes():
                            for c in feed_values(decoder.feed_data(data)):
                                yield c
                            if state.done:
                                break
                            if decoder.failed is not None:  # no waiting for the next read
                                raise decoder.failed
                    else:
                        async for data in s.aiter_bytes():
                            for c in _in_runs(state, decoder.feed(data)):
                                yield c
                            if state.done:
                                break
                            if decoder.failed is not None:  # no waiting for the next read
                                raise decoder.failed
                    if not state.done:  # (after the end nothing counts, a bad event neither)
                        for ev in decoder.flush():
                            for c in state.feed(ev):
                                yield c
                except (APIConnectionError, APITimeoutError) as exc:
                    # Both a StreamInterruptedError and the connection error or timeout it is.
                    partial = scrub_answer(state.partial(), dep)
                    cut = interrupted_by(exc, f"the stream broke: {exc.message}", partial)
                    cut.provider, cut.model = dep.provider, dep.model
                    raise cut from exc
                except ResponseTooLargeError as exc:
                    _locate(exc, dep)
                    raise
                except APIError as exc:  # an error event: the answer's request id goes along
                    exc.request_id = exc.request_id or answer_request_id(s.headers, dep)
                    raise
                try:
                    final = state.finish()
                except APIError as exc:  # a refusal, a filtered or cut answer
                    exc.request_id = exc.request_id or answer_request_id(s.headers, dep)
                    raise
                resp = _finish(final, s.headers, req, http_req, dep)
                resp.request_id = resp.request_id or answer_request_id(s.headers, dep)
                yield chunk(
                    done=True, response=resp, finish_reason=resp.finish_reason, usage=resp.usage
                )
        except LLMRelayError:
            raise
        except Exception as exc:
            if sent:
                raise
            raise unbuildable(exc, dep) from None


def _in_runs(state: StreamState, events: list[SSEEvent]) -> Iterator[StreamChunk]:
    """The chunks ``state`` gives for ``events`` (one read's), text chunks that follow each
    other as one ``TextRun`` (one chunk through the pipeline, not one each; iterating the
    stream still gives one per event). What came before an event that fails is given first."""
    run: list[str] | None = None
    for ev in events:
        try:
            out = state.feed(ev)
        except Exception:
            if run is not None:
                yield _run(run)
            raise
        for c in out:
            if (
                c.delta
                and c.__class__ is StreamChunk
                and not (c.tool_calls or c.reasoning or c.finish_reason or c.usage or c.done)
                and c.response is None
                and c.reasoning_part is None
            ):
                if run is None:
                    run = [c.delta]
                else:
                    run.append(c.delta)
                continue
            if run is not None:
                yield _run(run)
                run = None
            yield c
    if run is not None:
        yield _run(run)


def _run(pieces: list[str]) -> StreamChunk:
    return text_chunk(pieces[0]) if len(pieces) == 1 else text_run(pieces)


def send_failed(exc: Exception, dep: Deployment) -> NoReturn:
    """Raise what building or sending a request for ``dep`` raised: a typed error as it is (a
    too-large answer names the deployment), anything else as the caller's
    ``InvalidRequestError`` (the transport types every I/O failure: anything else is the
    request itself)."""
    if isinstance(exc, ResponseTooLargeError):
        _locate(exc, dep)
        raise exc
    if isinstance(exc, LLMRelayError):
        raise exc
    raise unbuildable(exc, dep) from None


def unbuildable(exc: Exception, dep: Deployment) -> InvalidRequestError:
    """The caller's error for a request that failed before it reached the provider (a lone
    surrogate in a message, a parameter or key of the wrong type): it is never the deployment's
    failure, so breakers do not count it. The API key never appears in it."""
    text = f"{type(exc).__name__}: {exc}".encode("utf-8", "backslashreplace").decode()
    key: object = dep.api_key.get() if dep.api_key else None
    if key is not None:  # a key of the wrong type may be echoed too (bytes, a number ...)
        for shown in {str(key), repr(key)}:
            if len(shown) >= 3:
                text = text.replace(shown, "[REDACTED]")
    return InvalidRequestError(
        f"the request to {dep.label} could not be built ({text[:300]}); check the messages, "
        "parameters and api_key of the call",
        provider=dep.provider,
        model=dep.model,
    )


def _locate(exc: ResponseTooLargeError, dep: Deployment) -> None:
    """Name the provider and model in ``exc`` (raised by the transport or the SSE decoder,
    which know no deployment)."""
    exc.provider = exc.provider or dep.provider
    exc.model = exc.model or dep.model


async def _aread(s: StreamingResponse, dep: Deployment) -> bytes:
    try:
        return await s.aread()
    except ResponseTooLargeError as exc:
        _locate(exc, dep)
        raise


def _finish(
    resp: Response,
    headers: Mapping[str, str],
    req: ChatRequest,
    http_req: HttpRequest,
    dep: Deployment,
) -> Response:
    """What every answer of an ``HttpBackend`` carries: the HTTP headers of the response (rate
    limits and the like) and the parameters adjusted for the provider, by layers or adapter.
    Provider-supplied strings that reach logs and metrics are scrubbed of the deployment's
    secrets (``scrub_answer``)."""
    scrub_answer(resp, dep)
    resp.headers = headers
    if http_req.adjusted or req.adjusted:
        resp.adjusted_params = {**(req.adjusted or {}), **http_req.adjusted}
    return resp


class CallableBackend:
    """A user function as a model (seed 004): ``fn(prompt, kwargs) -> str``, sync or async.

    ``prompt`` is the text of the last user message; ``kwargs`` holds the generation parameters
    that were set (temperature, max_tokens, ... and ``extra`` fields flattened in). A sync
    function runs in a worker thread so it never blocks the event loop. Usage is estimated
    with ``llmrelay.catalog.tokens.estimate_tokens`` (a user function reports no token counts).
    """

    __slots__ = ("fn", "is_async", "name")

    def __init__(self, fn: Any, name: str) -> None:
        import inspect

        if not callable(fn):
            raise ConfigurationError(f"the inference function for {name!r} is not callable")
        try:
            inspect.signature(fn).bind("prompt", {})
        except TypeError as exc:
            raise ConfigurationError(
                f"the inference function for {name!r} must accept (prompt, kwargs): {exc}"
            ) from None
        except ValueError:  # builtins without a signature: accept and find out at call time
            pass
        self.fn = fn
        self.name = name
        self.is_async = inspect.iscoroutinefunction(fn)

    async def complete(self, req: ChatRequest, dep: Deployment, timeouts: Timeouts) -> Response:
        import asyncio
        import inspect

        last = next((m for m in reversed(req.messages) if m.role == "user"), None)
        prompt = last.text() if last is not None else ""
        p = req.params
        kwargs = {f: getattr(p, f) for f in PARAM_NAMES if getattr(p, f) is not None}
        if p.extra:
            kwargs.update(p.extra)
        if self.is_async:
            out = await self.fn(prompt, kwargs)
        else:
            out = await asyncio.to_thread(self.fn, prompt, kwargs)
            if inspect.isawaitable(out):
                out = await out
        if isinstance(out, Response):
            return out
        if not isinstance(out, str):
            raise InvalidResponseError(
                f"the inference function for {self.name!r} returned {type(out).__name__}; "
                "it must return a str",
                provider=dep.provider,
                model=dep.model,
            )
        from ..catalog.tokens import estimate_tokens

        prompt_text = " ".join(m.text() for m in req.messages)
        return Response(
            text=out,
            finish_reason="stop",
            usage=Usage(estimate_tokens(prompt_text), estimate_tokens(out)),
            provider=dep.provider,
            model=dep.model,
        )

    async def stream(
        self, req: ChatRequest, dep: Deployment, timeouts: Timeouts
    ) -> AsyncIterator[StreamChunk]:
        resp = await self.complete(req, dep, timeouts)
        yield chunk(resp.text, finish_reason=resp.finish_reason, usage=resp.usage)
        yield chunk(done=True, response=resp, finish_reason=resp.finish_reason, usage=resp.usage)
