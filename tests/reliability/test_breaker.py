"""Circuit breakers: seed 004's semantics, the options trusted breakers have, a state-machine
test against a reference model, and concurrency through the engine and the fake upstream."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import llmrelay
from llmrelay.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ConfigurationError,
    ContentFilteredError,
    ContextWindowExceededError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)
from llmrelay.reliability.breaker import BreakerRegistry, CircuitBreaker, Permit, counts_as_failure
from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY, FakeClock


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom("upstream failed")


def ok() -> str:
    return "ok"


def fail(b: CircuitBreaker, n: int = 1, exc: BaseException | None = None) -> None:
    for _ in range(n):
        b.on_failure(b.acquire(), exc or ServerError("500", status=500))


def succeed(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        b.on_success(b.acquire())


# --------------------------------------------------------------------------- seed 004


def test_seed_semantics_with_call() -> None:
    clock = FakeClock()
    b = CircuitBreaker(clock=clock)  # seed defaults: 5 failures, 60 s
    assert (b.failure_threshold, b.recovery_timeout) == (5, 60.0)
    assert b.state == "closed"
    for _ in range(4):
        with pytest.raises(Boom):
            b.call(boom)
    assert b.state == "closed"
    with pytest.raises(Boom):
        b.call(boom)
    assert b.state == "open"

    calls = 0

    def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with pytest.raises(CircuitOpenError) as info:
        b.call(counted)
    assert calls == 0  # failed fast, the function never ran
    assert info.value.retry_after == pytest.approx(60.0)
    assert "open" in str(info.value)

    clock.advance(59.5)
    with pytest.raises(CircuitOpenError) as info:
        b.call(counted)
    assert info.value.retry_after == pytest.approx(0.5)
    assert b.retry_after == pytest.approx(0.5)

    clock.advance(0.5)
    assert b.state == "half-open"
    assert b.retry_after == 0.0
    assert b.call(counted) == "ok"  # the probe succeeds
    assert b.state == "closed"
    assert calls == 1

    # Again: open, wait, probe fails -> open for another full recovery timeout.
    for _ in range(5):
        with pytest.raises(Boom):
            b.call(boom)
    assert b.state == "open"
    clock.advance(60)
    assert b.state == "half-open"
    with pytest.raises(Boom):
        b.call(boom)
    assert b.state == "open"
    assert b.retry_after == pytest.approx(60.0)
    assert b.open_count == 3  # the failed probe re-opened it a third time


def test_successes_reset_the_consecutive_count() -> None:
    b = CircuitBreaker(failure_threshold=3, clock=FakeClock())
    for _ in range(5):
        fail(b, 2)
        succeed(b)
    assert b.state == "closed"
    fail(b, 3)
    assert b.state == "open"


async def test_call_with_async_functions() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=2, recovery_timeout=10, clock=clock)

    async def afail() -> None:
        await asyncio.sleep(0)
        raise Boom("async")

    async def aok(x: int, *, y: int) -> int:
        await asyncio.sleep(0)
        return x + y

    assert await b.call(aok, 1, y=2) == 3
    assert await b.acall(aok, 2, y=2) == 4
    for _ in range(2):
        with pytest.raises(Boom):
            await b.call(afail)
    assert b.state == "open"
    with pytest.raises(CircuitOpenError):
        await b.call(aok, 1, y=1)
    clock.advance(10)
    assert await b.call(aok, 5, y=5) == 10
    assert b.state == "closed"


async def test_call_with_a_callable_returning_an_awaitable() -> None:
    """A lambda or partial around a coroutine function: the outcome is the awaited one."""
    b = CircuitBreaker(failure_threshold=1, clock=FakeClock())

    async def afail() -> None:
        raise Boom("late")

    pending = b.call(lambda: afail())
    assert b.state == "closed"  # nothing recorded before it completes
    with pytest.raises(Boom):
        await pending
    assert b.state == "open"


def test_call_passes_arguments_and_results() -> None:
    b = CircuitBreaker(clock=FakeClock())
    assert b.call(lambda a, b=0: a * b, 6, b=7) == 42


# --------------------------------------------------------------------------- windows


def test_count_window() -> None:
    b = CircuitBreaker(failure_threshold=3, window_size=5, clock=FakeClock())
    for outcome in "FSFS":
        fail(b) if outcome == "F" else succeed(b)
    assert b.state == "closed"
    fail(b)  # 3 failures in the last 5 calls, never consecutive
    assert b.state == "open"

    b = CircuitBreaker(failure_threshold=3, window_size=5, clock=FakeClock())
    for outcome in "FSSSSFF":  # the first failure has left the window: S S S F F
        fail(b) if outcome == "F" else succeed(b)
    assert b.state == "closed"
    fail(b)  # S S F F F
    assert b.state == "open"


def test_time_window() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=3, window_type="time", window_size=10, clock=clock)
    fail(b)  # t=0
    clock.advance(5)
    fail(b)  # t=5
    clock.advance(6)
    fail(b)  # t=11: the failure at t=0 is older than 10 s
    assert b.state == "closed"
    clock.advance(1)
    fail(b)  # t=12: failures at 5, 11, 12
    assert b.state == "open"


def test_failure_rate_threshold_with_minimum_calls() -> None:
    b = CircuitBreaker(
        failure_rate_threshold=0.5, minimum_calls=4, window_size=10, clock=FakeClock()
    )
    fail(b, 3)
    assert b.state == "closed"  # 100% failures, but only 3 calls
    succeed(b)  # 3/4 = 75%
    assert b.state == "open"

    b = CircuitBreaker(
        failure_rate_threshold=0.5, minimum_calls=4, window_size=10, clock=FakeClock()
    )
    succeed(b, 3)
    fail(b, 2)  # 2/5
    assert b.state == "closed"
    fail(b)  # 3/6 = 50%
    assert b.state == "open"


def test_failure_rate_in_a_time_window() -> None:
    clock = FakeClock()
    b = CircuitBreaker(
        window_type="time",
        window_size=30,
        failure_rate_threshold=0.5,
        minimum_calls=2,
        clock=clock,
    )
    succeed(b, 4)
    clock.advance(31)  # the successes expire
    fail(b)
    assert b.state == "closed"  # 1 call < minimum
    fail(b)
    assert b.state == "open"


def test_slow_call_threshold() -> None:
    clock = FakeClock()
    b = CircuitBreaker(
        slow_call_duration=2.0, slow_call_rate_threshold=0.5, minimum_calls=4, clock=clock
    )
    for _ in range(3):
        p = b.acquire()
        clock.advance(0.1)
        b.on_success(p)
    p = b.acquire()
    clock.advance(2.5)
    b.on_success(p)  # 1 slow of 4
    assert b.state == "closed"
    for _ in range(2):
        p = b.acquire()
        clock.advance(3)
        b.on_success(p)
    # The count window holds the last 5 calls (failure_threshold): 3 slow of 5 >= 50%.
    assert b.state == "open"


def test_slow_probe_reopens() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, recovery_timeout=5, slow_call_duration=1, clock=clock)
    fail(b)
    clock.advance(5)
    p = b.acquire()
    assert p.probe
    clock.advance(2)
    b.on_success(p)
    assert b.state == "open"


def test_minimum_calls_is_clamped_to_a_count_window() -> None:
    b = CircuitBreaker(failure_rate_threshold=0.5, window_size=4, minimum_calls=10)
    assert b.minimum_calls == 4
    fail(b, 4)
    assert b.state == "open"


# --------------------------------------------------------------------------- half-open


def test_half_open_max_calls() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, recovery_timeout=10, half_open_max_calls=3, clock=clock)
    fail(b)
    clock.advance(10)
    probes = [b.acquire() for _ in range(3)]
    assert all(p.probe for p in probes)
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert "half-open" in str(info.value)
    assert info.value.retry_after is not None
    assert info.value.retry_after > 0
    b.on_success(probes[0])
    b.on_success(probes[1])
    assert b.state == "half-open"
    with pytest.raises(CircuitOpenError):
        b.acquire()  # finished probes still count: 2 succeeded + 1 in flight
    b.on_success(probes[2])
    assert b.state == "closed"


def test_one_failed_probe_reopens_and_voids_the_others() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, recovery_timeout=10, half_open_max_calls=2, clock=clock)
    fail(b)
    clock.advance(10)
    p1, p2 = b.acquire(), b.acquire()
    b.on_failure(p1, ServerError("500", status=500))
    assert b.state == "open"
    assert b.retry_after == pytest.approx(10)
    b.on_success(p2)  # a late success of the old half-open round
    assert b.state == "open"


def test_client_error_on_a_probe_gives_the_permit_back() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, recovery_timeout=10, clock=clock)
    fail(b)
    clock.advance(10)
    p = b.acquire()
    b.on_failure(p, BadRequestError("bad", status=400))
    assert b.state == "half-open"
    p = b.acquire()  # the slot is free again
    b.on_success(p)
    assert b.state == "closed"


async def test_cancelled_probe_gives_its_permit_back() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, recovery_timeout=10, clock=clock)
    fail(b)
    clock.advance(10)
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(b.acall(slow))
    await started.wait()
    with pytest.raises(CircuitOpenError):
        b.acquire()  # the only probe is in flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.state == "half-open"

    async def fine() -> str:
        return "fine"

    assert await b.call(fine) == "fine"  # the permit came back: a new probe runs
    assert b.state == "closed"


def test_sync_base_exception_gives_the_permit_back() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, recovery_timeout=1, clock=clock)
    fail(b)
    clock.advance(1)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b.call(interrupted)
    assert b.call(ok) == "ok"
    assert b.state == "closed"


# --------------------------------------------------------------------------- late results


def test_late_failure_neither_extends_nor_reopens() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=2, recovery_timeout=30, clock=clock)
    events: list[tuple[str, str]] = []
    b.listeners.append(lambda old, new: events.append((old, new)))
    early = [b.acquire() for _ in range(3)]  # started before the break
    fail(b, 2)
    assert events == [("closed", "open")]
    clock.advance(20)
    for p in early:
        b.on_failure(p, ServerError("late 500", status=500))
    assert b.retry_after == pytest.approx(10)  # not extended
    assert events == [("closed", "open")]
    assert b.open_count == 1
    clock.advance(10)
    b.on_success(b.acquire())
    assert b.state == "closed"
    # Results from before the recovery are still ignored now that it is closed again.
    b.on_failure(early[0], ServerError("very late", status=500))
    assert b.state == "closed"
    assert events == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


async def test_late_failure_through_concurrent_calls() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=2, recovery_timeout=30, clock=clock)
    opened: list[str] = []
    b.listeners.append(lambda old, new: opened.append(new) if new == "open" else None)
    release = asyncio.Event()

    async def slow_fail() -> None:
        await release.wait()
        raise ServerError("slow 500", status=500)

    async def fast_fail() -> None:
        raise ServerError("fast 500", status=500)

    slow = asyncio.create_task(b.acall(slow_fail))
    await asyncio.sleep(0)
    for _ in range(2):
        with pytest.raises(ServerError):
            await b.call(fast_fail)
    assert b.state == "open"
    assert opened == ["open"]
    clock.advance(29)
    release.set()
    with pytest.raises(ServerError):
        await slow
    assert opened == ["open"]
    assert b.retry_after == pytest.approx(1)


def test_late_success_does_not_close() -> None:
    b = CircuitBreaker(failure_threshold=1, clock=FakeClock())
    early = b.acquire()
    fail(b)
    b.on_success(early)
    assert b.state == "open"


# --------------------------------------------------------------------------- what counts


@pytest.mark.parametrize(
    ("exc", "counts"),
    [
        (BadRequestError("bad", status=400), False),
        (AuthenticationError("key", status=401), False),
        (PermissionDeniedError("no", status=403), False),
        (NotFoundError("where", status=404), False),
        (ContextWindowExceededError("too long", status=400), False),
        (ContentFilteredError("refused", status=400), False),
        (ConfigurationError("bad config"), False),
        (CircuitOpenError("open"), False),
        (RateLimitedError("slow down", status=429), True),
        (ServerError("500", status=500), True),
        (ServerError("503", status=503), True),
        (OverloadedError("overloaded", status=529), True),
        (APITimeoutError("timed out"), True),
        (APIConnectionError("refused"), True),
        (Boom("user function failed"), True),
        (asyncio.CancelledError(), False),
        (KeyboardInterrupt(), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_what_counts_as_a_failure(exc: BaseException, counts: bool) -> None:
    assert counts_as_failure(exc) is counts
    b = CircuitBreaker(failure_threshold=3, clock=FakeClock())
    for _ in range(3):
        b.on_failure(b.acquire(), exc)
    assert b.state == ("open" if counts else "closed")
    if not counts:
        for _ in range(20):
            b.on_failure(b.acquire(), exc)
        assert b.state == "closed"


def test_client_errors_through_call() -> None:
    b = CircuitBreaker(failure_threshold=2, clock=FakeClock())

    def bad() -> None:
        raise ContextWindowExceededError("too long", status=400)

    for _ in range(5):
        with pytest.raises(ContextWindowExceededError):
            b.call(bad)
    assert b.state == "closed"


# --------------------------------------------------------------------------- reset, config


def test_reset() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, clock=clock)
    events: list[tuple[str, str]] = []
    b.listeners.append(lambda old, new: events.append((old, new)))
    b.reset()
    assert events == []  # closed -> closed is not an event
    inflight = b.acquire()
    fail(b)
    assert b.state == "open"
    b.reset()
    assert b.state == "closed"
    assert b.retry_after == 0.0
    assert b.call(ok) == "ok"
    b.on_failure(inflight, ServerError("late", status=500))  # from before the reset
    assert b.state == "closed"
    assert events == [("closed", "open"), ("open", "closed")]


def test_a_listener_may_use_the_breaker() -> None:
    b = CircuitBreaker(failure_threshold=1, clock=FakeClock())
    seen: list[str] = []

    def on_change(old: str, new: str) -> None:
        seen.append(b.state)
        if new == "open":
            b.reset()  # re-entrant: must not deadlock

    b.listeners.append(on_change)
    fail(b)
    assert b.state == "closed"
    assert seen == ["open", "closed"]


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": -1}, "failure_threshold"),
        ({"failure_threshold": 2.5}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"recovery_timeout": 0}, "recovery_timeout"),
        ({"recovery_timeout": -5}, "recovery_timeout"),
        ({"recovery_timeout": math.nan}, "recovery_timeout"),
        ({"recovery_timeout": math.inf}, "recovery_timeout"),
        ({"recovery_timeout": "60"}, "recovery_timeout"),
        ({"window_type": "sliding"}, "window_type"),
        ({"window_size": 0}, "window_size"),
        ({"window_size": 2.5}, "window_size"),
        ({"window_type": "time", "window_size": -1.0}, "window_size"),
        ({"window_type": "time", "window_size": math.nan}, "window_size"),
        ({"failure_threshold": 5, "window_size": 3}, "window_size"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"failure_rate_threshold": math.nan}, "failure_rate_threshold"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"slow_call_duration": 0}, "slow_call_duration"),
        ({"slow_call_duration": math.nan}, "slow_call_duration"),
        ({"slow_call_rate_threshold": 0}, "slow_call_rate_threshold"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"half_open_max_calls": -2}, "half_open_max_calls"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CircuitBreaker(**kwargs)
    assert names in str(info.value)
    with pytest.raises(ConfigurationError):
        BreakerRegistry(**kwargs)  # the registry validates at configuration time too


def test_registry_one_breaker_per_key() -> None:
    clock = FakeClock()
    reg = BreakerRegistry(failure_threshold=1, clock=clock, name="ignored")
    a = reg.get("openai/gpt-4.1-mini@https://api.openai.com/v1")
    assert reg.get("openai/gpt-4.1-mini@https://api.openai.com/v1") is a
    assert reg.get("openai/gpt-4.1-mini@http://127.0.0.1:1/v1") is not a
    assert a.name == "openai/gpt-4.1-mini@https://api.openai.com/v1"
    assert reg.peek("nope") is None
    assert len(reg.items()) == 2
    fail(a)
    assert a.state == "open"
    assert reg.get("openai/gpt-4.1-mini@http://127.0.0.1:1/v1").state == "closed"
    assert llmrelay.CircuitBreaker is CircuitBreaker
    assert llmrelay.BreakerRegistry is BreakerRegistry


def test_engine_default_breakers() -> None:
    engine = llmrelay.Engine()
    assert engine.breakers is not None
    assert engine.breakers.settings["failure_threshold"] == 5
    assert engine.breakers.settings["recovery_timeout"] == 30.0
    b = engine.breakers.get("k")
    assert (b.failure_threshold, b.recovery_timeout) == (5, 30.0)
    assert llmrelay.Engine(breakers=None).breakers is None
    assert llmrelay.Engine(breakers=False).breakers is None


# --------------------------------------------------------------------------- state machine


@dataclass
class Model:
    """The breaker as the seed and resilience4j describe it, in the simplest terms."""

    threshold: int
    recovery: float
    probes: int
    state: str = "closed"
    generation: int = 0
    consecutive: int = 0
    opened_at: float = 0.0
    in_flight: int = 0
    successes: int = 0
    events: list[tuple[str, str]] = field(default_factory=list)

    def go(self, new: str, now: float) -> None:
        old, self.state = self.state, new
        self.generation += 1
        self.consecutive = 0 if new != "open" else self.consecutive
        self.in_flight = self.successes = 0
        if new == "open":
            self.opened_at = now
        if old != new:
            self.events.append((old, new))

    def visible(self, now: float) -> str:
        if self.state == "open" and now - self.opened_at >= self.recovery:
            return "half-open"
        return self.state


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(0.0)
        self.permits: list[tuple[Permit, int, bool]] = []

    @initialize(
        threshold=st.integers(1, 4),
        recovery=st.sampled_from([1.0, 5.0, 30.0]),
        probes=st.integers(1, 3),
    )
    def setup(self, threshold: int, recovery: float, probes: int) -> None:
        self.breaker = CircuitBreaker(
            failure_threshold=threshold,
            recovery_timeout=recovery,
            half_open_max_calls=probes,
            clock=self.clock,
        )
        self.events: list[tuple[str, str]] = []
        self.breaker.listeners.append(lambda old, new: self.events.append((old, new)))
        self.model = Model(threshold, recovery, probes)

    @rule()
    def acquire(self) -> None:
        m, now = self.model, self.clock()
        expect_error = False
        if m.state == "open":
            if now - m.opened_at < m.recovery:
                expect_error = True
            else:
                m.go("half-open", now)
        if m.state == "half-open" and m.in_flight + m.successes >= m.probes:
            expect_error = True
        if expect_error:
            with pytest.raises(CircuitOpenError) as info:
                self.breaker.acquire()
            ra = info.value.retry_after
            assert ra is not None
            assert ra > 0
            if m.state == "open":
                assert ra == pytest.approx(m.recovery - (now - m.opened_at))
            return
        p = self.breaker.acquire()
        probe = m.state == "half-open"
        if probe:
            m.in_flight += 1
        assert p.probe is probe
        self.permits.append((p, m.generation, probe))

    def _take(self, index: int) -> tuple[Permit, int, bool]:
        return self.permits.pop(index % len(self.permits))

    @precondition(lambda self: bool(self.permits))
    @rule(index=st.integers(0, 100))
    def succeed(self, index: int) -> None:
        p, gen, probe = self._take(index)
        self.breaker.on_success(p)
        m = self.model
        if gen != m.generation:
            return
        if probe:
            m.in_flight -= 1
            m.successes += 1
            if m.successes >= m.probes:
                m.go("closed", self.clock())
        else:
            m.consecutive = 0

    @precondition(lambda self: bool(self.permits))
    @rule(index=st.integers(0, 100))
    def fail(self, index: int) -> None:
        p, gen, probe = self._take(index)
        self.breaker.on_failure(p, ServerError("500", status=500))
        m = self.model
        if gen != m.generation:
            return
        if probe:
            m.go("open", self.clock())
        else:
            m.consecutive += 1
            if m.consecutive >= m.threshold:
                m.go("open", self.clock())

    @precondition(lambda self: bool(self.permits))
    @rule(index=st.integers(0, 100), cancelled=st.booleans())
    def give_back(self, index: int, cancelled: bool) -> None:
        """A cancelled call, or a client error: no outcome."""
        p, gen, probe = self._take(index)
        if cancelled:
            self.breaker.release(p)
        else:
            self.breaker.on_failure(p, BadRequestError("400", status=400))
        m = self.model
        if probe and gen == m.generation:
            m.in_flight -= 1

    @rule(seconds=st.sampled_from([0.5, 1.0, 4.9, 5.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.go("closed", self.clock())

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "model"):
            return
        now = self.clock()
        assert self.breaker.state == self.model.visible(now)
        if self.model.state == "open":
            expected = max(0.0, self.model.recovery - (now - self.model.opened_at))
            assert self.breaker.retry_after == pytest.approx(expected)
        else:
            assert self.breaker.retry_after == 0.0
        assert self.events == self.model.events
        assert self.breaker.open_count == sum(1 for _, new in self.model.events if new == "open")


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBreakerStateMachine = BreakerMachine.TestCase


# --------------------------------------------------------------------------- concurrency


async def test_fifty_callers_at_a_half_open_breaker_through_the_engine(fake: FakeUpstream) -> None:
    clock = FakeClock()
    breakers = BreakerRegistry(
        failure_threshold=1, recovery_timeout=10, half_open_max_calls=3, clock=clock
    )
    engine = llmrelay.Engine(breakers=breakers, clock=clock)
    client = llmrelay.Client(engine=engine)
    kw: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url, "retries": 0}
    fake.push(Reply.error(500, "down"))
    with pytest.raises(llmrelay.ServerError):
        await client.achat("openai/gpt-4.1-mini", "break it", **kw)
    assert len(fake.requests) == 1
    clock.advance(10)
    # The probes answer slowly, so all 50 callers arrive while the probes are in flight.
    fake.push(*(Reply.ok("recovered", delay=0.02) for _ in range(3)))

    results = await asyncio.gather(
        *(client.achat("openai/gpt-4.1-mini", f"call {i}", **kw) for i in range(50)),
        return_exceptions=True,
    )
    ok_results = [r for r in results if isinstance(r, llmrelay.Response)]
    refused = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(ok_results) == 3, results
    assert len(refused) == 47, results
    assert len(fake.requests) == 1 + 3  # exactly the permitted probes reached the upstream
    assert all(r.text == "recovered" for r in ok_results)
    assert all(e.retry_after is not None and e.retry_after > 0 for e in refused)
    assert all(e.trace and e.trace[0].outcome == "skipped" for e in refused)
    key = next(k for k, _ in breakers.items())
    assert breakers.get(key).state == "closed"
    await client.aclose()


async def test_fifty_callers_through_breaker_call(fake: FakeUpstream) -> None:
    """The public CircuitBreaker.call around a real HTTP call to the fake."""
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, recovery_timeout=5, half_open_max_calls=2, clock=clock)
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=None))
    kw: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url, "retries": 0}
    fake.push(Reply.error(503, "unavailable"))
    with pytest.raises(llmrelay.ServerError):
        await b.call(client.achat, "openai/gpt-4.1-mini", "x", **kw)
    assert b.state == "open"
    clock.advance(5)
    fake.push(Reply.ok("a", delay=0.02), Reply.ok("b", delay=0.02))
    results = await asyncio.gather(
        *(b.call(client.achat, "openai/gpt-4.1-mini", "y", **kw) for _ in range(50)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, llmrelay.Response) for r in results) == 2
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 48
    assert len(fake.requests) == 1 + 2
    assert b.state == "closed"
    await client.aclose()


async def test_calls_through_a_closed_breaker_run_concurrently() -> None:
    """No lock is held around the call itself."""
    b = CircuitBreaker(clock=FakeClock())
    inside = 0
    peak = 0

    async def work() -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        inside -= 1

    await asyncio.gather(*(b.call(work) for _ in range(20)))
    assert peak == 20
