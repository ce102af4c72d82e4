"""The openai_responses adapter against a hostile or future upstream: any JSON in any output
item or stream event gives an answer or a typed llmrelay error, never a builtins exception
(issue 12 review); a repeated ``output_item.added`` does not announce a second call."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay.errors import LLMRelayError
from llmrelay.providers.adapters.openai_responses import OpenAIResponsesAdapter
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import Response

from ..conftest import CANARY_KEY
from .sansio import chat, deployment, feed, response, sse

A = OpenAIResponsesAdapter()
DEP = deployment("openai", "gpt-4.1-mini")

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_KEYS = [
    "type",
    "content",
    "summary",
    "text",
    "refusal",
    "arguments",
    "call_id",
    "id",
    "name",
    "encrypted_content",
    "status",
]
_TYPES = [
    "message",
    "function_call",
    "reasoning",
    "output_text",
    "refusal",
    "summary_text",
    "reasoning_text",
    "web_search_call",
    "a_future_item",
]
#: Output items and their parts: the real keys and type names, any JSON as their values.
_item = st.recursive(
    st.dictionaries(st.sampled_from(_KEYS), _json | st.sampled_from(_TYPES), max_size=5),
    lambda inner: st.dictionaries(
        st.sampled_from(_KEYS),
        inner | st.lists(inner, max_size=3) | st.sampled_from(_TYPES),
        max_size=5,
    ),
    max_leaves=10,
)
_output = st.lists(_item | _json, max_size=4) | _json


def _answer_or_typed(call: Any) -> Any:
    try:
        return call()
    except LLMRelayError as exc:
        return exc


@settings(max_examples=300, deadline=None)
@given(output=_output, status=st.sampled_from(["completed", "incomplete", None]) | _json)
def test_any_output_items_give_an_answer_or_a_typed_error(output: Any, status: Any) -> None:
    body = {"id": "resp_1", "status": status, "output": output, "usage": {"input_tokens": 1}}
    got = _answer_or_typed(lambda: A.parse_response(response(body), chat("hi"), DEP))
    assert isinstance(got, Response | LLMRelayError)


_EVENTS = [
    "response.output_item.added",
    "response.output_item.done",
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.reasoning_summary_text.delta",
    "response.refusal.delta",
    "response.created",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
    "response.a_future_event",
]
_event = st.fixed_dictionaries(
    {"type": st.sampled_from(_EVENTS)},
    optional={
        "item": _item | _json,
        "output_index": st.integers(0, 2) | _json,
        "item_id": st.sampled_from(["fc_1", "rs_1"]) | _json,
        "delta": st.text(max_size=4) | _json,
        "arguments": st.text(max_size=4) | _json,
        "response": st.fixed_dictionaries(
            {}, optional={"status": _json, "output": _output, "error": _json}
        )
        | _json,
        "error": _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(_event, max_size=8))
def test_any_stream_events_in_any_order_give_chunks_or_a_typed_error(events: list[Any]) -> None:
    state = A.stream_state(chat("hi", stream=True), DEP)
    got = _answer_or_typed(lambda: (feed(state, [sse(*events, events=True)]), state.finish()))
    assert isinstance(got, tuple | LLMRelayError)


def test_a_repeated_item_added_announces_one_call() -> None:
    added = {
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "f",
            "arguments": "",
        },
    }
    delta = {
        "type": "response.function_call_arguments.delta",
        "output_index": 0,
        "item_id": "fc_1",
        "delta": "{}",
    }
    state = A.stream_state(chat("hi", stream=True), DEP)
    chunks = feed(state, [sse(added, added, delta, events=True)])
    indexes = {d.index for c in chunks for d in c.tool_calls}
    assert indexes == {0}
    assert "".join(d.arguments or "" for c in chunks for d in c.tool_calls) == "{}"


@pytest.mark.parametrize(
    "item",
    [
        {"type": "message", "content": 5},
        {"type": "reasoning", "summary": 5},
        {"type": "reasoning", "summary": [], "content": 7},
    ],
)
def test_items_whose_lists_are_not_lists(item: dict[str, Any]) -> None:
    body = orjson.dumps({"status": "completed", "output": [item]})
    got = _answer_or_typed(lambda: A.parse_response(response(body), chat("hi"), DEP))
    assert isinstance(got, Response | LLMRelayError)


# ---------------------------------------------------------------------------- same errors


async def _call(client: llmrelay.Client, streamed: bool, api: str) -> None:
    if streamed:
        async for _ in client.astream("openai/gpt-4.1-mini", "hi", retries=0, api=api):
            pass
    else:
        await client.achat("openai/gpt-4.1-mini", "hi", retries=0, api=api)


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("streamed", [False, True])
async def test_a_content_filter_stop_is_the_same_error_on_both_apis(
    fake: FakeUpstream, point_at: Any, api: str, streamed: bool
) -> None:
    """Chat Completions' ``finish_reason: content_filter`` is a ``ContentFilteredError`` (what
    ``content_filter_fallbacks`` acts on); the Responses API's ``status: incomplete`` with
    ``incomplete_details.reason: content_filter`` is the same stop and must be the same error,
    not a successful answer of partial text."""
    point_at(fake)
    client = llmrelay.Client()
    fallback = llmrelay.Client(engine=llmrelay.Engine(content_filter_fallbacks=["openai/gpt-4.1"]))
    try:
        fake.push(Reply.ok("half an ans", finish="content_filter"))
        with pytest.raises(llmrelay.ContentFilteredError) as ei:
            await _call(client, streamed, api)
        assert ei.value.category == "content_filter"
        fake.push(Reply.ok("nope", finish="content_filter"))
        r = await fallback.achat("openai/gpt-4.1-mini", "hi", retries=0, api=api)
        assert r.model == "gpt-4.1"
        assert r.text == "Echo: hi"
    finally:
        await client.aclose()
        await fallback.aclose()


def test_a_stream_of_only_the_final_event_still_yields_its_text_and_calls() -> None:
    """A relay that sends ``response.completed`` with the whole output and no deltas: the chunks
    carry the text and the call (they carried nothing while ``response.text`` had both)."""
    completed = {
        "type": "response.completed",
        "response": {
            "id": "resp_1",
            "status": "completed",
            "output": [
                {"type": "message", "content": [{"type": "output_text", "text": "Hello"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
            ],
        },
    }
    state = A.stream_state(chat("hi", stream=True), DEP)
    chunks = feed(state, [sse(completed, events=True)])
    assert "".join(c.delta for c in chunks) == "Hello"
    deltas = [d for c in chunks for d in c.tool_calls]
    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [(0, "c1", "f", '{"a":1}')]
    assert state.finish().text == "Hello"


async def test_azure_responses_on_a_deployments_url_is_refused_before_sending(
    fake: FakeUpstream,
) -> None:
    """Azure serves the Responses API only at ``/openai/v1/responses``: a legacy
    ``/openai/deployments/<name>`` base URL (fine for Chat Completions) would be a 404 after
    sending; it is an InvalidRequestError naming the URL to use."""
    from llmrelay.providers.resolve import Target

    legacy = Target(
        "azure",
        "my-dep",
        base_url=fake.url + "/openai/deployments/my-dep",
        api_key=llmrelay.Secret("sk-test"),
        options={"api_version": "2024-10-21"},
    )
    client = llmrelay.Client()
    try:
        with pytest.raises(llmrelay.InvalidRequestError, match="openai/v1"):
            await client.achat(legacy, "hi", api="responses")
        assert fake.requests == []
    finally:
        await client.aclose()


# ---------------------------------------------------------------------------- API choice

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def test_a_catalog_row_with_tools_api_responses_decides(fake: FakeUpstream) -> None:
    """The issue's "per catalog row": a row saying ``tools_api: "responses"`` (the catalog's own
    field, which the bundled GPT-6 rows carry) sends its calls with tools through Responses. It
    was ignored: only a hard-coded ``gpt-6`` name prefix switched, so a registered or refreshed
    row of another model (``gpt-7-nova``) kept sending tools to Chat Completions, which rejects
    them for such a model."""
    from llmrelay.catalog.model_registry import LLMRegistry

    reg = LLMRegistry()
    reg.register(
        {
            "provider": "openai",
            "model": "gpt-7-nova",
            "tools_api": "responses",
            "capabilities": {"tools": True},
            "prices": {"input": 1.0, "output": 2.0},
        }
    )
    client = llmrelay.Client(engine=llmrelay.Engine(catalog=llmrelay.Catalog(reg)))
    kw: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    try:
        await client.achat("openai/gpt-7-nova", "no tools", **kw)
        assert fake.requests[-1].path == "/v1/chat/completions"
        fake.push(Reply.tool_call("get_weather", {"city": "Oslo"}))
        r = await client.achat("openai/gpt-7-nova", "weather?", tools=[TOOL], **kw)
        assert fake.requests[-1].path == "/v1/responses"
        assert r.tool_calls[0].name == "get_weather"
        await client.achat("openai/gpt-7-nova", "weather?", tools=[TOOL], api="chat", **kw)
        assert fake.requests[-1].path == "/v1/chat/completions"
    finally:
        await client.aclose()
