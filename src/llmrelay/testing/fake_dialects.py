"""The wire dialects the fake upstream speaks, by provider family."""

from __future__ import annotations

from typing import Any

from .fake_anthropic import AnthropicDialect
from .fake_gemini import GeminiDialect
from .fake_openai import OpenAIDialect

DIALECTS: dict[str, Any] = {
    "openai": OpenAIDialect(),
    "anthropic": AnthropicDialect(),
    "gemini": GeminiDialect(),
}
