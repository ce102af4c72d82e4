"""In process, a call whose scopes count no tokens is admitted without its token estimate
(``ratelimit_tokens``), which is made when it settles only if a scope counts tokens by then: the
counters move exactly as when the estimate is made up front, whatever the limits, the answers
and the limits the provider announces meanwhile."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.errors import RateLimitedError
from llmrelay.reliability import ratelimit_tokens
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.types import Response, Usage

from ..conftest import FakeClock
from .test_ratelimit import DEP, _ctx, _req

#: Answers' headers: none, a request limit only, token limits (learned in flight).
_HEADERS: tuple[dict[str, str] | None, ...] = (
    None,
    {"x-ratelimit-limit-requests": "50", "x-ratelimit-remaining-requests": "40"},
    {"x-ratelimit-limit-tokens": "3000", "x-ratelimit-remaining-tokens": "2500"},
    {"anthropic-ratelimit-output-tokens-limit": "900"},
)
_CONFIGS: tuple[dict[str, Any], ...] = (
    {},
    {"openai/gpt-4o-mini": {"rpm": 20}},
    {"openai/gpt-4o-mini": {"rpm": 20, "tpm": 5000}},
    {"user:*": {"otpm": 2000}},
    {"openai/gpt-4o-mini": {"rpm": 20, "concurrent": 2}, "user:*": {"rpd": 5}},
)

_step = st.tuples(
    st.sampled_from([None, 10, 700]),  # max_tokens
    st.text(max_size=40),  # the prompt
    st.sampled_from([None, (30, 20), (900, 400)]),  # the usage reported (None: a failure)
    st.sampled_from(range(len(_HEADERS))),
    st.sampled_from([0.0, 1.0, 20.0]),  # seconds until the next call
)


def _state(limiter: RateLimiter) -> dict[str, Any]:
    scopes = limiter._buckets._scopes  # type: ignore[attr-defined]
    return {
        name: (list(s.tat), list(s.learned), s.learned_until, s.blocked_until, s.ldims, s.holders)
        for name, s in scopes.items()
    }


async def _run(limiter: RateLimiter, clock: FakeClock, steps: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for max_tokens, text, usage, headers, pause in steps:
        ctx = _ctx(tags={"user": "u"})
        try:
            permit = await limiter.acquire(DEP, _req(text or "hi", max_tokens), ctx)
        except RateLimitedError as exc:
            seen.append(("refused", exc.message, _state(limiter)))
        else:
            resp = None if usage is None else Response(text="x", usage=Usage(*usage))
            await limiter.release(permit, resp, _HEADERS[headers], None)
            seen.append(("admitted", _state(limiter)))
        clock.advance(pause)
    return seen


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(_step, max_size=8))
async def test_the_counters_move_as_with_the_estimate_made_up_front(steps: list[Any]) -> None:
    for config in _CONFIGS:
        deferred_clock, upfront_clock = FakeClock(), FakeClock()
        deferred = RateLimiter(config, clock=deferred_clock)
        upfront = RateLimiter(config, clock=upfront_clock)
        upfront._memory = None  # the general path: the estimate first, then the counters' take
        assert await _run(deferred, deferred_clock, steps) == await _run(
            upfront, upfront_clock, steps
        )


async def test_no_estimate_is_made_for_a_call_no_scope_counts_tokens_of(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []

    def counting(text: str) -> int:
        made.append(text)
        return 5

    monkeypatch.setattr(ratelimit_tokens, "_ESTIMATE", [counting])
    clock = FakeClock()
    limiter = RateLimiter({"openai/gpt-4o-mini": {"rpm": 2}}, clock=clock)
    permit = await limiter.acquire(DEP, _req("hello"), _ctx())
    await limiter.release(permit, Response(text="x", usage=Usage(3, 4)), None, None)
    assert made == []
    await limiter.acquire(DEP, _req("again"), _ctx())
    with pytest.raises(RateLimitedError, match="requests"):  # the requests still count
        await limiter.acquire(DEP, _req("third"), _ctx())
    made.clear()  # (a refused call takes the general path, with its estimate)
    # A token limit learned from an answer: the next calls are estimated (and counted).
    told = {"x-ratelimit-limit-tokens": "100", "x-ratelimit-remaining-tokens": "100"}
    clock.advance(60)
    permit = await limiter.acquire(DEP, _req("fourth"), _ctx())
    await limiter.release(permit, None, told, None)
    assert made == ["fourth"]  # at settling: the limit was learned in flight
    await limiter.acquire(DEP, _req("fifth"), _ctx())
    assert made == ["fourth", "fifth"]
