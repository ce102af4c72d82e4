"""The request log in SQLite (stdlib ``sqlite3``): the default store.

The database runs in WAL mode with ``synchronous=NORMAL``: a committed batch survives the
process being killed (``kill -9``) at any point; only an operating-system crash or power loss can
lose the last batches. Readers (``llmrelay usage``/``logs``) never block the writer.

Schema changes are ordered, recorded migrations (as simonw/llm does): each function of
:data:`MIGRATIONS` runs once, in order, in the same transaction as the row in
``_llmrelay_migrations`` that records it, so opening a database again -- or from several
processes at once -- applies exactly the missing ones.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...errors import StateStoreError
from .base import USAGE_COLUMNS, LogFilter, UsageBy, usage_row
from .rows import ATTEMPT_COLUMNS, REQUEST_COLUMNS, AttemptRow, RequestRow

__all__ = ["MIGRATIONS", "MIGRATIONS_TABLE", "SQLiteStore", "migrate"]

MIGRATIONS_TABLE = "_llmrelay_migrations"

Migration = Callable[[sqlite3.Connection], None]


def m001_requests(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE requests (
            id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            started_at REAL NOT NULL,
            alias TEXT,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT,
            status INTEGER,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            cost_known INTEGER NOT NULL,
            latency_s REAL NOT NULL,
            ttft_s REAL,
            cache_hit INTEGER NOT NULL DEFAULT 0,
            stream INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            retries INTEGER NOT NULL DEFAULT 0,
            tenant TEXT,
            tags TEXT NOT NULL DEFAULT '{}',
            prompt TEXT,
            response TEXT
        )
        """
    )


def m002_attempts(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE attempts (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            started_at REAL NOT NULL,
            idx INTEGER NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            number INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT,
            status INTEGER,
            latency_s REAL NOT NULL,
            backoff_s REAL NOT NULL,
            reason TEXT,
            message TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            cost_known INTEGER NOT NULL
        )
        """
    )


def m003_indexes(db: sqlite3.Connection) -> None:
    db.execute("CREATE INDEX requests_started_at ON requests (started_at)")
    db.execute("CREATE INDEX requests_model ON requests (model, provider)")
    db.execute("CREATE INDEX requests_trace_id ON requests (trace_id)")
    db.execute("CREATE INDEX attempts_request_id ON attempts (request_id, idx)")


#: Every migration, in the order they run. Append only: never edit or reorder a released one.
MIGRATIONS: tuple[Migration, ...] = (m001_requests, m002_attempts, m003_indexes)

_BOOLS = ("cost_known", "cache_hit", "stream")


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded in ``db``; return the names applied now."""
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
        "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    done = {r[0] for r in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}
    if all(m.__name__ in done for m in MIGRATIONS):
        return []
    applied = []
    db.execute("BEGIN IMMEDIATE")  # one migrator at a time; re-read under the lock
    try:
        done = {r[0] for r in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}
        for m in MIGRATIONS:
            if m.__name__ in done:
                continue
            m(db)
            db.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
                (m.__name__, time.time()),
            )
            applied.append(m.__name__)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return applied


#: What the writer binds for NULL. ``sqlite3`` binds ints, floats, strs and bytearrays as they
#: are but runs its adapter lookup for anything else -- a dictionary miss and two failed
#: attribute lookups, several microseconds, for every None and bool of every row (and every
#: value of a namedtuple, whose items it reads through ``__getitem__``). So the rows are bound
#: from one flat list, bools as 0/1 (what ``sqlite3`` stores for them anyway) and None, in the
#: columns that may be NULL, as a NaN: SQLite stores a bound NaN as NULL
#: (``sqlite3VdbeMemSetDouble``), as it always did for a NaN in any column.
_NULL = math.nan

#: The columns that may be NULL (the others are NOT NULL in :func:`m001_requests` and
#: :func:`m002_attempts`: a None there still fails the row, as it should).
_REQUEST_NULLABLE = (
    "alias",
    "error",
    "status",
    "cost_usd",
    "ttft_s",
    "tenant",
    "prompt",
    "response",
)
_ATTEMPT_NULLABLE = ("error", "status", "reason", "message", "cost_usd")

#: Rows per INSERT statement, at most: one statement of many rows costs far less than as many
#: statements of one row (each is a step of the VM, a release of the GIL and a reset), and
#: 32 rows of 25 columns stay under the 999 bound values of SQLite before 3.32.
_ROWS_PER_INSERT = 32


