"""Each virtual key's budget and rate limits, enforced by the engine's own layers.

A gateway call carries its key's id and team in its tags (``vkey``, ``team``). The budget
layer (:class:`KeyBudgets`) checks the key's budget and, when the team has one, the team's;
the rate limiter (:class:`KeyRateLimiter`) adds the key's rpm/tpm as one more scope. Both are
the engine's layers, so reservations are made before the call and settled after it, retries and
fallbacks are charged, and with ``LLMRELAY_REDIS_URL`` every gateway instance shares one ledger
and one set of counters: admitted calls never pass a key's limit, however many instances run.
Only the call's own limits are looked at (a dict lookup), so ten thousand keys cost what one
does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.layers import CallContext
from ..reliability.budgets import BudgetLimit, Budgets, CallEntries
from ..reliability.ratelimit import Limits, RateLimiter
from .keys import VirtualKey

if TYPE_CHECKING:
    from ..providers.table import Deployment

__all__ = ["KeyBudgets", "KeyRateLimiter", "TeamBudget"]


class TeamBudget:
    """A team's budget (``[server.teams.NAME] budget_usd = ..., budget_period = ...``)."""

    __slots__ = ("limit",)

    def __init__(self, team: str, budget_usd: float, period: Any = "month") -> None:
        self.limit = BudgetLimit(budget_usd, period, scope="tag:team", match=team)


class _KeyHold:
    """A key's record, its budget limit, and what applies to its calls (``call_entries``'
    answer) on one UTC day for one team."""

    __slots__ = ("limit", "plan", "record")

    def __init__(self, record: VirtualKey, limit: BudgetLimit) -> None:
        self.record = record
        self.limit = limit
        #: (UTC day number, team tag, the answer).
        self.plan: tuple[float, str | None, CallEntries] = (math.nan, None, ((), (), ()))


class KeyBudgets(Budgets):
    """Budgets per virtual key and per team (see the module docstring).

    A key's limit is held with what applies to its calls, remembered for the day: a call's
    ledger entries are a few dict lookups, and no string is built but once a day (or when the
    key's record changes)."""

    limits_per_call = True

    def __init__(
        self,
        *,
        static: Sequence[BudgetLimit] = (),
        teams: Mapping[str, TeamBudget] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(list(static), **kw)
        self._static = tuple(static)
        self._keys: dict[str, _KeyHold] = {}
        #: The table before it last started afresh: a call looked up before then still finds
        #: its key's limit when it reserves.
        self._old: dict[str, _KeyHold] = {}
        self._teams = {t: b.limit for t, b in (teams or {}).items()}

    def limit_for(self, key: VirtualKey) -> BudgetLimit | None:
        """The key's budget limit (rebuilt when the key's record changed)."""
        if key.budget_usd is None:
            self._keys.pop(key.id, None)
            self._old.pop(key.id, None)
            return None
        held = self._keys.get(key.id)
        if held is not None and held.record is key:
            return held.limit
        if len(self._keys) > 100_000:
            self._old, self._keys = self._keys, {}
        if held is None:
            held = self._old.get(key.id)
        if held is None or held.record is not key:
            lim = BudgetLimit(key.budget_usd, key.budget_period, scope="tag:vkey", match=key.id)
            held = _KeyHold(key, lim)
        self._keys[key.id] = held
        return held.limit

    def _held(self, vkey: str) -> _KeyHold | None:
        held = self._keys.get(vkey)
        return self._old.get(vkey) if held is None else held

    def applicable(self, ctx: CallContext) -> Sequence[BudgetLimit]:
        tags = ctx.tags
        out = list(self._static)
        held = self._held(tags.get("vkey", ""))
        if held is not None:
            out.append(held.limit)
        team = tags.get("team")
        if team is not None and team in self._teams:
            out.append(self._teams[team])
        return out

    def call_entries(self, dep: Deployment, ctx: CallContext, now: float) -> CallEntries:
        """``Budgets.call_entries``, remembered with the key for the day: without static
        limits, what applies to a call of a key with a budget depends only on the key's limit
        (whose ``match`` is the key id it is held under), the call's team and the day."""
        tags = ctx.opts.tags  # ``ctx.tags``
        if not tags or self._static:
            return super().call_entries(dep, ctx, now)
        vkey = tags.get("vkey")
        held = self._keys.get(vkey) if vkey is not None else None
        if held is None and vkey is not None:
            held = self._old.get(vkey)  # ``_held``, inline
        if held is None:
            return super().call_entries(dep, ctx, now)
        day = now // 86400.0
        team = tags.get("team")
        plan = held.plan
        if plan[0] == day and plan[1] == team:
            return plan[2]
        entries, applied, keys = super().call_entries(dep, ctx, now)
        answer = (tuple(entries), tuple(applied), tuple(keys))
        held.plan = (day, team, answer)
        return answer


class KeyRateLimiter(RateLimiter):
    """The configured limits plus each virtual key's rpm/tpm."""

    scopes_per_call = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        #: key id -> (its record, its scopes: one, ``vkey:<id>`` with its limits)
        self._keys: dict[str, tuple[VirtualKey, tuple[tuple[str, Limits], ...]]] = {}
        #: The table before it last started afresh: a call looked up just before that still
        #: finds its key's limits when it acquires (as ``KeyBudgets`` does).
        self._old: dict[str, tuple[VirtualKey, tuple[tuple[str, Limits], ...]]] = {}

    def limits_for(self, key: VirtualKey) -> None:
        """Take the key's current limits (call with each authenticated request's record)."""
        if key.rpm is None and key.tpm is None:
            self._keys.pop(key.id, None)
            self._old.pop(key.id, None)
            return
        held = self._keys.get(key.id)
        if held is not None and held[0] is key:
            return
        if len(self._keys) > 100_000:
            self._old, self._keys = self._keys, {}
        self._keys[key.id] = (key, ((f"vkey:{key.id}", Limits(rpm=key.rpm, tpm=key.tpm)),))

    def call_scopes(self, ctx: CallContext) -> Sequence[tuple[str, Limits]]:
        vkey = ctx.tags.get("vkey")
        if vkey is None:
            return ()
        held = self._keys.get(vkey)
        if held is None:
            held = self._old.get(vkey)
        return held[1] if held is not None else ()
