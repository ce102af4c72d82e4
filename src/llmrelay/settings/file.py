"""Configurations declared in TOML (``llmrelay.toml`` or the file named by ``LLMRELAY_CONFIG``).

.. code-block:: toml

    [providers.groq]                  # override a provider's base URL or key variable
    base_url = "https://api.groq.com/openai/v1"
    api_key_env = "GROQ_API_KEY"

    [models.fast]                     # an alias, usable everywhere a model name is
    provider = "groq"
    model = "openai/gpt-oss-20b"
    temperature = 0.2
    max_tokens = 512
    system_message = "Answer briefly."
    fallbacks = ["gpt-6-luna"]

Other top-level tables (``defaults``, ``state``, ``cache``, ``limits``, ``budgets``, ``log``,
``catalog``) are read by the layers they configure (:func:`file_settings`). Every problem is a
``ConfigFileError`` naming the file, the line and the key. A file is checked completely before
anything in it is applied, so a bad file changes nothing.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigFileError, LLMRelayError
from ..providers.table import PROVIDERS, ProviderSpec, register_provider_spec
from ..seeds.seed002.base import CONFIG_REGISTRY, did_you_mean, register_config

__all__ = ["default_path", "file_settings", "load_default_file", "load_file", "settings_path"]

SECTIONS = frozenset(
    {"models", "providers", "defaults", "state", "cache", "limits", "budgets", "log", "catalog"}
)
MODEL_KEYS: dict[str, tuple[type, ...]] = {
    "provider": (str,),
    "model": (str,),
    "temperature": (int, float),
    "max_tokens": (int,),
    "top_p": (int, float),
    "frequency_penalty": (int, float),
    "presence_penalty": (int, float),
    "stop": (str, list),
    "system_message": (str,),
    "base_url": (str,),
    "api_key_env": (str,),
    "fallbacks": (list,),
    "stream": (bool,),
    "policy": (dict,),
}
PROVIDER_KEYS: dict[str, tuple[type, ...]] = {"base_url": (str,), "api_key_env": (str,)}
_TYPE_NAMES: dict[tuple[type, ...], str] = {
    (str,): "a string",
    (int,): "an integer",
    (int, float): "a number",
    (str, list): "a string or a list of strings",
    (list,): "a list of non-empty strings",
    (bool,): "true or false",
    (dict,): "a table",
}
_TOML_TYPES = {
    str: "a string",
    int: "an integer",
    float: "a float",
    bool: "a boolean",
    list: "an array",
    dict: "a table",
}

#: table name -> (the file it was read from, the table)
_settings: dict[str, tuple[str, Any]] = {}


def file_settings(section: str) -> dict[str, Any]:
    """The loaded file's table ``section`` (empty when absent)."""
    entry = _settings.get(section)
    return dict(entry[1] or {}) if entry else {}


def settings_path(section: str) -> str | None:
    """The file the table ``section`` was read from, for errors found when a layer reads it."""
    entry = _settings.get(section)
    return entry[0] if entry else None


# --------------------------------------------------------------------------- locating lines

