"""The engine's catalog layer: check a request against the model before sending it, and price
what each attempt used.

``prepare(req, dep)`` (once per candidate of the fallback chain):

* an image to a model without vision, or tools to a model without tools ->
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

Models the catalog does not know pass through unchecked. ``cost(dep, usage)`` prices one
attempt's usage (``llmrelay.catalog.costs``); an unknown price is a typed unknown ``Cost``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ContextWindowExceededError, UnsupportedCapabilityError
from ..types import ChatRequest, ImagePart, ReasoningPart, TextPart, Usage
from .costs import Cost, rates_for
from .tokens import IMAGE_TOKENS, count_message_tokens, estimate_tokens, is_exact

if TYPE_CHECKING:
    from ..providers.table import Deployment
    from .model_registry import LLMRegistry
    from .profiles import LLMProfile

__all__ = ["Catalog"]

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
    #: An OpenAI reasoning model: only the default sampling parameters are accepted.
    fixed_sampling: bool = False


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
        #: (model id, official) -> (when its lifecycle check passed, retired and elsewhere).
        self._checked: dict[tuple[str, bool], tuple[float, bool]] = {}

    @property
    def registry(self) -> LLMRegistry:
        if self._registry is None:
            from .model_registry import default_registry

            self._registry = default_registry()
        return self._registry

    def _entry(self, dep: Deployment) -> _Entry | None:
        reg = self.registry
        key = ("layer", dep.provider, dep.model, dep.base_url)
        cache = reg.cache
        try:
            return cache[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
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
                c.supports_reasoning and dep.provider in ("openai", "azure"),
            )
        cache[key] = entry
        return entry

    def _retired_elsewhere(self, e: _Entry) -> bool:
        """The registry's lifecycle check (warns; raises for a retired model at the provider's
        own API). Returns True for a retired model served elsewhere: it passes unchecked.
        A passed check is reused for a minute per deployment, so a model that retires while
        the process runs is caught within the minute."""
        key = (e.profile.id, e.official)
        now = time.monotonic()
        last = self._checked.get(key)
        if last is not None and now - last[0] < LIFECYCLE_RECHECK_S:
            return last[1]
        reg = self.registry
        reg.check_lifecycle(e.profile, enforce=e.official)
        elsewhere = not e.official and e.profile.is_retired(reg.today())
        self._checked[key] = (now, elsewhere)
        return elsewhere

    def prepare(self, req: ChatRequest, dep: Deployment) -> ChatRequest:
        e = self._entry(dep)
        if e is None:
            return req
        if e.lifecycle and self._retired_elsewhere(e):
            return req
        images = 0
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
        if e.fixed_sampling:
            out = _drop_sampling(out, dep)
            params = out.params
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
        rates = rates_for(self.registry, dep.provider, dep.model)
        if rates is None:
            return Cost.unknown(f"no price for {dep.label} in the catalog")
        return rates.cost(usage)

    def profile(self, dep: Deployment) -> LLMProfile | None:
        """The catalog's profile of a deployment's model (None when unknown)."""
        e = self._entry(dep)
        return e.profile if e is not None else None

    def __repr__(self) -> str:
        return f"Catalog({self._registry!r})"


#: Sampling parameters OpenAI's reasoning models reject unless left at their default.
_SAMPLING_DEFAULTS: dict[str, float] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
}


def _drop_sampling(req: ChatRequest, dep: Deployment) -> ChatRequest:
    """OpenAI's reasoning models answer 400 to any sampling parameter but its default: drop
    them (a seed config's temperature 0.7 would otherwise fail every call) and say so."""
    p = req.params
    drop = [name for name in _SAMPLING_DEFAULTS if getattr(p, name) is not None]
    if not drop:
        return req
    adjusted = dict(req.adjusted or {})
    for name in drop:
        default = _SAMPLING_DEFAULTS[name]
        if getattr(p, name) != default:
            adjusted[name] = (
                f"dropped: {dep.label} is a reasoning model and accepts only the default "
                f"({default:g})"
            )
    changes: dict[str, Any] = dict.fromkeys(drop)
    params = dataclasses.replace(p, **changes)
    return ChatRequest(req.messages, params, req.stream, adjusted or None)
