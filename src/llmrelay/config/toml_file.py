"""Configurations declared in TOML (``llmrelay.toml`` or the file named by ``LLMRELAY_CONFIG``).

.. code-block:: toml

    [providers.groq]                  # override a provider's base URL or key variable
    base_url = "https://api.groq.com/openai/v1"
    api_key_env = "GROQ_API_KEY"

    [models.fast]                     # an alias, usable everywhere a model name is
    provider = "groq"
    model = "llama-3.1-8b-instant"
    temperature = 0.2
    max_tokens = 512
    system_message = "Answer briefly."
    fallbacks = ["gpt-4o-mini"]

Other top-level tables (``defaults``, ``state``, ``cache``, ``limits``, ``budgets``, ``log``,
``catalog``) are read by the layers they configure (:func:`file_settings`). Every problem is a
``ConfigFileError`` naming the file, the line and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigFileError, LLMRelayError
from ..providers import PROVIDERS, register_provider_spec

__all__ = ["file_settings", "load_default_file", "load_file"]

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

_settings: dict[str, Any] = {}


def file_settings(section: str) -> dict[str, Any]:
    """The loaded file's table ``section`` (empty when absent)."""
    return dict(_settings.get(section) or {})


def _line_of(text: str, table: str, key: str | None) -> int | None:
    """Best-effort line number of ``[table]`` (and ``key`` inside it) in the TOML text."""
    lines = text.splitlines()
    header = re.compile(
        r"^\s*\[\s*"
        + r"\s*\.\s*".join(
            re.escape(p)
            if re.fullmatch(r"[A-Za-z0-9_-]+", p)
            else r'["\']' + re.escape(p) + r'["\']'
            for p in table.split(".", 1 if table.startswith(("models.", "providers.")) else 0)
        )
        + r"\s*\]"
    )
    start = None
    for i, line in enumerate(lines):
        if header.match(line):
            start = i
            break
    if start is None:
        return None
    if key is None:
        return start + 1
    kre = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for j in range(start + 1, len(lines)):
        if lines[j].lstrip().startswith("["):
            break
        if kre.match(lines[j]):
            return j + 1
    return start + 1


def load_file(path: str | os.PathLike[str]) -> list[str]:
    """Parse, validate and apply a configuration file; return the aliases it defines."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigFileError(f"cannot read the file: {exc.strerror or exc}", path=str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigFileError(
            f"not valid TOML: {exc}", path=str(p), line=int(m.group(1)) if m else None
        ) from None
    for section, value in data.items():
        if section not in SECTIONS:
            raise ConfigFileError(
                f"unknown table [{section}]; known tables: {', '.join(sorted(SECTIONS))}",
                path=str(p),
                key=section,
                line=_line_of(text, section, None),
            )
        if not isinstance(value, dict):
            raise ConfigFileError(f"[{section}] must be a table", path=str(p), key=section)
    for name, prov in (data.get("providers") or {}).items():
        _apply_provider(p, text, name, prov)
    aliases: list[str] = []
    models = data.get("models") or {}
    for alias, entry in models.items():
        _check_model(p, text, alias, entry, models)
    for alias, entry in models.items():
        aliases.append(_define_model(p, text, alias, entry))
    _settings.clear()
    _settings.update({k: v for k, v in data.items() if k not in ("models", "providers")})
    return aliases


def _err(path: Path, text: str, table: str, key: str | None, msg: str) -> ConfigFileError:
    return ConfigFileError(
        msg, path=str(path), key=f"{table}.{key}" if key else table, line=_line_of(text, table, key)
    )


def _check_types(
    path: Path, text: str, table: str, entry: dict[str, Any], allowed: dict[str, tuple[type, ...]]
) -> None:
    for key, value in entry.items():
        if key not in allowed:
            raise _err(
                path, text, table, key, f"unknown key {key!r}; allowed: {', '.join(allowed)}"
            )
        types = allowed[key]
        if isinstance(value, bool) and bool not in types:
            raise _err(
                path, text, table, key, f"{key} must be {' or '.join(t.__name__ for t in types)}"
            )
        if not isinstance(value, types):
            raise _err(
                path,
                text,
                table,
                key,
                f"{key} must be {' or '.join(t.__name__ for t in types)}, not {type(value).__name__}",
            )


def _apply_provider(path: Path, text: str, name: str, entry: Any) -> None:
    table = f"providers.{name}"
    if not isinstance(entry, dict):
        raise _err(path, text, table, None, f"[{table}] must be a table")
    spec = PROVIDERS.get(name)
    if spec is None:
        raise _err(
            path,
            text,
            table,
            None,
            f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}",
        )
    _check_types(path, text, table, entry, PROVIDER_KEYS)
    changes: dict[str, Any] = {}
    if "base_url" in entry:
        changes["base_url"] = entry["base_url"]
    if "api_key_env" in entry:
        changes["key_env"] = entry["api_key_env"]
    if changes:
        register_provider_spec(replace(spec, **changes))


def _check_model(path: Path, text: str, alias: str, entry: Any, models: dict[str, Any]) -> None:
    table = f"models.{alias}"
    if not isinstance(entry, dict):
        raise _err(path, text, table, None, f"[{table}] must be a table")
    _check_types(path, text, table, entry, MODEL_KEYS)
    for required in ("provider", "model"):
        if required not in entry:
            raise _err(path, text, table, None, f"[{table}] needs `{required} = ...`")
    if entry["provider"] not in PROVIDERS:
        raise _err(
            path,
            text,
            table,
            "provider",
            f"unknown provider {entry['provider']!r}; known: {', '.join(sorted(PROVIDERS))}",
        )
    fallbacks = entry.get("fallbacks", [])
    if not all(isinstance(f, str) and f for f in fallbacks):
        raise _err(path, text, table, "fallbacks", "fallbacks must be a list of model names")
    if alias in fallbacks:
        raise _err(path, text, table, "fallbacks", f"{alias!r} lists itself as a fallback")


def _define_model(path: Path, text: str, alias: str, entry: dict[str, Any]) -> str:
    from .registry import define_config, validate_config

    attrs = {k: v for k, v in entry.items() if k not in ("provider", "model")}
    try:
        cls = define_config(
            alias, entry["provider"], entry["model"], module="llmrelay.config.toml", **attrs
        )
        validate_config(cls())
    except ConfigFileError:
        raise
    except LLMRelayError as exc:
        raise _err(path, text, f"models.{alias}", None, exc.message) from None
    return alias


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
