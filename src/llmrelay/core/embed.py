"""Embeddings through the engine: one logical call turns a list of texts into vectors.

    check (inputs, model kinds, dimensions, token limits: before anything is sent)
      -> each distinct input once (a text repeated in the call is embedded, paid and cached
         once; its vector is copied to every place it appears)
      -> for each candidate of the fallback chain (only models of the same dimensions):
            response cache per input -> budget -> batches (split at the model's per-request
            limits, sent concurrently, bounded) -> each batch: the engine's attempts
            (breaker, deadline, rate limit counting input tokens, retries) -> cost
      -> reassemble in input order -> cache store -> record

The attempts are the engine's own :class:`~llmrelay.core.attempts.AttemptRunner` logic: an
:class:`EmbedRequest` is a ``ChatRequest`` (without messages), answered by an ``HttpBackend``
over an embeddings adapter; the runner sees the engine's breakers, limiter, clock, sleep,
retry policy and timeouts through a small host (``_EmbedHost``), and reads the call as a
:class:`~llmrelay.core.attempts.CallState`. A call's vectors all come from one model: when a
candidate fails part-way, the next candidate embeds every input again.

An embeddings adapter (``embed_checks.embed_adapter`` maps a provider's wire to one) is a
sans-IO object with ``max_inputs`` (the most inputs one request may carry),
``build_request(EmbedRequest, Deployment) -> HttpRequest``,
``parse_response(HttpResponse, EmbedRequest, Deployment) -> Response`` whose ``object`` is an
:class:`~llmrelay.types.embeddings.EmbedBatch` (one vector per input of the request, in its
order) and ``map_error(status, headers, body, Deployment) -> APIError``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..catalog.costs import Cost, embedding_cost
from ..errors import (
    InvalidRequestError,
    InvalidResponseError,
    LLMRelayError,
    shown,
)
from ..providers.backends import Backend, HttpBackend
from ..providers.resolve import Target
from ..providers.table import Deployment
from ..transport.base import Timeouts
from ..types import ChatRequest, Response, Usage, _kind
from ..types.embeddings import EmbedBatch, Embeddings, EmbedRequest, float32_from_le_bytes
from .attempts import AttemptRunner, BreakerSource
from .call import _failure, traced
from .embed_checks import (
    DEFAULT_CONCURRENCY,
    Candidate,
    batches,
    candidate,
    check_dimensions,
    check_inputs,
    check_tokens,
    embed_adapter,
    estimate_tokens_of,
    nonfinite,
)
from .layers import CallContext, CallRecord, CatalogLayer, LimiterLayer
from .options import CallOptions
from .retry import RetryPolicy
from .routing import Chain, Plan
from .trace import Attempt

if TYPE_CHECKING:
    from array import array

    from .engine import Engine

__all__ = ["embed"]

# --------------------------------------------------------------------------- the host


class _Pricing:
    """The runner's catalog for embeddings: prices from ``data/embeddings.json``."""

    def prepare(
        self, req: ChatRequest, dep: Deployment, *, strict_params: bool = False
    ) -> ChatRequest:
        return req  # the embeddings checks ran before the call (embed_checks.py)

    def cost(self, dep: Deployment, usage: Usage) -> Cost:
        return embedding_cost(dep.provider, dep.model, usage)


_PRICING = _Pricing()


class _EmbedHost:
    """The engine's settings, as the attempt runner reads them, with embeddings backends."""

    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[Any]]
    limiter: LimiterLayer | None
    catalog: CatalogLayer | None
    retry: RetryPolicy
    timeouts: Timeouts

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._backends: dict[str, HttpBackend] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the engine's settings (once per call: changes apply to the next call)."""
        e = self.engine
        self.clock, self.sleep, self.limiter = e.clock, e.sleep, e.limiter
        self.catalog = _PRICING if e.catalog is not None else None
        self.retry, self.timeouts = e.retry, e.timeouts

    @property
    def breakers(self) -> BreakerSource | None:
        return self.engine.breakers

    def backend_for(self, dep: Deployment) -> Backend:
        b = self._backends.get(dep.wire)
        if b is None:
            e = self.engine
            b = self._backends[dep.wire] = HttpBackend(
                embed_adapter(dep.wire),
                e.transport,
                max_response_bytes=e.max_response_bytes,
                max_event_bytes=e.max_event_bytes,
            )
        return b


