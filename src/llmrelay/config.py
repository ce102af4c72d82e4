"""A documented import path kept working: the code is in :mod:`llmrelay.seeds.seed002`."""

from .seeds.seed002 import *  # noqa: F403
from .seeds.seed002 import __all__ as __all__
