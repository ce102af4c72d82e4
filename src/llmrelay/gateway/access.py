"""Who is asking: whether a host or an origin is local (keyless mode answers only local
clients), and secrets compared in constant time."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from .wire import HttpError

__all__ = [
    "KEY_STORE_DOWN",
    "NOT_LOCAL",
    "local_client",
    "loopback_host",
    "loopback_origin",
    "metrics_refusal",
    "same_secret",
]

#: What a request that is not a local client's gets without keys.
NOT_LOCAL = HttpError(
    403,
    "not_local",
    "without keys the gateway answers only local clients (Host and Origin must be loopback); "
    "create a key with `llmrelay keys create`",
)

#: What a caller gets while the key store cannot be read (down, or failing its queries).
KEY_STORE_DOWN = HttpError(
    503,
    "key_store_unavailable",
    "the gateway's key store is unavailable, so the API key cannot be checked; try again shortly",
    retry_after=1.0,
)


def loopback_host(hostport: str) -> bool:
    """Is ``host[:port]`` (or a bare IPv6 address) a loopback name or address?"""
    host = hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport
    host = host.removeprefix("[").split("]")[0].lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_origin(request: web.Request) -> bool:
    """Did no web page of another site send this (no ``Origin``, or a loopback one)?"""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site request
    scheme, sep, rest = origin.partition("://")
    return bool(sep) and scheme in ("http", "https") and loopback_host(rest.split("/")[0])


def local_client(request: web.Request) -> bool:
    """Sent by a local client: not by a web page of another site (a browser sends Origin)
    nor a DNS-rebound one (Host names another site)."""
    return loopback_host(request.host) and loopback_origin(request)


def same_secret(a: str, b: str) -> bool:
    """``a == b`` in constant time."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


_METRICS_KEY = HttpError(
    401,
    "admin_key_required",
    "/metrics needs the admin key ('Authorization: Bearer $LLMRELAY_ADMIN_KEY'),"
    " or set [server] metrics_public = true",
)


def metrics_refusal(request: web.Request, admin_key: str | None, public: bool) -> HttpError | None:
    """Why ``/metrics`` is refused to this request, or None. With an admin key it needs that
    key (unless ``public``); without one it is open to local clients only: not to a web page
    (cross-site, DNS-rebound) the developer opens, which would read the keys, teams and models
    it names."""
    if public:
        return None
    if admin_key is None:
        return None if local_client(request) else NOT_LOCAL
    auth = request.headers.get("authorization", "")
    presented = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    return None if same_secret(presented, admin_key) else _METRICS_KEY
