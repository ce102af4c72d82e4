"""``POST /v1/responses`` over a real socket with the official openai SDK as the client
(``responses.create``, ``responses.stream``, ``create(stream=True)``): any model behind it, input
items, instructions, function tools and their round trip, structured output, reasoning items
that replay, refusals, incomplete answers and errors in OpenAI's shape."""

from __future__ import annotations

import hashlib
from typing import Any

import openai
import orjson
import pytest

from llmrelay.testing.fake import Reply

from ..conftest import CANARY_KEY
from .conftest import CLAUDE, GPT, Running, chat_chunk, chat_sse, oai, post

_WEATHER: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    }
]


async def test_a_plain_answer(gw: Running) -> None:
    r = await oai(gw).responses.with_raw_response.create(model=GPT, input="hello")
    resp = r.parse()
    assert resp.output_text == "Echo: hello"
    assert resp.status == "completed"
    assert resp.model == GPT
    assert resp.id.startswith("resp_")
    (msg,) = resp.output
    assert msg.type == "message"
    assert resp.usage is not None
    assert resp.usage.input_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert r.headers["x-request-id"].startswith("req_")
    (sent,) = gw.fake.requests
    assert sent.headers.get("authorization") == f"Bearer {CANARY_KEY}"


async def test_instructions_and_input_items_become_our_messages(gw: Running) -> None:
    await oai(gw).responses.create(
        model=GPT,
        instructions="be brief",
        input=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "an answer"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look: "},
                    {
                        "type": "input_image",
                        "image_url": "https://example.com/a.png",
                        "detail": "low",
                    },
                ],
            },
        ],
        max_output_tokens=77,
        temperature=0.5,
    )
    (sent,) = gw.fake.requests
    body = sent.body
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["messages"][1] == {"role": "user", "content": "first"}
    assert body["messages"][2]["role"] == "assistant"
    assert body["messages"][2]["content"] == "an answer"
    parts = body["messages"][3]["content"]
    assert parts[0] == {"type": "text", "text": "look: "}
    assert parts[1]["image_url"]["url"] == "https://example.com/a.png"
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 77
    assert body["temperature"] == 0.5


async def test_a_claude_alias_calls_a_function_and_gets_its_result(gw: Running) -> None:
    gw.fake.push(Reply.tool_call("get_weather", {"city": "Paris"}), Reply.ok("sunny it is"))
    client = oai(gw)
    first: Any = [{"role": "user", "content": "weather in Paris?"}]
    resp = await client.responses.create(
        model=CLAUDE, input=first, tools=_WEATHER, tool_choice="auto"
    )
    (call,) = [o for o in resp.output if o.type == "function_call"]
    assert call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id
    sent = gw.fake.requests[0]
    assert sent.path.endswith("/v1/messages")  # translated to Anthropic's wire
    assert sent.body["tools"][0]["name"] == "get_weather"
    assert sent.body["tool_choice"] == {"type": "auto"}
    follow = [
        *first,
        *[o.to_dict() for o in resp.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "22C, sunny"},
    ]
    done = await client.responses.create(model=CLAUDE, input=follow, tools=_WEATHER)
    assert done.output_text == "sunny it is"
    messages = gw.fake.requests[1].body["messages"]
    tool_use = [b for b in messages[1]["content"] if b["type"] == "tool_use"]
    assert tool_use == [
        {"type": "tool_use", "id": call.call_id, "name": "get_weather", "input": {"city": "Paris"}}
    ]
    assert messages[2]["content"][0]["type"] == "tool_result"
    assert messages[2]["content"][0]["tool_use_id"] == call.call_id


async def test_a_forced_function(gw: Running) -> None:
    await oai(gw).responses.create(
        model=GPT,
        input="x",
        tools=_WEATHER,
        tool_choice={"type": "function", "name": "get_weather"},
    )
    body = gw.fake.requests[0].body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


async def test_stream_helper_text(gw: Running) -> None:
    async with oai(gw).responses.stream(model=CLAUDE, input="flow please") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == "Echo: flow please"
    assert final.output_text == "Echo: flow please"
    assert final.status == "completed"
    assert final.usage is not None
    assert final.usage.output_tokens > 0


