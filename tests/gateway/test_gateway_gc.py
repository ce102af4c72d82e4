"""``[server] gc``: a worker freezes what start-up built and collects less often, by default."""

from __future__ import annotations

import subprocess
import sys

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
