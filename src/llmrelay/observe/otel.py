"""OpenTelemetry spans for finished calls (``opentelemetry-api``, the ``llmrelay[otel]`` extra).

:class:`OtelSpans` is a ``Recorder``: one ``CLIENT`` span per logical call, named
``chat <model>``, with the GenAI semantic-convention attributes (``gen_ai.operation.name``,
``gen_ai.provider.name`` and the older ``gen_ai.system``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens`` /
``cache_read.input_tokens`` / ``reasoning.output_tokens``, ``gen_ai.request.stream``,
``gen_ai.response.time_to_first_chunk``, ``error.type``) plus ``llmrelay.*`` ones (trace id,
alias, cost, cache hit, attempts, retries, tenant). Each attempt is a span event
``llmrelay.attempt``. The span's start and end are the call's, and its parent is the span that
was current when the call was made. Prompts and answers are never put on spans.

Creating a span with the OpenTelemetry SDK costs tens of microseconds; use a batching span
processor so export stays off the call's path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import ConfigurationError
from ..providers.table import PROVIDERS
from .recorders import call_cost

if TYPE_CHECKING:
    from ..core.layers import CallRecord

__all__ = ["OtelSpans", "provider_name"]


def provider_name(provider: str) -> str:
    """The GenAI semantic conventions' ``gen_ai.provider.name`` for an llmrelay provider (the
    provider table's ``otel_name`` column)."""
    spec = PROVIDERS.get(provider)
    return (spec.otel_name if spec is not None else "") or provider


def _model(label: str) -> str:
    return label.partition("/")[2] or label


class OtelSpans:
    """Emits one OpenTelemetry span per finished call (a ``Recorder``).

    ``tracer_provider`` defaults to the global one (``opentelemetry.trace``).
    """

    def __init__(self, tracer_provider: Any = None, *, tracer_name: str = "llmrelay") -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise ConfigurationError(
                "OtelSpans needs the OpenTelemetry API: pip install 'llmrelay[otel]' "
                "(and an SDK such as opentelemetry-sdk to export the spans)"
            ) from None
        self._kind = trace.SpanKind.CLIENT
        self._status = trace.Status
        self._error = trace.StatusCode.ERROR
        self.tracer = trace.get_tracer(tracer_name, __version__, tracer_provider=tracer_provider)

    def record(self, rec: CallRecord) -> None:
        start = int(rec.started_at * 1e9)
        end = start + int(max(rec.latency_s, 0.0) * 1e9)
        tried = [a for a in rec.attempts if a.outcome != "skipped"]
        requested = _model(tried[0].deployment) if tried else rec.model
        provider = provider_name(rec.provider)
        u = rec.usage
        cost, known = call_cost(rec)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.request.model": requested,
            "gen_ai.response.model": rec.model,
            "gen_ai.request.stream": rec.stream,
            "gen_ai.usage.input_tokens": u.input_tokens,
            "gen_ai.usage.output_tokens": u.output_tokens,
            "llmrelay.trace_id": rec.trace_id,
            "llmrelay.outcome": rec.outcome,
            "llmrelay.cache_hit": rec.cache_hit,
            "llmrelay.latency_s": rec.latency_s,
            "llmrelay.attempts": len(rec.attempts),
            "llmrelay.retries": sum(a.is_retry for a in tried),
            "llmrelay.cost_known": known,
        }
        if u.cached_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = u.cached_tokens
        if u.reasoning_tokens:
            attrs["gen_ai.usage.reasoning.output_tokens"] = u.reasoning_tokens
        if cost is not None:
            attrs["llmrelay.cost_usd"] = cost
        if rec.time_to_first_token_s is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = rec.time_to_first_token_s
        if rec.alias:
            attrs["llmrelay.alias"] = rec.alias
        if rec.tenant:
            attrs["llmrelay.tenant"] = rec.tenant
        for k, v in rec.tags.items():
            attrs[f"llmrelay.tag.{k}"] = v
        if rec.outcome == "error":
            attrs["error.type"] = rec.error or "Error"
            if rec.status is not None:
                attrs["http.response.status_code"] = rec.status
        span = self.tracer.start_span(
            f"chat {requested}", kind=self._kind, start_time=start, attributes=attrs
        )
        at = start
        for i, a in enumerate(rec.attempts, 1):
            at += int(a.backoff_s * 1e9)
            event: dict[str, Any] = {
                "llmrelay.attempt.index": i,
                "llmrelay.attempt.deployment": a.deployment,
                "llmrelay.attempt.number": a.number,
                "llmrelay.attempt.outcome": a.outcome,
                "llmrelay.attempt.latency_s": a.latency_s,
                "llmrelay.attempt.backoff_s": a.backoff_s,
            }
            if a.error:
                event["error.type"] = a.error
            if a.status is not None:
                event["http.response.status_code"] = a.status
            if a.reason:
                event["llmrelay.attempt.reason"] = a.reason
            span.add_event("llmrelay.attempt", event, timestamp=min(at, end))
            at += int(a.latency_s * 1e9)
        if rec.outcome == "error":
            span.set_status(self._status(self._error, rec.error or "Error"))
        span.end(end_time=end)
