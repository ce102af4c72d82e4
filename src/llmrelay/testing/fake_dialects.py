"""The wire dialects the fake upstream speaks, by provider family."""

from __future__ import annotations

from .fake_anthropic import AnthropicDialect
from .fake_base import Dialect
from .fake_embed_dialects import CohereDialect, VoyageDialect
from .fake_gemini import GeminiDialect
from .fake_openai import OpenAIDialect
from .fake_openai_responses import ResponsesDialect

DIALECTS: dict[str, Dialect] = {
    "openai": OpenAIDialect(),
    "anthropic": AnthropicDialect(),
    "gemini": GeminiDialect(),
    "openai_responses": ResponsesDialect(),
    "voyage": VoyageDialect(),
    "cohere": CohereDialect(),
}
