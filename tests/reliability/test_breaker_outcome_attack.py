"""Attack tests on the shared breaker's acquire and outcome round trips (real Redis): callers
cancelled at every await point, replies lost mid round trip, probes raced across instances and
event loops, a loop closed with an outcome in flight, the password in errors."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmrelay.errors import CircuitOpenError, StateStoreError
from llmrelay.reliability import breaker_shared
from llmrelay.reliability.breaker_shared import SharedCircuitBreaker, SharedPermit
from llmrelay.state import RedisStore
from llmrelay.state.scripts import CB_ACQUIRE, CB_OUTCOME

from .. import redis_services
from .redis_proxy import RedisProxy

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url

OUTCOME = CB_OUTCOME.sha.encode()
ACQUIRE = CB_ACQUIRE.sha.encode()


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[RedisProxy]:
    p = RedisProxy()
    await p.start()
    try:
        yield p
    finally:
        await p.aclose()


@pytest.fixture
async def proxied(proxy: RedisProxy, redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(proxy.url, prefix=redis_prefix, retry_interval=0)
    try:
        yield store
    finally:
        await store.aclose()


async def _field(store: RedisStore, b: SharedCircuitBreaker, name: str) -> int:
    return int(await store.call("hget", b._keys[0], name) or 0)


async def _probes_held(store: RedisStore, b: SharedCircuitBreaker) -> int:
    return int(await store.call("zcard", b._keys[1]))


async def _half_open(b: SharedCircuitBreaker) -> None:
    """Open ``b`` (threshold 1) and wait out its recovery (Redis ``TIME``: a real wait)."""
    permit = await b.aacquire()
    await b.aon_failure(permit, RuntimeError("boom"))
    await asyncio.sleep(b.recovery_timeout + 0.01)


# --------------------------------------------------------------------------- lost replies


@pytest.mark.services
async def test_a_failure_whose_reply_is_lost_is_counted_once(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy
) -> None:
    # The outcome script ran on Redis, then the connection dropped before its answer (a
    # restart, a load balancer, a flaky link): redis-py sends the command again on a fresh
    # connection, and the failure is counted twice -- one failing call opens a breaker
    # configured for two, for every process.
    b = SharedCircuitBreaker("dep:lost", proxied, failure_threshold=2, recovery_timeout=30)
    permit = await b.aacquire()
    proxy.lose_reply_to = OUTCOME
    await b.aon_failure(permit, RuntimeError("boom"))
    assert proxy.lost == 1
    assert await _field(redis_store, b, "f") == 1, "one failure counted twice"
    assert await b.refresh() == "closed"


@pytest.mark.services
async def test_a_probe_success_whose_reply_is_lost_is_counted_once(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy
) -> None:
    # Two probes: one success sent again after a lost reply counts as both, closing the
    # breaker while the second probe has not finished.
    b = SharedCircuitBreaker(
        "dep:lost-probe",
        proxied,
        failure_threshold=1,
        recovery_timeout=0.02,
        half_open_max_calls=2,
        probe_lease=30.0,
    )
    await _half_open(b)
    first, second = await b.aacquire(), await b.aacquire()
    assert first.probe
    assert second.probe
    proxy.lose_reply_to = OUTCOME
    await b.aon_success(first)
    assert proxy.lost == 1
    assert await b.refresh() == "half-open", "one probe's success closed a two-probe breaker"
    await b.aon_failure(second, RuntimeError("still down"))
    assert await b.refresh() == "open"


@pytest.mark.services
async def test_a_probe_acquire_whose_reply_is_lost_still_gets_the_probe(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy
) -> None:
    # Half-open, one probe: the acquire ran on Redis (the caller's token holds the probe) and
    # its answer was lost; redis-py sends it again with the same token. Refused as if another
    # caller held the probe, the caller gets CircuitOpenError, no probe runs, and every caller
    # is refused until the lease (30 s here) runs out: the breaker stays locked half-open.
    b = SharedCircuitBreaker(
        "dep:lost-acquire",
        proxied,
        failure_threshold=1,
        recovery_timeout=0.02,
        probe_lease=30.0,
    )
    await _half_open(b)
    proxy.lose_reply_to = ACQUIRE
    permit = await b.aacquire()
    assert proxy.lost == 1
    assert permit.probe
    assert await _probes_held(redis_store, b) == 1  # one probe, held once
    with pytest.raises(CircuitOpenError):
        await b.aacquire()  # another caller: the probe is taken
    await b.aon_success(permit)
    assert await b.refresh() == "closed"
    assert await _probes_held(redis_store, b) == 0


@pytest.mark.services
async def test_a_probe_token_asking_again_is_readmitted_and_no_other_is(
    redis_store: RedisStore,
) -> None:
    # The script itself: the token that holds the live probe is admitted again (its lease
    # renewed), any other token is refused; once the probe's outcome is in, the token is
    # nobody's and a new one gets the next probe of the generation.
    b = SharedCircuitBreaker(
        "dep:reacquire", redis_store, failure_threshold=1, recovery_timeout=0.02, probe_lease=30.0
    )
    await _half_open(b)

    async def admitted(token: str) -> int:
        return int((await redis_store.eval(CB_ACQUIRE, b._keys, [*b._args, token]))[4])

    assert await admitted("t1") == 2
    assert await admitted("t1") == 2
    assert await admitted("t2") == 0
    assert await _probes_held(redis_store, b) == 1
    await b.arelease(SharedPermit(await _field(redis_store, b, "gen"), True, 0.0, token="t1"))
    assert await _probes_held(redis_store, b) == 0
    assert await admitted("t2") == 2
    assert await admitted("t1") == 0


# --------------------------------------------------------------------------- Redis fails


@pytest.mark.services
async def test_a_cancelled_failure_is_kept_locally_when_redis_fails(
    proxied: RedisStore, proxy: RedisProxy
) -> None:
    # The failure's round trip never reaches Redis and its caller is cancelled meanwhile: the
    # background outcome fails -- the failure must count in this process's own breaker, as it
    # does for a caller that waits (else a process cut off from Redis never opens).
    b = SharedCircuitBreaker("dep:local", proxied, failure_threshold=1, recovery_timeout=30)
    permit = await b.aacquire()
    proxy.hold = OUTCOME
    task = asyncio.ensure_future(b.aon_failure(permit, RuntimeError("boom")))
    await asyncio.wait_for(proxy.held.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    proxy.refuse = True
    proxy.release.set()
    await b.flush()
    assert not b._tasks
    assert b.state == "open", "a failure sent in the background was lost when Redis failed"


# --------------------------------------------------------------------------- cancel sweeps


async def _cancel_after(coro: Any, n: int) -> tuple[bool, Any]:
    """Run ``coro`` as a task, cancel it after ``n`` loop iterations; (finished, result)."""
    task = asyncio.ensure_future(coro)
    for _ in range(n):
        await asyncio.sleep(0)
    task.cancel()
    try:
        return True, await task
    except asyncio.CancelledError:
        return False, None


@pytest.mark.services
async def test_a_probe_acquire_cancelled_at_any_point_never_holds_the_probe(
    redis_store: RedisStore,
) -> None:
    b = SharedCircuitBreaker(
        "dep:sweep-acquire",
        redis_store,
        failure_threshold=1,
        recovery_timeout=0.02,
        probe_lease=30.0,
    )
    await _half_open(b)
    finished = 0
    for n in range(40):
        done, permit = await _cancel_after(b.aacquire(), n)
        if done:  # the acquire won the race: its caller has the probe and gives it back
            finished += 1
            assert permit.probe
            await b.arelease(permit)
        await b.flush()
        assert not b._tasks, f"tasks left after a cancel at {n}"
        assert not b._renewals, f"renewers left after a cancel at {n}"
        assert await _probes_held(redis_store, b) == 0, f"probe held after a cancel at {n}"
    assert 0 < finished < 40  # the sweep covered cancels before, during and after the trip


@pytest.mark.services
async def test_a_failure_cancelled_at_any_point_counts_exactly_once(
    redis_store: RedisStore,
) -> None:
    b = SharedCircuitBreaker("dep:sweep-fail", redis_store, failure_threshold=1000)
    sent = 0
    for n in range(30):
        permit = await b.aacquire()
        await _cancel_after(b.aon_failure(permit, RuntimeError("boom")), n)
        sent += n > 0  # cancelled before it started (n == 0): the outcome was never sent
        await b.flush()
        assert not b._tasks
        assert await _field(redis_store, b, "f") == sent, f"after a cancel at {n}"


# --------------------------------------------------------------------------- probe bounds


@pytest.mark.services
async def test_probes_racing_on_two_loops_never_exceed_the_limit(
    redis_url: str, redis_prefix: str, redis_store: RedisStore
) -> None:
    first = SharedCircuitBreaker(
        "dep:race", redis_store, failure_threshold=1, recovery_timeout=0.02, probe_lease=30.0
    )
    await _half_open(first)
    admitted: list[int] = []

    def racer() -> None:
        async def run() -> None:
            store = RedisStore(redis_url, prefix=redis_prefix)
            b = SharedCircuitBreaker(
                "dep:race", store, half_open_max_calls=3, recovery_timeout=0.02, probe_lease=30
            )

            async def one(i: int) -> SharedPermit | None:
                try:
                    p = await b.aacquire()
                except CircuitOpenError:
                    return None
                assert isinstance(p, SharedPermit)
                return p

            got = await asyncio.gather(*(one(i) for i in range(30)))
            admitted.append(sum(p is not None and p.probe for p in got))
            await store.aclose()

        asyncio.run(run())

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(admitted) == 3, admitted
    assert await _probes_held(redis_store, first) == 3


@pytest.mark.services
async def test_processes_with_the_same_pid_never_share_probe_tokens(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Containers: every replica is pid 1 and builds its breakers in the same order. Probe
    # tokens made of (pid, breaker number, call number) are then the same in two replicas:
    # the second replica's probe re-adds the first one's token and is admitted past the limit
    # (and either's release frees the other's lease).
    settings: dict[str, Any] = {
        "failure_threshold": 1,
        "recovery_timeout": 0.02,
        "half_open_max_calls": 2,
        "probe_lease": 30.0,
    }
    await _half_open(SharedCircuitBreaker("dep:pid1", redis_store, **settings))

    def replica() -> SharedCircuitBreaker:
        monkeypatch.setattr(breaker_shared, "_ids", itertools.count())  # a fresh process
        return SharedCircuitBreaker("dep:pid1", redis_store, **settings)

    a, b, c = replica(), replica(), replica()
    probes = 0
    for r in (a, b, c):
        try:
            probes += (await r.aacquire()).probe
        except CircuitOpenError:
            pass
    assert probes == 2, f"{probes} probes admitted on a breaker allowing 2"


# --------------------------------------------------------------------------- loop closed


@pytest.mark.services
def test_a_loop_closed_with_an_outcome_in_flight_leaves_no_pending_task(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")
    store = RedisStore(redis_url, prefix=redis_prefix)
    breakers: list[SharedCircuitBreaker] = []

    async def main(n: int) -> None:
        b = SharedCircuitBreaker(
            f"dep:closing{n}", store, failure_threshold=1, recovery_timeout=0.02
        )
        breakers.append(b)
        await _half_open(b)
        permit = await b.aacquire()
        await _cancel_after(b.aon_failure(permit, RuntimeError("boom")), n)
        acquire = asyncio.ensure_future(b.aacquire())  # a probe acquire cancelled as well
        await asyncio.sleep(0)
        acquire.cancel()

    for n in (1, 2, 3, 5):
        asyncio.run(main(n))  # returns with the background outcome still in flight
    gc.collect()
    assert "destroyed but it is pending" not in caplog.text
    assert "never retrieved" not in caplog.text
    assert all(not b._tasks for b in breakers)


# --------------------------------------------------------------------------- secrets


@pytest.mark.services
async def test_the_password_appears_in_no_error_repr_or_log(
    proxy: RedisProxy, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-pw-canary"
    store = RedisStore(
        f"redis://user:{secret}@127.0.0.1:{proxy.port}/0", prefix=redis_prefix, retry_interval=0
    )
    proxy.refuse = True
    b = SharedCircuitBreaker("dep:secret", store, failure_threshold=1, recovery_timeout=30)
    seen: list[str] = [repr(b), repr(store), str(b.state)]
    try:
        await store.ping()
    except StateStoreError as exc:
        seen += [str(exc), repr(exc), repr(exc.__cause__)]
    permit = await b.aacquire()  # Redis away: the local breaker admits
    await b.aon_failure(permit, RuntimeError("boom"))
    with pytest.raises(CircuitOpenError) as info:
        await b.aacquire()
    seen += [str(info.value), repr(b), caplog.text]
    await store.aclose()
    assert not [s for s in seen if secret in s]


@pytest.mark.services
async def test_flush_returns_once_a_cancelled_callers_outcome_is_applied(
    redis_store: RedisStore,
) -> None:
    # ``flush`` skipped a background outcome already answered whose callback had not run yet:
    # it returned with the view still closed (and the task still counted).
    b = SharedCircuitBreaker("dep:flush", redis_store, failure_threshold=1, recovery_timeout=30)
    permit = await b.aacquire()
    done, _ = await _cancel_after(b.aon_failure(permit, RuntimeError("boom")), 1)
    assert not done
    (answer,) = b._tasks
    while not answer.done():
        await asyncio.sleep(0)
    await b.flush()
    assert not b._tasks
    assert b.state == "open", "flush returned before the background outcome was applied"
