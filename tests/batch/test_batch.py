"""The batch helper (``llmrelay.amap``/``llmrelay.client.map``, ``Client.amap``/``map``) and
``llmrelay batch``: order, the concurrency limit, per-item failures, the journal (resume, torn
lines, locking), and the CLI end to end -- in-process and in real processes killed halfway."""

from __future__ import annotations

import asyncio
import io
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay import client as client_module
from llmrelay.batch.runner import BatchResult, Journal, parse_item, run_batch
from llmrelay.catalog.costs import Cost
from llmrelay.cli.batch import EXIT_ITEMS_FAILED, EXIT_MALFORMED_INPUT, Progress
from llmrelay.cli.main import main
from llmrelay.client import Client, amap
from llmrelay.core.codec import response_to_dict
from llmrelay.core.engine import Engine
from llmrelay.core.options import CallOptions
from llmrelay.errors import (
    AllAttemptsFailedError,
    BadRequestError,
    InvalidRequestError,
    MissingAPIKeyError,
    RateLimitedError,
    ServerError,
    UnknownModelError,
)
from llmrelay.providers import doubles as test_models
from llmrelay.providers.doubles import FunctionModel, TestModel
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import GenerationParams, Message, Usage

from ..conftest import CANARY_KEY, Run

Fn = Callable[[list[Message], GenerationParams], Any]


def answering(calls: list[str] | None = None, name: str = "answers") -> FunctionModel:
    """A model answering ``A:<prompt>`` and recording each prompt it was asked."""

    async def fn(messages: list[Message], params: GenerationParams) -> str:
        text = messages[-1].text()
        if calls is not None:
            calls.append(text)
        await asyncio.sleep(0)
        return f"A:{text}"

    return FunctionModel(fn, name=name)


def records(path: pathlib.Path) -> list[dict[str, Any]]:
    """The item records of a journal (every line after the header must parse)."""
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a complete line
    head, *rest = (orjson.loads(line) for line in lines[:-1])
    assert head["llmrelay_batch_journal"] == 2
    return rest


@pytest.fixture
async def client() -> Any:
    c = Client()
    yield c
    await c.aclose()


# --------------------------------------------------------------------------- order and limits


async def test_results_keep_input_order(client: Client) -> None:
    n = 12
    finished: list[int] = []

    async def fn(messages: list[Message], params: GenerationParams) -> str:
        i = int(messages[-1].text())
        for _ in range(n - i):  # later items finish first
            await asyncio.sleep(0)
        return f"answer {i}"

    results = await amap(
        FunctionModel(fn),
        [str(i) for i in range(n)],
        client=client,
        concurrency=n,
        on_result=lambda r: finished.append(r.index),
    )
    assert [r.text for r in results] == [f"answer {i}" for i in range(n)]
    assert [(r.index, r.id, r.ok, r.resumed) for r in results] == [
        (i, i, True, False) for i in range(n)
    ]
    assert finished != sorted(finished)  # they did finish out of order
    assert sorted(finished) == list(range(n))


async def test_concurrency_limit_is_never_exceeded(client: Client) -> None:
    in_flight = 0
    peak = 0

    async def fn(messages: list[Message], params: GenerationParams) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(1 + int(messages[-1].text()) % 4):
            await asyncio.sleep(0)
        in_flight -= 1
        return "ok"

    results = await amap(
        FunctionModel(fn), [str(i) for i in range(40)], client=client, concurrency=3
    )
    assert len(results) == 40
    assert all(r.ok for r in results)
    assert peak == 3
    assert in_flight == 0


async def test_client_methods_and_item_kinds(client: Client) -> None:
    model = TestModel()
    results = await client.amap(
        model,
        [
            "plain prompt",
            [{"role": "system", "content": "S"}, {"role": "user", "content": "as messages"}],
            {"id": "d1", "prompt": "dict prompt", "temperature": 0.25, "system": "Be brief."},
            {"messages": [Message.user("dict messages")], "max_tokens": 7},
            Message.user("a Message"),
        ],
        temperature=0.9,
    )
    assert [r.id for r in results] == [0, 1, "d1", 3, 4]
    assert [r.text for r in results] == [
        "Echo: plain prompt",
        "Echo: as messages",
        "Echo: dict prompt",
        "Echo: dict messages",
        "Echo: a Message",
    ]
    by_text = {req.messages[-1].text(): req for req in model.calls}
    assert by_text["plain prompt"].params.temperature == 0.9
    assert by_text["dict prompt"].params.temperature == 0.25  # the item's own value wins
    assert [m.role for m in by_text["dict prompt"].messages] == ["system", "user"]
    assert by_text["dict messages"].params.max_tokens == 7
    assert by_text["dict messages"].params.temperature == 0.9


