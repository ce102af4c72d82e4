"""The OpenAI stream parser's shortcut for text events that differ from an earlier one only in
their text (``_OpenAIStream._template``): it must give exactly what parsing every event whole
gives, whatever sits where the text was (another string, other JSON, keys smuggled in)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmrelay.providers.adapters.openai_chat import OpenAIChatAdapter, _OpenAIStream

from .sansio import chat, deployment, feed

A = OpenAIChatAdapter()
DEP = deployment("openai", "gpt-4.1-mini")
HEAD = (
    '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4.1-mini",'
    '"choices":[{"index":0,"delta":{"content":'
)
TAIL = '},"logprobs":null,"finish_reason":null}],"usage":null}'


def _frame(data: str) -> bytes:
    return b"data: " + data.encode() + b"\n\n"


def _text(t: str) -> bytes:
    return _frame(HEAD + orjson.dumps(t).decode() + TAIL)


FINAL = [
    _frame(
        HEAD[: HEAD.index('"choices"')]
        + '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
    ),
    _frame(
        HEAD[: HEAD.index('"choices"')]
        + '"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}'
    ),
    b"data: [DONE]\n\n",
]

#: What may sit where a text event's text was (the rest of the event unchanged).
MIDDLES = [
    '"plain"',
    '""',
    '"caf\\u00e9 \\"quoted\\" \\n \\\\ \\u0000"',
    '"日本語 ✓"',
    "null",
    "123",
    '["x"]',
    '{"a":"b"}',
    '"a","content":"b"',
    '"a","role":"assistant"',
    '"a"},"finish_reason":"stop","x":{"y":"z"',
    '"a"}}],"usage":{"prompt_tokens":1,"completion_tokens":2},"choices":[{"delta":{"content":"b"',
    '"a"}}],"error":{"message":"boom","code":500},"x":[{"y":{"z":"b"',
    '"unterminated',
    '"a" "b"',
    " ",
]


def _run(frames: list[bytes], *, shortcut: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    """(chunks, final response or the error raised, state) for ``frames``."""
    with monkeypatch.context() as m:
        if not shortcut:
            m.setattr(_OpenAIStream, "_template", lambda *a: None)
        state = A.stream_state(chat("x", stream=True), DEP)
        try:
            chunks = feed(state, frames)
            end: Any = state.finish()
        except Exception as exc:
            return ("raised", type(exc).__name__, str(exc), state.partial()), state
        return (chunks, end), state


@pytest.mark.parametrize("middle", MIDDLES)
def test_anything_in_the_text_place_gives_what_a_whole_parse_gives(
    middle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = [_text("Hello"), _text(" there"), _frame(HEAD + middle + TAIL), _text("!"), *FINAL]
    fast, state = _run(frames, shortcut=True, monkeypatch=monkeypatch)
    slow, _ = _run(frames, shortcut=False, monkeypatch=monkeypatch)
    assert fast == slow
    assert state._pre == HEAD  # the shortcut was taken (the test tests it)


def test_the_shortcut_gives_the_texts() -> None:
    words = ["Hello", " wörld", ' "q"', "\n", "", "\u2028", "end"]
    chunks, state = feed_words(words)
    assert [c.delta for c in chunks if c.delta] == [w for w in words if w]
    assert state.finish().text == "".join(words)
    assert state.finish().usage.output_tokens == 7


def feed_words(words: list[str]) -> Any:
    state = A.stream_state(chat("x", stream=True), DEP)
    return feed(state, [*(_text(w) for w in words), *FINAL]), state


@pytest.mark.parametrize(
    ("first", "taken"),
    [
        # The first "content" is the text's: the rest (another "content") is the same part.
        ('{"choices":[{"delta":{"content":"x"}}],"content":"x"}', True),
        # Where the text is cannot be told from these: no shortcut, every event parsed whole.
        ('{"content":"x","choices":[{"delta":{"content":"x"}}]}', False),
        ('{"choices":[{"delta":{"content":"\\u0078"}}]}', False),
        ('{"choices":[{"delta":{"content" : "x"}}]}', False),
    ],
)
def test_the_shortcut_only_where_the_text_is_placed(
    first: str, taken: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = first.replace('"x"', '"y"').replace("\\u0078", "y")
    frames = [_frame(first), _frame(later), *FINAL]
    fast, state = _run(frames, shortcut=True, monkeypatch=monkeypatch)
    slow, _ = _run(frames, shortcut=False, monkeypatch=monkeypatch)
    assert fast == slow
    assert bool(state._pre) is taken
    assert [c.delta for c in fast[0] if c.delta] == ["x", "y"]
