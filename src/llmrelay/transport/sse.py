"""An incremental Server-Sent Events decoder (WHATWG HTML, "event stream interpretation").

Feed it bytes exactly as they arrive from the network; it yields complete events. It handles
CR, LF and CRLF line ends (a CR at the end of one chunk followed by LF at the start of the next is
one line end), multi-byte UTF-8 characters split across chunks, comment lines (``:ping``),
``event``/``data``/``id``/``retry`` fields, multi-line data, a field with no colon, a leading
BOM, and ignores unknown fields. It is pure: no I/O, so any chunking of the same bytes yields the
same events.

At the end of the stream call :meth:`SSEDecoder.flush`: as the spec says, an event whose closing
blank line never came is discarded, and :attr:`SSEDecoder.has_partial` then tells a stream cut
mid-event from a clean end.

Memory is bounded: a line, or the data of one event, longer than ``max_event_bytes``
characters of decoded text (the byte count for ASCII, never more than it) raises
``ResponseTooLargeError`` as soon as it is seen, so an endless line is not buffered whole. The
stream as a whole is not limited: it may run as long as its events stay small.

Most events are one ``data:`` line (OpenAI) or an ``event:`` line and a ``data:`` line
(Anthropic), LF-terminated. Those are cut from the bytes directly, one ``split`` per network
chunk, and only their values are decoded; anything else (a CR, a comment, ``id``/``retry``,
multi-line data, a BOM, a partial line carried over ...) goes through the line-by-line
interpretation, which the fast path hands over to whenever it meets something it does not
handle. Both give the same events for any chunking of the same bytes.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from ..errors import ResponseTooLargeError
from .base import DEFAULT_MAX_EVENT_BYTES

__all__ = ["SSEDecoder", "SSEEvent"]


@dataclass(slots=True, frozen=True)
class SSEEvent:
    """One dispatched event.

    ``event`` defaults to ``"message"``; ``id`` is the stream's last event ID (it persists across
    events, per the spec); ``retry`` is a reconnection time in milliseconds sent since the
    previous event, if any.
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


_new = object.__new__
#: The UTF-8 incremental decoder's class (looked up once, not per stream).
_UTF8 = codecs.getincrementaldecoder("utf-8")
_set_data, _set_event, _set_id, _set_retry = (
    SSEEvent.__dict__[name].__set__ for name in ("data", "event", "id", "retry")
)


def _event(data: str, event: str, id: str | None, retry: int | None) -> SSEEvent:
    """``SSEEvent(data, event, id, retry)`` at half the cost: a frozen dataclass's ``__init__``
    sets each field through ``object.__setattr__``; this sets the slots directly."""
    ev: SSEEvent = _new(SSEEvent)
    _set_data(ev, data)
    _set_event(ev, event)
    _set_id(ev, id)
    _set_retry(ev, retry)
    return ev


