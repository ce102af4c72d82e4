"""Seed 001: ``LLMClient`` -- provider-agnostic calls with fallbacks and typed results.

A thin facade over the engine::

    client = LLMClient()                                   # settings from the environment
    r = await client.get_response(
        messages=[LLMMessage(role="user", content="Hello")],
        response_model=UserProfile,                        # optional: a pydantic model
        preferred_models=[(LLMProviders.OPENAI, LLMModels.GPT_4_1_MINI)],
        auto=True,                                         # then the settings' defaults
    )
    if r.response_type == LLMResponseType.OBJECT: r.object ...

Candidates are tried in order, each with its provider's base URL and key from
:class:`LLMSettings`. Provider failures (rate limits, 5xx, bad keys, a structured answer that
never validates, ...) come back as ``LLMResponse(response_type=ERROR, error=LLMError(...))``;
programming errors (empty messages, a ``response_model`` that is not a pydantic model, a bad
parameter value) raise ``InvalidRequestError``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._sync import run_sync
from ..client import Client
from ..core.engine import OPTION_NAMES, CallOptions
from ..core.options import split_kwargs
from ..core.trace import Attempt, sent_attempts
from ..errors import (
    AllAttemptsFailedError,
    ConfigurationError,
    InvalidRequestError,
    LLMRelayError,
    MissingAPIKeyError,
    StructuredOutputError,
)
from ..providers.resolve import Target
from ..providers.table import PROVIDERS
from ..types import Message, MessagesInput, Usage, _kind, normalize_messages
from .seed001_settings import (
    LLMModels,
    LLMProviders,
    LLMSettings,
    field_errors,
    plain,
    split_model_ref,
)

__all__ = [
    "LLMClient",
    "LLMError",
    "LLMMessage",
    "LLMMessageRole",
    "LLMModels",
    "LLMProviders",
    "LLMResponse",
    "LLMResponseType",
    "LLMSettings",
]


class LLMMessageRole(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class LLMResponseType(StrEnum):
    TEXT = "text"
    OBJECT = "object"
    ERROR = "error"


class LLMMessage(BaseModel):
    """One chat message of seed 001: a role and text content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: LLMMessageRole
    content: str
    #: For ``role="tool"``: the id of the tool call this message answers.
    tool_call_id: str | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidRequestError(
                f"invalid LLMMessage: {field_errors(exc)}. Roles: system, user, assistant, tool; "
                "content is a string"
            ) from None

    def to_message(self) -> Message:
        """The llmrelay :class:`~llmrelay.Message` for this message."""
        return Message(self.role.value, self.content, tool_call_id=self.tool_call_id)


class LLMError(BaseModel):
    """A provider failure, as data: ``type`` is the llmrelay error class name."""

    type: str
    message: str
    details: dict[str, Any] | None = None

    @classmethod
    def from_exception(cls, exc: LLMRelayError, secrets: Iterable[str] = ()) -> LLMError:
        """Built from an llmrelay error: provider, model, status, request id and retry-after
        go into ``details`` (never the API key: ``secrets`` are scrubbed from every string)."""
        scrub = _scrubber(secrets)
        details: dict[str, Any] = {
            "provider": exc.provider,
            "model": exc.model,
            "status": exc.status,
            "request_id": exc.request_id,
            "retry_after": exc.retry_after,
        }
        message = exc.message
        if isinstance(exc, MissingAPIKeyError):
            details["variable"] = exc.variable
        if isinstance(exc, StructuredOutputError):
            details["raw"] = exc.raw
        if isinstance(exc, AllAttemptsFailedError):
            subs = [e for e in exc.exceptions if isinstance(e, LLMRelayError)]
            details["attempts"] = [
                {
                    "type": type(e).__name__,
                    "message": e.message,
                    "provider": e.provider,
                    "model": e.model,
                    "status": e.status,
                    "request_id": e.request_id,
                    "retry_after": e.retry_after,
                }
                for e in subs
            ]
            message += ": " + "; ".join(
                f"{e.provider}/{e.model}: {type(e).__name__}: {e.message}" for e in subs
            )
        return cls(type=type(exc).__name__, message=scrub(message), details=scrub(details))


def _scrubber(secrets: Iterable[str]) -> Any:
    keys = [s for s in secrets if s]

    def scrub(value: Any) -> Any:
        if not keys:
            return value
        if isinstance(value, str):
            for k in keys:
                value = value.replace(k, "[REDACTED]")
            return value
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return scrub


