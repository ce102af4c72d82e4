"""What the gateway knows it must never show a caller: its upstreams' addresses and its provider
keys, exactly as configured.

``wire.no_urls`` and ``wire.no_keys`` find addresses and keys by their shape, and some shapes
cannot be told from ordinary text: a one-label host with a port (``vllm:8000`` is written as
``status:400``), a bare IPv6 address (``fd00::1``; a fine-tuned model is named
``ft:gpt-4o-mini:org::abc123``), a host name without a port (``my-vllm.internal``), a key with
no known prefix, masked. The gateway knows the values themselves -- every base URL and key it
is configured with (environment, ``llmrelay.toml``'s ``[providers]`` and ``[models]``) -- so
:class:`KnownValues`, built once when the gateway starts, finds exactly those, and nothing
that merely looks like them:

- a configured host in any case, with or without a port (a one-label host only with a port:
  alone, ``vllm`` or ``ollama`` is also a provider's name);
- a configured IP address in any of its spellings (``fd00::1``, ``FD00:0:0:0:0:0:0:1``, with
  a zone or a port after it, an IPv4 address mapped into IPv6);
- a configured key whole, and masked: its first or last characters (at least
  :data:`SHOWN_MIN` of them) before or after a run of ``*``, ``•``, ``…``, two dots or more, or
  three ``x`` or more (``Zq7mW2...``, ``...hJdR``, ``Zq7mxxxxxxxxhJdR``).

Only error text is searched (``shown``): a successful call never reaches this module. The keys
are kept as plain strings (no pattern holds them) and never shown by a repr.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from ..errors import CREDENTIAL_HEADERS, REDACTED, LLMRelayError
from ..providers.aliases import known_aliases, lookup
from ..providers.table import PROVIDERS

__all__ = ["SHOWN_MIN", "KnownValues", "known_values"]

#: The fewest of a key's own characters a masked form shows (on one side of the mask) to be
#: taken for that key.
SHOWN_MIN = 4
#: Keys shorter than this are not searched masked (4 characters would be most of them), and
#: keys shorter than ``_WHOLE_MIN`` not at all (``EMPTY``, ``none``: what keyless local
#: servers are given, and words).
_MASKED_MIN = 12
_WHOLE_MIN = 8

#: The characters a masked key's run is made of, and how long the run must be at least.
_MASK_RUNS = {"*": 1, "\u2022": 1, "\u2026": 1, ".": 2, "x": 3, "X": 3}
_MASK_GROUP = {"x": "xX", "X": "xX"}

#: A host name: labels of letters, digits, hyphens and underscores (a container's name,
#: ``gpu_box``, is not DNS's but resolves).
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[\w-]*[A-Za-z0-9_])?(?:\.[\w-]+)*")
#: Where an IPv6 address may be written: hex digits, colons and dots (an embedded IPv4
#: address), from a token's start only (not quadratic), at most 64 of them, and a zone.
_IP6 = re.compile(r"(?<![\w:.%])[0-9A-Fa-f:][0-9A-Fa-f:.]{1,63}(?:%[\w.-]{1,32})?")


def _keyish(c: str) -> bool:
    return c.isalnum() or c in "_-"


def _mask_end(text: str, i: int) -> int | None:
    """The end of a mask run starting at ``text[i]``, or None when none starts there."""
    if i >= len(text) or text[i] not in _MASK_RUNS:
        return None
    group = _MASK_GROUP.get(text[i], text[i])
    j = i
    while j < len(text) and text[j] in group:
        j += 1
    return j if j - i >= _MASK_RUNS[text[i]] else None


def _mask_start(text: str, s: int) -> int | None:
    """The start of a mask run ending at ``text[s - 1]``, or None when none ends there."""
    if s <= 0 or text[s - 1] not in _MASK_RUNS:
        return None
    group = _MASK_GROUP.get(text[s - 1], text[s - 1])
    p = s
    while p > 0 and text[p - 1] in group:
        p -= 1
    return p if s - p >= _MASK_RUNS[text[s - 1]] else None


def _masked(text: str, key: str) -> list[tuple[int, int]]:
    """Where ``text`` shows ``key`` masked: its first characters then a mask run, or a mask run
    then its last characters (the whole token: what is around the mask too)."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    head = key[:SHOWN_MIN]
    i = text.find(head)
    while i != -1:
        if i == 0 or not _keyish(text[i - 1]):
            shown = SHOWN_MIN  # as many of the key's first characters as are written
            while shown < len(key) and i + shown < n and text[i + shown] == key[shown]:
                shown += 1
            for k in range(shown, SHOWN_MIN - 1, -1):  # ``Zq7mx`` + ``xxxx``: the run's x too
                end = _mask_end(text, i + k)
                if end is not None:
                    while end < n and _keyish(text[end]):
                        end += 1
                    spans.append((i, end))
                    break
        i = text.find(head, i + 1)
    tail = key[-SHOWN_MIN:]
    j = text.find(tail)
    while j != -1:
        end = j + SHOWN_MIN
        if end == n or not _keyish(text[end]):
            shown = SHOWN_MIN  # as many of the key's last characters as are written
            while shown < len(key) and end - shown > 0 and text[end - shown - 1] == key[-shown - 1]:
                shown += 1
            for k in range(shown, SHOWN_MIN - 1, -1):
                start = _mask_start(text, end - k)
                if start is not None:
                    while start > 0 and _keyish(text[start - 1]):
                        start -= 1
                    spans.append((start, end))
                    break
        j = text.find(tail, j + 1)
    return spans


