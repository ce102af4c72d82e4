"""The lean per-call path (issue 9 item 7) keeps every behaviour of the full one: the plain
message, the cached split of keyword arguments, the open breaker asked before the catalog,
and the secrets found once per deployment."""

from __future__ import annotations

import dataclasses

import pytest

import llmrelay
from llmrelay.core.options import split_kwargs
from llmrelay.errors import (
    CircuitOpenError,
    InvalidRequestError,
    ServerError,
    UnsupportedCapabilityError,
)
from llmrelay.providers.adapters.base import scrub_answer, secrets_of, send_headers
from llmrelay.providers.table import make_deployment
from llmrelay.testing.fake import FakeUpstream
from llmrelay.types import ImagePart, Message, Response, TextPart, Usage, normalize_messages
from llmrelay.types.messages import plain_message
from llmrelay.types.response import StreamChunk, new_response, text_chunk

from ..conftest import CANARY_KEY

MODEL = "openai/gpt-4.1-mini"
#: In the catalog, without vision, not deprecated (Groq speaks the OpenAI wire).
NO_VISION = "groq/openai/gpt-oss-20b"


def test_plain_message_is_the_checked_message_with_every_field_set() -> None:
    for role in ("system", "developer", "user", "assistant"):
        fast, full = plain_message(role, "hi"), Message(role, "hi")  # type: ignore[arg-type]
        assert fast == full
        for f in dataclasses.fields(Message):  # a new field must be set by plain_message too
            assert getattr(fast, f.name) == getattr(full, f.name), f.name


def test_new_response_is_the_dataclass_response_with_every_field_set() -> None:
    args = ("t", [], "stop", "stop", Usage(1, 2), "openai", "m", "a", "id", "rid", "r")
    names = [f.name for f in dataclasses.fields(Response)]
    named = dict(zip(names[:10], args[:10], strict=True)) | {"reasoning": args[10]}
    fast, full = new_response(*args), Response(**named)  # type: ignore[arg-type]
    assert fast == full
    for f in dataclasses.fields(Response):  # a new field must be set by new_response too
        assert getattr(fast, f.name) == getattr(full, f.name), f.name
    # Fresh mutable defaults per answer, as the dataclass's factories give.
    other = new_response(*args)  # type: ignore[arg-type]
    for name in ("trace", "adjusted_params", "reasoning_parts"):
        assert getattr(other, name) is not getattr(fast, name)


def test_text_chunk_is_the_dataclass_chunk_with_every_field_set() -> None:
    fast, full = text_chunk("hi"), StreamChunk("hi")
    assert fast == full
    for f in dataclasses.fields(StreamChunk):  # a new field must be set by text_chunk too
        assert getattr(fast, f.name) == getattr(full, f.name), f.name
    assert text_chunk("hi").tool_calls is not fast.tool_calls  # a fresh list each


def test_the_engine_context_is_the_dataclass_context_with_every_field_set() -> None:
    from llmrelay.core.layers import CallContext
    from llmrelay.core.options import CallOptions
    from llmrelay.core.routing import Plan
    from llmrelay.providers.resolve import Target

    engine = llmrelay.Engine(clock=lambda: 1.0)
    opts = CallOptions(trace_id="t", deadline=1.0)
    fast = engine.context(Plan(Target("openai", "m", alias="a"), [], [], []), opts)
    full = CallContext(
        opts,
        "t",
        1.0,
        started_at=fast.started_at,
        deadline_at=2.0,
        alias="a",
        catalog=engine.catalog,
        providers=engine.providers,
    )
    assert fast.providers is not None
    assert fast == full
    for f in dataclasses.fields(CallContext):  # a new field must be set by context() too
        assert getattr(fast, f.name) == getattr(full, f.name), f.name
    other = engine.context(Plan(Target("openai", "m"), [], [], []), CallOptions())
    assert other.trace is not fast.trace
    assert other.usage is not fast.usage
    assert len(other.trace_id) == 32
    assert int(other.trace_id, 16) >= 0


