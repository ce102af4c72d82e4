"""The fake upstream's embeddings answers, in the providers' real shapes.

OpenAI ``POST /v1/embeddings``: ``{"object": "list", "data": [{"object": "embedding", "index",
"embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``, the vectors as float
lists or, with ``encoding_format: "base64"``, as base64 of little-endian float32 (what the
official SDKs ask for). Gemini ``:embedContent`` (``{"embedding": {"values"}}``) and
``:batchEmbedContents`` (``{"embeddings": [{"values"}]}``, at most 100 requests, as the API).

Voyage AI (served under ``/voyage/v1/embeddings``, so it does not collide with OpenAI's path):
``{"object": "list", "data": [{"object", "embedding", "index"}], "model", "usage":
{"total_tokens"}}``, at most 1,000 inputs, ``output_dimension`` one of 256/512/1024/2048,
``encoding_format: "base64"`` as little-endian float32, ``{"detail"}`` errors. Cohere
``POST /v2/embed``: ``{"id", "embeddings": {"float": [...]}, "texts", "meta": {"api_version",
"billed_units": {"input_tokens"}}, "response_type": "embeddings_by_type"}``, at most 96 texts,
``input_type`` required, ``{"id", "message"}`` errors.

Vectors are deterministic: a unit vector drawn from the SHA-256 of the text, so the same text
always gets the same vector and different texts get different ones. Default sizes follow the
models (1536 for ``text-embedding-3-small``, 3072 for ``-large`` and ``gemini-embedding-001``,
else 768); ``dimensions`` / ``outputDimensionality`` shorten them.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import sys
from array import array
from typing import Any

__all__ = ["answer", "is_embeddings_path", "is_voyage_path", "vector"]

_SIZES = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "gemini-embedding-001": 3072,
    "mistral-embed": 1024,
    "embed-v4.0": 1536,
    "embed-english-v3.0": 1024,
    "embed-multilingual-v3.0": 1024,
    "embed-english-light-v3.0": 384,
    "embed-multilingual-light-v3.0": 384,
}
_VOYAGE_DIMS = (256, 512, 1024, 2048)
_COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")


def is_embeddings_path(path: str) -> bool:
    return path.endswith(("/embeddings", ":embedContent", ":batchEmbedContents", "/v2/embed"))


def is_voyage_path(path: str) -> bool:
    return path.startswith("/voyage/")


def vector(text: str, dims: int) -> array[float]:
    """The fake's vector for ``text``: ``dims`` float32 numbers of unit length."""
    raw = hashlib.shake_256(text.encode("utf-8", "surrogatepass")).digest(2 * dims)
    ints = struct.unpack(f"<{dims}h", raw)
    norm = math.sqrt(sum(i * i for i in ints)) or 1.0
    return array("f", [i / norm for i in ints])


def _size(model: str, asked: Any) -> int:
    if isinstance(asked, int) and asked > 0:
        return asked
    return _SIZES.get(model.removeprefix("models/"), 768)


def _tokens(texts: list[str]) -> int:
    return sum(max(1, len(t.split())) for t in texts)


def _le_bytes(v: array[float]) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover
        v = array("f", v)
        v.byteswap()
    return v.tobytes()


