"""The engine call of a gateway request: its options, made once per key, and its arguments.

A request's call options are the caller's (a virtual key's tags and cache tenant, the same for
every request of the key) plus the request's trace id. :class:`KeyOptions` keeps, per key
record, the options dict (what ``Client.astream``/``aembed`` take as keyword arguments) and the
same options as a checked :class:`~llmrelay.core.options.CallOptions`; a request's are a copy
with its trace id (``with_trace_id``), instead of keyword arguments split, checked and built
into a new ``CallOptions`` on every request (``split_kwargs``, whose cache a per-request trace
id always misses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.options import NO_OPTIONS, CallOptions, split_kwargs, with_trace_id
from ..types import GenerationParams, Message, normalize_messages
from .keys import VirtualKey
from .wire import GatewayCall

__all__ = ["KeyOptions", "RequestOptions", "engine_args", "prepared_args"]


class RequestOptions(dict[str, Any]):
    """A request's call options as keyword arguments (``Client.astream(..., **opts)``), with
    ``checked``: its options but the trace id, as a checked ``CallOptions``."""

    __slots__ = ("checked",)

    def __init__(self, kwargs: dict[str, Any], checked: CallOptions) -> None:
        super().__init__(kwargs)
        self.checked = checked


#: The options of a caller without a key (the admin key, open loopback mode): none.
_NONE: tuple[dict[str, Any], CallOptions] = ({}, NO_OPTIONS)


class KeyOptions:
    """The call options of each key's requests (see the module docstring), rebuilt when the
    key's record changes (the key cache hands out a new record then)."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        #: key id -> (its record, the cache scope, the options dict, the same as CallOptions)
        self._held: dict[str, tuple[VirtualKey, str, dict[str, Any], CallOptions]] = {}

    def of(self, key: VirtualKey | None, scope: str) -> tuple[dict[str, Any], CallOptions]:
        """The options of ``key``'s calls without a trace id, as a dict and as options (do
        not change either: they are shared by the key's requests); ``scope``: ``[server]
        cache_scope``, whose answers the response cache shares."""
        if key is None:
            return _NONE
        held = self._held.get(key.id)
        if held is not None and held[0] is key and held[1] == scope:
            return held[2], held[3]
        tags = {"vkey": key.id}
        if key.team:
            tags["team"] = key.team
        opts: dict[str, Any] = {"tags": tags}
        if scope == "team":
            opts["tenant"] = f"team:{key.team}" if key.team else f"key:{key.id}"
        elif scope == "key":
            opts["tenant"] = f"key:{key.id}"
        checked = CallOptions(**opts)
        if len(self._held) >= 100_000:
            self._held.clear()
        self._held[key.id] = (key, scope, opts, checked)
        return opts, checked


def engine_args(
    call: GatewayCall, base: CallOptions, request_id: str
) -> tuple[list[Message], GenerationParams, CallOptions] | None:
    """What ``Client.achat(call.model, call.messages, **call.params, **opts)`` hands the
    engine (``opts``: ``base``'s with ``trace_id=request_id``): the messages, the parameters
    and the options; None when the call's parameters hold a call option (no parser's do: the
    caller then takes the general path)."""
    params, extra = split_kwargs(call.params)
    if extra is not NO_OPTIONS:
        return None
    msgs = call.messages
    if not msgs:
        msgs = normalize_messages(msgs)  # raises as the engine would: no messages
    return msgs, params, with_trace_id(base, request_id)


def prepared_args(
    call: GatewayCall, opts: Mapping[str, Any]
) -> tuple[list[Message], GenerationParams, CallOptions] | None:
    """``engine_args`` when ``opts`` are the options made once per key (``RequestOptions``),
    else None: the client's general path then takes the keyword arguments."""
    if isinstance(opts, RequestOptions):
        return engine_args(call, opts.checked, opts["trace_id"])
    return None
