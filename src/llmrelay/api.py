"""The main facade: ``Client`` and the module-level ``chat``/``achat``/``stream``/``astream``.

Keyword arguments are split into generation parameters (temperature, max_tokens, ...) and call
options (api_key, base_url, timeout, response_model, fallbacks, ...); anything else is an
``InvalidRequestError`` naming it.
"""

from __future__ import annotations

from typing import Any

from ._sync import run_sync
from .engine import OPTION_NAMES, CallOptions, Engine, ModelRef
from .errors import InvalidRequestError
from .streaming import ResponseStream, SyncResponseStream
from .transport.base import Timeouts, Transport
from .types import PARAM_NAMES, GenerationParams, MessagesInput, Response, build_params

__all__ = ["Client", "achat", "astream", "chat", "default_client", "stream"]


def split_kwargs(kwargs: dict[str, Any]) -> tuple[GenerationParams, CallOptions]:
    """Separate generation parameters from call options; reject unknown names."""
    params: dict[str, Any] = {}
    opts: dict[str, Any] = {}
    for k, v in kwargs.items():
        if k in PARAM_NAMES or k == "extra":
            params[k] = v
        elif k in OPTION_NAMES:
            opts[k] = v
        else:
            raise InvalidRequestError(
                f"unknown argument {k!r}. Generation parameters: {', '.join(sorted(PARAM_NAMES))}; "
                f"call options: {', '.join(sorted(OPTION_NAMES))}; provider-specific fields go in "
                "extra={...}"
            )
    return build_params(params), (CallOptions(**opts) if opts else CallOptions())


class Client:
    """One fast, typed interface to every provider.

    >>> client = Client()
    >>> client.chat("groq/llama-3.1-8b-instant", "Hello!").text   # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        transport: Transport | None = None,
        timeout: float | Timeouts | None = None,
        engine: Engine | None = None,
    ) -> None:
        if engine is None:
            from .engine import DEFAULT_TIMEOUTS, timeouts_from

            engine = Engine(transport, timeouts=timeouts_from(timeout, DEFAULT_TIMEOUTS))
        self.engine = engine

    async def achat(self, model: ModelRef, messages: MessagesInput, **kwargs: Any) -> Response:
        """Send a chat call and return the complete response."""
        params, opts = split_kwargs(kwargs)
        return await self.engine.complete(model, messages, params, opts)

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

    async def aclose(self) -> None:
        """Close this client's connections on the running loop."""
        await self.engine.transport.aclose()


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
