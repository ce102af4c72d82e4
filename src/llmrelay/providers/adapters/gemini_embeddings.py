"""Gemini embeddings, sans-IO: ``{base_url}/models/{model}:embedContent`` for one input,
``:batchEmbedContents`` for several (at most 100 a request).

Request (https://ai.google.dev/api/embeddings): ``content.parts[].text``, ``taskType`` (the
call's ``task_type``, or its ``input_type``: ``query`` -> ``RETRIEVAL_QUERY``, ``document`` ->
``RETRIEVAL_DOCUMENT``), ``outputDimensionality``; the batch form wraps each in ``requests[]``
with its ``model``.
Answer: ``embedding.values`` / ``embeddings[].values``, and ``usageMetadata.promptTokenCount``
where the API reports it (when it does not, the tokens are estimated and marked so).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from typing import Any, ClassVar

from ...errors import APIError
from ...transport.base import HttpRequest, HttpResponse
from ...types import Response, Usage
from ...types.embeddings import EmbedBatch, EmbedRequest
from ..table import Deployment
from .base import as_int, decode_json, encode_body, invalid, send_headers
from .gemini_errors import map_error

__all__ = ["GeminiEmbeddingsAdapter"]

#: The call's ``input_type`` as Gemini's ``taskType``.
_TASK_TYPES = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT"}


class GeminiEmbeddingsAdapter:
    name: ClassVar[str] = "gemini_embeddings"
    #: BatchEmbedContentsRequest.requests: "at most 100 requests can be in one batch".
    max_inputs: ClassVar[int] = 100

    def build_request(self, req: EmbedRequest, dep: Deployment) -> HttpRequest:
        model = dep.model
        if not model.startswith(("models/", "tunedModels/")):
            model = "models/" + model
        extra: dict[str, Any] = {}
        if req.task_type is not None:
            extra["taskType"] = req.task_type
        elif req.input_type is not None:
            extra["taskType"] = _TASK_TYPES[req.input_type]
        if req.dimensions is not None:
            extra["outputDimensionality"] = req.dimensions
        if req.extra:
            extra.update(req.extra)
        headers = send_headers(
            {"content-type": "application/json", "accept": "application/json"},
            dep,
            "x-goog-api-key",
        )
        if len(req.inputs) == 1:
            body: dict[str, Any] = {"content": {"parts": [{"text": req.inputs[0]}]}, **extra}
            url = f"{dep.base_url}/{model}:embedContent"
        else:
            body = {
                "requests": [
                    {"model": model, "content": {"parts": [{"text": t}]}, **extra}
                    for t in req.inputs
                ]
            }
            url = f"{dep.base_url}/{model}:batchEmbedContents"
        return HttpRequest("POST", url, headers, encode_body(body, req, dep))

    def parse_response(self, resp: HttpResponse, req: EmbedRequest, dep: Deployment) -> Response:
        data = decode_json(resp.body, dep)
        if not isinstance(data, dict):
            raise invalid("the embeddings answer is not a JSON object", dep, resp.headers)
        if "embeddings" in data:
            items = data["embeddings"]
        elif "embedding" in data:
            items = [data["embedding"]]
        else:
            items = None
        n = len(req.inputs)
        if not isinstance(items, list) or len(items) != n:
            got = len(items) if isinstance(items, list) else "no"
            raise invalid(
                f"the embeddings answer holds {got} vectors for {n} inputs", dep, resp.headers
            )
        out = array("f")
        dim = -1
        for pos, item in enumerate(items):
            values = item.get("values") if isinstance(item, dict) else None
            if not isinstance(values, list) or (dim != -1 and len(values) != dim) or not values:
                raise invalid(f"embedding {pos} has no values or another length", dep, resp.headers)
            dim = len(values)
            try:
                out.fromlist(values)
            except TypeError:
                raise invalid(
                    f"embedding {pos} holds something other than numbers", dep, resp.headers
                ) from None
        meta = data.get("usageMetadata")
        tokens = as_int(meta.get("promptTokenCount")) if isinstance(meta, dict) else 0
        return Response(
            usage=Usage(tokens) if tokens else Usage(req.tokens, estimated=True),
            provider=dep.provider,
            model=dep.model,
            finish_reason="stop",
            object=EmbedBatch(out, n, max(dim, 0)),
        )

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        return map_error(status, headers, body, dep)
