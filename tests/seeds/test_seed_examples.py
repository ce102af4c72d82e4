"""Every usage example of the five seeds, copied verbatim (only import lines changed to
``llmrelay``), as a test named after its seed and section.

Examples that must prove first-access behaviour run in a fresh interpreter (nothing another
test loaded can make them pass); the others run here against the fake upstream over real
sockets, with ``<PROVIDER>_BASE_URL`` pointing every provider at it -- never by editing the
example. An example that uses names an earlier part of its seed set up (``client``,
``messages``, ``llm_manager``, ``inference_fn`` ...) runs with those names bound as the seed
sets them up (the *context* of each test); seed 004's examples run on a fake clock (the
manager's ``clock``/``sleep`` defaults), so retries and breaker timeouts never wait.

Left out: seed 004's "Integration with Agents" (its ``Agent`` belongs to another framework,
not llmrelay; its ``LLMManager`` part is ``test_seed_004.py::test_agent_integration_example``).
Seed 003's "Configuring a Provider" elides further ``Provider`` arguments with a ``...`` line,
which Python rejects after keyword arguments; that one line is left out.
"""

# ruff: noqa: E501  (the seeds' lines, verbatim)

from __future__ import annotations

import ast
import asyncio
import io
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest
from pydantic import BaseModel

import llmrelay
from llmrelay import (
    BaseModelConfig,
    LLMManager,
    LLMMessage,
    LLMModels,
    LLMProviders,
    LLMResponseType,
    ProviderRegistry,
    RateLimitedError,
    register_config,
)
from llmrelay.catalog import model_registry
from llmrelay.catalog.model_registry import LLMRegistry, blended_cost_per_1k
from llmrelay.providers.table import PROVIDERS
from llmrelay.seeds import seed004_manager
from llmrelay.testing.fake import FakeUpstream

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY, FakeClock

SEED_000_BASIC_USAGE = """\
from llmrelay import ModelHandler

# Create a handler
handler = ModelHandler()

# List all available models
available_models = handler.list_available_models()
print(f"Available models: {available_models}")

# Get a response from a specific model
response = handler.get_response("mixtral-8x7b", "Explain quantum computing in simple terms.")
print(response)
"""

SEED_000_HANDLING_MULTIPLE_MODELS = """\
# Using multiple models for different tasks
handler = ModelHandler()

# Use a smaller, faster model for a simple query
quick_response = handler.get_response("llama3-8b", "What is the capital of France?")

# Use a more powerful model for a complex reasoning task
detailed_response = handler.get_response("c3opus", "Explain the implications of quantum computing for cryptography.")

# Use a specialized coding model for code generation
code_response = handler.get_response("qwen-coder-32b", "Write a Python function to find prime numbers using the Sieve of Eratosthenes.")
"""

SEED_001_BASIC_TEXT_GENERATION = """\
client = LLMClient()
response = await client.get_response(
    messages=[LLMMessage(role="user", content="Hello")],
    temperature=0.7
)
print(response.text)
"""

SEED_001_STRUCTURED_OUTPUT = """\
class UserProfile(BaseModel):
    name: str
    age: int
    interests: List[str]

response = await client.get_response(
    messages=messages,
    response_model=UserProfile,
    temperature=0.3
)

if response.response_type == LLMResponseType.OBJECT:
    profile = response.object
    print(f"Name: {profile.name}, Age: {profile.age}")
"""

SEED_001_PROVIDER_SELECTION = """\
response = await client.get_response(
    messages=messages,
    preferred_models=[
        (LLMProviders.OPENAI, LLMModels.GPT_4_1_MINI),
        (LLMProviders.OPENAI, LLMModels.GPT_4_1_NANO)
    ],
    auto=False  # Only use specified providers
)
"""

SEED_002_DEFINING_A_PROVIDER_BASE_CONFIGURATION = """\
class GroqBaseConfig(BaseModelConfig):
    def __init__(self):
        # Initialize Groq-specific parameters
        self.temperature = 0.7
        self.max_tokens = 1024
        self.api_key_env = "GROQ_API_KEY"
        self.top_p = 1.0
        self.frequency_penalty = 0.0
        self.presence_penalty = 0.0
        self.model = None  # Will be set by model subclasses
        self.system_message = "You are a helpful assistant."
        self.stream = False
        self.stop = None

    def get_params(self) -> dict:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
            "api_key": os.getenv(self.api_key_env, ""),
            "system_message": self.system_message,
            "stream": self.stream,
            "stop": self.stop
        }

    def caller_class(self):
        from llmrelay.config import GroqCaller
        return GroqCaller
"""

