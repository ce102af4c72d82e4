"""``POST /v1/embeddings`` over a real socket with the official openai SDK as the client: float
and base64 vectors, dimensions, usage, any embedding model behind it, and the key's policy
(allow-list, budget, rpm), the request log and metrics, errors in OpenAI's shape."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from pathlib import Path

import openai
import orjson
import pytest

from llmrelay.gateway.app import GatewaySettings
from llmrelay.testing.fake import FakeUpstream
from llmrelay.testing.fake_embeddings import vector

from ..conftest import CANARY_KEY
from .conftest import ADMIN, AUTH, GPT, Running, get, oai, post, serving

SMALL = "openai/text-embedding-3-small"


def _close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(
        math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, want, strict=True)
    )


async def test_the_sdk_default_base64_vectors_decode_to_the_models_vectors(gw: Running) -> None:
    r = await oai(gw).embeddings.with_raw_response.create(model=SMALL, input=["alpha", "beta"])
    e = r.parse()
    sent = gw.fake.requests[0].body
    assert sent["input"] == ["alpha", "beta"]
    raw = orjson.loads(r.text)
    assert isinstance(raw["data"][0]["embedding"], str)  # the SDK asked for base64
    assert [d.index for d in e.data] == [0, 1]
    assert _close(e.data[0].embedding, vector("alpha", 1536).tolist())
    assert _close(e.data[1].embedding, vector("beta", 1536).tolist())
    assert e.model == SMALL
    assert e.usage.prompt_tokens == e.usage.total_tokens > 0
    assert r.headers["x-request-id"].startswith("req_")
    # The provider got the gateway's key, never the client's.
    assert gw.fake.requests[0].headers.get("authorization") == f"Bearer {CANARY_KEY}"


async def test_float_vectors_one_string_and_dimensions(gw: Running) -> None:
    e = await oai(gw).embeddings.create(
        model=SMALL, input="one text", dimensions=8, encoding_format="float"
    )
    (d,) = e.data
    assert _close(d.embedding, vector("one text", 8).tolist())
    assert gw.fake.requests[0].body["dimensions"] == 8


async def test_base64_is_little_endian_float32(gw: Running) -> None:
    body = orjson.dumps(
        {"model": SMALL, "input": "x", "encoding_format": "base64", "dimensions": 4}
    )
    status, raw, _ = await post(gw, "/v1/embeddings", body)
    assert status == 200, raw
    b64 = orjson.loads(raw)["data"][0]["embedding"]
    assert base64.b64decode(b64) == vector("x", 4).tobytes()  # this machine is little-endian


async def test_a_gemini_embedding_model_answers_in_openais_shape(gw: Running) -> None:
    e = await oai(gw).embeddings.create(
        model="gemini/gemini-embedding-001", input=["a", "b"], dimensions=256
    )
    assert [len(d.embedding) for d in e.data] == [256, 256]
    assert gw.fake.requests[0].path.endswith(":batchEmbedContents")


async def test_a_chat_model_is_400_naming_it(gw: Running) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        await oai(gw).embeddings.create(model=GPT, input="x")
    assert "gpt-4.1-mini is a chat model" in ei.value.message
    assert gw.fake.requests == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"input": [1, 2, 3]}, "token ids"),
        ({"input": [[1, 2], [3]]}, "token ids"),
        ({"input": []}, "input"),
        ({"input": ["a", None]}, "input"),
        ({"input": ["a", ""]}, "input[1] is an empty string"),
        ({"input": ["a"] * 2049}, "at most 2048"),
        ({"encoding_format": "int8"}, "encoding_format"),
        ({"dimensions": 0}, "dimensions"),
        ({"dimensions": 9999}, "dimension"),
        ({"base_url": "http://evil.example"}, "base_url"),
    ],
)
async def test_bad_fields_are_400_naming_them(
    gw: Running, extra: dict[str, object], field: str
) -> None:
    body = orjson.dumps({"model": SMALL, "input": "x", **extra})
    status, raw, _ = await post(gw, "/v1/embeddings", body)
    assert status == 400, raw
    err = orjson.loads(raw)["error"]
    assert err["type"] == "invalid_request_error"
    assert field in err["message"]
    assert gw.fake.requests == []


async def test_the_keys_allow_list_budget_and_rpm_apply(gw: Running) -> None:
    only_chat = await gw.key(models=["openai/gpt-*"])
    with pytest.raises(openai.PermissionDeniedError):
        await oai(gw, only_chat).embeddings.create(model=SMALL, input="x")
    poor = await gw.key(budget_usd=1e-9)
    with pytest.raises(openai.RateLimitError) as ei:
        await oai(gw, poor).embeddings.create(model=SMALL, input=["word " * 2000] * 50)
    assert ei.value.code == "budget_exceeded"
    assert gw.fake.requests == []
    slow = await gw.key(rpm=1)
    await oai(gw, slow).embeddings.create(model=SMALL, input="x")
    with pytest.raises(openai.RateLimitError) as ei:
        await oai(gw, slow).embeddings.create(model=SMALL, input="y")
    assert int(ei.value.response.headers["retry-after"]) >= 1
    assert len(gw.fake.requests) == 1


async def test_spend_is_settled_against_the_keys_budget(gw: Running) -> None:
    key = await gw.key(budget_usd=5.0)
    await oai(gw, key).embeddings.create(model=SMALL, input=["some words"] * 3)
    budgets = gw.gateway.budgets
    assert budgets is not None
    (record,) = [k for k in await gw.gateway.key_store.all() if k.budget_usd]  # type: ignore[union-attr]
    limit = budgets.limit_for(record)
    assert limit is not None
    status = await budgets.status(limit, record.id)
    assert 0 < status["spent_usd"] < 0.001
    assert status["reserved_usd"] == 0  # settled


async def test_requests_are_logged_and_counted(
    fake: FakeUpstream,
    point_at: Callable[[FakeUpstream], FakeUpstream],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMRELAY_LOG_PATH", str(tmp_path / "requests.db"))
    point_at(fake)
    settings = GatewaySettings(
        host="127.0.0.1", port=0, key_store=str(tmp_path / "k.db"), admin_key=ADMIN
    )
    async with serving(settings, fake, log=True) as gw:
        key = await gw.key(team="search")
        await oai(gw, key).embeddings.create(model=SMALL, input=["a", "b"])
        status, raw = await get(gw, "/metrics", AUTH)
        log = gw.gateway.request_log
        assert log is not None
        assert log.flush()
        (row,) = log.recent()
        (record,) = await gw.gateway.key_store.all()  # type: ignore[union-attr]
    assert status == 200
    assert f'model="{SMALL}",status="200"}} 1'.encode() in raw
    assert row["model"] == "text-embedding-3-small"
    assert row["input_tokens"] > 0
    assert orjson.loads(row["tags"]) == {"vkey": record.id, "team": "search"}


async def test_the_attempt_trace_on_request(gw: Running) -> None:
    body = orjson.dumps({"model": SMALL, "input": ["a"], "encoding_format": "float"})
    status, raw, headers = await post(gw, "/v1/embeddings", body, {"x-llmrelay-trace": "1"})
    assert status == 200, raw
    (attempt,) = orjson.loads(headers["x-llmrelay-trace"])
    assert attempt["outcome"] == "success"
    assert attempt["deployment"].endswith("text-embedding-3-small")


@pytest.mark.parametrize("model", ["voyage/voyage-4", "cohere/embed-v4.0"])
async def test_voyage_and_cohere_answer_in_openais_shape(gw: Running, model: str) -> None:
    e = await oai(gw).embeddings.create(model=model, input=["a", "b"], dimensions=256)
    assert [len(d.embedding) for d in e.data] == [256, 256]
    assert e.usage.prompt_tokens > 0
    assert len(gw.fake.requests) == 1
