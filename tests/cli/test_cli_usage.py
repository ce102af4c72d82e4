"""``llmrelay usage`` and ``llmrelay logs`` over a real log, and ``llmrelay chat`` writing it."""

from __future__ import annotations

import io
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmrelay.catalog.costs import Cost
from llmrelay.cli.main import main
from llmrelay.core.layers import CallRecord
from llmrelay.core.trace import Attempt
from llmrelay.observe.requestlog import RequestLog
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import Usage

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY, Run

DAY = 86400.0
NOW = time.time()


def rec(trace: str, started: float, **kw: Any) -> CallRecord:
    provider = kw.pop("provider", "openai")
    model = kw.pop("model", "gpt-4.1-mini")
    usage = kw.pop("usage", Usage(100, 40))
    attempts = kw.pop(
        "attempts", [Attempt(f"{provider}/{model}", "success", 1, latency_s=0.2, usage=usage)]
    )
    fields: dict[str, Any] = {
        "trace_id": trace,
        "started_at": started,
        "alias": None,
        "provider": provider,
        "model": model,
        "outcome": "success",
        "latency_s": 0.25,
        "usage": usage,
        "cost": Cost(0.001, True),
        "attempts": attempts,
    }
    fields.update(kw)
    return CallRecord(**fields)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A log with calls today and three days ago, known and unknown prices, an error with a
    retry, and a cache hit."""
    path = tmp_path / "log.db"
    with RequestLog(path) as log:
        log.record(rec("old-1", NOW - 3 * DAY))
        log.record(rec("new-1", NOW - 60, alias="fast"))
        log.record(rec("new-2", NOW - 50, cost=Cost(0.002, True)))
        log.record(
            rec(
                "new-err",
                NOW - 40,
                outcome="error",
                error="ServerError",
                status=503,
                usage=Usage(),
                cost=None,
                attempts=[
                    Attempt("openai/gpt-4.1-mini", "error", 1, "ServerError", 503, 0.1),
                    Attempt(
                        "openai/gpt-4.1-mini",
                        "error",
                        2,
                        "ServerError",
                        503,
                        0.1,
                        0.5,
                        "retries exhausted",
                        "upstream down",
                    ),
                ],
            )
        )
        log.record(rec("new-hit", NOW - 30, outcome="cache_hit", cache_hit=True, cost=None))
        log.record(rec("llama-1", NOW - 20, provider="groq", model="llama", cost=None))
        log.record(rec("mixed", NOW - 10, provider="groq", model="mixed", cost=Cost(0.003, True)))
        log.record(rec("mixed-2", NOW - 5, provider="groq", model="mixed", cost=None))
    return path


def _today() -> str:
    return datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- usage


def test_usage_table_by_model_and_day(cli: Run, db: Path) -> None:
    code, out, err = cli("usage", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "MODEL", "REQUESTS", "ERRORS", "CACHE_HITS", "INPUT_TOKENS", "OUTPUT_TOKENS", "COST_(USD)",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line and "_" not in line}
    # 5 calls on gpt-4.1-mini: the cache hit spends no tokens, the error none either
    assert rows["openai/gpt-4.1-mini"] == ["5", "1", "1", "300", "120", "0.004000"]
    assert rows["groq/llama"] == ["1", "0", "0", "100", "40", "?"]  # unknown, never 0
    assert rows["groq/mixed"] == ["2", "0", "0", "200", "80", "0.003000+?"]
    assert rows["total"] == ["8", "1", "1", "600", "240", "0.007000+?"]
    assert _today() in out
    assert "8 requests, all time" in err
    assert "2 with an unknown price" in err


def test_usage_since_and_days(cli: Run, db: Path) -> None:
    code, out, _ = cli("usage", "--db", str(db), "--since", "1d", "--json")
    assert code == 0
    doc = orjson.loads(out)
    assert doc["total"]["requests"] == 7
    assert [d["day"] for d in doc["by_day"]] in ([_today()], [d["day"] for d in doc["by_day"]])
    code, out, _ = cli("usage", "--db", str(db), "--days", "5", "--json")
    doc = orjson.loads(out)
    assert doc["total"]["requests"] == 8
    assert len(doc["by_day"]) == 2
    assert doc["by_day"][0]["requests"] == 1
    by_model = {r["model"]: r for r in doc["by_model"]}
    assert by_model["groq/llama"]["cost_usd"] is None
    assert by_model["groq/llama"]["cost_unknown_requests"] == 1
    assert doc["total"]["cost_usd"] == pytest.approx(0.007)
    since = datetime.fromtimestamp(NOW - 2 * DAY, UTC).strftime("%Y-%m-%dT%H:%M")
    _, out, _ = cli("usage", "--db", str(db), "--since", since, "--json")
    assert orjson.loads(out)["total"]["requests"] == 7


def test_usage_with_a_rich_table_on_a_terminal(
    cli: Run, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("rich")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stdout", tty)
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["usage", "--db", str(db)]) == 0
    text = tty.getvalue()
    assert "cost (USD)" in text
    assert "MODEL" not in text
    assert "groq/llama" in text
    assert "0.003000+?" in text


def test_usage_bad_input(cli: Run, tmp_path: Path) -> None:
    code, _, err = cli("usage", "--db", str(tmp_path / "missing.db"))
    assert code == 2
    assert "no request log at" in err
    assert "LLMRELAY_LOG=1" in err
    assert not (tmp_path / "missing.db").exists()  # reading never creates a log
    code, _, err = cli("usage", "--since", "last tuesday")
    assert code == 2
    assert "expected a time like 2h" in err
    code, _, err = cli("usage", "--since", "1d", "--days", "2")
    assert code == 2
    assert "not allowed with" in err
    code, _, err = cli("usage", "--days", "0")
    assert code == 2
    assert "must be 1 or more" in err


def test_usage_of_an_empty_log(cli: Run, tmp_path: Path) -> None:
    RequestLog(tmp_path / "empty.db", connect_now=True).close()
    code, out, err = cli("usage", "--db", str(tmp_path / "empty.db"))
    assert (code, out) == (0, "")
    assert "no requests in the log" in err


# --------------------------------------------------------------------------- logs


def test_logs_recent_with_filters(cli: Run, db: Path) -> None:
    code, out, _ = cli("logs", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["TIME_(UTC)", "TRACE_ID", "MODEL"]
    traces = [line.split()[2] for line in lines[1:]]
    assert traces == [
        "mixed-2",
        "mixed",
        "llama-1",
        "new-hit",
        "new-err",
        "new-2",
        "new-1",
        "old-1",
    ]

    def traces_of(*args: str) -> list[str]:
        code, out, _ = cli("logs", "--db", str(db), "--json", *args)
        assert code == 0
        return [r["trace_id"] for r in orjson.loads(out)]

    assert traces_of("-n", "2") == ["mixed-2", "mixed"]
    assert traces_of("--model", "llama") == ["llama-1"]
    assert traces_of("--model", "groq/mixed") == ["mixed-2", "mixed"]
    assert traces_of("--alias", "fast") == ["new-1"]
    assert traces_of("--outcome", "error") == ["new-err"]
    assert traces_of("--outcome", "cache_hit") == ["new-hit"]
    assert traces_of("--trace-id", "new-2") == ["new-2"]
    assert traces_of("--since", "2d") == traces[:-1]
    assert traces_of("--model", "nothing") == []


def test_logs_with_attempts(cli: Run, db: Path) -> None:
    code, out, _ = cli("logs", "--db", str(db), "--trace-id", "new-err", "--attempts")
    assert code == 0
    lines = out.splitlines()
    assert "error ServerError 503" in lines[1]
    assert lines[2].split()[:3] == ["#1", "try", "1"]
    assert lines[3].split()[:3] == ["#2", "try", "2"]
    assert "after 500 ms backoff; retries exhausted" in lines[3]
    code, out, _ = cli("logs", "--db", str(db), "--trace-id", "new-err", "--attempts", "--json")
    (doc,) = orjson.loads(out)
    assert doc["tags"] == {}
    assert doc["cost_known"] is True
    assert doc["cost_usd"] == 0.0
    assert [a["number"] for a in doc["attempt_rows"]] == [1, 2]
    assert doc["attempt_rows"][1]["message"] == "upstream down"


def test_logs_bad_input(cli: Run, db: Path) -> None:
    code, _, err = cli("logs", "--db", str(db), "--outcome", "meh")
    assert code == 2
    assert "invalid choice" in err
    code, _, err = cli("logs", "--db", str(db), "-n", "0")
    assert code == 2
    assert "must be 1 or more" in err


# --------------------------------------------------------------------------- chat writes the log


def test_chat_logs_only_when_turned_on(
    cli: Run, fake_thread: FakeUpstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    args = ("chat", "-m", "gpt-4.1-mini", "--base-url", fake_thread.openai_base_url, "--no-stream")
    with isolated_config():
        assert cli(*args, "not logged")[0] == 0
        assert not (tmp_path / "data").exists()  # no file unless logging is on

        monkeypatch.setenv("LLMRELAY_LOG", "1")
        fake_thread.push(Reply.error(500, "once"))
        assert cli(*args, "logged")[0] == 0
        default = tmp_path / "data" / "llmrelay" / "requests.db"
        assert default.is_file()

        _, out, _ = cli("logs", "--json", "--attempts")
        (row,) = orjson.loads(out)
        assert row["alias"] == "gpt-4.1-mini"
        assert row["outcome"] == "success"
        assert row["prompt"] is None  # content is off unless turned on
        assert [a["outcome"] for a in row["attempt_rows"]] == ["error", "success"]
        _code, out, _ = cli("usage", "--json")
        assert orjson.loads(out)["total"]["requests"] == 1


def test_chat_logs_where_the_config_file_says(
    cli: Run, fake_thread: FakeUpstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    path = tmp_path / "team.db"
    cfg = tmp_path / "llmrelay.toml"
    cfg.write_text(f'[log]\nenabled = true\npath = "{path}"\ncontent = true\n')
    monkeypatch.setenv("LLMRELAY_CONFIG", str(cfg))
    with isolated_config():
        args = ("chat", "-m", "gpt-4.1-mini", "--base-url", fake_thread.openai_base_url)
        assert cli(*args, "--no-stream", "to the file")[0] == 0
        _code, out, _ = cli("logs", "--json")
        (row,) = orjson.loads(out)
        assert row["response"] == "Echo: to the file"
        assert row["prompt"][-1] == {"role": "user", "content": "to the file"}
        assert path.is_file()


@pytest.mark.parametrize("command", ["logs", "usage"])
def test_a_file_that_is_not_a_log_is_a_usage_error(cli: Run, tmp_path: Path, command: str) -> None:
    notadb = tmp_path / "notes.txt"
    notadb.write_text("just some text, not SQLite\n")
    code, out, err = cli(command, "--db", str(notadb))
    assert (code, out) == (2, "")
    assert f"{notadb} is not a request log" in err
    assert notadb.read_text() == "just some text, not SQLite\n"  # left as it was
    code, _, err = cli(command, "--db", "postgresql://[not-a-host")
    assert code == 2
    assert "check the DSN" in err
