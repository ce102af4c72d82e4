"""Embeddings calls: their options and the checks made before anything is sent (inputs,
model kinds, dimensions, token limits), and how inputs are cut into batches."""

from __future__ import annotations

import importlib
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..catalog.embeddings import EmbeddingModel, embedding_model
from ..errors import InvalidRequestError, LLMRelayError, UnsupportedCapabilityError, shown
from ..providers.resolve import Target
from ..providers.table import get_provider
from ..types import _kind
from .options import CallOptions

__all__ = [
    "DEFAULT_CONCURRENCY",
    "EMBED_OPTIONS",
    "INPUT_TYPES",
    "Candidate",
    "batches",
    "candidate",
    "check_dimensions",
    "check_inputs",
    "check_tokens",
    "embed_adapter",
    "estimate_tokens_of",
    "nonfinite",
    "split_embed_kwargs",
]

#: Call options an embeddings call takes (the others are about chat).
_CALL_OPTIONS = frozenset(
    {
        "api_key",
        "base_url",
        "headers",
        "timeout",
        "deadline",
        "retries",
        "retry",
        "fallbacks",
        "tenant",
        "tags",
        "use_cache",
        "cache_ttl",
        "no_store",
        "wait_for_rate_limit",
        "trace_id",
    }
)
#: Embeddings options: ``input_type`` (``"query"`` or ``"document"``, mapped per provider),
#: Gemini's ``task_type``, OpenAI's ``user``, provider fields in ``extra``, and how many batches
#: may be in flight at once.
EMBED_OPTIONS = frozenset({"input_type", "task_type", "user", "extra", "concurrency"})
#: The values ``input_type`` takes: what the texts are for, in retrieval.
INPUT_TYPES = ("query", "document")
DEFAULT_CONCURRENCY = 4

#: Wire adapter of chat -> its embeddings adapter (module, class).
_ADAPTERS: dict[str, tuple[str, str]] = {
    "openai_chat": ("openai_embeddings", "OpenAIEmbeddingsAdapter"),
    "gemini": ("gemini_embeddings", "GeminiEmbeddingsAdapter"),
    "voyage": ("voyage_embeddings", "VoyageEmbeddingsAdapter"),
    "cohere": ("cohere_embeddings", "CohereEmbeddingsAdapter"),
}
_ADAPTER_CACHE: dict[str, Any] = {}


def embed_adapter(wire: str) -> Any:
    """The embeddings adapter for a provider speaking ``wire`` (None when it has none)."""
    a = _ADAPTER_CACHE.get(wire)
    if a is None:
        spec = _ADAPTERS.get(wire)
        if spec is None:
            return None
        mod = importlib.import_module(f"llmrelay.providers.adapters.{spec[0]}")
        a = _ADAPTER_CACHE[wire] = getattr(mod, spec[1])()
    return a


def split_embed_kwargs(kwargs: Mapping[str, Any]) -> tuple[CallOptions, dict[str, Any]]:
    """Separate call options from embeddings options; reject every other name."""
    opts: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for k, v in kwargs.items():
        if k in _CALL_OPTIONS:
            opts[k] = v
        elif k in EMBED_OPTIONS:
            extra[k] = v
        else:
            raise InvalidRequestError(
                f"embed() takes no argument {k!r}. Embeddings options: "
                f"{', '.join(sorted(EMBED_OPTIONS))}; call options: "
                f"{', '.join(sorted(_CALL_OPTIONS))}; provider fields go in extra={{...}}"
            )
    for name in ("user", "task_type"):
        v = extra.get(name)
        if v is not None and type(v) is not str:
            raise InvalidRequestError(f"{name} must be a string (or None), not {_kind(v)}")
    fields = extra.get("extra")
    if fields is not None:
        check_extra(fields)
    it = extra.get("input_type")
    if it is not None:
        if type(it) is not str or it not in INPUT_TYPES:
            raise InvalidRequestError(
                f"input_type must be 'query' or 'document' (or None), not {shown(it)}; a "
                "provider's other kinds go in extra={...} (Cohere's 'classification', "
                "'clustering') or task_type= (Gemini)"
            )
        if extra.get("task_type") is not None:
            raise InvalidRequestError(
                "pass input_type= or task_type= (Gemini's own name for it), not both"
            )
    return CallOptions(**opts), extra


# --------------------------------------------------------------------------- checks


