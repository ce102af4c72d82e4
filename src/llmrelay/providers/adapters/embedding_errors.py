"""Voyage AI and Cohere error answers as typed errors.

Voyage answers ``{"detail": "..."}`` (https://docs.voyageai.com/docs/error-codes: 400 invalid
request -- bad JSON or parameter, batch too large, too many tokens in the batch or in one
input --, 401, 403 (the IP is forbidden), 429, 500, 502/503/504; its SDK reads ``detail``);
a 422 from its framework may carry ``detail`` as a list of ``{"loc", "msg"}``. Cohere answers
``{"id": "...", "message": "..."}`` (https://docs.cohere.com/reference/errors and the v2 embed
operation of its OpenAPI spec: 400, 401, 402 billing limit, 403, 404, 422, 429, 498 a deny-listed
token, 499 the request was cancelled, 500, 501, 503, 504). ``Retry-After`` is read when sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import (
    APIError,
    ContentFilteredError,
    ContextWindowExceededError,
    QuotaExhaustedError,
    ServerError,
)
from ..table import Deployment
from .base import error_body, error_for_status, make_error, redact, status_message

__all__ = ["map_error"]

#: Words of an input over the model's token limit, in both providers' messages.
_TOO_LONG = ("context length", "too many tokens", "exceeds the context")


def _message(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    for key in ("message", "detail"):
        v = data.get(key)
        if isinstance(v, str):
            return v
        if isinstance(v, list):  # a framework's 422: [{"loc": [...], "msg": "..."}]
            msgs = [str(d.get("msg")) for d in v if isinstance(d, dict) and d.get("msg")]
            if msgs:
                return "; ".join(msgs)
    return ""


def map_error(status: int, headers: Mapping[str, str], body: bytes, dep: Deployment) -> APIError:
    """The typed error for a Voyage or Cohere error answer."""
    data = error_body(body)
    message = _message(data) or status_message(status, body)
    low = message.lower()
    cls: type[APIError]
    if status in (400, 413, 422) and any(m in low for m in _TOO_LONG):
        cls = ContextWindowExceededError
    elif status == 402:
        cls = QuotaExhaustedError
    elif status == 498:
        cls = ContentFilteredError
    elif status == 499:
        cls = ServerError  # cancelled on the provider's side; Cohere says to try again
    else:
        cls = error_for_status(status)
    e = make_error(
        cls, message, status=status, headers=headers, dep=dep, body=data if data else None
    )
    body_id = data.get("id") if isinstance(data, dict) else None
    if e.request_id is None and isinstance(body_id, str) and body_id:
        e.request_id = redact(body_id, dep)  # Cohere's answer id, what its support asks for
    return e
