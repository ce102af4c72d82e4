"""Image and file URLs a caller names (``[server] media_urls``), over real sockets with the
official SDKs: the upstream fetches them, so behind a self-hosted upstream a URL into the
operator's network is refused (400 naming the field) before anything is sent."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import anthropic
import openai
import pytest

from llmrelay.errors import ConfigurationError, InvalidRequestError
from llmrelay.gateway.app import GatewaySettings
from llmrelay.gateway.media import check_media_url
from llmrelay.gateway.server import settings_from
from llmrelay.testing.fake import FakeUpstream

from .conftest import CLAUDE, GPT, Running, ant, oai, serving

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
INTERNAL = "http://10.0.0.5/admin"
METADATA = "https://169.254.169.254/latest/meta-data/"
PUBLIC = "https://images.example.com/cat.png"


@pytest.fixture
async def policy_gw(
    fake: FakeUpstream,
    point_at: Callable[[FakeUpstream], FakeUpstream],
    gateway_settings: GatewaySettings,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Running]:
    """A gateway with ``[server] media_urls`` set to the test's parameter."""
    point_at(fake)
    settings = replace(gateway_settings, media_urls=request.param)
    async with serving(settings, fake) as running:
        yield running


def _chat(url: str) -> Any:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


def _responses(url: str) -> Any:
    return [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": url, "detail": "auto"},
            ],
        }
    ]


def _anthropic(url: str, kind: str = "image") -> Any:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": kind, "source": {"type": "url", "url": url}},
            ],
        }
    ]


# --------------------------------------------------------------------------- the default


