"""Voyage AI and Cohere embeddings: recorded real answers replayed over a socket, the fake
upstream's dialects through the whole engine (batches split at each API's limits, errors,
retries), ``input_type`` mapped per provider, bad input refused before anything is sent, and
arbitrary answers never escaping as anything but typed errors."""

from __future__ import annotations

import base64
import json
from array import array
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay.providers.adapters.cohere_embeddings import CohereEmbeddingsAdapter
from llmrelay.providers.adapters.embedding_errors import map_error
from llmrelay.providers.adapters.voyage_embeddings import VoyageEmbeddingsAdapter
from llmrelay.providers.resolve import Target
from llmrelay.providers.table import make_deployment
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.testing.fake_embeddings import vector
from llmrelay.transport.base import HttpResponse
from llmrelay.types.embeddings import EmbedRequest

from ..conftest import CANARY_KEY
from ..core.test_embed import embed, engine
from ..recordings.replay import ReplayServer, entry, events, exchanges

VOYAGE = make_deployment("voyage", "voyage-3.5", api_key=CANARY_KEY)
COHERE = make_deployment("cohere", "embed-v4.0", api_key=CANARY_KEY)


@pytest.fixture
async def fake() -> Any:
    async with FakeUpstream(api_key=CANARY_KEY) as f:
        yield f


# --------------------------------------------------------------------------- recordings


def _recorded_request(rid: str) -> dict[str, Any]:
    req = exchanges(entry(rid))[0].request
    assert req is not None
    assert req.body is not None
    body: dict[str, Any] = json.loads(req.body)
    return body


def _recorded_answer(rid: str) -> Any:
    return events(exchanges(entry(rid))[0].response)[0]


async def _replay(rid: str, model: str, inputs: list[str], **kw: Any) -> tuple[Any, Any]:
    """Embed against the replayed recording: (result or error, the request llmrelay sent)."""
    assert entry(rid).wire in ("voyage_embeddings", "cohere_embeddings")
    c = llmrelay.Client(engine=llmrelay.Engine(catalog=llmrelay.Catalog()))
    out: Any
    async with ReplayServer([x.response for x in exchanges(entry(rid))]) as server:
        try:
            out = await c.aembed(model, inputs, api_key=CANARY_KEY, base_url=server.url, **kw)
        except llmrelay.LLMRelayError as exc:
            out = exc
        assert len(server.received) == 1  # nothing retried: the recordings hold one answer
        sent = server.received[0]
    await c.aclose()
    return out, sent


def _without_nulls(body: dict[str, Any]) -> dict[str, Any]:
    """pydantic-ai sends unset options as null; llmrelay leaves them out."""
    return {k: v for k, v in body.items() if v is not None}


async def test_recorded_voyage_query_decodes_the_base64_float32_vectors() -> None:
    rid = "voyage-embeddings-base64-query"
    out, sent = await _replay(rid, "voyage/voyage-3.5", ["Hello, world!"], input_type="query")
    assert sent.path_qs == "/embeddings"
    assert sent.json() == _without_nulls(_recorded_request(rid))
    recorded = _recorded_answer(rid)
    (item,) = recorded["data"]
    assert array("f", out.vectors[0]).tobytes() == base64.b64decode(item["embedding"])
    assert out.dimensions == 1024
    assert out.usage.input_tokens == recorded["usage"]["total_tokens"] == 3
    assert not out.usage.estimated
    assert out.cost.usd == pytest.approx(3 * 0.06 / 1e6)
    assert dict(sent.headers)["Authorization"] == f"Bearer {CANARY_KEY}"


async def test_recorded_voyage_documents_with_zero_tokens_are_estimated() -> None:
    rid = "voyage-embeddings-base64-documents-zero-tokens"
    out, sent = await _replay(rid, "voyage/voyage-3.5", ["hello", "world"], input_type="document")
    assert sent.json() == _without_nulls(_recorded_request(rid))
    recorded = _recorded_answer(rid)
    assert [array("f", v).tobytes() for v in out.vectors] == [
        base64.b64decode(d["embedding"]) for d in recorded["data"]
    ]
    assert recorded["usage"]["total_tokens"] == 0
    assert out.usage.estimated  # a count of 0 for two texts is not believed
    assert out.usage.input_tokens > 0


