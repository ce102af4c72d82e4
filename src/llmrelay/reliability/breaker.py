"""Circuit breakers (seed 004's ``CircuitBreaker``, with the options trusted breakers have).

States: ``closed`` (calls flow), ``open`` (calls fail fast with :class:`CircuitOpenError` carrying
``retry_after``), ``half-open`` (a bounded number of probe calls test recovery).

- Opening: by default after ``failure_threshold`` consecutive failures (seed 004). With
  ``window_type``/``window_size`` the failures are counted over a sliding window of the last N
  calls (``"count"``) or the last N seconds (``"time"``); with ``failure_rate_threshold`` the
  breaker opens when the failure rate reaches it, once ``minimum_calls`` are in the window; with
  ``slow_call_duration`` slow calls count toward ``slow_call_rate_threshold``.
- Half-open: after ``recovery_timeout`` seconds, at most ``half_open_max_calls`` probes run at
  once; callers beyond them fail fast. All probes succeeding closes the breaker, any failing
  re-opens it. A cancelled probe gives its permit back.
- Each call is admitted with the breaker's *generation*; a result that arrives after the state
  changed (a late failure from a call started before the break) is ignored, so it neither extends
  an open period nor fires a second open event.
- What counts is declared by the error classes (:func:`counts_as_failure`): the caller's errors
  (invalid input, 400, 401, 403, 404, context window, content filter, configuration) never do;
  429, 5xx, 529, timeouts, connection errors, broken streams and the guarded function's own
  exceptions do.
- The clock is monotonic and injectable. A lock guards only state changes; calls run
  concurrently.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ..errors import CircuitOpenError, ConfigurationError, LLMRelayError, finite, shown

__all__ = ["BreakerRegistry", "CircuitBreaker", "Permit", "State", "counts_as_failure"]

State = Literal["closed", "open", "half-open"]
T = TypeVar("T")


def counts_as_failure(exc: BaseException) -> bool:
    """Does this error say the deployment is unhealthy (vs. the call being wrong)?

    The declared rule: an llmrelay error counts when its class says so
    (``LLMRelayError.breaker_failure``): 429, 5xx, 529, timeouts, connection errors, broken
    streams and answers that are not the wire format do; the caller's errors (invalid input, a
    request that cannot be built, 400/401/403/404, refused content, configuration) and llmrelay's
    own refusals (an open breaker, a budget, a deadline, the state store) never do, and neither
    does a timeout whose limit the caller chose (``LLMRelayError.caller_limited``: a shortened
    ``timeout``, a ``first_token_timeout``, an attempt cut to fit a ``deadline``). Any other
    ``Exception`` counts: it was raised by the guarded function itself (``CircuitBreaker.call``,
    a user inference function), which is the deployment. The engine never lets the caller's
    mistakes reach a breaker as such: what fails while a provider request is being built is an
    ``InvalidRequestError``. Cancellation and interrupts never count.
    """
    if isinstance(exc, LLMRelayError):
        return exc.breaker_failure and not exc.caller_limited
    return isinstance(exc, Exception)


@dataclass(slots=True)
class Permit:
    """Admission to call through a breaker; hand it back with the outcome."""

    generation: int
    probe: bool
    started: float
    #: When a stream's first output came (its outcome is booked when it ends, but a slow call
    #: is one slow to answer, not a long answer).
    first_output: float | None = None


def _positive(name: str, v: Any, *, integer: bool = False) -> None:
    """A positive, finite number (or integer) of something, else ConfigurationError."""
    ok_type = (isinstance(v, int) if integer else isinstance(v, int | float)) and not isinstance(
        v, bool
    )
    if not ok_type or not finite(v) or v <= 0:
        kind = "an integer" if integer else "a finite number"
        raise ConfigurationError(f"{name} must be {kind} > 0, not {shown(v)}")


class CircuitBreaker:
    """A circuit breaker. ``call(func, *args, **kwargs)`` runs ``func`` through it."""

    #: Decides in process: the engine calls ``acquire``/``on_success``/``on_failure`` directly
    #: (the shared breaker, which needs a store round trip, says True and is awaited).
    asynchronous = False

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 60,
        *,
        window_type: Literal["count", "time"] = "count",
        window_size: float | None = None,
        failure_rate_threshold: float | None = None,
        minimum_calls: int = 10,
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float = 1.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
        is_failure: Callable[[BaseException], bool] = counts_as_failure,
        name: str = "",
    ) -> None:
        _positive("failure_threshold", failure_threshold, integer=True)
        _positive("recovery_timeout", recovery_timeout)
        _positive("minimum_calls", minimum_calls, integer=True)
        _positive("half_open_max_calls", half_open_max_calls, integer=True)
        if window_type not in ("count", "time"):
            raise ConfigurationError(f"window_type must be 'count' or 'time', not {window_type!r}")
        if window_size is not None:
            _positive("window_size", window_size, integer=window_type == "count")
        for n, r in (
            ("failure_rate_threshold", failure_rate_threshold),
            ("slow_call_rate_threshold", slow_call_rate_threshold),
        ):
            if r is not None and (
                isinstance(r, bool) or not isinstance(r, int | float) or not 0 < r <= 1
            ):
                raise ConfigurationError(f"{n} must be in (0, 1], not {r!r}")
        if slow_call_duration is not None:
            _positive("slow_call_duration", slow_call_duration)
        self.failure_threshold = failure_threshold
        self.recovery_timeout = float(recovery_timeout)
        self.window_type = window_type
        if window_size is None:
            window_size = (
                (100 if failure_rate_threshold else failure_threshold)
                if window_type == "count"
                else 60.0
            )
        if window_type == "count":
            if failure_rate_threshold is None and window_size < failure_threshold:
                raise ConfigurationError(
                    f"window_size ({window_size} calls) is smaller than failure_threshold "
                    f"({failure_threshold}): the breaker could never open. Use a window of at "
                    "least failure_threshold calls"
                )
            # As resilience4j does: a count window never holds more than window_size calls.
            minimum_calls = min(minimum_calls, int(window_size))
        self.window_size = window_size
        self.failure_rate_threshold = failure_rate_threshold
        self.minimum_calls = minimum_calls
        self.slow_call_duration = slow_call_duration
        self.slow_call_rate_threshold = slow_call_rate_threshold
        self.half_open_max_calls = half_open_max_calls
        self.clock = clock
        self.is_failure = is_failure
        self.name = name
        # Re-entrant: a state-change listener may read or reset the breaker.
        self._lock = threading.RLock()
        self._state: State = "closed"
        self._generation = 0
        self._opened_at = 0.0
        # window: (time, failed, slow)
        self._window: deque[tuple[float, bool, bool]] = deque()
        self._failures = 0
        self._slow = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
        # "N failures in the last N calls" == N consecutive failures (seed 004's rule).
        self._consecutive = (
            window_type == "count"
            and window_size == failure_threshold
            and failure_rate_threshold is None
            and slow_call_duration is None
        )
        self.listeners: list[Callable[[State, State], None]] = []
        self.open_count = 0

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> State:
        """The current state (``open`` turns ``half-open`` once the recovery timeout passed)."""
        if self._state == "open" and self.clock() - self._opened_at >= self.recovery_timeout:
            return "half-open"
        return self._state

    @property
    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self._state != "open":
            return 0.0
        return max(0.0, self.recovery_timeout - (self.clock() - self._opened_at))

    def _transition(self, new: State) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        if new == "open":
            self._opened_at = self.clock()
            self.open_count += 1
        if new in ("closed", "half-open"):
            self._window.clear()
            self._failures = self._slow = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
        if old != new:
            for fn in list(self.listeners):
                fn(old, new)

    def reset(self) -> None:
        """Close the breaker by hand (seed 004's ``reset_circuit_breaker``)."""
        with self._lock:
            self._transition("closed")

    # ------------------------------------------------------------------ admission

    def acquire(self) -> Permit:
        """Admit one call or raise ``CircuitOpenError`` with ``retry_after``."""
        now = self.clock()
        state = self._state
        if state == "closed":
            return Permit(self._generation, False, now)
        if state == "open":
            # Refused without the lock: nothing changes (the arithmetic of ``state``).
            remaining = self.recovery_timeout - (now - self._opened_at)
            if remaining > 0:
                raise self._refusal(remaining)
        with self._lock:
            if self._state == "open":
                # The same arithmetic as ``state``, so both agree at the boundary.
                remaining = self.recovery_timeout - (now - self._opened_at)
                if remaining > 0:
                    raise self._refusal(remaining)
                self._transition("half-open")
            if self._state == "half-open":
                if self._probes_in_flight + self._probe_successes >= self.half_open_max_calls:
                    raise CircuitOpenError(
                        f"circuit breaker{' ' + self.name if self.name else ''} is half-open and "
                        f"its {self.half_open_max_calls} probe call(s) are taken",
                        retry_after=min(1.0, self.recovery_timeout),
                    )
                self._probes_in_flight += 1
                return Permit(self._generation, True, now)
            return Permit(self._generation, False, now)

    def _refusal(self, remaining: float) -> CircuitOpenError:
        return CircuitOpenError(
            f"circuit breaker{' ' + self.name if self.name else ''} is open",
            retry_after=remaining,
        )

    async def aacquire(self) -> Permit:
        """``acquire`` as a coroutine (the shared breaker's shape)."""
        return self.acquire()

    async def aon_success(self, permit: Permit) -> None:
        self.on_success(permit)

    async def aon_failure(self, permit: Permit, exc: BaseException) -> None:
        self.on_failure(permit, exc)

    def release(self, permit: Permit) -> None:
        """The call ended without an outcome (cancelled, or an error that does not count)."""
        if permit.probe:
            with self._lock:
                if permit.generation == self._generation and self._probes_in_flight > 0:
                    self._probes_in_flight -= 1

    def on_success(self, permit: Permit) -> None:
        now = self.clock()
        slow = (
            self.slow_call_duration is not None
            and (now if permit.first_output is None else permit.first_output) - permit.started
            >= self.slow_call_duration
        )
        if permit.generation != self._generation:
            return  # a late result from before a state change
        if permit.probe:
            with self._lock:
                if permit.generation != self._generation:
                    return
                self._probes_in_flight -= 1
                if slow:
                    self._transition("open")
                    return
                self._probe_successes += 1
                if self._probe_successes >= self.half_open_max_calls:
                    self._transition("closed")
            return
        if self._consecutive and self._failures == 0:
            return  # fast path: only failures matter and there are none to push out
        self._record(permit, False, slow, now)

    def on_failure(self, permit: Permit, exc: BaseException) -> None:
        if not self.is_failure(exc):
            self.release(permit)
            return
        if permit.generation != self._generation:
            return
        now = self.clock()
        if permit.probe:
            with self._lock:
                if permit.generation == self._generation:
                    self._transition("open")
            return
        slow = (
            self.slow_call_duration is not None
            and (now if permit.first_output is None else permit.first_output) - permit.started
            >= self.slow_call_duration
        )
        self._record(permit, True, slow, now)

    def _record(self, permit: Permit, failed: bool, slow: bool, now: float) -> None:
        with self._lock:
            if permit.generation != self._generation or self._state != "closed":
                return
            w = self._window
            w.append((now, failed, slow))
            self._failures += failed
            self._slow += slow
            if self.window_type == "count":
                while len(w) > self.window_size:
                    _, f, s = w.popleft()
                    self._failures -= f
                    self._slow -= s
            else:
                horizon = now - self.window_size
                while w and w[0][0] < horizon:
                    _, f, s = w.popleft()
                    self._failures -= f
                    self._slow -= s
            calls = len(w)
            trip = False
            if self.failure_rate_threshold is None:
                trip = self._failures >= self.failure_threshold
            elif calls >= self.minimum_calls:
                trip = self._failures / calls >= self.failure_rate_threshold
            if not trip and self.slow_call_duration is not None and calls >= self.minimum_calls:
                trip = self._slow / calls >= self.slow_call_rate_threshold
            if trip:
                self._transition("open")

    # ------------------------------------------------------------------ calling

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` through the breaker.

        For a coroutine function (or any callable returning an awaitable) this returns an
        awaitable: ``await breaker.call(afn)``; the outcome is recorded when it completes.
        """
        if inspect.iscoroutinefunction(func):
            return self.acall(func, *args, **kwargs)
        permit = self.acquire()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._abort(permit, exc)
            raise
        if inspect.isawaitable(result):
            return self._settle(permit, result)
        self.on_success(permit)
        return result

    def _abort(self, permit: Permit, exc: BaseException) -> None:
        """Book a call that raised: a failure (if it counts as one), or -- cancelled, interrupted
        -- no outcome, giving the permit back."""
        if isinstance(exc, Exception):
            self.on_failure(permit, exc)
        else:
            self.release(permit)

    async def _settle(self, permit: Permit, awaitable: Awaitable[T]) -> T:
        try:
            result = await awaitable
        except BaseException as exc:
            self._abort(permit, exc)
            raise
        self.on_success(permit)
        return result

    async def acall(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await func(*args, **kwargs)`` through the breaker."""
        permit = self.acquire()
        try:
            awaitable = func(*args, **kwargs)
        except BaseException as exc:
            self._abort(permit, exc)
            raise
        return await self._settle(permit, awaitable)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name or 'unnamed'}, state={self.state!r})"


class BreakerRegistry:
    """One breaker per deployment key, created on first use with the same settings."""

    def __init__(self, **settings: Any) -> None:
        settings.pop("name", None)  # each breaker is named after its deployment
        CircuitBreaker(**settings)  # validate now, at configuration time
        self.settings = settings
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CircuitBreaker:
        b = self._breakers.get(key)
        if b is None:
            with self._lock:
                b = self._breakers.get(key)
                if b is None:
                    b = self._breakers[key] = CircuitBreaker(name=key, **self.settings)
        return b

    def peek(self, key: str) -> CircuitBreaker | None:
        return self._breakers.get(key)

    def items(self) -> list[tuple[str, CircuitBreaker]]:
        return list(self._breakers.items())
