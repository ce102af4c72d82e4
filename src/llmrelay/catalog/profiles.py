"""The catalog's domain types (seed 003's ``models.py``): ``ModelFamily``, ``MediaType``,
``LLMCapabilities``, ``LLMProfile`` and the price block every profile carries.

They are frozen, slotted dataclasses validated on construction: a negative price, a context
window of zero or a shutdown date before the deprecation date raises ``ConfigurationError``
naming the model and the field. Prices are US dollars per **million** tokens, as every provider
publishes them; ``None`` means unknown (never silently $0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

from ..errors import ConfigurationError, shown, shown_names
from ..types import PARAM_NAMES
from ..types.params import REASONING_EFFORTS
from ..types.reasoning import ReasoningMap
from .pricing import (
    WEEKDAYS,
    PricePeriod,
    PriceWindow,
    Pricing,
    check_price,
    check_windows,
    highest_pricing,
    parse_date,
    window_at,
)

__all__ = [
    "CAPABILITY_NAMES",
    "LIFECYCLE_STATES",
    "PARAM_RULE_CONDITIONS",
    "RETIREMENT_KINDS",
    "WEEKDAYS",
    "LLMCapabilities",
    "LLMProfile",
    "MediaType",
    "ModelFamily",
    "ParamRule",
    "PricePeriod",
    "PriceWindow",
    "Pricing",
    "rules_from_rows",
]


_E = TypeVar("_E", bound=StrEnum)


def _member(cls: type[_E], value: str | _E, unknown: str) -> _E:
    """``value`` as a member of ``cls``; ``ConfigurationError`` (``unknown`` and the choices)
    when it is none."""
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        raise ConfigurationError(
            f"{unknown} {shown(value)}; use one of {', '.join(m.value for m in cls)}"
        ) from None


class ModelFamily(StrEnum):
    """The family a model belongs to (used for grouping and tokenizer choice)."""

    GPT = "gpt"
    O_SERIES = "o-series"
    GPT_OSS = "gpt-oss"
    CLAUDE = "claude"
    GEMINI = "gemini"
    GEMMA = "gemma"
    LLAMA = "llama"
    MISTRAL = "mistral"
    MIXTRAL = "mixtral"
    QWEN = "qwen"
    DEEPSEEK = "deepseek"
    GROK = "grok"
    KIMI = "kimi"
    OTHER = "other"

    @classmethod
    def parse(cls, value: str | ModelFamily, *, where: str = "") -> ModelFamily:
        return _member(cls, value, f"{where}unknown model family")


class MediaType(StrEnum):
    """A modality a model reads or writes."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    PDF = "pdf"

    @classmethod
    def parse(cls, value: str | MediaType, *, where: str = "") -> MediaType:
        return _member(cls, value, f"{where}unknown media type")

    @classmethod
    def from_mime_type(cls, mime: str) -> MediaType:
        """``"image/png"`` -> IMAGE, ``"application/pdf"`` -> PDF, ``"text/plain"`` -> TEXT."""
        major, _, minor = mime.lower().partition("/")
        if minor == "pdf":
            return cls.PDF
        if major in ("image", "audio", "video", "text"):
            return cls(major)
        raise ConfigurationError(f"no media type for MIME type {shown(mime)}")


def _check_int(where: str, name: str, v: Any) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
        raise ConfigurationError(
            f"{where}{name} must be a positive integer or null, not {shown(v)}"
        )


#: When a :class:`ParamRule` applies: ``always``; ``reasoning`` -- only when
#: ``reasoning_effort`` is set to something other than ``"none"`` (extended thinking);
#: ``unless_reasoning_none`` -- unless ``reasoning_effort="none"`` (the model reasons by
#: default, e.g. OpenAI's GPT-6 family).
PARAM_RULE_CONDITIONS: tuple[str, ...] = ("always", "reasoning", "unless_reasoning_none")

#: Provider parameters a rule may name that travel in ``GenerationParams.extra``.
EXTRA_RULE_PARAMS: frozenset[str] = frozenset({"top_k"})

