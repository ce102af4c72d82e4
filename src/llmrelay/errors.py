"""The llmrelay exception hierarchy.

Every error llmrelay raises is an :class:`LLMRelayError`. Errors that come from a provider are
translated in exactly one place per wire adapter (``map_error``) and re-raised ``from`` the
underlying cause, so a 429, a 400 and a 401 always stay distinguishable::

    LLMRelayError
    ├── ConfigurationError                  (also ValueError) bad configuration, fix the code/config
    │   ├── UnknownModelError               an alias, provider or model that is not known
    │   ├── MissingAPIKeyError              the key variable is unset (raised before any request)
    │   ├── InvalidRequestError             a parameter or message is invalid (temperature 7, ...)
    │   ├── ConfigFileError                 a config file is malformed (names file, key, line)
    │   ├── ModelRetiredError               past its shutdown date (names the replacement)
    │   └── UnsupportedCapabilityError      the model cannot take the request (an image, tools, ...)
    ├── APIError                            something went wrong talking to a provider
    │   ├── APIStatusError                  the provider answered with an error status
    │   │   ├── BadRequestError             400 / 422
    │   │   │   └── ContextWindowExceededError   the prompt does not fit the model's context
    │   │   ├── AuthenticationError         401
    │   │   ├── PermissionDeniedError       403
    │   │   ├── NotFoundError               404 (unknown model or endpoint)
    │   │   ├── ConflictError               409
    │   │   ├── RateLimitedError            429, carries ``retry_after`` (seconds or None)
    │   │   ├── QuotaExhaustedError         429 ``insufficient_quota`` / 402: out of credit
    │   │   ├── RedirectError               3xx: redirects are refused (the key stays at its origin)
    │   │   └── ServerError                 5xx
    │   │       └── OverloadedError         Anthropic 529 / "overloaded"
    │   ├── ContentFilteredError            the provider refused the content (any status)
    │   ├── APITimeoutError                 connect / read / total timeout (also TimeoutError)
    │   ├── APIConnectionError              refused, reset, DNS, TLS (also ConnectionError)
    │   ├── InvalidResponseError            the body is not what the wire format promises
    │   │   └── ResponseTooLargeError       the body or a stream event is over the size limit
    │   └── StreamInterruptedError          a stream ended early; carries the partial response
    ├── CircuitOpenError                    a breaker refuses the call; carries ``retry_after``
    ├── BudgetExceededError                 a spending budget would be exceeded
    ├── DeadlineExceededError               the call's total deadline ran out (also TimeoutError)
    ├── StructuredOutputError               the model's output did not validate, after every re-ask
    ├── StateStoreError                     the state store (SQLite/Redis) failed
    └── AllAttemptsFailedError              (also ExceptionGroup) every candidate of a fallback
                                            chain failed; ``.exceptions`` holds each attempt's error

Every error carries ``provider``, ``model``, ``status``, ``headers`` (lower-cased keys),
``retry_after`` (seconds, parsed), ``request_id`` and ``body`` (the decoded error body, redacted).
No error ever contains an API key: adapters redact the key from any text they copy, response
headers named like credentials (``CREDENTIAL_HEADERS``) or holding the key are redacted, and no
error chains a cause that carries the request's headers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AllAttemptsFailedError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConfigFileError",
    "ConfigurationError",
    "ConflictError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "DeadlineExceededError",
    "InvalidRequestError",
    "InvalidResponseError",
    "LLMRelayError",
    "MissingAPIKeyError",
    "ModelRetiredError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "QuotaExhaustedError",
    "RateLimitedError",
    "RedirectError",
    "ResponseTooLargeError",
    "ServerError",
    "StateStoreError",
    "StreamInterruptedError",
    "StructuredOutputError",
    "UnknownModelError",
    "UnsupportedCapabilityError",
]

_EMPTY: Mapping[str, str] = {}

#: Header names whose values are credentials: an error never keeps their values.
CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "x-goog-api-key",
        "api-key",
        "cookie",
        "set-cookie",
    }
)
REDACTED = "[REDACTED]"


class LLMRelayError(Exception):
    """Base class of every llmrelay error."""

    #: Does this error say the *deployment* is unhealthy, so a circuit breaker counts it? The
    #: declared rule every breaker follows (``llmrelay.reliability.breaker.counts_as_failure``):
    # only provider
    #: and transport failures do; the caller's errors (bad input, a request that cannot be built,
    #: a 400/401/403/404, a refused content) and llmrelay's own refusals never do.
    breaker_failure: ClassVar[bool] = False
    #: Set on a timeout whose limit was the caller's, not the deployment's: a ``timeout`` the
    #: call shortened, a ``first_token_timeout``, or an attempt cut to fit the call's
    #: ``deadline``. Such a timeout says nothing about the deployment: no breaker counts it.
    caller_limited: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        if not isinstance(self, BaseExceptionGroup):  # a group's `message` is read-only (set)
            self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.headers: Mapping[str, str] = (
            {
                k.lower(): REDACTED if k.lower() in CREDENTIAL_HEADERS else v
                for k, v in headers.items()
            }
            if headers
            else _EMPTY
        )
        self.retry_after = retry_after
        self.request_id = request_id
        self.body = body
        # Filled by the engine: the attempts that led to this error (a list of Attempt).
        self.trace: list[Any] = []

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        extra = []
        if self.status is not None:
            extra.append(f"status {self.status}")
        if self.request_id:
            extra.append(f"request id {self.request_id}")
        if self.retry_after is not None:
            extra.append(f"retry after {self.retry_after:g}s")
        suffix = f" ({', '.join(extra)})" if extra else ""
        return f"[{where}] {self.message}{suffix}" if where else f"{self.message}{suffix}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[LLMRelayError], message: str, state: dict[str, Any]) -> LLMRelayError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


# --------------------------------------------------------------------------- configuration


class ConfigurationError(LLMRelayError, ValueError):
    """The configuration or the call's arguments are wrong; retrying will not help."""


