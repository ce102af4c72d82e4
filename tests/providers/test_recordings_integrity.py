"""The recorded real-provider exchanges: intact, as described, and served back byte-exact.

Every manifest entry must exist with the sha256 and length recorded from its source, parse in
its declared format, show what its tags claim (checked on the decoded events, so a wrong tag
fails), and come back over a real socket from the replay server with the same status,
content type and bytes. The harness itself is checked to refuse a tampered file and to answer
a request beyond the recording with a visible 599.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ..recordings.replay import (
    MANIFEST,
    Entry,
    Exchange,
    RecordedResponse,
    RecordingError,
    ReplayServer,
    chunk_events,
    decoded_body,
    events,
    exchanges,
    load_manifest,
    parse_cassette,
)

ENTRIES = load_manifest()
IDS = [e.id for e in ENTRIES]


def _walk(obj: Any) -> list[Any]:
    """Every dict and list inside ``obj`` (itself included)."""
    out: list[Any] = [obj]
    if isinstance(obj, dict):
        for v in obj.values():
            out.extend(_walk(v))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_walk(v))
    return out


def _dicts(evs: list[Any]) -> list[dict[str, Any]]:
    return [d for ev in evs for d in _walk(ev) if isinstance(d, dict)]


def _has_key(evs: list[Any], key: str, pred: Callable[[Any], bool] = bool) -> bool:
    return any(key in d and pred(d[key]) for d in _dicts(evs))


# What a tag claims, as a check on the events of the recording's responses (and its status).
TAG_CHECKS: dict[str, Callable[[list[Any], list[int]], bool]] = {
    "refusal": lambda e, s: (
        _has_key(e, "stop_reason", lambda v: v == "refusal")
        or _has_key(e, "refusal", lambda v: isinstance(v, str) and v != "")
    ),
    "stop_details": lambda e, s: _has_key(e, "stop_details", lambda v: isinstance(v, dict)),
    "stop_details_null": lambda e, s: any(
        "stop_details" in d and d["stop_details"] is None for d in _dicts(e)
    ),
    "azure_prompt_filter": lambda e, s: _has_key(e, "prompt_filter_results"),
    "empty_id_model_first_chunk": lambda e, s: e[0].get("id") == "" and e[0].get("model") == "",
    "usage_only_chunk": lambda e, s: any(
        ev.get("choices") == [] and isinstance(ev.get("usage"), dict) for ev in e
    ),
    "inband_error": lambda e, s: (
        _has_key(e, "error", lambda v: isinstance(v, dict))
        or any(ev.get("type") == "error" for ev in e)
    ),
    "reasoning": lambda e, s: (
        _has_key(e, "reasoning", lambda v: isinstance(v, str) and v != "")
        or _has_key(e, "reasoning_content", lambda v: isinstance(v, str) and v != "")
    ),
    "reasoning_details": lambda e, s: _has_key(e, "reasoning_details"),
    "thinking": lambda e, s: any(
        d.get("type") in ("thinking", "redacted_thinking", "thinking_delta") for d in _dicts(e)
    ),
    "thinking_signature": lambda e, s: _has_key(e, "signature"),
    "signature_delta": lambda e, s: any(d.get("type") == "signature_delta" for d in _dicts(e)),
    "thinking_delta": lambda e, s: any(d.get("type") == "thinking_delta" for d in _dicts(e)),
    "redacted_thinking": lambda e, s: any(
        d.get("type") == "redacted_thinking" and d.get("data") for d in _dicts(e)
    ),
    "thought_signature": lambda e, s: _has_key(e, "thoughtSignature"),
    "thought_part": lambda e, s: _has_key(e, "thought", lambda v: v is True),
    "blocked_prompt": lambda e, s: _has_key(e, "blockReason"),
    "safety_finish": lambda e, s: _has_key(
        e, "finishReason", lambda v: v in ("SAFETY", "RECITATION", "PROHIBITED_CONTENT")
    ),
    "reasoning_summary": lambda e, s: any(d.get("type") == "summary_text" for d in _dicts(e)),
    "encrypted_reasoning": lambda e, s: _has_key(e, "encrypted_content"),
    "model_armor_finish": lambda e, s: _has_key(e, "finishReason", lambda v: v == "MODEL_ARMOR"),
    "tool_call": lambda e, s: any(
        d.get("type") in ("tool_use", "function_call") or "functionCall" in d or "tool_calls" in d
        for d in _dicts(e)
    ),
    "tool_call_stream": lambda e, s: any(
        d.get("type") == "tool_use"
        or "functionCall" in d
        or "tool_calls" in d
        or d.get("type") == "response.function_call_arguments.delta"
        for d in _dicts(e)
    ),
    "repeated_tool_name": lambda e, s: (
        sum(
            1
            for d in _dicts(e)
            if isinstance(d.get("function"), dict) and d["function"].get("name")
        )
        > 1
    ),
    "function_call_id": lambda e, s: any(
        isinstance(d.get("functionCall"), dict) and d["functionCall"].get("id") for d in _dicts(e)
    ),
    "usage_cached_tokens": lambda e, s: _has_key(e, "cached_tokens", lambda v: isinstance(v, int)),
    "cache_write_tokens": lambda e, s: _has_key(
        e, "cache_write_tokens", lambda v: isinstance(v, int)
    ),
    "cache_creation": lambda e, s: _has_key(
        e, "cache_creation_input_tokens", lambda v: isinstance(v, int) and v > 0
    ),
    "cache_read": lambda e, s: _has_key(
        e, "cache_read_input_tokens", lambda v: isinstance(v, int) and v > 0
    ),
    "request_id": lambda e, s: _has_key(e, "request_id"),
    "error_metadata_raw": lambda e, s: any(
        isinstance(d.get("metadata"), dict) and d["metadata"].get("raw") for d in _dicts(e)
    ),
    "response_failed": lambda e, s: any(ev.get("type") == "response.failed" for ev in e),
    "message_before_call": lambda e, s: any(
        isinstance(d.get("output"), list)
        and "function_call"
        in (kinds := [i.get("type") for i in d["output"] if isinstance(i, dict)])
        and "message" in kinds[: kinds.index("function_call")]
        for d in _dicts(e)
    ),
    "embedding": lambda e, s: _has_key(e, "embedding") or _has_key(e, "embeddings"),
    "obfuscation": lambda e, s: any(isinstance(ev.get("obfuscation"), str) for ev in e),
    # A chunk of the same stream after its usage-only chunk (one that says ``usage: null``).
    "chunk_after_usage": lambda e, s: any(
        ev.get("choices") == []
        and isinstance(ev.get("usage"), dict)
        and any(
            later.get("id") == ev.get("id") and later.get("usage", 0) is None
            for later in e[i + 1 :]
        )
        for i, ev in enumerate(e)
    ),
    "moderation": lambda e, s: _has_key(e, "moderation", lambda v: isinstance(v, dict)),
}
for _code in (400, 401, 403, 404, 429, 500, 503, 529):
    TAG_CHECKS[f"error_{_code}"] = lambda e, s, c=_code: c in s  # type: ignore[misc]


def _responses(e: Entry) -> tuple[list[Exchange], list[Exchange]]:
    """All exchanges, and the ones the entry says matter."""
    every = exchanges(e)
    chosen = [every[i] for i in e.interactions] if e.interactions else every
    return every, chosen


@pytest.mark.parametrize("e", ENTRIES, ids=IDS)
def test_file_is_intact_and_parses_as_declared(e: Entry) -> None:
    data = e.raw()  # raises on a sha256 mismatch
    assert len(data.decode("utf-8")) == e.source_chars
    every, chosen = _responses(e)
    assert chosen
    assert all(0 <= i < len(every) for i in e.interactions)
    if e.format == "chunks_txt":
        lines = [ln for ln in data.split(b"\n") if ln.strip()]
        assert len(chunk_events(data)) == len(lines) > 0
    if e.format in ("vcr_yaml", "call_capture"):
        for ex in every:
            assert ex.request is not None
            assert ex.request.method in {"GET", "POST"}
            assert ex.request.uri.startswith("https://")


@pytest.mark.parametrize("e", ENTRIES, ids=IDS)
def test_tags_are_true_of_the_recording(e: Entry) -> None:
    _, chosen = _responses(e)
    evs = [ev for ex in chosen for ev in events(ex.response)]
    statuses = [ex.response.status for ex in chosen]
    assert evs, "a recording with no JSON events"
    checked = [t for t in e.tags if t in TAG_CHECKS]
    for tag in checked:
        assert TAG_CHECKS[tag](evs, statuses), f"{e.id}: tag {tag!r} is not shown by the recording"
    if "request_id_header" in e.tags:
        names = {n.lower() for ex in chosen for n, _ in ex.response.headers}
        assert names & {"request-id", "x-request-id"}, f"{e.id}: no request id header"
    if "sampling_params_dropped" in e.tags:
        for ex in chosen:
            assert ex.request is not None
            assert ex.request.body is not None
            sent = json.loads(ex.request.body)
            assert not {"temperature", "top_p", "top_k"} & set(sent), f"{e.id}: sampling sent"
    if e.streamed:
        assert len(evs) > 1 or e.format == "chunks_txt" or "json_array_stream" in e.tags


@pytest.mark.parametrize("e", ENTRIES, ids=IDS)
async def test_replayed_byte_exact_over_a_socket(e: Entry) -> None:
    every, _ = _responses(e)
    async with (
        ReplayServer([ex.response for ex in every]) as server,
        aiohttp.ClientSession(auto_decompress=False) as session,
    ):
        for ex in every:
            body = ex.request.body if ex.request and ex.request.body is not None else b"{}"
            method = ex.request.method if ex.request else "POST"
            async with session.request(method, server.url + "/v1/replay", data=body) as resp:
                got = await resp.read()
                assert resp.status == ex.response.status
                assert resp.headers.get("Content-Type") == ex.response.content_type
                assert got == ex.response.body
            assert server.received[-1].body == body
            assert server.received[-1].method == method
    assert len(server.received) == len(every)


def _raw_vcr_body(e: Entry) -> bool:
    """Whether the cassette keeps response bodies as sent (not re-serialized from JSON)."""
    text = e.raw().decode("utf-8")
    return e.format == "vcr_yaml" and "parsed_body:" not in text and "type: json" not in text


@pytest.mark.parametrize("e", [e for e in ENTRIES if _raw_vcr_body(e)], ids=lambda e: e.id)
def test_recorded_content_length_matches_the_kept_body(e: Entry) -> None:
    """Where the recorded response says how long it was, the kept body has exactly that length
    (or, gzip-encoded, still inflates to JSON): a check on the copy that does not depend on this
    repository's own bookkeeping."""
    checked = 0
    for ex in exchanges(e):
        lengths = [v for n, v in ex.response.headers if n.lower() == "content-length"]
        if lengths:
            assert len(ex.response.body) == int(lengths[0])
            checked += 1
        elif "gzip_body" in e.tags:
            assert json.loads(decoded_body(ex.response))
            checked += 1
    if "content_length_unrecorded" not in e.tags:
        assert checked, f"{e.id}: nothing to check the kept body against"