def test_sync_map(fake_thread: FakeUpstream) -> None:
    c = Client()
    results = c.map(
        "openai/gpt-4.1-mini",
        ["one", "two", "three"],
        api_key=CANARY_KEY,
        base_url=fake_thread.openai_base_url,
        concurrency=2,
    )
    assert [r.text for r in results] == ["Echo: one", "Echo: two", "Echo: three"]
    assert sorted(r.body["messages"][-1]["content"] for r in fake_thread.requests) == [
        "one",
        "three",
        "two",
    ]


async def test_against_the_fake_upstream(fake: FakeUpstream, client: Client) -> None:
    prompts = [f"question {i}" for i in range(10)]
    results = await amap(
        "openai/gpt-4.1-mini",
        prompts,
        client=client,
        concurrency=4,
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
        max_tokens=20,
    )
    assert [r.text for r in results] == [f"Echo: {p}" for p in prompts]
    assert all(r.usage is not None and r.usage.output_tokens > 0 for r in results)
    assert len(fake.requests) == 10
    assert {r.body["max_completion_tokens"] for r in fake.requests} == {20}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"journal": 5}, "journal must be a file path"),
        ({"journal": ["run.journal"]}, "journal must be a file path"),
        ({"on_result": 5}, "on_result must be a function"),
        ({"on_result": "print"}, "on_result must be a function"),
        ({"temperature": 10**400}, "temperature"),
        ({"timeout": 10**400}, "timeout"),
        ({"deadline": 10**400}, "deadline"),
    ],
)
async def test_bad_batch_arguments_are_refused_before_anything_is_sent(
    fake: FakeUpstream, client: Client, kwargs: dict[str, Any], match: str
) -> None:
    """Over a real socket: a wrong ``journal``, ``on_result`` or a number too large for a float
    is a typed error naming the argument, and the upstream sees no request."""
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    with pytest.raises(InvalidRequestError, match=match):
        await amap("openai/gpt-4.1-mini", ["a", "b"], client=client, **kw, **kwargs)
    assert fake.requests == []


# --------------------------------------------------------------------------- failures


async def test_a_failed_item_does_not_stop_the_batch(client: Client) -> None:
    async def fn(messages: list[Message], params: GenerationParams) -> str:
        text = messages[-1].text()
        if text == "bad request":
            raise BadRequestError("no good", status=400, provider="test")
        if text == "type error":
            raise TypeError("broken tool")
        return f"A:{text}"

    prompts = ["a", "bad request", "b", "type error", "c"]
    results = await amap(FunctionModel(fn), prompts, client=client, retries=0)
    assert [r.ok for r in results] == [True, False, True, False, True]
    assert [r.text for r in results] == ["A:a", None, "A:b", None, "A:c"]
    assert isinstance(results[1].error, BadRequestError)
    assert results[1].error.status == 400
    assert isinstance(results[3].error, TypeError)
    with pytest.raises(BadRequestError):
        results[1].unwrap()
    assert results[0].unwrap().text == "A:a"
    assert results[1].to_dict() == {
        "id": 1,
        "error": {"type": "BadRequestError", "message": "[test] no good (status 400)"},
        "usage": None,
        "cost": None,
    }


async def test_fail_fast_raises_the_first_failure(client: Client) -> None:
    calls: list[str] = []

    async def fn(messages: list[Message], params: GenerationParams) -> str:
        text = messages[-1].text()
        calls.append(text)
        if text == "p2":
            raise BadRequestError("rejected", status=400)
        return text

    with pytest.raises(BadRequestError) as info:
        await amap(
            FunctionModel(fn),
            [f"p{i}" for i in range(6)],
            client=client,
            concurrency=1,
            fail_fast=True,
        )
    assert calls == ["p0", "p1", "p2"]
    assert any("fail_fast" in note and "items[2]" in note for note in info.value.__notes__)


async def test_on_result_may_be_async_and_its_errors_stop_the_batch(client: Client) -> None:
    seen: list[Any] = []

    async def collect(r: BatchResult) -> None:
        await asyncio.sleep(0)
        seen.append(r.id)

    await amap(answering(), ["x", "y"], client=client, on_result=collect)
    assert sorted(seen) == [0, 1]

    def explode(r: BatchResult) -> None:
        raise RuntimeError("callback bug")

    with pytest.raises(RuntimeError, match="callback bug"):
        await amap(answering(), ["x", "y", "z"], client=client, on_result=explode)


# --------------------------------------------------------------------------- bad input