class _Table:
    """How the rows of one table are bound and inserted."""

    __slots__ = ("bools", "inserts", "nulls", "width")

    def __init__(self, table: str, columns: tuple[str, ...], nullable: tuple[str, ...]) -> None:
        self.width = len(columns)
        self.nulls = tuple(i for i, c in enumerate(columns) if c in nullable)
        self.bools = tuple(i for i, c in enumerate(columns) if c in _BOOLS)
        one = f"({', '.join('?' * len(columns))})"
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        #: The statement inserting n rows, for n = 32, 16, ... 1 (a handful of shapes, so
        #: ``sqlite3`` prepares each once per connection).
        self.inserts = {
            n: f"{head}{', '.join([one] * n)} ON CONFLICT(id) DO NOTHING"
            for n in (1 << k for k in range(_ROWS_PER_INSERT.bit_length()))
        }

    def values(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Every value of ``rows`` in one list, as ``sqlite3`` binds them fastest (see
        :data:`_NULL`); the values stored are the same."""
        out: list[Any] = []
        width, nulls, bools = self.width, self.nulls, self.bools
        base = 0
        for row in rows:
            if len(row) != width:
                raise sqlite3.ProgrammingError(f"a row of {len(row)} values, not {width}")
            out += row[:]  # a namedtuple's slice is a plain tuple, which += copies at once
            for i in nulls:
                if out[base + i] is None:
                    out[base + i] = _NULL
            for i in bools:
                x = out[base + i]
                if x is True:
                    out[base + i] = 1
                elif x is False:
                    out[base + i] = 0
            base += width
        return out

    def insert(self, db: sqlite3.Connection, values: list[Any]) -> None:
        """Insert the rows whose values :meth:`values` gave, up to 32 a statement."""
        width, inserts = self.width, self.inserts
        left = len(values) // width
        at = 0
        while left:
            n = _ROWS_PER_INSERT
            while n > left:
                n >>= 1
            end = at + n * width
            db.execute(inserts[n], values[at:end])
            at, left = end, left - n


_REQUESTS = _Table("requests", REQUEST_COLUMNS, _REQUEST_NULLABLE)
_ATTEMPTS = _Table("attempts", ATTEMPT_COLUMNS, _ATTEMPT_NULLABLE)


def _dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    for k in _BOOLS:
        if k in d:
            d[k] = bool(d[k])
    return d


class SQLiteStore:
    """The request log in one SQLite file (``":memory:"`` works too, for tests)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self.description = f"SQLite {self.path}"
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        #: Migrations applied by the last ``open`` (for tests and the CLI).
        self.applied: list[str] = []

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def _error(self, action: str, exc: BaseException) -> StateStoreError:
        hint = ""
        if isinstance(exc, OSError | sqlite3.OperationalError) and "unable to open" in str(exc):
            hint = "; set [log] path or LLMRELAY_LOG_PATH to a writable file"
        return StateStoreError(f"request log ({self.description}): {action} failed: {exc}{hint}")

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        try:
            if self.path != ":memory:" and not self.path.startswith("file:"):
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                os.path.expanduser(self.path),
                timeout=self.timeout,
                isolation_level=None,  # explicit transactions only
                check_same_thread=False,  # guarded by self._lock
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._error("opening the database", exc) from exc
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self.applied = migrate(db)
        except sqlite3.Error as exc:
            db.close()
            raise self._error("preparing the schema", exc) from exc
        self._db = db
        return db

    def open(self) -> None:
        with self._lock:
            self._connect()

    def write(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> None:
        try:
            reqs, atts = _REQUESTS.values(requests), _ATTEMPTS.values(attempts)
        except sqlite3.Error as exc:
            raise self._error(f"writing {len(requests)} requests", exc) from exc
        with self._lock:
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    _REQUESTS.insert(db, reqs)
                    _ATTEMPTS.insert(db, atts)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._error(f"writing {len(requests)} requests", exc) from exc

    def _query(self, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        with self._lock:
            db = self._connect()
            try:
                return db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._error("a query", exc) from exc

    @staticmethod
    def _time_where(since: float | None, until: float | None) -> tuple[str, list[Any]]:
        where, args = ["1 = 1"], []
        if since is not None:
            where.append("started_at >= ?")
            args.append(since)
        if until is not None:
            where.append("started_at < ?")
            args.append(until)
        return " AND ".join(where), args

    def usage(
        self, by: UsageBy, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        where, args = self._time_where(since, until)
        if by == "model":
            key = "provider || '/' || model"
            order = "requests DESC, k"
        else:
            key = "strftime('%Y-%m-%d', started_at, 'unixepoch')"
            order = "k"
        rows = self._query(
            f"SELECT {key} AS k, {USAGE_COLUMNS} FROM requests WHERE {where} "
            f"GROUP BY k ORDER BY {order}",
            args,
        )
        return [usage_row(by, r["k"], dict(r)) for r in rows]

    def recent(self, f: LogFilter) -> list[dict[str, Any]]:
        where, args = self._time_where(f.since, f.until)
        clauses = [where]
        for column, value in f.equals():
            clauses.append(f"{column} = ?")
            args.append(value)
        args.append(f.limit)
        rows = self._query(
            f"SELECT * FROM requests WHERE {' AND '.join(clauses)} "
            "ORDER BY started_at DESC, id DESC LIMIT ?",
            args,
        )
        return [_dict(r) for r in rows]

    def attempts_of(self, request_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {rid: [] for rid in request_ids}
        ids = list(out)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = self._query(
                f"SELECT * FROM attempts WHERE request_id IN ({', '.join('?' * len(chunk))}) "
                "ORDER BY request_id, idx",
                chunk,
            )
            for r in rows:
                out[r["request_id"]].append(_dict(r))
        return out

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                try:
                    db.close()
                except sqlite3.Error:
                    pass

    def forget(self) -> None:
        """Drop the connection without closing it (a forked child must not use its parent's)."""
        self._db = None
        self._lock = threading.Lock()
