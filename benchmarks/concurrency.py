"""Per-call client CPU of llmrelay from 1 to 1,000 concurrent calls: it should stay flat.

    python benchmarks/concurrency.py                       # concurrency 1,10,100,1000
    python benchmarks/concurrency.py --calls 10000 --json conc.json
    python benchmarks/concurrency.py --clients llmrelay,aiohttp,openai

Same set-up as ``overhead.py`` (upstream in its own pinned process, each client in a fresh
pinned worker, interleaved rounds, median shown). Before measuring a level, the worker makes at
least twice as many warm-up calls as there are concurrent calls, so the pool already holds the
connections (1,000 at the top level) and the numbers show steady state, not connection set-up.
The "x at 1" column is CPU per call divided by the same client's CPU per call at the lowest
level: a pool or a lock that scans every connection or waiter would make it grow.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from _clients import CLIENTS, run_worker, versions
from _upstream import pick_cpus, start_upstream
from overhead import parse_clients, parse_list, stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="llmrelay per-call CPU at growing concurrency",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("--calls", type=int, default=5000, help="measured calls per level")
    ap.add_argument("--concurrency", type=parse_list, default=[1, 10, 100, 1000])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median shown)")
    ap.add_argument("--warmup", type=int, default=500, help="minimum warm-up calls per level")
    ap.add_argument("--batches", type=int, default=5, help="timed batches per round")
    ap.add_argument("--clients", default="llmrelay,aiohttp", help=f"from: {', '.join(CLIENTS)}")
    ap.add_argument("--streaming", action="store_true", help="measure a streamed call")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = ap.parse_args(argv)

    clients = parse_clients(ap, args.clients)
    up_cpu, client_cpu = pick_cpus(not args.no_pin)
    info = versions()
    print(
        f"concurrency benchmark: {args.calls} calls per level x {args.rounds} rounds, "
        f"levels {','.join(map(str, args.concurrency))}"
    )
    print("versions:", ", ".join(f"{k} {v}" for k, v in info.items()))
    print()

    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    with start_upstream(up_cpu) as up:
        for rnd in range(args.rounds):
            for client in clients:
                res = run_worker(
                    client,
                    up.base_url,
                    args.concurrency,
                    args.calls,
                    args.warmup,
                    args.streaming,
                    client_cpu,
                    None,
                    args.batches,
                )
                runs[client].append(res)
                print(
                    f"  round {rnd + 1}/{args.rounds} {client:<18} {res['status']}",
                    file=sys.stderr,
                    flush=True,
                )

    rows: list[dict[str, Any]] = []
    head = f"{'client':<22}{'conc':>6}{'CPU µs/call':>13}{'best':>8}"
    head += f"{'x at ' + str(args.concurrency[0]):>10}{'best x':>8}"
    head += f"{'µs wall/call':>14}"
    print(head)
    print("-" * len(head))
    for client in clients:
        ok = [r for r in runs[client] if r["status"] == "ok"]
        if not ok:
            first = runs[client][0]
            print(f"{client:<22}  {first['status']}: {first.get('reason', '')}")
            rows.append({"client": client, "status": first["status"]})
            continue
        base_cpu: float | None = None
        base_best: float | None = None
        for conc in args.concurrency:
            st = stats(ok, conc)
            cpu, wall = st["cpu_us"], st["wall_us"]
            base_cpu = base_cpu or cpu
            base_best = base_best or st["cpu_best_us"]
            rows.append(
                {
                    "client": client,
                    "status": "ok",
                    "concurrency": conc,
                    "cpu_vs_lowest": cpu / base_cpu,
                    **st,
                }
            )
            print(
                f"{client:<22}{conc:>6}{cpu:>13,.0f}{st['cpu_best_us']:>8,.0f}"
                f"{cpu / base_cpu:>9.2f}x{st['cpu_best_us'] / base_best:>7.2f}x{wall:>14,.0f}"
            )
        print()
    if args.json:
        doc = {"benchmark": "concurrency", "calls": args.calls, "rounds": args.rounds}
        doc |= {"versions": info, "rows": rows, "raw": runs}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"results written to {args.json}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
