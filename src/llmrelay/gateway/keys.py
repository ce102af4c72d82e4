"""Virtual keys: what a gateway client authenticates with, and the policy each one carries.

A key is ``sk-relay-`` followed by 43 URL-safe random characters (256 bits). It is shown once,
when created; the store keeps only its SHA-256 (a key is random and long, so a fast hash is
enough -- a slow password hash would only slow every request), and a lookup compares the
digests in constant time. A key's policy: the models it may call (names or ``fnmatch``
patterns such as ``claude-*``), a budget (USD per day, month or in total), requests and tokens
per minute, an expiry, a team (budgets and the cache can be per team), and a revocation time.

:class:`KeyStore` keeps keys in SQLite (one process, or several on one host) or PostgreSQL
(any number of instances). :class:`KeyCache` keeps what a gateway process has read for at most
``ttl`` seconds (1 by default), so a revocation or a budget change made through any instance
takes effect everywhere within that time, without a store round trip per request.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import math
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from ..errors import ConfigurationError, InvalidRequestError, StateStoreError, shown

__all__ = ["KEY_PREFIX", "KeyCache", "KeyStore", "VirtualKey", "hash_key", "open_key_store"]

KEY_PREFIX = "sk-relay-"
Period = Literal["day", "month", "total"]
_PERIODS = ("day", "month", "total")


def hash_key(key: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(slots=True, frozen=True)
class VirtualKey:
    """One key's record (never the key itself)."""

    id: str
    name: str
    key_hash: str = field(repr=False)
    team: str | None = None
    models: tuple[str, ...] = ()
    budget_usd: float | None = None
    budget_period: Period = "month"
    rpm: int | None = None
    tpm: int | None = None
    expires_at: float | None = None
    revoked_at: float | None = None
    created_at: float = 0.0

    def allows(self, model: str) -> bool:
        """May this key call ``model``? An empty list allows every model."""
        if not self.models:
            return True
        return any(m == model or fnmatch.fnmatchcase(model, m) for m in self.models)

    def state(self, now: float) -> str | None:
        """Why the key cannot be used now (``"revoked"``, ``"expired"``), or None."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return None

    def public(self) -> dict[str, Any]:
        """The record as JSON types, without the hash (for ``keys list``)."""
        return {
            "id": self.id,
            "name": self.name,
            "team": self.team,
            "models": list(self.models),
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "created_at": self.created_at,
        }


def _positive_int(name: str, v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise InvalidRequestError(f"{name} must be a positive integer, not {shown(v)}")
    return v


def check_policy(
    *,
    name: str,
    team: str | None = None,
    models: Sequence[str] = (),
    budget_usd: float | None = None,
    budget_period: str = "month",
    rpm: int | None = None,
    tpm: int | None = None,
    expires_at: float | None = None,
) -> dict[str, Any]:
    """A key's policy fields, validated (``InvalidRequestError`` naming the bad one)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequestError("a key needs a non-empty --name")
    if team is not None and (not isinstance(team, str) or not team.strip()):
        raise InvalidRequestError("--team must be a non-empty name")
    if isinstance(models, str) or not all(isinstance(m, str) and m.strip() for m in models):
        raise InvalidRequestError("--models must be a comma-separated list of model names")
    if budget_usd is not None and (
        isinstance(budget_usd, bool)
        or not isinstance(budget_usd, int | float)
        or not budget_usd > 0
        or budget_usd == float("inf")
    ):
        raise InvalidRequestError(
            f"--budget-usd must be a positive amount, not {shown(budget_usd)}"
        )
    if budget_period not in _PERIODS:
        raise InvalidRequestError(
            f"--budget-period must be day, month or total, not {shown(budget_period)}"
        )
    if expires_at is not None and (
        isinstance(expires_at, bool) or not isinstance(expires_at, int | float)
    ):
        raise InvalidRequestError("--expires must be a time")
    return {
        "name": name.strip(),
        "team": team.strip() if team else None,
        "models": tuple(m.strip() for m in models),
        "budget_usd": float(budget_usd) if budget_usd is not None else None,
        "budget_period": budget_period,
        "rpm": _positive_int("--rpm", rpm),
        "tpm": _positive_int("--tpm", tpm),
        "expires_at": float(expires_at) if expires_at is not None else None,
    }


