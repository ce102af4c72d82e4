"""The decision trace: what the engine did for one logical call, attempt by attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..types import Usage

__all__ = ["Attempt", "format_trace", "sent_attempts"]

Outcome = Literal["success", "error", "skipped", "cache_hit"]


@dataclass(slots=True)
class Attempt:
    """One attempt (or one skipped candidate) of a logical call."""

    deployment: str
    outcome: Outcome
    #: 1-based attempt number on this deployment (retries count up).
    number: int = 1
    error: str | None = None
    status: int | None = None
    latency_s: float = 0.0
    #: Seconds slept (backoff) before this attempt.
    backoff_s: float = 0.0
    #: Why the candidate was skipped or the attempt ended as it did.
    reason: str | None = None
    #: The error message (redacted), for errors.
    message: str | None = None
    #: Tokens the provider reported for this attempt (successes; cut streams may report some).
    usage: Usage | None = None
    #: What this attempt cost, in USD (None when unknown or not computed).
    cost_usd: float | None = None

    @property
    def is_retry(self) -> bool:
        """A second or later attempt on its deployment that reached the provider."""
        return self.number > 1 and (self.outcome == "success" or self.outcome == "error")

    def to_dict(self) -> dict[str, object]:
        return {
            "deployment": self.deployment,
            "outcome": self.outcome,
            "number": self.number,
            "error": self.error,
            "status": self.status,
            "latency_s": round(self.latency_s, 6),
            "backoff_s": round(self.backoff_s, 6),
            "reason": self.reason,
            "message": self.message,
            "usage": self.usage.to_dict() if self.usage is not None else None,
            "cost_usd": self.cost_usd,
        }


def sent_attempts(trace: list[Attempt]) -> int:
    """How many attempts of ``trace`` reached a provider (retries included; skipped candidates,
    refusals before sending and cache hits not counted)."""
    return sum(1 for a in trace if a.outcome == "error" or a.outcome == "success")


def format_trace(trace: list[Attempt]) -> str:
    """A human-readable table of the attempts, one line each."""
    lines = []
    for i, a in enumerate(trace, 1):
        parts = [f"{i:>2}. {a.deployment}", f"#{a.number}", a.outcome]
        if a.backoff_s:
            parts.append(f"after {a.backoff_s * 1000:.0f} ms backoff")
        if a.latency_s:
            parts.append(f"{a.latency_s * 1000:.1f} ms")
        if a.error:
            parts.append(a.error + (f" (status {a.status})" if a.status else ""))
        if a.reason:
            parts.append(f"- {a.reason}")
        lines.append("  ".join(parts))
    return "\n".join(lines)
