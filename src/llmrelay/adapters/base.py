"""What a wire adapter is, and the helpers every adapter shares.

An adapter is sans-IO: it turns a :class:`ChatRequest` into an :class:`HttpRequest`, turns an
:class:`HttpResponse` (or SSE events) into a :class:`Response` (or chunks), and maps error
answers onto the hierarchy in ``llmrelay.errors``. ``map_error`` is the adapter's single mapping
point; everything it raises names the provider and model and never contains the API key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

import orjson

from ..errors import (
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidRequestError,
    InvalidResponseError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    StreamInterruptedError,
)
from ..headers import parse_retry_after, request_id_from
from ..providers import AuthStyle, Deployment
from ..transport.base import HttpRequest, HttpResponse
from ..transport.sse import SSEEvent
from ..types import ChatRequest, ContentPart, ImagePart, Response, StreamChunk, TextPart, ToolCall

__all__ = [
    "StreamState",
    "WireAdapter",
    "content_parts",
    "decode_json",
    "error_body",
    "error_for_status",
    "event_json",
    "in_band_error",
    "interrupted",
    "json_schema_format",
    "redact",
    "send_headers",
    "status_message",
    "tool_call_args",
]


class StreamState(Protocol):
    """Per-stream parser state: feed it SSE events, then ask for the final response."""

    #: True once the wire format's terminal event was seen.
    done: bool

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        """Chunks for one event (maybe none). Raises a typed error for in-stream errors."""
        ...

    def finish(self) -> Response:
        """The complete response from everything fed so far."""
        ...

    def partial(self) -> Response:
        """What was received so far, for a stream that was cut."""
        ...


class WireAdapter(Protocol):
    name: ClassVar[str]

    def build_request(self, req: ChatRequest, dep: Deployment) -> HttpRequest: ...

    def parse_response(self, resp: HttpResponse, req: ChatRequest, dep: Deployment) -> Response:
        """Parse a 2xx answer (call ``map_error`` first for anything else)."""
        ...

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        """The one place an error answer becomes a typed error."""
        ...

    def stream_state(self, req: ChatRequest, dep: Deployment) -> StreamState: ...


def redact(text: str, dep: Deployment) -> str:
    """Remove the deployment's API key from text copied out of a provider answer."""
    if dep.api_key:
        key = dep.api_key.get()
        if key and key in text:
            text = text.replace(key, "[REDACTED]")
    return text


def redact_obj(obj: Any, dep: Deployment) -> Any:
    if not dep.api_key:
        return obj
    if isinstance(obj, str):
        return redact(obj, dep)
    if isinstance(obj, dict):
        return {k: redact_obj(v, dep) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_obj(v, dep) for v in obj]
    return obj


#: The most of a malformed body an exception keeps (characters around the error).
EXCERPT_CHARS = 2048


def excerpt(text: str, dep: Deployment | None, start: int = 0, size: int = EXCERPT_CHARS) -> str:
    """``text[start:start + size]`` with the deployment's API key removed, also a piece of the
    key cut by either edge of the window."""
    part = text[start : start + size]
    key = dep.api_key.get() if dep is not None and dep.api_key else None
    if not key:
        return part
    part = part.replace(key, "[REDACTED]")
    for n in range(min(len(key) - 1, len(part)), 0, -1):
        if part.endswith(key[:n]):
            part = part[:-n]
            break
    for n in range(min(len(key) - 1, len(part)), 0, -1):
        if part.startswith(key[-n:]):
            part = part[n:]
            break
    return part


