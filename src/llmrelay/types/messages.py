"""Chat messages and their parts, tool calls and tools (the request side of the public types).

They are slotted dataclasses: cheap to build on the hot path (a pydantic model costs 3-200 µs
to construct, a slotted dataclass under 1 µs), serialisable with ``to_dict()`` and natively by
orjson, and usable as fields of pydantic models.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ..errors import InvalidRequestError, InvalidResponseError

__all__ = [
    "AudioPart",
    "ContentPart",
    "DocumentPart",
    "ImagePart",
    "Message",
    "ReasoningPart",
    "Role",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
]

#: ``developer`` is OpenAI's name for instructions from the application (the o-series and
#: later); adapters of providers without it send it as a system instruction.
Role = Literal["system", "developer", "user", "assistant", "tool"]

_ROLES = frozenset(("system", "developer", "user", "assistant", "tool"))


class _Dumpable:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict copy (recursively), e.g. for JSON output."""
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    def to_json(self) -> str:
        return orjson.dumps(self, default=_json_default).decode()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode("ascii")
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _kind(value: Any) -> str:
    """A short, safe description of a bad value for an error message (an arbitrary object's
    repr may be huge or raise, so only plain scalars are shown)."""
    if type(value) in (str, int, float, bool) or value is None:
        return repr(value)[:80]
    return type(value).__name__


# --------------------------------------------------------------------------- messages


@dataclass(slots=True)
class TextPart(_Dumpable):
    """A text part of a message."""

    text: str
    type: Literal["text"] = "text"
    #: Anthropic prompt-cache marker for the end of this block, e.g. ``{"type": "ephemeral"}``
    #: (optionally with ``"ttl": "1h"``); providers that cache automatically ignore it.
    cache_control: dict[str, Any] | None = None


@dataclass(slots=True)
class ImagePart(_Dumpable):
    """An image: a URL (``https://`` or ``data:``) or raw bytes with their media type."""

    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    detail: Literal["auto", "low", "high"] | None = None
    type: Literal["image"] = "image"

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise InvalidRequestError("an image part needs exactly one of `url` or `data`")
        if self.data is not None and not self.media_type:
            raise InvalidRequestError(
                "an image given as `data` needs its `media_type`, e.g. media_type='image/png'"
            )
        if self.url is not None and not isinstance(self.url, str):
            raise InvalidRequestError(f"an image `url` must be a string, not {_kind(self.url)}")
        if self.data is not None and not isinstance(self.data, bytes | bytearray | memoryview):
            raise InvalidRequestError(
                f"an image's `data` must be bytes (or a base64 string in a dict part), not "
                f"{_kind(self.data)}"
            )
        if self.detail not in (None, "auto", "low", "high"):
            raise InvalidRequestError(
                f"an image's detail must be 'auto', 'low', 'high' or None, not {_kind(self.detail)}"
            )
        if self.media_type is not None and not isinstance(self.media_type, str):
            raise InvalidRequestError(f"media_type must be a string, not {_kind(self.media_type)}")

    def as_base64(self) -> tuple[str, str] | None:
        """``(media_type, base64 data)`` for inline images and ``data:`` URLs, else None."""
        if self.data is not None:
            return self.media_type or "application/octet-stream", base64.b64encode(
                self.data
            ).decode("ascii")
        if self.url and self.url.startswith("data:"):
            header, _, payload = self.url.partition(",")
            media = header[5:].split(";", 1)[0] or "application/octet-stream"
            return media, payload
        return None

    def as_url(self) -> str:
        """The image as a URL; inline data becomes a ``data:`` URL."""
        if self.url is not None:
            return self.url
        inline = self.as_base64()
        assert inline is not None
        return f"data:{inline[0]};base64,{inline[1]}"


