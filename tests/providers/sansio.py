"""Drive a wire adapter without a socket: bytes in, ``HttpRequest``/``Response``/chunks out.

The adapters are sans-IO (``providers/adapters/base.py``); these helpers feed them the bytes a
provider sends — recorded ones from ``tests/recordings`` where one fits — through the real
``SSEDecoder``, in the pieces a network would deliver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llmrelay.errors import CREDENTIAL_HEADERS
from llmrelay.providers.adapters.base import StreamState, WireAdapter
from llmrelay.providers.table import Deployment, make_deployment
from llmrelay.transport.base import HttpRequest, HttpResponse
from llmrelay.transport.sse import SSEDecoder
from llmrelay.types import (
    ChatRequest,
    MessagesInput,
    Response,
    StreamChunk,
    build_params,
    normalize_messages,
)

from ..conftest import CANARY_KEY
from ..recordings.replay import Exchange, decoded_body, entry, exchanges

BASE = "https://upstream.example.test/v1"


def deployment(provider: str, model: str, *, base_url: str = BASE) -> Deployment:
    return make_deployment(provider, model, api_key=CANARY_KEY, base_url=base_url)


def chat(messages: MessagesInput, *, stream: bool = False, **params: Any) -> ChatRequest:
    return ChatRequest(normalize_messages(messages), build_params(params), stream)


def body_of(http: HttpRequest) -> Any:
    assert http.body is not None
    return orjson.loads(http.body)


def plain_headers(http: HttpRequest) -> dict[str, str]:
    """The request's headers without the credential ones (so a failure never prints a key)."""
    return {k: v for k, v in http.headers.items() if k.lower() not in CREDENTIAL_HEADERS}


def sends_key(http: HttpRequest, header: str, prefix: str = "") -> bool:
    """True when the key is sent in ``header`` (and nowhere else: not in the URL, not in the
    body). Returns a bool so an assertion on it prints no header value."""
    others = [k for k, v in http.headers.items() if CANARY_KEY in v and k != header]
    return (
        http.headers.get(header) == prefix + CANARY_KEY
        and not others
        and CANARY_KEY not in http.url
        and CANARY_KEY.encode() not in (http.body or b"")
    )


def response(body: bytes | Mapping[str, Any], status: int = 200, **headers: str) -> HttpResponse:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return HttpResponse(status, {"content-type": "application/json", **headers}, raw)


def sse(*objects: Mapping[str, Any], events: bool = False, done: bool = False) -> bytes:
    """SSE bytes for JSON objects (``events``: with an ``event:`` line named by their type)."""
    out = []
    for o in objects:
        head = b"event: " + str(o["type"]).encode() + b"\n" if events else b""
        out.append(head + b"data: " + orjson.dumps(o) + b"\n\n")
    if done:
        out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def feed(
    state: StreamState, frames: Iterable[bytes], piece: int | None = None
) -> list[StreamChunk]:
    """Every chunk the state yields for the byte frames, decoded by ``SSEDecoder``; each frame is
    cut into ``piece``-byte reads first when given (any cut must give the same chunks)."""
    dec = SSEDecoder()
    out: list[StreamChunk] = []
    for frame in frames:
        reads = (
            [frame]
            if piece is None
            else [frame[i : i + piece] for i in range(0, len(frame), piece)]
        )
        for r in reads:
            for ev in dec.feed(r):
                out += state.feed(ev)
    for ev in dec.flush():
        out += state.feed(ev)
    assert not dec.has_partial
    return out


def stream(
    adapter: WireAdapter,
    req: ChatRequest,
    dep: Deployment,
    frames: Iterable[bytes],
    piece: int | None = None,
) -> tuple[list[StreamChunk], StreamState]:
    state = adapter.stream_state(req, dep)
    return feed(state, frames, piece), state


@dataclass(frozen=True, slots=True)
class Wire:
    """One adapter at its test deployment, as every sans-IO test module drives it:
    ``W.body(req)`` is the JSON body it sends, ``W.parse(resp, req)`` the answer it reads,
    ``W.stream(req, frames)`` the chunks and state of a stream. ``dep`` overrides the
    deployment for one call."""

    adapter: WireAdapter
    dep: Deployment

    def body(self, req: ChatRequest, dep: Deployment | None = None) -> Any:
        return body_of(self.adapter.build_request(req, dep or self.dep))

    def parse(
        self, resp: HttpResponse, req: ChatRequest, dep: Deployment | None = None
    ) -> Response:
        return self.adapter.parse_response(resp, req, dep or self.dep)

    def stream(
        self, req: ChatRequest, frames: Iterable[bytes], piece: int | None = None
    ) -> tuple[list[StreamChunk], StreamState]:
        return stream(self.adapter, req, self.dep, frames, piece)


def recorded(rid: str, interaction: int = 0) -> Exchange:
    """One exchange of a manifest recording (its sha256 is checked on reading)."""
    return exchanges(entry(rid))[interaction]


def recorded_response(rid: str, interaction: int = 0) -> HttpResponse:
    """A recorded non-streamed answer as the transport hands it over (body decoded)."""
    ex = recorded(rid, interaction)
    headers = {k.lower(): v for k, v in ex.response.headers if k.lower() != "content-encoding"}
    return HttpResponse(ex.response.status, headers, decoded_body(ex.response))


def recorded_frames(rid: str, interaction: int = 0) -> tuple[bytes, ...]:
    """A recorded stream's body in the pieces it was recorded in (gzip undone)."""
    ex = recorded(rid, interaction)
    if any(k.lower() == "content-encoding" for k, _ in ex.response.headers):
        return (decoded_body(ex.response),)
    return ex.response.frames


def text_of(chunks: Iterable[StreamChunk]) -> str:
    return "".join(c.delta for c in chunks)


def reasoning_of(chunks: Iterable[StreamChunk]) -> str:
    return "".join(c.reasoning for c in chunks)
