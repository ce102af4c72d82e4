"""The one Response codec: every field of a Response survives a round trip through JSON bytes,
and anything that is not a record of this format is refused with ``InvalidResponseError``."""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay.catalog.costs import Cost
from llmrelay.core import codec
from llmrelay.core.codec import (
    FORMAT,
    NOT_CARRIED,
    dumps,
    loads,
    messages_to_json,
    response_from_dict,
    response_to_dict,
)
from llmrelay.core.trace import Attempt
from llmrelay.errors import InvalidResponseError
from llmrelay.types import (
    FinishReason,
    ImagePart,
    Message,
    ReasoningPart,
    Response,
    TextPart,
    ToolCall,
    Usage,
)

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_count = st.integers(min_value=0, max_value=2**53)
_usage = st.builds(Usage, _count, _count, _count, _count, _count, st.booleans())
_number = st.floats(allow_nan=False, allow_infinity=False)
_amount = st.none() | _number
_cost = st.builds(
    Cost,
    _amount,
    st.booleans(),
    _amount,
    _amount,
    _amount,
    _amount,
    st.none() | st.text(max_size=30),
    st.booleans(),
)
_opt_text = st.none() | st.text(max_size=20)

#: Every field of Response, drawn over its whole range (the ones the codec does not carry too).
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "text": st.text(),
    "tool_calls": st.lists(
        st.builds(
            ToolCall,
            st.text(max_size=10),
            st.text(max_size=10),
            st.text(max_size=40),
            st.none() | st.text(max_size=10),
        ),
        max_size=3,
    ),
    "finish_reason": st.none() | st.sampled_from(get_args(FinishReason)),
    "raw_finish_reason": _opt_text,
    "usage": _usage,
    "provider": st.text(max_size=10),
    "model": st.text(max_size=20),
    "alias": _opt_text,
    "id": _opt_text,
    "request_id": _opt_text,
    "latency_s": _number,
    "time_to_first_token_s": st.none() | _number,
    "object": st.none() | st.integers(),
    "trace": st.lists(st.builds(Attempt, st.text(max_size=8), st.just("success")), max_size=2),
    "total_usage": st.none() | _usage,
    "cost": st.none() | _cost,
    "cache_hit": st.booleans(),
    "adjusted_params": st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3),
    "headers": st.dictionaries(st.text("abc-", max_size=8), st.text(max_size=8), max_size=2),
    "reasoning": st.text(max_size=20),
    "reasoning_parts": st.lists(
        st.builds(
            ReasoningPart,
            st.text(max_size=10),
            _opt_text,
            _opt_text,
            _opt_text,
            _opt_text,
            st.booleans(),
        ),
        max_size=2,
    ),
}
_responses = st.builds(Response, **_FIELDS)


def test_the_strategy_draws_every_response_field() -> None:
    assert set(_FIELDS) == {f.name for f in dataclasses.fields(Response)}


def _carried(resp: Response) -> Response:
    """``resp`` without what a record does not carry."""
    return dataclasses.replace(resp, object=None, trace=[], headers={})


@_SETTINGS
@given(_responses)
def test_every_response_field_survives_a_round_trip(resp: Response) -> None:
    record = response_to_dict(resp)
    assert record["v"] == FORMAT
    back = response_from_dict(loads(dumps(record)), cost_type=Cost)
    expected = _carried(resp)
    assert back == expected
    for f in dataclasses.fields(Response):  # == skips headers; compare every field by name
        if f.name not in NOT_CARRIED:
            assert getattr(back, f.name) == getattr(expected, f.name), f.name
    assert back.usage.estimated == resp.usage.estimated
    assert (back.object, back.trace, dict(back.headers)) == (None, [], {})
    # The checked path (every value in turn) reads the same records the same way.
    assert codec._checked(loads(dumps(record)), Cost) == back


@_SETTINGS
@given(_responses)
def test_without_a_cost_type_the_cost_is_checked_and_left_out(resp: Response) -> None:
    back = response_from_dict(loads(dumps(response_to_dict(resp))))
    assert back.cost is None
    assert back == dataclasses.replace(_carried(resp), cost=None)


def test_the_codec_knows_every_field_of_cost() -> None:
    assert {f.name for f in dataclasses.fields(Cost)} == codec._COST_KEYS


