"""What the request log stores, value for value, now that rows are built with ``tuple.__new__``
and SQLite binds them from one flat list, many rows per statement (NULL as a NaN, bools as
0/1): bursts of every size, NULLs, duplicates, refused rows and the all-or-nothing batch, in
SQLite and on the local PostgreSQL."""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from llmrelay.catalog.costs import Cost
from llmrelay.core.layers import CallRecord
from llmrelay.core.trace import Attempt
from llmrelay.errors import StateStoreError
from llmrelay.observe.recorders import attempt_cost, call_cost
from llmrelay.observe.requestlog import (
    AttemptRow,
    LogFilter,
    PostgresStore,
    RequestLog,
    RequestRow,
    SQLiteStore,
    rows_from_record,
)
from llmrelay.observe.requestlog.rows import ATTEMPT_COLUMNS, REQUEST_COLUMNS
from llmrelay.types import Usage

from ..services import pg_execute, pg_schema, postgres_dsn, run_in_thread  # noqa: F401

DEP = "openai/gpt-4.1-mini"


def call(i: int, **kw: Any) -> CallRecord:
    """Call ``i``: its shape varies with ``i`` (attempts, retries, NULLs, tags, content)."""
    usage = Usage(10 + i, 5 + i, cached_tokens=i % 3, reasoning_tokens=i % 2)
    attempts = [Attempt(DEP, "success", 1, latency_s=0.25, usage=usage, cost_usd=1e-6 * i)]
    if i % 3 == 1:  # an error, then a retry that worked
        attempts = [
            Attempt(DEP, "error", 1, "ServerError", 500, 0.01, 0.0, "status 500", "boom"),
            Attempt(DEP, "success", 2, latency_s=0.02, backoff_s=0.5, usage=usage),
        ]
    elif i % 3 == 2:  # a skipped candidate, then another deployment (no provider prefix)
        attempts = [
            Attempt(DEP, "skipped", 1, reason="breaker open"),
            Attempt("bare-model", "success", 1, latency_s=0.3),
        ]
    fields: dict[str, Any] = {
        "trace_id": f"trace-{i}",
        "started_at": 1_700_000_000.123456 + i / 7,
        "alias": "fast" if i % 2 else None,
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "outcome": "success",
        "latency_s": 0.5 + i / 1000,
        "usage": usage,
        "cost": Cost(1e-5 * i, True) if i % 4 else None,
        "attempts": attempts,
        "time_to_first_token_s": 0.1 if i % 5 == 0 else None,
        "stream": i % 5 == 0,
        "tenant": f"team:{i % 3}" if i % 2 == 0 else None,
        "tags": {"vkey": f"k{i}", "b": "x"} if i % 2 else {},
    }
    fields.update(kw)
    return CallRecord(**fields)


def expected_rows(rec: CallRecord, row_id: str) -> tuple[RequestRow, list[AttemptRow]]:
    """The rows by the definition (named fields, one by one): what the builder must give."""
    atts = []
    for i, a in enumerate(rec.attempts, 1):
        provider, sep, model = a.deployment.partition("/")
        if not sep:
            provider, model = "", a.deployment
        u = a.usage
        cost, known = attempt_cost(a)
        atts.append(
            AttemptRow(
                id=f"{row_id}.{i}",
                request_id=row_id,
                trace_id=rec.trace_id,
                started_at=rec.started_at,
                idx=i,
                provider=provider,
                model=model,
                number=a.number,
                outcome=a.outcome,
                error=a.error,
                status=a.status,
                latency_s=a.latency_s,
                backoff_s=a.backoff_s,
                reason=a.reason,
                message=a.message,
                input_tokens=u.input_tokens if u else 0,
                output_tokens=u.output_tokens if u else 0,
                cached_tokens=u.cached_tokens if u else 0,
                reasoning_tokens=u.reasoning_tokens if u else 0,
                cost_usd=cost,
                cost_known=known,
            )
        )
    cost, known = call_cost(rec)
    tags = dict(rec.tags)
    req = RequestRow(
        id=row_id,
        trace_id=rec.trace_id,
        started_at=rec.started_at,
        alias=rec.alias,
        provider=rec.provider,
        model=rec.model,
        outcome=rec.outcome,
        error=rec.error,
        status=rec.status,
        input_tokens=rec.usage.input_tokens,
        output_tokens=rec.usage.output_tokens,
        cached_tokens=rec.usage.cached_tokens,
        reasoning_tokens=rec.usage.reasoning_tokens,
        cost_usd=cost,
        cost_known=known,
        latency_s=rec.latency_s,
        ttft_s=rec.time_to_first_token_s,
        cache_hit=rec.cache_hit,
        stream=rec.stream,
        attempts=len(atts),
        retries=sum(a.is_retry for a in rec.attempts),
        tenant=rec.tenant,
        # sorted keys, no spaces: what codec.dumps(..., sort_keys=True) wrote
        tags="{" + ",".join(f'"{k}":"{tags[k]}"' for k in sorted(tags)) + "}",
        prompt=None,
        response=rec.response_text,
    )
    return req, atts


