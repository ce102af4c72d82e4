"""Public data types: messages, request parameters, responses, usage and stream chunks.

They are slotted dataclasses: cheap to build on the hot path (a pydantic model costs 3-200 µs
to construct, a slotted dataclass under 1 µs), serialisable with ``to_dict()`` and natively by
orjson, and usable as fields of pydantic models. User input is validated explicitly by
:func:`normalize_messages` and :func:`build_params`, which raise ``InvalidRequestError`` naming
the bad value and the fix.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .errors import InvalidRequestError, InvalidResponseError

__all__ = [
    "ChatRequest",
    "ContentPart",
    "FinishReason",
    "GenerationParams",
    "ImagePart",
    "Message",
    "MessagesInput",
    "Response",
    "Role",
    "StreamChunk",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "build_params",
    "normalize_messages",
]

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]

_ROLES = frozenset(("system", "user", "assistant", "tool"))


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


ContentPart = TextPart | ImagePart


@dataclass(slots=True)
class ToolCall(_Dumpable):
    """A tool call the model asked for. ``arguments`` is the raw JSON text the model wrote."""

    id: str
    name: str
    arguments: str = "{}"

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


@dataclass(slots=True)
class Message(_Dumpable):
    """One chat message. ``content`` is text or a list of text and image parts."""

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.role, str) or self.role not in _ROLES:
            raise InvalidRequestError(
                f"unknown role {_kind(self.role)}; use one of system, user, assistant, tool"
            )
        c = self.content
        if c is not None and c.__class__ is not str:
            self._check_content(c)
        if self.name is not None or self.tool_call_id is not None or self.tool_calls is not None:
            self._check_fields()
        if self.role == "tool" and not self.tool_call_id:
            raise InvalidRequestError("a 'tool' message needs the `tool_call_id` it answers")
        if self.content is None and not self.tool_calls:
            raise InvalidRequestError(f"a {self.role!r} message needs `content`")

    @staticmethod
    def _check_content(c: Any) -> None:
        if isinstance(c, str):
            return
        if not isinstance(c, list) or not all(isinstance(p, TextPart | ImagePart) for p in c):
            raise InvalidRequestError(
                f"a Message's content must be a string or a list of TextPart/ImagePart, not "
                f"{_kind(c)}"
            )
        for p in c:
            if isinstance(p, TextPart) and not isinstance(p.text, str):
                raise InvalidRequestError(
                    f"a text part's text must be a string, not {_kind(p.text)}"
                )

    def _check_fields(self) -> None:
        for name in ("name", "tool_call_id"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise InvalidRequestError(f"a Message's {name} must be a string, not {_kind(v)}")
        tcs = self.tool_calls
        if tcs is not None and (
            not isinstance(tcs, list) or not all(isinstance(t, ToolCall) for t in tcs)
        ):
            raise InvalidRequestError(
                f"a Message's tool_calls must be a list of ToolCall, not {_kind(tcs)}"
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


@dataclass(slots=True)
class Tool(_Dumpable):
    """A function the model may call. ``parameters`` is a JSON schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

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
            unknown = set(value) - {"name", "description", "parameters", "strict", "type"}
            if unknown:
                raise InvalidRequestError(
                    f"tool {name!r} has unknown field(s) {', '.join(sorted(unknown))}"
                )
            return cls(name, value.get("description"), dict(params), value.get("strict"))
        raise InvalidRequestError(f"a tool must be a Tool or a dict, not {type(value).__name__}")


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Usage(_Dumpable):
    """Token usage as the provider reported it.

    ``cached_tokens`` (read from the prompt cache) and ``cache_write_tokens`` are parts of
    ``input_tokens``; ``reasoning_tokens`` is part of ``output_tokens`` -- OpenAI's convention.
    Adapters of providers that report them separately (Anthropic) add them in.

    ``estimated`` is True when the provider reported no usage (a stream without a usage chunk,
    a body without ``usage``) and the engine counted the tokens itself: the prompt from the
    request, the completion from the text received (``llmrelay.count_tokens``).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens

    @property
    def completion_tokens(self) -> int:
        return self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.estimated or other.estimated,
        )


def make_usage(
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> Usage:
    return Usage(input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens)


@dataclass(slots=True)
class Response(_Dumpable):
    """The answer to one logical chat call."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    alias: str | None = None
    id: str | None = None
    request_id: str | None = None
    latency_s: float = 0.0
    time_to_first_token_s: float | None = None
    #: The validated object when ``response_model`` was given.
    object: Any = None
    #: The engine's record of every attempt (``llmrelay.Attempt`` items).
    trace: list[Any] = field(default_factory=list)
    #: Usage summed over every attempt that reached a provider (retries, re-asks, fallbacks).
    total_usage: Usage | None = None
    #: Cost of this call (a ``llmrelay.Cost``), when accounting is on.
    cost: Any = None
    cache_hit: bool = False
    #: Parameters the provider does not support, dropped or translated: ``{name: what happened}``.
    adjusted_params: dict[str, str] = field(default_factory=dict)
    #: The HTTP response headers of the successful attempt (rate-limit headers and the like).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return orjson.loads(self.to_json())  # type: ignore[no-any-return]

    def to_json(self) -> str:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["headers"] = {str(k).lower(): v for k, v in self.headers.items()}
        return orjson.dumps(d, default=_json_default).decode()

    def message(self) -> Message:
        """The assistant message to append to the conversation."""
        return Message("assistant", self.text or None, tool_calls=list(self.tool_calls) or None)


