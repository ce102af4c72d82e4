"""The retry decision core (a table, as openai-python tests it), header parsing, backoff
properties, the retry budget and the thin sync/async loops."""

from __future__ import annotations

import math
import random
from email.utils import formatdate
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import llmrelay
from llmrelay.core.retry import RetryBudget, RetryDecision, RetryPolicy, aretry, retry
from llmrelay.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidResponseError,
    LLMRelayError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
    StreamInterruptedError,
)
from llmrelay.transport.headers import parse_retry_after, request_id_from, should_retry_header

from ..conftest import CANARY_KEY

NOW = 1_750_000_000.0  # a fixed wall clock for HTTP dates


def now() -> float:
    return NOW


def http_date(offset: float) -> str:
    return formatdate(NOW + offset, usegmt=True)


#: No jitter, so a backoff decision has an exact delay: 0.5 s before the first retry.
POLICY = RetryPolicy(jitter=False, now=now)
BACKOFF = 0.5


def err(cls: type[LLMRelayError], status: int | None = None, **kw: Any) -> LLMRelayError:
    return cls("fake", status=status, **kw)


# (id, error, retry?, delay or None for "no retry", reason)
TABLE: list[tuple[str, LLMRelayError, bool, float | None, str]] = [
    ("connection error", err(APIConnectionError), True, BACKOFF, "backoff"),
    ("timeout", err(APITimeoutError), True, BACKOFF, "backoff"),
    ("stream interrupted", err(StreamInterruptedError), True, BACKOFF, "backoff"),
    ("408", err(APIStatusError, 408), True, BACKOFF, "backoff"),
    ("409", err(ConflictError, 409), True, BACKOFF, "backoff"),
    ("429", err(RateLimitedError, 429), True, BACKOFF, "backoff"),
    ("429 insufficient_quota", err(QuotaExhaustedError, 429), False, None, "not retryable"),
    ("402 quota", err(QuotaExhaustedError, 402), False, None, "not retryable"),
    ("500", err(ServerError, 500), True, BACKOFF, "backoff"),
    ("502", err(ServerError, 502), True, BACKOFF, "backoff"),
    ("503", err(ServerError, 503), True, BACKOFF, "backoff"),
    ("529 overloaded", err(OverloadedError, 529), True, BACKOFF, "backoff"),
    ("overloaded without status", err(OverloadedError), True, BACKOFF, "backoff"),
    ("400", err(BadRequestError, 400), False, None, "not retryable"),
    ("401", err(AuthenticationError, 401), False, None, "not retryable"),
    ("403", err(PermissionDeniedError, 403), False, None, "not retryable"),
    ("404", err(NotFoundError, 404), False, None, "not retryable"),
    ("422", err(BadRequestError, 422), False, None, "not retryable"),
    ("context window", err(ContextWindowExceededError, 400), False, None, "not retryable"),
    ("content filter", err(ContentFilteredError, 400), False, None, "not retryable"),
    ("invalid response", err(InvalidResponseError), False, None, "not retryable"),
    ("configuration", ConfigurationError("bad config"), False, None, "not retryable"),
    ("user ValueError", ValueError("boom"), False, None, "not retryable"),  # type: ignore[list-item]
    # x-should-retry overrides the status rule both ways.
    (
        "x-should-retry true on 400",
        err(BadRequestError, 400, headers={"x-should-retry": "true"}),
        True,
        BACKOFF,
        "backoff",
    ),
    (
        "x-should-retry false on 500",
        err(ServerError, 500, headers={"X-Should-Retry": "false"}),
        False,
        None,
        "x-should-retry: false",
    ),
    (
        "x-should-retry false on 429 with retry-after",
        err(RateLimitedError, 429, headers={"x-should-retry": "false", "retry-after": "1"}),
        False,
        None,
        "x-should-retry: false",
    ),
    (
        "x-should-retry garbage is ignored",
        err(ServerError, 500, headers={"x-should-retry": "maybe"}),
        True,
        BACKOFF,
        "backoff",
    ),
    # The server's wait, in each form.
    (
        "retry-after-ms",
        err(RateLimitedError, 429, headers={"retry-after-ms": "1500"}),
        True,
        1.5,
        "retry-after",
    ),
    (
        "retry-after-ms wins over retry-after",
        err(RateLimitedError, 429, headers={"retry-after-ms": "250", "retry-after": "9"}),
        True,
        0.25,
        "retry-after",
    ),
    (
        "retry-after seconds",
        err(RateLimitedError, 429, headers={"retry-after": "3"}),
        True,
        3.0,
        "retry-after",
    ),
    (
        "retry-after seconds on 503",
        err(ServerError, 503, headers={"Retry-After": "2"}),
        True,
        2.0,
        "retry-after",
    ),
    (
        "retry-after HTTP date",
        err(RateLimitedError, 429, headers={"retry-after": http_date(30)}),
        True,
        30.0,
        "retry-after",
    ),
    (
        "retry-after at the ceiling",
        err(RateLimitedError, 429, headers={"retry-after": "60"}),
        True,
        60.0,
        "retry-after",
    ),
    (
        "retry-after above the ceiling fails fast",
        err(RateLimitedError, 429, headers={"retry-after": "61"}),
        False,
        None,
        "ceiling",
    ),
    (
        "retry-after-ms above the ceiling fails fast",
        err(RateLimitedError, 429, headers={"retry-after-ms": "120000"}),
        False,
        None,
        "ceiling",
    ),
    (
        "HTTP date above the ceiling fails fast",
        err(RateLimitedError, 429, headers={"retry-after": http_date(3600)}),
        False,
        None,
        "ceiling",
    ),
    (
        "retry_after parsed by the adapter",
        err(RateLimitedError, 429, retry_after=4.0),
        True,
        4.0,
        "retry-after",
    ),
    (
        "retry_after attribute above the ceiling",
        err(RateLimitedError, 429, retry_after=90.0),
        False,
        None,
        "ceiling",
    ),
    (
        "NaN retry_after attribute counts as absent",
        err(RateLimitedError, 429, retry_after=math.nan),
        True,
        BACKOFF,
        "backoff",
    ),
    (
        "negative retry_after attribute counts as absent",
        err(RateLimitedError, 429, retry_after=-5.0),
        True,
        BACKOFF,
        "backoff",
    ),
    (
        "infinite retry_after attribute counts as absent",
        err(RateLimitedError, 429, retry_after=math.inf),
        True,
        BACKOFF,
        "backoff",
    ),
]

