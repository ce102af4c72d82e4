"""Metrics: counts from real calls, percentiles, time to first token, tokens and cost by model,
unknown costs, the Prometheus text (parsed back), OpenTelemetry spans and CompositeRecorder."""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import llmrelay
from llmrelay.catalog.costs import Cost
from llmrelay.core.layers import CallRecord, Recorder
from llmrelay.core.trace import Attempt
from llmrelay.errors import ConfigurationError
from llmrelay.observe.metrics import Histogram, Metrics
from llmrelay.observe.recorders import CompositeRecorder
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import Response, Usage

from ..conftest import CANARY_KEY

MODEL = "openai/gpt-4.1-mini"


async def no_sleep(_: float) -> None:
    return None


class Prices:
    """$1 per 1M input and $2 per 1M output tokens; gpt-4o-mini has no price."""

    def prepare(self, req: Any, dep: Any) -> Any:
        return req

    def cost(self, dep: Any, usage: Usage) -> Cost:
        if dep.model == "gpt-4o-mini":
            return Cost.unknown("no price")
        return Cost(usage.input_tokens * 1e-6 + usage.output_tokens * 2e-6, True)


class DictCache:
    """A minimal response cache layer keyed by the last message."""

    def __init__(self) -> None:
        self.data: dict[str, Response] = {}

    def key(self, req: Any, dep: Any, backend: Any, ctx: Any) -> str:
        return f"{dep.label}:{req.messages[-1].content}"

    async def get(self, key: str, ctx: Any) -> Response | None:
        return self.data.get(key)

    async def put(self, key: str, resp: Response, ctx: Any) -> None:
        self.data[key] = resp


def rec(
    latency: float = 0.1,
    *,
    outcome: str = "success",
    model: str = "gpt-4.1-mini",
    provider: str = "openai",
    usage: Usage | None = None,
    cost: Cost | None = None,
    ttft: float | None = None,
    attempts: list[Attempt] | None = None,
) -> CallRecord:
    usage = usage or Usage(10, 5)
    label = f"{provider}/{model}"
    if attempts is None:
        usd = cost.usd if cost else None
        attempts = [Attempt(label, "success", latency_s=latency, usage=usage, cost_usd=usd)]
    return CallRecord(
        trace_id="t",
        started_at=time.time(),
        alias=None,
        provider=provider,
        model=model,
        outcome=outcome,
        latency_s=latency,
        usage=usage,
        cost=cost,
        attempts=attempts,
        time_to_first_token_s=ttft,
        cache_hit=outcome == "cache_hit",
        error="ServerError" if outcome == "error" else None,
    )


# --------------------------------------------------------------------------- counts


async def test_counts_from_real_calls(fake: FakeUpstream, point_at: Any) -> None:
    point_at(fake)
    m = Metrics()
    engine = llmrelay.Engine(recorder=m, sleep=no_sleep, catalog=Prices(), cache=DictCache())
    client = llmrelay.Client(engine=engine)
    await client.achat(MODEL, "one")
    await client.achat(MODEL, "one")  # served from the cache
    fake.push(Reply.error(500, "flaky"))
    await client.achat(MODEL, "retried")
    fake.push(Reply.error(503, "down"))
    await client.achat(MODEL, "fallback", retries=0, fallbacks=["openai/gpt-4o-mini"])
    fake.push(Reply.error(400, "bad"))
    with pytest.raises(llmrelay.BadRequestError):
        await client.achat(MODEL, "fails")
    s = client.astream(MODEL, "streamed", use_cache=False)
    async for _ in s:
        pass
    await client.aclose()

    g = m.get_metrics()
    assert g["total_requests"] == 6
    assert (g["successful_requests"], g["failed_requests"]) == (5, 1)
    assert g["success_rate"] == pytest.approx(5 / 6)
    assert g["cache_hits"] == 1
    assert g["cache_hit_rate"] == pytest.approx(1 / 6)
    assert g["total_retries"] == 1
    assert g["total_fallbacks"] == 1
    assert g["errors"] == {"BadRequestError": 1}
    assert g["latency"]["count"] == 6
    assert g["time_to_first_token"]["count"] == 1

    primary = m.get_model_info(MODEL)
    assert primary["name"] == MODEL
    assert primary["provider"] == "openai"
    st = primary["stats"]
    # attempts on gpt-4.1-mini: one, retried (error + success), fallback's error, fails, stream
    assert (st["requests"], st["successes"], st["failures"]) == (6, 3, 3)
    assert st["retries"] == 1
    assert st["cache_hits"] == 1
    assert st["errors"] == {"ServerError": 2, "BadRequestError": 1}
    assert st["avg_latency"] > 0
    assert st["latency"]["count"] == 6
    assert st["time_to_first_token"]["count"] == 1
    backup = m.get_model_info("gpt-4o-mini")  # a bare model name works when unambiguous
    assert backup["name"] == "openai/gpt-4o-mini"
    assert (backup["stats"]["requests"], backup["stats"]["successes"]) == (1, 1)


