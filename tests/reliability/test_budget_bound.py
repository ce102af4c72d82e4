"""The budget's default reservation: an upper bound of the call's cost without a tokenizer.

Concurrent callers can only overspend when a reservation holds less than the call then costs,
so the bound is checked against the exact counts (OpenAI's encodings, where counts can be exact)
for arbitrary text, names, tool calls and tool definitions, and against a hostile-but-honest
upstream that reports exactly those prompt tokens and the longest answer allowed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay.catalog import tokens
from llmrelay.catalog.costs import rates_for
from llmrelay.catalog.layer import Catalog
from llmrelay.catalog.model_registry import default_registry
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.budgets import (
    BudgetLimit,
    Budgets,
    MemoryLedger,
    bound_request_cost,
    prompt_token_bound,
)
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import (
    ChatRequest,
    GenerationParams,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
)

from ..conftest import CANARY_KEY

MODEL = "openai/gpt-4.1-mini"

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=200)
_name = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True)
_props = st.dictionaries(
    _name,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["string", "integer", "number"]), "description": _text},
        optional={"enum": st.lists(_text, max_size=4)},
    ),
    max_size=4,
)


@st.composite
def _requests(draw: st.DrawFn) -> ChatRequest:
    messages = []
    for _ in range(draw(st.integers(1, 4))):
        role = draw(st.sampled_from(["system", "user", "assistant"]))
        name = draw(st.none() | _name) if role == "user" else None
        calls = None
        if role == "assistant" and draw(st.booleans()):
            calls = [ToolCall(draw(_name), draw(_name), draw(_text))]
        messages.append(Message(role, draw(_text), name=name, tool_calls=calls))
    tools = draw(
        st.none()
        | st.lists(
            st.builds(
                lambda n, d, p: Tool(n, d, {"type": "object", "properties": p}),
                _name,
                _text,
                _props,
            ),
            min_size=1,
            max_size=3,
        )
    )
    return ChatRequest(messages, GenerationParams(tools=tuple(tools) if tools else None))


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=_requests())
def test_the_bound_is_never_below_the_exact_count(encoding: str, req: ChatRequest) -> None:
    if not tokens.is_exact(MODEL, encoding=encoding):
        pytest.fail("the exact tokenizer (bpe-openai, the tokens extra) must be installed")
    exact = tokens.count_message_tokens(
        req.messages, MODEL, tools=req.params.tools, encoding=encoding
    )
    assert prompt_token_bound(req) >= exact


def test_images_documents_and_schemas_are_held_for() -> None:
    plain = ChatRequest([Message("user", "look")], GenerationParams())
    base = prompt_token_bound(plain)
    image = ChatRequest(
        [Message("user", [TextPart("look"), ImagePart(url="https://x.invalid/a.png")])],
        GenerationParams(),
    )
    assert prompt_token_bound(image) >= base + 1600  # above every documented per-image count
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    structured = ChatRequest([Message("user", "look")], GenerationParams(response_format=schema))
    assert prompt_token_bound(structured) > base + 40
    # Text that cannot be encoded is bounded too (the adapter refuses it before sending).
    odd = ChatRequest([Message("user", "\ud800 lone")], GenerationParams())
    assert prompt_token_bound(odd) >= 8


def test_the_cost_bound_prices_the_bound_and_the_longest_answer() -> None:
    dep = make_deployment("openai", "gpt-4.1-mini", api_key="k")
    rates = rates_for(default_registry(), "openai", "gpt-4.1-mini")
    assert rates is not None
    assert rates.input is not None
    assert rates.output is not None
    req = ChatRequest([Message("user", "hello")], GenerationParams(max_tokens=100))
    usd = bound_request_cost(req, dep)
    assert usd == pytest.approx(prompt_token_bound(req) * rates.input + 100 * rates.output)
    unknown = make_deployment("openai", "not-in-any-catalog", api_key="k")
    assert bound_request_cost(req, unknown) is None


async def test_concurrent_calls_answering_their_longest_never_pass_the_budget(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every answer reports the prompt's exact token count and the whole max_tokens: the most an
    # honest provider can charge. Forty calls race for a budget that holds a handful.
    prompt = "How do I pool connections? " * 40
    exact = tokens.count_message_tokens(prompt, MODEL)

    def no_tokenizer(*_: Any) -> Any:
        raise AssertionError("the budget estimate must not load the exact tokenizer")

    monkeypatch.setattr(tokens._backend, "tokenizer", no_tokenizer)
    ledger = MemoryLedger()
    limit = BudgetLimit(0.01, period="total")
    budgets = Budgets([limit], ledger=ledger)
    client = llmrelay.Client(engine=llmrelay.Engine(budget=budgets, catalog=Catalog()))
    fake.push(*[Reply.ok("ok", input_tokens=exact, output_tokens=1000)] * 40)
    results = await asyncio.gather(
        *(
            client.achat(
                MODEL,
                prompt,
                max_tokens=1000,
                api_key=CANARY_KEY,
                base_url=fake.openai_base_url,
                retries=0,
            )
            for _ in range(40)
        ),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, llmrelay.Response)]
    refused = [r for r in results if isinstance(r, llmrelay.BudgetExceededError)]
    assert len(ok) + len(refused) == 40, results
    status = await budgets.status(limit)
    assert ok
    assert refused
    assert status["spent_usd"] <= 0.01
    assert status["reserved_usd"] == pytest.approx(0.0)
    assert len(fake.requests) == len(ok)  # a refused call is never sent
