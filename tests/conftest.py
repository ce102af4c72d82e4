"""Shared fixtures: a clean environment, a canary API key, and the fake upstream."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from hypothesis import settings as hypothesis_settings

from llmrelay.testing.fake import FakeUpstream

# `make test` (and CI) draw the same hypothesis examples every run, so `main` stays green on
# what was checked; `make fuzz` draws new random examples each run (run it before submitting:
# it is how the hostile-repr bugs were found). A failure prints the example and its blob.
hypothesis_settings.register_profile("repeatable", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("fuzz", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("LLMRELAY_HYPOTHESIS", "repeatable"))

#: A key that must never appear in any output, log, repr or exception.
CANARY_KEY = "sk-canary-7f3a9c2e1b4d8f6a0e5c"

_PROVIDER_VARS = [
    v
    for v in os.environ
    if v.endswith(("_API_KEY", "_BASE_URL")) or v.startswith(("LLMRELAY_", "AZURE_OPENAI_"))
]


class FakeClock:
    """A clock for ``clock=`` arguments: stands still until ``advance``-d."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No real keys or base URLs leak into tests; no llmrelay.toml from the cwd is picked up."""
    for v in _PROVIDER_VARS:
        if v != "LLMRELAY_REQUIRE_SERVICES":
            monkeypatch.delenv(v, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    """A fake upstream on 127.0.0.1 in the test's loop, requiring the canary key."""
    async with FakeUpstream(api_key=CANARY_KEY) as f:
        yield f


@pytest.fixture
def fake_thread() -> Iterator[FakeUpstream]:
    """A fake upstream on a background thread, for sync code."""
    with FakeUpstream.running(api_key=CANARY_KEY) as f:
        yield f


#: ``cli(*argv)`` runs ``llmrelay.cli.main.main`` in-process.
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``main(argv)`` in-process; return (exit code, stdout, stderr), canary-checked."""
    from llmrelay.cli.main import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert CANARY_KEY not in out
        assert CANARY_KEY not in err
        return code, out, err

    return run


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> str:
    """Set every provider's key variable to the canary key."""
    from llmrelay.providers.table import PROVIDERS

    for spec in PROVIDERS.values():
        if spec.key_env:
            monkeypatch.setenv(spec.key_env, CANARY_KEY)
    return CANARY_KEY


@pytest.fixture
def point_at(monkeypatch: pytest.MonkeyPatch, keys: str):  # type: ignore[no-untyped-def]
    """point_at(fake): every provider's <PROVIDER>_BASE_URL points at the fake."""

    def apply(f: FakeUpstream) -> FakeUpstream:
        from llmrelay.providers.table import PROVIDERS

        for spec in PROVIDERS.values():
            if spec.wire != "test":
                monkeypatch.setenv(spec.base_url_var, f.base_url_for(spec.wire))
        return f

    return apply
