"""OpenAI Responses (``POST /v1/responses``), as the fake upstream speaks it.

The shapes follow recorded api.openai.com traffic (``tests/recordings``: simonw/llm,
pydantic-ai and vercel/ai cassettes): a ``response`` object whose ``output`` holds ``reasoning``,
``message`` (``output_text`` parts) and ``function_call`` items; streams of typed events
(``event: <type>`` + ``data: {"type": <type>, "sequence_number": n, ...}``) that end with
``response.completed`` / ``response.incomplete`` and no ``[DONE]``. A request with a reasoning
effort or ``include: ["reasoning.encrypted_content"]`` gets a reasoning item with opaque
``encrypted_content``, and a summary when ``reasoning.summary`` asks for one.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .fake_base import FakeRequest, FakeUsage, halves, sse, text_of, tool_arguments
from .fake_openai import OpenAIDialect

__all__ = ["ResponsesDialect"]

_RESP_ID = "resp_fake0001"
_MSG_ID = "msg_fake0001"
_RS_ID = "rs_fake0001"
_FC_ID = "fc_fake0001"
_CALL_ID = "call_fake_0001"


_TEXT_PARTS = ("input_text", "output_text", "text")


def _reasoning(body: dict[str, Any]) -> str | None:
    """The request's reasoning: None (no reasoning item), else the summary it asks for."""
    r = body.get("reasoning")
    r = r if isinstance(r, dict) else {}
    wants = r.get("effort") not in (None, "none") or "reasoning.encrypted_content" in (
        body.get("include") or ()
    )
    return str(r.get("summary") or "") if wants else None


def _event(obj: dict[str, Any]) -> bytes:
    return sse(obj, obj["type"])


