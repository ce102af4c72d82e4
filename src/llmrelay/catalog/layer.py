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
attempt's usage (``llmrelay.costs``); an unknown price is a typed unknown ``Cost``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ContextWindowExceededError, UnsupportedCapabilityError
from ..layers import Cost
from ..tokens import IMAGE_TOKENS, count_message_tokens, estimate_tokens, is_exact
from ..types import ChatRequest, ImagePart, Usage

if TYPE_CHECKING:
    from ..providers import Deployment
    from .models import LLMProfile
    from .registry import LLMRegistry

__all__ = ["Catalog"]

#: Count exactly once the estimate passes this share of the context window.
EXACT_COUNT_THRESHOLD = 0.5


@dataclass(slots=True, frozen=True)
class _Entry:
    profile: LLMProfile
    window: int | None
    max_output: int | None
    vision: bool
    tools: bool
    #: Retired, and at a base URL other than the provider's own: no checks apply.
    passthrough: bool


def _is_official(dep: Deployment) -> bool:
    spec = dep.spec
    return bool(spec is not None and spec.base_url and dep.base_url == spec.base_url.rstrip("/"))


class Catalog:
    """The ``CatalogLayer`` of the engine (``Engine(catalog=Catalog())``; ``llmrelay.Client``
    uses one by default). Cheap to build: the registry loads on the first call."""

    def __init__(self, registry: LLMRegistry | None = None) -> None:
        self._registry = registry

    @property
    def registry(self) -> LLMRegistry:
        if self._registry is None:
            from .registry import default_registry

            self._registry = default_registry()
        return self._registry

    def _entry(self, dep: Deployment) -> _Entry | None:
        reg = self.registry
        official = _is_official(dep)
        key = ("layer", dep.provider, dep.model, official)
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
                p.is_retired(reg.today()) and not official,
            )
        cache[key] = entry
        return entry

    def prepare(self, req: ChatRequest, dep: Deployment) -> ChatRequest:
        e = self._entry(dep)
        if e is None:
            return req
        reg = self.registry
        if e.passthrough:
            reg.check_lifecycle(e.profile, enforce=False)  # warns once
            return req
        if e.profile.shutdown_date is not None or e.profile.deprecation_date is not None:
            reg.check_lifecycle(e.profile)
        images = 0
        if not e.vision or e.window is not None:
            for m in req.messages:
                c = m.content
                if c is not None and not isinstance(c, str):
                    images += sum(1 for part in c if isinstance(part, ImagePart))
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
        if max_tokens is not None and e.max_output is not None and max_tokens > e.max_output:
            max_tokens = e.max_output
            adjusted = dict(req.adjusted or {})
            adjusted["max_tokens"] = f"clamped to {e.max_output}: the model's maximum output"
            out = ChatRequest(
                req.messages,
                dataclasses.replace(params, max_tokens=e.max_output),
                req.stream,
                adjusted,
            )
        if e.window is not None:
            self._check_window(req, dep, e, e.window, max_tokens or 0, images)
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
                    estimate_tokens(p.text) for p in c if not isinstance(p, ImagePart)
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
        from ..costs import rates_for

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
