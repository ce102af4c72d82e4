"""Output items go back to the Responses API in the order the answer had them: each reasoning
item directly before the item that followed it. OpenAI pairs them (it refuses "function_call
... without its required 'reasoning' item" and "reasoning ... without its required following
item"), its guides pass ``response.output`` back as it is, and the recorded traffic below does
the same. Checked over a real socket against a recording (reasoning, preamble message, call)
and against a constructed answer that interleaves reasoning and calls."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay.core.codec import response_from_dict, response_to_dict
from llmrelay.providers.adapters.openai_responses import build_input
from llmrelay.types import Message, ReasoningPart, TextPart, ToolCall

from ..conftest import CANARY_KEY
from ..recordings.replay import RecordedResponse, ReplayServer, entry, exchanges

TOOL = {
    "type": "function",
    "function": {
        "name": "get_capital",
        "parameters": {
            "type": "object",
            "properties": {"country": {"type": "string"}},
            "required": ["country"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


async def _chat(url: str, messages: Any, **kw: Any) -> llmrelay.Response:
    client = llmrelay.Client()
    try:
        return await client.achat(
            "openai/gpt-5.5",
            messages,
            api_key=CANARY_KEY,
            base_url=url,
            api="responses",
            retries=0,
            tools=[TOOL],
            **kw,
        )
    finally:
        await client.aclose()


def _kinds(items: list[dict[str, Any]]) -> list[str]:
    return [str(i.get("type") or f"{i['role']} message") for i in items]


async def test_a_preamble_between_reasoning_and_call_is_replayed_as_recorded() -> None:
    rid = "openai-responses-preamble-tool-loop"
    rec = exchanges(entry(rid))
    assert rec[1].request is not None
    assert rec[1].request.body is not None
    recorded = json.loads(rec[1].request.body)
    system = recorded["instructions"]
    prompt = recorded["input"][0]["content"]
    async with ReplayServer([x.response for x in rec]) as server:
        r = await _chat(server.url, [Message("system", system), Message("user", prompt)])
        assert r.text.startswith("I'll check the capital lookup")
        [tc] = r.tool_calls
        [part] = r.reasoning_parts
        assert part.before_call is None  # a message came right after the reasoning, not the call
        msgs = [
            Message("system", system),
            Message("user", prompt),
            r.message(),
            Message("tool", "Tuberville", tool_call_id=tc.id),
        ]
        await _chat(server.url, msgs)
    sent = server.received[1].json()["input"]
    want = recorded["input"]
    assert _kinds(want) == [
        "user message",
        "reasoning",
        "message",
        "function_call",
        "function_call_output",
    ]
    assert _kinds(sent) == [
        "user message",
        "reasoning",
        "assistant message",
        "function_call",
        "function_call_output",
    ]
    assert sent[1]["id"] == want[1]["id"]
    assert sent[1]["encrypted_content"] == want[1]["encrypted_content"]
    assert sent[2]["content"] == "".join(p["text"] for p in want[2]["content"])
    assert sent[3]["call_id"] == want[3]["call_id"]
    assert json.loads(sent[3]["arguments"]) == json.loads(want[3]["arguments"])
    assert sent[4]["call_id"] == want[4]["call_id"]


# --------------------------------------------------------------------------- interleaved

OUTPUT = [
    {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "ENC1"},
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_a",
        "name": "get_capital",
        "arguments": '{"country":"A"}',
        "status": "completed",
    },
    {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "ENC2"},
    {
        "type": "function_call",
        "id": "fc_2",
        "call_id": "call_b",
        "name": "get_capital",
        "arguments": '{"country":"B"}',
        "status": "completed",
    },
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Looking both up.", "annotations": []}],
    },
]
ANSWER = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "model": "gpt-5.5",
    "output": OUTPUT,
    "usage": {"input_tokens": 10, "output_tokens": 20},
}
JSON_HEADERS = (("content-type", "application/json"),)


def _plain(body: dict[str, Any]) -> RecordedResponse:
    return RecordedResponse(200, JSON_HEADERS, (orjson.dumps(body),))


def _streamed(body: dict[str, Any]) -> RecordedResponse:
    frames = []
    for ev in (
        {"type": "response.created", "response": {**body, "status": "in_progress", "output": []}},
        *(
            {"type": "response.output_item.done", "output_index": i, "item": item}
            for i, item in enumerate(body["output"])
        ),
        {"type": "response.completed", "response": body},
    ):
        frames.append(b"event: " + ev["type"].encode() + b"\ndata: " + orjson.dumps(ev) + b"\n\n")
    return RecordedResponse(200, (("content-type", "text/event-stream"),), tuple(frames))


WANT = [
    "user message",
    "reasoning",
    "function_call",
    "reasoning",
    "function_call",
    "assistant message",
    "function_call_output",
    "function_call_output",
]


@pytest.mark.parametrize("streamed", [False, True])
async def test_interleaved_reasoning_and_calls_keep_their_order(streamed: bool) -> None:
    answer = _streamed(ANSWER) if streamed else _plain(ANSWER)
    done = _plain({**ANSWER, "id": "resp_2", "output": OUTPUT[-1:]})
    async with ReplayServer([answer, done]) as server:
        if streamed:
            client = llmrelay.Client()
            s = client.astream(
                "openai/gpt-5.5",
                "capitals of A and B?",
                api_key=CANARY_KEY,
                base_url=server.url,
                api="responses",
                retries=0,
                tools=[TOOL],
            )
            try:
                chunks = [c async for c in s]
            finally:
                await client.aclose()
            assert chunks[-1].response is not None
            r = chunks[-1].response
        else:
            r = await _chat(server.url, "capitals of A and B?")
        assert [p.before_call for p in r.reasoning_parts] == ["call_a", "call_b"]
        msg = r.message()
        assert isinstance(msg.content, list)
        assert [type(p).__name__ for p in msg.content] == [
            "ReasoningPart",
            "ReasoningPart",
            "TextPart",
        ]
        msgs = [
            Message("user", "capitals of A and B?"),
            msg,
            Message("tool", "Acity", tool_call_id="call_a"),
            Message("tool", "Bcity", tool_call_id="call_b"),
        ]
        await _chat(server.url, msgs)
    sent = server.received[1].json()["input"]
    assert _kinds(sent) == WANT
    assert [i.get("id") or i.get("call_id") for i in sent[1:5]] == [
        "rs_1",
        "call_a",
        "rs_2",
        "call_b",
    ]
    assert sent[1]["encrypted_content"] == "ENC1"
    assert sent[5]["content"] == "Looking both up."


def test_the_order_survives_the_response_cache_record() -> None:
    """A cached answer (codec record) replays in the same order as the fresh one."""
    from llmrelay.catalog.costs import Cost
    from llmrelay.providers.adapters.openai_responses_output import parse_output, response_from
    from llmrelay.providers.table import make_deployment

    dep = make_deployment("openai", "gpt-5.5", api_key="k")
    r = response_from(ANSWER, parse_output(OUTPUT), dep, {})
    back = response_from_dict(orjson.loads(orjson.dumps(response_to_dict(r))), cost_type=Cost)
    for resp in (r, back):
        _, items = build_input([Message("user", "q"), resp.message()])
        assert _kinds(items) == WANT[:6]


def test_calls_a_caller_dropped_or_reordered_are_sent_as_the_message_has_them() -> None:
    """``before_call`` naming a call the message no longer has places nothing; calls without
    a reasoning part follow, in the message's order; other providers' parts are left out."""
    msg = Message(
        "assistant",
        [
            ReasoningPart(id="rs_1", data="E", provider="openai_responses", before_call="gone"),
            ReasoningPart(text="claude thought", signature="s", provider="anthropic"),
            TextPart("hi"),
            ReasoningPart(id="rs_2", data="F", provider="openai_responses", before_call="c2"),
        ],
        tool_calls=[ToolCall("c1", "f", "{}"), ToolCall("c2", "g", "{}")],
    )
    _, items = build_input([msg])
    assert [i.get("id") or i.get("call_id") or i.get("content") for i in items] == [
        "rs_1",
        "hi",
        "rs_2",
        "c2",
        "c1",
    ]


def test_a_repeated_call_id_loses_no_call() -> None:
    msg = Message(
        "assistant",
        [ReasoningPart(id="rs_1", data="E", provider="openai_responses", before_call="c1")],
        tool_calls=[ToolCall("c1", "f", "{}"), ToolCall("c1", "g", "{}")],
    )
    _, items = build_input([msg])
    assert [i.get("id") or i.get("name") for i in items] == ["rs_1", "f", "g"]
