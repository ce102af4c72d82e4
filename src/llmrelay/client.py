"""The main facade: ``Client`` and the module-level ``chat``/``achat``/``stream``/``astream``.

Keyword arguments are split into generation parameters (temperature, max_tokens, ...) and call
options (api_key, base_url, timeout, response_model, fallbacks, ...); anything else is an
``InvalidRequestError`` naming it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._sync import run_sync
from .catalog.layer import Catalog
from .core.engine import Engine
from .core.layers import check_parts
from .core.options import (
    DEFAULT_TIMEOUTS,
    ModelRef,
    split_kwargs,
    timeouts_from,
)
from .core.streaming import ResponseStream, SyncResponseStream
from .errors import InvalidRequestError
from .settings.defaults import engine_defaults
from .settings.layers import build_layers
from .transport.base import Timeouts, Transport
from .types import MessagesInput, Response, normalize_messages

if TYPE_CHECKING:
    from .batch.runner import BatchResult
    from .catalog.provider_registry import ProviderRegistry
    from .observe.metrics import Metrics
    from .observe.requestlog import RequestLog
    from .types.embeddings import Embeddings

__all__ = [
    "Client",
    "achat",
    "aembed",
    "amap",
    "astream",
    "chat",
    "default_client",
    "embed",
    "map",
    "split_kwargs",
    "stream",
]


class Client:
    """One fast, typed interface to every provider.

    >>> client = Client()
    >>> client.chat("groq/openai/gpt-oss-20b", "Hello!").text   # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        transport: Transport | None = None,
        timeout: float | Timeouts | None = None,
        engine: Engine | None = None,
        metrics: bool | Metrics = False,
        log: bool | str | os.PathLike[str] | RequestLog | None = None,
        log_content: bool | None = None,
        cache: Any = None,
        limits: Any = None,
        state: Any = None,
        max_response_bytes: int | None = None,
        max_event_bytes: int | None = None,
        providers: ProviderRegistry | None = None,
    ) -> None:
        """``metrics=True`` counts every call (``client.metrics.get_metrics()``); ``log=True``
        writes each call to the configured request log (``[log]``, ``LLMRELAY_LOG_*``; default
        SQLite ``~/.local/share/llmrelay/requests.db``), ``log="path.db"`` or a
        ``postgresql://`` DSN to that one; ``log_content=True`` also stores prompts and answers.
        Without ``log`` nothing is written anywhere. Both need the engine built here.

        ``cache``: True, False or a ``ResponseCache`` (default ``[cache] enabled``: off);
        ``limits``: a dict of rate limits or a ``RateLimiter`` (default ``[limits]``);
        ``state``: where cache, limits and breakers live -- ``"redis://..."``,
        ``"sqlite:///path"``, ``"memory"`` or a store (default ``[state]`` /
        ``LLMRELAY_REDIS_URL``, else in process). See ``llmrelay.state``.

        ``providers``: the ``ProviderRegistry`` this client uses (default: the default one,
        ``llmrelay.default_providers()``): its base URLs, and its providers' declared rate
        limits, enforced by this client's limiter (made on ``state`` when there is none).

        ``max_response_bytes`` (default ``[defaults] max_response_bytes``, else 32 MiB) bounds
        a response body once decompressed, ``max_event_bytes`` (else 4 MiB) one stream event;
        past either, ``ResponseTooLargeError``."""
        sizes = {
            k: v
            for k, v in (
                ("max_response_bytes", max_response_bytes),
                ("max_event_bytes", max_event_bytes),
            )
            if v is not None
        }
        check_parts(engine=engine)
        if engine is not None and sizes:
            raise InvalidRequestError(
                "max_response_bytes= and max_event_bytes= configure the engine built here; with "
                "engine=, pass them to Engine(...) instead"
            )
        if engine is not None and not (
            cache is None and limits is None and state is None and providers is None
        ):
            raise InvalidRequestError(
                "cache=, limits=, state= and providers= configure the engine built here; with "
                "engine=, pass Engine(cache=..., limiter=..., providers=...) instead"
            )
        self.metrics: Metrics | None = None
        self.log: RequestLog | None = None
        self._owns_log = False
        recorder = None
        if metrics or (log is not None and log is not False):
            if engine is not None:
                raise InvalidRequestError(
                    "metrics= and log= build the engine's recorder; with engine=, pass "
                    "Engine(recorder=...) instead (CompositeRecorder combines several)"
                )
            # Loaded only when asked for (metrics and the request log cost ~50 ms to import).
            from .settings.recorders import client_recorders

            rec = client_recorders(metrics, log)
            self.metrics, self.log, self._owns_log = rec.metrics, rec.log, rec.owns_log
            recorder = rec.recorder
            if log_content is None:
                log_content = rec.log_content
        if engine is None:
            # [defaults] (retries, timeouts, deadline, fallbacks, breaker options) from the
            # configuration file; arguments given here win.
            kwargs = engine_defaults()
            layers = build_layers(
                state=state,
                cache=cache,
                limits=limits,
                breaker_settings=kwargs.pop("breaker_settings", None),
            )
            kwargs = {**layers.engine_kwargs(), **kwargs}
            if timeout is not None:
                kwargs["timeouts"] = timeouts_from(timeout, DEFAULT_TIMEOUTS)
            kwargs.update(sizes)
            # The catalog checks each request against its model and prices every answer
            # (Response.cost); it loads its data on the first call.
            engine = Engine(
                transport,
                catalog=Catalog(),
                recorder=recorder,
                log_content=bool(log_content),
                providers=providers,
                limiter_factory=layers.provider_limiter,
                **kwargs,
            )
        self.engine = engine

    async def achat(self, model: ModelRef, messages: MessagesInput, **kwargs: Any) -> Response:
        """Send a chat call and return the complete response."""
        params, opts = split_kwargs(kwargs)
        # Straight to the logical call (one coroutine fewer than Engine.complete).
        engine = self.engine
        return await engine.complete_messages(
            model, normalize_messages(messages, opts.system), params, opts
        )

    def chat(self, model: ModelRef, messages: MessagesInput, **kwargs: Any) -> Response:
        """Sync ``achat`` (works inside a running event loop too)."""
        params, opts = split_kwargs(kwargs)
        return run_sync(self.engine.complete(model, messages, params, opts))

    def astream(self, model: ModelRef, messages: MessagesInput, **kwargs: Any) -> ResponseStream:
        """Stream a chat call: ``async for chunk in client.astream(...)``."""
        params, opts = split_kwargs(kwargs)
        return self.engine.stream(model, messages, params, opts)

    def stream(self, model: ModelRef, messages: MessagesInput, **kwargs: Any) -> SyncResponseStream:
        """Sync streaming: ``for chunk in client.stream(...)``."""
        params, opts = split_kwargs(kwargs)
        return SyncResponseStream(self.engine.stream(model, messages, params, opts))

    async def aembed(
        self, model: ModelRef, inputs: Any, *, dimensions: int | None = None, **kwargs: Any
    ) -> Embeddings:
        """Embed ``inputs`` (a list of strings) with an embedding model: one float32 vector per
        input, in order, with usage and cost; see :mod:`llmrelay.core.embed` and
        ``docs/embeddings.md``."""
        from .core.embed import embed  # loaded by the first embed call
        from .core.embed_checks import split_embed_kwargs

        opts, settings = split_embed_kwargs(kwargs)
        return await embed(self.engine, model, inputs, dimensions, opts, settings)

    def embed(
        self, model: ModelRef, inputs: Any, *, dimensions: int | None = None, **kwargs: Any
    ) -> Embeddings:
        """Sync ``aembed``."""
        return run_sync(self.aembed(model, inputs, dimensions=dimensions, **kwargs))

    async def amap(
        self, model: ModelRef, prompts: Iterable[Any], **kwargs: Any
    ) -> list[BatchResult]:
        """Run one call per item, ``concurrency`` at a time, resumable with ``journal=PATH``;
        results in input order (see :mod:`llmrelay.batch.runner`)."""
        from .batch.runner import run_batch  # loaded by the first batch: Client stays light

        return await run_batch(self.engine, model, prompts, **kwargs)

    def map(self, model: ModelRef, prompts: Iterable[Any], **kwargs: Any) -> list[BatchResult]:
        """Sync ``amap``; Ctrl-C stops the batch with every finished item journaled, then raises
        ``KeyboardInterrupt``."""
        from .batch.runner import run_batch_sync  # loaded by the first batch

        return run_batch_sync(self.engine, model, prompts, **kwargs)

    async def aclose(self) -> None:
        """Close this client's connections on the running loop (and the request log it opened,
        after writing what is pending)."""
        await self.engine.transport.aclose()
        for layer in (self.engine.cache, self.engine.limiter, self.engine.breakers):
            close = getattr(layer, "aclose", None)
            if close is not None:
                await close()  # this loop's state-store connections
        if self._owns_log and self.log is not None:
            await asyncio.to_thread(self.log.close)


