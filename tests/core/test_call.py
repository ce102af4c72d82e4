"""The engine by composition: the public methods facades use (plan, preflight,
complete_messages), the per-call object, and the owned attempt runner — over real sockets."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import llmrelay
from llmrelay.core.attempts import AttemptRunner
from llmrelay.core.options import CallOptions
from llmrelay.errors import CircuitOpenError, MissingAPIKeyError, ServerError
from llmrelay.providers.resolve import Target
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import NO_PARAMS, Message

from ..conftest import CANARY_KEY

MODEL = "openai/gpt-4.1-mini"
CORE = Path(llmrelay.__file__).parent / "core"


def test_preflight_names_the_missing_key_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    engine = llmrelay.Engine(breakers=None)
    with pytest.raises(MissingAPIKeyError) as info:
        engine.preflight(MODEL)
    assert info.value.variable == "OPENAI_API_KEY"
    # With a fallback the call can still be answered: no error, no primary deployment.
    assert engine.preflight(MODEL, CallOptions(fallbacks=["groq/llama-3.1-8b-instant"])) is None
    dep = engine.preflight(MODEL, CallOptions(api_key=CANARY_KEY, base_url="http://h.test/v1"))
    assert dep is not None
    assert (dep.provider, dep.model, dep.base_url) == ("openai", "gpt-4.1-mini", "http://h.test/v1")
    assert CANARY_KEY not in repr(dep)


def test_plan_resolves_the_chain_without_calling() -> None:
    engine = llmrelay.Engine(breakers=None, fallbacks=["groq/llama-3.1-8b-instant"])
    plan = engine.plan(MODEL)
    assert plan.primary.label == MODEL
    assert [t.label for t in plan.fallbacks] == ["groq/llama-3.1-8b-instant"]
    # The call's own chain wins over the engine's.
    assert engine.plan(MODEL, CallOptions(fallbacks=[])).fallbacks == []
    with pytest.raises(llmrelay.InvalidRequestError, match="model must be"):
        engine.plan(42)  # type: ignore[arg-type]


async def test_complete_messages_sends_the_messages_as_given(fake: FakeUpstream) -> None:
    engine = llmrelay.Engine(breakers=None)
    msgs = [Message("system", "be brief"), Message("user", "ping")]
    opts = CallOptions(api_key=CANARY_KEY, base_url=fake.openai_base_url)
    try:
        resp = await engine.complete_messages(MODEL, msgs, NO_PARAMS, opts)
    finally:
        await engine.transport.aclose()
    assert resp.text == "Echo: ping"
    assert [a.outcome for a in resp.trace] == ["success"]
    (sent,) = fake.requests
    assert sent.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ping"},
    ]


async def test_an_open_breaker_fails_fast_with_its_trace(fake: FakeUpstream) -> None:
    """The one-candidate path: nothing is sent, the error names the deployment, the trace says
    why, and the breaker's registry set on the engine after construction is the one used."""
    engine = llmrelay.Engine()
    client = llmrelay.Client(engine=engine)
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url, "retries": 0}
    fake.push(Reply.error(500, "down"))
    with pytest.raises(ServerError):
        await client.achat(MODEL, "hi", **kw)
    assert engine.breakers is not None
    ((_, breaker),) = engine.breakers.items()
    while breaker.state != "open":
        breaker.on_failure(breaker.acquire(), ServerError("down", status=500))
    sent = len(fake.requests)
    try:
        with pytest.raises(CircuitOpenError) as info:
            await client.achat(MODEL, "hi", **kw)
        err = info.value
        assert (err.provider, err.model) == ("openai", "gpt-4.1-mini")
        assert [(a.outcome, a.error) for a in err.trace] == [("skipped", "CircuitOpenError")]
        assert "breaker open" in (err.trace[0].reason or "")
        assert len(fake.requests) == sent
        # Breakers replaced on the engine: the owned attempt runner reads the engine's.
        engine.breakers = None
        assert engine.breaker_for(engine.preflight(MODEL, CallOptions(**kw))) is None  # type: ignore[arg-type]
        resp = await client.achat(MODEL, "hi", **kw)
        assert resp.text == "Echo: hi"
    finally:
        await client.aclose()


async def test_a_fallback_after_an_open_breaker_still_answers(fake: FakeUpstream) -> None:
    """The chain path (fallbacks): the open primary is skipped, the fallback answers."""
    engine = llmrelay.Engine()
    client = llmrelay.Client(engine=engine)
    target = Target("openai", "gpt-4.1", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    try:
        await client.achat(MODEL, "hi", **kw)
        assert engine.breakers is not None
        ((_, breaker),) = engine.breakers.items()
        while breaker.state != "open":
            breaker.on_failure(breaker.acquire(), ServerError("down", status=500))
        resp = await client.achat(MODEL, "hi", fallbacks=[target], **kw)
    finally:
        await client.aclose()
    assert resp.text == "Echo: hi"
    assert [(a.deployment, a.outcome) for a in resp.trace] == [
        (MODEL, "skipped"),
        ("openai/gpt-4.1", "success"),
    ]


def test_the_engine_owns_its_attempts_and_mixes_nothing_in() -> None:
    engine = llmrelay.Engine()
    assert isinstance(engine.attempts, AttemptRunner)
    assert llmrelay.Engine.__mro__ == (llmrelay.Engine, object)
    assert not hasattr(engine, "_complete")


@pytest.mark.parametrize("name", ["engine.py", "call.py", "streamed.py", "attempts.py"])
def test_no_private_function_of_the_engine_takes_more_than_four_arguments(name: str) -> None:
    """Per-call state lives on a Call (and per-candidate state on the attempts' own object),
    not in long parameter lists; nothing is re-declared under TYPE_CHECKING."""
    tree = ast.parse((CORE / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
            node.name.startswith("_") and not node.name.startswith("__")
        ):
            a = node.args
            names = [p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
            names = [n for n in names if n not in ("self", "cls")]
            assert len(names) <= 4, f"{name}: {node.name}({', '.join(names)})"
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            defs = [n for n in ast.walk(node) if isinstance(n, ast.FunctionDef)]
            assert not defs, f"{name}: methods re-declared under TYPE_CHECKING"
