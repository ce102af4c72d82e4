"""Fitting a conversation into a model's context window or a token budget (seed 003's token
optimization): :func:`fit_messages`.

.. code-block:: python

    fitted = llmrelay.fit_messages(messages, "openai/gpt-4.1-mini", max_tokens=1024)
    fitted.messages          # send these
    fitted.removed           # whole turns dropped, oldest first
    fitted.truncated         # turns cut (as they were before)

Counts are :func:`~llmrelay.catalog.tokens.count_message_tokens`' (exact for OpenAI models, an
estimate for others); the context window is the catalog's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import ContextWindowExceededError, InvalidRequestError, shown
from ..types import normalize_messages
from .model_registry import default_registry
from .tokens import _REPLY_PRIMING, count_message_tokens

if TYPE_CHECKING:
    from ..types import Message, MessagesInput, Tool

__all__ = ["TRUNCATION_MARK", "FitResult", "fit_messages"]


@dataclass(slots=True)
class FitResult:
    """What :func:`fit_messages` kept and what it took out.

    ``messages``: the fitted list (send this); ``removed``: whole messages dropped, oldest
    first; ``truncated``: the messages that were cut, as they were before (their fitted form is
    in ``messages``); ``tokens``: the fitted prompt's tokens (``count_message_tokens``);
    ``budget``: the tokens it had to fit in.
    """

    messages: list[Message]
    removed: list[Message] = field(default_factory=list)
    truncated: list[Message] = field(default_factory=list)
    tokens: int = 0
    budget: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.removed or self.truncated)


#: What a cut message's text starts with (the text before it was taken out).
TRUNCATION_MARK = "[...] "
_PINNED = ("system", "developer")


def _fit_budget(model: str | None, max_tokens: int | None, budget_tokens: int | None) -> int:
    for name, v in (("max_tokens", max_tokens), ("budget_tokens", budget_tokens)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise InvalidRequestError(f"{name} must be a whole number >= 0, not {shown(v)}")
    budget = budget_tokens
    if model is not None:
        window = default_registry().get(model).capabilities.max_context_window
        if window:
            if max_tokens is not None and max_tokens >= window:
                big = str(max_tokens) if max_tokens < 10**12 else "more than 10**12"
                raise ContextWindowExceededError(
                    f"max_tokens={big} leaves no room in the {window}-token context window of "
                    f"{model} for the messages; lower max_tokens (the answer's share)",
                    model=model,
                )
            room = window - (max_tokens or 0)
            budget = room if budget is None else min(budget, room)
    if budget is None:
        raise InvalidRequestError(
            "fit_messages needs a budget: pass budget_tokens=..., or a model whose context "
            "window the catalog knows"
        )
    return budget


def _units(msgs: list[Message]) -> list[list[int]]:
    """The non-system turns as units dropped together: an assistant message with tool calls
    and the tool results answering them are one unit; every other message is its own."""
    units: list[list[int]] = []
    open_ids: set[str] = set()
    for i, m in enumerate(msgs):
        if m.role in _PINNED:
            continue
        if m.role == "tool" and units and (m.tool_call_id in open_ids or not open_ids):
            units[-1].append(i)  # a result stays with its call (an orphan with the turn before)
            continue
        units.append([i])
        open_ids = {c.id for c in m.tool_calls or ()} if m.role == "assistant" else set()
    return units


def _cut(m: Message, keep: int) -> Message:
    """``m`` with only the last ``keep`` characters of its text."""
    text = m.content if isinstance(m.content, str) else ""
    return replace(m, content=TRUNCATION_MARK + text[len(text) - keep :])


def _shorten(m: Message, room: int, cost: Callable[[Message], int]) -> Message | None:
    """The longest tail of ``m``'s text that costs at most ``room`` tokens (None: none does)."""
    text = m.content
    if not isinstance(text, str) or m.tool_calls or not text:
        return None
    lo, hi = 0, len(text) - 1  # keep at most all but one character
    if hi < 1 or cost(_cut(m, 1)) > room:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(_cut(m, mid)) <= room:
            lo = mid
        else:
            hi = mid - 1
    return _cut(m, lo)


def fit_messages(
    messages: MessagesInput,
    model: str | None = None,
    *,
    max_tokens: int | None = None,
    budget_tokens: int | None = None,
    tools: Iterable[Tool | Mapping[str, Any]] | None = None,
    truncate: bool = True,
) -> FitResult:
    """Fit a conversation into ``model``'s context window (less ``max_tokens`` for the answer)
    and/or ``budget_tokens`` -- the smaller of the two.

    System and developer messages are always kept; the other turns go oldest first. A tool
    call and the results answering it go (or stay) together, so the list stays valid to send.
    With ``truncate`` (the default), a plain-text turn that only partly needs to go is cut
    instead -- its start is replaced by ``TRUNCATION_MARK`` -- and the newest turn is cut
    rather than dropped. Raises ``ContextWindowExceededError`` when even that cannot fit
    (the system messages alone are too long, or the last turn cannot be cut). Counts are
    ``count_message_tokens``' (exact for OpenAI models, an estimate for others).
    """
    if not isinstance(truncate, bool):
        raise InvalidRequestError(
            f"truncate must be True (cut a turn that only partly needs to go) or False (drop "
            f"whole turns only), not {shown(truncate)}"
        )
    budget = _fit_budget(model, max_tokens, budget_tokens)
    msgs = list(normalize_messages(messages))

    def cost(m: Message) -> int:
        return count_message_tokens([m], model) - _REPLY_PRIMING

    costs = [cost(m) for m in msgs]
    # the reply's priming and the tool definitions: sent whatever is kept
    base = count_message_tokens(msgs[:1], model, tools=tools) - costs[0]
    total = base + sum(costs)
    result = FitResult(msgs, tokens=total, budget=budget)
    if total <= budget:
        return result
    units = _units(msgs)
    gone: set[int] = set()
    replaced: dict[int, Message] = {}
    while units and total > budget:
        unit = units[0]
        last = len(units) == 1
        if truncate and len(unit) == 1:
            i = unit[0]
            short = _shorten(msgs[i], costs[i] - (total - budget), cost)
            if short is not None:
                replaced[i] = short
                result.truncated.append(msgs[i])
                total += cost(short) - costs[i]
                break
        if last:
            break
        units.pop(0)
        gone.update(unit)
        result.removed.extend(msgs[i] for i in unit)
        total -= sum(costs[i] for i in unit)
    if total > budget:
        pinned = sum(c for m, c in zip(msgs, costs, strict=True) if m.role in _PINNED)
        kept = total - base - pinned
        if base > budget:
            fix = "the reply's priming and tool definitions alone exceed it: send fewer tools"
        elif pinned + base > budget:
            fix = "the system/developer messages alone exceed it: shorten them"
        elif truncate:
            fix = "the newest turn cannot be cut enough to fit: shorten it"
        else:
            fix = "the newest turn alone exceeds it (truncate=False keeps it whole): shorten it"
        raise ContextWindowExceededError(
            f"the messages need {total} tokens with every older turn removed, more than the "
            f"{budget} available (system/developer messages {pinned}, the newest turn {kept}, "
            f"the reply's priming and tools {base}); {fix}, or raise the budget",
            model=model,
        )
    result.messages = [replaced.get(i, m) for i, m in enumerate(msgs) if i not in gone]
    result.tokens = total
    return result
