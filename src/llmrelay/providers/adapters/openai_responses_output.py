"""Reading the Responses API's answers: output items, usage, status and failures.

Shared by the non-streamed parser (``openai_responses``) and the stream state
(``openai_responses_stream``): a streamed answer's final ``Response`` is built from the same
output items a non-streamed one holds, so both give the same result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from ...errors import APIError, ContentFilteredError
from ...types import FinishReason, ReasoningPart, Response, ToolCall, Usage, make_usage
from ..table import Deployment
from .base import answer_request_id, as_int, make_error
from .openai_answer import filtered_error
from .openai_chat import OpenAIChatAdapter

__all__ = [
    "WIRE",
    "Output",
    "failed_error",
    "finish_of",
    "map_error",
    "parse_output",
    "plain_text",
    "raise_filtered",
    "raise_refusal",
    "response_from",
    "usage_from",
]

#: The name reasoning parts of this API carry in ``ReasoningPart.provider``.
WIRE = "openai_responses"

#: ``response.error.code`` of a failed response -> the HTTP status whose error class fits.
_FAILED_STATUS = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "invalid_prompt": 400,
    "invalid_image": 400,
    "invalid_image_format": 400,
    "invalid_base64_image": 400,
    "invalid_image_url": 400,
    "image_too_large": 400,
    "image_too_small": 400,
    "image_parse_error": 400,
    "image_content_policy_violation": 400,
    "invalid_image_mode": 400,
    "image_file_too_large": 400,
    "unsupported_image_media_type": 400,
    "empty_image_file": 400,
    "failed_to_download_image": 400,
    "image_file_not_found": 400,
    "context_length_exceeded": 400,
}

_CHAT = OpenAIChatAdapter()


def map_error(status: int, headers: Mapping[str, str], body: bytes, dep: Deployment) -> APIError:
    """Error answers of the Responses API have the Chat Completions shape (``{"error":
    {"message", "type", "param", "code"}}``): one mapping types both."""
    return _CHAT.map_error(status, headers, body, dep)


def usage_from(u: Any) -> Usage:
    if not isinstance(u, dict):
        return make_usage()
    itd = u.get("input_tokens_details")
    otd = u.get("output_tokens_details")
    return make_usage(
        input_tokens=as_int(u.get("input_tokens")),
        output_tokens=as_int(u.get("output_tokens")),
        cached_tokens=as_int(itd.get("cached_tokens")) if isinstance(itd, dict) else 0,
        reasoning_tokens=as_int(otd.get("reasoning_tokens")) if isinstance(otd, dict) else 0,
    )


def _items(v: Any) -> list[Any]:
    """``v`` if it is a list (an item's ``content`` or ``summary``), else nothing: a malformed
    item is read as empty, never iterated as whatever else it is."""
    return v if isinstance(v, list) else []


class Output:
    """What a response's ``output`` items say, collected for a :class:`Response`.

    Items are read in their order. A reasoning item directly followed by a function call
    records that call's id (``ReasoningPart.before_call``), so the assistant message replays
    the two together, in the answer's order (``openai_responses.build_input``)."""

    __slots__ = (
        "_after_reasoning",
        "reasoning",
        "reasoning_parts",
        "refusal",
        "text",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: list[ToolCall] = []
        self.reasoning: list[str] = []
        self.reasoning_parts: list[ReasoningPart] = []
        #: The previous item was a reasoning item (the last of ``reasoning_parts``).
        self._after_reasoning = False

    def add(self, item: Any) -> None:
        if not isinstance(item, dict):
            return
        after_reasoning, self._after_reasoning = self._after_reasoning, False
        kind = item.get("type")
        if kind == "message":
            for part in _items(item.get("content")):
                if not isinstance(part, dict):
                    continue
                ptype = part.get("type")
                if ptype == "output_text":
                    text = part.get("text")
                    self.text.append(text if isinstance(text, str) else "")
                elif ptype == "refusal":
                    self.refusal.append(str(part.get("refusal") or ""))
        elif kind == "function_call":
            args = item.get("arguments")
            if not isinstance(args, str):
                args = orjson.dumps(args).decode() if args is not None else "{}"
            call_id = str(item.get("call_id") or item.get("id") or f"call_{len(self.tool_calls)}")
            self.tool_calls.append(ToolCall(call_id, str(item.get("name") or ""), args))
            if after_reasoning:
                parts = self.reasoning_parts
                parts[-1] = dataclasses.replace(parts[-1], before_call=call_id)
        elif kind == "reasoning":
            texts = [
                str(s.get("text") or "")
                for s in _items(item.get("summary"))
                if isinstance(s, dict) and s.get("type") == "summary_text"
            ]
            if not texts:  # raw reasoning text (open-weight models behind the API)
                texts = [
                    str(s.get("text") or "")
                    for s in _items(item.get("content"))
                    if isinstance(s, dict) and s.get("type") == "reasoning_text"
                ]
            text = "\n\n".join(t for t in texts if t)
            if text:
                self.reasoning.append(text)
            enc = item.get("encrypted_content")
            rid = item.get("id")
            self.reasoning_parts.append(
                ReasoningPart(
                    text=text,
                    data=enc if isinstance(enc, str) else None,
                    id=rid if isinstance(rid, str) else None,
                    provider=WIRE,
                )
            )
            self._after_reasoning = True


def plain_text(output: list[Any]) -> str | None:
    """The text of an output that is one message of ``output_text`` parts (most answers), else
    None (tool calls, reasoning, refusals, anything else: read with :func:`parse_output`)."""
    if len(output) != 1:
        return None
    item = output[0]
    if item.__class__ is not dict or item.get("type") != "message":
        return None
    content = item.get("content")
    if content.__class__ is not list:
        return None
    texts = []
    for part in content:
        if part.__class__ is not dict or part.get("type") != "output_text":
            return None
        text = part.get("text")
        if text.__class__ is not str:
            return None
        texts.append(text)
    return texts[0] if len(texts) == 1 else "".join(texts)


def parse_output(output: Any) -> Output:
    out = Output()
    if isinstance(output, list):
        for item in output:
            out.add(item)
    return out


def finish_of(status: Any, details: Any, out: Output) -> tuple[FinishReason | None, str | None]:
    """``(finish_reason, raw_finish_reason)`` of a response's ``status`` and
    ``incomplete_details``."""
    if status == "completed":
        return ("tool_calls" if out.tool_calls else "stop"), "completed"
    if status == "incomplete":
        reason = details.get("reason") if isinstance(details, dict) else None
        raw = str(reason) if reason else "incomplete"
        if reason == "max_output_tokens":
            return "length", raw
        if reason == "content_filter":
            return "content_filter", raw
        return "other", raw
    if status is None:
        return ("tool_calls" if out.tool_calls else None), None
    return "other", str(status)


def raise_refusal(out: Output, dep: Deployment, headers: Mapping[str, str]) -> None:
    """A refusal with no answer text is ``ContentFilteredError(category="refusal")`` with the
    model's words as its ``explanation`` (a refusal after some text keeps the text: the answer
    is returned)."""
    if not out.refusal or "".join(out.text):
        return
    said = "".join(out.refusal)
    err = make_error(
        ContentFilteredError,
        f"the model refused: {said[:300]}" if said else "the model refused",
        status=None,
        headers=headers,
        dep=dep,
    )
    assert isinstance(err, ContentFilteredError)
    err.category = "refusal"
    err.explanation = said
    raise err


def raise_filtered(
    data: Mapping[str, Any], out: Output, dep: Deployment, headers: Mapping[str, str]
) -> None:
    """``status: incomplete`` for ``content_filter`` is the stop Chat Completions calls
    ``finish_reason: content_filter``: the same ``ContentFilteredError`` (with the text so far
    as its ``partial_text``), so ``content_filter_fallbacks`` and callers see one error for
    both APIs."""
    details = data.get("incomplete_details")
    if data.get("status") != "incomplete" or not isinstance(details, dict):
        return
    if details.get("reason") != "content_filter":
        return
    rid = data.get("id")
    raise filtered_error(
        dep,
        headers,
        refusal=None,
        categories=None,
        partial_text="".join(out.text),
        response_id=rid if isinstance(rid, str) else None,
    )


def failed_error(error: Any, dep: Deployment, headers: Mapping[str, str]) -> APIError:
    """The typed error for a failed response's ``error`` object (or an ``error`` event)."""
    err = error if isinstance(error, dict) else {}
    code = str(err.get("code") or err.get("type") or "")
    status = _FAILED_STATUS.get(code, 500)
    return map_error(status, headers, orjson.dumps({"error": err}), dep)


def response_from(
    data: Mapping[str, Any], out: Output, dep: Deployment, headers: Mapping[str, str]
) -> Response:
    finish, raw = finish_of(data.get("status"), data.get("incomplete_details"), out)
    rid = data.get("id")
    return Response(
        text="".join(out.text),
        tool_calls=out.tool_calls,
        finish_reason=finish,
        raw_finish_reason=raw,
        usage=usage_from(data.get("usage")),
        provider=dep.provider,
        model=str(data.get("model") or dep.model),
        alias=dep.alias,
        id=rid if isinstance(rid, str) else None,
        request_id=answer_request_id(headers, dep) if headers else None,
        reasoning="\n\n".join(out.reasoning) if out.reasoning else "",
        reasoning_parts=out.reasoning_parts,
    )
