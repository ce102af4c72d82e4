"""llmrelay: one fast, typed interface to many LLM providers; every call reliable and accounted.

``import llmrelay`` is light: every public name is loaded on first use (PEP 562), so provider
adapters, aiohttp, pydantic and optional extras stay out of programs that do not touch them.

    >>> import llmrelay
    >>> llmrelay.chat("groq/openai/gpt-oss-20b", "Hello!").text   # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # main facade
    "Client": "api",
    "chat": "api",
    "achat": "api",
    "stream": "api",
    "astream": "api",
    "ResponseStream": "streaming",
    "SyncResponseStream": "streaming",
    "Engine": "engine",
    "CallOptions": "engine",
    # types
    "Message": "types",
    "TextPart": "types",
    "ImagePart": "types",
    "Tool": "types",
    "ToolCall": "types",
    "ToolCallDelta": "types",
    "Usage": "types",
    "Response": "types",
    "StreamChunk": "types",
    "GenerationParams": "types",
    "Attempt": "trace",
    "format_trace": "trace",
    # providers and transport
    "Secret": "providers",
    "ProviderSpec": "providers",
    "Deployment": "providers",
    "PROVIDERS": "providers",
    "register_provider_spec": "providers",
    "Target": "resolve",
    "Timeouts": "transport.base",
    "MockTransport": "transport.base",
    "HttpRequest": "transport.base",
    "HttpResponse": "transport.base",
    # seed 002 / 000
    "BaseModelConfig": "config",
    "CONFIG_REGISTRY": "config",
    "register_config": "config",
    "create_model": "config",
    "load_config": "config",
    "ProviderBaseConfig": "config",
    "ChatCaller": "config",
    "GroqBaseConfig": "config",
    "OpenAIBaseConfig": "config",
    "AzureBaseConfig": "config",
    "AnthropicBaseConfig": "config",
    "GeminiBaseConfig": "config",
    "MistralBaseConfig": "config",
    "DeepSeekBaseConfig": "config",
    "TogetherBaseConfig": "config",
    "OpenRouterBaseConfig": "config",
    "FireworksBaseConfig": "config",
    "XAIBaseConfig": "config",
    "OllamaBaseConfig": "config",
    "VLLMBaseConfig": "config",
    "LMStudioBaseConfig": "config",
    "ModelHandler": "handler",
    # seed 001
    "LLMClient": "llm_client",
    "LLMMessage": "llm_client",
    "LLMMessageRole": "llm_client",
    "LLMProviders": "llm_client",
    "LLMModels": "llm_client",
    "LLMResponse": "llm_client",
    "LLMResponseType": "llm_client",
    "LLMError": "llm_client",
    "LLMSettings": "llm_client",
    # reliability (seed 004)
    "LLMManager": "manager",
    "CircuitBreaker": "breaker",
    "BreakerRegistry": "breaker",
    "RetryPolicy": "retry",
    "RetryBudget": "retry",
    # observability: metrics, the request log, spans
    "Metrics": "metrics",
    "RequestLog": "requestlog",
    "CompositeRecorder": "recorders",
    "OtelSpans": "otel",
    # catalog, tokens and costs (seed 003)
    "LLMCapabilities": "catalog.models",
    "LLMProfile": "catalog.models",
    "ModelFamily": "catalog.models",
    "MediaType": "catalog.models",
    "LLMRegistry": "catalog.registry",
    "Provider": "catalog.providers",
    "ProviderRegistry": "catalog.providers",
    "ModelCapabilityDetectorFactory": "catalog.detect",
    "Catalog": "catalog.layer",
    "Cost": "layers",
    "calculate_cost": "costs",
    "estimate_request_cost": "costs",
    "count_tokens": "tokens",
    "count_message_tokens": "tokens",
    # state and accounting
    "Budgets": "budgets",
    "BudgetLimit": "budgets",
    "ResponseCache": "cache",
    "RateLimiter": "ratelimit",
    "Limits": "ratelimit",
    "BatchResult": "batch",
    "amap": "batch",
    # test doubles
    "TestModel": "testing.models",
    "FunctionModel": "testing.models",
}

_ERRORS = (
    "LLMRelayError",
    "ConfigurationError",
    "UnknownModelError",
    "MissingAPIKeyError",
    "InvalidRequestError",
    "ConfigFileError",
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "ContextWindowExceededError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "RateLimitedError",
    "QuotaExhaustedError",
    "ServerError",
    "OverloadedError",
    "ContentFilteredError",
    "APITimeoutError",
    "APIConnectionError",
    "InvalidResponseError",
    "StreamInterruptedError",
    "CircuitOpenError",
    "BudgetExceededError",
    "DeadlineExceededError",
    "StructuredOutputError",
    "StateStoreError",
    "AllAttemptsFailedError",
    "ModelRetiredError",
    "UnsupportedCapabilityError",
)
_EXPORTS.update(dict.fromkeys(_ERRORS, "errors"))

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmrelay' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .api import Client, achat, astream, chat, stream
    from .batch import BatchResult, amap
    from .breaker import BreakerRegistry, CircuitBreaker
    from .budgets import BudgetLimit, Budgets
    from .cache import ResponseCache
    from .catalog.detect import ModelCapabilityDetectorFactory
    from .catalog.layer import Catalog
    from .catalog.models import LLMCapabilities, LLMProfile, MediaType, ModelFamily
    from .catalog.providers import Provider, ProviderRegistry
    from .catalog.registry import LLMRegistry
    from .config import (
        CONFIG_REGISTRY,
        AnthropicBaseConfig,
        AzureBaseConfig,
        BaseModelConfig,
        ChatCaller,
        DeepSeekBaseConfig,
        FireworksBaseConfig,
        GeminiBaseConfig,
        GroqBaseConfig,
        LMStudioBaseConfig,
        MistralBaseConfig,
        OllamaBaseConfig,
        OpenAIBaseConfig,
        OpenRouterBaseConfig,
        ProviderBaseConfig,
        TogetherBaseConfig,
        VLLMBaseConfig,
        XAIBaseConfig,
        create_model,
        load_config,
        register_config,
    )
    from .costs import calculate_cost, estimate_request_cost
    from .engine import CallOptions, Engine
    from .errors import (
        AllAttemptsFailedError,
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        BudgetExceededError,
        CircuitOpenError,
        ConfigFileError,
        ConfigurationError,
        ConflictError,
        ContentFilteredError,
        ContextWindowExceededError,
        DeadlineExceededError,
        InvalidRequestError,
        InvalidResponseError,
        LLMRelayError,
        MissingAPIKeyError,
        ModelRetiredError,
        NotFoundError,
        OverloadedError,
        PermissionDeniedError,
        QuotaExhaustedError,
        RateLimitedError,
        ServerError,
        StateStoreError,
        StreamInterruptedError,
        StructuredOutputError,
        UnknownModelError,
        UnsupportedCapabilityError,
    )
    from .handler import ModelHandler
    from .layers import Cost
    from .llm_client import (
        LLMClient,
        LLMError,
        LLMMessage,
        LLMMessageRole,
        LLMModels,
        LLMProviders,
        LLMResponse,
        LLMResponseType,
        LLMSettings,
    )
    from .manager import LLMManager
    from .metrics import Metrics
    from .otel import OtelSpans
    from .providers import PROVIDERS, Deployment, ProviderSpec, Secret, register_provider_spec
    from .ratelimit import Limits, RateLimiter
    from .recorders import CompositeRecorder
    from .requestlog import RequestLog
    from .resolve import Target
    from .retry import RetryBudget, RetryPolicy
    from .streaming import ResponseStream, SyncResponseStream
    from .testing.models import FunctionModel, TestModel
    from .tokens import count_message_tokens, count_tokens
    from .trace import Attempt, format_trace
    from .transport.base import HttpRequest, HttpResponse, MockTransport, Timeouts
    from .types import (
        GenerationParams,
        ImagePart,
        Message,
        Response,
        StreamChunk,
        TextPart,
        Tool,
        ToolCall,
        ToolCallDelta,
        Usage,
    )
