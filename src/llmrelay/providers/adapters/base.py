"""What a wire adapter is, and the helpers every adapter shares.

An adapter is sans-IO: it turns a :class:`ChatRequest` into an :class:`HttpRequest`, turns an
:class:`HttpResponse` (or SSE events) into a :class:`Response` (or chunks), and maps error
answers onto the hierarchy in ``llmrelay.errors``. ``map_error`` is the adapter's single mapping
point; everything it raises names the provider and model and never contains the API key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

import orjson

from ...errors import (
    CREDENTIAL_HEADERS,
    REDACTED,
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
    RedirectError,
    ServerError,
    StreamInterruptedError,
)
from ...transport.base import HttpRequest, HttpResponse
from ...transport.headers import parse_retry_after, request_id_from
from ...transport.sse import SSEEvent
from ...types import (
    ChatRequest,
    Response,
    StreamChunk,
    unencodable_part,
)
from ..table import AuthStyle, Deployment

__all__ = [
    "StreamState",
    "WireAdapter",
    "answer_request_id",
    "decode_json",
    "encode_body",
    "error_body",
    "error_for_status",
    "event_json",
    "in_band_error",
    "interrupted",
    "json_schema_format",
    "openai_post",
    "redact",
    "redact_headers",
    "send_headers",
    "status_error",
    "status_message",
]


class StreamState(Protocol):
    """Per-stream parser state: feed it SSE events, then ask for the final response.

    A state that reads nothing but the events' data may also have ``feed_values(values:
    list[str])``, an iterator of the chunks ``feed`` gives for events with those data, in
    order (text events that arrive together may come as one ``TextRun``): the backend then
    has the decoder hand it the data of each read alone (``SSEDecoder.feed_data``, no event
    object per event). For a state without it, the backend makes the runs itself: the plain
    text chunks ``feed`` gives for the events of one read pass on as one ``TextRun``."""

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


def encode_body(body: Mapping[str, Any], req: ChatRequest, dep: Deployment) -> bytes:
    """The request body as JSON. A body orjson refuses (text with lone surrogates, a value in
    ``extra`` that is not JSON) is the caller's input: ``InvalidRequestError`` naming where,
    raised before anything is sent. The check is orjson's own, so the happy path pays nothing."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise InvalidRequestError(
            f"the request cannot be encoded as JSON: {unencodable_part(req)} ({exc}); "
            "text must be valid Unicode (no lone surrogates) and values must be JSON",
            provider=dep.provider,
            model=dep.model,
        ) from None


class _Facts:
    """What the adapters derive from one deployment, once (a deployment is immutable): its
    secrets and, per auth style, the headers that carry them."""

    __slots__ = ("auth_headers", "dep", "posts", "secrets")

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.secrets = _find_secrets(dep)
        self.auth_headers: dict[str, dict[str, str]] = {}
        #: (path, stream) -> the URL and headers of an OpenAI-style POST (``openai_post``)
        self.posts: dict[tuple[str, bool], tuple[str, dict[str, str]]] = {}


#: id(deployment) -> its facts (the entry holds the deployment, so the id is not reused).
_FACTS: dict[int, _Facts] = {}


def _facts(dep: Deployment) -> _Facts:
    f = _FACTS.get(id(dep))
    if f is None or f.dep is not dep:
        if len(_FACTS) >= 1024:  # deployments are reused (make_deployment): keep this bounded
            _FACTS.clear()
        f = _FACTS[id(dep)] = _Facts(dep)
    return f


def secrets_of(dep: Deployment) -> tuple[str, ...]:
    """The deployment's secrets: its API key and the values of credential headers it sends
    (a token after ``Bearer``/``Basic`` counts on its own too); found once per deployment."""
    return _facts(dep).secrets


def _find_secrets(dep: Deployment) -> tuple[str, ...]:
    out: list[str] = []
    key = dep.api_key.get() if dep.api_key else None
    if key:
        out.append(key)
    extra = dep.spec.extra_headers if dep.spec is not None else {}
    for headers in (extra, dep.headers):
        for name, value in headers.items():
            if name.lower() in CREDENTIAL_HEADERS and value:
                out.append(value)
                token = value.split(None, 1)[-1]
                if token != value and token:
                    out.append(token)
    return tuple(out)


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        if s in text:
            text = text.replace(s, REDACTED)
        if len(s) >= 12 and s[-4:] in text:  # masked, its last 4 after: sk-proj-****abcd, ...abcd
            masked = r"[\w-]*(?:[*\u2022\u2026]+|\.{2,})[\w-]*" + re.escape(s[-4:]) + r"(?![\w-])"
            text = re.sub(masked, REDACTED, text)
    return text


