"""Every public entry point validates its input: arbitrary values thrown at each argument give a
typed llmrelay error or a success, never a builtins exception; a caller error sends nothing
(the fake upstream listens on a real socket and counts what arrives) and leaves the breakers and
the budget ledger as they were."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay import client as api
from llmrelay.core.engine import Engine
from llmrelay.core.options import OPTION_NAMES, CallOptions
from llmrelay.core.retry import RetryPolicy
from llmrelay.errors import ConfigurationError, InvalidRequestError, LLMRelayError
from llmrelay.reliability.budgets import BudgetLimit, Budgets, MemoryLedger
from llmrelay.testing.fake import FakeUpstream
from llmrelay.transport.base import Timeouts
from llmrelay.types import PARAM_NAMES, Message, TextPart

from .conftest import CANARY_KEY

MODEL = "openai/gpt-4.1-mini"


class HostileRepr:
    """An argument whose ``repr`` raises: error messages must not call it."""

    def __repr__(self) -> str:
        raise RuntimeError("repr called")


#: Past what a float holds: ``float()``/``math.isfinite`` of it raise OverflowError.
HUGE = 10**400

_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_text = st.text(st.characters() | _surrogates, max_size=6)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # nan, +-inf, -0.0, subnormals
    st.sampled_from([float("nan"), float("inf"), -1, 0, "", "\ud800", "x\udfff", HUGE]),
    st.builds(HostileRepr),
    _text,
    st.binary(max_size=6),
    st.builds(object),
)
#: Anything a caller might pass: scalars, text with lone surrogates, bytes, lists, dicts with
#: non-string keys, arbitrary objects.
HOSTILE = st.one_of(
    _scalar,
    st.lists(_scalar, max_size=3),
    st.dictionaries(st.integers() | _text, _scalar, max_size=3),
    st.tuples(_scalar, _scalar),
)
_FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _no_sleep(_: float) -> None:
    return None


class Rig:
    """A client over a real socket with breakers and a budget whose state can be compared."""

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.checks = 0
        self.limit = BudgetLimit(1000.0, period="total")
        # The catalog's estimator counts the prompt's tokens before each call.
        self.budgets = Budgets([self.limit], ledger=MemoryLedger(), unknown_cost="allow")
        engine = Engine(
            breakers=True,
            budget=self.budgets,
            retry=RetryPolicy(max_retries=0),
            sleep=_no_sleep,
        )
        self.client = llmrelay.Client(engine=engine)

    def state(self) -> tuple[Any, dict[str, float]]:
        breakers = self.client.engine.breakers
        assert breakers is not None
        # A breaker created on first use in its initial state is no change.
        snap = {
            k: v
            for k, b in breakers.items()
            if (v := (b.state, len(b._window), b._failures, b._probes_in_flight, b.open_count))
            != ("closed", 0, 0, 0, 0)
        }
        ledger = asyncio.run(self.budgets.status(self.limit))
        return snap, ledger

    def check(self, call: Callable[[], Any], *, same_path: bool = False) -> Any:
        """Run ``call``: a success, or a typed error; a caller error changes nothing.

        Each check reaches the fake under its own path prefix, so a request of an earlier
        example that timed out on the client and lands late is not counted against this one."""
        self.checks += 0 if same_path and self.checks else 1
        marker = f"/check-{self.checks}"
        os.environ["OPENAI_BASE_URL"] = self.fake.url + marker + "/v1"
        before = self.state()
        try:
            return call()
        except LLMRelayError as exc:
            error = exc
        assert CANARY_KEY not in str(error)
        if isinstance(error, ConfigurationError):
            assert self.state() == before, error
            assert not [r for r in self.fake.requests if r.path.startswith(marker + "/")], error
        return error


@pytest.fixture
def rig(fake_thread: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]) -> Rig:
    point_at(fake_thread)
    return Rig(fake_thread)


@pytest.fixture
def as_default(rig: Rig) -> Iterator[None]:
    """The module-level facades (llmrelay.chat, ...) use the rig's client."""
    saved = api._default
    api._default = rig.client
    yield
    api._default = saved


_CALL_ARGS = sorted((OPTION_NAMES | PARAM_NAMES | {"extra"}) - {"response_model"})


@_FAST
@given(name=st.sampled_from(_CALL_ARGS), value=HOSTILE, streamed=st.booleans())
def test_any_value_of_any_call_argument(rig: Rig, name: str, value: Any, streamed: bool) -> None:
    if streamed:
        rig.check(lambda: list(rig.client.stream(MODEL, "hi", **{name: value})))
    else:
        rig.check(lambda: rig.client.chat(MODEL, "hi", **{name: value}))


_part = st.dictionaries(
    st.sampled_from(["type", "text", "data", "url", "media_type", "image_url", "detail"]),
    HOSTILE | st.sampled_from(["text", "image", "image_url", "aGk=", "!!", "image/png"]),
    max_size=4,
)
_message = st.dictionaries(
    st.sampled_from(["role", "content", "name", "tool_calls", "tool_call_id"]),
    HOSTILE
    | st.sampled_from(["user", "assistant", "tool", "system"])
    | st.lists(_part, max_size=2),
    max_size=4,
)
MESSAGES = st.one_of(HOSTILE, _message, st.lists(_message | HOSTILE, max_size=3))


@_FAST
@given(messages=MESSAGES, model=st.just(MODEL) | HOSTILE, streamed=st.booleans())
def test_any_messages_and_model(rig: Rig, messages: Any, model: Any, streamed: bool) -> None:
    if streamed:
        rig.check(lambda: list(rig.client.stream(model, messages)))
    else:
        rig.check(lambda: rig.client.chat(model, messages))


@_FAST
@given(
    facade=st.sampled_from(["chat", "achat", "stream", "astream", "map", "amap"]),
    messages=MESSAGES,
    name=st.sampled_from(_CALL_ARGS),
    value=HOSTILE,
)
def test_module_facades(
    rig: Rig, as_default: None, facade: str, messages: Any, name: str, value: Any
) -> None:
    kwargs = {name: value}

    async def consume(s: Any) -> list[Any]:
        return [c async for c in s]

    def call() -> Any:
        if facade == "chat":
            return llmrelay.chat(MODEL, messages, **kwargs)
        if facade == "achat":
            return asyncio.run(llmrelay.achat(MODEL, messages, **kwargs))
        if facade == "stream":
            return list(llmrelay.stream(MODEL, messages, **kwargs))
        if facade == "astream":
            return asyncio.run(consume(llmrelay.astream(MODEL, messages, **kwargs)))
        if facade == "map":
            results = rig.client.map(MODEL, messages, **kwargs)
        else:
            results = asyncio.run(llmrelay.amap(MODEL, messages, client=rig.client, **kwargs))
        for r in results:  # a failed item carries its typed error
            assert r.error is None or isinstance(r.error, LLMRelayError), r.error
        return results

    rig.check(call)


