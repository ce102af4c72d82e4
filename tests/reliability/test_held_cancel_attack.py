"""Attack tests: state left held on Redis by a caller cancelled at the wrong moment -- while a
release, a budget settle or a breaker's probe acquire waits on its round trip."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmrelay.core.engine import CallOptions
from llmrelay.core.layers import CallContext
from llmrelay.errors import CircuitOpenError, RateLimitedError
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.breaker_shared import SharedCircuitBreaker
from llmrelay.reliability.budgets import BudgetLimit, Budgets, Reservation
from llmrelay.reliability.budgets_ledger import RedisLedger
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.state import RedisStore
from llmrelay.types import ChatRequest, Message, build_params

from .. import redis_services
from .slot_again import slot_free_again

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url


def _stall_once(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Event, Any]:
    """The next ``eval_many`` waits (not sent yet: a pooled connection is awaited) until
    ``go`` is set; later ones go through."""
    real = store.eval_many
    stuck, go = asyncio.Event(), asyncio.Event()
    calls = [0]

    async def stalls(batch: Any, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            stuck.set()
            await go.wait()
        return await real(batch, **kw)

    monkeypatch.setattr(store, "eval_many", stalls)
    return stuck, go, real


@pytest.mark.services
async def test_a_release_cancelled_during_its_round_trip_frees_the_concurrency_slot(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The call is over and its permit is being released (the ``finally`` of a stream, the
    # success path of ``run``) when the caller is cancelled (a client disconnects, a second
    # cancel of a task already cleaning up): the release's round trip never runs, and the
    # only slot of the deployment stays held for the 900 s lease.
    dep = make_deployment("openai", "gpt-4o-mini", api_key="sk-test", base_url="http://x/v1")
    limiter = RateLimiter({"openai/gpt-4o-mini": {"concurrent": 1}}, store=redis_store)
    req = ChatRequest([Message("user", "hi")], build_params({"max_tokens": 10}))
    ctx = CallContext(CallOptions(wait_for_rate_limit=False), "t", 0.0)
    permit = await limiter.acquire(dep, req, ctx)
    assert permit is not None
    assert permit.enforced
    stuck, go, real = _stall_once(redis_store, monkeypatch)
    task = asyncio.ensure_future(limiter.release(permit, None, None, None))
    await asyncio.wait_for(stuck.wait(), 5)
    task.cancel()
    go.set()  # (what was sent completes; what was cancelled before it was sent does not)
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.setattr(redis_store, "eval_many", real)
    await slot_free_again(
        limiter,
        dep,
        lambda: req,
        lambda: ctx,
        "a release cancelled during its round trip left the only slot held",
    )


@pytest.mark.services
async def test_a_settle_cancelled_during_its_first_group_releases_every_reservation(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call that fell back holds different amounts on its keys: settle releases them in one
    # ledger operation per amount. Cancelled while the first one is in flight, it completes
    # that one (``_ledger_op``) and raises -- the others are never sent, and ``held`` is
    # already cleared: those dollars stay reserved in Redis for good (a held reservation
    # never expires), refusing the budget's later calls.
    ledger = RedisLedger(redis_store)
    budgets = Budgets([BudgetLimit(limit_usd=10.0, period="total")], ledger=ledger)
    assert await ledger.reserve([("k1", 10.0)], 1.0) is None
    assert await ledger.reserve([("k2", 10.0)], 2.0) is None
    res = Reservation(["k1", "k2"], 2.0, held={"k1": 1.0, "k2": 2.0}, current=["k2"])
    ctx = CallContext(CallOptions(), "t", 0.0)
    stuck, go, real = _stall_once(redis_store, monkeypatch)
    task = asyncio.ensure_future(budgets.settle(res, ctx))
    await asyncio.wait_for(stuck.wait(), 5)
    task.cancel()
    go.set()  # (what was sent completes; what was cancelled before it was sent does not)
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.setattr(redis_store, "eval_many", real)
    for _ in range(100):
        held = [(await ledger.spent(k))[1] for k in ("k1", "k2")]
        if held == [0.0, 0.0]:
            break
        await asyncio.sleep(0.01)
    assert held == [0.0, 0.0], f"reserved after a cancelled settle: {held}"


@pytest.mark.services
async def test_a_probe_acquire_cancelled_during_its_round_trip_gives_the_probe_back(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Half-open: Redis grants the one probe to a caller whose acquire is then cancelled (the
    # answer never reaches it): nobody runs the probe, nobody renews or releases it, and the
    # breaker refuses every caller until ``probe_lease`` ends.
    now = [1000.0]
    b = SharedCircuitBreaker(
        "dep:probe-attack",
        redis_store,
        failure_threshold=1,
        recovery_timeout=0.05,
        probe_lease=30.0,
        clock=lambda: now[0],
    )
    permit = await b.aacquire()
    await b.aon_failure(permit, RuntimeError("boom"))  # opens (one failure)
    await asyncio.sleep(0.1)  # Redis TIME: recovery_timeout has passed, half-open now
    real = redis_store.eval_many
    ran, go = asyncio.Event(), asyncio.Event()

    async def answer_late(batch: Any, **kw: Any) -> Any:
        out = await real(batch, **kw)  # Redis granted the probe ...
        ran.set()
        await go.wait()  # ... and the caller is cancelled before the answer arrives
        return out

    monkeypatch.setattr(redis_store, "eval_many", answer_late)
    task = asyncio.ensure_future(b.aacquire())
    await asyncio.wait_for(ran.wait(), 5)
    task.cancel()
    go.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.setattr(redis_store, "eval_many", real)
    for _ in range(100):
        try:
            probe = await b.aacquire()
        except CircuitOpenError:
            await asyncio.sleep(0.01)
            continue
        assert probe.probe
        await b.arelease(probe)
        break
    else:
        pytest.fail("a cancelled probe acquire holds the probe until probe_lease")


async def _outcome_stalls_then_call_is_cancelled(
    fake: Any, redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    # A shared breaker that saw a failure sends the next success to Redis (``aon_success``):
    # a caller cancelled while that round trip waits (a client disconnecting as its answer
    # arrives) must still give back its rate-limit slot -- the limiter's release comes after
    # the breaker's outcome, on the success path of ``run`` and in the ``finally`` of a stream.
    import llmrelay
    from llmrelay.core.engine import Engine
    from llmrelay.core.retry import RetryPolicy
    from llmrelay.reliability.breaker_shared import SharedBreakerRegistry
    from llmrelay.state.scripts import CB_OUTCOME
    from llmrelay.testing.fake import Reply

    from ..conftest import CANARY_KEY

    limiter = RateLimiter({"openai/gpt-4o-mini": {"concurrent": 1}}, store=redis_store)
    shared = SharedBreakerRegistry(redis_store, failure_threshold=5, recovery_timeout=30)
    engine = Engine(limiter=limiter, breakers=shared, retry=RetryPolicy(max_retries=0))
    client = llmrelay.Client(engine=engine)
    kw: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    try:
        fake.push(Reply.error(500))
        with pytest.raises(llmrelay.errors.APIError):
            await client.achat("openai/gpt-4o-mini", "fails", **kw)  # the breaker saw one
        real = redis_store.eval_many
        stuck, go = asyncio.Event(), asyncio.Event()

        async def outcome_waits(batch: Any, **kw: Any) -> Any:
            if batch[0][0] is CB_OUTCOME and not stuck.is_set():
                stuck.set()
                await go.wait()
            return await real(batch, **kw)

        monkeypatch.setattr(redis_store, "eval_many", outcome_waits)
        fake.push(Reply.ok("answer"))

        async def call() -> None:
            if stream:
                async for _ in client.astream("openai/gpt-4o-mini", "hi", **kw):
                    pass
            else:
                await client.achat("openai/gpt-4o-mini", "hi", **kw)

        task = asyncio.ensure_future(call())
        await asyncio.wait_for(stuck.wait(), 5)
        task.cancel()
        go.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        monkeypatch.setattr(redis_store, "eval_many", real)
        fake.push(*[Reply.ok("next")] * 100)
        for _ in range(100):
            try:
                r = await client.achat(
                    "openai/gpt-4o-mini", "next", wait_for_rate_limit=False, **kw
                )
            except RateLimitedError:
                await asyncio.sleep(0.01)
                continue
            assert r.text == "next"
            break
        else:
            pytest.fail("a call cancelled during its breaker outcome left its slot held")
    finally:
        await client.aclose()


@pytest.mark.services
async def test_a_call_cancelled_during_its_breaker_success_frees_its_slot(
    fake: Any, redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _outcome_stalls_then_call_is_cancelled(fake, redis_store, monkeypatch, False)


@pytest.mark.services
async def test_a_stream_cancelled_during_its_breaker_outcome_frees_its_slot(
    fake: Any, redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _outcome_stalls_then_call_is_cancelled(fake, redis_store, monkeypatch, True)


@pytest.mark.services
async def test_a_probe_outcome_cancelled_during_its_round_trip_is_still_recorded(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe succeeded and its caller is cancelled while the outcome waits to be sent (a
    # client disconnects as the answer is done): the outcome must still reach Redis -- else
    # the probe stays held until ``probe_lease`` ends and every caller is refused.
    now = [1000.0]
    b = SharedCircuitBreaker(
        "dep:outcome-attack",
        redis_store,
        failure_threshold=1,
        recovery_timeout=0.05,
        probe_lease=30.0,
        clock=lambda: now[0],
    )
    permit = await b.aacquire()
    await b.aon_failure(permit, RuntimeError("boom"))  # opens (one failure)
    await asyncio.sleep(0.1)  # Redis TIME: recovery_timeout has passed, half-open now
    probe = await b.aacquire()
    assert probe.probe
    stuck, go, _ = _stall_once(redis_store, monkeypatch)
    task = asyncio.ensure_future(b.aon_success(probe))
    await asyncio.wait_for(stuck.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    go.set()
    for _ in range(100):
        try:
            after = await b.aacquire()
        except CircuitOpenError:
            await asyncio.sleep(0.01)
            continue
        assert not after.probe  # closed by the probe's success
        await b.arelease(after)
        break
    else:
        pytest.fail("a probe whose outcome was cancelled in flight holds the probe")
