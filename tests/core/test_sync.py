"""The sync API: from plain sync code, from inside a running loop, and from worker threads."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import llmrelay
from llmrelay import _sync
from llmrelay.errors import LLMRelayError
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.transport.native import default_transport

from ..conftest import CANARY_KEY
from ..edge_server import EdgeServer

MODEL = "openai/gpt-4.1-mini"
TOOLS = [{"name": "lookup", "parameters": {"type": "object"}}]


@pytest.fixture
def edge() -> Iterator[EdgeServer]:
    with EdgeServer.running() as server:
        yield server


def kw(fake: FakeUpstream) -> dict[str, Any]:
    return {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}


def summary(chunks: list[llmrelay.StreamChunk]) -> list[tuple[Any, ...]]:
    return [
        (
            c.delta,
            c.finish_reason,
            c.done,
            [(d.index, d.id, d.name, d.arguments) for d in c.tool_calls],
            c.usage,
        )
        for c in chunks
    ]


def session_of(loop: asyncio.AbstractEventLoop) -> Any:
    return default_transport()._pools[loop][0]


# --------------------------------------------------------------------------- plain sync code


def test_chat_from_sync_code(fake_thread: FakeUpstream) -> None:
    r = llmrelay.chat(MODEL, "hello sync", **kw(fake_thread))
    assert r.text == "Echo: hello sync"
    assert r.usage.output_tokens > 0
    assert fake_thread.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"


def test_stream_from_sync_code(fake_thread: FakeUpstream) -> None:
    with llmrelay.stream(MODEL, "stream me", **kw(fake_thread)) as s:
        chunks = list(s)
    assert "".join(c.delta for c in chunks) == "Echo: stream me"
    assert chunks[-1].done
    assert s.response is not None
    assert s.response.text == "Echo: stream me"
    assert s.closed


def test_sync_collect_and_text_deltas(fake_thread: FakeUpstream) -> None:
    assert llmrelay.stream(MODEL, "a b", **kw(fake_thread)).collect().text == "Echo: a b"
    assert "".join(llmrelay.stream(MODEL, "c d", **kw(fake_thread)).text_deltas()) == "Echo: c d"


def test_sync_errors_are_typed(fake_thread: FakeUpstream) -> None:
    fake_thread.push(Reply.error(401, "Incorrect API key"))
    with pytest.raises(llmrelay.AuthenticationError) as info:
        llmrelay.chat(MODEL, "hi", retries=0, **kw(fake_thread))
    assert CANARY_KEY not in str(info.value)


def test_repeated_sync_calls_reuse_the_loop_and_session(edge: EdgeServer) -> None:
    client = llmrelay.Client()
    opts = {"api_key": CANARY_KEY, "base_url": edge.base_url("peer")}
    first = client.chat(MODEL, "one", **opts)
    loop = _sync.runner().loop
    session = session_of(loop)
    second = client.chat(MODEL, "two", **opts)
    third = llmrelay.chat(MODEL, "three", **opts)  # the module-level client shares the transport
    # The server answers with the client's TCP port: one pooled connection served all three.
    assert first.text == second.text == third.text
    assert _sync.runner().loop is loop
    assert session_of(loop) is session
    assert not session.closed


def test_sync_stream_yields_the_same_chunks_as_async(fake_thread: FakeUpstream) -> None:
    fake_thread.push(Reply.ok("one two three"), Reply.tool_call("lookup", {"q": "x" * 30}))
    sync_text = list(llmrelay.stream(MODEL, "same", **kw(fake_thread)))
    sync_tool = list(llmrelay.stream(MODEL, "same", tools=TOOLS, **kw(fake_thread)))

    async def collect() -> tuple[list[llmrelay.StreamChunk], list[llmrelay.StreamChunk]]:
        client = llmrelay.Client()
        fake_thread.push(Reply.ok("one two three"), Reply.tool_call("lookup", {"q": "x" * 30}))
        a = [c async for c in client.astream(MODEL, "same", **kw(fake_thread))]
        b = [c async for c in client.astream(MODEL, "same", tools=TOOLS, **kw(fake_thread))]
        await client.aclose()
        return a, b

    async_text, async_tool = asyncio.run(collect())
    assert summary(sync_text) == summary(async_text)
    assert summary(sync_tool) == summary(async_tool)
    assert len(sync_text) >= 4
    assert sync_text[-1].response is not None
    responses = [c[-1].response for c in (sync_text, async_text, sync_tool, async_tool)]
    assert all(r is not None for r in responses)
    st, at, stool, atool = (r for r in responses if r is not None)
    assert st.text == at.text == "one two three"
    assert stool.tool_calls == atool.tool_calls
    assert stool.tool_calls[0].parsed_arguments() == {"q": "x" * 30}


def test_worker_threads_share_the_background_loop(fake_thread: FakeUpstream) -> None:
    private_loops = set(_sync._thread_loops)

    def call(i: int) -> tuple[str, bool]:
        r = llmrelay.chat(MODEL, f"thread {i}", **kw(fake_thread))
        return r.text, _sync.runner().loop is _sync._background_loop()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(call, range(8)))
        gc.collect()  # the worker threads are gone: nothing of theirs may be left unclosed
    assert results == [(f"Echo: thread {i}", True) for i in range(8)]
    assert set(_sync._thread_loops) == private_loops  # no loop per worker thread
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


# --------------------------------------------------------------------------- inside a running loop


async def test_sync_chat_inside_a_running_loop(fake_thread: FakeUpstream) -> None:
    here = asyncio.get_running_loop()
    r = llmrelay.chat(MODEL, "from async", **kw(fake_thread))
    assert r.text == "Echo: from async"
    bg = _sync._background_loop()
    assert bg is not here
    assert not session_of(bg).closed
    assert here not in default_transport()._pools  # the caller's loop was not used


async def test_sync_stream_inside_a_running_loop(fake_thread: FakeUpstream) -> None:
    chunks = list(llmrelay.stream(MODEL, "from async", **kw(fake_thread)))
    assert "".join(c.delta for c in chunks) == "Echo: from async"
    assert chunks[-1].done


async def test_abandoned_sync_stream_inside_a_running_loop_closes(edge: EdgeServer) -> None:
    for c in llmrelay.stream(MODEL, "hi", api_key=CANARY_KEY, base_url=edge.base_url("sse")):
        assert c.delta == "Hel"
        break
    gc.collect()
    ok = await asyncio.to_thread(edge.disconnected["sse"].wait, 5.0)
    assert ok, "the abandoned stream's connection stayed open"


async def test_context_variables_reach_the_background_loop() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller's value")

    async def read() -> tuple[str, str]:
        return var.get(), threading.current_thread().name

    value, thread = _sync.run_sync(read())
    assert value == "caller's value"
    assert thread == "llmrelay-sync"


def test_sync_call_on_the_background_loop_is_refused_not_deadlocked() -> None:
    async def misuse() -> None:
        async def noop() -> int:
            return 1

        _sync.run_sync(noop())  # a sync call from code running on the background loop

    fut = asyncio.run_coroutine_threadsafe(misuse(), _sync._background_loop())
    with pytest.raises(LLMRelayError, match="deadlock"):
        fut.result(5)


def test_run_sync_returns_and_raises() -> None:
    async def ok() -> int:
        return 42

    async def boom() -> None:
        raise ValueError("boom")

    assert _sync.run_sync(ok()) == 42
    with pytest.raises(ValueError, match="boom"):
        _sync.run_sync(boom())
