"""Capability detection (seed 003's detector, made real): ask a provider which models it serves
and register them, merged with the catalog.

.. code-block:: python

    registry = await ModelCapabilityDetectorFactory.register_all_models(
        anthropic_api_key="...", openai_api_key="...", gemini_api_key="...",
    )

Endpoints: OpenAI-compatible ``GET {base}/models`` (bearer key; also Groq, Mistral, DeepSeek,
xAI, Together, Fireworks, OpenRouter, local servers), Anthropic ``GET {base}/v1/models``
(``x-api-key`` + ``anthropic-version``, paged by ``after_id``) and Gemini ``GET {base}/models``
(``x-goog-api-key``, paged by ``pageToken``; ``inputTokenLimit``, ``outputTokenLimit``,
``supportedGenerationMethods``). Requests go through llmrelay's transport (injectable); error
answers become the usual typed errors (``AuthenticationError``, ...), never showing the key.

Merging: a model the catalog knows keeps its curated row, with the limits and shutdown date the
provider reports taking precedence. A dated snapshot of a known model (``gpt-4.1-2025-04-14``)
inherits that model's row. Any other model is registered with **unknown prices** (never $0)
and with its capability flags taken from the provider's list where it gives them; where it does
not, the flags are left on, so detection never makes the engine reject a request.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Any, ClassVar
from urllib.parse import urlencode

import orjson

from ..errors import AllAttemptsFailedError, InvalidResponseError, LLMRelayError
from ..providers.adapters.anthropic_request import ANTHROPIC_VERSION
from ..providers.adapters.base import send_headers, short_json_error, status_error
from ..providers.table import Deployment, Secret, get_provider, make_deployment
from ..transport.base import HttpRequest, Timeouts, Transport
from .model_registry import LLMRegistry, default_registry
from .profiles import LLMCapabilities, LLMProfile, MediaType, ModelFamily, Pricing

__all__ = [
    "AnthropicDetector",
    "DetectedModel",
    "GeminiDetector",
    "ModelCapabilityDetector",
    "ModelCapabilityDetectorFactory",
    "OpenAICompatibleDetector",
    "merge_detected",
]

_TIMEOUTS = Timeouts(connect=10.0, read=30.0, total=60.0)
#: OpenAI model-list ids that are not chat models (embeddings, speech, images, moderation).
_NOT_CHAT = re.compile(
    r"^(text-embedding|embed|whisper|tts|dall-e|gpt-image|omni-moderation|text-moderation|"
    r"davinci|babbage|sora|gpt-realtime|chatgpt-image)|(-tts|-transcribe|-embed)"
)
_SNAPSHOT = re.compile(r"^-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest|preview-\d{2}-\d{4})$")


@dataclass(slots=True)
class DetectedModel:
    """What a provider's model list says about one model (None: not said)."""

    id: str
    display_name: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    shutdown_date: str | None = None
    supports_tools: bool | None = None
    supports_vision: bool | None = None
    supports_reasoning: bool | None = None
    input_modalities: tuple[str, ...] | None = None
    #: Dollars per million tokens, when the list states prices (OpenRouter does).
    input_price: float | None = None
    output_price: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def _map(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _price_per_token(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f * 1_000_000 if f >= 0 else None


class ModelCapabilityDetector(ABC):
    """Lists one provider's models through a transport. Subclasses parse each API's shape."""

    provider_kind: ClassVar[str] = "openai"

    def __init__(self, dep: Deployment, transport: Transport) -> None:
        self.dep = dep
        self.transport = transport

    def headers(self) -> dict[str, str]:
        spec = self.dep.spec
        auth = spec.auth if spec is not None else "bearer"
        return send_headers({"accept": "application/json"}, self.dep, auth)

    async def _get(self, url: str) -> Any:
        from ..providers.backends import get_adapter

        resp = await self.transport.send(HttpRequest("GET", url, self.headers()), _TIMEOUTS)
        if resp.status >= 300:
            map_error = get_adapter(self.dep.wire).map_error
            raise status_error(map_error, resp.status, resp.headers, resp.body, self.dep)
        try:
            return orjson.loads(resp.body)
        except orjson.JSONDecodeError as exc:
            cause = short_json_error(exc, self.dep)
        # Outside the except block: the whole body is not kept as __context__.
        raise InvalidResponseError(
            f"the model list at {url.split('?')[0]} is not JSON: {cause}",
            provider=self.dep.provider,
            status=resp.status,
        ) from cause

    def _bad(self, what: str) -> InvalidResponseError:
        return InvalidResponseError(
            f"{self.dep.provider}'s model list is not in the documented shape: {what}",
            provider=self.dep.provider,
        )

    @abstractmethod
    async def list_models(self) -> list[DetectedModel]:
        """Every chat model the provider lists."""


class OpenAICompatibleDetector(ModelCapabilityDetector):
    """``GET {base}/models`` -> ``{"data": [{"id": ...}, ...]}``. Reads the vendor extensions
    it knows: ``context_window``/``context_length``/``max_context_length``,
    ``max_completion_tokens``, ``shutdown_date``, OpenRouter's ``pricing``/``architecture``/
    ``supported_parameters`` and Mistral's ``capabilities``."""

    provider_kind = "openai"

    async def list_models(self) -> list[DetectedModel]:
        data = await self._get(self.dep.base_url + "/models")
        items = data.get("data") if isinstance(data, Mapping) else data
        if not isinstance(items, list):
            raise self._bad("no 'data' list")
        out = []
        for it in items:
            if not isinstance(it, Mapping) or not isinstance(it.get("id"), str):
                raise self._bad(f"an entry without an id: {str(it)[:100]}")
            mid = it["id"]
            if _NOT_CHAT.search(mid):
                continue
            top = _map(it.get("top_provider"))
            arch = _map(it.get("architecture"))
            caps = _map(it.get("capabilities"))
            params = it.get("supported_parameters")
            mods = arch.get("input_modalities")
            pricing = _map(it.get("pricing"))
            tools: bool | None = None
            if isinstance(params, list):
                tools = "tools" in params
            elif isinstance(caps.get("function_calling"), bool):
                tools = caps["function_calling"]
            vision: bool | None = None
            if isinstance(mods, list):
                vision = "image" in mods
            elif isinstance(caps.get("vision"), bool):
                vision = caps["vision"]
            out.append(
                DetectedModel(
                    mid,
                    display_name=it.get("name") if isinstance(it.get("name"), str) else None,
                    context_window=_int(it.get("context_window"))
                    or _int(it.get("context_length"))
                    or _int(it.get("max_context_length")),
                    max_output_tokens=_int(it.get("max_completion_tokens"))
                    or _int(top.get("max_completion_tokens")),
                    shutdown_date=it.get("shutdown_date")
                    if isinstance(it.get("shutdown_date"), str)
                    else None,
                    supports_tools=tools,
                    supports_vision=vision,
                    input_modalities=tuple(m for m in mods if isinstance(m, str))
                    if isinstance(mods, list)
                    else None,
                    input_price=_price_per_token(pricing.get("prompt")),
                    output_price=_price_per_token(pricing.get("completion")),
                    raw=it,
                )
            )
        return out


class AnthropicDetector(ModelCapabilityDetector):
    """``GET {base}/v1/models?limit=1000`` (paged with ``after_id`` while ``has_more``)."""

    provider_kind = "anthropic"

    def headers(self) -> dict[str, str]:
        h = super().headers()
        h.setdefault("anthropic-version", ANTHROPIC_VERSION)
        return h

    async def list_models(self) -> list[DetectedModel]:
        out: list[DetectedModel] = []
        after: str | None = None
        for _ in range(100):  # 100 pages of 1000 models: far more than exist
            q = {"limit": 1000, **({"after_id": after} if after else {})}
            data = await self._get(f"{self.dep.base_url}/v1/models?{urlencode(q)}")
            items = data.get("data") if isinstance(data, Mapping) else None
            if not isinstance(items, list):
                raise self._bad("no 'data' list")
            for it in items:
                if not isinstance(it, Mapping) or not isinstance(it.get("id"), str):
                    raise self._bad(f"an entry without an id: {str(it)[:100]}")
                caps = _map(it.get("capabilities"))
                out.append(
                    DetectedModel(
                        it["id"],
                        display_name=it.get("display_name"),
                        context_window=_int(it.get("max_input_tokens")),
                        max_output_tokens=_int(it.get("max_tokens")),
                        supports_vision=caps.get("vision")
                        if isinstance(caps.get("vision"), bool)
                        else None,
                        raw=it,
                    )
                )
            if not data.get("has_more") or not data.get("last_id"):
                break
            after = str(data["last_id"])
        return out


class GeminiDetector(ModelCapabilityDetector):
    """``GET {base}/models?pageSize=1000`` (paged with ``pageToken``); keeps the models whose
    ``supportedGenerationMethods`` include ``generateContent``."""

    provider_kind = "gemini"

    async def list_models(self) -> list[DetectedModel]:
        out: list[DetectedModel] = []
        token: str | None = None
        for _ in range(100):
            q = {"pageSize": 1000, **({"pageToken": token} if token else {})}
            data = await self._get(f"{self.dep.base_url}/models?{urlencode(q)}")
            items = data.get("models") if isinstance(data, Mapping) else None
            if items is None:
                items = []
            if not isinstance(items, list):
                raise self._bad("'models' is not a list")
            for it in items:
                if not isinstance(it, Mapping) or not isinstance(it.get("name"), str):
                    raise self._bad(f"an entry without a name: {str(it)[:100]}")
                methods = it.get("supportedGenerationMethods") or []
                if "generateContent" not in methods:
                    continue
                thinking = it.get("thinking")
                out.append(
                    DetectedModel(
                        it["name"].removeprefix("models/"),
                        display_name=it.get("displayName"),
                        context_window=_int(it.get("inputTokenLimit")),
                        max_output_tokens=_int(it.get("outputTokenLimit")),
                        supports_reasoning=thinking if isinstance(thinking, bool) else None,
                        raw=it,
                    )
                )
            token = data.get("nextPageToken") if isinstance(data, Mapping) else None
            if not token:
                break
        return out


_DETECTORS: dict[str, type[ModelCapabilityDetector]] = {
    "openai_chat": OpenAICompatibleDetector,
    "anthropic_messages": AnthropicDetector,
    "gemini": GeminiDetector,
}

_FAMILIES: tuple[tuple[str, ModelFamily], ...] = (
    ("gpt-oss", ModelFamily.GPT_OSS),
    ("gpt", ModelFamily.GPT),
    ("chatgpt", ModelFamily.GPT),
    ("claude", ModelFamily.CLAUDE),
    ("gemini", ModelFamily.GEMINI),
    ("gemma", ModelFamily.GEMMA),
    ("mixtral", ModelFamily.MIXTRAL),
    ("llama", ModelFamily.LLAMA),
    ("mistral", ModelFamily.MISTRAL),
    ("qwen", ModelFamily.QWEN),
    ("deepseek", ModelFamily.DEEPSEEK),
    ("grok", ModelFamily.GROK),
    ("kimi", ModelFamily.KIMI),
)


def _family(model_id: str) -> ModelFamily:
    low = model_id.lower().rsplit("/", 1)[-1]
    if re.match(r"^o\d", low):
        return ModelFamily.O_SERIES
    for prefix, fam in _FAMILIES:
        if prefix in low:
            return fam
    return ModelFamily.OTHER


def _snapshot_base(registry: LLMRegistry, provider: str, model_id: str) -> LLMProfile | None:
    """The known model that ``model_id`` is a dated snapshot of (``gpt-4.1-2025-04-14``)."""
    best: LLMProfile | None = None
    for p in registry.list(provider):
        for name in (p.name, *p.aliases):
            if (
                model_id.startswith(name)
                and _SNAPSHOT.match(model_id[len(name) :])
                and (best is None or len(name) > len(best.name))
            ):
                best = p
    return best


def merge_detected(registry: LLMRegistry, provider: str, found: DetectedModel) -> LLMProfile:
    """Register one detected model, merged with what the catalog knows; returns the profile."""
    known = registry.lookup(provider, found.id)
    if known is None:
        base = _snapshot_base(registry, provider, found.id)
        if base is not None:
            known = base.replace(name=found.id, aliases=(), origin="detected")
    if known is not None:
        c = known.capabilities
        caps = dc_replace(
            c,
            max_context_window=found.context_window or c.max_context_window,
            max_output_tokens=found.max_output_tokens or c.max_output_tokens,
        )
        if (
            caps.max_context_window is not None
            and caps.max_output_tokens is not None
            and caps.max_output_tokens > caps.max_context_window
        ):
            caps = dc_replace(caps, max_output_tokens=c.max_output_tokens)
        changes: dict[str, Any] = {"capabilities": caps}
        if found.shutdown_date:
            changes["shutdown_date"] = found.shutdown_date
        return registry.register(known.replace(**changes))
    mods = {MediaType.TEXT}
    if found.input_modalities:
        for m in found.input_modalities:
            try:
                mods.add(MediaType(m))
            except ValueError:
                continue
    vision = found.supports_vision if found.supports_vision is not None else True
    if vision:
        mods.add(MediaType.IMAGE)
    window, out = found.context_window, found.max_output_tokens
    if window is not None and out is not None and out > window:
        out = None
    priced = found.input_price is not None and found.output_price is not None
    profile = LLMProfile(
        provider=provider,
        name=found.id,
        display_name=found.display_name,
        description="detected from the provider's model list; not in the llmrelay catalog",
        family=_family(found.id),
        capabilities=LLMCapabilities(
            max_context_window=window,
            max_output_tokens=out,
            supports_tools=found.supports_tools if found.supports_tools is not None else True,
            supports_vision=vision,
            supports_reasoning=bool(found.supports_reasoning),
            input_modalities=frozenset(mods),
            pricing=Pricing(
                input=found.input_price if priced else None,
                output=found.output_price if priced else None,
                note=(
                    "from the provider's model list"
                    if priced
                    else "unknown: the model is not in the catalog; add its price to your "
                    "catalog file"
                ),
            ),
        ),
        shutdown_date=found.shutdown_date,  # type: ignore[arg-type]  # ISO text, parsed
        origin="detected",
    )
    return registry.register(profile)


@asynccontextmanager
async def _transport(given: Transport | None) -> AsyncIterator[Transport]:
    """``given``, or a default transport of our own, closed afterwards."""
    if given is not None:
        yield given
        return
    from ..transport.native import default_transport

    own = default_transport()
    try:
        yield own
    finally:
        await own.aclose()


class ModelCapabilityDetectorFactory:
    """Builds detectors and registers what they find (seed 003's factory)."""

    @staticmethod
    def create_detector(
        provider: str,
        api_key: str | Secret | None = None,
        *,
        base_url: str | None = None,
        transport: Transport,
    ) -> ModelCapabilityDetector:
        """A detector for ``provider`` (any provider of ``llmrelay.PROVIDERS``)."""
        spec = get_provider(provider)
        dep = make_deployment(provider, "*", api_key=api_key, base_url=base_url)
        cls = _DETECTORS.get(spec.wire)
        if cls is None:
            raise LLMRelayError(f"provider {provider!r} has no model list to detect from")
        return cls(dep, transport)

    @classmethod
    async def register_provider_models(
        cls,
        provider: str,
        api_key: str | Secret | None = None,
        *,
        base_url: str | None = None,
        registry: LLMRegistry | None = None,
        transport: Transport | None = None,
    ) -> list[LLMProfile]:
        """List ``provider``'s models and register them; returns their profiles."""
        reg = registry if registry is not None else default_registry()
        async with _transport(transport) as t:
            det = cls.create_detector(provider, api_key, base_url=base_url, transport=t)
            found = await det.list_models()
        return [merge_detected(reg, provider, f) for f in found]

    @classmethod
    async def register_all_models(
        cls,
        anthropic_api_key: str | Secret | None = None,
        openai_api_key: str | Secret | None = None,
        gemini_api_key: str | Secret | None = None,
        *,
        api_keys: Mapping[str, str | Secret] | None = None,
        base_urls: Mapping[str, str] | None = None,
        registry: LLMRegistry | None = None,
        transport: Transport | None = None,
    ) -> LLMRegistry:
        """Detect every provider given a key (``api_keys`` adds others, e.g. ``{"groq": ...}``)
        concurrently and register their models. Failures are raised after the others are
        registered (one error, or ``AllAttemptsFailedError`` holding each)."""
        keys: dict[str, str | Secret] = {}
        for name, key in (
            ("anthropic", anthropic_api_key),
            ("openai", openai_api_key),
            ("gemini", gemini_api_key),
        ):
            if key:
                keys[name] = key
        keys.update(api_keys or {})
        if not keys:
            raise LLMRelayError(
                "register_all_models needs at least one API key (anthropic_api_key=..., "
                "openai_api_key=..., gemini_api_key=... or api_keys={provider: key})"
            )
        reg = registry if registry is not None else default_registry()
        urls = base_urls or {}
        async with _transport(transport) as t:
            results = await asyncio.gather(
                *(
                    cls.register_provider_models(
                        name, key, base_url=urls.get(name), registry=reg, transport=t
                    )
                    for name, key in keys.items()
                ),
                return_exceptions=True,
            )
        errors = [r for r in results if isinstance(r, BaseException)]
        for e in errors:
            if not isinstance(e, Exception):
                raise e
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise AllAttemptsFailedError(
                f"model detection failed for {len(errors)} of {len(keys)} providers",
                [e for e in errors if isinstance(e, Exception)],
            )
        return reg

    @classmethod
    async def register_model(
        cls,
        provider: str,
        model: str,
        api_key: str | Secret | None = None,
        **kw: Any,
    ) -> LLMProfile:
        """Detect ``provider``'s models and return the profile of ``model`` (registered)."""
        profiles = await cls.register_provider_models(provider, api_key, **kw)
        for p in profiles:
            if p.name == model or model in p.aliases:
                return p
        raise LLMRelayError(
            f"{provider} does not list {model!r} among its {len(profiles)} models",
            provider=provider,
            model=model,
        )

    # per-provider helpers
    @classmethod
    async def register_openai_models(cls, api_key: str | Secret, **kw: Any) -> list[LLMProfile]:
        return await cls.register_provider_models("openai", api_key, **kw)

    @classmethod
    async def register_anthropic_models(cls, api_key: str | Secret, **kw: Any) -> list[LLMProfile]:
        return await cls.register_provider_models("anthropic", api_key, **kw)

    @classmethod
    async def register_gemini_models(cls, api_key: str | Secret, **kw: Any) -> list[LLMProfile]:
        return await cls.register_provider_models("gemini", api_key, **kw)

    @classmethod
    async def register_claude_3_5_sonnet_latest(
        cls, api_key: str | Secret, **kw: Any
    ) -> LLMProfile:
        """Seed 003's example. Anthropic retired this alias on 2025-10-22; the call raises
        unless the endpoint still lists it (a proxy or mirror)."""
        return await cls.register_model("anthropic", "claude-3-5-sonnet-latest", api_key, **kw)