class SSEDecoder:
    """Bytes in, :class:`SSEEvent` out. One decoder per stream."""

    __slots__ = (
        "_buf",
        "_data",
        "_decoder",
        "_event",
        "_failed",
        "_in_event",
        "_last_id",
        "_limit",
        "_pending_cr",
        "_raw",
        "_retry",
        "_size",
        "_slow",
        "_started",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._limit = max_event_bytes
        #: Characters of data in the current event so far.
        self._size = 0
        self._decoder = _UTF8(errors="replace")
        #: The unfinished last line (never holds a CR or LF).
        self._buf = ""
        #: The previous text ended with CR: an LF starting the next text belongs to it.
        self._pending_cr = False
        self._started = False
        self._data: list[str] = []
        self._event = ""
        #: A field line was seen since the last blank line.
        self._in_event = False
        self._last_id: str | None = None
        self._retry: int | None = None
        #: The fast path's carried-over bytes: the start of an event (whole lines or not) whose
        #: blank line has not come yet. Only ever set while ``_slow`` is false.
        self._raw = b""
        #: The line-by-line interpretation holds state (a partial line or event, a pending CR,
        #: undecoded bytes) or the stream has not started (a BOM may come): it takes the bytes.
        self._slow = True
        #: An event or line past the limit, met after events of the same chunk: those are
        #: returned first, and this is raised by the next ``feed``/``feed_data``/``flush``.
        self._failed: ResponseTooLargeError | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode a network chunk; return the events it completes (often none or one). An event
        or line past the limit raises ``ResponseTooLargeError`` -- after the events before it:
        when the same chunk completed some, they are returned and the next call raises."""
        failed = self._failed
        if failed is None:
            events = self._feed(chunk)
            failed = self._failed
            if failed is None or events:
                return events
        raise failed

    def _feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._slow:
            if (
                self._started
                or not chunk
                or chunk[0] == 0xEF  # perhaps a BOM
                or self._decoder.getstate()[0]
                or chunk.find(b"\r") >= 0
            ):
                return self._feed_slow(chunk)
            self._started = True  # the first bytes, no BOM: the fast path can take them
            self._slow = False
        elif chunk.find(b"\r") >= 0:  # (``in`` costs more: it tries an int first)
            return self._feed_slow(chunk)
        raw = self._raw
        if raw:
            chunk = raw + chunk
        end = chunk.rfind(b"\n\n")
        if end < 0:  # no event ends here
            if len(chunk) > self._limit:
                # Perhaps a line past the limit: the line-by-line way says (it counts
                # characters, and raises as soon as a line is too long).
                self._raw = b""
                return self._feed_slow(chunk)
            self._raw = chunk
            return []
        if (
            end == len(chunk) - 2
            and chunk[:6] == b"data: "
            and chunk.find(b"\n") == end
            and end <= self._limit
        ):
            # The chunk is one single-line data event (how most upstreams send each one).
            ev = _new(SSEEvent)
            _set_data(ev, chunk[6:end].decode("utf-8", "replace"))
            _set_event(ev, "message")
            _set_id(ev, self._last_id)
            _set_retry(ev, self._retry)
            self._retry = None
            self._raw = b""
            return [ev]
        while end and chunk[end - 1] == 0x0A:  # the first of three or more LFs ends the text
            end -= 1
        rest = chunk[end + 2 :]
        # Whole events end at an LF (ASCII): no UTF-8 sequence is cut, so decoding them in one
        # piece gives the characters the incremental decoder gives.
        blocks = chunk[:end].decode("utf-8", "replace").split("\n\n")
        limit = self._limit
        events: list[SSEEvent] = []
        append = events.append
        for i, block in enumerate(blocks):
            # Each block is an event's lines (no blank line among them) and the fast path
            # holds no state, so leading empty lines dispatch nothing.
            if block[:1] == "\n":
                block = block.lstrip("\n")
                if not block:
                    continue
            if len(block) <= limit:  # no line, and no event's data, is past the limit
                if block[:6] == "data: " and block.find("\n") < 0:  # OpenAI
                    ev = _new(SSEEvent)
                    _set_data(ev, block[6:])
                    _set_event(ev, "message")
                    _set_id(ev, self._last_id)
                    _set_retry(ev, self._retry)
                    append(ev)
                    self._retry = None
                    continue
                if block[:7] == "event: ":  # Anthropic: the event's name, then its data
                    cut = block.find("\n")
                    if block[cut + 1 : cut + 7] == "data: " and block.find("\n", cut + 1) < 0:
                        append(
                            _event(
                                block[cut + 7 :],
                                block[7:cut] or "message",
                                self._last_id,
                                self._retry,
                            )
                        )
                        self._retry = None
                        continue
                elif block[:1] == ":" and block.find("\n") < 0:
                    continue  # a comment (a keep-alive ping) alone
            # Anything else, from here on, the line-by-line way (which hands back to the fast
            # path once it holds no state).
            self._raw = b""
            events += self._feed_text("\n\n".join(blocks[i:]) + "\n\n")
            events += self._feed_slow(rest)
            return events
        if len(rest) > limit:
            # Perhaps a line past the limit: the line-by-line way says.
            self._raw = b""
            events += self._feed_slow(rest)
            return events
        self._raw = rest
        return events

    def feed_data(self, chunk: bytes) -> list[str]:
        """``[ev.data for ev in self.feed(chunk)]``, for a reader of the events' data alone
        (OpenAI's streams; the decoder's state is the same as after ``feed``). A chunk of whole
        single-line ``data:`` events, LF-terminated -- what most upstreams send -- is cut in
        one ``split``, with no event object made."""
        if self._failed is not None:
            raise self._failed
        if (
            (
                not self._slow
                # The first bytes, as ``feed`` takes them to the fast path: no BOM may come.
                or not (self._started or chunk[:1] in (b"", b"\xef") or self._decoder.getstate()[0])
            )
            and chunk.find(b"\r") < 0
        ):
            raw = self._raw
            whole = raw + chunk if raw else chunk
            end = whole.rfind(b"\n\n")
            if end > 0 and whole[end - 1] != 0x0A and whole[:6] == b"data: ":
                text = whole[6:end].decode("utf-8", "replace")
                values = text.split("\n\ndata: ")
                rest = whole[end + 2 :]
                limit = self._limit
                if (
                    end <= limit  # bytes: no line is over the limit in characters
                    and len(rest) <= limit
                    # No LF but the separators': every event is one "data: " line. (``in``
                    # is a memchr; ``count`` of a character is a loop over every one.)
                    and "\n" not in "".join(values)
                ):
                    self._raw = rest
                    self._retry = None  # the first event carried it
                    self._started = True
                    self._slow = False
                    return values
        return [ev.data for ev in self.feed(chunk)]

    def _feed_slow(self, chunk: bytes) -> list[SSEEvent]:
        raw = self._raw
        if raw:
            self._raw = b""
            chunk = raw + chunk
        text = self._decoder.decode(chunk)
        events = self._feed_text(text) if text else []
        # Back to the fast path when nothing is held (the stream has started: no BOM to come).
        self._slow = not (
            self._started
            and not self._buf
            and not self._in_event
            and not self._pending_cr
            and not self._decoder.getstate()[0]
        )
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream. Returns the events still to dispatch: always none, because the spec
        discards an event whose closing blank line never came. Check :attr:`has_partial` (before
        or after ``flush``) to tell such a cut from a clean end. Raises the
        ``ResponseTooLargeError`` of an event past the limit that came after the events the
        last ``feed`` returned."""
        if self._failed is not None:
            raise self._failed
        if self._raw:
            # The fast path's carried-over start of an event: the line-by-line state takes it
            # (it is discarded as the spec says; ``has_partial`` tells).
            self._feed_slow(b"")
        tail = self._decoder.decode(b"", final=True)
        if tail:
            # Only replacement characters for a truncated UTF-8 sequence: never a line end.
            self._buf += tail
        self._pending_cr = False
        return []

    @property
    def has_partial(self) -> bool:
        """True when the bytes fed so far end inside an event (a partial line, an undecoded
        UTF-8 sequence, or field lines without their closing blank line)."""
        if self._raw:
            # The fast path's carried-over bytes: the line-by-line state takes them, and says.
            # They hold no blank line, so no event is dispatched (none is lost) by this.
            self._feed_slow(b"")
        return bool(self._buf) or self._in_event or bool(self._decoder.getstate()[0])

    @property
    def failed(self) -> ResponseTooLargeError | None:
        """The error of an event past the limit that the last ``feed``/``feed_data`` met after
        the events it returned (raised by the next call): a reader raises it at once instead of
        waiting on the network for another read."""
        return self._failed

    @property
    def last_event_id(self) -> str | None:
        """The last ``id`` the stream set (what a reconnect would send as Last-Event-ID)."""
        return self._last_id

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if self._failed is not None:  # reading stopped at an event past the limit
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._pending_cr:
            self._pending_cr = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        buf = self._buf + text if self._buf else text
        if "\r" in buf:
            # A CR at the very end may be the first half of a CRLF split across chunks.
            self._pending_cr = buf[-1] == "\r"
            buf = buf.replace("\r\n", "\n").replace("\r", "\n")
        lines = buf.split("\n")
        self._buf = lines.pop()
        events: list[SSEEvent] = []
        try:
            # The whole lines first: events before one past the limit are the stream's.
            for line in lines:
                if len(line) > self._limit:
                    raise self._too_large("line")
                if not line:
                    ev = self._dispatch()
                    if ev is not None:
                        events.append(ev)
                elif line[0] != ":":  # a leading colon is a comment / keep-alive ping
                    self._field(line)
            if len(self._buf) > self._limit:
                self._buf = ""
                raise self._too_large("line")
        except ResponseTooLargeError as exc:
            # Reading stops here: what came before is returned, this is raised next (``feed``
            # raises it at once when there is nothing before it).
            self._failed = exc
            self._buf, self._data, self._raw = "", [], b""
        return events

    def _field(self, line: str) -> None:
        self._in_event = True
        name, sep, value = line.partition(":")
        # No colon: the whole line is the field name and the value is empty.
        if sep and value and value[0] == " ":
            value = value[1:]
        if name == "data":
            self._size += len(value) + 1
            if self._size > self._limit:
                self._data = []
                raise self._too_large("event")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            # Only ASCII digits count ("²".isdigit() is true but int("²") fails).
            self._retry = int(value)
        # Unknown fields are ignored (spec).

    def _dispatch(self) -> SSEEvent | None:
        self._in_event = False
        if not self._data:
            # No data: the spec resets the event type and dispatches nothing.
            self._event = ""
            return None
        ev = _event("\n".join(self._data), self._event or "message", self._last_id, self._retry)
        self._data = []
        self._size = 0
        self._event = ""
        self._retry = None
        return ev

    def _too_large(self, what: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"a stream {what} is longer than the limit of {self._limit} characters "
            "(max_event_bytes); reading stopped there. If such events are expected, raise the "
            "limit: Client(max_event_bytes=...) or max_event_bytes in the configuration file's "
            "[defaults]",
            limit=self._limit,
            setting="max_event_bytes",
        )