# Malformed headers count as absent: the policy falls back to its backoff.
MALFORMED = [
    "inf",
    "-inf",
    "nan",
    "NaN",
    "-10",
    "1e309",
    "99999999999",
    "1e100",
    "",
    "   ",
    "soon",
    "10, 20",
    "0x10",
    "Wed, 99 Foo 2015 07:28:00 GMT",
    "Tue, 32 Oct 2024 07:28:00 GMT",
    http_date(-30),  # in the past
    "Wed, 21 Oct 2015 07:28:00 GMT",  # long past
]
for _value in MALFORMED:
    TABLE.append(
        (
            f"malformed retry-after {_value!r}",
            err(RateLimitedError, 429, headers={"retry-after": _value}),
            True,
            BACKOFF,
            "backoff",
        )
    )
    TABLE.append(
        (
            f"malformed retry-after-ms {_value!r}",
            err(ServerError, 503, headers={"retry-after-ms": _value}),
            True,
            BACKOFF,
            "backoff",
        )
    )


@pytest.mark.parametrize(
    ("exc", "should", "delay", "reason"),
    [pytest.param(e, r, d, why, id=name) for name, e, r, d, why in TABLE],
)
def test_decide_table(exc: BaseException, should: bool, delay: float | None, reason: str) -> None:
    d = POLICY.decide(exc, 0)
    assert isinstance(d, RetryDecision)
    assert d.retry is should
    assert reason in d.reason
    if should:
        assert d.delay == pytest.approx(delay)
    else:
        assert d.delay == 0.0