@pytest.mark.parametrize("e", [e for e in ENTRIES if e.format == "chunks_txt"], ids=lambda e: e.id)
def test_framing_keeps_every_line_byte_for_byte(e: Entry) -> None:
    data = e.raw()
    (ex,) = exchanges(e)
    body = ex.response.body
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    payloads = [ln[len(b"data: ") :] for ln in body.split(b"\n") if ln.startswith(b"data: ")]
    if e.done_marker:
        assert payloads[-1] == b"[DONE]"
        payloads = payloads[:-1]
    assert payloads == lines
    if e.framing == "sse_event_data":
        names = [ln[len(b"event: ") :] for ln in body.split(b"\n") if ln.startswith(b"event: ")]
        assert [n.decode() for n in names] == [json.loads(ln)["type"] for ln in lines]


def test_coverage_of_the_set() -> None:
    wires = Counter(e.wire for e in ENTRIES)
    providers = Counter(e.provider for e in ENTRIES)
    assert len(ENTRIES) >= 60
    assert set(wires) == {
        "openai_chat",
        "openai_responses",
        "openai_embeddings",
        "anthropic_messages",
        "gemini",
        "gemini_embeddings",
        "voyage_embeddings",
        "cohere_embeddings",
    }
    assert {"openai", "anthropic", "gemini", "groq", "openrouter", "azure"} <= set(providers)
    assert any(e.streamed for e in ENTRIES)
    assert any(not e.streamed for e in ENTRIES)
    paths = {Path(e.path) for e in ENTRIES}
    on_disk = {
        p.relative_to(MANIFEST.parent)
        for p in MANIFEST.parent.rglob("*")
        if p.is_file() and p.suffix in {".yaml", ".json", ".txt"}
    }
    assert on_disk == paths, "every recording file is in the manifest and vice versa"


