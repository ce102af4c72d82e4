"""The shared store: Redis through ``redis.asyncio`` (the ``llmrelay[redis]`` extra).

- **One connection pool per event loop.** redis.asyncio connections belong to the loop that
  opened them, and llmrelay runs on several loops (your loop, the sync bridge's per-thread
  loops, its background loop). Each loop's client is closed when that loop shuts down its async
  generators (``asyncio.run`` does), or by :meth:`RedisStore.aclose` on that loop.
- **Atomic operations are Lua scripts**, called with ``EVALSHA``; after a Redis restart (empty
  script cache) the ``NOSCRIPT`` answer makes the store load the script and call it again.
  Scripts read the time with Redis ``TIME``, so processes whose clocks disagree still agree on
  every window and expiry.
- **Failures** (connection refused, timeouts, errors) raise :class:`StateStoreError` naming the
  server (password removed), never a raw redis exception. After a failure the store answers
  ``StateStoreError`` at once, without touching the network, for ``retry_interval`` seconds;
  then the next operation tries the server again, so sharing resumes by itself once Redis is
  back. A pooled connection broken by a restart is retried once on a fresh connection.
- **Counted once.** That retry sends a command again when the connection dropped after Redis
  ran it but before its answer came: a script that counts (a budget reserve or settle, a rate
  limit's admission or give-back) would count twice. Such scripts are made with ``once=True``:
  each call carries an id, the first run stores its answer under it for :data:`ONCE_TTL_MS`,
  and a second run of the same call returns that answer without running again.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError, StateStoreError
from .base import check_positive, redact_url

__all__ = ["RedisStore", "Script", "call_id", "import_redis", "process_tag"]

_SCHEMES = ("redis", "rediss", "unix")


def import_redis() -> Any:
    """The ``redis.asyncio`` module, or a ConfigurationError naming the extra to install."""
    try:
        import redis.asyncio as redis_asyncio
    except ImportError as exc:
        raise ConfigurationError(
            "Redis state needs the redis package, which is not installed: "
            "pip install 'llmrelay[redis]'"
        ) from exc
    return redis_asyncio


#: How long the answer of a ``once`` script call is kept for a resend of the same call, at
#: least: redis-py resends after at most the store's ``timeout`` (an answer that never came)
#: plus a reconnect (``timeout`` again), so a store keeps answers for 3 x ``timeout`` if longer.
ONCE_TTL_MS = 10_000

#: A ``once`` script: the caller's script runs as a function of KEYS and ARGV from which the
#: call's id key (the last key) and the answer's lifetime (the last argument) were taken, so
#: ``#KEYS`` and ``#ARGV`` are what the caller passed.
_ONCE = """local __once = table.remove(KEYS)
local __ttl = table.remove(ARGV)
local __done = redis.call('GET', __once)
if __done then return cjson.decode(__done)[1] end
local __answer = (function(KEYS, ARGV)
%s
end)(KEYS, ARGV)
redis.call('SET', __once, cjson.encode({__answer}), 'PX', __ttl)
return __answer
"""


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, called by its SHA-1. ``once``: a call Redis runs twice (a resend after a
    lost answer) counts once -- the store gives each call an id (see the module's notes)."""

    name: str
    source: str
    once: bool = False
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        if self.once:
            object.__setattr__(self, "source", _ONCE % self.source.strip("\n"))
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


#: Ids of ``once`` calls: random per process (replicas in containers share pids; a forked
#: worker, sharing its parent's memory, draws its own), then a count.
_CALL_PREFIX = os.urandom(6).hex()
_calls = itertools.count()


def process_tag() -> str:
    """12 random hex digits of this process, drawn again in a forked child: ids made of it and
    a count are never another process's (a gunicorn ``--preload`` or multiprocessing worker
    would else reuse its siblings' ids, and a ``once`` call would get another's answer)."""
    return _CALL_PREFIX


def _after_fork_in_child() -> None:
    global _CALL_PREFIX
    _CALL_PREFIX = os.urandom(6).hex()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def call_id() -> str:
    """A new id for a ``once`` call, never another process's: to ask again later for the
    answer of a call whose answer was lost (``RedisStore.eval(..., call_id=...)``)."""
    return f"{_CALL_PREFIX}{next(_calls)}"


