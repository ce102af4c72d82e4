"""Prices of one model: the base price (``Pricing``), dated periods (``PricePeriod``) and
recurring UTC time-of-day windows (``PriceWindow``), with their validation and the row form
of a window. Prices are US dollars per **million** tokens; ``None`` means unknown."""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from ..errors import ConfigurationError, shown, shown_names

__all__ = [
    "PRICE_AMOUNTS",
    "WEEKDAYS",
    "PricePeriod",
    "PriceWindow",
    "Pricing",
    "check_price",
    "check_windows",
    "highest_pricing",
    "parse_date",
    "period_row",
    "schedule_from_list",
    "window_at",
    "window_row",
    "windows_from_list",
]


def check_price(where: str, name: str, v: Any) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or not _float_ok(v) or v < 0:
        raise ConfigurationError(
            f"{where}price {name} must be a non-negative number of dollars per million tokens "
            f"or null (unknown), not {shown(v)}"
        )
    if math.isinf(v):
        raise ConfigurationError(f"{where}price {name} must be finite, not {shown(v)}")


def _float_ok(v: int | float) -> bool:
    """Whether ``v`` is not NaN and converts to a float (an int past 1e308 does not: pricing
    it would raise ``OverflowError`` at the first call instead of refusing the row)."""
    try:
        return not math.isnan(v)
    except OverflowError:
        return False


#: The amounts of a :class:`Pricing` (dollars per million tokens).
PRICE_AMOUNTS: tuple[str, ...] = ("input", "output", "cached_input", "cache_write", "reasoning")


@dataclass(frozen=True, slots=True)
class Pricing:
    """Dollars per million tokens, with where the numbers come from.

    ``cached_input`` prices prompt-cache reads, ``cache_write`` prompt-cache writes (Anthropic);
    ``reasoning`` prices reasoning ("thinking") tokens -- every provider in the bundled catalog
    bills them as output tokens, so it defaults to ``output`` when not given.
    """

    input: float | None = None
    output: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    source: str | None = None
    as_of: str | None = None
    note: str | None = None
    #: Where the provider says this price is a sale or promotion (None: its list price). A
    #: promotional price in force with no end date is listed by ``llmrelay catalog check``.
    promotion_source: str | None = None

    def validate(self, where: str = "") -> None:
        for f in PRICE_AMOUNTS:
            check_price(where, f, getattr(self, f))
        if self.as_of is not None:
            parse_date(self.as_of, f"{where}prices.as_of")
        if self.promotion_source is not None and (
            not isinstance(self.promotion_source, str) or not self.promotion_source.strip()
        ):
            raise ConfigurationError(
                f"{where}prices.promotion_source must be the URL that says the price is a sale "
                "or promotion, or null"
            )

    def scaled(self, factor: float) -> Pricing:
        """Every known amount times ``factor`` (a time-of-day multiplier)."""

        def times(v: float | None) -> float | None:
            return None if v is None else v * factor

        amounts: dict[str, Any] = {f: times(getattr(self, f)) for f in PRICE_AMOUNTS}
        return dataclasses.replace(self, **amounts)

    @property
    def known(self) -> bool:
        return self.input is not None and self.output is not None

    @property
    def reasoning_price(self) -> float | None:
        return self.reasoning if self.reasoning is not None else self.output

    @property
    def cached_input_price(self) -> float | None:
        return self.cached_input if self.cached_input is not None else self.input

    @property
    def cache_write_price(self) -> float | None:
        return self.cache_write if self.cache_write is not None else self.input


@dataclass(frozen=True, slots=True)
class PricePeriod:
    """A dated price: ``pricing`` is in force from ``start`` (inclusive, 00:00 UTC) until
    ``end`` (exclusive; None: open-ended). A period with an end is a promotion: when it ends,
    the price falls back to the latest period (or the row's base ``prices``) still in force."""

    start: date
    end: date | None
    pricing: Pricing

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


#: Day names of :attr:`PriceWindow.days`, Monday first (``datetime.weekday()`` order).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DAY_S = 86400
#: Seconds in a week; epoch time 345600 (1970-01-05) is a Monday 00:00 UTC.
WEEK_S = 7 * _DAY_S
_MONDAY_EPOCH = 345600