_KEY_PART = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*""")


def _key_path(s: str) -> tuple[str, ...] | None:
    """``a."b.c".d`` -> ("a", "b.c", "d"); None if ``s`` is not a dotted key."""
    parts: list[str] = []
    pos = 0
    while True:
        m = _KEY_PART.match(s, pos)
        if m is None:
            return None
        tok = m.group(1)
        parts.append(tok[1:-1] if tok[0] in "\"'" else tok)
        pos = m.end()
        if pos == len(s):
            return tuple(parts)
        if s[pos] != ".":
            return None
        pos += 1


_HEADER = re.compile(r"^\s*\[\[?(?P<path>[^\[\]]+)\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"""^\s*(?P<lhs>(?:"(?:[^"\\]|\\.)*"|'[^']*'|[^=#"'\s][^=#"']*?)+?)\s*=""")


def _line_of(text: str, path: tuple[str, ...]) -> int | None:
    """Best-effort 1-based line where the table or key ``path`` is written: its ``[header]``,
    its ``key = ...`` line (plain, dotted or quoted), or the line of its closest parent."""
    best: tuple[int, int] | None = None  # (matched length, line)
    current: tuple[str, ...] = ()
    for i, line in enumerate(text.splitlines(), 1):
        full: tuple[str, ...] | None = None
        h = _HEADER.match(line)
        if h is not None:
            current = _key_path(h.group("path")) or ()
            full = current
        else:
            a = _ASSIGN.match(line)
            if a is not None:
                lhs = _key_path(a.group("lhs"))
                if lhs is not None:
                    full = current + lhs
        if full is None:
            continue
        n = 0
        while n < min(len(full), len(path)) and full[n] == path[n]:
            n += 1
        if n == len(path):
            return i
        if n and n == len(full) and (best is None or n > best[0]):
            best = (n, i)  # a parent of the path (e.g. its table header)
    return best[1] if best else None


# --------------------------------------------------------------------------- loading


class _Checker:
    """Builds located ``ConfigFileError``s for one file."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def error(self, path: tuple[str, ...], msg: str) -> ConfigFileError:
        return ConfigFileError(
            msg, path=str(self.path), key=".".join(path), line=_line_of(self.text, path)
        )

    def table(self, path: tuple[str, ...], value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(
                path,
                f"{'.'.join(path)} must be a table ([{'.'.join(path)}]), not "
                f"{_TOML_TYPES.get(type(value), type(value).__name__)}",
            )
        return value

    def types(
        self, table: tuple[str, ...], entry: dict[str, Any], allowed: dict[str, tuple[type, ...]]
    ) -> None:
        for key, value in entry.items():
            if key not in allowed:
                raise self.error(
                    (*table, key),
                    f"unknown key {key!r}{did_you_mean(key, allowed)}; allowed keys: "
                    f"{', '.join(allowed)}",
                )
            types = allowed[key]
            ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))
            if ok and isinstance(value, list):
                ok = all(isinstance(v, str) and v for v in value)
            if not ok:
                got = _TOML_TYPES.get(type(value), type(value).__name__)
                if isinstance(value, list):
                    got = "an array with a non-string or empty item"
                want = _TYPE_NAMES.get(types, " or ".join(t.__name__ for t in types))
                raise self.error((*table, key), f"{key} must be {want}, not {got} ({value!r})")


