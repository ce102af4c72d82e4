"""llmrelay: one fast, typed interface to many LLM providers; every call reliable and accounted.

``import llmrelay`` is light: every public name is loaded on first use (PEP 562), so provider
adapters, aiohttp, pydantic and optional extras stay out of programs that do not touch them.

    >>> import llmrelay
    >>> llmrelay.chat("groq/openai/gpt-oss-20b", "Hello!").text   # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module

from ._version import __version__ as __version__

# Not `from typing import TYPE_CHECKING`: importing typing (and the re, enum and functools it
# pulls in) would be most of this module's import time. Type checkers treat the name as True.
TYPE_CHECKING = False

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
    "ResponseTooLargeError",
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
    # `X as X` marks an explicit re-export: without it, `from llmrelay import Client` fails
    # under mypy --strict, which cannot read the computed __all__ above.
    from typing import Any

    from .api import Client as Client
    from .api import achat as achat
    from .api import astream as astream
    from .api import chat as chat
    from .api import stream as stream
    from .batch import BatchResult as BatchResult
    from .batch import amap as amap
    from .breaker import BreakerRegistry as BreakerRegistry
    from .breaker import CircuitBreaker as CircuitBreaker
    from .budgets import BudgetLimit as BudgetLimit
    from .budgets import Budgets as Budgets
    from .cache import ResponseCache as ResponseCache
    from .catalog.detect import ModelCapabilityDetectorFactory as ModelCapabilityDetectorFactory
    from .catalog.layer import Catalog as Catalog
    from .catalog.models import LLMCapabilities as LLMCapabilities
    from .catalog.models import LLMProfile as LLMProfile
    from .catalog.models import MediaType as MediaType
    from .catalog.models import ModelFamily as ModelFamily
    from .catalog.providers import Provider as Provider
    from .catalog.providers import ProviderRegistry as ProviderRegistry
    from .catalog.registry import LLMRegistry as LLMRegistry
    from .config import CONFIG_REGISTRY as CONFIG_REGISTRY
    from .config import AnthropicBaseConfig as AnthropicBaseConfig
    from .config import AzureBaseConfig as AzureBaseConfig
    from .config import BaseModelConfig as BaseModelConfig
    from .config import ChatCaller as ChatCaller
    from .config import DeepSeekBaseConfig as DeepSeekBaseConfig
    from .config import FireworksBaseConfig as FireworksBaseConfig
    from .config import GeminiBaseConfig as GeminiBaseConfig
    from .config import GroqBaseConfig as GroqBaseConfig
    from .config import LMStudioBaseConfig as LMStudioBaseConfig
    from .config import MistralBaseConfig as MistralBaseConfig
    from .config import OllamaBaseConfig as OllamaBaseConfig
    from .config import OpenAIBaseConfig as OpenAIBaseConfig
    from .config import OpenRouterBaseConfig as OpenRouterBaseConfig
    from .config import ProviderBaseConfig as ProviderBaseConfig
    from .config import TogetherBaseConfig as TogetherBaseConfig
    from .config import VLLMBaseConfig as VLLMBaseConfig
    from .config import XAIBaseConfig as XAIBaseConfig
    from .config import create_model as create_model
    from .config import load_config as load_config
    from .config import register_config as register_config
    from .costs import calculate_cost as calculate_cost
    from .costs import estimate_request_cost as estimate_request_cost
    from .engine import CallOptions as CallOptions
    from .engine import Engine as Engine
    from .errors import AllAttemptsFailedError as AllAttemptsFailedError
    from .errors import APIConnectionError as APIConnectionError
    from .errors import APIError as APIError
    from .errors import APIStatusError as APIStatusError
    from .errors import APITimeoutError as APITimeoutError
    from .errors import AuthenticationError as AuthenticationError
    from .errors import BadRequestError as BadRequestError
    from .errors import BudgetExceededError as BudgetExceededError
    from .errors import CircuitOpenError as CircuitOpenError
    from .errors import ConfigFileError as ConfigFileError
    from .errors import ConfigurationError as ConfigurationError
    from .errors import ConflictError as ConflictError
    from .errors import ContentFilteredError as ContentFilteredError
    from .errors import ContextWindowExceededError as ContextWindowExceededError
    from .errors import DeadlineExceededError as DeadlineExceededError
    from .errors import InvalidRequestError as InvalidRequestError
    from .errors import InvalidResponseError as InvalidResponseError
    from .errors import LLMRelayError as LLMRelayError
    from .errors import MissingAPIKeyError as MissingAPIKeyError
    from .errors import ModelRetiredError as ModelRetiredError
    from .errors import NotFoundError as NotFoundError
    from .errors import OverloadedError as OverloadedError
    from .errors import PermissionDeniedError as PermissionDeniedError
    from .errors import QuotaExhaustedError as QuotaExhaustedError
    from .errors import RateLimitedError as RateLimitedError
    from .errors import ResponseTooLargeError as ResponseTooLargeError
    from .errors import ServerError as ServerError
    from .errors import StateStoreError as StateStoreError
    from .errors import StreamInterruptedError as StreamInterruptedError
    from .errors import StructuredOutputError as StructuredOutputError
    from .errors import UnknownModelError as UnknownModelError
    from .errors import UnsupportedCapabilityError as UnsupportedCapabilityError
    from .handler import ModelHandler as ModelHandler
    from .layers import Cost as Cost
    from .llm_client import LLMClient as LLMClient
    from .llm_client import LLMError as LLMError
    from .llm_client import LLMMessage as LLMMessage
    from .llm_client import LLMMessageRole as LLMMessageRole
    from .llm_client import LLMModels as LLMModels
    from .llm_client import LLMProviders as LLMProviders
    from .llm_client import LLMResponse as LLMResponse
    from .llm_client import LLMResponseType as LLMResponseType
    from .llm_client import LLMSettings as LLMSettings
    from .manager import LLMManager as LLMManager
    from .metrics import Metrics as Metrics
    from .otel import OtelSpans as OtelSpans
    from .providers import PROVIDERS as PROVIDERS
    from .providers import Deployment as Deployment
    from .providers import ProviderSpec as ProviderSpec
    from .providers import Secret as Secret
    from .providers import register_provider_spec as register_provider_spec
    from .ratelimit import Limits as Limits
    from .ratelimit import RateLimiter as RateLimiter
    from .recorders import CompositeRecorder as CompositeRecorder
    from .requestlog import RequestLog as RequestLog
    from .resolve import Target as Target
    from .retry import RetryBudget as RetryBudget
    from .retry import RetryPolicy as RetryPolicy
    from .streaming import ResponseStream as ResponseStream
    from .streaming import SyncResponseStream as SyncResponseStream
    from .testing.models import FunctionModel as FunctionModel
    from .testing.models import TestModel as TestModel
    from .tokens import count_message_tokens as count_message_tokens
    from .tokens import count_tokens as count_tokens
    from .trace import Attempt as Attempt
    from .trace import format_trace as format_trace
    from .transport.base import HttpRequest as HttpRequest
    from .transport.base import HttpResponse as HttpResponse
    from .transport.base import MockTransport as MockTransport
    from .transport.base import Timeouts as Timeouts
    from .types import GenerationParams as GenerationParams
    from .types import ImagePart as ImagePart
    from .types import Message as Message
    from .types import Response as Response
    from .types import StreamChunk as StreamChunk
    from .types import TextPart as TextPart
    from .types import Tool as Tool
    from .types import ToolCall as ToolCall
    from .types import ToolCallDelta as ToolCallDelta
    from .types import Usage as Usage
