"""Budget ledgers: where spent and reserved dollars live.

:class:`Ledger` is what :class:`~llmrelay.reliability.budgets.Budgets` needs; :class:`MemoryLedger`
keeps it in this process, :class:`RedisLedger` in Redis, and :func:`default_ledger` picks the
configured one (Redis when ``[state]`` / ``LLMRELAY_REDIS_URL`` say so, else memory): that is
what ``Budgets(ledger=None)`` uses.

**RedisLedger**: one spent/reserved account per budget key, shared by every process. The
check-and-reserve over all the budgets of a call is one Lua script, so concurrent calls in any
number of processes never spend past a limit. The accounts of one store prefix share a hash tag
(that is what keeps the multi-key script atomic on Redis Cluster); day and month accounts expire
a while after their period. The period of an account is chosen by the caller's clock
(``Budgets(clock=...)``), as with the in-memory ledger.

**Failure of the store** fails **closed** by default: a reservation that cannot be checked is
refused with :class:`StateStoreError` (a budget that cannot be enforced is not a budget).
``on_store_error="open"`` lets such calls through instead (logged). Recording what a finished
call spent never raises: its answer is delivered and a failure to record is logged as an error.

**A reservation whose answer was lost** (the connection dropped after Redis ran it, or the store
was down) may be held in Redis or not. The ledger asks again in the background under the same
call id (the store keeps the answer ``once_ttl_ms``; a call that never ran runs then). Failing
closed, the caller was refused, so the job releases what that call reserved. Failing open, the
caller went on and its settle releases what it reserved: the job makes that reservation held,
exactly once (forced past the limit when Redis refused it: the call is running all the same),
and never releases it; a settle of a key with such a job in flight waits for it first. So the
reservation is released once, by its settle, and never takes what another call holds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

from ..errors import StateStoreError
from ..settings.state import StateSettings, settings_from_config
from ..state.base import FailMode, Store, ThrottledWarning, check_fail_mode, refused
from ..state.open import open_store
from ..state.redis_store import RedisStore, call_id
from ..state.scripts import LEDGER_RESERVE, LEDGER_SETTLE

__all__ = ["Ledger", "MemoryLedger", "RedisLedger", "default_ledger", "ledger_for"]

log = logging.getLogger("llmrelay.budgets")

#: Reservations whose answer was lost, being released (failing closed) or made held (failing
#: open) in the background (``RedisLedger``).
_releasing: set[asyncio.Task[None]] = set()
_MAX_RELEASING = 1000
_RELEASE_TRIES = 3


def _released(task: asyncio.Task[None]) -> None:
    _releasing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "a budget reservation whose answer was lost could not be released (the store "
            "failed %d times): it stays held until its key expires",
            _RELEASE_TRIES,
        )


def _unsure_done(task: asyncio.Task[None]) -> None:
    _releasing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "a budget reservation whose answer was lost could not be confirmed (the store "
            "failed %d times): the settle of its call asks again, and past the answer's "
            "lifetime releases it though it may never have been held",
            _RELEASE_TRIES,
        )


@dataclass(eq=False, slots=True)
class _Unsure:
    """A reservation whose answer was lost while failing open: the caller went on as if it
    were held, and its settle will release it (``RedisLedger._hold_lost``)."""

    keys: list[str]
    args: list[object]
    #: LEDGER_SETTLE's arguments that hold the amount (a release of minus it).
    hold: list[object]
    cid: str
    #: ``time.monotonic()`` past which the store no longer keeps the reserve's answer: asking
    #: again could reserve a second time, so nobody does.
    until: float
    #: The background job making it held (on the caller's loop, where its settle runs too).
    task: asyncio.Task[None] | None = None


class Ledger(Protocol):
    """Where spent and reserved dollars live. Both operations are atomic over all keys."""

    async def reserve(self, entries: Sequence[tuple[str, float]], amount: float) -> int | None:
        """Reserve ``amount`` on every ``(key, limit)`` if none would pass its limit.

        Returns None on success, else the index of the first entry that would overflow."""
        ...

    async def settle(self, keys: Sequence[str], reserved: float, actual: float) -> None:
        """Turn a reservation into spending: ``reserved`` is released, ``actual`` is spent."""
        ...

    async def spent(self, key: str) -> tuple[float, float]:
        """(spent, reserved) for a key."""
        ...


class MemoryLedger:
    """An in-process ledger (one lock; operations are tiny). Day and month accounts are dropped
    as Redis expires them (``_TTL_MS``: 3 days after a day, 70 after a month; never while a
    reservation is held there): when the first account of the day (or month) after the newest
    seen opens, the ones past their time go; a leap further (a clock set ahead for a moment)
    drops nothing. A long-running process keeps a few periods, not all."""

    def __init__(self) -> None:
        self._spent: dict[str, float] = {}
        self._reserved: dict[str, float] = {}
        self._lock = threading.Lock()
        #: The newest day (``YYYY-MM-DD``) and month (``YYYY-MM``) an account was opened for.
        self._day = ""
        self._month = ""

    async def reserve(self, entries: Sequence[tuple[str, float]], amount: float) -> int | None:
        return self.reserve_now(entries, amount)

    async def settle(self, keys: Sequence[str], reserved: float, actual: float) -> None:
        self.settle_now(keys, reserved, actual)

    # ``Budgets`` calls these two directly (no coroutine to build and drive): with no await
    # point, nothing can come between the check and the reservation but another thread, and
    # the lock keeps that out.

    def reserve_now(self, entries: Sequence[tuple[str, float]], amount: float) -> int | None:
        """:meth:`reserve`, as a plain function."""
        spent, reserved = self._spent, self._reserved
        lock = self._lock
        lock.acquire()  # ``with self._lock``, at half the cost
        try:
            for i, (key, limit) in enumerate(entries):
                if spent.get(key, 0.0) + reserved.get(key, 0.0) + amount > limit + 1e-12:
                    return i
            for key, _ in entries:
                held = reserved.get(key)
                if held is None:
                    self._opened(key)
                    held = 0.0
                reserved[key] = held + amount
            return None
        finally:
            lock.release()

    def _opened(self, key: str) -> None:
        """A new account ``key``: if it is of a newer period than any before, drop the ones
        past their time (under the lock)."""
        parts = key.split("|")
        if len(parts) < 4:
            return
        period, pid = parts[-2], parts[-1]
        if period == "day" and pid > self._day and _is_day(pid):
            step = self._day and _next_day(self._day) == pid
            self._day = pid
            today = date.fromisoformat(pid)
        elif period == "month" and pid > self._month and _is_month(pid):
            step = self._month and _next_month(self._month) == pid
            self._month = pid
            today = date.fromisoformat(pid + "-01")
        else:
            return
        if not step:
            # The first period seen, or a leap of more than one (a process idle for days, or a
            # clock set wrong for a moment): nothing is dropped, the next one-period step does
            # it. Else a clock a year ahead for one call would drop this month's and today's
            # accounts, and their budgets would start again from nothing.
            return
        # A day's step moves the day and month cutoffs; a month's only the month's (the first
        # of a month seen for a moment does not say that today's account is days old).
        day_cut = (today - timedelta(days=3)).isoformat() if period == "day" else ""
        month_cut = (today - timedelta(days=70)).isoformat()[:7]
        spent, reserved = self._spent, self._reserved
        for k in [k for k in reserved if not reserved[k]] + [k for k in spent if k not in reserved]:
            p = k.split("|")
            if len(p) < 4:
                continue
            if (p[-2] == "day" and p[-1] < day_cut) or (p[-2] == "month" and p[-1] < month_cut):
                spent.pop(k, None)
                reserved.pop(k, None)

    def settle_now(self, keys: Sequence[str], reserved: float, actual: float) -> None:
        """:meth:`settle`, as a plain function."""
        spent, held = self._spent, self._reserved
        lock = self._lock
        lock.acquire()
        try:
            for key in keys:
                left = held.get(key, 0.0) - reserved
                # ``max(0.0, left)``, NaN too; and a float residue (0.1 + 0.2 held, both settled,
                # leaves 2.8e-17) is nothing held, or the account is never dropped (``_opened``).
                held[key] = left if left > 1e-12 else 0.0
                spent[key] = spent.get(key, 0.0) + actual
        finally:
            lock.release()

    async def spent(self, key: str) -> tuple[float, float]:
        with self._lock:
            return self._spent.get(key, 0.0), self._reserved.get(key, 0.0)


_DAY_MS = 86_400_000
#: How long an account outlives its period (so a late settle still lands in it).
_TTL_MS = {"day": 3 * _DAY_MS, "month": 70 * _DAY_MS, "total": 0}


def _is_day(pid: str) -> bool:
    """``pid`` is a day as ``ledger_key`` spells one (``YYYY-MM-DD``; not another ISO form
    such as ``2026-W49-5``, which would sort after every real day and stop all dropping)."""
    try:
        return date.fromisoformat(pid).isoformat() == pid
    except ValueError:
        return False


def _is_month(pid: str) -> bool:
    return len(pid) == 7 and _is_day(pid + "-01")


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _next_month(month: str) -> str:
    y, m = int(month[:4]), int(month[5:7])
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def _ttl_ms(key: str) -> int:
    parts = key.split("|")
    period = parts[-2] if len(parts) >= 4 else "total"
    return _TTL_MS.get(period, 0)


class RedisLedger:
    """``Budgets([...], ledger=RedisLedger(store))``."""

    def __init__(self, store: RedisStore, *, on_store_error: FailMode = "closed") -> None:
        self.store = store
        self.on_store_error = check_fail_mode(on_store_error, "on_store_error")
        self._tag = f"{{{store.prefix}budget}}:"
        self._warn_store = ThrottledWarning(log)
        #: Failing open: reservations whose answer was lost, not yet known to be held (any
        #: thread's loop may add one).
        self._unsure: list[_Unsure] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisLedger({self.store!r})"

    def _key(self, key: str) -> str:
        return self._tag + key

    def _failed(self, exc: StateStoreError, what: str) -> None:
        if self.on_store_error == "closed":
            raise refused("the budget", exc) from exc
        self._warn_store(
            "budgets are not enforced while the state store fails (%s): %s", what, exc.message
        )

    async def reserve(self, entries: Sequence[tuple[str, float]], amount: float) -> int | None:
        keys = [self._key(k) for k, _ in entries]
        args: list[object] = [repr(float(amount))]
        for k, limit in entries:
            args += [repr(float(limit)), _ttl_ms(k)]
        cid = call_id()
        try:
            failed = int(await self.store.eval(LEDGER_RESERVE, keys, args, call_id=cid))
        except StateStoreError as exc:
            # The answer may be what was lost (both the call's and redis-py's resend): Redis
            # may hold a reservation -- that this caller, refused, will never settle; or that
            # this caller, let through, will settle as if it were held.
            if self.on_store_error == "closed":
                self._release_lost(entries, keys, args, cid)
            else:
                self._hold_lost(entries, amount, keys, args, cid)
            self._failed(exc, "reserve")
            return None
        return None if failed < 0 else failed

    def _release_lost(
        self, entries: Sequence[tuple[str, float]], keys: list[str], args: list[object], cid: str
    ) -> None:
        """Ask again, in the background, for the answer of the reserve ``cid`` whose answer was
        lost (the store keeps it ``once_ttl_ms``; a call that never ran runs now) and release
        what it reserved. Tried ``_RELEASE_TRIES`` times, the store's ``retry_interval`` apart
        (at least 50 ms); past its answer's lifetime a reservation stays held (see docs)."""
        if len(_releasing) >= _MAX_RELEASING:
            return
        settle = [args[0], repr(0.0), *[_ttl_ms(k) for k, _ in entries]]
        task = asyncio.get_running_loop().create_task(self._release(keys, args, settle, cid))
        _releasing.add(task)
        task.add_done_callback(_released)

    async def _release(
        self, keys: list[str], args: list[object], settle: list[object], cid: str
    ) -> None:
        for attempt in range(_RELEASE_TRIES):
            await asyncio.sleep(max(self.store.retry_interval, 0.05))
            try:
                if int(await self.store.eval(LEDGER_RESERVE, keys, args, call_id=cid)) < 0:
                    await self.store.eval(LEDGER_SETTLE, keys, settle, call_id=cid + "r")
                return
            except StateStoreError:
                if attempt == _RELEASE_TRIES - 1:
                    raise

    def _hold_lost(
        self,
        entries: Sequence[tuple[str, float]],
        amount: float,
        keys: list[str],
        args: list[object],
        cid: str,
    ) -> None:
        """Failing open: make the reserve ``cid`` whose answer was lost held, once, in the
        background (``_hold``, tried like ``_release_lost``); a settle of its keys waits for it
        (``_settled_unsure``). Never released here: the caller's settle releases it."""
        now = time.monotonic()
        hold = [repr(-float(amount)), repr(0.0), *[_ttl_ms(k) for k, _ in entries]]
        # The reserve ran at most ~3 timeouts (the send, a reconnect, the resend) ago.
        until = now + self.store.once_ttl_ms / 1000 - 3 * self.store.timeout
        unsure = _Unsure(keys, args, hold, cid, until)
        with self._lock:
            self._unsure = [u for u in self._unsure if u.until > now]
            if len(_releasing) >= _MAX_RELEASING or len(self._unsure) >= _MAX_RELEASING:
                return
            # Made before it is listed: a settle on another thread never sees it without one.
            task = unsure.task = asyncio.get_running_loop().create_task(self._held(unsure))
            self._unsure.append(unsure)
        _releasing.add(task)
        task.add_done_callback(_unsure_done)

    async def _held(self, unsure: _Unsure) -> None:
        for attempt in range(_RELEASE_TRIES):
            await asyncio.sleep(max(self.store.retry_interval, 0.05))
            try:
                await self._hold(unsure)
                return
            except StateStoreError:
                if attempt == _RELEASE_TRIES - 1:
                    raise

    async def _hold(self, unsure: _Unsure) -> None:
        """The reserve's answer (run now if it never ran); a refusal is then held all the same
        (a release of minus its amount): the call went on, and its settle releases it. Both
        under ids of this reservation, so that asked again (by a settle, after the background
        tries failed) nothing is held twice."""
        keys, cid = unsure.keys, unsure.cid
        if int(await self.store.eval(LEDGER_RESERVE, keys, unsure.args, call_id=cid)) >= 0:
            await self.store.eval(LEDGER_SETTLE, keys, unsure.hold, call_id=cid + "h")
        self._forget(unsure)

    def _forget(self, unsure: _Unsure) -> None:
        with self._lock:
            if unsure in self._unsure:
                self._unsure.remove(unsure)

    async def _settled_unsure(self, keys: list[str]) -> None:
        """Before a settle of ``keys``: every reservation on them whose answer was lost (made
        on this loop: the settle that releases it runs where it was made) is held. Waits for
        its background job; asks once more when the job failed (StateStoreError if that fails
        too); past the answer's lifetime, gives up (the job logged it)."""
        loop, settled = asyncio.get_running_loop(), set(keys)
        with self._lock:
            mine = [(u, u.task) for u in self._unsure if not settled.isdisjoint(u.keys)]
        for unsure, task in mine:
            if task is None or task.get_loop() is not loop:
                continue
            await asyncio.wait([task])  # never cancels the job, never raises its error
            with self._lock:
                if unsure not in self._unsure:
                    continue  # the job made it held
            if time.monotonic() >= unsure.until:
                self._forget(unsure)
            else:
                await self._hold(unsure)

    def _abandon(self, keys: list[str], reserved: float) -> None:
        """A settle of ``keys`` releasing ``reserved`` failed: that release never happens, so
        one lost reservation of the same keys and amount not yet made held (its job done) is
        never made held -- by a later settle of these keys, after its caller's failed. Amounts
        are alike: if it was another call's, that call's release makes up for this one."""
        hold = repr(-float(reserved))
        with self._lock:
            for u in self._unsure:
                if u.keys == keys and u.hold[0] == hold and (u.task is None or u.task.done()):
                    self._unsure.remove(u)
                    return

    async def settle(self, keys: Sequence[str], reserved: float, actual: float) -> None:
        args: list[object] = [repr(float(reserved)), repr(float(actual))]
        args += [_ttl_ms(k) for k in keys]
        full = [self._key(k) for k in keys]
        try:
            if self._unsure:
                await self._settled_unsure(full)
            await self.store.eval(LEDGER_SETTLE, full, args)
        except StateStoreError as exc:
            self._abandon(full, reserved)
            # The call already ran: its answer is delivered, and the failure is logged loudly.
            log.error(
                "could not record $%.6f spent against budget(s) %s: %s",
                actual,
                ", ".join(keys),
                exc.message,
            )

    async def spent(self, key: str) -> tuple[float, float]:
        values = await self.store.call("hmget", self._key(key), "s", "r")
        return float(values[0] or 0.0), float(values[1] or 0.0)

    async def aclose(self) -> None:
        await self.store.aclose()


def default_ledger(settings: StateSettings | None = None, **kw: Any) -> Ledger:
    """The budget ledger of the configured state: Redis when configured, else in memory."""
    if settings is None:
        settings = settings_from_config()
    if settings is None or settings.backend != "redis":
        return ledger_for(None)
    return ledger_for(open_store(settings), **kw)


def ledger_for(store: Store | None, **kw: Any) -> Ledger:
    """A ledger in ``store`` when it is Redis (``kw`` are ``RedisLedger`` options), else one
    in this process (budgets in a SQLite or memory store stay in process)."""
    if store is not None and store.kind == "redis":
        assert isinstance(store, RedisStore)
        return RedisLedger(store, **kw)
    return MemoryLedger()
