"""Which OpenAI API a call uses: Chat Completions (``openai_chat``) or Responses
(``openai_responses``).

Decided per candidate deployment of a call, first match wins:

1. the call's ``api="responses" | "chat"`` option;
2. the alias's ``api`` (``[models.x] api = "responses"`` in ``llmrelay.toml``, or ``"api"`` in a
   seed-002 configuration's ``get_params()``);
3. the provider's ``api`` (``[providers.azure] api = "responses"``): how Azure OpenAI and
   OpenAI-compatible vendors that serve ``/v1/responses`` opt in;
4. the model: its catalog row's ``tools_api = "responses"`` (read by the engine for calls
   with tools), else :data:`RESPONSES_MODELS`, which names the models that need the Responses
   API for a feature (``"tools"``: only calls that send tools switch) or for everything
   (``"always"``);
5. otherwise Chat Completions.

Only providers that speak ``openai_chat`` switch; the caller's code does not change (same
``Response``, errors, trace, costs and limits: the deployment's identity is the same).
"""

from __future__ import annotations

from typing import Any, Literal

from ..errors import InvalidRequestError, shown
from ..types import ChatRequest
from .table import Deployment

__all__ = ["API_NAMES", "RESPONSES_MODELS", "Api", "check_api", "choose_api", "needs_responses"]

Api = Literal["chat", "responses"]
API_NAMES: tuple[str, ...] = ("chat", "responses")

#: ``(model id prefix, when, source)``: OpenAI models that need the Responses API, for a feature
#: (``"tools"``) or for every call (``"always"``). The catalog's row for gpt-6.1-sol says
#: "function calling needs the Responses API (Chat Completions rejects tools for this model)";
#: the issue (12) extends it to the GPT-6 family. Kept here until the catalog carries the field.
RESPONSES_MODELS: tuple[tuple[str, str, str], ...] = (
    ("gpt-6", "tools", "https://developers.openai.com/api/docs/models/gpt-6.1-sol"),
)
#: Providers whose models :data:`RESPONSES_MODELS` describes (OpenAI's own models).
_OPENAI_MODEL_PROVIDERS = frozenset({"openai", "azure"})

_CHAT = "openai_chat"
_RESPONSES = "openai_responses"

#: model -> its RESPONSES_MODELS rule ("tools", "always" or None), per model id seen.
_RULES: dict[str, str | None] = {}
#: id(chat deployment) -> (that deployment, its Responses twin): built once per deployment.
_TWINS: dict[int, tuple[Deployment, Deployment]] = {}


def check_api(value: Any, name: str = "api") -> Api | None:
    """``value`` as an API name, or ``InvalidRequestError`` naming ``name`` and the choices."""
    if value is None:
        return None
    if value.__class__ is not str or value not in API_NAMES:
        raise InvalidRequestError(f"{name} must be 'chat' or 'responses', not {shown(value)}")
    return "responses" if value == "responses" else "chat"


def needs_responses(provider: str, model: str) -> str | None:
    """When OpenAI's ``model`` needs the Responses API: ``"tools"``, ``"always"`` or None."""
    if provider not in _OPENAI_MODEL_PROVIDERS:
        return None
    try:
        return _RULES[model]
    except KeyError:
        pass
    rule = next((when for prefix, when, _ in RESPONSES_MODELS if model.startswith(prefix)), None)
    if len(_RULES) >= 1024:
        _RULES.clear()
    _RULES[model] = rule
    return rule


def _twin(dep: Deployment) -> Deployment:
    hit = _TWINS.get(id(dep))
    if hit is not None and hit[0] is dep:
        return hit[1]
    if dep.provider == "azure" and "/openai/deployments/" in dep.base_url:
        # Azure serves Responses only on its v1 surface, the deployment named in the body:
        # ``.../openai/deployments/<name>/responses`` is a 404 after the request is sent.
        raise InvalidRequestError(
            f"{dep.label}: Azure OpenAI serves the Responses API at "
            "https://<resource>.openai.azure.com/openai/v1 (no /openai/deployments/<name> "
            "segment; the deployment is the model): set that base_url, or use api='chat'",
            provider=dep.provider,
            model=dep.model,
        )
    twin = dep.replace(wire=_RESPONSES)
    if len(_TWINS) >= 512:
        _TWINS.clear()
    _TWINS[id(dep)] = (dep, twin)
    return twin


def choose_api(
    dep: Deployment,
    req: ChatRequest,
    api: str | None,
    strict: bool,
    tools_api: str | None = None,
) -> Deployment:
    """The deployment to send ``req`` to: ``dep`` itself, or its Responses twin (same key,
    limits and breaker). ``api`` is the call's option; with ``strict`` (the call's primary
    model) asking for Responses from a provider that cannot serve it is an
    ``InvalidRequestError``; a fallback of another wire API keeps its own. ``tools_api`` is the
    catalog row's field (``"responses"``: tools only through Responses), read by the engine
    for calls with tools; without it :data:`RESPONSES_MODELS` decides."""
    wire = dep.wire
    if wire != _CHAT:
        if api == "responses" and strict and wire not in (_RESPONSES, "test"):
            raise InvalidRequestError(
                f"api='responses' needs an OpenAI or OpenAI-compatible provider; {dep.label} "
                f"speaks the {wire} API. Drop api=... for this model",
                provider=dep.provider,
                model=dep.model,
            )
        return dep
    if api is None:
        api = dep.options.get("api") if dep.options else None
        if api is None:
            spec = dep.spec
            api = spec.api if spec is not None else None
    if api is None:
        rule = "tools" if tools_api == "responses" else needs_responses(dep.provider, dep.model)
        if rule == "always" or (rule == "tools" and req.params.tools):
            return _twin(dep)
        return dep
    return _twin(dep) if api == "responses" else dep
