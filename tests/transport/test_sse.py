"""The incremental SSE decoder: line ends, chunking, UTF-8, fields, and a chunking property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.errors import ResponseTooLargeError
from llmrelay.transport.sse import SSEDecoder, SSEEvent


def decode_whole(data: bytes) -> list[SSEEvent]:
    d = SSEDecoder()
    return d.feed(data) + d.flush()


def decode_split(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    d = SSEDecoder()
    out: list[SSEEvent] = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out += d.feed(data[prev:cut])
        prev = cut
    return out + d.flush()


def bytewise(data: bytes) -> list[SSEEvent]:
    return decode_split(data, list(range(len(data))))


# --------------------------------------------------------------------------- line ends


@pytest.mark.parametrize("eol", ["\n", "\r", "\r\n"])
def test_each_line_end_style(eol: str) -> None:
    raw = f"event: a{eol}data: one{eol}{eol}data: two{eol}{eol}".encode()
    expected = [SSEEvent("one", "a"), SSEEvent("two")]
    assert decode_whole(raw) == expected
    assert bytewise(raw) == expected


def test_mixed_line_ends_in_one_stream() -> None:
    raw = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r"
    assert decode_whole(raw) == [SSEEvent("a\nb\nc"), SSEEvent("d")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    d = SSEDecoder()
    # CR ends the first chunk, LF starts the next: one line end, not a blank line in between.
    assert d.feed(b"data: x\r") == []
    assert d.feed(b"\ndata: y\r") == []
    assert d.feed(b"\n\r") == [SSEEvent("x\ny")]
    assert d.feed(b"\n") == []  # the LF after that CR
    assert not d.has_partial


def test_cr_then_cr_across_chunks_is_two_line_ends() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: x\r") == []
    assert d.feed(b"\r") == [SSEEvent("x")]


def test_cr_at_chunk_end_then_empty_chunk_then_lf() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: x\r") == []
    assert d.feed(b"") == []
    assert d.feed(b"\n") == []  # still the same CRLF
    assert d.feed(b"\n") == [SSEEvent("x")]


# --------------------------------------------------------------------------- chunking and UTF-8


def test_event_split_across_chunks() -> None:
    d = SSEDecoder()
    assert d.feed(b"da") == []
    assert d.feed(b'ta: {"a":') == []
    assert d.has_partial
    assert d.feed(b" 1}\n") == []
    assert d.feed(b"\n") == [SSEEvent('{"a": 1}')]
    assert not d.has_partial


@pytest.mark.parametrize("ch", ["é", "€", "😀", "中"])
def test_multibyte_character_split_at_every_byte(ch: str) -> None:
    raw = f"data: a{ch}b\n\n".encode()
    start = raw.index(ch.encode())
    for cut in range(start + 1, start + len(ch.encode())):
        d = SSEDecoder()
        first = d.feed(raw[:cut])
        assert first == []
        assert d.has_partial
        assert d.feed(raw[cut:]) == [SSEEvent(f"a{ch}b")]


def test_emoji_fed_one_byte_at_a_time() -> None:
    raw = "event: 🎉\ndata: ça coûte 5€ 😀\n\n".encode()
    assert bytewise(raw) == [SSEEvent("ça coûte 5€ 😀", "🎉")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode_whole(b"data: a\xffb\n\n") == [SSEEvent("a\ufffdb")]


# --------------------------------------------------------------------------- fields


def test_comments_and_pings_are_ignored() -> None:
    raw = b": ping\n:\n:keep-alive\ndata: x\n: in the middle\ndata: y\n\n: ping\n\n"
    assert decode_whole(raw) == [SSEEvent("x\ny")]


def test_all_fields() -> None:
    raw = b"event: update\nid: 42\nretry: 1500\ndata: hello\n\n"
    assert decode_whole(raw) == [SSEEvent("hello", "update", "42", 1500)]


def test_id_persists_and_retry_belongs_to_one_event() -> None:
    raw = b"id: 7\nretry: 10\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"
    d = SSEDecoder()
    a, b, c = d.feed(raw)
    assert (a.id, a.retry) == ("7", 10)
    assert (b.id, b.retry) == ("7", None)  # the last event ID persists (spec)
    assert c.id == ""  # "id" with no colon resets it to the empty string
    assert d.last_event_id == ""


def test_id_with_nul_is_ignored() -> None:
    assert decode_whole(b"id: 1\n\nid: a\x00b\ndata: x\n\n") == [SSEEvent("x", id="1")]


@pytest.mark.parametrize("value", ["abc", "1.5", "-3", "", " ", "²", "١٢"])
def test_non_ascii_digit_retry_is_ignored(value: str) -> None:
    assert decode_whole(f"retry: {value}\ndata: x\n\n".encode()) == [SSEEvent("x")]


def test_multi_line_data_joins_with_lf() -> None:
    assert decode_whole(b"data: line one\ndata:line two\ndata:  indented\n\n") == [
        SSEEvent("line one\nline two\n indented")
    ]


def test_field_with_no_colon() -> None:
    # "data" alone is a data field with an empty value; two of them make "\n".
    assert decode_whole(b"data\n\n") == [SSEEvent("")]
    assert decode_whole(b"data\ndata\n\n") == [SSEEvent("\n")]
    assert decode_whole(b"event\ndata: x\n\n") == [SSEEvent("x", "message")]


def test_only_one_leading_space_is_stripped() -> None:
    assert decode_whole(b"data:   x \n\n") == [SSEEvent("  x ")]
    assert decode_whole(b"data:x:y\n\n") == [SSEEvent("x:y")]


def test_leading_bom_is_stripped_once() -> None:
    assert decode_whole(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent("x")]
    assert bytewise(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent("x")]
    # A second BOM is part of the field name, so the line is an unknown field.
    assert decode_whole(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []
    # A BOM later in the stream is data.
    assert decode_whole(b"data: \xef\xbb\xbfx\n\n") == [SSEEvent("\ufeffx")]


def test_unknown_fields_are_ignored() -> None:
    assert decode_whole(b"foo: bar\nDATA: no\ndata: yes\nEvent: x\n\n") == [SSEEvent("yes")]


def test_event_without_data_dispatches_nothing_and_resets_the_type() -> None:
    raw = b"event: lonely\n\ndata: x\n\nevent: a\nid: 3\n\n"
    d = SSEDecoder()
    assert d.feed(raw) == [SSEEvent("x")]  # "lonely" does not leak into the next event
    assert d.last_event_id == "3"
    assert not d.has_partial


def test_blank_lines_alone_dispatch_nothing() -> None:
    assert decode_whole(b"\n\n\r\n\r\r") == []


# --------------------------------------------------------------------------- provider framing


def test_openai_framing_with_done() -> None:
    raw = (
        b'data: {"id":"c1","choices":[{"delta":{"content":"Hi"}}]}\n\n'
        b": OPENROUTER PROCESSING\n\n"
        b'data: {"id":"c1","choices":[],"usage":{"total_tokens":3}}\n\n'
        b"data: [DONE]\n\n"
    )
    events = bytewise(raw)
    assert [e.event for e in events] == ["message"] * 3
    assert events[0].data == '{"id":"c1","choices":[{"delta":{"content":"Hi"}}]}'
    assert events[-1].data == "[DONE]"


def test_anthropic_event_framing() -> None:
    raw = (
        b'event: message_start\ndata: {"type":"message_start"}\n\n'
        b'event: ping\ndata: {"type": "ping"}\n\n'
        b'event: content_block_delta\r\ndata: {"type":"content_block_delta",\r\n'
        b'data: "delta":{"text":"Hi"}}\r\n\r\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    events = decode_whole(raw)
    assert [e.event for e in events] == [
        "message_start",
        "ping",
        "content_block_delta",
        "message_stop",
    ]
    assert events[2].data == '{"type":"content_block_delta",\n"delta":{"text":"Hi"}}'


# --------------------------------------------------------------------------- end of stream


def test_clean_end_has_no_partial() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: x\n\n") == [SSEEvent("x")]
    assert d.flush() == []
    assert not d.has_partial


@pytest.mark.parametrize(
    "tail",
    [
        b"data: cut",  # mid-line
        b"data: cut\n",  # a complete field line, no blank line
        b"data: cut\r",  # the same with CR
        b"event: x\n",  # a field but no data yet
        b"data: \xe2\x82",  # inside a UTF-8 sequence
    ],
)
def test_stream_cut_mid_event(tail: bytes) -> None:
    d = SSEDecoder()
    assert d.feed(b"data: first\n\n" + tail) == [SSEEvent("first")]
    assert d.has_partial
    assert d.flush() == []  # the spec discards an unterminated event
    assert d.has_partial  # and the cut stays visible after flush


def test_only_comments_after_last_event_is_not_partial() -> None:
    d = SSEDecoder()
    d.feed(b"data: x\n\n: ping\n")
    assert d.flush() == []
    assert not d.has_partial


def test_truncated_utf8_at_flush_becomes_replacement() -> None:
    d = SSEDecoder()
    d.feed(b"data: \xe2\x82")
    d.flush()
    assert d.has_partial
    assert d.feed(b"\n\n") == [SSEEvent("\ufffd")]


# --------------------------------------------------------------------------- property

_EOLS = ["\n", "\r", "\r\n"]
#: Characters that stress the decoder: multi-byte UTF-8 of every length, a BOM, NUL, and Unicode
#: line separators that are NOT SSE line ends (NEL, LS, PS, VT, FF), plus any other character.
_TRICKY = "aZ :é€😀中\ufeff\x00\x85\u2028\u2029\x0b\x0c\t𝄞"
_char = st.one_of(
    st.sampled_from(_TRICKY),
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
)
_name = st.text(alphabet=_char, min_size=1, max_size=8)
_line_text = st.text(alphabet=_char, max_size=16)


@st.composite
def event_streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """A serialised stream (random names, unicode data, line ends, comments, fields) and the
    events it must decode to."""
    lines: list[str] = []
    expected: list[SSEEvent] = []
    last_id: str | None = None
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            lines.append(":" + draw(_line_text))  # comment / ping
        name = draw(st.one_of(st.none(), _name))
        if name is not None:
            lines.append(f"event: {name}")
        ev_id = draw(st.one_of(st.none(), _line_text.filter(lambda s: "\x00" not in s)))
        if ev_id is not None:
            lines.append(f"id: {ev_id}")
            last_id = ev_id
        retry = draw(st.one_of(st.none(), st.integers(0, 10**6)))
        if retry is not None:
            lines.append(f"retry: {retry}")
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["foo: bar", "Data: no", "retry: soon", "x"])))
        values: list[str] = []
        for dl in draw(st.lists(_line_text, min_size=1, max_size=3)):
            if draw(st.booleans()):
                lines.append(f"data: {dl}")
                values.append(dl)
            else:  # no space after the colon: a leading space of the value is then stripped
                lines.append(f"data:{dl}")
                values.append(dl.removeprefix(" "))
            if draw(st.booleans()):
                lines.append(":" + draw(_line_text))
        expected.append(SSEEvent("\n".join(values), name or "message", last_id, retry))
        lines.append("")  # the blank line that dispatches
    parts: list[str] = []
    eol = ""
    for line in lines:
        # After a CR, an empty line ending in LF would merge into one CRLF: pick another end.
        choices = ["\r", "\r\n"] if eol == "\r" and not line else _EOLS
        eol = draw(st.sampled_from(choices))
        parts += (line, eol)
    text = "".join(parts)
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text).encode(), expected


@settings(max_examples=100, deadline=None)
@given(stream=event_streams(), data=st.data())
def test_any_chunking_yields_the_same_events(
    stream: tuple[bytes, list[SSEEvent]], data: st.DataObject
) -> None:
    raw, expected = stream
    whole = decode_whole(raw)
    assert whole == expected
    # Random split points, and every split point at once (1-byte chunks).
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=40))
    assert decode_split(raw, cuts) == whole
    assert bytewise(raw) == whole


# --------------------------------------------------------------------------- fast path
# Single-``data:``-line events and ``event:`` + ``data:`` pairs, LF-terminated, are cut from the
# bytes directly; everything else is interpreted line by line. The property below compares the
# decoder, under any chunking, with a whole-stream reading of the spec written out here.


def reference(raw: bytes, limit: int | None = None) -> list[SSEEvent] | None:
    """The events of a whole stream per the spec (None: a line or an event's data is over
    ``limit`` characters)."""
    text = raw.decode("utf-8", "replace").removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    unfinished = lines.pop()  # never interpreted, but limited too
    if limit is not None and len(unfinished) > limit:
        return None
    out: list[SSEEvent] = []
    data: list[str] = []
    size = 0
    name, last_id, retry = "", None, None
    for line in lines:
        if limit is not None and len(line) > limit:
            return None
        if not line:
            if data:
                out.append(SSEEvent("\n".join(data), name or "message", last_id, retry))
                retry = None
            data, size, name = [], 0, ""
            continue
        if line.startswith(":"):
            continue
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            size += len(value) + 1
            if limit is not None and size > limit:
                return None
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id" and "\x00" not in value:
            last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return out


_value = st.text(alphabet=_char, max_size=12).map(str.encode) | st.sampled_from(
    [b"", b"[DONE]", b'{"a":"\xc3\xa9"}', b"\xff\xfe", b"\xe2\x82", b"x\x00y", b" lead"]
)
_block = st.one_of(
    _value.map(lambda v: b"data: " + v),  # OpenAI
    st.tuples(_value, _value).map(lambda p: b"event: " + p[0] + b"\ndata: " + p[1]),
    _value.map(lambda v: b":" + v),  # a ping
    st.sampled_from(
        [
            b"",
            b"data:x",
            b"data: a\ndata: b",
            b"id: 7\ndata: i",
            b"retry: 30\ndata: r",
            b"retry: 5",
            b"event: lonely",
            b"data: a\r\ndata: b",
            b"data: c\rdata: d",
            b"data: e\n: ping\ndata: f",
            b"data",
            b"\n",
            b"x" * 40,
        ]
    ),
)


@st.composite
def fast_streams(draw: st.DrawFn) -> bytes:
    """Streams mostly of the shapes the fast path takes, mixed with ones it hands over."""
    blocks = draw(st.lists(_block, max_size=8))
    seps = [
        draw(st.sampled_from([b"\n\n", b"\n\n", b"\n\n\n", b"\r\n\r\n", b"\n\r\n"])) for _ in blocks
    ]
    raw = b"".join(b + s for b, s in zip(blocks, seps, strict=True))
    raw += draw(st.sampled_from([b"", b"data: cut", b"data: cut\n", b": ping\n", b"\n", b"\xe2"]))
    bom = draw(st.sampled_from([b"", b"", b"\xef\xbb\xbf", b"\xef\xbb"]))
    return bom + raw


def split_at(data: bytes, cuts: list[int], limit: int | None = None) -> list[SSEEvent] | None:
    d = SSEDecoder() if limit is None else SSEDecoder(limit)
    out: list[SSEEvent] = []
    prev = 0
    try:
        for cut in [*sorted(set(cuts)), len(data)]:
            out += d.feed(data[prev:cut])
            prev = cut
        # An event past the limit right after others of the last piece raises here.
        return out + d.flush()
    except ResponseTooLargeError:
        return None


@settings(max_examples=300, deadline=None)
@given(raw=fast_streams(), data=st.data())
def test_fast_path_matches_the_spec_for_any_chunking(raw: bytes, data: st.DataObject) -> None:
    expected = reference(raw)
    assert split_at(raw, []) == expected
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=20))
    assert split_at(raw, cuts) == expected
    assert split_at(raw, list(range(len(raw)))) == expected


@settings(max_examples=200, deadline=None)
@given(raw=fast_streams(), limit=st.integers(1, 30), data=st.data())
def test_fast_path_limits_match_the_spec(raw: bytes, limit: int, data: st.DataObject) -> None:
    expected = reference(raw, limit)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=20))
    for chunks in ([], cuts, list(range(len(raw)))):
        got = split_at(raw, chunks, limit)
        # A stream over the limit raises (wherever it is cut), one under it decodes in full.
        assert (got is None) == (expected is None)
        if expected is not None:
            assert got == expected


@settings(max_examples=200, deadline=None)
@given(raw=fast_streams(), data=st.data())
def test_has_partial_does_not_depend_on_chunking(raw: bytes, data: st.DataObject) -> None:
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=10))))
    whole, split = SSEDecoder(), SSEDecoder()
    events = whole.feed(raw)
    prev = 0
    for cut in [*cuts, len(raw)]:
        events_split = split.feed(raw[prev:cut])
        prev = cut
        assert isinstance(events_split, list)
    assert whole.has_partial == split.has_partial
    assert events == events + whole.flush()
    split.flush()
    assert whole.has_partial == split.has_partial


def test_fast_path_events_are_the_dataclass() -> None:
    (ev,) = SSEDecoder().feed(b"data: x\n\n")
    assert type(ev) is SSEEvent
    assert ev == SSEEvent("x")
    assert hash(ev) == hash(SSEEvent("x"))
    with pytest.raises(AttributeError):
        ev.data = "y"  # type: ignore[misc]


def test_comment_after_the_last_event_is_not_partial_before_flush() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: x\n\n: ping\n") == [SSEEvent("x")]
    assert not d.has_partial
    assert d.feed(b"data: y\n\n\n") == [SSEEvent("y")]
    assert not d.has_partial
    assert d.feed(b"data: z") == []
    assert d.has_partial


def test_handover_and_back_keeps_the_last_id_and_retry() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: a\n\nid: 9\nretry: 12\n\n") == [SSEEvent("a")]
    # The id and the retry were set on the line-by-line way; the fast path carries them on.
    assert d.feed(b"data: b\n\ndata: c\n\n") == [
        SSEEvent("b", id="9", retry=12),
        SSEEvent("c", id="9"),
    ]


# --------------------------------------------------------------------------- feed_data


def data_at(
    data: bytes, cuts: list[int], limit: int | None = None, mixed: bool = False
) -> tuple[list[str], bool, str | None] | None:
    """``feed_data`` over the pieces (``mixed``: every other piece through ``feed``): the data
    values, then ``has_partial`` and ``last_event_id`` at the end (None: over ``limit``)."""
    d = SSEDecoder() if limit is None else SSEDecoder(limit)
    out: list[str] = []
    prev = 0
    try:
        for i, cut in enumerate([*sorted(set(cuts)), len(data)]):
            piece = data[prev:cut]
            if mixed and i % 2:
                out += [ev.data for ev in d.feed(piece)]
            else:
                out += d.feed_data(piece)
            prev = cut
        out += [ev.data for ev in d.flush()]
    except ResponseTooLargeError:
        return None
    return out, d.has_partial, d.last_event_id


@settings(max_examples=300, deadline=None)
@given(raw=fast_streams(), limit=st.sampled_from([None, 8, 30]), data=st.data())
def test_feed_data_is_the_data_of_feed(raw: bytes, limit: int | None, data: st.DataObject) -> None:
    expected = split_at(raw, [], limit)
    d = SSEDecoder() if limit is None else SSEDecoder(limit)
    ok = expected is not None and d.feed(raw) is not None
    want = (
        ([ev.data for ev in expected], d.has_partial, d.last_event_id)
        if ok and expected is not None
        else None
    )
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=20))
    for chunks in ([], cuts, list(range(len(raw)))):
        assert data_at(raw, chunks, limit) == want
        assert data_at(raw, chunks, limit, mixed=True) == want


def test_feed_data_cuts_whole_data_events_and_keeps_the_rest() -> None:
    d = SSEDecoder()
    first = b'data: a\n\ndata: \n\ndata: {"b": 1}\n\ndata: par'
    assert d.feed_data(first) == ["a", "", '{"b": 1}']
    assert d.has_partial
    assert d.feed_data(b"tial\n\nid: 4\n\ndata: x\n\n") == ["partial", "x"]
    assert d.last_event_id == "4"
    assert d.feed_data(b"data: y\n\n") == ["y"]
    assert not d.has_partial
    # A line of 11 characters, "data: " counted: over a limit of 10.
    for chunk, before in ((b"data: 01234\n\n", []), (b"data: 0123\n\ndata: 01234\n\n", ["0123"])):
        d = SSEDecoder(10)
        assert d.feed_data(b"data: a\n\n") == ["a"]  # started: past the first chunk's checks
        if before:  # the events before it first; the next read raises
            assert d.feed_data(chunk) == before
        with pytest.raises(ResponseTooLargeError):
            d.feed_data(chunk)
    assert SSEDecoder(10).feed_data(b"data: 0123\n\n") == ["0123"]


@pytest.mark.parametrize("how", ["feed", "feed_data"])
@pytest.mark.parametrize(
    "chunk",
    [
        b"data: one\n\ndata: two\n\ndata: " + b"x" * 50 + b"\n\ndata: after\n\n",
        b"data: one\n\ndata: two\n\ndata: " + b"x" * 50,  # the long line not yet ended
        b"data: one\n\ndata: two\n\n: ping\nid: 3\ndata: " + b"x" * 50 + b"\n\n",  # slow path
        b"data: one\n\ndata: two\n\n" + b"data: xxxxxxxx\n" * 8 + b"\n",  # many lines
    ],
)
def test_events_before_one_past_the_limit_in_the_same_read_are_kept(chunk: bytes, how: str) -> None:
    # A read holding good events and then one past the limit: the good ones are the stream's
    # (a caller sees their text, a cut stream's partial answer holds it); reading stops at the
    # bad one, which the next read -- or the end of the stream -- raises. Nothing after it.
    for end in ("feed", "flush"):
        d = SSEDecoder(40)
        got = d.feed(chunk) if how == "feed" else d.feed_data(chunk)
        assert [e if isinstance(e, str) else e.data for e in got] == ["one", "two"]
        later = d.feed if how == "feed" else d.feed_data
        with pytest.raises(ResponseTooLargeError) as info:
            later(b"data: later\n\n") if end == "feed" else d.flush()
        assert info.value.setting == "max_event_bytes"