def _check_inline(kind: str, url: Any, data: Any, media_type: Any) -> None:
    if (url is None) == (data is None):
        raise InvalidRequestError(f"a {kind} part needs exactly one of `url` or `data`")
    if url is not None and not isinstance(url, str):
        raise InvalidRequestError(f"a {kind} `url` must be a string, not {_kind(url)}")
    if data is not None and not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidRequestError(
            f"a {kind}'s `data` must be bytes (or a base64 string in a dict part), not "
            f"{_kind(data)}"
        )
    if media_type is not None and not isinstance(media_type, str):
        raise InvalidRequestError(f"media_type must be a string, not {_kind(media_type)}")


@dataclass(slots=True)
class DocumentPart(_Dumpable):
    """A document (a PDF, or plain text): a URL or raw bytes with their media type, e.g.
    ``DocumentPart(data=pdf_bytes, media_type="application/pdf", name="report.pdf")``. Sent as
    Anthropic ``document`` blocks, Gemini ``inlineData``/``fileData`` and OpenAI ``file`` parts;
    a provider that takes no documents refuses it before anything is sent."""

    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    name: str | None = None
    type: Literal["document"] = "document"
    cache_control: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_inline("document", self.url, self.data, self.media_type)
        if self.data is not None and not self.media_type:
            raise InvalidRequestError(
                "a document given as `data` needs its `media_type`, e.g. "
                "media_type='application/pdf'"
            )
        if self.name is not None and not isinstance(self.name, str):
            raise InvalidRequestError(f"a document's name must be a string, not {_kind(self.name)}")

    def as_base64(self) -> tuple[str, str] | None:
        """``(media_type, base64 data)`` for inline documents and ``data:`` URLs, else None."""
        return _inline_base64(self.url, self.data, self.media_type)


@dataclass(slots=True)
class AudioPart(_Dumpable):
    """Audio input: raw bytes with their media type (``audio/wav``, ``audio/mpeg``, ...). Sent as
    OpenAI ``input_audio`` and Gemini ``inlineData``; a provider that takes no audio refuses it
    before anything is sent."""

    data: bytes
    media_type: str
    type: Literal["audio"] = "audio"

    def __post_init__(self) -> None:
        _check_inline("audio", None, self.data, self.media_type)
        if not self.media_type or not self.media_type.startswith("audio/"):
            raise InvalidRequestError(
                f"an audio part's media_type must be 'audio/...', not {_kind(self.media_type)}"
            )

    @property
    def format(self) -> str:
        """The short format name OpenAI expects (``wav``, ``mp3``, ...)."""
        sub = self.media_type.split("/", 1)[1].split(";", 1)[0]
        return {"mpeg": "mp3", "x-wav": "wav", "wave": "wav"}.get(sub, sub)

    def as_base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