_COLUMNS = (
    "id",
    "name",
    "key_hash",
    "team",
    "models",
    "budget_usd",
    "budget_period",
    "rpm",
    "tpm",
    "expires_at",
    "revoked_at",
    "created_at",
)


def _row(k: VirtualKey) -> tuple[Any, ...]:
    return (
        k.id,
        k.name,
        k.key_hash,
        k.team,
        orjson.dumps(list(k.models)).decode(),
        k.budget_usd,
        k.budget_period,
        k.rpm,
        k.tpm,
        k.expires_at,
        k.revoked_at,
        k.created_at,
    )


def _from_row(r: Sequence[Any]) -> VirtualKey:
    return VirtualKey(
        id=r[0],
        name=r[1],
        key_hash=r[2],
        team=r[3],
        models=tuple(orjson.loads(r[4] or "[]")),
        budget_usd=r[5],
        budget_period=r[6],
        rpm=r[7],
        tpm=r[8],
        expires_at=r[9],
        revoked_at=r[10],
        created_at=r[11],
    )


class KeyStore(ABC):
    """Where keys live: the five storage operations (SQLite and PostgreSQL below) and the key
    operations built on them. Use :func:`open_key_store`."""

    description = "keys"

    @abstractmethod
    async def insert(self, key: VirtualKey) -> None: ...

    @abstractmethod
    async def by_hash(self, key_hash: str) -> VirtualKey | None: ...

    @abstractmethod
    async def by_id(self, key_id: str) -> VirtualKey | None: ...

    @abstractmethod
    async def all(self) -> list[VirtualKey]: ...

    @abstractmethod
    async def replace(self, key: VirtualKey) -> None: ...

    async def close(self) -> None:
        return None

    # ------------------------------------------------------------------ operations

    async def create(
        self, *, clock: Callable[[], float] = time.time, **policy: Any
    ) -> tuple[str, VirtualKey]:
        """A new key: ``(the key, its record)``. The key is not stored and cannot be shown again."""
        fields = check_policy(**policy)
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        record = VirtualKey(
            id="key_" + secrets.token_hex(8),
            key_hash=hash_key(secret),
            created_at=clock(),
            **fields,
        )
        await self.insert(record)
        return secret, record

    async def revoke(self, key_id: str, *, clock: Callable[[], float] = time.time) -> VirtualKey:
        k = await self._existing(key_id)
        if k.revoked_at is None:
            k = replace(k, revoked_at=clock())
            await self.replace(k)
        return k

    async def update(self, key_id: str, **changes: Any) -> VirtualKey:
        k = await self._existing(key_id)
        current = k.public()
        current.pop("id")
        for name in ("revoked_at", "created_at"):
            current.pop(name)
        current.update({n: v for n, v in changes.items() if v is not None})
        fields = check_policy(**current)
        k = replace(k, **fields)
        await self.replace(k)
        return k

    async def _existing(self, key_id: str) -> VirtualKey:
        k = await self.by_id(key_id)
        if k is None:
            raise InvalidRequestError(
                f"no key with id {shown(key_id)}; `llmrelay keys list` shows them"
            )
        return k

    async def authenticate(self, presented: str) -> VirtualKey | None:
        """The record of the key ``presented``, or None (compared in constant time)."""
        digest = hash_key(presented)
        k = await self.by_hash(digest)
        if k is None or not hmac.compare_digest(k.key_hash, digest):
            return None
        return k


