"""The key store failing under a running gateway, over real sockets and a real PostgreSQL: the
caller gets a 503 that names the key store (our dependency is down, no provider failed), in the
shape of the endpoint's API, and never the store's DSN, password, host or port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from llmrelay.gateway.app import GatewaySettings
from llmrelay.gateway.keys import PostgresKeyStore, open_key_store
from llmrelay.testing.fake import FakeUpstream

from ..conftest import CANARY_KEY, FakeClock
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


#: The code of PostgreSQL's CancelRequest message (bytes 4-8 of it).
_CANCEL_REQUEST = (80877102).to_bytes(4, "big")


class _Dark:
    """A TCP front for the test PostgreSQL that a test can turn dark: while dark it accepts
    connections and reads what comes, but neither forwards nor answers anything (a host that
    drops packets: no refusal, every wait runs out), on new and open connections alike."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.dark = True
        #: Connections opened to the server (not counting the requests cancelling a query).
        self.connects = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> _Dark:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        await self._server.wait_closed()

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self._writers.add(cw)
        try:
            first = await cr.read(65536)
            if first[4:8] != _CANCEL_REQUEST:  # (asyncpg cancels a timed-out query so)
                self.connects += 1
            if self.dark:
                while await cr.read(65536):
                    pass
                return
            sr, sw = await asyncio.open_connection(*self.target)
            self._writers.add(sw)
            sw.write(first)
            await asyncio.gather(self._pipe(cr, sw), self._pipe(sr, cw))
        except OSError:
            pass
        finally:
            cw.close()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                if not self.dark:
                    w.write(data)
                    await w.drain()
        finally:
            w.close()


async def test_an_unreachable_postgres_key_store_fails_fast_and_recovers(
    fake: FakeUpstream,
    point_at: object,
    postgres_dsn: str,  # noqa: F811
    pg_schema: str,  # noqa: F811
) -> None:
    """A PostgreSQL host that drops packets: a request waits at most ``key_store_timeout``
    (not asyncpg's 60 s connect timeout) for its 503, and while the store stays unreachable
    the next requests get it at once, without a new connection each; once the host answers
    again (and the retry interval has passed: a fake clock), calls go through -- and again
    after the store goes dark under a pool that had connected."""
    point_at(fake)  # type: ignore[operator]
    await pg_execute(postgres_dsn, f"CREATE SCHEMA {pg_schema}")
    real = f"{postgres_dsn}?search_path={pg_schema}"
    writer = open_key_store(real)
    key, _ = await writer.create(name="k")
    await writer.close()
    clock = FakeClock()
    target = urlsplit(postgres_dsn)
    async with _Dark((target.hostname or "127.0.0.1", target.port or 5432)) as dark:
        dsn = real.replace(f"@{target.netloc.rpartition('@')[2]}/", f"@127.0.0.1:{dark.port}/")
        settings = GatewaySettings(
            host="127.0.0.1",
            port=0,
            key_store=dsn,
            admin_key=ADMIN,
            key_cache_ttl=0,
            key_store_timeout=0.2,
        )
        async with serving(settings, fake) as gw:
            assert gw.gateway.keys is not None
            store = gw.gateway.keys.store
            assert isinstance(store, PostgresKeyStore)
            store.clock = clock
            auth = {"authorization": f"Bearer {key}"}

            async def call() -> int:
                # Bounded far below asyncpg's default connect timeout (60 s).
                async with asyncio.timeout(30):
                    status, raw, got = await post(gw, "/v1/chat/completions", _CHAT, auth=auth)
                if status == 503:
                    assert orjson.loads(raw)["error"]["code"] == "key_store_unavailable"
                    assert got["retry-after"] == "1"
                    assert str(dark.port) not in raw.decode()
                return status

            for _ in range(2):  # down, then back
                assert await call() == 503
                tried = dark.connects
                assert tried >= 1
                assert [await call() for _ in range(5)] == [503] * 5
                assert dark.connects == tried  # failed at once: no connection tried
                dark.dark = False
                assert await call() == 503  # until the retry interval has passed
                clock.advance(1.0)
                assert await call() == 200
                assert await call() == 200
                dark.dark = True  # under the pool's open connections
                clock.advance(1.0)
