"""Running the async engine from sync code -- the same engine, no second implementation.

From the main thread with no event loop running, a private loop runs the coroutine (so its pooled
HTTP session is reused across sync calls, with no thread hop). Everywhere else -- inside a running
loop (Jupyter, an async framework calling sync code) or in another thread (a thread pool, a
threaded web server) -- the coroutine runs on one shared background loop thread and the caller
blocks on the result. Worker threads therefore share one connection pool, and a thread that ends
leaves no loop or open session behind. Context variables of the caller are visible to the
coroutine in both cases.

After ``os.fork`` the child starts with fresh loops: a loop (its selector) and a background
thread cannot be shared with the parent.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from .errors import LLMRelayError

__all__ = ["Runner", "run_sync", "runner"]

T = TypeVar("T")

_local = threading.local()
_thread_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_bg_lock = threading.Lock()
_bg_loop: asyncio.AbstractEventLoop | None = None
_bg_thread: threading.Thread | None = None
#: Tasks started without waiting (closing abandoned streams); kept so they are not collected.
_detached: set[asyncio.Task[Any]] = set()


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


def _on_background_thread() -> bool:
    return _bg_thread is not None and threading.current_thread() is _bg_thread


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Run the work a finished call left ready on a private loop, without waiting for I/O.

    The loop stops as soon as the call's coroutine is done; callbacks it scheduled -- above all
    a transport's ``connection_lost``, which is what actually closes a dropped socket, and the
    closing of abandoned async generators -- would otherwise wait for the next sync call, leaving
    the server's connection open (and a model generating for nobody). ``stop()`` before
    ``run_forever()`` runs exactly one zero-timeout iteration.
    """
    ready = getattr(loop, "_ready", None)  # asyncio's queue of ready callbacks
    if ready is None:  # another loop implementation: a fixed, small number of iterations
        for _ in range(2):
            loop.stop()
            loop.run_forever()
        return
    for _ in range(16):
        if not ready:
            return
        loop.stop()
        loop.run_forever()


class Runner:
    """Runs coroutines to completion on one fixed loop (used for a whole sync stream)."""

    __slots__ = ("_loop", "_own", "_thread")

    def __init__(self, loop: asyncio.AbstractEventLoop, own_thread: bool) -> None:
        self._loop = loop
        #: True: ``loop`` is the calling thread's private loop, run in place.
        self._own = own_thread
        self._thread = threading.current_thread()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._own:
            loop = self._loop
            try:
                return loop.run_until_complete(coro)
            finally:
                if not loop.is_closed() and not loop.is_running():
                    _drain(loop)
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result()
        except BaseException:
            # KeyboardInterrupt (or similar) while waiting: do not leave the call running.
            fut.cancel()
            raise

    def close_soon(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run ``make()`` now if this thread may block on the loop, else schedule it there.

        For finalisers (``__del__``), which may run on any thread at any time: never blocks a
        running loop on itself, never creates a coroutine that could be left un-awaited.
        """
        loop = self._loop
        if loop.is_closed():
            return
        if self._own and not loop.is_running() and threading.current_thread() is self._thread:
            self.run(make())
            return
        if not self._own and not _on_background_thread():
            self.run(make())
            return

        def start() -> None:
            task = loop.create_task(make())
            _detached.add(task)
            task.add_done_callback(_detached.discard)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop closed meanwhile
            pass


def runner() -> Runner:
    """A runner for the calling thread: the main thread's own loop, else the background loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if threading.current_thread() is threading.main_thread():
            loop = _thread_loop()
            if not loop.is_running():
                return Runner(loop, True)
    else:
        if _on_background_thread():
            raise LLMRelayError(
                "a sync llmrelay call was made from inside llmrelay's own background event loop "
                "(for example from a callback), which would deadlock; use the async API there "
                "(await llmrelay.achat(...), llmrelay.astream(...))"
            )
    return Runner(_background_loop(), False)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, in or out of a running event loop."""
    try:
        run = runner()
    except BaseException:
        coro.close()  # never leave it un-awaited
        raise
    return run.run(coro)


def _reset_after_fork() -> None:
    # The child has only the forking thread; the parent's loops and background thread are not
    # usable here (a loop's selector is shared with the parent).
    global _local, _bg_loop, _bg_thread, _thread_loops
    _local = threading.local()
    _thread_loops = weakref.WeakSet()
    _bg_loop = None
    _bg_thread = None
    _detached.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


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
        stop_loop_thread(bg, _bg_thread, bg.shutdown_asyncgens())
        _bg_loop = None


def stop_loop_thread(
    loop: asyncio.AbstractEventLoop,
    thread: threading.Thread | None,
    last: Coroutine[Any, Any, None],
) -> None:
    """Stop a loop that ``thread`` runs forever: run ``last`` on it (closing what lives on the
    loop), stop it, join the thread and close the loop. Each wait is at most 5 seconds."""
    try:
        asyncio.run_coroutine_threadsafe(last, loop).result(5)
    except Exception:
        pass
    loop.call_soon_threadsafe(loop.stop)
    if thread is not None:
        thread.join(5)
    if not loop.is_running():
        loop.close()


atexit.register(_shutdown)
