"""Budgets: reserve the estimate before a call, settle the actual cost after; never overspend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmrelay
from llmrelay.budgets import BudgetLimit, Budgets, MemoryLedger
from llmrelay.layers import Cost
from llmrelay.providers import Deployment
from llmrelay.testing.fake import FakeUpstream
from llmrelay.types import ChatRequest, GenerationParams, Message, Usage

from .config_isolation import isolated_config
from .conftest import CANARY_KEY

DAY = 86_400.0


class FixedPrices:
    """A catalog layer whose every answer costs ``usd`` (or an unknown price)."""

    def __init__(self, usd: float | None) -> None:
        self.usd = usd

    def prepare(self, req: ChatRequest, dep: Deployment) -> ChatRequest:
        return req

    def cost(self, dep: Deployment, usage: Usage) -> Cost:
        if self.usd is None:
            return Cost.unknown("no price in this test")
        return Cost(self.usd, True)


def make_client(
    budgets: Budgets, *, usd: float | None = 0.01, delay: float = 0.0
) -> tuple[llmrelay.Client, list[int]]:
    """A client whose model is a FunctionModel that yields to the loop, so calls overlap."""
    calls: list[int] = []

    async def answer(messages: list[Message], params: GenerationParams) -> llmrelay.Response:
        calls.append(1)
        await asyncio.sleep(delay)
        return llmrelay.Response(text="ok", usage=Usage(10, 5))

    engine = llmrelay.Engine(budget=budgets, catalog=FixedPrices(usd))
    client = llmrelay.Client(engine=engine)
    client.model = llmrelay.FunctionModel(answer, name="budgeted")  # type: ignore[attr-defined]
    return client, calls


async def test_concurrent_calls_racing_for_the_last_dollar_never_overspend() -> None:
    # Each call reserves $0.01 and costs $0.01; $0.505 admits exactly 50 of 100 racing calls.
    ledger = MemoryLedger()
    budgets = Budgets(
        [BudgetLimit(0.505, period="total")], ledger=ledger, estimator=lambda r, d: 0.01
    )
    client, calls = make_client(budgets, delay=0.001)
    results = await asyncio.gather(
        *(client.achat(client.model, "hi") for _ in range(100)),  # type: ignore[attr-defined]
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, llmrelay.Response)]
    refused = [r for r in results if isinstance(r, llmrelay.BudgetExceededError)]
    assert len(ok) == 50
    assert len(refused) == 50
    assert len(calls) == 50  # a refused call never reaches the model
    spent, reserved = await ledger.spent("global|*|total|total")
    assert spent == pytest.approx(0.50)
    assert spent <= 0.505
    assert reserved == pytest.approx(0.0)
    err = refused[0]
    assert err.limit_usd == 0.505
    assert err.scope == "global"
    assert "would be exceeded" in str(err)


async def test_settling_the_actual_cost_frees_what_the_estimate_held() -> None:
    # The estimate ($0.02) is twice the actual cost ($0.01): settling releases the difference.
    budgets = Budgets([BudgetLimit(0.05, period="total")], estimator=lambda r, d: 0.02)
    client, calls = make_client(budgets, usd=0.01)
    done = 0

    async def call_until_refused() -> None:
        nonlocal done
        for _ in range(10):
            await client.achat(client.model, "hi")  # type: ignore[attr-defined]
            done += 1

    with pytest.raises(llmrelay.BudgetExceededError):
        await call_until_refused()
    # 0.00 -> 0.01 -> 0.02 -> 0.03 (+0.02 = 0.05 still fits) -> 0.04 (+0.02 > 0.05) refused
    assert done == 4
    assert len(calls) == 4


async def test_a_failed_call_spends_nothing() -> None:
    budgets = Budgets([BudgetLimit(0.015, period="total")], estimator=lambda r, d: 0.01)
    model = llmrelay.TestModel([llmrelay.ServerError("down", status=500), "ok"])
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=FixedPrices(0.01)))
    with pytest.raises(llmrelay.ServerError):
        await client.achat(model, "hi", retries=0)
    r = await client.achat(model, "hi")  # the failed call's reservation was released
    assert r.text == "ok"


def test_periods_scopes_and_matches() -> None:
    now = 1_700_000_000.0  # 2023-11-14 UTC
    day = BudgetLimit(1.0, period="day", scope="user")
    month = BudgetLimit(1.0, period="month", scope="tag:team", match="search")
    assert day.ledger_key("alice", now) == "user|alice|day|2023-11-14"
    assert day.ledger_key("alice", now + DAY) == "user|alice|day|2023-11-15"
    assert month.ledger_key("search", now) == "tag:team|search|month|2023-11"
    assert BudgetLimit(1.0, period="total").ledger_key("*", now) == "global|*|total|total"


async def test_each_user_has_their_own_daily_budget() -> None:
    budgets = Budgets([BudgetLimit(0.025, period="day", scope="user")], estimator=lambda r, d: 0.01)
    client, _ = make_client(budgets)
    model = client.model  # type: ignore[attr-defined]
    for _ in range(2):
        await client.achat(model, "hi", tags={"user": "alice"})
    with pytest.raises(llmrelay.BudgetExceededError) as info:
        await client.achat(model, "hi", tags={"user": "alice"})
    assert info.value.scope == "user"
    await client.achat(model, "hi", tags={"user": "bob"})  # bob's budget is untouched
    await client.achat(model, "hi")  # no user tag: the user budget does not apply


async def test_unknown_price_is_denied_by_default_and_allowed_when_asked() -> None:
    deny = Budgets([BudgetLimit(1.0)], estimator=lambda r, d: None)
    client, calls = make_client(deny, usd=None)
    with pytest.raises(llmrelay.BudgetExceededError, match=r"price .* is unknown"):
        await client.achat(client.model, "hi")  # type: ignore[attr-defined]
    assert calls == []
    allow = Budgets([BudgetLimit(1.0)], estimator=lambda r, d: None, unknown_cost="allow")
    client, calls = make_client(allow, usd=None)
    await client.achat(client.model, "hi")  # type: ignore[attr-defined]
    assert len(calls) == 1


async def test_budget_is_checked_before_anything_is_sent(fake: FakeUpstream) -> None:
    budgets = Budgets([BudgetLimit(0.000001, period="total")])  # the catalog's real prices
    engine = llmrelay.Engine(budget=budgets, catalog=llmrelay.Catalog())
    client = llmrelay.Client(engine=engine)
    with pytest.raises(llmrelay.BudgetExceededError) as info:
        await client.achat(
            "openai/gpt-6-luna",
            "hi",
            max_tokens=1000,
            api_key=CANARY_KEY,
            base_url=fake.openai_base_url,
        )
    assert fake.requests == []
    assert CANARY_KEY not in str(info.value)
    await client.aclose()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"limit_usd": 0}, "positive number"),
        ({"limit_usd": -5}, "positive number"),
        ({"limit_usd": float("nan")}, "positive number"),
        ({"limit_usd": 1, "period": "week"}, "period"),
        ({"limit_usd": 1, "scope": "team"}, "scope"),
        ({"limit_usd": 1, "scope": "tag:"}, "scope"),
    ],
)
def test_bad_limits_are_configuration_errors(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(llmrelay.ConfigurationError, match=words):
        BudgetLimit(**kwargs)


def test_budgets_need_limits() -> None:
    with pytest.raises(llmrelay.ConfigurationError, match="at least one"):
        Budgets([])
    with pytest.raises(llmrelay.ConfigurationError, match="unknown_cost"):
        Budgets([BudgetLimit(1.0)], unknown_cost="maybe")  # type: ignore[arg-type]


@pytest.fixture
def _isolated() -> Iterator[None]:
    with isolated_config():
        yield


@pytest.mark.usefixtures("_isolated")
def test_budgets_from_the_config_file() -> None:
    Path("llmrelay.toml").write_text(
        '[[budgets.limit]]\nlimit_usd = 5.0\nperiod = "day"\nscope = "user"\n'
    )
    engine = llmrelay.Client().engine
    assert isinstance(engine.budget, Budgets)
    assert engine.budget.limits == [BudgetLimit(5.0, period="day", scope="user")]


@pytest.mark.usefixtures("_isolated")
def test_a_zero_budget_in_the_config_file_is_a_file_error() -> None:
    Path("llmrelay.toml").write_text("[[budgets.limit]]\nlimit_usd = 0\n")
    with pytest.raises(llmrelay.ConfigFileError, match="positive number"):
        llmrelay.Client()
