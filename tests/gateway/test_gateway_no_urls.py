"""No upstream URL reaches a gateway caller, over real sockets: for every failure the fake
upstream (or a misconfigured base URL) can cause, the error body, an in-band stream error and
every header (the attempt trace included) name the model or the provider, never the base URL
the gateway calls."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay.errors import BadRequestError
from llmrelay.gateway import wire
from llmrelay.gateway.wire import http_error, no_urls
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


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("POST http:\\/\\/10.0.0.5:8080\\/v1 failed", "10.0.0.5"),  # JSON-escaped
        ('{"url":"https:\\/\\/api.internal\\/v1"}', "api.internal"),
        ("POST http:\\\\\\/\\\\\\/gw.corp\\\\\\/v1", "gw.corp"),  # escaped twice
        ("see http:\\u002f\\u002fgw.corp\\u002fv1", "gw.corp"),
        ("redirect=http%3A%2F%2Fhost.corp%2Fv1 refused", "host.corp"),  # percent-encoded
        ("next=https%253A%252F%252Fhost.corp%252Fv1", "host.corp"),  # twice
        ("upstream api.internal:8443 refused the call", "api.internal"),
        ("connect to localhost:1234 failed", "localhost"),
        ("no route to 10.1.2.3", "10.1.2.3"),
        ("no route to 10.1.2.3:8080.", "10.1.2.3"),
        ("reset by [::1]:8080", "::1"),
        ("reset by [fe80::1%eth0]:443", "fe80"),
        ("reset by [2001:db8::7]", "2001:db8"),
        ("host=vllm.svc.cluster.local%3A8000", "vllm.svc"),
    ],
)
def test_no_urls_hides_addresses_written_without_a_plain_scheme(text: str, hidden: str) -> None:
    out = no_urls(text)
    assert hidden not in out, out
    assert "[provider URL]" in out
    assert no_urls(text, "openai").count("[openai URL]") == out.count("[provider URL]")


@pytest.mark.parametrize(
    "text",
    [
        "the ratio 3:1 is not allowed",
        "retry at 12:30 or 12:30:45 UTC",
        "model gpt-4.1-mini is not available",
        "openai/gpt-4.1-mini does not support audio",
        "claude-3-5-sonnet@20240620 is retired",
        "llama3.1:8b and qwen2.5:14b are pulled",
        "anthropic.claude-3-haiku-20240307-v1:0 and amazon.titan-embed-text-v2:0",
        "ft:gpt-4o-mini:my-org::abc123 is fine-tuned",
        "models/gemini-1.5-pro:generateContent",
        "Python 3.12, version v1.2.3.4, $12.30 spent",
        "messages[1:2] has no content; max_tokens: 4096 is too large",
    ],
)
def test_no_urls_leaves_prose_times_and_model_names(text: str) -> None:
    assert no_urls(text) == text


# Only the characters that make up an address (and some around them): the quick check before
# the search never skips a text the search would change.
_PIECES = st.sampled_from(
    [*"aZ019.:/\\%-_[]@ \"'", "3A", "2F", "25", "u003a", "u002f", "localhost", "api.internal"]
)


@given(st.lists(_PIECES, max_size=24).map("".join))
def test_the_quick_check_never_skips_what_the_search_finds(text: str) -> None:
    assert no_urls(text) == wire._URL.sub("[provider URL]", text)


async def test_an_upstream_400_naming_its_address_does_not_show_it(gw: Running) -> None:
    url = gw.fake.url
    host = url.split("://", 1)[1]
    said = [
        f"POST {url.replace('/', chr(92) + '/')}/v1/chat/completions: bad",  # JSON-escaped
        f"redirect to {quote(url + '/v1', safe='')} refused",  # percent-encoded
        f"upstream {host} refused",  # bare host:port
        "upstream api.internal:8443, localhost:1234, 10.1.2.3 and [::1]:8080 refused",
    ]
    for path, model in (("/v1/chat/completions", GPT), ("/v1/messages", CLAUDE)):
        for stream in (False, True):
            for message in said:
                gw.fake.clear()
                gw.fake.push(Reply.error(400, message))
                code, raw, headers = await post(gw, path, _body(path, model, stream), _TRACE)
                assert code == 400, raw
                assert b"refused" in raw or b"bad" in raw  # the upstream's words are shown
                _no_url(gw, _shown(raw, headers), "api.internal", "localhost", "10.1.2.3", "::1")


def test_an_upstream_400_is_cleaned_before_it_is_cut() -> None:
    # The message shown is cut at 300 characters: an address cut in two is no longer an
    # address, so it is replaced first.
    for pad in range(280, 300):
        exc = BadRequestError("x" * pad + " at 10.20.30.40:8080/v1 and gw.corp:8443", status=400)
        err = http_error(exc)
        assert err.status == 400
        assert "10.20" not in err.message, err.message
        assert "gw.co" not in err.message, err.message
