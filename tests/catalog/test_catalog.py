"""The model catalog: bundled data, lookups, queries, validation, persistence, lifecycle and the
provider registry."""

from __future__ import annotations

import builtins
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import llmrelay
from llmrelay.catalog import model_registry as registry_mod
from llmrelay.catalog.model_registry import LLMRegistry, blended_cost_per_1k, bundled_metadata
from llmrelay.catalog.profiles import LLMCapabilities, LLMProfile, MediaType, ModelFamily, Pricing
from llmrelay.catalog.provider_registry import Provider, ProviderRegistry, default_providers
from llmrelay.core.options import NO_OPTIONS
from llmrelay.errors import (
    ConfigFileError,
    ConfigurationError,
    ModelRetiredError,
    UnknownModelError,
)
from llmrelay.providers.resolve import Target
from llmrelay.providers.table import PROVIDERS, Secret, make_deployment

from ..config_isolation import isolated_config

TODAY = date(2026, 11, 24)


def reg(**kw: Any) -> LLMRegistry:
    kw.setdefault("catalog_files", ())
    return LLMRegistry(**kw)


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Deprecation warnings are once per model per process: give each test its own process.
    The configuration file (``[catalog]``) is process-wide too: isolate it."""
    monkeypatch.setattr(registry_mod, "_warned", set())
    with isolated_config():
        yield


# --------------------------------------------------------------------------- bundled data


def test_bundled_catalog_is_versioned_and_sourced() -> None:
    meta = bundled_metadata()
    assert meta["schema_version"] == 3
    assert meta["catalog_version"]
    date.fromisoformat(meta["as_of"])
    r = reg()
    assert len(r) >= 50
    unpriced: list[str] = []
    for p in r.list():
        pr = p.pricing
        assert (pr.source or "").startswith("https://"), p.id
        assert pr.as_of, p.id
        date.fromisoformat(pr.as_of)
        if pr.input is None or pr.output is None:  # a gap is said, never a silent $0
            assert (pr.input, pr.output) == (None, None), p.id
            assert "no price confirmed" in (pr.note or ""), p.id
            unpriced.append(p.id)
        if pr.reasoning is not None:
            assert pr.reasoning == pr.output, p.id  # every bundled provider bills it as output
        if p.shutdown_date is not None:
            assert p.lifecycle_source, p.id
        if p.replacement is not None:  # a named replacement is itself in the catalog
            assert r.lookup(p.provider, p.replacement) is not None, p.id
        # every row says when it was last checked, and against what
        assert p.verified_at is not None, p.id
        assert p.verified_at <= date(2026, 12, 3), p.id
        assert p.sources, p.id
        assert all(s.startswith("https://") for s in p.sources), p.id
        for period in p.price_schedule:
            assert (period.pricing.source or "").startswith("https://"), p.id
        for rule in p.rejected_params:
            assert (rule.source or "").startswith("https://"), (p.id, rule.param)
    assert len(unpriced) <= 3, unpriced  # real numbers, not gaps, almost everywhere
    for name in unpriced:  # and a gap prices as unknown
        cost = llmrelay.calculate_cost(name, {"input_tokens": 10, "output_tokens": 10}, registry=r)
        assert (cost.usd, cost.known) == (None, False)


def test_bundled_catalog_covers_every_provider_and_the_named_models() -> None:
    r = reg()
    assert set(r.providers()) >= {
        "openai", "anthropic", "gemini", "groq", "mistral", "deepseek", "xai",
        "together", "fireworks", "openrouter",
    }  # fmt: skip
    for name in (
        "openai/gpt-5", "openai/gpt-5-mini", "openai/gpt-5-nano", "openai/gpt-4.1",
        "openai/gpt-4.1-mini", "openai/gpt-4.1-nano", "openai/gpt-4o", "openai/gpt-4o-mini",
        "openai/o3", "openai/o4-mini", "anthropic/claude-opus-4-5", "anthropic/claude-opus-4-1",
        "anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5",
        "anthropic/claude-sonnet-4-20250514", "anthropic/claude-3-opus-20240229",
        "gemini/gemini-2.5-pro", "gemini/gemini-2.5-flash", "gemini/gemini-2.5-flash-lite",
        "gemini/gemini-2.0-flash", "groq/llama-3.3-70b-versatile", "groq/llama-3.1-8b-instant",
        "groq/mixtral-8x7b-32768", "groq/llama3-70b-8192", "groq/llama3-8b-8192",
        "groq/gemma2-9b-it", "groq/qwen-2.5-coder-32b",
    ):  # fmt: skip
        assert name in r, name
    # the seed's retired Groq models carry their shutdown date and a replacement
    for name in ("mixtral-8x7b-32768", "llama3-70b-8192", "llama3-8b-8192", "gemma2-9b-it"):
        p = r.get(f"groq/{name}")
        assert p.shutdown_date is not None
        assert p.replacement
        assert p.is_retired(TODAY)


def test_the_bundled_file_is_read_lazily() -> None:
    code = (
        "import sys, llmrelay\n"
        "c = llmrelay.Client()\n"
        "from llmrelay.catalog import model_registry as registry\n"
        "print(registry._bundled is None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "True"


# --------------------------------------------------------------------------- lookups


def test_get_by_id_alias_and_provider_model() -> None:
    r = reg()
    p = r.get("gpt-4.1-mini")
    assert p.id == "openai/gpt-4.1-mini"
    assert r.get("openai/gpt-4.1-mini") is p
    assert r.get("gpt-4.1-mini-2025-04-14") is p  # alias
    assert r.get("claude-sonnet-4-5-20250929").name == "claude-sonnet-4-5"
    assert r.get("groq/openai/gpt-oss-120b").provider == "groq"
    assert r.get("gpt-4.1-mini", provider="openai") is p
    assert r.get("meta-llama/Llama-3.3-70B-Instruct-Turbo").provider == "together"


def test_unknown_and_ambiguous_names_are_typed_errors() -> None:
    r = reg()
    with pytest.raises(UnknownModelError, match=r"Did you mean 'openai/gpt-4\.1-mini'"):
        r.get("openai/gpt-4.1-minii")
    with pytest.raises(UnknownModelError, match="several providers"):
        r.get("openai/gpt-oss-120b")  # groq and together both serve it
    with pytest.raises(UnknownModelError, match="non-empty"):
        r.get("")
    assert "nope/nothing" not in r


def test_get_models_by_capability_as_the_seed_shows() -> None:
    r = reg()
    vision = r.get_models_by_capability(
        capability="supports_vision", min_context_window=16000, max_cost_per_1k=0.01
    )
    assert vision
    for p in vision:
        c = p.capabilities
        assert c.supports_vision
        assert (c.max_context_window or 0) >= 16000
        assert (blended_cost_per_1k(c) or 1.0) <= 0.01
        assert not p.is_retired(r.today())
    ids = {p.id for p in vision}
    assert "openai/gpt-4.1-mini" in ids
    assert "groq/openai/gpt-oss-120b" not in ids  # text only
    assert "openai/gpt-4" not in ids  # text only and retired
    cheap_tools = r.get_models_by_capability("tools", max_cost_per_1k=0.0002)
    assert all((blended_cost_per_1k(p.capabilities) or 1) <= 0.0002 for p in cheap_tools)
    assert r.get_models_by_capability("supports_function_calling")


def test_max_cost_per_1k_compares_the_blended_price() -> None:
    """3:1 input:output: $1/M in + $9/M out blends to $3/M = $0.003 per 1k; the input price
    alone ($0.001 per 1k) would pass a $0.002 bound that the blend does not."""
    r = lifecycle_registry(
        profiles=[
            {"provider": "acme", "model": "cheap-in", "capabilities": {"vision": True},
             "prices": {"input": 1.0, "output": 9.0}},
            {"provider": "acme", "model": "even", "capabilities": {"vision": True},
             "prices": {"input": 2.0, "output": 2.0}},
            {"provider": "acme", "model": "no-output-price", "capabilities": {"vision": True},
             "prices": {"input": 0.1}},
        ]
    )  # fmt: skip
    assert blended_cost_per_1k(r.get("acme/cheap-in").capabilities) == pytest.approx(0.003)
    names = [p.name for p in r.get_models_by_capability("vision", max_cost_per_1k=0.002)]
    assert names == ["even"]
    names = [p.name for p in r.get_models_by_capability("vision", max_cost_per_1k=0.003)]
    assert names == ["cheap-in", "even"]
    assert blended_cost_per_1k(r.get("acme/no-output-price").capabilities) is None


def test_unknown_capability_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError, match="unknown capability 'supports_telepathy'") as ei:
        reg().get_models_by_capability("supports_telepathy")
    assert "supports_vision" in str(ei.value)
    with pytest.raises(ConfigurationError, match="min_context_window"):
        reg().get_models_by_capability("vision", min_context_window=-5)
    with pytest.raises(ConfigurationError, match="max_cost_per_1k"):
        reg().get_models_by_capability("vision", max_cost_per_1k=float("nan"))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"prices": {"input": -1.0, "output": 1.0}}, "price input must be a non-negative"),
        ({"prices": {"output": "cheap"}}, "price output must be a non-negative"),
        ({"context_window": -4}, "max_context_window must be a positive integer"),
        ({"context_window": 100, "max_output_tokens": 200}, "larger than the context window"),
        ({"family": "martian"}, "unknown model family 'martian'"),
        ({"modalities": {"input": ["smell"]}}, "unknown media type 'smell'"),
        ({"capabilities": {"vision": "yes"}}, "capabilities.vision must be true or false"),
        ({"capabilities": {"telepathy": True}}, "unknown capabilities field"),
        ({"shutdown_date": "soon"}, "YYYY-MM-DD"),
        (
            {"deprecation_date": "2026-05-01", "shutdown_date": "2026-01-01"},
            "before deprecation_date",
        ),
        ({"colour": "red"}, "unknown field"),
        ({"tokenizer": "p50k"}, "tokenizer must be"),
    ],
)
def test_invalid_profiles_are_typed_errors(row: dict[str, Any], match: str) -> None:
    r = reg(bundled=False)
    with pytest.raises(ConfigurationError, match=match):
        r.register({"provider": "acme", "model": "m", **row})
    assert "acme/m" not in r


def test_profile_objects_validate_too() -> None:
    with pytest.raises(ConfigurationError, match="non-negative"):
        LLMProfile("acme", "m", LLMCapabilities(pricing=Pricing(input=-0.1)))
    with pytest.raises(ConfigurationError, match="positive integer"):
        LLMProfile("acme", "m", LLMCapabilities(max_context_window=0))
    p = LLMProfile(
        "acme",
        "m",
        LLMCapabilities(
            max_context_window=8000,
            input_modalities=frozenset({MediaType.TEXT, MediaType.IMAGE}),
            pricing=Pricing(input=1.0, output=2.0),
        ),
        family=ModelFamily.LLAMA,
        release_date="2026-01-02",  # type: ignore[arg-type]
    )
    assert p.release_date == date(2026, 1, 2)
    assert p.capabilities.input_cost_per_1k_tokens == pytest.approx(0.001)
    assert MediaType.from_mime_type("image/png") is MediaType.IMAGE
    assert MediaType.from_mime_type("application/pdf") is MediaType.PDF


def test_user_entries_override_bundled_ones() -> None:
    r = reg()
    before = r.get("openai/gpt-4o").pricing
    r.register({"provider": "openai", "model": "gpt-4o", "prices": {"input": 1.0}})
    after = r.get("openai/gpt-4o")
    assert after.pricing.input == 1.0
    assert after.pricing.output == before.output  # merged, not replaced
    assert after.origin == "user"
    # a self-hosted model, free
    r.register(
        {"provider": "vllm", "model": "my-llama", "context_window": 32768,
         "prices": {"input": 0.0, "output": 0.0}}
    )  # fmt: skip
    assert llmrelay.calculate_cost("vllm/my-llama", {"input_tokens": 9}, registry=r).usd == 0.0


def user_file(tmp_path: Path, rows: list[dict[str, Any]], name: str = "my.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps({"schema_version": 1, "models": rows}))
    return p


def test_user_catalog_from_env_and_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = user_file(tmp_path, [{"provider": "openai", "model": "gpt-4o", "prices": {"input": 0.5}}])
    b = user_file(
        tmp_path, [{"provider": "ollama", "model": "qwen3:8b", "context_window": 40960}], "b.json"
    )
    monkeypatch.setenv("LLMRELAY_CATALOG", str(a))
    r = LLMRegistry()
    assert r.get("openai/gpt-4o").pricing.input == 0.5
    assert r.get("openai/gpt-4o").origin == str(a)
    # [catalog] path in llmrelay.toml (loaded before the environment's files)
    monkeypatch.delenv("LLMRELAY_CATALOG")
    (Path.cwd() / "llmrelay.toml").write_text(f'[catalog]\npath = "{b}"\n')
    from llmrelay.seeds.seed002 import load_config

    load_config(str(Path.cwd() / "llmrelay.toml"))
    r2 = LLMRegistry()
    assert r2.get("ollama/qwen3:8b").capabilities.max_context_window == 40960
    unknown = llmrelay.calculate_cost("ollama/qwen3:8b", {"input_tokens": 1}, registry=r2)
    assert (unknown.usd, unknown.known) == (None, False)  # no price given: unknown, never $0


def test_bad_catalog_settings_in_the_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    (Path.cwd() / "llmrelay.toml").write_text("[catalog]\npaht = 'x.json'\n")
    from llmrelay.seeds.seed002 import load_config

    load_config(str(Path.cwd() / "llmrelay.toml"))
    with pytest.raises(ConfigFileError, match="unknown key"):
        len(LLMRegistry())


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("ext", [".json", ".yaml", ".sqlite"])
def test_round_trip(tmp_path: Path, ext: str) -> None:
    r = reg()
    r.register({"provider": "vllm", "model": "local", "prices": {"input": 0.0, "output": 0.0}})
    path = tmp_path / f"catalog{ext}"
    r.save(path)
    back = LLMRegistry.from_file(path)
    assert back.rows() == r.rows()
    assert back.get("openai/gpt-4.1-mini") == r.get("openai/gpt-4.1-mini").replace(origin=str(path))
    # saving over an existing file replaces it
    small = reg(bundled=False, profiles=[LLMProfile("acme", "one")])
    small.save(path)
    assert [p.id for p in LLMRegistry.from_file(path).list()] == ["acme/one"]


def test_seed_spellings_of_persistence(tmp_path: Path) -> None:
    r = reg(bundled=False, profiles=[LLMProfile("acme", "one", family=ModelFamily.GPT)])
    r.to_json(tmp_path / "a.json")
    r.to_yaml(tmp_path / "a.yaml")
    r.to_sqlite(tmp_path / "a.db")
    for back in (
        LLMRegistry.from_json(tmp_path / "a.json"),
        LLMRegistry.from_yaml(tmp_path / "a.yaml"),
        LLMRegistry.from_sqlite(tmp_path / "a.db"),
    ):
        assert back.get("acme/one").family is ModelFamily.GPT


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 4, "models": []}', "schema_version 4 is not supported"),
        ('{"models": {}}', "'models' must be a list"),
        ('{"model": []}', "unknown top-level field"),
        ('{"models": [{"provider": "a"}]}', "model must be a non-empty string"),
        (
            '{"models": [{"provider": "a", "model": "b", "prices": {"input": -2}}]}',
            r"models\[0\] \(a/b\).*non-negative",
        ),
        (
            '{"models": [{"provider": "a", "model": "b"}, {"provider": "a", "model": "b"}]}',
            "listed twice",
        ),
    ],
)
def test_malformed_catalog_files_fail_at_load_time(
    tmp_path: Path, content: str, match: str
) -> None:
    p = tmp_path / "bad.json"
    p.write_text(content)
    r = reg()
    before = r.rows()
    with pytest.raises(ConfigFileError, match=match) as ei:
        r.load(p)
    assert ei.value.path == str(p)
    assert r.rows() == before  # a bad file changes nothing


def test_malformed_yaml_and_sqlite(tmp_path: Path) -> None:
    y = tmp_path / "bad.yaml"
    y.write_text("models: [\n")
    with pytest.raises(ConfigFileError, match="not valid YAML"):
        LLMRegistry.from_file(y)
    db = tmp_path / "bad.db"
    db.write_bytes(b"this is not sqlite")
    with pytest.raises(ConfigFileError, match="not a llmrelay catalog database"):
        LLMRegistry.from_file(db)
    with pytest.raises(ConfigFileError, match="does not exist"):
        LLMRegistry.from_file(tmp_path / "missing.db")
    with pytest.raises(ConfigFileError, match="cannot read"):
        LLMRegistry.from_file(tmp_path / "missing.json")
    with pytest.raises(ConfigurationError, match="extension"):
        reg().save(tmp_path / "catalog.txt")


def test_yaml_without_pyyaml_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_yaml(name: str, *a: Any, **k: Any) -> Any:
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    with pytest.raises(ConfigurationError, match=r"pip install llmrelay\[yaml\]"):
        reg(bundled=False).save(tmp_path / "x.yaml")


# --------------------------------------------------------------------------- lifecycle


def lifecycle_registry(**kw: Any) -> LLMRegistry:
    return reg(bundled=False, today=lambda: TODAY, **kw)


def test_deprecated_model_warns_once_naming_the_replacement(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = lifecycle_registry()
    r.register({"provider": "acme", "model": "new"})
    p = r.register(
        {"provider": "acme", "model": "old", "deprecation_date": "2026-10-01",
         "shutdown_date": "2027-03-01", "replacement": "new"}
    )  # fmt: skip
    caplog.set_level(logging.WARNING, logger="llmrelay.catalog")
    for _ in range(3):
        assert r.validate_model("acme/old") is p
    records = [rec for rec in caplog.records if rec.name == "llmrelay.catalog"]
    assert len(records) == 1
    msg = records[0].getMessage()
    assert "acme/old is deprecated" in msg
    assert "2027-03-01" in msg
    assert "'new'" in msg


def test_retired_model_is_an_error_unless_allowed(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"provider": "acme", "model": "current"},
        {"provider": "acme", "model": "middle", "shutdown_date": "2026-01-01",
         "replacement": "current"},
        {"provider": "acme", "model": "oldest", "shutdown_date": "2025-01-01",
         "replacement": "middle"},
    ]  # fmt: skip
    r = lifecycle_registry(profiles=rows)
    with pytest.raises(ModelRetiredError, match="shut down on 2025-01-01") as ei:
        r.validate_model("acme/oldest")
    assert ei.value.replacement == "current"  # followed past the retired 'middle'
    assert "'current'" in ei.value.message
    assert isinstance(ei.value, ConfigurationError)
    caplog.set_level(logging.WARNING, logger="llmrelay.catalog")
    allowed = lifecycle_registry(profiles=rows, allow_retired=True)
    allowed.validate_model("acme/oldest")
    assert any("was shut down" in rec.getMessage() for rec in caplog.records)
    monkeypatch.setenv("LLMRELAY_ALLOW_RETIRED", "1")
    lifecycle_registry(profiles=rows).validate_model("acme/oldest")
    # not retired before its shutdown date
    early = reg(bundled=False, today=lambda: date(2024, 6, 1), profiles=rows)
    early.validate_model("acme/oldest")


def test_retired_models_left_out_of_queries() -> None:
    r = lifecycle_registry(
        profiles=[
            {"provider": "acme", "model": "gone", "shutdown_date": "2025-01-01",
             "capabilities": {"vision": True}},
            {"provider": "acme", "model": "here", "capabilities": {"vision": True}},
        ]
    )  # fmt: skip
    assert [p.name for p in r.get_models_by_capability("vision")] == ["here"]
    assert [p.name for p in r.get_models_by_capability("vision", include_retired=True)] == [
        "gone",
        "here",
    ]
    assert [p.name for p in r.list(include_retired=False)] == ["here"]


# --------------------------------------------------------------------------- providers


@pytest.fixture
def restore_providers() -> Any:
    saved = dict(PROVIDERS)
    default = default_providers()
    registered = dict(default._providers), dict(default._specs)
    yield
    PROVIDERS.clear()
    PROVIDERS.update(saved)
    default._providers, default._specs = registered
    default.version += 1


def test_provider_registry_as_the_seed_shows(restore_providers: None) -> None:
    providers = ProviderRegistry()
    providers.register_provider(
        "anthropic",
        Provider(
            api_base="https://anthropic.internal.example",
            rate_limits={"requests_per_minute": 60},
            models={"claude-haiku-4-5": {"rate_limits": {"tokens_per_minute": 40_000}}},
        ),
    )
    assert providers.rate_limits("anthropic") == {"requests_per_minute": 60}
    assert providers.rate_limits("anthropic", "claude-haiku-4-5") == {
        "requests_per_minute": 60,
        "tokens_per_minute": 40_000,
    }
    assert providers.rate_limits("groq") == {}
    assert providers.list_providers() == ["anthropic"]
    assert providers.get_provider_model_config("anthropic", "claude-haiku-4-5")
    # A registry no client uses changes nothing process-wide ...
    dep = make_deployment("anthropic", "claude-haiku-4-5", api_key="k")
    assert dep.base_url == "https://api.anthropic.com"
    # ... a client handed it uses the new base URL; the wire stays
    client = llmrelay.Client(providers=providers)
    dep = client.engine.deployment(Target("anthropic", "claude-haiku-4-5", api_key=Secret("k")),
                                   NO_OPTIONS, False)  # fmt: skip
    assert dep.base_url == "https://anthropic.internal.example"
    assert dep.wire == "anthropic_messages"
    assert (
        llmrelay.Client()
        .engine.deployment(
            Target("anthropic", "claude-haiku-4-5", api_key=Secret("k")), NO_OPTIONS, False
        )
        .base_url
        == "https://api.anthropic.com"
    )
    # The default registry is the process's: registering there feeds the provider table.
    default_providers().register_provider(
        "anthropic", Provider(api_base="https://anthropic.internal.example")
    )
    dep = make_deployment("anthropic", "claude-haiku-4-5", api_key="k")
    assert dep.base_url == "https://anthropic.internal.example"


def test_a_new_provider_becomes_openai_compatible(restore_providers: None) -> None:
    providers = default_providers()
    providers.register_provider("acme-cloud", Provider(api_base="https://api.acme.example/v1"))
    dep = make_deployment("acme-cloud", "m", api_key="k")
    assert (dep.wire, dep.base_url, dep.api_key_env) == (
        "openai_chat",
        "https://api.acme.example/v1",
        "ACME_CLOUD_API_KEY",
    )
    assert llmrelay.Target  # the resolver sees it too
    from llmrelay.providers.resolve import resolve_target

    assert resolve_target("acme-cloud/m").provider == "acme-cloud"


def test_a_new_provider_in_a_clients_own_registry(restore_providers: None) -> None:
    providers = ProviderRegistry()
    providers.register_provider("acme-two", Provider(api_base="https://api.acme2.example/v1"))
    assert "acme-two" not in PROVIDERS
    with pytest.raises(UnknownModelError):
        llmrelay.Client().engine.plan("acme-two/m")
    engine = llmrelay.Client(providers=providers).engine
    t = engine.plan("acme-two/m").primary
    dep = engine.deployment(Target(t.provider, t.model, api_key=Secret("k")), NO_OPTIONS, True)
    assert (dep.wire, dep.base_url) == ("openai_chat", "https://api.acme2.example/v1")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"api_base": "ftp://x"}, "http"),
        ({"rate_limits": {"rpm": 5}}, "unknown rate limit 'rpm'"),
        ({"rate_limits": {"requests_per_minute": 0}}, "positive number"),
        ({"wire": "soap"}, "wire must be one of"),
        ({"models": {"m": {"rate_limits": {"requests_per_minute": -1}}}}, "positive number"),
    ],
)
def test_bad_provider_configuration(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Provider(**kwargs)


def test_new_provider_needs_its_base_url(restore_providers: None) -> None:
    with pytest.raises(ConfigurationError, match="api_base"):
        ProviderRegistry().register_provider("nowhere", Provider(rate_limits={}))
    with pytest.raises(UnknownModelError, match="not registered"):
        ProviderRegistry().get_provider("nowhere")


def test_public_names_are_exported() -> None:
    for name in (
        "LLMCapabilities", "LLMProfile", "ModelFamily", "MediaType", "LLMRegistry",
        "ProviderRegistry", "Provider", "ModelCapabilityDetectorFactory", "Catalog", "Cost",
        "calculate_cost", "count_tokens", "count_message_tokens", "ModelRetiredError",
        "UnsupportedCapabilityError",
    ):  # fmt: skip
        assert name in llmrelay.__all__
        assert getattr(llmrelay, name) is not None