def redact(text: str, dep: Deployment) -> str:
    """Remove the deployment's secrets (``secrets_of``) from text copied out of an answer."""
    return _redact(text, secrets_of(dep))


def _redact_obj(obj: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(obj, str):
        return _redact(obj, secrets)
    if isinstance(obj, dict):
        return {_redact_obj(k, secrets): _redact_obj(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact_obj(v, secrets) for v in obj]
    return obj


def _with_lower(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """``secrets`` plus their lower-cased forms, for text we lower-case (header names, hosts)."""
    return secrets + tuple(s.lower() for s in secrets if s.lower() != s)


def redact_headers(headers: Mapping[str, str], dep: Deployment) -> dict[str, str]:
    """Response headers for an error: lower-cased names; a value is replaced by
    ``[REDACTED]`` when the name is a credential header or the value holds a secret. A header
    whose *name* holds a secret (an upstream echoing the key as ``x-echo-<key>``) is dropped:
    neither its name nor its value is kept."""
    secrets = secrets_of(dep)
    lowered = _with_lower(secrets)
    out: dict[str, str] = {}
    for k, v in headers.items():
        name = k.lower()
        if any(s in name for s in lowered):
            continue
        if name in CREDENTIAL_HEADERS or any(s in v for s in secrets):
            out[name] = REDACTED
        else:
            out[name] = v
    return out


def scrub_answer(resp: Response, dep: Deployment) -> Response:
    """Remove the deployment's secrets from the strings a successful answer copies from the
    provider and that reach metrics labels, request logs, traces and errors: ``model``, ``id``,
    ``raw_finish_reason``, ``request_id``. Cheap when the deployment has no secret (its
    secrets are found once per deployment); a ``model`` equal to the one asked for is not
    searched."""
    secrets = _facts(dep).secrets
    if not secrets:
        return resp
    model = resp.model
    # One search of the four strings together; a secret found goes field by field below.
    blob = f"{model}\0{resp.id}\0{resp.raw_finish_reason}\0{resp.request_id}"
    for s in secrets:
        if s in blob:
            break
    else:
        return resp
    if model and model != dep.model:
        resp.model = _redact(model, secrets)
    if resp.id:
        resp.id = _redact(resp.id, secrets)
    if resp.raw_finish_reason:
        resp.raw_finish_reason = _redact(resp.raw_finish_reason, secrets)
    if resp.request_id:
        resp.request_id = _redact(resp.request_id, secrets)
    return resp


def _origin(url: str) -> str | None:
    """``scheme://host:port`` of an absolute URL (never its user info, path or query)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def redirect_error(status: int, headers: Mapping[str, str], dep: Deployment) -> RedirectError:
    """The error for a 3xx answer. Redirects are never followed (the key would go along), so
    the message names where it pointed (its origin only) and what to fix."""
    location = None
    for k, v in headers.items():
        if k.lower() == "location":
            location = v
            break
    here = _origin(dep.base_url)
    target = None
    if location:
        from urllib.parse import urljoin

        try:  # a relative or scheme-relative (//host/...) Location resolves against the URL
            target = _origin(urljoin(dep.base_url + "/", location.strip()))
        except ValueError:
            target = None
    if target is None:
        where = "an unusable Location" if location else "nowhere (no Location header)"
    elif target == here:
        where = f"another URL on the same origin {target}"
    else:
        where = f"another origin, {target}"
    secrets = _with_lower(secrets_of(dep))  # the origin's host is lower-cased
    redacted_target = _redact(target, secrets) if target else None
    err = RedirectError(
        _redact(
            f"the provider answered HTTP {status}, a redirect to {where}. llmrelay does not "
            "follow redirects on provider calls, so the API key is only sent to the configured "
            f"base URL ({_redact(here or dep.base_url, secrets)}): set base_url to the URL the "
            "provider serves its API at",
            secrets,
        ),
        location=redacted_target,
        provider=dep.provider,
        model=dep.model,
        status=status,
        headers=redact_headers(headers, dep),
        request_id=_rid(headers, secrets),
    )
    return err


def status_error(
    map_error: MapError, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
) -> APIError:
    """The typed error for a non-2xx answer: a redirect (3xx) or the adapter's ``map_error``."""
    if status < 400:
        return redirect_error(status, headers, dep)
    return map_error(status, headers, body, dep)


def _rid(headers: Mapping[str, str], secrets: tuple[str, ...]) -> str | None:
    rid = request_id_from(headers)
    return _redact(rid, secrets) if rid and secrets else rid


def answer_request_id(headers: Mapping[str, str], dep: Deployment) -> str | None:
    """The request id of a successful answer; ``[REDACTED]`` when it holds a secret (errors and
    logs quote it, e.g. ``StructuredOutputError``)."""
    rid = request_id_from(headers)
    if rid:
        for s in _facts(dep).secrets:
            if s in rid:
                return REDACTED
    return rid


#: The most of a malformed body an exception keeps (characters around the error).
EXCERPT_CHARS = 2048


def excerpt(text: str, dep: Deployment | None, start: int = 0, size: int = EXCERPT_CHARS) -> str:
    """``text[start:start + size]`` with the deployment's secrets removed, also a piece of a
    secret cut by either edge of the window."""
    part = text[start : start + size]
    for key in secrets_of(dep) if dep is not None else ():
        part = part.replace(key, REDACTED)
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
    secrets = secrets_of(dep)
    if len(message) > EXCERPT_CHARS:
        message = excerpt(message, dep) + "..."
    return cls(
        _redact(message, secrets),
        provider=dep.provider,
        model=dep.model,
        status=status,
        headers=redact_headers(headers, dep),
        retry_after=retry_after if retry_after is not None else parse_retry_after(headers),
        request_id=_rid(headers, secrets),
        body=_redact_obj(body, secrets) if secrets else body,
    )


def invalid(
    message: str, dep: Deployment, headers: Mapping[str, str] | None = None
) -> InvalidResponseError:
    secrets = secrets_of(dep)
    return InvalidResponseError(
        _redact(message, secrets),
        provider=dep.provider,
        model=dep.model,
        request_id=_rid(headers or {}, secrets),
    )


#: A token count at or above this is odd (no answer holds 9e15 tokens): it counts as 0. JSON
#: gives integers up to 2**64 - 1, which a BIGINT request-log column, SQLite and orjson (once
#: summed over attempts) refuse -- one hostile answer would fail a batch of other calls' rows.
MAX_COUNT = 1 << 53


def as_int(v: Any) -> int:
    """A token count from a provider answer; anything odd (negative, huge, not an int) is 0."""
    if v.__class__ is int:  # what JSON decoding gives: no isinstance checks
        return v if 0 <= v < MAX_COUNT else 0
    if v is not None and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_COUNT:
        return v
    return 0


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
    partial = scrub_answer(partial, dep)
    return StreamInterruptedError(message, provider=dep.provider, model=dep.model, partial=partial)


def json_schema_format(rf: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """``(json_schema, schema)`` of a ``{"type": "json_schema"}`` response format, or
    ``InvalidRequestError`` showing its shape."""
    js = rf.get("json_schema")
    schema = js.get("schema") if isinstance(js, Mapping) else None
    if not isinstance(js, Mapping) or not isinstance(schema, Mapping):
        raise InvalidRequestError(
            "response_format of type 'json_schema' needs "
            "{'json_schema': {'name': ..., 'schema': {...}}}",
            body={"param": "response_format"},
        )
    return js, schema


def send_headers(headers: dict[str, str], dep: Deployment, auth: AuthStyle) -> dict[str, str]:
    """``headers`` plus the deployment's key sent the ``auth`` way (``bearer``: an
    ``Authorization: Bearer`` header; ``none``: not sent; any other style names the header),
    then the provider's extra headers and the deployment's own, which win. What the
    deployment adds is built once per deployment and auth style."""
    facts = _facts(dep)
    added = facts.auth_headers.get(auth)
    if added is None:
        added = {}
        key = dep.api_key.get() if dep.api_key else None
        if key and auth != "none":
            if auth == "bearer":
                added["authorization"] = "Bearer " + key
            else:
                added[auth] = key
        spec = dep.spec
        if spec is not None and spec.extra_headers:
            added.update(spec.extra_headers)
        if dep.headers:
            added.update(dep.headers)
        facts.auth_headers[auth] = added
    headers.update(added)
    return headers


def openai_post(
    dep: Deployment, path: str, body: bytes, stream: bool, adjusted: dict[str, str] | None = None
) -> HttpRequest:
    """A JSON ``POST {base_url}{path}`` to an OpenAI-style API (chat completions, responses,
    embeddings): the key sent as the provider takes it (Azure's ``api-key`` header, else a
    bearer token) and Azure's ``?api-version=`` when the deployment sets one. The URL and
    headers are built once per deployment, path and streaming; each request gets its own copy
    of the headers."""
    posts = _facts(dep).posts
    pre = posts.get((path, stream))
    if pre is None:
        spec = dep.spec
        headers = send_headers(
            {
                "content-type": "application/json",
                "accept": "text/event-stream" if stream else "application/json",
            },
            dep,
            "api-key" if spec is not None and spec.auth == "api-key" else "bearer",
        )
        version = dep.options.get("api_version")
        url = f"{dep.base_url}{path}?api-version={version}" if version else dep.base_url + path
        pre = posts[(path, stream)] = (url, headers)
    return HttpRequest("POST", pre[0], pre[1].copy(), body, {} if adjusted is None else adjusted)
