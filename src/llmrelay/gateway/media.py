"""Which image and file URLs a caller may name (``[server] media_urls``).

An ``image_url`` (Chat Completions), an ``input_image`` (Responses) or an Anthropic ``image`` /
``document`` with a ``url`` source is forwarded to the upstream, which fetches it. Behind a
self-hosted upstream (vLLM, Ollama, an internal OpenAI-compatible server) that fetch runs inside
the operator's network: a caller naming ``http://10.0.0.5/admin`` or the cloud metadata address
would make the upstream fetch it for them. The policy is enforced while the request is read,
before anything is sent:

- ``"https"`` (the default): ``data:`` URLs, and ``https://`` URLs whose host is a DNS name with
  at least one dot that is not ``localhost``, ``*.localhost``, ``*.local``, ``*.internal`` or
  ``*.home.arpa``, or a literal IP address that is globally routable. Refused: any other
  scheme (``http:``, ``file:``, ``gs:``, ...), user info (``user@host``), literal private,
  loopback, link-local, shared or reserved addresses in any spelling the common URL parsers
  accept (``127.1``, ``0x7f.0.0.1``, ``2130706433``, ``[::ffff:127.0.0.1]``; IPv4-compatible,
  SIIT and local-use NAT64 IPv6 ranges), IP literals with a leading zero (octal to some
  parsers, decimal to others), and hosts with
  characters a URL parser could read differently (``%``, ``\\``, non-ASCII). A DNS name that
  resolves to a private address is not caught here: the upstream resolves it (use ``"none"``,
  or an egress proxy for the upstream, where that matters).
- ``"none"``: ``data:`` URLs only (base64 sources on the Anthropic wire).
- ``"any"``: every URL is forwarded as it came (the upstream is a provider's public API that
  fetches from the internet, or the operator trusts every caller).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..errors import InvalidRequestError

__all__ = ["MEDIA_POLICIES", "check_media_url", "with_media"]

_T = TypeVar("_T")

MEDIA_POLICIES = ("https", "none", "any")

#: A host name the check reads the same way every URL parser does: ASCII letters, digits and
#: hyphens in dot-separated labels (an optional trailing dot).
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{1,63}\.?")
#: Labels an IPv4 address may be spelled with (``inet_aton``: decimal, octal, hex, 1-4 parts).
_NUMERIC = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?")
#: Characters URL parsers strip, skip or read as a separator differently (WHATWG drops tabs
#: and newlines and reads ``\`` as ``/``; others do not).
_ODD = re.compile(r"[\x00-\x20\x7f\\]")
#: NAT64's well-known prefix: the last 32 bits are an IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: IPv6 ranges refused whatever ``is_global`` says (its table changed across Python patch
#: releases: 3.11.7 calls all of these global): IPv4-compatible (``::a.b.c.d``) and SIIT
#: (``::ffff:0:a.b.c.d``) addresses, which a translator maps to any IPv4 address, local-use
#: NAT64 (RFC 8215: translated into the site's own IPv4 network), documentation, SRv6.
_NOT_GLOBAL6 = tuple(
    ipaddress.IPv6Network(n)
    for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "3fff::/20", "5f00::/16")
)
#: Names that never leave the upstream's own network.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")


def _public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not _public_ip(embedded):
            return False
        if any(ip in net for net in _NOT_GLOBAL6):
            return False
    return ip.is_global and not ip.is_multicast


def _host_refusal(host: str) -> str | None:
    """Why an https URL's host (as written, lower-cased) is refused, or None."""
    if len(host) - host.endswith(".") > 253:  # checked first: megabytes of labels cost seconds
        return "its host is longer than a DNS name can be"
    if host.startswith("["):
        if "%" in host:  # WHATWG refuses zone ids; other parsers hand them to the socket
            return "its host carries an IPv6 zone id"
        try:
            ip6 = ipaddress.IPv6Address(host[1:-1] if host.endswith("]") else "")
        except ValueError:
            return "its host is not a valid IPv6 address"
        return None if _public_ip(ip6) else "its host is a private or local address"
    if _NUMERIC.fullmatch(host):
        if any(len(x) > 1 and x[0] == "0" and x[1] != "x" for x in host.rstrip(".").split(".")):
            # inet_aton (glibc, curl, browsers) reads 010 as octal 8; other parsers (older Go,
            # Java, Python) as decimal 10: refused, whichever reading is public.
            return "its host is an IP address with a leading zero, which parsers read differently"
        try:
            ip4 = ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return "its host is not a valid IP address"
        return None if _public_ip(ip4) else "its host is a private or local address"
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(_LOCAL_SUFFIXES):
        return "its host is a local name"
    if not _HOST.fullmatch(host):
        return "its host is not a dotted DNS name of letters, digits and hyphens"
    if _NUMERIC.fullmatch(name.rpartition(".")[2]):
        return "its host ends in a number but is not an IP address"
    return None


def _refusal(url: str, policy: str) -> str | None:
    """Why ``url`` is refused under ``policy``, or None."""
    if url[:5].lower() == "data:":
        return None
    if policy == "none":
        return "this gateway accepts media only as data: URLs (base64)"
    if url[:8].lower() != "https://":
        return "this gateway accepts only https:// and data: URLs for media"
    if not url.isascii() or _ODD.search(url):
        return "the URL holds characters URL parsers read differently"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a malformed port raises)
    except ValueError:
        return "the URL is malformed"
    netloc = parts.netloc.lower()
    if "@" in netloc:
        return "the URL carries user info (user@host)"
    host, colon, port = netloc.rpartition(":")
    if not (colon and port.isdigit()):
        host = netloc
    if not host:
        return "the URL has no host"
    why = _host_refusal(host)
    return None if why is None else why + " (only public https URLs are forwarded)"


def check_media_url(url: str, policy: str, where: str) -> None:
    """Refuse (400, naming the field ``where`` in the message and as ``param``) a media URL
    ``policy`` does not allow. The URL itself is never echoed."""
    if policy == "any":
        return
    why = _refusal(url, policy)
    if why is None:
        return
    raise InvalidRequestError(
        f"{where}: {why}. Send the file inline as a data: URL (base64), or ask the gateway's "
        'operator to allow more ([server] media_urls = "https" or "any")',
        body={"param": where},
    )


def with_media(parse: Callable[..., _T], policy: str) -> Callable[[Any], _T]:
    """A wire's ``parse(body, *, media=...)`` with ``policy`` (``parse`` itself for the default
    ``"https"``: no extra call on the hot path)."""
    return parse if policy == "https" else functools.partial(parse, media=policy)
