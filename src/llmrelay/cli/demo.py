"""``llmrelay demo``: a guided tour of real calls, with no API key and no network.

It starts the in-repo fake upstream (:class:`llmrelay.testing.fake.FakeUpstream`) on 127.0.0.1,
points every provider's ``<PROVIDER>_BASE_URL`` at it and sets every ``<PROVIDER>_API_KEY`` to a
generated dummy key (in this process only, restored afterwards), then makes real calls through
the real code paths: alias resolution, the wire adapters, the transport, SSE streaming,
structured output, error mapping, retries and fallbacks, cost accounting and the seed-000
``ModelHandler``. The fake echoes prompts unless a step scripts it otherwise (an error status, a
fixed answer).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._output import Console, scrub

if TYPE_CHECKING:
    from ..client import Client
    from ..core.retry import RetryPolicy
    from ..core.trace import Attempt
    from ..testing.fake import FakeUpstream
    from ..types import Response

__all__ = ["run"]

ALIAS = "gpt-6-luna"
#: Where step 6 falls back to when every attempt at ``ALIAS`` fails: another provider.
FALLBACK_ALIAS = "claude-sonnet-5-5"
#: Step 7: the same call through the other wire APIs.
OTHER_ALIASES = ("claude-sonnet-5-5", "gemini-3.8-flash")
#: Step 8: a current model whose price the catalog does not know.
UNPRICED_ALIAS = "qwen3.6-27b"
HANDLER_ALIAS = "gpt-oss-20b"
DOCS_URL = "https://github.com/llmrelay/llmrelay#readme"


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore the previous state exactly."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _point_env(fake: FakeUpstream, key: str) -> dict[str, str]:
    """Every provider's base URL at the fake and its key variable(s) set to ``key``."""
    from ..providers.table import PROVIDERS

    env: dict[str, str] = {}
    for spec in PROVIDERS.values():
        if spec.wire == "test":
            continue
        for url_var in (spec.base_url_var, *spec.alt_base_url_envs):
            env[url_var] = fake.base_url_for(spec.wire)
        for key_var in (spec.key_env, *spec.alt_key_envs):
            if key_var:
                env[key_var] = key
    return env


def _dollars(usd: float) -> str:
    """US dollars; amounts under a cent keep two significant figures (``$0.0000046``)."""
    if usd == 0 or usd >= 0.01:
        return f"${usd:,.2f}"
    return f"${usd:.{1 - math.floor(math.log10(usd))}f}"


def _cost(r: Response) -> str:
    """``$0.0000046``, or ``unknown`` when the catalog has no price (never ``$0``)."""
    c = r.cost
    if c is None or not c.known or c.usd is None:
        return "unknown"
    return _dollars(c.usd)


def _tokens(r: Response) -> str:
    return f"{r.usage.input_tokens} input + {r.usage.output_tokens} output tokens"


def _usage(r: Response) -> str:
    parts = [_tokens(r), f"cost {_cost(r)}", f"{r.latency_s * 1000:.1f} ms"]
    if r.request_id:
        parts.append(f"request id {r.request_id}")
    return ", ".join(parts)


def _retry_code(policy: RetryPolicy) -> str:
    return (
        f"policy = llmrelay.RetryPolicy(base_delay={policy.base_delay}, "
        f"max_delay={policy.max_delay}, jitter={policy.jitter})"
    )


@dataclass
class Tour:
    """Prints the tour; ``quiet`` keeps one line per step."""

    out: Console
    quiet: bool
    calls: int = 0
    #: Every Response of the tour, for the accounting step.
    answers: list[Response] = field(default_factory=list)

    def step(self, n: int, title: str) -> None:
        if not self.quiet:
            self.out.line()
            self.out.line(f"{n}. {title}", style="bold cyan")

    def say(self, text: str, style: str | None = None) -> None:
        if not self.quiet:
            self.out.line("   " + text, style=style)

    def code(self, text: str) -> None:
        """A line of the code that makes the step's call."""
        self.say("> " + text, style="dim")

    def summary(self, n: int, text: str) -> None:
        """The line that quiet mode keeps."""
        if self.quiet:
            self.out.line(f"{n}. {text}")

    def answered(self, r: Response) -> Response:
        self.calls += 1
        self.answers.append(r)
        return r

    def trace(self, trace: list[Attempt], name: str = "r") -> None:
        from ..core.trace import format_trace

        self.code(f"print(llmrelay.format_trace({name}.trace))")
        for line in scrub(format_trace(trace)).splitlines():
            self.say("  " + line)