async def test_recorded_voyage_unknown_model_is_a_bad_request() -> None:
    err, _ = await _replay("voyage-embeddings-400-unknown-model", "voyage/nonexistent", ["x"])
    assert isinstance(err, llmrelay.BadRequestError)
    assert err.status == 400
    assert "Model nonexistent is not supported" in err.message


async def test_recorded_cohere_query_and_documents() -> None:
    rid = "cohere-embed-v2-float-query"
    out, sent = await _replay(rid, "cohere/embed-v4.0", ["Hello, world!"], input_type="query")
    assert sent.path_qs == "/v2/embed"
    assert sent.json() == _without_nulls(_recorded_request(rid))
    recorded = _recorded_answer(rid)
    assert out.vectors == [list(array("f", recorded["embeddings"]["float"][0]))]
    assert out.dimensions == 1536
    assert out.usage.input_tokens == recorded["meta"]["billed_units"]["input_tokens"] == 4
    assert out.cost.usd == pytest.approx(4 * 0.12 / 1e6)

    rid = "cohere-embed-v2-float-documents"
    # No input_type: llmrelay sends search_document, as the recorded client did here.
    out, sent = await _replay(rid, "cohere/embed-v4.0", ["hello", "world"])
    assert sent.json() == _without_nulls(_recorded_request(rid))
    recorded = _recorded_answer(rid)
    assert out.vectors == [list(array("f", v)) for v in recorded["embeddings"]["float"]]
    assert out.usage.input_tokens == 2


async def test_recorded_cohere_unknown_model_is_not_found_with_its_id() -> None:
    rid = "cohere-embed-v2-404-unknown-model"
    err, _ = await _replay(rid, "cohere/nonexistent", ["Hello, world!"], input_type="query")
    assert isinstance(err, llmrelay.NotFoundError)
    assert "model 'nonexistent' not found" in err.message
    assert err.request_id == _recorded_answer(rid)["id"]


# --------------------------------------------------------------------------- the fake


async def test_voyage_through_the_engine_with_dimensions_and_input_type(
    fake: FakeUpstream,
) -> None:
    c = llmrelay.Client(engine=engine())
    texts = ["first text", "second"]
    out = await embed(c, fake, "voyage/voyage-4", texts, dimensions=256, input_type="document")
    assert out.vectors == [vector(t, 256).tolist() for t in texts]
    (sent,) = fake.requests
    assert sent.path == "/voyage/v1/embeddings"
    assert sent.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert sent.body == {
        "input": texts,
        "model": "voyage-4",
        "truncation": False,
        "encoding_format": "base64",
        "input_type": "document",
        "output_dimension": 256,
    }
    assert out.usage.input_tokens == 3
    assert out.cost.usd == pytest.approx(3 * 0.06 / 1e6)