SEED_002_CREATING_MODEL_SPECIFIC_CONFIGURATIONS = """\
@register_config
class LlamaThreeSeventyBConfig(GroqBaseConfig):
    @classmethod
    def alias(cls) -> str:
        return "llama3-70b"

    def __init__(self):
        super().__init__()
        self.model = "llama3-70b-8192"
        self.max_tokens = 8192
"""

SEED_003_REGISTERING_A_NEW_MODEL = """\
from llmrelay import ModelCapabilityDetectorFactory

# Register a specific model
model = await ModelCapabilityDetectorFactory.register_claude_3_5_sonnet_latest(api_key)

# Register all available models
registry = await ModelCapabilityDetectorFactory.register_all_models(
    anthropic_api_key="...",
    openai_api_key="..."
)
"""

SEED_003_FINDING_MODELS_BY_CAPABILITY = """\
from llmrelay import LLMRegistry

registry = LLMRegistry()
vision_models = registry.get_models_by_capability(
    capability="supports_vision",
    min_context_window=16000,
    max_cost_per_1k=0.01
)
"""

SEED_003_CONFIGURING_A_PROVIDER = """\
from llmrelay import ProviderRegistry, Provider

provider_registry = ProviderRegistry()
provider_registry.register_provider(
    "anthropic",
    Provider(
        api_base="https://api.anthropic.com",
        rate_limits={"requests_per_minute": 60},
    )
)
"""

SEED_004_REGISTERING_AND_USING_MODELS = """\
from llmrelay import LLMManager

# Initialize LLM manager
llm_manager = LLMManager(
    max_retries=3,
    enable_caching=True
)

# Define model inference functions
def openai_gpt4(prompt: str, kwargs: dict) -> str:
    # Your OpenAI API call here
    return "Generated response from GPT-4"

def claude_opus(prompt: str, kwargs: dict) -> str:
    # Your Anthropic API call here
    return "Generated response from Claude"

# Register models with metadata
llm_manager.register_model(
    name="gpt-4",
    inference_fn=openai_gpt4,
    metadata={
        "provider": "openai",
        "max_tokens": 8192,
        "cost_per_1k_tokens": 0.03
    }
)

llm_manager.register_model(
    name="claude-opus",
    inference_fn=claude_opus,
    metadata={
        "provider": "anthropic",
        "max_tokens": 4096,
        "cost_per_1k_tokens": 0.015
    }
)

# Set active model
llm_manager.set_active_model("gpt-4")

# Generate response
response = llm_manager.generate(
    prompt="Explain quantum computing in simple terms.",
    temperature=0.7,
    max_tokens=500
)
print(response)
"""

SEED_004_CONFIGURING_FALLBACK_CHAIN = """\
# Set fallback chain for reliability
llm_manager.set_fallback_chain([
    "gpt-4",        # Primary
    "claude-opus",  # Fallback 1
    "gpt-3.5"       # Fallback 2
])

# If gpt-4 fails, automatically tries claude-opus, then gpt-3.5
response = llm_manager.generate("Analyze this data...")
"""

SEED_004_RESPONSE_CACHING = """\
# Enable caching for repeated queries
llm_manager = LLMManager(enable_caching=True)

# First call - hits the API
response1 = llm_manager.generate("What is AI?", use_cache=True)

# Second call - returns cached response
response2 = llm_manager.generate("What is AI?", use_cache=True)

# Clear cache when needed
llm_manager.clear_cache()
"""

SEED_004_CIRCUIT_BREAKER_PATTERN = """\
# Circuit breaker is automatic per model
llm_manager.register_model("unreliable-model", inference_fn)

# After 5 failures, circuit breaker opens
for i in range(10):
    try:
        response = llm_manager.generate("Test prompt")
    except Exception as e:
        print(f"Request failed: {e}")

# Manually reset if needed
llm_manager.reset_circuit_breaker("unreliable-model")

# Check circuit breaker state
info = llm_manager.get_model_info("unreliable-model")
print(f"Circuit breaker state: {info['circuit_breaker_state']}")
"""

