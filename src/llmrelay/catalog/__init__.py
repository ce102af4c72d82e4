"""The model catalog (seed 003): what each model can do, what it costs, when it retires.

* :mod:`.models` -- ``LLMCapabilities``, ``LLMProfile``, ``ModelFamily``, ``MediaType``;
* :mod:`.registry` -- ``LLMRegistry`` (bundled data + your catalog file, queries, persistence);
* :mod:`.providers` -- ``ProviderRegistry`` / ``Provider`` (base URLs, rate limits);
* :mod:`.detect` -- ``ModelCapabilityDetectorFactory`` (ask providers which models they serve);
* :mod:`.layer` -- ``Catalog``, the engine layer that checks requests and prices usage.

Importing this package is cheap; the bundled data is read on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LLMCapabilities": "profiles",
    "LLMProfile": "profiles",
    "ModelFamily": "profiles",
    "MediaType": "profiles",
    "Pricing": "profiles",
    "CAPABILITY_NAMES": "profiles",
    "LLMRegistry": "model_registry",
    "default_registry": "model_registry",
    "set_default_registry": "model_registry",
    "Provider": "provider_registry",
    "ProviderRegistry": "provider_registry",
    "ModelCapabilityDetectorFactory": "detect",
    "Catalog": "layer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmrelay.catalog' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from .detect import ModelCapabilityDetectorFactory as ModelCapabilityDetectorFactory
    from .layer import Catalog as Catalog
    from .model_registry import LLMRegistry as LLMRegistry
    from .model_registry import default_registry as default_registry
    from .model_registry import set_default_registry as set_default_registry
    from .profiles import CAPABILITY_NAMES as CAPABILITY_NAMES
    from .profiles import LLMCapabilities as LLMCapabilities
    from .profiles import LLMProfile as LLMProfile
    from .profiles import MediaType as MediaType
    from .profiles import ModelFamily as ModelFamily
    from .profiles import Pricing as Pricing
    from .provider_registry import Provider as Provider
    from .provider_registry import ProviderRegistry as ProviderRegistry
