"""``llmrelay.embed`` through the engine, against the fake upstream over a real socket: batches
in order, retries, fallbacks of equal dimensions, the per-input cache, rate limits, budgets,
recording, and every bad input refused before anything is sent."""

from __future__ import annotations

import base64
from array import array
from collections.abc import AsyncIterator
from typing import Any

import pytest

import llmrelay
from llmrelay.core.layers import CallRecord
from llmrelay.providers.resolve import Target
from llmrelay.reliability.budgets import BudgetLimit, Budgets
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.state import RedisStore
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.testing.fake_embeddings import vector

from .. import redis_services
from ..conftest import CANARY_KEY, FakeClock

redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url

SMALL = "openai/text-embedding-3-small"


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(api_key=CANARY_KEY) as f:
        yield f


def engine(**kw: Any) -> llmrelay.Engine:
    clock = FakeClock()

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    return llmrelay.Engine(clock=clock, sleep=sleep, catalog=llmrelay.Catalog(), **kw)


async def embed(c: llmrelay.Client, fake: FakeUpstream, model: str, inputs: Any, **kw: Any) -> Any:
    provider = model.split("/", 1)[0]
    return await c.aembed(
        model, inputs, api_key=CANARY_KEY, base_url=fake.base_url_for(provider), **kw
    )


class Records:
    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def record(self, rec: CallRecord) -> None:
        self.rows.append(rec)


