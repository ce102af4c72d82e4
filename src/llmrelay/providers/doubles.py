"""Test doubles as public API: backends that answer without a network.

Pass one anywhere a model name goes, or use the ``test`` provider by name::

    model = TestModel(["first answer", "second answer"])
    llmrelay.chat(model, "hi").text              # "first answer"
    llmrelay.chat("test/echo", "hi").text        # "Echo: hi"

:class:`TestModel` answers scripted replies in order (strings, ``Response`` objects or
exceptions to raise), then echoes. Structured-output requests get a value generated from the
schema. :class:`FunctionModel` calls your function ``fn(messages, params)`` (sync or async) and
returns what it returns (a string or a ``Response``). Both record every request in ``calls``
and stream their answers word by word, so code under test sees the same chunks it would see
from a real provider.
"""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson

from ..transport.base import Timeouts
from ..types import (
    ChatRequest,
    GenerationParams,
    Message,
    Response,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    chunk,
)
from .schema_sample import instance_from_schema
from .table import Deployment

__all__ = ["FunctionModel", "TestModel", "backend_for_test_model"]

Scripted = str | Response | BaseException


def _count(text: str) -> int:
    return max(1, len(re.findall(r"\w+|[^\w\s]", text))) if text else 0


def _prompt_text(messages: list[Message]) -> str:
    return " ".join(m.text() for m in messages)


class _DoubleBase(ABC):
    name: str = "test"

    def __init__(self) -> None:
        self.calls: list[ChatRequest] = []

    @abstractmethod
    async def _answer(self, req: ChatRequest, dep: Deployment) -> Response:
        """The answer to one request."""

    async def complete(self, req: ChatRequest, dep: Deployment, timeouts: Timeouts) -> Response:
        self.calls.append(req)
        return await self._answer(req, dep)

    async def stream(
        self, req: ChatRequest, dep: Deployment, timeouts: Timeouts
    ) -> AsyncIterator[StreamChunk]:
        self.calls.append(req)
        resp = await self._answer(req, dep)
        for piece in re.findall(r"\s*\S+", resp.text):
            yield chunk(piece)
        for i, tc in enumerate(resp.tool_calls):
            yield chunk(tool_calls=[ToolCallDelta(i, tc.id, tc.name, tc.arguments, tc.signature)])
        yield chunk(finish_reason=resp.finish_reason, usage=resp.usage)
        yield chunk(done=True, response=resp, finish_reason=resp.finish_reason, usage=resp.usage)


def _finish(resp: Response, req: ChatRequest, dep: Deployment) -> Response:
    if not resp.provider:
        resp.provider = dep.provider
    if not resp.model:
        resp.model = dep.model
    if resp.finish_reason is None:
        resp.finish_reason = "tool_calls" if resp.tool_calls else "stop"
    if resp.usage.input_tokens == 0 and resp.usage.output_tokens == 0:
        resp.usage = Usage(_count(_prompt_text(req.messages)), _count(resp.text) or 1)
    return resp


def _default_answer(req: ChatRequest) -> Response:
    p = req.params
    rf = p.response_format or {}
    if rf.get("type") == "json_schema":
        schema = rf.get("json_schema", {}).get("schema", {"type": "object"})
        return Response(text=orjson.dumps(instance_from_schema(schema)).decode())
    if p.tools and p.tool_choice not in (None, "auto", "none"):
        tool = next((t for t in p.tools if t.name == p.tool_choice), p.tools[0])
        args = orjson.dumps(instance_from_schema(tool.parameters)).decode()
        return Response(tool_calls=[ToolCall("call_test_1", tool.name, args)])
    last = next((m for m in reversed(req.messages) if m.role == "user"), None)
    return Response(text=f"Echo: {last.text() if last else ''}")


class TestModel(_DoubleBase):
    """Scripted replies, then echo. ``responses`` items: a string, a ``Response``, or an
    exception instance to raise for that call."""

    __test__ = False  # not a pytest test class

    def __init__(self, responses: Iterable[Scripted] = (), *, name: str = "test-model") -> None:
        super().__init__()
        self.name = name
        self._script: deque[Scripted] = deque(responses)

    def push(self, *responses: Scripted) -> TestModel:
        self._script.extend(responses)
        return self

    async def _answer(self, req: ChatRequest, dep: Deployment) -> Response:
        if self._script:
            item = self._script.popleft()
            if isinstance(item, BaseException):
                raise item
            resp = Response(text=item) if isinstance(item, str) else item
        else:
            resp = _default_answer(req)
        return _finish(resp, req, dep)


FunctionFn = Callable[[list[Message], GenerationParams], Any]


class FunctionModel(_DoubleBase):
    """Answers with ``fn(messages, params)`` -- sync or async, returning a string or Response."""

    def __init__(self, fn: FunctionFn, *, name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError("FunctionModel needs a callable fn(messages, params)")
        try:
            inspect.signature(fn).bind([], GenerationParams())
        except TypeError as exc:
            raise TypeError(f"FunctionModel's fn must accept (messages, params): {exc}") from None
        super().__init__()
        self._fn = fn
        self.name = name or str(getattr(fn, "__name__", "function-model"))

    async def _answer(self, req: ChatRequest, dep: Deployment) -> Response:
        out = self._fn(list(req.messages), req.params)
        if inspect.isawaitable(out):
            out = await out
        if isinstance(out, str):
            out = Response(text=out)
        if not isinstance(out, Response):
            raise TypeError(
                f"FunctionModel's fn returned {type(out).__name__}; return a str or a Response"
            )
        return _finish(out, req, dep)


_NAMED: dict[str, _DoubleBase] = {}


def backend_for_test_model(model: str) -> _DoubleBase:
    """The ``test`` provider by name: ``test/echo`` (or any name) echoes, per name."""
    b = _NAMED.get(model)
    if b is None:
        b = _NAMED[model] = TestModel(name=model)
    return b
