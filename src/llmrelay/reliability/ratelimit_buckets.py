"""Where the rate limiter keeps its counters: in process, or in Redis (shared).

Both implement the same GCRA per dimension, each over its own window: requests, tokens, input
tokens, output tokens per minute, requests per second, requests and tokens per day (``DIMS``,
``WINDOWS``); a concurrency count with leases; and blocks and limits learned from provider headers
(the four per-minute dimensions); see ``scripts.py`` for the Redis side. An acquire is
all-or-nothing over every scope of a call: in process under one lock; in Redis each scope is one
atomic script (its keys share a hash tag) and the scopes are sent in one pipelined round trip --
when one scope refuses, the others are refunded in a second round trip.

A block is at most ``max_block`` seconds (the limiter's setting); a block that is not a finite
positive number is ignored. In Redis the ceiling is applied when reading too, so a block written
by a process with a longer (or no) ceiling is cut back to this process's.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..state.base import hash_tag
from ..state.redis_store import RedisStore
from ..state.scripts import RL_ACQUIRE, RL_RELEASE

__all__ = ["DIMS", "Buckets", "Charge", "MemoryBuckets", "RedisBuckets", "Refusal", "Settle"]

DIMS = ("rpm", "tpm", "itpm", "otpm", "rps", "rpd", "tpd")
#: The window of each dimension of ``DIMS``, in seconds.
WINDOWS = (60.0, 60.0, 60.0, 60.0, 1.0, 86_400.0, 86_400.0)
WINDOW = 60.0
#: Per dimension of ``DIMS``; a shorter vector (the four per-minute dimensions) is padded with
#: zeros.
Vector = tuple[float, ...]
#: Limits learned from headers and units used: the four per-minute dimensions only.
_LEARNED = 4
_ZERO: Vector = (0.0, 0.0, 0.0, 0.0)
_UNKNOWN: Vector = (-1.0, -1.0, -1.0, -1.0)
_N = len(DIMS)


def _full(v: Vector) -> Vector:
    """``v`` with one value per dimension (missing ones 0)."""
    return v if len(v) == _N else (*v, *(0.0,) * (_N - len(v)))


@dataclass(slots=True, frozen=True)
class Charge:
    """What one call asks of one scope."""

    scope: str
    limits: Vector  # per dimension, 0 = not configured (a learned limit applies, if any)
    costs: Vector
    concurrent: int  # 0 = no concurrency limit


@dataclass(slots=True, frozen=True)
class Refusal:
    scope: str
    dim: str
    #: Seconds until the call could fit; None when it never can (cost above the limit).
    retry_after: float | None
    limit: float | None = None


@dataclass(slots=True, frozen=True)
class Settle:
    """What to change in one scope after the call."""

    scope: str
    limits: Vector
    deltas: Vector  # actual - reserved, per dimension (negative gives back)
    block: float = 0.0  # seconds the provider asked us to stay away
    learned: Vector = _ZERO  # limits the provider announced (0 = none)
    used: Vector = _UNKNOWN  # units the provider counts as used in its window (-1 = unknown)


class Buckets(Protocol):
    async def acquire(
        self, charges: Sequence[Charge], permit_id: str, lease: float
    ) -> Refusal | None: ...

    async def release(self, settles: Sequence[Settle], permit_id: str) -> None: ...


# --------------------------------------------------------------------------- in process


def _worse(a: Refusal | None, b: Refusal) -> Refusal:
    """The refusal with the longer wait."""
    if a is None or (a.retry_after or 0.0) < (b.retry_after or 0.0):
        return b
    return a


@dataclass(slots=True)
class _Scope:
    tat: list[float] = field(default_factory=lambda: [0.0] * _N)
    learned: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    #: Learned limits hold until then (``max_block`` after the last answer announcing them).
    learned_until: float = 0.0
    blocked_until: float = 0.0
    holders: dict[str, float] = field(default_factory=dict)  # permit id -> lease expiry


#: Blocks are at most this long (seconds) unless the limiter says otherwise.
MAX_BLOCK = 60.0


def _block(seconds: float, ceiling: float) -> float:
    """A learned block made safe: NaN, infinite and negative count as none; at most
    ``ceiling``."""
    if not (seconds > 0 and math.isfinite(seconds)):
        return 0.0
    return min(seconds, ceiling)


#: Scopes named so are counted once per process (per clock), whichever limiter charges them:
#: the rate limits providers declare are the provider's quota, not one client's.
SHARED_PREFIX = "provider:"
#: Past this many process-wide scopes, idle ones (no state a fresh scope lacks) are dropped.
MAX_SHARED_SCOPES = 10_000


class _SharedScopes:
    """The process-wide scopes of the limiters on one clock, and the lock they all take."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.scopes: dict[str, _Scope] = {}
        #: Prune when the table reaches this size (doubles while nothing can go, so a table of
        #: busy scopes is not swept on every new scope).
        self.prune_at = MAX_SHARED_SCOPES

    def prune(self, now: float) -> None:
        """Drop the scopes in the state a new one would have (caller holds the lock)."""
        idle = [
            name
            for name, s in self.scopes.items()
            if not s.holders
            and s.blocked_until <= now
            and s.learned_until <= now
            and all(t <= now for t in s.tat)
        ]
        for name in idle:
            del self.scopes[name]
        self.prune_at = max(MAX_SHARED_SCOPES, 2 * len(self.scopes))


_SHARED_LOCK = threading.Lock()
#: Per clock (weakly held: a fake clock's table goes with it) ...
_SHARED_WEAK: weakref.WeakKeyDictionary[Any, dict[Any, _SharedScopes]] = weakref.WeakKeyDictionary()
#: ... or, for a clock that cannot be weakly referenced (``time.monotonic``), for good.
_SHARED_STRONG: dict[Any, _SharedScopes] = {}


