"""Spending budgets (seed 000's cost management): limits per period, per key, user, tag or tenant.

Each call *reserves* its estimated cost (input tokens + ``max_tokens`` at the model's prices)
against every budget that applies to it before anything is sent, and *settles* with the actual
cost afterwards (every attempt, retry, fallback and re-ask included). The check-and-reserve is
atomic, so concurrent calls can never spend past a limit: the last dollar goes to one caller
and the others get :class:`BudgetExceededError`. It is repeated before each fallback and re-ask
of the call, topping the reservation up to what the call spent plus that candidate's estimate,
so a pricier fallback is refused before it is sent rather than paid for.

.. code-block:: python

    budgets = Budgets([
        BudgetLimit(limit_usd=5.0, period="day", scope="user"),      # each user: $5 a day
        BudgetLimit(limit_usd=200.0, period="month"),                  # everyone together
        BudgetLimit(limit_usd=20.0, period="total", scope="tag:team", match="search"),
    ])
    engine = Engine(budget=budgets, catalog=...)

Scopes: ``global`` (one budget for all calls), ``tenant`` (``tenant=`` of the call), ``key``
(per API key, by a hash of it), ``user`` (``tags={"user": ...}``), ``tag:<name>`` (any tag).
A call without the scope's value is not counted against that budget. The ledger holding
spent and reserved amounts is pluggable (:mod:`.budgets_ledger`): in memory, or Redis to share
it across processes (``llmrelay.state``).

**What is reserved** (:func:`bound_request_cost`, the default estimator): an upper bound of the
call's cost computed without a tokenizer -- no token count is more than the UTF-8 bytes it is
made of (a byte-level BPE token, OpenAI's and Llama's, and a SentencePiece piece or byte-fallback
token each stand for at least one byte), so the prompt is reserved as its bytes plus a fixed
allowance per message, tool call, tool list, image and document, at the higher of the input and
cache-write prices; the answer as ``max_tokens`` (else the model's maximum output, else its whole
context window) at the higher of the output and reasoning prices. It costs microseconds and no
memory (the exact tokenizer, ~70 MB, is never loaded for it), and it holds more than the call
will cost -- about four times the prompt's tokens for English prose; the output allowance
usually dominates anyway. Settling charges what the provider reported, so holding more only
refuses calls sooner when a budget is nearly spent; holding less could let concurrent calls
pass a limit together. Pass ``estimator=`` to choose another estimate (e.g.
``llmrelay.estimate_request_cost``, the exact count for OpenAI models).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from ..catalog.costs import estimate_request_cost
from ..errors import BudgetExceededError, ConfigurationError, bad_number
from ..errors import shown as shown_arg
from ..state.base import key_id
from .budgets_bound import bound_request_cost, catalog_registry, prompt_token_bound
from .budgets_ledger import Ledger, MemoryLedger, default_ledger

if TYPE_CHECKING:
    from ..core.layers import CallContext
    from ..providers.table import Deployment
    from ..types import ChatRequest

__all__ = [
    "BudgetLimit",
    "Budgets",
    "CallEntries",
    "Ledger",
    "MemoryLedger",
    "Reservation",
    "bound_request_cost",
    "limit_entries",
    "prompt_token_bound",
]

T = TypeVar("T")

Period = Literal["day", "month", "total"]
_PERIODS = ("day", "month", "total")


@dataclass(slots=True, frozen=True)
class BudgetLimit:
    """One limit: ``limit_usd`` per ``period`` for each value of ``scope`` (or only ``match``)."""

    limit_usd: float
    period: Period = "month"
    scope: str = "global"
    match: str | None = None

    def __post_init__(self) -> None:
        v = self.limit_usd
        if isinstance(v, bool) or not isinstance(v, int | float) or bad_number(v) or v <= 0:
            raise ConfigurationError(
                f"a budget's limit_usd must be a positive number of dollars, not {shown_arg(v)}"
            )
        if self.period not in _PERIODS:
            shown = (
                repr(self.period)[:80]
                if isinstance(self.period, str)
                else "a " + type(self.period).__name__
            )
            raise ConfigurationError(
                f"budget period must be one of {', '.join(_PERIODS)}, not {shown}"
            )
        scope = self.scope
        ok = isinstance(scope, str) and (
            scope in ("global", "tenant", "key", "user")
            or (scope.startswith("tag:") and len(scope) > 4)
        )
        if not ok:
            shown = repr(scope)[:80] if isinstance(scope, str) else type(scope).__name__
            raise ConfigurationError(
                f"budget scope must be global, tenant, key, user or tag:<name>, not {shown}"
            )
        if self.match is not None and not isinstance(self.match, str):
            raise ConfigurationError(
                f"a budget's match must be a string or None, not {type(self.match).__name__}"
            )

    def value_for(self, dep: Deployment, ctx: CallContext) -> str | None:
        """The budget's subject for this call, or None when it does not apply."""
        if self.scope == "global":
            v: str | None = "*"
        elif self.scope == "tenant":
            v = ctx.tenant
        elif self.scope == "key":
            v = key_id(dep.api_key)
        elif self.scope == "user":
            v = ctx.tags.get("user")
        else:
            v = ctx.tags.get(self.scope[4:])
        if v is None or (self.match is not None and v != self.match):
            return None
        return v

    def ledger_key(self, value: str, now: float) -> str:
        period = self.period
        if period == "total":
            pid = "total"
        else:
            day, on_day, in_month = _PERIOD_IDS
            if now // 86400.0 != day:
                day, on_day, in_month = _period_ids(now)
            pid = on_day if period == "day" else in_month
        return f"{self.scope}|{value}|{period}|{pid}"