_RUNNERS: weakref.WeakKeyDictionary[Engine, tuple[AttemptRunner, _EmbedHost]] = (
    weakref.WeakKeyDictionary()
)


def _runner(engine: Engine) -> tuple[AttemptRunner, _EmbedHost]:
    got = _RUNNERS.get(engine)
    if got is None:
        host = _EmbedHost(engine)
        r = AttemptRunner(host)
        r._budgets = engine.attempts._budgets  # one retry budget per deployment, shared
        got = _RUNNERS[engine] = (r, host)
    else:
        got[1].refresh()
    return got


# --------------------------------------------------------------------------- the call


def dedupe(texts: list[str]) -> tuple[list[str], list[int] | None]:
    """The distinct texts in the order they first appear and, when some repeat, each text's
    place among them (None when every text is distinct: the common case, one set built)."""
    if len(set(texts)) == len(texts):
        return texts, None
    first: dict[str, int] = {}
    where = [first.setdefault(s, len(first)) for s in texts]
    return list(first), where


def fan_out(data: array[float], dim: int, where: list[int]) -> array[float]:
    """The vectors of the distinct texts (``data``, ``dim`` floats each) copied to every place
    ``where`` says, in input order."""
    from array import array as _array

    raw = memoryview(data).cast("B")
    w = 4 * dim
    out = _array("f")
    out.frombytes(b"".join([raw[u * w : (u + 1) * w] for u in where]))
    return out