class LLMResponse(BaseModel):
    """The unified result: text, a validated object, or an error."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    response_type: LLMResponseType
    #: The generated text (for OBJECT responses: the raw JSON the model wrote).
    text: str | None = None
    #: The validated ``response_model`` instance (OBJECT responses).
    object: Any = None
    error: LLMError | None = None
    provider: str | None = None
    model: str | None = None
    usage: Usage | None = None
    #: Tokens of every attempt that reached a provider (re-asks, failed candidates included).
    total_usage: Usage | None = None
    #: Seconds for the whole call, fallbacks included.
    latency: float = 0.0
    finish_reason: str | None = None
    request_id: str | None = None
    #: Every attempt and skipped candidate, in order (``llmrelay.Attempt`` items).
    trace: list[Attempt] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.response_type != LLMResponseType.ERROR


#: Call options a caller may pass to ``get_response``; the rest come from the settings.
_OPTIONS_ALLOWED = frozenset(
    {"timeout", "deadline", "first_token_timeout", "system", "max_reasks", "headers", "retries"}
)
_OPTIONS_FROM_SETTINGS = frozenset(
    {"api_key", "base_url", "fallbacks", "context_window_fallbacks", "content_filter_fallbacks"}
)

Candidate = tuple[LLMProviders | str, LLMModels | str] | str


class LLMClient:
    """Seed 001's client: ``await LLMClient().get_response(messages=...)``."""

    def __init__(self, settings: LLMSettings | None = None, *, client: Client | None = None):
        if settings is not None and not isinstance(settings, LLMSettings):
            raise InvalidRequestError(
                f"settings must be an LLMSettings, not {type(settings).__name__}; build one with "
                "LLMSettings(...) or LLMSettings.from_env()"
            )
        if client is not None and not isinstance(client, Client):
            raise InvalidRequestError(
                f"client must be an llmrelay.Client, not {type(client).__name__}"
            )
        self.settings = settings if settings is not None else LLMSettings.from_env()
        self._own_client = client is None
        self.client = client if client is not None else Client()

    def __repr__(self) -> str:
        s = self.settings
        return f"LLMClient(default={s.default_provider}/{s.default_model})"

    async def aclose(self) -> None:
        """Close the connections of the client this LLMClient created (not an injected one)."""
        if self._own_client:
            await self.client.aclose()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ candidates

    def candidates(
        self, preferred_models: Sequence[Candidate] | None = None, auto: bool = True
    ) -> list[tuple[str, str]]:
        """The (provider, model) pairs a call tries, in order, deduplicated."""
        if not isinstance(auto, bool):
            raise InvalidRequestError(f"auto must be True or False, not {_kind(auto)}")
        out: list[tuple[str, str]] = []
        if preferred_models is not None:
            if isinstance(preferred_models, str | bytes) or not isinstance(
                preferred_models, Sequence
            ):
                raise InvalidRequestError(
                    "preferred_models must be a list of (provider, model) pairs, e.g. "
                    "[(LLMProviders.OPENAI, LLMModels.GPT_4_1_MINI)]"
                )
            out.extend(_candidate(c, i) for i, c in enumerate(preferred_models))
        if auto:
            out.extend(self.settings.fallback_candidates())
        elif not out:
            raise InvalidRequestError(
                "auto=False restricts the call to preferred_models, and none were given; pass "
                "preferred_models=[(provider, model), ...] or auto=True"
            )
        return list(dict.fromkeys(out))

    # ------------------------------------------------------------------ calls

    async def get_response(
        self,
        messages: Sequence[LLMMessage | Message | Mapping[str, Any]] | str,
        response_model: type[BaseModel] | None = None,
        temperature: float | None = None,
        preferred_models: Sequence[Candidate] | None = None,
        auto: bool = True,
        **params: Any,
    ) -> LLMResponse:
        """Try each candidate in order; return the first success or an ERROR response."""
        start = time.perf_counter()
        msgs = to_messages(messages)
        if response_model is not None:
            from ..core.structured import structured_spec

            structured_spec(response_model)  # a bad response_model raises here
        gen, base_opts = self._split(temperature, params)
        if response_model is not None:
            base_opts = dataclasses.replace(base_opts, response_model=response_model)
        trace: list[Attempt] = []
        failures: list[LLMRelayError] = []
        skipped: list[str] = []
        total = Usage()
        for provider, model in self.candidates(preferred_models, auto):
            label = f"{provider}/{model}"
            reason = self.settings.not_allowed_reason(provider, model)
            if reason is not None:
                trace.append(Attempt(label, "skipped", reason=reason))
                skipped.append(f"{label} ({reason})")
                continue
            opts = dataclasses.replace(
                base_opts,
                api_key=self.settings.api_key_for(provider),
                base_url=self.settings.base_url_for(provider),
            )
            try:
                resp = await self.client.engine.complete(Target(provider, model), msgs, gen, opts)
            except InvalidRequestError:
                raise
            except LLMRelayError as exc:
                failures.append(exc)
                trace.extend(exc.trace or [_failed_attempt(label, exc)])
                if isinstance(exc, StructuredOutputError) and exc.total_usage is not None:
                    total = total + exc.total_usage
                continue
            trace.extend(resp.trace)
            total = total + (resp.total_usage or resp.usage)
            return LLMResponse(
                response_type=(
                    LLMResponseType.OBJECT if response_model is not None else LLMResponseType.TEXT
                ),
                text=resp.text,
                object=resp.object,
                provider=resp.provider or provider,
                model=resp.model or model,
                usage=resp.usage,
                total_usage=total,
                latency=time.perf_counter() - start,
                finish_reason=resp.finish_reason,
                request_id=resp.request_id,
                trace=trace,
            )
        return LLMResponse(
            response_type=LLMResponseType.ERROR,
            error=LLMError.from_exception(self._failure(failures, skipped), self._secrets()),
            total_usage=total,
            latency=time.perf_counter() - start,
            trace=trace,
        )

    def get_response_sync(
        self,
        messages: Sequence[LLMMessage | Message | Mapping[str, Any]] | str,
        response_model: type[BaseModel] | None = None,
        temperature: float | None = None,
        preferred_models: Sequence[Candidate] | None = None,
        auto: bool = True,
        **params: Any,
    ) -> LLMResponse:
        """Sync :meth:`get_response` (works inside a running event loop too)."""
        return run_sync(
            self.get_response(
                messages,
                response_model=response_model,
                temperature=temperature,
                preferred_models=preferred_models,
                auto=auto,
                **params,
            )
        )

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _split(temperature: float | None, params: dict[str, Any]) -> tuple[Any, CallOptions]:
        bad = sorted(k for k in params if k in _OPTIONS_FROM_SETTINGS)
        if bad:
            raise InvalidRequestError(
                f"{', '.join(bad)} cannot be passed to get_response: keys and base URLs come "
                "from LLMSettings and the candidates from preferred_models (and auto=True)"
            )
        unknown_opts = sorted(k for k in params if k in OPTION_NAMES and k not in _OPTIONS_ALLOWED)
        if unknown_opts:
            raise InvalidRequestError(
                f"{', '.join(unknown_opts)} is not supported by LLMClient.get_response; "
                f"supported options: {', '.join(sorted(_OPTIONS_ALLOWED))}"
            )
        kwargs = dict(params)
        if temperature is not None:
            kwargs["temperature"] = temperature
        return split_kwargs(kwargs)

    def _secrets(self) -> list[str]:
        return [k.get() for k in self.settings.api_keys() if k]

    @staticmethod
    def _failure(failures: list[LLMRelayError], skipped: list[str]) -> LLMRelayError:
        if not failures:
            return ConfigurationError(
                "no candidate is allowed by the settings: "
                + "; ".join(skipped)
                + ". Check LLM_ALLOWED_PROVIDERS / LLM_ALLOWED_MODELS or preferred_models"
            )
        if len(failures) == 1:
            return failures[0]
        sent = sum(
            sent_attempts(f.trace) if f.trace else int(not isinstance(f, ConfigurationError))
            for f in failures
        )
        return AllAttemptsFailedError(
            f"all {len(failures)} candidates failed", failures, attempts=sent
        )


