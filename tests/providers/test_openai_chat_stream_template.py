"""The OpenAI stream parser's shortcut for text events that differ from an earlier one only in
their text (``OpenAIChatStream._template``): it must give exactly what parsing every event whole
gives, whatever sits where the text was (another string, other JSON, keys smuggled in)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay.providers.adapters.openai_chat import OpenAIChatAdapter
from llmrelay.providers.adapters.openai_chat_stream import OpenAIChatStream
from llmrelay.transport.sse import SSEDecoder
from llmrelay.types import TextRun, text_chunk

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
            m.setattr(OpenAIChatStream, "_template", lambda *a: None)
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


# --------------------------------------------------------------------------- padding and runs

#: OpenAI pads every event with a random ``obfuscation`` string after the usage (Azure's keys
#: come sorted: the padding sits between the choices and "object"). Layouts from the recorded
#: streams in tests/recordings (pydantic-ai test_openai, vercel-ai azure-text).
PAD_LAYOUTS = {
    "openai": (HEAD, '},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"{}"}'),
    "azure": (
        '{"choices":[{"content_filter_results":{},"delta":{"content":',
        '},"finish_reason":null,"index":0,"logprobs":null}],"created":1,"id":"chatcmpl-1",'
        '"model":"gpt-4","obfuscation":"{}","object":"chat.completion.chunk","usage":null}',
    ),
}

#: What may sit where the padding was: letters and digits are the template's; anything else
#: is not (the event is parsed whole), and some of it is not even JSON.
PADS = ["", "Ab3", "x" * 40, 'a"b', "a\\", 'a\\"', "é", "a b", '","content":"z', "\\u0041"]


def _padded(layout: str, middle: str, pad: str) -> bytes:
    head, tail = PAD_LAYOUTS[layout]
    return _frame(head + middle + tail.replace("{}", pad, 1))


@pytest.mark.parametrize("layout", sorted(PAD_LAYOUTS))
@pytest.mark.parametrize("middle", MIDDLES)
@pytest.mark.parametrize("pad", PADS)
def test_padding_and_anything_in_the_text_place_give_what_a_whole_parse_gives(
    layout: str, middle: str, pad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = [
        _padded(layout, '"Hello"', "Q1w2"),
        _padded(layout, '" there"', "zz9"),
        _padded(layout, middle, pad),
        _padded(layout, '"!"', ""),
        *FINAL,
    ]
    fast, state = _run(frames, shortcut=True, monkeypatch=monkeypatch)
    slow, _ = _run(frames, shortcut=False, monkeypatch=monkeypatch)
    assert fast == slow
    assert state._pre == PAD_LAYOUTS[layout][0]  # the shortcut was taken, padding and all
    assert state._mid is not None


def test_the_padding_slot_takes_the_last_match_of_what_precedes_it() -> None:
    # The text itself holds what comes between the text and the padding: the split must still
    # be where the padding starts (a text string cannot hold an unescaped quote).
    tail = PAD_LAYOUTS["openai"][1]
    mid = tail[: tail.index("{}")]
    words = ["a", mid, "b" + mid + "c", '"' + mid]
    frames = [_padded("openai", orjson.dumps(w).decode(), "Pad9") for w in ["x", *words]]
    state = A.stream_state(chat("x", stream=True), DEP)
    chunks = feed(state, [*frames, *FINAL])
    assert [c.delta for c in chunks if c.delta] == ["x", *words]
    assert state._mid == mid


#: Events of a stream for the read-by-read test: (kind, payload).
_word = st.text(min_size=0, max_size=6)
_event = st.one_of(
    st.tuples(st.just("text"), _word),
    st.tuples(st.just("middle"), st.sampled_from(MIDDLES)),
    st.tuples(st.just("pad"), st.sampled_from(PADS)),
    st.tuples(st.just("tool"), st.sampled_from(['{"a"', ":1}"])),
    st.tuples(st.just("reasoning"), _word),
)


def _event_frame(kind: str, payload: str, layout: str) -> bytes:
    if kind == "text":
        return _padded(layout, orjson.dumps(payload).decode(), "Pd1")
    if kind == "middle":
        return _padded(layout, payload, "Pd2")
    if kind == "pad":
        return _padded(layout, '"p"', payload)
    delta = (
        {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": payload}}]}
        if kind == "tool"
        else {"reasoning_content": payload}
    )
    return _frame(orjson.dumps(chat_chunk(delta)).decode())


def chat_chunk(delta: dict[str, Any]) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "model": "gpt-4.1-mini", "choices": [{"index": 0, "delta": delta}]}


def _expanded(state: Any, reads: list[bytes]) -> Any:
    """What a stream's caller sees of ``reads``: the chunks ``feed_values`` gives read by read
    (``TextRun`` pieces one chunk each), the final response or what was raised."""
    dec = SSEDecoder()
    out: list[Any] = []
    try:
        for r in reads:
            for c in state.feed_values(dec.feed_data(r)):
                if isinstance(c, TextRun):
                    assert len(c.pieces) > 1
                    assert all(c.pieces)
                    assert c.delta == "".join(c.pieces)
                    out += [text_chunk(p) for p in c.pieces]
                else:
                    out.append(c)
        end: Any = state.finish()
    except Exception as exc:
        return [*out, ("raised", type(exc).__name__, str(exc), state.partial())]
    return [*out, end]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(_event, max_size=25),
    layout=st.sampled_from(sorted(PAD_LAYOUTS)),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=8),
)
def test_events_read_together_give_what_each_event_parsed_whole_gives(
    events: list[tuple[str, str]], layout: str, cuts: list[int]
) -> None:
    frames = [_padded(layout, '"first"', "A"), *(_event_frame(k, p, layout) for k, p in events)]
    frames += FINAL
    # The frames cut into reads of whole frames and pieces of frames.
    body = b"".join(frames)
    points = sorted({min(len(body), c * 37) for c in cuts})
    reads = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True) if b > a]
    fast = _expanded(A.stream_state(chat("x", stream=True), DEP), reads)
    slow_state = A.stream_state(chat("x", stream=True), DEP)
    slow_state._pre = ""  # the template never made: every event parsed whole, one by one
    slow = _expanded(slow_state, [body])
    assert fast == slow


#: Middles that are valid inside a JSON array but not one string alone.
ARRAY_MIDDLES = ['"a","b"', '"a",1', "1", "null", '"a"]', '["b"', "[]", '"a",["b"]', '"\\ud800"']


@pytest.mark.parametrize("layout", sorted(PAD_LAYOUTS))
@pytest.mark.parametrize("middle", MIDDLES + ARRAY_MIDDLES)
@pytest.mark.parametrize("at", [0, 2, 5])
def test_a_run_read_together_gives_what_each_event_parsed_whole_gives(
    layout: str, middle: str, at: int
) -> None:
    # Six text events in one read after the first, with one odd middle at the start of the
    # run, inside it or at its end.
    words = ['"one"', '" two"', '""', '" th\\"ree"', '" f\\u00f6ur"', '" five"']
    middles = [*words[:at], middle, *words[at:]]
    body = b"".join(
        [_padded(layout, '"first"', "A"), *(_padded(layout, m, "Pd7") for m in middles), *FINAL]
    )
    fast = _expanded(A.stream_state(chat("x", stream=True), DEP), [body])
    slow_state = A.stream_state(chat("x", stream=True), DEP)
    slow_state._pre = ""  # the template never made: every event parsed whole, one by one
    assert fast == _expanded(slow_state, [body])
