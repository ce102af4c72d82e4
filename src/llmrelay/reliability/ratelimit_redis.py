"""The rate limiter's counters in Redis (:class:`RedisBuckets`), shared by every process using
the same server and prefix: the same all-or-nothing admission and settlement as
:class:`~llmrelay.reliability.ratelimit_buckets.MemoryBuckets`, each scope one atomic Lua script
(``state/scripts.py``) timed by Redis ``TIME``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ..errors import StateStoreError
from ..state.base import hash_tag
from ..state.redis_store import RedisStore
from ..state.scripts import RL_ACQUIRE, RL_RELEASE
from .ratelimit_buckets import (
    _LEARNED,
    _N,
    MAX_BLOCK,
    Charge,
    Refusal,
    Settle,
    Slot,
    Told,
    Vector,
    _block,
    _full,
    _worse,
)

__all__ = ["RedisBuckets"]

log = logging.getLogger("llmrelay.ratelimit")

_KEY_TTL_MS = 3_600_000  # counters of a scope unused for an hour are dropped
_DAY_TTL_MS = 86_460_000  # ... a day and a minute when it counts per day


def _ttl_ms(limits: Vector) -> int:
    """How long a scope's counters must outlive its last use: the longest window it counts."""
    full = _full(limits)
    return _DAY_TTL_MS if full[5] or full[6] else _KEY_TTL_MS


