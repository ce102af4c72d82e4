"""The engine hands every finished call to its recorder, and a recorder never fails a call."""

from __future__ import annotations

import asyncio
import logging

import pytest

import llmrelay
from llmrelay.core.layers import CallRecord
from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY


class Collect:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def record(self, rec: CallRecord) -> None:
        self.records.append(rec)


class Broken:
    calls = 0

    def record(self, rec: CallRecord) -> None:
        self.calls += 1
        raise RuntimeError("recorder down")


def client_with(recorder: object) -> llmrelay.Client:
    return llmrelay.Client(engine=llmrelay.Engine(recorder=recorder))  # type: ignore[arg-type]


async def test_a_failing_recorder_does_not_fail_the_call(
    fake: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Broken()
    client = client_with(broken)
    with caplog.at_level(logging.ERROR, logger="llmrelay.engine"):
        for _ in range(2):
            r = await client.achat(
                "openai/gpt-6-luna", "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url
            )
            assert r.text == "Echo: hi"
    assert broken.calls == 2
    assert sum("recorder" in rec.message for rec in caplog.records) == 1  # logged once
    await client.aclose()


async def test_a_stream_left_early_is_recorded_as_cancelled(fake: FakeUpstream) -> None:
    rec = Collect()
    client = client_with(rec)
    s = client.astream(
        "openai/gpt-6-luna", "one two three four", api_key=CANARY_KEY, base_url=fake.openai_base_url
    )
    async for _ in s:
        break
    await s.aclose()
    assert [r.outcome for r in rec.records] == ["cancelled"]
    await client.aclose()


async def test_a_cancelled_call_is_recorded(fake: FakeUpstream) -> None:
    rec = Collect()
    client = client_with(rec)
    fake.push(Reply.hang(5))
    task = asyncio.create_task(
        client.achat("openai/gpt-6-luna", "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    )
    while not fake.requests:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r.outcome for r in rec.records] == ["cancelled"]
    assert rec.records[0].provider == "openai"
    await client.aclose()