# --------------------------------------------------------------------------- the steps


async def _alias_lookup(tour: Tour, client: Client) -> None:
    from ..providers.resolve import resolve_target

    tour.step(1, "Alias lookup: one name, resolved to a provider and a model")
    t = resolve_target(ALIAS)
    tour.say(f"alias {ALIAS!r} -> provider {t.provider!r}, model {t.model!r}")
    prompt = "What does llmrelay do?"
    tour.code(f"r = await client.achat({ALIAS!r}, {prompt!r})")
    r = tour.answered(await client.achat(ALIAS, prompt))
    tour.say(f"answer: {r.text}", style="green")
    tour.say(f"from {r.provider}/{r.model}: {_usage(r)}")
    tour.summary(1, f"alias {ALIAS} -> {r.provider}/{r.model}: {r.text}")


async def _streaming(tour: Tour, client: Client) -> None:
    tour.step(2, "Streaming: the answer arrives chunk by chunk")
    prompt = "Stream a short sentence, please."
    tour.code(f"async for chunk in client.astream({ALIAS!r}, {prompt!r})")
    if not tour.quiet:
        tour.out.write("   chunks: ")
    n = 0
    s = client.astream(ALIAS, prompt)
    async with s:
        async for c in s:
            if c.delta:
                n += 1
                if not tour.quiet:
                    tour.out.write(f"[{c.delta}]")
    if not tour.quiet:
        tour.out.write("\n")
    r = s.response
    if r is None:
        raise RuntimeError("the stream ended without its complete response")
    tour.answered(r)
    tour.say(f"{n} chunks, then the complete response (finish reason {r.finish_reason!r})")
    tour.say(f"usage: {_usage(r)}")
    tour.summary(2, f"streamed {n} chunks; usage {r.usage.input_tokens}+{r.usage.output_tokens}")


