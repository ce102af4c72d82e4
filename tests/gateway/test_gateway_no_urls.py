"""No upstream URL reaches a gateway caller, over real sockets: for every failure the fake
upstream (or a misconfigured base URL) can cause, the error body, an in-band stream error and
every header (the attempt trace included) name the model or the provider, never the base URL
the gateway calls."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from llmrelay.testing.fake import Reply

from .conftest import CLAUDE, GPT, Running, post

_TRACE = {"x-llmrelay-trace": "1"}


def _body(path: str, model: str, stream: bool) -> bytes:
    msgs = [{"role": "user", "content": "x"}]
    if path == "/v1/messages":
        return orjson.dumps({"model": model, "max_tokens": 50, "messages": msgs, "stream": stream})
    if path == "/v1/responses":
        return orjson.dumps({"model": model, "input": "x", "stream": stream})
    return orjson.dumps({"model": model, "messages": msgs, "stream": stream})


def _shown(raw: bytes, headers: Mapping[str, str]) -> str:
    return raw.decode() + "\n" + "\n".join(f"{k}: {v}" for k, v in headers.items())


def _no_url(gw: Running, shown: str, *more: str) -> None:
    host = gw.fake.url.split("://", 1)[1].rstrip("/")
    for needle in (host, *more):
        assert needle not in shown, (needle, shown)
    assert re.search(r"[A-Za-z]+://[^\s'\"]", shown) is None, shown  # no URL at all


_PATHS = ["/v1/chat/completions", "/v1/messages", "/v1/responses"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", _PATHS)
async def test_a_paused_deployment_is_named_by_its_model(
    gw: Running, path: str, stream: bool
) -> None:
    # The provider asks for a pause (429 with retry-after): the deployment is held back, and the
    # next call is refused by the gateway's own limiter, naming the deployment.
    gw.fake.push(*[Reply.error(429, "slow down", headers={"retry-after": "30"})] * 6)
    for _ in range(2):
        code, raw, headers = await post(gw, path, _body(path, GPT, stream), _TRACE)
        assert code == 429, raw
        _no_url(gw, _shown(raw, headers))
    assert b"openai/gpt-4.1-mini" in raw  # the second refusal: the paused deployment, by name


_FAILURES: list[tuple[str, Any]] = [
    ("server errors", lambda url: [Reply.error(500, f"boom at {url}/v1")] * 6),
    ("an HTML page", lambda url: [Reply.raw(f"<html>{url}</html>", content_type="text/html")] * 6),
    ("a redirect", lambda url: [Reply.raw("", status=302, headers={"location": url + "/x"})] * 6),
    ("a reset connection", lambda url: [Reply.reset()] * 6),
    ("a bad request naming the URL", lambda url: [Reply.error(400, f"POST {url}/v1: bad")]),
    ("a stream cut mid-way", lambda url: [Reply.cut_stream(after_chunks=2)] * 6),
    ("a stream error", lambda url: [Reply.stream_error(after_chunks=1, message=url)] * 6),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", _PATHS)
@pytest.mark.parametrize(("what", "replies"), _FAILURES, ids=[f[0] for f in _FAILURES])
async def test_upstream_failures_never_show_its_url(
    gw: Running, path: str, stream: bool, what: str, replies: Any
) -> None:
    for model in (GPT, CLAUDE):  # the OpenAI wire upstream, and Anthropic's
        gw.fake.clear()
        gw.fake.push(*replies(gw.fake.url))
        code, raw, headers = await post(gw, path, _body(path, model, stream), _TRACE)
        assert code >= 400 or b"error" in raw, (what, code, raw)
        _no_url(gw, _shown(raw, headers))


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:99999/v1",  # no such port
        "ftp://127.0.0.1:5/v1",  # not http
        "http://keeper:pw-canary@127.0.0.1:5/v1",  # credentials, and the gateway's own key
        "http://bad host:5/v1",
    ],
)
@pytest.mark.parametrize("path", _PATHS)
async def test_a_misconfigured_base_url_is_not_shown(
    gw: Running, monkeypatch: pytest.MonkeyPatch, path: str, base_url: str
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    code, raw, headers = await post(gw, path, _body(path, GPT, False), _TRACE)
    assert code >= 400, raw
    _no_url(gw, _shown(raw, headers), "127.0.0.1", "ftp://", "pw-canary", "bad host")
