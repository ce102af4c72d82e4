"""The provider table's facts about each provider: where its own API lives, its OTel name."""

from __future__ import annotations

from urllib.parse import urlsplit

from llmrelay.catalog.layer import _is_official
from llmrelay.observe.otel import provider_name
from llmrelay.providers.table import PROVIDERS, make_deployment


def test_official_hosts_are_the_hosts_of_the_default_base_urls() -> None:
    with_host = [s for s in PROVIDERS.values() if s.official_host is not None]
    assert {s.name for s in with_host} >= {"openai", "anthropic", "gemini", "groq", "openrouter"}
    for spec in with_host:
        assert spec.base_url is not None
        assert urlsplit(spec.base_url).hostname == spec.official_host, spec.name


def test_only_the_official_host_is_official() -> None:
    assert _is_official(make_deployment("anthropic", "claude-x", api_key="k"))
    proxy = make_deployment("anthropic", "claude-x", api_key="k", base_url="http://127.0.0.1:9")
    assert not _is_official(proxy)
    # A provider without an official host is official at its spec's base URL.
    assert _is_official(make_deployment("ollama", "llama3"))
    assert not _is_official(make_deployment("ollama", "llama3", base_url="http://127.0.0.2:9/v1"))


def test_otel_names_follow_the_semantic_conventions() -> None:
    assert provider_name("gemini") == "gcp.gemini"
    assert provider_name("azure") == "azure.ai.openai"
    assert provider_name("mistral") == "mistral_ai"
    assert provider_name("openai") == "openai"
    assert provider_name("my-own-vendor") == "my-own-vendor"