def _checked_estimate(value: Any) -> float | None:
    """What a custom ``estimator`` returned, if it is a price: None (unknown) or a number of
    dollars, 0 or more (``inf``: no bound, so the call is refused as over any budget). Anything
    else is a ConfigurationError raised before the ledger is touched: a NaN held in a ledger
    passes every later check (NaN > limit is false) and would switch the budget off for every
    caller."""
    if value is None:
        return None
    if inspect.iscoroutine(value):  # an async estimator: closed, or it warns as never awaited
        value.close()
        raise ConfigurationError(
            "a budget estimator returned a coroutine: it must be a plain function (it runs "
            "before the call, with no await), not an async one"
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or bad_number(value):
        raise ConfigurationError(
            f"a budget estimator returned {shown_arg(value)}: it must return a number of "
            "dollars (0 or more) or None for an unknown price"
        )
    if value < 0:
        raise ConfigurationError(
            f"a budget estimator returned {value!r}: a price cannot be negative"
        )
    return float(value)


def _period_ids(now: float) -> tuple[float, str, str]:
    """The UTC day of ``now`` (days since the epoch) and its day and month ids, remembered:
    every call of a day shares them."""
    global _PERIOD_IDS
    day = now // 86400.0
    # Spelled from the day number, not ``now``: ``fromtimestamp`` rounds to the microsecond,
    # and half a microsecond before a midnight it is the next day's.
    d = datetime.fromtimestamp(day * 86400.0, UTC)
    _PERIOD_IDS = (day, d.strftime("%Y-%m-%d"), d.strftime("%Y-%m"))
    return _PERIOD_IDS


_PERIOD_IDS: tuple[float, str, str] = (float("nan"), "", "")


@dataclass(slots=True)
class Reservation:
    """What one call holds in the ledger, per budget key, and what it spent there so far.

    The call's candidates may differ in the keys they are charged to (a ``key`` scope follows
    the deployment's API key): spending is attributed to the keys of the candidate that made
    it, by marking the call's cost each time it moves to another candidate."""

    keys: list[str]
    amount: float
    limits: list[BudgetLimit] = field(default_factory=list)
    #: Dollars reserved in the ledger per key (released at settle).
    held: dict[str, float] = field(default_factory=dict)
    #: Dollars spent per key by the candidates before the current one.
    spent: dict[str, float] = field(default_factory=dict)
    #: The keys the current candidate is charged to.
    current: list[str] = field(default_factory=list)
    #: The call's known cost, and its token count, when the current candidate started.
    mark_usd: float = 0.0
    mark_tokens: int = 0


_new = object.__new__


def _holding(keys: list[str], amount: float, limits: list[BudgetLimit]) -> Reservation:
    """``Reservation(keys, amount, limits, held=dict.fromkeys(keys, amount), current=keys)``
    without its ``__init__`` frame (``tests/reliability/test_budgets_cache.py`` holds the two
    equal): the first candidate's reservation, made."""
    r: Reservation = _new(Reservation)
    r.keys = r.current = keys
    r.amount = amount
    r.limits = limits
    r.held = dict.fromkeys(keys, amount)
    r.spent = {}
    r.mark_usd = 0.0
    r.mark_tokens = 0
    return r


#: What applies to a call (:meth:`Budgets.call_entries`): the ledger entries ``(key, limit in
#: dollars)``, their limits and their keys.
CallEntries = tuple[Sequence[tuple[str, float]], Sequence[BudgetLimit], Sequence[str]]

Estimator = Callable[["ChatRequest", "Deployment"], "float | None"]


class Budgets:
    """The budget layer (``Engine(budget=Budgets([...]))``).

    ``unknown_cost``: what to do when a budget applies but the model's price is unknown --
    ``"deny"`` (the default: a budget that cannot be checked is not a budget) or ``"allow"``.
    """

    def __init__(
        self,
        limits: Sequence[BudgetLimit],
        *,
        ledger: Ledger | None = None,
        estimator: Estimator | None = None,
        unknown_cost: Literal["deny", "allow"] = "deny",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(limits, BudgetLimit):
            limits = [limits]
        if isinstance(limits, str | bytes) or not isinstance(limits, Sequence):
            raise ConfigurationError(
                f"Budgets takes a list of BudgetLimit objects, not {type(limits).__name__}"
            )
        if not limits and not self.limits_per_call:
            raise ConfigurationError("Budgets needs at least one BudgetLimit")
        for lim in limits:
            if not isinstance(lim, BudgetLimit):
                raise ConfigurationError(
                    f"budgets must be BudgetLimit objects, not {type(lim).__name__}"
                )
        if not isinstance(unknown_cost, str) or unknown_cost not in ("deny", "allow"):
            shown = (
                repr(unknown_cost)[:80]
                if isinstance(unknown_cost, str)
                else "a " + type(unknown_cost).__name__
            )
            raise ConfigurationError(f"unknown_cost must be 'deny' or 'allow', not {shown}")
        for name, fn in (("estimator", estimator), ("clock", clock)):
            if fn is not None and not callable(fn):
                raise ConfigurationError(f"{name} must be a function, not {type(fn).__name__}")
        if ledger is not None and not all(
            callable(getattr(ledger, m, None)) for m in ("reserve", "settle", "spent")
        ):
            raise ConfigurationError(
                f"ledger must be a Ledger (reserve, settle, spent), not {type(ledger).__name__}"
            )
        self.limits = list(limits)
        if ledger is None:
            ledger = default_ledger()  # Redis when configured (LLMRELAY_REDIS_URL), else memory
        self.ledger = ledger
        self.estimator = estimator or bound_request_cost
        #: Our own estimate (not a caller's function): priced by the engine's own catalog.
        self._own_estimate = estimator is None
        self.unknown_cost = unknown_cost
        self.clock = clock

    @property
    def ledger(self) -> Ledger:
        """Where spent and reserved dollars live."""
        return self._ledger

    @ledger.setter
    def ledger(self, ledger: Ledger) -> None:
        self._ledger = ledger
        #: An in-process ledger has no await point: its operations cannot be cut by a cancel
        #: (and are called as plain functions).
        self._local = type(ledger) is MemoryLedger
        self._memory = ledger if type(ledger) is MemoryLedger else None

    #: True in a subclass whose :meth:`applicable` builds the limits per call (so none need be
    #: given to the constructor).
    limits_per_call: ClassVar[bool] = False

    def applicable(self, ctx: CallContext) -> Sequence[BudgetLimit]:
        """The limits to check for a call (each still decides with ``value_for``): all of
        them. A subclass with a limit per subject (the gateway's per-key budgets) returns only
        the call's own, so a call costs the same with ten keys or ten thousand."""
        return self.limits

    def call_entries(self, dep: Deployment, ctx: CallContext, now: float) -> CallEntries:
        """The ledger entries ``(key, limit in dollars)`` of the limits that apply to the call
        at ``now``, those limits, and the entries' keys: each of :meth:`applicable` that
        ``value_for`` gives a subject. (A subclass may answer from what it remembers, as the
        gateway's does; the answer is only read.)"""
        entries, applied = limit_entries(self.applicable(ctx), dep, ctx, now)
        return entries, applied, [k for k, _ in entries]

    async def reserve(
        self, req: ChatRequest, dep: Deployment, ctx: CallContext
    ) -> Reservation | None:
        """Hold this candidate's estimate (plus what the call already spent) on every budget
        that applies to it; called before each candidate of a call (see ``BudgetLayer``).

        The first candidate reserves its estimate; a later one (a fallback after a failure or a
        skipped primary, a structured re-ask) tops the call's reservation up to what was spent
        plus its own estimate -- one atomic ledger operation, refused with
        :class:`BudgetExceededError` when it would pass a limit. The common call (the first
        candidate answers) does exactly one ledger operation."""
        res: Reservation | None = ctx.reservation
        entries, applied, keys = self.call_entries(dep, ctx, self.clock())
        if res is not None:
            _close_segment(res, ctx)
            res.current = list(keys)
        if not entries:
            return res
        if self._own_estimate:  # priced by the engine's own catalog
            estimate = bound_request_cost(req, dep, registry=catalog_registry(ctx))
        elif self.estimator is estimate_request_cost:
            estimate = estimate_request_cost(req, dep, registry=catalog_registry(ctx))
        else:
            estimate = _checked_estimate(self.estimator(req, dep))
        if estimate is None:
            if self.unknown_cost == "allow":
                return res
            raise BudgetExceededError(
                f"a budget applies but the price of {dep.label} is unknown, so the call cannot be "
                "checked against it; add the model's price to the catalog or set "
                "unknown_cost='allow'",
                provider=dep.provider,
                model=dep.model,
                scope=applied[0].scope,
                limit_usd=applied[0].limit_usd,
            )
        if res is None:
            # The call's first reservation (the hot path): one ledger operation on all keys.
            # The reservation's own lists (a later candidate appends to them).
            own, limits = list(keys), list(applied)
            memory = self._memory
            if memory is not None:  # no await point: nothing can cut it
                failed = memory.reserve_now(entries, estimate)
                res = (
                    _holding(own, estimate, limits)
                    if failed is None
                    else Reservation([], 0.0, [], current=own)
                )
            else:
                res = Reservation([], 0.0, [], current=own)
            u = ctx.usage
            if ctx.cost is not None or u.input_tokens + u.output_tokens:  # ``total_tokens``
                _mark(res, ctx)
            ctx.reservation = res  # before any await: a cancelled call still settles it
            if memory is None:
                first = res

                def hold_all(failed: int | None) -> None:
                    if failed is None:
                        first.keys, first.limits, first.amount = own, limits, estimate
                        first.held = dict.fromkeys(own, estimate)

                failed = await self._ledger_op(self.ledger.reserve(entries, estimate), hold_all)
            if failed is not None:
                await self._refuse(entries, applied, failed, estimate, dep, ctx)
            return res
        # A later candidate: top up each key to what it spent so far plus this estimate.
        r = res
        groups: dict[float, list[int]] = {}
        for i, (key, _) in enumerate(entries):
            need = r.spent.get(key, 0.0) + estimate - r.held.get(key, 0.0)
            if need > 1e-12:
                groups.setdefault(need, []).append(i)
        for need, idx in groups.items():

            def hold(failed: int | None, idx: list[int] = idx, need: float = need) -> None:
                if failed is None:
                    for i in idx:
                        key = entries[i][0]
                        if key not in r.held:
                            r.keys.append(key)
                            r.limits.append(applied[i])
                        r.held[key] = r.held.get(key, 0.0) + need
                        r.amount = max(r.amount, r.held[key])

            group = [entries[i] for i in idx]
            failed = await self._ledger_op(self.ledger.reserve(group, need), hold)
            if failed is not None:
                await self._refuse(entries, applied, idx[failed], need, dep, ctx)
        return r

    async def _refuse(
        self,
        entries: Sequence[tuple[str, float]],
        applied: Sequence[BudgetLimit],
        i: int,
        need: float,
        dep: Deployment,
        ctx: CallContext,
    ) -> None:
        """Raise the budget error for entry ``i``, which could not take ``need`` more dollars."""
        lim = applied[i]
        spent, reserved = await self.ledger.spent(entries[i][0])
        more = " more" if ctx.trace else ""
        raise BudgetExceededError(
            f"the {lim.period} budget of ${lim.limit_usd:g} for {lim.scope}"
            f"{'=' + (lim.match or '') if lim.match else ''} would be exceeded: ${spent:.6f} "
            f"spent, ${reserved:.6f} reserved by calls in flight, this call may cost up to "
            f"${need:.6f}{more} on {dep.label}",
            provider=dep.provider,
            model=dep.model,
            scope=lim.scope,
            limit_usd=lim.limit_usd,
            spent_usd=spent,
            retry_after=_retry_after(lim, spent, need, self.clock()),
        )

    async def settle(self, reservation: Any, ctx: CallContext) -> None:
        """Release everything the call held and record what it spent, per budget key: the
        priced cost when known; else nothing when no provider answered, and what was held when
        tokens were used at an unknown price (conservative)."""
        if reservation is None:
            return
        assert isinstance(reservation, Reservation)
        res = reservation
        if not res.held:
            return
        if not res.spent and res.current == res.keys:
            # One candidate's keys, nothing spent before it (the usual call): every key holds
            # the same amount and is charged the same -- one ledger operation.
            u = ctx.usage
            if u.input_tokens + u.output_tokens == res.mark_tokens:  # ``total_tokens``
                actual = 0.0  # no provider answered
            else:
                cost = ctx.cost  # ``_known_usd``, inline
                if cost is not None and cost.known and cost.usd is not None:
                    actual = max(cost.usd - res.mark_usd, 0.0)
                else:
                    actual = res.amount  # tokens used at an unknown price: what was held
            res.held = {}
            memory = self._memory
            if memory is not None:
                memory.settle_now(res.keys, res.amount, actual)
            else:
                await self._ledger_op(self.ledger.settle(res.keys, res.amount, actual))
            return
        _close_segment(res, ctx)
        by_amounts: dict[tuple[float, float], list[str]] = {}
        for key, held in res.held.items():
            by_amounts.setdefault((held, res.spent.get(key, 0.0)), []).append(key)
        res.held = {}  # settled once, even if settle is called again
        ledger = self.ledger

        async def settle_all() -> None:
            for (held, actual), keys in by_amounts.items():
                await ledger.settle(keys, held, actual)

        # One operation: a cancel during the first group does not leave the others held.
        await (settle_all() if self._local else self._ledger_op(settle_all()))

    async def _ledger_op(
        self, op: Coroutine[Any, Any, T], done: Callable[[T], None] | None = None
    ) -> T:
        """Await a ledger operation so that cancelling the call cannot lose its effect; ``done``
        sees its answer in every case (a reservation made is recorded, so it is released).

        A remote ledger's (Redis) operation runs as its own task: if the call is cancelled
        while the round trip is in flight, the operation completes and its answer is recorded
        before the cancellation goes on. (A second cancellation during that wait gives up
        waiting; the operation still completes in the ledger.)"""
        if self._local:
            out = await op
        else:
            task = asyncio.ensure_future(op)
            try:
                out = await asyncio.shield(task)
            except asyncio.CancelledError:
                out = await asyncio.shield(task)
                if done is not None:
                    done(out)
                raise
        if done is not None:
            done(out)
        return out

    async def status(self, limit: BudgetLimit, value: str = "*") -> dict[str, float]:
        """Spent and reserved dollars of one budget in the current period."""
        spent, reserved = await self.ledger.spent(limit.ledger_key(value, self.clock()))
        return {"limit_usd": float(limit.limit_usd), "spent_usd": spent, "reserved_usd": reserved}


def limit_entries(
    limits: Sequence[BudgetLimit], dep: Deployment, ctx: CallContext, now: float
) -> tuple[list[tuple[str, float]], list[BudgetLimit]]:
    """The ledger entries of those of ``limits`` that apply to the call, and those limits."""
    entries: list[tuple[str, float]] = []
    applied: list[BudgetLimit] = []
    for lim in limits:
        v = lim.value_for(dep, ctx)
        if v is not None:
            entries.append((lim.ledger_key(v, now), float(lim.limit_usd)))
            applied.append(lim)
    return entries, applied


def _retry_after(lim: BudgetLimit, spent: float, need: float, now: float) -> float | None:
    """Seconds until a refused call may fit: a second when only calls in flight hold what it
    needs (they settle when they finish), else the start of the next day or month (UTC); None
    when it never will (a total budget, or a call that costs more than the whole limit)."""
    if need > lim.limit_usd or (lim.period == "total" and spent + need > lim.limit_usd):
        return None
    if spent + need <= lim.limit_usd:
        return 1.0
    d = datetime.fromtimestamp(now, UTC)
    if lim.period == "day":
        start = d.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    else:
        start = datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp() - now


def _known_usd(ctx: CallContext) -> float | None:
    cost = ctx.cost
    if cost is not None and cost.known and cost.usd is not None:
        return cost.usd
    return None


def _mark(res: Reservation, ctx: CallContext) -> None:
    res.mark_usd = _known_usd(ctx) or 0.0
    res.mark_tokens = ctx.usage.total_tokens


def _close_segment(res: Reservation, ctx: CallContext) -> None:
    """Charge what the call spent since the current candidate started to that candidate's keys."""
    tokens = ctx.usage.total_tokens
    if tokens == res.mark_tokens:
        return  # nothing answered since
    usd = _known_usd(ctx)
    for key in res.current:
        if usd is not None:
            res.spent[key] = res.spent.get(key, 0.0) + max(usd - res.mark_usd, 0.0)
        else:
            # Tokens were used at an unknown price: count all that was held as spent.
            res.spent[key] = max(res.spent.get(key, 0.0), res.held.get(key, 0.0))
    if usd is not None:
        res.mark_usd = usd
    res.mark_tokens = tokens
