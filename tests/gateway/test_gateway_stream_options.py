"""A streamed gateway call hands the engine the same call options as a plain one of the same
key (its tags, its cache tenant, the request's id as trace id), on every wire: the streamed
path takes the options made once per key (``prepared_args``), not keyword arguments."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmrelay.core.options import CallOptions
from llmrelay.gateway.app import GatewaySettings
from llmrelay.testing.fake import FakeUpstream, Reply

from .conftest import ADMIN, CLAUDE, GPT, Running, post, serving


def _spy(gw: Running) -> list[tuple[str, CallOptions]]:
    engine = gw.gateway.client.engine
    seen: list[tuple[str, CallOptions]] = []
    stream, complete = engine.stream, engine.complete_messages

    def spy_stream(model: Any, msgs: Any, params: Any, opts: CallOptions) -> Any:
        seen.append(("stream", opts))
        return stream(model, msgs, params, opts)

    def spy_complete(model: Any, msgs: Any, params: Any, opts: CallOptions) -> Any:
        seen.append(("complete", opts))
        return complete(model, msgs, params, opts)

    engine.stream = spy_stream  # type: ignore[method-assign]
    engine.complete_messages = spy_complete  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("scope", ["team", "key", "shared"])
async def test_streamed_and_plain_calls_carry_the_same_options(
    fake: FakeUpstream, point_at: Any, tmp_path: Path, scope: str
) -> None:
    point_at(fake)
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        key_store=str(tmp_path / "keys.db"),
        admin_key=ADMIN,
        cache_scope=scope,
    )
    async with serving(settings, fake) as gw:
        secret = await gw.key(team="red", budget_usd=5.0, rpm=100)
        seen = _spy(gw)
        auth = {"authorization": f"Bearer {secret}"}
        ids = []
        for path, model, stream in [
            ("/v1/chat/completions", GPT, False),
            ("/v1/chat/completions", GPT, True),
            ("/v1/messages", CLAUDE, True),
            ("/v1/responses", GPT, True),
        ]:
            fake.push(Reply.ok("hi there"))
            if path == "/v1/responses":
                body: dict[str, Any] = {"model": model, "input": "hi", "stream": stream}
            else:
                body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
                body |= {"stream": stream, "max_tokens": 20}
            status, data, headers = await post(gw, path, orjson.dumps(body), auth=auth)
            assert status == 200, data
            ids.append(headers["x-request-id"])
        assert [k for k, _ in seen] == ["complete", "stream", "stream", "stream"]
        plain = seen[0][1]
        assert plain.tags is not None
        assert plain.tags.get("team") == "red"
        assert plain.tags.get("vkey")
        if scope == "shared":
            assert plain.tenant is None
        else:
            assert plain.tenant is not None
        for (_, opts), rid in zip(seen, ids, strict=True):
            assert opts.trace_id == rid
            # Every other option as the plain call's (which ``client.achat(**opts)`` made).
            assert replace(opts, trace_id=None) == replace(plain, trace_id=None)
