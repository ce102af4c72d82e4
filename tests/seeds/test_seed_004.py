"""Every example of seed 004 (``LLMManager``, ``CircuitBreaker``) as a test.

Inference functions stand in for provider calls, a fake clock drives the breakers and a fake
sleep records the backoff, so nothing waits. One test registers provider models by name and
calls the fake upstream over real sockets.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Callable
from typing import Any

import pytest

import llmrelay
from llmrelay import CircuitBreaker, LLMManager
from llmrelay.errors import (
    AllAttemptsFailedError,
    CircuitOpenError,
    ConfigurationError,
    UnknownModelError,
)
from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY, FakeClock


class Sleeps:
    """A fake ``asyncio.sleep``: records the delays and moves the fake clock on."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []
        self._lock = threading.Lock()

    async def __call__(self, seconds: float) -> None:
        with self._lock:
            self.delays.append(seconds)
        self.clock.advance(seconds)


def manager(**kw: Any) -> tuple[LLMManager, FakeClock, Sleeps]:
    clock = FakeClock()
    sleeps = Sleeps(clock)
    return LLMManager(clock=clock, sleep=sleeps, **kw), clock, sleeps


class Recorder:
    """An inference function that records its calls and fails the first ``fail`` of them."""

    def __init__(self, answer: str, fail: int = 0, error: type[Exception] = RuntimeError) -> None:
        self.answer = answer
        self.fail = fail
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, prompt: str, kwargs: dict[str, Any]) -> str:
        self.calls.append((prompt, dict(kwargs)))
        if len(self.calls) <= self.fail:
            raise self.error(f"{self.answer}: simulated outage")
        return self.answer


# --------------------------------------------------------------------------- basic usage


def openai_gpt4(prompt: str, kwargs: dict[str, Any]) -> str:
    return "Generated response from GPT-4"


def claude_opus(prompt: str, kwargs: dict[str, Any]) -> str:
    return "Generated response from Claude"


def seed_manager(**kw: Any) -> tuple[LLMManager, FakeClock, Sleeps]:
    """The seed's "Registering and Using Models" setup."""
    llm_manager, clock, sleeps = manager(max_retries=3, enable_caching=True, **kw)
    llm_manager.register_model(
        name="gpt-4",
        inference_fn=openai_gpt4,
        metadata={"provider": "openai", "max_tokens": 8192, "cost_per_1k_tokens": 0.03},
    )
    llm_manager.register_model(
        name="claude-opus",
        inference_fn=claude_opus,
        metadata={"provider": "anthropic", "max_tokens": 4096, "cost_per_1k_tokens": 0.015},
    )
    return llm_manager, clock, sleeps


def test_registering_and_using_models() -> None:
    llm_manager, _, sleeps = seed_manager()
    llm_manager.set_active_model("gpt-4")
    response = llm_manager.generate(
        prompt="Explain quantum computing in simple terms.", temperature=0.7, max_tokens=500
    )
    assert response == "Generated response from GPT-4"
    assert llm_manager.list_models() == ["gpt-4", "claude-opus"]
    assert sleeps.delays == []
    info = llm_manager.get_model_info("gpt-4")
    assert info["metadata"] == {
        "provider": "openai",
        "max_tokens": 8192,
        "cost_per_1k_tokens": 0.03,
    }
    assert info["stats"]["requests"] == 1
    assert info["stats"]["successes"] == 1
    assert llm_manager.get_model_info("claude-opus")["stats"]["requests"] == 0


def test_the_inference_function_gets_the_prompt_and_kwargs() -> None:
    llm_manager, _, _ = manager()
    fn = Recorder("ok")
    llm_manager.register_model("m", fn)
    llm_manager.set_active_model("m")
    llm_manager.generate("Explain quantum computing.", temperature=0.7, max_tokens=500)
    assert fn.calls == [("Explain quantum computing.", {"temperature": 0.7, "max_tokens": 500})]
    llm_manager.generate("no kwargs")
    assert fn.calls[-1] == ("no kwargs", {})
    llm_manager.generate("custom", top_k=5)  # provider-specific kwargs reach the function too
    assert fn.calls[-1] == ("custom", {"top_k": 5})


