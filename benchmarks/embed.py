"""Client CPU of embedding 10,000 short inputs: ``llmrelay.aembed`` against raw aiohttp.

    python benchmarks/embed.py                     # 10,000 inputs, 256 dimensions, 7 rounds
    python benchmarks/embed.py --inputs 50000 --dimensions 1536 --rounds 5 --json out.json
    python benchmarks/embed.py --provider voyage   # or cohere: their wire APIs, same floor

The upstream is ``llmrelay.testing``'s fake (real OpenAI ``/v1/embeddings`` shapes, base64
float32 vectors) in its own process, so its CPU is never counted. Both clients send the same
batches (2,048 inputs each, 4 in flight, ``encoding_format: "base64"``) and end with the same
thing: every vector, in input order, as float32 numbers in one ``array('f')``. The raw client
is what a careful user would write with aiohttp, orjson and ``binascii`` (no checks); llmrelay
runs through ``Client()`` with its default layers (catalog and costs, breakers, retries,
per-input checks). ``--provider voyage`` (1,000 inputs a batch, base64) and ``--provider
cohere`` (96 texts a batch, JSON float lists) measure the same against the fake's Voyage and
Cohere dialects.
CPU is ``time.process_time()`` of this process per embed call; the median of ``--rounds``
interleaved rounds is reported, with the ratio to raw aiohttp (budget: 1.2x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from array import array
from binascii import a2b_base64
from typing import Any

MODEL = "text-embedding-3-small"
BATCH = 2048
IN_FLIGHT = 4
#: provider -> (model, inputs a batch, path under the fake upstream)
WIRES: dict[str, tuple[str, int, str]] = {
    "openai": (MODEL, BATCH, "/v1/embeddings"),
    "voyage": ("voyage-3.5", 1000, "/voyage/v1/embeddings"),
    "cohere": ("embed-v4.0", 96, "/v2/embed"),
}


def _body(provider: str, part: list[str], dims: int) -> dict[str, Any]:
    model = WIRES[provider][0]
    if provider == "voyage":
        return {
            "input": part,
            "model": model,
            "truncation": False,
            "encoding_format": "base64",
            "output_dimension": dims,
        }
    if provider == "cohere":
        return {
            "model": model,
            "texts": part,
            "input_type": "search_document",
            "embedding_types": ["float"],
            "truncate": "NONE",
            "output_dimension": dims,
        }
    return {"model": model, "input": part, "dimensions": dims, "encoding_format": "base64"}


def serve() -> None:
    from llmrelay.testing.fake import FakeUpstream

    async def main() -> None:
        async with FakeUpstream() as fake:
            print(fake.port, flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())


async def raw_aiohttp(
    session: Any, url: str, texts: list[str], dims: int, provider: str = "openai"
) -> array[float]:
    import orjson

    sem = asyncio.Semaphore(IN_FLIGHT)
    headers = {"authorization": "Bearer sk-bench", "content-type": "application/json"}
    batch = WIRES[provider][1]

    async def one(part: list[str]) -> array[float]:
        body = orjson.dumps(_body(provider, part, dims))
        async with sem, session.post(url, data=body, headers=headers) as r:
            data = orjson.loads(await r.read())
        out = array("f")
        if provider == "cohere":
            for v in data["embeddings"]["float"]:
                out.fromlist(v)
            return out
        items = sorted(data["data"], key=lambda d: d["index"])
        out.frombytes(b"".join([a2b_base64(d["embedding"]) for d in items]))
        return out

    parts = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    results = await asyncio.gather(*(one(p) for p in parts))
    flat = results[0]
    for r in results[1:]:
        flat.extend(r)
    return flat


async def run(
    port: int, n: int, dims: int, rounds: int, provider: str = "openai"
) -> dict[str, Any]:
    import aiohttp

    import llmrelay
    from llmrelay.testing.fake import FakeUpstream

    fake = FakeUpstream()
    fake.port = port
    base = fake.base_url_for(provider)
    model, _, path = WIRES[provider]
    texts = [f"short input number {i} about topic {i % 97}" for i in range(n)]
    client = llmrelay.Client()
    session = aiohttp.ClientSession()

    async def ours() -> array[float]:
        e = await client.aembed(
            f"{provider}/{model}", texts, dimensions=dims, api_key="sk-bench", base_url=base
        )
        return e.data

    async def raw() -> array[float]:
        return await raw_aiohttp(session, fake.url + path, texts, dims, provider)

    assert (await ours()) == (await raw())  # same vectors, same order (and a warm-up)
    cpu: dict[str, list[float]] = {"aiohttp": [], "llmrelay": []}
    wall: dict[str, list[float]] = {"aiohttp": [], "llmrelay": []}
    for _ in range(rounds):
        for name, fn in (("aiohttp", raw), ("llmrelay", ours)):
            c0, w0 = time.process_time(), time.perf_counter()
            await fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    await session.close()
    await client.aclose()
    med = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "provider": provider,
        "inputs": n,
        "dimensions": dims,
        "rounds": rounds,
        "cpu_ms": {k: round(v * 1000, 1) for k, v in med.items()},
        "wall_ms": {k: round(statistics.median(v) * 1000, 1) for k, v in wall.items()},
        "ratio": round(med["llmrelay"] / med["aiohttp"], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=10_000)
    ap.add_argument("--dimensions", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--provider", choices=sorted(WIRES), default="openai")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve()
        return
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        res = asyncio.run(run(port, args.inputs, args.dimensions, args.rounds, args.provider))
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        f"{res['provider']}: {res['inputs']} inputs x {res['dimensions']} dims, median of "
        f"{res['rounds']} rounds: "
        f"CPU aiohttp {res['cpu_ms']['aiohttp']} ms, llmrelay {res['cpu_ms']['llmrelay']} ms "
        f"({res['ratio']}x); wall {res['wall_ms']['aiohttp']} / {res['wall_ms']['llmrelay']} ms"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
