"""What shared state costs: the response cache, the rate limiter, breakers and budgets.

    python benchmarks/state.py                       # 20,000 memory ops, 2,000 Redis ops
    python benchmarks/state.py --redis-url redis://127.0.0.1:6379/0 --json out.json

For each operation it prints the client CPU per operation (``time.process_time``), the wall time,
and -- for Redis -- the number of network round trips per operation, counted at the connection
(every ``send`` of one command or one pipeline is one round trip). By default a private
``redis-server`` is started on a free port (so other users of the local server do not disturb
the numbers); ``--redis-url`` uses an existing one (keys go under a unique prefix, deleted
afterwards).

Budgets (issue 5): a memory cache hit under 20 µs of CPU; a Redis cache hit one round trip; a
rate-limit acquire one round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from llmrelay.core.engine import CallOptions
from llmrelay.core.layers import CallContext
from llmrelay.providers.backends import HttpBackend, get_adapter
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.breaker_shared import SharedBreakerRegistry
from llmrelay.reliability.budgets_ledger import RedisLedger
from llmrelay.reliability.cache import ResponseCache
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.state import RedisStore
from llmrelay.state.memory import MemoryStore
from llmrelay.transport.native import default_transport
from llmrelay.types import ChatRequest, Message, Response, Usage, build_params

DEP = make_deployment("openai", "gpt-4.1-mini", api_key="sk-bench", base_url="http://x/v1")
REQ = ChatRequest(
    [Message("system", "Be brief."), Message("user", "What is the capital of France?")],
    build_params({"temperature": 0.2, "max_tokens": 64}),
)
ANSWER = Response(
    text="Paris is the capital of France.",
    finish_reason="stop",
    usage=Usage(24, 8),
    provider="openai",
    model="gpt-4.1-mini",
    id="chatcmpl-bench",
)


class RoundTrips:
    """Counts what redis.asyncio sends: one send = one round trip."""

    def __init__(self) -> None:
        self.n = 0
        from redis.asyncio.connection import AbstractConnection

        original = AbstractConnection.send_packed_command
        counter = self

        async def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            counter.n += 1
            await original(conn, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


async def measure(
    name: str, n: int, op: Callable[[], Awaitable[Any]], trips: RoundTrips | None
) -> dict[str, Any]:
    for _ in range(min(200, n)):  # warm up: connections, scripts, caches
        await op()
    before = trips.n if trips else 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        await op()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    row = {
        "operation": name,
        "n": n,
        "cpu_us": cpu / n * 1e6,
        "wall_us": wall / n * 1e6,
        "round_trips": (trips.n - before) / n if trips else 0.0,
    }
    return row


def ctx(**kw: Any) -> CallContext:
    return CallContext(CallOptions(**kw), "bench", 0.0)


async def cache_hit(cache: ResponseCache) -> Callable[[], Awaitable[None]]:
    """Store ``ANSWER`` for ``REQ``; return one hit: key + get + decode."""
    backend = HttpBackend(get_adapter("openai_chat"), default_transport())
    c = ctx()
    key = cache.key(REQ, DEP, backend, c)
    assert key is not None
    await cache.put(key, ANSWER, c)

    async def hit() -> None:
        k = cache.key(REQ, DEP, backend, c)
        assert k is not None
        assert await cache.get(k, c) is not None

    return hit


async def memory_rows(n: int) -> list[dict[str, Any]]:
    cache = ResponseCache(MemoryStore())
    hit = await cache_hit(cache)
    backend = HttpBackend(get_adapter("openai_chat"), default_transport())
    c = ctx()

    async def key_only() -> None:
        cache.key(REQ, DEP, backend, c)

    limiter = RateLimiter({"openai/gpt-4.1-mini": {"rpm": 1e12, "tpm": 1e15}})

    async def acquire_release() -> None:
        p = await limiter.acquire(DEP, REQ, c)
        await limiter.release(p, ANSWER, None, None)

    return [
        await measure("memory cache hit (key + get + decode)", n, hit, None),
        await measure("  of which: key (adapter request + SHA-256)", n, key_only, None),
        await measure("memory rate limit acquire + release", n, acquire_release, None),
    ]


async def redis_rows(url: str, n: int, trips: RoundTrips) -> list[dict[str, Any]]:
    prefix = f"llmrelay-bench:{uuid.uuid4().hex[:8]}:"
    store = RedisStore(url, prefix=prefix, timeout=5)
    hit = await cache_hit(ResponseCache(store))
    c = ctx()

    limiter = RateLimiter({"openai/gpt-4.1-mini": {"rpm": 1e12, "tpm": 1e15}}, store=store)
    scoped = RateLimiter(
        {"openai/gpt-4.1-mini": {"rpm": 1e12}, "user:*": {"rpm": 1e12}, "tenant:*": {"rpm": 1e12}},
        store=store,
    )
    cs = ctx(tags={"user": "u"}, tenant="t")

    async def acquire() -> None:
        await limiter.acquire(DEP, REQ, c)

    async def acquire3() -> None:
        await scoped.acquire(DEP, REQ, cs)

    permit = await limiter.acquire(DEP, REQ, c)

    async def release() -> None:
        await limiter.release(permit, ANSWER, None, None)

    breakers = SharedBreakerRegistry(store, failure_threshold=5, recovery_timeout=30)
    b = breakers.get(DEP.key)

    async def breaker() -> None:
        p = await b.aacquire()
        await b.aon_success(p)

    ledger = RedisLedger(store)
    entries = [("global|*|total|total", 1e12), ("user|u|day|2030-01-01", 1e12)]

    async def reserve() -> None:
        await ledger.reserve(entries, 0.0001)

    async def settle() -> None:
        await ledger.settle([k for k, _ in entries], 0.0001, 0.00005)

    rows = [
        await measure("redis cache hit (key + GET + decode)", n, hit, trips),
        await measure("redis rate limit acquire (1 scope)", n, acquire, trips),
        await measure("redis rate limit acquire (3 scopes, pipelined)", n, acquire3, trips),
        await measure("redis rate limit release", n, release, trips),
        await measure("redis breaker acquire + success", n, breaker, trips),
        await measure("redis budget reserve (2 budgets)", n, reserve, trips),
        await measure("redis budget settle", n, settle, trips),
    ]
    await store.clear(prefix)
    client = await store._client()
    keys = [k async for k in client.scan_iter(match="{" + prefix + "*")]
    if keys:
        await client.delete(*keys)
    await store.aclose()
    return rows


def start_private_redis() -> tuple[str, subprocess.Popen[bytes]] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return f"redis://127.0.0.1:{port}/0", proc
        except OSError:
            time.sleep(0.01)
    proc.kill()
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="memory operations per row")
    ap.add_argument("--redis-n", type=int, default=2_000, help="Redis operations per row")
    ap.add_argument("--redis-url", help="use this Redis instead of a private redis-server")
    ap.add_argument("--json", help="save the rows to this file")
    args = ap.parse_args()

    rows = asyncio.run(memory_rows(args.n))
    proc = None
    url = args.redis_url
    if url is None:
        started = start_private_redis()
        if started is not None:
            url, proc = started
    try:
        if url is not None:
            trips = RoundTrips()
            rows += asyncio.run(redis_rows(url, args.redis_n, trips))
        else:
            print("redis-server not found and no --redis-url: Redis rows skipped", file=sys.stderr)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()

    print(f"{'operation':<50} {'CPU µs':>9} {'wall µs':>9} {'round trips':>12}")
    for r in rows:
        rt = f"{r['round_trips']:.2f}" if r["operation"].startswith("redis") else "-"
        print(f"{r['operation']:<50} {r['cpu_us']:>9.1f} {r['wall_us']:>9.1f} {rt:>12}")
    hit = rows[0]["cpu_us"]
    print(f"\nmemory cache hit: {hit:.1f} µs CPU (budget 20 µs: {'ok' if hit < 20 else 'OVER'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
