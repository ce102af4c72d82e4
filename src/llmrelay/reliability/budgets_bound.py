"""The budget's default reservation: an upper bound of a call's cost without a tokenizer.

:func:`prompt_token_bound` bounds the prompt's tokens by its UTF-8 bytes plus allowances (see
:mod:`.budgets`' docstring for why it holds); :func:`bound_request_cost` prices that, and the
answer's token allowance, at the highest prices of the day (``highest_rates``).

The prices a bound uses are resolved once per model and kept in the registry's cache with the
span of time they hold for: within one UTC day's part before, or after, the
``RESERVE_AHEAD_S`` mark (that is what ``highest_rates`` depends on) and within the span of the
rates in force (a price window, a dated price). A change to the registry clears its cache, so a
new price is used on the next call; a clock past the span resolves them again.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

import orjson

from ..catalog.costs import (
    RESERVE_AHEAD_S,
    _default_registry,
    estimate_request_cost,
    highest_rates,
    resolve_rates,
    utc_day,
)
from ..types import AudioPart, DocumentPart, ImagePart, ReasoningPart, TextPart
from ..types.embed_request import EmbedRequest

if TYPE_CHECKING:
    from ..catalog.model_registry import LLMRegistry
    from ..core.layers import CallContext
    from ..providers.table import Deployment
    from ..types import ChatRequest

__all__ = ["bound_request_cost", "prompt_token_bound"]

#: The bound's allowances, in tokens, for what a prompt holds beyond its text's bytes. A
#: message: OpenAI's format spends 3 tokens plus the role's; the others a few special tokens.
_PER_MESSAGE = 8
_PRIMING = 8
#: Each tool definition and the schema of ``response_format`` are bounded by their JSON's bytes
#: plus this; a list of tools by this more (Anthropic's tool-use system prompt is 346 tokens).
_PER_TOOL = 32
_TOOLS = 512
#: One image: above the documented per-image counts at the providers' default sizes (OpenAI
#: 1,445 at high detail on tile-priced models, ~2,500 on patch-priced ones; Anthropic ~1,600;
#: Gemini 258 per tile). gpt-4o-mini prices an image as ~36,000 tokens: the bound is short there.
_IMAGE = 5_000
#: One document: this plus twice its bytes (a PDF page costs its text and an image of it).
_DOCUMENT = 5_000
#: A tool, schema or ``extra`` value that is not JSON (the adapters refuse it before sending).
_UNENCODABLE = 65_536


def _utf8(s: str | None) -> int:
    if not s:
        return 0
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def _json_bytes(value: Any) -> int:
    try:
        return len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError):
        return _UNENCODABLE


def prompt_token_bound(req: ChatRequest) -> int:
    """An upper bound of a chat request's prompt tokens, for any provider, without a tokenizer:
    the UTF-8 bytes of its text (no token is shorter than one byte) plus the allowances above
    for message framing, tool calls, tool definitions, images and documents. See the
    :mod:`.budgets` docstring for why it holds."""
    n = _PRIMING
    for m in req.messages:
        # ``_utf8`` of each field, inline for the usual message (an ASCII role, no name).
        s: str | None = m.role
        n += _PER_MESSAGE + ((len(s) if s.isascii() else _utf8(s)) if s else 0)
        s = m.name
        if s:
            n += _utf8(s)
        s = m.tool_call_id
        if s:
            n += _utf8(s)
        c = m.content
        if isinstance(c, str):
            n += len(c) if c.isascii() else _utf8(c)
        elif c is not None:
            for part in c:
                if isinstance(part, TextPart):
                    n += _utf8(part.text)
                elif isinstance(part, ImagePart):
                    n += _IMAGE
                elif isinstance(part, DocumentPart):
                    n += _DOCUMENT + 2 * len(part.data or b"") + 2 * _utf8(part.url)
                elif isinstance(part, AudioPart):
                    n += len(part.data)
                elif isinstance(part, ReasoningPart):
                    n += _utf8(part.text) + _utf8(part.signature) + _utf8(part.data)
                else:  # a part type this bound does not know: the largest allowance
                    n += _DOCUMENT + _UNENCODABLE
        if m.tool_calls:
            for tc in m.tool_calls:
                n += _PER_MESSAGE + _utf8(tc.id) + _utf8(tc.name) + _utf8(tc.arguments)
                n += _utf8(tc.signature)
    p = req.params
    if p.tools:
        n += _TOOLS
        for t in p.tools:
            n += _PER_TOOL + _utf8(t.name) + _utf8(t.description) + _json_bytes(t.parameters)
    if p.response_format:
        n += _PER_TOOL + _json_bytes(p.response_format)
    if p.extra:
        n += _json_bytes(p.extra)
    return n


#: What a bound needs of a model: the dollars per prompt token (the higher of the input and
#: cache-write prices), per answer token (the higher of the output and reasoning prices), and
#: the answer's allowance when the call sets no ``max_tokens`` (the model's maximum output, else
#: its context window). None: the model or its price is unknown.
BoundRates = tuple[float, float, "int | None"]


def bound_rates(registry: LLMRegistry | None, provider: str, model: str) -> BoundRates | None:
    """The rates a bound uses for ``model`` now (the registry's clock): ``highest_rates``
    and the model's answer allowance, remembered in the registry's cache for the span of time
    they hold for (see the module docstring). ``registry`` None or empty: the process-wide
    one."""
    reg = _default_registry() if registry is None else registry
    t = reg.now()
    key = ("budget-bound", provider, model)
    entry = reg.cache.get(key)
    if entry is not None and entry[1] <= t < entry[2]:
        # Held only by a registry that was not empty (and has not changed since).
        return entry[0]  # type: ignore[no-any-return]
    if registry is not None and not registry:  # an empty registry: the default one prices
        reg = _default_registry()
        t = reg.now()
        entry = reg.cache.get(key)
        if entry is not None and entry[1] <= t < entry[2]:
            return entry[0]  # type: ignore[no-any-return]
    gen = reg.cache_guard.generation  # a value computed across a change is not remembered
    rates = highest_rates(reg, provider, model, t)  # a clock giving no real time raises
    value: BoundRates | None = None
    lo, hi = -math.inf, math.inf  # an unknown model stays unknown until the registry changes
    if rates is not None:
        profile = reg.lookup(provider, model)
        assert profile is not None
        if rates.reason is None:
            inp, outp = rates.input, rates.output
            assert inp is not None
            assert outp is not None
            caps = profile.capabilities
            value = (
                max(inp, rates.cache_write or 0.0),
                max(outp, rates.reasoning or 0.0),
                caps.max_output_tokens or caps.max_context_window,
            )
        # ``highest_rates`` holds within the rates' own span (their known-ness and, without
        # windows, their amounts)...
        _, lo, hi = resolve_rates(reg, profile, t)
        # ... and within the part of the UTC day before or after the RESERVE_AHEAD_S mark
        # (the day's highest window prices; the next day's prices after the mark).
        start = datetime.combine(utc_day(t), time(), UTC).timestamp()
        edge = start + 86400.0 - RESERVE_AHEAD_S
        if t < edge:
            lo, hi = max(lo, start), min(hi, edge)
        else:
            lo, hi = max(lo, edge), min(hi, start + 86400.0)
    reg.cache_guard.put(key, (value, lo, hi), gen)
    return value


def bound_request_cost(
    req: ChatRequest, dep: Deployment, *, registry: LLMRegistry | None = None
) -> float | None:
    """An upper bound of a call's cost for budget reservations (the default estimator):
    :func:`prompt_token_bound` at the higher of the input and cache-write prices, plus
    ``max_tokens`` (else the model's maximum output, else its context window) at the higher of
    the output and reasoning prices -- the highest prices any time-of-day window of the day
    sets (``highest_rates``: a call started off-peak and retried at peak is still covered).
    None when the model or its price is unknown. An embeddings
    request is its input tokens at the embedding model's price. No tokenizer is loaded.
    ``registry`` prices it (default: the process-wide catalog)."""
    if isinstance(req, EmbedRequest):
        return estimate_request_cost(req, dep)
    rates = bound_rates(registry, dep.provider, dep.model)
    if rates is None:
        return None
    per_in, per_out, allowance = rates
    out = req.params.max_tokens or allowance
    if out is None:
        return None
    return prompt_token_bound(req) * per_in + out * per_out


_registry_type: type[LLMRegistry] | None = None


def catalog_registry(ctx: CallContext) -> LLMRegistry | None:
    """The registry of the call's engine catalog (None: the default one prices it)."""
    global _registry_type
    reg = getattr(ctx.catalog, "registry", None)
    if reg is None:
        return None
    cls = _registry_type
    if cls is None:  # imported on first use, not with this module
        from ..catalog.model_registry import LLMRegistry

        cls = _registry_type = LLMRegistry
    return reg if isinstance(reg, cls) else None
