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

__all__ = [
    "DIMS",
    "Buckets",
    "Charge",
    "MemoryBuckets",
    "Refusal",
    "Settle",
    "Slot",
]

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
#: What a provider's headers said (``ratelimit_headers.limit_values``): the block, the limits
#: it announced and the units it counts as used (the four per-minute dimensions).
Told = tuple[float, Vector, Vector]
_UNKNOWN: Vector = (-1.0, -1.0, -1.0, -1.0)
_N = len(DIMS)
_TOKEN_DIMS = (1, 2, 3, 6)  # the dimensions of DIMS that count tokens


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


class Slot:
    """One scope a call is charged to, made once and reused by every call charged to it (the
    limiter keeps them): its name, its limits per dimension (all of ``DIMS``, 0 = not
    configured), its concurrency limit (0 = none) and the dimensions with a configured limit.
    Treat it as immutable."""

    __slots__ = ("concurrent", "dims", "limits", "scope", "shared", "tokens")

    def __init__(self, scope: str, limits: Vector, concurrent: int) -> None:
        self.scope = scope
        self.limits = full = _full(limits)
        self.concurrent = concurrent
        #: The dimensions a configured limit counts (the others only by a learned one).
        self.dims = tuple(i for i in range(_N) if full[i])
        self.tokens = any(full[i] for i in _TOKEN_DIMS)  # a configured limit counts tokens
        #: Counted once per process (``SHARED_PREFIX``).
        self.shared = scope.startswith(SHARED_PREFIX)

    def __repr__(self) -> str:
        return f"Slot({self.scope!r}, {self.limits!r}, {self.concurrent!r})"


class Buckets(Protocol):
    async def acquire(
        self, charges: Sequence[Charge], permit_id: str, lease: float
    ) -> Refusal | None: ...

    async def release(self, settles: Sequence[Settle], permit_id: str) -> None: ...

    async def take(
        self, slots: Sequence[Slot], costs: Vector, permit_id: str, lease: float
    ) -> Refusal | None:
        """``acquire`` of one ``Charge`` per slot, each costing ``costs``."""
        ...

    async def give(
        self,
        slots: Sequence[Slot],
        deltas: Vector,
        permit_id: str,
        learned_scope: str,
        told: Told | None,
    ) -> None:
        """``release`` of one ``Settle`` per slot, each by ``deltas``; the slots named
        ``learned_scope`` also take what the provider's headers said (``told``)."""
        ...


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
    #: The dimensions with a learned limit (``learned[i] > 0``), kept with ``learned``.
    ldims: tuple[int, ...] = ()


#: Blocks are at most this long (seconds) unless the limiter says otherwise.
MAX_BLOCK = 60.0


