"""Two OS processes on one Redis, each with hundreds of concurrent calls through the
gateway's limiter (prepared slots, the key's own scope): together they admit exactly a key's
rpm, and never more calls in flight than a deployment's ``concurrent``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llmrelay

from .. import redis_services

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_url = redis_services.redis_url

_WORKER = """
import asyncio, sys
from llmrelay.core.engine import CallOptions
from llmrelay.core.layers import CallContext
from llmrelay.errors import RateLimitedError
from llmrelay.gateway.keys import VirtualKey
from llmrelay.gateway.policy import KeyRateLimiter
from llmrelay.providers.table import make_deployment
from llmrelay.state import RedisStore
from llmrelay.types import ChatRequest, Message, build_params

async def main(url, prefix):
    store = RedisStore(url, prefix=prefix, retry_interval=0)
    limiter = KeyRateLimiter({"openai/gpt-4o": {"concurrent": 7}}, store=store)
    limiter.limits_for(VirtualKey(id="key_1", name="k", key_hash="h", rpm=40))
    mini = make_deployment("openai", "gpt-4o-mini", api_key="sk-a", base_url="http://x/v1")
    big = make_deployment("openai", "gpt-4o", api_key="sk-a", base_url="http://x/v1")
    req = ChatRequest([Message("user", "hi")], build_params({"max_tokens": 5}))
    keyed = CallContext(CallOptions(tags={"vkey": "key_1"}), "t", 0.0)

    async def one(dep, ctx):
        try:
            return await limiter.acquire(dep, req, ctx)
        except RateLimitedError:
            return None

    sys.stdin.readline()  # both processes start together
    got = await asyncio.gather(*(one(mini, keyed) for _ in range(300)))
    plain = CallContext(CallOptions(), "t", 0.0)
    held = await asyncio.gather(*(one(big, plain) for _ in range(300)))
    print(sum(p is not None for p in got), sum(p is not None for p in held), flush=True)
    sys.stdin.readline()  # hold the permits until both have counted
    await store.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.services
async def test_two_processes_admit_exactly_the_limits(redis_url: str, redis_prefix: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(llmrelay.__file__).parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, redis_prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        counts = []
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.to_thread(p.stdout.readline)
            assert line.strip(), p.stderr.read() if p.stderr else ""
            counts.append([int(x) for x in line.split()])
        assert sum(c[0] for c in counts) == 40  # the key's rpm, over both processes
        assert sum(c[1] for c in counts) == 7  # the deployment's concurrency
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
            await asyncio.to_thread(p.wait, 30)
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()
