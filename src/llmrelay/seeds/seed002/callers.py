"""Callers (seed 002's ``caller_class()``): built with ``get_params()``, they expose
``call_llm(prompt) -> str`` (and ``acall_llm``), running the one engine.

``GroqCaller``, ``OpenAICaller``, ``AnthropicCaller``, ... are one class per provider (made by
:func:`caller_for_provider`); all of them are :class:`ChatCaller` and differ only in the provider
they default to when the params do not name one.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequestError, UnknownModelError
from ...providers.aliases import target_from_params
from ...providers.table import PROVIDERS
from ...types import NO_PARAMS
from .base import CALLER_CLASSES, CALLER_FACTORY, BaseModelConfig, ProviderBaseConfig

__all__ = [
    "AnthropicCaller",
    "ChatCaller",
    "GeminiCaller",
    "GroqCaller",
    "OpenAICaller",
    "caller_for_provider",
    "uses_llmrelay_caller",
]


class ChatCaller:
    """Calls a model with the parameters of a configuration.

    ``params`` is the dict of ``config.get_params()``; it is validated here (a bad value raises
    ``ConfigurationError`` naming it). ``client`` is the ``llmrelay.Client`` to call through
    (default: the shared default client); ``alias`` labels responses and error messages.
    """

    provider: str = ""

    def __init__(
        self, params: dict[str, Any], *, client: Any = None, alias: str | None = None
    ) -> None:
        what = f"configuration {alias!r}" if alias else f"the params of {type(self).__name__}"
        self._target = target_from_params(
            params,
            alias=alias,
            provider=self.provider or None,
            key_env=None,
            what=what,
        )
        self._stream = params.get("stream") is True
        self._client = client

    @property
    def provider_name(self) -> str:
        """The provider this caller calls (e.g. ``"groq"``)."""
        return self._target.provider

    @property
    def model(self) -> str:
        """The provider's model id (e.g. ``"llama3-8b-8192"``)."""
        return self._target.model

    @property
    def client(self) -> Any:
        if self._client is None:
            from ...client import default_client

            self._client = default_client()
        return self._client

    async def acall_llm(self, prompt: str) -> str:
        """Send ``prompt`` (after the configuration's system message) and return the text."""
        # Loaded on the first call, not when seed 002 is imported: the call options pull in the
        # retry core and asyncio (no cycle: core never imports the seeds).
        from ...core.options import NO_OPTIONS

        if not isinstance(prompt, str):
            raise InvalidRequestError(
                f"call_llm() takes the prompt as a string, not {type(prompt).__name__}; "
                "use llmrelay.Client().chat() to send a list of messages"
            )
        engine = self.client.engine
        if self._stream:
            s = engine.stream(self._target, prompt, NO_PARAMS, NO_OPTIONS)
            return str((await s.collect()).text)
        resp = await engine.complete(self._target, prompt, NO_PARAMS, NO_OPTIONS)
        return str(resp.text)

    def call_llm(self, prompt: str) -> str:
        """Send ``prompt`` (after the configuration's system message) and return the text.

        Works from sync code and from inside a running event loop (e.g. Jupyter)."""
        from ..._sync import run_sync  # asyncio: loaded on the first sync call, not on import

        return run_sync(self.acall_llm(prompt))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._target.provider}/{self._target.model}>"


_CALLERS = CALLER_CLASSES  # the one table, read by ProviderBaseConfig.caller_class()
_CLASS_NAMES = {
    "openai": "OpenAI",
    "deepseek": "DeepSeek",
    "openrouter": "OpenRouter",
    "xai": "XAI",
    "lmstudio": "LMStudio",
    "vllm": "VLLM",
}


def caller_for_provider(provider: str) -> type[ChatCaller]:
    """``GroqCaller``, ``OpenAICaller``, ...: named per provider, all on the one engine."""
    cls = _CALLERS.get(provider)
    if cls is None:
        if provider not in PROVIDERS:
            raise UnknownModelError(
                f"no caller for unknown provider {provider!r}; known providers: "
                f"{', '.join(sorted(PROVIDERS))}. A configuration class must set `provider` "
                "(or subclass a provider base config such as GroqBaseConfig)"
            )
        name = _CLASS_NAMES.get(provider, provider.capitalize())
        cls = type(f"{name}Caller", (ChatCaller,), {"provider": provider, "__module__": __name__})
        _CALLERS[provider] = cls
    return cls


GroqCaller = caller_for_provider("groq")
OpenAICaller = caller_for_provider("openai")
AnthropicCaller = caller_for_provider("anthropic")
GeminiCaller = caller_for_provider("gemini")


def uses_llmrelay_caller(config: BaseModelConfig) -> bool:
    """Whether the configuration's caller is one of ours (so its params must make a target)."""
    if isinstance(config, ProviderBaseConfig):
        return True
    try:
        caller = config.caller_class()
    except Exception:
        return False
    return isinstance(caller, type) and issubclass(caller, ChatCaller)


CALLER_FACTORY.append(caller_for_provider)
