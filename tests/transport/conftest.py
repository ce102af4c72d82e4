"""The transports the conformance suite checks: each test runs once per entry of TRANSPORTS.

An entry is ``(id, factory)``; the factory takes the ``AiohttpTransport`` constructor keywords
(``max_connections``, ``max_connections_per_host``, ``keepalive_timeout``). Adding a transport is
one line here. A promise a transport is known to break is marked on its test with
``@xfail_for(<id>=reason)``, or for one case of a parametrized table with
``xfail_case(request, case, {(<id>, case): reason})``: strict either way, so the mark must go
once the transport is fixed.

The helpers below are shared by the ``test_conformance_*`` modules: ``req`` builds a request
carrying the secrets no error may show, ``answer`` reads it by ``send`` or as a stream, and
``raises`` checks the error type and that no exception of its chain shows a secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import pytest
from _pytest.mark.structures import ParameterSet

from llmrelay.transport import HttpRequest, HttpResponse, Timeouts, Transport
from llmrelay.transport.http import AiohttpTransport
from llmrelay.transport.native import NativeTransport

from .raw_upstream import SECRET_KEY, SECRET_QUERY, WAIT

TransportFactory = Callable[..., Transport]

TRANSPORTS: list[tuple[str, TransportFactory]] = [
    ("aiohttp", AiohttpTransport),
    ("native", NativeTransport),
]


def transport_params(xfails: dict[str, str] | None = None) -> list[ParameterSet]:
    """One ``pytest.param`` per transport; those named in ``xfails`` marked strict xfail."""
    xfails = xfails or {}
    unknown = set(xfails) - {name for name, _ in TRANSPORTS}
    assert not unknown, f"xfail_for names no transport: {sorted(unknown)}"
    return [
        pytest.param(
            (name, factory),
            id=name,
            marks=[pytest.mark.xfail(strict=True, reason=xfails[name])] if name in xfails else [],
        )
        for name, factory in TRANSPORTS
    ]


def xfail_for(**reasons: str) -> pytest.MarkDecorator:
    """Run the test over every transport, expecting the named ones to fail (with the reason)."""
    return pytest.mark.parametrize("transport_factory", transport_params(reasons), indirect=True)


def xfail_case(
    request: pytest.FixtureRequest, case: str, known: dict[tuple[str, str], str]
) -> None:
    """Expect this test to fail (strict) when ``(transport id, case)`` is in ``known``: for a
    case of a parametrized table that only some transport gets wrong."""
    name, _ = request.node.callspec.params["transport_factory"]
    reason = known.get((name, case))
    if reason is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


@pytest.fixture(params=transport_params())
def transport_factory(request: pytest.FixtureRequest) -> TransportFactory:
    _, factory = request.param
    return cast(TransportFactory, factory)


@contextlib.asynccontextmanager
async def opened(factory: TransportFactory, **kw: Any) -> AsyncIterator[Transport]:
    """A transport from ``factory(**kw)``, closed (``aclose``) at the end, pass or fail."""
    t = factory(**kw)
    try:
        yield t
    finally:
        await t.aclose()


#: Generous limits on every request that is not about timeouts: a transport that hangs fails
#: its test with APITimeoutError instead of hanging the suite.
SAFETY = Timeouts(connect=WAIT, read=WAIT, total=WAIT)
AUTH = {"authorization": f"Bearer {SECRET_KEY}"}


def req(url: str, method: str = "GET", body: bytes | None = None, **kw: Any) -> HttpRequest:
    """A request carrying the secret key (header) and secret query (``url`` has it)."""
    assert SECRET_QUERY in url
    headers = dict(AUTH)
    if body is not None:
        headers["content-type"] = "application/json"
    return HttpRequest(method, url, headers, body, **kw)


#: How a test reads an answer: ``send``, or ``stream`` read by ``aiter_bytes`` or by ``aread``.
MODES = ["send", "aiter", "aread"]


async def answer(
    t: Transport, req: HttpRequest, mode: str, timeouts: Timeouts = SAFETY
) -> HttpResponse:
    """The answer to ``req`` read the ``mode`` way, as an HttpResponse."""
    if mode == "send":
        return await t.send(req, timeouts)
    async with t.stream(req, timeouts) as s:
        if mode == "aread":
            body = await s.aread()
        else:
            assert mode == "aiter", mode
            body = b"".join([piece async for piece in s.aiter_bytes()])
        return HttpResponse(s.status, s.headers, body)


E = TypeVar("E", bound=BaseException)


def assert_no_secrets(err: BaseException) -> None:
    """No exception of ``err``'s chain (causes, contexts, group members) shows a secret."""
    seen: set[int] = set()
    todo: list[BaseException] = [err]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        for text in (str(e), repr(e), repr(e.args)):
            for secret in (SECRET_KEY, SECRET_KEY[-12:], SECRET_QUERY):
                assert secret not in text, f"{type(e).__name__} shows a secret: {text!r}"
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]
        if isinstance(e, BaseExceptionGroup):
            todo += e.exceptions


async def raises(kind: type[E], aw: Awaitable[object]) -> E:
    """Await ``aw``: it must raise ``kind`` (anything else fails the test), showing no secret."""
    with pytest.raises(kind) as info:
        await aw
    assert_no_secrets(info.value)
    return info.value
