"""The embeddings adapters: the official ``openai`` SDK parses what the fake sends, the
recorded OpenAI answers replay byte-exact over a socket to ``llmrelay.aembed``, and malformed
answers become typed errors."""

from __future__ import annotations

import base64
import json
from array import array
from typing import Any

import openai
import pytest

import llmrelay
from llmrelay.providers.adapters.gemini_embeddings import GeminiEmbeddingsAdapter
from llmrelay.providers.adapters.openai_embeddings import OpenAIEmbeddingsAdapter
from llmrelay.providers.table import make_deployment
from llmrelay.testing.fake import FakeUpstream
from llmrelay.testing.fake_embeddings import vector
from llmrelay.transport.base import HttpResponse
from llmrelay.types.embeddings import EmbedBatch, EmbedRequest

from ..conftest import CANARY_KEY
from ..recordings.replay import ReplayServer, entry, events, exchanges

OPENAI = make_deployment("openai", "text-embedding-3-small", api_key=CANARY_KEY)
GEMINI = make_deployment("gemini", "gemini-embedding-001", api_key=CANARY_KEY)


@pytest.mark.parametrize("fmt", ["base64", "float", None])
async def test_the_openai_sdk_parses_the_fake(fmt: str | None) -> None:
    async with FakeUpstream(api_key=CANARY_KEY) as fake:
        # Strict validation only for floats: the SDK's schema types ``embedding`` as a float
        # list, so a base64 answer (the real API's too) fails it before the SDK decodes it.
        client = openai.AsyncOpenAI(
            api_key=CANARY_KEY,
            base_url=fake.openai_base_url,
            _strict_response_validation=fmt == "float",
        )
        kw: dict[str, Any] = {"encoding_format": fmt} if fmt else {}
        res = await client.embeddings.create(
            model="text-embedding-3-small", input=["one", "two"], dimensions=6, **kw
        )
        await client.close()
        sent = fake.requests[-1].body
    assert sent["encoding_format"] == (fmt or "base64")  # the SDK asks for base64 by default
    assert res.model == "text-embedding-3-small"
    assert res.usage.prompt_tokens == 2
    assert [d.index for d in res.data] == [0, 1]
    for d, text in zip(res.data, ["one", "two"], strict=True):
        if fmt == "base64":
            assert isinstance(d.embedding, str)  # asked for: the SDK hands it over as sent
        else:  # the SDK's own default (base64, decoded by the SDK) and floats
            assert d.embedding == pytest.approx(vector(text, 6).tolist())


def _replay_rid(rid: str) -> ReplayServer:
    assert entry(rid).wire in ("openai_embeddings", "gemini_embeddings")
    return ReplayServer([x.response for x in exchanges(entry(rid))])


def _recorded_request(rid: str) -> Any:
    req = exchanges(entry(rid))[0].request
    assert req is not None
    assert req.body is not None
    return json.loads(req.body)


async def _aembed(rid: str, model: Any, inputs: list[str], **kw: Any) -> tuple[Any, Any]:
    """Embed against the replayed recording; (result or error, the body llmrelay sent)."""
    c = llmrelay.Client(engine=llmrelay.Engine(catalog=llmrelay.Catalog()))
    out: Any
    async with _replay_rid(rid) as server:
        try:
            out = await c.aembed(model, inputs, api_key=CANARY_KEY, base_url=server.url, **kw)
        except llmrelay.LLMRelayError as exc:
            out = exc
        assert len(server.received) == 1  # nothing retried: the recordings hold one answer
        sent = server.received[0]
    await c.aclose()
    return out, sent


async def test_recorded_base64_answer_decodes_to_the_same_float32_numbers() -> None:
    rid = "openai-embeddings-base64-two-inputs"
    out, sent = await _aembed(rid, "openai/text-embedding-3-small", ["hello", "world"])
    assert sent.json() == _recorded_request(rid)  # the same body the official SDK sent
    assert sent.path_qs == "/embeddings"
    recorded = events(exchanges(entry(rid))[0].response)[0]
    expected = [base64.b64decode(d["embedding"]) for d in recorded["data"]]
    assert [array("f", v).tobytes() for v in out.vectors] == expected
    assert out.dimensions == 1536
    assert out.usage.input_tokens == 2
    assert not out.usage.estimated


async def test_recorded_unknown_openai_model_is_not_found() -> None:
    rid = "openai-embeddings-404-model-not-found"
    err, sent = await _aembed(rid, "openai/nonexistent", ["Hello, world!"])
    assert sent.json() == _recorded_request(rid)
    assert isinstance(err, llmrelay.NotFoundError)
    assert "does not exist" in err.message


async def test_recorded_gemini_batch_answer() -> None:
    rid = "gemini-batch-embed-768-retrieval-query"
    model = "gemini/gemini-embedding-2-preview"
    out, sent = await _aembed(
        rid, model, ["Hello, world!"], dimensions=768, task_type="RETRIEVAL_QUERY"
    )
    (recorded_req,) = _recorded_request(rid)["requests"]
    # One input goes to :embedContent (its body is one of the batch's requests, without the
    # model the URL names); the recording used :batchEmbedContents. Both answers parse.
    assert sent.path_qs == "/models/gemini-embedding-2-preview:embedContent"
    assert sent.json() == {k: v for k, v in recorded_req.items() if k != "model"}
    recorded = events(exchanges(entry(rid))[0].response)[0]
    assert out.vectors == [list(array("f", recorded["embeddings"][0]["values"]))]
    assert out.dimensions == 768
    assert out.usage.estimated  # the API reported no usageMetadata