class ResponsesDialect:
    name = "openai_responses"
    #: created, in_progress, output_item.added (message), content_part.added.
    lead_frames = 4
    auth_error_status = 401

    def __init__(self) -> None:
        self._chat = OpenAIDialect()  # same auth, errors, request ids and model listing

    def parse(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> FakeRequest:
        items = body["input"]
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        if not isinstance(items, list) or not items:
            raise ValueError("'input' must be a string or a non-empty array")
        last_user = ""
        texts = [str(body.get("instructions") or "")]
        for it in items:
            if not isinstance(it, dict):
                raise ValueError("every input item must be an object")
            t = text_of(it.get("content"), _TEXT_PARTS) or str(it.get("output") or "")
            texts.append(t)
            if it.get("role") == "user":
                last_user = t
        fmt = (body.get("text") or {}).get("format") or {}
        tools = {
            t["name"]: t.get("parameters") or {"type": "object"}
            for t in body.get("tools") or []
            if t.get("type") == "function"
        }
        forced = None
        tc = body.get("tool_choice")
        if isinstance(tc, dict):
            forced = tc.get("name")
        elif tc == "required" and tools:
            forced = next(iter(tools))
        return FakeRequest(
            model=body["model"],
            last_user_text=last_user,
            prompt_text=" ".join(texts),
            stream=bool(body.get("stream")),
            json_schema=fmt.get("schema") if fmt.get("type") == "json_schema" else None,
            json_mode=fmt.get("type") == "json_object",
            forced_tool=forced,
            tool_schemas=tools,
            reasoning=_reasoning(body),
        )

    def check_auth(self, request: web.Request, api_key: str) -> bool:
        return self._chat.check_auth(request, api_key)

    def request_id_header(self) -> str:
        return self._chat.request_id_header()

    # ------------------------------------------------------------------ pieces

    def _usage(self, u: FakeUsage) -> dict[str, Any]:
        return {
            "input_tokens": u.input_tokens,
            "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": u.output_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.total,
        }

    def _response(
        self,
        req: FakeRequest,
        status: str,
        output: list[Any],
        usage: dict[str, Any] | None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        return {
            "id": _RESP_ID,
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": reason} if reason else None,
            "instructions": None,
            "max_output_tokens": None,
            "model": req.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": {},
        }

    @staticmethod
    def _status(finish: str) -> tuple[str, str | None]:
        if finish == "length":
            return "incomplete", "max_output_tokens"
        if finish == "content_filter":
            return "incomplete", "content_filter"
        return "completed", None

    @staticmethod
    def _reasoning_item(req: FakeRequest) -> dict[str, Any]:
        secret = base64.urlsafe_b64encode(f"fake reasoning for {req.model}".encode()).decode()
        summary = f"Thinking about: {req.last_user_text}"
        return {
            "id": _RS_ID,
            "type": "reasoning",
            "encrypted_content": "gAAAAAB" + secret,
            "summary": [{"type": "summary_text", "text": summary}] if req.reasoning else [],
        }

    @staticmethod
    def _message(text: str, status: str = "completed") -> dict[str, Any]:
        return {
            "id": _MSG_ID,
            "type": "message",
            "status": status,
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
            "role": "assistant",
        }

    @staticmethod
    def _call(tool: tuple[str, Any], args: str, status: str = "completed") -> dict[str, Any]:
        return {
            "id": _FC_ID,
            "type": "function_call",
            "status": status,
            "arguments": args,
            "call_id": _CALL_ID,
            "name": tool[0],
        }

    def _output(
        self, req: FakeRequest, text: str, tool: tuple[str, Any] | None
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if req.reasoning is not None:
            out.append(self._reasoning_item(req))
        if tool:
            out.append(self._call(tool, tool_arguments(tool)))
        else:
            out.append(self._message(text))
        return out

    # ------------------------------------------------------------------ answers

    def body(
        self,
        req: FakeRequest,
        text: str,
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> dict[str, Any]:
        status, reason = self._status(finish)
        return self._response(
            req, status, self._output(req, text, tool), self._usage(usage), reason
        )

    def stream_events(
        self,
        req: FakeRequest,
        pieces: list[str],
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> list[bytes]:
        seq = 0
        frames: list[bytes] = []

        def emit(obj: dict[str, Any]) -> None:
            nonlocal seq
            frames.append(_event({**obj, "sequence_number": seq}))
            seq += 1

        emit({"type": "response.created", "response": self._response(req, "in_progress", [], None)})
        emit(
            {
                "type": "response.in_progress",
                "response": self._response(req, "in_progress", [], None),
            }
        )
        index = 0
        if req.reasoning is not None:
            item = self._reasoning_item(req)
            emit(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "summary": []},
                }
            )
            for i, part in enumerate(item["summary"]):
                summary = part["text"]
                common = {"item_id": _RS_ID, "output_index": index, "summary_index": i}
                blank = {"type": "summary_text", "text": ""}
                emit({"type": "response.reasoning_summary_part.added", **common, "part": blank})
                emit({"type": "response.reasoning_summary_text.delta", **common, "delta": summary})
                emit({"type": "response.reasoning_summary_text.done", **common, "text": summary})
                emit({"type": "response.reasoning_summary_part.done", **common, "part": part})
            emit({"type": "response.output_item.done", "output_index": index, "item": item})
            index += 1
        text = "".join(pieces)
        if tool:
            args = tool_arguments(tool)
            emit(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": self._call(tool, "", "in_progress"),
                }
            )
            for part_args in halves(args):
                emit(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": _FC_ID,
                        "output_index": index,
                        "delta": part_args,
                    }
                )
            emit(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": _FC_ID,
                    "output_index": index,
                    "arguments": args,
                }
            )
            emit(
                {
                    "type": "response.output_item.done",
                    "output_index": index,
                    "item": self._call(tool, args),
                }
            )
        else:
            common = {"item_id": _MSG_ID, "output_index": index, "content_index": 0}
            empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            emit(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**self._message(""), "status": "in_progress", "content": []},
                }
            )
            emit({"type": "response.content_part.added", **common, "part": empty})
            for p in pieces:
                emit({"type": "response.output_text.delta", **common, "delta": p, "logprobs": []})
            emit({"type": "response.output_text.done", **common, "text": text, "logprobs": []})
            emit({"type": "response.content_part.done", **common, "part": {**empty, "text": text}})
            emit(
                {
                    "type": "response.output_item.done",
                    "output_index": index,
                    "item": self._message(text),
                }
            )
        final = self.body(req, text, tool, usage, finish)
        if not req.include_usage:
            final["usage"] = None
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        emit({"type": kind, "response": final})
        return frames

    def error(
        self, status: int, message: str, type_: str | None, code: str | None
    ) -> dict[str, Any]:
        return self._chat.error(status, message, type_, code)

    def stream_error(self, message: str, type_: str | None) -> bytes:
        # The documented (and SDK) shape is flat; api.openai.com has also been recorded sending
        # {"type": "error", "error": {...}} (tests/recordings): llmrelay reads both.
        code = type_ or "server_error"
        return _event(
            {
                "type": "error",
                "sequence_number": 99,
                "code": code,
                "message": message,
                "param": None,
            }
        )

    def models(self, names: list[str]) -> dict[str, Any]:
        return self._chat.models(names)
