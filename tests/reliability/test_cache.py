"""The response cache: keys, scopes, TTLs, streams, failures -- in memory, SQLite and Redis."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

import llmrelay
from llmrelay.core import codec
from llmrelay.core.engine import CallOptions
from llmrelay.core.layers import CallContext
from llmrelay.errors import (
    ConfigurationError,
    InvalidRequestError,
    ServerError,
    StateStoreError,
    StreamInterruptedError,
)
from llmrelay.providers.doubles import FunctionModel, TestModel
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.cache import ResponseCache
from llmrelay.state import MemoryStore, RedisStore, SQLiteStore
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import ChatRequest, Message, Response, ToolCall, Usage, build_params

from .. import redis_services
from ..conftest import CANARY_KEY, FakeClock

MODEL = "openai/gpt-4o-mini"

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url


def _chat_requests(fake: FakeUpstream) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/chat/completions"))


async def test_second_identical_call_is_served_from_the_cache(fake: FakeUpstream) -> None:
    client = llmrelay.Client(cache=True)
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url, "temperature": 0.3}
    first = await client.achat(MODEL, "what is 2+2?", **kw)
    second = await client.achat(MODEL, "what is 2+2?", **kw)
    assert _chat_requests(fake) == 1
    assert second.text == first.text
    assert second.cache_hit
    assert not first.cache_hit
    assert second.usage == first.usage  # what the answer took when it was produced
    assert second.total_usage == llmrelay.Usage()  # nothing was spent now
    assert second.cost is not None
    assert second.cost.usd == 0.0
    assert [a.outcome for a in second.trace] == ["cache_hit"]
    stats = client.engine.cache.stats  # type: ignore[union-attr]
    assert (stats.hits, stats.misses, stats.stores) == (1, 1, 1)
    assert stats.hit_rate == 0.5
    assert first.cost is not None
    assert first.cost.known
    assert stats.saved_cost_usd == pytest.approx(first.cost.usd)
    await client.aclose()


async def test_every_generation_parameter_and_the_model_are_in_the_key(
    fake: FakeUpstream,
) -> None:
    client = llmrelay.Client(cache=True)
    base = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    tool = {"name": "f", "parameters": {"type": "object", "properties": {}}}
    variants = [
        {},
        {"temperature": 0.1},
        {"temperature": 0.2},
        {"max_tokens": 10},
        {"top_p": 0.5},
        {"stop": "x"},
        {"seed": 1},
        {"tools": [tool]},
        {"response_format": "json"},
        {"extra": {"logprobs": True}},
    ]
    for v in variants:
        await client.achat(MODEL, "hello", **base, **v)
    await client.achat("openai/gpt-4.1-mini", "hello", **base)
    await client.achat(MODEL, "hello", system="be brief", **base)
    assert _chat_requests(fake) == len(variants) + 2  # all misses
    for v in variants:  # and each is now a hit
        assert (await client.achat(MODEL, "hello", **base, **v)).cache_hit
    await client.aclose()


async def test_tenants_and_api_keys_never_share_entries(fake: FakeUpstream) -> None:
    client = llmrelay.Client(cache=True)
    kw = {"base_url": fake.openai_base_url}
    fake.push(Reply.ok("for acme"), Reply.ok("for globex"))
    a = await client.achat(MODEL, "secret?", api_key=CANARY_KEY, tenant="acme", **kw)
    b = await client.achat(MODEL, "secret?", api_key=CANARY_KEY, tenant="globex", **kw)
    assert (a.text, b.text) == ("for acme", "for globex")
    assert not b.cache_hit
    again = await client.achat(MODEL, "secret?", api_key=CANARY_KEY, tenant="acme", **kw)
    assert again.cache_hit
    assert again.text == "for acme"
    # without a tenant, the API key is the scope: another key does not see this entry
    async with FakeUpstream() as any_key:  # accepts every key
        url = any_key.openai_base_url
        k1 = await client.achat(MODEL, "q", api_key="sk-first-key", base_url=url)
        k2 = await client.achat(MODEL, "q", api_key="sk-second-key", base_url=url)
        k3 = await client.achat(MODEL, "q", api_key="sk-first-key", base_url=url)
        assert (k1.cache_hit, k2.cache_hit, k3.cache_hit) == (False, False, True)
    await client.aclose()


async def test_the_key_and_the_entry_never_hold_the_api_key(fake: FakeUpstream) -> None:
    store = MemoryStore()
    client = llmrelay.Client(cache=ResponseCache(store))
    await client.achat(MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    ((key, (_, value)),) = store._data.items()
    assert CANARY_KEY not in key
    assert CANARY_KEY.encode() not in value
    assert CANARY_KEY not in repr(client.engine.cache)
    await client.aclose()


async def test_streams_are_stored_as_their_response_and_replayed(fake: FakeUpstream) -> None:
    client = llmrelay.Client(cache=True)
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    first = [c async for c in client.astream(MODEL, "stream this answer", **kw)]
    replay = [c async for c in client.astream(MODEL, "stream this answer", **kw)]
    assert _chat_requests(fake) == 1
    assert "".join(c.delta for c in replay) == "".join(c.delta for c in first)
    assert len([c for c in replay if c.delta]) > 1  # replayed as a stream, piece by piece
    final = replay[-1]
    assert final.done
    assert final.response is not None
    assert final.response.cache_hit
    plain = await client.achat(MODEL, "stream this answer", **kw)  # shares the entry
    assert plain.cache_hit
    assert _chat_requests(fake) == 1
    await client.aclose()


async def test_cut_streams_and_errors_are_never_stored(fake: FakeUpstream) -> None:
    client = llmrelay.Client(cache=True)
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url, "retries": 0}
    fake.push(Reply.cut_stream(after_chunks=2, text="one two three four five"))
    with pytest.raises(StreamInterruptedError):
        async for _ in client.astream(MODEL, "cut me", **kw):
            pass
    fresh = await client.achat(MODEL, "cut me", **kw)
    assert not fresh.cache_hit  # the partial answer was not served
    fake.push(Reply.error(500, "boom"))
    with pytest.raises(ServerError):
        await client.achat(MODEL, "fail me", **kw)
    ok = await client.achat(MODEL, "fail me", **kw)
    assert not ok.cache_hit
    assert ok.text == "Echo: fail me"
    assert client.engine.cache.stats.stores == 2  # type: ignore[union-attr]
    await client.aclose()


async def test_answers_that_ended_in_an_error_are_not_stored() -> None:
    cache = ResponseCache()
    client = llmrelay.Client(cache=cache)
    model = TestModel([Response(text="partial", finish_reason="error"), "fine"])
    assert (await client.achat(model, "q")).finish_reason == "error"
    assert (await client.achat(model, "q")).text == "fine"
    assert (await client.achat(model, "q")).cache_hit
    s = [
        c async for c in client.astream(TestModel([Response(text="x", finish_reason="error")]), "s")
    ]
    assert s[-1].done
    assert cache.stats.stores == 1


async def test_per_call_use_cache_no_store_and_ttl() -> None:
    clock = FakeClock()
    cache = ResponseCache(MemoryStore(clock=clock), ttl=100)
    client = llmrelay.Client(cache=cache)
    model = TestModel(["a", "b", "c", "d", "e"])
    assert (await client.achat(model, "q", no_store=True)).text == "a"
    assert (await client.achat(model, "q", use_cache=False)).text == "b"
    assert (await client.achat(model, "q", cache_ttl=5)).text == "c"
    assert (await client.achat(model, "q")).text == "c"  # hit
    assert (await client.achat(model, "q", use_cache=False)).text == "d"  # skips the read
    clock.t += 5
    assert (await client.achat(model, "q")).text == "e"  # the 5 s entry expired
    clock.t += 99
    assert (await client.achat(model, "q")).cache_hit  # the default 100 s ttl holds
    with pytest.raises(InvalidRequestError, match="cache_ttl"):
        await client.achat(model, "q", cache_ttl=0)
    with pytest.raises(ConfigurationError, match="ttl"):
        ResponseCache(ttl=0)
    with pytest.raises(ConfigurationError, match="ttl"):
        ResponseCache(ttl=-3)


async def test_network_free_models_are_keyed_by_identity_messages_and_params() -> None:
    client = llmrelay.Client(cache=True)
    f1 = FunctionModel(lambda msgs, p: "f1", name="same")
    f2 = FunctionModel(lambda msgs, p: "f2", name="other")
    assert (await client.achat(f1, "q")).text == "f1"
    assert (await client.achat(f2, "q")).text == "f2"
    assert (await client.achat(f1, "q")).cache_hit
    assert not (await client.achat(f1, "q", temperature=0.5)).cache_hit
    assert not (await client.achat(f1, [{"role": "user", "content": "q2"}])).cache_hit
    image = llmrelay.ImagePart(data=b"\x89PNG", media_type="image/png")
    msg = llmrelay.Message("user", [llmrelay.TextPart("see"), image])
    await client.achat(f1, [msg])
    assert (await client.achat(f1, [msg])).cache_hit


async def test_a_corrupted_entry_is_deleted_and_counted_as_a_miss(fake: FakeUpstream) -> None:
    store = MemoryStore()
    client = llmrelay.Client(cache=ResponseCache(store))
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    await client.achat(MODEL, "q", **kw)
    (key,) = list(store._data)
    junk_entries = (
        b"\xff not json",
        b"[2, 5]",
        b'{"v": 2}',
        b"[]",
        b'{"c": 3, "r": {"v": 1}, "saved": null, "at": 0}',
        b'{"c": 3, "r": {"v": 1, "text": 5}, "saved": null, "at": 0}',
    )
    for junk in junk_entries:
        await store.set(key, junk, None)
        r = await client.achat(MODEL, "q", **kw)
        assert not r.cache_hit
        assert r.text == "Echo: q"
    stats = client.engine.cache.stats  # type: ignore[union-attr]
    assert stats.corrupt == len(junk_entries)
    assert stats.hits == 0
    assert (await client.achat(MODEL, "q", **kw)).cache_hit  # re-stored after the last miss
    await client.aclose()


class BrokenStore(MemoryStore):
    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        raise StateStoreError("store down")

    def get_now(self, key: str) -> bytes | None:
        raise StateStoreError("store down")


async def test_a_failing_store_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    cache = ResponseCache(BrokenStore())
    client = llmrelay.Client(cache=cache)
    model = TestModel(["one", "two"])
    assert (await client.achat(model, "q")).text == "one"
    assert (await client.achat(model, "q")).text == "two"
    assert cache.stats.errors == 4
    assert cache.stats.misses == 2
    assert "bypassed" in caplog.text


async def test_clear_empties_only_its_namespace() -> None:
    store = MemoryStore()
    a = llmrelay.Client(cache=ResponseCache(store, namespace="a"))
    b = llmrelay.Client(cache=ResponseCache(store, namespace="b"))
    model = TestModel()
    await a.achat(model, "q")
    await b.achat(model, "q")
    assert await a.engine.cache.clear() == 1  # type: ignore[union-attr]
    assert not (await a.achat(model, "q")).cache_hit
    assert (await b.achat(model, "q")).cache_hit


async def test_an_entry_written_by_an_older_llmrelay_is_served(fake: FakeUpstream) -> None:
    """Entries of format 2 (a compact list, before the codec) stay readable: a shared Redis or
    SQLite cache keeps its entries across an upgrade."""
    store = MemoryStore()
    client = llmrelay.Client(cache=ResponseCache(store))
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    await client.achat(MODEL, "q", **kw)
    (key,) = list(store._data)
    old = (
        b'[2,"from an older llmrelay",[["c1","f","{\\"a\\": 1}"]],"tool_calls","tool_calls",'
        b'[3,4,1,0,2],"openai","gpt-4o-mini","chatcmpl-1","req-1",{"seed":"dropped"},0.0025,'
        b"1700000000.0]"
    )
    await store.set(key, old, None)
    r = await client.achat(MODEL, "q", **kw)
    assert r.cache_hit
    assert r.text == "from an older llmrelay"
    assert r.tool_calls == [ToolCall("c1", "f", '{"a": 1}')]
    assert (r.finish_reason, r.raw_finish_reason) == ("tool_calls", "tool_calls")
    assert r.usage == Usage(3, 4, 1, 0, 2)
    assert (r.provider, r.model, r.id, r.request_id) == (
        "openai",
        "gpt-4o-mini",
        "chatcmpl-1",
        "req-1",
    )
    assert r.adjusted_params == {"seed": "dropped"}
    assert r.cost is not None
    assert r.cost.usd == 0.0
    stats = client.engine.cache.stats  # type: ignore[union-attr]
    assert stats.saved_cost_usd == pytest.approx(0.0025)
    assert stats.corrupt == 0
    await client.aclose()


async def test_an_entry_keeps_what_the_answer_was_not_what_the_call_was() -> None:
    """The stored record carries the answer (usage, estimated or not, ids, adjusted params);
    what described the storing call (alias, latency, total usage, cost) is the serving call's."""
    store = MemoryStore()
    client = llmrelay.Client(cache=ResponseCache(store))

    def fn(messages: list[Message], params: object) -> Response:
        return Response(
            text="hi",
            finish_reason="stop",
            usage=Usage(5, 6, estimated=True),
            id="r-1",
            request_id="q-1",
            adjusted_params={"seed": "dropped"},
        )

    model = FunctionModel(fn, name="m")
    first = await client.achat(model, "q")
    (key,) = list(store._data)
    raw = await store.get(key)
    assert raw is not None
    entry = orjson.loads(raw)
    assert (entry["c"], entry["r"]["v"]) == (3, codec.FORMAT)
    call_fields = ("alias", "total_usage", "cost", "time_to_first_token_s", "latency_s")
    assert [entry["r"][k] for k in call_fields] == [None, None, None, None, 0.0]
    second = await client.achat(model, "q")
    assert second.cache_hit
    assert not first.cache_hit
    assert second.usage == first.usage == Usage(5, 6, estimated=True)
    assert (second.id, second.request_id) == ("r-1", "q-1")
    assert second.adjusted_params == first.adjusted_params
    assert second.total_usage == Usage()
    assert second.cost is not None
    assert second.cost.usd == 0.0
    await client.aclose()


