"""The model registry (seed 003's ``LLMRegistry``): register, look up, query, validate, persist.

.. code-block:: python

    registry = LLMRegistry()                      # the bundled catalog (+ your catalog file)
    registry.get("gpt-4.1-mini")                  # by id, alias or "provider/model"
    vision = registry.get_models_by_capability(
        capability="supports_vision", min_context_window=16000, max_cost_per_1k=0.01
    )
    registry.register({"provider": "vllm", "model": "my-llama", "context_window": 32768,
                       "prices": {"input": 0.0, "output": 0.0}})      # self-hosted: free
    registry.save("catalog.sqlite")              # or .json / .yaml

The bundled data (``llmrelay/data/catalog.json``) is read on first use, never at import. A
user catalog file -- ``[catalog] path = "..."`` in ``llmrelay.toml`` or ``LLMRELAY_CATALOG``
(several paths separated by ``os.pathsep``) -- is loaded over it: its rows override bundled
rows field by field, so a file may change one price of a bundled model or add a custom one.

Lifecycle: :meth:`LLMRegistry.check_lifecycle` logs a warning (logger ``llmrelay.catalog``, once
per model per process) for a deprecated model, naming its replacement, and raises
``ModelRetiredError`` for a model past its shutdown date unless retired models are allowed
(``LLMRegistry(allow_retired=True)``, ``LLMRELAY_ALLOW_RETIRED=1`` or ``[catalog]
allow_retired = true``).
"""

from __future__ import annotations

import builtins
import difflib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from datetime import time as dtime
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigFileError, ConfigurationError, UnknownModelError, finite, shown
from ..settings.file import file_settings
from . import lifecycle, persistence
from .derived_cache import CacheGuard
from .profiles import BLEND_INPUT_WEIGHT as BLEND_INPUT_WEIGHT
from .profiles import BLEND_OUTPUT_WEIGHT as BLEND_OUTPUT_WEIGHT
from .profiles import CAPABILITY_NAMES, LLMCapabilities, LLMProfile, blended_price_per_1k
from .profiles import blended_cost_per_1k as blended_cost_per_1k

__all__ = [
    "BLEND_INPUT_WEIGHT",
    "BLEND_OUTPUT_WEIGHT",
    "LLMRegistry",
    "blended_cost_per_1k",
    "bundled_metadata",
    "default_registry",
]

log = logging.getLogger("llmrelay.catalog")
# A library logs to its logger and lets the application decide where it goes: without this,
# Python's last-resort handler would print the warnings on stderr of every program.
log.addHandler(logging.NullHandler())

_Key = tuple[str, str]

_bundled_lock = threading.Lock()
_bundled: tuple[dict[str, Any], list[dict[str, Any]]] | None = None

#: Models already warned about (deprecated or retired), process-wide.
_warned: set[str] = set()
_warned_lock = threading.Lock()


def _load_bundled() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    global _bundled
    if _bundled is None:
        with _bundled_lock:
            if _bundled is None:
                ref = resources.files("llmrelay").joinpath("data", "catalog.json")
                with resources.as_file(ref) as path:
                    _bundled = persistence.load_json(path, origin="bundled")
    return _bundled


def bundled_metadata() -> dict[str, Any]:
    """``schema_version``, ``catalog_version``, ``as_of`` and ``notes`` of the bundled data."""
    return dict(_load_bundled()[0])


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def _utc_today() -> date:
    return datetime.now(UTC).date()


def _noon(day: date) -> float:
    """Midday UTC of ``day`` as an epoch time (the price clock of a registry given only a
    ``today``)."""
    return datetime.combine(day, dtime(12), UTC).timestamp()