def test_not_carried_is_exactly_what_the_record_leaves_out() -> None:
    record = response_to_dict(Response())
    fields = {f.name for f in dataclasses.fields(Response)}
    assert set(record) - {"v"} == fields - NOT_CARRIED
    assert {"object", "trace", "headers"} == NOT_CARRIED


def test_a_cost_that_is_not_cost_shaped_is_left_out() -> None:
    assert response_to_dict(Response(cost="free"))["cost"] is None


# --------------------------------------------------------------------------- strictness


def _valid() -> dict[str, Any]:
    return response_to_dict(
        Response(
            text="hi",
            tool_calls=[ToolCall("c1", "f", '{"a": 1}')],
            finish_reason="tool_calls",
            raw_finish_reason="tool_calls",
            usage=Usage(3, 4, 1, 0, 2, estimated=True),
            provider="openai",
            model="m",
            id="x",
            request_id="req",
            total_usage=Usage(6, 8),
            cost=Cost(0.5, True, 0.2, 0.3),
            adjusted_params={"seed": "dropped"},
            reasoning="because",
            reasoning_parts=[ReasoningPart("because", signature="sig", provider="anthropic")],
        )
    )


#: For each key of a record, values it must not hold.
_WRONG: dict[str, list[Any]] = {
    "v": [None, 0, 4, "2", "3", True, 2.0],
    "text": [None, 5, b"x", ["hi"]],
    "tool_calls": [
        None,
        "x",
        [["c1", "f", "{}"]],
        [{"id": "c1", "name": "f"}],
        [{"id": "c1", "name": "f", "arguments": "{}", "signature": 5}],
    ],
    "finish_reason": ["??", 1, ["stop"], "STOP"],
    "raw_finish_reason": [5, ["x"]],
    "usage": [None, [], {"input_tokens": 1}, {**_valid()["usage"], "input_tokens": -1}],
    "total_usage": [[], {**_valid()["usage"], "estimated": 1}, {**_valid()["usage"], "x": 0}],
    "provider": [None, 1],
    "model": [None, 1.5],
    "alias": [1, {}],
    "id": [1.5, []],
    "request_id": [[], 0],
    "latency_s": [None, "0", float("nan"), float("inf"), True],
    "time_to_first_token_s": ["1", float("-inf")],
    "cost": [[], {"usd": 1.0}, {**_valid()["cost"], "usd": "1"}, {**_valid()["cost"], "known": 1}],
    "cache_hit": [None, 1, "true"],
    "adjusted_params": [None, [], {"seed": 1}],
    "reasoning": [None, 1, ["x"]],
    "reasoning_parts": [
        None,
        "x",
        [{"text": "t"}],
        [{**_valid()["reasoning_parts"][0], "signature": 1}],
        [{**_valid()["reasoning_parts"][0], "redacted": "no"}],
    ],
}


def test_every_key_is_checked() -> None:
    assert set(_WRONG) == set(_valid())


@pytest.mark.parametrize(("key", "bad"), [(k, v) for k, vs in _WRONG.items() for v in vs])
def test_a_record_with_a_wrong_value_is_refused(key: str, bad: Any) -> None:
    record = _valid()
    record[key] = bad
    with pytest.raises(InvalidResponseError, match="not a stored llmrelay response"):
        response_from_dict(record, cost_type=Cost)


def test_a_missing_or_unknown_key_is_refused_and_named() -> None:
    for key in _valid():
        record = _valid()
        del record[key]
        with pytest.raises(InvalidResponseError):
            response_from_dict(record)
    record = _valid()
    del record["model"]
    with pytest.raises(InvalidResponseError, match="missing \\['model'\\]"):
        response_from_dict(record)
    with pytest.raises(InvalidResponseError, match="unknown \\['thoughts'\\]"):
        response_from_dict({**_valid(), "thoughts": "thought"})
    with pytest.raises(InvalidResponseError, match="must be an object, not list"):
        response_from_dict([])  # type: ignore[arg-type]


@_SETTINGS
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda kids: st.lists(kids) | st.dictionaries(st.text(max_size=12), kids),
        max_leaves=8,
    )
)
def test_arbitrary_json_is_refused_with_the_typed_error(value: Any) -> None:
    with pytest.raises(InvalidResponseError):
        response_from_dict(value)


