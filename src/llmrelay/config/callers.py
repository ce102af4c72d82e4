"""Callers (seed 002's ``caller_class()``): built with ``get_params()``, they expose
``call_llm(prompt) -> str`` (and ``acall_llm``), running the one engine."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from ..providers import Secret
from ..resolve import Target

__all__ = ["ChatCaller", "caller_for_provider"]

_PARAM_KEYS = (
    "temperature",
    "max_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "stop",
)


class ChatCaller:
    """Calls a model with the parameters of a configuration."""

    provider: str = ""

    def __init__(self, params: dict[str, Any], *, client: Any = None) -> None:
        if not isinstance(params, dict):
            raise ConfigurationError("a caller is built from the dict of config.get_params()")
        model = params.get("model")
        if not isinstance(model, str) or not model:
            raise ConfigurationError("the caller's params have no 'model'")
        provider = params.get("provider") or self.provider
        if not provider:
            raise ConfigurationError("the caller's params have no 'provider'")
        from ..types import build_params

        self._params = build_params(
            {k: params[k] for k in _PARAM_KEYS if params.get(k) is not None}
        )
        key = params.get("api_key")
        self._target = Target(
            provider=provider,
            model=model,
            params=self._params,
            system_message=params.get("system_message") or None,
            base_url=params.get("base_url") or None,
            api_key=key
            if isinstance(key, Secret) and key
            else Secret(key)
            if isinstance(key, str) and key
            else None,
            api_key_env=params.get("api_key_env"),
            fallbacks=tuple(params.get("fallbacks") or ()),
        )
        self._stream = bool(params.get("stream"))
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..api import default_client

            self._client = default_client()
        return self._client

    async def acall_llm(self, prompt: str) -> str:
        from ..engine import CallOptions
        from ..types import GenerationParams

        engine = self.client.engine
        if self._stream:
            s = engine.stream(self._target, prompt, GenerationParams(), CallOptions())
            return (await s.collect()).text
        resp = await engine.complete(self._target, prompt, GenerationParams(), CallOptions())
        return str(resp.text)

    def call_llm(self, prompt: str) -> str:
        """Send ``prompt`` (after the configuration's system message) and return the text."""
        from .._sync import run_sync

        return run_sync(self.acall_llm(prompt))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._target.provider}/{self._target.model}>"


_CALLERS: dict[str, type[ChatCaller]] = {}


def caller_for_provider(provider: str) -> type[ChatCaller]:
    """``GroqCaller``, ``OpenAICaller``, ...: named per provider, all on the one engine."""
    cls = _CALLERS.get(provider)
    if cls is None:
        name = {"openai": "OpenAI", "xai": "XAI", "lmstudio": "LMStudio", "vllm": "VLLM"}.get(
            provider, provider.capitalize()
        )
        cls = type(f"{name}Caller", (ChatCaller,), {"provider": provider, "__module__": __name__})
        _CALLERS[provider] = cls
    return cls


GroqCaller = caller_for_provider("groq")
OpenAICaller = caller_for_provider("openai")
AnthropicCaller = caller_for_provider("anthropic")
GeminiCaller = caller_for_provider("gemini")