def test_malformed_retry_after_ms_falls_back_to_retry_after() -> None:
    e = err(RateLimitedError, 429, headers={"retry-after-ms": "nan", "retry-after": "2"})
    assert POLICY.decide(e, 0) == RetryDecision(True, 2.0, "retry-after")


@pytest.mark.parametrize("done", [2, 3, 100])
def test_no_retries_left(done: int) -> None:
    d = POLICY.decide(err(ServerError, 500), done)
    assert not d.retry
    assert "no retries left (2 allowed)" in d.reason
    # Even a server that insists gets no more than max_retries.
    forced = err(ServerError, 500, headers={"x-should-retry": "true"})
    assert not POLICY.decide(forced, done).retry


def test_max_retries_zero_never_retries() -> None:
    p = RetryPolicy(max_retries=0)
    assert not p.decide(err(APIConnectionError), 0).retry


def test_ceiling_is_configurable() -> None:
    e = err(RateLimitedError, 429, headers={"retry-after": "90"})
    assert not POLICY.decide(e, 0).retry
    assert RetryPolicy(max_retry_after=120).decide(e, 0) == RetryDecision(True, 90.0, "retry-after")


# (id, error, time left before the deadline, retry?, delay, reason): a server's wait is obeyed
# in full or not at all; a backoff is not judged against the deadline by the pure core.
DEADLINE_TABLE: list[tuple[str, LLMRelayError, float, bool, float, str]] = [
    (
        "retry-after 30 with 3 s left fails fast",
        err(RateLimitedError, 429, headers={"retry-after": "30"}),
        3.0,
        False,
        0.0,
        "server asked to retry after 30s but only 3s are left before the deadline",
    ),
    (
        "retry-after 30 with 2.7 s left",
        err(RateLimitedError, 429, headers={"retry-after": "30"}),
        2.7,
        False,
        0.0,
        "only 2.7s are left",
    ),
    (
        "retry-after-ms just over what is left",
        err(ServerError, 503, headers={"retry-after-ms": "3001"}),
        3.0,
        False,
        0.0,
        "retry after 3.001s",
    ),
    (
        "adapter retry_after 30 with 29.99 s left",
        err(RateLimitedError, 429, retry_after=30.0),
        29.99,
        False,
        0.0,
        "server asked",
    ),
    (
        "HTTP date 30 s away with 10 s left",
        err(RateLimitedError, 429, headers={"retry-after": http_date(30)}),
        10.0,
        False,
        0.0,
        "server asked",
    ),
    (
        "retry-after with no time left",
        err(RateLimitedError, 429, headers={"retry-after": "1"}),
        -0.5,
        False,
        0.0,
        "only 0s are left",
    ),
    (
        "NaN time left counts as none",
        err(RateLimitedError, 429, headers={"retry-after": "1"}),
        math.nan,
        False,
        0.0,
        "server asked",
    ),
    (
        "retry-after exactly what is left is waited in full",
        err(RateLimitedError, 429, headers={"retry-after": "3"}),
        3.0,
        True,
        3.0,
        "retry-after",
    ),
    (
        "retry-after that fits is waited in full",
        err(RateLimitedError, 429, headers={"retry-after": "30"}),
        45.0,
        True,
        30.0,
        "retry-after",
    ),
    (
        "the ceiling still wins when the deadline is far",
        err(RateLimitedError, 429, headers={"retry-after": "90"}),
        1000.0,
        False,
        0.0,
        "exceeds the 60s ceiling",
    ),
    (
        "a backoff is not judged against the deadline",
        err(ServerError, 500),
        0.1,
        True,
        BACKOFF,
        "backoff",
    ),
    (
        "malformed retry-after falls back to backoff",
        err(RateLimitedError, 429, headers={"retry-after": "inf"}),
        0.1,
        True,
        BACKOFF,
        "backoff",
    ),
    (
        "not retryable stays not retryable",
        err(BadRequestError, 400, headers={"retry-after": "1"}),
        100.0,
        False,
        0.0,
        "not retryable",
    ),
]


