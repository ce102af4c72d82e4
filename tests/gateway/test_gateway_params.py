"""A bad parameter is a 400 whose OpenAI error names it in ``param`` (the field as the client
spelled it), whether the wire parser or the engine found it, over real sockets with the
official openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from llmrelay.errors import InvalidRequestError
from llmrelay.types import build_params

from .conftest import CLAUDE, GPT, Running, oai, post

_MSGS: Any = [{"role": "user", "content": "hi"}]
_TOOL: Any = {
    "type": "function",
    "function": {"name": "f", "parameters": {"type": "object"}},
}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 9}, "temperature"),
        ({"top_p": 5}, "top_p"),
        ({"frequency_penalty": -7}, "frequency_penalty"),
        ({"presence_penalty": "a lot"}, "presence_penalty"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"max_completion_tokens": 5, "max_tokens": 5}, "max_completion_tokens"),
        ({"seed": "s"}, "seed"),
        ({"stop": [1]}, "stop"),
        ({"user": 5}, "user"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"prompt_cache_key": ""}, "prompt_cache_key"),
        ({"tools": [{"type": "function", "function": {"name": ""}}]}, "tools"),
        ({"tools": [_TOOL], "tool_choice": "g"}, "tool_choice"),
        ({"tool_choice": 5}, "tool_choice"),
        ({"response_format": {"json": True}}, "response_format"),
        ({"n": 2}, "n"),
        ({"stream_options": 1}, "stream_options"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages"),
        ({"model": ""}, "model"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_bad_chat_parameter_is_named_in_param(
    gw: Running, extra: dict[str, Any], param: str, stream: bool
) -> None:
    body = {"model": GPT, "messages": _MSGS, "stream": stream, **extra}
    status, raw, _ = await post(gw, "/v1/chat/completions", orjson.dumps(body))
    assert status == 400, raw
    err = orjson.loads(raw)["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert gw.fake.requests == []


async def test_the_openai_sdk_sees_the_param(gw: Running) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        await oai(gw).chat.completions.create(model=GPT, messages=_MSGS, temperature=9)
    assert e.value.param == "temperature"
    assert e.value.code == "invalid_request"


async def test_an_adapter_refusal_names_its_param(gw: Running) -> None:
    """Found by the Anthropic adapter while building the request (after the engine chose the
    deployment), not by the parser: still named."""
    with pytest.raises(openai.BadRequestError) as e:
        await oai(gw).chat.completions.create(
            model=CLAUDE, messages=_MSGS, response_format={"type": "yaml"}
        )
    assert e.value.param == "response_format"
    assert gw.fake.requests == []


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 9}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"user": 5}, "user"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"prompt_cache_key": "k" * 100}, "prompt_cache_key"),
        ({"tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ],
)
async def test_a_bad_responses_parameter_is_named_as_the_responses_api_spells_it(
    gw: Running, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        await oai(gw).responses.create(model=GPT, input="x", **extra)
    assert e.value.param == param
    assert gw.fake.requests == []


@pytest.mark.parametrize(
    ("values", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"tools": [{"name": ""}]}, "tools"),
        ({"tool_choice": "x"}, "tool_choice"),
        ({"extra": [1]}, "extra"),
        ({"wibble": 1, "temperature": 1}, "wibble"),
    ],
)
def test_the_engines_errors_name_their_parameter(values: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        build_params(values)
    assert e.value.body == {"param": param}


def test_a_named_error_inside_a_fallback_chain_keeps_its_param() -> None:
    """Every candidate failed, one of them on the caller's parameter: the 400 names it."""
    from llmrelay.errors import AllAttemptsFailedError, ServerError
    from llmrelay.gateway.wire import http_error

    named = InvalidRequestError("bad", body={"param": "response_format"})
    err = http_error(AllAttemptsFailedError("all failed", [ServerError("x"), named]))
    assert (err.status, err.param) == (400, "response_format")
    assert http_error(InvalidRequestError("no field")).param is None


@pytest.mark.parametrize("stream", [False, True])
async def test_an_engine_refusal_of_max_completion_tokens_names_it_as_sent(
    gw: Running, stream: bool
) -> None:
    """The engine knows ``max_completion_tokens`` as ``max_tokens``: a refusal of it (too small
    for Claude's thinking budget, found by the adapter) names the field the client sent."""
    with pytest.raises(openai.BadRequestError) as e:
        await oai(gw).chat.completions.create(
            model=CLAUDE,
            messages=_MSGS,
            reasoning_effort="high",
            max_completion_tokens=100,
            stream=stream,
        )
    assert e.value.param == "max_completion_tokens"
    assert gw.fake.requests == []
    with pytest.raises(openai.BadRequestError) as e:  # sent as max_tokens: named so
        await oai(gw).chat.completions.create(
            model=CLAUDE, messages=_MSGS, reasoning_effort="high", max_tokens=100, stream=stream
        )
    assert e.value.param == "max_tokens"