async def test_recorded_gemini_unknown_model_is_not_found() -> None:
    rid = "gemini-batch-embed-404-unknown-model"
    err, _ = await _aembed(rid, "gemini/nonexistent-model", ["a", "b"], task_type="RETRIEVAL_QUERY")
    assert isinstance(err, llmrelay.NotFoundError)
    assert "not supported for embedContent" in err.message


async def test_recorded_two_input_answer() -> None:
    rid = "openai-embeddings-two-inputs"
    recorded = events(exchanges(entry(rid))[0].response)[0]
    c = llmrelay.Client(engine=llmrelay.Engine(catalog=llmrelay.Catalog()))
    async with _replay_rid(rid) as server:
        out = await c.aembed(
            "openai/text-embedding-3-small",
            ["sunny day at the beach", "rainy day in the city"],
            dimensions=5,
            api_key=CANARY_KEY,
            base_url=server.url,
        )
        sent = server.received[0].json()
    await c.aclose()
    assert sent["dimensions"] == 5
    assert sent["encoding_format"] == "base64"
    assert out.dimensions == 5
    for got, item in zip(out.vectors, recorded["data"], strict=True):
        # float32, as the base64 form carries them
        assert got == list(array("f", item["embedding"]))
    assert out.usage.input_tokens == recorded["usage"]["prompt_tokens"] == 12
    assert out.cost.usd == pytest.approx(12 * 0.02 / 1e6)


async def test_recorded_token_limit_error_is_typed_and_not_retried() -> None:
    rid = "openai-embeddings-400-token-limit"
    c = llmrelay.Client(engine=llmrelay.Engine())
    async with _replay_rid(rid) as server:
        with pytest.raises(llmrelay.BadRequestError) as ei:
            await c.aembed(
                "openai/text-embedding-3-small", ["x"], api_key=CANARY_KEY, base_url=server.url
            )
        assert len(server.received) == 1  # a 400 is the caller's: not retried
    await c.aclose()
    assert ei.value.status == 400
    assert "max 300000 tokens per request" in ei.value.message


def _resp(body: Any) -> HttpResponse:
    return HttpResponse(200, {}, json.dumps(body).encode())


def _req(n: int) -> EmbedRequest:
    return EmbedRequest([f"t{i}" for i in range(n)], tokens=n)


def test_openai_answers_out_of_order_are_put_in_input_order() -> None:
    body = {
        "data": [
            {"index": 1, "embedding": [3.0, 4.0]},
            {"index": 0, "embedding": [1.0, 2.0]},
        ],
        "usage": {"prompt_tokens": 2},
    }
    batch = OpenAIEmbeddingsAdapter().parse_response(_resp(body), _req(2), OPENAI).object
    assert isinstance(batch, EmbedBatch)
    assert batch.data.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert batch.dimensions == 2


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"data": [{"index": 0, "embedding": [1.0]}]}, "1 vectors for 2 inputs"),
        ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]}, "index"),
        ({"data": [{"index": 0, "embedding": "!!"}, {"index": 1, "embedding": "AAAA"}]}, "base64"),
        ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1, 2]}]}, "length"),
        ({"data": [{"index": 0, "embedding": ["a"]}, {"index": 1, "embedding": [1.0]}]}, "numbers"),
        ({"object": "list"}, "no 'data' list"),
    ],
)
def test_malformed_openai_answers_are_invalid_responses(body: Any, words: str) -> None:
    with pytest.raises(llmrelay.InvalidResponseError, match=words):
        OpenAIEmbeddingsAdapter().parse_response(_resp(body), _req(2), OPENAI)


def test_gemini_answers_and_errors() -> None:
    a = GeminiEmbeddingsAdapter()
    body = {"embeddings": [{"values": [0.5, 0.25]}, {"values": [1.0, 2.0]}]}
    resp = a.parse_response(_resp(body), _req(2), GEMINI)
    assert resp.object.data.tolist() == [0.5, 0.25, 1.0, 2.0]
    assert resp.usage.estimated  # no usageMetadata: counted by llmrelay, marked so
    with pytest.raises(llmrelay.InvalidResponseError, match="another length"):
        a.parse_response(
            _resp({"embeddings": [{"values": [1.0]}, {"values": [1.0, 2.0]}]}), _req(2), GEMINI
        )
    # The API's own words for an oversized batch (vercel/ai issue-16101 fixture's body).
    err = a.map_error(
        400,
        {},
        json.dumps(
            {
                "error": {
                    "code": 400,
                    "message": "* BatchEmbedContentsRequest.requests: at most 100 requests "
                    "can be in one batch\n",
                    "status": "INVALID_ARGUMENT",
                }
            }
        ).encode(),
        GEMINI,
    )
    assert isinstance(err, llmrelay.BadRequestError)
    assert "at most 100 requests" in err.message


def test_the_api_key_stays_out_of_the_body_and_the_url() -> None:
    for adapter, dep in ((OpenAIEmbeddingsAdapter(), OPENAI), (GeminiEmbeddingsAdapter(), GEMINI)):
        http = adapter.build_request(_req(3), dep)
        assert CANARY_KEY not in http.url
        assert CANARY_KEY.encode() not in (http.body or b"")
