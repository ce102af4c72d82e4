"""Client CPU and wall time per chat call: llmrelay against the floor and its peers, in one run.

    python benchmarks/overhead.py                      # 2,000 calls, concurrency 1 and 32
    python benchmarks/overhead.py --streaming          # a streamed call (~30 SSE events)
    python benchmarks/overhead.py --calls 5000 --rounds 5 --json out.json
    python benchmarks/overhead.py --api responses      # the OpenAI Responses API instead

A local OpenAI-compatible upstream (``_upstream.py``) runs in its own process, pinned to one CPU;
each client runs in a fresh worker process pinned to another (``_clients.py``), warms up, then
makes ``--calls`` calls at each concurrency. CPU is ``time.process_time()`` of the client process
(all its threads), wall is ``time.perf_counter()``, both divided by the number of calls. Rounds
are interleaved (every client once, then again) and the median round is reported. Ratios are
against raw aiohttp, the floor. A peer that is not installed is reported as unavailable.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from _clients import CLIENTS, run_worker, versions
from _upstream import pick_cpus, start_upstream

FLOOR = "aiohttp"


def parse_list(value: str) -> list[int]:
    out = [int(v) for v in value.split(",") if v.strip()]
    if not out or any(v < 1 for v in out):
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,32, not {value!r}")
    return out


def parse_clients(ap: argparse.ArgumentParser, value: str) -> list[str]:
    """The ``--clients`` names; an unknown one is a usage error."""
    clients = [c.strip() for c in value.split(",") if c.strip()]
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown:
        ap.error(f"unknown client(s) {', '.join(unknown)}; choose from {', '.join(CLIENTS)}")
    return clients


def stats(results: list[dict[str, Any]], conc: int) -> dict[str, Any]:
    """Median and best (minimum) over every timed batch of every round at one concurrency."""
    cpu = [
        v for r in results for m in r["results"] if m["concurrency"] == conc for v in m["cpu_us"]
    ]
    wall = [
        v for r in results for m in r["results"] if m["concurrency"] == conc for v in m["wall_us"]
    ]
    return {
        "cpu_us": statistics.median(cpu),
        "cpu_best_us": min(cpu),
        "wall_us": statistics.median(wall),
        "wall_best_us": min(wall),
        "batches": len(cpu),
    }


def summarize(
    runs: dict[str, list[dict[str, Any]]], concs: list[int], floor_name: str = FLOOR
) -> list[dict[str, Any]]:
    """One row per (concurrency, client), with ratios to the floor at the same concurrency."""
    rows: list[dict[str, Any]] = []
    for conc in concs:
        floor: dict[str, Any] | None = None
        for client, results in runs.items():
            ok = [r for r in results if r["status"] == "ok"]
            if not ok:
                rows.append(
                    {
                        "client": client,
                        "concurrency": conc,
                        "status": results[0]["status"] if results else "skipped",
                        "reason": results[0].get("reason", "") if results else "",
                    }
                )
                continue
            row = {"client": client, "concurrency": conc, "status": "ok", **stats(ok, conc)}
            row["network_attempts"] = sorted({a for r in ok for a in r["network_attempts"]})
            if client == floor_name:
                floor = row
            if floor is not None:
                row["cpu_ratio"] = row["cpu_us"] / floor["cpu_us"]
                row["cpu_best_ratio"] = row["cpu_best_us"] / floor["cpu_best_us"]
                row["wall_ratio"] = row["wall_us"] / floor["wall_us"]
            rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    print(title)
    head = (
        f"{'client':<22}{'conc':>5}{'CPU µs/call':>13}{'best':>8}{'wall µs/call':>14}"
        f"{'CPU x floor':>13}{'best x floor':>14}{'wall x floor':>14}"
    )
    print(head)
    print("-" * len(head))
    last = None
    nan = float("nan")
    for r in rows:
        if last is not None and r["concurrency"] != last:
            print()
        last = r["concurrency"]
        if r["status"] != "ok":
            print(f"{r['client']:<22}{r['concurrency']:>5}  {r['status']}: {r['reason']}")
            continue
        print(
            f"{r['client']:<22}{r['concurrency']:>5}{r['cpu_us']:>13,.0f}{r['cpu_best_us']:>8,.0f}"
            f"{r['wall_us']:>14,.0f}{r.get('cpu_ratio', nan):>12.2f}x"
            f"{r.get('cpu_best_ratio', nan):>13.2f}x{r.get('wall_ratio', nan):>13.2f}x"
        )
    print()
    for name in dict.fromkeys(r["client"] for r in rows):
        print(f"  {name:<21} {CLIENTS[name]}")
    leaks = sorted({a for r in rows for a in r.get("network_attempts", [])})
    print()
    print("network attempts outside 127.0.0.1:", ", ".join(leaks) if leaks else "none")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="llmrelay vs raw aiohttp, the openai SDK and LiteLLM: client CPU per call",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("--calls", type=int, default=2000, help="measured calls per concurrency")
    ap.add_argument("--concurrency", type=parse_list, default=[1, 32], help="e.g. 1,32")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median shown)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up calls per concurrency")
    ap.add_argument("--batches", type=int, default=5, help="timed batches per round")
    ap.add_argument("--streaming", action="store_true", help="measure a streamed call")
    ap.add_argument(
        "--api",
        choices=("chat", "responses"),
        default="chat",
        help="responses: llmrelay calls with api='responses' against raw aiohttp on "
        "/v1/responses (the openai and litellm clients are left out: they speak chat here)",
    )
    ap.add_argument(
        "--clients",
        default=",".join(c for c in CLIENTS if c != "aiohttp-responses"),
        help=f"comma-separated subset of: {', '.join(CLIENTS)}",
    )
    ap.add_argument(
        "--llmrelay-kwargs",
        default="{}",
        help="JSON keyword arguments added to every llmrelay call, e.g. '{\"timeout\": 30}'",
    )
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = ap.parse_args(argv)

    clients = parse_clients(ap, args.clients)
    floor = FLOOR
    extra = json.loads(args.llmrelay_kwargs)
    if args.api == "responses":
        floor = "aiohttp-responses"
        clients = [c for c in clients if c.startswith("llmrelay")]
        extra = {**extra, "api": "responses"}
    if floor not in clients:
        clients.insert(0, floor)
    up_cpu, client_cpu = pick_cpus(not args.no_pin)
    mode = ("streamed" if args.streaming else "non-streamed") + (
        " Responses" if args.api == "responses" else ""
    )
    info = versions()
    print(
        f"llmrelay overhead benchmark: {mode} chat calls, {args.calls} calls x "
        f"{args.rounds} rounds, concurrency {','.join(map(str, args.concurrency))}"
    )
    print("versions:", ", ".join(f"{k} {v}" for k, v in info.items()))
    pin = "not pinned" if client_cpu is None else f"client on CPU {client_cpu}, upstream {up_cpu}"
    print(f"CPUs: {pin}")
    print()

    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    started = time.perf_counter()
    with start_upstream(up_cpu) as up:
        for rnd in range(args.rounds):
            for client in clients:
                if runs[client] and runs[client][-1]["status"] == "unavailable":
                    continue
                t0 = time.perf_counter()
                res = run_worker(
                    client,
                    up.base_url,
                    args.concurrency,
                    args.calls,
                    args.warmup,
                    args.streaming,
                    client_cpu,
                    extra if client.startswith("llmrelay") else None,
                    args.batches,
                )
                runs[client].append(res)
                print(
                    f"  round {rnd + 1}/{args.rounds} {client:<18} {res['status']:<12}"
                    f"({time.perf_counter() - t0:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    rows = summarize(runs, args.concurrency, floor)
    print()
    print_table(
        rows,
        f"Client cost per {mode} call (median and best of {args.rounds} rounds x "
        f"{args.batches} batches):",
    )
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    if args.json:
        doc = {
            "benchmark": "overhead",
            "mode": mode,
            "calls": args.calls,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "llmrelay_kwargs": extra,
            "versions": info,
            "cpus": {"client": client_cpu, "upstream": up_cpu},
            "clients": CLIENTS,
            "rows": rows,
            "raw": runs,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"results written to {args.json}")
    failed = [r for r in rows if r["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
