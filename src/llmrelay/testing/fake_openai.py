"""OpenAI Chat Completions, as the fake upstream speaks it (the format of api.openai.com)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .fake_base import FakeRequest, FakeUsage, halves, sse, text_of, tool_arguments

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def _chunk_object(req: FakeRequest, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": req.model,
        "system_fingerprint": "fp_fake",
        "choices": choices,
    }


class OpenAIDialect:
    name = "openai"
    #: Like api.openai.com, a text stream opens with a role chunk whose content is "".
    lead_frames = 1
    auth_error_status = 401

    def parse(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> FakeRequest:
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty array")
        last_user = ""
        texts = []
        for m in messages:
            t = text_of(m.get("content"))
            texts.append(t)
            if m.get("role") == "user":
                last_user = t
        rf = body.get("response_format") or {}
        schema = None
        if rf.get("type") == "json_schema":
            schema = rf["json_schema"]["schema"]
        tools = {
            t["function"]["name"]: t["function"].get("parameters", {"type": "object"})
            for t in body.get("tools") or []
        }
        forced = None
        tc = body.get("tool_choice")
        if isinstance(tc, dict):
            forced = tc.get("function", {}).get("name")
        elif tc == "required" and tools:
            forced = next(iter(tools))
        return FakeRequest(
            model=body["model"],
            last_user_text=last_user,
            prompt_text=" ".join(texts),
            stream=bool(body.get("stream")),
            json_schema=schema,
            json_mode=rf.get("type") == "json_object",
            forced_tool=forced,
            tool_schemas=tools,
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        )

    def check_auth(self, request: web.Request, api_key: str) -> bool:
        auth = request.headers.get("authorization", "")
        return auth == f"Bearer {api_key}" or request.headers.get("api-key") == api_key

    def request_id_header(self) -> str:
        return "x-request-id"

    def _usage(self, u: FakeUsage) -> dict[str, Any]:
        return {
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.total,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": u.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _tool_calls(self, tool: tuple[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "id": "call_fake_0001",
                "type": "function",
                "function": {"name": tool[0], "arguments": tool_arguments(tool)},
            }
        ]

    def body(
        self,
        req: FakeRequest,
        text: str,
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if tool or req.refusal is not None else text,
            "refusal": req.refusal,
            "annotations": [],
        }
        if req.reasoning:
            message[req.reasoning_field] = req.reasoning
        if tool:
            message["tool_calls"] = self._tool_calls(tool)
        return {
            "id": "chatcmpl-fake0001",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": self._usage(usage),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def _chunk(self, req: FakeRequest, delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        obj = _chunk_object(req, [choice])
        if req.include_usage:
            obj["usage"] = None
        return sse(obj)

    def stream_events(
        self,
        req: FakeRequest,
        pieces: list[str],
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> list[bytes]:
        frames = []
        if req.refusal is not None:
            # As api.openai.com streams a refusal: a role chunk with content null and an
            # empty refusal, then the refusal in delta.refusal pieces, then finish "stop".
            frames.append(
                self._chunk(req, {"role": "assistant", "content": None, "refusal": ""}, None)
            )
            for p in re.findall(r"\s*\S+", req.refusal) or [req.refusal]:
                frames.append(self._chunk(req, {"refusal": p}, None))
        elif pieces or req.reasoning:
            frames.append(
                self._chunk(req, {"role": "assistant", "content": "", "refusal": None}, None)
            )
        if req.reasoning:
            for p in re.findall(r"\s*\S+", req.reasoning) or [req.reasoning]:
                frames.append(self._chunk(req, {req.reasoning_field: p}, None))
        for p in pieces:
            frames.append(self._chunk(req, {"content": p}, None))
        if tool:
            # The first tool chunk carries the id, the name and empty arguments (and the role
            # when no text came first); the arguments then arrive in fragments.
            head: dict[str, Any] = {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_fake_0001",
                        "type": "function",
                        "function": {"name": tool[0], "arguments": ""},
                    }
                ]
            }
            if not pieces:
                head = {"role": "assistant", "content": None, **head, "refusal": None}
            frames.append(self._chunk(req, head, None))
            for part in halves(tool_arguments(tool)):
                frames.append(
                    self._chunk(
                        req, {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}, None
                    )
                )
        frames.append(self._chunk(req, {}, finish))
        if req.include_usage:
            frames.append(sse({**_chunk_object(req, []), "usage": self._usage(usage)}))
        frames.append(b"data: [DONE]\n\n")
        return frames

    def error(
        self, status: int, message: str, type_: str | None, code: str | None
    ) -> dict[str, Any]:
        etype = type_ or _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
        return {"error": {"message": message, "type": etype, "param": None, "code": code}}

    def stream_error(self, message: str, type_: str | None) -> bytes:
        err = {
            "error": {
                "message": message,
                "type": type_ or "server_error",
                "param": None,
                "code": None,
            }
        }
        return sse(err)

    def models(self, names: list[str]) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 1700000000, "owned_by": "fake"}
                for n in names
            ],
        }