@dataclass(slots=True)
class StreamChunk(_Dumpable):
    """One piece of a streamed answer. The last chunk has ``done=True`` and ``response`` set."""

    delta: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    reasoning: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    done: bool = False
    response: Response | None = None


def chunk(
    delta: str = "",
    *,
    tool_calls: list[ToolCallDelta] | None = None,
    reasoning: str = "",
    finish_reason: FinishReason | None = None,
    usage: Usage | None = None,
    done: bool = False,
    response: Response | None = None,
) -> StreamChunk:
    return StreamChunk(
        delta,
        tool_calls if tool_calls is not None else [],
        reasoning,
        finish_reason,
        usage,
        done,
        response,
    )


# --------------------------------------------------------------------------- parameters

ToolChoice = Literal["auto", "none", "required"] | str


@dataclass(slots=True, frozen=True)
class GenerationParams(_Dumpable):
    """Generation parameters, already validated (build them with :func:`build_params`).

    ``tool_choice`` is ``"auto"``, ``"none"``, ``"required"`` or the name of one tool.
    ``extra`` holds provider-specific body fields, merged into the request as given.
    """

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    tools: tuple[Tool, ...] | None = None
    tool_choice: ToolChoice | None = None
    response_format: Mapping[str, Any] | None = None
    user: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


PARAM_NAMES = frozenset(f.name for f in dataclasses.fields(GenerationParams)) - {"extra"}
#: The parameters of a call that sets none. ``merge_params`` skips its work when either side
#: is this very object, so defaults (``build_params({})``, ``Target.params``) must use it.
NO_PARAMS = GenerationParams()