def test_the_checked_path_names_the_bad_value() -> None:
    record = _valid()
    record["usage"]["output_tokens"] = -2
    with pytest.raises(InvalidResponseError, match=r"usage\.output_tokens must be a count"):
        response_from_dict(record)
    record = _valid()
    record["tool_calls"][0]["arguments"] = {"a": 1}
    with pytest.raises(InvalidResponseError, match=r"tool_calls\[0\].arguments must be a string"):
        response_from_dict(record)


def test_a_whole_number_latency_is_read_as_a_float() -> None:
    record = {**_valid(), "latency_s": 2, "time_to_first_token_s": 1}
    back = response_from_dict(record)
    assert (back.latency_s, back.time_to_first_token_s) == (2.0, 1.0)


# --------------------------------------------------------------------------- dumps, messages


def test_dumps_uses_the_one_default() -> None:
    msg = Message("user", [TextPart("see"), ImagePart(data=b"\x89PNG", media_type="image/png")])
    out = loads(dumps({"m": msg, "b": b"\x00\x01"}))
    assert out["b"] == "AAE="  # bytes as base64
    assert out["m"]["content"][1]["data"] == "iVBORw=="
    assert dumps({"b": 1, "a": 2}, sort_keys=True) == b'{"a":2,"b":1}'
    with pytest.raises(TypeError):
        dumps(object())


def test_messages_to_json_is_the_prompt_column() -> None:
    msgs = [
        Message("system", "be brief").to_dict(),
        Message("user", [ImagePart(data=b"\x89PNG", media_type="image/png")]).to_dict(),
    ]
    out = orjson.loads(messages_to_json(msgs))
    assert out[0] == {"role": "system", "content": "be brief"}  # no empty (None) fields
    image = {"url": None, "data": "iVBORw==", "media_type": "image/png", "detail": None}
    assert out[1]["content"] == [{**image, "type": "image"}]
    assert list(orjson.loads(messages_to_json([{"b": 1, "a": 2}]))[0]) == ["a", "b"]
    odd = object()
    assert orjson.loads(messages_to_json([{"x": odd}])) == [{"x": str(odd)}]


def test_a_version_1_record_is_read_as_having_no_reasoning() -> None:
    """Records written before reasoning and tool-call signatures were carried (format 1: a
    shared cache or a batch journal across an upgrade) are read, with none of either."""
    record = _valid()
    record["v"] = 1
    del record["reasoning"], record["reasoning_parts"]
    for c in record["tool_calls"]:
        del c["signature"]
    back = response_from_dict(record, cost_type=Cost)
    assert (back.text, back.reasoning, back.reasoning_parts) == ("hi", "", [])
    assert back.tool_calls == [ToolCall("c1", "f", '{"a": 1}')]
    record["reasoning"] = 5  # a version 1 record with a bad extra key is still refused
    with pytest.raises(InvalidResponseError, match="reasoning must be a string"):
        response_from_dict(record)


def test_a_version_2_record_is_read_as_having_no_before_call() -> None:
    """Format 2 reasoning parts had no ``before_call`` (which call came right after them)."""
    record = _valid()
    record["v"] = 2
    for p in record["reasoning_parts"]:
        del p["before_call"]
    back = response_from_dict(record, cost_type=Cost)
    assert back.reasoning_parts == [ReasoningPart("because", signature="sig", provider="anthropic")]
    record["reasoning_parts"][0]["before_call"] = 7  # a bad value is still refused
    with pytest.raises(InvalidResponseError, match="before_call"):
        response_from_dict(record)


def test_before_call_round_trips() -> None:
    part = ReasoningPart(id="rs_1", data="enc", provider="openai_responses", before_call="c1")
    resp = response_from_dict(_valid(), cost_type=Cost)
    resp.reasoning_parts = [part]
    back = response_from_dict(loads(dumps(response_to_dict(resp))), cost_type=Cost)
    assert back.reasoning_parts == [part]


def test_reasoning_parts_survive_and_rebuild_the_assistant_message() -> None:
    back = response_from_dict(loads(dumps(_valid())), cost_type=Cost)
    assert back.reasoning_parts == [ReasoningPart("because", signature="sig", provider="anthropic")]
    msg = back.message()
    assert isinstance(msg.content, list)
    assert msg.content[0] == ReasoningPart("because", signature="sig", provider="anthropic")
    assert msg.content[1] == TextPart("hi")
    assert msg.tool_calls == [ToolCall("c1", "f", '{"a": 1}')]
