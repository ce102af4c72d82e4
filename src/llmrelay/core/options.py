"""Per-call options (:class:`CallOptions`) and the checks on them.

These are the keyword arguments of a call that are not generation parameters: keys and URLs,
timeouts and deadlines, fallbacks, cache and budget scoping. ``llmrelay.engine`` re-exports them.
:func:`split_kwargs` separates a call's keyword arguments into generation parameters and these
options; :data:`ModelRef` is what a caller may name as the model (used by the engine, the client
and batches alike).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigurationError, InvalidRequestError, finite, shown
from ..providers.api_choice import check_api
from ..providers.backends import Backend
from ..providers.resolve import Target
from ..providers.table import Secret
from ..state.base import check_ttl
from ..transport.base import Timeouts
from ..transport.headers import header_problem
from ..types import NO_PARAMS, PARAM_NAMES, GenerationParams, build_params
from .retry import RetryPolicy

__all__ = [
    "DEFAULT_TIMEOUTS",
    "NO_OPTIONS",
    "OPTION_NAMES",
    "CallOptions",
    "ModelRef",
    "caller_limited",
    "positive_option",
    "split_kwargs",
    "timeouts_from",
    "with_trace_id",
]

#: What a caller may name as the model: an alias or "provider/model", a Target, or a backend.
ModelRef = str | Target | Backend

DEFAULT_TIMEOUTS = Timeouts(connect=10.0, read=600.0, total=600.0)


@dataclass(slots=True)
class CallOptions:
    """Per-call options that are not generation parameters."""

    api_key: str | Secret | None = None
    base_url: str | None = None
    headers: Mapping[str, str] | None = None
    #: Seconds per attempt, or a ``Timeouts`` for connect/read/total of each attempt.
    timeout: float | Timeouts | None = None
    #: Seconds for the whole call: every attempt, backoff and fallback.
    deadline: float | None = None
    #: Streams: seconds from the start of an attempt to its first content chunk.
    first_token_timeout: float | None = None
    #: A system message prepended to the messages.
    system: str | None = None
    #: A pydantic model class: validate the output into it (structured output).
    response_model: Any = None
    #: Re-asks with the validation error after a structured-output failure.
    max_reasks: int = 1
    #: Retries per deployment (overrides the alias and engine settings).
    retries: int | None = None
    #: A full retry policy for this call.
    retry: RetryPolicy | None = None
    #: Aliases, provider/model names or Targets to try in order after the model fails.
    fallbacks: Sequence[str | Target] | None = None
    context_window_fallbacks: Sequence[str | Target] | None = None
    content_filter_fallbacks: Sequence[str | Target] | None = None
    #: Who the call is for: scopes the cache, budgets and limits (defaults to the API key).
    tenant: str | None = None
    #: Labels for budgets, limits and the request log, e.g. {"user": "u1", "team": "search"}.
    tags: Mapping[str, str] | None = None
    #: False skips the response cache for this call (read and write).
    use_cache: bool | None = None
    #: Seconds a cached answer of this call stays valid (overrides the cache's default).
    cache_ttl: float | None = None
    #: Read the cache but do not store this call's answer.
    no_store: bool = False
    #: Wait for a rate limit to free up (up to the deadline) instead of failing over at once.
    wait_for_rate_limit: bool | None = None
    #: Correlates this call's log rows and spans; generated when not given.
    trace_id: str | None = None
    #: Refuse (``UnsupportedCapabilityError``, before sending) a parameter the catalog says
    #: the model rejects, instead of dropping it and reporting it in ``adjusted_params``.
    strict_params: bool = False
    #: OpenAI wire API for this call: "responses" or "chat" (default: the alias's, the
    #: provider's, else what the model needs; see ``llmrelay.providers.api_choice``).
    api: str | None = None

    def __post_init__(self) -> None:
        # Built once per call that sets options (never for NO_OPTIONS): only type checks here,
        # unrolled (no getattr loops), so bad input fails with a named argument before anything
        # is resolved or sent; the rarely-set groups are checked only when one of them is set.
        if self.api_key is not None and not isinstance(self.api_key, str | Secret):
            _bad("api_key", "a string or a Secret", type(self.api_key))  # never show a key
        if self.base_url is not None and not isinstance(self.base_url, str):
            _bad("base_url", "a string", self.base_url)
        if self.system is not None and not isinstance(self.system, str):
            _bad("system", "a string", self.system)
        if self.tenant is not None:
            if not isinstance(self.tenant, str):
                _bad("tenant", "a string", self.tenant)
            if not str.isascii(self.tenant) and not _unicode(self.tenant):
                # It keys the cache, budgets and limits (encoded as UTF-8 there).
                raise InvalidRequestError("tenant holds lone surrogates (not valid Unicode)")
        if self.trace_id is not None and not isinstance(self.trace_id, str):
            _bad("trace_id", "a string", self.trace_id)
        if self.headers is not None:
            _check_headers(self.headers)
        if self.tags is not None:
            _check_str_map("tags", self.tags)
        t = self.timeout
        if (
            t is not None
            and not isinstance(t, Timeouts)
            and (isinstance(t, bool) or not isinstance(t, int | float) or not t > 0 or _huge(t))
        ):
            _bad("timeout", "a positive number of seconds or a Timeouts", t)
        if self.deadline is not None:
            positive_option("deadline", self.deadline)
        if self.first_token_timeout is not None:
            positive_option("first_token_timeout", self.first_token_timeout)
        if self.cache_ttl is not None:
            try:
                check_ttl(self.cache_ttl, "cache_ttl")
            except ConfigurationError as exc:
                raise InvalidRequestError(exc.message) from None
        m = self.max_reasks
        if (m.__class__ is not int and (isinstance(m, bool) or not isinstance(m, int))) or m < 0:
            _bad("max_reasks", "an integer >= 0", m)
        r = self.retries
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 0):
            _bad("retries", "an integer >= 0 (max_retries per deployment)", r)
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            _bad("retry", "a RetryPolicy", self.retry)
        if (
            self.fallbacks is not None
            or self.context_window_fallbacks is not None
            or self.content_filter_fallbacks is not None
        ):
            self._check_chains()
        if self.use_cache is not None and self.use_cache.__class__ is not bool:
            _bad("use_cache", "True, False or None", self.use_cache)
        w = self.wait_for_rate_limit
        if w is not None and w.__class__ is not bool:
            _bad("wait_for_rate_limit", "True, False or None", w)
        if self.no_store.__class__ is not bool:
            _bad("no_store", "True or False", self.no_store)
        if self.strict_params.__class__ is not bool:
            _bad("strict_params", "True or False", self.strict_params)
        if self.api is not None:
            check_api(self.api)

    def _check_chains(self) -> None:
        for name in ("fallbacks", "context_window_fallbacks", "content_filter_fallbacks"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, str) or not isinstance(v, Sequence)):
                _bad(name, "a list of aliases, 'provider/model' names or Targets", v)


def _unicode(text: str) -> bool:
    try:
        str.encode(text, "utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _huge(value: float) -> bool:
    """An int too large for a float (``10**400``): ``float()`` of it raises OverflowError."""
    return isinstance(value, int) and not finite(value)


def _shown(value: Any) -> str:
    """A short, safe description of a bad value (arbitrary objects may have hostile reprs)."""
    if isinstance(value, type):
        return value.__name__
    return shown(value)


def _bad(name: str, allowed: str, value: Any) -> None:
    raise InvalidRequestError(f"{name} must be {allowed}, not {_shown(value)}")


def _check_str_map(name: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        _bad(name, "a dict of string keys to string values", value)
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidRequestError(
                f"{name} must map strings to strings, not {_shown(k)}: {type(v).__name__}"
            )


def _check_headers(value: Any) -> None:
    if not isinstance(value, Mapping):
        _bad("headers", "a dict of header names to string values", value)
    for k, v in value.items():
        problem = header_problem(k, v)
        if problem is not None:
            raise InvalidRequestError(f"headers: {_shown(k)} {problem}")


def timeouts_from(value: float | Timeouts | None, default: Timeouts) -> Timeouts:
    """The per-attempt timeouts a ``timeout=`` option asks for (``default`` when unset)."""
    if value is None:
        return default
    if isinstance(value, Timeouts):
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or _huge(value)
    ):
        raise InvalidRequestError(
            f"timeout must be a positive number of seconds or a Timeouts, not {_shown(value)}"
        )
    return Timeouts(connect=min(float(value), default.connect or value), read=value, total=value)


def caller_limited(opts: CallOptions, in_force: Timeouts, sent: Timeouts, own: Timeouts) -> bool:
    """Was an attempt's time limit the caller's rather than the deployment's? True when the
    call's deadline cut it (``sent`` is not ``in_force``) or the call's ``timeout`` is shorter
    than the engine's own ``own`` (read or total; connect too when a ``Timeouts`` was given).
    Only asked after a timeout, never per call."""
    if sent is not in_force:
        return True
    if opts.timeout is None:  # the alias's or the engine's: the deployment's own
        return False
    inf = float("inf")
    pairs = [(in_force.read, own.read), (in_force.total, own.total)]
    if isinstance(opts.timeout, Timeouts):  # a number sets connect only as a cap of its own
        pairs.append((in_force.connect, own.connect))
    return any(
        (mine if mine is not None else inf) < (theirs if theirs is not None else inf)
        for mine, theirs in pairs
    )


def positive_option(name: str, value: float | None) -> None:
    """Raise ``InvalidRequestError`` unless ``value`` is None or a positive number."""
    if value is not None and (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or _huge(value)
    ):
        raise InvalidRequestError(
            f"{name} must be a positive number of seconds, not {_shown(value)}"
        )


OPTION_NAMES = frozenset(f.name for f in fields(CallOptions))
#: The options of a call that sets none.
NO_OPTIONS = CallOptions()


def _copier() -> Callable[[CallOptions, str], CallOptions]:
    """``dataclasses.replace(opts, trace_id=...)`` without ``__init__`` and its checks (``opts``
    passed them when it was made, a ``str`` trace id passes them): one attribute copy per
    field, unrolled -- generated from the fields, as ``dataclasses`` generates ``__init__``, so
    a field added later is copied too. A fifth of the cost of building the options anew."""
    names = [f.name for f in fields(CallOptions) if f.name != "trace_id"]
    body = "".join(f"    o.{n} = opts.{n}\n" for n in names)
    src = f"def copy(opts, trace_id):\n    o = new(C)\n{body}    o.trace_id = trace_id\n"
    src += "    return o\n"
    scope: dict[str, Any] = {"new": object.__new__, "C": CallOptions}
    exec(src, scope)  # our own text, built from the dataclass's field names
    fn: Callable[[CallOptions, str], CallOptions] = scope["copy"]
    return fn


_copy_with_trace_id = _copier()


def with_trace_id(opts: CallOptions, trace_id: str) -> CallOptions:
    """``opts`` with ``trace_id`` (a new object; ``opts`` is not changed): what a server
    passes per request, its other options made once."""
    if trace_id.__class__ is not str:
        _bad("trace_id", "a string", trace_id)
    return _copy_with_trace_id(opts, trace_id)


#: kwargs (as items) -> their split, for calls whose keyword values are all strings or None
#: (``api_key``, ``base_url``, ``tenant`` ...): the same arguments give the same (unchanged)
#: options, checked once instead of on every call.
_SPLITS: dict[tuple[tuple[str, Any], ...], tuple[GenerationParams, CallOptions]] = {}


def split_kwargs(kwargs: dict[str, Any]) -> tuple[GenerationParams, CallOptions]:
    """Separate generation parameters from call options; reject unknown names."""
    if not kwargs:
        return NO_PARAMS, NO_OPTIONS
    for v in kwargs.values():
        if v is not None and v.__class__ is not str:
            return _split(kwargs)
    key = tuple(kwargs.items())
    hit = _SPLITS.get(key)
    if hit is None:
        hit = _split(kwargs)
        if len(_SPLITS) >= 256:  # one-off values (trace ids): keep this bounded
            _SPLITS.clear()
        _SPLITS[key] = hit
    return hit


def _split(kwargs: dict[str, Any]) -> tuple[GenerationParams, CallOptions]:
    params: dict[str, Any] = {}
    opts: dict[str, Any] = {}
    for k, v in kwargs.items():
        if k in PARAM_NAMES or k == "extra":
            params[k] = v
        elif k in OPTION_NAMES:
            opts[k] = v
        else:
            raise InvalidRequestError(
                f"unknown argument {k!r}. Generation parameters: {', '.join(sorted(PARAM_NAMES))}; "
                f"call options: {', '.join(sorted(OPTION_NAMES))}; provider-specific fields go in "
                "extra={...}"
            )
    return build_params(params), (CallOptions(**opts) if opts else NO_OPTIONS)
