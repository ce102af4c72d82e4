"""Embeddings: the request the engine carries and the typed result callers get.

Vectors are float32, as every provider computes them: they are kept in one flat
``array('f')`` (4 bytes a number), exposed as ``Embeddings.vectors`` (lists of floats, built on
first use) and as a buffer that numpy reads without copying (``Embeddings.numpy()``).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .embed_request import EmbedRequest as EmbedRequest
from .response import Usage

__all__ = ["EmbedBatch", "EmbedRequest", "Embeddings", "float32_from_le_bytes"]


def float32_from_le_bytes(data: bytes) -> array[float]:
    """Little-endian float32 bytes (OpenAI's base64 encoding) as an ``array('f')``."""
    a = array("f")
    a.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover - no big-endian CI
        a.byteswap()
    return a


@dataclass(slots=True)
class EmbedBatch:
    """What one provider answer holds (carried in ``Response.object`` through the attempts):
    ``count`` vectors of ``dimensions`` floats, flat, in input order."""

    data: array[float]
    count: int
    dimensions: int


@dataclass(slots=True, eq=False)
class Embeddings:
    """The answer to one embeddings call: one vector per input, in input order.

    ``data`` is the flat float32 array (``len(data) == len(self) * dimensions``);
    ``vectors`` the same numbers as lists of floats; ``numpy()`` a ``(n, dimensions)`` float32
    array sharing ``data``'s memory (numpy is optional). ``usage.input_tokens`` counts what the
    provider billed (cached inputs are free); ``cost`` is a ``llmrelay.Cost`` when accounting
    is on."""

    data: array[float]
    dimensions: int
    model: str = ""
    provider: str = ""
    alias: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: Any = None
    latency_s: float = 0.0
    #: How many inputs were served from the response cache.
    cache_hits: int = 0
    trace: list[Any] = field(default_factory=list)
    _vectors: list[list[float]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        d = self.dimensions
        return len(self.data) // d if d else 0

    def __getitem__(self, i: int) -> list[float]:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("embedding index out of range")
        d = self.dimensions
        return self.data[i * d : (i + 1) * d].tolist()

    def __iter__(self) -> Iterator[list[float]]:
        return iter(self.vectors)

    @property
    def vectors(self) -> list[list[float]]:
        """One list of floats per input, in input order (built once, on first use)."""
        if self._vectors is None:
            d, flat = self.dimensions, self.data.tolist()
            self._vectors = [flat[i : i + d] for i in range(0, len(flat), d)] if d else []
        return self._vectors

    @property
    def buffer(self) -> memoryview[float]:
        """The float32 numbers as a ``(n, dimensions)`` memoryview (no copy)."""
        return memoryview(self.data).cast("B").cast("f", (len(self), self.dimensions))

    def numpy(self) -> Any:
        """A ``(n, dimensions)`` float32 numpy array over ``data`` (zero copy; needs numpy)."""
        import numpy as np  # type: ignore[import-not-found, unused-ignore]

        return np.frombuffer(self.data, dtype=np.float32).reshape(len(self), self.dimensions)

    def __repr__(self) -> str:
        return (
            f"Embeddings(n={len(self)}, dimensions={self.dimensions}, model={self.model!r}, "
            f"provider={self.provider!r}, usage={self.usage!r})"
        )
