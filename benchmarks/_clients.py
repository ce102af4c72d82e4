"""The clients under test and the measuring loop, run in a worker subprocess.

Each client is measured in a fresh process (``python benchmarks/_clients.py --client NAME ...``)
so one library's imports, background threads and garbage never weigh on another's numbers. The
worker pins itself to one CPU (the upstream runs on another), checks the first answer, warms up,
then makes ``calls`` calls at each concurrency in a few timed batches, recording
``time.process_time()`` (CPU of every thread of this process) and ``time.perf_counter()`` (wall)
around each batch. It prints one JSON object.

Every worker installs an audit hook that records (and refuses) any socket connection or DNS
lookup to a host other than the loopback, so a run proves that no client touched the network.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson

from _responses import read_output_text, read_text_deltas
from _upstream import STREAM_TEXT, TEXT, raise_fd_limit

MODEL = "gpt-4.1-mini"
API_KEY = "sk-bench-0000000000000000000000000000000000000000"
MESSAGES: list[dict[str, str]] = [
    {"role": "system", "content": "You are a concise assistant for Python developers."},
    {"role": "user", "content": "Why should I reuse one HTTP session for many API calls?"},
]

#: Environment that keeps LiteLLM off the network (it otherwise fetches its model cost map,
#: Anthropic beta headers and blog posts from GitHub / docs.litellm.ai).
LITELLM_OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
}

#: name -> what is measured; the order is the order of the tables.
CLIENTS: dict[str, str] = {
    "aiohttp": "raw aiohttp + orjson, one ClientSession (the floor)",
    "llmrelay": "Client().achat/astream(...): default layers (catalog, retries, breakers)",
    "llmrelay-reliability": "Client(engine=Engine()): retries, breakers, retry budget; no catalog",
    "llmrelay-nolayers": "Client(engine=Engine(...)) with every optional layer off",
    "llmrelay-fallback": "Client().achat/astream(..., fallbacks=[...]); the primary answers",
    "llmrelay-metrics": "Client(metrics=True): in-process metrics on",
    "openai": "openai.AsyncOpenAI(max_retries=0).chat.completions.create(...)",
    "litellm": "litellm.acompletion(...)",
    "aiohttp-responses": (
        "raw aiohttp + orjson on POST /v1/responses (the floor of --api responses)"
    ),
}

Call = Callable[[], Awaitable[str]]
Close = Callable[[], Awaitable[None]]


class Unavailable(Exception):
    """The client's library is not installed (or fails to import)."""


# ---------------------------------------------------------------------------- network guard

_LOOPBACK = ("127.0.0.1", "::1", "localhost", "0.0.0.0")
NETWORK_ATTEMPTS: list[str] = []