class UnknownModelError(ConfigurationError):
    """An alias, provider or model that llmrelay does not know."""


class MissingAPIKeyError(ConfigurationError):
    """A provider needs a key and none is set. ``variable`` names the environment variable."""

    def __init__(self, message: str, *, variable: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.variable = variable


class InvalidRequestError(ConfigurationError):
    """A message or parameter is invalid before anything is sent."""


class ConfigFileError(ConfigurationError):
    """A configuration file is malformed. ``path``, ``key`` and ``line`` locate the problem."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        line: int | None = None,
        **kw: Any,
    ) -> None:
        loc = path or "<config>"
        if line is not None:
            loc += f":{line}"
        if key:
            loc += f" [{key}]"
        super().__init__(f"{loc}: {message}", **kw)
        self.path = path
        self.key = key
        self.line = line


class ModelRetiredError(ConfigurationError):
    """The model is past its provider's shutdown date. ``replacement`` names the successor."""

    def __init__(
        self,
        message: str,
        *,
        shutdown_date: str | None = None,
        replacement: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.shutdown_date = shutdown_date
        self.replacement = replacement


class UnsupportedCapabilityError(ConfigurationError):
    """The model cannot take this request (an image to a text-only model, tools to a model
    without tools). ``capability`` names what is missing. A fallback chain moves on."""

    def __init__(self, message: str, *, capability: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.capability = capability


# --------------------------------------------------------------------------- provider errors


class APIError(LLMRelayError):
    """An error while talking to a provider."""

    breaker_failure = True


class APIStatusError(APIError):
    """The provider answered with an HTTP error status."""


class BadRequestError(APIStatusError):
    """400/422: the provider rejected the request as invalid."""

    breaker_failure = False


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus max_tokens) does not fit the model's context window."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""

    breaker_failure = False


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or endpoint."""

    breaker_failure = False


class NotFoundError(APIStatusError):
    """404: unknown model or endpoint (check the model name and base URL)."""

    breaker_failure = False


class ConflictError(APIStatusError):
    """409: a conflicting request; the official SDKs retry it."""


class RateLimitedError(APIStatusError):
    """429: too many requests or tokens per minute. ``retry_after`` says when to come back."""


class QuotaExhaustedError(APIStatusError):
    """The account is out of credit or quota (``insufficient_quota``); retrying will not help."""


class RedirectError(APIStatusError):
    """3xx: the provider answered a redirect. Provider calls never follow redirects, so the API
    key is only ever sent to the configured base URL. ``location`` is the origin
    (``scheme://host:port``) the redirect pointed at, or None when it named none."""

    def __init__(self, message: str, *, location: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.location = location


class ServerError(APIStatusError):
    """5xx: the provider failed."""


class OverloadedError(ServerError):
    """The provider is overloaded (Anthropic 529 ``overloaded_error``)."""


class ContentFilteredError(APIError):
    """The provider refused the prompt or the output on content grounds: an OpenAI
    ``refusal``, an Anthropic ``stop_reason: "refusal"``, a Gemini ``SAFETY``/``RECITATION``/
    ``PROHIBITED_CONTENT`` finish or blocked prompt, an HTTP content-policy error.

    ``category`` is the provider's reason as it names it (``"SAFETY"``, ``"cyber"``, OpenAI's
    ``"refusal"``, ...), ``explanation`` the provider's words (the refusal message, Anthropic's
    ``stop_details.explanation``) and ``partial_text`` what the model wrote before it stopped.
    Triggers ``content_filter_fallbacks``; never paid for with a structured-output re-ask."""

    breaker_failure = False

    def __init__(
        self,
        message: str,
        *,
        category: str | None = None,
        explanation: str | None = None,
        partial_text: str = "",
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.category = category
        self.explanation = explanation
        self.partial_text = partial_text


class APITimeoutError(APIError, TimeoutError):
    """Connecting or reading took longer than the configured timeout."""


class APIConnectionError(APIError, ConnectionError):
    """The connection could not be made or broke (refused, reset, DNS, TLS)."""


class InvalidResponseError(APIError):
    """The provider answered something that is not its documented wire format."""


class ResponseTooLargeError(InvalidResponseError):
    """The answer (or one stream event) is larger than the configured limit; reading stopped
    there. ``limit`` is the limit in bytes and ``setting`` the option that raises it
    (``max_response_bytes`` or ``max_event_bytes``). Not retryable (the same deployment would
    answer the same) and it counts against the deployment's breaker: the provider misbehaves,
    not the caller."""

    def __init__(
        self, message: str, *, limit: int | None = None, setting: str | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.limit = limit
        self.setting = setting


class StreamInterruptedError(APIError):
    """A stream ended before its end event. ``partial`` holds the text and usage received."""

    def __init__(self, message: str, *, partial: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.partial = partial


_interrupted_lock = threading.Lock()
_interrupted_classes: dict[type[APIError], type[StreamInterruptedError]] = {}


def interrupted_class(cls: type[APIError]) -> type[StreamInterruptedError]:
    """The class of a stream cut by ``cls`` (an error the provider sent mid-stream, or the
    connection failing): a subclass of both ``StreamInterruptedError`` and ``cls``, so
    ``except OverloadedError`` and ``except StreamInterruptedError`` both catch it. One class per
    ``cls``, created on first use; its instances pickle (rebuilt through this function). A
    breaker judges it as ``cls`` declares."""
    if issubclass(cls, StreamInterruptedError):
        return cls
    made = _interrupted_classes.get(cls)
    if made is None:
        with _interrupted_lock:
            made = _interrupted_classes.get(cls)
            if made is None:
                made = type(
                    "StreamInterruptedError",
                    (StreamInterruptedError, cls),
                    {
                        "__module__": __name__,
                        "__qualname__": f"StreamInterruptedError[{cls.__qualname__}]",
                        "__doc__": f"A stream cut by {cls.__name__} after output was sent.",
                        "__slots__": (),
                        "breaker_failure": cls.breaker_failure,
                        "interrupted_by": cls,
                        "__reduce__": _reduce_interrupted,
                    },
                )
                _interrupted_classes[cls] = made
    return made


def _reduce_interrupted(self: StreamInterruptedError) -> tuple[Any, ...]:
    return (_rebuild_interrupted, (type(self).interrupted_by, self.message, dict(self.__dict__)))  # type: ignore[attr-defined]


def _rebuild_interrupted(cls: type[APIError], message: str, state: dict[str, Any]) -> LLMRelayError:
    return _rebuild(interrupted_class(cls), message, state)


def interrupted_by(exc: APIError, message: str, partial: Any) -> StreamInterruptedError:
    """``exc`` (raised after output was sent) as the error of a cut stream: an instance of both
    ``StreamInterruptedError`` and ``type(exc)``, with every field of ``exc`` and ``partial``."""
    state = dict(exc.__dict__)
    state.update(message=message, partial=partial, trace=[])
    err = _rebuild(interrupted_class(type(exc)), message, state)
    assert isinstance(err, StreamInterruptedError)
    return err


# --------------------------------------------------------------------------- engine errors


class CircuitOpenError(LLMRelayError):
    """The circuit breaker of a deployment is open (or its half-open probes are all taken)."""


class BudgetExceededError(LLMRelayError):
    """The call would take a spending budget past its limit."""

    def __init__(
        self,
        message: str,
        *,
        scope: str | None = None,
        limit_usd: float | None = None,
        spent_usd: float | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.scope = scope
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd


class DeadlineExceededError(LLMRelayError, TimeoutError):
    """The call's total deadline ran out before any attempt succeeded."""


class StructuredOutputError(LLMRelayError):
    """The model's output did not validate into the response model, after every re-ask.

    ``raw`` is the last output text, ``validation_error`` the last pydantic error and
    ``total_usage`` the tokens of every attempt (a ``llmrelay.Usage``).
    """

    def __init__(
        self,
        message: str,
        *,
        raw: str | None = None,
        validation_error: Any = None,
        total_usage: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.raw = raw
        self.validation_error = validation_error
        self.total_usage = total_usage


class StateStoreError(LLMRelayError):
    """The state store (SQLite, Redis, PostgreSQL) failed or is misconfigured."""


class AllAttemptsFailedError(LLMRelayError, ExceptionGroup):
    """Every candidate of a call failed. ``exceptions`` holds each candidate's last error, in
    order; ``attempts`` is the number of attempts actually sent (retries included; skipped
    candidates and refusals before sending not counted), None when not known."""

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        *,
        attempts: int | None = None,
        **kw: Any,
    ) -> AllAttemptsFailedError:
        return super().__new__(cls, message, list(exceptions))

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        *,
        attempts: int | None = None,
        **kw: Any,
    ) -> None:
        LLMRelayError.__init__(self, message, **kw)
        # ExceptionGroup keeps the args as (message, exceptions).
        self.args = (message, tuple(exceptions))
        self.attempts = attempts

    def __reduce__(self) -> tuple[Any, ...]:
        # A group is rebuilt through __new__ with its members (the base rebuild has none).
        return (
            _rebuild_group,
            (type(self), self.message, list(self.exceptions), dict(self.__dict__)),
        )

    def derive(self, excs: Sequence[Exception]) -> AllAttemptsFailedError:  # type: ignore[override]
        return AllAttemptsFailedError(self.message, excs)

    def __str__(self) -> str:
        parts = "; ".join(f"{type(e).__name__}: {e}" for e in self.exceptions)
        n = len(self.exceptions)
        attempts = getattr(self, "attempts", None)
        if attempts is None or attempts == n:
            return f"{self.message} ({n} attempts: {parts})"
        return f"{self.message} ({attempts} attempts; the last error of each candidate: {parts})"


def _rebuild_group(
    cls: type[AllAttemptsFailedError],
    message: str,
    exceptions: list[Exception],
    state: dict[str, Any],
) -> AllAttemptsFailedError:
    err = cls(message, exceptions)
    err.__dict__.update(state)
    return err


def finite(v: float) -> bool:
    """``math.isfinite`` that answers False for an int too large for a float (``10**400``),
    where ``math.isfinite`` and ``float()`` raise ``OverflowError``. For argument checks."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def bad_number(v: float) -> bool:
    """NaN, or an int too large for a float: what a check that allows ``inf`` still refuses."""
    return v != v or (isinstance(v, int) and not finite(v))


def shown(value: object) -> str:
    """A short, safe description of a bad argument for an error message: the repr of a plain
    ``str``/``int``/``float``/``bool`` (cut to 80 characters), else only its type's name --
    an arbitrary object's ``repr`` may raise, be huge or hold a secret."""
    t = type(value)
    if t is int and not finite(value):  # type: ignore[arg-type]
        return "an int too large for a float"
    if t in (str, int, float, bool):
        return repr(value)[:80]
    return t.__name__


def shown_names(keys: Iterable[object]) -> str:
    """Field names for an "unknown field(s)" message, sorted and comma-separated: a plain
    ``str`` as itself, anything else as :func:`shown` says (a caller's dict key may be any
    object, whose ``str``/``format`` may raise or leak)."""
    return ", ".join(sorted(k if type(k) is str else shown(k) for k in keys))


def is_retryable(exc: BaseException) -> bool:
    """The official SDKs' rule: connection errors, timeouts, 408, 409, 429, 5xx (not quota)."""
    if isinstance(exc, QuotaExhaustedError | ContextWindowExceededError | ContentFilteredError):
        return False
    if isinstance(exc, APIConnectionError | APITimeoutError | StreamInterruptedError):
        return True
    if isinstance(exc, RateLimitedError | ServerError | ConflictError):
        return True
    if isinstance(exc, APIStatusError) and exc.status in (408, 409, 429):
        return True
    return isinstance(exc, APIStatusError) and exc.status is not None and exc.status >= 500