def stored(db: Path, table: str) -> list[dict[str, Any]]:
    """Every row in insertion order, with each value's SQLite storage class."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        cols = REQUEST_COLUMNS if table == "requests" else ATTEMPT_COLUMNS
        types = ", ".join(f"typeof({c}) AS t_{c}" for c in cols)
        return [dict(r) for r in conn.execute(f"SELECT *, {types} FROM {table} ORDER BY rowid")]


def as_stored(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row as SQLite stores it: None as NULL, bools as 0/1 integers."""
    out: dict[str, Any] = {}
    for name, v in zip(row._fields, row, strict=True):  # type: ignore[attr-defined]
        out[name] = int(v) if isinstance(v, bool) else v
        kind = {type(None): "null", bool: "integer", int: "integer", float: "real", str: "text"}
        out[f"t_{name}"] = kind[type(v)]
    return out


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "requests.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(db)
    yield s
    s.close()


# --------------------------------------------------------------------------- the row builder


def test_the_builder_gives_the_rows_field_by_field() -> None:
    for i in range(12):
        rec = call(i, error="ServerError" if i == 3 else None, status=503 if i == 3 else None)
        req, atts = rows_from_record(rec, f"rid{i}")
        want_req, want_atts = expected_rows(rec, f"rid{i}")
        assert type(req) is RequestRow
        assert all(type(a) is AttemptRow for a in atts)
        assert req == want_req
        assert atts == want_atts
        assert req.to_dict() == want_req._asdict()


def test_the_builder_reads_any_tags_mapping_and_no_usage() -> None:
    tags: Mapping[str, str] = MappingProxyType({"z": "1", "a": "2"})
    rec = call(1, tags=tags, attempts=[Attempt(DEP, "error", 1, "Timeout", None, 1.0)])
    req, atts = rows_from_record(rec, "r")
    assert req.tags == '{"a":"2","z":"1"}'
    assert (atts[0].input_tokens, atts[0].output_tokens) == (0, 0)
    assert (atts[0].cost_usd, atts[0].cost_known) == (0.0, True)
    assert req.retries == 0
    # a second attempt that reached the provider is a retry; a skipped one is not
    rec = call(
        2,
        attempts=[
            Attempt(DEP, "error", 1),
            Attempt(DEP, "error", 2),
            Attempt(DEP, "skipped", 3),
            Attempt(DEP, "success", 4),
        ],
    )
    assert rows_from_record(rec, "r")[0].retries == 2


# ------------------------------------------------------------------- SQLite, value for value


@pytest.mark.parametrize("n", [1, 2, 31, 32, 33, 63, 64, 65, 100, 257])
def test_every_row_of_a_batch_is_stored_as_built(store: SQLiteStore, db: Path, n: int) -> None:
    units = [rows_from_record(call(i), f"id-{i:04d}") for i in range(n)]
    reqs = [u[0] for u in units]
    atts = [a for u in units for a in u[1]]
    store.write(reqs, atts)
    assert stored(db, "requests") == [as_stored(r) for r in reqs]
    assert stored(db, "attempts") == [as_stored(a) for a in atts]


