"""A text repeated within one ``embed`` call is sent, paid and cached once; its vector goes to
every place it appears. Counted on the wire (the fake upstream over a real socket) and, for
arbitrary duplicate patterns, cached subsets and batch sizes, with hypothesis."""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay.catalog import embeddings as table
from llmrelay.catalog.embeddings import EmbeddingModel
from llmrelay.core.embed import dedupe, reassemble
from llmrelay.core.embed_checks import batches
from llmrelay.testing.fake import FakeUpstream
from llmrelay.testing.fake_embeddings import vector
from llmrelay.types.embeddings import EmbedBatch

from ..conftest import CANARY_KEY
from .test_embed import engine
from .test_embed import fake as fake  # the fixture

SMALL = "openai/text-embedding-3-small"


def client(**kw: Any) -> llmrelay.Client:
    return llmrelay.Client(engine=engine(**kw))


def sent(fake: FakeUpstream) -> list[str]:
    """Every input the upstream received, over all requests."""
    out: list[str] = []
    for r in fake.requests:
        if "requests" in r.body:  # Gemini batchEmbedContents
            out += [q["content"]["parts"][0]["text"] for q in r.body["requests"]]
        elif "content" in r.body:  # Gemini embedContent (one text)
            out.append(r.body["content"]["parts"][0]["text"])
        else:
            out += r.body["input"]
    return out


async def test_a_repeated_text_is_sent_and_paid_once(fake: FakeUpstream) -> None:
    c = client()
    texts = ["the cat", "a dog", "the cat", "the cat", "a bird", "a dog"]
    out = await c.aembed(
        SMALL, texts, dimensions=8, api_key=CANARY_KEY, base_url=fake.openai_base_url
    )
    assert sent(fake) == ["the cat", "a dog", "a bird"]
    assert out.vectors == [vector(t, 8).tolist() for t in texts]
    assert len(out) == 6
    # Usage and cost are what the provider billed for the three texts it was sent.
    assert out.usage.input_tokens == 6
    assert not out.usage.estimated
    assert out.cost.usd == pytest.approx(6 * 0.02 / 1e6)
    assert out.cache_hits == 0


async def test_duplicates_across_batches_and_the_cache(fake: FakeUpstream) -> None:
    c = client(cache=llmrelay.ResponseCache())
    gemini = "gemini/gemini-embedding-001"
    base = fake.gemini_base_url
    texts = [f"doc {i % 130}" for i in range(400)]  # 130 distinct texts, most three times
    out = await c.aembed(gemini, texts, dimensions=128, api_key=CANARY_KEY, base_url=base)
    assert [len(r.body["requests"]) for r in fake.requests] == [100, 30]  # at most 100 a request
    assert sent(fake) == [f"doc {i}" for i in range(130)]
    assert out.vectors == [vector(t, 128).tolist() for t in texts]
    fake.requests.clear()
    again = ["doc 5", "new", "doc 5", "new", "doc 7"]
    out = await c.aembed(gemini, again, dimensions=128, api_key=CANARY_KEY, base_url=base)
    assert sent(fake) == ["new"]  # once, though it appears twice and is not cached
    assert out.cache_hits == 3  # the three places filled from the cache
    assert out.vectors == [vector(t, 128).tolist() for t in again]
    from llmrelay.core.embed_checks import estimate_tokens_of

    # Gemini reports no usage: the estimate of what was sent ("new" once, not twice)
    assert out.usage.estimated
    assert out.usage.input_tokens == estimate_tokens_of(["new"])


