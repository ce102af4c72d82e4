"""The ``llmrelay`` package itself: a light import, and every public name visible to users and
to type checkers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import llmrelay


def test_import_loads_only_the_name_table() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import llmrelay\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(probe.stdout.split())
    assert {"llmrelay", "llmrelay._version"} <= loaded
    heavy = {"typing", "re", "enum", "asyncio", "aiohttp", "pydantic", "orjson", "llmrelay.client"}
    assert not loaded & heavy


def test_every_public_name_resolves() -> None:
    for name in llmrelay.__all__:
        assert getattr(llmrelay, name) is not None, name
    assert dir(llmrelay) == sorted(llmrelay.__all__)


def test_type_checkers_see_every_public_name_explicitly_re_exported() -> None:
    """The ``if TYPE_CHECKING:`` block imports each public name as ``X as X`` from the module
    ``__getattr__`` loads it from (mypy --strict only sees explicit re-exports)."""
    init = Path(llmrelay.__file__)
    tree = ast.parse(init.read_text("utf-8"))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )
    seen: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        if node.module == "typing":
            continue
        assert node.level == 1
        for alias in node.names:
            assert alias.asname == alias.name, f"import {alias.name} as {alias.name}"
            seen[alias.name] = str(node.module)
    exports = llmrelay._EXPORTS
    assert seen == exports
    assert sorted({"__version__", *seen}) == sorted(llmrelay.__all__)
