"""The ``llmrelay`` CLI: chat, models and demo, in-process and through a real subprocess."""

from __future__ import annotations

import io
import os
import pathlib
import re
import subprocess
import sys

import orjson
import pytest

import llmrelay
from llmrelay.catalog import tokens
from llmrelay.cli import main as cli_main
from llmrelay.cli._output import Console, scrub
from llmrelay.cli.main import exit_code_for, main
from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY, Run

MODEL = "gpt-4.1-mini"
SEED_ALIASES = ("mixtral-8x7b", "llama3-70b", "llama3-8b", "gemma2-9b", "c3opus", "qwen-coder-32b")


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


def test_chat_api_responses(cli: Run, fake_thread: FakeUpstream, openai_key: str) -> None:
    code, out, _ = cli(*chat_args(fake_thread, "--api", "responses", "--no-stream", "hey"))
    assert (code, out) == (0, "Echo: hey\n")
    assert fake_thread.requests[-1].path == "/v1/responses"
    assert fake_thread.requests[-1].body["input"] == [{"role": "user", "content": "hey"}]
    code, out, _ = cli(*chat_args(fake_thread, "--api", "responses", "--stream", "streamed"))
    assert (code, out) == (0, "Echo: streamed\n")
    assert fake_thread.requests[-1].body["stream"] is True
    code, out, err = cli(*chat_args(fake_thread, "--api", "soap", "hey"))
    assert code == 2
    assert "invalid choice: 'soap'" in err


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


DEMO_STEPS = (
    "Alias lookup: one name, resolved to a provider and a model",
    "Streaming: the answer arrives chunk by chunk",
    "Structured output: a validated pydantic object instead of text",
    "Errors: a provider failure becomes a typed exception",
    "Retries: a failed attempt is tried again after a backoff",
    "Fallbacks: when a provider keeps failing, another one answers",
    "One interface, many providers",
    "Accounting: tokens and dollars for every answer",
    "Seed 000: ModelHandler, alias in, text out (sync)",
)
DOLLARS = r"\$0\.0*[1-9]\d?"  # a cost under a cent, two significant figures


def _demo_steps(out: str) -> dict[int, str]:
    """The demo's steps by number (each its heading's title, then its indented lines), checking
    that exactly the expected steps are there, in order."""
    headings = list(re.finditer(r"^(\d+)\. (.+)$", out, flags=re.MULTILINE))
    assert [(int(m[1]), m[2]) for m in headings] == list(enumerate(DEMO_STEPS, 1))
    ends = [m.start() for m in headings[1:]] + [out.index("\nDone: ")]
    return {int(m[1]): out[m.end() : end] for m, end in zip(headings, ends, strict=True)}


def _lines(section: str) -> list[str]:
    return [line.strip() for line in section.strip().splitlines()]