# --------------------------------------------------------------------------- fallback chain


def test_fallback_chain() -> None:
    llm_manager, _, sleeps = seed_manager()
    gpt4 = Recorder("Generated response from GPT-4", fail=100)
    llm_manager.register_model("gpt-4", gpt4, {"provider": "openai"})
    gpt35 = Recorder("Generated response from GPT-3.5")
    llm_manager.register_model("gpt-3.5", gpt35, {"provider": "openai"})
    llm_manager.set_active_model("gpt-4")
    llm_manager.set_fallback_chain(["gpt-4", "claude-opus", "gpt-3.5"])

    # If gpt-4 fails, automatically tries claude-opus, then gpt-3.5
    response = llm_manager.generate("Analyze this data...")
    assert response == "Generated response from Claude"
    assert len(gpt4.calls) == 3  # max_retries=3 attempts, with 1 s and 2 s between them
    assert sleeps.delays == [1.0, 2.0]
    assert gpt35.calls == []
    info = llm_manager.get_model_info("gpt-4")["stats"]
    # one call tried gpt-4 (three attempts: two retries) and it could not answer
    assert (info["requests"], info["successes"], info["failures"]) == (1, 0, 1)
    assert info["retries"] == 2
    assert llm_manager.get_model_info("claude-opus")["stats"]["requests"] == 1


def test_fallback_chain_skips_an_unregistered_name(caplog: pytest.LogCaptureFixture) -> None:
    """The seed's chain names "gpt-3.5", which its example never registers: skipped, with a
    warning when the chain is set and a trace entry when the walk reaches it."""
    llm_manager, _, _ = seed_manager()
    llm_manager.set_active_model("gpt-4")
    caplog.set_level("WARNING", logger="llmrelay.manager")
    llm_manager.set_fallback_chain(["gpt-4", "claude-opus", "gpt-3.5"])
    assert [r.getMessage() for r in caplog.records] == [
        "fallback chain: 'gpt-3.5' not registered; skipped until registered "
        "(registered: claude-opus, gpt-4)"
    ]
    assert llm_manager.generate("Analyze this data...") == "Generated response from GPT-4"

    failing = Recorder("never", fail=100)
    llm_manager.register_model("gpt-4", failing)
    llm_manager.register_model("claude-opus", Recorder("never", fail=100))
    with pytest.raises(AllAttemptsFailedError) as info:
        llm_manager.generate("Analyze this data...", use_cache=False)
    trace = info.value.trace
    assert [(a.deployment, a.outcome) for a in trace] == [
        *[("test/gpt-4", "error")] * 3,
        *[("test/claude-opus", "error")] * 3,
        ("gpt-3.5", "skipped"),
    ]
    assert trace[-1].reason == "'gpt-3.5' is in the fallback chain but not registered"

    # Registered later, it is used.
    llm_manager.register_model("gpt-3.5", Recorder("Generated response from GPT-3.5"))
    assert llm_manager.generate("x", use_cache=False) == "Generated response from GPT-3.5"


def test_an_unregistered_name_between_two_models_is_skipped_in_place() -> None:
    llm_manager, _, _ = manager(max_retries=1)
    llm_manager.register_model("a", Recorder("a", fail=100))
    llm_manager.register_model("c", Recorder("c"))
    llm_manager.set_fallback_chain(["a", "b", "c"])
    assert llm_manager.generate("x") == "c"
    llm_manager.register_model("b", Recorder("b"))  # the chain now reaches b
    assert llm_manager.generate("y") == "b"
    m = llm_manager.get_metrics()
    assert (m["total_requests"], m["successful_requests"]) == (2, 2)


def test_chain_with_no_registered_model_is_a_clear_error() -> None:
    llm_manager, _, _ = manager()
    llm_manager.set_fallback_chain(["nobody"])
    with pytest.raises(UnknownModelError, match="register_model"):
        llm_manager.generate("x")
    with pytest.raises(ConfigurationError, match="each entry must be a model name"):
        llm_manager.set_fallback_chain(["a", 3])  # type: ignore[list-item]


