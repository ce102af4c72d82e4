"""OpenAI Chat Completions: the request-side differences between OpenAI and compatible vendors.

One adapter (``openai_chat``) serves every OpenAI-compatible vendor, but they do not all take
the same messages and parameters. :data:`VENDORS` says, per provider row, what each documents:

* the ``developer`` role (OpenAI, Azure OpenAI); elsewhere a developer message goes as
  ``system``;
* documents as ``file`` content parts (OpenAI: base64 PDF only; OpenRouter: PDFs as data or
  URLs), audio as ``input_audio`` (OpenAI, Azure, OpenRouter); other vendors refuse them with
  ``UnsupportedCapabilityError`` before anything is sent;
* ``cache_control`` on content parts (OpenRouter passes Anthropic-style breakpoints on; the
  others cache automatically and the marker is left out);
* how ``reasoning_effort`` is spelled (``reasoning_effort``; OpenRouter ``reasoning.effort``;
  DeepSeek turns thinking off with ``thinking: {"type": "disabled"}``); where a vendor documents
  no such parameter it is dropped and reported in ``Response.adjusted_params``;
* thought signatures: Gemini's OpenAI-compatible endpoint (the ``gemini_openai`` provider, or
  any provider pointed at ``generativelanguage.googleapis.com``) gets each tool call's
  ``ToolCall.signature`` back as ``extra_content.google.thought_signature``, where it came
  from; other vendors never see it.

Reasoning parts of earlier assistant turns belong to other wire APIs and are never sent here;
``Message.is_error`` has no OpenAI field (the text says it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ...errors import UnsupportedCapabilityError, shown
from ...types import AudioPart, DocumentPart, ImagePart, Message, TextPart, ToolCall
from ..table import Deployment

__all__ = [
    "VENDORS",
    "Vendor",
    "encode_message",
    "map_reasoning_effort",
    "thought_signature",
    "vendor_of",
]

EffortStyle = Literal["", "reasoning_effort", "openrouter", "deepseek", "groq"]


@dataclass(frozen=True, slots=True)
class Vendor:
    """What one OpenAI-compatible provider documents beyond the common Chat Completions body."""

    #: Takes ``role: "developer"`` (else sent as ``system``).
    developer_role: bool = False
    #: ``file`` content parts: "" none, "pdf" base64 PDFs only (OpenAI), "any" (OpenRouter).
    documents: Literal["", "pdf", "any"] = ""
    #: A document may be given by URL (``file.file_data`` holding an https URL).
    document_urls: bool = False
    #: ``input_audio`` content parts.
    audio: bool = False
    #: The ``input_audio`` formats the vendor documents (empty: not checked here).
    audio_formats: frozenset[str] = frozenset()
    #: Keeps ``cache_control`` on content parts.
    cache_control: bool = False
    #: How ``reasoning_effort`` is sent ("" = the vendor documents none: dropped and reported).
    effort: EffortStyle = ""
    #: Takes tool calls' thought signatures back in ``extra_content.google.thought_signature``.
    thought_signatures: bool = False
    #: Takes ``prompt_cache_key`` (else dropped and reported).
    prompt_cache_key: bool = False


_WAV_MP3 = frozenset(("wav", "mp3"))

#: Sources (checked 2026-12-03): OpenAI "File inputs" (Chat Completions takes PDF file parts,
#: base64 or file id; no file URLs), "Audio" (input_audio wav/mp3), reasoning_effort
#: none..high; Azure OpenAI "reasoning models" (developer messages, reasoning_effort) and
#: audio models; OpenAI "Prompt caching" (prompt_cache_key on Chat Completions and Responses;
#: Azure OpenAI takes it too and enforces the same 64-character limit); OpenRouter "PDF
#: Inputs" (file parts, data or URL), "Prompt caching" (cache_control on content parts),
#: "Reasoning Tokens" (reasoning.effort none..xhigh);
#: Groq "Reasoning" (reasoning_effort: none/default on Qwen 3, low/medium/high on GPT-OSS;
#: mapped per model);
#: DeepSeek "Thinking Mode" (reasoning_effort; thinking {type: disabled} turns it off);
#: Google "OpenAI compatibility" (reasoning_effort mapped to thinking levels/budgets by
#: Google; "Audio understanding": input_audio parts in Gemini's formats) and "Thought
#: signatures" (in tool calls' extra_content.google.thought_signature, to be sent back as
#: received: Gemini 3 answers 400 without them).
VENDORS: dict[str, Vendor] = {
    "openai": Vendor(
        developer_role=True,
        documents="pdf",
        audio=True,
        audio_formats=_WAV_MP3,
        effort="reasoning_effort",
        prompt_cache_key=True,
    ),
    "azure": Vendor(
        developer_role=True,
        audio=True,
        audio_formats=_WAV_MP3,
        effort="reasoning_effort",
        prompt_cache_key=True,
    ),
    "openrouter": Vendor(
        documents="any", document_urls=True, audio=True, cache_control=True, effort="openrouter"
    ),
    "groq": Vendor(effort="groq"),
    "deepseek": Vendor(effort="deepseek"),
    "gemini_openai": Vendor(audio=True, effort="reasoning_effort", thought_signatures=True),
}
_GENERIC = Vendor()
#: Where Gemini's OpenAI-compatible endpoint lives, whichever provider row points there.
_GOOGLE = "https://generativelanguage.googleapis.com/"


def vendor_of(dep: Deployment) -> Vendor:
    if dep.base_url.startswith(_GOOGLE):
        return VENDORS["gemini_openai"]
    return VENDORS.get(dep.provider, _GENERIC)


def _display(dep: Deployment) -> str:
    spec = dep.spec
    return (spec.display_name if spec is not None else "") or dep.provider


def _refuse(dep: Deployment, what: str, capability: str, fix: str) -> UnsupportedCapabilityError:
    return UnsupportedCapabilityError(
        f"{_display(dep)} ({dep.label}) does not take {what} in Chat Completions; {fix}",
        provider=dep.provider,
        model=dep.model,
        capability=capability,
    )


def _document(p: DocumentPart, v: Vendor, dep: Deployment) -> dict[str, Any]:
    inline = p.as_base64()
    if not v.documents:
        raise _refuse(
            dep,
            "documents (file parts)",
            "documents",
            "send the document's text as a text part, or use a provider that reads PDFs "
            "(OpenAI, OpenRouter, Anthropic, Gemini)",
        )
    if inline is None and not v.document_urls:
        raise _refuse(
            dep,
            "documents by URL",
            "documents",
            "download the file and pass DocumentPart(data=..., media_type='application/pdf')",
        )
    media = inline[0] if inline is not None else (p.media_type or "")
    if v.documents == "pdf" and media != "application/pdf":
        raise _refuse(
            dep,
            f"{media or 'non-PDF'} documents (only PDF file parts)",
            "documents",
            "send the file's text as a text part",
        )
    f: dict[str, Any] = {
        "filename": p.name or "document.pdf",
        "file_data": f"data:{inline[0]};base64,{inline[1]}" if inline is not None else p.url,
    }
    part: dict[str, Any] = {"type": "file", "file": f}
    if p.cache_control is not None and v.cache_control:
        part["cache_control"] = p.cache_control
    return part


def _parts(parts: list[Any], v: Vendor, dep: Deployment) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, TextPart):
            d: dict[str, Any] = {"type": "text", "text": p.text}
            if p.cache_control is not None and v.cache_control:
                d["cache_control"] = p.cache_control
            out.append(d)
        elif isinstance(p, ImagePart):
            iu: dict[str, Any] = {"url": p.as_url()}
            if p.detail:
                iu["detail"] = p.detail
            out.append({"type": "image_url", "image_url": iu})
        elif isinstance(p, DocumentPart):
            out.append(_document(p, v, dep))
        elif isinstance(p, AudioPart):
            if not v.audio:
                raise _refuse(
                    dep,
                    "audio input (input_audio parts)",
                    "audio",
                    "transcribe it first, or use an audio model (OpenAI gpt-4o-audio, Gemini)",
                )
            fmt = p.format
            if v.audio_formats and fmt not in v.audio_formats:
                takes = " or ".join(sorted(v.audio_formats))
                raise _refuse(
                    dep,
                    f"{shown(fmt)} audio (input_audio takes {takes})",
                    "audio",
                    "convert the audio to WAV or MP3 first",
                )
            out.append(
                {"type": "input_audio", "input_audio": {"data": p.as_base64(), "format": fmt}}
            )
        # ReasoningPart: another wire API's replay data, never sent to Chat Completions.
    return out


def thought_signature(tc: Mapping[str, Any]) -> str | None:
    """The thought signature Gemini's OpenAI-compatible endpoint puts on a tool call (or a
    delta of one): ``extra_content.google.thought_signature``; None elsewhere."""
    extra = tc.get("extra_content")
    google = extra.get("google") if extra.__class__ is dict else None
    sig = google.get("thought_signature") if google.__class__ is dict else None
    return sig if sig.__class__ is str and sig else None


def _tool_call(t: ToolCall, v: Vendor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": t.id,
        "type": "function",
        "function": {"name": t.name, "arguments": t.arguments},
    }
    if t.signature is not None and v.thought_signatures:
        out["extra_content"] = {"google": {"thought_signature": t.signature}}
    return out


def encode_message(m: Message, dep: Deployment) -> dict[str, Any]:
    """One message in Chat Completions form, as ``dep``'s vendor takes it."""
    c = m.content
    role = m.role
    if role == "developer" and not vendor_of(dep).developer_role:
        role = "system"
    out: dict[str, Any] = {"role": role}
    if c is None or c.__class__ is str:
        out["content"] = c
    else:
        assert isinstance(c, list)
        parts = _parts(c, vendor_of(dep), dep)
        if not parts and (c or m.tool_calls):
            # Only another API's reasoning parts: no content array (the spec's minItems is 1);
            # null beside tool calls, else an empty text.
            out["content"] = None if m.tool_calls else ""
        else:
            out["content"] = parts
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        v = vendor_of(dep)
        out["tool_calls"] = [_tool_call(t, v) for t in m.tool_calls]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


