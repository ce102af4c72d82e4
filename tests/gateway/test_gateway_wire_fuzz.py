"""Arbitrary JSON into the Responses and Embeddings request parsers: a call or a typed
``InvalidRequestError``, never anything else; and what a Responses answer renders is what the
openai SDK reads back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.errors import InvalidRequestError
from llmrelay.gateway.embeddings_wire import parse_embeddings_request
from llmrelay.gateway.responses_wire import parse_responses_request
from llmrelay.gateway.wire import GatewayCall

from .conftest import ANY_JSON as _json

_part_types = st.sampled_from(
    ["input_text", "input_image", "input_file", "input_audio", "output_text", "refusal", "x"]
)
_item = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["message", "function_call", "function_call_output", "reasoning", "item_reference"]
        )
        | _json,
        "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]) | _json,
        "content": st.text(max_size=5)
        | st.lists(
            st.fixed_dictionaries(
                {"type": _part_types},
                optional={"text": _json, "image_url": _json, "file_data": _json},
            ),
            max_size=2,
        )
        | _json,
        "call_id": st.text(max_size=5) | _json,
        "name": st.text(max_size=5) | _json,
        "arguments": st.text(max_size=5) | _json,
        "output": st.text(max_size=5) | _json,
        "summary": _json,
        "encrypted_content": st.sampled_from(
            ["llmrelay.v1.", "llmrelay.v1.e30=", "llmrelay.v2.e30.x", "llmrelay.v2.", "gAAA"]
        )
        | _json,
        "id": _json,
    },
)
_responses = st.fixed_dictionaries(
    {},
    optional={
        "model": st.just("openai/gpt-4.1-mini") | _json,
        "input": st.text(max_size=5) | st.lists(_item, max_size=4) | _json,
        "instructions": _json,
        "tools": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["function", "web_search"]) | _json},
                optional={"name": _json, "parameters": _json, "strict": _json},
            ),
            max_size=2,
        )
        | _json,
        "tool_choice": _json,
        "text": st.fixed_dictionaries({}, optional={"format": _json}) | _json,
        "reasoning": _json,
        "max_output_tokens": _json,
        "stream": _json,
        "previous_response_id": _json,
    },
)


_embeddings = st.fixed_dictionaries(
    {},
    optional={
        "model": st.just("openai/text-embedding-3-small") | _json,
        "input": st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=3) | _json,
        "encoding_format": st.sampled_from(["float", "base64"]) | _json,
        "dimensions": _json,
        "user": _json,
    },
)


@pytest.mark.parametrize(
    ("parse", "bodies"),
    [(parse_responses_request, _responses), (parse_embeddings_request, _embeddings)],
    ids=["responses", "embeddings"],
)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_body_is_a_call_or_a_typed_error(
    parse: Callable[[Any], GatewayCall], bodies: Any, data: st.DataObject
) -> None:
    body = data.draw(bodies)
    try:
        call = parse(body)
    except InvalidRequestError:
        return  # typed, naming the field; anything else fails the test
    assert call.model == body["model"]
    assert call.messages or all(isinstance(s, str) for s in call.params["inputs"])
