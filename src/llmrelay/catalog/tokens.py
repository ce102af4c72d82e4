"""Token counting, offline.

**Exact counts** for OpenAI's encodings -- ``o200k_base`` (gpt-4o, gpt-4.1, gpt-4.5, gpt-5, the
o-series, gpt-oss) and ``cl100k_base`` (gpt-4, gpt-3.5-turbo) -- come from the ``bpe-openai``
package (the ``tokens`` extra: ``pip install llmrelay[tokens]``). It ships its BPE tables inside
its compiled extension and never touches the network (``tiktoken`` downloads its tables at run
time). Its counts are identical to ``tiktoken``'s. When it is not installed, counting falls back
to the estimate below and logs a warning once.

**The estimate** (:func:`estimate_tokens`), used for providers without a public tokenizer
(Anthropic, Gemini, Mistral, Llama/Qwen/DeepSeek hosts, ...): about four UTF-8 bytes per token
for prose (OpenAI's rule of thumb), never fewer than the number of words and punctuation marks.
It is an estimate: code and non-Latin scripts usually take more tokens than it says.

**Chat overhead** (:func:`count_message_tokens`), OpenAI's documented format: 3 tokens per
message (``<|start|>{role}\\n{content}<|end|>\\n``), +1 when the message has a ``name``, +3 for the
reply's priming (``<|start|>assistant<|message|>``), and the tool definitions counted the way
OpenAI's cookbook does. For other providers the same structure is applied to the estimate, so
their message counts are estimates too. Images count a fixed number of tokens each (see
``IMAGE_TOKENS``): the real number depends on the image's size, which is not decoded here.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import InvalidRequestError

if TYPE_CHECKING:
    from ..types import Message, MessagesInput, Tool

__all__ = [
    "IMAGE_TOKENS",
    "count_message_tokens",
    "count_tokens",
    "encoding_for_model",
    "estimate_tokens",
    "is_exact",
]

log = logging.getLogger("llmrelay.tokens")
log.addHandler(logging.NullHandler())  # the application decides where warnings go

Encoding = Literal["o200k_base", "cl100k_base"]
ChatFormat = Literal["openai", "anthropic", "gemini"]

_WORDS = re.compile(r"\w+|[^\w\s]")

#: Tokens counted for one image, by chat format. OpenAI: 85 for ``detail="low"``, otherwise
#: 765 (a 1024x1024 image at high detail: 85 + 4 tiles x 170). Anthropic: 1,600 (about its
#: per-image maximum, (width x height) / 750 at the default size limit). Gemini: 258 (one tile).
IMAGE_TOKENS: Mapping[str, int] = {
    "openai": 765,
    "openai_low": 85,
    "anthropic": 1600,
    "gemini": 258,
}


def estimate_tokens(text: str) -> int:
    """An estimate of the token count of ``text`` for models without a public tokenizer."""
    if not text:
        return 0
    by_bytes = (len(text.encode("utf-8", "surrogatepass")) + 3) // 4  # lone ones: 3 bytes
    if by_bytes > 4096:
        return by_bytes  # long text: the byte estimate is accurate enough and O(n) cheap
    return max(by_bytes, len(_WORDS.findall(text)))


# --------------------------------------------------------------------------- encodings

#: Model-name patterns (after any ``provider/`` prefix) and their encoding, first match wins.
_ENCODING_PATTERNS: tuple[tuple[re.Pattern[str], Encoding], ...] = (
    (re.compile(r"^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-6|gpt-oss|o\d)"), "o200k_base"),
    (re.compile(r"^(openai/)?gpt-oss"), "o200k_base"),
    (re.compile(r"^(gpt-4|gpt-3\.5|gpt-35)"), "cl100k_base"),
)
_OPENAI_HOSTS = frozenset({"openai", "azure"})
_ANTHROPIC_HINTS = ("claude",)
_GEMINI_HINTS = ("gemini", "gemma", "learnlm")


def _bare(model: str) -> tuple[str, str]:
    """``("provider", "model")`` from ``provider/model``; provider "" when not given."""
    provider, sep, rest = model.partition("/")
    if sep and provider.isidentifier():
        return provider, rest
    return "", model


def encoding_for_model(model: str | None) -> Encoding | None:
    """The BPE encoding of an OpenAI model (``"gpt-4o"``, ``"openai/gpt-5-mini"``,
    ``"groq/openai/gpt-oss-120b"``), or None when the model has no public tokenizer."""
    if not model:
        return None
    _, name = _bare(model.strip().lower())
    for pattern, enc in _ENCODING_PATTERNS:
        if pattern.match(name):
            return enc
    return None


def _chat_format(model: str | None) -> ChatFormat:
    if not model:
        return "openai"
    provider, name = _bare(model.lower())
    if provider == "anthropic" or name.startswith(_ANTHROPIC_HINTS):
        return "anthropic"
    if provider == "gemini" or name.startswith(_GEMINI_HINTS):
        return "gemini"
    return "openai"


class _Counter(Protocol):
    def count(self, text: str) -> int: ...


class _PublicEncoding:
    """Adapts ``bpe_openai.get_encoding(...)`` (the public API) to ``count``."""

    __slots__ = ("_enc",)

    def __init__(self, enc: Any) -> None:
        self._enc = enc

    def count(self, text: str) -> int:
        return len(self._enc.encode_ordinary(text))


def _load_bindings() -> Any | None:
    """bpe-openai's compiled tokenizer module, loaded without running the package's
    ``__init__`` (which decodes every BPE table into Python dicts: ~1.5 s). None if absent."""
    name = "bpe_openai._bindings"
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    try:
        spec = importlib.util.find_spec("bpe_openai")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_bindings" + suffix)
            if not os.path.isfile(path):
                continue
            loader = importlib.machinery.ExtensionFileLoader(name, path)
            ext_spec = importlib.util.spec_from_file_location(name, path, loader=loader)
            if ext_spec is None:
                continue
            mod = importlib.util.module_from_spec(ext_spec)
            loader.exec_module(mod)
            # Registered so a later ``import bpe_openai`` reuses it (PyO3 modules load once).
            sys.modules[name] = mod
            return mod
    return None


def _public_encoding(name: str) -> _Counter | None:
    with warnings.catch_warnings():
        # bpe-openai 0.1.x reads its tables with a deprecated importlib.resources call.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import bpe_openai
        except ImportError:
            return None
        return _PublicEncoding(bpe_openai.get_encoding(name))


class _Backend:
    """Tokenizers by encoding name, built once per process (o200k_base takes ~0.15 s)."""

    def __init__(
        self,
        bindings: Callable[[], Any | None] = _load_bindings,
        public: Callable[[str], _Counter | None] = _public_encoding,
    ) -> None:
        self._bindings = bindings
        self._public = public
        self._lock = threading.Lock()
        self._tokenizers: dict[str, _Counter | None] = {}
        self._warned = False

    def tokenizer(self, encoding: str) -> _Counter | None:
        try:
            return self._tokenizers[encoding]
        except KeyError:
            pass
        with self._lock:
            if encoding in self._tokenizers:
                return self._tokenizers[encoding]
            tok: _Counter | None = None
            try:
                b = self._bindings()
                tok = b.tokenizer_for_encoding(encoding) if b is not None else None
            except Exception:  # an incompatible bpe-openai build: try its public API
                tok = None
            if tok is None:
                try:
                    tok = self._public(encoding)
                except Exception:
                    tok = None
            if tok is None and not self._warned:
                self._warned = True
                log.warning(
                    "bpe-openai is not installed: token counts for OpenAI models are estimates "
                    "(about 4 bytes per token). Install exact counting with "
                    "`pip install llmrelay[tokens]`"
                )
            self._tokenizers[encoding] = tok
            return tok


_backend = _Backend()


def _count_exact(tok: _Counter, text: str) -> int:
    try:
        return tok.count(text)
    except UnicodeEncodeError:  # lone surrogates: count them as U+FFFD, as the API would see
        return tok.count(text.encode("utf-8", "replace").decode("utf-8"))


def _text_counter(model: str | None, encoding: str | None) -> Callable[[str], int]:
    enc = encoding or encoding_for_model(model)
    if enc is None:
        return estimate_tokens
    tok = _backend.tokenizer(enc)
    if tok is None:
        return estimate_tokens

    def exact(text: str) -> int:
        return _count_exact(tok, text) if text else 0

    return exact


def is_exact(model: str | None, *, encoding: str | None = None) -> bool:
    """True when counts for ``model`` are exact (an OpenAI encoding and bpe-openai present)."""
    enc = encoding or encoding_for_model(model)
    return enc is not None and _backend.tokenizer(enc) is not None


def count_tokens(text: str, model: str | None = None, *, encoding: str | None = None) -> int:
    """Tokens in ``text`` for ``model`` (``"gpt-4o"``, ``"openai/gpt-5"``, ``"claude-..."``).

    Exact for OpenAI encodings (or pass ``encoding="o200k_base"`` / ``"cl100k_base"``); the
    documented estimate otherwise. Special-token text such as ``<|endoftext|>`` counts as
    ordinary text, as the chat APIs treat it.
    """
    if not isinstance(text, str):
        raise InvalidRequestError(f"count_tokens needs a string, not {type(text).__name__}")
    _check_model_encoding(model, encoding)
    try:
        return _text_counter(model, encoding)(text)
    except UnicodeEncodeError:
        raise _surrogates("the text") from None


def _surrogates(where: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{where} holds lone surrogates (not valid Unicode): it cannot be counted or sent"
    )


def _check_model_encoding(model: object, encoding: object) -> None:
    if model is not None and not isinstance(model, str):
        raise InvalidRequestError(
            f"model must be a model name such as 'gpt-4o' or None, not {type(model).__name__}"
        )
    if encoding is not None and (
        not isinstance(encoding, str) or encoding not in ("o200k_base", "cl100k_base")
    ):
        shown = repr(encoding)[:80] if isinstance(encoding, str) else type(encoding).__name__
        raise InvalidRequestError(f"unknown encoding {shown}; use 'o200k_base' or 'cl100k_base'")


# --------------------------------------------------------------------------- chat messages

#: OpenAI's chat format (the cookbook's ``num_tokens_from_messages``).
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3


def _tool_tokens(tools: Sequence[Tool], count: Callable[[str], int], enc: str | None) -> int:
    """Tokens of the tool definitions, as OpenAI's cookbook counts them (exact for gpt-4o and
    gpt-4 era models on the documented example; an estimate for richer schemas)."""
    if not tools:
        return 0
    func_init = 7 if enc == "o200k_base" else 10
    prop_init, prop_key, enum_init, enum_item, func_end = 3, 3, -3, 3, 12
    n = 0
    for t in tools:
        n += func_init
        desc = (t.description or "").removesuffix(".")
        n += count(f"{t.name}:{desc}")
        props = t.parameters.get("properties") if isinstance(t.parameters, Mapping) else None
        if isinstance(props, Mapping) and props:
            n += prop_init
            for key, spec in props.items():
                n += prop_key
                spec = spec if isinstance(spec, Mapping) else {}
                enum = spec.get("enum")
                if isinstance(enum, list):
                    n += enum_init
                    for item in enum:
                        n += enum_item + count(str(item))
                p_desc = str(spec.get("description", "")).removesuffix(".")
                n += count(f"{key}:{spec.get('type', '')}:{p_desc}")
    return n + func_end


def _content_tokens(m: Message, count: Callable[[str], int], fmt: ChatFormat) -> int:
    from ..types import ImagePart, ReasoningPart, TextPart

    c = m.content
    n = 0
    if isinstance(c, str):
        n += count(c)
    elif c is not None:
        for part in c:
            if isinstance(part, ImagePart):
                key = "openai_low" if fmt == "openai" and part.detail == "low" else fmt
                n += IMAGE_TOKENS[key]
            elif isinstance(part, TextPart | ReasoningPart):
                n += count(part.text)
    for tc in m.tool_calls or ():
        n += count(tc.name) + count(tc.arguments) + _PER_MESSAGE
    if m.tool_call_id:
        n += count(m.tool_call_id)
    return n


def count_message_tokens(
    messages: MessagesInput,
    model: str | None = None,
    *,
    tools: Iterable[Tool | Mapping[str, Any]] | None = None,
    encoding: str | None = None,
) -> int:
    """Prompt tokens of a chat request: messages (plus tool definitions) in ``model``'s format.

    Exact for OpenAI models on text, names and the documented tool format (it reproduces the
    prompt_tokens the API reports for the cookbook's examples); the estimate for other
    providers. Accepts anything ``llmrelay.chat`` accepts (a string, dicts, ``Message``).
    """
    from ..types import Tool as ToolType
    from ..types import normalize_messages

    _check_model_encoding(model, encoding)
    if tools is not None and (isinstance(tools, str | bytes) or not isinstance(tools, Iterable)):
        raise InvalidRequestError(f"tools must be a list of tools, not {type(tools).__name__}")
    msgs = normalize_messages(messages)
    count = _text_counter(model, encoding)
    fmt = _chat_format(model)
    n = _REPLY_PRIMING
    for i, m in enumerate(msgs):
        try:
            n += _PER_MESSAGE + count(m.role) + _content_tokens(m, count, fmt)
            if m.name:
                n += count(m.name) + _PER_NAME
        except UnicodeEncodeError:
            raise _surrogates(f"message {i} ({m.role})") from None
    if tools:
        enc = encoding or encoding_for_model(model)
        try:
            n += _tool_tokens([ToolType.coerce(t) for t in tools], count, enc)
        except UnicodeEncodeError:
            raise _surrogates("tool definitions") from None
    return n
