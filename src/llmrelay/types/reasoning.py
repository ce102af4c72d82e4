"""How one model takes ``reasoning_effort``: :class:`ReasoningMap`, the ``reasoning`` field of a
catalog row (Anthropic and Gemini), read by the wire adapters.

The catalog layer attaches the row's map to the request (``ChatRequest.reasoning``) when the
caller sets ``reasoning_effort``; an adapter without one (a model the catalog does not know, or
an engine without the catalog layer) uses its own family defaults
(``anthropic_models.thinking_map``, ``gemini.thinking_map``).

``style`` says what the provider takes:

* ``effort`` -- Anthropic adaptive thinking: ``thinking: {"type": "adaptive"}`` and
  ``output_config.effort`` (``values`` maps our effort to Anthropic's);
* ``budget`` -- a token budget: Anthropic ``thinking: {"type": "enabled", "budget_tokens": N}``,
  Gemini 2.5 ``thinkingConfig.thinkingBudget`` (``values`` maps our effort to tokens);
* ``level`` -- Gemini 3 ``thinkingConfig.thinkingLevel`` (``values`` maps to ``LOW``...);
* ``none`` -- the model has no thinking: ``reasoning_effort`` is dropped and reported.

``nearest`` sends an effort the model lacks as another one (reported in ``adjusted_params``):
``{"minimal": "low"}``; ``{"none": "low"}`` for a model that always thinks. ``off`` is the
value that turns thinking off where the provider needs one sent (Gemini 2.5 Flash's budget 0);
Anthropic's thinking is off unless asked for, so ``none`` sends nothing there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError, shown, shown_names

__all__ = ["REASONING_STYLES", "ReasoningMap"]

#: The ``style`` values of a :class:`ReasoningMap`.
REASONING_STYLES: tuple[str, ...] = ("effort", "budget", "level", "none")
#: The efforts a map may name (``none`` only in ``nearest``).
_EFFORTS = ("minimal", "low", "medium", "high")


@dataclass(frozen=True, slots=True)
class ReasoningMap:
    """How one model takes ``reasoning_effort`` (see the module docstring)."""

    style: str
    values: Mapping[str, str | int] = field(default_factory=dict)
    nearest: Mapping[str, str] = field(default_factory=dict)
    off: str | int | None = None
    source: str | None = None

    def validate(self, where: str = "") -> None:
        """``ConfigurationError`` naming the field when the map cannot be used."""
        w = f"{where}reasoning"
        if self.style not in REASONING_STYLES:
            raise ConfigurationError(
                f"{w}.style must be one of {', '.join(REASONING_STYLES)}, not {shown(self.style)}"
            )
        if self.style == "none":
            if self.values or self.nearest or self.off is not None:
                raise ConfigurationError(f"{w}: style 'none' takes no values, nearest or off")
            return
        if not isinstance(self.values, Mapping) or not self.values:
            raise ConfigurationError(f"{w}.values must map efforts to what the model takes")
        for k, v in self.values.items():
            if k not in _EFFORTS:
                raise ConfigurationError(
                    f"{w}.values: unknown effort {shown(k)}; use {', '.join(_EFFORTS)}"
                )
            self._check_value(f"{w}.values.{k}", v)
        if self.off is not None:
            if self.style != "budget" and self.style != "level":
                raise ConfigurationError(f"{w}.off applies to the budget and level styles only")
            self._check_value(f"{w}.off", self.off, zero=True)
        if not isinstance(self.nearest, Mapping):
            raise ConfigurationError(f"{w}.nearest must map efforts to efforts")
        for k, v in self.nearest.items():
            if k not in ("none", *_EFFORTS) or k in self.values:
                raise ConfigurationError(
                    f"{w}.nearest: {shown(k)} must name an effort the model lacks (none, or one "
                    "not in values)"
                )
            if v not in self.values:
                raise ConfigurationError(
                    f"{w}.nearest.{k} must be one of the efforts in values "  # k: an effort
                    f"({', '.join(self.values)}), not {shown(v)}"
                )

    def _check_value(self, w: str, v: Any, *, zero: bool = False) -> None:
        if self.style == "budget":
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if zero else 1):
                raise ConfigurationError(f"{w} must be a number of tokens, not {shown(v)}")
        elif not isinstance(v, str) or not v:
            raise ConfigurationError(f"{w} must be the provider's name for it, not {shown(v)}")

    def to_row(self) -> dict[str, Any]:
        """The catalog-row form (inverse of :meth:`from_row`)."""
        return {
            "style": self.style,
            "values": dict(self.values),
            "nearest": dict(self.nearest),
            "off": self.off,
            "source": self.source,
        }

    @classmethod
    def of_row(cls, row: Any) -> ReasoningMap | None:
        """:meth:`from_row`, or None for a row without the field."""
        return None if row is None else cls.from_row(row)

    @classmethod
    def from_row(cls, row: Any, where: str = "") -> ReasoningMap:
        """A validated map from a catalog row's ``reasoning`` table."""
        if not isinstance(row, Mapping):
            raise ConfigurationError(
                f"{where}reasoning must be a table like {{'style': 'effort', 'values': ...}}, "
                f"not {shown(row)}"
            )
        bad = set(row) - {"style", "values", "nearest", "off", "source"}
        if bad:
            raise ConfigurationError(
                f"{where}reasoning: unknown field(s) {shown_names(bad)}; known: "
                "nearest, off, source, style, values"
            )
        source = row.get("source")
        if source is not None and not isinstance(source, str):
            raise ConfigurationError(f"{where}reasoning.source must be a string")
        values, nearest = row.get("values") or {}, row.get("nearest") or {}
        out = cls(  # copies: the caller's dicts changed later never change the catalog's map
            row.get("style"),  # type: ignore[arg-type]
            dict(values) if isinstance(values, Mapping) else values,
            dict(nearest) if isinstance(nearest, Mapping) else nearest,
            row.get("off"),
            source,
        )
        out.validate(where)
        return out
