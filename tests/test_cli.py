"""The ``llmrelay`` CLI: chat, models and demo, in-process and through a real subprocess."""

from __future__ import annotations

import importlib.util
import io
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import orjson
import pytest

import llmrelay
from llmrelay.cli import main as cli_main
from llmrelay.cli._output import Console, scrub
from llmrelay.cli.main import exit_code_for, main
from llmrelay.testing.fake import FakeUpstream, Reply

from .conftest import CANARY_KEY

MODEL = "gpt-4.1-mini"
SEED_ALIASES = ("mixtral-8x7b", "llama3-70b", "llama3-8b", "gemma2-9b", "c3opus", "qwen-coder-32b")

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``main(argv)`` in-process; return (exit code, stdout, stderr), canary-checked."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert CANARY_KEY not in out
        assert CANARY_KEY not in err
        return code, out, err

    return run


@pytest.fixture
def openai_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    return CANARY_KEY


def chat_args(fake: FakeUpstream, *extra: str) -> list[str]:
    return ["chat", "-m", MODEL, "--base-url", fake.openai_base_url, *extra]


# --------------------------------------------------------------------------- chat


def test_chat_prompt_argument(cli: Run, fake_thread: FakeUpstream, openai_key: str) -> None:
    code, out, err = cli(*chat_args(fake_thread, "--no-stream", "hello there"))
    assert (code, out, err) == (0, "Echo: hello there\n", "")
    sent = fake_thread.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-4.1-mini"
    assert sent.body.get("stream") is not True
    assert sent.headers["authorization"] == f"Bearer {CANARY_KEY}"


