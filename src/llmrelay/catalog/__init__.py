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
    "LLMCapabilities": "models",
    "LLMProfile": "models",
    "ModelFamily": "models",
    "MediaType": "models",
    "Pricing": "models",
    "CAPABILITY_NAMES": "models",
    "LLMRegistry": "registry",
    "default_registry": "registry",
    "set_default_registry": "registry",
    "Provider": "providers",
    "ProviderRegistry": "providers",
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
    from .models import CAPABILITY_NAMES as CAPABILITY_NAMES
    from .models import LLMCapabilities as LLMCapabilities
    from .models import LLMProfile as LLMProfile
    from .models import MediaType as MediaType
    from .models import ModelFamily as ModelFamily
    from .models import Pricing as Pricing
    from .providers import Provider as Provider
    from .providers import ProviderRegistry as ProviderRegistry
    from .registry import LLMRegistry as LLMRegistry
    from .registry import default_registry as default_registry
    from .registry import set_default_registry as set_default_registry