class RedisBuckets:
    """Counters in Redis, shared by every process using the same server and prefix."""

    def __init__(self, store: RedisStore, max_block: float = MAX_BLOCK) -> None:
        self.store = store
        self.max_block = max_block
        self._max_block_ms = _num(max_block * 1000)

    def _keys(self, scope: str) -> list[str]:
        base = f"{self.store.prefix}rl:{{{hash_tag(scope)}}}"
        return [base, base + ":c"]

    async def acquire(
        self, charges: Sequence[Charge], permit_id: str, lease: float
    ) -> Refusal | None:
        calls = []
        for c in charges:
            args: list[object] = [permit_id, max(1, round(lease * 1000)), c.concurrent]
            limits, costs = _full(c.limits), _full(c.costs)
            for i in range(_N):
                args += [_num(limits[i]), _num(costs[i])]
            args += [_ttl_ms(c.limits), self._max_block_ms]
            calls.append((RL_ACQUIRE, self._keys(c.scope), args))
        # A store waiting out a failure refuses at once, without running anything.
        reached = self.store.available
        try:
            results = await self.store.eval_many(calls)
        except asyncio.CancelledError:
            if permit_id:
                self._give_back_holds(charges, permit_id)
            raise
        except StateStoreError:
            # The answer may be what was lost (a timeout, a broken connection after the
            # scripts ran): the caller goes on unlimited (fail-open) or refused, and nothing
            # would ever release what the scripts took.
            if permit_id and reached:
                self._give_back_holds(charges, permit_id)
            raise
        refusals: list[Refusal] = []
        admitted: list[Charge] = []
        for c, r in zip(charges, results, strict=True):
            status, value, dim = int(r[0]), float(r[1]), _text(r[2])
            if status == 1:
                admitted.append(c)
            elif status == -1:
                refusals.append(Refusal(c.scope, dim, None, value))
            else:
                refusals.append(Refusal(c.scope, dim, value / 1000))
        if not refusals:
            return None
        if admitted:  # all-or-nothing: give back what the other scopes took
            try:
                await self.release(
                    [Settle(c.scope, c.limits, _neg(c.costs)) for c in admitted],
                    permit_id,
                )
            except (asyncio.CancelledError, StateStoreError):
                # Redis may not have run the give-back: free the slots at least (giving the
                # costs back twice, were it run, would undercount them).
                if permit_id:
                    self._give_back_holds(admitted, permit_id)
                raise
        never = next((r for r in refusals if r.retry_after is None), None)
        if never is not None:
            return never
        worst = refusals[0]
        for r in refusals[1:]:
            worst = _worse(worst, r)
        return worst

    def _give_back_holds(self, charges: Sequence[Charge], permit_id: str) -> None:
        """The caller gave up, or the answer was lost, while the scripts were under way: Redis
        may have run them, so the permit may hold a concurrency slot in each scope -- for
        ``lease`` seconds (15 minutes by default), as a process that died would. Release those
        holds now, in the background (the caller's cancellation or error is not delayed),
        trying again after the store's ``retry_interval`` when it failed. Releasing a hold
        never taken changes nothing (a ``ZREM`` of an absent member); the request and token
        counts the scripts may have charged stay charged, as for any call that did not
        finish. At most ``_MAX_GIVING_BACK`` are under way (a store that is down for long:
        the rest end with their lease)."""
        zero = (0.0,) * _N
        settles = [Settle(c.scope, c.limits, zero) for c in charges if c.concurrent]
        if settles and len(_giving_back) < _MAX_GIVING_BACK:
            task = asyncio.get_running_loop().create_task(self._give_back(settles, permit_id))
            _giving_back.add(task)
            task.add_done_callback(_given_back)

    async def _give_back(self, settles: list[Settle], permit_id: str) -> None:
        for attempt in range(_GIVE_BACK_TRIES):
            try:
                await self.release(settles, permit_id)
                return
            except StateStoreError:
                if attempt == _GIVE_BACK_TRIES - 1:
                    raise
            # After the store's pause (it refuses at once until then), at least 50 ms.
            await asyncio.sleep(max(self.store.retry_interval, 0.05))

    async def take(
        self, slots: Sequence[Slot], costs: Vector, permit_id: str, lease: float
    ) -> Refusal | None:
        charges = [Charge(sl.scope, sl.limits, costs, sl.concurrent) for sl in slots]
        return await self.acquire(charges, permit_id, lease)

    async def give(
        self,
        slots: Sequence[Slot],
        deltas: Vector,
        permit_id: str,
        learned_scope: str,
        told: Told | None,
    ) -> None:
        settles = []
        for sl in slots:
            if told is not None and sl.scope == learned_scope:
                settles.append(Settle(sl.scope, sl.limits, deltas, *told))
            else:
                settles.append(Settle(sl.scope, sl.limits, deltas))
        try:
            await self.release(settles, permit_id)
        except asyncio.CancelledError:
            # The caller left while the release was under way (it may not have been sent):
            # free the slots at least, as a cancelled acquire does.
            if permit_id:
                zero = (0.0,) * _N
                self._give_back_holds(
                    [Charge(sl.scope, sl.limits, zero, sl.concurrent) for sl in slots], permit_id
                )
            raise

    async def release(self, settles: Sequence[Settle], permit_id: str) -> None:
        calls = []
        for st in settles:
            args: list[object] = [permit_id]
            limits, deltas = _full(st.limits), _full(st.deltas)
            for i in range(_N):
                args += [_num(limits[i]), _num(deltas[i])]
            args.append(_num(_block(st.block, self.max_block) * 1000))
            args += [_num(x) for x in st.learned[:_LEARNED]]
            args += [_num(x) for x in st.used[:_LEARNED]]
            args += [_ttl_ms(st.limits), self._max_block_ms]
            calls.append((RL_RELEASE, self._keys(st.scope), args))
        if calls:
            await self.store.eval_many(calls)


def _neg(v: Vector) -> Vector:
    return tuple(-x for x in v)


def _num(x: float) -> str:
    return repr(float(x)) if x != int(x) else str(int(x))


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


#: Background give-backs under way (held so they are not collected before they finish).
_giving_back: set[asyncio.Task[None]] = set()
_MAX_GIVING_BACK = 1000
#: Tries of one give-back, ``retry_interval`` apart.
_GIVE_BACK_TRIES = 3


def _given_back(task: asyncio.Task[None]) -> None:
    _giving_back.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # The store is down: the holds end with their lease, as the store's outage allows.
        log.debug("rate-limit give-back after a cancelled acquire failed: %s", task.exception())
