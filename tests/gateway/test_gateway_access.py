"""Who may read what, over real sockets: ``/metrics`` behind the admin key, keyless mode taking
the key every SDK sends, and large bodies parsed off the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from llmrelay.errors import ConfigurationError
from llmrelay.gateway.app import GatewaySettings
from llmrelay.gateway.server import settings_from
from llmrelay.testing.fake import FakeUpstream

from ..conftest import CANARY_KEY
from .conftest import ADMIN, AUTH, CLAUDE, GPT, Running, ant, get, oai, serving

# --------------------------------------------------------------------------- /metrics


async def test_metrics_need_the_admin_key_when_one_is_set(gw: Running) -> None:
    key = await gw.key()
    await oai(gw).chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])
    for headers in ({}, {"authorization": f"Bearer {key}"}, {"authorization": "Bearer nope"}):
        status, raw = await get(gw, "/metrics", headers)
        assert status == 401, raw
        assert b"llmrelay_gateway" not in raw
        assert b"admin key" in raw
    status, raw = await get(gw, "/metrics", AUTH)
    assert status == 200
    assert f'key="admin",model="{GPT}",status="200"}} 1'.encode() in raw


async def test_metrics_can_be_made_public(
    fake: FakeUpstream, point_at: object, tmp_path: Path
) -> None:
    point_at(fake)  # type: ignore[operator]
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        key_store=str(tmp_path / "k.db"),
        admin_key=ADMIN,
        metrics_public=True,
    )
    async with serving(settings, fake) as gw:
        status, raw = await get(gw, "/metrics")
    assert status == 200
    assert b"llmrelay_gateway_in_flight 0" in raw


async def test_metrics_are_open_in_keyless_mode(open_gw: Running) -> None:
    status, raw = await get(open_gw, "/metrics")
    assert status == 200
    assert b"llmrelay_gateway_in_flight" in raw


def test_metrics_public_must_be_a_bool() -> None:
    from llmrelay.errors import ConfigurationError

    s, _ = settings_from({"metrics_public": True})
    assert s.metrics_public is True
    with pytest.raises(ConfigurationError, match="metrics_public"):
        settings_from({"metrics_public": "yes"})


# --------------------------------------------------------------------------- keyless mode


async def test_keyless_mode_takes_whatever_key_the_openai_sdk_sends(open_gw: Running) -> None:
    c = await oai(open_gw, "sk-anything-the-developer-had").chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": "hi"}]
    )
    assert c.choices[0].message.content == "Echo: hi"
    (sent,) = open_gw.fake.requests
    assert sent.headers.get("authorization") == f"Bearer {CANARY_KEY}"
    assert "sk-anything" not in str(sent.headers)


async def test_keyless_mode_takes_whatever_key_the_anthropic_sdk_sends(
    open_gw: Running,
) -> None:
    async with ant(open_gw, "dummy").messages.stream(
        model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "flow"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "Echo: flow"
    (sent,) = open_gw.fake.requests
    assert sent.headers.get("x-api-key") == CANARY_KEY
    assert "dummy" not in str(sent.headers)


# --------------------------------------------------------------------------- large bodies


async def test_a_large_body_is_parsed_while_other_requests_are_answered(
    gw: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The large request's parse waits (in its thread) until a small request was answered:
    were it parsed on the event loop, the small one could not be served and the wait would
    run out."""
    from llmrelay.gateway import anthropic_wire
    from llmrelay.gateway.app import THREAD_PARSE_BYTES

    real = anthropic_wire.parse_messages_request
    parsing, answered = threading.Event(), threading.Event()
    seen: list[bool] = []

    def parse(body: Any) -> Any:
        if len(str(body.get("messages"))) > THREAD_PARSE_BYTES:
            parsing.set()
            seen.append(answered.wait(20))
        return real(body)

    monkeypatch.setattr(gw.gateway, "_parse_messages", parse)
    big = [{"role": "user", "content": "y" * (THREAD_PARSE_BYTES + 10)}]
    client = ant(gw)
    task = asyncio.create_task(client.messages.create(model=GPT, max_tokens=5, messages=big))
    assert await asyncio.to_thread(parsing.wait, 20)
    small = await client.messages.create(
        model=GPT, max_tokens=5, messages=[{"role": "user", "content": "small"}]
    )
    answered.set()
    assert small.content[0].type == "text"
    done = await task
    assert seen == [True]
    assert done.stop_reason == "end_turn"


async def test_count_tokens_of_a_large_body(gw: Running) -> None:
    from llmrelay.gateway.app import THREAD_PARSE_BYTES

    n = await ant(gw).messages.count_tokens(
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": "word " * (THREAD_PARSE_BYTES // 4)}],
    )
    assert n.input_tokens > THREAD_PARSE_BYTES // 8


async def test_a_large_chunked_body_is_counted_off_the_event_loop(
    gw: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunked body has no Content-Length: its size still decides where it is counted."""
    from llmrelay.catalog import tokens
    from llmrelay.gateway.app import THREAD_PARSE_BYTES

    real = tokens.count_message_tokens
    on_loop: list[bool] = []

    def count(*args: Any, **kw: Any) -> int:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(*args, **kw)

    monkeypatch.setattr(tokens, "count_message_tokens", count)
    body = orjson.dumps(
        {
            "model": "claude-haiku-4-5",
            "messages": [{"role": "user", "content": "word " * (THREAD_PARSE_BYTES // 4)}],
        }
    )

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    async with (
        aiohttp.ClientSession() as s,
        s.post(gw.url + "/v1/messages/count_tokens", data=chunks(), headers=AUTH) as r,
    ):
        assert r.status == 200, await r.text()
        assert "content-length" not in r.request_info.headers
    assert on_loop == [False]


def test_the_event_loop_is_asyncio_or_uvloop() -> None:
    assert settings_from({})[0].loop == "asyncio"
    assert settings_from({"loop": "uvloop"})[0].loop == "uvloop"
    with pytest.raises(ConfigurationError, match="loop must be"):
        settings_from({"loop": "trio"})