_ENTRY_POINTS: dict[str, Callable[[list[Any]], Any]] = {
    "count_tokens": lambda a: llmrelay.count_tokens(a[0], a[1], encoding=a[2]),
    "count_message_tokens": lambda a: llmrelay.count_message_tokens(
        a[0], a[1], tools=a[2], encoding=a[3]
    ),
    "calculate_cost": lambda a: llmrelay.calculate_cost(a[0], a[1], registry=a[2]),
    "calculate_cost_usage": lambda a: llmrelay.calculate_cost(
        "openai/gpt-4o", {"input_tokens": a[0], "output_tokens": a[1], "cached_tokens": a[2]}
    ),
    "BudgetLimit": lambda a: BudgetLimit(a[0], a[1], a[2], a[3]),
    "BudgetLimit_scope": lambda a: BudgetLimit(1.0, scope=a[0], match=a[1]),
    "Budgets": lambda a: Budgets(a[0], ledger=MemoryLedger(), unknown_cost=a[1], clock=a[2]),
    "Timeouts": lambda a: Timeouts(a[0], a[1], a[2]),
    "Limits": lambda a: llmrelay.Limits(a[0], a[1], a[2], a[3], a[4]),
    "RateLimiter": lambda a: llmrelay.RateLimiter({"*": a[0], "user:*": {"rpm": a[1]}}),
    "RateLimiter_limits": lambda a: llmrelay.RateLimiter(a[0]),
    "CallOptions": lambda a: CallOptions(**dict(zip(sorted(OPTION_NAMES), a, strict=False))),
    "Message": lambda a: Message(a[0], a[1], a[2], a[3], a[4]),
    "TextPart_in_Message": lambda a: Message("user", [TextPart(a[0])]),
    "ImagePart": lambda a: llmrelay.ImagePart(a[0], a[1], a[2], a[3]),
    "Tool": lambda a: llmrelay.Tool.coerce(a[0]),
    "Client": lambda a: llmrelay.Client(timeout=a[0], metrics=a[1], cache=a[2], limits=a[3]),
    "ModelHandler": lambda a: llmrelay.ModelHandler(a[0]),
    "LLMClient": lambda a: llmrelay.LLMClient(a[0], client=a[1]),
    "LLMManager": lambda a: llmrelay.LLMManager(
        a[0], failure_threshold=a[1], recovery_timeout=a[2], cache_max_entries=a[3]
    ),
    "LLMManager_register": lambda a: llmrelay.LLMManager().register_model(a[0], a[1], a[2]),
    "LLMManager_chain": lambda a: llmrelay.LLMManager().set_fallback_chain(a[0]),
}


@pytest.mark.parametrize("entry", sorted(_ENTRY_POINTS))
@_FAST
@given(args=st.lists(HOSTILE, min_size=6, max_size=6))
def test_constructors_and_helpers(rig: Rig, entry: str, args: list[Any]) -> None:
    rig.check(lambda: _ENTRY_POINTS[entry](args))


@_FAST
@given(
    alias=st.just("openai/gpt-4.1-mini") | HOSTILE,
    prompt=HOSTILE,
    temperature=HOSTILE,
    preferred=HOSTILE,
    auto=HOSTILE,
)
def test_seed_facades_calls(
    rig: Rig, alias: Any, prompt: Any, temperature: Any, preferred: Any, auto: Any
) -> None:
    handler = llmrelay.ModelHandler(client=rig.client)
    rig.check(lambda: handler.get_response(alias, prompt))
    rig.check(  # built inside: LLMSettings reads the base URL from the environment
        lambda: llmrelay.LLMClient(client=rig.client).get_response_sync(
            prompt, temperature=temperature, preferred_models=preferred, auto=auto
        )
    )
    manager = llmrelay.LLMManager(transport=rig.client.engine.transport, sleep=_no_sleep)
    manager.register_model("m", MODEL)
    manager.set_active_model("m")
    rig.check(lambda: manager.generate(prompt, use_cache=bool(auto), temperature=temperature))


# --------------------------------------------------------------------------- named cases


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"fallbacks": 5}, "fallbacks"),
        ({"api_key": 123}, "api_key"),
        ({"headers": "str"}, "headers"),
        ({"headers": {1: 2}}, "headers"),
        ({"headers": {"x-a": "v\r\nx-injected: 1"}}, "line break"),
        ({"headers": {"x-a": "v\nx"}}, "line break"),
        ({"headers": {"bad name": "v"}}, "header name"),
        ({"headers": {"x-a": 5}}, "must be a string"),
        ({"system": 123}, "system"),
        ({"tenant": 123}, "tenant"),
        ({"extra": {1: 2}}, "extra"),
        ({"first_token_timeout": -1}, "first_token_timeout"),
        ({"max_reasks": -1}, "max_reasks"),
        ({"trace_id": 123}, "trace_id"),
        ({"use_cache": "no"}, "use_cache"),
        ({"wait_for_rate_limit": "yes"}, "wait_for_rate_limit"),
        ({"tags": "x"}, "tags"),
        ({"retry": 5}, "retry"),
        ({"no_store": "no"}, "no_store"),
    ],
)
def test_each_bad_option_is_named(rig: Rig, kwargs: dict[str, Any], names: str) -> None:
    exc = rig.check(lambda: rig.client.chat(MODEL, "hi", **kwargs))
    assert isinstance(exc, InvalidRequestError)
    assert names in str(exc)
    assert not rig.fake.requests