def check_extra(fields: object) -> None:
    """``extra=`` is a dict of string keys to JSON values: checked here, not when the first
    batch is built (by then the call holds a rate-limit slot and a budget reservation)."""
    if not isinstance(fields, Mapping) or any(type(k) is not str for k in fields):
        raise InvalidRequestError(
            f"extra must be a dict of provider field names to JSON values, not {_kind(fields)}"
        )
    for k, v in fields.items():
        try:
            orjson.dumps(v)
        except TypeError:  # orjson.JSONEncodeError: not JSON, or lone surrogates
            raise InvalidRequestError(
                f"extra[{shown(k)}] is not a JSON value ({_kind(v)}, or text with lone "
                "surrogates): provider fields are sent as JSON"
            ) from None


def check_inputs(inputs: object) -> list[str]:
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, Sequence) or isinstance(inputs, bytes | bytearray):
        raise InvalidRequestError(
            f"inputs must be a list of strings (or one string), not {_kind(inputs)}"
        )
    # Always a copy: the texts checked are the texts sent, cached and answered, whatever the
    # caller (another task, a list subclass whose iteration differs from its items) does with
    # its own list while the call is in flight.
    out = list(inputs)
    if not out:
        raise InvalidRequestError("inputs is empty: give at least one text to embed")
    try:
        joined = "".join(out)  # at C speed: refuses anything but str (subclasses included)
    except TypeError:
        for i, s in enumerate(out):
            if not isinstance(s, str):
                raise InvalidRequestError(
                    f"inputs[{i}] is of type {type(s).__name__}; every input must be a string "
                    "(embed text, not token ids or other objects)"
                ) from None
        raise  # pragma: no cover - join refuses only non-str items
    if not joined.isascii():  # O(1) for ASCII text; else one encode, at C speed
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            i = next(i for i, s in enumerate(out) if not _utf8(s))
            raise InvalidRequestError(
                f"inputs[{i}] holds lone surrogates (not valid Unicode): it cannot be sent; "
                "decode the text with errors='replace' or drop it"
            ) from None
    if set(map(type, out)) != {str}:
        out = _plain(out)
    if "" in out:
        raise InvalidRequestError(
            f"inputs[{out.index('')}] is an empty string; providers refuse empty inputs: drop "
            "it or embed a placeholder"
        )
    return out


def _utf8(s: str) -> bool:
    try:
        str.encode(s, "utf-8")  # str's own: a subclass's encode() must not decide
    except UnicodeEncodeError:
        return False
    return True


def _plain(texts: list[str]) -> list[str]:
    """The texts as plain ``str``: a subclass's own ``__eq__``, ``__hash__`` or ``__len__``
    must not decide which inputs count as one (the call sends each distinct text once) or
    how long one is."""
    return [s if type(s) is str else str.__str__(s) for s in texts]


def check_dimensions(dimensions: object) -> int | None:
    if dimensions is None:
        return None
    if type(dimensions) is not int or dimensions <= 0:
        raise InvalidRequestError(
            f"dimensions must be a positive whole number, not {shown(dimensions)}"
        )
    return dimensions


@dataclass(slots=True)
class Candidate:
    """What the checks found out about one candidate model."""

    adapter: Any
    row: EmbeddingModel | None
    #: The vector length this candidate will answer with (None: unknown).
    dimensions: int | None


def candidate(t: Target, dimensions: int | None) -> Candidate:
    """Can ``t`` embed, with ``dimensions``? Raises a typed error naming the problem."""
    label = f"{t.provider}/{t.model}"
    adapter = embed_adapter(get_provider(t.provider).wire)
    if adapter is None:
        raise UnsupportedCapabilityError(
            f"{label}: provider {t.provider!r} serves no embeddings API llmrelay speaks "
            "(OpenAI-compatible /embeddings, Gemini embedContent, Voyage, Cohere); use an "
            "embedding model of openai, azure, gemini, voyage, cohere, mistral, together, "
            "fireworks, ollama, vllm or lmstudio",
            provider=t.provider,
            model=t.model,
            capability="embeddings",
        )
    row = embedding_model(t.provider, t.model)
    if row is None and _is_chat_model(t):
        raise UnsupportedCapabilityError(
            f"{label} is a chat model, not an embedding model; embed with an embedding model "
            "such as openai/text-embedding-3-small or gemini/gemini-embedding-001",
            provider=t.provider,
            model=t.model,
            capability="embeddings",
        )
    if row is not None and dimensions is not None and not row.accepts(dimensions):
        if row.dimension_choices:
            allowed = "one of " + ", ".join(map(str, row.dimension_choices))
        elif row.min_dimensions is None:
            allowed = f"only its full size, {row.dimensions}"
        else:
            allowed = f"{row.min_dimensions} to {row.dimensions}"
        raise InvalidRequestError(
            f"{label} cannot return {dimensions}-dimension vectors: it takes {allowed}; pass "
            "another dimensions= or leave it out",
            provider=t.provider,
            model=t.model,
        )
    dims = dimensions if dimensions is not None else (row.dimensions if row else None)
    return Candidate(adapter, row, dims)