def test_no_active_model_uses_the_first_registered_model() -> None:
    """The circuit-breaker example calls generate() right after register_model, with no
    active model."""
    llm_manager, _, _ = manager()
    with pytest.raises(ConfigurationError, match="register_model"):
        llm_manager.generate("x")
    first, second = Recorder("first"), Recorder("second")
    llm_manager.register_model("unreliable-model", first)
    llm_manager.register_model("other", second)
    assert llm_manager.generate("Test prompt") == "first"
    assert second.calls == []
    assert llm_manager.get_model_info("unreliable-model")["active"] is False


def test_fallback_reaches_the_last_model_and_all_failing_is_one_error() -> None:
    llm_manager, _, _ = manager(max_retries=1)
    a = Recorder("a", fail=100, error=ValueError)
    b = Recorder("b", fail=100, error=TimeoutError)
    c = Recorder("c")
    for name, fn in (("a", a), ("b", b), ("c", c)):
        llm_manager.register_model(name, fn)
    llm_manager.set_fallback_chain(["a", "b", "c"])  # no active model: the chain's first
    assert llm_manager.generate("x", use_cache=False) == "c"
    c.fail = 100  # c fails from now on
    c.calls.clear()
    with pytest.raises(AllAttemptsFailedError) as info:
        llm_manager.generate("y", use_cache=False)
    e = info.value
    assert isinstance(e, ExceptionGroup)
    assert [type(x) for x in e.exceptions] == [ValueError, TimeoutError, RuntimeError]
    assert [m for m in ("a", "b", "c") if m in str(e)]
    metrics = llm_manager.get_metrics()
    assert metrics["total_requests"] == 2
    assert metrics["success_rate"] == 0.5


def test_all_failing_reports_the_attempts_actually_made() -> None:
    """Three attempts on each of two models (and an unregistered name skipped): the error says
    six attempts were made -- not two (one per candidate), not seven (the skipped name)."""
    llm_manager, _, _ = manager(max_retries=3, failure_threshold=100)
    a = Recorder("a", fail=100, error=ValueError)
    b = Recorder("b", fail=100, error=TimeoutError)
    llm_manager.register_model("a", a)
    llm_manager.register_model("b", b)
    llm_manager.set_active_model("a")
    llm_manager.set_fallback_chain(["b", "ghost"])
    with pytest.raises(AllAttemptsFailedError) as info:
        llm_manager.generate("x", use_cache=False)
    e = info.value
    assert len(a.calls) + len(b.calls) == 6
    assert e.attempts == 6
    assert "6 attempts" in str(e)
    assert pickle.loads(pickle.dumps(e)).attempts == 6
    assert "2 attempts" not in str(e)
    assert [type(x) for x in e.exceptions] == [ValueError, TimeoutError]  # last error of each
    assert [a.outcome for a in e.trace].count("skipped") == 1
    # one attempt per candidate: the count and the errors agree
    one, _, _ = manager(max_retries=1)
    one.register_model("a", Recorder("a", fail=100))
    one.register_model("b", Recorder("b", fail=100))
    one.set_fallback_chain(["a", "b"])
    with pytest.raises(AllAttemptsFailedError) as info:
        one.generate("x", use_cache=False)
    assert info.value.attempts == 2
    assert "(2 attempts: RuntimeError" in str(info.value)


# --------------------------------------------------------------------------- caching


