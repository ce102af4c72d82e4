"""Voyage AI embeddings (``POST {base_url}/embeddings``, https://api.voyageai.com/v1), sans-IO.

Request (https://docs.voyageai.com/reference/embeddings-api): ``input`` (a list of at most
1,000 texts, with a per-model token cap on the whole list: 1M for ``voyage-4-lite`` and
``voyage-3.5-lite``, 320K for ``voyage-4`` and ``voyage-3.5``, 120K for ``voyage-4-large``,
``voyage-3-large``, ``voyage-code-3``, ``-finance-2`` and ``-law-2``; the table's rows carry
them), ``model``, ``input_type`` (``query`` / ``document`` / null: the call's ``input_type``
as is), ``truncation``, ``output_dimension`` (the call's ``dimensions``), ``output_dtype``
and ``encoding_format``. llmrelay sends ``truncation: false`` (an input over the context
length is an error, as with OpenAI, never a silently shortened vector; ``extra`` can set it)
and ``encoding_format: "base64"`` (little-endian float32, what Voyage's own SDK asks for).

Answer: OpenAI's shape -- ``data[]`` of ``{object, embedding, index}``, ``model`` -- with
``usage.total_tokens``. Errors: ``{"detail": "..."}`` (``embedding_errors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ...errors import APIError, InvalidRequestError, shown
from ...transport.base import HttpRequest, HttpResponse
from ...types import Response
from ...types.embeddings import EmbedRequest
from ..table import Deployment
from .base import decode_json, encode_body, openai_post
from .embedding_errors import map_error
from .openai_embeddings import data_answer

__all__ = ["VoyageEmbeddingsAdapter"]


class VoyageEmbeddingsAdapter:
    name: ClassVar[str] = "voyage_embeddings"
    #: "The maximum length of the list is 1,000."
    max_inputs: ClassVar[int] = 1000

    def build_request(self, req: EmbedRequest, dep: Deployment) -> HttpRequest:
        body: dict[str, object] = {
            "input": req.inputs,
            "model": dep.model,
            "truncation": False,
            "encoding_format": "base64",
        }
        if req.input_type is not None:
            body["input_type"] = req.input_type
        if req.dimensions is not None:
            body["output_dimension"] = req.dimensions
        if req.extra:
            self.check_extra(req.extra, dep.provider, dep.model)
            body.update(req.extra)
        return openai_post(dep, "/embeddings", encode_body(body, req, dep), False)

    @staticmethod
    def check_extra(extra: Mapping[str, Any], provider: str, model: str) -> None:
        """The provider fields llmrelay cannot read the answer of (checked before the call
        takes anything, and again when a request is built)."""
        dtype = extra.get("output_dtype")
        if dtype is not None and (type(dtype) is not str or dtype != "float"):
            raise InvalidRequestError(
                f"extra output_dtype={shown(dtype)}: llmrelay returns float32 vectors, so "
                "only 'float' (the default) can be asked for",
                provider=provider,
                model=model,
            )

    def parse_response(self, resp: HttpResponse, req: EmbedRequest, dep: Deployment) -> Response:
        return data_answer(decode_json(resp.body, dep), "total_tokens", resp, req, dep)

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        return map_error(status, headers, body, dep)