async def test_gzip_bodies_reach_a_decoding_client_as_json() -> None:
    gz = [e for e in ENTRIES if "gzip_body" in e.tags]
    assert gz
    for e in gz:
        every, _ = _responses(e)
        async with (
            ReplayServer([ex.response for ex in every]) as server,
            aiohttp.ClientSession() as session,
        ):
            for ex in every:
                async with session.post(server.url + "/x", data=b"{}") as resp:
                    assert json.loads(await resp.read()) == json.loads(decoded_body(ex.response))
                    assert gzip.decompress(ex.response.body)


def test_a_tampered_recording_is_refused(tmp_path: Path) -> None:
    e = ENTRIES[0]
    text = MANIFEST.read_text(encoding="utf-8").replace(e.sha256, "0" * 64, 1)
    bad = tmp_path / "MANIFEST.toml"
    bad.write_text(text, encoding="utf-8")
    (tampered,) = [x for x in load_manifest(bad) if x.id == e.id]
    with pytest.raises(RecordingError, match="sha256"):
        tampered.raw()


def test_manifest_errors_name_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "MANIFEST.toml"
    bad.write_text(
        '[[recording]]\nid = "x"\npath = "p"\nformat = "chunks_txt"\nwire = "openai_chat"\n',
        encoding="utf-8",
    )
    with pytest.raises(RecordingError, match="x: chunks_txt needs framing"):
        load_manifest(bad)
    bad.write_text('[[recording]]\nid = "y"\nformat = "mp3"\n', encoding="utf-8")
    with pytest.raises(RecordingError, match="y: format 'mp3'"):
        load_manifest(bad)


def test_a_cassette_without_interactions_is_refused() -> None:
    with pytest.raises(RecordingError, match="not a VCR cassette"):
        parse_cassette(b"version: 1\n", "empty.yaml")


async def test_a_request_beyond_the_recording_gets_599() -> None:
    one = RecordedResponse(200, (("Content-Type", "application/json"),), (b"{}",))
    async with ReplayServer([one]) as server, aiohttp.ClientSession() as session:
        async with session.post(server.url + "/a", data=b"1") as r1:
            assert r1.status == 200
        async with session.post(server.url + "/b?x=1", data=b"2") as r2:
            assert r2.status == 599
            assert "exhausted after 1" in await r2.text()
    assert [r.body for r in server.received] == [b"1", b"2"]
    assert server.received[1].path_qs == "/b?x=1"
