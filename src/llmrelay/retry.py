"""A documented import path kept working: the code is in :mod:`llmrelay.core.retry`."""

from .core.retry import *  # noqa: F403
from .core.retry import __all__ as __all__