async def test_duplicate_ids_are_rejected_before_anything_runs(client: Client) -> None:
    calls: list[str] = []
    model = answering(calls)
    cases = [
        (
            [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}, {"id": "a", "prompt": "z"}],
            "duplicate item id 'a': items[0] and items[2]",
        ),
        ([{"id": 1, "prompt": "x"}, {"id": "1", "prompt": "y"}], "duplicate item id '1'"),
        (["x", {"id": 0, "prompt": "y"}], "duplicate item id 0: items[0] and items[1]"),
    ]
    for items, message in cases:
        with pytest.raises(InvalidRequestError) as info:
            await amap(model, items, client=client)
        assert message in str(info.value)
    assert calls == []


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["ok", {"text": "hi"}], "items[1]: an item dict needs `prompt`"),
        ([{"role": "user", "content": "hi"}], "wrap a single message as {'messages': [...]}"),
        (["ok", "  "], "items[1]: the prompt is empty"),
        ([{"prompt": "x", "messages": []}], "both `prompt` and `messages`"),
        ([{"messages": []}], "`messages` is an empty list"),
        ([{"prompt": ["x"]}], "`prompt` must be a string"),
        ([{"id": 1.5, "prompt": "x"}], "`id` must be a string or an integer"),
        ([{"id": True, "prompt": "x"}], "`id` must be a string or an integer"),
        ([{"prompt": "x", "temprature": 1}], "unknown item field(s) temprature"),
        ([42], "an item must be a prompt string, a list of messages or a dict, not int"),
        ([["not a message"]], "items[0]: the message list: messages[0] is a str"),
        ([{"prompt": "x", "temperature": 7}], "items[0]: temperature=7 is out of range"),
    ],
)
async def test_malformed_items_are_typed_errors(
    client: Client, items: list[Any], message: str
) -> None:
    calls: list[str] = []
    with pytest.raises(InvalidRequestError) as info:
        await amap(answering(calls), items, client=client)
    assert message in str(info.value)
    assert calls == []


async def test_bad_batch_arguments(client: Client, tmp_path: pathlib.Path) -> None:
    for concurrency in (0, -1, 1.5, True):
        with pytest.raises(InvalidRequestError, match="concurrency must be a positive integer"):
            await amap(answering(), ["x"], client=client, concurrency=concurrency)
    with pytest.raises(InvalidRequestError, match="not a single str"):
        await amap(answering(), "just one prompt", client=client)
    with pytest.raises(InvalidRequestError, match="unknown argument 'temprature'"):
        await amap(answering(), ["x"], client=client, temprature=0.2)
    with pytest.raises(UnknownModelError):
        await amap("no-such-model", ["x"], client=client, journal=tmp_path / "j")
    with pytest.raises(MissingAPIKeyError):  # before any call: nothing is journaled
        await amap("openai/gpt-4.1-mini", ["x"], client=client, journal=tmp_path / "j")
    assert records(tmp_path / "j") == []


async def test_run_batch_on_a_bare_engine() -> None:
    """The batch runs on an Engine (no Client): batch-wide arguments split once, an item's own
    arguments override them, and a failing item does not stop the others."""
    seen: list[tuple[str, float | None, int | None]] = []

    async def fn(messages: list[Message], params: GenerationParams) -> str:
        text = messages[-1].text()
        seen.append((text, params.temperature, params.seed))
        if text == "boom":
            raise ValueError("no")
        return f"A:{text}"

    engine = Engine()
    try:
        results = await run_batch(
            engine,
            FunctionModel(fn),
            ["a", {"prompt": "b", "temperature": 0.9}, "boom"],
            temperature=0.1,
            seed=7,
            retries=0,
        )
    finally:
        await engine.transport.aclose()
    assert [r.text for r in results[:2]] == ["A:a", "A:b"]
    assert not results[2].ok
    assert sorted(seen) == [("a", 0.1, 7), ("b", 0.9, 7), ("boom", 0.1, 7)]


def test_engine_preflight_resolves_the_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    engine = Engine()
    with pytest.raises(MissingAPIKeyError):
        engine.preflight("openai/gpt-4.1-mini")
    with pytest.raises(UnknownModelError):
        engine.preflight("no-such-model")
    # With a fallback the unresolvable primary is not an error yet: a fallback may answer.
    opts = CallOptions(fallbacks=["anthropic/claude-3-5-haiku-latest"])
    assert engine.preflight("openai/gpt-4.1-mini", opts) is None
    assert engine.plan("openai/gpt-4.1-mini", opts).fallbacks
    dep = engine.preflight("openai/gpt-4.1-mini", CallOptions(api_key=CANARY_KEY))
    assert dep is not None
    assert dep.provider == "openai"
    assert CANARY_KEY not in repr(dep)


def test_parse_item_default_ids_and_sources() -> None:
    item = parse_item({"prompt": "x", "seed": 3}, 4, default_id=9, source="in.jsonl:9")
    assert (item.index, item.id, item.messages, item.kwargs) == (4, 9, "x", {"seed": 3})
    assert item.where == "in.jsonl:9"
    assert parse_item("y", 2).id == 2
    assert parse_item({"id": "k", "prompt": "x"}, 0, default_id=5).id == "k"


# --------------------------------------------------------------------------- rate limits


class RecordingLimiter:
    """A limiter layer that admits everything and records what callers asked for."""

    def __init__(self) -> None:
        self.waits: list[bool | None] = []

    async def acquire(self, dep: Any, req: Any, ctx: Any) -> Any:
        self.waits.append(ctx.opts.wait_for_rate_limit)
        return None

    async def release(self, permit: Any, resp: Any, headers: Any, exc: Any) -> None:
        return None


