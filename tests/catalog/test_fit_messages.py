"""``fit_messages``: seed 003's token optimization -- a conversation fitted into a model's
context window or a token budget, oldest turns first, tool calls kept with their results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay import FitResult, count_message_tokens, fit_messages
from llmrelay.catalog.fit import TRUNCATION_MARK
from llmrelay.catalog.model_registry import default_registry
from llmrelay.catalog.profiles import LLMCapabilities, LLMProfile
from llmrelay.errors import ContextWindowExceededError, InvalidRequestError
from llmrelay.types import Message, ToolCall

MODEL = "openai/gpt-4.1-mini"


def turns(n: int, words: int = 50) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        out.append({"role": role, "content": "word " * words + f"turn {i}"})
    return out


def test_a_conversation_that_fits_is_unchanged() -> None:
    msgs = turns(4)
    r = fit_messages(msgs, MODEL)
    assert isinstance(r, FitResult)
    assert not r.changed
    assert (r.removed, r.truncated) == ([], [])
    assert r.tokens == count_message_tokens(msgs, MODEL)
    assert len(r.messages) == 5


def test_oldest_turns_go_first_and_system_stays() -> None:
    msgs = turns(10)
    full = count_message_tokens(msgs, MODEL)
    r = fit_messages(msgs, MODEL, budget_tokens=full // 2, truncate=False)
    assert r.changed
    assert not r.truncated
    assert r.messages[0].role == "system"
    kept = [m.text() for m in r.messages[1:]]
    assert kept[-1].endswith("turn 9")  # the newest turns stay, in order
    assert [m.text()[-6:] for m in r.removed] == [f"turn {i}" for i in range(len(r.removed))]
    assert r.tokens == count_message_tokens(r.messages, MODEL) <= full // 2
    # nothing more was removed than needed: putting back the last removed turn overflows
    back = [r.messages[0], r.removed[-1], *r.messages[1:]]
    assert count_message_tokens(back, MODEL) > full // 2


def test_the_oldest_turn_is_cut_rather_than_dropped_when_part_of_it_fits() -> None:
    msgs = turns(10)
    budget = count_message_tokens(msgs, MODEL) - 30
    r = fit_messages(msgs, MODEL, budget_tokens=budget)
    assert r.removed == []
    assert [m.text()[-6:] for m in r.truncated] == ["turn 0"]
    cut = r.messages[1]
    assert cut.text().startswith(TRUNCATION_MARK)
    assert cut.text().endswith("turn 0")  # the end of the turn is kept
    assert r.tokens == count_message_tokens(r.messages, MODEL) <= budget
    assert r.tokens >= budget - 2  # as much as fits is kept


def test_the_context_window_less_max_tokens_is_the_budget() -> None:
    window = default_registry().get(MODEL).capabilities.max_context_window
    assert window
    msgs = turns(10)
    r = fit_messages(msgs, MODEL, max_tokens=window - 200)
    assert r.budget == 200
    assert r.tokens <= 200
    both = fit_messages(msgs, MODEL, max_tokens=window - 200, budget_tokens=150)
    assert both.budget == 150  # the smaller of the two


def test_tool_calls_stay_with_their_results() -> None:
    call = Message(
        "assistant",
        None,
        tool_calls=[ToolCall("call_a", "lookup", '{"q": "a"}'), ToolCall("call_b", "lookup", "{}")],
    )
    msgs = [
        Message("system", "Use tools."),
        Message("user", "word " * 40 + "first question"),
        call,
        Message("tool", "result a " * 30, tool_call_id="call_a"),
        Message("tool", "result b " * 30, tool_call_id="call_b"),
        Message("assistant", "The answer is 42."),
        Message("user", "And now?"),
    ]
    full = count_message_tokens(msgs, MODEL)
    # Budget that needs the first question and part of the tool exchange gone: the call and
    # both its results go together, never one without the others.
    tool_part = count_message_tokens(msgs[2:5], MODEL) - count_message_tokens(msgs[2:3], MODEL)
    budget = full - count_message_tokens(msgs[1:2], MODEL) - tool_part // 2
    r = fit_messages(msgs, MODEL, budget_tokens=budget)
    assert r.removed[0] is msgs[1]
    assert r.removed[1:] == [call, msgs[3], msgs[4]]
    assert [m.role for m in r.messages] == ["system", "assistant", "user"]
    for m in r.messages:
        assert m.role != "tool"
    # A budget needing only the first question gone keeps the whole exchange.
    r = fit_messages(msgs, MODEL, budget_tokens=full - 10, truncate=False)
    assert r.removed == [msgs[1]]
    assert [m.role for m in r.messages][1:4] == ["assistant", "tool", "tool"]


def test_the_newest_turn_is_cut_when_it_alone_is_too_long() -> None:
    msgs = [Message("system", "Be brief."), Message("user", "word " * 500 + "the question")]
    r = fit_messages(msgs, MODEL, budget_tokens=100)
    assert r.tokens <= 100
    assert r.messages[-1].text().endswith("the question")
    assert r.truncated == [msgs[1]]


def test_what_cannot_fit_is_a_typed_error() -> None:
    msgs = [Message("system", "rule " * 300), Message("user", "hi")]
    with pytest.raises(ContextWindowExceededError, match="available"):
        fit_messages(msgs, MODEL, budget_tokens=50)
    with pytest.raises(ContextWindowExceededError):
        fit_messages(turns(3), MODEL, budget_tokens=30, truncate=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget_tokens": -1}, "budget_tokens"),
        ({"budget_tokens": 1.5}, "budget_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"truncate": "no"}, "truncate must be True"),  # truthy: it used to mean "cut"
        ({"truncate": None}, "truncate must be True"),
        ({"truncate": 0}, "truncate must be True"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        fit_messages("hello", MODEL, **kwargs)


@pytest.fixture
def tiny() -> Iterator[str]:
    """A model whose context window is 600 tokens (an OpenAI one: exact counts)."""
    reg = default_registry()
    reg.register(LLMProfile("openai", "tiny-window-test", LLMCapabilities(max_context_window=600)))
    yield "openai/tiny-window-test"
    reg.unregister("openai/tiny-window-test")


def test_one_message_alone_past_the_window(tiny: str) -> None:
    """Seed 003's token optimization cuts the oldest turns first; a single turn longer than
    the whole window is cut (documented: its start replaced by TRUNCATION_MARK) -- or, with
    ``truncate=False`` or when it cannot be cut, a typed error naming the sizes."""
    one = [Message("user", "word " * 1000 + "the question")]
    need = count_message_tokens(one, tiny)
    assert need > 600
    r = fit_messages(one, tiny, max_tokens=100)
    assert 400 < r.tokens <= 500
    assert r.truncated == one
    assert r.messages[0].text().startswith(TRUNCATION_MARK)
    assert r.messages[0].text().endswith("the question")
    with pytest.raises(ContextWindowExceededError) as ei:
        fit_messages(one, tiny, max_tokens=100, truncate=False)
    text = str(ei.value)
    assert f"need {need} tokens" in text
    assert "more than the 500 available" in text
    assert "the newest turn alone exceeds it (truncate=False keeps it whole)" in text
    system = [Message("system", "rule " * 700), Message("user", "hi")]
    with pytest.raises(ContextWindowExceededError, match="system/developer messages alone"):
        fit_messages(system, tiny)


def test_a_budget_is_needed_without_a_model() -> None:
    with pytest.raises(InvalidRequestError, match="budget_tokens"):
        fit_messages("hello")
    assert fit_messages("hello", budget_tokens=100).messages[0].text() == "hello"


def test_exported() -> None:
    assert llmrelay.fit_messages is fit_messages
    assert "fit_messages" in llmrelay.__all__


@pytest.mark.parametrize(
    "call",
    [
        lambda: ToolCall("c1", "f", {"x": 1}),  # type: ignore[arg-type]
        lambda: ToolCall(5, "f"),  # type: ignore[arg-type]
        lambda: ToolCall("c1", None),  # type: ignore[arg-type]
        lambda: ToolCall("c1", "f", "{}", signature=b"sig"),  # type: ignore[arg-type]
    ],
)
def test_a_tool_call_of_the_wrong_types_is_a_typed_error(call: Any) -> None:
    """A hand-built tool call with dict arguments (or a non-string id/name/signature) in a
    message made fit_messages raise AttributeError ('dict' has no 'encode'); it is refused
    as the message is built, before anything is counted or sent."""
    msgs: list[Any] = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call()]},
        {"role": "tool", "content": "r", "tool_call_id": "c1"},
    ]
    with pytest.raises(InvalidRequestError, match="tool call"):
        fit_messages(msgs, budget_tokens=5)
    with pytest.raises(InvalidRequestError, match="tool call"):
        Message("assistant", None, tool_calls=[call()])


def test_max_tokens_past_the_window_names_max_tokens() -> None:
    """max_tokens larger than the model's window said "-8952424 available ... the
    system/developer messages alone exceed it: shorten them" (there were none) and printed a
    10**400 in full; it names max_tokens and the window now. A budget smaller than the reply's
    priming and tools blames those, not absent system messages."""
    window = default_registry().get("openai/gpt-4.1-mini").capabilities.max_context_window
    for max_tokens in (10**7, 10**400):
        with pytest.raises(ContextWindowExceededError) as ei:
            fit_messages("hi", "openai/gpt-4.1-mini", max_tokens=max_tokens)
        msg = str(ei.value)
        assert f"leaves no room in the {window}-token context window" in msg
        assert "lower max_tokens" in msg
        assert "system/developer" not in msg
        assert len(msg) < 400
    with pytest.raises(ContextWindowExceededError) as ei:
        fit_messages("hi", budget_tokens=1)
    assert "system/developer messages alone" not in str(ei.value)
    assert "the reply's priming and tool definitions alone" in str(ei.value)


# --------------------------------------------------------------------------- any input


class _HostileRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr of a caller's value was called")


_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.builds(_HostileRepr),
    st.lists(st.integers(), max_size=2),
)
_words = st.text(st.sampled_from("ab c\n"), min_size=1, max_size=60)


@st.composite
def _turns(draw: st.DrawFn) -> list[Any]:
    out: list[Any] = []
    if draw(st.booleans()):
        out.append({"role": "system", "content": draw(_words)})
    for i in range(draw(st.integers(1, 6))):
        out.append({"role": "user", "content": draw(_words)})
        if draw(st.booleans()):
            ids = [f"c{i}_{k}" for k in range(draw(st.integers(1, 2)))]
            calls = [ToolCall(c, "f", '{"q": "x"}') for c in ids]
            out.append({"role": "assistant", "content": None, "tool_calls": calls})
            out.extend({"role": "tool", "content": draw(_words), "tool_call_id": c} for c in ids)
        out.append({"role": "assistant", "content": draw(_words)})
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=_turns() | _junk | st.lists(_junk, max_size=3),
    model=st.sampled_from([None, "openai/gpt-4.1-mini", "anthropic/claude-haiku-4-5"]) | _junk,
    max_tokens=st.none() | st.integers(0, 2_000_000) | _junk,
    budget_tokens=st.none() | st.integers(0, 400) | _junk,
    truncate=st.booleans() | _junk,
)
def test_any_arguments_fit_or_give_a_typed_error(
    messages: Any, model: Any, max_tokens: Any, budget_tokens: Any, truncate: Any
) -> None:
    """fit_messages takes anything: a typed error, or messages that fit the budget with every
    tool call kept beside its results."""
    from llmrelay.errors import LLMRelayError

    try:
        r = fit_messages(
            messages,
            model,
            max_tokens=max_tokens,
            budget_tokens=budget_tokens,
            truncate=truncate,
        )
    except LLMRelayError as exc:
        str(exc)
        return
    assert r.tokens <= r.budget
    assert count_message_tokens(r.messages, model) == r.tokens
    called = {c.id for m in r.messages for c in (m.tool_calls or ())}
    answered = {m.tool_call_id for m in r.messages if m.role == "tool"}
    assert called == answered
