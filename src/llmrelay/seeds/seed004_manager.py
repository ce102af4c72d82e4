"""Seed 004's ``LLMManager``: registered models, an active model, a fallback chain, retries
with exponential backoff, a circuit breaker per model, response caching and metrics -- all on
the one engine.

``max_retries`` is seed 004's "maximum retry attempts": the total number of attempts per model,
so ``LLMManager(max_retries=5)`` tries once, then waits 1 s, 2 s, 4 s and 8 s between the next
four attempts (the seed's schedule; pass ``retry_policy=`` for jittered backoff instead).

Lenient where the seed's examples are: a fallback chain may name a model not registered (yet)
-- it is skipped, with a warning on the ``llmrelay.manager`` logger when the chain is set and a
``skipped`` entry in the call's trace each time the walk reaches it (registered later, it is
used); ``generate()`` with no active model and no chain (or a chain naming no registered model)
uses the first registered model.

Statistics: per model, ``requests`` counts the calls that tried the model (retries are
``retries``, not more requests), ``successes`` the calls it answered and ``failures`` the calls
it could not answer (all its attempts failed); ``avg_latency`` is per such call, its retries
and their backoff included. ``cache_hit_rate`` is ``cache_hits / total_requests``: the share of
calls the cache answered, the same denominator as ``success_rate`` and as ``Client(metrics=True)``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._sync import run_sync
from ..core.engine import CallOptions, Engine
from ..core.retry import RetryPolicy
from ..core.trace import Attempt
from ..errors import ConfigurationError, UnknownModelError, shown
from ..providers.backends import CallableBackend
from ..providers.resolve import Target, resolve_target
from ..providers.table import make_deployment
from ..reliability.cache import ResponseCache
from ..settings.layers import build_layers
from ..transport.base import Transport
from ..types import PARAM_NAMES, Message, Response, build_params

__all__ = ["LLMManager"]

log = logging.getLogger("llmrelay.manager")


@dataclass(slots=True)
class _Stats:
    requests: int = 0
    successes: int = 0
    failures: int = 0
    latency_total: float = 0.0
    tokens: int = 0
    retries: int = 0


@dataclass(slots=True)
class _Model:
    name: str
    target: Target
    metadata: dict[str, Any]
    key: str
    #: The deployment label its trace entries carry ("provider/model").
    label: str = ""
    stats: _Stats = field(default_factory=_Stats)


class LLMManager:
    """Enhanced LLM manager with reliability and monitoring features (seed 004)."""

    def __init__(
        self,
        max_retries: int = 3,
        enable_caching: bool = True,
        *,
        retry_policy: RetryPolicy | None = None,
        failure_threshold: int = 5,
        recovery_timeout: float = 60,
        cache_max_entries: int = 10_000,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ConfigurationError(
                "max_retries is the number of attempts per model and must be >= 1, "
                f"not {shown(max_retries)}"
            )
        policy = retry_policy or RetryPolicy(
            max_retries=max_retries - 1,
            base_delay=1.0,
            max_delay=max(1.0, 2.0 ** min(max(0, max_retries - 2), 60)),
            jitter=False,
            retry_unknown_errors=True,
        )
        self.max_retries = max_retries
        self.enable_caching = enable_caching
        # Cache (in memory, or shared when [state] / LLMRELAY_REDIS_URL says so), configured
        # limits and budgets, and breakers (shared through Redis when it is configured).
        layers = build_layers(
            cache=bool(enable_caching),
            cache_max_entries=cache_max_entries,
            breaker_settings={
                "failure_threshold": failure_threshold,
                "recovery_timeout": recovery_timeout,
                "clock": clock,
            },
        )
        self._cache: ResponseCache | None = layers.cache
        # No retry budget: seed 004 promises its full schedule on every failing call.
        self._engine = Engine(
            transport,
            retry=policy,
            retry_budget=False,
            clock=clock,
            sleep=sleep,
            limiter_factory=layers.provider_limiter,
            **layers.engine_kwargs(),
        )
        self._models: dict[str, _Model] = {}
        self._by_label: dict[str, str] = {}
        self._active: str | None = None
        self._chain: list[str] = []
        self._lock = threading.Lock()
        self._total = self._ok = self._failed = 0
        self._cache_hits = self._cache_misses = 0
        self._tokens = self._retries = 0
        self._cost = 0.0
        self._cost_known = False

    @property
    def engine(self) -> Engine:
        return self._engine

    # ------------------------------------------------------------------ configuration

    def register_model(
        self,
        name: str,
        inference_fn: Callable[[str, dict[str, Any]], str | Awaitable[str]] | str,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Register a model: a function ``(prompt, kwargs) -> str`` (sync or async), or the name
        of an alias / ``provider/model`` to call through its adapter."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError("a model needs a non-empty string name")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ConfigurationError(
                f"metadata for {name!r} must be a dict, not {type(metadata).__name__}"
            )
        if isinstance(inference_fn, str):
            target = resolve_target(inference_fn)
        else:
            backend = CallableBackend(inference_fn, name)  # checks the signature now
            target = Target("test", name, options={"backend": backend})
        dep = make_deployment(
            target.provider,
            target.model,
            base_url=target.base_url,
            options=target.options,
            require_key=False,
        )
        with self._lock:
            self._models[name] = _Model(name, target, dict(metadata or {}), dep.key, dep.label)
            # Rebuilt, so a replaced registration leaves no stale entry behind (two names on one
            # deployment: the later registration gets its trace entries).
            self._by_label = {m.label: m.name for m in self._models.values()}

    def set_active_model(self, name: str) -> None:
        self._require(name)
        self._active = name

    def set_fallback_chain(self, model_names: Sequence[str]) -> None:
        """Models to try in order when a call fails (the active model is tried first). A name
        not registered is skipped (a warning now, a ``skipped`` trace entry per call) until it
        is registered."""
        if isinstance(model_names, str) or not isinstance(model_names, Sequence):
            raise ConfigurationError("the fallback chain must be a list of registered model names")
        if not model_names:
            raise ConfigurationError("the fallback chain is empty; list at least one model")
        seen: set[str] = set()
        for n in model_names:
            if not isinstance(n, str) or not n.strip():
                raise ConfigurationError(
                    f"the fallback chain lists {shown(n)}: each entry must be a model name"
                )
            if n in seen:
                raise ConfigurationError(f"the fallback chain lists {shown(n)} twice (a cycle)")
            seen.add(n)
        missing = [n for n in model_names if n not in self._models]
        if missing:
            log.warning(
                "fallback chain: %s not registered; skipped until registered (registered: %s)",
                ", ".join(shown(n) for n in missing),
                ", ".join(sorted(self._models)) or "none yet",
            )
        self._chain = list(model_names)

    def _require(self, name: str) -> _Model:
        m = self._models.get(name) if isinstance(name, str) else None
        if m is None:
            known = ", ".join(sorted(self._models)) or "none yet"
            raise UnknownModelError(
                f"model {shown(name)} is not registered (registered: {known}); call register_model "
                "first"
            )
        return m

    def list_models(self) -> list[str]:
        return list(self._models)

    # ------------------------------------------------------------------ generation

    def _order(self) -> list[str]:
        """The names a call walks: the active model, then the chain; with no active model and
        no registered name in the chain, the first registered model (seed 004 calls
        ``generate()`` right after ``register_model``, and its best practices set a chain of
        placeholder names)."""
        with self._lock:
            order: list[str] = []
            if self._active is not None:
                order.append(self._active)
            order.extend(n for n in self._chain if n not in order)
            if self._active is None and self._models and not any(n in self._models for n in order):
                # no active model, and the chain (if any) names none registered yet: its names
                # are skipped, and the first registered model answers
                order.append(next(iter(self._models)))
        if not order:
            raise ConfigurationError(
                "no model registered: call register_model(name, inference_fn) first"
            )
        if not any(n in self._models for n in order):
            raise UnknownModelError(
                f"none of the fallback chain's models is registered ({', '.join(order)}); call "
                "register_model first"
            )
        return order

    async def agenerate(self, prompt: str, use_cache: bool = True, **kwargs: Any) -> str:
        """Generate with retry, circuit breakers and fallback; cached when enabled."""
        if not isinstance(prompt, str) or not prompt:
            raise ConfigurationError("prompt must be a non-empty string")
        order = self._order()
        candidates = [self._models[n] for n in order if n in self._models]
        caching = bool(self.enable_caching and use_cache and self._cache is not None)
        api_params = {k: v for k, v in kwargs.items() if k in PARAM_NAMES}
        extra = {k: v for k, v in kwargs.items() if k not in PARAM_NAMES}
        if extra:
            api_params["extra"] = extra
        params = build_params(api_params)  # bad parameters fail here, before the call counts
        opts = CallOptions(fallbacks=[m.target for m in candidates[1:]], use_cache=caching)
        with self._lock:
            self._total += 1
        try:
            resp = await self._engine.complete_messages(
                candidates[0].target, [Message("user", prompt)], params, opts
            )
        except BaseException as exc:
            trace = getattr(exc, "trace", None) or getattr(exc, "llmrelay_trace", None) or []
            self._skip_unregistered(order, trace, False)
            self._record(trace, None, caching)
            raise
        self._skip_unregistered(order, resp.trace, True)
        self._record(resp.trace, resp, caching)
        return resp.text

    def _skip_unregistered(self, order: list[str], trace: list[Attempt], answered: bool) -> None:
        """Put a ``skipped`` entry in ``trace`` (in place) for each unregistered name of the
        chain the walk reached: every one when the call failed; those before the model that
        answered when it succeeded."""
        if len(order) == len([n for n in order if n in self._models]) or not isinstance(
            trace, list
        ):
            return
        out: list[Attempt] = []
        i = 0
        for n in order:
            m = self._models.get(n)
            if m is None:
                if answered and i >= len(trace):
                    break  # the walk ended before this name
                out.append(
                    Attempt(
                        n,
                        "skipped",
                        error="UnknownModelError",
                        reason=f"{shown(n)} is in the fallback chain but not registered",
                    )
                )
                continue
            while i < len(trace) and trace[i].deployment == m.label:
                out.append(trace[i])
                i += 1
        out.extend(trace[i:])
        trace[:] = out

    def generate(self, prompt: str, use_cache: bool = True, **kwargs: Any) -> str:
        """Sync ``agenerate`` (seed 004's signature)."""
        return run_sync(self.agenerate(prompt, use_cache, **kwargs))

    def _record(self, trace: list[Attempt], resp: Response | None, caching: bool) -> None:
        """Count a finished call: ``resp`` is its answer, None when it failed."""
        with self._lock:
            if resp is None:
                self._failed += 1
            else:
                self._ok += 1
                if resp.cache_hit:
                    self._cache_hits += 1
                    return  # nothing was called
            self._cache_misses += caching
            tried: dict[str, bool] = {}  # model name -> answered, in the order tried
            for a in trace:
                name = self._by_label.get(a.deployment)
                m = self._models.get(name) if name else None
                if a.is_retry:
                    self._retries += 1
                if m is None or a.outcome == "skipped":
                    continue
                st = m.stats
                st.latency_total += a.latency_s + a.backoff_s
                if a.is_retry:
                    st.retries += 1
                tried[m.name] = tried.get(m.name, False) or a.outcome == "success"
            for name, answered in tried.items():  # one request per call per model
                st = self._models[name].stats
                st.requests += 1
                if answered:
                    st.successes += 1
                else:
                    st.failures += 1
            if resp is not None:
                tokens = resp.usage.total_tokens
                self._tokens += tokens
                name = self._by_label.get(f"{resp.provider}/{resp.model}") or (
                    self._by_label.get(trace[-1].deployment) if trace else None
                )
                m = self._models.get(name) if name else None
                if m is not None:
                    m.stats.tokens += tokens
                    price = m.metadata.get("cost_per_1k_tokens")
                    if isinstance(price, int | float) and not isinstance(price, bool):
                        self._cost += tokens / 1000 * price
                        self._cost_known = True

    # ------------------------------------------------------------------ introspection

    def clear_cache(self) -> None:
        """Empty the response cache (a shared one too: every process using it)."""
        if self._cache is not None:
            run_sync(self._cache.clear())

    def get_model_info(self, model_name: str) -> dict[str, Any]:
        m = self._require(model_name)
        st = m.stats
        breaker = self._engine.breakers.get(m.key) if self._engine.breakers else None
        return {
            "name": m.name,
            "provider": m.metadata.get("provider", m.target.provider),
            "metadata": dict(m.metadata),
            "active": self._active == m.name,
            "stats": {
                "requests": st.requests,
                "successes": st.successes,
                "failures": st.failures,
                "avg_latency": st.latency_total / st.requests if st.requests else 0.0,
                "total_tokens": st.tokens,
                "retries": st.retries,
            },
            "circuit_breaker_state": breaker.state if breaker is not None else "closed",
        }

    def get_metrics(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {
                "total_requests": self._total,
                "successful_requests": self._ok,
                "failed_requests": self._failed,
                "success_rate": self._ok / self._total if self._total else 0.0,
                "cache_hits": self._cache_hits,
                "cache_misses": self._cache_misses,
                # The share of calls the cache answered (as Client(metrics=True) counts it).
                "cache_hit_rate": self._cache_hits / self._total if self._total else 0.0,
                "total_tokens": self._tokens,
                "total_retries": self._retries,
                "active_model": self._active,
                "registered_models": len(self._models),
            }
            out["total_cost"] = round(self._cost, 10) if self._cost_known else None
            return out

    def reset_circuit_breaker(self, model_name: str) -> None:
        m = self._require(model_name)
        if self._engine.breakers is not None:
            self._engine.breakers.get(m.key).reset()
