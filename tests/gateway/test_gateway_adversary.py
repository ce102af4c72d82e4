"""A hostile client and a hostile upstream against the gateway's newer surface, over real
sockets: forged and malformed reasoning items on ``/v1/responses``, reasoning items that would
make OpenAI look up items it stored, a refusal replayed as it came, ``/metrics`` read by a web
page in keyless mode, concurrent embeddings whose text is denser than four characters a token,
``retry-after`` on budget refusals, and tool fields of the wrong type."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest

from llmrelay.testing.fake import Reply

from ..edge_server import EdgeServer
from .conftest import CLAUDE, GPT, Running, ant, get, oai, post
from .test_gateway_attack import _spent

#: A model behind OpenAI's Responses API (when tools are sent).
SOL = "openai/gpt-6.1-sol"
SMALL = "openai/text-embedding-3-small"
_TOOL: Any = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]


def _sealed(gw: Running, **fields: Any) -> str:
    """An ``encrypted_content`` with any content, signed as the gateway signs for the admin key
    (what a client could send were the signature no obstacle)."""
    body = base64.urlsafe_b64encode(orjson.dumps(fields)).rstrip(b"=").decode()
    return f"llmrelay.v2.{body}.{gw.gateway.sealer._mac('admin', body)}"


def _turns(*reasoning: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "x"},
        *reasoning,
        {"role": "assistant", "content": "y"},
        {"role": "user", "content": "z"},
    ]


# --------------------------------------------------------------------------- reasoning items


@pytest.mark.parametrize("field", ["summary", "content"])
async def test_a_reasoning_item_with_a_malformed_summary_is_400_not_500(
    gw: Running, field: str
) -> None:
    item = {"type": "reasoning", "id": "rs_1", field: 5}
    body = orjson.dumps({"model": GPT, "input": _turns(item)})
    status, raw, _ = await post(gw, "/v1/responses", body)
    assert status == 400, raw
    assert f"input[1].{field}" in orjson.loads(raw)["error"]["message"]
    assert gw.fake.requests == []


async def test_an_upstream_reasoning_item_with_a_malformed_summary_is_read_not_a_500(
    gw: Running,
) -> None:
    answer = {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": "gpt-6.1-sol",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": 5, "content": {"x": 1}},
            {"type": "message", "role": "assistant", "content": 7},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "hi"}],
            },
        ],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    }
    gw.fake.push(Reply.raw(orjson.dumps(answer)))
    resp = await oai(gw).responses.create(model=SOL, input="x", tools=_TOOL)
    assert resp.output_text == "hi"


@pytest.mark.parametrize("end", ["text:\u00b2", "text:" + "9" * 5000, "text:"])
async def test_a_forged_gemini_signature_position_is_not_a_crash(gw: Running, end: str) -> None:
    item = {
        "type": "reasoning",
        "summary": [],
        "encrypted_content": _sealed(gw, p="gemini", s="sig", i=end),
    }
    resp = await oai(gw).responses.create(model="gemini/gemini-2.5-flash", input=_turns(item))
    assert resp.status == "completed"
    (sent,) = gw.fake.requests
    model_turn = sent.body["contents"][1]["parts"]
    assert {"text": "", "thought": True, "thoughtSignature": "sig"} in model_turn


@pytest.mark.parametrize(
    "item",
    [
        {"type": "reasoning", "id": "rs_someone_elses_stored_item", "summary": []},
        {
            "type": "reasoning",
            "id": "rs_x",
            "summary": [],
            "encrypted_content": {"p": "openai_responses", "i": "rs_someone_elses"},
        },
    ],
)
async def test_a_reasoning_item_without_its_content_never_asks_openai_for_a_stored_item(
    gw: Running, item: dict[str, Any]
) -> None:
    """An id alone makes OpenAI look the item up in what it stored: the gateway stores
    nothing (store=false), so that is another application's item or none."""
    if "encrypted_content" in item:
        item = {**item, "encrypted_content": _sealed(gw, **item["encrypted_content"])}
    await oai(gw).responses.create(model=SOL, input=_turns(item), tools=_TOOL)
    (sent,) = gw.fake.requests
    assert sent.body["store"] is False
    assert [i for i in sent.body["input"] if i.get("type") == "reasoning"] == []


async def test_reasoning_shown_as_text_replays_to_an_openai_responses_model(gw: Running) -> None:
    """A model whose reasoning is plain text (DeepSeek, vLLM: no signature, no encrypted
    content) answers first; the client replays the items as they came to a model behind
    OpenAI's Responses API, which must not be sent the gateway's own item ids."""
    gw.fake.push(Reply.ok("an answer", reasoning="thinking aloud"))
    client = oai(gw)
    first = await client.responses.create(model=GPT, input="x")
    assert [o.type for o in first.output] == ["reasoning", "message"]
    follow = [
        {"role": "user", "content": "x"},
        *[o.to_dict() for o in first.output],
        {"role": "user", "content": "and?"},
    ]
    resp = await client.responses.create(model=SOL, input=follow, tools=_TOOL)
    assert resp.status == "completed"
    sent = gw.fake.requests[1].body["input"]
    assert [i for i in sent if i.get("type") == "reasoning"] == []


