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


class SSEDecoder:
    """Bytes in, :class:`SSEEvent` out. One decoder per stream."""

    __slots__ = (
        "_buf",
        "_data",
        "_decoder",
        "_event",
        "_in_event",
        "_last_id",
        "_limit",
        "_pending_cr",
        "_retry",
        "_size",
        "_started",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._limit = max_event_bytes
        #: Characters of data in the current event so far.
        self._size = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
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

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode a network chunk; return the events it completes (often none or one)."""
        text = self._decoder.decode(chunk)
        return self._feed_text(text) if text else []

    def flush(self) -> list[SSEEvent]:
        """End of stream. Returns the events still to dispatch: always none, because the spec
        discards an event whose closing blank line never came. Check :attr:`has_partial` (before
        or after ``flush``) to tell such a cut from a clean end."""
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
        return bool(self._buf) or self._in_event or bool(self._decoder.getstate()[0])

    @property
    def last_event_id(self) -> str | None:
        """The last ``id`` the stream set (what a reconnect would send as Last-Event-ID)."""
        return self._last_id

    def _feed_text(self, text: str) -> list[SSEEvent]:
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
        if len(self._buf) > self._limit:
            self._buf = ""
            raise self._too_large("line")
        if not lines:
            return []
        events: list[SSEEvent] = []
        for line in lines:
            if len(line) > self._limit:
                raise self._too_large("line")
            if not line:
                ev = self._dispatch()
                if ev is not None:
                    events.append(ev)
            elif line[0] != ":":  # a leading colon is a comment / keep-alive ping
                self._field(line)
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
        ev = SSEEvent(
            data="\n".join(self._data),
            event=self._event or "message",
            id=self._last_id,
            retry=self._retry,
        )
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