class _EmbedCall:
    """One logical embeddings call: a :class:`~llmrelay.core.attempts.CallState` for the
    runner (``ctx`` and ``opts``). ``texts`` are the caller's inputs; ``inputs`` the distinct
    ones, which are what is looked up, sent and cached; ``where`` maps each text to its
    distinct input (None: every text is distinct)."""

    __slots__ = (
        "ctx",
        "dimensions",
        "engine",
        "host",
        "inputs",
        "opts",
        "runner",
        "settings",
        "texts",
        "where",
    )

    def __init__(
        self,
        engine: Engine,
        texts: list[str],
        dimensions: int | None,
        opts: CallOptions,
        settings: dict[str, Any],
    ) -> None:
        self.engine = engine
        self.texts = texts
        self.inputs, self.where = dedupe(texts)
        self.dimensions = dimensions
        self.opts = opts
        self.settings = settings
        self.runner, self.host = _runner(engine)
        self.ctx: CallContext

    def request(self, inputs: list[str], *, estimate: bool = True) -> EmbedRequest:
        """The request for ``inputs`` (``estimate=False``: without the token estimate the
        limiter and the budget count, for a cache key)."""
        s = self.settings
        return EmbedRequest(
            inputs,
            self.dimensions,
            tokens=estimate_tokens_of(inputs) if estimate else 0,
            task_type=s.get("task_type"),
            user=s.get("user"),
            extra=s.get("extra"),
            input_type=s.get("input_type"),
        )

    async def candidate(self, t: Target, c: Candidate, primary: bool) -> Embeddings:
        """Every input embedded by ``t`` (cached inputs read from the cache)."""
        engine, ctx, inputs = self.engine, self.ctx, self.inputs
        try:
            dep = engine.deployment(t, self.opts, primary)
            if c.row is not None and not primary:
                check_tokens(self.texts, c.row)  # the caller's indexes in the error
        except LLMRelayError as exc:
            ctx.trace.append(
                Attempt(t.label, "skipped", error=type(exc).__name__, reason=exc.message)
            )
            raise
        n = len(inputs)
        backend = self.host.backend_for(dep)
        cache = engine.cache if self.opts.use_cache is not False else None
        keys: list[str | None] = []
        found: dict[int, array[float]] = {}
        if cache is not None:
            keys = [cache.key(self.request([s], estimate=False), dep, backend, ctx) for s in inputs]
            for i, hit in enumerate(await _chunked([(cache.get, k) for k in keys], ctx)):
                if hit is not None and hit.model == dep.model:
                    found[i] = float32_from_le_bytes(base64.b64decode(hit.text))
        todo = [i for i in range(n) if i not in found] if found else list(range(n))
        got: list[EmbedBatch] = []
        parts: list[list[int]] = []
        if todo:
            budget = engine.budget
            if budget is not None:
                whole = self.request([inputs[i] for i in todo])
                ctx.reservation = await budget.reserve(whole, dep, ctx)
            max_inputs = c.row.max_inputs if c.row else c.adapter.max_inputs
            max_tokens = c.row.max_request_tokens if c.row else None
            parts = batches(todo, inputs, max_inputs, max_tokens)
            answered, failure = await self._send(dep, t, parts)
            if failure is not None:
                # The batches that answered before one failed were paid for: they are cached
                # (when valid), so the caller's next try does not pay for them again.
                done = [(p, b) for p, b in zip(parts, answered, strict=True) if b is not None]
                if done and cache is not None and not self.opts.no_store:
                    kept = [b for _, b in done]
                    try:
                        self._checked(kept, dep, c)
                    except InvalidResponseError:
                        raise failure from None
                    await self._store(cache, keys, [p for p, _ in done], kept, dep)
                raise failure
            got = [b for b in answered if b is not None]
        dim = self._checked(got, dep, c) if got else len(next(iter(found.values())))
        data = reassemble(n, dim, found, parts, got, self.where)
        if cache is not None and not self.opts.no_store:
            await self._store(cache, keys, parts, got, dep)
        where = self.where
        hits = len(found)
        if where is not None and found:
            hits = sum(1 for u in where if u in found)  # each place a cached text fills
        return Embeddings(
            data,
            dim,
            model=dep.model,
            provider=dep.provider,
            alias=t.alias,
            cache_hits=hits,
        )

    def _checked(self, got: list[EmbedBatch], dep: Deployment, c: Candidate) -> int:
        """The dimensions of the batches ``dep`` answered, checked before anything is cached or
        returned: the size the call expects, one size for all, every number finite."""
        dim = got[0].dimensions
        if c.dimensions is not None and dim != c.dimensions:
            # A fallback or a cache entry must never hold vectors of another size than the call
            # asked for.
            raise InvalidResponseError(
                f"{dep.label} answered vectors of {dim} dimensions; the call expects "
                f"{c.dimensions}",
                provider=dep.provider,
                model=dep.model,
            )
        for b in got:
            if b.dimensions != dim:
                raise InvalidResponseError(
                    f"{dep.label} answered vectors of {b.dimensions} and {dim} dimensions in "
                    "one call",
                    provider=dep.provider,
                    model=dep.model,
                )
            bad = nonfinite(b.data)
            if bad is not None:
                # NaN or infinity (a float32 NaN in base64, a JSON number past float32's
                # range): no similarity can be computed with it, and it must not be cached.
                raise InvalidResponseError(
                    f"{dep.label} answered a vector whose number {bad % dim} is not a finite "
                    "number (NaN or infinity)",
                    provider=dep.provider,
                    model=dep.model,
                )
        return dim

    async def _send(
        self, dep: Deployment, t: Target, parts: list[list[int]]
    ) -> tuple[list[EmbedBatch | None], Exception | None]:
        """The batches on ``dep``, at most ``concurrency`` at once, answers in order, and the
        first failure (None: every batch answered). A failure cancels the batches still
        waiting or in flight (None in the answers); those that answered before it are kept."""
        inputs, run = self.inputs, self.runner.run

        async def one(idx: list[int]) -> EmbedBatch:
            resp = await run(self, dep, self.request([inputs[i] for i in idx]), t)
            batch = resp.object
            assert isinstance(batch, EmbedBatch)
            return batch

        if len(parts) == 1:
            try:
                return [await one(parts[0])], None
            except Exception as exc:
                return [None], exc
        limit = asyncio.Semaphore(int(self.settings.get("concurrency") or DEFAULT_CONCURRENCY))

        failed = False

        async def bounded(idx: list[int]) -> EmbedBatch | None:
            nonlocal failed
            async with limit:
                if failed:
                    return None  # a batch failed while this one waited: it is not sent
                try:
                    return await one(idx)
                except Exception:
                    failed = True
                    raise

        tasks = [asyncio.ensure_future(bounded(p)) for p in parts]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # A task cancelled here raises CancelledError from exception(): only the failures
        # that ended a task are read.
        failures = [x for x in tasks if not x.cancelled() and x.exception() is not None]
        if failures:
            first = failures[0].exception()
            assert first is not None
            if not isinstance(first, Exception):
                raise first  # pragma: no cover - a batch task ended by a BaseException
            ok = [not x.cancelled() and x.exception() is None for x in tasks]
            return [x.result() if k else None for x, k in zip(tasks, ok, strict=True)], first
        return [x.result() for x in tasks], None  # no failure: no batch was skipped

    async def _store(
        self,
        cache: Any,
        keys: list[str | None],
        parts: list[list[int]],
        got: list[EmbedBatch],
        dep: Deployment,
    ) -> None:
        """Each freshly embedded input under its own key (the vector as base64 float32), with
        its own estimated tokens and price (what a later hit saves, in the cache's stats)."""
        from ..catalog.tokens import estimate_tokens

        inputs, ctx = self.inputs, self.ctx
        priced = self.engine.catalog is not None
        puts: list[tuple[Callable[..., Awaitable[Any]], str | None, Response, CallContext]] = []
        for idx, b in zip(parts, got, strict=True):
            d = b.dimensions
            for j, i in enumerate(idx):
                key = keys[i]
                if key is None:
                    continue
                vec = b.data[j * d : (j + 1) * d].tobytes()
                usage = Usage(estimate_tokens(inputs[i]), estimated=True)
                entry = Response(
                    text=base64.b64encode(vec).decode("ascii"),
                    finish_reason="stop",
                    usage=usage,
                    provider=dep.provider,
                    model=dep.model,
                )
                usd = embedding_cost(dep.provider, dep.model, usage).usd if priced else None
                own = Attempt(dep.label, "success", cost_usd=usd)
                puts.append((cache.put, key, entry, dataclasses.replace(ctx, trace=[own])))
        for at in range(0, len(puts), _CACHE_CHUNK):
            await asyncio.gather(*(put(k, e, c) for put, k, e, c in puts[at : at + _CACHE_CHUNK]))

    def record(self, result: Embeddings | None, exc: BaseException | None) -> None:
        engine, ctx = self.engine, self.ctx
        if engine.recorder is None:
            return
        if result is not None:
            provider, model = result.provider, result.model
        else:
            last = next((a for a in reversed(ctx.trace) if a.outcome != "skipped"), None)
            label = last.deployment if last else ""
            provider, _, model = label.partition("/")
        hit = result is not None and result.cache_hits == len(self.texts)
        engine.emit(
            CallRecord(
                trace_id=ctx.trace_id,
                started_at=ctx.started_at,
                alias=ctx.alias,
                provider=provider,
                model=model,
                outcome=("cache_hit" if hit else "success")
                if exc is None
                else ("error" if isinstance(exc, Exception) else "cancelled"),
                latency_s=engine.clock() - ctx.start,
                usage=ctx.usage,
                cost=ctx.cost,
                attempts=list(ctx.trace),
                error=type(exc).__name__ if exc is not None else None,
                status=getattr(exc, "status", None),
                cache_hit=hit,
                tenant=ctx.tenant,
                tags=dict(ctx.tags),
            )
        )


