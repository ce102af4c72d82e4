"""Isolation of the configuration package's global state between tests.

``llmrelay.seeds.seed002`` keeps process-wide state: ``CONFIG_REGISTRY``, the provider table
``PROVIDERS`` (changed by ``[providers.*]`` tables), whether the TOML file was loaded
(``config._state``), the file's other tables (``toml_file._settings``) and the alias -> target
cache (``registry._cache``). :func:`isolated_config` gives a test the built-in aliases, no file
loaded yet, and puts everything back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def isolated_config() -> Iterator[None]:
    import llmrelay.seeds.seed002.builtin  # noqa: F401  (the built-in aliases are registered once)
    from llmrelay.providers.table import PROVIDERS
    from llmrelay.seeds import seed002 as config
    from llmrelay.seeds.seed002 import CONFIG_REGISTRY, registry
    from llmrelay.settings import file as toml_file

    saved_registry = dict(CONFIG_REGISTRY)
    saved_providers = dict(PROVIDERS)
    saved_state = config._state
    saved_settings = dict(toml_file._settings)
    saved_cache = dict(registry._cache)
    config._state = "new"  # the test's first call reads the file the test sets up
    toml_file._settings.clear()
    registry._cache.clear()
    try:
        yield
    finally:
        CONFIG_REGISTRY.clear()
        CONFIG_REGISTRY.update(saved_registry)
        PROVIDERS.clear()
        PROVIDERS.update(saved_providers)
        config._state = saved_state
        toml_file._settings.clear()
        toml_file._settings.update(saved_settings)
        registry._cache.clear()
        registry._cache.update(saved_cache)
