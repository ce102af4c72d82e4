"""Embeddings against what an outside reviewer threw at them (issue 12): hostile upstreams
answering numbers that are not finite, and callers whose input list changes under the call."""

from __future__ import annotations

import asyncio
import base64
import math
from array import array
from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay.errors import InvalidResponseError
from llmrelay.reliability.cache import ResponseCache
from llmrelay.state.memory import MemoryStore
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.testing.fake_embeddings import vector

from .test_embed import SMALL, embed, engine, fake

__all__ = ["fake"]


def _openai_answer(vectors: list[Any]) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        }
    )


def _b64(values: list[float]) -> str:
    return base64.b64encode(array("f", values).tobytes()).decode()


def _bad(n: int, bad: float) -> list[float]:
    return [0.5] * (n - 1) + [bad]


@pytest.mark.parametrize(
    ("model", "body"),
    [
        # float32 NaN and infinity in OpenAI's base64 (no JSON parser stands in the way)
        (SMALL, _openai_answer([_b64(_bad(256, math.nan)), _b64([0.5] * 256)])),
        (SMALL, _openai_answer([_b64([0.5] * 256), _b64(_bad(256, -math.inf))])),
        # a JSON number past float32's range becomes inf in an array('f')
        (SMALL, _openai_answer([[0.5] * 256, _bad(256, 1e39)])),
        ("mistral/mistral-embed", _openai_answer([_bad(1024, 1e39), [0.5] * 1024])),
        (
            "gemini/gemini-embedding-001",
            orjson.dumps({"embeddings": [{"values": _bad(256, -1e39)}, {"values": [0.5] * 256}]}),
        ),
        (
            "cohere/embed-v4.0",
            orjson.dumps({"embeddings": {"float": [[0.5] * 256, _bad(256, 1e39)]}}),
        ),
    ],
)
async def test_vectors_that_are_not_finite_are_refused_and_not_cached(
    fake: FakeUpstream, model: str, body: bytes
) -> None:
    store = MemoryStore()
    c = llmrelay.Client(engine=engine(cache=ResponseCache(store)))
    fake.push(Reply.raw(body))
    kw: dict[str, Any] = {} if model.startswith("mistral") else {"dimensions": 256}
    with pytest.raises(InvalidResponseError, match="not a finite number"):
        await embed(c, fake, model, ["a", "b"], **kw)
    assert store._data == {}


async def test_a_caller_changing_its_list_during_the_call_changes_nothing_sent(
    fake: FakeUpstream,
) -> None:
    """The inputs checked are the inputs sent, cached and answered: a caller (another task)
    editing its list while the call is in flight must not get vectors of texts never checked,
    nor a cache entry of one text under another's key."""
    store = MemoryStore()
    c = llmrelay.Client(engine=engine(cache=ResponseCache(store)))
    texts = [f"doc {i}" for i in range(2049)]  # two batches of text-embedding-3-small
    call = asyncio.ensure_future(embed(c, fake, SMALL, texts, dimensions=2, concurrency=1))
    for _ in range(10_000):
        if fake.requests:
            break
        await asyncio.sleep(0)
    assert fake.requests, "the first batch never arrived"
    texts[2048] = "changed"
    texts[0] = 42  # type: ignore[call-overload]
    out = await call
    sent = [t for r in fake.requests for t in r.body["input"]]
    assert sent == [f"doc {i}" for i in range(2049)]
    assert out[2048] == vector("doc 2048", 2).tolist()
    again = await embed(c, fake, SMALL, ["doc 2048"], dimensions=2)
    assert again.cache_hits == 1
    assert again[0] == vector("doc 2048", 2).tolist()


async def test_a_list_subclass_cannot_show_the_checks_other_items(fake: FakeUpstream) -> None:
    """A list subclass whose iteration differs from its items (what ``"".join`` reads) must not
    get a non-string past the checks."""

    class Two(list[Any]):
        def __iter__(self) -> Any:
            return iter(["a", "b"])

    c = llmrelay.Client(engine=engine())
    try:
        out = await embed(c, fake, SMALL, Two(["a", 5]), dimensions=2)
    except llmrelay.InvalidRequestError:
        assert fake.requests == []
    else:
        (sent,) = fake.requests
        assert all(type(t) is str for t in sent.body["input"])
        assert len(out) == len(sent.body["input"])


