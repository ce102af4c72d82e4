"""Fixtures for tests on Redis: the local server (127.0.0.1:6379) and private ones.

Tests using the shared server get a unique key prefix and every key under it is deleted
afterwards. When Redis cannot be reached they are skipped -- or FAIL when
``LLMRELAY_REQUIRE_SERVICES=1`` (see ``services.py``). Tests that stop and restart Redis run
their own ``redis-server`` on a free port (never the shared one). Import what you use::

    from .redis_services import own_redis, redis_prefix, redis_store, redis_url  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from llmrelay.state.redis_store import RedisStore

from .services import unavailable

#: The local server of the dev and CI machines; override for another one.
REDIS_URL = os.environ.get("LLMRELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_state: dict[str, str | None] = {}


def _check() -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install 'llmrelay[redis]')"
    try:
        c = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            c.ping()
        finally:
            c.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of the local Redis, checked once per session."""
    if "error" not in _state:
        _state["error"] = _check()
    error = _state["error"]
    if error is not None:
        unavailable(f"Redis at {REDIS_URL}", error)
    return REDIS_URL


def delete_prefix(url: str, prefix: str) -> None:
    import redis

    c = redis.Redis.from_url(url)
    try:
        for pattern in (f"{prefix}*", f"{{{prefix}*"):
            keys = list(c.scan_iter(match=pattern, count=1000))
            if keys:
                c.delete(*keys)
    finally:
        c.close()


def count_prefix(url: str, prefix: str) -> int:
    import redis

    c = redis.Redis.from_url(url)
    try:
        return sum(
            1 for p in (f"{prefix}*", f"{{{prefix}*") for _ in c.scan_iter(match=p, count=1000)
        )
    finally:
        c.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"llmrelay-test:{os.getpid()}:{uuid.uuid4().hex[:10]}:"
    try:
        yield prefix
    finally:
        delete_prefix(redis_url, prefix)


@pytest.fixture
async def redis_store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url, prefix=redis_prefix, retry_interval=0)
    try:
        yield store
    finally:
        await store.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A private ``redis-server`` (no persistence) that a test may stop and restart."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.005)
        self.stop()
        pytest.fail(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    """A private Redis server on a free port, started; stopped at the end whatever happens."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server", "the redis-server binary is not on PATH")
    server = OwnRedis(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()