@dataclass(slots=True)
class ReasoningPart(_Dumpable):
    """The model's reasoning in an assistant message: its text (or summary) where the provider
    shows it, and the opaque pieces the provider needs back in the next turn -- an Anthropic
    thinking ``signature``, a ``redacted_thinking`` block's ``data``, an OpenAI Responses
    reasoning item's ``id`` and ``encrypted_content`` (``data``), a Gemini thought
    ``signature``. ``provider`` names the wire API that produced it (``anthropic``, ``gemini``,
    ``openai_responses``): adapters replay only their own parts and leave the others out.
    ``before_call`` is the id of the tool call that came right after this reasoning in the
    answer (None: text or nothing came next): the OpenAI Responses API wants each reasoning
    item back directly before the item that followed it, so an answer that interleaves
    reasoning and calls (reasoning, call, reasoning, call, text) is replayed in its order."""

    text: str = ""
    signature: str | None = None
    data: str | None = None
    id: str | None = None
    provider: str | None = None
    redacted: bool = False
    type: Literal["reasoning"] = "reasoning"
    before_call: str | None = None

    def __post_init__(self) -> None:
        for name in ("signature", "data", "id", "provider", "before_call"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise InvalidRequestError(
                    f"a reasoning part's {name} must be a string, not {_kind(v)}"
                )
        if not isinstance(self.text, str):
            raise InvalidRequestError(
                f"a reasoning part's text must be a string, not {_kind(self.text)}"
            )


def _inline_base64(
    url: str | None, data: bytes | None, media_type: str | None
) -> tuple[str, str] | None:
    if data is not None:
        return media_type or "application/octet-stream", base64.b64encode(data).decode("ascii")
    if url and url.startswith("data:"):
        header, _, payload = url.partition(",")
        return header[5:].split(";", 1)[0] or "application/octet-stream", payload
    return None


ContentPart = TextPart | ImagePart | DocumentPart | AudioPart | ReasoningPart
#: The part classes a Message's content list may hold.
PART_TYPES = (TextPart, ImagePart, DocumentPart, AudioPart, ReasoningPart)


@dataclass(slots=True)
class ToolCall(_Dumpable):
    """A tool call the model asked for. ``arguments`` is the raw JSON text the model wrote."""

    id: str
    name: str
    arguments: str = "{}"
    #: An opaque signature the provider attached to this call and needs back when the call is
    #: replayed (Gemini ``thoughtSignature``); None for providers without one.
    signature: str | None = None

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (raises ``InvalidResponseError`` if malformed)."""
        try:
            return orjson.loads(self.arguments or "{}")
        except orjson.JSONDecodeError as exc:
            raise InvalidResponseError(
                f"tool call {self.name!r} has arguments that are not valid JSON: {exc}"
            ) from exc


@dataclass(slots=True)
class ToolCallDelta(_Dumpable):
    """A piece of a tool call while streaming."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    #: The call's opaque provider signature (a Gemini thought signature), once, on the delta
    #: that brings it (Gemini's own API: the one completing the call): a relay passes it on so
    #: the next turn can send it back.
    signature: str | None = None


@dataclass(slots=True)
class Message(_Dumpable):
    """One chat message. ``content`` is text or a list of text and image parts."""

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    #: On a ``tool`` message: the tool failed and ``content`` says how (Anthropic ``is_error``;
    #: other providers get the text as is).
    is_error: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.role, str) or self.role not in _ROLES:
            raise InvalidRequestError(
                f"unknown role {_kind(self.role)}; use one of system, developer, user, "
                "assistant, tool"
            )
        c = self.content
        if c is not None and c.__class__ is not str:
            self._check_content(c)
        if (
            self.name is not None
            or self.tool_call_id is not None
            or self.tool_calls is not None
            or self.is_error is not None
        ):
            self._check_fields()
        if self.role == "tool" and not self.tool_call_id:
            raise InvalidRequestError("a 'tool' message needs the `tool_call_id` it answers")
        if self.content is None and not self.tool_calls:
            raise InvalidRequestError(f"a {self.role!r} message needs `content`")

    @staticmethod
    def _check_content(c: Any) -> None:
        if isinstance(c, str):
            return
        if not isinstance(c, list) or not all(isinstance(p, PART_TYPES) for p in c):
            raise InvalidRequestError(
                f"a Message's content must be a string or a list of TextPart, ImagePart, "
                f"DocumentPart, AudioPart or ReasoningPart, not {_kind(c)}"
            )
        for p in c:
            if isinstance(p, TextPart) and not isinstance(p.text, str):
                raise InvalidRequestError(
                    f"a text part's text must be a string, not {_kind(p.text)}"
                )
            cc = getattr(p, "cache_control", None)
            if cc is not None and not isinstance(cc, dict):
                raise InvalidRequestError(
                    f"cache_control must be a dict like {{'type': 'ephemeral'}}, not {_kind(cc)}"
                )

    def _check_fields(self) -> None:
        for name in ("name", "tool_call_id"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise InvalidRequestError(f"a Message's {name} must be a string, not {_kind(v)}")
        if self.is_error is not None and not isinstance(self.is_error, bool):
            raise InvalidRequestError(
                f"a Message's is_error must be True, False or None, not {_kind(self.is_error)}"
            )
        tcs = self.tool_calls
        if tcs is not None and (
            not isinstance(tcs, list) or not all(isinstance(t, ToolCall) for t in tcs)
        ):
            raise InvalidRequestError(
                f"a Message's tool_calls must be a list of ToolCall, not {_kind(tcs)}"
            )
        for t in tcs or ():
            for field_name in ("id", "name", "arguments", "signature"):
                v = getattr(t, field_name)
                if not isinstance(v, str) and not (field_name == "signature" and v is None):
                    raise InvalidRequestError(
                        f"a tool call's {field_name} must be a string"
                        + (" (the JSON text of the arguments)" if field_name == "arguments" else "")
                        + f", not {_kind(v)}"
                    )

    @classmethod
    def system(cls, text: str) -> Message:
        return cls("system", text)

    @classmethod
    def user(cls, content: str | list[ContentPart]) -> Message:
        return cls("user", content)

    @classmethod
    def assistant(
        cls, text: str | None = None, tool_calls: list[ToolCall] | None = None
    ) -> Message:
        return cls("assistant", text, tool_calls=tool_calls)

    @classmethod
    def tool(cls, tool_call_id: str, content: str) -> Message:
        return cls("tool", content, tool_call_id=tool_call_id)

    def text(self) -> str:
        """The text of the message (text parts joined); images are left out."""
        c = self.content
        if c is None:
            return ""
        if isinstance(c, str):
            return c
        return "".join(p.text for p in c if isinstance(p, TextPart))


_new_message = object.__new__


def plain_message(role: str, content: str) -> Message:
    """``Message(role, content)`` for a role and text already checked (``role`` in ``_ROLES``
    and not ``tool``, ``content`` a ``str``): the same object, without the checks. Every field
    is set here; ``tests/types`` holds it equal to ``Message(role, content)``."""
    m: Message = _new_message(Message)
    m.role = role  # type: ignore[assignment]
    m.content = content
    m.name = None
    m.tool_calls = None
    m.tool_call_id = None
    m.is_error = None
    return m


@dataclass(slots=True)
class Tool(_Dumpable):
    """A function the model may call. ``parameters`` is a JSON schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    #: Anthropic prompt-cache marker after this tool's definition (see ``TextPart``).
    cache_control: dict[str, Any] | None = None

    @classmethod
    def coerce(cls, value: Any) -> Tool:
        """Accept a Tool, our dict form, or OpenAI's ``{"type": "function", "function": {...}}``."""
        if isinstance(value, Tool):
            return value
        if isinstance(value, Mapping):
            if value.get("type") == "function" and isinstance(value.get("function"), Mapping):
                value = value["function"]
            name = value.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequestError("every tool needs a non-empty string `name`")
            params = value.get("parameters") or {"type": "object", "properties": {}}
            if not isinstance(params, Mapping):
                raise InvalidRequestError(
                    f"tool {name!r}: `parameters` must be a JSON schema object"
                )
            unknown = set(value) - {
                "name",
                "description",
                "parameters",
                "strict",
                "type",
                "cache_control",
            }
            if unknown:
                raise InvalidRequestError(
                    f"tool {name!r} has unknown field(s) {', '.join(sorted(unknown))}"
                )
            cc = value.get("cache_control")
            if cc is not None and not isinstance(cc, Mapping):
                raise InvalidRequestError(f"tool {name!r}: `cache_control` must be a dict")
            desc, strict = value.get("description"), value.get("strict")
            if desc is not None and not isinstance(desc, str):
                raise InvalidRequestError(
                    f"tool {name!r}: `description` must be a string, not {_kind(desc)}"
                )
            if strict is not None and not isinstance(strict, bool):
                raise InvalidRequestError(
                    f"tool {name!r}: `strict` must be true or false, not {_kind(strict)}"
                )
            return cls(name, desc, dict(params), strict, dict(cc) if cc is not None else None)
        raise InvalidRequestError(f"a tool must be a Tool or a dict, not {type(value).__name__}")