#: What a :class:`ParamRule` rejects: ``any`` value, or only a ``forced`` tool choice
#: (``"required"`` or a named tool).
PARAM_RULE_VALUES: tuple[str, ...] = ("any", "forced")


@dataclass(frozen=True, slots=True)
class ParamRule:
    """A generation parameter the model rejects (HTTP 400), with where that is documented.

    ``default`` is the one value the model accepts (OpenAI reasoning models take
    ``temperature=1``): a request carrying exactly it has the parameter dropped silently.
    ``accepts`` lists the values the model takes (``reasoning_effort`` only: OpenAI's o-series
    takes ``low``, ``medium``, ``high``); any other value is rejected. A rule without it
    rejects every value (``values`` says which)."""

    param: str
    when: str = "always"
    values: str = "any"
    default: float | None = None
    source: str | None = None
    note: str | None = None
    accepts: tuple[str, ...] = ()

    def validate(self, where: str = "") -> None:
        if self.param not in PARAM_NAMES and self.param not in EXTRA_RULE_PARAMS:
            raise ConfigurationError(
                f"{where}rejected_params: unknown parameter {shown(self.param)}; use one of "
                f"{', '.join(sorted(PARAM_NAMES | EXTRA_RULE_PARAMS))}"
            )
        if self.when not in PARAM_RULE_CONDITIONS:
            raise ConfigurationError(
                f"{where}rejected_params.when must be one of {', '.join(PARAM_RULE_CONDITIONS)}, "
                f"not {shown(self.when)}"
            )
        if self.values not in PARAM_RULE_VALUES:
            raise ConfigurationError(
                f"{where}rejected_params.values must be one of {', '.join(PARAM_RULE_VALUES)}, "
                f"not {shown(self.values)}"
            )
        if self.values == "forced" and self.param != "tool_choice":
            raise ConfigurationError(
                f"{where}rejected_params: values 'forced' applies to tool_choice only"
            )
        if self.default is not None:
            check_price(where, f"rejected_params.{self.param}.default", self.default)
        if self.accepts:
            if self.param != "reasoning_effort":
                raise ConfigurationError(
                    f"{where}rejected_params: accepts applies to reasoning_effort only"
                )
            bad = [v for v in self.accepts if v not in REASONING_EFFORTS]
            if bad:
                raise ConfigurationError(
                    f"{where}rejected_params.reasoning_effort.accepts: unknown value(s) "
                    f"{', '.join(map(repr, bad))}; use {', '.join(REASONING_EFFORTS)}"
                )


_RULE_KEYS = frozenset(f.name for f in dataclasses.fields(ParamRule))