@pytest.mark.parametrize("url", [INTERNAL, METADATA, "file:///etc/passwd", "https://127.1/x"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_chat_image_url_into_the_network_is_400_naming_the_field(
    gw: Running, url: str, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        await oai(gw).chat.completions.create(model=GPT, messages=_chat(url), stream=stream)
    assert e.value.status_code == 400
    body: Any = e.value.body
    assert body["param"] == "messages[0].content[1].image_url.url"
    assert "messages[0].content[1].image_url.url" in body["message"]
    assert "data: URL" in body["message"]
    assert url not in body["message"]  # the caller's value is not echoed
    assert gw.fake.requests == []


async def test_a_public_https_image_and_a_data_url_are_forwarded(gw: Running) -> None:
    client = oai(gw)
    await client.chat.completions.create(model=GPT, messages=_chat(PUBLIC))
    await client.chat.completions.create(model=GPT, messages=_chat(PNG))
    sent = [r.body["messages"][0]["content"][1]["image_url"]["url"] for r in gw.fake.requests]
    assert sent == [PUBLIC, PNG]


async def test_a_responses_input_image_into_the_network_is_400_naming_the_field(
    gw: Running,
) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        await oai(gw).responses.create(model=GPT, input=_responses(METADATA))
    body: Any = e.value.body
    assert body["param"] == "input[0].content[1].image_url"
    assert "input[0].content[1].image_url" in body["message"]
    assert gw.fake.requests == []
    resp = await oai(gw).responses.create(model=GPT, input=_responses(PUBLIC))
    assert resp.status == "completed"
    (sent,) = gw.fake.requests
    assert sent.body["messages"][0]["content"][1]["image_url"]["url"] == PUBLIC


@pytest.mark.parametrize("kind", ["image", "document"])
async def test_an_anthropic_url_source_into_the_network_is_400_naming_the_field(
    gw: Running, kind: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as e:
        await ant(gw).messages.create(
            model=CLAUDE, max_tokens=10, messages=_anthropic("http://192.168.1.1/x", kind)
        )
    assert e.value.status_code == 400
    body: Any = e.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "messages[0].content[1].source.url" in body["error"]["message"]
    assert gw.fake.requests == []


async def test_an_anthropic_public_https_image_is_forwarded(gw: Running) -> None:
    await ant(gw).messages.create(model=CLAUDE, max_tokens=10, messages=_anthropic(PUBLIC))
    (sent,) = gw.fake.requests
    block = sent.body["messages"][0]["content"][1]
    assert block["source"] == {"type": "url", "url": PUBLIC}


# --------------------------------------------------------------------------- other policies


@pytest.mark.parametrize("policy_gw", ["none"], indirect=True)
async def test_none_takes_data_urls_only(policy_gw: Running) -> None:
    gw = policy_gw
    with pytest.raises(openai.BadRequestError) as e:
        await oai(gw).chat.completions.create(model=GPT, messages=_chat(PUBLIC))
    body: Any = e.value.body
    assert "only as data: URLs" in body["message"]
    with pytest.raises(anthropic.BadRequestError):
        await ant(gw).messages.create(model=CLAUDE, max_tokens=10, messages=_anthropic(PUBLIC))
    assert gw.fake.requests == []
    await oai(gw).chat.completions.create(model=GPT, messages=_chat(PNG))
    assert len(gw.fake.requests) == 1


@pytest.mark.parametrize("policy_gw", ["any"], indirect=True)
async def test_any_forwards_every_url(policy_gw: Running) -> None:
    gw = policy_gw
    await oai(gw).chat.completions.create(model=GPT, messages=_chat(INTERNAL))
    await oai(gw).responses.create(model=GPT, input=_responses(INTERNAL))
    await ant(gw).messages.create(model=CLAUDE, max_tokens=10, messages=_anthropic(INTERNAL))
    urls = [
        gw.fake.requests[0].body["messages"][0]["content"][1]["image_url"]["url"],
        gw.fake.requests[1].body["messages"][0]["content"][1]["image_url"]["url"],
        gw.fake.requests[2].body["messages"][0]["content"][1]["source"]["url"],
    ]
    assert urls == [INTERNAL] * 3


def test_the_setting_is_checked_and_https_by_default() -> None:
    assert GatewaySettings().media_urls == "https"
    assert settings_from({})[0].media_urls == "https"
    assert settings_from({"media_urls": "none"})[0].media_urls == "none"
    with pytest.raises(ConfigurationError, match="media_urls"):
        settings_from({"media_urls": "http"})


# --------------------------------------------------------------------------- host spellings


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a.png",
        "file:///etc/passwd",
        "gs://bucket/a.png",
        "ftp://example.com/a.png",
        "https://127.0.0.1/",
        "https://127.1/",
        "https://0x7f.0.0.1/",
        "https://0177.0.0.1/",
        "https://2130706433/",
        "https://10.1.2.3/",
        "https://172.16.0.1:8443/",
        "https://192.168.0.1/",
        "https://100.64.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://0.0.0.0/",
        "https://224.0.0.1/",
        "https://[::1]/",
        "https://[::]/",
        "https://[fc00::1]/",
        "https://[fe80::1%25eth0]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://[64:ff9b::a00:1]/",
        "https://[2002:a00:1::]/",
        "https://localhost/",
        "https://LOCALHOST./",
        "https://api.localhost/",
        "https://metadata.google.internal/",
        "https://printer.local/",
        "https://router.home.arpa/",
        "https://intranet/",
        "https://user:pw@example.com/",
        "https://example.com\\@127.0.0.1/",
        "https://example.com\t/",
        "https://%31%32%37.0.0.1/",
        "https://\uff11\uff12\uff17.0.0.1/",
        "https://example.com.127.1/",
        "https://1.2.3.4.5/",
        "https://example.com:99999/",
        "https:///a.png",
        "https:/example.com/a.png",
    ],
)
def test_https_refuses_every_spelling_of_a_local_or_odd_host(url: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        check_media_url(url, "https", "messages[0].content[0].image_url.url")
    assert e.value.body == {"param": "messages[0].content[0].image_url.url"}


@pytest.mark.parametrize(
    "url",
    [
        PUBLIC,
        "HTTPS://Images.Example.COM:443/a.png?x=1#y",
        "https://example.com./a.png",
        "https://xn--bcher-kva.example/a.png",
        "https://8.8.8.8/a.png",
        "https://[2001:4860:4860::8888]/a.png",
        PNG,
        "DATA:image/png;base64,AAAA",
    ],
)
def test_https_forwards_public_https_and_data_urls(url: str) -> None:
    check_media_url(url, "https", "x")
    check_media_url(url, "any", "x")
    if url.lower().startswith("data:"):
        check_media_url(url, "none", "x")
    else:
        with pytest.raises(InvalidRequestError):
            check_media_url(url, "none", "x")


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        [{"role": "user", "content": "hi", "name": "bob"}],
        _chat(PUBLIC),
        [{"role": "user", "content": [{"type": "image_url", "image_url": PNG}]}],
        [
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {}}]},
            {"role": "tool", "content": "42", "tool_call_id": "c"},
        ],
    ],
)
def test_the_chat_parser_reads_messages_as_normalize_messages_does(messages: Any) -> None:
    """Text-only messages take the parser's short way (no media to check): the same messages."""
    from llmrelay.gateway.openai_wire import parse_chat_request
    from llmrelay.types import normalize_messages

    call = parse_chat_request({"model": GPT, "messages": messages})
    assert call.messages == normalize_messages(messages)


def test_a_chat_image_url_given_as_a_string_is_checked_too() -> None:
    from llmrelay.gateway.openai_wire import parse_chat_request

    body = {
        "model": GPT,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": INTERNAL}]}],
    }
    with pytest.raises(InvalidRequestError) as e:
        parse_chat_request(body)
    assert e.value.body == {"param": "messages[0].content[0].image_url"}
    assert parse_chat_request(body, media="any").messages[0].content[0].url == INTERNAL  # type: ignore[index,union-attr]


