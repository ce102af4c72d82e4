"""Issue 10, item 1: a built-in alias sends what its name says.

For EVERY built-in alias, ``Client.chat(alias, ...)`` and ``Client.chat("provider/model", ...)``
send the same request (path, query and body) to the fake upstream over a real socket, for every
provider wire (OpenAI chat, Anthropic messages, Gemini, Groq's OpenAI-compatible API), streamed
and not. Seed 002's defaults (system message, temperature 0.7, ...) stay with its configuration
classes: ``ModelHandler`` still sends them (tests/seeds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import llmrelay
from llmrelay.providers.aliases import BUILTIN_ALIASES
from llmrelay.providers.resolve import resolve_target
from llmrelay.providers.table import PROVIDERS
from llmrelay.testing.fake import FakeUpstream, RecordedRequest

#: Keys the seed-002 defaults used to add to every built-in alias's request.
SEED_DEFAULT_KEYS = {
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "max_completion_tokens",
    "system",
    "systemInstruction",
}


def _sent(r: RecordedRequest) -> tuple[str, dict[str, str], Any]:
    return r.path, r.query, r.body


def test_every_provider_wire_has_a_builtin_alias() -> None:
    wires = {PROVIDERS[b.provider].wire for b in BUILTIN_ALIASES.values()}
    assert {"openai_chat", "anthropic_messages", "gemini"} <= wires
    assert {b.provider for b in BUILTIN_ALIASES.values()} >= {
        "openai",
        "anthropic",
        "gemini",
        "groq",
    }


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
async def test_every_builtin_alias_sends_what_provider_model_sends(
    fake: FakeUpstream,
    point_at: Callable[[FakeUpstream], FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
) -> None:
    point_at(fake)
    monkeypatch.setenv("LLMRELAY_ALLOW_RETIRED", "1")  # the seeds' aliases name retired models
    client = llmrelay.Client()
    checked = 0
    try:
        for alias, row in BUILTIN_ALIASES.items():
            assert resolve_target(alias).alias == alias  # resolved as the alias, not a name
            direct = f"{row.provider}/{row.model}"
            bodies = []
            for name in (alias, direct):
                fake.requests.clear()
                if stream:
                    r = await client.astream(name, "What is 2+2?").collect()
                else:
                    r = await client.achat(name, "What is 2+2?")
                assert r.text == "Echo: What is 2+2?", name
                assert r.alias == (alias if name == alias else None)
                (req,) = fake.requests
                bodies.append(_sent(req))
            assert bodies[0] == bodies[1], alias
            body = bodies[0][2]
            assert not SEED_DEFAULT_KEYS & set(body), (alias, sorted(body))
            checked += 1
    finally:
        await client.aclose()
    assert checked == len(BUILTIN_ALIASES) >= 40


async def test_an_alias_without_arguments_sends_only_model_and_messages(
    fake: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    """The issue's example: ``chat("gpt-4o-mini", ...)`` used to add a system message,
    temperature 0.7, top_p 1.0, both penalties and ``max_completion_tokens: 4096``."""
    point_at(fake)
    client = llmrelay.Client()
    try:
        await client.achat("gpt-4o-mini", "hi")
        await client.achat("openai/gpt-4o-mini", "hi")
    finally:
        await client.aclose()
    a, b = (r.body for r in fake.requests)
    assert a == b == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_docs_list_what_every_builtin_alias_sends() -> None:
    """docs/aliases.md has one row per built-in alias naming the provider/model it sends."""
    from pathlib import Path

    from llmrelay.seeds.seed002 import CONFIG_REGISTRY

    doc = (Path(__file__).resolve().parents[2] / "docs" / "aliases.md").read_text("utf-8")
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    assert len(rows) == len(BUILTIN_ALIASES)
    for alias, row in BUILTIN_ALIASES.items():
        cls = CONFIG_REGISTRY[alias]
        assert any(
            r.startswith(f"| `{alias}` | `{row.provider}/{row.model}` | {row.config_max_tokens} |")
            and f"`{cls.__name__}`" in r
            for r in rows
        ), alias