def test_nulls_bools_and_odd_values_are_stored_as_before(store: SQLiteStore, db: Path) -> None:
    rec = call(
        0,
        alias=None,
        error=None,
        status=None,
        tenant=None,
        cache_hit=True,
        stream=False,
        started_at=2.0**52 + 0.5,
        trace_id="nul\x00inside",
        model="ünïcode-模型",
        usage=Usage(2**53 - 1, 0),
        time_to_first_token_s=math.nan,  # SQLite always stored a NaN as NULL
    )
    req, atts = rows_from_record(rec, "odd")
    store.write([req], atts)
    (row,) = stored(db, "requests")
    assert row["trace_id"] == "nul\x00inside"
    assert row["model"] == "ünïcode-模型"
    assert row["input_tokens"] == 2**53 - 1
    assert row["started_at"] == 2.0**52 + 0.5
    assert (row["cache_hit"], row["t_cache_hit"]) == (1, "integer")
    assert (row["stream"], row["t_stream"]) == (0, "integer")
    assert (row["cost_known"], row["t_cost_known"]) == (1, "integer")
    for col in ("alias", "error", "status", "ttft_s", "tenant", "prompt", "response"):
        assert (row[col], row[f"t_{col}"]) == (None, "null")
    # what the store reads back: real bools and None
    got = store.recent(LogFilter())[0]
    assert (got["cache_hit"], got["stream"]) == (True, False)
    assert type(got["cache_hit"]) is bool
    assert (got["alias"], got["ttft_s"]) == (None, None)


def test_a_none_where_null_is_refused_fails_the_whole_batch(store: SQLiteStore, db: Path) -> None:
    reqs = [rows_from_record(call(i), f"id-{i}")[0] for i in range(40)]
    bad = reqs[35]._replace(provider=None)  # in the second statement of the batch
    with pytest.raises(StateStoreError, match="NOT NULL"):
        store.write([*reqs[:35], bad, *reqs[36:]], [])
    with pytest.raises(StateStoreError, match="NOT NULL"):
        store.write(reqs[:3], [rows_from_record(call(0), "x")[1][0]._replace(model=None)])
    assert stored(db, "requests") == []  # all or nothing
    store.write(reqs, [])
    assert len(stored(db, "requests")) == 40


def test_a_row_of_the_wrong_length_is_refused_and_shifts_nothing(
    store: SQLiteStore, db: Path
) -> None:
    store.open()
    reqs = [rows_from_record(call(i), f"id-{i}")[0] for i in range(3)]
    short = tuple(reqs[1])[:-1]
    with pytest.raises(StateStoreError, match="writing 3 requests failed"):
        store.write([reqs[0], short, reqs[2]], [])  # type: ignore[list-item]
    assert stored(db, "requests") == []


def test_a_batch_holding_one_id_twice_stores_the_first(store: SQLiteStore, db: Path) -> None:
    first = rows_from_record(call(1), "same")[0]
    second = rows_from_record(call(2), "same")[0]
    others = [rows_from_record(call(i), f"id-{i}")[0] for i in range(3, 40)]
    store.write([first, *others[:10], second, *others[10:]], [])
    rows = stored(db, "requests")
    assert len(rows) == 38
    assert rows[0] == as_stored(first)


def test_plain_tuples_and_lists_in_column_order_are_rows_too(store: SQLiteStore, db: Path) -> None:
    req, atts = rows_from_record(call(1), "plain")
    store.write([tuple(req)], [list(a) for a in atts])  # type: ignore[list-item]
    assert stored(db, "requests") == [as_stored(req)]
    assert stored(db, "attempts") == [as_stored(a) for a in atts]


# --------------------------------------------------------------------------- through the writer


def test_a_burst_is_written_in_full_without_a_flush(db: Path) -> None:
    """More calls than a batch wake the writer (record() sets the event once, not per call)."""
    lg = RequestLog(db, batch_size=64, flush_interval=3600)
    try:
        for i in range(1000):
            lg.record(call(i))
        # The writer drains what is queued when it wakes, so batches need not be multiples of
        # 64; what may stay unwritten without flush() or the interval is less than one batch.
        deadline = time.monotonic() + 30
        while lg.written <= 1000 - 64 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lg.written > 1000 - 64  # every full batch, without flush() or the interval
        assert lg.flush()
        assert (lg.written, lg.rejected, lg.dropped, lg.pending) == (1000, 0, 0, 0)
    finally:
        lg.close()
    rows = stored(db, "requests")
    assert [r["trace_id"] for r in rows] == [f"trace-{i}" for i in range(1000)]
    assert len({r["id"] for r in rows}) == 1000
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # ids grow
    assert len(stored(db, "attempts")) == sum(len(call(i).attempts) for i in range(1000))


