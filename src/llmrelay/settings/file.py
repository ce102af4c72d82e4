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

This module is the only reader of the file and of ``LLMRELAY_CONFIG``: it loads the file on the
first :func:`file_settings` (or :func:`loaded_files`) and checks its shape (known tables and
keys, TOML types). What needs the provider table (known providers, parameter ranges) is checked
by :mod:`llmrelay.providers.aliases`, registered here with :func:`register_check`, which
also applies ``[providers]`` and ``[models]``. It imports nothing of llmrelay but the errors.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigFileError

__all__ = [
    "LoadedFile",
    "default_path",
    "did_you_mean",
    "ensure_loaded",
    "error_at",
    "file_settings",
    "generation",
    "line_of",
    "load_default_file",
    "load_file",
    "loaded_files",
    "register_check",
    "settings_path",
]

SECTIONS = frozenset(
    {
        "models",
        "providers",
        "defaults",
        "state",
        "cache",
        "limits",
        "budgets",
        "log",
        "catalog",
        "server",
    }
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
    "api": (str,),
}
PROVIDER_KEYS: dict[str, tuple[type, ...]] = {
    "base_url": (str,),
    "api_key_env": (str,),
    "api": (str,),
}
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


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """A configuration file that was read and checked: its path, text and tables."""

    path: str
    text: str
    tables: Mapping[str, Any]

    def error(self, key: tuple[str, ...], message: str) -> ConfigFileError:
        """A ``ConfigFileError`` locating ``key`` (a table path) in this file."""
        return ConfigFileError(
            message, path=self.path, key=".".join(key), line=line_of(self.text, key)
        )


#: table name -> (the file it was read from, the table)
_settings: dict[str, tuple[str, Any]] = {}
#: every file loaded, in load order
_files: list[LoadedFile] = []
#: checks of the lower layers that know more than the shape (e.g. the provider table)
_checks: list[Callable[[LoadedFile], object]] = []
#: what the lower layers apply from a file once it is kept (e.g. ``[providers]``)
_appliers: list[Callable[[LoadedFile], object]] = []
_state = "new"  # -> "loading" -> "loaded" (the default file)
_lock = threading.RLock()


def register_check(
    check: Callable[[LoadedFile], object], apply: Callable[[LoadedFile], object] | None = None
) -> None:
    """Run ``check(file)`` on every file before it is kept; it raises ``ConfigFileError`` to
    refuse the file (then nothing of it applies). Once the file is kept, ``apply(file)`` runs.

    Files loaded before registration are neither checked nor applied here: the registering
    layer does that when it first reads them."""
    _checks.append(check)
    if apply is not None:
        _appliers.append(apply)


def ensure_loaded() -> None:
    """Load ``llmrelay.toml`` (or ``$LLMRELAY_CONFIG``) once, if there is one.

    A malformed file raises ``ConfigFileError`` here, and again on the next call until fixed.
    """
    global _state
    if _state == "loaded":
        return
    with _lock:
        if _state != "new":  # loaded meanwhile, or loading further up this thread's stack
            return
        _state = "loading"
        try:
            load_default_file()
            _state = "loaded"
        except BaseException:
            _state = "new"
            raise


def file_settings(section: str) -> dict[str, Any]:
    """The configuration file's table ``section`` (empty when absent); loads the file first."""
    ensure_loaded()
    entry = _settings.get(section)
    return dict(entry[1] or {}) if entry else {}


def settings_path(section: str) -> str | None:
    """The file the table ``section`` was read from, for errors found when a layer reads it."""
    entry = _settings.get(section)
    return entry[0] if entry else None


def error_at(section: str, key: str, message: str) -> ConfigFileError:
    """A ``ConfigFileError`` for ``[section] key``, located in the file that set the table."""
    where = settings_path(section)
    line = None
    if where is not None:
        for f in reversed(_files):
            if f.path == where:
                line = line_of(f.text, (section, key))
                break
    return ConfigFileError(message, path=where, key=f"{section}.{key}", line=line)


def loaded_files() -> tuple[LoadedFile, ...]:
    """Every file loaded (the default one first, if any), in load order."""
    ensure_loaded()
    return tuple(_files)


def generation() -> int:
    """How many files are loaded (changes when one more is): cheap, for a layer's cache."""
    if _state != "loaded":
        ensure_loaded()
    return len(_files)


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


def line_of(text: str, path: tuple[str, ...]) -> int | None:
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
            msg, path=str(self.path), key=".".join(path), line=line_of(self.text, path)
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
    """Parse, check and keep a configuration file; return the aliases it defines.

    The whole file is checked first (its shape here, the rest by the registered checks);
    nothing of it is kept unless all of it is valid.
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

    models: dict[str, Any] = data.get("models", {})
    for name, entry in data.get("providers", {}).items():
        _check_provider(check, name, entry)
    for alias, entry in models.items():
        _check_model(check, alias, entry)
    loaded = LoadedFile(str(p), text, data)
    with _lock:
        for c in _checks:
            c(loaded)
        # A later file's table replaces an earlier file's table of the same name.
        _settings.update(
            {k: (str(p), v) for k, v in data.items() if k not in ("models", "providers")}
        )
        _files.append(loaded)
        for apply in _appliers:
            apply(loaded)
    return list(models)


def _check_provider(check: _Checker, name: str, entry: Any) -> None:
    table = ("providers", name)
    entry = check.table(table, entry)
    check.types(table, entry, PROVIDER_KEYS)
    base_url = entry.get("base_url")
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise check.error(
            (*table, "base_url"), f"base_url must start with http:// or https://, not {base_url!r}"
        )
    _check_api(check, table, entry)


def _check_api(check: _Checker, table: tuple[str, ...], entry: dict[str, Any]) -> None:
    api = entry.get("api")
    if api is not None and api not in ("chat", "responses"):
        raise check.error(
            (*table, "api"), f'api must be "chat" or "responses" (the OpenAI API), not {api!r}'
        )


def _check_model(check: _Checker, alias: str, entry: Any) -> None:
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
    if not entry["model"].strip():
        raise check.error((*table, "model"), "model must not be empty")
    if alias in entry.get("fallbacks", []):
        raise check.error((*table, "fallbacks"), f"{alias!r} lists itself as a fallback")
    _check_api(check, table, entry)


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
