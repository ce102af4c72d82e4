"""The state stores (memory, SQLite, Redis) and choosing them from configuration."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import llmrelay
from llmrelay._sync import run_sync
from llmrelay.errors import ConfigFileError, ConfigurationError, StateStoreError
from llmrelay.reliability.breaker_shared import SharedBreakerRegistry
from llmrelay.settings.layers import build_layers, from_env
from llmrelay.settings.state import StateSettings, parse_state, settings_from_config
from llmrelay.state import MemoryStore, RedisStore, SQLiteStore
from llmrelay.state.base import check_ttl, redact_url
from llmrelay.state.open import open_store

from .. import redis_services
from ..config_isolation import isolated_config
from ..conftest import FakeClock
from ..redis_services import free_port

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url


# --------------------------------------------------------------------------- memory


async def test_memory_store_ttl_lru_and_prefix_clear() -> None:
    clock = FakeClock()
    s = MemoryStore(3, clock=clock)
    await s.set("a:1", b"one", 10)
    await s.set("a:2", b"two", None)
    await s.set("b:1", b"three", None)
    assert await s.get("a:1") == b"one"  # a:1 becomes most recently used
    await s.set("b:2", b"four", None)  # evicts the least recently used: a:2
    assert await s.get("a:2") is None
    assert await s.get("a:1") == b"one"
    clock.t += 10
    assert await s.get("a:1") is None  # expired exactly at its ttl
    assert await s.clear("b:") == 2
    assert len(s) == 0
    with pytest.raises(ConfigurationError, match="max_entries"):
        MemoryStore(0)


def test_ttl_validation() -> None:
    assert check_ttl(None) is None
    assert check_ttl(5) == 5.0
    for bad in (0, -1, float("nan"), float("inf"), True, "10"):
        with pytest.raises(ConfigurationError, match="ttl"):
            check_ttl(bad)


# --------------------------------------------------------------------------- SQLite


async def test_sqlite_store_is_shared_by_two_connections_and_expires(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    a = SQLiteStore(path, clock=clock)
    b = SQLiteStore(path, clock=clock)  # another process would open it the same way
    await a.set("k", b"v", 30)
    await a.set("forever", b"x", None)
    assert await b.get("k") == b"v"
    clock.t += 31
    assert await b.get("k") is None
    assert await b.get("forever") == b"x"
    await b.set("p:1", b"1", None)
    await b.set("p:2", b"2", None)
    assert await a.clear("p:") == 2
    await a.delete("forever")
    assert await b.get("forever") is None
    a.close()
    b.close()


async def test_sqlite_corrupted_file_is_moved_aside_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    garbage = b"this is not a database at all\x00\x01" * 200
    path.write_bytes(garbage)
    store = SQLiteStore(path)  # recovers: the bad file is kept next to the new one
    await store.set("k", b"v", None)
    assert await store.get("k") == b"v"
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1
    assert aside[0].read_bytes() == garbage
    store.close()


def test_sqlite_corrupted_file_raises_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StateStoreError, match="corrupted") as ei:
        SQLiteStore(path, on_corrupt="raise")
    assert str(path) in str(ei.value)
    assert path.read_bytes() == b"garbage" * 1000  # untouched


async def test_sqlite_never_touches_other_tables_or_newer_schemas(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE user_data (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO user_data (v) VALUES ('keep me')")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    await store.set("k", b"v", None)
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT v FROM user_data").fetchall() == [("keep me",)]
    conn.execute("UPDATE llmrelay_meta SET v = '99' WHERE k = 'schema'")
    conn.commit()
    conn.close()
    with pytest.raises(StateStoreError, match="newer llmrelay"):
        SQLiteStore(path)


def test_sqlite_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(StateStoreError, match="directory does not exist"):
        SQLiteStore(tmp_path / "missing" / "x.db")
    with pytest.raises(ConfigurationError, match="empty"):
        SQLiteStore("  ")
    with pytest.raises(ConfigurationError, match="on_corrupt"):
        SQLiteStore(tmp_path / "x.db", on_corrupt="ignore")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Redis


@pytest.mark.services
async def test_redis_store_get_set_ttl_delete(redis_store: RedisStore, redis_url: str) -> None:
    p = redis_store.prefix
    await redis_store.set(p + "a", b"1", 30)
    await redis_store.set(p + "b", b"2", None)
    assert await redis_store.get(p + "a") == b"1"
    ttl_ms = await redis_store.call("pttl", p + "a")
    assert 0 < ttl_ms <= 30_000
    assert await redis_store.call("pttl", p + "b") == -1  # no expiry
    await redis_store.delete(p + "a")
    assert await redis_store.get(p + "a") is None


@pytest.mark.services
async def test_redis_clear_deletes_only_its_prefix_even_with_glob_characters(
    redis_store: RedisStore,
) -> None:
    p = redis_store.prefix
    await redis_store.set(p + "ns[1]*:x", b"1", 60)
    await redis_store.set(p + "ns[1]*:y", b"2", 60)
    await redis_store.set(p + "ns11:x", b"3", 60)  # would match the unescaped glob
    for i in range(1200):  # more than one SCAN/UNLINK batch
        await redis_store.set(f"{p}big:{i}", b"", 60)
    assert await redis_store.clear(p + "ns[1]*:") == 2
    assert await redis_store.get(p + "ns11:x") == b"3"
    assert await redis_store.clear(p + "big:") == 1200


@pytest.mark.services
def test_redis_store_works_from_several_event_loops(redis_url: str, redis_prefix: str) -> None:
    """redis.asyncio connections belong to one loop: the store keeps one client per loop."""
    store = RedisStore(redis_url, prefix=redis_prefix)
    clients = []

    async def use(i: int) -> None:
        await store.set(f"{redis_prefix}{i}", str(i).encode(), 60)
        assert await store.get(f"{redis_prefix}{i}") == str(i).encode()
        clients.append(await store._client())
        await store.aclose()

    threads = [threading.Thread(target=asyncio.run, args=(use(i),)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    asyncio.run(use(3))
    run_sync(use(4))  # the sync bridge's own loop
    assert len(clients) == 5
    assert len({id(c) for c in clients}) == 5


def test_bad_redis_urls_are_configuration_errors_without_the_password() -> None:
    for bad, why in [
        ("http://127.0.0.1:6379", "redis://"),
        ("redis://127.0.0.1:notaport", "port"),
        ("redis://:s3cr3t-pw@127.0.0.1:notaport/0", "port"),
        ("redis://127.0.0.1:6379/zero", "database"),
        ("redis://", "no host"),
        ("", "non-empty"),
        ("unix://", "socket path"),
    ]:
        with pytest.raises(ConfigurationError, match=why) as ei:
            RedisStore(bad)
        assert "s3cr3t-pw" not in str(ei.value)
    assert redact_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert "pw" not in repr(RedisStore("redis://:pw@127.0.0.1:6379/0"))


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError, match=r"llmrelay\[redis\]"):
        RedisStore("redis://127.0.0.1:6379/0")


async def test_unreachable_redis_fails_fast_and_is_wrapped() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", retry_interval=60, timeout=0.5)
    with pytest.raises(StateStoreError, match=r"Redis at redis://127\.0\.0\.1") as ei:
        await store.get("k")
    assert not isinstance(ei.value.__cause__, StateStoreError)  # the raw cause is chained
    assert not store.available
    # while waiting out retry_interval the store answers at once, without the network
    with pytest.raises(StateStoreError, match="unavailable"):
        await store.set("k", b"v", None)
    await store.aclose()


def test_unreachable_redis_at_start_with_connect_now_is_a_typed_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StateStoreError, match="connect_now"):
        open_store(StateSettings("redis", url=url, connect_now=True, timeout=0.5))


async def test_unreachable_redis_without_connect_now_fails_open() -> None:
    """Documented: cache misses and breakers fall back to in-process; the call succeeds."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    client = llmrelay.Client(state=url, cache=True)
    assert isinstance(client.engine.breakers, SharedBreakerRegistry)
    model = llmrelay.TestModel(["one", "two"])
    assert (await client.achat(model, "hi")).text == "one"
    assert (await client.achat(model, "hi")).text == "two"  # no cache: the store is down
    cache = client.engine.cache
    assert cache is not None
    assert cache.stats.errors >= 1
    assert cache.stats.hits == 0
    await client.aclose()


