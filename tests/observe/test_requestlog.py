"""The request log: rows per request and per attempt from real calls against the fake upstream,
SQLite migrations, content logging, store failures, shutdown, crash safety, and PostgreSQL on
the local server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay.catalog.costs import Cost
from llmrelay.core.layers import CallRecord
from llmrelay.core.trace import Attempt
from llmrelay.errors import (
    ConfigFileError,
    ConfigurationError,
    InvalidRequestError,
    StateStoreError,
)
from llmrelay.observe.requestlog import (
    AttemptRow,
    LogFilter,
    PostgresStore,
    RequestLog,
    RequestRow,
    SQLiteStore,
    rows_from_record,
)
from llmrelay.observe.requestlog.sqlite import MIGRATIONS, MIGRATIONS_TABLE, m001_requests
from llmrelay.settings.requestlog import default_log_path, log_settings
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import Usage

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY
from ..services import pg_execute, pg_schema, postgres_dsn, run_in_thread  # noqa: F401

MODEL = "openai/gpt-4.1-mini"


async def no_sleep(_: float) -> None:
    return None


class Prices:
    """A catalog layer with fixed prices: $1 per 1M input and $2 per 1M output tokens, except
    gpt-4o-mini, whose price is unknown."""

    def prepare(self, req: Any, dep: Any) -> Any:
        return req

    def cost(self, dep: Any, usage: Usage) -> Cost:
        if dep.model == "gpt-4o-mini":
            return Cost.unknown("no price for gpt-4o-mini")
        return Cost(usage.input_tokens * 1e-6 + usage.output_tokens * 2e-6, True)


def table(db: Path, name: str, order: str = "started_at, id") -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f"SELECT * FROM {name} ORDER BY {order}")]


def record(trace_id: str = "t1", **kw: Any) -> CallRecord:
    """A finished two-attempt call (an error, then a success after a retry)."""
    usage = kw.pop("usage", Usage(10, 5))
    attempts = kw.pop(
        "attempts",
        [
            Attempt(MODEL, "error", 1, "ServerError", 500, 0.01, 0.0, None, "boom"),
            Attempt(MODEL, "success", 2, latency_s=0.02, backoff_s=0.5, usage=usage),
        ],
    )
    fields: dict[str, Any] = {
        "trace_id": trace_id,
        "started_at": time.time(),
        "alias": None,
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "outcome": "success",
        "latency_s": 0.53,
        "usage": usage,
        "cost": None,
        "attempts": attempts,
    }
    fields.update(kw)
    return CallRecord(**fields)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "requests.db"


@pytest.fixture
def log(db: Path) -> Iterator[RequestLog]:
    lg = RequestLog(db)
    yield lg
    lg.close()


def kw(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {"api_key": CANARY_KEY, "base_url": fake.openai_base_url, **extra}


# --------------------------------------------------------------------------- rows from real calls


async def test_rows_per_request_and_per_attempt(
    fake: FakeUpstream, point_at: Any, log: RequestLog, db: Path
) -> None:
    point_at(fake)
    engine = llmrelay.Engine(recorder=log, sleep=no_sleep, catalog=Prices())
    client = llmrelay.Client(engine=engine)
    ok = await client.achat(MODEL, "plain call", trace_id="plain")
    fake.push(Reply.error(500, "upstream broke"))
    retried = await client.achat(MODEL, "retried call", trace_id="retried")
    fake.push(Reply.error(503, "primary down"))
    fell_back = await client.achat(
        MODEL, "fallback call", trace_id="fallback", retries=0, fallbacks=["openai/gpt-4o-mini"]
    )
    fake.push(Reply.error(400, "bad request"))
    with pytest.raises(llmrelay.BadRequestError):
        await client.achat(MODEL, "failing call", trace_id="failed", tags={"team": "search"})
    s = client.astream(MODEL, "streamed call", trace_id="streamed")
    async for _ in s:
        pass
    await client.aclose()
    assert log.flush()

    reqs = {r["trace_id"]: r for r in table(db, "requests")}
    assert set(reqs) == {"plain", "retried", "fallback", "failed", "streamed"}
    atts = table(db, "attempts", "request_id, idx")
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for a in atts:
        by_trace.setdefault(a["trace_id"], []).append(a)

    plain = reqs["plain"]
    assert plain["outcome"] == "success"
    assert plain["provider"] == "openai"
    assert plain["model"] == "gpt-4.1-mini"
    assert plain["alias"] is None
    assert plain["input_tokens"] == ok.usage.input_tokens > 0
    assert plain["output_tokens"] == ok.usage.output_tokens > 0
    assert plain["cost_known"] == 1
    assert plain["cost_usd"] == pytest.approx(ok.cost.usd if ok.cost else -1)
    assert plain["latency_s"] > 0
    assert plain["ttft_s"] is None
    assert plain["stream"] == 0
    assert plain["attempts"] == 1
    assert plain["retries"] == 0
    assert plain["tags"] == "{}"
    assert [a["outcome"] for a in by_trace["plain"]] == ["success"]

    r = reqs["retried"]
    assert (r["attempts"], r["retries"], r["outcome"]) == (2, 1, "success")
    first, second = by_trace["retried"]
    assert (first["idx"], first["number"], first["outcome"]) == (1, 1, "error")
    assert (first["error"], first["status"], first["message"]) == (
        "ServerError",
        500,
        "upstream broke",
    )
    assert first["cost_usd"] == 0.0
    assert first["cost_known"] == 1
    assert (second["idx"], second["number"], second["outcome"]) == (2, 2, "success")
    assert second["backoff_s"] > 0
    assert second["input_tokens"] == retried.usage.input_tokens
    assert second["id"] == f"{r['id']}.2"
    assert first["id"] == f"{r['id']}.1"
    assert r["id"].endswith(".retried")

    f = reqs["fallback"]
    assert f["model"] == "gpt-4o-mini"
    assert fell_back.model == "gpt-4o-mini"
    assert [(a["model"], a["outcome"]) for a in by_trace["fallback"]] == [
        ("gpt-4.1-mini", "error"),
        ("gpt-4o-mini", "success"),
    ]
    # gpt-4o-mini has no price: the call's cost is unknown, never a silent 0
    assert f["cost_usd"] is None
    assert f["cost_known"] == 0
    assert by_trace["fallback"][1]["cost_usd"] is None

    e = reqs["failed"]
    assert (e["outcome"], e["error"], e["status"]) == ("error", "BadRequestError", 400)
    assert e["input_tokens"] == 0
    assert e["cost_usd"] == 0.0
    assert orjson.loads(e["tags"]) == {"team": "search"}

    st = reqs["streamed"]
    assert st["stream"] == 1
    assert st["ttft_s"] is not None
    assert 0 < st["ttft_s"] <= st["latency_s"]
    # content is off by default
    assert all(row["prompt"] is None and row["response"] is None for row in reqs.values())


async def test_content_is_stored_only_when_turned_on(fake: FakeUpstream, tmp_path: Path) -> None:
    off, on = RequestLog(tmp_path / "off.db"), RequestLog(tmp_path / "on.db")
    try:
        c_off = llmrelay.Client(engine=llmrelay.Engine(recorder=off))
        c_on = llmrelay.Client(engine=llmrelay.Engine(recorder=on, log_content=True))
        for c in (c_off, c_on):
            await c.achat(MODEL, "the secret plan", system="be brief", **kw(fake))
            await c.aclose()
        assert off.flush()
        assert on.flush()
    finally:
        off.close()
        on.close()
    (row_off,) = table(tmp_path / "off.db", "requests")
    (row_on,) = table(tmp_path / "on.db", "requests")
    assert row_off["prompt"] is None
    assert row_off["response"] is None
    assert orjson.loads(row_on["prompt"]) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "the secret plan"},
    ]
    assert row_on["response"] == "Echo: the secret plan"
    with contextlib.closing(sqlite3.connect(tmp_path / "off.db")) as conn:
        dump = "\n".join(conn.iterdump())
    assert "secret plan" not in dump
    assert CANARY_KEY not in dump


async def test_client_log_and_metrics_arguments(fake: FakeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "client.db"
    client = llmrelay.Client(metrics=True, log=str(path), log_content=True)
    assert client.metrics is not None
    assert client.log is not None
    await client.achat(MODEL, "hello", **kw(fake))
    log = client.log
    await client.aclose()  # closes the log it opened, writing everything
    assert log.pending == 0
    assert log.written == 1
    (row,) = table(path, "requests")
    assert row["response"] == "Echo: hello"
    assert client.metrics.get_metrics()["total_requests"] == 1
    with pytest.raises(InvalidRequestError, match=r"Engine\(recorder=\.\.\.\)"):
        llmrelay.Client(engine=llmrelay.Engine(), metrics=True)
    with pytest.raises(ConfigurationError, match="log must be"):
        llmrelay.Client(log=42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- migrations


def test_migrations_are_recorded_and_rerunnable(db: Path) -> None:
    store = SQLiteStore(db)
    store.open()
    names = [m.__name__ for m in MIGRATIONS]
    assert store.applied == names
    store.close()
    recorded = table(db, MIGRATIONS_TABLE, "applied_at, name")
    assert [r["name"] for r in recorded] == names
    again = SQLiteStore(db)
    again.open()  # nothing left to apply
    assert again.applied == []
    again.close()
    assert len(table(db, MIGRATIONS_TABLE, "name")) == len(names)


def test_an_older_database_gets_only_the_missing_migrations(db: Path) -> None:
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        m001_requests(conn)  # a database made by a version that only had m001
        conn.execute(f"CREATE TABLE {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at REAL)")
        conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES ('m001_requests', 1.0)")
    store = SQLiteStore(db)
    req, atts = rows_from_record(record("old"))
    store.write([req], atts)
    assert store.applied == ["m002_attempts", "m003_indexes"]
    store.close()
    assert [r["trace_id"] for r in table(db, "requests")] == ["old"]
    assert len(table(db, "attempts")) == 2


def test_sqlite_uses_wal(db: Path) -> None:
    store = SQLiteStore(db)
    store.open()
    store.close()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --------------------------------------------------------------------------- idempotency


def test_a_batch_written_twice_is_stored_once(db: Path) -> None:
    store = SQLiteStore(db)
    units = [rows_from_record(record(f"t{i}")) for i in range(5)]
    reqs = [u[0] for u in units]
    atts = [a for u in units for a in u[1]]
    store.write(reqs, atts)
    store.write(reqs, atts)
    store.write(reqs[:2], atts[:1])
    store.close()
    assert len(table(db, "requests")) == 5
    assert len(table(db, "attempts")) == 10


def test_same_trace_id_twice_gives_two_requests(log: RequestLog, db: Path) -> None:
    log.record(record("shared"))
    log.record(record("shared"))
    assert log.flush()
    rows = table(db, "requests")
    assert [r["trace_id"] for r in rows] == ["shared", "shared"]
    assert rows[0]["id"] != rows[1]["id"]


class AckLostStore(SQLiteStore):
    """Commits the first batch, then reports a failure (the acknowledgement was lost)."""

    lost = 0

    def write(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> None:
        super().write(requests, attempts)
        if requests and not self.lost:
            self.lost += 1
            raise StateStoreError("connection lost after commit")


def test_a_retried_batch_after_a_lost_ack_is_not_duplicated(db: Path) -> None:
    store = AckLostStore(db)
    lg = RequestLog(store)
    try:
        for i in range(3):
            lg.record(record(f"t{i}"))
        # The writer saw the failure, found the store working, and wrote the rows again.
        assert lg.flush()
        assert store.lost == 1
        assert lg.pending == 0
        assert lg.written == 3
        assert lg.rejected == 0
    finally:
        lg.close()
    assert len(table(db, "requests")) == 3
    assert len(table(db, "attempts")) == 6


# --------------------------------------------------------------------------- a failing store


class FlakyStore(SQLiteStore):
    """A SQLite store that can be switched off."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.down = False
        self.calls = 0

    def write(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> None:
        self.calls += 1
        if self.down:
            raise StateStoreError("disk on fire")
        super().write(requests, attempts)


async def test_a_failing_store_keeps_rows_and_writes_them_when_it_recovers(
    fake: FakeUpstream, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llmrelay.requestlog")
    store = FlakyStore(db)
    lg = RequestLog(store)
    client = llmrelay.Client(engine=llmrelay.Engine(recorder=lg))
    try:
        await client.achat(MODEL, "before", **kw(fake))
        assert lg.flush()
        store.down = True
        for i in range(3):  # the calls themselves are not affected
            r = await client.achat(MODEL, f"during {i}", **kw(fake))
            assert r.text == f"Echo: during {i}"
        assert not lg.flush()
        assert lg.pending == 3
        assert lg.failing
        assert lg.last_error == "disk on fire"
        await client.achat(MODEL, "still down", **kw(fake))
        assert not lg.flush()
        assert lg.pending == 4
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once per outage
        assert "disk on fire" in warnings[0].getMessage()
        assert "keeping 3 call(s) in memory" in warnings[0].getMessage()
        store.down = False
        assert lg.flush()
        assert lg.pending == 0
        assert not lg.failing
        assert lg.written == 5
        assert any("works again" in r.getMessage() for r in caplog.records)
    finally:
        await client.aclose()
        lg.close()
    texts = [r["trace_id"] for r in table(db, "requests")]
    assert len(texts) == len(set(texts)) == 5


def test_the_writer_retries_on_its_own_with_backoff(db: Path) -> None:
    store = FlakyStore(db)
    store.down = True
    lg = RequestLog(store, flush_interval=0.001, retry_delay=0.001, max_retry_delay=0.002)
    try:
        lg.record(record("a"))
        deadline = time.monotonic() + 5
        while store.calls < 4 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert store.calls >= 4
        assert lg.pending == 1
        store.down = False
        while lg.pending and time.monotonic() < deadline:
            time.sleep(0.001)
        assert lg.pending == 0  # written without a flush()
    finally:
        lg.close()
    assert [r["trace_id"] for r in table(db, "requests")] == ["a"]


class PickyStore(SQLiteStore):
    """Works, but refuses any batch that holds the trace id ``poison``."""

    def write(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> None:
        if any(r.trace_id == "poison" for r in requests):
            raise StateStoreError("value out of range")
        super().write(requests, attempts)


def test_one_bad_row_does_not_block_the_log(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    lg = RequestLog(PickyStore(db))
    try:
        for name in ("a", "b", "poison", "c", "d", "e"):
            lg.record(record(name))
        assert lg.flush()
        assert lg.rejected == 1
        assert lg.written == 5
        assert lg.pending == 0
    finally:
        lg.close()
    assert sorted(r["trace_id"] for r in table(db, "requests")) == ["a", "b", "c", "d", "e"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "poison" in errors[0]
    assert "value out of range" in errors[0]


def test_memory_is_bounded_while_the_store_is_down(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(db)
    store.down = True
    lg = RequestLog(store, max_pending=5, batch_size=2)
    try:
        for i in range(9):
            lg.record(record(f"t{i}"))
            assert not lg.flush()
        assert lg.pending == 5
        assert lg.dropped == 4
        store.down = False
        assert lg.flush()
    finally:
        lg.close()
    # the oldest were dropped, the newest kept
    assert [r["trace_id"] for r in table(db, "requests")] == [f"t{i}" for i in range(4, 9)]
    drops = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
    assert len(drops) == 1


def test_record_refuses_calls_when_the_queue_is_full(db: Path) -> None:
    """When the writer cannot drain the queue at all, record() stops queueing (bounded)."""
    lg = RequestLog(db, max_pending=3, batch_size=100, flush_interval=3600)
    try:
        for i in range(5):
            lg.record(record(f"t{i}"))
        assert lg.pending == 3
        assert lg.flush()
        assert lg.dropped == 2
    finally:
        lg.close()
    assert [r["trace_id"] for r in table(db, "requests")] == ["t0", "t1", "t2"]


# --------------------------------------------------------------------------- shutdown


def test_close_writes_everything(db: Path) -> None:
    lg = RequestLog(db, flush_interval=3600, batch_size=10_000)  # never on its own
    for i in range(50):
        lg.record(record(f"t{i}"))
    lg.close()
    assert lg.pending == 0
    assert len(table(db, "requests")) == 50
    assert len(table(db, "attempts")) == 100
    lg.record(record("late"))  # after close: ignored, never raises
    assert lg.pending == 0
    lg.close()  # idempotent


def test_close_with_the_store_down_says_what_is_lost(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(db)
    store.down = True
    lg = RequestLog(store)
    lg.record(record("x"))
    lg.close()
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1 call(s) could not be written" in m and "disk on fire" in m for m in msgs)


_SCRIPT = """
import asyncio, os, sys
import orjson
import llmrelay
from llmrelay.observe.requestlog import RequestLog, SQLiteStore
from llmrelay.testing.fake import FakeUpstream, Reply

db, spool, mode = sys.argv[1], sys.argv[2], sys.argv[3]
KEY = "sk-test-key-123456"


class SpoolingStore(SQLiteStore):
    # Keeps a copy of every batch before writing it, so the test can re-flush it later.
    def write(self, requests, attempts):
        if requests:
            line = orjson.dumps({
                "requests": [r.to_dict() for r in requests],
                "attempts": [a.to_dict() for a in attempts],
            })
            with open(spool, "ab") as f:
                f.write(line + b"\\n")
                f.flush()
                os.fsync(f.fileno())
        super().write(requests, attempts)


hang = False


async def sleep(seconds):
    if hang:
        print("BETWEEN-ATTEMPTS", flush=True)
        await asyncio.sleep(3600)


async def main():
    global hang
    log = RequestLog(SpoolingStore(db), flush_interval=3600)
    client = llmrelay.Client(engine=llmrelay.Engine(recorder=log, sleep=sleep))
    async with FakeUpstream(api_key=KEY) as fake:
        kw = {"api_key": KEY, "base_url": fake.openai_base_url}
        for i in range(4):
            await client.achat("openai/gpt-4.1-mini", f"call {i}", trace_id=f"flushed-{i}", **kw)
        fake.push(Reply.error(500, "boom"))
        await client.achat("openai/gpt-4.1-mini", "retried", trace_id="flushed-retried", **kw)
        if mode == "atexit":
            return  # no flush, no close: the atexit hook must write everything
        assert log.flush()
        print("FLUSHED", flush=True)
        await client.achat("openai/gpt-4.1-mini", "not flushed", trace_id="unflushed", **kw)
        hang = True
        fake.push(Reply.error(500, "boom"))
        await client.achat("openai/gpt-4.1-mini", "in flight", trace_id="in-flight", **kw)


asyncio.run(main())
"""


def _run_script(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path, Path]:
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    db, spool = tmp_path / "crash.db", tmp_path / "spool.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), str(spool), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, db, spool


def _read_line(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline() if proc.stdout else ""))
    t.start()
    t.join(timeout)
    if not out or not out[0]:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the child printed nothing; stderr:\n{err}")
    return out[0].strip()


def test_crash_between_attempts_loses_no_flushed_row_and_duplicates_none(
    tmp_path: Path,
) -> None:
    proc, db, spool = _run_script(tmp_path, "crash")
    try:
        assert _read_line(proc) == "FLUSHED"
        assert _read_line(proc) == "BETWEEN-ATTEMPTS"  # a call is waiting for its retry
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    reqs = table(db, "requests")
    flushed = ["flushed-0", "flushed-1", "flushed-2", "flushed-3", "flushed-retried"]
    assert sorted(r["trace_id"] for r in reqs) == flushed  # every flushed row, once
    assert "in-flight" not in {r["trace_id"] for r in reqs}  # it never finished
    n_attempts = len(table(db, "attempts"))
    assert n_attempts == 6  # 4 single attempts + the retried call's 2

    # Re-flush every batch the child wrote (as a restarted writer would): nothing doubles.
    store = SQLiteStore(db)
    for line in spool.read_bytes().splitlines():
        batch = orjson.loads(line)
        store.write(
            [RequestRow(**r) for r in batch["requests"]],
            [AttemptRow(**a) for a in batch["attempts"]],
        )
    store.close()
    again = table(db, "requests")
    assert len(again) == len(reqs)
    assert len({r["id"] for r in again}) == len(again)
    assert len(table(db, "attempts")) == n_attempts


def test_interpreter_exit_writes_everything(tmp_path: Path) -> None:
    proc, db, _ = _run_script(tmp_path, "atexit")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert len(table(db, "requests")) == 5
    assert len(table(db, "attempts")) == 6


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_writes_its_own_rows_only(db: Path) -> None:
    lg = RequestLog(db, flush_interval=3600)
    try:
        lg.record(record("parent"))  # queued, not written yet
        pid = os.fork()
        if pid == 0:  # the child: a fresh writer, without the parent's queue
            code = 1
            try:
                lg.record(record("child"))
                code = 0 if lg.flush() else 2
                lg.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert lg.flush()
    finally:
        lg.close()
    assert sorted(r["trace_id"] for r in table(db, "requests")) == ["child", "parent"]


# --------------------------------------------------------------------------- queries


def test_queries_filter_and_total(log: RequestLog) -> None:
    now = time.time()
    day = 86400.0
    log.record(record("old", started_at=now - 3 * day, cost=Cost(0.5, True)))
    log.record(record("new", started_at=now, cost=Cost(0.25, True), alias="fast"))
    log.record(
        record(
            "err",
            started_at=now,
            outcome="error",
            error="RateLimitedError",
            status=429,
            usage=Usage(),
            attempts=[Attempt(MODEL, "error", 1, "RateLimitedError", 429)],
        )
    )
    log.record(record("other", started_at=now, provider="groq", model="llama", cost=None))
    log.record(record("hit", started_at=now, outcome="cache_hit", cache_hit=True))
    assert log.flush()

    assert len(log.recent(limit=2)) == 2
    assert {r["trace_id"] for r in log.recent(outcome="error")} == {"err"}
    assert {r["trace_id"] for r in log.recent(alias="fast")} == {"new"}
    assert {r["trace_id"] for r in log.recent(model="llama")} == {"other"}
    assert {r["trace_id"] for r in log.recent(model="groq/llama")} == {"other"}
    assert log.recent(model="openai/llama") == []
    assert {r["trace_id"] for r in log.recent(since=now - day)} == {"new", "err", "other", "hit"}
    (one,) = log.recent(trace_id="hit")
    assert one["cache_hit"] is True
    assert one["cost_usd"] == 0.0
    assert one["cost_known"] is True
    atts = log.attempts_of([one["id"]])[one["id"]]
    assert [a["number"] for a in atts] == [1, 2]

    by_model = {r["model"]: r for r in log.usage("model")}
    o = by_model["openai/gpt-4.1-mini"]
    assert (o["requests"], o["errors"], o["cache_hits"]) == (4, 1, 1)
    assert o["input_tokens"] == 20
    assert o["output_tokens"] == 10
    assert o["cost_usd"] == pytest.approx(0.75)
    assert o["cost_unknown_requests"] == 0
    g = by_model["groq/llama"]
    assert g["cost_usd"] is None
    assert g["cost_unknown_requests"] == 1
    days = log.usage("day")
    assert len(days) == 2
    assert days[0]["requests"] == 1
    assert days[1]["requests"] == 4
    assert days[0]["day"] < days[1]["day"]
    assert [d["requests"] for d in log.usage("day", since=now - day)] == [4]


# --------------------------------------------------------------------------- bad input


def test_bad_arguments_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="batch_size"):
        RequestLog(tmp_path / "x.db", batch_size=0)
    with pytest.raises(ConfigurationError, match="flush_interval"):
        RequestLog(tmp_path / "x.db", flush_interval=-1)
    with pytest.raises(ConfigurationError, match="retry_delay"):
        RequestLog(tmp_path / "x.db", retry_delay=float("inf"))  # the writer could not wait it
    with pytest.raises(ConfigurationError, match="LogStore"):
        RequestLog(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="outcome must be one of"):
        LogFilter(outcome="maybe")
    with pytest.raises(InvalidRequestError, match="limit"):
        LogFilter(limit=0)
    with pytest.raises(ConfigurationError, match="usage is grouped by"):
        RequestLog(tmp_path / "x.db").usage("week")  # type: ignore[arg-type]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StateStoreError, match="a-file"):
        RequestLog(blocker / "sub" / "log.db", connect_now=True)


def test_settings_from_env_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_log_path() == tmp_path / "data" / "llmrelay" / "requests.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_log_path() == tmp_path / "home" / ".local/share/llmrelay/requests.db"
    with isolated_config():
        s = log_settings()
        assert not s.enabled
        assert not s.content
        assert s.target == str(default_log_path())
        monkeypatch.setenv("LLMRELAY_LOG", "1")
        assert log_settings().enabled
        monkeypatch.setenv("LLMRELAY_LOG", str(tmp_path / "x.db"))
        s = log_settings()
        assert s.enabled
        assert s.target == str(tmp_path / "x.db")
        monkeypatch.setenv("LLMRELAY_LOG", "postgresql://u@db/x")
        assert log_settings().target == "postgresql://u@db/x"
        monkeypatch.setenv("LLMRELAY_LOG", "off")
        assert not log_settings().enabled
        monkeypatch.setenv("LLMRELAY_LOG_CONTENT", "maybe")
        with pytest.raises(ConfigurationError, match="LLMRELAY_LOG_CONTENT"):
            log_settings()


def test_settings_from_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "llmrelay.toml"
    cfg.write_text(f'[log]\nenabled = true\npath = "{tmp_path / "f.db"}"\ncontent = true\n')
    monkeypatch.setenv("LLMRELAY_CONFIG", str(cfg))
    with isolated_config():
        s = log_settings()
        assert s.enabled
        assert s.content
        assert s.target == str(tmp_path / "f.db")
        monkeypatch.setenv("LLMRELAY_LOG_PATH", str(tmp_path / "env.db"))
        assert log_settings().target == str(tmp_path / "env.db")
    cfg.write_text("[log]\nenabeld = true\n")
    with isolated_config(), pytest.raises(ConfigFileError, match="unknown key 'enabeld'"):
        log_settings()
    cfg.write_text('[log]\nenabled = "yes"\n')
    with isolated_config(), pytest.raises(ConfigFileError, match="true or false"):
        log_settings()


# --------------------------------------------------------------------------- PostgreSQL


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_postgres_down_at_start(caplog: pytest.LogCaptureFixture) -> None:
    dsn = f"postgresql://postgres:{CANARY_KEY}@127.0.0.1:{_closed_port()}/test"
    store = PostgresStore(dsn)
    assert CANARY_KEY not in repr(store)
    assert CANARY_KEY not in store.description
    with pytest.raises(StateStoreError) as info:
        RequestLog(store, connect_now=True)
    assert "connecting failed" in str(info.value)
    assert CANARY_KEY not in str(info.value)
    store.close()
    lg = RequestLog(PostgresStore(dsn))  # without connect_now: rows are kept and retried
    try:
        lg.record(record("kept"))
        assert not lg.flush()
        assert lg.pending == 1
        assert lg.failing
    finally:
        lg.close()
    assert all(CANARY_KEY not in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigurationError, match="postgresql://"):
        PostgresStore("mysql://x@y/z")
    with pytest.raises(ConfigurationError, match="schema"):
        PostgresStore("postgresql://x@y/z", schema="bad; DROP TABLE")


def _pg_count(dsn: str, schema: str, name: str) -> int:
    rows = run_in_thread(pg_execute(dsn, f"SELECT count(*) AS n FROM {schema}.llmrelay_{name}"))
    return int(rows[0]["n"])


@pytest.mark.services
async def test_postgres_rows_migrations_and_idempotency(
    fake: FakeUpstream,
    postgres_dsn: str,  # noqa: F811  (a fixture from .services)
    pg_schema: str,  # noqa: F811
) -> None:
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    lg = RequestLog(store, connect_now=True)
    assert store.applied == ["m001_requests", "m002_attempts", "m003_indexes"]
    client = llmrelay.Client(engine=llmrelay.Engine(recorder=lg, sleep=no_sleep, log_content=True))
    try:
        await client.achat(MODEL, "first\x00call", trace_id="pg-1", tags={"team": "a"}, **kw(fake))
        fake.push(Reply.error(500, "boom"))
        await client.achat(MODEL, "retried", trace_id="pg-2", **kw(fake))
        assert lg.flush()
        rows = {r["trace_id"]: r for r in lg.recent()}
        assert set(rows) == {"pg-1", "pg-2"}
        assert rows["pg-2"]["retries"] == 1
        assert rows["pg-2"]["cost_known"] is False
        assert orjson.loads(rows["pg-1"]["tags"]) == {"team": "a"}
        assert "first" in rows["pg-1"]["prompt"]
        assert rows["pg-1"]["response"].startswith("Echo")
        atts = lg.attempts_of([rows["pg-2"]["id"]])[rows["pg-2"]["id"]]
        assert [(a["number"], a["outcome"]) for a in atts] == [(1, "error"), (2, "success")]
        (u,) = lg.usage("model")
        assert u["model"] == "openai/gpt-4.1-mini"
        assert u["requests"] == 2
        assert u["cost_usd"] is None
        assert u["cost_unknown_requests"] == 2
        assert [d["requests"] for d in lg.usage("day")] == [2]
        # the same batch again: nothing doubles
        units = [rows_from_record(record(f"dup-{i}")) for i in range(3)]
        for _ in range(2):
            store.write([u[0] for u in units], [a for u in units for a in u[1]])
        assert _pg_count(postgres_dsn, pg_schema, "requests") == 5
        assert _pg_count(postgres_dsn, pg_schema, "attempts") == 3 + 6
    finally:
        await client.aclose()
        lg.close()
    again = PostgresStore(postgres_dsn, schema=pg_schema)
    again.open()
    assert again.applied == []
    again.close()
    names = run_in_thread(
        pg_execute(postgres_dsn, f"SELECT name FROM {pg_schema}.llmrelay_migrations ORDER BY 1")
    )
    assert [r["name"] for r in names] == ["m001_requests", "m002_attempts", "m003_indexes"]


class _Proxy:
    """A TCP proxy to PostgreSQL that can be taken down (connections cut) and brought back."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.port = _closed_port()
        self.conns: list[asyncio.StreamWriter] = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        self.conns += [w, uw]
        await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w))

    def up(self) -> None:
        async def go() -> None:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        self._call(go())

    def down(self) -> None:
        async def go() -> None:
            if self.server is not None:
                self.server.close()
                await self.server.wait_closed()
                self.server = None
            for w in self.conns:
                w.transport.abort()
            self.conns.clear()

        self._call(go())

    def close(self) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.mark.services
def test_postgres_outage_keeps_rows_and_recovers(
    postgres_dsn: str,  # noqa: F811  (a fixture from .services)
    pg_schema: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="llmrelay.requestlog")
    port = int(postgres_dsn.rsplit(":", 1)[1].split("/")[0])
    proxy = _Proxy(port)
    proxy.up()
    dsn = postgres_dsn.replace(f":{port}/", f":{proxy.port}/")
    lg = RequestLog(PostgresStore(dsn, schema=pg_schema, connect_timeout=2), connect_now=True)
    try:
        lg.record(record("before"))
        assert lg.flush()
        proxy.down()  # the server goes away: the open connection is cut, new ones refused
        for i in range(3):
            lg.record(record(f"during-{i}"))
        assert not lg.flush()
        assert lg.pending == 3
        assert lg.failing
        proxy.up()
        assert lg.flush()
        assert lg.pending == 0
        assert not lg.failing
    finally:
        lg.close()
        proxy.close()
    assert _pg_count(postgres_dsn, pg_schema, "requests") == 4
    assert _pg_count(postgres_dsn, pg_schema, "attempts") == 8
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "retrying" in warnings[0].getMessage()
    assert any("works again" in r.getMessage() for r in caplog.records)