def test_response_caching() -> None:
    llm_manager, _, _ = manager(enable_caching=True)
    fn = Recorder("AI is ...")
    llm_manager.register_model("gpt-4", fn)
    llm_manager.set_active_model("gpt-4")

    # First call - hits the API
    response1 = llm_manager.generate("What is AI?", use_cache=True)
    # Second call - returns cached response
    response2 = llm_manager.generate("What is AI?", use_cache=True)
    assert response1 == response2 == "AI is ..."
    assert len(fn.calls) == 1
    metrics = llm_manager.get_metrics()
    assert metrics["cache_hit_rate"] == 0.5
    assert metrics["total_requests"] == 2
    # The rate is cache_hits / total_requests: a call that bypasses the cache counts too, as
    # in Client(metrics=True).
    llm_manager.generate("What is AI?", use_cache=False)
    metrics = llm_manager.get_metrics()
    assert metrics["cache_hit_rate"] == pytest.approx(1 / 3)
    assert (metrics["cache_hits"], metrics["cache_misses"]) == (1, 1)

    # Other parameters are another entry; use_cache=False bypasses the cache.
    llm_manager.generate("What is AI?", temperature=0.1)
    llm_manager.generate("What is AI?", use_cache=False)
    assert len(fn.calls) == 4

    # Clear cache when needed
    llm_manager.clear_cache()
    llm_manager.generate("What is AI?", use_cache=True)
    assert len(fn.calls) == 5


async def test_cache_hit_rate_has_the_denominator_of_client_metrics() -> None:
    """The same calls through LLMManager and Client(metrics=True): one hit, one miss, one call
    bypassing the cache -> both say 1/3 (hits / calls)."""
    llm_manager, _, _ = manager(enable_caching=True)
    llm_manager.register_model("m", Recorder("answer"))
    client = llmrelay.Client(metrics=True, cache=True)
    model = llmrelay.TestModel(["answer"] * 3, name="m")
    for use_cache in (True, True, False):
        await llm_manager.agenerate("What is AI?", use_cache=use_cache)
        await client.achat(model, "What is AI?", use_cache=use_cache)
    assert client.metrics is not None
    from_client = client.metrics.get_metrics()["cache_hit_rate"]
    assert llm_manager.get_metrics()["cache_hit_rate"] == from_client == pytest.approx(1 / 3)


def test_caching_disabled() -> None:
    llm_manager, _, _ = manager(enable_caching=False)
    fn = Recorder("x")
    llm_manager.register_model("m", fn)
    llm_manager.set_active_model("m")
    llm_manager.generate("same")
    llm_manager.generate("same")
    assert len(fn.calls) == 2
    assert llm_manager.get_metrics()["cache_hit_rate"] == 0.0
    llm_manager.clear_cache()  # harmless without a cache


# --------------------------------------------------------------------------- circuit breaker


def test_circuit_breaker_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    llm_manager, _, _ = manager()
    inference_fn = Recorder("fine", fail=10**6)

    # Circuit breaker is automatic per model
    llm_manager.register_model("unreliable-model", inference_fn)
    llm_manager.set_active_model("unreliable-model")

    # After 5 failures, circuit breaker opens
    errors: list[Exception] = []
    for _ in range(10):
        try:
            llm_manager.generate("Test prompt")
        except Exception as e:
            errors.append(e)
            print(f"Request failed: {e}")
    assert len(errors) == 10
    assert len(inference_fn.calls) == 5  # the breaker kept the last calls from the model
    assert all(isinstance(e, CircuitOpenError) for e in errors[2:])
    assert isinstance(errors[0], RuntimeError)
    assert isinstance(errors[1], RuntimeError | CircuitOpenError)
    assert capsys.readouterr().out.count("Request failed:") == 10

    info = llm_manager.get_model_info("unreliable-model")
    assert info["circuit_breaker_state"] == "open"

    # Best practice 4: check the breaker before critical operations.
    if info["circuit_breaker_state"] == "open":
        # Manually reset if needed
        llm_manager.reset_circuit_breaker("unreliable-model")

    # Check circuit breaker state
    info = llm_manager.get_model_info("unreliable-model")
    print(f"Circuit breaker state: {info['circuit_breaker_state']}")
    assert capsys.readouterr().out == "Circuit breaker state: closed\n"

    # The model works again: calls flow through the closed breaker.
    inference_fn.fail = 0
    assert llm_manager.generate("Test prompt", use_cache=False) == "fine"