async def _structured(tour: Tour, client: Client, fake: FakeUpstream) -> None:
    from pydantic import BaseModel

    from ..testing.fake import Reply

    class City(BaseModel):
        name: str
        country: str
        population: int

    tour.step(3, "Structured output: a validated pydantic object instead of text")
    tour.say("class City(BaseModel): name: str; country: str; population: int")
    prompt = "Which city has the most people?"
    tour.code(f"r = await client.achat({ALIAS!r}, {prompt!r}, response_model=City)")
    tour.say("(the fake upstream plays the model: it is scripted to answer Tokyo)")
    fake.push(Reply.ok('{"name": "Tokyo", "country": "Japan", "population": 37400000}'))
    r = tour.answered(await client.achat(ALIAS, prompt, response_model=City))
    sent = fake.requests[-1].body
    fmt = sent.get("response_format") if isinstance(sent, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        tour.say(f"sent: response_format json_schema {fmt['json_schema'].get('name')!r}")
    city = r.object
    tour.say(f"r.object: {city!r}", style="green")
    tour.say(f"type: {type(city).__name__}, population + 1 = {city.population + 1}")
    tour.summary(3, f"structured output: {city!r}")


async def _error(tour: Tour, client: Client, fake: FakeUpstream) -> None:
    from ..errors import RateLimitedError
    from ..testing.fake import Reply

    tour.step(4, "Errors: a provider failure becomes a typed exception")
    tour.say("the fake answers the next call with HTTP 429 and 'retry-after: 1'")
    fake.push(
        Reply.error(429, "Rate limit reached for requests per minute", headers={"retry-after": "1"})
    )
    # retries=0 shows the error itself rather than the retry that would follow it (step 5).
    tour.code(f"await client.achat({ALIAS!r}, 'Hello again', retries=0)")
    try:
        await client.achat(ALIAS, "Hello again", retries=0)
    except RateLimitedError as exc:
        tour.calls += 1
        tour.say(f"raised {type(exc).__name__}: {scrub(str(exc))}", style="red")
        tour.say(f"exc.status = {exc.status}, exc.retry_after = {exc.retry_after} (seconds)")
        tour.say("its decision trace, as `llmrelay chat --trace` prints it:")
        tour.trace(exc.trace, "exc")
        tour.summary(4, f"{type(exc).__name__}, retry_after={exc.retry_after}")
        return
    raise RuntimeError("the scripted 429 did not raise RateLimitedError")


async def _retries(tour: Tour, client: Client, fake: FakeUpstream, policy: RetryPolicy) -> None:
    from ..testing.fake import Reply

    tour.step(5, "Retries: a failed attempt is tried again after a backoff")
    tour.say("the fake answers the next call with HTTP 500, then normally")
    tour.say("(a small exact backoff keeps the demo fast; default: 2 retries, 0.5-8 s, jittered)")
    fake.push(Reply.error(500, "The server had an error while processing your request"))
    prompt = "Hello, third time"
    tour.code(_retry_code(policy))
    tour.code(f"r = await client.achat({ALIAS!r}, {prompt!r}, retry=policy)")
    r = tour.answered(await client.achat(ALIAS, prompt, retry=policy))
    if [a.outcome for a in r.trace] != ["error", "success"]:
        raise RuntimeError("the scripted HTTP 500 was not retried once")
    slept_ms = sum(a.backoff_s for a in r.trace) * 1000
    tour.say(f"answer: {r.text}", style="green")
    tour.trace(r.trace)
    tour.say(f"1 retry after {slept_ms:.0f} ms of backoff; {_usage(r)}")
    tour.summary(5, f"HTTP 500, retried after {slept_ms:.0f} ms backoff: {r.text}")


async def _fallback(tour: Tour, client: Client, fake: FakeUpstream, policy: RetryPolicy) -> None:
    from ..providers.resolve import resolve_target
    from ..testing.fake import Reply

    primary = resolve_target(ALIAS).provider
    attempts = policy.max_retries + 1
    tour.step(6, "Fallbacks: when a provider keeps failing, another one answers")
    tour.say(
        f"the fake answers every {primary} attempt with HTTP 503 "
        f"(all {attempts}: the first and its {policy.max_retries} retries)"
    )
    overloaded = Reply.error(503, "The server is overloaded", path_contains="/chat/completions")
    fake.push(*(overloaded for _ in range(attempts)))
    prompt = "Hello from wherever works"
    tour.code(f"r = await client.achat({ALIAS!r}, {prompt!r}, retry=policy,")
    tour.code(f"                       fallbacks=[{FALLBACK_ALIAS!r}])")
    r = tour.answered(await client.achat(ALIAS, prompt, retry=policy, fallbacks=[FALLBACK_ALIAS]))
    if r.provider == primary:
        raise RuntimeError(f"the scripted HTTP 503s did not make {ALIAS} fall back")
    tour.say(f"answer: {r.text}", style="green")
    tour.trace(r.trace)
    tour.say(f"from {r.provider}/{r.model}: {_usage(r)}")
    tour.summary(
        6, f"{ALIAS}: {attempts} x HTTP 503 -> fell back to {r.provider}/{r.model}: {r.text}"
    )


async def _providers(tour: Tour, client: Client) -> None:
    from ..providers.table import PROVIDERS

    tour.step(7, "One interface, many providers")
    tour.say("the same call as step 1, through the other wire APIs")
    prompt = "Hello from the same call"
    for alias in OTHER_ALIASES:
        tour.code(f"r = await client.achat({alias!r}, {prompt!r})")
        r = tour.answered(await client.achat(alias, prompt))
        wire = PROVIDERS[r.provider].wire
        tour.say(f"{alias} -> {r.provider}/{r.model} ({wire} wire API): {r.text}")
        tour.say(f"   {_usage(r)}", style="dim")
        tour.summary(7, f"{alias} via {wire}: {r.text}")


async def _accounting(tour: Tour, client: Client) -> None:
    from ..catalog.tokens import count_tokens, encoding_for_model, is_exact
    from ..types import Usage

    tour.step(8, "Accounting: tokens and dollars for every answer")
    first = tour.answers[0]
    c = first.cost
    if c is None:
        raise RuntimeError("the client priced no answer: its catalog layer is off")
    tour.code("r.cost  # step 1's answer, priced from the bundled model catalog")
    tour.say(
        f"{first.provider}/{first.model}: {_tokens(first)} -> {_cost(first)} "
        f"({_dollars(c.input_usd or 0.0)} input + {_dollars(c.output_usd or 0.0)} output)"
    )
    prompt = "Hello, what do you cost?"
    tour.code(f"r = await client.achat({UNPRICED_ALIAS!r}, {prompt!r})")
    r = tour.answered(await client.achat(UNPRICED_ALIAS, prompt))
    if r.cost is None or r.cost.known:
        raise RuntimeError(
            f"the catalog now prices {UNPRICED_ALIAS}: give the demo a model it does not price"
        )
    reason = (r.cost.reason or "").split(" (")[0]  # the catalog's note follows in brackets
    tour.say(f"{r.provider}/{r.model}: {_tokens(r)} -> cost {_cost(r)}: {reason}", style="yellow")
    tour.say(f"r.cost.usd = {r.cost.usd!r}, r.cost.known = {r.cost.known} (never a silent $0)")
    known = [a.cost.usd for a in tour.answers if a.cost is not None and a.cost.known]
    unknown = len(tour.answers) - len(known)
    spent = sum((a.total_usage or a.usage for a in tour.answers), Usage())
    tour.code("r.total_usage  # summed over every attempt: retries, re-asks, fallbacks")
    tour.say(
        f"this tour's {len(tour.answers)} answers: {spent.input_tokens} input + "
        f"{spent.output_tokens} output tokens, {_dollars(sum(known))} for the {len(known)} "
        f"with a known price, {unknown} unknown"
    )
    text = "What does llmrelay do?"
    model = first.model
    tour.code(f"llmrelay.count_tokens({text!r}, {model!r})")
    n = count_tokens(text, model)
    how = (
        f"exact ({encoding_for_model(model)}), counted offline"
        if is_exact(model)
        else "an estimate (install llmrelay[tokens] for exact counts)"
    )
    other = OTHER_ALIASES[0]
    tour.say(f"{n} tokens, {how}")
    tour.say(f"{other}: {count_tokens(text, other)} tokens, an estimate (no public tokenizer)")
    tour.summary(
        8,
        f"{first.model} cost {_cost(first)}; {r.model} cost {_cost(r)}; count_tokens: {n} tokens",
    )


def _handler(tour: Tour) -> None:
    """Seed 000's sync ``ModelHandler`` (run outside the tour's event loop)."""
    from .._sync import run_sync
    from ..seeds.seed000_handler import ModelHandler
    from ..transport.native import default_transport

    tour.step(9, "Seed 000: ModelHandler, alias in, text out (sync)")
    prompt = "Hello from seed 000"
    tour.code(f"ModelHandler().get_response({HANDLER_ALIAS!r}, {prompt!r})")
    try:
        text = ModelHandler().get_response(HANDLER_ALIAS, prompt)
    finally:
        run_sync(default_transport().aclose())  # this thread's pooled session
    tour.calls += 1
    tour.say(f"-> {text!r}", style="green")
    tour.summary(9, f"ModelHandler().get_response({HANDLER_ALIAS!r}): {text}")


async def _tour(tour: Tour, fake: FakeUpstream) -> None:
    from ..client import Client
    from ..core.retry import RetryPolicy

    policy = RetryPolicy(base_delay=0.05, max_delay=0.2, jitter=False)
    client = Client(timeout=10.0)
    try:
        await _alias_lookup(tour, client)
        await _streaming(tour, client)
        await _structured(tour, client, fake)
        await _error(tour, client, fake)
        await _retries(tour, client, fake, policy)
        await _fallback(tour, client, fake, policy)
        await _providers(tour, client)
        await _accounting(tour, client)
    finally:
        await client.aclose()


def _next_steps(out: Console) -> None:
    out.line()
    out.line("Next steps", style="bold cyan")
    for text in (
        "export OPENAI_API_KEY=...   (or ANTHROPIC_API_KEY, GEMINI_API_KEY, GROQ_API_KEY, ...)",
        f'llmrelay chat -m {ALIAS} "Hello"   (an alias, or any provider/model)',
        "llmrelay models             every alias, and whether its key is set",
        "llmrelay chat --help        streaming, --json, --trace, exit codes",
        f"docs: README.md, docs/ and {DOCS_URL}",
    ):
        out.line("   " + text)


def run(args: argparse.Namespace) -> int:
    from ..testing.fake import FakeUpstream

    out = Console(sys.stdout)
    tour = Tour(out, quiet=args.quiet)
    started = time.perf_counter()
    dummy_key = "sk-demo-" + secrets.token_hex(12)
    with FakeUpstream.running(api_key=dummy_key) as fake:
        if not tour.quiet:
            out.line("llmrelay demo: real calls through the real code paths", style="bold")
            out.line(f"A fake LLM upstream listens on {fake.url} and speaks the providers' wire")
            out.line("formats; every provider's base URL points at it and a generated dummy key")
            out.line(
                "is set, in this process only. Nothing leaves this machine. It echoes prompts."
            )
        with _env(_point_env(fake, dummy_key)):
            asyncio.run(_tour(tour, fake))
            _handler(tour)
    elapsed = time.perf_counter() - started
    out.line()
    out.line(
        f"Done: {tour.calls} calls in {elapsed:.2f} s, no API key and no network needed.",
        style="bold green",
    )
    if not tour.quiet:
        _next_steps(out)
    return 0