@dataclass(frozen=True, slots=True)
class PriceWindow:
    """A recurring time-of-day price: on the UTC weekdays ``days`` (0 = Monday), from
    ``start`` (inclusive) to ``end`` (exclusive), seconds after 00:00 UTC (``end`` at most
    86400, i.e. 24:00; a window across midnight is written as two windows). In the window the
    price is the day's price times ``multiplier``, or ``pricing`` when the window names its
    own amounts (the amounts it leaves out are the day's). UTC has no daylight saving time, so
    a window is the same instant all year."""

    days: frozenset[int]
    start: int
    end: int
    multiplier: float | None = None
    pricing: Pricing | None = None
    source: str | None = None
    note: str | None = None

    def validate(self, where: str) -> None:
        if not self.days or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in self.days
        ):
            raise ConfigurationError(
                f"{where}days must name at least one weekday ({', '.join(WEEKDAYS)})"
            )
        for name, v in (("start", self.start), ("end", self.end)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _DAY_S:
                raise ConfigurationError(f"{where}{name} must be a time of day from 00:00 to 24:00")
        if self.start >= self.end:
            raise ConfigurationError(
                f"{where}start ({_clock(self.start)}) must be before end ({_clock(self.end)}); "
                "write a window across midnight as two windows"
            )
        if (self.multiplier is None) == (self.pricing is None):
            raise ConfigurationError(
                f"{where}give either a multiplier or the window's prices (input, output, ...)"
            )
        m = self.multiplier
        if m is not None and (
            isinstance(m, bool)
            or not isinstance(m, int | float)
            or not _float_ok(m)
            or not 0 < m < math.inf
        ):
            raise ConfigurationError(
                f"{where}multiplier must be a positive finite number, not {shown(m)}"
            )
        if self.pricing is not None:
            self.pricing.validate(where)

    def applied(self, day_pricing: Pricing) -> Pricing:
        """The price in the window, over the price of the day."""
        if self.multiplier is not None:
            return day_pricing.scaled(self.multiplier)
        own = self.pricing
        assert own is not None
        return dataclasses.replace(
            day_pricing,
            **{f: getattr(own, f) for f in PRICE_AMOUNTS if getattr(own, f) is not None},
        )

    def describe(self) -> str:
        days = ", ".join(WEEKDAYS[d] for d in sorted(self.days))
        how = f"x{self.multiplier:g}" if self.multiplier is not None else "own prices"
        return f"{days} {_clock(self.start)}-{_clock(self.end)} UTC ({how})"


def _clock(s: int) -> str:
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


@lru_cache(maxsize=256)
def window_segments(
    windows: tuple[PriceWindow, ...],
) -> tuple[tuple[int, ...], tuple[PriceWindow | None, ...]]:
    """The week (seconds after Monday 00:00 UTC) cut at every window edge: the sorted start
    of each segment and the window in force over it (None: none). Windows must not overlap."""
    edges = {0}
    for w in windows:
        for d in w.days:
            edges.add(d * _DAY_S + w.start)
            edges.add(d * _DAY_S + w.end)
    starts = tuple(sorted(e for e in edges if e < WEEK_S))
    owners: list[PriceWindow | None] = []
    for s in starts:
        day, sec = divmod(s, _DAY_S)
        owners.append(next((w for w in windows if day in w.days and w.start <= sec < w.end), None))
    return starts, tuple(owners)


def week_position(t: float) -> tuple[float, float]:
    """The start of the UTC week (Monday 00:00) holding epoch time ``t``, and ``t``'s offset
    into it in seconds."""
    week = math.floor((t - _MONDAY_EPOCH) / WEEK_S) * WEEK_S + _MONDAY_EPOCH
    return float(week), t - week


def parse_date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigurationError(f"{where} must be a date written YYYY-MM-DD, not {shown(value)}")


def check_windows(windows: tuple[PriceWindow, ...], where: str) -> None:
    """Validate every window of a row and refuse two that overlap on a weekday."""
    for i, w in enumerate(windows):
        w.validate(f"{where}price_windows[{i}]: ")
        for j, other in enumerate(windows[:i]):
            shared = w.days & other.days
            if shared and w.start < other.end and other.start < w.end:
                raise ConfigurationError(
                    f"{where}price_windows[{i}] ({w.describe()}) overlaps price_windows[{j}] "
                    f"({other.describe()}) on {', '.join(WEEKDAYS[d] for d in sorted(shared))}"
                    "; which price applies would be ambiguous"
                )


def window_at(
    windows: tuple[PriceWindow, ...], t: float
) -> tuple[PriceWindow | None, float, float]:
    """The window in force at epoch time ``t`` (None: none), with the span ``[lo, hi)`` of
    epoch times it holds for (up to the next window edge)."""
    if not windows:
        return None, -math.inf, math.inf
    starts, owners = window_segments(windows)
    week, pos = week_position(t)
    i = bisect_right(starts, pos) - 1
    hi = starts[i + 1] if i + 1 < len(starts) else WEEK_S
    return owners[i], week + starts[i], week + hi


def highest_pricing(windows: tuple[PriceWindow, ...], base: Pricing) -> Pricing:
    """``base`` with each amount raised to the highest any window sets over it."""
    top = {f: getattr(base, f) for f in PRICE_AMOUNTS}
    for w in windows:
        p = w.applied(base)
        for f in PRICE_AMOUNTS:
            v, cur = getattr(p, f), top[f]
            if v is not None and (cur is None or v > cur):
                top[f] = v
    return dataclasses.replace(base, **top)


#: The fields of one ``price_windows`` entry of a catalog row.
WINDOW_KEYS = frozenset({"days", "start", "end", "multiplier", "source", "note", *PRICE_AMOUNTS})


def _tables(
    items: Any, name: str, what: str, keys: frozenset[str]
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(where, item)`` for each table of a row's ``name`` list (none when it is missing):
    ``ConfigurationError`` for anything but a list of tables with only ``keys``."""
    if items is None:
        return
    if not isinstance(items, list):
        raise ConfigurationError(f"{name} must be a list of {what}, not {shown(items)}")
    for i, item in enumerate(items):
        where = f"{name}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigurationError(f"{where} must be a table/object, not {shown(item)}")
        bad = set(item) - keys
        if bad:
            raise ConfigurationError(
                f"{where}: unknown field(s) {shown_names(bad)}; known: {', '.join(sorted(keys))}"
            )
        yield where, item


def windows_from_list(items: Any) -> tuple[PriceWindow, ...]:
    """A row's ``price_windows`` list as windows (each validated by the profile, overlaps
    too); ``ConfigurationError`` names the entry and the field."""
    out = []
    for where, item in _tables(items, "price_windows", "windows", WINDOW_KEYS):
        days = item.get("days")
        if not isinstance(days, list) or not days or not all(d in WEEKDAYS for d in days):
            raise ConfigurationError(
                f"{where}.days must be a non-empty list of weekdays ({', '.join(WEEKDAYS)}), "
                f"not {shown(days)}"
            )
        for f in ("source", "note"):
            if item.get(f) is not None and not isinstance(item[f], str):
                raise ConfigurationError(f"{where}.{f} must be a string")
        amounts = {f: item[f] for f in PRICE_AMOUNTS if item.get(f) is not None}
        out.append(
            PriceWindow(
                frozenset(WEEKDAYS.index(d) for d in days),
                _parse_clock(item.get("start"), f"{where}.start"),
                _parse_clock(item.get("end"), f"{where}.end"),
                multiplier=item.get("multiplier"),
                pricing=Pricing(**amounts) if amounts else None,
                source=item.get("source"),
                note=item.get("note"),
            )
        )
    return tuple(out)


def _parse_clock(v: Any, where: str) -> int:
    """``"HH:MM"`` (UTC, ``00:00`` to ``24:00``) as seconds after midnight."""
    # ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and "１２"
    if (
        isinstance(v, str)
        and len(v) == 5
        and v[2] == ":"
        and v.isascii()
        and (v[:2] + v[3:]).isdigit()
    ):
        h, m = int(v[:2]), int(v[3:])
        if (h < 24 and m < 60) or (h == 24 and m == 0):
            return h * 3600 + m * 60
    raise ConfigurationError(
        f"{where} must be a UTC time written HH:MM (00:00 to 24:00), not {shown(v)}"
    )


def window_row(w: PriceWindow) -> dict[str, Any]:
    """The row form of a window (inverse of :func:`windows_from_list`)."""
    row: dict[str, Any] = {
        "days": [WEEKDAYS[d] for d in sorted(w.days)],
        "start": _clock(w.start),
        "end": _clock(w.end),
    }
    if w.multiplier is not None:
        row["multiplier"] = w.multiplier
    if w.pricing is not None:
        for f in PRICE_AMOUNTS:
            if getattr(w.pricing, f) is not None:
                row[f] = getattr(w.pricing, f)
    row["source"] = w.source
    row["note"] = w.note
    return row


#: The fields of a :class:`Pricing` (the ``prices`` table of a row).
PRICE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Pricing))
#: The fields of one ``price_schedule`` period: its dates plus the ``prices`` fields.
PERIOD_KEYS = frozenset({"from", "until", *PRICE_FIELDS})


def schedule_from_list(items: Any, base: Mapping[str, Any]) -> tuple[PricePeriod, ...]:
    """The ``price_schedule`` list as periods; a period's missing prices are the base ones
    (not its promotion flag: a sale is never inherited)."""
    out = []
    for where, item in _tables(items, "price_schedule", "periods", PERIOD_KEYS):
        if "from" not in item:
            raise ConfigurationError(f"{where} needs 'from', the first day the price applies")
        start = parse_date(item["from"], f"{where}.from")
        end = None if item.get("until") is None else parse_date(item["until"], f"{where}.until")
        fields = {f: item[f] if f in item else base.get(f) for f in PRICE_FIELDS}
        fields["promotion_source"] = item.get("promotion_source")
        out.append(PricePeriod(start, end, Pricing(**fields)))
    return tuple(out)


def period_row(p: PricePeriod) -> dict[str, Any]:
    """The row form of a period (inverse of :func:`schedule_from_list`)."""
    return {
        "from": p.start.isoformat(),
        "until": None if p.end is None else p.end.isoformat(),
        **{f: getattr(p.pricing, f) for f in PRICE_FIELDS},
    }
