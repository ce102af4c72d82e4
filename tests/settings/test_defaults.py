"""[defaults] in llmrelay.toml: engine-wide retries, timeouts, deadline, fallbacks, breakers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import llmrelay
from llmrelay.testing.fake import FakeUpstream, Reply

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_config():
        yield


def write_config(text: str) -> Path:
    path = Path.cwd() / "llmrelay.toml"
    path.write_text(text)
    return path


async def test_retries_from_defaults_apply_to_the_client(fake: FakeUpstream) -> None:
    write_config("[defaults]\nretries = 0\n")
    client = llmrelay.Client()
    assert client.engine.retry.max_retries == 0
    fake.push(Reply.error(500, "down"), Reply.ok("too late"))
    with pytest.raises(llmrelay.ServerError):
        await client.achat(
            "openai/gpt-6-luna", "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url
        )
    assert len(fake.requests) == 1  # no retry
    await client.aclose()


async def test_call_arguments_win_over_defaults(fake: FakeUpstream) -> None:
    write_config("[defaults]\nretries = 0\n")
    client = llmrelay.Client()
    slept: list[float] = []

    async def no_sleep(d: float) -> None:
        slept.append(d)

    client.engine.sleep = no_sleep
    fake.push(Reply.error(500, "down"))
    r = await client.achat(
        "openai/gpt-6-luna", "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url, retries=1
    )
    assert r.text == "Echo: hi"
    assert len(fake.requests) == 2
    assert len(slept) == 1
    await client.aclose()


def test_every_default_is_read() -> None:
    write_config(
        """
[defaults]
retries = 4
timeout = 30
deadline = 90
fallbacks = ["gpt-6-luna"]
context_window_fallbacks = ["gemini-3.5-flash"]

[defaults.retry]
base_delay = 1.0
max_delay = 8.0
jitter = false

[defaults.breaker]
failure_threshold = 3
recovery_timeout = 10
"""
    )
    engine = llmrelay.Client().engine
    assert engine.retry.max_retries == 4
    assert engine.retry.base_delay == 1.0
    assert engine.retry.jitter is False
    assert engine.timeouts.total == 30
    assert engine.deadline == 90
    assert engine.fallbacks == ("gpt-6-luna",)
    assert engine.context_window_fallbacks == ("gemini-3.5-flash",)
    assert engine.breakers is not None
    assert engine.breakers.settings["failure_threshold"] == 3
    assert engine.breakers.settings["recovery_timeout"] == 10


def test_breakers_can_be_turned_off() -> None:
    write_config("[defaults.breaker]\nenabled = false\n")
    assert llmrelay.Client().engine.breakers is None


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[defaults]\nretry_count = 2\n", "defaults.retry_count", "unknown key"),
        ('[defaults]\nretries = "two"\n', "defaults.retries", "must be int"),
        ("[defaults]\nretries = -1\n", "defaults.retries", "max_retries"),
        ("[defaults]\ntimeout = 0\n", "defaults.timeout", "positive"),
        ("[defaults]\ndeadline = -5\n", "defaults.deadline", "positive"),
        ('[defaults]\nfallbacks = ["no-such-model"]\n', "defaults.fallbacks", "no-such-model"),
        ('[defaults]\nfallbacks = ["gpt-6-luna", "gpt-6-luna"]\n', "defaults.fallbacks", "twice"),
        ("[defaults.retry]\nbase_delay = -1\n", "defaults.retry", "base_delay"),
        ("[defaults.retry]\nwait = 1\n", "defaults.retry", "unknown key"),
        ("[defaults.breaker]\nfailure_threshold = 0\n", "defaults.breaker", "failure_threshold"),
        ("[defaults.breaker]\nspeed = 1\n", "defaults.breaker", "unknown key"),
    ],
)
def test_bad_defaults_name_the_file_and_key(text: str, key: str, words: str) -> None:
    path = write_config(text)
    with pytest.raises(llmrelay.ConfigFileError) as info:
        llmrelay.Client()
    err = info.value
    assert err.key == key
    assert err.path == str(path)
    assert words in str(err)


def test_bad_defaults_of_a_loaded_file_name_that_file() -> None:
    path = Path.cwd() / "team.toml"
    path.write_text('[defaults]\nretries = "two"\n')
    llmrelay.load_config(str(path))
    with pytest.raises(llmrelay.ConfigFileError) as info:
        llmrelay.Client()
    assert (info.value.path, info.value.key) == (str(path), "defaults.retries")


async def test_alias_policy_sets_retries_timeout_and_deadline(fake: FakeUpstream) -> None:
    write_config(
        f"""
[models.careful]
provider = "openai"
model = "gpt-6-luna"
base_url = "{fake.openai_base_url}"
policy = {{ retries = 0, timeout = 7, deadline = 9 }}
"""
    )
    client = llmrelay.Client()
    engine = client.engine
    target = llmrelay.providers.resolve.resolve_target("careful")
    opts = llmrelay.CallOptions()
    assert engine.attempts.policy(target, opts).max_retries == 0
    assert engine.attempts.timeouts(target, opts).total == 7
    fake.push(Reply.error(500, "down"))
    with pytest.raises(llmrelay.ServerError):
        await client.achat("careful", "hi", api_key=CANARY_KEY)
    assert len(fake.requests) == 1
    # The call's own arguments still win.
    assert engine.attempts.timeouts(target, llmrelay.CallOptions(timeout=3)).total == 3
    await client.aclose()


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("{ retry = 1 }", "unknown policy key 'retry'"),
        ("{ retries = -1 }", "whole number"),
        ("{ timeout = 0 }", "positive number"),
        ('{ deadline = "soon" }', "positive number"),
    ],
)
def test_bad_alias_policy_is_a_file_error(policy: str, words: str) -> None:
    write_config(f'[models.x]\nprovider = "openai"\nmodel = "gpt-6-luna"\npolicy = {policy}\n')
    with pytest.raises(llmrelay.ConfigFileError, match=words):
        llmrelay.Client().chat("x", "hi")
