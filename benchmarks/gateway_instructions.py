"""Instructions per gateway request, counted by valgrind (robust on a busy machine).

    python benchmarks/gateway_instructions.py [--servers bare,llmrelay,litellm] [--stream]
        [--loop asyncio|uvloop] [--n1 100] [--n2 600] [--conc 8] [--litellm PATH]

Each server runs under ``valgrind --tool=callgrind`` (all its threads and child processes
counted: the request log's writer too, and LiteLLM's worker process) behind the fast local
upstream (``_upstream.py``, not counted) and answers ``--n1`` and then, in a second run,
``--n2`` requests from ``--conc`` connections; per request =
(Ir at n2 - Ir at n1) / (n2 - n1), so start-up and shutdown cancel out. ``bare`` is the bare
aiohttp pass-through proxy of ``gateway.py``; ``llmrelay`` is ``llmrelay serve`` as
``gateway.py`` runs it (a virtual key with a budget and an rpm limit, the request log on);
``litellm`` is LiteLLM's proxy as ``gateway.py`` runs it (``--litellm``: its command).
Timing on a shared 2-CPU machine moves by 3x from run to run; these counts move by about 1%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import gateway as g
from _upstream import start_upstream


def _count(
    kind: str, n: int, stream: bool, conc: int, loop: str, litellm: str | None = None
) -> int:
    """Instructions a server process executed for ``n`` requests (plus start-up)."""
    with start_upstream(None) as up, tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        out = where / "callgrind.out"
        # Children too: LiteLLM's proxy serves from a worker process.
        valgrind = (
            "valgrind",
            "--tool=callgrind",
            "--trace-children=yes",
            f"--callgrind-out-file={out}.%p",
        )
        os.environ["PYTHONHASHSEED"] = "0"  # the same dict layouts in both runs
        with g._server(kind, up.base_url, None, where, litellm, loop, valgrind) as (url, key, _):
            body = g.STREAM_BODY if stream else g.BODY
            _, errors = asyncio.run(g._rps(url, key, n, conc, body))
        if errors:
            raise SystemExit(f"{kind}: {errors} requests were not answered 200")
        total = 0
        for f in where.glob("callgrind.out*"):
            for line in f.read_text(errors="replace").splitlines():
                if line.startswith(("totals:", "summary:")):
                    total += int(line.split()[1])
                    break
        return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default="bare,llmrelay")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--n1", type=int, default=100)
    ap.add_argument("--n2", type=int, default=600)
    ap.add_argument("--conc", type=int, default=8)
    ap.add_argument("--litellm", metavar="PATH", help="the litellm command (--servers litellm)")
    args = ap.parse_args(argv)
    per: dict[str, float] = {}
    for kind in args.servers.split(","):
        a = _count(kind, args.n1, args.stream, args.conc, args.loop, args.litellm)
        b = _count(kind, args.n2, args.stream, args.conc, args.loop, args.litellm)
        per[kind] = (b - a) / (args.n2 - args.n1)
        what = "streamed" if args.stream else "non-streamed"
        print(f"{kind:10} {per[kind]:>12,.0f} instructions per {what} request", flush=True)
    if "bare" in per and "llmrelay" in per:
        print(f"llmrelay / bare: {per['llmrelay'] / per['bare']:.2f}x")
    if "litellm" in per and "llmrelay" in per:
        print(f"litellm / llmrelay: {per['litellm'] / per['llmrelay']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