def _merge(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The dimensions of ``a`` and ``b``, in order."""
    return tuple(sorted({*a, *b})) if a else b


def _any_positive(v: Vector) -> bool:
    if len(v) == _LEARNED:
        return v[0] > 0 or v[1] > 0 or v[2] > 0 or v[3] > 0
    return any(x > 0 for x in v)


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
        self.prune_at = _prune_idle(self.scopes, now)


def _prune_idle(scopes: dict[str, _Scope], now: float) -> int:
    """Drop the scopes in the state a new one would have (nothing held, blocked, learned or
    counted): the size at which to prune next (doubled while nothing can go, so a table of busy
    scopes is not swept on every new scope)."""
    idle = [
        name
        for name, s in scopes.items()
        if not s.holders
        and s.blocked_until <= now
        and s.learned_until <= now
        and all(t <= now for t in s.tat)
    ]
    for name in idle:
        del scopes[name]
    return max(MAX_SHARED_SCOPES, 2 * len(scopes))


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


#: ``take_now(..., no_tokens=True)``'s answer when a scope counts tokens.
_NEEDS_ESTIMATE = Refusal("", "tpm", 0.0)


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
        #: This object's scopes are pruned like the shared ones: a scope per user, tenant,
        #: key or model name a caller makes up would otherwise stay for the process's life.
        self._prune_at = MAX_SHARED_SCOPES
        self._shared = shared_scopes(clock)
        self._lock = self._shared.lock

    def _scope(self, name: str) -> _Scope:
        table = self._shared.scopes if name.startswith(SHARED_PREFIX) else self._scopes
        s = table.get(name)
        if s is None:
            if table is self._shared.scopes:
                if len(table) >= self._shared.prune_at:
                    self._shared.prune(self.clock())
            elif len(table) >= self._prune_at:
                self._prune_at = _prune_idle(table, self.clock())
            s = table[name] = _Scope()
        return s

    async def acquire(
        self, charges: Sequence[Charge], permit_id: str, lease: float
    ) -> Refusal | None:
        slots = [Slot(c.scope, c.limits, c.concurrent) for c in charges]
        return self.take_now(slots, [_full(c.costs) for c in charges], permit_id, lease)

    async def take(
        self, slots: Sequence[Slot], costs: Vector, permit_id: str, lease: float
    ) -> Refusal | None:
        return self.take_now(slots, (_full(costs),) * len(slots), permit_id, lease)

    def take_now(
        self,
        slots: Sequence[Slot],
        costs_of: Sequence[Vector],
        permit_id: str,
        lease: float,
        no_tokens: bool = False,
    ) -> Refusal | None:
        """``take`` without a coroutine (nothing here waits), each slot with its own costs
        (``costs_of``, in the same order, all of ``DIMS``): charge every slot, or none of them
        (the refusal with the longest wait, or the first that can never fit). ``no_tokens``:
        the costs hold no token estimate; a scope that counts tokens refuses (charging none)."""
        now = self.clock()
        own, shared = self._scopes, self._shared.scopes
        lock = self._lock
        lock.acquire()
        try:
            updates: list[tuple[_Scope, int, float]] = []
            worst: Refusal | None = None
            for sl, costs in zip(slots, costs_of):  # noqa: B905 (the callers': as long)
                s = (shared if sl.shared else own).get(sl.scope)
                if s is None:
                    s = self._scope(sl.scope)
                if s.blocked_until > now:
                    worst = _worse(worst, Refusal(sl.scope, "blocked", s.blocked_until - now))
                    continue
                learned = s.learned_until > now
                limits = sl.limits
                # Only the dimensions with a limit (configured, else learned) count.
                dims = sl.dims
                if learned and s.ldims and s.ldims != dims:
                    dims = _merge(dims, s.ldims)
                for i in dims:
                    configured = limits[i]
                    lim = configured or (s.learned[i] if learned and i < _LEARNED else 0.0)
                    cost = costs[i]
                    if lim <= 0 or cost <= 0:
                        if no_tokens and lim > 0:  # a token limit: the call needs its estimate
                            return _NEEDS_ESTIMATE
                        continue
                    if cost > lim:
                        if configured:  # only a configured limit can say "never"
                            return Refusal(sl.scope, DIMS[i], None, lim)
                        continue  # above a learned one: send it, the provider decides
                    w = WINDOWS[i]
                    tat = s.tat[i]
                    nt = (now if now > tat else tat) + cost * w / lim  # max(tat, now) + ...
                    over = nt - now - w
                    if over > 1e-9:
                        if not configured:  # a learned limit is forgotten by then
                            over = min(over, s.learned_until - now)
                        worst = _worse(worst, Refusal(sl.scope, DIMS[i], over))
                    else:
                        updates.append((s, i, nt))
                if sl.concurrent:
                    for pid in [p for p, exp in s.holders.items() if exp <= now]:
                        del s.holders[pid]
                    if len(s.holders) >= sl.concurrent:
                        worst = _worse(worst, Refusal(sl.scope, "concurrent", 0.0))
            if worst is not None:
                return worst
            for s, i, nt in updates:
                s.tat[i] = nt
            for sl in slots:
                if sl.concurrent:
                    self._scope(sl.scope).holders[permit_id] = now + lease
            return None
        finally:
            lock.release()

    def counts_tokens(self, slots: Sequence[Slot], told: Told | None) -> bool:
        """Might settling a call on ``slots`` (with what the provider ``told``) count tokens?
        True when a slot has a token limit, configured, learned or announced now."""
        if told is not None and (told[1][1] > 0 or told[1][2] > 0 or told[1][3] > 0):
            return True
        own, shared = self._scopes, self._shared.scopes
        for sl in slots:
            if sl.tokens:
                return True
            s = (shared if sl.shared else own).get(sl.scope)
            if s is not None and s.ldims and s.ldims != (0,):  # a learned (i)tpm or otpm
                return True
        return False

    async def release(self, settles: Sequence[Settle], permit_id: str) -> None:
        now = self.clock()
        with self._lock:
            for st in settles:
                slot = Slot(st.scope, st.limits, 0)
                deltas = _full(st.deltas)
                self._settle(slot, deltas, st.block, st.learned, st.used, permit_id, now)

    async def give(
        self,
        slots: Sequence[Slot],
        deltas: Vector,
        permit_id: str,
        learned_scope: str,
        told: Told | None,
    ) -> None:
        self.give_now(slots, _full(deltas), permit_id, learned_scope, told)

    def give_now(
        self,
        slots: Sequence[Slot],
        deltas: Vector,
        permit_id: str,
        learned_scope: str,
        told: Told | None,
    ) -> None:
        """``give`` without a coroutine (nothing here waits); ``deltas`` has all of
        ``DIMS``."""
        now = self.clock()
        lock = self._lock
        lock.acquire()
        try:
            for sl in slots:
                if told is not None and sl.scope == learned_scope:
                    self._settle(sl, deltas, told[0], told[1], told[2], permit_id, now)
                else:
                    self._settle(sl, deltas, 0.0, _ZERO, _UNKNOWN, permit_id, now)
        finally:
            lock.release()

    def _settle(
        self,
        sl: Slot,
        deltas: Vector,
        block: float,
        announced: Vector,
        used: Vector,
        permit_id: str,
        now: float,
    ) -> None:
        """Settle one scope (the caller holds the lock): its deltas, the block the provider
        asked for, the limits it announced and what it counts as used."""
        s = (self._shared.scopes if sl.shared else self._scopes).get(sl.scope)
        if s is None:
            s = self._scope(sl.scope)
        if s.holders:
            s.holders.pop(permit_id, None)
        limits = sl.limits
        if announced is not _ZERO and _any_positive(announced):
            if s.learned_until <= now:  # relearned after expiry: forget stale counts
                for i in range(_LEARNED):
                    if not limits[i]:
                        s.tat[i] = 0.0
            s.learned_until = now + self.max_block
            known, grew = s.learned, False
            for i in range(_LEARNED):
                x = announced[i]
                if x > 0:
                    grew = grew or not known[i] > 0
                    known[i] = x
            if grew:  # learned limits are only ever replaced by positive ones
                s.ldims = tuple(i for i in range(_LEARNED) if known[i] > 0)
        learned = s.learned_until > now
        dims = sl.dims
        if learned and s.ldims and s.ldims != dims:
            dims = _merge(dims, s.ldims)
        for i in dims:
            header = i < _LEARNED
            lim = limits[i] or (s.learned[i] if learned and header else 0.0)
            if lim <= 0:
                continue
            w = WINDOWS[i]
            d = deltas[i]
            tat = s.tat[i]
            if d > 0:
                tat = (now if now > tat else tat) + d * w / lim  # max(tat, now) + ...
            elif d < 0 and tat > 0:
                tat += d * w / lim
            if header and used[i] >= 0:
                floor = now + used[i] * w / lim
                if floor > tat:  # max(tat, floor)
                    tat = floor
            s.tat[i] = tat
        if block:
            blocked = _block(block, self.max_block)
            if blocked > 0:
                s.blocked_until = max(s.blocked_until, now + blocked)