SEED_004_PERFORMANCE_MONITORING = """\
# Get overall metrics
metrics = llm_manager.get_metrics()
print(f"Total requests: {metrics['total_requests']}")
print(f"Success rate: {metrics['success_rate']:.2%}")
print(f"Cache hit rate: {metrics['cache_hit_rate']:.2%}")
print(f"Total tokens: {metrics['total_tokens']}")
print(f"Total retries: {metrics['total_retries']}")

# Get model-specific information
model_info = llm_manager.get_model_info("gpt-4")
print(f"Requests: {model_info['stats']['requests']}")
print(f"Successes: {model_info['stats']['successes']}")
print(f"Failures: {model_info['stats']['failures']}")
print(f"Average latency: {model_info['stats']['avg_latency']:.3f}s")
print(f"Circuit state: {model_info['circuit_breaker_state']}")
"""

SEED_004_RETRY_WITH_EXPONENTIAL_BACKOFF = """\
# Configure retry attempts
llm_manager = LLMManager(max_retries=5)

# Automatic retry on failure with backoff:
# Attempt 1: immediate
# Attempt 2: wait 1s
# Attempt 3: wait 2s
# Attempt 4: wait 4s
# Attempt 5: wait 8s
response = llm_manager.generate("Process this request")
"""

SEED_004_MULTI_MODEL_SYSTEM_WITH_FALLBACK = """\
from llmrelay import LLMManager
import os

# Initialize manager
llm = LLMManager(max_retries=3, enable_caching=True)

# Register multiple providers
def openai_inference(prompt: str, kwargs: dict) -> str:
    import openai
    openai.api_key = os.getenv("OPENAI_API_KEY")
    response = openai.ChatCompletion.create(
        model="gpt-4",
        messages=[{"role": "user", "content": prompt}],
        **kwargs
    )
    return response.choices[0].message.content

def anthropic_inference(prompt: str, kwargs: dict) -> str:
    import anthropic
    client = anthropic.Anthropic(api_key=os.getenv("ANTHROPIC_API_KEY"))
    message = client.messages.create(
        model="claude-3-opus-20240229",
        max_tokens=kwargs.get("max_tokens", 1024),
        messages=[{"role": "user", "content": prompt}]
    )
    return message.content[0].text

# Register models
llm.register_model("gpt-4", openai_inference, {
    "provider": "openai",
    "max_tokens": 8192
})

llm.register_model("claude-opus", anthropic_inference, {
    "provider": "anthropic",
    "max_tokens": 4096
})

# Configure fallback
llm.set_active_model("gpt-4")
llm.set_fallback_chain(["gpt-4", "claude-opus"])

# Use with automatic fallback
response = llm.generate(
    prompt="Analyze the impact of AI on society",
    temperature=0.7,
    max_tokens=1000
)

# Monitor performance
metrics = llm.get_metrics()
print(f"Success rate: {metrics['success_rate']:.2%}")
print(f"Cache hit rate: {metrics['cache_hit_rate']:.2%}")
"""

SEED_004_BEST_PRACTICE_1 = """\
llm.set_fallback_chain([
    "primary-model",
    "backup-model-1",
    "backup-model-2"
])
"""

SEED_004_BEST_PRACTICE_2 = """\
# Enable caching to reduce API calls
llm = LLMManager(enable_caching=True)

# Use cache for similar queries
response = llm.generate(prompt, use_cache=True)
"""

SEED_004_BEST_PRACTICE_3 = """\
# Regularly check metrics
metrics = llm.get_metrics()
if metrics['success_rate'] < 0.95:
    print("WARNING: Low success rate detected")
    # Take action (alert, fallback, etc.)
"""

SEED_004_BEST_PRACTICE_4 = """\
# Check circuit breaker before critical operations
info = llm.get_model_info("model-name")
if info['circuit_breaker_state'] == 'open':
    # Circuit is open, use alternative approach
    llm.reset_circuit_breaker("model-name")
"""