def test_breaker_recovers_after_the_timeout() -> None:
    llm_manager, clock, _ = manager(max_retries=1)
    fn = Recorder("back", fail=5)
    llm_manager.register_model("m", fn)
    llm_manager.set_active_model("m")
    for _ in range(5):
        with pytest.raises(RuntimeError):
            llm_manager.generate("p", use_cache=False)
    with pytest.raises(CircuitOpenError) as info:
        llm_manager.generate("p", use_cache=False)
    assert info.value.retry_after == pytest.approx(60)
    assert llm_manager.get_model_info("m")["circuit_breaker_state"] == "open"
    clock.advance(60)
    assert llm_manager.get_model_info("m")["circuit_breaker_state"] == "half-open"
    assert llm_manager.generate("p", use_cache=False) == "back"  # the probe succeeds
    assert llm_manager.get_model_info("m")["circuit_breaker_state"] == "closed"


def test_open_breaker_falls_back_to_the_next_model() -> None:
    llm_manager, _, _ = manager(max_retries=1)
    primary = Recorder("primary", fail=10**6)
    backup = Recorder("backup")
    llm_manager.register_model("primary", primary)
    llm_manager.register_model("backup", backup)
    llm_manager.set_active_model("primary")
    llm_manager.set_fallback_chain(["primary", "backup"])
    for _ in range(8):
        assert llm_manager.generate("q", use_cache=False) == "backup"
    assert len(primary.calls) == 5  # skipped once its breaker opened
    assert llm_manager.get_model_info("primary")["circuit_breaker_state"] == "open"
    assert llm_manager.get_model_info("backup")["circuit_breaker_state"] == "closed"


