"""What no shape tells from ordinary text, the gateway knows: its own upstreams and keys. An
upstream's error that names its address as a one-label host with a port (``vllm:8000``), a
bare IPv6 address (``fd00::1``) or a host name alone (``my-vllm.internal``), or that shows a
configured key with no known prefix masked (``Zq7mW2...``, ``Zq7mxxxxxxxxhJdR``), or another
deployment's key whole, reaches no caller -- not in the error body, an in-band stream error
or the ``x-llmrelay-trace`` reasons, plain or streamed, on either wire -- while the same
message's ``status:400``, ``llama3.1:8b`` and ``ft:gpt-4o-mini:org::abc123`` are shown as
they were written. Over real sockets: the gateway calls its upstream by the configured name,
which a stand-in resolver sends to the loopback fake."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay.core.trace import Attempt
from llmrelay.gateway.app import GatewaySettings
from llmrelay.gateway.known import KnownValues, known_values
from llmrelay.gateway.observe import trace_headers
from llmrelay.gateway.wire import shown
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.transport import pool as pool_module

from .conftest import ADMIN, CLAUDE, GPT, Running, post, serving

#: A provider key with no prefix any rule knows, and another deployment's (Mistral's).
_KEY = "Zq7mW2xKpLvNrTyBhJdR"
_OTHER = "Pq4nV8sLmRtYuIoPaSdF"
#: What an error may say beside an address or a key, and must still say.
_KEPT = ("status:400", "llama3.1:8b", "ft:gpt-4o-mini:org::abc123")
_TRACE = {"x-llmrelay-trace": "1"}


@dataclass(frozen=True)
class _Case:
    """How the gateway reaches its upstream (``host``, ``port`` of its base URL: None, the
    fake's own loopback URL), what the upstream's errors say, and what of it must not be
    shown."""

    host: str | None
    port: int | None
    said: str
    hidden: tuple[str, ...]


_CASES = {
    "one-label host and port": _Case(
        "vllm", 8000, "upstream vllm:8000 (VLLM:8000/v1) refused", ("vllm:8000", "VLLM:8000")
    ),
    "bare IPv6 address": _Case(
        "fd00::1",
        8000,
        "upstream fd00::1 port 8000 (FD00:0:0:0:0:0:0:1) refused",
        ("fd00:", "FD00:"),
    ),
    "host name without a port": _Case(
        "my-vllm.internal",
        None,
        "upstream my-vllm.internal refused (My-VLLM.Internal is down)",
        ("my-vllm", "My-VLLM"),
    ),
    "masked key without a known prefix": _Case(
        None,
        None,
        f"key {_KEY[:6]}... ({_KEY[:4]}xxxxxxxxxxxx{_KEY[-4:]}, {_KEY[:6]}\u2026) and "
        f"{_OTHER} refused",
        (_KEY[:4], _KEY[-4:], _OTHER[:8], _OTHER[-8:]),
    ),
}


def _said(case: _Case) -> str:
    return f"{case.said}: {', '.join(_KEPT)}"


def _base(case: _Case, fake: FakeUpstream, wire: str) -> str:
    if case.host is None:
        return fake.base_url_for(wire)
    host = f"[{case.host}]" if ":" in case.host else case.host
    netloc = host if case.port is None else f"{host}:{case.port}"
    return f"http://{netloc}" + ("" if wire == "anthropic" else "/v1")


@pytest.fixture(params=list(_CASES), ids=list(_CASES))
async def upstream(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[tuple[Running, _Case]]:
    """A gateway whose OpenAI and Anthropic deployments are the fake upstream, named as the
    case says, with ``_KEY`` their key and ``_OTHER`` Mistral's."""
    case = _CASES[request.param]
    async with FakeUpstream(api_key=_KEY) as fake:
        for provider in ("openai", "anthropic"):
            monkeypatch.setenv(f"{provider.upper()}_BASE_URL", _base(case, fake, provider))
            monkeypatch.setenv(f"{provider.upper()}_API_KEY", _KEY)
        monkeypatch.setenv("MISTRAL_API_KEY", _OTHER)

        async def resolve(loop: Any, host: str, port: int) -> Sequence[Any]:
            if host != case.host:
                raise OSError(f"{host} is not the test's upstream")  # never the network
            loopback = ("127.0.0.1", fake.port)
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", loopback)]

        if case.host is not None:
            monkeypatch.setattr(pool_module, "resolve", resolve)
        settings = GatewaySettings(
            host="127.0.0.1", port=0, key_store=str(tmp_path / "keys.db"), admin_key=ADMIN
        )
        async with serving(settings, fake) as gw:
            yield gw, case


def _body(model: str, stream: bool) -> bytes:
    msgs = [{"role": "user", "content": "x"}]
    return orjson.dumps({"model": model, "max_tokens": 50, "messages": msgs, "stream": stream})


def _all(raw: bytes, headers: Mapping[str, str]) -> str:
    return raw.decode() + "\n" + "\n".join(f"{k}: {v}" for k, v in headers.items())


def _hidden(case: _Case, shown: str) -> None:
    for needle in case.hidden:
        assert needle not in shown, (needle, shown)


_PATHS = [("/v1/chat/completions", GPT), ("/v1/messages", CLAUDE)]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_an_upstream_400_naming_its_address_or_key_shows_neither(
    upstream: tuple[Running, _Case], stream: bool
) -> None:
    gw, case = upstream
    for path, model in _PATHS:
        gw.fake.clear()
        gw.fake.push(Reply.error(400, _said(case)))
        code, raw, headers = await post(gw, path, _body(model, stream), _TRACE)
        assert code == 400, raw
        assert b"rejected the request" in raw  # the upstream's words are passed on
        _hidden(case, _all(raw, headers))
        for kept in _KEPT:  # as they were written
            assert kept in raw.decode(), (kept, raw)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_an_upstream_5xx_shows_nothing_of_its_message(
    upstream: tuple[Running, _Case], stream: bool
) -> None:
    # (A guard, true before the known values too: a 5xx is the gateway's own 502 "the upstream
    # provider failed", and an attempt's trace holds its error's type, not the upstream's text.)
    gw, case = upstream
    for path, model in _PATHS:
        gw.fake.clear()
        gw.fake.push(*[Reply.error(500, _said(case))] * 6)
        code, raw, headers = await post(gw, path, _body(model, stream), _TRACE)
        assert code == 502, raw
        assert "refused" not in _all(raw, headers), (raw, headers)
        _hidden(case, _all(raw, headers))


async def test_an_in_band_stream_error_naming_its_address_or_key_shows_neither(
    upstream: tuple[Running, _Case],
) -> None:
    # Anthropic's mid-stream invalid_request_error is a 400 the gateway passes on in band
    # (either wire), with the upstream's message; an overloaded_error's message is not shown.
    gw, case = upstream
    for path, _ in _PATHS:
        for kind in ("invalid_request_error", "overloaded_error"):
            gw.fake.clear()
            gw.fake.push(Reply.stream_error(after_chunks=1, message=_said(case), type=kind))
            code, raw, headers = await post(gw, path, _body(CLAUDE, True), _TRACE)
            assert code == 200, raw
            _hidden(case, _all(raw, headers))
            if kind == "invalid_request_error":
                assert b"rejected the request" in raw  # the in-band error, with its words
                for kept in _KEPT:
                    assert kept in raw.decode(), (kept, raw)


# --------------------------------------------------------------------------- the matcher


_KNOWN = KnownValues(
    [
        "http://vllm:8000/v1",
        "http://gpu_box:9000/v1",
        "http://[fd00::1]:8000/v1",
        "http://my-vllm.internal/v1",
        "https://user:Hk3pQ9wLzX@api.internal.corp:8443",
        "http://10.0.0.5",
    ],
    [_KEY, _OTHER],
)


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("connect to vllm:8000 failed", "vllm"),
        ("POST VLLM:9000/v1 failed", "VLLM"),  # any case, any port
        ("host=vllm%3A8000", "vllm"),
        ("gpu_box:9000 (GPU_BOX:9001) is down", "box"),
        ("no route to fd00::1", "fd00"),
        ("no route to fd00::1.", "fd00"),
        ("no route to fd00::1:8000", "fd00"),  # a port after it, unbracketed
        ("no route to FD00:0000:0000:0000:0000:0000:0000:0001", "FD00"),
        ("no route to fd00:0:0:0::1%eth0", "fd00"),
        ("my-vllm.internal refused", "my-vllm"),
        ("MY-VLLM.INTERNAL:443 refused", "MY-VLLM"),
        ("node-3.my-vllm.internal refused", "my-vllm"),  # a name under it shows it too
        ("see api.internal.corp/v1", "api.internal"),
        ("10.0.0.5 and ::ffff:10.0.0.5", "10.0.0.5"),
        ("userinfo Hk3pQ9wLzX refused", "Hk3pQ9wLzX"),  # the base URL's password
        (f"key {_KEY} refused", _KEY[:8]),
        (f"key {_KEY[:6]}... refused", _KEY[:4]),
        (f"key {_KEY[:5]}\u2026{_KEY[-3:]} refused", _KEY[:4]),
        (f"key ...{_KEY[-4:]} refused", _KEY[-4:]),
        (f"key {_KEY[:4]}xxxxxxxxxxxx{_KEY[-4:]} refused", _KEY[-4:]),
        (f"key XXXXXXXXXXXXXXXX{_KEY[-5:]}.", _KEY[-5:]),
        (f"key={_KEY[:8]}**** refused", _KEY[:4]),
        (f"'{_KEY[:4]}\u2022\u2022\u2022\u2022{_KEY[-4:]}'", _KEY[-4:]),
        (f"the other key {_OTHER} refused", _OTHER[:8]),
    ],
)
def test_known_values_are_hidden(text: str, hidden: str) -> None:
    out = _KNOWN.hide(text, "openai")
    assert hidden not in out, out
    assert "[openai URL]" in out or "[REDACTED]" in out, out


