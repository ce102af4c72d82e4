"""A documented import path kept working: the code is in :mod:`llmrelay.catalog.tokens`."""

from .catalog.tokens import *  # noqa: F403
from .catalog.tokens import __all__ as __all__
