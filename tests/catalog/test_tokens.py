"""Token counting: exact BPE counts for OpenAI encodings, chat overhead, the estimate."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import warnings

import pytest

import llmrelay
from llmrelay.catalog import tokens
from llmrelay.catalog.tokens import (
    count_message_tokens,
    count_tokens,
    encoding_for_model,
    estimate_tokens,
    is_exact,
)
from llmrelay.errors import InvalidRequestError

# Token ids and counts published in OpenAI's cookbook "How to count tokens with tiktoken".
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]
COOKBOOK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
COOKBOOK_TOOL_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize(
    ("text", "encoding", "ids"),
    [
        ("hello world", "o200k_base", [24912, 2375]),
        ("tiktoken is great!", "cl100k_base", [83, 1609, 5963, 374, 2294, 0]),
        ("tiktoken is great!", "o200k_base", [83, 8251, 2488, 382, 2212, 0]),
        ("antidisestablishmentarianism", "cl100k_base", [519, 85342, 34500, 479, 8997, 2191]),
        ("2 + 2 = 4", "cl100k_base", [17, 489, 220, 17, 284, 220, 19]),
        (
            "お誕生日おめでとう",
            "cl100k_base",
            [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699],
        ),
        ("お誕生日おめでとう", "o200k_base", [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]),
        ("China is great!", "cl100k_base", [23078, 374, 2294, 0]),
    ],
)
def test_known_counts(text: str, encoding: str, ids: list[int]) -> None:
    assert count_tokens(text, encoding=encoding) == len(ids)
    # and the token ids themselves, from the same tokenizer the counts use
    tok = tokens._backend.tokenizer(encoding)
    assert tok is not None
    assert tok.encode(text) == ids  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai/gpt-4.1-mini", "o200k_base"),
        ("gpt-5-nano", "o200k_base"),
        ("o3", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("groq/openai/gpt-oss-120b", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-sonnet-4-5", None),
        ("gemini-2.5-flash", None),
        ("groq/llama-3.1-8b-instant", None),
        (None, None),
    ],
)
def test_encoding_for_model(model: str | None, encoding: str | None) -> None:
    assert encoding_for_model(model) == encoding


def test_model_names_select_the_encoding() -> None:
    assert count_tokens("hello world", model="gpt-4o") == 2
    assert count_tokens("hello world", model="openai/gpt-5") == 2
    assert count_tokens("tiktoken is great!", model="gpt-4") == 6
    assert is_exact("gpt-4o")
    assert not is_exact("claude-sonnet-4-5")


def test_public_names() -> None:
    assert llmrelay.count_tokens("hello world", model="gpt-4o") == 2
    assert llmrelay.count_message_tokens(COOKBOOK_MESSAGES, model="gpt-4o") == 124


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-4", 129), ("gpt-3.5-turbo", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_message_overhead_matches_the_api(model: str, expected: int) -> None:
    """The prompt_tokens OpenAI's API reported for the cookbook's conversation."""
    assert count_message_tokens(COOKBOOK_MESSAGES, model) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-4", 105), ("gpt-3.5-turbo", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)],
)
def test_tool_definitions_match_the_api(model: str, expected: int) -> None:
    assert count_message_tokens(COOKBOOK_TOOL_MESSAGES, model, tools=COOKBOOK_TOOLS) == expected


def test_message_forms_and_images() -> None:
    text = count_message_tokens("hi there", "gpt-4o")
    assert text == 3 + 3 + count_tokens("user", "gpt-4o") + count_tokens("hi there", "gpt-4o")
    img = {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}}
    with_low = count_message_tokens([{"role": "user", "content": [img]}], "gpt-4o")
    img_high = {"type": "image_url", "image_url": {"url": "https://x/a.png"}}
    with_high = count_message_tokens([{"role": "user", "content": [img_high]}], "gpt-4o")
    assert with_high - with_low == tokens.IMAGE_TOKENS["openai"] - tokens.IMAGE_TOKENS["openai_low"]
    claude = count_message_tokens([{"role": "user", "content": [img_high]}], "claude-haiku-4-5")
    assert claude >= tokens.IMAGE_TOKENS["anthropic"]
    call = llmrelay.Message.assistant(tool_calls=[llmrelay.ToolCall("c1", "f", '{"a": 1}')])
    answered = count_message_tokens([call, llmrelay.Message.tool("c1", "42")], "gpt-4o")
    assert answered > count_message_tokens([llmrelay.Message.tool("c1", "42")], "gpt-4o")


def test_estimate_for_providers_without_a_tokenizer() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert count_tokens(text, model="claude-sonnet-4-5") == estimate_tokens(text)
    assert estimate_tokens("") == 0
    assert estimate_tokens("a, b") == 3  # never fewer than words and punctuation
    assert estimate_tokens("x" * 40_000) == 10_000  # about four bytes per token


def test_bad_input_is_a_typed_error() -> None:
    with pytest.raises(InvalidRequestError, match="needs a string"):
        count_tokens(123)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="o200k_base"):
        count_tokens("x", encoding="p50k_base")
    with pytest.raises(InvalidRequestError, match="empty"):
        count_message_tokens([], "gpt-4o")


def test_lone_surrogates_are_counted() -> None:
    assert count_tokens("a\ud800b", model="gpt-4o") == count_tokens("a\ufffdb", model="gpt-4o")


def test_special_token_text_counts_as_text() -> None:
    assert count_tokens("<|endoftext|>", model="gpt-4o") > 1


def test_missing_bpe_openai_falls_back_to_the_estimate_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tokens, "_backend", tokens._Backend(lambda: None, lambda name: None))
    caplog.set_level(logging.WARNING, logger="llmrelay.tokens")
    text = "hello world, this is a test"
    assert count_tokens(text, model="gpt-4o") == estimate_tokens(text)
    assert count_tokens(text, model="gpt-4") == estimate_tokens(text)
    assert not is_exact("gpt-4o")
    warnings = [r for r in caplog.records if r.name == "llmrelay.tokens"]
    assert len(warnings) == 1
    assert "pip install llmrelay[tokens]" in warnings[0].getMessage()


def test_public_api_fallback_when_the_compiled_module_cannot_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> object:
        raise ImportError("incompatible build")

    monkeypatch.setattr(tokens, "_backend", tokens._Backend(broken))
    assert count_tokens("hello world", model="gpt-4o") == 2


def test_counts_equal_tiktoken_on_the_same_tables() -> None:
    """Cross-check against OpenAI's reference implementation, fed the tables bpe-openai ships
    (tiktoken itself would download them)."""
    import tiktoken  # a dev dependency: the reference the counts are checked against

    with warnings.catch_warnings():  # bpe-openai reads its tables with a deprecated API
        warnings.simplefilter("ignore", DeprecationWarning)
        from bpe_openai import registry

        metas = {n: registry.ENCODING_CONSTRUCTORS[n]() for n in ("o200k_base", "cl100k_base")}

    rnd = random.Random(7)
    alphabet = "abc XYZ 123 \n\t.,;'\"é漢😀-_/\\\r"
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60))) for _ in range(300)]
    texts += ["def f(x):\n    return x ** 2\n", "I'm they're we've HE'LL", "  \n\n  x"]
    for name, meta in metas.items():
        ref = tiktoken.Encoding(
            name,
            pat_str=meta["pat_str"],
            mergeable_ranks=meta["mergeable_ranks"],
            special_tokens=meta["special_tokens"],
        )
        for t in texts:
            assert count_tokens(t, encoding=name) == len(ref.encode_ordinary(t)), (name, t)


def test_counting_never_touches_the_network() -> None:
    code = (
        "import socket\n"
        "def boom(*a, **k):\n"
        "    raise AssertionError('network used')\n"
        "socket.socket = boom\n"
        "socket.create_connection = boom\n"
        "socket.getaddrinfo = boom\n"
        "import llmrelay\n"
        "print(llmrelay.count_tokens('hello world', model='gpt-4o'),"
        " llmrelay.count_tokens('hello world', model='gpt-4'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "2"]


def test_import_llmrelay_does_not_load_the_tokenizer() -> None:
    code = (
        "import sys, llmrelay\n"
        "llmrelay.count_tokens\n"
        "print('bpe_openai._bindings' in sys.modules,\n"
        "      'llmrelay.catalog.model_registry' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "False"]
