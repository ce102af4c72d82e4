"""Google Gemini, as the fake upstream speaks it (the format of generativelanguage.googleapis.com).

Requests are checked the way Google checks them: unknown fields, bad roles, empty parts,
non-object function arguments or responses and a key in the wrong place are refused with
Google's error body (``{"error": {"code", "message", "status", "details"}}``), so an adapter that
builds a wrong body fails its tests.

Scripted errors (``Reply.error(status, message, type=..., code=...)``): ``type`` is the
``google.rpc`` status string (default from the HTTP status, e.g. 429 → ``RESOURCE_EXHAUSTED``);
``code`` adds a detail: a quota id (anything containing ``Per``, e.g.
``GenerateRequestsPerDayPerProjectPerModel-FreeTier``) becomes a ``QuotaFailure`` violation,
any other code an ``ErrorInfo`` reason (e.g. ``API_KEY_INVALID``). A 429 always carries a
``RetryInfo`` with ``retryDelay`` ``"30s"``, as Google's do.

Thought parts (``thought: true``) are sent when the request asks for them
(``generationConfig.thinkingConfig.includeThoughts``) and the reply has ``reasoning_tokens``.
A reply with ``finish="content_filter"`` ends with ``finishReason: SAFETY`` and a blocked
``safetyRatings`` entry, as Google's filters do. ``Reply.refuse(text)`` (Gemini has no refusal
field) ends the same way with ``text`` as the candidate's ``finishMessage``;
``refusal_category=`` replaces SAFETY with another finish reason (``PROHIBITED_CONTENT``,
``RECITATION``, ...) and ``refusal_explanation=`` the ``finishMessage``.

Gemini 3 models (a model name starting ``gemini-3``) behave as Google documents for them
(https://ai.google.dev/gemini-api/docs/thought-signatures): a function call comes with an ``id``
and a ``thoughtSignature`` on the first ``functionCall`` part, a text answer with a signature
on its last part; and a request whose current turn (the model turns after the last user text)
replays a function call without the signature the fake issued for it (or Google's
``skip_thought_signature_validator`` stand-in) on the first ``functionCall`` part of each step
is refused with 400, as Gemini 3 refuses it. The fake's signatures are
``base64("fake-thought:<function name or text>")``, so a test can tell which one came back.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from .fake_base import FakeRequest, FakeUsage

__all__ = ["GeminiDialect", "GeminiFakeRequest"]

#: HTTP status → google.rpc.Code name, as Google's JSON errors spell it.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_CODES = frozenset(STATUS_NAMES.values()) | {"FAILED_PRECONDITION", "OUT_OF_RANGE", "UNKNOWN"}
#: Error types other dialects use (``Reply.stream_error`` defaults) → (HTTP code, status).
_TYPE_ALIASES = {
    "overloaded_error": (503, "UNAVAILABLE"),
    "rate_limit_error": (429, "RESOURCE_EXHAUSTED"),
    "invalid_request_error": (400, "INVALID_ARGUMENT"),
    "server_error": (500, "INTERNAL"),
    "api_error": (500, "INTERNAL"),
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_TOP_FIELDS = frozenset(
    {
        "model",
        "contents",
        "tools",
        "toolConfig",
        "safetySettings",
        "systemInstruction",
        "generationConfig",
        "cachedContent",
    }
)
_CONFIG_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "imageConfig",
        "mediaResolution",
    }
)
_PART_FIELDS = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
        "thought",
        "thoughtSignature",
        "videoMetadata",
        "mediaResolution",
        "partMetadata",
    }
)
_DECL_FIELDS = frozenset(
    {
        "name",
        "description",
        "behavior",
        "parameters",
        "parametersJsonSchema",
        "response",
        "responseJsonSchema",
    }
)
_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
_SENTINELS = frozenset({"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"})
_PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")
_SEP = b"\r\n\r\n"


@dataclass(slots=True)
class GeminiFakeRequest(FakeRequest):
    include_thoughts: bool = False
    #: A Gemini 3 model: ids and thought signatures on answers, signatures checked on replay.
    signs: bool = False
    #: The answer's responseId: made from the request's contents, so it differs per turn.
    response_id: str = "fakeGeminiResponse"


def fake_signature(what: str) -> str:
    """The thought signature the fake issues for a function call (its name) or a text part."""
    return base64.b64encode(f"fake-thought:{what}".encode()).decode()


def _check_signatures(contents: list[dict[str, Any]]) -> None:
    """Gemini 3's check: in the current turn, the first ``functionCall`` of every model step
    carries a signature, and a signature the fake issued names that call's function."""
    start = 0
    for i, c in enumerate(contents):
        parts = c.get("parts") or []
        if c.get("role", "user") == "user" and any("text" in p for p in parts):
            start = i + 1
    for i, c in enumerate(contents[start:], start):
        if c.get("role") != "model":
            continue
        calls = [p for p in c["parts"] if "functionCall" in p]
        if not calls:
            continue
        sig = calls[0].get("thoughtSignature")
        name = calls[0]["functionCall"].get("name")
        if not sig:
            raise ValueError(
                f"Function call `{name}` in the {i + 1}. content block is missing a "
                "`thought_signature`."
            )
        if sig in _SENTINELS:
            continue
        if sig != fake_signature(str(name)):
            raise ValueError(f"Thought signature is not valid for function call `{name}`.")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _obj(value: Any, where: str, known: frozenset[str] | None = None) -> dict[str, Any]:
    """A message-typed JSON object with its keys in lowerCamelCase. Google's proto-JSON parser
    takes ``snake_case`` as well (the official SDK sends ``parameters_json_schema``)."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    out = {_camel(k): v for k, v in value.items()}
    if known is not None:
        unknown = set(out) - known
        if unknown:
            raise ValueError(
                f'Invalid JSON payload: unknown name "{sorted(unknown)[0]}" at {where}'
            )
    return out


def _check_parts(parts: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(parts, list) or not parts:
        raise ValueError(f"{where}.parts must be a non-empty array")
    out = []
    for j, raw in enumerate(parts):
        at = f"{where}.parts[{j}]"
        p = _obj(raw, at, _PART_FIELDS)
        if sum(k in p for k in _DATA_FIELDS) != 1:
            raise ValueError(f"{at} must hold exactly one kind of data")
        if "inlineData" in p and not {"mimeType", "data"} <= set(_obj(p["inlineData"], at)):
            raise ValueError(f"{at}.inlineData needs mimeType and data")
        if "fileData" in p and "fileUri" not in _obj(p["fileData"], at):
            raise ValueError(f"{at}.fileData needs fileUri")
        if "functionCall" in p:
            fc = _obj(p["functionCall"], f"{at}.functionCall")
            if not fc.get("name") or not isinstance(fc.get("args", {}), dict):
                raise ValueError(f"{at}.functionCall needs a name and object args")
        if "functionResponse" in p:
            fr = _obj(p["functionResponse"], f"{at}.functionResponse")
            if not fr.get("name") or not isinstance(fr.get("response"), dict):
                raise ValueError(f"{at}.functionResponse needs a name and an object response")
        out.append(p)
    return out


def _texts(parts: list[dict[str, Any]]) -> list[str]:
    return [p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")]


class GeminiDialect:
    name = "gemini"
    lead_frames = 0
    #: Google answers a bad key with 400 INVALID_ARGUMENT, not 401.
    auth_error_status = 400

    def parse(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> FakeRequest:
        m = _PATH.search(path)
        if m is None:
            raise ValueError(
                f"unknown method {path}; use :generateContent or :streamGenerateContent"
            )
        body = _obj(body, "the request", _TOP_FIELDS)
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise ValueError("contents is not specified")
        texts: list[str] = []
        if body.get("systemInstruction") is not None:
            si = _obj(body["systemInstruction"], "system_instruction")
            texts.extend(_texts(_check_parts(si.get("parts"), "system_instruction")))
        last_user = ""
        checked: list[dict[str, Any]] = []
        for i, raw in enumerate(contents):
            c = _obj(raw, f"contents[{i}]", frozenset({"role", "parts"}))
            role = c.get("role", "user")
            if role not in ("user", "model"):
                raise ValueError(f"contents[{i}].role must be 'user' or 'model', not {role!r}")
            parts = _check_parts(c.get("parts"), f"contents[{i}]")
            checked.append({"role": role, "parts": parts})
            t = _texts(parts)
            texts.extend(t)
            if role == "user" and t:
                last_user = " ".join(t)
        signs = m.group(1).startswith("gemini-3")
        if signs:
            _check_signatures(checked)
        gc = _obj(body.get("generationConfig") or {}, "generation_config", _CONFIG_FIELDS)
        schema = gc.get("responseJsonSchema") or gc.get("responseSchema")
        tools: dict[str, dict[str, Any]] = {}
        for n, raw_tool in enumerate(body.get("tools") or []):
            tool = _obj(raw_tool, f"tools[{n}]")
            for raw_fd in tool.get("functionDeclarations") or []:
                fd = _obj(raw_fd, f"tools[{n}].function_declarations", _DECL_FIELDS)
                if "parameters" in fd and "parametersJsonSchema" in fd:
                    raise ValueError("parameters and parametersJsonSchema are mutually exclusive")
                tools[fd["name"]] = (
                    fd.get("parametersJsonSchema") or fd.get("parameters") or {"type": "object"}
                )
        forced = None
        tc = _obj(body.get("toolConfig") or {}, "tool_config")
        fcc = _obj(tc.get("functionCallingConfig") or {}, "function_calling_config")
        if fcc.get("mode") == "ANY" and tools:
            allowed = fcc.get("allowedFunctionNames") or list(tools)
            forced = allowed[0]
        thinking = _obj(gc.get("thinkingConfig") or {}, "thinking_config")
        return GeminiFakeRequest(
            model=m.group(1),
            last_user_text=last_user,
            prompt_text=" ".join(texts),
            stream=m.group(2) == "streamGenerateContent",
            json_schema=schema if isinstance(schema, dict) else None,
            json_mode=gc.get("responseMimeType") == "application/json",
            forced_tool=forced,
            tool_schemas=tools,
            include_thoughts=bool(thinking.get("includeThoughts")),
            signs=signs,
            response_id="fakeGemini" + hashlib.sha256(orjson.dumps(checked)).hexdigest()[:16],
        )

    def check_auth(self, request: web.Request, api_key: str) -> bool:
        return (
            request.headers.get("x-goog-api-key") == api_key or request.query.get("key") == api_key
        )

    def request_id_header(self) -> str:
        return "x-goog-request-id"

    # ------------------------------------------------------------------ answers

    def _usage(self, u: FakeUsage, final: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "promptTokenCount": u.input_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.input_tokens}],
        }
        if not final:
            out["totalTokenCount"] = u.input_tokens
            return out
        # ``output_tokens`` counts reasoning (OpenAI's convention); Gemini reports the answer
        # (candidates) and the thoughts apart.
        r = u.reasoning_tokens
        visible = u.output_tokens - r if u.output_tokens >= r else u.output_tokens
        out["candidatesTokenCount"] = visible
        out["totalTokenCount"] = u.input_tokens + visible + r
        if r:
            out["thoughtsTokenCount"] = r
        if u.cached_tokens:
            out["cachedContentTokenCount"] = u.cached_tokens
            out["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.cached_tokens}]
        return out

    def _thought(self, req: FakeRequest, usage: FakeUsage) -> list[dict[str, Any]]:
        if usage.reasoning_tokens and getattr(req, "include_thoughts", False):
            text = f"**Reading the request**\n\nThe user wrote: {req.last_user_text}"
            return [{"text": text, "thought": True}]
        return []

    def _tool_part(self, req: FakeRequest, tool: tuple[str, Any]) -> dict[str, Any]:
        args = tool[1] if isinstance(tool[1], dict) else {"value": tool[1]}
        fc: dict[str, Any] = {"name": tool[0], "args": args}
        if not getattr(req, "signs", False):
            return {"functionCall": fc}
        digest = hashlib.sha256(orjson.dumps([req.prompt_text, tool[0], args])).hexdigest()
        fc["id"] = f"fc{digest[:8]}"
        return {"functionCall": fc, "thoughtSignature": fake_signature(tool[0])}

    def _response(
        self,
        req: FakeRequest,
        parts: list[dict[str, Any]],
        finish: str | None,
        usage: dict[str, Any],
    ) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish is not None:
            reason = _FINISH.get(finish, finish)
            if finish == "content_filter" or (req.refusal is not None and finish != "tool_calls"):
                # Gemini has no refusal field: a refusal is a filter finish (the scripted
                # category, else SAFETY) with Google's own words in finishMessage.
                reason = req.refusal_category or "SAFETY"
                said = req.refusal_explanation or req.refusal
                if said:
                    cand["finishMessage"] = said
            cand["finishReason"] = reason
            if cand["finishReason"] == "SAFETY":
                cand["safetyRatings"] = [
                    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
                    {
                        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                        "probability": "HIGH",
                        "blocked": True,
                    },
                ]
        return {
            "candidates": [cand],
            "usageMetadata": usage,
            "modelVersion": req.model,
            "responseId": getattr(req, "response_id", "fakeGeminiResponse"),
        }

    def body(
        self,
        req: FakeRequest,
        text: str,
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> dict[str, Any]:
        parts = self._thought(req, usage)
        if text or not tool:
            parts.append({"text": text})
            if getattr(req, "signs", False) and not tool:
                parts[-1]["thoughtSignature"] = fake_signature("text")
        if tool:
            parts.append(self._tool_part(req, tool))
        return self._response(req, parts, finish, self._usage(usage))

    def _frame(self, obj: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(obj) + _SEP

    def stream_events(
        self,
        req: FakeRequest,
        pieces: list[str],
        tool: tuple[str, Any] | None,
        usage: FakeUsage,
        finish: str,
    ) -> list[bytes]:
        """One chunk per piece; the last chunk carries the finish reason and the full usage
        (Google has no separate end event)."""
        groups: list[list[dict[str, Any]]] = [[{"text": p}] for p in pieces]
        if tool:
            groups.append([self._tool_part(req, tool)])
        elif getattr(req, "signs", False):
            # Gemini 3 streams the text's signature in an empty last text part.
            groups.append([{"text": "", "thoughtSignature": fake_signature("text")}])
        if not groups:
            groups.append([{"text": ""}])
        groups[0][:0] = self._thought(req, usage)
        frames = []
        for i, parts in enumerate(groups):
            last = i == len(groups) - 1
            frames.append(
                self._frame(
                    self._response(
                        req, parts, finish if last else None, self._usage(usage, final=last)
                    )
                )
            )
        return frames

    def error(
        self, status: int, message: str, type_: str | None, code: str | None
    ) -> dict[str, Any]:
        gstatus = type_ if type_ in _CODES else None
        if gstatus is None and type_ in _TYPE_ALIASES:
            gstatus = _TYPE_ALIASES[type_][1]
        if gstatus is None:
            gstatus = STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "UNKNOWN")
        details: list[dict[str, Any]] = []
        if code == "invalid_api_key":  # the fake's own key check
            message = "API key not valid. Please pass a valid API key."
            code = "API_KEY_INVALID"
        if code and "Per" in code:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            + (
                                "generate_requests_per_model_per_day"
                                if "PerDay" in code
                                else "generate_content_requests"
                            ),
                            "quotaId": code,
                            "quotaDimensions": {"location": "global", "model": "fake"},
                            "quotaValue": "250",
                        }
                    ],
                }
            )
        elif code:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": code,
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            )
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": message,
                }
            )
        if status == 429:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                }
            )
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}
            )
        err: dict[str, Any] = {"code": status, "message": message, "status": gstatus}
        if details:
            err["details"] = details
        return {"error": err}

    def stream_error(self, message: str, type_: str | None) -> bytes:
        status, gstatus = _TYPE_ALIASES.get(type_ or "", (500, "INTERNAL"))
        if type_ in _CODES:
            gstatus = type_
            status = next((k for k, v in STATUS_NAMES.items() if v == type_), 500)
        return self._frame({"error": {"code": status, "message": message, "status": gstatus}})

    def models(self, names: list[str]) -> dict[str, Any]:
        return {
            "models": [
                {
                    "name": f"models/{n}",
                    "version": "001",
                    "displayName": n.replace("-", " ").title(),
                    "description": f"{n} (fake)",
                    "inputTokenLimit": 1048576,
                    "outputTokenLimit": 65536,
                    "supportedGenerationMethods": [
                        "generateContent",
                        "countTokens",
                        "createCachedContent",
                        "batchGenerateContent",
                    ],
                    "temperature": 1.0,
                    "topP": 0.95,
                    "topK": 64,
                    "maxTemperature": 2.0,
                    "thinking": True,
                }
                for n in names
            ]
        }
