"""Circuit breakers whose state lives in Redis, so every process sees one breaker per deployment.

``SharedBreakerRegistry(store, failure_threshold=5, recovery_timeout=30)`` is a drop-in for
:class:`~llmrelay.reliability.breaker.BreakerRegistry` (``Engine(breakers=...)``); its breakers are
:class:`~llmrelay.reliability.breaker.CircuitBreaker` subclasses with the same interface.

The state machine is seed 004's (``failure_threshold`` consecutive failures open the breaker;
after ``recovery_timeout`` at most ``half_open_max_calls`` probes run; all succeeding close it,
any failing re-opens it; results from an earlier generation are ignored). Every transition is a
Lua script on Redis (``scripts.py``) timed by Redis ``TIME``. Half-open probes hold a lease
(``probe_lease`` seconds, 10 by default) that the live process renews every third of it while
the probe runs, however long it runs; a process that dies (SIGKILL, a lost host) stops renewing,
so its lease ends within ``probe_lease`` and the next caller gets the probe.

**Sync and async.** The engine's breaker calls are synchronous and Redis is not, so each breaker
offers both:

- ``aacquire()``, ``aon_success()``, ``aon_failure()``, ``arelease()``: one Redis round trip
  each (a success on a breaker with no recorded failures costs none), authoritative -- the
  engine uses them when present.
- ``acquire()``, ``on_success()``, ``on_failure()``, ``release()``: decide from this process's
  **view** of the shared state (refreshed by every Redis answer, and in the background when
  older than ``sync_interval``) and send outcomes to Redis in background tasks
  (:meth:`SharedBreakerRegistry.flush` waits for them). Another process's decision reaches this
  one within ``sync_interval``; probes admitted this way are limited per process.

**When Redis fails**, each breaker falls back to its own in-process state machine (the inherited
``CircuitBreaker`` one), so a process stays protected on its own; when Redis answers again the
shared state is the truth again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..errors import CircuitOpenError, ConfigurationError, StateStoreError
from ..state.base import check_positive, hash_tag
from ..state.redis_store import RedisStore, process_tag
from ..state.scripts import CB_ACQUIRE, CB_OUTCOME, CB_READ, CB_RENEW, CB_RESET
from .breaker import BreakerRegistry, CircuitBreaker, Permit, State, counts_as_failure

__all__ = ["SharedBreakerRegistry", "SharedCircuitBreaker", "SharedPermit"]

_NAMES: tuple[State, State, State] = ("closed", "open", "half-open")
_ids = itertools.count()


@dataclass(slots=True, weakref_slot=True)
class SharedPermit(Permit):
    """A permit of the shared state (``generation`` is the Redis generation)."""

    token: str = ""
    fails_seen: int = 0
    #: The task renewing a probe's lease while the probe runs (cancelled with its outcome).
    renewer: asyncio.Task[None] | None = None


class SharedCircuitBreaker(CircuitBreaker):
    """One deployment's breaker, shared through Redis (see the module docs)."""

    asynchronous = True  # acquire and outcomes are store round trips: the engine awaits them

    def __init__(
        self,
        key: str,
        store: RedisStore,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 60,
        half_open_max_calls: int = 1,
        probe_lease: float = 10.0,
        sync_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        is_failure: Callable[[BaseException], bool] = counts_as_failure,
        name: str = "",
    ) -> None:
        super().__init__(
            failure_threshold,
            recovery_timeout,
            half_open_max_calls=half_open_max_calls,
            clock=clock,
            is_failure=is_failure,
            name=name or key,
        )
        self.key = key
        self.store = store
        self.probe_lease = probe_lease
        self.sync_interval = sync_interval
        base = f"{store.prefix}cb:{{{hash_tag(key)}}}"
        self._keys = [base, base + ":p"]
        self._outcome_keys = [*self._keys, base + ":o"]
        rec_ms = max(1, round(self.recovery_timeout * 1000))
        ttl_ms = max(86_400_000, 2 * rec_ms)
        self._args: list[object] = [
            failure_threshold,
            rec_ms,
            half_open_max_calls,
            max(1, round(probe_lease * 1000)),
            ttl_ms,
        ]
        # The view of the shared state: (state 0/1/2, generation, open until, failures).
        self._v_state = 0
        self._v_gen = 0
        self._v_open_until = 0.0
        self._v_fails = 0
        self._v_at = -float("inf")
        self._v_epoch: object = None
        self._v_version = -1
        self._v_lock = threading.Lock()
        self._local_probe_gen = -1
        self._local_probes = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewals: set[asyncio.Task[None]] = set()
        #: False after a Redis operation failed, until one succeeds: the local state rules.
        self._remote_ok = True
        # Random: replicas in containers share their pid and build their breakers in the same
        # order, and a token another process also uses lets both probes in as one (and
        # process_tag(): workers forked after the breaker was made share this prefix).
        self._token_prefix = f"{os.urandom(6).hex()}-{next(_ids)}-"
        self._tokens = itertools.count()

    # ------------------------------------------------------------------ the view

    def _view_state(self, now: float) -> State:
        if self._v_state == 1:
            return "open" if now < self._v_open_until else "half-open"
        return _NAMES[self._v_state]

    @property
    def _remote(self) -> bool:
        return self._remote_ok and self.store.available

    def _apply(self, snap: list[Any], now: float) -> None:
        self._remote_ok = True
        st, gen, rem, fails = int(snap[0]), int(snap[1]), float(snap[2]) / 1000, int(snap[3])
        epoch, version = snap[5], int(snap[6])
        with self._v_lock:
            if epoch == self._v_epoch and version < self._v_version:
                return  # an older snapshot that arrived late
            before = self._view_state(now)
            self._v_epoch, self._v_version = epoch, version
            self._v_state, self._v_gen, self._v_fails, self._v_at = st, gen, fails, now
            self._v_open_until = now + rem if st == 1 else 0.0
            after = self._view_state(now)
        if before != after:
            if after == "open":
                self.open_count += 1
            for fn in list(self.listeners):
                fn(before, after)

    @property
    def shared_state(self) -> State:
        """The state as this process last saw it in Redis."""
        return self._view_state(self.clock())

    @property
    def state(self) -> State:
        if not self._remote:
            return super().state
        return self._view_state(self.clock())

    @property
    def retry_after(self) -> float:
        if not self._remote:
            return super().retry_after
        if self._v_state != 1:
            return 0.0
        return max(0.0, self._v_open_until - self.clock())

    # ------------------------------------------------------------------ async (authoritative)

    async def refresh(self) -> State:
        """Read the shared state now; returns it (the local state if Redis fails)."""
        try:
            snap = await self.store.eval(CB_READ, self._keys, self._args)
        except StateStoreError:
            self._remote_ok = False
            return super().state
        self._apply(snap, self.clock())
        return self._view_state(self.clock())

    async def aacquire(self) -> Permit:
        """Admit one call or raise ``CircuitOpenError`` (one round trip)."""
        now = self.clock()
        token = process_tag() + self._token_prefix + str(next(self._tokens))
        answer = asyncio.ensure_future(
            self.store.eval(CB_ACQUIRE, self._keys, [*self._args, token])
        )
        try:
            snap = await asyncio.shield(answer)
        except asyncio.CancelledError:
            # Redis may grant this caller the probe: give it back (else no one probes until
            # ``probe_lease`` ends).
            self._spawn(self._give_back_probe(answer, token))
            raise
        except StateStoreError:
            self._remote_ok = False
            return super().acquire()
        self._apply(snap, now)
        admitted, gen, fails = int(snap[4]), int(snap[1]), int(snap[3])
        if admitted == 1:
            return SharedPermit(gen, False, now, token="", fails_seen=fails)
        if admitted == 2:
            permit = SharedPermit(gen, True, now, token=token, fails_seen=fails)
            task = asyncio.get_running_loop().create_task(self._renew(weakref.ref(permit), token))
            self._renewals.add(task)
            task.add_done_callback(self._renewals.discard)
            permit.renewer = task
            return permit
        raise self._open_error(int(snap[0]), float(snap[2]) / 1000)

    async def _give_back_probe(self, answer: asyncio.Future[Any], token: str) -> None:
        """Release the probe Redis granted to a caller cancelled before it got the answer."""
        try:
            snap = await answer
        except StateStoreError:
            return
        if int(snap[4]) == 2:
            permit = SharedPermit(int(snap[1]), True, self.clock(), token=token)
            await self._outcome("r", permit, None)

    async def _renew(self, ref: weakref.ref[SharedPermit], token: str) -> None:
        """Keep a live probe's lease: every third of ``probe_lease`` while the probe runs. A
        process that dies stops renewing, and its lease ends within ``probe_lease``."""
        args = [token, self._args[3]]
        while True:
            await asyncio.sleep(self.probe_lease / 3)
            if ref() is None:
                return  # the permit was dropped without an outcome: let the lease end
            try:
                if not await self.store.eval(CB_RENEW, self._keys, args):
                    return
            except StateStoreError:
                continue  # try again next time; the lease runs out if Redis stays away

    def _open_error(self, st: int, retry_after: float) -> CircuitOpenError:
        if st == 1:
            return CircuitOpenError(
                f"circuit breaker {self.name} is open (shared state)", retry_after=retry_after
            )
        return CircuitOpenError(
            f"circuit breaker {self.name} is half-open and its {self.half_open_max_calls} probe "
            "call(s) are taken (shared state)",
            retry_after=retry_after,
        )

    async def aon_success(self, permit: Permit) -> None:
        if not isinstance(permit, SharedPermit):
            super().on_success(permit)
        elif permit.probe or permit.fails_seen or self._v_fails:
            await self._outcome("s", permit, None)

    async def aon_failure(self, permit: Permit, exc: BaseException) -> None:
        if not isinstance(permit, SharedPermit):
            super().on_failure(permit, exc)
        elif not self.is_failure(exc):
            await self.arelease(permit)
        else:
            await self._outcome("f", permit, exc)

    async def arelease(self, permit: Permit) -> None:
        if not isinstance(permit, SharedPermit):
            super().release(permit)
        elif permit.probe:
            await self._outcome("r", permit, None)

    async def _outcome(self, kind: str, permit: SharedPermit, exc: BaseException | None) -> None:
        if permit.renewer is not None:
            permit.renewer.cancel()
            permit.renewer = None
        if permit.probe and not permit.token and kind != "s":
            with self._v_lock:
                self._local_probes = max(0, self._local_probes - 1)
        oid = process_tag() + self._token_prefix + str(next(self._tokens))  # applied once
        args = [*self._args, kind, permit.generation, "1" if permit.probe else "0", permit.token]
        call = self.store.eval(CB_OUTCOME, self._outcome_keys, [*args, oid])
        answer = asyncio.ensure_future(call)
        try:
            snap = await asyncio.shield(answer)
        except asyncio.CancelledError:
            # The outcome is recorded all the same, in the background: a probe's would else
            # stay held until ``probe_lease`` ends (its renewer is stopped), refusing everyone.
            self._tasks.add(answer)
            answer.add_done_callback(lambda done: self._outcome_done(done, exc))
            raise
        except StateStoreError:
            self._redis_failed(exc)
            return
        self._apply(snap, self.clock())

    def _redis_failed(self, exc: BaseException | None) -> None:
        """An outcome could not reach Redis: a failure counts in this process's own breaker,
        keeping the process protected while Redis is away."""
        self._remote_ok = False
        if exc is not None:
            try:
                local = super().acquire()
            except CircuitOpenError:
                return
            super().on_failure(local, exc)

    def _outcome_done(self, answer: asyncio.Task[Any], exc: BaseException | None) -> None:
        """An outcome whose caller was cancelled has reached Redis (or failed)."""
        self._tasks.discard(answer)
        if answer.cancelled():
            return
        if answer.exception() is not None:
            self._redis_failed(exc)
            return
        self._apply(answer.result(), self.clock())

    async def areset(self) -> None:
        """Close the breaker for every process."""
        self._reset_local()
        await self._remote_reset()

    def _reset_local(self) -> None:
        super().reset()
        with self._v_lock:
            self._v_state, self._v_fails, self._v_open_until = 0, 0, 0.0

    async def _remote_reset(self) -> None:
        try:
            snap = await self.store.eval(CB_RESET, self._keys, self._args)
        except StateStoreError:
            self._remote_ok = False
            return
        self._apply(snap, self.clock())

    # ------------------------------------------------------------------ sync (the view)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            from .._sync import run_sync

            run_sync(coro)
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def acquire(self) -> Permit:
        now = self.clock()
        if now - self._v_at >= self.sync_interval and self.store.available:
            self._v_at = now  # one refresh per interval
            self._spawn(self.refresh())
        if not self._remote:
            return super().acquire()
        with self._v_lock:
            st, gen, fails = self._v_state, self._v_gen, self._v_fails
            if st == 0:
                return SharedPermit(gen, False, now, token="", fails_seen=fails)
            if st == 1 and now < self._v_open_until:
                raise self._open_error(1, self._v_open_until - now)
            if self._local_probe_gen != gen:
                self._local_probe_gen, self._local_probes = gen, 0
            if self._local_probes >= self.half_open_max_calls:
                raise self._open_error(2, min(1.0, self.recovery_timeout))
            self._local_probes += 1
            return SharedPermit(gen, True, now, token="", fails_seen=fails)

    def on_success(self, permit: Permit) -> None:
        if not isinstance(permit, SharedPermit):
            super().on_success(permit)
        elif permit.probe or permit.fails_seen or self._v_fails:
            self._spawn(self._outcome("s", permit, None))

    def on_failure(self, permit: Permit, exc: BaseException) -> None:
        if not isinstance(permit, SharedPermit):
            super().on_failure(permit, exc)
        elif not self.is_failure(exc):
            self.release(permit)
        else:
            self._spawn(self._outcome("f", permit, exc))

    def release(self, permit: Permit) -> None:
        if not isinstance(permit, SharedPermit):
            super().release(permit)
        elif permit.probe:
            self._spawn(self._outcome("r", permit, None))

    def reset(self) -> None:
        """Close the breaker for every process (in the background inside an event loop)."""
        self._reset_local()
        self._spawn(self._remote_reset())

    async def flush(self) -> None:
        """Wait for the outcomes sent in the background from this event loop."""
        loop = asyncio.get_running_loop()
        while True:
            # Done tasks too: an answered outcome is applied by its callback, maybe not run yet.
            pending = [t for t in self._tasks if t.get_loop() is loop]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    def __repr__(self) -> str:
        return f"SharedCircuitBreaker({self.name}, state={self.state!r})"