def test_totals_count_tokens_spent_and_cache_hits_spend_nothing() -> None:
    m = Metrics()
    m.record(rec(usage=Usage(100, 50, cached_tokens=20, reasoning_tokens=10)))
    m.record(rec(outcome="cache_hit", usage=Usage(100, 50)))
    g = m.get_metrics()
    assert g["total_tokens"] == 150
    assert g["input_tokens"] == 100
    assert g["cached_tokens"] == 20
    assert g["reasoning_tokens"] == 10


def test_thread_safe_counts() -> None:
    m = Metrics()

    def work() -> None:
        for _ in range(500):
            m.record(rec())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    g = m.get_metrics()
    assert g["total_requests"] == 4000
    assert g["total_tokens"] == 4000 * 15
    assert g["models"][MODEL]["requests"] == 4000
    m.reset()
    assert m.get_metrics()["total_requests"] == 0
    assert m.model_names() == []


# --------------------------------------------------------------------------- percentiles


def test_percentiles_within_the_documented_error() -> None:
    m = Metrics()
    latencies = [i / 1000 for i in range(1, 1001)]  # 1 ms .. 1 s
    for v in reversed(latencies):
        m.record(rec(v))
    lat = m.get_metrics()["latency"]
    assert lat["count"] == 1000
    assert lat["min"] == 0.001
    assert lat["max"] == 1.0
    assert lat["avg"] == pytest.approx(sum(latencies) / 1000)
    for q, key in ((0.50, "p50"), (0.95, "p95"), (0.99, "p99")):
        exact = latencies[math.ceil(q * 1000) - 1]
        assert lat[key] == pytest.approx(exact, rel=0.045), key


def test_percentiles_of_a_skewed_distribution() -> None:
    h = Histogram()
    for _ in range(90):
        h.observe(0.010)
    for _ in range(10):
        h.observe(2.0)
    assert h.quantile(0.5) == pytest.approx(0.010, rel=0.045)
    assert h.quantile(0.9) == pytest.approx(0.010, rel=0.045)
    assert h.quantile(0.95) == pytest.approx(2.0, rel=0.045)
    assert h.quantile(0.99) == pytest.approx(2.0, rel=0.045)
    assert h.quantile(1.0) == 2.0  # the highest rank is the exact maximum
    assert h.quantile(0.01) == 0.010  # the lowest rank is the exact minimum
    one = Histogram()
    one.observe(0.123)
    assert one.quantile(0.5) == one.quantile(0.99) == 0.123
    assert Histogram().quantile(0.5) is None
    z = Histogram()
    for v in (0.0, 0.0, float("nan"), -1.0, float("inf"), 3.0):
        z.observe(v)
    assert z.count == 3
    assert z.quantile(0.5) == 0.0
    assert z.quantile(1.0) == 3.0


def test_time_to_first_token_by_model() -> None:
    m = Metrics()
    for t in (0.1, 0.2, 0.3, 0.4):
        m.record(rec(1.0, ttft=t))
    m.record(rec(1.0))  # not streamed
    g = m.get_metrics()
    assert g["time_to_first_token"]["count"] == 4
    assert g["time_to_first_token"]["p50"] == pytest.approx(0.2, rel=0.045)
    per = m.get_model_info(MODEL)["stats"]["time_to_first_token"]
    assert per["count"] == 4
    assert per["max"] == 0.4


