"""Configurations declared in TOML: ``llmrelay.toml`` in the working directory or the file named
by ``LLMRELAY_CONFIG``; every problem is a ``ConfigFileError`` naming file, line and key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import llmrelay
from llmrelay import CONFIG_REGISTRY, PROVIDERS, ConfigFileError, ModelHandler, create_model
from llmrelay.seeds.seed002 import load_config
from llmrelay.settings.file import file_settings
from llmrelay.testing.fake import FakeUpstream

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_config():
        yield


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def model_toml(fake: FakeUpstream, alias: str = "x") -> str:
    return f"""\
# my models
[models.{alias}]
provider = "openai"
model = "gpt-4.1-mini"
base_url = "{fake.openai_base_url}"
temperature = 0.2
max_tokens = 50
system_message = "Be brief."
"""


# --------------------------------------------------------------------------- loading


async def test_llmrelay_toml_in_the_working_directory(fake: FakeUpstream, keys: str) -> None:
    write(Path.cwd() / "llmrelay.toml", model_toml(fake))
    client = llmrelay.Client()
    try:
        r = await client.achat("x", "hello")
    finally:
        await client.aclose()
    assert r.text == "Echo: hello"
    assert r.alias == "x"
    body = fake.requests[-1].body
    assert body["model"] == "gpt-4.1-mini"
    assert body["temperature"] == 0.2
    assert body["max_completion_tokens"] == 50
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert fake.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert "x" in ModelHandler().list_available_models()


async def test_llmrelay_config_variable(
    fake: FakeUpstream, keys: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "elsewhere.toml", model_toml(fake, "from-env"))
    write(Path.cwd() / "llmrelay.toml", model_toml(fake, "from-cwd"))
    monkeypatch.setenv("LLMRELAY_CONFIG", str(path))
    client = llmrelay.Client()
    try:
        r = await client.achat("from-env", "hi")
    finally:
        await client.aclose()
    assert r.text == "Echo: hi"
    aliases = ModelHandler().list_available_models()
    assert "from-env" in aliases
    assert "from-cwd" not in aliases


def test_toml_alias_in_model_handler(
    fake_thread: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(Path.cwd() / "llmrelay.toml", model_toml(fake_thread, "handled"))
    assert ModelHandler().get_response("handled", "via handler") == "Echo: via handler"
    assert create_model("handled", temperature=1.0).temperature == 1.0  # type: ignore[attr-defined]


async def test_providers_table_sets_the_base_url(fake: FakeUpstream, keys: str) -> None:
    write(
        Path.cwd() / "llmrelay.toml",
        f'[providers.groq]\nbase_url = "{fake.openai_base_url}"\n',
    )
    client = llmrelay.Client()
    try:
        r1 = await client.achat("groq/llama-3.1-8b-instant", "one")
        r2 = await client.achat("llama3-8b", "two")  # a built-in Groq alias
    finally:
        await client.aclose()
    assert (r1.text, r2.text) == ("Echo: one", "Echo: two")
    assert [q.body["model"] for q in fake.requests] == ["llama-3.1-8b-instant", "llama3-8b-8192"]
    assert PROVIDERS["groq"].base_url == fake.openai_base_url


async def test_providers_table_sets_the_key_variable(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        Path.cwd() / "llmrelay.toml",
        f'[providers.groq]\nbase_url = "{fake.openai_base_url}"\napi_key_env = "MY_GROQ_KEY"\n',
    )
    client = llmrelay.Client()
    try:
        with pytest.raises(llmrelay.MissingAPIKeyError, match="MY_GROQ_KEY") as ei:
            await client.achat("llama3-8b", "hi")
        assert ei.value.variable == "MY_GROQ_KEY"
        assert fake.requests == []
        monkeypatch.setenv("MY_GROQ_KEY", CANARY_KEY)
        assert (await client.achat("llama3-8b", "hi")).text == "Echo: hi"
    finally:
        await client.aclose()


def test_toml_overrides_a_builtin_alias() -> None:
    write(
        Path.cwd() / "llmrelay.toml",
        '[models.llama3-8b]\nprovider = "groq"\nmodel = "llama-3.1-8b-instant"\n',
    )
    config = create_model("llama3-8b")
    assert config.model == "llama-3.1-8b-instant"  # type: ignore[attr-defined]
    assert config.temperature == 0.7  # type: ignore[attr-defined]  # Groq defaults


def test_other_tables_and_policy_are_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        '[defaults]\ntimeout = 30\n\n[models.p]\nprovider = "groq"\nmodel = "m"\n'
        'fallbacks = ["openai/gpt-4o-mini"]\n\n[models.p.policy]\nretries = 2\n',
    )
    assert load_config(str(path)) == ["p"]
    assert file_settings("defaults") == {"timeout": 30}
    from llmrelay.seeds.seed002.registry import lookup

    target = lookup("p")
    assert target is not None
    assert target.fallbacks == ("openai/gpt-4o-mini",)
    assert target.policy == {"retries": 2}


def test_quoted_and_inline_aliases(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        '[models."gpt-4.1-fast"]\nprovider = "openai"\nmodel = "gpt-4.1"\n\n'
        '[models]\nquick = { provider = "groq", model = "llama-3.1-8b-instant" }\n',
    )
    assert sorted(load_config(str(path))) == ["gpt-4.1-fast", "quick"]
    assert CONFIG_REGISTRY["quick"]().model == "llama-3.1-8b-instant"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- errors


def test_malformed_toml_names_file_and_line() -> None:
    path = write(Path.cwd() / "llmrelay.toml", '[models.x]\nprovider = "groq"\nmodel = \n')
    with pytest.raises(ConfigFileError) as ei:
        ModelHandler().list_available_models()
    err = ei.value
    assert err.path == str(path)
    assert err.line == 3
    assert str(err).startswith(f"{path}:3: not valid TOML")


HEADER = '[models.x]\nprovider = "groq"\nmodel = "llama-3.1-8b-instant"\n'


@pytest.mark.parametrize(
    ("text", "key", "line", "message"),
    [
        (
            '[modles.x]\nprovider = "groq"\n',
            "modles",
            1,
            r"unknown table \[modles\] \(did you mean \[models\]\?\)",
        ),
        (
            HEADER + "temprature = 0.2\n",
            "models.x.temprature",
            4,
            r"unknown key 'temprature' \(did you mean 'temperature'\?\)",
        ),
        (
            HEADER + 'temperature = "hot"\n',
            "models.x.temperature",
            4,
            r"temperature must be a number, not a string",
        ),
        (
            HEADER + "max_tokens = true\n",
            "models.x.max_tokens",
            4,
            r"max_tokens must be an integer, not a boolean",
        ),
        (
            HEADER + "stop = [1, 2]\n",
            "models.x.stop",
            4,
            r"stop must be a string or a list of strings",
        ),
        (HEADER + 'fallbacks = "gpt-4o"\n', "models.x.fallbacks", 4, r"fallbacks must be a list"),
        (
            HEADER + 'fallbacks = ["x"]\n',
            "models.x.fallbacks",
            4,
            r"'x' lists itself as a fallback",
        ),
        (
            HEADER + 'fallbacks = ["nope/m"]\n',
            "models.x.fallbacks",
            4,
            r"fallback 'nope/m' names unknown provider 'nope'",
        ),
        (HEADER + "temperature = 7\n", "models.x.temperature", 4, r"temperature=7 is out of range"),
        (
            HEADER + 'base_url = "localhost:1"\n',
            "models.x.base_url",
            4,
            r"base_url must start with http",
        ),
        (
            '[models.x]\nprovider = "groqq"\nmodel = "m"\n',
            "models.x.provider",
            2,
            r"unknown provider 'groqq' \(did you mean 'groq'\?\)",
        ),
        ('\n[models.x]\nprovider = "groq"\n', "models.x.model", 2, r"\[models.x\] needs `model = "),
        ('[models.x]\nmodel = "m"\n', "models.x.provider", 1, r"\[models.x\] needs `provider = "),
        ("models = 3\n", "models", 1, r"models must be a table"),
        ("[models]\nx = 3\n", "models.x", 2, r"models.x must be a table"),
        (
            '[models]\nx = { provider = "groq", model = "m", top_p = 9 }\n',
            "models.x.top_p",
            2,
            r"top_p=9 is out of range",
        ),
        (
            '[providers.nope]\nbase_url = "http://h"\n',
            "providers.nope",
            1,
            r"unknown provider 'nope'",
        ),
        (
            '[providers.groq]\nbase_url = "http://h"\nkey = "k"\n',
            "providers.groq.key",
            3,
            r"unknown key 'key'",
        ),
        (
            '[providers.groq]\n\nbase_url = "h"\n',
            "providers.groq.base_url",
            3,
            r"base_url must start with http",
        ),
    ],
)
def test_file_errors_name_file_line_and_key(text: str, key: str, line: int, message: str) -> None:
    path = write(Path.cwd() / "llmrelay.toml", text)
    with pytest.raises(ConfigFileError, match=message) as ei:
        ModelHandler().list_available_models()
    err = ei.value
    assert (err.path, err.key, err.line) == (str(path), key, line)
    assert str(err).startswith(f"{path}:{line} [{key}]: ")


def test_every_entry_point_reports_the_file_error() -> None:
    write(Path.cwd() / "llmrelay.toml", "[modles]\n")
    with pytest.raises(ConfigFileError):
        ModelHandler().get_response("llama3-8b", "hi")
    with pytest.raises(ConfigFileError):
        create_model("llama3-8b")
    with pytest.raises(ConfigFileError):
        llmrelay.chat("llama3-8b", "hi")


def test_missing_file_named_by_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "missing.toml"
    monkeypatch.setenv("LLMRELAY_CONFIG", str(path))
    with pytest.raises(ConfigFileError, match="cannot read the configuration file") as ei:
        ModelHandler().list_available_models()
    assert ei.value.path == str(path)
    assert "LLMRELAY_CONFIG" in str(ei.value)


def test_a_fixed_file_loads_on_the_next_call() -> None:
    path = Path.cwd() / "llmrelay.toml"
    write(path, '[models.x]\nprovider = "groq"\n')
    handler = ModelHandler()
    with pytest.raises(ConfigFileError, match="needs `model"):
        handler.list_available_models()
    with pytest.raises(ConfigFileError):  # still broken: reported again, not cached
        handler.list_available_models()
    write(path, HEADER)
    assert "x" in handler.list_available_models()
    assert CONFIG_REGISTRY["x"]().model == "llama-3.1-8b-instant"  # type: ignore[attr-defined]


def test_a_bad_file_changes_nothing() -> None:
    groq_before = PROVIDERS["groq"]
    registry_before = dict(CONFIG_REGISTRY)
    write(
        Path.cwd() / "llmrelay.toml",
        '[providers.groq]\nbase_url = "http://changed"\n\n'
        '[models.good]\nprovider = "groq"\nmodel = "m"\n\n'
        '[models.bad]\nprovider = "groq"\nmodel = "m"\ntemperature = 9\n',
    )
    with pytest.raises(ConfigFileError, match="temperature=9"):
        ModelHandler().list_available_models()
    assert PROVIDERS["groq"] is groq_before
    assert "good" not in CONFIG_REGISTRY
    assert dict(CONFIG_REGISTRY) == registry_before
