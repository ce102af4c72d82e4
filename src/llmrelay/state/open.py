"""Opening the configured state store: one store per settings, shared by every facade of the
process. What the settings are is read by :mod:`llmrelay.settings.state`."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .._sync import run_sync
from ..errors import StateStoreError
from ..settings.state import StateSettings
from .base import Store
from .memory import MemoryStore
from .redis_store import RedisStore
from .sqlite import SQLiteStore

__all__ = ["open_store"]

_stores: dict[StateSettings, Store] = {}
_stores_lock = threading.Lock()


def _default_sqlite_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "llmrelay" / "state.sqlite3")


def open_store(settings: StateSettings) -> Store:
    """The store for these settings, one per process (every facade shares it)."""
    store = _stores.get(settings)
    if store is not None:
        return store
    with _stores_lock:
        store = _stores.get(settings)
        if store is None:
            store = _new_store(settings)
            _stores[settings] = store
    return store


def _new_store(s: StateSettings) -> Store:
    if s.backend == "memory":
        return MemoryStore(prefix=s.prefix)
    if s.backend == "sqlite":
        path = Path(s.path or _default_sqlite_path()).expanduser()
        if s.path is None:
            path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path, prefix=s.prefix)
    assert s.url is not None
    store = RedisStore(s.url, prefix=s.prefix, timeout=s.timeout, retry_interval=s.retry_interval)
    if s.connect_now:
        try:
            run_sync(store.ping())
        except StateStoreError as exc:
            raise StateStoreError(
                f"cannot reach the Redis state store at start (connect_now is on): {exc.message}"
            ) from exc
    return store
