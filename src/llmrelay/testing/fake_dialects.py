"""The wire dialects the fake upstream speaks, by provider family."""

from __future__ import annotations

from typing import Any

from .fake_openai import OpenAIDialect

DIALECTS: dict[str, Any] = {"openai": OpenAIDialect()}

try:  # the other dialects register here as they exist
    from .fake_anthropic import AnthropicDialect

    DIALECTS["anthropic"] = AnthropicDialect()
except ImportError:  # pragma: no cover
    pass
try:
    from .fake_gemini import GeminiDialect

    DIALECTS["gemini"] = GeminiDialect()
except ImportError:  # pragma: no cover
    pass