def rules_from_rows(items: Any) -> tuple[ParamRule, ...]:
    """A catalog row's ``rejected_params`` list as rules (``ConfigurationError`` naming the
    rule and field that is wrong)."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ConfigurationError(f"rejected_params must be a list of rules, not {shown(items)}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("param"), str):
            raise ConfigurationError(
                f"rejected_params[{i}] must be a table with a 'param' name, not {shown(item)}"
            )
        bad = set(item) - _RULE_KEYS
        if bad:
            raise ConfigurationError(
                f"rejected_params[{i}]: unknown field(s) {shown_names(bad)}; known: "
                f"{', '.join(sorted(_RULE_KEYS))}"
            )
        for f in ("when", "values", "source", "note"):
            if item.get(f) is not None and not isinstance(item[f], str):
                raise ConfigurationError(f"rejected_params[{i}].{f} must be a string")
        fields = {k: v for k, v in item.items() if v is not None}
        if "accepts" in fields:
            accepts = fields["accepts"]
            if not isinstance(accepts, list) or not all(isinstance(v, str) for v in accepts):
                raise ConfigurationError(
                    f"rejected_params[{i}].accepts must be a list of values, not {shown(accepts)}"
                )
            fields["accepts"] = tuple(accepts)
        out.append(ParamRule(**fields))
    return tuple(out)


#: What happens to a model after its shutdown date: ``refused`` (the provider answers with an
#: error: llmrelay raises ``ModelRetiredError`` before sending), ``routed`` (the provider
#: serves the request with ``replacement`` and bills it at the replacement's rate) or
#: ``tiers`` (retired only for the account tiers in ``retired_tiers``: warn, still send).
RETIREMENT_KINDS: tuple[str, ...] = ("refused", "routed", "tiers")

#: :meth:`LLMProfile.lifecycle_state` values.
LIFECYCLE_STATES: tuple[str, ...] = (
    "active",
    "deprecated",
    "retired",
    "retired_routed",
    "retired_tiers",
)


#: The capability flags a query may name (``get_models_by_capability(capability=...)``).
CAPABILITY_NAMES: tuple[str, ...] = (
    "supports_streaming",
    "supports_tools",
    "supports_function_calling",
    "supports_vision",
    "supports_json_mode",
    "supports_json_schema",
    "supports_system_prompt",
    "supports_reasoning",
    "supports_prompt_caching",
    "supports_audio",
    "supports_pdf",
    "supports_native_json_schema",
)


@dataclass(frozen=True, slots=True)
class LLMCapabilities:
    """What a model can do, its limits and its prices (seed 003's ``LLMCapabilities``)."""

    max_context_window: int | None = None
    max_output_tokens: int | None = None
    supports_streaming: bool = True
    supports_tools: bool = False
    supports_vision: bool = False
    supports_json_mode: bool = False
    supports_json_schema: bool = False
    supports_system_prompt: bool = True
    supports_reasoning: bool = False
    supports_prompt_caching: bool = False
    #: The provider's own JSON-schema output format (Anthropic ``output_config.format``,
    #: OpenAI ``response_format`` json_schema, Gemini ``responseSchema``); False: structured
    #: output needs a forced tool.
    supports_native_json_schema: bool = False
    input_modalities: frozenset[MediaType] = frozenset({MediaType.TEXT})
    output_modalities: frozenset[MediaType] = frozenset({MediaType.TEXT})
    pricing: Pricing = field(default_factory=Pricing)

    def validate(self, where: str = "") -> None:
        _check_int(where, "max_context_window", self.max_context_window)
        _check_int(where, "max_output_tokens", self.max_output_tokens)
        if (
            self.max_context_window is not None
            and self.max_output_tokens is not None
            and self.max_output_tokens > self.max_context_window
        ):
            raise ConfigurationError(
                f"{where}max_output_tokens ({self.max_output_tokens}) is larger than the context "
                f"window ({self.max_context_window})"
            )
        self.pricing.validate(where)

    # seed 003 spellings
    @property
    def supports_function_calling(self) -> bool:
        return self.supports_tools

    @property
    def supports_audio(self) -> bool:
        return MediaType.AUDIO in self.input_modalities

    @property
    def supports_pdf(self) -> bool:
        return MediaType.PDF in self.input_modalities

    @property
    def input_cost_per_1k_tokens(self) -> float | None:
        p = self.pricing.input
        return None if p is None else p / 1000.0

    @property
    def output_cost_per_1k_tokens(self) -> float | None:
        p = self.pricing.output
        return None if p is None else p / 1000.0


@dataclass(frozen=True, slots=True)
class LLMProfile:
    """One model of one provider: identity, lifecycle and capabilities (seed 003's
    ``LLMProfile``). ``name`` is the provider's model id; ``id`` is ``provider/name``."""

    provider: str
    name: str
    capabilities: LLMCapabilities = field(default_factory=LLMCapabilities)
    family: ModelFamily = ModelFamily.OTHER
    aliases: tuple[str, ...] = ()
    display_name: str | None = None
    description: str | None = None
    release_date: date | None = None
    deprecation_date: date | None = None
    shutdown_date: date | None = None
    replacement: str | None = None
    lifecycle_source: str | None = None
    #: ``o200k_base`` / ``cl100k_base`` for exact token counts, None for the estimate.
    tokenizer: str | None = None
    #: Where this row came from: "bundled", "user", "detected" or a file path.
    origin: str = "user"
    #: Dated prices over the base ``capabilities.pricing`` (see :meth:`pricing_on`).
    price_schedule: tuple[PricePeriod, ...] = ()
    #: Recurring time-of-day prices over the price of the day (see :class:`PriceWindow`).
    price_windows: tuple[PriceWindow, ...] = ()
    #: What happens after ``shutdown_date`` (one of ``RETIREMENT_KINDS``).
    retirement: str = "refused"
    #: ``retirement="tiers"``: the account tiers the model is retired for.
    retired_tiers: tuple[str, ...] = ()
    #: Generation parameters the model rejects (see :class:`ParamRule`).
    rejected_params: tuple[ParamRule, ...] = ()
    #: ``"responses"`` when the model calls tools only through OpenAI's Responses API (the
    #: Chat Completions endpoint rejects ``tools`` for it); None: any endpoint.
    tools_api: str | None = None
    #: The day the row was last checked against its sources.
    verified_at: date | None = None
    #: Where the row's facts come from (the provider's pages first).
    sources: tuple[str, ...] = ()
    #: How the model takes ``reasoning_effort`` (Anthropic thinking/effort, Gemini
    #: thinkingConfig); None: the adapter's family defaults.
    reasoning: ReasoningMap | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.provider, str) or not self.provider.strip():
            raise ConfigurationError(
                f"a model profile needs a provider, not {shown(self.provider)}"
            )
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError(f"a model profile needs a model name, not {shown(self.name)}")
        where = f"model {self.provider}/{self.name}: "
        if not isinstance(self.capabilities, LLMCapabilities):
            raise ConfigurationError(f"{where}capabilities must be an LLMCapabilities")
        self.capabilities.validate(where)
        if not isinstance(self.family, ModelFamily):
            object.__setattr__(self, "family", ModelFamily.parse(self.family, where=where))
        for a in self.aliases:
            if not isinstance(a, str) or not a.strip():
                raise ConfigurationError(f"{where}every alias must be a non-empty string")
        for f in ("release_date", "deprecation_date", "shutdown_date", "verified_at"):
            v = getattr(self, f)
            if v is not None and not isinstance(v, date):
                object.__setattr__(self, f, parse_date(v, f"{where}{f}"))
        if (
            self.deprecation_date is not None
            and self.shutdown_date is not None
            and self.shutdown_date < self.deprecation_date
        ):
            raise ConfigurationError(
                f"{where}shutdown_date {self.shutdown_date} is before deprecation_date "
                f"{self.deprecation_date}"
            )
        self._check_lifecycle_fields(where)
        if self.tokenizer not in (None, "o200k_base", "cl100k_base"):
            raise ConfigurationError(
                f"{where}tokenizer must be 'o200k_base', 'cl100k_base' or null, "
                f"not {shown(self.tokenizer)}"
            )

    def _check_lifecycle_fields(self, where: str) -> None:
        if self.retirement not in RETIREMENT_KINDS:
            raise ConfigurationError(
                f"{where}retirement must be one of {', '.join(RETIREMENT_KINDS)}, "
                f"not {shown(self.retirement)}"
            )
        if self.retirement == "routed" and not self.replacement:
            raise ConfigurationError(
                f"{where}retirement 'routed' needs the replacement the provider routes to"
            )
        if self.retirement == "tiers" and not self.retired_tiers:
            raise ConfigurationError(
                f"{where}retirement 'tiers' needs retired_tiers (the account tiers it is "
                "retired for)"
            )
        if self.tools_api not in (None, "responses"):
            raise ConfigurationError(
                f"{where}tools_api must be 'responses' or null, not {shown(self.tools_api)}"
            )
        for rule in self.rejected_params:
            rule.validate(where)
        if self.reasoning is not None:
            if not isinstance(self.reasoning, ReasoningMap):
                raise ConfigurationError(f"{where}reasoning must be a ReasoningMap")
            self.reasoning.validate(where)
        last: date | None = None
        for period in self.price_schedule:
            period.pricing.validate(f"{where}price_schedule[{period.start}]: ")
            if period.end is not None and period.end <= period.start:
                raise ConfigurationError(
                    f"{where}price_schedule: the period from {period.start} ends on "
                    f"{period.end}, not after it starts"
                )
            if last is not None and period.start < last:
                raise ConfigurationError(
                    f"{where}price_schedule must be in date order ({period.start} comes "
                    f"after {last})"
                )
            last = period.start
        check_windows(self.price_windows, where)

    def window_at(self, t: float) -> tuple[PriceWindow | None, float, float]:
        """The price window in force at epoch time ``t`` (None: none), with the span
        ``[lo, hi)`` of epoch times it holds for (up to the next window edge)."""
        return window_at(self.price_windows, t)

    def pricing_at(self, t: float, day: date) -> Pricing:
        """The price in force at epoch time ``t`` (on UTC day ``day``): the day's price
        (:meth:`pricing_on`) under the time-of-day window in force, if any."""
        base = self.pricing_on(day)
        window = window_at(self.price_windows, t)[0]
        return base if window is None else window.applied(base)

    def highest_pricing_on(self, day: date) -> Pricing:
        """The highest price each amount can take on ``day`` at any time of day: the day's
        price and every window over it, amount by amount (budget reservations)."""
        return highest_pricing(self.price_windows, self.pricing_on(day))

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.name}"

    def pricing_on(self, day: date) -> Pricing:
        """The price in force on ``day`` (UTC): the latest-starting schedule period that
        covers it, else the base ``capabilities.pricing``."""
        found = self.capabilities.pricing
        for period in self.price_schedule:
            if period.covers(day):
                found = period.pricing
        return found

    def price_boundaries(self) -> tuple[date, ...]:
        """Every day on which the price in force may change (sorted)."""
        days = {p.start for p in self.price_schedule}
        days.update(p.end for p in self.price_schedule if p.end is not None)
        return tuple(sorted(days))

    def lifecycle_state(self, today: date) -> str:
        """One of ``LIFECYCLE_STATES`` on ``today``."""
        if self.is_retired(today):
            if self.retirement == "routed":
                return "retired_routed"
            if self.retirement == "tiers":
                return "retired_tiers"
            return "retired"
        return "deprecated" if self.is_deprecated(today) else "active"

    @property
    def pricing(self) -> Pricing:
        return self.capabilities.pricing

    def is_deprecated(self, today: date) -> bool:
        return (self.deprecation_date is not None and today >= self.deprecation_date) or (
            self.shutdown_date is not None and not self.is_retired(today)
        )

    def is_retired(self, today: date) -> bool:
        return self.shutdown_date is not None and today >= self.shutdown_date

    def replace(self, **changes: Any) -> LLMProfile:
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return f"LLMProfile({self.id!r}, family={self.family.value!r})"