@pytest.mark.parametrize(
    "text",
    [
        "status:400, llama3.1:8b, qwen2:7b and ft:gpt-4o-mini:my-org::abc123 are fine",
        "vllm and ollama are providers; vllm/llama-3 is a model; vllm:latest is a tag",
        "gpu_box is down; my_gpu_box:9000 is another host",
        "fd00::2 and 2001:db8::5 are other hosts; my-vllm.internals is another name",
        "10.0.0.50 and 110.0.0.5 are other addresses",
        f"a word like {_KEY[:3]}... or {_KEY[-3:]}; a longer word X{_KEY[:6]}... is not the key",
        "anthropic.claude-3-haiku-20240307-v1:0, models/gemini-1.5-pro:generateContent",
        "12:30, 3:1, messages[1:2]; sk-learn; ... and *** and xxx",
    ],
)
def test_what_only_looks_like_a_known_value_is_left(text: str) -> None:
    assert _KNOWN.hide(text, "openai") == text
    assert shown(text, "openai", _KNOWN) == shown(text, "openai")


_MASKS = st.sampled_from(["*", "\u2022", "\u2026", ".", "x", "X"]).flatmap(
    lambda c: st.integers(1 if c in "*\u2022\u2026" else 2 if c == "." else 3, 24).map(
        lambda n: c * n
    )
)
_AROUND = st.sampled_from(["", " ", "key ", "key=", ": ", "'", '"', "(", "Bearer "])
_AFTER = st.sampled_from(["", " ", ".", ",", "'", ")", " refused", ". Try again"])


