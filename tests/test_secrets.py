"""Secrets never leave their origin.

A hostile upstream over real sockets echoes every credential it receives back in its response
headers (``x-request-id``, ``set-cookie``, ``x-api-key``, ...) and bodies (messages, details, even
JSON keys), redirects to another origin, loops, stalls, resets and cuts streams. Every error class
of ``llmrelay.errors`` is produced, and the canary key must not appear in any of them: not in
``str``/``repr``/``vars``, the cause and context chains (group members included), ``headers``,
``body``, pickles, tracebacks, log records, the SQLite request log, the metrics (Prometheus text)
or the CLI's output. The origin a redirect points at must never see a request at all.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pydantic
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

import llmrelay
from llmrelay import errors
from llmrelay.errors import LLMRelayError, RedirectError
from llmrelay.observe.metrics import Metrics
from llmrelay.observe.recorders import CompositeRecorder
from llmrelay.observe.requestlog import RequestLog
from llmrelay.reliability.breaker import BreakerRegistry
from llmrelay.reliability.budgets import BudgetLimit, Budgets
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.state.redis_store import RedisStore
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.transport import HttpRequest, Timeouts
from llmrelay.transport.http import AiohttpTransport, safe_cause, translate_io_error

from .config_isolation import isolated_config
from .conftest import CANARY_KEY, Run

KEY = CANARY_KEY
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
WIRES = {
    "openai": "openai/gpt-4.1-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
    "azure": "azure/gpt-4.1-mini",
}
#: route -> (status, error type, code, Gemini status, extra message text)
ERROR_ROUTES: dict[str, tuple[int, str, str, str, str]] = {
    "e400": (400, "invalid_request_error", "bad", "INVALID_ARGUMENT", "bad request"),
    "e401": (401, "authentication_error", "invalid_api_key", "UNAUTHENTICATED", "Incorrect key"),
    "e402": (402, "billing_error", "payment", "FAILED_PRECONDITION", "pay up"),
    "e403": (403, "permission_error", "denied", "PERMISSION_DENIED", "not allowed"),
    "e404": (404, "not_found_error", "missing", "NOT_FOUND", "no such model"),
    "e409": (409, "conflict", "conflict", "ABORTED", "conflict"),
    "e413": (413, "request_too_large", "big", "INVALID_ARGUMENT", "too big"),
    "e418": (418, "teapot", "teapot", "UNKNOWN", "a teapot"),
    "e422": (422, "invalid_request_error", "bad", "INVALID_ARGUMENT", "unprocessable"),
    "e429": (429, "rate_limit_error", "rate_limit", "RESOURCE_EXHAUSTED", "slow down"),
    "e500": (500, "api_error", "internal", "INTERNAL", "boom"),
    "e503": (503, "api_error", "unavailable", "UNAVAILABLE", "down"),
    "e529": (529, "overloaded_error", "overloaded", "UNAVAILABLE", "Overloaded"),
    "context": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "INVALID_ARGUMENT",
        "prompt is too long: maximum context length exceeded, input token count exceeds",
    ),
    "quota": (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota",
    ),
    "filter": (400, "content_filter", "content_filter", "INVALID_ARGUMENT", "content_filter"),
}
OTHER_ROUTES = (
    "html",
    "notjson",
    "shape",
    "redirect",
    "relredirect",
    "schemeless",
    "loop",
    "reset",
    "cut",
)
STREAM_ROUTES = ("cut", "sseerror", "ssegarbage")


def _wire_of(path: str) -> str:
    if path.endswith("/messages"):
        return "anthropic"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini"
    return "openai"


class Hostile:
    """An upstream on a background thread that echoes the credentials it gets. Routes are the
    first path segment (``<url>/<route>``). A second listener, the *thief*, is another origin
    that records any request reaching it."""

    def __init__(self) -> None:
        self.port = 0
        self.thief_port = 0
        self.stolen: list[dict[str, str]] = []
        self.seen: list[str] = []
        self._release: asyncio.Event | None = None

    def base_url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.port}/{route}"

    @staticmethod
    def _echo(request: web.Request) -> str:
        return " ".join(request.headers.get(h, "") for h in CREDENTIAL_HEADERS).strip()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        if request.transport.get_extra_info("sockname")[1] == self.thief_port:
            self.stolen.append(dict(request.headers))
            return web.json_response({"stolen": True})
        await request.read()
        route = request.path.strip("/").split("/", 1)[0]
        self.seen.append(route)
        secret = self._echo(request)
        echo = {
            "x-echo": secret,
            "x-request-id": secret,
            "request-id": secret,
            "set-cookie": f"session={secret}",
            "x-api-key": secret,
            "www-authenticate": f'Bearer realm="{secret}"',
        }
        if route in ERROR_ROUTES:
            status, etype, code, gstatus, text = ERROR_ROUTES[route]
            err = {
                "message": f"{text}; your key {secret} was refused",
                "type": etype,
                "code": code if _wire_of(request.path) != "gemini" else status,
                "status": gstatus,
                "param": secret,
                secret: [secret],
            }
            return web.json_response({"error": err, secret: secret}, status=status, headers=echo)
        if route == "big":  # over a small max_response_bytes
            return web.json_response({"pad": "x" * 4096, secret: secret}, headers=echo)
        if route == "bigevent":  # one stream event over a small max_event_bytes
            resp = web.StreamResponse(headers={"content-type": "text/event-stream", **echo})
            await resp.prepare(request)
            await resp.write(f'data: {{"pad": "{"x" * 4096}", "k": "{secret}"}}\n\n'.encode())
            await resp.write_eof()
            return resp
        if route == "html":
            body = f"<!doctype html><p>key {secret}</p>"
            return web.Response(text=body, content_type="text/html", headers=echo)
        if route == "notjson":
            return web.Response(text=f"not json {secret}", content_type="application/json")
        if route == "shape":
            return web.json_response({"unexpected": secret, secret: 1}, headers=echo)
        if route == "redirect":
            thief = f"http://{KEY}:{secret}@localhost:{self.thief_port}/steal?key={secret}"
            return web.Response(status=307, headers={**echo, "location": thief})
        if route == "relredirect":
            return web.Response(status=308, headers={**echo, "location": f"/v2?key={secret}"})
        if route == "schemeless":  # another origin, written without a scheme
            where = f"//localhost:{self.thief_port}/v2?key={secret}"
            return web.Response(status=302, headers={**echo, "location": where})
        if route == "loop":
            return web.Response(status=307, headers={**echo, "location": str(request.url)})
        token = secret.split()[-1] if secret else "none"
        if route == "echoname":  # header NAMES carrying the key (values are harmless)
            names = {f"x-echo-{token}": "1", token: "2", f"X-{token.upper()}": "3", "x-ok": "4"}
            return web.json_response({"error": {"message": "boom"}}, status=500, headers=names)
        if route == "casehost":  # the key in a redirect's host, which URLs lower-case
            return web.Response(status=307, headers={"location": f"http://{token}.example.test/"})
        if route == "cutecho":  # Anthropic stream echoing the key in its model, then ending early
            start = {"type": "message_start", "message": {"id": token, "model": token}}
            start["message"]["usage"] = {"input_tokens": 1, "output_tokens": 0}
            delta = {"type": "content_block_delta", "index": 0}
            delta["delta"] = {"type": "text_delta", "text": "hi"}
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            for name, ev in (("message_start", start), ("content_block_delta", delta)):
                await resp.write(f"event: {name}\ndata: ".encode() + orjson.dumps(ev) + b"\n\n")
            await resp.write_eof()
            return resp
        if route == "okecho":  # a successful answer echoing the key in the strings it supplies
            rid = {"x-request-id": f"req-{token}"}
            return web.json_response(self._ok_echo(_wire_of(request.path), token), headers=rid)
        if route == "stall":
            assert self._release is not None
            await self._release.wait()
            return web.json_response({}, headers=echo)
        if route == "reset":
            request.transport.close()
            return web.Response(status=500)
        if route == "cut":
            resp = web.StreamResponse(headers={"content-type": "text/event-stream", **echo})
            resp.content_length = 100_000
            await resp.prepare(request)
            await resp.write(f'data: {{"partial": "{secret}'.encode())
            request.transport.close()
            return resp
        if route in ("sseerror", "ssegarbage"):
            resp = web.StreamResponse(headers={"content-type": "text/event-stream", **echo})
            await resp.prepare(request)
            await resp.write(self._sse(route, _wire_of(request.path), secret))
            await resp.write_eof()
            return resp
        return web.json_response({"error": {"message": f"no route {route}"}}, status=404)

    @staticmethod
    def _ok_echo(wire: str, token: str) -> dict[str, Any]:
        if wire == "anthropic":
            content = [{"type": "text", "text": "hi"}]
            usage = {"input_tokens": 1, "output_tokens": 1}
            return {"id": token, "model": token, "content": content, "stop_reason": token} | {
                "usage": usage
            }
        if wire == "gemini":
            part = {"content": {"parts": [{"text": "hi"}]}, "finishReason": token}
            return {"candidates": [part], "modelVersion": token, "responseId": token}
        choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}}
        usage = {"prompt_tokens": 1, "completion_tokens": 1}
        top = {"id": token, "model": token, "system_fingerprint": token}
        return top | {"choices": [{**choice, "finish_reason": token}], "usage": usage}

    @staticmethod
    def _sse(route: str, wire: str, secret: str) -> bytes:
        if route == "ssegarbage":
            return f"data: not json {secret}\n\n".encode()
        if wire == "anthropic":
            ev = {"type": "error", "error": {"type": "overloaded_error", "message": secret}}
            return b"event: error\ndata: " + orjson.dumps(ev) + b"\n\n"
        ev2 = {"error": {"code": 500, "message": f"failed {secret}", "status": "INTERNAL"}}
        return b"data: " + orjson.dumps(ev2) + b"\n\n"

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[Hostile]:
        server = cls()
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        box: list[web.AppRunner] = []

        async def start() -> None:
            server._release = asyncio.Event()
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", server._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            for _ in range(2):
                await web.TCPSite(runner, "127.0.0.1", 0).start()
            server.port, server.thief_port = (a[1] for a in runner.addresses)
            box.append(runner)

        async def stop() -> None:
            assert server._release is not None
            server._release.set()
            await box[0].cleanup()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(stop())
            loop.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert ready.wait(10)
        try:
            yield server
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    with Hostile.running() as server:
        yield server


# --------------------------------------------------------------------------- the leak check


def _texts(exc: BaseException, seen: set[int]) -> Iterator[tuple[str, str | bytes]]:
    """Every view of ``exc`` and of everything chained to it, labelled."""
    if id(exc) in seen:
        return
    seen.add(id(exc))
    name = type(exc).__name__
    yield f"{name} str", str(exc)
    yield f"{name} repr", repr(exc)
    if hasattr(exc, "__dict__"):
        yield f"{name} vars", repr(vars(exc))
    for attr in ("headers", "body", "request_id", "message", "location", "partial", "raw"):
        yield f"{name}.{attr}", repr(getattr(exc, attr, None))
    yield f"{name} trace", repr([a.to_dict() for a in getattr(exc, "trace", None) or ()])
    try:
        data = pickle.dumps(exc)
    except (TypeError, pickle.PicklingError, AttributeError):
        assert not isinstance(exc, LLMRelayError), f"{name} does not pickle"
    else:
        yield f"{name} pickle", data
        yield f"{name} unpickled", repr(vars(pickle.loads(data)))
    yield f"{name} traceback", "".join(traceback.format_exception(exc))
    chained = [exc.__cause__, exc.__context__, *getattr(exc, "exceptions", ())]
    for nxt in chained:
        if nxt is not None:
            yield from _texts(nxt, seen)


def assert_clean(exc: BaseException) -> None:
    for label, text in _texts(exc, set()):
        found = KEY.encode() in text if isinstance(text, bytes) else KEY in text
        assert not found, f"the key leaks through {label}: {text!r}"[:2000]


def test_the_check_finds_a_key_anywhere_it_hides() -> None:
    """The leak check is not vacuous: a key in any of the places it looks is found."""
    inner = ValueError("inner")
    inner.doc = f"body {KEY}"  # type: ignore[attr-defined]
    outer = llmrelay.ServerError("boom")
    outer.__context__ = inner
    group = llmrelay.AllAttemptsFailedError("all failed", [outer])
    cases: list[BaseException] = [
        llmrelay.ServerError(f"x {KEY}"),
        llmrelay.ServerError("x", headers={"x-echo": KEY}),
        llmrelay.ServerError("x", body={KEY: 1}),
        llmrelay.ServerError("x", request_id=KEY),
        group,
    ]
    for exc in cases:
        with pytest.raises(AssertionError, match="the key leaks"):
            assert_clean(exc)
    # Credential-named headers are redacted by the error itself, whatever built it.
    assert_clean(llmrelay.ServerError("x", headers={"Set-Cookie": KEY, "Authorization": KEY}))


# --------------------------------------------------------------------------- the sweep


class Sweep:
    """Calls through one engine that logs to SQLite and counts metrics; collects the errors."""

    def __init__(self, db: Path, **engine_kw: Any) -> None:
        self.metrics = Metrics()
        self.log = RequestLog(db)
        self.db = db
        self.engine = llmrelay.Engine(
            recorder=CompositeRecorder([self.metrics, self.log]), log_content=True, **engine_kw
        )
        self.client = llmrelay.Client(engine=self.engine)
        self.errors: list[BaseException] = []

    async def call(self, model: Any, prompt: Any = "hello", **kw: Any) -> None:
        try:
            await self.client.achat(model, prompt, **kw)
        except Exception as exc:
            self.errors.append(exc)
        else:
            raise AssertionError(f"{model} {kw.get('base_url')} did not fail")

    async def stream(self, model: str, **kw: Any) -> None:
        try:
            async for _ in self.client.astream(model, "hello", **kw):
                pass
        except Exception as exc:
            self.errors.append(exc)
        else:
            raise AssertionError(f"{model} stream {kw.get('base_url')} did not fail")

    async def close(self) -> None:
        await self.client.aclose()
        assert self.log.flush()
        self.log.close()


class Answer(pydantic.BaseModel):
    city: str
    population: int


@pytest.fixture
async def sweep(tmp_path: Path) -> AsyncIterator[Sweep]:
    s = Sweep(tmp_path / "requests.db", breakers=False, catalog=llmrelay.Catalog())
    yield s
    await s.client.aclose()


async def test_no_error_leaks_the_key(
    hostile: Hostile,
    sweep: Sweep,
    fake: FakeUpstream,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    direct = {"api_key": KEY, "retries": 0}
    # 1. Every error route of every wire API, called and streamed.
    for model in WIRES.values():
        for route in (*ERROR_ROUTES, *OTHER_ROUTES):
            await sweep.call(model, base_url=hostile.base_url(route), **direct)
        for route in (*ERROR_ROUTES, *STREAM_ROUTES, "redirect"):
            await sweep.stream(model, base_url=hostile.base_url(route), **direct)
        # A stall: the call's timeout, then its deadline.
        stall = hostile.base_url("stall")
        await sweep.call(model, base_url=stall, timeout=Timeouts(connect=5, total=0.05), **direct)
        await sweep.call(model, base_url=stall, deadline=0.05, **direct)
    # 2. Nobody listens there.
    await sweep.call(WIRES["openai"], base_url="http://127.0.0.1:1/v1", **direct)
    # A retired model at its provider (refused before anything is sent).
    await sweep.call("groq/llama3-8b-8192", **direct)
    # 3. A fallback chain of failures (fallbacks read their key and URL from the environment).
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    monkeypatch.setenv("GROQ_BASE_URL", hostile.base_url("e503"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", hostile.base_url("redirect"))
    await sweep.call(
        WIRES["openai"],
        base_url=hostile.base_url("e500"),
        fallbacks=["groq/llama-3.1-8b-instant", WIRES["anthropic"]],
        **direct,
    )
    # 4. Structured output that never validates, from an upstream echoing the key in headers.
    echo = {"x-echo": KEY, "set-cookie": f"s={KEY}", "x-api-key": KEY, "x-request-id": KEY}
    fake.push(Reply.ok('{"city": 3}', headers=echo))
    await sweep.call(
        WIRES["openai"],
        base_url=fake.openai_base_url,
        response_model=Answer,
        max_reasks=0,
        **direct,
    )
    # 5. Refused before sending: bad input, a missing or broken key, capabilities, retirement.
    await sweep.call(WIRES["openai"], base_url=fake.openai_base_url, temperature=7, **direct)
    await sweep.call("nosuch/model", api_key=KEY)
    await sweep.call(WIRES["openai"])  # no key set for openai
    await sweep.call(WIRES["openai"], base_url=fake.openai_base_url, api_key=KEY + "\n")
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    await sweep.call(
        "groq/openai/gpt-oss-120b",
        [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}],
        base_url=fake.openai_base_url,
        **direct,
    )
    await sweep.close()

    # 6. A breaker, a budget, a state store and a config file, each with the key at hand.
    db2 = tmp_path / "other.db"
    breaker = Sweep(db2, breakers=BreakerRegistry(failure_threshold=1, recovery_timeout=60))
    for _ in range(2):
        await breaker.call(WIRES["openai"], base_url=hostile.base_url("e500"), **direct)
    await breaker.close()
    budget = Sweep(
        tmp_path / "budget.db",
        budget=Budgets([BudgetLimit(0.000001, period="total")]),
        catalog=llmrelay.Catalog(),
    )
    await budget.call(WIRES["openai"], base_url=fake.openai_base_url, max_tokens=1000, **direct)
    await budget.close()
    produced = [*sweep.errors, *breaker.errors, *budget.errors]
    # Rate limits in a Redis (its password is the key) that is down, failing closed.
    store = RedisStore(f"redis://:{KEY}@127.0.0.1:1/0", retry_interval=60, timeout=0.5)
    limiter = RateLimiter({WIRES["openai"]: {"rpm": 10}}, store=store, on_store_error="closed")
    limited = Sweep(tmp_path / "limited.db", limiter=limiter)
    await limited.call(WIRES["openai"], base_url=fake.openai_base_url, **direct)
    await limited.close()
    await store.aclose()
    produced.extend(limited.errors)
    # Answers over the size limits, the key in them.
    small = Sweep(tmp_path / "small.db", max_response_bytes=1024, max_event_bytes=1024)
    for model in WIRES.values():
        await small.call(model, base_url=hostile.base_url("big"), **direct)
        await small.stream(model, base_url=hostile.base_url("bigevent"), **direct)
    await small.close()
    produced.extend(small.errors)
    # A key pasted into the config file, where it does not belong and where it breaks the TOML.
    model = '[models.x]\nprovider = "openai"\nmodel = "gpt-4.1-mini"\n'
    for text in (f'{model}api_key = "{KEY}"\n', f'{model}api_key = "{KEY}\n'):
        with isolated_config():
            Path("llmrelay.toml").write_text(text)
            try:
                llmrelay.Client().chat("x", "hi")
            except Exception as exc:
                produced.append(exc)

    # Every error class of llmrelay.errors was produced...
    flat: list[BaseException] = []
    for e in produced:
        flat.append(e)
        flat.extend(getattr(e, "exceptions", ()))
        if e.__cause__ is not None:
            flat.append(e.__cause__)
    kinds = {type(e) for e in flat}
    # A stream cut mid-way is one class made per cause (StreamInterruptedError[OverloadedError]):
    # it stands for StreamInterruptedError itself.
    kinds |= {
        errors.StreamInterruptedError
        for k in kinds
        if k.__qualname__.startswith("StreamInterruptedError[")
    }
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert any(isinstance(e, cls) for e in flat), f"no {name} was produced"
    concrete = {getattr(errors, n) for n in errors.__all__} - {
        errors.LLMRelayError,
        errors.APIError,
    }
    assert concrete <= kinds, sorted(c.__name__ for c in concrete - kinds)
    # ...and none of them, nor anything chained to them, holds the key.
    for err in produced:
        assert_clean(err)
    # The redirect target never saw a request, with or without the key.
    assert hostile.stolen == []
    assert any(isinstance(e, RedirectError) and e.location for e in flat)
    # The upstream did get the key (so it had it to echo), and the errors quote its bodies.
    assert "e401" in hostile.seen
    assert any("[REDACTED]" in str(e) for e in flat)
    # Logs at DEBUG, the SQLite request log and the metrics hold no key either.
    fmt = logging.Formatter("%(message)s %(args)s")
    for rec in caplog.records:
        assert KEY not in fmt.format(rec), rec.getMessage()
        assert KEY not in repr(vars(rec))
    for path in tmp_path.rglob("*.db*"):
        assert KEY.encode() not in path.read_bytes(), path
    for m in (sweep.metrics, breaker.metrics, budget.metrics):
        assert KEY not in m.to_prometheus()
        assert KEY not in repr(m.get_metrics())
    assert sweep.metrics.get_metrics()  # calls were counted


async def test_redirects_are_refused_for_every_status_and_origin(hostile: Hostile) -> None:
    client = llmrelay.Client()
    for model in WIRES.values():
        with pytest.raises(RedirectError) as info:
            await client.achat(model, "hi", api_key=KEY, base_url=hostile.base_url("redirect"))
        err = info.value
        assert err.status == 307
        assert err.location == f"http://localhost:{hostile.thief_port}"
        assert f"another origin, http://localhost:{hostile.thief_port}" in str(err)
        assert err.trace[0].error == "RedirectError"
        assert len(err.trace) == 1  # not retried: following it is what is refused
        with pytest.raises(RedirectError) as info:
            await client.achat(model, "hi", api_key=KEY, base_url=hostile.base_url("loop"))
        assert f"same origin http://127.0.0.1:{hostile.port}" in str(info.value)
        assert info.value.location == f"http://127.0.0.1:{hostile.port}"
        with pytest.raises(RedirectError) as info:
            await client.achat(model, "hi", api_key=KEY, base_url=hostile.base_url("relredirect"))
        assert info.value.location == f"http://127.0.0.1:{hostile.port}"  # a relative URL
        assert info.value.status == 308
        with pytest.raises(RedirectError) as info:
            await client.achat(model, "hi", api_key=KEY, base_url=hostile.base_url("schemeless"))
        assert info.value.location == f"http://localhost:{hostile.thief_port}"
        assert "another origin" in str(info.value)
    assert hostile.stolen == []
    await client.aclose()


def test_error_headers_are_redacted_by_name_and_by_value(hostile: Hostile) -> None:
    client = llmrelay.Client()
    with pytest.raises(llmrelay.AuthenticationError) as info:
        client.chat(
            WIRES["anthropic"], "hi", api_key=KEY, base_url=hostile.base_url("e401"), retries=0
        )
    h = info.value.headers
    for name in ("x-echo", "x-request-id", "request-id", "set-cookie", "x-api-key"):
        assert h[name] == "[REDACTED]", name
    assert h["content-type"].startswith("application/json")  # the others are kept
    assert info.value.request_id == "[REDACTED]"
    assert info.value.body["error"]["message"] == "Incorrect key; your key [REDACTED] was refused"
    assert info.value.body["[REDACTED]"] == "[REDACTED]"


def test_header_names_holding_the_key_are_dropped(hostile: Hostile) -> None:
    """An upstream echoing the key as a header *name* (``x-echo-<key>``, the key itself, upper
    case): such headers are dropped from the error, the others kept."""
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=None))
    for model in WIRES.values():
        with pytest.raises(llmrelay.ServerError) as info:
            client.chat(model, "hi", api_key=KEY, base_url=hostile.base_url("echoname"), retries=0)
        assert info.value.headers["x-ok"] == "4"
        assert not [n for n in info.value.headers if KEY in n.lower()]
        assert_clean(info.value)


async def test_a_successful_answer_echoing_the_key_reaches_no_log_or_metric(
    hostile: Hostile, tmp_path: Path
) -> None:
    """``model``, ``id``, the raw finish reason (and the request id) of a 200 answer come from
    the provider: an upstream echoing the key there must not put it into the metrics labels,
    the request log, the response or its trace."""
    db = tmp_path / "requests.db"
    metrics, log = Metrics(), RequestLog(db)
    client = llmrelay.Client(engine=llmrelay.Engine(recorder=CompositeRecorder([metrics, log])))
    for model in WIRES.values():
        url = hostile.base_url("okecho")
        r = await client.achat(model, "hi", api_key=KEY, base_url=url, retries=0)
        assert r.text == "hi"
        assert r.headers["x-request-id"] == f"req-{KEY}"  # the upstream did echo it
        assert KEY not in r.to_json().replace(f"req-{KEY}", "")
        assert KEY not in f"{r.model} {r.id} {r.raw_finish_reason} {r.request_id} {r.trace!r}"
        chunks = [c async for c in client.astream(model, "hi", api_key=KEY, base_url=url)]
        done = chunks[-1].response
        assert done is not None
        assert KEY not in f"{done.model} {done.id} {done.raw_finish_reason}"
    await client.aclose()
    log.flush()
    log.close()
    assert metrics.get_metrics()  # the calls were counted
    assert KEY not in metrics.to_prometheus()
    for path in tmp_path.rglob("*.db*"):
        assert KEY.encode() not in path.read_bytes(), path


async def test_a_stream_cut_after_echoing_the_key_keeps_no_key_in_its_partial(
    hostile: Hostile,
) -> None:
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=None))
    url = hostile.base_url("cutecho")
    with pytest.raises(errors.StreamInterruptedError) as info:
        async for _ in client.astream(WIRES["anthropic"], "hi", api_key=KEY, base_url=url):
            pass
    assert info.value.partial is not None
    assert info.value.partial.text == "hi"
    assert_clean(info.value)
    await client.aclose()


async def test_a_mixed_case_key_in_a_lowercased_redirect_host_is_redacted(
    hostile: Hostile,
) -> None:
    key = "sk-ant-api03-AbCdEf0123456789XyZ"
    with pytest.raises(RedirectError) as info:
        await llmrelay.achat(
            WIRES["anthropic"], "hi", api_key=key, base_url=hostile.base_url("casehost")
        )
    err = info.value
    assert err.location == "http://[REDACTED].example.test:80"
    assert key.lower() not in str(err)
    assert key.lower() not in repr(vars(err))
    assert "[REDACTED].example.test" in str(err)


def test_a_credential_header_of_the_deployment_is_a_secret_too(hostile: Hostile) -> None:
    """Keys sent as extra headers (a gateway's token), not as the API key, are redacted too."""
    token = "gw-" + KEY[3:]
    client = llmrelay.Client()
    with pytest.raises(llmrelay.AuthenticationError) as info:
        client.chat(
            "ollama/llama3",
            "hi",
            base_url=hostile.base_url("e401"),
            headers={"Authorization": f"Bearer {token}"},
            retries=0,
        )
    assert token not in str(info.value)
    assert token not in repr(vars(info.value))
    assert info.value.headers["x-echo"] == "[REDACTED]"


def test_cli_chat_never_prints_the_key(
    cli: Run, hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cli`` checks stdout and stderr for the canary after each run."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for route in ("e401", "e500", "redirect", "html", "shape", "cut", "sseerror"):
        for mode in ("--stream", "--no-stream"):
            code, out, err = cli(
                "chat",
                "-m",
                "gpt-4.1-mini",
                "--base-url",
                hostile.base_url(route),
                "--retries",
                "0",
                "--trace",
                mode,
                "hi",
            )
            assert code != 0, (route, mode, out)
            assert err.startswith("error: "), err
    assert hostile.stolen == []


def test_aiohttp_errors_that_carry_the_request_are_never_chained() -> None:
    """``ClientResponseError`` and kin hold the request headers (``request_info``): the transport
    translates them without chaining them. Errors without request data stay chained."""
    url = f"http://h/v1?key={KEY}"
    info = aiohttp.RequestInfo(URL(url), "POST", CIMultiDictProxy(CIMultiDict(x_api_key=KEY)))
    unsafe: list[BaseException] = [
        aiohttp.TooManyRedirects(info, (), status=307, message=KEY),
        aiohttp.ClientResponseError(info, (), status=400, message=KEY, headers=CIMultiDict(x=KEY)),
        aiohttp.InvalidURL(url),
        ValueError(f"bad header value {KEY}"),
    ]
    req = HttpRequest("POST", url, {"x-api-key": KEY})
    for exc in unsafe:
        assert safe_cause(exc) is None, exc
        assert_clean(translate_io_error(exc, req))
    safe: list[BaseException] = [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("cut"),
        TimeoutError(),
        ConnectionResetError(),
    ]
    for exc in safe:
        assert safe_cause(exc) is exc


async def test_an_unsafe_cause_is_not_even_the_context(fake: FakeUpstream) -> None:
    """A key with a newline makes aiohttp raise ValueError about the header: the typed error
    has neither cause nor context (``from None`` would still keep it as ``__context__``)."""
    t = AiohttpTransport()
    req = HttpRequest("POST", fake.openai_base_url + "/chat/completions", {"x-api-key": KEY + "\n"})
    with pytest.raises(llmrelay.ConfigurationError) as info:
        await t.send(req, Timeouts())
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    with pytest.raises(llmrelay.ConfigurationError) as info:
        async with t.stream(req, Timeouts()):
            pass
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert_clean(info.value)
    await t.aclose()


async def test_a_refused_redirect_moves_a_fallback_chain_on(
    hostile: Hostile, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    monkeypatch.setenv("GROQ_BASE_URL", fake.openai_base_url)
    client = llmrelay.Client()
    r = await client.achat(
        WIRES["openai"],
        "hi",
        api_key=KEY,
        base_url=hostile.base_url("redirect"),
        fallbacks=["groq/llama-3.1-8b-instant"],
    )
    assert r.text == "Echo: hi"
    assert [(a.outcome, a.error) for a in r.trace] == [
        ("error", "RedirectError"),
        ("success", None),
    ]
    assert hostile.stolen == []
    await client.aclose()


async def test_model_detection_refuses_redirects_too(hostile: Hostile) -> None:
    from llmrelay.catalog.detect import ModelCapabilityDetectorFactory as Factory
    from llmrelay.catalog.model_registry import LLMRegistry

    kinds = []
    for route in ("redirect", "e401", "html"):
        with pytest.raises(LLMRelayError) as info:
            await Factory.register_openai_models(
                KEY, base_url=hostile.base_url(route), registry=LLMRegistry(catalog_files=())
            )
        assert_clean(info.value)
        kinds.append(type(info.value))
    assert kinds == [RedirectError, llmrelay.AuthenticationError, llmrelay.InvalidResponseError]
    assert hostile.stolen == []
    assert hostile.seen == ["redirect", "e401", "html"]