def _replace(text: str, spans: list[tuple[int, int]], by: str) -> str:
    """``text`` with each of ``spans`` (overlapping ones as one) replaced by ``by``."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[str] = []
    at = 0
    for start, end in merged:
        out += (text[at:start], by)
        at = end
    return "".join(out) + text[at:]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


class KnownValues:
    """The hosts, IP addresses and keys of a gateway's configuration, and :meth:`hide`, which
    takes them out of an error's text. Built once (``known_values``) when the gateway starts."""

    __slots__ = ("_hosts", "_ips", "_keys", "_masked", "_names")

    def __init__(self, urls: Iterable[str] = (), keys: Iterable[str] = ()) -> None:
        names: set[str] = set()
        singles: set[str] = set()
        ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        secrets = {k for k in keys if len(k) >= _WHOLE_MIN}
        for url in urls:
            try:
                parts = urlsplit(url.strip())
                host = (parts.hostname or "").rstrip(".")
                password = parts.password
            except ValueError:
                continue
            if password and len(password) >= _WHOLE_MIN:
                secrets.add(password)  # ``http://user:pw@host``: a credential too
            ip = _ip(host)
            if ip is not None:
                ips.add(ip)
                if ip.version == 4:
                    names.add(str(ip))
            elif _HOST_NAME.fullmatch(host):
                (names if "." in host else singles).add(host.lower())
        alternatives = []
        if names:  # with or without a port
            listed = "|".join(re.escape(h) for h in sorted(names, key=len, reverse=True))
            alternatives.append(rf"(?:{listed})(?:(?::|%3[Aa])\d{{1,5}})?")
        if singles:  # a port after it: alone, a word
            listed = "|".join(re.escape(h) for h in sorted(singles, key=len, reverse=True))
            alternatives.append(rf"(?:{listed})(?::|%3[Aa])\d{{1,5}}")
        self._hosts = (
            re.compile(rf"(?<![\w-])(?:{'|'.join(alternatives)})(?![\w-]|\.[\w-])", re.IGNORECASE)
            if alternatives
            else None
        )
        self._names = len(names) + len(singles)
        self._ips = frozenset(ips)
        #: longest first: a key that holds another is replaced whole
        self._keys = tuple(sorted(secrets, key=len, reverse=True))
        self._masked = tuple(k for k in self._keys if len(k) >= _MASKED_MIN)

    def __repr__(self) -> str:  # never the keys
        return f"KnownValues({self._names} hosts, {len(self._ips)} IPs, {len(self._keys)} keys)"

    def hide(self, text: str, provider: str | None = None) -> str:
        """``text`` with each configured key, whole or masked, as ``[REDACTED]``, and each
        configured host or IP address as ``[<provider> URL]`` (``[provider URL]``)."""
        for key in self._keys:
            if key in text:
                text = text.replace(key, REDACTED)
        spans = [s for key in self._masked for s in _masked(text, key)]
        if spans:
            text = _replace(text, spans, REDACTED)
        where = f"[{provider} URL]" if provider else "[provider URL]"
        if self._ips and ":" in text:  # every IPv6 spelling has a colon (IPv4: ``_hosts``)
            text = _replace(text, self._ip_spans(text), where)
        if self._hosts is not None:
            text = self._hosts.sub(where, text)
        return text

    def _ip_spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for m in _IP6.finditer(text):
            core = m.group().rstrip(".")  # a sentence's full stop
            if core.endswith(":") and not core.endswith("::"):
                core = core[:-1]
            if core.count(":") < 2:
                continue
            rest, _, port = core.rpartition(":")
            if self._known_ip(core) or (port.isdigit() and self._known_ip(rest)):
                spans.append((m.start(), m.start() + len(core)))
        return spans

    def _known_ip(self, text: str) -> bool:
        ip = _ip(text)
        if ip is None:
            return False
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        return ip in self._ips or (mapped is not None and mapped in self._ips)


def _env(names: Iterable[str | None]) -> list[str]:
    return [v for n in names if n and (v := os.environ.get(n, "").strip())]


def _credentials(headers: Mapping[str, str]) -> list[str]:
    """The values of credential headers, and the token after ``Bearer``/``Basic`` alone."""
    out: list[str] = []
    for name, value in headers.items():
        if name.lower() in CREDENTIAL_HEADERS and value:
            out += {value, value.split(None, 1)[-1]}
    return out


def known_values() -> KnownValues:
    """The values of this process's configuration: every provider's base URL (unless it is the
    provider's own public API) and key from the environment and ``llmrelay.toml``, and every
    alias's base URL, key and credential headers."""
    urls: list[str] = []
    keys: list[str] = []
    aliases = known_aliases()  # (applies llmrelay.toml's [providers] and [models] first)
    for spec in list(PROVIDERS.values()):
        if spec.base_url and urlsplit(spec.base_url).hostname != spec.official_host:
            urls.append(spec.base_url)
        urls += _env((spec.base_url_var, *spec.alt_base_url_envs))
        keys += _env((spec.key_env, *spec.alt_key_envs))
        keys += _credentials(spec.extra_headers)
    for name in aliases:
        try:
            target = lookup(name)
        except LLMRelayError:
            continue  # a broken alias fails its own calls, it names nothing here
        if target is None:
            continue
        if target.base_url:
            urls.append(target.base_url)
        if target.api_key:
            keys.append(target.api_key.get())
        keys += _env((target.api_key_env,))
        keys += _credentials(target.headers)
    return KnownValues(urls, keys)