@given(
    head=st.integers(0, 10),
    tail=st.integers(0, 10),
    mask=_MASKS,
    before=_AROUND,
    after=_AFTER,
    key=st.sampled_from([_KEY, _OTHER]),
)
def test_every_masked_form_of_a_known_key_is_hidden(
    head: int, tail: int, mask: str, before: str, after: str, key: str
) -> None:
    if max(head, tail) < 4:
        head = 4
    text = f"{before}{key[:head]}{mask}{key[len(key) - tail :] if tail else ''}{after}"
    out = _KNOWN.hide(text)
    assert "[REDACTED]" in out, (text, out)
    for shown_part in (key[:head], key[len(key) - tail :]):
        if len(shown_part) >= 4:
            assert shown_part not in out, (text, out)
    assert out.startswith(before), (text, out)
    assert out.endswith(after.lstrip(".")), (text, out)


_V6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@given(
    ip=_V6,
    spelling=st.sampled_from(["compressed", "exploded", "upper", "port", "zone"]),
    known=st.booleans(),
)
def test_any_spelling_of_a_known_ipv6_address_and_no_other_is_hidden(
    ip: ipaddress.IPv6Address, spelling: str, known: bool
) -> None:
    matcher = KnownValues([f"http://[{ip}]:8000/v1"] if known else ["http://[fd00::1]/v1"])
    written = {
        "compressed": ip.compressed,
        "exploded": ip.exploded,
        "upper": ip.compressed.upper(),
        "port": f"{ip.compressed}:8000",
        "zone": f"{ip.compressed}%eth0",
    }[spelling]
    text = f"no route to {written}, status:400 (ft:gpt-4o-mini:org::abc123)."
    out = matcher.hide(text)
    if known or ip == ipaddress.IPv6Address("fd00::1"):
        assert out == "no route to [provider URL], status:400 (ft:gpt-4o-mini:org::abc123).", out
    else:
        assert out == text


def test_the_trace_shows_no_known_value() -> None:
    said = f"proxy: vllm:8000 and fd00::1 refused key {_KEY[:6]}...; status:400"
    attempt = Attempt("openai/gpt-4.1-mini", "error", error="BadRequestError", reason=said)
    value = trace_headers(_TRACE, [attempt], _KNOWN)["x-llmrelay-trace"]
    assert orjson.loads(value)[0]["reason"] == (
        "proxy: [provider URL] and [provider URL] refused key [REDACTED]; status:400"
    )


def test_known_values_come_from_the_configuration_and_no_key_is_in_its_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://my-vllm.internal:8000/v1")
    monkeypatch.setenv("AZURE_OPENAI_BASE_URL", "https://res-1.openai.azure.com/openai/v1")
    monkeypatch.setenv("OPENAI_API_KEY", _KEY)
    monkeypatch.setenv("GOOGLE_API_KEY", _OTHER)
    known = known_values()
    for key in (_KEY, _OTHER):
        assert key not in repr(known), repr(known)
    out = known.hide(f"my-vllm.internal, res-1.openai.azure.com, {_KEY[:6]}..., {_OTHER}")
    assert out == "[provider URL], [provider URL], [REDACTED], [REDACTED]", out
    # The public APIs' own hosts are not secrets: left as written.
    assert known.hide("api.anthropic.com:443") == "api.anthropic.com:443"
