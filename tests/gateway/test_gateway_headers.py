"""What every gateway answer carries, over real sockets: ``x-request-id`` on every response
(Anthropic's ``request-id`` too on its endpoints, streamed or not), and the attempt trace asked
for with ``x-llmrelay-trace: 1`` on failed calls and on streams."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
import orjson
import pytest

from llmrelay.testing.fake import Reply

from .conftest import AUTH, CLAUDE, GPT, Running, post

_TRACE = {"x-llmrelay-trace": "1"}
_MSGS = {"model": CLAUDE, "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}


def _body(path: str, stream: bool = False) -> bytes:
    if path == "/v1/messages":
        return orjson.dumps({**_MSGS, "stream": stream})
    if path == "/v1/responses":
        return orjson.dumps({"model": GPT, "input": "x", "stream": stream})
    if path == "/v1/embeddings":
        return orjson.dumps({"model": "openai/text-embedding-3-small", "input": "x"})
    return orjson.dumps(
        {"model": GPT, "messages": [{"role": "user", "content": "x"}], "stream": stream}
    )


def _request_ids(path: str, headers: Mapping[str, str]) -> None:
    rid = headers.get("x-request-id", "")
    assert rid.startswith("req_"), (path, dict(headers))
    if path.startswith("/v1/messages"):
        assert headers.get("request-id") == rid, (path, dict(headers))


async def _get(gw: Running, path: str) -> tuple[int, Mapping[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(gw.url + path, headers=AUTH) as r:
        await r.read()
        return r.status, r.headers.copy()


@pytest.mark.parametrize(
    "path", ["/health/live", "/health/ready", "/metrics", "/v1/models", "/v1/nothing-here"]
)
async def test_every_get_carries_a_request_id(gw: Running, path: str) -> None:
    _, headers = await _get(gw, path)
    _request_ids(path, headers)


@pytest.mark.parametrize(
    ("path", "stream"),
    [
        ("/v1/chat/completions", False),
        ("/v1/chat/completions", True),
        ("/v1/responses", False),
        ("/v1/responses", True),
        ("/v1/embeddings", False),
        ("/v1/messages", False),
        ("/v1/messages", True),
        ("/v1/messages/count_tokens", False),
    ],
)
async def test_every_post_carries_a_request_id(gw: Running, path: str, stream: bool) -> None:
    status, raw, headers = await post(gw, path, _body(path, stream))
    assert status == 200, raw
    _request_ids(path, headers)
    # A refused request too (no key): in the shape of the endpoint's API.
    status, raw, headers = await post(gw, path, _body(path, stream), auth={})
    assert status == 401, raw
    _request_ids(path, headers)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
async def test_a_failed_call_carries_its_attempt_trace(
    gw: Running, path: str, stream: bool
) -> None:
    gw.fake.push(*[Reply.error(500, "boom")] * 10)
    status, raw, headers = await post(gw, path, _body(path, stream), _TRACE)
    assert status == 502, raw
    _request_ids(path, headers)
    trace = orjson.loads(headers["x-llmrelay-trace"])
    assert len(trace) >= 2  # retried, and each attempt says how it ended
    assert {a["outcome"] for a in trace} == {"error"}
    assert {a["status"] for a in trace} == {500}
    # Not asked for: not sent.
    gw.fake.push(*[Reply.error(500, "boom")] * 10)
    status, _, headers = await post(gw, path, _body(path, stream))
    assert status == 502
    assert "x-llmrelay-trace" not in headers


async def test_a_failed_embedding_carries_its_attempt_trace(gw: Running) -> None:
    gw.fake.push(*[Reply.error(500, "boom")] * 10)
    status, raw, headers = await post(gw, "/v1/embeddings", _body("/v1/embeddings"), _TRACE)
    assert status == 502, raw
    assert {a["outcome"] for a in orjson.loads(headers["x-llmrelay-trace"])} == {"error"}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
async def test_a_stream_carries_the_attempts_up_to_its_first_byte(gw: Running, path: str) -> None:
    # One failed attempt, then a stream: the header (sent with the first byte) shows both.
    gw.fake.push(Reply.error(500, "boom"), Reply.ok("streamed"))
    status, raw, headers = await post(gw, path, _body(path, True), _TRACE)
    assert status == 200, raw
    assert headers["content-type"].startswith("text/event-stream")
    trace = orjson.loads(headers["x-llmrelay-trace"])
    assert [(a["outcome"], a["status"]) for a in trace] == [("error", 500), ("success", None)]
    _request_ids(path, headers)