def test_a_request_the_adapter_cannot_build_is_not_cached() -> None:
    cache = ResponseCache()
    dep = make_deployment("gemini", "gemini-2.5-flash", api_key=CANARY_KEY)
    from llmrelay.providers.backends import HttpBackend, get_adapter

    backend = HttpBackend(get_adapter("gemini"), None)  # type: ignore[arg-type]
    only_system = ChatRequest([Message("system", "sys")], build_params({}))
    ctx = CallContext(CallOptions(), "t", 0.0)
    assert cache.key(only_system, dep, backend, ctx) is None
    ok = ChatRequest([Message("user", "u")], build_params({}))
    key = cache.key(ok, dep, backend, ctx)
    assert key is not None
    assert CANARY_KEY not in key


async def test_sqlite_cache_survives_a_new_client(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    model = TestModel(["persisted"], name="persist")
    c1 = llmrelay.Client(cache=ResponseCache(SQLiteStore(path)))
    assert (await c1.achat(model, "q")).text == "persisted"
    c2 = llmrelay.Client(cache=ResponseCache(SQLiteStore(path)))
    r = await c2.achat(model, "q")
    assert r.cache_hit
    assert r.text == "persisted"


def test_llm_manager_caches_through_the_layer() -> None:
    calls: list[str] = []

    def fn(prompt: str, kwargs: dict[str, object]) -> str:
        calls.append(prompt)
        return f"answer {len(calls)}"

    m = llmrelay.LLMManager()
    m.register_model("gpt-4", fn)
    m.set_active_model("gpt-4")
    assert m.generate("What is AI?") == "answer 1"
    assert m.generate("What is AI?") == "answer 1"
    assert m.generate("What is AI?", use_cache=False) == "answer 2"
    assert m.generate("What is AI?", temperature=0.5) == "answer 3"
    metrics = m.get_metrics()
    assert metrics["cache_hits"] == 1
    assert metrics["cache_misses"] == 2
    # hits / total_requests (the use_cache=False call counts), as Client(metrics=True) does
    assert metrics["cache_hit_rate"] == pytest.approx(1 / 4)
    assert metrics["successful_requests"] == 4
    assert m.get_model_info("gpt-4")["stats"]["requests"] == 3  # the hit reached no model
    m.clear_cache()
    assert m.generate("What is AI?") == "answer 4"
    off = llmrelay.LLMManager(enable_caching=False)
    off.register_model("gpt-4", fn)
    off.set_active_model("gpt-4")
    assert off.generate("x") != off.generate("x")


@pytest.mark.services
async def test_redis_cache_hit_and_tenants(redis_store: RedisStore) -> None:
    a = llmrelay.Client(cache=ResponseCache(redis_store))
    b = llmrelay.Client(cache=ResponseCache(redis_store))  # another client, same Redis
    model = TestModel(["for t1", "for t2"], name="redis-cache")
    assert (await a.achat(model, "q", tenant="t1")).text == "for t1"
    assert (await b.achat(model, "q", tenant="t2")).text == "for t2"
    hit = await b.achat(model, "q", tenant="t1")
    assert hit.cache_hit
    assert hit.text == "for t1"
    stream = [c async for c in b.astream(model, "q", tenant="t2")]
    assert stream[-1].response is not None
    assert stream[-1].response.cache_hit
    keys = [
        k async for k in (await redis_store._client()).scan_iter(match=redis_store.prefix + "*")
    ]
    assert len(keys) == 2
    value = await redis_store.get(keys[0].decode())
    assert value is not None
    assert orjson.loads(value)["c"] == 3  # the entry format
    ttl = await redis_store.call("pttl", keys[0])
    assert 0 < ttl <= 3_600_000
    assert await a.engine.cache.clear() == 2  # type: ignore[union-attr]
    await a.aclose()
    await b.aclose()
