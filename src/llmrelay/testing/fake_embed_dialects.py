"""The fake upstream's embeddings-only dialects: Voyage AI and Cohere.

They serve no chat: only their embeddings endpoints (``fake_embeddings``) and their error
shapes -- Voyage ``{"detail": "..."}`` (what its SDK reads), Cohere ``{"id", "message"}`` (its
OpenAPI spec's error bodies) -- with a ``Bearer`` key, as both APIs take it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .fake_base import FakeRequest, FakeUsage

__all__ = ["CohereDialect", "VoyageDialect"]


class _EmbeddingsOnly:
    name = ""
    lead_frames = 0
    auth_error_status = 401

    def parse(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> FakeRequest:
        raise ValueError(f"{self.name} serves embeddings only, not {path}")

    def check_auth(self, request: web.Request, api_key: str) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {api_key}"

    def body(
        self,
        req: FakeRequest,
        text: str,
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> dict[str, Any]:
        raise NotImplementedError(f"{self.name} serves embeddings only")

    def stream_events(
        self,
        req: FakeRequest,
        pieces: list[str],
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> list[bytes]:
        raise NotImplementedError(f"{self.name} serves embeddings only")

    def stream_error(self, message: str, type_: str | None) -> bytes:
        raise NotImplementedError(f"{self.name} serves embeddings only")

    def models(self, names: list[str]) -> dict[str, Any]:
        return {"data": [{"id": n} for n in names]}

    def request_id_header(self) -> str:
        return "x-request-id"


class VoyageDialect(_EmbeddingsOnly):
    name = "voyage"

    def error(
        self, status: int, message: str, type_: str | None, code: str | None
    ) -> dict[str, Any]:
        return {"detail": message}


class CohereDialect(_EmbeddingsOnly):
    name = "cohere"

    def error(
        self, status: int, message: str, type_: str | None, code: str | None
    ) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "message": message}

    def request_id_header(self) -> str:
        return "x-debug-trace-id"
