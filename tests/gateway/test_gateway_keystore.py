"""The key store failing under a running gateway, over real sockets and a real PostgreSQL: the
caller gets a 503 that names the key store (our dependency is down, no provider failed), in the
shape of the endpoint's API, and never the store's DSN, password, host or port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from llmrelay.gateway.app import GatewaySettings
from llmrelay.testing.fake import FakeUpstream

from ..conftest import CANARY_KEY
from ..services import pg_execute, pg_schema, postgres_dsn  # noqa: F401  (pytest fixtures)
from .conftest import ADMIN, GPT, Running, post, serving

pytestmark = pytest.mark.services

_CHAT = orjson.dumps({"model": GPT, "messages": [{"role": "user", "content": "x"}]})
_MSGS = orjson.dumps(
    {"model": GPT, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
)
#: path, body, the error shape's API
_REQUESTS = [
    ("/v1/chat/completions", _CHAT, "openai"),
    ("/v1/responses", orjson.dumps({"model": GPT, "input": "x"}), "openai"),
    ("/v1/embeddings", orjson.dumps({"model": "text-embedding-3-small", "input": "x"}), "openai"),
    ("/v1/messages", _MSGS, "anthropic"),
    ("/v1/messages/count_tokens", _MSGS, "anthropic"),
    ("/v1/models", b"", "openai"),
]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening, until the test ends)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


async def _refused_everywhere(gw: Running, key: str, *secrets: str) -> None:
    for path, body, shape in _REQUESTS:
        headers = {"authorization": f"Bearer {key}"}
        if path == "/v1/models":
            async with (
                aiohttp.ClientSession() as s,
                s.get(gw.url + path, headers=headers) as r,
            ):
                status, raw, got = r.status, await r.read(), r.headers.copy()
        else:
            status, raw, got = await post(gw, path, body, auth=headers)
        assert status == 503, (path, raw)
        err = orjson.loads(raw)
        if shape == "anthropic":
            assert err["type"] == "error"
            assert err["error"]["type"] == "overloaded_error"  # as every 503 of the gateway
            message = err["error"]["message"]
        else:
            assert err["error"]["code"] == "key_store_unavailable"
            message = err["error"]["message"]
        assert "key store" in message
        assert got["retry-after"] == "1"
        shown = raw.decode() + "".join(f"{k}: {v}" for k, v in got.items())
        for secret in secrets:
            assert secret not in shown, (path, secret)
    assert gw.fake.requests == []


async def test_a_postgres_key_store_that_is_down_is_503(
    fake: FakeUpstream, point_at: object, closed_port: int
) -> None:
    point_at(fake)  # type: ignore[operator]
    dsn = f"postgresql://keeper:{CANARY_KEY}@127.0.0.1:{closed_port}/keysdb"
    settings = GatewaySettings(host="127.0.0.1", port=0, key_store=dsn, admin_key=ADMIN)
    async with serving(settings, fake) as gw:
        await _refused_everywhere(
            gw, "sk-relay-" + "a" * 43, CANARY_KEY, str(closed_port), "keeper", "keysdb"
        )
        # The admin key needs no store: it still calls.
        status, _, _ = await post(gw, "/v1/chat/completions", _CHAT)
        assert status == 200


async def test_a_postgres_key_store_that_errors_is_503(
    fake: FakeUpstream,
    point_at: object,
    postgres_dsn: str,  # noqa: F811
    pg_schema: str,  # noqa: F811
) -> None:
    point_at(fake)  # type: ignore[operator]
    await pg_execute(postgres_dsn, f"CREATE SCHEMA {pg_schema}")
    dsn = f"{postgres_dsn}?search_path={pg_schema}"
    settings = GatewaySettings(
        host="127.0.0.1", port=0, key_store=dsn, admin_key=ADMIN, key_cache_ttl=0
    )
    async with serving(settings, fake) as gw:
        key = await gw.key()
        status, _, _ = await post(
            gw, "/v1/chat/completions", _CHAT, auth={"authorization": f"Bearer {key}"}
        )
        assert status == 200
        # The table goes away under the running gateway: every lookup now fails.
        await pg_execute(
            postgres_dsn, f"ALTER TABLE {pg_schema}.llmrelay_keys RENAME TO llmrelay_gone"
        )
        gw.fake.requests.clear()
        await _refused_everywhere(gw, key, pg_schema, "llmrelay_keys", "127.0.0.1:5432")


async def test_a_sqlite_key_store_that_errors_is_503(
    fake: FakeUpstream, point_at: object, tmp_path: Path
) -> None:
    import sqlite3

    point_at(fake)  # type: ignore[operator]
    path = str(tmp_path / "keys.db")
    settings = GatewaySettings(
        host="127.0.0.1", port=0, key_store=path, admin_key=ADMIN, key_cache_ttl=0
    )
    async with serving(settings, fake) as gw:
        key = await gw.key()
        db = sqlite3.connect(path)
        db.execute("DROP TABLE llmrelay_keys")
        db.commit()
        db.close()
        await _refused_everywhere(gw, key, str(tmp_path))
