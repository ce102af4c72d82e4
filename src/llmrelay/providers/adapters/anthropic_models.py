"""Anthropic Messages: what each Claude model accepts, as data (keyed by model-name prefix).

Sources (read 2026-12-03):

* thinking modes -- https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking and
  https://platform.claude.com/docs/en/build-with-claude/extended-thinking: "Extended thinking
  (``thinking.type: "enabled"`` with ``budget_tokens``) is deprecated. Claude 4.7 and later
  models do not support it and reject requests that use it"; Opus 4.6 / Sonnet 4.6 take
  ``{"type": "adaptive"}`` (``enabled`` deprecated there); "older models (Sonnet 4.5, Opus 4.5,
  etc.) do not support adaptive thinking and require ``thinking.type: "enabled"`` with
  ``budget_tokens``"; Fable 5(.1), Mythos 5(.1) and Mythos Preview *only* support adaptive
  thinking (``{"type": "disabled"}`` is a 400 there too). ``budget_tokens`` is at least 1024
  and below ``max_tokens``;
* effort -- https://platform.claude.com/docs/en/build-with-claude/effort: ``output_config.effort``
  (``low``/``medium``/``high``, plus ``xhigh``/``max`` on some models), supported on the adaptive
  models below (and Opus 4.5);
* JSON outputs -- https://platform.claude.com/docs/en/build-with-claude/structured-outputs:
  ``output_config: {"format": {"type": "json_schema", "schema": {...}}}``, generally available
  for Opus 4.6, Sonnet 4.6, Sonnet 4.5, Opus 4.5 and Haiku 4.5 (launched in beta for Opus 4.1),
  and for the later Opus/Sonnet/Haiku/Fable/Mythos families (Amazon Bedrock's Claude
  structured-outputs page). Older models get a forced tool instead.

How a model takes ``reasoning_effort`` is catalog data: a row's ``reasoning`` field
(``llmrelay.types.ReasoningMap``), which the catalog layer hands the adapter with the request.
:func:`thinking_map` is the family default for a model the catalog does not know (a gateway's
own name, a future model, an engine without the catalog layer); the bundled rows agree with it
(tests/providers/test_reasoning_maps.py). JSON outputs are still decided here by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import orjson

from ...types.reasoning import ReasoningMap

__all__ = [
    "BUDGET_TOKENS",
    "EFFORT",
    "MIN_BUDGET_TOKENS",
    "ModelRules",
    "rules_for",
    "schema_recurses",
    "thinking_map",
]

ThinkingMode = Literal["adaptive", "budget", "none"]


@dataclass(frozen=True, slots=True)
class ModelRules:
    #: How thinking is switched on: ``{"type": "adaptive"}`` + ``output_config.effort``,
    #: ``{"type": "enabled", "budget_tokens": N}``, or not at all (the model has no thinking).
    thinking: ThinkingMode
    #: Takes ``output_config.format`` (JSON outputs); else structured output is a forced tool.
    native_json: bool
    #: Thinking cannot be switched off (``reasoning_effort="none"`` becomes the lowest effort).
    always_thinks: bool = False


_ADAPTIVE_ONLY = ModelRules("adaptive", native_json=True, always_thinks=True)
_ADAPTIVE = ModelRules("adaptive", native_json=True)
_BUDGET_JSON = ModelRules("budget", native_json=True)
_BUDGET = ModelRules("budget", native_json=False)
_NO_THINKING = ModelRules("none", native_json=False)

#: Model-name prefix -> rules; the longest matching prefix wins. A model not listed (a gateway's
#: own name, a future model) gets :data:`UNKNOWN`: budget thinking and a forced tool, the forms
#: every thinking-capable Anthropic-compatible server took before adaptive thinking.
RULES: dict[str, ModelRules] = {
    "claude-fable-5": _ADAPTIVE_ONLY,
    "claude-mythos-5": _ADAPTIVE_ONLY,
    "claude-mythos-preview": _ADAPTIVE_ONLY,
    "claude-opus-5": _ADAPTIVE,
    "claude-sonnet-5": _ADAPTIVE,
    "claude-haiku-5": _ADAPTIVE,
    "claude-opus-4-8": _ADAPTIVE,
    "claude-opus-4-7": _ADAPTIVE,
    "claude-opus-4-6": _ADAPTIVE,
    "claude-sonnet-4-6": _ADAPTIVE,
    "claude-opus-4-5": _BUDGET_JSON,
    "claude-sonnet-4-5": _BUDGET_JSON,
    "claude-haiku-4-5": _BUDGET_JSON,
    "claude-opus-4-1": _BUDGET_JSON,
    "claude-opus-4-0": _BUDGET,
    "claude-opus-4-2025": _BUDGET,
    "claude-sonnet-4-0": _BUDGET,
    "claude-sonnet-4-2025": _BUDGET,
    "claude-3-7-sonnet": _BUDGET,
    "claude-3": _NO_THINKING,
}
UNKNOWN = _BUDGET

#: ``reasoning_effort`` -> ``output_config.effort`` (adaptive models). Anthropic has no
#: ``minimal``: it is sent as ``low``.
EFFORT: dict[str, str] = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
#: ``reasoning_effort`` -> ``budget_tokens`` (budget models); 1024 is Anthropic's minimum.
BUDGET_TOKENS: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
MIN_BUDGET_TOKENS = 1024

_ORDERED = sorted(RULES.items(), key=lambda kv: -len(kv[0]))

_EFFORT_SOURCE = "https://platform.claude.com/docs/en/build-with-claude/effort"
_BUDGET_SOURCE = "https://platform.claude.com/docs/en/build-with-claude/extended-thinking"
_EFFORTS = {k: v for k, v in EFFORT.items() if k != "minimal"}
#: The family defaults: adaptive thinking with ``output_config.effort`` (a model that always
#: thinks sends ``none`` as ``low``), a thinking budget, or no thinking.
_MAPS: dict[tuple[ThinkingMode, bool], ReasoningMap] = {
    ("adaptive", False): ReasoningMap("effort", _EFFORTS, {"minimal": "low"}, None, _EFFORT_SOURCE),
    ("adaptive", True): ReasoningMap(
        "effort", _EFFORTS, {"minimal": "low", "none": "low"}, None, _EFFORT_SOURCE
    ),
    ("budget", False): ReasoningMap("budget", BUDGET_TOKENS, {}, None, _BUDGET_SOURCE),
    ("none", False): ReasoningMap("none", source=_BUDGET_SOURCE),
}


def thinking_map(model: str) -> ReasoningMap:
    """How ``model`` takes ``reasoning_effort`` when the catalog does not say (by name)."""
    rules = rules_for(model)
    return _MAPS[rules.thinking, rules.always_thinks]


@lru_cache(maxsize=512)
def rules_for(model: str) -> ModelRules:
    """The rules of ``model`` (a bare id, or one with a platform prefix such as
    ``anthropic.claude-...`` or ``anthropic/claude-...``)."""
    at = model.find("claude-")
    name = model[at:] if at > 0 else model
    for prefix, rules in _ORDERED:
        if name.startswith(prefix):
            return rules
    return UNKNOWN


def _refs(node: Any, out: set[str]) -> set[str]:
    """The local ``#/$defs/X`` (or ``#/definitions/X``) names ``node`` refers to."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            out.add(ref.rsplit("/", 1)[-1])
        for v in node.values():
            _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)
    return out


def schema_recurses(schema: Any) -> bool:
    """Does the JSON schema refer to itself (a tree, a linked list), through ``#`` or its
    ``$defs``? (Anthropic's JSON outputs take no recursive schema.)"""
    if not isinstance(schema, dict):
        return False
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        d = schema.get(key)
        if isinstance(d, dict):
            defs.update(d)
    graph = {name: _refs(body, set()) for name, body in defs.items()}
    seen: set[str] = set()

    def cycles(name: str, path: frozenset[str]) -> bool:
        if name in path:
            return True
        if name in seen:
            return False
        seen.add(name)
        return any(cycles(n, path | {name}) for n in graph.get(name, ()))

    root = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
    if '"$ref":"#"' in orjson.dumps(root).decode():
        return True
    return any(cycles(n, frozenset()) for n in graph)
