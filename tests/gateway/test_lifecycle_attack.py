"""ATTACK (adversarial tests of gateway/lifecycle.py and serve --workers): stop signals that
come while the workers are still starting, on real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmrelay.testing.fake import FakeUpstream

from ..conftest import CANARY_KEY
from ..redis_services import free_port, redis_prefix, redis_url  # noqa: F401
from .test_gateway_workers import _env

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


def _until_children(proc: subprocess.Popen[bytes], n: int) -> None:
    deadline = time.monotonic() + 30
    while len(_children(proc.pid)) < n:
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.001)  # another process starting its children: no clock to fake


def test_sigterm_while_the_parent_starts_its_workers_stops_them_all(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """ATTACK: SIGTERM as soon as the parent has started its first child. The parent forwarded
    it only to the workers started by then; the ones it started afterwards never got it and
    served on, and the parent waited for them forever."""
    with _starting(tmp_path, redis_url, redis_prefix) as proc:
        _until_children(proc, 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


def test_sigterm_while_the_workers_start_is_a_clean_stop(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """ATTACK: SIGTERM once every worker is started but before they listen (still importing).
    The parent's forward killed them (Python's default action: no handler installed yet), so
    a stop at the wrong second exited 1 -- systemd reports the service as failed."""
    with _starting(tmp_path, redis_url, redis_prefix) as proc:
        _until_children(proc, WORKERS + 1)  # the workers and multiprocessing's tracker
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