async def test_raw_stream_events_are_typed_and_numbered(gw: Running) -> None:
    stream = await oai(gw).responses.create(model=GPT, input="count", stream=True)
    events = [e async for e in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for k in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert k in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.id == events[-1].response.id


async def test_a_streamed_function_call(gw: Running) -> None:
    gw.fake.push(Reply.tool_call("get_weather", {"city": "Oslo"}))
    async with oai(gw).responses.stream(model=CLAUDE, input="weather?", tools=_WEATHER) as s:
        kinds = [e.type async for e in s]
        final = await s.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    (call,) = final.output
    assert call.type == "function_call"
    assert orjson.loads(call.arguments) == {"city": "Oslo"}


@pytest.mark.parametrize("model", [GPT, CLAUDE])
async def test_structured_output(gw: Running, model: str) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    resp = await oai(gw).responses.create(
        model=model,
        input="a name",
        text={
            "format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}
        },
    )
    assert set(orjson.loads(resp.output_text)) == {"name"}
    if model == GPT:
        rf = gw.fake.requests[0].body["response_format"]
        assert rf["type"] == "json_schema"
        assert rf["json_schema"]["name"] == "person"
        assert rf["json_schema"]["schema"] == schema


async def test_cut_short_is_incomplete(gw: Running) -> None:
    gw.fake.push(Reply.ok("partial", finish="length"))
    resp = await oai(gw).responses.create(model=CLAUDE, input="long", max_output_tokens=5)
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert gw.fake.requests[0].body["max_tokens"] == 5


async def test_a_refusal_is_a_refusal_part(gw: Running) -> None:
    gw.fake.push(Reply.refuse("I won't help with that."))
    resp = await oai(gw).responses.create(model=GPT, input="bad")
    (msg,) = resp.output
    assert msg.type == "message"
    assert msg.content[0].type == "refusal"
    assert msg.content[0].refusal == "I won't help with that."


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_thinking_replays_through_reasoning_items(gw: Running, stream: bool) -> None:
    sig = "sig_fake_" + hashlib.sha256(b"pondering").hexdigest()[:24]
    gw.fake.push(
        Reply.tool_call(
            "get_weather", {"city": "Rome"}, reasoning="pondering", redacted_reasoning="opaque=="
        ),
        Reply.ok("done"),
    )
    client = oai(gw)
    first: Any = [{"role": "user", "content": "weather in Rome?"}]
    kw: Any = {"model": CLAUDE, "tools": _WEATHER, "reasoning": {"effort": "low"}}
    if stream:
        async with client.responses.stream(input=first, **kw) as s:
            resp = await s.get_final_response()
    else:
        resp = await client.responses.create(input=first, **kw)
    kinds = [o.type for o in resp.output]
    assert kinds == ["reasoning", "reasoning", "function_call"]
    assert resp.output[0].summary[0].text == "pondering"  # type: ignore[union-attr]
    call = resp.output[2]
    assert call.type == "function_call"
    follow = [
        *first,
        *[o.to_dict() for o in resp.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "warm"},
    ]
    await client.responses.create(input=follow, **kw)
    replayed = gw.fake.requests[1].body["messages"][1]["content"]
    assert replayed[0] == {"type": "thinking", "thinking": "pondering", "signature": sig}
    assert replayed[1] == {"type": "redacted_thinking", "data": "opaque=="}
    assert replayed[2]["type"] == "tool_use"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "web_search"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "item_reference"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"input": []}, "input"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format"),
        ({"tool_choice": {"type": "mcp"}}, "tool_choice"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "file_data",
        ),
        ({"base_url": "http://evil.example"}, "base_url"),
        ({"max_output_tokens": -5}, "max_output_tokens"),
        (
            {
                "input": [
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [{"type": "input_image", "image_url": "data:image/png;base64,"}],
                    }
                ]
            },
            "input_text parts",
        ),
        ({"max_output_tokens": True}, "max_output_tokens"),
        ({"reasoning": {"effort": 5}}, "reasoning.effort"),
        (
            {
                "input": [
                    {
                        "type": "reasoning",
                        "id": "rs_1",
                        "summary": [],
                        "encrypted_content": "llmrelay.v1.!!!",
                    }
                ]
            },
            "encrypted_content",
        ),
    ],
)
async def test_bad_fields_are_400_naming_them(
    gw: Running, extra: dict[str, Any], field: str
) -> None:
    body = orjson.dumps({"model": GPT, "input": "x", **extra})
    status, raw, _ = await post(gw, "/v1/responses", body)
    assert status == 400, raw
    err = orjson.loads(raw)["error"]
    assert err["type"] == "invalid_request_error"
    assert field in err["message"]
    assert gw.fake.requests == []


