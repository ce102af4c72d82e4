"""The engine: one implementation of a chat call that every facade uses.

    resolve (alias / provider/model / backend object) -> request -> pipeline -> response

The pipeline, for each candidate of the fallback chain, sends one attempt through the
deployment's backend (an adapter plus the transport, or a network-free backend). Reliability and
state layers (retries, breakers, limits, cache, budgets, accounting) hook in around
``_attempts``; see ``docs/architecture.md``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from .backends import Backend, HttpBackend, get_adapter
from .errors import (
    AllAttemptsFailedError,
    InvalidRequestError,
    LLMRelayError,
)
from .providers import Deployment, Secret
from .resolve import Target, resolve_target, to_deployment
from .streaming import ResponseStream
from .trace import Attempt
from .transport.base import Timeouts, Transport
from .types import (
    ChatRequest,
    GenerationParams,
    Message,
    MessagesInput,
    Response,
    StreamChunk,
    merge_params,
    normalize_messages,
)

__all__ = ["DEFAULT_TIMEOUTS", "CallOptions", "Engine", "ModelRef"]

DEFAULT_TIMEOUTS = Timeouts(connect=10.0, read=600.0, total=600.0)

#: What a caller may name as the model: an alias or "provider/model", a Target, or a backend.
ModelRef = str | Target | Backend


@dataclass(slots=True)
class CallOptions:
    """Per-call options that are not generation parameters."""

    api_key: str | Secret | None = None
    base_url: str | None = None
    headers: Mapping[str, str] | None = None
    #: Seconds for the whole call, or a ``Timeouts`` for connect/read/total.
    timeout: float | Timeouts | None = None
    #: A system message prepended to the messages.
    system: str | None = None
    #: A pydantic model class: validate the output into it (structured output).
    response_model: Any = None
    #: Re-asks with the validation error after the first structured-output failure.
    max_reasks: int = 1
    #: Aliases or provider/model names to try in order after the model fails.
    fallbacks: Sequence[str] | None = None


OPTION_NAMES = frozenset(f.name for f in fields(CallOptions))
_NO_OPTIONS = CallOptions()


def timeouts_from(value: float | Timeouts | None, default: Timeouts) -> Timeouts:
    if value is None:
        return default
    if isinstance(value, Timeouts):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidRequestError(f"timeout must be a positive number of seconds, not {value!r}")
    return Timeouts(connect=min(float(value), default.connect or value), read=value, total=value)


class Engine:
    """Holds the transport and settings; answers calls. Safe to share across tasks and threads."""

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
    ) -> None:
        if transport is None:
            from .transport.http import default_transport

            transport = default_transport()
        self.transport = transport
        self.timeouts = timeouts
        self._http_backends: dict[str, HttpBackend] = {}

    # ------------------------------------------------------------------ resolution

    def backend_for(self, dep: Deployment) -> Backend:
        obj = dep.options.get("backend")
        if obj is not None:
            return obj  # type: ignore[no-any-return]
        b = self._http_backends.get(dep.wire)
        if b is None:
            if dep.wire == "test":
                from .testing.models import backend_for_test_model

                return backend_for_test_model(dep.model)
            b = self._http_backends[dep.wire] = HttpBackend(get_adapter(dep.wire), self.transport)
        return b

    def _targets(self, model: ModelRef, opts: CallOptions) -> list[Target]:
        if isinstance(model, Target):
            primary = model
        elif isinstance(model, str):
            primary = resolve_target(model)
        elif isinstance(model, Backend):
            name = getattr(model, "name", type(model).__name__)
            primary = Target("test", str(name), options={"backend": model})
        else:
            raise InvalidRequestError(
                f"model must be an alias, 'provider/model', a Target or a backend, not "
                f"{type(model).__name__}"
            )
        chain = opts.fallbacks if opts.fallbacks is not None else primary.fallbacks
        if not chain:
            return [primary]
        return [primary, *(resolve_target(n) for n in chain)]

    def _deployment(self, t: Target, opts: CallOptions, primary: bool) -> Deployment:
        # Call-level key/base URL apply to the primary target only: fallbacks are other vendors.
        if primary:
            return to_deployment(
                t, api_key=opts.api_key, base_url=opts.base_url, headers=opts.headers
            )
        return to_deployment(t, headers=opts.headers)

    @staticmethod
    def _request(
        t: Target, messages: list[Message], params: GenerationParams, stream: bool
    ) -> ChatRequest:
        if t.system_message and not any(m.role == "system" for m in messages):
            messages = [Message("system", t.system_message), *messages]
        return ChatRequest(messages, merge_params(t.params, params), stream)

    # ------------------------------------------------------------------ calls

    async def complete(
        self,
        model: ModelRef,
        messages: MessagesInput,
        params: GenerationParams,
        opts: CallOptions = _NO_OPTIONS,
    ) -> Response:
        """One logical, non-streamed call (structured output when ``opts.response_model``)."""
        if opts.response_model is not None:
            from .structured import complete_structured

            return await complete_structured(self, model, messages, params, opts)
        return await self._complete(model, normalize_messages(messages, opts.system), params, opts)

    async def _complete(
        self,
        model: ModelRef,
        msgs: list[Message],
        params: GenerationParams,
        opts: CallOptions,
    ) -> Response:
        start = time.perf_counter()
        targets = self._targets(model, opts)
        timeouts = timeouts_from(opts.timeout, self.timeouts)
        trace: list[Attempt] = []
        errors: list[LLMRelayError] = []
        for i, t in enumerate(targets):
            try:
                dep = self._deployment(t, opts, i == 0)
            except LLMRelayError as exc:
                if len(targets) == 1:
                    raise
                trace.append(
                    Attempt(t.label, "skipped", error=type(exc).__name__, reason=exc.message)
                )
                errors.append(exc)
                continue
            req = self._request(t, msgs, params, False)
            t0 = time.perf_counter()
            try:
                resp = await self.backend_for(dep).complete(req, dep, timeouts)
            except LLMRelayError as exc:
                trace.append(
                    Attempt(
                        dep.label,
                        "error",
                        error=type(exc).__name__,
                        status=exc.status,
                        latency_s=time.perf_counter() - t0,
                        message=exc.message,
                    )
                )
                errors.append(exc)
                continue
            now = time.perf_counter()
            trace.append(Attempt(dep.label, "success", latency_s=now - t0))
            resp.latency_s = now - start
            resp.alias = t.alias
            resp.trace = trace
            resp.total_usage = resp.usage
            return resp
        raise self._failure(errors, trace)

    @staticmethod
    def _failure(errors: list[LLMRelayError], trace: list[Attempt]) -> LLMRelayError:
        if len(errors) == 1:
            err = errors[0]
        else:
            err = AllAttemptsFailedError("every candidate failed", errors)
        err.trace = trace
        return err

    def stream(
        self,
        model: ModelRef,
        messages: MessagesInput,
        params: GenerationParams,
        opts: CallOptions = _NO_OPTIONS,
    ) -> ResponseStream:
        """A streamed call. Resolution and validation errors are raised here, before iteration."""
        if opts.response_model is not None:
            raise InvalidRequestError(
                "response_model cannot be streamed; call without stream to get a validated object"
            )
        msgs = normalize_messages(messages, opts.system)
        targets = self._targets(model, opts)
        # Resolve the primary now so a missing key or unknown alias fails at the call site.
        first = self._deployment(targets[0], opts, True)
        return ResponseStream(self._stream(targets, first, msgs, params, opts))

    async def _stream(
        self,
        targets: list[Target],
        first: Deployment,
        msgs: list[Message],
        params: GenerationParams,
        opts: CallOptions,
    ) -> AsyncGenerator[StreamChunk, None]:
        start = time.perf_counter()
        timeouts = timeouts_from(opts.timeout, self.timeouts)
        trace: list[Attempt] = []
        errors: list[LLMRelayError] = []
        for i, t in enumerate(targets):
            try:
                dep = first if i == 0 else self._deployment(t, opts, False)
            except LLMRelayError as exc:
                trace.append(
                    Attempt(t.label, "skipped", error=type(exc).__name__, reason=exc.message)
                )
                errors.append(exc)
                continue
            req = self._request(t, msgs, params, True)
            t0 = time.perf_counter()
            ttft: float | None = None
            sent_any = False
            agen = self.backend_for(dep).stream(req, dep, timeouts)
            try:
                async for c in agen:
                    if c.done:
                        resp = c.response
                        assert resp is not None
                        now = time.perf_counter()
                        trace.append(Attempt(dep.label, "success", latency_s=now - t0))
                        resp.latency_s = now - start
                        resp.time_to_first_token_s = ttft
                        resp.alias = t.alias
                        resp.trace = trace
                        resp.total_usage = resp.usage
                    elif ttft is None and (c.delta or c.tool_calls):
                        ttft = time.perf_counter() - start
                    sent_any = True
                    yield c
                return
            except LLMRelayError as exc:
                trace.append(
                    Attempt(
                        dep.label,
                        "error",
                        error=type(exc).__name__,
                        status=exc.status,
                        latency_s=time.perf_counter() - t0,
                        message=exc.message,
                    )
                )
                if sent_any:
                    # The caller has seen output: never splice another model in.
                    exc.trace = trace
                    raise
                errors.append(exc)
            finally:
                await agen.aclose()  # type: ignore[attr-defined]
        raise self._failure(errors, trace)