async def test_cohere_through_the_engine_maps_input_type(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    out = await embed(c, fake, "cohere/embed-english-v3.0", ["q"], input_type="query")
    assert out.vectors == [vector("q", 1024).tolist()]
    assert out.cost is not None
    assert not out.cost.known
    await embed(c, fake, "cohere/embed-v4.0", ["d"], dimensions=512)
    first, second = (r.body for r in fake.requests)
    assert first == {
        "model": "embed-english-v3.0",
        "texts": ["q"],
        "input_type": "search_query",
        "embedding_types": ["float"],
        "truncate": "NONE",
    }
    assert second["input_type"] == "search_document"  # the default: the API needs one
    assert second["output_dimension"] == 512
    # A provider's own kind goes in extra, and wins.
    await embed(c, fake, "cohere/embed-v4.0", ["c"], extra={"input_type": "clustering"})
    assert fake.requests[-1].body["input_type"] == "clustering"


async def test_input_type_on_gemini_and_openai(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    await embed(c, fake, "gemini/gemini-embedding-001", ["a"], input_type="query", dimensions=128)
    assert fake.requests[-1].body["taskType"] == "RETRIEVAL_QUERY"
    await embed(c, fake, "gemini/gemini-embedding-001", ["a", "b"], input_type="document")
    assert {r["taskType"] for r in fake.requests[-1].body["requests"]} == {"RETRIEVAL_DOCUMENT"}
    await embed(c, fake, "openai/text-embedding-3-small", ["a"], input_type="query")
    assert "input_type" not in fake.requests[-1].body  # OpenAI's API has no such field


@pytest.mark.parametrize(
    ("model", "n", "sizes"),
    [("voyage/voyage-3.5", 2300, [300, 1000, 1000]), ("cohere/embed-v4.0", 200, [8, 96, 96])],
)
async def test_batches_split_at_each_apis_limit_and_come_back_in_order(
    fake: FakeUpstream, model: str, n: int, sizes: list[int]
) -> None:
    c = llmrelay.Client(engine=engine())
    texts = [f"t{i}" for i in range(n)]
    out = await embed(c, fake, model, texts, dimensions=256, concurrency=3)
    field = "input" if model.startswith("voyage") else "texts"
    assert sorted(len(r.body[field]) for r in fake.requests) == sizes
    assert out.vectors == [vector(t, 256).tolist() for t in texts]
    assert out.usage.input_tokens == n


async def test_voyage_batches_also_split_at_the_token_cap_of_a_request(
    fake: FakeUpstream,
) -> None:
    c = llmrelay.Client(engine=engine())
    # voyage-4-large takes 120,000 tokens a request: 30 texts of ~20,000 characters do not fit
    # in one (estimated high, at 3 characters a token).
    texts = [f"{i} " + "word " * 4000 for i in range(30)]
    out = await embed(c, fake, "voyage/voyage-4-large", texts)
    counts = [len(r.body["input"]) for r in fake.requests]
    assert len(counts) > 1
    assert sum(counts) == 30
    assert all(sum(map(len, r.body["input"])) <= 120_000 * 3 for r in fake.requests)
    assert out.vectors == [vector(t, 1024).tolist() for t in texts]


@pytest.mark.parametrize(
    ("provider", "model"), [("voyage", "voyage-3.5-lite"), ("cohere", "embed-v4.0")]
)
async def test_429_and_5xx_are_retried_and_4xx_are_not(
    fake: FakeUpstream, provider: str, model: str
) -> None:
    c = llmrelay.Client(engine=engine())
    fake.push(Reply.error(429, "slow down", headers={"retry-after": "7"}), Reply.error(503, "busy"))
    out = await embed(c, fake, f"{provider}/{model}", ["a"])
    assert [a.outcome for a in out.trace] == ["error", "error", "success"]
    assert len(fake.requests) == 3
    fake.clear()
    fake.push(Reply.error(400, "invalid request: nope"))
    with pytest.raises(llmrelay.BadRequestError, match="nope") as ei:
        await embed(c, fake, f"{provider}/{model}", ["a"])
    assert len(fake.requests) == 1
    assert ei.value.provider == provider


async def test_a_429_carries_retry_after(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    for provider, model in (("voyage", "voyage-3.5"), ("cohere", "embed-v4.0")):
        fake.push(Reply.error(429, "rate limited", headers={"retry-after": "12"}))
        with pytest.raises(llmrelay.RateLimitedError) as ei:
            await embed(c, fake, f"{provider}/{model}", ["a"], retries=0)
        assert ei.value.retry_after == 12
        assert ei.value.status == 429


async def test_a_wrong_key_is_an_authentication_error_without_the_key(
    fake: FakeUpstream,
) -> None:
    c = llmrelay.Client(engine=engine())
    for provider, model in (("voyage", "voyage-3.5"), ("cohere", "embed-v4.0")):
        with pytest.raises(llmrelay.AuthenticationError) as ei:
            await c.aembed(
                f"{provider}/{model}",
                ["a"],
                api_key="sk-wrong-0123456789",
                base_url=fake.base_url_for(provider),
            )
        assert "sk-wrong-0123456789" not in repr(ei.value) + str(ei.value.headers)


@pytest.mark.parametrize(
    ("model", "kw", "err", "words"),
    [
        ("voyage/voyage-4", {"input_type": "search_query"}, "InvalidRequestError", "'query'"),
        ("cohere/embed-v4.0", {"input_type": 3}, "InvalidRequestError", "input_type must be"),
        (
            "gemini/gemini-embedding-001",
            {"input_type": "query", "task_type": "RETRIEVAL_QUERY"},
            "InvalidRequestError",
            "not both",
        ),
        ("voyage/voyage-4", {"dimensions": 300}, "InvalidRequestError", "one of 256, 512"),
        ("cohere/embed-v4.0", {"dimensions": 2048}, "InvalidRequestError", "1024, 1536"),
        ("cohere/embed-english-v3.0", {"dimensions": 512}, "InvalidRequestError", "full size"),
        (
            "voyage/voyage-3.5",
            {"extra": {"output_dtype": "int8"}},
            "InvalidRequestError",
            "float32",
        ),
        (
            "cohere/embed-v4.0",
            {"extra": {"embedding_types": ["int8"]}},
            "InvalidRequestError",
            "float32",
        ),
        (
            "voyage/voyage-4",
            {"fallbacks": ["cohere/embed-v4.0"]},
            "InvalidRequestError",
            "different sizes",
        ),
    ],
)
async def test_bad_input_is_refused_before_sending(
    fake: FakeUpstream, model: str, kw: dict[str, Any], err: str, words: str
) -> None:
    c = llmrelay.Client(engine=engine())
    with pytest.raises(getattr(llmrelay, err), match=words):
        await embed(c, fake, model, ["ok"], **kw)
    assert fake.requests == []


async def test_an_input_over_the_token_limit_is_refused_before_sending(
    fake: FakeUpstream,
) -> None:
    c = llmrelay.Client(engine=engine())
    with pytest.raises(llmrelay.InvalidRequestError, match="at most 512 tokens"):
        await embed(c, fake, "cohere/embed-english-v3.0", ["ok", "word " * 600])
    assert fake.requests == []


async def test_embeddings_only_providers_cannot_chat(fake: FakeUpstream) -> None:
    bare = llmrelay.Client(engine=llmrelay.Engine())  # no catalog: the wire itself refuses
    for model in ("voyage/voyage-4", "cohere/some-chat-model"):
        provider = model.split("/")[0]
        with pytest.raises(llmrelay.UnsupportedCapabilityError, match="embeddings only"):
            await bare.achat(model, "hi", api_key=CANARY_KEY, base_url=fake.base_url_for(provider))
    assert fake.requests == []


def test_keys_and_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.delenv("CO_API_KEY", raising=False)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    with pytest.raises(llmrelay.MissingAPIKeyError, match="VOYAGE_API_KEY"):
        make_deployment("voyage", "voyage-4")
    with pytest.raises(llmrelay.MissingAPIKeyError, match="COHERE_API_KEY"):
        make_deployment("cohere", "embed-v4.0")
    monkeypatch.setenv("CO_API_KEY", "co-from-the-sdk-variable")
    dep = make_deployment("cohere", "embed-v4.0")
    assert dep.api_key is not None
    assert dep.api_key.get() == "co-from-the-sdk-variable"
    assert dep.base_url == "https://api.cohere.com"  # as Cohere's SDKs take it
    assert make_deployment("voyage", "v", api_key="k").base_url == "https://api.voyageai.com/v1"


async def test_a_redirect_is_not_followed_so_the_key_stays_home(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    fake.push(
        Reply.raw(b"", status=307, headers={"location": "https://elsewhere.example/v1/embeddings"})
    )
    with pytest.raises(llmrelay.RedirectError, match=r"elsewhere\.example"):
        await embed(c, fake, "voyage/voyage-3.5", ["a"])
    assert len(fake.requests) == 1


async def test_a_fallback_to_another_provider_of_the_same_size(fake: FakeUpstream) -> None:
    c = llmrelay.Client(engine=engine())
    fake.push(Reply.error(500, "down", path_contains="/voyage/"))
    fallback = Target(
        "cohere",
        "embed-english-v3.0",
        base_url=fake.cohere_base_url,
        api_key=llmrelay.Secret(CANARY_KEY),
    )
    out = await embed(c, fake, "voyage/voyage-3.5", ["a", "b"], fallbacks=[fallback], retries=0)
    assert out.provider == "cohere"
    assert out.vectors == [vector(t, 1024).tolist() for t in ("a", "b")]


# --------------------------------------------------------------------------- sans-IO


def _resp(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {}, json.dumps(body).encode())


def _req(n: int, **kw: Any) -> EmbedRequest:
    return EmbedRequest([f"t{i}" for i in range(n)], tokens=n, **kw)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"embeddings": {"float": [[1.0]]}}, "1 vectors for 2 inputs"),
        ({"embeddings": {"int8": [[1], [2]]}}, "no 'embeddings.float'"),
        ({"embeddings": {"float": [[1.0], [1.0, 2.0]]}}, "another length"),
        ({"embeddings": {"float": [[1.0], []]}}, "empty"),
        ({"embeddings": {"float": [["x"], [1.0]]}}, "numbers"),
        ([1, 2], "no 'embeddings.float'"),
    ],
)
def test_malformed_cohere_answers_are_invalid_responses(body: Any, words: str) -> None:
    with pytest.raises(llmrelay.InvalidResponseError, match=words):
        CohereEmbeddingsAdapter().parse_response(_resp(body), _req(2), COHERE)


