"""Tool-call arguments between an answer and the next request, the same for every wire adapter.

A model writes a call's arguments as JSON text (OpenAI) or sends them as an object (Anthropic
``input``, Gemini ``args``); ``ToolCall.arguments`` always keeps JSON text (:func:`args_text`).
Providers that take arguments back as an object get them parsed (:func:`tool_call_args`), with a
typed error before sending when they are not a JSON object.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from ...errors import InvalidRequestError, shown
from ...types import ToolCall

__all__ = ["args_text", "call_id_prefix", "tool_call_args"]


def tool_call_args(tc: ToolCall, provider: str) -> dict[str, Any]:
    """An assistant tool call's arguments as a JSON object (``provider`` needs them as one), or
    ``InvalidRequestError`` saying they are not. The inverse of :func:`args_text`."""
    try:
        args = orjson.loads(tc.arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        args = None
    if not isinstance(args, dict):
        raw = tc.arguments[:80] if isinstance(tc.arguments, str) else tc.arguments
        raise InvalidRequestError(
            f"the assistant tool call {shown(tc.name)} (id {shown(tc.id)}) has arguments that "
            f"are not a JSON object ({shown(raw)}); {provider} needs each tool call's "
            "arguments as an object"
        )
    return args


def args_text(value: Any) -> str:
    """A tool call's arguments as they arrive in an answer, as ``ToolCall.arguments`` keeps
    them: JSON text. A string is the text the model wrote (kept as sent, even when it is not
    valid JSON); an object (Anthropic ``input``, Gemini ``args``, some OpenAI-compatible
    servers) is encoded; nothing is ``"{}"``."""
    if value.__class__ is str:
        return value
    return "{}" if value is None else orjson.dumps(value).decode()


def call_id_prefix(response_id: object) -> str:
    """What the ids llmrelay makes up for tool calls that came without one start with
    (``call_<prefix>_<n>``): the answer's id where it has one, else random, so they differ from
    one answer to the next (a tool loop never has two calls of the same id)."""
    return response_id if isinstance(response_id, str) and response_id else secrets.token_hex(6)