def answer(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for an embeddings request."""
    if is_voyage_path(path):
        return _voyage(body)
    if path.endswith("/v2/embed"):
        return _cohere(body)
    if path.endswith("/embeddings"):
        return _openai(body)
    model = path.rsplit("/", 1)[-1].split(":", 1)[0]
    if path.endswith(":embedContent"):
        text = _gemini_text(body)
        if text is None:
            return _gemini_error("content.parts[].text is required")
        dims = _size(model, body.get("outputDimensionality"))
        return 200, {"embedding": {"values": vector(text, dims).tolist()}}
    reqs = body.get("requests")
    if not isinstance(reqs, list) or not reqs:
        return _gemini_error("* BatchEmbedContentsRequest.requests: requests is required\n")
    if len(reqs) > 100:
        return _gemini_error(
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n"
        )
    out = []
    texts = []
    for r in reqs:
        text = _gemini_text(r) if isinstance(r, dict) else None
        if text is None:
            return _gemini_error("content.parts[].text is required")
        texts.append(text)
        out.append({"values": vector(text, _size(model, r.get("outputDimensionality"))).tolist()})
    n = _tokens(texts)
    meta = {"promptTokenCount": n, "promptTokenDetails": [{"modality": "TEXT", "tokenCount": n}]}
    return 200, {"embeddings": out, "usageMetadata": meta}


def _gemini_text(req: dict[str, Any]) -> str | None:
    content = req.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        return None
    texts = [p.get("text") for p in parts if isinstance(p, dict)]
    if not texts or not all(isinstance(t, str) for t in texts):
        return None
    return "".join(t for t in texts if isinstance(t, str))


def _gemini_error(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


def _openai_error(message: str, param: str) -> tuple[int, dict[str, Any]]:
    err = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return 400, {"error": err}


def _openai(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    model = body.get("model")
    if not isinstance(model, str):
        return _openai_error("you must provide a model parameter", "model")
    inp = body.get("input")
    texts = [inp] if isinstance(inp, str) else inp
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return _openai_error("'input' must be a string or a list of strings", "input")
    if len(texts) > 2048:
        return _openai_error("'input' : maximum 2048 inputs per request", "input")
    if any(not t for t in texts):
        return _openai_error("'input' cannot contain an empty string", "input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        return _openai_error("encoding_format must be 'float' or 'base64'", "encoding_format")
    dims = _size(model, body.get("dimensions"))
    data = []
    for i, t in enumerate(texts):
        v = vector(t, dims)
        emb: Any = base64.b64encode(_le_bytes(v)).decode("ascii") if fmt == "base64" else v.tolist()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    n = _tokens(texts)
    return 200, {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": n, "total_tokens": n},
    }


def _voyage(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    model, inp = body.get("model"), body.get("input")
    if not isinstance(model, str):
        return 400, {"detail": "Field 'model' is required."}
    texts = [inp] if isinstance(inp, str) else inp
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return 400, {"detail": "Field 'input' must be a string or a list of strings."}
    if len(texts) > 1000:
        return 400, {"detail": f"The batch size limit is 1000. Your batch size is {len(texts)}."}
    if body.get("input_type") not in (None, "query", "document"):
        return 400, {"detail": "Value error, input_type must be None, 'query', or 'document'."}
    asked = body.get("output_dimension")
    if asked is not None and asked not in _VOYAGE_DIMS:
        return 400, {"detail": f"Value error, output_dimension {asked} is not supported."}
    fmt = body.get("encoding_format")
    if fmt not in (None, "base64"):
        return 400, {"detail": "Value error, encoding_format must be None or 'base64'."}
    dims = asked if isinstance(asked, int) else 1024
    data = []
    for i, t in enumerate(texts):
        v = vector(t, dims)
        emb: Any = base64.b64encode(_le_bytes(v)).decode("ascii") if fmt else v.tolist()
        data.append({"object": "embedding", "embedding": emb, "index": i})
    return 200, {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"total_tokens": _tokens(texts)},
    }


def _cohere_error(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"id": "0" * 8 + "-fake", "message": message}


def _cohere(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    model, texts = body.get("model"), body.get("texts")
    if not isinstance(model, str):
        return _cohere_error("invalid request: a model parameter is required for this endpoint.")
    if body.get("input_type") not in _COHERE_INPUT_TYPES:
        return _cohere_error("invalid request: valid input_type must be provided with the model")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return _cohere_error("invalid request: texts must be a non-empty list of strings")
    if len(texts) > 96:
        return _cohere_error(
            f"invalid request: total number of texts must be at most 96 - received {len(texts)}"
        )
    for i, t in enumerate(texts):
        if not t:
            return _cohere_error(
                f"invalid request: inputs contains an element that is the empty string at index {i}"
            )
    if body.get("embedding_types", ["float"]) != ["float"]:
        return _cohere_error("invalid request: the fake serves only float embeddings")
    dims = _size(model, body.get("output_dimension"))
    n = _tokens(texts)
    return 200, {
        "id": hashlib.sha256(repr(texts).encode()).hexdigest()[:36],
        "embeddings": {"float": [vector(t, dims).tolist() for t in texts]},
        "texts": texts,
        "meta": {
            "api_version": {"version": "2"},
            "billed_units": {"image_tokens": 0, "input_tokens": n},
        },
        "response_type": "embeddings_by_type",
    }