def test_cohere_reads_the_older_embeddings_floats_form() -> None:
    body = {"response_type": "embeddings_floats", "embeddings": [[0.5, 0.25], [1.0, 2.0]]}
    resp = CohereEmbeddingsAdapter().parse_response(_resp(body), _req(2), COHERE)
    assert resp.object.data.tolist() == [0.5, 0.25, 1.0, 2.0]
    assert resp.usage.estimated  # no meta.billed_units


def test_voyage_reads_float_lists_too() -> None:
    body = {"data": [{"embedding": [1.0, 2.0], "index": 0}], "usage": {"total_tokens": 5}}
    resp = VoyageEmbeddingsAdapter().parse_response(_resp(body), _req(1), VOYAGE)
    assert resp.object.data.tolist() == [1.0, 2.0]
    assert resp.usage.input_tokens == 5


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        # Voyage's documented cause, as its error-codes page words it.
        (
            400,
            {"detail": "Number of tokens in an example exceeds the context length"},
            llmrelay.ContextWindowExceededError,
        ),
        # Cohere's own examples (docs.cohere.com/reference/errors).
        (
            400,
            {
                "id": "i",
                "message": "too many tokens: size limit exceeded by 11326 tokens. "
                "Try using shorter or fewer inputs",
            },
            llmrelay.ContextWindowExceededError,
        ),
        (
            400,
            {
                "id": "i",
                "message": "invalid request: total number of texts must be at most "
                "96 - received 104",
            },
            llmrelay.BadRequestError,
        ),
        (401, {"id": "i", "message": "invalid api token"}, llmrelay.AuthenticationError),
        (
            402,
            {
                "id": "i",
                "message": "Please add or update your payment method at "
                "https://dashboard.cohere.com/billing?tab=payment to continue",
            },
            llmrelay.QuotaExhaustedError,
        ),
        (403, {"detail": "Forbidden"}, llmrelay.PermissionDeniedError),
        (
            422,
            {"detail": [{"loc": ["body", "input"], "msg": "field required"}]},
            llmrelay.BadRequestError,
        ),
        (
            429,
            {
                "id": "i",
                "message": "trial token rate limit exceeded, limit is 100000 tokens per minute",
            },
            llmrelay.RateLimitedError,
        ),
        (498, {"id": "i", "message": "blocked token"}, llmrelay.ContentFilteredError),
        (499, {"id": "i", "message": "request cancelled"}, llmrelay.ServerError),
        (502, {"detail": "Service Unavailable"}, llmrelay.ServerError),
        (504, b"<html>gateway</html>", llmrelay.ServerError),
    ],
)
def test_error_answers_are_typed(status: int, body: Any, cls: type[Exception]) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    err = map_error(status, {}, raw, VOYAGE)
    assert isinstance(err, cls)
    assert err.status == status
    if isinstance(body, dict):
        words = body.get("message") or body.get("detail")
        if isinstance(words, list):
            words = words[0]["msg"]
        assert str(words) in err.message