@pytest.mark.parametrize("prompt_args", [[], ["-"]], ids=["omitted", "dash"])
def test_chat_prompt_from_stdin(
    cli: Run,
    fake_thread: FakeUpstream,
    openai_key: str,
    monkeypatch: pytest.MonkeyPatch,
    prompt_args: list[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("a question\nover two lines\n"))
    code, out, _ = cli(*chat_args(fake_thread, *prompt_args))
    assert code == 0
    assert out == "Echo: a question\nover two lines\n"
    assert fake_thread.requests[-1].body["messages"][-1]["content"] == (
        "a question\nover two lines"
    )


def test_chat_empty_stdin_is_a_usage_error(
    cli: Run, fake_thread: FakeUpstream, openai_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("  \n"))
    code, out, err = cli(*chat_args(fake_thread))
    assert code == 2
    assert out == ""
    assert err.startswith("error: the prompt is empty")
    assert err.count("\n") == 1
    assert fake_thread.requests == []


def test_chat_model_from_environment(
    cli: Run, fake_thread: FakeUpstream, openai_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMRELAY_MODEL", "openai/gpt-4o-mini")
    code, out, _ = cli("chat", "--base-url", fake_thread.openai_base_url, "hi")
    assert (code, out) == (0, "Echo: hi\n")
    assert fake_thread.requests[-1].body["model"] == "gpt-4o-mini"


def test_chat_parameters_reach_the_request(
    cli: Run, fake_thread: FakeUpstream, openai_key: str
) -> None:
    args = ["--system", "Be brief.", "-t", "0.3", "--max-tokens", "55", "--timeout", "20", "hey"]
    code, out, _ = cli(*chat_args(fake_thread, *args))
    assert (code, out) == (0, "Echo: hey\n")
    body = fake_thread.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["temperature"] == 0.3
    assert body["max_completion_tokens"] == 55


def test_chat_json_prints_the_full_response(
    cli: Run, fake_thread: FakeUpstream, openai_key: str
) -> None:
    code, out, err = cli(*chat_args(fake_thread, "--json", "json please"))
    assert code == 0
    assert err == ""
    data = orjson.loads(out)
    assert data["text"] == "Echo: json please"
    assert data["provider"] == "openai"
    assert data["model"] == "gpt-4.1-mini"
    assert data["alias"] == MODEL
    assert data["finish_reason"] == "stop"
    assert data["usage"]["output_tokens"] > 0
    assert data["request_id"].startswith("req_fake_")
    assert data["trace"][0]["outcome"] == "success"


def test_chat_json_with_stream_prints_one_document(
    cli: Run, fake_thread: FakeUpstream, openai_key: str
) -> None:
    code, out, _ = cli(*chat_args(fake_thread, "--json", "--stream", "both"))
    assert code == 0
    assert orjson.loads(out)["text"] == "Echo: both"
    assert fake_thread.requests[-1].body["stream"] is True


class _Recorder(io.StringIO):
    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.writes: list[str] = []
        self._tty = tty

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize("flag", [["--stream"], []], ids=["flag", "tty-default"])
def test_chat_stream_prints_deltas_as_they_arrive(
    fake_thread: FakeUpstream,
    openai_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: list[str],
) -> None:
    rec = _Recorder(tty=not flag)  # without the flag, a terminal on stdout turns streaming on
    monkeypatch.setattr(sys, "stdout", rec)
    code = main(chat_args(fake_thread, *flag, "stream me please"))
    assert code == 0
    assert rec.getvalue() == "Echo: stream me please\n"
    assert rec.writes == ["Echo:", " stream", " me", " please", "\n"]
    assert fake_thread.requests[-1].body["stream"] is True
    assert CANARY_KEY not in capsys.readouterr().err


def test_chat_no_stream_on_a_tty(
    fake_thread: FakeUpstream, openai_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = _Recorder(tty=True)
    monkeypatch.setattr(sys, "stdout", rec)
    assert main(chat_args(fake_thread, "--no-stream", "whole")) == 0
    assert rec.getvalue() == "Echo: whole\n"
    assert fake_thread.requests[-1].body.get("stream") is not True


def test_chat_trace_goes_to_stderr(cli: Run, fake_thread: FakeUpstream, openai_key: str) -> None:
    code, out, err = cli(*chat_args(fake_thread, "--trace", "trace me"))
    assert (code, out) == (0, "Echo: trace me\n")
    lines = err.splitlines()
    assert lines[0] == "trace:"
    assert "openai/gpt-4.1-mini" in lines[1]
    assert "success" in lines[1]


def test_chat_length_note(cli: Run, fake_thread: FakeUpstream, openai_key: str) -> None:
    fake_thread.push(Reply.ok("cut", finish="length"))
    code, out, err = cli(*chat_args(fake_thread, "long"))
    assert (code, out) == (0, "cut\n")
    assert "--max-tokens" in err


def test_unknown_model_exits_2_with_a_hint(cli: Run, openai_key: str) -> None:
    code, out, err = cli("chat", "-m", "llama3-8bx", "hi")
    assert code == 2
    assert out == ""
    assert err.startswith("error: unknown model 'llama3-8bx'")
    assert "'llama3-8b'" in err
    assert "llmrelay models" in err
    assert err.count("\n") == 1


def test_no_model_exits_2_and_says_how_to_pass_one(cli: Run) -> None:
    code, _, err = cli("chat", "hi")
    assert code == 2
    assert "-m/--model" in err
    assert "LLMRELAY_MODEL" in err


def test_missing_key_exits_2_naming_the_variable(cli: Run, fake_thread: FakeUpstream) -> None:
    code, out, err = cli(*chat_args(fake_thread, "hi"))
    assert code == 2
    assert out == ""
    assert err.startswith("error: [openai/gpt-4.1-mini] no API key")
    assert "OPENAI_API_KEY" in err
    assert "api_key=" not in err
    assert fake_thread.requests == []  # nothing sent without credentials


def test_invalid_parameter_exits_2(cli: Run, fake_thread: FakeUpstream, openai_key: str) -> None:
    code, _, err = cli(*chat_args(fake_thread, "-t", "7", "hi"))
    assert code == 2
    assert "temperature" in err
    assert fake_thread.requests == []


@pytest.mark.parametrize(
    "argv",
    [
        ["chat", "--max-tokens", "many", "hi"],
        ["chat", "--timeout", "-1", "hi"],
        ["chat", "--retries", "-1", "hi"],
        ["nope"],
        [],
    ],
)
def test_usage_errors_exit_2(cli: Run, argv: list[str]) -> None:
    code, out, err = cli(*argv)
    assert code == 2
    assert out == ""
    assert "usage: llmrelay" in err


def test_help_exits_0(cli: Run) -> None:
    code, out, _ = cli("chat", "--help")
    assert code == 0
    assert "--stream" in out
    assert "exit codes" in out


def test_authentication_error_exits_3(cli: Run, fake_thread: FakeUpstream, openai_key: str) -> None:
    fake_thread.push(Reply.error(401, "Incorrect API key provided"))
    code, out, err = cli(*chat_args(fake_thread, "hi"))
    assert code == 3
    assert out == ""
    assert err.startswith("error: [openai/gpt-4.1-mini] Incorrect API key provided (status 401")
    assert err.rstrip().endswith("check OPENAI_API_KEY")


def test_wrong_key_exits_3(
    cli: Run, fake_thread: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-0123456789")
    code, _, err = cli(*chat_args(fake_thread, "hi"))
    assert code == 3
    assert "sk-wrong-0123456789" not in err
    assert "status 401" in err


def test_permission_denied_exits_3(cli: Run, fake_thread: FakeUpstream, openai_key: str) -> None:
    fake_thread.push(Reply.error(403, "not allowed"))
    assert cli(*chat_args(fake_thread, "hi"))[0] == 3


def test_rate_limited_exits_4_with_retry_after(
    cli: Run, fake_thread: FakeUpstream, openai_key: str
) -> None:
    # Enough 429s (with retry-after 0) to outlast any default retries, without sleeping.
    fake_thread.push(
        *(Reply.error(429, "Rate limit reached", headers={"retry-after": "0"}) for _ in range(5))
    )
    code, out, err = cli(*chat_args(fake_thread, "--trace", "hi"))
    assert code == 4
    assert out == ""
    first, *rest = err.splitlines()
    assert first.startswith("error: [openai/gpt-4.1-mini] Rate limit reached (status 429")
    assert "retry after 0s" in first
    assert rest[0] == "trace:"
    assert "RateLimitedError" in rest[1]


def test_retries_option(cli: Run, fake_thread: FakeUpstream, openai_key: str) -> None:
    fake_thread.push(Reply.error(429, "Rate limit reached", headers={"retry-after": "0"}))
    code, out, err = cli(*chat_args(fake_thread, "--retries", "0", "--trace", "hi"))
    assert code == 4
    assert len(fake_thread.requests) == 1
    fake_thread.push(Reply.error(503, "busy", headers={"retry-after": "0"}))
    code, out, err = cli(*chat_args(fake_thread, "--retries", "1", "--trace", "again"))
    assert (code, out) == (0, "Echo: again\n")
    assert len(fake_thread.requests) == 3
    trace = err.splitlines()
    assert trace[0] == "trace:"
    assert "error" in trace[1]
    assert "success" in trace[2]


def test_quota_exhausted_exits_4(cli: Run, fake_thread: FakeUpstream, openai_key: str) -> None:
    fake_thread.push(
        Reply.error(
            429,
            "You exceeded your current quota",
            type="insufficient_quota",
            code="insufficient_quota",
        )
    )
    code, _, err = cli(*chat_args(fake_thread, "hi"))
    assert code == 4
    assert "quota" in err


def test_server_error_exits_5(cli: Run, fake_thread: FakeUpstream, openai_key: str) -> None:
    fake_thread.push(*(Reply.error(400, "bad request here") for _ in range(1)))
    assert cli(*chat_args(fake_thread, "hi"))[0] == 5
    fake_thread.push(*(Reply.error(500, "boom", headers={"retry-after": "0"}) for _ in range(5)))
    code, _, err = cli(*chat_args(fake_thread, "hi"))
    assert code == 5
    assert "status 500" in err


def test_connection_refused_exits_5(cli: Run, openai_key: str) -> None:
    with FakeUpstream.running() as f:
        url = f.openai_base_url  # a port that is closed once the fake stops
    code, _, err = cli("chat", "-m", MODEL, "--base-url", url, "--timeout", "5", "hi")
    assert code == 5
    assert err.startswith("error:")


def test_ctrl_c_exits_130(cli: Run, openai_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.cli import chat

    async def interrupted(*args: object) -> llmrelay.Response:
        raise KeyboardInterrupt

    monkeypatch.setattr(chat, "_call", interrupted)
    code, _, err = cli("chat", "-m", MODEL, "hi")
    assert code == 130
    assert "interrupted" in err


def test_exit_codes_by_error_class() -> None:
    e = llmrelay
    assert exit_code_for(e.UnknownModelError("x")) == 2
    assert exit_code_for(e.MissingAPIKeyError("x")) == 2
    assert exit_code_for(e.ConfigFileError("x")) == 2
    assert exit_code_for(e.AuthenticationError("x")) == 3
    assert exit_code_for(e.PermissionDeniedError("x")) == 3
    assert exit_code_for(e.RateLimitedError("x")) == 4
    assert exit_code_for(e.QuotaExhaustedError("x")) == 4
    assert exit_code_for(e.ServerError("x")) == 5
    assert exit_code_for(e.APIConnectionError("x")) == 5
    assert exit_code_for(e.StructuredOutputError("x")) == 5
    assert exit_code_for(RuntimeError("bug")) == 1


def test_exit_code_of_a_failed_fallback_chain() -> None:
    e = llmrelay
    same = e.AllAttemptsFailedError("all", [e.RateLimitedError("a"), e.RateLimitedError("b")])
    mixed = e.AllAttemptsFailedError("all", [e.RateLimitedError("a"), e.ServerError("b")])
    assert exit_code_for(same) == 4
    assert exit_code_for(mixed) == 5


def test_error_lines_never_show_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", CANARY_KEY)
    exc = llmrelay.BadRequestError(f"echoed {CANARY_KEY}\nsecond line", provider="groq")
    line = cli_main.error_line(exc)
    assert line == "error: [groq] echoed **** second line"
    assert scrub(f"a {CANARY_KEY} b") == "a **** b"


# --------------------------------------------------------------------------- models


def test_models_lists_aliases_and_key_status(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", CANARY_KEY)
    code, out, err = cli("models")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ALIAS", "PROVIDER", "MODEL", "KEY_VARIABLE", "KEY_SET"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    for alias in SEED_ALIASES:
        assert alias in rows
    assert rows["mixtral-8x7b"][1:] == ["groq", "mixtral-8x7b-32768", "GROQ_API_KEY", "yes"]
    assert rows["c3opus"][1:] == ["anthropic", "claude-3-opus-20240229", "ANTHROPIC_API_KEY", "no"]
    assert rows["gpt-4.1-mini"][-1] == "no"
    assert "aliases" in err
    assert "ready to call" in err


def test_models_json(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY_KEY)
    code, out, _ = cli("models", "--json")
    assert code == 0
    rows = {r["alias"]: r for r in orjson.loads(out)}
    assert set(SEED_ALIASES) <= set(rows)
    assert rows["c3opus"] == {
        "alias": "c3opus",
        "provider": "anthropic",
        "model": "claude-3-opus-20240229",
        "key_env": "ANTHROPIC_API_KEY",
        "key_status": "yes",
    }
    assert rows["llama3-8b"]["key_status"] == "no"


def test_models_providers(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", CANARY_KEY)  # Gemini's alternative variable counts
    code, out, _ = cli("models", "--providers")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "https://api.openai.com/v1" in rows["openai"]
    assert "OPENAI_API_KEY" in rows["openai"]
    assert rows["openai"].rstrip().endswith(" no")
    assert rows["gemini"].rstrip().endswith(" yes")
    assert rows["ollama"].rstrip().endswith("not needed")
    assert "(set AZURE_BASE_URL)" in rows["azure"]
    code, out, _ = cli("models", "--providers", "--json")
    data = {r["provider"]: r for r in orjson.loads(out)}
    assert data["anthropic"]["wire"] == "anthropic_messages"
    assert data["anthropic"]["base_url"] == "https://api.anthropic.com"
    assert data["gemini"]["key_status"] == "yes"
    assert data["groq"]["key_status"] == "no"


def test_models_reports_a_broken_config_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[models.x\nprovider = \n")
    p = _subprocess("models", env={"LLMRELAY_CONFIG": str(path)})
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.startswith("error: ")
    assert "broken.toml" in p.stderr


# --------------------------------------------------------------------------- output


def test_plain_output_has_no_escape_codes() -> None:
    buf = io.StringIO()
    c = Console(buf)
    assert not c.is_rich
    c.table(("a", "long header"), [("x", "y"), ("wider", "z")])
    c.line("[openai/x] stays literal", style="bold")
    assert buf.getvalue() == ("A      LONG_HEADER\nx      y\nwider  z\n[openai/x] stays literal\n")


def test_rich_output_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rich")
    monkeypatch.delenv("NO_COLOR", raising=False)
    buf = _Recorder(tty=True)
    c = Console(buf)
    assert c.is_rich
    c.table(("alias", "provider"), [("gpt-4.1-mini", "openai")])
    c.line("[openai/x] not markup", style="bold")
    text = buf.getvalue()
    assert "gpt-4.1-mini" in text
    assert "openai" in text
    assert "[openai/x] not markup" in text


# --------------------------------------------------------------------------- demo


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_demo_runs_every_step(cli: Run) -> None:
    code, out, err = cli("demo")
    assert code == 0, err
    assert err == ""
    for heading in (
        "1. Alias lookup",
        "2. Streaming",
        "3. Structured output",
        "4. Errors",
        "5. One interface",
    ):
        assert heading in out
    assert "alias 'gpt-4.1-mini' -> provider 'openai', model 'gpt-4.1-mini'" in out
    assert "answer: Echo: What does llmrelay do?" in out
    assert "chunks: [Echo:][ Stream][ a][ short][ sentence,][ please.]" in out
    assert "raised RateLimitedError" in out
    assert "exc.retry_after = 1.0" in out
    if _has("llmrelay.structured"):
        assert "City(name='Tokyo', country='Japan', population=37400000)" in out
    else:
        assert "skipped structured output: llmrelay.structured" in out
    for module, alias in (
        ("anthropic_messages", "claude-sonnet-4-5"),
        ("gemini", "gemini-2.5-flash"),
    ):
        if _has(f"llmrelay.adapters.{module}"):
            assert f"{alias} -> " in out
            assert "Echo: Hello from the same call" in out
        else:
            assert f"llmrelay.adapters.{module} is not part of this build" in out
    if _has("llmrelay.handler"):
        assert "'Echo: Hello from seed 000'" in out
    else:
        assert "llmrelay.handler is not part of this build" in out
    assert "Next steps" in out
    assert "export OPENAI_API_KEY=" in out
    assert "sk-demo-" not in out  # the generated key is not shown either
    # The demo's environment was for its own calls only.
    assert "OPENAI_API_KEY" not in os.environ
    assert "OPENAI_BASE_URL" not in os.environ


def test_demo_quiet(cli: Run) -> None:
    code, out, _ = cli("demo", "--quiet")
    assert code == 0
    assert out.splitlines()[0].startswith("1. alias gpt-4.1-mini -> openai/gpt-4.1-mini")
    assert "RateLimitedError, retry_after=1.0" in out
    assert "Next steps" not in out
    assert out.rstrip().splitlines()[-1].startswith("Done:")


# --------------------------------------------------------------------------- processes


def _subprocess(
    *argv: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmrelay.cli.main", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_process_exit_codes(fake_thread: FakeUpstream) -> None:
    env = {"OPENAI_API_KEY": CANARY_KEY}
    ok = _subprocess(*chat_args(fake_thread), env=env, stdin="from a pipe\n")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "Echo: from a pipe\n", "")
    fake_thread.push(Reply.error(401, "Incorrect API key provided"))
    denied = _subprocess(*chat_args(fake_thread, "hi"), env=env)
    assert denied.returncode == 3
    assert denied.stdout == ""
    assert denied.stderr.startswith("error: ")
    assert denied.stderr.count("\n") == 1
    unknown = _subprocess("chat", "-m", "no-such-model", "hi", env=env)
    assert unknown.returncode == 2
    assert "unknown model 'no-such-model'" in unknown.stderr
    for p in (ok, denied, unknown):
        assert CANARY_KEY not in p.stdout + p.stderr


def test_process_demo_and_lazy_import() -> None:
    demo = _subprocess("demo", "-q")
    assert demo.returncode == 0, demo.stderr
    assert "Done:" in demo.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, llmrelay; llmrelay.Client; print('llmrelay.cli' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert probe.stdout.strip() == "False"
