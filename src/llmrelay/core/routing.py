"""Fallback chains: which candidates a call may try, in which order, and when to move on.

A call's chain comes from the call (``fallbacks=``), else the alias configuration, else the
engine's global setting. Context-window and content-filter errors switch to their own chains
(``context_window_fallbacks`` / ``content_filter_fallbacks``, as LiteLLM offers) when given.

When to move to the next candidate: after a retryable failure has used up its retries, an open
breaker, a spent retry budget, a rate limit at the deployment, and errors that belong to the
deployment rather than the request (authentication, permission, not found, quota, a missing key).
A request the provider rejects as invalid (400) is not retried elsewhere: the next model would
reject it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import (
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ConfigurationError,
    ContentFilteredError,
    ContextWindowExceededError,
    DeadlineExceededError,
    InvalidRequestError,
    MissingAPIKeyError,
    ModelRetiredError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    UnsupportedCapabilityError,
)
from ..providers.resolve import Target, resolve_target

__all__ = ["Chain", "Plan", "moves_on", "validate_chain"]


def validate_chain(
    names: Sequence[str], *, primary: str | None = None, what: str = "fallback chain"
) -> tuple[str, ...]:
    """Check a chain at configuration time: non-empty names, no duplicates, no cycle back to
    the primary, every name resolvable. Raises ``ConfigurationError``."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ConfigurationError(
            f"the {what} must be a list of model names, not {type(names).__name__}"
        )
    if not names:
        raise ConfigurationError(f"the {what} is empty; give at least one model or alias")
    seen: set[str] = set()
    for n in names:
        if not isinstance(n, str) or not n.strip():
            raise ConfigurationError(f"the {what} holds {n!r}; every entry must be a model name")
        if n in seen:
            raise ConfigurationError(f"the {what} lists {n!r} twice (a cycle)")
        if primary is not None and n == primary:
            raise ConfigurationError(
                f"the {what} of {primary!r} lists {primary!r} itself (a cycle)"
            )
        seen.add(n)
        resolve_target(n)  # unknown names fail now, not at the first failure
    return tuple(names)


@dataclass(slots=True)
class Plan:
    """The candidates of one call."""

    primary: Target
    fallbacks: list[Target]
    context_window: list[Target]
    content_filter: list[Target]

    @classmethod
    def build(
        cls,
        primary: Target,
        fallbacks: Sequence[str | Target] | None,
        context_window: Sequence[str | Target] | None,
        content_filter: Sequence[str | Target] | None,
    ) -> Plan:
        def res(names: Sequence[str | Target] | None) -> list[Target]:
            if not names:
                return []
            if isinstance(names, str):
                raise ConfigurationError(
                    f"a fallback chain must be a list of model names, not the string {names!r}"
                )
            out: list[Target] = []
            seen = {primary.label}
            for n in names:
                t = n if isinstance(n, Target) else resolve_target(n)
                if t.label not in seen:  # the primary itself or a repeat: a cycle, dropped
                    seen.add(t.label)
                    out.append(t)
            return out

        chain = fallbacks if fallbacks is not None else primary.fallbacks
        return cls(primary, res(chain), res(context_window), res(content_filter))


def moves_on(exc: BaseException) -> bool:
    """May the call move to the next candidate after ``exc``?"""
    if isinstance(exc, UnsupportedCapabilityError | ModelRetiredError):
        return True  # the next model may have the capability / still be served
    if isinstance(exc, DeadlineExceededError | InvalidRequestError):
        return False
    if isinstance(
        exc,
        CircuitOpenError
        | MissingAPIKeyError
        | AuthenticationError
        | PermissionDeniedError
        | NotFoundError
        | QuotaExhaustedError,
    ):
        return True
    if isinstance(exc, ContextWindowExceededError | ContentFilteredError | BadRequestError):
        return False
    return not isinstance(exc, ConfigurationError)


class Chain:
    """Walks the candidates of a plan in order (iterate it); after a candidate fails,
    :meth:`failed` says whether to go on, switching to the context-window or content-filter
    chain when the error calls for it (each at most once)."""

    __slots__ = ("_i", "_plan", "_queue", "errors")

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._queue = [plan.primary, *plan.fallbacks]
        self._i = 0
        #: Every failure so far, in order.
        self.errors: list[BaseException] = []

    def __iter__(self) -> Chain:
        return self

    def __next__(self) -> Target:
        if self._i >= len(self._queue):
            raise StopIteration
        t = self._queue[self._i]
        self._i += 1
        return t

    def failed(self, exc: BaseException) -> bool:
        """Record that the current candidate failed with ``exc``; True to try the next one."""
        self.errors.append(exc)
        plan, i = self._plan, self._i
        if isinstance(exc, ContextWindowExceededError) and plan.context_window:
            chain, plan.context_window = plan.context_window, []
            self._queue = self._queue[:i] + chain
            return True
        if isinstance(exc, ContentFilteredError) and plan.content_filter:
            chain, plan.content_filter = plan.content_filter, []
            self._queue = self._queue[:i] + chain
            return True
        return i < len(self._queue) and moves_on(exc)