# --------------------------------------------------------------------------- configuration


def test_parse_state_urls(tmp_path: Path) -> None:
    assert parse_state("memory") == StateSettings("memory")
    assert parse_state(f"sqlite:///{tmp_path}/s.db") == StateSettings(
        "sqlite", path=f"{tmp_path}/s.db"
    )
    assert parse_state("sqlite:///rel/s.db").path == "rel/s.db"
    assert parse_state("redis://h:1/0").backend == "redis"
    with pytest.raises(ConfigurationError, match="unknown state"):
        parse_state("postgres://x")
    with pytest.raises(ConfigurationError, match="needs a file"):
        parse_state("sqlite://")
    with pytest.raises(ConfigurationError, match="backend"):
        StateSettings("etcd")
    with pytest.raises(ConfigurationError, match="needs a url"):
        StateSettings("redis")
    with pytest.raises(ConfigurationError, match="timeout"):
        StateSettings("memory", timeout=0)


def _write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "llmrelay.toml"
    path.write_text(textwrap.dedent(text))
    monkeypatch.setenv("LLMRELAY_CONFIG", str(path))
    return path


def test_state_table_selects_sqlite_for_every_facade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "state.sqlite3"
    _write_config(
        tmp_path,
        monkeypatch,
        f"""
        [state]
        backend = "sqlite"
        path = "{db}"
        [cache]
        enabled = true
        ttl = 120
        """,
    )
    with isolated_config():
        a = llmrelay.Client()
        b = llmrelay.Client()
        assert a.engine.cache is not None
        assert b.engine.cache is not None
        assert a.engine.cache.store is b.engine.cache.store  # one store per process
        assert isinstance(a.engine.cache.store, SQLiteStore)
        assert a.engine.cache.ttl == 120
        model = llmrelay.TestModel(["cached answer"], name="sq")
        assert a.chat(model, "q").text == "cached answer"
        r = b.chat(model, "q")
        assert r.cache_hit
        assert r.text == "cached answer"
        manager = llmrelay.LLMManager()
        assert manager._cache is not None
        assert manager._cache.store is a.engine.cache.store


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[state]\nbackend = "etcd"\n', "backend"),
        ("[state]\ntimeout = -1\n", "timeout"),
        ('[state]\nbackend = "redis"\n', "needs a url"),
        ("[state]\nbogus = 1\n", "unknown key"),
        ('[state]\nconnect_now = "yes"\n', "connect_now must be bool"),
        ("[cache]\nenabled = true\nttl = 0\n", "ttl"),
        ('[limits."openai/gpt-4o-mini"]\nrpm = 0\n', "rpm=0"),
        ('[limits."openai/gpt-4o-mini"]\nrpm = -5\n', "greater than 0"),
        ("[budgets]\nunknown_cost = 'deny'\n", "budgets.limit"),
    ],
)
def test_bad_state_tables_are_config_file_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, match: str
) -> None:
    _write_config(tmp_path, monkeypatch, text)
    with isolated_config(), pytest.raises(ConfigFileError, match=match) as ei:
        llmrelay.Client()
    assert "llmrelay.toml" in str(ei.value)


