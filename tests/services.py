"""Fixtures for tests that need the local PostgreSQL (or another local service).

Tests using them are marked ``@pytest.mark.services``. When a service cannot be reached they are
skipped -- or FAIL when ``LLMRELAY_REQUIRE_SERVICES=1`` (CI sets it), so a broken service is never
mistaken for a passing suite. Import the fixtures you use into the test module::

    from .services import pg_schema, postgres_dsn  # noqa: F401  (pytest fixtures)
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, NoReturn, TypeVar

import pytest

T = TypeVar("T")

REQUIRE_ENV = "LLMRELAY_REQUIRE_SERVICES"
#: The local server of the dev and CI machines (trust auth); override for another one.
POSTGRES_DSN = os.environ.get(
    "LLMRELAY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip() == "1"


def unavailable(what: str, why: str) -> NoReturn:
    """Skip the test -- or fail it when services are required."""
    if required():
        pytest.fail(f"{what} is unreachable but {REQUIRE_ENV}=1 requires it: {why}")
    pytest.skip(f"{what} is unreachable ({why}); set {REQUIRE_ENV}=1 to fail instead")


def run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh loop in its own thread (safe from any context,
    including inside a running event loop)."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]  # type: ignore[no-any-return]


async def pg_execute(dsn: str, *statements: str) -> list[Any]:
    """Run statements on a fresh connection; the rows of the last one."""
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows: list[Any] = []
        for sql in statements:
            rows = list(await conn.fetch(sql))
        return rows
    finally:
        await conn.close()


_pg_state: dict[str, str | None] = {}


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of the local PostgreSQL, checked once per session."""
    if "error" not in _pg_state:
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            _pg_state["error"] = "asyncpg is not installed (pip install 'llmrelay[postgres]')"
        else:
            try:
                run_in_thread(pg_execute(POSTGRES_DSN, "SELECT 1"))
                _pg_state["error"] = None
            except Exception as exc:
                _pg_state["error"] = f"{type(exc).__name__}: {exc}"
    error = _pg_state["error"]
    if error is not None:
        unavailable(f"PostgreSQL at {POSTGRES_DSN}", error)
    return POSTGRES_DSN


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A schema of its own for one test, dropped (with everything in it) afterwards."""
    schema = f"llmrelay_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    try:
        yield schema
    finally:
        run_in_thread(pg_execute(postgres_dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