def _guard(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        addr = args[1]
        host = addr[0] if isinstance(addr, tuple) else None
    elif event in ("socket.getaddrinfo", "socket.gethostbyname"):
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode()
    else:
        return
    if host is None or host in _LOOPBACK or str(host).startswith("127."):
        return
    NETWORK_ATTEMPTS.append(f"{event} {host!r}")
    raise OSError(f"benchmark network guard: {event} to {host!r} refused (offline benchmark)")


# ---------------------------------------------------------------------------- clients


def aiohttp_floor(
    base_url: str,
    path: str,
    stream: bool,
    payload: dict[str, Any],
    read: Callable[[Any], str],
    read_stream: Callable[[Any], Awaitable[str]],
) -> tuple[Call, Close]:
    """The floor client of one API: one aiohttp session posting ``payload`` (encoded per call)
    to ``base_url + path``; ``read`` takes the text out of a decoded answer, ``read_stream``
    out of the response's byte stream (its own loop: no call per event)."""
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url = base_url + path
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "authorization": "Bearer " + API_KEY,
    }
    loads, dumps = orjson.loads, orjson.dumps

    async def call() -> str:
        async with session.post(url, data=dumps(payload), headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
            return read(loads(await r.read()))

    async def call_stream() -> str:
        async with session.post(url, data=dumps(payload), headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
            return await read_stream(r.content)

    return (call_stream if stream else call), session.close


def _chat_text(data: Any) -> str:
    return str(data["choices"][0]["message"]["content"])


async def _chat_deltas(content: Any) -> str:
    loads = orjson.loads
    parts: list[str] = []
    async for line in content:
        if not line.startswith(b"data: "):
            continue
        payload = line[6:].rstrip()
        if payload == b"[DONE]":
            break
        ev = loads(payload)
        for ch in ev["choices"]:
            piece = ch["delta"].get("content")
            if piece:
                parts.append(piece)
    return "".join(parts)


async def _aiohttp(base_url: str, stream: bool, _: dict[str, Any]) -> tuple[Call, Close]:
    payload: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
    if stream:
        payload.update(stream=True, stream_options={"include_usage": True})
    return aiohttp_floor(base_url, "/chat/completions", stream, payload, _chat_text, _chat_deltas)


async def _llmrelay(
    base_url: str, stream: bool, extra: dict[str, Any], engine: str = "client"
) -> tuple[Call, Close]:
    """``engine``: "client" (``Client()`` as users make it), "metrics" (``Client(metrics=True)``),
    "reliability" (``Engine()``'s defaults) or "bare" (every optional layer off)."""
    import llmrelay

    if engine == "client":
        client = llmrelay.Client()
    elif engine == "metrics":
        try:
            client = llmrelay.Client(metrics=True)
        except TypeError as exc:
            raise Unavailable(f"this llmrelay has no Client(metrics=...): {exc}") from exc
    elif engine == "reliability":
        client = llmrelay.Client(engine=llmrelay.Engine())
    else:
        client = llmrelay.Client(engine=bare_engine())
    kw: dict[str, Any] = {"api_key": API_KEY, "base_url": base_url, **extra}
    model = "openai/" + MODEL

    async def call() -> str:
        r = await client.achat(model, MESSAGES, **kw)
        return r.text

    async def call_stream() -> str:
        parts: list[str] = []
        async for c in client.astream(model, MESSAGES, **kw):
            if c.delta:
                parts.append(c.delta)
        return "".join(parts)

    return (call_stream if stream else call), client.aclose


def bare_engine() -> Any:
    """An ``Engine`` with every optional layer off: no retries, breakers, retry budget, catalog,
    cache, limiter, budget or recorder. Only the arguments this ``Engine`` accepts are passed."""
    import inspect

    from llmrelay.core.engine import Engine

    off: dict[str, Any] = {"breakers": False, "retry_budget": False}
    try:
        from llmrelay.core.retry import RetryPolicy

        off["retry"] = RetryPolicy(max_retries=0)
    except ImportError:
        pass
    accepted = inspect.signature(Engine).parameters
    return Engine(**{k: v for k, v in off.items() if k in accepted})


async def _llmrelay_fallback(
    base_url: str, stream: bool, extra: dict[str, Any]
) -> tuple[Call, Close]:
    # The fallback is never reached (the primary answers), but its chain is resolved per call.
    return await _llmrelay(base_url, stream, {"fallbacks": ["openai/gpt-4.1"], **extra})


async def _openai(base_url: str, stream: bool, _: dict[str, Any]) -> tuple[Call, Close]:
    try:
        import openai
    except ImportError as exc:
        raise Unavailable(f"openai: {exc}") from exc
    client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)

    async def call() -> str:
        r = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
        return r.choices[0].message.content or ""

    async def call_stream() -> str:
        parts: list[str] = []
        s = await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for c in s:
            if c.choices and c.choices[0].delta.content:
                parts.append(c.choices[0].delta.content)
        return "".join(parts)

    return (call_stream if stream else call), client.close


async def _litellm(base_url: str, stream: bool, _: dict[str, Any]) -> tuple[Call, Close]:
    os.environ.update(LITELLM_OFFLINE_ENV)
    try:
        import litellm
    except Exception as exc:  # ImportError, or its import-time failures
        raise Unavailable(f"litellm: {type(exc).__name__}: {exc}") from exc
    litellm.suppress_debug_info = True
    model = "openai/" + MODEL

    async def call() -> str:
        r = await litellm.acompletion(
            model=model, messages=MESSAGES, api_base=base_url, api_key=API_KEY
        )
        return r.choices[0].message.content or ""

    async def call_stream() -> str:
        parts: list[str] = []
        s = await litellm.acompletion(
            model=model,
            messages=MESSAGES,
            api_base=base_url,
            api_key=API_KEY,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for c in s:
            if c.choices and c.choices[0].delta.content:
                parts.append(c.choices[0].delta.content)
        return "".join(parts)

    async def close() -> None:
        closer = getattr(litellm, "close_litellm_async_clients", None)
        if closer is not None:
            await closer()

    return (call_stream if stream else call), close


async def _aiohttp_responses(base_url: str, stream: bool, _: dict[str, Any]) -> tuple[Call, Close]:
    payload: dict[str, Any] = {"model": MODEL, "input": MESSAGES}
    if stream:
        payload["stream"] = True
    return aiohttp_floor(
        base_url, "/responses", stream, payload, read_output_text, read_text_deltas
    )


FACTORIES: dict[str, Callable[[str, bool, dict[str, Any]], Awaitable[tuple[Call, Close]]]] = {
    "aiohttp": _aiohttp,
    "aiohttp-responses": _aiohttp_responses,
    "llmrelay": _llmrelay,
    "llmrelay-reliability": partial(_llmrelay, engine="reliability"),
    "llmrelay-nolayers": partial(_llmrelay, engine="bare"),
    "llmrelay-fallback": _llmrelay_fallback,
    "llmrelay-metrics": partial(_llmrelay, engine="metrics"),
    "openai": _openai,
    "litellm": _litellm,
}


# ---------------------------------------------------------------------------- measuring


async def drive(call: Call, calls: int, concurrency: int) -> None:
    """Make ``calls`` calls with ``concurrency`` of them in flight at any time."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, calls))))


async def measure(
    client: str,
    base_url: str,
    concurrencies: list[int],
    calls: int,
    warmup: int,
    stream: bool,
    extra: dict[str, Any],
    batches: int = 5,
) -> dict[str, Any]:
    try:
        t0 = time.perf_counter()
        call, close = await FACTORIES[client](base_url, stream, extra)
        setup_s = time.perf_counter() - t0
    except Unavailable as exc:
        return {"client": client, "status": "unavailable", "reason": str(exc)}
    expected = STREAM_TEXT if stream else TEXT
    got = await call()
    if got != expected:
        await close()
        raise RuntimeError(f"{client} returned {got[:60]!r}..., expected the upstream's text")
    results = []
    try:
        for conc in concurrencies:
            await drive(call, max(warmup, 2 * conc), conc)
            # Several timed batches: the best one is the least disturbed by other processes.
            n_batches = max(1, min(batches, calls // (2 * conc)))
            size = calls // n_batches
            cpu: list[float] = []
            wall: list[float] = []
            for _ in range(n_batches):
                gc.collect()
                c0, w0 = time.process_time(), time.perf_counter()
                await drive(call, size, conc)
                c1, w1 = time.process_time(), time.perf_counter()
                cpu.append((c1 - c0) / size * 1e6)
                wall.append((w1 - w0) / size * 1e6)
            results.append(
                {"concurrency": conc, "calls": size * n_batches, "cpu_us": cpu, "wall_us": wall}
            )
    finally:
        await close()
    return {
        "client": client,
        "status": "ok",
        "setup_s": setup_s,
        "results": results,
        "network_attempts": NETWORK_ATTEMPTS,
    }


def run_worker(
    client: str,
    base_url: str,
    concurrencies: list[int],
    calls: int,
    warmup: int,
    stream: bool,
    cpu: int | None,
    extra: dict[str, Any] | None = None,
    batches: int = 5,
) -> dict[str, Any]:
    """Measure one client in a fresh subprocess and return its JSON result."""
    import subprocess

    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--client",
        client,
        "--base-url",
        base_url,
        "--concurrency",
        ",".join(map(str, concurrencies)),
        "--calls",
        str(calls),
        "--warmup",
        str(warmup),
        "--extra",
        json.dumps(extra or {}),
        "--batches",
        str(batches),
    ]
    if stream:
        cmd.append("--streaming")
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    env = {**os.environ, **LITELLM_OFFLINE_ENV}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        return {"client": client, "status": "failed", "reason": " | ".join(tail)}
    return json.loads(lines[-1])


def versions() -> dict[str, str]:
    """Installed versions of the libraries compared (without importing them)."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in ("llmrelay", "aiohttp", "orjson", "openai", "httpx", "litellm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="benchmark worker (run by overhead.py)")
    ap.add_argument("--client", required=True, choices=sorted(FACTORIES))
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--concurrency", default="1")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--streaming", action="store_true")
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--extra", default="{}", help="JSON: extra keyword arguments for llmrelay")
    ap.add_argument("--batches", type=int, default=5, help="timed batches per concurrency")
    args = ap.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    raise_fd_limit()
    sys.addaudithook(_guard)
    concs = [int(c) for c in args.concurrency.split(",") if c.strip()]
    try:
        out = asyncio.run(
            measure(
                args.client,
                args.base_url,
                concs,
                args.calls,
                args.warmup,
                args.streaming,
                json.loads(args.extra),
                args.batches,
            )
        )
    except Exception as exc:
        traceback.print_exc()
        out = {"client": args.client, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