_default: Client | None = None


def default_client() -> Client:
    global _default
    if _default is None:
        _default = Client()
    return _default


async def achat(model: ModelRef, messages: MessagesInput, **kwargs: Any) -> Response:
    """``await llmrelay.achat("openai/gpt-4.1-mini", "Hello")``."""
    return await default_client().achat(model, messages, **kwargs)


def chat(model: ModelRef, messages: MessagesInput, **kwargs: Any) -> Response:
    """``llmrelay.chat("openai/gpt-4.1-mini", "Hello").text``."""
    return default_client().chat(model, messages, **kwargs)


def astream(model: ModelRef, messages: MessagesInput, **kwargs: Any) -> ResponseStream:
    return default_client().astream(model, messages, **kwargs)


def stream(model: ModelRef, messages: MessagesInput, **kwargs: Any) -> SyncResponseStream:
    return default_client().stream(model, messages, **kwargs)


async def aembed(
    model: ModelRef, inputs: Any, *, dimensions: int | None = None, **kwargs: Any
) -> Embeddings:
    """``await llmrelay.aembed("openai/text-embedding-3-small", ["a", "b"])``."""
    return await default_client().aembed(model, inputs, dimensions=dimensions, **kwargs)


def embed(
    model: ModelRef, inputs: Any, *, dimensions: int | None = None, **kwargs: Any
) -> Embeddings:
    """``llmrelay.embed("openai/text-embedding-3-small", ["a", "b"]).vectors``."""
    return default_client().embed(model, inputs, dimensions=dimensions, **kwargs)


async def amap(
    model: ModelRef, prompts: Iterable[Any], *, client: Client | None = None, **kwargs: Any
) -> list[BatchResult]:
    """``await llmrelay.amap("openai/gpt-4.1-mini", prompts, concurrency=16)``: one call per
    item on ``client`` (default: the shared client); see :meth:`Client.amap`."""
    return await (client if client is not None else default_client()).amap(model, prompts, **kwargs)


def map(
    model: ModelRef, prompts: Iterable[Any], *, client: Client | None = None, **kwargs: Any
) -> list[BatchResult]:
    """Sync :func:`amap`."""
    return (client if client is not None else default_client()).map(model, prompts, **kwargs)
