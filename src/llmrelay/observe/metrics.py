"""In-process metrics: a ``Recorder`` that counts every finished call (seed 004's names).

    >>> m = Metrics()
    >>> client = Client(engine=Engine(recorder=m))     # or Client(metrics=True)
    >>> m.get_metrics()["success_rate"]                # doctest: +SKIP

``record()`` only updates counters and two histograms under one uncontended lock (no I/O,
no allocation beyond a new model's first call): a few microseconds per call.

**Two levels.** The totals of :meth:`Metrics.get_metrics` count *logical calls* (one per ``chat``,
whatever retries and fallbacks it took): ``total_requests``, ``successful_requests``,
``failed_requests``, ``success_rate``, ``cache_hits``, ``cache_hit_rate`` (hits / calls, as
``LLMManager`` computes it), ``total_tokens`` (spent: cache hits count 0), ``total_retries``
(attempts after the first on a deployment), ``total_fallbacks`` (calls that tried more than one
deployment), ``latency`` (the whole call, backoff included) and ``time_to_first_token`` (streams).
The per-model stats (``models``, :meth:`Metrics.get_model_info`) count *attempts* on each
``provider/model`` (seed 004's ``LLMManager`` counts *calls* per model instead): a call that failed
over from A to B counts a failure for A and a success for B. ``avg_latency`` and the ``latency``
percentiles are per attempt there.

**Cost.** ``total_cost`` is the sum of the known costs; ``cost_unknown_requests`` counts the
calls whose price is unknown (not in the catalog, no catalog configured) and are therefore *not*
in that sum. ``total_cost`` is None when some cost is unknown and the known ones add up to
nothing -- an unknown price is never shown as $0. A cache hit and a call that reported no
tokens cost 0 (see :mod:`llmrelay.recorders`).

**Percentiles** come from fixed log-scale buckets, 8 per doubling from about 1 µs to 34 minutes
(each bucket spans 9%): a reported p50/p95/p99 is within 4.4% of the true nearest-rank value
(the minimum and maximum are exact), in constant memory and one ``bisect`` per value. The
Prometheus ``buckets`` (seconds) are edges of the same buckets, so their counts are exact.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .recorders import call_cost

if TYPE_CHECKING:
    from ..core.layers import CallRecord

__all__ = ["DEFAULT_BUCKETS", "Histogram", "Metrics"]

#: Prometheus bucket bounds in seconds (LLM calls run from milliseconds to minutes).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip

_SUB = 8  # log buckets per doubling: 9% wide, so a midpoint is within 4.4% of any value in it
_LOWEST, _HIGHEST = -20 * _SUB, 11 * _SUB  # 2**-20 s (about 1 µs) .. 2**11 s (34 min)


@lru_cache(maxsize=8)
def _edges(bounds: tuple[float, ...]) -> tuple[float, ...]:
    """Bucket upper edges: the log scale merged with the Prometheus bounds."""
    log_scale = (2.0 ** (k / _SUB) for k in range(_LOWEST, _HIGHEST + 1))
    return tuple(sorted(set(log_scale) | set(bounds)))


class Histogram:
    """A distribution of seconds: exact count, sum, min and max; percentiles from log-scale
    buckets; cumulative counts at the Prometheus ``bounds`` (which are bucket edges, so exact).
    One ``bisect`` per observation. Not thread-safe (``Metrics`` holds a lock)."""

    __slots__ = ("bounds", "count", "counts", "edges", "max", "min", "sum")

    def __init__(self, bounds: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.edges = _edges(self.bounds)
        #: counts[i]: values in (edges[i-1], edges[i]]; the last one is above every edge.
        self.counts = [0] * (len(self.edges) + 1)
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0

    def observe(self, v: float) -> None:
        if not 0.0 <= v < math.inf:  # NaN, negative, infinite: not a duration
            return
        self.count += 1
        self.sum += v
        if v < self.min:
            self.min = v
        if v > self.max:
            self.max = v
        self.counts[bisect_left(self.edges, v)] += 1

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0 < q <= 1, nearest rank), or None when nothing was observed.
        Exact for the lowest and highest rank, otherwise within 4.4%."""
        n = self.count
        if not n:
            return None
        rank = max(1, math.ceil(q * n))
        if rank >= n:
            return self.max
        if rank == 1:
            return self.min
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                if i == 0 or i == len(self.edges):
                    break  # below or above every edge: only min and max are known
                mid = math.sqrt(self.edges[i - 1] * self.edges[i])
                return min(max(mid, self.min), self.max)
        return self.min if i == 0 else self.max

    def summary(self) -> dict[str, Any]:
        n = self.count
        return {
            "count": n,
            "sum": self.sum,
            "avg": self.sum / n if n else None,
            "min": self.min if n else None,
            "max": self.max if n else None,
            "p50": self.quantile(0.50),
            "p95": self.quantile(0.95),
            "p99": self.quantile(0.99),
        }

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, cumulative count)`` per Prometheus bound, then ``(inf, count)``."""
        out, total, i = [], 0, 0
        edges, counts = self.edges, self.counts
        for bound in self.bounds:
            while i < len(edges) and edges[i] <= bound:
                total += counts[i]
                i += 1
            out.append((bound, total))
        out.append((math.inf, self.count))
        return out


class _ModelStats:
    """Attempt-level counters of one ``provider/model``."""

    __slots__ = (
        "cache_hits",
        "cached_tokens",
        "cost_unknown",
        "cost_usd",
        "errors",
        "failures",
        "input_tokens",
        "latency",
        "output_tokens",
        "reasoning_tokens",
        "requests",
        "retries",
        "skipped",
        "successes",
        "ttft",
    )

    def __init__(self, bounds: Sequence[float]) -> None:
        self.requests = self.successes = self.failures = self.retries = 0
        self.cache_hits = self.skipped = 0
        self.input_tokens = self.output_tokens = self.cached_tokens = self.reasoning_tokens = 0
        self.cost_usd = 0.0
        self.cost_unknown = 0
        self.errors: dict[str, int] = {}
        self.latency = Histogram(bounds)
        self.ttft = Histogram(bounds)

    def stats(self) -> dict[str, Any]:
        lat = self.latency
        return {
            "requests": self.requests,
            "successes": self.successes,
            "failures": self.failures,
            "avg_latency": lat.sum / lat.count if lat.count else 0.0,
            "latency": lat.summary(),
            "time_to_first_token": self.ttft.summary(),
            "retries": self.retries,
            "cache_hits": self.cache_hits,
            "skipped": self.skipped,
            "total_tokens": self.input_tokens + self.output_tokens,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost": None if self.cost_unknown and not self.cost_usd else self.cost_usd,
            "cost_unknown_requests": self.cost_unknown,
            "errors": dict(self.errors),
        }


class Metrics:
    """Counters and histograms of every call an engine makes (a ``Recorder``). Thread-safe."""

    def __init__(self, *, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        b = tuple(buckets)
        if not b or any(
            isinstance(x, bool) or not isinstance(x, int | float) or not 0 < x < math.inf for x in b
        ):
            raise ConfigurationError(
                f"buckets must be positive finite numbers of seconds, not {buckets!r}"
            )
        if list(b) != sorted(set(b)):
            raise ConfigurationError(f"buckets must be strictly increasing, not {buckets!r}")
        self.buckets = tuple(float(x) for x in b)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._total = self._ok = self._failed = self._cache_hits = 0
            self._input = self._output = self._cached = self._reasoning = 0
            self._retries = self._fallbacks = 0
            self._cost = 0.0
            self._cost_unknown = 0
            self._errors: dict[str, int] = {}
            self._calls: dict[tuple[str, str, str], int] = {}
            self._latency = Histogram(self.buckets)
            self._ttft = Histogram(self.buckets)
            self._models: dict[str, _ModelStats] = {}

    def _model(self, label: str) -> _ModelStats:
        m = self._models.get(label)
        if m is None:
            m = self._models[label] = _ModelStats(self.buckets)
        return m

    def record(self, rec: CallRecord) -> None:
        """Count one finished call (the ``Recorder`` protocol)."""
        cost, known = call_cost(rec)
        outcome = rec.outcome
        with self._lock:
            self._total += 1
            if outcome == "success":
                self._ok += 1
            elif outcome == "cache_hit":
                self._ok += 1
                self._cache_hits += 1
            else:  # "error" (or any other way a call can end without an answer)
                self._failed += 1
                err = rec.error or outcome
                self._errors[err] = self._errors.get(err, 0) + 1
            key = (rec.provider, rec.model, outcome)
            self._calls[key] = self._calls.get(key, 0) + 1
            self._latency.observe(rec.latency_s)
            if not rec.cache_hit:
                u = rec.usage
                self._input += u.input_tokens
                self._output += u.output_tokens
                self._cached += u.cached_tokens
                self._reasoning += u.reasoning_tokens
            if known:
                self._cost += cost or 0.0
            else:
                self._cost_unknown += 1
            first: str | None = None
            moved = False
            last_ok: _ModelStats | None = None
            models = self._models
            for a in rec.attempts:
                m = models.get(a.deployment) or self._model(a.deployment)
                o = a.outcome
                if o == "skipped":
                    m.skipped += 1
                    continue
                if o == "cache_hit":
                    m.cache_hits += 1
                    continue
                if first is None:
                    first = a.deployment
                elif a.deployment != first:
                    moved = True
                m.requests += 1
                m.latency.observe(a.latency_s)
                if a.is_retry:
                    m.retries += 1
                    self._retries += 1
                if o == "success":
                    m.successes += 1
                    last_ok = m
                else:
                    m.failures += 1
                    e = a.error or "Error"
                    m.errors[e] = m.errors.get(e, 0) + 1
                au = a.usage
                if au is not None:
                    m.input_tokens += au.input_tokens
                    m.output_tokens += au.output_tokens
                    m.cached_tokens += au.cached_tokens
                    m.reasoning_tokens += au.reasoning_tokens
                # recorders.attempt_cost, inlined: a price, or no tokens ($0), or unknown
                if a.cost_usd is not None:
                    m.cost_usd += a.cost_usd
                elif au is not None and (au.input_tokens or au.output_tokens):
                    m.cost_unknown += 1
            if moved:
                self._fallbacks += 1
            ttft = rec.time_to_first_token_s
            if ttft is not None:
                self._ttft.observe(ttft)
                if last_ok is not None:
                    last_ok.ttft.observe(ttft)

    # ------------------------------------------------------------------ reading

    def get_metrics(self) -> dict[str, Any]:
        """Totals over every call so far (seed 004's names; see the module docstring)."""
        with self._lock:
            n = self._total
            cost = None if self._cost_unknown and not self._cost else self._cost
            return {
                "total_requests": n,
                "successful_requests": self._ok,
                "failed_requests": self._failed,
                "success_rate": self._ok / n if n else 0.0,
                "cache_hits": self._cache_hits,
                "cache_hit_rate": self._cache_hits / n if n else 0.0,
                "total_tokens": self._input + self._output,
                "input_tokens": self._input,
                "output_tokens": self._output,
                "cached_tokens": self._cached,
                "reasoning_tokens": self._reasoning,
                "total_retries": self._retries,
                "total_fallbacks": self._fallbacks,
                "total_cost": cost,
                "cost_unknown_requests": self._cost_unknown,
                "errors": dict(self._errors),
                "latency": self._latency.summary(),
                "time_to_first_token": self._ttft.summary(),
                "models": {k: m.stats() for k, m in self._models.items()},
            }

    def model_names(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def get_model_info(self, model_name: str) -> dict[str, Any]:
        """``{"name": ..., "stats": {...}}`` for ``provider/model`` (or a model name that only
        one provider served). A model that has not been called has all-zero stats."""
        with self._lock:
            label = model_name
            if label not in self._models and "/" not in label:
                matches = [k for k in self._models if k.partition("/")[2] == model_name]
                if len(matches) > 1:
                    raise ConfigurationError(
                        f"{model_name!r} was served by several providers "
                        f"({', '.join(sorted(matches))}); name one as provider/model"
                    )
                label = matches[0] if matches else model_name
            m = self._models.get(label)
            stats = m.stats() if m is not None else _ModelStats(self.buckets).stats()
            provider, sep, _ = label.partition("/")
            return {"name": label, "provider": provider if sep else None, "stats": stats}

    def snapshot(self) -> dict[str, Any]:
        """Everything the Prometheus exposition needs, copied under the lock."""
        with self._lock:
            return {
                "calls": dict(self._calls),
                "fallbacks": self._fallbacks,
                "latency": _copy(self._latency),
                "models": {
                    k: {
                        "requests": m.requests,
                        "successes": m.successes,
                        "failures": m.failures,
                        "retries": m.retries,
                        "cache_hits": m.cache_hits,
                        "input_tokens": m.input_tokens,
                        "output_tokens": m.output_tokens,
                        "cached_tokens": m.cached_tokens,
                        "reasoning_tokens": m.reasoning_tokens,
                        "cost_usd": m.cost_usd,
                        "cost_unknown": m.cost_unknown,
                        "errors": dict(m.errors),
                        "latency": _copy(m.latency),
                        "ttft": _copy(m.ttft),
                    }
                    for k, m in self._models.items()
                },
            }

    def to_prometheus(self) -> str:
        """The metrics in the Prometheus text exposition format (version 0.0.4)."""
        from .prometheus import render

        return render(self.snapshot())


def _copy(h: Histogram) -> Histogram:
    c = Histogram(h.bounds)
    c.counts = list(h.counts)
    c.count, c.sum, c.min, c.max = h.count, h.sum, h.min, h.max
    return c
