"""``[server] gc``: a worker freezes what start-up built and collects less often, by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from llmrelay.errors import ConfigurationError
from llmrelay.gateway import server
from llmrelay.gateway.config import GC_THRESHOLD, GatewaySettings
from llmrelay.gateway.server import settings_from, worker_app

_PROBE = (
    "import gc, sys\n"
    "from llmrelay.gateway.config import tune_gc\n"
    "before = gc.get_threshold()\n"
    "tune_gc(sys.argv[1])\n"
    "after = gc.get_threshold()\n"
    "print(gc.get_freeze_count() > 0, after[0], after[1:] == before[1:], after == before)\n"
)


def _probe(mode: str) -> str:
    # Its own interpreter: freezing and thresholds are process-wide (this one runs the tests).
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_tuned_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    assert _probe("tuned") == f"True {GC_THRESHOLD} True False"


def test_python_leaves_the_interpreter_defaults() -> None:
    frozen, young, older_same, unchanged = _probe("python").split()
    assert (frozen, older_same, unchanged) == ("False", "True", "True")
    assert int(young) != GC_THRESHOLD


def test_the_setting_defaults_to_tuned_and_takes_python() -> None:
    assert settings_from({})[0].gc == "tuned"
    assert settings_from({"gc": "python"})[0].gc == "python"


@pytest.mark.parametrize("bad", ["off", "", 0, True, None])
def test_any_other_value_is_refused_naming_the_key_and_its_values(bad: object) -> None:
    with pytest.raises(ConfigurationError, match=r'\[server\] gc must be "tuned".*"python"'):
        settings_from({"gc": bad})


@pytest.mark.parametrize("mode", ["tuned", "python"])
async def test_a_worker_applies_its_setting_once_started(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied: list[str] = []
    monkeypatch.setattr(server, "tune_gc", applied.append)  # not this test process's GC
    app = worker_app(GatewaySettings(port=0, gc=mode), False)
    assert applied == []  # not while building: start-up is not over
    srv = TestServer(app)
    await srv.start_server()
    try:
        assert applied == [mode]
    finally:
        await srv.close()


# A tuned worker in its own interpreter, in front of a fake upstream that answers 500: each
# failed call leaves its request body in a reference cycle (the error's traceback holds the
# frames that hold it). Printed: how many distinct request bodies are still held by garbage.
_FAILED_BODIES = """
import asyncio, gc, os, sys
import aiohttp, orjson
from aiohttp.test_utils import TestServer
from llmrelay.gateway.config import GatewaySettings
from llmrelay.gateway.server import worker_app
from llmrelay.testing.fake import FakeUpstream, Reply

async def main() -> None:
    async with FakeUpstream() as fake:
        os.environ["OPENAI_BASE_URL"] = fake.openai_base_url
        os.environ["OPENAI_API_KEY"] = "sk-test"
        srv = TestServer(worker_app(GatewaySettings(port=0, gc="tuned"), False))
        await srv.start_server()
        try:
            async with aiohttp.ClientSession() as s:
                for i in range(int(sys.argv[1])):
                    fake.push(Reply.error(500))
                    text = f"#R{i:04d}#" + "x" * 900_000
                    body = {"model": "openai/gpt-4.1-mini",
                            "messages": [{"role": "user", "content": text}]}
                    async with s.post(srv.make_url("/v1/chat/completions"),
                                      data=orjson.dumps(body),
                                      headers={"content-type": "application/json"}) as r:
                        assert r.status >= 500, r.status
                        await r.read()
        finally:
            await srv.close()
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    held = set()
    for o in gc.garbage:
        for r in gc.get_referents(o):
            if isinstance(r, (str, bytes)) and len(r) > 800_000:
                raw = r.encode() if isinstance(r, str) else r
                at = raw.find(b"#R")
                if at >= 0:
                    held.add(raw[at + 2 : at + 6])
    print(len(held))

asyncio.run(main())
"""


def test_a_tuned_worker_does_not_hold_the_bodies_of_many_failed_calls(tmp_path: Path) -> None:
    """60 calls with 0.9 MB bodies fail upstream, one after another: with a young collection
    only every 10,000 objects, all 60 bodies stayed in cyclic garbage (Python's defaults: ~6;
    found by an outside attack: 3.1 GB after 2,000 failed 1-4 MB calls). The gateway now lets
    go of a failed call's frames once it has answered (``wire.forget``): none is held."""
    config = tmp_path / "llmrelay.toml"
    config.write_text("[defaults]\nretries = 0\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["LLMRELAY_CONFIG"] = str(config)
    env.pop("LLMRELAY_REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", _FAILED_BODIES, "60"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    held = int(out.stdout.strip().splitlines()[-1])
    assert held == 0, f"{held} failed calls' bodies still held in reference cycles"
