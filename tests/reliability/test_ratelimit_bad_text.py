"""A chat call whose message holds lone surrogates, with a rate limiter on: a typed error
before the limiter takes a slot (it was a bare UnicodeEncodeError out of the limiter's token
estimate; found reviewing issue 12, whose embeddings share the limiter)."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay.testing.fake import FakeUpstream

from ..conftest import CANARY_KEY

MODEL = "openai/gpt-4.1-mini"


async def _first_chunk(c: llmrelay.Client, kw: dict[str, str]) -> object:
    return await anext(aiter(c.astream(MODEL, "hi \ud800", **kw)))


@pytest.mark.parametrize("streamed", [False, True])
async def test_lone_surrogates_take_no_rate_limit_slot(fake: FakeUpstream, streamed: bool) -> None:
    limiter = llmrelay.RateLimiter({MODEL: {"rpm": 1}})
    c = llmrelay.Client(engine=llmrelay.Engine(limiter=limiter))
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    try:
        call = _first_chunk(c, kw) if streamed else c.achat(MODEL, "hi \ud800", **kw)
        with pytest.raises(llmrelay.InvalidRequestError, match="lone surrogates"):
            await call
        assert fake.requests == []
        assert (await c.achat(MODEL, "fine", **kw)).text == "Echo: fine"  # the slot is free
    finally:
        await c.aclose()