def test_circuit_breaker_class() -> None:
    """The public CircuitBreaker: seed constructor, states and call()."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=60, clock=clock)
    assert breaker.state == "closed"

    def flaky() -> str:
        raise ConnectionError("down")

    for _ in range(5):
        with pytest.raises(ConnectionError):
            breaker.call(flaky)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "never")
    clock.advance(60)
    assert breaker.state == "half-open"
    assert breaker.call(lambda x, y=0: x + y, 1, y=2) == 3
    assert breaker.state == "closed"
    with pytest.raises(ConfigurationError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ConfigurationError):
        CircuitBreaker(recovery_timeout=-60)


# --------------------------------------------------------------------------- monitoring


def test_performance_monitoring(capsys: pytest.CaptureFixture[str]) -> None:
    llm_manager, _, _ = seed_manager()
    llm_manager.set_active_model("gpt-4")
    flaky = Recorder("Generated response from GPT-4", fail=1)
    llm_manager.register_model("gpt-4", flaky, {"provider": "openai", "cost_per_1k_tokens": 0.03})
    llm_manager.generate("one")  # one failure, one retry, success
    llm_manager.generate("one")  # cached
    llm_manager.generate("two")

    # Get overall metrics
    metrics = llm_manager.get_metrics()
    print(f"Total requests: {metrics['total_requests']}")
    print(f"Success rate: {metrics['success_rate']:.2%}")
    print(f"Cache hit rate: {metrics['cache_hit_rate']:.2%}")
    print(f"Total tokens: {metrics['total_tokens']}")
    print(f"Total retries: {metrics['total_retries']}")

    # Get model-specific information
    model_info = llm_manager.get_model_info("gpt-4")
    print(f"Requests: {model_info['stats']['requests']}")
    print(f"Successes: {model_info['stats']['successes']}")
    print(f"Failures: {model_info['stats']['failures']}")
    print(f"Average latency: {model_info['stats']['avg_latency']:.3f}s")
    print(f"Circuit state: {model_info['circuit_breaker_state']}")

    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["Total requests: 3", "Success rate: 100.00%", "Cache hit rate: 33.33%"]
    assert out[3].startswith("Total tokens: ")
    assert int(out[3].split(": ")[1]) > 0
    assert out[4] == "Total retries: 1"
    # per call: "one" (a failure, then a retry that answered) and "two"; the cached call
    # reached no model
    assert out[5:8] == ["Requests: 2", "Successes: 2", "Failures: 0"]
    # per call, backoff included: the fake clock moved only by the retry's 1 s wait
    assert out[8] == "Average latency: 0.500s"
    assert out[9] == "Circuit state: closed"

    assert metrics["total_tokens"] == model_info["stats"]["total_tokens"]
    assert metrics["total_cost"] == pytest.approx(metrics["total_tokens"] / 1000 * 0.03)

    # Best practice 3: check the success rate.
    if metrics["success_rate"] < 0.95:
        pytest.fail("success rate should be 100% here")


def test_metrics_without_traffic() -> None:
    llm_manager, _, _ = manager()
    metrics = llm_manager.get_metrics()
    for key in (
        "total_requests",
        "success_rate",
        "cache_hit_rate",
        "total_tokens",
        "total_retries",
    ):
        assert metrics[key] == 0
    assert metrics["total_cost"] is None  # unknown, not a silent $0


# --------------------------------------------------------------------------- retry schedule


def test_retry_with_exponential_backoff() -> None:
    # Configure retry attempts
    llm_manager, _, sleeps = manager(max_retries=5)
    fn = Recorder("processed", fail=4)
    llm_manager.register_model("m", fn)
    llm_manager.set_active_model("m")
    # Attempt 1: immediate; 2: wait 1s; 3: wait 2s; 4: wait 4s; 5: wait 8s
    response = llm_manager.generate("Process this request")
    assert response == "processed"
    assert len(fn.calls) == 5
    assert sleeps.delays == [1.0, 2.0, 4.0, 8.0]
    assert llm_manager.get_metrics()["total_retries"] == 4


def test_retry_gives_up_after_max_retries_attempts() -> None:
    llm_manager, _, sleeps = manager(max_retries=3, failure_threshold=10)
    fn = Recorder("never", fail=100, error=ConnectionError)
    llm_manager.register_model("m", fn)
    llm_manager.set_active_model("m")
    with pytest.raises(ConnectionError):
        llm_manager.generate("p")
    assert len(fn.calls) == 3
    assert sleeps.delays == [1.0, 2.0]
    m = llm_manager.get_metrics()
    assert (m["total_requests"], m["success_rate"], m["total_retries"]) == (1, 0.0, 2)


def test_a_custom_retry_policy() -> None:
    llm_manager, _, sleeps = manager(
        retry_policy=llmrelay.RetryPolicy(
            max_retries=1, base_delay=0.25, jitter=False, retry_unknown_errors=True
        )
    )
    fn = Recorder("ok", fail=1)
    llm_manager.register_model("m", fn)
    llm_manager.set_active_model("m")
    assert llm_manager.generate("p") == "ok"
    assert sleeps.delays == [0.25]


# --------------------------------------------------------------------------- async


async def test_async_inference_functions() -> None:
    llm_manager, _, sleeps = manager()
    calls = 0

    async def async_model(prompt: str, kwargs: dict[str, Any]) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise ConnectionError("transient")
        return f"async: {prompt} {kwargs.get('temperature')}"

    llm_manager.register_model("async-model", async_model)
    llm_manager.set_active_model("async-model")
    assert await llm_manager.agenerate("hi", temperature=0.5) == "async: hi 0.5"
    assert sleeps.delays == [1.0]
    # The sync facade works inside a running event loop too.
    assert llm_manager.generate("sync", use_cache=False) == "async: sync None"
    # Many concurrent calls through one manager.
    results = await asyncio.gather(
        *(llm_manager.agenerate(f"p{i}", use_cache=False) for i in range(20))
    )
    assert results == [f"async: p{i} None" for i in range(20)]


def test_agent_integration_example() -> None:
    llm_manager, _, _ = manager()
    llm_manager.register_model("gpt-4", openai_gpt4)
    llm_manager.set_active_model("gpt-4")

    def agent_task(query: str) -> str:
        return llm_manager.generate(prompt=f"As an AI assistant, respond to: {query}")

    assert agent_task("What is machine learning?") == "Generated response from GPT-4"


# --------------------------------------------------------------------------- provider models


def test_registering_provider_models_against_the_fake(
    fake_thread: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    """The "Real-World Example": providers registered by name, with a fallback."""
    point_at(fake_thread)
    llm, _, sleeps = manager(max_retries=3, enable_caching=True)
    llm.register_model(
        "gpt-4", "openai/gpt-4.1-mini", {"provider": "openai", "cost_per_1k_tokens": 0.01}
    )
    llm.register_model("claude-opus", "anthropic/claude-sonnet-4-5", {"provider": "anthropic"})
    llm.set_active_model("gpt-4")
    llm.set_fallback_chain(["gpt-4", "claude-opus"])

    response = llm.generate(
        prompt="Analyze the impact of AI on society", temperature=0.7, max_tokens=1000
    )
    assert response == "Echo: Analyze the impact of AI on society"
    body = fake_thread.requests[-1].body
    assert body["temperature"] == 0.7
    assert body["max_completion_tokens"] == 1000
    assert fake_thread.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"

    # OpenAI fails three times: claude-opus answers through the Anthropic dialect.
    fake_thread.push(
        *(Reply.error(500, "down", path_contains="chat/completions") for _ in range(3))
    )
    response = llm.generate(prompt="Fallback please", use_cache=False)
    assert response == "Echo: Fallback please"
    assert fake_thread.requests[-1].path.endswith("/messages")
    assert sleeps.delays == [1.0, 2.0]

    metrics = llm.get_metrics()
    print(f"Success rate: {metrics['success_rate']:.2%}")
    print(f"Cache hit rate: {metrics['cache_hit_rate']:.2%}")
    assert metrics["success_rate"] == 1.0
    assert metrics["total_tokens"] > 0
    gpt4 = llm.get_model_info("gpt-4")
    assert gpt4["stats"]["requests"] == 2  # two calls tried it (the second three times)
    assert gpt4["stats"]["failures"] == 1
    assert gpt4["stats"]["retries"] == 2
    assert gpt4["stats"]["total_tokens"] > 0
    assert llm.get_model_info("claude-opus")["stats"]["successes"] == 1
    assert metrics["total_cost"] == pytest.approx(gpt4["stats"]["total_tokens"] / 1000 * 0.01)
    for name in ("gpt-4", "claude-opus"):
        text = repr(llm.get_model_info(name)) + repr(metrics)
        assert CANARY_KEY not in text


def test_registering_an_alias(
    fake_thread: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake_thread)
    llm, _, _ = manager()
    llm.register_model("mini", "gpt-4o-mini")  # a built-in alias (seed 002)
    llm.set_active_model("mini")
    assert llm.generate("hello") == "Echo: hello"
    assert fake_thread.requests[-1].body["model"] == "gpt-4o-mini"
    info = llm.get_model_info("mini")
    assert info["stats"]["successes"] == 1
    assert info["provider"] == "openai"


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_rejected_at_configuration_time() -> None:
    llm, _, _ = manager()

    def one_arg(prompt: str) -> str:
        return prompt

    def three_args(prompt: str, kwargs: dict[str, Any], extra: int) -> str:
        return prompt

    for fn in (one_arg, three_args, lambda: "x", 42, "not a model/at all"):
        with pytest.raises(ConfigurationError):
            llm.register_model("bad", fn)  # type: ignore[arg-type]
    with pytest.raises(UnknownModelError):
        llm.register_model("bad", "nope/some-model")
    with pytest.raises(ConfigurationError):
        llm.register_model("", openai_gpt4)
    with pytest.raises(ConfigurationError):
        llm.register_model("m", openai_gpt4, metadata=["not", "a", "dict"])  # type: ignore[arg-type]
    assert llm.list_models() == []

    llm.register_model("gpt-4", openai_gpt4)
    with pytest.raises(UnknownModelError) as info:
        llm.set_active_model("gpt-5")
    assert "gpt-5" in str(info.value)
    assert "gpt-4" in str(info.value)
    with pytest.raises(ConfigurationError, match="empty"):
        llm.set_fallback_chain([])
    with pytest.raises(ConfigurationError, match="twice"):
        llm.set_fallback_chain(["gpt-4", "gpt-4"])
    with pytest.raises(ConfigurationError):
        llm.set_fallback_chain("gpt-4")  # type: ignore[arg-type]
    with pytest.raises(UnknownModelError):
        llm.get_model_info("nope")
    with pytest.raises(UnknownModelError):
        llm.reset_circuit_breaker("nope")
    llm.set_active_model("gpt-4")
    with pytest.raises(ConfigurationError):
        llm.generate("")
    with pytest.raises(ConfigurationError):
        llm.generate("x", temperature=7)  # out of range, caught before the function runs
    assert llm.get_metrics()["total_requests"] == 0  # rejected calls are not requests


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3", None])
def test_bad_max_retries(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        LLMManager(max_retries=bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_threshold": 0}, {"failure_threshold": -5}, {"recovery_timeout": 0}],
)
def test_bad_breaker_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        LLMManager(**kwargs)


def test_reregistering_a_model_replaces_it() -> None:
    llm, _, _ = manager()
    llm.register_model("m", openai_gpt4)
    llm.set_active_model("m")
    assert llm.generate("x") == "Generated response from GPT-4"
    llm.register_model("m", claude_opus)
    assert llm.generate("y") == "Generated response from Claude"
    assert llm.list_models() == ["m"]
    assert llm.get_model_info("m")["stats"]["successes"] == 1  # a new model, new stats


def test_switching_a_name_between_a_function_and_a_provider_model(
    fake_thread: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake_thread)
    llm, _, _ = manager()
    llm.register_model("b", "openai/gpt-4.1-mini")
    llm.register_model("a", "openai/gpt-4.1-mini")
    llm.register_model("a", openai_gpt4)  # "a" is a function now
    llm.set_active_model("b")
    assert llm.generate("hi") == "Echo: hi"
    assert llm.get_model_info("b")["stats"]["successes"] == 1
    assert llm.get_model_info("a")["stats"]["requests"] == 0


class _HostileStr(str):
    """A model name whose repr raises (a caller's value may be anything)."""

    def __repr__(self) -> str:
        raise RuntimeError("repr of a caller's value was called")


@pytest.mark.parametrize(
    "value",
    [["gpt-4"], {"gpt-4": 1}, _HostileStr("ghost"), [_HostileStr("a"), _HostileStr("a")]],
)
def test_manager_arguments_of_any_kind_give_typed_errors(value: Any) -> None:
    """A list or dict as a model name raised TypeError (unhashable), and a name whose repr
    raises escaped from set_fallback_chain's error and warning; each is a typed error now, and
    a refused call changes nothing (outside review of issue 11)."""
    llm_manager, _, _ = manager(max_retries=1)
    llm_manager.register_model("gpt-4", Recorder("ok"))
    for call in (
        lambda: llm_manager.set_active_model(value),
        lambda: llm_manager.get_model_info(value),
        lambda: llm_manager.reset_circuit_breaker(value),
        lambda: llm_manager.set_fallback_chain(value if isinstance(value, list) else [value]),
    ):
        try:
            call()
        except (ConfigurationError, UnknownModelError) as exc:
            str(exc)
    assert llm_manager.get_metrics()["active_model"] in (None, "gpt-4")
    assert llm_manager.generate("hi") == "ok"


def test_a_chain_of_placeholders_falls_back_to_the_first_registered_model() -> None:
    """Seed 004's best practice sets a chain of placeholder names ("primary-model", ...).
    With no active model, a chain naming no registered model made every generate() fail
    although a model was registered -- skipping the unregistered names leaves "no active
    model", so the first registered model answers, after the skipped entries."""
    llm_manager, _, _ = manager(max_retries=1)
    llm_manager.register_model("model-name", Recorder("fine"))
    llm_manager.set_fallback_chain(["primary-model", "backup-model-1"])
    assert llm_manager.generate("x") == "fine"
    failing, _, _ = manager(max_retries=1)
    failing.register_model("model-name", Recorder("never", fail=100))
    failing.set_fallback_chain(["primary-model"])
    with pytest.raises(RuntimeError, match="simulated outage") as info:
        failing.generate("x")
    assert [(a.deployment, a.outcome) for a in info.value.llmrelay_trace] == [  # type: ignore[attr-defined]
        ("primary-model", "skipped"),
        ("test/model-name", "error"),
    ]
