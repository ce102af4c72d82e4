"""Keeping the catalog true: which rows are due for a re-check, and what changes soon.

``check_catalog(registry)`` (and ``llmrelay catalog check``) reports:

* **stale rows** -- ``verified_at`` older than ``max_age_days`` (or missing): check them
  against the provider's pages and update their prices, limits, dates and ``verified_at``; the
  embedding models' table (``data/embeddings.json``, its ``checked`` dates) is checked the same
  way, its rows named ``provider/model (embeddings)``;
* **upcoming changes** within ``within_days``: a dated price taking effect, a promotion ending,
  a shutdown, and a built-in alias whose model shuts down (point it at the replacement);
* **retired aliases** -- a built-in alias whose model has already shut down:
  listed until the alias is pointed at a current model, however long ago the date passed;
* **open promotions** -- a row whose price in force today is marked as a sale or promotion
  (``prices.promotion_source``) with no end date: nothing says when it ends, so re-check it
  and give the promotion its end (a ``price_schedule`` period with ``until``) once known.

Dates are UTC days; "today" is the registry's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from ..providers.aliases import CURRENT_MODELS
from .embeddings import embedding_models

if TYPE_CHECKING:
    from .model_registry import LLMRegistry
    from .profiles import LLMProfile, Pricing

__all__ = ["CatalogReport", "Change", "OpenPromotion", "StaleRow", "check_catalog"]


@dataclass(frozen=True, slots=True)
class StaleRow:
    """A row whose last verification is older than the threshold (``verified_at`` None:
    never verified)."""

    model: str
    verified_at: date | None
    age_days: int | None
    sources: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "verified_at": None if self.verified_at is None else self.verified_at.isoformat(),
            "age_days": self.age_days,
            "sources": list(self.sources),
        }


@dataclass(frozen=True, slots=True)
class Change:
    """Something that takes effect on ``on``: ``kind`` is ``price`` (a dated price starts),
    ``promotion_end``, ``shutdown`` or ``alias`` (a built-in alias's model shuts down);
    ``alias_retired`` (its model shut down on ``on``, a day already past)."""

    model: str
    kind: str
    on: date
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "kind": self.kind,
            "on": self.on.isoformat(),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class OpenPromotion:
    """A row whose price in force is a promotion with no known end: ``price`` says what it
    is, ``source`` where the provider calls it a sale."""

    model: str
    price: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "price": self.price, "source": self.source}


@dataclass(slots=True)
class CatalogReport:
    today: date
    max_age_days: int
    within_days: int
    stale: list[StaleRow] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    #: Built-in aliases whose model has already shut down, whenever that was (refused, routed
    #: or retired for some tiers: the detail says which).
    retired_aliases: list[Change] = field(default_factory=list)
    #: Promotional prices in force with no end date (re-check when they end).
    open_promotions: list[OpenPromotion] = field(default_factory=list)

    @property
    def actionable(self) -> bool:
        """Is there anything to act on?"""
        return bool(self.stale or self.changes or self.retired_aliases or self.open_promotions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "max_age_days": self.max_age_days,
            "within_days": self.within_days,
            "stale": [s.as_dict() for s in self.stale],
            "changes": [c.as_dict() for c in self.changes],
            "retired_aliases": [c.as_dict() for c in self.retired_aliases],
            "open_promotions": [o.as_dict() for o in self.open_promotions],
        }


def _price(p: Pricing) -> str:
    def money(v: float | None) -> str:
        return "?" if v is None else f"${v:g}"

    cached = f", cached {money(p.cached_input)}" if p.cached_input is not None else ""
    return f"{money(p.input)} in / {money(p.output)} out{cached} per 1M tokens"


def _changes(p: LLMProfile, today: date, horizon: date) -> list[Change]:
    out = []
    for period in p.price_schedule:
        if today <= period.start <= horizon:
            out.append(
                Change(p.id, "price", period.start, f"price becomes {_price(period.pricing)}")
            )
        if period.end is not None and today <= period.end <= horizon:
            after = p.pricing_on(period.end)
            out.append(
                Change(
                    p.id,
                    "promotion_end",
                    period.end,
                    f"the promotional price ends; {_price(after)} from then",
                )
            )
    s = p.shutdown_date
    if s is not None and today <= s <= horizon:
        what = {
            "routed": f"the provider routes it to {p.replacement} (billed at that rate)",
            "tiers": f"retired for the {', '.join(p.retired_tiers)} tier(s)",
        }.get(p.retirement, "requests fail from then")
        repl = f"; replacement: {p.replacement}" if p.replacement else ""
        out.append(Change(p.id, "shutdown", s, f"shuts down: {what}{repl}"))
    return out


def _open_promotion(p: LLMProfile, day: date) -> OpenPromotion | None:
    """The promotion in force on ``day`` when nothing says when it ends."""
    period = None
    for x in p.price_schedule:
        if x.covers(day):
            period = x
    pricing = p.pricing if period is None else period.pricing
    source = pricing.promotion_source
    if source is None or (period is not None and period.end is not None):
        return None
    return OpenPromotion(p.id, _price(pricing), source)


def check_catalog(
    registry: LLMRegistry,
    *,
    max_age_days: int = 30,
    within_days: int = 30,
    today: date | None = None,
) -> CatalogReport:
    """Rows (chat and embedding models) verified more than ``max_age_days`` ago, the price
    changes, promotion ends, shutdowns and built-in aliases to shutting-down models due within
    ``within_days``, the built-in aliases whose model has already shut down, and promotional
    prices in force with no end date."""
    day = today or registry.today()
    horizon = day + timedelta(days=within_days)
    report = CatalogReport(day, max_age_days, within_days)
    for p in registry.list():
        v = p.verified_at
        if v is None or (day - v).days > max_age_days:
            age = None if v is None else (day - v).days
            report.stale.append(StaleRow(p.id, v, age, p.sources))
        report.changes.extend(_changes(p, day, horizon))
        promo = _open_promotion(p, day)
        if promo is not None:
            report.open_promotions.append(promo)
    for provider, rows in CURRENT_MODELS.items():
        for alias, model in rows:
            target = registry.lookup(provider, model)
            s = None if target is None else target.shutdown_date
            if target is None or s is None or s > horizon:
                continue
            repl = registry.current_replacement(target) or "(none named)"
            if day <= s:
                report.changes.append(
                    Change(
                        target.id,
                        "alias",
                        s,
                        f"built-in alias {alias!r} points at it; point it at {repl}",
                    )
                )
            else:
                how = {
                    "routed": f"the provider answers with {target.replacement}",
                    "tiers": f"refused on the {', '.join(target.retired_tiers)} tier(s)",
                }.get(target.retirement, "refused")
                report.retired_aliases.append(
                    Change(
                        target.id,
                        "alias_retired",
                        s,
                        f"built-in alias {alias!r} points at it, shut down on {s} ({how}); "
                        f"point it at {repl}",
                    )
                )
    for e in sorted(embedding_models(), key=attrgetter("provider", "model")):
        try:
            checked: date | None = date.fromisoformat(e.checked)
        except ValueError:
            checked = None
        if checked is None or (day - checked).days > max_age_days:
            report.stale.append(
                StaleRow(
                    f"{e.label} (embeddings)",
                    checked,
                    None if checked is None else (day - checked).days,
                    tuple(s.strip().split(" ")[0] for s in e.source.split(";") if s.strip()),
                )
            )
    report.changes.sort(key=lambda c: (c.on, c.model, c.kind))
    report.retired_aliases.sort(key=lambda c: (c.on, c.model, c.detail))
    report.open_promotions.sort(key=attrgetter("model"))
    return report
