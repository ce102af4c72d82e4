"""Terminal output for the CLI: plain text everywhere, ``rich`` colour and tables on a TTY.

``rich`` is the optional ``llmrelay[cli]`` extra. It is used only when it is importable *and*
the stream is a terminal, so piped output stays plain, stable and greppable (and ``NO_COLOR``
is honoured by rich itself). Every string that may contain provider text goes through
:func:`scrub`, which blanks the value of any API-key variable set in the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["Console", "key_values", "scrub"]

#: Shorter values than this are not treated as secrets (they would blank ordinary words).
_MIN_SECRET_LEN = 8


def key_values() -> list[str]:
    """The values of every API-key variable of every provider that is set right now."""
    from ..providers.table import PROVIDERS

    names: set[str] = set()
    for spec in PROVIDERS.values():
        if spec.key_env:
            names.add(spec.key_env)
        names.update(spec.alt_key_envs)
    values = {os.environ.get(n, "") for n in names}
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True)


def scrub(text: str, secrets: Sequence[str] | None = None) -> str:
    """``text`` with every known key value replaced by ``****`` (defence in depth)."""
    for value in key_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, "****")
    return text


def _rich_console(file: TextIO) -> Any:
    isatty = getattr(file, "isatty", None)
    if isatty is None or not isatty():
        return None
    try:
        from rich.console import Console as RichConsole
    except ImportError:
        return None
    return RichConsole(file=file, highlight=False, soft_wrap=True)


class Console:
    """Writes lines (optionally styled) and tables to one stream."""

    def __init__(self, file: TextIO | None = None, *, plain: bool = False) -> None:
        self.file: TextIO = file if file is not None else sys.stdout
        self._rich: Any = None if plain else _rich_console(self.file)

    @property
    def is_rich(self) -> bool:
        return self._rich is not None

    def line(self, text: str = "", style: str | None = None) -> None:
        """One line of text; ``style`` (a rich style such as ``"bold"``) applies on a TTY only."""
        if self._rich is not None:
            self._rich.print(text, style=style, markup=False, highlight=False)
        else:
            self.file.write(text + "\n")

    def write(self, text: str) -> None:
        """Raw text, flushed at once (stream deltas)."""
        self.file.write(text)
        self.file.flush()

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A table: a rich table on a TTY, otherwise aligned columns with an upper-case header."""
        if self._rich is not None:
            from rich.table import Table

            t = Table(*headers, box=None, header_style="bold", pad_edge=False)
            for row in rows:
                t.add_row(*row)
            self._rich.print(t)
            return
        heads = [h.upper().replace(" ", "_") for h in headers]
        widths = [len(h) for h in heads]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        for cells in (heads, *rows):
            padded = [c.ljust(w) for c, w in zip(cells, widths, strict=True)]
            self.file.write("  ".join(padded).rstrip() + "\n")
