"""The gateway side by side with a bare aiohttp pass-through proxy and LiteLLM's proxy.

    python benchmarks/gateway.py [--requests 20000] [--json out.json] [--rss-requests 100000]
        [--rounds 5]

One run starts the fast local upstream (``_upstream.py``) and every server on the same CPU
(``taskset``-style affinity: the servers on one core, measured one at a time; the upstream and
the load generator on the other), then measures, in each of ``--rounds`` interleaved rounds
(each metric reported is the median of the rounds; a burst of load from other programs then
spoils one round of each server, not one server's whole result):

- requests/s, non-streamed, 32 connections (``--requests`` calls);
- added latency at concurrency 1: p50 and p99 of a call through the server minus p50 of the
  same call straight to the upstream;
- streamed: time to first byte added (p50, concurrency 1) and requests/s at 32 connections;
- CPU time of the server process per non-streamed and per streamed request (user + system, from
  ``/proc``): it moves much less than requests/s when other programs share the machine;
- RSS of the server process after ``--rss-requests`` calls (and after the first 10,000; not for
  LiteLLM, which would take an hour).

Servers: ``bare`` (parse the request JSON, forward it with one aiohttp session, parse the
answer, return it: the floor; a stream's bytes are passed on unparsed), ``bare-parse`` (the
same, but each streamed event's JSON is parsed and written again, as the issue's "parse the
answer, return it" reads for a stream; only when named in ``--servers``, and reported beside
``bare``, never instead of it), ``llmrelay`` (``llmrelay serve`` with a virtual key carrying a
budget and an rpm limit, and the request log on), ``llmrelay-nolog`` (the same without the
request log, only when named in ``--servers``), ``llmrelay-gc-python`` (the same as ``llmrelay``
with ``[server] gc = "python"``: the interpreter's collector settings; only when named),
``litellm`` (LiteLLM's proxy, ``litellm
--config`` with a generated config naming the same upstream, a master key, no database; ``make
bench`` installs ``litellm[proxy]``; ``--litellm PATH`` names another installation's
``litellm`` command, e.g. one in its own virtualenv, since its pins can clash with the test
dependencies). LiteLLM gets ``--litellm-requests`` calls (it is ~50x slower).
Ratios are printed against ``bare`` and ``litellm``. ``--loop uvloop`` runs ``llmrelay serve``
(``[server] loop``) and the bare proxy alike on uvloop. ``--stream-events K``: the upstream
streams K events in all (at least 4; default 36, a ~30-word answer), to see how the streamed
ratios move with an answer's length.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _upstream import pick_cpus, raise_fd_limit, start_upstream

MODEL = "openai/gpt-4.1-mini"
BODY = orjson.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "How do I pool connections?"}]}
)
STREAM_BODY = orjson.dumps(
    {
        "model": MODEL,
        "messages": [{"role": "user", "content": "How do I pool connections?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
)
ADMIN = "sk-admin-bench"


# --------------------------------------------------------------------------- the bare proxy


def bare_proxy(
    port: int, upstream: str, loop_name: str = "asyncio", parse_stream: bool = False
) -> None:
    """The floor: parse, forward, parse, return -- nothing else. A stream's bytes are passed
    on as they come; with ``parse_stream`` (``bare-parse``) each event's JSON is parsed and
    written again, one write per read, as "parse the answer, return it" reads for a stream."""
    from aiohttp import web

    loop = None
    if loop_name == "uvloop":  # the same event loop as the server it is compared with
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)

    async def make() -> web.Application:
        app = web.Application()
        session: dict[str, aiohttp.ClientSession] = {}

        async def start(_: web.Application) -> None:
            session["s"] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
            )

        async def stop(_: web.Application) -> None:
            await session["s"].close()

        async def handle(request: web.Request) -> web.StreamResponse:
            body = orjson.loads(await request.read())
            body["model"] = "gpt-4.1-mini"
            headers = {"authorization": "Bearer sk-upstream", "content-type": "application/json"}
            async with session["s"].post(
                upstream + "/chat/completions", data=orjson.dumps(body), headers=headers
            ) as r:
                if body.get("stream"):
                    out = web.StreamResponse(headers={"content-type": "text/event-stream"})
                    await out.prepare(request)
                    if parse_stream:
                        await _parsed_events(r.content.iter_any(), out)
                    else:
                        async for piece in r.content.iter_any():
                            await out.write(piece)
                    await out.write_eof()
                    return out
                answer = orjson.loads(await r.read())
            return web.Response(body=orjson.dumps(answer), content_type="application/json")

        app.on_startup.append(start)
        app.on_cleanup.append(stop)
        app.router.add_post("/v1/chat/completions", handle)
        app.router.add_get("/health/live", lambda _: web.json_response({"ok": True}))
        return app

    web.run_app(make(), host="127.0.0.1", port=port, print=None, access_log=None, loop=loop)


async def _parsed_events(pieces: Any, out: Any) -> None:
    """Each ``data:`` event of the stream parsed (JSON) and rendered again; what one read
    delivered goes out in one write."""
    held = b""
    async for piece in pieces:
        events = (held + piece).split(b"\n\n")
        held = events.pop()
        frames = []
        for ev in events:
            data = ev[6:] if ev.startswith(b"data: ") else b""
            if data and data != b"[DONE]":
                frames.append(b"data: " + orjson.dumps(orjson.loads(data)) + b"\n\n")
            else:
                frames.append(ev + b"\n\n")
        if frames:
            await out.write(b"".join(frames))


# --------------------------------------------------------------------------- servers


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LITELLM_KEY = "sk-bench-" + "0123456789abcdef" * 3


def litellm_command(given: str | None) -> str:
    """The ``litellm`` command: ``given``, else the one beside this Python, else on PATH."""
    if given:
        return given
    here = Path(sys.executable).parent / "litellm"
    if here.exists():
        return str(here)
    found = shutil.which("litellm")
    if found is None:
        raise FileNotFoundError(
            "litellm is not installed: `pip install 'litellm[proxy]'` (or `make bench`), or "
            "pass --litellm PATH"
        )
    return found


@contextlib.contextmanager
def _server(
    kind: str,
    upstream: str,
    cpu: int | None,
    tmp: Path,
    litellm: str | None = None,
    loop: str = "asyncio",
    prefix: tuple[str, ...] = (),
) -> Iterator[tuple[str, str, int]]:
    """Start one server (its command after ``prefix``, e.g. valgrind's); yield (base URL, key
    to send, pid)."""
    port = _free_port()
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("LLMRELAY_") or k.endswith(("_API_KEY", "_BASE_URL")):
            env.pop(k)
    key = "sk-none"
    if kind in ("bare", "bare-parse"):
        cmd = [sys.executable, __file__, "--bare-proxy", str(port), "--upstream", upstream]
        cmd += ["--loop", loop] + (["--parse-stream"] if kind == "bare-parse" else [])
    elif kind in ("llmrelay", "llmrelay-nolog", "llmrelay-gc-python"):
        # ``llmrelay-nolog``: the same without the request log, to show what the log costs;
        # ``llmrelay-gc-python``: with the interpreter's garbage-collector settings.
        log = "false" if kind == "llmrelay-nolog" else "true"
        gc = "python" if kind == "llmrelay-gc-python" else "tuned"
        config = tmp / "llmrelay.toml"
        config.write_text(
            f'[server]\nkey_store = "{tmp / "keys.db"}"\nlog = {log}\nloop = "{loop}"\n'
            f'gc = "{gc}"\n\n[log]\npath = "{tmp / "requests.db"}"\n'
        )
        env.update(
            LLMRELAY_CONFIG=str(config),
            LLMRELAY_ADMIN_KEY=ADMIN,
            OPENAI_BASE_URL=upstream,
            OPENAI_API_KEY="sk-upstream",
        )
        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "llmrelay.cli",
                "keys",
                "--json",
                "create",
                "--name",
                "bench",
                "--budget-usd",
                "1000000",
                "--rpm",
                "100000000",
            ],
            env=env,
            capture_output=True,
            check=True,
        )
        key = orjson.loads(made.stdout)["key"]
        cmd = [sys.executable, "-m", "llmrelay.cli", "serve", "--port", str(port)]
    else:
        config = tmp / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            f"  - model_name: {MODEL}\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4.1-mini\n"
            f"      api_base: {upstream}\n"
            "      api_key: sk-upstream\n"
            "general_settings:\n"
            f"  master_key: {LITELLM_KEY}\n"  # it refuses to start without one
        )
        # The bundled price map, not a download at start (the benchmark runs offline).
        env.update(
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS="True",
            LITELLM_LOCAL_BLOG_POSTS="True",
            LITELLM_LOG="ERROR",
        )
        key = LITELLM_KEY
        cmd = [
            litellm_command(litellm),
            "--config",
            str(config),
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]
    # stderr to a file: a server logging each request would fill a pipe nobody reads and stop.
    err_file = tmp / "stderr.txt"
    with err_file.open("wb") as err:
        proc = subprocess.Popen([*prefix, *cmd], env=env, stdout=subprocess.DEVNULL, stderr=err)
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(proc.pid, {cpu})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc, kind, err_file, 600 if prefix else 120)
        yield url, key, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)  # a clean exit (valgrind writes its counts then)
        try:
            proc.wait(timeout=600 if prefix else 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(
    url: str, proc: subprocess.Popen[bytes], kind: str, err_file: Path, timeout: float = 120
) -> None:
    import urllib.request

    path = "/health/liveliness" if kind == "litellm" else "/health/live"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = err_file.read_bytes().decode(errors="replace")
            raise RuntimeError(f"{kind} exited: {err[-2000:]}")
        try:
            with urllib.request.urlopen(url + path, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{kind} did not start")


def _rss_mb(pid: int) -> float:
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process and its children (LiteLLM's worker)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# --------------------------------------------------------------------------- load


async def _rps(url: str, key: str, n: int, conns: int, body: bytes) -> tuple[float, int]:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=conns)
    errors = 0
    async with aiohttp.ClientSession(connector=connector) as s:
        it = iter(range(n))

        async def worker() -> None:
            nonlocal errors
            for _ in it:
                async with s.post(url + "/v1/chat/completions", data=body, headers=headers) as r:
                    await r.read()
                    errors += r.status != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
        return n / (time.perf_counter() - t0), errors


async def _latencies(url: str, key: str, n: int, body: bytes, first_byte: bool) -> list[float]:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    out = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
        for _ in range(n):
            t0 = time.perf_counter()
            async with s.post(url + "/v1/chat/completions", data=body, headers=headers) as r:
                if first_byte:
                    await r.content.readany()
                    out.append(time.perf_counter() - t0)
                    await r.read()
                else:
                    await r.read()
                    out.append(time.perf_counter() - t0)
    return out


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(
    url: str,
    key: str,
    args: argparse.Namespace,
    direct: dict[str, float],
    pid: int,
    requests: int,
    latency_calls: int,
    rss: bool = True,
) -> dict[str, Any]:
    await _rps(url, key, 500, 32, BODY)  # warm up
    await _rps(url, key, 100, 32, STREAM_BODY)
    cpu0 = _cpu_s(pid)
    rps, errors = await _rps(url, key, requests, 32, BODY)
    cpu = (_cpu_s(pid) - cpu0) / requests
    lat = await _latencies(url, key, latency_calls, BODY, False)
    ttfb = await _latencies(url, key, latency_calls, STREAM_BODY, True)
    streamed = max(1000, requests // 4)
    cpu0 = _cpu_s(pid)
    srps, serrors = await _rps(url, key, streamed, 32, STREAM_BODY)
    scpu = (_cpu_s(pid) - cpu0) / streamed
    out = {
        "rps": rps,
        "errors": errors + serrors,
        "cpu_ms_per_request": cpu * 1e3,
        "added_p50_ms": (statistics.median(lat) - direct["p50"]) * 1e3,
        "added_p99_ms": (_p(lat, 0.99) - direct["p50"]) * 1e3,
        # p99 through the server against the upstream's own p99: the machine's tail (timer
        # wake-ups, other processes) is in both.
        "p99_over_direct_p99_ms": (_p(lat, 0.99) - direct["p99"]) * 1e3,
        "ttfb_added_p50_ms": (statistics.median(ttfb) - direct["ttfb_p50"]) * 1e3,
        "stream_rps": srps,
        "stream_cpu_ms_per_request": scpu * 1e3,
        "rss_mb": _rss_mb(pid),
    }
    if args.rss_requests and rss:
        done = requests + 600 + streamed + 2 * latency_calls
        if done < 10_000:
            await _rps(url, key, 10_000 - done, 32, BODY)
            done = 10_000
        out["rss_mb_10k"] = _rss_mb(pid)
        if args.rss_requests > done:
            await _rps(url, key, args.rss_requests - done, 32, BODY)
        out["rss_mb_end"] = _rss_mb(pid)
        out["rss_requests"] = max(done, args.rss_requests)
    return out


async def direct_baseline(upstream: str, n: int) -> dict[str, float]:
    base = upstream.removesuffix("/v1")
    body = orjson.dumps({**orjson.loads(BODY), "model": "gpt-4.1-mini"})
    sbody = orjson.dumps({**orjson.loads(STREAM_BODY), "model": "gpt-4.1-mini"})
    lat = await _latencies(base, "sk-upstream", n, body, False)
    ttfb = await _latencies(base, "sk-upstream", n, sbody, True)
    return {
        "p50": statistics.median(lat),
        "p99": _p(lat, 0.99),
        "ttfb_p50": statistics.median(ttfb),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--latency-calls", type=int, default=2000)
    ap.add_argument("--rss-requests", type=int, default=0, help="e.g. 100000")
    ap.add_argument("--servers", default="bare,llmrelay,litellm")
    ap.add_argument("--litellm", metavar="PATH", help="the litellm command to run")
    ap.add_argument("--litellm-requests", type=int, default=2000)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every server this many times, interleaved; report the medians",
    )
    ap.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop of llmrelay serve ([server] loop) and of the bare proxy alike",
    )
    ap.add_argument(
        "--stream-events",
        type=int,
        default=None,
        help="events in the upstream's streamed answer, in all (default 36: a ~30-word answer)",
    )
    ap.add_argument("--bare-proxy", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    ap.add_argument("--parse-stream", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.bare_proxy:
        bare_proxy(args.bare_proxy, args.upstream, args.loop, args.parse_stream)
        return 0
    raise_fd_limit()
    up_cpu, server_cpu = pick_cpus(not args.no_pin)
    if up_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {up_cpu})  # the load generator shares the upstream's core
    results: dict[str, Any] = {}
    kinds = args.servers.split(",")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    with start_upstream(up_cpu, args.stream_events) as up, tempfile.TemporaryDirectory() as tmp:

        def start(kind: str, stack: contextlib.ExitStack) -> tuple[str, str, int] | None:
            try:
                where = Path(tmp) / kind
                where.mkdir()
                return stack.enter_context(
                    _server(kind, up.base_url, server_cpu, where, args.litellm, args.loop)
                )
            except (RuntimeError, FileNotFoundError, subprocess.CalledProcessError) as exc:
                results[kind] = {"unavailable": str(exc)[-500:]}
                print(kind, orjson.dumps(results[kind]).decode(), flush=True)
                return None

        def one(kind: str, where: tuple[str, str, int], last: bool) -> None:
            url, key, pid = where
            direct = asyncio.run(direct_baseline(up.base_url, args.latency_calls))
            results.setdefault("direct", direct)
            n, lat = args.requests, args.latency_calls
            if kind == "litellm":
                n, lat = min(n, args.litellm_requests), min(lat, 500)
            # LiteLLM: 100,000 calls would take an hour; its RSS after warm-up is shown.
            run = measure(url, key, args, direct, pid, n, lat, kind != "litellm" and last)
            runs[kind].append(asyncio.run(run))
            print(kind, f"round {len(runs[kind])}", orjson.dumps(runs[kind][-1]).decode())

        # The bare proxy and llmrelay run side by side in interleaved rounds (both started, one
        # measured at a time, each measurement with its own direct baseline), so a burst of load
        # from other programs spoils one round of each, not one server's whole result; each
        # metric is the median of the rounds. LiteLLM's proxy runs alone afterwards (it keeps
        # working while idle, which would slow the others on the shared core), rounds too.
        with contextlib.ExitStack() as stack:
            live = {k: w for k in kinds if k != "litellm" and (w := start(k, stack)) is not None}
            for r in range(args.rounds):
                for kind, where in live.items():
                    one(kind, where, r == args.rounds - 1)
        if "litellm" in kinds:
            with contextlib.ExitStack() as stack:
                lite = start("litellm", stack)
                for _ in range(args.rounds if lite is not None else 0):
                    one("litellm", lite, False)  # type: ignore[arg-type]
    for kind, measured in runs.items():
        if measured:
            results[kind] = _median(measured)
    _report(results)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each number the median of the rounds (errors: their sum; RSS after N requests: the last
    round's, the only one that runs them)."""
    out: dict[str, Any] = dict(runs[-1])
    for name in runs[0]:
        values = [run[name] for run in runs if name in run]
        if name == "errors":
            out[name] = sum(values)
        elif not name.startswith("rss_mb_") and name != "rss_requests":
            out[name] = statistics.median(values)
    out["rounds"] = len(runs)
    return out


