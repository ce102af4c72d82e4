"""The shared state store (Redis) failing under a running gateway, over real sockets: a call its
key's budget (or rate limits failing closed) cannot check is a 503 ``state_store_unavailable``
with ``retry-after`` -- our own dependency is down, no provider failed -- in the shape of the
endpoint's API (Anthropic's ``overloaded_error`` on ``/v1/messages``), a plain 503 for a stream
refused before its first byte, and never the store's URL, host, port or password. A stream that
started before Redis went away finishes; once Redis is back, calls go through again."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from llmrelay.errors import (
    AllAttemptsFailedError,
    APIStatusError,
    InvalidRequestError,
    StateStoreError,
)
from llmrelay.gateway import anthropic_wire, openai_wire
from llmrelay.gateway.app import GatewaySettings
from llmrelay.gateway.wire import http_error
from llmrelay.testing.fake import FakeUpstream

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY
from ..redis_services import OwnRedis, own_redis  # noqa: F401  (a pytest fixture)
from .conftest import ADMIN, GPT, Running, chat_chunk, chat_upstream, post, serving

pytestmark = pytest.mark.services

_USER = [{"role": "user", "content": "x"}]
_CHAT = orjson.dumps({"model": GPT, "messages": _USER})
_MSGS = orjson.dumps({"model": GPT, "max_tokens": 5, "messages": _USER})
#: path, body, the error shape's API
_REQUESTS = [
    ("/v1/chat/completions", _CHAT, "openai"),
    (
        "/v1/chat/completions",
        orjson.dumps({"model": GPT, "messages": _USER, "stream": True}),
        "openai",
    ),
    ("/v1/responses", orjson.dumps({"model": GPT, "input": "x"}), "openai"),
    ("/v1/responses", orjson.dumps({"model": GPT, "input": "x", "stream": True}), "openai"),
    ("/v1/messages", _MSGS, "anthropic"),
    ("/v1/messages", orjson.dumps({**orjson.loads(_MSGS), "stream": True}), "anthropic"),
]
_PASSWORD = "pw-" + CANARY_KEY


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    """Each test reads the ``llmrelay.toml`` it writes (the file is loaded once a process)."""
    with isolated_config():
        yield


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening, until the test ends)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def _config(url: str, extra: str = "") -> None:
    """An ``llmrelay.toml`` in the test's working directory: state in Redis at ``url``, tried
    again at every call (``retry_interval = 0``: no waiting out a failure in the test)."""
    Path("llmrelay.toml").write_text(
        f'[state]\nbackend = "redis"\nurl = "{url}"\nretry_interval = 0\n' + extra
    )


def _assert_refused(
    status: int, raw: bytes, headers: Mapping[str, str], shape: str, *secrets: str
) -> None:
    assert status == 503, raw
    assert headers["content-type"].startswith("application/json")  # not a stream: no byte sent
    err = orjson.loads(raw)
    if shape == "anthropic":
        assert err["type"] == "error"
        assert err["error"]["type"] == "overloaded_error"  # as every 503 of the gateway
    else:
        assert err["error"]["code"] == "state_store_unavailable"
        assert err["error"]["type"] == "server_error"
    assert "shared state store" in err["error"]["message"]
    assert headers["retry-after"] == "1"
    shown = raw.decode() + "".join(f"{k}: {v}" for k, v in headers.items())
    for secret in ("redis://", "127.0.0.1", *secrets):
        assert secret not in shown, secret


async def _refused_everywhere(gw: Running, key: str, *secrets: str) -> None:
    for path, body, shape in _REQUESTS:
        status, raw, headers = await post(gw, path, body, auth={"authorization": f"Bearer {key}"})
        _assert_refused(status, raw, headers, shape, *secrets)
    assert gw.fake.requests == []


async def test_a_budget_the_down_store_cannot_check_is_503(
    fake: FakeUpstream, point_at: object, tmp_path: Path, closed_port: int
) -> None:
    point_at(fake)  # type: ignore[operator]
    _config(f"redis://:{_PASSWORD}@127.0.0.1:{closed_port}/0")
    settings = GatewaySettings(
        host="127.0.0.1", port=0, key_store=str(tmp_path / "keys.db"), admin_key=ADMIN
    )
    async with serving(settings, fake) as gw:
        key = await gw.key(budget_usd=5.0)
        await _refused_everywhere(gw, key, _PASSWORD, CANARY_KEY, str(closed_port))
        # A key without a budget or rate limits needs no store (rate limits fail open; the
        # breakers fall back to the process's own): it still calls.
        free = await gw.key()
        status, _, _ = await post(
            gw, "/v1/chat/completions", _CHAT, auth={"authorization": f"Bearer {free}"}
        )
        assert status == 200


async def test_rate_limits_failing_closed_through_fallbacks_are_503(
    fake: FakeUpstream, point_at: object, tmp_path: Path, closed_port: int
) -> None:
    """Rate limits are checked per candidate: every candidate of the chain refused by the
    store's failure (``AllAttemptsFailedError`` of ``StateStoreError``s) is still the store's
    503, not the generic 502."""
    point_at(fake)  # type: ignore[operator]
    _config(
        f"redis://:{_PASSWORD}@127.0.0.1:{closed_port}/0",
        extra='\n[limits]\non_store_error = "closed"\n\n'
        '[models.duo]\nprovider = "openai"\nmodel = "gpt-4.1-mini"\n'
        'fallbacks = ["anthropic/claude-haiku-4-5"]\n',
    )
    settings = GatewaySettings(
        host="127.0.0.1", port=0, key_store=str(tmp_path / "keys.db"), admin_key=ADMIN
    )
    async with serving(settings, fake) as gw:
        key = await gw.key(rpm=100)
        auth = {"authorization": f"Bearer {key}"}
        body = orjson.dumps({"model": "duo", "messages": _USER})
        status, raw, headers = await post(
            gw, "/v1/chat/completions", body, {"x-llmrelay-trace": "1"}, auth=auth
        )
        _assert_refused(status, raw, headers, "openai", _PASSWORD, str(closed_port))
        assert gw.fake.requests == []


def test_the_store_beats_an_upstream_failure_among_the_attempts() -> None:
    """A candidate the store refused was never tried: that is the telling failure, whichever
    came last; a caller's error still beats it."""
    store = StateStoreError("rate limits cannot be checked: redis://:secret@10.0.0.7:6379/0")
    upstream = APIStatusError("boom", status=500)
    for order in ([store, upstream], [upstream, store]):
        err = http_error(AllAttemptsFailedError("all failed", order))
        assert (err.status, err.code, err.retry_after) == (503, "state_store_unavailable", 1.0)
        assert "10.0.0.7" not in err.message
        assert "secret" not in err.message
    bad = InvalidRequestError("`temperature` must be 0-2", body={"param": "temperature"})
    assert http_error(AllAttemptsFailedError("x", [store, bad])).status == 400