# --------------------------------------------------------------------------- cost


def test_cost_by_model_and_unknown_cost() -> None:
    m = Metrics()
    m.record(rec(cost=Cost(0.5, True)))
    m.record(rec(cost=Cost(0.25, True)))
    g = m.get_metrics()
    assert g["total_cost"] == pytest.approx(0.75)
    assert g["cost_unknown_requests"] == 0
    assert m.get_model_info(MODEL)["stats"]["cost"] == pytest.approx(0.75)

    m.record(rec(model="llama", provider="groq", cost=Cost.unknown("no price")))
    g = m.get_metrics()
    # the known part, and how many calls are not in it
    assert g["total_cost"] == pytest.approx(0.75)
    assert g["cost_unknown_requests"] == 1
    llama = m.get_model_info("groq/llama")["stats"]
    assert llama["cost"] is None
    assert llama["cost_unknown_requests"] == 1

    only_unknown = Metrics()
    only_unknown.record(rec(cost=None))  # no catalog: tokens but no price
    g = only_unknown.get_metrics()
    assert g["total_cost"] is None
    assert g["cost_unknown_requests"] == 1
    nothing_spent = Metrics()
    nothing_spent.record(
        rec(
            outcome="error",
            usage=Usage(),
            attempts=[Attempt(MODEL, "error", 1, "ServerError", 500, 0.1)],
        )
    )
    assert nothing_spent.get_metrics()["total_cost"] == 0.0  # no tokens: $0, known
    assert Metrics().get_metrics()["total_cost"] == 0.0