def test_trace_ids_start_with_the_time_and_end_random(monkeypatch: pytest.MonkeyPatch) -> None:
    # The request log's trace_id index grows at its end when ids are made in time order; the
    # right-most 80 bits stay random (W3C Trace Context Level 2 asks for 56).
    import llmrelay.core.engine as engine_module
    from llmrelay.core.options import CallOptions
    from llmrelay.core.routing import Plan
    from llmrelay.providers.resolve import Target

    engine = llmrelay.Engine(clock=lambda: 1.0)
    plan = Plan(Target("openai", "m"), [], [], [])
    ids = []
    for now in (1_764_900_000.0, 1_764_900_000.0015, 1_764_900_001.25):
        monkeypatch.setattr(engine_module, "_now", lambda now=now: now)
        ids.append(engine.context(plan, CallOptions()).trace_id)
    assert [int(i[:12], 16) for i in ids] == [
        1_764_900_000_000,
        1_764_900_000_001,
        1_764_900_001_250,
    ]
    assert all(len(i) == 32 and i == i.lower() and int(i, 16) for i in ids)
    assert len({i[12:] for i in ids}) == 3  # the random part differs in the same millisecond
    assert ids == sorted(ids)
    given = engine.context(plan, CallOptions(trace_id="4bf92f3577b34da6a3ce929d0e0e4736"))
    assert given.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"  # a caller's id is kept


def test_usage_from_builds_the_dataclass_usage_with_every_field_set() -> None:
    from llmrelay.providers.adapters.openai_answer import usage_from

    body = {
        "prompt_tokens": 30,
        "completion_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 7},
    }
    fast, full = usage_from(body), Usage(30, 20, 10, 5, 7)
    assert fast == full
    for f in dataclasses.fields(Usage):  # a new field must be set by usage_from too
        assert getattr(fast, f.name) == getattr(full, f.name), f.name
    assert usage_from({"prompt_tokens": -1, "completion_tokens": True}) == Usage()


def test_a_price_without_cached_or_reasoning_tokens_is_the_dataclass_cost() -> None:
    from llmrelay.catalog.costs import Cost, Rates

    rates = Rates(2e-6, 8e-6, 5e-7, None, None, "m")
    fast = rates.cost(Usage(1000, 500, estimated=True))
    full = Cost(0.006, True, 0.002, 0.004, 0.0, 0.0, None, True)
    assert fast == full
    for f in dataclasses.fields(Cost):  # a new field must be set there too
        assert getattr(fast, f.name) == getattr(full, f.name), f.name


def test_plain_dict_messages_take_the_fast_path_and_odd_ones_the_checked_one() -> None:
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert normalize_messages(msgs) == [Message("system", "s"), Message("user", "u")]
    with pytest.raises(InvalidRequestError, match="needs the `tool_call_id`"):
        normalize_messages([{"role": "tool", "content": "x"}])
    with pytest.raises(InvalidRequestError, match="is not one of"):
        normalize_messages([{"role": "robot", "content": "x"}])
    with pytest.raises(InvalidRequestError):
        normalize_messages([{"role": ["user"], "content": "x"}])  # unhashable role


def test_split_kwargs_reuses_the_split_of_string_arguments_only() -> None:
    kw = {"api_key": CANARY_KEY, "base_url": "http://h.test/v1"}
    first = split_kwargs(dict(kw))
    assert split_kwargs(dict(kw)) is first  # the same (unchanged) options object
    assert first[1].api_key == CANARY_KEY
    # Other values are split (and checked) on every call.
    a = split_kwargs({"temperature": 0.5})
    assert split_kwargs({"temperature": 0.5}) is not a
    with pytest.raises(InvalidRequestError, match="temperature"):
        split_kwargs({"temperature": True})
    with pytest.raises(InvalidRequestError, match="unknown argument"):
        split_kwargs({"nope": "x"})
    with pytest.raises(InvalidRequestError, match="unknown argument"):
        split_kwargs({"nope": "x"})  # a failed split is never cached


