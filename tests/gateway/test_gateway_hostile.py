"""What a hostile or careless client sends the gateway, over a real socket: malformed bodies,
oversized bodies, disconnects mid-stream, attempts to reach the upstream's configuration, and
what must never come back (the provider key)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay.testing.fake import Reply

from ..conftest import CANARY_KEY
from .conftest import ANY_JSON as _json
from .conftest import AUTH, GPT, Running, get, post


async def _post(
    gw: Running, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any, Mapping[str, str]]:
    """``post``, the answer decoded when it is JSON; the provider key never comes back."""
    status, raw, hdrs = await post(gw, path, body, headers)
    assert CANARY_KEY.encode() not in raw
    assert all(CANARY_KEY not in v for v in hdrs.values())
    try:
        return status, orjson.loads(raw), hdrs
    except orjson.JSONDecodeError:
        return status, raw, hdrs


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_invalid_json_is_400_in_the_endpoints_shape(gw: Running, path: str) -> None:
    status, data, _ = await _post(gw, path, b"{not json")
    assert status == 400
    if path == "/v1/messages":
        assert data["type"] == "error"
        assert data["error"]["type"] == "invalid_request_error"
    else:
        assert data["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in orjson.dumps(data).decode()
    assert gw.fake.requests == []


async def test_a_body_over_the_limit_is_413(gw: Running) -> None:
    big = orjson.dumps({"model": GPT, "messages": [{"role": "user", "content": "x" * (5 << 20)}]})
    status, data, _ = await _post(gw, "/v1/chat/completions", big)
    assert status == 413
    assert "over" in data["error"]["message"]
    assert gw.fake.requests == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": GPT, "messages": []}, "messages"),
        (
            {"model": GPT, "messages": [{"role": "user", "content": "x"}], "temperature": 9},
            "temperature",
        ),
        ({"model": GPT, "messages": [{"role": "user", "content": "x"}], "n": 3}, "n=3"),
        ({"model": GPT, "messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"model": GPT, "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ],
)
async def test_bad_openai_fields_are_named(gw: Running, body: dict[str, Any], field: str) -> None:
    status, data, _ = await _post(gw, "/v1/chat/completions", orjson.dumps(body))
    assert status == 400
    assert field in data["error"]["message"]
    assert gw.fake.requests == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": GPT, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": GPT, "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "role"),
        ({"model": GPT, "max_tokens": 5, "messages": [{"role": "user", "content": 5}]}, "content"),
        (
            {
                "model": GPT,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "w"}],
            },
            "server tool",
        ),
        (
            {
                "model": GPT,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "thinking": {"type": "enabled", "budget_tokens": 5},
            },
            "budget_tokens",
        ),
    ],
)
async def test_bad_anthropic_fields_are_named(
    gw: Running, body: dict[str, Any], field: str
) -> None:
    status, data, _ = await _post(gw, "/v1/messages", orjson.dumps(body))
    assert status == 400
    assert data["error"]["type"] == "invalid_request_error"
    assert field in data["error"]["message"]
    assert gw.fake.requests == []


_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.just(GPT) | _json,
        "messages": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "role": st.sampled_from(["user", "assistant", "tool", "x"]) | _json,
                    "content": _json,
                    "tool_calls": _json,
                    "tool_call_id": _json,
                },
            ),
            max_size=3,
        )
        | _json,
        "max_tokens": _json,
        "temperature": _json,
        "tools": _json,
        "tool_choice": _json,
        "stream": _json,
        "system": _json,
        "thinking": _json,
        "response_format": _json,
    },
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_bodies, anthropic=st.booleans())
async def test_any_body_gets_a_typed_answer_and_never_a_500(
    gw: Running, body: dict[str, Any], anthropic: bool
) -> None:
    path = "/v1/messages" if anthropic else "/v1/chat/completions"
    before = len(gw.fake.requests)
    status, data, _ = await _post(gw, path, orjson.dumps(body))
    assert status in (200, 400, 404), (status, data)
    if status != 200:
        assert isinstance(data, dict)
        assert len(gw.fake.requests) == before  # nothing was sent for a refused body


async def test_a_client_that_leaves_mid_stream_stops_the_upstream(gw: Running) -> None:
    gw.fake.push(Reply.ok("word " * 400, delay=0.0))
    body = orjson.dumps(
        {"model": GPT, "stream": True, "messages": [{"role": "user", "content": "long"}]}
    )
    async with aiohttp.ClientSession() as s:
        r = await s.post(gw.url + "/v1/chat/completions", data=body, headers=AUTH)
        await r.content.readany()
        r.close()  # hang up after the first bytes
    for _ in range(200):  # the gateway notices on its next write
        if gw.gateway.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert gw.gateway.in_flight == 0


async def test_an_upstream_error_mid_stream_ends_the_stream_in_band(gw: Running) -> None:
    gw.fake.push(
        Reply.cut_stream(after_chunks=2, text="a b c d e f"),
        *[Reply.cut_stream(after_chunks=2, text="a b c d e f") for _ in range(5)],
    )
    body = orjson.dumps(
        {"model": GPT, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    )
    status, data, headers = await _post(gw, "/v1/chat/completions", body)
    text = data.decode() if isinstance(data, bytes) else orjson.dumps(data).decode()
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert '"error"' in text
    assert text.rstrip().endswith("data: [DONE]")


async def test_trace_header_and_request_id(gw: Running) -> None:
    body = orjson.dumps({"model": GPT, "messages": [{"role": "user", "content": "x"}]})
    status, _, headers = await _post(gw, "/v1/chat/completions", body, {"x-llmrelay-trace": "1"})
    assert status == 200
    trace = orjson.loads(headers["x-llmrelay-trace"])
    assert trace[0]["outcome"] == "success"
    assert headers["x-request-id"].startswith("req_")


async def test_health_metrics_and_count_tokens(gw: Running) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.url + "/health/live") as r:
            assert r.status == 200
        async with s.get(gw.url + "/health/ready") as r:
            assert r.status == 200
            assert (await r.json())["checks"]["keys"] == "ok"
    body = orjson.dumps(
        {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello world"}]}
    )
    status, data, _ = await _post(gw, "/v1/messages/count_tokens", body)
    assert status == 200
    assert data["input_tokens"] > 0
    await _post(
        gw,
        "/v1/chat/completions",
        orjson.dumps({"model": GPT, "messages": [{"role": "user", "content": "x"}]}),
    )
    _, raw = await get(gw, "/metrics", AUTH)
    text = raw.decode()
    assert f'llmrelay_gateway_requests_total{{key="admin",model="{GPT}",status="200"}} 1' in text


async def test_answers_are_cached_per_team_not_across_teams(gw: Running) -> None:
    from llmrelay.reliability.cache import ResponseCache
    from llmrelay.state.memory import MemoryStore

    gw.gateway.client.engine.cache = ResponseCache(MemoryStore())
    a1, a2, b = await gw.key(team="a"), await gw.key(team="a"), await gw.key(team="b")
    body = orjson.dumps({"model": GPT, "messages": [{"role": "user", "content": "same"}]})
    for key in (a1, a2, b):
        status, _, _ = await _post(
            gw, "/v1/chat/completions", body, {"authorization": f"Bearer {key}"}
        )
        assert status == 200
    assert len(gw.fake.requests) == 2  # team a's second key hit team a's entry; team b did not


@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_finish_reason_that_is_an_object_is_not_a_500(
    gw: Running, stream: bool
) -> None:
    # finish_reason {"x": 1} raised TypeError (unhashable) in the OpenAI adapter: an untyped
    # failure instead of the answer.
    u = {"prompt_tokens": 7, "completion_tokens": 3}
    choice: dict[str, Any] = {"index": 0, "finish_reason": {"x": 1}}
    if stream:
        choice["delta"] = {"content": "hi"}
        frame = {"id": "c", "object": "chat.completion.chunk", "choices": [choice], "usage": u}
        raw = b"data: " + orjson.dumps(frame) + b"\n\ndata: [DONE]\n\n"
        gw.fake.push(Reply.raw(raw, content_type="text/event-stream"))
    else:
        choice["message"] = {"role": "assistant", "content": "hi"}
        gw.fake.push(Reply.raw(orjson.dumps({"id": "c", "choices": [choice], "usage": u})))
    body = {"model": GPT, "stream": stream, "messages": [{"role": "user", "content": "x"}]}
    status, data, _ = await _post(gw, "/v1/chat/completions", orjson.dumps(body))
    assert status == 200, data
    text = data.decode() if isinstance(data, bytes) else orjson.dumps(data).decode()
    assert '"hi"' in text
    assert '"error"' not in text