def short_json_error(exc: orjson.JSONDecodeError, dep: Deployment | None) -> ValueError:
    """A stand-in for ``exc`` to chain as a cause: orjson's error keeps the whole document in
    ``doc``; this one keeps at most :data:`EXCERPT_CHARS` redacted characters around the error
    position. Raise the new error outside the ``except`` block, or ``__context__`` keeps
    ``exc`` (and its document) anyway."""
    start = max(0, exc.pos - EXCERPT_CHARS // 2)
    doc = excerpt(exc.doc, dep, start)
    short = orjson.JSONDecodeError(exc.msg, doc, min(exc.pos - start, len(doc)))
    short.args = (
        f"{exc.args[0] if exc.args else exc.msg} (doc keeps {len(doc)} of {len(exc.doc)} "
        f"characters, from character {start})",
    )
    return short


def decode_json(body: bytes, dep: Deployment, what: str = "response") -> Any:
    """Decode a JSON body or raise ``InvalidResponseError`` that shows what came instead.

    Neither the error nor its cause keeps the body: only a short redacted excerpt."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        cause = short_json_error(exc, dep)
    # Raised here, not in the except block: the original error (whole body) is not kept as
    # __context__.
    snippet = body[:200].decode("utf-8", "replace")
    kind = "HTML" if snippet.lstrip().lower().startswith(("<!doctype", "<html")) else "text"
    raise InvalidResponseError(
        f"the {what} is not valid JSON ({kind} instead, {len(body)} bytes): "
        f"{redact(snippet, dep)!r}. Check the base URL ({dep.base_url}) points at the API",
        provider=dep.provider,
        model=dep.model,
    ) from cause


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitedError,
    529: OverloadedError,
}


def error_for_status(status: int) -> type[APIStatusError]:
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return ServerError
    return APIStatusError


def make_error(
    cls: type[APIError],
    message: str,
    *,
    status: int | None,
    headers: Mapping[str, str],
    dep: Deployment,
    body: Any = None,
    retry_after: float | None = None,
) -> APIError:
    if len(message) > EXCERPT_CHARS:
        message = excerpt(message, dep) + "..."
    return cls(
        redact(message, dep),
        provider=dep.provider,
        model=dep.model,
        status=status,
        headers=headers,
        retry_after=retry_after if retry_after is not None else parse_retry_after(headers),
        request_id=request_id_from(headers),
        body=redact_obj(body, dep),
    )


def invalid(
    message: str, dep: Deployment, headers: Mapping[str, str] | None = None
) -> InvalidResponseError:
    return InvalidResponseError(
        redact(message, dep),
        provider=dep.provider,
        model=dep.model,
        request_id=request_id_from(headers or {}),
    )


def as_int(v: Any) -> int:
    """A token count from a provider answer; anything odd counts as 0."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


# --------------------------------------------------------------------------- shared by adapters


def event_json(data: str, dep: Deployment) -> dict[str, Any]:
    """One stream event's JSON object, or ``InvalidResponseError`` saying what came instead."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        cause = short_json_error(exc, dep)
    else:
        if isinstance(obj, dict):
            return obj
        raise invalid("stream event is not a JSON object", dep)
    # Outside the except block: the event's whole text is not kept as __context__.
    raise invalid(f"stream event is not JSON: {data[:200]!r}", dep) from cause


#: An error answer larger than this is not decoded: its error carries no ``body`` and its
#: message is the status and the start of the text (no provider sends such errors).
MAX_ERROR_BODY = 64 * 1024


def error_body(body: bytes) -> Any:
    """The JSON of an error answer, or None when it is empty, not JSON or over
    :data:`MAX_ERROR_BODY` bytes (an error keeps no large body)."""
    if not body or len(body) > MAX_ERROR_BODY:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def status_message(status: int, body: bytes) -> str:
    """The message for an error answer that carries none: its status and the start of its body."""
    text = body[:300].decode("utf-8", "replace").strip()
    return f"HTTP {status}" + (f": {text}" if text else "")


MapError = Callable[[int, Mapping[str, str], bytes, Deployment], APIError]


def in_band_error(
    map_error: MapError,
    obj: Mapping[str, Any],
    body: bytes,
    headers: Mapping[str, str],
    dep: Deployment,
) -> APIError:
    """The typed error for an ``{"error": {"code": ...}}`` object inside a 2xx body or stream.

    Its ``code`` is taken as the status when it is one (else 500), and an error that no status
    class fits counts as a server error (the provider failed mid-answer).
    """
    err = obj.get("error")
    code = err.get("code") if isinstance(err, dict) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    e = map_error(status, headers, body, dep)
    if type(e) is APIStatusError:
        e = make_error(ServerError, e.message, status=status, headers=headers, dep=dep)
    return e


def interrupted(message: str, dep: Deployment, partial: Response) -> StreamInterruptedError:
    """The error for a stream that ended before its terminal event; ``partial`` is what came."""
    return StreamInterruptedError(message, provider=dep.provider, model=dep.model, partial=partial)


def content_parts(
    content: str | list[ContentPart] | None,
    text: Callable[[str], dict[str, Any]],
    image: Callable[[ImagePart], dict[str, Any]],
) -> list[dict[str, Any]]:
    """A message's content as the provider's parts, built by ``text`` and ``image``; empty
    texts are left out (Anthropic and Gemini refuse them)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text(content)] if content else []
    out: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, TextPart):
            if p.text:
                out.append(text(p.text))
        elif isinstance(p, ImagePart):
            out.append(image(p))
    return out


def tool_call_args(tc: ToolCall, provider: str) -> dict[str, Any]:
    """An assistant tool call's arguments as a JSON object (``provider`` needs them as one), or
    ``InvalidRequestError`` saying they are not."""
    try:
        args = orjson.loads(tc.arguments or "{}")
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"the assistant tool call {tc.name!r} (id {tc.id!r}) has arguments that are not a "
            f"JSON object ({tc.arguments[:80]!r}); {provider} needs each tool call's arguments "
            "as an object"
        )
    return args


def json_schema_format(rf: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """``(json_schema, schema)`` of a ``{"type": "json_schema"}`` response format, or
    ``InvalidRequestError`` showing its shape."""
    js = rf.get("json_schema")
    schema = js.get("schema") if isinstance(js, Mapping) else None
    if not isinstance(js, Mapping) or not isinstance(schema, Mapping):
        raise InvalidRequestError(
            "response_format of type 'json_schema' needs "
            "{'json_schema': {'name': ..., 'schema': {...}}}"
        )
    return js, schema


def send_headers(headers: dict[str, str], dep: Deployment, auth: AuthStyle) -> dict[str, str]:
    """``headers`` plus the deployment's key sent the ``auth`` way (``bearer``: an
    ``Authorization: Bearer`` header; ``none``: not sent; any other style names the header),
    then the provider's extra headers and the deployment's own, which win."""
    key = dep.api_key.get() if dep.api_key else None
    if key and auth != "none":
        if auth == "bearer":
            headers["authorization"] = "Bearer " + key
        else:
            headers[auth] = key
    spec = dep.spec
    if spec is not None and spec.extra_headers:
        headers.update(spec.extra_headers)
    if dep.headers:
        headers.update(dep.headers)
    return headers