def _failed_attempt(label: str, exc: LLMRelayError) -> Attempt:
    outcome: Literal["skipped", "error"] = (
        "skipped" if isinstance(exc, ConfigurationError) else "error"
    )
    return Attempt(label, outcome, error=type(exc).__name__, status=exc.status, message=exc.message)


def _candidate(c: Any, i: int) -> tuple[str, str]:
    if isinstance(c, str):
        ref = split_model_ref(c)
        if ref is None:
            raise InvalidRequestError(
                f"preferred_models[{i}] is {c!r}, which names no provider; pass a "
                f"(provider, model) pair or 'provider/model', e.g. ('groq', {c!r})"
            )
        provider, model = ref
    elif isinstance(c, Sequence) and len(c) == 2:
        provider, model = plain(c[0]), plain(c[1])
    else:
        raise InvalidRequestError(
            f"preferred_models[{i}] is {_kind(c)}; pass a (provider, model) pair, e.g. "
            "(LLMProviders.OPENAI, LLMModels.GPT_4_1_MINI) or ('groq', 'openai/gpt-oss-20b')"
        )
    if not isinstance(provider, str) or provider not in PROVIDERS:
        known = ", ".join(sorted(PROVIDERS))
        raise InvalidRequestError(
            f"preferred_models[{i}]: unknown provider {_kind(provider)}; known providers: {known}"
        )
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"preferred_models[{i}]: the model must be a non-empty string")
    return provider, model


def to_messages(
    messages: Sequence[LLMMessage | Message | Mapping[str, Any]] | str,
) -> list[Message]:
    """Seed-001 messages (or llmrelay messages, dicts, a prompt) as llmrelay messages."""
    if isinstance(messages, str):
        return normalize_messages(messages)
    if isinstance(messages, LLMMessage | Message | Mapping):
        messages = [messages]
    if not isinstance(messages, Iterable):
        raise InvalidRequestError(
            f"messages must be a list of LLMMessage, not {type(messages).__name__}"
        )
    items: MessagesInput = [m.to_message() if isinstance(m, LLMMessage) else m for m in messages]
    return normalize_messages(items)
