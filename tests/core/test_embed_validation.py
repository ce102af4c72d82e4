"""Any value of any ``embed()`` argument gives vectors or a typed llmrelay error; a caller
error sends nothing and leaves the shared state -- the deployment's rate limit, its breaker,
the budget ledger -- as it was (issue 12's bad-input promise, thrown at by hypothesis)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay.core.embed_checks import _CALL_OPTIONS, EMBED_OPTIONS
from llmrelay.core.engine import Engine
from llmrelay.core.retry import RetryPolicy
from llmrelay.errors import ConfigurationError, LLMRelayError
from llmrelay.reliability.budgets import BudgetLimit, Budgets, MemoryLedger
from llmrelay.testing.fake import FakeUpstream

from ..conftest import CANARY_KEY
from ..test_validation import HOSTILE, _text

SMALL = "openai/text-embedding-3-small"
_NAMES = sorted((_CALL_OPTIONS | EMBED_OPTIONS | {"dimensions"}) - {"api_key", "base_url"})
_INPUTS = st.one_of(
    st.just(["fine", "two"]),  # most examples reach the other argument's checks
    st.lists(_text, min_size=1, max_size=3),  # with lone surrogates, empty strings
    HOSTILE,
    st.lists(HOSTILE | _text, min_size=1, max_size=3),
)


@pytest.fixture(scope="module")
def fake_thread() -> Iterator[FakeUpstream]:
    with FakeUpstream.running(api_key=CANARY_KEY) as f:
        yield f


async def _no_sleep(_: float) -> None:
    return None


_count = iter(range(10**9))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(inputs=_INPUTS, name=st.sampled_from(_NAMES), value=HOSTILE)
def test_any_embed_argument(fake_thread: FakeUpstream, inputs: Any, name: str, value: Any) -> None:
    marker = f"/embed-check-{next(_count)}"
    base = fake_thread.url + marker + "/v1"
    limit = BudgetLimit(1000.0, period="total")
    budgets = Budgets([limit], ledger=MemoryLedger(), unknown_cost="allow")
    engine = Engine(
        breakers=True,
        budget=budgets,
        # one request a minute: a caller error that took the slot fails the good call after it
        limiter=llmrelay.RateLimiter({SMALL: {"rpm": 1}}),
        retry=RetryPolicy(max_retries=0),
        sleep=_no_sleep,
        catalog=llmrelay.Catalog(),
        cache=llmrelay.ResponseCache(),  # keyed by the tenant, the options, each input
    )

    async def go() -> None:
        c = llmrelay.Client(engine=engine)
        try:
            try:
                await c.aembed(SMALL, inputs, api_key=CANARY_KEY, base_url=base, **{name: value})
                return
            except LLMRelayError as exc:
                error = exc
            assert CANARY_KEY not in str(error)
            if not isinstance(error, ConfigurationError):
                return  # an upstream's answer to what was sent (a provider field in extra)
            assert not [r for r in fake_thread.requests if r.path.startswith(marker + "/")], error
            status = await budgets.status(limit)
            assert (status["spent_usd"], status["reserved_usd"]) == (0, 0), error
            breakers = engine.breakers
            assert breakers is not None
            assert all(b.state == "closed" and not b._failures for _, b in breakers.items())
            out = await c.aembed(SMALL, ["after"], api_key=CANARY_KEY, base_url=base, dimensions=2)
            assert len(out) == 1, error  # the rate-limit slot is still free
        finally:
            await c.aclose()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("kwargs", "inputs", "words"),
    [
        ({"extra": 5}, ["a"], "extra must be a dict"),
        ({"extra": {1: 2}}, ["a"], "extra must be a dict"),
        ({"extra": {"meta": object()}}, ["a"], "extra['meta'] is not a JSON value"),
        ({"user": 5}, ["a"], "user must be a string"),
        ({"task_type": ["x"]}, ["a"], "task_type must be a string"),
        ({}, ["ok", "a\ud800"], "inputs[1] holds lone surrogates"),
    ],
)
def test_bad_embeddings_options_are_named_before_anything_is_taken(
    fake_thread: FakeUpstream, kwargs: dict[str, Any], inputs: list[str], words: str
) -> None:
    engine = Engine(limiter=llmrelay.RateLimiter({SMALL: {"rpm": 1}}), catalog=llmrelay.Catalog())
    c = llmrelay.Client(engine=engine)
    before = len(fake_thread.requests)
    with pytest.raises(llmrelay.InvalidRequestError, match=re.escape(words)):
        c.embed(SMALL, inputs, api_key=CANARY_KEY, base_url=fake_thread.openai_base_url, **kwargs)
    assert len(fake_thread.requests) == before
    out = c.embed(SMALL, ["ok"], api_key=CANARY_KEY, base_url=fake_thread.openai_base_url)
    assert len(out) == 1


def test_a_tenant_with_lone_surrogates_is_named_not_a_unicode_error(
    fake_thread: FakeUpstream,
) -> None:
    """The tenant keys the response cache (encoded as UTF-8): a lone surrogate in it was a
    bare UnicodeEncodeError out of embed() and chat() when a cache was on."""
    c = llmrelay.Client(cache=llmrelay.ResponseCache())
    before = len(fake_thread.requests)
    kw: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": fake_thread.openai_base_url}
    with pytest.raises(llmrelay.InvalidRequestError, match="tenant holds lone surrogates"):
        c.embed(SMALL, ["a"], tenant="t\ud800", **kw)
    with pytest.raises(llmrelay.InvalidRequestError, match="tenant holds lone surrogates"):
        c.chat("openai/gpt-4.1-mini", "hi", tenant="t\ud800", **kw)
    assert len(fake_thread.requests) == before
    assert len(c.embed(SMALL, ["a"], tenant="caf\u00e9", **kw)) == 1


@pytest.mark.parametrize(
    ("model", "extra", "words"),
    [
        ("voyage/voyage-3.5", {"output_dtype": "int8"}, "output_dtype"),
        ("cohere/embed-v4.0", {"embedding_types": ["int8"]}, "embedding_types"),
    ],
)
def test_a_provider_field_llmrelay_cannot_read_takes_no_rate_limit_slot(
    fake_thread: FakeUpstream, model: str, extra: dict[str, Any], words: str
) -> None:
    """Voyage's ``output_dtype`` and Cohere's ``embedding_types`` other than float were refused
    when the first batch was built, inside the attempt: after the rate limiter gave the call
    its slot. They are checked with the other arguments now."""
    limiter = llmrelay.RateLimiter({model: {"rpm": 1}})
    c = llmrelay.Client(engine=Engine(limiter=limiter, catalog=llmrelay.Catalog()))
    kw: dict[str, Any] = {
        "api_key": CANARY_KEY,
        "base_url": fake_thread.base_url_for(model.split("/")[0]),
    }
    before = len(fake_thread.requests)
    with pytest.raises(llmrelay.InvalidRequestError, match=words):
        c.embed(model, ["a"], extra=extra, **kw)
    assert len(fake_thread.requests) == before
    assert len(c.embed(model, ["a"], **kw)) == 1  # the slot is still free
