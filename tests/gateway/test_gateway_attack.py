"""The gateway attacked the way the world would, over real sockets: a hostile upstream that
echoes the gateway's provider key, model names that try to steer the upstream request, request
bodies that try to exhaust memory, and the official SDKs parsing what comes back."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import pytest

from llmrelay.testing.fake import Reply

from ..conftest import CANARY_KEY
from .conftest import (
    ADMIN,
    AUTH,
    CLAUDE,
    GPT,
    Running,
    ant,
    chat_chunk,
    chat_sse,
    get,
    named_sse,
    oai,
    post,
)


def _no_canary(raw: bytes, headers: Mapping[str, str]) -> None:
    assert CANARY_KEY.encode() not in raw
    assert CANARY_KEY[:20] not in " ".join(headers.values())


def _chat(model: str = GPT, **kw: Any) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "x"}], **kw})


def _msgs(model: str = GPT, **kw: Any) -> bytes:
    return orjson.dumps(
        {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "x"}], **kw}
    )


_ECHO = f"Incorrect value for header; got Bearer {CANARY_KEY} (request req_abc)"


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_an_upstream_echoing_the_provider_key_never_reaches_the_client(
    gw: Running, status: int, stream: bool, path: str
) -> None:
    gw.fake.push(*[Reply.error(status, _ECHO, headers={"x-echo": CANARY_KEY})] * 6)
    body = (_chat if path.endswith("completions") else _msgs)(stream=stream)
    code, raw, headers = await post(gw, path, body, {"x-llmrelay-trace": "1"})
    assert code >= 400
    _no_canary(raw, headers)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_an_upstream_echoing_the_key_mid_stream_never_reaches_the_client(
    gw: Running, path: str
) -> None:
    gw.fake.push(*[Reply.stream_error(after_chunks=2, message=_ECHO)] * 6)
    body = (_chat if path.endswith("completions") else _msgs)(stream=True)
    code, raw, headers = await post(gw, path, body, {"x-llmrelay-trace": "1"})
    assert code == 200
    assert b"error" in raw
    _no_canary(raw, headers)


async def test_trace_of_a_retried_call_does_not_carry_the_upstream_message(gw: Running) -> None:
    gw.fake.push(Reply.error(500, _ECHO), Reply.ok("fine"))
    code, raw, headers = await post(gw, "/v1/chat/completions", _chat(), {"x-llmrelay-trace": "1"})
    assert code == 200
    assert "x-llmrelay-trace" in headers
    _no_canary(raw, headers)


@pytest.mark.parametrize(
    "model",
    [
        "gemini/gemini-2.0-flash:countTokens?x=",
        "gemini/gemini-2.0-flash#",
        "gemini/../../v1/files",
        "gemini/models/gemini-2.0-flash:batchGenerateContent?",
        "gemini/gemini-2.0-flash%3F",
        "gemini/a b",
        "gemini/a\\..\\b",
    ],
)
async def test_a_model_name_cannot_steer_the_upstream_path(gw: Running, model: str) -> None:
    code, raw, _ = await post(gw, "/v1/chat/completions", _chat(model))
    for sent in gw.fake.requests:
        assert sent.path.startswith("/v1beta/models/"), sent.path
        assert sent.path.endswith(":generateContent"), sent.path
        assert sent.query == {}, sent.query
    assert code == 400, raw
    assert orjson.loads(raw)["error"]["param"] == "model"
    assert gw.fake.requests == []


@pytest.mark.parametrize("model", ["gemini/gemini-2.0-flash", "gemini-2.0-flash"])
async def test_ordinary_model_paths_still_work(gw: Running, model: str) -> None:
    code, raw, _ = await post(gw, "/v1/chat/completions", _chat(model))
    assert code == 200, raw
    (sent,) = gw.fake.requests
    assert sent.path.startswith("/v1beta/")


@pytest.mark.parametrize("model", ["ollama/llama3", "vllm/x", "lmstudio/y", "test/echo"])
async def test_unconfigured_keyless_providers_and_test_doubles_are_not_reachable(
    gw: Running, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    # Their default base URLs are ports on the gateway's own host (localhost:11434, ...):
    # a client must not make the gateway post there unless the operator configured them.
    for var in ("OLLAMA_BASE_URL", "VLLM_BASE_URL", "LMSTUDIO_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    for path, body in (("/v1/chat/completions", _chat(model)), ("/v1/messages", _msgs(model))):
        code, raw, _ = await post(gw, path, body)
        assert code == 404, raw
        assert b"not configured" in raw


async def test_a_configured_keyless_provider_is_reachable(gw: Running) -> None:
    code, raw, _ = await post(gw, "/v1/chat/completions", _chat("ollama/llama3.1:8b"))
    assert code == 200, raw
    (sent,) = gw.fake.requests
    assert sent.body["model"] == "llama3.1:8b"


async def test_a_gzip_bomb_request_is_413(gw: Running) -> None:
    inner = b'{"model": "x", "messages": [{"role": "user", "content": "' + b"a" * (64 << 20)
    bomb = gzip.compress(inner, 9)
    assert len(bomb) < 1 << 20
    code, raw, _ = await post(gw, "/v1/chat/completions", bomb, {"content-encoding": "gzip"})
    assert code == 413, raw
    assert gw.fake.requests == []


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer "},
        {"authorization": "Bearer \t "},
        {"authorization": "Basic " + ADMIN},
        {"authorization": ADMIN},
        {"authorization": "Bearer " + ADMIN[:-1]},
        {"authorization": "Bearer " + ADMIN + "x"},
        {"authorization": "Bearer x", "x-api-key": ADMIN},
        {"x-api-key": ""},
        {"x-api-key": " "},
        {"x-api-key": "sk-relay-" + "A" * 4000},
    ],
)
async def test_auth_header_variants_are_refused(gw: Running, headers: dict[str, str]) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.url + "/v1/chat/completions",
            data=_chat(),
            headers={"content-type": "application/json", **headers},
        ) as r,
    ):
        assert r.status == 401, await r.read()
    assert gw.fake.requests == []


async def test_non_utf8_key_bytes_are_401(gw: Running) -> None:
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = _chat()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer sk-\xff\xfe\xed" + ADMIN.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    await writer.drain()
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 401"), data[:200]


# --------------------------------------------------------------------------- wire translation


_WEATHER = {
    "name": "weather",
    "description": "the weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
_WEATHER_OAI = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "the weather",
        "parameters": _WEATHER["input_schema"],
    },
}


async def test_openai_sdk_streams_a_claude_tool_call(gw: Running) -> None:
    gw.fake.push(Reply.tool_call("weather", {"city": "Paris"}))
    async with oai(gw).chat.completions.stream(
        model=CLAUDE,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[_WEATHER_OAI],
        stream_options={"include_usage": True},
    ) as stream:
        final = await stream.get_final_completion()
    msg = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    (call,) = msg.tool_calls
    assert call.function.name == "weather"
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id
    assert final.usage is not None
    assert final.usage.completion_tokens > 0


async def test_anthropic_sdk_streams_a_gpt_tool_call(gw: Running) -> None:
    gw.fake.push(Reply.tool_call("weather", {"city": "Paris"}))
    async with ant(gw).messages.stream(
        model=GPT,
        max_tokens=100,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[_WEATHER],
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    (block,) = [b for b in final.content if b.type == "tool_use"]
    assert block.name == "weather"
    assert block.input == {"city": "Paris"}
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_usage_excludes_cache_reads_whatever_the_upstream(
    gw: Running, stream: bool
) -> None:
    for model in (CLAUDE, GPT):
        gw.fake.push(Reply.ok("hi", input_tokens=100, cached_tokens=60, output_tokens=3))
        client = ant(gw)
        kw: dict[str, Any] = {
            "model": model,
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "x"}],
        }
        if stream:
            async with client.messages.stream(**kw) as s:
                m = await s.get_final_message()
        else:
            m = await client.messages.create(**kw)
        assert m.usage.cache_read_input_tokens == 60, model
        assert m.usage.input_tokens == 40, model
        assert m.usage.output_tokens == 3, model


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_usage_includes_cache_reads_whatever_the_upstream(
    gw: Running, stream: bool
) -> None:
    for model in (CLAUDE, GPT):
        gw.fake.push(Reply.ok("hi", input_tokens=100, cached_tokens=60, output_tokens=3))
        client = oai(gw)
        kw: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "x"}]}
        if stream:
            async with client.chat.completions.stream(
                **kw, stream_options={"include_usage": True}
            ) as s:
                c = await s.get_final_completion()
        else:
            c = await client.chat.completions.create(**kw)
        assert c.usage is not None
        assert c.usage.prompt_tokens == 100, model
        assert c.usage.prompt_tokens_details.cached_tokens == 60, model
        assert c.usage.completion_tokens == 3, model
        assert c.usage.total_tokens == 103, model


@pytest.mark.parametrize("stream", [False, True])
async def test_a_refusal_crosses_both_ways(gw: Running, stream: bool) -> None:
    # OpenAI upstream refuses -> Anthropic client sees stop_reason "refusal".
    gw.fake.push(Reply.refuse("I can't help with that."))
    kw: dict[str, Any] = {
        "model": GPT,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}],
    }
    if stream:
        async with ant(gw).messages.stream(**kw) as s:
            m = await s.get_final_message()
    else:
        m = await ant(gw).messages.create(**kw)
    assert m.stop_reason == "refusal"
    # Anthropic upstream refuses -> OpenAI client sees message.refusal.
    gw.fake.push(Reply.ok("", finish="content_filter", refusal_explanation="not allowed here"))
    okw: dict[str, Any] = {"model": CLAUDE, "messages": [{"role": "user", "content": "x"}]}
    if stream:
        async with oai(gw).chat.completions.stream(**okw) as s2:
            c = await s2.get_final_completion()
    else:
        c = await oai(gw).chat.completions.create(**okw)
    assert c.choices[0].message.refusal
    assert not c.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
async def test_max_tokens_stop_crosses_both_ways(gw: Running, stream: bool) -> None:
    gw.fake.push(Reply.ok("cut", finish="length"))
    kw: dict[str, Any] = {
        "model": GPT,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "x"}],
    }
    if stream:
        async with ant(gw).messages.stream(**kw) as s:
            m = await s.get_final_message()
    else:
        m = await ant(gw).messages.create(**kw)
    assert m.stop_reason == "max_tokens"
    gw.fake.push(Reply.ok("cut", finish="length"))
    okw: dict[str, Any] = {
        "model": CLAUDE,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "x"}],
    }
    if stream:
        finish = None
        async for chunk in await oai(gw).chat.completions.create(**okw, stream=True):
            finish = chunk.choices[0].finish_reason if chunk.choices else finish
    else:
        finish = (await oai(gw).chat.completions.create(**okw)).choices[0].finish_reason
    assert finish == "length"


async def test_stop_sequences_and_system_reach_a_gpt_upstream(gw: Running) -> None:
    await ant(gw).messages.create(
        model=GPT,
        max_tokens=10,
        system=[{"type": "text", "text": "be brief"}],
        stop_sequences=["END"],
        messages=[{"role": "user", "content": "x"}],
    )
    (sent,) = gw.fake.requests
    assert sent.body["stop"] == ["END"]
    first = sent.body["messages"][0]
    assert first["role"] == "system"
    assert "be brief" in orjson.dumps(first["content"]).decode()


# --------------------------------------------------------------------------- budgets and limits


async def _spent(gw: Running, key: str) -> dict[str, float]:
    assert gw.gateway.keys is not None
    assert gw.gateway.budgets is not None
    record = await gw.gateway.keys.lookup(key)
    assert record is not None
    limit = gw.gateway.budgets.limit_for(record)
    assert limit is not None
    return await gw.gateway.budgets.status(limit, record.id)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_client_leaving_mid_stream_is_charged_for_what_was_produced(
    gw: Running, path: str
) -> None:
    key = await gw.key(budget_usd=100.0)
    gw.fake.push(Reply.ok("word " * 2000, delay=0.0))
    body = (_chat if path.endswith("completions") else _msgs)(stream=True, max_tokens=4000)
    async with aiohttp.ClientSession() as s:
        r = await s.post(
            gw.url + path,
            data=body,
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        )
        await r.content.readany()
        r.close()
    for _ in range(300):
        if gw.gateway.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert gw.gateway.in_flight == 0
    st = await _spent(gw, key)
    assert st["reserved_usd"] == 0  # the reservation was settled, not left to expire
    assert st["spent_usd"] > 0  # what was streamed before the client left was charged


async def test_concurrent_requests_never_pass_a_keys_rpm(gw: Running) -> None:
    key = await gw.key(rpm=7)
    codes = await asyncio.gather(
        *[
            post(gw, "/v1/chat/completions", _chat(), {"authorization": f"Bearer {key}"})
            for _ in range(60)
        ]
    )
    assert sum(1 for c, _, _ in codes if c == 200) == 7
    assert {c for c, _, _ in codes} == {200, 429}
    assert len(gw.fake.requests) == 7


async def test_concurrent_requests_never_pass_a_keys_budget(gw: Running) -> None:
    # Each call reserves its worst case (max_tokens) and is charged its real cost.
    key = await gw.key(budget_usd=0.002)
    body = _chat(max_tokens=1000)
    codes = await asyncio.gather(
        *[
            post(gw, "/v1/chat/completions", body, {"authorization": f"Bearer {key}"})
            for _ in range(60)
        ]
    )
    ok = sum(1 for c, _, _ in codes if c == 200)
    assert 0 < ok < 60
    st = await _spent(gw, key)
    assert st["spent_usd"] <= 0.002
    assert st["reserved_usd"] == 0


async def test_budget_and_rpm_changes_take_effect(gw: Running) -> None:
    assert gw.gateway.keys is not None
    assert gw.gateway.key_store is not None
    gw.gateway.keys.ttl = 0  # re-read the key on every request
    key = await gw.key(budget_usd=100.0, rpm=100)
    auth = {"authorization": f"Bearer {key}"}
    assert (await post(gw, "/v1/chat/completions", _chat(), auth))[0] == 200
    record = await gw.gateway.keys.lookup(key)
    assert record is not None
    await gw.gateway.key_store.update(record.id, budget_usd=1e-9)
    code, raw, _ = await post(gw, "/v1/chat/completions", _chat(), auth)
    assert code == 429
    assert orjson.loads(raw)["error"]["code"] == "budget_exceeded"
    await gw.gateway.key_store.update(record.id, budget_usd=100.0, rpm=2)
    assert (await post(gw, "/v1/chat/completions", _chat(), auth))[0] == 200
    code, raw, _ = await post(gw, "/v1/chat/completions", _chat(), auth)
    assert code == 429, raw  # 2 calls this minute already: the new rpm holds at once
    assert orjson.loads(raw)["error"]["code"] == "rate_limit_exceeded"
    await gw.gateway.key_store.revoke(record.id)
    assert (await post(gw, "/v1/chat/completions", _chat(), auth))[0] == 401


async def test_an_expired_key_is_401(gw: Running) -> None:
    key = await gw.key(expires_at=1.0)
    code, raw, _ = await post(gw, "/v1/messages", _msgs(), {"authorization": f"Bearer {key}"})
    assert code == 401
    assert orjson.loads(raw)["error"]["type"] == "authentication_error"


# --------------------------------------------------------------------------- slow and big clients


async def _raw(gw: Running, data: bytes) -> bytes:
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


async def test_a_body_that_never_finishes_arriving_is_408(gw: Running) -> None:
    gw.gateway.settings.read_timeout = 0.2
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + ADMIN.encode() + b"\r\nContent-Length: 1000\r\n\r\n"
    )
    data = await _raw(gw, head + b'{"model": ')  # ... and nothing more
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"request_timeout" in data
    assert gw.fake.requests == []


# --------------------------------------------------------------------------- metrics


async def test_made_up_model_names_do_not_become_metric_series(gw: Running) -> None:
    key = await gw.key(rpm=1)
    auth = {"authorization": f"Bearer {key}"}
    assert (await post(gw, "/v1/chat/completions", _chat(), auth))[0] == 200
    for i in range(30):  # refused by the key's rpm before any provider saw the name
        code, _, _ = await post(gw, "/v1/chat/completions", _chat(f"openai/made-up-{i}"), auth)
        assert code == 429
    _, raw = await get(gw, "/metrics", AUTH)
    text = raw.decode()
    assert "made-up" not in text
    assert f'model="{GPT}",status="200"}} 1' in text


# --------------------------------------------------------------------------- open (keyless) mode


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"origin": "http://localhost:3000"}, 200),
        ({"host": "localhost:4000"}, 200),
        ({"host": "[::1]:4000"}, 200),
        ({"origin": "https://evil.example"}, 403),  # a web page posting cross-site
        ({"origin": "null"}, 403),  # a sandboxed iframe or file:// page
        ({"host": "evil.example:4000"}, 403),  # DNS rebinding: evil.example -> 127.0.0.1
        ({"host": "127.0.0.1.evil.example"}, 403),
    ],
)
@pytest.mark.parametrize("key", [None, "anything", ADMIN])
async def test_keyless_mode_serves_only_local_clients(
    open_gw: Running, headers: dict[str, str], status: int, key: str | None
) -> None:
    # Whatever key a local client presents (the SDKs always send one) is ignored.
    auth = {"authorization": f"Bearer {key}"} if key else {}
    code, raw, _ = await post(
        open_gw,
        "/v1/chat/completions",
        _chat(),
        {"content-type": "text/plain", **headers},
        auth=auth,
    )
    assert code == status, raw
    assert len(open_gw.fake.requests) == (1 if status == 200 else 0)
    for sent in open_gw.fake.requests:
        assert sent.headers.get("authorization") == f"Bearer {CANARY_KEY}"


# --------------------------------------------------------------------------- parallel tool calls


_OPENAI_TWO_TOOLS = chat_sse(
    chat_chunk({"role": "assistant", "content": None}),
    chat_chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "weather", "arguments": ""},
                }
            ]
        }
    ),
    chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    chat_chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "weather", "arguments": ""},
                }
            ]
        }
    ),
    chat_chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"city": "Rome"}'}}]}),
    chat_chunk({}, "tool_calls"),
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4.1-mini",
        "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    },
)

_ANTHROPIC_TWO_TOOLS = named_sse(
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Checking."},
    },
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_b", "name": "weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Rome"}'},
    },
    {"type": "content_block_stop", "index": 2},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 20},
    },
    {"type": "message_stop"},
)


async def test_anthropic_sdk_gets_two_streamed_gpt_tool_calls(gw: Running) -> None:
    gw.fake.push(Reply.raw(_OPENAI_TWO_TOOLS, content_type="text/event-stream"))
    async with ant(gw).messages.stream(
        model=GPT,
        max_tokens=100,
        messages=[{"role": "user", "content": "weather in Paris and Rome?"}],
        tools=[_WEATHER],
    ) as stream:
        final = await stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(b.id, b.input) for b in uses] == [
        ("call_a", {"city": "Paris"}),
        ("call_b", {"city": "Rome"}),
    ]
    assert final.stop_reason == "tool_use"


async def test_openai_sdk_gets_two_streamed_claude_tool_calls(gw: Running) -> None:
    gw.fake.push(Reply.raw(_ANTHROPIC_TWO_TOOLS, content_type="text/event-stream"))
    async with oai(gw).chat.completions.stream(
        model=CLAUDE,
        messages=[{"role": "user", "content": "weather in Paris and Rome?"}],
        tools=[_WEATHER_OAI],
    ) as stream:
        final = await stream.get_final_completion()
    msg = final.choices[0].message
    assert msg.content == "Checking."
    assert [(t.id, orjson.loads(t.function.arguments)) for t in msg.tool_calls or []] == [
        ("toolu_a", {"city": "Paris"}),
        ("toolu_b", {"city": "Rome"}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


async def test_openai_sdk_gets_two_claude_tool_calls(gw: Running) -> None:
    gw.fake.push(Reply.raw(_ANTHROPIC_TWO_TOOLS, content_type="text/event-stream"))
    raw = await oai(gw).chat.completions.with_raw_response.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": "weather in Paris and Rome?"}],
        tools=[_WEATHER_OAI],
        stream=True,
    )
    indices: list[int] = []
    async for chunk in raw.parse():
        for c in chunk.choices:
            for t in c.delta.tool_calls or []:
                indices.append(t.index)
    # OpenAI numbers tool calls 0, 1, ... (not Anthropic's content block indices)
    assert sorted(set(indices)) == [0, 1]


async def test_count_tokens_obeys_the_allow_list(gw: Running) -> None:
    key = await gw.key(models=["claude-*"])
    auth = {"authorization": f"Bearer {key}"}
    code, raw, _ = await post(gw, "/v1/messages/count_tokens", _msgs(GPT), auth)
    assert code == 403, raw
    assert orjson.loads(raw)["error"]["type"] == "permission_error"
    code, raw, _ = await post(gw, "/v1/messages/count_tokens", _msgs("claude-haiku-4-5"), auth)
    assert code == 200, raw


async def test_anthropic_sdk_sees_an_error_mid_stream(gw: Running) -> None:
    import anthropic

    gw.fake.push(*[Reply.stream_error(after_chunks=2, message="boom")] * 6)
    with pytest.raises(anthropic.APIStatusError):
        async with ant(gw).messages.stream(
            model=GPT, max_tokens=50, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            await stream.get_final_message()


async def test_concurrent_requests_without_max_tokens_never_pass_a_keys_budget(
    gw: Running,
) -> None:
    # No max_tokens: the reservation must assume the model's longest answer, or concurrent
    # calls that each looked affordable overspend together.
    key = await gw.key(budget_usd=0.2)
    gw.fake.push(*[Reply.ok("long answer", output_tokens=8000)] * 60)
    codes = await asyncio.gather(
        *[
            post(gw, "/v1/chat/completions", _chat(), {"authorization": f"Bearer {key}"})
            for _ in range(60)
        ]
    )
    assert any(c == 200 for c, _, _ in codes)
    st = await _spent(gw, key)
    assert st["spent_usd"] <= 0.2, st


async def test_a_successful_upstream_answer_echoing_the_key_in_its_metadata(gw: Running) -> None:
    body = {
        "id": f"chatcmpl-{CANARY_KEY}",
        "object": "chat.completion",
        "created": 1,
        "model": f"gpt-4.1-mini-{CANARY_KEY}",
        "system_fingerprint": CANARY_KEY,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    for path, req in (("/v1/chat/completions", _chat()), ("/v1/messages", _msgs())):
        gw.fake.push(Reply.raw(orjson.dumps(body), headers={"x-request-id": CANARY_KEY}))
        code, raw, headers = await post(gw, path, req, {"x-llmrelay-trace": "1"})
        assert code == 200, raw
        _no_canary(raw, headers)


_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
    "RU5ErkJggg=="
)


async def test_images_and_tool_results_cross_both_ways(gw: Running) -> None:
    await oai(gw).chat.completions.create(
        model=CLAUDE,
        messages=[
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=[_WEATHER_OAI],
    )
    sent = gw.fake.requests[-1].body
    assert sent["system"] in ("sys", [{"type": "text", "text": "sys"}])
    image = sent["messages"][0]["content"][1]
    assert image["type"] == "image"
    assert image["source"] == {"type": "base64", "media_type": "image/png", "data": _PNG}
    use = sent["messages"][1]["content"][-1]
    assert (use["type"], use["id"], use["input"]) == ("tool_use", "call_1", {"city": "Paris"})
    result = sent["messages"][2]["content"][0]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "call_1")

    await ant(gw).messages.create(
        model=GPT,
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": _PNG},
                    },
                    {"type": "text", "text": "what is this?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "sunny",
                        "is_error": False,
                    },
                ],
            },
        ],
        tools=[_WEATHER],
    )
    sent = gw.fake.requests[-1].body
    part = sent["messages"][0]["content"][0]
    assert part == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_PNG}"}}
    call = sent["messages"][1]["tool_calls"][0]
    assert call["id"] == "toolu_1"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}


async def test_openai_sdk_strict_parse_of_a_claude_structured_answer(gw: Running) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        country: str

    gw.fake.push(Reply.ok('{"name": "Paris", "country": "France"}'))
    done = await oai(gw).chat.completions.parse(
        model=CLAUDE,
        messages=[{"role": "user", "content": "a city"}],
        response_format=City,
    )
    assert done.choices[0].message.parsed == City(name="Paris", country="France")


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "openai/gpt-4.1-mini", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"model": "openai/gpt-4.1-mini", "max_tokens": 1' + b"0" * 5000 + b', "messages": []}',
        b'{"model": "openai/gpt-4.1-mini", "temperature": 1e999999, "messages": []}',
        b'{"model": "' + b"a" * 100_000 + b'", "messages": [{"role": "user", "content": "x"}]}',
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_pathological_json_is_400(gw: Running, body: bytes, path: str) -> None:
    code, raw, _ = await post(gw, path, body)
    assert code == 400, raw[:300]
    assert len(raw) < 2000  # the answer does not echo the input
    assert gw.fake.requests == []


async def test_an_upstream_429_dressed_as_the_gateways_own_limit_stays_an_upstream_error(
    gw: Running,
) -> None:
    """The gateway passes on its own limiter's message (it names the key's limit); it told
    them apart from a provider's 429 by the body alone, which the provider writes: a hostile
    upstream answering {"source": "llmrelay.ratelimit", ...} got its message to the client."""
    body = orjson.dumps(
        {
            "source": "llmrelay.ratelimit",
            "error": {"message": "upstream internal: db-7 at 10.0.0.5"},
        }
    )
    gw.fake.push(*[Reply.raw(body, status=429, headers={"retry-after": "1"})] * 6)
    code, raw, _ = await post(gw, "/v1/chat/completions", _chat())
    assert code == 429
    assert b"10.0.0.5" not in raw
    assert b"db-7" not in raw