#: Cache reads and writes in flight at once (one store round trip each).
_CACHE_CHUNK = 64


async def _chunked(
    calls: list[tuple[Callable[[str, CallContext], Awaitable[Any]], str | None]],
    ctx: CallContext,
) -> list[Any]:
    """``fn(key, ctx)`` for each (fn, key), ``_CACHE_CHUNK`` at a time, answers in order (None
    for a None key)."""

    async def none() -> None:
        return None

    out: list[Any] = []
    for at in range(0, len(calls), _CACHE_CHUNK):
        part = calls[at : at + _CACHE_CHUNK]
        out += await asyncio.gather(*(fn(k, ctx) if k is not None else none() for fn, k in part))
    return out


def reassemble(
    n: int,
    dim: int,
    found: dict[int, array[float]],
    parts: list[list[int]],
    got: list[EmbedBatch],
    where: list[int] | None,
) -> array[float]:
    """The call's vectors in input order: the ``n`` distinct inputs' vectors, from the cache
    (``found``: index -> vector) and the batches (``got[k]`` answers the indexes ``parts[k]``,
    in that order), then copied to every place ``where`` says (None: inputs are distinct)."""
    from array import array as _array

    if found:
        out = _array("f", bytes(4 * n * dim))
        for i, vec in found.items():
            if len(vec) != dim:
                raise InvalidResponseError(
                    f"a cached vector has {len(vec)} dimensions, the fresh ones {dim}"
                )
            out[i * dim : (i + 1) * dim] = vec
        for idx, b in zip(parts, got, strict=True):
            for j, i in enumerate(idx):
                out[i * dim : (i + 1) * dim] = b.data[j * dim : (j + 1) * dim]
    elif len(got) == 1:
        out = got[0].data  # the common call: one batch, nothing cached, in input order
    else:
        # Nothing cached: the batches are consecutive runs of 0..n-1, in order (``batches``).
        out = _array("f")
        for b in got:
            out.extend(b.data)
    return fan_out(out, dim, where) if where is not None else out


