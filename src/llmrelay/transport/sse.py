"""An incremental Server-Sent Events decoder (WHATWG HTML, "event stream interpretation").

Feed it bytes exactly as they arrive from the network; it yields complete events. It handles
CR, LF and CRLF line ends (a CR at the end of one chunk followed by LF at the start of the next is
one line end), multi-byte UTF-8 characters split across chunks, comment lines (``:ping``),
``event``/``data``/``id``/``retry`` fields, multi-line data, a leading BOM, and ignores unknown
fields. It is pure: no I/O, so any chunking of the same bytes yields the same events.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEEvent"]


@dataclass(slots=True, frozen=True)
class SSEEvent:
    """One dispatched event. ``event`` defaults to ``"message"``."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    __slots__ = (
        "_buf",
        "_data",
        "_decoder",
        "_event",
        "_id",
        "_last_id",
        "_pending_cr",
        "_retry",
        "_started",
    )

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        self._pending_cr = False
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode a network chunk; return the events it completes."""
        text = self._decoder.decode(chunk)
        return self._feed_text(text) if text else []

    def flush(self) -> list[SSEEvent]:
        """End of stream: per the spec, an event without its blank line is discarded.

        Returns nothing today; kept for symmetry and so callers can tell a clean end from a cut
        (``has_partial``).
        """
        text = self._decoder.decode(b"", final=True)
        events = self._feed_text(text) if text else []
        if self._pending_cr:
            self._pending_cr = False
            events.extend(self._line(""))
        return events

    @property
    def has_partial(self) -> bool:
        """True when bytes of an unfinished event are buffered."""
        return bool(self._buf or self._data or self._event)

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._pending_cr:
            self._pending_cr = False
            if text.startswith("\n"):
                text = text[1:]
        buf = self._buf + text
        events: list[SSEEvent] = []
        start = 0
        n = len(buf)
        while start < n:
            # Find the next line end of any kind.
            i_lf = buf.find("\n", start)
            i_cr = buf.find("\r", start)
            if i_lf == -1 and i_cr == -1:
                break
            if i_cr == -1 or (i_lf != -1 and i_lf < i_cr):
                end, nxt = i_lf, i_lf + 1
            else:
                end = i_cr
                if i_cr + 1 < n:
                    nxt = i_cr + 2 if buf[i_cr + 1] == "\n" else i_cr + 1
                else:
                    # CR at the very end: the LF may arrive in the next chunk.
                    nxt = n
                    self._pending_cr = True
            ev = self._line(buf[start:end])
            if ev:
                events.extend(ev)
            start = nxt
        self._buf = buf[start:]
        return events

    def _line(self, line: str) -> list[SSEEvent]:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return []  # comment / keep-alive ping
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\x00" not in value:
                self._id = value
        elif field == "retry":
            if value.isdigit():
                self._retry = int(value)
        # Unknown fields are ignored (spec).
        return []

    def _dispatch(self) -> list[SSEEvent]:
        if self._id is not None:
            self._last_id = self._id
        if not self._data:
            # No data: the spec resets the event type and dispatches nothing.
            self._event = ""
            self._id = None
            return []
        ev = SSEEvent(
            data="\n".join(self._data),
            event=self._event or "message",
            id=self._last_id,
            retry=self._retry,
        )
        self._data = []
        self._event = ""
        self._id = None
        self._retry = None
        return [ev]