class LLMRegistry:
    """Every known model. Thread-safe; lookups are dictionary reads.

    ``bundled=False`` starts empty; ``catalog_files`` adds files over the bundled data (by
    default the configured file, see the module docs; pass ``()`` for none). The clock is
    injectable for tests: ``today`` (a UTC date, for lifecycle; prices then use its midday) or
    ``now`` (epoch seconds, for both).
    """

    def __init__(
        self,
        profiles: Iterable[LLMProfile | Mapping[str, Any]] = (),
        *,
        bundled: bool = True,
        catalog_files: Iterable[str | os.PathLike[str]] | None = None,
        allow_retired: bool | None = None,
        account_tiers: Mapping[str, str] | None = None,
        today: Callable[[], date] | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._rows: dict[_Key, dict[str, Any]] = {}
        self._profiles: dict[_Key, LLMProfile] = {}
        self._names: dict[str, list[_Key]] = {}
        self._meta: dict[str, Any] = {}
        #: Derived data (prices, layer lookups), cleared on every change (and when full).
        self.cache: dict[Any, Any] = {}
        self.cache_guard = CacheGuard(self.cache, self._ensure)  # stores go through it
        self._want_bundled = bundled
        self._files = None if catalog_files is None else [str(f) for f in catalog_files]
        self._loaded = False
        self._pending = list(profiles)
        self._allow_retired = allow_retired
        self._tiers = None if account_tiers is None else dict(account_tiers)
        # One clock for lifecycle (days) and prices (epoch seconds): inject either.
        if today is None:
            if now is None:
                self.now: Callable[[], float] = time.time
                self.today: Callable[[], date] = _utc_today
            else:
                clock = now
                self.now = clock
                self.today = lambda: datetime.fromtimestamp(clock(), UTC).date()
        else:
            day = today
            self.today = day
            self.now = now if now is not None else (lambda: _noon(day()))

    # ------------------------------------------------------------------ loading

    def _ensure(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            if self._want_bundled:
                meta, rows = _load_bundled()
                self._meta = dict(meta)
                for row in rows:
                    self._put_row(row, origin="bundled", merge=False)
            for path in self._configured_files():
                self._load_file(path, None)
            allow = self._allow_retired
            if allow is None:
                allow = _truthy(os.environ.get("LLMRELAY_ALLOW_RETIRED")) or bool(
                    self._settings().get("allow_retired", False)
                )
            self._allow_retired = allow
            if self._tiers is None:
                self._tiers = lifecycle.tiers_setting(self._settings())
            self._loaded = True
            pending, self._pending = self._pending, []
            for p in pending:
                self.register(p)

    @staticmethod
    def _settings() -> dict[str, Any]:
        s = file_settings("catalog")
        unknown = set(s) - {"path", "allow_retired", "account_tiers"}
        if unknown:
            raise ConfigFileError(
                f"unknown key(s) {', '.join(sorted(unknown))} in [catalog]; known keys: "
                "account_tiers, allow_retired, path",
                key="catalog",
            )
        if "allow_retired" in s and not isinstance(s["allow_retired"], bool):
            raise ConfigFileError("allow_retired must be true or false", key="catalog")
        return s

    def _configured_files(self) -> list[str]:
        if self._files is not None:
            return self._files
        out: list[str] = []
        path = self._settings().get("path")
        if isinstance(path, str):
            out.append(path)
        elif isinstance(path, list) and all(isinstance(p, str) for p in path):
            out.extend(path)
        elif path is not None:
            raise ConfigFileError(
                "[catalog] path must be a file path or a list of paths", key="catalog.path"
            )
        env = os.environ.get("LLMRELAY_CATALOG")
        if env:
            out.extend(p for p in env.split(os.pathsep) if p)
        return out

    # ------------------------------------------------------------------ changes

    def _index(self, key: _Key, p: LLMProfile) -> None:
        for n in {p.name, *p.aliases}:
            keys = self._names.setdefault(n, [])
            if key not in keys:
                keys.append(key)

    def _unindex(self, key: _Key) -> None:
        for n in list(self._names):
            keys = self._names[n]
            if key in keys:
                keys.remove(key)
                if not keys:
                    del self._names[n]

    def _put_row(self, row: Mapping[str, Any], *, origin: str, merge: bool) -> LLMProfile:
        provider, model = row.get("provider"), row.get("model")
        if not isinstance(provider, str) or not isinstance(model, str):
            # The row's own error names the field; never str() a caller's object.
            persistence.profile_from_row(row, origin=origin)
            raise ConfigurationError("a catalog row needs a provider and a model, as strings")
        key = (str.__str__(provider), str.__str__(model))
        if merge and key in self._rows:
            row = persistence.merge_rows(self._rows[key], row)
        p = persistence.profile_from_row(row, origin=origin)
        self._store(key, dict(row), p)
        return p

    def _store(self, key: _Key, row: dict[str, Any], p: LLMProfile) -> None:
        if key in self._profiles:
            self._unindex(key)
        self._rows[key] = row
        self._profiles[key] = p
        self._index(key, p)
        self.cache_guard.clear()

    def register(self, profile: LLMProfile | Mapping[str, Any]) -> LLMProfile:
        """Add or replace a model. A ``LLMProfile`` replaces the entry; a row dict (the catalog
        file form) is merged over the existing entry, so ``{"provider": "openai", "model":
        "gpt-4o", "prices": {"input": 2.0}}`` changes one price. Returns the stored profile."""
        if not self._loaded:
            self._ensure()
        with self._lock:
            if isinstance(profile, LLMProfile):
                key = (profile.provider, profile.name)
                self._store(key, persistence.profile_to_row(profile), profile)
                return profile
            if isinstance(profile, Mapping):
                try:
                    return self._put_row(profile, origin="user", merge=True)
                except ConfigFileError as exc:
                    raise ConfigurationError(exc.message.removeprefix("<config>: ")) from None
            raise ConfigurationError(
                f"register() takes an LLMProfile or a catalog row dict, not "
                f"{type(profile).__name__}"
            )

    def unregister(self, name: str) -> None:
        p = self.get(name)
        with self._lock:
            key = (p.provider, p.name)
            self._unindex(key)
            del self._rows[key]
            del self._profiles[key]
            self.cache_guard.clear()

    # ------------------------------------------------------------------ lookups

    def lookup(self, provider: str | None, model: str) -> LLMProfile | None:
        """The profile of ``model`` (id or alias) at ``provider`` (None: any provider, when
        unambiguous), or None. Never raises."""
        if not self._loaded:
            self._ensure()
        if provider is not None:
            p = self._profiles.get((provider, model))
            if p is not None:
                return p
            keys = self._names.get(model) or self._names.get(model.lower()) or ()
            for k in keys:
                if k[0] == provider:
                    return self._profiles[k]
            return None
        keys = self._names.get(model) or ()
        if len(keys) == 1:
            return self._profiles[keys[0]]
        return None

    def _split(self, name: str) -> tuple[str | None, str]:
        head, sep, rest = name.partition("/")
        if sep and rest and any(k[0] == head for k in self._profiles):
            return head, rest
        return None, name

    def get(self, name: str, provider: str | None = None) -> LLMProfile:
        """A model by id, alias or ``provider/model``. Raises ``UnknownModelError`` (with close
        matches) when it is not known, or when a bare name is ambiguous across providers."""
        if not isinstance(name, str) or not name.strip():
            raise UnknownModelError(f"model name must be a non-empty string, not {shown(name)}")
        if not self._loaded:
            self._ensure()
        model = name
        if provider is not None:
            p = self.lookup(provider, name)
        else:
            provider, model = self._split(name)
            p = self.lookup(provider, model) if provider is not None else None
            if p is None:  # a bare id, which may hold a '/' ("meta-llama/Llama-3.3-70B")
                p = self.lookup(None, name)
                if p is None and len(self._names.get(name, ())) > 1:
                    keys = self._names[name]
                    raise UnknownModelError(
                        f"{shown(name)} is served by several providers ("
                        + ", ".join(f"{k[0]}/{k[1]}" for k in keys)
                        + "); name one as 'provider/model'",
                        model=name,
                    )
        if p is not None:
            return p
        ids = [f"{k[0]}/{k[1]}" for k in self._profiles] + list(self._names)
        close = difflib.get_close_matches(name, ids, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(
            f"model {shown(name)} is not in the catalog.{hint} Register it with "
            "LLMRegistry.register(...) or add it to your catalog file ([catalog] path or "
            "LLMRELAY_CATALOG)",
            provider=provider,
            model=model,
        )

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except UnknownModelError:
            return False
        return True

    def __iter__(self) -> Iterator[LLMProfile]:
        return iter(self.list())

    def __len__(self) -> int:
        self._ensure()
        return len(self._profiles)

    def list(
        self, provider: str | None = None, *, include_retired: bool = True
    ) -> builtins.list[LLMProfile]:
        """Every model (of ``provider``), in catalog order."""
        self._ensure()
        today = self.today()
        return [
            p
            for p in list(self._profiles.values())
            if (provider is None or p.provider == provider)
            and (include_retired or not p.is_retired(today))
        ]

    def providers(self) -> builtins.list[str]:
        self._ensure()
        return sorted({k[0] for k in self._profiles})

    def get_models_by_capability(
        self,
        capability: str,
        min_context_window: int | None = None,
        max_cost_per_1k: float | None = None,
        *,
        provider: str | None = None,
        include_retired: bool = False,
    ) -> builtins.list[LLMProfile]:
        """Models with ``capability`` (e.g. ``"supports_vision"``), a context window of at least
        ``min_context_window`` and a blended price of at most ``max_cost_per_1k`` dollars per
        1,000 tokens. Retired models are left out unless ``include_retired``.

        The blended price weighs input and output 3:1 (``BLEND_INPUT_WEIGHT`` :
        ``BLEND_OUTPUT_WEIGHT``), the usual mix of a chat call and the blend public price
        comparisons use: ``(3 * input + 1 * output) / 4`` per 1,000 tokens (see
        :func:`blended_cost_per_1k`). A model whose input or output price is unknown is left
        out when a price bound is given."""
        if not isinstance(capability, str):
            raise ConfigurationError(
                f"capability must be a name like 'supports_vision', not {shown(capability)}"
            )
        name = capability if capability.startswith("supports_") else f"supports_{capability}"
        if name not in CAPABILITY_NAMES:
            raise ConfigurationError(
                f"unknown capability {shown(capability)}; valid capabilities: "
                f"{', '.join(CAPABILITY_NAMES)}"
            )
        if min_context_window is not None and (
            isinstance(min_context_window, bool)
            or not isinstance(min_context_window, int)
            or min_context_window < 0
        ):
            raise ConfigurationError(
                "min_context_window must be a non-negative integer, not "
                f"{shown(min_context_window)}"
            )
        if max_cost_per_1k is not None and (
            isinstance(max_cost_per_1k, bool)
            or not isinstance(max_cost_per_1k, int | float)
            or (not finite(max_cost_per_1k) and max_cost_per_1k != math.inf)
            or max_cost_per_1k < 0
        ):
            raise ConfigurationError(
                "max_cost_per_1k must be a non-negative number of dollars, not "
                f"{shown(max_cost_per_1k)}"
            )
        out = []
        today = self.today()
        for p in self.list(provider, include_retired=include_retired):
            c: LLMCapabilities = p.capabilities
            if not getattr(c, name):
                continue
            if min_context_window is not None and (c.max_context_window or 0) < min_context_window:
                continue
            if max_cost_per_1k is not None:
                per_1k = blended_price_per_1k(p.pricing_on(today))
                if per_1k is None or per_1k > max_cost_per_1k + 1e-15:
                    continue
            out.append(p)
        return out

    # ------------------------------------------------------------------ lifecycle

    @property
    def allow_retired(self) -> bool:
        self._ensure()
        return bool(self._allow_retired)

    @property
    def account_tiers(self) -> dict[str, str]:
        """Your account tier per provider (``account_tiers=`` or ``[catalog] account_tiers``)."""
        self._ensure()
        return dict(self._tiers or {})

    def check_lifecycle(self, profile: LLMProfile, *, enforce: bool = True) -> None:
        """Warn (once per model per process) about a deprecated or retired model; raise
        ``ModelRetiredError`` for a retired-and-refused one when ``enforce`` and retired models
        are not allowed. The lifecycle states (``LLMProfile.lifecycle_state``):

        * ``deprecated`` (a shutdown date is announced): warn, naming the date and replacement;
        * ``retired`` (the provider refuses it): raise, naming the replacement;
        * ``retired_routed`` (the provider answers with its replacement): warn and send; the
          call is billed at the replacement's rate;
        * ``retired_tiers`` (retired for some account tiers only): warn and send, unless
          ``account_tiers`` names your tier at that provider: a retired tier is then refused
          like ``retired``, another one passes without a warning.
        """
        lifecycle.check(self, profile, enforce=enforce)

    def current_replacement(self, profile: LLMProfile) -> str | None:
        """The model to use instead: the named replacement, followed while that one is itself
        retired (``mixtral-8x7b-32768`` -> ``llama-3.3-70b-versatile`` -> ...)."""
        repl = profile.replacement
        today = self.today()
        seen = {profile.id}
        for _ in range(8):
            if repl is None:
                return None
            nxt = self.lookup(profile.provider, repl)
            if nxt is None or nxt.id in seen or not nxt.is_retired(today) or not nxt.replacement:
                return repl
            seen.add(nxt.id)
            repl = nxt.replacement
        return repl

    @staticmethod
    def warn_once(profile: LLMProfile, what: str, replacement: str | None) -> None:
        with _warned_lock:
            if profile.id in _warned:
                return
            _warned.add(profile.id)
        instead = f"; migrate to {replacement!r}" if replacement else "; no replacement is named"
        log.warning("%s%s", what, instead, extra={"model": profile.id})

    def validate_model(self, name: str) -> LLMProfile:
        """``get(name)`` plus the lifecycle check (seed 003's model validation)."""
        p = self.get(name)
        self.check_lifecycle(p)
        return p

    # ------------------------------------------------------------------ persistence

    @property
    def metadata(self) -> dict[str, Any]:
        self._ensure()
        return dict(self._meta)

    def rows(self) -> builtins.list[dict[str, Any]]:
        """Every model as a catalog row (the file form)."""
        self._ensure()
        with self._lock:
            return [persistence.profile_to_row(p) for p in self._profiles.values()]

    def save(self, path: str | os.PathLike[str], *, format: str | None = None) -> None:
        """Write every model to ``path``: JSON, YAML or SQLite (from the extension)."""
        _, dump = persistence.codec(path, format)
        meta = {k: v for k, v in self.metadata.items() if k != "schema_version"}
        dump(path, meta, self.rows())

    def load(
        self, path: str | os.PathLike[str], *, format: str | None = None
    ) -> builtins.list[str]:
        """Load a catalog file over this registry (its rows win, field by field). The file is
        checked completely first; a bad file changes nothing. Returns the ids it set."""
        self._ensure()
        return self._load_file(path, format)

    def _load_file(self, path: str | os.PathLike[str], format: str | None) -> builtins.list[str]:
        load, _ = persistence.codec(path, format)
        origin = str(Path(path))
        _, rows = load(path, origin=origin)
        with self._lock:
            merged = []
            for i, row in enumerate(rows):
                key = (row["provider"], row["model"])
                full = persistence.merge_rows(self._rows[key], row) if key in self._rows else row
                p = persistence.profile_from_row(full, path=origin, index=i, origin=origin)
                merged.append((key, full, p))
            for key, full, p in merged:
                self._store(key, full, p)
        return [p.id for _, _, p in merged]

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        bundled: bool = False,
        format: str | None = None,
        **kw: Any,
    ) -> LLMRegistry:
        """A registry holding the models of one file (over the bundled data if ``bundled``)."""
        reg = cls(bundled=bundled, catalog_files=(), **kw)
        reg.load(path, format=format)
        return reg

    # seed 003 spellings
    def to_json(self, path: str | os.PathLike[str]) -> None:
        self.save(path, format="json")

    def to_yaml(self, path: str | os.PathLike[str]) -> None:
        self.save(path, format="yaml")

    def to_sqlite(self, path: str | os.PathLike[str]) -> None:
        self.save(path, format="sqlite")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str], **kw: Any) -> LLMRegistry:
        return cls.from_file(path, format="json", **kw)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **kw: Any) -> LLMRegistry:
        return cls.from_file(path, format="yaml", **kw)

    @classmethod
    def from_sqlite(cls, path: str | os.PathLike[str], **kw: Any) -> LLMRegistry:
        return cls.from_file(path, format="sqlite", **kw)

    def __repr__(self) -> str:
        n = len(self._profiles) if self._loaded else "not loaded"
        return f"LLMRegistry({n} models)"


_default: LLMRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> LLMRegistry:
    """The process-wide registry (bundled data + the configured catalog file)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = LLMRegistry()
    return _default


def set_default_registry(registry: LLMRegistry | None) -> None:
    """Replace the process-wide registry (None: rebuild it on next use)."""
    global _default
    with _default_lock:
        _default = registry