def _plan(engine: Engine, model: object, opts: CallOptions) -> Plan:
    """The call's candidates. Names resolve as a chat call's do (``Engine.resolve``: aliases,
    ``provider/model``, bare names of the catalogs such as ``text-embedding-3-small``)."""
    if isinstance(model, Target):
        primary = model
    elif isinstance(model, str):
        primary = engine.resolve(model)
    else:
        raise InvalidRequestError(
            f"embed() needs a model name ('provider/model' or an alias) or a Target, not "
            f"{_kind(model)}"
        )
    # Only the call's own fallbacks (or the alias's): the engine's default chain is of chat
    # models. Both resolve as the primary does (an alias's ``fallbacks = ["text-embedding-3-
    # large"]`` in llmrelay.toml names a bare embedding model too).
    fallbacks = opts.fallbacks if opts.fallbacks is not None else primary.fallbacks
    if isinstance(fallbacks, list | tuple):
        fallbacks = [engine.resolve(n) if isinstance(n, str) else n for n in fallbacks]
    return Plan.build(primary, fallbacks, None, None)


async def embed(
    engine: Engine,
    model: object,
    inputs: object,
    dimensions: object = None,
    opts: CallOptions | None = None,
    settings: dict[str, Any] | None = None,
) -> Embeddings:
    """Embed ``inputs`` with ``model`` through ``engine`` (see the module docstring)."""
    texts = check_inputs(inputs)
    dims = check_dimensions(dimensions)
    opts = opts or CallOptions()
    settings = settings or {}
    conc = settings.get("concurrency")
    if conc is not None and (type(conc) is not int or conc < 1):
        raise InvalidRequestError(f"concurrency must be a positive whole number, not {shown(conc)}")
    plan = _plan(engine, model, opts)
    targets = [plan.primary, *plan.fallbacks]
    cands = {id(t): candidate(t, dims) for t in targets}
    first = cands[id(plan.primary)]
    for t in plan.fallbacks:
        other = cands[id(t)].dimensions
        if other is not None and first.dimensions is not None and other != first.dimensions:
            raise InvalidRequestError(
                f"the fallback {t.label} answers {other}-dimension vectors, "
                f"{plan.primary.label} {first.dimensions}: vectors of different sizes cannot "
                "be mixed; pass dimensions= both accept, or fall back to a model of the same "
                "size"
            )
    fields = settings.get("extra")
    if fields:
        for t in targets:  # provider fields an adapter refuses: before anything is taken
            check = getattr(cands[id(t)].adapter, "check_extra", None)
            if check is not None:
                check(fields, t.provider, t.model)
    if first.row is not None:
        check_tokens(texts, first.row)
    call = _EmbedCall(engine, texts, dims, opts, settings)
    ctx = call.ctx = engine.context(plan, opts)
    chain = Chain(plan)
    result: Embeddings | None = None
    try:
        try:
            for t in chain:
                try:
                    result = await call.candidate(t, cands[id(t)], t is plan.primary)
                    break
                except Exception as exc:
                    if not chain.failed(exc):
                        break
            if result is None:
                failure = _failure(chain.errors, ctx.trace)
                chain.errors.clear()
                raise failure
        finally:
            if ctx.reservation is not None:
                budget = engine.budget
                assert budget is not None
                await budget.settle(ctx.reservation, ctx)
    except BaseException as exc:
        traced(exc, ctx.trace)
        call.record(None, exc)
        raise
    result.usage = ctx.usage
    result.cost = ctx.cost
    result.trace = ctx.trace
    result.latency_s = engine.clock() - ctx.start
    if result.cache_hits:
        ctx.trace.append(
            Attempt(
                f"{result.provider}/{result.model}",
                "cache_hit",
                reason=f"{result.cache_hits} of {len(texts)} inputs served from the response cache",
            )
        )
    call.record(result, None)
    return result
