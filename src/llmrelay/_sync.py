"""Running the async engine from sync code -- the same engine, no second implementation.

With no event loop running in the calling thread, a private loop per thread runs the coroutine
(so its pooled HTTP session is reused across sync calls). Inside a running loop (Jupyter, an
async framework calling sync code), the coroutine runs on one shared background loop thread and
the caller blocks on the result.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["Runner", "run_sync", "runner"]

T = TypeVar("T")

_local = threading.local()
_thread_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_bg_lock = threading.Lock()
_bg_loop: asyncio.AbstractEventLoop | None = None
_bg_thread: threading.Thread | None = None


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
        _thread_loops.add(loop)
    return loop


def _background_loop() -> asyncio.AbstractEventLoop:
    global _bg_loop, _bg_thread
    with _bg_lock:
        if _bg_loop is None or _bg_loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            t = threading.Thread(target=run, name="llmrelay-sync", daemon=True)
            t.start()
            ready.wait()
            _bg_loop, _bg_thread = loop, t
        return _bg_loop


class Runner:
    """Runs coroutines to completion on one fixed loop (used for a whole sync stream)."""

    __slots__ = ("_loop", "_own")

    def __init__(self, loop: asyncio.AbstractEventLoop, own_thread: bool) -> None:
        self._loop = loop
        self._own = own_thread

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._own:
            return self._loop.run_until_complete(coro)
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result()


def runner() -> Runner:
    """A runner for the calling thread: its own loop, or the background loop if one runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = _thread_loop()
        if not loop.is_running():
            return Runner(loop, True)
    return Runner(_background_loop(), False)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, in or out of a running event loop."""
    return runner().run(coro)


def _shutdown() -> None:
    loops = list(_thread_loops)
    for loop in loops:
        if loop.is_closed() or loop.is_running():
            continue
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
    global _bg_loop
    bg = _bg_loop
    if bg is not None and not bg.is_closed():

        async def _close() -> None:
            await bg.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(_close(), bg).result(5)
        except Exception:
            pass
        bg.call_soon_threadsafe(bg.stop)
        if _bg_thread is not None:
            _bg_thread.join(5)
        bg.close()
        _bg_loop = None


atexit.register(_shutdown)
