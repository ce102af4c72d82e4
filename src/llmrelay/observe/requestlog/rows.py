"""The rows of the request log, built from a finished call's ``CallRecord``.

One :class:`RequestRow` per logical call and one :class:`AttemptRow` per entry of its decision
trace (attempts, retries, fallbacks, skipped candidates, cache hits). Rows are built in the
writer thread, never on the caller's hot path, and get their ids when built: a batch that is
written again after a failure (or after a commit whose acknowledgement was lost) carries the
same ids, and every insert is ``ON CONFLICT DO NOTHING``, so nothing is duplicated.

Ids: a request row's id is ``<prefix>.<trace_id>``, the prefix a random token of the writing
``RequestLog`` and its counter (18 hex digits), so ids grow within a writer and inserts append to
the indexes instead of landing at random places, and two calls given the same ``trace_id`` stay
apart; an attempt row's id is ``<request id>.<index>``, its 1-based position in the trace.

Costs follow the rules of :mod:`llmrelay.recorders` (shared with :mod:`llmrelay.observe.metrics`): a
known cost is stored as is; a cache hit, or a call or attempt that reported no tokens, costs
``0.0``; anything else without a price is unknown -- ``cost_usd`` NULL and ``cost_known`` false,
never a silent ``0``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from ...core.codec import json_default, messages_to_json
from ..recorders import attempt_cost, call_cost

if TYPE_CHECKING:
    from ...core.layers import CallRecord

__all__ = [
    "ATTEMPT_COLUMNS",
    "REQUEST_COLUMNS",
    "AttemptRow",
    "RequestRow",
    "rows_from_record",
]


class RequestRow(NamedTuple):
    """One logical call. A tuple in column order, so a store binds it as it is."""

    id: str
    trace_id: str
    #: Unix time (seconds) when the call started.
    started_at: float
    alias: str | None
    provider: str
    model: str
    #: "success" | "error" | "cache_hit"
    outcome: str
    #: The error class name (failures).
    error: str | None
    status: int | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    cost_known: bool
    latency_s: float
    ttft_s: float | None
    cache_hit: bool
    stream: bool
    #: Entries in the decision trace (attempts, skips, cache hit).
    attempts: int
    #: Attempts after the first on the same deployment.
    retries: int
    tenant: str | None
    #: The call's tags as a JSON object (``{}`` when none).
    tags: str
    #: The messages as JSON -- only when content logging is on.
    prompt: str | None
    #: The answer's text -- only when content logging is on.
    response: str | None

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class AttemptRow(NamedTuple):
    """One entry of a call's decision trace."""

    id: str
    request_id: str
    trace_id: str
    #: The logical call's start (attempts have no clock of their own).
    started_at: float
    #: 1-based position in the trace.
    idx: int
    provider: str
    model: str
    #: 1-based attempt number on this deployment (retries count up).
    number: int
    #: "success" | "error" | "skipped" | "cache_hit"
    outcome: str
    error: str | None
    status: int | None
    latency_s: float
    backoff_s: float
    reason: str | None
    message: str | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    cost_known: bool

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


REQUEST_COLUMNS: tuple[str, ...] = RequestRow._fields
ATTEMPT_COLUMNS: tuple[str, ...] = AttemptRow._fields


#: The tags column: sorted keys, as ``core.codec.dumps(..., sort_keys=True)`` writes them.
_SORTED = orjson.OPT_SORT_KEYS
#: Builds a row from a tuple in column order without the namedtuple's Python ``__new__`` (its
#: 25 keyword-capable arguments cost more than the rest of the row).
_new = tuple.__new__


def rows_from_record(
    rec: CallRecord, row_id: str | None = None
) -> tuple[RequestRow, list[AttemptRow]]:
    """The request row (id ``row_id``, default ``<18 random hex>.<trace_id>``) and the attempt
    rows of one finished call."""
    if row_id is None:
        row_id = f"{os.urandom(9).hex()}.{rec.trace_id}"
    u = rec.usage
    cost, known = call_cost(rec)
    tid, started = rec.trace_id, rec.started_at
    attempts: list[AttemptRow] = []
    retries = 0
    for i, a in enumerate(rec.attempts, 1):
        provider, sep, model = a.deployment.partition("/")
        if not sep:
            provider, model = "", a.deployment
        if a.number > 1 and a.is_retry:  # a first attempt is never a retry
            retries += 1
        au = a.usage
        acost, aknown = attempt_cost(a)
        if au is None:
            a_in = a_out = a_cached = a_reasoning = 0
        else:
            a_in, a_out = au.input_tokens, au.output_tokens
            a_cached, a_reasoning = au.cached_tokens, au.reasoning_tokens
        attempts.append(
            _new(
                AttemptRow,
                (
                    f"{row_id}.{i}",
                    row_id,
                    tid,
                    started,
                    i,
                    provider,
                    model,
                    a.number,
                    a.outcome,
                    a.error,
                    a.status,
                    a.latency_s,
                    a.backoff_s,
                    a.reason,
                    a.message,
                    a_in,
                    a_out,
                    a_cached,
                    a_reasoning,
                    acost,
                    aknown,
                ),
            )
        )
    tags = rec.tags
    if not tags:
        tags_json = "{}"
    else:
        tags_json = orjson.dumps(
            tags if type(tags) is dict else dict(tags), default=json_default, option=_SORTED
        ).decode()
    req = _new(
        RequestRow,
        (
            row_id,
            tid,
            started,
            rec.alias,
            rec.provider,
            rec.model,
            rec.outcome,
            rec.error,
            rec.status,
            u.input_tokens,
            u.output_tokens,
            u.cached_tokens,
            u.reasoning_tokens,
            cost,
            known,
            rec.latency_s,
            rec.time_to_first_token_s,
            rec.cache_hit,
            rec.stream,
            len(attempts),
            retries,
            rec.tenant,
            tags_json,
            messages_to_json(rec.prompt) if rec.prompt is not None else None,
            rec.response_text,
        ),
    )
    return req, attempts
