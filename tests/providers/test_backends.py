"""HttpBackend: every answer carries the response headers and the adjusted parameters,
whichever way it came (a plain answer, an SSE stream, or a stream request answered with JSON)."""

from __future__ import annotations

import orjson

from llmrelay.providers.backends import HttpBackend, get_adapter
from llmrelay.providers.table import make_deployment
from llmrelay.transport.base import HttpRequest, HttpResponse, MockTransport, Timeouts
from llmrelay.types import ChatRequest, Message, Response, build_params

from ..conftest import CANARY_KEY

_ANSWER = orjson.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "mistral-small-latest",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
)
_SSE = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,'
    b'"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"hi"},'
    b'"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def _backend(body: bytes, ctype: str) -> HttpBackend:
    def answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse(
            200, {"Content-Type": ctype, "x-ratelimit-remaining-requests": "7"}, body
        )

    return HttpBackend(get_adapter("openai_chat"), MockTransport(answer))


def _request(stream: bool) -> ChatRequest:
    # Mistral does not take `user`: the adapter drops it and says so.
    return ChatRequest([Message("user", "hello")], build_params({"user": "u1"}), stream)


def _check(resp: Response) -> None:
    assert resp.text == "hi"
    assert resp.headers["x-ratelimit-remaining-requests"] == "7"
    assert "user" in resp.adjusted_params


_DEP = make_deployment(
    "mistral", "mistral-small-latest", api_key=CANARY_KEY, base_url="http://x/v1"
)


async def test_plain_answer_carries_headers_and_adjusted_params() -> None:
    backend = _backend(_ANSWER, "application/json")
    _check(await backend.complete(_request(False), _DEP, Timeouts()))


async def test_streamed_answer_carries_headers_and_adjusted_params() -> None:
    backend = _backend(_SSE, "text/event-stream")
    chunks = [c async for c in backend.stream(_request(True), _DEP, Timeouts())]
    last = chunks[-1]
    assert last.done
    assert last.response is not None
    _check(last.response)


async def test_stream_answered_with_json_carries_headers_and_adjusted_params() -> None:
    backend = _backend(_ANSWER, "Application/JSON; charset=utf-8")
    chunks = [c async for c in backend.stream(_request(True), _DEP, Timeouts())]
    assert [c.delta for c in chunks] == ["hi", ""]
    last = chunks[-1]
    assert last.done
    assert last.response is not None
    _check(last.response)
