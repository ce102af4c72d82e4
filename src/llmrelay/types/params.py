"""Generation parameters: :class:`GenerationParams`, validated by :func:`build_params`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidRequestError, finite, shown
from .messages import Tool, _Dumpable

__all__ = [
    "MAX_PROMPT_CACHE_KEY",
    "NO_PARAMS",
    "PARAM_NAMES",
    "REASONING_EFFORTS",
    "GenerationParams",
    "ReasoningEffort",
    "ToolChoice",
    "build_params",
    "merge_params",
]

ToolChoice = Literal["auto", "none", "required"] | str
#: One reasoning effort for every provider: mapped to OpenAI ``reasoning_effort`` (Responses
#: ``reasoning.effort``), Anthropic extended thinking / ``effort`` and Gemini ``thinkingConfig``
#: per the catalog's rows; ``"none"`` turns reasoning off where the model allows it.
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]
REASONING_EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high")
#: The longest ``prompt_cache_key`` OpenAI takes (a longer one is a 400: "Invalid
#: 'prompt_cache_key': string too long. Expected a string with maximum length 64"; Azure
#: OpenAI answers the same).
MAX_PROMPT_CACHE_KEY = 64


@dataclass(slots=True, frozen=True)
class GenerationParams(_Dumpable):
    """Generation parameters, already validated (build them with :func:`build_params`).

    ``tool_choice`` is ``"auto"``, ``"none"``, ``"required"`` or the name of one tool.
    ``extra`` holds provider-specific body fields, merged into the request as given.
    """

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    tools: tuple[Tool, ...] | None = None
    tool_choice: ToolChoice | None = None
    response_format: Mapping[str, Any] | None = None
    user: str | None = None
    reasoning_effort: ReasoningEffort | None = None
    #: OpenAI's ``prompt_cache_key``: requests sharing a key are routed to the same prompt
    #: cache (Chat Completions and Responses; providers that document no such field drop it
    #: and say so in ``adjusted_params``).
    prompt_cache_key: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


PARAM_NAMES = frozenset(f.name for f in dataclasses.fields(GenerationParams)) - {"extra"}
#: The parameters of a call that sets none. ``merge_params`` skips its work when either side
#: is this very object, so defaults (``build_params({})``, ``Target.params``) must use it.
NO_PARAMS = GenerationParams()


class _SharedExtra(dict[str, Any]):
    """``NO_PARAMS.extra``: empty and read-only. ``NO_PARAMS`` is one object shared by every
    call that sets no parameter, so a caller writing into its ``extra`` would have added the
    field to every later call in the process (and the adapters' ``p is NO_PARAMS`` fast path
    would not have looked at it as a caller's own)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "NO_PARAMS.extra is shared by every call and read-only; pass extra={...} to the "
            "call (or build_params({'extra': {...}})) for parameters of your own"
        )

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> Any:  # a copy or an unpickled one is a plain dict
        return (dict, ())


object.__setattr__(NO_PARAMS, "extra", _SharedExtra())


def _bad(name: str, message: str) -> InvalidRequestError:
    """The error for parameter ``name``: its ``body`` names it (``{"param": name}``), as the
    gateway's OpenAI-shaped errors and anything else reading ``param`` show it."""
    return InvalidRequestError(message, body={"param": name})


def _number(name: str, v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _bad(name, f"{name} must be a number between {lo:g} and {hi:g}, not {shown(v)}")
    if not finite(v) or not lo <= v <= hi:
        raise _bad(name, f"{name}={shown(v)} is out of range; use a value from {lo:g} to {hi:g}")
    return float(v)


def build_params(values: Mapping[str, Any]) -> GenerationParams:
    """Validate generation parameters (None means "not set"); raise ``InvalidRequestError``."""
    if not values:
        return NO_PARAMS
    unknown = [k for k in values if k not in PARAM_NAMES and k != "extra"]
    if unknown:
        listed = sorted(unknown)
        raise _bad(
            listed[0],
            f"unknown parameter(s) {', '.join(listed)}; known parameters are "
            f"{', '.join(sorted(PARAM_NAMES))}. Pass provider-specific fields as extra={{...}}",
        )
    out: dict[str, Any] = {}
    for k, v in values.items():
        if v is None:
            continue
        if k == "temperature":
            out[k] = _number(k, v, 0.0, 2.0)
        elif k == "top_p":
            out[k] = _number(k, v, 0.0, 1.0)
        elif k in ("frequency_penalty", "presence_penalty"):
            out[k] = _number(k, v, -2.0, 2.0)
        elif k == "max_tokens":
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise _bad(k, f"max_tokens must be a positive integer, not {shown(v)}")
            out[k] = v
        elif k == "seed":
            if isinstance(v, bool) or not isinstance(v, int):
                raise _bad(k, f"seed must be an integer, not {shown(v)}")
            out[k] = v
        elif k == "stop":
            stops = (v,) if isinstance(v, str) else tuple(v) if isinstance(v, Sequence) else None
            if stops is None or not all(isinstance(s, str) and s for s in stops):
                raise _bad(k, f"stop must be a string or a list of strings, not {shown(v)}")
            out[k] = stops
        elif k == "tools":
            if not isinstance(v, Sequence) or isinstance(v, str | bytes):
                raise _bad(k, "tools must be a list of tools")
            try:
                out[k] = tuple(Tool.coerce(t) for t in v)
            except InvalidRequestError as exc:
                raise _bad(k, exc.message) from None
        elif k == "tool_choice":
            if isinstance(v, Mapping):
                fn = v.get("function")
                name = fn.get("name") if isinstance(fn, Mapping) else v.get("name")
                if not isinstance(name, str):
                    raise _bad(k, "a dict tool_choice must name the tool: {'name': 'my_tool'}")
                v = name
            if not isinstance(v, str) or not v:
                raise _bad(
                    k,
                    f"tool_choice must be 'auto', 'none', 'required' or a tool name, not "
                    f"{shown(v)}",
                )
            out[k] = v
        elif k == "response_format":
            if v in ("json", "json_object"):
                v = {"type": "json_object"}
            elif v == "text":
                v = {"type": "text"}
            if not isinstance(v, Mapping) or "type" not in v:
                raise _bad(
                    k,
                    "response_format must be 'json', 'text' or a dict with a 'type' "
                    "(or pass response_model=<pydantic model> for structured output)",
                )
            out[k] = dict(v)
        elif k == "user":
            if not isinstance(v, str):
                raise _bad(k, f"user must be a string, not {shown(v)}")
            out[k] = str.__str__(v)  # a plain copy of a str subclass: its methods never run
        elif k == "reasoning_effort":
            if not isinstance(v, str) or v not in REASONING_EFFORTS:
                raise _bad(
                    k,
                    f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, not "
                    f"{shown(v)}",
                )
            out[k] = v
        elif k == "prompt_cache_key":
            if isinstance(v, str):  # a plain copy: a subclass's __len__ cannot pass 65 chars
                v = str.__str__(v)
            if not isinstance(v, str) or not v or len(v) > MAX_PROMPT_CACHE_KEY:
                got = f"a string of {len(v)} characters" if isinstance(v, str) else shown(v)
                raise _bad(
                    k,
                    "prompt_cache_key must be a non-empty string of at most "
                    f"{MAX_PROMPT_CACHE_KEY} characters, not {got}; hash a longer key "
                    "(e.g. hashlib.sha256(key.encode()).hexdigest()[:32])",
                )
            out[k] = v
        elif k == "extra":
            if not isinstance(v, Mapping) or not all(isinstance(key, str) for key in v):
                raise _bad(k, "extra must be a dict of provider-specific fields with string keys")
            out[k] = dict(v)
    tc = out.get("tool_choice")
    if tc is not None and tc not in ("auto", "none", "required"):
        names = {t.name for t in out.get("tools", ())}
        if tc not in names:
            raise _bad(
                "tool_choice",
                f"tool_choice names {shown(tc)}, which is not among the tools given"
                + (f" ({', '.join(sorted(names))})" if names else ""),
            )
    return GenerationParams(**out) if out else NO_PARAMS


def merge_params(base: GenerationParams, overrides: GenerationParams) -> GenerationParams:
    """``overrides`` wins wherever it is set; ``extra`` dicts are merged."""
    if base is NO_PARAMS:
        return overrides
    if overrides is NO_PARAMS:
        return base
    changes = {f: getattr(overrides, f) for f in PARAM_NAMES if getattr(overrides, f) is not None}
    if overrides.extra:
        changes["extra"] = {**base.extra, **overrides.extra}
    return dataclasses.replace(base, **changes)
