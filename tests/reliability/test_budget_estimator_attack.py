"""A careless caller's ``estimator`` (``Budgets(estimator=...)``, ``_checked_estimate``): odd
numbers are refused as a configuration error before the ledger is touched, or priced as
numbers; ``inf`` is a refusal as over budget, never an error of another kind."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

import llmrelay
from llmrelay.reliability.budgets import BudgetLimit, Budgets
from llmrelay.reliability.budgets_ledger import MemoryLedger

from .test_budgets import make_client


@pytest.mark.parametrize("period", ["total", "day", "month"])
async def test_an_infinite_estimate_is_refused_as_over_budget(period: str) -> None:
    ledger = MemoryLedger()
    budgets = Budgets(
        [BudgetLimit(0.05, period=period)], ledger=ledger, estimator=lambda r, d: float("inf")
    )
    client, calls = make_client(budgets)
    with pytest.raises(llmrelay.BudgetExceededError):
        await client.achat(client.model, "hi")  # type: ignore[attr-defined]
    assert calls == []
    assert not any(ledger._reserved.values())


@pytest.mark.parametrize(
    "odd", [10**400, Decimal("0.01"), Fraction(1, 100), complex(0.01, 0)], ids=repr
)
async def test_an_estimate_of_an_odd_number_type_is_a_configuration_error(odd: Any) -> None:
    ledger = MemoryLedger()
    budgets = Budgets(
        [BudgetLimit(0.05, period="total")], ledger=ledger, estimator=lambda r, d: odd
    )
    client, calls = make_client(budgets)
    with pytest.raises(llmrelay.ConfigurationError, match="estimator returned"):
        await client.achat(client.model, "hi")  # type: ignore[attr-defined]
    assert calls == []
    assert ledger._reserved == {}
    assert ledger._spent == {}


@pytest.mark.parametrize("value", [-0.0, 0, 5e-324, 0.05])
async def test_edge_prices_are_numbers(value: float) -> None:
    ledger = MemoryLedger()
    budgets = Budgets(
        [BudgetLimit(0.05, period="total")], ledger=ledger, estimator=lambda r, d: value
    )
    client, calls = make_client(budgets)
    await client.achat(client.model, "hi")  # type: ignore[attr-defined]
    assert calls == [1]


async def test_an_async_estimator_is_a_configuration_error_and_no_unawaited_coroutine() -> None:
    async def estimator(r: Any, d: Any) -> float:
        return 0.01

    ledger = MemoryLedger()
    budgets = Budgets([BudgetLimit(0.05, period="total")], ledger=ledger, estimator=estimator)
    client, calls = make_client(budgets)
    with pytest.raises(llmrelay.ConfigurationError, match="not an async one"):
        await client.achat(client.model, "hi")  # type: ignore[attr-defined]
    assert calls == []
    assert ledger._reserved == {}
    assert ledger._spent == {}
