"""The embedded, persistent store: one SQLite file, shared by the processes of one machine.

The table ``llmrelay_kv`` (key, value, expires_at) lives next to a ``llmrelay_meta`` table with
the schema version; other tables in the same file are never touched. The file uses WAL mode so
readers never wait for a writer. Operations are short and run inline on the calling thread
(a cache read is a primary-key lookup, tens of microseconds).

**A corrupted file** (not a database, or "database disk image is malformed"): with
``on_corrupt="recover"`` (the default) the file is moved aside to ``<name>.corrupt-<time>`` --
nothing is deleted -- and a fresh, empty file takes its place, with a warning in the log; with
``on_corrupt="raise"`` a :class:`StateStoreError` names the file and the fix. A file written by
a newer llmrelay (a higher schema version) is never modified: it raises ``StateStoreError``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..errors import ConfigurationError, StateStoreError
from .base import check_positive

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

log = logging.getLogger("llmrelay.state")

SCHEMA_VERSION = 1
_PRUNE_EVERY = 256
T = TypeVar("T")

_CORRUPT_MARKERS = ("file is not a database", "malformed", "file is encrypted")


def _is_corruption(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and any(
        m in str(exc).lower() for m in _CORRUPT_MARKERS
    )


class SQLiteStore:
    """A key-value store in a SQLite file (``path``)."""

    kind = "sqlite"
    shared = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        prefix: str = "llmrelay:",
        max_entries: int | None = None,
        on_corrupt: Literal["recover", "raise"] = "recover",
        busy_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if on_corrupt not in ("recover", "raise"):
            raise ConfigurationError(f"on_corrupt must be 'recover' or 'raise', not {on_corrupt!r}")
        if max_entries is not None:
            check_positive(max_entries, "max_entries", integer=True)
        if not str(path).strip():
            raise ConfigurationError("the SQLite state path is empty; give a file name")
        self.path = Path(path).expanduser()
        self.prefix = prefix
        self.max_entries = max_entries
        self.on_corrupt = on_corrupt
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._writes = 0
        self._conn = self._open()

    # ------------------------------------------------------------------ opening

    def _connect(self) -> sqlite3.Connection:
        if self.path.parent and not self.path.parent.exists():
            raise StateStoreError(
                f"cannot open the SQLite state file {self.path}: its directory does not exist"
            )
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS llmrelay_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)"
            )
            row = conn.execute("SELECT v FROM llmrelay_meta WHERE k = 'schema'").fetchone()
            version = int(row[0]) if row is not None else 0
            if version > SCHEMA_VERSION:
                raise StateStoreError(
                    f"the SQLite state file {self.path} has schema version {version}, written by "
                    f"a newer llmrelay (this one knows {SCHEMA_VERSION}); upgrade llmrelay or "
                    "point [state] path at another file"
                )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS llmrelay_kv "
                "(key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL)"
            )
            if version < SCHEMA_VERSION:
                conn.execute(
                    "INSERT OR REPLACE INTO llmrelay_meta (k, v) VALUES ('schema', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except StateStoreError:
            raise
        except sqlite3.Error as exc:
            if _is_corruption(exc):
                return self._recover(exc)
            raise StateStoreError(f"cannot open the SQLite state file {self.path}: {exc}") from exc
        except OSError as exc:
            raise StateStoreError(
                f"cannot open the SQLite state file {self.path}: {exc.strerror or exc}"
            ) from exc

    def _recover(self, exc: BaseException) -> sqlite3.Connection:
        if self.on_corrupt == "raise":
            raise StateStoreError(
                f"the SQLite state file {self.path} is corrupted ({exc}); move it aside or "
                "delete it (it holds only cached and shared state), or set on_corrupt='recover'"
            ) from exc
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time() * 1000)}")
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + suffix))
        except OSError as move_exc:
            raise StateStoreError(
                f"the SQLite state file {self.path} is corrupted ({exc}) and could not be moved "
                f"aside: {move_exc.strerror or move_exc}"
            ) from exc
        log.warning(
            "the SQLite state file %s was corrupted (%s); it was moved to %s and a new, empty "
            "file is used",
            self.path,
            exc,
            aside,
        )
        try:
            return self._connect()
        except sqlite3.Error as again:
            raise StateStoreError(
                f"cannot create the SQLite state file {self.path}: {again}"
            ) from again

    # ------------------------------------------------------------------ operations

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                if _is_corruption(exc) and self.on_corrupt == "recover":
                    self._conn.close()
                    self._conn = self._recover(exc)
                raise StateStoreError(f"SQLite state file {self.path}: {exc}") from exc

    def get_now(self, key: str) -> bytes | None:
        now = self.clock()

        def op(c: sqlite3.Connection) -> bytes | None:
            row = c.execute("SELECT value, expires_at FROM llmrelay_kv WHERE key = ?", (key,))
            found: Any = row.fetchone()
            if found is None:
                return None
            if found[1] is not None and found[1] <= now:
                c.execute("DELETE FROM llmrelay_kv WHERE key = ?", (key,))
                return None
            return bytes(found[0])

        return self._run(op)

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        expires = None if ttl is None else self.clock() + ttl

        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT OR REPLACE INTO llmrelay_kv (key, value, expires_at) VALUES (?, ?, ?)",
                (key, value, expires),
            )
            self._writes += 1
            if self._writes % _PRUNE_EVERY == 0:
                self._prune(c)

        self._run(op)

    def _prune(self, c: sqlite3.Connection) -> None:
        c.execute(
            "DELETE FROM llmrelay_kv WHERE expires_at IS NOT NULL AND expires_at <= ?",
            (self.clock(),),
        )
        if self.max_entries is not None:
            (n,) = c.execute("SELECT count(*) FROM llmrelay_kv").fetchone()
            if n > self.max_entries:
                c.execute(
                    "DELETE FROM llmrelay_kv WHERE rowid IN "
                    "(SELECT rowid FROM llmrelay_kv ORDER BY rowid LIMIT ?)",
                    (n - self.max_entries,),
                )

    async def delete(self, key: str) -> None:
        self._run(lambda c: c.execute("DELETE FROM llmrelay_kv WHERE key = ?", (key,)))

    async def clear(self, prefix: str) -> int:
        def op(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "DELETE FROM llmrelay_kv WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
            )
            return int(cur.rowcount)

        return self._run(op)

    async def aclose(self) -> None:
        return None

    def close(self) -> None:
        """Close the file (the store is unusable afterwards)."""
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