def test_the_key_stays_out_of_the_body_and_the_url() -> None:
    for adapter, dep in ((VoyageEmbeddingsAdapter(), VOYAGE), (CohereEmbeddingsAdapter(), COHERE)):
        http = adapter.build_request(_req(3, input_type="query"), dep)
        assert CANARY_KEY not in http.url
        assert CANARY_KEY.encode() not in (http.body or b"")
        assert http.headers["authorization"] == f"Bearer {CANARY_KEY}"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "data",
                    "embeddings",
                    "float",
                    "embedding",
                    "index",
                    "usage",
                    "meta",
                    "billed_units",
                    "input_tokens",
                    "total_tokens",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(body=_json, n=st.integers(1, 3))
def test_any_answer_is_vectors_or_a_typed_error(body: Any, n: int) -> None:
    for adapter, dep in ((VoyageEmbeddingsAdapter(), VOYAGE), (CohereEmbeddingsAdapter(), COHERE)):
        try:
            resp = adapter.parse_response(_resp(body), _req(n), dep)
        except llmrelay.InvalidResponseError:
            continue
        assert resp.object.count == n
        assert len(resp.object.data) == n * resp.object.dimensions
        assert resp.object.dimensions > 0


def _shape(v: Any) -> Any:
    """The structure of a JSON value: keys, list nesting and leaf kinds (not the values)."""
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(v[0])] if v else []
    if isinstance(v, bool) or v is None:
        return type(v).__name__
    return "number" if isinstance(v, int | float) else type(v).__name__


