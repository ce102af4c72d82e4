"""Calls to count instructions of, under valgrind (robust on a noisy machine).

    # an upstream in its own process (not counted):
    python benchmarks/_upstream.py --port 8765 --cpu 1 &
    # client CLIENT at concurrency CONC, N calls after a warm-up, against that upstream
    # (a trailing "responses": llmrelay calls with api="responses"; the floor of the Responses
    # API is the client aiohttp-responses):
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/instructions.py upstream CLIENT CONC N 8765 [responses]
    # N calls refused by an open breaker, in process (MODE: open = Client(), open-engine =
    # Client(engine=Engine())), or N successful in-process calls (client):
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/instructions.py open N

Per-call instructions = (Collected at N=1100 - Collected at N=100) / 1000 (2200 and 200 for
the in-process modes, / 2000): start-up and warm-up cancel out.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from _clients import API_KEY, FACTORIES, MESSAGES, drive
from reliability import MODEL, _fixed_transport, _open


async def upstream(client: str, conc: int, n: int, port: int, api: str | None = None) -> None:
    extra = {"api": api} if api and client.startswith("llmrelay") else {}
    call, close = await FACTORIES[client](f"http://127.0.0.1:{port}/v1", False, extra)
    await drive(call, 100 + 2 * conc, conc)
    await drive(call, n, conc)
    await close()


async def in_process(mode: str, n: int) -> None:
    import llmrelay
    from llmrelay.errors import CircuitOpenError
    from llmrelay.providers.resolve import resolve_target, to_deployment

    tr = _fixed_transport()
    engine = None if mode in ("client", "open") else llmrelay.Engine(tr)
    client = llmrelay.Client(transport=tr) if engine is None else llmrelay.Client(engine=engine)
    kw: dict[str, Any] = {"api_key": API_KEY, "base_url": "http://127.0.0.1:9/v1"}

    async def ok() -> None:
        await client.achat(MODEL, MESSAGES, **kw)

    async def refused() -> None:
        try:
            await client.achat(MODEL, MESSAGES, **kw)
        except CircuitOpenError:
            return
        raise SystemExit("the breaker did not refuse")

    call = ok
    if mode.startswith("open"):
        await ok()
        dep = to_deployment(resolve_target(MODEL), api_key=API_KEY, base_url=kw["base_url"])
        _open(client.engine.breaker_for(dep))
        call = refused
    for _ in range(200 + n):
        await call()


def main() -> None:
    if sys.argv[1] == "upstream":
        client, conc, n, port = sys.argv[2], *map(int, sys.argv[3:6])
        asyncio.run(upstream(client, conc, n, port, sys.argv[6] if len(sys.argv) > 6 else None))
    else:
        asyncio.run(in_process(sys.argv[1], int(sys.argv[2])))


if __name__ == "__main__":
    main()
