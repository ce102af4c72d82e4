"""Per-request setup made once and reused keeps what it stands for (issue 13): a server's
call options copied with a request's trace id are the options ``dataclasses.replace`` would
make; a key's options follow its record; the environment is read on every call, though
decoded only when it changed."""

from __future__ import annotations

import dataclasses

import pytest

from llmrelay.core.options import CallOptions, with_trace_id
from llmrelay.core.retry import RetryPolicy
from llmrelay.errors import InvalidRequestError, MissingAPIKeyError
from llmrelay.gateway.calls import KeyOptions
from llmrelay.gateway.keys import VirtualKey
from llmrelay.providers.table import make_deployment
from llmrelay.transport.base import Timeouts


def test_a_copy_with_a_trace_id_keeps_every_other_option() -> None:
    full = CallOptions(
        api_key="sk-x",
        base_url="http://h/v1",
        headers={"x-a": "1"},
        timeout=Timeouts(connect=1.0),
        deadline=5.0,
        first_token_timeout=2.0,
        system="be brief",
        max_reasks=2,
        retries=1,
        retry=RetryPolicy(),
        fallbacks=["openai/gpt-4o"],
        context_window_fallbacks=["openai/gpt-4.1"],
        content_filter_fallbacks=["openai/gpt-4.1-mini"],
        tenant="acme",
        tags={"vkey": "k"},
        use_cache=False,
        cache_ttl=10.0,
        no_store=True,
        wait_for_rate_limit=True,
        trace_id="old",
        strict_params=True,
        api="chat",
    )
    for base in (full, CallOptions(), CallOptions(tags={"team": "t"}, tenant="team:t")):
        copy = with_trace_id(base, "req_1")
        assert copy == dataclasses.replace(base, trace_id="req_1")
        assert copy is not base
    assert full.trace_id == "old"  # the template is not changed
    with pytest.raises(InvalidRequestError, match="trace_id"):
        with_trace_id(full, 7)  # type: ignore[arg-type]


def _key(**kw: object) -> VirtualKey:
    return VirtualKey(**{"id": "key_1", "name": "k", "key_hash": "h", **kw})  # type: ignore[arg-type]


def test_a_keys_options_follow_its_record_and_the_cache_scope() -> None:
    held = KeyOptions()
    assert held.of(None, "team") == ({}, CallOptions())
    a = _key()
    kw, opts = held.of(a, "team")
    assert kw == {"tags": {"vkey": "key_1"}, "tenant": "key:key_1"}
    assert opts == CallOptions(**kw)
    assert held.of(a, "team")[1] is opts  # made once
    kw, opts = held.of(_key(team="search"), "team")  # the record changed
    assert kw == {"tags": {"vkey": "key_1", "team": "search"}, "tenant": "team:search"}
    assert opts == CallOptions(**kw)
    assert held.of(a, "shared") == (
        {"tags": {"vkey": "key_1"}},
        CallOptions(tags={"vkey": "key_1"}),
    )
    assert held.of(a, "key")[0]["tenant"] == "key:key_1"


def test_the_environment_is_read_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://one/v1")
    monkeypatch.setenv("OPENAI_API_KEY", " sk-one\n")
    dep = make_deployment("openai", "gpt-4o")
    assert (dep.base_url, dep.api_key.get() if dep.api_key else None) == ("http://one/v1", "sk-one")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://two/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-two")
    dep = make_deployment("openai", "gpt-4o")
    assert (dep.base_url, dep.api_key.get() if dep.api_key else None) == ("http://two/v1", "sk-two")
    monkeypatch.setenv("OPENAI_API_KEY", "  ")
    with pytest.raises(MissingAPIKeyError):
        make_deployment("openai", "gpt-4o")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(MissingAPIKeyError):
        make_deployment("openai", "gpt-4o")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-two")
    assert make_deployment("openai", "gpt-4o").api_key is not None


def test_an_engines_deployment_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.core.engine import Engine
    from llmrelay.core.options import NO_OPTIONS
    from llmrelay.providers.resolve import resolve_target

    engine = Engine()
    t = resolve_target("openai/gpt-4o")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-one")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    first = engine.deployment(t, NO_OPTIONS, True)
    assert engine.deployment(t, NO_OPTIONS, True) is first  # nothing changed: kept
    assert first.base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy/v1")  # an unset variable set
    assert engine.deployment(t, NO_OPTIONS, True).base_url == "http://proxy/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-two")
    dep = engine.deployment(t, NO_OPTIONS, True)
    assert dep.api_key is not None
    assert dep.api_key.get() == "sk-two"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(MissingAPIKeyError):
        engine.deployment(t, NO_OPTIONS, True)
