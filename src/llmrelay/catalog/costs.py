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
Prices are looked up once per model and kept as per-token rates, so a cost takes a few
microseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequestError, UnknownModelError, finite, shown
from ..types import Usage

if TYPE_CHECKING:
    from ..providers.table import Deployment
    from ..types import ChatRequest, Response
    from .model_registry import LLMRegistry
    from .profiles import LLMProfile

__all__ = [
    "Cost",
    "Rates",
    "calculate_cost",
    "estimate_request_cost",
    "estimate_usage",
    "rates_for",
]

_M = 1_000_000.0


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
    def of(cls, profile: LLMProfile) -> Rates:
        pr = profile.pricing

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
            profile.id,
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
            return Cost(
                input_usd + output_usd,
                True,
                input_usd,
                output_usd,
                0.0,
                0.0,
                estimated=u.estimated,
            )
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


def rates_for(registry: LLMRegistry, provider: str | None, model: str) -> Rates | None:
    """The cached rates of a model (None when the catalog does not know it)."""
    key = ("rates", provider, model)
    cache = registry.cache
    try:
        return cache[key]  # type: ignore[no-any-return]
    except KeyError:
        pass
    profile = registry.lookup(provider, model)
    rates = Rates.of(profile) if profile is not None else None
    cache[key] = rates
    return rates


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
) -> Cost:
    """The cost of ``usage`` on ``model`` ("provider/model", an alias or a bare id, or a
    profile). An unknown model or price gives a typed unknown cost, never $0."""
    u = usage if type(usage) is Usage else to_usage(usage)
    if not isinstance(model, str):
        from .profiles import LLMProfile

        if not isinstance(model, LLMProfile):
            raise InvalidRequestError(
                f"model must be a model name or an LLMProfile, not {type(model).__name__}"
            )
        return _cost_of(Rates.of(model), u)
    if registry is not None:
        from .model_registry import LLMRegistry

        if not isinstance(registry, LLMRegistry):
            raise InvalidRequestError(
                f"registry must be an LLMRegistry or None, not {type(registry).__name__}"
            )
    reg = registry or _default_registry()
    key = ("rates-by-name", model)
    rates = reg.cache.get(key)
    if rates is None:
        try:
            profile = reg.get(model)
        except UnknownModelError as exc:
            return Cost.unknown(exc.message)
        rates = reg.cache[key] = Rates.of(profile)
    assert isinstance(rates, Rates)
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
    (else the model's maximum output) at the higher of the output and reasoning prices.
    None when the model or its price is unknown."""
    from .tokens import count_message_tokens

    reg = registry or _default_registry()
    rates = rates_for(reg, dep.provider, dep.model)
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