def _report(r: dict[str, Any]) -> None:
    print()
    print(
        f"{'server':16} {'rps':>8} {'cpu ms':>7} {'p50 +ms':>8} {'p99 +ms':>8} {'ttfb +ms':>9} "
        f"{'s-rps':>8} {'s-cpu ms':>8} {'RSS MB':>7}"
    )
    for kind, m in r.items():
        if kind == "direct" or "unavailable" in m:
            continue
        print(
            f"{kind:16} {m['rps']:8.0f} {m['cpu_ms_per_request']:7.3f} "
            f"{m['added_p50_ms']:8.3f} {m['added_p99_ms']:8.3f} "
            f"{m['ttfb_added_p50_ms']:9.3f} {m['stream_rps']:8.0f} "
            f"{m['stream_cpu_ms_per_request']:8.3f} {m['rss_mb']:7.1f}"
        )
        if "rss_mb_end" in m:
            print(
                f"{'':16} RSS {m['rss_mb_10k']:.1f} MB after 10,000 requests, "
                f"{m['rss_mb_end']:.1f} MB after {m['rss_requests']:,}"
            )
    for kind, m in r.items():
        if kind != "direct" and m.get("errors"):
            print(f"{kind}: {m['errors']} requests were not answered 200: its numbers are void")
    bare, lite = r.get("bare", {}), r.get("litellm", {})
    for name in ("llmrelay", "llmrelay-nolog", "llmrelay-gc-python"):
        ours = r.get(name, {})
        if "rps" in ours and "rps" in bare:
            print(f"\n{name} / bare rps: {ours['rps'] / bare['rps']:.2f}x (target >= 0.7x)")
            cpu = ours["cpu_ms_per_request"] / bare["cpu_ms_per_request"]
            scpu = ours["stream_cpu_ms_per_request"] / bare["stream_cpu_ms_per_request"]
            print(f"  CPU per request: {cpu:.2f}x the bare proxy's; streamed {scpu:.2f}x")
            p50 = ours["added_p50_ms"] / max(bare["added_p50_ms"], 1e-9)
            print(
                f"  added p50: {p50:.2f}x the bare proxy's (target <= 1.5x); "
                f"p99 {ours['added_p99_ms']:.2f} ms (target < 2 ms); p99 over the upstream's "
                f"own p99 {ours['p99_over_direct_p99_ms']:.2f} ms (bare proxy "
                f"{bare['p99_over_direct_p99_ms']:.2f} ms)"
            )
            ttfb = ours["ttfb_added_p50_ms"] / max(bare["ttfb_added_p50_ms"], 1e-9)
            print(
                f"  stream TTFB added: {ttfb:.2f}x (target <= 1.5x); stream rps "
                f"{ours['stream_rps'] / bare['stream_rps']:.2f}x"
            )
            parsing = r.get("bare-parse", {})
            if "stream_rps" in parsing:
                print(
                    f"  stream rps against a bare proxy that parses each event: "
                    f"{ours['stream_rps'] / parsing['stream_rps']:.2f}x (its streamed CPU "
                    f"{parsing['stream_cpu_ms_per_request']:.3f} ms)"
                )
        if "rps" in ours and "rps" in lite:
            print(f"  {name} / litellm rps: {ours['rps'] / lite['rps']:.1f}x (target >= 30x)")
            cpu = lite["cpu_ms_per_request"] / ours["cpu_ms_per_request"]
            print(f"  litellm / {name} CPU per request: {cpu:.1f}x")
    for kind, m in r.items():
        if isinstance(m, dict) and "unavailable" in m:
            print(f"{kind}: unavailable: {m['unavailable'][:300]}")


if __name__ == "__main__":
    sys.exit(main())