@pytest.mark.parametrize(
    ("rid", "path"),
    [
        ("voyage-embeddings-base64-query", "/voyage/v1/embeddings"),
        ("voyage-embeddings-base64-documents-zero-tokens", "/voyage/v1/embeddings"),
        ("cohere-embed-v2-float-query", "/v2/embed"),
        ("cohere-embed-v2-float-documents", "/v2/embed"),
    ],
)
async def test_the_fake_answers_the_recorded_requests_in_the_recorded_shape(
    fake: FakeUpstream, rid: str, path: str
) -> None:
    """The fake's answer to the very request a real client sent has the real answer's shape
    (every key, nesting and kind), and its vectors the recorded length."""
    recorded = _recorded_answer(rid)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.url + path,
            json=_recorded_request(rid),
            headers={"authorization": f"Bearer {CANARY_KEY}"},
        ) as resp,
    ):
        assert resp.status == 200
        got = await resp.json()
    assert _shape(got) == _shape(recorded)
    if "data" in got:
        assert [len(d["embedding"]) for d in got["data"]] == [
            len(d["embedding"]) for d in recorded["data"]
        ]
    else:
        assert [len(v) for v in got["embeddings"]["float"]] == [
            len(v) for v in recorded["embeddings"]["float"]
        ]


@pytest.mark.parametrize(
    ("rid", "base"),
    [
        ("voyage-embeddings-400-unknown-model", "voyage"),
        ("cohere-embed-v2-404-unknown-model", "cohere"),
    ],
)
async def test_the_fakes_errors_have_the_recorded_shape(
    fake: FakeUpstream, rid: str, base: str
) -> None:
    recorded = _recorded_answer(rid)
    status = exchanges(entry(rid))[0].response.status
    fake.push(Reply.error(status, "scripted"))
    url = fake.base_url_for(base) + ("/embeddings" if base == "voyage" else "/v2/embed")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, json=_recorded_request(rid), headers={"authorization": f"Bearer {CANARY_KEY}"}
        ) as resp,
    ):
        assert resp.status == status
        assert _shape(await resp.json()) == _shape(recorded)


def test_the_catalog_rows_agree_with_the_adapters() -> None:
    from llmrelay.catalog.embeddings import embedding_models

    rows = [r for r in embedding_models() if r.provider in ("voyage", "cohere")]
    assert {r.provider for r in rows} == {"voyage", "cohere"}
    for r in rows:
        adapter = VoyageEmbeddingsAdapter if r.provider == "voyage" else CohereEmbeddingsAdapter
        assert r.max_inputs == adapter.max_inputs
        assert r.source.startswith("https://")
        assert r.checked
        if r.dimension_choices is not None:
            assert r.dimensions in r.dimension_choices
            assert r.accepts(max(r.dimension_choices))
            assert not r.accepts(r.dimension_choices[0] + 1)


@pytest.mark.parametrize("bad", [[], [0], ["256"], [256.0], "256", {"a": 1}])
def test_a_malformed_dimension_choices_is_refused(bad: Any) -> None:
    from llmrelay.catalog.embeddings import _row

    row = {"provider": "p", "model": "m", "dimensions": 8, "max_input_tokens": 1, "max_inputs": 1}
    assert _row(row).dimension_choices is None
    with pytest.raises(ValueError, match="dimension_choices"):
        _row({**row, "dimension_choices": bad})