async def test_calls_wait_for_the_rate_limiter_by_default() -> None:
    limiter = RecordingLimiter()
    c = Client(engine=Engine(limiter=limiter))
    try:
        await amap(answering(), ["a", "b"], client=c)
        assert limiter.waits == [True, True]
        await amap(answering(), ["c"], client=c, wait_for_rate_limit=False)
        assert limiter.waits[-1] is False
    finally:
        await c.aclose()


# --------------------------------------------------------------------------- the journal


async def test_journal_records_every_finished_item(client: Client, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.journal"
    results = await amap(
        answering(), [{"id": "a", "prompt": "x"}, "y"], client=client, journal=path
    )
    recs = records(path)
    assert sorted(str(r["id"]) for r in recs) == ["1", "a"]
    by_id = {r["id"]: r for r in recs}
    assert by_id["a"]["ok"] is True
    assert by_id["a"]["response"] == response_to_dict(results[0].response)  # type: ignore[arg-type]
    assert by_id["a"]["response"]["text"] == "A:x"
    assert isinstance(by_id[1]["h"], str)


#: A journal written by llmrelay before the codec (version 1: the response's fields flat in
#: the record), exactly as it wrote it for ``amap(FunctionModel(fn, name="m"), ["x", {"id": "k",
#: "prompt": "y"}, "boom"], retries=0)`` where ``fn`` failed on "boom".
_V1_JOURNAL = (
    b'{"llmrelay_batch_journal":1,"created":1796292510.451}\n'
    b'{"id":0,"h":"b92cb5d12429ed667b8f8ff6","t":1796292510.58,"ok":true,"text":"A:x","finis'
    b'h_reason":"stop","provider":"test","model":"m","usage":{"input_tokens":1,"output_token'
    b's":3,"cached_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"estimated":false},'
    b'"total_usage":{"input_tokens":1,"output_tokens":3,"cached_tokens":0,"cache_write_token'
    b's":0,"reasoning_tokens":0,"estimated":false},"cost":{"usd":null,"known":false,"input_u'
    b'sd":null,"output_usd":null,"cached_usd":null,"reasoning_usd":null,"reason":"no price f'
    b'or test/m in the catalog","estimated":false}}\n'
    b'{"id":"k","h":"1ab130028847dabfad0dbe70","t":1796292510.581,"ok":true,"text":"A:y","fi'
    b'nish_reason":"stop","provider":"test","model":"m","usage":{"input_tokens":1,"output_to'
    b'kens":3,"cached_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"estimated":fals'
    b'e},"total_usage":{"input_tokens":1,"output_tokens":3,"cached_tokens":0,"cache_write_to'
    b'kens":0,"reasoning_tokens":0,"estimated":false},"cost":{"usd":null,"known":false,"inpu'
    b't_usd":null,"output_usd":null,"cached_usd":null,"reasoning_usd":null,"reason":"no pric'
    b'e for test/m in the catalog","estimated":false}}\n'
    b'{"id":2,"h":"01de7bef0bc9d400b42f77bc","t":1796292510.581,"ok":false,"error":{"type":"'
    b'ValueError","message":"no"}}\n'
)


async def test_a_version_1_journal_is_resumed(client: Client, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.journal"
    path.write_bytes(_V1_JOURNAL)
    calls: list[str] = []
    items: list[Any] = ["x", {"id": "k", "prompt": "y"}, "boom"]
    results = await amap(answering(calls, name="m"), items, client=client, journal=path)
    assert calls == []  # all three come from the journal, fingerprints unchanged
    ok, k, failed = results
    assert ok.resumed
    assert ok.response is not None
    assert (ok.text, ok.response.provider, ok.response.model) == ("A:x", "test", "m")
    assert ok.response.usage == Usage(1, 3)
    assert ok.response.total_usage == Usage(1, 3)
    assert ok.response.cost == Cost.unknown("no price for test/m in the catalog")
    assert k.id == "k"
    assert k.text == "A:y"
    assert isinstance(failed.error, ValueError)
    assert str(failed.error) == "no"
    again = await amap(
        answering(calls, name="m"), items, client=client, journal=path, retry_failed=True
    )
    assert calls == ["boom"]  # only the failed item ran again
    assert again[2].text == "A:boom"
    lines = path.read_bytes().splitlines()
    assert orjson.loads(lines[0])["llmrelay_batch_journal"] == 1  # the header is not rewritten
    assert orjson.loads(lines[-1])["response"]["text"] == "A:boom"  # the new record: version 2


async def test_a_journal_of_a_newer_version_is_refused(
    client: Client, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "run.journal"
    path.write_bytes(b'{"llmrelay_batch_journal":3}\n')
    with pytest.raises(InvalidRequestError, match="has version 3; this llmrelay reads versions 1"):
        await amap(answering(), ["x"], client=client, journal=path)


async def test_an_unreadable_response_record_runs_its_item_again(
    client: Client, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "run.journal"
    await amap(answering(name="m"), ["x", "y"], client=client, journal=path)
    head, *lines = path.read_bytes().splitlines()
    recs = [orjson.loads(line) for line in lines]
    for rec in recs:
        if rec["id"] == 0:
            rec["response"]["usage"]["input_tokens"] = -1  # damaged: not a count
    path.write_bytes(b"\n".join([head, *map(orjson.dumps, recs), b""]))
    calls: list[str] = []
    results = await amap(answering(calls, name="m"), ["x", "y"], client=client, journal=path)
    assert calls == ["x"]
    assert [r.resumed for r in results] == [False, True]
    assert [r.text for r in results] == ["A:x", "A:y"]


async def test_resume_after_keyboard_interrupt(client: Client, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.journal"
    prompts = [f"p{i}" for i in range(10)]
    first: list[str] = []

    async def crashing(messages: list[Message], params: GenerationParams) -> str:
        text = messages[-1].text()
        first.append(text)
        await asyncio.sleep(0)
        if len(first) == 6:
            raise KeyboardInterrupt
        return f"A:{text}"

    with pytest.raises(KeyboardInterrupt):
        await amap(
            FunctionModel(crashing, name="m"), prompts, client=client, concurrency=3, journal=path
        )
    done = {r["id"] for r in records(path)}
    assert 0 < len(done) < 10

    again: list[str] = []
    notified: list[tuple[Any, bool]] = []
    results = await amap(
        answering(again, name="m"),
        prompts,
        client=client,
        concurrency=3,
        journal=path,
        on_result=lambda r: notified.append((r.id, r.resumed)),
    )
    assert sorted(again) == sorted(f"p{i}" for i in range(10) if i not in done)
    assert [r.text for r in results] == [f"A:{p}" for p in prompts]
    assert [r.resumed for r in results] == [i in done for i in range(10)]
    assert sorted(notified) == sorted((i, i in done) for i in range(10))
    ids = [r["id"] for r in records(path)]
    assert sorted(ids) == list(range(10))  # every item exactly once

    third: list[str] = []
    await amap(answering(third, name="m"), prompts, client=client, journal=path)
    assert third == []


async def test_cancelled_batch_keeps_what_finished(client: Client, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.journal"
    never = asyncio.Event()
    three_done = asyncio.Event()
    finished: list[Any] = []

    async def fn(messages: list[Message], params: GenerationParams) -> str:
        if int(messages[-1].text()) >= 3:
            await never.wait()
        return "done"

    def on_result(r: BatchResult) -> None:
        finished.append(r.id)
        if len(finished) == 3:
            three_done.set()

    task = asyncio.create_task(
        amap(
            FunctionModel(fn, name="m"),
            [str(i) for i in range(8)],
            client=client,
            concurrency=4,
            journal=path,
            on_result=on_result,
        )
    )
    await three_done.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(r["id"] for r in records(path)) == [0, 1, 2]
    reopened = Journal.open(path)  # the lock was released
    assert sorted(reopened.records) == ["0", "1", "2"]
    await reopened.aclose()


def test_sync_map_interrupted_then_resumed(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.journal"
    calls: list[str] = []

    def fn(messages: list[Message], params: GenerationParams) -> str:
        text = messages[-1].text()
        calls.append(text)
        if text == "p3":
            raise KeyboardInterrupt
        return f"A:{text}"

    c = Client()
    prompts = [f"p{i}" for i in range(6)]
    with pytest.raises(KeyboardInterrupt):
        c.map(FunctionModel(fn, name="m"), prompts, concurrency=1, journal=path)
    assert [r["id"] for r in records(path)] == [0, 1, 2]
    again: list[str] = []
    results = client_module.map(answering(again, name="m"), prompts, client=c, journal=path)
    assert again == ["p3", "p4", "p5"]
    assert [r.text for r in results] == [f"A:{p}" for p in prompts]


async def test_a_torn_last_line_is_dropped_and_its_item_rerun(
    client: Client, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "run.journal"
    prompts = [f"p{i}" for i in range(5)]
    await amap(answering(name="m"), prompts[:3], client=client, journal=path)
    whole = path.read_bytes()
    # A crash in the middle of writing item 3's record: half a line, no newline.
    await amap(answering(name="m"), prompts[:4], client=client, journal=tmp_path / "other")
    line3 = next(x for x in (tmp_path / "other").read_bytes().split(b"\n") if b'"id":3,' in x)
    path.write_bytes(whole + line3[: len(line3) // 2])

    calls: list[str] = []
    results = await amap(answering(calls, name="m"), prompts, client=client, journal=path)
    assert sorted(calls) == ["p3", "p4"]
    assert [r.text for r in results] == [f"A:{p}" for p in prompts]
    assert sorted(r["id"] for r in records(path)) == [0, 1, 2, 3, 4]  # every line parses


async def test_a_torn_header_starts_a_fresh_journal(client: Client, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.journal"
    path.write_bytes(b'{"llmrelay_batch_jou')
    results = await amap(answering(name="m"), ["x"], client=client, journal=path)
    assert results[0].text == "A:x"
    assert [r["id"] for r in records(path)] == [0]


async def test_a_file_that_is_not_a_journal_is_refused(
    client: Client, tmp_path: pathlib.Path
) -> None:
    for content in (b"important notes\nmore\n", b"no newline at all", b'{"id": 1}\n'):
        path = tmp_path / "notes.txt"
        path.write_bytes(content)
        with pytest.raises(InvalidRequestError, match="is not an llmrelay batch journal"):
            await amap(answering(), ["x"], client=client, journal=path)
        assert path.read_bytes() == content  # untouched


async def test_a_changed_item_is_rerun(client: Client, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.journal"
    await amap(answering(name="m"), ["a", "b", "c"], client=client, journal=path)
    calls: list[str] = []
    results = await amap(answering(calls, name="m"), ["a", "B!", "c"], client=client, journal=path)
    assert calls == ["B!"]
    assert [r.text for r in results] == ["A:a", "A:B!", "A:c"]
    calls.clear()
    await amap(
        answering(calls, name="m"), ["a", "B!", "c"], client=client, journal=path, temperature=0.5
    )  # a different parameter is a different request
    assert sorted(calls) == ["B!", "a", "c"]


async def test_failed_items_are_kept_unless_retry_failed(
    client: Client, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "run.journal"

    async def fn(messages: list[Message], params: GenerationParams) -> str:
        text = messages[-1].text()
        if text == "limited":
            raise RateLimitedError("slow down", status=429, retry_after=7.0, provider="test")
        if text == "group":
            raise AllAttemptsFailedError(
                "all 2 candidates failed",
                [ServerError("boom", status=503), BadRequestError("nope", status=400)],
            )
        if text == "value":
            raise ValueError("odd")
        return "fine"

    prompts = ["ok", "limited", "group", "value"]
    first = await amap(FunctionModel(fn, name="m"), prompts, client=client, journal=path, retries=0)
    calls: list[str] = []
    again = await amap(answering(calls, name="m"), prompts, client=client, journal=path, retries=0)
    assert calls == []
    assert all(r.resumed for r in again)
    for a, b in zip(first, again, strict=True):
        assert type(a.error) is type(b.error)
        assert str(a.error) == str(b.error)
    limited = again[1].error
    assert isinstance(limited, RateLimitedError)
    assert (limited.status, limited.retry_after, limited.provider) == (429, 7.0, "test")
    group = again[2].error
    assert isinstance(group, AllAttemptsFailedError)
    assert [type(e) for e in group.exceptions] == [ServerError, BadRequestError]

    retried = await amap(
        answering(calls, name="m"),
        prompts,
        client=client,
        journal=path,
        retries=0,
        retry_failed=True,
    )
    assert sorted(calls) == ["group", "limited", "value"]
    assert all(r.ok for r in retried)


async def test_a_journal_in_use_is_refused(client: Client, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.journal"
    held = Journal.open(path)
    try:
        with pytest.raises(InvalidRequestError, match="in use by another running batch"):
            await amap(answering(), ["x"], client=client, journal=path)
    finally:
        await held.aclose()
    assert (await amap(answering(), ["x"], client=client, journal=path))[0].ok


async def test_structured_results_are_rebuilt_from_the_journal(
    client: Client, tmp_path: pathlib.Path
) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    path = tmp_path / "run.journal"
    model = TestModel(['{"name": "Oslo", "population": 700000}'])
    first = await amap(model, ["Oslo?"], client=client, journal=path, response_model=City)
    again = await amap(TestModel(), ["Oslo?"], client=client, journal=path, response_model=City)
    assert again[0].resumed
    assert again[0].response is not None
    assert (
        again[0].response.object
        == first[0].response.object
        == City(  # type: ignore[union-attr]
            name="Oslo", population=700000
        )
    )


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def named_model(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, FunctionModel], str]:
    """Register a FunctionModel as ``test/<name>`` (what the CLI can name)."""

    def register(name: str, model: FunctionModel) -> str:
        monkeypatch.setitem(test_models._NAMED, name, model)
        return f"test/{name}"

    return register


def write_lines(path: pathlib.Path, *lines: str) -> pathlib.Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def output(path: pathlib.Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_cli_end_to_end_against_the_fake(
    cli: Run, fake_thread: FakeUpstream, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    src = write_lines(
        tmp_path / "in.jsonl",
        '{"id": "first", "prompt": "hello"}',
        "plain text prompt",
        '"a json string"',
        '{"messages": [{"role": "user", "content": "from messages"}], "temperature": 0.2}',
    )
    out = tmp_path / "out.jsonl"
    args = ["batch", str(src), "-o", str(out), "-m", "gpt-4.1-mini"]
    args += ["--base-url", fake_thread.openai_base_url, "--system", "Be brief."]
    args += ["--max-tokens", "30"]
    code, stdout, err = cli(*args, "--concurrency", "2")
    assert code == 0, err
    assert stdout == ""
    rows = output(out)
    assert [(r["id"], r["text"]) for r in rows] == [
        ("first", "Echo: hello"),
        (2, "Echo: plain text prompt"),
        (3, "Echo: a json string"),
        (4, "Echo: from messages"),
    ]
    for r in rows:
        assert r["finish_reason"] == "stop"
        assert r["usage"]["input_tokens"] > 0
        assert r["usage"]["output_tokens"] > 0
        assert "cost" in r
    assert "llmrelay batch: 4 ok, 0 failed" in err
    bodies = {r.body["messages"][-1]["content"]: r.body for r in fake_thread.requests}
    assert set(bodies) == {"hello", "plain text prompt", "a json string", "from messages"}
    assert all(
        b["messages"][0] == {"role": "system", "content": "Be brief."} for b in bodies.values()
    )
    assert bodies["from messages"]["temperature"] == 0.2
    assert {b["max_completion_tokens"] for b in bodies.values()} == {30}
    assert pathlib.Path(f"{out}.journal").exists()

    # Run again: everything comes from the journal, no request is sent.
    fake_thread.clear()
    code, _, err = cli(*args)
    assert code == 0
    assert fake_thread.requests == []
    assert output(out) == rows
    assert "(4 from the journal)" in err


def test_cli_malformed_lines_are_reported_and_skipped(
    cli: Run, named_model: Callable[[str, FunctionModel], str], tmp_path: pathlib.Path
) -> None:
    calls: list[str] = []
    model = named_model("cli-malformed", answering(calls))
    src = write_lines(
        tmp_path / "in.jsonl",
        "first",
        "{not json",
        "",
        '{"id": "x"}',
        '["not a message"]',
        "last",
    )
    (tmp_path / "in.jsonl").write_bytes(src.read_bytes() + b"\xff\xfe bad bytes\n")
    out = tmp_path / "out.jsonl"
    code, _, err = cli("batch", str(src), "-o", str(out), "-m", model)
    assert code == EXIT_MALFORMED_INPUT
    assert f"{src}:2: skipped: not valid JSON" in err
    assert f"{src}:4: skipped: an item dict needs `prompt`" in err
    assert f"{src}:7: skipped: not valid UTF-8" in err
    assert f"{src}:5: skipped: the message list: messages[0] is a str" in err
    assert "4 malformed lines skipped" in err
    rows = output(out)
    assert [(r["id"], r["text"]) for r in rows] == [(1, "A:first"), (6, "A:last")]
    assert sorted(calls) == ["first", "last"]


def test_cli_failed_items_exit_6(
    cli: Run, fake_thread: FakeUpstream, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    fake_thread.push(Reply.ok("one"), Reply.error(400, "bad prompt"), Reply.ok("three"))
    src = write_lines(tmp_path / "in.jsonl", "a", "b", "c")
    out = tmp_path / "out.jsonl"
    args = ["batch", str(src), "-o", str(out), "-m", "gpt-4.1-mini"]
    args += ["--base-url", fake_thread.openai_base_url, "--concurrency", "1"]
    code, _, err = cli(*args)
    assert code == EXIT_ITEMS_FAILED
    rows = output(out)
    assert [r.get("text") for r in rows] == ["one", None, "three"]
    assert rows[1]["error"]["type"] == "BadRequestError"
    assert "bad prompt" in rows[1]["error"]["message"]
    assert "item 2 (line 2) failed:" in err
    assert "2 ok, 1 failed" in err

    fake_thread.clear()
    code, _, err = cli(*args)  # the failure is read back, not retried
    assert code == EXIT_ITEMS_FAILED
    assert fake_thread.requests == []
    assert "pass --retry-failed" in err
    code, _, err = cli(*args, "--retry-failed")
    assert code == 0
    assert len(fake_thread.requests) == 1
    assert [r["text"] for r in output(out)] == ["one", "Echo: b", "three"]


def test_cli_usage_errors_exit_2(
    cli: Run, named_model: Callable[[str, FunctionModel], str], tmp_path: pathlib.Path
) -> None:
    calls: list[str] = []
    model = named_model("cli-usage", answering(calls))
    src = write_lines(tmp_path / "in.jsonl", '{"id": 1, "prompt": "a"}', "b", '{"prompt": "c"}')
    out = str(tmp_path / "out.jsonl")
    cases = [
        (["batch", str(src), "-o", out], "no model given"),
        (["batch", str(src), "-o", out, "-m", model, "--journal", out], "--journal must be"),
        (["batch", str(src), "-o", str(src), "-m", model], "would be overwritten"),
        (["batch", str(tmp_path / "missing"), "-o", out, "-m", model], "cannot read the input"),
        (["batch", str(src), "-o", out, "-m", model, "--concurrency", "0"], "concurrency must"),
        (["batch", str(src), "-o", out, "-m", "no-such-model"], "unknown model"),
    ]
    for argv, message in cases:
        code, _, err = cli(*argv)
        assert code == 2, argv
        assert message in err
    dup = write_lines(tmp_path / "dup.jsonl", '{"id": 3, "prompt": "a"}', "b", "c")
    code, _, err = cli("batch", str(dup), "-o", out, "-m", model)
    assert code == 2
    assert f"duplicate item id 3: {dup}:1 and {dup}:3" in err
    assert calls == []
    assert not os.path.exists(out)


def test_cli_progress_on_a_terminal(
    named_model: Callable[[str, FunctionModel], str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
) -> None:
    pytest.importorskip("rich")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Tty()
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.delenv("NO_COLOR", raising=False)
    model = named_model("cli-tty", answering())
    src = write_lines(tmp_path / "in.jsonl", "a", "b", "c")
    assert main(["batch", str(src), "-o", str(tmp_path / "out.jsonl"), "-m", model]) == 0
    shown = term.getvalue()
    assert "3/3" in shown
    assert "\x1b[" in shown  # drawn by rich


def test_plain_progress_prints_counts_periodically() -> None:
    now = [0.0]
    buf = io.StringIO()
    p = Progress(5, buf, interval=5.0, clock=lambda: now[0])
    p(BatchResult(0, 0, error=ValueError("x")))
    now[0] = 6.0
    p(BatchResult(1, 1, resumed=True))
    p(BatchResult(2, 2))
    now[0] = 12.0
    p(BatchResult(3, 3))
    assert buf.getvalue() == (
        "llmrelay batch: 2/5 done, 1 failed (1 from the journal)\n"
        "llmrelay batch: 4/5 done, 1 failed (1 from the journal)\n"
    )
    assert p.counts() == "4/5 done, 1 failed (1 from the journal)"


# --------------------------------------------------------------------------- real processes

_DRIVER = """
import asyncio, sys
from llmrelay.providers import doubles as models
from llmrelay.providers.doubles import FunctionModel

finish = int(sys.argv[1])
calls = 0

async def fn(messages, params):
    global calls
    calls += 1
    if calls > finish:
        await asyncio.Event().wait()  # hangs until the process is killed
    return "A:" + messages[-1].text()

models._NAMED["killme"] = FunctionModel(fn, name="killme")
from llmrelay.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _wait_for_records(journal: pathlib.Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if journal.exists() and journal.read_bytes().count(b"\n") >= n + 1:
            return
        time.sleep(0.005)
    raise AssertionError(f"the journal never reached {n} records")


@pytest.fixture
def halfway(tmp_path: pathlib.Path) -> Iterator[Callable[[int], tuple[Any, ...]]]:
    """Start ``llmrelay batch`` in a process whose model answers ``finish`` items and then
    hangs; return (process, input, output, journal) once those items are journaled."""
    procs: list[subprocess.Popen[str]] = []

    def start(finish: int) -> tuple[Any, ...]:
        src = write_lines(tmp_path / "in.jsonl", *(f"q{i}" for i in range(1, 21)))
        out = tmp_path / "out.jsonl"
        journal = tmp_path / "out.jsonl.journal"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _DRIVER,
                str(finish),
                "batch",
                str(src),
                "-o",
                str(out),
                "-m",
                "test/killme",
                "--concurrency",
                "3",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        _wait_for_records(journal, finish, proc)
        return proc, src, out, journal

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)


def _resume(
    cli: Run,
    named_model: Callable[[str, FunctionModel], str],
    src: pathlib.Path,
    out: pathlib.Path,
    journal: pathlib.Path,
) -> None:
    done = {r["id"] for r in records(journal)}
    assert 0 < len(done) < 20
    calls: list[str] = []
    model = named_model("killme", answering(calls))
    code, _, err = cli("batch", str(src), "-o", str(out), "-m", model)
    assert code == 0, err
    assert sorted(calls) == sorted(f"q{i}" for i in range(1, 21) if i not in done)
    rows = output(out)
    assert [r["id"] for r in rows] == list(range(1, 21))  # every output exactly once, in order
    assert [r["text"] for r in rows] == [f"A:q{i}" for i in range(1, 21)]
    assert sorted(r["id"] for r in records(journal)) == list(range(1, 21))


def test_process_killed_halfway_then_resumed(
    cli: Run, named_model: Callable[[str, FunctionModel], str], halfway: Any
) -> None:
    proc, src, out, journal = halfway(8)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    _resume(cli, named_model, src, out, journal)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_process_ctrl_c_stops_cleanly_then_resumes(
    cli: Run, named_model: Callable[[str, FunctionModel], str], halfway: Any
) -> None:
    proc, src, out, journal = halfway(5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted: 5/20 done" in err
    assert "Run the same command again to resume" in err
    assert sorted(r["id"] for r in records(journal)) == [1, 2, 3, 4, 5]
    _resume(cli, named_model, src, out, journal)


def test_llmrelay_namespace_is_untouched() -> None:
    # The batch module is not imported by `import llmrelay` (kept light).
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, llmrelay; llmrelay.Client; print('llmrelay.batch.runner' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert probe.stdout.strip() == "False"
    assert callable(llmrelay.Client.amap)
    assert callable(llmrelay.Client.map)
