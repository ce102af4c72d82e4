"""Costs from the provider's reported usage and the catalog's prices.

.. code-block:: python

    llmrelay.calculate_cost("openai/gpt-4.1-mini", {"input_tokens": 1200, "output_tokens": 300})
    # Cost(usd=0.00096, known=True, input_usd=0.00048, output_usd=0.00048, ...)

How usage is priced (our ``Usage`` convention: cached and cache-write tokens are part of
``input_tokens``, reasoning tokens part of ``output_tokens``):

* input tokens that were neither cache reads nor cache writes: the input price;
* cache reads (``cached_tokens``): the cached-input price (the input price when the provider has
  no cache discount); cache writes (``cache_write_tokens``): the cache-write price (Anthropic),
  else the input price -- both are reported in ``input_usd`` / ``cached_usd``;
* ``output_tokens - reasoning_tokens``: the output price; ``reasoning_tokens``: the reasoning
  price (every bundled provider bills them as output tokens).

A model without a known price gives ``Cost(usd=None, known=False, reason=...)``, never $0.

Prices over time: a row may carry a ``price_schedule`` (a new price from a date, a promotion
with an end date) and ``price_windows`` (recurring UTC time-of-day prices, e.g. DeepSeek's peak
hours at twice the off-peak rate), and a model the provider routes to its replacement after
shutdown is billed at the replacement's rate. The price of a call is the one in force when the
call **started** (UTC days for the schedule; the window holding the start instant): a call
that runs across a window edge is priced at its start. Budget reservations are made at the
highest price any window of the day can take (:func:`highest_rates`), so they stay an upper
bound whenever the call (or a retry) runs. The rates in force are resolved once and kept with
the span of time they hold for (up to the next schedule boundary or window edge), so a cost is
one comparison and a few multiplications.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import time as time_now
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, InvalidRequestError, UnknownModelError, finite, shown
from ..types import Usage
from ..types.embed_request import EmbedRequest

if TYPE_CHECKING:
    from ..providers.table import Deployment
    from ..types import ChatRequest, Response
    from .model_registry import LLMRegistry
    from .profiles import LLMProfile, Pricing

__all__ = [
    "Cost",
    "Rates",
    "calculate_cost",
    "embedding_cost",
    "estimate_request_cost",
    "estimate_usage",
    "highest_rates",
    "rates_for",
    "resolve_rates",
    "utc_day",
]

_M = 1_000_000.0
_new = object.__new__


@dataclass(slots=True)
class Cost:
    """The price of some usage. ``usd`` is None when the price is not known -- never a silent 0."""

    usd: float | None
    known: bool
    input_usd: float | None = None
    output_usd: float | None = None
    cached_usd: float | None = None
    reasoning_usd: float | None = None
    #: Why the price is unknown (e.g. "no price for groq/foo in the catalog").
    reason: str | None = None
    #: True when some of the usage priced was counted by llmrelay, not reported by the provider.
    estimated: bool = False

    @classmethod
    def unknown(cls, reason: str) -> Cost:
        return cls(None, False, reason=reason)

    def __add__(self, other: Cost) -> Cost:
        if not (self.known and other.known) or self.usd is None or other.usd is None:
            return Cost.unknown(self.reason or other.reason or "part of the cost is unknown")

        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        return Cost(
            self.usd + other.usd,
            True,
            add(self.input_usd, other.input_usd),
            add(self.output_usd, other.output_usd),
            add(self.cached_usd, other.cached_usd),
            add(self.reasoning_usd, other.reasoning_usd),
            estimated=self.estimated or other.estimated,
        )


@dataclass(slots=True, frozen=True)
class Rates:
    """Per-token prices of one model (dollars per token), or why they are unknown."""

    input: float | None
    output: float | None
    cached: float | None
    cache_write: float | None
    reasoning: float | None
    label: str
    reason: str | None = None

    @property
    def known(self) -> bool:
        return self.reason is None

    @classmethod
    def of(cls, profile: LLMProfile, pricing: Pricing | None = None, label: str = "") -> Rates:
        """The rates of ``pricing`` (default: the profile's base prices)."""
        pr = profile.pricing if pricing is None else pricing

        def per_token(v: float | None) -> float | None:
            return None if v is None else v / _M

        reason = None
        if pr.input is None or pr.output is None:
            reason = f"the catalog has no price for {profile.id}"
            if pr.note:
                reason += f" ({pr.note})"
        return cls(
            per_token(pr.input),
            per_token(pr.output),
            per_token(pr.cached_input_price),
            per_token(pr.cache_write_price),
            per_token(pr.reasoning_price),
            label or profile.id,
            reason,
        )

    def cost(self, u: Usage) -> Cost:
        if self.reason is not None:
            return Cost.unknown(self.reason)
        inp, out = self.input, self.output
        assert inp is not None
        assert out is not None
        if not (u.cached_tokens or u.cache_write_tokens or u.reasoning_tokens):
            # Most answers: the sums below with their zero terms left out (the same floats).
            input_usd = u.input_tokens * inp
            output_usd = u.output_tokens * out
            # ``Cost(usd, True, input, output, 0.0, 0.0, None, estimated)`` without its
            # ``__init__`` frame (``tests/core/test_lean_path.py`` holds the two equal).
            c: Cost = _new(Cost)
            c.usd = input_usd + output_usd
            c.known = True
            c.input_usd = input_usd
            c.output_usd = output_usd
            c.cached_usd = c.reasoning_usd = 0.0
            c.reason = None
            c.estimated = u.estimated
            return c
        cached = min(u.cached_tokens, u.input_tokens)
        written = min(u.cache_write_tokens, u.input_tokens - cached)
        fresh = u.input_tokens - cached - written
        reasoning = min(u.reasoning_tokens, u.output_tokens)
        input_usd = fresh * inp + written * (
            self.cache_write if self.cache_write is not None else inp
        )
        cached_usd = cached * (self.cached if self.cached is not None else inp)
        output_usd = (u.output_tokens - reasoning) * out
        reasoning_usd = reasoning * (self.reasoning if self.reasoning is not None else out)
        return Cost(
            input_usd + cached_usd + output_usd + reasoning_usd,
            True,
            input_usd,
            output_usd,
            cached_usd,
            reasoning_usd,
            estimated=u.estimated,
        )


_registry_fn: Callable[[], LLMRegistry] | None = None


def _default_registry() -> LLMRegistry:
    global _registry_fn
    if _registry_fn is None:
        from .model_registry import default_registry

        _registry_fn = default_registry
    return _registry_fn()


_DAY_S = 86400.0


def _epoch(day: date) -> float:
    return datetime.combine(day, time(), UTC).timestamp()


def utc_day(t: float) -> date:
    """The UTC day of an epoch time."""
    return datetime.fromtimestamp(t, UTC).date()


def resolve_rates(
    registry: LLMRegistry, profile: LLMProfile, t: float
) -> tuple[Rates, float, float]:
    """The rates in force for ``profile`` at epoch time ``t``, with the span ``[lo, hi)`` of
    epoch times they hold for. A model past its shutdown that the provider routes to its
    replacement is priced at the replacement's rates from the shutdown day on."""
    day = utc_day(t)
    lo, hi = -math.inf, math.inf
    shutdown = profile.shutdown_date
    if profile.retirement == "routed" and shutdown is not None:
        if day >= shutdown:
            name = registry.current_replacement(profile)
            repl = registry.lookup(profile.provider, name) if name else None
            if repl is not None and repl.retirement != "routed":
                rates, rlo, rhi = resolve_rates(registry, repl, t)
                label = f"{profile.id} (routed to {repl.id}, billed at its rate)"
                return (
                    Rates(
                        rates.input,
                        rates.output,
                        rates.cached,
                        rates.cache_write,
                        rates.reasoning,
                        label,
                        rates.reason,
                    ),
                    max(rlo, _epoch(shutdown)),
                    rhi,
                )
            lo = _epoch(shutdown)
        else:
            hi = _epoch(shutdown)
    for b in profile.price_boundaries():
        e = _epoch(b)
        if b <= day:
            lo = max(lo, e)
        else:
            hi = min(hi, e)
            break
    pricing = profile.pricing_on(day)
    if profile.price_windows:
        window, wlo, whi = profile.window_at(t)
        lo, hi = max(lo, wlo), min(hi, whi)
        if window is not None:
            pricing = window.applied(pricing)
    return Rates.of(profile, pricing), lo, hi


def rates_for(
    registry: LLMRegistry, provider: str | None, model: str, at: float | None = None
) -> Rates | None:
    """The rates of a model in force at epoch time ``at`` (default: the registry's clock),
    or None when the catalog does not know the model. Cached with the span they hold for."""
    key = ("rates", provider, model)
    cache = registry.cache
    t = registry.now() if at is None else at
    entry = cache.get(key)
    if entry is not None and entry[1] <= t < entry[2]:
        return entry[0]  # type: ignore[no-any-return]
    guard = registry.cache_guard
    gen = guard.generation  # a value computed across a change is not remembered
    profile = registry.lookup(provider, model)
    if profile is None:
        guard.put(key, (None, -math.inf, math.inf), gen)
        return None
    if not 0.0 <= t < _LAST_EPOCH:  # NaN too; only here: a cached span never holds one
        raise ConfigurationError(
            "the catalog's clock gave a time outside 1970-01-01 to 9999-12-30 (UTC): the "
            "registry's now= must return epoch seconds (as time.time() does)"
        )
    rates, lo, hi = resolve_rates(registry, profile, t)
    guard.put(key, (rates, lo, hi), gen)
    return rates


#: How close to a UTC midnight a budget reservation also covers the next day's prices (a dated
#: price rise or a promotion ending at midnight): a call reserved before midnight may start
#: after it (a rate-limit wait, retries) and is billed at its start.
RESERVE_AHEAD_S = 6 * 3600.0


def highest_rates(
    registry: LLMRegistry, provider: str | None, model: str, at: float | None = None
) -> Rates | None:
    """The rates in force at ``at`` (default: the registry's clock; :func:`rates_for`),
    raised amount by amount to the highest any time-of-day window of that day sets, and within
    :data:`RESERVE_AHEAD_S` of midnight to the next day's highest too: what a budget reserves,
    so a call that starts (or is retried) in a dearer window, or after midnight under a dearer
    dated price, is still covered. The same as :func:`rates_for` for a row without windows or
    price changes."""
    guard = registry.cache_guard
    gen = guard.generation  # a value computed across a change is not remembered
    rates = rates_for(registry, provider, model, at)
    if rates is None or not rates.known:
        return rates
    key = ("top-rates", provider, model)
    t = registry.now() if at is None else at
    cache = registry.cache
    entry = cache.get(key)
    if entry is not None and entry[1] <= t < entry[2]:
        return entry[0]  # type: ignore[no-any-return]
    day = utc_day(t)
    start, midnight = _epoch(day), _epoch(day) + _DAY_S
    edge = midnight - RESERVE_AHEAD_S
    top = _top_on(registry, provider, model, rates, day)
    if t < edge:
        guard.put(key, (top, start, edge), gen)
        return top
    if midnight < _LAST_EPOCH:
        after = rates_for(registry, provider, model, midnight)
        if after is not None and after.known:
            after = _top_on(registry, provider, model, after, day + timedelta(days=1))
            top = Rates(
                _higher(top.input, after.input),
                _higher(top.output, after.output),
                _higher(top.cached, after.cached),
                _higher(top.cache_write, after.cache_write),
                _higher(top.reasoning, after.reasoning),
                top.label,
            )
    guard.put(key, (top, edge, midnight), gen)
    return top


def _higher(a: float | None, b: float | None) -> float | None:
    return b if a is None or (b is not None and b > a) else a


def _top_on(
    registry: LLMRegistry, provider: str | None, model: str, rates: Rates, day: date
) -> Rates:
    """``rates`` raised to the highest any time-of-day window of ``day`` sets (the row's, or
    its replacement's once a routed row is past shutdown)."""
    profile = registry.lookup(provider, model)
    if profile is not None and profile.retirement == "routed":
        shutdown = profile.shutdown_date
        if shutdown is not None and day >= shutdown:  # billed as its replacement
            name = registry.current_replacement(profile)
            repl = registry.lookup(profile.provider, name) if name else None
            profile = repl if repl is not None and repl.retirement != "routed" else None
    if profile is not None and profile.price_windows:
        return dataclasses.replace(
            Rates.of(profile, profile.highest_pricing_on(day)), label=rates.label
        )
    return rates


#: The epoch times a price can be looked up for: 1970-01-01 up to 9999-12-30 (UTC).
_LAST_EPOCH = 253402128000.0


def _in_range(t: float) -> float:
    if not 0.0 <= t < _LAST_EPOCH:
        raise InvalidRequestError(
            "at must be a time between 1970-01-01 and 9999-12-30 (UTC); got one outside it"
        )
    return t


def _when(at: date | datetime | float | None) -> float | None:
    if at is None:
        return None
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise InvalidRequestError(
                "at must be a timezone-aware datetime (e.g. datetime.now(UTC)), a date or an "
                "epoch time"
            )
        return _in_range(at.timestamp())
    if isinstance(at, date):
        return _in_range(_epoch(at) + _DAY_S / 2)
    if isinstance(at, int | float) and not isinstance(at, bool) and finite(at):
        return _in_range(float(at))
    raise InvalidRequestError(
        f"at must be a date, an aware datetime or an epoch time, not {type(at).__name__}"
    )


_USAGE_KEYS = {
    "input_tokens": "input_tokens",
    "prompt_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "completion_tokens": "output_tokens",
    "cached_tokens": "cached_tokens",
    "cached_input_tokens": "cached_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "reasoning_tokens": "reasoning_tokens",
}
#: Anthropic reports cache reads and writes *beside* input_tokens; they are added in.
_ANTHROPIC_KEYS = {
    "cache_read_input_tokens": "cached_tokens",
    "cache_creation_input_tokens": "cache_write_tokens",
}


def _count(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or not finite(v):
        raise InvalidRequestError(f"usage {name} must be a non-negative integer, not {shown(v)}")
    if isinstance(v, float) and not v.is_integer():
        raise InvalidRequestError(f"usage {name} must be a whole number of tokens, not {v!r}")
    return int(v)


def to_usage(usage: Usage | Mapping[str, Any]) -> Usage:
    """A ``Usage`` from a ``Usage`` or a dict of token counts: our names, OpenAI's
    (``prompt_tokens``, ``completion_tokens``, ``prompt_tokens_details.cached_tokens``,
    ``completion_tokens_details.reasoning_tokens``) or Anthropic's (``cache_read_input_tokens``,
    ``cache_creation_input_tokens``, reported beside ``input_tokens`` and added to it)."""
    if isinstance(usage, Usage):
        return usage
    if not isinstance(usage, Mapping):
        raise InvalidRequestError(
            f"usage must be an llmrelay.Usage or a dict of token counts, not {type(usage).__name__}"
        )
    out = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }
    extra_input = 0
    estimated = False
    for k, v in usage.items():
        if k in _USAGE_KEYS:
            out[_USAGE_KEYS[k]] = _count(k, v)
        elif k in _ANTHROPIC_KEYS:
            n = _count(k, v)
            out[_ANTHROPIC_KEYS[k]] = n
            extra_input += n
        elif k == "prompt_tokens_details" and isinstance(v, Mapping):
            out["cached_tokens"] = _count(
                "prompt_tokens_details.cached_tokens", v.get("cached_tokens") or 0
            )
        elif k == "completion_tokens_details" and isinstance(v, Mapping):
            out["reasoning_tokens"] = _count(
                "completion_tokens_details.reasoning_tokens", v.get("reasoning_tokens") or 0
            )
        elif k == "total_tokens":
            _count(k, v)
        elif k == "estimated" and isinstance(v, bool):
            estimated = v
        else:
            raise InvalidRequestError(
                f"unknown usage field {k!r}; use input_tokens, output_tokens, cached_tokens, "
                "cache_write_tokens, reasoning_tokens (or OpenAI's prompt_tokens / "
                "completion_tokens)"
            )
    out["input_tokens"] += extra_input
    return Usage(
        out["input_tokens"],
        out["output_tokens"],
        out["cached_tokens"],
        out["cache_write_tokens"],
        out["reasoning_tokens"],
        estimated,
    )


def calculate_cost(
    model: str | LLMProfile,
    usage: Usage | Mapping[str, Any],
    *,
    registry: LLMRegistry | None = None,
    at: date | datetime | float | None = None,
) -> Cost:
    """The cost of ``usage`` on ``model`` ("provider/model", an alias or a bare id, or a
    profile) at the prices in force at ``at`` (a date, an aware datetime or an epoch time;
    default: now). An unknown model or price gives a typed unknown cost, never $0."""
    u = usage if type(usage) is Usage else to_usage(usage)
    when = _when(at)
    if not isinstance(model, str):
        from .profiles import LLMProfile

        if not isinstance(model, LLMProfile):
            raise InvalidRequestError(
                f"model must be a model name or an LLMProfile, not {type(model).__name__}"
            )
        if registry is None and model.retirement != "routed":  # no registry needed
            t = time_now() if when is None else when
            return _cost_of(Rates.of(model, model.pricing_at(t, utc_day(t))), u)
        reg0 = registry or _default_registry()
        t = reg0.now() if when is None else when
        return _cost_of(resolve_rates(reg0, model, t)[0], u)
    if registry is not None:
        from .model_registry import LLMRegistry

        if not isinstance(registry, LLMRegistry):
            raise InvalidRequestError(
                f"registry must be an LLMRegistry or None, not {type(registry).__name__}"
            )
    reg = registry or _default_registry()
    key = ("profile-by-name", model)
    profile = reg.cache.get(key)
    if profile is None:
        gen = reg.cache_guard.generation
        try:
            profile = reg.get(model)
        except UnknownModelError as exc:
            return Cost.unknown(exc.message)
        reg.cache_guard.put(key, profile, gen)
    rates = rates_for(reg, profile.provider, profile.name, when)
    assert rates is not None
    return _cost_of(rates, u)


def _cost_of(rates: Rates, u: Usage) -> Cost:
    try:
        return rates.cost(u)
    except OverflowError:  # token counts past what a float holds (a Usage built by hand)
        raise InvalidRequestError(
            "usage token counts are too large to price: each must be a non-negative integer "
            "that fits a float"
        ) from None


def estimate_request_cost(
    req: ChatRequest, dep: Deployment, *, registry: LLMRegistry | None = None
) -> float | None:
    """An upper estimate of a call's cost for budget reservations: the prompt's tokens (exact
    for OpenAI models, else the documented estimate) at the input price, plus ``max_tokens``
    (else the model's maximum output) at the higher of the output and reasoning prices -- the
    highest prices of the day's time-of-day windows (:func:`highest_rates`).
    None when the model or its price is unknown. An embeddings request is its input tokens at
    the embedding model's price."""
    if isinstance(req, EmbedRequest):
        return embedding_cost(dep.provider, dep.model, Usage(req.tokens)).usd
    from .tokens import count_message_tokens

    reg = registry or _default_registry()
    rates = highest_rates(reg, dep.provider, dep.model)
    if rates is None or not rates.known:
        return None
    profile = reg.lookup(dep.provider, dep.model)
    assert profile is not None
    assert rates.input is not None
    assert rates.output is not None
    caps = profile.capabilities
    prompt = count_message_tokens(
        req.messages,
        dep.label,
        tools=req.params.tools,
        encoding=profile.tokenizer,
    )
    out = req.params.max_tokens or caps.max_output_tokens
    if out is None and caps.max_context_window is not None:
        out = max(caps.max_context_window - prompt, 0)
    if out is None:
        return None
    per_out = max(rates.output, rates.reasoning if rates.reasoning is not None else 0.0)
    return prompt * rates.input + out * per_out


def estimate_usage(
    req: ChatRequest, dep: Deployment, resp: Response, *, registry: LLMRegistry | None = None
) -> Usage:
    """The usage of an answer whose provider reported none (a stream without a usage chunk, a
    body without ``usage``), counted here: the prompt from the request (as
    :func:`estimate_request_cost` counts it), the completion from the text and tool calls
    received. Marked ``estimated=True``; exact only where ``llmrelay.count_tokens`` is."""
    from .tokens import count_message_tokens, count_tokens

    reg = registry or _default_registry()
    profile = reg.lookup(dep.provider, dep.model)
    enc = profile.tokenizer if profile is not None else None
    prompt = count_message_tokens(req.messages, dep.label, tools=req.params.tools, encoding=enc)
    out = count_tokens(resp.text, dep.label, encoding=enc) if resp.text else 0
    for tc in resp.tool_calls:
        out += count_tokens(tc.name + tc.arguments, dep.label, encoding=enc)
    return Usage(prompt, out, estimated=True)


def embedding_cost(provider: str, model: str, usage: Usage) -> Cost:
    """The price of an embeddings answer's input tokens (``data/embeddings.json``)."""
    from .embeddings import embedding_model  # the table loads with the first embeddings call

    row = embedding_model(provider, model)
    if row is None or row.input_per_1m is None:
        return Cost.unknown(f"no embeddings price for {provider}/{model}")
    usd = usage.input_tokens * row.input_per_1m / 1e6
    return Cost(usd, True, input_usd=usd, estimated=usage.estimated)