async def _opened(client: llmrelay.Client, model: str, kw: dict[str, object]) -> None:
    assert client.engine.breakers is not None
    dep = client.engine.preflight(model, split_kwargs(kw)[1])
    assert dep is not None
    breaker = client.engine.breakers.get(dep.key)
    while breaker.state != "open":
        breaker.on_failure(breaker.acquire(), ServerError("down", status=500))


async def test_an_open_breaker_answers_before_the_catalog_checks(fake: FakeUpstream) -> None:
    """An image to a model without vision while its breaker is open: the breaker answers (the
    request is not checked, nor sent); once the breaker admits again the check applies."""
    clock = [0.0]
    engine = llmrelay.Engine(
        breakers=llmrelay.BreakerRegistry(
            failure_threshold=1, recovery_timeout=30.0, clock=lambda: clock[0]
        ),
        catalog=llmrelay.Catalog(),
    )
    client = llmrelay.Client(engine=engine)
    kw: dict[str, object] = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    image = [Message("user", [TextPart("what is it?"), ImagePart(url="https://x.test/a.png")])]
    try:
        await _opened(client, NO_VISION, kw)
        with pytest.raises(CircuitOpenError) as info:
            await client.achat(NO_VISION, image, **kw)
        assert [(a.outcome, a.error) for a in info.value.trace] == [("skipped", "CircuitOpenError")]
        clock[0] = 31.0  # half-open: the probe's request is checked like any other
        with pytest.raises(UnsupportedCapabilityError):
            await client.achat(NO_VISION, image, **kw)
        assert fake.requests == []
    finally:
        await client.aclose()


def test_secrets_and_auth_headers_are_found_once_per_deployment() -> None:
    dep = make_deployment(
        "openai", "gpt-4.1-mini", api_key=CANARY_KEY, headers={"x-api-key": "hdr-secret-123"}
    )
    assert secrets_of(dep) is secrets_of(dep)
    assert CANARY_KEY in secrets_of(dep)
    assert "hdr-secret-123" in secrets_of(dep)
    h1 = send_headers({"accept": "application/json"}, dep, "bearer")
    h2 = send_headers({"accept": "application/json"}, dep, "bearer")
    assert (
        h1
        == h2
        == {
            "accept": "application/json",
            "authorization": "Bearer " + CANARY_KEY,
            "x-api-key": "hdr-secret-123",
        }
    )
    assert h1 is not h2  # each request gets its own dict
    resp = Response(model="m-" + CANARY_KEY, id="id-hdr-secret-123", raw_finish_reason="stop")
    scrub_answer(resp, dep)
    assert CANARY_KEY not in resp.model
    assert "hdr-secret-123" not in (resp.id or "")
    clean = Response(model="gpt-4.1-mini-2025", id="chatcmpl-1", raw_finish_reason="stop")
    scrub_answer(clean, dep)
    assert (clean.model, clean.id) == ("gpt-4.1-mini-2025", "chatcmpl-1")


def test_the_shared_no_params_extra_cannot_be_written_into() -> None:
    # build_params({}) is NO_PARAMS, one object for every call that sets nothing: a caller
    # writing into its extra added the field to every later call in the process.
    from llmrelay.types import NO_PARAMS, build_params

    p = build_params({})
    assert p is NO_PARAMS
    for write in (
        lambda: p.extra.__setitem__("x", 1),  # type: ignore[index]
        lambda: p.extra.update(x=1),  # type: ignore[attr-defined]
        lambda: p.extra.setdefault("x", 1),  # type: ignore[attr-defined]
    ):
        with pytest.raises(TypeError, match="read-only"):
            write()
    assert dict(build_params({}).extra) == {}
    own = build_params({"extra": {"x": 1}})
    own.extra["y"] = 2  # type: ignore[index]  # a caller's own params stay theirs
    assert dict(NO_PARAMS.extra) == {}