@pytest.mark.parametrize("stream", [False, True])
async def test_a_refusal_replays_as_it_came(gw: Running, stream: bool) -> None:
    gw.fake.push(Reply.refuse("Not this one."), Reply.ok("fine"))
    client = oai(gw)
    if stream:
        async with client.responses.stream(model=GPT, input="x") as s:
            first = await s.get_final_response()
    else:
        first = await client.responses.create(model=GPT, input="x")
    assert first.output[-1].content[0].type == "refusal"  # type: ignore[union-attr]
    follow = [
        {"role": "user", "content": "x"},
        *[o.to_dict() for o in first.output],
        {"role": "user", "content": "something else then"},
    ]
    resp = await client.responses.create(model=CLAUDE, input=follow)
    assert resp.output_text == "fine"
    sent = gw.fake.requests[1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": "Not this one."}


# --------------------------------------------------------------------------- clients that leave


@pytest.fixture
def edge() -> Iterator[EdgeServer]:
    """An upstream that streams two chunks and then stalls (``sse``), or never answers
    (``stall``); ``disconnected[route]`` is set when the gateway closes its connection."""
    with EdgeServer.running() as server:
        yield server


async def _settled(gw: Running, edge: EdgeServer, route: str) -> None:
    assert await asyncio.to_thread(edge.disconnected[route].wait, 5.0), "upstream still open"
    for _ in range(500):
        if gw.gateway.in_flight == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request is still in flight")


async def test_a_client_leaving_a_responses_stream_cancels_the_upstream(
    gw: Running, edge: EdgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", edge.base_url("sse"))
    key = await gw.key(budget_usd=5.0)
    body = orjson.dumps({"model": GPT, "input": "hi", "stream": True})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    async with aiohttp.ClientSession() as s:
        r = await s.post(gw.url + "/v1/responses", data=body, headers=headers)
        seen = b""
        while b'"delta":"lo"' not in seen:
            seen += await r.content.readany()
        r.close()  # the upstream is still streaming
    await _settled(gw, edge, "sse")
    st = await _spent(gw, key)
    assert st["reserved_usd"] == 0
    assert 0 < st["spent_usd"] < 1e-5  # the prompt and "Hello", not max_tokens


async def test_a_client_leaving_an_embeddings_call_cancels_the_upstream(
    gw: Running, edge: EdgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", edge.base_url("stall"))
    key = await gw.key(budget_usd=5.0)
    body = orjson.dumps({"model": SMALL, "input": ["hi"]})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    async with aiohttp.ClientSession() as s:
        call = asyncio.create_task(s.post(gw.url + "/v1/embeddings", data=body, headers=headers))
        assert await asyncio.to_thread(edge.started["stall"].wait, 5.0)
        call.cancel()
    await _settled(gw, edge, "stall")
    st = await _spent(gw, key)
    assert st == {"limit_usd": 5.0, "spent_usd": 0.0, "reserved_usd": 0.0}


# --------------------------------------------------------------------------- keyless /metrics


@pytest.mark.parametrize(
    "headers",
    [{"host": "evil.example:4000"}, {"origin": "http://evil.example"}, {"origin": "null"}],
)
async def test_keyless_metrics_are_not_read_by_a_web_page(
    open_gw: Running, headers: dict[str, str]
) -> None:
    await oai(open_gw).responses.create(model=GPT, input="x")
    status, raw = await get(open_gw, "/metrics", headers)
    assert status == 403, raw
    assert b"llmrelay_gateway" not in raw
    status, raw = await get(open_gw, "/metrics")
    assert status == 200
    assert f'model="{GPT}",status="200"}} 1'.encode() in raw


# --------------------------------------------------------------------------- embeddings


#: Four distinct inputs of 2,000 words (a text repeated within one call is sent once).
_DENSE = [f"{c} " + "a " * 1999 for c in "bcde"]


async def test_concurrent_embeddings_of_dense_text_never_pass_a_keys_budget(
    gw: Running,
) -> None:
    # "a a a ...": a token every two characters (punctuation, digits, CJK and emoji are as
    # dense or denser). Reserved at four characters a token, concurrent calls overspend.
    per_call = 4 * 2000 * 0.02 / 1e6  # 4 inputs of 2,000 tokens at $0.02 per million
    key = await gw.key(budget_usd=5 * per_call)
    body = orjson.dumps({"model": SMALL, "input": _DENSE})
    gw.fake.push(*[Reply.ok("", delay=0.2)] * 30)  # the calls overlap
    codes = await asyncio.gather(
        *[post(gw, "/v1/embeddings", body, {"authorization": f"Bearer {key}"}) for _ in range(30)]
    )
    ok = [orjson.loads(r) for c, r, _ in codes if c == 200]
    assert ok
    assert {u["usage"]["prompt_tokens"] for u in ok} == {8000}
    st = await _spent(gw, key)
    assert st["spent_usd"] <= 5 * per_call + 1e-12, (len(ok), st)


async def test_concurrent_embeddings_of_dense_text_never_pass_a_keys_tpm(gw: Running) -> None:
    key = await gw.key(tpm=20_000)
    body = orjson.dumps({"model": SMALL, "input": _DENSE})
    gw.fake.push(*[Reply.ok("", delay=0.2)] * 10)
    codes = await asyncio.gather(
        *[post(gw, "/v1/embeddings", body, {"authorization": f"Bearer {key}"}) for _ in range(10)]
    )
    used = sum(orjson.loads(r)["usage"]["prompt_tokens"] for c, r, _ in codes if c == 200)
    assert 0 < used <= 20_000
    assert all(h.get("retry-after") for c, _, h in codes if c == 429)


# --------------------------------------------------------------------------- budgets


async def test_a_budget_refusal_says_when_to_retry(gw: Running) -> None:
    key = await gw.key(budget_usd=0.002)
    auth = {"authorization": f"Bearer {key}"}
    body = orjson.dumps({"model": GPT, "input": "x", "max_output_tokens": 1000})
    # Calls in flight hold the budget: retry in a second, when they have settled.
    gw.fake.push(Reply.ok("long", output_tokens=1000, delay=0.2))
    first, second = await asyncio.gather(
        post(gw, "/v1/responses", body, auth), post(gw, "/v1/responses", body, auth)
    )
    assert sorted([first[0], second[0]]) == [200, 429]
    refused = first if first[0] == 429 else second
    assert orjson.loads(refused[1])["error"]["code"] == "budget_exceeded"
    assert refused[2]["retry-after"] == "1"
    # Spent: not before next month.
    status, raw, headers = await post(gw, "/v1/responses", body, auth)
    assert status == 429, raw
    assert 1 <= int(headers["retry-after"]) <= 31 * 86400
    # More than the whole budget: never (no retry-after).
    big = orjson.dumps({"model": GPT, "input": "x", "max_output_tokens": 30_000})
    status, _, headers = await post(gw, "/v1/responses", big, auth)
    assert status == 429
    assert "retry-after" not in headers
    assert headers["x-should-retry"] == "false"  # the SDKs do not retry it
    assert "x-should-retry" not in refused[2]


async def test_a_request_larger_than_the_keys_tpm_is_not_retried(gw: Running) -> None:
    key = await gw.key(tpm=100)
    client = oai(gw, key)
    client = client.with_options(max_retries=2)
    with pytest.raises(openai.RateLimitError) as ei:
        await client.embeddings.create(model=SMALL, input=["word " * 200])
    assert ei.value.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in ei.value.response.headers
    assert sum(n for (_, _, status), (n, _) in gw.gateway.stats.items() if status == 429) == 1
    assert gw.fake.requests == []


# --------------------------------------------------------------------------- tools


@pytest.mark.parametrize(
    ("path", "tool"),
    [
        ("/v1/responses", {"type": "function", "name": "f", "strict": "yes"}),
        ("/v1/responses", {"type": "function", "name": "f", "description": {"a": 1}}),
        (
            "/v1/chat/completions",
            {"type": "function", "function": {"name": "f", "strict": 1}},
        ),
    ],
)
async def test_tool_fields_of_the_wrong_type_are_400_and_never_sent(
    gw: Running, path: str, tool: dict[str, Any]
) -> None:
    body: dict[str, Any] = {"model": GPT, "tools": [tool]}
    if path == "/v1/responses":
        body["input"] = "x"
    else:
        body["messages"] = [{"role": "user", "content": "x"}]
    status, raw, _ = await post(gw, path, orjson.dumps(body))
    assert status == 400, raw
    message = orjson.loads(raw)["error"]["message"]
    assert "strict" in message or "description" in message
    assert gw.fake.requests == []


# --------------------------------------------------------------------------- unknown endpoints


async def test_endpoints_the_gateway_does_not_serve_are_404_in_the_sdks_shape(
    gw: Running,
) -> None:
    with pytest.raises(openai.NotFoundError) as ei:
        await oai(gw).responses.retrieve("resp_123")
    assert "does not serve GET /v1/responses/resp_123" in ei.value.message
    assert ei.value.code == "unknown_url"
    with pytest.raises(openai.NotFoundError):
        await oai(gw).files.list()
    with pytest.raises(anthropic.NotFoundError) as ai:
        await ant(gw).messages.batches.list()
    assert ai.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    status, raw = await get(gw, "/metrics/")
    assert status == 404
    assert orjson.loads(raw)["error"]["code"] == "unknown_url"
    assert gw.fake.requests == []
