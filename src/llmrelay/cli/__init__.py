"""The ``llmrelay`` command-line interface (``llmrelay chat | models | demo``).

Nothing here is imported by ``import llmrelay``; ``main`` is loaded on first use so that
``python -m llmrelay.cli.main`` runs cleanly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    if name == "main":
        from .main import main

        return main
    raise AttributeError(f"module 'llmrelay.cli' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from .main import main