def _with_once(
    calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]],
    ttl_ms: int,
    ids: Sequence[str | None] | None = None,
) -> list[tuple[Script, Sequence[str], Sequence[Any]]]:
    """``calls`` with each ``once`` script's id key (beside its first key: the same hash tag,
    the same Cluster slot; ``ids``: the caller's ids, a new one where None) and answer
    lifetime appended."""
    out: list[tuple[Script, Sequence[str], Sequence[Any]]] = []
    for i, (script, keys, args) in enumerate(calls):
        if script.once:
            cid = ids[i] if ids is not None else None
            key = f"{keys[0]}:once:{cid or call_id()}"
            keys, args = [*keys, key], [*args, ttl_ms]
        out.append((script, keys, args))
    return out


def check_redis_url(url: object) -> str:
    """Validate a Redis URL now (a ConfigurationError naming the problem, password hidden)."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(
            f"the Redis URL must be a non-empty string like 'redis://127.0.0.1:6379/0', not {url!r}"
        )
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {shown!r}: {exc}") from None
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"bad Redis URL {shown!r}: it must start with redis://, rediss:// or unix://"
        )
    if parts.scheme != "unix":
        if not parts.hostname:
            raise ConfigurationError(f"bad Redis URL {shown!r}: it names no host")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ConfigurationError(
                f"bad Redis URL {shown!r}: the database after the host must be a number "
                "(redis://host:6379/0)"
            )
        if port == 0:
            raise ConfigurationError(f"bad Redis URL {shown!r}: port 0")
    elif not parts.path:
        raise ConfigurationError(f"bad Redis URL {shown!r}: a unix:// URL needs a socket path")
    import_redis()
    from redis.asyncio.connection import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {shown!r}: {exc}") from None
    return url


def _failure(where: str, exc: BaseException) -> StateStoreError:
    detail = str(exc).strip() or type(exc).__name__
    return StateStoreError(f"Redis at {where} failed: {type(exc).__name__}: {detail}")


class RedisStore:
    """Redis as the state store. ``url``: ``redis://[user:password@]host:port/db``,
    ``rediss://...`` (TLS) or ``unix:///path/to/socket``."""

    kind = "redis"
    shared = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "llmrelay:",
        timeout: float = 1.0,
        retry_interval: float = 1.0,
        max_connections: int = 256,
    ) -> None:
        self.url = check_redis_url(url)
        self.where = redact_url(url)
        check_positive(timeout, "timeout")
        check_positive(retry_interval, "retry_interval", zero=True)
        self.prefix = prefix
        self.timeout = float(timeout)
        self.retry_interval = float(retry_interval)
        self.max_connections = max_connections
        #: A ``once`` call's answer outlives the resend of that call (see ONCE_TTL_MS).
        self.once_ttl_ms = max(ONCE_TTL_MS, math.ceil(3000 * self.timeout))
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._last_error: str | None = None
        #: Operations refused or failed since creation (for diagnostics and tests).
        self.failures = 0

    def __repr__(self) -> str:
        return f"RedisStore({self.where!r})"

    # ------------------------------------------------------------------ connections

    async def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is not None:
            return entry[0]
        ra = import_redis()
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # A blocking pool: under a burst, callers wait for a free connection instead of
        # failing with "too many connections".
        pool = ra.BlockingConnectionPool.from_url(
            self.url,
            protocol=2,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1),  # one retry: a pooled connection a restart broke
            max_connections=self.max_connections,
            timeout=max(5.0, 5 * self.timeout),
            health_check_interval=0,
        )
        client = ra.Redis.from_pool(pool)
        closer = _closer(client, self._clients, self._lock, loop)
        with self._lock:
            for stale in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[stale]
            self._clients[loop] = (client, closer)
        await closer.__anext__()
        return client

    async def aclose(self) -> None:
        """Close this event loop's connections (the store stays usable; the next operation
        opens new ones)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.pop(loop, None)
        if entry is not None:
            await entry[1].aclose()  # its ``finally`` closes the client

    # ------------------------------------------------------------------ failure handling

    def _check_up(self) -> None:
        if self._down_until and time.monotonic() < self._down_until:
            self.failures += 1
            raise StateStoreError(
                f"Redis at {self.where} is unavailable ({self._last_error}); retrying in "
                f"{self._down_until - time.monotonic():.1f}s"
            )

    def _mark_down(self, exc: BaseException) -> StateStoreError:
        err = _failure(self.where, exc)
        self.failures += 1
        self._last_error = err.message
        self._down_until = time.monotonic() + self.retry_interval if self.retry_interval else 0.0
        return err

    @property
    def available(self) -> bool:
        """False while the store is waiting out ``retry_interval`` after a failure."""
        return not (self._down_until and time.monotonic() < self._down_until)

    async def call(self, op: str, *args: Any) -> Any:
        """One redis-py client command (``await store.call("hgetall", key)``), errors wrapped."""
        self._check_up()
        try:
            client = await self._client()
            result = await getattr(client, op)(*args)
        except (asyncio.CancelledError, StateStoreError):
            raise
        except Exception as exc:
            raise self._mark_down(exc) from exc
        self._down_until = 0.0
        return result

    # ------------------------------------------------------------------ key-value

    async def ping(self) -> None:
        """Round-trip to the server; StateStoreError if it cannot be reached."""
        await self.call("ping")

    async def get(self, key: str) -> bytes | None:
        value = await self.call("get", key)
        return value if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        if ttl is None:
            await self.call("set", key, value)
        else:
            await self.call("set", key, value, None, max(1, round(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self.call("delete", key)

    async def clear(self, prefix: str) -> int:
        """Delete the keys under ``prefix`` (SCAN + UNLINK in batches; never KEYS)."""
        self._check_up()
        pattern = _glob_escape(prefix) + "*"
        n = 0
        try:
            client = await self._client()
            batch: list[bytes] = []
            async for key in client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    n += int(await client.unlink(*batch))
                    batch.clear()
            if batch:
                n += int(await client.unlink(*batch))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._mark_down(exc) from exc
        return n

    # ------------------------------------------------------------------ scripts

    async def eval(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        call_id: str | None = None,
    ) -> Any:
        """Run one script atomically (one round trip; two after a restart emptied the script
        cache). ``call_id`` (a ``once`` script): the id of a call made before whose answer was
        lost -- its answer is returned if Redis ran it (while it keeps answers), else it runs."""
        if call_id is None:
            return (await self.eval_many([(script, keys, args)]))[0]
        return (await self.eval_many([(script, keys, args)], ids=[call_id]))[0]

    async def eval_many(
        self,
        calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]],
        *,
        ids: Sequence[str | None] | None = None,
    ) -> list[Any]:
        """Run several scripts in one pipelined round trip. Each script is atomic on its own;
        results come back in order. Raises StateStoreError if any call failed."""
        self._check_up()
        from redis.exceptions import NoScriptError

        # Ids made once: the NOSCRIPT rerun below reuses them.
        calls = _with_once(calls, self.once_ttl_ms, ids)
        try:
            client = await self._client()
            results = await self._pipeline(client, calls)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:  # the server restarted (or flushed its scripts): load and rerun those
                for s in {calls[i][0].sha: calls[i][0] for i in missing}.values():
                    await client.script_load(s.source)
                again = await self._pipeline(client, [calls[i] for i in missing])
                for i, r in zip(missing, again, strict=True):
                    results[i] = r
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._mark_down(exc) from exc
        self._down_until = 0.0
        for r in results:
            if isinstance(r, Exception):
                raise _failure(self.where, r) from r
        return results

    @staticmethod
    async def _pipeline(
        client: Any, calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        if len(calls) == 1:
            script, keys, args = calls[0]
            from redis.exceptions import NoScriptError

            try:
                return [await client.evalsha(script.sha, len(keys), *keys, *args)]
            except NoScriptError as exc:
                return [exc]
        pipe = client.pipeline(transaction=False)
        for script, keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


async def _closer(
    client: Any,
    clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any]],
    lock: threading.Lock,
    loop: asyncio.AbstractEventLoop,
) -> AsyncIterator[None]:
    """Parked async generator: a loop's ``shutdown_asyncgens`` finalises it, closing the client
    that belongs to that loop."""
    try:
        yield
    finally:
        with lock:
            entry = clients.get(loop)
            if entry is not None and entry[0] is client:
                del clients[loop]
        await client.aclose()