# --------------------------------------------------------------------------- parser differentials


@pytest.mark.parametrize(
    "url",
    [
        # A leading zero is octal to inet_aton (glibc, curl, WHATWG: 8.0.0.1, 87.0.0.1) and
        # decimal to other parsers (Java's InetAddress before JDK 17.0.3, Go before 1.17,
        # Python's ipaddress before 3.9.5: 10.0.0.1, 127.0.0.1): refused, whichever is public.
        "https://010.0.0.1/",
        "https://0127.0.0.1/",
        "https://8.8.8.010/",
        "https://00000000000000000000000127.0.0.1/",
    ],
)
def test_https_refuses_an_ip_whose_reading_depends_on_the_parser(url: str) -> None:
    with pytest.raises(InvalidRequestError, match="leading zero"):
        check_media_url(url, "https", "x")


@pytest.mark.parametrize(
    "url",
    [
        # Embedded-IPv4 and special-purpose IPv6 ranges whose is_global answer changed across
        # Python patch releases (3.11.7 calls them global): refused on every version.
        "https://[::127.0.0.1]/",  # IPv4-compatible (deprecated), ::/96
        "https://[::a9fe:a9fe]/",
        "https://[::ffff:0:127.0.0.1]/",  # SIIT IPv4-translated, ::ffff:0:0:0/96
        "https://[::ffff:0:a00:1]/",
        "https://[64:ff9b:1::a00:1]/",  # local-use IPv4/IPv6 translation (RFC 8215)
        "https://[3fff::1]/",  # documentation (RFC 9637)
        "https://[5f00::1]/",  # SRv6 SIDs (RFC 9602)
    ],
)
def test_https_refuses_special_ipv6_ranges_on_every_python(url: str) -> None:
    with pytest.raises(InvalidRequestError, match="private or local"):
        check_media_url(url, "https", "x")


def test_https_refuses_a_zone_id_even_on_a_global_address() -> None:
    """The docs say a host with ``%`` is refused; a zone id (``%25eth0``, which WHATWG parsers
    reject and others pass to the socket) on a global IPv6 address was forwarded."""
    with pytest.raises(InvalidRequestError, match="zone"):
        check_media_url("https://[2607:f8b0::1%25eth0]/a.png", "https", "x")
    check_media_url("https://[2607:f8b0::1]/a.png", "https", "x")


@pytest.mark.parametrize("gw_url", ["https://[64:ff9b:1::a00:1]/x.png", "https://010.0.0.1/"])
async def test_a_refused_differential_url_sends_nothing(gw: Running, gw_url: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        await oai(gw).chat.completions.create(model=GPT, messages=_chat(gw_url), stream=True)
    assert e.value.body["param"] == "messages[0].content[1].image_url.url"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        await ant(gw).messages.create(model=CLAUDE, max_tokens=16, messages=_anthropic(gw_url))
    with pytest.raises(openai.BadRequestError):
        await oai(gw).responses.create(model=GPT, input=_responses(gw_url), stream=True)
    assert gw.fake.requests == []


async def test_a_refused_url_spends_none_of_the_keys_limits(gw: Running) -> None:
    key = await gw.key(rpm=1, budget_usd=1.0, budget_period="day")
    for url in (INTERNAL, METADATA, "https://010.0.0.1/"):
        with pytest.raises(openai.BadRequestError):
            await oai(gw, key).chat.completions.create(model=GPT, messages=_chat(url), stream=True)
        with pytest.raises(anthropic.BadRequestError):
            await ant(gw, key).messages.create(
                model=CLAUDE, max_tokens=16, messages=_anthropic(url)
            )
    assert gw.fake.requests == []
    ok = await oai(gw, key).chat.completions.create(model=GPT, messages=_chat(PNG))
    assert ok.choices[0].message.content
    with pytest.raises(openai.RateLimitError):  # the rpm of 1 is real: now it is spent
        await oai(gw, key).chat.completions.create(model=GPT, messages=_chat(PNG))


def test_a_host_longer_than_a_dns_name_is_refused_before_it_is_read() -> None:
    """A DNS name has at most 253 characters. A URL whose host is megabytes of labels took the
    host patterns about 2 s of CPU (holding the GIL) for one 4 MB body: refused by length first."""
    name = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters, a valid name
    check_media_url(f"https://{name}/a.png", "https", "x")
    check_media_url(f"https://{name}./a.png", "https", "x")
    for host in (name + "c", "a." * 2_000_000 + "com", "1." * 1000 + "1"):
        with pytest.raises(InvalidRequestError, match="longer than a DNS name"):
            check_media_url(f"https://{host}/a.png", "https", "x")