async def test_an_all_cached_call_of_duplicates_is_a_cache_hit(fake: FakeUpstream) -> None:
    c = client(cache=llmrelay.ResponseCache())
    kw: dict[str, Any] = {"dimensions": 4, "api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    await c.aembed(SMALL, ["x", "y"], **kw)
    out = await c.aembed(SMALL, ["y", "y", "x", "y"], **kw)
    assert len(fake.requests) == 1
    assert out.cache_hits == 4
    assert out.vectors == [vector(t, 4).tolist() for t in ["y", "y", "x", "y"]]
    assert [a.outcome for a in out.trace] == ["cache_hit"]


def test_token_errors_name_the_callers_index() -> None:
    """The check runs on the caller's list, so the index it names is the caller's."""
    c = llmrelay.Client()
    long = "word " * 9000
    with pytest.raises(llmrelay.InvalidRequestError, match=r"inputs\[3\]"):
        c.embed(SMALL, ["a", "a", "a", long], api_key=CANARY_KEY)


# --------------------------------------------------------------------------- hypothesis

texts_st = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    texts=texts_st,
    cached=st.sets(st.sampled_from(["a", "b", "c", "d", "e", "f", "g"])),
    max_inputs=st.integers(1, 5),
    max_tokens=st.one_of(st.none(), st.integers(2, 12)),
    dim=st.integers(1, 4),
)
def test_reassembly_for_any_duplicates_cache_and_batches(
    texts: list[str], cached: set[str], max_inputs: int, max_tokens: int | None, dim: int
) -> None:
    """The engine's own pieces (``dedupe``, ``batches``, ``reassemble``) in the order
    ``_EmbedCall.candidate`` uses them, with each batch answered as an upstream would: every
    text gets its own vector, in input order, and each distinct text is sent at most once."""
    uniq, where = dedupe(texts)
    assert sorted(set(texts)) == sorted(uniq)
    assert len(uniq) == len(set(uniq))
    found = {i: vector(s, dim) for i, s in enumerate(uniq) if s in cached}
    todo = [i for i in range(len(uniq)) if i not in found]
    parts = batches(todo, uniq, max_inputs, max_tokens) if todo else []
    assert [i for p in parts for i in p] == todo  # every uncached distinct text, once, in order
    assert all(1 <= len(p) <= max_inputs for p in parts)
    got = []
    for p in parts:
        data = array("f")
        for i in p:
            data.extend(vector(uniq[i], dim))
        got.append(EmbedBatch(data, len(p), dim))
    out = reassemble(len(uniq), dim, found, parts, got, where)
    expected = array("f")
    for t in texts:
        expected.extend(vector(t, dim))
    assert out == expected


@pytest.fixture(scope="module")
def fake_thread() -> Iterator[FakeUpstream]:
    with FakeUpstream.running(api_key=CANARY_KEY) as f:
        yield f


@pytest.fixture
def tiny_rows() -> Iterator[None]:
    """Embedding models that take 1, 2 or 3 inputs a request (so small calls split)."""
    rows = table._load()
    keys = []
    for k in (1, 2, 3):
        row = EmbeddingModel(
            "openai", f"tiny-{k}", 4, 1, 100, k, None, None, 0.02, "test row", "2026-12-03"
        )
        keys.append((row.provider, row.model))
        rows[keys[-1]] = row
    try:
        yield
    finally:
        for key in keys:
            del rows[key]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=texts_st, k=st.integers(1, 3), concurrency=st.integers(1, 3))
def test_over_the_socket_any_duplicates_and_batch_size(
    fake_thread: FakeUpstream, tiny_rows: None, texts: list[str], k: int, concurrency: int
) -> None:
    fake_thread.requests.clear()

    async def go() -> llmrelay.Embeddings:
        c = llmrelay.Client()
        try:
            return await c.aembed(
                f"openai/tiny-{k}",
                texts,
                dimensions=4,
                concurrency=concurrency,
                api_key=CANARY_KEY,
                base_url=fake_thread.openai_base_url,
            )
        finally:
            await c.aclose()

    out = asyncio.run(go())
    assert out.vectors == [vector(t, 4).tolist() for t in texts]
    bodies = [r.body["input"] for r in fake_thread.requests]
    assert all(len(b) <= k for b in bodies)
    assert sorted(s for b in bodies for s in b) == sorted(set(texts))  # each distinct text once


class _Liar(str):
    """A str that claims to equal every other and hashes alike (and lies about its length)."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        raise RuntimeError("hostile __bool__")


async def test_str_subclasses_cannot_merge_distinct_texts(fake: FakeUpstream) -> None:
    c = client()
    texts = [_Liar("one"), _Liar("two"), "two", _Liar("one")]
    out = await c.aembed(
        SMALL, texts, dimensions=4, api_key=CANARY_KEY, base_url=fake.openai_base_url
    )
    assert sent(fake) == ["one", "two"]
    assert out.vectors == [vector(t, 4).tolist() for t in ["one", "two", "two", "one"]]
    with pytest.raises(llmrelay.InvalidRequestError, match=r"inputs\[1\] is an empty string"):
        await c.aembed(SMALL, [_Liar("x"), _Liar("")], api_key=CANARY_KEY)
