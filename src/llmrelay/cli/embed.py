"""``llmrelay embed``: embed texts and print the vectors (JSON lines, or a ``.npy`` file).

Every non-empty line of the input (the TEXT argument, or stdin when it is omitted or ``-``) is
one input, embedded in order. ``--format json`` (the default) prints one JSON array of floats
per input line; ``--format npy`` writes one ``(inputs, dimensions)`` float32 array in NumPy's
``.npy`` format (header written here: numpy is not needed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import IO, Any

import orjson

from ..errors import InvalidRequestError, UnknownModelError
from ..types.embeddings import Embeddings

__all__ = ["MODEL_ENV", "add_parser", "npy_bytes", "run"]

#: The environment variable naming the default model of ``llmrelay embed``.
MODEL_ENV = "LLMRELAY_EMBED_MODEL"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "embed",
        help="embed texts with an embedding model and print the vectors",
        description="Embed every non-empty line of TEXT (or of stdin, when TEXT is omitted or "
        "'-') and print one JSON array per line, in input order, or write a float32 .npy "
        "array with --format npy.",
    )
    p.add_argument("text", nargs="?", help="the text ('-' or omitted: read stdin), one per line")
    p.add_argument(
        "-m",
        "--model",
        help=f"an embedding model as provider/model (e.g. openai/text-embedding-3-small); "
        f"default: ${MODEL_ENV}",
    )
    p.add_argument("--dimensions", type=int, metavar="N", help="shorter vectors, if supported")
    p.add_argument("--format", choices=("json", "npy"), default="json", help="output format")
    p.add_argument("-o", "--output", metavar="PATH", help="write here instead of stdout")
    p.add_argument(
        "--input-type",
        choices=("query", "document"),
        help="what the texts are for in retrieval (Voyage input_type, Cohere search_query/"
        "search_document, Gemini RETRIEVAL_QUERY/RETRIEVAL_DOCUMENT; OpenAI ignores it)",
    )
    p.add_argument("--task-type", metavar="TYPE", help="Gemini taskType (e.g. RETRIEVAL_QUERY)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="timeout per request")
    p.add_argument("--retries", type=int, metavar="N", help="retries on a retryable failure")
    p.add_argument("--base-url", metavar="URL", help="send to this base URL instead")


def _texts(arg: str | None) -> list[str]:
    if arg is not None and arg != "-":
        raw = arg
    else:
        if sys.stdin is None:
            raise InvalidRequestError("no text: pass it as an argument or pipe it on stdin")
        raw = sys.stdin.read()
    texts = [line for line in raw.splitlines() if line.strip()]
    if not texts:
        raise InvalidRequestError(
            "nothing to embed: pass text as an argument (llmrelay embed -m MODEL 'hello') or "
            "pipe lines on stdin (one input per line)"
        )
    return texts


def npy_bytes(emb: Embeddings) -> bytes:
    """``emb`` as a NumPy ``.npy`` file (format 1.0, little-endian float32, C order)."""
    header = (
        f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({len(emb)}, {emb.dimensions}), }}"
    )
    pad = 64 - (10 + len(header) + 1) % 64
    header += " " * (pad % 64) + "\n"
    data = emb.data
    if sys.byteorder == "big":  # pragma: no cover
        from array import array

        data = array("f", data)
        data.byteswap()
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(data)


def _unwritable(path: str, exc: OSError) -> InvalidRequestError:
    return InvalidRequestError(
        f"cannot write the output file {path}: {exc.strerror or type(exc).__name__}; pass "
        "-o with a path in a directory you can write to"
    )


def _check_writable(path: str) -> None:
    """Refuse an ``-o`` path that cannot be written, without creating or truncating it."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise _unwritable(path, IsADirectoryError(21, "it is a directory"))
    if not os.path.isdir(folder):
        raise _unwritable(path, FileNotFoundError(2, "its directory does not exist"))
    if not os.access(path if os.path.exists(path) else folder, os.W_OK):
        raise _unwritable(path, PermissionError(13, "permission denied"))


async def _embed(model: str, texts: list[str], kwargs: dict[str, Any]) -> Embeddings:
    from ..client import Client

    client = Client()
    try:
        return await client.aembed(model, texts, **kwargs)
    finally:
        await client.aclose()


def run(args: argparse.Namespace) -> int:
    model = args.model or os.environ.get(MODEL_ENV, "").strip()
    if not model:
        raise UnknownModelError(
            f"no model given: pass -m/--model with an embedding model (e.g. -m "
            f"openai/text-embedding-3-small), or set {MODEL_ENV}"
        )
    texts = _texts(args.text)
    kwargs: dict[str, Any] = {}
    if args.dimensions is not None:
        kwargs["dimensions"] = args.dimensions
    if args.task_type:
        kwargs["task_type"] = args.task_type
    if args.input_type:
        kwargs["input_type"] = args.input_type
    for name in ("timeout", "retries", "base_url"):
        value = getattr(args, name)
        if value is not None:
            kwargs[name] = value
    if args.output:
        _check_writable(args.output)  # before anything is sent (and paid for)
    emb = asyncio.run(_embed(model, texts, kwargs))
    if args.format == "npy":
        data = npy_bytes(emb)
    else:
        data = b"".join(orjson.dumps(v) + b"\n" for v in emb.vectors)
    if args.output:
        try:
            with open(args.output, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise _unwritable(args.output, exc) from None
    else:
        out: IO[bytes] = sys.stdout.buffer
        out.write(data)
        out.flush()
    return 0