def test_demo_runs_every_step(cli: Run) -> None:
    code, out, err = cli("demo")
    assert code == 0, err
    assert err == ""
    step = _demo_steps(out)

    # 1. alias lookup, with the answer's tokens and cost
    assert "alias 'gpt-6-luna' -> provider 'openai', model 'gpt-6-luna'" in step[1]
    assert "> r = await client.achat('gpt-6-luna', 'What does llmrelay do?')" in step[1]
    assert "answer: Echo: What does llmrelay do?" in step[1]
    first_cost = re.search(
        rf"from openai/gpt-6-luna: \d+ input \+ \d+ output tokens, cost ({DOLLARS}), "
        r"[\d.]+ ms, request id req_fake_\d+",
        step[1],
    )
    assert first_cost is not None, step[1]

    # 2. streaming
    assert "chunks: [Echo:][ Stream][ a][ short][ sentence,][ please.]" in step[2]
    assert "6 chunks, then the complete response (finish reason 'stop')" in step[2]
    assert re.search(rf"usage: \d+ input \+ \d+ output tokens, cost {DOLLARS}, ", step[2])

    # 3. structured output
    assert "response_model=City)" in step[3]
    assert "sent: response_format json_schema 'City'" in step[3]
    assert "r.object: City(name='Tokyo', country='Japan', population=37400000)" in step[3]
    assert "type: City, population + 1 = 37400001" in step[3]

    # 4. a typed error and its trace
    assert "> await client.achat('gpt-6-luna', 'Hello again', retries=0)" in step[4]
    assert "raised RateLimitedError: [openai/gpt-6-luna] Rate limit reached" in step[4]
    assert "exc.status = 429, exc.retry_after = 1.0 (seconds)" in step[4]
    assert "> print(llmrelay.format_trace(exc.trace))" in step[4]
    assert re.search(
        r"1\. openai/gpt-6-luna  #1  error  [\d.]+ ms  RateLimitedError \(status 429\)  "
        r"- no retries left \(0 allowed\)",
        step[4],
    )

    # 5. a retry after HTTP 500, with the backoff slept
    policy = "> policy = llmrelay.RetryPolicy(base_delay=0.05, max_delay=0.2, jitter=False)"
    assert policy in step[5]
    assert "retry=policy)" in step[5]
    assert "answer: Echo: Hello, third time" in step[5]
    trace = [line for line in _lines(step[5]) if re.match(r"\d\. ", line)]
    assert len(trace) == 2, step[5]
    assert re.fullmatch(
        r"1\. openai/gpt-6-luna  #1  error  [\d.]+ ms  ServerError \(status 500\)", trace[0]
    )
    assert re.fullmatch(
        r"2\. openai/gpt-6-luna  #2  success  after 50 ms backoff  [\d.]+ ms", trace[1]
    )
    assert re.search(rf"1 retry after 50 ms of backoff; .*cost {DOLLARS}", step[5])

    # 6. a fallback to another provider after every attempt failed with 503
    assert "every openai attempt with HTTP 503 (all 3: the first and its 2 retries)" in step[6]
    assert "fallbacks=['claude-sonnet-5-5'])" in step[6]
    assert "answer: Echo: Hello from wherever works" in step[6]
    trace = [line for line in _lines(step[6]) if re.match(r"\d\. ", line)]
    assert len(trace) == 4, step[6]
    for line, (n, backoff) in zip(
        trace[:3],
        ((1, ""), (2, "after 50 ms backoff  "), (3, "after 100 ms backoff  ")),
        strict=True,
    ):
        error = rf"{n}\. openai/gpt-6-luna  #{n}  error  {backoff}[\d.]+ ms  "
        assert re.match(error + r"ServerError \(status 503\)", line), line
    assert trace[2].endswith("- no retries left (2 allowed)")
    assert re.fullmatch(r"4\. anthropic/claude-sonnet-5-5  #1  success  [\d.]+ ms", trace[3])
    assert re.search(rf"from anthropic/claude-sonnet-5-5: .*cost {DOLLARS}", step[6])

    # 7. the same call through the other wire APIs
    for alias, provider, wire in (
        ("claude-sonnet-5-5", "anthropic", "anthropic_messages"),
        ("gemini-3.8-flash", "gemini", "gemini"),
    ):
        assert f"> r = await client.achat({alias!r}, 'Hello from the same call')" in step[7]
        assert (
            f"{alias} -> {provider}/{alias} ({wire} wire API): Echo: Hello from the same call"
            in step[7]
        )
    assert len(re.findall(rf"output tokens, cost {DOLLARS}, ", step[7])) == 2

    # 8. accounting: a known price in dollars, an unknown one never $0, totals, token counts
    assert re.search(
        rf"openai/gpt-6-luna: \d+ input \+ \d+ output tokens -> {re.escape(first_cost[1])} "
        rf"\({DOLLARS} input \+ {DOLLARS} output\)",
        step[8],
    ), step[8]
    assert "> r = await client.achat('qwen3.6-27b', " in step[8]
    assert re.search(
        r"groq/qwen/qwen3\.6-27b: \d+ input \+ \d+ output tokens -> cost unknown: "
        r"the catalog has no price for groq/qwen/qwen3\.6-27b$",
        step[8],
        flags=re.MULTILINE,
    ), step[8]
    assert "r.cost.usd = None, r.cost.known = False (never a silent $0)" in step[8]
    assert "> r.total_usage" in step[8]
    assert re.search(
        rf"this tour's 8 answers: \d+ input \+ \d+ output tokens, {DOLLARS} for the 7 with a "
        r"known price, 1 unknown",
        step[8],
    ), step[8]
    text = "What does llmrelay do?"
    assert f"> llmrelay.count_tokens({text!r}, 'gpt-6-luna')" in step[8]
    how = "exact (o200k_base), counted offline" if tokens.is_exact("gpt-6-luna") else "an estimate"
    assert f"{llmrelay.count_tokens(text, 'gpt-6-luna')} tokens, {how}" in step[8]
    estimate = llmrelay.count_tokens(text, "claude-sonnet-5-5")
    assert f"claude-sonnet-5-5: {estimate} tokens, an estimate (no public tokenizer)" in step[8]

    # 9. seed 000's sync facade
    assert "> ModelHandler().get_response('gpt-oss-20b', 'Hello from seed 000')" in step[9]
    assert "-> 'Echo: Hello from seed 000'" in step[9]

    assert "cost $0.00," not in out  # no answer is priced at a silent zero
    assert re.search(r"^Done: 10 calls in [\d.]+ s", out, flags=re.MULTILINE)
    assert "Next steps" in out
    assert "export OPENAI_API_KEY=" in out
    assert 'llmrelay chat -m gpt-6-luna "Hello"' in out
    assert "sk-demo-" not in out  # the generated key is not shown either
    # The demo's environment was for its own calls only.
    assert "OPENAI_API_KEY" not in os.environ
    assert "OPENAI_BASE_URL" not in os.environ


