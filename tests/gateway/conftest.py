"""A gateway on a real port in the test's loop, in front of the fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from llmrelay.gateway.app import Gateway, GatewaySettings
from llmrelay.gateway.server import build_gateway
from llmrelay.testing.fake import FakeUpstream

ADMIN = "sk-admin-test-0d9c8b7a6f5e4d3c"


@dataclass
class Running:
    gateway: Gateway
    url: str
    fake: FakeUpstream
    #: SDK clients a test opened (closed after it).
    clients: list[Any] = field(default_factory=list)

    async def key(self, **policy: Any) -> str:
        assert self.gateway.key_store is not None
        secret, _ = await self.gateway.key_store.create(**{"name": "test", **policy})
        return secret


@pytest.fixture
def gateway_settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        host="127.0.0.1", port=0, key_store=str(tmp_path / "keys.db"), admin_key=ADMIN
    )


@pytest.fixture
async def gw(
    fake: FakeUpstream,
    point_at: Callable[[FakeUpstream], FakeUpstream],
    gateway_settings: GatewaySettings,
) -> AsyncIterator[Running]:
    point_at(fake)
    gateway = build_gateway(gateway_settings)
    runner = web.AppRunner(gateway.app(), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    running = Running(gateway, f"http://127.0.0.1:{port}", fake)
    try:
        yield running
    finally:
        for c in running.clients:
            await c.close()
        await runner.cleanup()
