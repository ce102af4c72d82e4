"""The OpenAI Embeddings wire, server side: read a ``POST /v1/embeddings`` body into our call,
write our :class:`~llmrelay.types.embeddings.Embeddings` back as OpenAI's JSON.

Request: ``model``, ``input`` (a string or a list of strings; token-id arrays are refused: the
models behind the gateway are not all OpenAI's, so token ids mean nothing to most of them),
``encoding_format`` (``"float"`` or ``"base64"`` -- little-endian float32, what the official
SDKs ask for by default and decode), ``dimensions`` and ``user``. Answer: ``{"object": "list",
"data": [{"object": "embedding", "index", "embedding"}], "model", "usage": {"prompt_tokens",
"total_tokens"}}``. Every model behind the gateway that embeds answers in this shape (OpenAI,
Gemini, Mistral, ...); a chat model is refused by the engine's checks, naming it.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import InvalidRequestError, shown
from ..types.embeddings import Embeddings
from .wire import GatewayCall
from .wire import param_error as _bad

__all__ = ["parse_embeddings_request", "render_embeddings"]

_KNOWN = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
#: Inputs one request may hold, as OpenAI's API allows: a 4 MB body of one-letter inputs
#: would otherwise be a million vectors (gigabytes) to hold and render for a cent of tokens.
MAX_INPUTS = 2048


def _inputs(raw: Any) -> list[str]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise _bad("`input` must be a string or a non-empty list of strings", "input")
    if len(raw) > MAX_INPUTS:
        raise _bad(
            f"`input` has {len(raw)} items; at most {MAX_INPUTS} are embedded in one request: "
            "split it",
            "input",
        )
    if any(not isinstance(s, str) for s in raw):
        tokens = all(isinstance(t, int) for t in raw) or all(isinstance(t, list) for t in raw)
        raise _bad(
            "`input` as token ids is not supported by the gateway (the models behind it do not "
            "share a tokenizer): send the text"
            if tokens
            else "`input` must be a string or a list of strings",
            "input",
        )
    if "" in raw:
        raise _bad(
            f"input[{raw.index('')}] is an empty string; providers refuse empty inputs: drop it "
            "or embed a placeholder",
            "input",
        )
    return raw


def parse_embeddings_request(body: Any) -> GatewayCall:
    """The call an Embeddings body asks for (``params``: ``inputs``, ``encoding_format`` and,
    when given, ``dimensions`` and ``user``); ``InvalidRequestError`` naming the field."""
    if not isinstance(body, Mapping):
        raise InvalidRequestError("the request body must be a JSON object")
    unknown = sorted(k for k in body if k not in _KNOWN)
    if unknown:
        raise _bad(f"Unrecognized request argument supplied: {shown(unknown[0])}", unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("`model` is required: the name of an embedding model or alias", "model")
    fmt = body.get("encoding_format", "float")
    if fmt is None:
        fmt = "float"
    if fmt not in ("float", "base64"):
        raise _bad(
            f"encoding_format must be 'float' or 'base64', not {shown(fmt)}", "encoding_format"
        )
    params: dict[str, Any] = {"inputs": _inputs(body.get("input")), "encoding_format": fmt}
    dims = body.get("dimensions")
    if dims is not None:
        if type(dims) is not int or dims < 1:
            raise _bad(f"dimensions must be a positive integer, not {shown(dims)}", "dimensions")
        params["dimensions"] = dims
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise _bad("`user` must be a string", "user")
        params["user"] = user
    return GatewayCall(model=model, messages=[], params=params)


def _le_bytes(a: array[float]) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover - no big-endian CI
        a = array("f", a)
        a.byteswap()
    return a.tobytes()


def render_embeddings(result: Embeddings, model: str, encoding_format: str) -> bytes:
    """``result`` as OpenAI's ``list`` of ``embedding`` objects (float lists or base64)."""
    d = result.dimensions
    data: list[dict[str, Any]] = []
    if encoding_format == "base64":
        raw = _le_bytes(result.data)
        width = 4 * d
        for i in range(len(result)):
            vec = base64.b64encode(raw[i * width : (i + 1) * width]).decode()
            data.append({"object": "embedding", "index": i, "embedding": vec})
    else:
        for i, vec_f in enumerate(result.vectors):
            data.append({"object": "embedding", "index": i, "embedding": vec_f})
    n = result.usage.input_tokens
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": n, "total_tokens": n},
        }
    )