def load_file(path: str | os.PathLike[str]) -> list[str]:
    """Parse, validate and apply a configuration file; return the aliases it defines.

    The whole file is checked first; nothing is applied unless all of it is valid.
    """
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        hint = " (set by LLMRELAY_CONFIG)" if os.environ.get("LLMRELAY_CONFIG") == str(path) else ""
        raise ConfigFileError(
            f"cannot read the configuration file{hint}: {exc.strerror or exc}", path=str(p)
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"the file is not UTF-8 text: {exc}", path=str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigFileError(
            f"not valid TOML: {exc}", path=str(p), line=int(m.group(1)) if m else None
        ) from None
    check = _Checker(p, text)
    for section, value in data.items():
        if section not in SECTIONS:
            close = difflib.get_close_matches(section, list(SECTIONS), n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else ""
            raise check.error(
                (section,),
                f"unknown table [{section}]{hint}; known tables: {', '.join(sorted(SECTIONS))}",
            )
        check.table((section,), value)

    # Phase 1: check everything.
    provider_changes: list[ProviderSpec] = []
    for name, entry in data.get("providers", {}).items():
        provider_changes.extend(_check_provider(check, name, entry))
    models: dict[str, Any] = data.get("models", {})
    for alias, entry in models.items():
        _check_model(check, alias, entry, set(models))
    # Model checks run against the providers as this file sets them; undone on failure.
    saved = dict(PROVIDERS)
    try:
        for spec in provider_changes:
            register_provider_spec(spec)
        classes = [_build_model(check, alias, entry) for alias, entry in models.items()]
    except BaseException:
        PROVIDERS.clear()
        PROVIDERS.update(saved)
        raise

    # Phase 2: apply.
    for cls in classes:
        register_config(cls)
    # A later file's table replaces an earlier file's table of the same name.
    _settings.update({k: (str(p), v) for k, v in data.items() if k not in ("models", "providers")})
    return list(models)


def _check_provider(check: _Checker, name: str, entry: Any) -> list[ProviderSpec]:
    table = ("providers", name)
    entry = check.table(table, entry)
    spec = PROVIDERS.get(name)
    if spec is None:
        raise check.error(
            table,
            f"unknown provider {name!r}{did_you_mean(name, PROVIDERS)}; known providers: "
            f"{', '.join(sorted(PROVIDERS))}",
        )
    check.types(table, entry, PROVIDER_KEYS)
    base_url = entry.get("base_url")
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise check.error(
            (*table, "base_url"), f"base_url must start with http:// or https://, not {base_url!r}"
        )
    changes: dict[str, Any] = {}
    if base_url is not None:
        changes["base_url"] = base_url
    if "api_key_env" in entry:
        changes["key_env"] = entry["api_key_env"]
    return [replace(spec, **changes)] if changes else []


def _check_model(check: _Checker, alias: str, entry: Any, file_aliases: set[str]) -> None:
    table = ("models", alias)
    entry = check.table(table, entry)
    if not alias.strip():
        raise check.error(table, "an alias must not be empty")
    check.types(table, entry, MODEL_KEYS)
    for required, example in (("provider", '"groq"'), ("model", '"openai/gpt-oss-20b"')):
        if required not in entry:
            raise check.error(
                (*table, required), f"[models.{alias}] needs `{required} = {example}`"
            )
    provider = entry["provider"]
    if provider not in PROVIDERS:
        raise check.error(
            (*table, "provider"),
            f"unknown provider {provider!r}{did_you_mean(provider, PROVIDERS)}; known "
            f"providers: {', '.join(sorted(PROVIDERS))}",
        )
    if not entry["model"].strip():
        raise check.error((*table, "model"), "model must not be empty")
    fallbacks = entry.get("fallbacks", [])
    if alias in fallbacks:
        raise check.error((*table, "fallbacks"), f"{alias!r} lists itself as a fallback")
    for f in fallbacks:
        prov, sep, _ = f.partition("/")
        if sep and prov not in PROVIDERS and f not in file_aliases and f not in CONFIG_REGISTRY:
            raise check.error(
                (*table, "fallbacks"),
                f"fallback {f!r} names unknown provider {prov!r}; known providers: "
                f"{', '.join(sorted(PROVIDERS))}",
            )


def _build_model(check: _Checker, alias: str, entry: dict[str, Any]) -> type[Any]:
    from ..seeds.seed002.registry import InvalidConfigValueError, make_config_class, validate_config

    table = ("models", alias)
    attrs = {k: v for k, v in entry.items() if k not in ("provider", "model")}
    try:
        cls = make_config_class(
            alias, entry["provider"], entry["model"], module="llmrelay.seeds.seed002.toml", **attrs
        )
        validate_config(cls())
    except InvalidConfigValueError as exc:
        raise check.error((*table, exc.field), _strip_what(exc.message)) from None
    except LLMRelayError as exc:
        raise check.error(table, _strip_what(exc.message)) from None
    return cls


def _strip_what(message: str) -> str:
    """Drop the "configuration 'x' (XConfig): " prefix: the file error already locates it."""
    return re.sub(r"^configuration '[^']*' \([^)]*\):\s*", "", message)


def default_path() -> Path | None:
    env = os.environ.get("LLMRELAY_CONFIG")
    if env:
        return Path(env)
    p = Path.cwd() / "llmrelay.toml"
    return p if p.is_file() else None


def load_default_file() -> list[str]:
    path = default_path()
    if path is None:
        return []
    return load_file(path)
