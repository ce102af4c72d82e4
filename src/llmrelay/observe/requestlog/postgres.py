"""The request log in PostgreSQL, for teams (``asyncpg``, the ``llmrelay[postgres]`` extra).

The store keeps one connection on a private event loop in its own daemon thread, so it can be
used from any thread, from sync code and from inside a running event loop alike (the log's
writer thread, the CLI, a notebook). A lost connection is dropped and made again on the next
call. Tables are ``<schema>.<prefix>requests``, ``<prefix>attempts`` and ``<prefix>migrations``
(default schema: the connection's ``search_path``, default prefix ``llmrelay_``), created by
ordered, recorded migrations run under a transaction-scoped advisory lock, so several processes
may start at once.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from ..._sync import stop_loop_thread
from ...errors import ConfigurationError, StateStoreError
from .base import USAGE_COLUMNS, LogFilter, UsageBy, check_identifier, usage_row
from .rows import ATTEMPT_COLUMNS, REQUEST_COLUMNS, AttemptRow, RequestRow

__all__ = ["PostgresStore", "redact_dsn"]

T = TypeVar("T")

_PASSWORD_PARAM = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``****``."""
    try:
        parts = urlsplit(dsn)
        if parts.password:
            host = parts.hostname or ""
            netloc = f"{parts.username or ''}:****@{host}" + (
                f":{parts.port}" if parts.port else ""
            )
            dsn = urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        dsn = re.sub(r"://[^@/]*@", "://****@", dsn)
    return _PASSWORD_PARAM.sub(r"\1****", dsn)


def _password(dsn: str) -> str | None:
    try:
        pw = urlsplit(dsn).password
    except ValueError:
        pw = None
    m = _PASSWORD_PARAM.search(dsn)
    return pw or (m.group(0).split("=", 1)[1] if m else None)


def _request_sql(t: str) -> str:
    return f"""
        CREATE TABLE {t} (
            id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            alias TEXT,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT,
            status INTEGER,
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cached_tokens BIGINT NOT NULL DEFAULT 0,
            reasoning_tokens BIGINT NOT NULL DEFAULT 0,
            cost_usd DOUBLE PRECISION,
            cost_known BOOLEAN NOT NULL,
            latency_s DOUBLE PRECISION NOT NULL,
            ttft_s DOUBLE PRECISION,
            cache_hit BOOLEAN NOT NULL DEFAULT FALSE,
            stream BOOLEAN NOT NULL DEFAULT FALSE,
            attempts INTEGER NOT NULL DEFAULT 0,
            retries INTEGER NOT NULL DEFAULT 0,
            tenant TEXT,
            tags JSONB NOT NULL DEFAULT '{{}}',
            prompt JSONB,
            response TEXT
        )"""


def _attempt_sql(t: str) -> str:
    return f"""
        CREATE TABLE {t} (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            idx INTEGER NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            number INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT,
            status INTEGER,
            latency_s DOUBLE PRECISION NOT NULL,
            backoff_s DOUBLE PRECISION NOT NULL,
            reason TEXT,
            message TEXT,
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cached_tokens BIGINT NOT NULL DEFAULT 0,
            reasoning_tokens BIGINT NOT NULL DEFAULT 0,
            cost_usd DOUBLE PRECISION,
            cost_known BOOLEAN NOT NULL
        )"""


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


_JSON_COLUMNS = {"tags", "prompt"}
_REQ_TS = REQUEST_COLUMNS.index("started_at")
_ATT_TS = ATTEMPT_COLUMNS.index("started_at")
_REQ_JSON = tuple(i for i, c in enumerate(REQUEST_COLUMNS) if c in _JSON_COLUMNS)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join(
        f"${i}::jsonb" if c in _JSON_COLUMNS else f"${i}" for i, c in enumerate(columns, 1)
    )
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"
    )


