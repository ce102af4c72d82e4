"""OpenAI embeddings (``POST {base_url}/embeddings``), sans-IO.

Served by OpenAI, Azure OpenAI (``?api-version=`` when the deployment sets one) and the
OpenAI-compatible vendors of the provider table (Mistral, Together, Fireworks, Ollama, vLLM,
LM Studio). Request: ``model``, ``input`` (a list of strings), ``dimensions`` when asked for,
``user``, ``encoding_format``; the call's ``input_type`` is not sent (the API has no such
field: a query and a document are embedded alike). Answer: ``data[]`` of ``{index, embedding}`` plus
``usage.prompt_tokens`` (https://platform.openai.com/docs/api-reference/embeddings).

``encoding_format: "base64"`` (little-endian float32, what the official SDKs ask for by default
since it is smaller and faster to decode) is asked of the providers documented to serve it;
the others get floats. Both are parsed, whatever was asked.
"""

from __future__ import annotations

import binascii
from array import array
from base64 import b64decode
from binascii import a2b_base64
from collections.abc import Mapping
from typing import Any, ClassVar

from ...errors import APIError
from ...transport.base import HttpRequest, HttpResponse
from ...types import Response, Usage
from ...types.embeddings import EmbedBatch, EmbedRequest, float32_from_le_bytes
from ..table import Deployment
from .base import as_int, decode_json, encode_body, invalid, openai_post
from .openai_chat import OpenAIChatAdapter

__all__ = ["BASE64_PROVIDERS", "OpenAIEmbeddingsAdapter", "data_answer"]

#: Providers documented to answer ``encoding_format: "base64"``.
BASE64_PROVIDERS = frozenset({"openai", "azure", "vllm"})

_CHAT = OpenAIChatAdapter()


class OpenAIEmbeddingsAdapter:
    name: ClassVar[str] = "openai_embeddings"
    #: The most inputs one request may carry (OpenAI's documented 2048).
    max_inputs: ClassVar[int] = 2048

    def build_request(self, req: EmbedRequest, dep: Deployment) -> HttpRequest:
        body: dict[str, object] = {"model": dep.model, "input": req.inputs}
        if req.dimensions is not None:
            body["dimensions"] = req.dimensions
        if req.user is not None:
            body["user"] = req.user
        if dep.provider in BASE64_PROVIDERS:
            body["encoding_format"] = "base64"
        if req.extra:
            body.update(req.extra)
        return openai_post(dep, "/embeddings", encode_body(body, req, dep), False)

    def parse_response(self, resp: HttpResponse, req: EmbedRequest, dep: Deployment) -> Response:
        data = decode_json(resp.body, dep)
        return data_answer(data, "prompt_tokens", resp, req, dep)

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        return _CHAT.map_error(status, headers, body, dep)


def data_answer(
    data: Any, tokens_field: str, resp: HttpResponse, req: EmbedRequest, dep: Deployment
) -> Response:
    """The answer of an OpenAI-shaped embeddings API (``data[]`` of ``{index, embedding}``,
    base64 or floats; ``usage.<tokens_field>``): OpenAI's and Voyage's."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise invalid("the embeddings answer has no 'data' list", dep, resp.headers)
    n = len(req.inputs)
    if len(items) != n:
        raise invalid(
            f"the embeddings answer holds {len(items)} vectors for {n} inputs",
            dep,
            resp.headers,
        )
    flat = _fast(items, n)
    if flat is None:
        flat = _flatten(_ordered(items, n, dep, resp.headers), dep, resp.headers)
    dim = len(flat) // n if n else 0
    if dim * n != len(flat) or (n and dim == 0):
        raise invalid("the embeddings answer's vectors differ in length", dep, resp.headers)
    usage = data.get("usage")
    tokens = as_int(usage.get(tokens_field)) if isinstance(usage, dict) else 0
    model = data.get("model")
    return Response(
        usage=Usage(tokens) if tokens else Usage(req.tokens, estimated=True),
        provider=dep.provider,
        model=model if isinstance(model, str) and model else dep.model,
        finish_reason="stop",
        object=EmbedBatch(flat, n, dim),
    )


def _fast(items: list[Any], n: int) -> array[float] | None:
    """The common answer -- base64 vectors with indexes 0..n-1 in order -- decoded at C speed;
    None for anything else (the careful path then says what is wrong)."""
    try:
        chunks = [a2b_base64(it["embedding"], strict_mode=True) for it in items]
        if [it["index"] for it in items] != list(range(n)) or len(set(map(len, chunks))) != 1:
            return None
        raw = b"".join(chunks)
        if len(raw) % 4:
            return None
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    return float32_from_le_bytes(raw)


def _ordered(
    items: list[Any], n: int, dep: Deployment, headers: Mapping[str, str]
) -> list[bytes | list[float] | None]:
    """The vectors by their ``index``, checked: each an object with a valid, unrepeated index
    and a base64 string or a list."""
    parts: list[bytes | list[float] | None] = [None] * n
    for pos, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid(f"data[{pos}] is not an object", dep, headers)
        i = item.get("index", pos)
        if not isinstance(i, int) or not 0 <= i < n or parts[i] is not None:
            raise invalid(f"data[{pos}] has a bad or repeated index", dep, headers)
        emb = item.get("embedding")
        if isinstance(emb, str):
            try:
                parts[i] = b64decode(emb, validate=True)
            except (binascii.Error, ValueError):
                raise invalid(f"data[{pos}].embedding is not base64", dep, headers) from None
        elif isinstance(emb, list):
            parts[i] = emb
        else:
            raise invalid(f"data[{pos}].embedding is missing", dep, headers)
    return parts


def _flatten(
    parts: list[bytes | list[float] | None], dep: Deployment, headers: Mapping[str, str]
) -> array[float]:
    """The vectors, in order, as one float32 array (base64 ones joined without decoding)."""
    sizes = {len(p) // 4 if isinstance(p, bytes) else len(p) for p in parts if p is not None}
    if len(sizes) > 1:
        raise invalid("the embeddings answer's vectors differ in length", dep, headers)
    if all(type(p) is bytes for p in parts):
        raw = b"".join(parts)  # type: ignore[arg-type]
        if len(raw) % 4:
            raise invalid("a base64 embedding is not whole float32 numbers", dep, headers)
        return float32_from_le_bytes(raw)
    out = array("f")
    for p in parts:
        if isinstance(p, bytes):
            out.extend(float32_from_le_bytes(p))
        else:
            try:
                out.fromlist(p)  # type: ignore[arg-type]
            except TypeError:
                raise invalid(
                    "an embedding holds something other than numbers", dep, headers
                ) from None
    return out
