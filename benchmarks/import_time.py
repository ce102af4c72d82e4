"""Import time and memory of ``import llmrelay`` next to ``import openai`` and ``import litellm``.

    python benchmarks/import_time.py                  # 7 fresh interpreters per statement
    python benchmarks/import_time.py --runs 11 --json imports.json
    python benchmarks/import_time.py --profile llmrelay   # -X importtime: slowest modules

Each statement runs in a fresh interpreter (``sys.executable``; bytecode already cached by one
discarded run). Inside it the program records ``time.perf_counter()`` and peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) just before and just after the statement, so the
numbers exclude interpreter start-up. Columns: peak RSS of the process after the statement,
that minus the peak RSS of a bare interpreter (``- bare``), and the growth of the current RSS
(``VmRSS``) across the statement (``+RSS``; small imports do not raise the peak that start-up
set). The median over ``--runs`` interpreters is reported. Budget (issue 2): ``import llmrelay``
under 150 ms and 45 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

from _clients import LITELLM_OFFLINE_ENV, versions

STATEMENTS: dict[str, str] = {
    "import llmrelay": "import llmrelay",
    "from llmrelay import Client": "from llmrelay import Client",
    "llmrelay.Client()": "import llmrelay; llmrelay.Client()",
    "Client() + openai adapter": (
        "import llmrelay; llmrelay.Client(); import llmrelay.providers.adapters.openai_chat"
    ),
    "import aiohttp": "import aiohttp",
    "import openai": "import openai",
    "import litellm": "import litellm",
}

_PROBE = """
import json, resource, sys, time
def rss_kb():  # current resident set size (Linux); peak RSS elsewhere
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = compile(sys.argv[1], "<bench>", "exec")
c0 = rss_kb()
n0 = len(sys.modules)
t0 = time.perf_counter()
exec(code)
t1 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"s": t1 - t0, "peak_kb": peak, "cur0_kb": c0, "cur1_kb": rss_kb(),
                  "modules": len(sys.modules) - n0}))
"""

# Bytecode must be cached (the first, discarded run of each statement writes it).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_ENV |= LITELLM_OFFLINE_ENV


def probe(stmt: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, stmt], capture_output=True, text=True, env=_ENV, check=False
    )
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": err}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(stmt: str, runs: int) -> dict[str, Any]:
    first = probe(stmt)  # also writes any missing .pyc files
    if "error" in first:
        return {"status": "unavailable", "reason": first["error"]}
    samples = [probe(stmt) for _ in range(runs)]
    bad = [s for s in samples if "error" in s]
    if bad:
        return {"status": "failed", "reason": bad[0]["error"]}
    return {
        "status": "ok",
        "ms": statistics.median(s["s"] for s in samples) * 1e3,
        "ms_runs": [round(s["s"] * 1e3, 1) for s in samples],
        "rss_mb": statistics.median(s["peak_kb"] for s in samples) / 1024,
        "added_mb": statistics.median(s["cur1_kb"] - s["cur0_kb"] for s in samples) / 1024,
        "modules": statistics.median(s["modules"] for s in samples),
    }


def _importtime(code: str) -> list[tuple[int, int, str]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=_ENV,
        check=False,
    )
    rows: list[tuple[int, int, str]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|")
        rows.append((int(cum_us), int(self_us), name.strip()))
    return rows


def importtime_profile(module: str, top: int) -> list[tuple[int, int, str]]:
    """The ``top`` slowest modules by cumulative µs under ``python -X importtime``, leaving out
    the modules a bare interpreter imports at start-up (site, encodings, ...)."""
    startup = {name for _, _, name in _importtime("pass")}
    rows = [r for r in _importtime(f"import {module}") if r[2] not in startup]
    rows.sort(reverse=True)
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="import time and RSS of llmrelay, openai and litellm (fresh interpreters)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("--runs", type=int, default=7, help="fresh interpreters per statement")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    ap.add_argument(
        "--profile",
        metavar="MODULE",
        help="also list the slowest modules under `python -X importtime -c 'import MODULE'`",
    )
    ap.add_argument("--top", type=int, default=20, help="rows of --profile output")
    args = ap.parse_args(argv)

    info = versions()
    print(f"import benchmark: median of {args.runs} fresh interpreters per statement")
    print("versions:", ", ".join(f"{k} {v}" for k, v in info.items()))
    bare = [probe("pass") for _ in range(args.runs)]
    bare_mb = statistics.median(b["peak_kb"] for b in bare) / 1024
    print(f"bare interpreter peak RSS: {bare_mb:.1f} MB")
    print()
    results: dict[str, dict[str, Any]] = {}
    head = f"{'statement':<30}{'ms':>9}{'peak RSS MB':>13}{'- bare':>8}{'+RSS MB':>9}{'modules':>9}"
    print(head)
    print("-" * len(head))
    for label, stmt in STATEMENTS.items():
        r = results[label] = measure(stmt, args.runs)
        if r["status"] != "ok":
            print(f"{label:<30}  {r['status']}: {r['reason']}")
            continue
        print(
            f"{label:<30}{r['ms']:>9.1f}{r['rss_mb']:>13.1f}{r['rss_mb'] - bare_mb:>8.1f}"
            f"{r['added_mb']:>9.1f}{r['modules']:>9.0f}"
        )
    base = results.get("import llmrelay", {})
    if base.get("status") == "ok":
        print()
        for label in ("import openai", "import litellm"):
            other = results[label]
            if other["status"] == "ok":
                print(
                    f"{label} takes {other['ms'] / base['ms']:.0f}x the time of import llmrelay "
                    f"and adds {other['added_mb']:.0f} MB vs {base['added_mb']:.1f} MB"
                )
        ok = base["ms"] < 150 and base["rss_mb"] < 45
        print(
            f"budget (under 150 ms and 45 MB RSS): {'met' if ok else 'NOT met'} "
            f"({base['ms']:.0f} ms, {base['rss_mb']:.1f} MB peak RSS)"
        )
    if args.profile:
        print()
        print(f"slowest modules under -X importtime for `import {args.profile}`:")
        print(f"{'cumulative µs':>14}{'self µs':>10}  module")
        for cum, self_us, name in importtime_profile(args.profile, args.top):
            print(f"{cum:>14,}{self_us:>10,}  {name}")
    if args.json:
        doc = {"benchmark": "import_time", "runs": args.runs, "versions": info}
        doc |= {"bare_rss_mb": bare_mb, "results": results}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