def test_model_lookup_and_bad_buckets() -> None:
    m = Metrics()
    m.record(rec(model="same", provider="openai"))
    m.record(rec(model="same", provider="groq"))
    with pytest.raises(ConfigurationError, match="several providers"):
        m.get_model_info("same")
    assert m.get_model_info("openai/never-called")["stats"]["requests"] == 0
    for bad in ([], [1.0, 0.5], [0.0, 1.0], [1.0, math.inf], ["1"]):
        with pytest.raises(ConfigurationError, match="buckets"):
            Metrics(buckets=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_text_parses() -> None:
    m = Metrics()
    for v in (0.003, 0.02, 0.4, 7.0, 400.0):
        m.record(rec(v, cost=Cost(0.01, True), ttft=v / 2))
    failed = [Attempt(MODEL, "error", 1, "ServerError", 500, 0.2)]
    m.record(rec(0.2, outcome="error", usage=Usage(), attempts=failed))
    weird = 'we"ird\\model\nx'
    m.record(rec(0.1, model=weird, provider="groq"))
    text = m.to_prometheus()
    assert text.endswith("\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["llmrelay_requests"].type == "counter"
    assert families["llmrelay_request_duration_seconds"].type == "histogram"
    assert families["llmrelay_time_to_first_token_seconds"].type == "histogram"
    assert families["llmrelay_attempt_duration_seconds"].type == "histogram"
    for name in ("tokens", "cost_usd", "errors", "attempts", "fallbacks"):
        assert families[f"llmrelay_{name}"].type == "counter"
    for line in text.splitlines():
        if not line.startswith("#"):
            continue
        kind, name = line.split()[1:3]
        assert kind in ("HELP", "TYPE")
        assert name.startswith("llmrelay_")

    reqs = {
        (s.labels["model"], s.labels["outcome"]): s.value
        for s in families["llmrelay_requests"].samples
    }
    assert reqs[("gpt-4.1-mini", "success")] == 5
    assert reqs[("gpt-4.1-mini", "error")] == 1
    assert reqs[(weird, "success")] == 1  # escaped and read back intact

    dur = families["llmrelay_request_duration_seconds"].samples
    buckets = [(s.labels["le"], s.value) for s in dur if s.name.endswith("_bucket")]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)
    assert buckets[-1] == ("+Inf", 7.0)
    le = dict(buckets)
    assert (le["0.005"], le["0.025"], le["0.5"], le["10.0"], le["300.0"]) == (1, 2, 5, 6, 6)
    (count,) = [s.value for s in dur if s.name.endswith("_count")]
    (total,) = [s.value for s in dur if s.name.endswith("_sum")]
    assert count == 7
    assert total == pytest.approx(0.003 + 0.02 + 0.4 + 7 + 400 + 0.2 + 0.1)

    cost = {s.labels["model"]: s.value for s in families["llmrelay_cost_usd"].samples}
    assert cost["gpt-4.1-mini"] == pytest.approx(0.05)
    tokens = {
        (s.labels["model"], s.labels["type"]): s.value for s in families["llmrelay_tokens"].samples
    }
    assert tokens[("gpt-4.1-mini", "input")] == 50
    assert tokens[("gpt-4.1-mini", "output")] == 25
    errors = families["llmrelay_errors"].samples
    assert [(s.labels["error"], s.value) for s in errors] == [("ServerError", 1)]


def test_prometheus_text_of_no_calls_parses() -> None:
    families = list(text_string_to_metric_families(Metrics().to_prometheus()))
    assert {f.name for f in families} >= {"llmrelay_requests", "llmrelay_request_duration_seconds"}


# --------------------------------------------------------------------------- OpenTelemetry


@pytest.fixture
def spans() -> Any:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


async def test_otel_span_per_call(fake: FakeUpstream, point_at: Any, spans: Any) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    from llmrelay.observe.otel import OtelSpans

    provider, exporter = spans
    point_at(fake)
    engine = llmrelay.Engine(recorder=OtelSpans(provider), sleep=no_sleep, catalog=Prices())
    client = llmrelay.Client(engine=engine)
    tracer = provider.get_tracer("app")
    fake.push(Reply.error(500, "flaky"), Reply.ok("fine", input_tokens=12, output_tokens=7))
    with tracer.start_as_current_span("handler") as parent:
        resp = await client.achat(MODEL, "hi", trace_id="trace-1", tags={"team": "x"})
    fake.push(Reply.error(400, "bad"))
    with pytest.raises(llmrelay.BadRequestError):
        await client.achat(MODEL, "no", trace_id="trace-2")
    await client.aclose()

    ok, failed = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert ok.name == "chat gpt-4.1-mini"
    assert ok.kind == SpanKind.CLIENT
    assert ok.parent is not None
    assert ok.parent.span_id == parent.get_span_context().span_id
    a = ok.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.system"] == a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4.1-mini"
    assert a["gen_ai.usage.input_tokens"] == 12
    assert a["gen_ai.usage.output_tokens"] == 7
    assert a["llmrelay.trace_id"] == "trace-1"
    assert a["llmrelay.retries"] == 1
    assert a["llmrelay.cost_usd"] == pytest.approx(resp.cost.usd if resp.cost else -1)
    assert a["llmrelay.tag.team"] == "x"
    assert ok.end_time - ok.start_time == pytest.approx(resp.latency_s * 1e9, abs=1e3)
    events = [(e.name, e.attributes["llmrelay.attempt.outcome"]) for e in ok.events]
    assert events == [("llmrelay.attempt", "error"), ("llmrelay.attempt", "success")]
    assert ok.status.status_code != StatusCode.ERROR
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["error.type"] == "BadRequestError"
    assert failed.attributes["http.response.status_code"] == 400
    for s in (ok, failed):
        assert all(v != "hi" and CANARY_KEY not in str(v) for v in s.attributes.values())


def test_otel_without_the_api_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.observe.otel import OtelSpans

    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'llmrelay\[otel\]'"):
        OtelSpans()


# --------------------------------------------------------------------------- composite


def test_composite_recorder_isolates_failures(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def record(self, rec: CallRecord) -> None:
            raise RuntimeError("bug in a user recorder")

    m1, m2 = Metrics(), Metrics()
    c = CompositeRecorder([m1, Broken(), m2])
    for _ in range(3):
        c.record(rec())
    assert m1.get_metrics()["total_requests"] == m2.get_metrics()["total_requests"] == 3
    reports = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(reports) == 1
    assert "Broken" in reports[0].getMessage()
    with pytest.raises(ConfigurationError, match="record"):
        CompositeRecorder([object()])  # type: ignore[list-item]
    assert "Metrics" in repr(c)
    assert isinstance(c, Recorder)
    assert isinstance(m1, Recorder)
