"""Embedding models: dimensions, input limits and prices (``llmrelay/data/embeddings.json``).

Read on first use, never at import. Chat models live in ``catalog.json`` (``model_registry``);
this table is separate so the two can be edited independently. A model that is in neither
table (a local Ollama, vLLM or LM Studio model, an Azure deployment name) can still be asked
for embeddings: its dimensions, limits and price are then unknown and not checked.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = [
    "EmbeddingModel",
    "embedding_model",
    "embedding_models",
    "provider_of",
    "register_embedding_model",
]


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    """One embedding model as the table knows it."""

    provider: str
    model: str
    #: The vector length when no ``dimensions`` is asked for.
    dimensions: int
    #: The smallest ``dimensions`` the API accepts (None: the size cannot be reduced).
    min_dimensions: int | None
    max_input_tokens: int
    #: The most inputs one request may carry (the call splits larger ones into batches).
    max_inputs: int
    #: The cap on the tokens of one request summed over its inputs (None: none documented).
    max_request_tokens: int | None
    #: The public tokenizer (``cl100k_base``) when token counts can be exact.
    tokenizer: str | None
    #: USD per 1M input tokens.
    input_per_1m: float | None
    source: str
    checked: str
    #: The only sizes the API takes, when it takes a fixed set (Voyage 256/512/1024/2048,
    #: Cohere embed-v4.0 256/512/1024/1536; the largest may exceed the default). None: any
    #: size from ``min_dimensions`` to ``dimensions``.
    dimension_choices: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}"

    def accepts(self, dimensions: int) -> bool:
        """Can the API return vectors of ``dimensions``?"""
        if dimensions == self.dimensions:
            return True
        if self.dimension_choices is not None:
            return dimensions in self.dimension_choices
        return (
            self.min_dimensions is not None and self.min_dimensions <= dimensions < self.dimensions
        )


_LOCK = threading.Lock()
_TABLE: dict[tuple[str, str], EmbeddingModel] | None = None


def _row(d: dict[str, object]) -> EmbeddingModel:
    def num(name: str) -> int | None:
        v = d.get(name)
        return int(v) if isinstance(v, int) else None

    price = d.get("input_per_1m")
    return EmbeddingModel(
        provider=str(d["provider"]),
        model=str(d["model"]),
        dimensions=int(d["dimensions"]),  # type: ignore[call-overload]
        min_dimensions=num("min_dimensions"),
        max_input_tokens=int(d["max_input_tokens"]),  # type: ignore[call-overload]
        max_inputs=int(d["max_inputs"]),  # type: ignore[call-overload]
        max_request_tokens=num("max_request_tokens"),
        tokenizer=str(d["tokenizer"]) if d.get("tokenizer") else None,
        input_per_1m=float(price) if isinstance(price, int | float) else None,
        source=str(d.get("source", "")),
        checked=str(d.get("checked", "")),
        dimension_choices=_choices(d.get("dimension_choices")),
    )


def _choices(v: object) -> tuple[int, ...] | None:
    if v is None:
        return None
    if not isinstance(v, list) or not v or not all(type(x) is int and x > 0 for x in v):
        raise ValueError("dimension_choices must be a list of positive whole numbers")
    return tuple(v)


def _load() -> dict[tuple[str, str], EmbeddingModel]:
    global _TABLE
    with _LOCK:
        if _TABLE is None:
            from importlib import resources

            raw = resources.files("llmrelay").joinpath("data", "embeddings.json").read_text("utf-8")
            try:
                rows = [_row(d) for d in json.loads(raw)["models"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigurationError(
                    f"llmrelay/data/embeddings.json is malformed: {exc}"
                ) from None
            _TABLE = {(r.provider, r.model): r for r in rows}
        return _TABLE


def embedding_model(provider: str, model: str) -> EmbeddingModel | None:
    """The row of ``provider/model`` (a ``models/`` prefix on Gemini names is ignored)."""
    table = _TABLE if _TABLE is not None else _load()
    row = table.get((provider, model))
    if row is None and model.startswith("models/"):
        row = table.get((provider, model[7:]))
    return row


def provider_of(model: str) -> str | None:
    """The provider of a bare embedding model name (``text-embedding-3-small`` -> ``openai``):
    the provider of the table's one row of that name or, when several providers list it, the
    one of them reachable without configuring a base URL (Azure's rows need the resource's
    URL). None when the table has no such row or the name stays ambiguous."""
    from ..providers.table import PROVIDERS

    found = [p for (p, m) in _load() if m == model]
    if len(found) > 1:
        found = [p for p in found if p in PROVIDERS and PROVIDERS[p].base_url is not None]
    return found[0] if len(found) == 1 else None


def embedding_models() -> list[EmbeddingModel]:
    """Every known embedding model."""
    return list(_load().values())


def register_embedding_model(row: EmbeddingModel) -> None:
    """Add or replace a row (a self-hosted model whose dimensions and limits you know)."""
    _load()[(row.provider, row.model)] = row
