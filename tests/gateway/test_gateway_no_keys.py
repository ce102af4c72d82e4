"""No provider key reaches a gateway caller, whole or masked: an upstream's 400 may echo the key
it was sent (OpenAI: "Incorrect API key provided: sk-proj-****abcd"; Gemini's key; a proxy
echoing the ``Authorization`` header), and that text is what the gateway passes on -- in the
error body, plain or streamed, in an in-band stream error -- so every credential in it is
``[REDACTED]``: a token with a key's prefix, a masked run, a header's value, and the configured
key's own last characters after a mask, whatever its prefix. Nor is the upstream's request id
shown in an in-band error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay.core.trace import Attempt
from llmrelay.gateway import wire
from llmrelay.gateway.app import GatewaySettings
from llmrelay.gateway.observe import trace_headers
from llmrelay.gateway.wire import no_keys, shown
from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY
from .conftest import ADMIN, CLAUDE, GPT, Running, post, serving

_PATHS = [("/v1/chat/completions", GPT), ("/v1/messages", CLAUDE)]
_AIZA = "AIzaSyD7ex4mpleK3yThatIsLong3nough01234"


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Incorrect API key provided: sk-proj-********************abcd.", "abcd"),
        ("Incorrect API key provided: sk-ant-api03-****WXYZ. See the docs.", "WXYZ"),
        (f"API key not valid: {_AIZA}", "SyD7ex4"),
        ("API key not valid: AIza************************0123", "0123"),
        ("bad header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.Zm9vYmFy", "eyJhbGci"),
        ("bad header authorization: basic dXNlcjpwYXNzd29yZDEy", "dXNlcjpw"),
        ('{"x-api-key": "4f9a1c2e8b7d6e5f"}', "4f9a1c2e"),
        ("header api-key: 0123456789abcdef refused", "0123456789"),
        ("api_key=abcdef1234567890 and x-goog-api-key=Zm9v1234567890", "1234567890"),
        ("?key=Qw3rTy1234567890 is invalid", "Qw3rTy"),
        ("xai-AbCdEf0123456789 is not a valid key", "AbCdEf"),
        ("gsk_0123456789abcdefghij and pplx-0123456789abcdef", "0123456789"),
        ("the key k7Q2********rT6y is revoked", "rT6y"),
        ("the key sk-abc...wxyz is revoked", "wxyz"),
        ("the key sk-\u2026wxyz is revoked", "wxyz"),
        ("token \u2022\u2022\u2022\u2022\u2022\u20225678 expired", "5678"),
    ],
)
def test_no_keys_redacts_keys_whole_or_masked(text: str, hidden: str) -> None:
    out = no_keys(text)
    assert hidden not in out, out
    assert "[REDACTED]" in out


@pytest.mark.parametrize(
    "text",
    [
        "sk-learn and a key-value store; basic auth failed; task-runner",
        "the api key: missing; pass it as 'Authorization: Bearer ...'",
        "API key not valid. Please pass a valid API key.",
        "the day budget of $5 for tag:vkey=key_0123456789abcdef would be exceeded",
        "openai/gpt-4.1-mini, claude-3-5-sonnet@20240620, xai/grok-4, xai-grok",
        "max_tokens: 4096 is too large; *** is a rule",
        "the upstream provider rejected the request: invalid temperature 3.5",
    ],
)
def test_no_keys_leaves_prose_ids_and_model_names(text: str) -> None:
    assert no_keys(text) == text
    assert shown(text) == text


# Only the characters that make up a credential (and some around them): the quick check before
# the search never skips a text the search would change.
_PIECES = st.sampled_from(
    [
        *"aZ019.:=-_* \"'",
        *("sk-", "sk_", "pk_", "AIza", "key", "KEY", "Bearer ", "Basic ", "token", "x-api-key"),
        *("authorization", "\u2026", "\u2022\u2022\u2022", "****"),
    ]
)


@given(st.lists(_PIECES, max_size=24).map("".join))
def test_the_quick_check_never_skips_what_the_search_finds(text: str) -> None:
    assert no_keys(text) == wire._KEY.sub(wire._key_shown, text)


def test_an_attempts_reason_shows_no_key() -> None:
    said = (
        "rate limit: the proxy refused Bearer sk-abc1234567890 (key ...wxyz1234) at 10.0.0.5:6379"
    )
    attempt = Attempt("openai/gpt-4.1-mini", "skipped", error="RateLimitedError", reason=said)
    value = trace_headers({"x-llmrelay-trace": "1"}, [attempt])["x-llmrelay-trace"]
    for hidden in ("abc1234567890", "10.0.0.5"):
        assert hidden not in value, value
    assert orjson.loads(value)[0]["reason"].startswith(
        "rate limit: the proxy refused Bearer [REDACTED]"
    )


def _body(path: str, model: str, stream: bool) -> bytes:
    msgs = [{"role": "user", "content": "x"}]
    return orjson.dumps({"model": model, "max_tokens": 50, "messages": msgs, "stream": stream})


def _shown(raw: bytes, headers: Mapping[str, str]) -> str:
    return raw.decode() + "\n" + "\n".join(f"{k}: {v}" for k, v in headers.items())


def _no_key(shown: str, *secrets: str) -> None:
    for s in secrets:
        assert s not in shown, (s, shown)
    assert "[REDACTED]" in shown, shown


#: What upstreams echo in a 400 (the gateway's key is the canary key), and what of it must not
#: be shown.
_ECHOED = [
    (
        "Incorrect API key provided: sk-proj-********************abcd. You can find your API "
        "key at https://platform.openai.com/account/api-keys.",
        "*****abcd",
    ),
    (f"API key not valid. Please pass a valid API key: {_AIZA}", _AIZA[4:]),
    (
        f"proxy: bad header Authorization: Bearer {CANARY_KEY[:10]}...{CANARY_KEY[-4:]}",
        CANARY_KEY[:10],
    ),
    (f"the key ending in ...{CANARY_KEY[-8:]} is not valid", CANARY_KEY[-8:]),
    (f"x-api-key: {CANARY_KEY}", CANARY_KEY),
]


@pytest.mark.parametrize(("said", "secret"), _ECHOED, ids=range(len(_ECHOED)))
async def test_an_upstream_400_echoing_a_key_does_not_show_it(
    gw: Running, said: str, secret: str
) -> None:
    for path, model in _PATHS:
        for stream in (False, True):
            gw.fake.clear()
            gw.fake.push(Reply.error(400, said))
            code, raw, headers = await post(
                gw, path, _body(path, model, stream), {"x-llmrelay-trace": "1"}
            )
            assert code == 400, raw
            assert b"rejected the request" in raw  # the upstream's words are passed on
            _no_key(_shown(raw, headers), secret)


@pytest.mark.parametrize(("said", "secret"), _ECHOED, ids=range(len(_ECHOED)))
async def test_an_in_band_stream_error_echoing_a_key_does_not_show_it(
    gw: Running, said: str, secret: str
) -> None:
    # Anthropic's mid-stream invalid_request_error is a 400 the gateway passes on in band
    # (either wire), with the upstream's message.
    for path, _ in _PATHS:
        gw.fake.clear()
        gw.fake.push(Reply.stream_error(after_chunks=1, message=said, type="invalid_request_error"))
        code, raw, headers = await post(gw, path, _body(path, CLAUDE, True))
        assert code == 200, raw
        assert b"rejected the request" in raw  # the in-band error, with the upstream's words
        _no_key(_shown(raw, headers), secret)


async def test_an_in_band_stream_error_does_not_show_the_upstreams_request_id(
    gw: Running,
) -> None:
    # The engine's message for an error after output was sent holds the upstream error's
    # ``str()``: "... (status 400, request id req_fake_000001)".
    for path, _ in _PATHS:
        gw.fake.clear()
        gw.fake.push(Reply.stream_error(after_chunks=1, message="no", type="invalid_request_error"))
        code, raw, _ = await post(gw, path, _body(path, CLAUDE, True))
        assert code == 200, raw
        assert b"rejected the request" in raw
        assert b"req_fake" not in raw, raw
        assert b"(status 400)" in raw, raw


#: A provider key with no prefix any rule knows: only its own last characters find it masked.
_PLAIN = "Zq7mW2xKpLvNrTyBhJdR"


@pytest.fixture
def plain_key(monkeypatch: pytest.MonkeyPatch, keys: str) -> str:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(var, _PLAIN)
    return _PLAIN


async def test_the_configured_keys_last_characters_after_a_mask_are_not_shown(
    plain_key: str,
    point_at: Callable[[FakeUpstream], FakeUpstream],
    tmp_path: Path,
) -> None:
    settings = GatewaySettings(
        host="127.0.0.1", port=0, key_store=str(tmp_path / "keys.db"), admin_key=ADMIN
    )
    echoed = [
        f"Incorrect API key provided: ...{plain_key[-4:]}",
        f"Incorrect API key provided: {plain_key[:6]}\u2026{plain_key[-6:]}",
        f"Incorrect API key provided: {plain_key[:4]}****{plain_key[-4:]}",
        f"Incorrect API key provided: {plain_key}",
    ]
    async with FakeUpstream(api_key=plain_key) as fake, serving(settings, point_at(fake)) as gw:
        for path, model in _PATHS:
            for said in echoed:
                fake.clear()
                fake.push(Reply.error(400, said))
                code, raw, headers = await post(gw, path, _body(path, model, False))
                assert code == 400, raw
                assert b"Incorrect API key provided" in raw
                _no_key(_shown(raw, headers), plain_key[-4:], plain_key[:4])
