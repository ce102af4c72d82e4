"""The ``encrypted_content`` of the reasoning items the gateway writes for ``/v1/responses``,
signed and bound to the caller's tenant.

A reasoning item carries what the model behind needs replayed in the next turn (an Anthropic
thinking signature, a redacted block, an OpenAI reasoning item's id and encrypted content, a
Gemini thought signature). The gateway keeps nothing between calls, so the client holds it:
``llmrelay.v2.<base64url JSON>.<base64url HMAC-SHA256>``. The MAC covers the content and the
caller's tenant -- its key's team, else its key id (``admin`` for the admin key and for open
loopback mode) -- so a blob replayed by another team's key, forged or changed is refused with
a 400 naming the field before anything is sent. The content is signed, not encrypted: the
client that received it can read it, as it can read the answer.

The MAC key is derived from ``LLMRELAY_SIGNING_SECRET``, else from ``LLMRELAY_ADMIN_KEY``
(rotating it ends every conversation's replay), else -- keyless loopback mode -- from a random
secret drawn at start (``server.run`` draws one for all its ``--workers``): blobs then do not
survive a restart. Blobs older gateways wrote (``llmrelay.v1.``, unsigned) are refused with a
message saying so.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ..errors import InvalidRequestError
from ..types import ReasoningPart

__all__ = ["PREFIX", "Sealer", "read_sealed", "tenant_of"]

#: What a reasoning item's ``encrypted_content`` starts with when this gateway wrote it.
PREFIX = "llmrelay.v2."
#: What older gateways wrote: unsigned, and refused.
_UNSIGNED = "llmrelay.v1."
_LABEL = b"llmrelay gateway: reasoning items v2"


def tenant_of(opts: Mapping[str, Any]) -> str:
    """The tenant a blob is bound to, from the call options the gateway built for its caller:
    the key's team, else the key's id; ``admin`` for a caller without a key (the admin key, or
    open loopback mode -- never both on one gateway)."""
    tags = opts.get("tags")
    if not tags:
        return "admin"
    team = tags.get("team")
    return f"team:{team}" if team else f"key:{tags['vkey']}"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _refused(where: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{where}.encrypted_content {why}", body={"param": f"{where}.encrypted_content"}
    )


def read_sealed(enc: str, where: str) -> tuple[ReasoningPart, str] | None:
    """The reasoning part a gateway-written ``encrypted_content`` holds and its signed text
    (for :meth:`Sealer.verify`, which must pass before the part is used), or None when ``enc``
    is not the gateway's. Not checked here: the tenant is known only after the body is read."""
    if enc.startswith(_UNSIGNED):
        raise _refused(
            where,
            "was written by an older llmrelay gateway and carries no signature: start the "
            "conversation again, or leave its reasoning items out",
        )
    if not enc.startswith(PREFIX):
        return None
    body, dot, _ = enc[len(PREFIX) :].partition(".")
    try:
        if not dot:
            raise ValueError
        f = orjson.loads(_unb64(body))
        if not isinstance(f, dict):
            raise ValueError
        part = ReasoningPart(
            text=f.get("t") or "",
            signature=f.get("s"),
            data=f.get("d"),
            id=f.get("i"),
            provider=f.get("p"),
            redacted=f.get("r") is True,
        )
    except (ValueError, binascii.Error, orjson.JSONDecodeError, InvalidRequestError):
        raise _forged(where) from None
    return part, enc


def _forged(where: str) -> InvalidRequestError:
    return _refused(
        where,
        "is not one this gateway wrote for this key's team: replay reasoning items as they "
        "came, with a key of the team they came to (a gateway without LLMRELAY_SIGNING_SECRET "
        "or an admin key signs with a secret of its own process)",
    )


class Sealer:
    """Signs reasoning items for a tenant and checks the ones a client replays."""

    __slots__ = ("_key",)

    def __init__(self, secret: str | None) -> None:
        raw = secret.encode("utf-8", "surrogatepass") if secret else os.urandom(32)
        self._key = hmac.new(raw, _LABEL, hashlib.sha256).digest()

    def _mac(self, tenant: str, body: str) -> str:
        t = tenant.encode("utf-8", "surrogatepass")
        msg = len(t).to_bytes(4, "big") + t + body.encode()
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest())

    def seal(self, p: ReasoningPart, tenant: str) -> str:
        """What the model behind needs of ``p``, signed for ``tenant``."""
        fields: dict[str, Any] = {
            "p": p.provider,
            "t": p.text,
            "s": p.signature,
            "d": p.data,
            "i": p.id,
        }
        if p.redacted:
            fields["r"] = True
        body = _b64(orjson.dumps({k: v for k, v in fields.items() if v not in (None, "")}))
        return f"{PREFIX}{body}.{self._mac(tenant, body)}"

    def bind(self, call: object, opts: Mapping[str, Any]) -> Callable[[ReasoningPart], str]:
        """:meth:`seal` for the caller ``opts`` (the gateway's call options) stands for, once
        the reasoning items ``call`` replays (its ``sealed``) are verified for it."""
        tenant = tenant_of(opts)
        self.verify(getattr(call, "sealed", []), tenant)
        return functools.partial(self.seal, tenant=tenant)

    def verify(self, sealed: list[tuple[str, str]], tenant: str) -> None:
        """Refuse (400 naming the field) any ``(where, encrypted_content)`` not signed for
        ``tenant`` by this gateway's secret."""
        for where, enc in sealed:
            body, _, mac = enc[len(PREFIX) :].partition(".")
            if not hmac.compare_digest(mac.encode(), self._mac(tenant, body).encode()):
                raise _forged(where)
