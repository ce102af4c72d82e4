"""The floor plan of ``src/llmrelay`` (issue 9): no import cycle, no upward import between layers,
no module over 600 lines, at most 12 top-level modules.

The import graph is read from the source alone (nothing is imported), with the rules of
``layout_facts.py``: function-level imports count (a lazy import that only dodges a cycle is still
a cycle), imports under ``if TYPE_CHECKING:`` do not, a submodule importing its own package is no
edge, and imports of the top-level package (its lazy name table) are facade use, not edges.

Each checker takes a source root, so the unit tests below run it on small packages written to
``tmp_path`` with a deliberate cycle, upward import or long module, and the whole-tree tests run
it on the real package.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "llmrelay"

MAX_LINES = 600
MAX_TOP_LEVEL = 12

#: The layers of plan.md §1, low to high. An import may go down or stay on its layer, never up.
#: A module's layer is that of the longest prefix listed here; a module no prefix covers fails
#: the upward-import test (a new module must be placed on the plan).
LAYERS: Mapping[str, int] = {
    # 0: the vocabulary every layer uses
    "llmrelay.errors": 0,
    "llmrelay.types": 0,
    "llmrelay._sync": 0,
    "llmrelay._version": 0,
    # 1: transport, stores, reading settings tables/env, counting tokens
    "llmrelay.transport": 1,
    "llmrelay.state": 1,
    "llmrelay.settings": 1,
    "llmrelay.settings.file": 1,
    "llmrelay.settings.state": 1,
    "llmrelay.settings.requestlog": 1,
    "llmrelay.catalog.tokens": 1,
    "llmrelay.tokens": 1,  # shim of catalog.tokens (documented path)
    # The provider table imports only errors, and settings.file (layer 1) registers providers
    # in it (plan §4.1), so it sits with settings, below the rest of providers.
    "llmrelay.providers.table": 1,
    # 2: providers and their wire adapters
    "llmrelay.providers": 2,
    # 3: the engine's parts that need no engine, and the catalog
    "llmrelay.core": 3,
    "llmrelay.core.options": 3,
    "llmrelay.core.routing": 3,
    "llmrelay.core.retry": 3,
    "llmrelay.core.trace": 3,
    "llmrelay.core.layers": 3,
    "llmrelay.core.structured": 3,
    "llmrelay.core.streaming": 3,
    "llmrelay.core.codec": 3,
    "llmrelay.retry": 3,  # shim of core.retry (documented path)
    "llmrelay.catalog": 3,
    # 4: the layers a call goes through
    "llmrelay.reliability": 4,
    "llmrelay.observe": 4,
    # 5: the engine
    "llmrelay.core.engine": 5,
    "llmrelay.core.call": 5,
    "llmrelay.core.streamed": 5,
    "llmrelay.core.engine_stream": 5,
    "llmrelay.core.attempts": 5,
    "llmrelay.core.embed": 5,
    # 6: assembly of what a client uses, batches
    "llmrelay.settings.defaults": 6,
    "llmrelay.settings.layers": 6,
    "llmrelay.settings.recorders": 6,
    "llmrelay.batch": 6,
    # 7: the client
    "llmrelay.client": 7,
    # 8: entry points and facades built on the client
    "llmrelay.seeds": 8,
    "llmrelay.config": 8,  # shim of seeds.seed002 (documented path)
    "llmrelay.cli": 8,
    "llmrelay.gateway": 8,
    "llmrelay.testing": 8,
}

#: Imports named by the issue as never allowed, whatever layer numbers say: package prefix ->
#: prefixes it must not import.
FORBIDDEN: Mapping[str, tuple[str, ...]] = {
    "llmrelay.core": (
        "llmrelay.seeds",
        "llmrelay.cli",
        "llmrelay.gateway",
        "llmrelay.testing",
        "llmrelay.client",
    ),
}


# ---------------------------------------------------------------------------------- the graph


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package directory ``root``."""
    out: dict[str, Path] = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _type_checking_lines(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else getattr(t, "attr", None)
            if name == "TYPE_CHECKING":
                for sub in node.body:
                    for s in ast.walk(sub):
                        line = getattr(s, "lineno", None)
                        if line is not None:
                            skip.add(line)
    return skip


def _targets(
    mods: Mapping[str, Path],
    cur: str,
    is_pkg: bool,
    level: int,
    module: str | None,
    names: list[str],
) -> list[str]:
    if level:
        base = cur.split(".") if is_pkg else cur.split(".")[:-1]
        base = base[: len(base) - (level - 1)]
        target = ".".join(base + ([module] if module else []))
    else:
        target = module or ""
    out = []
    for n in names:
        cand = f"{target}.{n}"
        if cand in mods:
            out.append(cand)
        elif target in mods:
            out.append(target)
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (see the module docstring for the rules)."""
    mods = modules(root)
    top = root.name
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        is_pkg = p.name == "__init__.py"
        found: list[str] = []
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names]
                found += _targets(mods, m, is_pkg, node.level, node.module, names)
            elif isinstance(node, ast.Import):
                found += [a.name for a in node.names if a.name in mods]
        for t in found:
            if t != m and t != top and not m.startswith(t + "."):
                edges[m].add(t)
    return edges


# ---------------------------------------------------------------------------------- checkers


def cycles(root: Path) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    edges = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, todo = work[-1]
            if todo:
                w = todo.pop()
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, sorted(edges[w])))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def layer_of(module: str, layers: Mapping[str, int]) -> int | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        got = layers.get(".".join(parts[:n]))
        if got is not None:
            return got
    return None


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def upward_imports(
    root: Path, layers: Mapping[str, int], forbidden: Mapping[str, tuple[str, ...]]
) -> list[str]:
    """Every import that goes up the layer table or is forbidden, and every unplaced module."""
    problems: list[str] = []
    top = root.name
    for m, targets in sorted(import_graph(root).items()):
        if m == top:
            continue  # the lazy name table names everything
        lm = layer_of(m, layers)
        if lm is None:
            problems.append(f"{m}: not on the layer table")
            continue
        for t in sorted(targets):
            lt = layer_of(t, layers)
            if lt is not None and lt > lm:
                problems.append(f"{m} (layer {lm}) imports {t} (layer {lt})")
            for pkg, banned in forbidden.items():
                if _under(m, pkg) and any(_under(t, b) for b in banned):
                    problems.append(f"{m} imports {t}: {pkg} must not import {', '.join(banned)}")
    return problems


def long_modules(root: Path, limit: int = MAX_LINES) -> list[str]:
    out = []
    for m, p in sorted(modules(root).items()):
        with p.open(encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n > limit:
            out.append(f"{m}: {n} lines")
    return out


def top_level_modules(root: Path) -> list[str]:
    """Top-level ``.py`` modules, as layout_facts.py counts them (no ``__init__``/``_version``)."""
    return sorted(p.name for p in root.glob("*.py") if p.name not in ("__init__.py", "_version.py"))


# ---------------------------------------------------------------------------------- the tree


def test_no_import_cycle() -> None:
    found = cycles(SRC)
    assert found == [], "\n".join(f"cycle of {len(c)}: {', '.join(c)}" for c in found)


def test_no_upward_import() -> None:
    found = upward_imports(SRC, LAYERS, FORBIDDEN)
    assert found == [], "\n".join(found)


def test_no_module_over_600_lines() -> None:
    found = long_modules(SRC)
    assert found == [], "\n".join(found)


def test_at_most_12_top_level_modules() -> None:
    found = top_level_modules(SRC)
    assert len(found) <= MAX_TOP_LEVEL, found


def test_fake_upstream_surface_unchanged() -> None:
    from llmrelay.testing import fake, fake_base

    assert fake.FakeRequest is fake_base.FakeRequest
    assert fake.__all__ == ["FakeRequest", "FakeUpstream", "RecordedRequest", "Reply"]


# ---------------------------------------------------------------------------------- checkers
# on small packages built to break each rule


def _package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


def test_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": "from . import b\n",
            "b.py": "def f() -> None:\n    from .sub import c\n",
            "sub/__init__.py": "",
            "sub/c.py": "import pkg.a\n",
            "d.py": "from .a import x\n",  # into the cycle, not part of it
        },
    )
    assert cycles(root) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


def test_type_checking_imports_and_own_package_make_no_cycle(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": "from .b import X\n",
            "b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from .a import Y\n"
                "from . import Z\n"  # the top package (lazy name table) is no edge
            ),
            "sub/__init__.py": "from .c import W\n",
            "sub/c.py": "from . import V\n",  # a submodule importing its own package
        },
    )
    assert cycles(root) == []


def test_upward_and_forbidden_imports_are_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "low.py": "def f() -> None:\n    from .high import g\n",
            "high.py": "from .low import f\n",
            "core/__init__.py": "",
            "core/x.py": "from ..ui import h\n",
            "ui.py": "",
            "stray.py": "",
        },
    )
    layers = {"pkg.low": 0, "pkg.high": 1, "pkg.core": 2, "pkg.ui": 2}
    assert upward_imports(root, layers, {"pkg.core": ("pkg.ui",)}) == [
        "pkg.core.x imports pkg.ui: pkg.core must not import pkg.ui",
        "pkg.low (layer 0) imports pkg.high (layer 1)",
        "pkg.stray: not on the layer table",
    ]


def test_downward_and_sideways_imports_pass(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "low.py": "",
            "mid/__init__.py": "",
            "mid/a.py": "from ..low import x\nfrom .b import y\n",
            "mid/b.py": "import pkg.low\n",
        },
    )
    assert upward_imports(root, {"pkg.low": 0, "pkg.mid": 1}, {}) == []


def test_long_module_is_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path, {"ok.py": "x = 1\n" * 600, "deep/__init__.py": "", "deep/big.py": "x = 1\n" * 601}
    )
    assert long_modules(root) == ["pkg.deep.big: 601 lines"]


def test_too_many_top_level_modules_are_counted(tmp_path: Path) -> None:
    files = {f"m{i}.py": "" for i in range(13)}
    root = _package(tmp_path, {**files, "_version.py": "", "sub/__init__.py": "", "sub/x.py": ""})
    found = top_level_modules(root)
    assert len(found) == 13 > MAX_TOP_LEVEL
    assert "_version.py" not in found
    assert "__init__.py" not in found


def test_the_real_layer_table_places_every_package() -> None:
    # The table must cover the tree; the layer of a module comes from its longest prefix.
    assert layer_of("llmrelay.core.engine", LAYERS) == 5
    assert layer_of("llmrelay.core.routing", LAYERS) == 3
    assert layer_of("llmrelay.settings.layers", LAYERS) == 6
    unplaced = [m for m in modules(SRC) if m != "llmrelay" and layer_of(m, LAYERS) is None]
    assert unplaced == []
