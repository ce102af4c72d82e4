"""The embeddings request the engine carries (kept apart from ``embeddings.py``'s result types
so the layers that check for it -- the rate limiter, the budget estimate -- import nothing
else)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .params import NO_PARAMS
from .request import ChatRequest

__all__ = ["EmbedRequest"]


class EmbedRequest(ChatRequest):
    """An embeddings request: it travels through the same attempts (breaker, rate limit,
    retries) as a chat request, so it is one; its messages are empty.

    ``tokens`` is the estimate the rate limiter and the budget count (input tokens only: an
    embedding has no output tokens)."""

    __slots__ = ("dimensions", "extra", "input_type", "inputs", "task_type", "tokens", "user")

    def __init__(
        self,
        inputs: list[str],
        dimensions: int | None = None,
        *,
        tokens: int = 0,
        task_type: str | None = None,
        user: str | None = None,
        extra: Mapping[str, Any] | None = None,
        input_type: str | None = None,
    ) -> None:
        super().__init__([], NO_PARAMS)
        self.inputs = inputs
        self.dimensions = dimensions
        self.tokens = tokens
        self.task_type = task_type
        self.user = user
        self.extra = extra
        #: ``"query"`` or ``"document"`` (or None): what the texts are for, mapped by each
        #: embeddings adapter to its provider's field.
        self.input_type = input_type

    def part(self, inputs: list[str], tokens: int) -> EmbedRequest:
        """The same request for a part of the inputs (one batch)."""
        return EmbedRequest(
            inputs,
            self.dimensions,
            tokens=tokens,
            task_type=self.task_type,
            user=self.user,
            extra=self.extra,
            input_type=self.input_type,
        )
