"""Retries: a pure decision core, a retry budget, and thin sync/async loops around them.

The defaults follow the official OpenAI and Anthropic SDKs: 2 retries; retry connection errors,
timeouts, 408, 409, 429 (never ``insufficient_quota``), 5xx and Anthropic's 529; obey
``x-should-retry``; wait ``retry-after-ms`` / ``retry-after`` when the server asks (up to a
ceiling, 60 s by default, above which the call fails fast; a wait that does not fit in the time
left before the call's deadline fails fast too -- never retry earlier than the server said,
never cut its wait short); otherwise full-jitter exponential
backoff: a uniform delay in ``[0, min(cap, base * 2**n)]``. Never retry 400/401/403/404,
context-window or content-filter errors.

Seed 004's schedule (1 s, 2 s, 4 s, 8 s) is ``RetryPolicy(max_retries=4, base_delay=1.0,
max_delay=8.0, jitter=False)``.

A :class:`RetryBudget` (gRPC's retry throttling) stops retry storms: each failed attempt spends a
token, each success earns back ``token_ratio``; retries are allowed only while more than half the
tokens remain.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import ConfigurationError, LLMRelayError
from ..errors import is_retryable as sdk_retryable
from ..transport.headers import MAX_HEADER_DELAY, parse_retry_after, should_retry_header

__all__ = ["RetryBudget", "RetryDecision", "RetryPolicy", "aretry", "retry"]

T = TypeVar("T")

#: Beyond this exponent base * 2**n overflows for every positive float base.
_MAX_EXPONENT = 4096


@dataclass(slots=True, frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    reason: str = ""


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """When and how long to wait before trying again. Immutable; share freely."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    #: retry-after values above this (seconds) are not waited for: fail fast instead.
    max_retry_after: float = 60.0
    #: Full jitter (uniform in [0, backoff]); False gives the exact exponential schedule.
    jitter: bool = True
    #: Also retry exceptions that are not llmrelay errors (user functions in LLMManager).
    retry_unknown_errors: bool = False
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    #: Wall clock for ``retry-after`` HTTP dates (injectable for tests).
    now: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ConfigurationError(
                f"max_retries must be an integer >= 0, not {self.max_retries!r}"
            )
        for name in ("base_delay", "max_delay", "max_retry_after"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v) or v < 0:
                raise ConfigurationError(f"{name} must be a number >= 0 (seconds), not {v!r}")
            if name != "max_retry_after" and math.isinf(v):
                raise ConfigurationError(f"{name} must be a finite number of seconds, not {v!r}")
        if self.max_delay < self.base_delay:
            raise ConfigurationError(
                f"max_delay ({self.max_delay}) must be >= base_delay ({self.base_delay})"
            )

    def backoff(self, retry_number: int) -> float:
        """Delay before retry ``retry_number`` (0 for the first retry); never overflows."""
        n = min(max(0, retry_number), _MAX_EXPONENT)
        # base * 2**n, exactly; ldexp raises OverflowError instead of returning inf.
        try:
            exp = min(self.max_delay, math.ldexp(self.base_delay, n))
        except OverflowError:
            exp = self.max_delay
        if not self.jitter or exp <= 0:
            return exp
        return self.rng.uniform(0.0, exp)

    def is_retryable(self, exc: BaseException) -> bool:
        """The SDKs' rule (:func:`llmrelay.errors.is_retryable`), before headers are
        considered; an exception that is not llmrelay's only with ``retry_unknown_errors``."""
        if sdk_retryable(exc):
            return True
        if isinstance(exc, LLMRelayError):
            return False
        return self.retry_unknown_errors and isinstance(exc, Exception)

    def decide(
        self, exc: BaseException, retries_done: int, time_left: float | None = None
    ) -> RetryDecision:
        """Should the call be retried after ``exc``, having retried ``retries_done`` times?

        ``time_left``: seconds the caller may still wait before the next attempt must start
        (None: no deadline). A server-requested wait longer than that is not retried: the wait
        is never cut short, so retrying earlier than the server said cannot happen. A backoff
        (no server wait) is not judged here; the caller cuts it to fit.
        """
        if retries_done >= self.max_retries:
            return RetryDecision(False, reason=f"no retries left ({self.max_retries} allowed)")
        headers = getattr(exc, "headers", None) or {}
        forced = should_retry_header(headers)
        if forced is False:
            return RetryDecision(False, reason="server said x-should-retry: false")
        if forced is None and not self.is_retryable(exc):
            return RetryDecision(False, reason=f"{type(exc).__name__} is not retryable")
        after = getattr(exc, "retry_after", None)
        if not isinstance(after, int | float) or isinstance(after, bool):
            after = None
        elif not (math.isfinite(after) and 0 <= after <= MAX_HEADER_DELAY):
            after = None  # malformed values count as absent
        if after is None and headers:
            after = parse_retry_after(headers, self.now)
        if after is not None:
            if after > self.max_retry_after:
                return RetryDecision(
                    False,
                    reason=f"retry-after {after:g}s exceeds the {self.max_retry_after:g}s ceiling",
                )
            if time_left is not None and not after <= time_left:  # NaN: nothing left
                return RetryDecision(
                    False,
                    reason=f"server asked to retry after {after:g}s but only "
                    f"{max(0.0, time_left):.3g}s are left before the deadline",
                )
            return RetryDecision(True, after, reason="retry-after")
        return RetryDecision(True, self.backoff(retries_done), reason="backoff")


class RetryBudget:
    """gRPC-style retry throttling, per deployment. Thread-safe."""

    __slots__ = ("_lock", "max_tokens", "token_ratio", "tokens")

    def __init__(self, max_tokens: float = 10.0, token_ratio: float = 0.1) -> None:
        if not max_tokens > 0:
            raise ConfigurationError(f"retry budget max_tokens must be > 0, not {max_tokens!r}")
        if not 0 < token_ratio <= max_tokens:
            raise ConfigurationError(
                f"retry budget token_ratio must be in (0, max_tokens], not {token_ratio!r}"
            )
        self.max_tokens = float(max_tokens)
        self.token_ratio = float(token_ratio)
        self.tokens = float(max_tokens)
        self._lock = threading.Lock()

    def on_failure(self) -> None:
        with self._lock:
            self.tokens = max(0.0, self.tokens - 1.0)

    def on_success(self) -> None:
        if self.tokens < self.max_tokens:
            with self._lock:
                self.tokens = min(self.max_tokens, self.tokens + self.token_ratio)

    def can_retry(self) -> bool:
        return self.tokens > self.max_tokens / 2


def retry(
    fn: Callable[[], T],
    policy: RetryPolicy | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn()`` until it succeeds or the policy says stop (sync loop)."""
    policy = policy or RetryPolicy()
    n = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            d = policy.decide(exc, n)
            if not d.retry:
                raise
            sleep(d.delay)
            n += 1


async def aretry(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy | None = None,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """Await ``fn()`` until it succeeds or the policy says stop (async loop)."""
    policy = policy or RetryPolicy()
    n = 0
    while True:
        try:
            result = fn()
            if inspect.isawaitable(result):
                return await result
            return result
        except Exception as exc:
            d = policy.decide(exc, n)
            if not d.retry:
                raise
            await sleep(d.delay)
            n += 1