def shared_scopes(clock: Callable[[], float]) -> _SharedScopes:
    """The process-wide scopes of the limiters counting time with ``clock`` (a bound method
    is its object's, whichever attribute access made it); a fresh private table when the clock
    cannot be a dictionary key."""
    owner: Any = clock
    part: Any = None
    if inspect.ismethod(clock):
        owner, part = clock.__self__, clock.__func__
    try:
        with _SHARED_LOCK:
            try:
                per = _SHARED_WEAK.get(owner)
                if per is None:
                    per = _SHARED_WEAK[owner] = {}
                table = per.get(part)
                if table is None:
                    table = per[part] = _SharedScopes()
                return table
            except TypeError:  # not weakly referenceable: a builtin such as time.monotonic
                table = _SHARED_STRONG.get((owner, part))
                if table is None:
                    table = _SHARED_STRONG[(owner, part)] = _SharedScopes()
                return table
    except TypeError:  # unhashable clock: nothing to share with
        return _SharedScopes()


class MemoryBuckets:
    """Counters in this process (every operation is a few dict lookups under a lock).

    Scopes named ``SHARED_PREFIX...`` are the process's, shared by every ``MemoryBuckets`` on
    the same clock (and so under that clock's one lock); the others are this object's own.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_block: float = MAX_BLOCK
    ) -> None:
        self.clock = clock
        self.max_block = max_block
        self._scopes: dict[str, _Scope] = {}
        self._shared = shared_scopes(clock)
        self._lock = self._shared.lock

    def _scope(self, name: str) -> _Scope:
        table = self._shared.scopes if name.startswith(SHARED_PREFIX) else self._scopes
        s = table.get(name)
        if s is None:
            if table is self._shared.scopes and len(table) >= self._shared.prune_at:
                self._shared.prune(self.clock())
            s = table[name] = _Scope()
        return s

    async def acquire(
        self, charges: Sequence[Charge], permit_id: str, lease: float
    ) -> Refusal | None:
        now = self.clock()
        with self._lock:
            updates: list[tuple[_Scope, int, float]] = []
            worst: Refusal | None = None
            for c in charges:
                s = self._scope(c.scope)
                if s.blocked_until > now:
                    worst = _worse(worst, Refusal(c.scope, "blocked", s.blocked_until - now))
                    continue
                learned = s.learned_until > now
                limits, costs = _full(c.limits), _full(c.costs)
                for i in range(_N):
                    configured = limits[i]
                    lim = configured or (s.learned[i] if learned and i < _LEARNED else 0.0)
                    cost = costs[i]
                    if lim <= 0 or cost <= 0:
                        continue
                    if cost > lim:
                        if configured:  # only a configured limit can say "never"
                            return Refusal(c.scope, DIMS[i], None, lim)
                        continue  # above a learned one: send it, the provider decides
                    w = WINDOWS[i]
                    nt = max(s.tat[i], now) + cost * w / lim
                    over = nt - now - w
                    if over > 1e-9:
                        if not configured:  # a learned limit is forgotten by then
                            over = min(over, s.learned_until - now)
                        worst = _worse(worst, Refusal(c.scope, DIMS[i], over))
                    else:
                        updates.append((s, i, nt))
                if c.concurrent:
                    for pid in [p for p, exp in s.holders.items() if exp <= now]:
                        del s.holders[pid]
                    if len(s.holders) >= c.concurrent:
                        worst = _worse(worst, Refusal(c.scope, "concurrent", 0.0))
            if worst is not None:
                return worst
            for s, i, nt in updates:
                s.tat[i] = nt
            for c in charges:
                if c.concurrent:
                    self._scope(c.scope).holders[permit_id] = now + lease
            return None

    async def release(self, settles: Sequence[Settle], permit_id: str) -> None:
        now = self.clock()
        with self._lock:
            for st in settles:
                s = self._scope(st.scope)
                s.holders.pop(permit_id, None)
                limits, deltas = _full(st.limits), _full(st.deltas)
                if any(x > 0 for x in st.learned):
                    if s.learned_until <= now:  # relearned after expiry: forget stale counts
                        for i in range(_LEARNED):
                            if not limits[i]:
                                s.tat[i] = 0.0
                    s.learned_until = now + self.max_block
                learned = s.learned_until > now
                for i in range(_N):
                    header = i < _LEARNED
                    if header and st.learned[i] > 0:
                        s.learned[i] = st.learned[i]
                    lim = limits[i] or (s.learned[i] if learned and header else 0.0)
                    if lim <= 0:
                        continue
                    w = WINDOWS[i]
                    d = deltas[i]
                    tat = s.tat[i]
                    if d > 0:
                        tat = max(tat, now) + d * w / lim
                    elif d < 0 and tat > 0:
                        tat += d * w / lim
                    if header and st.used[i] >= 0:
                        tat = max(tat, now + st.used[i] * w / lim)
                    s.tat[i] = tat
                block = _block(st.block, self.max_block)
                if block > 0:
                    s.blocked_until = max(s.blocked_until, now + block)


# --------------------------------------------------------------------------- Redis

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
        results = await self.store.eval_many(calls)
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
            await self.release(
                [Settle(c.scope, c.limits, _neg(c.costs)) for c in admitted],
                permit_id,
            )
        never = next((r for r in refusals if r.retry_after is None), None)
        if never is not None:
            return never
        worst = refusals[0]
        for r in refusals[1:]:
            worst = _worse(worst, r)
        return worst

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
