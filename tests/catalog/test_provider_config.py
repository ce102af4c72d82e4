"""``Provider(...)`` arguments and its per-model settings (seed 003's provider registry): bad
input is a ``ConfigurationError`` naming what is wrong -- never an ``OverflowError``, a
``TypeError`` or silent acceptance -- and a model's settings apply under either of its names."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay.catalog.provider_registry import Provider, ProviderRegistry
from llmrelay.errors import ConfigurationError, RateLimitedError
from llmrelay.testing.fake import FakeUpstream

from ..conftest import FakeClock

# --------------------------------------------------------------------------- typed errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate_limits": {"requests_per_minute": 10**400}}, "too large for a float"),
        ({"rate_limits": {"requests_per_minute": -1}}, "positive number"),
        ({"rate_limits": {"requests_per_minute": 0}}, "positive number"),
        ({"rate_limits": {"requests_per_minute": True}}, "positive number"),
        ({"rate_limits": {"requests_per_minute": math.nan}}, "positive number"),
        ({"rate_limits": {"requests_per_minute": math.inf}}, "positive number"),
        ({"rate_limits": {"requests_per_minute": "5"}}, "positive number"),
        ({"rate_limits": {"concurrent_requests": 1.5}}, "whole number"),
        ({"rate_limits": [("requests_per_minute", 1)]}, "mapping"),
        ({"headers": 5}, "headers must be a mapping"),
        ({"headers": {"a": 5}}, r"headers: 'a' must be a string"),
        ({"headers": {5: "a"}}, "not a valid header name"),
        ({"headers": {"X-A\r\nX-B": "v"}}, "not a valid header name"),
        ({"headers": {"X A": "v"}}, "not a valid header name"),
        ({"headers": {"": "v"}}, "not a valid header name"),
        ({"headers": {"X-A": "v\r\nX-Injected: 1"}}, "line break"),
        ({"headers": {"X-A": "v\n"}}, "line break"),
        ({"headers": {"X-A": "v\x00"}}, "NUL"),
        ({"api_key_env": 5}, "api_key_env must name an environment variable"),
        ({"api_key_env": ""}, "api_key_env"),
        ({"api_key_env": "MY KEY"}, "api_key_env"),
        ({"api_base": "https://"}, "names no host"),
        ({"api_base": "http://:8080/v1"}, "names no host"),
        ({"api_base": "ftp://x.example"}, r"http:// or https://"),
        ({"api_base": "file:///etc/passwd"}, r"http:// or https://"),
        ({"api_base": "javascript:alert(1)"}, r"http:// or https://"),
        ({"api_base": "api.example.com/v1"}, r"http:// or https://"),
        ({"api_base": "https://h.example:99999/v1"}, "not a valid URL"),
        ({"api_base": "https://h.example/v1\r\nX: 1"}, "control characters"),
        ({"api_base": 5}, "http"),
        ({"key_required": "no"}, "key_required must be True or False"),
        ({"key_required": 0}, "key_required must be True or False"),
        ({"display_name": 5}, "display_name"),
        ({"wire": ["gemini"]}, "wire must be one of"),
        ({"models": {5: {}}}, "each key must be a model name"),
        ({"models": {"m": 5}}, "mapping of settings"),
    ],
)
def test_bad_provider_arguments_are_typed_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Provider(**kwargs)


def test_header_values_and_url_passwords_are_never_shown() -> None:
    with pytest.raises(ConfigurationError) as ei:
        Provider(headers={"Authorization": "Bearer sk-canary\r\nX: 1"})
    assert "sk-canary" not in str(ei.value)
    p = Provider(
        api_base="https://user:pw-canary@api.example.com/v1?key=q-canary",
        headers={"Authorization": "Bearer sk-canary"},
    )
    assert "canary" not in repr(p)
    assert "Authorization" in repr(p)


def test_the_callers_dicts_changed_later_do_not_bypass_the_checks() -> None:
    limits: dict[str, Any] = {"requests_per_minute": 2}
    headers = {"X-A": "v"}
    p = Provider(rate_limits=limits, headers=headers)
    limits["requests_per_minute"] = -1
    headers["X-A"] = "v\r\nX-Injected: 1"
    assert p.rate_limits == {"requests_per_minute": 2}
    assert p.headers == {"X-A": "v"}


def test_good_arguments_construct() -> None:
    p = Provider(
        api_base="http://localhost:8080/v1",
        api_key_env="_LOCAL_KEY2",
        headers={"X-Title": "my app", "HTTP-Referer": "https://example.com"},
        rate_limits={"requests_per_second": 0.5, "concurrent_requests": 4},
        key_required=False,
        display_name="Local",
    )
    assert p.rate_limits == {"requests_per_second": 0.5, "concurrent_requests": 4}


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=4)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=3)
    ),
    max_leaves=8,
)
_limit_keys = st.sampled_from(
    ["requests_per_minute", "requests_per_second", "concurrent_requests", "tokens_per_day", "x"]
)
_urls = st.sampled_from(
    ["https://", "http://x", "https://a.example/v1", "ftp://a", "https://a:0", "https://[::1"]
) | st.text(max_size=20).map(lambda t: "https://" + t)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "api_base": _urls | _values,
            "rate_limits": st.dictionaries(_limit_keys, _values, max_size=3) | _values,
            "api_key_env": st.text(max_size=10) | _values,
            "wire": st.sampled_from(["openai_chat", "gemini", "soap"]) | _values,
            "display_name": _values,
            "headers": st.dictionaries(st.text(max_size=8) | _scalars, _values, max_size=3)
            | _values,
            "models": st.dictionaries(
                st.text(max_size=8) | st.integers(),
                st.fixed_dictionaries(
                    {}, optional={"rate_limits": st.dictionaries(_limit_keys, _values)}
                )
                | _values,
                max_size=2,
            )
            | _values,
            "key_required": _values,
        },
    )
)
def test_any_provider_arguments_construct_or_raise_a_configuration_error(
    kwargs: dict[str, Any],
) -> None:
    try:
        p = Provider(**kwargs)
    except ConfigurationError as exc:  # a ValueError too, as the house's errors are
        str(exc)
        return
    repr(p)  # what constructs can be shown
    if p.api_base:  # and makes a provider spec
        ProviderRegistry._spec("hypothesis-provider", p)


# --------------------------------------------------------------------------- per-model keys


def test_a_model_keyed_provider_slash_model_is_the_bare_models() -> None:
    providers = ProviderRegistry()
    providers.register_provider(
        "openai",
        Provider(models={"openai/gpt-4.1-nano": {"rate_limits": {"requests_per_minute": 1}}}),
    )
    assert providers.declared_limits("openai", "gpt-4.1-nano") == (
        {},
        {"requests_per_minute": 1},
    )
    assert providers.rate_limits("openai", "gpt-4.1-nano") == {"requests_per_minute": 1}
    assert providers.get_provider("openai").models.keys() == {"gpt-4.1-nano"}


def test_a_groq_model_whose_id_holds_a_slash_keeps_it() -> None:
    providers = ProviderRegistry()
    for key in ("openai/gpt-oss-20b", "groq/openai/gpt-oss-20b"):
        providers.register_provider(
            "groq", Provider(models={key: {"rate_limits": {"requests_per_minute": 7}}})
        )
        assert providers.rate_limits("groq", "openai/gpt-oss-20b") == {"requests_per_minute": 7}


@pytest.mark.parametrize(
    ("provider", "key"),
    [
        ("openai", "gpt-nonexistent-9"),
        ("openai", "openai/gpt-nonexistent-9"),
        ("openai", "anthropic/claude-sonnet-4-5"),  # another provider's model
        ("groq", "groq/gpt-4.1-nano"),
    ],
)
def test_a_key_naming_no_model_of_the_provider_is_refused(provider: str, key: str) -> None:
    with pytest.raises(ConfigurationError) as ei:
        ProviderRegistry().register_provider(
            provider, Provider(models={key: {"rate_limits": {"requests_per_minute": 1}}})
        )
    assert key in str(ei.value)
    assert "catalog knows no such model" in str(ei.value)


def test_two_keys_for_one_model_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="twice"):
        ProviderRegistry().register_provider(
            "openai",
            Provider(models={"gpt-4.1-nano": {}, "openai/gpt-4.1-nano": {}}),
        )


def test_a_new_providers_models_are_its_own_business() -> None:
    providers = ProviderRegistry()
    providers.register_provider(
        "acme-limits",
        Provider(
            api_base="https://api.acme.example/v1",
            models={"acme-limits/m-1": {"rate_limits": {"requests_per_minute": 1}}, "m-2": {}},
        ),
    )
    assert providers.get_provider("acme-limits").models.keys() == {"m-1", "m-2"}
    assert providers.rate_limits("acme-limits", "m-1") == {"requests_per_minute": 1}


async def test_a_provider_slash_model_limit_is_enforced(
    fake: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, ``{"openai/gpt-4.1-nano": ...}`` was stored and never applied."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    providers = ProviderRegistry()
    providers.register_provider(
        "openai",
        Provider(models={"openai/gpt-4.1-nano": {"rate_limits": {"requests_per_minute": 1}}}),
    )
    clock = FakeClock()
    limiter = llmrelay.RateLimiter({}, clock=clock)
    c = llmrelay.Client(providers=providers, limits=limiter)
    await c.achat("openai/gpt-4.1-nano", "1")
    with pytest.raises(RateLimitedError) as ei:
        await c.achat("openai/gpt-4.1-nano", "2")
    assert "gpt-4.1-nano" in ei.value.body["scope"]
    await c.achat("openai/gpt-4.1-mini", "another model")
    assert len(fake.requests) == 2


# --------------------------------------------------------------------------- registry arguments


class _HostileStr(str):
    """A string whose repr raises (a caller's value may be anything)."""

    def __repr__(self) -> str:
        raise RuntimeError("repr of a caller's value was called")


class _HostileInt(int):
    def __repr__(self) -> str:
        raise RuntimeError("repr of a caller's value was called")


_any = st.one_of(
    _values,
    st.sampled_from(
        [
            10**400,
            -(10**400),
            _HostileStr("x"),
            _HostileStr("supports_nothing"),
            _HostileInt(-5),
            object(),
            "no",
            "false",
        ]
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=_any | st.just("hyp-prov"),
    apply=_any | st.none(),
    query=_any,
    capability=_any | st.just("vision"),
    min_ctx=_any | st.none(),
    max_cost=_any | st.none(),
    provider=_any | st.none(),
)
def test_any_registry_arguments_give_typed_errors_and_change_nothing_shared(
    name: Any,
    apply: Any,
    query: Any,
    capability: Any,
    min_ctx: Any,
    max_cost: Any,
    provider: Any,
) -> None:
    """ProviderRegistry and get_models_by_capability take anything a caller passes: a typed
    error or an answer -- never AttributeError/TypeError/OverflowError or a caller's repr --
    and a bad call leaves the process-wide provider table as it was (``apply="no"`` is not a
    yes)."""
    from llmrelay.catalog.model_registry import LLMRegistry
    from llmrelay.errors import LLMRelayError
    from llmrelay.providers.table import PROVIDERS

    before = dict(PROVIDERS)
    reg = ProviderRegistry()
    try:
        reg.register_provider(name, Provider(api_base="https://hyp.example/v1"), apply=apply)
    except ConfigurationError as exc:
        str(exc)
        assert dict(PROVIDERS) == before  # refused: nothing process-wide changed
        assert reg.list_providers() == []
    else:
        assert (dict(PROVIDERS) != before) == (apply is True)  # only apply=True feeds it
    finally:
        PROVIDERS.clear()
        PROVIDERS.update(before)
    for call in (
        lambda: reg.get_provider(query),
        lambda: reg.rate_limits(query),
        lambda: reg.rate_limits("hyp-prov", query),
        lambda: reg.declared_limits(query, "m"),
        lambda: reg.get_provider_model_config("hyp-prov", query),
        lambda: query in reg,
    ):
        try:
            call()
        except LLMRelayError as exc:
            str(exc)
    catalog = LLMRegistry(catalog_files=())
    try:
        catalog.get_models_by_capability(
            capability, min_context_window=min_ctx, max_cost_per_1k=max_cost, provider=provider
        )
    except LLMRelayError as exc:
        str(exc)
    try:
        catalog.get(query)
    except LLMRelayError as exc:
        str(exc)


def test_registering_with_apply_other_than_a_bool_is_refused() -> None:
    from llmrelay.providers.table import PROVIDERS

    before = dict(PROVIDERS)
    for apply in ("no", "false", 0.0, 1, [True]):
        with pytest.raises(ConfigurationError, match="apply must be True, False or None"):
            ProviderRegistry().register_provider(
                "hyp-apply", Provider(api_base="https://hyp.example/v1"), apply=apply
            )
    assert dict(PROVIDERS) == before


def test_a_url_password_is_not_shown_in_api_base_errors() -> None:
    for url in (
        "ftp://user:pw-canary@h.example/",
        "https://user:pw-canary@/v1",
        "https://user:pw-canary@h.example:99999/",
        "https://user:pw-canary@h.example/a b",
    ):
        with pytest.raises(ConfigurationError) as ei:
            Provider(api_base=url)
        assert "pw-canary" not in str(ei.value)
        assert "user" in str(ei.value) or "h.example" in str(ei.value) or "URL" in str(ei.value)