def test_the_store_failing_after_the_first_byte_ends_the_stream_in_band() -> None:
    """In band, the same 503: OpenAI's error object, Anthropic's ``overloaded_error`` event."""
    err = http_error(StateStoreError("the budget cannot be checked: redis://:pw@10.0.0.7:6379/0"))
    frame = openai_wire.StreamWriter("chatcmpl-1", GPT, False).error(err)
    assert b'"code":"state_store_unavailable"' in frame
    assert b"10.0.0.7" not in frame
    frame = anthropic_wire.StreamWriter("msg_1", GPT).error(err)
    assert b"event: error" in frame
    assert b'"type":"overloaded_error"' in frame
    assert b"shared state store" in frame
    assert b"10.0.0.7" not in frame


async def test_redis_stopped_mid_run_then_back(
    fake: FakeUpstream,
    point_at: object,
    tmp_path: Path,
    own_redis: OwnRedis,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real Redis stopped under a running gateway: the stream that started before finishes
    (what it spent cannot be recorded: logged), the next calls are 503, and once Redis is back
    on its port calls go through again."""
    point_at(fake)  # type: ignore[operator]
    _config(own_redis.url)
    gate = asyncio.Event()
    opened = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        out = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await out.prepare(request)
        first = chat_chunk({"role": "assistant", "content": "Hel"})
        await out.write(b"data: " + orjson.dumps(first) + b"\n\n")
        opened.set()
        await gate.wait()
        for obj in (chat_chunk({"content": "lo"}), chat_chunk({}, finish="stop")):
            await out.write(b"data: " + orjson.dumps(obj) + b"\n\n")
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    settings = GatewaySettings(
        host="127.0.0.1", port=0, key_store=str(tmp_path / "keys.db"), admin_key=ADMIN
    )
    stream_body = orjson.dumps({"model": GPT, "messages": _USER, "stream": True})
    async with chat_upstream(handle, monkeypatch), serving(settings, fake) as gw:
        key = await gw.key(budget_usd=5.0)
        auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        async with (
            aiohttp.ClientSession() as s,
            s.post(gw.url + "/v1/chat/completions", data=stream_body, headers=auth) as r,
        ):
            assert r.status == 200
            first = await r.content.readuntil(b"\n\n")
            assert b"Hel" in first
            await opened.wait()
            own_redis.stop()
            gate.set()
            rest = (await r.read()).decode()
        assert '"lo"' in rest
        assert rest.endswith("data: [DONE]\n\n")
        assert '"error"' not in rest

        gate.clear()
        for path, body, shape in _REQUESTS[:2] + _REQUESTS[4:5]:
            status, raw, headers = await post(gw, path, body, auth=auth)
            _assert_refused(status, raw, headers, shape, str(own_redis.port))

        own_redis.start()  # the same port
        gate.set()
        status, raw, _ = await post(gw, "/v1/chat/completions", stream_body, auth=auth)
        assert status == 200, raw
        assert raw.endswith(b"data: [DONE]\n\n")
