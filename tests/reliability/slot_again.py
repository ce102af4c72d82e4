"""What the cancellation tests ask after the attack: is a deployment's only concurrency slot
free again (a give-back in the background is allowed its round trip)?"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from llmrelay.core.layers import CallContext
from llmrelay.errors import RateLimitedError
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.types import ChatRequest


async def slot_free_again(
    limiter: RateLimiter,
    dep: object,
    req: Callable[[], ChatRequest],
    ctx: Callable[[], CallContext],
    held: str,
    *,
    enforced: bool = False,
    tries: int = 200,
) -> None:
    """Acquire (and release) until admitted, else fail with ``held``; ``enforced``: the
    permit admitted must be an enforced one (not a fail-open pass)."""
    for _ in range(tries):
        try:
            permit = await limiter.acquire(dep, req(), ctx())  # type: ignore[arg-type]
        except RateLimitedError:
            await asyncio.sleep(0.01)
            continue
        if enforced:
            assert permit is not None
            assert permit.enforced
        await limiter.release(permit, None, None, None)
        return
    pytest.fail(held)
