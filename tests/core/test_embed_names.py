"""Bare embedding model names (no ``provider/``) resolve through the embeddings table, as bare
chat model names resolve through the catalog's aliases: for ``embed``, its fallbacks, and a
chat call (which then says the model is an embedding model)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import llmrelay
from llmrelay.catalog import embeddings as table
from llmrelay.catalog.embeddings import EmbeddingModel, provider_of
from llmrelay.testing.fake import FakeUpstream
from llmrelay.testing.fake_embeddings import vector

from ..conftest import CANARY_KEY


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(api_key=CANARY_KEY) as f:
        yield f


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("text-embedding-3-small", "openai"),  # also an Azure row: Azure needs a base URL
        ("text-embedding-3-large", "openai"),
        ("mistral-embed", "mistral"),
        ("nomic-embed-text", "ollama"),
        ("BAAI/bge-large-en-v1.5", "together"),  # "BAAI" is no provider: the table knows it
        ("gemini-embedding-001", "gemini"),
    ],
)
def test_bare_names_resolve_to_their_provider(name: str, provider: str) -> None:
    t = llmrelay.Client().engine.resolve(name)
    assert (t.provider, t.model) == (provider, name)


async def test_embed_with_a_bare_name_over_the_socket(fake: FakeUpstream) -> None:
    c = llmrelay.Client()
    out = await c.aembed(
        "text-embedding-3-small",
        ["hi"],
        dimensions=4,
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
        fallbacks=["text-embedding-3-large"],
    )
    assert (out.provider, out.model) == ("openai", "text-embedding-3-small")
    assert out.vectors == [vector("hi", 4).tolist()]
    assert fake.requests[-1].body["model"] == "text-embedding-3-small"
    await c.aclose()


async def test_a_chat_call_with_a_bare_embedding_name_says_what_it_is(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=llmrelay.Engine(catalog=llmrelay.Catalog()))
    with pytest.raises(llmrelay.UnsupportedCapabilityError, match="is an embedding model"):
        await c.achat(
            "text-embedding-3-small", "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url
        )
    assert fake.requests == []
    await c.aclose()


def test_unknown_and_ambiguous_names_stay_unknown() -> None:
    engine = llmrelay.Client().engine
    with pytest.raises(llmrelay.UnknownModelError, match="not an alias"):
        engine.resolve("no-such-embed-model")
    with pytest.raises(llmrelay.UnknownModelError):
        llmrelay.Client().embed("no-such-embed-model", ["a"])
    assert provider_of("mistral-embed") == "mistral"


@pytest.fixture
def twin_rows() -> Iterator[None]:
    rows = table._load()
    keys = [("mistral", "twin-embed"), ("together", "twin-embed")]
    for p, m in keys:
        rows[(p, m)] = EmbeddingModel(p, m, 8, None, 100, 10, None, None, 0.1, "test", "x")
    try:
        yield
    finally:
        for key in keys:
            del rows[key]


def test_a_name_two_reachable_providers_list_is_ambiguous(twin_rows: None) -> None:
    assert provider_of("twin-embed") is None
    with pytest.raises(llmrelay.UnknownModelError):
        llmrelay.Client().engine.resolve("twin-embed")


async def test_an_alias_of_llmrelay_toml_falls_back_to_a_bare_embedding_name(
    fake: FakeUpstream, point_at: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``[models.search] fallbacks = ["text-embedding-3-large"]``: the alias's own chain resolves
    bare embedding names as a call's ``fallbacks=`` does (it was an UnknownModelError on every
    call, the primary's answer notwithstanding)."""
    from llmrelay.testing.fake import Reply

    from ..config_isolation import isolated_config

    point_at(fake)
    path = tmp_path / "llmrelay.toml"
    path.write_text(
        '[models.relay-test-search]\nprovider = "openai"\nmodel = "text-embedding-3-small"\n'
        'fallbacks = ["text-embedding-3-large"]\n'
    )
    monkeypatch.setenv("LLMRELAY_CONFIG", str(path))
    with isolated_config():
        c = llmrelay.Client()
        try:
            fake.push(Reply.error(500, "down"))
            out = await c.aembed("relay-test-search", ["hi"], dimensions=4, retries=0)
        finally:
            await c.aclose()
    assert (out.provider, out.model) == ("openai", "text-embedding-3-large")
    assert [a.outcome for a in out.trace] == ["error", "success"]
