"""A hostile client and a hostile upstream against the gateway's newer surface, over real
sockets: forged and malformed reasoning items on ``/v1/responses``, reasoning items that would
make OpenAI look up items it stored, a refusal replayed as it came, ``/metrics`` read by a web
page in keyless mode, concurrent embeddings whose text is denser than four characters a token,
``retry-after`` on budget refusals, and tool fields of the wrong type."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from llmrelay.testing.fake import Reply

from .conftest import CLAUDE, GPT, Running, get, oai, post

#: A model behind OpenAI's Responses API (when tools are sent).
SOL = "openai/gpt-6.1-sol"
SMALL = "openai/text-embedding-3-small"
_TOOL: Any = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]


def _sealed(**fields: Any) -> str:
    """An ``encrypted_content`` as a client could forge it."""
    return "llmrelay.v1." + base64.urlsafe_b64encode(orjson.dumps(fields)).decode()


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
        "encrypted_content": _sealed(p="gemini", s="sig", i=end),
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
            "encrypted_content": _sealed(p="openai_responses", i="rs_someone_elses"),
        },
    ],
)
async def test_a_reasoning_item_without_its_content_never_asks_openai_for_a_stored_item(
    gw: Running, item: dict[str, Any]
) -> None:
    """An id alone makes OpenAI look the item up in what it stored: the gateway stores
    nothing (store=false), so that is another application's item or none."""
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
