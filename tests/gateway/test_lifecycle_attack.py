"""ATTACK (adversarial tests of gateway/lifecycle.py and serve --workers), on real processes:
stop signals that come while the workers are still starting, or while a body is uploading."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from llmrelay.testing.fake import FakeUpstream

from ..conftest import CANARY_KEY
from ..redis_services import free_port, redis_prefix, redis_url  # noqa: F401
from .test_gateway_signals import _serving, _until_refused
from .test_gateway_workers import MODEL, _env

# ruff: noqa: F811  (pytest fixtures imported above are parameters below)

WORKERS = 4


@contextmanager
def _starting(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``llmrelay serve --workers 4`` (Redis state), just launched."""
    config = tmp_path / "llmrelay.toml"
    config.write_text(
        f'[state]\nbackend = "redis"\nurl = "{redis_url}"\nprefix = "{redis_prefix}"\n\n'
        f'[server]\nlog = true\n\n[log]\npath = "{tmp_path / "requests.db"}"\n'
    )
    with FakeUpstream.running(api_key=CANARY_KEY) as fake:
        env = _env(fake, config)
        env.pop("LLMRELAY_ADMIN_KEY")
        argv = ["serve", "--port", str(free_port()), "--workers", str(WORKERS)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmrelay.cli", *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()  # the workers follow it (PR_SET_PDEATHSIG)
                proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def _workers(pid: int) -> int:
    """How many of ``pid``'s children are workers (not multiprocessing's resource tracker)."""
    n = 0
    for child in _children(pid):
        try:
            n += b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            pass
    return n


def _until_workers(proc: subprocess.Popen[bytes], n: int) -> None:
    deadline = time.monotonic() + 30
    while _workers(proc.pid) < n:
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.001)  # another process starting its children: no clock to fake


def test_sigterm_while_the_parent_starts_its_workers_stops_them_all(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """ATTACK: SIGTERM as soon as the parent has started its first worker. The parent forwarded
    it only to the workers started by then; the ones it started afterwards never got it and
    served on, and the parent waited for them forever."""
    with _starting(tmp_path, redis_url, redis_prefix) as proc:
        _until_workers(proc, 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


def test_sigterm_while_the_workers_start_is_a_clean_stop(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """ATTACK: SIGTERM once every worker is started but before they listen (still importing).
    The parent's forward killed them (Python's default action: no handler installed yet), so
    a stop at the wrong second exited 1 -- systemd reports the service as failed."""
    with _starting(tmp_path, redis_url, redis_prefix) as proc:
        _until_workers(proc, WORKERS)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_request_whose_body_is_on_its_way_at_sigterm_is_answered(
    tmp_path: Path, loop: str
) -> None:
    """ATTACK: a request in flight at SIGTERM gets the grace to finish -- one whose body was
    still on its way too. aiohttp's shutdown marks every connection closing, and a closing
    connection dropped what it received: the body sent right after the stop never reached the
    handler, which answered 408 at read_timeout (30 s) though all of it had arrived."""
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    with (
        FakeUpstream.running(api_key=CANARY_KEY) as fake,
        _serving(tmp_path, fake, loop=loop) as (proc, url, _log),
    ):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s:%s\r\n"
                b"content-type: application/json\r\nexpect: 100-continue\r\n"
                b"content-length: %d\r\n\r\n" % (host.encode(), port.encode(), len(body))
            )
            sock.settimeout(20)
            assert sock.recv(4096).startswith(b"HTTP/1.1 100")  # its handler reads the body
            proc.send_signal(signal.SIGTERM)
            asyncio.run(_until_refused(url))
            sock.sendall(body)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert proc.wait(60) == 0
