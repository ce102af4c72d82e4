"""``llmrelay serve`` and its signals, on real processes: SIGTERM is graceful and idempotent (a
second one, as systemd's control-group stop sends every worker besides the parent's forward,
changes nothing), and a second SIGINT (Ctrl-C twice) cuts what is in flight at once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import orjson
import pytest

from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY
from ..redis_services import free_port, redis_prefix, redis_url  # noqa: F401
from .test_gateway_workers import MODEL, _env, _wait_live

# ruff: noqa: F811  (pytest fixtures imported above are parameters below)

WORDS = [f"w{i}" for i in range(12)]


@contextmanager
def _serving(
    tmp_path: Path, fake: FakeUpstream, *argv: str, state: str = "", loop: str = "asyncio"
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``llmrelay serve`` (loopback, no keys, the request log on) as a child process."""
    log = tmp_path / "requests.db"
    config = tmp_path / "llmrelay.toml"
    config.write_text(
        f'{state}[server]\nlog = true\nshutdown_grace = 60\nloop = "{loop}"\n\n'
        f'[log]\npath = "{log}"\n'
    )
    env = _env(fake, config)
    env.pop("LLMRELAY_ADMIN_KEY")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmrelay.cli", "serve", "--port", str(port), *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a group of its own, as a shell's job (killpg: Ctrl-C)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_live([url], [proc])
        yield proc, url, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@asynccontextmanager
async def _stream(url: str) -> AsyncIterator[aiohttp.StreamReader]:
    """A streamed chat request whose first event has arrived (the call is in flight)."""
    body = orjson.dumps(
        {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    )
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            url + "/v1/chat/completions", data=body, headers={"content-type": "application/json"}
        ) as r,
    ):
        assert r.status == 200
        first = await r.content.readline()
        assert first.startswith(b"data: ")
        yield r.content


async def _rest(content: aiohttp.StreamReader) -> str:
    """The text of the rest of a stream; raises if it is cut before ``[DONE]``."""
    text = []
    async for line in content:
        if line.startswith(b"data: [DONE]"):
            return "".join(text)
        if line.startswith(b"data: "):
            for choice in orjson.loads(line[6:])["choices"]:
                text.append(choice["delta"].get("content") or "")
    raise AssertionError("the stream ended before [DONE]")


def _refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) != 0


async def _until_refused(url: str) -> None:
    """Until nothing listens on the port any more: the stop signal was taken."""
    for _ in range(3000):
        if _refused(url):
            return
        await asyncio.sleep(0.01)  # another process's signal handling: no clock to fake
    raise AssertionError(f"{url} still accepts connections")


def _listeners(url: str) -> int:
    """How many sockets listen on the URL's (IPv4) port: one per started worker."""
    port = int(url.rsplit(":", 1)[1])
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


async def _all_listening(url: str, workers: int) -> None:
    for _ in range(3000):
        if _listeners(url) == workers:
            return
        await asyncio.sleep(0.01)  # other processes starting: no clock to fake
    raise AssertionError(f"{workers} workers did not all start")


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _logged(log: Path) -> int:
    with sqlite3.connect(log) as db:
        (n,) = db.execute("SELECT count(*) FROM requests").fetchone()
    return int(n)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_a_second_sigterm_changes_nothing(tmp_path: Path, loop: str) -> None:
    with FakeUpstream.running(api_key=CANARY_KEY) as fake:
        fake.push(Reply.ok(" ".join(WORDS), pace=0.1))
        with _serving(tmp_path, fake, loop=loop) as (proc, url, log):
            async with _stream(url) as content:
                proc.send_signal(signal.SIGTERM)
                await _until_refused(url)
                proc.send_signal(signal.SIGTERM)  # the same stop, asked again
                text = await _rest(content)
            assert text.split() == WORDS[1:] or text.split() == WORDS
            assert await asyncio.to_thread(proc.wait, 60) == 0
        assert _logged(log) == 1


async def test_workers_stopped_by_the_parent_and_directly_finish_their_streams(
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
) -> None:
    """systemd's default stop (KillMode=control-group) sends SIGTERM to every process of the
    service: each worker gets it directly, then once more from the parent forwarding its own."""
    state = f'[state]\nbackend = "redis"\nurl = "{redis_url}"\nprefix = "{redis_prefix}"\n\n'
    with FakeUpstream.running(api_key=CANARY_KEY) as fake:
        fake.push(Reply.ok(" ".join(WORDS), pace=0.1))
        with _serving(tmp_path, fake, "--workers", "2", state=state) as (proc, url, log):
            await _all_listening(url, 2)
            async with _stream(url) as content:
                workers = _children(proc.pid)
                assert len(workers) >= 2  # the workers (and multiprocessing's tracker)
                for pid in workers:
                    os.kill(pid, signal.SIGTERM)
                await _until_refused(url)
                proc.send_signal(signal.SIGTERM)  # forwarded: every worker's second
                text = await _rest(content)
            assert text.split() == WORDS[1:] or text.split() == WORDS
            assert await asyncio.to_thread(proc.wait, 60) == 0
        assert _logged(log) == 1


