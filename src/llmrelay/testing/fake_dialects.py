"""The wire dialects the fake upstream speaks, by provider family."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fake_anthropic import AnthropicDialect
from .fake_gemini import GeminiDialect
from .fake_openai import OpenAIDialect

if TYPE_CHECKING:
    from .fake import Dialect

DIALECTS: dict[str, Dialect] = {
    "openai": OpenAIDialect(),
    "anthropic": AnthropicDialect(),
    "gemini": GeminiDialect(),
}