SEED_004_BEST_PRACTICE_5 = """\
import os

# Never hardcode API keys
def secure_inference(prompt: str, kwargs: dict) -> str:
    api_key = os.getenv("API_KEY")
    if not api_key:
        raise ValueError("API key not configured")
    # Use api_key for inference
    return "response"
"""

SEED_002_FACTORY_FUNCTION_PATTERN = '''\
def create_groq_model(model_alias: str, **kwargs):
    """Factory function to create and configure a Groq model with custom parameters."""
    if model_alias not in CONFIG_REGISTRY:
        raise ValueError(f"Model alias '{model_alias}' not found.")

    config_cls = CONFIG_REGISTRY[model_alias]
    config_obj = config_cls()

    # Apply custom parameters
    for key, value in kwargs.items():
        if hasattr(config_obj, key):
            setattr(config_obj, key, value)

    return config_obj

# Usage
custom_model = create_groq_model("mixtral-8x7b", temperature=0.9)
'''


# --------------------------------------------------------------------------- running examples


def run_example(code: str, context: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """Run an example as a module would (top-level ``await`` allowed: then it returns the
    coroutine to await); returns its namespace and what it printed."""
    ns: dict[str, Any] = {"__name__": "seed_example", **(context or {})}
    compiled = compile(
        code, "<seed example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    out = io.StringIO()
    with redirect_stdout(out):
        result = eval(compiled, ns)
        assert result is None, "an example with top-level await runs through arun_example"
    return ns, out.getvalue()


async def arun_example(code: str, context: dict[str, Any]) -> tuple[dict[str, Any], str]:
    ns: dict[str, Any] = {"__name__": "seed_example", **context}
    compiled = compile(
        code, "<seed example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    out = io.StringIO()
    with redirect_stdout(out):
        result = eval(compiled, ns)
        if result is not None:
            await result
    return ns, out.getvalue()


@pytest.fixture
def everywhere(keys: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    """The fake upstream on a thread (for the seeds' sync code), every provider pointed at it."""
    with isolated_config(), FakeUpstream.running(api_key=CANARY_KEY) as fake:
        for spec in PROVIDERS.values():
            monkeypatch.setenv(spec.base_url_var, _base_url(fake, spec.wire))
        yield fake


def _base_url(fake: FakeUpstream, wire: str) -> str:
    if wire == "anthropic_messages":
        return fake.anthropic_base_url
    if wire == "gemini":
        return fake.gemini_base_url
    return fake.openai_base_url


# --------------------------------------------------------------------------- seed 000


def test_seed_000_basic_usage(everywhere: FakeUpstream) -> None:
    ns, out = run_example(SEED_000_BASIC_USAGE)
    lines = out.splitlines()
    assert lines[0].startswith("Available models: [")
    assert "'mixtral-8x7b'" in lines[0]
    assert lines[1] == "Echo: Explain quantum computing in simple terms."
    assert ns["available_models"] == list(llmrelay.CONFIG_REGISTRY)
    assert everywhere.requests[-1].body["model"] == "mixtral-8x7b-32768"


def test_seed_000_handling_multiple_models(everywhere: FakeUpstream) -> None:
    ns, _ = run_example(SEED_000_HANDLING_MULTIPLE_MODELS, {"ModelHandler": llmrelay.ModelHandler})
    assert ns["quick_response"] == "Echo: What is the capital of France?"
    assert ns["detailed_response"].startswith("Echo: Explain the implications")
    assert ns["code_response"].startswith("Echo: Write a Python function")
    sent = [(r.path, r.body["model"]) for r in everywhere.requests]
    assert sent[0] == ("/v1/chat/completions", "llama3-8b-8192")  # Groq
    assert sent[1][0].endswith("/messages")  # c3opus: Anthropic's Messages API
    assert sent[1][1] == "claude-3-opus-20240229"
    assert sent[2][0] == "/v1/chat/completions"


# --------------------------------------------------------------------------- seed 001


@pytest.fixture
def openai(fake: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch) -> FakeUpstream:
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    return fake


def seed_001_context() -> dict[str, Any]:
    """What seed 001's examples use without defining: its classes, an ``LLMClient``, the
    conversation ``messages``, pydantic's ``BaseModel`` and ``typing.List``."""
    return {
        "LLMClient": llmrelay.LLMClient,
        "LLMMessage": LLMMessage,
        "LLMResponseType": LLMResponseType,
        "LLMProviders": LLMProviders,
        "LLMModels": LLMModels,
        "BaseModel": BaseModel,
        "List": list,
        "client": llmrelay.LLMClient(),
        "messages": [LLMMessage(role="user", content="Tell me about Ada, 36, who likes chess.")],
    }


async def test_seed_001_basic_text_generation(openai: FakeUpstream) -> None:
    ns, out = await arun_example(SEED_001_BASIC_TEXT_GENERATION, seed_001_context())
    assert out == "Echo: Hello\n"
    body = openai.requests[-1].body
    assert (body["model"], body["temperature"]) == ("gpt-4.1-mini", 0.7)
    await ns["client"].aclose()


async def test_seed_001_structured_output(openai: FakeUpstream) -> None:
    ns, out = await arun_example(SEED_001_STRUCTURED_OUTPUT, seed_001_context())
    assert ns["response"].response_type == LLMResponseType.OBJECT
    profile = ns["profile"]
    assert type(profile).__name__ == "UserProfile"
    assert out == f"Name: {profile.name}, Age: {profile.age}\n"
    body = openai.requests[-1].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["temperature"] == 0.3


async def test_seed_001_provider_selection(openai: FakeUpstream) -> None:
    ns, _ = await arun_example(SEED_001_PROVIDER_SELECTION, seed_001_context())
    assert ns["response"].response_type == LLMResponseType.TEXT
    assert ns["response"].text.startswith("Echo: Tell me about Ada")
    assert [r.body["model"] for r in openai.requests] == ["gpt-4.1-mini"]


# --------------------------------------------------------------------------- seed 002


def seed_002_context() -> dict[str, Any]:
    """Seed 002's module scope: ``os``, ``BaseModelConfig`` and ``register_config``."""
    return {"os": os, "BaseModelConfig": BaseModelConfig, "register_config": register_config}


def test_seed_002_defining_a_provider_base_configuration(everywhere: FakeUpstream) -> None:
    ns, _ = run_example(SEED_002_DEFINING_A_PROVIDER_BASE_CONFIGURATION, seed_002_context())
    base = ns["GroqBaseConfig"]

    class Probe(base):  # type: ignore[misc, valid-type]
        @classmethod
        def alias(cls) -> str:
            return "seed-002-probe"

        def __init__(self) -> None:
            super().__init__()
            self.model = "openai/gpt-oss-20b"

    params = Probe().get_params()
    assert params["api_key"] == CANARY_KEY  # os.getenv("GROQ_API_KEY")
    assert (params["temperature"], params["max_tokens"], params["stop"]) == (0.7, 1024, None)
    caller = Probe().caller_class()(params)
    assert caller.call_llm("Hello") == "Echo: Hello"
    body = everywhere.requests[-1].body
    assert body["model"] == "openai/gpt-oss-20b"
    assert body["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}


def test_seed_002_creating_model_specific_configurations(everywhere: FakeUpstream) -> None:
    ns, _ = run_example(SEED_002_DEFINING_A_PROVIDER_BASE_CONFIGURATION, seed_002_context())
    ns, _ = run_example(SEED_002_CREATING_MODEL_SPECIFIC_CONFIGURATIONS, ns)
    assert llmrelay.CONFIG_REGISTRY["llama3-70b"] is ns["LlamaThreeSeventyBConfig"]
    answer = llmrelay.ModelHandler().get_response("llama3-70b", "Hi there")
    assert answer == "Echo: Hi there"
    body = everywhere.requests[-1].body
    assert (body["model"], body["max_tokens"]) == ("llama3-70b-8192", 8192)


SEED_002_FACTORY_FUNCTION_PATTERN_PROBE = (
    "from llmrelay import CONFIG_REGISTRY\n\n"
    + SEED_002_FACTORY_FUNCTION_PATTERN
    + "print(custom_model.temperature, custom_model.model)\n"
)


def test_seed_002_factory_function_pattern() -> None:
    # Fresh process: CONFIG_REGISTRY must hold the built-in aliases on first access, with no
    # other llmrelay entry point used before.
    probe = subprocess.run(
        [sys.executable, "-c", SEED_002_FACTORY_FUNCTION_PATTERN_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["0.9", "mixtral-8x7b-32768"]


def test_seed_002_factory_function_pattern_with_a_file_alias(tmp_path: Any) -> None:
    """An alias of ``llmrelay.toml`` is in ``CONFIG_REGISTRY`` from first access too: it was
    only there once some lookup had loaded the file (``"fast" in CONFIG_REGISTRY`` was False
    until ``llmrelay.chat("fast", ...)`` had run)."""
    (tmp_path / "llmrelay.toml").write_text(
        '[models.fast]\nprovider = "groq"\nmodel = "openai/gpt-oss-20b"\ntemperature = 0.2\n'
    )
    code = SEED_002_FACTORY_FUNCTION_PATTERN_PROBE.replace('"mixtral-8x7b"', '"fast"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMRELAY_")}
    # this llmrelay, whatever the working directory (a relative PYTHONPATH would not follow)
    src = os.path.dirname(os.path.dirname(llmrelay.__file__))
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    probe = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["0.9", "openai/gpt-oss-20b"]
    # a malformed file does not break the import: the first lookup names the problem
    (tmp_path / "llmrelay.toml").write_text("[models.fast\n")
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from llmrelay import CONFIG_REGISTRY, create_model\n"
            "print('mixtral-8x7b' in CONFIG_REGISTRY)\ncreate_model('fast')\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert probe.stdout == "True\n"
    assert "ConfigFileError" in probe.stderr


def test_config_registry_first_access_does_not_load_at_import() -> None:
    """``import llmrelay`` stays light: the aliases load on first access, not at import."""
    code = (
        "import sys, llmrelay\n"
        "assert 'llmrelay.seeds.seed002' not in sys.modules\n"
        "assert 'llmrelay.providers.aliases' not in sys.modules\n"
        "print(len(llmrelay.CONFIG_REGISTRY) > 10)\n"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout == "True\n"


# --------------------------------------------------------------------------- seed 003


@pytest.fixture
def fresh_catalog() -> Iterator[LLMRegistry]:
    """A default model registry of the test's own (the examples register into it)."""
    registry = LLMRegistry()
    model_registry.set_default_registry(registry)
    try:
        yield registry
    finally:
        model_registry.set_default_registry(None)


async def test_seed_003_registering_a_new_model(
    monkeypatch: pytest.MonkeyPatch, fresh_catalog: LLMRegistry
) -> None:
    # The seed's keys are "..." placeholders: this fake takes any key.
    async with FakeUpstream(models=("claude-3-5-sonnet-latest", "gpt-new-9")) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
        ns, _ = await arun_example(SEED_003_REGISTERING_A_NEW_MODEL, {"api_key": CANARY_KEY})
    # the alias, resolved to the snapshot it names
    assert ns["model"].id.startswith("anthropic/claude-3-5-sonnet")
    assert ns["registry"] is fresh_catalog
    assert "openai/gpt-new-9" in fresh_catalog
    assert "anthropic/claude-3-5-sonnet-latest" in fresh_catalog
    paths = [r.path for r in fake.requests]
    assert paths.count("/v1/models") == 3  # one model list, then both providers'


def test_seed_003_finding_models_by_capability() -> None:
    ns, _ = run_example(SEED_003_FINDING_MODELS_BY_CAPABILITY)
    vision = ns["vision_models"]
    assert vision
    for p in vision:
        assert p.capabilities.supports_vision
        assert (p.capabilities.max_context_window or 0) >= 16000
        blended = blended_cost_per_1k(p.capabilities)
        assert blended is not None
        assert blended <= 0.01  # 3:1 input:output, not the input price alone


async def test_seed_003_configuring_a_provider(
    fake: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = PROVIDERS["anthropic"]
    ns, _ = run_example(SEED_003_CONFIGURING_A_PROVIDER)
    provider_registry: ProviderRegistry = ns["provider_registry"]
    assert provider_registry.rate_limits("anthropic") == {"requests_per_minute": 60}
    assert PROVIDERS["anthropic"] is before  # a registry no client uses changes nothing
    # A client using it enforces its limits (fake clock: 60 a minute, then one a second).
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
    clock = FakeClock()
    client = llmrelay.Client(
        providers=provider_registry, limits=llmrelay.RateLimiter({}, clock=clock)
    )
    for i in range(60):
        await client.achat("anthropic/claude-haiku-4-5", f"call {i}", max_tokens=16)
    with pytest.raises(RateLimitedError) as ei:
        await client.achat("anthropic/claude-haiku-4-5", "one too many", max_tokens=16)
    assert ei.value.retry_after == pytest.approx(1.0)
    assert len(fake.requests) == 60


# --------------------------------------------------------------------------- seed 004


class Sleeps:
    """A fake ``asyncio.sleep`` recording the delays and moving the fake clock on."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """Every ``LLMManager`` made during the test runs on a fake clock (its defaults)."""
    clock = FakeClock()
    sleeps = Sleeps(clock)
    defaults = dict(seed004_manager.LLMManager.__init__.__kwdefaults__ or {})
    defaults.update(clock=clock, sleep=sleeps)
    monkeypatch.setattr(seed004_manager.LLMManager.__init__, "__kwdefaults__", defaults)
    return sleeps


class Flaky:
    """An inference function failing its first ``fail`` calls."""

    def __init__(self, answer: str, fail: int) -> None:
        self.answer, self.fail, self.calls = answer, fail, 0

    def __call__(self, prompt: str, kwargs: dict[str, Any]) -> str:
        self.calls += 1
        if self.calls <= self.fail:
            raise ConnectionError(f"{self.answer}: simulated outage")
        return self.answer


def seed_004_basic(fake_time: Sleeps) -> dict[str, Any]:
    """The namespace after seed 004's "Registering and Using Models"."""
    ns, out = run_example(SEED_004_REGISTERING_AND_USING_MODELS)
    assert out == "Generated response from GPT-4\n"
    return ns


def with_seed_models(**kw: Any) -> Callable[..., LLMManager]:
    """``LLMManager`` as the later examples find it: a new manager has the models the seed
    registered in "Registering and Using Models" (``generate`` then uses the first)."""

    def make(*args: Any, **kwargs: Any) -> LLMManager:
        m = LLMManager(*args, **kwargs)
        for name, fn in kw.items():
            m.register_model(name, fn)
        return m

    return make


def test_seed_004_registering_and_using_models(fake_time: Sleeps) -> None:
    ns = seed_004_basic(fake_time)
    info = ns["llm_manager"].get_model_info("gpt-4")
    assert info["metadata"]["cost_per_1k_tokens"] == 0.03
    assert info["stats"]["requests"] == 1
    assert fake_time.delays == []


def test_seed_004_configuring_fallback_chain(
    fake_time: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    ns = seed_004_basic(fake_time)
    caplog.set_level(logging.WARNING, logger="llmrelay.manager")
    ns, _ = run_example(SEED_004_CONFIGURING_FALLBACK_CHAIN, ns)
    assert ns["response"] == "Generated response from GPT-4"
    assert "'gpt-3.5' not registered" in caplog.text  # skipped, with a warning
    # "If gpt-4 fails, automatically tries claude-opus, then gpt-3.5"
    llm_manager: LLMManager = ns["llm_manager"]
    llm_manager.register_model("gpt-4", Flaky("never", fail=100))
    assert llm_manager.generate("Analyze this data...", use_cache=False) == (
        "Generated response from Claude"
    )
    assert fake_time.delays == [1.0, 2.0]


def test_seed_004_response_caching(fake_time: Sleeps) -> None:
    gpt4 = Flaky("AI is the study of ...", fail=0)
    context = {"LLMManager": with_seed_models(**{"gpt-4": gpt4})}
    ns, _ = run_example(SEED_004_RESPONSE_CACHING, context)
    assert ns["response1"] == ns["response2"] == "AI is the study of ..."
    assert gpt4.calls == 1  # the second call was answered from the cache
    assert ns["llm_manager"].get_metrics()["cache_hit_rate"] == 0.5
    ns["llm_manager"].generate("What is AI?", use_cache=True)
    assert gpt4.calls == 2  # the cache was cleared


def test_seed_004_circuit_breaker_pattern(fake_time: Sleeps) -> None:
    inference_fn = Flaky("never", fail=10**6)
    context = {"llm_manager": LLMManager(), "inference_fn": inference_fn}
    ns, out = run_example(SEED_004_CIRCUIT_BREAKER_PATTERN, context)
    lines = out.splitlines()
    assert len(lines) == 11
    assert all(line.startswith("Request failed: ") for line in lines[:10])
    assert inference_fn.calls == 5  # "After 5 failures, circuit breaker opens"
    assert "circuit" in lines[9].lower()
    assert lines[10] == "Circuit breaker state: closed"
    assert ns["info"]["stats"]["requests"] == 2  # two calls reached it; eight were refused
    assert all("simulated outage" not in line for line in lines[2:10])  # refused, not called


def test_seed_004_performance_monitoring(fake_time: Sleeps) -> None:
    ns = seed_004_basic(fake_time)
    ns["llm_manager"].generate(
        "Explain quantum computing in simple terms.", temperature=0.7, max_tokens=500
    )
    ns, out = run_example(SEED_004_PERFORMANCE_MONITORING, ns)
    assert out.splitlines() == [
        "Total requests: 2",
        "Success rate: 100.00%",
        "Cache hit rate: 50.00%",
        f"Total tokens: {ns['metrics']['total_tokens']}",
        "Total retries: 0",
        "Requests: 1",
        "Successes: 1",
        "Failures: 0",
        "Average latency: 0.000s",
        "Circuit state: closed",
    ]


def test_seed_004_retry_with_exponential_backoff(fake_time: Sleeps) -> None:
    flaky = Flaky("processed", fail=4)
    ns, _ = run_example(
        SEED_004_RETRY_WITH_EXPONENTIAL_BACKOFF, {"LLMManager": with_seed_models(m=flaky)}
    )
    assert ns["response"] == "processed"
    assert flaky.calls == 5
    assert fake_time.delays == [1.0, 2.0, 4.0, 8.0]  # the seed's schedule


def test_seed_004_multi_model_system_with_fallback(
    everywhere: FakeUpstream, fake_time: Sleeps
) -> None:
    """The real-world example: its OpenAI function uses ``openai.ChatCompletion``, which the
    openai SDK removed in 1.0 -- it fails every time, and the manager falls back to the
    Anthropic function (the anthropic SDK, pointed at the fake by ``ANTHROPIC_BASE_URL``)."""
    ns, out = run_example(SEED_004_MULTI_MODEL_SYSTEM_WITH_FALLBACK)
    assert ns["response"] == "Echo: Analyze the impact of AI on society"
    assert out == "Success rate: 100.00%\nCache hit rate: 0.00%\n"
    req = everywhere.requests[-1]
    assert req.path.endswith("/messages")
    assert (req.body["model"], req.body["max_tokens"]) == ("claude-3-opus-20240229", 1000)
    gpt4 = ns["llm"].get_model_info("gpt-4")["stats"]
    assert (gpt4["requests"], gpt4["failures"], gpt4["retries"]) == (1, 1, 2)
    assert fake_time.delays == [1.0, 2.0]


def test_seed_004_best_practices(fake_time: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    model = Flaky("fine", fail=0)
    llm = with_seed_models(**{"model-name": model})()
    caplog.set_level(logging.WARNING, logger="llmrelay.manager")
    ns, _ = run_example(SEED_004_BEST_PRACTICE_1, {"llm": llm})
    assert "not registered" in caplog.text  # the placeholders are skipped until registered
    ns, _ = run_example(
        SEED_004_BEST_PRACTICE_2,
        {"LLMManager": with_seed_models(**{"model-name": model}), "prompt": "What is AI?"},
    )
    assert ns["response"] == "fine"
    ns, out = run_example(SEED_004_BEST_PRACTICE_3, ns)
    assert out == ""  # 100% success
    ns, _ = run_example(SEED_004_BEST_PRACTICE_4, ns)
    assert ns["info"]["circuit_breaker_state"] == "closed"
    ns, _ = run_example(SEED_004_BEST_PRACTICE_5, {"os": os})
    with_key = with_seed_models(secure=ns["secure_inference"])()
    os.environ.pop("API_KEY", None)
    with pytest.raises(ValueError, match="API key not configured"):
        with_key.generate("x")
