"""Token counting and cost speed (issue 4's budgets: 100 KB counted in under 20 ms; a cost in
under 10 µs per call).

    python benchmarks/tokens.py            # prints a table; exits 1 if a budget is missed

Counting is measured warm (the tokenizer is built once per process, ~0.15 s for o200k_base)
on 100 KB of English prose, Python source, JSON and mixed-script text; the best of several
runs is reported, as usual for micro-benchmarks on a shared machine.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from llmrelay.catalog.costs import calculate_cost
from llmrelay.catalog.layer import Catalog
from llmrelay.catalog.tokens import count_message_tokens, count_tokens
from llmrelay.providers.table import make_deployment
from llmrelay.types import ChatRequest, GenerationParams, Message, Usage

SIZE = 100_000
COUNT_BUDGET_MS = 20.0
COST_BUDGET_US = 10.0
WORDS = (
    "the of and to in is that for it as with was on be by this are or his from at which "
    "but have an they not one had you were her all she there would their we him been has "
    "when who will more no if out so said what up its about into than them can only other"
)


def texts() -> dict[str, str]:
    rnd = random.Random(3)
    words = WORDS.split()
    prose = " ".join(rnd.choice(words) for _ in range(40_000))
    src = Path(__file__).resolve().parents[1] / "src" / "llmrelay"
    code = "\n".join(p.read_text("utf-8") for p in sorted(src.rglob("*.py")))
    data = json.dumps([{"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(4000)])
    mixed = "".join(
        rnd.choice(["hello ", "世界", "Grüße ", "😀", "42 ", "\n"]) for _ in range(40_000)
    )
    return {k: (v * (SIZE // max(len(v), 1) + 1))[:SIZE] for k, v in
            {"prose": prose, "python": code, "json": data, "mixed": mixed}.items()}  # fmt: skip


def best_of(fn: Callable[[], object], runs: int = 7) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ok = True
    print(f"{'text (100 KB)':<16}{'encoding':<14}{'tokens':>9}{'ms':>9}")
    for name, text in texts().items():
        for enc in ("o200k_base", "cl100k_base"):
            n = count_tokens(text, encoding=enc)  # warm up: builds the tokenizer
            ms = best_of(lambda text=text, enc=enc: count_tokens(text, encoding=enc)) * 1000
            ok &= ms < COUNT_BUDGET_MS
            print(f"{name:<16}{enc:<14}{n:>9}{ms:>9.2f}")
    msgs = [Message("system", "Be brief."), Message("user", texts()["prose"])]
    ms = best_of(lambda: count_message_tokens(msgs, "gpt-4o")) * 1000
    print(f"{'messages':<16}{'o200k_base':<14}{'':>9}{ms:>9.2f}")
    ok &= ms < COUNT_BUDGET_MS

    catalog = Catalog()
    dep = make_deployment("openai", "gpt-4.1-mini", api_key="sk-bench")
    usage = Usage(1200, 300, cached_tokens=200, reasoning_tokens=50)
    catalog.cost(dep, usage)
    n = 100_000
    per_call = best_of(lambda: [catalog.cost(dep, usage) for _ in range(n)], 5) / n * 1e6
    print(f"\nCatalog.cost per call: {per_call:.2f} µs (budget {COST_BUDGET_US:g} µs)")
    ok &= per_call < COST_BUDGET_US
    calculate_cost("openai/gpt-4.1-mini", usage)
    per_call = best_of(lambda: [calculate_cost("openai/gpt-4.1-mini", usage) for _ in range(n)], 5)
    print(f"calculate_cost per call: {per_call / n * 1e6:.2f} µs")
    req = ChatRequest([Message("user", "Why reuse one HTTP session?")], GenerationParams())
    catalog.prepare(req, dep)
    prep = best_of(lambda: [catalog.prepare(req, dep) for _ in range(n)], 5) / n * 1e6
    print(f"Catalog.prepare per call (short prompt): {prep:.2f} µs")
    print("\nall budgets met" if ok else "\nA BUDGET WAS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
