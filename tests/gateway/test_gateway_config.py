"""The gateway's engine layers take the config file's options, not only its limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrelay.gateway.app import GatewaySettings
from llmrelay.gateway.server import build_gateway

from ..config_isolation import isolated_config


@pytest.fixture
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for var in ("LLMRELAY_CONFIG", "LLMRELAY_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    with isolated_config():
        yield


@pytest.mark.usefixtures("_isolated")
async def test_limits_and_budgets_options_reach_the_per_key_layers() -> None:
    Path("llmrelay.toml").write_text(
        "[limits]\nlearn_from_headers = false\noutput_estimate = 77\n"
        '"openai/*" = { rpm = 5 }\n\n'
        '[budgets]\nunknown_cost = "allow"\n\n[[budgets.limit]]\nlimit_usd = 5.0\n'
    )
    gw = build_gateway(GatewaySettings(host="127.0.0.1", port=0))
    try:
        assert gw.limiter is not None
        assert gw.limiter.learn_from_headers is False
        assert gw.limiter.output_estimate == 77
        assert "openai/*" in gw.limiter.limits
        assert gw.budgets is not None
        assert gw.budgets.unknown_cost == "allow"
    finally:
        await gw.client.aclose()
