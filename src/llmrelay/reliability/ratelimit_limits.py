"""The limits of one rate-limit scope (:class:`Limits`), validated when configured."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigurationError, finite, shown

__all__ = ["Limits"]

_ALIASES = {
    "requests_per_minute": "rpm",
    "requests_per_second": "rps",
    "requests_per_day": "rpd",
    "tokens_per_minute": "tpm",
    "tokens_per_day": "tpd",
    "input_tokens_per_minute": "itpm",
    "output_tokens_per_minute": "otpm",
    "max_concurrent": "concurrent",
    "concurrent_requests": "concurrent",
    "max_concurrency": "concurrent",
    "concurrency": "concurrent",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one scope; None means "no limit" for that dimension."""

    rpm: float | None = None
    tpm: float | None = None
    itpm: float | None = None
    otpm: float | None = None
    concurrent: int | None = None
    #: Requests per second; requests and tokens (input + output) per day.
    rps: float | None = None
    rpd: float | None = None
    tpd: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            integer = f.name == "concurrent"
            ok = (isinstance(v, int) if integer else isinstance(v, int | float)) and not isinstance(
                v, bool
            )
            if not ok or not finite(v) or v <= 0:
                kind = "a whole number" if integer else "a number"
                raise ConfigurationError(
                    f"rate limit {f.name}={shown(v)} is invalid: it must be {kind} greater than 0 "
                    "(leave it out for no limit)"
                )

    @classmethod
    def coerce(cls, value: Any, where: str = "limits") -> Limits:
        """A ``Limits`` from itself or a mapping (seed 003's key names accepted)."""
        if isinstance(value, Limits):
            return value
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f"{where} must be a table of limits like {{'rpm': 60}}, not {type(value).__name__}"
            )
        known = {f.name for f in fields(cls)}
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = _ALIASES.get(k, k)
            if name not in known:
                raise ConfigurationError(
                    f"unknown rate limit {shown(k)} in {where}; use rpm, tpm, itpm, otpm, rps, "
                    "rpd, tpd or concurrent"
                )
            out[name] = v
        try:
            return cls(**out)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc.message}") from None

    @property
    def vector(self) -> tuple[float, ...]:
        """One limit per dimension of ``ratelimit_buckets.DIMS`` (0: none)."""
        return (
            self.rpm or 0.0,
            self.tpm or 0.0,
            self.itpm or 0.0,
            self.otpm or 0.0,
            self.rps or 0.0,
            self.rpd or 0.0,
            self.tpd or 0.0,
        )

    @property
    def has_tokens(self) -> bool:
        return bool(self.tpm or self.itpm or self.otpm or self.tpd)


_NONE = Limits()