def _number(name: str, v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidRequestError(f"{name} must be a number between {lo:g} and {hi:g}, not {v!r}")
    f = float(v)
    if math.isnan(f) or not lo <= f <= hi:
        raise InvalidRequestError(
            f"{name}={v!r} is out of range; use a value from {lo:g} to {hi:g}"
        )
    return f


def build_params(values: Mapping[str, Any]) -> GenerationParams:
    """Validate generation parameters (None means "not set"); raise ``InvalidRequestError``."""
    if not values:
        return NO_PARAMS
    unknown = [k for k in values if k not in PARAM_NAMES and k != "extra"]
    if unknown:
        raise InvalidRequestError(
            f"unknown parameter(s) {', '.join(sorted(unknown))}; known parameters are "
            f"{', '.join(sorted(PARAM_NAMES))}. Pass provider-specific fields as extra={{...}}"
        )
    out: dict[str, Any] = {}
    for k, v in values.items():
        if v is None:
            continue
        if k == "temperature":
            out[k] = _number(k, v, 0.0, 2.0)
        elif k == "top_p":
            out[k] = _number(k, v, 0.0, 1.0)
        elif k in ("frequency_penalty", "presence_penalty"):
            out[k] = _number(k, v, -2.0, 2.0)
        elif k == "max_tokens":
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise InvalidRequestError(f"max_tokens must be a positive integer, not {v!r}")
            out[k] = v
        elif k == "seed":
            if isinstance(v, bool) or not isinstance(v, int):
                raise InvalidRequestError(f"seed must be an integer, not {v!r}")
            out[k] = v
        elif k == "stop":
            stops = (v,) if isinstance(v, str) else tuple(v) if isinstance(v, Sequence) else None
            if stops is None or not all(isinstance(s, str) and s for s in stops):
                raise InvalidRequestError(f"stop must be a string or a list of strings, not {v!r}")
            out[k] = stops
        elif k == "tools":
            if not isinstance(v, Sequence) or isinstance(v, str | bytes):
                raise InvalidRequestError("tools must be a list of tools")
            out[k] = tuple(Tool.coerce(t) for t in v)
        elif k == "tool_choice":
            if isinstance(v, Mapping):
                fn = v.get("function")
                name = fn.get("name") if isinstance(fn, Mapping) else v.get("name")
                if not isinstance(name, str):
                    raise InvalidRequestError(
                        "a dict tool_choice must name the tool: {'name': 'my_tool'}"
                    )
                v = name
            if not isinstance(v, str) or not v:
                raise InvalidRequestError(
                    f"tool_choice must be 'auto', 'none', 'required' or a tool name, not {v!r}"
                )
            out[k] = v
        elif k == "response_format":
            if v in ("json", "json_object"):
                v = {"type": "json_object"}
            elif v == "text":
                v = {"type": "text"}
            if not isinstance(v, Mapping) or "type" not in v:
                raise InvalidRequestError(
                    "response_format must be 'json', 'text' or a dict with a 'type' "
                    "(or pass response_model=<pydantic model> for structured output)"
                )
            out[k] = dict(v)
        elif k == "user":
            if not isinstance(v, str):
                raise InvalidRequestError(f"user must be a string, not {v!r}")
            out[k] = v
        elif k == "extra":
            if not isinstance(v, Mapping) or not all(isinstance(key, str) for key in v):
                raise InvalidRequestError(
                    "extra must be a dict of provider-specific fields with string keys"
                )
            out[k] = dict(v)
    tc = out.get("tool_choice")
    if tc is not None and tc not in ("auto", "none", "required"):
        names = {t.name for t in out.get("tools", ())}
        if tc not in names:
            raise InvalidRequestError(
                f"tool_choice names {tc!r}, which is not among the tools given"
                + (f" ({', '.join(sorted(names))})" if names else "")
            )
    return GenerationParams(**out) if out else NO_PARAMS


def merge_params(base: GenerationParams, overrides: GenerationParams) -> GenerationParams:
    """``overrides`` wins wherever it is set; ``extra`` dicts are merged."""
    if base is NO_PARAMS:
        return overrides
    if overrides is NO_PARAMS:
        return base
    changes = {f: getattr(overrides, f) for f in PARAM_NAMES if getattr(overrides, f) is not None}
    if overrides.extra:
        changes["extra"] = {**base.extra, **overrides.extra}
    return dataclasses.replace(base, **changes)


class ChatRequest:
    """A normalised request: messages plus parameters.

    ``adjusted`` records parameters a layer dropped or translated before the adapter saw the
    request (``{name: what happened}``); it ends up in ``Response.adjusted_params``.
    """

    __slots__ = ("adjusted", "messages", "params", "stream")

    def __init__(
        self,
        messages: list[Message],
        params: GenerationParams,
        stream: bool = False,
        adjusted: dict[str, str] | None = None,
    ):
        self.messages = messages
        self.params = params
        self.stream = stream
        self.adjusted = adjusted

    def with_messages(self, messages: list[Message]) -> ChatRequest:
        return ChatRequest(messages, self.params, self.stream, self.adjusted)

    def with_params(self, **changes: Any) -> ChatRequest:
        return ChatRequest(
            self.messages, dataclasses.replace(self.params, **changes), self.stream, self.adjusted
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
                if not _encodes(p.text if isinstance(p, TextPart) else p.url):
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
            out.append(Message(role, content))  # type: ignore[arg-type]  # the common case
            continue
        try:
            out.append(_message_from_mapping(m))
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"messages[{i}]: {exc.message}") from None
    if n == 0:
        raise InvalidRequestError("messages is empty; pass at least one message or a prompt")
    return out


def _part(p: Any) -> ContentPart:
    if isinstance(p, TextPart | ImagePart):
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
        return TextPart(text)
    if t == "image_url":  # OpenAI's shape
        iu = p.get("image_url")
        url = iu.get("url") if isinstance(iu, Mapping) else iu
        detail = iu.get("detail") if isinstance(iu, Mapping) else None
        if not isinstance(url, str):
            raise InvalidRequestError("an image_url part needs image_url.url")
        return ImagePart(url=url, detail=detail)
    if t == "image":
        data = p.get("data")
        if isinstance(data, str):
            try:
                data = base64.b64decode(data, validate=True)
            except ValueError:  # binascii.Error, or non-ASCII text
                raise InvalidRequestError("an image part's `data` is not valid base64") from None
        return ImagePart(
            url=p.get("url"), data=data, media_type=p.get("media_type"), detail=p.get("detail")
        )
    raise InvalidRequestError(f"unknown content part type {_kind(t)}; use 'text' or 'image'")


def _message_from_mapping(m: Mapping[str, Any]) -> Message:
    unknown = set(m) - {"role", "content", "name", "tool_calls", "tool_call_id"}
    if unknown:
        raise InvalidRequestError(
            f"unknown message field(s) {', '.join(sorted(_kind(k) for k in unknown))}"
        )
    role = m.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise InvalidRequestError(f"role {_kind(role)} is not one of system, user, assistant, tool")
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
                calls.append(
                    ToolCall(
                        str(tc.get("id", "")),
                        str(fn.get("name", "")),
                        args,
                    )
                )
            else:
                raise InvalidRequestError("tool_calls must be a list of dicts or ToolCall")
    return Message(role, content, m.get("name"), calls, m.get("tool_call_id"))  # type: ignore[arg-type]