@pytest.mark.services
def test_redis_url_env_alone_makes_every_facade_share_state(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMRELAY_REDIS_URL", redis_url)
    with isolated_config():
        settings = settings_from_config()
        assert settings == StateSettings("redis", url=redis_url)
        client = llmrelay.Client()
        assert isinstance(client.engine.breakers, SharedBreakerRegistry)
        assert client.engine.cache is None  # caching stays opt-in, as in LiteLLM
        assert isinstance(client.engine.breakers.store, RedisStore)
        store = client.engine.breakers.store
        manager = llmrelay.LLMManager()
        assert isinstance(manager.engine.breakers, SharedBreakerRegistry)
        assert manager._cache is not None
        assert manager._cache.store is store
        from llmrelay.seeds.seed001_client import LLMClient

        assert isinstance(LLMClient().client.engine.breakers, SharedBreakerRegistry)
        from llmrelay.client import default_client

        monkeypatch.setattr("llmrelay.client._default", None)
        assert isinstance(default_client().engine.breakers, SharedBreakerRegistry)
        cached = llmrelay.Client(cache=True)
        assert cached.engine.cache is not None
        assert cached.engine.cache.store is store
        env_layers = from_env()
        assert env_layers.store is store


def test_client_rejects_state_options_with_an_engine() -> None:
    engine = llmrelay.Engine()
    with pytest.raises(ConfigurationError, match="engine"):
        llmrelay.Client(engine=engine, cache=True)
    with pytest.raises(ConfigurationError, match="cache must be"):
        llmrelay.Client(cache="yes")
    with pytest.raises(ConfigurationError, match="limits must be"):
        llmrelay.Client(limits=[1, 2])
    with pytest.raises(ConfigurationError, match="state must be"):
        build_layers(state=42)  # type: ignore[arg-type]