class SqliteKeyStore(KeyStore):
    """Keys in a SQLite file (WAL: readers do not wait for a writer)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.description = f"SQLite {path}"
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS llmrelay_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
                " key_hash TEXT NOT NULL UNIQUE, team TEXT, models TEXT, budget_usd REAL,"
                " budget_period TEXT, rpm INTEGER, tpm INTEGER, expires_at REAL, revoked_at REAL,"
                " created_at REAL)"
            )
        except sqlite3.Error as exc:
            raise StateStoreError(f"key store ({self.description}): {exc}") from None

    def _q(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StateStoreError(f"key store ({self.description}): {exc}") from None

    async def insert(self, key: VirtualKey) -> None:
        marks = ",".join("?" * len(_COLUMNS))
        self._q(f"INSERT INTO llmrelay_keys ({','.join(_COLUMNS)}) VALUES ({marks})", _row(key))

    async def by_hash(self, key_hash: str) -> VirtualKey | None:
        rows = self._q(
            f"SELECT {','.join(_COLUMNS)} FROM llmrelay_keys WHERE key_hash = ?", (key_hash,)
        )
        return _from_row(rows[0]) if rows else None

    async def by_id(self, key_id: str) -> VirtualKey | None:
        rows = self._q(f"SELECT {','.join(_COLUMNS)} FROM llmrelay_keys WHERE id = ?", (key_id,))
        return _from_row(rows[0]) if rows else None

    async def all(self) -> list[VirtualKey]:
        rows = self._q(f"SELECT {','.join(_COLUMNS)} FROM llmrelay_keys ORDER BY created_at")
        return [_from_row(r) for r in rows]

    async def replace(self, key: VirtualKey) -> None:
        sets = ",".join(f"{c} = ?" for c in _COLUMNS[1:])
        self._q(f"UPDATE llmrelay_keys SET {sets} WHERE id = ?", (*_row(key)[1:], key.id))

    async def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresKeyStore(KeyStore):
    """Keys in PostgreSQL (``asyncpg``), shared by every gateway instance.

    Every wait is bounded by ``timeout`` seconds: a connection (asyncpg's default waits 60 s
    for a host that drops packets), a query, taking a connection from the pool. After a
    failure to reach the server (refused, timed out, the connection lost) the pool is dropped
    and every operation fails at once with ``StateStoreError``, without touching the network,
    for ``retry_interval`` seconds; the next one then connects again. So while the store is
    unreachable a gateway answers its 503 at once instead of each request waiting out a
    connect, and it recovers by itself once the server is back."""

    def __init__(
        self,
        dsn: str,
        *,
        timeout: float = 5.0,
        retry_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "a PostgreSQL key store needs asyncpg: pip install 'llmrelay[postgres]'"
            ) from None
        self.dsn = dsn
        from ..observe.requestlog.postgres import redact_dsn

        self.description = f"PostgreSQL {redact_dsn(dsn)}"
        self.timeout = _seconds("the key store timeout", timeout)
        self.retry_interval = retry_interval
        self.clock = clock
        self._down_until = -math.inf
        self._pool: Any = None
        self._init = asyncio.Lock()

    def _check_up(self) -> None:
        if self.clock() < self._down_until:
            raise StateStoreError(
                f"key store ({self.description}): unreachable at the last try; tried again "
                f"{self.retry_interval:g} s after it"
            )

    def _unreachable(self, pool: Any) -> None:
        """The server could not be reached: drop ``pool`` (its connections may hang) and fail
        fast for ``retry_interval`` seconds."""
        self._down_until = self.clock() + self.retry_interval
        if pool is not None:
            pool.terminate()
        if self._pool is pool:
            self._pool = None

    async def _conn(self) -> Any:
        self._check_up()
        if self._pool is None:
            async with self._init:
                self._check_up()  # (a request that waited here while a connect failed)
                if self._pool is None:
                    import asyncpg

                    pool = None
                    try:
                        pool = await asyncpg.create_pool(
                            self.dsn,
                            min_size=1,
                            max_size=4,
                            timeout=self.timeout,
                            command_timeout=self.timeout,
                        )
                        async with pool.acquire(timeout=self.timeout) as c:
                            await c.execute(
                                "CREATE TABLE IF NOT EXISTS llmrelay_keys (id TEXT PRIMARY KEY,"
                                " name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, team TEXT,"
                                " models TEXT, budget_usd DOUBLE PRECISION, budget_period TEXT,"
                                " rpm INTEGER, tpm INTEGER, expires_at DOUBLE PRECISION,"
                                " revoked_at DOUBLE PRECISION, created_at DOUBLE PRECISION)"
                            )
                    except Exception as exc:
                        self._unreachable(pool)
                        raise StateStoreError(
                            f"key store ({self.description}): {type(exc).__name__}"
                        ) from None
                    self._pool = pool
        return self._pool

    async def _q(self, sql: str, *args: Any) -> list[Any]:
        pool = await self._conn()
        try:
            async with pool.acquire(timeout=self.timeout) as c:  # (released within it too)
                return list(await c.fetch(sql, *args))
        except Exception as exc:
            if _lost(exc):
                self._unreachable(pool)
            raise StateStoreError(
                f"key store ({self.description}): {type(exc).__name__}: {exc}"
            ) from None

    async def insert(self, key: VirtualKey) -> None:
        marks = ",".join(f"${i + 1}" for i in range(len(_COLUMNS)))
        await self._q(
            f"INSERT INTO llmrelay_keys ({','.join(_COLUMNS)}) VALUES ({marks})", *_row(key)
        )

    async def by_hash(self, key_hash: str) -> VirtualKey | None:
        rows = await self._q(
            f"SELECT {','.join(_COLUMNS)} FROM llmrelay_keys WHERE key_hash = $1", key_hash
        )
        return _from_row(tuple(rows[0])) if rows else None

    async def by_id(self, key_id: str) -> VirtualKey | None:
        rows = await self._q(
            f"SELECT {','.join(_COLUMNS)} FROM llmrelay_keys WHERE id = $1", key_id
        )
        return _from_row(tuple(rows[0])) if rows else None

    async def all(self) -> list[VirtualKey]:
        rows = await self._q(f"SELECT {','.join(_COLUMNS)} FROM llmrelay_keys ORDER BY created_at")
        return [_from_row(tuple(r)) for r in rows]

    async def replace(self, key: VirtualKey) -> None:
        sets = ",".join(f"{c} = ${i + 2}" for i, c in enumerate(_COLUMNS[1:]))
        await self._q(f"UPDATE llmrelay_keys SET {sets} WHERE id = $1", key.id, *_row(key)[1:])

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self.timeout):  # an unreachable server: not forever
                    await pool.close()
            except TimeoutError:
                pool.terminate()


def _lost(exc: BaseException) -> bool:
    """Did ``exc`` come from not reaching the server (refused, timed out, the connection
    lost), not from the server answering an error?"""
    import asyncpg

    return isinstance(
        exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.PostgresConnectionError
    )


def _seconds(what: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 60:
        raise ConfigurationError(f"{what} must be more than 0 and at most 60 seconds, not {v!r}")
    return float(v)


def open_key_store(where: str, *, timeout: float = 5.0) -> KeyStore:
    """A key store: a ``postgresql://`` DSN, or a SQLite file path. ``timeout``: the longest
    a PostgreSQL store waits to connect, for a query or for a pooled connection."""
    if not isinstance(where, str) or not where:
        raise ConfigurationError("the key store must be a SQLite path or a postgresql:// DSN")
    if where.startswith(("postgres://", "postgresql://")):
        return PostgresKeyStore(where, timeout=timeout)
    return SqliteKeyStore(where.removeprefix("sqlite:///"))


class KeyCache:
    """A gateway process's view of the key store: each key re-read at most every ``ttl``
    seconds, unknown keys remembered as unknown for the same time (a flood of wrong keys costs
    one lookup each per second, not one per request)."""

    __slots__ = ("_entries", "clock", "store", "ttl")

    def __init__(
        self, store: KeyStore, *, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, VirtualKey | None]] = {}

    async def lookup(self, presented: str) -> VirtualKey | None:
        digest = hash_key(presented)
        now = self.clock()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            k = hit[1]
            return k if k is not None and hmac.compare_digest(k.key_hash, digest) else None
        k = await self.store.by_hash(digest)
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[digest] = (now + self.ttl, k)
        return k if k is not None and hmac.compare_digest(k.key_hash, digest) else None