_SHARED_SETTINGS = frozenset(
    {
        "failure_threshold",
        "recovery_timeout",
        "half_open_max_calls",
        "probe_lease",
        "sync_interval",
        "clock",
        "is_failure",
    }
)


class SharedBreakerRegistry(BreakerRegistry):
    """One shared breaker per deployment key (a drop-in for ``BreakerRegistry``)."""

    def __init__(self, store: RedisStore, **settings: Any) -> None:
        if not isinstance(store, RedisStore):
            raise ConfigurationError(
                f"shared breakers need a Redis store, not {type(store).__name__}; use "
                "BreakerRegistry for breakers in one process"
            )
        settings.pop("name", None)
        unknown = set(settings) - _SHARED_SETTINGS
        if unknown:
            raise ConfigurationError(
                f"shared breakers do not support {', '.join(sorted(unknown))}; they count "
                "consecutive failures (failure_threshold, recovery_timeout, half_open_max_calls)"
            )
        for n in ("probe_lease", "sync_interval"):
            check_positive(settings.get(n, 1.0), n)
        local = {k: v for k, v in settings.items() if k not in ("probe_lease", "sync_interval")}
        super().__init__(**local)  # validates the common settings now
        self.settings = settings
        self.store = store

    def get(self, key: str) -> SharedCircuitBreaker:
        b = self._breakers.get(key)
        if b is None:
            with self._lock:
                b = self._breakers.get(key)
                if b is None:
                    b = self._breakers[key] = SharedCircuitBreaker(key, self.store, **self.settings)
        assert isinstance(b, SharedCircuitBreaker)
        return b

    async def flush(self) -> None:
        """Wait for every breaker's background outcomes sent from this event loop."""
        for _, b in self.items():
            if isinstance(b, SharedCircuitBreaker):
                await b.flush()

    async def aclose(self) -> None:
        await self.flush()
        await self.store.aclose()