#: ``get_models_by_capability(max_cost_per_1k=...)`` compares a blended price: input and output
#: tokens weighed 3:1, the usual mix of a chat call (long prompt, shorter answer).
BLEND_INPUT_WEIGHT = 3
BLEND_OUTPUT_WEIGHT = 1


def blended_cost_per_1k(capabilities: LLMCapabilities) -> float | None:
    """Dollars per 1,000 tokens blended 3:1 input:output -- ``(3 * input + output) / 4`` --
    or None when the input or output price is unknown (the base price)."""
    i, o = capabilities.input_cost_per_1k_tokens, capabilities.output_cost_per_1k_tokens
    if i is None or o is None:
        return None
    total = BLEND_INPUT_WEIGHT + BLEND_OUTPUT_WEIGHT
    return (BLEND_INPUT_WEIGHT * i + BLEND_OUTPUT_WEIGHT * o) / total


def blended_price_per_1k(pricing: Pricing) -> float | None:
    """:func:`blended_cost_per_1k` of a price (dollars per million tokens) in force on a day."""
    if pricing.input is None or pricing.output is None:
        return None
    total = BLEND_INPUT_WEIGHT + BLEND_OUTPUT_WEIGHT
    return (
        (BLEND_INPUT_WEIGHT * pricing.input + BLEND_OUTPUT_WEIGHT * pricing.output) / total / 1000
    )