async def test_unknown_model_and_allow_list(gw: Running) -> None:
    with pytest.raises(openai.NotFoundError):
        await oai(gw).responses.create(model="no-such-model-anywhere", input="x")
    key = await gw.key(models=["claude-*"])
    with pytest.raises(openai.PermissionDeniedError):
        await oai(gw, key).responses.create(model=GPT, input="x")
    assert gw.fake.requests == []


async def test_an_upstream_failure_mid_stream_is_an_error_event(gw: Running) -> None:
    gw.fake.push(*[Reply.stream_error(after_chunks=2, message="boom")] * 6)
    body = orjson.dumps({"model": GPT, "input": "x", "stream": True})
    status, raw, _ = await post(gw, "/v1/responses", body)
    assert status == 200
    text = raw.decode()
    assert "event: error" in text
    assert text.rstrip().splitlines()[-1].startswith("data: ")
    assert '"type":"response.failed"' in text


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_reasoning_items_replay_with_their_own_id(gw: Running, stream: bool) -> None:
    """A model behind on OpenAI's Responses API: its reasoning item's id and encrypted content
    reach it again in the next turn, whatever ids the gateway showed the client."""
    model = "openai/gpt-6.1-sol"  # Responses upstream when tools are sent
    gw.fake.push(Reply.tool_call("get_weather", {"city": "Lima"}), Reply.ok("ok"))
    client = oai(gw)
    first: Any = [{"role": "user", "content": "weather in Lima?"}]
    kw: Any = {"model": model, "tools": _WEATHER, "reasoning": {"effort": "low"}}
    if stream:
        async with client.responses.stream(input=first, **kw) as s:
            resp = await s.get_final_response()
    else:
        resp = await client.responses.create(input=first, **kw)
    assert gw.fake.requests[0].path.endswith("/responses")
    assert [o.type for o in resp.output] == ["reasoning", "function_call"]
    call = resp.output[1]
    assert call.type == "function_call"
    follow = [
        *first,
        *[o.to_dict() for o in resp.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "mild"},
    ]
    await client.responses.create(input=follow, **kw)
    items = gw.fake.requests[1].body["input"]
    (reasoning,) = [i for i in items if i.get("type") == "reasoning"]
    assert reasoning["id"] == "rs_fake0001"
    assert reasoning["encrypted_content"].startswith("gAAAAAB")


async def test_a_streamed_refusal_and_an_empty_answer(gw: Running) -> None:
    gw.fake.push(Reply.refuse("Not this one."), Reply.ok(""))
    client = oai(gw)
    async with client.responses.stream(model=GPT, input="bad") as s:
        kinds = [e.type async for e in s]
        refused = await s.get_final_response()
    assert "response.refusal.delta" in kinds
    (msg,) = refused.output
    assert msg.type == "message"
    assert msg.content[0].type == "refusal"
    assert msg.content[0].refusal == "Not this one."
    async with client.responses.stream(model=CLAUDE, input="say nothing") as s:
        empty = await s.get_final_response()
    assert empty.status == "completed"
    assert empty.output_text == ""
    assert [o.type for o in empty.output] == ["message"]


def _call(index: int, args: str, call_id: str | None = None) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": args}
    tc: dict[str, Any] = {"index": index, "function": fn}
    if call_id:
        tc.update(id=call_id, type="function")
        fn["name"] = "get_weather"
    return {"tool_calls": [tc]}


