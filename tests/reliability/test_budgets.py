"""Budgets: reserve the estimate before a call, settle the actual cost after; never overspend."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay.catalog.costs import Cost
from llmrelay.providers.table import Deployment
from llmrelay.reliability.budgets import BudgetLimit, Budgets, Ledger, MemoryLedger
from llmrelay.reliability.budgets_ledger import RedisLedger
from llmrelay.state import RedisStore
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import ChatRequest, GenerationParams, Message, Usage

from .. import redis_services
from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY

DAY = 86_400.0

# pytest fixtures
redis_url = redis_services.redis_url
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store


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


def test_a_key_asked_a_hair_before_midnight_is_that_days_for_the_whole_day() -> None:
    """The period ids are remembered per UTC day number (``now // 86400``). They were spelled
    from ``datetime.fromtimestamp(now)``, which rounds to the microsecond: asked within half a
    microsecond before a midnight (a clock stepped back, a test clock, another Budgets' clock)
    they spelled the next day -- and the next month at a month's end -- and every later call
    of that day was charged to the next period's key (spending the next period's budget and
    escaping this one's)."""
    import math

    midnight = 1_701_388_800.0  # 2023-12-01 00:00 UTC
    month = BudgetLimit(1.0, period="month", scope="user")
    day = BudgetLimit(1.0, period="day", scope="user")
    hair = math.nextafter(midnight, 0.0)
    assert day.ledger_key("a", hair) == "user|a|day|2023-11-30"
    assert month.ledger_key("a", hair) == "user|a|month|2023-11"
    assert day.ledger_key("a", midnight - 3600.0) == "user|a|day|2023-11-30"
    assert month.ledger_key("a", midnight - 3600.0) == "user|a|month|2023-11"
    assert day.ledger_key("a", midnight) == "user|a|day|2023-12-01"


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


# ----------------------------------------------------------------- budgets hold whatever the route

CHEAP = "openai/gpt-4.1-mini"
PRICEY = "groq/llama-3.1-8b-instant"
TOTAL = "global|*|total|total"


class PerModelPrices:
    """A catalog layer charging a flat price per answer by model, and a matching estimator
    (the estimate is a quarter above the price, so settling has something to give back)."""

    def __init__(self, prices: dict[str, float]) -> None:
        self.prices = prices

    def prepare(self, req: ChatRequest, dep: Deployment) -> ChatRequest:
        return req

    def cost(self, dep: Deployment, usage: Usage) -> Cost:
        return Cost(self.prices[dep.label], True)

    def estimate(self, req: ChatRequest, dep: Deployment) -> float:
        return self.prices[dep.label] * 1.25


def dead_url() -> str:
    """A base URL nothing listens on: every call to it fails to connect."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def groq_on_fake(fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> FakeUpstream:
    """The PRICEY fallback answers from the fake; the CHEAP primary has no key unless given."""
    monkeypatch.setenv("GROQ_API_KEY", CANARY_KEY)
    monkeypatch.setenv("GROQ_BASE_URL", fake.openai_base_url)
    return fake


def sorted_outcomes(
    results: list[Any],
) -> tuple[list[llmrelay.Response], list[llmrelay.BudgetExceededError]]:
    ok = [r for r in results if isinstance(r, llmrelay.Response)]
    refused = [r for r in results if isinstance(r, llmrelay.BudgetExceededError)]
    assert len(ok) + len(refused) == len(results), [
        r for r in results if not isinstance(r, llmrelay.Response | llmrelay.BudgetExceededError)
    ]
    return ok, refused


async def test_a_fallback_100000x_pricier_than_the_primary_cannot_overspend(
    groq_on_fake: FakeUpstream,
) -> None:
    # The primary always fails (nothing listens); its fallback costs 100,000x as much. Twenty
    # concurrent calls admitted on the primary's estimate must not all spend on the fallback.
    prices = PerModelPrices({CHEAP: 0.000003, PRICEY: 0.3})
    ledger = MemoryLedger()
    budgets = Budgets([BudgetLimit(1.0, period="total")], ledger=ledger, estimator=prices.estimate)
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=prices))
    dead = dead_url()
    results = await asyncio.gather(
        *(
            client.achat(
                CHEAP, "hi", api_key=CANARY_KEY, base_url=dead, retries=0, fallbacks=[PRICEY]
            )
            for _ in range(20)
        ),
        return_exceptions=True,
    )
    ok, refused = sorted_outcomes(results)
    spent, reserved = await ledger.spent(TOTAL)
    assert spent <= 1.0
    assert spent == pytest.approx(0.3 * len(ok))
    assert reserved == pytest.approx(0.0)
    assert 1 <= len(ok) <= 3  # $1 holds three $0.30 answers at most
    assert len(groq_on_fake.requests) == len(ok)  # a refused fallback is never sent
    err = refused[0]
    assert err.model == "llama-3.1-8b-instant"
    assert "would be exceeded" in str(err)
    assert isinstance(err.__cause__, llmrelay.AllAttemptsFailedError)  # the primary's failure
    assert (err.trace[-1].deployment, err.trace[-1].outcome) == (PRICEY, "skipped")
    await client.aclose()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_primary_without_a_key_does_not_bypass_the_fallbacks_budget(
    groq_on_fake: FakeUpstream, stream: bool
) -> None:
    # No OPENAI_API_KEY: the primary is skipped before sending; its fallback must still be
    # checked and charged. $0.05 holds five $0.01 answers.
    prices = PerModelPrices({CHEAP: 0.001, PRICEY: 0.01})
    ledger = MemoryLedger()
    budgets = Budgets(
        [BudgetLimit(0.05, period="total")], ledger=ledger, estimator=lambda r, d: 0.01
    )
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=prices))

    async def one() -> llmrelay.Response:
        if stream:
            return await client.astream(CHEAP, "hi", fallbacks=[PRICEY]).collect()
        return await client.achat(CHEAP, "hi", fallbacks=[PRICEY])

    ok, refused = sorted_outcomes(
        await asyncio.gather(*(one() for _ in range(10)), return_exceptions=True)
    )
    assert len(ok) == 5
    assert len(refused) == 5
    spent, reserved = await ledger.spent(TOTAL)
    assert spent == pytest.approx(0.05)
    assert reserved == pytest.approx(0.0)
    assert len(groq_on_fake.requests) == 5
    assert [(a.deployment, a.outcome, a.error) for a in refused[0].trace] == [
        (CHEAP, "skipped", "MissingAPIKeyError"),
        (PRICEY, "skipped", "BudgetExceededError"),
    ]
    await client.aclose()


def _sse(delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {
        "id": "chatcmpl-eof",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4.1-mini",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


ANSWER = "Four little words here"


@pytest.mark.parametrize("how", ["stream_without_usage", "stream_eof_after_finish", "body"])
async def test_an_answer_without_usage_is_charged_from_counted_tokens(
    fake: FakeUpstream, how: str
) -> None:
    # The real catalog's prices and token counts: a server that reports no usage is charged
    # for the prompt and the text it sent, marked estimated -- never a known $0.
    ledger = MemoryLedger()
    budgets = Budgets([BudgetLimit(1.0, period="total")], ledger=ledger)
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=llmrelay.Catalog()))
    kw: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    if how == "stream_eof_after_finish":
        body = (
            _sse({"role": "assistant", "content": ""})
            + _sse({"content": ANSWER})
            + _sse({}, "stop")  # then a clean EOF: no usage frame, no [DONE]
        )
        fake.push(Reply.raw(body, content_type="text/event-stream"))
    else:
        fake.push(Reply.ok(ANSWER, no_usage=True))
    if how == "body":
        r = await client.achat(CHEAP, "count me", **kw)
    else:
        r = await client.astream(CHEAP, "count me", **kw).collect()
    assert r.text == ANSWER
    assert r.usage.estimated
    assert r.usage.input_tokens == llmrelay.count_message_tokens("count me", CHEAP)
    assert r.usage.output_tokens == llmrelay.count_tokens(ANSWER, CHEAP)
    assert r.cost.known
    assert r.cost.estimated
    assert r.cost.usd > 0
    assert r.cost.usd == pytest.approx(llmrelay.calculate_cost(CHEAP, r.usage).usd)
    assert r.trace[-1].usage.estimated
    spent, reserved = await ledger.spent(TOTAL)
    assert spent == pytest.approx(r.cost.usd)
    assert reserved == pytest.approx(0.0)
    await client.aclose()


async def test_usage_the_server_reports_is_not_marked_estimated(fake: FakeUpstream) -> None:
    client = llmrelay.Client(engine=llmrelay.Engine(catalog=llmrelay.Catalog()))
    fake.push(Reply.ok(ANSWER, input_tokens=7, output_tokens=4))
    r = await client.astream(
        CHEAP, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url
    ).collect()
    assert r.usage == Usage(7, 4)
    assert not r.usage.estimated
    assert not r.cost.estimated
    await client.aclose()


async def test_a_stream_left_early_is_charged_for_what_it_sent(fake: FakeUpstream) -> None:
    ledger = MemoryLedger()
    budgets = Budgets([BudgetLimit(1.0, period="total")], ledger=ledger)
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=llmrelay.Catalog()))
    fake.push(Reply.ok("one two three four five six", no_usage=True))
    s = client.astream(CHEAP, "count me", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    first = await s.__anext__()
    assert first.delta
    await s.aclose()
    spent, reserved = await ledger.spent(TOTAL)
    assert reserved == pytest.approx(0.0)
    assert spent > 0  # the prompt and the words received were spent
    await client.aclose()


async def test_a_cancelled_call_leaves_nothing_reserved(fake: FakeUpstream) -> None:
    await cancel_mid_call(fake, MemoryLedger())


async def test_a_cancelled_call_leaves_nothing_reserved_in_redis(
    fake: FakeUpstream, redis_store: RedisStore
) -> None:
    await cancel_mid_call(fake, RedisLedger(redis_store))


async def cancel_mid_call(fake: FakeUpstream, ledger: Ledger) -> None:
    budgets = Budgets([BudgetLimit(1.0, period="total")], ledger=ledger)
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=llmrelay.Catalog()))
    fake.push(Reply.hang(30.0))
    task = asyncio.ensure_future(
        client.achat(CHEAP, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    )
    while not fake.requests:
        await asyncio.sleep(0.001)
    assert (await ledger.spent(TOTAL))[1] > 0  # held while in flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await ledger.spent(TOTAL) == (0.0, 0.0)
    await client.aclose()


async def test_structured_re_asks_are_reserved_for(fake: FakeUpstream) -> None:
    # Each re-ask is another paid answer: the call's reservation is topped up before each, so
    # a budget that holds one answer refuses the re-ask instead of overspending.
    from pydantic import BaseModel

    class Point(BaseModel):
        x: int

    prices = PerModelPrices({CHEAP: 0.01})
    ledger = MemoryLedger()
    budgets = Budgets(
        [BudgetLimit(0.015, period="total")], ledger=ledger, estimator=lambda r, d: 0.01
    )
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=prices))
    fake.push(Reply.ok("not json"), Reply.ok('{"x": 1}'))
    with pytest.raises(llmrelay.BudgetExceededError):
        await client.achat(
            CHEAP,
            "a point",
            response_model=Point,
            max_reasks=1,
            api_key=CANARY_KEY,
            base_url=fake.openai_base_url,
        )
    assert len(fake.requests) == 1
    assert await ledger.spent(TOTAL) == (pytest.approx(0.01), 0.0)
    await client.aclose()


async def test_calls_cancelled_at_every_step_leave_nothing_reserved_in_redis(
    fake: FakeUpstream, redis_store: RedisStore
) -> None:
    # Call i is cancelled after i turns of the event loop: between them the cancellations land
    # on every await of a call -- in the middle of the ledger's round trips too.
    ledger = RedisLedger(redis_store)
    budgets = Budgets([BudgetLimit(1.0, period="total")], ledger=ledger)
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=llmrelay.Catalog()))

    async def cancel_after(turns: int) -> None:
        task = asyncio.ensure_future(
            client.achat(
                CHEAP, "hi", max_tokens=16, api_key=CANARY_KEY, base_url=fake.openai_base_url
            )
        )
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    await asyncio.gather(*(cancel_after(i) for i in range(120)))
    spent, reserved = await ledger.spent(TOTAL)
    assert reserved == pytest.approx(0.0)
    assert spent <= 1.0
    await client.aclose()


async def test_a_fallback_on_another_key_is_charged_to_that_keys_budget(
    groq_on_fake: FakeUpstream,
) -> None:
    # Per-key budgets follow the candidate: the failed primary's key is charged nothing, the
    # fallback's key pays for the answer, and the fallback's key budget is checked before it.
    from llmrelay.providers.table import Secret
    from llmrelay.state.base import key_id

    prices = PerModelPrices({CHEAP: 0.001, PRICEY: 0.3})
    ledger = MemoryLedger()
    per_key = BudgetLimit(0.5, period="total", scope="key")
    budgets = Budgets(
        [BudgetLimit(10.0, period="total"), per_key], ledger=ledger, estimator=prices.estimate
    )
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=prices))
    primary_key = "sk-primary-0000"
    dead = dead_url()

    async def one() -> llmrelay.Response:
        return await client.achat(
            CHEAP, "hi", api_key=primary_key, base_url=dead, retries=0, fallbacks=[PRICEY]
        )

    r = await one()
    assert r.provider == "groq"
    with pytest.raises(llmrelay.BudgetExceededError) as info:
        await one()  # $0.30 spent on the fallback's key: another $0.375 estimate passes $0.5
    assert info.value.scope == "key"
    assert await ledger.spent(per_key.ledger_key(key_id(Secret(primary_key)), 0)) == (0.0, 0.0)
    assert await ledger.spent(per_key.ledger_key(key_id(Secret(CANARY_KEY)), 0)) == (
        pytest.approx(0.3),
        0.0,
    )
    assert await ledger.spent(TOTAL) == (pytest.approx(0.3), 0.0)
    await client.aclose()


async def test_a_stream_cut_after_output_is_charged_for_what_it_sent(fake: FakeUpstream) -> None:
    ledger = MemoryLedger()
    budgets = Budgets([BudgetLimit(1.0, period="total")], ledger=ledger)
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=llmrelay.Catalog()))
    fake.push(Reply.cut_stream(after_chunks=3, text="one two three four five six"))
    s = client.astream(CHEAP, "count me", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    with pytest.raises(llmrelay.StreamInterruptedError) as info:
        await s.collect()
    partial = info.value.partial
    assert isinstance(partial, llmrelay.Response)
    assert partial.text
    assert partial.usage.estimated
    assert partial.usage.output_tokens == llmrelay.count_tokens(partial.text, CHEAP)
    spent, reserved = await ledger.spent(TOTAL)
    assert reserved == pytest.approx(0.0)
    assert spent == pytest.approx(llmrelay.calculate_cost(CHEAP, partial.usage).usd)
    assert spent > 0
    await client.aclose()


async def test_the_estimate_uses_the_engines_catalog(
    fake: FakeUpstream, point_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call is reserved at the price the engine's own catalog gives, on that catalog's day:
    a model priced only in ``Engine(catalog=Catalog(my_registry))`` was refused as "price
    unknown" (the estimate read the default registry), and a price schedule was read on the
    default registry's day, not the engine's (outside review of issue 11)."""
    from datetime import date

    from llmrelay.catalog.layer import Catalog
    from llmrelay.catalog.model_registry import LLMRegistry

    point_at(fake)
    mine = LLMRegistry(catalog_files=(), today=lambda: date(2026, 11, 30))
    mine.register(
        {
            "provider": "openai",
            "model": "in-house-1",
            "context_window": 8000,
            "max_output_tokens": 1000,
            "prices": {"input": 1.0, "output": 2.0},
        }
    )
    seen: list[float | None] = []
    real = llmrelay.reliability.budgets.bound_request_cost

    def spy(*a: Any, **kw: Any) -> float | None:
        seen.append(real(*a, **kw))
        return seen[-1]

    monkeypatch.setattr(llmrelay.reliability.budgets, "bound_request_cost", spy)
    budgets = Budgets([BudgetLimit(limit_usd=5.0, period="total")], ledger=MemoryLedger())
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=Catalog(mine)))
    fake.push(Reply.ok("hi", input_tokens=10, output_tokens=5))
    r = await client.achat("openai/in-house-1", "hi", max_tokens=100)
    assert r.cost.known
    assert seen[-1] is not None
    # gemini-4-argon costs $10/M output on 2026-11-30 (the engine's day), $20/M from 12-01
    fake.push(Reply.ok("hi", input_tokens=10, output_tokens=5))
    await client.achat("gemini/gemini-4-argon", "hi", max_tokens=50_000)
    assert seen[-1] == pytest.approx(0.5, abs=0.001)  # 50,000 x $10/M (not $20/M), + prompt
    await client.aclose()


