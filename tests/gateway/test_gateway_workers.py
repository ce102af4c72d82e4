"""Two gateway processes sharing real Redis (limits, budgets) and PostgreSQL (keys): one key's
rpm and budget hold across both under 500 concurrent requests, and a key revoked through one
is refused by the other within the key cache time."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import orjson
import pytest

from llmrelay.gateway.keys import PostgresKeyStore
from llmrelay.providers.table import PROVIDERS
from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY
from ..redis_services import free_port, redis_prefix, redis_url  # noqa: F401
from ..services import pg_execute, postgres_dsn, run_in_thread  # noqa: F401

# ruff: noqa: F811  (pytest fixtures imported above are parameters below)

ADMIN = "sk-admin-workers-7c1d"
#: The name of this run's keys in the shared table (deleted afterwards).
_NAME = f"workers-test-{os.getpid()}"
MODEL = "openai/gpt-4.1-mini"


def _env(fake: FakeUpstream, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    for spec in PROVIDERS.values():
        if spec.wire != "test":
            env[spec.base_url_var] = fake.base_url_for(spec.wire)
        if spec.key_env:
            env[spec.key_env] = CANARY_KEY
    env["LLMRELAY_CONFIG"] = str(config)
    env["LLMRELAY_ADMIN_KEY"] = ADMIN
    env.pop("LLMRELAY_REDIS_URL", None)
    return env


@pytest.fixture
def two_gateways(
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    postgres_dsn: str,
) -> Iterator[tuple[list[str], FakeUpstream, str]]:
    with gateways(tmp_path, redis_url, redis_prefix, postgres_dsn) as running:
        yield running


@contextmanager
def gateways(
    tmp_path: Path, redis_url: str, redis_prefix: str, postgres_dsn: str, extra: str = ""
) -> Iterator[tuple[list[str], FakeUpstream, str]]:
    """Two ``llmrelay serve`` processes sharing Redis (state) and PostgreSQL (keys), in front
    of one fake upstream; ``extra``: more of their ``llmrelay.toml``."""
    config = tmp_path / "llmrelay.toml"
    config.write_text(
        f'[state]\nbackend = "redis"\nurl = "{redis_url}"\nprefix = "{redis_prefix}"\n\n'
        f'[server]\nkey_store = "{postgres_dsn}"\nkey_cache_ttl = 0.25\n\n{extra}'
    )
    with FakeUpstream.running(api_key=CANARY_KEY) as fake:
        env = _env(fake, config)
        ports = [free_port(), free_port()]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "llmrelay.cli", "serve", "--port", str(p)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for p in ports
        ]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        try:
            _wait_live(urls, procs)
            yield urls, fake, postgres_dsn
        finally:
            for p in procs:
                p.terminate()
            run_in_thread(
                pg_execute(postgres_dsn, f"DELETE FROM llmrelay_keys WHERE name = '{_NAME}'")
            )
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                assert p.stderr is not None
                p.stderr.close()


def _wait_live(urls: list[str], procs: list[subprocess.Popen[bytes]]) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    for url, proc in zip(urls, procs, strict=True):
        while True:
            if proc.poll() is not None:
                assert proc.stderr is not None
                raise AssertionError(proc.stderr.read().decode())
            try:
                with urllib.request.urlopen(url + "/health/live", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not start")
            time.sleep(0.05)  # waiting for another process to bind: no clock to fake


async def _create_key(dsn: str, **policy: object) -> tuple[str, str]:
    store = PostgresKeyStore(dsn)
    try:
        secret, rec = await store.create(name=_NAME, **policy)
    finally:
        await store.close()
    return secret, rec.id


async def _fire(urls: list[str], key: str, n: int, **extra: object) -> list[int]:
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    conn = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one(i: int) -> int:
            async with s.post(
                urls[i % 2] + "/v1/chat/completions", data=body, headers=headers
            ) as r:
                await r.read()
                return r.status

        return await asyncio.gather(*(one(i) for i in range(n)))


async def test_one_rpm_across_two_gateways(
    two_gateways: tuple[list[str], FakeUpstream, str],
) -> None:
    urls, fake, dsn = two_gateways
    key, _ = await _create_key(dsn, rpm=40)
    t0 = time.monotonic()
    statuses = await _fire(urls, key, 500)
    elapsed = time.monotonic() - t0
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429}
    # 40 at once, then one more every 1.5 s (a minute's 40 spread evenly), as providers count.
    assert 0 < admitted <= 40 + int(elapsed / 1.5)
    assert len(fake.requests) == admitted


async def test_one_budget_across_two_gateways(
    two_gateways: tuple[list[str], FakeUpstream, str],
) -> None:
    urls, fake, dsn = two_gateways
    fake.push(*[Reply.ok("x", input_tokens=10, output_tokens=1000) for _ in range(500)])
    # gpt-4.1-mini: $0.40 / $1.60 per million tokens: each answer costs $0.001604.
    key, _ = await _create_key(dsn, budget_usd=0.02, budget_period="total")
    statuses = await _fire(urls, key, 500, max_tokens=1000)
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429}
    assert admitted > 0
    assert admitted * (10 * 0.40 + 1000 * 1.60) / 1e6 <= 0.02  # what was spent fits
    assert len(fake.requests) == admitted


async def test_a_key_revoked_on_one_is_refused_by_the_other(
    two_gateways: tuple[list[str], FakeUpstream, str],
) -> None:
    urls, _fake, dsn = two_gateways
    key, key_id = await _create_key(dsn)
    assert await _fire(urls, key, 2) == [200, 200]
    store = PostgresKeyStore(dsn)
    try:
        await store.revoke(key_id)  # what `llmrelay keys revoke` does, from anywhere
    finally:
        await store.close()
    t0 = time.monotonic()
    while await _fire(urls, key, 2) != [401, 401]:
        assert time.monotonic() - t0 < 1.0, "still accepted a second after revocation"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_sigterm_finishes_in_flight_requests_and_flushes_the_log(
    tmp_path: Path, loop: str
) -> None:
    import signal
    import sqlite3

    log = tmp_path / "requests.db"
    config = tmp_path / "llmrelay.toml"
    config.write_text(
        f'[server]\nlog = true\nshutdown_grace = 20\nloop = "{loop}"\n\n[log]\npath = "{log}"\n'
    )
    with FakeUpstream.running(api_key=CANARY_KEY) as fake:
        fake.push(Reply.ok("slow answer", delay=1.0))
        env = _env(fake, config)
        env.pop("LLMRELAY_ADMIN_KEY")  # loopback, no keys: an open local proxy
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmrelay.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_live([url], [proc])
            body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
            async with aiohttp.ClientSession() as s:
                pending = asyncio.ensure_future(
                    s.post(
                        url + "/v1/chat/completions",
                        data=body,
                        headers={"content-type": "application/json"},
                    )
                )
                while not fake.requests:  # the call reached the upstream
                    await asyncio.sleep(0.01)
                proc.send_signal(signal.SIGTERM)
                r = await pending
                assert r.status == 200
                assert (await r.json())["choices"][0]["message"]["content"] == "slow answer"
                r.release()
            code = await asyncio.to_thread(proc.wait, 30)
            assert code == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
    with sqlite3.connect(log) as db:
        (n,) = db.execute("SELECT count(*) FROM requests").fetchone()
    assert n == 1


async def test_a_reasoning_item_from_one_gateway_replays_on_the_other(
    two_gateways: tuple[list[str], FakeUpstream, str],
) -> None:
    """Two processes with one admin key (no LLMRELAY_SIGNING_SECRET) derive one signing key: a
    /v1/responses reasoning item one signed for a key's team replays on the other, for that
    team's keys only; a changed blob is refused there too, and nothing reaches the upstream."""
    urls, fake, dsn = two_gateways
    ads, _ = await _create_key(dsn, team="ads")
    ads2, _ = await _create_key(dsn, team="ads")
    rival, _ = await _create_key(dsn, team="rival")
    fake.push(Reply.tool_call("get_weather", {"city": "Rome"}, reasoning="pondering"))
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    first = [{"role": "user", "content": "weather in Rome?"}]
    base = {"model": "anthropic/claude-haiku-4-5", "tools": tools, "reasoning": {"effort": "low"}}

    async def post(url: str, key: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        raw = orjson.dumps(body)
        async with (
            aiohttp.ClientSession() as s,
            s.post(url + "/v1/responses", data=raw, headers=headers) as r,
        ):
            return r.status, orjson.loads(await r.read())

    status, resp = await post(urls[0], ads, {**base, "input": first})
    assert status == 200, resp
    items: list[dict[str, object]] = resp["output"]  # type: ignore[assignment]
    assert any(i["type"] == "reasoning" and i.get("encrypted_content") for i in items)
    call = next(i for i in items if i["type"] == "function_call")
    follow = [
        *first,
        *items,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "warm"},
    ]
    sent = len(fake.requests)
    status, err = await post(urls[1], rival, {**base, "input": follow})
    assert status == 400, err

    def tamper(enc: str) -> str:  # one character of the signed content changed
        k = len("llmrelay.v2.") + 3
        return enc[:k] + ("B" if enc[k] != "B" else "C") + enc[k + 1 :]

    tampered = [
        {**i, "encrypted_content": tamper(str(i["encrypted_content"]))}
        if i.get("type") == "reasoning"
        else i
        for i in follow
    ]
    status, err = await post(urls[1], ads2, {**base, "input": tampered})
    assert status == 400, err
    assert len(fake.requests) == sent
    status, resp = await post(urls[1], ads2, {**base, "input": follow})
    assert status == 200, resp