@pytest.mark.parametrize(
    ("exc", "left", "should", "delay", "reason"),
    [pytest.param(e, t, r, d, why, id=name) for name, e, t, r, d, why in DEADLINE_TABLE],
)
def test_decide_with_time_left(
    exc: BaseException, left: float, should: bool, delay: float, reason: str
) -> None:
    d = POLICY.decide(exc, 0, left)
    assert d.retry is should
    assert reason in d.reason
    assert d.delay == pytest.approx(delay)
    if d.retry and d.reason == "retry-after":
        assert d.delay <= left  # never a wait that outlasts the deadline
    # Without a deadline the same error gets the plain decision.
    assert POLICY.decide(exc, 0) == POLICY.decide(exc, 0, None)


@given(
    st.floats(min_value=0.0, max_value=60.0, allow_nan=False),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_a_server_wait_is_never_cut_short(after: float, left: float) -> None:
    """Whatever the time left, a retry that follows a server's wait waits all of it."""
    d = POLICY.decide(err(RateLimitedError, 429, retry_after=after), 0, left)
    if d.retry:
        assert d.delay == after
        assert after <= left
    else:
        assert not after <= left


def test_retry_unknown_errors_opt_in() -> None:
    p = RetryPolicy(retry_unknown_errors=True, jitter=False)
    assert p.decide(ValueError("flaky"), 0) == RetryDecision(True, 0.5, "backoff")
    # ... but known non-retryable llmrelay errors stay non-retryable.
    assert not p.decide(err(AuthenticationError, 401), 0).retry
    # KeyboardInterrupt and friends are never retried.
    assert not p.decide(KeyboardInterrupt(), 0).retry


def test_decide_on_errors_built_by_the_adapter() -> None:
    """The same decisions on errors the openai_chat adapter builds from real headers."""
    from llmrelay.providers.backends import get_adapter
    from llmrelay.providers.table import make_deployment

    adapter = get_adapter("openai_chat")
    dep = make_deployment("openai", "gpt-4.1-mini", api_key=CANARY_KEY, base_url="http://x/v1")

    def mapped(status: int, headers: dict[str, str], body: bytes = b"") -> BaseException:
        return adapter.map_error(status, headers, body, dep)

    assert POLICY.decide(mapped(429, {"retry-after": "7"}), 0).delay == 7.0
    assert POLICY.decide(mapped(429, {"Retry-After-Ms": "20"}), 0).delay == pytest.approx(0.02)
    assert POLICY.decide(mapped(429, {"retry-after": "inf"}), 0).delay == BACKOFF
    assert not POLICY.decide(mapped(429, {"retry-after": "600"}), 0).retry
    quota = b'{"error": {"message": "quota", "type": "insufficient_quota"}}'
    assert not POLICY.decide(mapped(429, {}, quota), 0).retry
    assert POLICY.decide(mapped(529, {}), 0).retry
    assert not POLICY.decide(mapped(401, {}), 0).retry


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": " 3 "}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-0"}, 0.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"RETRY-AFTER-MS": "1"}, 0.001),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "nan", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "-1", "retry-after": "inf"}, None),
        ({"retry-after": http_date(30)}, 30.0),
        ({"retry-after": formatdate(NOW + 45, usegmt=False)}, 45.0),  # numeric zone
        ({"retry-after": http_date(30).replace("GMT", "-0000")}, 30.0),  # no zone: UTC
        ({"retry-after": http_date(0)}, None),  # now is not in the future
        ({"retry-after": http_date(-1)}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": http_date(30 * 24 * 3600)}, None),  # absurdly far: malformed
        ({"retry-after": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-10"}, None),
        ({"retry-after": "1e309"}, None),
        ({"retry-after": "99999999999"}, None),
        ({"retry-after": str(10**400)}, None),
        ({"retry-after-ms": "1e309"}, None),
        ({"retry-after": "abc"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "Fri, 31 Feb 2025 10:00:00 GMT"}, None),
        ({"retry-after": "Mon, 01 Jan 99999 00:00:00 GMT"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    got = parse_retry_after(headers, now)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)
        assert got >= 0
        assert math.copysign(1.0, got) == 1.0


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(value: str) -> None:
    got = parse_retry_after({"retry-after": value, "retry-after-ms": value}, now)
    assert got is None or (math.isfinite(got) and got >= 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), (" false ", False), ("yes", None), ("", None)],
)
def test_should_retry_header(value: str, expected: bool | None) -> None:
    assert should_retry_header({"x-should-retry": value}) is expected
    assert should_retry_header({}) is None


def test_request_id_from_any_case() -> None:
    assert request_id_from({"X-Request-Id": "req_1"}) == "req_1"
    assert request_id_from({"request-id": "req_2"}) == "req_2"
    assert request_id_from({}) is None


# --------------------------------------------------------------------------- backoff


def _bound(base: float, cap: float, n: int) -> Fraction:
    """min(cap, base * 2**n), computed exactly (any positive float times 2**5000 exceeds every
    finite cap, so larger exponents need not be computed)."""
    return min(Fraction(cap), Fraction(base) * 2 ** min(n, 5000))


finite_base = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
extra_cap = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
retry_numbers = st.integers(min_value=0, max_value=5000) | st.sampled_from([1000, 10**9])


@given(finite_base, extra_cap, retry_numbers, st.integers(0, 2**32))
def test_jittered_backoff_stays_in_bounds(base: float, extra: float, n: int, seed: int) -> None:
    cap = base + extra
    p = RetryPolicy(base_delay=base, max_delay=cap, rng=random.Random(seed))
    d = p.backoff(n)
    assert isinstance(d, float)
    assert math.isfinite(d)
    assert 0.0 <= Fraction(d) <= _bound(base, cap, n)


@given(finite_base, extra_cap, retry_numbers)
def test_unjittered_backoff_is_exact(base: float, extra: float, n: int) -> None:
    cap = base + extra
    p = RetryPolicy(base_delay=base, max_delay=cap, jitter=False)
    assert Fraction(p.backoff(n)) == _bound(base, cap, n)


def test_tiny_base_keeps_growing_past_64_doublings() -> None:
    p = RetryPolicy(base_delay=1e-30, max_delay=1.0, jitter=False)
    assert p.backoff(64) == pytest.approx(1e-30 * 2**64)
    assert p.backoff(100) == 1.0


@pytest.mark.parametrize("n", [0, 1, 63, 64, 1000, 1023, 1024, 1075, 10**6, 10**18])
def test_no_overflow_at_huge_attempt_numbers(n: int) -> None:
    for jitter in (True, False):
        d = RetryPolicy(jitter=jitter).backoff(n)
        assert 0.0 <= d <= 8.0
    assert RetryPolicy(base_delay=0.0, max_delay=5.0, jitter=False).backoff(n) == 0.0
    assert RetryPolicy(jitter=False).decide(err(ServerError, 500), 0).retry


def test_default_schedule_is_the_sdks() -> None:
    p = RetryPolicy(jitter=False)
    assert [p.backoff(i) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert p.max_retries == 2  # the official SDKs' default


def test_seed_004_schedule_is_expressible() -> None:
    """Seed 004: attempt 1 immediate, then wait 1 s, 2 s, 4 s, 8 s."""
    p = RetryPolicy(max_retries=4, base_delay=1.0, max_delay=8.0, jitter=False)
    delays = []
    for done in range(10):
        d = p.decide(err(ServerError, 500), done)
        if not d.retry:
            break
        delays.append(d.delay)
    assert delays == [1.0, 2.0, 4.0, 8.0]


def test_jitter_is_seedable_and_varies() -> None:
    a = RetryPolicy(rng=random.Random(1))
    b = RetryPolicy(rng=random.Random(1))
    xs = [a.backoff(3) for _ in range(20)]
    assert xs == [b.backoff(3) for _ in range(20)]
    assert len(set(xs)) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"max_retries": "2"},
        {"base_delay": -0.1},
        {"base_delay": math.nan},
        {"base_delay": math.inf},
        {"base_delay": "1"},
        {"max_delay": -1.0},
        {"max_delay": math.nan},
        {"max_delay": math.inf},
        {"base_delay": 2.0, "max_delay": 1.0},
        {"max_retry_after": -1},
        {"max_retry_after": math.nan},
    ],
)
def test_invalid_policy_is_a_configuration_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        RetryPolicy(**kwargs)
    assert next(iter(kwargs)) in str(info.value) or "max_delay" in str(info.value)