_GROQ_EFFORT = {"none": "none", "minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def map_reasoning_effort(
    body: dict[str, Any], effort: str, dep: Deployment, adjusted: dict[str, str]
) -> None:
    """Put ``reasoning_effort`` into ``body`` the vendor's documented way (or report it
    dropped in ``adjusted``)."""
    style = vendor_of(dep).effort
    if style == "reasoning_effort":
        body["reasoning_effort"] = effort
    elif style == "openrouter":
        body["reasoning"] = {"effort": effort}
        adjusted["reasoning_effort"] = "sent as reasoning.effort"
    elif style == "deepseek":
        if effort == "none":
            body["thinking"] = {"type": "disabled"}
            adjusted["reasoning_effort"] = "sent as thinking: {'type': 'disabled'}"
        else:
            body["reasoning_effort"] = effort
    elif style == "groq":
        model = dep.model.lower()
        if "qwen3" in model:
            # Qwen 3 on Groq takes only none (thinking off) or default (on).
            sent = "none" if effort == "none" else "default"
            why = "Groq's Qwen 3 takes only 'none' or 'default'"
        elif "gpt-oss" in model:
            # GPT-OSS always reasons: low, medium or high.
            sent = "low" if effort in ("none", "minimal") else effort
            why = "Groq's GPT-OSS takes only 'low', 'medium' or 'high'"
        else:
            sent = _GROQ_EFFORT[effort]
            why = f"Groq documents no '{effort}'"
        body["reasoning_effort"] = sent
        if sent != effort:
            adjusted["reasoning_effort"] = f"sent as '{sent}': {why}"
    else:
        adjusted["reasoning_effort"] = (
            f"dropped: {_display(dep)} documents no reasoning_effort parameter (pass "
            "extra={'reasoning_effort': ...} to send it anyway)"
        )
