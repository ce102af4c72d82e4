"""The Prometheus text exposition format (0.0.4) of :class:`llmrelay.observe.metrics.Metrics`.

Written by hand, with no dependency, so a gateway can serve ``/metrics`` without the
``llmrelay[metrics]`` extra; ``prometheus_client.parser`` reads it back (tested). Every family has
``# HELP`` and ``# TYPE`` lines; histograms have cumulative ``_bucket{le=...}`` samples ending
with ``le="+Inf"``, then ``_sum`` and ``_count``. Counters end in ``_total``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .metrics import Histogram

__all__ = ["CONTENT_TYPE", "render"]

#: The Content-Type to serve this text with.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels) + "}"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: Labels, value: float) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_value(value)}")

    def counter(self, name: str, help_text: str, samples: Iterable[tuple[Labels, float]]) -> None:
        self.family(name, "counter", help_text)
        for labels, value in samples:
            self.sample(name, labels, value)

    def histogram(
        self, name: str, help_text: str, series: Iterable[tuple[Labels, Histogram]]
    ) -> None:
        self.family(name, "histogram", help_text)
        for labels, h in series:
            for bound, count in h.cumulative():
                le = "+Inf" if math.isinf(bound) else repr(float(bound))
                self.sample(f"{name}_bucket", (*labels, ("le", le)), count)
            self.sample(f"{name}_sum", labels, h.sum)
            self.sample(f"{name}_count", labels, h.count)


def _model_labels(label: str) -> Labels:
    provider, sep, model = label.partition("/")
    return (
        (("provider", provider), ("model", model)) if sep else (("provider", ""), ("model", label))
    )


def render(snap: Mapping[str, Any]) -> str:
    """The exposition text of a :meth:`Metrics.snapshot`."""
    w = _Writer()
    models: dict[str, dict[str, Any]] = dict(sorted(snap["models"].items()))
    per_model = [(_model_labels(k), m) for k, m in models.items()]
    w.counter(
        "llmrelay_requests_total",
        "Logical calls, by the model that answered (or failed last) and the outcome.",
        (
            ((("provider", p), ("model", m), ("outcome", o)), n)
            for (p, m, o), n in sorted(snap["calls"].items())
        ),
    )
    w.counter(
        "llmrelay_fallbacks_total",
        "Logical calls that tried more than one deployment.",
        [((), snap["fallbacks"])],
    )
    w.histogram(
        "llmrelay_request_duration_seconds",
        "Duration of logical calls, every attempt and backoff included.",
        [((), snap["latency"])],
    )
    w.histogram(
        "llmrelay_time_to_first_token_seconds",
        "Time from the start of a streamed call to its first content chunk, by model.",
        [(labels, m["ttft"]) for labels, m in per_model if m["ttft"].count],
    )
    w.counter(
        "llmrelay_attempts_total",
        "Attempts sent to each model (retries and fallbacks count), by outcome.",
        (
            ((*labels, ("outcome", outcome)), m[key])
            for labels, m in per_model
            for outcome, key in (("success", "successes"), ("error", "failures"))
            if m[key]
        ),
    )
    w.histogram(
        "llmrelay_attempt_duration_seconds",
        "Duration of single attempts, by model.",
        [(labels, m["latency"]) for labels, m in per_model if m["latency"].count],
    )
    w.counter(
        "llmrelay_retries_total",
        "Attempts after the first on the same model.",
        ((labels, m["retries"]) for labels, m in per_model if m["retries"]),
    )
    w.counter(
        "llmrelay_cache_hits_total",
        "Calls answered from the response cache, by model.",
        ((labels, m["cache_hits"]) for labels, m in per_model if m["cache_hits"]),
    )
    w.counter(
        "llmrelay_errors_total",
        "Failed attempts, by model and error class.",
        (
            ((*labels, ("error", e)), n)
            for labels, m in per_model
            for e, n in sorted(m["errors"].items())
        ),
    )
    w.counter(
        "llmrelay_tokens_total",
        "Tokens the providers reported, by model and type (input or output).",
        (
            ((*labels, ("type", t)), m[f"{t}_tokens"])
            for labels, m in per_model
            for t in ("input", "output")
            if m["requests"]
        ),
    )
    w.counter(
        "llmrelay_cached_tokens_total",
        "Input tokens read from the provider's prompt cache (part of the input tokens).",
        ((labels, m["cached_tokens"]) for labels, m in per_model if m["cached_tokens"]),
    )
    w.counter(
        "llmrelay_reasoning_tokens_total",
        "Reasoning tokens (part of the output tokens).",
        ((labels, m["reasoning_tokens"]) for labels, m in per_model if m["reasoning_tokens"]),
    )
    w.counter(
        "llmrelay_cost_usd_total",
        "Known cost in US dollars, by model (attempts with an unknown price are not included).",
        ((labels, m["cost_usd"]) for labels, m in per_model if m["requests"]),
    )
    w.counter(
        "llmrelay_cost_unknown_total",
        "Attempts whose price is unknown (not in the catalog), by model.",
        ((labels, m["cost_unknown"]) for labels, m in per_model if m["cost_unknown"]),
    )
    return "\n".join(w.lines) + "\n"