def test_header_injection_value_is_not_shown(rig: Rig) -> None:
    exc = rig.check(lambda: rig.client.chat(MODEL, "hi", headers={"x-a": "sk-secret\r\nx-b: 1"}))
    assert isinstance(exc, InvalidRequestError)
    assert "sk-secret" not in str(exc)
    assert not rig.fake.requests


def test_api_key_of_wrong_type_is_not_shown(rig: Rig) -> None:
    exc = rig.check(lambda: rig.client.chat(MODEL, "hi", api_key=987654321))
    assert isinstance(exc, InvalidRequestError)
    assert "987654321" not in str(exc)


@pytest.mark.parametrize(
    ("messages", "system", "where"),
    [
        ("hi \ud800", None, "message 0 (user)"),
        ("hi", "be \udfff brief", "message 0 (system)"),
        ([{"role": "user", "content": [{"type": "text", "text": "a\ud83d"}]}], None, "message 0"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
def test_lone_surrogates_name_the_message(
    rig: Rig, messages: Any, system: str | None, where: str, streamed: bool
) -> None:
    def call() -> Any:
        if streamed:
            return list(rig.client.stream(MODEL, messages, system=system))
        return rig.client.chat(MODEL, messages, system=system)

    for _ in range(8):  # more than the breaker's threshold: a caller error never opens it
        exc = rig.check(call, same_path=True)
        assert isinstance(exc, InvalidRequestError)
        assert where in str(exc)
        assert "surrogates" in str(exc)
    assert not rig.fake.requests
    assert rig.client.chat(MODEL, "fine").text == "Echo: fine"


def test_unencodable_extra_value_is_named(rig: Rig) -> None:
    exc = rig.check(lambda: rig.client.chat(MODEL, "hi", extra={"meta": object()}))
    assert isinstance(exc, InvalidRequestError)
    assert "extra['meta']" in str(exc)
    assert not rig.fake.requests


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        (None, "messages must be"),
        (5, "messages must be"),
        (object(), "messages must be"),
        (
            [{"role": "user", "content": [{"type": "image", "data": "!!", "media_type": "x"}]}],
            "base64",
        ),
        ([{"role": ["user"], "content": "x"}], "role"),
        ([{"role": "user", "content": "x", 1: 2}], "unknown message field"),
        ([{"role": "assistant", "tool_calls": 5}], "tool_calls"),
    ],
)
def test_bad_messages_are_named(rig: Rig, messages: Any, match: str) -> None:
    exc = rig.check(lambda: rig.client.chat(MODEL, messages))
    assert isinstance(exc, InvalidRequestError)
    assert match in str(exc)
    assert not rig.fake.requests


def test_infinite_timeouts_mean_no_limit(rig: Rig) -> None:
    assert Timeouts(total=float("inf")).total is None
    assert rig.client.chat(MODEL, "hi", timeout=float("inf")).text == "Echo: hi"
    assert (
        "".join(c.delta for c in rig.client.stream(MODEL, "hi", timeout=float("inf"))) == "Echo: hi"
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Timeouts(total=-1), "total"),
        (lambda: Timeouts(connect=float("nan")), "connect"),
        (lambda: Timeouts(read="1"), "read"),
        (lambda: llmrelay.count_tokens("x", model=5), "model"),
        (lambda: llmrelay.count_tokens("x", encoding=["o200k_base"]), "encoding"),
        (lambda: BudgetLimit(5, scope=None), "scope"),  # type: ignore[arg-type]
        (lambda: BudgetLimit(5, period=[]), "period"),  # type: ignore[arg-type]
        (lambda: Budgets(5), "list of BudgetLimit"),  # type: ignore[arg-type]
        (lambda: llmrelay.calculate_cost("gpt-4o", {}, registry=5), "registry"),  # type: ignore[arg-type]
        (lambda: llmrelay.Client().map(MODEL, 5), "prompts"),  # type: ignore[arg-type]
    ],
)
def test_helpers_name_the_bad_argument(rig: Rig, call: Callable[[], Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        call()


def test_string_enum_roles_are_still_roles(rig: Rig) -> None:
    """The checks are type checks, not exact-class checks: a str subclass is a string."""
    import enum

    class Role(enum.StrEnum):
        USER = "user"

    assert Message(Role.USER, "x").role == "user"
    resp = rig.client.chat(MODEL, [{"role": Role.USER, "content": "hi", "name": "u"}])
    assert resp.text == "Echo: hi"


# --------------------------------------------------------------------------- huge numbers, reprs


def _chat(**kw: Any) -> Callable[[], Any]:
    return lambda: llmrelay.Client().chat(MODEL, "hi", **kw)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (_chat(temperature=HUGE), "temperature"),
        (_chat(top_p=HUGE), "top_p"),
        (_chat(presence_penalty=HUGE), "presence_penalty"),
        (_chat(timeout=HUGE), "timeout"),
        (_chat(deadline=HUGE), "deadline"),
        (_chat(first_token_timeout=HUGE), "first_token_timeout"),
        (_chat(cache_ttl=HUGE), "cache_ttl"),
        (lambda: Timeouts(connect=HUGE), "connect"),
        (lambda: Engine(deadline=HUGE), "deadline"),
        (lambda: BudgetLimit(HUGE), "limit_usd"),
        (lambda: llmrelay.RateLimiter(max_block=HUGE), "max_block"),
        (lambda: llmrelay.RateLimiter({MODEL: {"rpm": HUGE}}), "rpm"),
        (lambda: llmrelay.LLMManager(failure_threshold=HUGE), "failure_threshold"),
        (lambda: llmrelay.LLMManager(recovery_timeout=HUGE), "recovery_timeout"),
        (lambda: llmrelay.calculate_cost(MODEL, {"prompt_tokens": HUGE}), "prompt_tokens"),
        (lambda: llmrelay.calculate_cost(MODEL, llmrelay.Usage(HUGE, 1)), "token counts"),
    ],
)
def test_a_number_too_large_for_a_float_is_named(
    rig: Rig, call: Callable[[], Any], name: str
) -> None:
    """``10**400`` makes ``float()`` and ``math.isfinite`` raise OverflowError: every check
    turns it into the typed error naming the argument, without printing its 400 digits."""
    exc = rig.check(call)
    assert isinstance(exc, LLMRelayError), exc
    assert name in str(exc)
    assert "0" * 100 not in str(exc)