async def test_openai_vectors_in_input_order_with_usage_and_cost(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    texts = ["the cat sat", "on the mat", "a third text"]
    out = await embed(c, fake, SMALL, texts, dimensions=16)
    assert out.vectors == [vector(t, 16).tolist() for t in texts]
    assert len(out) == 3
    assert out.dimensions == 16
    assert out[1] == vector(texts[1], 16).tolist()
    assert out.model == "text-embedding-3-small"
    assert out.provider == "openai"
    assert out.usage.input_tokens == 9
    assert not out.usage.estimated
    assert out.cost.usd == pytest.approx(9 * 0.02 / 1e6)
    assert [a.outcome for a in out.trace] == ["success"]
    (sent,) = fake.requests
    assert sent.path == "/v1/embeddings"
    assert sent.body == {
        "model": "text-embedding-3-small",
        "input": texts,
        "dimensions": 16,
        "encoding_format": "base64",
    }
    assert sent.headers["authorization"] == f"Bearer {CANARY_KEY}"


async def test_the_array_view_shares_the_vectors_memory(
    fake: FakeUpstream,
) -> None:
    c = llmrelay.Client(engine=engine())
    out = await embed(c, fake, SMALL, ["x", "y"], dimensions=4)
    assert isinstance(out.data, array)
    assert out.data.typecode == "f"
    view = out.buffer
    assert view.shape == (2, 4)
    out.data[5] = 42.0
    assert view[1, 1] == 42.0  # the view is the array's memory, not a copy


async def test_numpy_reads_the_vectors_without_copying(fake: FakeUpstream) -> None:
    np = pytest.importorskip("numpy")  # optional: not a dependency of llmrelay
    c = llmrelay.Client(engine=engine())
    out = await embed(c, fake, SMALL, ["x", "y"], dimensions=4)
    m = out.numpy()
    assert m.shape == (2, 4)
    assert m.dtype == np.float32
    assert np.shares_memory(m, np.frombuffer(out.data, dtype=np.float32))


async def test_vendors_without_base64_get_floats_and_azure_its_url(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    out = await embed(c, fake, "mistral/mistral-embed", ["bonjour"])
    assert out.dimensions == 1024
    assert out.vectors[0] == vector("bonjour", 1024).tolist()
    assert "encoding_format" not in fake.requests[-1].body
    azure = Target(
        "azure",
        "text-embedding-3-small",
        base_url=fake.openai_base_url,
        options={"api_version": "2024-10-21"},
    )
    out = await c.aembed(azure, ["hi"], api_key=CANARY_KEY)
    sent = fake.requests[-1]
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == CANARY_KEY
    assert out.dimensions == 1536


async def test_gemini_single_and_batched_with_task_type(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    one = await embed(c, fake, "gemini/gemini-embedding-001", "query", task_type="RETRIEVAL_QUERY")
    sent = fake.requests[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert sent.body == {"content": {"parts": [{"text": "query"}]}, "taskType": "RETRIEVAL_QUERY"}
    assert sent.headers["x-goog-api-key"] == CANARY_KEY
    assert one.dimensions == 3072
    assert one.usage.estimated
    texts = [f"doc {i}" for i in range(250)]
    many = await embed(c, fake, "gemini/gemini-embedding-001", texts, dimensions=128)
    batches = [r.body["requests"] for r in fake.requests[1:]]
    assert [len(b) for b in batches] == [100, 100, 50]  # the API takes at most 100 a request
    assert batches[0][0]["outputDimensionality"] == 128
    assert batches[0][0]["model"] == "models/gemini-embedding-001"
    assert many.vectors == [vector(t, 128).tolist() for t in texts]
    assert len(many.trace) == 3
    assert many.usage.input_tokens == 500


async def test_more_inputs_than_a_request_takes_are_split_and_reassembled(
    fake: FakeUpstream,
) -> None:
    c = llmrelay.Client(engine=engine())
    texts = [f"t{i}" for i in range(5000)]
    out = await embed(c, fake, SMALL, texts, dimensions=2, concurrency=2)
    assert sorted(len(r.body["input"]) for r in fake.requests) == [904, 2048, 2048]
    assert out.vectors == [vector(t, 2).tolist() for t in texts]


async def test_a_failed_batch_is_retried_on_the_engine_clock(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    fake.push(Reply.error(500, "boom"))
    out = await embed(c, fake, SMALL, ["a"], dimensions=3)
    assert [a.outcome for a in out.trace] == ["error", "success"]
    assert out.vectors == [vector("a", 3).tolist()]


async def test_fallback_embeds_everything_again_on_a_model_of_the_same_size(
    fake: FakeUpstream,
) -> None:
    c = llmrelay.Client(engine=engine())
    fake.push(Reply.error(401, "bad key", path_contains="/v1beta/"))
    primary = Target("gemini", "gemini-embedding-001", base_url=fake.gemini_base_url)
    fallback = Target(
        "openai",
        "text-embedding-3-large",
        base_url=fake.openai_base_url,
        api_key=llmrelay.Secret(CANARY_KEY),
    )
    out = await c.aembed(
        primary, ["a", "b"], dimensions=256, api_key=CANARY_KEY, fallbacks=[fallback]
    )
    assert out.provider == "openai"
    assert out.dimensions == 256
    assert [a.outcome for a in out.trace] == ["error", "success"]


async def test_a_fallback_of_another_size_is_refused_before_sending(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    with pytest.raises(llmrelay.InvalidRequestError, match="different sizes"):
        await embed(c, fake, SMALL, ["a"], fallbacks=["openai/text-embedding-3-large"])
    assert fake.requests == []


@pytest.mark.parametrize(
    ("inputs", "kw", "err", "words"),
    [
        ([], {}, llmrelay.InvalidRequestError, "empty"),
        (["ok", 3], {}, llmrelay.InvalidRequestError, r"inputs\[1\] is of type int"),
        (["ok", ""], {}, llmrelay.InvalidRequestError, "empty string"),
        (b"bytes", {}, llmrelay.InvalidRequestError, "list of strings"),
        (["ok"], {"dimensions": 0}, llmrelay.InvalidRequestError, "positive whole number"),
        (["ok"], {"dimensions": 4000}, llmrelay.InvalidRequestError, "1 to 1536"),
        (["word " * 9000], {}, llmrelay.InvalidRequestError, "at most 8192 tokens"),
        (["ok"], {"temperature": 0.2}, llmrelay.InvalidRequestError, "temperature"),
        (["ok"], {"concurrency": 0}, llmrelay.InvalidRequestError, "concurrency"),
    ],
)
async def test_bad_input_is_refused_before_sending(
    fake: FakeUpstream, inputs: Any, kw: dict[str, Any], err: type[Exception], words: str
) -> None:
    c = llmrelay.Client(engine=engine())
    with pytest.raises(err, match=words):
        await embed(c, fake, SMALL, inputs, **kw)
    assert fake.requests == []


async def test_models_of_the_wrong_kind_are_refused_both_ways(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    with pytest.raises(llmrelay.UnsupportedCapabilityError, match="is a chat model"):
        await embed(c, fake, "openai/gpt-4.1-mini", ["a"])
    with pytest.raises(llmrelay.UnsupportedCapabilityError, match="serves no embeddings API"):
        await embed(c, fake, "anthropic/claude-sonnet-4-5", ["a"])
    with pytest.raises(llmrelay.UnsupportedCapabilityError, match="is an embedding model"):
        await c.achat(SMALL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    with pytest.raises(llmrelay.InvalidRequestError, match="only its full size, 1536"):
        await embed(c, fake, "openai/text-embedding-ada-002", ["a"], dimensions=512)
    assert fake.requests == []


async def test_the_cache_serves_each_input_once(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine(cache=llmrelay.ResponseCache()))
    first = await embed(c, fake, SMALL, ["a", "b"], dimensions=8)
    again = await embed(c, fake, SMALL, ["b", "c", "a"], dimensions=8)
    assert fake.requests[-1].body["input"] == ["c"]  # only the new text is paid for
    assert again.cache_hits == 2
    assert again.vectors == [first.vectors[1], vector("c", 8).tolist(), first.vectors[0]]
    assert again.usage.input_tokens == 1
    cache = c.engine.cache
    assert isinstance(cache, llmrelay.ResponseCache)
    assert cache.stats.hits == 2
    assert cache.stats.saved_cost_usd == pytest.approx(2 * 0.02 / 1e6)  # one token each
    other = await embed(c, fake, SMALL, ["a"], dimensions=4)  # another size: another entry
    assert other.cache_hits == 0
    assert len(other[0]) == 4


async def test_the_cache_works_on_redis_for_many_inputs(
    fake: FakeUpstream, redis_store: RedisStore
) -> None:
    c = llmrelay.Client(engine=engine(cache=llmrelay.ResponseCache(redis_store)))
    texts = [f"doc {i}" for i in range(300)]
    first = await embed(c, fake, SMALL, texts[:200], dimensions=4)
    again = await embed(c, fake, SMALL, texts, dimensions=4)
    assert fake.requests[-1].body["input"] == texts[200:]
    assert again.cache_hits == 200
    assert again.vectors[:200] == first.vectors
    assert again.vectors == [vector(t, 4).tolist() for t in texts]


async def test_a_failed_batch_cancels_the_others_and_the_fallback_embeds_all(
    fake: FakeUpstream,
) -> None:
    c = llmrelay.Client(engine=engine())
    fake.push(Reply.error(401, "bad key", path_contains="/v1beta/"))
    primary = Target("gemini", "gemini-embedding-001", base_url=fake.gemini_base_url)
    fallback = Target(
        "openai",
        "text-embedding-3-large",
        base_url=fake.openai_base_url,
        api_key=llmrelay.Secret(CANARY_KEY),
    )
    texts = [f"doc {i}" for i in range(250)]
    out = await c.aembed(primary, texts, dimensions=128, api_key=CANARY_KEY, fallbacks=[fallback])
    assert out.provider == "openai"
    assert fake.requests[-1].body["input"] == texts  # every input again, on one model
    assert out.vectors == [vector(t, 128).tolist() for t in texts]
    assert out.trace[0].outcome == "error"
    assert out.trace[-1].deployment == "openai/text-embedding-3-large"


async def test_metrics_count_embeddings_calls(fake: FakeUpstream) -> None:
    c = llmrelay.Client(metrics=True)
    await embed(c, fake, SMALL, ["a", "b"], dimensions=2)
    assert c.metrics is not None
    m = c.metrics.get_metrics()
    assert m["total_requests"] == 1
    await c.aclose()


async def test_rate_limits_count_input_tokens(fake: FakeUpstream) -> None:
    limiter = RateLimiter({SMALL: {"tpm": 100}})
    c = llmrelay.Client(engine=engine(limiter=limiter))
    await embed(c, fake, SMALL, ["short"], dimensions=2)
    with pytest.raises(llmrelay.RateLimitedError):
        await embed(c, fake, SMALL, ["x" * 1000], dimensions=2)
    assert len(fake.requests) == 1


async def test_budgets_reserve_the_input_price(fake: FakeUpstream) -> None:
    budgets = Budgets([BudgetLimit(0.000001)])
    c = llmrelay.Client(engine=engine(budget=budgets))
    with pytest.raises(llmrelay.BudgetExceededError):
        await embed(c, fake, SMALL, ["x" * 4000] * 10)
    assert fake.requests == []
    out = await embed(c, fake, SMALL, ["tiny"], dimensions=2)
    assert out.cost.usd > 0


async def test_calls_are_recorded(fake: FakeUpstream) -> None:
    rec = Records()
    c = llmrelay.Client(engine=engine(recorder=rec))
    await embed(c, fake, SMALL, ["a", "b"], dimensions=2, tags={"team": "search"})
    fake.push(Reply.error(400, "nope"))
    with pytest.raises(llmrelay.BadRequestError) as ei:
        await embed(c, fake, SMALL, ["a"], dimensions=2)
    ok, bad = rec.rows
    assert (ok.outcome, ok.provider, ok.model, ok.usage.input_tokens) == (
        "success",
        "openai",
        "text-embedding-3-small",
        2,
    )
    assert ok.tags == {"team": "search"}
    assert ok.cost is not None
    assert (bad.outcome, bad.error, bad.status) == ("error", "BadRequestError", 400)
    assert ei.value.trace
    assert ei.value.trace[-1].outcome == "error"


def test_the_sync_facade_and_the_module_functions(fake_sync: FakeUpstream) -> None:
    out = llmrelay.embed(
        SMALL, ["hello"], dimensions=3, api_key=CANARY_KEY, base_url=fake_sync.openai_base_url
    )
    assert out.vectors == [vector("hello", 3).tolist()]
    b64 = base64.b64encode(out.data.tobytes()).decode()
    assert base64.b64decode(b64) == vector("hello", 3).tobytes()


@pytest.fixture
def fake_sync() -> Any:
    with FakeUpstream.running(api_key=CANARY_KEY) as f:
        yield f


async def test_vectors_of_another_size_than_asked_are_refused_and_not_cached() -> None:
    """An upstream answering 16 floats to ``dimensions=8`` (a proxy ignoring the parameter, a
    misconfigured deployment) is an ``InvalidResponseError``, and nothing is cached."""
    from aiohttp import web

    from llmrelay.errors import InvalidResponseError
    from llmrelay.reliability.cache import ResponseCache
    from llmrelay.state.memory import MemoryStore

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        data = [
            {"object": "embedding", "index": i, "embedding": [0.25] * 16}
            for i in range(len(body["input"]))
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 2, "total_tokens": 2},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/embeddings", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    store = MemoryStore()
    client = llmrelay.Client(cache=ResponseCache(store))
    try:
        with pytest.raises(InvalidResponseError, match="16 dimensions; the call expects 8"):
            await client.aembed(
                "openai/text-embedding-3-small",
                ["a", "b"],
                dimensions=8,
                api_key=CANARY_KEY,
                base_url=f"http://127.0.0.1:{port}/v1",
            )
        assert store._data == {}
    finally:
        await client.aclose()
        await runner.cleanup()
