"""The rate limiter's token estimate of a request, and when it may be left out.

A call reserves tokens before it is sent (the estimate of its text plus ``max_tokens``, else the
limiter's ``output_estimate``) and settles them with the usage the provider reports. Estimating
the text is most of the limiter's work on a call (a regex over the prompt), and it matters only
to a scope with a token limit, configured or learned from the provider's headers. With in-process
counters the limiter can ask: a call whose scopes count no tokens is charged without it, and the
estimate is made only if a scope counts tokens when the call settles (a limit learned meanwhile),
so every counter moves exactly as with the estimate made up front.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidRequestError
from ..types import ChatRequest
from ..types.embed_request import EmbedRequest

__all__ = ["checked_text", "estimate"]


def checked_text(req: ChatRequest) -> str:
    """The text of ``req``'s messages, refused (``InvalidRequestError``) when it holds lone
    surrogates: before a slot is taken, since the request could not be sent anyway."""
    messages = req.messages
    text = messages[0].text() if len(messages) == 1 else " ".join([m.text() for m in messages])
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError(
                "a message holds lone surrogates (not valid Unicode): it cannot be sent; "
                "decode the text with errors='replace'"
            ) from None
    return text


def estimate(req: ChatRequest, output_estimate: int, text: str | None = None) -> tuple[int, int]:
    """Input and output tokens ``req`` reserves (``text``: its ``checked_text``, if known)."""
    if isinstance(req, EmbedRequest):
        return req.tokens, 0  # embeddings: input tokens only
    estimate_tokens = _ESTIMATE[0] if _ESTIMATE else _estimator()
    if text is None:
        text = checked_text(req)
    est_in = estimate_tokens(text) + 3 * len(req.messages) + 3
    return est_in, req.params.max_tokens or output_estimate


#: ``estimate_tokens``, once imported (the catalog is imported on the first estimate).
_ESTIMATE: list[Callable[[str], int]] = []


def _estimator() -> Callable[[str], int]:
    from ..catalog.tokens import estimate_tokens

    _ESTIMATE.append(estimate_tokens)
    return estimate_tokens
