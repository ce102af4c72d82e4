"""What both wire shapes share: the call a request asks for, and how our errors become HTTP.

:func:`http_error` is the one mapping from an llmrelay error to a status, a short code and a
message safe to show a gateway client: upstream errors keep their kind (429 with
``retry-after``, 5xx as 502, timeouts as 504) but never the upstream's headers, body or
request id, and a failure of the gateway's own provider credentials (401/403 from upstream) is
a 502 that does not say more -- the client did nothing wrong and must not learn about keys. The
shared state store failing (a budget or rate limit that fails closed) is the gateway's own
dependency down: a 503 that does not name the store's URL.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from ..errors import (
    REDACTED,
    AllAttemptsFailedError,
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    ContentFilteredError,
    ContextWindowExceededError,
    DeadlineExceededError,
    InvalidRequestError,
    LLMRelayError,
    MissingAPIKeyError,
    ModelRetiredError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitedError,
    StateStoreError,
    StructuredOutputError,
    UnknownModelError,
    UnsupportedCapabilityError,
)
from ..providers.resolve import resolve_target
from ..providers.table import PROVIDERS
from ..types import Message, Response, Usage
from .known import KnownValues

__all__ = [
    "STATE_STORE_DOWN",
    "GatewayCall",
    "HttpError",
    "callable_models",
    "check_model",
    "forget",
    "http_error",
    "json_body",
    "new_request_id",
    "no_keys",
    "no_urls",
    "param_error",
    "shown",
    "usage_of",
]

#: What a model name a client sends may contain: every provider's model ids and our aliases fit
#: (``ft:gpt-4o:org::id``, ``llama3.1:8b``, ``accounts/x/models/y``, ``claude-3@20240229``);
#: ``?``, ``#``, ``%``, ``\``, whitespace and ``..`` segments would steer a URL that carries
#: the model in its path (Gemini's ``models/{model}:generateContent``) to another endpoint.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,255}")


def param_error(message: str, param: str) -> InvalidRequestError:
    """A 400 for one request field: ``param`` names it as the client spelled it (the OpenAI
    error's ``param``, kept by :func:`http_error`)."""
    return InvalidRequestError(message, body={"param": param})


def check_model(name: str) -> None:
    """Refuse a client's model name that could reach anything but a configured model: a name
    that could rewrite the upstream URL (400), the test doubles, or a keyless provider (Ollama,
    vLLM, LM Studio) whose base URL the operator never set -- its default is a port on the
    gateway's own host (404)."""
    if not _MODEL_NAME.fullmatch(name) or ".." in re.split(r"[/:]", name):
        raise InvalidRequestError(
            "`model` may contain letters, digits and . _ : @ + - / (at most 256 characters)",
            body={"param": "model"},
        )
    target = resolve_target(name)
    spec = PROVIDERS.get(target.provider)
    if spec is None:
        return
    configured = target.base_url or any(
        os.environ.get(v, "").strip() for v in (spec.base_url_var, *spec.alt_base_url_envs)
    )
    if spec.wire == "test" or (not spec.key_required and not configured):
        raise UnknownModelError(
            f"provider {spec.name} is not configured on this gateway",
            provider=spec.name,
        )


def callable_models(allowed: tuple[str, ...]) -> list[str]:
    """The entries of a key's allow-list that name one model the gateway can call (an alias,
    ``provider/model`` or a bare model name it resolves), in the list's order. Patterns
    (``claude-*``) cannot be listed: what they allow is not a finite set."""
    out = []
    for m in allowed:
        if any(c in m for c in "*?["):
            continue
        try:
            check_model(m)
        except LLMRelayError:
            continue
        out.append(m)
    return out


@dataclass(slots=True)
class GatewayCall:
    """One call as a client's request describes it (either wire)."""

    model: str
    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    #: Engine parameter names this request spelled otherwise (``max_tokens`` sent as
    #: ``max_completion_tokens``): an error's ``param`` names the field as it was sent.
    wire_names: Mapping[str, str] | None = None


@dataclass(slots=True)
class HttpError:
    """An error as the gateway answers it."""

    status: int
    code: str
    message: str
    retry_after: float | None = None
    param: str | None = None
    #: False: the same request can never succeed (a budget or a tokens-per-minute limit it
    #: does not fit): ``x-should-retry: false``, which the official SDKs obey.
    retry: bool = True

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {} if self.retry else {"x-should-retry": "false"}
        return {"retry-after": str(max(1, math.ceil(self.retry_after)))}


#: What a caller gets while the shared state store (Redis) fails and a layer that fails closed
#: (the key's budget; rate limits with ``on_store_error = "closed"``) refuses the call: our own
#: dependency is down, no provider failed. Nothing of the store's error (its URL, host, port,
#: password) is shown.
STATE_STORE_DOWN = HttpError(
    503,
    "state_store_unavailable",
    "the gateway's shared state store is unavailable, so the key's budget and rate limits "
    "cannot be checked; try again shortly",
    retry_after=1.0,
)


def usage_of(resp: Response) -> Usage:
    """The usage a client is shown: the answer's own (the attempt that succeeded)."""
    return resp.usage


def _upstream(exc: LLMRelayError, known: KnownValues | None) -> HttpError:
    """A provider's failure after our retries and fallbacks."""
    if isinstance(exc, AuthenticationError | PermissionDeniedError | MissingAPIKeyError):
        return HttpError(
            502, "upstream_auth", "the upstream provider refused the gateway's credentials"
        )
    if isinstance(exc, QuotaExhaustedError):
        return HttpError(502, "upstream_quota", "the upstream provider's quota is exhausted")
    if isinstance(exc, RateLimitedError):
        return HttpError(
            429, "rate_limit_exceeded", "the upstream provider is rate limiting", exc.retry_after
        )
    if isinstance(exc, CircuitOpenError | OverloadedError):
        return HttpError(
            503, "unavailable", "the model is temporarily unavailable", exc.retry_after
        )
    if isinstance(exc, APITimeoutError | DeadlineExceededError):
        return HttpError(504, "timeout", "the upstream provider did not answer in time")
    if isinstance(exc, ContextWindowExceededError):
        return HttpError(
            400, "context_length_exceeded", "the prompt does not fit the model's context window"
        )
    if isinstance(exc, NotFoundError):
        return HttpError(404, "model_not_found", "the upstream provider does not know this model")
    if isinstance(exc, BadRequestError):
        return HttpError(
            400,
            "invalid_request",
            # Cleaned before it is cut: a cut address or key is no longer found.
            f"the upstream provider rejected the request: "
            f"{shown(_no_request_id(exc), exc.provider, known)[:300]}",
        )
    if isinstance(exc, APIConnectionError):
        return HttpError(502, "upstream_unreachable", "the upstream provider could not be reached")
    return HttpError(502, "upstream_error", "the upstream provider failed")


def _no_request_id(exc: LLMRelayError) -> str:
    """``exc``'s message without the upstream's request id: the message of an error after a
    stream's output was sent holds the upstream error's ``str()``, ``(status 400, request id
    req_...)``."""
    text, rid = exc.message, exc.request_id
    if not rid or rid not in text:
        return text
    text = text.replace(f", request id {rid})", ")").replace(f" (request id {rid})", "")
    return text.replace(rid, "-")


def _ours(exc: LLMRelayError) -> bool:
    """Raised by llmrelay's own rate limiter (not a provider's 429: that one has an HTTP
    status, and its body is the provider's to write)."""
    body = exc.body
    return (
        getattr(exc, "status", None) is None
        and isinstance(body, dict)
        and body.get("source") == "llmrelay.ratelimit"
    )


def forget(exc: BaseException) -> None:
    """Let go of what a handled error holds: the frames its traceback keeps (and those of its
    causes, contexts and grouped failures) are cleared and the tracebacks dropped. A failed
    call's error is kept in a reference cycle through the frames that raised it (a frame holds
    the error, the error's traceback holds the frame), with the request's body and messages in
    their locals: ~750 KB of a 1 MB request, until a full garbage collection. Freed here, they
    go as soon as the error does. Only for an error the gateway has answered and drops."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        tb = e.__traceback__
        if tb is not None:
            traceback.clear_frames(tb)  # (the handler's own frame is running: left as it is)
            e.__traceback__ = None
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
        group = getattr(e, "exceptions", None)
        if isinstance(group, list | tuple):
            todo += [x for x in group if isinstance(x, BaseException)]


#: A URL's ``://`` as an error's text may spell it: plain, JSON-escaped (``:\/\/``, twice
#: escaped ``:\\\/\\\/``), ``\u``-escaped, percent-encoded (``%3A%2F%2F``, twice: ``%253A...``).
_SEP = r"(?::|%(?:25)?3[Aa]|\\u003[Aa])(?:\\{0,3}/|%(?:25)?2[Ff]|\\u002[Ff]){2}"
#: What names where the gateway sends its calls in an error's text: a URL (a provider's base
#: URL: a misconfigured one, one an upstream echoed, one in a message written for the library's
#: user; with or without its quotes -- a space inside a quoted URL is part of it: ``'http://bad
#: host/v1'``), and without a scheme: a bracketed IPv6 address (``[::1]:8080``), an IPv4
#: address (``10.1.2.3``, ``10.1.2.3:8080``), a host name with a port (``api.internal:8443``,
#: ``localhost:1234``). Not prose: a ratio (``3:1``), a time (``12:30``), a model name
#: (``gpt-4.1-mini``, ``claude-3-5-sonnet@20240620``, ``llama3.1:8b``, Bedrock's
#: ``anthropic.claude-3-haiku-20240307-v1:0``): a host name ends in a label of letters only and
#: its port has two digits or more.
_URL = re.compile(
    r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*"  # (from a scheme's start only: not quadratic)
    + _SEP
    + r"(?:[^\s'\"]*\s+[^\s'\"]*(?=['\"])|[^\s'\"]*[^\s'\".,:;)])"
    r"|\[(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]+(?:%[\w.-]+)?\](?:(?::|%3[Aa])\d{1,5})?"
    r"|(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?:(?::|%3[Aa])\d{1,5})?(?!\w|\.\d)"
    r"|(?<![\w.-])(?:localhost|(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
    r"(?::|%3[Aa])\d{2,5}(?!\w)"
)
#: What every address ``_URL`` finds has (a colon before a digit, a slash, a backslash, a colon
#: or a percent sign; an encoded colon; two dots between digits; ``[`` and hex digits before a
#: colon): a text without it (most errors) costs one quick scan, not the search.
_MAYBE_URL = re.compile(r":[\d/\\:%]|%(?:25)?3[Aa]|\\u003[Aa]|\d\.\d{1,3}\.\d|\[[0-9A-Fa-f]{1,4}:")


def no_urls(text: str, provider: str | None = None) -> str:
    """``text`` with every URL or network address in it (``_URL``) replaced by what it names:
    ``provider``'s URL (a gateway caller never learns where the gateway sends its calls, nor a
    credential in that URL)."""
    if _MAYBE_URL.search(text) is None:
        return text
    return _URL.sub(f"[{provider} URL]" if provider else "[provider URL]", text)


#: A credential in an error's text (an upstream's 400 may echo the key it was sent, whole or
#: masked -- OpenAI's "Incorrect API key provided: sk-proj-****abcd" -- and a proxy the header
#: it got): what follows ``Bearer``/``Basic``, or an ``x-api-key``, ``api-key``, ``api_key``,
#: ``x-goog-api-key``, ``access_token``, ``authorization`` or ``key=`` (8 characters or more,
#: a digit or a mask among them); a token with a key's prefix (``sk-``, ``sk_``, ``pk-``,
#: ``rk_``, ``AIza``, ``xai-``, ``gsk_``, ``key-``, ``pplx-``, ``nvapi-``; not ``key_``: the
#: gateway's own key ids, which its budget errors name) and 8 characters or more after it, or
#: a mask (``****``, ``...``, ``…``: ``_key_shown`` decides); any token with a masked run (3
#: ``*`` or ``•`` or more) next to a key's characters.
_KEY = re.compile(
    r"(?P<lead>(?:(?i:\b(?:bearer|basic))\s+"
    r"|(?i:\b(?:x-api-key|x-goog-api-key|api[-_ ]?key|access[-_]?token|authorization)\b|\bkey(?==))"
    r"[\"']?\s*[:=]\s*[\"']?)"
    r"(?=[^\s'\",;]{0,255}[\d*\u2022\u2026])(?=[^\s'\",;]{8}))[^\s'\",;]+"
    r"|(?<![\w-])(?:(?:sk|pk|rk|gsk|xai|pplx|nvapi)[-_]|key-|AIza)"
    r"(?P<body>(?:[\w*\u2022\u2026-]|\.{2,}(?=[\w*\u2022]))+)"
    r"|(?<![\w-])(?:[\w-]+[*\u2022]{3,}|[*\u2022]{3,}[\w-])[\w*\u2022-]*"
)
#: What every credential ``_KEY`` finds holds, lower-cased: a text with none of these (most
#: errors) is not searched.
_KEY_HINTS = (
    "key",
    "sk-",
    "sk_",
    "pk-",
    "pk_",
    "rk-",
    "rk_",
    "xai-",
    "pplx-",
    "nvapi-",
    "aiza",
    "***",
    "\u2022\u2022\u2022",
    "bearer",
    "basic",
    "token",
    "authoriz",
)


def _key_shown(m: re.Match[str]) -> str:
    lead, body = m.group("lead"), m.group("body")
    if lead is not None:
        return lead + REDACTED
    if body is not None and len(body) < 8 and not any(c in body for c in "*.\u2022\u2026"):
        return m.group(0)  # ``key-value``, ``sk-learn``: a word, not a key
    return REDACTED


def no_keys(text: str) -> str:
    """``text`` with every credential in it (``_KEY``: whole or masked, after ``Bearer``, a
    header's value) replaced by ``[REDACTED]``."""
    low = text.lower()
    for hint in _KEY_HINTS:
        if hint in low:
            return _KEY.sub(_key_shown, text)
    return text


def shown(text: str, provider: str | None = None, known: KnownValues | None = None) -> str:
    """What a gateway caller may be shown of an error's text (an upstream's message, an
    attempt's reason, an in-band stream error): no URL or network address (``no_urls``), no
    credential (``no_keys``), and none of the gateway's own upstream hosts, addresses and keys
    (``known``: what the shapes above cannot tell from ordinary text)."""
    text = no_keys(no_urls(text, provider))
    return text if known is None else known.hide(text, provider)


def http_error(exc: BaseException, known: KnownValues | None = None) -> HttpError:
    """The status, code and message a gateway client gets for ``exc``; no URL, address or key
    in the message (``shown``, with the gateway's ``known`` values): an upstream's text, or a
    message written for the library's user, may hold the base URL the gateway calls or the key
    it sent."""
    err = _http_error(exc, known)
    err.message = shown(err.message, getattr(exc, "provider", None), known)
    return err


def _http_error(exc: BaseException, known: KnownValues | None) -> HttpError:
    if isinstance(exc, AllAttemptsFailedError):
        # The most telling failure: a caller error, then our own state store (a candidate it
        # refused was never tried), then the last upstream one.
        errors = [e for e in exc.exceptions if isinstance(e, LLMRelayError)]
        for kind in (ConfigurationError, StateStoreError):
            for e in errors:
                if isinstance(e, kind):
                    return http_error(e, known)
        return (
            http_error(errors[-1], known)
            if errors
            else HttpError(502, "upstream_error", "every attempt failed")
        )
    if isinstance(exc, StateStoreError):
        return replace(STATE_STORE_DOWN)  # (a copy: the caller sets its message and param)
    if isinstance(exc, BudgetExceededError):
        ra = exc.retry_after
        return HttpError(429, "budget_exceeded", exc.message, ra, retry=ra is not None)
    if isinstance(exc, CircuitOpenError):
        return HttpError(
            503, "unavailable", "the model is temporarily unavailable", exc.retry_after
        )
    if isinstance(exc, UnknownModelError):
        return HttpError(404, "model_not_found", exc.message)
    if isinstance(exc, ModelRetiredError):
        return HttpError(404, "model_retired", exc.message)
    if isinstance(exc, MissingAPIKeyError):
        return _upstream(exc, known)
    if isinstance(exc, UnsupportedCapabilityError | ConfigurationError):
        body = exc.body  # an InvalidRequestError's names the field: {"param": ...}
        named = isinstance(exc, InvalidRequestError) and isinstance(body, dict)
        param = body.get("param") if named else None
        return HttpError(400, "invalid_request", exc.message, param=param)
    if isinstance(exc, StructuredOutputError):
        return HttpError(502, "invalid_output", exc.message)
    if isinstance(exc, RateLimitedError) and _ours(exc):
        ra = exc.retry_after  # None: the request needs more than the limit allows at all
        return HttpError(429, "rate_limit_exceeded", exc.message, ra, retry=ra is not None)
    if isinstance(exc, ContentFilteredError):
        return HttpError(400, "content_filter", "the provider refused the content")
    if isinstance(exc, LLMRelayError):
        return _upstream(exc, known)
    return HttpError(500, "internal_error", "the gateway failed")


def new_request_id() -> str:
    """``req_`` and 32 hex digits: 64 random bits drawn once per process, then a counter --
    unique across workers and restarts without a system call per request."""
    return f"req_{_ID_PREFIX}{next(_ID_COUNTER):016x}"


_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def json_body(raw: bytes) -> Any:
    """A request body's JSON, or the typed 400 a client gets for one that is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequestError("the request body is not valid JSON") from None
