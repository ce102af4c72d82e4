"""What the reliability layers cost (issue 3's speed targets), measured side by side in one run.

    python benchmarks/reliability.py                      # 3 rounds, concurrency 1 and 32
    python benchmarks/reliability.py --rounds 5 --pairs 24 --json reliability.json

Targets (issue 3): the layers (retries, circuit breakers, retry budget) add at most 10% to the
foundation's per-call CPU on the success path; a breaker that is open answers in under 20 µs.

(a) Success path. Two clients live in the same worker process:
    ``layers off`` = ``Engine(breakers=None, retry_budget=False, retry=RetryPolicy(max_retries=0))``
    and ``layers on`` = ``Engine()`` (the defaults: 2 retries, breakers, retry budget), both
    through ``Client(engine=...)`` (no catalog). Timed batches alternate off/on, on/off, ... so
    drift hits both alike; each round is a fresh worker process pinned to one CPU. Measured
    against the local upstream (``_upstream.py`` in its own process, pinned to another CPU) and
    against an in-process backend (a ``MockTransport`` that answers the upstream's fixed body and
    records nothing), where no network noise hides the layers' cost.
(b) Fail fast: a call on an OPEN breaker raising ``CircuitOpenError``, through ``Client.achat``
    (with ``Engine()`` and with ``Client()``'s full default layers) and through
    ``CircuitBreaker.acquire()`` alone.
(c) Half-open: ``acquire()`` admitting a probe (open -> half-open after the recovery timeout), a
    caller beyond the permitted probes being refused, a probe call through ``Client.achat`` next
    to a closed-breaker call, and 50 concurrent callers on a half-open breaker (exactly the
    permitted probes must reach the backend).

CPU is ``time.process_time()`` of the worker, wall ``time.perf_counter()``; the table shows the
median over every batch of every round and the best batch.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _clients import API_KEY, MESSAGES, NETWORK_ATTEMPTS, _guard, drive, versions
from _upstream import _COMMON, COMPLETION, TEXT, pick_cpus, raise_fd_limit, start_upstream

MODEL = "openai/gpt-4.1-mini"
LAYERS_BUDGET = 0.10
OPEN_BUDGET_US = 20.0

# ------------------------------------------------------------------------- worker side


def _fixed_transport(counting: bool = False, yield_first: bool = False) -> Any:
    """A MockTransport answering the upstream's fixed body. ``counting`` counts requests;
    ``yield_first`` gives the event loop one turn first, so concurrent calls overlap."""
    import orjson

    from llmrelay.transport.base import HttpResponse, MockTransport, Timeouts

    headers = {"content-type": "application/json"}
    for line in _COMMON.decode().strip().split("\r\n"):
        k, _, v = line.partition(": ")
        headers[k] = v
    answer = HttpResponse(200, headers, orjson.dumps(COMPLETION))

    class FixedTransport(MockTransport):
        def __init__(self) -> None:
            super().__init__(lambda _r: answer)
            self.count = 0

        async def send(self, request: Any, timeouts: Timeouts) -> HttpResponse:
            if counting:
                self.count += 1
            if yield_first:
                await asyncio.sleep(0)
            return answer

    return FixedTransport()


#: name -> Engine keyword arguments (``"R0"`` stands for ``RetryPolicy(max_retries=0)``).
CONFIGS: dict[str, dict[str, Any]] = {
    "off": {"breakers": None, "retry_budget": False, "retry": "R0"},
    "on": {},
    "retries only": {"breakers": None, "retry_budget": False},
    "breakers only": {"retry_budget": False, "retry": "R0"},
    "retry budget only": {"breakers": None, "retry": "R0"},
}


def _make_clients(names: list[str], transport_factory: Callable[[], Any]) -> dict[str, Any]:
    import llmrelay
    from llmrelay.core.retry import RetryPolicy

    out = {}
    for name in names:
        kw: dict[str, Any] = {
            k: RetryPolicy(max_retries=0) if v == "R0" else v for k, v in CONFIGS[name].items()
        }
        out[name] = llmrelay.Client(engine=llmrelay.Engine(transport_factory(), **kw))
    return out


def _caller(client: Any, base_url: str) -> Callable[[], Awaitable[str]]:
    kw = {"api_key": API_KEY, "base_url": base_url}

    async def call() -> str:
        return (await client.achat(MODEL, MESSAGES, **kw)).text  # type: ignore[no-any-return]

    return call


async def _batch(call: Callable[[], Awaitable[Any]], size: int, conc: int) -> tuple[float, float]:
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    await drive(call, size, conc)
    return (time.process_time() - c0) / size * 1e6, (time.perf_counter() - w0) / size * 1e6


async def success_path(
    label: str,
    base_url: str,
    factory: Callable[[], Any],
    names: list[str],
    concs: list[int],
    size: int,
    pairs: int,
) -> list[dict[str, Any]]:
    """Interleaved timed batches of each configuration (forward, then reverse order, ...)."""
    clients = _make_clients(names, factory)
    calls = {k: _caller(c, base_url) for k, c in clients.items()}
    out = []
    try:
        for k, call in calls.items():
            if await call() != TEXT:
                raise RuntimeError(f"layers {k}: wrong answer from the {label} backend")
        for conc in concs:
            for call in calls.values():
                await drive(call, max(200, 2 * conc), conc)
            cpu: dict[str, list[float]] = {k: [] for k in names}
            wall: dict[str, list[float]] = {k: [] for k in names}
            for i in range(pairs):
                for k in names if i % 2 == 0 else names[::-1]:
                    c, w = await _batch(calls[k], size, conc)
                    cpu[k].append(c)
                    wall[k].append(w)
            out.append({"backend": label, "concurrency": conc, "cpu": cpu, "wall": wall})
    finally:
        for c in clients.values():
            await c.aclose()
    return out


def _open(breaker: Any) -> None:
    """Trip an in-process breaker through its public API (failure_threshold server errors)."""
    from llmrelay.errors import ServerError

    while breaker.state != "open":
        breaker.on_failure(breaker.acquire(), ServerError("bench: upstream failed", status=500))


def _refused(fn: Callable[[], Any], n: int) -> Callable[[], Awaitable[None]]:
    """A batch of ``n`` calls of ``fn()`` (sync, or returning an awaitable), each of which must
    raise CircuitOpenError."""
    from llmrelay.errors import CircuitOpenError

    is_async = inspect.iscoroutinefunction(fn)

    async def batch() -> None:
        for _ in range(n):
            try:
                if is_async:
                    await fn()
                else:
                    fn()
            except CircuitOpenError:
                pass
            else:
                raise RuntimeError("the breaker let a call through")

    return batch


async def _interleaved(
    batches: dict[str, tuple[Callable[[], Awaitable[None]], int]], rounds: int
) -> dict[str, dict[str, list[float]]]:
    """CPU and wall µs per call of each named batch, the batches interleaved."""
    out: dict[str, dict[str, list[float]]] = {k: {"cpu": [], "wall": []} for k in batches}
    names = list(batches)
    for name in names:
        await batches[name][0]()  # warm up
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            batch, n = batches[name]
            gc.collect()
            c0, w0 = time.process_time(), time.perf_counter()
            await batch()
            out[name]["cpu"].append((time.process_time() - c0) / n * 1e6)
            out[name]["wall"].append((time.perf_counter() - w0) / n * 1e6)
    return out


async def fail_fast(base_url: str, n: int, batches: int) -> dict[str, dict[str, list[float]]]:
    import llmrelay

    clients = {
        "Client(engine=Engine()).achat": llmrelay.Client(engine=llmrelay.Engine()),
        "Client().achat (default layers)": llmrelay.Client(),
    }
    work: dict[str, tuple[Callable[[], Awaitable[None]], int]] = {}
    breakers = []
    try:
        for name, client in clients.items():
            call = _caller(client, base_url)
            await call()  # creates this deployment's breaker
            assert client.engine.breakers is not None
            ((_, breaker),) = client.engine.breakers.items()
            _open(breaker)
            breakers.append(breaker)
            work[name] = (_refused(call, n), n)
        b = llmrelay.CircuitBreaker(5, 30)
        _open(b)
        breakers.append(b)
        work["CircuitBreaker.acquire()"] = (_refused(b.acquire, n * 10), n * 10)
        out = await _interleaved(work, batches)
        if any(b.state != "open" for b in breakers):
            raise RuntimeError("a breaker closed during the measurement")
    finally:
        for client in clients.values():
            await client.aclose()
    return out


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _ns_samples(fn: Callable[[], Any], after: Callable[[Any], None], n: int) -> list[float]:
    """µs per ``fn()`` call, one sample per call (``after`` runs untimed)."""
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        r = fn()
        out.append((clock() - t0) / 1e3)
        after(r)
    return out


async def half_open(n: int, batches: int) -> dict[str, Any]:
    import llmrelay
    from llmrelay.errors import CircuitOpenError, ServerError
    from llmrelay.reliability.breaker import BreakerRegistry

    out: dict[str, Any] = {}
    clock = FakeClock()
    b = llmrelay.CircuitBreaker(5, 30, clock=clock)
    _open(b)
    err = ServerError("bench", status=500)

    def probe() -> Any:
        clock.t += 31  # past the recovery timeout: the next acquire() is a probe
        return b.acquire()

    def reopen(permit: Any) -> None:
        assert permit.probe
        assert b.state == "half-open"
        b.on_failure(permit, err)  # the probe failed: open again

    out["acquire() admits a probe (open -> half-open)"] = {
        "samples": _ns_samples(probe, reopen, n * batches)
    }
    clock.t += 31
    taken = b.acquire()  # the one probe is in flight: every other caller is refused
    refuse = {"acquire() refuses a caller beyond the probes": (_refused(b.acquire, n * 10), n * 10)}
    out |= await _interleaved(refuse, batches)
    b.release(taken)

    # A probe call through the engine (in-process backend) next to a closed-breaker call.
    clock2 = FakeClock()
    reg = BreakerRegistry(failure_threshold=5, recovery_timeout=30.0, clock=clock2)
    client = llmrelay.Client(engine=llmrelay.Engine(_fixed_transport(), breakers=reg))
    call = _caller(client, "http://127.0.0.1:9/v1")
    await call()
    ((_, eb),) = reg.items()
    probe_cpu, closed_cpu = [], []
    for _ in range(200):
        await call()
    for i in range(n * batches):
        _open(eb)
        clock2.t += 31
        c0 = time.process_time()
        await call()  # admitted as the probe; its success closes the breaker
        c1 = time.process_time()
        await call()  # closed path, timed the same way
        c2 = time.process_time()
        if eb.state != "closed":
            raise RuntimeError(f"the probe did not close the breaker (state {eb.state})")
        probe_cpu.append((c1 - c0) * 1e6)
        closed_cpu.append((c2 - c1) * 1e6)
        if i % 1000 == 999:
            gc.collect()
    await client.aclose()
    out["probe call via Client.achat (closes the breaker)"] = {"samples": probe_cpu}
    out["closed-breaker call via Client.achat (same loop)"] = {"samples": closed_cpu}

    # 50 concurrent callers on a half-open breaker: exactly the permitted probes get through.
    storms = []
    for probes in (1, 3):
        clock3 = FakeClock()
        reg3 = BreakerRegistry(
            failure_threshold=5, recovery_timeout=30.0, half_open_max_calls=probes, clock=clock3
        )
        transport = _fixed_transport(counting=True, yield_first=True)
        client = llmrelay.Client(engine=llmrelay.Engine(transport, breakers=reg3))
        call = _caller(client, "http://127.0.0.1:9/v1")
        await call()
        ((_, sb),) = reg3.items()
        _open(sb)
        clock3.t += 31
        transport.count = 0
        results = await asyncio.gather(*(call() for _ in range(50)), return_exceptions=True)
        refused = sum(isinstance(r, CircuitOpenError) for r in results)
        ok = sum(r == TEXT for r in results)
        storms.append(
            {
                "probes": probes,
                "callers": 50,
                "reached": transport.count,
                "ok": ok,
                "refused": refused,
                "state_after": sb.state,
            }
        )
        await client.aclose()
    out["storm"] = storms
    return out


async def worker(base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    concs = [int(c) for c in args.concurrency.split(",")]
    pairs = args.pairs
    rows = await success_path(
        "local upstream", base_url, lambda: None, ["off", "on"], concs, args.calls, pairs
    )
    rows += await success_path(
        "in-process",
        "http://127.0.0.1:9/v1",
        _fixed_transport,
        list(CONFIGS),
        [1],
        args.inproc_calls,
        args.inproc_pairs,
    )
    return {
        "success": rows,
        "fail_fast": await fail_fast(base_url, args.open_calls, args.batches),
        "half_open": await half_open(args.open_calls // 4, args.batches),
        "network_attempts": NETWORK_ATTEMPTS,
    }


# ------------------------------------------------------------------------- parent side


def _med_best(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), min(values)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    # (backend, concurrency) -> configuration -> batches, in the order they were measured
    cpu: dict[tuple[str, int], dict[str, list[float]]] = {}
    wall: dict[tuple[str, int], dict[str, list[float]]] = {}
    paired: dict[tuple[str, int, str], list[float]] = {}
    for r in rounds:
        for row in r["success"]:
            at = (row["backend"], row["concurrency"])
            for k, values in row["cpu"].items():
                cpu.setdefault(at, {}).setdefault(k, []).extend(values)
                wall.setdefault(at, {}).setdefault(k, []).extend(row["wall"][k])
                paired.setdefault((*at, k), []).extend(
                    v - o for o, v in zip(row["cpu"]["off"], values, strict=True)
                )
    rows_a = []
    for at, by_cfg in cpu.items():
        off_med, off_best = _med_best(by_cfg["off"])
        for k, values in by_cfg.items():
            med, best = _med_best(values)
            rows_a.append(
                {
                    "backend": at[0],
                    "concurrency": at[1],
                    "layers": k,
                    "cpu_us": med,
                    "cpu_best_us": best,
                    "wall_us": statistics.median(wall[at][k]),
                    "delta_us": med - off_med,
                    "delta_best_us": best - off_best,
                    "delta_paired_us": statistics.median(paired[(*at, k)]),
                    "pct": (med - off_med) / off_med * 100,
                    "pct_best": (best - off_best) / off_best * 100,
                    "batches": len(values),
                }
            )
    rows_b = []
    for name in rounds[0]["fail_fast"]:
        fc = [v for r in rounds for v in r["fail_fast"][name]["cpu"]]
        fw = [v for r in rounds for v in r["fail_fast"][name]["wall"]]
        rows_b.append(
            {
                "what": name,
                "cpu_us": statistics.median(fc),
                "cpu_best_us": min(fc),
                "wall_us": statistics.median(fw),
                "wall_best_us": min(fw),
            }
        )
    rows_c = []
    for name, v in rounds[0]["half_open"].items():
        if name == "storm":
            continue
        if "samples" in v:
            xs = sorted(x for r in rounds for x in r["half_open"][name]["samples"])
            rows_c.append(
                {
                    "what": name,
                    "kind": "per call",
                    "median_us": statistics.median(xs),
                    "p10_us": xs[len(xs) // 10],
                    "p90_us": xs[len(xs) * 9 // 10],
                    "n": len(xs),
                }
            )
        else:
            hc = [x for r in rounds for x in r["half_open"][name]["cpu"]]
            rows_c.append(
                {
                    "what": name,
                    "kind": "batches",
                    "median_us": statistics.median(hc),
                    "best_us": min(hc),
                    "n": len(hc),
                }
            )
    storms = [st for r in rounds for st in r["half_open"]["storm"]]
    return {"success": rows_a, "fail_fast": rows_b, "half_open": rows_c, "storms": storms}


def print_report(s: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"(a) success path: client CPU per call, layers off vs on ({args.rounds} rounds x "
        f"{args.pairs} interleaved batch pairs on the upstream, {args.inproc_pairs} in-process)"
    )
    head = (
        f"{'backend':<16}{'conc':>5}  {'layers':<19}{'CPU µs':>8}{'best':>8}{'Δ µs':>8}"
        f"{'Δ best':>8}{'Δ pair':>8}{'x off':>8}{'best':>8}{'wall µs':>9}"
    )
    print(head)
    print("-" * len(head))
    last = None
    for r in s["success"]:
        at = (r["backend"], r["concurrency"])
        if last is not None and at != last:
            print()
        last = at
        print(
            f"{r['backend']:<16}{r['concurrency']:>5}  {r['layers']:<19}{r['cpu_us']:>8.1f}"
            f"{r['cpu_best_us']:>8.1f}{r['delta_us']:>+8.1f}{r['delta_best_us']:>+8.1f}"
            f"{r['delta_paired_us']:>+8.1f}{1 + r['pct'] / 100:>7.3f}x"
            f"{1 + r['pct_best'] / 100:>7.3f}x{r['wall_us']:>9.0f}"
        )
    print("  off = Engine(breakers=None, retry_budget=False, retry=RetryPolicy(max_retries=0));")
    print("  on = Engine() (2 retries, breakers, retry budget); the others turn on one layer.")
    print("  Δ = minus off: of the medians, of the best batches, and the median of the")
    print("  differences between batches measured next to each other. Budget: on <= 1.10x off.")
    print()
    print("(b) fail fast on an OPEN breaker (CircuitOpenError), µs per call")
    head = f"{'path':<40}{'CPU µs':>9}{'best':>8}{'wall µs':>9}{'best':>8}{'x budget':>10}"
    print(head)
    print("-" * len(head))
    for r in s["fail_fast"]:
        print(
            f"{r['what']:<40}{r['cpu_us']:>9.2f}{r['cpu_best_us']:>8.2f}{r['wall_us']:>9.2f}"
            f"{r['wall_best_us']:>8.2f}{r['wall_us'] / OPEN_BUDGET_US:>9.2f}x"
        )
    print(f"  budget: under {OPEN_BUDGET_US:g} µs")
    print()
    print("(c) half-open probe admission, µs per call")
    head = f"{'what':<52}{'median':>8}{'p10/best':>10}{'p90':>8}{'samples':>9}"
    print(head)
    print("-" * len(head))
    for r in s["half_open"]:
        low = r.get("p10_us", r.get("best_us", float("nan")))
        high = f"{r['p90_us']:>8.2f}" if "p90_us" in r else f"{'-':>8}"
        print(f"{r['what']:<52}{r['median_us']:>8.2f}{low:>10.2f}{high}{r['n']:>9}")
    print("  (per-call samples: perf_counter_ns wall for acquire(); process_time CPU for calls)")
    for st in s["storms"][: len(s["storms"]) // args.rounds or None]:
        print(
            f"  {st['callers']} concurrent callers on a half-open breaker "
            f"(half_open_max_calls={st['probes']}): {st['reached']} reached the backend, "
            f"{st['ok']} answered, {st['refused']} refused with CircuitOpenError; "
            f"breaker {st['state_after']} after"
        )
    bad = [st for st in s["storms"] if st["reached"] != st["probes"]]
    print("  probe bound held in every round" if not bad else f"  PROBE BOUND BROKEN: {bad}")


def layers_verdict(r: dict[str, Any]) -> str:
    """Met when the median and the best batch both stay within the budget, not met when both
    exceed it; otherwise the noise of the machine decides, and the row says so."""
    limit = LAYERS_BUDGET * 100
    within = [r["pct"] <= limit, r["pct_best"] <= limit]
    if all(within):
        return "met"
    if not any(within):
        return "NOT met"
    return "unclear (noise)"


def run_round(base_url: str, cpu: int | None, argv: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", base_url, *argv]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("worker failed:\n" + (proc.stderr or proc.stdout)[-3000:])
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="reliability layers: success-path CPU, open-breaker fail fast, half-open",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("--rounds", type=int, default=3, help="fresh worker processes")
    ap.add_argument("--pairs", type=int, default=16, help="batch pairs per round (upstream)")
    ap.add_argument("--calls", type=int, default=500, help="calls per batch (local upstream)")
    ap.add_argument("--inproc-pairs", type=int, default=40, help="batch pairs per round")
    ap.add_argument("--inproc-calls", type=int, default=500, help="calls per in-process batch")
    ap.add_argument("--concurrency", default="1,32", help="for the local upstream, e.g. 1,32")
    ap.add_argument("--open-calls", type=int, default=500, help="calls per fail-fast batch")
    ap.add_argument("--batches", type=int, default=30, help="fail-fast batches per round")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    ap.add_argument("--worker", metavar="BASE_URL", help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        if args.cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {args.cpu})
        raise_fd_limit()
        sys.addaudithook(_guard)
        print(json.dumps(asyncio.run(worker(args.worker, args))), flush=True)
        return 0

    fwd = ["--pairs", str(args.pairs), "--calls", str(args.calls)]
    fwd += ["--inproc-pairs", str(args.inproc_pairs)]
    fwd += ["--inproc-calls", str(args.inproc_calls), "--concurrency", args.concurrency]
    fwd += ["--open-calls", str(args.open_calls), "--batches", str(args.batches)]
    up_cpu, client_cpu = pick_cpus(not args.no_pin)
    info = versions()
    print(
        f"reliability benchmark: {args.rounds} rounds; local upstream concurrency "
        f"{args.concurrency}, {args.calls} calls per batch; in-process {args.inproc_calls}"
    )
    shown = ("python", "llmrelay", "aiohttp")
    print("versions:", ", ".join(f"{k} {v}" for k, v in info.items() if k in shown))
    pin = "not pinned" if client_cpu is None else f"client on CPU {client_cpu}, upstream {up_cpu}"
    print(f"CPUs: {pin}\n")
    started = time.perf_counter()
    rounds = []
    with start_upstream(up_cpu) as up:
        for i in range(args.rounds):
            t0 = time.perf_counter()
            rounds.append(run_round(up.base_url, client_cpu, fwd))
            print(
                f"  round {i + 1}/{args.rounds} ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    s = summarize(rounds)
    print_report(s, args)
    leaks = sorted({a for r in rounds for a in r["network_attempts"]})
    print("\nnetwork attempts outside 127.0.0.1:", ", ".join(leaks) if leaks else "none")
    print(f"\nlayers budget (on <= {1 + LAYERS_BUDGET:.2f}x off), per row:")
    for r in s["success"]:
        if r["layers"] == "on":
            r["verdict"] = layers_verdict(r)
            print(
                f"  {r['backend']:<15} conc {r['concurrency']:>3}: {r['verdict']:<20} median "
                f"{r['pct']:+.1f}%, best {r['pct_best']:+.1f}%, paired "
                f"{r['delta_paired_us'] / (r['cpu_us'] - r['delta_us']) * 100:+.1f}% "
                f"({r['delta_paired_us']:+.1f} µs)"
            )
    for r in s["fail_fast"]:
        r["verdict"] = "met" if r["wall_us"] < OPEN_BUDGET_US else "NOT met"
    print(f"open breaker under {OPEN_BUDGET_US:g} µs (median wall per call):")
    for r in s["fail_fast"]:
        print(
            f"  {r['what']:<34} {r['verdict']:<8} {r['wall_us']:.1f} µs "
            f"(best {r['wall_best_us']:.1f})"
        )
    print(f"(total {time.perf_counter() - started:.0f} s)")
    if args.json:
        doc = {"benchmark": "reliability", "args": vars(args), "versions": info, **s}
        doc["raw"] = rounds
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