async def test_interleaved_streamed_calls_after_text(gw: Running) -> None:
    """Text, then two calls whose arguments interleave: each argument piece reaches its own
    item, and the SDK's accumulator (which checks item identities) completes the answer."""
    body = chat_sse(
        chat_chunk({"role": "assistant", "content": "Checking."}),
        chat_chunk(_call(0, "", "call_a")),
        chat_chunk(_call(1, "", "call_b")),
        chat_chunk(_call(0, '{"city": "Paris"}')),
        chat_chunk(_call(1, '{"city": "Rome"}')),
        chat_chunk({}, "tool_calls"),
    )
    gw.fake.push(Reply.raw(body, content_type="text/event-stream"))
    async with oai(gw).responses.stream(model=GPT, input="two cities", tools=_WEATHER) as s:
        final = await s.get_final_response()
    msg, a, b = final.output
    assert msg.type == "message"
    assert final.output_text == "Checking."
    assert a.type == b.type == "function_call"
    assert [(a.call_id, orjson.loads(a.arguments)), (b.call_id, orjson.loads(b.arguments))] == [
        ("call_a", {"city": "Paris"}),
        ("call_b", {"city": "Rome"}),
    ]


async def test_files_and_images_reach_a_claude_model(gw: Running) -> None:
    pdf = "data:application/pdf;base64,JVBERi0xLjQK"
    png = "data:image/png;base64,iVBORw0KGgo="
    await oai(gw).responses.create(
        model=CLAUDE,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "read these"},
                    {"type": "input_file", "file_data": pdf, "filename": "a.pdf"},
                    {"type": "input_image", "image_url": png, "detail": "auto"},
                ],
            }
        ],
    )
    blocks = gw.fake.requests[0].body["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["text", "document", "image"]
    assert blocks[1]["source"] == {
        "type": "base64",
        "media_type": "application/pdf",
        "data": "JVBERi0xLjQK",
    }
    assert blocks[2]["source"]["data"] == "iVBORw0KGgo="


async def test_interleaved_reasoning_and_calls_keep_their_order_both_ways(gw: Running) -> None:
    """An OpenAI model behind answers reasoning, call, reasoning, call, text: the client sees
    the items in that order, and when it replays them the model behind gets them back in that
    order (each reasoning item right before the call that followed it)."""

    def call(n: str) -> dict[str, Any]:
        return {
            "type": "function_call",
            "id": f"fc_{n}",
            "call_id": f"call_{n}",
            "name": "get_weather",
            "arguments": orjson.dumps({"city": n}).decode(),
            "status": "completed",
        }

    def rs(n: str) -> dict[str, Any]:
        return {"type": "reasoning", "id": f"rs_{n}", "summary": [], "encrypted_content": f"E{n}"}

    text = {"type": "output_text", "text": "Both.", "annotations": []}
    output = [
        rs("a"),
        call("a"),
        rs("b"),
        call("b"),
        {"type": "message", "id": "msg_1", "role": "assistant", "content": [text]},
    ]
    answer = {"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-6.1-sol"}
    gw.fake.push(
        Reply.raw(orjson.dumps({**answer, "output": output}), content_type="application/json"),
        Reply.ok("ok"),
    )
    client = oai(gw)
    first: Any = [{"role": "user", "content": "weather in a and b?"}]
    kw: Any = {"model": "openai/gpt-6.1-sol", "tools": _WEATHER}
    resp = await client.responses.create(input=first, **kw)
    kinds = [o.type for o in resp.output]
    assert kinds == ["reasoning", "function_call", "reasoning", "function_call", "message"]
    follow = [
        *first,
        *[o.to_dict() for o in resp.output],
        {"type": "function_call_output", "call_id": "call_a", "output": "mild"},
        {"type": "function_call_output", "call_id": "call_b", "output": "hot"},
    ]
    await client.responses.create(input=follow, **kw)
    items = gw.fake.requests[1].body["input"]
    assert [i.get("type") or i["role"] for i in items] == [
        "user",
        "reasoning",
        "function_call",
        "reasoning",
        "function_call",
        "assistant",
        "function_call_output",
        "function_call_output",
    ]
    assert [i.get("id") or i.get("call_id") for i in items[1:5]] == [
        "rs_a",
        "call_a",
        "rs_b",
        "call_b",
    ]
    assert items[1]["encrypted_content"] == "Ea"
