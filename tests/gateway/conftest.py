"""A gateway on a real port in the test's loop, in front of the fake upstream, and what the
gateway tests share to talk to it: raw posts (``post``) and the official SDKs (``oai``,
``ant``)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from aiohttp import web
from hypothesis import strategies as st

from llmrelay.gateway.app import Gateway, GatewaySettings
from llmrelay.gateway.server import build_gateway
from llmrelay.testing.fake import FakeUpstream

ADMIN = "sk-admin-test-0d9c8b7a6f5e4d3c"
AUTH = {"authorization": f"Bearer {ADMIN}"}
GPT = "openai/gpt-4.1-mini"
CLAUDE = "anthropic/claude-haiku-4-5"

#: Any JSON value (small): what a hostile client may put in any field.
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@dataclass
class Running:
    gateway: Gateway
    url: str
    fake: FakeUpstream
    #: SDK clients a test opened (closed after it).
    clients: list[Any] = field(default_factory=list)

    async def key(self, **policy: Any) -> str:
        assert self.gateway.key_store is not None
        secret, _ = await self.gateway.key_store.create(**{"name": "test", **policy})
        return secret


@asynccontextmanager
async def serving(
    settings: GatewaySettings, fake: FakeUpstream, *, log: bool = False
) -> AsyncIterator[Running]:
    """A gateway built from ``settings`` listening on a free loopback port (``log``: with the
    request log ``LLMRELAY_LOG_*`` configures)."""
    gateway = build_gateway(settings, log=log)
    runner = web.AppRunner(gateway.app(), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    running = Running(gateway, f"http://127.0.0.1:{port}", fake)
    try:
        yield running
    finally:
        for c in running.clients:
            await c.close()
        await runner.cleanup()


@pytest.fixture
def gateway_settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        host="127.0.0.1", port=0, key_store=str(tmp_path / "keys.db"), admin_key=ADMIN
    )


@pytest.fixture
async def gw(
    fake: FakeUpstream,
    point_at: Callable[[FakeUpstream], FakeUpstream],
    gateway_settings: GatewaySettings,
) -> AsyncIterator[Running]:
    point_at(fake)
    async with serving(gateway_settings, fake) as running:
        yield running


@pytest.fixture
async def open_gw(
    fake: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> AsyncIterator[Running]:
    """Keyless mode: no admin key, no key store, loopback only."""
    point_at(fake)
    async with serving(GatewaySettings(host="127.0.0.1", port=0), fake) as running:
        yield running


async def post(
    gw: Running,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    auth: dict[str, str] = AUTH,
) -> tuple[int, bytes, Mapping[str, str]]:
    """POST ``body`` with the admin key (``auth``; ``headers`` add to or replace it); the
    status, body and (case-insensitive) headers of the answer."""
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.url + path,
            data=io.BytesIO(body),
            headers={**auth, "content-type": "application/json", **(headers or {})},
        ) as r,
    ):
        return r.status, await r.read(), r.headers.copy()


async def get(gw: Running, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.get(gw.url + path, headers=headers) as r:
        return r.status, await r.read()


def oai(gw: Running, key: str = ADMIN) -> openai.AsyncOpenAI:
    """An ``openai.AsyncOpenAI`` pointed at the gateway (closed after the test)."""
    c = openai.AsyncOpenAI(api_key=key, base_url=gw.url + "/v1", max_retries=0)
    gw.clients.append(c)
    return c


def ant(gw: Running, key: str = ADMIN) -> anthropic.AsyncAnthropic:
    """An ``anthropic.AsyncAnthropic`` pointed at the gateway (closed after the test)."""
    c = anthropic.AsyncAnthropic(api_key=key, base_url=gw.url, max_retries=0)
    gw.clients.append(c)
    return c


# --------------------------------------------------------------------------- upstream streams


@asynccontextmanager
async def chat_upstream(
    handle: Callable[[web.Request], Any], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """``handle`` serving ``POST /v1/chat/completions`` on a free loopback port, and
    ``OPENAI_BASE_URL`` pointing at it (for hand-made upstream streams)."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    try:
        yield
    finally:
        await runner.cleanup()


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """One Chat Completions stream chunk (for hand-made upstream streams)."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4.1-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def chat_answer(content: str, usage: dict[str, int]) -> dict[str, Any]:
    """A whole Chat Completions answer (for hand-made upstreams)."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4.1-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def chat_sse(*objs: Any) -> bytes:
    """``objs`` as a Chat Completions SSE body, ``[DONE]`` last."""
    return b"".join(b"data: " + orjson.dumps(o) + b"\n\n" for o in objs) + b"data: [DONE]\n\n"


def named_sse(*events: dict[str, Any]) -> bytes:
    """``events`` as named SSE events (Anthropic, Responses): ``event: <type>``."""
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )
