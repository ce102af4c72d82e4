"""The engine's catalog layer: check a request against the model before sending it, and price
what each attempt used.

``prepare(req, dep)`` (once per candidate of the fallback chain):

* an image to a model without vision, audio to a model whose input modalities lack audio,
  or tools to a model without tools ->
  ``UnsupportedCapabilityError`` (the engine moves to the next candidate when there is one);
* ``max_tokens`` above the model's maximum output -> clamped, and the response's
  ``adjusted_params`` says so;
* a prompt whose tokens plus ``max_tokens`` exceed the context window ->
  ``ContextWindowExceededError`` before anything is sent (the engine then tries the
  context-window fallback chain). The cheap estimate runs first; the prompt is counted exactly
  (OpenAI models; the documented estimate elsewhere) only when the estimate passes half the
  window;
* a deprecated model logs a warning once; a retired one raises ``ModelRetiredError`` at the
  provider's own endpoint. At another base URL (a proxy, a mirror, a test server) whatever
  still answers to a retired name is not the catalog's model: the request passes unchecked.
  A model the provider routes to its replacement, or retires for some account tiers only,
  warns and is sent (see ``LLMRegistry.check_lifecycle``). A call made through an alias whose
  model shuts down within ``ALIAS_WARN_DAYS`` warns once per alias, naming the replacement;
* a row's ``reasoning`` (how the model takes ``reasoning_effort``) travels to the adapter as
  ``ChatRequest.reasoning`` when the caller sets an effort;
* parameters the row's ``rejected_params`` say the model rejects are dropped and reported in
  ``Response.adjusted_params`` (a value equal to the rule's ``default`` is sent: accepted);
  with ``strict_params=True`` (a call option) a parameter the caller set is refused instead,
  with ``UnsupportedCapabilityError(capability="parameters")``, before anything is sent.

Models the catalog does not know pass through unchecked. ``cost(dep, usage)`` prices one
attempt's usage (``llmrelay.catalog.costs``); an unknown price is a typed unknown ``Cost``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ContextWindowExceededError, UnsupportedCapabilityError, shown
from ..types import (
    NO_PARAMS,
    AudioPart,
    ChatRequest,
    ImagePart,
    ReasoningMap,
    ReasoningPart,
    TextPart,
    Usage,
)
from .costs import Cost, rates_for
from .profiles import EXTRA_RULE_PARAMS, ParamRule
from .tokens import IMAGE_TOKENS, count_message_tokens, estimate_tokens, is_exact

if TYPE_CHECKING:
    from ..providers.table import Deployment
    from .model_registry import LLMRegistry
    from .profiles import LLMProfile

__all__ = ["ALIAS_WARN_DAYS", "Catalog"]

log = logging.getLogger("llmrelay.catalog")

#: An alias whose model shuts down within this many days warns when called.
ALIAS_WARN_DAYS = 30

#: Count exactly once the estimate passes this share of the context window.
EXACT_COUNT_THRESHOLD = 0.5
#: Seconds a passed lifecycle check stays valid for a model.
LIFECYCLE_RECHECK_S = 60.0
#: The most tokens an image may count for (any provider's estimate).
_MAX_IMAGE_TOKENS = max(IMAGE_TOKENS.values())


@dataclass(slots=True, frozen=True)
class _Entry:
    profile: LLMProfile
    window: int | None
    max_output: int | None
    vision: bool
    tools: bool
    #: At the provider's own API (retirement is enforced only there).
    official: bool
    #: Has a deprecation or shutdown date: the lifecycle check runs.
    lifecycle: bool
    #: The parameters the model rejects.
    rules: tuple[ParamRule, ...] = ()
    #: Audio among the model's input modalities.
    audio: bool = True
    #: ``profile.id`` (read by every lifecycle check).
    profile_id: str = ""
    #: How the model takes ``reasoning_effort`` (the row's ``reasoning``), for the adapter.
    reasoning: ReasoningMap | None = None


def _is_official(dep: Deployment) -> bool:
    """Is ``dep`` the provider's own API (not a proxy, mirror or test server)? The provider
    table's ``official_host`` says where that is; providers without one count as official at
    the base URL their spec names."""
    spec = dep.spec
    if spec is not None and spec.official_host is not None:
        return urlsplit(dep.base_url).hostname == spec.official_host
    return bool(spec is not None and spec.base_url and dep.base_url == spec.base_url.rstrip("/"))


class Catalog:
    """The ``CatalogLayer`` of the engine (``Engine(catalog=Catalog())``; ``llmrelay.Client``
    uses one by default). Cheap to build: the registry loads on the first call."""

    def __init__(self, registry: LLMRegistry | None = None) -> None:
        self._registry = registry
        #: (model id, official, alias) -> (when its lifecycle check passed, retired and
        #: elsewhere).
        self._checked: dict[tuple[str, bool, str | None], tuple[float, bool]] = {}

    @property
    def registry(self) -> LLMRegistry:
        if self._registry is None:
            from .model_registry import default_registry

            self._registry = default_registry()
        return self._registry

    def _entry(self, dep: Deployment) -> _Entry | None:
        reg = self._registry
        if reg is None:
            reg = self.registry
        key = ("layer", dep.provider, dep.model, dep.base_url)
        cache = reg.cache
        try:
            return cache[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
        gen = reg.cache_guard.generation  # a value computed across a change is not remembered
        p = reg.lookup(dep.provider, dep.model)
        entry = None
        if p is not None:
            c = p.capabilities
            entry = _Entry(
                p,
                c.max_context_window,
                c.max_output_tokens,
                c.supports_vision,
                c.supports_tools,
                _is_official(dep),
                p.shutdown_date is not None or p.deprecation_date is not None,
                _effort_first(p.rejected_params or _implied_rules(p, dep)),
                "audio" in c.input_modalities,
                p.id,
                p.reasoning,
            )
        reg.cache_guard.put(key, entry, gen)
        return entry

    def _retired_elsewhere(self, e: _Entry, alias: str | None) -> bool:
        """The registry's lifecycle check (warns; raises for a retired model at the provider's
        own API). Returns True for a retired-and-refused model served elsewhere: it passes
        unchecked. A passed check is reused for a minute per deployment, so a model that
        retires while the process runs is caught within the minute."""
        key = (e.profile_id, e.official, alias)
        now = time.monotonic()
        last = self._checked.get(key)
        if last is not None and now - last[0] < LIFECYCLE_RECHECK_S:
            return last[1]
        reg = self.registry
        if alias is not None and alias not in _alias_warned:
            _warn_alias(reg, alias, e.profile)
        reg.check_lifecycle(e.profile, enforce=e.official)
        elsewhere = not e.official and e.profile.lifecycle_state(reg.today()) == "retired"
        self._checked[key] = (now, elsewhere)
        return elsewhere

    def prepare(
        self, req: ChatRequest, dep: Deployment, *, strict_params: bool = False
    ) -> ChatRequest:
        e = self._entry(dep)
        if e is None:
            from .embeddings import embedding_model  # loaded only for models not in the catalog

            if embedding_model(dep.provider, dep.model) is not None:
                raise UnsupportedCapabilityError(
                    f"{dep.label} is an embedding model: it cannot chat; call "
                    "llmrelay.embed(...) with it, or chat with a chat model",
                    provider=dep.provider,
                    model=dep.model,
                    capability="chat",
                )
            return req
        if e.lifecycle and self._retired_elsewhere(e, dep.alias):
            return req
        images = audio = 0
        chars = 0
        for m in req.messages:
            c = m.content
            if c.__class__ is str or isinstance(c, str):
                chars += len(c)
            elif c is not None:
                for part in c:
                    if isinstance(part, ImagePart):
                        images += 1
                    elif isinstance(part, TextPart | ReasoningPart):
                        chars += len(part.text)
                    elif isinstance(part, AudioPart):
                        audio += 1
            if m.tool_calls:
                chars += sum(len(tc.arguments) + len(tc.name) for tc in m.tool_calls)
        if images and not e.vision:
            raise UnsupportedCapabilityError(
                f"{dep.label} does not accept images (the request has {images}); send text "
                "only or use a vision model",
                provider=dep.provider,
                model=dep.model,
                capability="vision",
            )
        if audio and not e.audio:
            raise UnsupportedCapabilityError(
                f"{dep.label} does not accept audio input (the request has {audio} audio "
                "part(s)); transcribe it first or use a model whose input includes audio",
                provider=dep.provider,
                model=dep.model,
                capability="audio",
            )
        params = req.params
        if params.tools and not e.tools:
            raise UnsupportedCapabilityError(
                f"{dep.label} does not support tools (the request defines {len(params.tools)}); "
                "remove them or use a model with tool calling",
                provider=dep.provider,
                model=dep.model,
                capability="tools",
            )
        max_tokens = params.max_tokens
        out = req
        if params is not NO_PARAMS:  # a call that sets nothing breaks no rule
            if e.rules:
                out = _apply_rules(out, dep, e.rules, strict_params)
                params = out.params
            if e.reasoning is not None and params.reasoning_effort is not None:
                out = ChatRequest(out.messages, params, out.stream, out.adjusted, e.reasoning)
        if max_tokens is not None and e.max_output is not None and max_tokens > e.max_output:
            max_tokens = e.max_output
            adjusted = {
                **(out.adjusted or {}),
                "max_tokens": f"clamped to {e.max_output}: the model's maximum output",
            }
            out = ChatRequest(
                req.messages,
                dataclasses.replace(params, max_tokens=e.max_output),
                req.stream,
                adjusted,
                out.reasoning,
            )
        window = e.window
        if window is not None:
            # A token is at least one UTF-8 byte and a character at most four bytes, so this
            # bound is never below the real count: most prompts end the check here.
            bound = 4 * chars + images * _MAX_IMAGE_TOKENS + 8 * len(req.messages) + 3
            if params.tools:
                bound += 4 * sum(len(str(t.parameters)) + len(t.name) + 40 for t in params.tools)
            if bound + (max_tokens or 0) > window:
                self._check_window(req, dep, e, window, max_tokens or 0, images)
        return out

    def _check_window(
        self,
        req: ChatRequest,
        dep: Deployment,
        e: _Entry,
        window: int,
        max_tokens: int,
        images: int,
    ) -> None:
        estimate = images * IMAGE_TOKENS["openai"] + 3
        for m in req.messages:
            c = m.content
            if isinstance(c, str):
                estimate += estimate_tokens(c) + 4
            elif c is not None:
                estimate += 4 + sum(
                    estimate_tokens(p.text) for p in c if isinstance(p, TextPart | ReasoningPart)
                )
            for tc in m.tool_calls or ():
                estimate += estimate_tokens(tc.arguments) + 4
        if estimate + max_tokens <= window * EXACT_COUNT_THRESHOLD:
            return
        model = e.profile.id
        prompt = count_message_tokens(
            req.messages, model, tools=req.params.tools, encoding=e.profile.tokenizer
        )
        if prompt + max_tokens > window:
            how = "" if is_exact(model, encoding=e.profile.tokenizer) else " (estimated)"
            with_out = (
                f" plus max_tokens={max_tokens} is {prompt + max_tokens}" if max_tokens else ""
            )
            raise ContextWindowExceededError(
                f"the prompt is {prompt} tokens{how}{with_out}, over the {window}-token context "
                f"window of {dep.label}; shorten the prompt, lower max_tokens or use a model "
                "with a larger window (context_window_fallbacks=...)",
                provider=dep.provider,
                model=dep.model,
            )

    def cost(self, dep: Deployment, usage: Usage) -> Cost:
        """The cost of ``usage`` at the price in force now (the registry's clock)."""
        return self.cost_at(dep, usage, None)

    def cost_at(self, dep: Deployment, usage: Usage, elapsed_s: float | None) -> Cost:
        """The cost of ``usage`` at the price in force when the call started: ``elapsed_s``
        (the attempt's latency) before now on the registry's clock (now when None). The
        engine prices answers with it, so a call that started off-peak and ended in a
        time-of-day price window is billed at its start."""
        reg = self._registry
        if reg is None:
            reg = self.registry
        at = None
        if elapsed_s is not None and elapsed_s > 0.0:
            at = reg.now() - elapsed_s
        rates = rates_for(reg, dep.provider, dep.model, at)
        if rates is None:
            return Cost.unknown(f"no price for {dep.label} in the catalog")
        return rates.cost(usage)

    def profile(self, dep: Deployment) -> LLMProfile | None:
        """The catalog's profile of a deployment's model (None when unknown)."""
        e = self._entry(dep)
        return e.profile if e is not None else None

    def __repr__(self) -> str:
        return f"Catalog({self._registry!r})"


#: Aliases already warned about (their model shuts down soon), process-wide.
_alias_warned: set[str] = set()
_alias_lock = threading.Lock()


def _warn_alias(registry: LLMRegistry, alias: str, profile: LLMProfile) -> None:
    """Warn once per process per alias when ``alias`` points at a model that shuts down
    within ``ALIAS_WARN_DAYS`` (not yet shut down: the lifecycle check covers that)."""
    shutdown = profile.shutdown_date
    if shutdown is None:
        return
    left = (shutdown - registry.today()).days
    if left < 0 or left > ALIAS_WARN_DAYS:
        return
    with _alias_lock:
        if alias in _alias_warned:
            return
        _alias_warned.add(alias)
    repl = registry.current_replacement(profile)
    instead = f"; point it at {repl!r} instead" if repl else "; no replacement is named"
    log.warning(
        "alias %r points at %s, which shuts down on %s (in %d days)%s",
        alias,
        profile.id,
        shutdown,
        left,
        instead,
        extra={"model": profile.id, "alias": alias},
    )


#: Sampling parameters OpenAI's reasoning models reject unless left at their default: the rules
#: a user catalog row of such a model gets when it names none.
_SAMPLING_DEFAULTS: dict[str, float] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
}
_REASONING_NOTE = "a reasoning model accepts only the default"
_NO_REASONING_NOTE = "the model does not reason"


def _implied_rules(p: LLMProfile, dep: Deployment) -> tuple[ParamRule, ...]:
    """Rules for a row that names none: an OpenAI (or Azure) reasoning model answers 400 to a
    sampling parameter other than its default, a model that does not reason to
    ``reasoning_effort``."""
    if dep.provider not in ("openai", "azure"):
        return ()
    if not p.capabilities.supports_reasoning:
        return (ParamRule("reasoning_effort", note=_NO_REASONING_NOTE),)
    return tuple(
        ParamRule(name, default=default, note=f"{_REASONING_NOTE} ({default:g})")
        for name, default in _SAMPLING_DEFAULTS.items()
    )


def _effort_first(rules: tuple[ParamRule, ...]) -> tuple[ParamRule, ...]:
    """``rules`` with those on ``reasoning_effort`` first: whether the effort is sent decides
    the rules that depend on it (``when``)."""
    return tuple(sorted(rules, key=lambda r: r.param != "reasoning_effort"))


def _applies(rule: ParamRule, value: object, effort: str | None) -> bool:
    if value is None:
        return False
    if rule.accepts:
        return value not in rule.accepts
    if rule.when == "reasoning" and (effort is None or effort == "none"):
        return False
    if rule.when == "unless_reasoning_none" and effort == "none":
        return False
    return not (rule.values == "forced" and value in ("auto", "none"))


def _takes(rule: ParamRule) -> str:
    """What a rule lets through, for its messages: " (it takes low, medium or high)"."""
    if not rule.accepts:
        return ""
    *head, last = rule.accepts
    return f" (it takes {', '.join(head)} or {last})" if head else f" (it takes only {last})"


def _apply_rules(
    req: ChatRequest, dep: Deployment, rules: tuple[ParamRule, ...], strict: bool
) -> ChatRequest:
    """Drop the parameters ``rules`` reject (the model would answer 400) and report each in
    ``adjusted_params``; a value equal to the rule's default is accepted and sent. With
    ``strict``, refuse such a parameter instead."""
    p = req.params
    effort = p.reasoning_effort
    drop: list[str] = []
    adjusted = dict(req.adjusted or {})
    for rule in rules:
        name = rule.param
        value = p.extra.get(name) if name in EXTRA_RULE_PARAMS else getattr(p, name)
        if name in drop or not _applies(rule, value, effort):
            continue
        if rule.default is not None and value == rule.default:
            # The model's own default is accepted (recorded: claude-fable-5-1 answered a body
            # with temperature 1.0): sent as the caller set it.
            continue
        drop.append(name)
        if name == "reasoning_effort":
            effort = None  # not sent: the rules that depend on it see the model's default
        why = f" ({rule.note})" if rule.note else ""
        takes = _takes(rule)
        if strict:
            src = f" (documented at {rule.source})" if rule.source else ""
            fix = "use one of those values" if takes else "remove it"
            raise UnsupportedCapabilityError(
                f"{dep.label} rejects {name}={shown(value)}{takes}{why}{src}; {fix}, or call "
                "without strict_params=True to have it dropped and reported in "
                "adjusted_params",
                provider=dep.provider,
                model=dep.model,
                capability="parameters",
            )
        what = f"{name}={shown(value)}" if takes else "it"
        adjusted[name] = f"dropped: {dep.label} rejects {what}{takes}{why}"
    if not drop:
        return req
    changes: dict[str, Any] = dict.fromkeys(n for n in drop if n not in EXTRA_RULE_PARAMS)
    if any(n in EXTRA_RULE_PARAMS for n in drop):
        changes["extra"] = {k: v for k, v in p.extra.items() if k not in drop}
    params = dataclasses.replace(p, **changes)
    return ChatRequest(req.messages, params, req.stream, adjusted or None)