def test_public_exports() -> None:
    assert llmrelay.RetryPolicy is RetryPolicy
    assert llmrelay.RetryBudget is RetryBudget


# --------------------------------------------------------------------------- budget


def test_retry_budget_throttles_then_recovers() -> None:
    b = RetryBudget(max_tokens=10, token_ratio=0.5)
    assert b.can_retry()
    for _ in range(4):
        b.on_failure()
    assert b.can_retry()  # 6 tokens > 5
    b.on_failure()
    assert not b.can_retry()  # 5 tokens: retries stop
    for _ in range(20):
        b.on_failure()
    assert b.tokens == 0.0
    assert not b.can_retry()
    for _ in range(10):
        b.on_success()
    assert not b.can_retry()  # 5.0: still at the threshold
    b.on_success()
    assert b.can_retry()
    for _ in range(100):
        b.on_success()
    assert b.tokens == 10.0  # capped


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tokens": 0},
        {"max_tokens": -1},
        {"max_tokens": math.nan},
        {"token_ratio": 0},
        {"token_ratio": -0.1},
        {"token_ratio": 20},
        {"token_ratio": math.nan},
    ],
)
def test_invalid_budget(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryBudget(**kwargs)


# --------------------------------------------------------------------------- loops


class Flaky:
    """Fails with the given errors, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_sync_retry_loop_sleeps_the_schedule() -> None:
    slept: list[float] = []
    fn = Flaky(err(ServerError, 500), err(APIConnectionError))
    assert retry(fn, RetryPolicy(jitter=False), sleep=slept.append) == "ok"
    assert fn.calls == 3
    assert slept == [0.5, 1.0]


def test_sync_retry_loop_obeys_retry_after() -> None:
    slept: list[float] = []
    fn = Flaky(err(RateLimitedError, 429, headers={"retry-after": "2"}))
    assert retry(fn, RetryPolicy(), sleep=slept.append) == "ok"
    assert slept == [2.0]


def test_sync_retry_loop_gives_up() -> None:
    slept: list[float] = []
    last = err(ServerError, 503)
    fn = Flaky(err(ServerError, 500), err(ServerError, 502), last, err(ServerError, 504))
    with pytest.raises(ServerError) as info:
        retry(fn, RetryPolicy(jitter=False), sleep=slept.append)
    assert info.value is last
    assert fn.calls == 3
    assert slept == [0.5, 1.0]


def test_sync_retry_loop_does_not_retry_client_errors() -> None:
    slept: list[float] = []
    fn = Flaky(err(BadRequestError, 400))
    with pytest.raises(BadRequestError):
        retry(fn, sleep=slept.append)
    assert fn.calls == 1
    assert slept == []


async def test_async_retry_loop() -> None:
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    calls = 0

    async def fn() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise err(OverloadedError, 529)
        return "done"

    assert await aretry(fn, RetryPolicy(jitter=False), sleep=fake_sleep) == "done"
    assert calls == 3
    assert slept == [0.5, 1.0]

    flaky = Flaky(err(APITimeoutError))
    assert await aretry(flaky, RetryPolicy(jitter=False), sleep=fake_sleep) == "ok"  # type: ignore[arg-type]
    assert slept[-1] == 0.5

    with pytest.raises(NotFoundError):
        await aretry(Flaky(err(NotFoundError, 404)), sleep=fake_sleep)  # type: ignore[arg-type]
