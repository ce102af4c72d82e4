"""Seed 000: ``ModelHandler``, the alias-to-text facade over the configuration registry.

    >>> handler = ModelHandler()
    >>> handler.get_response("llama3-8b", "What is the capital of France?")  # doctest: +SKIP
    'Paris.'

For each call it does the seed's five steps: look up the configuration class of the alias in the
registry, instantiate it, ask it for its caller class, build the caller with ``get_params()``
and return ``caller.call_llm(prompt)``. Following the seed's best practices it also

- accepts an injected registry (``ModelHandler(registry={...})``; default: the global
  ``CONFIG_REGISTRY`` with the built-in aliases and those of ``llmrelay.toml``),
- caches the configuration object and the caller per alias (rebuilt when the registry maps the
  alias to another class; :meth:`ModelHandler.clear_cache` forgets them),
- validates a configuration before building its caller (a clear ``ConfigurationError``),
- logs each call on the ``llmrelay.handler`` logger (alias, provider/model, latency; never the
  prompt, the answer or a key),
- offers ``await handler.aget_response(alias, prompt)`` for async code.

The sync ``get_response`` also works inside a running event loop (e.g. Jupyter): llmrelay's
callers run the engine on a background loop then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import (
    ConfigurationError,
    InvalidRequestError,
    LLMRelayError,
    UnknownModelError,
    shown,
)
from .seed002 import CONFIG_REGISTRY, BaseModelConfig, ensure_loaded
from .seed002.callers import ChatCaller
from .seed002.registry import instantiate, validate_config

__all__ = ["ModelHandler"]

logger = logging.getLogger("llmrelay.handler")

#: What a registry maps an alias to: a configuration class (seed 002).
Registry = Mapping[str, type[BaseModelConfig]]


@dataclass(slots=True)
class _Entry:
    config_cls: type[BaseModelConfig]
    config: BaseModelConfig
    caller: Any


class ModelHandler:
    """Manages the orchestration between configuration classes and caller classes (seed 000).

    ``registry`` maps aliases to configuration classes (default: the global
    ``CONFIG_REGISTRY``). ``client`` is the ``llmrelay.Client`` llmrelay's callers call
    through (default: the shared default client).
    """

    def __init__(self, registry: Registry | None = None, *, client: Any = None) -> None:
        if registry is not None and not isinstance(registry, Mapping):
            raise ConfigurationError(
                f"registry must be a mapping of alias -> configuration class (like "
                f"CONFIG_REGISTRY), not {type(registry).__name__}"
            )
        self._registry: Registry = CONFIG_REGISTRY if registry is None else registry
        self._global = self._registry is CONFIG_REGISTRY
        self._client = client
        self._cache: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    @property
    def registry(self) -> Registry:
        """The alias -> configuration class mapping this handler reads."""
        return self._registry

    # ------------------------------------------------------------------ seed API

    def get_response(self, alias: str, prompt: str) -> str:
        """High-level method that:
          1) Looks up the config class by alias in the registry.
          2) Instantiates the config object.
          3) Retrieves the caller class from config.caller_class().
          4) Builds the caller with config.get_params().
          5) Calls the LLM and returns the text.

        Raises ``ValueError`` (``UnknownModelError``) ``No configuration found for alias
        '<alias>'.`` for an unknown alias, ``ConfigurationError`` for an invalid configuration,
        ``MissingAPIKeyError`` (before any request) when the key variable is unset, and the
        typed provider errors of ``llmrelay.errors`` when the call fails.
        """
        caller = self._caller(alias)
        _check_prompt(prompt)
        t0 = time.perf_counter()
        try:
            text = caller.call_llm(prompt)
        except Exception as exc:
            self._log_failure(alias, caller, t0, exc)
            raise
        return self._done(alias, caller, t0, text)

    async def aget_response(self, alias: str, prompt: str) -> str:
        """``get_response`` for async code. llmrelay's callers run on the calling loop; a
        user caller without ``acall_llm`` runs its sync ``call_llm`` in a worker thread."""
        import asyncio
        import inspect

        caller = self._caller(alias)
        _check_prompt(prompt)
        t0 = time.perf_counter()
        try:
            acall = getattr(caller, "acall_llm", None)
            if acall is not None and inspect.iscoroutinefunction(acall):
                text = await acall(prompt)
            else:
                text = await asyncio.to_thread(caller.call_llm, prompt)
        except Exception as exc:
            self._log_failure(alias, caller, t0, exc)
            raise
        return self._done(alias, caller, t0, text)

    def list_available_models(self) -> list[str]:
        """Returns a list of all available model aliases (registration order)."""
        if self._global:
            ensure_loaded()
        return list(self._registry.keys())

    # ------------------------------------------------------------------ extras

    def get_config(self, alias: str) -> BaseModelConfig:
        """The (cached) configuration object of ``alias``."""
        return self._entry(alias).config

    def clear_cache(self, alias: str | None = None) -> None:
        """Forget the cached configuration and caller of ``alias`` (of every alias if None),
        e.g. after changing a configuration class's attributes."""
        with self._lock:
            if alias is None:
                self._cache.clear()
            else:
                self._cache.pop(alias, None)

    def __repr__(self) -> str:
        which = "CONFIG_REGISTRY" if self._global else f"{len(self._registry)} aliases"
        return f"<ModelHandler registry={which} cached={len(self._cache)}>"

    # ------------------------------------------------------------------ internals

    def _caller(self, alias: str) -> Any:
        return self._entry(alias).caller

    def _entry(self, alias: str) -> _Entry:
        # 1) look the configuration class up
        if self._global:
            ensure_loaded()
        config_cls = self._registry.get(alias) if isinstance(alias, str) else None
        if not config_cls:
            if isinstance(alias, str):
                self._cache.pop(alias, None)
            raise _unknown_alias(alias, self._registry)
        hit = self._cache.get(alias)
        if hit is not None and hit.config_cls is config_cls:
            return hit
        with self._lock:
            hit = self._cache.get(alias)
            if hit is not None and hit.config_cls is config_cls:
                return hit
            entry = self._build(alias, config_cls)
            self._cache[alias] = entry
            return entry

    def _build(self, alias: str, config_cls: type[BaseModelConfig]) -> _Entry:
        # 2) instantiate the configuration
        config = instantiate(config_cls, alias)
        # 3) its caller class
        caller_cls = config.caller_class()
        if not callable(caller_cls):
            raise ConfigurationError(
                f"{type(config).__name__}.caller_class() (alias {alias!r}) returned "
                f"{caller_cls!r}; it must return a caller class whose instances have "
                "call_llm(prompt) -> str"
            )
        # 4) validate, then build the caller with get_params()
        validate_config(config, alias)
        params = config.get_params()
        if isinstance(caller_cls, type) and issubclass(caller_cls, ChatCaller):
            caller = caller_cls(params, client=self._client, alias=alias)
        else:
            try:
                caller = caller_cls(params)
            except LLMRelayError:
                raise
            except Exception as exc:
                raise ConfigurationError(
                    f"building {getattr(caller_cls, '__name__', caller_cls)!r} for alias "
                    f"{alias!r} with {type(config).__name__}.get_params() failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        if not callable(getattr(caller, "call_llm", None)):
            raise ConfigurationError(
                f"the caller {type(caller).__name__} of alias {alias!r} has no "
                "call_llm(prompt) method"
            )
        logger.debug(
            "built caller for alias %r: %s",
            alias,
            _describe(caller),
            extra={"alias": alias, "caller": type(caller).__name__},
        )
        return _Entry(config_cls, config, caller)

    @staticmethod
    def _done(alias: str, caller: Any, t0: float, text: Any) -> str:
        # 5) return the text
        latency = time.perf_counter() - t0
        if not isinstance(text, str):
            raise ConfigurationError(
                f"the caller {type(caller).__name__} of alias {alias!r} returned "
                f"{type(text).__name__}; call_llm(prompt) must return a str"
            )
        logger.info(
            "%s (%s) answered in %.1f ms",
            alias,
            _describe(caller),
            latency * 1000,
            extra={"alias": alias, "latency_s": latency, "outcome": "success"},
        )
        return text

    @staticmethod
    def _log_failure(alias: str, caller: Any, t0: float, exc: Exception) -> None:
        latency = time.perf_counter() - t0
        # llmrelay's errors never contain keys; for other exceptions only the type is logged,
        # since their text is outside llmrelay's control.
        reason = (
            f"{type(exc).__name__}: {exc.message}"
            if isinstance(exc, LLMRelayError)
            else (type(exc).__name__)
        )
        logger.warning(
            "%s (%s) failed after %.1f ms: %s",
            alias,
            _describe(caller),
            latency * 1000,
            reason,
            extra={
                "alias": alias,
                "latency_s": latency,
                "outcome": "error",
                "error": type(exc).__name__,
            },
        )


def _describe(caller: Any) -> str:
    if isinstance(caller, ChatCaller):
        return f"{caller.provider_name}/{caller.model}"
    return type(caller).__name__


def _check_prompt(prompt: Any) -> None:
    if not isinstance(prompt, str):
        raise InvalidRequestError(
            f"prompt must be a string, not {type(prompt).__name__}; use llmrelay.Client().chat() "
            "to send a list of messages"
        )


def _unknown_alias(alias: Any, registry: Registry) -> UnknownModelError:
    """The seed's exact ``ValueError`` message; hints go in a note (shown in tracebacks)."""
    import difflib

    try:  # the seed formats it with str(); an object whose str/repr raises is named by type
        shown_alias = str(alias)
    except Exception:
        shown_alias = shown(alias)
    err = UnknownModelError(f"No configuration found for alias '{shown_alias}'.")
    known = list(registry.keys())
    close = difflib.get_close_matches(shown_alias, known, n=3)
    if close:
        err.add_note(f"Did you mean {', '.join(repr(c) for c in close)}?")
    err.add_note(
        f"{len(known)} aliases are registered (ModelHandler().list_available_models() lists "
        "them); register one with @register_config or in llmrelay.toml [models.<alias>]"
    )
    return err