def test_close_writes_a_burst_of_odd_size(db: Path) -> None:
    lg = RequestLog(db, batch_size=10_000, flush_interval=3600)
    for i in range(333):
        lg.record(call(i))
    lg.close()
    assert lg.written == 333
    assert len(stored(db, "requests")) == 333


def test_rows_the_builder_cannot_make_are_rejected_alone(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lg = RequestLog(db)
    try:
        lg.record(call(1))
        lg.record(call(3, usage=None))  # no usage: the builder fails on this call only
        lg.record(call(4))
        assert lg.flush()
        assert (lg.written, lg.rejected) == (2, 1)
    finally:
        lg.close()
    assert [r["trace_id"] for r in stored(db, "requests")] == ["trace-1", "trace-4"]
    assert any("trace-3" in r.getMessage() for r in caplog.records)


def test_a_record_that_is_not_a_call_record_is_rejected_alone(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A custom recorder chain may pass on anything. Naming the bad record's trace id in the
    error raised again (it has none), out of the drain: the record vanished uncounted and the
    flush() drained with it never finished (False, after its whole timeout)."""
    lg = RequestLog(db, flush_interval=3600)
    try:
        lg.record(call(1))
        lg.record(object())  # type: ignore[arg-type]
        lg.record(None)  # type: ignore[arg-type]
        lg.record(call(2))
        assert lg.flush(timeout=10)
        assert (lg.written, lg.rejected, lg.pending) == (2, 2, 0)
    finally:
        lg.close()
    assert [r["trace_id"] for r in stored(db, "requests")] == ["trace-1", "trace-2"]
    assert any("cannot build" in r.getMessage() for r in caplog.records)


def test_calls_recorded_from_many_threads_and_tasks_at_once_are_all_written(db: Path) -> None:
    """record() from 16 threads and 2,000 asyncio tasks at once, with batches smaller than
    the bursts (the writer is woken only when its event is unset): every call is written by
    close(), once."""
    import asyncio
    import threading

    lg = RequestLog(db, batch_size=7, flush_interval=3600, max_pending=1_000_000)
    per = 500

    def worker(k: int) -> None:
        for j in range(per):
            lg.record(call(k * per + j))

    async def tasks() -> None:
        async def one(i: int) -> None:
            await asyncio.sleep(0)
            lg.record(call(100_000 + i))

        await asyncio.gather(*(one(i) for i in range(2000)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    asyncio.run(tasks())
    for t in threads:
        t.join()
    lg.close()
    assert (lg.written, lg.rejected, lg.dropped, lg.pending) == (16 * per + 2000, 0, 0, 0)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        ((n, ids),) = conn.execute("SELECT count(*), count(DISTINCT trace_id) FROM requests")
    assert (n, ids) == (16 * per + 2000, 16 * per + 2000)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.services
def test_postgres_stores_a_burst_value_for_value(
    postgres_dsn: str,  # noqa: F811  (a fixture from .services)
    pg_schema: str,  # noqa: F811
) -> None:
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    lg = RequestLog(store, batch_size=50)
    try:
        for i in range(300):
            lg.record(call(i))
        assert lg.flush()
        assert lg.written == 300
    finally:
        lg.close()
    rows = run_in_thread(
        pg_execute(
            postgres_dsn,
            f"SELECT *, extract(epoch FROM started_at)::float8 AS t FROM "
            f"{pg_schema}.llmrelay_requests ORDER BY trace_id",
        )
    )
    assert len(rows) == 300
    by_trace = {r["trace_id"]: dict(r) for r in rows}
    for i in range(300):
        rec = call(i)
        got = by_trace[f"trace-{i}"]
        want, _ = expected_rows(rec, got["id"])
        for name in REQUEST_COLUMNS:
            if name == "started_at":
                assert got["t"] == pytest.approx(rec.started_at, abs=1e-6)
            elif name == "tags":
                assert got["tags"].replace(" ", "") == want.tags
            else:
                assert got[name] == getattr(want, name), name
    n = run_in_thread(
        pg_execute(postgres_dsn, f"SELECT count(*) AS n FROM {pg_schema}.llmrelay_attempts")
    )
    assert n[0]["n"] == sum(len(call(i).attempts) for i in range(300))