def _is_chat_model(t: Target) -> bool:
    from ..catalog.model_registry import default_registry

    try:
        return default_registry().lookup(t.provider, t.model) is not None
    except LLMRelayError:
        return False


def check_tokens(inputs: list[str], row: EmbeddingModel) -> None:
    """Every input within the model's token limit (counted only past a length that cannot
    exceed it: a token is at least one UTF-8 byte, a character at most four)."""
    limit = row.max_input_tokens
    safe = limit // 4
    enc = row.tokenizer
    if max(map(len, inputs)) <= safe:
        return
    for i, s in enumerate(inputs):
        if len(s) <= safe:
            continue
        from ..catalog.tokens import count_tokens, estimate_tokens

        n = count_tokens(s, encoding=enc) if enc else estimate_tokens(s)
        if n > limit:
            raise InvalidRequestError(
                f"inputs[{i}] has {n} tokens; {row.label} embeds at most {limit} tokens per "
                "input: split the text into smaller chunks",
                provider=row.provider,
                model=row.model,
            )


def estimate_tokens_of(inputs: list[str]) -> int:
    """The rate limiter's and budget's estimate of some inputs' tokens: each input as a chat
    prompt's text is estimated (the larger of its UTF-8 bytes / 4 and its words and
    punctuation marks), plus one per input. Not characters / 4: punctuation, digits, CJK and
    emoji take a token for a character or less, and concurrent calls reserved on too low an
    estimate would together pass a budget or a tokens-per-minute limit."""
    from ..catalog.tokens import estimate_tokens

    return sum(map(estimate_tokens, inputs)) + len(inputs)


def batches(
    idx: list[int], inputs: list[str], max_inputs: int, max_tokens: int | None
) -> list[list[int]]:
    """``idx`` cut into batches of at most ``max_inputs`` inputs and, when the model caps a
    request's tokens, at most that many (estimated high: 3 characters of ASCII a token; other
    text by its UTF-8 bytes, see :func:`_weight`)."""
    budget = max_tokens * 3 if max_tokens is not None else 0
    if max_tokens is None:
        return [idx[i : i + max_inputs] for i in range(0, len(idx), max_inputs)]
    weigh = len if all(map(str.isascii, inputs)) else _weight
    if max(map(weigh, inputs)) * max_inputs + 3 * max_inputs <= budget:
        # No batch of max_inputs inputs can reach the token cap: cut by count alone.
        return [idx[i : i + max_inputs] for i in range(0, len(idx), max_inputs)]
    out: list[list[int]] = []
    cur: list[int] = []
    used = 0
    for i in idx:
        n = weigh(inputs[i]) + 3
        if cur and (len(cur) >= max_inputs or used + n > budget):
            out.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += n
    if cur:
        out.append(cur)
    return out


def _weight(s: str) -> int:
    """A text's size in thirds of a token, estimated high: an ASCII character a third, a
    character of ``c`` UTF-8 bytes ``3c - 2`` (a CJK character 7, as rare ones take 2 to 3
    tokens; an emoji 10). Characters are not compared to a budget of characters: 500 CJK
    characters are 500 to 1,200 tokens, not 167."""
    return 3 * len(s.encode("utf-8", "surrogatepass")) - 2 * len(s)


def nonfinite(data: array[float]) -> int | None:
    """The index of the first NaN or infinity in ``data`` (None: every number is finite).

    A float32 is not finite when its 8 exponent bits are all ones, so its most significant
    byte is 0x7F or 0xFF: those bytes are picked out at C speed first (a copy and a stepped
    slice of bytes: about 1 ms for 2.5 million numbers), and the numbers looked at one by one
    only when one is there (a finite number of magnitude 2**127 or more)."""
    import math
    import sys

    top = data.tobytes()[(3 if sys.byteorder == "little" else 0) :: 4]
    if b"\x7f" not in top and b"\xff" not in top:
        return None
    return next((i for i, x in enumerate(data) if not math.isfinite(x)), None)
