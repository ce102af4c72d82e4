"""Public data types: messages, request parameters, responses, usage and stream chunks.

``llmrelay.types`` is a documented import path; its names live in four modules:

* :mod:`.messages` -- ``Message``, ``TextPart``, ``ImagePart``, ``DocumentPart``,
  ``AudioPart``, ``ReasoningPart``, ``ToolCall``, ``ToolCallDelta``,
  ``Tool`` (the request side);
* :mod:`.response` -- ``Usage``, ``Response``, ``StreamChunk`` (the answer side);
* :mod:`.params` -- ``GenerationParams``, ``build_params``, ``merge_params``;
* :mod:`.request` -- ``ChatRequest``, ``normalize_messages``, ``MessagesInput``.

They are slotted dataclasses: cheap to build on the hot path (a pydantic model costs 3-200 µs
to construct, a slotted dataclass under 1 µs), serialisable with ``to_dict()`` and natively by
orjson, and usable as fields of pydantic models. User input is validated explicitly by
:func:`normalize_messages` and :func:`build_params`, which raise ``InvalidRequestError`` naming
the bad value and the fix.
"""

from __future__ import annotations

from .messages import _ROLES as _ROLES
from .messages import PART_TYPES as PART_TYPES
from .messages import AudioPart as AudioPart
from .messages import ContentPart as ContentPart
from .messages import DocumentPart as DocumentPart
from .messages import ImagePart as ImagePart
from .messages import Message as Message
from .messages import ReasoningPart as ReasoningPart
from .messages import Role as Role
from .messages import TextPart as TextPart
from .messages import Tool as Tool
from .messages import ToolCall as ToolCall
from .messages import ToolCallDelta as ToolCallDelta
from .messages import _Dumpable as _Dumpable
from .messages import _json_default as _json_default
from .messages import _kind as _kind
from .params import MAX_PROMPT_CACHE_KEY as MAX_PROMPT_CACHE_KEY
from .params import NO_PARAMS as NO_PARAMS
from .params import PARAM_NAMES as PARAM_NAMES
from .params import GenerationParams as GenerationParams
from .params import ToolChoice as ToolChoice
from .params import build_params as build_params
from .params import merge_params as merge_params
from .reasoning import ReasoningMap as ReasoningMap
from .request import ChatRequest as ChatRequest
from .request import MessagesInput as MessagesInput
from .request import normalize_messages as normalize_messages
from .request import unencodable_part as unencodable_part
from .response import FinishReason as FinishReason
from .response import Response as Response
from .response import StreamChunk as StreamChunk
from .response import TextRun as TextRun
from .response import Usage as Usage
from .response import chunk as chunk
from .response import make_usage as make_usage
from .response import new_response as new_response
from .response import text_chunk as text_chunk
from .response import text_run as text_run

__all__ = [
    "AudioPart",
    "ChatRequest",
    "ContentPart",
    "DocumentPart",
    "FinishReason",
    "GenerationParams",
    "ImagePart",
    "Message",
    "MessagesInput",
    "ReasoningMap",
    "ReasoningPart",
    "Response",
    "Role",
    "StreamChunk",
    "TextPart",
    "TextRun",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "build_params",
    "normalize_messages",
]
