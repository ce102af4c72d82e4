"""Cohere embeddings, Embed API v2 (``POST {base_url}/v2/embed``; the base URL is the one
Cohere's SDKs take, ``https://api.cohere.com``), sans-IO.

Request (https://docs.cohere.com/reference/embed and the ``/v2/embed`` operation of Cohere's
OpenAPI spec): ``model``, ``texts`` (at most 96), ``input_type`` (required for Embed v3 and
later: ``search_document``, ``search_query``, ``classification``, ``clustering``),
``embedding_types`` (``["float"]``), ``output_dimension`` (embed-v4.0: 256, 512, 1024 or 1536),
``truncate`` (``NONE`` / ``START`` / ``END``, default ``END``) and ``max_tokens``.

The call's ``input_type`` maps ``query`` -> ``search_query`` and ``document`` ->
``search_document``; without one, llmrelay sends ``search_document`` (the API refuses a v3+
model without it, and embedding documents to store is the common case): pass
``input_type="query"`` for queries, or ``extra={"input_type": "classification"}``.
llmrelay sends ``truncate: "NONE"``, so an input over the model's limit is an error rather than
a silently shortened vector (``extra={"truncate": "END"}`` restores Cohere's default).

Answer: ``{"id", "embeddings": {"float": [[...], ...]}, "texts", "meta": {"billed_units":
{"input_tokens"}}, "response_type": "embeddings_by_type"}``; the older
``embeddings_floats`` form (``"embeddings": [[...], ...]``) is read too. Errors:
``{"id", "message"}`` (``embedding_errors``).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from typing import Any, ClassVar

from ...errors import APIError, InvalidRequestError, shown
from ...transport.base import HttpRequest, HttpResponse
from ...types import Response, Usage
from ...types.embeddings import EmbedBatch, EmbedRequest
from ..table import Deployment
from .base import as_int, decode_json, encode_body, invalid, openai_post
from .embedding_errors import map_error

__all__ = ["CohereEmbeddingsAdapter"]

_INPUT_TYPES = {"query": "search_query", "document": "search_document"}


class CohereEmbeddingsAdapter:
    name: ClassVar[str] = "cohere_embeddings"
    #: "Maximum number of texts per call is 96."
    max_inputs: ClassVar[int] = 96

    def build_request(self, req: EmbedRequest, dep: Deployment) -> HttpRequest:
        body: dict[str, object] = {
            "model": dep.model,
            "texts": req.inputs,
            "input_type": _INPUT_TYPES[req.input_type] if req.input_type else "search_document",
            "embedding_types": ["float"],
            "truncate": "NONE",
        }
        if req.dimensions is not None:
            body["output_dimension"] = req.dimensions
        if req.extra:
            self.check_extra(req.extra, dep.provider, dep.model)
            body.update(req.extra)
        return openai_post(dep, "/v2/embed", encode_body(body, req, dep), False)

    @staticmethod
    def check_extra(extra: Mapping[str, Any], provider: str, model: str) -> None:
        """The provider fields llmrelay cannot read the answer of (checked before the call
        takes anything, and again when a request is built)."""
        kinds = extra.get("embedding_types")
        if kinds is not None and not (
            type(kinds) is list
            and len(kinds) == 1
            and type(kinds[0]) is str
            and kinds[0] == "float"
        ):
            raise InvalidRequestError(
                f"extra embedding_types={shown(kinds)}: llmrelay returns float32 vectors, "
                "so only ['float'] (the default) can be asked for",
                provider=provider,
                model=model,
            )

    def parse_response(self, resp: HttpResponse, req: EmbedRequest, dep: Deployment) -> Response:
        data = decode_json(resp.body, dep)
        emb = data.get("embeddings") if isinstance(data, dict) else None
        vectors = emb.get("float") if isinstance(emb, dict) else emb
        n = len(req.inputs)
        if not isinstance(vectors, list):
            raise invalid("the embeddings answer has no 'embeddings.float' list", dep, resp.headers)
        if len(vectors) != n:
            raise invalid(
                f"the embeddings answer holds {len(vectors)} vectors for {n} inputs",
                dep,
                resp.headers,
            )
        out = _floats(vectors, dep, resp.headers)
        dim = len(out) // n if n else 0
        meta = data.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        tokens = as_int(billed.get("input_tokens")) if isinstance(billed, dict) else 0
        return Response(
            usage=Usage(tokens) if tokens else Usage(req.tokens, estimated=True),
            provider=dep.provider,
            model=dep.model,
            finish_reason="stop",
            object=EmbedBatch(out, n, dim),
        )

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        return map_error(status, headers, body, dep)


def _floats(vectors: list[Any], dep: Deployment, headers: Mapping[str, str]) -> array[float]:
    """The vectors, in order, as one float32 array; each a non-empty list of numbers of one
    length."""
    out = array("f")
    dim = -1
    for pos, v in enumerate(vectors):
        if not isinstance(v, list) or not v or (dim != -1 and len(v) != dim):
            raise invalid(f"embedding {pos} is empty or of another length", dep, headers)
        dim = len(v)
        try:
            out.fromlist(v)
        except TypeError:
            raise invalid(
                f"embedding {pos} holds something other than numbers", dep, headers
            ) from None
    return out