@pytest.mark.parametrize(
    ("period", "spent", "need", "now", "after"),
    [
        ("month", 0.5, 0.4, "2026-12-31T23:00:00", 1.0),  # calls in flight hold the rest
        ("month", 0.9, 0.4, "2026-12-31T23:00:00", 3600.0),  # next month is next year
        ("month", 0.9, 0.4, "2026-02-28T00:00:00", 86400.0),
        ("day", 0.9, 0.4, "2026-03-01T12:00:00", 43200.0),
        ("total", 0.9, 0.4, "2026-03-01T12:00:00", None),
        ("day", 0.0, 1.5, "2026-03-01T12:00:00", None),  # more than the whole budget
    ],
)
def test_a_refusal_says_when_the_call_may_fit(
    period: Any, spent: float, need: float, now: str, after: float | None
) -> None:
    from datetime import UTC, datetime

    from llmrelay.reliability.budgets import _retry_after

    t = datetime.fromisoformat(now).replace(tzinfo=UTC).timestamp()
    assert _retry_after(BudgetLimit(1.0, period), spent, need, t) == after


@pytest.mark.parametrize("bad", [float("nan"), -0.01, "0.01", True, [0.01]], ids=repr)
async def test_an_estimator_returning_no_price_is_refused_and_the_ledger_untouched(
    bad: Any,
) -> None:
    # A NaN held in the ledger would pass every later check (NaN > limit is false): the budget
    # would be off for every caller. The estimator's answer is checked before the ledger.
    ledger = MemoryLedger()
    budgets = Budgets(
        [BudgetLimit(0.05, period="total")], ledger=ledger, estimator=lambda r, d: bad
    )
    client, calls = make_client(budgets, usd=0.01)
    with pytest.raises(llmrelay.ConfigurationError, match="estimator returned"):
        await client.achat(client.model, "hi")  # type: ignore[attr-defined]
    assert calls == []
    assert ledger._reserved == {}
    assert ledger._spent == {}
    # A good estimator on the same ledger still counts from nothing.
    good = Budgets([BudgetLimit(0.05, period="total")], ledger=ledger, estimator=lambda r, d: 0.01)
    client, calls = make_client(good, usd=0.01)
    await client.achat(client.model, "hi")  # type: ignore[attr-defined]
    assert await ledger.spent(next(iter(ledger._spent))) == (0.01, 0.0)
