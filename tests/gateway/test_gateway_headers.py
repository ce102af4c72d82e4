"""What every gateway answer carries, over real sockets: ``x-request-id`` on every response
(Anthropic's ``request-id`` too on its endpoints, streamed or not), and the attempt trace asked
for with ``x-llmrelay-trace: 1`` on failed calls and on streams, at most 4 KB of it however
long the chain of fallbacks and their reasons."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import aiohttp
import orjson
import pytest

from llmrelay.core.trace import Attempt
from llmrelay.gateway.app import GatewaySettings
from llmrelay.gateway.observe import TRACE_HEADER_BYTES, TRACE_REASON_CHARS, trace_headers
from llmrelay.testing.fake import FakeUpstream, Reply

from ..config_isolation import isolated_config
from .conftest import ADMIN, AUTH, CLAUDE, GPT, Running, post, serving

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


# --------------------------------------------------------------------------- the trace's size


def _attempt(i: int, reason_chars: int) -> Attempt:
    return Attempt(
        f"openai/gpt-fallback-{i}",
        "error",
        error="ServerError",
        status=500,
        latency_s=0.25,
        reason=f"attempt {i}: " + "r" * reason_chars,
    )


@pytest.mark.parametrize(("n", "reason_chars"), [(1, 50_000), (12, 800), (300, 20)])
def test_the_trace_header_is_capped(n: int, reason_chars: int) -> None:
    attempts = [_attempt(i, reason_chars) for i in range(n)]
    value = trace_headers(_TRACE, attempts)["x-llmrelay-trace"]
    assert len(value.encode()) <= TRACE_HEADER_BYTES
    trace = orjson.loads(value)
    shown = [a for a in trace if a["outcome"] != "omitted"]
    assert shown, trace  # the first attempts are kept ...
    assert [a["deployment"] for a in shown] == [
        f"openai/gpt-fallback-{i}" for i in range(len(shown))
    ]
    for a in shown:  # ... each reason cut
        assert a["reason"].startswith(a["deployment"].replace("openai/gpt-fallback-", "attempt "))
        assert len(a["reason"]) <= TRACE_REASON_CHARS
    if len(shown) < n:  # ... and what did not fit is counted
        assert trace[-1]["outcome"] == "omitted"
        assert trace[-1]["number"] == n - len(shown)
        assert trace[-1]["deployment"] == f"+{n - len(shown)} more"
    else:
        assert len(trace) == n


def test_a_short_trace_is_whole() -> None:
    attempts = [_attempt(i, 40) for i in range(3)]
    trace = orjson.loads(trace_headers(_TRACE, attempts)["x-llmrelay-trace"])
    assert [a["reason"] for a in trace] == [a.reason for a in attempts]


@pytest.fixture
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMRELAY_CONFIG", raising=False)
    with isolated_config():
        yield


@pytest.mark.usefixtures("_isolated")
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_long_fallback_chains_trace_fits_a_header(
    fake: FakeUpstream,
    point_at: Callable[[FakeUpstream], FakeUpstream],
    tmp_path: Path,
    path: str,
    stream: bool,
) -> None:
    # 40 candidates with long names, each failing: unbounded, the trace would be ~12 KB, past
    # the 8,190 bytes a client (aiohttp's here) takes for a header line -- the answer is lost.
    fallbacks = [f"openai/gpt-fallback-{'x' * 120}-{i}" for i in range(40)]
    Path("llmrelay.toml").write_text(
        "[defaults]\nretries = 0\n\n"
        f'[models.chain]\nprovider = "openai"\nmodel = "gpt-4.1-mini"\n'
        f"fallbacks = {orjson.dumps(fallbacks).decode()}\n"
    )
    settings = GatewaySettings(
        host="127.0.0.1", port=0, key_store=str(tmp_path / "keys.db"), admin_key=ADMIN
    )
    async with serving(settings, point_at(fake)) as gw:
        fake.push(*[Reply.error(500, "boom")] * 41)
        body = {"model": "chain", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        status, raw, headers = await post(
            gw, path, orjson.dumps({**body, "stream": stream}), _TRACE
        )
        assert status == 502, raw
        value = headers["x-llmrelay-trace"]
        assert len(value.encode()) <= TRACE_HEADER_BYTES
        trace = orjson.loads(value)
        assert trace[-1]["outcome"] == "omitted"
        assert len(trace) - 1 + trace[-1]["number"] == len(fake.requests) == 41