def test_demo_quiet(cli: Run) -> None:
    code, out, err = cli("demo", "--quiet")
    assert code == 0, err
    lines = out.strip().splitlines()
    # one line per step (two for step 7's two providers), a blank line, then the total
    assert "".join(line.split(".", 1)[0] for line in lines[:-2]) == "1234567789"
    assert lines[-2] == ""
    assert lines[-1].startswith("Done: 10 calls in ")
    expected = (
        "1. alias gpt-6-luna -> openai/gpt-6-luna: Echo: What does llmrelay do?",
        "2. streamed 6 chunks; usage ",
        "3. structured output: City(name='Tokyo', country='Japan', population=37400000)",
        "4. RateLimitedError, retry_after=1.0",
        "5. HTTP 500, retried after 50 ms backoff: Echo: Hello, third time",
        "6. gpt-6-luna: 3 x HTTP 503 -> fell back to anthropic/claude-sonnet-5-5: "
        "Echo: Hello from wherever works",
        "7. claude-sonnet-5-5 via anthropic_messages: Echo: Hello from the same call",
        "7. gemini-3.8-flash via gemini: Echo: Hello from the same call",
        "8. gpt-6-luna cost $0.",
        "9. ModelHandler().get_response('gpt-oss-20b'): Echo: Hello from seed 000",
    )
    for line, start in zip(lines[:-2], expected, strict=True):
        assert line.startswith(start), (line, start)
    assert "; qwen/qwen3.6-27b cost unknown; count_tokens: " in lines[8]
    assert "Next steps" not in out


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
    assert "\n9. ModelHandler().get_response(" in demo.stdout
    assert "\nDone: 10 calls in " in demo.stdout
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


@pytest.mark.parametrize("where", ["prompt", "system"])
def test_chat_text_that_is_not_unicode_is_a_usage_error(
    cli: Run, fake_thread: FakeUpstream, openai_key: str, where: str
) -> None:
    """Bytes that are not UTF-8 in argv reach Python as lone surrogates: exit 2, nothing sent."""
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    args = ["--system", bad, "hi"] if where == "system" else [bad]
    code, out, err = cli(*chat_args(fake_thread, "--no-stream", *args))
    assert (code, out) == (2, "")
    assert "surrogates" in err
    assert ("(user), content" if where == "prompt" else "(system), content") in err
    assert not fake_thread.requests
