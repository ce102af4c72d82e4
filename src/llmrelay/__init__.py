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
    "Client": "client",
    "chat": "client",
    "achat": "client",
    "stream": "client",
    "astream": "client",
    "embed": "client",
    "aembed": "client",
    "Embeddings": "types.embeddings",
    "ResponseStream": "core.streaming",
    "SyncResponseStream": "core.streaming",
    "Engine": "core.engine",
    "CallOptions": "core.engine",
    # types
    "Message": "types",
    "TextPart": "types",
    "ImagePart": "types",
    "DocumentPart": "types",
    "AudioPart": "types",
    "ReasoningPart": "types",
    "Tool": "types",
    "ToolCall": "types",
    "ToolCallDelta": "types",
    "Usage": "types",
    "Response": "types",
    "StreamChunk": "types",
    "GenerationParams": "types",
    "Attempt": "core.trace",
    "format_trace": "core.trace",
    # providers and transport
    "Secret": "providers.table",
    "ProviderSpec": "providers.table",
    "Deployment": "providers.table",
    "PROVIDERS": "providers.table",
    "register_provider_spec": "providers.table",
    "Target": "providers.resolve",
    "Timeouts": "transport.base",
    "MockTransport": "transport.base",
    "HttpRequest": "transport.base",
    "HttpResponse": "transport.base",
    # seed 002 / 000
    "BaseModelConfig": "seeds.seed002",
    "CONFIG_REGISTRY": "seeds.seed002",
    "register_config": "seeds.seed002",
    "create_model": "seeds.seed002",
    "load_config": "seeds.seed002",
    "ProviderBaseConfig": "seeds.seed002",
    "ChatCaller": "seeds.seed002",
    "GroqBaseConfig": "seeds.seed002",
    "OpenAIBaseConfig": "seeds.seed002",
    "AzureBaseConfig": "seeds.seed002",
    "AnthropicBaseConfig": "seeds.seed002",
    "GeminiBaseConfig": "seeds.seed002",
    "MistralBaseConfig": "seeds.seed002",
    "DeepSeekBaseConfig": "seeds.seed002",
    "TogetherBaseConfig": "seeds.seed002",
    "OpenRouterBaseConfig": "seeds.seed002",
    "FireworksBaseConfig": "seeds.seed002",
    "XAIBaseConfig": "seeds.seed002",
    "OllamaBaseConfig": "seeds.seed002",
    "VLLMBaseConfig": "seeds.seed002",
    "LMStudioBaseConfig": "seeds.seed002",
    "ModelHandler": "seeds.seed000_handler",
    # seed 001
    "LLMClient": "seeds.seed001_client",
    "LLMMessage": "seeds.seed001_client",
    "LLMMessageRole": "seeds.seed001_client",
    "LLMProviders": "seeds.seed001_client",
    "LLMModels": "seeds.seed001_client",
    "LLMResponse": "seeds.seed001_client",
    "LLMResponseType": "seeds.seed001_client",
    "LLMError": "seeds.seed001_client",
    "LLMSettings": "seeds.seed001_client",
    # reliability (seed 004)
    "LLMManager": "seeds.seed004_manager",
    "CircuitBreaker": "reliability.breaker",
    "BreakerRegistry": "reliability.breaker",
    "RetryPolicy": "core.retry",
    "RetryBudget": "core.retry",
    # observability: metrics, the request log, spans
    "Metrics": "observe.metrics",
    "RequestLog": "observe.requestlog",
    "CompositeRecorder": "observe.recorders",
    "OtelSpans": "observe.otel",
    # catalog, tokens and costs (seed 003)
    "LLMCapabilities": "catalog.profiles",
    "LLMProfile": "catalog.profiles",
    "ModelFamily": "catalog.profiles",
    "MediaType": "catalog.profiles",
    "LLMRegistry": "catalog.model_registry",
    "Provider": "catalog.provider_registry",
    "ProviderRegistry": "catalog.provider_registry",
    "default_providers": "catalog.provider_registry",
    "ModelCapabilityDetectorFactory": "catalog.detect",
    "Catalog": "catalog.layer",
    "Cost": "catalog.costs",
    "calculate_cost": "catalog.costs",
    "estimate_request_cost": "catalog.costs",
    "count_tokens": "catalog.tokens",
    "count_message_tokens": "catalog.tokens",
    "fit_messages": "catalog.fit",
    "FitResult": "catalog.fit",
    # state and accounting
    "Budgets": "reliability.budgets",
    "BudgetLimit": "reliability.budgets",
    "ResponseCache": "reliability.cache",
    "RateLimiter": "reliability.ratelimit",
    "Limits": "reliability.ratelimit",
    "BatchResult": "batch.runner",
    "amap": "client",
    # test doubles
    "TestModel": "providers.doubles",
    "FunctionModel": "providers.doubles",
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
    "RedirectError",
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

    from .batch.runner import BatchResult as BatchResult
    from .catalog.costs import Cost as Cost
    from .catalog.costs import calculate_cost as calculate_cost
    from .catalog.costs import estimate_request_cost as estimate_request_cost
    from .catalog.detect import ModelCapabilityDetectorFactory as ModelCapabilityDetectorFactory
    from .catalog.fit import FitResult as FitResult
    from .catalog.fit import fit_messages as fit_messages
    from .catalog.layer import Catalog as Catalog
    from .catalog.model_registry import LLMRegistry as LLMRegistry
    from .catalog.profiles import LLMCapabilities as LLMCapabilities
    from .catalog.profiles import LLMProfile as LLMProfile
    from .catalog.profiles import MediaType as MediaType
    from .catalog.profiles import ModelFamily as ModelFamily
    from .catalog.provider_registry import Provider as Provider
    from .catalog.provider_registry import ProviderRegistry as ProviderRegistry
    from .catalog.provider_registry import default_providers as default_providers
    from .catalog.tokens import count_message_tokens as count_message_tokens
    from .catalog.tokens import count_tokens as count_tokens
    from .client import Client as Client
    from .client import achat as achat
    from .client import aembed as aembed
    from .client import amap as amap
    from .client import astream as astream
    from .client import chat as chat
    from .client import embed as embed
    from .client import stream as stream
    from .core.engine import CallOptions as CallOptions
    from .core.engine import Engine as Engine
    from .core.retry import RetryBudget as RetryBudget
    from .core.retry import RetryPolicy as RetryPolicy
    from .core.streaming import ResponseStream as ResponseStream
    from .core.streaming import SyncResponseStream as SyncResponseStream
    from .core.trace import Attempt as Attempt
    from .core.trace import format_trace as format_trace
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
    from .errors import RedirectError as RedirectError
    from .errors import ResponseTooLargeError as ResponseTooLargeError
    from .errors import ServerError as ServerError
    from .errors import StateStoreError as StateStoreError
    from .errors import StreamInterruptedError as StreamInterruptedError
    from .errors import StructuredOutputError as StructuredOutputError
    from .errors import UnknownModelError as UnknownModelError
    from .errors import UnsupportedCapabilityError as UnsupportedCapabilityError
    from .observe.metrics import Metrics as Metrics
    from .observe.otel import OtelSpans as OtelSpans
    from .observe.recorders import CompositeRecorder as CompositeRecorder
    from .observe.requestlog import RequestLog as RequestLog
    from .providers.doubles import FunctionModel as FunctionModel
    from .providers.doubles import TestModel as TestModel
    from .providers.resolve import Target as Target
    from .providers.table import PROVIDERS as PROVIDERS
    from .providers.table import Deployment as Deployment
    from .providers.table import ProviderSpec as ProviderSpec
    from .providers.table import Secret as Secret
    from .providers.table import register_provider_spec as register_provider_spec
    from .reliability.breaker import BreakerRegistry as BreakerRegistry
    from .reliability.breaker import CircuitBreaker as CircuitBreaker
    from .reliability.budgets import BudgetLimit as BudgetLimit
    from .reliability.budgets import Budgets as Budgets
    from .reliability.cache import ResponseCache as ResponseCache
    from .reliability.ratelimit import Limits as Limits
    from .reliability.ratelimit import RateLimiter as RateLimiter
    from .seeds.seed000_handler import ModelHandler as ModelHandler
    from .seeds.seed001_client import LLMClient as LLMClient
    from .seeds.seed001_client import LLMError as LLMError
    from .seeds.seed001_client import LLMMessage as LLMMessage
    from .seeds.seed001_client import LLMMessageRole as LLMMessageRole
    from .seeds.seed001_client import LLMModels as LLMModels
    from .seeds.seed001_client import LLMProviders as LLMProviders
    from .seeds.seed001_client import LLMResponse as LLMResponse
    from .seeds.seed001_client import LLMResponseType as LLMResponseType
    from .seeds.seed001_client import LLMSettings as LLMSettings
    from .seeds.seed002 import CONFIG_REGISTRY as CONFIG_REGISTRY
    from .seeds.seed002 import AnthropicBaseConfig as AnthropicBaseConfig
    from .seeds.seed002 import AzureBaseConfig as AzureBaseConfig
    from .seeds.seed002 import BaseModelConfig as BaseModelConfig
    from .seeds.seed002 import ChatCaller as ChatCaller
    from .seeds.seed002 import DeepSeekBaseConfig as DeepSeekBaseConfig
    from .seeds.seed002 import FireworksBaseConfig as FireworksBaseConfig
    from .seeds.seed002 import GeminiBaseConfig as GeminiBaseConfig
    from .seeds.seed002 import GroqBaseConfig as GroqBaseConfig
    from .seeds.seed002 import LMStudioBaseConfig as LMStudioBaseConfig
    from .seeds.seed002 import MistralBaseConfig as MistralBaseConfig
    from .seeds.seed002 import OllamaBaseConfig as OllamaBaseConfig
    from .seeds.seed002 import OpenAIBaseConfig as OpenAIBaseConfig
    from .seeds.seed002 import OpenRouterBaseConfig as OpenRouterBaseConfig
    from .seeds.seed002 import ProviderBaseConfig as ProviderBaseConfig
    from .seeds.seed002 import TogetherBaseConfig as TogetherBaseConfig
    from .seeds.seed002 import VLLMBaseConfig as VLLMBaseConfig
    from .seeds.seed002 import XAIBaseConfig as XAIBaseConfig
    from .seeds.seed002 import create_model as create_model
    from .seeds.seed002 import load_config as load_config
    from .seeds.seed002 import register_config as register_config
    from .seeds.seed004_manager import LLMManager as LLMManager
    from .transport.base import HttpRequest as HttpRequest
    from .transport.base import HttpResponse as HttpResponse
    from .transport.base import MockTransport as MockTransport
    from .transport.base import Timeouts as Timeouts
    from .types import AudioPart as AudioPart
    from .types import DocumentPart as DocumentPart
    from .types import GenerationParams as GenerationParams
    from .types import ImagePart as ImagePart
    from .types import Message as Message
    from .types import ReasoningPart as ReasoningPart
    from .types import Response as Response
    from .types import StreamChunk as StreamChunk
    from .types import TextPart as TextPart
    from .types import Tool as Tool
    from .types import ToolCall as ToolCall
    from .types import ToolCallDelta as ToolCallDelta
    from .types import Usage as Usage
    from .types.embeddings import Embeddings as Embeddings