@pytest.mark.parametrize(
    "name", ["temperature", "max_tokens", "stop", "seed", "tool_choice", "user", "response_model"]
)
def test_a_value_whose_repr_raises_is_named_by_its_type(rig: Rig, name: str) -> None:
    exc = rig.check(lambda: rig.client.chat(MODEL, "hi", **{name: HostileRepr()}))
    assert isinstance(exc, InvalidRequestError)
    assert name in str(exc)
    assert "HostileRepr" in str(exc)
    assert not rig.fake.requests


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: llmrelay.Client(engine=5), "engine"),  # type: ignore[arg-type]
        (lambda: Engine(budget=5), "budget"),  # type: ignore[arg-type]
        (lambda: Engine(breakers=5), "breakers"),  # type: ignore[arg-type]
        (lambda: Engine(retry=5), "retry"),  # type: ignore[arg-type]
        (lambda: Engine(cache="yes"), "cache"),  # type: ignore[arg-type]
        (lambda: Engine(limiter={"rpm": 5}), "limiter"),  # type: ignore[arg-type]
        (lambda: Engine(catalog=object()), "catalog"),  # type: ignore[arg-type]
        (lambda: Engine(recorder=print), "recorder"),  # type: ignore[arg-type]
        (lambda: Engine(transport=5), "transport"),  # type: ignore[arg-type]
    ],
)
def test_parts_of_the_wrong_type_are_refused_when_passed(
    rig: Rig, call: Callable[[], Any], name: str
) -> None:
    """Not later, as AttributeError on the first call."""
    with pytest.raises(ConfigurationError, match=f"^{name} must be"):
        call()
    assert not rig.fake.requests
