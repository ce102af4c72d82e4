"""Anthropic Messages (``POST {base_url}/v1/messages``, base URL ``https://api.anthropic.com``).

How the common request maps onto Anthropic's format:

* system and developer messages become the top-level ``system`` string (joined with blank
  lines), or a list of text blocks when a part carries ``cache_control``;
* ``max_tokens`` is required by Anthropic: :data:`DEFAULT_MAX_TOKENS` when the caller set none;
* ``stop`` is sent as ``stop_sequences``, ``user`` as ``metadata.user_id``; ``temperature``
  above 1 is clamped to Anthropic's maximum of 1; ``seed``, ``frequency_penalty`` and
  ``presence_penalty`` do not exist there and are dropped. Every such change is listed in
  ``Response.adjusted_params``;
* assistant tool calls become ``tool_use`` blocks and ``tool`` messages ``tool_result`` blocks
  of a user turn (consecutive turns of the same role are merged, as Anthropic expects);
* structured output (``response_format`` ``json_schema``) is Anthropic's JSON outputs
  (``output_config.format``) on the models that have them, else a forced tool whose input is
  the answer; either way it comes back as ``Response.text`` (JSON), streamed as text deltas;
* ``reasoning_effort`` becomes adaptive thinking + ``output_config.effort`` or a thinking
  ``budget_tokens`` per model (``anthropic_models``); thinking drops temperature, ``top_k`` and
  forced tool choice (reported in ``adjusted_params``);
* ``thinking`` / ``redacted_thinking`` blocks become ``Response.reasoning`` and
  ``Response.reasoning_parts`` and are sent back first in the assistant turn that replays them;
* ``stop_reason: "refusal"`` raises ``ContentFilteredError`` (``stop_details`` category and
  explanation, the partial text); streams raise it at the end;
* ``cache_control`` on text and document parts and on tools is sent on the Anthropic block (at
  most 4 breakpoints); documents are ``document`` blocks; audio is refused before sending.

Usage: Anthropic's ``input_tokens`` does NOT include prompt-cache reads and writes, which it
reports separately. ``Usage.input_tokens`` follows llmrelay's (OpenAI's) convention and counts
every prompt token, so it is ``input_tokens + cache_read_input_tokens +
cache_creation_input_tokens``; ``cached_tokens`` is ``cache_read_input_tokens`` and
``cache_write_tokens`` is ``cache_creation_input_tokens``.

The request is built in ``anthropic_request.py`` and streams are read in ``anthropic_stream.py``;
this module is the adapter: parsing a whole answer and mapping errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ...errors import (
    APIError,
    ContentFilteredError,
    ContextWindowExceededError,
    OverloadedError,
    QuotaExhaustedError,
)
from ...transport.base import HttpRequest, HttpResponse
from ...types import ChatRequest, ReasoningPart, Response, ToolCall
from ..table import Deployment
from .anthropic_request import (
    ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
    build_request,
    structured_output,
)
from .anthropic_stream import (
    AnthropicStream,
    finish_reason,
    reasoning_part,
    refusal_error,
    status_of,
    usage_from,
)
from .base import (
    _rid,
    answer_request_id,
    decode_json,
    error_body,
    error_for_status,
    invalid,
    make_error,
    secrets_of,
    status_message,
)
from .tool_args import args_text

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS", "AnthropicMessagesAdapter", "usage_from"]

_CONTEXT_MARKERS = (
    "prompt is too long",
    "exceed context limit",
    "exceeds context limit",
    "exceeds the context",
    "context window",
    "context length",
    "maximum context",
)
_BILLING_MARKERS = (
    "credit balance is too low",
    "purchase credits",
    "specified api usage limits",
)
_FILTER_MARKERS = ("content filtering policy",)


# --------------------------------------------------------------------------- adapter


class AnthropicMessagesAdapter:
    name: ClassVar[str] = "anthropic_messages"

    def build_request(self, req: ChatRequest, dep: Deployment) -> HttpRequest:
        return build_request(req, dep)

    def parse_response(self, resp: HttpResponse, req: ChatRequest, dep: Deployment) -> Response:
        data = decode_json(resp.body, dep)
        if not isinstance(data, dict):
            raise invalid("the response is not a JSON object", dep, resp.headers)
        if data.get("type") == "error":
            raise self.map_error(status_of(data), resp.headers, resp.body, dep)
        content = data.get("content")
        if not isinstance(content, list):
            raise invalid("the response has no content list", dep, resp.headers)
        structured = structured_output(req.params, dep.model)
        texts: list[str] = []
        calls: list[ToolCall] = []
        parts: list[ReasoningPart] = []
        answer: str | None = None
        for i, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                t = block.get("text")
                if isinstance(t, str):
                    texts.append(t)
            elif kind == "tool_use":
                name = str(block.get("name") or "")
                tool_input = block.get("input")
                if structured is not None and answer is None and name == structured.name:
                    answer = structured.text(tool_input)
                    continue
                calls.append(
                    ToolCall(
                        str(block.get("id") or f"toolu_{i}"),
                        name,
                        args_text(tool_input),
                    )
                )
            else:
                part = reasoning_part(block)
                if part is not None:
                    parts.append(part)
            # server-tool blocks carry no answer text.
        raw_finish = data.get("stop_reason")
        rid = answer_request_id(resp.headers, dep)
        if raw_finish == "refusal":
            raise refusal_error(data.get("stop_details"), "".join(texts), dep, rid)
        finish = finish_reason(raw_finish)
        if answer is not None and finish == "tool_calls" and not calls:
            finish = "stop"
        return Response(
            text=answer if answer is not None else "".join(texts),
            tool_calls=calls,
            finish_reason=finish,
            raw_finish_reason=raw_finish if isinstance(raw_finish, str) else None,
            usage=usage_from(data.get("usage")),
            provider=dep.provider,
            model=str(data.get("model") or dep.model),
            alias=dep.alias,
            id=data.get("id") if isinstance(data.get("id"), str) else None,
            request_id=rid,
            reasoning="".join(p.text for p in parts if not p.redacted),
            reasoning_parts=parts,
        )

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, dep: Deployment
    ) -> APIError:
        data = error_body(body)
        err = data.get("error") if isinstance(data, dict) else None
        message = etype = ""
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            etype = str(err.get("type") or "")
        elif isinstance(err, str):
            message = err
        if not message:
            message = status_message(status, body)
        low = f"{etype} {message}".lower()
        cls: type[APIError]
        if status in (400, 413, 422) and any(m in low for m in _CONTEXT_MARKERS):
            cls = ContextWindowExceededError
        elif (
            etype == "billing_error"
            or status == 402
            or (status in (400, 429) and any(m in low for m in _BILLING_MARKERS))
        ):
            cls = QuotaExhaustedError
        elif etype == "overloaded_error":
            cls = OverloadedError
        elif any(m in low for m in _FILTER_MARKERS):
            cls = ContentFilteredError
        else:
            cls = error_for_status(status)
        err = make_error(
            cls,
            f"{etype}: {message}" if etype else message,
            status=status,
            headers=headers,
            dep=dep,
            body=data if data else None,
        )
        # Anthropic puts the request id in the body too ({"type": "error", ..., "request_id"});
        # the request-id header wins when both are there.
        body_rid = data.get("request_id") if isinstance(data, dict) else None
        if err.request_id is None and isinstance(body_rid, str) and body_rid:
            err.request_id = _rid({"request-id": body_rid}, secrets_of(dep))
        return err

    def stream_state(self, req: ChatRequest, dep: Deployment) -> AnthropicStream:
        return AnthropicStream(self, dep, structured_output(req.params, dep.model))