async def test_normalization_equal_texts_are_not_merged(fake: FakeUpstream) -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    c = llmrelay.Client(engine=engine(cache=ResponseCache()))
    out = await embed(c, fake, SMALL, [composed, decomposed, composed], dimensions=3)
    assert fake.requests[-1].body["input"] == [composed, decomposed]
    assert out.vectors == [vector(t, 3).tolist() for t in (composed, decomposed, composed)]


async def test_a_batch_failing_while_an_earlier_one_is_in_flight_raises_its_typed_error() -> None:
    """Batch 2 fails while batch 1 still waits for its answer: batch 1 is cancelled, and the
    call raises batch 2's typed error (it raised batch 1's CancelledError: reading a cancelled
    task's exception() raises, and the tasks were read in order)."""
    from aiohttp import web

    release = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        if body["input"][0] == "doc 0":
            await release.wait()  # the first batch hangs until the test ends
        return web.json_response({"error": {"message": "bad batch", "type": "x"}}, status=400)

    app = web.Application()
    app.router.add_post("/v1/embeddings", handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = llmrelay.Client(engine=engine())
    try:
        with pytest.raises(llmrelay.BadRequestError, match="bad batch"):
            await client.aembed(
                SMALL,
                [f"doc {i}" for i in range(2049)],
                dimensions=2,
                concurrency=2,
                retries=0,
                api_key="sk-test",
                base_url=f"http://127.0.0.1:{port}/v1",
            )
    finally:
        release.set()
        await client.aclose()
        await runner.cleanup()


async def test_batches_answered_before_one_failed_are_cached(fake: FakeUpstream) -> None:
    """One batch of three fails (after its retries): the call fails, but the batch that was
    answered -- and paid for -- is cached, so trying again sends only the rest."""
    c = llmrelay.Client(engine=engine(cache=ResponseCache()))
    texts = [f"doc {i}" for i in range(4100)]  # 2048 + 2048 + 4
    fake.push(Reply.ok("first batch: vectors"), Reply.error(400, "bad batch"))
    with pytest.raises(llmrelay.BadRequestError):
        await embed(c, fake, SMALL, texts, dimensions=2, concurrency=1, retries=0)
    assert len(fake.requests) == 2  # the third batch was never sent
    fake.requests.clear()
    out = await embed(c, fake, SMALL, texts, dimensions=2, concurrency=1)
    assert out.cache_hits == 2048
    assert [t for r in fake.requests for t in r.body["input"]] == texts[2048:]
    assert out.vectors == [vector(t, 2).tolist() for t in texts]


async def test_the_rate_limit_estimate_counts_bytes_not_characters(fake: FakeUpstream) -> None:
    """A token is about 4 bytes of UTF-8, not 4 characters: 200 CJK characters (600 bytes,
    about 200 tokens to OpenAI's tokenizers) were estimated at 51 tokens, so a 100-tokens-a-
    minute limit let them through. The estimate is the chat estimate's (at least bytes / 4)."""
    from llmrelay.core.embed_checks import estimate_tokens_of
    from llmrelay.reliability.ratelimit import RateLimiter

    text = "\u6f22\u5b57" * 100
    assert estimate_tokens_of([text]) >= 150
    # ASCII: about 4 characters a token (a lone word counts as one), plus one per input
    assert 12 <= estimate_tokens_of(["abcd" * 10, "x"]) <= 14
    c = llmrelay.Client(engine=engine(limiter=RateLimiter({SMALL: {"tpm": 100}})))
    with pytest.raises(llmrelay.RateLimitedError):
        await embed(c, fake, SMALL, [text], dimensions=2)
    assert fake.requests == []


def test_batches_of_cjk_text_stay_under_the_request_token_cap() -> None:
    """OpenAI caps a request at 300,000 tokens summed over its inputs; the batches were cut at
    3 characters a token, which holds for English but not for CJK text (1 to 2.3 tokens a
    character), so every batch of Chinese documents went over the cap and was refused."""
    import random

    from llmrelay.catalog.tokens import count_tokens
    from llmrelay.core.embed_checks import batches

    rnd = random.Random(12)
    docs = ["".join(chr(rnd.randint(0x4E00, 0x9FFF)) for _ in range(300)) for _ in range(40)]
    docs += ["plain english words " * 20, "emoji \U0001f600\U0001f680 " * 30]
    parts = batches(list(range(len(docs))), docs, 2048, 3000)
    assert sorted(i for p in parts for i in p) == list(range(len(docs)))
    for p in parts:
        assert sum(count_tokens(docs[i], encoding="cl100k_base") for i in p) <= 3000