async def test_one_ctrl_c_to_a_terminal_job_of_workers_is_one_sigint(
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
) -> None:
    """Ctrl-C in a terminal signals the foreground job's process group: the workers are not in
    it (else each would get it twice, directly and forwarded, and cut its streams)."""
    state = f'[state]\nbackend = "redis"\nurl = "{redis_url}"\nprefix = "{redis_prefix}"\n\n'
    with FakeUpstream.running(api_key=CANARY_KEY) as fake:
        fake.push(Reply.ok(" ".join(WORDS), pace=0.1))
        with _serving(tmp_path, fake, "--workers", "2", state=state) as (proc, url, log):
            await _all_listening(url, 2)
            workers = [
                pid
                for pid in _children(proc.pid)
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
            assert len(workers) == 2
            assert all(os.getpgid(pid) == pid for pid in workers)
            async with _stream(url) as content:
                os.killpg(proc.pid, signal.SIGINT)
                await _until_refused(url)
                text = await _rest(content)
            assert text.split() == WORDS[1:] or text.split() == WORDS
            assert await asyncio.to_thread(proc.wait, 60) == 0
        assert _logged(log) == 1


async def test_a_second_sigint_cuts_the_streams_at_once(tmp_path: Path) -> None:
    """Ctrl-C twice: the first stops as SIGTERM does, the second cuts the stream (a minute of
    it left, a grace of a minute) and the worker exits, its log flushed."""
    with FakeUpstream.running(api_key=CANARY_KEY) as fake:
        fake.push(Reply.ok(" ".join(f"w{i}" for i in range(600)), pace=0.1))
        with _serving(tmp_path, fake) as (proc, url, log):
            async with _stream(url) as content:
                proc.send_signal(signal.SIGINT)
                await _until_refused(url)
                proc.send_signal(signal.SIGINT)
                with pytest.raises((AssertionError, aiohttp.ClientPayloadError)):
                    await _rest(content)
            assert await asyncio.to_thread(proc.wait, 30) == 0
        assert _logged(log) == 1


@contextmanager
def _header_timeout_gateway(tmp_path: Path) -> Iterator[tuple[str, int]]:
    config = str(_config(tmp_path))
    with (
        FakeUpstream.running(api_key=CANARY_KEY) as fake,
        _serving(tmp_path, fake, "--config", config) as (_, url, _log),
    ):
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "timeouts.toml"
    config.write_text("[server]\nheader_timeout = 0.5\n")
    return config


def _closed_while_dribbling(sock: socket.socket, lines: int = 200) -> bool:
    """Send one more byte of a header's value every 0.1 s (well within aiohttp's limits on
    a head's size): True once the server closed the connection."""
    sock.settimeout(0.1)
    for _ in range(lines):
        try:
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            pass  # still open: the next line
        except ConnectionResetError:
            return True
        try:
            sock.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError):
            return True
    return False


def test_a_client_that_dribbles_its_headers_is_closed_after_header_timeout(
    tmp_path: Path,
) -> None:
    """Slowloris: a request head that never ends (a byte every 0.1 s) is closed after
    ``[server] header_timeout`` -- on a new connection and on a kept-alive one -- while an idle
    kept-alive connection that has sent nothing of its next request is not."""
    with _header_timeout_gateway(tmp_path) as (host, port):
        with socket.create_connection((host, port)) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: ")
            assert _closed_while_dribbling(sock)
        with socket.create_connection((host, port)) as sock:
            get = b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n"
            sock.sendall(get)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            # Idle past the timeout (sent nothing of its next request): still served.
            sock.settimeout(1.5)
            with pytest.raises(TimeoutError):
                sock.recv(1)
            sock.sendall(get)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /health/live HTTP/1.1\r\nx-slow: ")
            assert _closed_while_dribbling(sock)
        with socket.create_connection((host, port)) as sock:  # connected, sends nothing
            sock.settimeout(20)
            assert sock.recv(1) == b""
        # A body is read_timeout's: one sent over longer than header_timeout is answered.
        body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
        with socket.create_connection((host, port)) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
                b"content-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % (port, len(body))
            )
            sock.settimeout(0.1)
            for i in range(15):  # 1.5 s
                with pytest.raises(TimeoutError):
                    sock.recv(1)
                sock.sendall(body[i : i + 1])
            sock.sendall(body[15:])
            sock.settimeout(20)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
