"""``RequestLog``: a ``Recorder`` that writes every finished call to a store, off the hot path.

``record()`` appends the ``CallRecord`` to an in-memory queue and returns: no I/O, no lock, a
``deque.append`` (about a microsecond, see ``benchmarks/recorder_overhead.py``). One daemon
thread per log drains the queue, builds the rows and writes them in batches: as soon as
``batch_size`` calls are waiting, otherwise every ``flush_interval`` seconds.

Why a thread and not an asyncio task: calls arrive from many event loops (``asyncio.run`` per
script, the sync facade's private loops, worker threads); a task belongs to one loop and dies --
with its unwritten rows -- when that loop closes, and the stores' work (``sqlite3`` is blocking,
asyncpg has its own loop in :class:`PostgresStore`) would otherwise run on the caller's loop and
add latency to its calls. A thread serves every loop and thread alike, and can still flush at
interpreter exit.

A store that fails never fails a call: the rows stay in memory (at most ``max_pending`` calls;
beyond that the oldest are dropped and counted) and are written again later, with a growing
delay, and at once on ``flush()``. One warning is logged on ``llmrelay.requestlog`` when an outage
starts and one message when it ends. Rows carry fixed ids and inserts skip existing ids, so a
batch written twice is stored once. A batch the store rejects while it is otherwise healthy is
split to find the bad call, which is dropped with an error message (one bad row never blocks the
log). ``flush()`` and ``close()`` (also run at interpreter exit) write everything.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...errors import ConfigurationError
from ...state.base import check_positive
from .base import LogFilter, LogStore, UsageBy
from .rows import AttemptRow, RequestRow, rows_from_record
from .stores import open_store

if TYPE_CHECKING:
    from ...core.layers import CallRecord

__all__ = ["RequestLog"]

logger = logging.getLogger("llmrelay.requestlog")

Unit = tuple[RequestRow, list[AttemptRow]]

_open_logs: weakref.WeakSet[RequestLog] = weakref.WeakSet()


class _Marker:
    """A flush request travelling through the queue behind the records it waits for."""

    __slots__ = ("done", "ok", "target")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.target = -1


class RequestLog:
    """Logs one row per logical call and one per attempt to SQLite or PostgreSQL.

    ``store`` is a :class:`~llmrelay.observe.requestlog.base.LogStore`, a SQLite path, a
    ``postgresql://`` DSN, or None for the configured location (``[log]`` / ``LLMRELAY_LOG_*``,
    default ``~/.local/share/llmrelay/requests.db``). With ``connect_now=True`` the store is
    opened here and an unreachable one raises ``StateStoreError``; otherwise it is opened by the
    writer and failures are retried.
    """

    def __init__(
        self,
        store: LogStore | str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_pending: int = 100_000,
        retry_delay: float = 0.5,
        max_retry_delay: float = 30.0,
        connect_now: bool = False,
    ) -> None:
        check_positive(batch_size, "batch_size", integer=True)
        check_positive(flush_interval, "flush_interval")
        check_positive(max_pending, "max_pending", integer=True)
        check_positive(retry_delay, "retry_delay")
        check_positive(max_retry_delay, "max_retry_delay")
        if store is None or isinstance(store, str | os.PathLike):
            store = open_store(store)
        elif not all(callable(getattr(store, m, None)) for m in ("open", "write", "close")):
            raise ConfigurationError(
                "store must be a LogStore (SQLiteStore, PostgresStore), a SQLite path or a "
                f"postgresql:// DSN, not {type(store).__name__}"
            )
        self.store: LogStore = store
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.max_pending = max_pending
        self.retry_delay = float(retry_delay)
        self.max_retry_delay = float(max_retry_delay)
        if connect_now:
            self.store.open()
        self._queue: deque[Any] = deque()
        self._pending: deque[Unit] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._stopping = False
        self._seq_in = 0  # calls ever added to _pending
        self._seq_out = 0  # calls that left _pending (written, rejected or dropped)
        #: Calls written, rejected by the store (bad rows), and dropped (memory bound).
        self.written = 0
        self.rejected = 0
        self.dropped = 0
        self._overflow = 0  # records refused by record() while the queue was full
        self._outage = False
        self._outage_dropped = 0
        self._delay = self.retry_delay
        self._next_try = 0.0
        #: The last store error (a message), or None while the store works.
        self.last_error: str | None = None
        # Row ids: <this log's random token><counter>.<trace id> (see rows.py).
        self._token = os.urandom(4).hex()
        self._ids = itertools.count()
        self._thread = self._start()
        _open_logs.add(self)

    def __repr__(self) -> str:
        return f"RequestLog({self.store.description!r}, pending={self.pending})"

    def _start(self) -> threading.Thread:
        t = threading.Thread(target=self._run, name="llmrelay-requestlog", daemon=True)
        t.start()
        return t

    # ------------------------------------------------------------------ the hot path

    def record(self, rec: CallRecord) -> None:
        """Queue a finished call (the ``Recorder`` protocol). Never blocks, never raises."""
        if self._closed:
            return
        q = self._queue
        if len(q) >= self.max_pending:
            self._overflow += 1
            return
        q.append(rec)
        if len(q) >= self.batch_size and not self._wake.is_set():  # set() takes a lock
            self._wake.set()

    # ------------------------------------------------------------------ state

    @property
    def pending(self) -> int:
        """Calls recorded but not written yet (queued or kept after a store failure)."""
        return len(self._queue) + len(self._pending)

    @property
    def failing(self) -> bool:
        """True while the store fails (rows are kept and retried)."""
        return self._outage

    # ------------------------------------------------------------------ flush and close

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Write every call recorded before this one now. True when all of them are stored;
        False when the store failed (they stay in memory and are retried) or on timeout."""
        if not self._thread.is_alive():
            return self.pending == 0
        m = _Marker()
        self._queue.append(m)
        self._wake.set()
        return m.done.wait(timeout) and m.ok

    def close(self, timeout: float | None = 60.0) -> None:
        """Write what is pending (waiting up to ``timeout`` seconds; one attempt when the store
        is failing), stop the writer and close the store. Idempotent; run at interpreter exit."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        _open_logs.discard(self)
        left = self.pending
        if left:
            logger.warning(
                "request log: %d call(s) could not be written to %s and are lost: %s",
                left,
                self.store.description,
                self.last_error or "the writer did not finish in time",
            )
        try:
            self.store.close()
        except Exception as exc:
            logger.warning("request log: closing %s failed: %s", self.store.description, exc)

    def __enter__(self) -> RequestLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries

    def usage(
        self, by: UsageBy = "model", since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Totals per model or per UTC day (rows already written; ``flush()`` first)."""
        if by not in ("model", "day"):
            raise ConfigurationError(f"usage is grouped by 'model' or 'day', not {by!r}")
        return self.store.usage(by, since, until)

    def recent(self, **filters: Any) -> list[dict[str, Any]]:
        """Recent request rows, newest first; filters as :class:`LogFilter`."""
        return self.store.recent(LogFilter(**filters))

    def attempts_of(self, request_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        return self.store.attempts_of(request_ids)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        while True:
            if self._outage and not self._stopping:
                timeout = max(0.0, self._next_try - time.monotonic())
            else:
                timeout = self.flush_interval
            self._wake.wait(timeout)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._cycle(stopping)
            except Exception:  # a bug here must not end the writer
                logger.exception("request log: the writer failed; it keeps running")
            if stopping:
                return

    def _cycle(self, stopping: bool) -> None:
        markers = self._drain()
        force = bool(markers) or stopping
        if self._pending and (force or not self._outage or time.monotonic() >= self._next_try):
            self._write_pending()
        for m in markers:
            m.ok = self._seq_out >= m.target
            m.done.set()

    def _drain(self) -> list[_Marker]:
        markers: list[_Marker] = []
        q, pending = self._queue, self._pending
        token, ids = self._token, self._ids
        while True:
            try:
                item = q.popleft()
            except IndexError:
                break
            if type(item) is _Marker:
                item.target = self._seq_in
                markers.append(item)
                continue
            try:
                unit = rows_from_record(item, f"{token}{next(ids):010x}.{item.trace_id}")
            except Exception as exc:  # e.g. content that cannot be encoded, or no CallRecord
                logger.error(
                    "request log: cannot build the rows of trace %s: %s",
                    getattr(item, "trace_id", "?"),
                    exc,
                )
                self.rejected += 1
                continue
            pending.append(unit)
            self._seq_in += 1
        overflow, self._overflow = self._overflow, 0
        if overflow:
            self._note_dropped(overflow, "new calls were refused: the writer is behind")
        excess = len(pending) - self.max_pending
        if excess > 0:
            for _ in range(excess):
                pending.popleft()
            self._seq_out += excess
            self._note_dropped(excess, "dropping the oldest")
        return markers

    def _note_dropped(self, n: int, how: str) -> None:
        self.dropped += n
        if self._outage_dropped == 0:
            logger.warning(
                "request log: more than %d calls are waiting for %s; %s",
                self.max_pending,
                self.store.description,
                how,
            )
        self._outage_dropped += n

    def _write_pending(self) -> None:
        while self._pending:
            pending = self._pending
            units = list(itertools.islice(pending, self.batch_size))
            err = self._try(units)
            if err is not None:
                if self._try([]) is not None:  # the store itself is down
                    self._fail(err)
                    return
                bad: list[tuple[Unit, BaseException]] = []  # it is up and rejects some row
                up = self._bisect(units, err, bad)
                if bad:
                    self._reject(bad)
                if not up:
                    return
                rejected = {id(u) for u, _ in bad}
                units = [u for u in units if id(u) not in rejected]
                pending = self._pending
            for _ in range(len(units)):
                pending.popleft()
            self._seq_out += len(units)
            self.written += len(units)
        if self._outage:
            self._recovered()
        self._outage_dropped = 0  # the next drop warns again

    def _try(self, units: list[Unit]) -> BaseException | None:
        try:
            self.store.write([u[0] for u in units], [a for u in units for a in u[1]])
        except Exception as exc:
            return exc
        return None

    def _bisect(
        self, units: list[Unit], err: BaseException, bad: list[tuple[Unit, BaseException]]
    ) -> bool:
        """``units`` failed with ``err`` while the store works: write the good ones and collect
        the bad ones. False when the store went down meanwhile (the rest stays pending)."""
        if len(units) == 1:
            bad.append((units[0], err))
            return True
        mid = len(units) // 2
        for half in (units[:mid], units[mid:]):
            half_err = self._try(half)
            if half_err is None:
                continue
            if self._try([]) is not None:
                self._fail(half_err)
                return False
            if not self._bisect(half, half_err, bad):
                return False
        return True

    def _reject(self, bad: list[tuple[Unit, BaseException]]) -> None:
        """Drop calls whose rows the (working) store refuses, with an error message each."""
        for (req, _), err in bad:
            logger.error(
                "request log: %s rejects the rows of trace %s (id %s); dropping them: %s",
                self.store.description,
                req.trace_id,
                req.id,
                err,
            )
        rejected = {id(u) for u, _ in bad}
        self._pending = deque(u for u in self._pending if id(u) not in rejected)
        self.rejected += len(bad)
        self._seq_out += len(bad)

    def _fail(self, err: BaseException) -> None:
        self.last_error = str(err) or type(err).__name__
        if not self._outage:
            self._outage = True
            self._delay = self.retry_delay
            logger.warning(
                "request log: writing to %s failed; keeping %d call(s) in memory and retrying: %s",
                self.store.description,
                self.pending,
                self.last_error,
            )
        else:
            self._delay = min(self._delay * 2, self.max_retry_delay)
        self._next_try = time.monotonic() + self._delay

    def _recovered(self) -> None:
        logger.info(
            "request log: %s works again; the calls kept in memory are written%s",
            self.store.description,
            f" ({self._outage_dropped} were dropped)" if self._outage_dropped else "",
        )
        self._outage = False
        self._outage_dropped = 0
        self.last_error = None
        self._delay = self.retry_delay

    def _after_fork(self) -> None:
        """In a forked child: the parent writes its own rows; start afresh."""
        self._queue = deque()
        self._pending = deque()
        self._wake = threading.Event()
        self._token = os.urandom(4).hex()
        forget = getattr(self.store, "forget", None)
        if callable(forget):
            forget()
        if not self._closed:
            self._thread = self._start()


def _close_all() -> None:
    for log in list(_open_logs):
        log.close()


def _after_fork_in_child() -> None:
    for log in list(_open_logs):
        log._after_fork()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
