"""The alias table (``llmrelay.providers.aliases``): built-in aliases as data, the configuration
file's ``[models]`` and ``[providers]``, and seed 002's registry as a registered source.

Without seed 002 imported, aliases resolve from the data; with it, from ``CONFIG_REGISTRY``; both
give the same targets. The seed-free runs happen in a fresh interpreter (this process has
imported seed 002 long ago), against a fake upstream on a real socket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrelay.providers import aliases
from llmrelay.providers.resolve import resolve_target
from llmrelay.seeds.seed002 import CONFIG_REGISTRY, GroqCaller, registry
from llmrelay.testing.fake import FakeUpstream

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_config():
        yield


def run_fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter in the current directory; it prints one JSON line.
    Fails if the code imported any of seed 002 (or any seed)."""
    code += (
        "\nimport sys as _s\n_seeds = [m for m in _s.modules if m.startswith('llmrelay.seeds')"
        " or m == 'llmrelay.config']\nassert not _seeds, _seeds\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert CANARY_KEY not in proc.stdout + proc.stderr
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_builtin_aliases_resolve_alike_with_and_without_seed_002() -> None:
    names = list(CONFIG_REGISTRY)
    assert set(names) == set(
        aliases.BUILTIN_ALIASES
    )  # the seed's classes and the data agree on names
    fresh = run_fresh(
        "import json\nfrom llmrelay.providers.resolve import known_aliases, resolve_target\n"
        "print(json.dumps({'names': known_aliases(),"
        " 'targets': {a: repr(resolve_target(a)) for a in known_aliases()}}))"
    )
    assert fresh["names"] == names  # same aliases, same order
    targets = fresh["targets"]
    assert isinstance(targets, dict)
    for alias in names:
        assert targets[alias] == repr(registry.lookup(alias)), alias


def test_file_aliases_and_providers_without_seed_002(fake_thread: FakeUpstream, keys: str) -> None:
    Path("llmrelay.toml").write_text(
        f'[providers.groq]\nbase_url = "{fake_thread.openai_base_url}"\n\n'
        '[models.fast]\nprovider = "groq"\nmodel = "openai/gpt-oss-20b"\ntemperature = 0.2\n'
        'system_message = "Be brief."\n\n[defaults]\nretries = 0\n',
        "utf-8",
    )
    out = run_fresh(
        "import json, llmrelay\n"
        "from llmrelay.providers.resolve import resolve_target\n"
        "a = llmrelay.chat('fast', 'one')\n"
        "b = llmrelay.chat('gpt-oss-20b', 'two')\n"  # a built-in Groq alias, moved by [providers]
        "print(json.dumps([a.text, a.alias, b.text, b.alias, repr(resolve_target('fast'))]))"
    )
    # Seed 002 (here) makes a class of the file's alias: it resolves to the same target.
    assert out == ["Echo: one", "fast", "Echo: two", "gpt-oss-20b", repr(registry.lookup("fast"))]
    first, second = (q.body for q in fake_thread.requests)
    assert first["model"] == second["model"] == "openai/gpt-oss-20b"
    assert first["temperature"] == 0.2
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}
    # A built-in alias sends only its model: no seed-002 system message or sampling defaults.
    assert second == {
        "model": "openai/gpt-oss-20b",
        "messages": [{"role": "user", "content": "two"}],
    }


def test_a_bad_file_is_refused_and_a_fixed_one_loads_without_seed_002() -> None:
    out = run_fresh(
        "import json, pathlib\n"
        "from llmrelay import ConfigFileError\n"
        "from llmrelay.providers.resolve import resolve_target\n"
        "from llmrelay.providers.table import PROVIDERS\n"
        "from llmrelay.settings.file import file_settings\n"
        "p = pathlib.Path('llmrelay.toml')\n"
        'p.write_text(\'[providers.groq]\\nbase_url = "http://changed"\\n\\n[defaults]\\n'
        'retries = 1\\n\\n[models.x]\\nprovider = "groq"\\nmodel = "m"\\ntemperature = 9\\n\')\n'
        "errs = []\n"
        "for read in (lambda: resolve_target('x'), lambda: file_settings('defaults')):\n"
        "    try:\n"
        "        read()\n"
        "    except ConfigFileError as e:\n"
        "        errs.append([e.key, e.line, 'temperature=9' in str(e)])\n"
        "unchanged = PROVIDERS['groq'].base_url != 'http://changed'\n"
        'p.write_text(\'[models.x]\\nprovider = "groq"\\nmodel = "m"\\n\')\n'
        "print(json.dumps([errs, unchanged, resolve_target('x').model]))"
    )
    assert out == [[["models.x.temperature", 10, True]] * 2, True, "m"]


async def test_a_caller_built_from_params_sees_the_providers_table(
    fake: FakeUpstream, keys: str
) -> None:
    """The file's [providers] apply when the file is loaded, not on the first alias lookup."""
    import llmrelay

    Path("llmrelay.toml").write_text(
        f'[providers.groq]\nbase_url = "{fake.openai_base_url}"\n', "utf-8"
    )
    client = llmrelay.Client()  # reads [defaults]: loads the file
    try:
        caller = GroqCaller({"model": "llama-3.1-8b-instant", "temperature": 0.1}, client=client)
        assert await caller.acall_llm("hi") == "Echo: hi"
    finally:
        await client.aclose()
    assert fake.requests[-1].body["model"] == "llama-3.1-8b-instant"


def test_a_registered_class_replaces_a_builtin_alias() -> None:
    registry.define_config("gpt-4o", "groq", "llama-3.1-8b-instant", temperature=0.3)
    t = resolve_target("gpt-4o")
    assert (t.provider, t.model, t.params.temperature) == ("groq", "llama-3.1-8b-instant", 0.3)
    del CONFIG_REGISTRY["gpt-4o"]  # seed 002's registry answers for the whole table
    assert aliases.lookup("gpt-4o") is None
