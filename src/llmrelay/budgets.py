"""Spending budgets (seed 000's cost management): limits per period, per key, user, tag or tenant.

Each call *reserves* its estimated cost (input tokens + ``max_tokens`` at the model's prices)
against every budget that applies to it before anything is sent, and *settles* with the actual
cost afterwards (every attempt, retry, fallback and re-ask included). The check-and-reserve is
atomic, so concurrent calls can never spend past a limit: the last dollar goes to one caller
and the others get :class:`BudgetExceededError`.

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
spent and reserved amounts is pluggable: in memory here, Redis to share it across processes
(``llmrelay.state``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .errors import BudgetExceededError, ConfigurationError
from .state.base import key_id

if TYPE_CHECKING:
    from .layers import CallContext
    from .providers import Deployment
    from .types import ChatRequest

__all__ = ["BudgetLimit", "Budgets", "Ledger", "MemoryLedger", "Reservation"]

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
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v) or v <= 0:
            raise ConfigurationError(
                f"a budget's limit_usd must be a positive number of dollars, not {v!r}"
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
        d = datetime.fromtimestamp(now, UTC)
        pid = (
            d.strftime("%Y-%m-%d")
            if self.period == "day"
            else d.strftime("%Y-%m")
            if self.period == "month"
            else "total"
        )
        return f"{self.scope}|{value}|{self.period}|{pid}"


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
    """An in-process ledger (one lock; operations are tiny)."""

    def __init__(self) -> None:
        self._spent: dict[str, float] = {}
        self._reserved: dict[str, float] = {}
        self._lock = threading.Lock()

    async def reserve(self, entries: Sequence[tuple[str, float]], amount: float) -> int | None:
        with self._lock:
            for i, (key, limit) in enumerate(entries):
                if (
                    self._spent.get(key, 0.0) + self._reserved.get(key, 0.0) + amount
                    > limit + 1e-12
                ):
                    return i
            for key, _ in entries:
                self._reserved[key] = self._reserved.get(key, 0.0) + amount
            return None

    async def settle(self, keys: Sequence[str], reserved: float, actual: float) -> None:
        with self._lock:
            for key in keys:
                self._reserved[key] = max(0.0, self._reserved.get(key, 0.0) - reserved)
                self._spent[key] = self._spent.get(key, 0.0) + actual

    async def spent(self, key: str) -> tuple[float, float]:
        with self._lock:
            return self._spent.get(key, 0.0), self._reserved.get(key, 0.0)


@dataclass(slots=True)
class Reservation:
    keys: list[str]
    amount: float
    limits: list[BudgetLimit] = field(default_factory=list)


Estimator = Callable[["ChatRequest", "Deployment"], "float | None"]


def _default_estimator(req: ChatRequest, dep: Deployment) -> float | None:
    from .costs import estimate_request_cost

    return estimate_request_cost(req, dep)


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
        if not limits:
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
            from .state import default_ledger

            ledger = default_ledger()  # Redis when configured (LLMRELAY_REDIS_URL), else memory
        self.ledger: Ledger = ledger
        self.estimator = estimator or _default_estimator
        self.unknown_cost = unknown_cost
        self.clock = clock

    async def reserve(
        self, req: ChatRequest, dep: Deployment, ctx: CallContext
    ) -> Reservation | None:
        now = self.clock()
        entries: list[tuple[str, float]] = []
        applied: list[BudgetLimit] = []
        for lim in self.limits:
            v = lim.value_for(dep, ctx)
            if v is not None:
                entries.append((lim.ledger_key(v, now), float(lim.limit_usd)))
                applied.append(lim)
        if not entries:
            return None
        estimate = self.estimator(req, dep)
        if estimate is None:
            if self.unknown_cost == "allow":
                return None
            raise BudgetExceededError(
                f"a budget applies but the price of {dep.label} is unknown, so the call cannot be "
                "checked against it; add the model's price to the catalog or set "
                "unknown_cost='allow'",
                provider=dep.provider,
                model=dep.model,
                scope=applied[0].scope,
                limit_usd=applied[0].limit_usd,
            )
        failed = await self.ledger.reserve(entries, estimate)
        if failed is not None:
            lim = applied[failed]
            spent, reserved = await self.ledger.spent(entries[failed][0])
            raise BudgetExceededError(
                f"the {lim.period} budget of ${lim.limit_usd:g} for {lim.scope}"
                f"{'=' + (lim.match or '') if lim.match else ''} would be exceeded: ${spent:.6f} "
                f"spent, ${reserved:.6f} reserved by calls in flight, this call may cost up to "
                f"${estimate:.6f}",
                provider=dep.provider,
                model=dep.model,
                scope=lim.scope,
                limit_usd=lim.limit_usd,
                spent_usd=spent,
            )
        return Reservation([k for k, _ in entries], estimate, applied)

    async def settle(self, reservation: Any, ctx: CallContext) -> None:
        if reservation is None:
            return
        assert isinstance(reservation, Reservation)
        cost = ctx.cost
        actual = cost.usd if cost is not None and cost.known and cost.usd is not None else None
        if actual is None:
            # Nothing was spent (no provider answered), or the price is unknown: with no usage
            # the call cost nothing; with usage but no price, keep the estimate (conservative).
            actual = 0.0 if ctx.usage.total_tokens == 0 else reservation.amount
        await self.ledger.settle(reservation.keys, reservation.amount, actual)

    async def status(self, limit: BudgetLimit, value: str = "*") -> dict[str, float]:
        """Spent and reserved dollars of one budget in the current period."""
        spent, reserved = await self.ledger.spent(limit.ledger_key(value, self.clock()))
        return {"limit_usd": float(limit.limit_usd), "spent_usd": spent, "reserved_usd": reserved}
