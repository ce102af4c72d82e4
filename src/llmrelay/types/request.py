"""A normalised request (:class:`ChatRequest`) and the normalisation of user messages.

User input is validated explicitly by :func:`normalize_messages` (and parameters by
``build_params``), which raise ``InvalidRequestError`` naming the bad value and the fix.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..errors import InvalidRequestError
from .messages import (
    _ROLES,
    PART_TYPES,
    AudioPart,
    ContentPart,
    DocumentPart,
    ImagePart,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
    _json_default,
    _kind,
    _new_message,
    plain_message,
)
from .params import PARAM_NAMES, GenerationParams
from .reasoning import ReasoningMap

__all__ = ["ChatRequest", "MessagesInput", "normalize_messages", "unencodable_part"]


class ChatRequest:
    """A normalised request: messages plus parameters.

    ``adjusted`` records parameters a layer dropped or translated before the adapter saw the
    request (``{name: what happened}``); it ends up in ``Response.adjusted_params``.
    ``reasoning`` is how the model takes ``reasoning_effort``, from its catalog row (the catalog
    layer sets it; None: the adapter's family defaults).
    """

    __slots__ = ("adjusted", "messages", "params", "reasoning", "stream")

    def __init__(
        self,
        messages: list[Message],
        params: GenerationParams,
        stream: bool = False,
        adjusted: dict[str, str] | None = None,
        reasoning: ReasoningMap | None = None,
    ):
        self.messages = messages
        self.params = params
        self.stream = stream
        self.adjusted = adjusted
        self.reasoning = reasoning

    def with_messages(self, messages: list[Message]) -> ChatRequest:
        return ChatRequest(messages, self.params, self.stream, self.adjusted, self.reasoning)

    def with_params(self, **changes: Any) -> ChatRequest:
        return ChatRequest(
            self.messages,
            dataclasses.replace(self.params, **changes),
            self.stream,
            self.adjusted,
            self.reasoning,
        )

    def __repr__(self) -> str:
        return f"ChatRequest({len(self.messages)} messages, stream={self.stream})"


def _encodes(value: Any) -> bool:
    try:
        orjson.dumps(value, default=_json_default)
    except TypeError:  # orjson.JSONEncodeError
        return False
    return True


def unencodable_part(req: ChatRequest) -> str:
    """Where a request holds a value JSON cannot carry (a lone surrogate, an object): named for
    the error message. Only called after encoding failed, so its cost is off the happy path."""
    for i, m in enumerate(req.messages):
        where = f"message {i} ({m.role})"
        c = m.content
        if isinstance(c, list):
            for j, p in enumerate(c):
                if not _encodes(p):
                    return f"{where}, part {j}"
        elif not _encodes(c):
            return f"{where}, content"
        for name in ("name", "tool_call_id"):
            if not _encodes(getattr(m, name)):
                return f"{where}, {name}"
        for k, tc in enumerate(m.tool_calls or ()):
            if not _encodes([tc.id, tc.name, tc.arguments]):
                return f"{where}, tool_calls[{k}]"
    params = req.params
    for key, value in params.extra.items():
        if not _encodes({key: value}):
            return f"extra[{key!r}]"
    for name in sorted(PARAM_NAMES):
        if not _encodes(getattr(params, name)):
            return f"the {name} parameter"
    return "a message or parameter"


MessagesInput = str | Message | Mapping[str, Any] | Iterable[Message | Mapping[str, Any]]


def normalize_messages(messages: MessagesInput, system: str | None = None) -> list[Message]:
    """Turn a prompt string, a message, a dict or a list of them into a list of ``Message``.

    Accepts OpenAI-shaped dicts (``image_url`` parts, ``function`` tool calls). Raises
    ``InvalidRequestError`` naming the bad message and what is wrong with it.
    """
    if messages.__class__ is list and not system and messages:
        plain = _plain_messages(messages)
        if plain is not None:
            return plain
    out: list[Message] = []
    if system:
        if not isinstance(system, str):
            raise InvalidRequestError(f"system must be a string, not {_kind(system)}")
        out.append(Message("system", system))
    if isinstance(messages, str):
        if not messages:
            raise InvalidRequestError("the prompt is empty; pass some text")
        out.append(Message("user", messages))
        return out
    items: Iterable[Any]
    if messages.__class__ is list:
        items = messages  # the common case: no ABC checks
    else:
        items = (messages,) if isinstance(messages, Message | Mapping) else messages
        if not isinstance(items, list | tuple) and (
            not isinstance(items, Iterable) or isinstance(items, bytes | bytearray | memoryview)
        ):
            raise InvalidRequestError(
                f"messages must be a prompt string, a Message, a dict or a list of them, not "
                f"{_kind(messages)}"
            )
    n = 0
    for i, m in enumerate(items):
        n += 1
        if m.__class__ is not dict:
            if isinstance(m, Message):
                out.append(m)
                continue
            if not isinstance(m, Mapping):
                raise InvalidRequestError(
                    f"messages[{i}] is a {type(m).__name__}; pass dicts like "
                    "{'role': 'user', 'content': 'hi'} or llmrelay.Message objects"
                )
        role = m.get("role")
        content = m.get("content")
        if (
            role.__class__ is str
            and role in _ROLES
            and isinstance(content, str)
            and len(m) == 2
            and role != "tool"
        ):
            out.append(plain_message(role, content))  # the common case, checked just above
            continue
        try:
            out.append(_message_from_mapping(m))
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"messages[{i}]: {exc.message}") from None
    if n == 0:
        raise InvalidRequestError("messages is empty; pass at least one message or a prompt")
    return out


def _plain_messages(messages: list[Any]) -> list[Message] | None:
    """The messages of the most common call, a list of ``{"role": ..., "content": "text"}``
    dicts (not ``tool``), as ``Message`` objects; None when any item is anything else (then
    ``normalize_messages`` checks every item and names what is wrong)."""
    out: list[Message] = []
    append = out.append
    for m in messages:
        if m.__class__ is not dict or len(m) != 2:
            return None
        role = m.get("role")
        content = m.get("content")
        if role.__class__ is not str or role not in _PLAIN_ROLES or content.__class__ is not str:
            return None
        # ``plain_message(role, content)``, inline (a call per message saved).
        msg: Message = _new_message(Message)
        msg.role, msg.content = role, content  # type: ignore[assignment]
        msg.name = msg.tool_calls = msg.tool_call_id = msg.is_error = None
        append(msg)
    return out


#: The roles of a message that needs nothing but its text.
_PLAIN_ROLES = _ROLES - {"tool"}


def _b64(data: Any, what: str) -> Any:
    if isinstance(data, str):
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise InvalidRequestError(f"{what}'s `data` is not valid base64") from None
    return data


def _cache_control(p: Mapping[str, Any]) -> dict[str, Any] | None:
    cc = p.get("cache_control")
    if cc is None:
        return None
    if not isinstance(cc, Mapping):
        raise InvalidRequestError(
            f"cache_control must be a dict like {{'type': 'ephemeral'}}, not {_kind(cc)}"
        )
    return dict(cc)


def _part(p: Any) -> ContentPart:
    if isinstance(p, PART_TYPES):
        return p
    if isinstance(p, str):
        return TextPart(p)
    if not isinstance(p, Mapping):
        raise InvalidRequestError(
            f"a content part must be a dict or a part, not {type(p).__name__}"
        )
    t = p.get("type")
    if t == "text":
        text = p.get("text")
        if not isinstance(text, str):
            raise InvalidRequestError("a text part needs a string `text`")
        return TextPart(text, cache_control=_cache_control(p))
    if t == "image_url":  # OpenAI's shape
        iu = p.get("image_url")
        url = iu.get("url") if isinstance(iu, Mapping) else iu
        detail = iu.get("detail") if isinstance(iu, Mapping) else None
        if not isinstance(url, str):
            raise InvalidRequestError("an image_url part needs image_url.url")
        return ImagePart(url=url, detail=detail)
    if t == "image":
        return ImagePart(
            url=p.get("url"),
            data=_b64(p.get("data"), "an image part"),
            media_type=p.get("media_type"),
            detail=p.get("detail"),
        )
    if t == "document":
        return DocumentPart(
            url=p.get("url"),
            data=_b64(p.get("data"), "a document part"),
            media_type=p.get("media_type"),
            name=p.get("name"),
            cache_control=_cache_control(p),
        )
    if t == "file":  # OpenAI's shape: {"file": {"file_data": "data:...;base64,...", "filename"}}
        f = p.get("file")
        data_url = f.get("file_data") if isinstance(f, Mapping) else None
        if not isinstance(data_url, str) or not data_url.startswith("data:"):
            raise InvalidRequestError(
                "a file part needs file.file_data as a data: URL "
                "(uploaded file ids are not portable across providers)"
            )
        name = f.get("filename") if isinstance(f, Mapping) else None
        return DocumentPart(url=data_url, name=name)
    if t == "audio":
        return AudioPart(_b64(p.get("data"), "an audio part"), p.get("media_type"))  # type: ignore[arg-type]
    if t == "input_audio":  # OpenAI's shape: {"input_audio": {"data": b64, "format": "wav"}}
        ia = p.get("input_audio")
        fmt = ia.get("format") if isinstance(ia, Mapping) else None
        if not isinstance(fmt, str):
            raise InvalidRequestError("an input_audio part needs input_audio.format, e.g. 'wav'")
        media = "audio/mpeg" if fmt == "mp3" else f"audio/{fmt}"
        return AudioPart(_b64(ia.get("data"), "an input_audio part"), media)  # type: ignore[union-attr]
    if t == "reasoning":
        return ReasoningPart(
            text=p.get("text") or "",
            signature=p.get("signature"),
            data=p.get("data"),
            id=p.get("id"),
            provider=p.get("provider"),
            redacted=bool(p.get("redacted", False)),
            before_call=p.get("before_call"),
        )
    raise InvalidRequestError(
        f"unknown content part type {_kind(t)}; use 'text', 'image', 'document', 'audio' "
        "or 'reasoning'"
    )


def _message_from_mapping(m: Mapping[str, Any]) -> Message:
    unknown = set(m) - {"role", "content", "name", "tool_calls", "tool_call_id", "is_error"}
    if unknown:
        raise InvalidRequestError(
            f"unknown message field(s) {', '.join(sorted(_kind(k) for k in unknown))}"
        )
    role = m.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise InvalidRequestError(
            f"role {_kind(role)} is not one of system, developer, user, assistant, tool"
        )
    content = m.get("content")
    if isinstance(content, list):
        content = [_part(p) for p in content]
    elif content is not None and not isinstance(content, str):
        raise InvalidRequestError(
            f"content must be a string or a list of parts, not {type(content).__name__}"
        )
    calls: list[ToolCall] | None = None
    tcs = m.get("tool_calls")
    if tcs:
        if not isinstance(tcs, list | tuple):
            raise InvalidRequestError("tool_calls must be a list of dicts or ToolCall")
        calls = []
        for tc in tcs:
            if isinstance(tc, ToolCall):
                calls.append(tc)
            elif isinstance(tc, Mapping):
                fn_raw = tc.get("function")
                fn: Mapping[str, Any] = fn_raw if isinstance(fn_raw, Mapping) else tc
                args = fn.get("arguments", "{}")
                if not isinstance(args, str):
                    try:
                        args = orjson.dumps(args).decode()
                    except TypeError:  # orjson.JSONEncodeError: not JSON, or lone surrogates
                        raise InvalidRequestError(
                            "a tool call's arguments must be a JSON string or JSON-serialisable"
                        ) from None
                sig = tc.get("signature")
                if sig is None and "extra_content" in tc:
                    # Gemini's OpenAI-compatible form: extra_content.google.thought_signature
                    extra = tc["extra_content"]
                    google = extra.get("google") if isinstance(extra, Mapping) else None
                    sig = google.get("thought_signature") if isinstance(google, Mapping) else None
                calls.append(
                    ToolCall(
                        str(tc.get("id", "")),
                        str(fn.get("name", "")),
                        args,
                        sig if isinstance(sig, str) else None,
                    )
                )
            else:
                raise InvalidRequestError("tool_calls must be a list of dicts or ToolCall")
    return Message(
        role,  # type: ignore[arg-type]
        content,
        m.get("name"),
        calls,
        m.get("tool_call_id"),
        m.get("is_error"),
    )