def _no_nul(value: Any) -> Any:
    """PostgreSQL text and jsonb cannot hold U+0000: it becomes U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_no_nul(v) for v in value]
    if isinstance(value, dict):
        return {_no_nul(k): _no_nul(v) for k, v in value.items()}
    return value


def _values(row: Sequence[Any], ts_index: int, json_at: Sequence[int]) -> tuple[Any, ...]:
    v = list(row[:])  # a namedtuple slice is a plain tuple: list() copies it at once
    v[ts_index] = _ts(v[ts_index])
    for i, x in enumerate(v):
        if isinstance(x, str) and "\x00" in x:
            v[i] = x.replace("\x00", "\ufffd")
    for i in json_at:
        x = v[i]
        if isinstance(x, str) and "\\u0000" in x:
            v[i] = orjson.dumps(_no_nul(orjson.loads(x))).decode()
    return tuple(v)


def _dict(record: Any) -> dict[str, Any]:
    d = dict(record)
    ts = d.get("started_at")
    if isinstance(ts, datetime):
        d["started_at"] = ts.timestamp()
    return d


class PostgresStore:
    """The request log in PostgreSQL. ``dsn`` like ``postgresql://user@host:5432/db``."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        table_prefix: str = "llmrelay_",
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        if not isinstance(dsn, str) or not dsn.startswith(("postgres://", "postgresql://")):
            raise ConfigurationError(
                "the PostgreSQL DSN must look like postgresql://user[:password]@host[:port]/db, "
                f"not {redact_dsn(str(dsn))!r}"
            )
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "logging to PostgreSQL needs asyncpg: pip install 'llmrelay[postgres]'"
            ) from None
        if schema is not None:
            check_identifier(schema, "the PostgreSQL schema")
        if table_prefix:
            check_identifier(table_prefix, "the table prefix")
        self.dsn = dsn
        self.schema = schema
        self.table_prefix = table_prefix
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        q = f"{schema}." if schema else ""
        self.requests_table = f"{q}{table_prefix}requests"
        self.attempts_table = f"{q}{table_prefix}attempts"
        self.migrations_table = f"{q}{table_prefix}migrations"
        self.description = f"PostgreSQL {redact_dsn(dsn)}" + (f" schema {schema}" if schema else "")
        self._secret = _password(dsn)
        self._insert_request = _insert(self.requests_table, REQUEST_COLUMNS)
        self._insert_attempt = _insert(self.attempts_table, ATTEMPT_COLUMNS)
        self._conn: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Migrations applied by the last connection (for tests).
        self.applied: list[str] = []

    def __repr__(self) -> str:
        return f"PostgresStore({redact_dsn(self.dsn)!r}, schema={self.schema!r})"

    # ------------------------------------------------------------------ plumbing

    def _run(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                t = threading.Thread(
                    target=loop.run_forever, name="llmrelay-requestlog-pg", daemon=True
                )
                t.start()
                self._loop, self._thread = loop, t
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(fn(), loop).result()

    def _error(self, action: str, exc: BaseException) -> StateStoreError:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._secret:
            text = text.replace(self._secret, "****")
        return StateStoreError(f"request log ({self.description}): {action} failed: {text}")

    async def _connection(self) -> Any:
        import asyncpg

        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        try:
            conn = await asyncpg.connect(
                self.dsn, timeout=self.connect_timeout, command_timeout=self.command_timeout
            )
        except Exception as exc:
            raise self._error("connecting", exc) from None
        try:
            self.applied = await self._migrate(conn)
        except Exception as exc:
            conn.terminate()
            raise self._error("preparing the schema", exc) from None
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def _guard(self, action: str, fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        conn = await self._connection()
        try:
            return await fn(conn)
        except Exception as exc:
            self._drop()  # a broken connection is made again on the next call
            raise self._error(action, exc) from None

    # ------------------------------------------------------------------ migrations

    def _migrations(self) -> list[tuple[str, str]]:
        """Every migration, in order. Append only: never edit or reorder a released one."""
        p, req, att = self.table_prefix, self.requests_table, self.attempts_table
        return [
            ("m001_requests", _request_sql(req)),
            ("m002_attempts", _attempt_sql(att)),
            (
                "m003_indexes",
                f"CREATE INDEX {p}requests_started_at ON {req} (started_at);"
                f"CREATE INDEX {p}requests_model ON {req} (model, provider);"
                f"CREATE INDEX {p}requests_trace_id ON {req} (trace_id);"
                f"CREATE INDEX {p}attempts_request_id ON {att} (request_id, idx)",
            ),
        ]

    async def _migrate(self, conn: Any) -> list[str]:
        applied: list[str] = []
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                f"llmrelay.requestlog:{self.migrations_table}",
            )
            if self.schema:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.migrations_table} "
                "(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {
                r["name"] for r in await conn.fetch(f"SELECT name FROM {self.migrations_table}")
            }
            for name, sql in self._migrations():
                if name in done:
                    continue
                await conn.execute(sql)
                await conn.execute(f"INSERT INTO {self.migrations_table} (name) VALUES ($1)", name)
                applied.append(name)
        return applied

    # ------------------------------------------------------------------ the store protocol

    def open(self) -> None:
        async def go() -> None:
            await self._connection()

        self._run(go)

    def write(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> None:
        reqs = [_values(r, _REQ_TS, _REQ_JSON) for r in requests]
        atts = [_values(a, _ATT_TS, ()) for a in attempts]

        async def go(conn: Any) -> None:
            async with conn.transaction():
                if reqs:
                    await conn.executemany(self._insert_request, reqs)
                if atts:
                    await conn.executemany(self._insert_attempt, atts)

        self._run(lambda: self._guard(f"writing {len(reqs)} requests", go))

    def _fetch(self, sql: str, args: Sequence[Any]) -> list[Any]:
        async def go(conn: Any) -> list[Any]:
            return list(await conn.fetch(sql, *args))

        return self._run(lambda: self._guard("a query", go))

    @staticmethod
    def _where(
        since: float | None, until: float | None, args: list[Any], clauses: list[str]
    ) -> None:
        if since is not None:
            args.append(_ts(since))
            clauses.append(f"started_at >= ${len(args)}")
        if until is not None:
            args.append(_ts(until))
            clauses.append(f"started_at < ${len(args)}")

    def usage(
        self, by: UsageBy, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        args: list[Any] = []
        clauses = ["TRUE"]
        self._where(since, until, args, clauses)
        if by == "model":
            key, order = "provider || '/' || model", "requests DESC, k"
        else:
            key, order = "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')", "k"
        rows = self._fetch(
            f"SELECT {key} AS k, {USAGE_COLUMNS} FROM {self.requests_table} "
            f"WHERE {' AND '.join(clauses)} GROUP BY k ORDER BY {order}",
            args,
        )
        return [usage_row(by, r["k"], dict(r)) for r in rows]

    def recent(self, f: LogFilter) -> list[dict[str, Any]]:
        args: list[Any] = []
        clauses = ["TRUE"]
        self._where(f.since, f.until, args, clauses)
        for column, value in f.equals():
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
        args.append(f.limit)
        rows = self._fetch(
            f"SELECT * FROM {self.requests_table} WHERE {' AND '.join(clauses)} "
            f"ORDER BY started_at DESC, id DESC LIMIT ${len(args)}",
            args,
        )
        return [_dict(r) for r in rows]

    def attempts_of(self, request_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {rid: [] for rid in request_ids}
        if not out:
            return out
        rows = self._fetch(
            f"SELECT * FROM {self.attempts_table} WHERE request_id = ANY($1::text[]) "
            "ORDER BY request_id, idx",
            [list(out)],
        )
        for r in rows:
            out[r["request_id"]].append(_dict(r))
        return out

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return

        async def shut() -> None:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                try:
                    await asyncio.wait_for(conn.close(), 2.0)
                except Exception:
                    conn.terminate()

        stop_loop_thread(loop, thread, shut())

    def forget(self) -> None:
        """Drop the connection and loop without touching them (after ``os.fork``, in the child)."""
        self._conn = None
        self._loop = self._thread = None
        self._lock = threading.Lock()
