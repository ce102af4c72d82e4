"""Replay recorded provider exchanges over a real socket.

The recordings under this folder are kept byte-for-byte as their source repositories have them
(see README.md and MANIFEST.toml). This module turns one into the HTTP exchange(s) it holds and
serves them from an aiohttp server on 127.0.0.1, so an llmrelay adapter can be pointed at it.

Three file formats:

- ``vcr_yaml``: a VCR cassette. Both vcrpy's layout (``body: {string: ...}``, ``status:
  {code, message}``, ``!!binary`` bodies, gzip-encoded bodies served with their
  ``Content-Encoding``) and pydantic-ai's two layouts (``parsed_body:`` on either side, and the
  newer ``body: {type: json|text|base64, content: ...}`` with ``status: <int>``) are read.
  A ``parsed_body`` / ``type: json`` body is sent as ``json.dumps(content)``, which is what
  pydantic-ai's own cassette serializer sends; every other body is sent exactly as recorded.
- ``chunks_txt``: vercel/ai's stream fixtures, one raw JSON event per line. They hold the events,
  not the wire framing, so the manifest says how to frame them (``framing``):
  ``sse_data`` -> ``data: <line>\\n\\n``;
  ``sse_event_data`` -> ``event: <type>\\ndata: <line>\\n\\n``
  (the event name is the line's ``type``), and ``done_marker`` adds ``data: [DONE]\\n\\n``.
  The line's bytes are never changed (whitespace and all).
- ``call_capture``: vercel/ai's live captures, a JSON document whose ``calls`` list holds
  ``{request: {url, method, headers, body}, response: {status, headers, body}}`` with the bodies
  as JSON values; a body is sent as ``json.dumps(body)`` (the capture kept no raw bytes).
- ``json_body``: a whole non-streamed response body (vercel/ai ``.json`` fixtures), served with
  the manifest's ``status`` (an error body's status is taken from its provider's documented
  mapping where the file does not carry it; the manifest says which).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent
MANIFEST = ROOT / "MANIFEST.toml"

Format = Literal["vcr_yaml", "chunks_txt", "json_body", "call_capture"]
Framing = Literal["sse_data", "sse_event_data"]
Wire = Literal[
    "openai_chat",
    "openai_responses",
    "openai_embeddings",
    "anthropic_messages",
    "gemini",
    "gemini_embeddings",
    "voyage_embeddings",
    "cohere_embeddings",
]

FORMATS: frozenset[str] = frozenset({"vcr_yaml", "chunks_txt", "json_body", "call_capture"})
FRAMINGS: frozenset[str] = frozenset({"sse_data", "sse_event_data"})
WIRES: frozenset[str] = frozenset(
    {
        "openai_chat",
        "openai_responses",
        "openai_embeddings",
        "anthropic_messages",
        "gemini",
        "gemini_embeddings",
        "voyage_embeddings",
        "cohere_embeddings",
    }
)

# Hop-by-hop or length headers a replay must not copy: the server sets its own.
_NOT_REPLAYED = frozenset({"transfer-encoding", "content-length", "connection", "keep-alive"})


class RecordingError(ValueError):
    """A recording or manifest entry that cannot be read as declared."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One manifest entry: where a recording lives, where it came from, and what it shows."""

    id: str
    path: str
    source_repo: str
    source_path: str
    commit: str
    sha256: str
    source_chars: int
    provider: str
    wire: Wire
    streamed: bool
    format: Format
    tags: tuple[str, ...]
    framing: Framing | None = None
    done_marker: bool = False
    status: int = 200
    interactions: tuple[int, ...] = ()
    notes: str = ""

    @property
    def file(self) -> Path:
        return ROOT / self.path

    def raw(self) -> bytes:
        """The recording's bytes, checked against the manifest's sha256."""
        data = self.file.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise RecordingError(f"{self.path}: sha256 {digest} != manifest {self.sha256}")
        return data


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    uri: str
    body: bytes | None


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    #: The body as the recording holds it; ``frames`` splits it where a stream would flush.
    frames: tuple[bytes, ...]

    @property
    def body(self) -> bytes:
        return b"".join(self.frames)

    @property
    def content_type(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "content-type":
                return value
        return None


@dataclass(frozen=True, slots=True)
class Exchange:
    request: RecordedRequest | None
    response: RecordedResponse


def _str_tuple(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordingError(f"{what} must be a list of strings")
    return tuple(cast(list[str], value))


def load_manifest(path: Path = MANIFEST) -> list[Entry]:
    """Every entry of the manifest, validated (formats, wires, framings, unique ids/paths)."""
    with path.open("rb") as fh:
        doc = tomllib.load(fh)
    raw_entries = doc.get("recording")
    if not isinstance(raw_entries, list):
        raise RecordingError("manifest has no [[recording]] entries")
    entries: list[Entry] = []
    seen_ids: set[str] = set()
    seen_paths: set[str] = set()
    for item in cast(list[dict[str, Any]], raw_entries):
        rid = str(item.get("id", ""))
        fmt = item.get("format")
        wire = item.get("wire")
        framing = item.get("framing")
        if fmt not in FORMATS:
            raise RecordingError(f"{rid}: format {fmt!r} not in {sorted(FORMATS)}")
        if wire not in WIRES:
            raise RecordingError(f"{rid}: wire {wire!r} not in {sorted(WIRES)}")
        if fmt == "chunks_txt" and framing not in FRAMINGS:
            raise RecordingError(f"{rid}: chunks_txt needs framing in {sorted(FRAMINGS)}")
        if fmt != "chunks_txt" and framing is not None:
            raise RecordingError(f"{rid}: framing is only for chunks_txt")
        if rid in seen_ids or item["path"] in seen_paths:
            raise RecordingError(f"{rid}: duplicate id or path")
        seen_ids.add(rid)
        seen_paths.add(item["path"])
        interactions = item.get("interactions", [])
        if not isinstance(interactions, list) or not all(isinstance(i, int) for i in interactions):
            raise RecordingError(f"{rid}: interactions must be a list of ints")
        entries.append(
            Entry(
                id=rid,
                path=str(item["path"]),
                source_repo=str(item["source_repo"]),
                source_path=str(item["source_path"]),
                commit=str(item["commit"]),
                sha256=str(item["sha256"]),
                source_chars=int(item["source_chars"]),
                provider=str(item["provider"]),
                wire=cast(Wire, wire),
                streamed=bool(item["streamed"]),
                format=cast(Format, fmt),
                tags=_str_tuple(item.get("tags", []), f"{rid}: tags"),
                framing=cast(Framing | None, framing),
                done_marker=bool(item.get("done_marker", False)),
                status=int(item.get("status", 200)),
                interactions=tuple(cast(list[int], interactions)),
                notes=str(item.get("notes", "")),
            )
        )
    return entries


def entry(rid: str, path: Path = MANIFEST) -> Entry:
    """The manifest entry with this id."""
    for e in load_manifest(path):
        if e.id == rid:
            return e
    raise KeyError(rid)


# -- VCR cassettes ---------------------------------------------------------------------------


def _body_bytes(body: object, where: str) -> bytes | None:
    """A cassette body (any of the layouts above) as the bytes that went over the wire."""
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, Mapping):
        if "string" in body:
            return _body_bytes(body["string"], where)
        kind = body.get("type")
        content = body.get("content")
        if kind == "json":
            return json.dumps(content).encode("utf-8")
        if kind == "text":
            if not isinstance(content, str):
                raise RecordingError(f"{where}: text body is not a string")
            return content.encode("utf-8")
        if kind == "base64":
            if not isinstance(content, str):
                raise RecordingError(f"{where}: base64 body is not a string")
            return base64.b64decode(content, validate=False)
    raise RecordingError(f"{where}: unreadable body {type(body).__name__}")


def _side_body(side: Mapping[str, Any], where: str) -> bytes | None:
    if "parsed_body" in side:
        return json.dumps(side["parsed_body"]).encode("utf-8")
    return _body_bytes(side.get("body"), where)


def _headers(raw: object, where: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise RecordingError(f"{where}: headers are not a mapping")
    out: list[tuple[str, str]] = []
    for name, values in raw.items():
        for value in values if isinstance(values, list) else [values]:
            out.append((str(name), str(value)))
    return tuple(out)


def _status(raw: object, where: str) -> int:
    if isinstance(raw, int):
        return raw
    if isinstance(raw, Mapping) and isinstance(raw.get("code"), int):
        return int(raw["code"])
    raise RecordingError(f"{where}: unreadable status {raw!r}")


def parse_cassette(data: bytes, name: str = "cassette") -> list[Exchange]:
    """Every interaction of a VCR cassette, in order."""
    doc = yaml.safe_load(data)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("interactions"), list):
        raise RecordingError(f"{name}: not a VCR cassette (no interactions list)")
    out: list[Exchange] = []
    for i, inter in enumerate(doc["interactions"]):
        where = f"{name}[{i}]"
        req = inter["request"]
        resp = inter["response"]
        body = _side_body(resp, where + ".response")
        out.append(
            Exchange(
                request=RecordedRequest(
                    # Some cassettes keep the client library's spelling ("post", pydantic-ai's
                    # Voyage recordings); an HTTP method goes over the wire upper-case.
                    method=str(req["method"]).upper(),
                    uri=str(req["uri"]),
                    body=_side_body(req, where + ".request"),
                ),
                response=RecordedResponse(
                    status=_status(resp["status"], where),
                    headers=_headers(resp.get("headers"), where),
                    frames=(body or b"",),
                ),
            )
        )
    return out


# -- vercel chunk fixtures and plain bodies --------------------------------------------------


def frame_chunks(data: bytes, framing: Framing, done_marker: bool) -> tuple[bytes, ...]:
    """One SSE frame per non-empty line; each line's bytes are kept as they are."""
    frames: list[bytes] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        if framing == "sse_event_data":
            event = json.loads(line).get("type")
            if not isinstance(event, str):
                raise RecordingError(f"chunk without a string type: {line[:80]!r}")
            frames.append(b"event: " + event.encode() + b"\ndata: " + line + b"\n\n")
        else:
            frames.append(b"data: " + line + b"\n\n")
    if done_marker:
        frames.append(b"data: [DONE]\n\n")
    return tuple(frames)


def chunk_events(data: bytes) -> list[Any]:
    """The JSON events of a chunks file (one per non-empty line)."""
    return [json.loads(line) for line in data.split(b"\n") if line.strip()]


def parse_capture(data: bytes, name: str = "capture") -> list[Exchange]:
    """Every call of a vercel/ai live capture, in order."""
    doc = json.loads(data)
    calls = doc.get("calls") if isinstance(doc, dict) else None
    if not isinstance(calls, list) or not calls:
        raise RecordingError(f"{name}: not a call capture (no calls list)")
    out: list[Exchange] = []
    for i, call in enumerate(calls):
        req, resp = call["request"], call["response"]
        req_body = req.get("body")
        out.append(
            Exchange(
                request=RecordedRequest(
                    method=str(req["method"]),
                    uri=str(req["url"]),
                    body=None if req_body is None else json.dumps(req_body).encode("utf-8"),
                ),
                response=RecordedResponse(
                    status=_status(resp["status"], f"{name}[{i}]"),
                    headers=_headers(resp.get("headers"), f"{name}[{i}]"),
                    frames=(json.dumps(resp.get("body")).encode("utf-8"),),
                ),
            )
        )
    return out


def exchanges(e: Entry) -> list[Exchange]:
    """The exchange(s) a manifest entry holds, ready to serve."""
    data = e.raw()
    if e.format == "vcr_yaml":
        return parse_cassette(data, e.path)
    if e.format == "call_capture":
        return parse_capture(data, e.path)
    if e.format == "chunks_txt":
        assert e.framing is not None
        chunk_events(data)  # every line must be JSON
        frames = frame_chunks(data, e.framing, e.done_marker)
        headers = (("Content-Type", "text/event-stream"),)
        return [Exchange(None, RecordedResponse(e.status, headers, frames))]
    json.loads(data)
    headers = (("Content-Type", "application/json"),)
    return [Exchange(None, RecordedResponse(e.status, headers, (data,)))]


# -- the server ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """What a client sent to the replay server."""

    method: str
    path_qs: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ReplayServer:
    """Serves the given responses in order, one per request, on 127.0.0.1 (a free port).

    A request beyond the last response gets a 599 with a plain-text reason (and is still
    recorded), so a client that retries more than the recording allows is visible to a test.
    Use as ``async with ReplayServer(responses) as server: ... server.url ...``.
    """

    responses: Sequence[RecordedResponse]
    received: list[ReceivedRequest] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _port: int = 0

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("ReplayServer is not started")
        return f"http://127.0.0.1:{self._port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        index = len(self.received)
        self.received.append(
            ReceivedRequest(request.method, request.path_qs, tuple(request.headers.items()), body)
        )
        if index >= len(self.responses):
            return web.Response(status=599, text=f"replay exhausted after {index} responses")
        rec = self.responses[index]
        resp = web.StreamResponse(status=rec.status)
        for name, value in rec.headers:
            if name.lower() not in _NOT_REPLAYED:
                resp.headers.add(name, value)
        if len(rec.frames) == 1:
            resp.content_length = len(rec.body)  # else chunked, as streaming servers send it
        await resp.prepare(request)
        for frame in rec.frames:
            await resp.write(frame)
        await resp.write_eof()
        return resp

    async def __aenter__(self) -> ReplayServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(runner.addresses[0][1])
        self._runner = runner
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# -- reading what a response says -----------------------------------------------------------


def decoded_body(response: RecordedResponse) -> bytes:
    """The body with its recorded Content-Encoding (gzip) undone."""
    encoding = next((v for n, v in response.headers if n.lower() == "content-encoding"), "")
    if encoding.strip().lower() == "gzip":
        return gzip.decompress(response.body)
    return response.body


def events(response: RecordedResponse) -> list[Any]:
    """The JSON objects a response carries: each SSE ``data:`` payload (``[DONE]`` and comment
    lines skipped), each element of a JSON-array stream, or the one JSON body."""
    text = decoded_body(response).decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")) and not stripped.startswith("data:"):
        doc = json.loads(text)
        return list(doc) if isinstance(doc, list) else [doc]
    out: list[Any] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [ln[5:].lstrip() for ln in block.split("\n") if ln.startswith("data:")]
        payload = "\n".join(data)
        if payload and payload != "[DONE]":
            out.append(json.loads(payload))
    return out


def string_values(value: object, key: str) -> list[str]:
    """Every string under ``key`` anywhere in decoded JSON, in document order (e.g. a
    recording's ``thoughtSignature``s, read without the adapter)."""
    out: list[str] = []

    def walk(v: object) -> None:
        if isinstance(v, dict):
            if isinstance(v.get(key), str):
                out.append(v[key])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    return out
