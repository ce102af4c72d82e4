"""Isolation of the configuration package's global state between tests.

``llmrelay.seeds.seed002`` keeps process-wide state: ``CONFIG_REGISTRY``, the provider table
``PROVIDERS`` (changed by ``[providers.*]`` tables), whether the TOML file was loaded and what it
holds (``settings.file``), the file aliases applied to the alias table (``providers.aliases``)
and materialised as classes (``registry._materialised``), and the alias -> target caches.
:func:`isolated_config` gives a test the built-in aliases, no file loaded yet, and puts
everything back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def isolated_config() -> Iterator[None]:
    from llmrelay.providers import aliases
    from llmrelay.providers.table import PROVIDERS
    from llmrelay.seeds.seed002 import CONFIG_REGISTRY, registry
    from llmrelay.settings import file as toml_file

    saved_registry = dict(CONFIG_REGISTRY)
    saved_providers = dict(PROVIDERS)
    saved = (
        toml_file._state,
        dict(toml_file._settings),
        list(toml_file._files),
        list(aliases._file_models),
        dict(aliases._from_files),
        dict(aliases._targets),
        registry._materialised,
        dict(registry._cache),
    )

    def reset() -> None:
        toml_file._settings.clear()
        toml_file._files.clear()
        aliases._file_models.clear()
        aliases._from_files.clear()
        aliases._targets.clear()
        registry._cache.clear()

    reset()
    toml_file._state = "new"  # the test's first call reads the file the test sets up
    registry._materialised = 0
    try:
        yield
    finally:
        CONFIG_REGISTRY.clear()
        CONFIG_REGISTRY.update(saved_registry)
        PROVIDERS.clear()
        PROVIDERS.update(saved_providers)
        reset()
        toml_file._state = saved[0]
        toml_file._settings.update(saved[1])
        toml_file._files.extend(saved[2])
        aliases._file_models.extend(saved[3])
        aliases._from_files.update(saved[4])
        aliases._targets.update(saved[5])
        registry._materialised = saved[6]
        registry._cache.update(saved[7])