def _serve(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", "serve", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("state", ["", '[state]\nbackend = "sqlite"\npath = "state.db"\n'])
def test_several_workers_without_shared_state_refuse_to_start(tmp_path: Path, state: str) -> None:
    """Each worker would keep its own rate-limit counters, budget ledger and breakers: a key
    would get N times its rpm and budget. ``serve --workers 2`` says so and binds nothing."""
    config = tmp_path / "llmrelay.toml"
    config.write_text(state)
    with FakeUpstream.running(api_key=CANARY_KEY) as fake:
        env = _env(fake, config)
    port = free_port()
    done = _serve(env, "--workers", "2", "--port", str(port))
    assert done.returncode == 2, done.stderr
    assert "LLMRELAY_REDIS_URL" in done.stderr
    assert "--workers 1" in done.stderr
    assert "2 times" in done.stderr
    assert "gateway on" not in done.stderr  # refused before anything started
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # nothing was listening there


async def test_workers_share_a_sqlite_key_store_and_request_log(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Several workers on one host with Redis for state and SQLite (WAL) for keys and the
    request log: both files made by the workers starting at once, a key created and revoked
    with `llmrelay keys` reaches every worker, every answered call is logged once."""
    import signal
    import sqlite3

    keys_db, log_db = tmp_path / "keys.db", tmp_path / "requests.db"
    config = tmp_path / "llmrelay.toml"
    config.write_text(
        f'[state]\nbackend = "redis"\nurl = "{redis_url}"\nprefix = "{redis_prefix}"\n\n'
        f'[server]\nkey_store = "{keys_db}"\nkey_cache_ttl = 0.25\nlog = true\n\n'
        f'[log]\npath = "{log_db}"\n'
    )
    with FakeUpstream.running(api_key=CANARY_KEY) as fake:
        env = _env(fake, config)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmrelay.cli", "serve", "--port", str(port), "--workers", "3"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_live([url], [proc])
            made = subprocess.run(
                [sys.executable, "-m", "llmrelay.cli", "keys", "--key-store", str(keys_db),
                 "--json", "create", "--name", "w"],
                env=env, capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            key = orjson.loads(made.stdout)
            # One connection per request: the kernel spreads them over the workers.
            statuses = [s for _ in range(30) for s in await _fire([url, url], key["key"], 1)]
            assert statuses == [200] * 30
            subprocess.run(
                [sys.executable, "-m", "llmrelay.cli", "keys", "--key-store", str(keys_db),
                 "revoke", key["id"]],
                env=env, capture_output=True, timeout=60, check=True,
            )  # fmt: skip
            t0 = time.monotonic()
            while set(await _fire([url, url], key["key"], 30)) != {401}:
                assert time.monotonic() - t0 < 2.0, "a worker still accepts the revoked key"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
        answered = len(fake.requests)
    with sqlite3.connect(log_db) as db:
        (n,) = db.execute("SELECT count(*) FROM requests").fetchone()
    assert n == answered >= 30
